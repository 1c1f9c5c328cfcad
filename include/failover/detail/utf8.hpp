// SPDX-License-Identifier: MIT
// UTF-8 encoding of a code point, shared by the schema validator (messages,
// regex translation) and the stream decoders' JSON scanner.
#pragma once

#include <cstdint>
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

}  // namespace detail
FAILOVER_END_NAMESPACE
