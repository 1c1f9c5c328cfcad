// SPDX-License-Identifier: MIT
// The engine's decisions, as plain functions, held against README's taxonomy
// table row by row: the test reads the table from README.md, builds the signal
// each row names (a transport failure, an HTTP response through the real
// classifier, a gate's rejection), and checks the kind, the reason, what
// decide() does and what the breaker table says. A row the code disagrees with,
// or a signal the table forgets, fails here. Then the other decisions:
// eligibility, the deadline share and attempt timeouts, with default options.
#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "support/catch.hpp"
#include "support/paths.hpp"
#include "support/fakes.hpp"

using namespace failover;
using namespace failover::detail::engine;
using namespace std::chrono_literals;

namespace {

struct Row {
    std::string signal, kind, reasons, does, breaker;
};

std::string trim(std::string s) {
    while (!s.empty() && (s.front() == ' ')) s.erase(s.begin());
    while (!s.empty() && (s.back() == ' ')) s.pop_back();
    return s;
}

// The rows of README's "The failure taxonomy" table.
std::vector<Row> taxonomy_rows() {
    std::ifstream in(failover_test::readme_path());
    REQUIRE(in);
    std::vector<Row> rows;
    std::string line;
    bool in_table = false;
    while (std::getline(in, line)) {
        if (line.rfind("| signal | kind | reason | router does | breaker |", 0) == 0) {
            in_table = true;
            continue;
        }
        if (!in_table) continue;
        if (line.rfind("|---", 0) == 0) continue;
        if (line.empty() || line[0] != '|') break;
        std::vector<std::string> cells;
        std::string cell;
        for (std::size_t i = 1; i < line.size(); ++i) {
            if (line[i] == '|') {
                cells.push_back(trim(cell));
                cell.clear();
            } else {
                cell += line[i];
            }
        }
        REQUIRE(cells.size() == 5);
        rows.push_back({cells[0], cells[1], cells[2], cells[3], cells[4]});
    }
    return rows;
}

HttpResponse response(int status, std::string body = "{}", Headers headers = {}) {
    HttpResponse r;
    r.status = status;
    r.body = std::move(body);
    r.headers = std::move(headers);
    return r;
}

const auto kWall = std::chrono::system_clock::time_point{} + std::chrono::hours(24 * 365 * 56);
Failure classify(const HttpResponse& r) { return classify_response(r, kWall); }

// The failures each row's signal stands for, as the engine receives them.
std::map<std::string, std::vector<Failure>> signals() {
    const auto err = [](const char* type, const char* code) {
        return nlohmann::json{{"error", {{"message", "m"}, {"type", type}, {"code", code}}}}.dump();
    };
    return {
        {"connect refused/reset, DNS", {Failure::of(Reason::connection, "connect refused")}},
        {"attempt timed out, 408, 504", {Failure::of(Reason::timeout), classify(response(408)), classify(response(504))}},
        {"409", {classify(response(409))}},
        {"429 rate limit", {classify(response(429, err("requests", "rate_limit_exceeded"), {{"Retry-After", "2"}}))}},
        {"429 `insufficient_quota`, 402 billing",
         {classify(response(429, err("insufficient_quota", "insufficient_quota"))), classify(response(402))}},
        {"500 502, 503 529 overloaded",
         {classify(response(500)), classify(response(502)), classify(response(503)), classify(response(529))}},
        {"body unparsable / truncated", {malformed("body is not JSON")}},
        {"body over the size limit", {Failure::of(Reason::response_too_large)}},
        {"401 403", {classify(response(401)), classify(response(403))}},
        {"404", {classify(response(404))}},
        {"prompt too long", {classify(response(400, err("invalid_request_error", "context_length_exceeded")))}},
        {"other 4xx", {classify(response(400, err("invalid_request_error", ""))), classify(response(422))}},
        {"content filter, safety block, refusal",
         {classify(response(400, err("invalid_request_error", "content_filter"))), Failure::of(Reason::refusal)}},
        {"output fails the schema / a user gate", {Failure::of(Reason::schema_invalid), Failure::of(Reason::quality_gate)}},
        {"a tool call names a tool not offered, or its arguments break the tool's schema",
         {Failure::of(Reason::tool_call_invalid)}},
        {"breaker open, cooling down, not approved, over budget, window too small",
         {Failure::of(Reason::breaker_open), Failure::of(Reason::cooling_down), Failure::of(Reason::not_approved),
          Failure::of(Reason::budget_exceeded), Failure::of(Reason::context_window)}},
        {"a route at its own request or token rate limit (`RouteOptions::rate_limit`)",
         {Failure::of(Reason::local_rate_limit)}},
        {"cache route without an answer", {Failure::of(Reason::cache_miss)}},
        {"less than `min_attempt_time` left for an HTTP route", {Failure::of(Reason::insufficient_time)}},
        {"no time left", {Failure::of(Reason::deadline_exceeded)}},
        {"cancelled by the caller (a `std::stop_token`)", {Failure::of(Reason::cancelled, "cancelled by the caller")}},
        {"our own process out of descriptors or memory (`EMFILE`, ...)", {Failure::of(Reason::local_resource)}},
    };
}

// An attempt with plenty of time left on an HTTP route with default options.
AttemptFacts first_attempt(int number = 1) {
    AttemptFacts a;
    a.number = number;
    a.now = Clock::time_point{} + 1h;
    a.route_end = a.now + 30s;
    a.deadline = a.now + 60s;
    return a;
}

}  // namespace

TEST_CASE("engine: every row of README's taxonomy table holds for the classifier, decide() and the breaker table") {
    const std::vector<Row> rows = taxonomy_rows();
    auto inputs = signals();
    REQUIRE(rows.size() == inputs.size());  // no row without a signal here, no signal without a row
    const RouteOptions o{};
    for (const Row& row : rows) {
        INFO("row: " << row.signal);
        auto it = inputs.find(row.signal);
        REQUIRE(it != inputs.end());
        for (const Failure& f : it->second) {
            INFO("reason " << to_string(f.reason) << ", kind " << to_string(f.kind));
            // kind and reason
            if (row.kind == "(skip)") {
                CHECK(is_skip_reason(f.reason));
            } else {
                CHECK(std::string(to_string(f.kind)) == row.kind);
                CHECK_FALSE(is_skip_reason(f.reason));
            }
            CHECK(row.reasons.find("`" + std::string(to_string(f.reason)) + "`") != std::string::npos);

            // what the router does
            const Decision d1 = decide(f, first_attempt(1), o, 0.5);
            const Decision last = decide(f, first_attempt(o.max_attempts), o, 0.5);
            if (row.does.rfind("retry with backoff, then fail over", 0) == 0) {
                CHECK(d1.next == Next::retry);
                CHECK(d1.wait > 0ns);
                CHECK(d1.wait <= o.backoff.cap);
                CHECK(last.next == Next::fail_over);
            } else if (row.does.rfind("fail over at once", 0) == 0) {
                CHECK(d1.next == Next::fail_over);
                CHECK_FALSE(d1.cool_down_until);
            } else if (row.does.rfind("return to the caller", 0) == 0) {
                CHECK(d1.next == Next::stop);
                AttemptFacts opted = first_attempt();
                opted.policy_fallback = true;
                CHECK(decide(f, opted, o, 0.5).next == Next::fail_over);  // only with the opt-in
            } else if (row.does.rfind("one repair turn on the same route, then fail over", 0) == 0) {
                CHECK(d1.next == Next::repair);
                AttemptFacts repaired = first_attempt(2);
                repaired.repairs = 1;
                CHECK(decide(f, repaired, o, 0.5).next == Next::fail_over);
                AttemptFacts local = first_attempt();
                local.local = true;  // a canned reply cannot change its answer
                CHECK(decide(f, local, o, 0.5).next == Next::fail_over);
            } else if (row.does.rfind("wait `Retry-After` if <= 5 s", 0) == 0) {
                REQUIRE(f.retry_after);
                CHECK(d1.next == Next::retry);
                CHECK(d1.wait == *f.retry_after);
                Failure long_wait = f;
                long_wait.retry_after = 30s;
                const Decision cooled = decide(long_wait, first_attempt(), o, 0.5);
                CHECK(cooled.next == Next::fail_over);
                CHECK(cooled.announce_cooldown);
                REQUIRE(cooled.cool_down_until);
                CHECK(*cooled.cool_down_until == first_attempt().now + 30s);
            } else if (row.does.rfind("skip the route", 0) == 0) {
                CHECK(is_skip_reason(f.reason));
            } else if (row.does == "stop the chain") {
                CHECK(f.reason == Reason::deadline_exceeded);
                CHECK(default_kind(f.reason) == FailureKind::terminal);
            } else if (row.does == "stop the chain at once") {
                CHECK(d1.next == Next::stop);
            } else {
                FAIL("no check for what the router does: " << row.does);
            }

            // the breaker
            const BreakerEffect effect = breaker_effect(f.reason, /*timeout_counted=*/true);
            if (row.breaker.rfind("failure", 0) == 0) {
                CHECK(effect == BreakerEffect::failure);
            } else if (row.breaker.rfind("success", 0) == 0) {
                CHECK(effect == BreakerEffect::success);
            } else if (row.breaker == "not counted" || row.breaker == "—") {
                CHECK(effect == BreakerEffect::neutral);
            } else {
                FAIL("unknown breaker column: " << row.breaker);
            }
            if (row.breaker.find("not counted when the chain's deadline cut it shorter") != std::string::npos)
                CHECK(breaker_effect(f.reason, /*timeout_counted=*/false) == BreakerEffect::neutral);
        }
    }
}

TEST_CASE("engine: a timeout counts against the breaker only when the attempt had its time") {
    RouteOptions o;  // attempt_timeout 30 s, min_timeout_counted 10 s
    CHECK(timeout_counts(30s, o));
    CHECK(timeout_counts(10s, o));
    CHECK_FALSE(timeout_counts(9s, o));
    CHECK_FALSE(timeout_counts(1ms, o));
    o.attempt_timeout = 2s;  // a route configured short: its whole timeout counts
    CHECK(timeout_counts(2s, o));
    CHECK_FALSE(timeout_counts(1s, o));
}

TEST_CASE("engine: the deadline is shared between the HTTP routes still ahead, with the default options") {
    const RouteOptions o{};
    const auto now = Clock::time_point{} + 1h;
    const auto deadline = now + 60s;
    // Two HTTP routes and a canned reply: weights from here 2, 1, 0.
    CHECK(route_end(o, true, now, deadline, 2.0) - now == 30s);
    CHECK(route_end(o, true, now + 30s, deadline, 1.0) == deadline);
    CHECK(route_end(o, false, now, deadline, 0.0) == deadline);  // a local route: the deadline alone
    // Three HTTP routes: 20 s, then half of what is left, then the rest.
    CHECK(route_end(o, true, now, deadline, 3.0) - now == 20s);
    CHECK(route_end(o, true, now + 20s, deadline, 2.0) - (now + 20s) == 20s);
    // A heavier first route.
    RouteOptions heavy;
    heavy.deadline_weight = 3.0;
    CHECK(route_end(heavy, true, now, deadline, 4.0) - now == 45s);
    // Never less than the useful minimum, never more than what is left.
    CHECK(route_end(o, true, now, now + 2s, 10.0) - now == 500ms);
    CHECK(route_end(o, true, now, now + 300ms, 10.0) - now == 300ms);

    // The attempt: min(attempt_timeout, what is left of the share); nothing hopeless.
    CHECK(attempt_time(o, now, now + 30s) == 30s);
    CHECK(attempt_time(o, now, now + 45s) == 30s);
    CHECK(attempt_time(o, now, now + 12s) == 12s);
    CHECK_FALSE(attempt_time(o, now, now + 400ms));
    // After a first 30 s timeout the share is used up: decide() fails over rather than retry.
    AttemptFacts after;
    after.number = 1;
    after.now = now + 30s;
    after.route_end = now + 30s;
    after.deadline = deadline;
    CHECK(decide(Failure::of(Reason::timeout), after, o, 0.5).next == Next::fail_over);
}

TEST_CASE("engine: eligibility skips a route for the first reason that applies, and says why") {
    const ChatRequest req = [] {
        ChatRequest r;
        r.messages = {user(std::string(4000, 'x'))};
        r.data_class = "pii";
        r.tenant = "acme";
        return r;
    }();
    const auto now = Clock::time_point{} + 1h;
    const auto tokens = [] { return std::int64_t{1003}; };
    const auto rich = [](double) { return true; };
    const auto poor = [](double) { return false; };
    const auto room = [](std::int64_t) { return RateLimiter::Room{}; };
    const ChainFacts chain{req, std::nullopt, 0};
    RouteOptions o;
    o.data_classes = {"pii"};
    CHECK_FALSE(eligibility(o, true, chain, now, {}, now + 60s, tokens, rich, room));

    RouteOptions public_only;
    public_only.data_classes = {"public"};
    auto skip = eligibility(public_only, true, chain, now, {}, now + 60s, tokens, rich, room);
    REQUIRE(skip);
    CHECK(skip->reason == Reason::not_approved);
    CHECK(skip->message.find("pii") != std::string::npos);

    RouteOptions small = o;
    small.context_window = 1000;
    CHECK(eligibility(small, true, chain, now, {}, now + 60s, tokens, rich, room)->reason == Reason::context_window);

    RouteOptions priced = o;
    priced.price = {2.5, 10.0};
    CHECK(eligibility(priced, true, chain, now, {}, now + 60s, tokens, poor, room)->reason == Reason::budget_exceeded);
    CHECK_FALSE(eligibility(o, true, chain, now, {}, now + 60s, tokens, poor, room));  // a free route needs no budget

    skip = eligibility(o, true, chain, now, now + 5s, now + 60s, tokens, rich, room);
    REQUIRE(skip);
    CHECK(skip->reason == Reason::cooling_down);
    CHECK(skip->recovers_at == now + 5s);

    skip = eligibility(o, true, chain, now, {}, now + 100ms, tokens, rich, room);
    REQUIRE(skip);
    CHECK(skip->reason == Reason::insufficient_time);
    CHECK_FALSE(eligibility(o, /*http=*/false, chain, now, {}, now + 100ms, tokens, rich, room));  // a canned reply still answers

    // A route at its own rate limit: skipped until its buckets have room, or for good when
    // the request alone is over a minute's tokens. Tokens asked: the prompt and the output.
    RouteOptions limited = o;
    limited.rate_limit.tokens_per_minute = 2000;
    std::int64_t asked = 0;
    const auto full = [&](std::int64_t t) {
        asked = t;
        return RateLimiter::Room{false, now + 2s};
    };
    skip = eligibility(limited, true, chain, now, {}, now + 60s, tokens, rich, full);
    REQUIRE(skip);
    CHECK(skip->reason == Reason::local_rate_limit);
    CHECK(skip->recovers_at == now + 2s);
    CHECK(asked == 1003 + limited.expected_output_tokens);
    skip = eligibility(limited, true, chain, now, {}, now + 60s, tokens, rich,
                       [](std::int64_t) { return RateLimiter::Room{false, std::nullopt}; });
    REQUIRE(skip);
    CHECK(skip->reason == Reason::local_rate_limit);
    CHECK_FALSE(skip->recovers_at);
    CHECK_FALSE(eligibility(o, true, chain, now, {}, now + 60s, tokens, rich, full));  // no limit: not asked

    const ChainFacts strict_floor{req, 2, 0};
    CHECK(eligibility(o, true, strict_floor, now, {}, now + 60s, tokens, rich, room)->reason == Reason::not_approved);
}
