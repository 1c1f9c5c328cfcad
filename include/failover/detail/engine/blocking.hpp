// SPDX-License-Identifier: MIT
// The blocking driver: the caller's thread walks the chain, performs each
// exchange and sleeps between retries. Everything it decides, it asks the
// RouteVisit (and through it decide.hpp) or chain.hpp; it only waits and does
// the I/O. run_chain() repeats passes over the chain while every route was
// skipped for a reason that passes with time. guarded() is the never-throwing
// entry point shared by the routers.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <span>
#include <string>
#include <utility>

#include "failover/detail/engine/chain.hpp"
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
/// routes in order once (advancing rs.position) and returns the last Step. Between passes
/// it sleeps while every route waits to recover (chain.hpp decides how long).
template <class Pass>
Result<ChatResponse> run_chain(RequestState& rs, Pass&& visit_routes) {
    for (int pass = 0;; ++pass) {
        if (auto cancelled = before_pass(rs)) return std::move(*cancelled);
        PassEnd end = after_pass(rs, visit_routes(rs), pass);
        if (end.result) return std::move(*end.result);
        rs.sleeper.sleep_for(end.wait, rs.stop);
    }
}

/// The never-throwing entry: checks the request, compiles its tools' schemas, runs
/// `run(rs)`, and turns anything a user hook throws (clock, sleeper, token counter,
/// budget store) into an internal Failure with the attempts made so far.
template <class Run>
Result<ChatResponse> guarded(const ChatRequest& req, const RouterOptions& opts, MetricsSink* sink,
                             std::atomic<std::uint64_t>& sink_errors, std::uint64_t seed,
                             std::span<const double> weights, ToolSchemas& tools, const Mode& mode, Run&& run) {
    if (auto bad = check_request(req)) return std::move(*bad);
    std::optional<RequestState> rs;
    try {
        rs.emplace(req, opts, sink, sink_errors, seed, weights);
        if (auto bad = set_up(*rs, tools, mode)) return std::move(*bad);
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
