// SPDX-License-Identifier: MIT
// UTF-8 encoding of a code point, shared by the schema validator (messages,
// regex translation) and the stream decoders' JSON scanner; and the one check of
// a well-formed UTF-8 sequence and the scan for the plain bytes of a JSON string,
// shared by that scanner and the request writer (detail/json_write.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE
namespace detail {

/// Appends the UTF-8 encoding of code point `c` (at most U+10FFFF; the caller checks).
inline void append_utf8(std::string& out, std::uint32_t c) {
    if (c < 0x80) {
        out += static_cast<char>(c);
    } else if (c < 0x800) {
        out += static_cast<char>(0xC0 | (c >> 6));
        out += static_cast<char>(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        out += static_cast<char>(0xE0 | (c >> 12));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (c & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (c >> 18));
        out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (c & 0x3F));
    }
}

/// The length of the well-formed UTF-8 sequence at `p` (`left` bytes readable, at least 1;
/// its lead byte is >= 0x80), or 0 when it is not one: Unicode's Table 3-7, so no overlong
/// forms, no surrogates, nothing above U+10FFFF and no sequence cut short. This is what
/// RFC 8259 and nlohmann::json accept.
inline std::size_t utf8_length(const char* p, std::size_t left) noexcept {
    const auto b = [p](std::size_t k) { return static_cast<unsigned char>(p[k]); };
    const unsigned char c = b(0);
    const auto cont = [&](std::size_t k, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
        return k < left && b(k) >= lo && b(k) <= hi;
    };
    if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
    if (c == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
    if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return cont(1) && cont(2) ? 3 : 0;
    if (c == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
    if (c == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
    if (c >= 0xF1 && c <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
    if (c == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
    return 0;
}

/// Where the run of plain JSON string bytes starting at `i` ends in `p[0, n)`: printable ASCII
/// other than '"' and '\\', which a JSON string holds as they are. Eight bytes a step while
/// none of the eight is special (the step may stop early; the byte loop then finishes the run).
inline std::size_t json_plain_end(const char* p, std::size_t i, std::size_t n) noexcept {
    constexpr std::uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    const auto zero_byte = [](std::uint64_t x) { return (x - ones) & ~x & highs; };
    while (n - i >= 8) {
        std::uint64_t w = 0;
        std::memcpy(&w, p + i, 8);
        const std::uint64_t special = zero_byte(w ^ (ones * '"')) | zero_byte(w ^ (ones * '\\')) |
                                      ((w - ones * 0x20) & ~w & highs) | (w & highs);
        if (special != 0) break;
        i += 8;
    }
    while (i < n) {
        const auto c = static_cast<unsigned char>(p[i]);
        if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) break;
        ++i;
    }
    return i;
}

}  // namespace detail
FAILOVER_END_NAMESPACE
