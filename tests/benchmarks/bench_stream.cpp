// SPDX-License-Identifier: MIT
// Streaming on loopback, against baselines measured in the same run.
//
// Time to first token (BM_StreamTTFT), per wire format (OpenAI Chat
// Completions, Anthropic Messages) and concurrency, against the mock's "ok"
// route (the typical ~400-byte answer in 51 content events of 8 bytes):
//   raw       a hand-written libcurl keep-alive POST (one easy handle per
//             client thread, options set once, reused) of the exact streaming
//             request the adapter sends (encode_stream), with a write callback
//             that splits the body at blank lines and looks into each event
//             for answer text. First token: when the first byte of the first
//             event that carries text arrived. Also the time to the response
//             headers (the mock prepares the whole stream before it answers,
//             so this is server time both clients wait for).
//   transport CurlTransport::stream of the same bytes with the same scanner
//             as on_data (no adapter, no router)
//   router    Router::stream with one route (the adapter, CurlTransport): the
//             first text delta delivered to the callback
// For each: time from starting the request to the first token and to the end
// of the stream (the call returns), p50/p99, and client CPU per stream. Modes
// run in interleaved blocks, in an order that rotates every round, with all client threads in the same mode, as in
// bench_e2e, so load from other processes hits every mode alike.
//
// Resident memory while streaming a long answer (BM_StreamMemory_*, run first,
// in a fresh process): the mock's "long16m" route streams 16 MiB of text in
// 64-byte pieces (262,144 OpenAI chunks, ~80 MB on the wire). Sampled: VmRSS
// before, its peak during the stream (VmHWM, reset through
// /proc/self/clear_refs just before), VmRSS after, and the heap in use
// (mallinfo2: arena + mmapped bytes) before, at its largest while streaming
// (sampled from the callback), with the returned ChatResponse still held, and
// after. Raw: raw libcurl that discards the bytes (the baseline). Router:
// Router::stream with a callback that discards the deltas, for a 1 MiB and a
// 16 MiB answer (what grows with the answer and what does not), the 16 MiB
// answer with StreamOptions::keep_text = false (nothing kept: flat), and twenty
// 1 MiB streams in a row (growth across streams).
//
// Environment: FAILOVER_MOCK_URL, http://127.0.0.1:<port> of a running
// failover_mock_server; unset: an in-process MockProvider (its threads then
// share this process's CPU, and its memory this process's RSS).
#include <curl/curl.h>
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

#include <failover/failover.hpp>
#include <failover/detail/stream/anthropic.hpp>
#include <failover/detail/stream/openai.hpp>

#include "bench_util.hpp"
#include "mock_routes.hpp"

using namespace failover;

namespace {

using Clock = std::chrono::steady_clock;

double us_between(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double, std::micro>(b - a).count(); }

std::string getenv_str(const char* name) {
    const char* v = std::getenv(name);
    return v ? std::string(v) : std::string();
}

std::string& mock_base() {
    static std::string base;
    return base;
}

enum class Wire { openai = 0, anthropic = 1 };

const char* name_of(Wire w) { return w == Wire::openai ? "openai" : "anthropic"; }

OpenAI openai_to(const std::string& route) {
    return OpenAI{{.model = "gpt-4o", .api_key = "bench-key", .base_url = mock_base() + "/" + route + "/v1"}};
}

Anthropic anthropic_to(const std::string& route) {
    return Anthropic{{.model = "claude-sonnet-4-5", .api_key = "bench-key", .base_url = mock_base() + "/" + route}};
}

// The exact streaming request the adapter sends for the typical exchange.
HttpRequest encoded_stream(Wire w, const std::string& route) {
    const ChatRequest req = bench::typical_request();
    Result<HttpRequest> h = w == Wire::openai ? openai_to(route).encode_stream(req) : anthropic_to(route).encode_stream(req);
    if (!h) throw std::runtime_error("encode_stream failed: " + h.error().message);
    return *h;
}

// ---- the least a streaming client does: find the first event with answer text ----------

/// Splits a text/event-stream body at blank lines as it arrives and finds the first event
/// that carries answer text (OpenAI: a non-empty "content"; Anthropic: a text_delta), with
/// the time its first byte arrived. The mock and both providers end events with LF LF.
class FirstText {
public:
    explicit FirstText(Wire w) : wire_(w) {}

    void reset() {
        buf_.clear();
        found_ = false;
    }
    bool found() const noexcept { return found_; }
    Clock::time_point when() const noexcept { return first_; }

    /// Bytes that arrived at `now`; true when they complete the first event with text.
    bool feed(std::string_view bytes, Clock::time_point now) {
        if (found_ || bytes.empty()) return false;
        if (buf_.empty()) t0_ = now;
        std::size_t scan = buf_.empty() ? 0 : buf_.size() - 1;  // a blank line may straddle two calls
        buf_.append(bytes);
        std::size_t begin = 0;
        for (;;) {
            const std::size_t end = buf_.find("\n\n", scan);
            if (end == std::string::npos) break;
            if (carries_text(std::string_view(buf_).substr(begin, end - begin))) {
                found_ = true;
                first_ = t0_;
                buf_.clear();
                return true;
            }
            begin = scan = end + 2;
            t0_ = now;  // the next event's first byte came in this call
        }
        buf_.erase(0, begin);
        return false;
    }

private:
    bool carries_text(std::string_view event) const {
        if (wire_ == Wire::anthropic) return event.find(R"("type":"text_delta")") != std::string_view::npos;
        constexpr std::string_view key = R"("content":")";
        const std::size_t at = event.find(key);
        return at != std::string_view::npos && at + key.size() < event.size() && event[at + key.size()] != '"';
    }

    Wire wire_;
    std::string buf_;
    bool found_ = false;
    Clock::time_point t0_{}, first_{};
};

/// The last bytes of a body, to check that a stream ended with its terminator.
struct Tail {
    std::string bytes;
    void add(std::string_view b) {
        bytes.append(b.size() > 64 ? b.substr(b.size() - 64) : b);
        if (bytes.size() > 64) bytes.erase(0, bytes.size() - 64);
    }
    bool ends_stream(Wire w) const {
        return bytes.find(w == Wire::openai ? "[DONE]" : "message_stop") != std::string::npos;
    }
};

// ---- memory probes -----------------------------------------------------------------------

/// Heap bytes in use: allocated arena chunks (all arenas) plus mmapped chunks.
std::size_t heap_in_use() {
    const struct mallinfo2 m = ::mallinfo2();
    return m.uordblks + m.hblkhd;
}

/// Resets this process's peak RSS (VmHWM) to its current RSS.
bool reset_peak_rss() {
    std::ofstream f("/proc/self/clear_refs");
    f << "5";
    f.flush();
    return static_cast<bool>(f);
}

/// Samples the heap and RSS every `every` bytes of whatever it is ticked with.
struct MemProbe {
    std::size_t every = std::size_t{256} << 10;
    std::size_t since = 0;
    std::size_t heap_max = 0;
    long rss_max_kb = 0;
    std::size_t samples = 0;
    void tick(std::size_t n) {
        since += n;
        if (since < every) return;
        since = 0;
        sample();
    }
    void sample() {
        heap_max = std::max(heap_max, heap_in_use());
        rss_max_kb = std::max(rss_max_kb, bench::self_rss_kb());
        ++samples;
    }
};

// ---- the raw libcurl client ----------------------------------------------------------------

/// One easy handle, set up once and reused: a streaming POST whose write callback finds the
/// first event with text (and otherwise only counts the bytes).
class RawStream {
public:
    RawStream(const HttpRequest& req, Wire w) : wire_(w), url_(req.url), body_(req.body), first_(w), h_(curl_easy_init()) {
        if (!h_) throw std::runtime_error("curl_easy_init failed");
        for (const auto& [k, v] : req.headers) list_ = curl_slist_append(list_, (k + ": " + v).c_str());
        list_ = curl_slist_append(list_, "Expect:");
        curl_easy_setopt(h_, CURLOPT_URL, url_.c_str());
        curl_easy_setopt(h_, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h_, CURLOPT_HTTPHEADER, list_);
        curl_easy_setopt(h_, CURLOPT_POSTFIELDS, body_.data());
        curl_easy_setopt(h_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body_.size()));
        curl_easy_setopt(h_, CURLOPT_WRITEFUNCTION, &RawStream::on_body);
        curl_easy_setopt(h_, CURLOPT_WRITEDATA, static_cast<void*>(this));
        curl_easy_setopt(h_, CURLOPT_HEADERFUNCTION, &RawStream::on_header);
        curl_easy_setopt(h_, CURLOPT_HEADERDATA, static_cast<void*>(this));
        curl_easy_setopt(h_, CURLOPT_TIMEOUT_MS, 120000L);
    }
    ~RawStream() {
        curl_easy_cleanup(h_);
        curl_slist_free_all(list_);
    }
    RawStream(const RawStream&) = delete;
    RawStream& operator=(const RawStream&) = delete;

    struct Times {
        bool ok = false;
        double head_us = 0, ttft_us = 0, end_us = 0;
        std::size_t body_bytes = 0;
    };

    /// One stream; `probe` (optional) is ticked with the body bytes.
    Times run(MemProbe* probe = nullptr) {
        first_.reset();
        tail_.bytes.clear();
        bytes_ = 0;
        probe_ = probe;
        start_ = head_ = Clock::now();
        const CURLcode rc = curl_easy_perform(h_);
        const auto end = Clock::now();
        long status = 0;
        curl_easy_getinfo(h_, CURLINFO_RESPONSE_CODE, &status);
        Times t;
        t.ok = rc == CURLE_OK && status == 200 && first_.found() && tail_.ends_stream(wire_);
        t.head_us = us_between(start_, head_);
        t.ttft_us = first_.found() ? us_between(start_, first_.when()) : 0;
        t.end_us = us_between(start_, end);
        t.body_bytes = bytes_;
        return t;
    }

private:
    static std::size_t on_body(char* data, std::size_t size, std::size_t count, void* user) {
        auto* self = static_cast<RawStream*>(user);
        const std::size_t n = size * count;
        const std::string_view bytes(data, n);
        if (!self->first_.found()) self->first_.feed(bytes, Clock::now());
        self->tail_.add(bytes);
        self->bytes_ += n;
        if (self->probe_) self->probe_->tick(n);
        return n;
    }
    static std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) {
        auto* self = static_cast<RawStream*>(user);
        const std::size_t n = size * count;
        if (n == 2 && data[0] == '\r' && data[1] == '\n') self->head_ = Clock::now();  // the end of the headers
        return n;
    }

    Wire wire_;
    std::string url_;
    std::string body_;
    FirstText first_;
    Tail tail_;
    std::size_t bytes_ = 0;
    MemProbe* probe_ = nullptr;
    Clock::time_point start_{}, head_{};
    CURL* h_;
    curl_slist* list_ = nullptr;
};

// ---- a transport that notes when the first text arrives (router_split) ------------------------

/// When the bytes of the first event with text reached on_data in the calling thread's last
/// NotingTransport::stream (time_point{} when none did).
thread_local Clock::time_point noted_first_text{};
thread_local Clock::time_point noted_send{}, noted_head{};

/// CurlTransport, plus a FirstText scan of the bytes before they go to the router's on_data:
/// splits the router's time to first token into the wire's part and the decoder's part.
struct NotingTransport {
    std::shared_ptr<CurlTransport> inner;
    Wire wire = Wire::openai;
    const CurlOptions& options() const noexcept { return inner->options(); }
    Result<HttpResponse> send(const HttpRequest& r, Deadline d) { return inner->send(r, d); }
    Result<HttpResponse> stream(const HttpRequest& r, Deadline d, const StreamSpec& s) {
        noted_send = Clock::now();
        FirstText first(wire);
        StreamSpec mine = s;
        mine.on_head = [&](int status, const Headers& h) {
            noted_head = Clock::now();
            if (s.on_head) s.on_head(status, h);
        };
        mine.on_data = [&](std::string_view bytes) {
            if (!first.found()) first.feed(bytes, Clock::now());
            return s.on_data(bytes);
        };
        Result<HttpResponse> res = inner->stream(r, d, mine);
        noted_first_text = first.found() ? first.when() : Clock::time_point{};
        return res;
    }
};

// ---- the interleaved runner ----------------------------------------------------------------

enum class Mode { raw, transport, router, router_split };

const char* name_of(Mode m) {
    switch (m) {
        case Mode::raw: return "raw";
        case Mode::transport: return "transport";
        case Mode::router: return "router";
        case Mode::router_split: return "router_split";
    }
    return "?";
}

struct ModeResult {
    std::vector<double> ttft_us, end_us, head_us, wire_us, decode_us, send_us;
    double client_cpu_s = 0;
    std::size_t failures = 0;
};

using OpenAIRouter = Router<Route<OpenAI, CurlTransport>>;
using AnthropicRouter = Router<Route<Anthropic, CurlTransport>>;

struct Shared {
    explicit Shared(Wire w) : wire(w), encoded(encoded_stream(w, "ok")) {}
    Wire wire;
    // Each mode has a CurlTransport (so a connection) of its own, as raw has its easy handle:
    // a mode that reused the connection the previous stream just ended on would wait for
    // the mock's thread of that connection to finish with it, while a mode on its own
    // connection finds an idle thread waiting (at c=1 that was ~100 us of time to headers).
    std::shared_ptr<CurlTransport> http = std::make_shared<CurlTransport>();
    std::shared_ptr<CurlTransport> http_router = std::make_shared<CurlTransport>();
    std::shared_ptr<CurlTransport> http_split = std::make_shared<CurlTransport>();
    HttpRequest encoded;
    OpenAIRouter openai{Route{"primary", openai_to("ok"), http_router}};
    AnthropicRouter anthropic{Route{"primary", anthropic_to("ok"), http_router}};
    std::shared_ptr<NotingTransport> noting = std::make_shared<NotingTransport>(NotingTransport{http_split, wire});
    Router<Route<OpenAI, NotingTransport>> openai_split{Route{"primary", openai_to("ok"), noting}};
    Router<Route<Anthropic, NotingTransport>> anthropic_split{Route{"primary", anthropic_to("ok"), noting}};
};

struct Sample {
    bool ok = false;
    double head_us = -1, ttft_us = 0, end_us = 0;
    double wire_us = -1;  // router_split: when the first text's bytes reached on_data
    double send_us = -1;
};

// Per-thread clients: the raw handle, and the scanner CurlTransport::stream feeds.
struct ThreadClients {
    explicit ThreadClients(const Shared& s) : raw(s.encoded, s.wire), first(s.wire) {
        spec.on_data = [this](std::string_view bytes) {
            if (!first.found() && first.feed(bytes, Clock::now())) return StreamStep::progress;
            tail.add(bytes);
            return StreamStep::more;
        };
    }
    RawStream raw;
    FirstText first;
    Tail tail;
    StreamSpec spec;
};

template <class R>
Sample routed(R& router, const ChatRequest& req) {
    Sample s;
    Clock::time_point first{};
    bool got = false;
    const auto t0 = Clock::now();
    auto r = router.stream(req, [&](const StreamEvent& e) {
        if (!got && e.kind == StreamEvent::Kind::delta && e.delta->kind == StreamDelta::Kind::text) {
            first = Clock::now();
            got = true;
        }
    });
    const auto t1 = Clock::now();
    s.ok = r && got && r->text == bench::answer_text();
    s.ttft_us = got ? us_between(t0, first) : 0;
    s.end_us = us_between(t0, t1);
    if (noted_first_text != Clock::time_point{}) {
        s.wire_us = us_between(t0, noted_first_text);
        s.send_us = us_between(t0, noted_send);
        s.head_us = us_between(t0, noted_head);
        noted_first_text = {};
    }
    return s;
}

Sample one_stream(Mode m, Shared& s, ThreadClients& c, const ChatRequest& req) {
    switch (m) {
        case Mode::raw: {
            const RawStream::Times t = c.raw.run();
            return Sample{t.ok, t.head_us, t.ttft_us, t.end_us};
        }
        case Mode::transport: {
            c.first.reset();
            c.tail.bytes.clear();
            const auto t0 = Clock::now();
            auto r = s.http->stream(s.encoded, Deadline{}, c.spec);
            const auto t1 = Clock::now();
            Sample out;
            out.ok = r && r->status == 200 && c.first.found() && c.tail.ends_stream(s.wire);
            out.ttft_us = c.first.found() ? us_between(t0, c.first.when()) : 0;
            out.end_us = us_between(t0, t1);
            return out;
        }
        case Mode::router: return s.wire == Wire::openai ? routed(s.openai, req) : routed(s.anthropic, req);
        case Mode::router_split:
            return s.wire == Wire::openai ? routed(s.openai_split, req) : routed(s.anthropic_split, req);
    }
    return {};
}

struct RunResult {
    std::map<Mode, ModeResult> modes;
    double wall_s = 0;
    bool setup_failed = false;
};

// `threads` clients; one warm-up round, then `blocks` rounds over the modes; each thread
// streams `per_block` answers per mode and round.
RunResult run_interleaved(Shared& shared, const std::vector<Mode>& modes, int threads, int per_block, int blocks) {
    RunResult out;
    for (Mode m : modes) out.modes[m];
    std::mutex mu;
    std::barrier sync(threads);
    std::atomic<bool> setup_failed{false};
    const auto t0 = Clock::now();
    auto body = [&](int) {
        std::unique_ptr<ThreadClients> clients;
        try {
            clients = std::make_unique<ThreadClients>(shared);
        } catch (...) {
            setup_failed = true;
        }
        const ChatRequest req = bench::typical_request();
        std::map<Mode, ModeResult> mine;
        for (int round = 0; round <= blocks; ++round) {
            for (std::size_t k = 0; k < modes.size(); ++k) {
                // The order rotates every round, so no mode always runs after the same one.
                const Mode m = modes[(k + static_cast<std::size_t>(round)) % modes.size()];
                sync.arrive_and_wait();
                if (setup_failed) continue;
                ModeResult& r = mine[m];
                const auto cpu0 = bench::thread_cpu();
                for (int i = 0; i < per_block; ++i) {
                    const Sample s = one_stream(m, shared, *clients, req);
                    if (round == 0) continue;  // warm-up: connections, caches
                    if (!s.ok) ++r.failures;
                    r.ttft_us.push_back(s.ttft_us);
                    r.end_us.push_back(s.end_us);
                    if (s.head_us >= 0) r.head_us.push_back(s.head_us);
                    if (s.wire_us >= 0) {
                        r.send_us.push_back(s.send_us);
                        r.wire_us.push_back(s.wire_us);
                        r.decode_us.push_back(s.ttft_us - s.wire_us);
                    }
                }
                if (round > 0) r.client_cpu_s += std::chrono::duration<double>(bench::thread_cpu() - cpu0).count();
            }
        }
        std::lock_guard lock(mu);
        for (auto& [m, r] : mine) {
            ModeResult& all = out.modes[m];
            all.ttft_us.insert(all.ttft_us.end(), r.ttft_us.begin(), r.ttft_us.end());
            all.end_us.insert(all.end_us.end(), r.end_us.begin(), r.end_us.end());
            all.head_us.insert(all.head_us.end(), r.head_us.begin(), r.head_us.end());
            all.send_us.insert(all.send_us.end(), r.send_us.begin(), r.send_us.end());
            all.wire_us.insert(all.wire_us.end(), r.wire_us.begin(), r.wire_us.end());
            all.decode_us.insert(all.decode_us.end(), r.decode_us.begin(), r.decode_us.end());
            all.client_cpu_s += r.client_cpu_s;
            all.failures += r.failures;
        }
    };
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i) pool.emplace_back(body, i);
    for (auto& t : pool) t.join();
    out.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
    out.setup_failed = setup_failed;
    return out;
}

double mean(const std::vector<double>& v) {
    double sum = 0;
    for (double x : v) sum += x;
    return v.empty() ? 0 : sum / static_cast<double>(v.size());
}

/// The modes BM_StreamTTFT runs: all, or those named in FAILOVER_BENCH_STREAM_MODES
/// (comma-separated, for profiling one client at a time: perf record on router only).
std::vector<Mode> ttft_modes() {
    const std::vector<Mode> all{Mode::raw, Mode::transport, Mode::router, Mode::router_split};
    const std::string only = getenv_str("FAILOVER_BENCH_STREAM_MODES");
    if (only.empty()) return all;
    std::vector<Mode> picked;
    for (Mode m : all)
        if (("," + only + ",").find("," + std::string(name_of(m)) + ",") != std::string::npos) picked.push_back(m);
    if (picked.empty()) throw std::runtime_error("FAILOVER_BENCH_STREAM_MODES names no mode: " + only);
    return picked;
}

// Args: wire (0 OpenAI, 1 Anthropic), concurrency, streams per thread per block, blocks.
void BM_StreamTTFT(benchmark::State& state) {
    const Wire wire = static_cast<Wire>(state.range(0));
    Shared shared(wire);
    const int threads = static_cast<int>(state.range(1));
    for (auto _ : state) {
        RunResult res = run_interleaved(shared, ttft_modes(), threads,
                                        static_cast<int>(state.range(2)), static_cast<int>(state.range(3)));
        state.SetIterationTime(res.wall_s);
        std::size_t failures = 0;
        for (auto& [m, r] : res.modes) {
            const std::string n = name_of(m);
            const double count = static_cast<double>(r.ttft_us.size());
            state.counters[n + "_ttft_mean_us"] = mean(r.ttft_us);
            state.counters[n + "_end_mean_us"] = mean(r.end_us);
            state.counters[n + "_ttft_p50_us"] = bench::percentile(r.ttft_us, 0.50);
            state.counters[n + "_ttft_p99_us"] = bench::percentile(r.ttft_us, 0.99);
            state.counters[n + "_end_p50_us"] = bench::percentile(r.end_us, 0.50);
            state.counters[n + "_end_p99_us"] = bench::percentile(r.end_us, 0.99);
            if (!r.head_us.empty()) state.counters[n + "_head_p50_us"] = bench::percentile(r.head_us, 0.50);
            if (!r.wire_us.empty()) {
                state.counters[n + "_wire_p50_us"] = bench::percentile(r.wire_us, 0.50);
                state.counters[n + "_send_p50_us"] = bench::percentile(r.send_us, 0.50);
                state.counters[n + "_decode_p50_us"] = bench::percentile(r.decode_us, 0.50);
                state.counters[n + "_decode_p99_us"] = bench::percentile(r.decode_us, 0.99);
            }
            state.counters[n + "_streams"] = count;
            state.counters[n + "_client_cpu_us_per_stream"] = count > 0 ? r.client_cpu_s * 1e6 / count : 0;
            failures += r.failures;
        }
        if (res.setup_failed) state.SkipWithError("client setup failed");
        else if (failures) state.SkipWithError((std::to_string(failures) + " streams failed").c_str());
    }
    state.SetLabel(name_of(wire));
}

// ---- resident memory while streaming a long answer -------------------------------------------

// The long answers stream ~5 wire bytes per byte of text: far beyond the default 8 MiB limit.
std::shared_ptr<CurlTransport> long_transport() {
    CurlOptions o;
    o.max_response_bytes = std::size_t{1} << 30;
    return std::make_shared<CurlTransport>(o);
}

struct MemFigures {
    long rss_before_kb = 0, rss_peak_kb = 0, rss_sampled_max_kb = 0, rss_after_kb = 0;
    std::size_t heap_before = 0, heap_max = 0, heap_held = 0, heap_after = 0;
    std::size_t samples = 0;
};

void put(benchmark::State& state, const MemFigures& m, std::size_t answer_bytes) {
    state.counters["answer_bytes"] = static_cast<double>(answer_bytes);
    state.counters["rss_before_kb"] = static_cast<double>(m.rss_before_kb);
    state.counters["rss_peak_kb"] = static_cast<double>(m.rss_peak_kb);
    state.counters["rss_sampled_max_kb"] = static_cast<double>(m.rss_sampled_max_kb);
    state.counters["rss_after_kb"] = static_cast<double>(m.rss_after_kb);
    state.counters["rss_growth_kb"] = static_cast<double>(m.rss_peak_kb - m.rss_before_kb);
    state.counters["heap_before_kb"] = static_cast<double>(m.heap_before) / 1024;
    state.counters["heap_max_kb"] = static_cast<double>(m.heap_max) / 1024;
    state.counters["heap_held_kb"] = static_cast<double>(m.heap_held) / 1024;
    state.counters["heap_after_kb"] = static_cast<double>(m.heap_after) / 1024;
    state.counters["samples"] = static_cast<double>(m.samples);
}

// Raw libcurl discarding the bytes of the 16 MiB answer: the baseline.
void BM_StreamMemory_Raw(benchmark::State& state) {
    RawStream warm(encoded_stream(Wire::openai, "ok"), Wire::openai);
    (void)warm.run();
    RawStream raw(encoded_stream(Wire::openai, "long16m"), Wire::openai);
    MemFigures m;
    RawStream::Times t;
    for (auto _ : state) {
        MemProbe probe;
        probe.every = std::size_t{1} << 20;  // wire bytes: ~5 per byte of text
        reset_peak_rss();
        m.rss_before_kb = bench::self_rss_kb();
        m.heap_before = heap_in_use();
        t = raw.run(&probe);
        m.rss_peak_kb = bench::proc_status_kb("self", "VmHWM");
        m.heap_max = std::max(probe.heap_max, m.heap_before);
        m.rss_sampled_max_kb = probe.rss_max_kb;
        m.samples = probe.samples;
        m.heap_held = m.heap_after = heap_in_use();
        m.rss_after_kb = bench::self_rss_kb();
        state.SetIterationTime(t.end_us / 1e6);
    }
    put(state, m, std::size_t{16} << 20);
    state.counters["wire_bytes"] = static_cast<double>(t.body_bytes);
    if (!t.ok) state.SkipWithError("the raw stream failed");
}

// Router::stream of one long answer (route `name`, `mib` MiB of text), callback discards deltas;
// keep_text: StreamOptions::keep_text (false: the router holds none of the text).
void stream_long(benchmark::State& state, const std::string& name, std::size_t mib, bool keep_text = true) {
    const std::size_t answer = mib << 20;
    auto http = long_transport();
    OpenAIRouter warm{Route{"primary", openai_to("ok"), http}};
    (void)warm.stream(bench::typical_request(), [](const StreamEvent&) {});
    OpenAIRouter router{Route{"primary", openai_to(name), http}};
    const ChatRequest req = bench::typical_request();
    MemFigures m;
    bool ok = true;
    std::size_t deltas = 0, text = 0;
    for (auto _ : state) {
        MemProbe probe;
        reset_peak_rss();
        m.rss_before_kb = bench::self_rss_kb();
        m.heap_before = heap_in_use();
        const auto t0 = Clock::now();
        {
            auto r = router.stream(req, [&](const StreamEvent& e) {
                if (e.kind != StreamEvent::Kind::delta || e.delta->kind != StreamDelta::Kind::text) return;
                ++deltas;
                text += e.delta->text.size();
                probe.tick(e.delta->text.size());
            }, StreamOptions{.keep_text = keep_text});
            const auto t1 = Clock::now();
            m.heap_held = heap_in_use();  // the returned ChatResponse (the whole text) still alive
            m.rss_peak_kb = bench::proc_status_kb("self", "VmHWM");
            ok = r && r->text.size() == (keep_text ? answer : 0);
            if (!r) state.SkipWithError(("stream failed: " + r.error().message).c_str());
            state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
        }
        m.heap_max = std::max({probe.heap_max, m.heap_held, m.heap_before});
        m.rss_sampled_max_kb = probe.rss_max_kb;
        m.samples = probe.samples;
        m.heap_after = heap_in_use();
        m.rss_after_kb = bench::self_rss_kb();
    }
    put(state, m, answer);
    state.counters["text_deltas"] = static_cast<double>(deltas);
    state.counters["rss_after_trim_kb"] = (::malloc_trim(0), static_cast<double>(bench::self_rss_kb()));
    if (ok && text != answer) state.SkipWithError("the deltas did not add up to the answer");
    else if (!ok) state.SkipWithError("the answer was incomplete");
}

void BM_StreamMemory_Router_1MiB(benchmark::State& state) { stream_long(state, "long1m", 1); }
void BM_StreamMemory_Router_16MiB(benchmark::State& state) { stream_long(state, "long16m", 16); }
void BM_StreamMemory_Router_16MiB_NoKeep(benchmark::State& state) { stream_long(state, "long16m", 16, false); }

// Twenty 1 MiB streams in a row through one Router: RSS after the first and after the last.
void BM_StreamMemory_Router_Repeated(benchmark::State& state) {
    auto http = long_transport();
    OpenAIRouter router{Route{"primary", openai_to("long1m"), http}};
    const ChatRequest req = bench::typical_request();
    const int n = static_cast<int>(state.range(0));
    long rss_first = 0, rss_last = 0, rss_start = 0;
    std::size_t heap_first = 0, heap_last = 0;
    std::size_t failures = 0;
    for (auto _ : state) {
        rss_start = bench::self_rss_kb();
        reset_peak_rss();
        const auto t0 = Clock::now();
        for (int i = 0; i < n; ++i) {
            {
                auto r = router.stream(req, [](const StreamEvent&) {});
                if (!r || r->text.size() != (std::size_t{1} << 20)) ++failures;
            }  // the answer is dropped before measuring
            if (i == 0) {
                rss_first = bench::self_rss_kb();
                heap_first = heap_in_use();
            }
        }
        state.SetIterationTime(std::chrono::duration<double>(Clock::now() - t0).count());
        rss_last = bench::self_rss_kb();
        heap_last = heap_in_use();
    }
    state.counters["streams"] = n;
    state.counters["rss_start_kb"] = static_cast<double>(rss_start);
    state.counters["rss_after_first_kb"] = static_cast<double>(rss_first);
    state.counters["rss_after_last_kb"] = static_cast<double>(rss_last);
    state.counters["rss_peak_kb"] = static_cast<double>(bench::proc_status_kb("self", "VmHWM"));
    state.counters["heap_after_first_kb"] = static_cast<double>(heap_first) / 1024;
    state.counters["heap_after_last_kb"] = static_cast<double>(heap_last) / 1024;
    if (failures) state.SkipWithError((std::to_string(failures) + " streams failed").c_str());
}

// ---- library CPU per streamed answer, no network ------------------------------------------

/// The exact body the mock streams for the typical answer, captured once through CurlTransport.
const std::string& captured_body(Wire w) {
    static std::string bodies[2];
    std::string& body = bodies[static_cast<int>(w)];
    if (body.empty()) {
        CurlTransport http;
        StreamSpec spec;
        spec.on_data = [&body](std::string_view b) {
            body.append(b);
            return StreamStep::more;
        };
        Result<HttpResponse> r = http.stream(encoded_stream(w, "ok"), Deadline{}, spec);
        if (!r || r->status != 200) throw std::runtime_error("could not capture the mock's stream");
    }
    return body;
}

/// The body's events, blank line included: how a socket hands over a stream that is
/// written event by event.
std::vector<std::string_view> events_of(const std::string& body) {
    std::vector<std::string_view> out;
    std::size_t at = 0;
    while (at < body.size()) {
        const std::size_t end = body.find("\n\n", at);
        const std::size_t stop = end == std::string::npos ? body.size() : end + 2;
        out.emplace_back(body.data() + at, stop - at);
        at = stop;
    }
    return out;
}

/// A streaming transport that replays a captured body event by event, in memory.
struct ReplayTransport {
    std::vector<std::string_view> events;
    Result<HttpResponse> send(const HttpRequest&, Deadline) { return Failure::of(Reason::connection, "replay: stream only"); }
    Result<HttpResponse> stream(const HttpRequest&, Deadline, const StreamSpec& s) {
        const Headers head{{"content-type", "text/event-stream"}};
        if (s.on_head) s.on_head(200, head);
        for (std::string_view e : events)
            if (s.on_data(e) == StreamStep::stop) break;
        return HttpResponse{200, head, {}};
    }
};

/// CPU per streamed answer (the mock's 51-event answer replayed from memory, so only the
/// library works): arg 1 picks what runs: 0 the decoder alone with every event read through
/// a JSON DOM (the fast path off), 1 the decoder as shipped, 2 Router::stream over a replaying
/// transport (decoder, delivery to a callback, attempt bookkeeping, the final ChatResponse).
void BM_StreamCPU(benchmark::State& state) {
    const Wire w = static_cast<Wire>(state.range(0));
    const int what = static_cast<int>(state.range(1));
    const std::string& body = captured_body(w);
    const std::vector<std::string_view> events = events_of(body);
    const ChatRequest req = bench::typical_request();
    const OpenAI openai = openai_to("ok");
    const Anthropic anthropic = anthropic_to("ok");
    auto replay = std::make_shared<ReplayTransport>(ReplayTransport{events});
    Router<Route<OpenAI, ReplayTransport>> openai_router{Route{"primary", openai, replay}};
    Router<Route<Anthropic, ReplayTransport>> anthropic_router{Route{"primary", anthropic, replay}};
    std::vector<StreamDelta> deltas;
    std::size_t failures = 0;
    const auto decode = [&](auto decoder) {
        deltas.clear();
        for (std::string_view e : events)
            if (decoder.feed(e, deltas)) ++failures;
        Result<ChatResponse> r = decoder.end();
        if (!r || r->text != bench::answer_text()) ++failures;
    };
    for (auto _ : state) {
        if (what == 2) {
            std::size_t texts = 0;
            const auto count = [&texts](const StreamEvent& e) {
                texts += e.kind == StreamEvent::Kind::delta && e.delta->kind == StreamDelta::Kind::text;
            };
            auto r = w == Wire::openai ? openai_router.stream(req, count) : anthropic_router.stream(req, count);
            if (!r || r->text != bench::answer_text() || texts == 0) ++failures;
        } else if (w == Wire::openai) {
            detail::wire::OpenAIWire wire;
            wire.provider = "openai";
            wire.model = "gpt-4o";
            detail::stream::OpenAIStream d(wire, req);
            d.scan(what == 1);
            decode(std::move(d));
        } else {
            detail::stream::AnthropicStream d("claude-sonnet-4-5", "bench-key", req);
            d.scan(what == 1);
            decode(std::move(d));
        }
    }
    state.SetLabel(name_of(w));
    state.counters["events"] = static_cast<double>(events.size());
    state.counters["body_bytes"] = static_cast<double>(body.size());
    if (failures) state.SkipWithError((std::to_string(failures) + " streams failed").c_str());
}

// Memory first, in a fresh process (the allocator's state carries over from one benchmark to
// the next): the raw baseline, then the router.
BENCHMARK(BM_StreamMemory_Raw)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_StreamMemory_Router_1MiB)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_StreamMemory_Router_16MiB)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_StreamMemory_Router_16MiB_NoKeep)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_StreamMemory_Router_Repeated)->ArgName("streams")->Arg(20)->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

BENCHMARK(BM_StreamCPU)->ArgNames({"wire", "what"})->ArgsProduct({{0, 1}, {0, 1, 2}})->Unit(benchmark::kMicrosecond);

BENCHMARK(BM_StreamTTFT)
    ->ArgNames({"wire", "c", "per_block", "blocks"})
    ->Args({0, 1, 1, 2400})
    ->Args({0, 16, 20, 12})
    ->Args({1, 1, 1, 2400})
    ->Args({1, 16, 20, 12})
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

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
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    local.reset();
    curl_global_cleanup();
    return 0;
}
