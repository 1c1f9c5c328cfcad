// SPDX-License-Identifier: MIT
// Two instances of one service share a circuit breaker through Redis: when pod
// A's breaker opens on a dead provider, pod B skips that provider without ever
// calling it. Each pod is its own process with its own Router; the only thing
// they share is a RedisStore (failover/stores/redis.hpp, CMake target
// failover::redis) pointing at the same Redis with the same key prefix:
//
//   auto redis = std::make_shared<RedisStore>(RedisOptions{.host = "...", .port = 6379});
//   RouterOptions o;
//   o.state_store = redis;             // every route's breaker, cooldown and retry budget
//   Router router{o, Route{"primary", OpenAI{...}, http, opts}, Route{"canned", StaticReply{...}}};
//
// The program starts a redis-server on a free loopback port (no persistence;
// with REDIS_PORT set it uses the Redis at 127.0.0.1:$REDIS_PORT instead) and
// forks the two pods before any thread exists; then it starts the loopback mock
// provider (tests/support/mock_provider.hpp) and hands its address to both.
// The provider is down: every request answers 503. Pod A calls it as route
// "primary-a" and pod B as "primary-b", so the mock counts each pod's calls.
// Pod A sends requests until its breaker on "primary" opens (3 failures in a
// row, open 30 s); its store writes the opening to Redis and publishes it; pod
// B's store applies it at once; then pod B sends a few requests, all answered
// by "canned", with "primary" skipped (breaker_open). Exits non-zero if pod B
// ever called primary-b, or if anything else in the story did not happen; 77
// (CTest: skipped) when no redis-server is installed and REDIS_PORT is not set.
//   example-07-shared-breaker [--quick]
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <failover/failover.hpp>
#include <failover/stores/redis.hpp>

#include "support/mock_provider.hpp"

extern char** environ;

using namespace failover;
using namespace std::chrono_literals;

namespace {

constexpr int kSkipped = 77;  // CTest's SKIP_RETURN_CODE for this example

std::int64_t wall_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// ---- a redis-server of our own ----------------------------------------------------------------

bool redis_ping(int port) {
    redisContext* c = redisConnectWithTimeout("127.0.0.1", port, timeval{0, 200000});
    bool ok = false;
    if (c && !c->err) {
        auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
        ok = r && r->type == REDIS_REPLY_STATUS && std::strcmp(r->str, "PONG") == 0;
        if (r) freeReplyObject(r);
    }
    if (c) redisFree(c);
    return ok;
}

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

// redis-server --port P --bind 127.0.0.1 --save "" --appendonly no, its log to /dev/null;
// stopped by the process that started it (SIGTERM) when this goes away.
class RedisServer {
public:
    /// False when redis-server cannot be run at all (not installed).
    bool start() {
        for (int tries = 0; tries < 3; ++tries) {  // another process may take the port first
            port_ = free_loopback_port();
            std::vector<std::string> args{"redis-server", "--port",    std::to_string(port_), "--bind",
                                          "127.0.0.1",    "--save",    "",                    "--appendonly",
                                          "no",           "--logfile", "/dev/null"};
            std::vector<char*> argv;
            for (auto& s : args) argv.push_back(s.data());
            argv.push_back(nullptr);
            posix_spawn_file_actions_t fa;
            posix_spawn_file_actions_init(&fa);
            posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
            pid_t pid = 0;
            const int rc = ::posix_spawnp(&pid, "redis-server", &fa, nullptr, argv.data(), environ);
            posix_spawn_file_actions_destroy(&fa);
            if (rc != 0) return false;
            const auto until = std::chrono::steady_clock::now() + 10s;
            while (std::chrono::steady_clock::now() < until) {
                if (redis_ping(port_)) {
                    pid_ = pid;
                    owner_ = ::getpid();
                    return true;
                }
                if (::waitpid(pid, nullptr, WNOHANG) == pid) break;  // it exited: try another port
                std::this_thread::sleep_for(5ms);
            }
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
        port_ = -1;
        return true;  // it ran, but never answered: port() says so
    }
    ~RedisServer() {
        if (pid_ <= 0 || ::getpid() != owner_) return;  // a forked pod never stops it
        ::kill(pid_, SIGTERM);
        ::waitpid(pid_, nullptr, 0);
    }
    int port() const noexcept { return port_; }

private:
    int port_ = -1;
    pid_t pid_ = -1;
    pid_t owner_ = -1;
};

// ---- the line protocol between the processes ----------------------------------------------

struct Channel {
    int in = -1, out = -1;
    void send(const std::string& line) const {
        const std::string s = line + "\n";
        [[maybe_unused]] auto n = ::write(out, s.data(), s.size());
    }
    /// The next line; nullopt when the other side went away.
    std::optional<std::string> receive() const {
        std::string line;
        char c = 0;
        for (;;) {
            const ssize_t n = ::read(in, &c, 1);
            if (n <= 0) return std::nullopt;
            if (c == '\n') return line;
            line += c;
        }
    }
};

// ---- the pods -------------------------------------------------------------------------------

RouteOptions primary_options() {
    RouteOptions o;
    o.max_attempts = 1;                    // no retry on the route: fail over at once
    o.breaker.consecutive_failures = 3;    // three failures in a row open the breaker...
    o.breaker.open_base = 30s;             // ...for 30 s (+-20 % jitter)
    o.attempt_timeout = 2s;
    return o;
}

std::shared_ptr<RedisStore> make_store(int port, const std::string& prefix, std::shared_ptr<MetricsSink> sink) {
    return std::make_shared<RedisStore>(RedisOptions{.port = port, .prefix = prefix, .sink = std::move(sink)});
}

double ms(std::int64_t ns) { return static_cast<double>(ns) / 1e6; }

// Pod A: sends requests until its breaker on "primary" opens, tells the parent when, and
// stays up (as a pod would) until told to quit.
int pod_a(const Channel& parent, int redis_port, const std::string& prefix) {
    const auto url = parent.receive();
    if (!url) return 1;
    std::mutex mu;
    std::string opening;  // set by the router's BreakerEvent
    auto sink = std::make_shared<CallbackSink>([&](const Event& e) {
        if (auto* b = std::get_if<BreakerEvent>(&e); b && b->transition.to == BreakerState::open) {
            std::lock_guard lock(mu);
            char buf[160];
            std::snprintf(buf, sizeof buf, "breaker on %s: %s -> open for %.1f s", std::string(b->route).c_str(),
                          std::string(to_string(b->transition.from)).c_str(),
                          static_cast<double>(b->transition.open_for.count()) / 1000.0);
            opening = buf;
        }
    });
    auto store = make_store(redis_port, prefix, nullptr);
    RouterOptions o;
    o.state_store = store;
    auto http = std::make_shared<CurlTransport>();
    Router router{o,
                  Route{"primary", OpenAI{{.model = "gpt-4o", .api_key = "sk-demo", .base_url = *url + "/primary-a/v1"}},
                        http, primary_options()},
                  Route{"canned", StaticReply{"Busy right now; please try again in a minute."}}};
    router.add_sink(sink);
    if (!store->wait_connected(2s)) {
        parent.send("error pod A could not reach Redis on 127.0.0.1:" + std::to_string(redis_port));
        return 1;
    }
    parent.send("ready");
    if (parent.receive() != "go") return 1;

    for (int i = 1; i <= 10; ++i) {
        auto r = router.route_with_fallback(ChatRequest{.messages = {user("Summarise ticket #" + std::to_string(i))}});
        std::string line = "pod A    | request " + std::to_string(i) + ": ";
        if (r) {
            for (const auto& a : r->attempts)
                if (!a.ok)
                    line += a.route + " failed (HTTP " + std::to_string(a.status) + ", " +
                            std::string(to_string(a.reason)) + "); ";
            line += "answered by " + r->route;
        } else {
            line += "failed: " + r.error().message;
        }
        std::lock_guard lock(mu);
        std::printf("%s\n", line.c_str());
        if (!opening.empty()) {
            std::printf("pod A    | %s; its RedisStore writes the opening to Redis and publishes it\n", opening.c_str());
            break;
        }
    }
    if (opening.empty()) {
        parent.send("error pod A's breaker never opened");
        return 1;
    }
    // When it opened, as wall-clock time: the breaker knows to the nanosecond (open_until minus
    // the open time), while the router's event comes a little later, after the attempt's
    // bookkeeping; by then the store may have published it already.
    const auto& breaker = router.route<0>().breaker();
    const auto since = std::chrono::steady_clock::now() - (breaker.open_until() - breaker.last_open_duration());
    const std::int64_t opened_ns = wall_ns() - std::chrono::duration_cast<std::chrono::nanoseconds>(since).count();
    parent.send("opened " + std::to_string(opened_ns));
    parent.receive();  // "quit", or the parent went away
    return 0;
}

// Pod B: waits until it hears of the opening, then sends requests that must all be answered
// by "canned" with "primary" skipped.
int pod_b(const Channel& parent, int redis_port, const std::string& prefix, bool quick) {
    const auto url = parent.receive();
    if (!url) return 1;
    std::mutex mu;
    std::condition_variable cv;
    std::int64_t heard_ns = 0;
    std::string heard;
    bool store_event = false;        // the store's StoreEvent{"redis", "adopted_breaker", "primary"}
    std::vector<std::string> skips;  // the current request's SkipEvents
    auto sink = std::make_shared<CallbackSink>([&](const Event& e) {
        std::lock_guard lock(mu);
        if (auto* b = std::get_if<BreakerEvent>(&e); b && b->transition.to == BreakerState::open && !heard_ns) {
            heard_ns = wall_ns();
            char buf[160];
            std::snprintf(buf, sizeof buf, "breaker on %s: %s -> open for %.1f s", std::string(b->route).c_str(),
                          std::string(to_string(b->transition.from)).c_str(),
                          static_cast<double>(b->transition.open_for.count()) / 1000.0);
            heard = buf;
            cv.notify_all();
        } else if (auto* s = std::get_if<StoreEvent>(&e); s && s->kind == "adopted_breaker" && s->route == "primary") {
            store_event = true;
            cv.notify_all();
        } else if (auto* k = std::get_if<SkipEvent>(&e)) {
            skips.push_back(std::string(k->route) + " skipped (" + std::string(to_string(k->reason)) + ")");
        }
    });
    auto store = make_store(redis_port, prefix, sink);  // adopted transitions go to the store's sink
    RouterOptions o;
    o.state_store = store;
    auto http = std::make_shared<CurlTransport>();
    Router router{o,
                  Route{"primary", OpenAI{{.model = "gpt-4o", .api_key = "sk-demo", .base_url = *url + "/primary-b/v1"}},
                        http, primary_options()},
                  Route{"canned", StaticReply{"Busy right now; please try again in a minute."}}};
    router.add_sink(sink);  // the router's own events (skips)
    if (!store->wait_connected(2s)) {
        parent.send("error pod B could not reach Redis on 127.0.0.1:" + std::to_string(redis_port));
        return 1;
    }
    std::printf("pod B    | same chain, same Redis and prefix, its own process; waiting (no requests yet)\n");
    parent.send("ready");

    const auto go = parent.receive();  // "go <A's opening, ns>"
    if (!go || go->rfind("go ", 0) != 0) return 1;
    const std::int64_t opened_ns = std::strtoll(go->c_str() + 3, nullptr, 10);
    std::unique_lock lock(mu);
    if (!cv.wait_for(lock, 5s, [&] { return heard_ns != 0 && store_event; })) {
        lock.unlock();
        std::printf("pod B    | never heard of the opening within 5 s\n");
        parent.send("done 0 0");
        return 1;
    }
    std::printf("pod B    | %s, adopted from Redis %.2f ms after pod A opened it\n"
                "         | (its store's sink got the BreakerEvent and StoreEvent{\"redis\", \"adopted_breaker\", \"primary\"};\n"
                "         | a sibling adds up to open_jitter of the time left, so pod A's recovery probe comes first)\n",
                heard.c_str(), ms(heard_ns - opened_ns));
    lock.unlock();

    std::printf("\nStep 3: pod B sends requests\n");
    const int n = quick ? 3 : 5;
    int good = 0;
    for (int i = 1; i <= n; ++i) {
        {
            std::lock_guard g(mu);
            skips.clear();
        }
        auto r = router.route_with_fallback(ChatRequest{.messages = {user("Summarise ticket #" + std::to_string(100 + i))}});
        std::lock_guard g(mu);
        std::string line = "pod B    | request " + std::to_string(i) + ": ";
        bool ok = false;
        if (r) {
            line += "answered by " + r->route + "; ";
            for (const auto& s : skips) line += s + "; ";
            line += "attempts:";
            for (const auto& a : r->attempts)
                line += " " + a.route + " #" + std::to_string(a.number) + (a.ok ? " ok" : " failed");
            const bool skipped = skips.size() == 1 && skips[0] == "primary skipped (breaker_open)";
            ok = r->route == "canned" && r->attempts.size() == 1 && r->attempts[0].route == "canned" && skipped;
        } else {
            line += "failed: " + r.error().message;
        }
        std::printf("%s\n", line.c_str());
        if (ok) ++good;
        if (!quick && i < n) std::this_thread::sleep_for(100ms);
    }
    parent.send("done " + std::to_string(heard_ns) + " " + std::to_string(good == n ? 1 : 0));
    return good == n ? 0 : 1;
}

// Runs a pod in a forked child; never returns in the child.
pid_t spawn_pod(Channel& parent_side, const std::function<int(const Channel&)>& body) {
    int down[2], up[2];
    if (::pipe(down) != 0 || ::pipe(up) != 0) throw std::runtime_error("pipe() failed");
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork() failed");
    if (pid == 0) {
        ::close(down[1]);
        ::close(up[0]);
        int rc = 1;
        try {
            rc = body(Channel{down[0], up[1]});
        } catch (const std::exception& e) {
            std::fprintf(stderr, "pod: %s\n", e.what());
        }
        std::fflush(nullptr);
        ::_exit(rc);  // never the parent's destructors (the Redis server is the parent's)
    }
    ::close(down[0]);
    ::close(up[1]);
    parent_side = Channel{up[0], down[1]};
    return pid;
}

std::string random_prefix() {
    std::random_device rd;
    char buf[40];
    std::snprintf(buf, sizeof buf, "failover-demo-%08x", rd());
    return buf;
}

int run(bool quick) {
    // 1. Redis: ours, or the one REDIS_PORT names.
    RedisServer server;
    int port = 0;
    std::string redis_line;
    if (const char* p = std::getenv("REDIS_PORT"); p && *p) {
        port = std::atoi(p);
        redis_line = "using the Redis at 127.0.0.1:" + std::to_string(port) + " (REDIS_PORT)";
    } else {
        if (!server.start()) {
            std::printf("redis-server is not installed (Debian: apt-get install redis-server) and REDIS_PORT is not "
                        "set: skipped\n");
            return kSkipped;
        }
        if (server.port() <= 0) {
            std::printf("redis-server did not start on a loopback port\n");
            return 1;
        }
        port = server.port();
        redis_line = "started redis-server on 127.0.0.1:" + std::to_string(port) + " (no persistence)";
    }
    const std::string prefix = random_prefix();

    // 2. The pods, forked while this process has no thread but its own (RedisStore,
    //    CurlTransport and the mock all start threads).
    std::printf("Shared circuit breaker: two instances of one service (\"pod A\" and \"pod B\", two processes)\n"
                "share route state through Redis. The provider behind \"primary\" is down.\n\n");
    std::printf("redis    | %s; key prefix %s\n", redis_line.c_str(), prefix.c_str());
    Channel a, b;
    const pid_t pid_a = spawn_pod(a, [&](const Channel& c) { return pod_a(c, port, prefix); });
    const pid_t pid_b = spawn_pod(b, [&](const Channel& c) { return pod_b(c, port, prefix, quick); });
    auto finish = [&](int rc) {
        ::close(a.out);  // the pods read EOF and end
        ::close(b.out);
        int sa = 0, sb = 0;
        ::waitpid(pid_a, &sa, 0);
        ::waitpid(pid_b, &sb, 0);
        ::close(a.in);
        ::close(b.in);
        return rc;
    };

    // 3. The provider: a loopback mock; every call answers 503, counted per pod.
    failover_mock::MockProvider mock;
    mock.route("primary-a").otherwise(failover_mock::Fault::status(503));
    mock.route("primary-b").otherwise(failover_mock::Fault::status(503));
    std::printf("provider | loopback mock at %s: every request answers HTTP 503\n"
                "         | pod A calls it as route primary-a, pod B as primary-b, so each pod's calls are counted\n",
                mock.base_url().c_str());
    std::printf("pods     | chain: primary (OpenAI wire) -> canned (StaticReply); on primary: max_attempts 1,\n"
                "         | breaker opens after 3 failures in a row, for 30 s; RouterOptions::state_store = a RedisStore\n");
    std::fflush(stdout);
    a.send(mock.base_url());
    b.send(mock.base_url());
    for (const Channel* c : {&a, &b}) {
        const auto r = c->receive();
        if (r != "ready") {
            std::printf("%s\n", r ? r->c_str() : "a pod exited before it was ready");
            return finish(1);
        }
    }

    // 4. Pod A meets the outage; its breaker opens.
    std::printf("\nStep 1: pod A sends requests until its breaker on primary opens\n");
    std::fflush(stdout);
    a.send("go");
    const auto opened = a.receive();
    if (!opened || opened->rfind("opened ", 0) != 0) {
        std::printf("%s\n", opened ? opened->c_str() : "pod A exited");
        return finish(1);
    }

    // 5. Pod B already heard; it says when, then routes.
    std::printf("\nStep 2: pod B hears of the opening from Redis, without calling primary\n");
    std::fflush(stdout);
    b.send("go " + opened->substr(7));
    const auto done = b.receive();
    std::int64_t heard_ns = 0;
    bool b_ok = false;
    if (done && done->rfind("done ", 0) == 0) {
        std::istringstream in(done->substr(5));
        int flag = 0;
        in >> heard_ns >> flag;
        b_ok = flag == 1;
    }
    a.send("quit");

    const std::size_t calls_a = mock.route("primary-a").requests(), calls_b = mock.route("primary-b").requests();
    const std::int64_t opened_ns = std::strtoll(opened->c_str() + 7, nullptr, 10);
    std::printf("\nSummary\n");
    std::printf("  provider calls from pod A (primary-a): %zu (the failures that opened its breaker)\n", calls_a);
    std::printf("  provider calls from pod B (primary-b): %zu%s\n", calls_b,
                calls_b == 0 ? " (pod B never called the dead provider)" : " <- pod B called the dead provider");
    if (heard_ns > 0)
        std::printf("  from pod A's opening to pod B applying it: %.2f ms (Redis pub/sub, loopback)\n",
                    ms(heard_ns - opened_ns));
    const bool ok = calls_b == 0 && calls_a == 3 && heard_ns > 0 && b_ok;
    std::printf("  %s\n", ok ? "ok" : "FAILED: see above");
    return finish(ok ? 0 : 1);
}

}  // namespace

int main(int argc, char** argv) {
    bool quick = false;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--quick") == 0) quick = true;
        else {
            std::fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
            return 2;
        }
    }
    std::setvbuf(stdout, nullptr, _IOLBF, 0);  // three processes share stdout: whole lines, in order
    ::signal(SIGPIPE, SIG_IGN);                // a pod that went away is a read of EOF, not a signal
    try {
        return run(quick);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "example: %s\n", e.what());
        return 1;
    }
}
