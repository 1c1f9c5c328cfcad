// SPDX-License-Identifier: MIT
// Label hygiene shared by the metric sinks. Route names come from
// configuration, but tenants (and whatever else a caller puts in a request)
// do not: a LabelGuard admits at most `max_values` distinct values per label
// and maps every later newcomer to "__overflow__", so a flood of made-up
// tenants cannot grow the metric set without bound. Values longer than
// `max_length` bytes are cut to a prefix plus '~' and eight hex digits of a
// hash of the whole value, so two long values that share a prefix stay
// distinct. A guard is not synchronised; its owner locks around it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

namespace detail::labels {

/// The label value every value past a guard's limit is counted under.
inline constexpr std::string_view overflow = "__overflow__";

/// Hash that lets unordered containers keyed by std::string be searched with a string_view.
struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

/// 32-bit FNV-1a: stable across runs and platforms, unlike std::hash.
constexpr std::uint32_t fnv1a(std::string_view s) noexcept {
    std::uint32_t h = 2166136261u;
    for (const char c : s) {
        h ^= static_cast<unsigned char>(c);
        h *= 16777619u;
    }
    return h;
}

/// Length of the UTF-8 sequence starting at s[i], 0 if it is not valid there.
inline std::size_t utf8_length(std::string_view s, std::size_t i) noexcept {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
    const unsigned char c = b(0);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07u;
    } else {
        return 0;
    }
    if (i + n > s.size()) return 0;
    for (std::size_t k = 1; k < n; ++k) {
        if ((b(k) & 0xC0u) != 0x80u) return 0;
        cp = (cp << 6) | (b(k) & 0x3Fu);
    }
    // Overlong forms, surrogates and values past U+10FFFF are invalid.
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/// Cuts `s` (already clean) to at most `max_length` bytes at a character
/// boundary, as prefix + '~' + 8 hex digits of the hash of `whole`.
inline void shorten(std::string& s, std::string_view whole, std::size_t max_length) {
    constexpr std::size_t tag = 9;  // '~' + 8 hex digits
    if (s.size() <= max_length) return;
    std::size_t keep = max_length > tag ? max_length - tag : 0;
    while (keep > 0 && (static_cast<unsigned char>(s[keep]) & 0xC0u) == 0x80u) --keep;
    s.resize(keep);
    static constexpr char hex[] = "0123456789abcdef";
    const std::uint32_t h = fnv1a(whole);
    s += '~';
    for (int shift = 28; shift >= 0; shift -= 4) s += hex[(h >> shift) & 0xFu];
    if (s.size() > max_length) s.erase(0, s.size() - max_length);  // max_length < 9: keep the hash's tail
}

/// A Prometheus label value: any valid UTF-8 (escaping happens at exposition);
/// each byte of an invalid sequence becomes '?'; cut to `max_length` bytes.
inline std::string clean_utf8(std::string_view v, std::size_t max_length) {
    std::string out;
    out.reserve(v.size() < max_length ? v.size() : max_length + 1);
    for (std::size_t i = 0; i < v.size();) {
        const std::size_t n = utf8_length(v, i);
        if (n == 0) {
            out += '?';
            ++i;
        } else {
            out.append(v.data() + i, n);
            i += n;
        }
        if (out.size() > max_length + 4) break;  // enough to cut; the hash covers the rest
    }
    shorten(out, v, max_length);
    return out;
}

/// A StatsD name component or DogStatsD tag value: [A-Za-z0-9_-] kept, every
/// other byte (':', '|', '#', ',', '@', '.', '/', spaces, non-ASCII) becomes
/// '_', since Graphite-style backends read '.' and '/' as path separators; cut
/// to `max_length` bytes.
inline std::string clean_statsd(std::string_view v, std::size_t max_length) {
    std::string out;
    out.reserve(v.size() < max_length ? v.size() : max_length + 1);
    for (const char c : v) {
        const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                          c == '-';
        out += keep ? c : '_';
        if (out.size() > max_length) break;
    }
    shorten(out, v, max_length);
    return out;
}

/// Bounds the distinct values of one label. Returned views stay valid for the
/// guard's lifetime (the map's nodes never move).
class LabelGuard {
public:
    using Cleaner = std::string (*)(std::string_view, std::size_t);

    LabelGuard(std::size_t max_values, std::size_t max_length, Cleaner clean)
        : max_values_(max_values), max_length_(max_length), clean_(clean) {}

    /// The label value to use for `raw`: its cleaned form, or "__overflow__"
    /// once max_values distinct values have been admitted. Sets `*overflowed`
    /// when it returns the overflow value. Allocates only on first sight.
    std::string_view admit(std::string_view raw, bool* overflowed = nullptr) {
        if (raw.size() <= max_length_) {
            if (auto it = seen_.find(raw); it != seen_.end()) return it->second;
            if (seen_.size() >= max_values_) return over(overflowed);
            auto [it, inserted] = seen_.emplace(std::string(raw), clean_(raw, max_length_));
            return it->second;
        }
        // A long value is looked up by its shortened form, so it costs no more memory than a short one.
        std::string key = clean_(raw, max_length_);
        if (auto it = seen_.find(key); it != seen_.end()) return it->second;
        if (seen_.size() >= max_values_) return over(overflowed);
        std::string value = key;
        auto [it, inserted] = seen_.emplace(std::move(key), std::move(value));
        return it->second;
    }

    /// Distinct values admitted so far.
    std::size_t size() const noexcept { return seen_.size(); }

private:
    static std::string_view over(bool* overflowed) noexcept {
        if (overflowed) *overflowed = true;
        return overflow;
    }

    std::size_t max_values_;
    std::size_t max_length_;
    Cleaner clean_;
    std::unordered_map<std::string, std::string, StringHash, std::equal_to<>> seen_{};
};

}  // namespace detail::labels

FAILOVER_END_NAMESPACE
