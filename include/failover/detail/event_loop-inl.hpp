// SPDX-License-Identifier: MIT
// EventLoop's definitions (see event_loop.hpp): libcurl's multi interface driven
// by one thread, a task queue other threads fill, and timers on the loop's
// Clock. A transfer is set up and judged exactly as CurlTransport's own
// (curl_headers, curl_configure, curl_result in curl-inl.hpp); only the waiting
// differs. Header-only by default, compiled once in compiled mode.
#pragma once

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "failover/detail/curl-inl.hpp"
#include "failover/event_loop.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE
namespace detail {

class EventLoopState;

/// Ends transfer `id` from any thread: the loop cancels it at its next turn.
struct CancelTransfer {
    EventLoopState* loop;
    std::uint64_t id;
    void operator()() const noexcept;
};

/// One transfer in flight on the loop, at a stable address (libcurl points into it).
struct LoopTransfer {
    std::uint64_t id = 0;
    HttpRequest req{};
    Deadline d{};
    const CurlOptions* options = nullptr;  // the route's transport's: outlives the request
    CurlEasyPtr easy{};
    CurlSlistPtr headers{};
    CurlCall call{};
    HttpResponse response{};
    std::function<void(Result<HttpResponse>)> done{};
    std::optional<std::stop_callback<CancelTransfer>> on_stop{};
    std::unique_ptr<StreamSpec> spec{};  // a stream: where its 2xx body goes (call.stream points here)
};

class EventLoopState {
public:
    explicit EventLoopState(EventLoopOptions o) : options(std::move(o)) {
        if (!options.clock) options.clock = std::make_shared<SystemClock>();
        ensure_curl_global();
        multi.reset(curl_multi_init());
        if (!multi) throw std::runtime_error("failover: EventLoop: curl_multi_init failed");
        curl_multi_setopt(multi.get(), CURLMOPT_MAXCONNECTS,
                          static_cast<long>(std::min<std::size_t>(options.max_idle_connections, 0x7fffffff)));
        curl_multi_setopt(multi.get(), CURLMOPT_PIPELINING, options.http2 ? CURLPIPE_MULTIPLEX : CURLPIPE_NOTHING);
    }

    // Thread-safe.
    void post(std::function<void()> task) {
        {
            std::lock_guard lock(mu);
            inbox.push_back(std::move(task));
            queued.store(inbox.size(), std::memory_order_relaxed);
        }
        wake();
    }
    void wake() noexcept {
        if (multi) curl_multi_wakeup(multi.get());
    }

    // Everything below runs on the loop's thread.
    std::size_t run_tasks() {
        std::vector<std::function<void()>> now;
        {
            std::lock_guard lock(mu);
            now.swap(inbox);
            queued.store(0, std::memory_order_relaxed);
        }
        for (auto& task : now) run_guarded(task);
        return now.size();
    }

    std::size_t fire_timers() {
        std::size_t fired = 0;
        const auto now = options.clock->now();
        while (!timer_queue.empty()) {
            auto first = timer_queue.begin();
            if (!closing && first->first.first > now) break;  // closing: every wait ends now
            std::function<void()> fn = std::move(first->second);
            timer_at.erase(first->first.second);
            timer_queue.erase(first);
            n_timers.store(timer_queue.size(), std::memory_order_relaxed);
            run_guarded(fn);
            ++fired;
        }
        return fired;
    }

    EventLoop::TimerId after(Clock::duration delay, std::function<void()> fn) {
        const EventLoop::TimerId id = next_timer++;
        const auto at = options.clock->now() + std::max(delay, Clock::duration::zero());
        timer_queue.emplace(std::make_pair(at, id), std::move(fn));
        timer_at.emplace(id, at);
        n_timers.store(timer_queue.size(), std::memory_order_relaxed);
        return id;
    }

    // By the timer's due time, found through timer_at: no walk over the other timers (every
    // answered hedged request cancels one).
    bool cancel_timer(EventLoop::TimerId id) noexcept {
        const auto at = timer_at.find(id);
        if (at == timer_at.end()) return false;
        timer_queue.erase(std::make_pair(at->second, id));
        timer_at.erase(at);
        n_timers.store(timer_queue.size(), std::memory_order_relaxed);
        return true;
    }

    // Completes a transfer that could not start: `done` runs at the next turn, never
    // inside send(), so a caller is never re-entered.
    void refuse(std::function<void(Result<HttpResponse>)> done, Failure f) {
        post([done = std::move(done), f = std::move(f)]() mutable { done(std::move(f)); });
    }

    void send(const CurlOptions& opt, HttpRequest req, const Deadline& d, std::function<void(Result<HttpResponse>)> done,
              std::unique_ptr<StreamSpec> spec = nullptr) {
        // The host names a failure; it is built only for one.
        auto host = [&req] { return std::string(url_host(req.url)); };
        if (closing) return refuse(std::move(done), Failure::of(Reason::cancelled, host() + ": the event loop is shutting down"));
        if (d.timeout.count() <= 0)
            return refuse(std::move(done), Failure::of(Reason::timeout, "no time left for an attempt to " + host()));
        auto t = std::make_unique<LoopTransfer>();
        t->req = std::move(req);
        t->d = d;
        t->options = &opt;
        if (auto bad = curl_headers(t->req, t->headers)) return refuse(std::move(done), std::move(*bad));
        if (d.stop.stop_requested())
            return refuse(std::move(done), Failure::of(Reason::cancelled, "cancelled before it was sent"));
        if (!spare.empty()) {
            t->easy = std::move(spare.back());
            spare.pop_back();
        } else {
            t->easy.reset(curl_easy_init());
        }
        if (!t->easy)
            return refuse(std::move(done), Failure::of(Reason::local_resource,
                                                       "could not create a transfer (out of memory); the request was not sent"));
        CURL* h = t->easy.get();
        t->call.response = &t->response;
        t->call.limit = opt.max_response_bytes;
        if (spec) {
            t->spec = std::move(spec);
            t->call.stream = t->spec.get();
            t->call.quiet_until = std::chrono::steady_clock::now() + d.timeout;  // the first progress
        }
        curl_configure(h, t->req, t->d, opt, t->headers.get(), t->call);
        curl_easy_setopt(h, CURLOPT_PRIVATE, static_cast<void*>(t.get()));
        if (options.http2) {
            // HTTP/2 over TLS only: cleartext h2 by prior knowledge breaks on connection reuse
            // in libcurl 7.88 (curl/curl#10634, fixed in 8.0.0), Debian 12's version.
            curl_easy_setopt(h, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
            // Over TLS, a burst waits for the first connection's ALPN answer and shares it
            // when it is HTTP/2, instead of opening a connection per request.
            if (t->req.url.size() > 8 && iequals(std::string_view(t->req.url).substr(0, 8), "https://"))
                curl_easy_setopt(h, CURLOPT_PIPEWAIT, 1L);
        } else {
            curl_easy_setopt(h, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
        }
        if (curl_multi_add_handle(multi.get(), h) != CURLM_OK) {
            recycle(std::move(t->easy));
            return refuse(std::move(done), Failure::of(Reason::local_resource,
                                                       "could not start a transfer to " + std::string(url_host(t->req.url)) +
                                                           "; the request was not sent"));
        }
        t->id = next_transfer++;
        t->done = std::move(done);
        LoopTransfer& ref = *t;
        if (ref.spec) streams.push_back(ref.id);
        live.emplace(t->id, std::move(t));
        n_transfers.store(live.size(), std::memory_order_relaxed);
        // Registered last: a stop already requested posts the cancel at once.
        ref.on_stop.emplace(ref.d.stop, CancelTransfer{this, ref.id});
    }

    void cancel_transfer(std::uint64_t id) {
        auto it = live.find(id);
        if (it == live.end()) return;  // it finished first
        Outcome out;
        out.cancelled = true;
        finish(*it->second, out);
    }

    // Moves transfers on: what libcurl says is done is judged and handed to its owner.
    std::size_t perform() {
        int running = 0;
        curl_multi_perform(multi.get(), &running);
        std::size_t done = 0;
        int left = 0;
        while (CURLMsg* msg = curl_multi_info_read(multi.get(), &left)) {
            if (msg->msg != CURLMSG_DONE) continue;
            void* p = nullptr;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &p);
            Outcome out;
            out.code = msg->data.result;
            finish(*static_cast<LoopTransfer*>(p), out);
            ++done;
        }
        return done;
    }

    // Ends the streams that went quiet past their limit; the time until the next may.
    std::chrono::milliseconds check_stalls() {
        if (streams.empty()) return std::chrono::milliseconds::max();
        const auto now = std::chrono::steady_clock::now();
        std::vector<std::uint64_t> stalled;
        auto next = std::chrono::steady_clock::time_point::max();
        for (const auto id : streams) {
            const auto it = live.find(id);
            if (it == live.end()) continue;
            const auto until = it->second->call.quiet_until;
            if (now >= until) stalled.push_back(id);
            else next = std::min(next, until);
        }
        for (const auto id : stalled) {
            Outcome out;
            out.stalled = true;
            if (auto it = live.find(id); it != live.end()) finish(*it->second, out);
        }
        if (next == std::chrono::steady_clock::time_point::max()) return std::chrono::milliseconds::max();
        return std::max(std::chrono::ceil<std::chrono::milliseconds>(next - now), std::chrono::milliseconds{1});
    }

    void finish(LoopTransfer& t, const Outcome& out) {
        if (t.spec) std::erase(streams, t.id);
        CURL* h = t.easy.get();
        curl_multi_remove_handle(multi.get(), h);
        t.on_stop.reset();  // waits for a cancel running on another thread (it only posts)
        Result<HttpResponse> r = [&]() -> Result<HttpResponse> {
            try {
                return curl_result(h, out, t.call, std::move(t.response), t.req, *t.options, t.d);
            } catch (const std::bad_alloc&) {
                return Failure::of(Reason::local_resource, "out of memory while receiving a response from " +
                                                               std::string(url_host(t.req.url)));
            }
        }();
        std::function<void(Result<HttpResponse>)> done = std::move(t.done);
        recycle(std::move(t.easy));
        live.erase(t.id);  // t is gone from here on
        n_transfers.store(live.size(), std::memory_order_relaxed);
        try {
            done(std::move(r));
        } catch (...) {  // a completion must not throw; nothing here can report it
        }
    }

    void recycle(CurlEasyPtr easy) noexcept {
        if (!easy) return;
        curl_easy_reset(easy.get());
        if (spare.size() < max_spare) {
            try {
                spare.push_back(std::move(easy));
            } catch (...) {
            }
        }
    }

    std::size_t turn(std::chrono::milliseconds max_wait) {
        std::size_t n = run_tasks() + fire_timers() + perform();
        const auto stall_in = check_stalls();
        if (n > 0 || queued.load(std::memory_order_relaxed) > 0) return n + run_tasks();
        auto wait = std::min(std::max(max_wait, std::chrono::milliseconds::zero()), stall_in);
        if (!timer_queue.empty()) {
            const auto until = std::chrono::ceil<std::chrono::milliseconds>(timer_queue.begin()->first.first -
                                                                            options.clock->now());
            wait = std::clamp(until, std::chrono::milliseconds::zero(), wait);
        }
        if (wait.count() > 0) {
            const int ms = static_cast<int>(std::min<std::chrono::milliseconds::rep>(wait.count(), 0x7fffffff));
            curl_multi_poll(multi.get(), nullptr, 0, ms, nullptr);
        }
        n += run_tasks() + fire_timers() + perform();
        check_stalls();
        return n;
    }

    // Ends everything still running: transfers as cancelled, waits at once, so each owner
    // hears back (and, seeing closing, does not start anything new).
    void close() {
        closing = true;
        for (int round = 0; round < 1000; ++round) {
            std::vector<std::uint64_t> ids;
            ids.reserve(live.size());
            for (const auto& [id, t] : live) ids.push_back(id);
            for (auto id : ids) cancel_transfer(id);
            if (run_tasks() + fire_timers() == 0 && live.empty()) break;
        }
    }

    static void run_guarded(std::function<void()>& fn) noexcept {
        try {
            fn();
        } catch (...) {  // a task must not throw; nothing here can report it
        }
    }

    static constexpr std::size_t max_spare = 256;

    EventLoopOptions options;
    CurlMultiPtr multi{};
    std::mutex mu{};
    std::vector<std::function<void()>> inbox{};  // guarded by mu
    std::atomic<std::size_t> queued{0};
    std::atomic<std::size_t> n_transfers{0};
    std::atomic<std::size_t> n_timers{0};
    std::map<std::pair<Clock::time_point, EventLoop::TimerId>, std::function<void()>> timer_queue{};
    std::unordered_map<EventLoop::TimerId, Clock::time_point> timer_at{};  // the due time of each pending timer
    EventLoop::TimerId next_timer = 1;
    std::uint64_t next_transfer = 1;
    std::unordered_map<std::uint64_t, std::unique_ptr<LoopTransfer>> live{};
    std::vector<std::uint64_t> streams{};  // the live transfers that stream (their stalls are timed here)
    std::vector<CurlEasyPtr> spare{};
    std::atomic<bool> driving{false};
    bool closing = false;
    std::atomic<bool> stop_thread{false};
    std::thread thread{};
};

inline void CancelTransfer::operator()() const noexcept {
    try {
        EventLoopState* l = loop;
        const std::uint64_t i = id;
        l->post([l, i] { l->cancel_transfer(i); });
    } catch (...) {  // out of memory: the transfer ends by its own timeout
    }
}

/// Marks the loop as driven by this thread for the scope; a second driver is a logic error.
class DrivingGuard {
public:
    explicit DrivingGuard(std::atomic<bool>& flag) : flag_(flag) {
        if (flag_.exchange(true))
            throw std::logic_error("failover: EventLoop is already driven by another thread (run_once or start)");
    }
    ~DrivingGuard() { flag_.store(false); }
    DrivingGuard(const DrivingGuard&) = delete;
    DrivingGuard& operator=(const DrivingGuard&) = delete;

private:
    std::atomic<bool>& flag_;
};

}  // namespace detail

FAILOVER_INLINE EventLoop::EventLoop(EventLoopOptions options)
    : s_(std::make_unique<detail::EventLoopState>(std::move(options))) {}

FAILOVER_INLINE EventLoop::~EventLoop() {
    stop();
    detail::DrivingGuard guard(s_->driving);
    s_->close();
}

FAILOVER_INLINE void EventLoop::post(std::function<void()> task) { s_->post(std::move(task)); }
FAILOVER_INLINE void EventLoop::wake() noexcept { s_->wake(); }

FAILOVER_INLINE std::size_t EventLoop::run_once(std::chrono::milliseconds max_wait) {
    detail::DrivingGuard guard(s_->driving);
    return s_->turn(max_wait);
}

FAILOVER_INLINE void EventLoop::start() {
    if (s_->thread.joinable()) return;
    if (s_->driving.exchange(true))
        throw std::logic_error("failover: EventLoop::start while another thread drives the loop");
    s_->stop_thread.store(false);
    detail::EventLoopState* s = s_.get();
    try {
        s_->thread = std::thread([s] {
            while (!s->stop_thread.load()) s->turn(std::chrono::milliseconds{1000});
            s->driving.store(false);
        });
    } catch (...) {
        s_->driving.store(false);
        throw;
    }
}

FAILOVER_INLINE void EventLoop::stop() {
    if (!s_->thread.joinable()) return;
    s_->stop_thread.store(true);
    s_->wake();
    s_->thread.join();
}

FAILOVER_INLINE std::size_t EventLoop::transfers() const noexcept { return s_->n_transfers.load(std::memory_order_relaxed); }
FAILOVER_INLINE std::size_t EventLoop::timers() const noexcept { return s_->n_timers.load(std::memory_order_relaxed); }
FAILOVER_INLINE bool EventLoop::idle() const noexcept {
    return transfers() == 0 && timers() == 0 && s_->queued.load(std::memory_order_relaxed) == 0;
}
FAILOVER_INLINE std::optional<Clock::time_point> EventLoop::next_due() const {
    if (s_->timer_queue.empty()) return std::nullopt;
    return s_->timer_queue.begin()->first.first;
}
FAILOVER_INLINE Clock& EventLoop::clock() const noexcept { return *s_->options.clock; }
FAILOVER_INLINE bool EventLoop::closing() const noexcept { return s_->closing; }

FAILOVER_INLINE EventLoop::TimerId EventLoop::after(Clock::duration delay, std::function<void()> fn) {
    return s_->after(delay, std::move(fn));
}
FAILOVER_INLINE bool EventLoop::cancel(TimerId id) noexcept { return s_->cancel_timer(id); }
FAILOVER_INLINE void EventLoop::stream(const CurlOptions& options, HttpRequest req, const Deadline& d, StreamSpec spec,
                                       std::function<void(Result<HttpResponse>)> done) {
    s_->send(options, std::move(req), d, std::move(done), std::make_unique<StreamSpec>(std::move(spec)));
}

FAILOVER_INLINE void EventLoop::send(const CurlOptions& options, HttpRequest req, const Deadline& d,
                                     std::function<void(Result<HttpResponse>)> done) {
    s_->send(options, std::move(req), d, std::move(done));
}

FAILOVER_END_NAMESPACE
