// SPDX-License-Identifier: MIT
// The routing decisions, as plain functions of values: no I/O, no waiting, no
// clock reads (the caller passes `now`). Every driver (blocking, streaming,
// async) asks these and only these what to do, so the taxonomy is decided in
// one place and tested row by row (tests/test_engine.cpp):
// - eligibility(): may this route be tried for this request now, or is it
//   skipped, and why (policy floor, data approval, tier, context window,
//   budget, cooldown, time left);
// - route_end() / attempt_time(): the route's share of the chain deadline and
//   the timeout of its next attempt, so a hung route cannot starve the rest;
// - breaker_effect(): what an outcome means for the route's breaker (one table);
// - decide(): after a failed attempt, retry after a wait, run a repair turn,
//   fail over (cooling the route down first when the server asked for a long
//   wait) or stop the chain;
// - balance(): the order in which a route group tries its deployments.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cmath>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "failover/clock.hpp"
#include "failover/failure.hpp"
#include "failover/request.hpp"
#include "failover/route.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE
namespace detail::engine {

using std::chrono::milliseconds;
using std::chrono::nanoseconds;
using time_point = Clock::time_point;

// ------------------------------------------------------------------ breaker

/// What an outcome means for the route's circuit breaker.
enum class BreakerEffect {
    failure,  ///< the provider is unhealthy
    success,  ///< the provider answered properly (even if the answer was refused)
    neutral,  ///< says nothing about the provider (rate limits, our own deadline, skips)
};

/// The one table: failure reason -> breaker effect. `timeout_counted` says whether a
/// timed-out attempt had long enough to be the provider's fault (see timeout_counts()).
constexpr BreakerEffect breaker_effect(Reason r, bool timeout_counted) noexcept {
    switch (r) {
        case Reason::timeout:
            return timeout_counted ? BreakerEffect::failure : BreakerEffect::neutral;
        case Reason::connection:
        case Reason::conflict:
        case Reason::server_error:
        case Reason::overloaded:
        case Reason::malformed_response:
        case Reason::response_too_large:
        case Reason::auth:
        case Reason::not_found:  // a retired model stays retired: stop calling it
        case Reason::quota_exhausted:
        case Reason::internal:
            return BreakerEffect::failure;
        case Reason::schema_invalid:
        case Reason::quality_gate:
        case Reason::tool_call_invalid:
        case Reason::content_filter:
        case Reason::refusal:
        case Reason::bad_request:
        case Reason::context_too_long:
            return BreakerEffect::success;
        default:  // rate_limited, skips, deadline_exceeded, retry_budget
            return BreakerEffect::neutral;
    }
}

/// Whether an attempt given `granted` time had long enough for its timeout to count
/// against the breaker: its route's whole attempt_timeout, or at least
/// breaker.min_timeout_counted. Shorter means the chain's deadline cut it.
constexpr bool timeout_counts(nanoseconds granted, const RouteOptions& o) noexcept {
    return granted >= std::min<nanoseconds>(o.attempt_timeout, o.breaker.min_timeout_counted);
}

// -------------------------------------------------------------- eligibility

/// Why a route is passed over without a call.
struct Skip {
    Reason reason = Reason::not_approved;
    std::string message{};
    std::optional<time_point> recovers_at{};  ///< when a skip that passes with time ends
};

inline bool listed(const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end() || std::find(v.begin(), v.end(), "*") != v.end();
}

/// A route may see the request's data only if it is approved for its class and region.
inline bool approved(const RouteOptions& o, const ChatRequest& req) {
    return (req.data_class.empty() || listed(o.data_classes, req.data_class)) &&
           (req.region.empty() || listed(o.regions, req.region));
}

inline std::string describe_data(const ChatRequest& req) {
    std::string s;
    if (!req.data_class.empty()) s += "data class '" + req.data_class + "'";
    if (!req.region.empty()) s += (s.empty() ? "" : " in ") + std::string("region '") + req.region + "'";
    return s;
}

/// What eligibility() reads about the chain so far.
struct ChainFacts {
    const ChatRequest& req;
    std::optional<int> policy_floor{};  ///< after an opted-in policy fallback: at least this strict
    std::int64_t min_window = 0;        ///< after context_too_long: only larger windows
};

/// The shortest attempt worth making on a route: min_attempt_time, or its whole
/// attempt_timeout when that is shorter.
constexpr nanoseconds useful_time(const RouteOptions& o) noexcept {
    return std::min<nanoseconds>(o.min_attempt_time, o.attempt_timeout);
}

/// What one attempt charges a route's token rate limit: the prompt's estimate and the
/// output it may produce (0 when the route limits requests only).
template <class Tokens>
std::int64_t rate_tokens(const RouteOptions& o, const ChatRequest& req, Tokens&& tokens) {
    if (o.rate_limit.tokens_per_minute <= 0) return 0;
    return tokens() + (req.max_tokens ? *req.max_tokens : o.expected_output_tokens);
}

/// What one call on a priced route is expected to cost the tenant: the prompt's estimate in
/// and the request's max_tokens (or the route's expected_output_tokens) out.
template <class Tokens>
double cost_estimate(const RouteOptions& o, const ChatRequest& req, Tokens&& tokens) {
    return o.price.cost(Usage{tokens(), req.max_tokens ? *req.max_tokens : o.expected_output_tokens});
}

/// Whether a route may be tried now; `tokens` sizes the request (called only when a
/// window or a price needs it), `affordable(estimate)` asks the tenant's budget.
/// nullopt: go.
/// `room(tokens)` asks the route's rate limiter (called only when the route has a limit).
template <class Tokens, class Affordable, class Room>
std::optional<Skip> eligibility(const RouteOptions& o, bool http, const ChainFacts& chain, time_point now,
                                time_point cooldown_until, time_point deadline, Tokens&& tokens,
                                Affordable&& affordable, Room&& room) {
    const ChatRequest& req = chain.req;
    if (chain.policy_floor && o.safety_level < *chain.policy_floor)
        return Skip{Reason::not_approved, "less strict than the route that blocked the request", {}};
    if (!approved(o, req)) return Skip{Reason::not_approved, "not approved for " + describe_data(req), {}};
    if (!o.tiers.empty() && std::find(o.tiers.begin(), o.tiers.end(), req.tier) == o.tiers.end())
        return Skip{Reason::not_approved, "reserved for other tenant tiers than '" + req.tier + "'", {}};
    if (o.context_window > 0) {
        const std::int64_t needed = tokens() + req.max_tokens.value_or(0);
        if (needed > o.context_window || o.context_window < chain.min_window)
            return Skip{Reason::context_window,
                        "context window of " + std::to_string(o.context_window) + " tokens is too small (request ~" +
                            std::to_string(needed) + ", needs more than " +
                            std::to_string(std::max<std::int64_t>(chain.min_window - 1, 0)) + ")",
                        {}};
    }
    if (!o.price.free()) {
        if (!affordable(cost_estimate(o, req, tokens)))
            return Skip{Reason::budget_exceeded, "tenant '" + req.tenant + "' cannot afford this route", {}};
    }
    if (cooldown_until > now)
        return Skip{Reason::cooling_down, "route is cooling down after a long Retry-After", cooldown_until};
    if (o.rate_limit.any()) {
        const RateLimiter::Room r = room(rate_tokens(o, req, tokens));
        if (!r.now)
            return Skip{Reason::local_rate_limit,
                        r.at ? "at its own rate limit until there is room again"
                             : "the request alone exceeds the route's tokens_per_minute",
                        r.at};
    }
    if (http && now < deadline && deadline - now < useful_time(o))
        return Skip{Reason::insufficient_time,
                    "less than " + std::to_string(std::chrono::duration_cast<milliseconds>(useful_time(o)).count()) +
                        " ms left of the deadline",
                    {}};
    return std::nullopt;
}

// -------------------------------------------------------------------- time

/// Until when a route may keep the request: an HTTP route gets its weight's share of
/// what is left, against the weights of the HTTP routes still ahead (itself included),
/// but at least its useful time and at most what is left; a local route answers at once
/// and is bounded by the deadline alone.
inline time_point route_end(const RouteOptions& o, bool http, time_point now, time_point deadline,
                            double weight_from_here) noexcept {
    if (!http || now >= deadline) return deadline;
    const nanoseconds left = deadline - now;
    nanoseconds share = left;
    if (weight_from_here > o.deadline_weight) {
        const double fraction = o.deadline_weight / weight_from_here;
        share = nanoseconds{static_cast<nanoseconds::rep>(static_cast<double>(left.count()) * fraction)};
    }
    share = std::clamp<nanoseconds>(share, std::min(useful_time(o), left), left);
    return now + share;
}

/// The timeout of the next attempt on a route whose time ends at `end`: the smaller of
/// attempt_timeout and what is left of the route's share; nullopt when that is less than
/// the route's useful time (fail over instead of making a hopeless attempt).
inline std::optional<milliseconds> attempt_time(const RouteOptions& o, time_point now, time_point end) noexcept {
    if (end <= now) return std::nullopt;
    const auto left = std::chrono::duration_cast<milliseconds>(end - now);
    const milliseconds t = std::min(o.attempt_timeout, left);
    if (t < useful_time(o) || t.count() <= 0) return std::nullopt;
    return t;
}

// ------------------------------------------------------------------ decide

/// What happens after a failed attempt.
enum class Next {
    retry,      ///< wait `wait`, then try the same route again
    repair,     ///< at once, a repair turn on the same route (schema / tool call / quality gate)
    fail_over,  ///< move on to the next route
    stop,       ///< end the request with this failure (a policy block)
};

/// The decision, with the state changes it asks for.
struct Decision {
    Next next = Next::fail_over;
    nanoseconds wait{};
    std::optional<time_point> cool_down_until{};  ///< hold every request off the route until then
    bool announce_cooldown = false;               ///< a long Retry-After: emit a CooldownEvent
};

/// What decide() reads about the attempt that failed.
struct AttemptFacts {
    int number = 1;            ///< 1-based attempt on this route
    int repairs = 0;           ///< repair turns already made on this route
    bool local = false;        ///< the route answers in-process (a repair cannot change its answer)
    bool opened = false;       ///< this failure opened the route's breaker
    bool policy_fallback = false;  ///< RouterOptions::policy_fallback
    time_point now{};
    time_point route_end{};    ///< end of the route's share of the deadline
    time_point deadline{};     ///< the chain's deadline
};

/// True for the failures a repair turn may fix.
constexpr bool repairable(Reason r) noexcept {
    return r == Reason::schema_invalid || r == Reason::quality_gate || r == Reason::tool_call_invalid;
}

/// After a failed attempt: retry, repair, fail over or stop. `u` is a uniform [0, 1)
/// draw for the backoff's jitter.
inline Decision decide(const Failure& f, const AttemptFacts& a, const RouteOptions& o, double u) {
    Decision d;
    if (f.reason == Reason::cancelled) {  // the caller has gone: nothing more to try
        d.next = Next::stop;
        return d;
    }
    if (f.kind == FailureKind::policy) {
        d.next = a.policy_fallback ? Next::fail_over : Next::stop;
        return d;
    }
    if (f.reason == Reason::local_resource) return d;  // ours, not the route's: no retry here; a local route may still answer
    if (f.retry_after) {
        const time_point until = a.now + *f.retry_after;
        // Longer than we wait, or past the deadline: cool the route down and fail over now.
        if (*f.retry_after > o.max_retry_after || until > a.deadline) {
            d.cool_down_until = until;
            d.announce_cooldown = true;
            return d;
        }
        // A short rate limit still holds other requests off the route while this one waits.
        if (f.reason == Reason::rate_limited) d.cool_down_until = until;
    }
    if (a.opened || f.kind != FailureKind::transient || a.number >= o.max_attempts) return d;
    if (repairable(f.reason)) {
        if (a.repairs < o.repair_attempts && !a.local) d.next = Next::repair;
        return d;
    }
    const nanoseconds wait = f.retry_after ? nanoseconds{*f.retry_after} : o.backoff.delay(a.number - 1, u);
    // Never wait past the route's share: after the wait an attempt must still be worth making.
    const nanoseconds after = a.local ? nanoseconds{0} : useful_time(o);
    const time_point limit = a.local ? a.deadline : a.route_end;
    if (a.now + wait + after > limit || a.now + wait >= a.deadline) return d;
    d.next = Next::retry;
    d.wait = wait;
    return d;
}

// ------------------------------------------------------------------ groups

/// The order in which a route group tries its deployments for one request: `order`
/// becomes a permutation of 0..loads.size()-1. `weights` (Balance::weighted) has one
/// positive entry per deployment, or none (equal); `uniform()` gives numbers in [0, 1).
template <class Uniform>
void balance(Balance how, std::span<const RouteLoad> loads, std::span<const double> weights, Uniform&& uniform,
             std::vector<std::uint32_t>& order) {
    const std::size_t n = loads.size();
    order.resize(n);
    for (std::size_t i = 0; i < n; ++i) order[i] = static_cast<std::uint32_t>(i);
    if (n < 2) return;
    // Sorting by a key; ties (and equal weights) fall to a random key.
    std::vector<std::pair<double, double>> key(n);
    for (std::size_t i = 0; i < n; ++i) key[i].second = uniform();
    auto by_key = [&] {
        std::sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) { return key[a] < key[b]; });
    };
    // A deployment never measured goes first, so every deployment gets measured.
    auto cost = [&](std::size_t i) {
        const auto& l = loads[i];
        return l.latency ? static_cast<double>(l.latency->count()) * (l.in_flight + 1) : -1.0;
    };
    switch (how) {
        case Balance::weighted:
            // Exponential races: the smallest -ln(u) / w comes first with probability
            // w / sum(w), and so on for the rest (weighted sampling without replacement).
            for (std::size_t i = 0; i < n; ++i) {
                const double w = weights.size() == n ? weights[i] : 1.0;
                key[i].first = -std::log1p(-uniform()) / w;
            }
            break;
        case Balance::least_busy:
            for (std::size_t i = 0; i < n; ++i) key[i].first = loads[i].in_flight;
            break;
        case Balance::latency: {
            for (std::size_t i = 0; i < n; ++i) key[i].first = cost(i);
            by_key();
            // Two choices at random; the cheaper goes first, the rest by cost.
            const auto a = static_cast<std::size_t>(uniform() * static_cast<double>(n)) % n;
            auto b = static_cast<std::size_t>(uniform() * static_cast<double>(n - 1)) % (n - 1);
            if (b >= a) ++b;
            const std::size_t first = key[a] < key[b] ? a : b;
            std::rotate(order.begin(), std::find(order.begin(), order.end(), first),
                        std::find(order.begin(), order.end(), first) + 1);
            return;
        }
    }
    by_key();
}

}  // namespace detail::engine
FAILOVER_END_NAMESPACE
