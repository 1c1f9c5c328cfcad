// SPDX-License-Identifier: MIT
// The async driver: a request walks the chain on an EventLoop's thread, one
// step per event, with no thread of its own. It asks the same RouteVisit and
// chain.hpp as the blocking driver for every decision; where the blocking driver
// sleeps it sets a timer, and where it calls the transport it starts a transfer
// on the loop and returns. An AsyncCall owns the request (a copy) and its
// state; whatever it waits for (a transfer, a timer, a posted task) holds it
// alive, and it ends exactly once, with the answer or the request's one Failure.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <utility>

#include "failover/detail/engine/admission.hpp"
#include "failover/detail/engine/chain.hpp"
#include "failover/detail/engine/exchange.hpp"
#include "failover/detail/engine/request_state.hpp"
#include "failover/detail/engine/visit.hpp"
#include "failover/event_loop.hpp"
#include "failover/failure.hpp"
#include "failover/metrics.hpp"
#include "failover/request.hpp"
#include "failover/response.hpp"
#include "failover/router_options.hpp"
#include "failover/transport/curl.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE
namespace detail::engine {

/// True for a route the async driver can run: a local one, or one over a CurlTransport
/// (whose options the EventLoop's transfer uses).
template <class R>
inline constexpr bool runs_on_loop = !R::is_http || std::same_as<typename R::transport_type, CurlTransport>;

/// One route's visit as the async driver runs it, whatever the route's type.
class AsyncVisitBase {
public:
    virtual ~AsyncVisitBase() = default;
    virtual bool begin() = 0;
    virtual Order plan() = 0;
    virtual Order finish(Result<ChatResponse> outcome) = 0;
    /// Starts the planned attempt's exchange; `done` runs later on the loop's thread, once.
    virtual void exchange(EventLoop& loop, const Deadline& d, std::function<void(Result<ChatResponse>)> done) = 0;
};

template <class R>
class AsyncVisit final : public AsyncVisitBase {
public:
    AsyncVisit(R& route, RequestState& rs) : route_(route), rs_(rs), visit_(route, rs) {}
    bool begin() override { return visit_.begin(); }
    Order plan() override { return visit_.plan(); }
    Order finish(Result<ChatResponse> outcome) override { return visit_.finish(std::move(outcome)); }

    void exchange(EventLoop& loop, const Deadline& d, std::function<void(Result<ChatResponse>)> done) override {
        if constexpr (!R::is_http) {
            later(loop, std::move(done), perform(route_, visit_.request(), d, [this] { return rs_.clock.wall_now(); }));
        } else if constexpr (runs_on_loop<R>) {
            Result<HttpRequest> http = prepare(route_.adapter(), visit_.request());
            if (!http) return later(loop, std::move(done), std::move(http).error());
            // The visit outlives its transfer: the call holding it is kept alive by `done`.
            loop.send(route_.transport().options(), std::move(*http), d,
                      [this, done = std::move(done)](Result<HttpResponse> res) mutable {
                          std::chrono::system_clock::time_point wall{};
                          try {
                              wall = rs_.clock.wall_now();
                          } catch (...) {  // a Retry-After date is then read against the epoch
                          }
                          done(interpret(route_.adapter(), visit_.request(), std::move(res), wall));
                      });
        } else {
            later(loop, std::move(done),
                  Failure::of(Reason::internal, "route '" + route_.name() +
                                                    "': its transport cannot run on an EventLoop (use CurlTransport); "
                                                    "nothing was sent"));
        }
    }

private:
    static void later(EventLoop& loop, std::function<void(Result<ChatResponse>)> done, Result<ChatResponse> r) {
        loop.post([done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
    }

    R& route_;
    RequestState& rs_;
    RouteVisit<R> visit_;
};

/// The routes of a chain as the async driver sees them: visit i of `routes`.
struct AsyncChain {
    void* routes = nullptr;
    std::size_t size = 0;
    std::unique_ptr<AsyncVisitBase> (*visit)(void* routes, std::size_t i, RequestState& rs) = nullptr;
};

using AsyncDone = std::function<void(Result<ChatResponse>)>;

/// What an async request shares with its router (which outlives it).
struct AsyncShared {
    const RouterOptions& opts;
    std::atomic<std::uint64_t>& sink_errors;
    std::span<const double> weights;
    ToolSchemas& tools;
    Admission& admission;
};

/// One request on the loop, from admission to its completion.
class AsyncCall : public std::enable_shared_from_this<AsyncCall> {
public:
    AsyncCall(EventLoop& loop, AsyncChain chain, ChatRequest req, const AsyncShared& shared,
              std::shared_ptr<MetricsSink> sink, std::uint64_t seed, Mode mode, AsyncDone done)
        : loop_(loop), chain_(chain), req_(std::move(req)), shared_(shared), sink_(std::move(sink)), seed_(seed),
          mode_(std::move(mode)), done_(std::move(done)) {}

    /// Hands the request to the loop (any thread); its completion runs on the loop's thread.
    static void start(EventLoop& loop, AsyncChain chain, ChatRequest req, const AsyncShared& shared,
                      std::shared_ptr<MetricsSink> sink, std::uint64_t seed, Mode mode, AsyncDone done) {
        auto call = std::make_shared<AsyncCall>(loop, chain, std::move(req), shared, std::move(sink), seed,
                                                std::move(mode), std::move(done));
        loop.post([call] { call->guard([&] { call->begin(); }); });
    }

private:
    // Runs one step; whatever a user hook throws ends the request as an internal Failure.
    template <class F>
    void guard(F&& step) noexcept {
        try {
            try {
                step();
            } catch (const std::exception& e) {
                fail(thrown(e));
            } catch (...) {
                fail(Failure::of(Reason::internal, "unknown exception"));
            }
        } catch (...) {  // out of memory while failing: the completion cannot be built
        }
    }
    void fail(Failure f) {
        if (rs_) f.attempts = std::move(rs_->attempts);
        complete(std::move(f));
    }

    void begin() {
        if (auto bad = check_request(req_)) return complete(std::move(*bad));
        rs_.emplace(req_, shared_.opts, sink_.get(), shared_.sink_errors, seed_, shared_.weights);
        if (auto bad = set_up(*rs_, shared_.tools, mode_)) return complete(std::move(*bad));
        if (mode_.stop.stop_possible()) {
            std::weak_ptr<AsyncCall> weak = weak_from_this();
            EventLoop* loop = &loop_;
            on_stop_.emplace(mode_.stop, std::function<void()>([weak, loop] {
                                 loop->post([weak] {
                                     if (auto self = weak.lock()) self->guard([&] { self->stopped(); });
                                 });
                             }));
        }
        admit();
    }

    // A slot of the router's admission limit, or a wait for one (checked every few ms, up to
    // the admission wait), or the local Failure of none.
    void admit() {
        if (Admission::Slot slot = shared_.admission.try_enter()) {
            slot_.emplace(std::move(slot));
            return pass();
        }
        const auto now = rs_->clock.now();
        if (!admit_until_) admit_until_ = now + admission_wait(*rs_);
        if (rs_->stop.stop_requested() || now >= *admit_until_ || loop_.closing())
            return complete(not_admitted(*rs_, shared_.admission, *admit_until_ - rs_->start));
        wait(std::min<Clock::duration>(*admit_until_ - now, std::chrono::milliseconds{5}), [this] { admit(); });
    }

    void pass() {
        if (auto cancelled = before_pass(*rs_)) return complete(std::move(*cancelled));
        next_route();
    }

    // Visits routes from rs.position on until one begins; past the end, the pass is over.
    void next_route() {
        while (rs_->position < chain_.size) {
            visit_ = chain_.visit(chain_.routes, rs_->position, *rs_);
            if (visit_->begin()) return attempt();
            visit_.reset();
            ++rs_->position;
        }
        end_pass(Step::next);
    }

    void attempt() {
        const Order o = visit_->plan();
        if (o.action != Action::send) return route_done(o.step);
        auto self = shared_from_this();
        visit_->exchange(loop_, o.deadline, [self](Result<ChatResponse> r) {
            self->guard([&] { self->outcome(std::move(r)); });
        });
    }

    void outcome(Result<ChatResponse> r) {
        const Order o = visit_->finish(std::move(r));
        switch (o.action) {
            case Action::wait_then: return wait(o.wait, [this] { attempt(); });
            case Action::again: return attempt();
            case Action::send:
            case Action::done: return route_done(o.step);
        }
    }

    void route_done(Step step) {
        visit_.reset();
        ++rs_->position;
        if (step == Step::next) return next_route();
        end_pass(step);
    }

    void end_pass(Step step) {
        PassEnd end = after_pass(*rs_, step, passes_++);
        if (end.result) return complete(std::move(*end.result));
        wait(end.wait, [this] { pass(); });
    }

    // Waits `d` on the loop's timer, then runs `then`; a stop request cuts the wait short
    // (`then` sees the stop), and a loop being destroyed ends the request as cancelled.
    void wait(Clock::duration d, std::function<void()> then) {
        if (loop_.closing()) return fail(Failure::of(Reason::cancelled, "the event loop was destroyed"));
        then_ = std::move(then);
        auto self = shared_from_this();
        timer_ = loop_.after(d, [self] {
            self->timer_.reset();
            self->guard([&] { std::exchange(self->then_, nullptr)(); });
        });
    }

    void stopped() {
        if (!timer_ || !loop_.cancel(*timer_)) return;  // a transfer in flight ends on its own stop
        timer_.reset();
        std::exchange(then_, nullptr)();
    }

    void complete(Result<ChatResponse> r) {
        if (completed_) return;
        completed_ = true;
        on_stop_.reset();
        if (timer_) loop_.cancel(*timer_);
        visit_.reset();
        slot_.reset();  // the next request may start
        try {
            done_(std::move(r));
        } catch (...) {
            shared_.sink_errors.fetch_add(1, std::memory_order_relaxed);
        }
    }

    EventLoop& loop_;
    AsyncChain chain_;
    ChatRequest req_;  // before rs_, which refers to it
    AsyncShared shared_;
    std::shared_ptr<MetricsSink> sink_;
    std::uint64_t seed_;
    Mode mode_;
    AsyncDone done_;
    std::optional<RequestState> rs_{};
    std::optional<Admission::Slot> slot_{};
    std::optional<Clock::time_point> admit_until_{};
    std::unique_ptr<AsyncVisitBase> visit_{};
    std::optional<EventLoop::TimerId> timer_{};
    std::function<void()> then_{};
    std::optional<std::stop_callback<std::function<void()>>> on_stop_{};
    int passes_ = 0;
    bool completed_ = false;
};

}  // namespace detail::engine
FAILOVER_END_NAMESPACE
