// SPDX-License-Identifier: MIT
// The provider-neutral request: messages, tools, sampling knobs, an optional
// JSON Schema for structured output, and the routing context (tenant, data
// class, region, deadline). Adapters translate it to each wire format.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
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

/// Opaque state a provider attached to one part of its answer: Gemini's
/// `thoughtSignature`, the signature of an Anthropic thinking block. It is valid only
/// for the provider and model that made it: adapters send it back to that provider and
/// model only, and leave it out (or send the provider's documented placeholder) anywhere
/// else. Never inspected, never logged.
struct Signature {
    std::string provider{};  ///< gen_ai.system of the adapter that received it, e.g. "gemini"
    std::string model{};     ///< the model that route asked for
    std::string value{};     ///< the opaque bytes, unchanged
    bool empty() const noexcept { return value.empty(); }
    /// True when it may be sent to this provider and model.
    bool belongs_to(std::string_view p, std::string_view m) const noexcept {
        return !value.empty() && provider == p && model == m;
    }
};

/// A tool call the model asked for. Arguments are always parsed JSON, whatever
/// the provider sent (OpenAI sends a string, Anthropic and Gemini an object).
/// Every decoded call has an id: when the provider gave none (Gemini often does
/// not), the adapter mints a stable one, so the conversation can move to a
/// provider that requires ids.
struct ToolCall {
    std::string id{};
    std::string name{};
    nlohmann::json arguments = nlohmann::json::object();
    Signature signature{};   ///< Gemini's thoughtSignature on this call's part
    bool minted_id = false;  ///< the provider gave no id; the minted one is not sent back to it
};

/// A reasoning block an Anthropic model returned before its answer. It must go back
/// unchanged (with its signature) to the same model in a tool-use loop; other
/// providers never see it.
struct Thinking {
    std::string text{};      ///< the thinking text ("" for a redacted block)
    Signature signature{};   ///< `signature`, or for a redacted block its opaque `data`
    bool redacted = false;   ///< a redacted_thinking block
};

/// One turn of the conversation.
struct Message {
    Role role = Role::user;
    std::string content{};
    std::vector<ToolCall> tool_calls{};  ///< assistant turns that called tools
    std::string tool_call_id{};          ///< tool turns: the call this answers
    std::string name{};                  ///< tool turns: the tool's name (Gemini needs it)
    bool is_error = false;               ///< tool turns: the tool failed and content says how
    std::vector<Thinking> thinking{};    ///< assistant turns: reasoning blocks to send back (Anthropic)
    Signature signature{};               ///< assistant turns: Gemini's thoughtSignature on the text part
};

/// A system message. (Named system_prompt, not system: with `using namespace failover`
/// an unqualified system("...") would silently call ::system from <cstdlib>.)
inline Message system_prompt(std::string text) {
    Message m;
    m.role = Role::system;
    m.content = std::move(text);
    return m;
}
/// A user message.
inline Message user(std::string text) {
    Message m;
    m.content = std::move(text);
    return m;
}
/// An assistant message, e.g. an earlier answer in the history. (ChatResponse::message()
/// gives the whole answer, reasoning state included.)
inline Message assistant(std::string text, std::vector<ToolCall> calls = {}) {
    Message m;
    m.role = Role::assistant;
    m.content = std::move(text);
    m.tool_calls = std::move(calls);
    return m;
}
/// The result of a tool call, sent back to the model. `is_error`: the tool failed and
/// `content` says how (Anthropic's is_error; an error object or text elsewhere).
inline Message tool_result(std::string call_id, std::string tool_name, std::string content, bool is_error = false) {
    Message m;
    m.role = Role::tool;
    m.content = std::move(content);
    m.tool_call_id = std::move(call_id);
    m.name = std::move(tool_name);
    m.is_error = is_error;
    return m;
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
