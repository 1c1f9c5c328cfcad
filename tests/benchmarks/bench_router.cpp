// SPDX-License-Identifier: MIT
// The router's own cost, with an in-memory transport so no I/O hides it. Each
// routed case has a baseline measured in the same run that does the same
// adapter and transport work by hand:
//   - without JSON work (a minimal adapter): answered by the primary, primary
//     skipped by an open breaker, one fallback hop (baseline: encode, send,
//     classify the failure, encode, send, decode by hand);
//   - with the OpenAI adapter encoding and decoding a typical ~1 KB exchange:
//     CPU per request, routed and by hand (Router and DynamicRouter);
//   - resident memory before and after 100,000 routed requests.
// Counters: allocs_per_call (operator new calls per request).
#include <benchmark/benchmark.h>

#include <failover/failover.hpp>

#include "alloc_counter.hpp"
#include "bench_util.hpp"

using namespace failover;

namespace {

// Builds a request and reads a response without any JSON: what is left is the router.
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

std::shared_ptr<bench::MemoryTransport> minimal_transport(int status) { return bench::memory_transport(status, "ok"); }

ChatRequest minimal_request() {
    ChatRequest r;
    r.messages = {user("hi")};
    r.tenant = "acme";
    return r;
}

// A primary that fails with a terminal error every time, without ever opening its breaker:
// every request pays exactly one fallback hop.
RouteOptions failing_primary() {
    RouteOptions o;
    o.max_attempts = 1;
    o.breaker.consecutive_failures = 0;
    o.breaker.minimum_calls = 1 << 30;
    return o;
}

OpenAI openai(const char* route) {
    return OpenAI{{.model = "gpt-4o", .api_key = "bench-key", .base_url = std::string("http://memory.invalid/") + route}};
}

void count_allocations(benchmark::State& state, std::uint64_t before) {
    state.counters["allocs_per_call"] = benchmark::Counter(
        static_cast<double>(bench::thread_allocations - before) / static_cast<double>(state.iterations()));
}

// ---- without JSON work ------------------------------------------------------------------

void BM_Baseline_DirectCall(benchmark::State& state) {
    MinimalAdapter a;
    auto t = minimal_transport(200);
    const auto req = minimal_request();
    const auto a0 = bench::thread_allocations;
    for (auto _ : state) {
        auto h = a.encode(req);
        auto res = t->send(*h, Deadline{});
        auto out = a.decode(req, *res);
        benchmark::DoNotOptimize(out);
    }
    count_allocations(state, a0);
}
BENCHMARK(BM_Baseline_DirectCall);

void BM_Router_Primary(benchmark::State& state) {
    Router router{Route{"primary", MinimalAdapter{}, minimal_transport(200)},
                  Route{"secondary", MinimalAdapter{}, minimal_transport(200)}};
    const auto req = minimal_request();
    const auto a0 = bench::thread_allocations;
    for (auto _ : state) benchmark::DoNotOptimize(router.route_with_fallback(req));
    count_allocations(state, a0);
}
BENCHMARK(BM_Router_Primary);

void BM_Router_PrimaryBreakerOpen(benchmark::State& state) {
    Router router{Route{"primary", MinimalAdapter{}, minimal_transport(200)},
                  Route{"secondary", MinimalAdapter{}, minimal_transport(200)}};
    (void)router.route<0>().breaker().force_open(std::chrono::steady_clock::now());
    const auto req = minimal_request();
    const auto a0 = bench::thread_allocations;
    for (auto _ : state) benchmark::DoNotOptimize(router.route_with_fallback(req));
    count_allocations(state, a0);
}
BENCHMARK(BM_Router_PrimaryBreakerOpen);

// The hand-written equivalent of one hop: what a caller must do without the router.
void BM_Baseline_FallbackByHand(benchmark::State& state) {
    MinimalAdapter a;
    auto bad = minimal_transport(401);
    auto good = minimal_transport(200);
    const auto req = minimal_request();
    const auto a0 = bench::thread_allocations;
    for (auto _ : state) {
        auto h1 = a.encode(req);
        auto r1 = bad->send(*h1, Deadline{});
        if (!is_success(r1->status)) {
            Failure f = classify_response(*r1, std::chrono::system_clock::now());
            benchmark::DoNotOptimize(f);
            auto h2 = a.encode(req);
            auto r2 = good->send(*h2, Deadline{});
            auto out = a.decode(req, *r2);
            benchmark::DoNotOptimize(out);
        }
    }
    count_allocations(state, a0);
}
BENCHMARK(BM_Baseline_FallbackByHand);

void BM_Router_OneFallbackHop(benchmark::State& state) {
    Router router{Route{"primary", MinimalAdapter{}, minimal_transport(401), failing_primary()},
                  Route{"secondary", MinimalAdapter{}, minimal_transport(200)}};
    const auto req = minimal_request();
    const auto a0 = bench::thread_allocations;
    for (auto _ : state) benchmark::DoNotOptimize(router.route_with_fallback(req));
    count_allocations(state, a0);
}
BENCHMARK(BM_Router_OneFallbackHop);

// ---- with the OpenAI adapter and a ~1 KB exchange -----------------------------------------

void BM_Direct_OpenAI_1KB(benchmark::State& state) {
    const OpenAI a = openai("primary");
    auto t = bench::memory_transport(200, bench::openai_answer(), bench::json_response_headers());
    const auto req = bench::typical_request();
    const auto a0 = bench::thread_allocations;
    std::size_t bytes = 0;
    for (auto _ : state) {
        auto h = a.encode(req);
        auto res = t->send(*h, Deadline{});
        auto out = a.decode(req, *res);
        bytes = h->body.size() + res->body.size();
        benchmark::DoNotOptimize(out);
    }
    count_allocations(state, a0);
    state.counters["exchange_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_Direct_OpenAI_1KB);

void BM_Router_OpenAI_1KB(benchmark::State& state) {
    auto t = bench::memory_transport(200, bench::openai_answer(), bench::json_response_headers());
    Router router{Route{"primary", openai("primary"), t}, Route{"secondary", openai("secondary"), t}};
    const auto req = bench::typical_request();
    const auto a0 = bench::thread_allocations;
    for (auto _ : state) benchmark::DoNotOptimize(router.route_with_fallback(req));
    count_allocations(state, a0);
}
BENCHMARK(BM_Router_OpenAI_1KB);

void BM_DynamicRouter_OpenAI_1KB(benchmark::State& state) {
    auto t = bench::memory_transport(200, bench::openai_answer(), bench::json_response_headers());
    std::vector<AnyRoute> chain;
    chain.emplace_back(Route{"primary", openai("primary"), t});
    chain.emplace_back(Route{"secondary", openai("secondary"), t});
    DynamicRouter router{std::move(chain)};
    const auto req = bench::typical_request();
    const auto a0 = bench::thread_allocations;
    for (auto _ : state) benchmark::DoNotOptimize(router.route_with_fallback(req));
    count_allocations(state, a0);
}
BENCHMARK(BM_DynamicRouter_OpenAI_1KB);

// ---- resident memory over 100,000 requests --------------------------------------------------

// One run of exactly 100,000 routed requests (OpenAI adapter, in-memory transport). RSS is read
// after 1,000 warm-up requests (allocator pools filled) and again at the end.
void BM_Memory_InMemory_100k(benchmark::State& state) {
    auto t = bench::memory_transport(200, bench::openai_answer(), bench::json_response_headers());
    Router router{Route{"primary", openai("primary"), t}, Route{"secondary", openai("secondary"), t}};
    const auto req = bench::typical_request();
    for (int i = 0; i < 1000; ++i) benchmark::DoNotOptimize(router.route_with_fallback(req));
    const long before = bench::self_rss_kb();
    std::size_t failures = 0;
    for (auto _ : state) {
        auto r = router.route_with_fallback(req);
        if (!r) ++failures;
        benchmark::DoNotOptimize(r);
    }
    const long after = bench::self_rss_kb();
    state.counters["rss_before_kb"] = static_cast<double>(before);
    state.counters["rss_after_kb"] = static_cast<double>(after);
    state.counters["rss_delta_kb"] = static_cast<double>(after - before);
    state.counters["requests"] = static_cast<double>(state.iterations());
    if (failures) state.SkipWithError("some routed requests failed");
}
BENCHMARK(BM_Memory_InMemory_100k)->Iterations(100000);

}  // namespace

BENCHMARK_MAIN();
