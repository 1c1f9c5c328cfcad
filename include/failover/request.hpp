// SPDX-License-Identifier: MIT
// The provider-neutral request: messages, tools, sampling knobs, an optional
// JSON Schema for structured output, and the routing context (tenant, data
// class, region, deadline). Adapters translate it to each wire format.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

class Schema;

/// Who wrote a message.
enum class Role { system, user, assistant, tool };

/// Stable lower-case name of a role ("system", "user", "assistant", "tool").
constexpr const char* to_string(Role r) noexcept {
    switch (r) {
        case Role::system: return "system";
        case Role::user: return "user";
        case Role::assistant: return "assistant";
        case Role::tool: return "tool";
    }
    return "user";
}

/// A tool call the model asked for. Arguments are always parsed JSON, whatever
/// the provider sent (OpenAI sends a string, Anthropic and Gemini an object).
struct ToolCall {
    std::string id{};
    std::string name{};
    nlohmann::json arguments = nlohmann::json::object();
};

/// One turn of the conversation.
struct Message {
    Role role = Role::user;
    std::string content{};
    std::vector<ToolCall> tool_calls{};  ///< assistant turns that called tools
    std::string tool_call_id{};          ///< tool turns: the call this answers
    std::string name{};                ///< tool turns: the tool's name (Gemini needs it)
};

/// A system message. (Named system_prompt, not system: with `using namespace failover`
/// an unqualified system("...") would silently call ::system from <cstdlib>.)
inline Message system_prompt(std::string text) { return {Role::system, std::move(text), {}, {}, {}}; }
/// A user message.
inline Message user(std::string text) { return {Role::user, std::move(text), {}, {}, {}}; }
/// An assistant message, e.g. an earlier answer in the history.
inline Message assistant(std::string text, std::vector<ToolCall> calls = {}) {
    return {Role::assistant, std::move(text), std::move(calls), {}, {}};
}
/// The result of a tool call, sent back to the model.
inline Message tool_result(std::string call_id, std::string tool_name, std::string content) {
    return {Role::tool, std::move(content), {}, std::move(call_id), std::move(tool_name)};
}

/// A function the model may call; parameters is a JSON Schema object.
struct Tool {
    std::string name{};
    std::string description{};
    nlohmann::json parameters = nlohmann::json{{"type", "object"}};
};

/// A chat request, independent of any provider.
struct ChatRequest {
    std::vector<Message> messages{};
    std::vector<Tool> tools{};
    std::optional<int> max_tokens{};        ///< output limit; adapters supply a default where required
    std::optional<double> temperature{};
    std::vector<std::string> stop{};        ///< stop sequences
    std::shared_ptr<const Schema> schema{}; ///< structured output: the answer must validate against it
    std::string schema_name = "answer";   ///< name sent where a provider wants one ([A-Za-z0-9_-], <= 64)
    std::string tenant{};                   ///< who pays; tags metrics and selects budgets
    std::string tier{};                     ///< the tenant's tier, e.g. "premium"; routes may be reserved for tiers
    std::string data_class{};               ///< e.g. "public", "pii", "phi"; routes must be approved for it
    std::string region{};                   ///< where the data may go, e.g. "eu"
    std::optional<std::chrono::milliseconds> timeout{};  ///< whole-chain deadline; router default otherwise
};

FAILOVER_END_NAMESPACE
