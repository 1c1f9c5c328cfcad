// SPDX-License-Identifier: MIT
// EventLoop: one thread drives many requests at once. It owns one libcurl multi
// handle (one socket per transfer, one connection cache that outlives a burst,
// HTTP/2 multiplexing where the server offers it), a queue of tasks other
// threads hand it, and timers on the router's Clock (backoff, Retry-After, the
// wait for a route to recover). Nothing in it sleeps a thread per request.
//
// Drive it from your own loop (call run_once() each turn, with a zero wait from
// a game's frame or a bounded one from a service's idle time) or let it run on
// its own thread (start()). Routers hand it requests with submit(); their
// completions run on the loop's thread. Everything but post(), wake() and the
// counters must be called on the thread that drives it (from the callbacks it
// runs, or between run_once() calls).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "failover/clock.hpp"
#include "failover/failure.hpp"
#include "failover/transport.hpp"
#include "failover/transport/curl.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// Settings of an EventLoop.
struct EventLoopOptions {
    /// The time its timers follow; share the router's (a ManualClock in tests). Null: the system clock.
    std::shared_ptr<Clock> clock{};
    /// Idle connections kept open for reuse after a burst (libcurl's connection cache).
    std::size_t max_idle_connections = 1024;
    /// Ask for HTTP/2 (over TLS by ALPN); several requests to one host then share one connection.
    bool http2 = true;
};

namespace detail {
class EventLoopState;
}

/// One thread, many requests in flight: libcurl's multi interface plus timers.
/// @code
/// failover::EventLoop loop;
/// loop.start();                                   // or call loop.run_once(wait) from your own loop
/// auto answer = router.submit(loop, request);     // std::future<Result<ChatResponse>>
/// router.submit(loop, request, [](failover::Result<failover::ChatResponse> r) { ... });  // on the loop's thread
/// @endcode
class EventLoop {
public:
    using TimerId = std::uint64_t;

    EventLoop() : EventLoop(EventLoopOptions{}) {}
    /// Throws std::runtime_error if libcurl cannot start.
    explicit EventLoop(EventLoopOptions options);
    /// Stops the background thread, if any, and ends what is still running: every transfer
    /// and wait ends as cancelled, so each submitted request still gets its completion.
    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    /// Runs `task` on the loop's thread at its next turn. Thread-safe; wakes the loop.
    void post(std::function<void()> task);
    /// Interrupts a run_once() that is waiting. Thread-safe.
    void wake() noexcept;

    /// One turn: runs posted tasks, fires due timers, moves transfers on, and waits at most
    /// `max_wait` (less when a timer or transfer is due sooner; zero: never blocks) for
    /// sockets to be ready. Returns the tasks, timers and transfers it completed.
    /// Throws std::logic_error when called while start()'s thread drives the loop.
    std::size_t run_once(std::chrono::milliseconds max_wait = std::chrono::milliseconds{0});
    /// Drives the loop on a thread of its own until stop() or destruction.
    void start();
    /// Stops start()'s thread (what is in flight stays, for run_once() or a later start()).
    void stop();

    /// Transfers in flight, timers pending and tasks queued. Thread-safe.
    std::size_t transfers() const noexcept;
    std::size_t timers() const noexcept;
    /// True when nothing is in flight, pending or queued. Thread-safe.
    bool idle() const noexcept;
    /// When the next timer is due on the loop's clock, if any: an application driving the
    /// loop waits no longer than this (or libcurl's own timeouts, which run_once honours). Loop thread only.
    std::optional<Clock::time_point> next_due() const;
    /// The clock the timers follow.
    Clock& clock() const noexcept;
    /// True while the destructor ends what is left: start nothing new. Loop thread only.
    bool closing() const noexcept;

    /// Calls `fn` on the loop's thread after `delay` on the loop's clock. Loop thread only.
    TimerId after(Clock::duration delay, std::function<void()> fn);
    /// Cancels a timer that has not fired (false: it already fired or never existed). Loop thread only.
    bool cancel(TimerId id) noexcept;
    /// Sends `req` with `options` (the route's CurlTransport's) within `d`, then calls `done`
    /// on the loop's thread with the response (any status) or the classified Failure, as
    /// CurlTransport::send would. d.stop cancels it at once. Loop thread only.
    void send(const CurlOptions& options, HttpRequest req, const Deadline& d,
              std::function<void(Result<HttpResponse>)> done);
    /// As send, but a 2xx body goes to spec.on_data as it arrives (on the loop's thread), as
    /// CurlTransport::stream hands it over: d.timeout limits the wait for the first progress
    /// and spec.idle each gap after it (a stall ends the transfer as a timeout), not the
    /// stream's whole length. `done` gets the status and headers, or the Failure.
    void stream(const CurlOptions& options, HttpRequest req, const Deadline& d, StreamSpec spec,
                std::function<void(Result<HttpResponse>)> done);

private:
    std::unique_ptr<detail::EventLoopState> s_;
};

FAILOVER_END_NAMESPACE

#ifndef FAILOVER_COMPILED_LIB
#include "failover/detail/event_loop-inl.hpp"
#endif
