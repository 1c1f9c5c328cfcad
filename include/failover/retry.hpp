// SPDX-License-Identifier: MIT
// The three separate pieces of retrying: whether a retry is affordable (the
// per-route RetryBudget, a token bucket in the style of the AWS SDKs), how long
// to wait (full-jitter exponential Backoff), and the seeded random source that
// jitter draws from. What a failure means is the classifier's business.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "failover/failure.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// Full-jitter exponential backoff: retry n (0-based) waits U(0, min(cap, base * 2^n)).
struct Backoff {
    std::chrono::milliseconds base{500};
    std::chrono::milliseconds cap{8000};

    /// The wait before retry `n` (0-based) given a uniform draw `u` in [0, 1).
    std::chrono::nanoseconds delay(int n, double u) const noexcept {
        const double b = std::chrono::duration<double, std::nano>(base).count();
        const double c = std::chrono::duration<double, std::nano>(cap).count();
        const double ceiling = std::min(c, b * std::ldexp(1.0, std::clamp(n, 0, 62)));
        const double d = std::clamp(u, 0.0, 1.0) * ceiling;
        return std::chrono::nanoseconds{static_cast<std::int64_t>(d)};
    }
};

/// Token-bucket retry budget of one route, shared by every request through it.
struct RetryBudgetOptions {
    int capacity = 500;           ///< tokens when full (and at start)
    int retry_cost = 5;           ///< tokens a retry takes
    int timeout_retry_cost = 10;  ///< tokens a retry after a timeout takes
    int success_refund = 1;       ///< tokens a first-try success gives back
    bool enabled = true;          ///< false: retries are never refused
};

/// Hears of a retry budget's changes (a StateStore sharing it; state.hpp). Called on the
/// request's thread: cheap, never blocking.
class RetryBudgetSync {
public:
    virtual ~RetryBudgetSync() = default;
    /// The budget took (negative) or got back (positive) `delta` tokens.
    virtual void retry_tokens_changed(int delta) noexcept = 0;
};

/// Caps retries during a storm: each retry spends tokens, an empty bucket
/// refuses retries (the router fails over instead). A first-try success refunds
/// one token and a success after a retry refunds that retry's cost, so retries
/// that keep failing drain the bucket while retries that work cost nothing. With
/// the defaults a long outage costs at most 100 retries per route before the
/// route refills at one token per clean success. Lock-free.
class RetryBudget {
public:
    explicit RetryBudget(RetryBudgetOptions o = {}) : opts_(o), tokens_(o.capacity) {
        if (o.capacity < 0 || o.retry_cost < 0 || o.timeout_retry_cost < 0 || o.success_refund < 0)
            throw std::invalid_argument("failover: RetryBudgetOptions: capacity and costs must be >= 0");
    }

    /// Takes the cost of retrying after a failure of `reason`; false when the bucket cannot pay.
    bool try_spend(Reason reason) noexcept {
        if (!opts_.enabled) return true;
        const int cost = reason == Reason::timeout ? opts_.timeout_retry_cost : opts_.retry_cost;
        int cur = tokens_.load(std::memory_order_relaxed);
        do {
            if (cur < cost) return false;
        } while (!tokens_.compare_exchange_weak(cur, cur - cost, std::memory_order_relaxed));
        if (auto* s = sync_.load(std::memory_order_acquire)) s->retry_tokens_changed(-cost);
        return true;
    }

    /// A success: refunds `success_refund`, or the last retry's cost when the success came after retries.
    void on_success(bool after_retry, Reason last_retry_reason = Reason::server_error) noexcept {
        if (!opts_.enabled) return;
        const int refund = !after_retry ? opts_.success_refund
                                        : (last_retry_reason == Reason::timeout ? opts_.timeout_retry_cost
                                                                                 : opts_.retry_cost);
        int cur = tokens_.load(std::memory_order_relaxed);
        int next = 0;
        do {
            next = std::min(opts_.capacity, cur + refund);
            if (next == cur) return;
        } while (!tokens_.compare_exchange_weak(cur, next, std::memory_order_relaxed));
        if (auto* s = sync_.load(std::memory_order_acquire)) s->retry_tokens_changed(next - cur);
    }

    /// Shares the budget through `s` (nullptr: stop).
    void attach(RetryBudgetSync* s) noexcept { sync_.store(s, std::memory_order_release); }
    /// Sets the tokens to what the instances sharing the budget have left together
    /// (clamped to [0, capacity]); not reported back to the sync.
    void adopt_tokens(int tokens) noexcept {
        tokens_.store(std::clamp(tokens, 0, opts_.capacity), std::memory_order_relaxed);
    }

    /// Tokens left.
    int tokens() const noexcept { return tokens_.load(std::memory_order_relaxed); }
    const RetryBudgetOptions& options() const noexcept { return opts_; }

private:
    RetryBudgetOptions opts_{};
    std::atomic<int> tokens_{};
    std::atomic<RetryBudgetSync*> sync_{nullptr};
};

/// A small, fast, seedable random source (SplitMix64). One per request, so
/// jitter never needs a lock and a seeded router is reproducible.
class Jitter {
public:
    explicit Jitter(std::uint64_t seed) noexcept : state_(seed) {}
    /// Next 64 random bits.
    std::uint64_t next() noexcept {
        std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    /// Uniform in [0, 1).
    double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

private:
    std::uint64_t state_;
};

FAILOVER_END_NAMESPACE
