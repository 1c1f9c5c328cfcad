// SPDX-License-Identifier: MIT
// The reading half of the chain config loader (chain_config.hpp): a cursor over
// an untrusted JSON document that knows the JSON pointer of where it stands, and
// refuses unknown fields, wrong types and out-of-range values with a ConfigError
// naming that pointer. Also the checks the loader and the shipped JSON Schema
// share: what an environment variable name is, and what looks like a key typed
// where a name belongs. Nothing here echoes a value that may be a key.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "failover/env.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// A chain config the loader refuses: the JSON pointer of the offending field (RFC 6901,
/// "" for the document itself) and why. For a document that is not JSON, the line and
/// column (1-based) of the error. The message never holds a value that looks like a key.
class ConfigError : public std::invalid_argument {
public:
    /// `pointer` is "" when the problem is the document as a whole.
    ConfigError(std::string pointer, std::string reason, std::size_t line = 0, std::size_t column = 0)
        : std::invalid_argument(describe(pointer, reason, line, column)),
          pointer_(std::move(pointer)),
          reason_(std::move(reason)),
          line_(line),
          column_(column) {}
    /// JSON pointer of the field ("" for the document itself).
    const std::string& pointer() const noexcept { return pointer_; }
    /// The reason alone.
    const std::string& reason() const noexcept { return reason_; }
    /// For text that is not JSON: 1-based line of the error (0 otherwise).
    std::size_t line() const noexcept { return line_; }
    /// For text that is not JSON: 1-based column of the error (0 otherwise).
    std::size_t column() const noexcept { return column_; }

private:
    static std::string describe(const std::string& pointer, const std::string& reason, std::size_t line,
                                std::size_t column) {
        std::string s = "failover: config: ";
        if (line > 0) s += "line " + std::to_string(line) + ", column " + std::to_string(column) + ": ";
        if (!pointer.empty()) s += "at " + pointer + ": ";
        return s + reason;
    }
    std::string pointer_;
    std::string reason_;
    std::size_t line_ = 0;
    std::size_t column_ = 0;
};

namespace detail::chain {

using nlohmann::json;

/// An environment variable name as the config accepts it: env.hpp's rule, at most 128 bytes.
inline bool is_env_name(std::string_view s) noexcept { return s.size() <= 128 && failover::detail::is_env_name(s); }

/// True for a value that is likely a key typed where a variable's name belongs: env.hpp's
/// provider prefixes, a long string of mixed case and digits (random, not UPPER_SNAKE), or
/// 32+ hex digits. The JSON Schema states the same rule (definitions/env_name).
inline bool key_like(std::string_view s) noexcept {
    if (failover::detail::looks_like_key(s)) return true;
    bool lower = false, upper = false, digit = false, hex_only = true;
    for (const char c : s) {
        lower = lower || (c >= 'a' && c <= 'z');
        upper = upper || (c >= 'A' && c <= 'Z');
        digit = digit || (c >= '0' && c <= '9');
        hex_only = hex_only && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
    }
    if (s.size() >= 20 && lower && upper && digit) return true;
    return s.size() >= 32 && hex_only;
}

/// A header value that carries a credential: a provider key prefix (16+ bytes) or an
/// HTTP auth scheme. Such values belong in headers_env.
inline bool credential_value(std::string_view v) noexcept {
    constexpr std::string_view prefixes[] = {"sk-", "sk_", "AIza", "xai-", "gsk_", "pk-", "rk-", "hf_", "ghp_"};
    for (auto p : prefixes)
        if (v.size() >= 16 && v.substr(0, p.size()) == p) return true;
    return v.substr(0, 7) == "Bearer " || v.substr(0, 6) == "Basic ";
}

/// Header names that carry credentials (compared without case): only through headers_env.
inline bool credential_header(std::string_view name) noexcept {
    constexpr std::string_view names[] = {"authorization", "proxy-authorization", "api-key", "x-api-key",
                                          "x-goog-api-key", "cookie"};
    for (auto n : names) {
        if (n.size() != name.size()) continue;
        bool same = true;
        for (std::size_t i = 0; i < n.size() && same; ++i) {
            char c = name[i];
            if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
            same = c == n[i];
        }
        if (same) return true;
    }
    return false;
}

/// "Authorization" in any case (an Azure Entra token replaces the api-key).
inline bool is_authorization(std::string_view name) noexcept {
    constexpr std::string_view a = "authorization";
    if (name.size() != a.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char c = name[i];
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (c != a[i]) return false;
    }
    return true;
}

/// An HTTP header name (RFC 9110 token).
inline bool is_token(std::string_view s) noexcept {
    if (s.empty() || s.size() > 128) return false;
    for (const char c : s) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                        std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
        if (!ok) return false;
    }
    return true;
}

/// Text of an untrusted value for an error message: cut to 64 bytes, never a key-like string.
inline std::string shown(std::string_view s) {
    if (key_like(s) || credential_value(s)) return "(a value that looks like a key, not shown)";
    std::string out = "\"";
    for (const char c : s.substr(0, 64)) out += (static_cast<unsigned char>(c) < 0x20 || c == '"') ? '?' : c;
    return out + (s.size() > 64 ? "...\"" : "\"");
}

/// The JSON type name used in messages.
inline const char* type_name(const json& j) noexcept {
    switch (j.type()) {
        case json::value_t::null: return "null";
        case json::value_t::boolean: return "a boolean";
        case json::value_t::number_integer:
        case json::value_t::number_unsigned:
        case json::value_t::number_float: return "a number";
        case json::value_t::string: return "a string";
        case json::value_t::array: return "an array";
        case json::value_t::object: return "an object";
        default: return "an unsupported value";
    }
}

/// A number for a message: integers exactly, others with up to 17 significant digits.
inline std::string number_text(const json& j) {
    if (j.is_number_unsigned()) return std::to_string(j.get<std::uint64_t>());
    if (j.is_number_integer()) return std::to_string(j.get<std::int64_t>());
    return j.dump();
}

/// RFC 6901 escaping of one reference token.
inline std::string escape_token(std::string_view key) {
    std::string out;
    for (const char c : key) {
        if (c == '~') out += "~0";
        else if (c == '/') out += "~1";
        else out += c;
    }
    return out;
}

/// A position in the document: the value and its JSON pointer. Every getter refuses a
/// wrong type or range with a ConfigError naming the field's pointer.
class Node {
public:
    Node(const json& j, std::string pointer) : j_(&j), ptr_(std::move(pointer)) {}

    const json& value() const noexcept { return *j_; }
    const std::string& pointer() const noexcept { return ptr_; }

    [[noreturn]] void fail(const std::string& reason) const { throw ConfigError(ptr_, reason); }
    [[noreturn]] void fail_at(std::string_view key, const std::string& reason) const {
        throw ConfigError(ptr_ + "/" + escape_token(key), reason);
    }

    /// Requires an object whose every member is in `known`.
    const Node& object(std::initializer_list<std::string_view> known) const {
        if (!j_->is_object()) fail(std::string("must be an object, got ") + type_name(*j_));
        for (const auto& item : j_->items()) {
            bool found = false;
            for (auto k : known) found = found || k == item.key();
            if (!found) {
                const bool secret = key_like(item.key());
                throw ConfigError(secret ? ptr_ : ptr_ + "/" + escape_token(item.key()),
                                  secret ? "unknown field (a name that looks like a key, not shown)"
                                         : "unknown field \"" + std::string(item.key().substr(0, 64)) + "\"");
            }
        }
        return *this;
    }
    bool has(std::string_view key) const { return j_->is_object() && j_->contains(key); }
    /// The member `key`, which must be present.
    Node at(std::string_view key) const {
        const auto it = j_->find(key);
        if (it == j_->end()) fail_at(key, "missing (required)");
        return Node(*it, ptr_ + "/" + escape_token(key));
    }
    /// The member `key`, if present.
    std::optional<Node> find(std::string_view key) const {
        const auto it = j_->find(key);
        if (it == j_->end()) return std::nullopt;
        return Node(*it, ptr_ + "/" + escape_token(key));
    }
    /// The elements of an array of `min_items`..`max_items` entries.
    std::vector<Node> items(std::size_t min_items, std::size_t max_items) const {
        if (!j_->is_array()) fail(std::string("must be an array, got ") + type_name(*j_));
        if (j_->size() < min_items) fail("must hold at least " + std::to_string(min_items) + " item(s)");
        if (j_->size() > max_items) fail("must hold at most " + std::to_string(max_items) + " items");
        std::vector<Node> out;
        out.reserve(j_->size());
        for (std::size_t i = 0; i < j_->size(); ++i) out.emplace_back((*j_)[i], ptr_ + "/" + std::to_string(i));
        return out;
    }
    /// The members of an object of at most `max_members`, in key order.
    std::vector<std::pair<std::string, Node>> members(std::size_t max_members) const {
        if (!j_->is_object()) fail(std::string("must be an object, got ") + type_name(*j_));
        if (j_->size() > max_members) fail("must hold at most " + std::to_string(max_members) + " members");
        std::vector<std::pair<std::string, Node>> out;
        for (const auto& item : j_->items()) out.emplace_back(item.key(), Node(item.value(), ptr_ + "/" + escape_token(item.key())));
        return out;
    }

    std::string string(std::size_t min_len, std::size_t max_len) const {
        if (!j_->is_string()) fail(std::string("must be a string, got ") + type_name(*j_));
        const auto& s = j_->get_ref<const std::string&>();
        if (s.size() < min_len) fail(min_len == 1 ? "must not be empty" : "must be at least " + std::to_string(min_len) + " bytes");
        if (s.size() > max_len) fail("must be at most " + std::to_string(max_len) + " bytes");
        return s;
    }
    /// One of `choices`.
    std::string choice(std::initializer_list<std::string_view> choices) const {
        if (!j_->is_string()) fail(std::string("must be a string, got ") + type_name(*j_));
        const auto& s = j_->get_ref<const std::string&>();
        std::string list;
        for (auto c : choices) {
            if (c == s) return s;
            list += (list.empty() ? "" : ", ") + std::string(c);
        }
        fail("must be one of " + list + ", got " + shown(s));
    }
    bool boolean() const {
        if (!j_->is_boolean()) fail(std::string("must be true or false, got ") + type_name(*j_));
        return j_->get<bool>();
    }
    /// An integer in [lo, hi]; 3.0 counts as an integer, as in JSON Schema.
    std::int64_t integer(std::int64_t lo, std::int64_t hi) const {
        const std::string range = "must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi);
        if (!j_->is_number()) fail(range + ", got " + type_name(*j_));
        if (j_->is_number_unsigned()) {
            const auto v = j_->get<std::uint64_t>();
            if ((lo > 0 && v < static_cast<std::uint64_t>(lo)) || v > static_cast<std::uint64_t>(hi))
                fail(range + ", got " + number_text(*j_));
            return static_cast<std::int64_t>(v);
        }
        if (j_->is_number_integer()) {
            const auto v = j_->get<std::int64_t>();
            if (v < lo || v > hi) fail(range + ", got " + number_text(*j_));
            return v;
        }
        const double d = j_->get<double>();
        if (!std::isfinite(d) || std::trunc(d) != d) fail(range + ", got " + number_text(*j_));
        if (d < static_cast<double>(lo) || d > static_cast<double>(hi)) fail(range + ", got " + number_text(*j_));
        return static_cast<std::int64_t>(d);
    }
    int int32(int lo, int hi) const { return static_cast<int>(integer(lo, hi)); }
    /// A non-negative integer up to 2^64 - 1 (seeds).
    std::uint64_t uint64() const {
        const char* range = "must be an integer from 0 to 18446744073709551615";
        if (j_->is_number_unsigned()) return j_->get<std::uint64_t>();
        if (j_->is_number_integer()) {
            if (j_->get<std::int64_t>() < 0) fail(std::string(range) + ", got " + number_text(*j_));
            return static_cast<std::uint64_t>(j_->get<std::int64_t>());
        }
        if (j_->is_number_float()) {
            const double d = j_->get<double>();
            if (std::isfinite(d) && std::trunc(d) == d && d >= 0 && d < 18446744073709551616.0) return static_cast<std::uint64_t>(d);
        }
        fail(std::string(range) + ", got " + (j_->is_number() ? number_text(*j_) : type_name(*j_)));
    }
    /// A number in [lo, hi], or (lo, hi] / [lo, hi) / (lo, hi) when the ends are open.
    double number(double lo, double hi, bool open_lo = false, bool open_hi = false) const {
        auto fmt = [](double v) {
            std::string s = nlohmann::json(v).dump();
            if (s.size() > 2 && s.substr(s.size() - 2) == ".0") s.resize(s.size() - 2);
            return s;
        };
        const std::string range = std::string("must be a number in ") + (open_lo ? "(" : "[") + fmt(lo) + ", " + fmt(hi) +
                                  (open_hi ? ")" : "]");
        if (!j_->is_number()) fail(range + ", got " + type_name(*j_));
        const double d = j_->get<double>();
        const bool ok = std::isfinite(d) && (open_lo ? d > lo : d >= lo) && (open_hi ? d < hi : d <= hi);
        if (!ok) fail(range + ", got " + number_text(*j_));
        return d;
    }
    /// A list of distinct non-empty strings.
    std::vector<std::string> string_list(std::size_t max_items, std::size_t max_len) const {
        std::vector<std::string> out;
        for (const Node& n : items(0, max_items)) {
            std::string s = n.string(1, max_len);
            for (const auto& seen : out)
                if (seen == s) n.fail("repeats " + shown(s) + " (items must be unique)");
            out.push_back(std::move(s));
        }
        return out;
    }
    /// The name of an environment variable; a literal key is refused without being echoed.
    std::string env_name() const {
        if (!j_->is_string()) fail(std::string("must be a string (the name of an environment variable), got ") + type_name(*j_));
        const auto& s = j_->get_ref<const std::string&>();
        if (key_like(s))
            fail("this looks like an API key, not the name of an environment variable: put the key in an "
                 "environment variable and name it here (e.g. \"OPENAI_API_KEY\")");
        if (!is_env_name(s))
            fail("must be the name of an environment variable (letters, digits and '_', not starting with a digit, "
                 "at most 128 bytes)");
        return s;
    }

private:
    const json* j_;
    std::string ptr_;
};

/// Nesting depth of a parsed document, without recursion; stops past `limit`.
inline std::size_t doc_depth(const json& doc, std::size_t limit) {
    std::vector<std::pair<const json*, std::size_t>> stack{{&doc, 0}};
    std::size_t deepest = 0;
    while (!stack.empty()) {
        const auto [j, d] = stack.back();
        stack.pop_back();
        if (!j->is_structured()) continue;
        const std::size_t here = d + 1;
        if (here > deepest) deepest = here;
        if (deepest > limit) return deepest;
        for (const auto& child : *j) stack.emplace_back(&child, here);
    }
    return deepest;
}

/// 1-based line and column of byte offset `at` (0-based) in `text`.
inline std::pair<std::size_t, std::size_t> line_column(std::string_view text, std::size_t at) noexcept {
    std::size_t line = 1, column = 1;
    for (std::size_t i = 0; i < at && i < text.size(); ++i) {
        if (text[i] == '\n') {
            ++line;
            column = 1;
        } else {
            ++column;
        }
    }
    return {line, column};
}

}  // namespace detail::chain

FAILOVER_END_NAMESPACE
