// SPDX-License-Identifier: MIT
// AnyRoute: a route of any adapter and transport type behind one virtual call
// per visit, for chains built at run time (DynamicRouter) and for the
// deployments of a RouteGroup.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "failover/breaker.hpp"
#include "failover/budget.hpp"
#include "failover/detail/engine/async.hpp"
#include "failover/detail/engine/blocking.hpp"
#include "failover/detail/engine/health.hpp"
#include "failover/detail/engine/streaming.hpp"
#include "failover/rate_limit.hpp"
#include "failover/route.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

namespace detail {
struct AnyRouteAccess;
}

/// A route of any adapter and transport type, for chains built at run time
/// (from configuration, from the API keys present, ...). Costs one virtual
/// call per route visit.
class AnyRoute {
public:
    template <class A, class T>
    AnyRoute(Route<A, T> r) : p_(std::make_unique<Model<Route<A, T>>>(std::move(r))) {}  // NOLINT(google-explicit-constructor)

    const std::string& name() const noexcept { return p_->name(); }
    CircuitBreaker& breaker() const noexcept { return p_->breaker(); }
    RetryBudget& retry_budget() const noexcept { return p_->retry_budget(); }
    RateLimiter& rate_limiter() const noexcept { return p_->rate_limiter(); }
    RouteLoad load() const noexcept { return p_->load(); }
    /// See Route::share_state.
    void share_state(StateStore& store) { p_->share_state(store); }
    const RouteOptions& options() const noexcept { return p_->options(); }
    /// True when the route calls a provider over a transport.
    bool is_http() const noexcept { return p_->is_http(); }

private:
    friend struct detail::AnyRouteAccess;
    struct Concept {
        virtual ~Concept() = default;
        virtual detail::engine::Step run(detail::engine::RequestState& rs) = 0;
        virtual detail::engine::Step run_stream(detail::engine::RequestState& rs, detail::engine::StreamDelivery& out) = 0;
        virtual std::unique_ptr<detail::engine::AsyncVisitBase> async_visit(detail::engine::RequestState& rs) = 0;
        virtual std::optional<detail::engine::CheckedRoute> checked() = 0;
        virtual const std::string& name() const noexcept = 0;
        virtual CircuitBreaker& breaker() const noexcept = 0;
        virtual RetryBudget& retry_budget() const noexcept = 0;
        virtual RateLimiter& rate_limiter() const noexcept = 0;
        virtual RouteLoad load() const noexcept = 0;
        virtual void share_state(StateStore& store) = 0;
        virtual const RouteOptions& options() const noexcept = 0;
        virtual bool is_http() const noexcept = 0;
    };
    template <class R>
    struct Model final : Concept {
        explicit Model(R r) : route(std::move(r)) {}
        detail::engine::Step run(detail::engine::RequestState& rs) override { return detail::engine::run_route(route, rs); }
        detail::engine::Step run_stream(detail::engine::RequestState& rs, detail::engine::StreamDelivery& out) override {
            return detail::engine::run_route_stream(route, rs, out);
        }
        std::unique_ptr<detail::engine::AsyncVisitBase> async_visit(detail::engine::RequestState& rs) override {
            return std::make_unique<detail::engine::AsyncVisit<R>>(route, rs);
        }
        std::optional<detail::engine::CheckedRoute> checked() override { return detail::engine::checked_route(route); }
        const std::string& name() const noexcept override { return route.name(); }
        CircuitBreaker& breaker() const noexcept override { return route.breaker(); }
        RetryBudget& retry_budget() const noexcept override { return route.retry_budget(); }
        RateLimiter& rate_limiter() const noexcept override { return route.rate_limiter(); }
        RouteLoad load() const noexcept override { return route.load(); }
        void share_state(StateStore& store) override { route.share_state(store); }
        const RouteOptions& options() const noexcept override { return route.options(); }
        bool is_http() const noexcept override { return R::is_http; }
        R route{};
    };
    std::unique_ptr<Concept> p_{};
};

namespace detail {
struct AnyRouteAccess {
    static engine::Step run(AnyRoute& r, engine::RequestState& rs) { return r.p_->run(rs); }
    static engine::Step run_stream(AnyRoute& r, engine::RequestState& rs, engine::StreamDelivery& out) {
        return r.p_->run_stream(rs, out);
    }
    static std::unique_ptr<engine::AsyncVisitBase> async_visit(AnyRoute& r, engine::RequestState& rs) {
        return r.p_->async_visit(rs);
    }
    static std::optional<engine::CheckedRoute> checked(AnyRoute& r) { return r.p_->checked(); }
};
}  // namespace detail

FAILOVER_END_NAMESPACE
