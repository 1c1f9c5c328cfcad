// SPDX-License-Identifier: MIT
// URI references for `$id` and `$ref` (RFC 3986): splitting into components,
// resolution against a base (section 5.2, dot segments removed), recomposition;
// percent-decoding; JSON pointers (RFC 6901) parsed from a fragment; and the
// grammar checks behind the uri, uri-reference, iri and iri-reference formats
// (RFC 3986 and, for IRIs, RFC 3987's non-ASCII characters). Bases without a
// hierarchy (urn:, tag:, ...) resolve as the RFC says: a fragment-only
// reference keeps the base, anything else merges paths textually.
// Everything is a single forward pass over the text; nothing recurses.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "failover/detail/schema/values.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

namespace detail::schema {

/// The five components of a URI reference; `has_*` tell an empty component from an absent one.
struct UriRef {
    bool has_scheme = false, has_authority = false, has_query = false, has_fragment = false;
    std::string scheme, authority, path, query, fragment;

    /// Splits a reference as RFC 3986 appendix B does (never fails).
    static UriRef split(std::string_view s) {
        UriRef r;
        std::size_t i = 0;
        const std::size_t colon = s.find_first_of(":/?#");
        if (colon != std::string_view::npos && s[colon] == ':' && colon > 0) {
            r.has_scheme = true;
            r.scheme = std::string(s.substr(0, colon));
            i = colon + 1;
        }
        if (s.substr(i, 2) == "//") {
            r.has_authority = true;
            const std::size_t end = s.find_first_of("/?#", i + 2);
            r.authority = std::string(s.substr(i + 2, end == std::string_view::npos ? std::string_view::npos : end - i - 2));
            i = end == std::string_view::npos ? s.size() : end;
        }
        const std::size_t path_end = s.find_first_of("?#", i);
        r.path = std::string(s.substr(i, path_end == std::string_view::npos ? std::string_view::npos : path_end - i));
        i = path_end == std::string_view::npos ? s.size() : path_end;
        if (i < s.size() && s[i] == '?') {
            r.has_query = true;
            const std::size_t end = s.find('#', i);
            r.query = std::string(s.substr(i + 1, end == std::string_view::npos ? std::string_view::npos : end - i - 1));
            i = end == std::string_view::npos ? s.size() : end;
        }
        if (i < s.size() && s[i] == '#') {
            r.has_fragment = true;
            r.fragment = std::string(s.substr(i + 1));
        }
        return r;
    }

    /// Recomposes the reference (RFC 3986 section 5.3).
    std::string str(bool with_fragment = true) const {
        std::string out;
        if (has_scheme) out += scheme + ":";
        if (has_authority) out += "//" + authority;
        out += path;
        if (has_query) out += "?" + query;
        if (with_fragment && has_fragment) out += "#" + fragment;
        return out;
    }
};

/// RFC 3986 section 5.2.4.
inline std::string remove_dot_segments(std::string_view in) {
    std::string out;
    while (!in.empty()) {
        if (in.substr(0, 3) == "../") in.remove_prefix(3);
        else if (in.substr(0, 2) == "./") in.remove_prefix(2);
        else if (in.substr(0, 3) == "/./") in.remove_prefix(2);
        else if (in == "/.") in = "/";
        else if (in.substr(0, 4) == "/../" || in == "/..") {
            in = in.size() == 3 ? std::string_view("/") : in.substr(3);
            const std::size_t slash = out.rfind('/');
            out.erase(slash == std::string::npos ? 0 : slash);
        } else if (in == "." || in == "..") {
            in = {};
        } else {
            const std::size_t next = in.find('/', 1);
            const std::size_t n = next == std::string_view::npos ? in.size() : next;
            out.append(in.substr(0, n));
            in.remove_prefix(n);
        }
    }
    return out;
}

/// Resolves `ref` against the absolute URI `base` (RFC 3986 section 5.2.2).
inline UriRef resolve(const UriRef& base, const UriRef& ref) {
    UriRef t;
    if (ref.has_scheme) {
        t = ref;
        t.path = remove_dot_segments(ref.path);
        return t;
    }
    t.has_scheme = base.has_scheme;
    t.scheme = base.scheme;
    t.has_fragment = ref.has_fragment;
    t.fragment = ref.fragment;
    if (ref.has_authority) {
        t.has_authority = true;
        t.authority = ref.authority;
        t.path = remove_dot_segments(ref.path);
        t.has_query = ref.has_query;
        t.query = ref.query;
        return t;
    }
    t.has_authority = base.has_authority;
    t.authority = base.authority;
    if (ref.path.empty()) {
        t.path = base.path;
        t.has_query = ref.has_query || base.has_query;
        t.query = ref.has_query ? ref.query : base.query;
        return t;
    }
    if (ref.path.front() == '/') {
        t.path = remove_dot_segments(ref.path);
    } else {
        std::string merged;
        if (base.has_authority && base.path.empty()) {
            merged = "/" + ref.path;
        } else {
            const std::size_t slash = base.path.rfind('/');
            merged = (slash == std::string::npos ? std::string() : base.path.substr(0, slash + 1)) + ref.path;
        }
        t.path = remove_dot_segments(merged);
    }
    t.has_query = ref.has_query;
    t.query = ref.query;
    return t;
}

/// `ref` resolved against `base`, as text.
inline std::string resolve(std::string_view base, std::string_view ref) {
    return resolve(UriRef::split(base), UriRef::split(ref)).str();
}

/// Decodes %XX escapes; nullopt when a '%' is not followed by two hex digits.
inline std::optional<std::string> percent_decode(std::string_view s) {
    const auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        if (i + 2 >= s.size()) return std::nullopt;
        const int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

/// The reference tokens of a JSON pointer ("" is the whole document); nullopt
/// when it does not start with '/' or has a '~' not followed by 0 or 1.
inline std::optional<std::vector<std::string>> pointer_tokens(std::string_view p) {
    std::vector<std::string> tokens;
    if (p.empty()) return tokens;
    if (p.front() != '/') return std::nullopt;
    std::string cur;
    for (std::size_t i = 1; i <= p.size(); ++i) {
        if (i == p.size() || p[i] == '/') {
            tokens.push_back(std::move(cur));
            cur.clear();
            continue;
        }
        if (p[i] == '~') {
            if (i + 1 >= p.size() || (p[i + 1] != '0' && p[i + 1] != '1')) return std::nullopt;
            cur += p[i + 1] == '0' ? '~' : '/';
            ++i;
        } else {
            cur += p[i];
        }
    }
    return tokens;
}

namespace uri_grammar {

inline bool alpha(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
inline bool digit(char c) noexcept { return c >= '0' && c <= '9'; }
inline bool hexdig(char c) noexcept { return digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
inline bool unreserved(char c) noexcept { return alpha(c) || digit(c) || c == '-' || c == '.' || c == '_' || c == '~'; }
inline bool sub_delim(char c) noexcept {
    switch (c) {
        case '!': case '$': case '&': case '\'': case '(': case ')': case '*': case '+': case ',': case ';': case '=':
            return true;
        default:
            return false;
    }
}

// True when every character of s is `allowed`, a valid %XX, or (iri) a non-ASCII code point.
template <class Allowed>
bool chars_ok(std::string_view s, bool iri, Allowed allowed) {
    for (std::size_t i = 0; i < s.size();) {
        const char c = s[i];
        if (c == '%') {
            if (i + 2 >= s.size() || !hexdig(s[i + 1]) || !hexdig(s[i + 2])) return false;
            i += 3;
        } else if (static_cast<unsigned char>(c) >= 0x80) {
            if (!iri) return false;
            const long cp = decode_utf8(s, i);
            if (cp < 0xA0) return false;
        } else {
            if (!allowed(c)) return false;
            ++i;
        }
    }
    return true;
}

inline bool pchar(char c) noexcept { return unreserved(c) || sub_delim(c) || c == ':' || c == '@'; }

inline bool is_ipv4(std::string_view s) noexcept {
    int parts = 0;
    std::size_t i = 0;
    while (true) {
        std::size_t start = i;
        int v = 0;
        while (i < s.size() && digit(s[i]) && i - start < 3) v = v * 10 + (s[i++] - '0');
        const std::size_t len = i - start;
        if (len == 0 || v > 255 || (len > 1 && s[start] == '0')) return false;
        ++parts;
        if (i == s.size()) break;
        if (s[i] != '.' || parts == 4) return false;
        ++i;
    }
    return parts == 4;
}

inline bool is_ipv6(std::string_view s) noexcept {
    if (s.empty()) return false;
    int groups = 0;
    bool elided = false;
    std::size_t i = 0;
    if (s.substr(0, 2) == "::") {
        elided = true;
        i = 2;
        if (i == s.size()) return true;
    } else if (s.front() == ':') {
        return false;
    }
    while (i < s.size()) {
        // An IPv4 tail (two groups' worth) ends the address.
        const std::size_t next_colon = s.find(':', i);
        const std::string_view piece = s.substr(i, next_colon == std::string_view::npos ? std::string_view::npos : next_colon - i);
        if (next_colon == std::string_view::npos && piece.find('.') != std::string_view::npos) {
            if (!is_ipv4(piece)) return false;
            groups += 2;
            i = s.size();
            break;
        }
        if (piece.empty() || piece.size() > 4) return false;
        for (const char c : piece)
            if (!hexdig(c)) return false;
        ++groups;
        i += piece.size();
        if (i == s.size()) break;
        // at a ':'
        if (i + 1 < s.size() && s[i + 1] == ':') {
            if (elided) return false;
            elided = true;
            i += 2;
            if (i == s.size()) break;
        } else {
            ++i;
            if (i == s.size()) return false;  // trailing single ':'
        }
    }
    return elided ? groups <= 7 : groups == 8;
}

inline bool authority_ok(std::string_view a, bool iri) {
    const std::size_t at = a.find('@');
    if (at != std::string_view::npos) {
        if (!chars_ok(a.substr(0, at), iri, [](char c) { return unreserved(c) || sub_delim(c) || c == ':'; }))
            return false;
        a.remove_prefix(at + 1);
    }
    std::string_view port;
    if (!a.empty() && a.front() == '[') {
        const std::size_t close = a.find(']');
        if (close == std::string_view::npos) return false;
        const std::string_view lit = a.substr(1, close - 1);
        if (!lit.empty() && (lit.front() == 'v' || lit.front() == 'V')) {
            const std::size_t dot = lit.find('.');
            if (dot == std::string_view::npos || dot < 2 || dot + 1 >= lit.size()) return false;
            for (std::size_t k = 1; k < dot; ++k)
                if (!hexdig(lit[k])) return false;
            for (std::size_t k = dot + 1; k < lit.size(); ++k)
                if (!unreserved(lit[k]) && !sub_delim(lit[k]) && lit[k] != ':') return false;
        } else if (!is_ipv6(lit)) {
            return false;
        }
        a.remove_prefix(close + 1);
        if (!a.empty()) {
            if (a.front() != ':') return false;
            port = a.substr(1);
        }
    } else {
        const std::size_t colon = a.find(':');
        if (colon != std::string_view::npos) {
            port = a.substr(colon + 1);
            a = a.substr(0, colon);
        }
        if (!chars_ok(a, iri, [](char c) { return unreserved(c) || sub_delim(c); })) return false;
    }
    for (const char c : port)
        if (!digit(c)) return false;
    return true;
}

}  // namespace uri_grammar

/// RFC 3986 (or, with iri, RFC 3987) syntax: a URI when `absolute`, else a URI reference.
inline bool is_uri(std::string_view s, bool absolute, bool iri) {
    using namespace uri_grammar;
    const UriRef r = UriRef::split(s);
    if (r.has_scheme) {
        if (!alpha(r.scheme.front())) return false;
        for (const char c : r.scheme)
            if (!alpha(c) && !digit(c) && c != '+' && c != '-' && c != '.') return false;
    } else if (absolute) {
        return false;
    }
    if (r.has_authority) {
        if (!authority_ok(r.authority, iri)) return false;
        if (!r.path.empty() && r.path.front() != '/') return false;
    } else if (r.path.substr(0, 2) == "//") {
        return false;
    }
    if (!r.has_scheme && !r.has_authority) {
        // path-noscheme: no ':' in the first segment
        const std::size_t slash = r.path.find('/');
        if (r.path.substr(0, slash).find(':') != std::string::npos) return false;
    }
    const auto path_char = [](char c) { return pchar(c) || c == '/'; };
    const auto query_char = [](char c) { return pchar(c) || c == '/' || c == '?'; };
    return chars_ok(r.path, iri, path_char) && chars_ok(r.query, iri, query_char) &&
           chars_ok(r.fragment, iri, query_char);
}

}  // namespace detail::schema

FAILOVER_END_NAMESPACE
