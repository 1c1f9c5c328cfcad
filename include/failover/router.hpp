// SPDX-License-Identifier: MIT
// The chain of responsibility. Router<Route...> holds its routes in a tuple and
// folds over them for each request: a route that is not eligible is skipped
// (open breaker, cooldown), an eligible one gets an attempt loop (encode, send,
// classify, decode, schema gate), and the failure kind decides what happens
// next: transient retries with backoff on the same route, terminal fails over
// at once, policy stops the chain and goes back to the caller. Every hop is an
// Event. The total attempts of one request never exceed the sum of the routes'
// max_attempts. One Router serves many threads at once: per-request state lives
// on the stack, shared state (breakers, budgets, cooldowns) is synchronised.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "failover/adapter.hpp"
#include "failover/budget.hpp"
#include "failover/classifier.hpp"
#include "failover/clock.hpp"
#include "failover/failure.hpp"
#include "failover/metrics.hpp"
#include "failover/request.hpp"
#include "failover/response.hpp"
#include "failover/retry.hpp"
#include "failover/route.hpp"
#include "failover/schema.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// A user quality gate: returns a reason to reject an answer, or nullopt to pass it.
/// A rejection is handled like a schema failure: a repair turn, then fail over.
using QualityGate = std::function<std::optional<std::string>(const ChatRequest&, const ChatResponse&)>;

/// Settings that apply to the whole chain.
struct RouterOptions {
    std::shared_ptr<Clock> clock = default_clock();
    std::shared_ptr<Sleeper> sleeper = default_sleeper();
    std::optional<std::uint64_t> seed;                 ///< jitter seed; random when unset
    std::chrono::milliseconds timeout{60000};          ///< whole-chain deadline unless the request sets one
    int max_recovery_waits = 3;                        ///< times an all-skipped chain waits for a route to recover
    std::shared_ptr<Budgets> budgets{};                ///< tenant ceilings; none: no budget checks
    std::function<std::int64_t(const ChatRequest&)> token_counter{};  ///< request size; default estimate_tokens
    std::vector<QualityGate> gates{};                  ///< run on every answer, after the schema
    bool policy_fallback = false;                      ///< opt in: after a policy block, try only routes at least as strict
    std::function<void(const ChatRequest&, const ChatResponse&)> on_answer{};  ///< e.g. ReplyCache::store
};

namespace detail {

// Per-request state, on the caller's stack.
struct Ctx {
    Ctx(const ChatRequest& r, const RouterOptions& o, MetricsSink* k, std::atomic<std::uint64_t>& errors,
        std::uint64_t seed)
        : req(r), opts(o), clock(*o.clock), sleeper(*o.sleeper), sink(k), sink_errors(errors), jitter(seed),
          start(clock.now()), deadline(start + std::min<std::chrono::milliseconds>(r.timeout ? *r.timeout : o.timeout, max_timeout)) {
        attempts.reserve(4);
    }

    // Longer deadlines are clipped to this, so time arithmetic cannot overflow.
    static constexpr std::chrono::milliseconds max_timeout{std::chrono::hours{24 * 30}};

    const ChatRequest& req;
    const RouterOptions& opts;
    Clock& clock;
    Sleeper& sleeper;
    MetricsSink* sink{};
    std::atomic<std::uint64_t>& sink_errors;
    Jitter jitter;
    Clock::time_point start{};
    Clock::time_point deadline{};
    std::vector<Attempt> attempts{};
    // The last route that did not answer, and why: the `from` of the next fallback.
    const std::string* pending_from = nullptr;
    Reason pending_reason = Reason::internal;
    std::optional<Failure> last_failure{};
    std::optional<ChatResponse> answer{};
    // Recovery bookkeeping for an all-skipped pass.
    int tried_this_pass = 0;
    std::optional<Clock::time_point> earliest_recovery{};
    const std::string* earliest_route = nullptr;
    Reason earliest_reason = Reason::breaker_open;
    bool first_route_seen = false;
    const std::string* first_route = nullptr;
    // Gates that persist across routes.
    bool any_approved = false;                 // some route was approved for the request's data
    std::int64_t min_window = 0;               // after context_too_long: only larger windows
    std::optional<int> policy_floor;           // after a policy block with policy_fallback: at least this strict
    std::optional<Failure> policy_failure;
    std::optional<std::int64_t> token_count;

    std::int64_t tokens() {
        if (!token_count) token_count = opts.token_counter ? opts.token_counter(req) : estimate_tokens(req);
        return *token_count;
    }

    void emit(const Event& e) {
        if (!sink) return;
        try {
            sink->record(e);
        } catch (...) {
            sink_errors.fetch_add(1, std::memory_order_relaxed);
        }
    }
    std::chrono::nanoseconds remaining() const { return deadline - clock.now(); }
};

enum class Step { next, answered, stop };

inline Failure with_route(Failure f, const std::string& route) {
    f.route = route;
    return f;
}

// Builds the repair turn after a schema failure: the previous answer, what was
// wrong with it, and an instruction to answer with JSON only.
inline ChatRequest repair_request(const ChatRequest& req, const std::string& previous, const Failure& f) {
    ChatRequest r = req;
    // An adapter that rejects non-JSON itself leaves no text here; its message carries an excerpt.
    if (!previous.empty()) r.messages.push_back(assistant(previous));
    r.messages.push_back(user("Your previous answer did not match the required JSON Schema: " + f.message +
                              "\nAnswer again with only a JSON value that matches the schema, and nothing else."));
    return r;
}

// Checks a decoded answer against the request's schema.
inline std::optional<Failure> schema_gate(const ChatRequest& req, ChatResponse& res) {
    if (!req.schema) return std::nullopt;
    if (res.json.is_null() && !res.text.empty()) {
        // Refused before a recursive parse, copy or validation can exhaust the stack.
        if (!classifier::nesting_within(res.text, static_cast<int>(Schema::max_depth)))
            return Failure::of(Reason::schema_invalid, "answer nests deeper than " + std::to_string(Schema::max_depth) + " levels");
        nlohmann::json parsed = nlohmann::json::parse(res.text, nullptr, false);
        if (parsed.is_discarded()) {
            if (res.finish_reason == FinishReason::length)
                return Failure::of(Reason::malformed_response, "structured output truncated at the output limit");
            return Failure::of(Reason::schema_invalid, "answer is not JSON");
        }
        res.json = std::move(parsed);
    }
    auto errors = req.schema->validate(res.json);
    if (errors.empty()) return std::nullopt;
    std::string msg{};
    for (std::size_t i = 0; i < errors.size() && i < 8; ++i) {
        if (i) msg += "; ";
        msg += (errors[i].pointer.empty() ? std::string("(root)") : errors[i].pointer) + ": " + errors[i].message;
    }
    if (errors.size() > 8) msg += "; and " + std::to_string(errors.size() - 8) + " more";
    return Failure::of(Reason::schema_invalid, std::move(msg));
}

// One attempt on one route: encode, send, classify, decode, gates. Never throws.
template <class R>
Result<ChatResponse> attempt_once(R& route, const ChatRequest& req, Ctx& ctx, std::string& rejected) {
    using A = typename R::adapter_type;
    try {
        Result<ChatResponse> out = [&]() -> Result<ChatResponse> {
            if constexpr (LocalAdapter<A> && !HttpAdapter<A>) {
                return route.adapter().respond(req);
            } else {
                Result<HttpRequest> enc = route.adapter().encode(req);
                if (!enc) return std::move(enc).error();
                const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(ctx.remaining());
                Deadline d{};
                d.timeout = std::max(std::chrono::milliseconds{1}, std::min(route.options().attempt_timeout, left));
                d.connect_timeout = std::min(route.options().connect_timeout, d.timeout);
                Result<HttpResponse> res = route.transport().send(*enc, d);
                if (!res) return std::move(res).error();
                if (!is_success(res->status)) {
                    Failure f = classify_response(*res, ctx.clock.wall_now());
                    if constexpr (ClassifyingAdapter<A>) route.adapter().classify(*res, f);
                    f.status = res->status;
                    return f;
                }
                Result<ChatResponse> dec = route.adapter().decode(req, *res);
                if (!dec && dec.error().status == 0) dec.error().status = res->status;
                return dec;
            }
        }();
        if (out) {
            if (auto bad = schema_gate(req, *out)) {
                rejected = std::move(out->text);
                return *bad;
            }
            for (const auto& gate : ctx.opts.gates) {
                if (auto why = gate(req, *out)) {
                    rejected = std::move(out->text);
                    return Failure::of(Reason::quality_gate, std::move(*why));
                }
            }
        }
        return out;
    } catch (const std::exception& e) {
        // Exception text is not ours: clean it like a provider message (it may quote a URL or header).
        return Failure::of(Reason::internal, "exception: " + classifier::sanitize_text(e.what(), 300));
    } catch (...) {
        return Failure::of(Reason::internal, "unknown exception");
    }
}

template <class R>
void note_recovery(Ctx& ctx, const R& route, Clock::time_point at, Reason why) {
    if (!ctx.earliest_recovery || at < *ctx.earliest_recovery) {
        ctx.earliest_recovery = at;
        ctx.earliest_route = &route.name();
        ctx.earliest_reason = why;
    }
}

template <class R>
void skip(Ctx& ctx, const R& route, Reason why, std::string msg) {
    ctx.emit(SkipEvent{route.name(), why, ctx.req.tenant});
    Failure f = Failure::of(why, std::move(msg));
    f.route = route.name();
    ctx.last_failure = std::move(f);
    ctx.pending_from = &route.name();
    ctx.pending_reason = why;
}

template <class R>
void report(Ctx& ctx, const R& route, const std::optional<BreakerTransition>& t) {
    if (t) ctx.emit(BreakerEvent{route.name(), *t});
}

// Failures that prove the provider answered properly: they count as breaker successes.
inline bool answered_properly(Reason r) noexcept {
    switch (r) {
        case Reason::schema_invalid:
        case Reason::quality_gate:
        case Reason::content_filter:
        case Reason::refusal:
        case Reason::bad_request:
        case Reason::context_too_long:
            return true;
        default:
            return false;
    }
}

inline bool listed(const std::vector<std::string>& v, const std::string& x) {
    return std::find(v.begin(), v.end(), x) != v.end() || std::find(v.begin(), v.end(), "*") != v.end();
}
// A route may see the request's data only if it is approved for its class and region.
inline bool approved(const RouteOptions& o, const ChatRequest& req) {
    return (req.data_class.empty() || listed(o.data_classes, req.data_class)) &&
           (req.region.empty() || listed(o.regions, req.region));
}
inline std::string describe_data(const ChatRequest& req) {
    std::string s;
    if (!req.data_class.empty()) s += "data class '" + req.data_class + "'";
    if (!req.region.empty()) s += (s.empty() ? "" : " in ") + std::string("region '") + req.region + "'";
    return s;
}

// The whole visit of one route: eligibility, then the attempt loop.
template <class R>
Step run_route(R& route, Ctx& ctx) {
    const bool is_first = !ctx.first_route_seen;
    ctx.first_route_seen = true;
    if (is_first) ctx.first_route = &route.name();

    const RouteOptions& o = route.options();
    if (ctx.policy_floor && o.safety_level < *ctx.policy_floor) {
        skip(ctx, route, Reason::not_approved, "less strict than the route that blocked the request");
        return Step::next;
    }
    if (!approved(o, ctx.req)) {
        skip(ctx, route, Reason::not_approved, "not approved for " + describe_data(ctx.req));
        return Step::next;
    }
    ctx.any_approved = true;
    if (!o.tiers.empty() && std::find(o.tiers.begin(), o.tiers.end(), ctx.req.tier) == o.tiers.end()) {
        skip(ctx, route, Reason::not_approved, "reserved for other tenant tiers than '" + ctx.req.tier + "'");
        return Step::next;
    }
    if (o.context_window > 0) {
        const std::int64_t needed = ctx.tokens() + ctx.req.max_tokens.value_or(0);
        if (needed > o.context_window || o.context_window < ctx.min_window) {
            skip(ctx, route, Reason::context_window,
                 "context window of " + std::to_string(o.context_window) + " tokens is too small (request ~" +
                     std::to_string(needed) + ", needs more than " + std::to_string(std::max<std::int64_t>(ctx.min_window - 1, 0)) + ")");
            return Step::next;
        }
    }
    if (ctx.opts.budgets && !o.price.free()) {
        const Usage expect{ctx.tokens(), ctx.req.max_tokens ? *ctx.req.max_tokens : o.expected_output_tokens};
        if (!ctx.opts.budgets->affords(ctx.req.tenant, o.price.cost(expect), ctx.clock.wall_now())) {
            skip(ctx, route, Reason::budget_exceeded, "tenant '" + ctx.req.tenant + "' cannot afford this route");
            return Step::next;
        }
    }

    Clock::time_point now = ctx.clock.now();
    if (const auto until = route.cooldown_until(); until > now) {
        note_recovery(ctx, route, until, Reason::cooling_down);
        skip(ctx, route, Reason::cooling_down, "route is cooling down after a long Retry-After");
        return Step::next;
    }

    ChatRequest repaired;  // used once a repair turn exists
    const ChatRequest* req = &ctx.req;
    int repairs = 0;
    bool paid_retry = false;  // a retry took tokens from the budget (repair turns do not)
    Reason last_retry_reason = Reason::server_error;

    for (int n = 1; n <= o.max_attempts; ++n) {
        now = ctx.clock.now();
        auto acq = route.breaker().try_acquire(now);
        report(ctx, route, acq.transition);
        if (acq.permit == CircuitBreaker::Permit::denied) {
            if (n == 1) {
                // Forced open, or half-open with its probe busy: no recovery time to wait for.
                if (const auto at = route.breaker().recovers_at(); at && *at > now)
                    note_recovery(ctx, route, *at, Reason::breaker_open);
                skip(ctx, route, Reason::breaker_open, "circuit breaker is open");
            }
            return Step::next;  // opened while we were retrying: fail over
        }
        if (now >= ctx.deadline) {
            route.breaker().release(acq.permit);
            Failure f = Failure::of(Reason::deadline_exceeded, "no time left in the chain's deadline");
            f.route = route.name();
            ctx.last_failure = std::move(f);
            return Step::stop;
        }
        if (n == 1) {
            ++ctx.tried_this_pass;
            if (ctx.pending_from)
                ctx.emit(FallbackEvent{*ctx.pending_from, route.name(), ctx.pending_reason, ctx.req.tenant});
        }

        const Clock::time_point t0 = now;
        std::string rejected;  // the answer a gate turned down, for the repair turn
        Result<ChatResponse> r = attempt_once(route, *req, ctx, rejected);
        now = ctx.clock.now();
        const auto latency = std::chrono::duration_cast<std::chrono::nanoseconds>(now - t0);

        Attempt a{};
        a.route = route.name();
        a.number = n;
        a.latency = latency;
        if (r) {
            a.ok = true;
            ctx.attempts.push_back(std::move(a));
            report(ctx, route, route.breaker().on_success(now, acq.permit));
            route.retry_budget().on_success(paid_retry, last_retry_reason);
            r->cost_usd = o.price.cost(r->usage);
            if (ctx.opts.budgets) {
                try {
                    ctx.opts.budgets->charge(ctx.req.tenant, r->cost_usd, ctx.clock.wall_now());
                } catch (...) {  // a store that is down must not lose a paid answer
                    ctx.sink_errors.fetch_add(1, std::memory_order_relaxed);
                }
            }
            ctx.emit(AttemptEvent{route.name(), ctx.req.tenant, route.provider(), route.model(), n, true,
                                  FailureKind::transient, Reason::internal, 0, latency, r->usage, r->cost_usd});
            ChatResponse res = std::move(*r);
            res.route = route.name();
            res.attempts = std::move(ctx.attempts);
            ctx.emit(SuccessEvent{route.name(), ctx.req.tenant, static_cast<int>(res.attempts.size()), !is_first,
                                  now - ctx.start});
            if (ctx.opts.on_answer) {
                try {
                    ctx.opts.on_answer(ctx.req, res);
                } catch (...) {
                    ctx.sink_errors.fetch_add(1, std::memory_order_relaxed);
                }
            }
            ctx.answer = std::move(res);
            return Step::answered;
        }

        Failure f = std::move(r).error();
        f.route = route.name();
        a.kind = f.kind;
        a.reason = f.reason;
        a.status = f.status;
        a.message = f.message;
        ctx.attempts.push_back(a);
        ctx.emit(AttemptEvent{route.name(), ctx.req.tenant, route.provider(), route.model(), n, false, f.kind,
                              f.reason, f.status, latency, {}});

        bool opened = false;
        if (counts_as_breaker_failure(f.reason)) {
            auto t = route.breaker().on_failure(now, acq.permit);
            opened = t && t->to == BreakerState::open;
            report(ctx, route, t);
        } else if (answered_properly(f.reason)) {
            report(ctx, route, route.breaker().on_success(now, acq.permit));  // the provider is healthy
        } else {
            route.breaker().release(acq.permit);  // a rate limit says nothing either way
        }

        ctx.pending_from = &route.name();
        ctx.pending_reason = f.reason;

        if (f.kind == FailureKind::policy) {
            ctx.emit(PolicyEvent{route.name(), ctx.req.tenant, f.reason, f.category});
            if (!ctx.opts.policy_fallback) {
                ctx.last_failure = std::move(f);
                return Step::stop;
            }
            // Opted in: go on, but only to routes at least as strict as this one.
            ctx.policy_floor = std::max(ctx.policy_floor.value_or(o.safety_level), o.safety_level);
            if (!ctx.policy_failure) ctx.policy_failure = f;
            ctx.last_failure = std::move(f);
            return Step::next;
        }
        if (f.reason == Reason::context_too_long && o.context_window > 0)
            ctx.min_window = std::max(ctx.min_window, o.context_window + 1);

        // A server wait longer than we honour, or past the deadline: cool the route down, fail over now.
        if (f.retry_after && (*f.retry_after > o.max_retry_after || now + *f.retry_after > ctx.deadline)) {
            route.cool_down_until(now + *f.retry_after);
            ctx.emit(CooldownEvent{route.name(), *f.retry_after});
            ctx.last_failure = std::move(f);
            return Step::next;
        }
        // A short one still holds other requests off the route while this one waits it out.
        if (f.retry_after && f.reason == Reason::rate_limited) route.cool_down_until(now + *f.retry_after);
        if (opened || f.kind != FailureKind::transient || n == o.max_attempts) {  // our failure opened it: go now
            ctx.last_failure = std::move(f);
            return Step::next;
        }

        // Transient: a repair turn for schema failures, else wait and retry.
        if (f.reason == Reason::schema_invalid || f.reason == Reason::quality_gate) {
            // A local reply cannot change its answer: a repair turn would be wasted.
            if (repairs >= o.repair_attempts || !HttpAdapter<typename R::adapter_type>) {
                ctx.last_failure = std::move(f);
                return Step::next;
            }
            ++repairs;
            repaired = repair_request(ctx.req, rejected, f);
            req = &repaired;
            ctx.emit(RetryEvent{route.name(), ctx.req.tenant, f.reason, n + 1, std::chrono::nanoseconds{0}});
            ctx.last_failure = std::move(f);
            continue;
        }
        const std::chrono::nanoseconds wait =
            f.retry_after ? std::chrono::nanoseconds{*f.retry_after} : o.backoff.delay(n - 1, ctx.jitter.uniform());
        if (now + wait >= ctx.deadline) {  // never sleep past the deadline
            ctx.last_failure = std::move(f);
            return Step::next;
        }
        if (!route.retry_budget().try_spend(f.reason)) {
            ctx.last_failure = std::move(f);
            ctx.last_failure->message += " (retry budget empty, not retried)";
            return Step::next;
        }
        last_retry_reason = f.reason;
        paid_retry = true;
        ctx.emit(RetryEvent{route.name(), ctx.req.tenant, f.reason, n + 1, wait});
        ctx.last_failure = std::move(f);
        ctx.sleeper.sleep_for(wait);
    }
    return Step::next;
}

}  // namespace detail

namespace detail {

// Runs the chain until an answer, a stop, or exhaustion; `visit_routes(ctx)` visits the
// routes in order once and returns the last Step. Waits for the earliest
// recovery when every route was skipped.
template <class Pass>
Result<ChatResponse> run_chain(Ctx& ctx, const RouterOptions& opts, Pass&& visit_routes) {
    for (int pass = 0;; ++pass) {
        ctx.tried_this_pass = 0;
        ctx.earliest_recovery.reset();
        ctx.earliest_route = nullptr;
        ctx.first_route_seen = false;
        const Step step = visit_routes(ctx);

        const auto now = ctx.clock.now();
        if (step == Step::answered) return std::move(*ctx.answer);

        Failure f = ctx.last_failure ? std::move(*ctx.last_failure)
                                     : Failure::of(Reason::internal, "the chain has no routes");
        if (ctx.policy_failure) {
            // Opted-in policy fallback found no stricter route that answered: the block stands.
            f = std::move(*ctx.policy_failure);
            f.attempts = std::move(ctx.attempts);
            return f;
        }
        if (!ctx.any_approved && (!ctx.req.data_class.empty() || !ctx.req.region.empty())) {
            f = Failure::of(Reason::not_approved, "no route is approved for " + describe_data(ctx.req));
            f.attempts = std::move(ctx.attempts);
            ctx.emit(ExhaustedEvent{ctx.req.tenant, f.reason, 0, now - ctx.start});
            return f;
        }
        if (step == Step::next && ctx.tried_this_pass == 0 && ctx.earliest_recovery) {
            // Every route was skipped for a reason that passes with time.
            const auto at = *ctx.earliest_recovery;
            if (at > now && at < ctx.deadline && pass < opts.max_recovery_waits) {
                ctx.sleeper.sleep_for(at - now);
                ctx.last_failure.reset();
                ctx.pending_from = nullptr;
                continue;
            }
            const auto wait = std::chrono::ceil<std::chrono::milliseconds>(std::max(at - now, Clock::duration{0}));
            f = Failure::of(ctx.earliest_reason);
            f.kind = FailureKind::terminal;
            f.route = *ctx.earliest_route;
            f.retry_after = wait;
            f.message = "every route is unavailable; the first to recover is '" + *ctx.earliest_route + "' in " +
                        std::to_string(wait.count()) + " ms" +
                        (at >= ctx.deadline ? ", after the request's deadline" : "");
        } else if (step == Step::next) {
            const std::string last = f.message;
            f.message = "all routes failed; last: " + std::string(to_string(f.reason)) +
                        (last.empty() ? std::string() : " (" + last + ")");
        }
        f.attempts = std::move(ctx.attempts);
        if (f.kind != FailureKind::policy)
            ctx.emit(ExhaustedEvent{ctx.req.tenant, f.reason, static_cast<int>(f.attempts.size()), now - ctx.start});
        return f;
    }
}

struct AnyRouteAccess;

// The never-throwing entry: checks the request's deadline, runs the chain, and
// turns anything a user hook throws (clock, sleeper, token counter, budget
// store) into an internal Failure with the attempts made so far.
template <class Pass>
Result<ChatResponse> guarded(const ChatRequest& req, const RouterOptions& opts, MetricsSink* sink,
                             std::atomic<std::uint64_t>& sink_errors, std::uint64_t seed, Pass&& visit_routes);

inline std::uint64_t random_seed() {
    std::random_device rd{};
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}

}  // namespace detail

namespace detail {
template <class Pass>
Result<ChatResponse> guarded(const ChatRequest& req, const RouterOptions& opts, MetricsSink* sink,
                             std::atomic<std::uint64_t>& sink_errors, std::uint64_t seed, Pass&& visit_routes) {
    if (req.timeout && req.timeout->count() <= 0) {
        Failure f = Failure::of(Reason::bad_request,
                                "ChatRequest.timeout must be positive, got " + std::to_string(req.timeout->count()) + " ms");
        return f;
    }
    std::optional<Ctx> ctx;
    try {
        ctx.emplace(req, opts, sink, sink_errors, seed);
        return run_chain(*ctx, opts, std::forward<Pass>(visit_routes));
    } catch (const std::exception& e) {
        Failure f = Failure::of(Reason::internal, "exception: " + classifier::sanitize_text(e.what(), 300));
        if (ctx) f.attempts = std::move(ctx->attempts);
        return f;
    } catch (...) {
        Failure f = Failure::of(Reason::internal, "unknown exception");
        if (ctx) f.attempts = std::move(ctx->attempts);
        return f;
    }
}
}  // namespace detail

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

private:
    friend struct detail::AnyRouteAccess;
    struct Concept {
        virtual ~Concept() = default;
        virtual detail::Step run(detail::Ctx& ctx) = 0;
        virtual const std::string& name() const noexcept = 0;
        virtual CircuitBreaker& breaker() const noexcept = 0;
        virtual RetryBudget& retry_budget() const noexcept = 0;
    };
    template <class R>
    struct Model final : Concept {
        explicit Model(R r) : route(std::move(r)) {}
        detail::Step run(detail::Ctx& ctx) override { return detail::run_route(route, ctx); }
        const std::string& name() const noexcept override { return route.name(); }
        CircuitBreaker& breaker() const noexcept override { return route.breaker(); }
        RetryBudget& retry_budget() const noexcept override { return route.retry_budget(); }
        R route{};
    };
    std::unique_ptr<Concept> p_{};
};

namespace detail {
struct AnyRouteAccess {
    static Step run(AnyRoute& r, Ctx& ctx) { return r.p_->run(ctx); }
};

// What every router shares: options, sinks, the per-request seed, counters.
class RouterCore {
public:
    explicit RouterCore(RouterOptions opts) : opts_(std::move(opts)), seed_(opts_.seed ? *opts_.seed : random_seed()) {
        if (!opts_.clock) throw std::invalid_argument("failover: RouterOptions.clock is null");
        if (!opts_.sleeper) throw std::invalid_argument("failover: RouterOptions.sleeper is null");
        if (opts_.timeout.count() <= 0)
            throw std::invalid_argument("failover: RouterOptions.timeout invalid: " +
                                        std::to_string(opts_.timeout.count()) + " ms");
        if (opts_.max_recovery_waits < 0)
            throw std::invalid_argument("failover: RouterOptions.max_recovery_waits invalid: " +
                                        std::to_string(opts_.max_recovery_waits));
    }
    RouterCore(const RouterCore&) = delete;
    RouterCore& operator=(const RouterCore&) = delete;

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
    /// Times a sink threw (the request went on regardless).
    std::uint64_t sink_errors() const noexcept { return sink_errors_.load(std::memory_order_relaxed); }
    const RouterOptions& options() const noexcept { return opts_; }

protected:
    template <class Pass>
    Result<ChatResponse> run(const ChatRequest& req, Pass&& pass) {
        std::shared_ptr<MetricsSink> sink = sink_.load(std::memory_order_acquire);
        const std::uint64_t n = requests_.fetch_add(1, std::memory_order_relaxed) + 1;
        return guarded(req, opts_, sink.get(), sink_errors_, seed_ ^ (0x9E3779B97F4A7C15ull * n), std::forward<Pass>(pass));
    }
    static void check_unique(const std::vector<const std::string*>& names) {
        for (std::size_t i = 0; i < names.size(); ++i)
            for (std::size_t j = i + 1; j < names.size(); ++j)
                if (*names[i] == *names[j])
                    throw std::invalid_argument("failover: Router: duplicate route name '" + *names[i] + "'");
    }

private:
    RouterOptions opts_{};
    std::uint64_t seed_;
    std::atomic<std::uint64_t> requests_{0};
    std::atomic<std::uint64_t> sink_errors_{0};
    std::mutex sink_mu_{};
    std::vector<std::shared_ptr<MetricsSink>> sinks_{};
    std::atomic<std::shared_ptr<MetricsSink>> sink_{};
};
}  // namespace detail

/// A fallback chain over a fixed list of routes, built with CTAD. The fold over
/// the Route pack is the chain of responsibility; no virtual calls.
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
        std::apply([&](auto&... r) { (names.push_back(&r.name()), ...); }, routes_);
        check_unique(names);
    }

    /// Sends the request down the chain. Never throws; every outcome is a value. Thread-safe.
    Result<ChatResponse> route_with_fallback(const ChatRequest& req) {
        return run(req, [this](detail::Ctx& ctx) {
            return std::apply(
                [&](auto&... r) {
                    detail::Step step = detail::Step::next;
                    // Each route runs only while the previous one said "next".
                    ((step == detail::Step::next ? (void)(step = detail::run_route(r, ctx)) : (void)0), ...);
                    return step;
                },
                routes_);
        });
    }

    /// Route `I` of the chain, e.g. to read its breaker.
    template <std::size_t I>
    auto& route() noexcept { return std::get<I>(routes_); }

    /// Calls f(route) for every route in order.
    template <class F>
    void for_each_route(F&& f) {
        std::apply([&](auto&... r) { (f(r), ...); }, routes_);
    }
    static constexpr std::size_t size() noexcept { return sizeof...(Routes); }

private:
    std::tuple<Routes...> routes_;
};

template <class... Routes>
Router(Routes...) -> Router<Routes...>;
template <class... Routes>
Router(RouterOptions, Routes...) -> Router<Routes...>;

/// A chain built at run time from AnyRoutes; same behaviour as Router.
/// @code
/// std::vector<AnyRoute> chain;
/// if (!env("OPENAI_API_KEY").empty()) chain.emplace_back(Route{"openai", OpenAI{...}, http});
/// chain.emplace_back(Route{"canned", StaticReply{"busy"}});
/// DynamicRouter router{std::move(chain)};
/// @endcode
class DynamicRouter : public detail::RouterCore {
public:
    explicit DynamicRouter(std::vector<AnyRoute> routes, RouterOptions opts = {})
        : RouterCore(std::move(opts)), routes_(std::move(routes)) {
        if (routes_.empty()) throw std::invalid_argument("failover: DynamicRouter: the chain needs at least one route");
        std::vector<const std::string*> names;
        for (auto& r : routes_) names.push_back(&r.name());
        check_unique(names);
    }

    /// Sends the request down the chain. Never throws; every outcome is a value. Thread-safe.
    Result<ChatResponse> route_with_fallback(const ChatRequest& req) {
        return run(req, [this](detail::Ctx& ctx) {
            detail::Step step = detail::Step::next;
            for (auto& r : routes_) {
                step = detail::AnyRouteAccess::run(r, ctx);
                if (step != detail::Step::next) break;
            }
            return step;
        });
    }

    AnyRoute& route(std::size_t i) { return routes_.at(i); }
    std::size_t size() const noexcept { return routes_.size(); }

private:
    std::vector<AnyRoute> routes_{};
};

/// A one-off chain over routes the caller keeps (their breakers and budgets
/// persist between calls); default RouterOptions, no sinks.
template <class... Routes>
Result<ChatResponse> route_with_fallback(const ChatRequest& req, Routes&... routes) {
    static_assert(sizeof...(Routes) > 0, "failover::route_with_fallback: the chain needs at least one route");
    static const RouterOptions opts{};
    static std::atomic<std::uint64_t> counter{detail::random_seed()};
    static std::atomic<std::uint64_t> sink_errors{0};
    return detail::guarded(req, opts, nullptr, sink_errors, counter.fetch_add(0x9E3779B97F4A7C15ull, std::memory_order_relaxed),
                           [&](detail::Ctx& c) {
        detail::Step step = detail::Step::next;
        ((step == detail::Step::next ? (void)(step = detail::run_route(routes, c)) : (void)0), ...);
        return step;
    });
}

FAILOVER_END_NAMESPACE
