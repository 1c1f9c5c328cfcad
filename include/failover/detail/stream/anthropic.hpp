// SPDX-License-Identifier: MIT
// The Anthropic Messages stream decoder: `event: <type>` + `data: {...}` frames.
// message_start gives the model and the input usage; each content block opens
// with content_block_start (text, tool_use {id, name}, thinking,
// redacted_thinking), grows with content_block_delta (text_delta,
// input_json_delta, thinking_delta, signature_delta; citations_delta and
// unknown deltas are ignored) and closes with content_block_stop;
// message_delta carries stop_reason and the cumulative usage; message_stop is
// the terminator (anything after it is ignored). ping and unknown events are
// ignored. Text is a text delta; a tool_use block is a tool_call delta with id
// and name when it opens and one per input_json_delta piece. The tool a
// structured-output request forces (named request.schema_name) is the answer,
// not a call: its input_json_delta pieces are TEXT deltas, and end() puts the
// parsed object in ChatResponse::json, as decode() does. Thinking blocks are
// not deltas; end() keeps them (text and signature) for the next turn.
//
// Failures from feed(): `event: error` (its error.type mapped to the status
// Anthropic gives it, e.g. overloaded_error 529, then classified like an error
// body), data that is not JSON, a delta for a block that was never started,
// stop_reason refusal (policy, with stop_details' category) and
// model_context_window_exceeded (context_too_long) when message_delta arrives.
// end() without message_stop, or with no stop_reason, is malformed_response.
//
// The events of a plain answer (message_start, the text block's content_block_start,
// text_delta, content_block_stop, a message_delta without stop_details, message_stop)
// are read by the fast path of detail/stream/scan.hpp when they have their usual
// shape, a text_delta of the same shape as the one before by comparing bytes;
// everything else, and anything unusual in those, goes through the DOM.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "failover/detail/adapter_util.hpp"
#include "failover/detail/anthropic_wire.hpp"
#include "failover/detail/stream/common.hpp"
#include "failover/detail/stream/scan.hpp"
#include "failover/failure.hpp"
#include "failover/request.hpp"
#include "failover/response.hpp"
#include "failover/stream.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE
namespace detail::stream {

/// Decodes one streamed Messages attempt (see the file comment).
class AnthropicStream : public Decoder {
public:
    /// For `request` sent to `model` with this key (kept only to redact it from messages).
    AnthropicStream(std::string model, std::string secret, const ChatRequest& request, StreamLimits limits = {})
        : Decoder("anthropic", std::move(secret), limits),
          model_(std::move(model)),
          structured_(request.schema != nullptr),
          schema_name_(request.schema_name) {}

    /// Feeds the next bytes of the body (any split); appends each delta decoded to `out`.
    std::optional<Failure> feed(std::string_view bytes, std::vector<StreamDelta>& out) {
        return run(bytes, [&](const SseEventView& e) { return on_event(e, out); });
    }

    /// The body ended cleanly: the answer as decode() assembles it, or why not.
    Result<ChatResponse> end() {
        return finish([this]() -> Result<ChatResponse> { return assemble(); });
    }

    /// Off: every event goes through the DOM (the fuzzer compares both paths).
    void scan(bool on) noexcept { scan_ = on; }

private:
    Result<ChatResponse> assemble() {
        if (!stopped_) {
            const char* why = sse_.mid_event() ? "the body ended in the middle of an event"
                              : !started_      ? "no message_start and no message_stop"
                                               : "no message_stop";
            return fail(ended_early(provider_, why));
        }
        if (content_.stop.empty()) return fail(ended_early(provider_, "message_stop came without a stop_reason"));
        wire::AnthropicContent c = content_;
        for (const auto& [index, b] : blocks_) {
            switch (b.kind) {
                case Block::Kind::tool: {
                    ToolCall call = b.call;
                    Result<json> input = input_of(b);
                    if (!input) return fail(input.error());
                    call.arguments = std::move(*input);
                    c.calls.push_back(std::move(call));
                    break;
                }
                case Block::Kind::answer: {
                    Result<json> input = input_of(b);
                    if (!input) return fail(input.error());
                    c.answer = std::move(*input);
                    break;
                }
                case Block::Kind::thinking:
                case Block::Kind::redacted:
                    c.thinking.push_back(wire::anthropic_thinking(b.kind == Block::Kind::redacted, b.text, b.signature, model_));
                    break;
                case Block::Kind::text:
                case Block::Kind::other: break;
            }
        }
        Result<ChatResponse> r = wire::anthropic_answer(std::move(c), structured_, schema_name_, model_, secret_);
        if (!r) return fail(r.error());
        return r;
    }

    struct Block {
        enum class Kind { text, tool, answer, thinking, redacted, other };
        Kind kind = Kind::other;
        std::size_t call_index = 0;  // tool: which call of the answer
        ToolCall call{};             // tool: id and name
        std::string text{};          // tool/answer: the joined partial_json; thinking: the text
        std::string signature{};     // thinking: signature; redacted: data
    };

    // A tool input: the joined partial_json parsed ({} when empty). Text that does not parse
    // is a broken stream, unless the output limit cut it off: then a tool call keeps it as a
    // JSON string (the tool-call gate reports it) and the answer is reported truncated.
    Result<json> input_of(const Block& b) const {
        if (b.text.find_first_not_of(" \t\r\n") == std::string::npos) return json::object();
        json parsed = parse(b.text);
        if (!parsed.is_discarded()) return parsed;
        if (content_.stop == "max_tokens") return json(b.text);
        return wire::malformed(provider_, "the input of tool_use block '" + wire::clean_message(b.call.name, {}, 64) +
                                              "' is not JSON: " + wire::clean_message(b.text, secret_, 80));
    }

    static std::optional<std::int64_t> index_of(const json& data) {
        const json* i = wire::member(data, "index");
        if (i == nullptr || !i->is_number_integer()) return std::nullopt;
        return i->get<std::int64_t>();
    }

    std::optional<Failure> on_event(const SseEventView& e, std::vector<StreamDelta>& out) {
        if (stopped_) return std::nullopt;  // nothing counts after message_stop
        // The previous text_delta again with another piece of text (detail/stream/scan.hpp):
        // read by comparing bytes. Any other event makes the memo forget it.
        if (scan_ && memo_.read(e.type, e.data, memo_text_)) {
            ++scanned_;
            ++remembered_;
            add_text(std::move(memo_text_), out);
            memo_text_.clear();
            return std::nullopt;
        }
        if (e.type != "message" && e.type != "error" && !known(e.type)) return std::nullopt;  // ping, unknown events
        if (scan_) {
            std::optional<Failure> failed;
            if ((e.type == "content_block_delta" && scan_text_delta(e.data, out)) ||
                (e.type == "message_start" && scan_message_start(e.data, out)) ||
                (e.type == "content_block_start" && scan_text_block_start(e.data, out)) ||
                (e.type == "message_delta" && scan_message_delta(e.data, out, failed)) ||
                ((e.type == "content_block_stop" || e.type == "message_stop") && scan_any_object(e.data))) {
                ++scanned_;
                if (e.type == "message_stop") stopped_ = true;
                return failed;
            }
        }
        const json data = parse(e.data);
        if (e.type == "error") {
            const std::string type = data.is_discarded() ? std::string() : wire::read_error(data).type;
            return error_event(provider_, wire::anthropic_error_status(type), e.data,
                               [this](const ErrorReply& r, Failure& f) { wire::anthropic_classify(secret_, r, f); });
        }
        if (data.is_discarded()) return bad_event(provider_, "malformed server-sent event JSON", e.data, secret_);
        if (!data.is_object()) return bad_event(provider_, "an event's data is not a JSON object", e.data, secret_);
        const std::string type = e.type == "message" ? wire::string_at(data, "type") : std::string(e.type);
        if (type == "error") {  // an error frame without its event line
            return error_event(provider_, wire::anthropic_error_status(wire::read_error(data).type), e.data,
                               [this](const ErrorReply& r, Failure& f) { wire::anthropic_classify(secret_, r, f); });
        }
        if (type == "message_start") return message_start(data, out);
        if (type == "content_block_start") return block_start(data, out);
        if (type == "content_block_delta") return block_delta(data, out);
        if (type == "content_block_stop") return std::nullopt;  // inputs are parsed at the end, in block order
        if (type == "message_delta") return message_delta(data, out);
        if (type == "message_stop") stopped_ = true;
        return std::nullopt;  // ping, unknown events
    }

    // The fast path (detail/stream/scan.hpp): a text_delta for a text block already started,
    // read without a DOM. True when it was read and its text delta appended; false (nothing
    // changed) sends the event through the DOM path, which decides about everything else.
    // A delta read so is kept in the memo: its text is its only effect.
    bool scan_text_delta(std::string_view data, std::vector<StreamDelta>& out) {
        std::int64_t index = 0;
        std::string text;
        bool has_text = false;
        std::size_t text_at = 0, text_end = 0;
        if (!scan_indexed_text(data, "delta", "text_delta", index, text, has_text, &text_at, &text_end) || !has_text)
            return false;
        const auto it = blocks_.find(index);
        if (it == blocks_.end() || it->second.kind != Block::Kind::text) return false;
        add_text(std::move(text), out);
        memo_.keep("content_block_delta", data, text_at, text_end);
        return true;
    }

    // The shape both text events share: {"index": n, <member>: {"type": <type>, "text": "..."}},
    // other members skipped. True when the event has it (`has_text`: the text member came,
    // its string token at [*text_at, *text_end) when those are given).
    static bool scan_indexed_text(std::string_view data, std::string_view member, std::string_view type,
                                  std::int64_t& index, std::string& text, bool& has_text,
                                  std::size_t* text_at = nullptr, std::size_t* text_end = nullptr) {
        JsonScan j(data);
        bool seen_index = false, seen_member = false, seen_type = false;
        std::string_view key;
        if (!j.object()) return false;
        while (j.member(key)) {
            if (key == "index") {
                if (seen_index || !j.natural(index)) return false;
                seen_index = true;
            } else if (key == member) {
                if (seen_member || !j.object()) return false;
                seen_member = true;
                while (j.member(key)) {
                    if (key == "type") {
                        std::string t;
                        if (seen_type || !j.at_string() || !j.string(t) || t != type) return false;
                        seen_type = true;
                    } else if (key == "text") {
                        if (has_text || !j.at_string()) return false;
                        if (text_at) *text_at = j.pos();
                        if (!j.string(text)) return false;
                        if (text_end) *text_end = j.pos();
                        has_text = true;
                    } else if (!j.skip()) {
                        return false;
                    }
                }
                if (!j.ok()) return false;
            } else if (!j.skip()) {
                return false;
            }
        }
        return j.end() && seen_index && seen_type;
    }

    // The fast path for the events before the first text: a message_start whose model is a
    // string and whose usage counts are plain non-negative integers, read as message_start()
    // reads them. False (nothing changed) leaves the event to the DOM path.
    bool scan_message_start(std::string_view data, std::vector<StreamDelta>& out) {
        JsonScan j(data);
        std::string model;
        std::int64_t counts[4] = {};  // input, cache creation, cache read, output
        bool seen_count[4] = {};
        bool seen_message = false, seen_model = false, seen_usage = false;
        std::string_view key;
        if (!j.object()) return false;
        while (j.member(key)) {
            if (key != "message") {
                if (!j.skip()) return false;
                continue;
            }
            if (seen_message || !j.object()) return false;
            seen_message = true;
            while (j.member(key)) {
                if (key == "model") {
                    if (seen_model || !j.at_string() || !j.string(model)) return false;
                    seen_model = true;
                } else if (key == "usage") {
                    if (seen_usage || !scan_counts(j, counts, seen_count)) return false;
                    seen_usage = true;
                } else if (!j.skip()) {
                    return false;
                }
            }
            if (!j.ok()) return false;
        }
        if (!j.end() || !seen_message) return false;
        started_ = true;
        content_.model = std::move(model);
        content_.usage.input_tokens = counts[0] + counts[1] + counts[2];
        content_.usage.output_tokens = counts[3];
        emit_usage(out);
        return true;
    }

    // A content_block_start of a text block (the one every answer opens), read as block_start()
    // reads it; anything else (another block type, an index seen before) is left to the DOM.
    bool scan_text_block_start(std::string_view data, std::vector<StreamDelta>& out) {
        std::int64_t index = 0;
        std::string text;
        bool has_text = false;  // none: block_start() reads "" too
        if (!scan_indexed_text(data, "content_block", "text", index, text, has_text) || blocks_.count(index) != 0)
            return false;
        blocks_[index].kind = Block::Kind::text;
        add_text(std::move(text), out);
        return true;
    }

    static bool known(std::string_view type) noexcept {
        return type == "message_start" || type == "content_block_start" || type == "content_block_delta" ||
               type == "content_block_stop" || type == "message_delta" || type == "message_stop";
    }

    std::optional<Failure> message_start(const json& data, std::vector<StreamDelta>& out) {
        started_ = true;
        const json* message = wire::member(data, "message");
        content_.model = wire::string_at(message, "model");
        const json* usage = wire::member(message, "usage");
        content_.usage.input_tokens = wire::anthropic_input_tokens(usage);
        content_.usage.output_tokens = wire::count_at(usage, "output_tokens");
        emit_usage(out);
        return std::nullopt;
    }

    std::optional<Failure> block_start(const json& data, std::vector<StreamDelta>& out) {
        const std::optional<std::int64_t> index = index_of(data);
        const json* block = wire::member(data, "content_block");
        if (!index || block == nullptr || !block->is_object())
            return bad_event(provider_, "content_block_start without an index or a content_block", {}, secret_);
        if (blocks_.count(*index) != 0) return bad_event(provider_, "a content block was started twice", {}, secret_);
        Block& b = blocks_[*index];
        const std::string type = wire::string_at(*block, "type");
        if (type == "text") {
            b.kind = Block::Kind::text;
            add_text(wire::string_at(*block, "text"), out);
        } else if (type == "tool_use") {
            std::string name = wire::string_at(*block, "name");
            if (name.empty()) return wire::malformed(provider_, "a tool_use block has no name");
            const json* input = wire::member(*block, "input");
            // The input normally arrives in input_json_delta pieces; a start that already
            // carries a non-empty object counts as its first piece.
            std::string initial = input != nullptr && input->is_object() && !input->empty() ? input->dump() : std::string();
            if (structured_ && name == schema_name_) {
                b.kind = Block::Kind::answer;
                b.call.name = std::move(name);
                b.text = initial;
                emit_text(std::move(initial), out);  // the answer's JSON text, kept apart from prose
                return std::nullopt;
            }
            b.kind = Block::Kind::tool;
            b.call_index = calls_++;
            b.call.name = std::move(name);
            b.call.id = wire::string_at(*block, "id");
            if (b.call.id.empty()) {
                b.call.id = wire::mint_call_id(seed_.text(), b.call_index, b.call.name, json::object());
                b.call.minted_id = true;
            }
            b.text = initial;
            StreamDelta d;
            d.kind = StreamDelta::Kind::tool_call;
            d.index = b.call_index;
            d.id = b.call.id;
            d.name = b.call.name;
            d.text = std::move(initial);
            out.push_back(std::move(d));
        } else if (type == "thinking") {
            b.kind = Block::Kind::thinking;
            b.text = wire::string_at(*block, "thinking");
            b.signature = wire::string_at(*block, "signature");
        } else if (type == "redacted_thinking") {
            b.kind = Block::Kind::redacted;
            b.signature = wire::string_at(*block, "data");
        }
        return std::nullopt;  // server-tool blocks carry nothing the unified response holds
    }

    std::optional<Failure> block_delta(const json& data, std::vector<StreamDelta>& out) {
        const std::optional<std::int64_t> index = index_of(data);
        const auto it = index ? blocks_.find(*index) : blocks_.end();
        if (it == blocks_.end()) return bad_event(provider_, "content_block_delta for a block never started", {}, secret_);
        Block& b = it->second;
        const json* delta = wire::member(data, "delta");
        const std::string type = wire::string_at(delta, "type");
        if (type == "text_delta" && b.kind == Block::Kind::text) {
            add_text(wire::string_at(delta, "text"), out);
        } else if (type == "input_json_delta" && (b.kind == Block::Kind::tool || b.kind == Block::Kind::answer)) {
            std::string piece = wire::string_at(delta, "partial_json");
            if (piece.empty()) return std::nullopt;
            b.text += piece;
            if (b.kind == Block::Kind::answer) {
                emit_text(std::move(piece), out);
            } else {
                StreamDelta d;
                d.kind = StreamDelta::Kind::tool_call;
                d.index = b.call_index;
                d.text = std::move(piece);
                out.push_back(std::move(d));
            }
        } else if (type == "thinking_delta" && b.kind == Block::Kind::thinking) {
            b.text += wire::string_at(delta, "thinking");
        } else if (type == "signature_delta" && b.kind == Block::Kind::thinking) {
            b.signature += wire::string_at(delta, "signature");
        }
        return std::nullopt;  // citations_delta and anything new
    }

    std::optional<Failure> message_delta(const json& data, std::vector<StreamDelta>& out) {
        const json* delta = wire::member(data, "delta");
        if (const json* usage = wire::member(data, "usage"); usage != nullptr && usage->is_object()) {
            // output_tokens is cumulative; newer servers also repeat the input counts.
            if (wire::member(*usage, "output_tokens") != nullptr)
                content_.usage.output_tokens = wire::count_at(usage, "output_tokens");
            if (wire::member(*usage, "input_tokens") != nullptr)
                content_.usage.input_tokens = wire::anthropic_input_tokens(usage);
            emit_usage(out);
        }
        std::string stop = wire::string_at(delta, "stop_reason");
        if (stop.empty() || !content_.stop.empty()) return std::nullopt;
        if (const json* details = wire::member(delta, "stop_details"); details != nullptr) content_.stop_details = *details;
        else if (const json* top = wire::member(data, "stop_details"); top != nullptr) content_.stop_details = *top;
        return on_stop(std::move(stop), out);
    }

    // The fast path for the message_delta that ends a plain answer: usage counts that are plain
    // non-negative integers, a stop_reason that is a string or null, no stop_details (a refusal's
    // explanation and category are the DOM path's), other members skipped; read as
    // message_delta() reads it. False (nothing changed) leaves the event to the DOM path.
    bool scan_message_delta(std::string_view data, std::vector<StreamDelta>& out, std::optional<Failure>& failed) {
        JsonScan j(data);
        std::string stop;
        std::int64_t counts[4] = {};  // input, cache creation, cache read, output
        bool seen_count[4] = {};
        bool seen_delta = false, seen_usage = false, seen_stop = false;
        std::string_view key;
        if (!j.object()) return false;
        while (j.member(key)) {
            if (key == "delta") {
                if (seen_delta || !j.object()) return false;
                seen_delta = true;
                while (j.member(key)) {
                    if (key == "stop_reason") {
                        if (seen_stop || (!j.null() && (!j.at_string() || !j.string(stop)))) return false;
                        seen_stop = true;
                    } else if (key == "stop_details" || !j.skip()) {
                        return false;
                    }
                }
                if (!j.ok()) return false;
            } else if (key == "usage") {
                if (seen_usage || !scan_counts(j, counts, seen_count)) return false;
                seen_usage = true;
            } else if (key == "stop_details" || !j.skip()) {
                return false;
            }
        }
        if (!j.end()) return false;
        if (seen_usage) {
            if (seen_count[3]) content_.usage.output_tokens = counts[3];
            if (seen_count[0]) content_.usage.input_tokens = counts[0] + counts[1] + counts[2];
            emit_usage(out);
        }
        if (!stop.empty() && content_.stop.empty()) failed = on_stop(std::move(stop), out);
        return true;
    }

    // A usage object's counts as the DOM path reads them: input, cache creation, cache read and
    // output tokens (`seen` says which came), each a plain non-negative integer given once; other
    // members skipped. False leaves the event to the DOM path.
    static bool scan_counts(JsonScan& j, std::int64_t (&counts)[4], bool (&seen)[4]) {
        std::string_view key;
        if (!j.object()) return false;
        while (j.member(key)) {
            const int k = key == "input_tokens"                  ? 0
                          : key == "cache_creation_input_tokens" ? 1
                          : key == "cache_read_input_tokens"     ? 2
                          : key == "output_tokens"               ? 3
                                                                 : -1;
            if (k < 0) {
                if (!j.skip()) return false;
            } else {
                if (seen[k] || !j.natural(counts[k])) return false;
                seen[k] = true;
            }
        }
        return j.ok();
    }

    // An event whose data must be a JSON object and says nothing more (content_block_stop,
    // message_stop): checked as the DOM path checks it.
    static bool scan_any_object(std::string_view data) {
        JsonScan j(data);
        return j.skip_object() && j.end();
    }

    // The first stop_reason (content_.stop_details already set): a failure, or the finish delta.
    std::optional<Failure> on_stop(std::string stop, std::vector<StreamDelta>& out) {
        content_.stop = std::move(stop);
        const std::string& reason = content_.stop;
        if (auto failed = wire::anthropic_stop_failure(reason, content_.stop_details, content_.text, secret_)) return failed;
        StreamDelta d;
        d.kind = StreamDelta::Kind::finish;
        d.finish = wire::anthropic_finish(reason);
        if (structured_ && reason != "max_tokens" &&
            std::any_of(blocks_.begin(), blocks_.end(), [](const auto& kv) { return kv.second.kind == Block::Kind::answer; }))
            d.finish = FinishReason::stop;  // the forced tool's input is the answer, as in decode()
        out.push_back(std::move(d));
        return std::nullopt;
    }

    void add_text(std::string text, std::vector<StreamDelta>& out) {
        if (keep_text_) content_.text += text;
        emit_text(std::move(text), out);
    }

    static void emit_text(std::string text, std::vector<StreamDelta>& out) {
        if (text.empty()) return;
        StreamDelta d;
        d.text = std::move(text);
        out.push_back(std::move(d));
    }

    void emit_usage(std::vector<StreamDelta>& out) {
        StreamDelta d;
        d.kind = StreamDelta::Kind::usage;
        d.usage = content_.usage;
        out.push_back(std::move(d));
    }

    std::string model_;
    bool structured_ = false;
    std::string schema_name_;
    bool started_ = false;
    bool stopped_ = false;
    std::size_t calls_ = 0;
    std::map<std::int64_t, Block> blocks_{};
    wire::AnthropicContent content_{};  // text, stop, stop_details, usage, model as they arrive
    bool scan_ = true;                  // the fast path (message_start, a text block's start, text deltas)
    ShapeMemo memo_{};                  // the last text_delta the fast path read whole
    std::string memo_text_{};
};

}  // namespace detail::stream
FAILOVER_END_NAMESPACE
