// SPDX-License-Identifier: MIT
// The custom adapter users copy (examples/adapters/ollama_native.hpp) keeps its
// promises: encode produces Ollama's documented /api/chat body exactly and
// refuses what it cannot express; decode turns success, truncated structured
// output, error bodies and garbage into answers or classified Failures and
// never throws. Everything that can go over the wire does: CurlTransport and a
// Router against the loopback MockProvider speaking the Ollama wire format.
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include <failover/failover.hpp>

#include "adapters/ollama_native.hpp"
#include "support/catch.hpp"
#include "support/mock_provider.hpp"

using namespace failover;
using namespace std::chrono_literals;
using example::OllamaNative;
using failover_mock::Fault;
using failover_mock::Json;
using failover_mock::MockProvider;

namespace {

const char* kSchema = R"({"type":"object","required":["city"],"properties":{"city":{"type":"string"}}})";

RouteOptions fast() {
    RouteOptions o;
    o.backoff = Backoff{std::chrono::milliseconds{1}, std::chrono::milliseconds{2}};
    o.attempt_timeout = 5s;
    return o;
}

/// An Ollama-native body as the server sends it, with the given content and done_reason.
std::string ollama_body(const std::string& content, const std::string& done_reason = "stop") {
    return Json{{"model", "llama3.1"},
                {"created_at", "2024-06-01T12:00:00Z"},
                {"message", {{"role", "assistant"}, {"content", content}}},
                {"done", true},
                {"done_reason", done_reason},
                {"prompt_eval_count", 12},
                {"eval_count", 7}}
        .dump();
}

/// A chain of the custom adapter (the mock's route "ol") and a canned last resort.
struct Chain {
    MockProvider mock;
    std::shared_ptr<CurlTransport> http = std::make_shared<CurlTransport>();
    Router<Route<OllamaNative, CurlTransport>, Route<StaticReply>> router{
        RouterOptions{.seed = 7},
        Route{"ollama", OllamaNative{{.base_url = mock.url("ol"), .model = "llama3.1"}}, http, fast()},
        Route{"canned", StaticReply{"canned"}}};
    failover_mock::MockRoute& ol = mock.route("ol");
};

}  // namespace

TEST_CASE("mock: /api/chat answers in Ollama's documented shapes", "[examples][ollama][mock]") {
    MockProvider mock;
    CurlTransport http;
    Deadline d;
    d.timeout = 5s;
    auto chat = [&](const std::string& url, const Json& body) {
        HttpRequest r;
        r.url = url;
        r.headers = {{"Content-Type", "application/json"}};
        r.body = body.dump();
        auto res = http.send(r, d);
        REQUIRE(res);
        return *res;
    };
    const Json body = {{"model", "llama3.1"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"stream", false}};

    mock.route("o").then(Fault::ok("hello")).then(Fault::tool_call("lookup", {{"q", "x"}})).then(Fault::status(404));
    const HttpResponse ok = chat(mock.url("o") + "/api/chat", body);
    CHECK(ok.status == 200);
    const Json j = Json::parse(ok.body);
    CHECK(j["model"] == "llama3.1");
    CHECK(j["created_at"].is_string());
    CHECK(j["message"] == Json{{"role", "assistant"}, {"content", "hello"}});
    CHECK(j["done"] == true);
    CHECK(j["done_reason"] == "stop");
    CHECK(j["prompt_eval_count"].is_number_integer());
    CHECK(j["eval_count"].is_number_integer());

    const Json call = Json::parse(chat(mock.url("o") + "/api/chat", body).body);
    CHECK(call["message"]["tool_calls"][0]["function"] == Json{{"name", "lookup"}, {"arguments", {{"q", "x"}}}});

    const HttpResponse missing = chat(mock.url("o") + "/api/chat", body);
    CHECK(missing.status == 404);
    CHECK(Json::parse(missing.body) == Json{{"error", "model \"llama3.1\" not found, try pulling it first"}});

    // Checked like the server checks: no model, or a streaming request, is a 400 and uses no script entry.
    mock.route("o").then(Fault::status(500));
    const HttpResponse no_model =
        chat(mock.url("o") + "/api/chat", Json{{"messages", body["messages"]}, {"stream", false}});
    CHECK(no_model.status == 400);
    CHECK(Json::parse(no_model.body) == Json{{"error", "model is required"}});
    CHECK(chat(mock.url("o") + "/api/chat", Json{{"model", "m"}, {"messages", body["messages"]}}).status == 400);
    CHECK(mock.route("o").pending() == 1);
    // Without a route segment, /api/chat is the unnamed route, as Ollama's own URL is.
    CHECK(chat(mock.base_url() + "/api/chat", body).status == 200);
    CHECK(mock.route("").requests() == 1);
}

TEST_CASE("ollama_native: encode produces the documented /api/chat body", "[examples][ollama]") {
    const OllamaNative a{{.base_url = "http://127.0.0.1:11434/", .model = "llama3.1"}};
    ChatRequest req{.messages = {system_prompt("Be terse."), user("Weather in Paris?"), assistant("Sunny."),
                                 user("And tomorrow?")},
                    .max_tokens = 64,
                    .temperature = 0.25,
                    .stop = {"\n\n", "END"},
                    .schema = Schema::parse(kSchema)};
    auto http = a.encode(req);
    REQUIRE(http);
    CHECK(http->method == "POST");
    CHECK(http->url == "http://127.0.0.1:11434/api/chat");  // trailing slash of base_url dropped
    REQUIRE(http->header("content-type"));
    CHECK(*http->header("Content-Type") == "application/json");
    const Json expected = {
        {"model", "llama3.1"},
        {"messages",
         {{{"role", "system"}, {"content", "Be terse."}},
          {{"role", "user"}, {"content", "Weather in Paris?"}},
          {{"role", "assistant"}, {"content", "Sunny."}},
          {{"role", "user"}, {"content", "And tomorrow?"}}}},
        {"stream", false},
        {"options", {{"num_predict", 64}, {"temperature", 0.25}, {"stop", {"\n\n", "END"}}}},
        {"format", Json::parse(kSchema)}};
    CHECK(Json::parse(http->body) == expected);

    // Nothing optional set: no options object and no format, rather than nulls the server may reject.
    auto plain = a.encode(ChatRequest{.messages = {user("hi")}});
    REQUIRE(plain);
    CHECK(Json::parse(plain->body) ==
          Json{{"model", "llama3.1"}, {"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"stream", false}});
}

TEST_CASE("ollama_native: what the API cannot express is a bad_request, never an exception", "[examples][ollama]") {
    const OllamaNative a{{.model = "llama3.1"}};
    auto tools = a.encode(ChatRequest{.messages = {user("call it")}, .tools = {Tool{.name = "lookup"}}});
    REQUIRE_FALSE(tools);
    CHECK(tools.error().reason == Reason::bad_request);
    CHECK(tools.error().kind == FailureKind::terminal);  // the router fails over to a route that can

    auto bad_utf8 = a.encode(ChatRequest{.messages = {user(std::string("caf\xC3", 4))}});
    REQUIRE_FALSE(bad_utf8);
    CHECK(bad_utf8.error().reason == Reason::bad_request);
    CHECK_THAT(bad_utf8.error().message, Catch::Contains("UTF-8"));
}

TEST_CASE("ollama_native: bad configuration fails at construction, naming the field", "[examples][ollama]") {
    CHECK_THROWS_WITH(OllamaNative({.base_url = "127.0.0.1:11434", .model = "m"}), Catch::Contains("base_url"));
    CHECK_THROWS_WITH(OllamaNative({.model = ""}), Catch::Contains("model"));
    CHECK_THROWS_AS(OllamaNative({.model = ""}), std::invalid_argument);
    CHECK(OllamaNative({.model = "m"}).provider() == "ollama");
    CHECK(OllamaNative({.model = "qwen3:8b"}).model() == "qwen3:8b");
}

TEST_CASE("ollama_native: a success over HTTP is decoded, and the mock saw the encoded body", "[examples][ollama]") {
    Chain c;
    c.ol.then(Fault::ok("It will rain."));
    std::mutex mu;
    std::vector<std::string> providers;
    c.router.add_sink(std::make_shared<CallbackSink>([&](const Event& e) {
        if (auto* a = std::get_if<AttemptEvent>(&e)) {
            std::lock_guard lock(mu);
            providers.push_back(std::string(a->provider) + "/" + std::string(a->model));
        }
    }));
    ChatRequest req{.messages = {user("And tomorrow?")}, .max_tokens = 32};
    auto r = c.router.route_with_fallback(req);
    REQUIRE(r);
    CHECK(r->route == "ollama");
    CHECK(r->text == "It will rain.");
    CHECK(r->finish_reason == FinishReason::stop);
    CHECK(r->model == "llama3.1");
    CHECK(r->usage.input_tokens > 0);
    CHECK(r->usage.output_tokens > 0);
    CHECK(r->json.is_null());
    REQUIRE(r->attempts.size() == 1);
    CHECK(providers == std::vector<std::string>{"ollama/llama3.1"});

    const auto seen = c.ol.last_request();
    REQUIRE(seen);
    CHECK(seen->path == "/ol/api/chat");
    CHECK(seen->json() == Json::parse(OllamaNative({.model = "llama3.1"}).encode(req)->body));
}

TEST_CASE("ollama_native: structured output is parsed, and non-JSON gets a repair turn with the answer",
          "[examples][ollama]") {
    Chain c;
    c.ol.then(Fault::ok_json({{"city", "Paris"}}));
    ChatRequest req{.messages = {user("Where is the Louvre?")}, .schema = Schema::parse(kSchema)};
    auto r = c.router.route_with_fallback(req);
    REQUIRE(r);
    CHECK(r->json == Json{{"city", "Paris"}});
    CHECK(c.ol.last_request()->json()["format"] == Json::parse(kSchema));

    // Complete but not JSON: schema_invalid, and the repair turn shows the model its own answer.
    c.ol.then(Fault::ok("Sure! The city is Paris.")).then(Fault::ok_json({{"city", "Paris"}}));
    auto repaired = c.router.route_with_fallback(req);
    REQUIRE(repaired);
    CHECK(repaired->route == "ollama");
    REQUIRE(repaired->attempts.size() == 2);
    CHECK(repaired->attempts[0].reason == Reason::schema_invalid);
    const Json sent = c.ol.last_request()->json();
    REQUIRE(sent["messages"].size() == 3);
    CHECK(sent["messages"][1] == Json{{"role", "assistant"}, {"content", "Sure! The city is Paris."}});
    CHECK(sent["messages"][2]["role"] == "user");
}

TEST_CASE("ollama_native: structured output cut off at num_predict is malformed_response, retried",
          "[examples][ollama]") {
    Chain c;
    const std::string cut = ollama_body(R"({"city": "Par)", "length");
    c.ol.then(Fault::raw(200, cut)).then(Fault::raw(200, ollama_body(R"({"city":"Paris"})")));
    ChatRequest req{.messages = {user("Where is the Louvre?")}, .schema = Schema::parse(kSchema)};
    auto r = c.router.route_with_fallback(req);
    REQUIRE(r);
    CHECK(r->route == "ollama");
    REQUIRE(r->attempts.size() == 2);
    CHECK(r->attempts[0].reason == Reason::malformed_response);
    CHECK(r->attempts[0].kind == FailureKind::transient);
    CHECK_THAT(r->attempts[0].message, Catch::Contains("truncated"));
    CHECK(r->usage.input_tokens == 12);
    CHECK(r->usage.output_tokens == 7);

    // A plain-text answer cut off at the limit is still an answer, flagged as such.
    c.ol.then(Fault::raw(200, ollama_body("Once upon a", "length")));
    auto text = c.router.route_with_fallback(ChatRequest{.messages = {user("Tell a story")}});
    REQUIRE(text);
    CHECK(text->text == "Once upon a");
    CHECK(text->finish_reason == FinishReason::length);
}

TEST_CASE("ollama_native: error bodies are classified with Ollama's own signals", "[examples][ollama]") {
    Chain c;
    SECTION("404 model not pulled: terminal not_found, fail over at once") {
        c.ol.then(Fault::status(404));
        auto r = c.router.route_with_fallback(ChatRequest{.messages = {user("hi")}});
        REQUIRE(r);
        CHECK(r->route == "canned");
        REQUIRE(r->attempts.size() == 2);
        CHECK(r->attempts[0].reason == Reason::not_found);
        CHECK(r->attempts[0].kind == FailureKind::terminal);
        CHECK(r->attempts[0].status == 404);
        CHECK_THAT(r->attempts[0].message, Catch::Contains("model \"llama3.1\" not found"));
    }
    SECTION("context length: terminal context_too_long") {
        c.ol.then(Fault::context_length_exceeded());
        auto r = c.router.route_with_fallback(ChatRequest{.messages = {user("a very long prompt")}});
        REQUIRE(r);
        CHECK(r->route == "canned");
        REQUIRE(r->attempts.size() == 2);
        CHECK(r->attempts[0].reason == Reason::context_too_long);
        CHECK(r->attempts[0].status == 400);
    }
    SECTION("500 and 503 are transient: retried on the same route") {
        c.ol.then(Fault::status(500)).then(Fault::ok("recovered"));
        auto r = c.router.route_with_fallback(ChatRequest{.messages = {user("hi")}});
        REQUIRE(r);
        CHECK(r->route == "ollama");
        REQUIRE(r->attempts.size() == 2);
        CHECK(r->attempts[0].reason == Reason::server_error);
        CHECK_THAT(r->attempts[0].message, Catch::Contains("llama runner process has terminated"));

        c.ol.then(Fault::status(503), 2);
        auto busy = c.router.route_with_fallback(ChatRequest{.messages = {user("hi")}});
        REQUIRE(busy);
        CHECK(busy->route == "canned");
        REQUIRE(busy->attempts.size() == 3);
        CHECK(busy->attempts[0].reason == Reason::overloaded);
        CHECK(busy->attempts[1].reason == Reason::overloaded);
    }
    SECTION("an HTML error page is still classified by its status") {
        c.ol.then(Fault::raw(502, "<html><body>Bad Gateway</body></html>", "text/html"), 2);
        auto r = c.router.route_with_fallback(ChatRequest{.messages = {user("hi")}});
        REQUIRE(r);
        CHECK(r->route == "canned");
        CHECK(r->attempts[0].reason == Reason::server_error);
    }
}

TEST_CASE("ollama_native: the classify hook refines only what Ollama's text says", "[examples][ollama]") {
    const OllamaNative a{{.model = "llama3.1"}};
    auto classified = [&](int status, const std::string& error) {
        HttpResponse res;
        res.status = status;
        res.headers = {{"Content-Type", "application/json"}};
        res.body = Json{{"error", error}}.dump();
        Failure f = classify_response(res, std::chrono::system_clock::now(), a);
        return f;
    };
    // Some Ollama versions answer a missing model with 400 or 500: the text decides.
    const Failure missing = classified(500, "model \"qwen3\" not found, try pulling it first");
    CHECK(missing.reason == Reason::not_found);
    CHECK(missing.kind == FailureKind::terminal);
    CHECK(classified(400, "the input length exceeds the context length").reason == Reason::context_too_long);
    // A rate limit that mentions the context length is still a rate limit.
    const Failure limited = classified(429, "too many requests for this context length");
    CHECK(limited.reason == Reason::rate_limited);
    CHECK(limited.kind == FailureKind::transient);
    CHECK(classified(400, "invalid options").reason == Reason::bad_request);
}

TEST_CASE("ollama_native: garbage 2xx bodies are malformed_response, never an exception", "[examples][ollama]") {
    SECTION("over HTTP") {
        Chain c;
        c.ol.then(Fault::malformed_json()).then(Fault::raw(200, R"({"error":"unexpected EOF"})"));
        auto r = c.router.route_with_fallback(ChatRequest{.messages = {user("hi")}});
        REQUIRE(r);
        CHECK(r->route == "canned");
        REQUIRE(r->attempts.size() == 3);
        CHECK(r->attempts[0].reason == Reason::malformed_response);
        CHECK(r->attempts[1].reason == Reason::malformed_response);
        CHECK_THAT(r->attempts[1].message, Catch::Contains("unexpected EOF"));
        CHECK(r->attempts[1].status == 200);
    }
    SECTION("each wrong shape, decoded directly") {
        const OllamaNative a{{.model = "llama3.1"}};
        const ChatRequest structured{.messages = {user("x")}, .schema = Schema::parse(kSchema)};
        const std::string deep = std::string(5000, '[') + std::string(5000, ']');
        const std::vector<std::string> bodies = {
            "",
            "\xff\xfe not json",
            "[1,2,3]",
            R"({"done":true})",
            R"({"message":"hi","done":true})",
            R"({"message":{"role":"assistant","content":5},"done":true})",
            R"({"message":{"role":"assistant","content":"hi"},"done":false})",
            R"({"message":{"role":"assistant","content":"hi"},"done":true,"done_reason":7})",
            R"({"message":{"role":"assistant","content":"hi"},"done":true,"model":["x"]})",
            ollama_body(deep),
        };
        for (const auto& b : bodies) {
            HttpResponse res;
            res.status = 200;
            res.body = b;
            Result<ChatResponse> out = a.decode(structured, res);
            INFO(b.substr(0, 80));
            REQUIRE_FALSE(out);
            CHECK(out.error().reason == Reason::malformed_response);
            CHECK(out.error().kind == FailureKind::transient);
        }
    }
    SECTION("random mutations of a valid body: an answer or a classified Failure") {
        const OllamaNative a{{.model = "llama3.1"}};
        const ChatRequest structured{.messages = {user("x")}, .schema = Schema::parse(kSchema)};
        const std::string valid = ollama_body(R"({"city":"Paris"})");
        std::mt19937 rng(20240601);
        int answers = 0, failures = 0;
        for (int i = 0; i < 3000; ++i) {
            std::string b = valid;
            const int edits = 1 + static_cast<int>(rng() % 4);
            for (int k = 0; k < edits; ++k) {
                const std::size_t at = rng() % b.size();
                switch (rng() % 3) {
                    case 0: b[at] = static_cast<char>(rng() % 256); break;
                    case 1: b.erase(at, 1 + rng() % 8); break;
                    default: b.insert(at, 1, "{}[]\":,0\\"[rng() % 9]); break;
                }
                if (b.empty()) b = "{";
            }
            HttpResponse res;
            res.status = 200;
            res.body = b;
            Result<ChatResponse> out = a.decode(structured, res);  // must not throw
            if (out) {
                ++answers;
            } else {
                ++failures;
                INFO(b);
                CHECK((out.error().reason == Reason::malformed_response));
            }
        }
        CHECK(answers > 0);  // the mutations leave some bodies intact enough to answer
        CHECK(failures > 0);
    }
}
