// SPDX-License-Identifier: MIT
// The chain of responsibility. Router<Route...> holds its links (Routes and
// RouteGroups) in a tuple and folds over them for each request; DynamicRouter
// does the same over AnyRoutes and RouteGroups built at run time; the free
// route_with_fallback runs a one-off chain. Each is
// a thin face over the engine (detail/engine/): the decisions (eligibility, the
// deadline share, the breaker table, retry / repair / fail over / stop) are
// plain functions in decide.hpp, a RouteVisit keeps the books, and the blocking
// driver (blocking.hpp) performs the exchanges and sleeps between retries. Every
// hop is an Event. The total attempts of one request never exceed the sum of
// the routes' max_attempts. One Router serves many threads at once: per-request
// state lives on the stack, shared state (breakers, budgets, cooldowns) is
// synchronised.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <tuple>
#include <variant>
#include <type_traits>
#include <utility>
#include <vector>

#include "failover/adapter.hpp"
#include "failover/any_route.hpp"
#include "failover/event_loop.hpp"
#include "failover/detail/engine/admission.hpp"
#include "failover/detail/engine/async.hpp"
#include "failover/detail/engine/blocking.hpp"
#include "failover/detail/engine/gates.hpp"
#include "failover/detail/engine/health.hpp"
#include "failover/detail/engine/streaming.hpp"
#include "failover/failure.hpp"
#include "failover/metrics.hpp"
#include "failover/request.hpp"
#include "failover/response.hpp"
#include "failover/route.hpp"
#include "failover/route_group.hpp"
#include "failover/router_options.hpp"
#include "failover/stream.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

namespace detail {
/// weight_suffix[i]: the deadline weights of the HTTP routes from position i on, from
/// (is_http, deadline_weight) of each route in order.
inline std::vector<double> weight_suffix(const std::vector<std::pair<bool, double>>& routes) {
    std::vector<double> w;
    w.reserve(routes.size());
    for (const auto& [http, weight] : routes) w.push_back(http ? weight : 0.0);
    for (std::size_t i = w.size(); i-- > 1;) w[i - 1] += w[i];
    return w;
}

// What every router shares: options, sinks, the per-request seed, counters, the
// deadline weights and the compiled tool schemas.
class RouterCore {
public:
    explicit RouterCore(RouterOptions opts)
        : opts_(std::move(opts)), seed_(opts_.seed ? *opts_.seed : engine::random_seed()) {
        if (!opts_.clock) throw std::invalid_argument("failover: RouterOptions.clock is null");
        if (!opts_.sleeper) throw std::invalid_argument("failover: RouterOptions.sleeper is null");
        if (opts_.timeout.count() <= 0)
            throw std::invalid_argument("failover: RouterOptions.timeout invalid: " +
                                        std::to_string(opts_.timeout.count()) + " ms");
        if (opts_.max_recovery_waits < 0)
            throw std::invalid_argument("failover: RouterOptions.max_recovery_waits invalid: " +
                                        std::to_string(opts_.max_recovery_waits));
        if (opts_.admission_wait && opts_.admission_wait->count() < 0)
            throw std::invalid_argument("failover: RouterOptions.admission_wait invalid: " +
                                        std::to_string(opts_.admission_wait->count()) + " ms");
    }
    RouterCore(const RouterCore&) = delete;
    RouterCore& operator=(const RouterCore&) = delete;
    ~RouterCore() = default;

    /// Adds a sink. Safe while other threads route: they see it from their next request.
    void add_sink(std::shared_ptr<MetricsSink> s) {
        if (!s) return;
        std::lock_guard lock(sink_mu_);
        sinks_.push_back(std::move(s));
        std::shared_ptr<MetricsSink> next{};
        if (sinks_.size() == 1) next = sinks_.front();
        else next = std::make_shared<MultiSink>(sinks_);
        sink_.store(std::move(next), std::memory_order_release);
    }
    /// Stops the active health checks, if any: breakers go back to their own half-open
    /// probes at once. Thread-safe (but not from a sink's record(), which runs under the
    /// checks' lock); the router's destructor does it too.
    void stop_health_checks() {
        std::lock_guard lock(health_mu_);
        if (health_) health_->stop();
        health_.reset();
    }

    /// Times a sink threw (the request went on regardless).
    std::uint64_t sink_errors() const noexcept { return sink_errors_.load(std::memory_order_relaxed); }
    const RouterOptions& options() const noexcept { return opts_; }
    /// The admission limit in force (RouterOptions::max_in_flight, or what the descriptor
    /// limit gave when it was unset); 0: none.
    std::size_t max_in_flight() const noexcept { return admission_.limit(); }
    /// Requests running now.
    std::size_t in_flight() const noexcept { return admission_.in_flight(); }
    /// Requests waiting for a slot now.
    std::size_t waiting_for_admission() const noexcept { return admission_.waiting(); }

protected:
    // Runs `pass` (one visit of every route, in order) until an answer, a stop or exhaustion.
    template <class Pass>
    Result<ChatResponse> run(const ChatRequest& req, const engine::Mode& mode, Pass&& pass) {
        std::shared_ptr<MetricsSink> sink = sink_.load(std::memory_order_acquire);
        const std::uint64_t n = requests_.fetch_add(1, std::memory_order_relaxed) + 1;
        return engine::guarded(req, opts_, sink.get(), sink_errors_, seed_ ^ (0x9E3779B97F4A7C15ull * n), weights_,
                               tools_, mode, [&](engine::RequestState& rs) {
                                   return engine::admitted(admission_, rs, [&] { return engine::run_chain(rs, pass); });
                               });
    }
    // Hands the request to `loop`: the async driver walks `chain` on the loop's thread and
    // calls `done` there with the answer or the Failure.
    void run_async(EventLoop& loop, ChatRequest req, std::stop_token stop, engine::AsyncDone done,
                   engine::AsyncChain chain) {
        std::shared_ptr<MetricsSink> sink = sink_.load(std::memory_order_acquire);
        const std::uint64_t n = requests_.fetch_add(1, std::memory_order_relaxed) + 1;
        engine::AsyncCall::start(loop, chain, std::move(req),
                                 engine::AsyncShared{opts_, sink_errors_, weights_, tools_, admission_}, std::move(sink),
                                 seed_ ^ (0x9E3779B97F4A7C15ull * n), engine::Mode{std::move(stop), false, false},
                                 std::move(done));
    }
    // A stream on `loop`: `on_event` and `done` run on the loop's thread.
    void run_async_stream(EventLoop& loop, ChatRequest req, std::function<void(const StreamEvent&)> on_event,
                          const StreamOptions& options, std::stop_token stop, engine::AsyncDone done,
                          engine::AsyncChain chain) {
        std::shared_ptr<MetricsSink> sink = sink_.load(std::memory_order_acquire);
        const std::uint64_t n = requests_.fetch_add(1, std::memory_order_relaxed) + 1;
        engine::AsyncCall::start(loop, chain, std::move(req),
                                 engine::AsyncShared{opts_, sink_errors_, weights_, tools_, admission_}, std::move(sink),
                                 seed_ ^ (0x9E3779B97F4A7C15ull * n), engine::Mode{std::move(stop), true, options.restart},
                                 std::move(done), std::make_unique<engine::StreamDelivery>(std::move(on_event), options));
    }
    std::future<Result<ChatResponse>> run_async_stream(EventLoop& loop, ChatRequest req,
                                                       std::function<void(const StreamEvent&)> on_event,
                                                       const StreamOptions& options, std::stop_token stop,
                                                       engine::AsyncChain chain) {
        auto promise = std::make_shared<std::promise<Result<ChatResponse>>>();
        std::future<Result<ChatResponse>> answer = promise->get_future();
        run_async_stream(loop, std::move(req), std::move(on_event), options, std::move(stop),
                         [promise](Result<ChatResponse> r) { promise->set_value(std::move(r)); }, chain);
        return answer;
    }
    // The future form of run_async.
    std::future<Result<ChatResponse>> run_async(EventLoop& loop, ChatRequest req, std::stop_token stop,
                                                engine::AsyncChain chain) {
        auto promise = std::make_shared<std::promise<Result<ChatResponse>>>();
        std::future<Result<ChatResponse>> answer = promise->get_future();
        run_async(loop, std::move(req), std::move(stop),
                  [promise](Result<ChatResponse> r) { promise->set_value(std::move(r)); }, chain);
        return answer;
    }

    // The derived routers' destructors call this while their routes still exist: the checks
    // release their holds and never reach the router again.
    void detach_health_checks() noexcept {
        std::lock_guard lock(health_mu_);
        try {
            if (health_) health_->detach();
        } catch (...) {  // no memory to post the timer's cancel: the timer then finds the router gone
        }
        health_.reset();
    }
    // Replaces the health checks with ones over `routes` on `loop`.
    void start_checks(EventLoop& loop, HealthCheckOptions o, std::vector<engine::CheckedRoute> routes) {
        if (o.interval.count() <= 0 || o.timeout.count() <= 0)
            throw std::invalid_argument("failover: HealthCheckOptions: interval and timeout must be positive");
        stop_health_checks();
        auto h = std::make_shared<engine::HealthChecker>(loop, std::move(o), std::move(routes), *opts_.clock,
                                                         [this](const Event& e) { emit(e); });
        std::lock_guard lock(health_mu_);
        health_ = h;
        loop.post([h] { h->start(); });
    }
    void emit(const Event& e) noexcept {
        engine::record_event(sink_.load(std::memory_order_acquire).get(), sink_errors_, e);
    }

    // Names must be unique; the weights decide each route's share of the deadline.
    void set_routes(const std::vector<const std::string*>& names, const std::vector<std::pair<bool, double>>& weights) {
        for (std::size_t i = 0; i < names.size(); ++i)
            for (std::size_t j = i + 1; j < names.size(); ++j)
                if (*names[i] == *names[j])
                    throw std::invalid_argument("failover: Router: duplicate route name '" + *names[i] + "'");
        weights_ = weight_suffix(weights);
    }

private:
    RouterOptions opts_{};
    engine::Admission admission_{opts_.max_in_flight ? *opts_.max_in_flight : engine::descriptor_budget()};
    std::uint64_t seed_;
    std::atomic<std::uint64_t> requests_{0};
    std::atomic<std::uint64_t> sink_errors_{0};
    std::mutex sink_mu_{};
    std::vector<std::shared_ptr<MetricsSink>> sinks_{};
    std::atomic<std::shared_ptr<MetricsSink>> sink_{};
    std::vector<double> weights_{};
    engine::ToolSchemas tools_{};
    std::mutex health_mu_{};
    std::shared_ptr<engine::HealthChecker> health_{};
};
}  // namespace detail

/// A fallback chain over a fixed list of links (Routes and RouteGroups), built with
/// CTAD. The fold over the pack is the chain of responsibility; no virtual calls for
/// routes (a group's deployments are AnyRoutes).
/// @code
/// Router router{
///   Route{"primary", OpenAI{{.model = "gpt-4o", .api_key = env("OPENAI_API_KEY")}}, http},
///   Route{"canned",  StaticReply{R"({"status":"busy"})"}},
/// };
/// Result<ChatResponse> r = router.route_with_fallback(ChatRequest{.messages = {user("hi")}});
/// @endcode
template <class... Routes>
class Router : public detail::RouterCore {
    static_assert(sizeof...(Routes) > 0, "failover::Router: the chain needs at least one route");

public:
    /// A chain with default options.
    explicit Router(Routes... routes) : Router(RouterOptions{}, std::move(routes)...) {}

    /// A chain with explicit options. Throws std::invalid_argument on duplicate route names or bad options.
    explicit Router(RouterOptions opts, Routes... routes)
        : RouterCore(std::move(opts)), routes_(std::move(routes)...) {
        std::vector<const std::string*> names;
        std::vector<std::pair<bool, double>> weights;
        std::uint32_t link = 0;
        std::apply(
            [&](auto&... r) {
                (detail::add_names(r, names), ...);
                (detail::add_weights(r, weights), ...);
                ((add_slots(link++, detail::slots_of(r))), ...);
            },
            routes_);
        set_routes(names, weights);
        if (const auto& store = options().state_store) for_each_route([&](auto& r) { r.share_state(*store); });
    }
    ~Router() { detach_health_checks(); }
    Router(const Router&) = delete;
    Router& operator=(const Router&) = delete;

    /// Sends the request down the chain. Never throws; every outcome is a value. Thread-safe.
    /// A stop request on `stop` (from any thread) ends it at once with reason cancelled.
    Result<ChatResponse> route_with_fallback(const ChatRequest& req, std::stop_token stop = {}) {
        return run(req, detail::engine::Mode{std::move(stop), false, false}, [this](detail::engine::RequestState& rs) {
            return std::apply([&](auto&... r) { return visit_all(rs, r...); }, routes_);
        });
    }

    /// Streams the answer: `on_event` receives, on this thread, which route is streaming
    /// and each delta as it arrives; the whole answer (or the Failure) is returned at the
    /// end, as from route_with_fallback. Before the first delta reaches the caller every
    /// failure is handled as for a whole answer; after it, a failure ends the request as
    /// a mid-stream Failure carrying the partial text (or, with options.restart, restarts
    /// on the next route after a restart event). Never throws. Thread-safe.
    /// @code
    /// auto r = router.stream(req, [](const StreamEvent& e) {
    ///     if (e.kind == StreamEvent::Kind::delta && e.delta->kind == StreamDelta::Kind::text) std::cout << e.delta->text;
    /// });
    /// @endcode
    Result<ChatResponse> stream(const ChatRequest& req, std::function<void(const StreamEvent&)> on_event,
                                StreamOptions options = {}, std::stop_token stop = {}) {
        detail::engine::StreamDelivery out(std::move(on_event), options);
        return run(req, detail::engine::Mode{std::move(stop), true, options.restart},
                   [this, &out](detail::engine::RequestState& rs) {
                       return std::apply([&](auto&... r) { return stream_all(rs, out, r...); }, routes_);
                   });
    }

    /// Hands the request to `loop` and returns at once; the answer (or the Failure) arrives
    /// through the future, under the same rules as route_with_fallback. The request is
    /// copied; the router and `loop` must outlive it. Do not wait on the future on the
    /// thread that drives `loop`. Thread-safe. Every HTTP route must use a CurlTransport
    /// (the loop sends with its options).
    /// @code
    /// failover::EventLoop loop;
    /// loop.start();
    /// std::future<failover::Result<failover::ChatResponse>> a = router.submit(loop, req);
    /// @endcode
    std::future<Result<ChatResponse>> submit(EventLoop& loop, ChatRequest req, std::stop_token stop = {}) {
        static_assert((detail::link_runs_on_loop<Routes> && ...),
                      "failover::Router::submit: every HTTP route must use a CurlTransport");
        return run_async(loop, std::move(req), std::move(stop), async_chain());
    }
    /// The callback form: `done` runs on the loop's thread, once, with the answer or the
    /// Failure; it must not block the loop.
    void submit(EventLoop& loop, ChatRequest req, std::function<void(Result<ChatResponse>)> done,
                std::stop_token stop = {}) {
        static_assert((detail::link_runs_on_loop<Routes> && ...),
                      "failover::Router::submit: every HTTP route must use a CurlTransport");
        run_async(loop, std::move(req), std::move(stop), std::move(done), async_chain());
    }

    /// Streams on `loop`: as Router::stream, but the request walks the chain on the loop's
    /// thread and `on_event` runs there (it must not block the loop); the whole answer or
    /// the Failure arrives through the future. The same rules as stream: failover before the
    /// first delta, a mid-stream Failure (or an announced restart) after it. Streams are not
    /// hedged. Thread-safe.
    /// @code
    /// auto answer = router.submit_stream(loop, req, [](const StreamEvent& e) { ... });  // on the loop's thread
    /// @endcode
    std::future<Result<ChatResponse>> submit_stream(EventLoop& loop, ChatRequest req,
                                                    std::function<void(const StreamEvent&)> on_event,
                                                    StreamOptions options = {}, std::stop_token stop = {}) {
        static_assert((detail::link_runs_on_loop<Routes> && ...),
                      "failover::Router::submit_stream: every HTTP route must use a CurlTransport");
        return run_async_stream(loop, std::move(req), std::move(on_event), options, std::move(stop), async_chain());
    }
    /// The callback form: `done` runs on the loop's thread, once, after the last event.
    void submit_stream(EventLoop& loop, ChatRequest req, std::function<void(const StreamEvent&)> on_event,
                       std::function<void(Result<ChatResponse>)> done, StreamOptions options = {},
                       std::stop_token stop = {}) {
        static_assert((detail::link_runs_on_loop<Routes> && ...),
                      "failover::Router::submit_stream: every HTTP route must use a CurlTransport");
        run_async_stream(loop, std::move(req), std::move(on_event), options, std::move(stop), std::move(done),
                         async_chain());
    }

    /// Starts active health checks on `loop` (opt-in): every options.interval, each HTTP
    /// route whose breaker is open gets a one-token probe through its own adapter, and a
    /// probe that answers closes the breaker, so user requests are never the probes (while
    /// the checks run, an open breaker lets none through when its open time is up). Probes
    /// are HealthCheckEvents (and BreakerEvents when they close one), never attempts, and
    /// charged to no tenant. Routes over a transport the loop cannot drive, and local
    /// routes, keep their usual half-open probes. Replaces earlier checks; thread-safe.
    /// Throws std::invalid_argument on a non-positive interval or timeout.
    void start_health_checks(EventLoop& loop, HealthCheckOptions options = {}) {
        std::vector<detail::engine::CheckedRoute> checked;
        std::apply([&](auto&... r) { (detail::add_checked(r, checked), ...); }, routes_);
        start_checks(loop, std::move(options), std::move(checked));
    }

    /// Link `I` of the chain (a Route or a RouteGroup), e.g. to read its breaker.
    template <std::size_t I>
    auto& route() noexcept { return std::get<I>(routes_); }

    /// Calls f(route) for every route in order (a group's deployments, as AnyRoutes, in the
    /// order the group was given them).
    template <class F>
    void for_each_route(F&& f) {
        std::apply([&](auto&... r) { (detail::for_each_in(r, f), ...); }, routes_);
    }
    /// Links in the chain.
    static constexpr std::size_t size() noexcept { return sizeof...(Routes); }

    /// Visits links in order while each says "next" (the fold of the chain).
    template <class... Rs>
    static detail::engine::Step visit_all(detail::engine::RequestState& rs, Rs&... r) {
        using detail::engine::Step;
        Step step = Step::next;
        ((step == Step::next ? (void)(step = detail::visit_link(r, rs, detail::RunBlocking{rs})) : (void)0), ...);
        return step;
    }
    /// The same fold, streaming.
    template <class... Rs>
    static detail::engine::Step stream_all(detail::engine::RequestState& rs, detail::engine::StreamDelivery& out, Rs&... r) {
        using detail::engine::Step;
        Step step = Step::next;
        ((step == Step::next ? (void)(step = detail::visit_link(r, rs, detail::RunStreaming{rs, out})) : (void)0), ...);
        return step;
    }

private:
    void add_slots(std::uint32_t link, std::size_t n) {
        for (std::size_t k = 0; k < n; ++k) slots_.emplace_back(link, static_cast<std::uint32_t>(k));
    }
    template <std::size_t I>
    static std::unique_ptr<detail::engine::AsyncVisitBase> async_visit_of(Router& r, std::size_t k,
                                                                          detail::engine::RequestState& rs) {
        return detail::async_slot(std::get<I>(r.routes_), k, rs);
    }
    static std::unique_ptr<detail::engine::AsyncVisitBase> async_visit_at(void* self, std::size_t slot,
                                                                          detail::engine::RequestState& rs) {
        static constexpr auto table = []<std::size_t... I>(std::index_sequence<I...>) {
            return std::array{&async_visit_of<I>...};
        }(std::index_sequence_for<Routes...>{});
        Router& r = *static_cast<Router*>(self);
        const auto [link, k] = r.slots_[slot];
        return table[link](r, k, rs);
    }
    detail::engine::AsyncChain async_chain() noexcept {
        return {static_cast<void*>(this), slots_.size(), &async_visit_at};
    }

    std::tuple<Routes...> routes_;
    std::vector<std::pair<std::uint32_t, std::uint32_t>> slots_{};  // slot -> (link, deployment of a group)
};

template <class... Routes>
Router(Routes...) -> Router<Routes...>;
template <class... Routes>
Router(RouterOptions, Routes...) -> Router<Routes...>;

/// A link of a chain built at run time: a route, or a group of deployments.
using ChainLink = std::variant<AnyRoute, RouteGroup>;

/// A chain built at run time from AnyRoutes (and RouteGroups); same behaviour as Router.
/// @code
/// std::vector<AnyRoute> chain;
/// if (!env("OPENAI_API_KEY").empty()) chain.emplace_back(Route{"openai", OpenAI{...}, http});
/// chain.emplace_back(Route{"canned", StaticReply{"busy"}});
/// DynamicRouter router{std::move(chain)};
/// @endcode
class DynamicRouter : public detail::RouterCore {
public:
    explicit DynamicRouter(std::vector<AnyRoute> routes, RouterOptions opts = {})
        : DynamicRouter(links_of(std::move(routes)), std::move(opts)) {}
    /// A chain whose links may be RouteGroups.
    explicit DynamicRouter(std::vector<ChainLink> links, RouterOptions opts = {})
        : RouterCore(std::move(opts)), links_(std::move(links)) {
        if (links_.empty()) throw std::invalid_argument("failover: DynamicRouter: the chain needs at least one route");
        std::vector<const std::string*> names;
        std::vector<std::pair<bool, double>> weights;
        for (std::size_t i = 0; i < links_.size(); ++i)
            std::visit(
                [&](auto& l) {
                    detail::add_names(l, names);
                    detail::add_weights(l, weights);
                    for (std::size_t k = 0; k < detail::slots_of(l); ++k)
                        slots_.emplace_back(static_cast<std::uint32_t>(i), static_cast<std::uint32_t>(k));
                },
                links_[i]);
        set_routes(names, weights);
        if (const auto& store = options().state_store)
            for (auto& l : links_) std::visit([&](auto& x) { detail::for_each_in(x, [&](auto& r) { r.share_state(*store); }); }, l);
    }
    ~DynamicRouter() { detach_health_checks(); }
    DynamicRouter(const DynamicRouter&) = delete;
    DynamicRouter& operator=(const DynamicRouter&) = delete;

    /// Sends the request down the chain. Never throws; every outcome is a value. Thread-safe.
    /// A stop request on `stop` ends it at once with reason cancelled.
    Result<ChatResponse> route_with_fallback(const ChatRequest& req, std::stop_token stop = {}) {
        return run(req, detail::engine::Mode{std::move(stop), false, false}, [this](detail::engine::RequestState& rs) {
            return walk(rs, detail::RunBlocking{rs});
        });
    }

    /// Streams the answer; the same contract as Router::stream.
    Result<ChatResponse> stream(const ChatRequest& req, std::function<void(const StreamEvent&)> on_event,
                                StreamOptions options = {}, std::stop_token stop = {}) {
        detail::engine::StreamDelivery out(std::move(on_event), options);
        return run(req, detail::engine::Mode{std::move(stop), true, options.restart},
                   [this, &out](detail::engine::RequestState& rs) { return walk(rs, detail::RunStreaming{rs, out}); });
    }

    /// Hands the request to `loop`; the same contract as Router::submit. A route whose
    /// transport is not a CurlTransport fails its attempt as internal (nothing is sent).
    std::future<Result<ChatResponse>> submit(EventLoop& loop, ChatRequest req, std::stop_token stop = {}) {
        return run_async(loop, std::move(req), std::move(stop), async_chain());
    }
    /// The callback form; the same contract as Router::submit.
    void submit(EventLoop& loop, ChatRequest req, std::function<void(Result<ChatResponse>)> done,
                std::stop_token stop = {}) {
        run_async(loop, std::move(req), std::move(stop), std::move(done), async_chain());
    }

    /// Streams on `loop`; the same contract as Router::submit_stream.
    std::future<Result<ChatResponse>> submit_stream(EventLoop& loop, ChatRequest req,
                                                    std::function<void(const StreamEvent&)> on_event,
                                                    StreamOptions options = {}, std::stop_token stop = {}) {
        return run_async_stream(loop, std::move(req), std::move(on_event), options, std::move(stop), async_chain());
    }
    /// The callback form; the same contract as Router::submit_stream.
    void submit_stream(EventLoop& loop, ChatRequest req, std::function<void(const StreamEvent&)> on_event,
                       std::function<void(Result<ChatResponse>)> done, StreamOptions options = {},
                       std::stop_token stop = {}) {
        run_async_stream(loop, std::move(req), std::move(on_event), options, std::move(stop), std::move(done),
                         async_chain());
    }

    /// Starts active health checks on `loop`; the same contract as Router::start_health_checks.
    void start_health_checks(EventLoop& loop, HealthCheckOptions options = {}) {
        std::vector<detail::engine::CheckedRoute> checked;
        for (auto& l : links_) std::visit([&](auto& x) { detail::add_checked(x, checked); }, l);
        start_checks(loop, std::move(options), std::move(checked));
    }

    /// Route `i`, counting a group's deployments one by one in the order given.
    AnyRoute& route(std::size_t i) {
        const auto [link, k] = slots_.at(i);
        if (auto* g = std::get_if<RouteGroup>(&links_[link])) return g->deployment(k);
        return std::get<AnyRoute>(links_[link]);
    }
    /// Routes in the chain, a group's deployments counted one by one.
    std::size_t size() const noexcept { return slots_.size(); }

private:
    static std::vector<ChainLink> links_of(std::vector<AnyRoute> routes) {
        std::vector<ChainLink> links;
        links.reserve(routes.size());
        for (auto& r : routes) links.emplace_back(std::move(r));
        return links;
    }
    template <class Run>
    detail::engine::Step walk(detail::engine::RequestState& rs, Run run) {
        using detail::engine::Step;
        Step step = Step::next;
        for (auto& l : links_) {
            step = std::visit([&](auto& x) { return detail::visit_link(x, rs, run); }, l);
            if (step != Step::next) break;
        }
        return step;
    }
    detail::engine::AsyncChain async_chain() noexcept {
        return {static_cast<void*>(this), slots_.size(),
                [](void* self, std::size_t slot, detail::engine::RequestState& rs) {
                    auto& r = *static_cast<DynamicRouter*>(self);
                    const auto [link, k] = r.slots_[slot];
                    // k copied: Clang before 16 cannot capture a structured binding.
                    return std::visit([&, deployment = k](auto& x) { return detail::async_slot(x, deployment, rs); },
                                      r.links_[link]);
                }};
    }

    std::vector<ChainLink> links_{};
    std::vector<std::pair<std::uint32_t, std::uint32_t>> slots_{};  // slot -> (link, deployment of a group)
};

/// A one-off chain over routes (and RouteGroups) the caller keeps (their breakers and
/// budgets persist between calls), under `opts` (which must outlive the call); no sinks; one
/// admission limit for all such calls in the process (the descriptor budget, as
/// RouterOptions::max_in_flight unset).
template <class... Routes>
Result<ChatResponse> route_with_fallback(const RouterOptions& opts, const ChatRequest& req, Routes&... routes) {
    static_assert(sizeof...(Routes) > 0, "failover::route_with_fallback: the chain needs at least one route");
    static std::atomic<std::uint64_t> counter{detail::engine::random_seed()};
    static std::atomic<std::uint64_t> sink_errors{0};
    static detail::engine::ToolSchemas tools{};
    std::vector<std::pair<bool, double>> links;
    (detail::add_weights(routes, links), ...);
    const std::vector<double> weights = detail::weight_suffix(links);
    return detail::engine::guarded(
        req, opts, nullptr, sink_errors, counter.fetch_add(0x9E3779B97F4A7C15ull, std::memory_order_relaxed), weights,
        tools, detail::engine::Mode{}, [&](detail::engine::RequestState& rs) {
            return detail::engine::admitted(detail::engine::process_admission(), rs, [&] {
                return detail::engine::run_chain(
                    rs, [&](detail::engine::RequestState& r) { return Router<Routes...>::visit_all(r, routes...); });
            });
        });
}

/// The same with default RouterOptions.
template <class... Routes>
Result<ChatResponse> route_with_fallback(const ChatRequest& req, Routes&... routes) {
    static const RouterOptions opts{};
    return route_with_fallback(opts, req, routes...);
}

FAILOVER_END_NAMESPACE
