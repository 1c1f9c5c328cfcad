// SPDX-License-Identifier: MIT
// Exact arithmetic on JSON numbers for the schema validator. nlohmann keeps a
// number as an int64, a uint64 or a double (integers beyond 64 bits arrive as
// doubles); nothing here converts one kind into another lossily: comparisons
// across kinds are exact (2^64-1 is greater than 0, 2^53+1 is not equal to the
// double 2^53), NaN is unordered with everything so it passes no bound, and
// infinities order as they should. `multipleOf` is judged in decimal terms on
// the shortest round-trip decimal of each double (so 0.0075 is a multiple of
// 0.0001 and 4.5 is not a multiple of 2) with modular arithmetic on aligned
// exponents: bounded work (a few hundred steps at most), never a division that
// could overflow to infinity or trap.
#pragma once

#include <charconv>
#include <cmath>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

namespace detail::schema {

/// A JSON number exactly as nlohmann stores it.
struct Number {
    enum class Kind : std::uint8_t { int64, uint64, real };
    Kind kind = Kind::int64;
    std::int64_t i = 0;
    std::uint64_t u = 0;
    double d = 0;

    /// The number held by `j`, which must be a number.
    static Number of(const nlohmann::json& j) noexcept {
        Number n;
        if (j.is_number_unsigned()) {
            n.kind = Kind::uint64;
            n.u = j.get<std::uint64_t>();
        } else if (j.is_number_integer()) {
            n.kind = Kind::int64;
            n.i = j.get<std::int64_t>();
        } else {
            n.kind = Kind::real;
            n.d = j.get<double>();
        }
        return n;
    }

    /// True for integers and for finite doubles without a fractional part (1.0 is an integer in draft 7).
    bool is_integer() const noexcept { return kind != Kind::real || (std::isfinite(d) && std::trunc(d) == d); }

    /// True unless the number is a NaN or an infinity.
    bool is_finite() const noexcept { return kind != Kind::real || std::isfinite(d); }

    /// The number as JSON text, for messages.
    std::string text() const {
        switch (kind) {
            case Kind::int64: return std::to_string(i);
            case Kind::uint64: return std::to_string(u);
            case Kind::real: break;
        }
        if (std::isnan(d)) return "NaN";
        if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
        char buf[64];
        const auto res = std::to_chars(buf, buf + sizeof buf, d);
        return std::string(buf, res.ptr);
    }
};

inline std::partial_ordering compare_int_real(std::int64_t i, double d) noexcept {
    if (std::isnan(d)) return std::partial_ordering::unordered;
    if (d >= 9223372036854775808.0) return std::partial_ordering::less;  // d >= 2^63 > i
    if (d < -9223372036854775808.0) return std::partial_ordering::greater;
    const double t = std::trunc(d);  // in [-2^63, 2^63): exact as an int64
    const auto ti = static_cast<std::int64_t>(t);
    if (i != ti) return i < ti ? std::partial_ordering::less : std::partial_ordering::greater;
    if (d > t) return std::partial_ordering::less;
    if (d < t) return std::partial_ordering::greater;
    return std::partial_ordering::equivalent;
}

inline std::partial_ordering compare_uint_real(std::uint64_t u, double d) noexcept {
    if (std::isnan(d)) return std::partial_ordering::unordered;
    if (d < 0) return std::partial_ordering::greater;
    if (d >= 18446744073709551616.0) return std::partial_ordering::less;  // d >= 2^64 > u
    const double t = std::trunc(d);
    const auto tu = static_cast<std::uint64_t>(t);
    if (u != tu) return u < tu ? std::partial_ordering::less : std::partial_ordering::greater;
    if (d > t) return std::partial_ordering::less;
    return std::partial_ordering::equivalent;
}

inline std::partial_ordering compare_int_uint(std::int64_t i, std::uint64_t u) noexcept {
    if (i < 0) return std::partial_ordering::less;
    const auto iu = static_cast<std::uint64_t>(i);
    if (iu == u) return std::partial_ordering::equivalent;
    return iu < u ? std::partial_ordering::less : std::partial_ordering::greater;
}

/// Exact comparison of two JSON numbers of any kinds; unordered when either is NaN.
inline std::partial_ordering compare(const Number& a, const Number& b) noexcept {
    using K = Number::Kind;
    const auto flip = [](std::partial_ordering o) noexcept {
        if (o == std::partial_ordering::less) return std::partial_ordering::greater;
        if (o == std::partial_ordering::greater) return std::partial_ordering::less;
        return o;
    };
    switch (a.kind) {
        case K::int64:
            if (b.kind == K::int64) return a.i <=> b.i;
            if (b.kind == K::uint64) return compare_int_uint(a.i, b.u);
            return compare_int_real(a.i, b.d);
        case K::uint64:
            if (b.kind == K::uint64) return a.u <=> b.u;
            if (b.kind == K::int64) return flip(compare_int_uint(b.i, a.u));
            return compare_uint_real(a.u, b.d);
        case K::real:
            break;
    }
    if (b.kind == K::real) return a.d <=> b.d;
    if (b.kind == K::int64) return flip(compare_int_real(b.i, a.d));
    return flip(compare_uint_real(b.u, a.d));
}

/// |value| as mantissa * 10^exponent, with the mantissa free of trailing zeros.
struct Decimal {
    std::uint64_t mantissa = 0;
    int exponent = 0;
};

/// The magnitude of `n` in decimal: exact for integers, the shortest round-trip
/// decimal for a double; nullopt for NaN and infinities.
inline std::optional<Decimal> decimal_of(const Number& n) noexcept {
    Decimal out;
    if (n.kind == Number::Kind::int64) {
        out.mantissa = n.i < 0 ? static_cast<std::uint64_t>(-(n.i + 1)) + 1u : static_cast<std::uint64_t>(n.i);
    } else if (n.kind == Number::Kind::uint64) {
        out.mantissa = n.u;
    } else {
        if (!std::isfinite(n.d)) return std::nullopt;
        if (n.d == 0) return out;
        char buf[64];
        const auto res = std::to_chars(buf, buf + sizeof buf, std::fabs(n.d), std::chars_format::scientific);
        if (res.ec != std::errc{}) return std::nullopt;
        // "d.ddde+XX": at most 17 significant digits, which fit in a uint64.
        const char* p = buf;
        int digits = 0;
        for (; p < res.ptr && *p != 'e'; ++p) {
            if (*p == '.') continue;
            out.mantissa = out.mantissa * 10u + static_cast<std::uint64_t>(*p - '0');
            ++digits;
        }
        int exp = 0;
        if (p < res.ptr) {
            ++p;
            const bool neg = *p == '-';
            if (*p == '-' || *p == '+') ++p;
            std::from_chars(p, res.ptr, exp);
            if (neg) exp = -exp;
        }
        out.exponent = exp - (digits - 1);
    }
    if (out.mantissa == 0) {
        out.exponent = 0;
        return out;
    }
    while (out.mantissa % 10u == 0) {
        out.mantissa /= 10u;
        ++out.exponent;
    }
    return out;
}

/// True when x is an integer multiple of m (m > 0), in exact decimal arithmetic.
inline bool is_multiple(const Decimal& x, const Decimal& m) noexcept {
    if (x.mantissa == 0) return true;
    if (m.mantissa == 0) return false;
    // Both mantissas carry no factor of ten. If m's exponent is larger, m * 10^k
    // (k >= 1) is divisible by 10 while x's mantissa is not: not a multiple.
    if (x.exponent < m.exponent) return false;
    // x = a * 10^k * 10^e, m = b * 10^e: is a * 10^k divisible by b?
    __extension__ using u128 = unsigned __int128;
    const int k = x.exponent - m.exponent;  // at most ~700 for doubles
    std::uint64_t r = x.mantissa % m.mantissa;
    for (int i = 0; i < k && r != 0; ++i) r = static_cast<std::uint64_t>((static_cast<u128>(r) * 10u) % m.mantissa);
    return r == 0;
}

}  // namespace detail::schema

FAILOVER_END_NAMESPACE
