// SPDX-License-Identifier: MIT
// A per-route circuit breaker. CLOSED counts outcomes in a time-based sliding
// window (one bucket per second) and opens on a failure rate over at least
// `minimum_calls` calls, or on `consecutive_failures` failures in a row. OPEN
// refuses calls until its open time has passed; the move to HALF_OPEN is lazy
// (checked on the next try_acquire), so no timer thread exists. HALF_OPEN lets a
// bounded number of probes through: enough successes close the breaker, a
// failed probe opens it again for longer (multiplied each time, capped, with
// jitter). FORCED_OPEN and DISABLED are for operators. Thread-safe: one mutex,
// no allocation after construction. Methods return the transition they caused
// so the caller can report it outside the lock.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>

#include "failover/config.hpp"
#include "failover/retry.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// Where a breaker is.
enum class BreakerState { closed, open, half_open, forced_open, disabled };

/// Stable lower-case name of a breaker state.
constexpr std::string_view to_string(BreakerState s) noexcept {
    switch (s) {
        case BreakerState::closed: return "closed";
        case BreakerState::open: return "open";
        case BreakerState::half_open: return "half_open";
        case BreakerState::forced_open: return "forced_open";
        case BreakerState::disabled: return "disabled";
    }
    return "closed";
}

/// Breaker settings; the defaults are DESIGN.md's.
struct BreakerOptions {
    std::chrono::seconds window{60};               ///< sliding window length (1 s buckets)
    int minimum_calls = 10;                        ///< no failure rate is judged below this many calls
    double failure_rate = 0.5;                     ///< opens at rate >= this (0, 1]
    int consecutive_failures = 5;                  ///< or after this many failures in a row (0 = off)
    std::chrono::milliseconds open_base{30000};    ///< first open duration
    double open_multiplier = 2.0;                  ///< each reopening without a close multiplies it
    std::chrono::milliseconds open_max{300000};    ///< open duration cap
    double open_jitter = 0.2;                      ///< +- fraction applied to each open duration
    int half_open_probes = 1;                      ///< concurrent probes allowed in half-open
    int successes_to_close = 1;                    ///< probe successes needed to close
    std::optional<std::uint64_t> seed{};           ///< jitter seed; random when unset, so replicas do not probe in lockstep
    /// A timed-out attempt counts as a failure only if it was allowed at least this long (or
    /// its route's whole attempt_timeout, if that is shorter): an attempt cut short by the
    /// chain's deadline says nothing about the provider. Read by the router, not the breaker.
    std::chrono::milliseconds min_timeout_counted{10000};

    /// Throws std::invalid_argument naming the first bad field.
    void validate() const {
        auto bad = [](const char* field, const std::string& v) {
            throw std::invalid_argument(std::string("failover: BreakerOptions.") + field + " invalid: " + v);
        };
        if (window.count() < 1 || window.count() > FAILOVER_BREAKER_MAX_WINDOW_SECONDS)
            bad("window", std::to_string(window.count()) + " s (1.." +
                              std::to_string(FAILOVER_BREAKER_MAX_WINDOW_SECONDS) + ")");
        if (minimum_calls < 1) bad("minimum_calls", std::to_string(minimum_calls));
        if (!(failure_rate > 0.0 && failure_rate <= 1.0)) bad("failure_rate", std::to_string(failure_rate));
        if (consecutive_failures < 0) bad("consecutive_failures", std::to_string(consecutive_failures));
        if (open_base.count() < 0) bad("open_base", std::to_string(open_base.count()) + " ms");
        if (open_max < open_base) bad("open_max", std::to_string(open_max.count()) + " ms < open_base");
        if (!(open_multiplier >= 1.0)) bad("open_multiplier", std::to_string(open_multiplier));
        if (!(open_jitter >= 0.0 && open_jitter < 1.0)) bad("open_jitter", std::to_string(open_jitter));
        if (half_open_probes < 1) bad("half_open_probes", std::to_string(half_open_probes));
        if (min_timeout_counted.count() < 0) bad("min_timeout_counted", std::to_string(min_timeout_counted.count()) + " ms");
        if (successes_to_close < 1 || successes_to_close > half_open_probes)
            bad("successes_to_close", std::to_string(successes_to_close) + " (1..half_open_probes)");
    }
};

/// A state change, reported to metrics.
struct BreakerTransition {
    BreakerState from = BreakerState::closed;
    BreakerState to = BreakerState::closed;
    std::chrono::milliseconds open_for{0};  ///< when `to` is open: how long
};

/// Hears of a breaker's own changes (a StateStore sharing it; state.hpp). Called under the
/// breaker's lock on the request's thread: cheap, never blocking, never calling back.
class BreakerSync {
public:
    virtual ~BreakerSync() = default;
    /// The breaker moved to `to` by its own decision (never by adopt). For `open`,
    /// `open_for` is the open duration just chosen and `opens` the openings without a close.
    virtual void breaker_changed(BreakerState to, std::chrono::milliseconds open_for, int opens) noexcept = 0;
    /// The breaker counted an outcome in its window (closed state only).
    virtual void breaker_counted(bool failure) noexcept = 0;
};

/// The circuit breaker of one route.
class CircuitBreaker {
public:
    using time_point = std::chrono::steady_clock::time_point;

    /// What try_acquire grants.
    enum class Permit : std::uint8_t {
        denied,  ///< do not call
        call,    ///< a normal call (closed or disabled)
        probe,   ///< a half-open probe: report its outcome or release it
    };

    /// The permit and the transition taking it caused (open -> half-open).
    struct Acquired {
        Permit permit = Permit::denied;
        std::optional<BreakerTransition> transition{};
    };

    explicit CircuitBreaker(BreakerOptions o = {}) : opts_(o), jitter_(o.seed ? *o.seed : random_seed()) {
        opts_.validate();
    }

    /// Asks to make a call now.
    Acquired try_acquire(time_point now) {
        std::lock_guard lock(mu_);
        Acquired a{};
        switch (state_) {
            case BreakerState::disabled:
            case BreakerState::closed: a.permit = Permit::call; break;
            case BreakerState::forced_open: break;
            case BreakerState::open:
                if (now < open_until_ || held_) break;  // held: only a health check closes it
                a.transition = move_to(BreakerState::half_open, now);
                [[fallthrough]];
            case BreakerState::half_open:
                if (probes_in_flight_ < opts_.half_open_probes) {
                    ++probes_in_flight_;
                    a.permit = Permit::probe;
                }
                break;
        }
        return a;
    }

    /// The call succeeded (the provider is healthy).
    std::optional<BreakerTransition> on_success(time_point now, Permit p) {
        std::lock_guard lock(mu_);
        if (p == Permit::probe) {
            release_probe();
            if (state_ != BreakerState::half_open) return std::nullopt;
            if (++probe_successes_ >= opts_.successes_to_close) return move_to(BreakerState::closed, now);
            return std::nullopt;
        }
        if (state_ != BreakerState::closed) return std::nullopt;
        consecutive_ = 0;
        add(now, false);
        return std::nullopt;
    }

    /// The call failed in a way that says the provider is unhealthy.
    std::optional<BreakerTransition> on_failure(time_point now, Permit p) {
        std::lock_guard lock(mu_);
        if (p == Permit::probe) {
            release_probe();
            if (state_ != BreakerState::half_open) return std::nullopt;
            return move_to(BreakerState::open, now);
        }
        if (state_ != BreakerState::closed) return std::nullopt;
        ++consecutive_;
        add(now, true);
        const bool by_streak = opts_.consecutive_failures > 0 && consecutive_ >= opts_.consecutive_failures;
        const bool by_rate = calls_ >= static_cast<std::uint64_t>(opts_.minimum_calls) &&
                             static_cast<double>(failures_) >= opts_.failure_rate * static_cast<double>(calls_);
        if (by_streak || by_rate) return move_to(BreakerState::open, now);
        return std::nullopt;
    }

    /// The call ended in a way that says nothing about health (bad request,
    /// policy block, rate limit, cancelled): a probe slot is freed, nothing counted.
    void release(Permit p) {
        if (p != Permit::probe) return;
        std::lock_guard lock(mu_);
        release_probe();
    }

    /// Active health checks take over recovery: while held, an open breaker lets no request
    /// through as a probe when its open time is up; only health_check_passed() closes it.
    /// Releasing the hold restores the usual half-open probes.
    void hold_for_health_checks(bool on) {
        std::lock_guard lock(mu_);
        held_ = on;
    }
    /// A health check proved the provider healthy: an open breaker closes (and nothing else
    /// changes: a forced-open or disabled breaker stays as the operator left it).
    std::optional<BreakerTransition> health_check_passed(time_point now) {
        std::lock_guard lock(mu_);
        if (state_ != BreakerState::open) return std::nullopt;
        return move_to(BreakerState::closed, now);
    }

    /// Operator: refuse every call until reset().
    std::optional<BreakerTransition> force_open(time_point now) {
        std::lock_guard lock(mu_);
        return move_to(BreakerState::forced_open, now);
    }
    /// Operator: let every call through and record nothing until reset().
    std::optional<BreakerTransition> disable(time_point now) {
        std::lock_guard lock(mu_);
        return move_to(BreakerState::disabled, now);
    }
    /// Back to a fresh closed breaker: empty window, no streak, first open time again.
    std::optional<BreakerTransition> reset(time_point now) {
        std::lock_guard lock(mu_);
        auto t = move_to(BreakerState::closed, now);
        clear_window();
        opens_ = 0;
        return t;
    }

    /// Shares the breaker through `s` (nullptr: stop).
    void attach(BreakerSync* s) {
        std::lock_guard lock(mu_);
        sync_ = s;
    }
    /// Another instance's breaker for the same route moved (heard through a shared store):
    /// this one follows. `to` open: open for `open_for` from `now` (an open breaker only ever
    /// has its time extended, and `opens` carries the escalation over); closed: a successful
    /// probe elsewhere closes this one too. A forced-open or disabled breaker stays as the
    /// operator left it, and half-open is each instance's own business. Not reported back.
    std::optional<BreakerTransition> adopt(BreakerState to, time_point now, std::chrono::milliseconds open_for, int opens) {
        std::lock_guard lock(mu_);
        if (state_ == BreakerState::forced_open || state_ == BreakerState::disabled) return std::nullopt;
        if (to == BreakerState::open) {
            if (open_for.count() <= 0) return std::nullopt;
            if (state_ == BreakerState::open && open_until_ >= now + open_for) return std::nullopt;
            BreakerTransition t{state_, BreakerState::open, open_for};
            state_ = BreakerState::open;
            open_until_ = now + open_for;
            last_open_for_ = open_for;
            opens_ = std::max(opens_, opens);
            probe_successes_ = 0;
            probes_in_flight_ = 0;
            return t;
        }
        if (to == BreakerState::closed && state_ != BreakerState::closed) {
            BreakerTransition t{state_, BreakerState::closed, {}};
            state_ = BreakerState::closed;
            opens_ = 0;
            clear_window();
            probes_in_flight_ = 0;
            return t;
        }
        return std::nullopt;
    }
    /// Openings since the last close (the escalation of the open time).
    int opens() const {
        std::lock_guard lock(mu_);
        return opens_;
    }

    /// Current state (an open breaker whose time is up still reads open until the next try_acquire).
    BreakerState state() const {
        std::lock_guard lock(mu_);
        return state_;
    }
    /// When an open breaker lets a probe through; meaningful in state open.
    time_point open_until() const {
        std::lock_guard lock(mu_);
        return open_until_;
    }
    /// When a call could next be let through: the end of the open time; nullopt
    /// when that is unknown (forced open, half-open with its probes in flight, or held
    /// for health checks).
    std::optional<time_point> recovers_at() const {
        std::lock_guard lock(mu_);
        if (state_ == BreakerState::open && !held_) return open_until_;
        return std::nullopt;
    }
    /// Open duration chosen at the last opening.
    std::chrono::milliseconds last_open_duration() const {
        std::lock_guard lock(mu_);
        return last_open_for_;
    }
    /// Calls and failures in the current window.
    std::pair<std::uint64_t, std::uint64_t> window_counts(time_point now) {
        std::lock_guard lock(mu_);
        roll(seconds_of(now));
        return {calls_, failures_};
    }
    const BreakerOptions& options() const noexcept { return opts_; }

private:
    struct Bucket {
        std::int64_t second = -1;
        std::uint32_t calls = 0;
        std::uint32_t failures = 0;
    };

    static std::uint64_t random_seed() {
        std::random_device rd;
        return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
    }

    static std::int64_t seconds_of(time_point t) noexcept {
        return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
    }

    // Evicts buckets older than the window; keeps running totals exact.
    void roll(std::int64_t sec) noexcept {
        const std::int64_t w = opts_.window.count();
        if (head_ < 0) {
            head_ = sec;
            return;
        }
        if (sec <= head_) return;
        // Every second in (head_, sec] starts a new bucket; evict what it replaces.
        const std::int64_t steps = std::min<std::int64_t>(sec - head_, w);
        for (std::int64_t s = sec - steps + 1; s <= sec; ++s) {
            Bucket& b = ring_[static_cast<std::size_t>(s % w)];
            calls_ -= b.calls;
            failures_ -= b.failures;
            b = Bucket{s, 0, 0};
        }
        head_ = sec;
    }

    void add(time_point now, bool failure) noexcept {
        const std::int64_t w = opts_.window.count();
        const std::int64_t sec = seconds_of(now);
        roll(sec);
        // A thread that read the clock a little before another may record late:
        // it lands in its own second while that is still in the window.
        const std::int64_t s = std::max(std::min(sec, head_), head_ - w + 1);
        Bucket& b = ring_[static_cast<std::size_t>(s % w)];
        if (b.second != s) b = Bucket{s, 0, 0};
        ++b.calls;
        ++calls_;
        if (failure) {
            ++b.failures;
            ++failures_;
        }
        if (sync_) sync_->breaker_counted(failure);
    }

    void clear_window() noexcept {
        ring_.fill(Bucket{});
        calls_ = failures_ = 0;
        head_ = -1;
        consecutive_ = 0;
    }

    void release_probe() noexcept {
        if (probes_in_flight_ > 0) --probes_in_flight_;
    }

    std::optional<BreakerTransition> move_to(BreakerState to, time_point now) {
        if (to == state_ && to != BreakerState::open) return std::nullopt;
        BreakerTransition t{state_, to, std::chrono::milliseconds{0}};
        state_ = to;
        switch (to) {
            case BreakerState::open: {
                // open_base * multiplier^(opens so far), capped, then jittered.
                const double base = static_cast<double>(opts_.open_base.count());
                double ms = base * std::pow(opts_.open_multiplier, static_cast<double>(opens_));
                ms = std::min(ms, static_cast<double>(opts_.open_max.count()));
                ms *= 1.0 + opts_.open_jitter * (2.0 * jitter_.uniform() - 1.0);
                ++opens_;
                last_open_for_ = std::chrono::milliseconds{static_cast<std::int64_t>(ms)};
                open_until_ = now + last_open_for_;
                t.open_for = last_open_for_;
                probe_successes_ = 0;
                break;
            }
            case BreakerState::half_open:
                probe_successes_ = 0;
                probes_in_flight_ = 0;
                break;
            case BreakerState::closed:
                opens_ = 0;
                clear_window();
                probes_in_flight_ = 0;
                break;
            case BreakerState::forced_open:
            case BreakerState::disabled:
                clear_window();
                probes_in_flight_ = 0;
                break;
        }
        if (sync_) sync_->breaker_changed(to, t.open_for, opens_);
        return t;
    }

    BreakerOptions opts_{};
    mutable std::mutex mu_{};
    BreakerState state_ = BreakerState::closed;
    std::array<Bucket, FAILOVER_BREAKER_MAX_WINDOW_SECONDS> ring_{};
    std::int64_t head_ = -1;
    std::uint64_t calls_ = 0;
    std::uint64_t failures_ = 0;
    int consecutive_ = 0;
    int opens_ = 0;
    int probes_in_flight_ = 0;
    int probe_successes_ = 0;
    bool held_ = false;  // health checks own recovery
    time_point open_until_{};
    std::chrono::milliseconds last_open_for_{0};
    Jitter jitter_;
    BreakerSync* sync_ = nullptr;  // a shared store, when the route is bound to one
};

FAILOVER_END_NAMESPACE
