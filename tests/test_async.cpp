// SPDX-License-Identifier: MIT
// The async driver (Router::submit on an EventLoop) through real HTTP on
// loopback: the same answers, attempts and events as route_with_fallback, many
// requests in flight on one thread, timers on the injected clock instead of a
// sleeping thread, cancellation, the admission limit, and a loop that ends
// every request it holds when it is destroyed. The tests drive the loop
// themselves (run_once) and move the ManualClock to the next timer: nothing
// sleeps for real.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "support/catch.hpp"
#include "support/paths.hpp"
#include "support/fakes.hpp"
#include "support/loopback.hpp"

using namespace failover;
using namespace failover_test;
using namespace std::chrono_literals;
using failover_mock::Fault;

namespace {

ChatRequest ask(std::string tenant = "acme") {
    ChatRequest r;
    r.messages = {user("hello")};
    r.tenant = std::move(tenant);
    return r;
}

/// A run-time chain (AnyRoute is move-only: no initializer list).
template <class... R>
std::vector<AnyRoute> chain(R... routes) {
    std::vector<AnyRoute> v;
    (v.emplace_back(std::move(routes)), ...);
    return v;
}

/// Drives `loop` on this thread until `done()` holds: a turn at a time, and when nothing is
/// in flight but a timer, the manual clock jumps to it (a backoff or recovery wait passes at
/// once, with no thread asleep).
template <class Done>
void drive(EventLoop& loop, ManualClock& clock, Done done) {
    for (int turns = 0; !done(); ++turns) {
        REQUIRE(turns < 5000);
        loop.run_once(20ms);
        if (loop.transfers() == 0 && !done())
            if (auto due = loop.next_due(); due && *due > clock.now()) clock.advance(*due - clock.now());
    }
}

struct AsyncFixture : LoopbackFixture {
    EventLoop loop{EventLoopOptions{.clock = clock}};
};

/// Collects the completion of one submitted request, and the thread it ran on.
struct Completion {
    std::optional<Result<ChatResponse>> result;
    std::thread::id thread{};
    int calls = 0;
    std::function<void(Result<ChatResponse>)> callback() {
        return [this](Result<ChatResponse> r) {
            ++calls;
            thread = std::this_thread::get_id();
            result = std::move(r);
        };
    }
    bool done() const { return result.has_value(); }
};

}  // namespace

TEST_CASE("an async request is retried on the loop's timer and answered as route_with_fallback answers it", "[async]") {
    AsyncFixture fx;
    fx.mock.route("primary").then(Fault::status(500));
    Router router{fx.options(), Route{"primary", fx.openai("primary"), fx.http}};
    router.add_sink(fx.sink);

    Completion c;
    const auto t0 = fx.clock->now();
    router.submit(fx.loop, ask(), c.callback());
    CHECK_FALSE(c.done());  // submit returns before anything is sent
    drive(fx.loop, *fx.clock, [&] { return c.done(); });

    REQUIRE(*c.result);
    const ChatResponse& r = **c.result;
    CHECK(r.route == "primary");
    CHECK(r.text == "ok");
    REQUIRE(r.attempts.size() == 2);
    CHECK(r.attempts[0].reason == Reason::server_error);
    CHECK(r.attempts[0].status == 500);
    CHECK(r.attempts[1].ok);
    CHECK(c.thread == std::this_thread::get_id());  // on the thread that drives the loop
    CHECK(c.calls == 1);
    CHECK(fx.mock.route("primary").requests() == 2);
    // The backoff passed on the loop's timer: the clock moved by it, yet no one slept.
    const auto retries = fx.sink->of("retry");
    REQUIRE(retries.size() == 1);
    CHECK(retries[0].delay > 0ns);
    CHECK(fx.clock->now() - t0 >= retries[0].delay);
    CHECK(fx.clock->slept() == 0ns);
    CHECK(fx.sink->count("attempt") == 2);
    CHECK(fx.sink->count("success") == 1);
    CHECK(fx.loop.idle());
}

TEST_CASE("an async request fails over with every attempt listed and every hop an event", "[async]") {
    AsyncFixture fx;
    fx.mock.route("primary").otherwise(Fault::status(503));
    RouteOptions two;
    two.max_attempts = 2;
    Router router{fx.options(), Route{"primary", fx.openai("primary"), fx.http, two},
                  Route{"secondary", fx.anthropic("secondary"), fx.http}};
    router.add_sink(fx.sink);

    auto answer = router.submit(fx.loop, ask());
    drive(fx.loop, *fx.clock, [&] { return answer.wait_for(0s) == std::future_status::ready; });
    const auto r = answer.get();
    REQUIRE(r);
    CHECK(r->route == "secondary");
    REQUIRE(r->attempts.size() == 3);
    CHECK(r->attempts[0].route == "primary");
    CHECK(r->attempts[1].route == "primary");
    CHECK(r->attempts[2].route == "secondary");
    CHECK(fx.mock.route("primary").requests() == 2);
    CHECK(fx.mock.route("secondary").requests() == 1);
    const auto hops = fx.sink->of("fallback");
    REQUIRE(hops.size() == 1);
    CHECK(hops[0].from == "primary");
    CHECK(hops[0].to == "secondary");
    CHECK(hops[0].reason == Reason::overloaded);  // 503
    CHECK(fx.sink->count("attempt") == 3);  // one event per request the providers received
}

TEST_CASE("an async chain that is exhausted ends as one Failure listing every attempt", "[async]") {
    AsyncFixture fx;
    fx.mock.route("a").otherwise(Fault::status(400));
    fx.mock.route("b").otherwise(Fault::status(401));
    DynamicRouter router{chain(Route{"a", fx.openai("a"), fx.http}, Route{"b", fx.gemini("b"), fx.http}), fx.options()};
    Completion c;
    router.submit(fx.loop, ask(), c.callback());
    drive(fx.loop, *fx.clock, [&] { return c.done(); });
    REQUIRE_FALSE(*c.result);
    const Failure& f = c.result->error();
    REQUIRE(f.attempts.size() == 2);
    CHECK(f.attempts[0].route == "a");
    CHECK(f.attempts[1].route == "b");
    CHECK(f.message.find("all routes failed") != std::string::npos);
}

TEST_CASE("one thread holds many requests in flight at once", "[async]") {
    AsyncFixture fx;
    fx.mock.route("slow").otherwise(Fault::ok("later").delayed(200ms));
    Router router{fx.options(), Route{"slow", fx.openai("slow"), fx.http}};
    constexpr int n = 48;
    std::vector<Completion> done(n);
    for (auto& c : done) router.submit(fx.loop, ask(), c.callback());
    std::size_t most = 0;
    drive(fx.loop, *fx.clock, [&] {
        most = std::max(most, fx.loop.transfers());
        return std::all_of(done.begin(), done.end(), [](const Completion& c) { return c.done(); });
    });
    CHECK(most == n);  // every request was on the wire at the same time, from this one thread
    for (const auto& c : done) {
        REQUIRE(*c.result);
        CHECK((*c.result)->text == "later");
        CHECK(c.thread == std::this_thread::get_id());
    }
    CHECK(fx.mock.route("slow").requests() == static_cast<std::size_t>(n));
}

TEST_CASE("a stop request ends an async transfer at once as cancelled, never a breaker failure", "[async]") {
    AsyncFixture fx;
    fx.mock.route("hung").then(Fault::hang());
    Router router{fx.options(), Route{"hung", fx.openai("hung"), fx.http}};
    router.add_sink(fx.sink);
    const auto before = router.route<0>().breaker().window_counts(fx.clock->now());

    std::stop_source stop;
    Completion c;
    router.submit(fx.loop, ask(), c.callback(), stop.get_token());
    drive(fx.loop, *fx.clock, [&] { return fx.mock.route("hung").requests() == 1; });
    CHECK(fx.loop.transfers() == 1);
    stop.request_stop();
    drive(fx.loop, *fx.clock, [&] { return c.done(); });

    REQUIRE_FALSE(*c.result);
    CHECK(c.result->error().reason == Reason::cancelled);
    REQUIRE(c.result->error().attempts.size() == 1);
    CHECK(c.result->error().attempts[0].reason == Reason::cancelled);
    CHECK(router.route<0>().breaker().window_counts(fx.clock->now()) == before);
    CHECK(router.route<0>().breaker().state() == BreakerState::closed);
    CHECK(fx.loop.transfers() == 0);
}

TEST_CASE("a stop request cuts an async backoff wait short", "[async]") {
    AsyncFixture fx;
    fx.mock.route("flaky").otherwise(Fault::status(500));
    Router router{fx.options(), Route{"flaky", fx.openai("flaky"), fx.http}};
    std::stop_source stop;
    Completion c;
    router.submit(fx.loop, ask(), c.callback(), stop.get_token());
    // Run until the first attempt failed and the retry waits on a timer.
    for (int i = 0; i < 1000 && !(fx.loop.timers() == 1 && fx.loop.transfers() == 0); ++i) fx.loop.run_once(20ms);
    REQUIRE(fx.loop.timers() == 1);
    const auto at = fx.clock->now();
    stop.request_stop();
    for (int i = 0; i < 1000 && !c.done(); ++i) fx.loop.run_once(20ms);  // the clock never moves
    REQUIRE(c.done());
    REQUIRE_FALSE(*c.result);
    CHECK(c.result->error().reason == Reason::cancelled);
    CHECK(c.result->error().attempts.size() == 1);
    CHECK(fx.clock->now() == at);
    CHECK(fx.mock.route("flaky").requests() == 1);  // the retry was never sent
    CHECK(fx.loop.idle());
}

TEST_CASE("a destroyed event loop ends every request it holds as cancelled", "[async]") {
    LoopbackFixture fx;
    fx.mock.route("hung").then(Fault::hang());
    fx.mock.route("flaky").otherwise(Fault::status(500));
    Router hung{fx.options(), Route{"hung", fx.openai("hung"), fx.http}};
    Router flaky{fx.options(), Route{"flaky", fx.openai("flaky"), fx.http}};
    Completion in_flight, waiting, queued;
    {
        EventLoop loop{EventLoopOptions{.clock = fx.clock}};
        hung.submit(loop, ask(), in_flight.callback());
        flaky.submit(loop, ask(), waiting.callback());
        for (int i = 0; i < 1000 && !(fx.mock.route("hung").requests() == 1 && loop.timers() == 1); ++i)
            loop.run_once(20ms);
        REQUIRE(loop.timers() == 1);  // flaky waits for its retry; hung is on the wire
        hung.submit(loop, ask(), queued.callback());  // posted, never run
    }
    for (auto* c : {&in_flight, &waiting, &queued}) {
        REQUIRE(c->done());
        CHECK(c->calls == 1);
        REQUIRE_FALSE(*c->result);
        CHECK(c->result->error().reason == Reason::cancelled);
    }
    CHECK(fx.mock.route("flaky").requests() == 1);
}

TEST_CASE("an event loop on its own thread answers futures, and refuses a second driver", "[async]") {
    LoopbackFixture fx;
    fx.mock.route("a").then(Fault::ok("from a"));
    Router router{fx.options(), Route{"a", fx.openai("a"), fx.http}};
    EventLoop loop;
    loop.start();
    CHECK_THROWS_AS(loop.run_once(), std::logic_error);
    auto answer = router.submit(loop, ask());
    const auto r = answer.get();  // this thread waits; the loop's thread works
    REQUIRE(r);
    CHECK(r->text == "from a");
    loop.stop();
    CHECK_NOTHROW(loop.run_once());  // stopped: this thread may drive it now
}

TEST_CASE("async requests share the router's admission limit and wait on the loop for a slot", "[async][admission]") {
    AsyncFixture fx;
    fx.mock.route("slow").otherwise(Fault::ok("later").delayed(100ms));
    RouterOptions opts = fx.options();
    opts.max_in_flight = 2;
    Router router{opts, Route{"slow", fx.openai("slow"), fx.http}};
    std::vector<Completion> done(5);
    for (auto& c : done) router.submit(fx.loop, ask(), c.callback());
    std::size_t most = 0;
    drive(fx.loop, *fx.clock, [&] {
        most = std::max(most, fx.loop.transfers());
        return std::all_of(done.begin(), done.end(), [](const Completion& c) { return c.done(); });
    });
    CHECK(most == 2);
    for (const auto& c : done) CHECK(*c.result);
    CHECK(router.in_flight() == 0);

    SECTION("with no wait allowed, a request over the limit fails locally, unsent") {
        opts.admission_wait = 0ms;
        Router shedding{opts, Route{"slow", fx.openai("slow"), fx.http}};
        std::vector<Completion> burst(3);
        for (auto& c : burst) shedding.submit(fx.loop, ask(), c.callback());
        drive(fx.loop, *fx.clock, [&] {
            return std::all_of(burst.begin(), burst.end(), [](const Completion& c) { return c.done(); });
        });
        CHECK(*burst[0].result);
        CHECK(*burst[1].result);
        REQUIRE_FALSE(*burst[2].result);
        CHECK(burst[2].result->error().reason == Reason::local_resource);
        CHECK(burst[2].result->error().attempts.empty());
        CHECK(shedding.route<0>().breaker().state() == BreakerState::closed);
    }
}

TEST_CASE("a route whose transport cannot run on the loop fails its attempt unsent and the chain moves on", "[async]") {
    AsyncFixture fx;
    auto scripted = std::make_shared<ScriptedTransport>();
    DynamicRouter router{chain(Route{"custom", FakeAdapter{}, scripted}, Route{"canned", StaticReply{"busy"}}), fx.options()};
    Completion c;
    router.submit(fx.loop, ask(), c.callback());
    drive(fx.loop, *fx.clock, [&] { return c.done(); });
    REQUIRE(*c.result);
    CHECK((*c.result)->route == "canned");
    REQUIRE((*c.result)->attempts.size() == 2);
    CHECK((*c.result)->attempts[0].reason == Reason::internal);
    CHECK((*c.result)->attempts[0].message.find("cannot run on an EventLoop") != std::string::npos);
    CHECK(scripted->calls() == 0);
}

// ---- active health checks: probes, not user requests, recover an open route ------------------------

namespace {

/// Opens `b` with the failures of calls (five in a row, the default streak).
void open_breaker(CircuitBreaker& b, ManualClock& clock) {
    while (b.state() != BreakerState::open) b.on_failure(clock.now(), b.try_acquire(clock.now()).permit);
}

}  // namespace

TEST_CASE("a health check closes an open breaker with no user request sent to that route", "[async][health]") {
    AsyncFixture fx;
    fx.mock.route("primary").then(Fault::status(503));  // the first probe fails, the next passes
    Router router{fx.options(), Route{"primary", fx.openai("primary"), fx.http}, Route{"canned", StaticReply{"busy"}}};
    router.add_sink(fx.sink);
    CircuitBreaker& breaker = router.route<0>().breaker();
    open_breaker(breaker, *fx.clock);
    REQUIRE(breaker.recovers_at());

    router.start_health_checks(fx.loop, HealthCheckOptions{.interval = 60s});
    drive(fx.loop, *fx.clock, [&] { return fx.sink->count("health_check") == 1; });
    const auto failed = fx.sink->of("health_check");
    CHECK_FALSE(failed[0].ok);
    CHECK(failed[0].reason == Reason::overloaded);
    CHECK(failed[0].status == 503);
    CHECK(breaker.state() == BreakerState::open);
    CHECK_FALSE(breaker.recovers_at());  // the checks own recovery now

    // Past the open time a user request would have been the half-open probe; now it is not.
    fx.clock->advance(breaker.last_open_duration() + 1s);
    Completion user_request;
    router.submit(fx.loop, ask(), user_request.callback());
    drive(fx.loop, *fx.clock, [&] { return user_request.done(); });
    REQUIRE(*user_request.result);
    CHECK((*user_request.result)->route == "canned");
    CHECK(fx.mock.route("primary").requests() == 1);  // only the probe
    const auto skips = fx.sink->of("skip");
    REQUIRE(skips.size() == 1);
    CHECK(skips[0].reason == Reason::breaker_open);

    // The next round's probe passes and closes the breaker; user traffic returns to primary.
    drive(fx.loop, *fx.clock, [&] { return breaker.state() == BreakerState::closed; });
    CHECK(fx.mock.route("primary").requests() == 2);
    const auto probe = fx.mock.route("primary").last_request();
    REQUIRE(probe);
    CHECK(probe->body.find("\"ping\"") != std::string::npos);
    const auto checks = fx.sink->of("health_check");
    REQUIRE(checks.size() == 2);
    CHECK(checks[1].ok);
    CHECK(fx.sink->of("breaker").back().transition.to == BreakerState::closed);
    for (const auto& a : fx.sink->of("attempt")) CHECK(a.route == "canned");  // probes are never attempts
    CHECK(fx.sink->count("success") == 1);  // the user request, served by canned

    Completion after;
    router.submit(fx.loop, ask(), after.callback());
    drive(fx.loop, *fx.clock, [&] { return after.done(); });
    REQUIRE(*after.result);
    CHECK((*after.result)->route == "primary");
    router.stop_health_checks();
}

TEST_CASE("stopping health checks gives an open breaker back its own half-open probes", "[async][health]") {
    AsyncFixture fx;
    fx.mock.route("primary").otherwise(Fault::status(503));
    Router router{fx.options(), Route{"primary", fx.openai("primary"), fx.http}};
    CircuitBreaker& breaker = router.route<0>().breaker();
    open_breaker(breaker, *fx.clock);
    router.start_health_checks(fx.loop, HealthCheckOptions{.interval = 10s});
    fx.loop.run_once();
    CHECK_FALSE(breaker.recovers_at());
    router.stop_health_checks();
    CHECK(breaker.recovers_at());  // at once, from this thread
    fx.clock->advance(breaker.last_open_duration() + 1s);
    CHECK(breaker.try_acquire(fx.clock->now()).permit == CircuitBreaker::Permit::probe);
    drive(fx.loop, *fx.clock, [&] { return fx.loop.idle(); });  // the stopped round's timer is gone
    CHECK_THROWS_AS(router.start_health_checks(fx.loop, HealthCheckOptions{.interval = 0ms}), std::invalid_argument);
}

TEST_CASE("a router destroyed while its health checks run is never touched by the loop again", "[async][health]") {
    AsyncFixture fx;
    fx.mock.route("primary").then(Fault::hang());
    {
        Router router{fx.options(), Route{"primary", fx.openai("primary"), fx.http}};
        open_breaker(router.route<0>().breaker(), *fx.clock);
        router.start_health_checks(fx.loop, HealthCheckOptions{.interval = 1s});
        drive(fx.loop, *fx.clock, [&] { return fx.mock.route("primary").requests() == 1; });  // a probe is on the wire
    }
    // The hung probe ends when the loop closes; its verdict must not reach the dead router
    // (ASan would see it), and the loop goes idle.
    CHECK(fx.loop.transfers() == 1);
}

// ---- hedged requests: a slow route raced by the next one ------------------------------------------

TEST_CASE("a slow primary hedged to the secondary returns the secondary's answer and aborts the primary's transfer",
          "[async][hedge]") {
    AsyncFixture fx;
    fx.mock.route("primary").then(Fault::hang());
    fx.mock.route("secondary").then(Fault::ok("from the hedge"));
    RouteOptions hedged;
    hedged.hedge_after = 200ms;
    Router router{fx.options(), Route{"primary", fx.openai("primary"), fx.http, hedged},
                  Route{"secondary", fx.anthropic("secondary"), fx.http}};
    router.add_sink(fx.sink);
    const auto before = router.route<0>().breaker().window_counts(fx.clock->now());
    const int tokens = router.route<0>().retry_budget().tokens();

    Completion c;
    router.submit(fx.loop, ask(), c.callback());
    drive(fx.loop, *fx.clock, [&] { return fx.mock.route("primary").requests() == 1; });
    CHECK(fx.loop.timers() == 1);  // the hedge, due in 200 ms
    fx.loop.run_once();
    CHECK(fx.mock.route("secondary").requests() == 0);
    fx.clock->advance(200ms);
    drive(fx.loop, *fx.clock, [&] { return c.done(); });

    REQUIRE(*c.result);
    const ChatResponse& r = **c.result;
    CHECK(r.route == "secondary");
    CHECK(r.text == "from the hedge");
    REQUIRE(r.attempts.size() == 2);  // both requests the providers received
    CHECK(r.attempts[0].route == "secondary");
    CHECK(r.attempts[0].ok);
    CHECK(r.attempts[1].route == "primary");
    CHECK(r.attempts[1].reason == Reason::cancelled);
    CHECK(r.attempts[1].message.find("hedged attempt on another route answered first") != std::string::npos);
    CHECK(fx.loop.transfers() == 0);  // the primary's transfer was aborted, not left hanging
    CHECK(fx.loop.idle());
    // A lost race is not the primary's fault; the hedge was paid from its retry budget.
    CHECK(router.route<0>().breaker().window_counts(fx.clock->now()) == before);
    CHECK(router.route<0>().retry_budget().tokens() == tokens - RetryBudgetOptions{}.timeout_retry_cost);
    const auto hops = fx.sink->of("fallback");
    REQUIRE(hops.size() == 1);
    CHECK(hops[0].from == "primary");
    CHECK(hops[0].to == "secondary");
    CHECK(hops[0].reason == Reason::timeout);
    CHECK(fx.sink->count("attempt") == 2);
}

TEST_CASE("no hedge when the answer comes first, or when the retry budget cannot pay", "[async][hedge]") {
    AsyncFixture fx;
    fx.mock.route("primary").otherwise(Fault::ok("primary").delayed(100ms));
    RouteOptions hedged;
    hedged.hedge_after = 50ms;
    SECTION("answered before the hedge is due") {
        Router router{fx.options(), Route{"primary", fx.openai("primary"), fx.http, hedged},
                      Route{"secondary", fx.anthropic("secondary"), fx.http}};
        auto a = router.submit(fx.loop, ask());
        for (int i = 0; i < 1000 && a.wait_for(0s) != std::future_status::ready; ++i) fx.loop.run_once(20ms);
        const auto r = a.get();
        REQUIRE(r);
        CHECK(r->route == "primary");
        CHECK(r->attempts.size() == 1);
        CHECK(fx.loop.timers() == 0);  // the hedge timer went with the answer
    }
    SECTION("the budget is empty") {
        hedged.retry_budget.capacity = 0;
        Router router{fx.options(), Route{"primary", fx.openai("primary"), fx.http, hedged},
                      Route{"secondary", fx.anthropic("secondary"), fx.http}};
        auto a = router.submit(fx.loop, ask());
        drive(fx.loop, *fx.clock, [&] { return fx.mock.route("primary").requests() == 1; });
        fx.clock->advance(50ms);  // the hedge is due, but cannot be paid for
        for (int i = 0; i < 1000 && a.wait_for(0s) != std::future_status::ready; ++i) fx.loop.run_once(20ms);
        const auto r = a.get();
        REQUIRE(r);
        CHECK(r->route == "primary");
        CHECK(r->attempts.size() == 1);
    }
    CHECK(fx.mock.route("secondary").requests() == 0);
}

TEST_CASE("a hedge that fails is not retried while the hedged route still runs, and the route's answer wins",
          "[async][hedge]") {
    AsyncFixture fx;
    fx.mock.route("primary").then(Fault::ok("late but fine").delayed(300ms));
    fx.mock.route("secondary").otherwise(Fault::status(500));
    RouteOptions hedged;
    hedged.hedge_after = 50ms;
    Router router{fx.options(), Route{"primary", fx.openai("primary"), fx.http, hedged},
                  Route{"secondary", fx.anthropic("secondary"), fx.http}};
    Completion c;
    router.submit(fx.loop, ask(), c.callback());
    drive(fx.loop, *fx.clock, [&] { return fx.mock.route("primary").requests() == 1; });
    fx.clock->advance(50ms);
    for (int i = 0; i < 1000 && !c.done(); ++i) fx.loop.run_once(20ms);
    REQUIRE(c.done());
    REQUIRE(*c.result);
    CHECK((*c.result)->route == "primary");
    REQUIRE((*c.result)->attempts.size() == 2);
    CHECK((*c.result)->attempts[0].route == "secondary");
    CHECK((*c.result)->attempts[0].reason == Reason::server_error);
    CHECK((*c.result)->attempts[1].route == "primary");
    CHECK(fx.mock.route("secondary").requests() == 1);  // a 500 is retried normally; not in a race
}

TEST_CASE("a loop destroyed under running health checks hands recovery back to the breakers", "[async][health]") {
    LoopbackFixture fx;
    fx.mock.route("primary").then(Fault::hang());  // the probe is still out when the loop goes
    Router router{fx.options(), Route{"primary", fx.openai("primary"), fx.http}};
    CircuitBreaker& breaker = router.route<0>().breaker();
    open_breaker(breaker, *fx.clock);
    {
        EventLoop loop{EventLoopOptions{.clock = fx.clock}};
        router.start_health_checks(loop, HealthCheckOptions{.interval = 10s});
        loop.run_once();
        CHECK_FALSE(breaker.recovers_at());  // held
    }
    CHECK(breaker.recovers_at());  // the usual half-open probe again, not an open breaker forever
    fx.clock->advance(breaker.last_open_duration() + 1s);
    CHECK(breaker.try_acquire(fx.clock->now()).permit == CircuitBreaker::Permit::probe);
}

TEST_CASE("a percentile hedge waits the route's observed latency quantile once it has 20 answers", "[async][hedge]") {
    for (const int seen : {19, 30}) {
        INFO(seen << " answers seen");
        AsyncFixture fx;
        fx.mock.route("primary").then(Fault::hang());
        fx.mock.route("secondary").then(Fault::ok("from the hedge"));
        RouteOptions hedged;
        hedged.hedge_after = 10s;  // until 20 answers are seen
        hedged.hedge_percentile = 0.9;
        Router router{fx.options(), Route{"primary", fx.openai("primary"), fx.http, hedged},
                      Route{"secondary", fx.anthropic("secondary"), fx.http}};
        // The primary's history: answers in 30-40 ms, the slowest 10 % at 40 ms.
        for (int i = 0; i < seen; ++i) router.route<0>().record_answer(i % 10 == 9 ? 40ms : 30ms);

        Completion c;
        router.submit(fx.loop, ask(), c.callback());
        const auto sent = fx.clock->now();
        drive(fx.loop, *fx.clock, [&] { return fx.mock.route("primary").requests() == 1; });
        REQUIRE(fx.loop.next_due());
        const auto delay = *fx.loop.next_due() - sent;
        if (seen < 20) {
            CHECK(delay == 10s);
        } else {
            // The 90th percentile is 30 ms, read at its histogram bucket's upper bound (<= 25 % over).
            CHECK(delay >= 30ms);
            CHECK(delay <= 38ms);
        }
        fx.clock->advance(delay);
        drive(fx.loop, *fx.clock, [&] { return c.done(); });
        REQUIRE(*c.result);
        CHECK((*c.result)->route == "secondary");
    }
    RouteOptions bad;
    bad.hedge_percentile = 0.95;  // without hedge_after
    CHECK_THROWS_AS(bad.validate("r"), std::invalid_argument);
    bad.hedge_after = 1s;
    bad.hedge_percentile = 1.0;
    CHECK_THROWS_AS(bad.validate("r"), std::invalid_argument);
}

// ---- HTTP/2: many requests share one connection ---------------------------------------------------

namespace {

// tests/support/h2-upstream.cjs on node (HTTP/2 over TLS), for as long as the object lives.
class H2Upstream {
public:
    H2Upstream() {
        const std::string script = std::string(failover_test::test_data_dir()) + "/../support/h2-upstream.cjs";
        pipe_ = ::popen(("exec node '" + script + "' --delay-ms=200").c_str(), "r");
        char line[64] = {};
        if (pipe_ && std::fgets(line, sizeof line, pipe_)) std::sscanf(line, "%d %d", &port_, &pid_);
    }
    ~H2Upstream() {
        if (pid_ > 0) ::kill(pid_, SIGTERM);  // gone already after /quit; a failed test may not have got there
        if (pipe_) ::pclose(pipe_);
    }
    H2Upstream(const H2Upstream&) = delete;
    H2Upstream& operator=(const H2Upstream&) = delete;
    int port() const { return port_; }
    std::string url(const std::string& path) const { return "https://127.0.0.1:" + std::to_string(port_) + path; }

private:
    FILE* pipe_ = nullptr;
    int port_ = 0;
    int pid_ = 0;
};

}  // namespace

TEST_CASE("over HTTP/2 the loop multiplexes many requests on one connection", "[async][h2]") {
    H2Upstream up;
    {
        INFO("tests/support/h2-upstream.cjs must start: is node installed? (apt-get install nodejs)");
        REQUIRE(up.port() > 0);
    }
    EventLoop loop;  // HTTP/2 by ALPN over TLS is the default
    loop.start();
    CurlOptions tls;
    tls.ca_bundle = std::string(failover_test::test_data_dir()) + "/h2-test-cert.pem";  // verified, not switched off
    auto http = std::make_shared<CurlTransport>(tls);
    RouterOptions o;
    o.seed = 1;
    Router router{o, Route{"h2", OpenAI{{.model = "gpt-4o", .api_key = "sk-test", .base_url = up.url("/v1")}}, http}};
    const int n = 20;
    std::vector<std::future<Result<ChatResponse>>> answers;
    for (int i = 0; i < n; ++i) answers.push_back(router.submit(loop, ask()));
    for (auto& a : answers) {
        auto r = a.get();
        INFO((r ? std::string() : r.error().message));
        REQUIRE(r);
        CHECK(r->text == "over h2");
    }
    // The upstream's own count, asked over the same loop (so over the same connection).
    std::promise<Result<HttpResponse>> stats;
    HttpRequest get;
    get.method = "GET";
    get.url = up.url("/stats");
    loop.post([&] {
        loop.send(http->options(), get, Deadline{.timeout = 5s}, [&](Result<HttpResponse> r) { stats.set_value(std::move(r)); });
    });
    auto s = stats.get_future().get();
    REQUIRE(s);
    const auto j = nlohmann::json::parse(s->body);
    CHECK(j.at("streams") == n);
    CHECK(j.at("sessions") == 1);   // one connection (one TLS handshake) for all of them ...
    CHECK(j.at("most_open") == n);  // ... at the same time
    HttpRequest quit = get;
    quit.url = up.url("/quit");
    std::promise<void> gone;
    loop.post([&] { loop.send(http->options(), quit, Deadline{.timeout = 5s}, [&](Result<HttpResponse>) { gone.set_value(); }); });
    gone.get_future().get();
    loop.stop();
}

TEST_CASE("when both legs of a hedge race come back in one loop turn, the request has exactly one outcome",
          "[async][hedge]") {
    // Found by the chaos soak: the other leg's policy block, read in the turn that settled the
    // race, was sent as a PolicyEvent too, so one request counted as two outcomes.
    for (const bool primary_blocks : {false, true}) {
        INFO((primary_blocks ? "both legs blocked" : "the primary answers, the hedge is blocked"));
        AsyncFixture fx;
        fx.mock.route("primary").then(primary_blocks ? Fault::content_filter().delayed(100ms)
                                                     : Fault::ok("from primary").delayed(100ms));
        fx.mock.route("secondary").then(Fault::refusal().delayed(100ms));
        RouteOptions hedged;
        hedged.hedge_after = 50ms;
        Router router{fx.options(), Route{"primary", fx.openai("primary"), fx.http, hedged},
                      Route{"secondary", fx.anthropic("secondary"), fx.http}};
        router.add_sink(fx.sink);
        Completion c;
        router.submit(fx.loop, ask(), c.callback());
        for (int turns = 0; fx.mock.route("primary").requests() == 0; ++turns) {
            REQUIRE(turns < 500);
            fx.loop.run_once(10ms);
        }
        fx.clock->advance(50ms);  // the hedge is due: the secondary starts beside the primary
        for (int turns = 0; fx.mock.route("secondary").requests() == 0; ++turns) {
            REQUIRE(turns < 500);
            fx.loop.run_once(10ms);
        }
        // Both answer 100 ms later, before the loop looks again: one turn reads both.
        const auto give_up = std::chrono::steady_clock::now() + 5s;
        while ((fx.mock.route("primary").bytes_sent() == 0 || fx.mock.route("secondary").bytes_sent() == 0) &&
               std::chrono::steady_clock::now() < give_up)
            std::this_thread::yield();
        REQUIRE(fx.mock.route("primary").bytes_sent() > 0);
        REQUIRE(fx.mock.route("secondary").bytes_sent() > 0);
        for (int turns = 0; !c.done(); ++turns) {
            REQUIRE(turns < 500);
            fx.loop.run_once(10ms);
        }
        CHECK(fx.sink->count("success") + fx.sink->count("policy") + fx.sink->count("exhausted") == 1);
        const auto& attempts = *c.result ? (*c.result)->attempts : c.result->error().attempts;
        CHECK(attempts.size() == 2);  // both reached a provider; both listed
    }
}
