// SPDX-License-Identifier: MIT
// End to end on loopback, against a baseline measured in the same run.
//
//   raw       a hand-written libcurl keep-alive POST (one easy handle per
//             client thread, options set once, reused for every request) of
//             the exact bytes the OpenAI adapter sends, to the mock's "ok" route
//   transport CurlTransport::send of those same bytes (no adapter, no router)
//   router_nojson  Router::route_with_fallback through CurlTransport with an
//             adapter that sends those bytes and keeps the body as text (the
//             router and transport without any JSON work)
//   router    Router::route_with_fallback through a shared CurlTransport and
//             the OpenAI adapter, answered by the primary ("ok")
//   failover  the same with a primary that answers 503 ("fail"), one
//             attempt, breaker never opening: every request pays one hop
//   peer      Portkey's open-source gateway (started by tests/benchmarks/run)
//             in front of the same mock route, driven by raw libcurl
//   peer_fallback  the gateway with a fallback config whose first target is "fail"
//
// Modes run in interleaved blocks (raw, router, failover, raw, ...) with all
// client threads in the same mode at once, so load from other processes hits
// every mode alike. Each request is timed on its own; counters give p50/p99/
// mean latency in microseconds per mode, and client CPU per request (thread
// CPU time of the client threads: curl, adapter and router work). The peer
// case also reports the gateway's RSS and its CPU per request (utime+stime
// from /proc/<pid>/stat).
//
// Environment:
//   FAILOVER_MOCK_URL  http://127.0.0.1:<port> of a running failover_mock_server;
//                      unset: an in-process MockProvider (its threads then share
//                      this process's CPU and RSS figures)
//   FAILOVER_PEER_URL  http://127.0.0.1:<port> of the peer gateway; unset: peer cases skip
//   FAILOVER_PEER_PID  the gateway's pid, for its RSS and CPU
//
// Also: resident memory of this process before and after 100,000 routed
// requests through CurlTransport.
#include <curl/curl.h>

#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

#include <failover/failover.hpp>

#include "bench_util.hpp"
#include "mock_routes.hpp"

using namespace failover;

namespace {

using Clock = std::chrono::steady_clock;

std::string getenv_str(const char* name) {
    const char* v = std::getenv(name);
    return v ? std::string(v) : std::string();
}

// Where the mock lives: an external server or one started here.
std::string& mock_base() {
    static std::string base;
    return base;
}

OpenAI openai_to(const std::string& route) {
    return OpenAI{{.model = "gpt-4o", .api_key = "bench-key", .base_url = mock_base() + "/" + route + "/v1"}};
}

RouteOptions failing_primary() {
    RouteOptions o;
    o.max_attempts = 1;
    o.breaker.consecutive_failures = 0;
    o.breaker.minimum_calls = 1 << 30;
    return o;
}

// ---- the raw libcurl client ---------------------------------------------------------------

std::size_t collect(char* data, std::size_t size, std::size_t count, void* user) {
    static_cast<std::string*>(user)->append(data, size * count);
    return size * count;
}

// One easy handle, set up once and reused: the least any libcurl program can do per request.
class RawClient {
public:
    RawClient(std::string url, const Headers& headers, std::string body)
        : url_(std::move(url)), body_(std::move(body)), h_(curl_easy_init()) {
        if (!h_) throw std::runtime_error("curl_easy_init failed");
        for (const auto& [k, v] : headers) list_ = curl_slist_append(list_, (k + ": " + v).c_str());
        list_ = curl_slist_append(list_, "Expect:");
        curl_easy_setopt(h_, CURLOPT_URL, url_.c_str());
        curl_easy_setopt(h_, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h_, CURLOPT_HTTPHEADER, list_);
        curl_easy_setopt(h_, CURLOPT_POSTFIELDS, body_.data());
        curl_easy_setopt(h_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body_.size()));
        curl_easy_setopt(h_, CURLOPT_WRITEFUNCTION, &collect);
        curl_easy_setopt(h_, CURLOPT_WRITEDATA, static_cast<void*>(&response_));
        curl_easy_setopt(h_, CURLOPT_TIMEOUT_MS, 30000L);
    }
    ~RawClient() {
        curl_easy_cleanup(h_);
        curl_slist_free_all(list_);
    }
    RawClient(const RawClient&) = delete;
    RawClient& operator=(const RawClient&) = delete;

    /// One POST; true on a 200 whose body carries the expected answer.
    bool post() {
        response_.clear();
        if (curl_easy_perform(h_) != CURLE_OK) return false;
        long status = 0;
        curl_easy_getinfo(h_, CURLINFO_RESPONSE_CODE, &status);
        return status == 200 && response_.find("INV-2024-0117") != std::string::npos;
    }

private:
    std::string url_;
    std::string body_;
    CURL* h_;
    curl_slist* list_ = nullptr;
    std::string response_;
};

// The exact request the OpenAI adapter sends for the typical exchange.
HttpRequest encoded_request() {
    auto h = openai_to("ok").encode(bench::typical_request());
    if (!h) throw std::runtime_error("encode failed: " + h.error().message);
    return *h;
}

// ---- the interleaved runner ---------------------------------------------------------------

enum class Mode { raw, transport, router_nojson, router, failover, peer, peer_fallback };

const char* name_of(Mode m) {
    switch (m) {
        case Mode::raw: return "raw";
        case Mode::transport: return "transport";
        case Mode::router_nojson: return "router_nojson";
        case Mode::router: return "router";
        case Mode::failover: return "failover";
        case Mode::peer: return "peer";
        case Mode::peer_fallback: return "peer_fallback";
    }
    return "?";
}

struct ModeResult {
    std::vector<double> latency_us;
    double client_cpu_s = 0;
    double peer_cpu_s = 0;
    std::size_t failures = 0;
};

// Sends prebuilt bytes and keeps the answer as text: the router and transport without JSON work.
struct PassthroughAdapter {
    HttpRequest prebuilt;
    Result<HttpRequest> encode(const ChatRequest&) const { return prebuilt; }
    Result<ChatResponse> decode(const ChatRequest&, const HttpResponse& r) const {
        ChatResponse c;
        c.text = r.body;
        return c;
    }
};

struct Shared {
    std::shared_ptr<CurlTransport> http = std::make_shared<CurlTransport>();
    HttpRequest encoded = encoded_request();
    Router<Route<PassthroughAdapter, CurlTransport>> passthrough{Route{"primary", PassthroughAdapter{encoded}, http}};
    Router<Route<OpenAI, CurlTransport>, Route<OpenAI, CurlTransport>> router{
        Route{"primary", openai_to("ok"), http}, Route{"secondary", openai_to("ok"), http}};
    Router<Route<OpenAI, CurlTransport>, Route<OpenAI, CurlTransport>> failover{
        Route{"primary", openai_to("fail"), http, failing_primary()}, Route{"secondary", openai_to("ok"), http}};
};

std::string portkey_config(bool fallback) {
    const std::string ok = R"({"provider":"openai","custom_host":")" + mock_base() + R"(/ok/v1","api_key":"x"})";
    if (!fallback) return ok;
    return R"({"strategy":{"mode":"fallback"},"targets":[{"provider":"openai","custom_host":")" + mock_base() +
           R"(/fail/v1","api_key":"x"},)" + ok + "]}";
}

// Per-thread clients for the modes that do not go through the router.
struct ThreadClients {
    explicit ThreadClients(const std::vector<Mode>& modes) {
        const HttpRequest enc = encoded_request();
        const std::string peer = getenv_str("FAILOVER_PEER_URL");
        for (Mode m : modes) {
            if (m == Mode::raw) raw = std::make_unique<RawClient>(enc.url, enc.headers, enc.body);
            if (m == Mode::peer || m == Mode::peer_fallback) {
                Headers h = {{"Content-Type", "application/json"},
                             {"x-portkey-config", portkey_config(m == Mode::peer_fallback)}};
                auto& slot = m == Mode::peer ? peer_plain : peer_fallback;
                slot = std::make_unique<RawClient>(peer + "/v1/chat/completions", h, enc.body);
            }
        }
    }
    std::unique_ptr<RawClient> raw, peer_plain, peer_fallback;
};

bool one_request(Mode m, Shared& s, ThreadClients& c, const ChatRequest& req) {
    switch (m) {
        case Mode::raw: return c.raw->post();
        case Mode::transport: {
            auto r = s.http->send(s.encoded, Deadline{});
            return r && r->status == 200 && r->body.find("INV-2024-0117") != std::string::npos;
        }
        case Mode::router_nojson: {
            auto r = s.passthrough.route_with_fallback(req);
            return r && r->text.find("INV-2024-0117") != std::string::npos;
        }
        case Mode::router: {
            auto r = s.router.route_with_fallback(req);
            return r && r->route == "primary";
        }
        case Mode::failover: {
            auto r = s.failover.route_with_fallback(req);
            return r && r->route == "secondary";
        }
        case Mode::peer: return c.peer_plain->post();
        case Mode::peer_fallback: return c.peer_fallback->post();
    }
    return false;
}

struct RunResult {
    std::map<Mode, ModeResult> modes;
    double wall_s = 0;
};

// `threads` clients; `blocks` rounds over `modes` after one warm-up round; each thread sends
// `per_block` requests per mode and round.
RunResult run_interleaved(Shared& shared, const std::vector<Mode>& modes, int threads, int per_block, int blocks,
                          const std::string& peer_pid) {
    RunResult out;
    for (Mode m : modes) out.modes[m];
    std::mutex mu;
    std::barrier sync(threads);
    std::atomic<bool> setup_failed{false};
    const auto t0 = Clock::now();
    auto body = [&](int index) {
        std::unique_ptr<ThreadClients> clients;
        try {
            clients = std::make_unique<ThreadClients>(modes);
        } catch (...) {
            setup_failed = true;
        }
        const ChatRequest req = bench::typical_request();
        std::map<Mode, ModeResult> mine;
        for (int round = 0; round <= blocks; ++round) {
            for (Mode m : modes) {
                double peer_cpu0 = 0;
                sync.arrive_and_wait();
                if (index == 0 && !peer_pid.empty()) peer_cpu0 = bench::proc_cpu_seconds(peer_pid);
                sync.arrive_and_wait();
                if (setup_failed) continue;
                ModeResult& r = mine[m];
                const auto cpu0 = bench::thread_cpu();
                for (int i = 0; i < per_block; ++i) {
                    const auto a = Clock::now();
                    const bool ok = one_request(m, shared, *clients, req);
                    const auto b = Clock::now();
                    if (round == 0) continue;  // warm-up: connections, caches, the gateway's JIT
                    if (!ok) ++r.failures;
                    r.latency_us.push_back(std::chrono::duration<double, std::micro>(b - a).count());
                }
                if (round > 0) r.client_cpu_s += std::chrono::duration<double>(bench::thread_cpu() - cpu0).count();
                sync.arrive_and_wait();
                if (index == 0 && !peer_pid.empty() && round > 0)
                    r.peer_cpu_s += bench::proc_cpu_seconds(peer_pid) - peer_cpu0;
            }
        }
        std::lock_guard lock(mu);
        for (auto& [m, r] : mine) {
            ModeResult& all = out.modes[m];
            all.latency_us.insert(all.latency_us.end(), r.latency_us.begin(), r.latency_us.end());
            all.client_cpu_s += r.client_cpu_s;
            all.peer_cpu_s += r.peer_cpu_s;
            all.failures += r.failures;
        }
    };
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i) pool.emplace_back(body, i);
    for (auto& t : pool) t.join();
    out.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (setup_failed) out.modes.clear();
    return out;
}

void report(benchmark::State& state, RunResult& res) {
    std::size_t failures = 0;
    for (auto& [m, r] : res.modes) {
        const std::string n = name_of(m);
        const double count = static_cast<double>(r.latency_us.size());
        double sum = 0;
        for (double v : r.latency_us) sum += v;
        state.counters[n + "_p50_us"] = bench::percentile(r.latency_us, 0.50);
        state.counters[n + "_p99_us"] = bench::percentile(r.latency_us, 0.99);
        state.counters[n + "_mean_us"] = count > 0 ? sum / count : 0;
        state.counters[n + "_requests"] = count;
        state.counters[n + "_client_cpu_us_per_req"] = count > 0 ? r.client_cpu_s * 1e6 / count : 0;
        if (r.peer_cpu_s > 0) state.counters[n + "_server_cpu_us_per_req"] = r.peer_cpu_s * 1e6 / count;
        failures += r.failures;
    }
    if (res.modes.empty()) state.SkipWithError("client setup failed");
    else if (failures) state.SkipWithError((std::to_string(failures) + " requests failed").c_str());
}

// Args: concurrency, requests per thread per block, blocks.
void BM_E2E(benchmark::State& state) {
    Shared shared;
    const int threads = static_cast<int>(state.range(0));
    for (auto _ : state) {
        const std::vector<Mode> modes = {Mode::raw, Mode::transport, Mode::router_nojson, Mode::router, Mode::failover};
        RunResult res = run_interleaved(shared, modes, threads, static_cast<int>(state.range(1)),
                                        static_cast<int>(state.range(2)), "");
        state.SetIterationTime(res.wall_s);
        report(state, res);
    }
}
BENCHMARK(BM_E2E)
    ->ArgNames({"c", "per_block", "blocks"})
    ->Args({1, 500, 6})
    ->Args({16, 60, 6})
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

void BM_Peer(benchmark::State& state) {
    const std::string url = getenv_str("FAILOVER_PEER_URL");
    if (url.empty()) {
        state.SkipWithError("FAILOVER_PEER_URL not set (tests/benchmarks/run starts the peer gateway)");
        return;
    }
    const std::string pid = getenv_str("FAILOVER_PEER_PID");
    Shared shared;
    const int threads = static_cast<int>(state.range(0));
    const long rss_before = pid.empty() ? -1 : bench::proc_status_kb(pid, "VmRSS");
    for (auto _ : state) {
        RunResult res = run_interleaved(shared, {Mode::raw, Mode::peer, Mode::peer_fallback}, threads,
                                        static_cast<int>(state.range(1)), static_cast<int>(state.range(2)), pid);
        state.SetIterationTime(res.wall_s);
        report(state, res);
    }
    if (!pid.empty()) {
        state.counters["peer_rss_before_kb"] = static_cast<double>(rss_before);
        state.counters["peer_rss_after_kb"] = static_cast<double>(bench::proc_status_kb(pid, "VmRSS"));
        state.counters["peer_rss_peak_kb"] = static_cast<double>(bench::proc_status_kb(pid, "VmHWM"));
    }
}
BENCHMARK(BM_Peer)
    ->ArgNames({"c", "per_block", "blocks"})
    ->Args({1, 150, 6})
    ->Args({16, 12, 6})
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// Exactly 100,000 routed requests through CurlTransport to the mock; RSS after 1,000 warm-up
// requests and at the end.
void BM_Memory_Curl_100k(benchmark::State& state) {
    Shared shared;
    const ChatRequest req = bench::typical_request();
    for (int i = 0; i < 1000; ++i) benchmark::DoNotOptimize(shared.router.route_with_fallback(req));
    const long before = bench::self_rss_kb();
    std::size_t failures = 0;
    for (auto _ : state) {
        auto r = shared.router.route_with_fallback(req);
        if (!r) ++failures;
        benchmark::DoNotOptimize(r);
    }
    const long after = bench::self_rss_kb();
    state.counters["rss_before_kb"] = static_cast<double>(before);
    state.counters["rss_after_kb"] = static_cast<double>(after);
    state.counters["rss_delta_kb"] = static_cast<double>(after - before);
    state.counters["requests"] = static_cast<double>(state.iterations());
    if (failures) state.SkipWithError((std::to_string(failures) + " routed requests failed").c_str());
}
BENCHMARK(BM_Memory_Curl_100k)->Iterations(100000)->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    std::unique_ptr<failover_mock::MockProvider> local;
    mock_base() = getenv_str("FAILOVER_MOCK_URL");
    if (mock_base().empty()) {
        local = std::make_unique<failover_mock::MockProvider>();
        bench::configure_routes(*local);
        mock_base() = local->base_url();
        benchmark::AddCustomContext("mock", "in-process MockProvider (shares this process's CPU and RSS)");
    } else {
        benchmark::AddCustomContext("mock", "failover_mock_server at " + mock_base());
    }
    const std::string peer = getenv_str("FAILOVER_PEER_URL");
    benchmark::AddCustomContext("peer", peer.empty() ? "none" : peer);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    local.reset();
    curl_global_cleanup();
    return 0;
}
