// SPDX-License-Identifier: MIT
// The Chat Completions wire format, shared by OpenAI, Azure OpenAI and the
// OpenAI-compatible servers (Ollama, vLLM, llama.cpp, OpenRouter). An
// OpenAIWire holds what differs between them (endpoint, auth header, which
// max-tokens field, whether the body names the model); encode, decode and
// classify are free functions over it, so each public adapter is a thin shell.
// Nothing here throws past its boundary: decode and classify catch everything.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "failover/adapter.hpp"
#include "failover/detail/adapter_util.hpp"
#include "failover/detail/openai_wire_types.hpp"
#include "failover/failure.hpp"
#include "failover/request.hpp"
#include "failover/response.hpp"
#include "failover/schema.hpp"
#include "failover/transport.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

namespace detail::wire {

/// How a schema goes out under `w.strict`: the document and the strict flag, or why it cannot.
struct StructuredOutput {
    bool sendable = true;
    bool strict = false;
    nlohmann::json document{};
    std::string note;  ///< why it is not strict ("" when it is)
};

inline StructuredOutput openai_structured(const OpenAIWire& w, const Schema& schema) {
    StructuredOutput out;
    if (w.strict == StrictOutput::never) {
        out.document = schema.document();
        return out;
    }
    const StrictSubset& form = schema.strict_subset();  // worked out once per schema
    if (form.ready) {
        out.strict = true;
        out.document = form.document;
        return out;
    }
    std::string why;
    for (std::size_t i = 0; i < form.reasons.size() && i < 5; ++i) why += (i ? "; " : "") + form.reasons[i];
    if (form.reasons.size() > 5) why += "; and " + std::to_string(form.reasons.size() - 5) + " more";
    out.note = "the schema is outside OpenAI's strict subset (" + why + ")";
    if (w.strict == StrictOutput::required) {
        out.sendable = false;
        out.note += "; strict output is required on this route";
        return out;
    }
    out.note += "; sent with strict: false, and every answer is validated against it";
    out.document = schema.document();
    return out;
}

/// The adapter's schema_support hook.
inline SchemaSupport openai_schema_support(const OpenAIWire& w, const Schema& schema) {
    const StructuredOutput s = openai_structured(w, schema);
    return SchemaSupport{s.sendable, s.note};
}

/// Tool-call arguments as OpenAI sends them: a JSON string. A string value
/// (arguments an earlier decode could not parse) is sent back verbatim.
inline std::string arguments_text(const json& args) {
    return args.is_string() ? args.get<std::string>() : args.dump();
}

/// Arguments as a user sees them: parsed JSON. OpenAI sends a string; some
/// compatible servers send an object. Empty means no arguments ({}). Text that
/// does not parse is kept as a JSON string holding the raw text, so nothing is
/// lost and the caller can tell (arguments.is_string()).
inline json parse_arguments(const json* args) {
    if (args == nullptr || args->is_null()) return json::object();
    if (!args->is_string()) return *args;
    const std::string& s = args->get_ref<const std::string&>();
    if (s.find_first_not_of(" \t\r\n") == std::string::npos) return json::object();
    json parsed = parse_json(s);
    return parsed.is_discarded() ? json(s) : parsed;
}

inline Result<HttpRequest> openai_encode_body(const OpenAIWire& w, const ChatRequest& req, bool stream) {
    if (auto bad = check_request_knobs(req.max_tokens, req.temperature, !req.messages.empty(), w.provider)) return *bad;

    // Written straight, members in the order json::dump() gives them (detail/json_write.hpp).
    std::string text;
    text.reserve(body_capacity(req));
    JsonOut o(text);
    o.object();
    if (auto mt = req.max_tokens ? req.max_tokens : w.max_tokens)
        o.key(w.max_completion_tokens ? "max_completion_tokens" : "max_tokens").integer(*mt);
    o.key("messages").array();
    for (std::size_t i = 0; i < req.messages.size(); ++i) {
        const Message& m = req.messages[i];
        const auto at = [i] { return "messages[" + std::to_string(i) + "]"; };
        o.object();
        switch (m.role) {
            case Role::system:
            case Role::user: o.key("content").string(m.content).key("role").string(to_string(m.role)); break;
            case Role::assistant:
                if (m.tool_calls.empty()) {
                    o.key("content").string(m.content).key("role").string("assistant");
                    break;
                }
                o.key("content");
                if (m.content.empty()) o.null();
                else o.string(m.content);
                o.key("role").string("assistant").key("tool_calls").array();
                for (const ToolCall& c : m.tool_calls) {
                    if (c.id.empty())
                        return unsendable(w.provider, at() + ": tool call '" + c.name +
                                                          "' has no id; the tool result must refer to one");
                    o.object().key("function").object();
                    o.key("arguments").string(arguments_text(c.arguments)).key("name").string(c.name).end_object();
                    o.key("id").string(c.id).key("type").string("function").end_object();
                }
                o.end_array();
                break;
            case Role::tool:
                if (m.tool_call_id.empty())
                    return unsendable(w.provider, at() + ": a tool result needs the tool_call_id it answers");
                // Chat Completions has no error flag on a tool result: the text says so.
                if (m.is_error) o.key("content").string("Error: " + m.content);
                else o.key("content").string(m.content);
                o.key("role").string("tool").key("tool_call_id").string(m.tool_call_id);
                break;
        }
        o.end_object();
    }
    o.end_array();

    if (w.max_stop != 0 && req.stop.size() > w.max_stop)
        return unsendable(w.provider, "at most " + std::to_string(w.max_stop) + " stop sequences are accepted, got " +
                                          std::to_string(req.stop.size()));
    for (const Tool& t : req.tools)
        if (!valid_function_name(t.name))
            return unsendable(w.provider, "tool name '" + clean_message(t.name, {}, 80) +
                                              "' must be 1-64 characters of [A-Za-z0-9_-]");
    std::optional<StructuredOutput> so;
    if (req.schema) {
        if (!valid_function_name(req.schema_name))
            return unsendable(w.provider, "schema_name '" + clean_message(req.schema_name, {}, 80) +
                                              "' must be 1-64 characters of [A-Za-z0-9_-]");
        if (!req.schema->document().is_object())
            return unsendable(w.provider, "structured output needs a schema that is a JSON object");
        so = openai_structured(w, *req.schema);
        if (!so->sendable) return unsendable(w.provider, so->note);
    }

    if (w.send_model) o.key("model").string(w.model);
    if (so) {
        o.key("response_format").object().key("json_schema").object();
        o.key("name").string(req.schema_name).key("schema").value(so->document).key("strict").boolean(so->strict);
        o.end_object().key("type").string("json_schema").end_object();
    }
    if (!req.stop.empty()) o.key("stop").strings(req.stop);
    if (stream) {
        // The usage chunk comes before [DONE] only when asked for; servers that do not know
        // stream_options ignore it.
        o.key("stream").boolean(true).key("stream_options").object().key("include_usage").boolean(true).end_object();
    }
    if (req.temperature) o.key("temperature").number(*req.temperature);
    if (!req.tools.empty()) {
        o.key("tools").array();
        for (const Tool& t : req.tools) {
            o.object().key("function").object();
            if (!t.description.empty()) o.key("description").string(t.description);
            o.key("name").string(t.name).key("parameters").value(t.parameters).end_object();
            o.key("type").string("function").end_object();
        }
        o.end_array();
    }
    o.end_object();

    Result<std::string> body = body_text(o, std::move(text), w.provider);
    if (!body) return std::move(body).error();
    HttpRequest http;
    http.url = w.url;
    http.headers = w.headers;
    if (stream) put_header(http.headers, "Accept", "text/event-stream");
    http.body = std::move(*body);
    return http;
}

/// The request body (and headers) for Chat Completions; `stream` asks for server-sent events
/// with the usage chunk (`"stream": true, "stream_options": {"include_usage": true}`).
inline Result<HttpRequest> openai_encode(const OpenAIWire& w, const ChatRequest& req, bool stream = false) {
    try {
        return openai_encode_body(w, req, stream);
    } catch (const json::type_error&) {  // tool-call arguments holding text that is not UTF-8
        return unsendable(w.provider, "the request contains text that is not valid UTF-8");
    }
}

/// The text of a message's content: a string, null, or (some compatible
/// servers) an array of {"type":"text","text"} parts.
inline std::string content_text(const json* content) {
    if (content == nullptr || content->is_null()) return {};
    if (content->is_string()) return content->get<std::string>();
    std::string out;
    if (content->is_array())
        for (const json& part : *content)
            if (string_at(part, "type") == "text") out += string_at(part, "text");
    return out;
}

inline FinishReason openai_finish(const std::string& finish, bool has_calls) {
    if (finish == "stop") return has_calls ? FinishReason::tool_calls : FinishReason::stop;
    if (finish == "length") return FinishReason::length;
    if (finish == "tool_calls" || finish == "function_call") return FinishReason::tool_calls;
    if (finish == "content_filter") return FinishReason::content_filter;
    return has_calls ? FinishReason::tool_calls : FinishReason::other;
}

/// The policy signals of an answer that arrived with HTTP 200, whole or streamed: a refusal
/// (`message.refusal` / the joined `delta.refusal` pieces, not null and not "") and
/// `finish_reason: content_filter`. Never retried, never failed over.
inline std::optional<Failure> openai_policy(const OpenAIWire& w, const json* refusal, std::string_view finish,
                                            const json* filter_results) {
    if (refusal != nullptr && !refusal->is_null() &&
        !(refusal->is_string() && refusal->get_ref<const std::string&>().empty())) {
        Failure f = Failure::of(Reason::refusal, refusal->is_string()
                                                     ? clean_message(refusal->get_ref<const std::string&>(), w.secret)
                                                     : w.provider + ": the model refused");
        f.provider_code = "refusal";
        return f;
    }
    if (finish == "content_filter") {
        Failure f = Failure::of(Reason::content_filter, w.provider + ": the output was blocked by the content filter");
        f.provider_code = "content_filter";
        f.category = filtered_categories(filter_results);
        return f;
    }
    return std::nullopt;
}

/// The answer from its parts, whole or assembled from a stream (the policy signals already
/// checked): the finish reason mapped, the model (else the configured one), and for a
/// structured-output request without tool calls the JSON parsed (truncated at the limit:
/// malformed_response; not JSON: schema_invalid).
inline Result<ChatResponse> openai_answer(const OpenAIWire& w, bool structured, std::string text,
                                          std::vector<ToolCall> calls, std::string_view finish, Usage usage,
                                          std::string model) {
    ChatResponse out;
    out.text = std::move(text);
    out.tool_calls = std::move(calls);
    out.finish_reason = openai_finish(std::string(finish), !out.tool_calls.empty());
    out.usage = usage;
    out.model = model.empty() ? w.model : std::move(model);
    // A tool round carries no answer yet; the answer comes after the results.
    if (structured && out.tool_calls.empty()) {
        Result<json> answer =
            parse_answer(out.text, out.finish_reason == FinishReason::length, w.provider, w.secret);
        if (!answer) return std::move(answer).error();
        out.json = std::move(*answer);
    }
    return out;
}

/// Usage of a Chat Completions `usage` object.
inline Usage openai_usage(const json* usage) noexcept {
    return Usage{count_at(usage, "prompt_tokens"), count_at(usage, "completion_tokens")};
}

inline Result<ChatResponse> openai_decode_body(const OpenAIWire& w, const ChatRequest& req, const HttpResponse& res) {
    const std::string& p = w.provider;
    json body = parse_json(res.body);
    if (body.is_discarded()) return malformed(p, "response body is not JSON");
    if (!body.is_object()) return malformed(p, "response body is not a JSON object");
    const json* choices = member(body, "choices");
    if (choices == nullptr || !choices->is_array() || choices->empty()) {
        if (member(body, "error") != nullptr) {
            const classifier::ErrorFields e = read_error(body);
            Failure f = malformed(p, "error in a successful response: " + clean_message(e.message, w.secret));
            f.provider_code = clean_message(e.code.empty() ? e.type : e.code, w.secret, 80);
            return f;
        }
        return malformed(p, "response has no choices");
    }
    const json& choice = (*choices)[0];
    const json* message = member(choice, "message");
    if (message == nullptr || !message->is_object()) return malformed(p, "choices[0].message is missing");
    const std::string finish = string_at(choice, "finish_reason");

    // Policy signals that arrive with HTTP 200: never retried, never failed over.
    if (auto blocked = openai_policy(w, member(*message, "refusal"), finish, member(choice, "content_filter_results")))
        return *std::move(blocked);

    std::vector<ToolCall> calls;
    if (const json* list = member(*message, "tool_calls"); list != nullptr && list->is_array()) {
        for (const json& c : *list) {
            const json* fn = member(c, "function");
            ToolCall call;
            call.name = string_at(fn, "name");
            if (call.name.empty()) return malformed(p, "a tool call has no function name");
            call.arguments = parse_arguments(member(fn, "arguments"));
            call.id = string_at(c, "id");
            if (call.id.empty()) {  // some compatible servers give none
                call.id = mint_call_id(res.body, calls.size(), call.name, call.arguments);
                call.minted_id = true;
            }
            calls.push_back(std::move(call));
        }
    }
    return openai_answer(w, req.schema != nullptr, content_text(member(*message, "content")), std::move(calls), finish,
                         openai_usage(member(body, "usage")), string_at(body, "model"));
}

inline Result<ChatResponse> openai_decode(const OpenAIWire& w, const ChatRequest& req, const HttpResponse& res) {
    try {
        return openai_decode_body(w, req, res);
    } catch (const std::exception& e) {
        return malformed(w.provider, std::string("unexpected response structure (") + e.what() + ")");
    }
}

inline void openai_classify(const OpenAIWire& w, const ErrorReply& reply, Failure& f) noexcept {
    try {
        // The generic classifier knows only well-known key shapes; a body that
        // echoes this key with no message of its own left it in f.message.
        redact(f.message, w.secret);
        redact(f.provider_code, w.secret);
        if (!reply.is_json()) {
            note_raw_body(reply.response, f, w.provider, w.secret);
            return;
        }
        const classifier::ErrorFields& e = reply.fields;
        if (!e.message.empty()) f.message = clean_message(e.message, w.secret);
        const std::string code = clean_message(e.code, w.secret, 80);
        const std::string type = clean_message(e.type, w.secret, 80);
        if (!code.empty() || !type.empty()) f.provider_code = code.empty() ? type : code;
        auto is = [&](std::string_view v) { return code == v || type == v; };

        // Billing, not a rate limit: the SDKs retry these, we fail over at once.
        if (is("credit_balance_exhausted") || std::string_view(code).ends_with("_spend_limit_exceeded")) {
            reclassify(f, FailureKind::terminal, Reason::quota_exhausted);
            return;
        }
        // Azure's prompt filter: innererror/content_filter_result in practice,
        // inner_error/content_filter_results in the 2024-10-21 spec.
        const json* inner = member(e.error, "innererror");
        if (inner == nullptr) inner = member(e.error, "inner_error");
        const std::string inner_code = clean_message(string_at(inner, "code"), w.secret, 80);
        if (code == "content_filter" || inner_code == "ResponsibleAIPolicyViolation") {
            reclassify(f, FailureKind::policy, Reason::content_filter);
            const json* results = member(inner, "content_filter_result");
            if (results == nullptr) results = member(inner, "content_filter_results");
            f.category = filtered_categories(results);
            if (code.empty()) f.provider_code = inner_code;
            return;
        }
        if (is("invalid_prompt")) {  // usage-policy flag on the prompt
            reclassify(f, FailureKind::policy, Reason::content_filter);
            return;
        }
        if (f.reason == Reason::quota_exhausted || f.reason == Reason::context_too_long) return;  // the body named it
        if (is("model_not_found") || code == "DeploymentNotFound") {
            reclassify(f, FailureKind::terminal, Reason::not_found);
            return;
        }
        if (is("server_is_overloaded") || type == "service_unavailable_error" || type == "unavailable_error") {
            reclassify(f, FailureKind::transient, Reason::overloaded);
            return;
        }
        if (type == "not_supported_error") {  // llama.cpp 501: retrying cannot help
            reclassify(f, FailureKind::terminal, Reason::bad_request);
            return;
        }
        if (reply.response.status == 429 && !f.retry_after) f.retry_after = wait_hint(e.message);
    } catch (...) {
        // Classification is best effort: the generic Failure stands.
    }
}

}  // namespace detail::wire
FAILOVER_END_NAMESPACE
