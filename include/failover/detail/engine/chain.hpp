// SPDX-License-Identifier: MIT
// The decisions around the passes over a chain, shared by every driver: how a
// request is set up (its checks, its mode, its tools' compiled schemas), what
// ends it before a pass (the caller's stop), and what a finished pass means:
// the answer, the request's one Failure, or a wait for the earliest route to
// recover (when every route was skipped for a reason that passes with time)
// before the next pass. Pure: the driver does the waiting, however it waits.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <stop_token>
#include <string>
#include <utility>

#include "failover/detail/engine/gates.hpp"
#include "failover/detail/engine/request_state.hpp"
#include "failover/detail/engine/visit.hpp"
#include "failover/failure.hpp"
#include "failover/metrics.hpp"
#include "failover/request.hpp"
#include "failover/response.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE
namespace detail::engine {

inline std::uint64_t random_seed() {
    std::random_device rd{};
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

/// How a request is driven: its cancellation, and whether it streams.
struct Mode {
    std::stop_token stop{};
    bool streaming = false;
    bool restart = false;  // a stream may restart on the next route after a mid-stream failure
};


/// A request the router refuses before anything runs.
inline std::optional<Failure> check_request(const ChatRequest& req) {
    if (req.timeout && req.timeout->count() <= 0)
        return Failure::of(Reason::bad_request,
                           "ChatRequest.timeout must be positive, got " + std::to_string(req.timeout->count()) + " ms");
    return std::nullopt;
}

/// Gives request `rs` its mode and its tools' compiled schemas, or the Failure of a bad tool schema.
inline std::optional<Failure> set_up(RequestState& rs, ToolSchemas& tools, const Mode& mode) {
    rs.stop = mode.stop;
    rs.streaming = mode.streaming;
    rs.restart = mode.restart;
    if (!rs.req.tools.empty()) {
        auto compiled = tools.compile(rs.req.tools);
        if (!compiled) return std::move(compiled).error();
        rs.tool_schemas = std::move(*compiled);
    }
    return std::nullopt;
}

/// Before a pass: the caller's stop ends the request (with the attempts so far); otherwise
/// the pass starts.
inline std::optional<Result<ChatResponse>> before_pass(RequestState& rs) {
    if (rs.stop.stop_requested()) {
        Failure f = Failure::of(Reason::cancelled, "cancelled by the caller");
        f.attempts = std::move(rs.attempts);
        return Result<ChatResponse>(std::move(f));
    }
    rs.new_pass();
    return std::nullopt;
}

/// What a driver does after a pass: return `result`, or wait `wait` and pass again.
struct PassEnd {
    std::optional<Result<ChatResponse>> result{};
    Clock::duration wait{};
};

/// The end of pass number `pass` (from 0), whose last visit ended with `step`.
inline PassEnd after_pass(RequestState& rs, Step step, int pass) {
    const auto now = rs.clock.now();
    if (step == Step::answered) return {Result<ChatResponse>(std::move(*rs.answer)), {}};

    Failure f = rs.last_failure ? std::move(*rs.last_failure) : Failure::of(Reason::internal, "the chain has no routes");
    if (rs.policy_failure) {
        // Opted-in policy fallback found no stricter route that answered: the block stands.
        f = std::move(*rs.policy_failure);
        f.attempts = std::move(rs.attempts);
        return {Result<ChatResponse>(std::move(f)), {}};
    }
    if (!rs.any_approved && (!rs.req.data_class.empty() || !rs.req.region.empty())) {
        f = Failure::of(Reason::not_approved, "no route is approved for " + describe_data(rs.req));
        f.attempts = std::move(rs.attempts);
        rs.emit(ExhaustedEvent{rs.req.tenant, f.reason, 0, now - rs.start});
        return {Result<ChatResponse>(std::move(f)), {}};
    }
    if (step == Step::next && rs.tried_this_pass == 0 && rs.earliest_recovery) {
        // Every route was skipped for a reason that passes with time.
        const auto at = *rs.earliest_recovery;
        if (at > now && at < rs.deadline && pass < rs.opts.max_recovery_waits) {
            rs.last_failure.reset();
            rs.pending_from = nullptr;
            return {std::nullopt, at - now};
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
    return {Result<ChatResponse>(std::move(f)), {}};

}

}  // namespace detail::engine
FAILOVER_END_NAMESPACE
