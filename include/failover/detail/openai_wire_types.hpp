// SPDX-License-Identifier: MIT
// The types of the Chat Completions wire format (detail/openai_wire.hpp holds
// its functions): what the OpenAI and OpenAI-compatible adapters keep, so their
// public headers need nothing heavier.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "failover/transport.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// When Chat Completions structured output is sent with `strict: true`.
enum class StrictOutput {
    when_possible,  ///< strict when the schema is strict-ready (made so where that only narrows it), else strict: false
    required,       ///< strict always: a schema that cannot be sent strict is refused before any call
    never,          ///< always strict: false (the answer is still validated against the schema)
};

namespace detail::wire {

/// Everything that differs between Chat Completions endpoints.
struct OpenAIWire {
    std::string provider;               ///< gen_ai.system value, also the prefix of our own messages
    std::string model;                  ///< model (or Azure deployment) reported by model()
    std::string url;                    ///< the full chat/completions endpoint
    std::string secret;                 ///< the key, for redaction only
    Headers headers;                    ///< complete request headers, auth and extras included
    bool send_model = true;             ///< Azure takes the deployment from the URL instead
    bool max_completion_tokens = true;  ///< field name: max_completion_tokens or max_tokens
    std::optional<int> max_tokens;      ///< default output limit when the request sets none
    std::size_t max_stop = 0;           ///< most stop sequences accepted; 0 = no limit known
    StrictOutput strict = StrictOutput::when_possible;
};

}  // namespace detail::wire
FAILOVER_END_NAMESPACE
