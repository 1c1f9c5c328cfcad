// SPDX-License-Identifier: MIT
// Servers that speak OpenAI's Chat Completions format: Ollama, vLLM,
// llama.cpp's llama-server, OpenRouter, and Azure OpenAI. It differs from the
// OpenAI adapter in three ways: base_url is required (there is no official
// one), the output limit goes in max_tokens (the field every local server
// reads), and auth is optional (a Bearer token only when api_key is set).
// Presets are static factories. Azure is a preset too: its URL names the
// deployment and api-version, the key goes in an api-key header, the body
// carries no model, the limit is max_completion_tokens (Azure accepts both,
// and OpenAI's o-series models reject max_tokens), and at most 4 stop sequences.
// classify() is OpenAI's plus the local servers' signals: exceed_context_size_error
// and "maximum context length" mean context_too_long, llama.cpp's
// unavailable_error (model loading) is overloaded, not_supported_error terminal.
// Streaming is OpenAI's (detail/stream/openai.hpp), stream_options included:
// servers that do not know it ignore it.
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

/// Options of a generic OpenAI-compatible server, in designated-initializer order.
struct OpenAICompatibleOptions {
    std::string base_url{};                      ///< required: the API root, e.g. "http://127.0.0.1:11434/v1"
    std::string model{};                         ///< required: the model name the server knows
    Secret api_key{};                            ///< optional; sent as "Authorization: Bearer" when set
    std::optional<int> max_tokens{};             ///< output limit when the request sets none
    std::string provider = "openai_compatible";  ///< gen_ai.system value reported in metrics
    Headers extra_headers{};                     ///< added to every request; replace defaults of the same name
    StrictOutput strict = StrictOutput::when_possible;  ///< when structured output is sent with strict: true
};

/// Options of an Azure OpenAI deployment, in designated-initializer order.
struct AzureOpenAIOptions {
    std::string resource{};                  ///< https://{resource}.openai.azure.com; or set base_url instead
    std::string base_url{};                  ///< e.g. a custom domain or an API Management gateway
    std::string deployment{};                ///< required: the deployment name
    std::string api_version = "2024-10-21";  ///< required by Azure
    Secret api_key{};                        ///< the api-key header; required unless extra_headers carry an Entra token
    std::optional<int> max_tokens{};         ///< output limit when the request sets none
    Headers extra_headers{};                 ///< e.g. an Entra "Authorization: Bearer" instead of api_key
    StrictOutput strict = StrictOutput::when_possible;  ///< when structured output is sent with strict: true
};

/// Talks to any server with OpenAI's Chat Completions format.
/// @code
/// OpenAICompatible local{{.base_url = "http://127.0.0.1:11434/v1", .model = "llama3.1"}};
/// auto azure = OpenAICompatible::azure({.resource = "acme", .deployment = "gpt-4o",
///                                       .api_key = env("AZURE_OPENAI_API_KEY")});
/// @endcode
class OpenAICompatible {
public:
    /// Checks the options; throws std::invalid_argument naming the bad field (never the key).
    explicit OpenAICompatible(OpenAICompatibleOptions options);

    /// Azure OpenAI: .../openai/deployments/{deployment}/chat/completions?api-version=...,
    /// key in the api-key header. Set exactly one of resource and base_url.
    static OpenAICompatible azure(AzureOpenAIOptions options);

    /// A local Ollama server (no auth).
    static OpenAICompatible ollama(std::string model, std::string base_url = "http://127.0.0.1:11434/v1");

    /// A vLLM server; the key is needed only when the server runs with --api-key.
    static OpenAICompatible vllm(std::string model, std::string base_url, Secret api_key = {});

    /// llama.cpp's llama-server; the key is needed only when it runs with --api-key.
    static OpenAICompatible llama_cpp(std::string model, std::string base_url = "http://127.0.0.1:8080/v1", Secret api_key = {});

    /// OpenRouter (https://openrouter.ai/api/v1), Bearer auth; the key is required.
    static OpenAICompatible openrouter(std::string model, Secret api_key);

    /// The request in Chat Completions shape, or bad_request when it cannot be expressed.
    Result<HttpRequest> encode(const ChatRequest& request) const;

    /// The same request asking for server-sent events: `"stream": true`,
    /// `"stream_options": {"include_usage": true}`, `Accept: text/event-stream`.
    Result<HttpRequest> encode_stream(const ChatRequest& request) const;

    /// A decoder for one streamed attempt of `request` (see detail/stream/openai.hpp).
    StreamDecoderBox stream_decoder(const ChatRequest& request, StreamLimits limits = {}) const;

    /// The normalised answer of a 2xx response; refusals and filtered output are policy failures.
    Result<ChatResponse> decode(const ChatRequest& request, const HttpResponse& response) const;

    /// Refines the generic classification of an error response (OpenAI, Azure and local-server codes).
    void classify(const ErrorReply& reply, Failure& failure) const noexcept;

    /// Whether `schema` goes out strict, with strict off (and why), or not at all.
    SchemaSupport schema_support(const Schema& schema) const;

    /// Why this adapter cannot be used ("" when it can): Azure and OpenRouter need a key;
    /// local servers (Ollama, vLLM, llama.cpp, a generic base_url) may run without one.
    std::string config_problem() const { return key_problem_; }

    /// gen_ai.system: "openai_compatible", "azure_openai", "ollama", "vllm", "llama_cpp", "openrouter", or the option.
    std::string_view provider() const noexcept { return wire_.provider; }
    /// The configured model (the deployment name for Azure).
    std::string_view model() const noexcept { return wire_.model; }
    /// The endpoint requests go to.
    std::string_view endpoint() const noexcept { return wire_.url; }

private:
    struct Preset {};
    OpenAICompatible(detail::wire::OpenAIWire wire, Preset) : wire_(std::move(wire)) {}

    detail::wire::OpenAIWire wire_;
    std::string key_problem_;
};

static_assert(HttpAdapter<OpenAICompatible>, "OpenAICompatible must satisfy HttpAdapter");
static_assert(ClassifyingAdapter<OpenAICompatible>, "OpenAICompatible must provide the classify hook");
static_assert(StreamingAdapter<OpenAICompatible>, "OpenAICompatible must stream");

FAILOVER_END_NAMESPACE

#ifndef FAILOVER_COMPILED_LIB
#include "failover/detail/openai_compatible-inl.hpp"
#endif
