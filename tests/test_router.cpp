// SPDX-License-Identifier: MIT
// The routing engine against scripted transports and an injected clock: each
// behaviour DESIGN.md's taxonomy promises, with nothing sleeping for real.
#include <sys/resource.h>

#include <atomic>
#include <future>
#include <stop_token>
#include <thread>
#include <vector>

#include "support/catch.hpp"
#include "support/fakes.hpp"

using namespace failover;
using namespace failover_test;
using namespace std::chrono_literals;

namespace {

struct Env {
    std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
    std::shared_ptr<RecordingSink> sink = std::make_shared<RecordingSink>();
    RouterOptions options(std::chrono::milliseconds timeout = 60s) const {
        RouterOptions o;
        o.clock = clock;
        o.sleeper = clock;
        o.seed = 42;
        o.timeout = timeout;
        return o;
    }
};

ChatRequest ask(std::string tenant = "acme") {
    ChatRequest r;
    r.messages = {user("hello")};
    r.tenant = std::move(tenant);
    return r;
}

Headers retry_after(std::string v) { return {{"Retry-After", std::move(v)}}; }

RouteOptions quiet_breaker(RouteOptions o = {}) {
    o.breaker.consecutive_failures = 0;
    o.breaker.minimum_calls = 1000000;
    return o;
}

}  // namespace

TEST_CASE("429 with Retry-After waits what the header said, then succeeds on the retry") {
    Env env;
    auto primary = std::make_shared<ScriptedTransport>();
    primary->then(http(429, R"({"error":{"message":"slow down","type":"rate_limit_exceeded"}})", retry_after("2")))
        .then(ok_body("hi"));
    auto secondary = std::make_shared<ScriptedTransport>();
    Router router{env.options(), Route{"primary", FakeAdapter{}, primary}, Route{"secondary", FakeAdapter{}, secondary}};
    router.add_sink(env.sink);

    auto r = router.route_with_fallback(ask());
    REQUIRE(r);
    CHECK(r->text == "hi");
    CHECK(r->route == "primary");
    REQUIRE(r->attempts.size() == 2);
    CHECK(r->attempts[0].reason == Reason::rate_limited);
    CHECK(r->attempts[0].status == 429);
    CHECK(r->attempts[1].ok);
    CHECK(env.clock->slept() == 2s);
    CHECK(primary->calls() == 2);
    CHECK(secondary->calls() == 0);
    auto retries = env.sink->of("retry");
    REQUIRE(retries.size() == 1);
    CHECK(retries[0].delay == 2s);
    // A rate limit says nothing about the provider's health.
    CHECK(router.route<0>().breaker().window_counts(env.clock->now()) == std::pair<std::uint64_t, std::uint64_t>{1, 0});
}

TEST_CASE("500 twice fails over to the secondary after one backoff") {
    Env env;
    auto primary = std::make_shared<ScriptedTransport>();
    primary->otherwise(http(500, R"({"error":{"message":"boom"}})"));
    auto secondary = std::make_shared<ScriptedTransport>();
    secondary->otherwise(ok_body("from secondary"));
    Router router{env.options(), Route{"primary", FakeAdapter{}, primary}, Route{"secondary", FakeAdapter{}, secondary}};
    router.add_sink(env.sink);

    auto r = router.route_with_fallback(ask("tenant-7"));
    REQUIRE(r);
    CHECK(r->route == "secondary");
    CHECK(r->text == "from secondary");
    REQUIRE(r->attempts.size() == 3);
    CHECK(r->attempts[0].route == "primary");
    CHECK(r->attempts[0].reason == Reason::server_error);
    CHECK(r->attempts[1].route == "primary");
    CHECK(r->attempts[1].number == 2);
    CHECK(r->attempts[2].route == "secondary");
    CHECK(r->attempts[2].ok);
    CHECK(primary->calls() == 2);
    // One retry's full-jitter backoff: U(0, 500 ms).
    CHECK(env.clock->slept() <= 500ms);
    auto fb = env.sink->of("fallback");
    REQUIRE(fb.size() == 1);
    CHECK(fb[0].from == "primary");
    CHECK(fb[0].to == "secondary");
    CHECK(fb[0].reason == Reason::server_error);
    CHECK(fb[0].tenant == "tenant-7");
    CHECK(env.sink->count("success") == 1);
}

TEST_CASE("a content-policy block returns at once and the secondary is never called") {
    Env env;
    auto primary = std::make_shared<ScriptedTransport>();
    primary->otherwise(http(200, R"({"refusal":"I can't help with that"})"));
    auto secondary = std::make_shared<ScriptedTransport>();
    Router router{env.options(), Route{"primary", FakeAdapter{}, primary}, Route{"secondary", FakeAdapter{}, secondary}};
    router.add_sink(env.sink);

    auto r = router.route_with_fallback(ask());
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == FailureKind::policy);
    CHECK(r.error().reason == Reason::refusal);
    CHECK(r.error().route == "primary");
    CHECK(r.error().category == "test_category");
    CHECK(r.error().attempts.size() == 1);
    CHECK(primary->calls() == 1);
    CHECK(secondary->calls() == 0);
    CHECK(env.sink->count("fallback") == 0);
    CHECK(env.sink->count("exhausted") == 0);
    auto pol = env.sink->of("policy");
    REQUIRE(pol.size() == 1);
    CHECK(pol[0].category == "test_category");
    CHECK_THROWS_AS(r.value(), FailoverError);
}

TEST_CASE("401 fails over at once, without a retry or a wait") {
    Env env;
    auto primary = std::make_shared<ScriptedTransport>();
    primary->otherwise(http(401, R"({"error":{"message":"Incorrect API key provided"}})"));
    auto secondary = std::make_shared<ScriptedTransport>();
    Router router{env.options(), Route{"primary", FakeAdapter{}, primary}, Route{"secondary", FakeAdapter{}, secondary}};
    router.add_sink(env.sink);

    auto r = router.route_with_fallback(ask());
    REQUIRE(r);
    CHECK(r->route == "secondary");
    CHECK(primary->calls() == 1);
    CHECK(env.clock->slept() == 0s);
    CHECK(r->attempts[0].reason == Reason::auth);
    CHECK(r->attempts[0].kind == FailureKind::terminal);
    CHECK(env.sink->count("retry") == 0);
}

TEST_CASE("the breaker opens at its threshold, skips the route, probes after the open time and closes on success") {
    Env env;
    auto primary = std::make_shared<ScriptedTransport>();
    primary->otherwise(http(503, "{}"));
    auto secondary = std::make_shared<ScriptedTransport>();
    RouteOptions po;
    po.max_attempts = 1;
    po.breaker.open_jitter = 0.0;  // exact open durations
    Router router{env.options(), Route{"primary", FakeAdapter{}, primary, po}, Route{"secondary", FakeAdapter{}, secondary}};
    router.add_sink(env.sink);

    for (int i = 0; i < 5; ++i) REQUIRE(router.route_with_fallback(ask()));
    CHECK(primary->calls() == 5);
    CHECK(router.route<0>().breaker().state() == BreakerState::open);
    auto transitions = env.sink->of("breaker");
    REQUIRE(transitions.size() == 1);
    CHECK(transitions[0].transition.to == BreakerState::open);
    CHECK(transitions[0].transition.open_for == 30s);

    // While open: not called, skipped with a reason, answered by the secondary.
    for (int i = 0; i < 3; ++i) {
        auto r = router.route_with_fallback(ask());
        REQUIRE(r);
        CHECK(r->route == "secondary");
    }
    CHECK(primary->calls() == 5);
    auto skips = env.sink->of("skip");
    REQUIRE(skips.size() == 3);
    CHECK(skips[0].reason == Reason::breaker_open);
    auto fbs = env.sink->of("fallback");
    CHECK(fbs.back().reason == Reason::breaker_open);

    // A failed probe doubles the open duration.
    env.clock->advance(30s);
    REQUIRE(router.route_with_fallback(ask()));
    CHECK(primary->calls() == 6);
    CHECK(router.route<0>().breaker().state() == BreakerState::open);
    CHECK(router.route<0>().breaker().last_open_duration() == 60s);

    env.clock->advance(59s);
    REQUIRE(router.route_with_fallback(ask()));
    CHECK(primary->calls() == 6);  // still open

    // After the open duration, one probe goes through; its success closes the breaker.
    env.clock->advance(1s);
    primary->then(ok_body("recovered"));
    auto r = router.route_with_fallback(ask());
    REQUIRE(r);
    CHECK(r->route == "primary");
    CHECK(r->text == "recovered");
    CHECK(router.route<0>().breaker().state() == BreakerState::closed);
    transitions = env.sink->of("breaker");
    REQUIRE(transitions.size() == 5);  // open, half-open, open, half-open, closed
    CHECK(transitions[1].transition.to == BreakerState::half_open);
    CHECK(transitions[2].transition.to == BreakerState::open);
    CHECK(transitions[3].transition.to == BreakerState::half_open);
    CHECK(transitions[4].transition.to == BreakerState::closed);
}

TEST_CASE("backoff never sleeps past the chain's deadline") {
    Env env;
    auto primary = std::make_shared<ScriptedTransport>(env.clock.get(), 300ms);
    primary->otherwise(http(502, "{}"));
    RouteOptions po = quiet_breaker();
    po.max_attempts = 5;
    po.backoff = Backoff{2s, 8s};
    Router router{env.options(1s), Route{"primary", FakeAdapter{}, primary, po}};

    const auto start = env.clock->now();
    auto r = router.route_with_fallback(ask());
    REQUIRE_FALSE(r);
    CHECK(env.clock->now() - start <= 1s);
    CHECK(env.clock->slept() < 1s);
    for (const auto& a : r.error().attempts) CHECK(a.reason == Reason::server_error);

    SECTION("each attempt's timeout is clipped to what is left") {
        auto ds = primary->deadlines();
        REQUIRE_FALSE(ds.empty());
        CHECK(ds[0].timeout <= 1s);
        CHECK(ds[0].connect_timeout <= ds[0].timeout);
    }
}

TEST_CASE("a Retry-After longer than the cap fails over now and cools the route down") {
    Env env;
    auto primary = std::make_shared<ScriptedTransport>();
    primary->then(http(429, "{}", retry_after("30")));
    auto secondary = std::make_shared<ScriptedTransport>();
    Router router{env.options(), Route{"primary", FakeAdapter{}, primary}, Route{"secondary", FakeAdapter{}, secondary}};
    router.add_sink(env.sink);

    auto r = router.route_with_fallback(ask());
    REQUIRE(r);
    CHECK(r->route == "secondary");
    CHECK(env.clock->slept() == 0s);
    REQUIRE(env.sink->count("cooldown") == 1);
    CHECK(env.sink->of("cooldown")[0].delay == 30s);

    // During the cooldown the primary is skipped; the breaker never counted it.
    REQUIRE(router.route_with_fallback(ask()));
    CHECK(primary->calls() == 1);
    CHECK(env.sink->of("skip").back().reason == Reason::cooling_down);
    CHECK(router.route<0>().breaker().state() == BreakerState::closed);

    env.clock->advance(30s);
    auto r2 = router.route_with_fallback(ask());
    REQUIRE(r2);
    CHECK(r2->route == "primary");
}

TEST_CASE("the retry budget caps retries during a storm") {
    Env env;
    auto primary = std::make_shared<ScriptedTransport>();
    primary->otherwise(http(503, "{}"));
    auto secondary = std::make_shared<ScriptedTransport>();
    RouteOptions po = quiet_breaker();
    po.max_attempts = 3;
    po.retry_budget.capacity = 50;  // 10 retries at cost 5
    Router router{env.options(), Route{"primary", FakeAdapter{}, primary, po}, Route{"secondary", FakeAdapter{}, secondary}};

    for (int i = 0; i < 100; ++i) REQUIRE(router.route_with_fallback(ask()));
    // 100 first attempts plus exactly the 10 retries the bucket could pay for.
    CHECK(primary->calls() == 110);
    CHECK(router.route<0>().retry_budget().tokens() == 0);
    CHECK(secondary->calls() == 100);
}

TEST_CASE("an exhausted chain lists every attempt in order") {
    Env env;
    auto a = std::make_shared<ScriptedTransport>();
    a->otherwise(http(500, "{}"));
    auto b = std::make_shared<ScriptedTransport>();
    b->otherwise(http(404, R"({"error":{"message":"model not found"}})"));
    auto c = std::make_shared<ScriptedTransport>();
    c->otherwise(Failure::of(Reason::connection, "connection refused"));
    Router router{env.options(), Route{"a", FakeAdapter{}, a}, Route{"b", FakeAdapter{}, b},
                  Route{"c", FakeAdapter{}, c, RouteOptions{.max_attempts = 3}}};
    router.add_sink(env.sink);

    auto r = router.route_with_fallback(ask());
    REQUIRE_FALSE(r);
    const auto& at = r.error().attempts;
    REQUIRE(at.size() == 6);  // never more than the sum of max_attempts (2 + 2 + 3), and 404 is not retried
    const std::vector<std::pair<std::string, Reason>> want = {
        {"a", Reason::server_error}, {"a", Reason::server_error}, {"b", Reason::not_found},
        {"c", Reason::connection},   {"c", Reason::connection},   {"c", Reason::connection}};
    for (std::size_t i = 0; i < want.size(); ++i) {
        CHECK(at[i].route == want[i].first);
        CHECK(at[i].reason == want[i].second);
        CHECK_FALSE(at[i].ok);
    }
    CHECK(at[0].status == 500);
    CHECK(at[2].status == 404);
    CHECK(at[3].status == 0);
    CHECK(r.error().reason == Reason::connection);
    CHECK(r.error().route == "c");
    CHECK(env.sink->count("exhausted") == 1);
    CHECK(env.sink->count("fallback") == 2);
}

TEST_CASE("with every route open, a request waits for the first recovery inside its deadline") {
    Env env;
    auto a = std::make_shared<ScriptedTransport>();
    auto b = std::make_shared<ScriptedTransport>();
    RouteOptions o;
    o.breaker.open_jitter = 0.0;
    o.breaker.open_base = 10s;
    RouteOptions o2 = o;
    o2.breaker.open_base = 20s;
    Router router{env.options(), Route{"a", FakeAdapter{}, a, o}, Route{"b", FakeAdapter{}, b, o2}};
    const auto now = env.clock->now();
    for (int i = 0; i < 5; ++i) {
        (void)router.route<0>().breaker().on_failure(now, CircuitBreaker::Permit::call);
        (void)router.route<1>().breaker().on_failure(now, CircuitBreaker::Permit::call);
    }
    REQUIRE(router.route<0>().breaker().state() == BreakerState::open);
    REQUIRE(router.route<1>().breaker().state() == BreakerState::open);

    SECTION("recovery inside the deadline: wait for it, then answer") {
        auto r = router.route_with_fallback(ask());
        REQUIRE(r);
        CHECK(r->route == "a");
        CHECK(env.clock->slept() == 10s);
        CHECK(a->calls() == 1);
    }
    SECTION("recovery after the deadline: fail at once, saying when") {
        ChatRequest req = ask();
        req.timeout = 5s;
        auto r = router.route_with_fallback(req);
        REQUIRE_FALSE(r);
        CHECK(env.clock->slept() == 0s);
        CHECK(r.error().reason == Reason::breaker_open);
        CHECK(r.error().route == "a");
        REQUIRE(r.error().retry_after);
        CHECK(*r.error().retry_after == 10s);
        CHECK(r.error().message.find("'a' in 10000 ms") != std::string::npos);
        CHECK(r.error().attempts.empty());
        CHECK(a->calls() == 0);
        CHECK(b->calls() == 0);
    }
}

TEST_CASE("malformed headers and bodies are classified, not thrown") {
    Env env;
    auto primary = std::make_shared<ScriptedTransport>();
    primary->then(http(503, std::string("\x00\xff<html>", 8), {{"Retry-After", "soon\r\nX-Evil: 1"}}))
        .then(http(200, "{\"text\": \"unterminated"))
        .then(http(200, "[1,2,3]"));
    auto secondary = std::make_shared<ScriptedTransport>();
    secondary->otherwise(http(200, std::string(20000, '[')));
    Router router{env.options(), Route{"primary", FakeAdapter{}, primary, RouteOptions{.max_attempts = 3}},
                  Route{"secondary", FakeAdapter{}, secondary, RouteOptions{.max_attempts = 1}}};
    auto r = router.route_with_fallback(ask());
    REQUIRE_FALSE(r);
    const auto& at = r.error().attempts;
    REQUIRE(at.size() == 4);
    CHECK(at[0].reason == Reason::overloaded);  // 503
    CHECK(at[1].reason == Reason::malformed_response);
    CHECK(at[2].reason == Reason::malformed_response);
    CHECK(at[3].reason == Reason::malformed_response);
    CHECK(r.error().kind == FailureKind::transient);
}

TEST_CASE("an adapter or transport that throws becomes an internal failure, and the chain goes on") {
    Env env;
    auto primary = std::make_shared<ScriptedTransport>();
    primary->otherwise(ScriptedTransport::Step([](const HttpRequest&, Deadline) -> Result<HttpResponse> {
        throw std::runtime_error("bug in transport");
    }));
    auto secondary = std::make_shared<ScriptedTransport>();
    Router router{env.options(), Route{"primary", FakeAdapter{}, primary, RouteOptions{.max_attempts = 1}},
                  Route{"secondary", FakeAdapter{}, secondary}};
    auto r = router.route_with_fallback(ask());
    REQUIRE(r);
    CHECK(r->attempts[0].reason == Reason::internal);
    CHECK(r->attempts[0].message.find("bug in transport") != std::string::npos);
}

TEST_CASE("a sink that throws never breaks a request, and is counted") {
    Env env;
    auto primary = std::make_shared<ScriptedTransport>();
    Router router{env.options(), Route{"primary", FakeAdapter{}, primary}};
    router.add_sink(std::make_shared<CallbackSink>([](const Event&) { throw std::runtime_error("sink down"); }));
    router.add_sink(env.sink);
    auto r = router.route_with_fallback(ask());
    REQUIRE(r);
    CHECK(router.sink_errors() >= 2);              // attempt and success events
    CHECK(env.sink->count("success") == 1);        // the healthy sink still saw everything
}

TEST_CASE("8 threads calling one Router give counts that add up exactly") {
    Env env;
    std::atomic<int> n{0};
    auto primary = std::make_shared<ScriptedTransport>();
    primary->otherwise(ScriptedTransport::Step([&](const HttpRequest&, Deadline) -> Result<HttpResponse> {
        return (n.fetch_add(1) % 3 == 0) ? http(500, "{}") : ok_body("p");
    }));
    auto secondary = std::make_shared<ScriptedTransport>();
    RouteOptions po = quiet_breaker();
    po.max_attempts = 1;
    Router router{env.options(), Route{"primary", FakeAdapter{}, primary, po},
                  Route{"secondary", FakeAdapter{}, secondary}, Route{"canned", Canned{}}};
    router.add_sink(env.sink);

    constexpr int threads = 8, per_thread = 250;
    std::atomic<int> ok{0}, by_primary{0}, by_secondary{0}, attempts{0};
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&] {
            for (int i = 0; i < per_thread; ++i) {
                auto r = router.route_with_fallback(ask());
                if (!r) continue;
                ++ok;
                attempts += static_cast<int>(r->attempts.size());
                (r->route == "primary" ? by_primary : by_secondary)++;
            }
        });
    for (auto& th : pool) th.join();

    const int total = threads * per_thread;
    CHECK(ok == total);
    CHECK(by_primary + by_secondary == total);
    CHECK(primary->calls() == total);
    CHECK(secondary->calls() == by_secondary.load());
    CHECK(by_secondary.load() == (total + 2) / 3);  // every third primary call failed
    CHECK(attempts.load() == primary->calls() + secondary->calls());
    CHECK(static_cast<int>(env.sink->count("attempt")) == attempts.load());
    CHECK(static_cast<int>(env.sink->count("success")) == total);
    CHECK(static_cast<int>(env.sink->count("fallback")) == by_secondary.load());
}

TEST_CASE("schema_invalid gets a repair turn with the errors, on the same route") {
    Env env;
    auto primary = std::make_shared<ScriptedTransport>();
    primary->then(ok_body(R"({"total":"twelve"})")).then(ok_body(R"({"total":12})"));
    Router router{env.options(), Route{"primary", FakeAdapter{}, primary}};
    ChatRequest req = ask();
    req.schema = Schema::parse(R"({"type":"object","required":["total"],"properties":{"total":{"type":"number"}}})");
    auto r = router.route_with_fallback(req);
    REQUIRE(r);
    CHECK(r->json["total"] == 12);
    REQUIRE(primary->calls() == 2);
    CHECK(env.clock->slept() == 0s);
    const auto second = nlohmann::json::parse(primary->requests()[1].body);
    const auto& msgs = second["messages"];
    REQUIRE(msgs.size() == 3);
    CHECK(msgs[1]["role"] == "assistant");
    CHECK(msgs[1]["content"] == R"({"total":"twelve"})");
    CHECK(msgs[2]["content"].get<std::string>().find("/total") != std::string::npos);
}

TEST_CASE("the free route_with_fallback runs a one-off chain over routes the caller keeps") {
    auto t = std::make_shared<ScriptedTransport>();
    t->then(http(401, "{}"));
    Route primary{"primary", FakeAdapter{}, t};
    Route canned{"canned", Canned{"busy"}};
    auto r = route_with_fallback(ask(), primary, canned);
    REQUIRE(r);
    CHECK(r->route == "canned");
    CHECK(r->text == "busy");
    CHECK(t->calls() == 1);
}

TEST_CASE("misconfiguration fails at construction naming the field") {
    auto t = std::make_shared<ScriptedTransport>();
    CHECK_THROWS_WITH(Route("", FakeAdapter{}, t), Catch::Contains("name must not be empty"));
    CHECK_THROWS_WITH(Route("p", FakeAdapter{}, t, RouteOptions{.max_attempts = 0}),
                      Catch::Contains("RouteOptions.max_attempts") && Catch::Contains("'p'"));
    CHECK_THROWS_WITH(Route("p", FakeAdapter{}, std::shared_ptr<ScriptedTransport>{}), Catch::Contains("transport is null"));
    RouteOptions bad;
    bad.breaker.failure_rate = 1.5;
    CHECK_THROWS_WITH(Route("p", FakeAdapter{}, t, bad), Catch::Contains("failure_rate"));
    CHECK_THROWS_WITH((Router{Route{"x", Canned{}}, Route{"x", Canned{}}}), Catch::Contains("duplicate route name 'x'"));
}

TEST_CASE("a DynamicRouter over AnyRoutes built at run time behaves like Router") {
    Env env;
    auto t = std::make_shared<ScriptedTransport>();
    t->otherwise(http(503, "{}"));
    std::vector<AnyRoute> chain;
    const bool have_key = true;  // as if an API key were set
    if (have_key) chain.emplace_back(Route{"primary", FakeAdapter{}, t, RouteOptions{.max_attempts = 1}});
    chain.emplace_back(Route{"canned", Canned{"busy"}});
    DynamicRouter router{std::move(chain), env.options()};
    router.add_sink(env.sink);
    auto r = router.route_with_fallback(ask());
    REQUIRE(r);
    CHECK(r->route == "canned");
    REQUIRE(r->attempts.size() == 2);
    CHECK(r->attempts[0].reason == Reason::overloaded);  // 503
    CHECK(env.sink->of("fallback").at(0).from == "primary");
    CHECK(router.route(0).breaker().window_counts(env.clock->now()).second == 1);
    CHECK_THROWS_WITH(DynamicRouter(std::vector<AnyRoute>{}), Catch::Contains("at least one route"));
}

TEST_CASE("a chain whose only route cools down past the deadline fails at once, saying why and when") {
    Env env;
    auto primary = std::make_shared<ScriptedTransport>();
    primary->then(http(429, "{}", retry_after("120")));
    Router router{env.options(), Route{"primary", FakeAdapter{}, primary}};
    auto first = router.route_with_fallback(ask());
    REQUIRE_FALSE(first);
    CHECK(first.error().reason == Reason::rate_limited);
    auto second = router.route_with_fallback(ask());
    REQUIRE_FALSE(second);
    CHECK(second.error().reason == Reason::cooling_down);
    REQUIRE(second.error().retry_after);
    CHECK(*second.error().retry_after == 120s);
    CHECK(env.clock->slept() == 0s);
    CHECK(primary->calls() == 1);
}

TEST_CASE("schema gate: a local reply gets no wasted repair turn, and absurd nesting is refused before parsing") {
    Env env;
    auto t = std::make_shared<ScriptedTransport>();
    t->then(ok_body(std::string(5000, '[') + std::string(5000, ']'))).then(ok_body(R"({"total":1})"));
    Router router{env.options(), Route{"canned", Canned{R"({"status":"busy"})"}}, Route{"primary", FakeAdapter{}, t}};
    ChatRequest req = ask();
    req.schema = Schema::parse(R"({"type":"object","required":["total"]})");
    auto r = router.route_with_fallback(req);
    REQUIRE(r);
    CHECK(r->route == "primary");
    REQUIRE(r->attempts.size() == 3);
    CHECK(r->attempts[0].route == "canned");  // one attempt only: a canned text cannot be repaired
    CHECK(r->attempts[0].reason == Reason::schema_invalid);
    CHECK(r->attempts[1].message.find("nests deeper than") != std::string::npos);
    CHECK(r->attempts[2].ok);
}

TEST_CASE("robustness: route_with_fallback never throws, and bad request deadlines are values") {
    Env env;
    auto t = std::make_shared<ScriptedTransport>();
    SECTION("a throwing token counter becomes an internal failure") {
        RouterOptions o = env.options();
        o.token_counter = [](const ChatRequest&) -> std::int64_t { throw std::runtime_error("tokenizer down\r\nX: y"); };
        RouteOptions windowed;
        windowed.context_window = 1000;
        Router router{o, Route{"primary", FakeAdapter{}, t, windowed}};
        auto r = router.route_with_fallback(ask());
        REQUIRE_FALSE(r);
        CHECK(r.error().reason == Reason::internal);
        CHECK(r.error().message.find("tokenizer down") != std::string::npos);
        CHECK(r.error().message.find('\n') == std::string::npos);  // cleaned
    }
    SECTION("a zero or negative request timeout is a bad_request value") {
        Router router{env.options(), Route{"primary", FakeAdapter{}, t}};
        ChatRequest req = ask();
        req.timeout = std::chrono::milliseconds{0};
        auto r = router.route_with_fallback(req);
        REQUIRE_FALSE(r);
        CHECK(r.error().reason == Reason::bad_request);
        CHECK(r.error().message.find("ChatRequest.timeout") != std::string::npos);
        CHECK(t->calls() == 0);
    }
    SECTION("an enormous request timeout is clipped, not overflowed") {
        Router router{env.options(), Route{"primary", FakeAdapter{}, t}};
        ChatRequest req = ask();
        req.timeout = std::chrono::milliseconds::max();
        auto r = router.route_with_fallback(req);
        REQUIRE(r);
    }
}

TEST_CASE("a failure that opens the route's breaker fails over at once, without a backoff") {
    Env env;
    auto primary = std::make_shared<ScriptedTransport>();
    primary->otherwise(http(500, "{}"));
    auto secondary = std::make_shared<ScriptedTransport>();
    RouteOptions o;
    o.max_attempts = 3;
    o.breaker.consecutive_failures = 1;
    Router router{env.options(), Route{"primary", FakeAdapter{}, primary, o}, Route{"secondary", FakeAdapter{}, secondary}};
    auto r = router.route_with_fallback(ask());
    REQUIRE(r);
    CHECK(r->route == "secondary");
    CHECK(primary->calls() == 1);
    CHECK(env.clock->slept() == 0s);
    CHECK(router.route<0>().retry_budget().tokens() == 500);  // nothing spent on a retry that could not happen
}

TEST_CASE("a short 429 also holds other requests off the route while it is waited out") {
    Env env;
    auto primary = std::make_shared<ScriptedTransport>();
    primary->then(http(429, "{}", retry_after("2")));
    Router router{env.options(), Route{"primary", FakeAdapter{}, primary}, Route{"canned", Canned{}}};
    auto first = router.route_with_fallback(ask());  // waits 2 s, then answers on the retry
    REQUIRE(first);
    CHECK(first->route == "primary");
    CHECK(router.route<0>().cooldown_until() == env.clock->now());  // the cooldown ended as the retry went out
}

TEST_CASE("budgets: an explicitly passed in-memory store enforces its ceiling over its window") {
    ManualClock clock;
    auto store = std::make_shared<InMemoryBudgetStore>(std::chrono::hours{1});
    Budgets b(std::chrono::hours{1}, store);
    b.limit("acme", 1.0);
    b.charge("acme", 0.6, clock.wall_now());
    CHECK(b.spent("acme", clock.wall_now()) == Approx(0.6));
    CHECK_FALSE(b.affords("acme", 0.5, clock.wall_now()));
    CHECK(b.affords("acme", 0.3, clock.wall_now()));
    CHECK(b.affords("globex", 100.0, clock.wall_now()));  // no ceiling
    clock.advance(std::chrono::minutes{61});
    CHECK(b.spent("acme", clock.wall_now()) == Approx(0.0));
    CHECK_THROWS_WITH(b.limit("x", -1.0), Catch::Contains("'x'"));
}

// ---- admission: our own limit on requests in flight, never a route's fault ----------------------

namespace {

/// A transport whose calls block until released: requests that stay in flight.
struct Held {
    std::promise<void> release;
    std::shared_future<void> go = release.get_future().share();
    std::atomic<int> entered{0};
    std::shared_ptr<ScriptedTransport> transport = std::make_shared<ScriptedTransport>();
    Held() {
        transport->otherwise([this](const HttpRequest&, Deadline) -> Result<HttpResponse> {
            ++entered;
            go.wait();
            return ok_body("hi");
        });
    }
    /// Spins (yielding, never sleeping) until `done` holds.
    template <class Pred>
    static void until(Pred done) {
        while (!done()) std::this_thread::yield();
    }
};

}  // namespace

TEST_CASE("a request over the admission limit fails at once with local_resource, unsent and charged to no route",
          "[admission]") {
    Env env;
    RouterOptions opts = env.options();
    opts.max_in_flight = 2;
    opts.admission_wait = 0ms;  // load shedding: no wait
    Held held;
    Router router{opts, Route{"primary", FakeAdapter{}, held.transport}};
    router.add_sink(env.sink);
    CHECK(router.max_in_flight() == 2);
    const auto before = router.route<0>().breaker().window_counts(env.clock->now());

    std::vector<Result<ChatResponse>> answers(2, Failure::of(Reason::internal, "not run"));
    std::vector<std::thread> running;
    for (std::size_t i = 0; i < 2; ++i) running.emplace_back([&, i] { answers[i] = router.route_with_fallback(ask()); });
    Held::until([&] { return held.entered.load() == 2; });
    CHECK(router.in_flight() == 2);

    const auto third = router.route_with_fallback(ask("other"));
    REQUIRE_FALSE(third);
    CHECK(third.error().reason == Reason::local_resource);
    CHECK(third.error().kind == FailureKind::terminal);
    CHECK(third.error().message.find("admission limit: 2 requests in flight") != std::string::npos);
    CHECK(third.error().attempts.empty());
    CHECK(held.transport->calls() == 2);  // never sent
    // Not the route's fault: its breaker and retry budget saw nothing.
    CHECK(router.route<0>().breaker().window_counts(env.clock->now()) == before);
    CHECK(router.route<0>().breaker().state() == BreakerState::closed);
    const auto exhausted = env.sink->of("exhausted");
    REQUIRE(exhausted.size() == 1);
    CHECK(exhausted[0].reason == Reason::local_resource);
    CHECK(exhausted[0].tenant == "other");
    CHECK(exhausted[0].number == 0);

    held.release.set_value();
    for (auto& t : running) t.join();
    for (const auto& a : answers) CHECK((a && a->text == "hi"));
    CHECK(router.in_flight() == 0);
    CHECK(router.route_with_fallback(ask()));  // a slot is free again
}

TEST_CASE("a request over the admission limit waits for a slot, then runs (a stream shares the limit)", "[admission]") {
    Env env;
    RouterOptions opts = env.options();
    opts.max_in_flight = 1;  // admission_wait unset: up to the request's deadline
    Held held;
    Router router{opts, Route{"primary", FakeAdapter{}, held.transport}};

    Result<ChatResponse> first = Failure::of(Reason::internal, "not run");
    Result<ChatResponse> second = Failure::of(Reason::internal, "not run");
    std::string streamed;
    std::thread a([&] { first = router.route_with_fallback(ask()); });
    Held::until([&] { return held.entered.load() == 1; });
    std::thread b([&] {
        second = router.stream(ask(), [&](const StreamEvent& e) {
            if (e.kind == StreamEvent::Kind::delta && e.delta->kind == StreamDelta::Kind::text) streamed += e.delta->text;
        });
    });
    Held::until([&] { return router.waiting_for_admission() == 1; });
    CHECK(held.transport->calls() == 1);  // the second waits before anything is sent
    CHECK(router.in_flight() == 1);

    held.release.set_value();
    a.join();
    b.join();
    REQUIRE(first);
    REQUIRE(second);
    CHECK(second->text == "hi");
    CHECK(streamed == "hi");
    CHECK(held.transport->calls() == 2);
    CHECK(router.waiting_for_admission() == 0);
    CHECK(router.in_flight() == 0);
}

TEST_CASE("a stop request ends the wait for admission as cancelled", "[admission]") {
    Env env;
    RouterOptions opts = env.options();
    opts.max_in_flight = 1;
    Held held;
    Router router{opts, Route{"primary", FakeAdapter{}, held.transport}};
    std::thread a([&] { (void)router.route_with_fallback(ask()); });
    Held::until([&] { return held.entered.load() == 1; });

    std::stop_source stop;
    Result<ChatResponse> waited = Failure::of(Reason::internal, "not run");
    std::thread b([&] { waited = router.route_with_fallback(ask(), stop.get_token()); });
    Held::until([&] { return router.waiting_for_admission() == 1; });
    stop.request_stop();
    b.join();
    REQUIRE_FALSE(waited);
    CHECK(waited.error().reason == Reason::cancelled);
    CHECK(waited.error().attempts.empty());
    CHECK(held.transport->calls() == 1);

    held.release.set_value();
    a.join();
}

TEST_CASE("the default admission limit follows the process's descriptor limit", "[admission]") {
    Env env;
    Router limited{env.options(), Route{"canned", Canned{"hi"}}};
    CHECK(limited.max_in_flight() == detail::engine::descriptor_budget());
    struct rlimit lim {};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &lim) == 0);
    if (lim.rlim_cur != RLIM_INFINITY) {
        const auto soft = static_cast<std::size_t>(lim.rlim_cur);
        CHECK(limited.max_in_flight() >= 1);
        CHECK(limited.max_in_flight() * 3 + 128 <= std::max<std::size_t>(soft, 131));
    }
    RouterOptions none = env.options();
    none.max_in_flight = 0;
    Router unlimited{none, Route{"canned", Canned{"hi"}}};
    CHECK(unlimited.max_in_flight() == 0);
    CHECK(unlimited.route_with_fallback(ask()));
    RouterOptions bad = env.options();
    bad.admission_wait = -1ms;
    CHECK_THROWS_AS((Router{bad, Route{"canned", Canned{"hi"}}}), std::invalid_argument);
}
