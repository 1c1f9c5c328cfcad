// SPDX-License-Identifier: MIT
// What a streamed answer is made of, the same for every provider: a StreamDelta
// is one piece (new text, a fragment of a tool call, the usage so far, the
// finish reason), and StreamLimits bound what one stream may hold in memory.
// The per-provider decoders that turn a response body into deltas (and, at the
// end, into the ChatResponse decode() would have given) live in
// detail/stream/; an adapter hands one out per attempt (StreamingAdapter in
// adapter.hpp).
#pragma once

#include <cstddef>
#include <string>

#include "failover/config.hpp"
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
};

FAILOVER_END_NAMESPACE
