// SPDX-License-Identifier: MIT
// The classifier: turns a non-2xx HTTP response into a Failure (kind, reason,
// status, Retry-After, message, provider code) following the taxonomy in the
// README. One function decides (detail::classify_error): the status, the
// portable body signals, then the adapter's optional classify hook, which gets
// the body already parsed (ErrorReply) and adds provider-only signals (Gemini
// daily quotas, Azure filter details, Anthropic spend limits), and last
// `x-should-retry`, so the header means the same for every adapter.
//
// Everything here reads untrusted bytes and never throws on their account:
// garbage headers, random or huge bodies, JSON of any shape or depth all give a
// classified Failure. The body is inspected as JSON only when it looks like JSON,
// is at most 1 MiB and nests at most 64 levels (checked before parsing, so the
// parser and the JSON tree stay shallow). Provider text copied into a message
// is cut to ~300 bytes at a UTF-8 boundary, with control characters and invalid
// UTF-8 replaced and anything that looks like an API key redacted.
//
// Decisions the table leaves open:
// - Retry-After: `retry-after-ms` (milliseconds, decimals allowed) wins when it
//   parses, 0 included; otherwise `Retry-After` as delta-seconds (decimals
//   allowed) or an HTTP-date (IMF-fixdate, RFC 850, asctime) against wall_now.
//   Surrounding spaces are ignored (HTTP strips them); signs, exponents, inf,
//   nan and anything else give nullopt. Values round up to whole milliseconds, a
//   date in the past gives 0, and anything longer than one day is clamped to one
//   day: a server that says "much later" still means "not now", but a bogus year
//   must not park a route for good.
// - `x-should-retry: true|false` (case-insensitive) overrides the transient /
//   terminal kind, as the OpenAI and Anthropic SDKs do, whatever the status or
//   the adapter said. It never changes the reason, and it never overrides a
//   body signal that names the cause (content filter, quota, context length):
//   retrying those cannot help and a policy block must reach the caller.
// - 1xx, 2xx and out-of-range statuses are malformed_response (transient).
//   3xx is malformed_response but terminal: the transport does not follow
//   redirects, so the same URL will redirect again; the base URL is wrong.
// - Body signals apply to 4xx and 5xx only. Codes count at any of those
//   statuses; "prompt too long" message text only on 4xx other than 429 and on
//   500, so a rate-limit message that talks about tokens stays a rate limit.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "failover/detail/json_depth.hpp"
#include "failover/failure.hpp"
#include "failover/transport.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

// Nested so these short names cannot collide with other headers' internals.
namespace detail::classifier {

/// Longest server wait hint we keep; longer ones are clamped to it.
inline constexpr std::chrono::milliseconds max_retry_after{std::chrono::hours{24}};
/// Largest error body inspected as JSON.
inline constexpr std::size_t max_error_body_parse = std::size_t{1} << 20;
/// Deepest JSON nesting inspected in an error body.
inline constexpr int max_error_body_depth = 64;
/// Bytes of provider message kept in Failure::message.
inline constexpr std::size_t max_provider_message = 300;
/// Bytes of a non-JSON body kept in Failure::message.
inline constexpr std::size_t max_body_excerpt = 100;

constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
constexpr bool is_alpha(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
constexpr char to_lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

/// Strips HTTP optional whitespace (SP, HTAB) from both ends.
inline std::string_view trim_ows(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

/// ASCII case-insensitive substring search.
inline bool icontains(std::string_view hay, std::string_view needle) noexcept {
    if (needle.empty()) return true;
    if (hay.size() < needle.size()) return false;
    for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i) {
        std::size_t k = 0;
        while (k < needle.size() && to_lower(hay[i + k]) == to_lower(needle[k])) ++k;
        if (k == needle.size()) return true;
    }
    return false;
}

/// Parses `D+[.D*]` or `.D+` as a count of `unit_ms` milliseconds, rounded up to
/// a whole millisecond and clamped to max_retry_after. nullopt for anything else.
inline std::optional<std::chrono::milliseconds> parse_decimal_ms(std::string_view s, std::int64_t unit_ms) noexcept {
    const std::int64_t cap = max_retry_after.count();
    std::size_t i = 0;
    std::int64_t whole = 0;
    bool saturated = false;
    std::size_t int_digits = 0;
    for (; i < s.size() && is_digit(s[i]); ++i, ++int_digits) {
        if (whole > cap) saturated = true;  // already past the clamp: stop growing
        else whole = whole * 10 + (s[i] - '0');
    }
    std::int64_t frac = 0, den = 1;
    bool sticky = false;  // nonzero digits beyond the precision we keep
    std::size_t frac_digits = 0;
    if (i < s.size() && s[i] == '.') {
        for (++i; i < s.size() && is_digit(s[i]); ++i, ++frac_digits) {
            if (frac_digits < 9) {
                frac = frac * 10 + (s[i] - '0');
                den *= 10;
            } else if (s[i] != '0') {
                sticky = true;
            }
        }
    }
    if (i != s.size() || int_digits + frac_digits == 0) return std::nullopt;
    if (saturated || whole > cap / unit_ms) return max_retry_after;
    const std::int64_t scaled = frac * unit_ms;  // < 1e9 * 1000, fits
    std::int64_t frac_ms = scaled / den;
    if (scaled % den != 0 || sticky) ++frac_ms;
    return std::chrono::milliseconds{std::min(cap, whole * unit_ms + frac_ms)};
}

/// A cursor over an HTTP-date.
struct DateCursor {
    std::string_view s;
    std::size_t i = 0;

    bool done() const noexcept { return i == s.size(); }
    bool lit(char c) noexcept {
        if (i < s.size() && s[i] == c) {
            ++i;
            return true;
        }
        return false;
    }
    bool spaces() noexcept {
        const std::size_t start = i;
        while (i < s.size() && s[i] == ' ') ++i;
        return i > start;
    }
    std::string_view word() noexcept {
        const std::size_t start = i;
        while (i < s.size() && is_alpha(s[i])) ++i;
        return s.substr(start, i - start);
    }
    /// Reads a run of digits whose length is within [min_len, max_len].
    bool number(std::size_t min_len, std::size_t max_len, int& out) noexcept {
        const std::size_t start = i;
        int v = 0;
        while (i < s.size() && is_digit(s[i])) {
            if (i - start < max_len) v = v * 10 + (s[i] - '0');
            ++i;
        }
        const std::size_t len = i - start;
        out = v;
        return len >= min_len && len <= max_len;
    }
    bool clock(int& h, int& m, int& sec) noexcept {
        return number(2, 2, h) && lit(':') && number(2, 2, m) && lit(':') && number(2, 2, sec);
    }
};

inline bool is_day_name(std::string_view w) noexcept {
    constexpr std::string_view names[] = {"Mon",    "Tue",     "Wed",       "Thu",      "Fri",    "Sat",      "Sun",
                                          "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"};
    for (auto n : names)
        if (iequals(w, n)) return true;
    return false;
}

inline int month_number(std::string_view w) noexcept {
    constexpr std::string_view names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                          "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (int m = 0; m < 12; ++m)
        if (iequals(w, names[m])) return m + 1;
    return 0;
}

/// Parses an HTTP-date: IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), RFC 850
/// ("Sunday, 06-Nov-94 08:49:37 GMT", two-digit years read per RFC 9110 against
/// `now`) or asctime ("Sun Nov  6 08:49:37 1994"). nullopt for anything else.
inline std::optional<std::chrono::sys_seconds> parse_http_date(std::string_view text,
                                                               std::chrono::system_clock::time_point now) noexcept {
    int y = 0, mon = 0, d = 0, hh = 0, mm = 0, ss = 0;
    bool ok = false;
    {
        DateCursor c{text};
        if (is_day_name(c.word()) && c.lit(',') && c.spaces() && c.number(1, 2, d)) {
            if (c.spaces()) {  // IMF-fixdate: 06 Nov 1994
                ok = (mon = month_number(c.word())) != 0 && c.spaces() && c.number(4, 4, y) && c.spaces() &&
                     c.clock(hh, mm, ss) && c.spaces() && iequals(c.word(), "GMT") && c.done();
            } else if (c.lit('-')) {  // RFC 850: 06-Nov-94
                ok = (mon = month_number(c.word())) != 0 && c.lit('-');
                const std::size_t year_at = c.i;
                ok = ok && c.number(2, 4, y);
                const std::size_t year_digits = c.i - year_at;
                ok = ok && year_digits != 3 && c.spaces() && c.clock(hh, mm, ss) && c.spaces() &&
                     iequals(c.word(), "GMT") && c.done();
                if (ok && year_digits == 2) {  // RFC 9110: never more than 50 years ahead
                    const int this_year =
                        static_cast<int>(std::chrono::year_month_day{std::chrono::floor<std::chrono::days>(now)}.year());
                    y += this_year - this_year % 100;
                    if (y > this_year + 50) y -= 100;
                }
            }
        }
    }
    if (!ok) {  // asctime: Sun Nov  6 08:49:37 1994
        DateCursor c{text};
        ok = is_day_name(c.word()) && c.spaces() && (mon = month_number(c.word())) != 0 && c.spaces() &&
             c.number(1, 2, d) && c.spaces() && c.clock(hh, mm, ss) && c.spaces() && c.number(4, 4, y) && c.done();
    }
    if (!ok || hh > 23 || mm > 59 || ss > 60 || y < 1) return std::nullopt;
    const std::chrono::year_month_day ymd{std::chrono::year{y}, std::chrono::month{static_cast<unsigned>(mon)},
                                          std::chrono::day{static_cast<unsigned>(d)}};
    if (!ymd.ok()) return std::nullopt;
    return std::chrono::sys_days{ymd} + std::chrono::hours{hh} + std::chrono::minutes{mm} + std::chrono::seconds{ss};
}

/// Decodes one UTF-8 sequence at s[i]; returns its length (0 when invalid) and the code point.
inline std::size_t utf8_decode(std::string_view s, std::size_t i, char32_t& cp) noexcept {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
    const unsigned char c0 = b(0);
    if (c0 < 0x80) {
        cp = c0;
        return 1;
    }
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c0 >= 0xC2 && c0 <= 0xDF) len = 2;
    else if (c0 >= 0xE0 && c0 <= 0xEF) {
        len = 3;
        if (c0 == 0xE0) lo = 0xA0;
        if (c0 == 0xED) hi = 0x9F;
    } else if (c0 >= 0xF0 && c0 <= 0xF4) {
        len = 4;
        if (c0 == 0xF0) lo = 0x90;
        if (c0 == 0xF4) hi = 0x8F;
    } else {
        return 0;
    }
    if (i + len > s.size()) return 0;
    if (b(1) < lo || b(1) > hi) return 0;
    for (std::size_t k = 2; k < len; ++k)
        if (b(k) < 0x80 || b(k) > 0xBF) return 0;
    char32_t v = c0 & (len == 2 ? 0x1Fu : len == 3 ? 0x0Fu : 0x07u);
    for (std::size_t k = 1; k < len; ++k) v = (v << 6) | (b(k) & 0x3Fu);
    cp = v;
    return len;
}

/// Characters that must not reach a log line as themselves: C0/C1 controls,
/// DEL, line/paragraph separators and bidi overrides.
constexpr bool is_unsafe_code_point(char32_t cp) noexcept {
    return cp < 0x20 || (cp >= 0x7F && cp < 0xA0) || cp == 0x2028 || cp == 0x2029 ||
           (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0xFEFF;
}

constexpr bool is_key_char(char c) noexcept { return is_alpha(c) || is_digit(c) || c == '-' || c == '_'; }
constexpr bool is_token_char(char c) noexcept {
    return is_key_char(c) || c == '.' || c == '~' || c == '+' || c == '/' || c == '=';
}

/// Replaces what looks like a credential with "[redacted]": OpenAI/Anthropic
/// style `sk-...` keys, Google `AIza...` keys and `Bearer <token>`.
inline std::string redact_secrets(std::string s) {
    std::string out;
    out.reserve(s.size());
    std::size_t i = 0;
    while (i < s.size()) {
        const bool boundary = i == 0 || !is_key_char(s[i - 1]);
        std::size_t skip = 0;  // bytes of secret to drop after the kept prefix
        std::size_t keep = 0;  // prefix bytes kept verbatim (e.g. "Bearer ")
        if (boundary) {
            const std::string_view rest(s.data() + i, s.size() - i);
            const auto run = [&](std::size_t from, bool (*pred)(char) noexcept) {
                std::size_t j = from;
                while (j < rest.size() && pred(rest[j])) ++j;
                return j - from;
            };
            if (rest.substr(0, 3) == "sk-") {
                if (const std::size_t n = run(3, is_key_char); n >= 16) skip = 3 + n;
            } else if (rest.substr(0, 4) == "AIza") {
                if (const std::size_t n = run(4, is_key_char); n >= 30) skip = 4 + n;
            } else if (rest.size() > 7 && iequals(rest.substr(0, 7), "bearer ")) {
                if (const std::size_t n = run(7, is_token_char); n >= 8) {
                    keep = 7;
                    skip = n;
                }
            }
        }
        if (skip == 0) {
            out += s[i++];
            continue;
        }
        out.append(s, i, keep);
        out += "[redacted]";
        i += keep + skip;
    }
    return out;
}

/// Makes untrusted text safe for a one-line message: invalid UTF-8 becomes '?',
/// control characters and whitespace runs become one space, secrets are
/// redacted, and the result is cut to at most `max_bytes` at a code point
/// boundary, with "..." appended when anything was cut.
inline std::string sanitize_text(std::string_view in, std::size_t max_bytes) {
    // Look at a bounded prefix: enough that collapsing and redaction cannot
    // leave us short, small enough that a 1 MiB body costs nothing.
    const std::size_t window = max_bytes * 4 + 64;
    bool cut = in.size() > window;
    if (cut) in = in.substr(0, window);
    std::string clean;
    clean.reserve(in.size());
    bool pending_space = false;
    for (std::size_t i = 0; i < in.size();) {
        char32_t cp = 0;
        const std::size_t len = utf8_decode(in, i, cp);
        if (len == 0) {
            if (pending_space && !clean.empty()) clean += ' ';
            pending_space = false;
            clean += '?';
            ++i;
            continue;
        }
        if (cp == ' ' || is_unsafe_code_point(cp)) {
            pending_space = true;
        } else {
            if (pending_space && !clean.empty()) clean += ' ';
            pending_space = false;
            clean.append(in.data() + i, len);
        }
        i += len;
    }
    clean = redact_secrets(std::move(clean));
    if (clean.size() > max_bytes) {
        std::size_t end = max_bytes;
        while (end > 0 && (static_cast<unsigned char>(clean[end]) & 0xC0u) == 0x80u) --end;
        clean.resize(end);
        while (!clean.empty() && clean.back() == ' ') clean.pop_back();
        cut = true;
    }
    if (cut) clean += "...";
    return clean;
}

/// True when the body's first meaningful character opens a JSON object or array.
inline bool looks_like_json(std::string_view s) noexcept {
    if (s.substr(0, 3) == "\xEF\xBB\xBF") s.remove_prefix(3);
    for (char c : s) {
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        return c == '{' || c == '[';
    }
    return false;
}


/// The error fields of a parsed error body, whatever the provider's envelope:
/// {"error":{...}} (OpenAI, Anthropic, Gemini, Ollama, llama.cpp), {"error":"text"},
/// the old vLLM top-level {"object":"error","message",...}, FastAPI's {"detail":...},
/// and Gemini's array form [{"error":{...}}].
struct ErrorFields {
    const nlohmann::json* error = nullptr;  ///< the object holding message/type/code, if any
    std::string message;  ///< error.message, a top-level message/detail, or an `error` string
    std::string type;     ///< error.type
    std::string code;     ///< error.code when a string
    std::string status;   ///< error.status when a string (Gemini)

    /// error.code if a string, else error.type, else error.status.
    const std::string& provider_code() const noexcept { return !code.empty() ? code : !type.empty() ? type : status; }
};

inline const nlohmann::json* json_member(const nlohmann::json& j, const char* key) noexcept {
    if (!j.is_object()) return nullptr;
    const auto it = j.find(key);
    return it == j.end() ? nullptr : &*it;
}

inline std::string json_string(const nlohmann::json* j) {
    return j && j->is_string() ? j->get_ref<const std::string&>() : std::string{};
}

/// Reads the error fields of a parsed body. Never throws on the body's shape.
inline ErrorFields error_fields(const nlohmann::json& doc) {
    ErrorFields out;
    const nlohmann::json* root = &doc;
    if (root->is_array() && !root->empty()) root = &root->front();
    if (!root->is_object()) return out;
    const nlohmann::json* err = root;  // old vLLM and others: the fields at the top level
    if (const auto* e = json_member(*root, "error")) {
        if (e->is_object()) err = e;
        else if (e->is_string()) out.message = e->get_ref<const std::string&>();
    }
    if (err != root || json_member(*root, "message") || json_string(json_member(*root, "object")) == "error")
        out.error = err;
    if (out.message.empty()) out.message = json_string(json_member(*err, "message"));
    if (out.message.empty()) out.message = json_string(json_member(*root, "detail"));  // FastAPI-style servers
    out.type = json_string(json_member(*err, "type"));
    if (err == root && out.type == "error") out.type.clear();  // Anthropic's envelope marker, not a cause
    out.code = json_string(json_member(*err, "code"));
    out.status = json_string(json_member(*err, "status"));
    return out;
}

/// An error body, read once: how usable it is, the parsed document and its fields.
struct ErrorBody {
    enum class Shape { empty, not_json, too_large, too_deep, json };
    Shape shape = Shape::empty;
    nlohmann::json doc = nlohmann::json(nlohmann::json::value_t::discarded);  ///< discarded unless shape == json
    ErrorFields fields;
};

/// Reads an error body of any shape. Never throws; unusable bodies say why in `shape`.
inline ErrorBody read_error_body(std::string_view body) noexcept {
    ErrorBody out;
    try {
        if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return out;
        out.shape = ErrorBody::Shape::not_json;
        if (!looks_like_json(body)) return out;
        if (body.size() > max_error_body_parse) {
            out.shape = ErrorBody::Shape::too_large;
            return out;
        }
        if (!detail::json_depth_within(body, static_cast<std::size_t>(max_error_body_depth))) {
            out.shape = ErrorBody::Shape::too_deep;
            return out;
        }
        out.doc = nlohmann::json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
        if (out.doc.is_discarded()) return out;
        out.shape = ErrorBody::Shape::json;
        out.fields = error_fields(out.doc);
    } catch (...) {
        out = ErrorBody{};
        out.shape = ErrorBody::Shape::not_json;
    }
    return out;
}

/// Statuses whose message text may be trusted to mean "prompt too long": request
/// errors and plain 500s (Gemini's way), never a rate limit or a gateway error.
constexpr bool context_status(int status) noexcept {
    return status == 500 || (status >= 400 && status < 500 && status != 429);
}

/// The portable prompt-too-long phrases (case-insensitive), the one list in the library.
inline bool mentions_context_too_long(std::string_view message) noexcept {
    constexpr std::string_view phrases[] = {"maximum context length", "prompt is too long", "exceed context limit",
                                            "input token count", "exceeds the available context"};
    for (auto p : phrases)
        if (icontains(message, p)) return true;
    return false;
}

/// Codes say "prompt too long" at any error status; message text only where context_status holds.
inline bool says_context_too_long(const ErrorFields& b, int status) noexcept {
    if (b.code == "context_length_exceeded" || b.type == "context_length_exceeded") return true;
    if (b.type == "exceed_context_size_error" || b.code == "exceed_context_size_error") return true;
    return context_status(status) && mentions_context_too_long(b.message);
}

/// Reason and kind decided by the status alone, with a short label for odd statuses.
struct StatusClass {
    Reason reason;
    FailureKind kind;
    std::string_view label;  ///< inserted after "HTTP nnn: ", may be empty
};

constexpr StatusClass classify_status(int status) noexcept {
    const auto of = [](Reason r, std::string_view label = {}) { return StatusClass{r, default_kind(r), label}; };
    if (status < 100 || status > 599) return of(Reason::malformed_response, "invalid HTTP status");
    if (status < 200) return of(Reason::malformed_response, "unexpected informational status");
    if (status < 300) return of(Reason::malformed_response, "success status given to the error classifier");
    if (status < 400) return {Reason::malformed_response, FailureKind::terminal, "unexpected redirect"};
    switch (status) {
        case 401:
        case 403: return of(Reason::auth);
        case 402: return of(Reason::quota_exhausted);
        case 404: return of(Reason::not_found);
        case 408: return of(Reason::timeout);
        case 409: return of(Reason::conflict);
        case 413: return of(Reason::bad_request, "request too large");
        case 429: return of(Reason::rate_limited);
        case 503:
        case 529: return of(Reason::overloaded);
        case 504: return of(Reason::timeout);
        default: break;
    }
    return status < 500 ? of(Reason::bad_request) : of(Reason::server_error);
}

/// A redirect target for a message: scheme, host and path only (a query string
/// or user info may carry a key).
inline std::string redirect_target(std::string_view location) {
    location = trim_ows(location);
    location = location.substr(0, std::min(location.find_first_of("?#"), location.size()));
    if (const auto scheme = location.find("://"); scheme != std::string_view::npos) {
        const auto host_start = scheme + 3;
        const auto host_end = std::min(location.find('/', host_start), location.size());
        if (const auto at = location.substr(host_start, host_end - host_start).rfind('@');
            at != std::string_view::npos) {
            return sanitize_text(std::string(location.substr(0, host_start)) +
                                     std::string(location.substr(host_start + at + 1)),
                                 max_provider_message);
        }
    }
    return sanitize_text(location, max_provider_message);
}

}  // namespace detail::classifier

/// True for 2xx.
constexpr bool is_success(int status) noexcept { return status >= 200 && status <= 299; }

/// The server's wait hint: `retry-after-ms`, else `Retry-After` (delta-seconds or
/// HTTP-date against wall_now). nullopt when absent or unusable; 0 for a past
/// date; clamped to one day. Never throws.
inline std::optional<std::chrono::milliseconds> parse_retry_after(const HttpResponse& res,
                                                                  std::chrono::system_clock::time_point wall_now) {
    namespace dc = detail::classifier;
    if (const std::string* ms = res.header("retry-after-ms")) {
        if (auto v = dc::parse_decimal_ms(dc::trim_ows(*ms), 1)) return v;
    }
    const std::string* ra = res.header("retry-after");
    if (!ra) return std::nullopt;
    const std::string_view v = dc::trim_ows(*ra);
    if (auto d = dc::parse_decimal_ms(v, 1000)) return d;
    const auto when = dc::parse_http_date(v, wall_now);
    if (!when) return std::nullopt;
    // Compare in seconds first: far dates would overflow a nanosecond duration.
    const auto ahead = *when - std::chrono::floor<std::chrono::seconds>(wall_now);
    if (ahead <= std::chrono::seconds{0}) return std::chrono::milliseconds{0};
    if (ahead > dc::max_retry_after) return dc::max_retry_after;
    const auto exact = std::chrono::ceil<std::chrono::milliseconds>(*when - wall_now);
    return std::clamp(exact, std::chrono::milliseconds{0}, dc::max_retry_after);
}

/// The error fields of an error body: message, type, code, status and the error object.
using ErrorFields = detail::classifier::ErrorFields;

/// An error response as the classifier read it, handed to an adapter's classify hook:
/// the body is parsed once, by one reader, and the hook only adds what it alone knows.
struct ErrorReply {
    const HttpResponse& response;            ///< status, headers and raw body
    const nlohmann::json& body;              ///< the parsed body; discarded when not JSON, too large or too deep
    const ErrorFields& fields;               ///< message, type, code, status and the error object

    /// True when the body was parsed as JSON.
    bool is_json() const noexcept { return !body.is_discarded(); }
};

namespace detail {

/// `x-should-retry: true|false` decides transient or terminal, as in the official SDKs,
/// after every other rule; it never turns a policy block into a retry and never
/// overrides a body that names its cause (a quota or context-length reason the status
/// alone, `status_reason`, did not give).
inline void apply_should_retry(const HttpResponse& res, Failure& f, Reason status_reason) noexcept {
    const std::string* hint = res.header("x-should-retry");
    if (!hint || f.kind == FailureKind::policy) return;
    if ((f.reason == Reason::quota_exhausted || f.reason == Reason::context_too_long) && f.reason != status_reason) return;
    const std::string_view v = classifier::trim_ows(*hint);
    if (iequals(v, "true")) f.kind = FailureKind::transient;
    else if (iequals(v, "false")) f.kind = FailureKind::terminal;
}

/// The one classification of a non-2xx response: the status, the portable body
/// signals, then the adapter's hook (given the parsed body), then x-should-retry.
template <class Hook>
Failure classify_error(const HttpResponse& res, std::chrono::system_clock::time_point wall_now, Hook&& hook) {
    namespace dc = classifier;
    const dc::StatusClass sc = dc::classify_status(res.status);
    Failure f;
    f.reason = sc.reason;
    f.kind = sc.kind;
    f.status = res.status;
    f.retry_after = parse_retry_after(res, wall_now);

    std::string msg = "HTTP " + std::to_string(res.status);
    if (!sc.label.empty()) {
        msg += ": ";
        msg += sc.label;
    }
    const bool error_status = res.status >= 400 && res.status <= 599;
    if (!error_status) {
        if (res.status >= 300 && res.status < 400) {
            if (const std::string* loc = res.header("location"); loc && !dc::trim_ows(*loc).empty())
                msg += " to " + dc::redirect_target(*loc);
            msg += " (redirects are not followed; check the base URL)";
        }
        f.message = std::move(msg);
        apply_should_retry(res, f, sc.reason);
        return f;
    }

    const dc::ErrorBody body = dc::read_error_body(res.body);
    const dc::ErrorFields& e = body.fields;
    f.provider_code = dc::sanitize_text(e.provider_code(), 64);
    if (e.code == "content_filter") {
        f.reason = Reason::content_filter;
        f.kind = FailureKind::policy;
    } else if (e.code == "insufficient_quota" || e.type == "insufficient_quota") {
        f.reason = Reason::quota_exhausted;
        f.kind = FailureKind::terminal;
    } else if (dc::says_context_too_long(e, res.status)) {
        f.reason = Reason::context_too_long;
        f.kind = FailureKind::terminal;
    }

    using Shape = dc::ErrorBody::Shape;
    const auto excerpt = [&] { return dc::sanitize_text(res.body, dc::max_body_excerpt); };
    msg += ": ";
    switch (body.shape) {
        case Shape::empty: msg += "empty body"; break;
        case Shape::not_json: msg += "body is not valid JSON: " + excerpt(); break;
        case Shape::too_large:
            msg += "body too large to inspect (" + std::to_string(res.body.size()) + " bytes): " + excerpt();
            break;
        case Shape::too_deep: msg += "JSON body nested too deeply: " + excerpt(); break;
        case Shape::json:
            if (!e.message.empty()) msg += dc::sanitize_text(e.message, dc::max_provider_message);
            else if (!f.provider_code.empty()) msg += f.provider_code;
            else msg += "JSON body without an error message: " + excerpt();
            break;
    }
    f.message = std::move(msg);
    hook(ErrorReply{res, body.doc, e}, f);
    apply_should_retry(res, f, sc.reason);
    return f;
}

}  // namespace detail

/// Generic classification of a non-2xx response: reason and kind from the
/// status, the portable body signals and `x-should-retry`; plus status,
/// retry_after, a short sanitised message and the provider's code. Never throws
/// on account of the response's content. Routes add their adapter's own signals
/// through the same function (detail::classify_error), so the rules are in one place.
/// @code
/// Failure f = failover::classify_response(res, clock.wall_now());
/// if (f.kind == FailureKind::transient && f.retry_after) wait(*f.retry_after);
/// @endcode
inline Failure classify_response(const HttpResponse& res, std::chrono::system_clock::time_point wall_now) {
    return detail::classify_error(res, wall_now, [](const ErrorReply&, Failure&) noexcept {});
}

/// A Failure for a 2xx whose body could not be used (adapters call it):
/// malformed_response, transient; `what` is sanitised and cut like provider text.
inline Failure malformed(std::string what) {
    namespace dc = detail::classifier;
    std::string msg = dc::sanitize_text(what, 2 * dc::max_provider_message);
    return Failure::of(Reason::malformed_response, msg.empty() ? std::string("malformed response") : std::move(msg));
}

FAILOVER_END_NAMESPACE
