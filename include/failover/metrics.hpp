// SPDX-License-Identifier: MIT
// What the router reports and where it goes. Every hop of every request is an
// Event; a MetricsSink receives them. Events hold string_views into the
// router's and the request's strings, valid only during record(): a sink that
// keeps an event must copy what it keeps. Sinks follow spdlog's model:
// MetricsSink is the interface, BasicSink<Mutex> takes care of locking and
// calls the protected record_(), NullSink discards, MultiSink fans out. The
// router catches what a sink throws and counts it: a broken sink never breaks a
// request.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "failover/breaker.hpp"
#include "failover/failure.hpp"
#include "failover/response.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// One attempt finished, successfully or not.
struct AttemptEvent {
    std::string_view route{};
    std::string_view tenant{};
    std::string_view provider{};         ///< gen_ai.system, e.g. "openai"; "" for local routes
    std::string_view model{};            ///< requested model; "" when unknown
    int number = 1;                    ///< 1-based attempt on this route
    bool ok = false;
    FailureKind kind = FailureKind::transient;  ///< when !ok
    Reason reason = Reason::internal;           ///< when !ok
    int status = 0;
    std::chrono::nanoseconds latency{};
    Usage usage{};                       ///< when ok
    double cost_usd = 0.0;               ///< when ok and the route has prices
};

/// A retry on the same route is about to wait `delay`.
struct RetryEvent {
    std::string_view route{};
    std::string_view tenant{};
    Reason reason = Reason::internal;  ///< why the previous attempt failed
    int next_attempt = 2;
    std::chrono::nanoseconds delay{};
};

/// The request moves from one route to the next one it tries.
struct FallbackEvent {
    std::string_view from{};
    std::string_view to{};
    Reason reason = Reason::internal;  ///< why `from` did not answer
    std::string_view tenant{};
};

/// A route was passed over without a call.
struct SkipEvent {
    std::string_view route{};
    Reason reason = Reason::internal;  ///< breaker_open, cooling_down, not_approved, ...
    std::string_view tenant{};
};

/// A route's circuit breaker changed state.
struct BreakerEvent {
    std::string_view route{};
    BreakerTransition transition{};
};

/// A route will be skipped for `duration` (a Retry-After too long to wait).
struct CooldownEvent {
    std::string_view route{};
    std::chrono::milliseconds duration{};
};

/// A request was answered.
struct SuccessEvent {
    std::string_view route{};
    std::string_view tenant{};
    int attempts = 1;                  ///< attempts the request made, over all routes
    bool fallback = false;             ///< answered by a route other than the first
    std::chrono::nanoseconds latency{};
};

/// A request ended without an answer after trying what it could.
struct ExhaustedEvent {
    std::string_view tenant{};
    Reason reason = Reason::internal;  ///< the last failure's reason
    int attempts = 0;
    std::chrono::nanoseconds latency{};
};

/// A content-policy block ended the request; no fallback was tried.
struct PolicyEvent {
    std::string_view route{};
    std::string_view tenant{};
    Reason reason = Reason::content_filter;
    std::string_view category{};         ///< the provider's category, when given
};

/// The share of requests served by a non-primary route crossed its threshold
/// (alert) or fell back under it (recovery). Emitted by a DriftMonitor.
struct DriftEvent {
    std::string_view tenant{};          ///< "" for the overall share
    bool alert = true;                  ///< true: crossed above; false: recovered
    double share = 0.0;                 ///< fallback share over the window, 0..1
    double threshold = 0.0;
    std::chrono::seconds window{};
    std::uint64_t requests = 0;         ///< requests in the window
};

/// Something an operator should hear of once, not a failure: e.g. a structured-output
/// schema that a route sends with OpenAI's strict mode off (topic "structured_output").
struct NoticeEvent {
    std::string_view route{};
    std::string_view topic{};    ///< a stable snake_case subject, usable as a metric label
    std::string_view message{};  ///< what and why, for a log line (never a secret)
};

/// A streamed attempt decoded its first text or tool-call delta (time to first token).
struct FirstTokenEvent {
    std::string_view route{};
    std::string_view tenant{};
    std::chrono::nanoseconds latency{};  ///< from the attempt's start to its first delta
};

/// How a streamed request, or one streamed attempt, ended for the caller.
struct StreamOutcomeEvent {
    std::string_view route{};
    std::string_view tenant{};
    std::string_view outcome{};         ///< "complete", "failed_mid_stream" or "restarted"
    Reason reason = Reason::internal;   ///< why, when not complete
};

/// An active health check probed a route whose breaker was open (never a user request;
/// charged to no tenant). A passing check closes the breaker (a BreakerEvent follows).
struct HealthCheckEvent {
    std::string_view route{};
    bool ok = false;
    Reason reason = Reason::internal;   ///< why it failed, when !ok
    int status = 0;                     ///< HTTP status of a failed probe, 0 if none
    std::chrono::nanoseconds latency{};
};

/// A shared state store (state.hpp) lost or regained its server, or applied a change made
/// by another instance. Emitted by the store, to the sink it was given.
struct StoreEvent {
    std::string_view store{};   ///< e.g. "redis"
    std::string_view kind{};    ///< "connected", "disconnected", "adopted_breaker", "adopted_cooldown"
    std::string_view route{};   ///< for adopted_*: the route; else ""
    std::string_view detail{};  ///< for disconnected: what failed (never a secret)
};

/// Everything the router reports.
using Event = std::variant<AttemptEvent, RetryEvent, FallbackEvent, SkipEvent, BreakerEvent, CooldownEvent,
                           SuccessEvent, ExhaustedEvent, PolicyEvent, DriftEvent, NoticeEvent, FirstTokenEvent,
                           StreamOutcomeEvent, HealthCheckEvent, StoreEvent>;

/// Stable name of an event's type ("attempt", "retry", "fallback", ...).
inline std::string_view event_name(const Event& e) noexcept {
    static constexpr std::string_view names[] = {"attempt", "retry",  "fallback",    "skip",          "breaker",
                                                 "cooldown", "success", "exhausted", "policy",        "drift",
                                                 "notice",  "first_token", "stream_outcome", "health_check", "store"};
    return names[e.index()];
}

/// Receives events. Implementations must be safe to call from many threads;
/// derive from BasicSink to have the locking done for you.
class MetricsSink {
public:
    virtual ~MetricsSink() = default;
    virtual void record(const Event& e) = 0;
};

/// A mutex type that does nothing, for sinks used from one thread.
struct NullMutex {
    void lock() noexcept {}
    void unlock() noexcept {}
};

/// Locks around the protected record_(); derive and implement record_.
template <class Mutex>
class BasicSink : public MetricsSink {
public:
    void record(const Event& e) final {
        std::lock_guard<Mutex> lock(mutex_);
        record_(e);
    }

protected:
    virtual void record_(const Event& e) = 0;
    Mutex mutex_{};
};

/// Discards everything.
class NullSink final : public MetricsSink {
public:
    void record(const Event&) override {}
};

/// Calls a function for every event (under a mutex, so the function need not be thread-safe).
class CallbackSink final : public BasicSink<std::mutex> {
public:
    explicit CallbackSink(std::function<void(const Event&)> f) : f_(std::move(f)) {}

protected:
    void record_(const Event& e) override { f_(e); }

private:
    std::function<void(const Event&)> f_;
};

/// Forwards each event to several sinks; one that throws does not starve the others.
class MultiSink final : public MetricsSink {
public:
    MultiSink() = default;
    explicit MultiSink(std::vector<std::shared_ptr<MetricsSink>> sinks) : sinks_(std::move(sinks)) {}
    /// Not thread-safe with record(): add sinks before routing starts.
    void add(std::shared_ptr<MetricsSink> s) { sinks_.push_back(std::move(s)); }
    void record(const Event& e) override {
        bool failed = false;
        for (auto& s : sinks_) {
            try {
                s->record(e);
            } catch (...) {
                failed = true;
            }
        }
        if (failed) throw std::runtime_error("failover: MultiSink: a sink threw");
    }

private:
    std::vector<std::shared_ptr<MetricsSink>> sinks_{};
};

namespace detail {
inline double seconds(std::chrono::nanoseconds d) noexcept { return std::chrono::duration<double>(d).count(); }

inline nlohmann::json to_json(const Event& ev) {
    nlohmann::json j{};
    j["event"] = event_name(ev);
    auto s = [](std::string_view v) { return std::string(v); };
    std::visit(
        [&](const auto& e) {
            using E = std::decay_t<decltype(e)>;
            if constexpr (std::is_same_v<E, AttemptEvent>) {
                j["route"] = s(e.route);
                j["tenant"] = s(e.tenant);
                if (!e.provider.empty()) j["gen_ai.system"] = s(e.provider);
                if (!e.model.empty()) j["gen_ai.request.model"] = s(e.model);
                j["attempt"] = e.number;
                j["ok"] = e.ok;
                if (!e.ok) {
                    j["kind"] = to_string(e.kind);
                    j["reason"] = to_string(e.reason);
                } else {
                    j["gen_ai.usage.input_tokens"] = e.usage.input_tokens;
                    j["gen_ai.usage.output_tokens"] = e.usage.output_tokens;
                }
                if (e.status) j["http.response.status_code"] = e.status;
                j["duration_s"] = seconds(e.latency);
            } else if constexpr (std::is_same_v<E, RetryEvent>) {
                j["route"] = s(e.route);
                j["tenant"] = s(e.tenant);
                j["reason"] = to_string(e.reason);
                j["next_attempt"] = e.next_attempt;
                j["delay_s"] = seconds(e.delay);
            } else if constexpr (std::is_same_v<E, FallbackEvent>) {
                j["from"] = s(e.from);
                j["to"] = s(e.to);
                j["reason"] = to_string(e.reason);
                j["tenant"] = s(e.tenant);
            } else if constexpr (std::is_same_v<E, SkipEvent>) {
                j["route"] = s(e.route);
                j["reason"] = to_string(e.reason);
                j["tenant"] = s(e.tenant);
            } else if constexpr (std::is_same_v<E, BreakerEvent>) {
                j["route"] = s(e.route);
                j["from"] = to_string(e.transition.from);
                j["to"] = to_string(e.transition.to);
                if (e.transition.to == BreakerState::open)
                    j["open_for_s"] = seconds(e.transition.open_for);
            } else if constexpr (std::is_same_v<E, CooldownEvent>) {
                j["route"] = s(e.route);
                j["duration_s"] = seconds(e.duration);
            } else if constexpr (std::is_same_v<E, SuccessEvent>) {
                j["route"] = s(e.route);
                j["tenant"] = s(e.tenant);
                j["attempts"] = e.attempts;
                j["fallback"] = e.fallback;
                j["duration_s"] = seconds(e.latency);
            } else if constexpr (std::is_same_v<E, ExhaustedEvent>) {
                j["tenant"] = s(e.tenant);
                j["reason"] = to_string(e.reason);
                j["attempts"] = e.attempts;
                j["duration_s"] = seconds(e.latency);
            } else if constexpr (std::is_same_v<E, DriftEvent>) {
                j["tenant"] = s(e.tenant);
                j["alert"] = e.alert;
                j["share"] = e.share;
                j["threshold"] = e.threshold;
                j["window_s"] = e.window.count();
                j["requests"] = e.requests;
            } else if constexpr (std::is_same_v<E, PolicyEvent>) {
                j["route"] = s(e.route);
                j["tenant"] = s(e.tenant);
                j["reason"] = to_string(e.reason);
                if (!e.category.empty()) j["category"] = s(e.category);
            } else if constexpr (std::is_same_v<E, NoticeEvent>) {
                j["route"] = s(e.route);
                j["topic"] = s(e.topic);
                j["message"] = s(e.message);
            } else if constexpr (std::is_same_v<E, FirstTokenEvent>) {
                j["route"] = s(e.route);
                j["tenant"] = s(e.tenant);
                j["time_to_first_token_s"] = seconds(e.latency);
            } else if constexpr (std::is_same_v<E, StreamOutcomeEvent>) {
                j["route"] = s(e.route);
                j["tenant"] = s(e.tenant);
                j["outcome"] = s(e.outcome);
                if (e.outcome != "complete") j["reason"] = to_string(e.reason);
            } else if constexpr (std::is_same_v<E, HealthCheckEvent>) {
                j["route"] = s(e.route);
                j["ok"] = e.ok;
                if (!e.ok) j["reason"] = to_string(e.reason);
                if (e.status != 0) j["status"] = e.status;
                j["latency_s"] = seconds(e.latency);
            } else if constexpr (std::is_same_v<E, StoreEvent>) {
                j["store"] = s(e.store);
                j["kind"] = s(e.kind);
                if (!e.route.empty()) j["route"] = s(e.route);
                if (!e.detail.empty()) j["detail"] = s(e.detail);
            }
        },
        ev);
    return j;
}
}  // namespace detail

/// Writes one JSON object per line to a stream, with a wall-clock timestamp
/// (`ts`, seconds since the Unix epoch) and OpenTelemetry GenAI attribute names
/// where they exist. Invalid UTF-8 in names is replaced, never thrown.
class JsonLinesSink final : public BasicSink<std::mutex> {
public:
    explicit JsonLinesSink(std::ostream& out) : out_(out) {}

protected:
    void record_(const Event& e) override {
        nlohmann::json j = detail::to_json(e);
        j["ts"] = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
        out_ << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
    }

private:
    std::ostream& out_;
};

FAILOVER_END_NAMESPACE
