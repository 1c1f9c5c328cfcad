// SPDX-License-Identifier: MIT
// The chain config loader (chain_config.hpp) and the JSON Schema shipped with it
// (include/failover/failover-chain.schema.json). Every example config under
// examples/configs/ is valid against the schema and loads; a table of bad
// configs is refused by the loader with the JSON pointer of the offending field
// AND by the schema (so the two agree); the few cross-field rules only the loader
// can state are listed apart. Keys: a literal key is refused without being echoed,
// a missing variable is named. Untrusted text: syntax errors give line and column,
// size and depth are bounded. Then loaded chains route over loopback against the
// mock providers, and loaded knobs take effect (breaker threshold, price, budget,
// sinks, reply cache).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include <failover/chain_config.hpp>

#include "support/catch.hpp"
#include "support/paths.hpp"
#include "support/mock_provider.hpp"

using namespace failover;
using failover_mock::Fault;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

fs::path project_dir() { return fs::path(failover_test::test_data_dir()).parent_path().parent_path(); }

std::string read_file(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

const Schema& chain_schema() {
    static const std::shared_ptr<const Schema> s =
        Schema::parse(read_file(project_dir() / "include" / "failover" / "failover-chain.schema.json"));
    return *s;
}

/// A scratch folder, removed at the end.
struct TempDir {
    fs::path path;
    TempDir() {
        path = fs::temp_directory_path() / ("failover-config-" + std::to_string(::getpid()) + "-" +
                                            std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

/// Options whose environment holds a fake key for every name (none of the real one is read).
ChainLoadOptions fake_env(std::map<std::string, std::string> unset_or_values = {}) {
    ChainLoadOptions o;
    o.env = [vars = std::move(unset_or_values)](const std::string& name) -> std::optional<std::string> {
        if (auto it = vars.find(name); it != vars.end()) {
            if (it->second.empty()) return std::nullopt;
            return it->second;
        }
        return "test-key-for-" + name;
    };
    return o;
}

/// Options pointing every HTTP route at the mock route of the same name.
ChainLoadOptions at_mock(const failover_mock::MockProvider& mock) {
    ChainLoadOptions o = fake_env();
    o.base_url = [&mock](std::string_view route, std::string_view) { return mock.url(route); };
    return o;
}

/// The ConfigError load_chain_text throws for `text` (fails the test when none is thrown).
std::optional<ConfigError> refusal(const std::string& text, const ChainLoadOptions& o = fake_env()) {
    try {
        (void)load_chain_text(text, o);
    } catch (const ConfigError& e) {
        return e;
    }
    return std::nullopt;
}

std::string route(const std::string& fields) {
    return R"({"routes": [{"name": "a", "provider": "openai", "model": "gpt-4o", "api_key_env": "OPENAI_API_KEY")" +
           (fields.empty() ? std::string() : ", " + fields) + "}]}";
}
std::string with_options(const std::string& options) { return route(R"("options": )" + options); }
std::string top(const std::string& section) {
    return R"({)" + section + R"(, "routes": [{"name": "c", "provider": "static", "reply": "busy"}]})";
}

}  // namespace

TEST_CASE("chain config: every example config is valid against the shipped schema and loads", "[config]") {
    const fs::path dir = project_dir() / "examples" / "configs";
    std::size_t seen = 0;
    for (const auto& entry : fs::directory_iterator(dir)) {
        if (entry.path().extension() != ".json") continue;
        ++seen;
        INFO(entry.path().string());
        const json doc = json::parse(read_file(entry.path()));
        const auto errors = chain_schema().validate(doc);
        for (const auto& e : errors) INFO(e.pointer + ": " + e.message);
        CHECK(errors.empty());
        TempDir tmp;
        ChainLoadOptions o = fake_env();
        o.base_dir = tmp.path;  // a json_lines sink's relative path lands here
        LoadedChain chain = load_chain_file(entry.path(), o);
        REQUIRE(chain.router);
        CHECK(chain.router->size() >= 1);
    }
    CHECK(seen >= 2);
}

TEST_CASE("chain config: the full example sets every section and provider", "[config]") {
    TempDir tmp;
    ChainLoadOptions o = fake_env();
    o.base_dir = tmp.path;
    LoadedChain chain = load_chain_file(project_dir() / "examples" / "configs" / "full.json", o);
    std::vector<std::string> names;
    for (std::size_t i = 0; i < chain->size(); ++i) names.push_back(chain->route(i).name());
    CHECK(names == std::vector<std::string>{"cache", "gpt-4o-a", "gpt-4o-azure", "claude", "gemini", "openrouter", "vllm",
                                            "gateway", "llama-cpp", "ollama", "maintenance", "canned"});
    const RouteOptions& a = chain->route(1).options();
    CHECK(a.max_attempts == 2);
    CHECK(a.backoff.base == std::chrono::milliseconds{500});
    CHECK(a.backoff.cap == std::chrono::milliseconds{8000});
    CHECK(a.deadline_weight == 2.0);
    CHECK(a.hedge_after == std::chrono::milliseconds{4000});
    CHECK(a.hedge_percentile == 0.95);
    CHECK(a.breaker.consecutive_failures == 5);
    CHECK(a.breaker.open_max == std::chrono::milliseconds{300000});
    CHECK(a.retry_budget.timeout_retry_cost == 10);
    CHECK(a.rate_limit.tokens_per_minute == 200000);
    CHECK(a.price.output_per_million == 10.0);
    CHECK(a.data_classes == std::vector<std::string>{"public", "internal"});
    CHECK(a.tiers == std::vector<std::string>{"premium", "standard"});
    CHECK(a.context_window == 128000);
    CHECK(a.safety_level == 2);
    REQUIRE(a.schemas.size() == 1);
    CHECK(chain->route(2).options().regions == std::vector<std::string>{"eu"});
    CHECK(chain->options().timeout == std::chrono::milliseconds{60000});
    CHECK(chain->options().seed == 42u);
    CHECK(chain->options().max_in_flight == 512u);
    CHECK(chain->options().admission_wait == std::chrono::milliseconds{2000});
    REQUIRE(chain.budgets);
    CHECK(chain.budgets->ceiling("acme") == 50.0);
    CHECK(chain.budgets->ceiling("someone-else") == 5.0);
    CHECK(chain.sinks.size() == 4);
    CHECK(chain.prometheus);
    CHECK(chain.caches.size() == 1);
    REQUIRE(chain.health_checks);
    CHECK(chain.health_checks->interval == std::chrono::milliseconds{10000});
    CHECK(chain.stream.hold == StreamOptions::Hold::gated);
    CHECK(fs::exists(tmp.path / "failover-events.jsonl"));
}

TEST_CASE("chain config: bad configs are refused by the loader and the schema, naming the field", "[config]") {
    struct Bad {
        std::string text;
        std::string pointer;  // what ConfigError::pointer() must say
        std::string says;     // a piece of the reason
    };
    const std::vector<Bad> table = {
        {R"([1, 2])", "", "must be an object"},
        {R"({})", "/routes", "missing"},
        {R"({"routes": []})", "/routes", "at least 1"},
        {R"({"routes": [], "extra": 1})", "/extra", "unknown field"},
        {R"({"version": 2, "routes": [{"name": "c", "provider": "static", "reply": "x"}]})", "/version", "from 1 to 1"},
        {route(R"("modle": "gpt-4o")"), "/routes/0/modle", "unknown field"},
        {R"({"routes": [{"name": "a", "provider": "mistral", "model": "m"}]})", "/routes/0/provider", "must be one of"},
        {R"({"routes": [{"provider": "static", "reply": "x"}]})", "/routes/0/name", "missing"},
        {R"({"routes": [{"name": "", "provider": "static", "reply": "x"}]})", "/routes/0/name", "empty"},
        {R"({"routes": [{"name": "a", "provider": "anthropic", "api_key_env": "K"}]})", "/routes/0/model", "missing"},
        {R"({"routes": [{"name": "a", "provider": "openai", "model": "gpt-4o"}]})", "/routes/0/api_key_env", "missing"},
        {R"({"routes": [{"name": "a", "provider": "openai", "model": 4, "api_key_env": "K"}]})", "/routes/0/model", "must be a string"},
        {R"({"routes": [{"name": "c", "provider": "static"}]})", "/routes/0/reply", "missing"},
        {R"({"routes": [{"name": "c", "provider": "static", "reply": "x", "model": "m"}]})", "/routes/0/model", "unknown field"},
        {R"({"routes": [{"name": "o", "provider": "ollama", "model": "m", "api_key_env": "K"}]})", "/routes/0/api_key_env", ""},
        {R"({"routes": [{"name": "v", "provider": "vllm", "model": "m"}]})", "/routes/0/base_url", "missing"},
        {route(R"("base_url": "ftp://example.com")"), "/routes/0/base_url", "http://"},
        {route(R"("max_tokens": 0)"), "/routes/0/max_tokens", "from 1 to"},
        {route(R"("strict": "always")"), "/routes/0/strict", "must be one of"},
        {route(R"("system": "x")"), "/routes/0/system", "unknown field"},
        {route(R"("headers": {"Authorization": "x"})"), "/routes/0/headers/Authorization", "headers_env"},
        {route(R"("headers": {"x-api-KEY": "x"})"), "/routes/0/headers/x-api-KEY", "headers_env"},
        {route(R"("headers": {"bad header": "x"})"), "/routes/0/headers", "header name"},
        {route(R"("headers": {"X-Trace": 7})"), "/routes/0/headers/X-Trace", "must be a string"},
        {route(R"("headers_env": {"Authorization": "not a name"})"), "/routes/0/headers_env/Authorization", "environment variable"},
        {R"({"routes": [{"name": "z", "provider": "azure_openai", "deployment": "d", "api_key_env": "K"}]})",
         "/routes/0/resource", "exactly one"},
        {R"({"routes": [{"name": "z", "provider": "azure_openai", "resource": "r", "base_url": "https://x", "deployment": "d", "api_key_env": "K"}]})",
         "/routes/0/base_url", "exactly one"},
        {R"({"routes": [{"name": "z", "provider": "azure_openai", "resource": "r", "deployment": "d"}]})",
         "/routes/0/api_key_env", "missing"},
        {R"({"routes": [{"name": "e", "provider": "error", "reason": "breaker_open"}]})", "/routes/0/reason", "must be one of"},
        {R"({"routes": [{"name": "k", "provider": "cache", "capacity": 0}]})", "/routes/0/capacity", "from 1 to"},
        {with_options(R"({"max_attempts": 0})"), "/routes/0/options/max_attempts", "from 1 to 100"},
        {with_options(R"({"max_attempts": 2.5})"), "/routes/0/options/max_attempts", "integer"},
        {with_options(R"({"max_attempts": "2"})"), "/routes/0/options/max_attempts", "got a string"},
        {with_options(R"({"timeout_ms": 10})"), "/routes/0/options/timeout_ms", "unknown field"},
        {with_options(R"({"attempt_timeout_ms": 0})"), "/routes/0/options/attempt_timeout_ms", "from 1"},
        {with_options(R"({"backoff": {"base_ms": -1}})"), "/routes/0/options/backoff/base_ms", "from 0"},
        {with_options(R"({"backoff": {"base": 10}})"), "/routes/0/options/backoff/base", "unknown field"},
        {with_options(R"({"deadline_weight": 0})"), "/routes/0/options/deadline_weight", "(0, 1000000]"},
        {with_options(R"({"hedge_percentile": 0.9})"), "/routes/0/options/hedge_percentile", "hedge_after_ms"},
        {with_options(R"({"hedge_after_ms": 100, "hedge_percentile": 1})"), "/routes/0/options/hedge_percentile", "(0, 1)"},
        {with_options(R"({"breaker": {"consecutive_failures": -1}})"), "/routes/0/options/breaker/consecutive_failures", "from 0"},
        {with_options(R"({"breaker": {"failure_rate": 0}})"), "/routes/0/options/breaker/failure_rate", "(0, 1]"},
        {with_options(R"({"breaker": {"window_s": 601}})"), "/routes/0/options/breaker/window_s", "from 1 to 600"},
        {with_options(R"({"breaker": {"open_jitter": 1}})"), "/routes/0/options/breaker/open_jitter", "[0, 1)"},
        {with_options(R"({"breaker": {"seed": -1}})"), "/routes/0/options/breaker/seed", "from 0"},
        {with_options(R"({"breaker": {"treshold": 3}})"), "/routes/0/options/breaker/treshold", "unknown field"},
        {with_options(R"({"retry_budget": {"enabled": "yes"}})"), "/routes/0/options/retry_budget/enabled", "true or false"},
        {with_options(R"({"rate_limit": {"requests_per_minute": -5}})"), "/routes/0/options/rate_limit/requests_per_minute", "[0, "},
        {with_options(R"({"price": {"input_per_million": -1}})"), "/routes/0/options/price/input_per_million", "[0, "},
        {with_options(R"({"price": {"input": 1}})"), "/routes/0/options/price/input", "unknown field"},
        {with_options(R"({"data_classes": "pii"})"), "/routes/0/options/data_classes", "must be an array"},
        {with_options(R"({"regions": ["eu", "eu"]})"), "/routes/0/options/regions/1", "unique"},
        {with_options(R"({"tiers": [""]})"), "/routes/0/options/tiers/0", "empty"},
        {with_options(R"({"context_window": -1})"), "/routes/0/options/context_window", "from 0"},
        {with_options(R"({"safety_level": 101})"), "/routes/0/options/safety_level", "from 0 to 100"},
        {with_options(R"({"schemas": ["x"]})"), "/routes/0/options/schemas/0", "must be an object"},
        {R"({"routes": [{"name": "c", "provider": "static", "reply": "x", "options": []}]})", "/routes/0/options", "must be an object"},
        {R"({"routes": [{"group": "g", "deployments": []}]})", "/routes/0/deployments", "at least 1"},
        {R"({"routes": [{"group": "g", "balance": "random", "deployments": [{"name": "c", "provider": "static", "reply": "x"}]}]})",
         "/routes/0/balance", "must be one of"},
        {R"({"routes": [{"group": "g", "weights": [0], "deployments": [{"name": "c", "provider": "static", "reply": "x"}]}]})",
         "/routes/0/weights/0", "(0, "},
        {R"({"routes": [{"group": "g", "deployments": [{"group": "h", "deployments": []}]}]})", "/routes/0/deployments/0/group",
         "not groups"},
        {R"({"routes": [{"group": "g", "deployments": [{"name": "c", "provider": "static", "reply": "x", "colour": 1}]}]})",
         "/routes/0/deployments/0/colour", "unknown field"},
        {R"({"routes": [7]})", "/routes/0", "must be an object"},
        {top(R"("router": {"timeout_ms": 0})"), "/router/timeout_ms", "from 1"},
        {top(R"("router": {"deadline_ms": 5})"), "/router/deadline_ms", "unknown field"},
        {top(R"("router": {"policy_fallback": 1})"), "/router/policy_fallback", "true or false"},
        {top(R"("router": {"seed": 1.5})"), "/router/seed", "integer"},
        {top(R"("transport": {"verify_tls": "no"})"), "/transport/verify_tls", "true or false"},
        {top(R"("transport": {"max_redirects": 21})"), "/transport/max_redirects", "from 0 to 20"},
        {top(R"("budgets": {"tenants": {"acme": -1}})"), "/budgets/tenants/acme", "[0, "},
        {top(R"("budgets": {"window_s": 0})"), "/budgets/window_s", "from 1"},
        {top(R"("budgets": {"ceiling": 1})"), "/budgets/ceiling", "unknown field"},
        {top(R"("sinks": [{"type": "syslog"}])"), "/sinks/0/type", "must be one of"},
        {top(R"("sinks": [{"path": "x.jsonl"}])"), "/sinks/0/type", "missing"},
        {top(R"("sinks": [{"type": "json_lines"}])"), "/sinks/0/path", "exactly one"},
        {top(R"("sinks": [{"type": "json_lines", "stream": "stderr", "path": "x"}])"), "/sinks/0/stream", "exactly one"},
        {top(R"("sinks": [{"type": "json_lines", "stream": "syslog"}])"), "/sinks/0/stream", "must be one of"},
        {top(R"("sinks": [{"type": "prometheus", "max_label_length": 8}])"), "/sinks/0/max_label_length", "from 16"},
        {top(R"("sinks": [{"type": "prometheus", "duration_buckets": []}])"), "/sinks/0/duration_buckets", "at least 1"},
        {top(R"("sinks": [{"type": "statsd", "port": 0}])"), "/sinks/0/port", "from 1 to 65535"},
        {top(R"("sinks": [{"type": "statsd", "prefix": "a:b"}])"), "/sinks/0/prefix", "must not contain"},
        {top(R"("sinks": [{"type": "drift", "threshold": 1}])"), "/sinks/0/threshold", "(0, 1)"},
        {top(R"("health_checks": {"interval_ms": 5})"), "/health_checks/interval_ms", "from 100"},
        {top(R"("stream": {"hold": "some"})"), "/stream/hold", "must be one of"},
        {top(R"("stream": {"restart": "yes"})"), "/stream/restart", "true or false"},
    };
    for (const Bad& bad : table) {
        INFO(bad.text);
        const std::optional<ConfigError> e = refusal(bad.text);
        REQUIRE(e);
        INFO(e->what());
        CHECK(e->pointer() == bad.pointer);
        CHECK(e->reason().find(bad.says) != std::string::npos);
        CHECK_FALSE(chain_schema().accepts(json::parse(bad.text)));
    }
}

TEST_CASE("chain config: cross-field rules only the loader states are refused too", "[config]") {
    // The schema cannot compare two fields or count against another list; these pass it
    // and the loader refuses them.
    struct Bad {
        std::string text;
        std::string pointer;
    };
    const std::vector<Bad> table = {
        {with_options(R"({"backoff": {"base_ms": 100, "cap_ms": 10}})"), "/routes/0/options/backoff/cap_ms"},
        {with_options(R"({"breaker": {"open_base_ms": 1000, "open_max_ms": 10}})"), "/routes/0/options/breaker/open_max_ms"},
        {with_options(R"({"breaker": {"half_open_probes": 1, "successes_to_close": 2}})"),
         "/routes/0/options/breaker/successes_to_close"},
        {R"({"routes": [{"name": "c", "provider": "static", "reply": "x"}, {"name": "c", "provider": "static", "reply": "y"}]})",
         "/routes/1/name"},
        {R"({"routes": [{"group": "g", "weights": [1, 2], "deployments": [{"name": "c", "provider": "static", "reply": "x"}]}]})",
         "/routes/0/weights"},
        {top(R"("sinks": [{"type": "prometheus", "duration_buckets": [1, 0.5]}])"), "/sinks/0/duration_buckets/1"},
        {top(R"("sinks": [{"type": "drift"}])"), "/sinks/0"},
        {with_options(R"({"schemas": [{"type": "objekt"}]})"), "/routes/0/options/schemas/0/type"},  // checked by Schema::parse
    };
    for (const Bad& bad : table) {
        INFO(bad.text);
        CHECK(chain_schema().accepts(json::parse(bad.text)));
        const std::optional<ConfigError> e = refusal(bad.text);
        REQUIRE(e);
        CHECK(e->pointer() == bad.pointer);
    }
}

TEST_CASE("chain config: a literal key where a variable name belongs is refused and never echoed", "[config]") {
    const std::vector<std::string> keys = {
        "sk-proj-0123456789abcdefABCDEF0123456789",
        "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
        "AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStUv",
        "AbC9dEf8GhI7jKl6MnO5pQr4",             // mixed case and digits: random, not a name
        "0123456789abcdef0123456789abcdef",     // 32 hex digits
        "hf_AAAAAAAAAAAAAAAAAAAA",
    };
    for (const std::string& k : keys) {
        INFO(k);
        for (const std::string& text : {route("").replace(route("").find("OPENAI_API_KEY"), 14, k),
                                        route(R"("headers_env": {"Authorization": ")" + k + "\"}")}) {
            const std::optional<ConfigError> e = refusal(text);
            REQUIRE(e);
            const std::string what = e->what();
            CHECK(what.find(k) == std::string::npos);
            CHECK(what.find(k.substr(0, 12)) == std::string::npos);
            CHECK(what.find("environment variable") != std::string::npos);
            CHECK_FALSE(chain_schema().accepts(json::parse(text)));
        }
    }
    // A key typed as a header value, and a key typed as a field name.
    const auto header = refusal(route(R"("headers": {"X-Key": "sk-proj-0123456789abcdefABCDEF"})"));
    REQUIRE(header);
    CHECK(header->pointer() == "/routes/0/headers/X-Key");
    CHECK(std::string(header->what()).find("sk-proj") == std::string::npos);
    // A whole header line pasted where the name belongs: refused without naming it.
    for (const char* where : {"headers", "headers_env"}) {
        const auto line = refusal(route("\"" + std::string(where) + R"(": {"Authorization: Bearer sk-proj-0123456789abcdefABCDEF": "X_VAR"})"));
        REQUIRE(line);
        CHECK(line->pointer() == "/routes/0/" + std::string(where));
        CHECK(std::string(line->what()).find("sk-proj") == std::string::npos);
        CHECK(std::string(line->what()).find("Bearer") == std::string::npos);
    }
    const auto field = refusal(route(R"("sk-proj-0123456789abcdefABCDEF0123": 1)"));
    REQUIRE(field);
    CHECK(std::string(field->what()).find("sk-proj") == std::string::npos);
    // An ordinary name passes.
    CHECK_FALSE(refusal(route("")));
}

TEST_CASE("chain config: a missing environment variable is named, never its value", "[config]") {
    const auto e = refusal(route(""), fake_env({{"OPENAI_API_KEY", ""}}));
    REQUIRE(e);
    CHECK(e->pointer() == "/routes/0/api_key_env");
    CHECK(e->reason().find("OPENAI_API_KEY is not set") != std::string::npos);
    // Routes that need no key load without any.
    ChainLoadOptions none;
    none.env = [](const std::string&) { return std::optional<std::string>{}; };
    LoadedChain local = load_chain_text(
        R"({"routes": [{"name": "l", "provider": "ollama", "model": "llama3.1"},
                       {"name": "v", "provider": "vllm", "model": "m", "base_url": "http://127.0.0.1:1/v1"},
                       {"name": "c", "provider": "static", "reply": "busy"}]})",
        none);
    CHECK(local->size() == 3);
    // A variable holding a header is read from the environment too.
    const auto h = refusal(route(R"("headers_env": {"X-Team": "TEAM_HEADER"})"), fake_env({{"TEAM_HEADER", ""}}));
    REQUIRE(h);
    CHECK(h->pointer() == "/routes/0/headers_env/X-Team");
    CHECK(h->reason().find("TEAM_HEADER") != std::string::npos);
}

TEST_CASE("chain config: text that is not JSON is refused with its line and column", "[config]") {
    const std::string text = "{\n  \"routes\": [\n    {\"name\": \"a\",, \"provider\": \"static\"}\n  ]\n}\n";
    const auto e = refusal(text);
    REQUIRE(e);
    CHECK(e->line() == 3);
    CHECK(e->column() == 18);
    CHECK(std::string(e->what()).find("line 3, column 18") != std::string::npos);
    // An unterminated string holding a key: the parser's echo of what it read is dropped.
    const auto key = refusal("{\"routes\": [{\"api_key_env\": \"sk-proj-0123456789abcdefABCDEF\n}]}");
    REQUIRE(key);
    CHECK(key->line() >= 1);
    CHECK(std::string(key->what()).find("sk-proj") == std::string::npos);
    CHECK(refusal(""));
    CHECK(refusal("{\"routes\": [1e999]}"));
}

TEST_CASE("chain config: size and nesting of the text are bounded before parsing", "[config]") {
    const std::string deep = "{\"routes\": " + std::string(200000, '[') + std::string(200000, ']') + "}";
    ChainLoadOptions o = fake_env();
    o.max_bytes = 1 << 20;
    const auto e = refusal(deep, o);
    REQUIRE(e);
    CHECK(e->reason().find("deeper than 64") != std::string::npos);
    const auto big = refusal(top(R"("$schema": ")" + std::string(2 << 20, 'x') + "\""));
    REQUIRE(big);
    CHECK(big->reason().find("more than") != std::string::npos);
    // A parsed document is checked as well (it may come from elsewhere).
    json doc = json::array();
    json* at = &doc;
    for (int i = 0; i < 100; ++i) at = &(*at).emplace_back(json::array());
    CHECK_THROWS_AS(load_chain(json{{"routes", doc}}, fake_env()), ConfigError);
}

TEST_CASE("chain config: a loaded chain routes over loopback, one hop further down as routes fail", "[config]") {
    failover_mock::MockProvider mock;
    LoadedChain chain = load_chain_file(project_dir() / "examples" / "configs" / "chain.json", at_mock(mock));
    REQUIRE(chain->size() == 5);
    const char* expect[] = {"primary", "secondary", "tertiary", "local", "canned"};
    std::size_t primary_attempts = 0;
    for (int i = 0; i < 5; ++i) {
        if (i == 1) mock.route("primary").otherwise(Fault::status(503));
        if (i == 2) mock.route("secondary").otherwise(Fault::status(529));
        if (i == 3) mock.route("tertiary").otherwise(Fault::quota_exhausted());
        if (i == 4) mock.route("local").otherwise(Fault::status(404));
        auto r = chain->route_with_fallback(ChatRequest{.messages = {user("Is the service up?")}});
        REQUIRE(r);
        CHECK(r->route == expect[i]);
        if (i == 1)
            for (const auto& a : r->attempts) primary_attempts += a.route == "primary" ? 1u : 0u;
    }
    // The key named in the file went out (the fake environment's value for OPENAI_API_KEY).
    const auto last = mock.route("primary").last_request();
    REQUIRE(last);
    REQUIRE(last->header("Authorization"));
    CHECK(*last->header("Authorization") == "Bearer test-key-for-OPENAI_API_KEY");
    // max_attempts 2 on the primary (from the file): the first failing request tried it twice.
    CHECK(primary_attempts == 2);
}

TEST_CASE("chain config: a breaker threshold from config opens after that many failures", "[config]") {
    failover_mock::MockProvider mock;
    mock.route("primary").otherwise(Fault::status(500));
    LoadedChain chain = load_chain_text(R"({"routes": [
        {"name": "primary", "provider": "openai", "model": "gpt-4o", "api_key_env": "OPENAI_API_KEY",
         "options": {"max_attempts": 1, "breaker": {"consecutive_failures": 3, "minimum_calls": 1000}}},
        {"name": "canned", "provider": "static", "reply": "busy"}]})",
                                        at_mock(mock));
    for (int i = 0; i < 2; ++i) {
        REQUIRE(chain->route_with_fallback(ChatRequest{.messages = {user("hi")}}));
        CHECK(chain->route(0).breaker().state() == BreakerState::closed);
    }
    REQUIRE(chain->route_with_fallback(ChatRequest{.messages = {user("hi")}}));
    CHECK(chain->route(0).breaker().state() == BreakerState::open);
    auto r = chain->route_with_fallback(ChatRequest{.messages = {user("hi")}});
    REQUIRE(r);
    CHECK(r->route == "canned");
    CHECK(mock.route("primary").requests() == 3);  // the open breaker skipped the fourth
}

TEST_CASE("chain config: a price from config shows up in the cost, and a budget from config skips the route", "[config]") {
    failover_mock::MockProvider mock;
    LoadedChain chain = load_chain_text(R"({
        "budgets": {"tenants": {"broke": 0}},
        "routes": [
        {"name": "primary", "provider": "anthropic", "model": "claude-sonnet-4-5", "api_key_env": "ANTHROPIC_API_KEY",
         "options": {"price": {"input_per_million": 3, "output_per_million": 15}}},
        {"name": "canned", "provider": "static", "reply": "busy"}]})",
                                        at_mock(mock));
    auto r = chain->route_with_fallback(ChatRequest{.messages = {user("What does it cost?")}});
    REQUIRE(r);
    CHECK(r->route == "primary");
    REQUIRE(r->usage.input_tokens + r->usage.output_tokens > 0);
    const double expected = (static_cast<double>(r->usage.input_tokens) * 3.0 + static_cast<double>(r->usage.output_tokens) * 15.0) / 1e6;
    CHECK(r->cost_usd == Approx(expected));
    CHECK(r->cost_usd > 0.0);
    auto broke = chain->route_with_fallback(ChatRequest{.messages = {user("hi")}, .tenant = "broke"});
    REQUIRE(broke);
    CHECK(broke->route == "canned");
    CHECK(mock.route("primary").requests() == 1);
}

TEST_CASE("chain config: sinks from config see the traffic", "[config]") {
    failover_mock::MockProvider mock;
    TempDir tmp;
    ChainLoadOptions o = at_mock(mock);
    o.base_dir = tmp.path;
    mock.route("primary").otherwise(Fault::status(503));
    LoadedChain chain = load_chain_text(R"({
        "sinks": [{"type": "json_lines", "path": "events.jsonl"}, {"type": "prometheus", "routes": ["primary"]},
                  {"type": "drift", "min_requests": 1, "threshold": 0.5}],
        "routes": [
        {"name": "primary", "provider": "gemini", "model": "gemini-2.5-flash", "api_key_env": "GEMINI_API_KEY",
         "options": {"max_attempts": 1}},
        {"name": "canned", "provider": "static", "reply": "busy"}]})",
                                        o);
    REQUIRE(chain->route_with_fallback(ChatRequest{.messages = {user("hi")}}));
    const std::string lines = read_file(tmp.path / "events.jsonl");
    CHECK(lines.find("\"fallback\"") != std::string::npos);
    CHECK(lines.find("\"drift\"") != std::string::npos);  // the drift monitor reported to the other sinks
    REQUIRE(chain.prometheus);
    const std::string scrape = chain.prometheus->scrape();
    CHECK(scrape.find("route=\"primary\"") != std::string::npos);
}

TEST_CASE("chain config: a cache route answers with what the providers answered before", "[config]") {
    failover_mock::MockProvider mock;
    mock.route("primary").then(Fault::ok("the first answer"));
    LoadedChain chain = load_chain_text(R"({"routes": [
        {"name": "primary", "provider": "openai", "model": "gpt-4o", "api_key_env": "OPENAI_API_KEY",
         "options": {"max_attempts": 1}},
        {"name": "cache", "provider": "cache", "capacity": 8},
        {"name": "canned", "provider": "static", "reply": "busy"}]})",
                                        at_mock(mock));
    const ChatRequest req{.messages = {user("Remember me")}};
    auto first = chain->route_with_fallback(req);
    REQUIRE(first);
    CHECK(first->text == "the first answer");
    mock.route("primary").otherwise(Fault::status(500));
    auto second = chain->route_with_fallback(req);
    REQUIRE(second);
    CHECK(second->route == "cache");
    CHECK(second->text == "the first answer");
    auto other = chain->route_with_fallback(ChatRequest{.messages = {user("Never asked")}});
    REQUIRE(other);
    CHECK(other->route == "canned");  // a miss is a skip; the canned reply is never cached
    REQUIRE(chain.caches.size() == 1);
    CHECK(chain.caches[0]->size() == 1);
}

TEST_CASE("chain config: a route group from config spreads over its deployments", "[config]") {
    failover_mock::MockProvider mock;
    LoadedChain chain = load_chain_text(R"({"routes": [
        {"group": "gpt", "balance": "weighted", "weights": [1, 1], "deployments": [
          {"name": "east", "provider": "openai_compatible", "base_url": "http://127.0.0.1:1/v1", "model": "m"},
          {"name": "west", "provider": "llama_cpp", "model": "m"}]},
        {"name": "canned", "provider": "static", "reply": "busy"}]})",
                                        at_mock(mock));
    REQUIRE(chain->size() == 3);
    for (int i = 0; i < 20; ++i) REQUIRE(chain->route_with_fallback(ChatRequest{.messages = {user("hi")}}));
    CHECK(mock.route("east").requests() > 0);
    CHECK(mock.route("west").requests() > 0);
    CHECK(mock.route("east").requests() + mock.route("west").requests() == 20);
}

TEST_CASE("config: README's field reference agrees with the shipped schema", "[config]") {
    // Every property the schema describes is in README's reference: as a row with the schema's
    // description, or named in its text; and every row names a property the schema has.
    const json schema = json::parse(read_file(project_dir() / "include" / "failover" / "failover-chain.schema.json"));
    std::map<std::string, std::vector<std::string>> described;  // name -> descriptions
    std::set<std::string> names;                                 // every property, described or not
    std::vector<const json*> todo{&schema};
    while (!todo.empty()) {
        const json* j = todo.back();
        todo.pop_back();
        if (j->is_object()) {
            if (auto p = j->find("properties"); p != j->end() && p->is_object())
                for (const auto& [name, sub] : p->items())
                    if (names.insert(name), sub.is_object() && sub.contains("description"))
                        described[name].push_back(sub["description"].get<std::string>());
            for (const auto& [k, v] : j->items()) todo.push_back(&v);
        } else if (j->is_array()) {
            for (const auto& v : *j) todo.push_back(&v);
        }
    }
    REQUIRE(described.size() > 50);
    const std::string readme = read_file(failover_test::readme_path());
    const auto from = readme.find("<!-- config reference: from include/failover/failover-chain.schema.json -->");
    REQUIRE(from != std::string::npos);
    const auto to = readme.find("</details>", from);
    REQUIRE(to != std::string::npos);
    const std::string reference = readme.substr(from, to - from);
    std::istringstream in(reference);
    std::map<std::string, std::vector<std::string>> rows;
    for (std::string line; std::getline(in, line);) {
        if (line.rfind("| `", 0) != 0) continue;
        const auto close = line.find('`', 3);
        const std::string name = line.substr(3, close - 3);
        const auto last = line.rfind(" |");
        const auto bar = line.rfind("| ", last - 1);
        rows[name].push_back(line.substr(bar + 2, last - bar - 2));
    }
    for (const auto& [name, descs] : described) {
        INFO("schema property " << name);
        if (rows.count(name) == 0) {
            CHECK(reference.find("`" + name + "`") != std::string::npos);
            continue;
        }
        for (const auto& d : descs) CHECK(std::find(rows[name].begin(), rows[name].end(), d) != rows[name].end());
    }
    for (const auto& [name, r] : rows) {
        INFO("README row " << name);
        CHECK(names.count(name) == 1);
    }
}
