// SPDX-License-Identifier: MIT
// How deep JSON text nests, counted without parsing, so hostile text never
// reaches a recursive parser: the one check every reader of untrusted JSON uses
// (error bodies, answers, config files, golden cases).
#pragma once

#include <cstddef>
#include <string_view>

#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE
namespace detail {

/// True when no bracket in `text` (outside strings) nests deeper than `limit`.
inline bool json_depth_within(std::string_view text, std::size_t limit) noexcept {
    std::size_t depth = 0;
    bool in_string = false;
    bool escaped = false;
    for (const char c : text) {
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > limit) return false;
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return true;
}

}  // namespace detail
FAILOVER_END_NAMESPACE
