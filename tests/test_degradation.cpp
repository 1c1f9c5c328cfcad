// SPDX-License-Identifier: MIT
// No silent degradation, through real HTTP against the loopback mocks (which
// refuse what each real API refuses): structured output is sent in a form the
// provider accepts; a route without its key fails at construction; a hung
// primary cannot starve the rest of the chain; every request a provider
// receives is one listed attempt; x-should-retry is honoured both ways; a cache
// miss is a skip, not a failure; tool calls keep their ids and signatures
// across providers, and are checked against the tools offered.
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include <failover/detail/strict_schema.hpp>

#include "support/catch.hpp"
#include "support/fakes.hpp"
#include "support/loopback.hpp"
#include "support/mock_provider.hpp"

using namespace failover;
using namespace std::chrono_literals;
using failover_mock::Fault;
using failover_mock::Json;
using failover_mock::MockProvider;
using failover_test::RecordingSink;

namespace {

struct Fixture : failover_test::LoopbackFixture {
    Fixture() : LoopbackFixture(7) {}
};

ChatRequest ask(std::string text = "Say hello") {
    ChatRequest r;
    r.messages = {user(std::move(text))};
    r.tenant = "acme";
    return r;
}

Json sent_body(MockProvider& mock, const std::string& route) {
    auto last = mock.route(route).last_request();
    REQUIRE(last);
    return last->json();
}

const Tool kWeather{"get_weather", "Current weather in a city",
                    Json::parse(R"({"type":"object","properties":{"city":{"type":"string"}},"required":["city"],
                                    "additionalProperties":false})")};

}  // namespace

// ---- 1. structured output the provider accepts -----------------------------------------------

TEST_CASE("degradation: README's schema, outside OpenAI's strict subset, is answered by OpenAI with strict off") {
    Fixture fx;
    fx.mock.route("primary").otherwise(Fault::ok_json({{"total", 12.5}}));
    Router router{fx.options(), Route{"primary", fx.openai("primary"), fx.http},
                  Route{"secondary", fx.anthropic("secondary"), fx.http}};
    ChatRequest req = ask("Extract the invoice fields: ACME, total 12.50");
    req.schema = Schema::parse(R"({"type":"object","required":["total"]})");  // README's example
    auto r = router.route_with_fallback(req);
    REQUIRE(r);
    CHECK(r->route == "primary");
    CHECK(r->json == Json{{"total", 12.5}});
    CHECK(fx.mock.route("secondary").requests() == 0);
    const Json rf = sent_body(fx.mock, "primary")["response_format"];
    CHECK(rf["json_schema"]["strict"] == false);
    // The caller's own schema, unchanged.
    CHECK(rf["json_schema"]["schema"] == Json::parse(R"({"type":"object","required":["total"]})"));
}

TEST_CASE("degradation: a schema made strict-ready is sent strict, and the answer is still judged by the caller's schema") {
    Fixture fx;
    // Valid under the strict form; the caller's schema also forbids a negative total.
    fx.mock.route("primary").then(Fault::ok_json({{"total", -3}})).then(Fault::ok_json({{"total", 3}}));
    Router router{fx.options(), Route{"primary", fx.openai("primary"), fx.http}};
    ChatRequest req = ask();
    req.schema = Schema::parse(R"({"type":"object","properties":{"total":{"type":"number","minimum":0}},"required":["total"]})");
    auto r = router.route_with_fallback(req);
    REQUIRE(r);
    CHECK(r->json == Json{{"total", 3}});
    REQUIRE(r->attempts.size() == 2);
    CHECK(r->attempts[0].reason == Reason::schema_invalid);
    const Json js = sent_body(fx.mock, "primary")["response_format"]["json_schema"];
    CHECK(js["strict"] == true);
    CHECK(js["schema"]["additionalProperties"] == false);
}

// ---- 2. keys ---------------------------------------------------------------------------------

TEST_CASE("degradation: a hosted route with an empty key fails at construction, naming the route and the variable") {
    ::unsetenv("FAILOVER_TEST_UNSET_KEY");
    auto http = std::make_shared<CurlTransport>();
    std::string message;
    try {
        Route r{"primary", OpenAI{{.model = "gpt-4o", .api_key = env("FAILOVER_TEST_UNSET_KEY")}}, http};
    } catch (const std::invalid_argument& e) {
        message = e.what();
    }
    CHECK(message.find("route 'primary'") != std::string::npos);
    CHECK(message.find("FAILOVER_TEST_UNSET_KEY") != std::string::npos);
}

TEST_CASE("degradation: a key given where a variable name is expected is refused, without echoing it") {
    const std::string key = "sk-proj-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c";
    std::string message;
    try {
        (void)env(key.c_str());
    } catch (const std::invalid_argument& e) {
        message = e.what();
    }
    CHECK(message.find("looks like an API key") != std::string::npos);
    CHECK(message.find(key) == std::string::npos);
    CHECK(message.find("4f9a8b7c") == std::string::npos);
}

// ---- 3. deadlines ------------------------------------------------------------------------------

TEST_CASE("degradation: with default options a hung primary leaves the secondary its share of the deadline") {
    // Default RouterOptions and RouteOptions; the transport "hangs" by using the whole timeout it is
    // given on the manual clock, as a real hung connection would.
    auto clock = std::make_shared<ManualClock>();
    auto hung = std::make_shared<failover_test::ScriptedTransport>();
    hung->otherwise([clock](const HttpRequest&, Deadline d) -> Result<HttpResponse> {
        clock->advance(d.timeout);
        return Failure::of(Reason::timeout, "no response");
    });
    auto healthy = std::make_shared<failover_test::ScriptedTransport>(clock.get(), 800ms);
    RouterOptions o;
    o.clock = clock;
    o.sleeper = clock;
    o.seed = 1;
    Router router{o, Route{"primary", failover_test::FakeAdapter{}, hung},
                  Route{"secondary", failover_test::FakeAdapter{}, healthy}, Route{"canned", StaticReply{"busy"}}};
    const auto t0 = clock->now();
    auto r = router.route_with_fallback(ask());
    REQUIRE(r);
    CHECK(r->route == "secondary");
    CHECK(clock->now() - t0 <= 60s);
    // The primary had its share (half of the deadline between two providers), then one attempt.
    REQUIRE(hung->deadlines().size() == 1);
    CHECK(hung->deadlines()[0].timeout == 30s);
    // The secondary had a real chance, and its breaker saw only the success.
    REQUIRE(healthy->deadlines().size() == 1);
    CHECK(healthy->deadlines()[0].timeout >= 10s);
    CHECK(router.route<1>().breaker().window_counts(clock->now()) == std::pair<std::uint64_t, std::uint64_t>{1, 0});
}

TEST_CASE("degradation: a hung primary over real HTTP is cut at its share, and the secondary answers in time") {
    Fixture fx;
    fx.mock.route("primary").otherwise(Fault::hang());
    fx.mock.route("secondary").otherwise(Fault::ok("from secondary").delayed(50ms));
    RouterOptions o;  // the real clock: the transport's timeouts are real
    o.seed = 2;
    o.timeout = 3s;   // the defaults scaled down 20x: chain 60 s -> 3 s, attempt 30 s -> 1.5 s
    RouteOptions ro;
    ro.attempt_timeout = 1500ms;
    ro.backoff = Backoff{25ms, 400ms};
    Router router{o, Route{"primary", fx.openai("primary"), fx.http, ro},
                  Route{"secondary", fx.anthropic("secondary"), fx.http, ro}};
    const auto t0 = std::chrono::steady_clock::now();
    auto r = router.route_with_fallback(ask());
    const auto took = std::chrono::steady_clock::now() - t0;
    REQUIRE(r);
    CHECK(r->route == "secondary");
    CHECK(took < 3s);
    CHECK(router.route<1>().breaker().window_counts(std::chrono::steady_clock::now()).second == 0);
}

// ---- 4. wire truth ---------------------------------------------------------------------------

TEST_CASE("degradation: a reset after the request was read is one listed attempt, never a silent re-send") {
    Fixture fx;
    // Request 1 opens a keep-alive connection; request 2 is read on it and the connection is reset.
    fx.mock.route("primary").then(Fault::ok("first")).then(Fault::reset()).otherwise(Fault::ok("after"));
    RouteOptions ro;
    ro.backoff = Backoff{1ms, 1ms};
    Router router{fx.options(), Route{"primary", fx.openai("primary"), fx.http, ro}};
    router.add_sink(fx.sink);
    std::size_t listed = 0;
    for (int i = 0; i < 2; ++i) {
        auto r = router.route_with_fallback(ask());
        REQUIRE(r);
        listed += r->attempts.size();
    }
    CHECK(fx.mock.route("primary").requests() == listed);
    CHECK(fx.sink->count("attempt") == listed);
}

// ---- 5. x-should-retry, one classification -----------------------------------------------------

TEST_CASE("degradation: x-should-retry false stops a retry in every adapter, and true starts one") {
    Fixture fx;
    RouteOptions ro;
    ro.backoff = Backoff{1ms, 1ms};
    SECTION("OpenAI 503 server_is_overloaded with x-should-retry: false") {
        fx.mock.route("p").otherwise(Fault::status(503).with_header("x-should-retry", "false"));
        Router router{fx.options(), Route{"p", fx.openai("p"), fx.http, ro}, Route{"canned", StaticReply{"busy"}}};
        auto r = router.route_with_fallback(ask());
        REQUIRE(r);
        CHECK(fx.mock.route("p").requests() == 1);
    }
    SECTION("Anthropic 529 overloaded_error with x-should-retry: false") {
        fx.mock.route("p").otherwise(Fault::status(529).with_header("x-should-retry", "false"));
        Router router{fx.options(), Route{"p", fx.anthropic("p"), fx.http, ro}, Route{"canned", StaticReply{"busy"}}};
        auto r = router.route_with_fallback(ask());
        REQUIRE(r);
        CHECK(fx.mock.route("p").requests() == 1);
    }
    SECTION("Gemini 503 UNAVAILABLE with x-should-retry: false") {
        fx.mock.route("p").otherwise(Fault::status(503).with_header("x-should-retry", "false"));
        Router router{fx.options(), Route{"p", fx.gemini("p", "gemini-2.5-flash"), fx.http, ro},
                      Route{"canned", StaticReply{"busy"}}};
        auto r = router.route_with_fallback(ask());
        REQUIRE(r);
        CHECK(fx.mock.route("p").requests() == 1);
    }
    SECTION("OpenAI 404 model_not_found with x-should-retry: true is retried, as by the other adapters") {
        fx.mock.route("p").then(Fault::status(404).with_header("x-should-retry", "true")).otherwise(Fault::ok("found"));
        Router router{fx.options(), Route{"p", fx.openai("p"), fx.http, ro}};
        auto r = router.route_with_fallback(ask());
        REQUIRE(r);
        CHECK(r->text == "found");
        CHECK(fx.mock.route("p").requests() == 2);
    }
}

// ---- 6. cache misses ---------------------------------------------------------------------------

TEST_CASE("degradation: cache misses in front of the chain are skips: never attempts, never breaker failures") {
    Fixture fx;
    auto cache = std::make_shared<ReplyCache>(64);
    RouterOptions o = fx.options();
    o.on_answer = [cache](const ChatRequest& q, const ChatResponse& a) { cache->store(q, a); };
    Router router{o, Route{"cache", CachedReply{cache}}, Route{"primary", fx.openai("primary"), fx.http}};
    router.add_sink(fx.sink);
    for (int i = 0; i < 8; ++i) {
        auto r = router.route_with_fallback(ask("question " + std::to_string(i)));
        REQUIRE(r);
        CHECK(r->route == "primary");
        REQUIRE(r->attempts.size() == 1);  // the miss is not an attempt
        CHECK(r->attempts[0].route == "primary");
    }
    CHECK(router.route<0>().breaker().state() == BreakerState::closed);
    auto hit = router.route_with_fallback(ask("question 3"));
    REQUIRE(hit);
    CHECK(hit->route == "cache");
    CHECK(fx.mock.route("primary").requests() == 8);
}

// ---- 7. tool calls across providers ------------------------------------------------------------

TEST_CASE("degradation: Gemini tool calls without ids fail over to OpenAI and Anthropic, and keep their signatures for Gemini") {
    Fixture fx;
    fx.mock.route("gemini").then(Fault::tool_call("get_weather", {{"city", "Paris"}})).otherwise(Fault::ok("21 C in Paris"));
    fx.mock.route("oai").otherwise(Fault::ok("21 C in Paris"));
    fx.mock.route("ant").otherwise(Fault::ok("21 C in Paris"));
    Router gemini{fx.options(), Route{"gemini", fx.gemini("gemini", "gemini-3-pro-preview"), fx.http}};
    ChatRequest req = ask("What is the weather in Paris?");
    req.tools = {kWeather};
    auto first = gemini.route_with_fallback(req);
    REQUIRE(first);
    REQUIRE(first->tool_calls.size() == 1);
    const ToolCall call = first->tool_calls[0];
    CHECK_FALSE(call.id.empty());  // minted: OpenAI and Anthropic need one

    ChatRequest next = req;
    next.messages.push_back(assistant(first->text, first->tool_calls));
    next.messages.push_back(tool_result(call.id, call.name, R"({"temp_c":21})"));

    Router openai{fx.options(), Route{"oai", fx.openai("oai"), fx.http}};
    auto o = openai.route_with_fallback(next);
    REQUIRE(o);
    CHECK(o->text == "21 C in Paris");
    CHECK(sent_body(fx.mock, "oai").dump().find("thoughtSignature") == std::string::npos);

    Router anthropic{fx.options(), Route{"ant", fx.anthropic("ant"), fx.http}};
    auto a = anthropic.route_with_fallback(next);
    REQUIRE(a);
    CHECK(a->text == "21 C in Paris");

    auto g = gemini.route_with_fallback(next);
    REQUIRE(g);
    CHECK(g->text == "21 C in Paris");
    const Json parts = sent_body(fx.mock, "gemini")["contents"][1]["parts"];
    REQUIRE(parts.size() == 1);
    CHECK(parts[0]["thoughtSignature"] == "sig-gemini-gemini-3-pro-preview-1");
    CHECK_FALSE(parts[0]["functionCall"].contains("id"));  // Gemini gave none: none is sent back
}

TEST_CASE("degradation: a tool call naming a tool that was not offered, or with arguments that break its schema, is not an answer") {
    Fixture fx;
    ChatRequest req = ask("What is the weather in Paris?");
    req.tools = {kWeather};
    RouteOptions ro;
    ro.repair_attempts = 1;
    SECTION("a tool that was not offered") {
        fx.mock.route("primary").otherwise(Fault::tool_call("delete_files", {{"path", "/"}}));
        fx.mock.route("secondary").otherwise(Fault::tool_call("get_weather", {{"city", "Paris"}}));
        Router router{fx.options(), Route{"primary", fx.openai("primary"), fx.http, ro},
                      Route{"secondary", fx.anthropic("secondary"), fx.http}};
        auto r = router.route_with_fallback(req);
        REQUIRE(r);
        CHECK(r->route == "secondary");
        CHECK(fx.mock.route("primary").requests() == 2);  // the answer, then one repair turn
        REQUIRE(r->tool_calls.size() == 1);
        CHECK(r->tool_calls[0].name == "get_weather");
    }
    SECTION("arguments that do not match the tool's parameters") {
        fx.mock.route("primary").then(Fault::tool_call("get_weather", {{"town", 75}}))
            .then(Fault::tool_call("get_weather", {{"city", "Paris"}}));
        Router router{fx.options(), Route{"primary", fx.openai("primary"), fx.http, ro}};
        auto r = router.route_with_fallback(req);
        REQUIRE(r);
        REQUIRE(r->attempts.size() == 2);
        CHECK(r->attempts[0].message.find("city") != std::string::npos);
        CHECK(r->tool_calls[0].arguments == Json{{"city", "Paris"}});
    }
}

TEST_CASE("degradation: a conversation with Gemini tool calls fails over mid-way within one chain") {
    Fixture fx;
    fx.mock.route("gemini").then(Fault::tool_call("get_weather", {{"city", "Paris"}})).otherwise(Fault::status(503));
    fx.mock.route("ant").otherwise(Fault::ok("21 C in Paris"));
    RouteOptions once;
    once.max_attempts = 1;
    Router router{fx.options(), Route{"gemini", fx.gemini("gemini", "gemini-3-pro-preview"), fx.http, once}, Route{"ant", fx.anthropic("ant"), fx.http}};
    ChatRequest req = ask("What is the weather in Paris?");
    req.tools = {kWeather};
    auto first = router.route_with_fallback(req);
    REQUIRE(first);
    REQUIRE(first->route == "gemini");
    req.messages.push_back(first->message());
    for (const ToolCall& c : first->tool_calls) req.messages.push_back(tool_result(c.id, c.name, R"({"temp_c":21})"));
    auto second = router.route_with_fallback(req);  // Gemini is down now: Anthropic takes the conversation
    REQUIRE(second);
    CHECK(second->route == "ant");
    const Json sent = sent_body(fx.mock, "ant");
    CHECK(sent["messages"][1]["content"][0]["id"] == first->tool_calls[0].id);
    CHECK(sent["messages"][2]["content"][0]["tool_use_id"] == first->tool_calls[0].id);
}

TEST_CASE("degradation: Anthropic thinking blocks go back to the model that signed them, and nowhere else") {
    Fixture fx;
    fx.mock.route("ant").then(Fault::tool_call("get_weather", {{"city", "Paris"}}).with_thinking("Paris: call the tool."))
        .otherwise(Fault::ok("21 C"));
    fx.mock.route("other").otherwise(Fault::ok("21 C"));
    fx.mock.route("oai").otherwise(Fault::ok("21 C"));
    Router claude{fx.options(), Route{"ant", fx.anthropic("ant"), fx.http}};
    ChatRequest req = ask("Weather in Paris?");
    req.tools = {kWeather};
    auto first = claude.route_with_fallback(req);
    REQUIRE(first);
    REQUIRE(first->thinking.size() == 1);
    CHECK(first->thinking[0].text == "Paris: call the tool.");
    req.messages.push_back(first->message());
    req.messages.push_back(tool_result(first->tool_calls[0].id, "get_weather", "sensor offline", /*is_error=*/true));

    auto again = claude.route_with_fallback(req);  // the same model: the signed block goes back, first in its turn
    REQUIRE(again);
    Json sent = sent_body(fx.mock, "ant");
    CHECK(sent["messages"][1]["content"][0]["type"] == "thinking");
    CHECK(sent["messages"][1]["content"][0]["signature"] == first->thinking[0].signature.value);
    CHECK(sent["messages"][2]["content"][0]["is_error"] == true);

    // Another Claude model would refuse the block (the mock does, as Anthropic does): it is left out.
    Router opus{fx.options(),
                Route{"other", Anthropic{{.model = "claude-opus-4-1", .api_key = "test", .base_url = fx.mock.url("other")}}, fx.http}};
    auto other = opus.route_with_fallback(req);
    REQUIRE(other);
    CHECK(sent_body(fx.mock, "other").dump().find("thinking") == std::string::npos);

    Router gpt{fx.options(), Route{"oai", fx.openai("oai"), fx.http}};
    auto o = gpt.route_with_fallback(req);
    REQUIRE(o);
    sent = sent_body(fx.mock, "oai");
    CHECK(sent.dump().find("Paris: call the tool.") == std::string::npos);
    CHECK(sent["messages"][2]["content"] == "Error: sensor offline");
}

TEST_CASE("degradation: strict mode is decided per schema, said once, and can be demanded") {
    Fixture fx;
    fx.mock.route("primary").otherwise(Fault::ok_json({{"note", "x"}}));
    Router router{fx.options(), Route{"primary", fx.openai("primary"), fx.http}};
    router.add_sink(fx.sink);
    ChatRequest req = ask();
    req.schema = Schema::parse(R"({"type":"object","properties":{"note":{"type":"string"},"n":{"type":"integer"}},
                                   "required":["note"]})");  // "n" is optional: not strict-ready
    for (int i = 0; i < 3; ++i) REQUIRE(router.route_with_fallback(req));
    const auto notices = fx.sink->of("notice");
    REQUIRE(notices.size() == 1);  // once per route and schema, not per request
    CHECK(sent_body(fx.mock, "primary")["response_format"]["json_schema"]["strict"] == false);

    // Demanded: refused at construction for a declared schema, and before any call for another.
    RouteOptions declared;
    declared.schemas = {req.schema};
    const auto strict_openai = [&] {
        return OpenAI{{.model = "gpt-4o", .api_key = "sk-test", .base_url = fx.mock.url("strict") + "/v1",
                       .strict = StrictOutput::required}};
    };
    std::string message;
    try {
        Route r{"strict", strict_openai(), fx.http, declared};
    } catch (const std::invalid_argument& e) {
        message = e.what();
    }
    CHECK(message.find("route 'strict'") != std::string::npos);
    CHECK(message.find("/properties/n") != std::string::npos);
    Router demanding{fx.options(), Route{"strict", strict_openai(), fx.http}};
    auto refused = demanding.route_with_fallback(req);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().reason == Reason::bad_request);
    CHECK(fx.mock.route("strict").requests() == 0);
}

TEST_CASE("degradation: the strict subset analysis names every problem with its pointer") {
    using failover::detail::strict::analyze_strict;
    auto ready = analyze_strict(Json::parse(R"({"type":"object","$schema":"http://json-schema.org/draft-07/schema#",
        "properties":{"a":{"type":"array","items":{"type":"object","properties":{"b":{"type":["string","null"]}},"required":["b"]}}},
        "required":["a"]})"));
    REQUIRE(ready.ready);
    CHECK_FALSE(ready.document.contains("$schema"));
    CHECK(ready.document["additionalProperties"] == false);
    CHECK(ready.document["properties"]["a"]["items"]["additionalProperties"] == false);

    auto not_ready = analyze_strict(Json::parse(R"({"type":"object","properties":{"a":{"type":"string","minLength":2},
        "b":{"allOf":[{"type":"string"}]}},"required":["a","b","c"],"additionalProperties":true})"));
    REQUIRE_FALSE(not_ready.ready);
    const std::string all = [&] {
        std::string s;
        for (const auto& r : not_ready.reasons) s += r + "\n";
        return s;
    }();
    CHECK(all.find("/properties/a/minLength") != std::string::npos);
    CHECK(all.find("/properties/b/allOf") != std::string::npos);
    CHECK(all.find("/additionalProperties") != std::string::npos);
    CHECK(all.find("\"c\" has no property") != std::string::npos);
    CHECK_FALSE(analyze_strict(Json::parse(R"({"anyOf":[{"type":"object"}]})")).ready);
    CHECK_FALSE(analyze_strict(Json::parse("true")).ready);
}

TEST_CASE("degradation: local presets need no key, Azure takes a key or an Entra token, OpenRouter needs one") {
    auto http = std::make_shared<CurlTransport>();
    CHECK_NOTHROW(Route{"ollama", OpenAICompatible::ollama("llama3.1"), http});
    CHECK_NOTHROW(Route{"vllm", OpenAICompatible::vllm("m", "http://127.0.0.1:8000/v1"), http});
    CHECK_NOTHROW(Route{"azure", OpenAICompatible::azure({.resource = "acme", .deployment = "gpt-4o",
                                                          .extra_headers = {{"Authorization", "Bearer entra-token"}}}),
                        http});
    CHECK_THROWS_AS((Route{"azure", OpenAICompatible::azure({.resource = "acme", .deployment = "gpt-4o"}), http}),
                    std::invalid_argument);
    CHECK_THROWS_AS((Route{"router", OpenAICompatible::openrouter("m", Secret{}), http}), std::invalid_argument);
    CHECK_THROWS_AS((Route{"g", Gemini{{.model = "gemini-2.5-flash"}}, http}), std::invalid_argument);
    CHECK_THROWS_AS((Route{"a", Anthropic{{.model = "claude-sonnet-4-5"}}, http}), std::invalid_argument);
}

