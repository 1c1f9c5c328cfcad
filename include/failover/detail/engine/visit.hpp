// SPDX-License-Identifier: MIT
// One visit of one route by one request, as every driver runs it:
//   begin()   eligibility; a skip is reported and the visit ends
//   plan()    before each attempt: a breaker permit and the attempt's timeout
//   (the driver performs the exchange, however it waits)
//   finish()  the outcome: gates, the attempt recorded, the breaker told (one
//             table), budgets charged, events emitted, and the decision (retry
//             after a wait, repair, fail over, stop, answered)
// The visit keeps the books and asks decide.hpp what to do; it never waits and
// never does I/O, so the blocking, streaming and async drivers share it.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "failover/adapter.hpp"
#include "failover/breaker.hpp"
#include "failover/detail/engine/decide.hpp"
#include "failover/detail/engine/gates.hpp"
#include "failover/detail/engine/request_state.hpp"
#include "failover/failure.hpp"
#include "failover/metrics.hpp"
#include "failover/request.hpp"
#include "failover/response.hpp"
#include "failover/transport.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE
namespace detail::engine {

/// How a visit (or a whole pass) ended.
enum class Step { next, answered, stop };

/// What the driver does after plan() or finish().
enum class Action {
    send,       ///< (plan) perform the exchange within `deadline`
    wait_then,  ///< (finish) wait `wait`, then plan the next attempt
    again,      ///< (finish) plan the next attempt at once (a repair turn)
    done,       ///< the visit is over with `step`
};

struct Order {
    Action action = Action::done;
    Step step = Step::next;
    Deadline deadline{};
    std::chrono::nanoseconds wait{};
};

template <class R>
class RouteVisit {
public:
    RouteVisit(R& route, RequestState& rs) : route_(route), rs_(rs), o_(route.options()) {}
    ~RouteVisit() { settle(std::exchange(hold_, std::nullopt), 0.0); }  // a visit cut short holds nothing
    RouteVisit(const RouteVisit&) = delete;
    RouteVisit& operator=(const RouteVisit&) = delete;

    /// Eligibility. False: the route is skipped (reported) and the visit is over.
    bool begin() {
        is_first_ = !rs_.first_route_seen;
        rs_.first_route_seen = true;
        if (is_first_) rs_.first_route = &route_.name();
        const auto now = rs_.clock.now();
        const ChainFacts chain{rs_.req, rs_.policy_floor, rs_.min_window};
        auto affordable = [&](double estimate) {
            return !rs_.opts.budgets || rs_.opts.budgets->affords(rs_.req.tenant, estimate, rs_.clock.wall_now());
        };
        // Approval is judged before the rest, so a request no route may see says so.
        const bool data_ok = approved(o_, rs_.req);
        if (data_ok && !(rs_.policy_floor && o_.safety_level < *rs_.policy_floor)) rs_.any_approved = true;
        auto room = [&](std::int64_t tokens) { return route_.rate_limiter().room(now, tokens); };
        if (auto skip = eligibility(o_, R::is_http, chain, now, route_.cooldown_until(), rs_.deadline,
                                    [&] { return rs_.tokens(); }, affordable, room)) {
            if (skip->recovers_at) note_recovery(*skip->recovers_at, skip->reason);
            skip_route(skip->reason, std::move(skip->message));
            return false;
        }
        end_ = route_end(o_, R::is_http, now, rs_.deadline, rs_.weight_from_here());
        notice_schema();
        return true;
    }

    /// Before attempt n: a breaker permit and the deadline, or the end of the visit.
    Order plan() {
        ++n_;
        const auto now = rs_.clock.now();
        auto acq = route_.breaker().try_acquire(now);
        report(acq.transition);
        permit_ = acq.permit;
        if (permit_ == CircuitBreaker::Permit::denied) {
            if (n_ == 1) {
                // Forced open, or half-open with its probe busy: no recovery time to wait for.
                if (const auto at = route_.breaker().recovers_at(); at && *at > now) note_recovery(*at, Reason::breaker_open);
                skip_route(Reason::breaker_open, "circuit breaker is open");
            }
            return {Action::done, Step::next, {}, {}};  // opened while we were retrying: fail over
        }
        if (rs_.stop.stop_requested() || now >= rs_.deadline) {
            route_.breaker().release(permit_);
            Failure f = rs_.stop.stop_requested()
                            ? Failure::of(Reason::cancelled, "cancelled by the caller")
                            : Failure::of(Reason::deadline_exceeded, "no time left in the chain's deadline");
            f.route = route_.name();
            rs_.last_failure = std::move(f);
            return {Action::done, Step::stop, {}, {}};
        }
        Deadline d{};
        d.stop = rs_.stop;
        if constexpr (R::is_http) {
            const auto t = attempt_time(o_, now, end_);
            if (!t) {
                route_.breaker().release(permit_);
                if (n_ == 1) skip_route(Reason::insufficient_time, "too little of the deadline is left for this route");
                return {Action::done, Step::next, {}, {}};
            }
            // A stream is timed to its first token; after that only its gaps are limited.
            d.timeout = rs_.streaming ? std::min(*t, o_.first_token_timeout) : *t;
            d.connect_timeout = std::min(o_.connect_timeout, d.timeout);
        }
        if (rs_.opts.budgets && !o_.price.free()) {
            // The check and the hold are one step: two requests of a tenant cannot both take
            // the last of its budget (begin() only looked). Before the rate limit's take, so
            // a refusal here wastes no rate room.
            std::optional<double> h;
            try {
                h = rs_.opts.budgets->reserve(rs_.req.tenant, cost_estimate(o_, rs_.req, [&] { return rs_.tokens(); }),
                                              rs_.clock.wall_now());
            } catch (...) {  // a store that fails is not the tenant's fault: go on, unheld
                rs_.sink_errors.fetch_add(1, std::memory_order_relaxed);
                h = 0.0;
            }
            if (!h) {
                route_.breaker().release(permit_);
                if (n_ == 1) skip_route(Reason::budget_exceeded, "tenant '" + rs_.req.tenant + "' cannot afford this route");
                return {Action::done, Step::next, {}, {}};
            }
            hold_ = *h;
        }
        if (o_.rate_limit.any()) {
            // Another request may have taken the room begin() saw.
            const auto r = route_.rate_limiter().take(now, rate_tokens(o_, rs_.req, [&] { return rs_.tokens(); }));
            if (!r.now) {
                route_.breaker().release(permit_);
                settle(std::exchange(hold_, std::nullopt), 0.0);  // the hold goes with the call
                if (n_ == 1) {
                    if (r.at) note_recovery(*r.at, Reason::local_rate_limit);
                    skip_route(Reason::local_rate_limit, "at its own rate limit until there is room again");
                }
                return {Action::done, Step::next, {}, {}};
            }
        }
        granted_ = d.timeout;
        in_flight_.emplace(route_);
        if (n_ == 1) {
            ++rs_.tried_this_pass;
            if (rs_.pending_from)
                rs_.emit(FallbackEvent{*rs_.pending_from, route_.name(), rs_.pending_reason, rs_.req.tenant});
        }
        t0_ = now;
        return {Action::send, Step::next, d, {}};
    }

    /// Hedging (RouteOptions::hedge_after, hedge_percentile): the delay, and whether the retry
    /// budget pays for a hedge now (as for a retry after a timeout, so an outage cannot double
    /// the traffic).
    std::optional<std::chrono::milliseconds> hedge_after() const noexcept {
        if (o_.hedge_percentile)
            if (const auto q = route_.answer_latency(*o_.hedge_percentile))
                return std::max(std::chrono::milliseconds{1}, std::chrono::ceil<std::chrono::milliseconds>(*q));
        return o_.hedge_after;
    }
    bool spend_hedge() noexcept { return route_.retry_budget().try_spend(Reason::timeout); }
    const std::string& route_name() const noexcept { return route_.name(); }

    /// The request to send now: the caller's, or the latest repair turn.
    const ChatRequest& request() const noexcept { return repaired_ ? *repaired_ : rs_.req; }

    /// The attempt's outcome: bookkeeping, then what the driver does next. `committed`: part of
    /// this attempt's answer already reached the caller (a stream past its first delta), so a
    /// failure can no longer be retried or failed over invisibly. `racing`: a hedged attempt
    /// runs beside this one, so a failure here is not retried or repaired (the other goes on).
    Order finish(Result<ChatResponse> outcome, bool committed = false, bool racing = false) {
        const auto now = rs_.clock.now();
        const auto latency = std::chrono::duration_cast<std::chrono::nanoseconds>(now - t0_);
        in_flight_.reset();
        measure(outcome, latency);
        std::string previous;  // the answer a gate turned down, for the repair turn
        if (outcome) {
            if (auto bad = run_gates(request(), *outcome, rs_.opts, rs_.tool_schemas)) {
                previous = std::move(bad->previous);
                outcome = std::move(bad->failure);
            }
        }
        // The hold stays in hold_ until the line that settles it: a gate or anything else that
        // throws on the way leaves it to ~RouteVisit, which lets it go.
        if (outcome) return answered(std::move(*outcome), now, latency);
        settle(std::exchange(hold_, std::nullopt), 0.0);

        Failure f = std::move(outcome).error();
        f.route = route_.name();
        if (!R::is_http && is_skip_reason(f.reason)) {
            // A local route that has nothing to say (a cache miss): passed over, not tried.
            route_.breaker().release(permit_);
            --rs_.tried_this_pass;
            if (f.reason == Reason::cache_miss && is_first_) rs_.first_route_seen = false;  // the next route is the primary
            rs_.emit(SkipEvent{route_.name(), f.reason, rs_.req.tenant});
            if (f.reason != Reason::cache_miss) {
                rs_.pending_from = &route_.name();
                rs_.pending_reason = f.reason;
            }
            if (!rs_.last_failure) rs_.last_failure = std::move(f);
            return {Action::done, Step::next, {}, {}};
        }

        Attempt a{};
        a.route = route_.name();
        a.number = n_;
        a.latency = latency;
        a.kind = f.kind;
        a.reason = f.reason;
        a.status = f.status;
        a.message = f.message;
        rs_.attempts.push_back(std::move(a));
        rs_.emit(AttemptEvent{route_.name(), rs_.req.tenant, route_.provider(), route_.model(), n_, false, f.kind,
                              f.reason, f.status, latency, {}});

        bool opened = false;
        switch (breaker_effect(f.reason, timeout_counts(granted_, o_))) {
            case BreakerEffect::failure: {
                auto t = route_.breaker().on_failure(now, permit_);
                opened = t && t->to == BreakerState::open;
                report(t);
                break;
            }
            case BreakerEffect::success: report(route_.breaker().on_success(now, permit_)); break;
            case BreakerEffect::neutral: route_.breaker().release(permit_); break;
        }

        rs_.pending_from = &route_.name();
        rs_.pending_reason = f.reason;
        if (f.kind == FailureKind::policy && !rs_.settled) {
            // (A block that comes back after the request was settled, from the other leg of a
            // hedge race, is listed as an attempt but is not the request's outcome.)
            rs_.emit(PolicyEvent{route_.name(), rs_.req.tenant, f.reason, f.category});
            if (rs_.opts.policy_fallback) {
                // Opted in: go on, but only to routes at least as strict as this one.
                rs_.policy_floor = std::max(rs_.policy_floor.value_or(o_.safety_level), o_.safety_level);
                if (!rs_.policy_failure) rs_.policy_failure = std::make_unique<Failure>(f);
            }
        }
        if (f.reason == Reason::context_too_long && o_.context_window > 0)
            rs_.min_window = std::max(rs_.min_window, o_.context_window + 1);

        AttemptFacts facts;
        facts.number = n_;
        facts.repairs = repairs_;
        facts.local = !R::is_http;
        facts.opened = opened;
        facts.policy_fallback = rs_.opts.policy_fallback;
        facts.now = now;
        facts.route_end = end_;
        facts.deadline = rs_.deadline;
        Decision d = decide(f, facts, o_, rs_.jitter.uniform());
        if (racing && (d.next == Next::retry || d.next == Next::repair)) {
            d.next = Next::fail_over;
            d.wait = {};
        }
        if (committed && d.next != Next::stop) {
            // The caller has seen part of this answer: end with what it has, or (opted in)
            // restart on the next route, which the driver announces.
            d.next = rs_.restart ? Next::fail_over : Next::stop;
            d.wait = {};
        }
        if (d.cool_down_until) {
            route_.cool_down_until(*d.cool_down_until, now);
            if (d.announce_cooldown)
                rs_.emit(CooldownEvent{route_.name(), std::chrono::ceil<std::chrono::milliseconds>(*d.cool_down_until - now)});
        }
        switch (d.next) {
            case Next::stop:
                rs_.last_failure = std::move(f);
                return {Action::done, Step::stop, {}, {}};
            case Next::fail_over:
                rs_.last_failure = std::move(f);
                return {Action::done, Step::next, {}, {}};
            case Next::repair:
                ++repairs_;
                repaired_ = std::make_unique<ChatRequest>(repair_request(rs_.req, previous, f));
                rs_.emit(RetryEvent{route_.name(), rs_.req.tenant, f.reason, n_ + 1, std::chrono::nanoseconds{0}});
                rs_.last_failure = std::move(f);
                return {Action::again, Step::next, {}, {}};
            case Next::retry:
                break;
        }
        if (!route_.retry_budget().try_spend(f.reason)) {
            f.message += " (retry budget empty, not retried)";
            rs_.last_failure = std::move(f);
            return {Action::done, Step::next, {}, {}};
        }
        last_retry_reason_ = f.reason;
        paid_retry_ = true;
        rs_.emit(RetryEvent{route_.name(), rs_.req.tenant, f.reason, n_ + 1, d.wait});
        rs_.last_failure = std::move(f);
        return {Action::wait_then, Step::next, {}, d.wait};
    }

private:
    Order answered(ChatResponse res, Clock::time_point now, std::chrono::nanoseconds latency) {
        Attempt a{};
        a.route = route_.name();
        a.number = n_;
        a.latency = latency;
        a.ok = true;
        rs_.attempts.push_back(std::move(a));
        report(route_.breaker().on_success(now, permit_));
        route_.retry_budget().on_success(paid_retry_, last_retry_reason_);
        res.cost_usd = o_.price.cost(res.usage);
        if (rs_.opts.budgets) {
            auto hold = std::exchange(hold_, std::nullopt);
            settle(hold ? hold : std::optional<double>(0.0), res.cost_usd);
        }
        rs_.emit(AttemptEvent{route_.name(), rs_.req.tenant, route_.provider(), route_.model(), n_, true,
                              FailureKind::transient, Reason::internal, 0, latency, res.usage, res.cost_usd});
        res.route = route_.name();
        res.attempts = std::move(rs_.attempts);
        rs_.emit(SuccessEvent{route_.name(), rs_.req.tenant, static_cast<int>(res.attempts.size()), !is_first_,
                              now - rs_.start});
        if (rs_.opts.on_answer) {
            try {
                rs_.opts.on_answer(rs_.req, res);
            } catch (...) {
                rs_.sink_errors.fetch_add(1, std::memory_order_relaxed);
            }
        }
        rs_.answer = std::make_unique<ChatResponse>(std::move(res));
        return {Action::done, Step::answered, {}, {}};
    }

    // Load balancing's latency average: an answer counts what it took; a failure of the
    // provider counts as the attempt's whole timeout, so a route that fails fast never
    // looks fast; our own stops and local routes count nothing.
    void measure(const Result<ChatResponse>& outcome, std::chrono::nanoseconds latency) const noexcept {
        if constexpr (R::is_http) {
            if (outcome) {
                route_.record_answer(latency);
                return route_.record_latency(latency);
            }
            const Reason r = outcome.error().reason;
            if (r == Reason::cancelled || r == Reason::local_resource || r == Reason::internal) return;
            const bool answered = breaker_effect(r, true) == BreakerEffect::success;
            route_.record_latency(answered ? latency : std::max(latency, granted_));
        }
    }

    // An attempt in flight on the route, counted until the visit finishes it (or ends).
    class InFlight {
    public:
        explicit InFlight(const R& r) noexcept : r_(r) { r_.count_in_flight(1); }
        ~InFlight() { r_.count_in_flight(-1); }
        InFlight(const InFlight&) = delete;
        InFlight& operator=(const InFlight&) = delete;

    private:
        const R& r_;
    };

    // Ends the call's hold on the tenant's budget (if any) and records what it cost.
    void settle(std::optional<double> hold, double cost) noexcept {
        if (!hold || !rs_.opts.budgets) return;
        try {
            rs_.opts.budgets->settle(rs_.req.tenant, *hold, cost, rs_.clock.wall_now());
        } catch (...) {  // a store that is down must not lose a paid answer
            rs_.sink_errors.fetch_add(1, std::memory_order_relaxed);
        }
    }

    void note_recovery(Clock::time_point at, Reason why) {
        if (!rs_.earliest_recovery || at < *rs_.earliest_recovery) {
            rs_.earliest_recovery = at;
            rs_.earliest_route = &route_.name();
            rs_.earliest_reason = why;
        }
    }

    void skip_route(Reason why, std::string msg) {
        rs_.emit(SkipEvent{route_.name(), why, rs_.req.tenant});
        Failure f = Failure::of(why, std::move(msg));
        f.route = route_.name();
        rs_.last_failure = std::move(f);
        rs_.pending_from = &route_.name();
        rs_.pending_reason = why;
    }

    void report(const std::optional<BreakerTransition>& t) {
        if (t) rs_.emit(BreakerEvent{route_.name(), *t});
    }

    // Says once per route and schema that the schema goes out in a weaker form here.
    void notice_schema() {
        if constexpr (SchemaAwareAdapter<typename R::adapter_type>) {
            if (!rs_.req.schema || !route_.first_notice(rs_.req.schema)) return;
            try {
                const SchemaSupport s = route_.adapter().schema_support(*rs_.req.schema);
                if (!s.note.empty()) rs_.emit(NoticeEvent{route_.name(), "structured_output", s.note});
            } catch (...) {  // the encode that follows reports whatever this hit
            }
        }
    }

    R& route_;
    RequestState& rs_;
    const RouteOptions& o_;
    bool is_first_ = false;
    int n_ = 0;                          // attempts planned on this route
    int repairs_ = 0;
    bool paid_retry_ = false;            // a retry took tokens from the budget (repair turns do not)
    Reason last_retry_reason_ = Reason::server_error;
    CircuitBreaker::Permit permit_ = CircuitBreaker::Permit::denied;
    Clock::time_point end_{};            // end of this route's share of the deadline
    Clock::time_point t0_{};             // start of the current attempt
    std::chrono::nanoseconds granted_{}; // the current attempt's timeout
    std::unique_ptr<ChatRequest> repaired_{};  // (on the heap: a visit holds one only after a repair turn)
    std::optional<InFlight> in_flight_{};
    std::optional<double> hold_{};       // what the current attempt holds of the tenant's budget
};

}  // namespace detail::engine
FAILOVER_END_NAMESPACE
