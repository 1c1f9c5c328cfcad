// SPDX-License-Identifier: MIT
// Another instance of an application, for tests/test_redis.cpp: a process of its
// own with its own router and RedisStore, talking to the test over stdin/stdout.
//   failover_redis_peer opener <redis port> <prefix> <upstream url>
//     a chain [primary -> upstream, canned]; on "go", sends requests until the
//     primary's breaker opens; prints "opened <wall-clock µs>"; exits on EOF.
//   failover_redis_peer budget <redis port> <prefix> <upstream url> <tenant> <ceiling usd>
//     one priced route; on "go", sends requests one after another until the
//     tenant's budget refuses; prints "answered <n> <dollars>"; exits on EOF.
// Each prints "ready" once its store is connected.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include <failover/failover.hpp>
#include <failover/stores/redis.hpp>

using namespace failover;

namespace {

std::int64_t wall_us() {
    return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

class OpenedAt final : public MetricsSink {
public:
    void record(const Event& e) override {
        if (const auto* b = std::get_if<BreakerEvent>(&e); b && b->transition.to == BreakerState::open)
            at.store(wall_us(), std::memory_order_release);
    }
    std::atomic<std::int64_t> at{0};
};

std::shared_ptr<RedisStore> connect(int port, const std::string& prefix) {
    auto store = std::make_shared<RedisStore>(RedisOptions{.port = port, .prefix = prefix, .sync_interval = std::chrono::milliseconds{20}});
    if (!store->wait_connected(std::chrono::seconds{5})) {
        std::cerr << "peer: no redis\n";
        std::exit(2);
    }
    return store;
}

void wait_for_go() {
    std::string line;
    if (!std::getline(std::cin, line) || line != "go") std::exit(3);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 5) return 64;
    const std::string mode = argv[1];
    const int port = std::atoi(argv[2]);
    const std::string prefix = argv[3];
    const std::string upstream = argv[4];
    auto http = std::make_shared<CurlTransport>();
    auto store = connect(port, prefix);

    if (mode == "opener") {
        auto opened = std::make_shared<OpenedAt>();
        RouterOptions o;
        o.state_store = store;
        RouteOptions ro;
        ro.max_attempts = 1;
        ro.breaker.consecutive_failures = 3;
        ro.breaker.open_base = std::chrono::seconds{30};
        Router router{o, Route{"primary", OpenAI{{.model = "gpt-4o", .api_key = "sk-test", .base_url = upstream + "/v1"}}, http, ro},
                      Route{"canned", StaticReply{"busy"}}};
        router.add_sink(opened);
        std::cout << "ready" << std::endl;
        wait_for_go();
        for (int i = 0; i < 50 && router.route<0>().breaker().state() != BreakerState::open; ++i)
            (void)router.route_with_fallback(ChatRequest{.messages = {user("hi")}});
        std::cout << "opened " << opened->at.load() << std::endl;
        std::string line;
        while (std::getline(std::cin, line)) {
        }
        return 0;
    }
    if (mode == "budget" && argc >= 7) {
        const std::string tenant = argv[5];
        const double ceiling = std::atof(argv[6]);
        auto budgets = std::make_shared<Budgets>(std::chrono::hours{24}, store);
        budgets->limit(tenant, ceiling);
        RouterOptions o;
        o.state_store = store;
        o.budgets = budgets;
        RouteOptions ro;
        ro.max_attempts = 1;
        ro.price.output_per_million = 10000.0;  // $1 for the 100 output tokens the upstream answers
        Router router{o, Route{"paid", OpenAI{{.model = "gpt-4o", .api_key = "sk-test", .base_url = upstream + "/v1"}}, http, ro}};
        std::cout << "ready" << std::endl;
        wait_for_go();
        int answered = 0;
        double dollars = 0.0;
        for (int i = 0; i < 1000; ++i) {
            auto r = router.route_with_fallback(ChatRequest{.messages = {user("hi")}, .max_tokens = 100, .tenant = tenant});
            if (r) {
                ++answered;
                dollars += r->cost_usd;
            } else if (r.error().reason == Reason::budget_exceeded) {
                break;
            }
        }
        store->wait_synced(std::chrono::seconds{2});
        std::cout << "answered " << answered << " " << dollars << std::endl;
        std::string line;
        while (std::getline(std::cin, line)) {
        }
        return 0;
    }
    return 64;
}
