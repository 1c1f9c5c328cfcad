// SPDX-License-Identifier: MIT
// Many requests in flight at once (issue 12): N requests submitted together
// against a loopback upstream that answers each one after a fixed delay
// (tests/benchmarks/delay-upstream.cjs, 1 s by default), in three ways:
//
//   bare     the baseline, the limit: one thread, one libcurl multi handle, N
//            easy handles; each request encoded and each 200 answer decoded by
//            the same OpenAI adapter by hand; curl_multi_perform/curl_multi_poll;
//            CURLMOPT_MAXCONNECTS = N (no connection is closed during the batch)
//   async    Router::submit(loop, request, callback) for all N on one
//            failover::EventLoop (max_idle_connections = N, as bare), then
//            loop.run_once(100 ms) on this thread until every callback has run
//   threads  N threads (pthread, small stacks) each calling
//            Router::route_with_fallback; a thread that cannot be created counts
//            as an error
//   loop     (diagnostic) EventLoop::send of the adapter's requests by hand, no
//            router: splits async's cost between the loop and the router
//   portkey  the peer: the bare loop's N requests sent to Portkey's gateway
//            (FAILOVER_INFLIGHT_PEER_URL, started by tests/benchmarks/run), which
//            forwards each to the same upstream (x-portkey-config custom_host).
//            CPU and memory count both processes, this client and the gateway
//            (FAILOVER_INFLIGHT_PEER_PID, read from /proc), and are also listed
//            apart (peer_cpu_us_per_req, peer_rss_kb_per_req)
//
// Both routers have one route ("up", OpenAI adapter, a default CurlTransport),
// max_in_flight = N and a 60 s deadline, so nothing of the library's limits the
// batch. Per batch: completed, errors, wall time from the first submission to
// the last completion, resident memory per in-flight request (peak VmRSS during
// the batch, VmHWM after resetting it through /proc/self/clear_refs, minus VmRSS
// before it, over N) and CPU per request (getrusage user+sys of the whole
// process over the batch, over N).
//
// Every batch runs in a fresh child process (this program re-executed with
// --child), so the memory one mode leaves behind never hides another's growth.
// Before anything runs, the soft RLIMIT_NOFILE is raised to the hard limit
// (children inherit it); both are reported, and an N the hard limit cannot hold
// is said so plainly (it still runs and its failures are counted). Modes rotate
// their order every repetition; the summary holds medians over repetitions and
// error totals. The JSON goes to --out=FILE (or --benchmark_out=FILE, so the
// Google Benchmark flags of tests/benchmarks/run do no harm) or to stdout; one
// progress line per batch goes to stderr.
//
// Environment:
//   FAILOVER_INFLIGHT_URL        http://127.0.0.1:<port> of delay-upstream.cjs (required)
//   FAILOVER_INFLIGHT_DELAY_MS   the upstream's delay, recorded in the JSON (default 1000)
//   FAILOVER_BENCH_INFLIGHT_N    batch sizes, comma-separated (default 1000,10000)
//   FAILOVER_BENCH_INFLIGHT_MODES  modes to run (default bare,async,threads,loop, and portkey when
//                                the peer's URL is set)
//   FAILOVER_INFLIGHT_PEER_URL   http://127.0.0.1:<port> of Portkey's gateway (optional)
//   FAILOVER_INFLIGHT_PEER_PID   the gateway's process id, to read its CPU and memory
//   FAILOVER_BENCH_INFLIGHT_REPS   repetitions (default 5)
//   FAILOVER_BENCH_INFLIGHT_STACK_KB  stack of each thread in the threads mode (default 256; 0: the default stack)
//   FAILOVER_BENCH_INFLIGHT_PAUSE_MS  pause between batches, for the upstream to close the last one's connections (default 1000)
#include <curl/curl.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <failover/failover.hpp>

#include "bench_util.hpp"

extern char** environ;

using namespace failover;
using namespace std::chrono_literals;

namespace {

using SteadyClock = std::chrono::steady_clock;

std::string env_or(const char* name, std::string fallback) {
    const char* v = std::getenv(name);
    return v && *v ? std::string(v) : fallback;
}

long env_long(const char* name, long fallback) {
    const char* v = std::getenv(name);
    if (!v || !*v) return fallback;
    char* end = nullptr;
    const long x = std::strtol(v, &end, 10);
    return end && *end == '\0' ? x : fallback;
}

std::vector<std::string> split(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream in(s);
    std::string item;
    while (std::getline(in, item, ','))
        if (!item.empty()) out.push_back(item);
    return out;
}

constexpr std::chrono::seconds kDeadline{60};  // the routers' and the bare transfers' timeout
constexpr auto kBatchLimit = 120s;             // a batch still running after this ends; what is left counts as errors

// ---- what one batch measures ---------------------------------------------------------------

struct Batch {
    std::string mode;
    std::size_t n = 0;
    std::size_t completed = 0;
    std::size_t errors = 0;
    std::size_t retried = 0;       // answered, but after more than one attempt
    std::size_t peak_in_flight = 0;
    std::size_t turns = 0;         // run_once calls (async, loop) or perform+poll rounds (bare)
    double submit_s = 0;           // from the start until every request was handed over
    double wall_s = 0;
    double cpu_user_s = 0;
    double cpu_sys_s = 0;
    long rss_before_kb = -1;
    long rss_peak_kb = -1;
    bool peak_from_hwm_reset = false;
    // The peer gateway's own use over the batch (portkey mode); negative when not measured.
    double peer_cpu_s = -1;
    long peer_rss_before_kb = -1;
    long peer_rss_peak_kb = -1;
    std::map<std::string, std::size_t> error_kinds;

    void fail(const std::string& kind) {
        ++errors;
        ++error_kinds[kind.substr(0, 160)];
    }
    void unfinished(std::size_t k) {
        errors += k;
        error_kinds["not finished within the batch limit"] += k;
    }
};

nlohmann::json to_json(const Batch& b) {
    nlohmann::json kinds = nlohmann::json::object();
    for (const auto& [k, v] : b.error_kinds) kinds[k] = v;
    const double n = b.n ? static_cast<double>(b.n) : 1.0;
    const long growth = b.rss_peak_kb >= 0 && b.rss_before_kb >= 0 ? b.rss_peak_kb - b.rss_before_kb : -1;
    const long peer_growth =
        b.peer_rss_peak_kb >= 0 && b.peer_rss_before_kb >= 0 ? b.peer_rss_peak_kb - b.peer_rss_before_kb : -1;
    const double own_cpu = b.cpu_user_s + b.cpu_sys_s;
    const bool peer = b.peer_cpu_s >= 0;
    // With a peer, a request's cost is the client's and the gateway's together (async's figure holds
    // the routing and the adapter work of one process; the bare client alone is the adapter work).
    const double cpu = peer ? own_cpu + b.peer_cpu_s : own_cpu;
    const long rss = peer ? (growth >= 0 && peer_growth >= 0 ? growth + peer_growth : -1) : growth;
    nlohmann::json j = {{"mode", b.mode},
                        {"n", b.n},
                        {"completed", b.completed},
                        {"errors", b.errors},
                        {"retried", b.retried},
                        {"peak_in_flight", b.peak_in_flight},
                        {"turns", b.turns},
                        {"submit_s", b.submit_s},
                        {"wall_s", b.wall_s},
                        {"cpu_user_s", b.cpu_user_s},
                        {"cpu_sys_s", b.cpu_sys_s},
                        {"cpu_us_per_req", cpu * 1e6 / n},
                        {"rss_before_kb", b.rss_before_kb},
                        {"rss_peak_kb", b.rss_peak_kb},
                        {"rss_growth_kb", growth},
                        {"rss_kb_per_req", rss >= 0 ? static_cast<double>(rss) / n : -1.0},
                        {"peak_from_hwm_reset", b.peak_from_hwm_reset},
                        {"error_kinds", kinds}};
    if (peer) {
        j["peer_cpu_s"] = b.peer_cpu_s;
        j["peer_cpu_us_per_req"] = b.peer_cpu_s * 1e6 / n;
        j["peer_rss_before_kb"] = b.peer_rss_before_kb;
        j["peer_rss_peak_kb"] = b.peer_rss_peak_kb;
        j["peer_rss_kb_per_req"] = peer_growth >= 0 ? static_cast<double>(peer_growth) / n : -1.0;
        j["client_cpu_us_per_req"] = own_cpu * 1e6 / n;
        j["client_rss_kb_per_req"] = growth >= 0 ? static_cast<double>(growth) / n : -1.0;
    }
    return j;
}

double seconds(const timeval& tv) { return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) * 1e-6; }

// A /proc/self/status field in kB, read through a descriptor opened before the batch (when the
// batch has used up the descriptor limit, opening the file afterwards would fail); -1 when unreadable.
long status_kb(int fd, const char* key) {
    std::string text(8192, '\0');
    const ssize_t k = fd >= 0 ? ::pread(fd, text.data(), text.size(), 0) : -1;
    if (k <= 0) return -1;
    text.resize(static_cast<std::size_t>(k));
    const std::string needle = std::string("\n") + key + ":";
    const auto at = text.find(needle);
    return at == std::string::npos ? -1 : std::strtol(text.c_str() + at + needle.size(), nullptr, 10);
}

// User + system CPU seconds of process `pid` (all its threads), from /proc/<pid>/stat through a
// descriptor opened before the batch; -1 when unreadable.
double process_cpu_s(int fd) {
    char text[1024];
    const ssize_t k = fd >= 0 ? ::pread(fd, text, sizeof text - 1, 0) : -1;
    if (k <= 0) return -1;
    text[k] = '\0';
    // Fields after the command name, which ends at the last ')': state is field 3, utime 14, stime 15.
    const char* p = std::strrchr(text, ')');
    if (!p) return -1;
    std::istringstream in(p + 1);
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && in >> field; ++i) {
        if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
        if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
    }
    const long hz = ::sysconf(_SC_CLK_TCK);
    return hz > 0 ? static_cast<double>(utime + stime) / static_cast<double>(hz) : -1;
}

// Resets VmHWM of a process to its current RSS (Linux 4.0+), so a peak read later is the batch's.
bool reset_peak(const std::string& proc_dir) {
    std::ofstream f(proc_dir + "/clear_refs");
    f << "5";
    f.flush();
    return static_cast<bool>(f);
}

// Wall, CPU and resident memory over one batch; with a peer's pid, the peer's CPU and memory too.
class Meter {
public:
    explicit Meter(Batch& b, long peer_pid = 0)
        : b_(b), status_(::open("/proc/self/status", O_RDONLY | O_CLOEXEC)) {
        if (peer_pid > 0) {
            peer_dir_ = "/proc/" + std::to_string(peer_pid);
            peer_status_ = ::open((peer_dir_ + "/status").c_str(), O_RDONLY | O_CLOEXEC);
            peer_stat_ = ::open((peer_dir_ + "/stat").c_str(), O_RDONLY | O_CLOEXEC);
        }
    }
    ~Meter() {
        for (int fd : {status_, peer_status_, peer_stat_})
            if (fd >= 0) ::close(fd);
    }
    Meter(const Meter&) = delete;
    Meter& operator=(const Meter&) = delete;
    void start() {
        b_.peak_from_hwm_reset = reset_peak("/proc/self");
        b_.rss_before_kb = status_kb(status_, "VmRSS");
        if (!peer_dir_.empty()) {
            if (!reset_peak(peer_dir_)) b_.peak_from_hwm_reset = false;
            b_.peer_rss_before_kb = status_kb(peer_status_, "VmRSS");
            peer_cpu0_ = process_cpu_s(peer_stat_);
        }
        ::getrusage(RUSAGE_SELF, &ru0_);
        t0_ = SteadyClock::now();
    }
    void submitted() { b_.submit_s = std::chrono::duration<double>(SteadyClock::now() - t0_).count(); }
    void stop() {
        const auto t1 = SteadyClock::now();
        rusage ru1{};
        ::getrusage(RUSAGE_SELF, &ru1);
        b_.rss_peak_kb = status_kb(status_, "VmHWM");
        b_.wall_s = std::chrono::duration<double>(t1 - t0_).count();
        b_.cpu_user_s = seconds(ru1.ru_utime) - seconds(ru0_.ru_utime);
        b_.cpu_sys_s = seconds(ru1.ru_stime) - seconds(ru0_.ru_stime);
        if (!peer_dir_.empty()) {
            const double cpu1 = process_cpu_s(peer_stat_);
            b_.peer_cpu_s = peer_cpu0_ >= 0 && cpu1 >= 0 ? cpu1 - peer_cpu0_ : -1;
            b_.peer_rss_peak_kb = status_kb(peer_status_, "VmHWM");
            if (b_.peer_cpu_s < 0) throw std::runtime_error("cannot read the peer's CPU time from " + peer_dir_);
        }
    }

private:
    Batch& b_;
    int status_;
    std::string peer_dir_;
    int peer_status_ = -1;
    int peer_stat_ = -1;
    double peer_cpu0_ = -1;
    rusage ru0_{};
    SteadyClock::time_point t0_{};
};

OpenAI adapter_for(const std::string& base) {
    return OpenAI{{.model = "gpt-4o", .api_key = "sk-bench", .base_url = base + "/v1"}};
}

RouterOptions unlimited(std::size_t n) {
    RouterOptions o;
    o.max_in_flight = n;
    o.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(kDeadline);
    return o;
}

// A routed answer: counted as completed when it carries the upstream's text.
void judge(Batch& b, const Result<ChatResponse>& r) {
    if (!r) {
        b.fail(std::string(to_string(r.error().reason)) + ": " + r.error().message);
    } else if (r->text.find("INV-2024-0117") == std::string::npos) {
        b.fail("answer without the expected text");
    } else {
        ++b.completed;
        if (r->attempts.size() > 1) ++b.retried;
    }
}

// The adapter's request for the wire, or a failure counted as a finished request.
std::optional<HttpRequest> encoded(const OpenAI& adapter, const ChatRequest& req, Batch& b, std::size_t& finished) {
    auto enc = adapter.encode(req);
    if (enc) return std::move(*enc);
    b.fail("encode: " + enc.error().message);
    ++finished;
    return std::nullopt;
}

// Turns `loop` until `n` are finished or the batch limit passes, noting turns and the peak in flight.
void drive(EventLoop& loop, Batch& b, const std::size_t& finished, std::size_t n) {
    const auto limit = SteadyClock::now() + kBatchLimit;
    while (finished < n && SteadyClock::now() < limit) {
        loop.run_once(100ms);
        ++b.turns;
        b.peak_in_flight = std::max(b.peak_in_flight, loop.transfers());
    }
}

// ---- (a) async: Router::submit on one EventLoop --------------------------------------------

Batch run_async(const std::string& base, std::size_t n) {
    Batch b;
    b.mode = "async";
    b.n = n;
    Router router{unlimited(n), Route{"up", adapter_for(base), std::make_shared<CurlTransport>()}};
    EventLoop loop{EventLoopOptions{.max_idle_connections = n}};
    const ChatRequest req = bench::typical_request();
    std::size_t finished = 0;
    Meter m(b);
    m.start();
    for (std::size_t i = 0; i < n; ++i)
        router.submit(loop, req, [&b, &finished](Result<ChatResponse> r) {
            judge(b, r);
            ++finished;
        });
    m.submitted();
    drive(loop, b, finished, n);
    m.stop();
    if (finished < n) b.unfinished(n - finished);
    return b;  // the loop ends what is left (as cancelled) after the measurement
}

// ---- loop: EventLoop::send with the adapter by hand (diagnostic: the loop without the router) ----

Batch run_loop(const std::string& base, std::size_t n) {
    Batch b;
    b.mode = "loop";
    b.n = n;
    EventLoop loop{EventLoopOptions{.max_idle_connections = n}};
    const CurlTransport http;  // its default options, as the routers' transfers use them
    const OpenAI adapter = adapter_for(base);
    const ChatRequest req = bench::typical_request();
    const Deadline d{.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(kDeadline), .connect_timeout = 5s};
    std::size_t finished = 0;
    Meter m(b);
    m.start();
    for (std::size_t i = 0; i < n; ++i) {
        auto enc = encoded(adapter, req, b, finished);
        if (!enc) continue;
        loop.send(http.options(), std::move(*enc), d, [&b, &finished, &adapter, &req](Result<HttpResponse> r) {
            if (!r) {
                b.fail(std::string(to_string(r.error().reason)) + ": " + r.error().message);
            } else if (r->status != 200) {
                b.fail("HTTP " + std::to_string(r->status));
            } else {
                judge(b, adapter.decode(req, *r));
            }
            ++finished;
        });
    }
    m.submitted();
    drive(loop, b, finished, n);
    m.stop();
    if (finished < n) b.unfinished(n - finished);
    return b;
}

// ---- (b) bare: one multi handle, the adapter by hand ---------------------------------------

std::size_t collect(char* data, std::size_t size, std::size_t count, void* user) {
    static_cast<std::string*>(user)->append(data, size * count);
    return size * count;
}

struct BareTransfer {
    HttpRequest http;
    curl_slist* headers = nullptr;
    CURL* easy = nullptr;
    std::string body;
    ~BareTransfer() {
        if (easy) curl_easy_cleanup(easy);
        curl_slist_free_all(headers);
    }
};

// The peer's route to the upstream: Portkey's gateway forwards to custom_host with the config's key.
std::string portkey_config(const std::string& base) {
    return nlohmann::json{{"provider", "openai"}, {"custom_host", base + "/v1"}, {"api_key", "sk-bench"}}.dump();
}

// `peer` empty: the bare baseline. Otherwise the same loop sends every request through the gateway
// at `peer` (which forwards it to `base`), and the gateway's CPU and memory are measured with ours.
Batch run_bare(const std::string& base, std::size_t n, const std::string& peer = {}, long peer_pid = 0) {
    Batch b;
    b.mode = peer.empty() ? "bare" : "portkey";
    b.n = n;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const OpenAI adapter = adapter_for(base);
    const ChatRequest req = bench::typical_request();
    CURLM* multi = curl_multi_init();
    if (!multi) throw std::runtime_error("curl_multi_init failed");
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, static_cast<long>(n));
    std::size_t finished = 0;
    const std::string peer_config = peer.empty() ? std::string() : portkey_config(base);
    Meter m(b, peer.empty() ? 0 : peer_pid);
    m.start();
    std::vector<std::unique_ptr<BareTransfer>> xs(n);
    for (std::size_t i = 0; i < n; ++i) {
        auto enc = encoded(adapter, req, b, finished);
        if (!enc) continue;
        auto x = std::make_unique<BareTransfer>();
        x->http = std::move(*enc);
        if (!peer.empty()) {
            x->http.url = peer + "/v1/chat/completions";
            x->http.headers.emplace_back("x-portkey-config", peer_config);
        }
        for (const auto& [k, v] : x->http.headers) x->headers = curl_slist_append(x->headers, (k + ": " + v).c_str());
        x->easy = curl_easy_init();
        CURL* h = x->easy;
        curl_easy_setopt(h, CURLOPT_URL, x->http.url.c_str());
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->headers);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, x->http.body.data());
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(x->http.body.size()));
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &collect);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, static_cast<void*>(&x->body));
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(kDeadline.count() * 1000));
        curl_easy_setopt(h, CURLOPT_PRIVATE, static_cast<void*>(&xs[i]));
        if (curl_multi_add_handle(multi, h) != CURLM_OK) {
            b.fail("curl_multi_add_handle failed");
            ++finished;
            continue;
        }
        xs[i] = std::move(x);
    }
    m.submitted();
    const auto limit = SteadyClock::now() + kBatchLimit;
    while (finished < n && SteadyClock::now() < limit) {
        int running = 0;
        curl_multi_perform(multi, &running);
        ++b.turns;
        b.peak_in_flight = std::max(b.peak_in_flight, static_cast<std::size_t>(running));
        int left = 0;
        while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
            if (msg->msg != CURLMSG_DONE) continue;
            void* p = nullptr;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &p);
            auto& slot = *static_cast<std::unique_ptr<BareTransfer>*>(p);
            long status = 0;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
            if (msg->data.result != CURLE_OK) {
                b.fail(std::string("curl: ") + curl_easy_strerror(msg->data.result));
            } else if (status != 200) {
                b.fail("HTTP " + std::to_string(status));
            } else {
                HttpResponse resp;
                resp.status = static_cast<int>(status);
                resp.body = std::move(slot->body);
                judge(b, adapter.decode(req, resp));
            }
            curl_multi_remove_handle(multi, msg->easy_handle);
            slot.reset();
            ++finished;
        }
        if (finished < n) curl_multi_poll(multi, nullptr, 0, 100, nullptr);
    }
    m.stop();
    if (finished < n) b.unfinished(n - finished);
    for (auto& x : xs)
        if (x) curl_multi_remove_handle(multi, x->easy);
    xs.clear();
    curl_multi_cleanup(multi);
    return b;
}

// ---- (c) threads: route_with_fallback on a thread per request ------------------------------

struct ThreadJob {
    std::function<Result<ChatResponse>()> call;
    std::mutex mu;
    Batch* batch = nullptr;
    std::atomic<std::size_t> finished{0};
};

void* thread_main(void* arg) {
    auto* job = static_cast<ThreadJob*>(arg);
    Result<ChatResponse> r = job->call();
    {
        std::lock_guard lock(job->mu);
        judge(*job->batch, r);
    }
    job->finished.fetch_add(1, std::memory_order_release);
    return nullptr;
}

Batch run_threads(const std::string& base, std::size_t n, long stack_kb) {
    Batch b;
    b.mode = "threads";
    b.n = n;
    Router router{unlimited(n), Route{"up", adapter_for(base), std::make_shared<CurlTransport>()}};
    const ChatRequest req = bench::typical_request();
    ThreadJob job;
    job.call = [&router, &req] { return router.route_with_fallback(req); };
    job.batch = &b;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (stack_kb > 0) pthread_attr_setstacksize(&attr, static_cast<std::size_t>(stack_kb) * 1024);
    std::vector<pthread_t> ids;
    ids.reserve(n);
    Meter m(b);
    m.start();
    for (std::size_t i = 0; i < n; ++i) {
        pthread_t t{};
        if (const int rc = pthread_create(&t, &attr, &thread_main, &job); rc != 0) {
            std::lock_guard lock(job.mu);
            b.fail(std::string("pthread_create: ") + std::strerror(rc));
            continue;
        }
        ids.push_back(t);
        if (i % 64 == 0) b.peak_in_flight = std::max(b.peak_in_flight, router.in_flight());
    }
    m.submitted();
    // The router's in-flight count, read every 10 ms while the threads run (a negligible cost).
    while (job.finished.load(std::memory_order_acquire) < ids.size()) {
        b.peak_in_flight = std::max(b.peak_in_flight, router.in_flight());
        std::this_thread::sleep_for(10ms);
    }
    for (pthread_t t : ids) pthread_join(t, nullptr);
    m.stop();
    pthread_attr_destroy(&attr);
    return b;
}

int child(const std::string& mode, std::size_t n, const std::string& base) {
    Batch b;
    try {
        if (mode == "async") {
            b = run_async(base, n);
        } else if (mode == "bare") {
            b = run_bare(base, n);
        } else if (mode == "loop") {
            b = run_loop(base, n);
        } else if (mode == "portkey") {
            const std::string peer = env_or("FAILOVER_INFLIGHT_PEER_URL", "");
            const long pid = env_long("FAILOVER_INFLIGHT_PEER_PID", 0);
            if (peer.empty() || pid <= 0)
                throw std::runtime_error("mode portkey needs FAILOVER_INFLIGHT_PEER_URL and FAILOVER_INFLIGHT_PEER_PID");
            b = run_bare(base, n, peer, pid);
        } else if (mode == "threads") {
            b = run_threads(base, n, env_long("FAILOVER_BENCH_INFLIGHT_STACK_KB", 256));
        } else {
            std::fprintf(stderr, "bench_inflight: unknown mode '%s'\n", mode.c_str());
            return 2;
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_inflight: %s N=%zu: %s\n", mode.c_str(), n, e.what());
        return 1;
    }
    std::cout << to_json(b).dump() << std::endl;
    return 0;
}

// ---- the parent: one child per batch -------------------------------------------------------

nlohmann::json spawn_batch(const std::string& mode, std::size_t n) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    std::string a0 = "bench_inflight", a1 = "--child=" + mode, a2 = "--n=" + std::to_string(n);
    char* argv[] = {a0.data(), a1.data(), a2.data(), nullptr};
    pid_t pid = 0;
    const int rc = ::posix_spawn(&pid, "/proc/self/exe", &fa, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
    if (rc != 0) {
        ::close(fds[0]);
        throw std::runtime_error(std::string("posix_spawn: ") + std::strerror(rc));
    }
    std::string out;
    char buf[4096];
    for (;;) {
        const ssize_t k = ::read(fds[0], buf, sizeof buf);
        if (k > 0) {
            out.append(buf, static_cast<std::size_t>(k));
        } else if (k < 0 && errno == EINTR) {
            continue;
        } else {
            break;
        }
    }
    ::close(fds[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    std::string why;
    if (WIFSIGNALED(status)) {
        why = std::string("the batch's process died of signal ") + std::to_string(WTERMSIG(status)) + " (" +
              strsignal(WTERMSIG(status)) + ")";
    } else if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
        why = "the batch's process exited with status " + std::to_string(WEXITSTATUS(status));
    }
    if (why.empty()) {
        try {
            return nlohmann::json::parse(out);
        } catch (const std::exception& e) {
            why = std::string("unreadable result: ") + e.what();
        }
    }
    Batch b;
    b.mode = mode;
    b.n = n;
    b.errors = n;
    b.error_kinds[why] = n;
    auto j = to_json(b);
    j["failed"] = why;
    return j;
}

// The 1-minute load average, to show how busy the machine was when a batch started.
double load_average() {
    std::ifstream f("/proc/loadavg");
    double one = -1;
    f >> one;
    return one;
}

double median(std::vector<double> v) {
    if (v.empty()) return -1;
    std::sort(v.begin(), v.end());
    const std::size_t k = v.size() / 2;
    return v.size() % 2 ? v[k] : (v[k - 1] + v[k]) / 2;
}

std::string progress(const nlohmann::json& r) {
    char line[320];
    std::snprintf(line, sizeof line, "N=%zu %-7s %zu completed, %zu errors, wall %.3f s, %.1f kB/request, %.1f us CPU/request",
                  r.value("n", std::size_t{0}), r.value("mode", std::string()).c_str(), r.value("completed", std::size_t{0}),
                  r.value("errors", std::size_t{0}), r.value("wall_s", 0.0), r.value("rss_kb_per_req", -1.0),
                  r.value("cpu_us_per_req", -1.0));
    std::string s = line;
    if (r.contains("failed")) s += " (" + r["failed"].get<std::string>() + ")";
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    std::string child_mode, out_path;
    std::size_t child_n = 0;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&](const char* key) -> const char* {
            const std::size_t k = std::strlen(key);
            return a.compare(0, k, key) == 0 ? argv[i] + k : nullptr;
        };
        if (const char* v = value("--child=")) {
            child_mode = v;
        } else if (const char* v2 = value("--n=")) {
            child_n = static_cast<std::size_t>(std::strtoull(v2, nullptr, 10));
        } else if (const char* v3 = value("--out=")) {
            out_path = v3;
        } else if (const char* v4 = value("--benchmark_out=")) {
            out_path = v4;
        } else if (a.compare(0, 12, "--benchmark_") == 0) {
            // Google Benchmark flags from tests/benchmarks/run: nothing to do here.
        } else {
            std::fprintf(stderr,
                         "usage: %s [--out=FILE]   (FAILOVER_INFLIGHT_URL=http://127.0.0.1:<port> of delay-upstream.cjs)\n",
                         argv[0]);
            return 2;
        }
    }
    const std::string base = env_or("FAILOVER_INFLIGHT_URL", "");
    if (base.empty()) {
        std::fprintf(stderr,
                     "bench_inflight: FAILOVER_INFLIGHT_URL is not set; start the upstream with\n"
                     "  node tests/benchmarks/delay-upstream.cjs   (prints its port)\n"
                     "and set FAILOVER_INFLIGHT_URL=http://127.0.0.1:<port>\n");
        return 2;
    }
    if (!child_mode.empty()) return child(child_mode, child_n, base);

    // ---- descriptors: the soft limit up to the hard one, for this process and its children
    rlimit lim{};
    ::getrlimit(RLIMIT_NOFILE, &lim);
    const rlim_t soft_before = lim.rlim_cur;
    std::string raise_error;
    if (lim.rlim_cur < lim.rlim_max) {
        rlimit up = lim;
        up.rlim_cur = lim.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &up) != 0) raise_error = std::strerror(errno);
        ::getrlimit(RLIMIT_NOFILE, &lim);
    }
    auto lim_json = [](rlim_t v) -> nlohmann::json {
        if (v == RLIM_INFINITY) return "unlimited";
        return static_cast<unsigned long long>(v);
    };
    std::fprintf(stderr, "bench_inflight: RLIMIT_NOFILE soft %s -> %s, hard %s%s\n",
                 lim_json(soft_before).dump().c_str(), lim_json(lim.rlim_cur).dump().c_str(),
                 lim_json(lim.rlim_max).dump().c_str(), raise_error.empty() ? "" : (" (setrlimit: " + raise_error + ")").c_str());

    std::vector<std::size_t> sizes;
    for (const auto& s : split(env_or("FAILOVER_BENCH_INFLIGHT_N", "1000,10000")))
        sizes.push_back(static_cast<std::size_t>(std::strtoull(s.c_str(), nullptr, 10)));
    const std::vector<std::string> modes = split(env_or("FAILOVER_BENCH_INFLIGHT_MODES",
                                  env_or("FAILOVER_INFLIGHT_PEER_URL", "").empty() ? "bare,async,threads,loop"
                                                                                   : "bare,async,threads,loop,portkey"));
    const long reps = std::max(1L, env_long("FAILOVER_BENCH_INFLIGHT_REPS", 5));
    const long pause_ms = std::max(0L, env_long("FAILOVER_BENCH_INFLIGHT_PAUSE_MS", 1000));
    const bool tty = ::isatty(2) != 0;

    nlohmann::json result;
    result["context"] = {{"upstream", base},
                         {"delay_ms", env_long("FAILOVER_INFLIGHT_DELAY_MS", 1000)},
                         {"repetitions", reps},
                         {"modes", modes},
                         {"thread_stack_kb", env_long("FAILOVER_BENCH_INFLIGHT_STACK_KB", 256)},
                         {"rlimit_nofile", {{"soft_before", lim_json(soft_before)},
                                            {"soft", lim_json(lim.rlim_cur)},
                                            {"hard", lim_json(lim.rlim_max)},
                                            {"raise_error", raise_error}}},
                         {"cores", std::thread::hardware_concurrency()}};
    result["runs"] = nlohmann::json::array();
    result["sizes"] = nlohmann::json::array();

    // The peer runs after every other batch: each of its requests holds two loopback connections
    // (client to gateway, gateway to upstream) and the gateway keeps its upstream ones open, which
    // crowds the ephemeral port range; batches after it paid several times the kernel time in connect.
    std::vector<std::string> own_modes, peer_modes;
    for (const auto& m : modes) (m == "portkey" ? peer_modes : own_modes).push_back(m);
    std::map<std::size_t, std::map<std::string, std::vector<nlohmann::json>>> by_size;
    std::map<std::size_t, std::string> limit_notes;  // N -> why the descriptor limit is too low for it
    for (const auto* phase : {&own_modes, &peer_modes}) {
        for (std::size_t n : sizes) {
            if (phase->empty()) continue;
            // One socket per request in this process (the upstream needs as many in its own), plus
            // what the process holds anyway.
            const std::size_t needed = n + 64;
            const bool enough = lim.rlim_cur == RLIM_INFINITY || lim.rlim_cur >= needed;
            if (!enough && !limit_notes.count(n)) {
                const std::string note = "RLIMIT_NOFILE " + lim_json(lim.rlim_cur).dump() + " (hard " +
                                         lim_json(lim.rlim_max).dump() + ") is below the " + std::to_string(needed) +
                                         " descriptors N=" + std::to_string(n) + " needs; its failures below are the limit's";
                std::fprintf(stderr, "bench_inflight: %s\n", note.c_str());
                limit_notes[n] = note;
            }
            const std::vector<std::string>& ms = *phase;
            for (long rep = 0; rep < reps; ++rep) {
                for (std::size_t k = 0; k < ms.size(); ++k) {
                    const std::string& mode = ms[(k + static_cast<std::size_t>(rep)) % ms.size()];
                    if (tty)
                        std::fprintf(stderr, "\r\033[Kbench_inflight: N=%zu %s, run %ld/%ld ...", n, mode.c_str(), rep + 1,
                                     reps);
                    const double load = load_average();
                    nlohmann::json r = spawn_batch(mode, n);
                    r["repetition"] = rep;
                    r["load_before"] = load;
                    std::fprintf(stderr, "%sbench_inflight: %s (run %ld/%ld)\n", tty ? "\r\033[K" : "",
                                 progress(r).c_str(), rep + 1, reps);
                    by_size[n][mode].push_back(r);
                    result["runs"].push_back(r);
                    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
                }
            }
        }
    }
    for (std::size_t n : sizes) {
        const std::size_t needed = n + 64;
        const bool enough = !limit_notes.count(n);
        const std::string note = enough ? std::string() : limit_notes[n];
        const auto& by_mode = by_size[n];
        nlohmann::json size = {{"n", n}, {"descriptors_needed", needed}, {"limit_ok", enough}, {"note", note}};
        nlohmann::json summary = nlohmann::json::object();
        for (const auto& [mode, runs] : by_mode) {
            std::vector<double> wall, rss, cpu, load, peer_cpu, peer_rss;
            std::size_t completed = 0, errors = 0, retried = 0;
            nlohmann::json kinds = nlohmann::json::object();
            for (const auto& r : runs) {
                completed += r.value("completed", std::size_t{0});
                errors += r.value("errors", std::size_t{0});
                retried += r.value("retried", std::size_t{0});
                for (const auto& [k, v] : r["error_kinds"].items()) kinds[k] = kinds.value(k, std::size_t{0}) + v.get<std::size_t>();
                if (r.contains("failed")) continue;
                wall.push_back(r.value("wall_s", 0.0));
                if (r.value("rss_kb_per_req", -1.0) >= 0) rss.push_back(r.value("rss_kb_per_req", 0.0));
                cpu.push_back(r.value("cpu_us_per_req", 0.0));
                load.push_back(r.value("load_before", -1.0));
                if (r.contains("peer_cpu_us_per_req")) peer_cpu.push_back(r.value("peer_cpu_us_per_req", 0.0));
                if (r.value("peer_rss_kb_per_req", -1.0) >= 0) peer_rss.push_back(r.value("peer_rss_kb_per_req", 0.0));
            }
            summary[mode] = {{"runs", runs.size()},
                             {"requests", runs.size() * n},
                             {"completed", completed},
                             {"errors", errors},
                             {"retried", retried},
                             {"error_kinds", kinds},
                             {"wall_s", median(wall)},
                             {"rss_kb_per_req", median(rss)},
                             {"cpu_us_per_req", median(cpu)},
                             {"load_before", median(load)}};
            if (!peer_cpu.empty()) {
                summary[mode]["peer_cpu_us_per_req"] = median(peer_cpu);
                summary[mode]["peer_rss_kb_per_req"] = median(peer_rss);
            }
        }
        size["modes"] = summary;
        result["sizes"].push_back(size);
    }

    const std::string text = result.dump(2) + "\n";
    if (out_path.empty()) {
        std::cout << text;
    } else {
        std::ofstream f(out_path);
        f << text;
        if (!f) {
            std::fprintf(stderr, "bench_inflight: cannot write %s\n", out_path.c_str());
            return 1;
        }
    }
    return 0;
}
