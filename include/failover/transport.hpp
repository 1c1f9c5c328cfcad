// SPDX-License-Identifier: MIT
// The HTTP boundary: what an adapter asks a transport to send, what comes back,
// and the Transport concept. A transport reports only what happened on the
// wire (connect error, timeout, oversized body) as a classified Failure; the
// meaning of a status code is the classifier's business, not the transport's.
#pragma once

#include <algorithm>
#include <cctype>
#include <chrono>
#include <concepts>
#include <functional>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "failover/failure.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// Header list; names keep the case they were given, lookups ignore case.
using Headers = std::vector<std::pair<std::string, std::string>>;

namespace detail {
inline bool iequals(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}
inline const std::string* find_header(const Headers& h, std::string_view name) noexcept {
    for (const auto& [k, v] : h)
        if (iequals(k, name)) return &v;
    return nullptr;
}
}  // namespace detail

/// A request ready for the wire.
struct HttpRequest {
    std::string method = "POST";
    std::string url{};
    Headers headers{};
    std::string body{};

    /// Value of the first header with this name (any case), or nullptr.
    const std::string* header(std::string_view name) const noexcept { return detail::find_header(headers, name); }
};

/// A response as received. Any status, including errors, is a response.
struct HttpResponse {
    int status = 0;
    Headers headers{};
    std::string body{};

    /// Value of the first header with this name (any case), or nullptr.
    const std::string* header(std::string_view name) const noexcept { return detail::find_header(headers, name); }
};

/// Time limits of one attempt, already clipped to what is left of the chain, and the
/// caller's cancellation.
struct Deadline {
    std::chrono::milliseconds timeout{30000};         ///< whole attempt, connect included (a stream: until its first progress)
    std::chrono::milliseconds connect_timeout{5000};  ///< TCP + TLS handshake
    std::stop_token stop{};                           ///< a stop request ends the transfer at once (reason cancelled)
};

/// What a streaming transport's data callback says about the bytes it was given.
enum class StreamStep {
    more,      ///< keep going
    progress,  ///< keep going; the bytes completed a piece of the answer (resets the stall clock)
    stop,      ///< end the transfer now (the receiver has what it needs, or gave up)
};

/// How a streamed 2xx body is handed over, and how long it may go quiet. A non-2xx
/// response is read whole, as by send(), for the classifier.
struct StreamSpec {
    /// Called once, before the first body byte of a 2xx response, with its status and headers.
    std::function<void(int, const Headers&)> on_head{};
    std::function<StreamStep(std::string_view)> on_data{};  ///< body bytes of a 2xx response as they arrive
    std::chrono::milliseconds idle{0};  ///< after the first progress, the longest gap between two (0: none)
};

/// What a transport must provide: send one request within the deadline and
/// return the response (any status) or a Failure whose reason is connection,
/// timeout, response_too_large or malformed_response. It must be safe to call
/// from many threads at once.
template <class T>
concept Transport = requires(T& t, const HttpRequest& req, Deadline d) {
    { t.send(req, d) } -> std::same_as<Result<HttpResponse>>;
};

/// A transport that can also hand over a body as it arrives: stream() returns the
/// status and headers (the body of a 2xx went to spec.on_data), or a Failure: a
/// timeout when no progress came within d.timeout (the first) or spec.idle (the next),
/// cancelled when d.stop was requested, connection / malformed_response when the
/// stream was cut.
template <class T>
concept StreamingTransport = Transport<T> && requires(T& t, const HttpRequest& req, Deadline d, const StreamSpec& s) {
    { t.stream(req, d, s) } -> std::same_as<Result<HttpResponse>>;
};

FAILOVER_END_NAMESPACE
