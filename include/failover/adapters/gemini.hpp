// SPDX-License-Identifier: MIT
// The Gemini API (generateContent) adapter. Construction checks the options and
// throws std::invalid_argument naming the bad field; encode/decode/classify
// never throw. Wire facts: system messages become systemInstruction (one part
// each, hoisted out of the turn list); roles are user and model; the limit,
// temperature and stop sequences live in generationConfig; structured output
// is responseMimeType application/json plus responseJsonSchema (plain JSON
// Schema); tools are functionDeclarations with parametersJsonSchema; a tool
// call is a functionCall part and its result a functionResponse part in a user
// turn (response = the result if it is a JSON object, else {"output": text},
// or {"error": text} for a failed tool). Calls Gemini gave no id get a minted
// one (sent to other providers, never back to Gemini); thoughtSignature is kept
// on the part it came with and sent back only to the same model, while a turn
// that came from elsewhere carries Google's documented placeholder on its first
// call (Gemini 3 refuses a call step without a signature).
// Consecutive turns of one role are merged. A model given as "models/x" or
// "tunedModels/x" is used as the resource path; a bare name gets "models/".
// Policy at HTTP 200: a prompt blocked with promptFeedback.blockReason, and the
// finish reasons SAFETY, RECITATION, BLOCKLIST, PROHIBITED_CONTENT, SPII and
// IMAGE_*, are content_filter failures whose category is Gemini's reason.
// classify(): RESOURCE_EXHAUSTED is a transient rate limit unless it is a daily
// quota (a QuotaFailure quotaId containing "PerDay", or "exceeded your current
// quota" in the message): terminal quota_exhausted. RetryInfo.retryDelay fills
// retry_after when no header did. UNAVAILABLE is overloaded; "input token
// count" (INVALID_ARGUMENT) is context_too_long. Streaming: encode_stream() calls
// :streamGenerateContent?alt=sse; stream_decoder() reads it (detail/stream/gemini.hpp).
// decode and the decoder share detail/gemini_wire.hpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
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

/// Options of the Gemini adapter, in designated-initializer order (every member has an
/// initializer, so skipping fields stays clean under -Wmissing-field-initializers).
struct GeminiOptions {
    std::string model{};              ///< e.g. "gemini-2.5-flash"; required
    Secret api_key{};                 ///< sent as x-goog-api-key; required (a Route without one fails to construct)
    std::string base_url{};           ///< default https://generativelanguage.googleapis.com, or $GEMINI_BASE_URL
    std::optional<int> max_tokens{};  ///< output limit when the request sets none; unset: Gemini's default
    Headers extra_headers{};          ///< added to every request; replace defaults of the same name
};

/// Talks to the Gemini API's generateContent method.
/// @code
/// Gemini flash{{.model = "gemini-2.5-flash", .api_key = env("GEMINI_API_KEY")}};
/// @endcode
class Gemini {
public:
    /// Official endpoint root when base_url and $GEMINI_BASE_URL are empty.
    static constexpr std::string_view default_base_url = "https://generativelanguage.googleapis.com";

    /// Checks the options; throws std::invalid_argument naming the bad field (never the key).
    explicit Gemini(GeminiOptions options);

    /// The request in generateContent shape, or bad_request when it cannot be expressed.
    Result<HttpRequest> encode(const ChatRequest& request) const { return encode_body(request, false); }

    /// The same request to streamGenerateContent with `?alt=sse` (server-sent events, one whole
    /// GenerateContentResponse per event) and `Accept: text/event-stream`.
    Result<HttpRequest> encode_stream(const ChatRequest& request) const { return encode_body(request, true); }

    /// A decoder for one streamed attempt of `request` (see detail/stream/gemini.hpp).
    StreamDecoderBox stream_decoder(const ChatRequest& request, StreamLimits limits = {}) const;

    /// The normalised answer of a 2xx response; blocked prompts and safety stops are policy failures.
    Result<ChatResponse> decode(const ChatRequest& request, const HttpResponse& response) const;

    /// Refines the generic classification of an error response with Google's status and details.
    void classify(const ErrorReply& reply, Failure& f) const noexcept;

    /// Why this adapter cannot be used ("" when it can): Gemini needs an API key.
    std::string config_problem() const;

    /// "gemini", the gen_ai.system value this library reports.
    std::string_view provider() const noexcept { return "gemini"; }
    /// The configured model.
    std::string_view model() const noexcept { return opts_.model; }
    /// The endpoint requests go to.
    std::string_view endpoint() const noexcept { return url_; }

private:
    // Google's documented value that turns off the signature check on a part that did not
    // come from this model (a conversation that started elsewhere).
    static constexpr const char* kSkipSignature = "skip_thought_signature_validator";

    const std::string& secret() const noexcept { return opts_.api_key.value(); }

    Result<HttpRequest> encode_body(const ChatRequest& request, bool stream) const;

    Result<ChatResponse> decode_body(const ChatRequest& request, const HttpResponse& response) const;

    GeminiOptions opts_;
    std::string url_;
    std::string stream_url_;
    Headers headers_;
};

static_assert(HttpAdapter<Gemini>, "Gemini must satisfy HttpAdapter");
static_assert(ClassifyingAdapter<Gemini>, "Gemini must provide the classify hook");
static_assert(StreamingAdapter<Gemini>, "Gemini must stream");

FAILOVER_END_NAMESPACE

#ifndef FAILOVER_COMPILED_LIB
#include "failover/detail/gemini-inl.hpp"
#endif
