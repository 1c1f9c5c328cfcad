// SPDX-License-Identifier: MIT
// A chain built at run time from configuration. chain_from_config() reads a small
// JSON document (one object per route: name, provider "openai" | "anthropic" |
// "gemini" | "ollama" | "static", base_url, model, max_attempts, and a few
// optional knobs) and returns a DynamicRouter of type-erased AnyRoutes. Bad
// configuration fails at start-up with a std::invalid_argument that names the
// field (routes[1].model, routes[2].provider, ...), never later at request time;
// unknown fields are errors too, so a typo is not silently ignored. The example
// shows two bad configs being refused, then sends five requests through a good
// one pointed at the loopback mock while the routes fail one after another, so
// each request is answered one hop further down the chain. Exits non-zero if a
// request is answered by another route than expected or a bad config is accepted.
//   example-05-runtime-chain [--quick]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <iterator>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <failover/failover.hpp>

#include "support/mock_provider.hpp"

using namespace failover;
using failover_mock::Fault;
using nlohmann::json;

namespace {

/// Reads one route object; every error names the field as routes[i].field.
class RouteConfig {
public:
    RouteConfig(const json& j, std::size_t index) : j_(j), where_("routes[" + std::to_string(index) + "]") {
        if (!j_.is_object()) fail("", "must be an object");
        static const std::set<std::string> known = {"name",         "provider",        "model",
                                                    "base_url",     "api_key_env",     "reply",
                                                    "max_attempts", "backoff_base_ms", "backoff_cap_ms",
                                                    "timeout_ms"};
        for (const auto& item : j_.items())
            if (known.count(item.key()) == 0) fail(item.key(), "unknown field");
    }

    std::string string(const char* field, bool required) const {
        const auto it = j_.find(field);
        if (it == j_.end()) {
            const bool routing_field = std::strcmp(field, "name") == 0 || std::strcmp(field, "provider") == 0;
            if (required) fail(field, "missing" + (routing_field ? std::string() : for_provider()));
            return {};
        }
        if (!it->is_string() || it->get_ref<const std::string&>().empty()) fail(field, "must be a non-empty string");
        return it->get<std::string>();
    }
    int integer(const char* field, int fallback, int min) const {
        const auto it = j_.find(field);
        if (it == j_.end()) return fallback;
        if (!it->is_number_integer() || it->get<long long>() < min || it->get<long long>() > 1000000)
            fail(field, "must be an integer from " + std::to_string(min) + " to 1000000, got " + it->dump());
        return it->get<int>();
    }
    [[noreturn]] void fail(const std::string& field, const std::string& what) const {
        throw std::invalid_argument("config: " + where_ + (field.empty() ? "" : "." + field) + ": " + what);
    }
    const std::string& where() const noexcept { return where_; }

private:
    std::string for_provider() const {
        const auto p = j_.find("provider");
        return p != j_.end() && p->is_string() ? " (required for provider \"" + p->get<std::string>() + "\")" : "";
    }
    const json& j_;
    std::string where_;
};

/// Builds the chain. Throws std::invalid_argument naming the first bad field.
DynamicRouter chain_from_config(const std::string& text, std::shared_ptr<CurlTransport> http) {
    const json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) throw std::invalid_argument("config: not valid JSON");
    if (!doc.is_object() || !doc.contains("routes") || !doc["routes"].is_array() || doc["routes"].empty())
        throw std::invalid_argument("config: routes: missing, or not a non-empty array");

    std::vector<AnyRoute> chain;
    for (std::size_t i = 0; i < doc["routes"].size(); ++i) {
        const RouteConfig c(doc["routes"][i], i);
        const std::string name = c.string("name", true);
        const std::string provider = c.string("provider", true);
        RouteOptions o;
        const auto ms = [](std::chrono::milliseconds d) { return static_cast<int>(d.count()); };
        o.max_attempts = c.integer("max_attempts", o.max_attempts, 1);
        o.backoff.base = std::chrono::milliseconds{c.integer("backoff_base_ms", ms(o.backoff.base), 0)};
        o.backoff.cap = std::chrono::milliseconds{c.integer("backoff_cap_ms", ms(o.backoff.cap), 0)};
        o.attempt_timeout = std::chrono::milliseconds{c.integer("timeout_ms", ms(o.attempt_timeout), 1)};
        const std::string key_env = c.string("api_key_env", false);
        try {  // env(), the adapters and Route check their own input; say which route it belongs to
            const Secret key = key_env.empty() ? Secret{} : env(key_env.c_str());
            if (provider == "openai") {
                chain.emplace_back(Route{name,
                                         OpenAI{{.model = c.string("model", true),
                                                 .api_key = key,
                                                 .base_url = c.string("base_url", false)}},
                                         http, o});
            } else if (provider == "anthropic") {
                chain.emplace_back(Route{name,
                                         Anthropic{{.model = c.string("model", true),
                                                    .api_key = key,
                                                    .base_url = c.string("base_url", false)}},
                                         http, o});
            } else if (provider == "gemini") {
                chain.emplace_back(Route{name,
                                         Gemini{{.model = c.string("model", true),
                                                 .api_key = key,
                                                 .base_url = c.string("base_url", false)}},
                                         http, o});
            } else if (provider == "ollama") {  // Ollama's OpenAI-compatible endpoint, e.g. http://127.0.0.1:11434/v1
                auto local = OpenAICompatible::ollama(c.string("model", true), c.string("base_url", true));
                chain.emplace_back(Route{name, std::move(local), http, o});
            } else if (provider == "static") {
                chain.emplace_back(Route{name, StaticReply{c.string("reply", true)}, o});
            } else {
                c.fail("provider", "unknown provider \"" + provider +
                                       "\" (expected openai, anthropic, gemini, ollama or static)");
            }
        } catch (const std::invalid_argument& e) {
            const std::string what = e.what();
            if (what.rfind("config: ", 0) == 0) throw;  // already names the field
            throw std::invalid_argument("config: " + c.where() + " (\"" + name + "\"): " + what);
        }
    }
    return DynamicRouter{std::move(chain)};
}

/// Replaces every "@MOCK@" with the mock's base URL.
std::string with_mock(std::string text, const std::string& base) {
    for (auto at = text.find("@MOCK@"); at != std::string::npos; at = text.find("@MOCK@", at + base.size()))
        text.replace(at, 6, base);
    return text;
}

const char* kConfig = R"({
  "routes": [
    {"name": "primary",   "provider": "openai",    "model": "gpt-4o-mini",       "base_url": "@MOCK@/primary/v1",
     "api_key_env": "MOCK_API_KEY", "max_attempts": 2, "backoff_base_ms": 10, "backoff_cap_ms": 40},
    {"name": "secondary", "provider": "anthropic", "model": "claude-sonnet-4-5", "base_url": "@MOCK@/secondary",
     "api_key_env": "MOCK_API_KEY", "max_attempts": 1},
    {"name": "tertiary",  "provider": "gemini",    "model": "gemini-2.5-flash",  "base_url": "@MOCK@/tertiary",
     "api_key_env": "MOCK_API_KEY", "max_attempts": 1},
    {"name": "local",     "provider": "ollama",    "model": "llama3.1",          "base_url": "@MOCK@/local/v1",
     "max_attempts": 1},
    {"name": "canned",    "provider": "static",    "reply": "We are busy right now; please try again in a minute."}
  ]
})";

// Mistakes a config can have; each must be refused at start-up, naming the field.
const char* kBadConfigs[][2] = {
    {R"({"routes": [{"name": "a", "provider": "openai", "model": "gpt-4o",
                     "api_key_env": "sk-proj-0123456789abcdef0123456789abcdef"}]})",
     "looks like an API key"},
    {R"({"routes": [{"name": "a", "provider": "openai", "model": "gpt-4o", "api_key_env": "FAILOVER_UNSET_VARIABLE"}]})",
     "FAILOVER_UNSET_VARIABLE is not set"},
    {R"({"routes": [{"name": "a", "provider": "openai", "model": "gpt-4o", "api_key_env": "MOCK_API_KEY"},
                    {"name": "b", "provider": "mistral", "model": "mistral-large"}]})",
     "routes[1].provider"},
    {R"({"routes": [{"name": "a", "provider": "anthropic", "base_url": "http://127.0.0.1:1"}]})", "routes[0].model"},
};

int run() {
    auto http = std::make_shared<CurlTransport>();
    ::setenv("MOCK_API_KEY", "mock-key", 0);  // the routes read their key from here; the mock takes any key
    bool refused_well = true;
    std::printf("Bad configuration is refused at start-up:\n");
    for (const auto& bad : kBadConfigs) {
        try {
            chain_from_config(bad[0], http);
            std::printf("  accepted a bad config (expected an error naming %s)\n", bad[1]);
            refused_well = false;
        } catch (const std::invalid_argument& e) {
            std::printf("  std::invalid_argument: %s\n", e.what());
            refused_well = refused_well && std::string(e.what()).find(bad[1]) != std::string::npos;
        }
    }

    failover_mock::MockProvider mock;
    DynamicRouter router = chain_from_config(with_mock(kConfig, mock.base_url()), http);
    std::printf("\nA chain of %zu routes built from JSON, pointed at the mock at %s\n", router.size(),
                mock.base_url().c_str());

    // Each step breaks one more route, so the answer comes from one hop further down.
    struct Step {
        const char* what;
        const char* expect;
    };
    const Step steps[] = {{"all healthy", "primary"},
                          {"primary answers 503", "secondary"},
                          {"secondary overloaded (529) too", "tertiary"},
                          {"tertiary out of quota too", "local"},
                          {"local model not pulled (404) too", "canned"}};
    bool routed_well = true;
    for (std::size_t i = 0; i < std::size(steps); ++i) {
        if (i == 1) mock.route("primary").otherwise(Fault::status(503));
        if (i == 2) mock.route("secondary").otherwise(Fault::status(529));
        if (i == 3) mock.route("tertiary").otherwise(Fault::quota_exhausted());
        if (i == 4) mock.route("local").otherwise(Fault::status(404));
        auto r = router.route_with_fallback(ChatRequest{.messages = {user("Is the service up?")}});
        std::printf("  %-34s -> ", steps[i].what);
        if (!r) {
            std::printf("failed: %s\n", r.error().message.c_str());
            routed_well = false;
            continue;
        }
        std::string trail;
        for (const auto& a : r->attempts)
            trail += (trail.empty() ? "" : ", ") + a.route + (a.ok ? " ok" : " " + std::string(to_string(a.reason)));
        std::printf("%-9s [%s]\n", r->route.c_str(), trail.c_str());
        routed_well = routed_well && r->route == steps[i].expect;
    }
    return refused_well && routed_well ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--quick") != 0) {  // everything here is quick; accepted for CTest
            std::fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
            return 2;
        }
    }
    try {
        return run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "example: %s\n", e.what());
        return 1;
    }
}
