// SPDX-License-Identifier: MIT
// The Gemini streamGenerateContent?alt=sse decoder: every `data:` event is a
// whole GenerateContentResponse. Text parts of candidate 0 are text deltas
// (parts with "thought": true are summaries, skipped); each functionCall part is
// one tool_call delta whose fragment is the whole args JSON (id minted when
// Gemini gives none; its thoughtSignature kept on the assembled ToolCall, the
// first signature on a text part kept as the answer's); usageMetadata is a
// usage delta when it changes; finishReason is the finish delta.
//
// There is no terminator: the stream is complete when the connection ends
// cleanly after a chunk that carried a finishReason; ending without one (or in
// the middle of an event) is malformed_response. Failures from feed(): a chunk
// {"error":{code,status,message}} (its code is the HTTP status, then classified
// like an error body), data that is not a JSON object, promptFeedback.blockReason
// and the policy finish reasons (SAFETY, RECITATION, BLOCKLIST,
// PROHIBITED_CONTENT, SPII, IMAGE_*: content_filter with Gemini's reason as
// the category).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "failover/detail/adapter_util.hpp"
#include "failover/detail/gemini_wire.hpp"
#include "failover/detail/stream/common.hpp"
#include "failover/failure.hpp"
#include "failover/request.hpp"
#include "failover/response.hpp"
#include "failover/stream.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE
namespace detail::stream {

/// Decodes one streamed generateContent attempt (see the file comment).
class GeminiStream : public Decoder {
public:
    /// For `request` sent to `model` with this key (kept only to redact it from messages).
    GeminiStream(std::string model, std::string secret, const ChatRequest& request, StreamLimits limits = {})
        : Decoder("gemini", std::move(secret), limits), model_(std::move(model)), structured_(request.schema != nullptr) {}

    /// Feeds the next bytes of the body (any split); appends each delta decoded to `out`.
    std::optional<Failure> feed(std::string_view bytes, std::vector<StreamDelta>& out) {
        return run(bytes, [&](const SseEventView& e) { return on_event(e, out); });
    }

    /// The body ended cleanly: the answer as decode() assembles it, or why not.
    Result<ChatResponse> end() {
        return finish([this]() -> Result<ChatResponse> { return assemble(); });
    }

private:
    Result<ChatResponse> assemble() {
        if (sse_.mid_event()) return fail(ended_early(provider_, "the body ended in the middle of an event"));
        if (finish_.empty()) return fail(ended_early(provider_, "no chunk carried a finishReason"));
        Result<ChatResponse> r = wire::gemini_answer(answer_, finish_, structured_, model_, secret_);
        if (!r) return fail(r.error());
        return r;
    }

    std::optional<Failure> on_event(const SseEventView& e, std::vector<StreamDelta>& out) {
        if (e.type != "message" && e.type != "error") return std::nullopt;  // Gemini names no events
        const json chunk = parse(e.data);
        if (chunk.is_discarded()) return bad_event(provider_, "malformed server-sent event JSON", e.data, secret_);
        if (!chunk.is_object()) return bad_event(provider_, "a stream chunk is not a JSON object", e.data, secret_);
        if (const json* err = wire::member(chunk, "error"); err != nullptr && !err->is_null()) {
            const json* code = wire::member(err, "code");
            int status = 500;
            if (code != nullptr && code->is_number_integer() && code->get<std::int64_t>() >= 400 &&
                code->get<std::int64_t>() <= 599)
                status = static_cast<int>(code->get<std::int64_t>());
            return error_event(provider_, status, e.data,
                               [this](const ErrorReply& r, Failure& f) { wire::gemini_classify(secret_, r, f); });
        }
        // promptFeedback comes with the first chunk; a blocked prompt has no candidates.
        if (auto blocked = wire::gemini_blocked(wire::member(chunk, "promptFeedback"), secret_)) return blocked;
        if (answer_.model.empty()) answer_.model = wire::string_at(chunk, "modelVersion");

        const json* candidates = wire::member(chunk, "candidates");
        if (candidates != nullptr && candidates->is_array() && !candidates->empty()) {
            const json& candidate = (*candidates)[0];
            const json* parts = wire::member(wire::member(candidate, "content"), "parts");
            if (parts != nullptr && parts->is_array()) {
                for (const json& part : *parts) {
                    const std::size_t had = answer_.text.size();
                    Result<int> read = wire::gemini_part(part, answer_, seed_.text(), model_);
                    if (!read) return std::move(read).error();
                    if (*read == 1) {
                        const ToolCall& c = answer_.tool_calls.back();
                        StreamDelta d;
                        d.kind = StreamDelta::Kind::tool_call;
                        d.index = answer_.tool_calls.size() - 1;
                        d.id = c.id;
                        d.name = c.name;
                        d.text = c.arguments.dump(-1, ' ', false, json::error_handler_t::replace);
                        out.push_back(std::move(d));
                    } else if (answer_.text.size() > had) {
                        StreamDelta d;
                        d.text = answer_.text.substr(had);
                        out.push_back(std::move(d));
                        if (!keep_text_) answer_.text.clear();
                    }
                }
            }
            const std::string finish = wire::clean_message(wire::string_at(candidate, "finishReason"), {}, 80);
            if (!finish.empty()) {
                if (auto stopped = wire::gemini_stopped(finish)) return stopped;
                if (finish_.empty()) {
                    finish_ = finish;
                    StreamDelta d;
                    d.kind = StreamDelta::Kind::finish;
                    d.finish = wire::gemini_finish(finish_, !answer_.tool_calls.empty());
                    out.push_back(std::move(d));
                }
            }
        }
        if (const json* usage = wire::member(chunk, "usageMetadata"); usage != nullptr && usage->is_object()) {
            const Usage u = wire::gemini_usage(usage);
            if (!reported_usage_ || u.input_tokens != answer_.usage.input_tokens ||
                u.output_tokens != answer_.usage.output_tokens) {
                answer_.usage = u;
                reported_usage_ = true;
                StreamDelta d;
                d.kind = StreamDelta::Kind::usage;
                d.usage = u;
                out.push_back(std::move(d));
            }
        }
        return std::nullopt;
    }

    std::string model_;
    bool structured_ = false;
    ChatResponse answer_{};  // text, tool calls, signature, usage, model as they arrive
    std::string finish_{};
    bool reported_usage_ = false;
};

}  // namespace detail::stream
FAILOVER_END_NAMESPACE
