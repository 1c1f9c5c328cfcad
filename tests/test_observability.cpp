// SPDX-License-Identifier: MIT
// Observability: PrometheusSink's exposition checked by the real promtool and
// parsed back against what the router reported, the label cardinality guard,
// StatsdSink's exact datagrams on a real UDP socket, DriftMonitor on a manual
// clock, and API keys hunted for in every output an operator sees.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "failover/drift.hpp"
#include "failover/sinks/prometheus.hpp"
#include "failover/sinks/statsd.hpp"
#include "support/catch.hpp"
#include "support/paths.hpp"
#include "support/fakes.hpp"
#include "support/mock_provider.hpp"

using namespace failover;
using namespace failover_test;
using namespace std::chrono_literals;
using failover_mock::Fault;

namespace {

// ---------------------------------------------------------------------------
// promtool

std::string find_promtool() {
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "";
    dirs += ":/usr/bin:/usr/local/bin";
    std::stringstream ss(dirs);
    for (std::string dir; std::getline(ss, dir, ':');) {
        if (dir.empty()) continue;
        const std::string candidate = dir + "/promtool";
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    return {};
}

// True when promtool can be used. Missing: a failure when the build requires
// it (FAILOVER_REQUIRE_PROMTOOL), else a warning and the caller skips.
bool have_promtool() {
    if (!find_promtool().empty()) return true;
#if defined(FAILOVER_REQUIRE_PROMTOOL)
    FAIL("promtool not found on PATH, and this build requires it (Debian package: prometheus)");
#else
    WARN("promtool not found on PATH (Debian package: prometheus): skipping the promtool check");
#endif
    return false;
}

std::filesystem::path temp_file(const std::string& suffix) {
    static std::atomic<int> n{0};
    return std::filesystem::temp_directory_path() /
           ("failover-obs-" + std::to_string(::getpid()) + "-" + std::to_string(n++) + suffix);
}

struct ToolRun {
    int rc = -1;
    std::string output;
};

// Runs promtool with `args`, stdin from `input` (when not empty); output is stdout+stderr.
ToolRun promtool(const std::string& args, const std::filesystem::path& input = {}) {
    std::string cmd = "'" + find_promtool() + "' " + args;
    if (!input.empty()) cmd += " < '" + input.string() + "'";
    cmd += " 2>&1";
    ToolRun run;
    FILE* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    char buf[4096];
    for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) run.output.append(buf, n);
    const int status = ::pclose(p);
    run.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return run;
}

// `promtool check metrics` on an exposition: 0 and silent when clean (lint included).
ToolRun check_metrics(const std::string& exposition) {
    const auto file = temp_file(".prom");
    {
        std::ofstream out(file, std::ios::binary);
        out << exposition;
    }
    ToolRun run = promtool("check metrics", file);
    std::filesystem::remove(file);
    return run;
}

// ---------------------------------------------------------------------------
// A strict reader of the text format, to compare the exposition with what happened.

using Labels = std::map<std::string, std::string>;

struct Sample {
    std::string name;
    Labels labels;
    double value = 0;
};

struct Exposition {
    std::vector<Sample> samples;
    std::map<std::string, std::string> types;
    std::map<std::string, std::string> helps;

    // Sum of the samples named `name` whose labels include every pair of `match`.
    double sum(const std::string& name, const Labels& match = {}) const {
        double total = 0;
        for (const auto& s : samples) {
            if (s.name != name) continue;
            bool ok = true;
            for (const auto& [k, v] : match) {
                auto it = s.labels.find(k);
                if (it == s.labels.end() || it->second != v) ok = false;
            }
            if (ok) total += s.value;
        }
        return total;
    }
    // The samples named `name`, keyed by the values of `keys` (in that order).
    std::map<std::vector<std::string>, double> by(const std::string& name, const std::vector<std::string>& keys) const {
        std::map<std::vector<std::string>, double> out;
        for (const auto& s : samples) {
            if (s.name != name) continue;
            std::vector<std::string> k;
            for (const auto& key : keys) k.push_back(s.labels.count(key) ? s.labels.at(key) : std::string("<missing>"));
            out[k] += s.value;
        }
        return out;
    }
    std::size_t count(const std::string& name) const {
        std::size_t n = 0;
        for (const auto& s : samples) n += s.name == name;
        return n;
    }
};

std::string unescape_label(const std::string& line, std::size_t& i) {
    std::string v;
    for (; i < line.size() && line[i] != '"'; ++i) {
        if (line[i] != '\\') {
            v += line[i];
            continue;
        }
        REQUIRE(i + 1 < line.size());
        const char c = line[++i];
        if (c == 'n') v += '\n';
        else if (c == '\\' || c == '"') v += c;
        else FAIL("bad escape \\" << c << " in: " << line);
    }
    REQUIRE(i < line.size());
    ++i;  // closing quote
    return v;
}

Exposition parse(const std::string& text) {
    Exposition e;
    std::set<std::pair<std::string, Labels>> seen;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        REQUIRE_FALSE(line.empty());
        if (line.rfind("# HELP ", 0) == 0) {
            const auto sp = line.find(' ', 7);
            REQUIRE(sp != std::string::npos);
            e.helps[line.substr(7, sp - 7)] = line.substr(sp + 1);
            continue;
        }
        if (line.rfind("# TYPE ", 0) == 0) {
            const auto sp = line.find(' ', 7);
            REQUIRE(sp != std::string::npos);
            e.types[line.substr(7, sp - 7)] = line.substr(sp + 1);
            continue;
        }
        REQUIRE(line[0] != '#');
        Sample s;
        std::size_t i = 0;
        while (i < line.size() && line[i] != '{' && line[i] != ' ') s.name += line[i++];
        REQUIRE(i < line.size());
        if (line[i] == '{') {
            ++i;
            while (line[i] != '}') {
                std::string key;
                while (i < line.size() && line[i] != '=') key += line[i++];
                REQUIRE(line.substr(i, 2) == "=\"");
                i += 2;
                INFO(line);
                REQUIRE(s.labels.emplace(key, unescape_label(line, i)).second);
                if (line[i] == ',') ++i;
                REQUIRE(i < line.size());
            }
            ++i;
        }
        REQUIRE(line[i] == ' ');
        const std::string v = line.substr(i + 1);
        if (v == "+Inf") s.value = INFINITY;
        else {
            char* end = nullptr;
            s.value = std::strtod(v.c_str(), &end);
            REQUIRE(*end == '\0');
        }
        // Every sample belongs to a declared family; no series appears twice.
        std::string family = s.name;
        for (const char* suffix : {"_bucket", "_sum", "_count"})
            if (!e.types.count(family) && family.size() > std::strlen(suffix) && family.ends_with(suffix))
                family = family.substr(0, family.size() - std::strlen(suffix));
        INFO(line);
        REQUIRE(e.types.count(family) == 1);
        REQUIRE(e.helps.count(family) == 1);
        REQUIRE(seen.emplace(s.name, s.labels).second);
        e.samples.push_back(std::move(s));
    }
    return e;
}

// ---------------------------------------------------------------------------
// Router fixtures

struct Env {
    std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
    RouterOptions options() const {
        RouterOptions o;
        o.clock = clock;
        o.sleeper = clock;
        o.seed = 7;
        return o;
    }
};

ChatRequest ask(std::string tenant) {
    ChatRequest r;
    r.messages = {user("hello")};
    r.tenant = std::move(tenant);
    return r;
}

// An owned copy of a DriftEvent.
struct Drift {
    std::string tenant;
    bool alert = false;
    double share = 0;
    double threshold = 0;
    std::chrono::seconds window{};
    std::uint64_t requests = 0;
};

std::shared_ptr<CallbackSink> drift_recorder(std::vector<Drift>& out) {
    return std::make_shared<CallbackSink>([&out](const Event& e) {
        if (const auto* d = std::get_if<DriftEvent>(&e))
            out.push_back({std::string(d->tenant), d->alert, d->share, d->threshold, d->window, d->requests});
    });
}

// ---------------------------------------------------------------------------
// A UDP socket on loopback that receives what a StatsdSink sends.

class UdpReceiver {
public:
    UdpReceiver() {
        fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof addr;
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
        port_ = ntohs(addr.sin_port);
        timeval tv{2, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    ~UdpReceiver() { ::close(fd_); }
    UdpReceiver(const UdpReceiver&) = delete;
    UdpReceiver& operator=(const UdpReceiver&) = delete;

    std::uint16_t port() const { return port_; }
    /// The next datagram (waits up to 2 s; "" on timeout).
    std::string next() {
        char buf[65536];
        const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        return n < 0 ? std::string() : std::string(buf, static_cast<std::size_t>(n));
    }
    /// Every datagram already queued (loopback delivers during send()).
    std::vector<std::string> drain() {
        std::vector<std::string> out;
        char buf[65536];
        for (ssize_t n; (n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT)) >= 0;)
            out.emplace_back(buf, static_cast<std::size_t>(n));
        return out;
    }

private:
    int fd_ = -1;
    std::uint16_t port_ = 0;
};

StatsdOptions statsd_to(const UdpReceiver& rx, bool tags = true) {
    StatsdOptions o;
    o.port = rx.port();
    o.prefix = "app.";
    o.tags = tags;
    return o;
}

}  // namespace

// ===========================================================================
// PrometheusSink

TEST_CASE("Prometheus: a mixed run through a Router is exposed exactly, and promtool accepts it") {
    Env env;
    auto primary = std::make_shared<ScriptedTransport>(env.clock.get(), 200ms);
    auto secondary = std::make_shared<ScriptedTransport>(env.clock.get(), 800ms);
    RouteOptions po;
    po.breaker.open_jitter = 0.0;  // opens for exactly 30 s
    Router router{env.options(), Route{"primary", FakeAdapter{}, primary, po},
                  Route{"secondary", FakeAdapter{}, secondary}};

    auto rec = std::make_shared<RecordingSink>();
    PrometheusOptions popts;
    popts.routes = {"primary", "secondary"};
    auto prom = std::make_shared<PrometheusSink>(popts);
    std::vector<Drift> drifts;
    DriftOptions dopts;
    dopts.clock = env.clock;
    dopts.min_requests = 5;
    auto drift = std::make_shared<DriftMonitor>(
        std::make_shared<MultiSink>(std::vector<std::shared_ptr<MetricsSink>>{prom, drift_recorder(drifts)}), dopts);
    router.add_sink(rec);
    router.add_sink(prom);
    router.add_sink(drift);

    // Before any traffic every declared route's breaker reads closed.
    const Exposition before = parse(prom->scrape());
    CHECK(before.by("failover_breaker_state", {"route"}) ==
          std::map<std::vector<std::string>, double>{{{"primary"}, 0.0}, {{"secondary"}, 0.0}});

    const std::vector<std::string> tenants{"acme", "globex", "we\"ird\\ten\nant"};
    int sent = 0;
    auto send = [&](int n) {
        for (int i = 0; i < n; ++i, ++sent) (void)router.route_with_fallback(ask(tenants[sent % tenants.size()]));
    };
    send(10);                                                         // the primary answers
    for (int i = 0; i < 3; ++i) primary->then(http(500)).then(ok_body("after a retry"));
    send(3);                                                          // a retry each, then the primary answers
    primary->otherwise(http(503));
    send(6);                                                          // outage: retries, fallbacks, the breaker opens, skips
    secondary->then(http(200, R"({"refusal":"no"})"));
    send(1);                                                          // a policy block on the secondary
    secondary->then(http(401)).then(http(401));
    send(2);                                                          // primary skipped, secondary 401: exhausted
    env.clock->advance(31s);
    primary->otherwise(ok_body("recovered"));
    send(5);                                                          // half-open probe succeeds, breaker closes
    REQUIRE(sent == 27);

    const std::string text = prom->scrape();
    INFO(text);
    CHECK(text == prom->scrape());  // deterministic

    if (have_promtool()) {
        const ToolRun run = check_metrics(text);
        INFO(run.output);
        CHECK(run.rc == 0);
        CHECK(run.output.empty());
    }

    const Exposition x = parse(text);
    // Every request sent is counted once, under its outcome.
    CHECK(x.sum("failover_requests_total") == sent);
    CHECK(x.sum("failover_requests_total", {{"outcome", "success"}}) == static_cast<double>(rec->count("success")));
    CHECK(x.sum("failover_requests_total", {{"outcome", "exhausted"}, {"route", "none"}}) == 2);
    CHECK(x.sum("failover_requests_total", {{"outcome", "policy"}, {"route", "secondary"}}) == 1);
    CHECK(rec->count("success") == 24);
    std::map<std::vector<std::string>, double> served;
    for (const auto& s : rec->of("success")) served[{s.route, "success"}] += 1;
    served[{"none", "exhausted"}] = 2;
    served[{"secondary", "policy"}] = 1;
    CHECK(x.by("failover_requests_total", {"route", "outcome"}) == served);

    // Fallbacks, skips, retries, attempts and transitions equal what the router reported.
    std::map<std::vector<std::string>, double> fallbacks, skips, retries, attempts, transitions, attempts_per_route;
    for (const auto& f : rec->of("fallback")) fallbacks[{f.from, f.to, std::string(to_string(f.reason)), f.tenant}] += 1;
    for (const auto& s : rec->of("skip")) skips[{s.route, std::string(to_string(s.reason))}] += 1;
    for (const auto& r : rec->of("retry")) retries[{r.route, std::string(to_string(r.reason))}] += 1;
    for (const auto& a : rec->of("attempt")) {
        attempts[{a.route, a.ok ? std::string("ok") : std::string(to_string(a.reason))}] += 1;
        attempts_per_route[{a.route}] += 1;
    }
    for (const auto& b : rec->of("breaker")) transitions[{b.route, std::string(to_string(b.transition.to))}] += 1;
    CHECK(fallbacks.size() >= 3);  // server_error and breaker_open from the primary, for several tenants
    CHECK(x.by("failover_fallbacks_total", {"from", "to", "reason", "tenant"}) == fallbacks);
    CHECK(x.sum("failover_fallbacks_total") == static_cast<double>(rec->count("fallback")));
    CHECK_FALSE(skips.empty());
    CHECK(x.by("failover_skips_total", {"route", "reason"}) == skips);
    CHECK_FALSE(retries.empty());
    CHECK(x.by("failover_retries_total", {"route", "reason"}) == retries);
    CHECK(x.by("failover_attempts_total", {"route", "reason"}) == attempts);
    CHECK(x.by("failover_attempt_duration_seconds_count", {"route"}) == attempts_per_route);
    CHECK(x.sum("failover_attempt_duration_seconds_bucket", {{"route", "primary"}, {"le", "+Inf"}}) ==
          attempts_per_route[{"primary"}]);
    // Each primary attempt took 200 ms of the manual clock.
    CHECK(x.sum("failover_attempt_duration_seconds_sum", {{"route", "primary"}}) ==
          Approx(0.2 * attempts_per_route[{"primary"}]));
    CHECK(x.sum("failover_attempt_duration_seconds_bucket", {{"route", "primary"}, {"le", "0.1"}}) == 0);
    CHECK(x.sum("failover_attempt_duration_seconds_bucket", {{"route", "primary"}, {"le", "0.25"}}) ==
          attempts_per_route[{"primary"}]);
    CHECK(transitions.count({"primary", "open"}) == 1);
    CHECK(transitions.count({"primary", "closed"}) == 1);
    CHECK(x.by("failover_breaker_transitions_total", {"route", "to"}) == transitions);
    CHECK(x.sum("failover_breaker_state", {{"route", "primary"}}) == 0);  // closed again
    CHECK(x.sum("failover_tokens_total", {{"direction", "input"}}) == 10.0 * static_cast<double>(rec->count("success")));
    CHECK(x.sum("failover_request_duration_seconds_count") == sent - 1);  // policy blocks carry no duration

    // The tenant with a quote, a backslash and a newline survives escaping.
    CHECK(text.find(R"(tenant="we\"ird\\ten\nant")") != std::string::npos);
    CHECK(x.sum("failover_fallbacks_total", {{"tenant", "we\"ird\\ten\nant"}}) > 0);

    // The DriftMonitor saw the outage and its alert reached the same exposition.
    REQUIRE_FALSE(drifts.empty());
    CHECK(drifts.front().alert);
    CHECK(drifts.front().tenant.empty());
    std::size_t overall_alerts = 0;
    for (const auto& d : drifts) overall_alerts += d.alert && d.tenant.empty();
    CHECK(x.sum("failover_drift_alerts_total", {{"tenant", ""}}) == static_cast<double>(overall_alerts));
}

TEST_CASE("Prometheus: streams expose time to first token and how they ended, and promtool accepts it") {
    Env env;
    auto t = std::make_shared<ScriptedTransport>();
    t->then_stream([clock = env.clock](const HttpRequest&, Deadline, const StreamSpec& spec) -> Result<HttpResponse> {
         clock->advance(300ms);  // the first token takes 300 ms
         spec.on_data("t hello\n");
         spec.on_data("f\n");
         return HttpResponse{200, {}, {}};
     })
        .then_stream(ScriptedTransport::streamed({"t cut short\n"}, Failure::of(Reason::connection, "reset")));
    Router router{env.options(), Route{"primary", FakeStreamingAdapter{}, t}};
    auto prom = std::make_shared<PrometheusSink>();
    router.add_sink(prom);
    ChatRequest req;
    req.messages = {user("hi")};
    REQUIRE(router.stream(req, {}));
    REQUIRE_FALSE(router.stream(req, {}));
    const std::string text = prom->scrape();
    const Exposition e = parse(text);
    CHECK(e.sum("failover_first_token_seconds_count", {{"route", "primary"}}) == 2);
    CHECK(e.sum("failover_first_token_seconds_bucket", {{"route", "primary"}, {"le", "0.25"}}) == 1);
    CHECK(e.sum("failover_first_token_seconds_bucket", {{"route", "primary"}, {"le", "0.5"}}) == 2);
    CHECK(e.sum("failover_streams_total", {{"outcome", "complete"}, {"reason", "none"}}) == 1);
    CHECK(e.sum("failover_streams_total", {{"outcome", "failed_mid_stream"}, {"reason", "connection"}}) == 1);
    if (have_promtool()) {
        const ToolRun run = check_metrics(text);
        INFO(run.output);
        CHECK(run.rc == 0);
        CHECK(run.output.empty());
    }
}

TEST_CASE("Prometheus: health-check probes are counted by route, outcome and reason, and promtool accepts it") {
    PrometheusSink prom;
    prom.record(HealthCheckEvent{"primary", false, Reason::overloaded, 503, 20ms});
    prom.record(HealthCheckEvent{"primary", true, Reason::internal, 0, 15ms});
    prom.record(HealthCheckEvent{"primary", true, Reason::internal, 0, 15ms});
    const std::string text = prom.scrape();
    const Exposition e = parse(text);
    CHECK(e.sum("failover_health_checks_total", {{"route", "primary"}, {"outcome", "fail"}, {"reason", "overloaded"}}) == 1);
    CHECK(e.sum("failover_health_checks_total", {{"route", "primary"}, {"outcome", "pass"}, {"reason", "none"}}) == 2);
    if (have_promtool()) {
        const ToolRun run = check_metrics(text);
        INFO(run.output);
        CHECK(run.rc == 0);
        CHECK(run.output.empty());
    }
}

TEST_CASE("Prometheus: histogram buckets are cumulative, inclusive and end in +Inf") {
    PrometheusSink prom;
    for (auto d : {30ms, 50ms, 700ms, 200000ms}) {
        AttemptEvent a{};
        a.route = "r";
        a.ok = true;
        a.latency = d;
        prom.record(a);
    }
    const Exposition x = parse(prom.scrape());
    auto bucket = [&](const char* le) {
        return x.sum("failover_attempt_duration_seconds_bucket", {{"route", "r"}, {"le", le}});
    };
    CHECK(bucket("0.05") == 2);  // 50 ms is on the bound: le is inclusive
    CHECK(bucket("0.5") == 2);
    CHECK(bucket("1") == 3);
    CHECK(bucket("120") == 3);
    CHECK(bucket("+Inf") == 4);
    CHECK(x.sum("failover_attempt_duration_seconds_count") == 4);
    CHECK(x.sum("failover_attempt_duration_seconds_sum") == Approx(200.78));
    CHECK(x.count("failover_attempt_duration_seconds_bucket") == PrometheusOptions{}.duration_buckets.size() + 1);
}

TEST_CASE("Prometheus: cost and tokens come from answered attempts only") {
    PrometheusSink prom;
    AttemptEvent ok{};
    ok.route = "primary";
    ok.tenant = "acme";
    ok.ok = true;
    ok.usage = {1200, 300};
    ok.cost_usd = 0.0125;
    prom.record(ok);
    prom.record(ok);
    AttemptEvent failed = ok;
    failed.ok = false;
    failed.reason = Reason::server_error;
    prom.record(failed);
    const Exposition x = parse(prom.scrape());
    CHECK(x.sum("failover_cost_usd_total", {{"tenant", "acme"}, {"route", "primary"}}) == Approx(0.025));
    CHECK(x.sum("failover_tokens_total", {{"route", "primary"}, {"direction", "input"}}) == 2400);
    CHECK(x.sum("failover_tokens_total", {{"route", "primary"}, {"direction", "output"}}) == 600);
    CHECK(x.sum("failover_attempts_total", {{"reason", "server_error"}}) == 1);
    CHECK(x.sum("failover_attempts_total", {{"reason", "ok"}}) == 2);
}

TEST_CASE("Prometheus: the same events in any order give the same text") {
    std::vector<std::string> names{"b", "a", "c", "tenant-9", "tenant-10"};
    std::vector<Event> events;
    for (const auto& from : names)
        for (const auto& to : names) events.push_back(FallbackEvent{from, to, Reason::timeout, from});
    for (const auto& r : names) events.push_back(SkipEvent{r, Reason::breaker_open, {}});
    PrometheusSink forward, backward;
    for (const auto& e : events) forward.record(e);
    for (auto it = events.rbegin(); it != events.rend(); ++it) backward.record(*it);
    CHECK(forward.scrape() == backward.scrape());
    const std::string text = forward.scrape();
    CHECK(text.find("# TYPE failover_fallbacks_total counter\n") < text.find("# TYPE failover_skips_total counter\n"));
    CHECK(text.find(R"(failover_skips_total{route="a",reason="breaker_open"} 1)") <
          text.find(R"(failover_skips_total{route="b",reason="breaker_open"} 1)"));
}

TEST_CASE("Prometheus: label values with quotes, backslashes, newlines and bad UTF-8 stay valid") {
    PrometheusSink prom;
    const std::string nasty = "a\"b\\c\nd";
    prom.record(FallbackEvent{"primary", "secondary", Reason::timeout, nasty});
    prom.record(FallbackEvent{"primary", "secondary", Reason::timeout, "caf\xc3\xa9"});
    prom.record(FallbackEvent{"primary", "secondary", Reason::timeout, "bad\xff\xfe"});
    const std::string text = prom.scrape();
    INFO(text);
    CHECK(text.find(R"(tenant="a\"b\\c\nd")") != std::string::npos);
    const Exposition x = parse(text);
    CHECK(x.sum("failover_fallbacks_total", {{"tenant", nasty}}) == 1);
    CHECK(x.sum("failover_fallbacks_total", {{"tenant", "caf\xc3\xa9"}}) == 1);
    CHECK(x.sum("failover_fallbacks_total", {{"tenant", "bad??"}}) == 1);
    if (have_promtool()) {
        const ToolRun run = check_metrics(text);
        INFO(run.output);
        CHECK(run.rc == 0);
    }
}

TEST_CASE("Prometheus: a flood of tenants is capped, with an overflow bucket and nothing lost") {
    PrometheusOptions o;
    o.max_tenants = 5;
    PrometheusSink prom(o);
    for (int i = 0; i < 1000; ++i) {
        const std::string tenant = "tenant-" + std::to_string(i);
        AttemptEvent a{};
        a.route = "primary";
        a.tenant = tenant;
        a.ok = true;
        a.cost_usd = 0.5;
        prom.record(a);
        prom.record(FallbackEvent{"primary", "secondary", Reason::timeout, a.tenant});
    }
    const std::string text = prom.scrape();
    const Exposition x = parse(text);
    const auto cost = x.by("failover_cost_usd_total", {"tenant"});
    CHECK(cost.size() == 6);  // five tenants plus __overflow__
    CHECK(cost.at({"tenant-0"}) == 0.5);
    CHECK(cost.at({"__overflow__"}) == Approx(995 * 0.5));
    CHECK(x.sum("failover_cost_usd_total") == Approx(500.0));  // nothing lost
    CHECK(x.by("failover_fallbacks_total", {"tenant"}).size() == 6);
    CHECK(x.sum("failover_fallbacks_total") == 1000);
    CHECK(x.sum("failover_label_overflow_total", {{"label", "tenant"}}) == 2 * 995);
    CHECK(text.size() < 8000);  // bounded by the cap, not by the traffic

    SECTION("long values are cut, yet distinct ones stay distinct") {
        PrometheusSink p;
        const std::string a = std::string(500, 'x') + "a";
        const std::string b = std::string(500, 'x') + "b";
        for (const auto* t : {&a, &b, &a}) p.record(FallbackEvent{"primary", "secondary", Reason::timeout, *t});
        const auto by_tenant = parse(p.scrape()).by("failover_fallbacks_total", {"tenant"});
        REQUIRE(by_tenant.size() == 2);
        std::vector<double> counts;
        for (const auto& [k, v] : by_tenant) {
            CHECK(k[0].size() <= PrometheusOptions{}.max_label_length);
            CHECK(k[0].rfind("xxxx", 0) == 0);
            counts.push_back(v);
        }
        std::sort(counts.begin(), counts.end());
        CHECK(counts == std::vector<double>{1, 2});
    }
    SECTION("route names are capped too") {
        PrometheusOptions ro;
        ro.max_routes = 2;
        PrometheusSink p(ro);
        for (const char* r : {"r1", "r2", "r3", "r4"}) p.record(SkipEvent{r, Reason::breaker_open, {}});
        const auto routes = parse(p.scrape()).by("failover_skips_total", {"route"});
        CHECK(routes.size() == 3);
        CHECK(routes.at({"__overflow__"}) == 2);
    }
}

TEST_CASE("Prometheus: many threads recording while another scrapes lose no event") {
    PrometheusSink prom;
    std::atomic<bool> done{false};
    std::thread scraper([&] {
        while (!done.load()) (void)prom.scrape();
    });
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&prom, t] {
            const std::string tenant = "t" + std::to_string(t);
            for (int i = 0; i < 500; ++i) {
                prom.record(SuccessEvent{"primary", tenant, 1, false, 10ms});
                prom.record(FallbackEvent{"primary", "secondary", Reason::timeout, tenant});
            }
        });
    for (auto& th : threads) th.join();
    done = true;
    scraper.join();
    const Exposition x = parse(prom.scrape());
    CHECK(x.sum("failover_requests_total") == 2000);
    CHECK(x.sum("failover_fallbacks_total") == 2000);
    CHECK(x.sum("failover_request_duration_seconds_count") == 2000);
}

TEST_CASE("Prometheus: breaker state gauge follows transitions") {
    PrometheusSink prom;
    auto state = [&] { return parse(prom.scrape()).sum("failover_breaker_state", {{"route", "p"}}); };
    prom.record(BreakerEvent{"p", {BreakerState::closed, BreakerState::open, 30s}});
    CHECK(state() == 1);
    prom.record(BreakerEvent{"p", {BreakerState::open, BreakerState::half_open, {}}});
    CHECK(state() == 2);
    prom.record(BreakerEvent{"p", {BreakerState::half_open, BreakerState::forced_open, {}}});
    CHECK(state() == 3);
    prom.record(BreakerEvent{"p", {BreakerState::forced_open, BreakerState::disabled, {}}});
    CHECK(state() == 4);
    prom.record(BreakerEvent{"p", {BreakerState::disabled, BreakerState::closed, {}}});
    CHECK(state() == 0);
    CHECK(parse(prom.scrape()).sum("failover_breaker_transitions_total", {{"route", "p"}}) == 5);
}

TEST_CASE("Prometheus: bad options fail at construction naming the field") {
    auto message = [](PrometheusOptions o) {
        try {
            PrometheusSink p(std::move(o));
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string("no exception");
    };
    PrometheusOptions o;
    o.duration_buckets = {1, 0.5};
    CHECK_THAT(message(o), Catch::Contains("PrometheusOptions.duration_buckets"));
    o = {};
    o.max_tenants = 0;
    CHECK_THAT(message(o), Catch::Contains("PrometheusOptions.max_tenants"));
    o = {};
    o.max_label_length = 4;
    CHECK_THAT(message(o), Catch::Contains("PrometheusOptions.max_label_length"));
}

TEST_CASE("Prometheus: the example alert rules pass promtool check rules") {
    const std::filesystem::path rules = std::filesystem::path(failover_test::test_data_dir()) / ".." / ".." / "examples" /
                                        "prometheus-alerts.yml";
    REQUIRE(std::filesystem::exists(rules));
    if (!have_promtool()) return;
    const ToolRun run = promtool("check rules '" + rules.string() + "'");
    INFO(run.output);
    CHECK(run.rc == 0);
    CHECK_THAT(run.output, Catch::Contains("SUCCESS"));
}

// ===========================================================================
// StatsdSink

TEST_CASE("StatsD: DogStatsD datagrams carry tags and exact values") {
    UdpReceiver rx;
    StatsdSink sink(statsd_to(rx));

    sink.record(SuccessEvent{"primary", "acme", 1, false, 1500ms});
    CHECK(rx.next() == "app.requests:1|c|#route:primary,outcome:success\n"
                       "app.request.duration:1500|ms|#outcome:success");

    AttemptEvent a{};
    a.route = "secondary";
    a.tenant = "acme";
    a.ok = true;
    a.latency = 12345us;
    a.usage = {100, 20};
    a.cost_usd = 0.0125;
    sink.record(a);
    CHECK(rx.next() == "app.attempts:1|c|#route:secondary,reason:ok\n"
                       "app.attempt.duration:12.345|ms|#route:secondary\n"
                       "app.tokens:100|c|#route:secondary,direction:input\n"
                       "app.tokens:20|c|#route:secondary,direction:output\n"
                       "app.cost_usd:0.013|c|#tenant:acme,route:secondary");

    sink.record(FallbackEvent{"primary", "secondary", Reason::rate_limited, "acme"});
    CHECK(rx.next() == "app.fallbacks:1|c|#from:primary,to:secondary,reason:rate_limited,tenant:acme");

    sink.record(BreakerEvent{"primary", {BreakerState::closed, BreakerState::open, 30s}});
    CHECK(rx.next() == "app.breaker.state:1|g|#route:primary\napp.breaker.transitions:1|c|#route:primary,to:open");

    sink.record(ExhaustedEvent{"", Reason::timeout, 3, 2s});
    CHECK(rx.next() == "app.requests:1|c|#route:none,outcome:exhausted\napp.request.duration:2000|ms|#outcome:exhausted");

    sink.record(SkipEvent{"primary", Reason::breaker_open, "acme"});
    CHECK(rx.next() == "app.skips:1|c|#route:primary,reason:breaker_open");
    sink.record(RetryEvent{"primary", "acme", Reason::server_error, 2, 250ms});
    CHECK(rx.next() == "app.retries:1|c|#route:primary,reason:server_error");
    sink.record(PolicyEvent{"primary", "acme", Reason::content_filter, "violence"});
    CHECK(rx.next() == "app.requests:1|c|#route:primary,outcome:policy");
    sink.record(DriftEvent{"", true, 0.08, 0.05, 300s, 200});
    CHECK(rx.next() == "app.drift.active:1|g\napp.drift.alerts:1|c");

    // A tenant full of StatsD syntax cannot inject a metric or a tag.
    sink.record(FallbackEvent{"primary", "secondary", Reason::timeout, "evil|#x:1,y\napp.fake:9|c"});
    CHECK(rx.next() == "app.fallbacks:1|c|#from:primary,to:secondary,reason:timeout,tenant:evil__x_1_y_app_fake_9_c");
    CHECK(sink.sent() == 10);
    CHECK(sink.dropped() == 0);
}

TEST_CASE("StatsD: without tags the labels become name components") {
    UdpReceiver rx;
    StatsdSink sink(statsd_to(rx, false));
    sink.record(FallbackEvent{"primary", "secondary", Reason::overloaded, "acme.corp"});
    CHECK(rx.next() == "app.fallbacks.primary.secondary.overloaded.acme_corp:1|c");
    sink.record(SuccessEvent{"local", "", 2, true, 250ms});
    CHECK(rx.next() == "app.requests.local.success:1|c\napp.request.duration.success:250|ms");
    sink.record(BreakerEvent{"primary", {BreakerState::open, BreakerState::half_open, {}}});
    CHECK(rx.next() == "app.breaker.state.primary:2|g\napp.breaker.transitions.primary.half_open:1|c");
    sink.record(FallbackEvent{"primary", "secondary", Reason::overloaded, ""});
    CHECK(rx.next() == "app.fallbacks.primary.secondary.overloaded.none:1|c");
}

TEST_CASE("StatsD: tags are capped like Prometheus labels") {
    UdpReceiver rx;
    StatsdOptions o = statsd_to(rx);
    o.max_tenants = 2;
    StatsdSink sink(o);
    for (const char* t : {"a", "b", "c", "a", "d"}) sink.record(FallbackEvent{"p", "s", Reason::timeout, t});
    std::vector<std::string> got;
    for (int i = 0; i < 5; ++i) got.push_back(rx.next());
    const std::string base = "app.fallbacks:1|c|#from:p,to:s,reason:timeout,tenant:";
    CHECK(got == std::vector<std::string>{base + "a", base + "b", base + "__overflow__", base + "a",
                                          base + "__overflow__"});

    SECTION("a long value is cut to the length cap") {
        sink.record(SkipEvent{std::string(300, 'r'), Reason::breaker_open, {}});
        const std::string d = rx.next();
        const auto start = d.find("route:") + 6;
        const auto end = d.find(',', start);
        CHECK(end - start == o.max_label_length);
    }
}

TEST_CASE("StatsD: an event too big for one datagram is split at line boundaries") {
    UdpReceiver rx;
    StatsdOptions o = statsd_to(rx);
    o.max_datagram = 512;
    o.max_label_length = 200;
    StatsdSink sink(o);
    const std::string route(150, 'r');
    AttemptEvent a{};
    a.route = route;
    a.tenant = "acme";
    a.ok = true;
    a.latency = 1ms;
    a.usage = {1, 2};
    a.cost_usd = 1;
    sink.record(a);
    std::vector<std::string> datagrams{rx.next()};
    for (auto& d : rx.drain()) datagrams.push_back(std::move(d));
    CHECK(datagrams.size() == 3);  // two lines of ~180 bytes fit in 512
    std::string all;
    for (const auto& d : datagrams) {
        CHECK(d.size() <= 512);
        all += (all.empty() ? "" : "\n") + d;
    }
    CHECK(all == "app.attempts:1|c|#route:" + route + ",reason:ok\n" +  //
                     "app.attempt.duration:1|ms|#route:" + route + "\n" +  //
                     "app.tokens:1|c|#route:" + route + ",direction:input\n" +
                     "app.tokens:2|c|#route:" + route + ",direction:output\n" +
                     "app.cost_usd:1|c|#tenant:acme,route:" + route);
}

TEST_CASE("StatsD: nobody listening never throws into the router, bad options throw at construction") {
    std::uint16_t port = 0;
    {
        UdpReceiver gone;  // bind a port, then free it: nothing listens there
        port = gone.port();
    }
    StatsdOptions o;
    o.port = port;
    StatsdSink sink(o);
    Env env;
    auto t = std::make_shared<ScriptedTransport>();
    Router router{env.options(), Route{"only", FakeAdapter{}, t}};
    auto shared = std::shared_ptr<StatsdSink>(&sink, [](StatsdSink*) {});
    router.add_sink(shared);
    for (int i = 0; i < 20; ++i) REQUIRE(router.route_with_fallback(ask("acme")));
    CHECK(router.sink_errors() == 0);
    CHECK(sink.sent() + sink.dropped() == 40);  // attempt + success per request
    CHECK(sink.dropped() > 0);                  // the ICMP "port unreachable" comes back as ECONNREFUSED

    auto message = [](StatsdOptions bad) {
        try {
            StatsdSink s(std::move(bad));
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string("no exception");
    };
    StatsdOptions bad;
    bad.host = "";
    CHECK_THAT(message(bad), Catch::Contains("StatsdOptions.host"));
    bad = {};
    bad.port = 0;
    CHECK_THAT(message(bad), Catch::Contains("StatsdOptions.port"));
    bad = {};
    bad.prefix = "my|app";
    CHECK_THAT(message(bad), Catch::Contains("StatsdOptions.prefix"));
    bad = {};
    bad.host = "256.256.256.256.invalid.";
    CHECK_THAT(message(bad), Catch::Contains("StatsdOptions.host"));
}

// ===========================================================================
// DriftMonitor

namespace {
struct DriftRig {
    std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
    std::vector<Drift> events;
    std::shared_ptr<DriftMonitor> monitor;
    explicit DriftRig(DriftOptions o = {}) {
        o.clock = clock;
        monitor = std::make_shared<DriftMonitor>(drift_recorder(events), o);
    }
    void served(int n, bool fallback, std::string_view tenant = "acme") {
        for (int i = 0; i < n; ++i) monitor->record(SuccessEvent{fallback ? "secondary" : "primary", tenant, 1, fallback, 1s});
    }
};
}  // namespace

TEST_CASE("Drift: an alert when the fallback share crosses 5 %, a recovery under 4 %") {
    DriftRig rig;
    rig.served(95, false);
    rig.served(5, true);  // 5 % exactly: not above
    CHECK(rig.events.empty());
    rig.served(1, true);  // 6 of 101
    REQUIRE(rig.events.size() == 2);  // overall and tenant acme
    CHECK(rig.events[0].tenant.empty());
    CHECK(rig.events[0].alert);
    CHECK(rig.events[0].requests == 101);
    CHECK(rig.events[0].share == Approx(6.0 / 101));
    CHECK(rig.events[0].threshold == 0.05);
    CHECK(rig.events[0].window == 300s);
    CHECK(rig.events[1].tenant == "acme");
    CHECK(rig.monitor->status()->alerting);

    // 6/120 = 5 %, 6/150 = 4 %: still alerting between the two thresholds, recovered at 4 %.
    rig.served(19, false);
    CHECK(rig.events.size() == 2);
    rig.served(29, false);
    CHECK(rig.events.size() == 2);
    rig.served(1, false);
    REQUIRE(rig.events.size() == 4);
    CHECK_FALSE(rig.events[2].alert);
    CHECK(rig.events[2].requests == 150);
    CHECK(rig.events[2].share == Approx(0.04));
    CHECK_FALSE(rig.monitor->status()->alerting);
}

TEST_CASE("Drift: few requests never alert, exhausted requests count, policy blocks do not") {
    DriftRig rig;
    rig.served(2, false);
    rig.served(1, true);  // 1 of 3
    for (int i = 0; i < 10; ++i) rig.monitor->record(PolicyEvent{"primary", "acme", Reason::refusal, {}});
    CHECK(rig.events.empty());
    CHECK(rig.monitor->status()->requests == 3);
    rig.served(16, false);
    CHECK(rig.events.empty());
    rig.monitor->record(ExhaustedEvent{"acme", Reason::timeout, 4, 5s});  // 2 of 20
    REQUIRE_FALSE(rig.events.empty());
    CHECK(rig.events[0].alert);
    CHECK(rig.events[0].requests == 20);
    CHECK(rig.monitor->status()->not_primary == 2);
}

TEST_CASE("Drift: the window rolls, a quiet period recovers through check()") {
    DriftOptions o;
    o.hysteresis = 0;  // recover as soon as the share is back at the threshold
    DriftRig rig(o);
    rig.served(50, true);
    REQUIRE(rig.events.size() == 2);  // overall + acme, alert at the 20th request
    CHECK(rig.events[0].requests == 20);
    rig.clock->advance(200s);
    rig.served(10, false);
    CHECK(rig.monitor->status()->requests == 60);
    rig.clock->advance(110s);  // the first 50 are out of the window
    CHECK(rig.monitor->status()->requests == 10);
    rig.monitor->check();
    REQUIRE(rig.events.size() == 4);
    CHECK_FALSE(rig.events[2].alert);
    CHECK(rig.events[2].share == 0.0);
    rig.clock->advance(300s);
    CHECK(rig.monitor->status()->requests == 0);
    rig.monitor->check();
    CHECK(rig.events.size() == 4);  // nothing new to say
}

TEST_CASE("Drift: tenants are watched separately and capped") {
    DriftOptions o;
    o.max_tenants = 2;
    DriftRig rig(o);
    rig.served(200, false, "big");
    rig.served(15, false, "small");
    rig.served(5, true, "small");  // small: 25 %, overall 5/220
    REQUIRE(rig.events.size() == 1);
    CHECK(rig.events[0].tenant == "small");
    CHECK(rig.events[0].share == Approx(0.25));
    CHECK_FALSE(rig.monitor->status()->alerting);
    rig.served(30, true, "third");  // past max_tenants: overall only (35/250 = 14 %)
    REQUIRE(rig.events.size() == 2);
    CHECK(rig.events[1].tenant.empty());
    CHECK_FALSE(rig.monitor->status("third").has_value());
    CHECK(rig.monitor->status("small")->alerting);
}

TEST_CASE("Drift: bad options and a null downstream fail at construction") {
    auto message = [](std::shared_ptr<MetricsSink> down, DriftOptions o) {
        try {
            DriftMonitor m(std::move(down), std::move(o));
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string("no exception");
    };
    auto sink = std::make_shared<NullSink>();
    CHECK_THAT(message(nullptr, {}), Catch::Contains("downstream"));
    DriftOptions o;
    o.threshold = 1.5;
    CHECK_THAT(message(sink, o), Catch::Contains("DriftOptions.threshold"));
    o = {};
    o.min_requests = 0;
    CHECK_THAT(message(sink, o), Catch::Contains("DriftOptions.min_requests"));
    o = {};
    o.clock = nullptr;
    CHECK_THAT(message(sink, o), Catch::Contains("DriftOptions.clock"));
}

// ===========================================================================
// Secrets

namespace {

// What a provider answers when it echoes the caller's key back, in the shapes
// real servers and gateways use.
const std::vector<std::string> kEchoShapes{"401 message", "500 message", "429 message", "text body",
                                           "code only",   "error in a 200"};

Fault echoing(const std::string& route, const std::string& key, const std::string& shape) {
    if (shape == "401 message") return Fault::status(401).with_message("Incorrect API key provided: " + key);
    if (shape == "500 message") return Fault::status(500).with_message("upstream rejected " + key);
    if (shape == "429 message") return Fault::status(429).with_message("key " + key + " is rate limited");
    if (shape == "text body") return Fault::raw(502, "<html>bad gateway for key " + key + "</html>", "text/html");
    const int status = shape == "code only" ? 400 : 200;
    nlohmann::json body;
    if (route == "ant") body = {{"type", "error"}, {"error", {{"type", key}}}};
    else if (route == "gem") body = {{"error", {{"code", 400}, {"status", key}}}};
    else body = {{"error", {{"code", key}, {"type", key}}}};
    return Fault::raw(status, body.dump());
}

// Everything a caller can read from a failed result.
std::string failure_text(const Result<ChatResponse>& res) {
    const Failure& f = res.error();
    std::string seen = f.message + "\n" + f.provider_code + "\n" + f.category + "\n";
    for (const auto& a : f.attempts) seen += a.message + "\n";
    try {
        (void)res.value();
        seen += "value() did not throw\n";
    } catch (const FailoverError& e) {
        seen += std::string(e.what()) + "\n";
    }
    return seen;
}

struct Keyed {
    failover_mock::MockProvider mock;
    // None has a well-known shape except the OpenAI one, so the generic
    // classifier's pattern redaction cannot hide a leak: only each adapter's
    // exact redaction of its own key can (gateways and proxies issue such keys).
    const std::map<std::string, std::string> keys{{"oai", "sk-live-SECRET123456"},
                                                  {"ant", "ant-gateway-SECRET123456"},
                                                  {"gem", "gem-proxy-SECRET123456"},
                                                  {"cmp", "vllm-SECRET123456"}};
    std::shared_ptr<CurlTransport> http_t = std::make_shared<CurlTransport>();
    RouteOptions opts = [] {
        RouteOptions o;
        o.max_attempts = 2;
        o.breaker.consecutive_failures = 0;  // every shape must reach every route
        o.breaker.minimum_calls = 1000;
        return o;
    }();

    // Mock route names double as router route names ("openai" is a path segment the mock reserves).
    AnyRoute route(const std::string& name) {
        const std::string& key = keys.at(name);
        if (name == "oai")
            return Route{name, OpenAI{{.model = "gpt-4o", .api_key = key, .base_url = mock.url(name) + "/v1"}}, http_t, opts};
        if (name == "ant")
            return Route{name, Anthropic{{.model = "claude-sonnet-4-5", .api_key = key, .base_url = mock.url(name)}},
                         http_t, opts};
        if (name == "gem")
            return Route{name, Gemini{{.model = "gemini-2.5-flash", .api_key = key, .base_url = mock.url(name)}}, http_t,
                         opts};
        return Route{name, OpenAICompatible{{.base_url = mock.url(name) + "/v1", .model = "m", .api_key = key}}, http_t,
                     opts};
    }
    void script(const std::string& shape) {
        for (const auto& [name, key] : keys) {
            auto& r = mock.route(name);
            r.reset();
            r.require_auth();
            r.otherwise(echoing(name, key, shape));
        }
    }
    // The providers did receive the keys: the test is not vacuous.
    void check_keys_were_sent(const std::string& only = {}) {
        for (const auto& [name, key] : keys) {
            if (!only.empty() && name != only) continue;
            const auto last = mock.route(name).last_request();
            REQUIRE(last);
            std::string headers;
            for (const auto& [k, v] : last->headers) headers += v + "\n";
            CHECK(headers.find(key) != std::string::npos);
        }
    }
};

}  // namespace

TEST_CASE("API keys never appear in failures, exceptions, attempt messages or any sink's output") {
    Keyed k;
    Env env;
    std::vector<AnyRoute> chain;
    for (const char* name : {"oai", "ant", "gem", "cmp"}) chain.push_back(k.route(name));
    DynamicRouter router{std::move(chain), env.options()};

    std::ostringstream jsonl;
    std::string callback_dump;
    UdpReceiver rx;
    auto prom = std::make_shared<PrometheusSink>();
    router.add_sink(std::make_shared<JsonLinesSink>(jsonl));
    router.add_sink(prom);
    router.add_sink(std::make_shared<StatsdSink>(statsd_to(rx)));
    router.add_sink(std::make_shared<CallbackSink>([&](const Event& e) { callback_dump += detail::to_json(e).dump() + "\n"; }));

    std::string everything;  // every text an operator or a caller can see
    for (const std::string& shape : kEchoShapes) {
        INFO("shape: " << shape);
        k.script(shape);
        auto res = router.route_with_fallback(ask("acme"));
        if (res) FAIL("answered by " << res->route << ": " << res->text);
        CHECK(res.error().attempts.size() >= 4);
        k.check_keys_were_sent();
        const std::string seen = failure_text(res);
        INFO(seen);
        CHECK(seen.find("SECRET") == std::string::npos);
        everything += seen;
    }
    for (const auto& d : rx.drain()) everything += d + "\n";
    everything += jsonl.str() + prom->scrape() + callback_dump;
    CHECK_FALSE(jsonl.str().empty());
    CHECK_FALSE(callback_dump.empty());
    CHECK(everything.find("SECRET") == std::string::npos);
    for (const auto& [name, key] : k.keys) CHECK(everything.find(key) == std::string::npos);
    CHECK(everything.find("[redacted]") != std::string::npos);  // they were there, and were removed
}

TEST_CASE("each adapter's own Failure (message, provider code, category) is free of its key") {
    Keyed k;
    Env env;
    for (const char* name : {"oai", "ant", "gem", "cmp"}) {
        std::vector<AnyRoute> chain;
        chain.push_back(k.route(name));
        DynamicRouter solo{std::move(chain), env.options()};
        for (const std::string& shape : kEchoShapes) {
            INFO("route " << name << ", shape: " << shape);
            k.script(shape);
            auto res = solo.route_with_fallback(ask("acme"));
            REQUIRE_FALSE(res);
            k.check_keys_were_sent(name);
            const std::string seen = failure_text(res);
            INFO(seen);
            CHECK(seen.find("SECRET") == std::string::npos);
        }
    }
}
