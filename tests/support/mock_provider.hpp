// SPDX-License-Identifier: MIT
// MockProvider: a loopback HTTP/1.1 server that speaks the OpenAI (and Azure
// OpenAI), Anthropic, Gemini and Ollama-native (/api/chat) wire formats, for
// integration tests and the runnable examples. It is written on plain POSIX
// sockets because its faults (TCP reset, hang, slow drip, truncated and
// oversized bodies) need control of the socket itself.
//
// Contract: the constructor binds 127.0.0.1 on an ephemeral port and starts
// serving (an accept thread plus one thread per connection, HTTP/1.1
// keep-alive). A request's first path segment names a route
// (`http://127.0.0.1:<port>/<route>/v1/chat/completions`); the rest of the path
// picks the wire format. Each route plays a FIFO script of Faults, one per
// request, then its default Fault (ok unless set). Scripts, counters and
// recorded requests are guarded by one mutex, so tests may script and read
// from any thread. The destructor (or stop()) ends every connection, including
// hanging and dripping ones, and joins every thread.
//
// Requests are checked like the real APIs check them: a body missing a required
// field (model, messages, Anthropic max_tokens, Gemini contents) gets the
// provider's 400 and consumes no script entry (on /api/chat a "stream" that is
// not false is refused too: the mock answers with one JSON object, not a
// stream); with require_auth() a missing key header gets the provider's 401.
// Beyond missing fields the mock refuses what the real APIs refuse (see
// "provider rules"): OpenAI strict structured output outside the strict
// subset, tool calls without ids or unanswered, unknown message fields;
// Anthropic tool results not right after their tool_use, thinking blocks not
// signed for the model; Gemini 3 function calls without their thought
// signature, and any signature the mock did not issue for that model.
// When an http(s)_proxy variable is set, the constructor adds 127.0.0.1 to
// no_proxy so loopback traffic stays local.
//
// Streaming: a request that asks for a stream (OpenAI, Azure and compatible:
// body "stream": true; Anthropic: "stream": true; Gemini: a path ending in
// :streamGenerateContent with alt=sse) gets its answer as server-sent events in
// the provider's shapes, chunked, keep-alive kept after a normal end (see
// "streaming" below); the same scripts, counters and provider rules apply. The
// Fault's stream modifiers (pieces, paced, stall_first, stall_after, cut_after,
// error_after, without_terminator, malformed_after) shape the stream.
//
// Answer sets (for report runs and other tests that want the same answer for the
// same question): MockRoute::answer(key, fault) gives a route a fixed answer for
// every request whose user text contains `key` (the text of every user message,
// in the wire's own shape: OpenAI/Azure/Ollama messages, Anthropic messages and
// text blocks, Gemini user contents' text parts). A scripted Fault still comes
// first; keyed answers are consulted only when the script is empty, before the
// default Fault; when several keys match, the longest wins (then the first added).
// A repair turn repeats the user's question, so it gets the same keyed answer.
//
// Self-contained on purpose: only the standard library, POSIX and nlohmann/json.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <initializer_list>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace failover_mock {

using Json = nlohmann::json;
using HeaderList = std::vector<std::pair<std::string, std::string>>;

/// The wire format a request was addressed to, chosen by its path.
enum class Wire {
    openai,     ///< .../v1/chat/completions (any path ending in /chat/completions)
    azure,      ///< .../openai/deployments/<deployment>/chat/completions?api-version=...
    anthropic,  ///< .../v1/messages
    gemini,     ///< .../v1beta/models/<model>:generateContent
    ollama,     ///< .../api/chat (Ollama's native API; errors are {"error":"text"})
};

namespace detail {
inline bool iequals(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
           });
}
}  // namespace detail

/// One request as the mock received it.
struct RecordedRequest {
    std::string method;
    std::string target;  ///< path plus query, as sent
    std::string path;    ///< without the query
    std::string query;   ///< after '?', empty if none
    std::string route;   ///< the route name (first path segment)
    HeaderList headers;
    std::string body;

    /// Value of the first header with this name (any case), or nullptr.
    const std::string* header(std::string_view name) const noexcept {
        for (const auto& [k, v] : headers)
            if (detail::iequals(k, name)) return &v;
        return nullptr;
    }
    /// The body parsed as JSON (discarded value when it is not JSON).
    Json json() const { return Json::parse(body, nullptr, false); }
};

/// What the mock does with one request. Build with the static functions, adjust with
/// the modifiers (each returns a modified copy), e.g.
/// `Fault::status(429).retry_after("2")`, `Fault::ok("hi").delayed(50ms)`.
struct Fault {
    enum class Kind {
        ok_text,
        ok_json,
        tool_call,
        status,
        quota_exhausted,
        context_length,
        hang,
        reset,
        truncated,
        malformed_json,
        oversized,
        wrong_content_type,
        schema_invalid,
        refusal,
        content_filter,
        safety_block,
        raw,
    };
    Kind kind = Kind::ok_text;
    std::string text = "ok";  ///< answer text, refusal text, or raw body
    Json payload;             ///< ok_json answer, tool arguments, schema_invalid override
    std::string tool_name;    ///< tool_call
    int http_status = 200;    ///< status / raw
    std::string code;     ///< overrides the error code (OpenAI error.code, Anthropic error.type, Gemini error.status)
    std::string type;     ///< overrides OpenAI's error.type
    std::string message;  ///< overrides the error message
    std::string content_type = "application/json";  ///< raw
    std::size_t size = 0;                           ///< oversized: body bytes
    bool chunked = false;                           ///< oversized: chunked encoding instead of Content-Length
    HeaderList headers;                             ///< extra response headers
    std::chrono::milliseconds delay{0};             ///< wait before answering
    std::chrono::milliseconds drip_interval{0};     ///< send the body drip_bytes at a time, this far apart
    std::size_t drip_bytes = 0;
    bool interim_continue = false;           ///< send "100 Continue" (with a header) before the response
    std::optional<std::string> retry_delay;  ///< Gemini body RetryInfo.retryDelay seconds
    std::string thinking;                    ///< Anthropic: a signed thinking block before the content

    // Streamed answers (see "streaming" below). Positions count content events only.
    /// Used by stall_first / stall_after: stall until the client goes away.
    static constexpr std::chrono::milliseconds forever = std::chrono::milliseconds::max();
    std::size_t piece_chars = 8;                    ///< bytes of text per content event (at a UTF-8 boundary)
    std::chrono::milliseconds pace{0};              ///< pause before every event
    std::optional<std::size_t> stall_at;            ///< stall after this many content events
    std::chrono::milliseconds stall_for = forever;  ///< how long the stall lasts
    std::optional<std::size_t> cut_at;              ///< close the connection abruptly after this many
    std::optional<std::size_t> error_at;            ///< the provider's error event after this many, then the end
    std::optional<std::size_t> malformed_at;        ///< a data line that is not JSON after this many
    bool no_terminator = false;                     ///< end cleanly without what marks the end of the answer

    /// 200 with a text answer.
    static Fault ok(std::string text = "ok") {
        Fault f;
        f.text = std::move(text);
        return f;
    }
    /// 200 with a structured answer: OpenAI content string, Anthropic tool_use input for the
    /// tool the request forced (else a text block), Gemini text part, Ollama message.content.
    static Fault ok_json(Json answer) {
        Fault f;
        f.kind = Kind::ok_json;
        f.payload = std::move(answer);
        return f;
    }
    /// 200 with one tool call (finish reason tool_calls / tool_use).
    static Fault tool_call(std::string name, Json arguments = Json::object()) {
        Fault f;
        f.kind = Kind::tool_call;
        f.tool_name = std::move(name);
        f.payload = std::move(arguments);
        return f;
    }
    /// An error status with the provider's real error body for it (e.g. 429 rate limit,
    /// Anthropic 529 overloaded_error, Gemini 503 UNAVAILABLE).
    static Fault status(int code) {
        Fault f;
        f.kind = Kind::status;
        f.http_status = code;
        return f;
    }
    /// Quota or billing exhausted: OpenAI/Azure 429 insufficient_quota, Anthropic 402
    /// billing_error, Gemini 429 RESOURCE_EXHAUSTED with a per-day QuotaFailure.
    static Fault quota_exhausted() {
        Fault f;
        f.kind = Kind::quota_exhausted;
        return f;
    }
    /// The prompt is too long for the model: each provider's 400.
    static Fault context_length_exceeded() {
        Fault f;
        f.kind = Kind::context_length;
        return f;
    }
    /// Read the request, never answer; ends when the client closes or the server stops.
    static Fault hang() {
        Fault f;
        f.kind = Kind::hang;
        return f;
    }
    /// Read the request, then reset the TCP connection (RST) without answering.
    static Fault reset() {
        Fault f;
        f.kind = Kind::reset;
        return f;
    }
    /// A success body sent a few bytes at a time.
    static Fault slow_drip(std::chrono::milliseconds interval, std::size_t bytes = 4) {
        return ok("slow answer").dripped(interval, bytes);
    }
    /// Content-Length of a full success body, half of it sent, then the connection closed.
    static Fault truncated() {
        Fault f;
        f.kind = Kind::truncated;
        return f;
    }
    /// 200 application/json whose body is cut-off JSON (correctly framed).
    static Fault malformed_json() {
        Fault f;
        f.kind = Kind::malformed_json;
        return f;
    }
    /// 200 with a body of `bytes` bytes, generated while sending (never held in memory).
    static Fault oversized(std::size_t bytes) {
        Fault f;
        f.kind = Kind::oversized;
        f.size = bytes;
        return f;
    }
    /// 200 text/html, as from a captive portal or a misrouted gateway.
    static Fault wrong_content_type() {
        Fault f;
        f.kind = Kind::wrong_content_type;
        return f;
    }
    /// 200 with valid JSON that breaks the request's schema (missing required fields or a
    /// wrongly typed property), or the given JSON.
    static Fault schema_invalid(Json answer = nullptr) {
        Fault f;
        f.kind = Kind::schema_invalid;
        f.payload = std::move(answer);
        return f;
    }
    /// The model refuses: OpenAI message.refusal, Anthropic stop_reason "refusal", Gemini and
    /// Ollama a plain-text refusal (they have no refusal signal).
    static Fault refusal(std::string text = "I can't help with that.") {
        Fault f;
        f.kind = Kind::refusal;
        f.text = std::move(text);
        return f;
    }
    /// Content filter: OpenAI finish_reason content_filter, Azure 400 content_filter,
    /// Anthropic stop_reason "refusal", Gemini finishReason SAFETY; Ollama has no filter, so
    /// a plain-text answer saying it will not help.
    static Fault content_filter() {
        Fault f;
        f.kind = Kind::content_filter;
        return f;
    }
    /// Blocked prompt: Gemini promptFeedback.blockReason SAFETY with no candidates; other
    /// providers as content_filter().
    static Fault safety_block() {
        Fault f;
        f.kind = Kind::safety_block;
        return f;
    }
    /// Exactly this status, body and content type.
    static Fault raw(int status_code, std::string body, std::string type_of_content = "application/json") {
        Fault f;
        f.kind = Kind::raw;
        f.http_status = status_code;
        f.text = std::move(body);
        f.content_type = std::move(type_of_content);
        return f;
    }

    /// Adds `retry-after: <value>` (seconds or an HTTP date); on Gemini also RetryInfo in the body.
    Fault retry_after(std::string value) const {
        Fault f = with_header("retry-after", value);
        f.retry_delay = std::move(value);
        return f;
    }
    /// Adds `retry-after-ms: <value>`.
    Fault retry_after_ms(std::string value) const { return with_header("retry-after-ms", std::move(value)); }
    /// Adds any response header.
    Fault with_header(std::string name, std::string value) const {
        Fault f = *this;
        f.headers.emplace_back(std::move(name), std::move(value));
        return f;
    }
    /// Overrides the provider error code (OpenAI error.code, Anthropic error.type, Gemini error.status).
    Fault with_code(std::string value) const {
        Fault f = *this;
        f.code = std::move(value);
        return f;
    }
    /// Overrides OpenAI's error.type.
    Fault with_type(std::string value) const {
        Fault f = *this;
        f.type = std::move(value);
        return f;
    }
    /// Overrides the error message.
    Fault with_message(std::string value) const {
        Fault f = *this;
        f.message = std::move(value);
        return f;
    }
    /// Waits this long before answering (makes a route slow).
    Fault delayed(std::chrono::milliseconds d) const {
        Fault f = *this;
        f.delay = d;
        return f;
    }
    /// Sends the body `bytes` at a time, `interval` apart.
    Fault dripped(std::chrono::milliseconds interval, std::size_t bytes = 4) const {
        Fault f = *this;
        f.drip_interval = interval;
        f.drip_bytes = bytes == 0 ? 1 : bytes;
        return f;
    }
    /// oversized(): chunked transfer encoding instead of a Content-Length.
    Fault without_length() const {
        Fault f = *this;
        f.chunked = true;
        return f;
    }
    /// Anthropic: starts the answer with a thinking block (its signature is one the mock
    /// issued for this model; it must come back unchanged, and only to this model). Streamed:
    /// thinking_delta pieces, then one signature_delta.
    Fault with_thinking(std::string thought) const {
        Fault f = *this;
        f.thinking = std::move(thought);
        return f;
    }
    /// Sends an interim "100 Continue" block (carrying `x-interim: 1`) before the response.
    Fault with_interim_continue() const {
        Fault f = *this;
        f.interim_continue = true;
        return f;
    }

    // ---- stream modifiers: they shape a streamed answer and do nothing to a whole one. An
    // event position n counts content events (the ones that carry a piece of the answer:
    // OpenAI chunks with delta content, refusal or tool_calls; Anthropic content_block_delta;
    // Gemini chunks with parts), never pings, block starts or headers; n larger than the
    // answer has content events means after the last one.

    /// Each text or JSON content event carries about `chars` bytes (never splitting a UTF-8 character).
    Fault pieces(std::size_t chars) const {
        Fault f = *this;
        f.piece_chars = chars == 0 ? 1 : chars;
        return f;
    }
    /// A slow drip: this pause before every event.
    Fault paced(std::chrono::milliseconds interval) const {
        Fault f = *this;
        f.pace = interval;
        return f;
    }
    /// Headers sent, then nothing for `d` before the first event (forever: until the client goes away).
    Fault stall_first(std::chrono::milliseconds d = forever) const { return stall_after(0, d); }
    /// A stall mid-stream after `events` content events, for `d` (forever: until the client goes away).
    Fault stall_after(std::size_t events, std::chrono::milliseconds d = forever) const {
        Fault f = *this;
        f.stall_at = events;
        f.stall_for = d;
        return f;
    }
    /// The connection is closed abruptly after `events` content events: no terminator, no chunked end.
    Fault cut_after(std::size_t events) const {
        Fault f = *this;
        f.cut_at = events;
        return f;
    }
    /// The provider's mid-stream error event after `events` content events, then the stream ends
    /// (OpenAI `data: {"error":...}` server_error; Anthropic `event: error` overloaded_error;
    /// Gemini a chunk {"error":{"code":503,"status":"UNAVAILABLE"}}). with_code / with_message
    /// override its code (OpenAI error.code, Anthropic error.type, Gemini error.status) and message.
    Fault error_after(std::size_t events) const {
        Fault f = *this;
        f.error_at = events;
        return f;
    }
    /// The stream ends cleanly (chunked end) without what marks the end of the answer: OpenAI
    /// without the finish chunk, the usage chunk and [DONE]; Anthropic without the last
    /// content_block_stop, message_delta and message_stop; Gemini without the finishReason chunk.
    Fault without_terminator() const {
        Fault f = *this;
        f.no_terminator = true;
        return f;
    }
    /// A data line that is not JSON after `events` content events; the stream then goes on.
    Fault malformed_after(std::size_t events) const {
        Fault f = *this;
        f.malformed_at = events;
        return f;
    }
};

class MockProvider;

/// One named route of a MockProvider: its script, default and counters. Obtained from
/// MockProvider::route(); stays valid for the provider's lifetime; every member is thread-safe.
class MockRoute {
public:
    MockRoute(MockProvider& owner, std::string name) : owner_(owner), name_(std::move(name)) {}
    MockRoute(const MockRoute&) = delete;
    MockRoute& operator=(const MockRoute&) = delete;

    /// Appends a one-shot Fault: requests consume the script in order.
    MockRoute& then(Fault f, int times = 1);
    /// A fixed answer: every request whose user text contains `key` gets `f` (after the script,
    /// before the default). Adding a key again replaces its answer.
    MockRoute& answer(std::string key, Fault f);
    /// Keyed answers given (see answer()).
    std::size_t answers() const;
    /// The Fault used once the script is empty (default: Fault::ok()).
    MockRoute& otherwise(Fault f);
    /// Answers 401 (or 400 for a missing anthropic-version) in the provider's shape when the
    /// provider's auth headers are missing.
    MockRoute& require_auth(bool on = true);
    /// Clears the script and the keyed answers, restores the default Fault::ok() and zeroes the counters.
    MockRoute& reset();

    /// Requests received on this route (including rejected ones).
    std::size_t requests() const;
    /// Scripted Faults not consumed yet.
    std::size_t pending() const;
    /// Response body bytes written to clients (counts what the socket accepted).
    std::size_t bytes_sent() const;
    /// The last request received on this route.
    std::optional<RecordedRequest> last_request() const;
    /// Base URL for an adapter: http://127.0.0.1:<port>/<name>.
    std::string url() const;
    /// The route's name.
    const std::string& name() const noexcept { return name_; }

private:
    friend class MockProvider;
    MockProvider& owner_;
    const std::string name_;
    // Guarded by owner_.mutex_.
    std::deque<Fault> script_;
    Fault fallback_;
    std::vector<std::pair<std::string, Fault>> keyed_;  // answer(): user-text key -> Fault, in the order added
    bool require_auth_ = false;
    std::size_t requests_ = 0;
    std::size_t bytes_sent_ = 0;
    std::optional<RecordedRequest> last_;
};

/// The loopback server. Not copyable or movable (threads point at it).
/// @code
/// failover_mock::MockProvider mock;
/// mock.route("primary").then(failover_mock::Fault::status(429).retry_after("1")).then(failover_mock::Fault::ok("hi"));
/// std::string base = mock.url("primary");  // give this to an adapter as its base URL
/// @endcode
class MockProvider {
public:
    /// Binds 127.0.0.1:0 and starts serving. Throws std::system_error if the socket fails.
    MockProvider() {
        keep_loopback_off_proxies();
        int pipe_fds[2];
        if (::pipe2(pipe_fds, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "mock: pipe2");
        wake_read_ = pipe_fds[0];
        wake_write_ = pipe_fds[1];
        listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (listen_fd_ < 0) {
            const int err = errno;
            close_fds();
            throw std::system_error(err, std::generic_category(), "mock: socket");
        }
        int one = 1;
        ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = 0;
        socklen_t len = sizeof addr;
        if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
            ::listen(listen_fd_, SOMAXCONN) != 0 ||  // a burst of hundreds of connects must not lose SYNs
            ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
            const int err = errno;
            close_fds();
            throw std::system_error(err, std::generic_category(), "mock: bind/listen");
        }
        port_ = ntohs(addr.sin_port);
        accept_thread_ = std::thread([this] { accept_loop(); });
    }

    ~MockProvider() { stop(); }
    MockProvider(const MockProvider&) = delete;
    MockProvider& operator=(const MockProvider&) = delete;

    /// The port the server listens on.
    std::uint16_t port() const noexcept { return port_; }
    /// http://127.0.0.1:<port>
    std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    /// Base URL of a named route: http://127.0.0.1:<port>/<route>.
    std::string url(std::string_view route_name) const { return base_url() + "/" + std::string(route_name); }

    /// The named route, created on first use (requests to unknown routes create it too).
    MockRoute& route(const std::string& name) {
        std::lock_guard lock(mutex_);
        return route_locked(name);
    }

    /// Requests received, all routes.
    std::size_t requests() const {
        std::lock_guard lock(mutex_);
        return requests_;
    }
    /// TCP connections accepted.
    std::size_t connections() const noexcept { return connections_.load(); }
    /// Requests received for this exact path (without the query).
    std::size_t requests_at(std::string_view path) const {
        std::lock_guard lock(mutex_);
        auto it = paths_.find(std::string(path));
        return it == paths_.end() ? 0 : it->second.count;
    }
    /// The last request received for this exact path (without the query).
    std::optional<RecordedRequest> last_request_at(std::string_view path) const {
        std::lock_guard lock(mutex_);
        auto it = paths_.find(std::string(path));
        if (it == paths_.end()) return std::nullopt;
        return it->second.last;
    }

    /// Stops serving: ends every connection (hangs and drips included) and joins all threads.
    /// Idempotent; the destructor calls it.
    void stop() {
        if (stopped_.exchange(true)) return;
        const char byte = 1;
        // The pipe stays readable from now on: every poll() in every thread wakes up.
        while (::write(wake_write_, &byte, 1) < 0 && errno == EINTR) {
        }
        if (accept_thread_.joinable()) accept_thread_.join();
        for (auto& c : conns_)
            if (c.thread.joinable()) c.thread.join();
        conns_.clear();
        close_fds();
    }

private:
    friend class MockRoute;

    struct PathStats {
        std::size_t count = 0;
        std::optional<RecordedRequest> last;
    };
    struct Conn {
        std::thread thread;
        std::atomic<bool> done{false};
    };
    enum class Wait { ready, timeout, stop, hangup };

    // ---- sockets -------------------------------------------------------------------------

    static void keep_loopback_off_proxies() {
        // Tests talk to 127.0.0.1; a developer's http_proxy must not capture that traffic.
        const char* names[] = {"http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"};
        bool any = false;
        for (const char* n : names) any = any || (std::getenv(n) != nullptr);
        if (!any) return;
        for (const char* var : {"no_proxy", "NO_PROXY"}) {
            const char* cur = std::getenv(var);
            std::string v = cur ? cur : "";
            if (v.find("127.0.0.1") != std::string::npos || v == "*") continue;
            v = v.empty() ? "127.0.0.1" : v + ",127.0.0.1";
            ::setenv(var, v.c_str(), 1);
        }
    }

    void close_fds() noexcept {
        for (int* fd : {&listen_fd_, &wake_read_, &wake_write_}) {
            if (*fd >= 0) ::close(*fd);
            *fd = -1;
        }
    }

    /// Waits for `events` on fd (0: only for the peer hanging up), the server stopping, or the
    /// timeout (-1: none).
    Wait wait_fd(int fd, short events, int timeout_ms) const {
        pollfd p[2] = {{fd, static_cast<short>(events | POLLRDHUP), 0}, {wake_read_, POLLIN, 0}};
        for (;;) {
            const int r = ::poll(p, 2, timeout_ms);
            if (r < 0) {
                if (errno == EINTR) continue;
                return Wait::stop;
            }
            if (r == 0) return Wait::timeout;
            if (p[1].revents != 0) return Wait::stop;
            const short got = p[0].revents;
            if ((got & events) != 0) return Wait::ready;  // readable includes end of stream
            if ((got & (POLLERR | POLLHUP | POLLNVAL | POLLRDHUP)) != 0) return Wait::hangup;
        }
    }

    /// Sleeps up to d; false if the server stops or the client goes away meanwhile.
    bool pause(int fd, std::chrono::milliseconds d) const {
        if (d.count() <= 0) return true;
        const auto until = std::chrono::steady_clock::now() + d;
        for (;;) {
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
            if (left.count() <= 0) return true;
            const Wait w = wait_fd(fd, 0, static_cast<int>(left.count()));
            if (w == Wait::timeout) continue;
            return false;
        }
    }

    bool send_all(int fd, std::string_view data) const {
        while (!data.empty()) {
            const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0) {
                data.remove_prefix(static_cast<std::size_t>(n));
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                if (wait_fd(fd, POLLOUT, -1) != Wait::ready) return false;
                continue;
            }
            return false;  // EPIPE, ECONNRESET: the client gave up
        }
        return true;
    }

    void accept_loop() {
        for (;;) {
            if (wait_fd(listen_fd_, POLLIN, -1) != Wait::ready) return;
            const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EINTR || errno == EAGAIN || errno == ECONNABORTED) continue;
                if (errno == EMFILE || errno == ENFILE) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(5));
                    continue;
                }
                return;
            }
            int one = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            connections_.fetch_add(1);
            // Reap finished connection threads so a long-running demo does not accumulate them.
            for (auto it = conns_.begin(); it != conns_.end();) {
                if (it->done.load()) {
                    it->thread.join();
                    it = conns_.erase(it);
                } else {
                    ++it;
                }
            }
            Conn& c = conns_.emplace_back();
            try {
                c.thread = std::thread([this, fd, &c] {
                    serve(fd);
                    c.done.store(true);
                });
            } catch (...) {
                ::close(fd);
                conns_.pop_back();
            }
        }
    }

    // ---- HTTP ----------------------------------------------------------------------------

    struct Request {
        RecordedRequest rec;
        bool keep_alive = true;
    };

    enum class ReadResult { ok, closed, bad };

    /// Reads one request from fd; `buf` carries bytes that arrived past the previous request.
    ReadResult read_request(int fd, std::string& buf, Request& out, std::string& error) const {
        constexpr std::size_t max_head = 64 * 1024;
        constexpr std::size_t max_body = 64u * 1024u * 1024u;
        std::size_t head_end = std::string::npos;
        char chunk[16384];
        auto fill = [&]() -> bool {
            if (wait_fd(fd, POLLIN, -1) != Wait::ready) return false;
            const ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
            if (n <= 0) return false;
            buf.append(chunk, static_cast<std::size_t>(n));
            return true;
        };
        while ((head_end = buf.find("\r\n\r\n")) == std::string::npos) {
            if (buf.size() > max_head) {
                error = "request head too large";
                return ReadResult::bad;
            }
            if (!fill()) return ReadResult::closed;
        }
        const std::string head = buf.substr(0, head_end);
        buf.erase(0, head_end + 4);

        std::size_t line_end = head.find("\r\n");
        const std::string request_line = head.substr(0, line_end);
        const auto sp1 = request_line.find(' ');
        const auto sp2 = request_line.rfind(' ');
        if (sp1 == std::string::npos || sp2 == sp1) {
            error = "bad request line";
            return ReadResult::bad;
        }
        RecordedRequest& r = out.rec;
        r.method = request_line.substr(0, sp1);
        r.target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
        const std::string version = request_line.substr(sp2 + 1);
        const auto q = r.target.find('?');
        r.path = r.target.substr(0, q);
        r.query = q == std::string::npos ? "" : r.target.substr(q + 1);

        std::size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
        while (pos < head.size()) {
            std::size_t e = head.find("\r\n", pos);
            if (e == std::string::npos) e = head.size();
            const std::string_view line(head.data() + pos, e - pos);
            pos = e + 2;
            const auto colon = line.find(':');
            if (colon == std::string_view::npos) continue;
            std::string_view value = line.substr(colon + 1);
            while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
            while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
            r.headers.emplace_back(std::string(line.substr(0, colon)), std::string(value));
        }

        const std::string* connection = r.header("connection");
        out.keep_alive = version == "HTTP/1.1" ? !(connection && detail::iequals(*connection, "close"))
                                               : (connection && detail::iequals(*connection, "keep-alive"));
        if (r.header("transfer-encoding")) {
            error = "chunked request bodies are not supported by the mock";
            return ReadResult::bad;
        }
        std::size_t length = 0;
        if (const std::string* cl = r.header("content-length")) {
            char* end = nullptr;
            const unsigned long long v = std::strtoull(cl->c_str(), &end, 10);
            if (end == cl->c_str() || *end != '\0' || v > max_body) {
                error = "bad or too large Content-Length";
                return ReadResult::bad;
            }
            length = static_cast<std::size_t>(v);
        }
        if (const std::string* expect = r.header("expect"); expect && detail::iequals(*expect, "100-continue")) {
            if (!send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n")) return ReadResult::closed;
        }
        while (buf.size() < length)
            if (!fill()) return ReadResult::closed;
        r.body = buf.substr(0, length);
        buf.erase(0, length);
        return ReadResult::ok;
    }

    static const char* reason_phrase(int status) noexcept {
        switch (status) {
            case 100: return "Continue";
            case 200: return "OK";
            case 400: return "Bad Request";
            case 401: return "Unauthorized";
            case 402: return "Payment Required";
            case 403: return "Forbidden";
            case 404: return "Not Found";
            case 405: return "Method Not Allowed";
            case 408: return "Request Timeout";
            case 409: return "Conflict";
            case 413: return "Payload Too Large";
            case 422: return "Unprocessable Entity";
            case 429: return "Too Many Requests";
            case 500: return "Internal Server Error";
            case 502: return "Bad Gateway";
            case 503: return "Service Unavailable";
            case 504: return "Gateway Timeout";
            case 529: return "Overloaded";
            default: return "Status";
        }
    }

    static std::string head_of(int status, const HeaderList& headers, bool keep_alive) {
        std::string h = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) + "\r\n";
        for (const auto& [k, v] : headers) h += k + ": " + v + "\r\n";
        if (!keep_alive) h += "Connection: close\r\n";
        h += "\r\n";
        return h;
    }

    // ---- serving -------------------------------------------------------------------------

    /// What one request gets, decided under the mutex.
    struct Plan {
        Fault fault;
        Wire wire = Wire::openai;
        std::string model;
        std::uint64_t seq = 0;
        std::string reject;  // non-empty: answer this validation error instead of the fault
        int reject_status = 400;
        MockRoute* route = nullptr;
        bool stream = false;  // the request asked for server-sent events
    };

    void serve(int fd) {
        try {
            std::string buf;
            for (;;) {
                Request req;
                std::string error;
                const ReadResult rr = read_request(fd, buf, req, error);
                if (rr == ReadResult::closed) break;
                if (rr == ReadResult::bad) {
                    const std::string body = Json{{"error", {{"message", "mock: " + error}}}}.dump();
                    send_all(fd, head_of(400,
                                         {{"Content-Type", "application/json"},
                                          {"Content-Length", std::to_string(body.size())}},
                                         false) +
                                     body);
                    break;
                }
                if (!respond(fd, req)) {
                    if (fd < 0) return;
                    break;
                }
                if (!req.keep_alive) break;
            }
        } catch (...) {
            // A test-support server must not take the process down; the client sees a closed connection.
        }
        ::close(fd);
    }

    /// Route name and wire format from a path; false if the path is none of the known APIs.
    static bool parse_path(const std::string& path, std::string& route_name, Wire& wire, std::string& model) {
        std::string_view p = path;
        if (p.empty() || p.front() != '/') return false;
        p.remove_prefix(1);
        const auto slash = p.find('/');
        const std::string_view first = p.substr(0, slash);
        std::string_view rest;
        if (first == "v1" || first == "v1beta" || first == "openai" || p == "api/chat" ||
            slash == std::string_view::npos) {
            route_name.clear();  // no route segment: the unnamed route ""
            rest = path;
        } else {
            route_name = std::string(first);
            rest = p.substr(slash);
        }
        auto ends_with = [](std::string_view s, std::string_view tail) {
            return s.size() >= tail.size() && s.substr(s.size() - tail.size()) == tail;
        };
        if (ends_with(rest, "/chat/completions")) {
            constexpr std::string_view dep = "/openai/deployments/";
            if (auto at = rest.find(dep); at != std::string_view::npos) {
                wire = Wire::azure;
                std::string_view d = rest.substr(at + dep.size());
                model = std::string(d.substr(0, d.find('/')));
            } else {
                wire = Wire::openai;
            }
            return true;
        }
        if (ends_with(rest, "/messages")) {
            wire = Wire::anthropic;
            return true;
        }
        if (ends_with(rest, "/api/chat")) {
            wire = Wire::ollama;
            return true;
        }
        for (const std::string_view gen : {std::string_view(":generateContent"), std::string_view(":streamGenerateContent")}) {
            if (!ends_with(rest, gen)) continue;
            wire = Wire::gemini;
            const auto models = rest.rfind("/models/");
            if (models == std::string_view::npos) return false;
            const std::string_view m = rest.substr(models + 8);
            model = std::string(m.substr(0, m.size() - gen.size()));
            return true;
        }
        return false;
    }

    MockRoute& route_locked(const std::string& name) {
        auto it = routes_.find(name);
        if (it == routes_.end()) it = routes_.emplace(name, std::make_unique<MockRoute>(*this, name)).first;
        return *it->second;
    }

    static bool has_query_key(const std::string& query) {
        std::string_view q = query;
        while (!q.empty()) {
            const auto amp = q.find('&');
            const std::string_view part = q.substr(0, amp);
            if (part.size() > 4 && part.substr(0, 4) == "key=") return true;
            if (amp == std::string_view::npos) break;
            q.remove_prefix(amp + 1);
        }
        return false;
    }

    /// Why a request would be refused by the real API (missing auth or required fields), or "".
    static std::string validate(const RecordedRequest& r, Wire wire, bool require_auth, const Json& body, int& status) {
        status = 401;
        if (require_auth) {
            auto bearer = [&] {
                const std::string* a = r.header("authorization");
                return a && a->size() > 7 && detail::iequals(a->substr(0, 7), "bearer ");
            };
            switch (wire) {
                case Wire::openai:
                case Wire::ollama:  // Ollama has no auth; behind a proxy it is a Bearer token
                    if (!bearer()) return "missing bearer token in the Authorization header";
                    break;
                case Wire::azure:
                    if (!r.header("api-key") && !bearer()) return "missing api-key header";
                    break;
                case Wire::anthropic:
                    if (!r.header("x-api-key")) return "x-api-key header is required";
                    if (!r.header("anthropic-version")) {
                        status = 400;
                        return "anthropic-version: header is required";
                    }
                    break;
                case Wire::gemini:
                    if (!r.header("x-goog-api-key") && !has_query_key(r.query))
                        return "missing API key (x-goog-api-key header or key= query parameter)";
                    break;
            }
        }
        status = 400;
        if (!body.is_object()) return "request body is not a JSON object";
        auto need = [&](const char* field, bool ok) {
            return ok ? std::string() : std::string(field) + ": field required";
        };
        std::string e;
        switch (wire) {
            case Wire::openai:
                if (!(e = need("model", body.contains("model") && body["model"].is_string())).empty()) return e;
                [[fallthrough]];
            case Wire::azure:
                return need("messages",
                            body.contains("messages") && body["messages"].is_array() && !body["messages"].empty());
            case Wire::anthropic:
                if (!(e = need("model", body.contains("model") && body["model"].is_string())).empty()) return e;
                if (!(e = need("max_tokens", body.contains("max_tokens") && body["max_tokens"].is_number_integer()))
                         .empty())
                    return e;
                return need("messages",
                            body.contains("messages") && body["messages"].is_array() && !body["messages"].empty());
            case Wire::gemini:
                return need("contents",
                            body.contains("contents") && body["contents"].is_array() && !body["contents"].empty());
            case Wire::ollama:
                // Ollama's own words for a missing model; stricter than Ollama about messages (it
                // would just load the model), so an adapter that drops them is caught.
                if (!(body.contains("model") && body["model"].is_string())) return "model is required";
                if (!(e = need("messages", body.contains("messages") && body["messages"].is_array() &&
                                               !body["messages"].empty()))
                         .empty())
                    return e;
                if (!(body.contains("stream") && body["stream"].is_boolean() && !body["stream"].get<bool>()))
                    return "stream: must be false (the mock does not stream)";
                return {};
        }
        return {};
    }

    // ---- provider rules --------------------------------------------------------------------
    // What the real APIs refuse beyond missing fields, checked the way they check it, so an
    // adapter that sends something a provider does not accept fails here as it would there.

    /// The signature the mock attaches for `model` to its answer number `seq`.
    static std::string signature_for(std::string_view provider, const std::string& model, std::uint64_t seq) {
        return "sig-" + std::string(provider) + "-" + model + "-" + std::to_string(seq);
    }

    static bool only_keys(const Json& obj, std::initializer_list<const char*> allowed, std::string& extra) {
        for (const auto& [k, v] : obj.items()) {
            bool ok = false;
            for (const char* a : allowed) ok = ok || k == a;
            if (!ok) {
                extra = k;
                return false;
            }
        }
        return true;
    }

    /// Why OpenAI refuses `schema` under `strict: true` ("" when it is in the strict subset):
    /// an object root; every object with additionalProperties false and every property
    /// required; only the keywords of the subset.
    static std::string openai_strict_problem(const Json& schema) {
        if (!schema.is_object() || schema.value("type", Json()) != "object")
            return "schema must be a JSON Schema of 'type: \"object\"', got something else";
        std::string problem;
        std::vector<std::pair<const Json*, std::string>> todo{{&schema, "root"}};
        while (!todo.empty() && problem.empty()) {
            auto [node, at] = todo.back();
            todo.pop_back();
            if (!node->is_object()) {
                problem = "In context=" + at + ", schema must be an object";
                break;
            }
            std::string extra;
            if (!only_keys(*node,
                           {"type", "properties", "required", "additionalProperties", "items", "enum", "const",
                            "anyOf", "$ref", "$defs", "definitions", "description", "title", "pattern", "format",
                            "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum", "minItems",
                            "maxItems"},
                           extra)) {
                problem = "In context=" + at + ", '" + extra + "' is not permitted";
                break;
            }
            const Json type = node->value("type", Json());
            const bool object = type == "object" || (type.is_array() && std::find(type.begin(), type.end(), "object") != type.end()) ||
                                node->contains("properties");
            if (object) {
                if (!node->contains("additionalProperties") || (*node)["additionalProperties"] != false) {
                    problem = "In context=" + at + ", 'additionalProperties' is required to be supplied and to be false";
                    break;
                }
                static const Json none = Json::object();
                const Json& props = node->contains("properties") ? (*node)["properties"] : none;
                const Json req = node->value("required", Json::array());
                for (const auto& [name, sub] : props.items()) {
                    if (std::find(req.begin(), req.end(), name) == req.end()) {
                        problem = "In context=" + at +
                                  ", 'required' is required to be supplied and to be an array including every key in "
                                  "properties. Missing '" +
                                  name + "'";
                        break;
                    }
                    todo.emplace_back(&sub, at + ", 'properties', '" + name + "'");
                }
            }
            if (node->contains("items")) todo.emplace_back(&(*node)["items"], at + ", 'items'");
            for (const char* k : {"anyOf"})
                if (node->contains(k) && (*node)[k].is_array())
                    for (const Json& sub : (*node)[k]) todo.emplace_back(&sub, at + ", '" + k + "'");
            for (const char* k : {"$defs", "definitions"})
                if (node->contains(k) && (*node)[k].is_object())
                    for (const auto& [name, sub] : (*node)[k].items()) todo.emplace_back(&sub, at + ", '" + k + "', '" + name + "'");
        }
        return problem;
    }

    /// Chat Completions: strict structured output, message shapes, and tool calls answered in order.
    static std::string openai_rules(const Json& body) {
        if (body.contains("response_format")) {
            const Json& rf = body["response_format"];
            if (rf.value("type", "") == "json_schema" && rf.contains("json_schema")) {
                const Json& js = rf["json_schema"];
                if (js.value("strict", false)) {
                    const std::string problem = openai_strict_problem(js.value("schema", Json()));
                    if (!problem.empty())
                        return "Invalid schema for response_format '" + js.value("name", "") + "': " + problem + ".";
                }
            }
        }
        std::vector<std::string> open_calls;  // ids of the last assistant turn still owed a tool message
        const Json& msgs = body["messages"];
        for (std::size_t i = 0; i < msgs.size(); ++i) {
            const Json& m = msgs[i];
            const std::string at = "messages[" + std::to_string(i) + "]";
            if (!m.is_object()) return "Invalid type for '" + at + "': expected an object.";
            const std::string role = m.value("role", "");
            std::string extra;
            bool shape_ok = true;
            if (role == "system" || role == "developer" || role == "user") shape_ok = only_keys(m, {"role", "content", "name"}, extra);
            else if (role == "assistant")
                shape_ok = only_keys(m, {"role", "content", "name", "tool_calls", "refusal", "audio", "function_call"}, extra);
            else if (role == "tool") shape_ok = only_keys(m, {"role", "content", "tool_call_id"}, extra);
            else return "Invalid value for '" + at + ".role': '" + role + "'.";
            if (!shape_ok) return "Additional properties are not allowed ('" + extra + "' was unexpected) - '" + at + "'";
            if (role != "tool" && !open_calls.empty())
                return "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                       "'tool_call_id'. The following tool_call_ids did not have response messages: " +
                       open_calls.front();
            if (role == "assistant" && m.contains("tool_calls")) {
                for (const Json& c : m["tool_calls"]) {
                    if (!c.is_object() || !only_keys(c, {"id", "type", "function"}, extra))
                        return "Additional properties are not allowed ('" + extra + "' was unexpected) - '" + at + ".tool_calls'";
                    if (!c.contains("id") || !c["id"].is_string() || c["id"].get<std::string>().empty())
                        return "Missing required parameter: '" + at + ".tool_calls[0].id'.";
                    const Json fn = c.value("function", Json());
                    if (!fn.is_object() || !fn.contains("name") || !fn.value("arguments", Json()).is_string())
                        return "Invalid '" + at + ".tool_calls': function name and string arguments required.";
                    open_calls.push_back(c["id"].get<std::string>());
                }
            } else if (role == "tool") {
                const std::string id = m.value("tool_call_id", "");
                const auto it = std::find(open_calls.begin(), open_calls.end(), id);
                if (it == open_calls.end())
                    return "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                           "with 'tool_calls'.";
                open_calls.erase(it);
            }
        }
        if (!open_calls.empty())
            return "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                   "'tool_call_id'. The following tool_call_ids did not have response messages: " + open_calls.front();
        return {};
    }

    /// Messages API: block shapes, tool_use ids, tool results right after their calls, and
    /// thinking blocks signed for this model.
    std::string anthropic_rules(const Json& body, const std::string& model) const {
        std::vector<std::string> pending;  // tool_use ids of the previous assistant turn
        const Json& msgs = body["messages"];
        for (std::size_t i = 0; i < msgs.size(); ++i) {
            const Json& m = msgs[i];
            const std::string at = "messages." + std::to_string(i);
            const std::string role = m.value("role", "");
            if (role != "user" && role != "assistant") return at + ".role: Input should be 'user' or 'assistant'";
            const Json& content = m["content"];
            std::vector<std::string> calls;
            std::vector<std::string> results;
            if (content.is_array()) {
                for (std::size_t k = 0; k < content.size(); ++k) {
                    const Json& b = content[k];
                    const std::string bat = at + ".content." + std::to_string(k);
                    const std::string type = b.value("type", "");
                    std::string extra;
                    bool ok = true;
                    if (type == "text") ok = only_keys(b, {"type", "text", "citations", "cache_control"}, extra);
                    else if (type == "tool_use" && role == "assistant") ok = only_keys(b, {"type", "id", "name", "input", "cache_control"}, extra);
                    else if (type == "thinking" && role == "assistant") ok = only_keys(b, {"type", "thinking", "signature"}, extra);
                    else if (type == "redacted_thinking" && role == "assistant") ok = only_keys(b, {"type", "data"}, extra);
                    else if (type == "tool_result" && role == "user") ok = only_keys(b, {"type", "tool_use_id", "content", "is_error", "cache_control"}, extra);
                    else return bat + ".type: Input tag '" + type + "' found using 'type' does not match any of the expected tags";
                    if (!ok) return bat + "." + extra + ": Extra inputs are not permitted";
                    if (type == "tool_use") {
                        const std::string id = b.value("id", "");
                        const bool id_ok = !id.empty() && std::all_of(id.begin(), id.end(), [](char c) {
                            return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
                        });
                        if (!id_ok) return bat + ".id: String should match pattern '^[a-zA-Z0-9_-]+$'";
                        if (!b.value("input", Json()).is_object()) return bat + ".input: Input should be a valid dictionary";
                        calls.push_back(id);
                    } else if (type == "thinking") {
                        const std::string sig = b.value("signature", "");
                        if (signatures_.count(sig) == 0 || sig.find("-" + model + "-") == std::string::npos)
                            return bat + ": Invalid `signature` in `thinking` block";
                    } else if (type == "tool_result") {
                        if (b.contains("is_error") && !b["is_error"].is_boolean()) return bat + ".is_error: Input should be a valid boolean";
                        results.push_back(b.value("tool_use_id", ""));
                    }
                }
            }
            if (role == "user") {
                for (const std::string& id : results)
                    if (std::find(pending.begin(), pending.end(), id) == pending.end())
                        return at + ".content: unexpected `tool_use_id` found in `tool_result` blocks: " + id +
                               ". Each `tool_result` block must have a corresponding `tool_use` block in the previous message.";
                for (const std::string& id : pending)
                    if (std::find(results.begin(), results.end(), id) == results.end())
                        return at + ": `tool_use` ids were found without `tool_result` blocks immediately after: " + id;
                pending.clear();
            } else {
                if (!pending.empty())
                    return at + ": `tool_use` ids were found without `tool_result` blocks immediately after: " + pending.front();
                pending = calls;
            }
        }
        return {};
    }

    /// generateContent: thought signatures. On Gemini 3 the first functionCall part of each model
    /// step of the current turn must carry its signature; any signature must be one this model
    /// issued, or the documented placeholder that skips the check.
    std::string gemini_rules(const Json& body, const std::string& model) const {
        const Json& contents = body["contents"];
        std::size_t current = 0;  // the current turn starts after the last user text
        for (std::size_t i = 0; i < contents.size(); ++i) {
            const Json& c = contents[i];
            if (c.value("role", "user") != "user" || !c.contains("parts") || !c["parts"].is_array()) continue;
            for (const Json& part : c["parts"])
                if (part.contains("text")) current = i + 1;
        }
        const bool enforced = model.find("gemini-3") != std::string::npos;
        for (std::size_t i = 0; i < contents.size(); ++i) {
            const Json& c = contents[i];
            if (!c.contains("parts") || !c["parts"].is_array()) return "contents[" + std::to_string(i) + "].parts is required";
            bool first_call = true;
            for (std::size_t k = 0; k < c["parts"].size(); ++k) {
                const Json& part = c["parts"][k];
                const std::string at = "contents[" + std::to_string(i) + "].parts[" + std::to_string(k) + "]";
                if (part.contains("thoughtSignature")) {
                    const std::string sig = part.value("thoughtSignature", "");
                    const bool ours = signatures_.count(sig) != 0 && sig.find("-" + model + "-") != std::string::npos;
                    if (!ours && sig != "skip_thought_signature_validator")
                        return "Corrupted thought signature at " + at + ".";
                }
                if (part.contains("functionCall") && c.value("role", "") == "model") {
                    if (first_call && enforced && i >= current && !part.contains("thoughtSignature"))
                        return "Function call is missing a thought_signature in functionCall parts. This is required "
                               "for tools to work correctly, and missing thought_signature may lead to degraded model "
                               "performance. Additional data, function call `default_api:" +
                               part["functionCall"].value("name", "") + "` , position " + std::to_string(k + 1) +
                               ". Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details.";
                    first_call = false;
                }
            }
        }
        return {};
    }

    /// The provider rules for one request ("" when it is accepted).
    std::string rules(Wire wire, const Json& body, const std::string& model) const {
        switch (wire) {
            case Wire::openai:
            case Wire::azure: return openai_rules(body);
            case Wire::anthropic: return anthropic_rules(body, model);
            case Wire::gemini: return gemini_rules(body, model);
            case Wire::ollama: return {};
        }
        return {};
    }

    /// Records the request and decides what it gets. Returns nullopt for a path that is none of
    /// the known APIs (answered 404).
    std::optional<Plan> plan(const RecordedRequest& rec) {
        std::string route_name;
        Wire wire = Wire::openai;
        std::string model;
        const bool known = parse_path(rec.path, route_name, wire, model);
        std::lock_guard lock(mutex_);
        ++requests_;
        PathStats& ps = paths_[rec.path];
        ++ps.count;
        ps.last = rec;
        if (!known) return std::nullopt;
        MockRoute& r = route_locked(route_name);
        ++r.requests_;
        r.last_ = rec;
        r.last_->route = route_name;
        ps.last->route = route_name;

        Plan p;
        p.wire = wire;
        p.route = &r;
        p.seq = ++seq_;
        const Json body = Json::parse(rec.body, nullptr, false);
        if (rec.method != "POST") {
            p.reject = "method " + rec.method + " not allowed";
            p.reject_status = 405;
            return p;
        }
        p.reject = validate(rec, wire, r.require_auth_, body, p.reject_status);
        if (!p.reject.empty()) return p;
        p.stream = wants_stream(rec, wire, body, p.reject);
        if (!p.reject.empty()) return p;
        if (model.empty() && body.contains("model") && body["model"].is_string())
            model = body["model"].get<std::string>();
        p.model = model.empty() ? "mock-model" : model;
        p.reject = rules(wire, body, p.model);
        if (!p.reject.empty()) return p;
        if (!r.script_.empty()) {
            p.fault = std::move(r.script_.front());
            r.script_.pop_front();
        } else if (const Fault* keyed = keyed_answer(r, wire, body)) {
            p.fault = *keyed;
        } else {
            p.fault = r.fallback_;
        }
        // Remember the signatures this answer carries: later requests must bring them back unchanged.
        if (wire == Wire::gemini && p.fault.kind == Fault::Kind::tool_call) signatures_.insert(signature_for("gemini", p.model, p.seq));
        if (wire == Wire::anthropic && !p.fault.thinking.empty()) signatures_.insert(signature_for("claude", p.model, p.seq));
        return p;
    }

    /// The string member `key` of an object, or `fallback` when absent or not a string (never throws).
    static std::string string_or(const Json& obj, const char* key, const char* fallback) {
        const auto it = obj.find(key);
        return it != obj.end() && it->is_string() ? it->get<std::string>() : std::string(fallback);
    }

    /// The text of every user message of a request (joined with newlines), in the wire's shape.
    static std::string user_text(Wire wire, const Json& body) {
        std::string out;
        auto add = [&](const Json& t) {
            if (!t.is_string()) return;
            if (!out.empty()) out += '\n';
            out += t.get<std::string>();
        };
        auto add_parts = [&](const Json& content, const char* text_key) {
            if (content.is_string()) return add(content);
            if (!content.is_array()) return;
            for (const Json& part : content)
                if (part.is_object() && part.contains(text_key) && string_or(part, "type", "text") == "text") add(part[text_key]);
        };
        if (!body.is_object()) return out;
        if (wire == Wire::gemini) {
            if (!body.contains("contents") || !body["contents"].is_array()) return out;
            for (const Json& c : body["contents"])
                if (c.is_object() && string_or(c, "role", "user") == "user" && c.contains("parts")) add_parts(c["parts"], "text");
            return out;
        }
        if (!body.contains("messages") || !body["messages"].is_array()) return out;
        for (const Json& m : body["messages"])
            if (m.is_object() && string_or(m, "role", "") == "user" && m.contains("content")) add_parts(m["content"], "text");
        return out;
    }

    /// The keyed answer (MockRoute::answer) for a request, or nullptr. Caller holds mutex_.
    static const Fault* keyed_answer(const MockRoute& r, Wire wire, const Json& body) {
        if (r.keyed_.empty()) return nullptr;
        const std::string text = user_text(wire, body);
        const Fault* best = nullptr;
        std::size_t best_len = 0;
        for (const auto& [key, fault] : r.keyed_)
            if (text.find(key) != std::string::npos && (best == nullptr || key.size() > best_len)) {
                best = &fault;
                best_len = key.size();
            }
        return best;
    }

    void add_bytes(MockRoute* r, std::size_t n) {
        if (!r) return;
        std::lock_guard lock(mutex_);
        r->bytes_sent_ += n;
    }

    /// Answers one request. False: the connection must end (closed, reset or failed).
    bool respond(int& fd, Request& req) {
        std::optional<Plan> maybe = plan(req.rec);
        if (!maybe) {
            const std::string body = Json{
                {"error",
                 {{"message", "mock: no such endpoint: " + req.rec.method + " " + req.rec.path},
                  {"type", "invalid_request_error"},
                  {"param", nullptr},
                  {"code",
                   "unknown_url"}}}}.dump();
            return send_all(
                fd,
                head_of(404, {{"Content-Type", "application/json"}, {"Content-Length", std::to_string(body.size())}},
                        req.keep_alive) +
                    body);
        }
        Plan& p = *maybe;
        const Json request_json = Json::parse(req.rec.body, nullptr, false);
        if (!p.reject.empty()) {
            const Fault f = Fault::status(p.reject_status).with_message(p.reject);
            return send_reply(fd, req, p, error_reply(p, f));
        }
        const Fault& f = p.fault;
        if (!pause(fd, f.delay)) return false;

        switch (f.kind) {
            case Fault::Kind::hang:
                // Never answer: wait until the client gives up or the server stops.
                wait_fd(fd, 0, -1);
                return false;
            case Fault::Kind::reset: {
                linger lg{1, 0};
                ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
                ::close(fd);  // with a zero linger: RST instead of FIN
                fd = -1;
                return false;
            }
            case Fault::Kind::oversized: stream_oversized(fd, p); return false;
            case Fault::Kind::truncated: {
                Reply full = success_reply(p, Fault::ok("this answer will be cut off half way through"), request_json);
                HeaderList h = full.headers;
                h.emplace_back("Content-Length", std::to_string(full.body.size()));
                const std::string half = full.body.substr(0, full.body.size() / 2);
                if (send_all(fd, head_of(200, h, true)) && send_all(fd, half)) add_bytes(p.route, half.size());
                ::shutdown(fd, SHUT_WR);
                return false;
            }
            default:
                if (p.stream && streamed(p)) return stream_reply(fd, req, p, request_json);
                return send_reply(fd, req, p, build(p, request_json));
        }
    }

    struct Reply {
        int status = 200;
        HeaderList headers;
        std::string body;
    };

    bool send_reply(int fd, const Request& req, const Plan& p, Reply r) {
        const Fault& f = p.fault;
        if (f.interim_continue && !send_all(fd, "HTTP/1.1 100 Continue\r\nx-interim: 1\r\n\r\n")) return false;
        for (const auto& h : f.headers) r.headers.push_back(h);
        r.headers.emplace_back("Content-Length", std::to_string(r.body.size()));
        if (f.drip_bytes == 0) {
            if (!send_all(fd, head_of(r.status, r.headers, req.keep_alive) + r.body)) return false;
            add_bytes(p.route, r.body.size());
            return true;
        }
        if (!send_all(fd, head_of(r.status, r.headers, req.keep_alive))) return false;
        std::string_view rest = r.body;
        while (!rest.empty()) {
            if (!pause(fd, f.drip_interval)) return false;
            const std::string_view piece = rest.substr(0, f.drip_bytes);
            if (!send_all(fd, piece)) return false;
            add_bytes(p.route, piece.size());
            rest.remove_prefix(piece.size());
        }
        return true;
    }

    void stream_oversized(int fd, const Plan& p) {
        const Fault& f = p.fault;
        HeaderList h = {{"Content-Type", "application/json"}};
        for (const auto& x : f.headers) h.push_back(x);
        if (f.chunked)
            h.emplace_back("Transfer-Encoding", "chunked");
        else
            h.emplace_back("Content-Length", std::to_string(f.size));
        if (!send_all(fd, head_of(200, h, false))) return;
        const std::string prefix = R"({"id":"mock-oversized","padding":")";
        const std::string suffix = R"("})";
        const bool framed = f.size >= prefix.size() + suffix.size();
        std::size_t left = f.size;
        std::size_t written = 0;
        const std::string filler(64 * 1024, 'x');
        auto emit = [&](std::string_view data) {
            if (data.empty()) return true;
            if (f.chunked) {
                char size_line[32];
                std::snprintf(size_line, sizeof size_line, "%zx\r\n", data.size());
                if (!send_all(fd, size_line) || !send_all(fd, data) || !send_all(fd, "\r\n")) return false;
            } else if (!send_all(fd, data)) {
                return false;
            }
            written += data.size();
            return true;
        };
        bool ok = true;
        if (framed) {
            ok = emit(prefix);
            left -= prefix.size() + suffix.size();
        }
        while (ok && left > 0) {
            const std::size_t n = std::min(left, filler.size());
            ok = emit(std::string_view(filler).substr(0, n));
            left -= n;
        }
        if (ok && framed) ok = emit(suffix);
        if (ok && f.chunked) send_all(fd, "0\r\n\r\n");
        add_bytes(p.route, written);
    }

    // ---- bodies --------------------------------------------------------------------------

    static std::int64_t tokens_of(std::size_t bytes) { return static_cast<std::int64_t>(bytes / 4 + 1); }

    static HeaderList base_headers(const Plan& p) {
        HeaderList h = {{"Content-Type", "application/json"}};
        const std::string id = "req_mock" + std::to_string(p.seq);
        switch (p.wire) {
            case Wire::openai: h.emplace_back("x-request-id", id); break;
            case Wire::azure: h.emplace_back("apim-request-id", id); break;
            case Wire::anthropic: h.emplace_back("request-id", id); break;
            case Wire::gemini:
            case Wire::ollama: break;
        }
        return h;
    }

    /// The tool the request forces (Anthropic tool_choice {"type":"tool","name":...}), or "".
    static std::string forced_tool(const Json& req) {
        if (!req.is_object() || !req.contains("tool_choice")) return {};
        const Json& tc = req["tool_choice"];
        if (tc.is_object() && tc.value("type", "") == "tool" && tc.contains("name") && tc["name"].is_string())
            return tc["name"].get<std::string>();
        return {};
    }

    /// The JSON Schema the request asks the answer to follow, or null.
    static Json requested_schema(Wire wire, const Json& req) {
        if (!req.is_object()) return nullptr;
        auto at = [&](std::initializer_list<const char*> path) -> Json {
            const Json* j = &req;
            for (const char* k : path) {
                if (!j->is_object() || !j->contains(k)) return nullptr;
                j = &(*j)[k];
            }
            return *j;
        };
        switch (wire) {
            case Wire::openai:
            case Wire::azure: return at({"response_format", "json_schema", "schema"});
            case Wire::anthropic: {
                const std::string tool = forced_tool(req);
                if (!tool.empty() && req.contains("tools") && req["tools"].is_array())
                    for (const Json& t : req["tools"])
                        if (t.is_object() && t.value("name", "") == tool && t.contains("input_schema"))
                            return t["input_schema"];
                return at({"output_config", "format", "schema"});
            }
            case Wire::gemini: {
                Json s = at({"generationConfig", "responseJsonSchema"});
                return s.is_null() ? at({"generationConfig", "responseSchema"}) : s;
            }
            case Wire::ollama: {
                Json s = at({"format"});
                return s.is_object() ? s : Json(nullptr);  // "json" (any JSON) is not a schema
            }
        }
        return nullptr;
    }

    /// Valid JSON that breaks `schema`: no required fields, or a wrongly typed property.
    static Json violating(const Json& schema) {
        if (schema.is_object()) {
            if (schema.contains("required") && schema["required"].is_array() && !schema["required"].empty())
                return Json::object();
            std::string type =
                schema.contains("type") && schema["type"].is_string() ? schema["type"].get<std::string>() : "";
            std::transform(type.begin(), type.end(), type.begin(),
                           [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
            if (type == "object") {
                if (schema.contains("properties") && schema["properties"].is_object() &&
                    !schema["properties"].empty()) {
                    const auto it = schema["properties"].begin();
                    const std::string ptype = it->is_object() ? it->value("type", "") : "";
                    const bool is_string = ptype == "string" || ptype == "STRING";
                    return Json{{it.key(), is_string
                                               ? Json(12345)
                                               : Json("not a " + (ptype.empty() ? std::string("value") : ptype))}};
                }
                return Json::array({"not", "an", "object"});
            }
        }
        return Json{{"unexpected", true}};
    }

    /// What a success answers with, whole or streamed.
    struct Answer {
        std::string text;       ///< answer text, refusal text, or the structured answer's JSON text
        Json answer;            ///< the structured answer (ok_json / schema_invalid)
        bool structured = false;
        std::int64_t in = 0;    ///< usage
        std::int64_t out = 0;
    };

    static Answer answer_of(const Plan& p, const Fault& f, const Json& req) {
        Answer a;
        a.in = tokens_of(req.is_null() ? 0 : req.dump().size());
        if (f.kind == Fault::Kind::ok_json) {
            a.answer = f.payload;
            a.structured = true;
        } else if (f.kind == Fault::Kind::schema_invalid) {
            a.answer = f.payload.is_null() ? violating(requested_schema(p.wire, req)) : f.payload;
            a.structured = true;
        }
        if (a.structured)
            a.text = a.answer.dump();
        else if (f.kind == Fault::Kind::ok_text || f.kind == Fault::Kind::refusal)
            a.text = f.text;
        a.out = tokens_of(a.text.size() + f.tool_name.size() + (f.payload.is_null() ? 0 : f.payload.dump().size()));
        return a;
    }

    Reply success_reply(const Plan& p, const Fault& f, const Json& req) const {
        Reply r;
        r.headers = base_headers(p);
        Answer a = answer_of(p, f, req);
        const std::int64_t in = a.in;
        const std::int64_t out = a.out;
        std::string text = std::move(a.text);
        Json answer = std::move(a.answer);
        const bool structured = a.structured;
        const std::string seq = std::to_string(p.seq);

        switch (p.wire) {
            case Wire::openai:
            case Wire::azure: {
                Json message = {{"role", "assistant"}, {"content", text}, {"refusal", nullptr}};
                std::string finish = "stop";
                if (f.kind == Fault::Kind::tool_call) {
                    message["content"] = nullptr;
                    message["tool_calls"] =
                        Json::array({{{"id", "call_mock" + seq},
                                      {"type", "function"},
                                      {"function", {{"name", f.tool_name}, {"arguments", f.payload.dump()}}}}});
                    finish = "tool_calls";
                } else if (f.kind == Fault::Kind::refusal) {
                    message["content"] = nullptr;
                    message["refusal"] = f.text;
                } else if (f.kind == Fault::Kind::content_filter || f.kind == Fault::Kind::safety_block) {
                    message["content"] = nullptr;
                    finish = "content_filter";
                }
                Json choice = {{"index", 0}, {"message", message}, {"logprobs", nullptr}, {"finish_reason", finish}};
                Json body = {{"id", "chatcmpl-mock" + seq},
                             {"object", "chat.completion"},
                             {"created", 1700000000 + static_cast<std::int64_t>(p.seq)},
                             {"model", p.model},
                             {"choices", Json::array()},
                             {"usage",
                              {{"prompt_tokens", in},
                               {"completion_tokens", out},
                               {"total_tokens", in + out},
                               {"prompt_tokens_details", {{"cached_tokens", 0}}},
                               {"completion_tokens_details", {{"reasoning_tokens", 0}}}}},
                             {"system_fingerprint", "fp_mock"}};
                if (p.wire == Wire::azure) {
                    const bool filtered = finish == "content_filter";
                    Json results = {{"hate", {{"filtered", false}, {"severity", "safe"}}},
                                    {"self_harm", {{"filtered", false}, {"severity", "safe"}}},
                                    {"sexual", {{"filtered", false}, {"severity", "safe"}}},
                                    {"violence", {{"filtered", filtered}, {"severity", filtered ? "high" : "safe"}}}};
                    choice["content_filter_results"] = results;
                    body["prompt_filter_results"] =
                        Json::array({{{"prompt_index", 0}, {"content_filter_results", results}}});
                }
                body["choices"].push_back(std::move(choice));
                r.body = body.dump();
                return r;
            }
            case Wire::anthropic: {
                Json content = Json::array();
                std::string stop = "end_turn";
                Json stop_details = nullptr;
                const std::string tool = forced_tool(req);
                if (!f.thinking.empty())
                    content.push_back({{"type", "thinking"},
                                       {"thinking", f.thinking},
                                       {"signature", signature_for("claude", p.model, p.seq)}});
                if (f.kind == Fault::Kind::tool_call) {
                    content.push_back({{"type", "tool_use"},
                                       {"id", "toolu_mock" + seq},
                                       {"name", f.tool_name},
                                       {"input", f.payload}});
                    stop = "tool_use";
                } else if (structured && !tool.empty()) {
                    content.push_back(
                        {{"type", "tool_use"}, {"id", "toolu_mock" + seq}, {"name", tool}, {"input", answer}});
                    stop = "tool_use";
                } else if (f.kind == Fault::Kind::refusal || f.kind == Fault::Kind::content_filter ||
                           f.kind == Fault::Kind::safety_block) {
                    stop = "refusal";
                    stop_details = {
                        {"type", "refusal"},
                        {"category", nullptr},
                        {"explanation", f.kind == Fault::Kind::refusal ? f.text : "blocked by a safety classifier"}};
                } else {
                    content.push_back({{"type", "text"}, {"text", text}});
                }
                Json body = {{"id", "msg_mock" + seq},
                             {"type", "message"},
                             {"role", "assistant"},
                             {"model", p.model},
                             {"content", content},
                             {"stop_reason", stop},
                             {"stop_sequence", nullptr},
                             {"usage",
                              {{"input_tokens", in},
                               {"output_tokens", out},
                               {"cache_creation_input_tokens", 0},
                               {"cache_read_input_tokens", 0}}}};
                if (!stop_details.is_null()) body["stop_details"] = stop_details;
                r.body = body.dump();
                return r;
            }
            case Wire::gemini: {
                const Json usage = {
                    {"promptTokenCount", in}, {"candidatesTokenCount", out}, {"totalTokenCount", in + out}};
                const Json ratings = Json::array(
                    {{{"category", "HARM_CATEGORY_DANGEROUS_CONTENT"}, {"probability", "HIGH"}, {"blocked", true}}});
                Json body = {{"modelVersion", p.model}, {"responseId", "mock-" + seq}};
                if (f.kind == Fault::Kind::safety_block) {
                    body["promptFeedback"] = {{"blockReason", "SAFETY"}, {"safetyRatings", ratings}};
                    body["usageMetadata"] = {{"promptTokenCount", in}, {"totalTokenCount", in}};
                    r.body = body.dump();
                    return r;
                }
                Json candidate;
                if (f.kind == Fault::Kind::content_filter) {
                    candidate = {{"finishReason", "SAFETY"}, {"index", 0}, {"safetyRatings", ratings}};
                } else {
                    // Like Gemini: no functionCall.id, and the call signed with an opaque thoughtSignature.
                    Json part = f.kind == Fault::Kind::tool_call
                                    ? Json{{"functionCall", {{"name", f.tool_name}, {"args", f.payload}}},
                                           {"thoughtSignature", signature_for("gemini", p.model, p.seq)}}
                                    : Json{{"text", text}};
                    candidate = {{"content", {{"parts", Json::array({part})}, {"role", "model"}}},
                                 {"finishReason", "STOP"},
                                 {"index", 0}};
                }
                body["candidates"] = Json::array({candidate});
                body["usageMetadata"] = usage;
                r.body = body.dump();
                return r;
            }
            case Wire::ollama: {
                Json message = {{"role", "assistant"}, {"content", text}};
                if (f.kind == Fault::Kind::tool_call) {
                    message["content"] = "";
                    message["tool_calls"] =
                        Json::array({{{"function", {{"name", f.tool_name}, {"arguments", f.payload}}}}});
                } else if (f.kind == Fault::Kind::content_filter || f.kind == Fault::Kind::safety_block) {
                    message["content"] = "I'm sorry, but I can't help with that.";
                }
                r.body = Json{{"model", p.model},
                              {"created_at", "2024-06-01T12:00:00." + std::to_string(100000 + p.seq % 900000) + "Z"},
                              {"message", message},
                              {"done", true},
                              {"done_reason", "stop"},
                              {"total_duration", 5000000},
                              {"load_duration", 1000000},
                              {"prompt_eval_count", in},
                              {"prompt_eval_duration", 1000000},
                              {"eval_count", out},
                              {"eval_duration", 3000000}}
                             .dump();
                return r;
            }
        }
        return r;
    }

    /// The provider's error body for a status (or for quota / context-length faults).
    Reply error_reply(const Plan& p, const Fault& f) const {
        Reply r;
        r.headers = base_headers(p);
        int status = f.http_status;
        std::string oai_type = "invalid_request_error", oai_code, msg;
        std::string ant_type = "api_error";
        std::string g_status = "UNKNOWN";
        Json g_details = Json::array();
        const std::string model = p.model.empty() ? "the model" : p.model;

        if (f.kind == Fault::Kind::quota_exhausted) {
            status = (p.wire == Wire::anthropic) ? 402 : 429;
        } else if (f.kind == Fault::Kind::context_length) {
            status = 400;
        }
        switch (status) {
            case 400:
                msg = "Invalid request.";
                ant_type = "invalid_request_error";
                g_status = "INVALID_ARGUMENT";
                break;
            case 401:
                msg = "Incorrect API key provided.";
                oai_code = "invalid_api_key";
                ant_type = "authentication_error";
                g_status = "UNAUTHENTICATED";
                break;
            case 402:
                msg = "Payment required.";
                ant_type = "billing_error";
                g_status = "FAILED_PRECONDITION";
                break;
            case 403:
                msg = "Country, region, or territory not supported.";
                oai_code = "unsupported_country_region_territory";
                ant_type = "permission_error";
                g_status = "PERMISSION_DENIED";
                break;
            case 404:
                msg = "The model `" + model + "` does not exist or you do not have access to it.";
                oai_code = "model_not_found";
                ant_type = "not_found_error";
                g_status = "NOT_FOUND";
                break;
            case 408:
                msg = "Request timed out.";
                oai_type = "timeout";
                ant_type = "timeout_error";
                g_status = "DEADLINE_EXCEEDED";
                break;
            case 409:
                msg = "Conflict.";
                oai_type = "conflict";
                ant_type = "conflict_error";
                g_status = "ABORTED";
                break;
            case 413:
                msg = "Request exceeds the maximum allowed number of bytes.";
                ant_type = "request_too_large";
                g_status = "INVALID_ARGUMENT";
                break;
            case 422:
                msg = "Unprocessable entity.";
                ant_type = "invalid_request_error";
                g_status = "INVALID_ARGUMENT";
                break;
            case 429:
                msg = "Rate limit reached for " + model +
                      " in organization org-mock on requests per min (RPM): Limit 500, Used 500, Requested 1. Please "
                      "try again in 120ms.";
                oai_type = "requests";
                oai_code = "rate_limit_exceeded";
                ant_type = "rate_limit_error";
                g_status = "RESOURCE_EXHAUSTED";
                break;
            case 500:
                msg = "The server had an error while processing your request. Sorry about that!";
                oai_type = "server_error";
                ant_type = "api_error";
                g_status = "INTERNAL";
                break;
            case 502:
                msg = "Bad gateway.";
                oai_type = "server_error";
                ant_type = "api_error";
                g_status = "UNAVAILABLE";
                break;
            case 503:
                msg = "The server is overloaded or not ready yet.";
                oai_type = "service_unavailable_error";
                oai_code = "server_is_overloaded";
                ant_type = "api_error";
                g_status = "UNAVAILABLE";
                break;
            case 504:
                msg = "Gateway timeout.";
                oai_type = "server_error";
                ant_type = "timeout_error";
                g_status = "DEADLINE_EXCEEDED";
                break;
            case 529:
                msg = "Overloaded";
                oai_type = "server_error";
                ant_type = "overloaded_error";
                g_status = "UNAVAILABLE";
                break;
            default:
                msg = "Mock error " + std::to_string(status) + ".";
                oai_type = status >= 500 ? "server_error" : "invalid_request_error";
                ant_type = status >= 500 ? "api_error" : "invalid_request_error";
                g_status = status >= 500 ? "INTERNAL" : "INVALID_ARGUMENT";
                break;
        }
        if (f.kind == Fault::Kind::quota_exhausted) {
            msg = "You exceeded your current quota, please check your plan and billing details.";
            oai_type = oai_code = "insufficient_quota";
            if (p.wire == Wire::anthropic) msg = "Your credit balance is too low to access the Anthropic API.";
            g_details.push_back(
                {{"@type", "type.googleapis.com/google.rpc.QuotaFailure"},
                 {"violations", Json::array({{{"quotaMetric",
                                               "generativelanguage.googleapis.com/generate_content_free_tier_requests"},
                                              {"quotaId", "GenerateRequestsPerDayPerProjectPerModel-FreeTier"},
                                              {"quotaValue", "250"}}})}});
        } else if (f.kind == Fault::Kind::context_length) {
            oai_code = "context_length_exceeded";
            switch (p.wire) {
                case Wire::openai:
                case Wire::azure:
                    msg =
                        "This model's maximum context length is 128000 tokens. However, your messages resulted in "
                        "130517 tokens. Please reduce the length of the messages.";
                    break;
                case Wire::anthropic: msg = "prompt is too long: 208656 tokens > 200000 maximum"; break;
                case Wire::gemini:
                    msg = "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).";
                    break;
                case Wire::ollama: msg = "the input length exceeds the context length"; break;
            }
        }
        if (status == 429 && p.wire == Wire::gemini && f.retry_delay) {
            std::string delay = *f.retry_delay;
            if (!delay.empty() && std::isdigit(static_cast<unsigned char>(delay.back()))) delay += "s";
            g_details.push_back({{"@type", "type.googleapis.com/google.rpc.RetryInfo"}, {"retryDelay", delay}});
        }
        if (p.wire == Wire::ollama && f.kind == Fault::Kind::status) {
            // Ollama's own words where they differ from the generic ones.
            switch (status) {
                case 404: msg = "model \"" + model + "\" not found, try pulling it first"; break;
                case 500: msg = "llama runner process has terminated: signal: killed"; break;
                case 503: msg = "server busy, please try again.  maximum pending requests exceeded"; break;
                default: break;
            }
        }
        if (!f.message.empty()) msg = f.message;
        if (!f.type.empty()) oai_type = f.type;
        r.status = status;

        switch (p.wire) {
            case Wire::openai:
            case Wire::azure: {
                const std::string code = f.code.empty() ? oai_code : f.code;
                if (p.wire == Wire::azure && f.code.empty() && f.kind == Fault::Kind::status && status == 429) {
                    r.body =
                        Json{{"error",
                              {{"code", "429"},
                               {"message", f.message.empty()
                                               ? "Requests to the ChatCompletions_Create Operation under Azure OpenAI "
                                                 "API version 2024-10-21 have exceeded token rate limit of your "
                                                 "current OpenAI S0 pricing tier. Please retry after 2 seconds."
                                               : f.message}}}}
                            .dump();
                } else if (p.wire == Wire::azure && f.code.empty() && f.kind == Fault::Kind::status && status == 404) {
                    r.body = Json{{"error",
                                   {{"code", "DeploymentNotFound"},
                                    {"message",
                                     f.message.empty()
                                         ? "The API deployment for this resource does not exist. If you created the "
                                           "deployment within the last 5 minutes, please wait a moment and try again."
                                         : f.message}}}}
                                 .dump();
                } else {
                    r.body = Json{{"error",
                                   {{"message", msg},
                                    {"type", oai_type},
                                    {"param", f.kind == Fault::Kind::context_length ? Json("messages") : Json(nullptr)},
                                    {"code", code.empty() ? Json(nullptr) : Json(code)}}}}
                                 .dump();
                }
                return r;
            }
            case Wire::anthropic:
                if (f.kind == Fault::Kind::context_length) ant_type = "invalid_request_error";
                r.body = Json{{"type", "error"},
                              {"error", {{"type", f.code.empty() ? ant_type : f.code}, {"message", msg}}},
                              {"request_id", "req_mock" + std::to_string(p.seq)}}
                             .dump();
                return r;
            case Wire::gemini: {
                Json err = {{"code", status}, {"message", msg}, {"status", f.code.empty() ? g_status : f.code}};
                if (!g_details.empty()) err["details"] = g_details;
                r.body = Json{{"error", err}}.dump();
                return r;
            }
            case Wire::ollama:  // a bare string; Fault::with_code has nothing to override here
                r.body = Json{{"error", msg}}.dump();
                return r;
        }
        return r;
    }

    Reply build(const Plan& p, const Json& req) const {
        const Fault& f = p.fault;
        switch (f.kind) {
            case Fault::Kind::status:
            case Fault::Kind::quota_exhausted:
            case Fault::Kind::context_length: return error_reply(p, f);
            case Fault::Kind::content_filter:
            case Fault::Kind::safety_block:
                if (p.wire == Wire::azure) {
                    Reply r;
                    r.status = 400;
                    r.headers = base_headers(p);
                    r.body = Json{{"error",
                                   {{"code", "content_filter"},
                                    {"param", "prompt"},
                                    {"status", 400},
                                    {"message",
                                     "The response was filtered due to the prompt triggering Azure OpenAI's content "
                                     "management policy."},
                                    {"innererror",
                                     {{"code", "ResponsibleAIPolicyViolation"},
                                      {"content_filter_result",
                                       {{"hate", {{"filtered", false}, {"severity", "safe"}}},
                                        {"jailbreak", {{"filtered", false}, {"detected", false}}},
                                        {"self_harm", {{"filtered", false}, {"severity", "safe"}}},
                                        {"sexual", {{"filtered", false}, {"severity", "safe"}}},
                                        {"violence", {{"filtered", true}, {"severity", "high"}}}}}}}}}}
                                 .dump();
                    return r;
                }
                return success_reply(p, f, req);
            case Fault::Kind::malformed_json: {
                Reply r = success_reply(p, Fault::ok("this body is cut short"), req);
                r.body.resize(r.body.size() * 2 / 3);
                return r;
            }
            case Fault::Kind::wrong_content_type: {
                Reply r;
                r.headers = {{"Content-Type", "text/html; charset=utf-8"}};
                r.body =
                    "<!DOCTYPE html><html><head><title>Sign in to the network</title></head>"
                    "<body><p>Please accept the terms to continue.</p></body></html>";
                return r;
            }
            case Fault::Kind::raw: {
                Reply r;
                r.status = f.http_status;
                r.headers = {{"Content-Type", f.content_type}};
                r.body = f.text;
                return r;
            }
            default: return success_reply(p, f, req);
        }
    }

    // ---- streaming ---------------------------------------------------------------------------
    // A request that asks for a stream (Chat Completions and Messages: body "stream": true;
    // Gemini: :streamGenerateContent?alt=sse) gets, for the answers a provider streams (ok,
    // ok_json, schema_invalid, tool_call, refusal, content_filter, safety_block), HTTP/1.1 200
    // text/event-stream in chunked transfer encoding, one HTTP chunk per event, in the
    // provider's own event shapes; the connection stays open after a normal end. Every other
    // Fault (status, quota, context length, Azure's prompt filter, hang, reset, truncated,
    // oversized, malformed_json, wrong_content_type, raw) answers exactly as it does unstreamed.

    /// Where an event stands in the answer: the stream modifiers count `content` events;
    /// without_terminator() drops `closing` ones.
    enum class Part { structure, content, closing };
    struct Frame {
        Part part = Part::structure;
        std::string bytes;  // the whole SSE event, blank line included
    };

    /// Whether the request asks for a stream; sets `reject` when it asks in a way the mock
    /// does not serve (Gemini's JSON-array stream without alt=sse).
    static bool wants_stream(const RecordedRequest& rec, Wire wire, const Json& body, std::string& reject) {
        switch (wire) {
            case Wire::openai:
            case Wire::azure:
            case Wire::anthropic:
                return body.is_object() && body.contains("stream") && body["stream"] == true;
            case Wire::gemini: {
                constexpr std::string_view tail = ":streamGenerateContent";
                const std::string_view path = rec.path;
                if (path.size() < tail.size() || path.substr(path.size() - tail.size()) != tail) return false;
                std::string_view q = rec.query;
                bool sse = false;
                while (!q.empty()) {
                    const auto amp = q.find('&');
                    sse = sse || q.substr(0, amp) == "alt=sse";
                    if (amp == std::string_view::npos) break;
                    q.remove_prefix(amp + 1);
                }
                if (!sse) reject = "mock: streamGenerateContent is served only with alt=sse (server-sent events)";
                return sse;
            }
            case Wire::ollama: return false;
        }
        return false;
    }

    /// Whether the fault is an answer the provider would stream (Azure's prompt filter is a 400).
    static bool streamed(const Plan& p) {
        switch (p.fault.kind) {
            case Fault::Kind::ok_text:
            case Fault::Kind::ok_json:
            case Fault::Kind::tool_call:
            case Fault::Kind::schema_invalid:
            case Fault::Kind::refusal: return true;
            case Fault::Kind::content_filter:
            case Fault::Kind::safety_block: return p.wire != Wire::azure;
            default: return false;
        }
    }

    /// `text` in pieces of about `n` bytes, never splitting a UTF-8 character.
    static std::vector<std::string> split_pieces(const std::string& text, std::size_t n) {
        std::vector<std::string> out;
        std::size_t i = 0;
        while (i < text.size()) {
            std::size_t end = std::min(text.size(), i + n);
            while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0u) == 0x80u) ++end;
            out.push_back(text.substr(i, end - i));
            i = end;
        }
        return out;
    }

    static std::string sse_data(const Json& data, bool crlf = false) {
        return "data: " + data.dump() + (crlf ? "\r\n\r\n" : "\n\n");
    }
    static std::string sse_event(const std::string& type, const Json& data) {
        return "event: " + type + "\ndata: " + data.dump() + "\n\n";
    }

    /// The events of a streamed answer, in order.
    std::vector<Frame> stream_frames(const Plan& p, const Fault& f, const Json& req) const {
        const Answer a = answer_of(p, f, req);
        const std::string seq = std::to_string(p.seq);
        std::vector<Frame> frames;
        auto add = [&frames](Part part, std::string bytes) { frames.push_back(Frame{part, std::move(bytes)}); };
        switch (p.wire) {
            case Wire::openai:
            case Wire::azure: {
                const bool usage_chunk = req.contains("stream_options") && req["stream_options"].is_object() &&
                                         req["stream_options"].value("include_usage", false);
                auto chunk = [&](Json choices) {
                    Json c = {{"id", "chatcmpl-mock" + seq},
                              {"object", "chat.completion.chunk"},
                              {"created", 1700000000 + static_cast<std::int64_t>(p.seq)},
                              {"model", p.model},
                              {"system_fingerprint", "fp_mock"},
                              {"choices", std::move(choices)}};
                    if (usage_chunk) c["usage"] = nullptr;
                    return c;
                };
                auto choice = [](Json delta, Json finish = nullptr) {
                    return Json::array(
                        {{{"index", 0}, {"delta", std::move(delta)}, {"logprobs", nullptr}, {"finish_reason", std::move(finish)}}});
                };
                const Json safe = {{"hate", {{"filtered", false}, {"severity", "safe"}}},
                                   {"self_harm", {{"filtered", false}, {"severity", "safe"}}},
                                   {"sexual", {{"filtered", false}, {"severity", "safe"}}},
                                   {"violence", {{"filtered", false}, {"severity", "safe"}}}};
                if (p.wire == Wire::azure)  // Azure opens with the prompt's filter results and no choices
                    add(Part::structure, sse_data({{"id", ""},
                                                   {"object", ""},
                                                   {"created", 0},
                                                   {"model", ""},
                                                   {"choices", Json::array()},
                                                   {"prompt_filter_results",
                                                    Json::array({{{"prompt_index", 0}, {"content_filter_results", safe}}})}}));
                add(Part::structure, sse_data(chunk(choice({{"role", "assistant"}, {"content", ""}, {"refusal", nullptr}}))));
                std::string finish = "stop";
                if (f.kind == Fault::Kind::tool_call) {
                    add(Part::content, sse_data(chunk(choice({{"tool_calls",
                                                               Json::array({{{"index", 0},
                                                                             {"id", "call_mock" + seq},
                                                                             {"type", "function"},
                                                                             {"function", {{"name", f.tool_name}, {"arguments", ""}}}}})}}))));
                    for (const std::string& piece : split_pieces(f.payload.dump(), f.piece_chars))
                        add(Part::content,
                            sse_data(chunk(choice(
                                {{"tool_calls", Json::array({{{"index", 0}, {"function", {{"arguments", piece}}}}})}}))));
                    finish = "tool_calls";
                } else if (f.kind == Fault::Kind::refusal) {
                    for (const std::string& piece : split_pieces(a.text, f.piece_chars))
                        add(Part::content, sse_data(chunk(choice({{"refusal", piece}}))));
                } else if (f.kind == Fault::Kind::content_filter || f.kind == Fault::Kind::safety_block) {
                    finish = "content_filter";
                } else {
                    for (const std::string& piece : split_pieces(a.text, f.piece_chars))
                        add(Part::content, sse_data(chunk(choice({{"content", piece}}))));
                }
                Json last = chunk(choice(Json::object(), finish));
                if (p.wire == Wire::azure) {
                    Json results = safe;
                    if (finish == "content_filter") results["violence"] = {{"filtered", true}, {"severity", "high"}};
                    last["choices"][0]["content_filter_results"] = results;
                }
                add(Part::closing, sse_data(last));
                if (usage_chunk) {
                    Json u = chunk(Json::array());
                    u["usage"] = {{"prompt_tokens", a.in},
                                  {"completion_tokens", a.out},
                                  {"total_tokens", a.in + a.out},
                                  {"prompt_tokens_details", {{"cached_tokens", 0}}},
                                  {"completion_tokens_details", {{"reasoning_tokens", 0}}}};
                    add(Part::closing, sse_data(u));
                }
                add(Part::closing, "data: [DONE]\n\n");
                return frames;
            }
            case Wire::anthropic: {
                add(Part::structure,
                    sse_event("message_start", {{"type", "message_start"},
                                                {"message",
                                                 {{"id", "msg_mock" + seq},
                                                  {"type", "message"},
                                                  {"role", "assistant"},
                                                  {"model", p.model},
                                                  {"content", Json::array()},
                                                  {"stop_reason", nullptr},
                                                  {"stop_sequence", nullptr},
                                                  {"usage",
                                                   {{"input_tokens", a.in},
                                                    {"output_tokens", 1},
                                                    {"cache_creation_input_tokens", 0},
                                                    {"cache_read_input_tokens", 0}}}}}}));
                int index = 0;
                auto start = [&](Json block) {
                    add(Part::structure, sse_event("content_block_start",
                                                   {{"type", "content_block_start"}, {"index", index}, {"content_block", std::move(block)}}));
                };
                auto delta = [&](Json d) {
                    add(Part::content, sse_event("content_block_delta",
                                                 {{"type", "content_block_delta"}, {"index", index}, {"delta", std::move(d)}}));
                };
                auto stop_block = [&](Part part) {
                    add(part, sse_event("content_block_stop", {{"type", "content_block_stop"}, {"index", index}}));
                    ++index;
                };
                if (!f.thinking.empty()) {
                    start({{"type", "thinking"}, {"thinking", ""}});
                    add(Part::structure, sse_event("ping", {{"type", "ping"}}));
                    for (const std::string& piece : split_pieces(f.thinking, f.piece_chars))
                        delta({{"type", "thinking_delta"}, {"thinking", piece}});
                    delta({{"type", "signature_delta"}, {"signature", signature_for("claude", p.model, p.seq)}});
                    stop_block(Part::structure);
                }
                std::string stop = "end_turn";
                Json stop_details = nullptr;
                const std::string forced = forced_tool(req);
                if (f.kind == Fault::Kind::tool_call || (a.structured && !forced.empty())) {
                    const std::string name = f.kind == Fault::Kind::tool_call ? f.tool_name : forced;
                    const Json input = f.kind == Fault::Kind::tool_call ? f.payload : a.answer;
                    start({{"type", "tool_use"}, {"id", "toolu_mock" + seq}, {"name", name}, {"input", Json::object()}});
                    for (const std::string& piece : split_pieces(input.dump(), f.piece_chars))
                        delta({{"type", "input_json_delta"}, {"partial_json", piece}});
                    stop_block(Part::closing);
                    stop = "tool_use";
                } else if (f.kind == Fault::Kind::refusal || f.kind == Fault::Kind::content_filter ||
                           f.kind == Fault::Kind::safety_block) {
                    stop = "refusal";
                    stop_details = {
                        {"type", "refusal"},
                        {"category", nullptr},
                        {"explanation", f.kind == Fault::Kind::refusal ? f.text : "blocked by a safety classifier"}};
                } else {
                    start({{"type", "text"}, {"text", ""}});
                    if (f.thinking.empty()) add(Part::structure, sse_event("ping", {{"type", "ping"}}));
                    for (const std::string& piece : split_pieces(a.text, f.piece_chars))
                        delta({{"type", "text_delta"}, {"text", piece}});
                    stop_block(Part::closing);
                }
                Json md = {{"stop_reason", stop}, {"stop_sequence", nullptr}};
                if (!stop_details.is_null()) md["stop_details"] = stop_details;
                add(Part::closing, sse_event("message_delta", {{"type", "message_delta"}, {"delta", md}, {"usage", {{"output_tokens", a.out}}}}));
                add(Part::closing, sse_event("message_stop", {{"type", "message_stop"}}));
                return frames;
            }
            case Wire::gemini: {
                const Json usage = {{"promptTokenCount", a.in}, {"candidatesTokenCount", a.out}, {"totalTokenCount", a.in + a.out}};
                const Json ratings = Json::array(
                    {{{"category", "HARM_CATEGORY_DANGEROUS_CONTENT"}, {"probability", "HIGH"}, {"blocked", true}}});
                auto chunk = [&](Json candidate) {
                    return Json{{"candidates", Json::array({std::move(candidate)})}, {"modelVersion", p.model}, {"responseId", "mock-" + seq}};
                };
                auto parts = [](Json part) {
                    return Json{{"content", {{"parts", Json::array({std::move(part)})}, {"role", "model"}}}, {"index", 0}};
                };
                if (f.kind == Fault::Kind::safety_block) {  // the only chunk: a blocked prompt has no candidates
                    add(Part::structure, sse_data({{"promptFeedback", {{"blockReason", "SAFETY"}, {"safetyRatings", ratings}}},
                                                   {"usageMetadata", {{"promptTokenCount", a.in}, {"totalTokenCount", a.in}}},
                                                   {"modelVersion", p.model}},
                                                  true));
                    return frames;
                }
                std::string finish = "STOP";
                Json last_candidate = {{"finishReason", finish}, {"index", 0}};
                if (f.kind == Fault::Kind::content_filter) {
                    last_candidate = {{"finishReason", "SAFETY"}, {"index", 0}, {"safetyRatings", ratings}};
                } else if (f.kind == Fault::Kind::tool_call) {
                    // Like Gemini: no functionCall.id, and the call signed with an opaque thoughtSignature.
                    add(Part::content, sse_data(chunk(parts({{"functionCall", {{"name", f.tool_name}, {"args", f.payload}}},
                                                             {"thoughtSignature", signature_for("gemini", p.model, p.seq)}})),
                                                true));
                } else {
                    for (const std::string& piece : split_pieces(a.text, f.piece_chars))
                        add(Part::content, sse_data(chunk(parts({{"text", piece}})), true));
                }
                Json last = chunk(std::move(last_candidate));
                last["usageMetadata"] = usage;
                add(Part::closing, sse_data(last, true));
                return frames;
            }
            case Wire::ollama: break;
        }
        return frames;
    }

    /// The provider's error event in the middle of a stream.
    static std::string error_frame(const Plan& p, const Fault& f) {
        switch (p.wire) {
            case Wire::openai:
            case Wire::azure:
                return sse_data({{"error",
                                  {{"message", f.message.empty() ? "The server had an error while processing your request. Sorry about that!" : f.message},
                                   {"type", f.type.empty() ? "server_error" : f.type},
                                   {"param", nullptr},
                                   {"code", f.code.empty() ? Json(nullptr) : Json(f.code)}}}});
            case Wire::anthropic:
                return sse_event("error", {{"type", "error"},
                                           {"error", {{"type", f.code.empty() ? "overloaded_error" : f.code},
                                                      {"message", f.message.empty() ? "Overloaded" : f.message}}}});
            case Wire::gemini:
                return sse_data({{"error",
                                  {{"code", 503},
                                   {"message", f.message.empty() ? "The model is overloaded. Please try again later." : f.message},
                                   {"status", f.code.empty() ? "UNAVAILABLE" : f.code}}}},
                                true);
            case Wire::ollama: break;
        }
        return {};
    }

    /// A data line that is not JSON (a chunk cut short inside one event).
    static std::string malformed_frame(const Plan& p) {
        switch (p.wire) {
            case Wire::openai:
            case Wire::azure:
                return "data: {\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"brok\n\n";
            case Wire::anthropic:
                return "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"brok\n\n";
            case Wire::gemini: return "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"brok\r\n\r\n";
            case Wire::ollama: break;
        }
        return {};
    }

    /// Sends a streamed answer. False: the connection must end.
    bool stream_reply(int fd, const Request& req, const Plan& p, const Json& request_json) {
        const Fault& f = p.fault;
        const std::vector<Frame> frames = stream_frames(p, f, request_json);
        HeaderList h = base_headers(p);
        h.front().second = p.wire == Wire::anthropic ? "text/event-stream; charset=utf-8" : "text/event-stream";
        h.emplace_back("Cache-Control", "no-cache");
        for (const auto& x : f.headers) h.push_back(x);
        h.emplace_back("Transfer-Encoding", "chunked");
        if (f.interim_continue && !send_all(fd, "HTTP/1.1 100 Continue\r\nx-interim: 1\r\n\r\n")) return false;
        if (!send_all(fd, head_of(200, h, req.keep_alive))) return false;

        auto chunk = [&](std::string_view data) {
            char size_line[32];
            std::snprintf(size_line, sizeof size_line, "%zx\r\n", data.size());
            if (!send_all(fd, size_line) || !send_all(fd, data) || !send_all(fd, "\r\n")) return false;
            add_bytes(p.route, data.size());
            return true;
        };
        const std::size_t content = static_cast<std::size_t>(
            std::count_if(frames.begin(), frames.end(), [](const Frame& fr) { return fr.part == Part::content; }));
        std::size_t sent = 0;  // content events sent
        bool stalled = false, broke = false, erred = false, cut = false;
        auto due = [&](const std::optional<std::size_t>& at, bool& done) {
            if (!at || done || std::min(*at, content) != sent) return false;
            done = true;
            return true;
        };
        for (std::size_t i = 0; i <= frames.size(); ++i) {
            if (due(f.stall_at, stalled)) {
                if (f.stall_for == Fault::forever) {
                    wait_fd(fd, 0, -1);  // until the client goes away or the server stops
                    return false;
                }
                if (!pause(fd, f.stall_for)) return false;
            }
            if (due(f.malformed_at, broke)) {
                if (!pause(fd, f.pace) || !chunk(malformed_frame(p))) return false;
            }
            if (due(f.error_at, erred)) {
                if (!pause(fd, f.pace) || !chunk(error_frame(p, f))) return false;
                break;
            }
            if (due(f.cut_at, cut)) {
                ::shutdown(fd, SHUT_WR);  // abruptly: no terminator, no chunked end
                return false;
            }
            if (i == frames.size()) break;
            const Frame& fr = frames[i];
            if (fr.part == Part::closing && f.no_terminator) continue;
            if (!pause(fd, f.pace) || !chunk(fr.bytes)) return false;
            if (fr.part == Part::content) ++sent;
        }
        return send_all(fd, "0\r\n\r\n");
    }

    // ---- state ---------------------------------------------------------------------------

    mutable std::mutex mutex_;
    std::map<std::string, std::unique_ptr<MockRoute>> routes_;  // guarded by mutex_
    std::map<std::string, PathStats> paths_;                    // guarded by mutex_
    std::size_t requests_ = 0;                                  // guarded by mutex_
    std::uint64_t seq_ = 0;                                     // guarded by mutex_
    std::set<std::string> signatures_;                          // issued opaque signatures; guarded by mutex_
    std::atomic<std::size_t> connections_{0};
    std::atomic<bool> stopped_{false};
    int listen_fd_ = -1;
    int wake_read_ = -1;
    int wake_write_ = -1;
    std::uint16_t port_ = 0;
    std::list<Conn> conns_;  // accept thread only, then stop() after joining it
    std::thread accept_thread_;
};

inline MockRoute& MockRoute::then(Fault f, int times) {
    std::lock_guard lock(owner_.mutex_);
    for (int i = 0; i < times; ++i) script_.push_back(f);
    return *this;
}
inline MockRoute& MockRoute::answer(std::string key, Fault f) {
    std::lock_guard lock(owner_.mutex_);
    for (auto& [k, v] : keyed_)
        if (k == key) {
            v = std::move(f);
            return *this;
        }
    keyed_.emplace_back(std::move(key), std::move(f));
    return *this;
}
inline std::size_t MockRoute::answers() const {
    std::lock_guard lock(owner_.mutex_);
    return keyed_.size();
}
inline MockRoute& MockRoute::otherwise(Fault f) {
    std::lock_guard lock(owner_.mutex_);
    fallback_ = std::move(f);
    return *this;
}
inline MockRoute& MockRoute::require_auth(bool on) {
    std::lock_guard lock(owner_.mutex_);
    require_auth_ = on;
    return *this;
}
inline MockRoute& MockRoute::reset() {
    std::lock_guard lock(owner_.mutex_);
    script_.clear();
    keyed_.clear();
    fallback_ = Fault::ok();
    requests_ = 0;
    bytes_sent_ = 0;
    last_.reset();
    return *this;
}
inline std::size_t MockRoute::requests() const {
    std::lock_guard lock(owner_.mutex_);
    return requests_;
}
inline std::size_t MockRoute::pending() const {
    std::lock_guard lock(owner_.mutex_);
    return script_.size();
}
inline std::size_t MockRoute::bytes_sent() const {
    std::lock_guard lock(owner_.mutex_);
    return bytes_sent_;
}
inline std::optional<RecordedRequest> MockRoute::last_request() const {
    std::lock_guard lock(owner_.mutex_);
    return last_;
}
inline std::string MockRoute::url() const { return owner_.url(name_); }

}  // namespace failover_mock
