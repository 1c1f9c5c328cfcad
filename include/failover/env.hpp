// SPDX-License-Identifier: MIT
// API keys and where they come from. A Secret holds a key together with its
// source, so a route built without its key can fail at construction saying
// where the key was expected ("environment variable OPENAI_API_KEY is not set")
// without ever printing a key. env() reads a variable into a Secret; it refuses
// an argument that is not a variable name, and says so without echoing it when
// the argument looks like a key typed where the name was expected. A Secret has
// no stream operator and no implicit conversion back to a string: a key does
// not end up in a log line by accident.
#pragma once

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// An API key and where it came from.
/// @code
/// OpenAI{{.model = "gpt-4o", .api_key = failover::env("OPENAI_API_KEY")}}   // from the environment
/// OpenAI{{.model = "gpt-4o", .api_key = key_from_my_vault()}}               // a std::string
/// @endcode
class Secret {
public:
    Secret() = default;
    /// A key given in code (from a vault, a config service, ...).
    Secret(std::string value) : value_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
    /// A key given in code.
    Secret(const char* value) : value_(value ? value : "") {}  // NOLINT(google-explicit-constructor)
    /// A key and a description of its source (e.g. "environment variable X").
    Secret(std::string value, std::string source) : value_(std::move(value)), source_(std::move(source)) {}

    /// The key itself, for the header that carries it.
    const std::string& value() const noexcept { return value_; }
    /// True when there is no key.
    bool empty() const noexcept { return value_.empty(); }
    /// Where the key was read from ("environment variable OPENAI_API_KEY"), "" when given in code.
    const std::string& source() const noexcept { return source_; }

private:
    std::string value_{};
    std::string source_{};
};

namespace detail {
/// A POSIX-style environment variable name: [A-Za-z_][A-Za-z0-9_]*.
constexpr bool is_env_name(std::string_view s) noexcept {
    if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return false;
    return true;
}
/// Prefixes of provider keys (OpenAI and Anthropic sk-, Google AIza, xAI, Groq, ...).
constexpr bool looks_like_key(std::string_view s) noexcept {
    constexpr std::string_view prefixes[] = {"sk-", "sk_", "AIza", "xai-", "gsk_", "pk-", "rk-", "hf_", "ghp_"};
    for (auto p : prefixes)
        if (s.size() >= 16 && s.substr(0, p.size()) == p) return true;
    return s.size() >= 32 && s.find_first_of("-.") != std::string_view::npos;
}
}  // namespace detail

/// The value of an environment variable, remembering the variable's name ("" when unset).
/// Throws std::invalid_argument when `name` is not a variable name, never echoing it:
/// env("sk-...") is a key typed where its variable's name belongs.
/// @code
/// OpenAI{{.model = "gpt-4o", .api_key = failover::env("OPENAI_API_KEY")}}
/// @endcode
inline Secret env(const char* name) {
    const std::string_view n = name ? std::string_view(name) : std::string_view();
    if (detail::looks_like_key(n))
        throw std::invalid_argument(
            "failover: env(): the argument looks like an API key, not the name of an environment variable; "
            "pass the variable's name (e.g. env(\"OPENAI_API_KEY\")) and keep the key in the environment");
    if (!detail::is_env_name(n))
        throw std::invalid_argument("failover: env(): the argument is not an environment variable name "
                                    "(letters, digits and '_', not starting with a digit)");
    const char* v = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read-only use
    return Secret(v ? std::string(v) : std::string(), "environment variable " + std::string(n));
}

FAILOVER_END_NAMESPACE
