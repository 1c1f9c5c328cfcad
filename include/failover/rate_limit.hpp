// SPDX-License-Identifier: MIT
// A route's own rate limits (RouteOptions::rate_limit): requests and tokens per
// minute kept below what the provider allows, so traffic stays under its limits
// before it has to answer 429. Two token buckets that refill evenly over a
// minute; a route without room is skipped (reason local_rate_limit) until the
// time its buckets have room again, which an all-skipped pass waits for like a
// cooldown. Shared by every request through the route; thread-safe.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "failover/clock.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// Requests and tokens per minute a route may send (0: no limit). Tokens are the
/// request's estimate (the router's token counter) plus its max_tokens (or the route's
/// expected_output_tokens), charged when an attempt is sent.
struct RateLimit {
    double requests_per_minute = 0;
    double tokens_per_minute = 0;

    bool any() const noexcept { return requests_per_minute > 0 || tokens_per_minute > 0; }
    /// Throws std::invalid_argument on a negative or non-finite limit.
    void validate() const {
        auto check = [](const char* field, double v) {
            if (!(v >= 0.0) || !std::isfinite(v))
                throw std::invalid_argument(std::string("RateLimit.") + field + " invalid: " + std::to_string(v) +
                                            " (must be >= 0)");
        };
        check("requests_per_minute", requests_per_minute);
        check("tokens_per_minute", tokens_per_minute);
    }
};

/// The two buckets of a RateLimit. Each starts full (a minute's worth) and refills
/// continuously at its rate.
class RateLimiter {
public:
    explicit RateLimiter(RateLimit limit = {}) : limit_(limit) {
        limit_.validate();
        requests_.level = limit_.requests_per_minute;
        tokens_.level = limit_.tokens_per_minute;
    }
    RateLimiter(const RateLimiter&) = delete;
    RateLimiter& operator=(const RateLimiter&) = delete;

    /// Whether an attempt of `tokens` may be sent now.
    struct Room {
        bool now = true;
        /// !now: when there will be room (nullopt: never, the attempt alone exceeds a
        /// minute's tokens).
        std::optional<Clock::time_point> at{};
    };

    const RateLimit& limit() const noexcept { return limit_; }

    /// Looks without taking.
    Room room(Clock::time_point now, std::int64_t tokens) {
        if (!limit_.any()) return {};
        std::lock_guard lock(mu_);
        refill(now);
        return room_locked(now, static_cast<double>(std::max<std::int64_t>(tokens, 0)));
    }

    /// Takes one request and `tokens` if there is room now; otherwise takes nothing.
    Room take(Clock::time_point now, std::int64_t tokens) {
        if (!limit_.any()) return {};
        std::lock_guard lock(mu_);
        refill(now);
        const double t = static_cast<double>(std::max<std::int64_t>(tokens, 0));
        Room r = room_locked(now, t);
        if (r.now) {
            if (limit_.requests_per_minute > 0) requests_.level -= 1.0;
            if (limit_.tokens_per_minute > 0) tokens_.level -= t;
        }
        return r;
    }

private:
    struct Bucket {
        double level = 0;
    };
    static constexpr double minute_ns = 60e9;

    void refill(Clock::time_point now) {
        if (!last_) {
            last_ = now;
            return;
        }
        if (now <= *last_) return;
        const double elapsed = static_cast<double>((now - *last_).count());
        last_ = now;
        auto fill = [&](Bucket& b, double per_minute) {
            if (per_minute > 0) b.level = std::min(per_minute, b.level + per_minute * elapsed / minute_ns);
        };
        fill(requests_, limit_.requests_per_minute);
        fill(tokens_, limit_.tokens_per_minute);
    }

    // When `b` holds `need`: now, later, or never (`need` over a minute's worth).
    static std::optional<Clock::duration> wait_for(const Bucket& b, double per_minute, double need, bool& never) {
        if (per_minute <= 0 || b.level >= need) return Clock::duration{0};
        if (need > per_minute) {
            never = true;
            return std::nullopt;
        }
        const double ns = std::ceil((need - b.level) * minute_ns / per_minute);
        return std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds{static_cast<std::int64_t>(ns)});
    }

    Room room_locked(Clock::time_point now, double tokens) const {
        bool never = false;
        const auto a = wait_for(requests_, limit_.requests_per_minute, 1.0, never);
        const auto b = wait_for(tokens_, limit_.tokens_per_minute, tokens, never);
        if (never) return {false, std::nullopt};
        const auto wait = std::max(*a, *b);
        if (wait.count() <= 0) return {};
        return {false, now + wait};
    }

    RateLimit limit_;
    std::mutex mu_{};
    Bucket requests_{};
    Bucket tokens_{};
    std::optional<Clock::time_point> last_{};
};

FAILOVER_END_NAMESPACE
