// SPDX-License-Identifier: MIT
// The Chat Completions stream decoder (OpenAI, Azure OpenAI, OpenAI-compatible
// servers): `data: <chat.completion.chunk>` events, `data: [DONE]` at the end.
// Only choice 0 is followed. `delta.content` pieces are text deltas (for
// structured output, pieces of the JSON text); `delta.tool_calls` fragments are
// grouped by their `index` into calls numbered in order of first appearance,
// each fragment a tool_call delta (id and name on the first one that carries
// them; an id is minted when the server gives none); `delta.refusal` pieces are
// collected, never shown. The chunk with `choices: []` and `usage` (sent because
// encode_stream asks for stream_options.include_usage) is a usage delta.
//
// Failures from feed(): an SSE `event: error` or a data JSON with an `error`
// member (classified like an error body: a numeric error.code or status is the
// HTTP status, else the status OpenAI gives that type or code, else 500), data
// that is not JSON, a refusal (when the finish_reason arrives) and
// finish_reason content_filter (policy, with Azure's filtered categories).
//
// Decision on completeness: the finish_reason chunk is required; [DONE] is not.
// openai-node accepts a connection that closes after the finish chunk, and the
// answer is whole by then; only the usage chunk (sent between the two) may be
// missing, so usage can read 0. A stream without a finish_reason is
// malformed_response, with or without [DONE]. Events after [DONE] are ignored.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "failover/detail/adapter_util.hpp"
#include "failover/detail/openai_wire.hpp"
#include "failover/detail/stream/common.hpp"
#include "failover/detail/stream/scan.hpp"
#include "failover/failure.hpp"
#include "failover/request.hpp"
#include "failover/response.hpp"
#include "failover/stream.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE
namespace detail::stream {

/// The HTTP status OpenAI answers an error with, for an error that arrived inside a stream:
/// a numeric `code` or `status` in 400-599 (vLLM, llama.cpp, Azure), else by type or code,
/// else 500.
inline int openai_error_status(const json& body) {
    const classifier::ErrorFields e = wire::read_error(body);
    for (const char* key : {"code", "status"}) {
        const json* v = e.error != nullptr ? wire::member(*e.error, key) : nullptr;
        std::int64_t n = 0;
        if (v != nullptr && v->is_number_integer()) n = v->get<std::int64_t>();
        else if (v != nullptr && v->is_string() && !v->get_ref<const std::string&>().empty() &&
                 v->get_ref<const std::string&>().size() == 3 &&
                 v->get_ref<const std::string&>().find_first_not_of("0123456789") == std::string::npos)
            n = std::stoll(v->get_ref<const std::string&>());
        if (n >= 400 && n <= 599) return static_cast<int>(n);
    }
    const auto is = [&](std::string_view v) { return e.code == v || e.type == v; };
    if (is("rate_limit_exceeded") || is("insufficient_quota") || e.type == "requests" || e.type == "tokens") return 429;
    if (is("server_is_overloaded") || is("service_unavailable_error") || is("unavailable_error")) return 503;
    if (is("invalid_api_key") || is("authentication_error")) return 401;
    if (is("model_not_found") || is("not_found_error")) return 404;
    if (is("invalid_request_error") || is("context_length_exceeded") || is("content_filter") || is("invalid_prompt") ||
        is("exceed_context_size_error"))
        return 400;
    return 500;
}

/// Decodes one streamed Chat Completions attempt (see the file comment).
class OpenAIStream : public Decoder {
public:
    /// For `request` sent through `wire` (only its provider, model and secret are kept).
    OpenAIStream(const wire::OpenAIWire& w, const ChatRequest& request, StreamLimits limits = {})
        : Decoder(w.provider, w.secret, limits), structured_(request.schema != nullptr) {
        wire_.provider = w.provider;
        wire_.model = w.model;
        wire_.secret = w.secret;
    }

    /// Feeds the next bytes of the body (any split); appends each delta decoded to `out`.
    std::optional<Failure> feed(std::string_view bytes, std::vector<StreamDelta>& out) {
        return run(bytes, [&](const SseEventView& e) { return on_event(e, out); });
    }

    /// The body ended cleanly: the answer as decode() assembles it, or why not.
    Result<ChatResponse> end() {
        return finish([this]() -> Result<ChatResponse> { return assemble(); });
    }

    /// Off: every chunk goes through the DOM (the fuzzer compares both paths).
    void scan(bool on) noexcept { scan_ = on; }

private:
    Result<ChatResponse> assemble() {
        if (!done_ && sse_.mid_event()) return fail(ended_early(provider_, "the body ended in the middle of an event"));
        if (refused_) {
            const json refusal(refusal_);
            if (auto blocked = wire::openai_policy(wire_, &refusal, finish_, nullptr)) return fail(*std::move(blocked));
        }
        if (!finished_)
            return fail(ended_early(provider_, done_ ? "[DONE] came without a finish_reason"
                                                     : "no finish_reason and no [DONE]"));
        std::vector<ToolCall> calls;
        calls.reserve(calls_.size());
        for (const Call& c : calls_) {
            if (c.call.name.empty()) return fail(wire::malformed(provider_, "a tool call has no function name"));
            ToolCall t = c.call;
            const json args(c.arguments);
            t.arguments = wire::parse_arguments(&args);
            calls.push_back(std::move(t));
        }
        Result<ChatResponse> r = wire::openai_answer(wire_, structured_, std::move(text_), std::move(calls), finish_, usage_, model_);
        if (!r) return fail(r.error());
        return r;
    }

    struct Call {
        std::int64_t key = 0;  // the provider's index
        ToolCall call{};       // id and name; arguments parsed at the end
        std::string arguments{};
        bool named = false;    // the name has been given in a delta
    };

    std::optional<Failure> on_event(const SseEventView& e, std::vector<StreamDelta>& out) {
        if (done_) return std::nullopt;  // events after [DONE] are ignored
        // The previous chunk again with another piece of text (detail/stream/scan.hpp): read by
        // comparing bytes. Any other event makes the memo forget it.
        if (scan_ && memo_.read(e.type, e.data, memo_text_)) {
            ++scanned_;
            ++remembered_;
            add_text(memo_text_, out);
            return std::nullopt;
        }
        if (e.type != "message" && e.type != "error") return std::nullopt;
        if (e.type == "message" && e.data == "[DONE]") {
            done_ = true;
            return std::nullopt;
        }
        if (scan_ && e.type == "message") {
            std::optional<Failure> failed;
            if (scan_chunk(e.data, out, failed)) {
                ++scanned_;
                return failed;
            }
        }
        const json chunk = parse(e.data);
        if (e.type == "error") {
            const int status = chunk.is_discarded() ? 500 : openai_error_status(chunk);
            return error_event(provider_, status, e.data, [this](const ErrorReply& r, Failure& f) {
                wire::openai_classify(wire_, r, f);
            });
        }
        if (chunk.is_discarded()) return bad_event(provider_, "malformed server-sent event JSON", e.data, secret_);
        if (!chunk.is_object()) return bad_event(provider_, "a stream chunk is not a JSON object", e.data, secret_);
        if (const json* err = wire::member(chunk, "error"); err != nullptr && !err->is_null()) {
            return error_event(provider_, openai_error_status(chunk), e.data,
                               [this](const ErrorReply& r, Failure& f) { wire::openai_classify(wire_, r, f); });
        }
        if (model_.empty()) model_ = wire::string_at(chunk, "model");
        if (const json* usage = wire::member(chunk, "usage"); usage != nullptr && usage->is_object()) {
            usage_ = wire::openai_usage(usage);
            StreamDelta d;
            d.kind = StreamDelta::Kind::usage;
            d.usage = usage_;
            out.push_back(std::move(d));
        }
        const json* choices = wire::member(chunk, "choices");
        if (choices == nullptr || !choices->is_array()) return std::nullopt;
        for (const json& choice : *choices) {
            const json* index = wire::member(choice, "index");
            if (index != nullptr && !(index->is_number_integer() && index->get<std::int64_t>() == 0)) continue;
            if (auto f = on_choice(choice, out)) return f;
        }
        return std::nullopt;
    }

    // The fast path (detail/stream/scan.hpp): a chunk of the common shape, choice 0 with a
    // delta whose content is a string or null and a finish_reason that is null or (with no
    // refusal so far) any string but content_filter, a usage that is null or an object of
    // plain counts, and nothing else that matters (no error, refusal or tool calls), read
    // without a DOM. True when it was read and its deltas appended (`failed` set as
    // on_finish says); false (nothing changed) sends it through the DOM path, which gives
    // the same deltas for what this reads and decides about the rest.
    //
    // A chunk whose only effect is its piece of text (no finish, no usage) is kept in the
    // memo, so the next chunk of the same shape is read by comparing bytes.
    bool scan_chunk(std::string_view data, std::vector<StreamDelta>& out, std::optional<Failure>& failed) {
        JsonScan j(data);
        std::string text;
        Span text_at;
        std::string finish;
        bool finishes = false;
        std::string model;
        bool seen_choices = false, seen_model = false, seen_usage = false, seen_error = false;
        std::optional<Usage> usage;
        std::string_view key;
        if (!j.object()) return false;
        while (j.member(key)) {
            if (key == "choices") {
                if (seen_choices || !j.array()) return false;
                seen_choices = true;
                bool one = false;
                while (j.element()) {
                    if (one || !scan_choice(j, text, text_at, finish, finishes)) return false;
                    one = true;
                }
            } else if (key == "model") {
                if (seen_model) return false;
                seen_model = true;
                if (j.at_string() ? !j.string(model) : !j.skip()) return false;
            } else if (key == "usage") {
                if (seen_usage) return false;
                seen_usage = true;
                if (!j.null() && !scan_usage(j, usage)) return false;
            } else if (key == "error") {
                if (!j.null_once(seen_error)) return false;
            } else if (!j.skip()) {
                return false;
            }
        }
        if (!j.end()) return false;
        // Policy stops are left to the DOM path: content_filter (its categories are in
        // content_filter_results, which this does not read) and a finish after a refusal.
        if (finishes && (refused_ || finish == "content_filter")) return false;
        if (model_.empty()) model_ = std::move(model);
        if (usage) {  // before the choice's deltas, as on_event() gives them
            usage_ = *usage;
            StreamDelta d;
            d.kind = StreamDelta::Kind::usage;
            d.usage = usage_;
            out.push_back(std::move(d));
        }
        add_text(text, out);
        if (finishes) failed = on_finish(std::move(finish), nullptr, out);
        if (text_at.close != 0 && !finishes && !usage) memo_.keep("message", data, text_at.open, text_at.close);
        return true;
    }

    // The usage object of the chunk after the finish, as wire::openai_usage() reads it from a
    // DOM: prompt_tokens and completion_tokens (0 when absent), other members skipped. Counts
    // that are not plain non-negative integers are left to the DOM path.
    static bool scan_usage(JsonScan& j, std::optional<Usage>& usage) {
        std::int64_t counts[2] = {};
        bool seen[2] = {};
        std::string_view key;
        if (!j.object()) return false;
        while (j.member(key)) {
            const int k = key == "prompt_tokens" ? 0 : key == "completion_tokens" ? 1 : -1;
            if (k < 0) {
                if (!j.skip()) return false;
            } else {
                if (seen[k] || !j.natural(counts[k])) return false;
                seen[k] = true;
            }
        }
        if (!j.ok()) return false;
        usage = Usage{counts[0], counts[1]};
        return true;
    }

    // Where a string token lies in the event's data: [open, close), quotes included; close 0: none.
    struct Span {
        std::size_t open = 0, close = 0;
    };

    // A text delta for the piece (none for ""); the text is kept when the stream keeps it.
    void add_text(std::string& text, std::vector<StreamDelta>& out) {
        if (text.empty()) return;
        if (keep_text_) text_ += text;
        StreamDelta d;
        d.text = std::move(text);
        out.push_back(std::move(d));
        text.clear();
    }

    // One choice for scan_chunk: index 0 (or none), a delta of content (string or null), a
    // finish_reason that is null or a string (`finishes` then, its text in `finish`); other
    // members skipped. `text_at`: where the content string lies.
    static bool scan_choice(JsonScan& j, std::string& text, Span& text_at, std::string& finish, bool& finishes) {
        bool seen_index = false, seen_delta = false, seen_finish = false;
        std::string_view key;
        if (!j.object()) return false;
        while (j.member(key)) {
            if (key == "index") {
                std::int64_t n = 0;
                if (seen_index || !j.natural(n) || n != 0) return false;
                seen_index = true;
            } else if (key == "delta") {
                if (seen_delta || !j.object()) return false;
                seen_delta = true;
                bool seen_content = false, seen_refusal = false, seen_calls = false;
                while (j.member(key)) {
                    if (key == "content") {
                        if (seen_content) return false;
                        seen_content = true;
                        if (!j.null()) {
                            if (!j.at_string()) return false;
                            text_at.open = j.pos();
                            if (!j.string(text)) return false;
                            text_at.close = j.pos();
                        }
                    } else if (key == "refusal" || key == "tool_calls") {
                        if (!j.null_once(key == "refusal" ? seen_refusal : seen_calls)) return false;
                    } else if (!j.skip()) {
                        return false;
                    }
                }
                if (!j.ok()) return false;
            } else if (key == "finish_reason") {
                if (seen_finish) return false;
                seen_finish = true;
                if (!j.null()) {
                    if (!j.at_string() || !j.string(finish)) return false;
                    finishes = true;
                }
            } else if (!j.skip()) {
                return false;
            }
        }
        return j.ok();
    }

    std::optional<Failure> on_choice(const json& choice, std::vector<StreamDelta>& out) {
        if (const json* delta = wire::member(choice, "delta"); delta != nullptr && delta->is_object()) {
            std::string text = wire::content_text(wire::member(*delta, "content"));
            add_text(text, out);
            if (const json* refusal = wire::member(*delta, "refusal"); refusal != nullptr && refusal->is_string()) {
                refusal_ += refusal->get_ref<const std::string&>();
                refused_ = !refusal_.empty();
            }
            if (const json* list = wire::member(*delta, "tool_calls"); list != nullptr && list->is_array())
                for (const json& fragment : *list) on_fragment(fragment, out);
        }
        const json* finish = wire::member(choice, "finish_reason");
        if (finish == nullptr || !finish->is_string()) return std::nullopt;
        return on_finish(finish->get<std::string>(), wire::member(choice, "content_filter_results"), out);
    }

    // Choice 0's finish_reason (the first one counts): the policy signals, then the finish delta.
    std::optional<Failure> on_finish(std::string reason, const json* filter_results, std::vector<StreamDelta>& out) {
        if (finished_) return std::nullopt;
        finish_ = std::move(reason);
        finished_ = true;
        // Policy signals: a refusal (its whole text is here by now) and the content filter.
        std::optional<json> refusal;
        if (refused_) refusal.emplace(refusal_);
        if (auto blocked = wire::openai_policy(wire_, refusal ? &*refusal : nullptr, finish_, filter_results))
            return blocked;
        StreamDelta d;
        d.kind = StreamDelta::Kind::finish;
        d.finish = wire::openai_finish(finish_, !calls_.empty());
        out.push_back(std::move(d));
        return std::nullopt;
    }

    void on_fragment(const json& fragment, std::vector<StreamDelta>& out) {
        const json* fn = wire::member(fragment, "function");
        const std::string id = wire::string_at(fragment, "id");
        const json* index = wire::member(fragment, "index");
        Call* call = nullptr;
        if (index != nullptr && index->is_number_integer()) {
            const std::int64_t key = index->get<std::int64_t>();
            const auto known = by_key_.find(key);
            call = known != by_key_.end() ? &calls_[known->second] : &add(key);
        } else {  // no index (some compatible servers): a fragment with an id starts a call
            if (!id.empty() || calls_.empty()) call = &add(-static_cast<std::int64_t>(calls_.size()) - 1);
            else call = &calls_.back();
        }
        StreamDelta d;
        d.kind = StreamDelta::Kind::tool_call;
        d.index = static_cast<std::size_t>(call - calls_.data());
        const bool first = call->call.id.empty();
        if (first) {
            call->call.id = id;
            if (call->call.id.empty()) {  // some compatible servers give none
                call->call.id = wire::mint_call_id(seed_.text(), d.index, wire::string_at(fn, "name"), json::object());
                call->call.minted_id = true;
            }
            d.id = call->call.id;
        }
        if (std::string name = wire::string_at(fn, "name"); !name.empty() && !call->named) {
            call->call.name = std::move(name);
            call->named = true;
            d.name = call->call.name;
        }
        if (const json* args = wire::member(fn, "arguments"); args != nullptr && args->is_string()) {
            d.text = args->get<std::string>();
            call->arguments += d.text;
        }
        out.push_back(std::move(d));
    }

    Call& add(std::int64_t key) {
        Call c;
        c.key = key;
        by_key_.emplace(key, calls_.size());
        calls_.push_back(std::move(c));
        return calls_.back();
    }

    wire::OpenAIWire wire_{};
    bool structured_ = false;
    std::string text_{};
    std::string refusal_{};
    bool refused_ = false;
    std::vector<Call> calls_{};
    std::map<std::int64_t, std::size_t> by_key_{};  // the provider's index -> calls_
    std::string finish_{};
    bool finished_ = false;
    bool done_ = false;
    Usage usage_{};
    std::string model_{};
    bool scan_ = true;  // the fast path for text chunks
    ShapeMemo memo_{};  // the last text chunk the fast path read whole
    std::string memo_text_{};
};

}  // namespace detail::stream
FAILOVER_END_NAMESPACE
