// SPDX-License-Identifier: MIT
// Anthropic's definitions (see adapters/anthropic.hpp): header-only by default, compiled
// once into failover::compiled in compiled mode.
#pragma once

#include <exception>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "failover/adapters/anthropic.hpp"
#include "failover/detail/adapter_util.hpp"
#include "failover/detail/anthropic_wire.hpp"
#include "failover/detail/stream/anthropic.hpp"
#include "failover/config.hpp"
#include "failover/schema.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

FAILOVER_INLINE Anthropic::Anthropic(AnthropicOptions options) : opts_(std::move(options)) {
    constexpr std::string_view name = "Anthropic";
    if (opts_.model.empty()) detail::wire::config_error(name, "model must not be empty");
    if (opts_.max_tokens <= 0)
        detail::wire::config_error(name, "max_tokens must be positive, got " + std::to_string(opts_.max_tokens));
    if (opts_.anthropic_version.empty()) detail::wire::config_error(name, "anthropic_version must not be empty");
    detail::wire::check_key(opts_.api_key.value(), name);
    detail::wire::check_header("anthropic-version", opts_.anthropic_version, name, "anthropic_version");
    url_ = detail::wire::resolve_base_url(opts_.base_url, "ANTHROPIC_BASE_URL", default_base_url, name, secret()) +
           "/v1/messages";
    headers_ = detail::wire::json_headers();
    if (!opts_.api_key.empty()) headers_.emplace_back("x-api-key", secret());
    headers_.emplace_back("anthropic-version", opts_.anthropic_version);
    detail::wire::add_extra_headers(headers_, opts_.extra_headers, name);
}

FAILOVER_INLINE StreamDecoderBox Anthropic::stream_decoder(const ChatRequest& request, StreamLimits limits) const {
    return StreamDecoderBox(detail::stream::AnthropicStream(opts_.model, secret(), request, limits));
}

FAILOVER_INLINE Result<ChatResponse> Anthropic::decode(const ChatRequest& request, const HttpResponse& response) const {
    try {
        return decode_body(request, response);
    } catch (const std::exception& e) {
        return detail::wire::malformed("anthropic", std::string("unexpected response structure (") + e.what() + ")");
    }
}

FAILOVER_INLINE void Anthropic::classify(const ErrorReply& reply, Failure& f) const noexcept { detail::wire::anthropic_classify(secret(), reply, f); }

FAILOVER_INLINE std::string Anthropic::config_problem() const { return detail::wire::missing_key(opts_.api_key, "Anthropic", "ANTHROPIC_API_KEY"); }

FAILOVER_INLINE Result<HttpRequest> Anthropic::encode_body(const ChatRequest& request, bool stream) const {
    using nlohmann::json;
    constexpr std::string_view p = "anthropic";
    if (auto bad = detail::wire::check_request_knobs(request.max_tokens, request.temperature, !request.messages.empty(), p))
        return *bad;

    // Turns as (role, content blocks); a turn of one text block is sent as a plain string. A
    // text block is the message's own text; the rarer blocks are small DOM values.
    struct Block {
        const std::string* text = nullptr;  // a text block
        json other{};                       // any other block
    };
    std::vector<const std::string*> system;
    std::vector<std::pair<const char*, std::vector<Block>>> turns;
    auto add = [&](const char* role, Block block) {
        if (turns.empty() || std::string_view(turns.back().first) != role) turns.emplace_back(role, std::vector<Block>{});
        turns.back().second.push_back(std::move(block));
    };
    for (std::size_t i = 0; i < request.messages.size(); ++i) {
        const Message& m = request.messages[i];
        const auto at = [i] { return "messages[" + std::to_string(i) + "]"; };
        switch (m.role) {
            case Role::system:
                system.push_back(&m.content);
                break;
            case Role::user:
                add("user", Block{&m.content});
                break;
            case Role::assistant:
                // Thinking blocks go back first, unchanged, and only to the model that signed them.
                for (const Thinking& t : m.thinking) {
                    if (!t.signature.belongs_to("anthropic", opts_.model)) continue;
                    if (t.redacted) add("assistant", Block{nullptr, {{"type", "redacted_thinking"}, {"data", t.signature.value}}});
                    else add("assistant", Block{nullptr, {{"type", "thinking"}, {"thinking", t.text}, {"signature", t.signature.value}}});
                }
                if (!m.content.empty() || m.tool_calls.empty()) add("assistant", Block{&m.content});
                for (const ToolCall& c : m.tool_calls) {
                    if (c.id.empty())
                        return detail::wire::unsendable(p, at() + ": tool call '" + c.name + "' has no id");
                    if (!c.arguments.is_object())
                        return detail::wire::unsendable(p, at() + ": the arguments of tool call '" + c.name +
                                                         "' are not a JSON object");
                    add("assistant", Block{nullptr, {{"type", "tool_use"}, {"id", c.id}, {"name", c.name}, {"input", c.arguments}}});
                }
                break;
            case Role::tool:
                if (m.tool_call_id.empty())
                    return detail::wire::unsendable(p, at() + ": a tool result needs the tool_call_id it answers");
                if (m.is_error)
                    add("user", Block{nullptr, {{"type", "tool_result"}, {"tool_use_id", m.tool_call_id}, {"content", m.content}, {"is_error", true}}});
                else
                    add("user", Block{nullptr, {{"type", "tool_result"}, {"tool_use_id", m.tool_call_id}, {"content", m.content}}});
                break;
        }
    }
    if (turns.empty()) return detail::wire::unsendable(p, "the request has only system messages");

    json tools = json::array();
    for (const Tool& t : request.tools) {
        if (!detail::wire::valid_function_name(t.name))
            return detail::wire::unsendable(p, "tool name '" + detail::wire::clean_message(t.name, {}, 80) +
                                             "' must be 1-64 characters of [A-Za-z0-9_-]");
        if (request.schema && t.name == request.schema_name)
            return detail::wire::unsendable(p, "tool '" + t.name + "' has the name of the structured-output tool (schema_name)");
        json tool = {{"name", t.name}, {"input_schema", t.parameters}};
        if (!t.description.empty()) tool["description"] = t.description;
        tools.push_back(std::move(tool));
    }
    json tool_choice;
    if (request.schema) {
        const json& doc = request.schema->document();
        if (!detail::wire::valid_function_name(request.schema_name))
            return detail::wire::unsendable(p, "schema_name '" + detail::wire::clean_message(request.schema_name, {}, 80) +
                                             "' must be 1-64 characters of [A-Za-z0-9_-]");
        const json* type = detail::wire::member(doc, "type");
        if (!doc.is_object() || (type != nullptr && *type != "object"))
            return detail::wire::unsendable(p, "structured output is sent as a tool input, so the schema's root must be "
                                         "an object schema");
        const bool own_tools = !tools.empty();
        tools.push_back({{"name", request.schema_name},
                         {"description", "Give the final answer by calling this tool; its input is the answer."},
                         {"input_schema", doc}});
        tool_choice = own_tools ? json{{"type", "any"}} : json{{"type", "tool"}, {"name", request.schema_name}};
    }

    // Written straight, members in the order json::dump() gives them (detail/json_write.hpp).
    std::string text;
    text.reserve(detail::wire::body_capacity(request));
    detail::JsonOut o(text);
    const auto text_block = [&o](const std::string& t) {
        o.object().key("text").string(t).key("type").string("text").end_object();
    };
    o.object().key("max_tokens").integer(request.max_tokens.value_or(opts_.max_tokens)).key("messages").array();
    for (const auto& [role, blocks] : turns) {
        o.object().key("content");
        if (blocks.size() == 1 && blocks.front().text != nullptr) {
            o.string(*blocks.front().text);
        } else {
            o.array();
            for (const Block& b : blocks) {
                if (b.text != nullptr) text_block(*b.text);
                else o.value(b.other);
            }
            o.end_array();
        }
        o.key("role").string(role).end_object();
    }
    o.end_array().key("model").string(opts_.model);
    if (!request.stop.empty()) o.key("stop_sequences").strings(request.stop);
    if (stream) o.key("stream").boolean(true);
    if (system.size() == 1) {
        o.key("system").string(*system.front());
    } else if (system.size() > 1) {
        o.key("system").array();
        for (const std::string* s : system) text_block(*s);
        o.end_array();
    }
    if (request.temperature) o.key("temperature").number(*request.temperature);
    if (!tool_choice.is_null()) o.key("tool_choice").value(tool_choice);
    if (!tools.empty()) o.key("tools").value(tools);
    o.end_object();

    Result<std::string> body = detail::wire::body_text(o, std::move(text), p);
    if (!body) return std::move(body).error();
    HttpRequest http;
    http.url = url_;
    http.headers = headers_;
    if (stream) detail::wire::put_header(http.headers, "Accept", "text/event-stream");
    http.body = std::move(*body);
    return http;
}

FAILOVER_INLINE Result<ChatResponse> Anthropic::decode_body(const ChatRequest& request, const HttpResponse& response) const {
    using nlohmann::json;
    constexpr std::string_view p = "anthropic";
    json body = detail::wire::parse_json(response.body);
    if (body.is_discarded()) return detail::wire::malformed(p, "response body is not JSON");
    json* content = body.is_object() && body.contains("content") ? &body["content"] : nullptr;
    if (content == nullptr || !content->is_array()) {
        if (detail::wire::member(body, "error") != nullptr) {
            const auto e = detail::wire::read_error(body);
            Failure f = detail::wire::malformed(p, "error in a successful response: " +
                                                 detail::wire::clean_message(e.message, secret()));
            f.provider_code = detail::wire::clean_message(e.type, secret(), 80);
            return f;
        }
        return detail::wire::malformed(p, "response has no content array");
    }

    detail::wire::AnthropicContent c;
    for (json& block : *content) {
        const std::string type = detail::wire::string_at(block, "type");
        if (type == "text") {
            c.text += detail::wire::string_at(block, "text");
        } else if (type == "tool_use") {
            std::string name = detail::wire::string_at(block, "name");
            if (name.empty()) return detail::wire::malformed(p, "a tool_use block has no name");
            const bool has_input = block.is_object() && block.contains("input");
            json input = has_input ? std::move(block["input"]) : json();
            if (request.schema && name == request.schema_name) {
                if (has_input) c.answer = std::move(input);  // no input at all: as if not called
                continue;
            }
            ToolCall call;
            call.id = detail::wire::string_at(block, "id");
            call.name = std::move(name);
            call.arguments = input.is_null() ? json::object() : std::move(input);
            if (call.id.empty()) {
                call.id = detail::wire::mint_call_id(response.body, c.calls.size(), call.name, call.arguments);
                call.minted_id = true;
            }
            c.calls.push_back(std::move(call));
        } else if (type == "thinking" || type == "redacted_thinking") {
            // Kept to be sent back to this model in a tool-use loop; never part of the answer.
            const bool redacted = type == "redacted_thinking";
            c.thinking.push_back(detail::wire::anthropic_thinking(
                redacted, detail::wire::string_at(block, "thinking"),
                detail::wire::string_at(block, redacted ? "data" : "signature"), opts_.model));
        }
        // server-tool blocks carry nothing the unified response holds
    }
    c.stop = detail::wire::string_at(body, "stop_reason");
    if (const json* details = detail::wire::member(body, "stop_details")) c.stop_details = *details;
    const json* usage = detail::wire::member(body, "usage");
    c.usage.input_tokens = detail::wire::anthropic_input_tokens(usage);
    c.usage.output_tokens = detail::wire::count_at(usage, "output_tokens");
    c.model = detail::wire::string_at(body, "model");
    return detail::wire::anthropic_answer(std::move(c), request.schema != nullptr, request.schema_name, opts_.model,
                                          secret());
}

FAILOVER_END_NAMESPACE
