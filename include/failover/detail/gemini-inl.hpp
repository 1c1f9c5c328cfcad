// SPDX-License-Identifier: MIT
// Gemini's definitions (see adapters/gemini.hpp): header-only by default, compiled
// once into failover::compiled in compiled mode.
#pragma once

#include <exception>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "failover/adapters/gemini.hpp"
#include "failover/detail/adapter_util.hpp"
#include "failover/detail/gemini_wire.hpp"
#include "failover/detail/stream/gemini.hpp"
#include "failover/config.hpp"
#include "failover/schema.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

FAILOVER_INLINE Gemini::Gemini(GeminiOptions options) : opts_(std::move(options)) {
    constexpr std::string_view name = "Gemini";
    detail::wire::check_segment(opts_.model, name, "model", "._-/");
    detail::wire::check_key(secret(), name);
    detail::wire::check_max_tokens(opts_.max_tokens, name);
    const std::string base =
        detail::wire::resolve_base_url(opts_.base_url, "GEMINI_BASE_URL", default_base_url, name, secret());
    const bool has_path = opts_.model.find('/') != std::string::npos;
    const std::string resource = base + "/v1beta/" + (has_path ? "" : "models/") + opts_.model;
    url_ = resource + ":generateContent";
    stream_url_ = resource + ":streamGenerateContent?alt=sse";
    headers_ = detail::wire::json_headers();
    if (!opts_.api_key.empty()) headers_.emplace_back("x-goog-api-key", secret());
    detail::wire::add_extra_headers(headers_, opts_.extra_headers, name);
}

FAILOVER_INLINE StreamDecoderBox Gemini::stream_decoder(const ChatRequest& request, StreamLimits limits) const {
    return StreamDecoderBox(detail::stream::GeminiStream(opts_.model, secret(), request, limits));
}

FAILOVER_INLINE Result<ChatResponse> Gemini::decode(const ChatRequest& request, const HttpResponse& response) const {
    try {
        return decode_body(request, response);
    } catch (const std::exception& e) {
        return detail::wire::malformed("gemini", std::string("unexpected response structure (") + e.what() + ")");
    }
}

FAILOVER_INLINE void Gemini::classify(const ErrorReply& reply, Failure& f) const noexcept { detail::wire::gemini_classify(secret(), reply, f); }

FAILOVER_INLINE std::string Gemini::config_problem() const { return detail::wire::missing_key(opts_.api_key, "Gemini", "GEMINI_API_KEY"); }

FAILOVER_INLINE Result<HttpRequest> Gemini::encode_body(const ChatRequest& request, bool stream) const {
    using nlohmann::json;
    constexpr std::string_view p = "gemini";
    if (auto bad = detail::wire::check_request_knobs(request.max_tokens, request.temperature, !request.messages.empty(), p))
        return *bad;
    json body = json::object();
    json system_parts = json::array();
    std::vector<std::pair<std::string, json>> turns;  // (role, parts), merged by role
    auto add = [&](const char* role, json part) {
        if (turns.empty() || turns.back().first != role) turns.emplace_back(role, json::array());
        turns.back().second.push_back(std::move(part));
    };
    for (std::size_t i = 0; i < request.messages.size(); ++i) {
        const Message& m = request.messages[i];
        const std::string at = "messages[" + std::to_string(i) + "]";
        switch (m.role) {
            case Role::system:
                system_parts.push_back({{"text", m.content}});
                break;
            case Role::user:
                add("user", {{"text", m.content}});
                break;
            case Role::assistant: {
                // Thought signatures go back on the part they came with, and only to the model that
                // made them. A turn from anywhere else carries Google's documented placeholder on its
                // first call instead, which Gemini 3 requires of every call step.
                if (!m.content.empty() || m.tool_calls.empty()) {
                    json part = {{"text", m.content}};
                    if (m.signature.belongs_to("gemini", opts_.model)) part["thoughtSignature"] = m.signature.value;
                    add("model", std::move(part));
                }
                bool first_call = true;
                for (const ToolCall& c : m.tool_calls) {
                    if (!c.arguments.is_object())
                        return detail::wire::unsendable(p, at + ": the arguments of tool call '" + c.name +
                                                         "' are not a JSON object");
                    json call = {{"name", c.name}, {"args", c.arguments}};
                    if (!c.id.empty() && !c.minted_id) call["id"] = c.id;
                    json part = {{"functionCall", std::move(call)}};
                    const bool ours = c.signature.provider == "gemini" && c.signature.model == opts_.model;
                    if (ours && !c.signature.empty()) part["thoughtSignature"] = c.signature.value;
                    else if (!ours && first_call) part["thoughtSignature"] = kSkipSignature;
                    first_call = false;
                    add("model", std::move(part));
                }
                break;
            }
            case Role::tool: {
                std::string tool_name = m.name.empty() ? detail::wire::name_of_call(request, i, m.tool_call_id) : m.name;
                if (tool_name.empty())
                    return detail::wire::unsendable(p, at + ": a tool result needs the tool's name (Message::name)");
                // Gemini's convention: the result under "output", a failure under "error".
                json result = m.is_error ? json() : detail::wire::parse_json(m.content);
                if (!result.is_object()) result = json{{m.is_error ? "error" : "output", m.content}};
                json response = {{"name", std::move(tool_name)}, {"response", std::move(result)}};
                if (!m.tool_call_id.empty() && !detail::wire::minted_call(request, i, m.tool_call_id))
                    response["id"] = m.tool_call_id;
                add("user", {{"functionResponse", std::move(response)}});
                break;
            }
        }
    }
    if (!system_parts.empty()) body["systemInstruction"] = {{"parts", std::move(system_parts)}};
    json contents = json::array();
    for (auto& [role, parts] : turns) contents.push_back({{"role", role}, {"parts", std::move(parts)}});
    if (contents.empty()) return detail::wire::unsendable(p, "the request has only system messages");
    body["contents"] = std::move(contents);

    json config = json::object();
    if (auto mt = request.max_tokens ? request.max_tokens : opts_.max_tokens) config["maxOutputTokens"] = *mt;
    if (request.temperature) config["temperature"] = *request.temperature;
    if (!request.stop.empty()) config["stopSequences"] = request.stop;
    if (request.schema) {
        if (!request.schema->document().is_object())
            return detail::wire::unsendable(p, "structured output needs a schema that is a JSON object");
        config["responseMimeType"] = "application/json";
        config["responseJsonSchema"] = request.schema->document();
    }
    if (!config.empty()) body["generationConfig"] = std::move(config);

    if (!request.tools.empty()) {
        json declarations = json::array();
        for (const Tool& t : request.tools) {
            if (!detail::wire::valid_function_name(t.name))
                return detail::wire::unsendable(p, "tool name '" + detail::wire::clean_message(t.name, {}, 80) +
                                                 "' must be 1-64 characters of [A-Za-z0-9_-]");
            json d = {{"name", t.name}, {"parametersJsonSchema", t.parameters}};
            if (!t.description.empty()) d["description"] = t.description;
            declarations.push_back(std::move(d));
        }
        json tool = json::object();
        tool["functionDeclarations"] = std::move(declarations);
        body["tools"] = json::array();
        body["tools"].push_back(std::move(tool));
    }

    Result<std::string> text = detail::wire::dump_body(body, p);
    if (!text) return std::move(text).error();
    HttpRequest http;
    http.url = stream ? stream_url_ : url_;
    http.headers = headers_;
    if (stream) detail::wire::put_header(http.headers, "Accept", "text/event-stream");
    http.body = std::move(*text);
    return http;
}

FAILOVER_INLINE Result<ChatResponse> Gemini::decode_body(const ChatRequest& request, const HttpResponse& response) const {
    using nlohmann::json;
    constexpr std::string_view p = "gemini";
    json body = detail::wire::parse_json(response.body);
    if (body.is_discarded()) return detail::wire::malformed(p, "response body is not JSON");
    if (!body.is_object()) return detail::wire::malformed(p, "response body is not a JSON object");
    const json* candidates = detail::wire::member(body, "candidates");
    if (candidates == nullptr || !candidates->is_array() || candidates->empty()) {
        if (auto blocked = detail::wire::gemini_blocked(detail::wire::member(body, "promptFeedback"), secret()))
            return *std::move(blocked);
        if (detail::wire::member(body, "error") != nullptr) {
            const auto e = detail::wire::read_error(body);
            Failure f = detail::wire::malformed(p, "error in a successful response: " +
                                                 detail::wire::clean_message(e.message, secret()));
            f.provider_code = detail::wire::clean_message(e.status, secret(), 80);
            return f;
        }
        return detail::wire::malformed(p, "response has no candidates");
    }
    const json& candidate = (*candidates)[0];
    const std::string finish = detail::wire::clean_message(detail::wire::string_at(candidate, "finishReason"), {}, 80);
    if (auto stopped = detail::wire::gemini_stopped(finish)) return *std::move(stopped);

    ChatResponse out;
    const json* parts = detail::wire::member(detail::wire::member(candidate, "content"), "parts");
    if (parts != nullptr && parts->is_array()) {
        for (const json& part : *parts) {
            Result<int> read = detail::wire::gemini_part(part, out, response.body, opts_.model);
            if (!read) return std::move(read).error();
        }
    }
    out.usage = detail::wire::gemini_usage(detail::wire::member(body, "usageMetadata"));
    out.model = detail::wire::string_at(body, "modelVersion");
    return detail::wire::gemini_answer(std::move(out), finish, request.schema != nullptr, opts_.model, secret());
}

FAILOVER_END_NAMESPACE
