// SPDX-License-Identifier: MIT
// What sharing route state through Redis costs (failover/stores/redis.hpp),
// against a real redis-server this program starts on a free loopback port
// (--bind 127.0.0.1 --save "" --appendonly no, its log to /dev/null) and stops
// at the end. Two measurements:
//
//   hot path     Router::route_with_fallback on a chain of one local route
//                (Route{"canned", StaticReply{"ok"}}, priced at $1 per million
//                output tokens, so every request reserves and settles its
//                estimate) with RouterOptions::budgets (tenant "acme", a ceiling
//                it never reaches). The baseline, measured in the same run: the
//                in-memory state (no state_store, an InMemoryBudgetStore). Then
//                the same with one RedisStore as both the state_store and the
//                Budgets' store (after wait_connected). The two modes alternate
//                repetition by repetition so background load hits both alike;
//                medians are reported. Per request: wall time and CPU time of
//                the calling thread, operator new calls of the calling thread,
//                and the CPU the rest of the process spent meanwhile (the
//                store's background thread). Once with 1 calling thread, once
//                with 2 (per-request figures over both threads' requests).
//                Target (the issue): the Redis store adds at most 1 µs.
//
//   propagation  a breaker opening seen by a sibling process. Before any thread
//                or store exists the program forks; parent and child each build
//                a RedisStore (same random prefix) and a Router with one route
//                "primary" (BreakerOptions consecutive_failures = 1). Per
//                round: the child says it is polling, the parent takes
//                system_clock::now() and reports one failure to its breaker (it
//                opens); the child polls its own breaker's state() and takes the time
//                it first reads open; the difference is the delay. The parent
//                then reset()s its breaker (reset publishes "closed") and the
//                child times when it reads closed again before the next round.
//                Also reported: when the child's store applied the opening
//                (its sink's BreakerEvent), i.e. the delay without the poll.
//                Target: 100 ms on loopback.
//
// A results table goes to stdout; with --benchmark_out=FILE (the flag
// tests/benchmarks/run passes every benchmark) a JSON file in Google
// Benchmark's shape too (median aggregates; propagation times in µs). Other
// --benchmark_* flags are accepted and ignored, except --benchmark_repetitions
// (the hot path's repetitions, default 5). Timings are reported, never
// asserted: the exit status is non-zero only when something did not work
// (no redis-server, a store that never connected, an opening never seen).
//
// Environment:
//   FAILOVER_BENCH_STORE_REQUESTS  requests per thread per repetition (default 200000)
//   FAILOVER_BENCH_STORE_ROUNDS    propagation rounds (default 50)
//   FAILOVER_REDIS_SERVER          the redis-server binary (default: redis-server on PATH)
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <failover/failover.hpp>
#include <failover/stores/redis.hpp>

#include "alloc_counter.hpp"
#include "bench_util.hpp"

extern char** environ;

using namespace failover;
using namespace std::chrono_literals;

namespace {

// ---- redis-server ---------------------------------------------------------------------------

int free_loopback_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) ::close(fd);
    return port;
}

bool redis_ping(int port) {
    const timeval tv{0, 200000};
    redisContext* c = redisConnectWithTimeout("127.0.0.1", port, tv);
    bool ok = false;
    if (c && !c->err) {
        auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
        ok = r && r->type == REDIS_REPLY_STATUS && std::string(r->str, r->len) == "PONG";
        if (r) freeReplyObject(r);
    }
    if (c) redisFree(c);
    return ok;
}

// A redis-server of our own on a free loopback port; stopped (SIGTERM, waited for) by stop()
// or the destructor. Only the process that started it stops it.
class RedisServer {
public:
    RedisServer() {
        const char* bin = std::getenv("FAILOVER_REDIS_SERVER");
        const std::string exe = bin && *bin ? bin : "redis-server";
        for (int tries = 0; tries < 3 && pid_ <= 0; ++tries) {  // another process may take the port first
            port_ = free_loopback_port();
            if (port_ <= 0) continue;
            std::vector<std::string> args{exe,      "--port",       std::to_string(port_), "--bind",   "127.0.0.1",
                                          "--save", "",             "--appendonly",        "no",       "--logfile",
                                          "/dev/null", "--loglevel", "warning"};
            std::vector<char*> argv;
            for (auto& s : args) argv.push_back(s.data());
            argv.push_back(nullptr);
            posix_spawn_file_actions_t fa;
            posix_spawn_file_actions_init(&fa);
            posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
            posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
            pid_t pid = 0;
            const int rc = ::posix_spawnp(&pid, exe.c_str(), &fa, nullptr, argv.data(), environ);
            posix_spawn_file_actions_destroy(&fa);
            if (rc != 0) {
                error_ = "cannot start " + exe + ": " + std::strerror(rc) + " (Debian: apt-get install redis-server)";
                return;
            }
            owner_ = ::getpid();
            const auto until = std::chrono::steady_clock::now() + 10s;
            while (std::chrono::steady_clock::now() < until) {
                if (redis_ping(port_)) {
                    pid_ = pid;
                    break;
                }
                int st = 0;
                if (::waitpid(pid, &st, WNOHANG) == pid) break;  // exited (the port was taken?): try another
                std::this_thread::sleep_for(5ms);
            }
            if (pid_ <= 0) {
                ::kill(pid, SIGKILL);
                ::waitpid(pid, nullptr, 0);
                error_ = exe + " did not answer PING on 127.0.0.1:" + std::to_string(port_);
            }
        }
        if (pid_ > 0) error_.clear();
    }
    ~RedisServer() { stop(); }
    RedisServer(const RedisServer&) = delete;
    RedisServer& operator=(const RedisServer&) = delete;

    bool ok() const noexcept { return pid_ > 0; }
    const std::string& error() const noexcept { return error_; }
    int port() const noexcept { return port_; }
    void stop() {
        if (pid_ <= 0 || ::getpid() != owner_) return;
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }

private:
    int port_ = -1;
    pid_t pid_ = -1;
    pid_t owner_ = -1;
    std::string error_{};
};

long env_long(const char* name, long fallback) {
    const char* v = std::getenv(name);
    if (!v || !*v) return fallback;
    const long n = std::strtol(v, nullptr, 10);
    return n > 0 ? n : fallback;
}

std::string random_prefix() {
    std::random_device rd;
    char buf[48];
    std::snprintf(buf, sizeof buf, "failover-bench-%08x", rd());
    return buf;
}

std::chrono::nanoseconds process_cpu() {
    timespec ts{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return std::chrono::seconds{ts.tv_sec} + std::chrono::nanoseconds{ts.tv_nsec};
}

std::int64_t wall_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// ---- the hot path -------------------------------------------------------------------------

RouteOptions priced() {
    RouteOptions o;
    o.price.output_per_million = 1.0;  // every request reserves 512 tokens' worth, then settles
    return o;
}

auto make_router(std::shared_ptr<Budgets> budgets, std::shared_ptr<StateStore> state) {
    RouterOptions o;
    o.budgets = std::move(budgets);
    o.state_store = std::move(state);
    return std::make_unique<Router<Route<StaticReply, NoTransport>>>(std::move(o),
                                                                     Route{"canned", StaticReply{"ok"}, priced()});
}
using HotRouter = Router<Route<StaticReply, NoTransport>>;

ChatRequest hot_request() {
    ChatRequest r;
    r.messages = {user("hi")};
    r.tenant = "acme";
    return r;
}

// Keeps the optimizer from dropping the result (what benchmark::DoNotOptimize does).
template <class T>
void benchmark_keep(T& v) {
    asm volatile("" : : "g"(&v) : "memory");
}

// One repetition's figures, per request.
struct Sample {
    double wall_ns = 0;        // the calling threads' wall time (the slowest thread's, over its requests)
    double thread_cpu_ns = 0;  // the calling threads' CPU
    double other_cpu_ns = 0;   // the rest of the process meanwhile (the store's thread)
    double allocs = 0;         // operator new calls of the calling threads
    long failures = 0;
};

Sample run_hot(HotRouter& router, const ChatRequest& req, long n, int threads) {
    std::barrier start(threads + 1);
    std::atomic<long> failures{0};
    std::vector<double> wall(static_cast<std::size_t>(threads)), cpu(static_cast<std::size_t>(threads)),
        allocs(static_cast<std::size_t>(threads));
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            start.arrive_and_wait();
            const auto a0 = bench::thread_allocations;
            const auto c0 = bench::thread_cpu();
            const auto w0 = std::chrono::steady_clock::now();
            long bad = 0;
            for (long i = 0; i < n; ++i) {
                auto r = router.route_with_fallback(req);
                if (!r) ++bad;
                benchmark_keep(r);
            }
            const auto w1 = std::chrono::steady_clock::now();
            const auto c1 = bench::thread_cpu();
            const auto t_ = static_cast<std::size_t>(t);
            wall[t_] = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(w1 - w0).count());
            cpu[t_] = static_cast<double>((c1 - c0).count());
            allocs[t_] = static_cast<double>(bench::thread_allocations - a0);
            failures += bad;
        });
    }
    const auto p0 = process_cpu();
    start.arrive_and_wait();
    for (auto& th : pool) th.join();
    const auto p1 = process_cpu();
    Sample s;
    const double total = static_cast<double>(n) * threads;
    double cpu_sum = 0, alloc_sum = 0;
    for (int t = 0; t < threads; ++t) {
        cpu_sum += cpu[static_cast<std::size_t>(t)];
        alloc_sum += allocs[static_cast<std::size_t>(t)];
    }
    s.wall_ns = *std::max_element(wall.begin(), wall.end()) / static_cast<double>(n) / threads;
    s.thread_cpu_ns = cpu_sum / total;
    s.other_cpu_ns = std::max(0.0, static_cast<double>((p1 - p0).count()) - cpu_sum) / total;
    s.allocs = alloc_sum / total;
    s.failures = failures.load();
    return s;
}

struct HotResult {
    int threads = 1;
    std::vector<Sample> memory, redis;
};

// ---- propagation ------------------------------------------------------------------------------

// The pipes between the two processes: one byte per step, or a time as 8 bytes.
bool put(int fd, const void* p, std::size_t n) {
    const char* c = static_cast<const char*>(p);
    while (n > 0) {
        const ssize_t w = ::write(fd, c, n);
        if (w <= 0) return false;
        c += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}
bool get(int fd, void* p, std::size_t n) {
    char* c = static_cast<char*>(p);
    while (n > 0) {
        const ssize_t r = ::read(fd, c, n);
        if (r <= 0) return false;
        c += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}

RouteOptions one_failure_opens() {
    RouteOptions o;
    o.breaker.consecutive_failures = 1;
    o.breaker.open_base = 30s;
    return o;
}

// Waits (yielding) until the breaker reads `want`; the wall time it did, or -1 after `limit`.
std::int64_t poll_until(const CircuitBreaker& b, BreakerState want, std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (b.state() != want) {
        if (std::chrono::steady_clock::now() > until) return -1;
        std::this_thread::yield();
    }
    return wall_ns();
}

// The child: a sibling instance that only watches. Commands from the parent: 'g' (a round:
// answer 'r', poll until open, send the times it read open and its store applied it, poll
// until closed, send that time), 'q' (quit).
int sibling(int port, const std::string& prefix, int from_parent, int to_parent) {
    std::atomic<std::int64_t> applied_open{0};
    auto sink = std::make_shared<CallbackSink>([&](const Event& e) {
        if (auto* b = std::get_if<BreakerEvent>(&e); b && b->transition.to == BreakerState::open)
            applied_open.store(wall_ns(), std::memory_order_release);
    });
    auto store = std::make_shared<RedisStore>(RedisOptions{.port = port, .prefix = prefix, .sink = sink});
    RouterOptions o;
    o.state_store = store;
    Router router{o, Route{"primary", StaticReply{"ok"}, one_failure_opens()}};
    const char up = store->wait_connected(5s) ? 'u' : 'x';
    if (!put(to_parent, &up, 1) || up != 'u') return 1;
    auto& b = router.route<0>().breaker();
    for (;;) {
        char cmd = 0;
        if (!get(from_parent, &cmd, 1) || cmd == 'q') return 0;
        applied_open.store(0, std::memory_order_release);
        const char ready = 'r';
        if (!put(to_parent, &ready, 1)) return 1;
        std::int64_t times[3] = {poll_until(b, BreakerState::open, 2s), 0, 0};
        times[1] = applied_open.load(std::memory_order_acquire);
        if (!put(to_parent, times, 2 * sizeof(std::int64_t))) return 1;
        times[2] = poll_until(b, BreakerState::closed, 2s);
        if (!put(to_parent, &times[2], sizeof(std::int64_t))) return 1;
    }
}

struct Propagation {
    std::vector<double> open_us, applied_us, close_us;
    int missed_open = 0, missed_close = 0;
    std::uint64_t opener_adopted = 0;  // changes the opener's store made to its own breaker (expected 0)
    std::string error{};
};

// Runs in the parent after the fork: the opener.
Propagation opener(int port, const std::string& prefix, int rounds, int to_child, int from_child) {
    Propagation p;
    auto store = std::make_shared<RedisStore>(RedisOptions{.port = port, .prefix = prefix});
    RouterOptions o;
    o.state_store = store;
    Router router{o, Route{"primary", StaticReply{"ok"}, one_failure_opens()}};
    char up = 0;
    if (!store->wait_connected(5s)) {
        p.error = "the parent's RedisStore did not connect";
        return p;
    }
    if (!get(from_child, &up, 1) || up != 'u') {
        p.error = "the child's RedisStore did not connect";
        return p;
    }
    store->wait_synced(2s);  // both routes are known to Redis before the first round
    auto& b = router.route<0>().breaker();
    for (int i = 0; i < rounds; ++i) {
        const char go = 'g';
        char ready = 0;
        if (!put(to_child, &go, 1) || !get(from_child, &ready, 1)) {
            p.error = "the child went away";
            return p;
        }
        const std::int64_t opened = wall_ns();  // taken first: the store cannot publish before on_failure
        b.on_failure(std::chrono::steady_clock::now(), CircuitBreaker::Permit::call);
        if (b.state() != BreakerState::open) {
            p.error = "one failure did not open the parent's breaker";
            return p;
        }
        std::int64_t seen[2] = {0, 0};
        if (!get(from_child, seen, sizeof seen)) {
            p.error = "the child went away";
            return p;
        }
        if (seen[0] < 0) ++p.missed_open;
        else p.open_us.push_back(static_cast<double>(seen[0] - opened) / 1000.0);
        if (seen[1] > 0) p.applied_us.push_back(static_cast<double>(seen[1] - opened) / 1000.0);
        const std::int64_t closed = wall_ns();
        b.reset(std::chrono::steady_clock::now());  // publishes "closed"
        std::int64_t seen_closed = 0;
        if (!get(from_child, &seen_closed, sizeof seen_closed)) {
            p.error = "the child went away";
            return p;
        }
        if (seen_closed < 0) {
            ++p.missed_close;
            break;  // the next round would start from open
        }
        p.close_us.push_back(static_cast<double>(seen_closed - closed) / 1000.0);
    }
    const char quit = 'q';
    put(to_child, &quit, 1);
    p.opener_adopted = store->stats().adopted;  // the child only watches: nothing for the opener to adopt
    return p;
}

// ---- report -----------------------------------------------------------------------------------

struct Stats {
    double p50 = 0, p99 = 0, max = 0;
};
Stats stats_of(std::vector<double> v) {
    Stats s;
    if (v.empty()) return s;
    s.p50 = bench::percentile(v, 0.50);
    s.p99 = bench::percentile(v, 0.99);
    s.max = bench::percentile(v, 1.0);
    return s;
}

nlohmann::json gb_entry(const std::string& name, double real, double cpu, const char* unit, long iterations,
                        const nlohmann::json& counters) {
    nlohmann::json e{{"name", name + "_median"},
                     {"run_name", name},
                     {"run_type", "aggregate"},
                     {"aggregate_name", "median"},
                     {"iterations", iterations},
                     {"real_time", real},
                     {"cpu_time", cpu},
                     {"time_unit", unit}};
    for (auto it = counters.begin(); it != counters.end(); ++it) e[it.key()] = it.value();
    return e;
}

}  // namespace

int main(int argc, char** argv) {
    std::string out_path;
    int reps = 5;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a.rfind("--benchmark_out=", 0) == 0) out_path = a.substr(16);
        else if (a.rfind("--benchmark_repetitions=", 0) == 0) reps = std::max(1, std::atoi(a.c_str() + 24));
        else if (a.rfind("--benchmark_", 0) == 0) {
            // Other Google Benchmark flags from tests/benchmarks/run: nothing to do here.
        } else {
            std::fprintf(stderr, "usage: %s [--benchmark_out=FILE] [--benchmark_repetitions=N]\n", argv[0]);
            return 2;
        }
    }
    const long requests = env_long("FAILOVER_BENCH_STORE_REQUESTS", 200000);
    const int rounds = static_cast<int>(env_long("FAILOVER_BENCH_STORE_ROUNDS", 50));
    const auto started = std::chrono::steady_clock::now();

    RedisServer server;
    if (!server.ok()) {
        std::fprintf(stderr, "bench_store: %s\n", server.error().c_str());
        return 1;
    }
    std::fprintf(stderr, "bench_store: redis-server on 127.0.0.1:%d\n", server.port());

    // ---- propagation: fork first, while this process has no thread but its own -------------
    const std::string prefix = random_prefix();
    int down[2], up[2];
    if (::pipe(down) != 0 || ::pipe(up) != 0) {
        std::perror("bench_store: pipe");
        return 1;
    }
    std::fflush(nullptr);
    const pid_t child = ::fork();
    if (child < 0) {
        std::perror("bench_store: fork");
        return 1;
    }
    if (child == 0) {
        ::close(down[1]);
        ::close(up[0]);
        int rc = 1;
        try {
            rc = sibling(server.port(), prefix, down[0], up[1]);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "bench_store (child): %s\n", e.what());
        }
        std::fflush(nullptr);
        ::_exit(rc);  // never the parent's destructors: the server is the parent's to stop
    }
    ::close(down[0]);
    ::close(up[1]);
    std::fprintf(stderr, "bench_store: breaker propagation, %d rounds (prefix %s)\n", rounds, prefix.c_str());
    Propagation prop = opener(server.port(), prefix, rounds, down[1], up[0]);
    ::close(down[1]);
    ::close(up[0]);
    int child_status = 0;
    ::waitpid(child, &child_status, 0);
    if (prop.error.empty() && !(WIFEXITED(child_status) && WEXITSTATUS(child_status) == 0))
        prop.error = "the child exited with status " + std::to_string(child_status);

    // ---- the hot path -------------------------------------------------------------------------
    const ChatRequest req = hot_request();
    auto mem_budgets = std::make_shared<Budgets>(std::chrono::hours{24});
    mem_budgets->limit("acme", 1e12);
    auto mem_router = make_router(mem_budgets, nullptr);

    auto store = std::make_shared<RedisStore>(RedisOptions{.port = server.port(), .prefix = random_prefix()});
    if (!store->wait_connected(2s)) {
        std::fprintf(stderr, "bench_store: the RedisStore did not connect to 127.0.0.1:%d\n", server.port());
        return 1;
    }
    auto redis_budgets = std::make_shared<Budgets>(std::chrono::hours{24}, store);
    redis_budgets->limit("acme", 1e12);
    auto redis_router = make_router(redis_budgets, store);

    std::vector<HotResult> hot;
    for (int threads : {1, 2}) {
        std::fprintf(stderr, "bench_store: hot path, %d thread(s), %d x %ld requests per thread per mode\n", threads,
                     reps, requests);
        HotResult h;
        h.threads = threads;
        run_hot(*mem_router, req, requests / 10, threads);  // warm-up (the tenant's first read from Redis)
        run_hot(*redis_router, req, requests / 10, threads);
        for (int r = 0; r < reps; ++r) {
            // Alternating, in both orders, so drifting background load falls on both modes.
            if (r % 2 == 0) {
                h.memory.push_back(run_hot(*mem_router, req, requests, threads));
                h.redis.push_back(run_hot(*redis_router, req, requests, threads));
            } else {
                h.redis.push_back(run_hot(*redis_router, req, requests, threads));
                h.memory.push_back(run_hot(*mem_router, req, requests, threads));
            }
        }
        hot.push_back(std::move(h));
    }
    store->wait_synced(2s);
    const auto store_stats = store->stats();
    const bool still_connected = store->connected();
    redis_router.reset();
    mem_router.reset();
    store.reset();
    server.stop();

    // ---- report -----------------------------------------------------------------------------
    long failures = 0;
    nlohmann::json benchmarks = nlohmann::json::array();
    std::printf("\nRedisStore on the hot path (route_with_fallback, one StaticReply route, budgets reserve/settle;\n"
                "medians of %d repetitions x %ld requests per thread; baseline: in-memory state, same run)\n\n",
                reps, requests);
    std::printf("  %-7s  %-10s  %12s  %12s  %14s  %13s\n", "threads", "state", "wall/req", "caller CPU",
                "other CPU/req", "allocs/req");
    double added_1t = 0;
    for (const auto& h : hot) {
        auto med = [](const std::vector<Sample>& v, double Sample::*f) {
            std::vector<double> x;
            for (const auto& s : v) x.push_back(s.*f);
            return median(x);
        };
        for (const auto& s : h.memory) failures += s.failures;
        for (const auto& s : h.redis) failures += s.failures;
        const double mw = med(h.memory, &Sample::wall_ns), rw = med(h.redis, &Sample::wall_ns);
        const double mc = med(h.memory, &Sample::thread_cpu_ns), rc = med(h.redis, &Sample::thread_cpu_ns);
        const double mo = med(h.memory, &Sample::other_cpu_ns), ro = med(h.redis, &Sample::other_cpu_ns);
        const double ma = med(h.memory, &Sample::allocs), ra = med(h.redis, &Sample::allocs);
        std::printf("  %-7d  %-10s  %9.0f ns  %9.0f ns  %11.1f ns  %13.2f\n", h.threads, "in-memory", mw, mc, mo, ma);
        std::printf("  %-7d  %-10s  %9.0f ns  %9.0f ns  %11.1f ns  %13.2f\n", h.threads, "redis", rw, rc, ro, ra);
        std::printf("  %-7d  %-10s  %+9.0f ns  %+9.0f ns  %+11.1f ns  %+13.2f   (redis / in-memory: %.2fx wall)\n",
                    h.threads, "added", rw - mw, rc - mc, ro - mo, ra - ma, mw > 0 ? rw / mw : 0.0);
        if (h.threads == 1) added_1t = rw - mw;
        const std::string t = "/threads:" + std::to_string(h.threads);
        const long iters = requests * h.threads;
        benchmarks.push_back(gb_entry("BM_Store_HotPath_InMemory" + t, mw, mc, "ns", iters,
                                      {{"other_cpu_ns", mo}, {"allocs_per_call", ma}, {"repetitions", reps}}));
        benchmarks.push_back(gb_entry("BM_Store_HotPath_Redis" + t, rw, rc, "ns", iters,
                                      {{"other_cpu_ns", ro}, {"allocs_per_call", ra}, {"repetitions", reps},
                                       {"added_wall_ns", rw - mw}, {"added_cpu_ns", rc - mc}}));
    }
    std::printf("  target: the Redis store adds at most 1 us per request (1 thread): %s (%+.0f ns)\n",
                added_1t <= 1000.0 ? "met" : "NOT met", added_1t);
    std::printf("  store: %llu sync rounds, %llu rounds sent again, %llu disconnects, connected at the end: %s\n",
                static_cast<unsigned long long>(store_stats.rounds),
                static_cast<unsigned long long>(store_stats.resent),
                static_cast<unsigned long long>(store_stats.disconnects), still_connected ? "yes" : "NO");

    const Stats op = stats_of(prop.open_us), ap = stats_of(prop.applied_us), cl = stats_of(prop.close_us);
    std::printf("\nBreaker propagation between two processes over Redis pub/sub (loopback, %zu rounds)\n\n",
                prop.open_us.size());
    std::printf("  %-38s  %10s  %10s  %10s\n", "from the opener's transition to", "p50", "p99", "max");
    std::printf("  %-38s  %7.0f us  %7.0f us  %7.0f us\n", "the sibling reading open (polled)", op.p50, op.p99, op.max);
    std::printf("  %-38s  %7.0f us  %7.0f us  %7.0f us\n", "the sibling's store applying it (sink)", ap.p50, ap.p99,
                ap.max);
    std::printf("  %-38s  %7.0f us  %7.0f us  %7.0f us\n", "reset(): the sibling reading closed", cl.p50, cl.p99, cl.max);
    const bool prop_ok = prop.error.empty() && prop.missed_open == 0 && prop.missed_close == 0 &&
                         prop.opener_adopted == 0 && static_cast<int>(prop.open_us.size()) == rounds;
    std::printf("  target: 100 ms on loopback: %s (max %.2f ms)\n", prop_ok && op.max <= 100000.0 ? "met" : "NOT met",
                op.max / 1000.0);
    if (prop.missed_open || prop.missed_close)
        std::printf("  openings never seen within 2 s: %d; closings never seen within 2 s: %d\n", prop.missed_open,
                    prop.missed_close);
    if (prop.opener_adopted)
        std::printf("  the opener's store changed the opener's own breaker %llu times (expected 0: the sibling only watches)\n",
                    static_cast<unsigned long long>(prop.opener_adopted));
    if (!prop.error.empty()) std::printf("  error: %s\n", prop.error.c_str());
    benchmarks.push_back(gb_entry("BM_Store_BreakerPropagation_Open", op.p50, op.p50, "us",
                                  static_cast<long>(prop.open_us.size()),
                                  {{"p50_us", op.p50}, {"p99_us", op.p99}, {"max_us", op.max},
                                   {"applied_p50_us", ap.p50}, {"applied_p99_us", ap.p99}, {"applied_max_us", ap.max},
                                   {"missed", prop.missed_open}, {"opener_adopted", prop.opener_adopted}}));
    benchmarks.push_back(gb_entry("BM_Store_BreakerPropagation_Close", cl.p50, cl.p50, "us",
                                  static_cast<long>(prop.close_us.size()),
                                  {{"p50_us", cl.p50}, {"p99_us", cl.p99}, {"max_us", cl.max},
                                   {"missed", prop.missed_close}}));
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::printf("\n  %.1f s in all; %ld routed requests failed\n", elapsed, failures);

    if (!out_path.empty()) {
        char host[256] = "";
        ::gethostname(host, sizeof host - 1);
        nlohmann::json doc{{"context",
                            {{"executable", argv[0]},
                             {"host_name", host},
                             {"num_cpus", std::thread::hardware_concurrency()}}},
                           {"benchmarks", benchmarks}};
        std::ofstream(out_path) << doc.dump(2) << "\n";
    }
    return prop_ok && failures == 0 && still_connected ? 0 : 1;
}
