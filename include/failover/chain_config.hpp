// SPDX-License-Identifier: MIT
// A chain from a config file: load_chain() reads a JSON document (the format
// failover-chain.schema.json, beside this header, describes, draft-07) and returns a LoadedChain,
// a DynamicRouter with everything it needs kept alive (sinks, budgets, reply
// caches) and the settings a caller applies per call (streaming, health checks).
// The document is untrusted input: its size and depth are bounded before it is
// parsed, and every unknown field, wrong type and out-of-range value is refused
// with a ConfigError carrying the field's JSON pointer; text that is not JSON is
// refused with its line and column. All checks happen at load time: a loaded
// chain never fails later because of its file. Keys are named, never written:
// `"api_key_env": "OPENAI_API_KEY"` reads the key from that environment variable
// (through ChainLoadOptions::env, so tests need not touch the process's
// environment); a value that looks like a key is refused without being echoed,
// and a variable that is not set is an error naming the variable. The loader
// agrees with the JSON Schema on every rule the schema can state; a few
// cross-field rules only the loader checks (backoff.cap_ms >= base_ms,
// breaker.open_max_ms >= open_base_ms, successes_to_close <= half_open_probes,
// strictly increasing histogram buckets, unique route names, one weight per
// deployment). Shared state through Redis is not configured here: pass a
// RedisStore in ChainLoadOptions::router.state_store.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "failover/adapters/anthropic.hpp"
#include "failover/adapters/gemini.hpp"
#include "failover/adapters/openai.hpp"
#include "failover/adapters/openai_compatible.hpp"
#include "failover/adapters/static_reply.hpp"
#include "failover/any_route.hpp"
#include "failover/budget.hpp"
#include "failover/detail/chain_config.hpp"
#include "failover/drift.hpp"
#include "failover/env.hpp"
#include "failover/event_loop.hpp"
#include "failover/metrics.hpp"
#include "failover/route.hpp"
#include "failover/route_group.hpp"
#include "failover/router.hpp"
#include "failover/router_options.hpp"
#include "failover/schema.hpp"
#include "failover/sinks/prometheus.hpp"
#include "failover/sinks/statsd.hpp"
#include "failover/stream.hpp"
#include "failover/transport.hpp"
#include "failover/transport/curl.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// What the caller supplies around a config file.
struct ChainLoadOptions {
    /// The transport every HTTP route sends through. Null: the loader makes one CurlTransport
    /// from the file's "transport" section (which is checked either way, applied only then).
    std::shared_ptr<CurlTransport> transport{};
    /// Looks up an environment variable (nullopt: not set). Null: the process's environment.
    std::function<std::optional<std::string>(const std::string& name)> env{};
    /// Called for every HTTP route with its name and configured base_url ("" when the file
    /// gives none); returns the base URL to use ("": the provider's default). Null: as
    /// configured. E.g. point a whole chain at a local mock or gateway.
    std::function<std::string(std::string_view route, std::string_view configured)> base_url{};
    /// The starting RouterOptions: what a file cannot say (clock, sleeper, gates,
    /// token_counter, on_answer, state_store) comes from here; the file's "router" and
    /// "budgets" sections override what they name.
    RouterOptions router{};
    /// Relative paths in the file (a json_lines sink's path) are taken from here. Empty:
    /// the file's folder (load_chain_file), else the working directory.
    std::filesystem::path base_dir{};
    /// Largest config text accepted, in bytes.
    std::size_t max_bytes = std::size_t{1} << 20;
    /// Deepest nesting of objects and arrays accepted.
    std::size_t max_depth = 64;
};

/// A chain loaded from config, and what it keeps alive. Move-only.
struct LoadedChain {
    /// The chain. Never null in a LoadedChain returned by load_chain.
    std::unique_ptr<DynamicRouter> router{};
    /// Tenant ceilings (the "budgets" section); null when the file sets none.
    std::shared_ptr<Budgets> budgets{};
    /// Every sink of the "sinks" section, in file order (already added to the router).
    std::vector<std::shared_ptr<MetricsSink>> sinks{};
    /// The first Prometheus sink, for your /metrics handler (scrape()); null when none.
    std::shared_ptr<PrometheusSink> prometheus{};
    /// The reply caches of "cache" routes; the router stores answers of HTTP routes in them.
    std::vector<std::shared_ptr<ReplyCache>> caches{};
    /// The "health_checks" section, if any: pass to start_health_checks on your EventLoop.
    std::optional<HealthCheckOptions> health_checks{};
    /// The "stream" section: options for stream() / submit_stream() calls.
    StreamOptions stream{};

    DynamicRouter& operator*() const noexcept { return *router; }
    DynamicRouter* operator->() const noexcept { return router.get(); }
    /// Starts the configured health checks on `loop`; false when the file configures none.
    bool start_health_checks(EventLoop& loop) const {
        if (!health_checks) return false;
        router->start_health_checks(loop, *health_checks);
        return true;
    }
};

namespace detail::chain {

/// A json_lines sink that owns its file and flushes each line, so `tail -f` sees it.
class FileLinesSink final : public MetricsSink {
public:
    explicit FileLinesSink(std::unique_ptr<std::ofstream> out) : out_(std::move(out)), lines_(*out_) {}
    void record(const Event& e) override {
        std::lock_guard lock(mu_);
        lines_.record(e);
        out_->flush();
    }

private:
    std::mutex mu_{};
    std::unique_ptr<std::ofstream> out_;
    JsonLinesSink lines_;
};

inline std::optional<std::string> process_env(const std::string& name) {
    const char* v = std::getenv(name.c_str());  // NOLINT(concurrency-mt-unsafe): read-only use at load time
    if (!v) return std::nullopt;
    return std::string(v);
}

/// Milliseconds from a field named *_ms.
inline std::chrono::milliseconds ms(const Node& n, std::int64_t lo, std::int64_t hi) {
    return std::chrono::milliseconds{n.integer(lo, hi)};
}

constexpr std::int64_t kDay = 86'400'000;   // ms
constexpr std::int64_t kHour = 3'600'000;   // ms

inline BreakerOptions breaker_options(const Node& n) {
    n.object({"window_s", "minimum_calls", "failure_rate", "consecutive_failures", "open_base_ms", "open_multiplier",
              "open_max_ms", "open_jitter", "half_open_probes", "successes_to_close", "seed", "min_timeout_counted_ms"});
    BreakerOptions b;
    if (auto f = n.find("window_s")) b.window = std::chrono::seconds{f->integer(1, FAILOVER_BREAKER_MAX_WINDOW_SECONDS)};
    if (auto f = n.find("minimum_calls")) b.minimum_calls = f->int32(1, 1'000'000);
    if (auto f = n.find("failure_rate")) b.failure_rate = f->number(0.0, 1.0, true, false);
    if (auto f = n.find("consecutive_failures")) b.consecutive_failures = f->int32(0, 1'000'000);
    if (auto f = n.find("open_base_ms")) b.open_base = ms(*f, 0, kDay);
    if (auto f = n.find("open_multiplier")) b.open_multiplier = f->number(1.0, 1000.0);
    if (auto f = n.find("open_max_ms")) b.open_max = ms(*f, 0, kDay);
    if (auto f = n.find("open_jitter")) b.open_jitter = f->number(0.0, 1.0, false, true);
    if (auto f = n.find("half_open_probes")) b.half_open_probes = f->int32(1, 1000);
    if (auto f = n.find("successes_to_close")) b.successes_to_close = f->int32(1, 1000);
    if (auto f = n.find("seed")) b.seed = f->uint64();
    if (auto f = n.find("min_timeout_counted_ms")) b.min_timeout_counted = ms(*f, 0, kHour);
    if (b.open_max < b.open_base) n.fail_at("open_max_ms", "must be >= open_base_ms");
    if (b.successes_to_close > b.half_open_probes) n.fail_at("successes_to_close", "must be <= half_open_probes");
    return b;
}

inline RouteOptions route_options(const Node& n) {
    n.object({"max_attempts", "backoff", "max_retry_after_ms", "attempt_timeout_ms", "connect_timeout_ms",
              "min_attempt_time_ms", "deadline_weight", "first_token_timeout_ms", "hedge_after_ms", "hedge_percentile",
              "stream_idle_timeout_ms", "repair_attempts", "breaker", "retry_budget", "rate_limit", "price",
              "expected_output_tokens", "data_classes", "regions", "tiers", "context_window", "safety_level", "schemas"});
    RouteOptions o;
    if (auto f = n.find("max_attempts")) o.max_attempts = f->int32(1, 100);
    if (auto f = n.find("backoff")) {
        f->object({"base_ms", "cap_ms"});
        if (auto g = f->find("base_ms")) o.backoff.base = ms(*g, 0, 600'000);
        if (auto g = f->find("cap_ms")) o.backoff.cap = ms(*g, 0, kHour);
        if (o.backoff.cap < o.backoff.base) f->fail_at(f->has("cap_ms") ? "cap_ms" : "base_ms", "cap_ms must be >= base_ms");
    }
    if (auto f = n.find("max_retry_after_ms")) o.max_retry_after = ms(*f, 0, kHour);
    if (auto f = n.find("attempt_timeout_ms")) o.attempt_timeout = ms(*f, 1, kHour);
    if (auto f = n.find("connect_timeout_ms")) o.connect_timeout = ms(*f, 1, 600'000);
    if (auto f = n.find("min_attempt_time_ms")) o.min_attempt_time = ms(*f, 0, kHour);
    if (auto f = n.find("deadline_weight")) o.deadline_weight = f->number(0.0, 1e6, true, false);
    if (auto f = n.find("first_token_timeout_ms")) o.first_token_timeout = ms(*f, 1, kHour);
    if (auto f = n.find("hedge_after_ms")) o.hedge_after = ms(*f, 1, kHour);
    if (auto f = n.find("hedge_percentile")) {
        o.hedge_percentile = f->number(0.0, 1.0, true, true);
        if (!o.hedge_after) f->fail("needs hedge_after_ms, the delay until 20 answers are seen");
    }
    if (auto f = n.find("stream_idle_timeout_ms")) o.stream_idle_timeout = ms(*f, 1, kHour);
    if (auto f = n.find("repair_attempts")) o.repair_attempts = f->int32(0, 10);
    if (auto f = n.find("breaker")) o.breaker = breaker_options(*f);
    if (auto f = n.find("retry_budget")) {
        f->object({"capacity", "retry_cost", "timeout_retry_cost", "success_refund", "enabled"});
        if (auto g = f->find("capacity")) o.retry_budget.capacity = g->int32(0, 1'000'000);
        if (auto g = f->find("retry_cost")) o.retry_budget.retry_cost = g->int32(0, 1'000'000);
        if (auto g = f->find("timeout_retry_cost")) o.retry_budget.timeout_retry_cost = g->int32(0, 1'000'000);
        if (auto g = f->find("success_refund")) o.retry_budget.success_refund = g->int32(0, 1'000'000);
        if (auto g = f->find("enabled")) o.retry_budget.enabled = g->boolean();
    }
    if (auto f = n.find("rate_limit")) {
        f->object({"requests_per_minute", "tokens_per_minute"});
        if (auto g = f->find("requests_per_minute")) o.rate_limit.requests_per_minute = g->number(0.0, 1e9);
        if (auto g = f->find("tokens_per_minute")) o.rate_limit.tokens_per_minute = g->number(0.0, 1e12);
    }
    if (auto f = n.find("price")) {
        f->object({"input_per_million", "output_per_million"});
        if (auto g = f->find("input_per_million")) o.price.input_per_million = g->number(0.0, 1e6);
        if (auto g = f->find("output_per_million")) o.price.output_per_million = g->number(0.0, 1e6);
    }
    if (auto f = n.find("expected_output_tokens")) o.expected_output_tokens = f->integer(0, 10'000'000);
    if (auto f = n.find("data_classes")) o.data_classes = f->string_list(64, 128);
    if (auto f = n.find("regions")) o.regions = f->string_list(64, 128);
    if (auto f = n.find("tiers")) o.tiers = f->string_list(64, 128);
    if (auto f = n.find("context_window")) o.context_window = f->integer(0, 100'000'000);
    if (auto f = n.find("safety_level")) o.safety_level = f->int32(0, 100);
    if (auto f = n.find("schemas")) {
        for (const Node& s : f->items(0, 32)) {
            if (!s.value().is_object()) s.fail(std::string("must be an object (a JSON Schema), got ") + type_name(s.value()));
            try {
                o.schemas.push_back(Schema::parse(s.value()));
            } catch (const Schema::ParseError& e) {
                throw ConfigError(s.pointer() + e.pointer(), "not a valid JSON Schema: " + e.reason());
            }
        }
    }
    return o;
}

/// Builds the links of a chain whose HTTP routes send through a `T`.
template <class T>
class Builder {
public:
    Builder(const ChainLoadOptions& opts, std::function<std::shared_ptr<T>()> transport)
        : opts_(opts), transport_(std::move(transport)) {}

    std::vector<ChainLink> links(const Node& routes) {
        std::vector<ChainLink> out;
        for (const Node& n : routes.items(1, 256)) {
            if (n.value().is_object() && n.has("group")) out.emplace_back(group(n));
            else out.emplace_back(route(n));
        }
        return out;
    }
    /// Names of the routes that call a provider (their answers may be cached).
    std::set<std::string> http_routes{};
    std::vector<std::shared_ptr<ReplyCache>> caches{};

private:
    RouteGroup group(const Node& n) {
        n.object({"group", "balance", "weights", "deployments"});
        const std::string name = n.at("group").string(1, 128);
        GroupOptions g;
        if (auto f = n.find("balance")) {
            const std::string b = f->choice({"weighted", "least_busy", "latency"});
            g.balance = b == "weighted" ? Balance::weighted : b == "least_busy" ? Balance::least_busy : Balance::latency;
        }
        if (auto f = n.find("weights"))
            for (const Node& w : f->items(0, 64)) g.weights.push_back(w.number(0.0, 1e6, true, false));
        std::vector<AnyRoute> deployments;
        for (const Node& d : n.at("deployments").items(1, 64)) {
            if (d.value().is_object() && d.has("group")) d.fail_at("group", "a group's deployments are routes, not groups");
            deployments.push_back(route(d));
        }
        if (!g.weights.empty() && g.weights.size() != deployments.size())
            n.fail_at("weights", "has " + std::to_string(g.weights.size()) + " entries for " +
                                     std::to_string(deployments.size()) + " deployments (one each, or none)");
        try {
            return RouteGroup(name, std::move(deployments), std::move(g));
        } catch (const std::invalid_argument& e) {
            throw ConfigError(n.pointer(), e.what());
        }
    }

    AnyRoute route(const Node& n) {
        if (!n.value().is_object()) n.fail(std::string("must be an object (a route or a group), got ") + type_name(n.value()));
        const std::string provider = n.at("provider").choice({"openai", "anthropic", "gemini", "openai_compatible",
                                                              "azure_openai", "ollama", "vllm", "llama_cpp",
                                                              "openrouter", "static", "error", "cache"});
        const std::string name = n.at("name").string(1, 128);
        if (!names_.insert(name).second) n.fail_at("name", "route name " + shown(name) + " is used twice (names must be unique)");
        std::optional<Node> on = n.find("options");
        const RouteOptions o = on ? route_options(*on) : RouteOptions{};
        try {
            return build(n, provider, name, o);
        } catch (const ConfigError&) {
            throw;
        } catch (const std::invalid_argument& e) {  // the adapter's or Route's own checks
            throw ConfigError(n.pointer(), e.what());
        }
    }

    AnyRoute build(const Node& n, const std::string& provider, const std::string& name, const RouteOptions& o) {
        if (provider == "static") {
            n.object({"name", "provider", "options", "reply"});
            return Route{name, StaticReply{n.at("reply").string(0, std::size_t{1} << 20)}, o};
        }
        if (provider == "error") {
            n.object({"name", "provider", "options", "reason", "message"});
            const Node r = n.at("reason");
            const std::string reason = r.choice({"connection", "timeout", "conflict", "rate_limited", "quota_exhausted",
                                                 "server_error", "overloaded", "malformed_response", "auth", "not_found",
                                                 "context_too_long", "bad_request", "content_filter", "refusal"});
            Reason why = Reason::server_error;
            for (int i = 0; i <= static_cast<int>(Reason::internal); ++i)
                if (to_string(static_cast<Reason>(i)) == reason) why = static_cast<Reason>(i);
            std::string message = "route under maintenance";
            if (auto f = n.find("message")) message = f->string(0, 1024);
            return Route{name, HardError{Failure::of(why, std::move(message))}, o};
        }
        if (provider == "cache") {
            n.object({"name", "provider", "options", "capacity"});
            std::size_t capacity = 1024;
            if (auto f = n.find("capacity")) capacity = static_cast<std::size_t>(f->integer(1, 1'000'000));
            auto cache = std::make_shared<ReplyCache>(capacity);
            caches.push_back(cache);
            return Route{name, CachedReply{cache}, o};
        }
        http_routes.insert(name);
        if (provider == "openai") {
            n.object({"name", "provider", "options", "model", "api_key_env", "base_url", "max_tokens", "organization",
                      "project", "headers", "headers_env", "strict"});
            OpenAIOptions a;
            a.model = model(n);
            a.api_key = key(n, provider, true);
            a.base_url = base_url(n, name, false);
            a.max_tokens = max_tokens(n);
            if (auto f = n.find("organization")) a.organization = f->string(1, 256);
            if (auto f = n.find("project")) a.project = f->string(1, 256);
            a.extra_headers = headers(n);
            a.strict = strict(n);
            return Route{name, OpenAI{std::move(a)}, transport(), o};
        }
        if (provider == "anthropic") {
            n.object({"name", "provider", "options", "model", "api_key_env", "base_url", "max_tokens",
                      "anthropic_version", "headers", "headers_env"});
            AnthropicOptions a;
            a.model = model(n);
            a.api_key = key(n, provider, true);
            a.base_url = base_url(n, name, false);
            if (auto f = n.find("max_tokens")) a.max_tokens = f->int32(1, 10'000'000);
            if (auto f = n.find("anthropic_version")) a.anthropic_version = f->string(1, 64);
            a.extra_headers = headers(n);
            return Route{name, Anthropic{std::move(a)}, transport(), o};
        }
        if (provider == "gemini") {
            n.object({"name", "provider", "options", "model", "api_key_env", "base_url", "max_tokens", "headers",
                      "headers_env"});
            GeminiOptions a;
            a.model = model(n);
            a.api_key = key(n, provider, true);
            a.base_url = base_url(n, name, false);
            a.max_tokens = max_tokens(n);
            a.extra_headers = headers(n);
            return Route{name, Gemini{std::move(a)}, transport(), o};
        }
        if (provider == "azure_openai") {
            n.object({"name", "provider", "options", "resource", "base_url", "deployment", "api_version", "api_key_env",
                      "max_tokens", "headers", "headers_env", "strict"});
            AzureOpenAIOptions a;
            if (n.has("resource") == n.has("base_url"))
                n.fail_at(n.has("resource") ? "base_url" : "resource", "set exactly one of resource and base_url");
            if (auto f = n.find("resource")) a.resource = f->string(1, 128);
            a.deployment = n.at("deployment").string(1, 256);
            if (auto f = n.find("api_version")) a.api_version = f->string(1, 64);
            a.extra_headers = headers(n);
            bool bearer = false;
            for (const auto& h : a.extra_headers) bearer = bearer || is_authorization(h.first);
            a.api_key = key(n, provider, !bearer);  // an Entra token in headers_env replaces the key
            a.max_tokens = max_tokens(n);
            a.strict = strict(n);
            if (n.has("base_url")) a.base_url = base_url(n, name, true);
            else if (opts_.base_url) a.base_url = opts_.base_url(name, "");
            if (!a.base_url.empty()) a.resource.clear();
            return Route{name, OpenAICompatible::azure(std::move(a)), transport(), o};
        }
        // The OpenAI-compatible servers: a generic one and the presets.
        n.object({"name", "provider", "options", "model", "api_key_env", "base_url", "max_tokens", "headers",
                  "headers_env", "strict", "system"});
        OpenAICompatibleOptions a;
        a.model = model(n);
        a.provider = provider;
        const bool needs_key = provider == "openrouter";
        const bool takes_key = provider != "ollama";
        if (!takes_key && n.has("api_key_env")) n.fail_at("api_key_env", "ollama takes no key (use openai_compatible for a server behind auth)");
        a.api_key = key(n, provider, needs_key);
        std::string fallback;
        if (provider == "ollama") fallback = "http://127.0.0.1:11434/v1";
        if (provider == "llama_cpp") fallback = "http://127.0.0.1:8080/v1";
        if (provider == "openrouter") fallback = "https://openrouter.ai/api/v1";
        const bool url_required = provider == "openai_compatible" || provider == "vllm";
        a.base_url = base_url(n, name, url_required);
        if (a.base_url.empty()) a.base_url = fallback;
        if (n.has("system")) {
            if (provider != "openai_compatible") n.fail_at("system", "only for provider openai_compatible");
            a.provider = n.at("system").string(1, 64);
        }
        a.max_tokens = max_tokens(n);
        a.extra_headers = headers(n);
        a.strict = strict(n);
        return Route{name, OpenAICompatible{std::move(a)}, transport(), o};
    }

    std::shared_ptr<T> transport() {
        if (!http_) http_ = transport_();
        return http_;
    }
    static std::string model(const Node& n) { return n.at("model").string(1, 256); }
    static std::optional<int> max_tokens(const Node& n) {
        if (auto f = n.find("max_tokens")) return f->int32(1, 10'000'000);
        return std::nullopt;
    }
    static StrictOutput strict(const Node& n) {
        const auto f = n.find("strict");
        if (!f) return StrictOutput::when_possible;
        const std::string s = f->choice({"when_possible", "required", "never"});
        return s == "required" ? StrictOutput::required : s == "never" ? StrictOutput::never : StrictOutput::when_possible;
    }
    std::string base_url(const Node& n, const std::string& route_name, bool required) const {
        std::string configured;
        if (auto f = n.find("base_url")) {
            configured = f->string(1, 2048);
            if (configured.rfind("http://", 0) != 0 && configured.rfind("https://", 0) != 0)
                f->fail("must start with http:// or https://, got " + shown(configured));
        } else if (required && !opts_.base_url) {
            n.fail_at("base_url", "missing (required for this provider)");
        }
        return opts_.base_url ? opts_.base_url(route_name, configured) : configured;
    }
    std::string lookup(const Node& where, const std::string& var) const {
        std::optional<std::string> v = opts_.env ? opts_.env(var) : process_env(var);
        if (!v || v->empty()) where.fail("environment variable " + var + " is not set (or is empty)");
        return *v;
    }
    Secret key(const Node& n, const std::string& provider, bool required) const {
        const auto f = n.find("api_key_env");
        if (!f) {
            if (required)
                n.fail_at("api_key_env", "missing (required for provider " + provider +
                                             "): name the environment variable that holds the key");
            return {};
        }
        const std::string var = f->env_name();
        return Secret(lookup(*f, var), "environment variable " + var);
    }
    Headers headers(const Node& n) const {
        Headers out;
        if (auto f = n.find("headers")) {
            for (const auto& [h, v] : f->members(64)) {
                // Not named in the message or the pointer: a whole header line pasted as a name
                // ("Authorization: Bearer ...") would carry its key into the error.
                if (!is_token(h)) f->fail("holds a header name that is not a valid HTTP token (not shown: it may contain a value)");
                if (credential_header(h))
                    v.fail("carries a credential: put it in an environment variable and name it in headers_env");
                std::string value = v.string(0, 8192);
                if (credential_value(value))
                    v.fail("this looks like a credential: put it in an environment variable and name it in headers_env");
                if (value.find_first_of("\r\n") != std::string::npos) v.fail("must not contain CR or LF");
                out.emplace_back(h, std::move(value));
            }
        }
        if (auto f = n.find("headers_env")) {
            for (const auto& [h, v] : f->members(64)) {
                // Not named in the message or the pointer: a whole header line pasted as a name
                // ("Authorization: Bearer ...") would carry its key into the error.
                if (!is_token(h)) f->fail("holds a header name that is not a valid HTTP token (not shown: it may contain a value)");
                std::string value = lookup(v, v.env_name());
                if (value.find_first_of("\r\n") != std::string::npos)
                    v.fail("the environment variable's value must not contain CR or LF");
                out.emplace_back(h, std::move(value));
            }
        }
        return out;
    }

    const ChainLoadOptions& opts_;
    std::function<std::shared_ptr<T>()> transport_;
    std::shared_ptr<T> http_{};
    std::set<std::string> names_{};
};

inline CurlOptions transport_options(const Node& n) {
    n.object({"max_response_bytes", "verify_tls", "ca_bundle", "follow_redirects", "max_redirects", "user_agent",
              "max_pooled_handles", "accept_compressed", "tcp_keepalive_ms", "max_idle_connection_ms"});
    CurlOptions c;
    if (auto f = n.find("max_response_bytes")) c.max_response_bytes = static_cast<std::size_t>(f->integer(1024, std::int64_t{1} << 30));
    if (auto f = n.find("verify_tls")) c.verify_tls = f->boolean();
    if (auto f = n.find("ca_bundle")) c.ca_bundle = f->string(1, 4096);
    if (auto f = n.find("follow_redirects")) c.follow_redirects = f->boolean();
    if (auto f = n.find("max_redirects")) c.max_redirects = static_cast<long>(f->integer(0, 20));
    if (auto f = n.find("user_agent")) c.user_agent = f->string(0, 256);
    if (auto f = n.find("max_pooled_handles")) c.max_pooled_handles = static_cast<std::size_t>(f->integer(1, 4096));
    if (auto f = n.find("accept_compressed")) c.accept_compressed = f->boolean();
    if (auto f = n.find("tcp_keepalive_ms")) c.tcp_keepalive = std::chrono::milliseconds{f->integer(0, kDay)};
    if (auto f = n.find("max_idle_connection_ms")) c.max_idle_connection = std::chrono::milliseconds{f->integer(0, kDay)};
    return c;
}

inline void router_options(const Node& n, RouterOptions& r) {
    n.object({"timeout_ms", "max_recovery_waits", "seed", "policy_fallback", "max_in_flight", "admission_wait_ms"});
    if (auto f = n.find("timeout_ms")) r.timeout = ms(*f, 1, kDay);
    if (auto f = n.find("max_recovery_waits")) r.max_recovery_waits = f->int32(0, 100);
    if (auto f = n.find("seed")) r.seed = f->uint64();
    if (auto f = n.find("policy_fallback")) r.policy_fallback = f->boolean();
    if (auto f = n.find("max_in_flight")) r.max_in_flight = static_cast<std::size_t>(f->integer(0, 1'000'000));
    if (auto f = n.find("admission_wait_ms")) r.admission_wait = ms(*f, 0, kDay);
}

inline std::shared_ptr<Budgets> budgets(const Node& n) {
    n.object({"window_s", "default_usd", "tenants"});
    std::chrono::seconds window = std::chrono::hours{24};
    if (auto f = n.find("window_s")) window = std::chrono::seconds{f->integer(1, 31'622'400)};
    auto b = std::make_shared<Budgets>(window);
    if (auto f = n.find("default_usd")) b->default_limit(f->number(0.0, 1e9));
    if (auto f = n.find("tenants"))
        for (const auto& [tenant, usd] : f->members(10'000)) {
            if (tenant.empty() || tenant.size() > 256) f->fail_at(tenant, "a tenant name must be 1 to 256 bytes");
            b->limit(tenant, usd.number(0.0, 1e9));
        }
    return b;
}

inline HealthCheckOptions health_options(const Node& n) {
    n.object({"interval_ms", "timeout_ms", "prompt"});
    HealthCheckOptions h;
    if (auto f = n.find("interval_ms")) h.interval = ms(*f, 100, kDay);
    if (auto f = n.find("timeout_ms")) h.timeout = ms(*f, 1, 600'000);
    if (auto f = n.find("prompt")) h.prompt = f->string(1, 4096);
    return h;
}

inline StreamOptions stream_options(const Node& n) {
    n.object({"hold", "restart", "keep_text"});
    StreamOptions s;
    if (auto f = n.find("hold")) {
        const std::string h = f->choice({"gated", "none", "all"});
        s.hold = h == "none" ? StreamOptions::Hold::none : h == "all" ? StreamOptions::Hold::all : StreamOptions::Hold::gated;
    }
    if (auto f = n.find("restart")) s.restart = f->boolean();
    if (auto f = n.find("keep_text")) s.keep_text = f->boolean();
    return s;
}

/// Builds the sinks of the "sinks" section; drift monitors report to the others.
inline void sinks(const Node& list, const ChainLoadOptions& opts, LoadedChain& out) {
    const std::vector<Node> items = list.items(0, 16);
    std::vector<std::shared_ptr<MetricsSink>> plain;
    std::vector<std::pair<std::size_t, DriftOptions>> drifts;
    std::vector<std::shared_ptr<MetricsSink>> built(items.size());
    for (std::size_t i = 0; i < items.size(); ++i) {
        const Node& n = items[i];
        if (!n.value().is_object()) n.fail(std::string("must be an object, got ") + type_name(n.value()));
        const std::string type = n.at("type").choice({"json_lines", "prometheus", "statsd", "drift"});
        try {
            if (type == "json_lines") {
                n.object({"type", "path", "stream"});
                if (n.has("path") == n.has("stream")) n.fail_at(n.has("path") ? "stream" : "path", "set exactly one of path and stream");
                if (auto f = n.find("stream")) {
                    built[i] = std::make_shared<JsonLinesSink>(f->choice({"stderr", "stdout"}) == "stderr" ? std::cerr : std::cout);
                } else {
                    const Node p = n.at("path");
                    std::filesystem::path path = p.string(1, 4096);
                    if (path.is_relative() && !opts.base_dir.empty()) path = opts.base_dir / path;
                    auto file = std::make_unique<std::ofstream>(path, std::ios::out | std::ios::app);
                    if (!*file) p.fail("cannot open " + path.string() + " for appending");
                    built[i] = std::make_shared<FileLinesSink>(std::move(file));
                }
            } else if (type == "prometheus") {
                n.object({"type", "duration_buckets", "max_tenants", "max_routes", "max_label_length", "routes"});
                PrometheusOptions p;
                if (auto f = n.find("duration_buckets")) {
                    p.duration_buckets.clear();
                    for (const Node& b : f->items(1, 64)) {
                        const double v = b.number(0.0, 1e6, true, false);
                        if (!p.duration_buckets.empty() && v <= p.duration_buckets.back()) b.fail("buckets must increase strictly");
                        p.duration_buckets.push_back(v);
                    }
                }
                if (auto f = n.find("max_tenants")) p.max_tenants = static_cast<std::size_t>(f->integer(1, 100'000));
                if (auto f = n.find("max_routes")) p.max_routes = static_cast<std::size_t>(f->integer(1, 10'000));
                if (auto f = n.find("max_label_length")) p.max_label_length = static_cast<std::size_t>(f->integer(16, 1024));
                if (auto f = n.find("routes")) p.routes = f->string_list(1024, 128);
                auto prom = std::make_shared<PrometheusSink>(std::move(p));
                if (!out.prometheus) out.prometheus = prom;
                built[i] = std::move(prom);
            } else if (type == "statsd") {
                n.object({"type", "host", "port", "prefix", "tags", "max_tenants", "max_routes", "max_label_length",
                          "max_datagram"});
                StatsdOptions s;
                if (auto f = n.find("host")) s.host = f->string(1, 253);
                if (auto f = n.find("port")) s.port = static_cast<std::uint16_t>(f->integer(1, 65535));
                if (auto f = n.find("prefix")) {
                    s.prefix = f->string(0, 128);
                    if (s.prefix.find_first_of(":|@#, \n") != std::string::npos)
                        f->fail("must not contain ':', '|', '@', '#', ',', space or newline");
                }
                if (auto f = n.find("tags")) s.tags = f->boolean();
                if (auto f = n.find("max_tenants")) s.max_tenants = static_cast<std::size_t>(f->integer(1, 100'000));
                if (auto f = n.find("max_routes")) s.max_routes = static_cast<std::size_t>(f->integer(1, 10'000));
                if (auto f = n.find("max_label_length")) s.max_label_length = static_cast<std::size_t>(f->integer(16, 1024));
                if (auto f = n.find("max_datagram")) s.max_datagram = static_cast<std::size_t>(f->integer(512, 65'507));
                built[i] = std::make_shared<StatsdSink>(std::move(s));
            } else {
                n.object({"type", "threshold", "hysteresis", "window_s", "buckets", "min_requests", "per_tenant",
                          "max_tenants"});
                DriftOptions d;
                if (auto f = n.find("threshold")) d.threshold = f->number(0.0, 1.0, true, true);
                if (auto f = n.find("hysteresis")) d.hysteresis = f->number(0.0, 1.0, false, true);
                if (auto f = n.find("window_s")) d.window = std::chrono::seconds{f->integer(1, 604'800)};
                if (auto f = n.find("buckets")) d.buckets = f->int32(1, 3600);
                if (auto f = n.find("min_requests")) d.min_requests = static_cast<std::uint64_t>(f->integer(1, 1'000'000'000));
                if (auto f = n.find("per_tenant")) d.per_tenant = f->boolean();
                if (auto f = n.find("max_tenants")) d.max_tenants = static_cast<std::size_t>(f->integer(1, 100'000));
                drifts.emplace_back(i, std::move(d));
                continue;
            }
            plain.push_back(built[i]);
        } catch (const ConfigError&) {
            throw;
        } catch (const std::exception& e) {  // a sink's own checks (a host that does not resolve, a socket)
            throw ConfigError(n.pointer(), e.what());
        }
    }
    for (auto& [i, d] : drifts) {
        if (plain.empty()) items[i].fail("a drift sink reports to the other sinks: add one (e.g. prometheus)");
        std::shared_ptr<MetricsSink> downstream = plain.size() == 1 ? plain.front() : std::make_shared<MultiSink>(plain);
        built[i] = std::make_shared<DriftMonitor>(std::move(downstream), std::move(d));
    }
    out.sinks = std::move(built);
}

/// Parses config text within the size and depth limits; a syntax error gives its line and column.
inline nlohmann::json parse_text(std::string_view text, const ChainLoadOptions& opts) {
    if (text.size() > opts.max_bytes)
        throw ConfigError("", "the config is " + std::to_string(text.size()) + " bytes, more than the " +
                                  std::to_string(opts.max_bytes) + " accepted");
    if (!detail::json_depth_within(text, opts.max_depth))
        throw ConfigError("", "the config nests objects and arrays deeper than " + std::to_string(opts.max_depth));
    try {
        return nlohmann::json::parse(text.data(), text.data() + text.size());
    } catch (const nlohmann::json::parse_error& e) {
        const auto [line, column] = line_column(text, e.byte > 0 ? e.byte - 1 : 0);
        // nlohmann's text says what it expected; drop its id, position and "last read"
        // echo (which may hold a key typed without quotes).
        std::string what = e.what();
        if (auto at = what.find("] "); at != std::string::npos) what.erase(0, at + 2);
        if (auto at = what.find(": "); at != std::string::npos && what.rfind("parse error", 0) == 0) what.erase(0, at + 2);
        if (auto at = what.find("; last read"); at != std::string::npos) what.erase(at);
        throw ConfigError("", "not valid JSON: " + what, line, column);
    } catch (const nlohmann::json::exception& e) {  // e.g. a number too large for a double
        std::string what = e.what();
        if (auto at = what.find("] "); at != std::string::npos) what.erase(0, at + 2);
        throw ConfigError("", "not valid JSON: " + what);
    }
}

template <class T>
LoadedChain load(const nlohmann::json& doc, const ChainLoadOptions& opts, std::function<std::shared_ptr<T>()> make) {
    if (doc_depth(doc, opts.max_depth) > opts.max_depth)
        throw ConfigError("", "the config nests objects and arrays deeper than " + std::to_string(opts.max_depth));
    const Node root(doc, "");
    root.object({"$schema", "version", "router", "transport", "budgets", "sinks", "health_checks", "stream", "routes"});
    if (auto f = root.find("$schema")) f->string(1, 2048);
    if (auto f = root.find("version")) f->integer(1, 1);
    std::optional<CurlOptions> curl;
    if (auto f = root.find("transport")) curl = transport_options(*f);
    LoadedChain out;
    RouterOptions ro = opts.router;
    if (auto f = root.find("router")) router_options(*f, ro);
    if (auto f = root.find("budgets")) ro.budgets = out.budgets = budgets(*f);
    if (auto f = root.find("health_checks")) out.health_checks = health_options(*f);
    if (auto f = root.find("stream")) out.stream = stream_options(*f);
    if (!make)
        make = [curl] {
            if constexpr (std::is_same_v<T, CurlTransport>) return std::make_shared<CurlTransport>(curl.value_or(CurlOptions{}));
            else return std::shared_ptr<T>{};
        };
    Builder<T> builder(opts, std::move(make));
    std::vector<ChainLink> links = builder.links(root.at("routes"));
    if (auto f = root.find("sinks")) sinks(*f, opts, out);
    out.caches = builder.caches;
    if (!out.caches.empty()) {  // remember answers of the routes that call providers, never canned ones
        auto prior = ro.on_answer;
        ro.on_answer = [caches = out.caches, http = builder.http_routes, prior](const ChatRequest& req, const ChatResponse& res) {
            if (http.count(res.route) != 0)
                for (const auto& c : caches) c->store(req, res);
            if (prior) prior(req, res);
        };
    }
    try {
        out.router = std::make_unique<DynamicRouter>(std::move(links), std::move(ro));
    } catch (const std::invalid_argument& e) {
        throw ConfigError(root.has("router") ? "/router" : "", e.what());
    }
    for (const auto& s : out.sinks) out.router->add_sink(s);
    return out;
}

}  // namespace detail::chain

/// Loads a chain from a parsed config document; HTTP routes share one CurlTransport
/// (ChainLoadOptions::transport, or one made from the "transport" section). Throws
/// ConfigError naming the first bad field.
/// @code
/// failover::LoadedChain chain = failover::load_chain_file("chain.json");
/// auto answer = chain->route_with_fallback({.messages = {failover::user("Hi")}});
/// @endcode
inline LoadedChain load_chain(const nlohmann::json& doc, const ChainLoadOptions& options = {}) {
    std::function<std::shared_ptr<CurlTransport>()> make;
    if (options.transport) make = [t = options.transport] { return t; };
    return detail::chain::load<CurlTransport>(doc, options, std::move(make));
}

/// Loads a chain whose HTTP routes send through `transport`, any Transport type (the
/// "transport" section is checked but not applied). DynamicRouter::submit needs a CurlTransport.
template <class T>
    requires Transport<T>
LoadedChain load_chain(const nlohmann::json& doc, std::shared_ptr<T> transport, const ChainLoadOptions& options = {}) {
    if (!transport) throw std::invalid_argument("failover: load_chain: transport is null");
    return detail::chain::load<T>(doc, options, [t = std::move(transport)] { return t; });
}

/// Loads a chain from config text (JSON). Throws ConfigError; for text that is not JSON
/// the error carries its line and column.
inline LoadedChain load_chain_text(std::string_view text, const ChainLoadOptions& options = {}) {
    return load_chain(detail::chain::parse_text(text, options), options);
}

/// Loads a chain from a config file; relative paths in it are taken from its folder
/// unless ChainLoadOptions::base_dir says otherwise. Throws ConfigError.
inline LoadedChain load_chain_file(const std::filesystem::path& path, ChainLoadOptions options = {}) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) throw ConfigError("", "cannot read " + path.string() + ": " + ec.message());
    if (size > options.max_bytes)
        throw ConfigError("", path.string() + " is " + std::to_string(size) + " bytes, more than the " +
                                  std::to_string(options.max_bytes) + " accepted");
    std::ifstream in(path, std::ios::binary);
    std::string text(static_cast<std::size_t>(size), '\0');
    if (!in || !in.read(text.data(), static_cast<std::streamsize>(text.size())))
        throw ConfigError("", "cannot read " + path.string());
    if (options.base_dir.empty()) options.base_dir = path.parent_path();
    try {
        return load_chain_text(text, options);
    } catch (const ConfigError& e) {
        throw ConfigError(e.pointer(), path.string() + ": " + e.reason(), e.line(), e.column());
    }
}

FAILOVER_END_NAMESPACE
