// SPDX-License-Identifier: MIT
// OpenAICompatible's definitions (see adapters/openai_compatible.hpp): header-only by default, compiled
// once into failover::compiled in compiled mode.
#pragma once

#include <exception>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "failover/adapters/openai_compatible.hpp"
#include "failover/detail/adapter_util.hpp"
#include "failover/detail/openai_wire.hpp"
#include "failover/detail/stream/openai.hpp"
#include "failover/config.hpp"
#include "failover/schema.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

FAILOVER_INLINE OpenAICompatible::OpenAICompatible(OpenAICompatibleOptions options) {
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

FAILOVER_INLINE OpenAICompatible OpenAICompatible::azure(AzureOpenAIOptions options) {
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

FAILOVER_INLINE OpenAICompatible OpenAICompatible::ollama(std::string model, std::string base_url) {
    return OpenAICompatible(
        OpenAICompatibleOptions{.base_url = std::move(base_url), .model = std::move(model), .provider = "ollama"});
}

FAILOVER_INLINE OpenAICompatible OpenAICompatible::vllm(std::string model, std::string base_url, Secret api_key) {
    return OpenAICompatible(OpenAICompatibleOptions{.base_url = std::move(base_url),
                                                    .model = std::move(model),
                                                    .api_key = std::move(api_key),
                                                    .provider = "vllm"});
}

FAILOVER_INLINE OpenAICompatible OpenAICompatible::llama_cpp(std::string model, std::string base_url, Secret api_key) {
    return OpenAICompatible(OpenAICompatibleOptions{.base_url = std::move(base_url),
                                                    .model = std::move(model),
                                                    .api_key = std::move(api_key),
                                                    .provider = "llama_cpp"});
}

FAILOVER_INLINE OpenAICompatible OpenAICompatible::openrouter(std::string model, Secret api_key) {
    std::string problem = detail::wire::missing_key(api_key, "OpenRouter", "OPENROUTER_API_KEY");
    OpenAICompatible router(OpenAICompatibleOptions{.base_url = "https://openrouter.ai/api/v1",
                                                    .model = std::move(model),
                                                    .api_key = std::move(api_key),
                                                    .provider = "openrouter"});
    router.key_problem_ = std::move(problem);
    return router;
}

FAILOVER_INLINE Result<HttpRequest> OpenAICompatible::encode(const ChatRequest& request) const { return detail::wire::openai_encode(wire_, request); }

FAILOVER_INLINE Result<HttpRequest> OpenAICompatible::encode_stream(const ChatRequest& request) const {
    return detail::wire::openai_encode(wire_, request, /*stream=*/true);
}

FAILOVER_INLINE StreamDecoderBox OpenAICompatible::stream_decoder(const ChatRequest& request, StreamLimits limits) const {
    return StreamDecoderBox(detail::stream::OpenAIStream(wire_, request, limits));
}

FAILOVER_INLINE Result<ChatResponse> OpenAICompatible::decode(const ChatRequest& request, const HttpResponse& response) const {
    return detail::wire::openai_decode(wire_, request, response);
}

FAILOVER_INLINE void OpenAICompatible::classify(const ErrorReply& reply, Failure& failure) const noexcept {
    detail::wire::openai_classify(wire_, reply, failure);
}

FAILOVER_INLINE SchemaSupport OpenAICompatible::schema_support(const Schema& schema) const { return detail::wire::openai_schema_support(wire_, schema); }

FAILOVER_END_NAMESPACE
