// SPDX-License-Identifier: MIT
// The normalised answer every adapter produces, whatever the provider: text,
// parsed JSON for structured output, tool calls with parsed arguments, a
// provider-neutral finish reason, token usage, and which route answered after
// which attempts.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "failover/failure.hpp"
#include "failover/request.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// Why the model stopped, mapped from each provider's own vocabulary.
enum class FinishReason {
    stop,            ///< natural end or a stop sequence
    length,          ///< output limit reached; structured output may be truncated
    tool_calls,      ///< the model wants tools called
    content_filter,  ///< output blocked by a filter
    refusal,         ///< the model refused
    other,           ///< anything else the provider reported
};

/// Stable lower-case name of a finish reason.
constexpr std::string_view to_string(FinishReason f) noexcept {
    switch (f) {
        case FinishReason::stop: return "stop";
        case FinishReason::length: return "length";
        case FinishReason::tool_calls: return "tool_calls";
        case FinishReason::content_filter: return "content_filter";
        case FinishReason::refusal: return "refusal";
        case FinishReason::other: return "other";
    }
    return "other";
}

/// Tokens used by one exchange.
struct Usage {
    std::int64_t input_tokens = 0;
    std::int64_t output_tokens = 0;
    std::int64_t total() const noexcept { return input_tokens + output_tokens; }
};

/// A successful answer.
struct ChatResponse {
    std::string text;                    ///< the answer's text (for structured output, the JSON text)
    nlohmann::json json{};                 ///< parsed JSON when the request had a schema, else null
    std::vector<ToolCall> tool_calls{};
    std::vector<Thinking> thinking{};      ///< reasoning blocks to send back with this turn (Anthropic)
    Signature signature{};                 ///< Gemini's thoughtSignature on the text part
    FinishReason finish_reason = FinishReason::stop;
    Usage usage{};
    std::string model{};                   ///< the model the provider says answered
    std::string route{};                   ///< the route that answered
    double cost_usd = 0.0;                 ///< usage priced at the answering route's Price
    std::vector<Attempt> attempts{};       ///< every attempt of the request, the last one successful

    /// This answer as the assistant turn of a conversation: text, tool calls and the
    /// provider's opaque reasoning state, so the next request can carry it.
    /// @code
    /// history.push_back(r->message());
    /// for (const ToolCall& c : r->tool_calls) history.push_back(tool_result(c.id, c.name, run(c)));
    /// @endcode
    Message message() const {
        Message m = assistant(text, tool_calls);
        m.thinking = thinking;
        m.signature = signature;
        return m;
    }
};

FAILOVER_END_NAMESPACE
