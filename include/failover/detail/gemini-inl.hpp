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
    // Turns as (role, parts), merged by role. A part of plain text is the message's own text;
    // the rarer parts are small DOM values.
    struct Part {
        const std::string* text = nullptr;  // {"text": ...}
        json other{};                       // any other part
    };
    std::vector<const std::string*> system;
    std::vector<std::pair<const char*, std::vector<Part>>> turns;
    auto add = [&](const char* role, Part part) {
        if (turns.empty() || std::string_view(turns.back().first) != role) turns.emplace_back(role, std::vector<Part>{});
        turns.back().second.push_back(std::move(part));
    };
    for (std::size_t i = 0; i < request.messages.size(); ++i) {
        const Message& m = request.messages[i];
        const auto at = [i] { return "messages[" + std::to_string(i) + "]"; };
        switch (m.role) {
            case Role::system:
                system.push_back(&m.content);
                break;
            case Role::user:
                add("user", Part{&m.content});
                break;
            case Role::assistant: {
                // Thought signatures go back on the part they came with, and only to the model that
                // made them. A turn from anywhere else carries Google's documented placeholder on its
                // first call instead, which Gemini 3 requires of every call step.
                if (!m.content.empty() || m.tool_calls.empty()) {
                    if (m.signature.belongs_to("gemini", opts_.model))
                        add("model", Part{nullptr, {{"text", m.content}, {"thoughtSignature", m.signature.value}}});
                    else
                        add("model", Part{&m.content});
                }
                bool first_call = true;
                for (const ToolCall& c : m.tool_calls) {
                    if (!c.arguments.is_object())
                        return detail::wire::unsendable(p, at() + ": the arguments of tool call '" + c.name +
                                                         "' are not a JSON object");
                    json call = {{"name", c.name}, {"args", c.arguments}};
                    if (!c.id.empty() && !c.minted_id) call["id"] = c.id;
                    json part = {{"functionCall", std::move(call)}};
                    const bool ours = c.signature.provider == "gemini" && c.signature.model == opts_.model;
                    if (ours && !c.signature.empty()) part["thoughtSignature"] = c.signature.value;
                    else if (!ours && first_call) part["thoughtSignature"] = kSkipSignature;
                    first_call = false;
                    add("model", Part{nullptr, std::move(part)});
                }
                break;
            }
            case Role::tool: {
                std::string tool_name = m.name.empty() ? detail::wire::name_of_call(request, i, m.tool_call_id) : m.name;
                if (tool_name.empty())
                    return detail::wire::unsendable(p, at() + ": a tool result needs the tool's name (Message::name)");
                // Gemini's convention: the result under "output", a failure under "error".
                json result = m.is_error ? json() : detail::wire::parse_json(m.content);
                if (!result.is_object()) result = json{{m.is_error ? "error" : "output", m.content}};
                json response = {{"name", std::move(tool_name)}, {"response", std::move(result)}};
                if (!m.tool_call_id.empty() && !detail::wire::minted_call(request, i, m.tool_call_id))
                    response["id"] = m.tool_call_id;
                add("user", Part{nullptr, {{"functionResponse", std::move(response)}}});
                break;
            }
        }
    }
    if (turns.empty()) return detail::wire::unsendable(p, "the request has only system messages");
    if (request.schema && !request.schema->document().is_object())
        return detail::wire::unsendable(p, "structured output needs a schema that is a JSON object");
    for (const Tool& t : request.tools)
        if (!detail::wire::valid_function_name(t.name))
            return detail::wire::unsendable(p, "tool name '" + detail::wire::clean_message(t.name, {}, 80) +
                                             "' must be 1-64 characters of [A-Za-z0-9_-]");

    // Written straight, members in the order json::dump() gives them (detail/json_write.hpp).
    std::string text;
    text.reserve(detail::wire::body_capacity(request));
    detail::JsonOut o(text);
    const auto text_part = [&o](const std::string& t) { o.object().key("text").string(t).end_object(); };
    o.object().key("contents").array();
    for (const auto& [role, parts] : turns) {
        o.object().key("parts").array();
        for (const Part& part : parts) {
            if (part.text != nullptr) text_part(*part.text);
            else o.value(part.other);
        }
        o.end_array().key("role").string(role).end_object();
    }
    o.end_array();
    const auto max_tokens = request.max_tokens ? request.max_tokens : opts_.max_tokens;
    if (max_tokens || request.temperature || !request.stop.empty() || request.schema) {
        o.key("generationConfig").object();
        if (max_tokens) o.key("maxOutputTokens").integer(*max_tokens);
        if (request.schema)
            o.key("responseJsonSchema").value(request.schema->document()).key("responseMimeType").string("application/json");
        if (!request.stop.empty()) o.key("stopSequences").strings(request.stop);
        if (request.temperature) o.key("temperature").number(*request.temperature);
        o.end_object();
    }
    if (!system.empty()) {
        o.key("systemInstruction").object().key("parts").array();
        for (const std::string* s : system) text_part(*s);
        o.end_array().end_object();
    }
    if (!request.tools.empty()) {
        o.key("tools").array().object().key("functionDeclarations").array();
        for (const Tool& t : request.tools) {
            o.object();
            if (!t.description.empty()) o.key("description").string(t.description);
            o.key("name").string(t.name).key("parametersJsonSchema").value(t.parameters).end_object();
        }
        o.end_array().end_object().end_array();
    }
    o.end_object();

    Result<std::string> text_or = detail::wire::body_text(o, std::move(text), p);
    if (!text_or) return std::move(text_or).error();
    HttpRequest http;
    http.url = stream ? stream_url_ : url_;
    http.headers = headers_;
    if (stream) detail::wire::put_header(http.headers, "Accept", "text/event-stream");
    http.body = std::move(*text_or);
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
