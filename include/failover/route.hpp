// SPDX-License-Identifier: MIT
// A Route is one link of the chain: a name, an adapter, the transport it sends
// through (none for local adapters such as StaticReply), its options, and the
// state it shares between every request through it (circuit breaker, retry
// budget, Retry-After cooldown). Routes are move-only; the router owns them.
// Construction refuses what would fail every request: bad options, an adapter
// that reports a configuration problem (a hosted provider without its key),
// and a declared structured-output schema the adapter cannot send.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "failover/adapter.hpp"
#include "failover/breaker.hpp"
#include "failover/budget.hpp"
#include "failover/clock.hpp"
#include "failover/detail/latency.hpp"
#include "failover/rate_limit.hpp"
#include "failover/retry.hpp"
#include "failover/state.hpp"
#include "failover/transport.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// The transport type of a route whose adapter answers locally.
struct NoTransport {};

/// Per-route behaviour; the defaults are DESIGN.md's.
struct RouteOptions {
    int max_attempts = 2;                              ///< attempts on this route before failing over (>= 1)
    Backoff backoff{};                                 ///< wait between attempts
    std::chrono::milliseconds max_retry_after{5000};   ///< longest server-requested wait honoured; longer: fail over and cool down
    std::chrono::milliseconds attempt_timeout{30000};  ///< one attempt, clipped to the route's share of the deadline
    std::chrono::milliseconds connect_timeout{5000};
    std::chrono::milliseconds min_attempt_time{500};   ///< less than this left: the route is skipped (insufficient_time)
    double deadline_weight = 1.0;                      ///< share of the chain deadline, against later routes' weights
    std::chrono::milliseconds first_token_timeout{15000};  ///< a stream: its first delta must come within this
    /// Hedging, async driver only (Router::submit; off by default): when the first attempt on
    /// this route has not answered after this long, the next eligible route starts in
    /// parallel; the first answer wins and the other transfer is cancelled. Paid from this
    /// route's retry budget like a retry after a timeout; no budget, no hedge.
    std::optional<std::chrono::milliseconds> hedge_after{};
    /// With hedge_after: once the route has answered 20 times, hedge after this quantile of
    /// its recent answer latencies instead (e.g. 0.95: only the slowest 5 % are hedged);
    /// hedge_after is the delay until then. In (0, 1).
    std::optional<double> hedge_percentile{};
    std::chrono::milliseconds stream_idle_timeout{30000};  ///< a stream: the longest gap between deltas after the first
    int repair_attempts = 1;                           ///< schema repair turns (each uses one of max_attempts)
    BreakerOptions breaker{};
    RetryBudgetOptions retry_budget{};
    RateLimit rate_limit{};                            ///< the route's own requests / tokens per minute (0: none); at it: skipped
    Price price{};                                     ///< per million tokens; charged to the tenant's budget
    std::int64_t expected_output_tokens = 512;         ///< for the cost estimate when the request sets no max_tokens
    std::vector<std::string> data_classes{};           ///< data classes this route is approved for ("*": any)
    std::vector<std::string> regions{};                ///< regions this route is approved for ("*": any)
    std::vector<std::string> tiers{};                  ///< tenant tiers allowed on this route (empty: all)
    std::int64_t context_window = 0;                   ///< tokens the model accepts (0: unknown, not checked)
    int safety_level = 0;                              ///< strictness, for the opt-in policy fallback
    std::vector<std::shared_ptr<const Schema>> schemas{};  ///< structured outputs this route must send faithfully; checked at construction

    /// Throws std::invalid_argument naming the route, the field and the value.
    void validate(std::string_view route) const {
        auto bad = [&](const char* field, const std::string& v) {
            throw std::invalid_argument("failover: route '" + std::string(route) + "': RouteOptions." + field +
                                        " invalid: " + v);
        };
        if (max_attempts < 1) bad("max_attempts", std::to_string(max_attempts) + " (must be >= 1)");
        if (backoff.base.count() < 0) bad("backoff.base", std::to_string(backoff.base.count()) + " ms");
        if (backoff.cap < backoff.base) bad("backoff.cap", std::to_string(backoff.cap.count()) + " ms < base");
        if (max_retry_after.count() < 0) bad("max_retry_after", std::to_string(max_retry_after.count()) + " ms");
        if (attempt_timeout.count() <= 0) bad("attempt_timeout", std::to_string(attempt_timeout.count()) + " ms");
        if (connect_timeout.count() <= 0) bad("connect_timeout", std::to_string(connect_timeout.count()) + " ms");
        if (min_attempt_time.count() < 0) bad("min_attempt_time", std::to_string(min_attempt_time.count()) + " ms");
        if (first_token_timeout.count() <= 0) bad("first_token_timeout", std::to_string(first_token_timeout.count()) + " ms");
        if (hedge_after && hedge_after->count() <= 0) bad("hedge_after", std::to_string(hedge_after->count()) + " ms");
        if (hedge_percentile && !(*hedge_percentile > 0.0 && *hedge_percentile < 1.0))
            bad("hedge_percentile", std::to_string(*hedge_percentile) + " (must be in (0, 1))");
        if (hedge_percentile && !hedge_after) bad("hedge_percentile", "needs hedge_after, the delay until 20 answers are seen");
        if (stream_idle_timeout.count() <= 0) bad("stream_idle_timeout", std::to_string(stream_idle_timeout.count()) + " ms");
        if (!(deadline_weight > 0.0 && deadline_weight <= 1e6)) bad("deadline_weight", std::to_string(deadline_weight) + " (0..1e6]");
        if (repair_attempts < 0) bad("repair_attempts", std::to_string(repair_attempts));
        if (!(price.input_per_million >= 0.0) || !(price.output_per_million >= 0.0))
            bad("price", "prices must be >= 0");
        if (expected_output_tokens < 0) bad("expected_output_tokens", std::to_string(expected_output_tokens));
        if (context_window < 0) bad("context_window", std::to_string(context_window));
        try {
            breaker.validate();
            rate_limit.validate();
        } catch (const std::invalid_argument& e) {
            throw std::invalid_argument("failover: route '" + std::string(route) + "': " + e.what());
        }
    }
};

/// A route's load as load balancing sees it.
struct RouteLoad {
    int in_flight = 0;                                 ///< attempts in flight now, from every request
    std::optional<std::chrono::nanoseconds> latency{};  ///< moving average of attempt latency (none yet: nullopt)
};

/// How a RouteGroup orders its deployments for a request.
enum class Balance {
    weighted,    ///< at random, in proportion to GroupOptions::weights
    least_busy,  ///< fewest attempts in flight first (ties at random)
    latency,     ///< power of two choices by latency average x (in flight + 1); unmeasured first
};

/// A RouteGroup's behaviour.
struct GroupOptions {
    Balance balance = Balance::weighted;
    std::vector<double> weights{};  ///< one per deployment, > 0 (empty: equal); used by Balance::weighted
};

/// One link of the chain. `A` is an HttpAdapter with transport `T`, or a LocalAdapter.
/// @code
/// Route{"primary", OpenAI{{.model = "gpt-4o", .api_key = env("OPENAI_API_KEY")}}, http}
/// Route{"canned", StaticReply{R"({"status":"busy"})"}}
/// @endcode
template <class A, class T = NoTransport>
class Route {
    static_assert(Adapter<A>,
                  "failover::Route: the adapter must provide either encode(const ChatRequest&) -> "
                  "Result<HttpRequest> and decode(const ChatRequest&, const HttpResponse&) -> "
                  "Result<ChatResponse> (an HttpAdapter), or respond(const ChatRequest&) -> "
                  "Result<ChatResponse> (a LocalAdapter)");
    static_assert(!HttpAdapter<A> || Transport<T>,
                  "failover::Route: an HttpAdapter needs a transport providing "
                  "send(const HttpRequest&, Deadline) -> Result<HttpResponse>");
    static_assert(HttpAdapter<A> || std::is_same_v<T, NoTransport>,
                  "failover::Route: a LocalAdapter takes no transport");

public:
    using adapter_type = A;
    using transport_type = T;
    /// True when the route calls a provider over a transport (false: it answers in-process).
    static constexpr bool is_http = HttpAdapter<A>;

    /// An HTTP route. Throws std::invalid_argument on an empty name, a null transport or bad options.
    Route(std::string name, A adapter, std::shared_ptr<T> transport, RouteOptions opts = {})
        requires HttpAdapter<A>
        : name_(std::move(name)), adapter_(std::move(adapter)), transport_(std::move(transport)), opts_(opts) {
        check();
        if (!transport_) throw std::invalid_argument("failover: route '" + name_ + "': transport is null");
    }

    /// A local route (no transport).
    Route(std::string name, A adapter, RouteOptions opts = {})
        requires LocalAdapter<A>
        : name_(std::move(name)), adapter_(std::move(adapter)), opts_(opts) {
        check();
    }

    Route(Route&&) noexcept = default;
    Route& operator=(Route&&) noexcept = default;

    const std::string& name() const noexcept { return name_; }
    const A& adapter() const noexcept { return adapter_; }
    T& transport() const noexcept { return *transport_; }
    const RouteOptions& options() const noexcept { return opts_; }
    CircuitBreaker& breaker() const noexcept { return state_->breaker; }
    RetryBudget& retry_budget() const noexcept { return state_->budget; }
    RateLimiter& rate_limiter() const noexcept { return state_->limiter; }
    /// What load balancing reads: attempts in flight now and the latency average.
    RouteLoad load() const noexcept {
        const double ns = state_->latency_ns.load(std::memory_order_relaxed);
        return {state_->in_flight.load(std::memory_order_relaxed),
                ns < 0 ? std::nullopt : std::optional<std::chrono::nanoseconds>(static_cast<std::int64_t>(ns))};
    }
    /// An attempt starts (+1) or ends (-1) on this route.
    void count_in_flight(int delta) const noexcept { state_->in_flight.fetch_add(delta, std::memory_order_relaxed); }
    /// Counts an answer's latency for RouteOptions::hedge_percentile.
    void record_answer(std::chrono::nanoseconds d) const noexcept { state_->answers.record(d); }
    /// The quantile `q` of the route's recent answer latencies; nullopt before 20 answers.
    std::optional<std::chrono::nanoseconds> answer_latency(double q) const noexcept {
        return state_->answers.quantile(q, 20);
    }
    /// Folds one attempt's latency into the route's moving average (weight 0.2 for the newest).
    void record_latency(std::chrono::nanoseconds d) const noexcept {
        const double x = static_cast<double>(d.count());
        double cur = state_->latency_ns.load(std::memory_order_relaxed);
        while (!state_->latency_ns.compare_exchange_weak(cur, cur < 0 ? x : cur + 0.2 * (x - cur),
                                                         std::memory_order_relaxed)) {
        }
    }

    /// gen_ai.system of the adapter ("" when it does not say).
    std::string_view provider() const noexcept {
        if constexpr (requires { std::string_view(adapter_.provider()); }) return adapter_.provider();
        else return {};
    }
    /// Model the adapter requests ("" when it does not say).
    std::string_view model() const noexcept {
        if constexpr (requires { std::string_view(adapter_.model()); }) return adapter_.model();
        else return {};
    }

    /// True the first time it is asked about `schema` (at most 32 remembered): the router
    /// tells the operator once that a schema goes out in a weaker form on this route.
    bool first_notice(const std::shared_ptr<const Schema>& schema) const {
        std::lock_guard lock(state_->notes_mutex);
        auto& seen = state_->noted;
        for (const auto& w : seen)
            if (!w.owner_before(schema) && !schema.owner_before(w)) return false;
        if (seen.size() >= 32) {
            std::erase_if(seen, [](const std::weak_ptr<const Schema>& w) { return w.expired(); });
            if (seen.size() >= 32) seen.erase(seen.begin());
        }
        seen.push_back(schema);
        return true;
    }

    /// Until when the route is skipped after a long Retry-After (time_point{} when not).
    Clock::time_point cooldown_until() const noexcept {
        return Clock::time_point{Clock::duration{state_->cooldown.load(std::memory_order_acquire)}};
    }
    /// Skips the route until `t` (only ever extends an existing cooldown); `now` is the
    /// router's clock, so a shared store hears for how long.
    void cool_down_until(Clock::time_point t, Clock::time_point now) noexcept {
        if (extend_cooldown(*state_, t) && state_->sync && t > now)
            state_->sync->cooled_down(std::chrono::ceil<std::chrono::milliseconds>(t - now));
    }

    /// Shares this route's breaker, cooldown and retry budget through `store` (a router
    /// with RouterOptions::state_store does this when it is built). A route binds to one
    /// store once: binding again to another throws std::logic_error.
    void share_state(StateStore& store) {
        if (state_->sync) {
            if (state_->store == &store) return;
            throw std::logic_error("failover: route '" + name_ + "' already shares its state through another store");
        }
        RouteBinding b;
        b.id = name_;
        b.breaker = &state_->breaker;
        b.retry_budget = &state_->budget;
        b.adopt_cooldown = [st = state_.get()](std::chrono::steady_clock::time_point t) { extend_cooldown(*st, t); };
        auto sync = store.bind(b);
        if (!sync) return;
        state_->sync = std::move(sync);
        state_->store = &store;
        state_->breaker.attach(state_->sync.get());
        state_->budget.attach(state_->sync.get());
    }

private:
    struct State {
        explicit State(const RouteOptions& o) : breaker(o.breaker), budget(o.retry_budget), limiter(o.rate_limit) {}
        ~State() {
            if (!sync) return;
            sync->unbind();  // the store lets go of breaker and budget first
            breaker.attach(nullptr);
            budget.attach(nullptr);
        }
        State(const State&) = delete;
        State& operator=(const State&) = delete;
        CircuitBreaker breaker{};
        RetryBudget budget{};
        RateLimiter limiter;
        std::atomic<int> in_flight{0};
        std::atomic<double> latency_ns{-1.0};  // moving average of attempt latency; < 0: no sample yet
        detail::LatencyHistogram answers{};    // recent answer latencies, for hedge_percentile
        std::atomic<Clock::duration::rep> cooldown{0};
        std::mutex notes_mutex{};
        std::vector<std::weak_ptr<const Schema>> noted{};  // schemas already reported by first_notice
        std::shared_ptr<RouteStateSync> sync{};            // a shared store's link, once bound
        const StateStore* store = nullptr;
    };

    static bool extend_cooldown(State& st, Clock::time_point t) noexcept {
        const auto v = t.time_since_epoch().count();
        auto cur = st.cooldown.load(std::memory_order_relaxed);
        while (cur < v) {
            if (st.cooldown.compare_exchange_weak(cur, v, std::memory_order_acq_rel)) return true;
        }
        return false;
    }

    void check() {
        if (name_.empty()) throw std::invalid_argument("failover: Route: name must not be empty");
        opts_.validate(name_);
        // What would otherwise fail on every request is refused here, naming the route.
        if constexpr (SelfCheckingAdapter<A>) {
            if (std::string problem = adapter_.config_problem(); !problem.empty())
                throw std::invalid_argument("failover: route '" + name_ + "': " + problem);
        }
        for (const auto& schema : opts_.schemas) {
            if (!schema) throw std::invalid_argument("failover: route '" + name_ + "': RouteOptions.schemas holds a null schema");
            if constexpr (SchemaAwareAdapter<A>) {
                const SchemaSupport support = adapter_.schema_support(*schema);
                if (!support.sendable)
                    throw std::invalid_argument("failover: route '" + name_ + "': cannot send a declared schema: " + support.note);
            }
        }
        state_ = std::make_unique<State>(opts_);
    }

    std::string name_{};
    A adapter_;
    std::shared_ptr<T> transport_{};
    RouteOptions opts_{};
    std::unique_ptr<State> state_{};
};

template <class A, class T>
Route(std::string, A, std::shared_ptr<T>, RouteOptions = {}) -> Route<A, T>;
template <class A>
Route(std::string, A, RouteOptions = {}) -> Route<A, NoTransport>;

FAILOVER_END_NAMESPACE
