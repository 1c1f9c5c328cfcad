// SPDX-License-Identifier: MIT
// Compiles a draft-07 schema document into a Program: a vector of nodes (one
// per schema object or boolean) that refer to each other by index, with every
// `$ref` resolved to a node index before validation ever runs. Everything that
// can be wrong with a schema is found here and thrown as a CompileError
// carrying the JSON pointer of the offending keyword:
//   - keyword values of the wrong type or range (multipleOf <= 0, negative
//     lengths, non-finite bounds, unknown type names, empty allOf/anyOf/oneOf);
//   - `$schema` naming anything but draft 7;
//   - patterns that do not compile (see regex.hpp);
//   - `$ref`s that point nowhere, or outside the document (the draft-07
//     meta-schema excepted: it is built in), or into a cycle that applies
//     schemas to the same value forever ($ref, allOf, anyOf, oneOf, not, if,
//     then, else and schema dependencies never descend into the value);
//   - duplicate `$id`s.
// References resolve as draft 7 says: against the base URI given by the
// nearest enclosing `$id` (RFC 3986), to a resource (`$id` without fragment)
// plus a JSON-pointer fragment (%-decoded, then ~0/~1), or to a plain-name
// fragment `$id` ("#foo"). A `$ref` makes its siblings inert, `$id` included;
// `definitions` beside it stay reachable. Schema positions are only the
// draft-7 keywords (and `$defs`, read like `definitions`); `$id`s inside
// enum, const or unknown keywords identify nothing, but a `$ref` may still
// point into such places by JSON pointer.
// Compilation recurses once per nesting level of the document, which
// Schema::parse has bounded (Schema::max_depth) before calling in.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "failover/detail/schema/formats.hpp"
#include "failover/detail/schema/meta_schema.hpp"
#include "failover/detail/schema/numbers.hpp"
#include "failover/detail/schema/regex.hpp"
#include "failover/detail/schema/uri.hpp"
#include "failover/detail/schema/values.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

namespace detail::schema {

/// "No node": an absent subschema.
inline constexpr std::uint32_t no_node = 0xFFFFFFFFu;

/// Bits of Node::types.
enum TypeBit : std::uint8_t {
    type_null = 1,
    type_boolean = 2,
    type_object = 4,
    type_array = 8,
    type_number = 16,
    type_string = 32,
    type_integer = 64,
};

/// The base URI of a document without `$id` (relative references resolve against it).
inline constexpr std::string_view default_base_uri = "failover-schema:///root.json";

struct NumberRules {
    std::optional<Number> minimum, maximum, exclusive_minimum, exclusive_maximum;
    std::optional<Decimal> multiple_of;
    Number multiple_of_value{};
};

struct StringRules {
    std::optional<std::uint64_t> min_length, max_length;
    const Regex* pattern = nullptr;
    std::string pattern_text;
    Format format = Format::none;
    std::string format_name;
    Encoding encoding = Encoding::none;
    bool json_media = false;
};

struct ArrayRules {
    std::uint32_t items = no_node;     ///< one schema for every item
    std::vector<std::uint32_t> tuple;  ///< `items` given as an array
    bool is_tuple = false;
    std::uint32_t additional_items = no_node;
    std::optional<std::uint64_t> min_items, max_items;
    bool unique_items = false;
    std::uint32_t contains = no_node;
};

struct Dependency {
    std::string property;
    std::vector<std::string> required;  ///< the array form
    std::uint32_t schema = no_node;     ///< the schema form
};

struct PatternProperty {
    const Regex* regex = nullptr;
    std::string text;
    std::uint32_t schema = no_node;
};

struct ObjectRules {
    std::optional<std::uint64_t> min_properties, max_properties;
    std::vector<std::string> required;
    std::vector<std::string> required_sorted;                         ///< required, sorted by name
    std::vector<std::pair<std::string, std::uint32_t>> properties;  ///< sorted by name
    std::vector<PatternProperty> pattern_properties;
    std::uint32_t additional_properties = no_node;
    std::vector<Dependency> dependencies;
    std::uint32_t property_names = no_node;

};

struct LogicRules {
    std::vector<std::uint32_t> all_of, any_of, one_of;
    std::uint32_t not_ = no_node, if_ = no_node, then_ = no_node, else_ = no_node;
};

struct ValueRules {
    const nlohmann::json* const_value = nullptr;  ///< points into the schema document
    bool has_enum = false;
    std::vector<const nlohmann::json*> enum_values;
    std::vector<std::pair<std::uint64_t, std::uint32_t>> enum_hashes;  ///< (hash, index), sorted
};

/// One compiled schema. Keyword groups that are absent stay null.
struct Node {
    std::string location;  ///< JSON pointer of the schema in its document
    bool is_boolean = false;
    bool boolean = true;
    std::uint32_t ref = no_node;  ///< draft 7: a $ref replaces every other keyword
    std::uint8_t types = 0;       ///< TypeBit mask; 0 = any type
    std::unique_ptr<NumberRules> number;
    std::unique_ptr<StringRules> string;
    std::unique_ptr<ArrayRules> array;
    std::unique_ptr<ObjectRules> object;
    std::unique_ptr<LogicRules> logic;
    std::unique_ptr<ValueRules> value;
};

/// A compiled schema: immutable once built, shared by every validation.
struct Program {
    std::vector<Node> nodes;
    std::vector<std::unique_ptr<Regex>> regexes;
    std::uint32_t root = 0;
    std::int64_t regex_max_mem = 0;
};

/// What is wrong with a schema, and where (a JSON pointer into the document).
struct CompileError {
    std::string pointer;
    std::string reason;
};

/// The type name of a JSON value in JSON Schema's vocabulary.
inline const char* json_type_name(const nlohmann::json& j) noexcept {
    switch (j.type()) {
        case nlohmann::json::value_t::null: return "null";
        case nlohmann::json::value_t::boolean: return "boolean";
        case nlohmann::json::value_t::object: return "object";
        case nlohmann::json::value_t::array: return "array";
        case nlohmann::json::value_t::string: return "string";
        case nlohmann::json::value_t::number_float:
            return Number::of(j).is_integer() ? "integer" : "number";
        case nlohmann::json::value_t::number_integer:
        case nlohmann::json::value_t::number_unsigned: return "integer";
        default: return "binary";
    }
}

/// Builds a Program from a document; throws CompileError.
class Compiler {
public:
    Compiler(Program& program, std::int64_t regex_max_mem) : p_(program) { p_.regex_max_mem = regex_max_mem; }

    /// Compiles `doc` (already known to be an object or boolean within Schema::max_depth).
    void compile(const nlohmann::json& doc) {
        docs_.push_back(&doc);
        resources_.emplace(std::string(default_base_uri), Location{0, "", &doc});
        p_.root = schema(0, doc, "", std::string(default_base_uri));
        while (!pending_.empty()) {
            const PendingRef r = std::move(pending_.front());
            pending_.pop_front();
            const std::uint32_t target = resolve_ref(r);
            p_.nodes[r.node].ref = target;
        }
        collapse_ref_chains();
        check_cycles();
    }

private:
    struct Location {
        std::uint32_t doc = 0;
        std::string pointer;
        const nlohmann::json* value = nullptr;
    };
    struct PendingRef {
        std::uint32_t node = 0;
        std::uint32_t doc = 0;
        std::string pointer;  // of the $ref keyword
        std::string ref;
        std::string base;
    };

    static std::string key(std::uint32_t doc, const std::string& pointer) {
        return std::to_string(doc) + ":" + pointer;
    }

    std::string display(std::uint32_t doc, const std::string& pointer) const {
        return doc == 0 ? pointer : "(draft-07 meta-schema)" + pointer;
    }

    [[noreturn]] void fail(std::uint32_t doc, const std::string& pointer, std::string reason) const {
        throw CompileError{display(doc, pointer), std::move(reason)};
    }

    static std::string child(const std::string& pointer, std::string_view token) {
        std::string s = pointer;
        append_token(s, token);
        return s;
    }

    // ---- schemas and keywords -------------------------------------------------------------

    std::uint32_t schema(std::uint32_t doc, const nlohmann::json& j, const std::string& pointer, const std::string& base) {
        std::string k = key(doc, pointer);
        if (const auto it = at_.find(k); it != at_.end()) return it->second;
        const auto idx = static_cast<std::uint32_t>(p_.nodes.size());
        p_.nodes.emplace_back();
        p_.nodes.back().location = display(doc, pointer);
        base_.push_back(base);
        at_.emplace(std::move(k), idx);
        if (j.is_boolean()) {
            p_.nodes[idx].is_boolean = true;
            p_.nodes[idx].boolean = j.get<bool>();
            return idx;
        }
        if (!j.is_object())
            fail(doc, pointer, std::string("a schema must be an object or a boolean, got ") + j.type_name());
        keywords(idx, doc, j, pointer, base);
        return idx;
    }

    void check_schema_uri(std::uint32_t doc, const nlohmann::json& j, const std::string& pointer) const {
        const auto it = j.find("$schema");
        if (it == j.end()) return;
        const std::string at = child(pointer, "$schema");
        if (!it->is_string()) fail(doc, at, "$schema must be a string");
        std::string_view uri = it->get_ref<const std::string&>();
        if (!uri.empty() && uri.back() == '#') uri.remove_suffix(1);
        if (uri == draft7_uri || uri == "https://json-schema.org/draft-07/schema") return;
        fail(doc, at,
             "unsupported $schema " + quote(it->get_ref<const std::string&>(), 200) +
                 ": only draft 7 (http://json-schema.org/draft-07/schema#) is implemented");
    }

    // Registers a `$id`; returns the base URI for the schema's own keywords and children.
    std::string register_id(std::uint32_t doc, const nlohmann::json& j, const std::string& pointer, const std::string& base) {
        const auto it = j.find("$id");
        if (it == j.end()) return base;
        const std::string at = child(pointer, "$id");
        if (!it->is_string()) fail(doc, at, "$id must be a string");
        const std::string& text = it->get_ref<const std::string&>();
        const UriRef id = UriRef::split(text);
        if (id.has_fragment && !id.fragment.empty() && id.fragment.front() == '/')
            fail(doc, at, "$id " + quote(text, 200) + " must not have a JSON-pointer fragment");
        const UriRef full = resolve(UriRef::split(base), id);
        const std::string without = full.str(false);
        const Location here{doc, pointer, &j};
        const bool changes_base = id.has_scheme || id.has_authority || !id.path.empty() || id.has_query;
        if (changes_base) {
            const auto [pos, inserted] = resources_.emplace(without, here);
            if (!inserted && (pos->second.doc != doc || pos->second.pointer != pointer) &&
                !(full.has_fragment && !full.fragment.empty()))
                fail(doc, at, "duplicate $id " + quote(without, 200) + " (also at " + display(pos->second.doc, pos->second.pointer) + ")");
        }
        if (full.has_fragment && !full.fragment.empty()) {
            const auto decoded = percent_decode(full.fragment);
            const std::string name = without + "#" + (decoded ? *decoded : full.fragment);
            const auto [pos, inserted] = anchors_.emplace(name, here);
            if (!inserted && (pos->second.doc != doc || pos->second.pointer != pointer))
                fail(doc, at, "duplicate $id " + quote(name, 200) + " (also at " + display(pos->second.doc, pos->second.pointer) + ")");
        }
        return changes_base ? without : base;
    }

    std::optional<Number> number_kw(std::uint32_t doc, const nlohmann::json& j, const std::string& pointer,
                                    const char* kw) const {
        const auto it = j.find(kw);
        if (it == j.end()) return std::nullopt;
        if (!it->is_number())
            fail(doc, child(pointer, kw),
                 std::string(kw) + " must be a number" +
                     (it->is_boolean() ? " (a boolean here is draft 4; draft 7 takes the bound itself)" : ""));
        const Number n = Number::of(*it);
        if (!n.is_finite()) fail(doc, child(pointer, kw), std::string(kw) + " must be a finite number");
        return n;
    }

    std::optional<std::uint64_t> count_kw(std::uint32_t doc, const nlohmann::json& j, const std::string& pointer,
                                          const char* kw) const {
        const auto it = j.find(kw);
        if (it == j.end()) return std::nullopt;
        const std::string at = child(pointer, kw);
        if (!it->is_number()) fail(doc, at, std::string(kw) + " must be a non-negative integer");
        const Number n = Number::of(*it);
        if (!n.is_integer() || compare(n, Number{}) == std::partial_ordering::less)
            fail(doc, at, std::string(kw) + " must be a non-negative integer, got " + n.text());
        if (n.kind == Number::Kind::int64) return static_cast<std::uint64_t>(n.i);
        if (n.kind == Number::Kind::uint64) return n.u;
        return n.d >= 18446744073709551616.0 ? UINT64_MAX : static_cast<std::uint64_t>(n.d);
    }

    const Regex* regex(std::uint32_t doc, const std::string& text, const std::string& at) {
        std::string error;
        auto re = Regex::compile(text, p_.regex_max_mem, error);
        if (!re) fail(doc, at, "invalid regular expression " + quote(text, 200) + ": " + error);
        p_.regexes.push_back(std::move(re));
        return p_.regexes.back().get();
    }

    std::uint32_t sub(std::uint32_t doc, const nlohmann::json& j, const std::string& pointer, const char* kw,
                      const std::string& base) {
        const auto it = j.find(kw);
        if (it == j.end()) return no_node;
        return schema(doc, *it, child(pointer, kw), base);
    }

    std::vector<std::uint32_t> schema_array(std::uint32_t doc, const nlohmann::json& v, const std::string& at,
                                            const char* kw, const std::string& base) {
        if (!v.is_array() || v.empty()) fail(doc, at, std::string(kw) + " must be a non-empty array of schemas");
        std::vector<std::uint32_t> out;
        out.reserve(v.size());
        for (std::size_t i = 0; i < v.size(); ++i) out.push_back(schema(doc, v[i], child(at, std::to_string(i)), base));
        return out;
    }

    void schema_map(std::uint32_t doc, const nlohmann::json& j, const std::string& pointer, const char* kw,
                    const std::string& base) {
        const auto it = j.find(kw);
        if (it == j.end()) return;
        const std::string at = child(pointer, kw);
        if (!it->is_object()) fail(doc, at, std::string(kw) + " must be an object of schemas");
        for (auto e = it->begin(); e != it->end(); ++e) schema(doc, e.value(), child(at, e.key()), base);
    }

    std::vector<std::string> string_array(std::uint32_t doc, const nlohmann::json& v, const std::string& at,
                                          const std::string& what) const {
        if (!v.is_array()) fail(doc, at, what + " must be an array of strings");
        std::vector<std::string> out;
        out.reserve(v.size());
        for (std::size_t i = 0; i < v.size(); ++i) {
            if (!v[i].is_string()) fail(doc, child(at, std::to_string(i)), what + " must be an array of strings");
            out.push_back(v[i].get<std::string>());
        }
        return out;
    }

    void keywords(std::uint32_t idx, std::uint32_t doc, const nlohmann::json& j, const std::string& pointer,
                  const std::string& parent_base) {
        check_schema_uri(doc, j, pointer);
        if (const auto it = j.find("$ref"); it != j.end()) {
            const std::string at = child(pointer, "$ref");
            if (!it->is_string()) fail(doc, at, "$ref must be a string");
            pending_.push_back(PendingRef{idx, doc, at, it->get<std::string>(), parent_base});
            // Draft 7: every other keyword beside $ref is ignored. Definitions stay
            // reachable by pointer, so the $ids inside them are registered.
            schema_map(doc, j, pointer, "definitions", parent_base);
            schema_map(doc, j, pointer, "$defs", parent_base);
            return;
        }
        const std::string base = register_id(doc, j, pointer, parent_base);
        base_[idx] = base;

        std::uint8_t types = 0;
        if (const auto it = j.find("type"); it != j.end()) {
            const std::string at = child(pointer, "type");
            const auto bit = [&](const nlohmann::json& name, const std::string& where) -> std::uint8_t {
                if (!name.is_string()) fail(doc, where, "type must be a type name or an array of type names");
                const std::string& s = name.get_ref<const std::string&>();
                if (s == "null") return type_null;
                if (s == "boolean") return type_boolean;
                if (s == "object") return type_object;
                if (s == "array") return type_array;
                if (s == "number") return type_number;
                if (s == "string") return type_string;
                if (s == "integer") return type_integer;
                fail(doc, where, "unknown type name " + quote(s) +
                                     " (expected null, boolean, object, array, number, string or integer)");
            };
            if (it->is_array()) {
                if (it->empty()) fail(doc, at, "type must not be an empty array");
                for (std::size_t i = 0; i < it->size(); ++i) {
                    const std::uint8_t b = bit((*it)[i], child(at, std::to_string(i)));
                    if (types & b) fail(doc, child(at, std::to_string(i)), "type names must be unique");
                    types = static_cast<std::uint8_t>(types | b);
                }
            } else {
                types = bit(*it, at);
            }
        }

        // const and enum
        std::unique_ptr<ValueRules> value;
        if (const auto it = j.find("const"); it != j.end()) {
            value = std::make_unique<ValueRules>();
            value->const_value = &*it;
        }
        if (const auto it = j.find("enum"); it != j.end()) {
            if (!it->is_array()) fail(doc, child(pointer, "enum"), "enum must be an array");
            if (!value) value = std::make_unique<ValueRules>();
            value->has_enum = true;
            std::uint64_t work = 0;
            for (std::size_t i = 0; i < it->size(); ++i) {
                value->enum_values.push_back(&(*it)[i]);
                value->enum_hashes.emplace_back(json_hash((*it)[i], work), static_cast<std::uint32_t>(i));
            }
            std::sort(value->enum_hashes.begin(), value->enum_hashes.end());
        }

        // numbers
        auto number = std::make_unique<NumberRules>();
        number->minimum = number_kw(doc, j, pointer, "minimum");
        number->maximum = number_kw(doc, j, pointer, "maximum");
        number->exclusive_minimum = number_kw(doc, j, pointer, "exclusiveMinimum");
        number->exclusive_maximum = number_kw(doc, j, pointer, "exclusiveMaximum");
        if (const auto m = number_kw(doc, j, pointer, "multipleOf")) {
            if (compare(*m, Number{}) != std::partial_ordering::greater)
                fail(doc, child(pointer, "multipleOf"), "multipleOf must be greater than 0, got " + m->text());
            number->multiple_of = decimal_of(*m);
            number->multiple_of_value = *m;
        }
        const bool has_number = number->minimum || number->maximum || number->exclusive_minimum ||
                                number->exclusive_maximum || number->multiple_of;

        // strings
        auto string = std::make_unique<StringRules>();
        string->min_length = count_kw(doc, j, pointer, "minLength");
        string->max_length = count_kw(doc, j, pointer, "maxLength");
        if (const auto it = j.find("pattern"); it != j.end()) {
            const std::string at = child(pointer, "pattern");
            if (!it->is_string()) fail(doc, at, "pattern must be a string");
            string->pattern_text = it->get<std::string>();
            string->pattern = regex(doc, string->pattern_text, at);
        }
        if (const auto it = j.find("format"); it != j.end()) {
            if (!it->is_string()) fail(doc, child(pointer, "format"), "format must be a string");
            string->format_name = it->get<std::string>();
            string->format = format_of(string->format_name);
        }
        if (const auto it = j.find("contentEncoding"); it != j.end()) {
            if (!it->is_string()) fail(doc, child(pointer, "contentEncoding"), "contentEncoding must be a string");
            std::string e = it->get<std::string>();
            std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
            if (e == "base64") string->encoding = Encoding::base64;
        }
        if (const auto it = j.find("contentMediaType"); it != j.end()) {
            if (!it->is_string()) fail(doc, child(pointer, "contentMediaType"), "contentMediaType must be a string");
            std::string m = it->get<std::string>();
            m = m.substr(0, m.find(';'));
            while (!m.empty() && m.back() == ' ') m.pop_back();
            std::transform(m.begin(), m.end(), m.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
            string->json_media = m == "application/json";
        }
        const bool has_string = string->min_length || string->max_length || string->pattern ||
                                string->format != Format::none || string->encoding != Encoding::none ||
                                string->json_media;

        // arrays
        auto array = std::make_unique<ArrayRules>();
        if (const auto it = j.find("items"); it != j.end()) {
            const std::string at = child(pointer, "items");
            if (it->is_array()) {
                array->is_tuple = true;
                for (std::size_t i = 0; i < it->size(); ++i)
                    array->tuple.push_back(schema(doc, (*it)[i], child(at, std::to_string(i)), base));
            } else {
                array->items = schema(doc, *it, at, base);
            }
        }
        array->additional_items = sub(doc, j, pointer, "additionalItems", base);
        array->min_items = count_kw(doc, j, pointer, "minItems");
        array->max_items = count_kw(doc, j, pointer, "maxItems");
        if (const auto it = j.find("uniqueItems"); it != j.end()) {
            if (!it->is_boolean()) fail(doc, child(pointer, "uniqueItems"), "uniqueItems must be a boolean");
            array->unique_items = it->get<bool>();
        }
        array->contains = sub(doc, j, pointer, "contains", base);
        const bool has_array = array->is_tuple || array->items != no_node || array->min_items || array->max_items ||
                               array->unique_items || array->contains != no_node;
        // additionalItems only matters beside an items array
        if (!array->is_tuple) array->additional_items = no_node;

        // objects
        auto object = std::make_unique<ObjectRules>();
        object->min_properties = count_kw(doc, j, pointer, "minProperties");
        object->max_properties = count_kw(doc, j, pointer, "maxProperties");
        if (const auto it = j.find("required"); it != j.end()) {
            object->required = string_array(doc, *it, child(pointer, "required"), "required");
            object->required_sorted = object->required;
            std::sort(object->required_sorted.begin(), object->required_sorted.end());
            if (std::adjacent_find(object->required_sorted.begin(), object->required_sorted.end()) !=
                object->required_sorted.end())
                fail(doc, child(pointer, "required"), "required must not list a name twice");
        }
        if (const auto it = j.find("properties"); it != j.end()) {
            const std::string at = child(pointer, "properties");
            if (!it->is_object()) fail(doc, at, "properties must be an object of schemas");
            for (auto e = it->begin(); e != it->end(); ++e)
                object->properties.emplace_back(e.key(), schema(doc, e.value(), child(at, e.key()), base));
            std::sort(object->properties.begin(), object->properties.end());  // std::map order already, kept explicit
        }
        if (const auto it = j.find("patternProperties"); it != j.end()) {
            const std::string at = child(pointer, "patternProperties");
            if (!it->is_object()) fail(doc, at, "patternProperties must be an object of schemas");
            for (auto e = it->begin(); e != it->end(); ++e) {
                const std::string where = child(at, e.key());
                PatternProperty pp;
                pp.regex = regex(doc, e.key(), where);
                pp.text = e.key();
                pp.schema = schema(doc, e.value(), where, base);
                object->pattern_properties.push_back(std::move(pp));
            }
        }
        object->additional_properties = sub(doc, j, pointer, "additionalProperties", base);
        if (const auto it = j.find("dependencies"); it != j.end()) {
            const std::string at = child(pointer, "dependencies");
            if (!it->is_object()) fail(doc, at, "dependencies must be an object");
            for (auto e = it->begin(); e != it->end(); ++e) {
                const std::string where = child(at, e.key());
                Dependency d;
                d.property = e.key();
                if (e.value().is_array()) d.required = string_array(doc, e.value(), where, "a property dependency");
                else if (e.value().is_object() || e.value().is_boolean()) d.schema = schema(doc, e.value(), where, base);
                else fail(doc, where, "a dependency must be an array of property names or a schema");
                object->dependencies.push_back(std::move(d));
            }
        }
        object->property_names = sub(doc, j, pointer, "propertyNames", base);
        const bool has_object = object->min_properties || object->max_properties || !object->required.empty() ||
                                !object->properties.empty() || !object->pattern_properties.empty() ||
                                object->additional_properties != no_node || !object->dependencies.empty() ||
                                object->property_names != no_node;

        // combinators
        auto logic = std::make_unique<LogicRules>();
        for (const char* kw : {"allOf", "anyOf", "oneOf"}) {
            const auto it = j.find(kw);
            if (it == j.end()) continue;
            auto list = schema_array(doc, *it, child(pointer, kw), kw, base);
            const std::string_view name = kw;
            if (name == "allOf") logic->all_of = std::move(list);
            else if (name == "anyOf") logic->any_of = std::move(list);
            else logic->one_of = std::move(list);
        }
        logic->not_ = sub(doc, j, pointer, "not", base);
        logic->if_ = sub(doc, j, pointer, "if", base);
        logic->then_ = sub(doc, j, pointer, "then", base);
        logic->else_ = sub(doc, j, pointer, "else", base);
        if (logic->then_ == no_node && logic->else_ == no_node) logic->if_ = no_node;  // `if` alone asserts nothing
        const bool has_logic = !logic->all_of.empty() || !logic->any_of.empty() || !logic->one_of.empty() ||
                               logic->not_ != no_node || logic->if_ != no_node;

        // Schemas kept for reference only.
        schema_map(doc, j, pointer, "definitions", base);
        schema_map(doc, j, pointer, "$defs", base);

        Node& n = p_.nodes[idx];
        n.types = types;
        n.value = std::move(value);
        if (has_number) n.number = std::move(number);
        if (has_string) n.string = std::move(string);
        if (has_array) n.array = std::move(array);
        if (has_object) n.object = std::move(object);
        if (has_logic) n.logic = std::move(logic);
    }

    // ---- references ----------------------------------------------------------------------

    static bool is_meta_schema_uri(std::string_view uri) noexcept {
        return uri == draft7_uri || uri == "https://json-schema.org/draft-07/schema";
    }

    void load_meta_schema() {
        if (docs_.size() > 1) return;
        docs_.push_back(&draft7_meta_schema());
        (void)schema(1, *docs_[1], "", std::string(draft7_uri));
        const auto it = resources_.find(std::string(draft7_uri));
        if (it != resources_.end()) resources_.emplace("https://json-schema.org/draft-07/schema", it->second);
    }

    // The node for the schema at a location, compiled on first use with the base
    // URI of its nearest compiled ancestor.
    std::uint32_t at_location(std::uint32_t doc, const std::string& pointer, const nlohmann::json& value) {
        if (const auto it = at_.find(key(doc, pointer)); it != at_.end()) return it->second;
        std::string base = doc == 0 ? std::string(default_base_uri) : std::string(draft7_uri);
        std::string p = pointer;
        while (!p.empty()) {
            p.erase(p.rfind('/'));
            if (const auto it = at_.find(key(doc, p)); it != at_.end()) {
                base = base_[it->second];
                break;
            }
        }
        return schema(doc, value, pointer, base);
    }

    [[noreturn]] void fail_remote(const PendingRef& r, const std::string& resolved) const {
        std::string msg = "$ref " + quote(r.ref, 200);
        if (resolved != r.ref && resolved.rfind(default_base_uri, 0) != 0) msg += " (resolved to " + quote(resolved, 200) + ")";
        msg += " is outside this document: remote references are not fetched (only the draft-07 meta-schema is built in)";
        fail(r.doc, r.pointer, msg);
    }

    std::uint32_t resolve_ref(const PendingRef& r) {
        const UriRef full = resolve(UriRef::split(r.base), UriRef::split(r.ref));
        const std::string without = full.str(false);
        const auto decoded = percent_decode(full.has_fragment ? full.fragment : std::string());
        if (!decoded) fail(r.doc, r.pointer, "$ref " + quote(r.ref, 200) + " has a bad %-escape");
        if (decoded->empty() || decoded->front() == '/') {
            auto it = resources_.find(without);
            if (it == resources_.end() && is_meta_schema_uri(without)) {
                load_meta_schema();
                it = resources_.find(without);
            }
            if (it == resources_.end()) fail_remote(r, full.str());
            const auto tokens = pointer_tokens(*decoded);
            if (!tokens) fail(r.doc, r.pointer, "$ref " + quote(r.ref, 200) + ": the fragment is not a valid JSON pointer");
            const Location& loc = it->second;
            const nlohmann::json* cur = loc.value;
            std::string pointer = loc.pointer;
            for (const std::string& t : *tokens) {
                if (cur->is_object()) {
                    const auto m = cur->find(t);
                    if (m == cur->end()) cur = nullptr;
                    else cur = &*m;
                } else if (cur->is_array()) {
                    const bool index = !t.empty() && t.size() <= 9 &&
                                       std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
                                       (t.size() == 1 || t[0] != '0');
                    const std::size_t i = index ? std::stoul(t) : 0;
                    cur = index && i < cur->size() ? &(*cur)[i] : nullptr;
                } else {
                    cur = nullptr;
                }
                if (!cur) fail(r.doc, r.pointer, "$ref " + quote(r.ref, 200) + " points to nothing in the document");
                append_token(pointer, t);
            }
            if (!cur->is_object() && !cur->is_boolean())
                fail(r.doc, r.pointer, "$ref " + quote(r.ref, 200) + " points to a " + cur->type_name() + ", not a schema");
            return at_location(loc.doc, pointer, *cur);
        }
        const std::string name = without + "#" + *decoded;
        auto it = anchors_.find(name);
        if (it == anchors_.end() && is_meta_schema_uri(without)) {
            load_meta_schema();
            it = anchors_.find(name);
        }
        if (it == anchors_.end()) {
            if (resources_.count(without) == 0) fail_remote(r, full.str());
            fail(r.doc, r.pointer, "$ref " + quote(r.ref, 200) + ": no schema has $id \"#" + *decoded + "\"");
        }
        return at_location(it->second.doc, it->second.pointer, *it->second.value);
    }

    // Points every $ref at the end of its chain ($ref to $ref to ...), refusing loops.
    void collapse_ref_chains() {
        auto& nodes = p_.nodes;
        std::vector<std::uint8_t> state(nodes.size(), 0);  // 0 new, 1 on the current chain, 2 final
        std::vector<std::uint32_t> chain;
        for (std::uint32_t i = 0; i < nodes.size(); ++i) {
            if (nodes[i].ref == no_node || state[i] != 0) continue;
            chain.clear();
            std::uint32_t t = i;
            while (nodes[t].ref != no_node && state[t] == 0) {
                state[t] = 1;
                chain.push_back(t);
                t = nodes[t].ref;
            }
            if (nodes[t].ref != no_node && state[t] == 1) {
                std::string path;
                for (const std::uint32_t c : chain) path += (path.empty() ? "" : " -> ") + pointer_text(nodes[c].location);
                throw CompileError{nodes[t].location + "/$ref",
                                   "$ref cycle that never reaches a schema: " + path + " -> " + pointer_text(nodes[t].location)};
            }
            const std::uint32_t final_target = nodes[t].ref == no_node ? t : nodes[t].ref;
            for (const std::uint32_t c : chain) {
                nodes[c].ref = final_target;
                state[c] = 2;
            }
        }
    }

    // Schemas applied to the same value as their parent: following only these
    // edges must never come back to where it started.
    void in_place_edges(std::uint32_t n, std::vector<std::uint32_t>& out) const {
        out.clear();
        const Node& node = p_.nodes[n];
        if (node.ref != no_node) {
            out.push_back(node.ref);
            return;
        }
        if (node.logic) {
            const LogicRules& l = *node.logic;
            out.insert(out.end(), l.all_of.begin(), l.all_of.end());
            out.insert(out.end(), l.any_of.begin(), l.any_of.end());
            out.insert(out.end(), l.one_of.begin(), l.one_of.end());
            for (const std::uint32_t s : {l.not_, l.if_, l.then_, l.else_})
                if (s != no_node) out.push_back(s);
        }
        if (node.object)
            for (const Dependency& d : node.object->dependencies)
                if (d.schema != no_node) out.push_back(d.schema);
    }

    void check_cycles() const {
        const auto& nodes = p_.nodes;
        std::vector<std::uint8_t> color(nodes.size(), 0);  // 0 white, 1 on the stack, 2 done
        struct Frame {
            std::uint32_t node;
            std::vector<std::uint32_t> edges;
            std::size_t next;
        };
        std::vector<Frame> stack;
        for (std::uint32_t start = 0; start < nodes.size(); ++start) {
            if (color[start] != 0) continue;
            stack.push_back({start, {}, 0});
            in_place_edges(start, stack.back().edges);
            color[start] = 1;
            while (!stack.empty()) {
                Frame& f = stack.back();
                if (f.next == f.edges.size()) {
                    color[f.node] = 2;
                    stack.pop_back();
                    continue;
                }
                const std::uint32_t v = f.edges[f.next++];
                if (color[v] == 1) {
                    std::size_t from = 0;
                    while (stack[from].node != v) ++from;
                    std::string path, where;
                    for (std::size_t k = from; k < stack.size(); ++k) {
                        const Node& n = nodes[stack[k].node];
                        path += pointer_text(n.location) + " -> ";
                        if (where.empty() && n.ref != no_node) where = n.location + "/$ref";
                    }
                    path += pointer_text(nodes[v].location);
                    if (where.empty()) where = nodes[v].location;
                    throw CompileError{where, "$ref cycle that never descends into the value (it would recurse forever): " + path};
                }
                if (color[v] == 0) {
                    color[v] = 1;
                    stack.push_back({v, {}, 0});
                    in_place_edges(v, stack.back().edges);
                }
            }
        }
    }

    Program& p_;
    std::vector<const nlohmann::json*> docs_;
    std::unordered_map<std::string, std::uint32_t> at_;     // "doc:pointer" -> node
    std::vector<std::string> base_;                         // per node: the base URI its keywords resolve against
    std::unordered_map<std::string, Location> resources_;   // absolute URI without fragment -> schema
    std::unordered_map<std::string, Location> anchors_;     // absolute URI + "#name" -> schema
    std::deque<PendingRef> pending_;
};

}  // namespace detail::schema

FAILOVER_END_NAMESPACE
