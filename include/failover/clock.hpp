// SPDX-License-Identifier: MIT
// Injected time. The router reads time only through a Clock and waits only
// through a Sleeper, so tests drive retries, breakers and deadlines with a
// ManualClock and never sleep for real.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <stop_token>
#include <thread>

#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// Monotonic time for deadlines and breakers, wall time for HTTP-date headers.
class Clock {
public:
    using duration = std::chrono::steady_clock::duration;
    using time_point = std::chrono::steady_clock::time_point;
    virtual ~Clock() = default;
    /// Monotonic now.
    virtual time_point now() const = 0;
    /// Wall-clock now, for Retry-After given as an HTTP-date.
    virtual std::chrono::system_clock::time_point wall_now() const = 0;
};

/// Waits. The router never calls std::this_thread::sleep_for directly.
class Sleeper {
public:
    virtual ~Sleeper() = default;
    virtual void sleep_for(std::chrono::nanoseconds d) = 0;
    /// Waits `d` or until `stop` is requested, whichever comes first. The default waits
    /// the whole time; a sleeper that can be woken overrides it.
    virtual void sleep_for(std::chrono::nanoseconds d, const std::stop_token& stop) {
        if (!stop.stop_requested()) sleep_for(d);
    }
};

/// The real clocks.
class SystemClock final : public Clock {
public:
    time_point now() const override { return std::chrono::steady_clock::now(); }
    std::chrono::system_clock::time_point wall_now() const override { return std::chrono::system_clock::now(); }
};

/// Real sleep; a stop request ends a wait at once.
class ThreadSleeper final : public Sleeper {
public:
    void sleep_for(std::chrono::nanoseconds d) override {
        if (d.count() > 0) std::this_thread::sleep_for(d);
    }
    void sleep_for(std::chrono::nanoseconds d, const std::stop_token& stop) override {
        if (d.count() <= 0 || stop.stop_requested()) return;
        if (!stop.stop_possible()) return sleep_for(d);
        std::mutex m;
        std::condition_variable_any cv;
        std::unique_lock lock(m);
        cv.wait_for(lock, stop, d, [] { return false; });
    }
};

/// A clock that moves only when told to, and a sleeper that moves it instead of
/// waiting. Thread-safe. Records the total time slept.
class ManualClock final : public Clock, public Sleeper {
public:
    explicit ManualClock(std::chrono::system_clock::time_point wall_epoch = std::chrono::system_clock::time_point{
                             std::chrono::seconds{1767225600}})  // 2026-01-01T00:00:00Z
        : wall_epoch_(wall_epoch) {}

    time_point now() const override { return time_point{duration{ticks_.load(std::memory_order_acquire)}}; }
    std::chrono::system_clock::time_point wall_now() const override {
        return wall_epoch_ + std::chrono::duration_cast<std::chrono::system_clock::duration>(duration{ticks_.load()});
    }
    using Sleeper::sleep_for;
    void sleep_for(std::chrono::nanoseconds d) override {
        if (d.count() <= 0) return;
        slept_.fetch_add(std::chrono::duration_cast<duration>(d).count());
        advance(d);
    }
    /// Moves time forward.
    void advance(std::chrono::nanoseconds d) { ticks_.fetch_add(std::chrono::duration_cast<duration>(d).count()); }
    /// Total time passed to sleep_for.
    std::chrono::nanoseconds slept() const { return duration{slept_.load()}; }

private:
    std::chrono::system_clock::time_point wall_epoch_;
    std::atomic<duration::rep> ticks_{std::chrono::duration_cast<duration>(std::chrono::hours{1}).count()};
    std::atomic<duration::rep> slept_{0};
};

/// Shared default instances.
inline std::shared_ptr<Clock> default_clock() {
    static const auto c = std::make_shared<SystemClock>();
    return c;
}
inline std::shared_ptr<Sleeper> default_sleeper() {
    static const auto s = std::make_shared<ThreadSleeper>();
    return s;
}

FAILOVER_END_NAMESPACE
