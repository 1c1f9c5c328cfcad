// SPDX-License-Identifier: MIT
// A forward-only reader of one JSON text for the stream decoders' fast path: the
// chunks that carry a piece of answer text (an OpenAI chunk with delta.content,
// an Anthropic text_delta) and the events of a plain answer around them (the
// OpenAI finish chunk, Anthropic's message_start and text block start) are read
// here field by field, without building a
// DOM, so a streamed token costs a scan of its event instead of a tree of
// allocations. It never decides anything: any input it does not read exactly as
// nlohmann::json would (a duplicate key the caller cares about, an escaped key,
// a deep nesting, anything malformed) makes it report "not read", and the
// decoder reads that event through the DOM as before. Being stricter than
// nlohmann::json is always safe; accepting what nlohmann::json rejects is never
// (the stream fuzzer compares the two paths on every input).
//
// Accepted exactly as RFC 8259 and nlohmann::json: whitespace (space, tab, LF,
// CR), strings with the escapes \" \\ \/ \b \f \n \r \t and \u with four hex digits
// (surrogates only in pairs), no raw control characters, well-formed UTF-8 (no overlongs, no
// surrogates, nothing above U+10FFFF); numbers -?(0|[1-9][0-9]*)(.[0-9]+)?
// ([eE][+-]?[0-9]+)?; true, false, null.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "failover/detail/utf8.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE
namespace detail::stream {

class JsonScan {
public:
    /// Values nested deeper than this are not read (the DOM path decides about them).
    static constexpr int max_depth = 32;

    explicit JsonScan(std::string_view text, std::size_t at = 0) noexcept : s_(text), i_(at) {}

    /// False once anything was not read; every call after that returns false.
    bool ok() const noexcept { return ok_; }

    /// Where the scanner is in the text: at the next value once at_string() and the like
    /// skipped the whitespace before it, just past a value once it was read.
    std::size_t pos() const noexcept { return i_; }

    /// The next value is an object: consumes '{'.
    bool object() noexcept { return open('{'); }
    /// The next value is an array: consumes '['.
    bool array() noexcept { return open('['); }

    /// The next member of the object being read: true with its key (the scanner is then at its
    /// value), false at the closing '}' (consumed) or when the text cannot be read (ok() tells).
    /// Keys with escapes are not read.
    bool member(std::string_view& key) noexcept {
        if (!next('}')) return false;
        if (!key_string(key)) return false;
        ws();
        return expect(':');
    }

    /// The next element of the array being read: true when there is one (the scanner is at it),
    /// false at the closing ']' (consumed) or when the text cannot be read.
    bool element() noexcept { return next(']'); }

    /// True (and consumed) when the next value is null.
    bool null() noexcept {
        ws();
        if (s_.substr(i_, 4) != "null") return false;
        i_ += 4;
        return true;
    }

    /// Reads a member whose value must be null and must come once (`seen` says it came).
    bool null_once(bool& seen) noexcept {
        if (seen || !null()) return false;
        seen = true;
        return true;
    }

    /// True when the next value is a string.
    bool at_string() noexcept {
        ws();
        return i_ < s_.size() && s_[i_] == '"';
    }

    /// Reads a string value, appending its decoded text to `out`.
    bool string(std::string& out) noexcept { return string_into(&out); }

    /// Reads a non-negative integer written with digits only (no sign, fraction or exponent,
    /// at most 18 digits); anything else is not read.
    bool natural(std::int64_t& n) noexcept {
        ws();
        const std::size_t start = i_;
        while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
        const std::size_t digits = i_ - start;
        if (digits == 0 || digits > 18 || (digits > 1 && s_[start] == '0')) return fail();
        n = 0;
        for (std::size_t k = start; k < i_; ++k) n = n * 10 + (s_[k] - '0');
        if (i_ < s_.size() && (s_[i_] == '.' || s_[i_] == 'e' || s_[i_] == 'E')) return fail();
        return true;
    }

    /// Skips any value.
    bool skip() noexcept { return value(0); }

    /// Skips a value that must be an object.
    bool skip_object() noexcept {
        ws();
        if (i_ >= s_.size() || s_[i_] != '{') return fail();
        return value(0);
    }

    /// Nothing but whitespace is left.
    bool end() noexcept {
        ws();
        return ok_ && i_ == s_.size();
    }

private:
    // Moves i_ past the plain bytes ahead (detail/utf8.hpp).
    void skip_plain() noexcept { i_ = json_plain_end(s_.data(), i_, s_.size()); }

    // A string value, checked whole; its decoded text is appended to `out` unless null.
    bool string_into(std::string* out) noexcept {
        ws();
        if (!expect('"')) return false;
        try {
            for (;;) {
                const std::size_t start = i_;
                skip_plain();
                if (out) out->append(s_.substr(start, i_ - start));
                if (i_ >= s_.size()) return fail();
                const auto c = static_cast<unsigned char>(s_[i_]);
                if (c == '"') {
                    ++i_;
                    return true;
                }
                if (c == '\\') {
                    if (!escape(out)) return false;
                } else if (c >= 0x80) {
                    const std::size_t n = utf8(i_);
                    if (n == 0) return fail();
                    if (out) out->append(s_.substr(i_, n));
                    i_ += n;
                } else {
                    return fail();  // a raw control character
                }
            }
        } catch (...) {  // out of memory
            return fail();
        }
    }

    bool fail() noexcept {
        ok_ = false;
        i_ = s_.size();
        return false;
    }

    void ws() noexcept {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
    }

    bool expect(char c) noexcept {
        if (!ok_ || i_ >= s_.size() || s_[i_] != c) return fail();
        ++i_;
        return true;
    }

    bool open(char c) noexcept {
        ws();
        if (!expect(c)) return false;
        first_ = true;
        return true;
    }

    // Before a member or element: the closing bracket (false, consumed) or a comma (except
    // before the first one).
    bool next(char close) noexcept {
        if (!ok_) return false;
        ws();
        if (i_ < s_.size() && s_[i_] == close) {
            ++i_;
            first_ = false;
            return false;
        }
        if (!first_ && !expect(',')) return false;
        first_ = false;
        ws();
        return ok_;
    }

    // A key: a string without escapes, as a view into the text.
    bool key_string(std::string_view& key) noexcept {
        if (!expect('"')) return false;
        const std::size_t start = i_;
        for (;;) {
            skip_plain();
            if (i_ >= s_.size()) return fail();
            const auto c = static_cast<unsigned char>(s_[i_]);
            if (c == '"') break;
            if (c < 0x80) return fail();  // an escape or a control character
            const std::size_t n = utf8(i_);
            if (n == 0) return fail();
            i_ += n;
        }
        key = s_.substr(start, i_ - start);
        ++i_;
        return true;
    }

    static int hex(char c) noexcept {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    }

    bool hex4(std::uint32_t& u) noexcept {
        if (s_.size() - i_ < 4) return false;
        u = 0;
        for (int k = 0; k < 4; ++k) {
            const int h = hex(s_[i_ + static_cast<std::size_t>(k)]);
            if (h < 0) return false;
            u = u * 16 + static_cast<std::uint32_t>(h);
        }
        i_ += 4;
        return true;
    }

    // At a backslash inside a string: appends what the escape stands for to `out` (unless
    // null). Throws only std::bad_alloc (string_into catches it).
    bool escape(std::string* out) {
        ++i_;
        if (i_ >= s_.size()) return fail();
        const char c = s_[i_++];
        char simple = 0;
        switch (c) {
            case '"': simple = '"'; break;
            case '\\': simple = '\\'; break;
            case '/': simple = '/'; break;
            case 'b': simple = '\b'; break;
            case 'f': simple = '\f'; break;
            case 'n': simple = '\n'; break;
            case 'r': simple = '\r'; break;
            case 't': simple = '\t'; break;
            case 'u': break;
            default: return fail();
        }
        if (simple != 0) {
            if (out) *out += simple;
            return true;
        }
        std::uint32_t u = 0;
        if (!hex4(u)) return fail();
        if (u >= 0xDC00 && u <= 0xDFFF) return fail();  // a low surrogate alone
        if (u >= 0xD800 && u <= 0xDBFF) {                // must be followed by its low half
            std::uint32_t low = 0;
            if (s_.substr(i_, 2) != "\\u") return fail();
            i_ += 2;
            if (!hex4(low) || low < 0xDC00 || low > 0xDFFF) return fail();
            u = 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00);
        }
        if (out) append_utf8(*out, u);
        return true;
    }

    // The length of the well-formed UTF-8 sequence at `at` (its lead byte is >= 0x80), or 0.
    std::size_t utf8(std::size_t at) const noexcept { return utf8_length(s_.data() + at, s_.size() - at); }

    bool digits() noexcept {
        const std::size_t start = i_;
        while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9') ++i_;
        return i_ > start || fail();
    }

    // nlohmann::json rejects a number that overflows a double (1e400, or an integer of 400
    // digits, read as a double): one that might is not read (at most 10^300 is).
    bool number() noexcept {
        if (s_[i_] == '-') ++i_;
        const std::size_t int_start = i_;
        if (i_ < s_.size() && s_[i_] == '0') ++i_;
        else if (!digits()) return false;
        const std::size_t int_digits = i_ - int_start;
        if (i_ < s_.size() && s_[i_] == '.') {
            ++i_;
            if (!digits()) return false;
        }
        std::size_t exponent = 0;
        if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
            ++i_;
            bool negative = false;
            if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) negative = s_[i_++] == '-';
            const std::size_t exp_start = i_;
            if (!digits()) return false;
            if (!negative) {
                if (i_ - exp_start > 3) return fail();
                for (std::size_t k = exp_start; k < i_; ++k) exponent = exponent * 10 + static_cast<std::size_t>(s_[k] - '0');
            }
        }
        return int_digits + exponent <= 300 || fail();
    }

    bool word(std::string_view w) noexcept {
        if (s_.substr(i_, w.size()) != w) return fail();
        i_ += w.size();
        return true;
    }

    bool value(int depth) noexcept {
        ws();
        if (!ok_ || i_ >= s_.size()) return fail();
        const char c = s_[i_];
        if (c == '"') return string_into(nullptr);  // checked as strictly as a string read, not kept
        if (c == '{' || c == '[') {
            if (depth + 1 > max_depth) return fail();
            const bool obj = c == '{';
            ++i_;
            first_ = true;
            for (;;) {
                if (obj) {
                    std::string_view key;
                    if (!member(key)) return ok_;
                } else if (!element()) {
                    return ok_;
                }
                if (!value(depth + 1)) return false;
            }
        }
        if (c == 't') return word("true");
        if (c == 'f') return word("false");
        if (c == 'n') return word("null");
        if (c == '-' || (c >= '0' && c <= '9')) return number();
        return fail();
    }

    std::string_view s_;
    std::size_t i_ = 0;
    bool ok_ = true;
    bool first_ = true;  // the object or array just opened has no member yet
};

/// The last event a fast path read whole, kept to read the next event of the same shape by
/// comparing bytes. A token stream repeats one event shape with only the piece of text
/// changing (OpenAI's chunk carries its id, model and fingerprint every time), so after one
/// event is scanned member by member, the next one is read by checking that its bytes are
/// the kept event's with another JSON string in place of the kept one's text.
///
/// Why that reads it exactly as the scan would: the scan goes forward through the text, and
/// at any byte its state depends only on the bytes before it. The new event's bytes up to the
/// string are the kept event's, so the scan reaches the string in the same state; the string
/// is read by the same strict reader, which stops at its closing quote whatever it holds; the
/// bytes after it are again the kept event's, read in the same state, to the same end. So the
/// scan would accept the new event, with every member other than the string read as before:
/// the only new fact is the string's text. The caller keeps an event only when that text is
/// all the event changes in the decoder, and forgets it whenever another event comes between
/// (so decoder state the scan checks cannot have moved under it).
class ShapeMemo {
public:
    /// Keeps `data` (of SSE event type `type`), read whole by a fast path; [open, close) is the
    /// string token (quotes included) whose text was the event's only effect.
    void keep(std::string_view type, std::string_view data, std::size_t open, std::size_t close) {
        if (close <= open || close > data.size() || data[open] != '"') return forget();
        try {
            type_.assign(type);
            data_.assign(data);
        } catch (...) {  // out of memory: nothing kept, the scan reads the next event
            return forget();
        }
        open_ = open;
        tail_ = data.size() - close;
        kept_ = true;
    }

    void forget() noexcept { kept_ = false; }

    /// True when `data` (of type `type`) is the kept event with another well-formed JSON
    /// string in place of the kept one: that string's text is appended to `text`. False, with
    /// `text` as it was and the memo forgotten, for anything else.
    bool read(std::string_view type, std::string_view data, std::string& text) noexcept {
        if (!kept_) return false;
        if (type == type_ && data.size() >= open_ + tail_ + 2 && data[open_] == '"' &&
            data.compare(0, open_, data_, 0, open_) == 0 &&
            data.compare(data.size() - tail_, tail_, data_, data_.size() - tail_, tail_) == 0) {
            const std::size_t had = text.size();
            JsonScan j(data, open_);
            if (j.string(text) && j.pos() == data.size() - tail_) return true;
            text.resize(had);
        }
        forget();
        return false;
    }

private:
    std::string type_{};
    std::string data_{};
    std::size_t open_ = 0;  // where the string starts (its opening quote)
    std::size_t tail_ = 0;  // bytes after the string
    bool kept_ = false;
};

}  // namespace detail::stream
FAILOVER_END_NAMESPACE
