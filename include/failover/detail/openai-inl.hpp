// SPDX-License-Identifier: MIT
// OpenAI's definitions (see adapters/openai.hpp): header-only by default, compiled
// once into failover::compiled in compiled mode.
#pragma once

#include <exception>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "failover/adapters/openai.hpp"
#include "failover/detail/adapter_util.hpp"
#include "failover/detail/openai_wire.hpp"
#include "failover/detail/stream/openai.hpp"
#include "failover/config.hpp"
#include "failover/schema.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

FAILOVER_INLINE OpenAI::OpenAI(OpenAIOptions options) {
    constexpr std::string_view name = "OpenAI";
    if (options.model.empty()) detail::wire::config_error(name, "model must not be empty");
    detail::wire::check_key(options.api_key.value(), name);
    detail::wire::check_max_tokens(options.max_tokens, name);
    const std::string base =
        detail::wire::resolve_base_url(options.base_url, "OPENAI_BASE_URL", default_base_url, name, options.api_key.value());
    wire_.provider = "openai";
    wire_.model = options.model;
    wire_.url = base + "/chat/completions";
    wire_.secret = options.api_key.value();
    wire_.strict = options.strict;
    key_ = options.api_key;
    wire_.max_tokens = options.max_tokens;
    wire_.max_completion_tokens = true;
    wire_.max_stop = 4;
    wire_.headers = detail::wire::json_headers();
    if (!options.api_key.empty()) wire_.headers.emplace_back("Authorization", "Bearer " + options.api_key.value());
    if (!options.organization.empty()) {
        detail::wire::check_header("OpenAI-Organization", options.organization, name, "organization");
        wire_.headers.emplace_back("OpenAI-Organization", options.organization);
    }
    if (!options.project.empty()) {
        detail::wire::check_header("OpenAI-Project", options.project, name, "project");
        wire_.headers.emplace_back("OpenAI-Project", options.project);
    }
    detail::wire::add_extra_headers(wire_.headers, options.extra_headers, name);
}

FAILOVER_INLINE Result<HttpRequest> OpenAI::encode(const ChatRequest& request) const { return detail::wire::openai_encode(wire_, request); }

FAILOVER_INLINE Result<HttpRequest> OpenAI::encode_stream(const ChatRequest& request) const {
    return detail::wire::openai_encode(wire_, request, /*stream=*/true);
}

FAILOVER_INLINE StreamDecoderBox OpenAI::stream_decoder(const ChatRequest& request, StreamLimits limits) const {
    return StreamDecoderBox(detail::stream::OpenAIStream(wire_, request, limits));
}

FAILOVER_INLINE Result<ChatResponse> OpenAI::decode(const ChatRequest& request, const HttpResponse& response) const {
    return detail::wire::openai_decode(wire_, request, response);
}

FAILOVER_INLINE void OpenAI::classify(const ErrorReply& reply, Failure& failure) const noexcept {
    detail::wire::openai_classify(wire_, reply, failure);
}

FAILOVER_INLINE SchemaSupport OpenAI::schema_support(const Schema& schema) const { return detail::wire::openai_schema_support(wire_, schema); }

FAILOVER_INLINE std::string OpenAI::config_problem() const { return detail::wire::missing_key(key_, "OpenAI", "OPENAI_API_KEY"); }

FAILOVER_END_NAMESPACE
