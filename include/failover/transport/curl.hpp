// SPDX-License-Identifier: MIT
// CurlTransport: the libcurl implementation of the Transport concept. Its
// definitions (detail/curl-inl.hpp) are the only code that includes
// <curl/curl.h>. One instance serves many threads at once. Connections are kept alive and reused: each call borrows an easy handle
// from a pool (a handle keeps its own idle connections between calls, and is
// used by one thread at a time), and all handles share one DNS cache and one
// TLS session cache through a CURLSH with a mutex per lock kind. The
// connection cache itself is deliberately not put in the share: libcurl 7.88
// documents sharing connections between concurrent threads as unsupported.
//
// What the transport reports is only what happened on the wire. Any HTTP
// status is a response (status classification is the classifier's job); a
// connect/reset/TLS error, a timeout, a truncated or non-HTTP reply, or a body
// larger than CurlOptions::max_response_bytes is a classified Failure. The
// size limit is enforced while reading, so an oversized body never sits in
// memory. A TLS certificate verification failure is reason connection with
// kind terminal: retrying the same route cannot fix a certificate. A request
// is never sent twice behind the caller's back: libcurl's silent resend on a
// dead keep-alive connection is refused before it goes out (a connection
// failure the router lists as an attempt, which it may retry as its own). Failure
// messages name the host, never the query string or any header value (API
// keys travel in both).
#pragma once

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "failover/config.hpp"
#include "failover/failure.hpp"
#include "failover/transport.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// Settings of a CurlTransport. A plain value; durations accept any std::chrono duration.
/// Proxies come from the standard environment variables (http_proxy, https_proxy, no_proxy).
struct CurlOptions {
    /// Largest response body kept in memory; a larger one fails as response_too_large.
    std::size_t max_response_bytes = FAILOVER_MAX_RESPONSE_BYTES;
    /// Verify the server's certificate and host name. Turn off only for local test servers.
    bool verify_tls = true;
    /// CA bundle file; empty uses libcurl's default store.
    std::string ca_bundle;
    /// Follow 3xx redirects (LLM APIs do not redirect; a redirect usually means a wrong base URL).
    bool follow_redirects = false;
    /// Redirect hops allowed when follow_redirects is on.
    long max_redirects = 3;
    /// User-Agent header; empty sends none. A request's own User-Agent header wins.
    std::string user_agent = "failover/" + std::to_string(FAILOVER_VERSION_MAJOR) + "." +
                             std::to_string(FAILOVER_VERSION_MINOR) + "." + std::to_string(FAILOVER_VERSION_PATCH);
    /// Easy handles (each with its idle connections) kept for reuse; extra concurrent calls get
    /// a temporary handle that is closed afterwards.
    std::size_t max_pooled_handles = 32;
    /// Ask for gzip/deflate/brotli bodies of whole answers; the size limit applies to the decoded
    /// bytes. A stream always asks for its events uncompressed (a server or proxy that compresses
    /// an event stream may hold events back to fill a compression block).
    bool accept_compressed = true;
    /// Idle time before TCP keep-alive probes on open connections; zero turns probes off.
    std::chrono::duration<double> tcp_keepalive = std::chrono::seconds(30);
    /// Connections idle longer than this are not reused (libcurl's default is 118 s); zero never reuses.
    std::chrono::duration<double> max_idle_connection = std::chrono::seconds(118);
};

namespace detail {
class CurlState;
}  // namespace detail

/// HTTP(S) transport over libcurl with keep-alive connection reuse, per-attempt deadlines
/// and a response size limit. Thread-safe; share one instance between routes.
/// @code
/// failover::CurlOptions opt;
/// opt.max_response_bytes = 1 << 20;
/// auto http = std::make_shared<failover::CurlTransport>(opt);
/// failover::Result<failover::HttpResponse> r = http->send(request, failover::Deadline{});
/// @endcode
class CurlTransport {
public:
    /// A transport with default options.
    CurlTransport() : CurlTransport(CurlOptions{}) {}

    /// Throws std::invalid_argument naming a bad option, std::runtime_error if libcurl cannot start.
    explicit CurlTransport(CurlOptions options);

    CurlTransport(CurlTransport&&) noexcept;  ///< the moved-from transport may only be destroyed or assigned
    CurlTransport& operator=(CurlTransport&&) noexcept;  ///< closes this transport's connections first
    CurlTransport(const CurlTransport&) = delete;
    CurlTransport& operator=(const CurlTransport&) = delete;
    ~CurlTransport();

    /// The options this transport was built with.
    const CurlOptions& options() const noexcept;

    /// Sends one request and waits for the whole response, at most d.timeout, or until
    /// d.stop is requested (reason cancelled). Any HTTP status is a response; a Failure
    /// means nothing usable came back.
    Result<HttpResponse> send(const HttpRequest& req, Deadline d) const;

    /// Sends one request and hands a 2xx body to spec.on_data as it arrives (a non-2xx
    /// response is read whole and returned, for the classifier). The first progress must
    /// come within d.timeout and each next one within spec.idle, else a timeout; there is
    /// no limit on the whole transfer while it makes progress. d.stop cancels at once.
    Result<HttpResponse> stream(const HttpRequest& req, Deadline d, const StreamSpec& spec) const;

private:
    Result<HttpResponse> perform(const HttpRequest& req, Deadline d, const StreamSpec* spec) const;

    std::unique_ptr<detail::CurlState> state_;
};

static_assert(StreamingTransport<CurlTransport>, "CurlTransport must satisfy the StreamingTransport concept");

FAILOVER_END_NAMESPACE

#ifndef FAILOVER_COMPILED_LIB
#include "failover/detail/curl-inl.hpp"
#endif
