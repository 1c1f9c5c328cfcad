// SPDX-License-Identifier: MIT
// Router overhead with an in-memory transport, against the baseline of calling
// the same adapter and transport by hand (encode, send, decode) in the same
// run: answered by the primary, primary skipped by an open breaker, one
// fallback hop. Plus the breaker's allow/record path at 1..8 threads.
#include <benchmark/benchmark.h>

#include <failover/failover.hpp>

using namespace failover;

namespace {

// Answers instantly with a canned response; no locks, no allocation beyond the copy.
struct MemoryTransport {
    HttpResponse response;
    Result<HttpResponse> send(const HttpRequest&, Deadline) { return response; }
};

struct MinimalAdapter {
    Result<HttpRequest> encode(const ChatRequest&) const {
        HttpRequest h;
        h.url = "http://memory.invalid/v1";
        return h;
    }
    Result<ChatResponse> decode(const ChatRequest&, const HttpResponse& r) const {
        ChatResponse c;
        c.text = r.body;
        return c;
    }
};

std::shared_ptr<MemoryTransport> transport(int status) {
    auto t = std::make_shared<MemoryTransport>();
    t->response.status = status;
    t->response.body = "ok";
    return t;
}

ChatRequest request() {
    ChatRequest r;
    r.messages = {user("hi")};
    r.tenant = "acme";
    return r;
}

void BM_Baseline_DirectCall(benchmark::State& state) {
    MinimalAdapter a;
    auto t = transport(200);
    const auto req = request();
    for (auto _ : state) {
        auto h = a.encode(req);
        auto res = t->send(*h, Deadline{});
        auto out = a.decode(req, *res);
        benchmark::DoNotOptimize(out);
    }
}
BENCHMARK(BM_Baseline_DirectCall);

void BM_Router_Primary(benchmark::State& state) {
    Router router{Route{"primary", MinimalAdapter{}, transport(200)}, Route{"secondary", MinimalAdapter{}, transport(200)}};
    const auto req = request();
    for (auto _ : state) benchmark::DoNotOptimize(router.route_with_fallback(req));
}
BENCHMARK(BM_Router_Primary);

void BM_Router_PrimaryBreakerOpen(benchmark::State& state) {
    Router router{Route{"primary", MinimalAdapter{}, transport(200)}, Route{"secondary", MinimalAdapter{}, transport(200)}};
    (void)router.route<0>().breaker().force_open(std::chrono::steady_clock::now());
    const auto req = request();
    for (auto _ : state) benchmark::DoNotOptimize(router.route_with_fallback(req));
}
BENCHMARK(BM_Router_PrimaryBreakerOpen);

void BM_Router_OneFallbackHop(benchmark::State& state) {
    RouteOptions o;
    o.max_attempts = 1;
    o.breaker.consecutive_failures = 0;
    o.breaker.minimum_calls = 1 << 30;
    Router router{Route{"primary", MinimalAdapter{}, transport(401), o}, Route{"secondary", MinimalAdapter{}, transport(200)}};
    const auto req = request();
    for (auto _ : state) benchmark::DoNotOptimize(router.route_with_fallback(req));
}
BENCHMARK(BM_Router_OneFallbackHop);

CircuitBreaker& shared_breaker() {
    static CircuitBreaker b([] {
        BreakerOptions o;
        o.consecutive_failures = 0;
        o.minimum_calls = 1 << 30;
        return o;
    }());
    return b;
}

void BM_Breaker_AcquireRecord(benchmark::State& state) {
    auto& b = shared_breaker();
    for (auto _ : state) {
        const auto now = std::chrono::steady_clock::now();
        auto p = b.try_acquire(now);
        benchmark::DoNotOptimize(b.on_success(now, p.permit));
    }
}
BENCHMARK(BM_Breaker_AcquireRecord)->Threads(1)->Threads(2)->Threads(4)->Threads(8);

}  // namespace

BENCHMARK_MAIN();
