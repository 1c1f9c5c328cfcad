// SPDX-License-Identifier: MIT
// The circuit breaker, retry budget, backoff and Result<T> on their own, with
// an injected clock: window eviction, thresholds, half-open probes, operator
// states, refunds.
#include <thread>

#include "support/catch.hpp"

#include <failover/failover.hpp>

using namespace failover;
using namespace std::chrono_literals;
using Permit = CircuitBreaker::Permit;

namespace {
BreakerOptions exact() {
    BreakerOptions o;
    o.open_jitter = 0.0;
    return o;
}
}  // namespace

TEST_CASE("breaker: failure rate opens only after the minimum number of calls") {
    ManualClock clock;
    BreakerOptions o = exact();
    o.consecutive_failures = 0;
    o.minimum_calls = 10;
    CircuitBreaker b(o);
    auto t = clock.now();
    for (int i = 0; i < 4; ++i) (void)b.on_success(t, Permit::call);
    for (int i = 0; i < 5; ++i) CHECK_FALSE(b.on_failure(t, Permit::call));
    CHECK(b.state() == BreakerState::closed);  // 5/9 failures, below the minimum of 10 calls
    auto tr = b.on_failure(t, Permit::call);   // 6/10 >= 50 %
    REQUIRE(tr);
    CHECK(tr->to == BreakerState::open);
    CHECK(b.try_acquire(t).permit == Permit::denied);
}

TEST_CASE("breaker: old outcomes leave the time window") {
    ManualClock clock;
    BreakerOptions o = exact();
    o.consecutive_failures = 0;
    o.minimum_calls = 4;
    o.window = 10s;
    CircuitBreaker b(o);
    for (int i = 0; i < 3; ++i) (void)b.on_failure(clock.now(), Permit::call);
    CHECK(b.window_counts(clock.now()) == std::pair<std::uint64_t, std::uint64_t>{3, 3});
    clock.advance(5s);
    (void)b.on_success(clock.now(), Permit::call);
    CHECK(b.window_counts(clock.now()) == std::pair<std::uint64_t, std::uint64_t>{4, 3});
    clock.advance(6s);  // the three failures are 11 s old now
    CHECK(b.window_counts(clock.now()) == std::pair<std::uint64_t, std::uint64_t>{1, 0});
    clock.advance(1h);
    CHECK(b.window_counts(clock.now()) == std::pair<std::uint64_t, std::uint64_t>{0, 0});
    // 3 fresh failures + 1 success = 75 % of 4: opens.
    (void)b.on_success(clock.now(), Permit::call);
    for (int i = 0; i < 2; ++i) CHECK_FALSE(b.on_failure(clock.now(), Permit::call));
    CHECK(b.on_failure(clock.now(), Permit::call));
}

TEST_CASE("breaker: consecutive failures open it, a success resets the streak") {
    ManualClock clock;
    CircuitBreaker b(exact());
    auto t = clock.now();
    for (int i = 0; i < 4; ++i) (void)b.on_failure(t, Permit::call);
    (void)b.on_success(t, Permit::call);
    for (int i = 0; i < 4; ++i) (void)b.on_failure(t, Permit::call);
    CHECK(b.state() == BreakerState::closed);  // 8 of 9 calls failed, but below minimum_calls 10 and no streak of 5
    (void)b.on_failure(t, Permit::call);
    CHECK(b.state() == BreakerState::open);
}

TEST_CASE("breaker: half-open admits a bounded number of probes, open time grows to its cap") {
    ManualClock clock;
    BreakerOptions o = exact();
    o.half_open_probes = 2;
    o.successes_to_close = 2;
    o.open_base = 30s;
    o.open_max = 100s;
    CircuitBreaker b(o);
    for (int i = 0; i < 5; ++i) (void)b.on_failure(clock.now(), Permit::call);
    CHECK(b.last_open_duration() == 30s);
    clock.advance(30s);
    auto p1 = b.try_acquire(clock.now());
    CHECK(p1.permit == Permit::probe);
    REQUIRE(p1.transition);
    CHECK(p1.transition->to == BreakerState::half_open);
    CHECK(b.try_acquire(clock.now()).permit == Permit::probe);
    CHECK(b.try_acquire(clock.now()).permit == Permit::denied);  // both probe slots taken
    b.release(Permit::probe);                                   // a probe that said nothing frees its slot
    CHECK(b.try_acquire(clock.now()).permit == Permit::probe);
    auto reopened = b.on_failure(clock.now(), Permit::probe);
    REQUIRE(reopened);
    CHECK(reopened->open_for == 60s);
    clock.advance(60s);
    REQUIRE(b.try_acquire(clock.now()).permit == Permit::probe);
    (void)b.on_failure(clock.now(), Permit::probe);
    CHECK(b.last_open_duration() == 100s);  // 120 s capped
    clock.advance(100s);
    REQUIRE(b.try_acquire(clock.now()).permit == Permit::probe);
    REQUIRE(b.try_acquire(clock.now()).permit == Permit::probe);
    CHECK_FALSE(b.on_success(clock.now(), Permit::probe));  // 1 of 2 successes
    auto closed = b.on_success(clock.now(), Permit::probe);
    REQUIRE(closed);
    CHECK(closed->to == BreakerState::closed);
    // Closing resets the growth.
    for (int i = 0; i < 5; ++i) (void)b.on_failure(clock.now(), Permit::call);
    CHECK(b.last_open_duration() == 30s);
}

TEST_CASE("breaker: open-time jitter stays within +-20 %") {
    ManualClock clock;
    for (std::uint64_t seed = 1; seed < 50; ++seed) {
        BreakerOptions o;
        o.seed = seed;
        CircuitBreaker b(o);
        for (int i = 0; i < 5; ++i) (void)b.on_failure(clock.now(), Permit::call);
        CHECK(b.last_open_duration() >= 24s);
        CHECK(b.last_open_duration() <= 36s);
    }
}

TEST_CASE("breaker: forced-open refuses, disabled admits everything, reset closes") {
    ManualClock clock;
    CircuitBreaker b(exact());
    auto t = b.force_open(clock.now());
    REQUIRE(t);
    CHECK(t->to == BreakerState::forced_open);
    clock.advance(1h);
    CHECK(b.try_acquire(clock.now()).permit == Permit::denied);
    (void)b.disable(clock.now());
    for (int i = 0; i < 100; ++i) {
        CHECK(b.try_acquire(clock.now()).permit == Permit::call);
        (void)b.on_failure(clock.now(), Permit::call);
    }
    CHECK(b.state() == BreakerState::disabled);
    (void)b.reset(clock.now());
    CHECK(b.state() == BreakerState::closed);
    CHECK(b.window_counts(clock.now()).first == 0);
}

TEST_CASE("breaker: bad options name the field") {
    BreakerOptions o;
    o.window = 0s;
    CHECK_THROWS_WITH(CircuitBreaker(o), Catch::Contains("BreakerOptions.window"));
    o = {};
    o.successes_to_close = 3;
    CHECK_THROWS_WITH(CircuitBreaker(o), Catch::Contains("successes_to_close"));
}

TEST_CASE("breaker: concurrent outcomes are all counted") {
    ManualClock clock;
    BreakerOptions o = exact();
    o.consecutive_failures = 0;
    o.minimum_calls = 1000000;
    CircuitBreaker b(o);
    std::vector<std::thread> ts;
    for (int t = 0; t < 8; ++t)
        ts.emplace_back([&, t] {
            for (int i = 0; i < 1000; ++i) {
                if ((i + t) % 4 == 0) (void)b.on_failure(clock.now(), Permit::call);
                else (void)b.on_success(clock.now(), Permit::call);
            }
        });
    for (auto& th : ts) th.join();
    CHECK(b.window_counts(clock.now()) == std::pair<std::uint64_t, std::uint64_t>{8000, 2000});
}

TEST_CASE("retry budget: costs, timeout costs, refunds, cap") {
    RetryBudget b(RetryBudgetOptions{.capacity = 20, .retry_cost = 5, .timeout_retry_cost = 10, .success_refund = 1});
    CHECK(b.try_spend(Reason::timeout));
    CHECK(b.tokens() == 10);
    CHECK(b.try_spend(Reason::server_error));
    CHECK(b.try_spend(Reason::server_error));
    CHECK_FALSE(b.try_spend(Reason::server_error));
    b.on_success(false);
    CHECK(b.tokens() == 1);
    b.on_success(true, Reason::timeout);  // a success after a retry refunds that retry's cost
    CHECK(b.tokens() == 11);
    for (int i = 0; i < 100; ++i) b.on_success(false);
    CHECK(b.tokens() == 20);  // never above capacity
    RetryBudget off(RetryBudgetOptions{.capacity = 0, .enabled = false});
    CHECK(off.try_spend(Reason::server_error));
}

TEST_CASE("backoff: full jitter within [0, min(cap, base * 2^n)]") {
    Backoff b{500ms, 8s};
    CHECK(b.delay(0, 0.0) == 0ns);
    CHECK(b.delay(0, 0.999999) < 500ms);
    CHECK(b.delay(0, 0.5) == 250ms);
    CHECK(b.delay(3, 0.5) == 2s);
    CHECK(b.delay(10, 0.5) == 4s);   // capped at 8 s
    CHECK(b.delay(1000, 0.5) == 4s); // no overflow
    Jitter j(7);
    for (int i = 0; i < 1000; ++i) {
        const double u = j.uniform();
        CHECK(u >= 0.0);
        CHECK(u < 1.0);
    }
    Jitter a(99), c(99);
    CHECK(a.next() == c.next());  // seeded: reproducible
}

TEST_CASE("Result speaks expected's vocabulary, value() on a failure throws FailoverError") {
    Result<int> good = 3;
    Result<int> bad = Failure::of(Reason::auth, "no key");
    CHECK(good.value() == 3);
    CHECK(good.transform([](int v) { return v * 2; }).value() == 6);
    CHECK(good.and_then([](int v) { return Result<std::string>(std::to_string(v)); }).value() == "3");
    CHECK(bad.value_or(7) == 7);
    CHECK(bad.or_else([](const Failure&) { return Result<int>(1); }).value() == 1);
    CHECK_FALSE(bad.transform([](int v) { return v; }).has_value());
    try {
        (void)bad.value();
        FAIL("value() did not throw");
    } catch (const FailoverError& e) {
        CHECK(e.failure().reason == Reason::auth);
        CHECK(std::string(e.what()) == "failover: terminal/auth: no key");
    }
}
