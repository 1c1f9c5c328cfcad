// SPDX-License-Identifier: MIT
// The state of one request on its way down the chain, shared by every driver:
// the request and options, its clock and deadline, the attempts made, what the
// chain has learnt so far (a policy floor, a minimum context window, which
// route failed last and why) and the bookkeeping of an all-skipped pass. It
// lives on the caller's stack (blocking, streaming) or in the request's own
// object (async); nothing in it is shared between requests.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <vector>

#include "failover/budget.hpp"
#include "failover/clock.hpp"
#include "failover/failure.hpp"
#include "failover/metrics.hpp"
#include "failover/request.hpp"
#include "failover/response.hpp"
#include "failover/retry.hpp"
#include "failover/router_options.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE
class Schema;

namespace detail::engine {

/// Sends `e` to `sink` (none: nothing); a sink that throws is counted in `errors`, never felt.
inline void record_event(MetricsSink* sink, std::atomic<std::uint64_t>& errors, const Event& e) noexcept {
    if (!sink) return;
    try {
        sink->record(e);
    } catch (...) {
        errors.fetch_add(1, std::memory_order_relaxed);
    }
}

/// One request's walk through the chain.
struct RequestState {
    RequestState(const ChatRequest& r, const RouterOptions& o, MetricsSink* k, std::atomic<std::uint64_t>& errors,
                 std::uint64_t seed, std::span<const double> weights)
        : req(r), opts(o), clock(*o.clock), sleeper(*o.sleeper), sink(k), sink_errors(errors), jitter(seed),
          start(clock.now()),
          deadline(start + std::min<std::chrono::milliseconds>(r.timeout ? *r.timeout : o.timeout, max_timeout)),
          weight_suffix(weights) {
        attempts.reserve(1);  // most requests answer at the first attempt
    }

    // Longer deadlines are clipped to this, so time arithmetic cannot overflow.
    static constexpr std::chrono::milliseconds max_timeout{std::chrono::hours{24 * 30}};

    const ChatRequest& req;
    const RouterOptions& opts;
    Clock& clock;
    Sleeper& sleeper;
    MetricsSink* sink{};
    std::atomic<std::uint64_t>& sink_errors;
    Jitter jitter;
    Clock::time_point start{};
    Clock::time_point deadline{};
    // weight_suffix[i]: the deadline weights of the HTTP routes from position i to the end.
    std::span<const double> weight_suffix{};
    std::stop_token stop{};    // the caller's cancellation
    bool streaming = false;    // a stream: attempts time their first token, not their whole length
    bool restart = false;      // a stream: a failure after the first delta fails over (announced) instead of ending
    std::size_t position = 0;  // the route being visited, in this pass (a group's deployments: one each)
    // The route group being visited and the order of its deployments for this request.
    const void* group = nullptr;
    std::vector<std::uint32_t> group_order{};
    std::vector<Attempt> attempts{};
    std::vector<std::shared_ptr<const Schema>> tool_schemas{};  // compiled parameters of req.tools, in order
    // The last route that did not answer, and why: the `from` of the next fallback.
    const std::string* pending_from = nullptr;
    Reason pending_reason = Reason::internal;
    std::optional<Failure> last_failure{};
    // The request's outcome is decided (a hedge race was won or stopped, or the request
    // ended): what a late leg brings back is listed, never acted on.
    bool settled = false;
    std::unique_ptr<ChatResponse> answer{};  // (on the heap: a request holds it only at its end)
    // Recovery bookkeeping for an all-skipped pass.
    int tried_this_pass = 0;
    std::optional<Clock::time_point> earliest_recovery{};
    const std::string* earliest_route = nullptr;
    Reason earliest_reason = Reason::breaker_open;
    bool first_route_seen = false;
    const std::string* first_route = nullptr;
    // What the chain has learnt, carried across routes.
    bool any_approved = false;                 // some route was approved for the request's data
    std::int64_t min_window = 0;               // after context_too_long: only larger windows
    std::optional<int> policy_floor;           // after a policy block with policy_fallback: at least this strict
    std::unique_ptr<Failure> policy_failure{};  // (on the heap: rare)
    std::optional<std::int64_t> token_count;

    std::int64_t tokens() {
        if (!token_count) token_count = opts.token_counter ? opts.token_counter(req) : estimate_tokens(req);
        return *token_count;
    }

    /// Sends an event to the sink; a sink that throws is counted, never felt.
    void emit(const Event& e) noexcept { record_event(sink, sink_errors, e); }
    std::chrono::nanoseconds remaining() const { return deadline - clock.now(); }

    /// The deadline weight of the routes from the current position on (0 when unknown).
    double weight_from_here() const noexcept { return position < weight_suffix.size() ? weight_suffix[position] : 0.0; }

    /// Starts a new pass over the chain.
    void new_pass() noexcept {
        tried_this_pass = 0;
        earliest_recovery.reset();
        earliest_route = nullptr;
        first_route_seen = false;
        position = 0;
        group = nullptr;
    }
};

}  // namespace detail::engine
FAILOVER_END_NAMESPACE
