// SPDX-License-Identifier: MIT
// OpenAI's strict structured-output subset. With `strict: true` OpenAI compiles
// the schema into a grammar and accepts only a subset of JSON Schema; anything
// else is a 400 on every request. analyze_strict() decides, before any call,
// whether a caller's schema can be sent strict without changing what it
// accepts beyond narrowing it, and returns the form to send:
// - every object gets `additionalProperties: false` where it said nothing
//   (an answer valid under the strict form is valid under the caller's schema);
// - annotations the grammar does not take (`$schema`, `$comment`, `default`,
//   `examples`, ...) are left out;
// - anything else outside the subset makes the schema not strict-ready, with
//   one reason per problem and the JSON pointer of where it is: an optional
//   property (strict requires every property), `additionalProperties` other
//   than false, `patternProperties`, keywords such as allOf / not / if /
//   dependencies / minLength, a required name with no property, a root that is
//   not an object, boolean subschemas, and the documented size limits.
// Answers are always validated against the caller's original schema, so a
// strict form never lets through what the caller's schema refuses.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "failover/detail/strict_subset.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE
namespace detail::strict {

/// What analyze_strict() found (Schema::strict_subset() caches it per schema).
using StrictForm = StrictSubset;

/// Limits of the subset, from OpenAI's structured-outputs guide.
inline constexpr std::size_t max_properties = 5000;
inline constexpr std::size_t max_object_depth = 10;
inline constexpr std::size_t max_enum_values = 1000;

inline bool is_annotation(std::string_view k) noexcept {
    return k == "$schema" || k == "$comment" || k == "default" || k == "examples" || k == "readOnly" ||
           k == "writeOnly" || k == "deprecated";
}

inline bool is_supported_keyword(std::string_view k) noexcept {
    constexpr std::string_view allowed[] = {"type",        "properties", "required", "additionalProperties",
                                            "items",       "enum",       "const",    "anyOf",
                                            "$ref",        "$defs",      "definitions", "description",
                                            "title",       "pattern",    "format",   "multipleOf",
                                            "maximum",     "exclusiveMaximum", "minimum", "exclusiveMinimum",
                                            "minItems",    "maxItems"};
    for (auto a : allowed)
        if (k == a) return true;
    return false;
}

inline bool is_supported_format(std::string_view f) noexcept {
    constexpr std::string_view formats[] = {"date-time", "time", "date",  "duration", "email",
                                            "hostname",  "ipv4", "ipv6",  "uuid"};
    for (auto a : formats)
        if (f == a) return true;
    return false;
}

inline void append_token(std::string& p, std::string_view key) {
    p += '/';
    for (char c : key) {
        if (c == '~') p += "~0";
        else if (c == '/') p += "~1";
        else p += c;
    }
}

inline bool declares_object(const nlohmann::json& node) {
    const auto t = node.find("type");
    if (t != node.end()) {
        if (t->is_string()) return *t == "object";
        if (t->is_array())
            for (const auto& x : *t)
                if (x == "object") return true;
        return false;
    }
    return node.contains("properties") || node.contains("required") || node.contains("additionalProperties");
}

/// The strict form of `schema` (a JSON Schema document), or the reasons it has none.
/// Iterative; the schema's depth is already bounded by Schema::parse.
inline StrictForm analyze_strict(const nlohmann::json& schema) {
    StrictForm out;
    auto problem = [&](const std::string& at, std::string what) {
        if (out.reasons.size() < 32) out.reasons.push_back((at.empty() ? std::string("(root)") : at) + ": " + std::move(what));
    };
    if (!schema.is_object() || !declares_object(schema)) {
        problem("", "the root must be an object schema (type: object)");
        return out;
    }
    out.document = schema;
    std::size_t properties = 0, enum_values = 0;
    struct Item {
        nlohmann::json* node;
        std::string at;
        std::size_t object_depth;
    };
    std::vector<Item> todo{{&out.document, "", 0}};
    while (!todo.empty()) {
        Item it = std::move(todo.back());
        todo.pop_back();
        nlohmann::json& node = *it.node;
        if (node.is_boolean()) {
            problem(it.at, "boolean subschemas are not supported");
            continue;
        }
        if (!node.is_object()) {
            problem(it.at, "a subschema must be an object");
            continue;
        }
        // Annotations go; unsupported keywords are reasons.
        for (auto k = node.begin(); k != node.end();) {
            if (is_annotation(k.key())) {
                k = node.erase(k);
                continue;
            }
            if (!is_supported_keyword(k.key())) {
                std::string at = it.at;
                append_token(at, k.key());
                problem(at, "'" + k.key() + "' is outside the strict subset");
            }
            ++k;
        }
        if (const auto f = node.find("format"); f != node.end() && (!f->is_string() || !is_supported_format(f->get_ref<const std::string&>()))) {
            problem(it.at + "/format", "format " + f->dump() + " is not supported in strict mode");
        }
        if (const auto e = node.find("enum"); e != node.end() && e->is_array()) enum_values += e->size();
        if (const auto r = node.find("$ref"); r != node.end() && (!r->is_string() || r->get_ref<const std::string&>().rfind('#', 0) != 0))
            problem(it.at + "/$ref", "only references inside the schema (\"#...\") are supported");

        std::size_t depth = it.object_depth;
        if (declares_object(node)) {
            ++depth;
            if (depth > max_object_depth)
                problem(it.at, "objects nest deeper than " + std::to_string(max_object_depth) + " levels");
            const auto ap = node.find("additionalProperties");
            if (ap == node.end()) node["additionalProperties"] = false;
            else if (*ap != false) problem(it.at + "/additionalProperties", "must be false in strict mode");
            const nlohmann::json empty_props = nlohmann::json::object();
            const nlohmann::json& props = node.contains("properties") && node["properties"].is_object() ? node["properties"] : empty_props;
            const nlohmann::json empty_required = nlohmann::json::array();
            const nlohmann::json& required = node.contains("required") && node["required"].is_array() ? node["required"] : empty_required;
            for (const auto& [name, sub] : props.items()) {
                bool listed = false;
                for (const auto& r : required) listed = listed || r == name;
                if (!listed) {
                    std::string at = it.at + "/properties";
                    append_token(at, name);
                    problem(at, "optional property '" + name + "': strict mode needs every property listed in required");
                }
            }
            for (const auto& r : required)
                if (!r.is_string() || !props.contains(r.get<std::string>()))
                    problem(it.at + "/required", "required name " + r.dump() + " has no property");
            properties += props.size();
        }
        auto push = [&](nlohmann::json& sub, std::string at) { todo.push_back(Item{&sub, std::move(at), depth}); };
        if (auto p = node.find("properties"); p != node.end() && p->is_object())
            for (auto& [name, sub] : p->items()) {
                std::string at = it.at + "/properties";
                append_token(at, name);
                push(sub, std::move(at));
            }
        if (auto i = node.find("items"); i != node.end()) {
            if (i->is_array()) problem(it.at + "/items", "tuple items (an array) are not supported");
            else push(*i, it.at + "/items");
        }
        if (auto a = node.find("anyOf"); a != node.end() && a->is_array()) {
            if (it.at.empty()) problem("/anyOf", "the root may not be anyOf");
            for (std::size_t k = 0; k < a->size(); ++k) push((*a)[k], it.at + "/anyOf/" + std::to_string(k));
        }
        for (const char* defs : {"$defs", "definitions"})
            if (auto d = node.find(defs); d != node.end() && d->is_object())
                for (auto& [name, sub] : d->items()) {
                    std::string at = it.at + "/" + defs;
                    append_token(at, name);
                    todo.push_back(Item{&sub, std::move(at), 0});
                }
    }
    if (properties > max_properties)
        problem("", std::to_string(properties) + " properties in all; strict mode allows " + std::to_string(max_properties));
    if (enum_values > max_enum_values)
        problem("", std::to_string(enum_values) + " enum values in all; strict mode allows " + std::to_string(max_enum_values));
    out.ready = out.reasons.empty();
    if (!out.ready) out.document = nullptr;
    return out;
}

}  // namespace detail::strict
FAILOVER_END_NAMESPACE
