// SPDX-License-Identifier: MIT
// Chaos soak of the async driver (issue 12): 10,000 requests (FAILOVER_CHAOS_REQUESTS
// overrides) through Router::submit on an EventLoop running on its own thread, several
// hundred in flight at once, over real HTTP on loopback to three mock providers (the
// OpenAI, Anthropic and Gemini wires) that each play a seeded random mix of every kind
// of Fault the mock has: answers (plain, late, dripped, JSON), error statuses with and
// without Retry-After, quota and context-length errors, hangs, resets, truncated,
// malformed, oversized and mistyped bodies, schema violations, stray tool calls and
// policy blocks. The primary is hedged, the breakers are short so they open and close
// all the time, and active health checks probe the open ones. There is no local last
// route, so some requests must end as Failures.
//
// What it shows: every request completes exactly once (answers + failures = requests);
// each result's attempts are exactly the attempt events of that request, in order, and
// each request has exactly one outcome event (success, exhausted or policy), even when
// both legs of a hedge race come back in one loop turn; the Prometheus counters add up
// to the results; every request a provider received is a
// listed attempt or a health-check probe (the mock's counts lie between the attempts
// that certainly reached it and those that may have); no attempt failed for a local
// reason; the loop ends idle; resident memory stays flat from batch to batch (bounded
// in a plain build; LeakSanitizer checks leaks in the sanitizer build). Real time runs
// throughout: hangs end by the 200 ms attempt timeout (four times the time limits under a
// sanitizer), backoffs and Retry-After waits are a few ms. The test only waits on its own
// completions (with a watchdog).
//
// Environment: FAILOVER_CHAOS_REQUESTS (default 10000, at least 200), FAILOVER_CHAOS_IN_FLIGHT
// (256; 64 under ThreadSanitizer), FAILOVER_CHAOS_SEED (the faults and requests follow it; which request meets which
// fault depends on arrival order), FAILOVER_CHAOS_VERBOSE=1 prints the figures.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include "support/catch.hpp"
#include "support/loopback.hpp"

using namespace failover;
using namespace failover_test;
using namespace std::chrono_literals;
using failover_mock::Fault;

#if defined(__SANITIZE_THREAD__)
#define FAILOVER_CHAOS_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FAILOVER_CHAOS_TSAN 1
#endif
#endif
#if defined(FAILOVER_CHAOS_TSAN) || defined(__SANITIZE_ADDRESS__)
#define FAILOVER_CHAOS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define FAILOVER_CHAOS_SANITIZED 1
#endif
#endif
#ifndef FAILOVER_CHAOS_SANITIZED
#define FAILOVER_CHAOS_SANITIZED 0
#endif
#ifndef FAILOVER_CHAOS_TSAN
#define FAILOVER_CHAOS_TSAN 0
#endif

namespace {

constexpr bool sanitized = FAILOVER_CHAOS_SANITIZED != 0;
// ThreadSanitizer is slower still: at 256 in flight on two cores the attempts time out, every
// breaker opens and the soak checks little but breaker_open failures.
constexpr std::uint64_t default_in_flight = FAILOVER_CHAOS_TSAN ? 64 : 256;
constexpr std::uint64_t default_seed = 0x5eed'c4a0'5000ull;
constexpr std::size_t batches = 10;
constexpr std::size_t routes = 3;
constexpr std::array<const char*, routes> route_names = {"gpt", "claude", "gemini"};
constexpr std::array<int, routes> max_attempts = {3, 2, 2};

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
    const char* v = std::getenv(name);
    if (!v || !*v) return fallback;
    char* end = nullptr;
    const unsigned long long n = std::strtoull(v, &end, 0);
    return end && *end == '\0' ? n : fallback;
}

/// VmRSS of this process in KiB (-1 when /proc is not there).
long rss_kib() {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return -1;
}

std::size_t route_index(std::string_view name) {
    for (std::size_t i = 0; i < routes; ++i)
        if (name == route_names[i]) return i;
    return routes;
}

// ---- the fault mix -------------------------------------------------------------------------------

using Rng = std::mt19937_64;

int uniform(Rng& rng, int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

struct MixEntry {
    const char* name;
    int weight;  // per mille, roughly
    Fault (*make)(Rng&);
};

// Every Fault::Kind the mock has, with the modifiers that change what the client sees. A little
// under half of the faults fail the attempt they answer; about 3 % are policy blocks.
const std::vector<MixEntry>& fault_mix() {
    static const std::vector<MixEntry> mix = {
        {"ok", 330, [](Rng&) { return Fault::ok("chaos ok"); }},
        {"ok_delayed", 80,
         [](Rng& r) { return Fault::ok("late ok").delayed(std::chrono::milliseconds(uniform(r, 5, 150))); }},
        {"ok_dripped", 10, [](Rng&) { return Fault::ok("a dripped answer, sixteen bytes at a time").dripped(2ms, 16); }},
        {"ok_interim_continue", 10, [](Rng&) { return Fault::ok("after a 100 Continue").with_interim_continue(); }},
        {"ok_json", 60, [](Rng&) { return Fault::ok_json({{"answer", "structured"}}); }},
        {"tool_call", 15, [](Rng&) { return Fault::tool_call("not_offered", {{"q", "x"}}); }},
        {"status_500", 40, [](Rng&) { return Fault::status(500); }},
        {"status_502", 15, [](Rng&) { return Fault::status(502); }},
        {"status_503", 30, [](Rng&) { return Fault::status(503); }},
        {"status_529", 10, [](Rng&) { return Fault::status(529); }},
        {"status_504", 10, [](Rng&) { return Fault::status(504); }},
        {"status_408", 5, [](Rng&) { return Fault::status(408); }},
        {"status_409", 5, [](Rng&) { return Fault::status(409); }},
        {"status_400", 10, [](Rng&) { return Fault::status(400); }},
        {"status_401", 5, [](Rng&) { return Fault::status(401); }},
        {"status_403", 5, [](Rng&) { return Fault::status(403); }},
        {"status_404", 5, [](Rng&) { return Fault::status(404); }},
        {"status_429_retry_after_ms", 25,
         [](Rng& r) { return Fault::status(429).retry_after_ms(std::to_string(uniform(r, 5, 50))); }},
        {"status_429_retry_after_0s", 5, [](Rng&) { return Fault::status(429).retry_after("0"); }},
        {"status_429_cool_down", 1, [](Rng&) { return Fault::status(429).retry_after_ms("300"); }},  // over max_retry_after
        {"status_500_should_not_retry", 5, [](Rng&) { return Fault::status(500).with_header("x-should-retry", "false"); }},
        {"status_400_should_retry", 5, [](Rng&) { return Fault::status(400).with_header("x-should-retry", "true"); }},
        {"quota_exhausted", 10, [](Rng&) { return Fault::quota_exhausted(); }},
        {"context_length", 10, [](Rng&) { return Fault::context_length_exceeded(); }},
        {"hang", 25, [](Rng&) { return Fault::hang(); }},
        {"reset", 20, [](Rng&) { return Fault::reset(); }},
        {"truncated", 20, [](Rng&) { return Fault::truncated(); }},
        {"malformed_json", 20, [](Rng&) { return Fault::malformed_json(); }},
        {"oversized", 10,
         [](Rng& r) {
             Fault f = Fault::oversized(300 * 1024);
             return uniform(r, 0, 1) ? f.without_length() : f;
         }},
        {"wrong_content_type", 15, [](Rng&) { return Fault::wrong_content_type(); }},
        {"schema_invalid", 20, [](Rng&) { return Fault::schema_invalid(); }},
        {"refusal", 10, [](Rng&) { return Fault::refusal(); }},
        {"content_filter", 10, [](Rng&) { return Fault::content_filter(); }},
        {"safety_block", 10, [](Rng&) { return Fault::safety_block(); }},
        {"raw_teapot_html", 10, [](Rng&) { return Fault::raw(418, "<html>I'm a teapot</html>", "text/html"); }},
    };
    return mix;
}

constexpr std::array<Fault::Kind, 17> all_kinds = {
    Fault::Kind::ok_text,        Fault::Kind::ok_json,        Fault::Kind::tool_call,      Fault::Kind::status,
    Fault::Kind::quota_exhausted, Fault::Kind::context_length, Fault::Kind::hang,          Fault::Kind::reset,
    Fault::Kind::truncated,      Fault::Kind::malformed_json, Fault::Kind::oversized,      Fault::Kind::wrong_content_type,
    Fault::Kind::schema_invalid, Fault::Kind::refusal,        Fault::Kind::content_filter, Fault::Kind::safety_block,
    Fault::Kind::raw,
};

/// One mock route's script: a seeded sequence of faults, every entry of the mix once (in a
/// shuffled order) first, then weighted draws. Remembers what it scripted, so what was
/// served can be counted from what is still pending.
class Script {
public:
    Script(failover_mock::MockRoute& route, std::uint64_t seed) : route_(route), rng_(seed) {
        std::vector<std::uint8_t> tour(fault_mix().size());
        for (std::size_t i = 0; i < tour.size(); ++i) tour[i] = static_cast<std::uint8_t>(i);
        std::shuffle(tour.begin(), tour.end(), rng_);
        for (auto i : tour) add(i);
    }
    /// Scripts faults until at least `n` are pending.
    void top_up(std::size_t n) {
        std::vector<int> weights;
        for (const auto& e : fault_mix()) weights.push_back(e.weight);
        std::discrete_distribution<int> pick(weights.begin(), weights.end());
        for (std::size_t pending = route_.pending(); pending < n; ++pending) add(static_cast<std::uint8_t>(pick(rng_)));
    }
    /// Faults served so far, by mix entry.
    std::vector<std::size_t> served() const {
        std::vector<std::size_t> out(fault_mix().size());
        const std::size_t n = scripted_.size() - route_.pending();
        for (std::size_t i = 0; i < n; ++i) ++out[scripted_[i]];
        return out;
    }
    bool ran_dry() const { return route_.pending() == 0; }

private:
    void add(std::uint8_t i) {
        route_.then(fault_mix()[i].make(rng_));
        scripted_.push_back(i);
    }
    failover_mock::MockRoute& route_;
    Rng rng_;
    std::vector<std::uint8_t> scripted_;
};

// ---- events, per request and overall ------------------------------------------------------------

std::string label(bool ok, Reason reason) { return ok ? "ok" : std::string(to_string(reason)); }

/// True for an attempt (or probe) that may never have reached the provider: it timed out, was
/// cancelled or lost its connection with no HTTP status, perhaps before the mock read it. Any
/// other certainly did: an answer, a status or a body came back.
bool uncertain_on_wire(bool ok, Reason reason, int status) {
    if (ok || status != 0) return false;
    return reason == Reason::timeout || reason == Reason::cancelled || reason == Reason::connection;
}

/// Keeps, per request (its tenant is its id), the events it caused until its completion takes
/// them; plus overall counts. Bounded: only requests in flight have entries.
class ChaosSink final : public MetricsSink {
public:
    struct Seen {
        std::vector<std::pair<std::string, std::string>> attempts;  // route, "ok" or reason, in order
        int successes = 0;
        std::string success_route;
        int success_attempts = 0;
        int exhausted = 0;
        Reason exhausted_reason = Reason::internal;
        int exhausted_attempts = 0;
        int policy = 0;
        int retries = 0;
    };
    struct Probes {
        std::size_t total = 0, passed = 0, certain = 0, uncertain = 0;
    };

    void record(const Event& ev) override {
        std::lock_guard lock(mu_);
        ++by_type_[std::string(event_name(ev))];
        std::visit(
            [&](const auto& e) {
                using E = std::decay_t<decltype(e)>;
                if constexpr (std::is_same_v<E, AttemptEvent>) {
                    seen(e.tenant).attempts.emplace_back(std::string(e.route), label(e.ok, e.reason));
                } else if constexpr (std::is_same_v<E, SuccessEvent>) {
                    Seen& s = seen(e.tenant);
                    ++s.successes;
                    s.success_route = std::string(e.route);
                    s.success_attempts = e.attempts;
                } else if constexpr (std::is_same_v<E, ExhaustedEvent>) {
                    Seen& s = seen(e.tenant);
                    ++s.exhausted;
                    s.exhausted_reason = e.reason;
                    s.exhausted_attempts = e.attempts;
                } else if constexpr (std::is_same_v<E, PolicyEvent>) {
                    ++seen(e.tenant).policy;
                } else if constexpr (std::is_same_v<E, RetryEvent>) {
                    ++seen(e.tenant).retries;
                } else if constexpr (std::is_same_v<E, SkipEvent>) {
                    ++skips_[std::string(to_string(e.reason))];
                } else if constexpr (std::is_same_v<E, BreakerEvent>) {
                    const std::size_t i = route_index(e.route);
                    if (i < routes && e.transition.to == BreakerState::open) ++opened_[i];
                } else if constexpr (std::is_same_v<E, HealthCheckEvent>) {
                    const std::size_t i = route_index(e.route);
                    if (i >= routes) return;
                    Probes& p = probes_[i];
                    ++p.total;
                    p.passed += e.ok ? 1 : 0;
                    ++(uncertain_on_wire(e.ok, e.reason, e.status) ? p.uncertain : p.certain);
                }
            },
            ev);
    }

    /// The events of request `tenant`, which no longer has any.
    Seen take(const std::string& tenant) {
        std::lock_guard lock(mu_);
        auto node = per_request_.extract(tenant);
        return node ? std::move(node.mapped()) : Seen{};
    }
    /// Requests with events not taken (events after their completion).
    std::size_t left_over() const {
        std::lock_guard lock(mu_);
        return per_request_.size();
    }
    std::size_t count(const std::string& type) const {
        std::lock_guard lock(mu_);
        auto it = by_type_.find(type);
        return it == by_type_.end() ? 0 : it->second;
    }
    std::map<std::string, std::size_t> skips() const {
        std::lock_guard lock(mu_);
        return skips_;
    }
    std::array<std::size_t, routes> opened() const {
        std::lock_guard lock(mu_);
        return opened_;
    }
    std::array<Probes, routes> probes() const {
        std::lock_guard lock(mu_);
        return probes_;
    }

private:
    Seen& seen(std::string_view tenant) { return per_request_[std::string(tenant)]; }

    mutable std::mutex mu_;
    std::unordered_map<std::string, Seen> per_request_;
    std::map<std::string, std::size_t> by_type_, skips_;
    std::array<std::size_t, routes> opened_{};
    std::array<Probes, routes> probes_{};
};

/// Sum of the samples of one Prometheus counter family in an exposition.
double prometheus_sum(const std::string& exposition, const std::string& family) {
    double sum = 0;
    std::istringstream in(exposition);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        const auto name_end = line.find_first_of("{ ");
        if (line.compare(0, name_end, family) != 0 || name_end != family.size()) continue;
        sum += std::stod(line.substr(line.rfind(' ') + 1));
    }
    return sum;
}

// ---- the results, checked one by one as they complete --------------------------------------------

struct PerRoute {
    std::size_t attempts = 0, answered = 0, certain = 0, uncertain = 0;
};

/// Everything the completions tell; filled on the loop's thread, read by the test's.
struct Tally {
    explicit Tally(std::size_t n) : calls(n, 0) {}

    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::uint8_t> calls;  // completions per request id
    std::size_t completed = 0, in_flight = 0;
    std::size_t answers = 0, failures = 0, policy_failures = 0, attempts = 0;
    std::size_t hedge_losers = 0, answers_won_by_hedge = 0, late_attempts = 0, fell_back = 0;
    std::size_t local_errors = 0;  // attempts or failures for a reason of our own process
    std::size_t blocked_attempts = 0;
    // Blocks that came back from the losing leg of a hedge race, read in the same loop turn as
    // the outcome: listed as attempts, yet not the request's outcome (no PolicyEvent). Either an
    // answer listing a block, or a policy failure listing a second one.
    std::size_t answers_with_block = 0, failures_with_extra_blocks = 0;
    std::array<PerRoute, routes> per_route{};
    std::map<std::string, std::size_t> failure_reasons;
    std::size_t problems = 0;
    std::vector<std::string> first_problems;

    void problem(std::size_t id, std::string what) {
        ++problems;
        if (first_problems.size() < 20) first_problems.push_back("request " + std::to_string(id) + ": " + what);
    }

    /// One completion, checked against the events its request caused.
    void complete(std::size_t id, const Result<ChatResponse>& r, const ChaosSink::Seen& seen) {
        std::lock_guard lock(mu);
        if (id >= calls.size()) return problem(id, "a completion for a request never submitted");
        if (++calls[id] != 1) problem(id, "completed " + std::to_string(calls[id]) + " times");
        ++completed;
        --in_flight;
        const std::vector<Attempt>& list = r ? r->attempts : r.error().attempts;
        attempts += list.size();

        int ok_attempts = 0, policy_attempts = 0, later_attempts = 0;
        bool primary_lost_race = false;
        std::vector<std::pair<std::string, std::string>> listed;
        for (const Attempt& a : list) {
            listed.emplace_back(a.route, label(a.ok, a.reason));
            const std::size_t i = route_index(a.route);
            if (i >= routes) {
                problem(id, "an attempt on an unknown route '" + a.route + "'");
                continue;
            }
            PerRoute& pr = per_route[i];
            ++pr.attempts;
            pr.answered += a.ok ? 1 : 0;
            ++(uncertain_on_wire(a.ok, a.reason, a.status) ? pr.uncertain : pr.certain);
            if (a.number < 1 || a.number > max_attempts[i])
                problem(id, "attempt number " + std::to_string(a.number) + " on " + a.route);
            later_attempts += a.number > 1 ? 1 : 0;
            if (a.ok) {
                ++ok_attempts;
                continue;
            }
            policy_attempts += a.kind == FailureKind::policy ? 1 : 0;
            if (a.message.empty()) problem(id, "a failed attempt without a message (" + listed.back().second + ")");
            if (a.reason == Reason::local_resource || a.reason == Reason::internal) {
                ++local_errors;
                problem(id, "an attempt failed for a local reason: " + a.message);
            }
            if (a.reason == Reason::cancelled &&
                a.message.find("hedged attempt on another route answered first") != std::string::npos) {
                ++hedge_losers;
                primary_lost_race = primary_lost_race || i == 0;
            }
        }
        auto describe = [](const std::vector<std::pair<std::string, std::string>>& v) {
            std::string s = "[";
            for (const auto& [route, what] : v) s += (s.size() > 1 ? ", " : "") + route + ":" + what;
            return s + "]";
        };
        // Every attempt is one AttemptEvent of this request, in the same order, and nothing else is.
        if (listed != seen.attempts)
            problem(id, "attempts listed " + describe(listed) + " but attempt events " + describe(seen.attempts));
        // One outcome event per request: a policy event only for a request that ends blocked.
        const int policy_outcomes = !r && r.error().kind == FailureKind::policy ? 1 : 0;
        if (seen.policy != policy_outcomes)
            problem(id, std::to_string(seen.policy) + " policy events for a request that " +
                            (policy_outcomes ? "ended blocked" : "did not end blocked") + " (" +
                            std::to_string(policy_attempts) + " blocked attempts listed)");
        blocked_attempts += static_cast<std::size_t>(policy_attempts);
        if (seen.retries < later_attempts)
            problem(id, std::to_string(later_attempts) + " retried attempts but " + std::to_string(seen.retries) +
                            " retry events");

        if (r) {
            ++answers;
            if (r->text.empty()) problem(id, "an empty answer");
            if (ok_attempts != 1) problem(id, "an answer listing " + std::to_string(ok_attempts) + " answered attempts");
            const auto ok = std::find_if(list.begin(), list.end(), [](const Attempt& a) { return a.ok; });
            if (ok != list.end() && ok->route != r->route)
                problem(id, "answered by " + r->route + " but its ok attempt is " + ok->route);
            if (seen.successes != 1 || seen.success_route != r->route)
                problem(id, std::to_string(seen.successes) + " success events (route " + seen.success_route +
                                ") for an answer from " + r->route);
            if (seen.exhausted != 0) problem(id, "an answer with an exhausted event");
            // A hedge's loser is listed after the success event was sent: at most one late attempt.
            const int late = static_cast<int>(list.size()) - seen.success_attempts;
            if (late < 0 || late > 1)
                problem(id, "success event counted " + std::to_string(seen.success_attempts) + " of " +
                                std::to_string(list.size()) + " attempts");
            late_attempts += static_cast<std::size_t>(std::max(late, 0));
            fell_back += r->route != route_names[0] ? 1 : 0;
            answers_won_by_hedge += primary_lost_race ? 1 : 0;
            answers_with_block += policy_attempts > 0 ? 1 : 0;
        } else {
            const Failure& f = r.error();
            ++failures;
            ++failure_reasons[std::string(to_string(f.reason))];
            if (f.message.empty()) problem(id, "a failure without a message");
            if (f.reason == Reason::local_resource || f.reason == Reason::internal) {
                ++local_errors;
                problem(id, "failed for a local reason: " + f.message);
            }
            if (ok_attempts != 0) problem(id, "a failure listing an answered attempt");
            const bool from_an_attempt =
                std::any_of(list.begin(), list.end(), [&](const Attempt& a) { return !a.ok && a.reason == f.reason; });
            if (!from_an_attempt && !is_skip_reason(f.reason) && f.reason != Reason::deadline_exceeded)
                problem(id, "failed with " + std::string(to_string(f.reason)) + ", which none of its attempts " +
                                describe(listed) + " had");
            if (seen.successes != 0) problem(id, "a failure with a success event");
            if (f.kind == FailureKind::policy) {
                ++policy_failures;
                if (policy_attempts < 1) problem(id, "a policy failure without a blocked attempt");
                if (seen.exhausted != 0) problem(id, "a policy failure with an exhausted event");
                failures_with_extra_blocks += policy_attempts > 1 ? 1 : 0;
            } else if (seen.exhausted != 1 || seen.exhausted_reason != f.reason ||
                       seen.exhausted_attempts != static_cast<int>(list.size())) {
                problem(id, std::to_string(seen.exhausted) + " exhausted events (" +
                                std::string(to_string(seen.exhausted_reason)) + ", " +
                                std::to_string(seen.exhausted_attempts) + " attempts) for a failure with " +
                                std::string(to_string(f.reason)) + " and " + std::to_string(list.size()) + " attempts");
            }
        }
        cv.notify_all();
    }
};

}  // namespace

TEST_CASE("chaos soak: requests through the async driver against faulty mock providers all complete and add up",
          "[chaos]") {
    const std::size_t total = std::clamp<std::uint64_t>(env_number("FAILOVER_CHAOS_REQUESTS", 10000), 200, 1000000);
    const std::uint64_t seed = env_number("FAILOVER_CHAOS_SEED", default_seed);
    const std::size_t window =
        std::clamp<std::uint64_t>(env_number("FAILOVER_CHAOS_IN_FLIGHT", default_in_flight), 1, 4096);
    const bool verbose = std::getenv("FAILOVER_CHAOS_VERBOSE") != nullptr;
    const auto watchdog = sanitized ? 90s : 60s;  // no completion for this long: a request was lost
    // A sanitizer makes every step several times slower (the mock's too): time limits stretch with
    // it, or a loaded machine turns the soak into a storm of timeouts and open breakers.
    const int pace = sanitized ? 4 : 1;
    INFO("seed " << seed << ", " << total << " requests, " << window << " in flight");

    // Declared before the loop: the loop's destructor (first) ends anything left, and those
    // completions still find the tally and the router.
    Tally tally(total);
    auto sink = std::make_shared<ChaosSink>();
    auto prometheus = std::make_shared<PrometheusSink>();
    LoopbackFixture fx;
    CurlOptions curl;
    curl.max_response_bytes = 256 * 1024;  // the oversized faults send 300 KiB
    auto http = std::make_shared<CurlTransport>(curl);
    std::vector<std::unique_ptr<Script>> scripts;
    for (std::size_t i = 0; i < routes; ++i)
        scripts.push_back(std::make_unique<Script>(fx.mock.route(route_names[i]), seed + 1 + i));

    RouteOptions common;
    common.attempt_timeout = 200ms * pace;  // a hang ends here
    common.backoff = Backoff{2ms, 20ms};
    common.max_retry_after = 200ms;  // a longer Retry-After cools the route down instead
    common.breaker.window = 10s;
    common.breaker.minimum_calls = 20;
    common.breaker.consecutive_failures = 5;
    common.breaker.open_base = 100ms * pace;
    common.breaker.open_max = 800ms * pace;
    common.breaker.seed = seed;
    RouteOptions primary = common, second = common, third = common;
    primary.max_attempts = max_attempts[0];
    primary.hedge_after = 80ms * pace;  // late answers and hangs race the next route
    primary.retry_budget.capacity = 1000000;
    primary.context_window = 200000;
    second.max_attempts = max_attempts[1];  // the default retry budget: it runs dry and refuses retries
    second.context_window = 128000;         // after the primary's context_too_long: skipped
    third.max_attempts = max_attempts[2];
    third.retry_budget.capacity = 1000000;
    third.context_window = 1000000;
    RouterOptions options;
    options.seed = seed;
    options.timeout = 3s * pace;
    Router router{options, Route{route_names[0], fx.openai(route_names[0]), http, primary},
                  Route{route_names[1], fx.anthropic(route_names[1]), http, second},
                  Route{route_names[2], fx.gemini(route_names[2]), http, third}};
    router.add_sink(sink);
    router.add_sink(prometheus);

    EventLoop loop;
    loop.start();
    router.start_health_checks(loop, HealthCheckOptions{.interval = 100ms * pace, .timeout = 200ms * pace});

    const auto schema = Schema::parse(
        R"({"type":"object","properties":{"answer":{"type":"string"}},"required":["answer"],"additionalProperties":false})");
    Rng request_rng(seed);
    std::vector<long> rss;
    std::vector<double> seconds;
    std::size_t next = 0;
    bool stuck = false;
    bool ran_dry = false;
    const auto t0 = std::chrono::steady_clock::now();
    for (std::size_t b = 0; b < batches && !stuck; ++b) {
        const auto tb = std::chrono::steady_clock::now();
        const std::size_t end = total * (b + 1) / batches;
        // Enough faults for every attempt and probe of the batch (at most 4 per request per route).
        for (auto& s : scripts) s->top_up(4 * (end - next) + 64);
        for (; next < end; ++next) {
            {
                std::unique_lock lock(tally.mu);
                if (!tally.cv.wait_for(lock, watchdog, [&] { return tally.in_flight < window; })) {
                    stuck = true;
                    break;
                }
                ++tally.in_flight;
            }
            ChatRequest req;
            req.messages = {user("chaos request " + std::to_string(next))};
            req.tenant = "t" + std::to_string(next);  // the request's id in its events
            const int roll = uniform(request_rng, 0, 99);
            if (roll < 10) req.schema = schema;              // structured output: schema_invalid is a repair
            else if (roll < 12) req.timeout = 150ms * pace;  // too short for any route: deadline_exceeded
            router.submit(loop, std::move(req), [&tally, &sink, id = next](Result<ChatResponse> r) {
                tally.complete(id, r, sink->take("t" + std::to_string(id)));
            });
        }
        {
            std::unique_lock lock(tally.mu);
            stuck = stuck || !tally.cv.wait_for(lock, watchdog, [&] { return tally.completed >= next; });
        }
        for (auto& s : scripts) ran_dry = ran_dry || s->ran_dry();
        rss.push_back(rss_kib());
        seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - tb).count());
        if (verbose)
            std::fprintf(stderr, "chaos batch %zu: %zu requests done, %.2f s, VmRSS %ld KiB\n", b + 1, next, seconds.back(),
                         rss.back());
    }
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (stuck) {
        std::lock_guard lock(tally.mu);
        FAIL("no completion for " << watchdog.count() << " s: " << next << " submitted, " << tally.completed
                                  << " completed, " << loop.transfers() << " transfers and " << loop.timers()
                                  << " timers on the loop");
    }

    // Wind down: the checks' last probes come back, then the loop has nothing left.
    router.stop_health_checks();
    loop.stop();
    for (int turns = 0; turns < 1000 && !loop.idle(); ++turns) loop.run_once(50ms);
    CHECK(loop.idle());
    CHECK(router.in_flight() == 0);
    fx.mock.stop();  // every connection ended: the mock's counts are final

    std::lock_guard lock(tally.mu);
    const auto probes = sink->probes();
    const auto opened = sink->opened();
    const std::string exposition = prometheus->scrape();
    std::ostringstream summary;
    summary << total << " requests in " << wall << " s: " << tally.answers << " answers (" << tally.fell_back
            << " from a fallback route, " << tally.answers_won_by_hedge << " won by a hedge), " << tally.failures
            << " failures (" << tally.policy_failures << " policy);";
    for (const auto& [reason, n] : tally.failure_reasons) summary << ' ' << reason << '=' << n;
    summary << "\nattempts " << tally.attempts << " (" << tally.hedge_losers << " hedge losers, " << tally.late_attempts
            << " listed after the success event, " << tally.blocked_attempts << " blocked by policy; "
            << tally.answers_with_block << " answers and " << tally.failures_with_extra_blocks
            << " policy failures list a late block from a lost race)";
    for (std::size_t i = 0; i < routes; ++i) {
        const PerRoute& pr = tally.per_route[i];
        summary << "\n  " << route_names[i] << ": " << pr.attempts << " attempts (" << pr.answered << " answered, "
                << pr.certain << " certainly sent, " << pr.uncertain << " maybe), " << probes[i].total << " probes ("
                << probes[i].passed << " passed), breaker opened " << opened[i] << " times, mock received "
                << fx.mock.route(route_names[i]).requests();
    }
    summary << "\nconnections the mock accepted: " << fx.mock.connections();
    summary << "\n" << route_names[1] << "'s retry budget: " << router.route<1>().retry_budget().tokens()
            << " tokens left of " << RetryBudgetOptions{}.capacity;
    summary << "\nskips:";
    for (const auto& [reason, n] : sink->skips()) summary << ' ' << reason << '=' << n;
    summary << "\nfaults served:";
    std::vector<std::size_t> served(fault_mix().size());
    for (auto& s : scripts) {
        const auto v = s->served();
        for (std::size_t i = 0; i < v.size(); ++i) served[i] += v[i];
    }
    for (std::size_t i = 0; i < served.size(); ++i) summary << ' ' << fault_mix()[i].name << '=' << served[i];
    summary << "\nVmRSS after each batch (KiB):";
    for (auto kib : rss) summary << ' ' << kib;
    summary << "\nseconds per batch:";
    for (auto s : seconds) summary << ' ' << s;
    if (verbose) std::fprintf(stderr, "%s\n", summary.str().c_str());
    INFO(summary.str());

    // Every request completed exactly once, as an answer or a failure.
    CHECK(tally.completed == total);
    CHECK(tally.answers + tally.failures == total);
    CHECK(std::all_of(tally.calls.begin(), tally.calls.end(), [](std::uint8_t c) { return c == 1; }));
    // Each result agrees with its own events (see Tally::complete), and no event came after a completion.
    {
        std::string first;
        for (const auto& p : tally.first_problems) first += "\n" + p;
        INFO("first problems:" << first);
        CHECK(tally.problems == 0);
    }
    CHECK(sink->left_over() == 0);
    // The metrics add up to the results: one outcome per request (a late block from a lost hedge
    // race is listed, not counted as an outcome), one attempt metric per listed attempt.
    CHECK(sink->count("success") == tally.answers);
    CHECK(sink->count("exhausted") == tally.failures - tally.policy_failures);
    CHECK(sink->count("policy") == tally.policy_failures);
    CHECK(sink->count("attempt") == tally.attempts);
    CHECK(prometheus_sum(exposition, "failover_requests_total") == static_cast<double>(total));
    CHECK(prometheus_sum(exposition, "failover_attempts_total") == static_cast<double>(tally.attempts));
    CHECK(prometheus_sum(exposition, "failover_health_checks_total") == static_cast<double>(sink->count("health_check")));
    CHECK(router.sink_errors() == 0);
    // Every request a provider received is a listed attempt or a probe: at least those that
    // certainly reached it, at most those plus the ones that may have.
    for (std::size_t i = 0; i < routes; ++i) {
        INFO("route " << route_names[i]);
        const std::size_t received = fx.mock.route(route_names[i]).requests();
        const std::size_t certain = tally.per_route[i].certain + probes[i].certain;
        const std::size_t maybe = tally.per_route[i].uncertain + probes[i].uncertain;
        CHECK(received >= certain);
        CHECK(received <= certain + maybe);
    }
    // Nothing failed for a reason of our own process, so no breaker opened because of one.
    CHECK(tally.local_errors == 0);

    // The chaos was what it claims: every kind of fault was served, and every way a request ends happened.
    CHECK_FALSE(ran_dry);
    for (const Fault::Kind kind : all_kinds) {
        std::size_t n = 0;
        Rng probe_rng(0);
        for (std::size_t i = 0; i < served.size(); ++i)
            if (fault_mix()[i].make(probe_rng).kind == kind) n += served[i];
        INFO("Fault::Kind " << static_cast<int>(kind));
        CHECK(n > 0);
    }
    CHECK(tally.answers > 0);
    CHECK(tally.fell_back > 0);
    CHECK(tally.policy_failures > 0);
    CHECK(tally.failures > tally.policy_failures);
    if (total >= 2000) {  // these take a few thousand requests to be sure of
        CHECK(std::accumulate(opened.begin(), opened.end(), std::size_t{0}) > 0);
        CHECK(sink->count("health_check") > 0);
        CHECK(tally.hedge_losers > 0);
    }

    // Resident memory is flat once the first batches have warmed the caches (connections, the
    // mock's threads, allocator arenas). Under a sanitizer the allocator quarantines freed
    // memory, so only LeakSanitizer's verdict at exit counts there.
    if (!sanitized && rss.size() == batches && rss[1] > 0) {
        const long growth = rss.back() - rss[1];
        INFO("VmRSS grew by " << growth << " KiB from batch 2 to batch " << batches);
        CHECK(growth < 8 * 1024);
    }
}
