// SPDX-License-Identifier: MIT
// The parts of the Gemini API wire format that generateContent and
// streamGenerateContent share: a blocked prompt and the policy finish reasons,
// reading one part of a candidate (text, thought summary, functionCall with its
// thoughtSignature), usage, turning the collected parts into the answer, and the
// classify hook for error bodies, which the adapter and mid-stream error chunks
// both use, so one place decides what a Gemini error means. Nothing here throws
// past its boundary on account of the provider's bytes.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <nlohmann/json.hpp>

#include "failover/classifier.hpp"
#include "failover/detail/adapter_util.hpp"
#include "failover/failure.hpp"
#include "failover/request.hpp"
#include "failover/response.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE
namespace detail::wire {

/// Any QuotaFailure violation of a per-day quota.
inline bool gemini_per_day(const json* details) {
    if (details == nullptr || !details->is_array()) return false;
    for (const auto& d : *details) {
        const json* violations = member(d, "violations");
        if (violations == nullptr || !violations->is_array()) continue;
        for (const auto& v : *violations)
            if (string_at(v, "quotaId").find("PerDay") != std::string::npos) return true;
    }
    return false;
}

/// RetryInfo.retryDelay ("36s") from the error details.
inline std::optional<std::chrono::milliseconds> gemini_retry_delay(const json* details) {
    if (details == nullptr || !details->is_array()) return std::nullopt;
    for (const auto& d : *details) {
        if (!std::string_view(string_at(d, "@type")).ends_with("google.rpc.RetryInfo")) continue;
        if (auto ms = parse_google_duration(string_at(d, "retryDelay"))) return ms;
    }
    return std::nullopt;
}

/// The adapter's classify hook: RESOURCE_EXHAUSTED is a rate limit unless it is a daily quota
/// (terminal), RetryInfo fills retry_after, UNAVAILABLE is an overload.
inline void gemini_classify(std::string_view secret, const ErrorReply& reply, Failure& f) noexcept {
    try {
        // The generic classifier knows only well-known key shapes: redact this exact key from what it wrote.
        redact(f.message, secret);
        redact(f.provider_code, secret);
        if (!reply.is_json()) {
            note_raw_body(reply.response, f, "gemini", secret);
            return;
        }
        const auto& e = reply.fields;
        if (!e.message.empty()) f.message = clean_message(e.message, secret);
        const std::string status = clean_message(e.status, secret, 80);
        if (!status.empty()) f.provider_code = status;
        const json* details = member(e.error, "details");
        if (status == "RESOURCE_EXHAUSTED" || (status.empty() && reply.response.status == 429)) {
            const bool daily = icontains(e.message, "exceeded your current quota") || gemini_per_day(details);
            if (daily) reclassify(f, FailureKind::terminal, Reason::quota_exhausted);
            else reclassify(f, FailureKind::transient, Reason::rate_limited);
            if (!f.retry_after) f.retry_after = gemini_retry_delay(details);
        } else if (status == "UNAVAILABLE" && f.reason != Reason::context_too_long) {
            reclassify(f, FailureKind::transient, Reason::overloaded);
        }
    } catch (...) {
        // Classification is best effort: the generic Failure stands.
    }
}

/// Finish reasons that are policy stops: SAFETY, RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII, IMAGE_*.
inline bool gemini_policy_finish(std::string_view reason) noexcept {
    return reason == "SAFETY" || reason == "RECITATION" || reason == "BLOCKLIST" || reason == "PROHIBITED_CONTENT" ||
           reason == "SPII" || reason.starts_with("IMAGE_");
}

/// A prompt blocked with promptFeedback.blockReason: a content_filter failure whose category is the reason.
inline std::optional<Failure> gemini_blocked(const json* feedback, std::string_view secret) {
    const std::string blocked = clean_message(string_at(feedback, "blockReason"), {}, 80);
    if (blocked.empty()) return std::nullopt;
    std::string why = string_at(feedback, "blockReasonMessage");
    Failure f = Failure::of(Reason::content_filter, why.empty() ? "gemini: the prompt was blocked (" + blocked + ")"
                                                                : clean_message(why, secret));
    f.provider_code = blocked;
    f.category = blocked;
    return f;
}

/// A policy finish reason as a content_filter failure, or nullopt.
inline std::optional<Failure> gemini_stopped(const std::string& finish) {
    if (!gemini_policy_finish(finish)) return std::nullopt;
    Failure f = Failure::of(Reason::content_filter, "gemini: the answer was stopped (finishReason " + finish + ")");
    f.provider_code = finish;
    f.category = finish;
    return f;
}

/// Reads one part of a candidate into `out`: a functionCall becomes a tool call (its id minted
/// from `id_seed` when Gemini gave none, its thoughtSignature kept on it), a text part adds to
/// the text (the first signature on a text part is the answer's), a thought summary is skipped.
/// Returns what the part added: 1 for a tool call, 0 otherwise; a Failure for a nameless call.
inline Result<int> gemini_part(const json& part, ChatResponse& out, std::string_view id_seed, const std::string& model) {
    // Opaque, kept on the part it came with, for this model only.
    Signature signature{"gemini", model, string_at(part, "thoughtSignature")};
    if (const json* call = member(part, "functionCall")) {
        ToolCall c;
        c.name = string_at(call, "name");
        if (c.name.empty()) return malformed("gemini", "a functionCall part has no name");
        const json* args = member(call, "args");
        c.arguments = args != nullptr && !args->is_null() ? *args : json::object();
        c.id = string_at(call, "id");
        if (c.id.empty()) {  // Gemini often gives none; other providers need one
            c.id = mint_call_id(id_seed, out.tool_calls.size(), c.name, c.arguments);
            c.minted_id = true;
        }
        c.signature = std::move(signature);
        out.tool_calls.push_back(std::move(c));
        return 1;
    }
    if (!flag_at(&part, "thought")) {  // thought summaries are not the answer
        out.text += string_at(part, "text");
        if (out.signature.empty()) out.signature = std::move(signature);
    }
    return 0;
}

/// Usage of a usageMetadata object; thinking tokens are output the caller pays for.
inline Usage gemini_usage(const json* usage) noexcept {
    return Usage{count_at(usage, "promptTokenCount"),
                 count_at(usage, "candidatesTokenCount") + count_at(usage, "thoughtsTokenCount")};
}

/// The finish reason of a (non-policy) finishReason.
inline FinishReason gemini_finish(std::string_view finish, bool has_calls) noexcept {
    if (finish == "STOP") return has_calls ? FinishReason::tool_calls : FinishReason::stop;
    if (finish == "MAX_TOKENS") return FinishReason::length;
    return FinishReason::other;
}

/// The answer once its parts are read: finish reason, model (else the configured one), and for
/// a structured-output request without tool calls the text parsed as JSON.
inline Result<ChatResponse> gemini_answer(ChatResponse out, const std::string& finish, bool structured,
                                          const std::string& configured_model, std::string_view secret) {
    out.finish_reason = gemini_finish(finish, !out.tool_calls.empty());
    if (out.model.empty()) out.model = configured_model;
    if (structured && out.tool_calls.empty()) {
        Result<json> parsed = parse_answer(out.text, finish == "MAX_TOKENS", "gemini", secret);
        if (!parsed) return std::move(parsed).error();
        out.json = std::move(*parsed);
    }
    return out;
}

}  // namespace detail::wire
FAILOVER_END_NAMESPACE
