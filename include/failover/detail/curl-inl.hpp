// SPDX-License-Identifier: MIT
// CurlTransport's definitions (see transport/curl.hpp) and everything it owns:
// the only header that includes <curl/curl.h>. Header-only by default,
// compiled once into failover::compiled in compiled mode.
#pragma once

#include <curl/curl.h>
#include <sys/socket.h>

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
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "failover/config.hpp"
#include "failover/failure.hpp"
#include "failover/transport.hpp"
#include "failover/transport/curl.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

namespace detail {

/// curl_global_init exactly once per process, cleaned up at exit.
class CurlGlobal {
public:
    CurlGlobal() noexcept : ok_(curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK) {}
    ~CurlGlobal() {
        if (ok_) curl_global_cleanup();
    }
    CurlGlobal(const CurlGlobal&) = delete;
    CurlGlobal& operator=(const CurlGlobal&) = delete;
    bool ok() const noexcept { return ok_; }

private:
    bool ok_;
};

inline void ensure_curl_global() {
    static const CurlGlobal global;
    if (!global.ok()) throw std::runtime_error("failover: CurlTransport: curl_global_init failed");
}

struct CurlEasyDeleter {
    void operator()(CURL* h) const noexcept { curl_easy_cleanup(h); }
};
struct CurlSlistDeleter {
    void operator()(curl_slist* l) const noexcept { curl_slist_free_all(l); }
};
struct CurlShareDeleter {
    void operator()(CURLSH* s) const noexcept { curl_share_cleanup(s); }
};
struct CurlMultiDeleter {
    void operator()(CURLM* m) const noexcept { curl_multi_cleanup(m); }
};
using CurlEasyPtr = std::unique_ptr<CURL, CurlEasyDeleter>;
using CurlMultiPtr = std::unique_ptr<CURLM, CurlMultiDeleter>;

using CurlSlistPtr = std::unique_ptr<curl_slist, CurlSlistDeleter>;

/// What the options of a transfer depend on besides the transport's CurlOptions: whether
/// it streams and how its method is sent. Two transfers of one shape through one transport
/// set the same options except those curl_configure_call sets every time.
struct CurlShape {
    bool set = false;      // the handle holds the options of this shape (else: reset it first)
    bool stream = false;
    std::string method{};  // as the request names it
    bool with_body = true;  // sent with a body (every method but HEAD and a GET without one)

    static CurlShape of(const HttpRequest& req, bool stream) {
        CurlShape s;
        s.set = true;
        s.stream = stream;
        s.method = req.method;
        s.with_body = !(req.method == "HEAD" || (req.method == "GET" && req.body.empty()));
        return s;
    }
    bool operator==(const CurlShape&) const = default;
};

/// One reusable transfer slot: an easy handle driven through its own multi handle. The
/// multi handle keeps the slot's idle connections between calls (its connection cache),
/// and lets another thread wake the transfer (curl_multi_wakeup) to cancel it at once.
struct CurlSlot {
    CurlMultiPtr multi;  // declared first: destroyed after the easy handle below
    CurlEasyPtr easy;
    CurlShape shape{};     // the options the easy handle holds (CurlTransport only)
    Headers headers{};     // the request headers `header_list` was built from
    CurlSlistPtr header_list{};
    explicit operator bool() const noexcept { return multi && easy; }
};

/// A CURLSH sharing DNS and TLS sessions, with one mutex per kind of shared data.
/// Not movable: libcurl holds a pointer to it.
class CurlShare {
public:
    CurlShare() : handle_(curl_share_init()) {
        if (!handle_) throw std::runtime_error("failover: CurlTransport: curl_share_init failed");
        CURLSH* s = handle_.get();
        bool ok = curl_share_setopt(s, CURLSHOPT_LOCKFUNC, &CurlShare::lock) == CURLSHE_OK &&
                  curl_share_setopt(s, CURLSHOPT_UNLOCKFUNC, &CurlShare::unlock) == CURLSHE_OK &&
                  curl_share_setopt(s, CURLSHOPT_USERDATA, static_cast<void*>(this)) == CURLSHE_OK &&
                  curl_share_setopt(s, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) == CURLSHE_OK;
        // TLS session sharing is optional (a libcurl built without TLS refuses it).
        curl_share_setopt(s, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        if (!ok) throw std::runtime_error("failover: CurlTransport: curl_share_setopt failed");
    }
    CurlShare(const CurlShare&) = delete;
    CurlShare& operator=(const CurlShare&) = delete;

    CURLSH* get() const noexcept { return handle_.get(); }

private:
    static void lock(CURL*, curl_lock_data data, curl_lock_access, void* self) noexcept {
        static_cast<CurlShare*>(self)->mutex_for(data).lock();
    }
    static void unlock(CURL*, curl_lock_data data, void* self) noexcept {
        static_cast<CurlShare*>(self)->mutex_for(data).unlock();
    }
    std::mutex& mutex_for(curl_lock_data data) noexcept {
        auto i = static_cast<std::size_t>(data);
        return locks_[i < locks_.size() ? i : 0];
    }

    std::array<std::mutex, CURL_LOCK_DATA_LAST> locks_;
    // Declared last so it is cleaned up first, while the mutexes still exist.
    std::unique_ptr<CURLSH, CurlShareDeleter> handle_;
};

/// Everything a CurlTransport owns, kept at a stable address so the transport can move.
class CurlState {
public:
    explicit CurlState(CurlOptions o) : options(std::move(o)) { free_.reserve(options.max_pooled_handles); }
    CurlState(const CurlState&) = delete;
    CurlState& operator=(const CurlState&) = delete;

    /// A slot for one transfer: a pooled one (with its live connections) or a new one.
    CurlSlot acquire() {
        {
            std::lock_guard lock(mutex_);
            if (!free_.empty()) {
                CurlSlot slot = std::move(free_.back());
                free_.pop_back();
                return slot;
            }
        }
        CurlSlot slot{CurlMultiPtr(curl_multi_init()), CurlEasyPtr(curl_easy_init())};
        // The share survives curl_easy_reset, so it is attached once per handle.
        if (slot.easy) curl_easy_setopt(slot.easy.get(), CURLOPT_SHARE, share_.get());
        return slot;
    }

    /// Gives a slot back; beyond max_pooled_handles it is closed with its connections.
    void release(CurlSlot slot) noexcept {
        std::unique_lock lock(mutex_);
        if (free_.size() < options.max_pooled_handles) {
            free_.push_back(std::move(slot));  // capacity reserved up front: no allocation
            return;
        }
        lock.unlock();
        slot = CurlSlot{};
    }

    const CurlOptions options;

private:
    CurlShare share_;
    std::mutex mutex_;
    std::vector<CurlSlot> free_;  // destroyed before share_: handles detach first
};

/// Returns the borrowed slot to the pool at scope exit.
class CurlLease {
public:
    CurlLease(CurlState& s, CurlSlot slot) noexcept : state_(s), slot_(std::move(slot)) {}
    ~CurlLease() { state_.release(std::move(slot_)); }
    CurlLease(const CurlLease&) = delete;
    CurlLease& operator=(const CurlLease&) = delete;
    CURL* easy() const noexcept { return slot_.easy.get(); }
    CURLM* multi() const noexcept { return slot_.multi.get(); }
    CurlSlot& slot() noexcept { return slot_; }

private:
    CurlState& state_;
    CurlSlot slot_;
};

/// What the callbacks of one transfer write into.
struct CurlCall {
    HttpResponse* response = nullptr;
    std::string_view upload{};    // the request body, read by curl_read_body (libcurl < 7.80)
    std::size_t uploaded = 0;     // bytes of it handed to libcurl (libcurl < 7.80)
    int requests = 0;             // requests libcurl was about to send (curl_before_request)
    int responses = 0;            // status lines received
    bool rewind_refused = false;  // libcurl wanted to send the request again: refused
    std::size_t limit = 0;
    bool head = false;            // HEAD: Content-Length describes a body that never comes
    bool too_large = false;       // the size limit stopped the transfer
    bool callback_error = false;  // a callback failed (out of memory)
    std::uint64_t declared_length = 0;
    int status = 0;                      // from the last status line seen
    long os_errno = 0;                   // CURLINFO_OS_ERRNO of a failed transfer
    const StreamSpec* stream = nullptr;  // set: a 2xx body goes to stream->on_data
    bool streamed = false;               // some 2xx body went to on_data
    bool progressed = false;             // on_data reported progress at least once
    bool stopped = false;                // on_data asked to stop
    std::chrono::steady_clock::time_point quiet_until{};  // the stream's stall deadline
    std::array<char, CURL_ERROR_SIZE> errbuf{};
};

inline std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
        s.remove_suffix(1);
    return s;
}

inline std::size_t curl_on_header(char* data, std::size_t size, std::size_t count, void* user) noexcept {
    auto* call = static_cast<CurlCall*>(user);
    const std::size_t n = size * count;
    try {
        std::string_view line(data, n);
        while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
        Headers& headers = call->response->headers;
        if (line.substr(0, 5) == "HTTP/") {
            // A new header block (after a 1xx or a followed redirect): keep only the last one.
            headers.clear();
            call->declared_length = 0;
            const auto sp = line.find(' ');
            int code = 0;
            if (sp != std::string_view::npos && line.size() >= sp + 4)
                std::from_chars(line.data() + sp + 1, line.data() + sp + 4, code);
            call->status = code;
            ++call->responses;
            return n;
        }
        if (line.empty()) return n;
        if (line.front() == ' ' || line.front() == '\t') {
            // Obsolete line folding: the line continues the previous header's value.
            if (!headers.empty()) {
                std::string_view more = trim(line);
                if (!more.empty()) {
                    headers.back().second += ' ';
                    headers.back().second += more;
                }
            }
            return n;
        }
        const auto colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0) return n;  // not a header: ignore
        const std::string_view name = line.substr(0, colon);
        const std::string_view value = trim(line.substr(colon + 1));
        if (!call->head && !(call->stream && call->status >= 200 && call->status < 300) &&
            iequals(name, "content-length")) {
            std::uint64_t length = 0;
            auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), length);
            if (ec == std::errc{} && end == value.data() + value.size()) {
                if (length > call->limit) {
                    call->too_large = true;
                    call->declared_length = length;
                    return 0;  // abort before a single body byte arrives
                }
                call->response->body.reserve(static_cast<std::size_t>(length));
            }
        }
        headers.emplace_back(std::string(name), std::string(value));
        return n;
    } catch (...) {
        call->callback_error = true;
        return 0;
    }
}

inline std::size_t curl_on_body(char* data, std::size_t size, std::size_t count, void* user) noexcept {
    auto* call = static_cast<CurlCall*>(user);
    const std::size_t n = size * count;
    if (call->stream && call->status >= 200 && call->status < 300) {
        // A streamed success: the bytes go to the receiver as they come, never into memory here.
        try {
            if (!call->streamed && call->stream->on_head) call->stream->on_head(call->status, call->response->headers);
            call->streamed = true;
            switch (call->stream->on_data(std::string_view(data, n))) {
                case StreamStep::more: return n;
                case StreamStep::progress:
                    call->progressed = true;
                    if (call->stream->idle.count() > 0) call->quiet_until = std::chrono::steady_clock::now() + call->stream->idle;
                    else call->quiet_until = std::chrono::steady_clock::time_point::max();
                    return n;
                case StreamStep::stop: call->stopped = true; return 0;
            }
        } catch (...) {
            call->callback_error = true;
        }
        return 0;
    }
    std::string& body = call->response->body;
    if (n > call->limit - body.size()) {  // body.size() <= limit always holds
        call->too_large = true;
        return 0;
    }
    try {
        body.append(data, n);
    } catch (...) {
        call->callback_error = true;
        return 0;
    }
    return n;
}

/// libcurl 7.88 silently re-sends a request whose reused connection died before any
/// response byte ("Connection died, retrying a fresh connect"). The server may already
/// have received and billed it, so the second send is refused: the transfer fails and
/// the router records it as an attempt and decides for itself.
///
/// From libcurl 7.80 CURLOPT_PREREQFUNCTION runs right before each request goes out: a
/// request that follows another with no status line in between (a redirect brings one)
/// is that re-send, and is aborted. The body then goes out from the caller's buffer
/// (CURLOPT_POSTFIELDS) with the headers in one send. Older libcurl: the body is read
/// through curl_read_body and the rewind a re-send needs is refused by curl_seek_body.
#if LIBCURL_VERSION_NUM >= 0x075000
inline int curl_before_request(void* user, char*, char*, int, int) noexcept {
    auto* call = static_cast<CurlCall*>(user);
    if (call->requests > call->responses) {
        call->rewind_refused = true;
        return CURL_PREREQFUNC_ABORT;
    }
    ++call->requests;
    return CURL_PREREQFUNC_OK;
}
#endif

/// Hands the request body to libcurl (libcurl < 7.80; see curl_before_request).
inline std::size_t curl_read_body(char* buffer, std::size_t size, std::size_t count, void* user) noexcept {
    auto* call = static_cast<CurlCall*>(user);
    const std::size_t n = std::min(size * count, call->upload.size() - call->uploaded);
    std::memcpy(buffer, call->upload.data() + call->uploaded, n);
    call->uploaded += n;
    return n;
}

/// Refuses the rewind of a re-send once any of the body went out (libcurl < 7.80; see
/// curl_before_request): the transfer fails with CURLE_SEND_FAIL_REWIND. A resend of a
/// request whose body never left (the connection was already dead) goes ahead.
inline int curl_seek_body(void* user, curl_off_t offset, int origin) noexcept {
    auto* call = static_cast<CurlCall*>(user);
    if (offset == 0 && origin == SEEK_SET && call->uploaded == 0) return CURL_SEEKFUNC_OK;
    call->rewind_refused = true;
    return CURL_SEEKFUNC_FAIL;
}

/// Opens the transfer's sockets as libcurl would, remembering why one could not be
/// opened: libcurl reports EMFILE as "Couldn't connect to server", and only the errno
/// tells our own descriptor limit from the provider being down.
inline curl_socket_t curl_open_socket(void* user, curlsocktype, curl_sockaddr* address) noexcept {
    auto* call = static_cast<CurlCall*>(user);
    const curl_socket_t fd = ::socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
    if (fd == CURL_SOCKET_BAD) call->os_errno = errno;
    return fd;
}

/// How a transfer driven by CurlTransport::run ended.
struct Outcome {
    CURLcode code = CURLE_OK;
    bool cancelled = false;  // the caller's stop request ended it
    bool stalled = false;    // a stream went quiet past its limit
};

/// "host[:port]" of a URL, without scheme, user info, path or query.
inline std::string_view url_host(std::string_view url) noexcept {
    auto scheme = url.find("://");
    std::string_view rest = scheme == std::string_view::npos ? url : url.substr(scheme + 3);
    rest = rest.substr(0, rest.find_first_of("/?#"));
    if (auto at = rest.rfind('@'); at != std::string_view::npos) rest.remove_prefix(at + 1);
    return rest;
}

inline bool is_http_url(std::string_view url) noexcept {
    return (url.size() >= 7 && iequals(url.substr(0, 7), "http://")) ||
           (url.size() >= 8 && iequals(url.substr(0, 8), "https://"));
}

inline void replace_all(std::string& text, std::string_view needle, std::string_view with) {
    if (needle.empty()) return;
    for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + with.size()))
        text.replace(pos, needle.size(), with);
}

/// libcurl's detail text with anything secret-bearing cut out: the query string, user info
/// and every header value long enough to be a credential.
inline std::string redact(std::string text, const HttpRequest& req) {
    const std::string_view url = req.url;
    if (auto q = url.find('?'); q != std::string_view::npos) {
        std::string_view query = url.substr(q + 1);
        query = query.substr(0, query.find('#'));
        replace_all(text, query, "<redacted>");
    }
    if (auto scheme = url.find("://"); scheme != std::string_view::npos) {
        std::string_view authority = url.substr(scheme + 3);
        authority = authority.substr(0, authority.find_first_of("/?#"));
        if (auto at = authority.rfind('@'); at != std::string_view::npos)
            replace_all(text, authority.substr(0, at), "<redacted>");
    }
    for (const auto& [name, value] : req.headers)
        if (value.size() >= 6) replace_all(text, value, "<redacted>");
    return text;
}

inline long clamp_ms(std::chrono::milliseconds d) noexcept {
    const auto c = d.count();
    if (c < 1) return 1;
    if (c > 0x7fffffffL) return 0x7fffffffL;
    return static_cast<long>(c);
}

inline long whole_seconds(std::chrono::duration<double> d) noexcept {
    const double s = d.count();
    if (!(s > 0)) return 0;
    if (s > 0x7fffffff) return 0x7fffffffL;
    const auto r = static_cast<long>(s);
    return r < 1 ? 1 : r;
}

inline bool has_crlf(std::string_view s) noexcept { return s.find_first_of("\r\n") != std::string_view::npos; }

/// The classified Failure for a transfer that did not complete.
/// True for an errno that means our own process ran out of something, not the peer.
constexpr bool local_errno(long e) noexcept {
    return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

inline Failure curl_failure(CURLcode rc, const CurlCall& call, const HttpRequest& req, const CurlOptions& opt,
                            Deadline d) {
    const std::string host(url_host(req.url));
    std::string detail = redact(std::string(call.errbuf.data()), req);
    std::string what = curl_easy_strerror(rc);
    if (!detail.empty()) what += " (" + detail + ")";

    if (call.too_large || rc == CURLE_FILESIZE_EXCEEDED) {
        std::string msg = "response from " + host + " exceeds max_response_bytes (" +
                          std::to_string(opt.max_response_bytes) + " bytes)";
        if (call.declared_length != 0) msg += ": Content-Length is " + std::to_string(call.declared_length);
        msg += "; transfer aborted";
        return Failure::of(Reason::response_too_large, std::move(msg));
    }
    if (call.callback_error)
        return Failure::of(Reason::local_resource, "out of memory while receiving the response from " + host);
    // A socket we could not open is our limit, not the provider's outage: libcurl says
    // "Couldn't connect to server", the errno says EMFILE.
    if (local_errno(call.os_errno))
        return Failure::of(Reason::local_resource, host + ": this process is out of file descriptors or memory (" +
                                                       std::string(std::strerror(static_cast<int>(call.os_errno))) +
                                                       "); the request was not sent");
    if (call.rewind_refused || rc == CURLE_SEND_FAIL_REWIND)
        return Failure::of(Reason::connection, host +
                                                   ": the connection closed after the request was sent and before any "
                                                   "response; not sent again, since the server may have received it");

    switch (rc) {
        case CURLE_OPERATION_TIMEDOUT:
            return Failure::of(Reason::timeout, host + ": no complete response within " +
                                                    std::to_string(d.timeout.count()) + " ms: " + what);
        case CURLE_PARTIAL_FILE:
            return Failure::of(Reason::malformed_response, host + ": truncated response body: " + what);
        case CURLE_WEIRD_SERVER_REPLY:
        case CURLE_BAD_CONTENT_ENCODING:
            return Failure::of(Reason::malformed_response, host + ": not a valid HTTP response: " + what);
        case CURLE_UNSUPPORTED_PROTOCOL:
            // With an http(s) URL this means the server answered in something that is not HTTP.
            if (is_http_url(req.url))
                return Failure::of(Reason::malformed_response, host + ": not a valid HTTP response: " + what);
            return Failure::of(Reason::bad_request, "unsupported URL scheme for " + host + " (only http and https)");
        case CURLE_URL_MALFORMAT:
            return Failure::of(Reason::bad_request, "malformed URL for host '" + host + "': " + what);
        case CURLE_PEER_FAILED_VERIFICATION:
        case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CERTPROBLEM:
        case CURLE_SSL_CRL_BADFILE:
        case CURLE_SSL_ISSUER_ERROR:
        case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
        case CURLE_SSL_INVALIDCERTSTATUS: {
            // Retrying cannot fix a certificate problem: fail over at once.
            Failure f =
                Failure::of(Reason::connection, host +
                                                    ": TLS certificate verification failed; this is a configuration "
                                                    "or security problem, not a transient one: " +
                                                    what);
            f.kind = FailureKind::terminal;
            return f;
        }
        case CURLE_OUT_OF_MEMORY: return Failure::of(Reason::local_resource, host + ": out of memory: " + what);
        default:
            // Connect refused/reset, DNS, proxy, send/receive errors, TLS handshake, HTTP/2 errors.
            return Failure::of(Reason::connection, host + ": " + what);
    }
}

// Drives one transfer on its slot's multi handle: libcurl does the I/O and its own
// timeouts; this loop adds what libcurl cannot know: the caller's stop request (which
// wakes the wait at once) and, for a stream, the stall clock.
inline Outcome curl_run(CURLM* m, CURL* h, CurlCall& call, const Deadline& d) {
    detail::Outcome out;
    if (curl_multi_add_handle(m, h) != CURLM_OK) {
        out.code = CURLE_FAILED_INIT;
        return out;
    }
    const auto start = std::chrono::steady_clock::now();
    call.quiet_until = call.stream ? start + d.timeout : std::chrono::steady_clock::time_point::max();
    std::stop_callback wake(d.stop, [m] { curl_multi_wakeup(m); });
    int running = 1;
    for (;;) {
        if (curl_multi_perform(m, &running) != CURLM_OK) {
            out.code = CURLE_FAILED_INIT;
            break;
        }
        int left = 0;
        while (CURLMsg* msg = curl_multi_info_read(m, &left))
            if (msg->msg == CURLMSG_DONE && msg->easy_handle == h) out.code = msg->data.result;
        if (running == 0) break;
        if (d.stop.stop_requested()) {
            out.cancelled = true;
            break;
        }
        const auto now = std::chrono::steady_clock::now();
        if (now >= call.quiet_until) {
            out.stalled = true;
            break;
        }
        const auto until_stall = std::chrono::ceil<std::chrono::milliseconds>(call.quiet_until - now);
        const int wait_ms = static_cast<int>(std::clamp<std::chrono::milliseconds::rep>(until_stall.count(), 1, 1000));
        curl_multi_poll(m, nullptr, 0, wait_ms, nullptr);
    }
    curl_multi_remove_handle(m, h);
    return out;
}

inline bool curl_append(CurlSlistPtr& list, const char* line) noexcept {
    curl_slist* next = curl_slist_append(list.get(), line);
    if (!next) return false;
    (void)list.release();
    list.reset(next);
    return true;
}

}  // namespace detail

FAILOVER_INLINE const CurlOptions& CurlTransport::options() const noexcept { return state_->options; }
FAILOVER_INLINE CurlTransport::CurlTransport(CurlTransport&&) noexcept = default;
FAILOVER_INLINE CurlTransport& CurlTransport::operator=(CurlTransport&&) noexcept = default;
FAILOVER_INLINE CurlTransport::~CurlTransport() = default;

FAILOVER_INLINE CurlTransport::CurlTransport(CurlOptions options) {
    if (options.max_response_bytes == 0)
        throw std::invalid_argument("failover: CurlOptions.max_response_bytes must be > 0");
    if (options.follow_redirects && options.max_redirects < 0)
        throw std::invalid_argument("failover: CurlOptions.max_redirects must be >= 0, got " +
                                    std::to_string(options.max_redirects));
    if (options.tcp_keepalive.count() < 0)
        throw std::invalid_argument("failover: CurlOptions.tcp_keepalive must not be negative");
    if (options.max_idle_connection.count() < 0)
        throw std::invalid_argument("failover: CurlOptions.max_idle_connection must not be negative");
    detail::ensure_curl_global();
    state_ = std::make_unique<detail::CurlState>(std::move(options));
}

FAILOVER_INLINE Result<HttpResponse> CurlTransport::send(const HttpRequest& req, Deadline d) const {
    try {
        return perform(req, d, nullptr);
    } catch (const std::bad_alloc&) {
        return Failure::of(Reason::internal,
                           "out of memory while sending a request to " + std::string(detail::url_host(req.url)));
    }
}

FAILOVER_INLINE Result<HttpResponse> CurlTransport::stream(const HttpRequest& req, Deadline d, const StreamSpec& spec) const {
    try {
        return perform(req, d, &spec);
    } catch (const std::bad_alloc&) {
        return Failure::of(Reason::internal,
                           "out of memory while sending a request to " + std::string(detail::url_host(req.url)));
    }
}

namespace detail {

/// The bad_request Failure of a request header libcurl cannot send, if any.
inline std::optional<Failure> curl_bad_header(const HttpRequest& req) {
    for (const auto& [name, value] : req.headers)
        if (name.empty() || has_crlf(name) || has_crlf(value) || name.find(':') != std::string::npos)
            return Failure::of(Reason::bad_request, "invalid request header name or value (header '" +
                                                        (has_crlf(name) ? std::string("?") : name) + "')");
    return std::nullopt;
}

/// The header list for libcurl of a request whose headers curl_bad_header accepted.
inline void curl_header_list(const HttpRequest& req, CurlSlistPtr& headers) {
    bool has_expect = false;
    std::string line;
    for (const auto& [name, value] : req.headers) {
        if (iequals(name, "expect")) has_expect = true;
        line.assign(name);
        if (value.empty()) {
            line += ';';  // libcurl's spelling of "send this header with an empty value"
        } else {
            line += ": ";
            line += value;
        }
        if (!curl_append(headers, line.c_str())) throw std::bad_alloc();
    }
    // No "Expect: 100-continue" round trip before a body: it only adds latency here.
    if (!has_expect && !curl_append(headers, "Expect:")) throw std::bad_alloc();
}

/// The request's header list for libcurl, or the bad_request Failure of an invalid header
/// (found before any handle is taken).
inline std::optional<Failure> curl_headers(const HttpRequest& req, CurlSlistPtr& headers) {
    if (auto bad = curl_bad_header(req)) return bad;
    curl_header_list(req, headers);
    return std::nullopt;
}

/// Sets the options of a (reset) easy handle that every transfer of `shape` through a
/// transport with options `opt` shares; curl_configure_call sets the rest.
inline void curl_configure_shape(CURL* h, const CurlShape& shape, const CurlOptions& opt) {
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &curl_on_body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &curl_on_header);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, &curl_open_socket);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS, static_cast<long>(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, opt.verify_tls ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, opt.verify_tls ? 2L : 0L);
    if (!opt.ca_bundle.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, opt.ca_bundle.c_str());
    if (opt.follow_redirects) {
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(h, CURLOPT_MAXREDIRS, opt.max_redirects);
    }
    if (!opt.user_agent.empty()) curl_easy_setopt(h, CURLOPT_USERAGENT, opt.user_agent.c_str());
    // Whole answers only: a server or proxy that compresses an event stream may hold its events
    // back to fill a compression block, which would delay every token.
    if (opt.accept_compressed && !shape.stream) curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    if (const long idle = whole_seconds(opt.tcp_keepalive); idle > 0) {
        curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, idle);
        curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, idle);
    }
    curl_easy_setopt(h, CURLOPT_MAXAGE_CONN, whole_seconds(opt.max_idle_connection));

    const std::string& method = shape.method;
    if (!shape.with_body && method == "GET") {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (!shape.with_body) {  // HEAD
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else {
        if (method != "POST") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method.c_str());
        curl_easy_setopt(h, CURLOPT_POST, 1L);
#if LIBCURL_VERSION_NUM < 0x075000
        curl_easy_setopt(h, CURLOPT_READFUNCTION, &curl_read_body);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, &curl_seek_body);
#endif
    }
#if LIBCURL_VERSION_NUM >= 0x075000
    // A proxy's answer to CONNECT is not a response to the request: kept from the header
    // callback, it cannot pass for one and let a re-send through a new tunnel go out.
    curl_easy_setopt(h, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    curl_easy_setopt(h, CURLOPT_PREREQFUNCTION, &curl_before_request);
#endif
}

/// Sets what differs from one transfer of a shape to the next: the URL, the header list,
/// the body, the time limits and the `call` the callbacks write into. `req`, `headers` and
/// `call` must outlive the transfer.
inline void curl_configure_call(CURL* h, const CurlShape& shape, const HttpRequest& req, const Deadline& d,
                                const curl_slist* headers, CurlCall& call) {
    curl_easy_setopt(h, CURLOPT_URL, req.url.c_str());
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, call.errbuf.data());
    curl_easy_setopt(h, CURLOPT_WRITEDATA, static_cast<void*>(&call));
    curl_easy_setopt(h, CURLOPT_HEADERDATA, static_cast<void*>(&call));
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, static_cast<void*>(&call));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    // A stream has no limit on its whole length: its stalls are timed by the driver instead.
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, shape.stream ? 0L : clamp_ms(d.timeout));
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     clamp_ms(d.connect_timeout.count() > 0 ? std::min(d.connect_timeout, d.timeout) : d.timeout));
    if (!shape.with_body) {
        call.head = shape.method == "HEAD";
    } else {
        // The body goes out from the caller's buffer, without a copy; a silent second
        // send is refused (see curl_before_request).
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
#if LIBCURL_VERSION_NUM >= 0x075000
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req.body.data());
#else
        call.upload = req.body;
        curl_easy_setopt(h, CURLOPT_READDATA, static_cast<void*>(&call));
        curl_easy_setopt(h, CURLOPT_SEEKDATA, static_cast<void*>(&call));
#endif
    }
#if LIBCURL_VERSION_NUM >= 0x075000
    curl_easy_setopt(h, CURLOPT_PREREQDATA, static_cast<void*>(&call));
#endif
}

/// Sets the (reset) easy handle `h` up for one transfer of `req` whose callbacks write into
/// `call`: the EventLoop's way (CurlTransport keeps a handle's shape options between calls).
inline void curl_configure(CURL* h, const HttpRequest& req, const Deadline& d, const CurlOptions& opt,
                           const curl_slist* headers, CurlCall& call) {
    const CurlShape shape = CurlShape::of(req, call.stream != nullptr);
    curl_configure_shape(h, shape, opt);
    curl_configure_call(h, shape, req, d, headers, call);
}

/// What a finished transfer on `h` amounts to: the response (any status) or its classified
/// Failure. Detaches the handle from the buffers it pointed at.
inline Result<HttpResponse> curl_result(CURL* h, const Outcome& out, CurlCall& call, HttpResponse&& response,
                                        const HttpRequest& req, const CurlOptions& opt, const Deadline& d) {
    const StreamSpec* spec = call.stream;
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, static_cast<curl_slist*>(nullptr));
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, static_cast<char*>(nullptr));
    const std::string host(url_host(req.url));
    if (out.cancelled) return Failure::of(Reason::cancelled, host + ": cancelled by the caller");
    if (out.stalled) {
        if (!call.progressed)
            return Failure::of(Reason::timeout, host + ": no " +
                                                    std::string(spec && call.streamed ? "progress in the stream" : "response") +
                                                    " within " + std::to_string(d.timeout.count()) + " ms");
        return Failure::of(Reason::timeout, host + ": the stream stalled for more than " +
                                                std::to_string(spec->idle.count()) + " ms");
    }
    if (call.stopped) {  // the receiver ended a streamed 2xx on purpose
        response.status = call.status;
        return std::move(response);
    }
    const CURLcode rc = out.code;
    if (rc != CURLE_OK && call.os_errno == 0) curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &call.os_errno);
    if (rc != CURLE_OK || call.too_large || call.callback_error) return curl_failure(rc, call, req, opt, d);

    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    response.status = static_cast<int>(status);
    return std::move(response);
}

}  // namespace detail

FAILOVER_INLINE Result<HttpResponse> CurlTransport::perform(const HttpRequest& req, Deadline d, const StreamSpec* spec) const {
    const CurlOptions& opt = state_->options;
    if (d.timeout.count() <= 0)
        return Failure::of(Reason::timeout,
                           "no time left for an attempt to " + std::string(detail::url_host(req.url)));

    // Headers first: a bad one is the caller's error, found before a handle is taken.
    if (auto bad = detail::curl_bad_header(req)) return std::move(*bad);

    if (d.stop.stop_requested()) return Failure::of(Reason::cancelled, "cancelled before it was sent");
    detail::CurlSlot slot = state_->acquire();
    if (!slot)  // both fail only for want of memory or descriptors (the multi handle's wakeup pair)
        return Failure::of(Reason::local_resource, "could not create a transfer (out of file descriptors or memory)");
    detail::CurlLease lease(*state_, std::move(slot));
    detail::CurlSlot& held = lease.slot();
    CURL* h = lease.easy();
    // A handle keeps its options between transfers (connections, caches and the share stay in
    // any case): one that last carried a transfer of the same shape through this transport
    // needs only the per-call options, and the same headers need no new list (most calls
    // repeat the previous one). Anything else starts from the defaults.
    const detail::CurlShape shape = detail::CurlShape::of(req, spec != nullptr);
    if (held.shape != shape) {
        held.shape = {};
        curl_easy_reset(h);
        detail::curl_configure_shape(h, shape, opt);
        held.shape = shape;
    }
    if (!held.header_list || held.headers != req.headers) {
        held.header_list.reset();
        held.headers.clear();
        detail::curl_header_list(req, held.header_list);
        held.headers = req.headers;
    }

    HttpResponse response;
    detail::CurlCall call;
    call.response = &response;
    call.limit = opt.max_response_bytes;
    call.stream = spec;
    detail::curl_configure_call(h, shape, req, d, held.header_list.get(), call);
    const detail::Outcome out = detail::curl_run(lease.multi(), h, call, d);
    // A transfer that did not end cleanly leaves the next one to start from a reset handle.
    if (out.code != CURLE_OK || out.cancelled || out.stalled) held.shape = {};
    return detail::curl_result(h, out, call, std::move(response), req, opt, d);
}

FAILOVER_END_NAMESPACE
