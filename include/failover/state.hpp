// SPDX-License-Identifier: MIT
// Where a route's health lives when several instances share it. Each route's
// state (its circuit breaker with its window counts, its cooldown, its retry
// budget) is an in-process object, and that object is the in-memory store: the
// hot path reads and changes only it, with no lock shared between routes and no
// I/O. A StateStore shares those objects between instances: bound to a route,
// it hears of every change the route makes (a transition, an outcome counted
// in the window, tokens taken or refunded, a cooldown) through a RouteStateSync,
// carries them to its siblings in the background, and applies what the siblings
// did to the local objects (adopt). Tenant budgets are the other half: a
// BudgetStore (budget.hpp) with reserve-then-settle.
//
// A RouteStateSync's hooks are called on the request's thread, some under the
// breaker's lock: they must be cheap, never block and never call back into the
// route. Times that cross processes are wall-clock; a store converts them to the
// local steady clock when it applies them, so a shared store assumes the router
// runs on its default clock.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "failover/breaker.hpp"
#include "failover/retry.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// The store's side of one bound route: what the route tells it (breaker_changed and
/// breaker_counted from BreakerSync, retry_tokens_changed from RetryBudgetSync, and:)
class RouteStateSync : public BreakerSync, public RetryBudgetSync {
public:
    /// The route will be skipped for `duration` from now (a long Retry-After).
    virtual void cooled_down(std::chrono::milliseconds duration) noexcept = 0;
    /// The route is being destroyed: the store must stop touching its objects before this returns.
    virtual void unbind() noexcept = 0;
};

/// What a route hands a store when it binds: its identity and its state objects, which
/// the store may adopt siblings' changes into (from its own thread: they are thread-safe).
struct RouteBinding {
    std::string id{};                                  ///< the route's name: the same name on every instance
    CircuitBreaker* breaker = nullptr;
    RetryBudget* retry_budget = nullptr;
    /// Skips the route until the given local time (only ever extends a cooldown; never reported back).
    std::function<void(std::chrono::steady_clock::time_point)> adopt_cooldown{};
};

/// Shares route state between instances. Set RouterOptions::state_store: every route of the
/// router (group deployments included) binds when the router is built. Thread-safe.
class StateStore {
public:
    virtual ~StateStore() = default;
    /// Starts sharing one route's state; the route keeps the returned object and calls
    /// unbind() on it before its state goes away.
    virtual std::shared_ptr<RouteStateSync> bind(const RouteBinding& route) = 0;
};

FAILOVER_END_NAMESPACE
