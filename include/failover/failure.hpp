// SPDX-License-Identifier: MIT
// The failure taxonomy: what went wrong (Reason), what the router does about it
// (FailureKind), and the value that carries both plus every attempt made.
// Errors are values: Result<T> holds a T or a Failure and speaks
// tl::expected's vocabulary. value() on a failure throws FailoverError for code
// that prefers exceptions.
#pragma once

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// What the router does with a failure.
enum class FailureKind {
    transient,  ///< retry with backoff on the same route, then fail over
    terminal,   ///< fail over at once; retrying the same route cannot help
    policy,     ///< a content-policy block: stop and tell the caller, never fail over
};

/// Why an attempt failed or a route was skipped. Each has a default kind.
enum class Reason {
    connection,          ///< connect refused/reset, DNS, TLS handshake
    timeout,             ///< the attempt ran out of time, or HTTP 408 / 504
    conflict,            ///< HTTP 409
    rate_limited,        ///< HTTP 429 rate limit (not a quota)
    quota_exhausted,     ///< billing or quota exhausted (429 insufficient_quota, 402)
    server_error,        ///< HTTP 5xx
    overloaded,          ///< HTTP 529, 503 overloaded
    malformed_response,  ///< unparsable or truncated body, wrong content type
    response_too_large,  ///< body larger than the transport's limit
    auth,                ///< HTTP 401 / 403
    not_found,           ///< HTTP 404: model unknown or retired
    context_too_long,    ///< prompt too long for the model's window
    bad_request,         ///< other 4xx: the request itself is wrong
    content_filter,      ///< provider content filter or safety block
    refusal,             ///< the model refused
    schema_invalid,      ///< output does not match the request's JSON Schema
    quality_gate,        ///< a user quality gate rejected the output
    tool_call_invalid,   ///< a tool call names a tool not offered, or its arguments break the tool's schema
    breaker_open,        ///< skip: the route's circuit breaker is open
    cooling_down,        ///< skip: the route is cooling down after a long Retry-After
    local_rate_limit,    ///< skip: the route is at its own request or token rate limit (RouteOptions::rate_limit)
    not_approved,        ///< skip: route not approved for the request's data
    budget_exceeded,     ///< skip: the tenant cannot afford the route
    context_window,      ///< skip: the route's window is too small for the request
    cache_miss,          ///< skip: a cache route holds no answer for the request
    insufficient_time,   ///< skip: less than the route's min_attempt_time is left of the deadline
    deadline_exceeded,   ///< no time left in the chain
    retry_budget,        ///< the route's retry budget is empty (recorded on fail over)
    cancelled,           ///< the caller cancelled the request (never the provider's fault)
    local_resource,      ///< our own process ran out of something (descriptors, memory): never the provider's fault
    internal,            ///< an adapter or transport threw; a bug, reported not hidden
};

/// Stable snake_case name of a kind, as used in metrics labels.
constexpr std::string_view to_string(FailureKind k) noexcept {
    switch (k) {
        case FailureKind::transient: return "transient";
        case FailureKind::terminal: return "terminal";
        case FailureKind::policy: return "policy";
    }
    return "unknown";
}

/// Stable snake_case name of a reason, as used in metrics labels and logs.
constexpr std::string_view to_string(Reason r) noexcept {
    switch (r) {
        case Reason::connection: return "connection";
        case Reason::timeout: return "timeout";
        case Reason::conflict: return "conflict";
        case Reason::rate_limited: return "rate_limited";
        case Reason::quota_exhausted: return "quota_exhausted";
        case Reason::server_error: return "server_error";
        case Reason::overloaded: return "overloaded";
        case Reason::malformed_response: return "malformed_response";
        case Reason::response_too_large: return "response_too_large";
        case Reason::auth: return "auth";
        case Reason::not_found: return "not_found";
        case Reason::context_too_long: return "context_too_long";
        case Reason::bad_request: return "bad_request";
        case Reason::content_filter: return "content_filter";
        case Reason::refusal: return "refusal";
        case Reason::schema_invalid: return "schema_invalid";
        case Reason::quality_gate: return "quality_gate";
        case Reason::tool_call_invalid: return "tool_call_invalid";
        case Reason::breaker_open: return "breaker_open";
        case Reason::cooling_down: return "cooling_down";
        case Reason::local_rate_limit: return "local_rate_limit";
        case Reason::not_approved: return "not_approved";
        case Reason::budget_exceeded: return "budget_exceeded";
        case Reason::context_window: return "context_window";
        case Reason::cache_miss: return "cache_miss";
        case Reason::insufficient_time: return "insufficient_time";
        case Reason::deadline_exceeded: return "deadline_exceeded";
        case Reason::retry_budget: return "retry_budget";
        case Reason::cancelled: return "cancelled";
        case Reason::local_resource: return "local_resource";
        case Reason::internal: return "internal";
    }
    return "unknown";
}

/// The kind the taxonomy gives a reason unless a classifier hook says otherwise.
constexpr FailureKind default_kind(Reason r) noexcept {
    switch (r) {
        case Reason::connection:
        case Reason::timeout:
        case Reason::conflict:
        case Reason::rate_limited:
        case Reason::server_error:
        case Reason::overloaded:
        case Reason::malformed_response:
        case Reason::schema_invalid:
        case Reason::quality_gate:
        case Reason::tool_call_invalid:
            return FailureKind::transient;
        case Reason::content_filter:
        case Reason::refusal:
            return FailureKind::policy;
        default:
            return FailureKind::terminal;
    }
}

/// Whether a reason only ever means "this route was passed over" (no call was made).
/// A local adapter may answer with one of these (a cache miss) to be skipped.
constexpr bool is_skip_reason(Reason r) noexcept {
    switch (r) {
        case Reason::breaker_open:
        case Reason::cooling_down:
        case Reason::local_rate_limit:
        case Reason::not_approved:
        case Reason::budget_exceeded:
        case Reason::context_window:
        case Reason::cache_miss:
        case Reason::insufficient_time:
            return true;
        default:
            return false;
    }
}

/// One try on one route, successful or not, as listed in a response or a failure.
struct Attempt {
    std::string route{};                  ///< the route's name
    int number = 1;                     ///< 1-based attempt number on that route
    bool ok = false;                    ///< true when this attempt produced the answer
    FailureKind kind = FailureKind::transient;  ///< meaningful when !ok
    Reason reason = Reason::internal;           ///< meaningful when !ok
    int status = 0;                     ///< HTTP status, 0 when none was received
    std::chrono::nanoseconds latency{}; ///< time spent in the attempt
    std::string message{};                ///< short human description when !ok
};

/// Why a request (or one attempt) did not produce an answer.
struct Failure {
    FailureKind kind = FailureKind::terminal;
    Reason reason = Reason::internal;
    std::string route{};                ///< route that failed last, empty if none was tried
    int status = 0;                   ///< HTTP status, 0 when none (transport error, skip)
    std::optional<std::chrono::milliseconds> retry_after{};  ///< server hint, or time until a route recovers
    std::string message{};              ///< human description; never contains secrets
    std::string provider_code{};        ///< provider's own code, e.g. "insufficient_quota"
    std::string category{};             ///< policy category when the provider names one
    bool mid_stream = false;            ///< a stream failed after its first delta reached the caller
    std::string partial_text{};         ///< mid_stream: the text the caller had received
    std::vector<Attempt> attempts{};    ///< every attempt of the request, in order

    /// A failure of the given reason with its default kind.
    static Failure of(Reason r, std::string msg = {}) {
        Failure f{};
        f.kind = default_kind(r);
        f.reason = r;
        f.message = std::move(msg);
        return f;
    }
};

/// Thrown by Result<T>::value() when it holds a Failure.
class FailoverError : public std::runtime_error {
public:
    explicit FailoverError(Failure f)
        : std::runtime_error(describe(f)), failure_(std::move(f)) {}
    /// The failure, with every attempt.
    const Failure& failure() const noexcept { return failure_; }

private:
    static std::string describe(const Failure& f) {
        std::string s = "failover: ";
        s += to_string(f.kind);
        s += '/';
        s += to_string(f.reason);
        if (!f.route.empty()) s += " on route '" + f.route + "'";
        if (f.status != 0) s += " (HTTP " + std::to_string(f.status) + ")";
        if (!f.message.empty()) s += ": " + f.message;
        return s;
    }
    Failure failure_{};
};

/// A T or a Failure. Converts implicitly from either.
template <class T>
class [[nodiscard]] Result {
    static_assert(!std::is_same_v<std::remove_cv_t<T>, Failure>, "Result<Failure> is ambiguous");

public:
    using value_type = T;
    using error_type = Failure;

    Result(const T& v) : v_(std::in_place_index<0>, v) {}              // NOLINT(google-explicit-constructor)
    Result(T&& v) : v_(std::in_place_index<0>, std::move(v)) {}         // NOLINT(google-explicit-constructor)
    Result(const Failure& f) : v_(std::in_place_index<1>, f) {}         // NOLINT(google-explicit-constructor)
    Result(Failure&& f) : v_(std::in_place_index<1>, std::move(f)) {}  // NOLINT(google-explicit-constructor)

    bool has_value() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return has_value(); }

    /// The value; throws FailoverError when this holds a Failure.
    T& value() & { check(); return std::get<0>(v_); }
    const T& value() const& { check(); return std::get<0>(v_); }
    T&& value() && { check(); return std::get<0>(std::move(v_)); }

    T& operator*() & noexcept { return *std::get_if<0>(&v_); }
    const T& operator*() const& noexcept { return *std::get_if<0>(&v_); }
    T* operator->() noexcept { return std::get_if<0>(&v_); }
    const T* operator->() const noexcept { return std::get_if<0>(&v_); }

    /// The failure; precondition: !has_value().
    Failure& error() & noexcept { return *std::get_if<1>(&v_); }
    const Failure& error() const& noexcept { return *std::get_if<1>(&v_); }
    Failure&& error() && noexcept { return std::move(*std::get_if<1>(&v_)); }

    template <class U>
    T value_or(U&& fallback) const& {
        return has_value() ? std::get<0>(v_) : static_cast<T>(std::forward<U>(fallback));
    }

    /// f(T) -> Result<U>; a failure passes through untouched.
    template <class F>
    auto and_then(F&& f) const& {
        using R = std::invoke_result_t<F, const T&>;
        if (has_value()) return std::forward<F>(f)(std::get<0>(v_));
        return R(error());
    }
    /// f(T) -> U, wrapped as Result<U>; a failure passes through untouched.
    template <class F>
    auto transform(F&& f) const& {
        using U = std::invoke_result_t<F, const T&>;
        if (has_value()) return Result<U>(std::forward<F>(f)(std::get<0>(v_)));
        return Result<U>(error());
    }
    /// f(Failure) -> Result<T>; a value passes through untouched.
    template <class F>
    Result or_else(F&& f) const& {
        if (has_value()) return *this;
        return std::forward<F>(f)(error());
    }

private:
    void check() const {
        if (!has_value()) throw FailoverError(*std::get_if<1>(&v_));
    }
    std::variant<T, Failure> v_{};
};

FAILOVER_END_NAMESPACE
