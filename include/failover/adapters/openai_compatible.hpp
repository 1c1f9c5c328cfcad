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
#include "failover/detail/adapter_util.hpp"
#include "failover/detail/openai_wire.hpp"
#include "failover/detail/stream/openai.hpp"
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
    explicit OpenAICompatible(OpenAICompatibleOptions options) {
        const std::string name = "OpenAICompatible(" + detail::wire::clean_message(options.provider, {}, 40) + ")";
        if (options.base_url.empty()) detail::wire::config_error(name, "base_url must be set (e.g. http://127.0.0.1:11434/v1)");
        if (options.model.empty()) detail::wire::config_error(name, "model must not be empty");
        if (options.provider.empty()) detail::wire::config_error(name, "provider must not be empty");
        detail::wire::check_key(options.api_key.value(), name);
        detail::wire::check_max_tokens(options.max_tokens, name);
        const std::string base = detail::wire::check_base_url(options.base_url, name, "base_url", options.api_key.value());
        wire_.provider = std::move(options.provider);
        wire_.model = std::move(options.model);
        wire_.url = base + "/chat/completions";
        wire_.secret = options.api_key.value();
        wire_.max_tokens = options.max_tokens;
        wire_.max_completion_tokens = false;
        wire_.strict = options.strict;
        wire_.headers = detail::wire::json_headers();
        if (!options.api_key.empty()) wire_.headers.emplace_back("Authorization", "Bearer " + options.api_key.value());
        detail::wire::add_extra_headers(wire_.headers, options.extra_headers, name);
    }

    /// Azure OpenAI: .../openai/deployments/{deployment}/chat/completions?api-version=...,
    /// key in the api-key header. Set exactly one of resource and base_url.
    static OpenAICompatible azure(AzureOpenAIOptions options) {
        constexpr std::string_view name = "OpenAICompatible::azure";
        if (options.resource.empty() == options.base_url.empty())
            detail::wire::config_error(name, "set exactly one of resource and base_url");
        std::string base;
        if (!options.resource.empty()) {
            detail::wire::check_segment(options.resource, name, "resource", "-");
            base = "https://" + options.resource + ".openai.azure.com";
        } else {
            base = detail::wire::check_base_url(options.base_url, name, "base_url", options.api_key.value());
        }
        detail::wire::check_segment(options.deployment, name, "deployment", "._-");
        detail::wire::check_segment(options.api_version, name, "api_version", ".-");
        detail::wire::check_key(options.api_key.value(), name);
        detail::wire::check_max_tokens(options.max_tokens, name);
        detail::wire::OpenAIWire w;
        w.provider = "azure_openai";
        w.model = options.deployment;
        w.url = base + "/openai/deployments/" + options.deployment + "/chat/completions?api-version=" +
                options.api_version;
        w.secret = options.api_key.value();
        w.strict = options.strict;
        w.send_model = false;
        w.max_completion_tokens = true;
        w.max_tokens = options.max_tokens;
        w.max_stop = 4;
        w.headers = detail::wire::json_headers();
        if (!options.api_key.empty()) w.headers.emplace_back("api-key", options.api_key.value());
        detail::wire::add_extra_headers(w.headers, options.extra_headers, name);
        OpenAICompatible azure(std::move(w), Preset{});
        // Azure takes the api-key header or an Entra token in Authorization; one of them is needed.
        if (!detail::find_header(azure.wire_.headers, "Authorization"))
            azure.key_problem_ = detail::wire::missing_key(options.api_key, "Azure OpenAI", "AZURE_OPENAI_API_KEY");
        return azure;
    }

    /// A local Ollama server (no auth).
    static OpenAICompatible ollama(std::string model, std::string base_url = "http://127.0.0.1:11434/v1") {
        return OpenAICompatible(
            OpenAICompatibleOptions{.base_url = std::move(base_url), .model = std::move(model), .provider = "ollama"});
    }

    /// A vLLM server; the key is needed only when the server runs with --api-key.
    static OpenAICompatible vllm(std::string model, std::string base_url, Secret api_key = {}) {
        return OpenAICompatible(OpenAICompatibleOptions{.base_url = std::move(base_url),
                                                        .model = std::move(model),
                                                        .api_key = std::move(api_key),
                                                        .provider = "vllm"});
    }

    /// llama.cpp's llama-server; the key is needed only when it runs with --api-key.
    static OpenAICompatible llama_cpp(std::string model, std::string base_url = "http://127.0.0.1:8080/v1",
                                      Secret api_key = {}) {
        return OpenAICompatible(OpenAICompatibleOptions{.base_url = std::move(base_url),
                                                        .model = std::move(model),
                                                        .api_key = std::move(api_key),
                                                        .provider = "llama_cpp"});
    }

    /// OpenRouter (https://openrouter.ai/api/v1), Bearer auth; the key is required.
    static OpenAICompatible openrouter(std::string model, Secret api_key) {
        std::string problem = detail::wire::missing_key(api_key, "OpenRouter", "OPENROUTER_API_KEY");
        OpenAICompatible router(OpenAICompatibleOptions{.base_url = "https://openrouter.ai/api/v1",
                                                        .model = std::move(model),
                                                        .api_key = std::move(api_key),
                                                        .provider = "openrouter"});
        router.key_problem_ = std::move(problem);
        return router;
    }

    /// The request in Chat Completions shape, or bad_request when it cannot be expressed.
    Result<HttpRequest> encode(const ChatRequest& request) const { return detail::wire::openai_encode(wire_, request); }

    /// The same request asking for server-sent events: `"stream": true`,
    /// `"stream_options": {"include_usage": true}`, `Accept: text/event-stream`.
    Result<HttpRequest> encode_stream(const ChatRequest& request) const {
        return detail::wire::openai_encode(wire_, request, /*stream=*/true);
    }

    /// A decoder for one streamed attempt of `request` (see detail/stream/openai.hpp).
    detail::stream::OpenAIStream stream_decoder(const ChatRequest& request, StreamLimits limits = {}) const {
        return detail::stream::OpenAIStream(wire_, request, limits);
    }

    /// The normalised answer of a 2xx response; refusals and filtered output are policy failures.
    Result<ChatResponse> decode(const ChatRequest& request, const HttpResponse& response) const {
        return detail::wire::openai_decode(wire_, request, response);
    }

    /// Refines the generic classification of an error response (OpenAI, Azure and local-server codes).
    void classify(const ErrorReply& reply, Failure& failure) const noexcept {
        detail::wire::openai_classify(wire_, reply, failure);
    }

    /// Whether `schema` goes out strict, with strict off (and why), or not at all.
    SchemaSupport schema_support(const Schema& schema) const { return detail::wire::openai_schema_support(wire_, schema); }

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
