// SPDX-License-Identifier: MIT
// The `format` values the validator asserts, and `contentEncoding` /
// `contentMediaType`. Each check is one forward pass over the string (no
// backtracking, no recursion), so its cost is linear in the string's length.
// Asserted: date-time, date, time (RFC 3339; leap second only at 23:59:60
// UTC), email and idn-email (RFC 5321 mailbox; idn- allows UTF-8), hostname
// (RFC 1123), ipv4 (dotted quad, no leading zeros), ipv6 (RFC 4291 text
// forms, no zone), uri, uri-reference, iri, iri-reference (RFC 3986/3987),
// uri-template (RFC 6570 level 4 syntax), json-pointer (RFC 6901),
// relative-json-pointer, regex (what Schema::parse accepts, with a smaller
// program limit since it compiles during validation), uuid
// (RFC 4122 text form). Every other format name (idn-hostname, duration, ...)
// is an annotation: it never fails a value. contentEncoding "base64"
// (RFC 4648 with padding) and contentMediaType "application/json" (after
// decoding, when an encoding is given) are asserted; other encodings and media
// types are annotations.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "failover/detail/schema/regex.hpp"
#include "failover/detail/schema/uri.hpp"
#include "failover/detail/schema/values.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

namespace detail::schema {

/// The formats with an assertion; `none` is every other name (an annotation).
enum class Format : std::uint8_t {
    none,
    date_time,
    date,
    time,
    email,
    idn_email,
    hostname,
    ipv4,
    ipv6,
    uri,
    uri_reference,
    iri,
    iri_reference,
    uri_template,
    json_pointer,
    relative_json_pointer,
    regex,
    uuid,
};

/// The Format a `format` name asserts (none for annotation-only names).
inline Format format_of(std::string_view name) noexcept {
    struct Entry {
        std::string_view name;
        Format format;
    };
    static constexpr Entry table[] = {
        {"date-time", Format::date_time},
        {"date", Format::date},
        {"time", Format::time},
        {"email", Format::email},
        {"idn-email", Format::idn_email},
        {"hostname", Format::hostname},
        {"ipv4", Format::ipv4},
        {"ipv6", Format::ipv6},
        {"uri", Format::uri},
        {"uri-reference", Format::uri_reference},
        {"iri", Format::iri},
        {"iri-reference", Format::iri_reference},
        {"uri-template", Format::uri_template},
        {"json-pointer", Format::json_pointer},
        {"relative-json-pointer", Format::relative_json_pointer},
        {"regex", Format::regex},
        {"uuid", Format::uuid},
    };
    for (const auto& e : table)
        if (e.name == name) return e.format;
    return Format::none;
}

namespace formats {

inline bool digit(char c) noexcept { return c >= '0' && c <= '9'; }

// n ASCII digits at s[i..i+n) as a number, or -1.
inline int digits(std::string_view s, std::size_t i, std::size_t n) noexcept {
    if (i + n > s.size()) return -1;
    int v = 0;
    for (std::size_t k = 0; k < n; ++k) {
        if (!digit(s[i + k])) return -1;
        v = v * 10 + (s[i + k] - '0');
    }
    return v;
}

inline bool is_date(std::string_view s) noexcept {
    if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
    const int y = digits(s, 0, 4), m = digits(s, 5, 2), d = digits(s, 8, 2);
    if (y < 0 || m < 1 || m > 12 || d < 1) return false;
    static constexpr int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= days[m - 1] + (m == 2 && leap ? 1 : 0);
}

// RFC 3339 full-time: HH:MM:SS[.frac](Z|+HH:MM|-HH:MM).
inline bool is_time(std::string_view s) noexcept {
    if (s.size() < 9 || s[2] != ':' || s[5] != ':') return false;
    const int h = digits(s, 0, 2), m = digits(s, 3, 2), sec = digits(s, 6, 2);
    if (h < 0 || h > 23 || m < 0 || m > 59 || sec < 0 || sec > 60) return false;
    std::size_t i = 8;
    if (i < s.size() && s[i] == '.') {
        const std::size_t start = ++i;
        while (i < s.size() && digit(s[i])) ++i;
        if (i == start) return false;
    }
    if (i >= s.size()) return false;
    int offset = 0;  // minutes east of UTC
    if (s[i] == 'Z' || s[i] == 'z') {
        ++i;
    } else if (s[i] == '+' || s[i] == '-') {
        if (s.size() - i != 6 || s[i + 3] != ':') return false;
        const int oh = digits(s, i + 1, 2), om = digits(s, i + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59) return false;
        offset = (s[i] == '+' ? 1 : -1) * (oh * 60 + om);
        i += 6;
    } else {
        return false;
    }
    if (i != s.size()) return false;
    if (sec == 60) {  // a leap second is the last second of a UTC day
        const int utc = ((h * 60 + m - offset) % 1440 + 1440) % 1440;
        if (utc != 23 * 60 + 59) return false;
    }
    return true;
}

inline bool is_date_time(std::string_view s) noexcept {
    return s.size() > 11 && (s[10] == 'T' || s[10] == 't') && is_date(s.substr(0, 10)) && is_time(s.substr(11));
}

inline bool is_hostname(std::string_view s) noexcept {
    if (s.empty() || s.size() > 253) return false;
    std::size_t label = 0;
    for (std::size_t i = 0; i <= s.size(); ++i) {
        if (i == s.size() || s[i] == '.') {
            if (label == 0 || label > 63) return false;
            if (s[i - 1] == '-' || s[i - label] == '-') return false;
            // "--" in the third and fourth positions is reserved (RFC 5891 4.2.3.1) but for A-labels (xn--).
            if (label >= 4 && s[i - label + 2] == '-' && s[i - label + 3] == '-' &&
                !((s[i - label] == 'x' || s[i - label] == 'X') && (s[i - label + 1] == 'n' || s[i - label + 1] == 'N')))
                return false;
            label = 0;
            continue;
        }
        const char c = s[i];
        if (!(uri_grammar::alpha(c) || digit(c) || c == '-')) return false;
        ++label;
    }
    return true;
}

// A hostname whose labels may also hold non-ASCII characters (for idn-email's domain).
inline bool is_idn_domain(std::string_view s) {
    if (s.empty() || s.size() > 1024) return false;
    std::size_t label = 0;
    char prev = '.';
    for (std::size_t i = 0; i <= s.size(); ++i) {
        if (i == s.size() || s[i] == '.') {
            if (label == 0 || prev == '-') return false;
            label = 0;
            prev = '.';
            continue;
        }
        const char c = s[i];
        if (static_cast<unsigned char>(c) >= 0x80) {
            std::size_t j = i;
            if (decode_utf8(s, j) < 0x80) return false;
            i = j - 1;
        } else if (!(uri_grammar::alpha(c) || digit(c) || c == '-') || (c == '-' && label == 0)) {
            return false;
        }
        prev = c;
        ++label;
    }
    return true;
}

inline bool is_email(std::string_view s, bool idn) {
    const std::size_t at = s.rfind('@');
    if (at == std::string_view::npos || at == 0 || at + 1 == s.size()) return false;
    const std::string_view local = s.substr(0, at), domain = s.substr(at + 1);
    if (local.front() == '"') {
        if (local.size() < 2 || local.back() != '"') return false;
        for (std::size_t i = 1; i + 1 < local.size(); ++i) {
            const auto c = static_cast<unsigned char>(local[i]);
            if (c == '\\') {
                if (i + 2 >= local.size() || static_cast<unsigned char>(local[i + 1]) < 32) return false;
                ++i;
            } else if (c == '"' || c < 32 || (c >= 127 && !idn)) {
                return false;
            }
        }
    } else {
        if (local.size() > 64 && !idn) return false;
        char prev = '.';
        for (const char ch : local) {
            const auto c = static_cast<unsigned char>(ch);
            if (ch == '.') {
                if (prev == '.') return false;
            } else if (c >= 0x80) {
                if (!idn) return false;
            } else if (!(uri_grammar::alpha(ch) || digit(ch) || std::string_view("!#$%&'*+-/=?^_`{|}~").find(ch) != std::string_view::npos)) {
                return false;
            }
            prev = ch;
        }
        if (prev == '.') return false;
    }
    if (domain.front() == '[') {
        if (domain.back() != ']') return false;
        const std::string_view lit = domain.substr(1, domain.size() - 2);
        if (lit.substr(0, 5) == "IPv6:") return uri_grammar::is_ipv6(lit.substr(5));
        return uri_grammar::is_ipv4(lit);
    }
    return idn ? is_idn_domain(domain) : is_hostname(domain);
}

inline bool is_json_pointer(std::string_view s) noexcept {
    if (s.empty()) return true;
    if (s.front() != '/') return false;
    for (std::size_t i = 0; i < s.size(); ++i)
        if (s[i] == '~' && (i + 1 >= s.size() || (s[i + 1] != '0' && s[i + 1] != '1'))) return false;
    return true;
}

inline bool is_relative_json_pointer(std::string_view s) noexcept {
    std::size_t i = 0;
    while (i < s.size() && digit(s[i])) ++i;
    if (i == 0 || (i > 1 && s[0] == '0')) return false;
    const std::string_view rest = s.substr(i);
    return rest == "#" || is_json_pointer(rest);
}

inline bool is_uuid(std::string_view s) noexcept {
    if (s.size() != 36) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return false;
        } else if (!uri_grammar::hexdig(s[i])) {
            return false;
        }
    }
    return true;
}

// RFC 6570 URI Template syntax.
inline bool is_uri_template(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const char c = s[i];
        if (c == '{') {
            const std::size_t close = s.find('}', i);
            if (close == std::string_view::npos) return false;
            std::string_view expr = s.substr(i + 1, close - i - 1);
            if (!expr.empty() && std::string_view("+#./;?&=,!@|").find(expr.front()) != std::string_view::npos)
                expr.remove_prefix(1);
            if (expr.empty()) return false;
            std::size_t k = 0;
            while (true) {  // varspec *( "," varspec )
                const std::size_t start = k;
                bool dot_ok = false;
                while (k < expr.size()) {
                    const char v = expr[k];
                    if (uri_grammar::alpha(v) || digit(v) || v == '_') {
                        ++k;
                        dot_ok = true;
                    } else if (v == '%' && k + 2 < expr.size() && uri_grammar::hexdig(expr[k + 1]) &&
                               uri_grammar::hexdig(expr[k + 2])) {
                        k += 3;
                        dot_ok = true;
                    } else if (v == '.' && dot_ok && k + 1 < expr.size()) {
                        ++k;
                        dot_ok = false;
                    } else {
                        break;
                    }
                }
                if (k == start || expr[k - 1] == '.') return false;
                if (k < expr.size() && expr[k] == ':') {
                    const std::size_t ds = ++k;
                    while (k < expr.size() && digit(expr[k]) && k - ds < 4) ++k;
                    if (k == ds || expr[ds] == '0') return false;
                } else if (k < expr.size() && expr[k] == '*') {
                    ++k;
                }
                if (k == expr.size()) break;
                if (expr[k] != ',') return false;
                ++k;
            }
            i = close + 1;
        } else if (c == '}') {
            return false;
        } else if (c == '%') {
            if (i + 2 >= s.size() || !uri_grammar::hexdig(s[i + 1]) || !uri_grammar::hexdig(s[i + 2])) return false;
            i += 3;
        } else {
            const auto u = static_cast<unsigned char>(c);
            if (u < 0x21 || u == 0x7F || c == '"' || c == '<' || c == '>' || c == '\\' || c == '^' || c == '`' ||
                c == '|')
                return false;
            if (u >= 0x80) {
                if (decode_utf8(s, i) < 0xA0) return false;
            } else {
                ++i;
            }
        }
    }
    return true;
}

// RFC 4648 base64 with padding; the decoded bytes go to `out`.
inline bool base64_decode(std::string_view s, std::string& out) {
    if (s.size() % 4 != 0) return false;
    const auto val = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    out.clear();
    out.reserve(s.size() / 4 * 3);
    for (std::size_t i = 0; i < s.size(); i += 4) {
        const bool last = i + 4 == s.size();
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; ++k) {
            const char c = s[i + static_cast<std::size_t>(k)];
            if (c == '=' && last && k >= 2) {
                v[k] = 0;
                ++pad;
            } else if (pad > 0 || (v[k] = val(c)) < 0) {
                return false;
            }
        }
        const unsigned bits = (static_cast<unsigned>(v[0]) << 18) | (static_cast<unsigned>(v[1]) << 12) |
                              (static_cast<unsigned>(v[2]) << 6) | static_cast<unsigned>(v[3]);
        out += static_cast<char>((bits >> 16) & 0xFF);
        if (pad < 2) out += static_cast<char>((bits >> 8) & 0xFF);
        if (pad < 1) out += static_cast<char>(bits & 0xFF);
    }
    return true;
}

}  // namespace formats

/// True when `s` is valid for format `f` (always true for Format::none).
inline bool check_format(Format f, std::string_view s) {
    using namespace formats;
    switch (f) {
        case Format::none: return true;
        case Format::date_time: return is_date_time(s);
        case Format::date: return is_date(s);
        case Format::time: return is_time(s);
        case Format::email: return is_email(s, false);
        case Format::idn_email: return is_email(s, true);
        case Format::hostname: return is_hostname(s);
        case Format::ipv4: return uri_grammar::is_ipv4(s);
        case Format::ipv6: return uri_grammar::is_ipv6(s);
        case Format::uri: return is_uri(s, true, false);
        case Format::uri_reference: return is_uri(s, false, false);
        case Format::iri: return is_uri(s, true, true);
        case Format::iri_reference: return is_uri(s, false, true);
        case Format::uri_template: return is_uri_template(s);
        case Format::json_pointer: return is_json_pointer(s);
        case Format::relative_json_pointer: return is_relative_json_pointer(s);
        case Format::regex: return Regex::valid(s);
        case Format::uuid: return is_uuid(s);
    }
    return true;
}

/// Work steps charged for checking a string of `bytes` bytes against format f.
inline std::uint64_t format_cost(Format f, std::size_t bytes) noexcept {
    if (f == Format::none) return 0;
    // Compiling a regex costs far more per byte than scanning.
    if (f == Format::regex) return 256 + static_cast<std::uint64_t>(bytes) * 4;
    return 1 + bytes / 16;
}

/// contentEncoding values that are asserted.
enum class Encoding : std::uint8_t { none, base64 };

/// Checks contentEncoding / contentMediaType (json_media: the media type is
/// application/json). Returns "" when fine, else what is wrong.
inline std::string check_content(std::string_view s, Encoding enc, bool json_media) {
    std::string decoded;
    std::string_view body = s;
    if (enc == Encoding::base64) {
        if (!formats::base64_decode(s, decoded)) return "not valid base64 (contentEncoding)";
        body = decoded;
    }
    if (json_media && !nlohmann::json::accept(body)) return "not a JSON document (contentMediaType application/json)";
    return {};
}

}  // namespace detail::schema

FAILOVER_END_NAMESPACE
