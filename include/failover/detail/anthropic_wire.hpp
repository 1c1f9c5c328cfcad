// SPDX-License-Identifier: MIT
// The parts of the Anthropic Messages wire format that a whole response and a
// stream share: reading a thinking block, usage, the stop reasons that are
// failures (refusal, context window), turning the collected content into the
// answer (the structured-output tool's input is the answer), and the classify
// hook for error bodies, which the adapter and mid-stream error events both use,
// so one place decides what an Anthropic error means. Nothing here throws past
// its boundary on account of the provider's bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "failover/classifier.hpp"
#include "failover/detail/adapter_util.hpp"
#include "failover/failure.hpp"
#include "failover/request.hpp"
#include "failover/response.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE
namespace detail::wire {

/// What an Anthropic answer holds once its content blocks are read, whole or from a stream.
struct AnthropicContent {
    std::string text;               ///< the text blocks, joined
    std::vector<ToolCall> calls;    ///< tool_use blocks of the request's own tools
    std::vector<Thinking> thinking; ///< thinking and redacted_thinking blocks, in order
    std::optional<json> answer;     ///< the structured-output tool's input, when it was called
    std::string stop;               ///< stop_reason as sent
    json stop_details;              ///< stop_details, or null
    Usage usage{};
    std::string model;              ///< the model the provider named ("" when none)
};

/// A thinking block (or, when `redacted`, a redacted_thinking block whose `data` is the
/// opaque value), signed for the model this adapter asked for.
inline Thinking anthropic_thinking(bool redacted, std::string text, std::string signature, const std::string& model) {
    Thinking t;
    t.redacted = redacted;
    t.text = redacted ? std::string() : std::move(text);
    t.signature = Signature{"anthropic", model, std::move(signature)};
    return t;
}

/// Input tokens of a usage object: input_tokens excludes cached prompt tokens; the prompt is all three.
inline std::int64_t anthropic_input_tokens(const json* usage) noexcept {
    return count_at(usage, "input_tokens") + count_at(usage, "cache_creation_input_tokens") +
           count_at(usage, "cache_read_input_tokens");
}

/// A spend limit the account owner set answers 400 invalid_request_error. The exact wording is
/// not documented; these phrases are our best match.
inline bool anthropic_spend_limit(std::string_view message) noexcept {
    return icontains(message, "spend limit") || icontains(message, "usage limits") || icontains(message, "credit balance");
}

/// The adapter's classify hook: 402 billing_error and spend limits are terminal quota failures,
/// overloaded_error (529) a transient overload, "prompt is too long" stays context_too_long.
inline void anthropic_classify(std::string_view secret, const ErrorReply& reply, Failure& f) noexcept {
    try {
        // The generic classifier knows only well-known key shapes: redact this exact key from what it wrote.
        redact(f.message, secret);
        redact(f.provider_code, secret);
        if (!reply.is_json()) {
            note_raw_body(reply.response, f, "anthropic", secret);
            return;
        }
        const auto& e = reply.fields;
        if (!e.message.empty()) f.message = clean_message(e.message, secret);
        const std::string type = clean_message(e.type, secret, 80);
        if (!type.empty()) f.provider_code = type;
        if (type == "billing_error") {  // 402
            reclassify(f, FailureKind::terminal, Reason::quota_exhausted);
        } else if (f.reason == Reason::context_too_long) {
            return;  // the generic rules read "prompt is too long"
        } else if (type == "overloaded_error") {  // API-wide overload (529), not this account
            reclassify(f, FailureKind::transient, Reason::overloaded);
        } else if (type == "invalid_request_error" && anthropic_spend_limit(e.message)) {
            reclassify(f, FailureKind::terminal, Reason::quota_exhausted);
        }
    } catch (...) {
        // Classification is best effort: the generic Failure stands.
    }
}

/// The HTTP status Anthropic answers an error type with (for an error that arrived as a
/// stream event, where there is no status of its own); 500 for a type we do not know.
inline int anthropic_error_status(std::string_view type) noexcept {
    if (type == "invalid_request_error") return 400;
    if (type == "authentication_error") return 401;
    if (type == "billing_error") return 402;
    if (type == "permission_error") return 403;
    if (type == "not_found_error") return 404;
    if (type == "request_too_large") return 413;
    if (type == "rate_limit_error") return 429;
    if (type == "timeout_error") return 504;
    if (type == "overloaded_error") return 529;
    return 500;  // api_error and anything new
}

/// The stop reasons that are failures, not answers: refusal (policy, with stop_details'
/// category) and model_context_window_exceeded (context_too_long).
inline std::optional<Failure> anthropic_stop_failure(std::string_view stop, const json& stop_details,
                                                     const std::string& text, std::string_view secret) {
    if (stop == "refusal") {
        std::string why = string_at(stop_details, "explanation");
        if (why.empty()) why = text;
        Failure f = Failure::of(Reason::refusal,
                                why.empty() ? std::string("anthropic: the model refused") : clean_message(why, secret));
        f.provider_code = "refusal";
        f.category = clean_message(string_at(stop_details, "category"), {}, 80);
        return f;
    }
    if (stop == "model_context_window_exceeded") {
        Failure f = Failure::of(Reason::context_too_long, "anthropic: the model's context window was exceeded");
        f.provider_code = std::string(stop);
        return f;
    }
    return std::nullopt;
}

/// The finish reason of a stop_reason that is not a failure.
inline FinishReason anthropic_finish(std::string_view stop) noexcept {
    if (stop == "end_turn" || stop == "stop_sequence") return FinishReason::stop;
    if (stop == "max_tokens") return FinishReason::length;
    if (stop == "tool_use") return FinishReason::tool_calls;
    return FinishReason::other;
}

/// The answer from its content: stop-reason failures, the finish reason, and for a
/// structured-output request the tool's input as the JSON answer (or, when the model answered
/// in text, that text parsed).
inline Result<ChatResponse> anthropic_answer(AnthropicContent c, bool structured, const std::string& schema_name,
                                             const std::string& configured_model, std::string_view secret) {
    constexpr std::string_view p = "anthropic";
    if (auto failed = anthropic_stop_failure(c.stop, c.stop_details, c.text, secret)) return *std::move(failed);
    ChatResponse out;
    out.text = std::move(c.text);
    out.tool_calls = std::move(c.calls);
    out.thinking = std::move(c.thinking);
    out.finish_reason = anthropic_finish(c.stop);
    out.usage = c.usage;
    out.model = c.model.empty() ? configured_model : std::move(c.model);

    if (structured) {
        if (c.answer) {
            if (c.stop == "max_tokens")
                return malformed(p, "structured output truncated at the output token limit; the JSON is incomplete");
            if (!c.answer->is_object())
                return Failure::of(Reason::schema_invalid,
                                   "anthropic: the " + schema_name + " tool input is not a JSON object");
            out.json = std::move(*c.answer);
            out.text = out.json.dump();
            out.finish_reason = FinishReason::stop;
        } else if (out.tool_calls.empty()) {
            // The model answered in text instead of calling the tool; accept it if it is JSON.
            Result<json> parsed = parse_answer(out.text, c.stop == "max_tokens", p, secret);
            if (!parsed) return std::move(parsed).error();
            out.json = std::move(*parsed);
        }
    }
    return out;
}

}  // namespace detail::wire
FAILOVER_END_NAMESPACE
