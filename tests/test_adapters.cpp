// SPDX-License-Identifier: MIT
// Provider adapters against the documented wire formats: the exact request
// bodies each adapter encodes (golden files in tests/data/adapters, and the
// example bodies of reference/providers.md), the OpenAI bodies validated
// against OpenAI's own CreateChatCompletionRequest schema, decoding of each
// provider's documented responses (success, structured output, tool calls,
// refusals, filters, safety blocks), every classify rule with its documented
// error body, garbage bodies that must never throw, and the API key never
// appearing in a Failure. Also StaticReply, HardError, ReplyCache, CachedReply.
#include "support/catch.hpp"
#include "support/paths.hpp"

#include <atomic>
#include <cstdlib>
#include <algorithm>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include <failover/adapters/anthropic.hpp>
#include <failover/adapters/gemini.hpp>
#include <failover/adapters/openai.hpp>
#include <failover/adapters/openai_compatible.hpp>
#include <failover/adapters/static_reply.hpp>
#include <failover/detail/json_write.hpp>
#include <failover/env.hpp>

using namespace failover;
using nlohmann::json;
// Note: with `using namespace failover`, an unqualified system("...") with a
// string literal calls ::system from <cstdlib>, so these tests qualify it.

namespace {

const std::string kKey = "sk-test-SECRET-0123456789abcdef";

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in.good());
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string data(const std::string& rel) { return read_file(std::string(failover_test::test_data_dir()) + "/adapters/" + rel); }
json golden(const std::string& rel) { return json::parse(data(rel)); }

HttpResponse ok(std::string body) { return HttpResponse{200, {{"Content-Type", "application/json"}}, std::move(body)}; }
HttpResponse error_response(int status, std::string body) {
    return HttpResponse{status, {{"Content-Type", "application/json"}}, std::move(body)};
}

// What the generic classifier makes of the status alone (README's table).
Failure generic(int status) { return classify_response(HttpResponse{status, {}, {}}, std::chrono::system_clock::now()); }

// What a route makes of an error response through this adapter: the generic rules, the
// adapter's hook, then x-should-retry (the one classification path).
template <class A>
Failure classified(const A& adapter, int status, const std::string& body, Headers headers = {}) {
    HttpResponse res = error_response(status, body);
    for (auto& h : headers) res.headers.push_back(std::move(h));
    return classify_response(res, std::chrono::system_clock::now(), adapter);
}

// A request with just these messages.
ChatRequest chat(std::vector<Message> messages) {
    ChatRequest r;
    r.messages = std::move(messages);
    return r;
}

json body_of(const Result<HttpRequest>& r) {
    REQUIRE(r.has_value());
    return json::parse(r->body);
}

std::string header(const HttpRequest& r, const char* name) {
    const std::string* v = r.header(name);
    return v ? *v : std::string("<absent>");
}

bool valid_utf8(const std::string& s) {
    try {
        (void)json(s).dump();
        return true;
    } catch (const json::exception&) {
        return false;
    }
}

// Sets (or unsets) an environment variable for one test and restores it after.
class EnvGuard {
public:
    EnvGuard(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) old_ = old;
        if (value) ::setenv(name, value, 1);
        else ::unsetenv(name);
    }
    ~EnvGuard() {
        if (old_) ::setenv(name_, old_->c_str(), 1);
        else ::unsetenv(name_);
    }
    EnvGuard(const EnvGuard&) = delete;
    EnvGuard& operator=(const EnvGuard&) = delete;

private:
    const char* name_;
    std::optional<std::string> old_;
};

std::string config_error_of(const std::function<void()>& make) {
    try {
        make();
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    FAIL("expected std::invalid_argument");
    return {};
}

OpenAI openai() { return OpenAI{{.model = "gpt-4o", .api_key = kKey, .base_url = "https://api.openai.com/v1"}}; }
Anthropic anthropic() {
    return Anthropic{{.model = "claude-sonnet-4-5", .api_key = kKey, .base_url = "https://api.anthropic.com"}};
}
Gemini gemini() {
    return Gemini{{.model = "gemini-2.5-flash", .api_key = kKey, .base_url = "https://generativelanguage.googleapis.com"}};
}
OpenAICompatible azure() {
    return OpenAICompatible::azure({.resource = "acme", .deployment = "gpt-4o-prod", .api_key = kKey});
}

std::shared_ptr<const Schema> invoice_schema() {
    return Schema::parse(
        R"({"type":"object","properties":{"invoice":{"type":"string"},"total":{"type":"number"}},)"
        R"("required":["invoice","total"],"additionalProperties":false})");
}

// The plain request of providers.md section 1.
ChatRequest plain_request(bool with_stop) {
    ChatRequest r = chat({failover::system_prompt("Be terse."), user("Hi")});
    r.max_tokens = 256;
    if (with_stop) r.stop = {"\n\n"};
    return r;
}

// A full tool round: the model called two tools and both results come back.
ChatRequest tools_request() {
    ChatRequest r;
    r.messages = {failover::system_prompt("You are a weather bot."), user("Weather in Paris, and the time?"),
                  assistant("", {ToolCall{"call_1", "get_weather", json{{"city", "Paris"}}},
                                 ToolCall{"call_2", "get_time", json::object()}}),
                  tool_result("call_1", "get_weather", R"({"temp_c":21})"),
                  tool_result("call_2", "", "14:05")};  // no name: adapters that need it look it up
    r.tools = {Tool{"get_weather", "Current weather for a city",
                    json::parse(R"({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]})")},
               Tool{"get_time", "", json{{"type", "object"}}}};
    r.max_tokens = 512;
    r.temperature = 0.5;
    return r;
}

ChatRequest structured_request(std::string name = "invoice") {
    ChatRequest r = chat({user("Extract: INV-7, total 42.50")});
    r.schema = invoice_schema();
    r.schema_name = std::move(name);
    return r;
}

ChatRequest ask_schema() {  // default schema_name "answer", as in the golden Anthropic responses
    ChatRequest r = chat({user("Extract the invoice")});
    r.schema = invoice_schema();
    return r;
}

// OpenAI's request schema, reached the way the file's $comment says: {"$ref": "#/$defs/CreateChatCompletionRequest"}.
std::shared_ptr<const Schema> openai_request_schema() {
    static const std::shared_ptr<const Schema> schema = [] {
        json doc = json::parse(read_file(failover_test::openai_schema_path()));
        json root = {{"$ref", "#/$defs/CreateChatCompletionRequest"}, {"$defs", doc.at("$defs")}};
        return Schema::parse(std::move(root));
    }();
    return schema;
}

std::string openai_violations(const json& body) {
    std::string out;
    for (const auto& e : openai_request_schema()->validate(body)) out += e.pointer + ": " + e.message + "\n";
    return out;
}

}  // namespace

// ------------------------------------------------------------------ env, config

TEST_CASE("env returns the variable or an empty string", "[adapters][env]") {
    EnvGuard set("FAILOVER_TEST_ENV_VALUE", "abc");
    EnvGuard unset("FAILOVER_TEST_ENV_UNSET", nullptr);
    CHECK(env("FAILOVER_TEST_ENV_VALUE").value() == "abc");
    CHECK(env("FAILOVER_TEST_ENV_VALUE").source() == "environment variable FAILOVER_TEST_ENV_VALUE");
    CHECK(env("FAILOVER_TEST_ENV_UNSET").empty());
    CHECK_THROWS_AS(env(nullptr), std::invalid_argument);
    CHECK_THROWS_AS(env("OPENAI API KEY"), std::invalid_argument);
}

TEST_CASE("adapters use the official endpoints, the SDK env vars, or the option", "[adapters][config]") {
    EnvGuard a("OPENAI_BASE_URL", nullptr), b("ANTHROPIC_BASE_URL", nullptr), c("GEMINI_BASE_URL", nullptr);
    CHECK(OpenAI{{.model = "gpt-4o"}}.endpoint() == "https://api.openai.com/v1/chat/completions");
    CHECK(Anthropic{{.model = "claude-sonnet-4-5"}}.endpoint() == "https://api.anthropic.com/v1/messages");
    CHECK(Gemini{{.model = "gemini-2.5-flash"}}.endpoint() ==
          "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent");
    CHECK(Gemini{{.model = "tunedModels/my-tune"}}.endpoint() ==
          "https://generativelanguage.googleapis.com/v1beta/tunedModels/my-tune:generateContent");
    {
        EnvGuard o("OPENAI_BASE_URL", "http://127.0.0.1:9000/v1/");
        EnvGuard n("ANTHROPIC_BASE_URL", "http://127.0.0.1:9001");
        EnvGuard g("GEMINI_BASE_URL", "http://127.0.0.1:9002");
        CHECK(OpenAI{{.model = "gpt-4o"}}.endpoint() == "http://127.0.0.1:9000/v1/chat/completions");
        CHECK(Anthropic{{.model = "m"}}.endpoint() == "http://127.0.0.1:9001/v1/messages");
        CHECK(Gemini{{.model = "m"}}.endpoint() == "http://127.0.0.1:9002/v1beta/models/m:generateContent");
        // The option wins over the environment.
        CHECK(OpenAI{{.model = "gpt-4o", .base_url = "https://proxy.example/v1"}}.endpoint() ==
              "https://proxy.example/v1/chat/completions");
    }
    {
        EnvGuard o("OPENAI_BASE_URL", "api.openai.com");
        const std::string msg = config_error_of([] { OpenAI{{.model = "gpt-4o"}}; });
        CHECK(msg.find("OPENAI_BASE_URL") != std::string::npos);
        CHECK(msg.find("'api.openai.com'") != std::string::npos);
    }
    CHECK(OpenAICompatible{{.base_url = "http://127.0.0.1:11434/v1", .model = "llama3.1"}}.endpoint() ==
          "http://127.0.0.1:11434/v1/chat/completions");
    CHECK(azure().endpoint() ==
          "https://acme.openai.azure.com/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21");
    CHECK(OpenAICompatible::azure({.base_url = "https://gw.example.com/", .deployment = "d1", .api_version = "2025-01-01"})
              .endpoint() == "https://gw.example.com/openai/deployments/d1/chat/completions?api-version=2025-01-01");
    CHECK(OpenAICompatible::ollama("llama3.1").endpoint() == "http://127.0.0.1:11434/v1/chat/completions");
    CHECK(OpenAICompatible::llama_cpp("any").endpoint() == "http://127.0.0.1:8080/v1/chat/completions");
    CHECK(OpenAICompatible::vllm("qwen", "http://10.0.0.5:8000/v1").endpoint() == "http://10.0.0.5:8000/v1/chat/completions");
    CHECK(OpenAICompatible::openrouter("openai/gpt-4o", kKey).endpoint() == "https://openrouter.ai/api/v1/chat/completions");
}

TEST_CASE("adapters report their gen_ai.system and model", "[adapters][config]") {
    CHECK(openai().provider() == "openai");
    CHECK(openai().model() == "gpt-4o");
    CHECK(anthropic().provider() == "anthropic");
    CHECK(anthropic().model() == "claude-sonnet-4-5");
    CHECK(gemini().provider() == "gemini");
    CHECK(gemini().model() == "gemini-2.5-flash");
    CHECK(azure().provider() == "azure_openai");
    CHECK(azure().model() == "gpt-4o-prod");
    CHECK(OpenAICompatible::ollama("llama3.1").provider() == "ollama");
    CHECK(OpenAICompatible::vllm("q", "http://h:1/v1").provider() == "vllm");
    CHECK(OpenAICompatible::llama_cpp("q").provider() == "llama_cpp");
    CHECK(OpenAICompatible::openrouter("m", kKey).provider() == "openrouter");
    CHECK(OpenAICompatible{{.base_url = "http://h/v1", .model = "m"}}.provider() == "openai_compatible");
    CHECK(OpenAICompatible{{.base_url = "http://h/v1", .model = "m", .provider = "lmstudio"}}.provider() == "lmstudio");
}

TEST_CASE("misconfiguration throws naming the field and value, never the key", "[adapters][config]") {
    EnvGuard a("OPENAI_BASE_URL", nullptr);
    auto has = [](const std::string& msg, const char* part) { return msg.find(part) != std::string::npos; };

    std::string m = config_error_of([] { OpenAI{{.api_key = kKey}}; });
    CHECK(has(m, "OpenAI"));
    CHECK(has(m, "model"));
    m = config_error_of([] { Anthropic{{.api_key = kKey}}; });
    CHECK(has(m, "Anthropic"));
    CHECK(has(m, "model"));
    m = config_error_of([] { Gemini{{.api_key = kKey}}; });
    CHECK(has(m, "model"));
    m = config_error_of([] { Gemini{{.model = "gemini pro?", .api_key = kKey}}; });
    CHECK(has(m, "'gemini pro?'"));
    m = config_error_of([] { OpenAICompatible{{.model = "llama3.1"}}; });
    CHECK(has(m, "base_url"));
    m = config_error_of([] { OpenAICompatible{{.base_url = "http://h/v1"}}; });
    CHECK(has(m, "model"));

    for (const char* bad : {"ftp://api.example.com", "api.openai.com/v1", "http://", "https:///v1", "http://host name/v1",
                            "https://host/v1?x=1"}) {
        m = config_error_of([&] { OpenAI{{.model = "gpt-4o", .api_key = kKey, .base_url = bad}}; });
        CHECK(has(m, "base_url"));
        CHECK(has(m, ("'" + std::string(bad) + "'").c_str()));
    }
    // A key pasted into the wrong field is still never printed.
    m = config_error_of([] { OpenAI{{.model = "gpt-4o", .api_key = kKey, .base_url = "Bearer " + kKey}}; });
    CHECK_FALSE(has(m, kKey.c_str()));
    CHECK(has(m, "[redacted]"));
    m = config_error_of([] { OpenAI{{.model = "gpt-4o", .api_key = kKey + "\r\nX-Evil: 1"}}; });
    CHECK(has(m, "api_key"));
    CHECK_FALSE(has(m, "SECRET"));
    m = config_error_of([] {
        OpenAI{{.model = "gpt-4o", .extra_headers = {{"X-Trace", "a\r\nInjected: " + kKey}}}};
    });
    CHECK(has(m, "X-Trace"));
    CHECK_FALSE(has(m, "SECRET"));
    m = config_error_of([] { OpenAI{{.model = "gpt-4o", .extra_headers = {{"Bad Name", "v"}}}}; });
    CHECK(has(m, "'Bad Name'"));

    m = config_error_of([] { Anthropic{{.model = "c", .max_tokens = 0}}; });
    CHECK(has(m, "max_tokens"));
    m = config_error_of([] { Anthropic{{.model = "c", .anthropic_version = ""}}; });
    CHECK(has(m, "anthropic_version"));
    m = config_error_of([] { OpenAI{{.model = "gpt-4o", .max_tokens = -5}}; });
    CHECK(has(m, "-5"));

    m = config_error_of([] { (void)OpenAICompatible::azure({.deployment = "d", .api_key = kKey}); });
    CHECK(has(m, "resource"));
    m = config_error_of([] {
        (void)OpenAICompatible::azure({.resource = "acme", .base_url = "https://x.example", .deployment = "d"});
    });
    CHECK(has(m, "exactly one"));
    m = config_error_of([] { (void)OpenAICompatible::azure({.resource = "acme"}); });
    CHECK(has(m, "deployment"));
    m = config_error_of([] { (void)OpenAICompatible::azure({.resource = "acme.evil/x", .deployment = "d"}); });
    CHECK(has(m, "'acme.evil/x'"));
    m = config_error_of([] { (void)OpenAICompatible::azure({.resource = "acme", .deployment = "d/../x"}); });
    CHECK(has(m, "deployment"));
}

// ------------------------------------------------------------------ encode

TEST_CASE("encode produces providers.md's example bodies exactly", "[adapters][encode]") {
    CHECK(body_of(openai().encode(plain_request(true))) ==
          json::parse(R"({"model":"gpt-4o","messages":[{"role":"system","content":"Be terse."},)"
                      R"({"role":"user","content":"Hi"}],"max_completion_tokens":256,"stop":["\n\n"]})"));
    CHECK(body_of(anthropic().encode(plain_request(false))) ==
          json::parse(R"({"model":"claude-sonnet-4-5","max_tokens":256,"system":"Be terse.",)"
                      R"("messages":[{"role":"user","content":"Hi"}]})"));
    CHECK(body_of(gemini().encode(plain_request(false))) ==
          json::parse(R"({"systemInstruction":{"parts":[{"text":"Be terse."}]},)"
                      R"("contents":[{"role":"user","parts":[{"text":"Hi"}]}],"generationConfig":{"maxOutputTokens":256}})"));
}

TEST_CASE("encode: tool rounds and structured output in each provider's shape", "[adapters][encode]") {
    CHECK(body_of(openai().encode(tools_request())) == golden("openai/request_tools.json"));
    CHECK(body_of(anthropic().encode(tools_request())) == golden("anthropic/request_tools.json"));
    CHECK(body_of(gemini().encode(tools_request())) == golden("gemini/request_tools.json"));
    CHECK(body_of(openai().encode(structured_request())) == golden("openai/request_structured.json"));
    CHECK(body_of(anthropic().encode(structured_request())) == golden("anthropic/request_structured.json"));
    CHECK(body_of(gemini().encode(structured_request())) == golden("gemini/request_structured.json"));

    // Compatible servers differ from OpenAI only in the max-tokens field; Azure only in the model.
    json compat = golden("openai/request_tools.json");
    compat["max_tokens"] = compat["max_completion_tokens"];
    compat.erase("max_completion_tokens");
    compat["model"] = "llama3.1";
    CHECK(body_of(OpenAICompatible::ollama("llama3.1").encode(tools_request())) == compat);
    json az = golden("openai/request_tools.json");
    az.erase("model");
    CHECK(body_of(azure().encode(tools_request())) == az);
}

TEST_CASE("encode sets each provider's URL and auth headers", "[adapters][encode]") {
    const ChatRequest req = plain_request(false);
    auto r = openai().encode(req);
    REQUIRE(r);
    CHECK(r->method == "POST");
    CHECK(r->url == "https://api.openai.com/v1/chat/completions");
    CHECK(header(*r, "content-type") == "application/json");
    CHECK(header(*r, "authorization") == "Bearer " + kKey);

    auto org = OpenAI{{.model = "gpt-4o", .api_key = kKey, .base_url = "https://api.openai.com/v1",
                       .organization = "org-1", .project = "proj-2", .extra_headers = {{"X-Tag", "t"}}}}
                   .encode(req);
    REQUIRE(org);
    CHECK(header(*org, "OpenAI-Organization") == "org-1");
    CHECK(header(*org, "OpenAI-Project") == "proj-2");
    CHECK(header(*org, "x-tag") == "t");

    r = anthropic().encode(req);
    REQUIRE(r);
    CHECK(r->url == "https://api.anthropic.com/v1/messages");
    CHECK(header(*r, "x-api-key") == kKey);
    CHECK(header(*r, "anthropic-version") == "2023-06-01");
    CHECK(header(*r, "authorization") == "<absent>");

    r = gemini().encode(req);
    REQUIRE(r);
    CHECK(r->url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent");
    CHECK(header(*r, "x-goog-api-key") == kKey);
    CHECK(r->url.find(kKey) == std::string::npos);

    r = azure().encode(req);
    REQUIRE(r);
    CHECK(header(*r, "api-key") == kKey);
    CHECK(header(*r, "authorization") == "<absent>");

    r = OpenAICompatible::ollama("llama3.1").encode(req);
    REQUIRE(r);
    CHECK(header(*r, "authorization") == "<absent>");
    CHECK(header(*r, "content-type") == "application/json");
    r = OpenAICompatible::vllm("q", "http://h:1/v1", "vk").encode(req);
    REQUIRE(r);
    CHECK(header(*r, "authorization") == "Bearer vk");

    // An extra header replaces a default of the same name instead of duplicating it.
    auto beta = Anthropic{{.model = "c", .api_key = "k", .base_url = "https://api.anthropic.com",
                           .extra_headers = {{"Anthropic-Version", "2099-01-01"}, {"anthropic-beta", "x"}}}}
                    .encode(req);
    REQUIRE(beta);
    CHECK(header(*beta, "anthropic-version") == "2099-01-01");
    CHECK(std::count_if(beta->headers.begin(), beta->headers.end(),
                        [](const auto& h) { return detail::iequals(h.first, "anthropic-version"); }) == 1);
}

TEST_CASE("encode applies default output limits and omits what is unset", "[adapters][encode]") {
    ChatRequest r = chat({user("Hi")});
    json b = body_of(anthropic().encode(r));
    CHECK(b.at("max_tokens") == 1024);  // Anthropic requires one
    CHECK(body_of(Anthropic{{.model = "c", .base_url = "https://a.example", .max_tokens = 77}}.encode(r)).at("max_tokens") == 77);
    b = body_of(openai().encode(r));
    CHECK_FALSE(b.contains("max_completion_tokens"));
    CHECK_FALSE(b.contains("temperature"));
    CHECK_FALSE(b.contains("stop"));
    CHECK(body_of(OpenAI{{.model = "m", .base_url = "https://a.example/v1", .max_tokens = 99}}.encode(r))
              .at("max_completion_tokens") == 99);
    CHECK_FALSE(body_of(gemini().encode(r)).contains("generationConfig"));
    CHECK(body_of(OpenAICompatible{{.base_url = "http://h/v1", .model = "m", .max_tokens = 64}}.encode(r)).at("max_tokens") == 64);
    r.stop = {"END"};
    r.temperature = 0.0;
    CHECK(body_of(anthropic().encode(r)).at("stop_sequences") == json::array({"END"}));
    CHECK(body_of(gemini().encode(r)).at("generationConfig") == json::parse(R"({"stopSequences":["END"],"temperature":0.0})"));
}

TEST_CASE("encode merges turns and hoists system prompts where the provider needs it", "[adapters][encode]") {
    ChatRequest r = chat({failover::system_prompt("A"), user("one"), user("two"), failover::system_prompt("B"), assistant("ok"), user("three")});
    json a = body_of(anthropic().encode(r));
    CHECK(a.at("system") == json::parse(R"([{"type":"text","text":"A"},{"type":"text","text":"B"}])"));
    CHECK(a.at("messages") == json::parse(R"([
        {"role":"user","content":[{"type":"text","text":"one"},{"type":"text","text":"two"}]},
        {"role":"assistant","content":"ok"},
        {"role":"user","content":"three"}])"));
    json g = body_of(gemini().encode(r));
    CHECK(g.at("systemInstruction") == json::parse(R"({"parts":[{"text":"A"},{"text":"B"}]})"));
    CHECK(g.at("contents") == json::parse(R"([
        {"role":"user","parts":[{"text":"one"},{"text":"two"}]},
        {"role":"model","parts":[{"text":"ok"}]},
        {"role":"user","parts":[{"text":"three"}]}])"));
    // OpenAI keeps every message where it was.
    CHECK(body_of(openai().encode(r)).at("messages").size() == 6);
}

TEST_CASE("encode: Anthropic structured output with the request's own tools lets the model call them", "[adapters][encode]") {
    ChatRequest r = structured_request();
    r.tools = {Tool{"lookup", "Look up an invoice", json{{"type", "object"}}}};
    json b = body_of(anthropic().encode(r));
    CHECK(b.at("tool_choice") == json{{"type", "any"}});
    REQUIRE(b.at("tools").size() == 2);
    CHECK(b.at("tools")[1].at("name") == "invoice");
    // A user tool may not take the structured-output tool's name.
    r.tools = {Tool{"invoice", "", json{{"type", "object"}}}};
    auto clash = anthropic().encode(r);
    REQUIRE_FALSE(clash);
    CHECK(clash.error().reason == Reason::bad_request);
}

TEST_CASE("encode refuses what a provider cannot express, as bad_request values", "[adapters][encode]") {
    auto refused = [](const Result<HttpRequest>& r, const char* part) {
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().reason == Reason::bad_request);
        CHECK(r.error().kind == FailureKind::terminal);
        CHECK(r.error().message.find(part) != std::string::npos);
    };
    refused(openai().encode(ChatRequest{}), "no messages");
    refused(anthropic().encode(chat({failover::system_prompt("only")})), "only system");

    ChatRequest five = chat({user("x")});
    five.stop = {"a", "b", "c", "d", "e"};
    refused(openai().encode(five), "at most 4 stop");
    refused(azure().encode(five), "at most 4 stop");
    CHECK(OpenAICompatible::ollama("m").encode(five).has_value());
    CHECK(anthropic().encode(five).has_value());

    refused(openai().encode(structured_request("bad name!")), "schema_name");
    ChatRequest arr = chat({user("x")});
    arr.schema = Schema::parse(R"({"type":"array"})");
    refused(anthropic().encode(arr), "object schema");
    arr.schema = Schema::parse("true");
    refused(openai().encode(arr), "JSON object");
    refused(gemini().encode(arr), "JSON object");

    ChatRequest bad_tool = chat({user("x")});
    bad_tool.tools = {Tool{"has space", "", json{{"type", "object"}}}};
    refused(openai().encode(bad_tool), "tool name");

    ChatRequest no_id = chat({user("x"), assistant("", {ToolCall{"", "f", json::object()}})});
    refused(openai().encode(no_id), "messages[1]");
    refused(anthropic().encode(no_id), "messages[1]");
    ChatRequest orphan = chat({user("x"), tool_result("", "", "42")});
    refused(openai().encode(orphan), "tool_call_id");
    refused(gemini().encode(orphan), "tool's name");

    // Arguments an earlier decode could not parse (kept as a string) cannot become an object.
    ChatRequest raw = chat({user("x"), assistant("", {ToolCall{"c1", "f", json("{\"a\":")}})});
    refused(anthropic().encode(raw), "not a JSON object");
    refused(gemini().encode(raw), "not a JSON object");
    // OpenAI sends such arguments back verbatim.
    CHECK(body_of(openai().encode(raw)).at("messages")[1].at("tool_calls")[0].at("function").at("arguments") == "{\"a\":");

    ChatRequest knobs = chat({user("x")});
    knobs.max_tokens = 0;
    refused(gemini().encode(knobs), "max_tokens");
    knobs.max_tokens.reset();
    knobs.temperature = std::numeric_limits<double>::quiet_NaN();
    refused(anthropic().encode(knobs), "temperature");

    ChatRequest latin1 = chat({user(std::string("caf\xe9"))});
    refused(openai().encode(latin1), "UTF-8");
    refused(anthropic().encode(latin1), "UTF-8");
    refused(gemini().encode(latin1), "UTF-8");
    ChatRequest bad_args = chat({user("x"), assistant("", {ToolCall{"c1", "f", json{{"q", std::string("\xff")}}}})});
    refused(openai().encode(bad_args), "UTF-8");
    refused(anthropic().encode(bad_args), "UTF-8");
}

namespace {
// json::dump()'s bytes, or "refused" where it throws (text that is not UTF-8).
std::string dumped(const json& v) {
    try {
        return v.dump();
    } catch (const json::type_error&) {
        return "refused";
    }
}
std::string written(const json& v) {
    std::string out;
    return failover::detail::json_write(v, out) ? out : "refused";
}
}  // namespace

TEST_CASE("request bodies are written byte for byte as json::dump() writes them, and refused where it refuses", "[adapters][encode]") {
    // Every string of one and two bytes: escapes, control characters, lone and paired bytes >= 0x80.
    for (int a = 0; a < 256; ++a) {
        const std::string one(1, static_cast<char>(a));
        REQUIRE(written(json(one)) == dumped(json(one)));
        for (int b = 0; b < 256; ++b) {
            const std::string two{static_cast<char>(a), static_cast<char>(b)};
            REQUIRE(written(json(two)) == dumped(json(two)));
        }
    }
    // A special byte or sequence at every offset of a longer text (the writer reads plain text
    // eight bytes at a time), and invalid UTF-8 of every kind.
    for (const std::string& special : std::vector<std::string>{"\"", "\\", "\n", std::string(1, '\0'), "\x1f", "\x7f", "\xc3\xa9", "\xe2\x82\xac",
                                      "\xf0\x9f\x98\x80", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82",
                                      "\xff", "\x80"}) {
        for (std::size_t at = 0; at <= 17; ++at) {
            std::string text = std::string(at, 'a') + special + std::string(17 - at, 'z');
            REQUIRE(written(json(text)) == dumped(json(text)));
            text = std::string(at, 'a') + special;  // the special bytes last
            REQUIRE(written(json(text)) == dumped(json(text)));
        }
    }
    // Every kind of value, keys with escapes and non-ASCII, nesting.
    const json values = json::parse(R"({"a": [null, true, false, 0, -1, 9223372036854775807, -9223372036854775808,
        18446744073709551615, 0.2, -0.0, 1e300, 1.5e-7, 100.0, "", "x\u0001\"y"],
        "k\"\\\u00e9\ud83d\ude00": {"": {}, "e": []}, "z": [[[]], {"n": {"m": 1}}]})");
    CHECK(written(values) == values.dump());
    CHECK(written(json(std::numeric_limits<double>::quiet_NaN())) == "null");
    CHECK(written(json(std::numeric_limits<double>::infinity())) == "null");
    CHECK(written(json{{std::string("\xff"), 1}}) == "refused");  // a key that is not UTF-8

    // The adapters' bodies are that writer's bytes: the typical requests, tools and a schema.
    ChatRequest req = chat({system_prompt("Be brief.\tReally."), user("Caf\xc3\xa9 \"quoted\" \\ \xf0\x9f\x98\x80\n")});
    req.temperature = 0.2;
    req.max_tokens = 64;
    req.stop = {"\n\n"};
    req.tools = {Tool{"lookup", "Looks \"it\" up", json::parse(R"({"type":"object","properties":{"q":{"type":"string"}}})")}};
    for (const Result<HttpRequest>& h : {openai().encode(req), anthropic().encode(req), gemini().encode(req)}) {
        REQUIRE(h);
        CHECK(h->body == json::parse(h->body).dump());
    }
}

TEST_CASE("request encoders write their bodies straight, in the bytes and member order json::dump() gives", "[adapters][encode]") {
    // The encoders write without a DOM (detail::JsonOut): a body is dump()'s bytes when its
    // members come in the order a DOM keeps them, so every body must survive parse + dump
    // unchanged, for every kind of turn and option each encoder writes.
    std::vector<ChatRequest> requests = {plain_request(false), plain_request(true), tools_request(), structured_request()};
    ChatRequest history = chat({system_prompt("One."), system_prompt("Two \"quoted\"."), user("a"), user("b \xc3\xa9"),
                                assistant("earlier answer"), user("c")});
    history.temperature = 0.0;
    history.stop = {"END", "\x01"};
    requests.push_back(history);
    ChatRequest signed_turns = chat({user("think")});
    Message a = assistant("I will call.", {ToolCall{"toolu_1", "get_weather", json{{"city", "Oslo"}}}});
    a.thinking = {Thinking{"step one", Signature{"anthropic", "claude-sonnet-4-5", "sig-a"}, false},
                  Thinking{"", Signature{"anthropic", "claude-sonnet-4-5", "redacted-bytes"}, true},
                  Thinking{"elsewhere", Signature{"anthropic", "other-model", "sig-b"}, false}};
    a.signature = Signature{"gemini", "gemini-2.5-flash", "gem-sig"};
    a.tool_calls.front().signature = Signature{"gemini", "gemini-2.5-flash", "call-sig"};
    signed_turns.messages.push_back(a);
    signed_turns.messages.push_back(tool_result("toolu_1", "get_weather", "failed: timeout", true));
    signed_turns.messages.push_back(assistant("plain again"));
    signed_turns.tools = tools_request().tools;
    requests.push_back(signed_turns);
    ChatRequest both = tools_request();  // tools beside a schema: Anthropic's forced tool_choice "any"
    both.schema = invoice_schema();
    requests.push_back(both);
    ChatRequest minted = tools_request();
    minted.messages[2].tool_calls[0].minted_id = true;
    requests.push_back(minted);

    const std::vector<std::pair<std::string, std::function<Result<HttpRequest>(const ChatRequest&, bool)>>> encoders = {
        {"openai", [](const ChatRequest& r, bool s) { return s ? openai().encode_stream(r) : openai().encode(r); }},
        {"azure", [](const ChatRequest& r, bool s) { return s ? azure().encode_stream(r) : azure().encode(r); }},
        {"vllm",
         [](const ChatRequest& r, bool s) {
             const OpenAICompatible v = OpenAICompatible::vllm("qwen", "http://h:8000/v1");
             return s ? v.encode_stream(r) : v.encode(r);
         }},
        {"anthropic", [](const ChatRequest& r, bool s) { return s ? anthropic().encode_stream(r) : anthropic().encode(r); }},
        {"gemini", [](const ChatRequest& r, bool s) { return s ? gemini().encode_stream(r) : gemini().encode(r); }},
    };
    std::size_t bodies = 0;
    for (const auto& [name, encode] : encoders) {
        for (std::size_t i = 0; i < requests.size(); ++i) {
            for (const bool stream : {false, true}) {
                INFO(name << " request " << i << (stream ? " streamed" : ""));
                const Result<HttpRequest> h = encode(requests[i], stream);
                REQUIRE(h);
                CHECK(h->body == json::parse(h->body).dump());
                ++bodies;
            }
        }
    }
    CHECK(bodies == encoders.size() * requests.size() * 2);

    // Text that is not UTF-8 anywhere the encoders write it is refused, as dump() refused it.
    const std::string bad = "caf\xc3";
    for (const auto& [name, encode] : encoders) {
        ChatRequest r = plain_request(false);
        r.messages.back().content = bad;
        Result<HttpRequest> h = encode(r, false);
        INFO(name);
        REQUIRE_FALSE(h);
        CHECK(h.error().reason == Reason::bad_request);
        CHECK(h.error().message.find("not valid UTF-8") != std::string::npos);
        r = plain_request(true);
        r.stop = {bad};
        h = encode(r, true);
        REQUIRE_FALSE(h);
        CHECK(h.error().reason == Reason::bad_request);
    }
}

TEST_CASE("OpenAI request bodies validate against OpenAI's CreateChatCompletionRequest schema", "[adapters][encode][schema]") {
    // The file is JSON Schema 2020-12 and failover::Schema implements draft 7. Its $defs
    // refs are plain JSON pointers, which resolve the same way under draft 7, so
    // the only change is the root: a $ref to CreateChatCompletionRequest beside
    // the $defs. Keywords new in 2019-09/2020-12 would be silently ignored by a
    // draft-7 validator, so first prove the file uses none of them.
    const std::string text = read_file(failover_test::openai_schema_path());
    for (const char* newer : {"\"prefixItems\"", "\"unevaluatedProperties\"", "\"unevaluatedItems\"", "\"$dynamicRef\"",
                              "\"$recursiveRef\"", "\"dependentRequired\"", "\"dependentSchemas\"", "\"minContains\"",
                              "\"maxContains\"", "\"$anchor\""}) {
        INFO(newer);
        CHECK(text.find(newer) == std::string::npos);
    }

    ChatRequest sampled = plain_request(true);
    sampled.temperature = 0.2;
    for (const ChatRequest& req : {plain_request(true), sampled, tools_request(), structured_request()}) {
        const json body = body_of(openai().encode(req));
        INFO(body.dump());
        CHECK(openai_violations(body).empty());
        const json compat = body_of(OpenAICompatible::vllm("qwen", "http://h:8000/v1").encode(req));
        CHECK(openai_violations(compat).empty());
    }

    // The validator is really checking: broken bodies are rejected.
    json bad = body_of(openai().encode(tools_request()));
    bad["messages"][3].erase("tool_call_id");
    CHECK_FALSE(openai_violations(bad).empty());
    bad = body_of(openai().encode(tools_request()));
    bad["messages"][2]["tool_calls"][0]["function"]["arguments"] = json{{"city", "Paris"}};  // must be a string
    CHECK_FALSE(openai_violations(bad).empty());
    bad = body_of(openai().encode(plain_request(true)));
    bad["stop"] = json::array({"1", "2", "3", "4", "5"});
    CHECK_FALSE(openai_violations(bad).empty());
    bad = body_of(openai().encode(plain_request(true)));
    bad["max_completion_tokens"] = "256";
    CHECK_FALSE(openai_violations(bad).empty());
}

// ------------------------------------------------------------------ decode: OpenAI shape

TEST_CASE("OpenAI decode: text, usage, model, finish reason", "[adapters][decode][openai]") {
    auto r = openai().decode(chat({user("Hi")}), ok(data("openai/chat_success.json")));
    REQUIRE(r);
    CHECK(r->text == "Hello! How can I help?");
    CHECK(r->finish_reason == FinishReason::stop);
    CHECK(r->usage.input_tokens == 12);
    CHECK(r->usage.output_tokens == 7);
    CHECK(r->model == "gpt-4o-2024-08-06");
    CHECK(r->json.is_null());
    CHECK(r->tool_calls.empty());
}

TEST_CASE("OpenAI decode: structured output is parsed, truncation and prose are told apart", "[adapters][decode][openai]") {
    auto r = openai().decode(ask_schema(), ok(data("openai/structured_success.json")));
    REQUIRE(r);
    CHECK(r->json == json::parse(R"({"invoice":"INV-7","total":42.5})"));
    CHECK(r->text == R"({"invoice":"INV-7","total":42.5})");

    r = openai().decode(ask_schema(), ok(data("openai/structured_truncated.json")));
    REQUIRE_FALSE(r);
    CHECK(r.error().reason == Reason::malformed_response);
    CHECK(r.error().kind == FailureKind::transient);
    CHECK(r.error().message.find("truncated") != std::string::npos);

    r = openai().decode(ask_schema(), ok(data("openai/structured_not_json.json")));
    REQUIRE_FALSE(r);
    CHECK(r.error().reason == Reason::schema_invalid);
    CHECK(r.error().message.find("not JSON") != std::string::npos);
    CHECK(r.error().message.find("Sure! The invoice") != std::string::npos);

    // Without a schema the same prose is simply the answer.
    auto prose = openai().decode(chat({user("x")}), ok(data("openai/structured_not_json.json")));
    REQUIRE(prose);
    CHECK(prose->json.is_null());
}

TEST_CASE("OpenAI decode: tool-call arguments are parsed from their JSON string", "[adapters][decode][openai]") {
    auto r = openai().decode(tools_request(), ok(data("openai/tool_calls.json")));
    REQUIRE(r);
    CHECK(r->finish_reason == FinishReason::tool_calls);
    CHECK(r->text.empty());
    REQUIRE(r->tool_calls.size() == 3);
    CHECK(r->tool_calls[0].id == "call_abc");
    CHECK(r->tool_calls[0].name == "get_weather");
    CHECK(r->tool_calls[0].arguments == json::parse(R"({"city":"Paris","unit":"c"})"));
    CHECK(r->tool_calls[1].arguments == json::object());  // "" means no arguments
    // Unparsable arguments are kept, as a JSON string holding the raw text.
    CHECK(r->tool_calls[2].arguments == json("{\"city\":\"Par"));

    // A schema request answered with tool calls is a tool round, not a schema failure.
    ChatRequest both = ask_schema();
    auto round = openai().decode(both, ok(data("openai/tool_calls.json")));
    REQUIRE(round);
    CHECK(round->json.is_null());
}

TEST_CASE("OpenAI decode: refusal and content_filter at HTTP 200 are policy failures", "[adapters][decode][openai]") {
    auto r = openai().decode(ask_schema(), ok(data("openai/refusal.json")));
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == FailureKind::policy);
    CHECK(r.error().reason == Reason::refusal);
    CHECK(r.error().category.empty());
    CHECK(r.error().message == "I'm sorry, I can't help with that request.");

    r = azure().decode(chat({user("x")}), ok(data("azure/content_filter_200.json")));
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == FailureKind::policy);
    CHECK(r.error().reason == Reason::content_filter);
    CHECK(r.error().category == "violence");
    CHECK(r.error().provider_code == "content_filter");
}

// ------------------------------------------------------------------ decode: Anthropic

TEST_CASE("Anthropic decode: text blocks, usage with cache tokens, finish", "[adapters][decode][anthropic]") {
    auto r = anthropic().decode(chat({user("Hi")}), ok(data("anthropic/success.json")));
    REQUIRE(r);
    CHECK(r->text == "Hello! How can I help?");
    CHECK(r->finish_reason == FinishReason::stop);
    CHECK(r->usage.input_tokens == 115);
    CHECK(r->usage.output_tokens == 9);
    CHECK(r->model == "claude-sonnet-4-5-20250929");
}

TEST_CASE("Anthropic decode: the forced tool's input object is the structured answer", "[adapters][decode][anthropic]") {
    auto r = anthropic().decode(ask_schema(), ok(data("anthropic/structured_tool.json")));
    REQUIRE(r);
    CHECK(r->json == json::parse(R"({"invoice":"INV-7","total":42.5})"));
    CHECK(json::parse(r->text) == r->json);
    CHECK(r->tool_calls.empty());
    CHECK(r->finish_reason == FinishReason::stop);

    r = anthropic().decode(ask_schema(), ok(data("anthropic/structured_truncated.json")));
    REQUIRE_FALSE(r);
    CHECK(r.error().reason == Reason::malformed_response);
    CHECK(r.error().message.find("truncated") != std::string::npos);

    // A model that answered in text instead: accepted when the text is JSON, schema_invalid when not.
    json text_answer = golden("anthropic/success.json");
    text_answer["content"] = json::parse(R"([{"type":"text","text":"{\"invoice\":\"A\",\"total\":1}"}])");
    r = anthropic().decode(ask_schema(), ok(text_answer.dump()));
    REQUIRE(r);
    CHECK(r->json.at("invoice") == "A");
    r = anthropic().decode(ask_schema(), ok(data("anthropic/success.json")));
    REQUIRE_FALSE(r);
    CHECK(r.error().reason == Reason::schema_invalid);
}

TEST_CASE("Anthropic decode: tool_use blocks become tool calls", "[adapters][decode][anthropic]") {
    auto r = anthropic().decode(tools_request(), ok(data("anthropic/tool_use.json")));
    REQUIRE(r);
    CHECK(r->finish_reason == FinishReason::tool_calls);
    CHECK(r->text == "Let me check.");
    REQUIRE(r->tool_calls.size() == 2);
    CHECK(r->tool_calls[0].id == "toolu_03");
    CHECK(r->tool_calls[0].name == "get_weather");
    CHECK(r->tool_calls[0].arguments == json{{"city", "Paris"}});
    CHECK(r->tool_calls[1].arguments == json::object());
}

TEST_CASE("Anthropic decode: refusal with category, context window exceeded", "[adapters][decode][anthropic]") {
    auto r = anthropic().decode(chat({user("x")}), ok(data("anthropic/refusal.json")));
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == FailureKind::policy);
    CHECK(r.error().reason == Reason::refusal);
    CHECK(r.error().category == "cyber");
    CHECK(r.error().message == "This request asks for working malware.");

    r = anthropic().decode(chat({user("x")}), ok(data("anthropic/refusal_null_category.json")));
    REQUIRE_FALSE(r);
    CHECK(r.error().reason == Reason::refusal);
    CHECK(r.error().category.empty());
    CHECK(r.error().message == "I can't help with that.");

    r = anthropic().decode(chat({user("x")}), ok(data("anthropic/context_window_exceeded.json")));
    REQUIRE_FALSE(r);
    CHECK(r.error().reason == Reason::context_too_long);
    CHECK(r.error().kind == FailureKind::terminal);
}

// ------------------------------------------------------------------ decode: Gemini

TEST_CASE("Gemini decode: text parts without thoughts, usage, model version", "[adapters][decode][gemini]") {
    auto r = gemini().decode(chat({user("Hi")}), ok(data("gemini/success.json")));
    REQUIRE(r);
    CHECK(r->text == "Hello! How can I help?");
    CHECK(r->finish_reason == FinishReason::stop);
    CHECK(r->usage.input_tokens == 8);
    CHECK(r->usage.output_tokens == 26);
    CHECK(r->model == "gemini-2.5-flash");
}

TEST_CASE("Gemini decode: structured output, truncation, function calls", "[adapters][decode][gemini]") {
    auto r = gemini().decode(ask_schema(), ok(data("gemini/structured.json")));
    REQUIRE(r);
    CHECK(r->json == json::parse(R"({"invoice":"INV-7","total":42.5})"));
    r = gemini().decode(ask_schema(), ok(data("gemini/structured_truncated.json")));
    REQUIRE_FALSE(r);
    CHECK(r.error().reason == Reason::malformed_response);
    CHECK(r.error().message.find("truncated") != std::string::npos);

    r = gemini().decode(tools_request(), ok(data("gemini/function_call.json")));
    REQUIRE(r);
    CHECK(r->finish_reason == FinishReason::tool_calls);
    REQUIRE(r->tool_calls.size() == 2);
    CHECK(r->tool_calls[0].id == "fc_1");
    CHECK(r->tool_calls[0].name == "get_weather");
    CHECK(r->tool_calls[0].arguments == json{{"city", "Paris"}});
    CHECK_FALSE(r->tool_calls[0].minted_id);
    // Gemini gave the second call no id: one is minted (stable, so decoding again gives it again).
    CHECK(r->tool_calls[1].minted_id);
    CHECK(r->tool_calls[1].id.rfind("call_", 0) == 0);
    CHECK(r->tool_calls[1].id == gemini().decode(tools_request(), ok(data("gemini/function_call.json")))->tool_calls[1].id);
    CHECK(r->tool_calls[1].arguments == json::object());
}

TEST_CASE("Gemini decode: blocked prompts and safety stops are policy failures with the category", "[adapters][decode][gemini]") {
    const ChatRequest req = chat({user("x")});
    auto r = gemini().decode(req, ok(data("gemini/prompt_blocked.json")));
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == FailureKind::policy);
    CHECK(r.error().reason == Reason::content_filter);
    CHECK(r.error().category == "PROHIBITED_CONTENT");

    for (auto [file, category] : {std::pair{"gemini/safety_finish.json", "SAFETY"},
                                  std::pair{"gemini/recitation_finish.json", "RECITATION"},
                                  std::pair{"gemini/image_safety_finish.json", "IMAGE_SAFETY"}}) {
        INFO(file);
        r = gemini().decode(req, ok(data(file)));
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == FailureKind::policy);
        CHECK(r.error().reason == Reason::content_filter);
        CHECK(r.error().category == category);
    }
    for (const char* reason : {"BLOCKLIST", "SPII", "PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT"}) {
        json body = golden("gemini/success.json");
        body["candidates"][0]["finishReason"] = reason;
        r = gemini().decode(req, ok(body.dump()));
        REQUIRE_FALSE(r);
        CHECK(r.error().category == reason);
    }
    // Non-policy stops are answers.
    json other = golden("gemini/success.json");
    other["candidates"][0]["finishReason"] = "MAX_TOKENS";
    auto len = gemini().decode(req, ok(other.dump()));
    REQUIRE(len);
    CHECK(len->finish_reason == FinishReason::length);
}

// ------------------------------------------------------------------ decode: garbage

TEST_CASE("decode turns any unusable body into malformed_response, never an exception", "[adapters][decode][garbage]") {
    std::string megabyte(1 << 20, '\0');
    std::uint32_t seed = 12345;
    for (auto& c : megabyte) {
        seed = seed * 1664525u + 1013904223u;
        c = static_cast<char>(seed >> 24);
    }
    const std::vector<std::string> bodies = {
        "",
        "<html><body><h1>502 Bad Gateway</h1></body></html>",
        R"({"choices":[{"message":{"content":"hi")",
        std::string(100000, '['),
        std::string(5000, '[') + std::string(5000, ']'),
        megabyte,
        "[]",
        "null",
        "42",
        R"({"choices":"x"})",
        R"({"choices":[{"message":null}]})",
        R"({"choices":[{"message":{"tool_calls":[{"function":{"arguments":"{}"}}]}}]})",
        R"({"content":5})",
        R"({"content":[{"type":"tool_use","input":{}}]})",
        R"({"candidates":{}})",
        R"({"candidates":[{"content":{"parts":[{"functionCall":{"args":{}}}]}}]})",
        R"({"error":{"message":"upstream failed"}})",
    };
    const ChatRequest req = ask_schema();
    for (std::size_t i = 0; i < bodies.size(); ++i) {
        INFO("body #" << i);
        for (const Result<ChatResponse>& r :
             {openai().decode(req, ok(bodies[i])), anthropic().decode(req, ok(bodies[i])),
              gemini().decode(req, ok(bodies[i])), OpenAICompatible::ollama("m").decode(req, ok(bodies[i]))}) {
            REQUIRE_FALSE(r.has_value());
            CHECK(r.error().reason == Reason::malformed_response);
            CHECK(r.error().kind == FailureKind::transient);
            CHECK(valid_utf8(r.error().message));
        }
    }
}

TEST_CASE("decode refuses JSON nested deeper than it can safely copy", "[adapters][decode][garbage]") {
    // Valid JSON, 100000 levels deep inside a well-formed envelope: parsing is
    // iterative, but copying the value into the response would recurse and
    // overflow the stack, so the adapter must refuse it as malformed.
    const std::string deep = std::string(100000, '[') + std::string(100000, ']');
    const std::string anthropic_body = R"({"type":"message","content":[{"type":"tool_use","id":"t","name":"answer","input":{"a":)" +
                                       deep + R"(}}],"stop_reason":"tool_use"})";
    auto r = anthropic().decode(ask_schema(), ok(anthropic_body));
    REQUIRE_FALSE(r);
    CHECK(r.error().reason == Reason::malformed_response);
    const std::string gemini_body = R"({"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":{"a":)" +
                                    deep + R"(}}}]},"finishReason":"STOP"}]})";
    r = gemini().decode(tools_request(), ok(gemini_body));
    REQUIRE_FALSE(r);
    CHECK(r.error().reason == Reason::malformed_response);
    // Ordinary nesting is fine.
    const std::string shallow = std::string(100, '[') + std::string(100, ']');
    r = gemini().decode(tools_request(), ok(R"({"candidates":[{"content":{"parts":[{"functionCall":{"name":"f","args":{"a":)" +
                                             shallow + R"(}}}]},"finishReason":"STOP"}]})"));
    REQUIRE(r);
    CHECK(r->tool_calls.at(0).arguments.at("a").is_array());
}

// ------------------------------------------------------------------ classify

TEST_CASE("classify: OpenAI error codes", "[adapters][classify][openai]") {
    Failure f = classified(openai(), 429, data("openai/error_insufficient_quota.json"));
    CHECK(f.kind == FailureKind::terminal);
    CHECK(f.reason == Reason::quota_exhausted);
    CHECK(f.provider_code == "insufficient_quota");
    CHECK(f.message == "You exceeded your current quota, please check your plan and billing details.");

    f = classified(openai(), 429, data("openai/error_spend_limit.json"));
    CHECK(f.reason == Reason::quota_exhausted);

    f = classified(openai(), 429, data("openai/error_rate_limit.json"));
    CHECK(f.kind == FailureKind::transient);
    CHECK(f.reason == Reason::rate_limited);
    CHECK(f.provider_code == "rate_limit_exceeded");
    REQUIRE(f.retry_after.has_value());
    CHECK(*f.retry_after == std::chrono::minutes(6));
    // A header's Retry-After is not overridden by the message's.
    Failure with_header = classified(openai(), 429, data("openai/error_rate_limit.json"), {{"retry-after-ms", "1500"}});
    CHECK(*with_header.retry_after == std::chrono::milliseconds(1500));

    f = classified(openai(), 400, data("openai/error_context_length.json"));
    CHECK(f.kind == FailureKind::terminal);
    CHECK(f.reason == Reason::context_too_long);
    CHECK(f.provider_code == "context_length_exceeded");

    f = classified(openai(), 400, data("openai/error_invalid_prompt.json"));
    CHECK(f.kind == FailureKind::policy);
    CHECK(f.reason == Reason::content_filter);
    CHECK(f.provider_code == "invalid_prompt");

    f = classified(openai(), 400, data("openai/error_model_not_found.json"));
    CHECK(f.reason == Reason::not_found);
    CHECK(f.kind == FailureKind::terminal);

    f = classified(openai(), 503, data("openai/error_overloaded.json"));
    CHECK(f.kind == FailureKind::transient);
    CHECK(f.reason == Reason::overloaded);

    // An ordinary 400 keeps the generic classification and gains the message.
    f = classified(openai(), 400, R"({"error":{"message":"Unknown parameter: 'foo'.","type":"invalid_request_error","param":"foo","code":"unknown_parameter"}})");
    CHECK(f.reason == Reason::bad_request);
    CHECK(f.provider_code == "unknown_parameter");
    CHECK(f.message == "Unknown parameter: 'foo'.");
}

TEST_CASE("classify: Azure content filter (both spellings), 429 wait, missing deployment", "[adapters][classify][azure]") {
    Failure f = classified(azure(), 400, data("azure/error_content_filter.json"));
    CHECK(f.kind == FailureKind::policy);
    CHECK(f.reason == Reason::content_filter);
    CHECK(f.category == "violence");
    CHECK(f.provider_code == "content_filter");

    f = classified(azure(), 400, data("azure/error_content_filter_spec.json"));
    CHECK(f.kind == FailureKind::policy);
    CHECK(f.category == "hate,jailbreak");

    f = classified(azure(), 400, data("azure/error_inner_only.json"));
    CHECK(f.kind == FailureKind::policy);
    CHECK(f.category == "self_harm");
    CHECK(f.provider_code == "ResponsibleAIPolicyViolation");

    f = classified(azure(), 429, data("azure/error_429.json"));
    CHECK(f.reason == Reason::rate_limited);
    CHECK(f.provider_code == "429");
    REQUIRE(f.retry_after.has_value());
    CHECK(*f.retry_after == std::chrono::seconds(37));

    f = classified(azure(), 404, data("azure/error_deployment_not_found.json"));
    CHECK(f.reason == Reason::not_found);
    CHECK(f.provider_code == "DeploymentNotFound");
}

TEST_CASE("classify: local OpenAI-compatible servers", "[adapters][classify][local]") {
    const auto ollama = OpenAICompatible::ollama("llama3.1");
    const auto llama = OpenAICompatible::llama_cpp("m");
    const auto vllm = OpenAICompatible::vllm("m", "http://h:8000/v1");

    Failure f = classified(llama, 400, data("local/llamacpp_exceed_context.json"));
    CHECK(f.reason == Reason::context_too_long);
    CHECK(f.provider_code == "exceed_context_size_error");
    f = classified(vllm, 400, data("local/vllm_context.json"));
    CHECK(f.reason == Reason::context_too_long);
    f = classified(vllm, 400, data("local/vllm_old_context.json"));
    CHECK(f.reason == Reason::context_too_long);
    CHECK(f.message.find("maximum context length is 4096") != std::string::npos);
    f = classified(ollama, 400, R"({"error":{"message":"x","type":"exceed_context_size_error","param":null,"code":null}})");
    CHECK(f.reason == Reason::context_too_long);

    f = classified(llama, 503, data("local/llamacpp_loading.json"));
    CHECK(f.kind == FailureKind::transient);
    CHECK(f.reason == Reason::overloaded);
    f = classified(llama, 501, data("local/llamacpp_not_supported.json"));
    CHECK(f.kind == FailureKind::terminal);
    CHECK(f.reason == Reason::bad_request);
    f = classified(ollama, 404, data("local/ollama_not_found.json"));
    CHECK(f.reason == Reason::not_found);
    CHECK(f.provider_code == "not_found_error");
    CHECK(f.message == "model \"llama9\" not found, try pulling it first");
}

TEST_CASE("classify: Anthropic error types", "[adapters][classify][anthropic]") {
    Failure f = classified(anthropic(), 529, data("anthropic/error_overloaded.json"));
    CHECK(f.kind == FailureKind::transient);
    CHECK(f.reason == Reason::overloaded);
    CHECK(f.provider_code == "overloaded_error");
    CHECK(f.message == "Overloaded");

    f = classified(anthropic(), 402, data("anthropic/error_billing.json"));
    CHECK(f.kind == FailureKind::terminal);
    CHECK(f.reason == Reason::quota_exhausted);

    f = classified(anthropic(), 400, data("anthropic/error_prompt_too_long.json"));
    CHECK(f.reason == Reason::context_too_long);
    CHECK(f.kind == FailureKind::terminal);
    f = classified(anthropic(), 400, data("anthropic/error_exceed_context.json"));
    CHECK(f.reason == Reason::context_too_long);

    f = classified(anthropic(), 400, R"({"type":"error","error":{"type":"invalid_request_error","message":"You have reached your specified workspace spend limit."}})");
    CHECK(f.reason == Reason::quota_exhausted);

    f = classified(anthropic(), 429, data("anthropic/error_rate_limit.json"));
    CHECK(f.reason == Reason::rate_limited);
    CHECK(f.kind == FailureKind::transient);
    CHECK(f.provider_code == "rate_limit_error");

    f = classified(anthropic(), 400, data("anthropic/error_invalid_request.json"));
    CHECK(f.reason == Reason::bad_request);
    CHECK(f.provider_code == "invalid_request_error");
}

TEST_CASE("classify: Gemini status and details", "[adapters][classify][gemini]") {
    Failure f = classified(gemini(), 429, data("gemini/error_rate_limit.json"));
    CHECK(f.kind == FailureKind::transient);
    CHECK(f.reason == Reason::rate_limited);
    CHECK(f.provider_code == "RESOURCE_EXHAUSTED");
    REQUIRE(f.retry_after.has_value());
    CHECK(*f.retry_after == std::chrono::seconds(36));

    Failure header_wait = classified(gemini(), 429, data("gemini/error_rate_limit.json"), {{"Retry-After", "5"}});
    CHECK(*header_wait.retry_after == std::chrono::seconds(5));

    f = classified(gemini(), 429, data("gemini/error_daily_quota.json"));
    CHECK(f.kind == FailureKind::terminal);
    CHECK(f.reason == Reason::quota_exhausted);
    REQUIRE(f.retry_after.has_value());
    CHECK(*f.retry_after == std::chrono::milliseconds(1500));

    f = classified(gemini(), 429, data("gemini/error_quota_message.json"));
    CHECK(f.reason == Reason::quota_exhausted);

    f = classified(gemini(), 503, data("gemini/error_unavailable.json"));
    CHECK(f.kind == FailureKind::transient);
    CHECK(f.reason == Reason::overloaded);
    f = classified(gemini(), 503, data("gemini/error_array_form.json"));
    CHECK(f.reason == Reason::overloaded);

    f = classified(gemini(), 400, data("gemini/error_input_token_count.json"));
    CHECK(f.kind == FailureKind::terminal);
    CHECK(f.reason == Reason::context_too_long);
    CHECK(f.provider_code == "INVALID_ARGUMENT");
}

TEST_CASE("classify never throws on garbage and keeps the generic classification", "[adapters][classify][garbage]") {
    std::string junk(1 << 20, 'x');
    for (std::size_t i = 0; i < junk.size(); i += 7) junk[i] = static_cast<char>(i % 256);
    const std::vector<std::string> bodies = {
        "",
        "<!DOCTYPE html><html><head><title>502</title></head><body>Bad gateway\r\n\tcloudflare</body></html>",
        R"({"error":{"message":"cut of)",
        std::string(200000, '{'),
        "{\"error\":" + std::string(3000, '[') + std::string(3000, ']') + "}",
        junk,
        R"({"error":[1,2,3]})",
        R"({"error":{"message":{"nested":true},"code":{"x":1},"details":"no"}})",
        R"({"error":{"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"soon"}]}})",
    };
    for (int status : {400, 429, 500, 503, 529}) {
        for (std::size_t i = 0; i < bodies.size(); ++i) {
            if (i == 5 && status != 429) continue;  // the megabyte once is enough (it is slow under sanitizers)
            INFO("status " << status << ", body #" << i);
            const Failure g = generic(status);
            for (Failure f : {classified(openai(), status, bodies[i]), classified(anthropic(), status, bodies[i]),
                              classified(gemini(), status, bodies[i]), classified(azure(), status, bodies[i])}) {
                if (i == bodies.size() - 1) continue;  // the RetryInfo body is Gemini's own status
                CHECK(f.reason == g.reason);
                CHECK(f.kind == g.kind);
                CHECK(f.message.size() <= 400);
                CHECK(valid_utf8(f.message));
                CHECK_FALSE(f.retry_after.has_value());
            }
        }
    }
    // An HTML gateway page is described, not lost.
    Failure html = classified(openai(), 502, bodies[1]);
    CHECK(html.message.find("HTTP 502") != std::string::npos);
    CHECK(html.message.find("Bad gateway cloudflare") != std::string::npos);
    CHECK(classified(anthropic(), 500, "").message.find("empty body") != std::string::npos);
}

TEST_CASE("the API key never appears in a Failure, even when the provider echoes it", "[adapters][secrets]") {
    auto clean = [](const Failure& f) {
        INFO(f.message);
        CHECK(f.message.find(kKey) == std::string::npos);
        CHECK(f.message.find("SECRET") == std::string::npos);
    };
    Failure f = classified(openai(), 401, data("openai/error_bad_key.json"));
    clean(f);
    CHECK(f.message.find("Incorrect API key provided: [redacted].") == 0);
    CHECK(f.reason == Reason::auth);

    const std::string echo = "invalid x-api-key " + kKey;
    clean(classified(anthropic(), 401, json{{"type", "error"}, {"error", {{"type", "authentication_error"}, {"message", echo}}}}.dump()));
    clean(classified(gemini(), 400, json{{"error", {{"code", 400}, {"message", "API key not valid: " + kKey}, {"status", "INVALID_ARGUMENT"}}}}.dump()));
    clean(classified(azure(), 401, "<html>denied for key " + kKey + "</html>"));
    // At the truncation boundary, and split by a control character.
    clean(classified(openai(), 400, json{{"error", {{"message", std::string(295, 'a') + kKey}}}}.dump()));
    clean(classified(openai(), 400, json{{"error", {{"message", kKey.substr(0, 10) + "\x01" + kKey.substr(10)}}}}.dump()));
    // Echoed in a 200 refusal or in a non-JSON structured answer.
    json refusal = golden("openai/refusal.json");
    refusal["choices"][0]["message"]["refusal"] = "I will not use " + kKey;
    auto r = openai().decode(ask_schema(), ok(refusal.dump()));
    REQUIRE_FALSE(r);
    clean(r.error());
    json prose = golden("openai/structured_not_json.json");
    prose["choices"][0]["message"]["content"] = "your key is " + kKey;
    r = openai().decode(ask_schema(), ok(prose.dump()));
    REQUIRE_FALSE(r);
    clean(r.error());
}

// ------------------------------------------------------------------ internals users rely on through messages

TEST_CASE("clean_message strips controls, fixes UTF-8 and cuts at a code point", "[adapters][detail]") {
    CHECK(detail::wire::clean_message("line one\r\n\tline\x07 two  ", {}) == "line one line two");
    CHECK(detail::wire::clean_message("bad \xff\xfe byte", {}) == "bad ?? byte");
    CHECK(detail::wire::clean_message("c1\xc2\x85x", {}) == "c1x");
    const std::string euros = std::string(10, 'a') + "\xe2\x82\xac\xe2\x82\xac";  // a...a€€
    const std::string cut = detail::wire::clean_message(euros, {}, 12);
    CHECK(cut == std::string(10, 'a') + "...");
    CHECK(valid_utf8(cut));
    CHECK(detail::wire::clean_message(std::string(1000, 'z'), {}).size() == detail::wire::max_message_bytes + 3);
}

TEST_CASE("wait hints and Google durations parse to milliseconds", "[adapters][detail]") {
    using std::chrono::milliseconds;
    CHECK(detail::wire::parse_google_duration("36s") == milliseconds(36000));
    CHECK(detail::wire::parse_google_duration("0.25s") == milliseconds(250));
    CHECK_FALSE(detail::wire::parse_google_duration("36").has_value());
    CHECK_FALSE(detail::wire::parse_google_duration("s").has_value());
    CHECK_FALSE(detail::wire::parse_google_duration("").has_value());
    CHECK(detail::wire::wait_hint("Please try again in 20ms.") == milliseconds(20));
    CHECK(detail::wire::wait_hint("Please try again in 1.5s.") == milliseconds(1500));
    CHECK(detail::wire::wait_hint("Please try again in 1h2m3s") == milliseconds(3723000));
    CHECK(detail::wire::wait_hint("Please retry after 86400 seconds.") == milliseconds(86400000));
    CHECK_FALSE(detail::wire::wait_hint("Please try again later.").has_value());
    CHECK_FALSE(detail::wire::wait_hint("retry after a while").has_value());
}

// ------------------------------------------------------------------ local adapters

TEST_CASE("StaticReply answers with its text, parsed as JSON for structured requests", "[adapters][static]") {
    StaticReply busy{R"({"status":"busy"})"};
    auto r = busy.respond(ask_schema());
    REQUIRE(r);
    CHECK(r->text == R"({"status":"busy"})");
    CHECK(r->json == json{{"status", "busy"}});
    CHECK(r->finish_reason == FinishReason::stop);
    CHECK(r->model == "static");
    auto plain = busy.respond(chat({user("x")}));
    REQUIRE(plain);
    CHECK(plain->json.is_null());
    auto prose = StaticReply{"We are busy, try later."}.respond(ask_schema());
    REQUIRE(prose);
    CHECK(prose->json.is_null());
    CHECK(busy.provider() == "static");
}

TEST_CASE("HardError always returns its failure", "[adapters][static]") {
    Failure down = Failure::of(Reason::server_error, "down for maintenance");
    down.kind = FailureKind::terminal;
    HardError h{down};
    for (int i = 0; i < 2; ++i) {
        auto r = h.respond(chat({user("x")}));
        REQUIRE_FALSE(r);
        CHECK(r.error().reason == Reason::server_error);
        CHECK(r.error().kind == FailureKind::terminal);
        CHECK(r.error().message == "down for maintenance");
    }
}

TEST_CASE("ReplyCache keys by content, evicts the least recently used, and CachedReply serves it", "[adapters][cache]") {
    ChatRequest a = chat({user("hello")});
    ChatRequest b = chat({user("hello!")});
    ChatRequest c = chat({failover::system_prompt("s"), user("hello")});
    // The key is stable across processes and platforms: a fixed request has a fixed key.
    CHECK(ReplyCache::key(a) == "4b20e5a149ae1dd648282aeb5318fb75");
    ChatRequest other_tenant = chat({user("hello")});
    other_tenant.tenant = "other";
    CHECK(ReplyCache::key(a) == ReplyCache::key(other_tenant));
    CHECK(ReplyCache::key(a) != ReplyCache::key(b));
    CHECK(ReplyCache::key(a) != ReplyCache::key(c));
    ChatRequest with_schema = a;
    with_schema.schema = invoice_schema();
    CHECK(ReplyCache::key(a) != ReplyCache::key(with_schema));
    ChatRequest with_tool = a;
    with_tool.tools = {Tool{"f", "", json{{"type", "object"}}}};
    CHECK(ReplyCache::key(a) != ReplyCache::key(with_tool));
    // Field boundaries matter: ("ab","c") is not ("a","bc").
    CHECK(ReplyCache::key(chat({user("ab"), user("c")})) !=
          ReplyCache::key(chat({user("a"), user("bc")})));

    auto cache = std::make_shared<ReplyCache>(2);
    CachedReply cached{cache};
    auto miss = cached.respond(a);
    REQUIRE_FALSE(miss);
    CHECK(miss.error().reason == Reason::cache_miss);  // a skip for the router, not a failure
    CHECK(is_skip_reason(miss.error().reason));
    CHECK(miss.error().message == "no cached answer for this request");

    ChatResponse answer;
    answer.text = "hi there";
    answer.model = "gpt-4o";
    answer.route = "primary";
    Attempt first;
    first.route = "primary";
    first.ok = true;
    answer.attempts = {first};
    cache->store(a, answer);
    auto hit = cached.respond(a);
    REQUIRE(hit);
    CHECK(hit->text == "hi there");
    CHECK(hit->model == "gpt-4o");
    CHECK(hit->route.empty());
    CHECK(hit->attempts.empty());

    ChatResponse other;
    other.text = "b";
    cache->store(b, other);
    CHECK(cache->lookup(a).has_value());  // a is now the most recently used
    other.text = "c";
    cache->store(c, other);               // evicts b
    CHECK(cache->size() == 2);
    CHECK_FALSE(cache->lookup(b).has_value());
    CHECK(cache->lookup(a)->text == "hi there");
    CHECK(cache->lookup(c)->text == "c");
    answer.text = "updated";
    cache->store(a, answer);
    CHECK(cache->lookup(a)->text == "updated");
    CHECK(cache->size() == 2);
    cache->clear();
    CHECK(cache->size() == 0);

    CHECK_THROWS_AS(ReplyCache(0), std::invalid_argument);
    CHECK_THROWS_AS(CachedReply(nullptr), std::invalid_argument);
}

TEST_CASE("ReplyCache is safe under concurrent store and lookup", "[adapters][cache]") {
    auto cache = std::make_shared<ReplyCache>(32);
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 400; ++i) {
                const std::string q = std::to_string((i * 7 + t) % 64);
                ChatRequest req = chat({user(q)});
                ChatResponse res;
                res.text = "answer " + q;
                cache->store(req, res);
                if (auto hit = cache->lookup(req); hit && hit->text != "answer " + q) ++wrong;
            }
        });
    }
    for (auto& th : threads) th.join();
    CHECK(wrong == 0);
    CHECK(cache->size() <= 32);
}

TEST_CASE("redact also removes the start of a key that was cut short upstream", "[adapters][secrets]") {
    const std::string key = "gw-" + std::string(90, 'k') + "-tail";  // no known prefix, longer than any cap
    std::string cut = "HTTP 400: " + key.substr(0, 61) + "...";
    detail::wire::redact(cut, key);
    CHECK(cut == "HTTP 400: [redacted]...");
    std::string twice = key + " and " + key.substr(0, 20);
    detail::wire::redact(twice, key);
    CHECK(twice == "[redacted] and [redacted]");
    std::string unrelated = "gw-kkk is not the key";  // shorter than the 12-character run: left alone
    detail::wire::redact(unrelated, key);
    CHECK(unrelated == "gw-kkk is not the key");
}
