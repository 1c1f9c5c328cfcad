// SPDX-License-Identifier: MIT
// The pieces the router calls on every request, one at a time:
//   - the circuit breaker's allow/record path (try_acquire + on_success on one
//     shared breaker) and the classifier (classify_response on a typical 429
//     with Retry-After), each at 1, 2, 4 and 8 threads;
//   - validation of a ~2 KB document against a compiled failover::Schema;
//   - each adapter's encode and decode of a typical ~1 KB exchange (OpenAI,
//     Anthropic, Gemini).
// Multi-threaded cases report wall time per operation over all threads
// (UseRealTime), i.e. the inverse of the throughput. Counter allocs_per_op:
// operator new calls per operation (the breaker's must be 0).
#include <benchmark/benchmark.h>

#include <failover/failover.hpp>

#include "alloc_counter.hpp"
#include "bench_util.hpp"

using namespace failover;

namespace {

void count_allocations(benchmark::State& state, std::uint64_t before) {
    state.counters["allocs_per_op"] = benchmark::Counter(
        static_cast<double>(bench::thread_allocations - before) / static_cast<double>(state.iterations()),
        benchmark::Counter::kAvgThreads);
}

// ---- breaker ----------------------------------------------------------------------------

CircuitBreaker& shared_breaker() {
    static CircuitBreaker b([] {
        BreakerOptions o;
        o.consecutive_failures = 0;
        o.minimum_calls = 1 << 30;
        return o;
    }());
    return b;
}

// The breaker's own cost: the clock is read once per 1024 operations (the router reads it
// anyway), so the time is acquire + record, including the window roll at each new second.
void BM_Breaker_AcquireRecord(benchmark::State& state) {
    auto& b = shared_breaker();
    auto now = std::chrono::steady_clock::now();
    std::uint32_t n = 0;
    const auto a0 = bench::thread_allocations;
    for (auto _ : state) {
        if ((++n & 1023u) == 0) now = std::chrono::steady_clock::now();
        auto p = b.try_acquire(now);
        benchmark::DoNotOptimize(b.on_success(now, p.permit));
    }
    count_allocations(state, a0);
}
BENCHMARK(BM_Breaker_AcquireRecord)->Threads(1)->Threads(2)->Threads(4)->Threads(8)->UseRealTime();

// ---- classifier -------------------------------------------------------------------------

HttpResponse rate_limited() {
    HttpResponse r;
    r.status = 429;
    r.headers = {{"content-type", "application/json"},
                 {"retry-after", "2"},
                 {"x-request-id", "req_bench_0001"},
                 {"x-ratelimit-limit-requests", "10000"},
                 {"x-ratelimit-remaining-requests", "0"},
                 {"x-ratelimit-reset-requests", "2s"}};
    r.body = R"({"error":{"message":"Rate limit reached for gpt-4o in organization org-bench on requests per min )"
             R"((RPM): Limit 10000, Used 10000, Requested 1. Please try again in 2s. Visit )"
             R"(https://platform.openai.com/account/rate-limits to learn more.","type":"requests",)"
             R"("param":null,"code":"rate_limit_exceeded"}})";
    return r;
}

void BM_Classify_429(benchmark::State& state) {
    const HttpResponse r = rate_limited();
    const auto wall = std::chrono::system_clock::now();
    const auto a0 = bench::thread_allocations;
    for (auto _ : state) {
        Failure f = classify_response(r, wall);
        benchmark::DoNotOptimize(f);
    }
    count_allocations(state, a0);
    if (state.thread_index() == 0) {
        const Failure f = classify_response(r, wall);
        if (f.reason != Reason::rate_limited || !f.retry_after || f.retry_after->count() != 2000)
            state.SkipWithError("classifier did not read the 429 as rate_limited with a 2 s Retry-After");
    }
}
BENCHMARK(BM_Classify_429)->Threads(1)->Threads(2)->Threads(4)->Threads(8)->UseRealTime();

// ---- schema -----------------------------------------------------------------------------

const char* invoice_schema() {
    return R"({
      "type": "object",
      "required": ["invoice", "issuer", "date", "currency", "lines", "total", "vat_rate", "due_days"],
      "additionalProperties": false,
      "properties": {
        "invoice": {"type": "string", "pattern": "^INV-[0-9]{4}-[0-9]{4}$"},
        "issuer": {"type": "object", "required": ["name", "country"], "additionalProperties": false,
                   "properties": {"name": {"type": "string", "minLength": 1, "maxLength": 200},
                                  "country": {"type": "string", "enum": ["DE", "FR", "NL", "US", "GB"]}}},
        "date": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
        "currency": {"type": "string", "enum": ["EUR", "USD", "GBP"]},
        "vat_rate": {"type": "number", "minimum": 0, "maximum": 1},
        "due_days": {"type": "integer", "minimum": 0, "maximum": 365},
        "total": {"type": "number", "minimum": 0},
        "notes": {"type": ["string", "null"]},
        "lines": {"type": "array", "minItems": 1, "maxItems": 100,
                  "items": {"type": "object", "required": ["sku", "description", "quantity", "unit_price"],
                            "additionalProperties": false,
                            "properties": {"sku": {"type": "string", "pattern": "^[A-Z]-[0-9]{2}$"},
                                           "description": {"type": "string", "maxLength": 500},
                                           "quantity": {"type": "integer", "minimum": 1},
                                           "unit_price": {"type": "number", "minimum": 0},
                                           "tags": {"type": "array", "items": {"type": "string"}}}}}
      }
    })";
}

// A valid invoice of about 2 KB (serialised).
nlohmann::json invoice_document() {
    nlohmann::json lines = nlohmann::json::array();
    for (int i = 0; i < 14; ++i) {
        lines.push_back({{"sku", std::string(1, static_cast<char>('A' + i % 26)) + "-" + std::to_string(10 + i)},
                         {"description", "Replacement part for the spring assembly, batch " + std::to_string(i)},
                         {"quantity", 1 + i},
                         {"unit_price", 12.5 + i},
                         {"tags", {"spare", "q1"}}});
    }
    return {{"invoice", "INV-2024-0117"},
            {"issuer", {{"name", "Northwind Traders"}, {"country", "DE"}}},
            {"date", "2024-03-14"},
            {"currency", "EUR"},
            {"vat_rate", 0.19},
            {"due_days", 30},
            {"total", 1284.5},
            {"notes", nullptr},
            {"lines", lines}};
}

void BM_Schema_Validate_2KB(benchmark::State& state) {
    const auto schema = Schema::parse(invoice_schema());
    const nlohmann::json doc = invoice_document();
    if (!schema->validate(doc).empty()) {
        state.SkipWithError("the benchmark document does not validate");
        return;
    }
    for (auto _ : state) benchmark::DoNotOptimize(schema->validate(doc));
    state.counters["doc_bytes"] = static_cast<double>(doc.dump().size());
}
BENCHMARK(BM_Schema_Validate_2KB);

// What the router does with a text answer: parse it, then validate.
void BM_Schema_ParseValidate_2KB(benchmark::State& state) {
    const auto schema = Schema::parse(invoice_schema());
    const std::string text = invoice_document().dump();
    for (auto _ : state) {
        nlohmann::json doc = nlohmann::json::parse(text);
        benchmark::DoNotOptimize(schema->validate(doc));
    }
    state.counters["doc_bytes"] = static_cast<double>(text.size());
}
BENCHMARK(BM_Schema_ParseValidate_2KB);

// ---- adapters ---------------------------------------------------------------------------

template <class A>
void encode_bench(benchmark::State& state, const A& adapter) {
    const ChatRequest req = bench::typical_request();
    std::size_t bytes = 0;
    for (auto _ : state) {
        auto h = adapter.encode(req);
        bytes = h->body.size();
        benchmark::DoNotOptimize(h);
    }
    state.counters["body_bytes"] = static_cast<double>(bytes);
}

template <class A>
void decode_bench(benchmark::State& state, const A& adapter, std::string body) {
    const ChatRequest req = bench::typical_request();
    HttpResponse res;
    res.status = 200;
    res.headers = bench::json_response_headers();
    res.body = std::move(body);
    auto check = adapter.decode(req, res);
    if (!check || check->text != bench::answer_text()) {
        state.SkipWithError("the canned answer does not decode to the expected text");
        return;
    }
    for (auto _ : state) benchmark::DoNotOptimize(adapter.decode(req, res));
    state.counters["body_bytes"] = static_cast<double>(res.body.size());
}

OpenAI openai() { return OpenAI{{.model = "gpt-4o", .api_key = "bench-key"}}; }
Anthropic anthropic() { return Anthropic{{.model = "claude-sonnet-4-5", .api_key = "bench-key"}}; }
Gemini gemini() { return Gemini{{.model = "gemini-2.5-flash", .api_key = "bench-key"}}; }

void BM_Adapter_OpenAI_Encode(benchmark::State& s) { encode_bench(s, openai()); }
void BM_Adapter_OpenAI_Decode(benchmark::State& s) { decode_bench(s, openai(), bench::openai_answer()); }
void BM_Adapter_Anthropic_Encode(benchmark::State& s) { encode_bench(s, anthropic()); }
void BM_Adapter_Anthropic_Decode(benchmark::State& s) { decode_bench(s, anthropic(), bench::anthropic_answer()); }
void BM_Adapter_Gemini_Encode(benchmark::State& s) { encode_bench(s, gemini()); }
void BM_Adapter_Gemini_Decode(benchmark::State& s) { decode_bench(s, gemini(), bench::gemini_answer()); }
BENCHMARK(BM_Adapter_OpenAI_Encode);
BENCHMARK(BM_Adapter_OpenAI_Decode);
BENCHMARK(BM_Adapter_Anthropic_Encode);
BENCHMARK(BM_Adapter_Anthropic_Decode);
BENCHMARK(BM_Adapter_Gemini_Encode);
BENCHMARK(BM_Adapter_Gemini_Decode);

}  // namespace

BENCHMARK_MAIN();
