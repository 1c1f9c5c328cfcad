// SPDX-License-Identifier: MIT
// A route group: several deployments of one model in one position of the chain
// (two OpenAI keys, Azure in two regions, ...). For each request the group
// orders its deployments (by weight, by fewest in flight, or by latency with
// two random choices: decide.hpp's balance()) and the request visits them in
// that order; a deployment that fails or is skipped moves the request to the
// next one of the group before the chain moves on. Each deployment is a whole
// route: its own breaker, retry budget, cooldown, rate limit and metrics.
//
// Inside the engine a group is one "slot" per deployment: a chain's slots are
// its routes and its groups' deployments, in order, and a request's position
// counts slots, so every driver (blocking, streaming, async with hedging) walks
// a group as it walks routes; the group only says which deployment fills each
// of its slots for the request at hand.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "failover/any_route.hpp"
#include "failover/detail/engine/decide.hpp"
#include "failover/detail/engine/request_state.hpp"
#include "failover/route.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// Deployments of one model in one position of the chain.
/// @code
/// RouteGroup gpt{"gpt-4o", {.balance = Balance::latency},
///                Route{"openai-a", OpenAI{{.model = "gpt-4o", .api_key = env("OPENAI_KEY_A")}}, http},
///                Route{"azure-eu", Azure{...}, http}};
/// @endcode
class RouteGroup {
public:
    /// Throws std::invalid_argument on an empty name, no deployments, or weights that are
    /// not one positive number per deployment.
    RouteGroup(std::string name, std::vector<AnyRoute> deployments, GroupOptions opts = {})
        : name_(std::move(name)), deployments_(std::move(deployments)), opts_(std::move(opts)) {
        if (name_.empty()) throw std::invalid_argument("failover: RouteGroup: name must not be empty");
        if (deployments_.empty())
            throw std::invalid_argument("failover: RouteGroup '" + name_ + "': needs at least one deployment");
        if (!opts_.weights.empty() && opts_.weights.size() != deployments_.size())
            throw std::invalid_argument("failover: RouteGroup '" + name_ + "': GroupOptions.weights has " +
                                        std::to_string(opts_.weights.size()) + " entries for " +
                                        std::to_string(deployments_.size()) + " deployments");
        for (double w : opts_.weights)
            if (!(w > 0.0) || !std::isfinite(w))
                throw std::invalid_argument("failover: RouteGroup '" + name_ + "': GroupOptions.weights invalid: " +
                                            std::to_string(w) + " (must be > 0)");
    }
    /// The deployments given one by one (Routes of any types).
    template <class... Rs>
        requires(sizeof...(Rs) > 0 && (std::is_constructible_v<AnyRoute, Rs> && ...))
    RouteGroup(std::string name, GroupOptions opts, Rs... deployments)
        : RouteGroup(std::move(name), list(std::move(deployments)...), std::move(opts)) {}

    RouteGroup(RouteGroup&&) noexcept = default;
    RouteGroup& operator=(RouteGroup&&) noexcept = default;

    const std::string& name() const noexcept { return name_; }
    const GroupOptions& options() const noexcept { return opts_; }
    std::size_t size() const noexcept { return deployments_.size(); }
    /// Deployment `i` in the order given (e.g. to read its breaker).
    AnyRoute& deployment(std::size_t i) { return deployments_.at(i); }
    std::span<AnyRoute> deployments() noexcept { return deployments_; }

private:
    template <class... Rs>
    static std::vector<AnyRoute> list(Rs... rs) {
        std::vector<AnyRoute> v;
        v.reserve(sizeof...(Rs));
        (v.emplace_back(std::move(rs)), ...);
        return v;
    }

    std::string name_{};
    std::vector<AnyRoute> deployments_{};
    GroupOptions opts_{};
};

namespace detail {

/// The deployment that fills slot `k` of group `g` for request `rs`: the group's order for
/// the request is chosen when its first slot is visited (and kept in `rs` for the rest).
inline AnyRoute& group_slot(RouteGroup& g, std::size_t k, engine::RequestState& rs) {
    if (k == 0 || rs.group != &g || rs.group_order.size() != g.size()) {
        std::vector<RouteLoad> loads;
        loads.reserve(g.size());
        for (auto& d : g.deployments()) loads.push_back(d.load());
        engine::balance(g.options().balance, loads, g.options().weights, [&] { return rs.jitter.uniform(); },
                        rs.group_order);
        rs.group = &g;
    }
    return g.deployment(rs.group_order[k]);
}

// A chain's links are Routes and RouteGroups; these say what each means to a router.

template <class L>
inline constexpr bool is_group = std::is_same_v<L, RouteGroup>;

/// Slots a link fills: 1 for a route, one per deployment for a group.
template <class L>
std::size_t slots_of(L& l) noexcept {
    if constexpr (is_group<L>) return l.size();
    else return 1;
}

/// Calls f(route) for each route of a link (a Route, or an AnyRoute per deployment).
template <class L, class F>
void for_each_in(L& l, F&& f) {
    if constexpr (is_group<L>) {
        for (auto& d : l.deployments()) f(d);
    } else {
        f(l);
    }
}

/// (is_http, deadline_weight) of each slot of a link, for the deadline shares.
template <class L>
void add_weights(L& l, std::vector<std::pair<bool, double>>& out) {
    for_each_in(l, [&](auto& r) {
        if constexpr (std::is_same_v<std::decay_t<decltype(r)>, AnyRoute>) out.emplace_back(r.is_http(), r.options().deadline_weight);
        else out.emplace_back(std::decay_t<decltype(r)>::is_http, r.options().deadline_weight);
    });
}

/// A link's visit by the blocking (run) or streaming (run_stream with `out`) driver: a
/// route once, a group's deployments in the group's order until one does not say next.
template <class L, class Run>
engine::Step visit_link(L& l, engine::RequestState& rs, Run&& run) {
    using engine::Step;
    if constexpr (is_group<L>) {
        Step step = Step::next;
        for (std::size_t k = 0; k < l.size() && step == Step::next; ++k, ++rs.position)
            step = run(group_slot(l, k, rs));
        return step;
    } else {
        const Step step = run(l);
        ++rs.position;
        return step;
    }
}

/// Runs one route by the blocking driver, whatever its type.
struct RunBlocking {
    engine::RequestState& rs;
    template <class R>
    engine::Step operator()(R& r) const {
        if constexpr (std::is_same_v<R, AnyRoute>) return AnyRouteAccess::run(r, rs);
        else return engine::run_route(r, rs);
    }
};
/// Runs one route by the streaming driver, whatever its type.
struct RunStreaming {
    engine::RequestState& rs;
    engine::StreamDelivery& out;
    template <class R>
    engine::Step operator()(R& r) const {
        if constexpr (std::is_same_v<R, AnyRoute>) return AnyRouteAccess::run_stream(r, rs, out);
        else return engine::run_route_stream(r, rs, out);
    }
};

/// Slot `k` of a link as the async driver visits it.
template <class L>
std::unique_ptr<engine::AsyncVisitBase> async_slot(L& l, std::size_t k, engine::RequestState& rs) {
    if constexpr (is_group<L>) return AnyRouteAccess::async_visit(group_slot(l, k, rs), rs);
    else if constexpr (std::is_same_v<L, AnyRoute>) return AnyRouteAccess::async_visit(l, rs);
    else return std::make_unique<engine::AsyncVisit<L>>(l, rs);
}

/// Health checks of every route of a link that the loop can probe.
template <class L>
void add_checked(L& l, std::vector<engine::CheckedRoute>& out) {
    for_each_in(l, [&](auto& r) {
        std::optional<engine::CheckedRoute> c;
        if constexpr (std::is_same_v<std::decay_t<decltype(r)>, AnyRoute>) c = AnyRouteAccess::checked(r);
        else c = engine::checked_route(r);
        if (c) out.push_back(std::move(*c));
    });
}

/// Names of every route of a link (unique across the chain).
template <class L>
void add_names(L& l, std::vector<const std::string*>& out) {
    for_each_in(l, [&](auto& r) { out.push_back(&r.name()); });
}

/// Whether the async driver can run a link: a group decides per deployment at run time.
template <class L>
constexpr bool runs_on_loop_link() {
    if constexpr (is_group<L> || std::is_same_v<L, AnyRoute>) return true;
    else return engine::runs_on_loop<L>;
}
template <class L>
inline constexpr bool link_runs_on_loop = runs_on_loop_link<L>();

}  // namespace detail

FAILOVER_END_NAMESPACE
