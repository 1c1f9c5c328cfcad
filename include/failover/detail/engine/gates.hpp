// SPDX-License-Identifier: MIT
// The quality gates every answer passes before it is accepted, the same for
// every driver: the schema gate (structured output parses and validates against
// the caller's schema), the tool-call gate (each call names a tool the request
// offered and its arguments validate against that tool's parameters), then the
// user's own gates. A rejected answer becomes a repairable failure and the
// repair turn that may fix it. Tool parameter schemas are compiled once per
// distinct schema and shared (ToolSchemas), before any call: a tool whose
// parameters are not a valid schema fails the request as bad_request.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "failover/classifier.hpp"
#include "failover/failure.hpp"
#include "failover/request.hpp"
#include "failover/response.hpp"
#include "failover/router_options.hpp"
#include "failover/schema.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE
namespace detail::engine {

/// A gate's rejection: the failure and the text of the answer it turned down.
struct Rejection {
    Failure failure;
    std::string previous;  ///< what the model said, for the repair turn
};

/// Joins up to eight validation errors as "<pointer>: <message>; ...".
inline std::string describe_errors(const std::vector<Schema::Error>& errors) {
    std::string msg{};
    for (std::size_t i = 0; i < errors.size() && i < 8; ++i) {
        if (i) msg += "; ";
        msg += (errors[i].pointer.empty() ? std::string("(root)") : errors[i].pointer) + ": " + errors[i].message;
    }
    if (errors.size() > 8) msg += "; and " + std::to_string(errors.size() - 8) + " more";
    return msg;
}

/// Checks a decoded answer against the request's schema, parsing its text if needed.
inline std::optional<Failure> schema_gate(const ChatRequest& req, ChatResponse& res) {
    if (!req.schema) return std::nullopt;
    if (!res.tool_calls.empty() && res.json.is_null() && res.text.empty()) return std::nullopt;  // a tool round
    if (res.json.is_null() && !res.text.empty()) {
        // Refused before a recursive parse, copy or validation can exhaust the stack.
        if (!json_depth_within(res.text, static_cast<std::size_t>(Schema::max_depth)))
            return Failure::of(Reason::schema_invalid,
                               "answer nests deeper than " + std::to_string(Schema::max_depth) + " levels");
        nlohmann::json parsed = nlohmann::json::parse(res.text, nullptr, false);
        if (parsed.is_discarded()) {
            if (res.finish_reason == FinishReason::length)
                return Failure::of(Reason::malformed_response, "structured output truncated at the output limit");
            return Failure::of(Reason::schema_invalid, "answer is not JSON");
        }
        res.json = std::move(parsed);
    }
    auto errors = req.schema->validate(res.json);
    if (errors.empty()) return std::nullopt;
    return Failure::of(Reason::schema_invalid, describe_errors(errors));
}

/// Checks every tool call of an answer: an offered tool, arguments valid for its parameters.
/// `schemas[i]` is the compiled parameters of req.tools[i].
inline std::optional<Failure> tool_gate(const ChatRequest& req, const ChatResponse& res,
                                        const std::vector<std::shared_ptr<const Schema>>& schemas) {
    std::string problems;
    for (const ToolCall& c : res.tool_calls) {
        std::size_t i = 0;
        while (i < req.tools.size() && req.tools[i].name != c.name) ++i;
        std::string problem;
        if (i == req.tools.size()) {
            problem = "called tool '" + classifier::sanitize_text(c.name, 64) + "', which was not offered";
        } else if (i < schemas.size() && schemas[i]) {
            if (auto errors = schemas[i]->validate(c.arguments); !errors.empty())
                problem = "the arguments of '" + c.name + "' do not match its parameters: " + describe_errors(errors);
        }
        if (problem.empty()) continue;
        if (!problems.empty()) problems += "; ";
        problems += problem;
    }
    if (problems.empty()) return std::nullopt;
    return Failure::of(Reason::tool_call_invalid, std::move(problems));
}

/// The text a repair turn quotes for an answer that was only tool calls.
inline std::string describe_calls(const std::vector<ToolCall>& calls) {
    std::string s;
    for (const ToolCall& c : calls) {
        if (!s.empty()) s += "\n";
        s += "(called " + c.name + " with " + c.arguments.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + ")";
    }
    return s;
}

/// Runs the schema gate, the tool-call gate, then the user's gates; the first rejection wins.
inline std::optional<Rejection> run_gates(const ChatRequest& req, ChatResponse& res, const RouterOptions& opts,
                                          const std::vector<std::shared_ptr<const Schema>>& tool_schemas) {
    if (auto bad = schema_gate(req, res)) return Rejection{std::move(*bad), std::move(res.text)};
    if (!res.tool_calls.empty()) {
        if (auto bad = tool_gate(req, res, tool_schemas)) {
            std::string previous = res.text.empty() ? describe_calls(res.tool_calls) : res.text + "\n" + describe_calls(res.tool_calls);
            return Rejection{std::move(*bad), std::move(previous)};
        }
    }
    for (const auto& gate : opts.gates) {
        if (auto why = gate(req, res)) return Rejection{Failure::of(Reason::quality_gate, std::move(*why)), std::move(res.text)};
    }
    return std::nullopt;
}

/// The repair turn after a rejection: the previous answer, what was wrong with it, and
/// what to do instead.
inline ChatRequest repair_request(const ChatRequest& req, const std::string& previous, const Failure& f) {
    ChatRequest r = req;
    // An adapter that rejects non-JSON itself leaves no text here; its message carries an excerpt.
    if (!previous.empty()) r.messages.push_back(assistant(previous));
    if (f.reason == Reason::tool_call_invalid) {
        r.messages.push_back(user("Your previous answer called tools incorrectly: " + f.message +
                                  "\nCall only the tools offered, with arguments that match their parameters."));
    } else if (f.reason == Reason::quality_gate) {
        r.messages.push_back(user("Your previous answer was rejected: " + f.message + "\nAnswer again."));
    } else {
        r.messages.push_back(user("Your previous answer did not match the required JSON Schema: " + f.message +
                                  "\nAnswer again with only a JSON value that matches the schema, and nothing else."));
    }
    return r;
}

/// Compiled tool parameter schemas, shared by every request of a router: one compile per
/// distinct schema text. Bounded (cleared when full); thread-safe.
class ToolSchemas {
public:
    /// The compiled parameters of each of `tools`, or a bad_request naming the tool.
    Result<std::vector<std::shared_ptr<const Schema>>> compile(const std::vector<Tool>& tools) {
        std::vector<std::shared_ptr<const Schema>> out;
        out.reserve(tools.size());
        for (const Tool& t : tools) {
            std::string text = t.parameters.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
            {
                std::lock_guard lock(mu_);
                if (auto it = cache_.find(text); it != cache_.end()) {
                    out.push_back(it->second);
                    continue;
                }
            }
            std::shared_ptr<const Schema> compiled;
            try {
                compiled = Schema::parse(t.parameters);
            } catch (const std::exception& e) {
                return Failure::of(Reason::bad_request, "tool '" + classifier::sanitize_text(t.name, 64) +
                                                            "': parameters are not a valid JSON Schema: " +
                                                            classifier::sanitize_text(e.what(), 300));
            }
            std::lock_guard lock(mu_);
            if (cache_.size() >= max_entries) cache_.clear();
            cache_.emplace(std::move(text), compiled);
            out.push_back(std::move(compiled));
        }
        return out;
    }

private:
    static constexpr std::size_t max_entries = 256;
    std::mutex mu_;
    std::unordered_map<std::string, std::shared_ptr<const Schema>> cache_;
};

}  // namespace detail::engine
FAILOVER_END_NAMESPACE
