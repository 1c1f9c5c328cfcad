// SPDX-License-Identifier: MIT
// A JSON Schema (draft 7) compiled once and shared across threads: the gate
// every structured answer from a provider (untrusted input) goes through.
// Our own validator (detail/schema/*), because an answer must never crash or
// hang the process whatever it holds and whatever the schema says:
//   - parse() refuses every malformed schema with std::invalid_argument
//     (a Schema::ParseError carrying the JSON pointer of the keyword): bad
//     keyword values, unknown $schema drafts, patterns RE2 cannot compile,
//     $refs that point nowhere or outside the document (the draft-07
//     meta-schema is built in), $ref cycles that would recurse forever, and
//     documents nested deeper than max_depth (checked before anything copies
//     or walks the document recursively);
//   - validate() never throws, and its cost is bounded: patterns run on RE2
//     (linear time, no recursion on the text), numbers compare exactly (no
//     64-bit wrap, no lossy casts, decimal multipleOf), uniqueItems and enum
//     hash, every step counts against Options::max_steps, and recursion is
//     bounded by the value's depth (checked first) and a hard cap.
// Every error carries an RFC 6901 pointer into the value. The definitions are
// in detail/schema-inl.hpp (the only header that includes RE2, through
// detail/schema/regex.hpp), compiled once in compiled mode.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "failover/config.hpp"
#include "failover/detail/strict_subset.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

namespace detail::schema {
struct Program;
struct Limits;
}  // namespace detail::schema

/// How much work one compiled Schema may do; given to Schema::parse.
struct SchemaOptions {
    /// Work steps one validate()/accepts() call may take; past it the value is
    /// reported invalid ("work budget ... exceeded"). A step is roughly one
    /// schema applied to one value; a regex search costs its worst case. The
    /// default lets an 8 MiB answer through any sensible schema and stops an
    /// exponential blow-up within about a second.
    std::uint64_t max_steps = 20'000'000;
    /// Errors validate() lists at most; one more entry then says some were left out.
    std::size_t max_errors = 100;
    /// Bytes RE2 may use for one compiled pattern to match (its program and DFA
    /// caches, grown on demand). Programs themselves are capped at about 20,000
    /// instructions whatever this says; a pattern over that is refused at parse.
    std::int64_t regex_max_mem = 2 << 20;
};

/// A compiled JSON Schema (draft 7). Immutable after parse(); validate() is thread-safe.
class Schema {
public:
    /// The options type (SchemaOptions).
    using Options = SchemaOptions;

    /// One validation error: where (a JSON pointer into the value, "" for the root) and why.
    struct Error {
        std::string pointer;
        std::string message;
    };

    /// What parse() throws: the reason, and the JSON pointer of the offending keyword in the schema.
    class ParseError : public std::invalid_argument {
    public:
        /// `pointer` is "" when the problem is the document as a whole.
        ParseError(std::string pointer, std::string reason)
            : std::invalid_argument("failover: schema: " + (pointer.empty() ? std::string() : "at " + pointer + ": ") +
                                    reason),
              pointer_(std::move(pointer)),
              reason_(std::move(reason)) {}
        /// JSON pointer of the keyword in the schema document ("" for the document itself).
        const std::string& pointer() const noexcept { return pointer_; }
        /// The reason alone.
        const std::string& reason() const noexcept { return reason_; }

    private:
        std::string pointer_;
        std::string reason_;
    };

    /// Deepest nesting of objects and arrays accepted in a schema or a validated value.
    static constexpr std::size_t max_depth = 128;

    /// Most schemas applied inside one another during a validation (a runtime backstop).
    static constexpr std::size_t max_eval_depth = 1024;

    /// Compiles a schema from JSON text. Throws std::invalid_argument (ParseError) naming the problem.
    /// @code
    /// auto s = failover::Schema::parse(R"({"type":"object","required":["total"]})");
    /// @endcode
    static std::shared_ptr<const Schema> parse(std::string_view json_text, const Options& options = {});
    /// Compiles a schema from JSON text (overloads so a string literal is not ambiguous).
    static std::shared_ptr<const Schema> parse(const char* json_text, const Options& options = {});
    /// Compiles a schema from JSON text.
    static std::shared_ptr<const Schema> parse(const std::string& json_text, const Options& options = {});
    /// Compiles a schema from a parsed document; its depth is checked before it is copied.
    static std::shared_ptr<const Schema> parse(const nlohmann::json& doc, const Options& options = {});
    /// Compiles a schema from a parsed document, taking it over without a copy.
    static std::shared_ptr<const Schema> parse(nlohmann::json&& doc, const Options& options = {});

    Schema(const Schema&) = delete;
    Schema& operator=(const Schema&) = delete;
    ~Schema();

    /// Every way `value` breaks the schema (at most Options::max_errors, then a note); empty when valid.
    std::vector<Error> validate(const nlohmann::json& value) const;

    /// True when `value` is valid (stops at the first failure).
    bool accepts(const nlohmann::json& value) const noexcept;

    /// The schema document, as adapters send it to providers.
    const nlohmann::json& document() const noexcept { return doc_; }

    /// The options it was compiled with.
    const Options& options() const noexcept { return options_; }

    /// Whether OpenAI's strict mode can take this schema, the form to send, or the reasons it
    /// cannot (each with its JSON pointer). Worked out once, on first use; thread-safe.
    const StrictSubset& strict_subset() const;

private:
    Schema(nlohmann::json doc, const Options& options);

    static ParseError too_deep();
    static void check(const Options& o);
    // Type and depth, both without recursion, before anything copies the document.
    static void check_document(const nlohmann::json& doc);
    static std::shared_ptr<const Schema> build(nlohmann::json&& doc, const Options& options);
    detail::schema::Limits limits() const noexcept;

    nlohmann::json doc_;
    Options options_;
    std::unique_ptr<detail::schema::Program> program_;
    mutable std::once_flag strict_once_{};
    mutable StrictSubset strict_{};
};

FAILOVER_END_NAMESPACE

#ifndef FAILOVER_COMPILED_LIB
#include "failover/detail/schema-inl.hpp"
#endif
