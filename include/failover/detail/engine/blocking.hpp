// SPDX-License-Identifier: MIT
// The blocking driver: the caller's thread walks the chain, performs each
// exchange and sleeps between retries. Everything it decides, it asks the
// RouteVisit (and through it decide.hpp); it only waits and does the I/O.
// run_chain() repeats passes over the chain while every route was skipped for
// a reason that passes with time (waiting for the earliest recovery inside the
// deadline), and turns what is left into the request's one Failure.
// guarded() is the never-throwing entry point shared by the routers.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <utility>

#include "failover/detail/engine/exchange.hpp"
#include "failover/detail/engine/gates.hpp"
#include "failover/detail/engine/request_state.hpp"
#include "failover/detail/engine/visit.hpp"
#include "failover/failure.hpp"
#include "failover/metrics.hpp"
#include "failover/request.hpp"
#include "failover/response.hpp"
#include "failover/router_options.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE
namespace detail::engine {

/// One route, blocking: eligibility, then attempts until the visit says it is over.
template <class R>
Step run_route(R& route, RequestState& rs) {
    RouteVisit<R> visit(route, rs);
    if (!visit.begin()) return Step::next;
    for (;;) {
        const Order planned = visit.plan();
        if (planned.action == Action::done) return planned.step;
        Result<ChatResponse> outcome =
            perform(route, visit.request(), planned.deadline, [&rs] { return rs.clock.wall_now(); });
        const Order after = visit.finish(std::move(outcome));
        switch (after.action) {
            case Action::wait_then: rs.sleeper.sleep_for(after.wait, rs.stop); break;
            case Action::again: break;
            case Action::send:
            case Action::done: return after.step;
        }
    }
}

/// Runs the chain until an answer, a stop, or exhaustion; `visit_routes(rs)` visits the
/// routes in order once (advancing rs.position) and returns the last Step.
template <class Pass>
Result<ChatResponse> run_chain(RequestState& rs, Pass&& visit_routes) {
    for (int pass = 0;; ++pass) {
        if (rs.stop.stop_requested()) {
            Failure f = Failure::of(Reason::cancelled, "cancelled by the caller");
            f.attempts = std::move(rs.attempts);
            return f;
        }
        rs.new_pass();
        const Step step = visit_routes(rs);

        const auto now = rs.clock.now();
        if (step == Step::answered) return std::move(*rs.answer);

        Failure f = rs.last_failure ? std::move(*rs.last_failure) : Failure::of(Reason::internal, "the chain has no routes");
        if (rs.policy_failure) {
            // Opted-in policy fallback found no stricter route that answered: the block stands.
            f = std::move(*rs.policy_failure);
            f.attempts = std::move(rs.attempts);
            return f;
        }
        if (!rs.any_approved && (!rs.req.data_class.empty() || !rs.req.region.empty())) {
            f = Failure::of(Reason::not_approved, "no route is approved for " + describe_data(rs.req));
            f.attempts = std::move(rs.attempts);
            rs.emit(ExhaustedEvent{rs.req.tenant, f.reason, 0, now - rs.start});
            return f;
        }
        if (step == Step::next && rs.tried_this_pass == 0 && rs.earliest_recovery) {
            // Every route was skipped for a reason that passes with time.
            const auto at = *rs.earliest_recovery;
            if (at > now && at < rs.deadline && pass < rs.opts.max_recovery_waits) {
                rs.sleeper.sleep_for(at - now, rs.stop);
                rs.last_failure.reset();
                rs.pending_from = nullptr;
                continue;
            }
            const auto wait = std::chrono::ceil<std::chrono::milliseconds>(std::max(at - now, Clock::duration{0}));
            f = Failure::of(rs.earliest_reason);
            f.kind = FailureKind::terminal;
            f.route = *rs.earliest_route;
            f.retry_after = wait;
            f.message = "every route is unavailable; the first to recover is '" + *rs.earliest_route + "' in " +
                        std::to_string(wait.count()) + " ms" + (at >= rs.deadline ? ", after the request's deadline" : "");
        } else if (step == Step::next) {
            if (f.reason == Reason::insufficient_time) {  // the chain ran out of time
                f.reason = Reason::deadline_exceeded;
                f.kind = FailureKind::terminal;
            }
            const std::string last = f.message;
            f.message = "all routes failed; last: " + std::string(to_string(f.reason)) +
                        (last.empty() ? std::string() : " (" + last + ")");
        }
        f.attempts = std::move(rs.attempts);
        if (f.kind != FailureKind::policy)
            rs.emit(ExhaustedEvent{rs.req.tenant, f.reason, static_cast<int>(f.attempts.size()), now - rs.start});
        return f;
    }
}

inline std::uint64_t random_seed() {
    std::random_device rd{};
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

/// The never-throwing entry: checks the request, compiles its tools' schemas, runs
/// `run(rs)`, and turns anything a user hook throws (clock, sleeper, token counter,
/// budget store) into an internal Failure with the attempts made so far.
/// How a request is driven: its cancellation, and whether it streams.
struct Mode {
    std::stop_token stop{};
    bool streaming = false;
    bool restart = false;  // a stream may restart on the next route after a mid-stream failure
};

template <class Run>
Result<ChatResponse> guarded(const ChatRequest& req, const RouterOptions& opts, MetricsSink* sink,
                             std::atomic<std::uint64_t>& sink_errors, std::uint64_t seed,
                             std::span<const double> weights, ToolSchemas& tools, const Mode& mode, Run&& run) {
    if (req.timeout && req.timeout->count() <= 0) {
        return Failure::of(Reason::bad_request,
                           "ChatRequest.timeout must be positive, got " + std::to_string(req.timeout->count()) + " ms");
    }
    std::optional<RequestState> rs;
    try {
        rs.emplace(req, opts, sink, sink_errors, seed, weights);
        rs->stop = mode.stop;
        rs->streaming = mode.streaming;
        rs->restart = mode.restart;
        if (!req.tools.empty()) {
            auto compiled = tools.compile(req.tools);
            if (!compiled) return std::move(compiled).error();
            rs->tool_schemas = std::move(*compiled);
        }
        return run(*rs);
    } catch (const std::exception& e) {
        Failure f = thrown(e);
        if (rs) f.attempts = std::move(rs->attempts);
        return f;
    } catch (...) {
        Failure f = Failure::of(Reason::internal, "unknown exception");
        if (rs) f.attempts = std::move(rs->attempts);
        return f;
    }
}

}  // namespace detail::engine
FAILOVER_END_NAMESPACE
