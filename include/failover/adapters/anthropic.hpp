// SPDX-License-Identifier: MIT
// The Anthropic Messages adapter. Construction checks the options and throws
// std::invalid_argument naming the bad field; encode/decode/classify never throw.
// Wire facts: system messages become the top-level "system" (one string, or
// text blocks when there are several; they are hoisted out of the turn list),
// max_tokens is required (the request's, else the option, default 1024), tool
// calls are tool_use blocks and tool results tool_result blocks in a user turn
// (consecutive turns of one role are merged into one, as parallel tool results
// must be). Structured output uses the portable forced tool: one tool named
// request.schema_name whose input_schema is the schema, chosen with
// tool_choice {type:tool}; when the request also has its own tools the choice
// is {type:any}, so the model may call them first. decode takes that tool's
// input object as the answer. Thinking and redacted_thinking blocks are kept
// (ChatResponse::thinking) and sent back first in their assistant turn, only to
// the model that signed them; a failed tool result carries is_error. stop_reason
// refusal is a policy refusal carrying
// stop_details.category; model_context_window_exceeded is context_too_long.
// classify(): 529 overloaded_error -> transient overloaded; 402 billing_error
// and spend-limit 400s -> terminal quota_exhausted; "prompt is too long" /
// "exceed context limit" -> context_too_long. Streaming: encode_stream() adds
// "stream": true; stream_decoder() reads the event stream (detail/stream/anthropic.hpp).
// decode and the decoder share detail/anthropic_wire.hpp.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "failover/adapter.hpp"
#include "failover/config.hpp"
#include "failover/env.hpp"
#include "failover/failure.hpp"
#include "failover/request.hpp"
#include "failover/response.hpp"
#include "failover/schema.hpp"
#include "failover/stream.hpp"
#include "failover/transport.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// Options of the Anthropic adapter, in designated-initializer order (every member has an
/// initializer, so skipping fields stays clean under -Wmissing-field-initializers).
struct AnthropicOptions {
    std::string model{};                           ///< e.g. "claude-sonnet-4-5"; required
    Secret api_key{};                              ///< sent as x-api-key; required (a Route without one fails to construct)
    std::string base_url{};                        ///< default https://api.anthropic.com, or $ANTHROPIC_BASE_URL
    int max_tokens = 1024;                         ///< Anthropic requires a limit: used when the request sets none
    std::string anthropic_version = "2023-06-01";  ///< the anthropic-version header
    Headers extra_headers{};                       ///< e.g. anthropic-beta; replace defaults of the same name
};

/// Talks to Anthropic's Messages API.
/// @code
/// Anthropic claude{{.model = "claude-sonnet-4-5", .api_key = env("ANTHROPIC_API_KEY")}};
/// @endcode
class Anthropic {
public:
    /// Official endpoint root when base_url and $ANTHROPIC_BASE_URL are empty.
    static constexpr std::string_view default_base_url = "https://api.anthropic.com";

    /// Checks the options; throws std::invalid_argument naming the bad field (never the key).
    explicit Anthropic(AnthropicOptions options);

    /// The request in Messages shape, or bad_request when it cannot be expressed.
    Result<HttpRequest> encode(const ChatRequest& request) const { return encode_body(request, false); }

    /// The same request asking for a stream of server-sent events (`"stream": true`,
    /// `Accept: text/event-stream`).
    Result<HttpRequest> encode_stream(const ChatRequest& request) const { return encode_body(request, true); }

    /// A decoder for one streamed attempt of `request` (see detail/stream/anthropic.hpp).
    StreamDecoderBox stream_decoder(const ChatRequest& request, StreamLimits limits = {}) const;

    /// The normalised answer of a 2xx response; refusals are policy failures.
    Result<ChatResponse> decode(const ChatRequest& request, const HttpResponse& response) const;

    /// Refines the generic classification of an error response with Anthropic's error types.
    void classify(const ErrorReply& reply, Failure& f) const noexcept;

    /// Why this adapter cannot be used ("" when it can): Anthropic needs an API key.
    std::string config_problem() const;

    /// "anthropic", the OpenTelemetry gen_ai.system value.
    std::string_view provider() const noexcept { return "anthropic"; }
    /// The configured model.
    std::string_view model() const noexcept { return opts_.model; }
    /// The endpoint requests go to.
    std::string_view endpoint() const noexcept { return url_; }

private:
    const std::string& secret() const noexcept { return opts_.api_key.value(); }

    Result<HttpRequest> encode_body(const ChatRequest& request, bool stream) const;

    Result<ChatResponse> decode_body(const ChatRequest& request, const HttpResponse& response) const;

    AnthropicOptions opts_;
    std::string url_;
    Headers headers_;
};

static_assert(HttpAdapter<Anthropic>, "Anthropic must satisfy HttpAdapter");
static_assert(ClassifyingAdapter<Anthropic>, "Anthropic must provide the classify hook");
static_assert(StreamingAdapter<Anthropic>, "Anthropic must stream");

FAILOVER_END_NAMESPACE

#ifndef FAILOVER_COMPILED_LIB
#include "failover/detail/anthropic-inl.hpp"
#endif
