// SPDX-License-Identifier: MIT
// Metrics for Prometheus. A PrometheusSink (and a DriftMonitor feeding it)
// watches a chain of loopback mock providers whose primary has a short outage;
// the program then serves the sink's scrape() as /metrics on 127.0.0.1 with a
// minimal blocking POSIX socket loop, which is all a scrape endpoint needs.
// Point Prometheus at it (scrape_configs: targets ['127.0.0.1:<port>']) and
// load examples/prometheus-alerts.yml for the alert rules.
//   example-03-prometheus [--port N] [--quick]
// --port 0 (the default) takes an ephemeral port; the port is printed. Without
// --quick it keeps a trickle of traffic going and serves until Ctrl-C. With
// --quick it fetches its own /metrics once over HTTP, checks the body and exits
// 0 (1 if the exposition is not what the requests sent imply).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include <failover/drift.hpp>
#include <failover/failover.hpp>
#include <failover/sinks/prometheus.hpp>

#include "support/mock_provider.hpp"

using namespace failover;
using namespace std::chrono_literals;
using failover_mock::Fault;

namespace {

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

/// A listening socket on 127.0.0.1.
class MetricsServer {
public:
    explicit MetricsServer(std::uint16_t port) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
        int one = 1;
        ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = htons(port);
        socklen_t len = sizeof addr;
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd_, 16) != 0 ||
            ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
            const std::string why = std::strerror(errno);
            ::close(fd_);
            throw std::runtime_error("bind 127.0.0.1:" + std::to_string(port) + ": " + why);
        }
        port_ = ntohs(addr.sin_port);
    }
    ~MetricsServer() { ::close(fd_); }
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    std::uint16_t port() const { return port_; }

    /// Waits up to `wait` for a client and answers one request. False if none came.
    bool serve_one(const PrometheusSink& prom, std::chrono::milliseconds wait) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) return false;
        const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) return false;
        timeval tv{5, 0};  // a client that never finishes its request cannot hold us
        ::setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ::setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        std::string req;
        char buf[2048];
        while (req.find("\r\n\r\n") == std::string::npos && req.size() < 16384) {
            const ssize_t n = ::recv(c, buf, sizeof buf, 0);
            if (n <= 0) break;
            req.append(buf, static_cast<std::size_t>(n));
        }
        std::istringstream line(req.substr(0, req.find("\r\n")));
        std::string method, target;
        line >> method >> target;
        const std::string path = target.substr(0, target.find('?'));
        std::string status = "200 OK", type(PrometheusSink::content_type), body;
        if (method != "GET" && method != "HEAD") {
            status = "405 Method Not Allowed";
            type = "text/plain";
            body = "only GET\n";
        } else if (path == "/metrics") {
            body = prom.scrape();
        } else {
            status = "404 Not Found";
            type = "text/plain";
            body = "metrics are at /metrics\n";
        }
        std::string out = "HTTP/1.1 " + status + "\r\nContent-Type: " + type +
                          "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
        if (method != "HEAD") out += body;
        for (std::size_t sent = 0; sent < out.size();) {
            const ssize_t n = ::send(c, out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
            if (n <= 0) break;
            sent += static_cast<std::size_t>(n);
        }
        ::close(c);
        return true;
    }

private:
    int fd_ = -1;
    std::uint16_t port_ = 0;
};

// Sum of every sample of one metric in an exposition.
double total(const std::string& text, const std::string& metric) {
    double sum = 0;
    std::istringstream in(text);
    for (std::string l; std::getline(in, l);)
        if (l.rfind(metric + "{", 0) == 0 || l.rfind(metric + " ", 0) == 0)
            sum += std::strtod(l.c_str() + l.rfind(' ') + 1, nullptr);
    return sum;
}

int run(bool quick, std::uint16_t port) {
    failover_mock::MockProvider mock;
    auto& primary = mock.route("primary");
    mock.route("secondary").otherwise(Fault::ok("answer from the secondary"));

    RouteOptions fast;
    fast.backoff = Backoff{5ms, 20ms};
    fast.breaker.open_base = 200ms;
    auto http = std::make_shared<CurlTransport>();
    Router router{
        Route{"primary", OpenAI{{.model = "gpt-4o", .api_key = "sk-demo", .base_url = mock.url("primary") + "/v1"}},
              http, fast},
        Route{"secondary", Anthropic{{.model = "claude-sonnet-4-5", .api_key = "demo", .base_url = mock.url("secondary")}},
              http, fast},
        Route{"canned", StaticReply{R"({"status":"busy"})"}},
    };

    // The sink, and a drift monitor whose alerts land in the same exposition.
    auto prom = std::make_shared<PrometheusSink>(PrometheusOptions{.routes = {"primary", "secondary", "canned"}});
    router.add_sink(prom);
    router.add_sink(std::make_shared<DriftMonitor>(prom, DriftOptions{.min_requests = 10}));

    // Some history: the primary answers, has a 503 burst, then recovers.
    const int n = 40;
    for (int i = 0; i < n; ++i) {
        if (i == 10) primary.then(Fault::status(503), 5);  // two requests retry and fall back; the breaker opens
        (void)router.route_with_fallback(
            ChatRequest{.messages = {user("ticket #" + std::to_string(i))}, .tenant = i % 2 ? "acme" : "globex"});
    }

    MetricsServer server(port);
    std::printf("%d requests routed; serving http://127.0.0.1:%u/metrics\n", n, static_cast<unsigned>(server.port()));
    std::fflush(stdout);

    if (quick) {
        std::thread t([&] { (void)server.serve_one(*prom, 10s); });
        HttpRequest get;
        get.method = "GET";
        get.url = "http://127.0.0.1:" + std::to_string(server.port()) + "/metrics";
        Result<HttpResponse> res = http->send(get, Deadline{.timeout = 5s, .connect_timeout = 2s});
        t.join();
        if (!res) {
            std::fprintf(stderr, "GET /metrics failed: %s\n", res.error().message.c_str());
            return 1;
        }
        const std::string* type = res->header("content-type");
        const double requests = total(res->body, "failover_requests_total");
        const double fallbacks = total(res->body, "failover_fallbacks_total");
        std::printf("GET /metrics: HTTP %d, %zu bytes, failover_requests_total %g, failover_fallbacks_total %g\n",
                    res->status, res->body.size(), requests, fallbacks);
        const bool ok = res->status == 200 && type && type->rfind("text/plain; version=0.0.4", 0) == 0 &&
                        requests == n && fallbacks > 0 &&
                        res->body.find("# TYPE failover_attempt_duration_seconds histogram") != std::string::npos &&
                        res->body.find("failover_breaker_transitions_total{route=\"primary\",to=\"open\"}") !=
                            std::string::npos;
        if (!ok) std::fprintf(stderr, "unexpected exposition:\n%s\n", res->body.c_str());
        return ok ? 0 : 1;
    }

    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    std::printf("Ctrl-C to stop. A request every 250 ms keeps the numbers moving.\n");
    std::fflush(stdout);
    std::thread traffic([&] {
        for (int i = n; !g_stop; ++i) {
            if (i % 40 == 0) primary.then(Fault::status(503), 5);
            (void)router.route_with_fallback(ChatRequest{.messages = {user("ticket #" + std::to_string(i))},
                                                         .tenant = i % 2 ? "acme" : "globex"});
            std::this_thread::sleep_for(250ms);
        }
    });
    while (!g_stop) (void)server.serve_one(*prom, 500ms);
    traffic.join();
    std::printf("\nstopped\n");
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    bool quick = false;
    long port = 0;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--quick") == 0) {
            quick = true;
        } else if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            char* end = nullptr;
            port = std::strtol(argv[++i], &end, 10);
            if (*end != '\0' || port < 0 || port > 65535) {
                std::fprintf(stderr, "--port: expected 0..65535, got '%s'\n", argv[i]);
                return 2;
            }
        } else {
            std::fprintf(stderr, "usage: %s [--port N] [--quick]\n", argv[0]);
            return 2;
        }
    }
    try {
        return run(quick, static_cast<std::uint16_t>(port));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
