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
#include <type_traits>
#include <utility>
#include <vector>

#include "failover/detail/engine/admission.hpp"
#include "failover/detail/engine/chain.hpp"
#include "failover/detail/engine/exchange.hpp"
#include "failover/detail/engine/request_state.hpp"
#include "failover/detail/engine/streaming.hpp"
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
    virtual Order finish(Result<ChatResponse> outcome, bool committed, bool racing) = 0;
    virtual const std::string& route_name() const noexcept = 0;
    virtual const ChatRequest& request() const noexcept = 0;
    virtual std::optional<std::chrono::milliseconds> hedge_after() const noexcept = 0;
    virtual bool spend_hedge() noexcept = 0;
    /// Starts the planned attempt's exchange; `done` runs later on the loop's thread, once.
    virtual void exchange(EventLoop& loop, const Deadline& d, std::function<void(Result<ChatResponse>)> done) = 0;
    /// The same, streamed: deltas go to `out` as they are decoded (a route that cannot
    /// stream answers whole).
    virtual void exchange_stream(EventLoop& loop, const Deadline& d, StreamDelivery& out,
                                 std::function<void(Result<ChatResponse>)> done) = 0;
};

template <class R>
class AsyncVisit final : public AsyncVisitBase {
public:
    AsyncVisit(R& route, RequestState& rs) : route_(route), rs_(rs), visit_(route, rs) {}
    bool begin() override { return visit_.begin(); }
    Order plan() override { return visit_.plan(); }
    Order finish(Result<ChatResponse> outcome, bool committed, bool racing) override {
        return visit_.finish(std::move(outcome), committed, racing);
    }
    const std::string& route_name() const noexcept override { return visit_.route_name(); }
    const ChatRequest& request() const noexcept override { return visit_.request(); }
    std::optional<std::chrono::milliseconds> hedge_after() const noexcept override { return visit_.hedge_after(); }
    bool spend_hedge() noexcept override { return visit_.spend_hedge(); }

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

    void exchange_stream(EventLoop& loop, const Deadline& d, StreamDelivery& out,
                         std::function<void(Result<ChatResponse>)> done) override {
        if constexpr (streams_answers<R> && runs_on_loop<R>) {
            Result<HttpRequest> http = Failure::of(Reason::internal, "unknown exception");
            try {
                x_ = std::make_unique<StreamExchange<R>>(route_, visit_.request(), out, rs_);
                http = x_->encode();
            } catch (const std::exception& e) {
                http = thrown(e);
            } catch (...) {
            }
            if (!http) return later(loop, std::move(done), std::move(http).error());
            // The exchange outlives its transfer: the call holding this visit is kept alive by `done`.
            loop.stream(route_.transport().options(), std::move(*http), d, x_->spec(),
                        [this, done = std::move(done)](Result<HttpResponse> res) mutable {
                            Result<ChatResponse> r = Failure::of(Reason::internal, "unknown exception");
                            try {
                                r = x_->end(std::move(res));
                            } catch (const std::exception& e) {
                                r = thrown(e);
                            } catch (...) {
                            }
                            done(std::move(r));
                        });
        } else {
            exchange(loop, d, std::move(done));
        }
    }

private:
    static void later(EventLoop& loop, std::function<void(Result<ChatResponse>)> done, Result<ChatResponse> r) {
        loop.post([done = std::move(done), r = std::move(r)]() mutable { done(std::move(r)); });
    }

    R& route_;
    RequestState& rs_;
    RouteVisit<R> visit_;
    // The current attempt's streamed exchange (named only for routes that stream).
    std::unique_ptr<std::conditional_t<streams_answers<R>, StreamExchange<R>, int>> x_{};
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
              std::shared_ptr<MetricsSink> sink, std::uint64_t seed, Mode mode, AsyncDone done,
              std::unique_ptr<StreamDelivery> out)
        : loop_(loop), chain_(chain), req_(std::move(req)), shared_(shared), sink_(std::move(sink)), seed_(seed),
          mode_(std::move(mode)), done_(std::move(done)), out_(std::move(out)) {}

    /// Hands the request to the loop (any thread); its completion runs on the loop's thread.
    /// `out`: a stream (mode.streaming), whose events reach the caller on the loop's thread.
    static void start(EventLoop& loop, AsyncChain chain, ChatRequest req, const AsyncShared& shared,
                      std::shared_ptr<MetricsSink> sink, std::uint64_t seed, Mode mode, AsyncDone done,
                      std::unique_ptr<StreamDelivery> out = nullptr) {
        auto call = std::make_shared<AsyncCall>(loop, chain, std::move(req), shared, std::move(sink), seed,
                                                std::move(mode), std::move(done), std::move(out));
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
        reached_ = 0;
        next_route();
    }

    // One route's visit in progress; two at once while a hedge races the route it hedges.
    struct Leg {
        int id = 0;
        std::size_t position = 0;
        std::unique_ptr<AsyncVisitBase> visit{};
        std::optional<std::stop_source> stop{};  // this attempt's own cancel (the loser of a race)
        bool in_flight = false;
        bool hedged = false;  // a hedge was armed for this visit (one per visit)
    };

    Leg* leg(int id) noexcept {
        for (auto& l : legs_)
            if (l.id == id) return &l;
        return nullptr;
    }
    void drop(int id) {
        for (auto it = legs_.begin(); it != legs_.end(); ++it)
            if (it->id == id) {
                reached_ = std::max(reached_, it->position);
                legs_.erase(it);
                return;
            }
    }
    int start_leg(std::size_t position, std::unique_ptr<AsyncVisitBase> visit) {
        Leg l;
        l.id = next_leg_++;
        l.position = position;
        l.visit = std::move(visit);
        legs_.push_back(std::move(l));
        return legs_.back().id;
    }

    // Visits routes from rs.position on until one begins; past the end, the pass is over.
    void next_route() {
        for (; rs_->position < chain_.size; ++rs_->position) {
            auto v = chain_.visit(chain_.routes, rs_->position, *rs_);
            if (v->begin()) return attempt(start_leg(rs_->position, std::move(v)));
            reached_ = rs_->position;
        }
        end_pass(Step::next);
    }

    void attempt(int id) {
        Leg* l = leg(id);
        const Order o = l->visit->plan();
        if (o.action != Action::send) return leg_done(id, o.step);
        l->stop.emplace();
        Deadline d = o.deadline;
        d.stop = l->stop->get_token();
        l->in_flight = true;
        arm_hedge(*l);
        auto self = shared_from_this();
        auto then = [self, id](Result<ChatResponse> r) { self->guard([&] { self->outcome(id, std::move(r)); }); };
        if (out_) {
            out_->begin(l->visit->route_name(), static_cast<bool>(l->visit->request().schema));
            l->visit->exchange_stream(loop_, d, *out_, std::move(then));
        } else {
            l->visit->exchange(loop_, d, std::move(then));
        }
    }

    // The first attempt of a route with hedge_after set: a timer to start the next route.
    // Streams are not hedged: two legs would interleave their deltas.
    void arm_hedge(Leg& l) {
        if (out_ || l.hedged || legs_.size() > 1 || hedge_timer_) return;
        const auto after = l.visit->hedge_after();
        if (!after || l.position + 1 >= chain_.size) return;
        l.hedged = true;
        auto self = shared_from_this();
        hedge_timer_ = loop_.after(*after, [self, id = l.id] {
            self->hedge_timer_.reset();
            self->guard([&] { self->hedge(id); });
        });
    }

    // The hedge delay passed with leg `id` still waiting: the next route that is eligible
    // starts beside it, if the hedged route's retry budget pays for it.
    void hedge(int id) {
        Leg* l = leg(id);
        if (!l || !l->in_flight || legs_.size() > 1 || settling_ || loop_.closing()) return;
        const std::string& from = l->visit->route_name();
        const std::size_t here = l->position;
        for (std::size_t p = here + 1; p < chain_.size; ++p) {
            rs_->position = p;  // the share of the deadline is counted from here
            auto v = chain_.visit(chain_.routes, p, *rs_);
            if (!v->begin()) {
                reached_ = std::max(reached_, p);  // skipped (and reported) once in this pass
                continue;
            }
            if (!leg(id)->visit->spend_hedge()) break;  // no budget: no second request
            rs_->pending_from = &from;
            rs_->pending_reason = Reason::timeout;  // the hop's reason: the route was slow
            rs_->position = here;
            return attempt(start_leg(p, std::move(v)));
        }
        rs_->position = here;
    }

    void outcome(int id, Result<ChatResponse> r) {
        Leg* l = leg(id);
        if (!l) return;
        l->in_flight = false;
        if (completed_) {  // ended early (a hook threw): still one attempt and one metric, then gone
            (void)l->visit->finish(r ? Result<ChatResponse>(Failure::of(Reason::cancelled, "the request had ended"))
                                     : std::move(r),
                                   false, true);
            return drop(id);
        }
        if (hedge_timer_ && legs_.size() == 1) {  // answered before the hedge was due
            loop_.cancel(*hedge_timer_);
            hedge_timer_.reset();
        }
        if (settling_) {
            // The loser of a race (or the other leg of a stopped request): listed, never the answer.
            if (*settling_ == Step::answered && (r || r.error().reason == Reason::cancelled))
                r = Failure::of(Reason::cancelled, "a hedged attempt on another route answered first");
            else if (r)
                r = Failure::of(Reason::cancelled, "the request had ended");
            (void)l->visit->finish(std::move(r), false, true);
            drop(id);
            return settle();
        }
        const bool racing = std::any_of(legs_.begin(), legs_.end(), [&](const Leg& o) { return o.id != id && o.in_flight; });
        if (!racing) {
            const bool committed = out_ && out_->committed();
            const bool failed = !r;
            const Reason reason = failed ? r.error().reason : Reason::internal;
            const Order o = l->visit->finish(std::move(r), committed, false);
            if (out_) after_stream_attempt(l->visit->route_name(), *rs_, *out_, committed, failed, reason, o);
            switch (o.action) {
                case Action::wait_then: return wait(o.wait, [this, id] { attempt(id); });
                case Action::again: return attempt(id);
                case Action::send:
                case Action::done: return leg_done(id, o.step);
            }
            return;
        }
        const Order o = l->visit->finish(std::move(r), false, true);
        drop(id);
        if (o.step == Step::answered || o.step == Step::stop) {
            // Won (or stopped): the other transfer is cancelled and listed before the end.
            settling_ = o.step;
            rs_->settled = true;
            if (o.step == Step::stop) settled_failure_ = rs_->last_failure;
            for (auto& other : legs_)
                if (other.in_flight && other.stop) other.stop->request_stop();
            return;
        }
        // This leg failed over; the other goes on alone and the chain resumes after both.
    }

    // Every leg of a settled race has ended: the answer gets the late attempts, or the stop
    // keeps its own failure.
    void settle() {
        if (!legs_.empty()) return;
        const Step step = *settling_;
        settling_.reset();
        if (step == Step::answered && rs_->answer) {
            for (auto& a : rs_->attempts) rs_->answer->attempts.push_back(std::move(a));
            rs_->attempts.clear();
        } else if (settled_failure_) {
            rs_->last_failure = std::move(settled_failure_);
        }
        settled_failure_.reset();
        end_pass(step);
    }

    void leg_done(int id, Step step) {
        drop(id);
        if (!legs_.empty()) return;  // a racing leg goes on
        rs_->position = reached_ + 1;
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
        for (auto& l : legs_)
            if (l.in_flight && l.stop) l.stop->request_stop();
        if (!timer_ || !loop_.cancel(*timer_)) return;
        timer_.reset();
        std::exchange(then_, nullptr)();
    }

    void complete(Result<ChatResponse> r) {
        if (completed_) return;
        completed_ = true;
        if (rs_) rs_->settled = true;
        on_stop_.reset();
        if (timer_) loop_.cancel(*timer_);
        if (hedge_timer_) loop_.cancel(*hedge_timer_);
        // A leg still in flight keeps its visit until its transfer returns (see outcome()).
        for (auto& l : legs_)
            if (l.in_flight && l.stop) l.stop->request_stop();
        std::erase_if(legs_, [](const Leg& l) { return !l.in_flight; });
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
    std::unique_ptr<StreamDelivery> out_{};  // a stream: what reaches the caller
    std::optional<RequestState> rs_{};
    std::optional<Admission::Slot> slot_{};
    std::optional<Clock::time_point> admit_until_{};
    std::vector<Leg> legs_{};
    int next_leg_ = 1;
    std::size_t reached_ = 0;                   // the furthest route visited in this pass
    std::optional<Step> settling_{};            // a race ended: waiting for the other leg
    std::optional<Failure> settled_failure_{};  // the stop that ended it
    std::optional<EventLoop::TimerId> hedge_timer_{};
    std::optional<EventLoop::TimerId> timer_{};
    std::function<void()> then_{};
    std::optional<std::stop_callback<std::function<void()>>> on_stop_{};
    int passes_ = 0;
    bool completed_ = false;
};

}  // namespace detail::engine
FAILOVER_END_NAMESPACE
