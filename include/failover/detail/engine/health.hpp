// SPDX-License-Identifier: MIT
// Active health checks: on an EventLoop's timer, every route whose breaker is
// open gets a cheap probe (a one-token request through its own adapter and
// transport options), and a probe that comes back as an answer closes the
// breaker. While checks run they own recovery: an open breaker lets no user
// request through as its half-open probe. A probe is an event and a metric,
// never an attempt of a request, and no tenant's budget is charged for it.
// Everything here runs on the loop's thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "failover/breaker.hpp"
#include "failover/clock.hpp"
#include "failover/detail/engine/async.hpp"
#include "failover/detail/engine/exchange.hpp"
#include "failover/event_loop.hpp"
#include "failover/failure.hpp"
#include "failover/metrics.hpp"
#include "failover/request.hpp"
#include "failover/response.hpp"
#include "failover/router_options.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

namespace detail::engine {

/// One route as the checker sees it: what it needs to probe it, and nothing else.
struct CheckedRoute {
    const std::string* name = nullptr;
    CircuitBreaker* breaker = nullptr;
    std::chrono::milliseconds connect_timeout{};
    CurlOptions transport{};  // a copy: a probe in flight never points into a route
    std::function<Result<HttpRequest>(const ChatRequest&)> encode{};
    std::function<Result<ChatResponse>(const ChatRequest&, Result<HttpResponse>&&, std::chrono::system_clock::time_point)>
        interpret{};
    bool probing = false;
};

/// Route `r` as a checked route, or nothing when it cannot be probed on a loop (a local
/// route, or a transport the loop cannot drive): such a breaker keeps its usual probes.
template <class R>
std::optional<CheckedRoute> checked_route(R& r) {
    if constexpr (R::is_http && runs_on_loop<R>) {
        CheckedRoute c;
        c.name = &r.name();
        c.breaker = &r.breaker();
        c.connect_timeout = r.options().connect_timeout;
        c.transport = r.transport().options();
        c.encode = [&r](const ChatRequest& probe) { return prepare(r.adapter(), probe); };
        c.interpret = [&r](const ChatRequest& probe, Result<HttpResponse>&& res, std::chrono::system_clock::time_point wall) {
            return interpret(r.adapter(), probe, std::move(res), wall);
        };
        return c;
    } else {
        (void)r;
        return std::nullopt;
    }
}

/// The checks of one router on one loop. Rounds and probe results run on the loop's
/// thread; stop() and detach() may come from any thread. Everything that touches the
/// router's routes or sinks does so under one mutex and only while the router is there,
/// so a router destroyed first (detach) is never reached from the loop again.
class HealthChecker : public std::enable_shared_from_this<HealthChecker> {
public:
    HealthChecker(EventLoop& loop, HealthCheckOptions options, std::vector<CheckedRoute> routes, Clock& clock,
                  std::function<void(const Event&)> emit)
        : loop_(loop), options_(std::move(options)), routes_(std::move(routes)), clock_(clock), emit_(std::move(emit)) {
        ChatRequest p;
        p.messages = {user(options_.prompt)};
        p.max_tokens = 1;
        probe_ = std::move(p);
    }

    /// Loop thread: holds the breakers and runs the first round now.
    void start() {
        {
            std::lock_guard lock(mu_);
            if (router_gone_ || stopped_) return;
            running_ = true;
            for (auto& r : routes_) r.breaker->hold_for_health_checks(true);
        }
        round();
    }

    /// Any thread: no more rounds or verdicts; breakers back to their own half-open probes.
    void stop() {
        std::lock_guard lock(mu_);
        stopped_ = true;
        if (!running_) return;
        running_ = false;
        if (!router_gone_)
            for (auto& r : routes_) r.breaker->hold_for_health_checks(false);
        if (!loop_gone_ && timer_) {
            auto self = shared_from_this();
            loop_.post([self] { self->cancel_timer(); });
        }
    }
    /// Any thread, while the routes still exist (the router's destructor, before its members
    /// go): the holds are released and nothing of the router is touched from here on.
    void detach() {
        stop();  // the routes still exist here
        std::lock_guard lock(mu_);
        router_gone_ = true;
    }

private:
    void cancel_timer() {
        std::lock_guard lock(mu_);
        if (timer_ && !running_) loop_.cancel(*timer_);
        timer_.reset();
    }

    void round() {
        std::lock_guard lock(mu_);
        timer_.reset();
        if (loop_.closing()) {
            loop_gone_ = true;
            if (running_ && !router_gone_)
                for (auto& r : routes_) r.breaker->hold_for_health_checks(false);  // recovery back to the breakers
            running_ = false;
        }
        if (!running_ || router_gone_) return;
        for (std::size_t i = 0; i < routes_.size(); ++i) {
            CheckedRoute& r = routes_[i];
            if (r.probing || r.breaker->state() != BreakerState::open) continue;
            Result<HttpRequest> http = r.encode(probe_);
            if (!http) {
                report(r, clock_.now(), std::move(http).error());
                continue;
            }
            Deadline d{};
            d.timeout = options_.timeout;
            d.connect_timeout = std::min(r.connect_timeout, options_.timeout);
            r.probing = true;
            auto self = shared_from_this();
            loop_.send(r.transport, std::move(*http), d, [self, i, t0 = clock_.now()](Result<HttpResponse> res) {
                self->probed(i, t0, std::move(res));
            });
        }
        auto self = shared_from_this();
        timer_ = loop_.after(options_.interval, [self] { self->round(); });
    }

    void probed(std::size_t i, Clock::time_point t0, Result<HttpResponse> res) {
        std::lock_guard lock(mu_);
        if (router_gone_) return;
        CheckedRoute& r = routes_[i];
        r.probing = false;
        Result<ChatResponse> outcome = r.interpret(probe_, std::move(res), clock_.wall_now());
        report(r, t0, std::move(outcome));
    }

    // Under mu_: the event, and the breaker closed by a passing probe while checks run.
    void report(CheckedRoute& r, Clock::time_point t0, Result<ChatResponse> outcome) {
        const auto now = clock_.now();
        HealthCheckEvent e{};
        e.route = *r.name;
        e.ok = outcome.has_value();
        e.latency = now - t0;
        if (!outcome) {
            e.reason = outcome.error().reason;
            e.status = outcome.error().status;
        }
        emit_(e);
        if (e.ok && running_)
            if (auto t = r.breaker->health_check_passed(now)) emit_(BreakerEvent{*r.name, *t});
    }

    EventLoop& loop_;
    HealthCheckOptions options_;
    std::vector<CheckedRoute> routes_;
    Clock& clock_;
    std::function<void(const Event&)> emit_;
    ChatRequest probe_{};
    std::mutex mu_{};
    std::optional<EventLoop::TimerId> timer_{};
    bool running_ = false;
    bool stopped_ = false;      // stop() came first: a start still queued does nothing
    bool router_gone_ = false;
    bool loop_gone_ = false;    // the loop closed: post nothing to it
};

}  // namespace detail::engine
FAILOVER_END_NAMESPACE
