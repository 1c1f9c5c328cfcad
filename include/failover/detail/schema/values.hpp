// SPDX-License-Identifier: MIT
// JSON values as the schema validator sees them: nesting depth measured
// without recursion (before anything copies or walks a value recursively),
// equality in the JSON sense (1 == 1.0 exactly, object key order irrelevant),
// a hash consistent with that equality (for uniqueItems and enum), string
// length in code points, RFC 6901 pointer tokens, and quoting of untrusted text
// for messages (cut short, control characters escaped, bad UTF-8 replaced).
// Equality and hashing recurse once per nesting level; callers bound the depth
// first (Schema::max_depth) and pay for every node visited through `work`.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "failover/detail/schema/numbers.hpp"
#include "failover/detail/utf8.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

namespace detail::schema {

/// Nesting depth of arrays and objects (a scalar is 0), without recursion;
/// stops counting once past `limit` and then returns limit + 1.
inline std::size_t depth_of(const nlohmann::json& root, std::size_t limit) {
    if (!root.is_structured()) return 0;
    std::vector<std::pair<const nlohmann::json*, std::size_t>> todo{{&root, 1}};
    std::size_t deepest = 0;
    while (!todo.empty()) {
        const auto [node, depth] = todo.back();
        todo.pop_back();
        if (depth > deepest) deepest = depth;
        if (depth > limit) return limit + 1;
        for (const auto& child : *node)
            if (child.is_structured()) todo.emplace_back(&child, depth + 1);
    }
    return deepest;
}

/// JSON equality: numbers by exact value whatever their kind, objects by key set.
/// Adds the number of nodes visited to `work`.
inline bool json_equal(const nlohmann::json& a, const nlohmann::json& b, std::uint64_t& work) {
    ++work;
    if (a.is_number() && b.is_number()) return compare(Number::of(a), Number::of(b)) == std::partial_ordering::equivalent;
    if (a.type() != b.type()) return false;
    switch (a.type()) {
        case nlohmann::json::value_t::string:
            work += a.get_ref<const std::string&>().size() / 64;
            return a.get_ref<const std::string&>() == b.get_ref<const std::string&>();
        case nlohmann::json::value_t::array: {
            if (a.size() != b.size()) return false;
            for (std::size_t i = 0; i < a.size(); ++i)
                if (!json_equal(a[i], b[i], work)) return false;
            return true;
        }
        case nlohmann::json::value_t::object: {
            if (a.size() != b.size()) return false;
            // Both are std::map: keys come in the same sorted order when the sets agree.
            auto ib = b.begin();
            for (auto ia = a.begin(); ia != a.end(); ++ia, ++ib) {
                if (ia.key() != ib.key()) return false;
                if (!json_equal(ia.value(), ib.value(), work)) return false;
            }
            return true;
        }
        default:
            return a == b;
    }
}

inline std::uint64_t mix64(std::uint64_t k) noexcept {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

inline std::uint64_t hash_combine(std::uint64_t h, std::uint64_t v) noexcept {
    return mix64(h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2)));
}

/// A hash consistent with json_equal (1 and 1.0 hash alike). Adds nodes visited to `work`.
inline std::uint64_t json_hash(const nlohmann::json& j, std::uint64_t& work) {
    ++work;
    switch (j.type()) {
        case nlohmann::json::value_t::null: return 0x6e756c6cULL;
        case nlohmann::json::value_t::boolean: return j.get<bool>() ? 0x74727565ULL : 0x66616c73ULL;
        case nlohmann::json::value_t::number_integer:
            return mix64(static_cast<std::uint64_t>(j.get<std::int64_t>()) ^ 0x1234ULL);
        case nlohmann::json::value_t::number_unsigned: return mix64(j.get<std::uint64_t>() ^ 0x1234ULL);
        case nlohmann::json::value_t::number_float: {
            const double d = j.get<double>();
            if (d != d) return 0x4e614eULL;
            if (std::trunc(d) == d && d >= -9223372036854775808.0 && d < 9223372036854775808.0)
                return mix64(static_cast<std::uint64_t>(static_cast<std::int64_t>(d)) ^ 0x1234ULL);
            if (std::trunc(d) == d && d >= 0 && d < 18446744073709551616.0)
                return mix64(static_cast<std::uint64_t>(d) ^ 0x1234ULL);
            std::uint64_t bits = 0;
            std::memcpy(&bits, &d, sizeof bits);
            return mix64(bits ^ 0x5678ULL);
        }
        case nlohmann::json::value_t::string: {
            const auto& s = j.get_ref<const std::string&>();
            work += s.size() / 64;
            return mix64(std::hash<std::string_view>{}(s) ^ 0x7374ULL);
        }
        case nlohmann::json::value_t::array: {
            std::uint64_t h = 0x61727279ULL;
            for (const auto& e : j) h = hash_combine(h, json_hash(e, work));
            return h;
        }
        case nlohmann::json::value_t::object: {
            std::uint64_t h = 0x6f626a65ULL;
            for (auto it = j.begin(); it != j.end(); ++it) {
                h = hash_combine(h, std::hash<std::string_view>{}(it.key()));
                h = hash_combine(h, json_hash(it.value(), work));
            }
            return h;
        }
        default:
            return 0x62696eULL;
    }
}

/// Length in Unicode code points (every byte that does not continue a UTF-8 sequence).
inline std::size_t utf8_length(std::string_view s) noexcept {
    std::size_t n = 0;
    for (const char c : s) n += (static_cast<unsigned char>(c) & 0xC0u) != 0x80u;
    return n;
}

/// Decodes one UTF-8 code point at s[i], advancing i; -1 (and one byte) when malformed.
inline long decode_utf8(std::string_view s, std::size_t& i) noexcept {
    const auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) {
        ++i;
        return b0;
    }
    int len = 0;
    long cp = 0;
    if ((b0 & 0xE0) == 0xC0) len = 2, cp = b0 & 0x1F;
    else if ((b0 & 0xF0) == 0xE0) len = 3, cp = b0 & 0x0F;
    else if ((b0 & 0xF8) == 0xF0) len = 4, cp = b0 & 0x07;
    else {
        ++i;
        return -1;
    }
    if (i + static_cast<std::size_t>(len) > s.size()) {
        ++i;
        return -1;
    }
    for (int k = 1; k < len; ++k) {
        const auto b = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
        if ((b & 0xC0) != 0x80) {
            ++i;
            return -1;
        }
        cp = (cp << 6) | (b & 0x3F);
    }
    static constexpr long min_for_len[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_for_len[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        ++i;
        return -1;
    }
    i += static_cast<std::size_t>(len);
    return cp;
}

/// Appends the UTF-8 encoding of code point cp (a code point read by decode_utf8).
inline void append_utf8(std::string& out, long cp) { detail::append_utf8(out, static_cast<std::uint32_t>(cp)); }

/// Untrusted text in double quotes for a message: at most `max_chars` code
/// points, control characters as \u00XX, invalid UTF-8 as U+FFFD.
inline std::string quote(std::string_view s, std::size_t max_chars = 60) {
    std::string out = "\"";
    std::size_t i = 0, n = 0;
    while (i < s.size()) {
        if (n == max_chars) {
            out += "...";
            break;
        }
        const long cp = decode_utf8(s, i);
        ++n;
        if (cp < 0) {
            out += "\xEF\xBF\xBD";
        } else if (cp < 0x20 || cp == 0x7F) {
            static constexpr char hex[] = "0123456789abcdef";
            out += "\\u00";
            out += hex[(cp >> 4) & 0xF];
            out += hex[cp & 0xF];
        } else if (cp == '"' || cp == '\\') {
            out += '\\';
            out += static_cast<char>(cp);
        } else {
            append_utf8(out, cp);
        }
    }
    out += '"';
    return out;
}

/// Appends one RFC 6901 reference token: "/" + key with '~' as "~0" and '/' as "~1".
inline void append_token(std::string& p, std::string_view key) {
    p += '/';
    for (const char c : key) {
        if (c == '~') p += "~0";
        else if (c == '/') p += "~1";
        else p += c;
    }
}

/// "(root)" for the empty pointer, else the pointer itself (for messages).
inline std::string pointer_text(const std::string& p) { return p.empty() ? std::string("(root)") : p; }

}  // namespace detail::schema

FAILOVER_END_NAMESPACE
