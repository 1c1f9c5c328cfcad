// SPDX-License-Identifier: MIT
// Shared state: tenant budgets reserve before a call (so concurrent requests of a
// tenant cannot overshoot together), and RedisStore shares breakers, window
// counts, cooldowns, retry budgets and tenant budgets between instances, tested
// against a real redis-server (tests/support/redis_server.hpp) and, where the
// issue asks for processes, other processes (tests/support/redis_peer.cpp).
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <failover/failover.hpp>
#include <failover/stores/redis.hpp>

#include "support/catch.hpp"
#include "support/paths.hpp"
#include "support/fakes.hpp"
#include "support/mock_provider.hpp"
#include "support/redis_server.hpp"

using namespace failover;
using namespace std::chrono_literals;
using failover_mock::Fault;
using failover_mock::MockProvider;
using failover_test::RecordingSink;
using failover_test::RedisServer;

namespace {

std::int64_t wall_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::string unique_prefix(const char* what) {
    static std::atomic<int> n{0};
    return std::string("t") + std::to_string(::getpid()) + "-" + std::to_string(n++) + "-" + what;
}

// A local route that answers with 100 output tokens once `gate` lets it.
struct GatedAnswer {
    struct Gate {
        std::mutex mu;
        std::condition_variable cv;
        int arrived = 0;
        int refused = 0;
        int expected = 0;
    };
    std::shared_ptr<Gate> gate;
    Result<ChatResponse> respond(const ChatRequest&) const {
        std::unique_lock lock(gate->mu);
        ++gate->arrived;
        gate->cv.notify_all();
        gate->cv.wait_for(lock, 10s, [&] { return gate->arrived + gate->refused >= gate->expected; });
        ChatResponse r;
        r.text = "ok";
        r.usage = Usage{0, 100};
        r.finish_reason = FinishReason::stop;
        return r;
    }
};

// Another process (tests/support/redis_peer.cpp), spoken to over its stdin and stdout.
class Peer {
public:
    explicit Peer(std::vector<std::string> args) {
        int in[2], out[2];
        REQUIRE(::pipe2(in, O_CLOEXEC) == 0);
        REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, in[0], 0);
        posix_spawn_file_actions_adddup2(&fa, out[1], 1);
        std::vector<char*> argv;
        args.insert(args.begin(), failover_test::redis_peer_path());
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        REQUIRE(::posix_spawn(&pid_, failover_test::redis_peer_path(), &fa, nullptr, argv.data(), environ) == 0);
        posix_spawn_file_actions_destroy(&fa);
        ::close(in[0]);
        ::close(out[1]);
        to_ = in[1];
        from_ = ::fdopen(out[0], "r");
    }
    ~Peer() {
        if (to_ >= 0) ::close(to_);
        int status = 0;
        for (int i = 0; i < 200 && ::waitpid(pid_, &status, WNOHANG) == 0; ++i) std::this_thread::sleep_for(10ms);
        if (::waitpid(pid_, &status, WNOHANG) == 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, &status, 0);
        }
        if (from_) std::fclose(from_);
    }
    Peer(const Peer&) = delete;
    Peer& operator=(const Peer&) = delete;

    std::string line() {
        char buf[512];
        if (!std::fgets(buf, sizeof buf, from_)) return "<eof>";
        std::string s(buf);
        while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
        return s;
    }
    void say(const std::string& s) {
        const std::string l = s + "\n";
        REQUIRE(::write(to_, l.data(), l.size()) == static_cast<ssize_t>(l.size()));
    }

private:
    pid_t pid_ = -1;
    int to_ = -1;
    FILE* from_ = nullptr;
};

std::shared_ptr<RedisStore> store_for(const RedisServer& redis, const std::string& prefix,
                                      std::shared_ptr<MetricsSink> sink = nullptr) {
    auto s = std::make_shared<RedisStore>(
        RedisOptions{.port = redis.port(), .prefix = prefix, .sync_interval = 20ms, .sink = std::move(sink)});
    REQUIRE(s->wait_connected(5s));
    return s;
}

template <class Pred>
bool eventually(Pred&& p, std::chrono::milliseconds limit = 5s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
        if (p()) return true;
        std::this_thread::sleep_for(1ms);
    }
    return p();
}

}  // namespace

TEST_CASE("budgets: concurrent requests of one tenant cannot overshoot its ceiling together", "[budget][shared]") {
    // $1 a request, a $3 ceiling, 8 requests at once. Each is admitted only if what is spent
    // and what is held for the others in flight leave room: 3 go, 5 are refused. (Checking
    // before the call and charging after it let all 8 through, for $8.)
    auto gate = std::make_shared<GatedAnswer::Gate>();
    gate->expected = 8;
    auto budgets = std::make_shared<Budgets>(24h);
    budgets->limit("acme", 3.0);
    RouterOptions o;
    o.budgets = budgets;
    RouteOptions ro;
    ro.price.output_per_million = 10000.0;
    Router router{o, Route{"paid", GatedAnswer{gate}, ro}};
    std::atomic<int> answered{0}, refused{0}, other{0};  // counted here, checked after the join (Catch is not thread-safe)
    std::vector<std::thread> threads;
    for (int i = 0; i < 8; ++i)
        threads.emplace_back([&] {
            auto r = router.route_with_fallback(ChatRequest{.messages = {user("hi")}, .max_tokens = 100, .tenant = "acme"});
            if (r) {
                ++answered;
                return;
            }
            ++(r.error().reason == Reason::budget_exceeded ? refused : other);
            std::lock_guard lock(gate->mu);
            ++gate->refused;
            gate->cv.notify_all();
        });
    for (auto& t : threads) t.join();
    CHECK(answered == 3);
    CHECK(refused == 5);
    CHECK(other == 0);
    CHECK(budgets->spent("acme", std::chrono::system_clock::now()) == Approx(3.0));
    auto& store = dynamic_cast<InMemoryBudgetStore&>(budgets->store());
    CHECK(store.held("acme") == 0.0);  // every hold was settled
}

TEST_CASE("budgets: a failed call lets its hold go and charges nothing", "[budget][shared]") {
    auto budgets = std::make_shared<Budgets>(24h);
    budgets->limit("acme", 1.5);
    RouterOptions o;
    o.budgets = budgets;
    RouteOptions ro;
    ro.price.output_per_million = 10000.0;
    ro.max_attempts = 1;
    Router router{o, Route{"down", HardError{Failure::of(Reason::server_error, "503")}, ro}};
    for (int i = 0; i < 3; ++i) {
        auto r = router.route_with_fallback(ChatRequest{.messages = {user("hi")}, .max_tokens = 100, .tenant = "acme"});
        REQUIRE_FALSE(r);
        CHECK(r.error().reason == Reason::server_error);  // never budget_exceeded: failures hold nothing afterwards
    }
    CHECK(budgets->spent("acme", std::chrono::system_clock::now()) == 0.0);
    CHECK(dynamic_cast<InMemoryBudgetStore&>(budgets->store()).held("acme") == 0.0);
}

TEST_CASE("redis: two processes share a breaker, and the sibling skips the dead route within 100 ms without calling it",
          "[redis][shared]") {
    RedisServer redis;
    MockProvider mock;
    mock.route("primary-a").otherwise(Fault::status(503));
    mock.route("primary-b").otherwise(Fault::status(503));
    const std::string prefix = unique_prefix("breaker");

    // This process is instance B; the peer is instance A.
    auto sink = std::make_shared<RecordingSink>();
    auto store = store_for(redis, prefix, sink);
    auto http = std::make_shared<CurlTransport>();
    RouterOptions o;
    o.state_store = store;
    RouteOptions ro;
    ro.max_attempts = 1;
    ro.breaker.consecutive_failures = 3;
    ro.breaker.open_base = 30s;
    Router router{o,
                  Route{"primary", OpenAI{{.model = "gpt-4o", .api_key = "sk-test", .base_url = mock.url("primary-b") + "/v1"}},
                        http, ro},
                  Route{"canned", StaticReply{"busy"}}};
    router.add_sink(sink);

    Peer a({"opener", std::to_string(redis.port()), prefix, mock.url("primary-a")});
    REQUIRE(a.line() == "ready");
    a.say("go");
    std::int64_t seen_us = 0;
    REQUIRE(eventually([&] {
        if (router.route<0>().breaker().state() != BreakerState::open) return false;
        seen_us = wall_us();
        return true;
    }));
    const std::string opened = a.line();
    REQUIRE(opened.rfind("opened ", 0) == 0);
    const std::int64_t opened_us = std::stoll(opened.substr(7));
    REQUIRE(opened_us > 0);
    const auto delay = std::chrono::microseconds{seen_us - opened_us};
    INFO("propagation: " << delay.count() << " us");
    CHECK(delay < 100ms);
    CHECK(mock.route("primary-a").requests() == 3);

    for (int i = 0; i < 10; ++i) {
        auto r = router.route_with_fallback(ChatRequest{.messages = {user("hi")}});
        REQUIRE(r);
        CHECK(r->route == "canned");
        REQUIRE(r->attempts.size() == 1);  // the primary was skipped, not tried
        CHECK(r->attempts[0].route == "canned");
    }
    CHECK(mock.route("primary-b").requests() == 0);
    int skips = 0;
    for (const auto& e : sink->of("skip")) skips += e.route == "primary" && e.reason == Reason::breaker_open;
    CHECK(skips == 10);
    // The store reports what it adopted (its thread emits just after the breaker moved).
    CHECK(eventually([&] {
        for (const auto& e : sink->of("store"))
            if (e.kind == "adopted_breaker" && e.route == "primary") return true;
        return false;
    }));
    // The opening is in Redis, under the prefix and the route's name.
    CHECK(redis.command({"HGET", prefix + ":route:{primary}:breaker", "state"}) == "open");
}

TEST_CASE("redis: failures on several instances add up in one shared window", "[redis][shared]") {
    RedisServer redis;
    const std::string prefix = unique_prefix("window");
    RouteOptions ro;
    ro.breaker.minimum_calls = 10;
    ro.breaker.failure_rate = 0.5;
    ro.breaker.consecutive_failures = 0;  // the rate alone decides
    auto s1 = store_for(redis, prefix);
    auto s2 = store_for(redis, prefix);
    RouterOptions o1, o2;
    o1.state_store = s1;
    o2.state_store = s2;
    Router r1{o1, Route{"primary", StaticReply{"x"}, ro}};
    Router r2{o2, Route{"primary", StaticReply{"x"}, ro}};
    Route alone{"primary", StaticReply{"x"}, ro};  // the same six failures, not shared
    auto fail6 = [](CircuitBreaker& b) {
        for (int i = 0; i < 6; ++i) (void)b.on_failure(std::chrono::steady_clock::now(), CircuitBreaker::Permit::call);
    };
    fail6(r1.route<0>().breaker());
    fail6(r2.route<0>().breaker());
    fail6(alone.breaker());
    CHECK(alone.breaker().state() == BreakerState::closed);  // 6 calls: under minimum_calls
    CHECK(eventually([&] {
        return r1.route<0>().breaker().state() == BreakerState::open && r2.route<0>().breaker().state() == BreakerState::open;
    }));
}

TEST_CASE("redis: cooldowns and retry budgets are shared", "[redis][shared]") {
    RedisServer redis;
    const std::string prefix = unique_prefix("cool");
    auto s1 = store_for(redis, prefix);
    auto s2 = store_for(redis, prefix);
    RouterOptions o1, o2;
    o1.state_store = s1;
    o2.state_store = s2;
    Router r1{o1, Route{"primary", StaticReply{"x"}}};
    Router r2{o2, Route{"primary", StaticReply{"x"}}};
    // A long Retry-After on instance 1 cools the route down on instance 2 too.
    const auto now = std::chrono::steady_clock::now();
    r1.route<0>().cool_down_until(now + 60s, now);
    CHECK(eventually([&] { return r2.route<0>().cooldown_until() > std::chrono::steady_clock::now() + 50s; }));
    // Retries paid on instance 1 empty the one shared bucket.
    const int full = r1.route<0>().retry_budget().options().capacity;
    for (int i = 0; i < 20; ++i) REQUIRE(r1.route<0>().retry_budget().try_spend(Reason::server_error));
    const int cost = 20 * r1.route<0>().retry_budget().options().retry_cost;
    CHECK(eventually([&] { return r2.route<0>().retry_budget().tokens() == full - cost; }));
    CHECK(eventually([&] { return r1.route<0>().retry_budget().tokens() == full - cost; }));
    CHECK(redis.command({"GET", prefix + ":route:{primary}:retry"}) == std::to_string(full - cost));
}

TEST_CASE("redis: four processes share a tenant budget and together stay within the stated bound",
          "[redis][shared][budget]") {
    RedisServer redis;
    MockProvider mock;
    // 100 output tokens (396 bytes of text) at $10,000 per million: $1 an answer, equal to the
    // estimate for max_tokens 100, so only the sharing can overshoot. 20 ms an answer.
    Fault answer = Fault::ok(std::string(396, 'x'));
    answer.delay = 20ms;
    mock.route("paid").otherwise(answer);
    const std::string prefix = unique_prefix("budget");
    const double ceiling = 40.0;
    std::vector<std::unique_ptr<Peer>> peers;
    for (int i = 0; i < 4; ++i) {
        peers.push_back(std::make_unique<Peer>(std::vector<std::string>{
            "budget", std::to_string(redis.port()), prefix, mock.url("paid"), "acme", std::to_string(ceiling)}));
    }
    for (auto& p : peers) REQUIRE(p->line() == "ready");
    for (auto& p : peers) p->say("go");
    int answered = 0;
    double dollars = 0.0;
    for (auto& p : peers) {
        std::istringstream in(p->line());
        std::string word;
        int n = 0;
        double d = 0.0;
        in >> word >> n >> d;
        REQUIRE(word == "answered");
        answered += n;
        dollars += d;
    }
    CHECK(dollars == Approx(static_cast<double>(answered)));  // $1 each: estimate == cost
    // The bound README states: what the other instances admit within two sync intervals (2 x
    // 20 ms). Each peer has one call in flight at a time of >= 20 ms, so at most 3 calls each
    // of the 3 others: $9. Without sharing, four instances would spend $160.
    INFO("answered " << answered << " for $" << dollars);
    CHECK(dollars <= ceiling + 9.0);
    CHECK(dollars >= ceiling - 4.0);  // and the budget was used, not refused early
    CHECK(mock.route("paid").requests() == static_cast<std::size_t>(answered));
    // Redis holds the fleet's spend: a new instance sees it all.
    auto fresh = store_for(redis, prefix);
    Budgets view(24h, fresh);
    (void)view.spent("acme", std::chrono::system_clock::now());  // first seen: read in the background at once
    REQUIRE(fresh->wait_synced(5s));
    CHECK(view.spent("acme", std::chrono::system_clock::now()) == Approx(dollars));
}

TEST_CASE("redis: killed mid-run and restarted, no request is lost and the state converges", "[redis][shared]") {
    auto redis = std::make_unique<RedisServer>();
    const int port = redis->port();
    const std::string prefix = unique_prefix("outage");
    auto sink = std::make_shared<RecordingSink>();
    auto store = std::make_shared<RedisStore>(
        RedisOptions{.port = port, .prefix = prefix, .sync_interval = 20ms, .reconnect_min = 20ms, .reconnect_max = 100ms, .sink = sink});
    REQUIRE(store->wait_connected(5s));
    auto budgets = std::make_shared<Budgets>(24h, store);
    budgets->limit("acme", 1000.0);
    RouterOptions o;
    o.state_store = store;
    o.budgets = budgets;
    RouteOptions ro;
    ro.price.output_per_million = 10000.0;
    ro.breaker.consecutive_failures = 1;
    Router router{o, Route{"primary", StaticReply{"x"}, ro}, Route{"canned", StaticReply{"busy"}}};
    auto ask = [&] { return router.route_with_fallback(ChatRequest{.messages = {user("hi")}, .max_tokens = 100, .tenant = "acme"}); };
    int ok = 0;
    for (int i = 0; i < 50; ++i) ok += static_cast<bool>(ask());
    REQUIRE(store->wait_synced(2s));

    redis->kill();
    for (int i = 0; i < 100; ++i) ok += static_cast<bool>(ask());  // Redis gone: all still answered
    CHECK(eventually([&] { return !store->connected(); }));
    for (int i = 0; i < 50; ++i) ok += static_cast<bool>(ask());
    CHECK(ok == 200);
    bool down = false;
    for (const auto& e : sink->of("store")) down |= e.kind == "disconnected";
    CHECK(down);
    // While Redis is away the primary's breaker opens here; Redis must learn of it on return.
    (void)router.route<0>().breaker().on_failure(std::chrono::steady_clock::now(), CircuitBreaker::Permit::call);
    REQUIRE(router.route<0>().breaker().state() == BreakerState::open);

    redis->start();  // the same port, empty
    REQUIRE(store->wait_connected(5s));
    REQUIRE(store->wait_synced(2s));
    CHECK(redis->command({"HGET", prefix + ":route:{primary}:breaker", "state"}) == "open");
    // The tenant's spend (200 answers, $0 each: StaticReply reports no usage) and holds are
    // back in sync: a fresh instance sees what this one saw.
    auto fresh = store_for(*redis, prefix);
    Budgets view(24h, fresh);
    CHECK(view.spent("acme", std::chrono::system_clock::now()) ==
          Approx(budgets->spent("acme", std::chrono::system_clock::now())));
    int connected = 0;
    for (const auto& e : sink->of("store")) connected += e.kind == "connected";
    CHECK(connected == 2);
}

TEST_CASE("redis: a hung Redis costs requests nothing: the store times out, runs locally and comes back", "[redis][shared]") {
    RedisServer redis;
    auto sink = std::make_shared<RecordingSink>();
    auto store = std::make_shared<RedisStore>(RedisOptions{.port = redis.port(), .prefix = unique_prefix("hung"),
                                                           .sync_interval = 20ms, .command_timeout = 100ms,
                                                           .reconnect_min = 20ms, .reconnect_max = 100ms, .sink = sink});
    REQUIRE(store->wait_connected(5s));
    auto budgets = std::make_shared<Budgets>(24h, store);
    budgets->default_limit(100.0);
    RouterOptions o;
    o.state_store = store;
    o.budgets = budgets;
    RouteOptions ro;
    ro.price.output_per_million = 1.0;
    Router router{o, Route{"primary", StaticReply{"x"}, ro}};
    auto ask = [&](const std::string& tenant) {
        return router.route_with_fallback(ChatRequest{.messages = {user("hi")}, .max_tokens = 10, .tenant = tenant});
    };
    REQUIRE(ask("known"));
    redis.pause();
    int ok = 0;
    for (int i = 0; i < 50; ++i) ok += static_cast<bool>(ask("known"));
    ok += static_cast<bool>(ask("first-seen-while-hung"));  // its first read gives up after command_timeout
    CHECK(eventually([&] { return !store->connected(); }));
    for (int i = 0; i < 50; ++i) ok += static_cast<bool>(ask("first-seen-while-down"));  // no read at all now
    CHECK(ok == 101);
    redis.resume();
    CHECK(store->wait_connected(5s));
    // The "connected" event comes before the flag wait_connected() sees.
    auto count = [&](const char* kind) {
        int n = 0;
        for (const auto& e : sink->of("store")) n += e.kind == kind;
        return n;
    };
    CHECK(count("disconnected") == 1);
    CHECK(count("connected") == 2);
}

TEST_CASE("redis: AUTH is passed through, and a refused password is reported without it", "[redis][shared]") {
    RedisServer redis("s3cret-Pass-for-tests");
    auto good = std::make_shared<RedisStore>(
        RedisOptions{.port = redis.port(), .password = "s3cret-Pass-for-tests", .prefix = unique_prefix("auth")});
    CHECK(good->wait_connected(5s));

    auto sink = std::make_shared<RecordingSink>();
    auto bad = std::make_shared<RedisStore>(
        RedisOptions{.port = redis.port(), .password = "wrong-Pass-xyz", .prefix = unique_prefix("auth"), .sink = sink});
    CHECK_FALSE(bad->wait_connected(300ms));
    REQUIRE(eventually([&] { return sink->count("store") >= 1; }));
    const auto e = sink->of("store").front();
    CHECK(e.kind == "disconnected");
    CHECK_THAT(e.detail, Catch::Contains("AUTH"));
    CHECK(e.detail.find("wrong-Pass-xyz") == std::string::npos);
    // Requests through a router on the refused store still run, on local state.
    RouterOptions o;
    o.state_store = bad;
    Router router{o, Route{"canned", StaticReply{"busy"}}};
    CHECK(router.route_with_fallback(ChatRequest{.messages = {user("hi")}}));
}

TEST_CASE("redis: over TLS, verified against the CA given, with AUTH, instances share a breaker", "[redis][shared][tls]") {
    const std::string cert = std::string(failover_test::test_data_dir()) + "/h2-test-cert.pem";  // CN and IP 127.0.0.1
    RedisServer redis("tls-Pass-for-tests", failover_test::RedisTls{cert, std::string(failover_test::test_data_dir()) + "/h2-test-key.pem"});
    const std::string prefix = unique_prefix("tls");
    auto tls_store = [&](std::string ca, std::shared_ptr<MetricsSink> sink = nullptr) {
        // A TLS handshake and AUTH under a sanitizer on a loaded machine can take longer than
        // the 200 ms default.
        return std::make_shared<RedisStore>(RedisOptions{.port = redis.port(), .password = "tls-Pass-for-tests", .tls = true,
                                                         .tls_ca_file = std::move(ca), .prefix = prefix, .sync_interval = 20ms,
                                                         .connect_timeout = 2000ms, .sink = std::move(sink)});
    };
    auto why = std::make_shared<RecordingSink>();
    auto s1 = tls_store(cert, why);
    auto s2 = tls_store(cert);
    const bool up = s1->wait_connected(5s);
    for (const auto& e : why->of("store")) UNSCOPED_INFO(e.kind << ": " << e.detail);
    REQUIRE(up);
    REQUIRE(s2->wait_connected(5s));
    RouteOptions ro;
    ro.breaker.consecutive_failures = 1;
    RouterOptions o1, o2;
    o1.state_store = s1;
    o2.state_store = s2;
    Router r1{o1, Route{"primary", StaticReply{"x"}, ro}};
    Router r2{o2, Route{"primary", StaticReply{"x"}, ro}};
    (void)r1.route<0>().breaker().on_failure(std::chrono::steady_clock::now(), CircuitBreaker::Permit::call);
    CHECK(eventually([&] { return r2.route<0>().breaker().state() == BreakerState::open; }));

    // The server's certificate is not signed by a CA the system trusts: refused, and said so.
    auto sink = std::make_shared<RecordingSink>();
    auto untrusting = tls_store("", sink);
    CHECK_FALSE(untrusting->wait_connected(300ms));
    REQUIRE(eventually([&] { return sink->count("store") >= 1; }));
    CHECK_THAT(sink->of("store").front().detail, Catch::Contains("certificate"));
    // A plain client to the TLS port gets nowhere either.
    auto plain = std::make_shared<RedisStore>(RedisOptions{.port = redis.port(), .password = "tls-Pass-for-tests", .prefix = prefix});
    CHECK_FALSE(plain->wait_connected(300ms));
}

// ---- what the review of the first version found: each test failed on it ----------------------

TEST_CASE("budgets: a quality gate that throws lets the call's hold go", "[budget][shared]") {
    auto store = std::make_shared<InMemoryBudgetStore>();
    auto budgets = std::make_shared<Budgets>(24h, store);
    budgets->limit("acme", 3.0);
    RouterOptions o;
    o.budgets = budgets;
    o.gates.push_back([](const ChatRequest&, const ChatResponse&) -> std::optional<std::string> {
        throw std::runtime_error("a bug in the gate");
    });
    RouteOptions ro;
    ro.price.output_per_million = 10000.0;  // $1 for the 100 tokens asked for
    Router router{o, Route{"paid", StaticReply{"ok"}, ro}};
    for (int i = 0; i < 5; ++i) {
        auto r = router.route_with_fallback(ChatRequest{.messages = {user("hi")}, .max_tokens = 100, .tenant = "acme"});
        REQUIRE_FALSE(r);
        CHECK(r.error().reason != Reason::budget_exceeded);  // nothing was spent, so nothing is refused
    }
    CHECK(store->held("acme") == 0.0);
}

TEST_CASE("redis: a Redis that stalls past command_timeout still counts each spend and window call once",
          "[redis][shared]") {
    RedisServer redis;
    const std::string prefix = unique_prefix("stall");
    auto s = std::make_shared<RedisStore>(RedisOptions{.port = redis.port(), .prefix = prefix, .sync_interval = 20ms,
                                                       .command_timeout = 50ms, .reconnect_min = 20ms,
                                                       .reconnect_max = 100ms});
    REQUIRE(s->wait_connected(5s));
    const auto now = std::chrono::system_clock::now();
    (void)s->spent("acme", now, 1h);
    CircuitBreaker breaker{BreakerOptions{.window = 60s, .minimum_calls = 1000, .consecutive_failures = 0}};
    RetryBudget retry;
    auto link = s->bind(RouteBinding{"r", &breaker, &retry, nullptr});
    breaker.attach(link.get());
    REQUIRE(s->wait_synced(5s));
    for (int i = 0; i < 5; ++i) {
        s->add("acme", 1.0, now);
        (void)breaker.on_failure(std::chrono::steady_clock::now(), CircuitBreaker::Permit::call);
        redis.pause();  // the round's commands wait in Redis's socket, and run when it resumes
        std::this_thread::sleep_for(200ms);
        redis.resume();
        REQUIRE(s->wait_connected(5s));
        REQUIRE(s->wait_synced(5s));
    }
    CHECK(s->stats().disconnects >= 1);
    auto fresh = std::make_shared<RedisStore>(RedisOptions{.port = redis.port(), .prefix = prefix});
    REQUIRE(fresh->wait_connected(5s));
    (void)fresh->spent("acme", now, 1h);
    REQUIRE(fresh->wait_synced(5s));
    CHECK(fresh->spent("acme", now, 1h) == Approx(5.0));
    CHECK(s->stats().resent >= 1);
    const std::string calls = redis.command({"EVAL",
                                             "local t, a = 0, redis.call('HGETALL', KEYS[1]) for i = 1, #a, 2 do "
                                             "if string.sub(a[i], 1, 1) == 'f' then t = t + tonumber(a[i + 1]) end end return t",
                                             "1", prefix + ":route:{r}:window"});
    CHECK(calls == "5");
    link->unbind();
    breaker.attach(nullptr);
}

TEST_CASE("redis: over TLS, a Redis that restarts again and again never takes the process down", "[redis][shared][tls]") {
    const std::string cert = std::string(failover_test::test_data_dir()) + "/h2-test-cert.pem";
    RedisServer redis("tls-Pass-for-tests", failover_test::RedisTls{cert, std::string(failover_test::test_data_dir()) + "/h2-test-key.pem"});
    auto s = std::make_shared<RedisStore>(RedisOptions{.port = redis.port(), .password = "tls-Pass-for-tests", .tls = true,
                                                       .tls_ca_file = cert, .prefix = unique_prefix("tlsrestart"),
                                                       .sync_interval = 1ms, .connect_timeout = 2000ms,
                                                       .reconnect_min = 5ms, .reconnect_max = 20ms,
                                                       .hold_ttl = 1000ms});
    REQUIRE(s->wait_connected(5s));
    (void)s->spent("acme", std::chrono::system_clock::now(), 1h);
    for (int i = 0; i < 30; ++i) {
        s->add("acme", 0.01, std::chrono::system_clock::now());
        redis.kill();
        std::this_thread::sleep_for(20ms);
        redis.start();
        REQUIRE(s->wait_connected(5s));
    }
    CHECK(s->stats().disconnects >= 30);  // and still here: no SIGPIPE
}

TEST_CASE("redis: scripts flushed from Redis are loaded again, and sharing goes on", "[redis][shared]") {
    RedisServer redis;
    const std::string prefix = unique_prefix("flush");
    auto a = store_for(redis, prefix);
    auto b = store_for(redis, prefix);
    RouteOptions ro;
    ro.breaker.consecutive_failures = 1;
    RouterOptions oa, ob;
    oa.state_store = a;
    ob.state_store = b;
    Router ra{oa, Route{"primary", StaticReply{"x"}, ro}};
    Router rb{ob, Route{"primary", StaticReply{"x"}, ro}};
    REQUIRE(a->wait_synced(5s));
    redis.command({"SCRIPT", "FLUSH"});
    REQUIRE(a->wait_synced(5s));
    (void)ra.route<0>().breaker().on_failure(std::chrono::steady_clock::now(), CircuitBreaker::Permit::call);
    CHECK(eventually([&] { return rb.route<0>().breaker().state() == BreakerState::open; }));
}

TEST_CASE("redis: hostile values on the channel and in the keys are bounded, never trusted", "[redis][shared]") {
    RedisServer redis;
    const std::string prefix = unique_prefix("hostile");
    redis.command({"SET", prefix + ":tenant:{acme}:held", "not-a-hash"});
    auto s = store_for(redis, prefix);
    RouteOptions ro;
    RouterOptions o;
    o.state_store = s;
    Router router{o, Route{"r", StaticReply{"x"}, ro}};
    REQUIRE(s->wait_synced(5s));
    redis.command({"PUBLISH", prefix + ":events", "b|99|open|9223372036854775000|2147483647|evil|r"});
    redis.command({"PUBLISH", prefix + ":events", "b|x|open|12abc|-5|evil|r"});
    redis.command({"PUBLISH", prefix + ":events", "c|0|cooldown|9223372036854775000|0|evil|r"});
    REQUIRE(eventually([&] { return s->stats().messages >= 3; }));
    auto& br = router.route<0>().breaker();
    if (br.state() == BreakerState::open) {
        // An opening from the channel lasts at most what this breaker itself would allow.
        CHECK(br.open_until() - std::chrono::steady_clock::now() <=
              std::chrono::duration_cast<std::chrono::steady_clock::duration>(ro.breaker.open_max * 2));
        CHECK(br.opens() <= 64);
    }
    // A key of the wrong type: an error from the script, and spend counted once, not again and again.
    s->add("acme", 1.0, std::chrono::system_clock::now());
    for (int i = 0; i < 10; ++i) REQUIRE(s->wait_synced(5s));
    const std::string spend = redis.command({"EVAL",
                                             "local t=0 for i,v in ipairs(redis.call('HGETALL',KEYS[1])) do "
                                             "if i%2==0 then t=t+tonumber(v) end end return tostring(t)",
                                             "1", prefix + ":tenant:{acme}:spend"});
    CHECK(std::stod(spend.empty() ? "0" : spend) <= 1.0);
}
