// SPDX-License-Identifier: MIT
// The admission limit of a router (RouterOptions::max_in_flight): how many
// requests it runs at once. A request over the limit waits for a slot (on a
// condition variable, woken by the request that leaves, by a stop request or by
// the end of its wait) and never starts when none frees: running out of our
// own descriptors is our limit, not the provider's fault, so it must never
// reach a route as a connection failure that drains its retry budget and opens
// its breaker. The default limit follows the process's descriptor limit.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <stop_token>
#include <string>
#include <utility>

#if __has_include(<sys/resource.h>)
#include <sys/resource.h>
#define FAILOVER_HAS_RLIMIT 1
#endif

#include "failover/detail/engine/request_state.hpp"
#include "failover/failure.hpp"
#include "failover/metrics.hpp"
#include "failover/response.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE
namespace detail::engine {

/// Descriptors one request holds while it runs (a socket, and the socketpair libcurl makes
/// to wake each transfer), and those kept back for everything else in the process (pooled
/// connections, files, the application's own).
inline constexpr std::size_t descriptors_per_request = 3;
inline constexpr std::size_t descriptors_reserved = 128;

/// The default of RouterOptions::max_in_flight: what the soft RLIMIT_NOFILE leaves after
/// the reserve, over descriptors_per_request (at least 1); 0 (no limit) when the process has
/// no descriptor limit or it cannot be read.
inline std::size_t descriptor_budget() noexcept {
#ifdef FAILOVER_HAS_RLIMIT
    struct rlimit lim {};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) return 0;
    const auto soft = static_cast<std::size_t>(lim.rlim_cur);
    return std::max<std::size_t>(1, soft > descriptors_reserved ? (soft - descriptors_reserved) / descriptors_per_request : 1);
#else
    return 0;
#endif
}

/// Counts the requests in flight against a limit (0: none) and makes the ones over it wait.
class Admission {
public:
    explicit Admission(std::size_t limit) noexcept : limit_(limit) {}
    Admission(const Admission&) = delete;
    Admission& operator=(const Admission&) = delete;

    /// A slot held by one request, given back when it goes out of scope. Empty: not admitted.
    class Slot {
    public:
        Slot() = default;
        explicit Slot(Admission* a) noexcept : a_(a) {}
        Slot(Slot&& o) noexcept : a_(std::exchange(o.a_, nullptr)) {}
        Slot& operator=(Slot&&) = delete;
        ~Slot() {
            if (a_) a_->leave();
        }
        explicit operator bool() const noexcept { return a_ != nullptr; }

    private:
        Admission* a_ = nullptr;
    };

    std::size_t limit() const noexcept { return limit_; }
    std::size_t in_flight() const noexcept { return in_flight_.load(); }
    std::size_t waiting() const noexcept { return waiting_.load(); }

    /// A slot if one is free now, else an empty Slot (the async driver waits on its loop).
    Slot try_enter() noexcept { return take() ? Slot(this) : Slot{}; }

    /// Takes a slot at once when one is free; otherwise waits up to `wait_for()` (steady
    /// time, asked only then) for one, and gives up early on a stop request. An empty Slot
    /// when none was taken.
    template <class WaitFor>
    Slot enter(WaitFor&& wait_for, const std::stop_token& stop) {
        if (take()) return Slot(this);
        const std::chrono::nanoseconds wait = wait_for();
        if (wait <= std::chrono::nanoseconds::zero() || stop.stop_requested()) return {};
        std::unique_lock lock(mu_);
        ++waiting_;
        const bool got = cv_.wait_for(lock, stop, wait, [this] { return take(); });
        --waiting_;
        return got ? Slot(this) : Slot{};
    }

private:
    bool take() noexcept {
        if (limit_ == 0) {
            ++in_flight_;
            return true;
        }
        std::size_t n = in_flight_.load();
        while (n < limit_)
            if (in_flight_.compare_exchange_weak(n, n + 1)) return true;
        return false;
    }

    // Sequentially consistent on both sides: a waiter that registered before this load is
    // woken, and one that registers after it sees the slot free.
    void leave() noexcept {
        --in_flight_;
        if (waiting_.load() == 0) return;
        std::lock_guard lock(mu_);
        cv_.notify_all();  // all: a woken waiter may have been stopped meanwhile
    }

    const std::size_t limit_;
    std::atomic<std::size_t> in_flight_{0};
    std::atomic<std::size_t> waiting_{0};
    std::mutex mu_{};
    std::condition_variable_any cv_{};
};

/// The admission of the free route_with_fallback (default RouterOptions: the descriptor
/// budget), one for the whole process.
inline Admission& process_admission() {
    static Admission admission{descriptor_budget()};
    return admission;
}

/// How long request `rs` may wait for a slot: RouterOptions::admission_wait, never past its
/// deadline.
inline std::chrono::nanoseconds admission_wait(const RequestState& rs) {
    const std::chrono::nanoseconds left = std::max(rs.remaining(), std::chrono::nanoseconds::zero());
    return rs.opts.admission_wait ? std::min<std::chrono::nanoseconds>(*rs.opts.admission_wait, left) : left;
}

/// The Failure of a request that found no slot after waiting `waited`: cancelled when the
/// caller stopped it, else local_resource (terminal: our limit, not a route's fault). No
/// attempt was made; the ExhaustedEvent counts the request in the metrics.
inline Failure not_admitted(RequestState& rs, const Admission& admission, std::chrono::nanoseconds waited) {
    if (rs.stop.stop_requested()) return Failure::of(Reason::cancelled, "cancelled by the caller while waiting for admission");
    Failure f = Failure::of(Reason::local_resource,
                            "admission limit: " + std::to_string(admission.limit()) +
                                " requests in flight (RouterOptions::max_in_flight) and none finished within " +
                                std::to_string(std::chrono::ceil<std::chrono::milliseconds>(waited).count()) +
                                " ms; the request was not sent");
    rs.emit(ExhaustedEvent{rs.req.tenant, f.reason, 0, rs.clock.now() - rs.start});
    return f;
}

/// Runs `run()` for request `rs` inside a slot of `admission`, or returns why it got none.
/// The time it may wait is read only when no slot is free at once.
template <class Run>
Result<ChatResponse> admitted(Admission& admission, RequestState& rs, Run&& run) {
    std::chrono::nanoseconds granted{0};
    const Admission::Slot slot = admission.enter([&] { return granted = admission_wait(rs); }, rs.stop);
    if (!slot) return not_admitted(rs, admission, granted);
    return run();
}

}  // namespace detail::engine
FAILOVER_END_NAMESPACE
