// SPDX-License-Identifier: MIT
// The OpenAI Chat Completions adapter. Construction checks the options (model,
// base URL, headers) and throws std::invalid_argument naming the bad field;
// after that encode/decode/classify never throw. Wire facts: system messages
// keep role "system"; the output limit is max_completion_tokens; structured
// output is response_format json_schema, with strict true only for a schema in
// OpenAI's strict subset (made so where that only narrows it, see
// detail/strict_schema.hpp), else strict false: OpenAI answers 400 to a strict
// schema outside the subset. Tool-call arguments arrive as a JSON string and
// are parsed (text that does not parse is kept as a JSON string value).
// classify() turns insufficient_quota into a terminal quota_exhausted,
// context_length_exceeded into context_too_long, invalid_prompt and Azure-style
// content_filter bodies into policy failures. Streaming: encode_stream() adds
// "stream": true and stream_options.include_usage; stream_decoder() reads the
// chunks (detail/stream/openai.hpp).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "failover/adapter.hpp"
#include "failover/config.hpp"
#include "failover/detail/openai_wire_types.hpp"
#include "failover/env.hpp"
#include "failover/failure.hpp"
#include "failover/request.hpp"
#include "failover/response.hpp"
#include "failover/stream.hpp"
#include "failover/transport.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// Options of the OpenAI adapter, in designated-initializer order (every member has an
/// initializer, so skipping fields stays clean under -Wmissing-field-initializers).
struct OpenAIOptions {
    std::string model{};              ///< e.g. "gpt-4o"; required
    Secret api_key{};                 ///< sent as "Authorization: Bearer"; required (a Route without one fails to construct)
    std::string base_url{};           ///< default https://api.openai.com/v1, or $OPENAI_BASE_URL when empty
    std::optional<int> max_tokens{};  ///< output limit when the request sets none; unset: OpenAI's default
    std::string organization{};       ///< OpenAI-Organization header, when set
    std::string project{};            ///< OpenAI-Project header, when set
    Headers extra_headers{};          ///< added to every request; replace defaults of the same name
    StrictOutput strict = StrictOutput::when_possible;  ///< when structured output is sent with strict: true
};

/// Talks to OpenAI's Chat Completions API.
/// @code
/// OpenAI gpt{{.model = "gpt-4o", .api_key = env("OPENAI_API_KEY")}};
/// @endcode
class OpenAI {
public:
    /// Official endpoint when base_url and $OPENAI_BASE_URL are empty.
    static constexpr std::string_view default_base_url = "https://api.openai.com/v1";

    /// Checks the options; throws std::invalid_argument naming the bad field (never the key).
    explicit OpenAI(OpenAIOptions options);

    /// The request in Chat Completions shape, or bad_request when it cannot be expressed.
    Result<HttpRequest> encode(const ChatRequest& request) const;

    /// The same request asking for server-sent events: `"stream": true`,
    /// `"stream_options": {"include_usage": true}`, `Accept: text/event-stream`.
    Result<HttpRequest> encode_stream(const ChatRequest& request) const;

    /// A decoder for one streamed attempt of `request` (see detail/stream/openai.hpp).
    StreamDecoderBox stream_decoder(const ChatRequest& request, StreamLimits limits = {}) const;

    /// The normalised answer of a 2xx response; refusals and filtered output are policy failures.
    Result<ChatResponse> decode(const ChatRequest& request, const HttpResponse& response) const;

    /// Refines the generic classification of an error response with OpenAI's error codes.
    void classify(const ErrorReply& reply, Failure& failure) const noexcept;

    /// Whether `schema` goes out strict, with strict off (and why), or not at all.
    SchemaSupport schema_support(const Schema& schema) const;

    /// Why this adapter cannot be used ("" when it can): OpenAI needs an API key.
    std::string config_problem() const;

    /// "openai", the OpenTelemetry gen_ai.system value.
    std::string_view provider() const noexcept { return wire_.provider; }
    /// The configured model.
    std::string_view model() const noexcept { return wire_.model; }
    /// The endpoint requests go to.
    std::string_view endpoint() const noexcept { return wire_.url; }

private:
    detail::wire::OpenAIWire wire_;
    Secret key_;
};

static_assert(HttpAdapter<OpenAI>, "OpenAI must satisfy HttpAdapter");
static_assert(ClassifyingAdapter<OpenAI>, "OpenAI must provide the classify hook");
static_assert(StreamingAdapter<OpenAI>, "OpenAI must stream");

FAILOVER_END_NAMESPACE

#ifndef FAILOVER_COMPILED_LIB
#include "failover/detail/openai-inl.hpp"
#endif
