// SPDX-License-Identifier: MIT
// Schema's definitions (see schema.hpp): header-only by default, compiled once
// into failover::compiled in compiled mode. Pulls in the validator and RE2.
#pragma once

#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "failover/config.hpp"
#include "failover/detail/schema/compile.hpp"
#include "failover/detail/schema/validate.hpp"
#include "failover/detail/schema/values.hpp"
#include "failover/detail/strict_schema.hpp"
#include "failover/schema.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

FAILOVER_INLINE std::shared_ptr<const Schema> Schema::parse(std::string_view json_text, const Options& options) {
    check(options);
    // nlohmann's parser and destructor do not recurse, so a deep text is
    // parsed first and its depth checked on the tree, as for a json value
    // (a scan of the text could disagree with what the parser reads: it
    // stops at a NUL byte).
    nlohmann::json doc = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) throw ParseError("", "not valid JSON");
    return build(std::move(doc), options);
}

FAILOVER_INLINE std::shared_ptr<const Schema> Schema::parse(const char* json_text, const Options& options) {
    return parse(std::string_view(json_text), options);
}

FAILOVER_INLINE std::shared_ptr<const Schema> Schema::parse(const std::string& json_text, const Options& options) {
    return parse(std::string_view(json_text), options);
}

FAILOVER_INLINE std::shared_ptr<const Schema> Schema::parse(const nlohmann::json& doc, const Options& options) {
    check(options);
    check_document(doc);
    return build(nlohmann::json(doc), options);
}

FAILOVER_INLINE std::shared_ptr<const Schema> Schema::parse(nlohmann::json&& doc, const Options& options) {
    check(options);
    check_document(doc);
    return build(std::move(doc), options);
}

FAILOVER_INLINE Schema::Schema(nlohmann::json doc, const Options& options)
    : doc_(std::move(doc)), options_(options), program_(std::make_unique<detail::schema::Program>()) {}

FAILOVER_INLINE Schema::~Schema() = default;

FAILOVER_INLINE std::vector<Schema::Error> Schema::validate(const nlohmann::json& value) const {
    std::vector<Error> out;
    if (detail::schema::depth_of(value, max_depth) > max_depth) {
        out.push_back({"", "value nested deeper than " + std::to_string(max_depth) + " levels; not validated"});
        return out;
    }
    std::vector<detail::schema::Issue> issues;
    try {
        detail::schema::Evaluator(*program_, limits()).run(value, &issues);
    } catch (const std::exception& e) {  // out of memory
        issues.push_back({"", std::string("validation failed: ") + e.what()});
    }
    out.reserve(issues.size());
    for (auto& i : issues) out.push_back(Error{std::move(i.pointer), std::move(i.message)});
    return out;
}

FAILOVER_INLINE bool Schema::accepts(const nlohmann::json& value) const noexcept {
    try {
        if (detail::schema::depth_of(value, max_depth) > max_depth) return false;
        return detail::schema::Evaluator(*program_, limits()).run(value, nullptr);
    } catch (...) {
        return false;
    }
}

FAILOVER_INLINE const StrictSubset& Schema::strict_subset() const {
    std::call_once(strict_once_, [this] { strict_ = detail::strict::analyze_strict(doc_); });
    return strict_;
}

FAILOVER_INLINE Schema::ParseError Schema::too_deep() {
    return ParseError("", "nested deeper than " + std::to_string(max_depth) + " levels");
}

FAILOVER_INLINE void Schema::check(const Options& o) {
    if (o.max_steps == 0) throw std::invalid_argument("failover: schema: Options::max_steps must be at least 1");
    if (o.max_errors == 0) throw std::invalid_argument("failover: schema: Options::max_errors must be at least 1");
    if (o.regex_max_mem < (64 << 10))
        throw std::invalid_argument("failover: schema: Options::regex_max_mem must be at least 65536, got " +
                                    std::to_string(o.regex_max_mem));
}

FAILOVER_INLINE void Schema::check_document(const nlohmann::json& doc) {
    if (!doc.is_object() && !doc.is_boolean())
        throw ParseError("", std::string("must be a JSON object or boolean, got ") + doc.type_name());
    if (detail::schema::depth_of(doc, max_depth) > max_depth) throw too_deep();
}

FAILOVER_INLINE std::shared_ptr<const Schema> Schema::build(nlohmann::json&& doc, const Options& options) {
    check_document(doc);
    auto s = std::shared_ptr<Schema>(new Schema(std::move(doc), options));
    try {
        detail::schema::Compiler(*s->program_, options.regex_max_mem).compile(s->doc_);
    } catch (detail::schema::CompileError& e) {
        throw ParseError(std::move(e.pointer), std::move(e.reason));
    }
    return s;
}

FAILOVER_INLINE detail::schema::Limits Schema::limits() const noexcept {
    return {options_.max_steps, options_.max_errors, max_eval_depth};
}

FAILOVER_END_NAMESPACE
