// SPDX-License-Identifier: MIT
// Internals shared by the provider adapters. Everything here is total: JSON is
// parsed without exceptions and with a nesting limit (nlohmann's parser is
// iterative, but copying or printing a value recurses, so a hostile body
// thousands of levels deep is refused before it is built); provider text that
// ends up in a Failure is cleaned by clean_message(): the API key redacted,
// control characters and invalid UTF-8 removed, cut at a code-point boundary.
// Constructors call the check_* helpers, which throw std::invalid_argument
// naming the field and, except for secrets, its value. The namespace is
// detail::wire so these names cannot collide with other internals of detail.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "failover/classifier.hpp"
#include "failover/detail/json_depth.hpp"
#include "failover/detail/json_write.hpp"
#include "failover/env.hpp"
#include "failover/failure.hpp"
#include "failover/request.hpp"
#include "failover/transport.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE
namespace detail::wire {

using json = nlohmann::json;

/// Deepest JSON nesting an adapter accepts in a body or a model's answer.
inline constexpr std::size_t max_json_depth = 512;
/// Longest provider message kept in Failure::message, in bytes.
inline constexpr std::size_t max_message_bytes = 300;

// ---------------------------------------------------------------- JSON access

/// Parses JSON text; a discarded value (is_discarded()) when it is not JSON or nests too deep. Never throws.
inline json parse_json(std::string_view text) noexcept {
    try {
        if (!json_depth_within(text, max_json_depth)) return json(json::value_t::discarded);
        return json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    } catch (...) {
        return json(json::value_t::discarded);
    }
}

/// The member `key` of an object, or nullptr (also when `j` is not an object).
inline const json* member(const json& j, const char* key) noexcept {
    if (!j.is_object()) return nullptr;
    auto it = j.find(key);
    return it == j.end() ? nullptr : &*it;
}

/// member() through a possibly null pointer.
inline const json* member(const json* j, const char* key) noexcept { return j ? member(*j, key) : nullptr; }

/// A string as itself, an integer in decimal; anything else (null, absent, object) as "".
inline std::string text_of(const json* j) {
    if (j == nullptr) return {};
    if (j->is_string()) return j->get<std::string>();
    if (j->is_number_unsigned()) return std::to_string(j->get<std::uint64_t>());
    if (j->is_number_integer()) return std::to_string(j->get<std::int64_t>());
    return {};
}

/// text_of(member(j, key)).
inline std::string string_at(const json& j, const char* key) { return text_of(member(j, key)); }
/// text_of(member(j, key)) through a possibly null pointer.
inline std::string string_at(const json* j, const char* key) { return text_of(member(j, key)); }

/// A non-negative token count; 0 when absent, negative or not a number.
inline std::int64_t count_at(const json* j, const char* key) noexcept {
    const json* v = member(j, key);
    if (v == nullptr) return 0;
    constexpr auto top = std::numeric_limits<std::int64_t>::max();
    if (v->is_number_unsigned()) {
        const auto u = v->get<std::uint64_t>();
        return u > static_cast<std::uint64_t>(top) ? top : static_cast<std::int64_t>(u);
    }
    if (v->is_number_integer()) return std::max<std::int64_t>(0, v->get<std::int64_t>());
    if (v->is_number_float()) {
        const double d = v->get<double>();
        if (!(d > 0)) return 0;
        return d >= 9.0e18 ? top : static_cast<std::int64_t>(d);
    }
    return 0;
}

/// True when member `key` is the boolean true.
inline bool flag_at(const json* j, const char* key) noexcept {
    const json* v = member(j, key);
    return v != nullptr && v->is_boolean() && v->get<bool>();
}

/// Room to reserve for a request body: its message text and the JSON around it.
inline std::size_t body_capacity(const ChatRequest& req) noexcept {
    std::size_t n = 512;
    for (const Message& m : req.messages) n += m.content.size() + 64;
    return n;
}

/// The text an encoder wrote with `o` into `text`. Text that is not valid UTF-8 cannot be
/// sent as JSON, so it becomes a bad_request naming the provider instead of a body.
inline Result<std::string> body_text(const JsonOut& o, std::string text, std::string_view provider) {
    if (!o.ok())
        return Failure::of(Reason::bad_request,
                           std::string(provider) + ": the request contains text that is not valid UTF-8");
    return text;
}

// ------------------------------------------------------------------- strings

inline char lower_ascii(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

/// Position of `needle` in `hay` ignoring ASCII case, or npos.
inline std::size_t ifind(std::string_view hay, std::string_view needle) noexcept {
    if (needle.empty()) return 0;
    auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end(),
                          [](char a, char b) { return lower_ascii(a) == lower_ascii(b); });
    return it == hay.end() ? std::string_view::npos : static_cast<std::size_t>(it - hay.begin());
}

/// Whether `hay` contains `needle`, ignoring ASCII case.
inline bool icontains(std::string_view hay, std::string_view needle) noexcept {
    return ifind(hay, needle) != std::string_view::npos;
}

/// Replaces every occurrence of `secret` (when not empty) with "[redacted]".
inline void redact(std::string& s, std::string_view secret) {
    if (secret.empty()) return;
    constexpr std::string_view mark = "[redacted]";
    for (std::size_t pos = s.find(secret); pos != std::string::npos; pos = s.find(secret, pos + mark.size()))
        s.replace(pos, secret.size(), mark);
    // A text cut short upstream (e.g. the generic classifier's length cap) may hold only the start
    // of the key: redact any run that matches its first 12 or more characters.
    constexpr std::size_t min_run = 12;
    if (secret.size() <= min_run) return;
    const std::string_view head = secret.substr(0, min_run);
    for (std::size_t pos = s.find(head); pos != std::string::npos; pos = s.find(head, pos + mark.size())) {
        std::size_t len = min_run;
        while (len < secret.size() && pos + len < s.size() && s[pos + len] == secret[len]) ++len;
        s.replace(pos, len, mark);
    }
}

/// Length of the well-formed UTF-8 sequence starting at s[i], or 0 when it is not one.
inline std::size_t utf8_length(std::string_view s, std::size_t i) noexcept {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) return 1;
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if ((c & 0xE0u) == 0xC0u) { n = 2; cp = c & 0x1Fu; }
    else if ((c & 0xF0u) == 0xE0u) { n = 3; cp = c & 0x0Fu; }
    else if ((c & 0xF8u) == 0xF0u) { n = 4; cp = c & 0x07u; }
    else return 0;
    if (i + n > s.size()) return 0;
    for (std::size_t k = 1; k < n; ++k) {
        const auto d = static_cast<unsigned char>(s[i + k]);
        if ((d & 0xC0u) != 0x80u) return 0;
        cp = (cp << 6) | (d & 0x3Fu);
    }
    const bool overlong = (n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000);
    if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

/// Provider text made safe for a Failure message and a log line: every
/// occurrence of `secret` becomes "[redacted]", control characters go (line
/// breaks and tabs become one space), invalid UTF-8 becomes '?', and the result
/// is cut to `max_bytes` at a code-point boundary with "..." appended.
inline std::string clean_message(std::string_view text, std::string_view secret,
                                 std::size_t max_bytes = max_message_bytes) {
    std::string s(text);
    redact(s, secret);
    std::string out;
    out.reserve(std::min(s.size(), max_bytes + 16));
    bool space = false;
    for (std::size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            space = !out.empty();
            ++i;
            continue;
        }
        if (c < 0x20 || c == 0x7F) {
            ++i;
            continue;
        }
        const std::size_t n = utf8_length(s, i);
        if (n == 2 && c == 0xC2 && static_cast<unsigned char>(s[i + 1]) < 0xA0) {  // C1 controls
            i += 2;
            continue;
        }
        if (space) out += ' ';
        space = false;
        if (n == 0) {
            out += '?';
            ++i;
        } else {
            out.append(s, i, n);
            i += n;
        }
    }
    // Dropping a control character can join the halves of a secret: redact again.
    redact(out, secret);
    if (out.size() > max_bytes) {
        std::size_t cut = max_bytes;
        while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0u) == 0x80u) --cut;
        out.resize(cut);
        while (!out.empty() && out.back() == ' ') out.pop_back();
        out += "...";
    }
    return out;
}

// ----------------------------------------------------------------- durations

/// Parses a duration such as "20s", "1.5s", "6m0s", "120ms" or "1h2m" at the
/// start of `s` (the forms OpenAI's rate-limit messages and Google's
/// RetryInfo use). `used` receives the number of characters consumed.
inline std::optional<std::chrono::milliseconds> parse_duration_prefix(std::string_view s, std::size_t& used) noexcept {
    double total_ms = 0;
    std::size_t i = 0;
    bool any = false;
    auto digit = [&](std::size_t k) { return k < s.size() && s[k] >= '0' && s[k] <= '9'; };
    while (i < s.size()) {
        const std::size_t start = i;
        double v = 0;
        bool digits = false;
        while (digit(i)) {
            v = v * 10 + (s[i] - '0');
            digits = true;
            ++i;
        }
        if (i < s.size() && s[i] == '.') {
            ++i;
            double scale = 0.1;
            while (digit(i)) {
                v += (s[i] - '0') * scale;
                scale /= 10;
                digits = true;
                ++i;
            }
        }
        double unit = 0;
        if (digits && i < s.size()) {
            if (s.substr(i, 2) == "ms") { unit = 1; i += 2; }
            else if (s[i] == 'h') { unit = 3600000; ++i; }
            else if (s[i] == 'm') { unit = 60000; ++i; }
            else if (s[i] == 's') { unit = 1000; ++i; }
        }
        if (unit == 0) {
            i = start;
            break;
        }
        total_ms = std::min(total_ms + v * unit, 1.0e13);
        any = true;
    }
    if (!any) return std::nullopt;
    used = i;
    return std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(total_ms)));
}

/// A google.protobuf.Duration in its JSON form ("36s", "0.5s"); nullopt otherwise.
inline std::optional<std::chrono::milliseconds> parse_google_duration(std::string_view s) noexcept {
    std::size_t used = 0;
    auto d = parse_duration_prefix(s, used);
    if (s.empty() || !d || used != s.size() || s.back() != 's') return std::nullopt;
    return d;
}

/// The wait a rate-limit message asks for: "Please try again in 6m0s." (OpenAI)
/// or "Please retry after 37 seconds." (Azure). nullopt when it names none.
inline std::optional<std::chrono::milliseconds> wait_hint(std::string_view message) noexcept {
    if (auto p = ifind(message, "try again in "); p != std::string_view::npos) {
        std::size_t used = 0;
        if (auto d = parse_duration_prefix(message.substr(p + 13), used)) return d;
    }
    if (auto p = ifind(message, "retry after "); p != std::string_view::npos) {
        std::string_view rest = message.substr(p + 12);
        std::size_t i = 0;
        std::int64_t seconds = 0;
        while (i < rest.size() && rest[i] >= '0' && rest[i] <= '9' && seconds < 100000000) {
            seconds = seconds * 10 + (rest[i] - '0');
            ++i;
        }
        if (i > 0) {
            while (i < rest.size() && rest[i] == ' ') ++i;
            if (ifind(rest.substr(i, 6), "second") == 0) return std::chrono::seconds(seconds);
        }
    }
    return std::nullopt;
}

// ------------------------------------------------------------ classification

/// The error fields of a parsed body, whatever the provider's envelope (the classifier's reader).
inline classifier::ErrorFields read_error(const json& body) { return classifier::error_fields(body); }

/// Sets kind and reason together.
inline void reclassify(Failure& f, FailureKind kind, Reason reason) noexcept {
    f.kind = kind;
    f.reason = reason;
}

/// Names of the categories a filter result object marks `"filtered": true`
/// (Azure's content_filter_result(s)), comma-separated in key order.
inline std::string filtered_categories(const json* results) {
    std::string out;
    if (results == nullptr || !results->is_object()) return out;
    for (const auto& [name, value] : results->items()) {
        if (!flag_at(&value, "filtered")) continue;
        if (!out.empty()) out += ',';
        out += name;
    }
    return clean_message(out, {}, 120);
}

/// The answer of a structured-output request: parsed JSON, or why not.
/// Cut off by the token limit -> malformed_response (retrying may help);
/// complete but not JSON -> schema_invalid (the router runs a repair turn).
inline Result<json> parse_answer(const std::string& text, bool truncated, std::string_view provider,
                                 std::string_view secret) {
    json j = parse_json(text);
    if (!j.is_discarded()) return j;
    if (truncated)
        return Failure::of(Reason::malformed_response,
                           std::string(provider) +
                               ": structured output truncated at the output token limit; the JSON is incomplete");
    return Failure::of(Reason::schema_invalid,
                       std::string(provider) + ": the answer is not JSON: " + clean_message(text, secret, 120));
}

/// A malformed_response naming the provider.
inline Failure malformed(std::string_view provider, std::string_view why) {
    return Failure::of(Reason::malformed_response, std::string(provider) + ": " + std::string(why));
}

/// A bad_request naming the provider (a request this adapter cannot express).
inline Failure unsendable(std::string_view provider, std::string_view why) {
    return Failure::of(Reason::bad_request, std::string(provider) + ": " + std::string(why));
}

/// Checks a structured-output or tool name: [A-Za-z0-9_-], 1 to 64 characters.
inline bool valid_function_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > 64) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    });
}

/// A tool-call id for a call the provider gave none: "call_" and 16 hex digits of a
/// hash of the response body, the call's position, name and arguments. Stable (the same
/// answer gives the same ids), unique within an answer, and of the characters every
/// provider accepts ([A-Za-z0-9_]).
inline std::string mint_call_id(std::string_view body, std::size_t index, std::string_view name, const json& args) {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    const auto mix = [&h](std::string_view bytes) {
        for (char c : bytes) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
        h ^= h >> 29;
    };
    mix(body);
    mix(std::to_string(index));
    mix(name);
    mix(args.dump(-1, ' ', false, json::error_handler_t::replace));
    static constexpr char digits[] = "0123456789abcdef";
    std::string id = "call_";
    for (int shift = 60; shift >= 0; shift -= 4) id += digits[(h >> shift) & 0xFu];
    return id;
}

/// Whether the tool call with this id in the history before message `before` had its id
/// minted (so it is not sent back to the provider that gave none).
inline bool minted_call(const ChatRequest& request, std::size_t before, const std::string& id) {
    for (std::size_t i = before; i-- > 0;)
        for (const ToolCall& c : request.messages[i].tool_calls)
            if (c.id == id) return c.minted_id;
    return false;
}

/// The tool name of the call a result answers, from an earlier assistant turn ("" if none).
inline std::string name_of_call(const ChatRequest& request, std::size_t before, const std::string& id) {
    if (id.empty()) return {};
    for (std::size_t i = before; i-- > 0;)
        for (const ToolCall& c : request.messages[i].tool_calls)
            if (c.id == id) return c.name;
    return {};
}

// ------------------------------------------------------------- configuration

/// Throws std::invalid_argument("failover: <adapter>: <what>").
[[noreturn]] inline void config_error(std::string_view adapter, std::string_view what) {
    throw std::invalid_argument("failover: " + std::string(adapter) + ": " + std::string(what));
}

/// A value quoted for a configuration error, cleaned and with the secret redacted.
inline std::string quote_value(std::string_view value, std::string_view secret) {
    return "'" + clean_message(value, secret, 200) + "'";
}

/// Checks a base URL (http:// or https://, a host, no query, fragment, space
/// or control character) and returns it without trailing slashes.
inline std::string check_base_url(const std::string& original, std::string_view adapter, std::string_view field,
                                  std::string_view secret) {
    std::string url = original;
    while (!url.empty() && url.back() == '/') url.pop_back();
    const std::string_view u = url;
    std::size_t host = 0;
    if (ifind(u, "https://") == 0) host = 8;
    else if (ifind(u, "http://") == 0) host = 7;
    const bool bad_char = std::any_of(u.begin(), u.end(), [](char c) {
        return static_cast<unsigned char>(c) <= 0x20 || c == 0x7F || c == '?' || c == '#';
    });
    if (host == 0 || host >= u.size() || u[host] == '/' || bad_char)
        config_error(adapter, std::string(field) + " " + quote_value(original, secret) +
                                  " is not an http(s) URL (expected http://host[:port][/path])");
    return url;
}

/// Checks a path segment (model, deployment, resource): letters, digits, and `extra`.
inline void check_segment(std::string_view value, std::string_view adapter, std::string_view field,
                          std::string_view extra) {
    if (value.empty()) config_error(adapter, std::string(field) + " must not be empty");
    const bool ok = std::all_of(value.begin(), value.end(), [&](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               extra.find(c) != std::string_view::npos;
    });
    if (!ok)
        config_error(adapter, std::string(field) + " " + quote_value(value, {}) + " may only contain letters, digits and '" +
                                  std::string(extra) + "'");
}

/// Checks that a header name is an HTTP token and its value has no line break,
/// so no option can inject a header. Values are never printed: they may be keys.
inline void check_header(std::string_view name, std::string_view value, std::string_view adapter,
                         std::string_view field) {
    const bool name_ok = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    });
    if (!name_ok) config_error(adapter, std::string(field) + ": header name " + quote_value(name, {}) + " is not a token");
    if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos)
        config_error(adapter, std::string(field) + ": the value of header " + quote_value(name, {}) +
                                  " contains a line break or NUL");
}

/// Sets a header, replacing one of the same name (any case) if present.
inline void put_header(Headers& headers, std::string_view name, std::string value) {
    for (auto& [k, v] : headers) {
        if (iequals(k, name)) {
            v = std::move(value);
            return;
        }
    }
    headers.emplace_back(std::string(name), std::move(value));
}

/// The base URL to use: the option, else the environment variable, else the official URL; checked.
inline std::string resolve_base_url(const std::string& option, const char* env_var, std::string_view official,
                                    std::string_view adapter, std::string_view secret) {
    if (!option.empty()) return check_base_url(option, adapter, "base_url", secret);
    const char* from_env = std::getenv(env_var);  // NOLINT(concurrency-mt-unsafe): read once at construction
    if (from_env != nullptr && *from_env != '\0')
        return check_base_url(from_env, adapter, std::string("base_url (from ") + env_var + ")", secret);
    return std::string(official);
}

/// Checks an optional output limit: when set it must be positive.
inline void check_max_tokens(std::optional<int> value, std::string_view adapter) {
    if (value && *value <= 0)
        config_error(adapter, "max_tokens must be positive, got " + std::to_string(*value));
}

/// Checks common request knobs every adapter sends. nullopt when they are sendable.
inline std::optional<Failure> check_request_knobs(std::optional<int> max_tokens, std::optional<double> temperature,
                                                  bool has_messages, std::string_view provider) {
    if (!has_messages) return unsendable(provider, "the request has no messages");
    if (max_tokens && *max_tokens <= 0)
        return unsendable(provider, "max_tokens must be positive, got " + std::to_string(*max_tokens));
    if (temperature && !std::isfinite(*temperature))
        return unsendable(provider, "temperature must be a finite number");
    return std::nullopt;
}

/// Describes a non-JSON error body (an HTML gateway page, say) in the message:
/// the status and a cleaned, short excerpt, which is all the provider said.
inline void note_raw_body(const HttpResponse& res, Failure& f, std::string_view provider, std::string_view secret) {
    f.message = std::string(provider) + ": HTTP " + std::to_string(res.status);
    if (res.body.empty()) f.message += " with an empty body";
    else f.message += ", body is not JSON: " + clean_message(res.body, secret, 200);
}

/// Headers every JSON API request carries, before the auth header and extras.
inline Headers json_headers() { return Headers{{"Content-Type", "application/json"}}; }

/// Appends user extras (validated; they replace defaults of the same name).
inline void add_extra_headers(Headers& headers, const Headers& extras, std::string_view adapter) {
    for (const auto& [name, value] : extras) {
        check_header(name, value, adapter, "extra_headers");
        put_header(headers, name, value);
    }
}

/// "" when `key` is set; otherwise what is missing and where it was expected, for the
/// Route's construction error (never a key: there is none).
inline std::string missing_key(const Secret& key, std::string_view adapter, std::string_view usual_variable) {
    if (!key.empty()) return {};
    if (!key.source().empty())
        return std::string(adapter) + " needs an API key, but " + key.source() + " is not set or is empty";
    return std::string(adapter) + " needs an API key, but api_key is empty (for example .api_key = failover::env(\"" +
           std::string(usual_variable) + "\"))";
}

/// Checks that a key has no line break (it goes into a header) without ever printing it.
inline void check_key(std::string_view key, std::string_view adapter) {
    if (key.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos)
        config_error(adapter, "api_key contains a line break or NUL");
}

}  // namespace detail::wire
FAILOVER_END_NAMESPACE
