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

/// Time limits of one attempt, already clipped to what is left of the chain.
struct Deadline {
    std::chrono::milliseconds timeout{30000};         ///< whole attempt, connect included
    std::chrono::milliseconds connect_timeout{5000};  ///< TCP + TLS handshake
};

/// What a transport must provide: send one request within the deadline and
/// return the response (any status) or a Failure whose reason is connection,
/// timeout, response_too_large or malformed_response. It must be safe to call
/// from many threads at once.
template <class T>
concept Transport = requires(T& t, const HttpRequest& req, Deadline d) {
    { t.send(req, d) } -> std::same_as<Result<HttpResponse>>;
};

FAILOVER_END_NAMESPACE
