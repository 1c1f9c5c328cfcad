// SPDX-License-Identifier: MIT
// A JSON Schema (draft 7, through valijson) compiled once and shared across
// threads. The only public header that includes valijson. Parsing a bad schema
// throws std::invalid_argument with valijson's reason; validation never throws
// and returns every error with the JSON pointer of the offending value.
// valijson recurses once per nesting level, so parse() rejects schemas and
// validate() refuses values nested deeper than Schema::max_depth instead of
// overflowing the stack; and parse() compiles every `pattern` up front, so a
// bad regular expression fails there rather than on each validation.
// validate() reuses valijson Validators (each caches the regexes it compiled)
// from a small per-schema pool instead of building one per call.
#pragma once

// Without this valijson prints and calls abort() on a bad schema. Its CMake
// target defines it; a build that only adds the include path would not.
#ifndef VALIJSON_USE_EXCEPTIONS
#define VALIJSON_USE_EXCEPTIONS 1
#elif !VALIJSON_USE_EXCEPTIONS
#error "failover/schema.hpp needs VALIJSON_USE_EXCEPTIONS=1: without it valijson aborts on a bad schema"
#endif

#include <algorithm>
#include <cstddef>
#include <memory>
#include <mutex>
#include <regex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// A compiled JSON Schema. Immutable after parse(); validate() is thread-safe.
class Schema {
public:
    /// One validation error: where (a JSON pointer, "" for the root) and why.
    struct Error {
        std::string pointer;
        std::string message;
    };

    /// Deepest nesting of objects and arrays accepted in a schema or a validated value.
    static constexpr std::size_t max_depth = 128;

    /// Compiles a schema from JSON text. Throws std::invalid_argument naming the problem.
    /// @code
    /// auto s = failover::Schema::parse(R"({"type":"object","required":["total"]})");
    /// @endcode
    static std::shared_ptr<const Schema> parse(std::string_view json_text) {
        nlohmann::json doc = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
        if (doc.is_discarded()) throw std::invalid_argument("failover: schema: not valid JSON");
        return parse(std::move(doc));
    }

    /// Compiles a schema from JSON text (overloads so a string literal is not ambiguous).
    static std::shared_ptr<const Schema> parse(const char* json_text) { return parse(std::string_view(json_text)); }
    static std::shared_ptr<const Schema> parse(const std::string& json_text) {
        return parse(std::string_view(json_text));
    }

    /// Compiles a schema from a parsed document. Throws std::invalid_argument naming the problem.
    static std::shared_ptr<const Schema> parse(nlohmann::json doc) {
        if (!doc.is_object() && !doc.is_boolean())
            throw std::invalid_argument("failover: schema: must be a JSON object or boolean, got " +
                                        std::string(doc.type_name()));
        if (depth_of(doc) > max_depth)
            throw std::invalid_argument("failover: schema: nested deeper than " + std::to_string(max_depth) +
                                        " levels");
        check_patterns(doc, "");
        auto s = std::shared_ptr<Schema>(new Schema(std::move(doc)));
        try {
            valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
            valijson::adapters::NlohmannJsonAdapter adapter(s->doc_);
            parser.populateSchema(adapter, *s->compiled_);
        } catch (const std::exception& e) {
            throw std::invalid_argument(std::string("failover: schema: ") + e.what());
        }
        return s;
    }

    /// Every way `value` breaks the schema; empty when it is valid.
    std::vector<Error> validate(const nlohmann::json& value) const {
        std::vector<Error> out;
        if (depth_of(value) > max_depth) {
            out.push_back({"", "value nested deeper than " + std::to_string(max_depth) + " levels; not validated"});
            return out;
        }
        if (doc_.is_boolean()) {  // valijson ignores a boolean root schema
            if (!doc_.get<bool>()) out.push_back({"", "the schema is false: no value is valid"});
            return out;
        }
        std::unique_ptr<valijson::Validator> validator = borrow_validator();
        valijson::ValidationResults results;
        valijson::adapters::NlohmannJsonAdapter target(value);
        try {
            const bool valid = validator->validate(*compiled_, target, &results);
            return_validator(std::move(validator));
            if (valid) return out;
        } catch (const std::exception& e) {
            out.push_back({"", std::string("validator error: ") + e.what()});
            return out;
        }
        valijson::ValidationResults::Error err;
        while (results.popError(err)) out.push_back({to_pointer(err.context), err.description});
        // A failed validation must never read as "no errors".
        if (out.empty()) out.push_back({"", "value does not match the schema"});
        return out;
    }

    /// True when `value` is valid.
    bool accepts(const nlohmann::json& value) const { return validate(value).empty(); }

    /// The schema document, as adapters send it to providers.
    const nlohmann::json& document() const noexcept { return doc_; }

private:
    explicit Schema(nlohmann::json doc) : doc_(std::move(doc)), compiled_(std::make_unique<valijson::Schema>()) {}

    // valijson caches the std::regex of each `pattern` in the Validator, and compiling one
    // costs tens of microseconds: a fresh Validator per call recompiled every pattern on every
    // validation. Validators are kept for reuse instead, one per concurrent caller (a
    // Validator is not thread-safe), at most max_pooled_validators.
    static constexpr std::size_t max_pooled_validators = 16;

    std::unique_ptr<valijson::Validator> borrow_validator() const {
        {
            std::lock_guard lock(pool_mutex_);
            if (!validators_.empty()) {
                std::unique_ptr<valijson::Validator> v = std::move(validators_.back());
                validators_.pop_back();
                return v;
            }
        }
        return std::make_unique<valijson::Validator>();
    }

    // Only a validator whose validate() returned is put back (one that threw is dropped).
    void return_validator(std::unique_ptr<valijson::Validator> v) const noexcept {
        std::lock_guard lock(pool_mutex_);
        if (validators_.size() < max_pooled_validators) {
            try {
                validators_.push_back(std::move(v));
            } catch (...) {  // out of memory: drop it
            }
        }
    }

    // Appends one RFC 6901 reference token ("/" + key with '~' and '/' escaped).
    static void append_token(std::string& p, std::string_view key) {
        p += '/';
        for (char c : key) {
            if (c == '~') p += "~0";
            else if (c == '/') p += "~1";
            else p += c;
        }
    }

    // valijson's context is {"<root>", "[key]", "[0]", ...}; RFC 6901 wants "/key/0".
    static std::string to_pointer(const std::vector<std::string>& ctx) {
        std::string p;
        for (const auto& part : ctx) {
            if (part == "<root>") continue;
            std::string_view seg = part;
            if (seg.size() >= 2 && seg.front() == '[' && seg.back() == ']') seg = seg.substr(1, seg.size() - 2);
            append_token(p, seg);
        }
        return p;
    }

    // Nesting depth of objects and arrays (a scalar is 0), without recursion;
    // stops counting once past max_depth.
    static std::size_t depth_of(const nlohmann::json& root) {
        std::vector<std::pair<const nlohmann::json*, std::size_t>> todo{{&root, 1}};
        std::size_t deepest = 0;
        while (!todo.empty()) {
            const auto [node, depth] = todo.back();
            todo.pop_back();
            if (!node->is_structured()) continue;
            deepest = std::max(deepest, depth);
            if (depth > max_depth) break;
            for (const auto& child : *node) todo.emplace_back(&child, depth + 1);
        }
        return deepest;
    }

    // Compiles every regular expression the schema holds ('pattern' values and
    // 'patternProperties' keys) the way valijson will. Values that are data, not
    // schemas (enum, const, default, examples), are not searched. Depth is
    // bounded by the max_depth check before it.
    static void check_patterns(const nlohmann::json& node, const std::string& at) {
        const auto compile = [](const std::string& re, const std::string& where) {
            try {
                std::regex compiled(re);
            } catch (const std::regex_error& e) {
                throw std::invalid_argument("failover: schema: invalid regular expression at " + where + " ('" + re +
                                            "'): " + e.what());
            }
        };
        if (node.is_array()) {
            for (std::size_t i = 0; i < node.size(); ++i) check_patterns(node[i], at + "/" + std::to_string(i));
            return;
        }
        if (!node.is_object()) return;
        for (const auto& [key, value] : node.items()) {
            std::string here = at;
            append_token(here, key);
            if (key == "enum" || key == "const" || key == "default" || key == "examples") continue;
            if (key == "pattern" && value.is_string()) {
                compile(value.get<std::string>(), here);
            } else if ((key == "properties" || key == "patternProperties" || key == "definitions" ||
                        key == "$defs" || key == "dependencies") &&
                       value.is_object()) {
                for (const auto& [name, sub] : value.items()) {
                    std::string sub_at = here;
                    append_token(sub_at, name);
                    if (key == "patternProperties") compile(name, sub_at);
                    check_patterns(sub, sub_at);
                }
            } else {
                check_patterns(value, here);
            }
        }
    }

    nlohmann::json doc_;
    std::unique_ptr<valijson::Schema> compiled_;
    mutable std::mutex pool_mutex_;
    mutable std::vector<std::unique_ptr<valijson::Validator>> validators_;
};

FAILOVER_END_NAMESPACE
