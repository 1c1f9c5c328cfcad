// SPDX-License-Identifier: MIT
// Route groups and per-route rate limits: deployments of one model in one
// position of the chain, ordered per request by weight, by fewest in flight or
// by latency; a failing or limited deployment hands the request to another of
// the group before the chain moves on; each deployment keeps its own breaker,
// limits and metrics. Scripted transports on a ManualClock (a call "takes" its
// latency on the clock), plus one run over loopback on the async driver.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "support/catch.hpp"
#include "support/fakes.hpp"
#include "support/loopback.hpp"

using namespace failover;
using namespace failover_test;
using namespace std::chrono_literals;
using detail::engine::balance;

namespace {

struct Env {
    std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
    std::shared_ptr<RecordingSink> sink = std::make_shared<RecordingSink>();
    RouterOptions options() const {
        RouterOptions o;
        o.clock = clock;
        o.sleeper = clock;
        o.seed = 7;
        return o;
    }
};

ChatRequest ask() {
    ChatRequest r;
    r.messages = {user("hello")};
    r.tenant = "acme";
    return r;
}

// Deterministic numbers in [0, 1) for balance().
struct Draws {
    Jitter j{99};
    double operator()() { return j.uniform(); }
};

}  // namespace

TEST_CASE("weighted groups answer in proportion to the weights, within 1.5 percentage points", "[groups]") {
    Env env;
    auto a = std::make_shared<ScriptedTransport>();
    auto b = std::make_shared<ScriptedTransport>();
    auto c = std::make_shared<ScriptedTransport>();
    Router router{env.options(),
                  RouteGroup{"gpt", GroupOptions{.balance = Balance::weighted, .weights = {1, 2, 5}},
                             Route{"a", FakeAdapter{}, a}, Route{"b", FakeAdapter{}, b}, Route{"c", FakeAdapter{}, c}},
                  Route{"canned", Canned{}}};
    router.add_sink(env.sink);
    const int n = 8000;
    std::map<std::string, int> answered;
    for (int i = 0; i < n; ++i) {
        auto r = router.route_with_fallback(ask());
        REQUIRE(r);
        ++answered[r->route];
    }
    // Expected shares 1/8, 2/8, 5/8; at n = 8000 one standard deviation is at most 0.55 points.
    CHECK(std::abs(answered["a"] / double(n) - 0.125) < 0.015);
    CHECK(std::abs(answered["b"] / double(n) - 0.25) < 0.015);
    CHECK(std::abs(answered["c"] / double(n) - 0.625) < 0.015);
    CHECK(answered["canned"] == 0);
    CHECK(a->calls() + b->calls() + c->calls() == n);  // one attempt each: the first choice answered
    CHECK(env.sink->count("fallback") == 0);
    // Metrics name the deployment.
    CHECK(env.sink->of("attempt").front().route != "gpt");
}

TEST_CASE("a failing deployment hands the request to another of its group before the chain moves on", "[groups]") {
    Env env;
    auto sick = std::make_shared<ScriptedTransport>();
    sick->otherwise(http(500, "{}"));
    auto well = std::make_shared<ScriptedTransport>();
    auto next = std::make_shared<ScriptedTransport>();
    RouteOptions once;
    once.max_attempts = 1;
    std::vector<ChainLink> links;
    links.emplace_back(RouteGroup{"gpt", GroupOptions{.weights = {1000, 1}}, Route{"sick", FakeAdapter{}, sick, once},
                                  Route{"well", FakeAdapter{}, well, once}});
    links.emplace_back(AnyRoute{Route{"next", FakeAdapter{}, next}});
    DynamicRouter router{std::move(links), env.options()};
    router.add_sink(env.sink);
    REQUIRE(router.size() == 3);  // the group's deployments count one by one
    CHECK(router.route(0).name() == "sick");

    for (int i = 0; i < 20; ++i) {
        auto r = router.route_with_fallback(ask());
        REQUIRE(r);
        CHECK(r->route == "well");
    }
    CHECK(next->calls() == 0);
    // Each deployment has its own breaker: the sick one opened after its 5 failures in a
    // row, and from then on it is skipped, not called.
    CHECK(router.route(0).breaker().state() == BreakerState::open);
    CHECK(router.route(1).breaker().state() == BreakerState::closed);
    CHECK(sick->calls() == 5);
    const auto hops = env.sink->of("fallback");
    REQUIRE(hops.size() == 20);
    CHECK(hops.front().from == "sick");
    CHECK(hops.front().to == "well");
    CHECK(hops.back().reason == Reason::breaker_open);
}

TEST_CASE("a deployment at its rate limit is avoided until its minute has room again", "[groups]") {
    Env env;
    auto capped = std::make_shared<ScriptedTransport>();
    auto spare = std::make_shared<ScriptedTransport>();
    RouteOptions ten_a_minute;
    ten_a_minute.rate_limit.requests_per_minute = 10;
    Router router{env.options(),
                  RouteGroup{"gpt", GroupOptions{.weights = {1000, 1}}, Route{"capped", FakeAdapter{}, capped, ten_a_minute},
                             Route{"spare", FakeAdapter{}, spare}}};
    router.add_sink(env.sink);
    std::map<std::string, int> answered;
    for (int i = 0; i < 30; ++i) ++answered[router.route_with_fallback(ask())->route];
    CHECK(answered["capped"] == 10);
    CHECK(answered["spare"] == 20);
    CHECK(capped->calls() == 10);  // never sent over its limit: no 429 to provoke
    auto skips = env.sink->of("skip");
    CHECK(skips.size() == 20);
    CHECK(std::all_of(skips.begin(), skips.end(),
                      [](const Recorded& s) { return s.route == "capped" && s.reason == Reason::local_rate_limit; }));

    // Half a minute refills half the bucket.
    env.clock->advance(30s);
    answered.clear();
    for (int i = 0; i < 10; ++i) ++answered[router.route_with_fallback(ask())->route];
    CHECK(answered["capped"] == 5);
    CHECK(answered["spare"] == 5);
}

TEST_CASE("a route's token rate limit counts the prompt and the output, and an all-limited chain says when it has room",
          "[groups]") {
    Env env;
    auto t = std::make_shared<ScriptedTransport>();
    RouteOptions o;
    o.rate_limit.tokens_per_minute = 1200;
    o.expected_output_tokens = 500;  // each request: 50 prompt tokens + 500
    RouterOptions ro = env.options();
    ro.timeout = 10s;
    ro.token_counter = [](const ChatRequest&) { return std::int64_t{50}; };
    Router router{ro, Route{"only", FakeAdapter{}, t, o}};
    router.add_sink(env.sink);
    CHECK(router.route_with_fallback(ask()));
    CHECK(router.route_with_fallback(ask()));
    auto r = router.route_with_fallback(ask());  // 100 tokens left: no room for 550
    REQUIRE_FALSE(r);
    CHECK(r.error().reason == Reason::local_rate_limit);
    CHECK(r.error().attempts.empty());  // nothing was sent
    REQUIRE(r.error().retry_after);
    // The bucket needs 450 more tokens: 22.5 s at 20 tokens a second, after this request's
    // 10 s deadline (so it did not wait).
    CHECK(*r.error().retry_after == 22500ms);
    CHECK(env.clock->slept() == 0s);
    CHECK(t->calls() == 2);

    // With max_tokens the request asks for less output, and fits.
    ChatRequest small = ask();
    small.max_tokens = 50;  // 100 tokens: exactly what is left
    CHECK(router.route_with_fallback(small));
    // One request over a whole minute's tokens can never go: a skip with no recovery time.
    ChatRequest huge = ask();
    huge.max_tokens = 5000;
    auto never = router.route_with_fallback(huge);
    REQUIRE_FALSE(never);
    CHECK(never.error().reason == Reason::local_rate_limit);
    CHECK_FALSE(never.error().retry_after);
}

TEST_CASE("latency balancing prefers the faster deployment and moves away when it starts failing", "[groups]") {
    Env env;
    auto slow = std::make_shared<ScriptedTransport>(env.clock.get(), 400ms);
    auto fast = std::make_shared<ScriptedTransport>(env.clock.get(), 50ms);
    RouteOptions o;
    o.max_attempts = 1;
    o.attempt_timeout = 5s;
    o.breaker.consecutive_failures = 0;  // the breaker stays out of it: latency alone decides
    o.breaker.minimum_calls = 1000000;
    Router router{env.options(), RouteGroup{"gpt", GroupOptions{.balance = Balance::latency},
                                            Route{"slow", FakeAdapter{}, slow, o}, Route{"fast", FakeAdapter{}, fast, o}}};
    std::map<std::string, int> answered;
    for (int i = 0; i < 200; ++i) ++answered[router.route_with_fallback(ask())->route];
    // Each is measured once (an unmeasured deployment goes first), then the fast one wins.
    CHECK(answered["fast"] >= 198);
    CHECK(slow->calls() <= 2);
    REQUIRE(router.route<0>().deployment(1).load().latency);
    CHECK(*router.route<0>().deployment(1).load().latency == 50ms);

    // The fast deployment starts failing fast: a failure counts as the attempt's whole
    // timeout, so it stops looking fast and the slow one takes the traffic.
    fast->otherwise(http(503, "{}"));
    answered.clear();
    for (int i = 0; i < 50; ++i) ++answered[router.route_with_fallback(ask())->route];
    CHECK(answered["slow"] == 50);
    CHECK(fast->calls() - 198 <= 3);
}

TEST_CASE("balance(): least busy first, and latency's two choices never put the costliest first", "[groups]") {
    std::vector<std::uint32_t> order;
    Draws draws;
    const std::vector<RouteLoad> busy{{5, {}}, {0, {}}, {2, {}}};
    balance(Balance::least_busy, busy, {}, draws, order);
    CHECK(order == std::vector<std::uint32_t>{1, 2, 0});

    // Costs 10 ms x 1, 20 ms x 1, 10 ms x 4 in flight: the last is the costliest.
    const std::vector<RouteLoad> loads{{0, 10ms}, {0, 20ms}, {3, 10ms}};
    std::map<std::uint32_t, int> first;
    for (int i = 0; i < 3000; ++i) {
        balance(Balance::latency, loads, {}, draws, order);
        REQUIRE(order.size() == 3);
        ++first[order[0]];
        // After the first, the rest by cost.
        if (order[0] == 1) CHECK(order[1] == 0);
    }
    CHECK(first[2] == 0);
    // The cheapest wins whenever it is one of the two choices: 2 times in 3.
    CHECK(std::abs(first[0] / 3000.0 - 2.0 / 3.0) < 0.04);

    // Unmeasured deployments go first, so each gets measured.
    const std::vector<RouteLoad> fresh{{0, 10ms}, {0, {}}};
    for (int i = 0; i < 20; ++i) {
        balance(Balance::latency, fresh, {}, draws, order);
        CHECK(order[0] == 1);
    }
}

TEST_CASE("RouteGroup and RateLimit refuse what would fail every request", "[groups]") {
    auto t = std::make_shared<ScriptedTransport>();
    CHECK_THROWS_AS(RouteGroup("g", GroupOptions{.weights = {1, 2}}, Route{"a", FakeAdapter{}, t}), std::invalid_argument);
    CHECK_THROWS_AS(RouteGroup("g", GroupOptions{.weights = {0}}, Route{"a", FakeAdapter{}, t}), std::invalid_argument);
    CHECK_THROWS_AS(RouteGroup("", GroupOptions{}, Route{"a", FakeAdapter{}, t}), std::invalid_argument);
    CHECK_THROWS_AS(RouteGroup("g", std::vector<AnyRoute>{}), std::invalid_argument);
    RouteOptions o;
    o.rate_limit.requests_per_minute = -1;
    CHECK_THROWS_AS(Route("a", FakeAdapter{}, t, o), std::invalid_argument);
    // Deployment names are route names: unique across the chain.
    CHECK_THROWS_AS(Router(RouteGroup("g", GroupOptions{}, Route{"a", FakeAdapter{}, t}), Route{"a", FakeAdapter{}, t}),
                    std::invalid_argument);
}

TEST_CASE("on the async driver a least-busy group spreads requests in flight evenly over its deployments",
          "[groups][async]") {
    LoopbackFixture fx;
    EventLoop loop{EventLoopOptions{.clock = fx.clock}};
    fx.mock.route("a").otherwise(failover_mock::Fault::ok("from a"));
    fx.mock.route("b").otherwise(failover_mock::Fault::ok("from b"));
    Router router{fx.options(), RouteGroup{"gpt", GroupOptions{.balance = Balance::least_busy},
                                           Route{"a", fx.openai("a"), fx.http}, Route{"b", fx.openai("b"), fx.http}}};
    router.add_sink(fx.sink);
    const int n = 40;
    int done = 0;
    std::map<std::string, int> answered;
    for (int i = 0; i < n; ++i)
        router.submit(loop, ask(), [&](Result<ChatResponse> r) {
            ++done;
            if (r) ++answered[r->route];
        });
    for (int turns = 0; done < n; ++turns) {
        REQUIRE(turns < 5000);
        loop.run_once(20ms);
    }
    CHECK(answered["a"] + answered["b"] == n);
    // All start before any answers: each goes to the deployment with fewer in flight.
    CHECK(std::abs(answered["a"] - answered["b"]) <= 2);
    CHECK(fx.mock.route("a").requests() + fx.mock.route("b").requests() == static_cast<std::size_t>(n));
    CHECK(router.route<0>().deployment(0).load().in_flight == 0);  // every attempt ended
}
