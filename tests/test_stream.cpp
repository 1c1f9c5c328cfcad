// SPDX-License-Identifier: MIT
// The streaming driver against a scripted streaming transport and a fake
// line-based stream format, with an injected clock (nothing sleeps): what the
// caller sees and when, failover before the first delta, mid-stream failures
// that carry the partial text, the opt-in restart, held structured answers and
// tool calls, cancellation, and routes that cannot stream.
#include <algorithm>
#include <future>
#include <stop_token>
#include <string>
#include <vector>

#include "support/catch.hpp"
#include "support/fakes.hpp"

using namespace failover;
using namespace failover_test;
using namespace std::chrono_literals;

namespace {

struct Seen {
    std::vector<std::string> log;  // "route:x", "text:..", "call:0:name:..", "usage", "finish", "restart:x:reason"
    std::string text;
    std::function<void(const StreamEvent&)> callback() {
        return [this](const StreamEvent& e) {
            switch (e.kind) {
                case StreamEvent::Kind::route: log.push_back("route:" + std::string(e.route)); break;
                case StreamEvent::Kind::restart:
                    log.push_back("restart:" + std::string(e.route) + ":" + std::string(to_string(e.reason)));
                    text.clear();
                    break;
                case StreamEvent::Kind::delta:
                    switch (e.delta->kind) {
                        case StreamDelta::Kind::text:
                            log.push_back("text:" + e.delta->text);
                            text += e.delta->text;
                            break;
                        case StreamDelta::Kind::tool_call:
                            log.push_back("call:" + std::to_string(e.delta->index) + ":" + e.delta->name + ":" + e.delta->text);
                            break;
                        case StreamDelta::Kind::usage: log.push_back("usage"); break;
                        case StreamDelta::Kind::finish: log.push_back("finish"); break;
                    }
                    break;
            }
        };
    }
};

struct Env {
    std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
    std::shared_ptr<RecordingSink> sink = std::make_shared<RecordingSink>();
    RouterOptions options() const {
        RouterOptions o;
        o.clock = clock;
        o.sleeper = clock;
        o.seed = 3;
        return o;
    }
};

ChatRequest ask() {
    ChatRequest r;
    r.messages = {user("hello")};
    r.tenant = "acme";
    return r;
}

using Lines = std::vector<std::string>;

}  // namespace

TEST_CASE("stream: text reaches the caller as it arrives, after the route's name, and the whole answer is returned") {
    Env env;
    auto t = std::make_shared<ScriptedTransport>();
    t->then_stream(ScriptedTransport::streamed({"t Hel", "lo\nt  wor", "ld\nu 3 2\nf\n"}));
    Router router{env.options(), Route{"primary", FakeStreamingAdapter{}, t}};
    router.add_sink(env.sink);
    Seen seen;
    auto r = router.stream(ask(), seen.callback());
    REQUIRE(r);
    CHECK(r->text == "Hello world");
    CHECK(r->route == "primary");
    CHECK(r->usage.output_tokens == 2);
    CHECK(seen.log == Lines{"route:primary", "text:Hello", "text: world", "usage", "finish"});
    CHECK(env.sink->count("first_token") == 1);
    REQUIRE(env.sink->count("stream_outcome") == 1);
    CHECK(env.sink->of("stream_outcome")[0].category == "complete");
    // The attempt was timed to its first token, not its whole length.
    CHECK(t->deadlines().at(0).timeout == RouteOptions{}.first_token_timeout);
}

TEST_CASE("stream: before the first delta a failure fails over invisibly") {
    Env env;
    auto primary = std::make_shared<ScriptedTransport>();
    primary->then_stream(ScriptedTransport::streamed({"u 1 0\n"}, Failure::of(Reason::timeout, "no first token")))
        .otherwise(http(503, R"({"error":{"message":"busy"}})"));
    auto secondary = std::make_shared<ScriptedTransport>();
    secondary->then_stream(ScriptedTransport::streamed({"t from secondary\nf\n"}));
    RouteOptions once;
    once.max_attempts = 1;
    Router router{env.options(), Route{"primary", FakeStreamingAdapter{}, primary, once},
                  Route{"secondary", FakeStreamingAdapter{}, secondary}};
    Seen seen;
    auto r = router.stream(ask(), seen.callback());
    REQUIRE(r);
    CHECK(r->route == "secondary");
    CHECK(seen.log == Lines{"route:secondary", "text:from secondary", "finish"});
    REQUIRE(r->attempts.size() == 2);
    CHECK(r->attempts[0].reason == Reason::timeout);
}

TEST_CASE("stream: after the first delta a cut ends the request with the partial text, and the secondary is never called") {
    Env env;
    auto primary = std::make_shared<ScriptedTransport>();
    primary->then_stream(ScriptedTransport::streamed({"t The answer \n", "t is\n"}, Failure::of(Reason::connection, "reset")));
    auto secondary = std::make_shared<ScriptedTransport>();
    Router router{env.options(), Route{"primary", FakeStreamingAdapter{}, primary},
                  Route{"secondary", FakeStreamingAdapter{}, secondary}};
    router.add_sink(env.sink);
    Seen seen;
    auto r = router.stream(ask(), seen.callback());
    REQUIRE_FALSE(r);
    CHECK(r.error().mid_stream);
    CHECK(r.error().reason == Reason::connection);
    CHECK(r.error().partial_text == "The answer is");
    CHECK(seen.text == "The answer is");
    CHECK(secondary->calls() == 0);
    CHECK(primary->calls() == 1);  // not retried either: the caller saw part of it
    REQUIRE(r.error().attempts.size() == 1);
    CHECK(env.sink->of("stream_outcome").at(0).category == "failed_mid_stream");
    // A stream that ends without its end is no clean answer either.
    auto again = std::make_shared<ScriptedTransport>();
    again->then_stream(ScriptedTransport::streamed({"t half an answer\n"}));
    Router r2{env.options(), Route{"p", FakeStreamingAdapter{}, again}};
    auto cut = r2.stream(ask(), {});
    REQUIRE_FALSE(cut);
    CHECK(cut.error().mid_stream);
    CHECK(cut.error().reason == Reason::malformed_response);
}

TEST_CASE("stream: a provider's error event mid-stream is classified, and the opt-in restart announces itself") {
    Env env;
    auto primary = std::make_shared<ScriptedTransport>();
    primary->then_stream(ScriptedTransport::streamed({"t partial\n", "e overloaded\n"}));
    auto secondary = std::make_shared<ScriptedTransport>();
    secondary->then_stream(ScriptedTransport::streamed({"t whole answer\nf\n"}));
    Router router{env.options(), Route{"primary", FakeStreamingAdapter{}, primary},
                  Route{"secondary", FakeStreamingAdapter{}, secondary}};
    Seen seen;
    auto r = router.stream(ask(), seen.callback(), StreamOptions{.restart = true});
    REQUIRE(r);
    CHECK(r->route == "secondary");
    CHECK(seen.log == Lines{"route:primary", "text:partial", "restart:primary:overloaded", "route:secondary",
                            "text:whole answer", "finish"});
    CHECK(seen.text == "whole answer");
    CHECK(primary->calls() == 1);  // restarted elsewhere, not retried on the route that failed mid-stream
}

TEST_CASE("stream: a structured answer is held until it passes the schema, so a repair turn stays invisible") {
    Env env;
    auto t = std::make_shared<ScriptedTransport>();
    t->then_stream(ScriptedTransport::streamed({"t {\"total\":\n", "t \"12\"}\nf\n"}))
        .then_stream(ScriptedTransport::streamed({"t {\"total\":\n", "t  12}\nf\n"}));
    Router router{env.options(), Route{"primary", FakeStreamingAdapter{}, t}};
    ChatRequest req = ask();
    req.schema = Schema::parse(R"({"type":"object","properties":{"total":{"type":"number"}},"required":["total"]})");
    Seen seen;
    auto r = router.stream(req, seen.callback());
    REQUIRE(r);
    CHECK(r->json == nlohmann::json{{"total", 12}});
    CHECK(seen.log == Lines{"route:primary", "text:{\"total\":", "text: 12}", "finish"});
    REQUIRE(r->attempts.size() == 2);
    CHECK(r->attempts[0].reason == Reason::schema_invalid);
}

TEST_CASE("stream: tool calls are held until the tool-call gate passes them") {
    Env env;
    auto t = std::make_shared<ScriptedTransport>();
    t->then_stream(ScriptedTransport::streamed({"c 0 delete_files {}\nf\n"}))
        .then_stream(ScriptedTransport::streamed({"t Let me look.\n", "c 0 get_weather {\"city\":\n", "c 0 get_weather \"Paris\"}\nf\n"}));
    Router router{env.options(), Route{"primary", FakeStreamingAdapter{}, t}};
    ChatRequest req = ask();
    req.tools = {Tool{"get_weather", "", nlohmann::json::parse(R"({"type":"object","required":["city"]})")}};
    Seen seen;
    auto r = router.stream(req, seen.callback());
    REQUIRE(r);
    REQUIRE(r->tool_calls.size() == 1);
    CHECK(r->tool_calls[0].arguments == nlohmann::json{{"city", "Paris"}});
    CHECK(seen.log == Lines{"route:primary", "text:Let me look.", "call:0:get_weather:{\"city\":", "call:0::\"Paris\"}",
                            "finish"});
    CHECK(r->attempts.at(0).reason == Reason::tool_call_invalid);
}

TEST_CASE("stream: a cancel ends the request at once, is recorded, and is not the provider's fault") {
    Env env;
    std::stop_source stop;
    auto t = std::make_shared<ScriptedTransport>();
    t->then_stream([&stop](const HttpRequest&, Deadline d, const StreamSpec& spec) -> Result<HttpResponse> {
        spec.on_data("t first words\n");
        stop.request_stop();  // the caller's other thread, as the stream runs
        if (d.stop.stop_requested()) return Failure::of(Reason::cancelled, "cancelled by the caller");
        return HttpResponse{200, {}, {}};
    });
    auto secondary = std::make_shared<ScriptedTransport>();
    Router router{env.options(), Route{"primary", FakeStreamingAdapter{}, t}, Route{"secondary", FakeStreamingAdapter{}, secondary}};
    auto r = router.stream(ask(), {}, {}, stop.get_token());
    REQUIRE_FALSE(r);
    CHECK(r.error().reason == Reason::cancelled);
    CHECK(r.error().attempts.at(0).reason == Reason::cancelled);
    CHECK(secondary->calls() == 0);
    CHECK(router.route<0>().breaker().window_counts(env.clock->now()).second == 0);
    // Already cancelled: nothing is sent at all.
    auto before = router.route_with_fallback(ask(), stop.get_token());
    REQUIRE_FALSE(before);
    CHECK(before.error().reason == Reason::cancelled);
    CHECK(before.error().attempts.empty());
}

TEST_CASE("stream: a route that cannot stream answers whole, after its gates, in the same events") {
    Env env;
    auto down = std::make_shared<ScriptedTransport>();
    down->otherwise(http(500, R"({"error":{"message":"down"}})"));
    Router router{env.options(), Route{"primary", FakeStreamingAdapter{}, down}, Route{"plain", FakeAdapter{}, down},
                  Route{"canned", StaticReply{"We are busy."}}};
    Seen seen;
    auto r = router.stream(ask(), seen.callback());
    REQUIRE(r);
    CHECK(r->route == "canned");
    CHECK(seen.log == Lines{"route:canned", "text:We are busy.", "usage", "finish"});
}

TEST_CASE("stream: a callback that throws ends the stream as cancelled, and never escapes") {
    Env env;
    auto t = std::make_shared<ScriptedTransport>();
    t->then_stream(ScriptedTransport::streamed({"t one\n", "t two\nf\n"}));
    Router router{env.options(), Route{"primary", FakeStreamingAdapter{}, t}};
    auto r = router.stream(ask(), [](const StreamEvent& e) {
        if (e.kind == StreamEvent::Kind::delta) throw std::runtime_error("the UI went away");
    });
    REQUIRE_FALSE(r);
    CHECK(r.error().reason == Reason::cancelled);
    CHECK(r.error().message.find("the UI went away") != std::string::npos);
}

// ---- through real HTTP -------------------------------------------------------------------------

#include "support/mock_provider.hpp"

TEST_CASE("cancel: a stop request from another thread ends a hung transfer within milliseconds") {
    failover_mock::MockProvider mock;
    mock.route("primary").otherwise(failover_mock::Fault::hang());
    auto http = std::make_shared<CurlTransport>();
    auto sink = std::make_shared<RecordingSink>();
    Router router{Route{"primary", OpenAI{{.model = "gpt-4o", .api_key = "sk-test", .base_url = mock.url("primary") + "/v1"}}, http},
                  Route{"canned", StaticReply{"busy"}}};
    router.add_sink(sink);
    std::stop_source stop;
    std::chrono::steady_clock::time_point asked{};
    std::thread canceller([&] {
        while (mock.route("primary").requests() == 0) std::this_thread::sleep_for(1ms);
        std::this_thread::sleep_for(50ms);
        asked = std::chrono::steady_clock::now();
        stop.request_stop();
    });
    auto r = router.route_with_fallback(ask(), stop.get_token());
    const auto ended = std::chrono::steady_clock::now();
    canceller.join();
    REQUIRE_FALSE(r);
    CHECK(r.error().reason == Reason::cancelled);
    REQUIRE(r.error().attempts.size() == 1);
    CHECK(r.error().attempts[0].reason == Reason::cancelled);
    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(ended - asked);
    WARN("cancel took " << took.count() << " us from the stop request to route_with_fallback's return");
    CHECK(took < 1s);
    CHECK(router.route<0>().breaker().window_counts(std::chrono::steady_clock::now()).second == 0);
    CHECK(sink->count("attempt") == 1);
    // The canned reply was not used: a cancel ends the request, it does not fail over.
    CHECK(sink->count("fallback") == 0);
}

namespace {

// One streaming provider of each wire format over real HTTP, in front of a healthy secondary.
struct Wired {
    explicit Wired(std::string w) : wire(std::move(w)) {}
    std::string wire;
    failover_mock::MockProvider mock;
    std::shared_ptr<CurlTransport> http = std::make_shared<CurlTransport>();
    RouteOptions fast() const {
        RouteOptions o;
        o.first_token_timeout = 400ms;
        o.stream_idle_timeout = 400ms;
        o.max_attempts = 1;
        return o;
    }
    AnyRoute primary() {
        const std::string base = mock.url("primary");
        if (wire == "openai")
            return Route{"primary", OpenAI{{.model = "gpt-4o", .api_key = "sk-test", .base_url = base + "/v1"}}, http, fast()};
        if (wire == "azure")
            return Route{"primary", OpenAICompatible::azure({.base_url = base, .deployment = "gpt-4o", .api_key = "k"}), http, fast()};
        if (wire == "anthropic")
            return Route{"primary", Anthropic{{.model = "claude-sonnet-4-5", .api_key = "k", .base_url = base}}, http, fast()};
        return Route{"primary", Gemini{{.model = "gemini-2.5-flash", .api_key = "k", .base_url = base}}, http, fast()};
    }
    DynamicRouter router() {
        std::vector<AnyRoute> chain;
        chain.push_back(primary());
        chain.push_back(Route{"secondary", Anthropic{{.model = "claude-sonnet-4-5", .api_key = "k", .base_url = mock.url("secondary")}}, http});
        RouterOptions o;
        o.seed = 5;
        return DynamicRouter{std::move(chain), o};
    }
};

}  // namespace

TEST_CASE("stream over HTTP: every wire format streams token by token, and every fault ends as the rules say") {
    const std::string wire = GENERATE(as<std::string>{}, "openai", "azure", "anthropic", "gemini");
    Wired w{wire};
    w.mock.route("secondary").otherwise(failover_mock::Fault::ok("secondary answer"));
    auto router = w.router();
    const std::string text = "Streams arrive a few characters at a time.";
    INFO("wire " << wire);

    SECTION("a clean stream") {
        w.mock.route("primary").otherwise(failover_mock::Fault::ok(text).pieces(6).paced(5ms));
        Seen seen;
        auto r = router.stream(ask(), seen.callback());
        REQUIRE(r);
        CHECK(r->route == "primary");
        CHECK(r->text == text);
        CHECK(seen.text == text);
        CHECK(seen.log.front() == "route:primary");
        CHECK(std::count_if(seen.log.begin(), seen.log.end(), [](const std::string& l) { return l.rfind("text:", 0) == 0; }) >= 7);
        CHECK(seen.log.back() == "finish");
        CHECK(w.mock.route("secondary").requests() == 0);
    }
    SECTION("a stall before the first token fails over within the first-token limit, invisibly") {
        w.mock.route("primary").otherwise(failover_mock::Fault::ok(text).stall_first());
        Seen seen;
        const auto t0 = std::chrono::steady_clock::now();
        auto r = router.stream(ask(), seen.callback());
        const auto took = std::chrono::steady_clock::now() - t0;
        REQUIRE(r);
        CHECK(r->route == "secondary");
        CHECK(seen.log.front() == "route:secondary");
        CHECK(seen.text == "secondary answer");
        CHECK(took < 400ms + 1s);  // the limit, plus the secondary's own answer
        REQUIRE(r->attempts.size() == 2);
        CHECK(r->attempts[0].reason == Reason::timeout);
    }
    SECTION("an error event before the first token fails over too") {
        w.mock.route("primary").otherwise(failover_mock::Fault::ok(text).error_after(0));
        Seen seen;
        auto r = router.stream(ask(), seen.callback());
        REQUIRE(r);
        CHECK(r->route == "secondary");
        CHECK(seen.text == "secondary answer");
    }
    // Past the first delta: a classified mid-stream failure with the partial text; the secondary never called.
    const auto mid_stream = [&](failover_mock::Fault f, std::initializer_list<Reason> reasons) {
        w.mock.route("primary").otherwise(f);
        Seen seen;
        auto r = router.stream(ask(), seen.callback());
        REQUIRE_FALSE(r);
        CHECK(r.error().mid_stream);
        CHECK(std::find(reasons.begin(), reasons.end(), r.error().reason) != reasons.end());
        CHECK_FALSE(r.error().partial_text.empty());
        CHECK(r.error().partial_text == seen.text);
        CHECK(text.rfind(r.error().partial_text, 0) == 0);
        CHECK(w.mock.route("secondary").requests() == 0);
        REQUIRE(r.error().attempts.size() == 1);
    };
    SECTION("a stall mid-stream") { mid_stream(failover_mock::Fault::ok(text).pieces(5).stall_after(2), {Reason::timeout}); }
    SECTION("a connection cut mid-stream") {
        mid_stream(failover_mock::Fault::ok(text).pieces(5).cut_after(2), {Reason::connection, Reason::malformed_response});
    }
    SECTION("an error event mid-stream") {
        mid_stream(failover_mock::Fault::ok(text).pieces(5).error_after(2), {Reason::overloaded, Reason::server_error});
    }
    SECTION("a stream that ends without its terminator") {
        mid_stream(failover_mock::Fault::ok(text).pieces(5).without_terminator(), {Reason::malformed_response});
    }
    SECTION("a malformed event") {
        mid_stream(failover_mock::Fault::ok(text).pieces(5).malformed_after(2), {Reason::malformed_response});
    }
    SECTION("keep_text = false: the text reaches the caller and the router keeps none of it") {
        w.mock.route("primary").otherwise(failover_mock::Fault::ok(text).pieces(6));
        Seen seen;
        auto r = router.stream(ask(), seen.callback(), StreamOptions{.keep_text = false});
        REQUIRE(r);
        CHECK(seen.text == text);
        CHECK(r->text.empty());
        CHECK(r->finish_reason == FinishReason::stop);
        CHECK(r->usage.output_tokens > 0);
        CHECK(seen.log.back() == "finish");
        w.mock.route("primary").otherwise(failover_mock::Fault::ok(text).pieces(5).cut_after(2));
        Seen cut;
        auto c = router.stream(ask(), cut.callback(), StreamOptions{.keep_text = false});
        REQUIRE_FALSE(c);
        CHECK(c.error().mid_stream);
        CHECK_FALSE(cut.text.empty());
        CHECK(c.error().partial_text.empty());
    }
    SECTION("a slow drip completes, each gap inside the idle limit") {
        w.mock.route("primary").otherwise(failover_mock::Fault::ok(text).pieces(10).paced(60ms));
        auto r = router.stream(ask(), {});
        REQUIRE(r);
        CHECK(r->text == text);
    }
}

TEST_CASE("stream over HTTP: a structured answer and a tool call arrive whole and valid") {
    failover_mock::MockProvider mock;
    auto http = std::make_shared<CurlTransport>();
    mock.route("p").then(failover_mock::Fault::schema_invalid().pieces(4))
        .then(failover_mock::Fault::ok_json({{"total", 12.5}}).pieces(4))
        .then(failover_mock::Fault::tool_call("get_weather", {{"city", "Paris"}}).pieces(4));
    Router router{Route{"p", Anthropic{{.model = "claude-sonnet-4-5", .api_key = "k", .base_url = mock.url("p")}}, http}};
    ChatRequest req = ask();
    req.schema = Schema::parse(R"({"type":"object","properties":{"total":{"type":"number"}},"required":["total"]})");
    Seen seen;
    auto r = router.stream(req, seen.callback());
    REQUIRE(r);
    CHECK(r->json == nlohmann::json{{"total", 12.5}});
    CHECK(nlohmann::json::parse(seen.text) == r->json);  // the caller saw only the valid answer
    CHECK(r->attempts.size() == 2);

    ChatRequest tools = ask();
    tools.tools = {Tool{"get_weather", "", nlohmann::json::parse(R"({"type":"object","required":["city"]})")}};
    Seen calls;
    auto t = router.stream(tools, calls.callback());
    REQUIRE(t);
    REQUIRE(t->tool_calls.size() == 1);
    CHECK(t->tool_calls[0].arguments == nlohmann::json{{"city", "Paris"}});
    CHECK(std::count_if(calls.log.begin(), calls.log.end(), [](const std::string& l) { return l.rfind("call:0:", 0) == 0; }) >= 1);

    // The schema gate needs the whole text: a structured request keeps it even when told not to.
    mock.route("p").then(failover_mock::Fault::ok_json({{"total", 7}}).pieces(4));
    auto kept = router.stream(req, {}, StreamOptions{.keep_text = false});
    REQUIRE(kept);
    CHECK(kept->json == nlohmann::json{{"total", 7}});
    CHECK(nlohmann::json::parse(kept->text) == kept->json);
}

// ---- streams on the event loop: Router::submit_stream -----------------------------------------

TEST_CASE("stream on the event loop: the same deltas, failover before the first, mid-stream failures after it",
          "[async][stream]") {
    const std::string wire = GENERATE(as<std::string>{}, "openai", "anthropic", "gemini");
    Wired w{wire};
    w.mock.route("secondary").otherwise(failover_mock::Fault::ok("secondary answer"));
    auto router = w.router();
    EventLoop loop;
    loop.start();
    const std::string text = "Streams arrive a few characters at a time.";
    INFO("wire " << wire);
    // The callback runs on the loop's thread; the future hands the answer back here.
    const auto streamed = [&](Seen& seen, StreamOptions o = {}) {
        return router.submit_stream(loop, ask(), seen.callback(), o).get();
    };

    SECTION("a clean stream arrives token by token, then the whole answer") {
        w.mock.route("primary").otherwise(failover_mock::Fault::ok(text).pieces(6).paced(5ms));
        Seen seen;
        auto r = streamed(seen);
        REQUIRE(r);
        CHECK(r->route == "primary");
        CHECK(r->text == text);
        CHECK(seen.text == text);
        CHECK(seen.log.front() == "route:primary");
        CHECK(std::count_if(seen.log.begin(), seen.log.end(), [](const std::string& l) { return l.rfind("text:", 0) == 0; }) >= 7);
        CHECK(seen.log.back() == "finish");
        CHECK(w.mock.route("secondary").requests() == 0);
    }
    SECTION("a stall before the first token fails over within the first-token limit, invisibly") {
        w.mock.route("primary").otherwise(failover_mock::Fault::ok(text).stall_first());
        Seen seen;
        const auto t0 = std::chrono::steady_clock::now();
        auto r = streamed(seen);
        const auto took = std::chrono::steady_clock::now() - t0;
        REQUIRE(r);
        CHECK(r->route == "secondary");
        CHECK(seen.log.front() == "route:secondary");
        CHECK(seen.text == "secondary answer");
        CHECK(took >= 400ms);       // the loop timed the first token ...
        CHECK(took < 400ms + 1s);   // ... and cut it at the limit
        REQUIRE(r->attempts.size() == 2);
        CHECK(r->attempts[0].reason == Reason::timeout);
    }
    const auto mid_stream = [&](failover_mock::Fault f, std::initializer_list<Reason> reasons) {
        w.mock.route("primary").otherwise(f);
        Seen seen;
        auto r = streamed(seen);
        REQUIRE_FALSE(r);
        CHECK(r.error().mid_stream);
        CHECK(std::find(reasons.begin(), reasons.end(), r.error().reason) != reasons.end());
        CHECK_FALSE(r.error().partial_text.empty());
        CHECK(r.error().partial_text == seen.text);
        CHECK(text.rfind(r.error().partial_text, 0) == 0);
        CHECK(w.mock.route("secondary").requests() == 0);
        REQUIRE(r.error().attempts.size() == 1);
    };
    SECTION("a stall mid-stream is cut at the idle limit") {
        mid_stream(failover_mock::Fault::ok(text).pieces(5).stall_after(2), {Reason::timeout});
    }
    SECTION("a connection cut mid-stream") {
        mid_stream(failover_mock::Fault::ok(text).pieces(5).cut_after(2), {Reason::connection, Reason::malformed_response});
    }
    SECTION("an error event mid-stream") {
        mid_stream(failover_mock::Fault::ok(text).pieces(5).error_after(2), {Reason::overloaded, Reason::server_error});
    }
    SECTION("opted in, a mid-stream failure restarts on the next route after a restart event") {
        w.mock.route("primary").otherwise(failover_mock::Fault::ok(text).pieces(5).cut_after(2));
        Seen seen;
        auto r = streamed(seen, StreamOptions{.restart = true});
        REQUIRE(r);
        CHECK(r->route == "secondary");
        CHECK(seen.text == "secondary answer");  // the restart event told it to discard the rest
        CHECK(std::find_if(seen.log.begin(), seen.log.end(), [](const std::string& l) { return l.rfind("restart:primary", 0) == 0; }) !=
              seen.log.end());
    }
    SECTION("a stop request ends a stream at once as cancelled") {
        w.mock.route("primary").otherwise(failover_mock::Fault::ok(text).pieces(5).stall_after(1, 5s));
        std::stop_source stop;
        Seen seen;
        std::promise<Result<ChatResponse>> p;
        router.submit_stream(
            loop, ask(),
            [&](const StreamEvent& e) {
                seen.callback()(e);
                if (e.kind == StreamEvent::Kind::delta) stop.request_stop();  // from the loop's own thread
            },
            [&](Result<ChatResponse> r) { p.set_value(std::move(r)); }, StreamOptions{}, stop.get_token());
        auto r = p.get_future().get();
        REQUIRE_FALSE(r);
        CHECK(r.error().reason == Reason::cancelled);
        CHECK(w.mock.route("secondary").requests() == 0);
    }
    loop.stop();
}

TEST_CASE("stream on the event loop: one thread carries many streams at once", "[async][stream]") {
    Wired w{"openai"};
    const std::string text = "Twenty streams share one thread.";
    w.mock.route("primary").otherwise(failover_mock::Fault::ok(text).pieces(4).paced(20ms));
    auto router = w.router();
    EventLoop loop;
    const int n = 20;
    std::vector<Seen> seen(n);
    int done = 0;
    std::vector<Result<ChatResponse>> results;
    for (int i = 0; i < n; ++i)
        router.submit_stream(loop, ask(), seen[static_cast<std::size_t>(i)].callback(), [&](Result<ChatResponse> r) {
            results.push_back(std::move(r));
            ++done;
        });
    std::size_t most = 0;
    for (int turns = 0; done < n; ++turns) {
        REQUIRE(turns < 20000);
        loop.run_once(50ms);
        most = std::max(most, loop.transfers());
    }
    CHECK(most == static_cast<std::size_t>(n));  // all in flight together on this thread
    for (const auto& r : results) {
        REQUIRE(r);
        CHECK(r->text == text);
    }
    for (const auto& s : seen) CHECK(s.text == text);
}
