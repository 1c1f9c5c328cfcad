// SPDX-License-Identifier: MIT
// The request bodies' serializer: writes a nlohmann::json value as the exact
// bytes json::dump() gives (compact, keys in the object's order, UTF-8 kept as
// it is, control characters, '"' and '\\' escaped the same way, \u00xx in lower
// case), without dump()'s byte-at-a-time UTF-8 state machine: runs of plain
// ASCII are found eight bytes at a time and appended in one piece. A request
// body is mostly prompt text, so this is most of the cost of encoding one.
// Floating-point numbers go through nlohmann::json's own float writer, and
// anything that is not JSON text (binary, discarded) through dump(), so their
// spelling cannot differ. Text that is not well-formed UTF-8 is refused where
// dump() refuses it (it throws type_error 316): json_write returns false.
//
// tests/test_adapters.cpp compares it with dump() on edge cases and generated
// documents; the schema fuzzer compares the two on every input.
#pragma once

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "failover/detail/utf8.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE
namespace detail {

namespace json_write_detail {

/// Appends `s` as a JSON string (quotes included); false when it is not well-formed UTF-8.
inline bool string(std::string& out, const std::string& s) {
    static constexpr char hex[] = "0123456789abcdef";
    out += '"';
    const char* p = s.data();
    const std::size_t n = s.size();
    std::size_t i = 0;
    while (i < n) {
        const std::size_t j = json_plain_end(p, i, n);  // the plain run ahead, copied whole
        out.append(p + i, j - i);
        i = j;
        if (i == n) break;
        const auto c = static_cast<unsigned char>(p[i]);
        if (c >= 0x80) {
            const std::size_t len = utf8_length(p + i, n - i);
            if (len == 0) return false;
            out.append(p + i, len);
            i += len;
            continue;
        }
        out += '\\';
        switch (c) {
            case '"': out += '"'; break;
            case '\\': out += '\\'; break;
            case '\b': out += 'b'; break;
            case '\t': out += 't'; break;
            case '\n': out += 'n'; break;
            case '\f': out += 'f'; break;
            case '\r': out += 'r'; break;
            default: {
                const char u[5] = {'u', '0', '0', hex[c >> 4], hex[c & 0xF]};
                out.append(u, 5);
            }
        }
        ++i;
    }
    out += '"';
    return true;
}

inline bool value(std::string& out, const nlohmann::json& v) {
    using value_t = nlohmann::json::value_t;
    switch (v.type()) {
        case value_t::null: out += "null"; return true;
        case value_t::boolean: out += v.get<bool>() ? "true" : "false"; return true;
        case value_t::string: return string(out, v.get_ref<const std::string&>());
        case value_t::number_integer:
        case value_t::number_unsigned: {
            char digits[24];
            const auto r = v.type() == value_t::number_integer
                               ? std::to_chars(digits, digits + sizeof digits, v.get<std::int64_t>())
                               : std::to_chars(digits, digits + sizeof digits, v.get<std::uint64_t>());
            out.append(digits, r.ptr);
            return true;
        }
        case value_t::array: {
            out += '[';
            bool first = true;
            for (const nlohmann::json& e : v) {
                if (!first) out += ',';
                first = false;
                if (!value(out, e)) return false;
            }
            out += ']';
            return true;
        }
        case value_t::object: {
            out += '{';
            bool first = true;
            for (auto it = v.begin(); it != v.end(); ++it) {
                if (!first) out += ',';
                first = false;
                if (!string(out, it.key())) return false;
                out += ':';
                if (!value(out, it.value())) return false;
            }
            out += '}';
            return true;
        }
        case value_t::number_float: {
            // dump()'s own float writer (grisu2, shortest round trip; "null" for NaN and
            // infinity), called directly: dump() would build a serializer for one number.
            const double x = v.get<double>();
            if (!std::isfinite(x)) {
                out += "null";
                return true;
            }
            char digits[64];
            out.append(digits, nlohmann::detail::to_chars(digits, digits + sizeof digits, x));
            return true;
        }
        default:  // binary, discarded: nlohmann's own spelling
            out += v.dump();
            return true;
    }
}

}  // namespace json_write_detail

/// Appends `v` to `out` as v.dump() would write it; false (with `out` partly written) when a
/// string in it is not well-formed UTF-8, where dump() throws.
inline bool json_write(const nlohmann::json& v, std::string& out) { return json_write_detail::value(out, v); }

}  // namespace detail
FAILOVER_END_NAMESPACE
