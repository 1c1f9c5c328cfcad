// SPDX-License-Identifier: MIT
// A JSON Schema (draft 7, through valijson) compiled once and shared across
// threads. The only public header that includes valijson. Parsing a bad schema
// throws std::invalid_argument with valijson's reason; validation never throws
// and returns every error with the JSON pointer of the offending value.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
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
        valijson::Validator validator;
        valijson::ValidationResults results;
        valijson::adapters::NlohmannJsonAdapter target(value);
        try {
            if (validator.validate(*compiled_, target, &results)) return out;
        } catch (const std::exception& e) {
            out.push_back({"", std::string("validator error: ") + e.what()});
            return out;
        }
        valijson::ValidationResults::Error err;
        while (results.popError(err)) out.push_back({to_pointer(err.context), err.description});
        return out;
    }

    /// True when `value` is valid.
    bool accepts(const nlohmann::json& value) const { return validate(value).empty(); }

    /// The schema document, as adapters send it to providers.
    const nlohmann::json& document() const noexcept { return doc_; }

private:
    explicit Schema(nlohmann::json doc) : doc_(std::move(doc)), compiled_(std::make_unique<valijson::Schema>()) {}

    // valijson's context is {"<root>", "[key]", "[0]", ...}; RFC 6901 wants "/key/0".
    static std::string to_pointer(const std::vector<std::string>& ctx) {
        std::string p;
        for (const auto& part : ctx) {
            if (part == "<root>") continue;
            std::string_view seg = part;
            if (seg.size() >= 2 && seg.front() == '[' && seg.back() == ']') seg = seg.substr(1, seg.size() - 2);
            p += '/';
            for (char c : seg) {
                if (c == '~') p += "~0";
                else if (c == '/') p += "~1";
                else p += c;
            }
        }
        return p;
    }

    nlohmann::json doc_;
    std::unique_ptr<valijson::Schema> compiled_;
};

FAILOVER_END_NAMESPACE
