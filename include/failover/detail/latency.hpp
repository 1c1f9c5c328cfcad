// SPDX-License-Identifier: MIT
// A route's recent answer latencies as a histogram of 64 log-spaced buckets
// (each 1.25x the last, from 1 ms to about 16 minutes), for hedging after a
// percentile of the observed latency (RouteOptions::hedge_percentile). Counts
// halve every 1,024 answers, so the estimate follows the route's recent
// behaviour. Lock-free: concurrent answers may blur a count, never corrupt it.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE
namespace detail {

class LatencyHistogram {
public:
    static constexpr std::size_t buckets = 64;
    static constexpr double step = 1.25;
    static constexpr std::uint32_t halve_every = 1024;

    void record(std::chrono::nanoseconds d) noexcept {
        counts_[bucket(d)].fetch_add(1, std::memory_order_relaxed);
        if (recorded_.fetch_add(1, std::memory_order_relaxed) % halve_every == halve_every - 1)
            for (auto& c : counts_) c.store(c.load(std::memory_order_relaxed) / 2, std::memory_order_relaxed);
    }

    /// The latency below which a fraction `q` of the counted answers fell (the upper bound
    /// of the bucket that holds that rank, so at most 25 % over); nullopt below `min_count`.
    std::optional<std::chrono::nanoseconds> quantile(double q, std::uint64_t min_count) const noexcept {
        std::array<std::uint64_t, buckets> c{};
        std::uint64_t total = 0;
        for (std::size_t i = 0; i < buckets; ++i) total += c[i] = counts_[i].load(std::memory_order_relaxed);
        if (total == 0 || total < min_count) return std::nullopt;
        const auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total)));
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < buckets; ++i) {
            seen += c[i];
            if (seen >= rank) return upper(i);
        }
        return upper(buckets - 1);
    }

    /// Answers counted (after the halvings).
    std::uint64_t count() const noexcept {
        std::uint64_t total = 0;
        for (const auto& c : counts_) total += c.load(std::memory_order_relaxed);
        return total;
    }

private:
    // Bucket 0: under 1 ms; bucket i >= 1: [1.25^(i-1), 1.25^i) ms.
    static std::size_t bucket(std::chrono::nanoseconds d) noexcept {
        const double ms = static_cast<double>(d.count()) / 1e6;
        if (!(ms >= 1.0)) return 0;
        const double i = std::floor(std::log(ms) / std::log(step)) + 1.0;
        return i >= static_cast<double>(buckets - 1) ? buckets - 1 : static_cast<std::size_t>(i);
    }
    static std::chrono::nanoseconds upper(std::size_t i) noexcept {
        return std::chrono::nanoseconds{static_cast<std::int64_t>(std::pow(step, static_cast<double>(i)) * 1e6)};
    }

    std::array<std::atomic<std::uint32_t>, buckets> counts_{};
    std::atomic<std::uint32_t> recorded_{0};
};

}  // namespace detail
FAILOVER_END_NAMESPACE
