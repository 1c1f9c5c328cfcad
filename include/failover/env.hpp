// SPDX-License-Identifier: MIT
// Reading configuration from the environment. env() never throws and returns
// an empty string for an unset variable, so a route whose key is missing is
// still constructible: it fails with an auth error at request time and the
// chain fails over, instead of the whole program refusing to start.
#pragma once

#include <cstdlib>
#include <string>

#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// The value of an environment variable, or "" when it is unset.
/// @code
/// OpenAI{{.model = "gpt-4o", .api_key = failover::env("OPENAI_API_KEY")}}
/// @endcode
inline std::string env(const char* name) {
    if (name == nullptr) return {};
    const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read-only use
    return v ? std::string(v) : std::string();
}

FAILOVER_END_NAMESPACE
