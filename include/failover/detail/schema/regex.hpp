// SPDX-License-Identifier: MIT
// Regular expressions for `pattern`, `patternProperties` and `format: regex`:
// ECMA-262 syntax (what JSON Schema specifies) translated to RE2, whose
// matching is linear in the text and never recurses on it. The only header of
// the library that includes <re2/re2.h>.
//
// What the translation keeps of ECMA-262 semantics, code point by code point
// (the `u` flag's view of a string):
//   - `.` matches anything but \n, \r, U+2028, U+2029 (RE2's `.` only skips \n);
//   - `\s` / `\S` are ECMA's whitespace set (with \v, NBSP, U+FEFF, the Zs
//     spaces and line terminators), inside and outside brackets; `\d`, `\w`,
//     `\b` are ASCII in both engines; `$` is the end of the text in both;
//   - `\uXXXX` (surrogate pairs joined), `\u{...}`, `\xHH`, `\cX`, `\0`, `[\b]`,
//     `[]` (matches nothing), `[^]` (matches anything), `(?<name>...)`.
// What is refused (at Schema::parse, with the reason): lookahead and
// lookbehind, backreferences (numbered and named), escapes ECMA-262 does not
// define (`\Z`, `\A`, `\z`, ...), lone surrogates, repetition counts above
// 1000 (RE2's limit, nested repetitions multiply), parentheses nested deeper
// than 1000, patterns longer than max_regex_bytes, and patterns whose compiled
// program exceeds about 20,000 instructions (RE2's compile time grows faster
// than linearly with the program; see program_probe_mem).
// `\p{...}` goes to RE2 with General_Category long names and aliases
// (`\p{Letter}`, `\p{digit}`) shortened and `gc=`/`sc=` prefixes dropped;
// RE2 knows the categories and script names (`\p{Greek}`), not
// Script_Extensions or binary properties (`\p{Alphabetic}`), which are refused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// re2.h turns -Wmissing-field-initializers off for the rest of the including
// file and never back on: kept inside push/pop so the user's code keeps it.
#if defined(__GNUC__)
#pragma GCC diagnostic push
#endif
#include <re2/re2.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include "failover/detail/schema/values.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

namespace detail::schema {

/// Longest pattern (in bytes) a schema, or a string under `format: regex`, may hold.
inline constexpr std::size_t max_regex_bytes = 256 * 1024;

/// Deepest nesting of parentheses accepted in a pattern.
inline constexpr std::size_t max_regex_nesting = 1000;

namespace ecma {

// ECMA-262 WhiteSpace and LineTerminator, as items of an RE2 bracket expression.
inline constexpr std::string_view space_items =
    "\\x{9}-\\x{d}\\x{20}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}\\x{feff}";
// Their complement, so `\S` can stand inside a bracket expression with other items.
inline constexpr std::string_view non_space_items =
    "\\x{0}-\\x{8}\\x{e}-\\x{1f}\\x{21}-\\x{9f}\\x{a1}-\\x{167f}\\x{1681}-\\x{1fff}\\x{200b}-\\x{2027}"
    "\\x{202a}-\\x{202e}\\x{2030}-\\x{205e}\\x{2060}-\\x{2fff}\\x{3001}-\\x{fefe}\\x{ff00}-\\x{10ffff}";

inline bool is_ascii_alnum(long c) noexcept {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

inline int hex_value(long c) noexcept {
    if (c >= '0' && c <= '9') return static_cast<int>(c - '0');
    if (c >= 'a' && c <= 'f') return static_cast<int>(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return static_cast<int>(c - 'A' + 10);
    return -1;
}

inline void append_hex_escape(std::string& out, long cp) {
    static constexpr char hex[] = "0123456789abcdef";
    char buf[8];
    int n = 0;
    auto v = static_cast<unsigned long>(cp);
    do {
        buf[n++] = hex[v & 0xF];
        v >>= 4;
    } while (v != 0);
    out += "\\x{";
    while (n > 0) out += buf[--n];
    out += '}';
}

// One code point as RE2 text that means exactly that character, in or out of brackets.
inline void append_literal(std::string& out, long cp) {
    if (is_ascii_alnum(cp)) out += static_cast<char>(cp);
    else append_hex_escape(out, cp);
}

inline bool is_syntax_char(long c) noexcept {
    switch (c) {
        case '^': case '$': case '\\': case '.': case '*': case '+': case '?':
        case '(': case ')': case '[': case ']': case '{': case '}': case '|': case '/':
            return true;
        default:
            return false;
    }
}

// ECMA-262 `\p{...}` names RE2 spells differently: long General_Category names
// and their aliases (Letter, digit, ...) become the short ones RE2 knows;
// `General_Category=`/`gc=` and `Script=`/`sc=` prefixes are dropped.
inline std::string re2_property_name(std::string name) {
    for (std::string_view prefix : {"General_Category=", "gc=", "Script=", "sc="}) {
        if (name.rfind(prefix, 0) == 0) {
            name.erase(0, prefix.size());
            break;
        }
    }
    static constexpr std::pair<std::string_view, std::string_view> long_names[] = {
        {"Letter", "L"}, {"Cased_Letter", "LC"}, {"Uppercase_Letter", "Lu"}, {"Lowercase_Letter", "Ll"},
        {"Titlecase_Letter", "Lt"}, {"Modifier_Letter", "Lm"}, {"Other_Letter", "Lo"}, {"Mark", "M"},
        {"Combining_Mark", "M"}, {"Nonspacing_Mark", "Mn"}, {"Spacing_Mark", "Mc"}, {"Enclosing_Mark", "Me"},
        {"Number", "N"}, {"Decimal_Number", "Nd"}, {"digit", "Nd"}, {"Letter_Number", "Nl"}, {"Other_Number", "No"},
        {"Punctuation", "P"}, {"punct", "P"}, {"Connector_Punctuation", "Pc"}, {"Dash_Punctuation", "Pd"},
        {"Open_Punctuation", "Ps"}, {"Close_Punctuation", "Pe"}, {"Initial_Punctuation", "Pi"},
        {"Final_Punctuation", "Pf"}, {"Other_Punctuation", "Po"}, {"Symbol", "S"}, {"Math_Symbol", "Sm"},
        {"Currency_Symbol", "Sc"}, {"Modifier_Symbol", "Sk"}, {"Other_Symbol", "So"}, {"Separator", "Z"},
        {"Space_Separator", "Zs"}, {"Line_Separator", "Zl"}, {"Paragraph_Separator", "Zp"}, {"Other", "C"},
        {"Control", "Cc"}, {"cntrl", "Cc"}, {"Format", "Cf"}, {"Surrogate", "Cs"}, {"Private_Use", "Co"},
        {"Unassigned", "Cn"},
    };
    for (const auto& [from, to] : long_names)
        if (name == from) return std::string(to);
    return name;
}

// What one escape sequence stands for.
struct Escape {
    enum class Kind { code_point, items, assertion } kind = Kind::code_point;
    long cp = 0;           // code_point
    std::string text;      // items: bracket items ("\\d", space ranges); assertion: "\\b" / "\\B"
    bool negated = false;  // items that are a complement (\S): outside brackets written [^...]
};

// Parses the escape whose backslash is at cps[i]; leaves i after it. False with `error` set.
inline bool parse_escape(const std::vector<long>& cps, std::size_t& i, bool in_class, Escape& e, std::string& error) {
    ++i;  // the backslash
    if (i >= cps.size()) {
        error = "trailing backslash";
        return false;
    }
    const long c = cps[i++];
    const auto code_point = [&](long v) {
        e.kind = Escape::Kind::code_point;
        e.cp = v;
        return true;
    };
    const auto items = [&](std::string_view t) {
        e.kind = Escape::Kind::items;
        e.text = std::string(t);
        return true;
    };
    switch (c) {
        case 'd': return items("\\d");
        case 'D': return items("\\D");
        case 'w': return items("\\w");
        case 'W': return items("\\W");
        case 's':
            return items(space_items);
        case 'S':
            if (in_class) return items(non_space_items);
            e.negated = true;
            return items(space_items);
        case 'b':
            if (in_class) return code_point(8);
            e.kind = Escape::Kind::assertion;
            e.text = "\\b";
            return true;
        case 'B':
            if (in_class) break;
            e.kind = Escape::Kind::assertion;
            e.text = "\\B";
            return true;
        case 't': return code_point(9);
        case 'n': return code_point(10);
        case 'v': return code_point(11);
        case 'f': return code_point(12);
        case 'r': return code_point(13);
        case '0':
            if (i < cps.size() && cps[i] >= '0' && cps[i] <= '9') {
                error = "octal escapes are not supported";
                return false;
            }
            return code_point(0);
        case 'c':
            if (i < cps.size() && ((cps[i] >= 'a' && cps[i] <= 'z') || (cps[i] >= 'A' && cps[i] <= 'Z')))
                return code_point(cps[i++] % 32);
            error = "\\c must be followed by an ASCII letter";
            return false;
        case 'x': {
            if (i + 1 < cps.size() && hex_value(cps[i]) >= 0 && hex_value(cps[i + 1]) >= 0) {
                const long v = hex_value(cps[i]) * 16 + hex_value(cps[i + 1]);
                i += 2;
                return code_point(v);
            }
            error = "\\x must be followed by two hexadecimal digits";
            return false;
        }
        case 'u': {
            const auto four_hex = [&](std::size_t at, long& v) {
                if (at + 4 > cps.size()) return false;
                v = 0;
                for (std::size_t k = 0; k < 4; ++k) {
                    const int h = hex_value(cps[at + k]);
                    if (h < 0) return false;
                    v = v * 16 + h;
                }
                return true;
            };
            if (i < cps.size() && cps[i] == '{') {
                long v = 0;
                std::size_t j = i + 1, digits = 0;
                while (j < cps.size() && hex_value(cps[j]) >= 0 && v <= 0x10FFFF) {
                    v = v * 16 + hex_value(cps[j++]);
                    ++digits;
                }
                if (digits == 0 || j >= cps.size() || cps[j] != '}' || v > 0x10FFFF) {
                    error = "bad \\u{...} escape";
                    return false;
                }
                if (v >= 0xD800 && v <= 0xDFFF) {
                    error = "lone surrogate \\u{...} is not a character";
                    return false;
                }
                i = j + 1;
                return code_point(v);
            }
            long v = 0;
            if (!four_hex(i, v)) {
                error = "\\u must be followed by four hexadecimal digits or {...}";
                return false;
            }
            i += 4;
            if (v >= 0xD800 && v <= 0xDBFF) {
                long lo = 0;
                if (i + 1 < cps.size() && cps[i] == '\\' && cps[i + 1] == 'u' && four_hex(i + 2, lo) && lo >= 0xDC00 &&
                    lo <= 0xDFFF) {
                    i += 6;
                    return code_point(0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00));
                }
            }
            if (v >= 0xD800 && v <= 0xDFFF) {
                error = "lone surrogate \\u escape is not a character";
                return false;
            }
            return code_point(v);
        }
        case 'k':
            error = "named backreferences (\\k<...>) are not supported: RE2 matches in linear time and has no backreferences";
            return false;
        case 'p':
        case 'P': {
            if (i >= cps.size() || cps[i] != '{') break;
            std::string name;
            std::size_t j = i + 1;
            while (j < cps.size() && cps[j] != '}') {
                if (!is_ascii_alnum(cps[j]) && cps[j] != '_' && cps[j] != '=') {
                    error = "bad \\p{...} property name";
                    return false;
                }
                name += static_cast<char>(cps[j++]);
            }
            if (j >= cps.size()) {
                error = "missing } in \\p{...}";
                return false;
            }
            i = j + 1;
            return items((c == 'p' ? "\\p{" : "\\P{") + re2_property_name(std::move(name)) + "}");
        }
        case '-':
            return code_point('-');
        default:
            break;
    }
    if (c >= '1' && c <= '9') {
        error = "backreferences (\\" + std::string(1, static_cast<char>(c)) +
                ") are not supported: RE2 matches in linear time and has no backreferences";
        return false;
    }
    if (is_syntax_char(c)) return code_point(c);
    error = "unsupported escape \\";
    if (c >= 0x20 && c < 0x7F) error += static_cast<char>(c);
    else append_utf8(error, c);
    return false;
}

}  // namespace ecma

/// Translates an ECMA-262 pattern into RE2 syntax with the same meaning.
/// False with `error` set when the pattern is invalid or uses what RE2 lacks.
inline bool ecma_to_re2(std::string_view pattern, std::string& out, std::string& error) {
    using namespace ecma;
    std::vector<long> cps;
    cps.reserve(pattern.size());
    for (std::size_t i = 0; i < pattern.size();) {
        const long cp = decode_utf8(pattern, i);
        if (cp < 0) {
            error = "pattern is not valid UTF-8";
            return false;
        }
        cps.push_back(cp);
    }
    out.clear();
    out.reserve(pattern.size() + 16);
    std::size_t depth = 0;
    std::size_t i = 0;
    while (i < cps.size()) {
        const long c = cps[i];
        if (c == '\\') {
            Escape e;
            if (!parse_escape(cps, i, false, e, error)) return false;
            if (e.kind == Escape::Kind::code_point) append_literal(out, e.cp);
            else if (e.kind == Escape::Kind::assertion) out += e.text;
            else if (e.text.size() == 2 || e.text.rfind("\\p{", 0) == 0 || e.text.rfind("\\P{", 0) == 0) out += e.text;
            else out.append(e.negated ? "[^" : "[").append(e.text).append("]");
        } else if (c == '.') {
            out += "[^\\n\\r\\x{2028}\\x{2029}]";
            ++i;
        } else if (c == '(') {
            if (++depth > max_regex_nesting) {
                error = "parentheses nested deeper than " + std::to_string(max_regex_nesting);
                return false;
            }
            ++i;
            if (i < cps.size() && cps[i] == '?') {
                const long n1 = i + 1 < cps.size() ? cps[i + 1] : 0;
                const long n2 = i + 2 < cps.size() ? cps[i + 2] : 0;
                if (n1 == ':') {
                    out += "(?:";
                    i += 2;
                } else if (n1 == '=' || n1 == '!') {
                    error = "lookahead (?= / (?!) is not supported: RE2 matches in linear time and has no lookaround";
                    return false;
                } else if (n1 == '<' && (n2 == '=' || n2 == '!')) {
                    error = "lookbehind (?<= / (?<!) is not supported: RE2 matches in linear time and has no lookaround";
                    return false;
                } else if (n1 == '<') {
                    out += "(?P<";
                    i += 2;
                } else {
                    error = "unsupported group syntax after (?";
                    return false;
                }
            } else {
                out += '(';
            }
        } else if (c == ')') {
            if (depth > 0) --depth;
            out += ')';
            ++i;
        } else if (c == '[') {
            ++i;
            bool negated = false;
            if (i < cps.size() && cps[i] == '^') {
                negated = true;
                ++i;
            }
            if (i < cps.size() && cps[i] == ']') {  // [] matches nothing, [^] anything
                out += negated ? "[\\x{0}-\\x{10ffff}]" : "[^\\x{0}-\\x{10ffff}]";
                ++i;
                continue;
            }
            out += negated ? "[^" : "[";
            bool closed = false;
            while (i < cps.size()) {
                const long k = cps[i];
                if (k == ']') {
                    closed = true;
                    ++i;
                    break;
                }
                if (k == '\\') {
                    Escape e;
                    if (!parse_escape(cps, i, true, e, error)) return false;
                    if (e.kind == Escape::Kind::code_point) append_literal(out, e.cp);
                    else out += e.text;
                } else {
                    if (k == '-') out += '-';
                    else append_literal(out, k);
                    ++i;
                }
            }
            if (!closed) {
                error = "missing ] at the end of a character class";
                return false;
            }
            out += ']';
        } else {
            append_utf8(out, c);
            ++i;
        }
    }
    return true;
}

/// RE2 memory for a first, size-bounding compile. RE2's compile time grows
/// faster than linearly with the program (a 64K-character pattern of `x?` took
/// over a second), so a pattern is first compiled with this little memory,
/// which caps its program at about 20,000 instructions, and refused if that fails.
inline constexpr std::int64_t program_probe_mem = 256 * 1024;

/// RE2 memory for checking strings under `format: regex` (compiled during
/// validation, so held to about 5,000 instructions: a few milliseconds).
inline constexpr std::int64_t format_regex_mem = 64 * 1024;

/// A compiled pattern. Immutable; search() is thread-safe.
class Regex {
public:
    /// Compiles an ECMA-262 pattern; nullptr with `error` set when it cannot be used.
    /// `max_mem` is what the pattern may use to match (program and DFA caches).
    static std::unique_ptr<Regex> compile(std::string_view pattern, std::int64_t max_mem, std::string& error) {
        std::string translated;
        if (!translate(pattern, translated, error)) return nullptr;
        auto re = build(translated, max_mem < program_probe_mem ? max_mem : program_probe_mem, error);
        if (!re) return nullptr;
        if (max_mem > program_probe_mem) {  // the program is known to be small: now with room to match
            re = build(translated, max_mem, error);
            if (!re) return nullptr;
        }
        auto out = std::unique_ptr<Regex>(new Regex());
        const int size = re->ProgramSize();
        out->program_size_ = size > 0 ? static_cast<std::uint64_t>(size) : 1u;
        out->re_ = std::move(re);
        return out;
    }

    /// True when `pattern` is one Schema::parse would accept (for `format: regex`).
    static bool valid(std::string_view pattern) {
        std::string translated, error;
        return translate(pattern, translated, error) && build(translated, format_regex_mem, error) != nullptr;
    }

    /// True when the pattern matches somewhere in `text` (JSON Schema patterns are not anchored).
    bool search(std::string_view text) const {
        return RE2::PartialMatch(re2::StringPiece(text.data(), text.size()), *re_);
    }

    /// Work steps charged for searching `bytes` bytes: RE2's worst case (its NFA)
    /// costs about one step per eight program instructions per byte.
    std::uint64_t cost(std::size_t bytes) const noexcept {
        return 1 + (static_cast<std::uint64_t>(bytes) * program_size_) / 8;
    }

    /// Instructions in the compiled program.
    std::uint64_t program_size() const noexcept { return program_size_; }

private:
    Regex() = default;

    static bool translate(std::string_view pattern, std::string& out, std::string& error) {
        if (pattern.size() > max_regex_bytes) {
            error = "pattern longer than " + std::to_string(max_regex_bytes) + " bytes";
            return false;
        }
        return ecma_to_re2(pattern, out, error);
    }

    static std::unique_ptr<RE2> build(const std::string& translated, std::int64_t max_mem, std::string& error) {
        RE2::Options o;
        o.set_encoding(RE2::Options::EncodingUTF8);
        o.set_log_errors(false);
        o.set_max_mem(max_mem);
        o.set_never_capture(true);
        o.set_case_sensitive(true);
        auto re = std::make_unique<RE2>(re2::StringPiece(translated.data(), translated.size()), o);
        if (re->ok()) return re;
        error = re->error_code() == RE2::ErrorPatternTooLarge
                    ? "pattern too complex: its compiled program exceeds the regex engine's limit"
                    : re->error();
        return nullptr;
    }

    std::unique_ptr<RE2> re_;
    std::uint64_t program_size_ = 1;
};

}  // namespace detail::schema

FAILOVER_END_NAMESPACE
