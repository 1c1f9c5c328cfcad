// SPDX-License-Identifier: MIT
// Streaming, as the caller sees it. A StreamDelta is one piece of a streamed
// answer, the same for every provider (new text, a fragment of a tool call,
// the usage so far, the finish reason); StreamLimits bound what one stream may
// hold in memory. A stream delivers StreamEvents on the caller's thread as they
// arrive: which route is streaming, the deltas, and (only when the caller
// allowed it) a restart telling it to discard what it received because the
// next route takes over. The final ChatResponse (or Failure) is returned at the
// end exactly as for a whole answer. The rules: before the first delta reaches
// the caller a stream is an ordinary attempt (retry, fail over, policy stop);
// after it, a failure ends the request as a mid-stream Failure carrying the
// partial text, never a clean end and never a silent restart elsewhere. The
// per-provider decoders that turn a response body into deltas live in
// detail/stream/; an adapter hands one out per attempt (StreamingAdapter in
// adapter.hpp).
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "failover/config.hpp"
#include "failover/failure.hpp"
#include "failover/response.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// One piece of a streamed answer, the same for every provider.
struct StreamDelta {
    /// What this piece carries.
    enum class Kind {
        text,       ///< `text` is new answer text (for structured output, a piece of the JSON text)
        tool_call,  ///< `text` is a fragment of the JSON arguments of call `index`
        usage,      ///< `usage` holds the totals reported so far
        finish,     ///< `finish` is why the model stopped; no content follows
    };
    Kind kind = Kind::text;
    std::string text{};        ///< text: the new text; tool_call: a fragment of the call's JSON arguments
    std::size_t index = 0;     ///< tool_call: which call of this answer (0-based, in order of first appearance)
    std::string id{};          ///< tool_call: the call's id, on its first fragment (minted when the provider gives none)
    std::string name{};        ///< tool_call: the tool's name, on its first fragment
    Usage usage{};             ///< usage: the totals reported so far
    FinishReason finish = FinishReason::stop;  ///< finish
};

/// Stable lower-case name of a delta kind ("text", "tool_call", "usage", "finish").
constexpr const char* to_string(StreamDelta::Kind k) noexcept {
    switch (k) {
        case StreamDelta::Kind::text: return "text";
        case StreamDelta::Kind::tool_call: return "tool_call";
        case StreamDelta::Kind::usage: return "usage";
        case StreamDelta::Kind::finish: return "finish";
    }
    return "text";
}

/// How much one stream may hold. Exceeding either is a response_too_large Failure, never
/// unbounded growth.
struct StreamLimits {
    /// Largest single server-sent event (its field lines together), in bytes.
    std::size_t max_event_bytes = std::size_t{1} << 20;
    /// Largest whole stream body, in bytes (the transport's response limit by default).
    std::size_t max_total_bytes = FAILOVER_MAX_RESPONSE_BYTES;
    /// Keep the answer's text to assemble the final response. False: text deltas are
    /// handed out and forgotten, and end() returns the answer without its text (the
    /// router's choice for StreamOptions::keep_text = false).
    bool keep_text = true;
};

/// One streamed attempt's decoder, whatever the provider: what the built-in adapters'
/// stream_decoder() hands out (their concrete decoders stay out of your translation
/// units). feed(bytes, deltas) appends the deltas the bytes complete and returns a
/// Failure when the stream says the attempt failed; end() assembles the whole answer.
class StreamDecoderBox {
public:
    template <class D>
    explicit StreamDecoderBox(D decoder) : p_(std::make_unique<Model<D>>(std::move(decoder))) {}

    std::optional<Failure> feed(std::string_view bytes, std::vector<StreamDelta>& out) { return p_->feed(bytes, out); }
    Result<ChatResponse> end() { return p_->end(); }

private:
    struct Concept {
        virtual ~Concept() = default;
        virtual std::optional<Failure> feed(std::string_view bytes, std::vector<StreamDelta>& out) = 0;
        virtual Result<ChatResponse> end() = 0;
    };
    template <class D>
    struct Model final : Concept {
        explicit Model(D d) : decoder(std::move(d)) {}
        std::optional<Failure> feed(std::string_view bytes, std::vector<StreamDelta>& out) override {
            return decoder.feed(bytes, out);
        }
        Result<ChatResponse> end() override { return decoder.end(); }
        D decoder;
    };
    std::unique_ptr<Concept> p_;
};

/// What a stream's callback receives.
struct StreamEvent {
    enum class Kind {
        route,    ///< `route` starts delivering (before its first delta)
        delta,    ///< `delta` holds a text, tool_call, usage or finish piece
        restart,  ///< discard what you received: `route` failed mid-stream (`reason`) and the next route restarts
    };
    Kind kind = Kind::delta;
    std::string_view route{};
    const StreamDelta* delta = nullptr;  ///< Kind::delta only; valid during the callback
    Reason reason = Reason::internal;    ///< Kind::restart only
};

/// Per-call streaming choices.
struct StreamOptions {
    /// What the caller sees before the answer has passed the gates.
    enum class Hold {
        gated,  ///< structured-output answers and tool calls are held until they pass the gates (a repair or a
                ///< failover stays invisible); plain text streams as it arrives
        none,   ///< everything streams as it arrives; a gate failure after that is a mid-stream failure
        all,    ///< nothing reaches the caller until the whole answer passed the gates
    };
    Hold hold = Hold::gated;
    /// After a failure mid-stream, restart on the next route, announced by a restart event,
    /// instead of ending the request with the partial text.
    bool restart = false;
    /// Keep a copy of the streamed text. False: the caller has the text from the deltas and
    /// the router holds none of it, so memory stays flat however long the answer: the
    /// returned ChatResponse has an empty `text` (tool calls, usage and the rest are
    /// there), a mid-stream Failure an empty `partial_text`, and quality gates see no
    /// text. A request with a schema keeps its text regardless: the schema gate needs it.
    /// Flat only for text that streams as it arrives: text held back (Hold::all, or text
    /// after a held tool call) waits in memory until it is released, and a route that
    /// answers whole returns its text. An Anthropic refusal that gives no explanation is
    /// reported without the model's words.
    bool keep_text = true;
};

FAILOVER_END_NAMESPACE
