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

#include <cassert>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "failover/detail/utf8.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE
namespace detail {

namespace json_write_detail {

/// Appends `s` as a JSON string (quotes included); false when it is not well-formed UTF-8.
inline bool string(std::string& out, std::string_view s) {
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

/// Writes one JSON document straight into a string, compact as json::dump() writes it, so an
/// encoder need not build a DOM for the parts it spells itself (the request encoders: their
/// skeleton and the prompt text; rarer parts, a tool's schema or a tool call, go in as DOM
/// values through json_write). The writer puts the commas and colons; the encoder gives each
/// object's members in the order a DOM would keep them (nlohmann::json's std::map: sorted by
/// key bytes), and then the bytes are dump()'s exactly. Debug builds assert that order (to
/// 16 levels of nesting) and that keys stand in objects. Keys are the encoder's own plain
/// ASCII words, written as given.
/// @code
/// std::string body;
/// JsonOut o(body);
/// o.object().key("messages").array();
/// o.object().key("content").string(text).key("role").string("user").end_object();
/// o.end_array().key("stream").boolean(true).end_object();
/// if (!o.ok()) ...   // some text was not well-formed UTF-8 (dump() would throw)
/// @endcode
class JsonOut {
public:
    explicit JsonOut(std::string& out) noexcept : out_(out) {}

    JsonOut& object() { return open('{'); }
    JsonOut& array() { return open('['); }
    JsonOut& end_object() { return close('}'); }
    JsonOut& end_array() { return close(']'); }

    /// The next member's key (a plain ASCII word: no quotes, backslashes or control characters).
    JsonOut& key(std::string_view k) {
        // The order check (Debug builds) reads state every build keeps, so the class is the
        // same whatever NDEBUG says in the translation units that share it.
        assert(depth_ > 0 && !after_key_ && "JsonOut: a key outside an object, or after a key");
        if (depth_ > 0 && depth_ <= kChecked) {
            assert(in_object_[depth_ - 1] && "JsonOut: a key in an array");
            assert((first_ || last_key_[depth_ - 1] < k) && "JsonOut: members out of the order dump() gives");
            last_key_[depth_ - 1] = k;
        }
        comma();
        out_ += '"';
        out_.append(k);
        out_ += "\":";
        after_key_ = true;
        return *this;
    }

    JsonOut& string(std::string_view s) {
        comma();
        ok_ = json_write_detail::string(out_, s) && ok_;
        return *this;
    }
    JsonOut& strings(const std::vector<std::string>& list) {
        array();
        for (const std::string& s : list) string(s);
        return end_array();
    }
    JsonOut& integer(std::int64_t n) {
        comma();
        char digits[24];
        out_.append(digits, std::to_chars(digits, digits + sizeof digits, n).ptr);
        return *this;
    }
    JsonOut& number(double x) { return value(nlohmann::json(x)); }
    JsonOut& boolean(bool b) {
        comma();
        out_ += b ? "true" : "false";
        return *this;
    }
    JsonOut& null() {
        comma();
        out_ += "null";
        return *this;
    }
    /// A DOM value, written as dump() writes it.
    JsonOut& value(const nlohmann::json& v) {
        comma();
        ok_ = json_write_detail::value(out_, v) && ok_;
        return *this;
    }

    /// False when some text was not well-formed UTF-8 (the document is then unusable).
    bool ok() const noexcept { return ok_; }

private:
    // Before a value or key: the comma that separates it from the one before, if any.
    void comma() {
        if (after_key_) {
            after_key_ = false;
            return;
        }
        if (!first_) out_ += ',';
        first_ = false;
    }
    JsonOut& open(char c) {
        comma();
        out_ += c;
        first_ = true;
        if (depth_ < kChecked) in_object_[depth_] = c == '{';
        ++depth_;
        return *this;
    }
    JsonOut& close(char c) {
        assert(depth_ > 0 && !after_key_ && "JsonOut: a close without its open, or a key without its value");
        out_ += c;
        first_ = false;  // the container was a value of its parent
        --depth_;
        return *this;
    }

    std::string& out_;
    bool ok_ = true;
    bool first_ = true;       // nothing written yet in the container just opened
    bool after_key_ = false;  // a key was written: its value needs no comma
    std::size_t depth_ = 0;
    static constexpr std::size_t kChecked = 16;  // nesting the order check follows (the encoders use 5)
    std::string_view last_key_[kChecked]{};      // the last key written at each depth
    bool in_object_[kChecked]{};                 // the container at each depth is an object
};

}  // namespace detail
FAILOVER_END_NAMESPACE
