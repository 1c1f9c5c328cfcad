// SPDX-License-Identifier: MIT
// The route report card: before a fallback serves users, find out whether it
// answers as well as the primary. run_report() sends every golden case to every
// route of a chain on its own (no failover: each route answers for itself,
// with its own retries and repair turn, exactly as it would inside the chain),
// a bounded number at a time, and scores each route: answers valid against the
// case's schema, tool calls valid and as expected, refusals, expected content
// matched, agreement with the primary (first) route, errors, latency p50/p99
// and cost per answered case. The card renders as markdown, JSON (for CI) and a
// self-contained HTML page with one inline-SVG chart per measure;
// evaluate() lists the routes below the thresholds a CI job sets.
//
// Golden cases are JSON lines (load_cases): untrusted input, bounded in size
// and depth, every problem refused with its line number and the JSON pointer of
// the field. Not included by failover.hpp: include <failover/report.hpp>.
//
// Definitions (each rate counts only the cases it applies to; a route's rate is
// "n/a" when none do):
//   schema valid     cases with a schema: the route answered and the answer
//                    validates (a schema_invalid failure after the repair turn
//                    counts as invalid, not as an error)
//   tool calls valid cases with tools: the route answered, every tool call names
//                    an offered tool with arguments valid against its schema,
//                    and it called a tool when the case expects one
//   tool calls as expected  cases with expect_tool: one call has that name and
//                    its arguments contain the expected ones (a subset match)
//   expected content cases with expect_contains / expect_json: every substring
//                    is in the answer (ASCII case-insensitive) and every JSON
//                    pointer holds an equal value (equality below)
//   agreement        cases the primary answered: this route answered too, and
//                    both made the same tool calls (names in order, equal
//                    arguments), or gave equal JSON (schema cases), or, for plain
//                    text, the same normalised text or a word overlap (Jaccard
//                    of the lower-cased word sets) >= ReportOptions::text_agreement
//   refusals         all cases: a policy failure (refusal, content filter) or a
//                    plain-text answer that opens with a refusal phrase
//                    (ReportOptions::refusal_markers, within its first 200 bytes)
//   errors           all cases: any other failure (HTTP, transport, timeout, ...)
//   latency          wall time of each case on the route (retries included),
//                    answered or not; nearest-rank p50 / p99
//   cost per case    ChatResponse::cost_usd (the route's RouteOptions::price
//                    over the usage) summed over answered cases / answered cases
// JSON equality: objects with the same keys and equal members, arrays of the same
// length and equal elements, numbers equal as numbers, strings equal after
// trimming, collapsing whitespace and ASCII lower-casing.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "failover/any_route.hpp"
#include "failover/failure.hpp"
#include "failover/request.hpp"
#include "failover/response.hpp"
#include "failover/router.hpp"
#include "failover/schema.hpp"
#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

// ------------------------------------------------------------------ golden cases

/// The tool call a golden case expects: this name, and arguments containing these.
struct ExpectedToolCall {
    std::string name{};
    nlohmann::json arguments = nlohmann::json::object();  ///< a subset: extra arguments in the call are fine
};

/// One golden case: a question with what a good answer looks like.
struct GoldenCase {
    std::string id{};
    std::size_t line = 0;                     ///< line in the cases file (0: built in code)
    std::vector<Message> messages{};          ///< "system" and "prompt", or "messages"
    std::vector<Tool> tools{};
    std::shared_ptr<const Schema> schema{};   ///< structured output the answer must follow
    std::optional<int> max_tokens{};
    std::optional<ExpectedToolCall> expect_tool{};
    std::vector<std::string> expect_contains{};                          ///< substrings of the answer
    std::vector<std::pair<std::string, nlohmann::json>> expect_json{};   ///< JSON pointer -> value

    /// The request for this case: `defaults` (tenant, data class, temperature, timeout, ...)
    /// with the case's messages, tools, schema and max_tokens.
    ChatRequest request(const ChatRequest& defaults = {}) const;
};

/// How much of a cases file is accepted (the file is untrusted input).
struct CaseLimits {
    std::size_t max_line_bytes = 1 << 20;  ///< one case
    std::size_t max_cases = 10000;
    std::size_t max_depth = 64;            ///< JSON nesting within one line
    std::size_t max_messages = 256;
    std::size_t max_tools = 64;
    std::size_t max_expectations = 64;     ///< expect_contains and expect_json entries, each
    std::size_t max_id_bytes = 128;
};

/// A cases file refused: the line (1-based), the JSON pointer of the field ("" for the
/// line as a whole) and why. what() reads "failover: cases line 3: /expect_tool/name: ...".
class CaseError : public std::invalid_argument {
public:
    CaseError(std::size_t line, std::string pointer, std::string reason)
        : std::invalid_argument("failover: cases line " + std::to_string(line) + ": " +
                                (pointer.empty() ? std::string() : pointer + ": ") + reason),
          line_(line),
          pointer_(std::move(pointer)),
          reason_(std::move(reason)) {}
    std::size_t line() const noexcept { return line_; }
    const std::string& pointer() const noexcept { return pointer_; }
    const std::string& reason() const noexcept { return reason_; }

private:
    std::size_t line_;
    std::string pointer_;
    std::string reason_;
};

/// Parses one golden case from its JSON text (one line of a cases file):
/// `{"id": "...", "prompt": "..." | "messages": [{"role": "user", "content": "..."}],
///   "system": "...", "schema": {...}, "tools": [{"name", "description", "parameters"}],
///   "expect_tool": {"name": "...", "arguments": {...}}, "expect_contains": ["..."],
///   "expect_json": {"/pointer": value}, "max_tokens": 256}`. Unknown fields are refused.
/// Throws CaseError naming `line_no`.
GoldenCase parse_case(std::string_view text, std::size_t line_no = 1, const CaseLimits& limits = {});

/// Reads golden cases, one JSON object per line (blank lines skipped, CRLF and a UTF-8 BOM
/// accepted). Throws CaseError at the first bad line, or for duplicate ids or too many cases.
/// @code
/// std::ifstream in("cases.jsonl");
/// std::vector<failover::GoldenCase> cases = failover::load_cases(in);
/// @endcode
std::vector<GoldenCase> load_cases(std::istream& in, const CaseLimits& limits = {});
/// load_cases from a file; throws std::runtime_error when it cannot be opened.
std::vector<GoldenCase> load_cases_file(const std::filesystem::path& path, const CaseLimits& limits = {});

// ------------------------------------------------------------------ the run

/// One route of a report: its name and how to send a request to it alone (no failover).
struct ReportRoute {
    std::string name{};
    std::function<Result<ChatResponse>(const ChatRequest&)> send{};
};

/// The routes of a DynamicRouter, a group's deployments one by one, each sent to on its
/// own (with its own breaker, retries and repair turn). The router must outlive them.
std::vector<ReportRoute> report_routes(DynamicRouter& router);
/// How report_routes() sends a case to one route alone: default RouterOptions, except that a
/// route whose breaker is open fails at once (breaker_open) instead of the one-route chain
/// waiting for it to recover, as a chain would skip it.
inline const RouterOptions& report_send_options() {
    static const RouterOptions o = [] {
        RouterOptions x;
        x.max_recovery_waits = 0;
        return x;
    }();
    return o;
}
/// The routes of a run-time list of routes; the list must outlive them.
std::vector<ReportRoute> report_routes(std::span<AnyRoute> routes);
/// The routes of a Router, a group's deployments one by one; the router must outlive them.
template <class... Routes>
std::vector<ReportRoute> report_routes(Router<Routes...>& router) {
    std::vector<ReportRoute> out;
    router.for_each_route([&](auto& r) {
        out.push_back(ReportRoute{r.name(), [&r](const ChatRequest& req) { return failover::route_with_fallback(report_send_options(), req, r); }});
    });
    return out;
}

/// How a report runs and scores.
struct ReportOptions {
    std::size_t concurrency = 4;     ///< cases in flight at once, over all routes (1..256)
    ChatRequest defaults{};          ///< copied into every case's request (tenant, temperature, timeout, ...)
    double text_agreement = 0.5;     ///< plain text agrees with the primary at this word overlap or more (0..1]
    /// A plain-text answer opening (in its first 200 bytes, case-insensitive) with one of
    /// these counts as a refusal. Empty: only policy failures count.
    std::vector<std::string> refusal_markers{
        "i can't help",   "i cannot help",   "i can't assist",         "i cannot assist",
        "i can't provide", "i cannot provide", "i'm not able to help", "i am not able to help",
        "i won't be able to", "i'm sorry, but i can't", "i'm sorry, but i cannot", "i must decline"};
    std::size_t keep_answer_bytes = 2000;  ///< of each answer, kept in the card (cut at a UTF-8 boundary)
};

/// Where a run stands, after each case on a route.
struct ReportProgress {
    std::size_t done = 0;   ///< cases sent and back, over all routes
    std::size_t total = 0;  ///< routes x cases
    std::string route{};
    std::string case_id{};
    bool answered = false;
};
/// Called after each case on a route, from the worker threads, one call at a time. What it
/// throws is swallowed (and it is not called again): a broken progress line never breaks a run.
using ReportProgressFn = std::function<void(const ReportProgress&)>;

// ------------------------------------------------------------------ the card

/// What a report measures, one chart each.
enum class Measure {
    schema_valid,     ///< rate; higher is better
    tool_valid,       ///< rate; higher is better
    tool_expected,    ///< rate; higher is better
    content_matched,  ///< rate; higher is better
    agreement,        ///< rate; higher is better
    refusals,         ///< rate; lower is better
    errors,           ///< rate; lower is better
    latency_p50,      ///< milliseconds; lower is better
    latency_p99,      ///< milliseconds; lower is better
    cost_per_case,    ///< US dollars per answered case; lower is better
};

/// How a measure is named, shown and judged.
struct MeasureInfo {
    Measure measure;
    std::string_view key;    ///< snake_case, as in to_json and the CLI's flags
    std::string_view title;  ///< for people
    std::string_view unit;   ///< "rate", "ms" or "usd"
    bool higher_is_better;
    std::string_view meaning;  ///< one line, shown under its chart
};

/// Every measure, in the order charts and tables show them.
const std::array<MeasureInfo, 10>& measures() noexcept;
/// The MeasureInfo of one measure.
const MeasureInfo& info(Measure m) noexcept;
/// Its snake_case key.
std::string_view to_string(Measure m) noexcept;

/// passed of `of` cases.
struct Tally {
    std::size_t passed = 0;
    std::size_t of = 0;
    /// passed / of, or nullopt when no case applied.
    std::optional<double> rate() const noexcept {
        return of == 0 ? std::nullopt : std::optional<double>(static_cast<double>(passed) / static_cast<double>(of));
    }
};

/// One case on one route.
struct CaseOutcome {
    std::string case_id{};
    std::string route{};
    bool answered = false;
    std::optional<Reason> failure{};      ///< why it did not answer
    FailureKind failure_kind = FailureKind::terminal;
    int status = 0;                       ///< HTTP status of the failure, 0 when none
    std::string message{};                ///< the failure's message
    std::string answer{};                 ///< the text, the JSON, or the tool calls as JSON; cut to keep_answer_bytes
    std::optional<bool> schema_valid{};   ///< set when the measure applies to the case (see the file comment)
    std::optional<bool> tool_valid{};
    std::optional<bool> tool_expected{};
    std::optional<bool> content_matched{};
    std::optional<bool> agrees{};
    bool refused = false;
    bool error = false;
    std::chrono::nanoseconds latency{};
    double cost_usd = 0.0;
    Usage usage{};
};

/// One route's scores.
struct RouteScore {
    std::string name{};
    bool primary = false;
    std::size_t cases = 0;
    std::size_t answered = 0;
    Tally schema_valid{};
    Tally tool_valid{};
    Tally tool_expected{};
    Tally content_matched{};
    Tally agreement{};
    Tally refusals{};  ///< passed = cases refused
    Tally errors{};    ///< passed = cases failed
    std::chrono::nanoseconds latency_p50{};
    std::chrono::nanoseconds latency_p99{};
    double cost_usd = 0.0;  ///< all answered cases together

    /// Total cost / answered cases; nullopt when none answered.
    std::optional<double> cost_per_case() const noexcept {
        return answered == 0 ? std::nullopt : std::optional<double>(cost_usd / static_cast<double>(answered));
    }
    /// The measure's value: a rate in [0, 1], milliseconds, or US dollars; nullopt: n/a.
    std::optional<double> value(Measure m) const noexcept;
    /// The tally behind a rate measure; nullptr for latency and cost.
    const Tally* tally(Measure m) const noexcept;
};

/// The result of run_report.
struct ReportCard {
    std::vector<RouteScore> routes{};     ///< in chain order; routes.front() is the primary
    std::vector<std::string> case_ids{};  ///< in the order given
    std::vector<CaseOutcome> outcomes{};  ///< route-major: outcomes[route * case_ids.size() + case]
    double text_agreement = 0.5;          ///< the threshold the run used

    /// The outcome of case `c` on route `r`.
    const CaseOutcome& outcome(std::size_t r, std::size_t c) const { return outcomes.at(r * case_ids.size() + c); }
    /// The route of that name, or nullptr.
    const RouteScore* route(std::string_view name) const noexcept {
        for (const auto& s : routes)
            if (s.name == name) return &s;
        return nullptr;
    }
};

/// Sends every case to every route on its own, `options.concurrency` at a time, and scores
/// them. The first route is the primary. Throws std::invalid_argument for no routes, no
/// cases, a route without `send`, duplicate route names or case ids, or bad options.
/// @code
/// auto cases = failover::load_cases_file("golden.jsonl");
/// failover::ReportCard card = failover::run_report(router, cases, {.concurrency = 8},
///     [](const failover::ReportProgress& p) { std::cerr << "\r" << p.done << "/" << p.total; });
/// std::cout << failover::to_markdown(card);
/// @endcode
ReportCard run_report(std::span<const ReportRoute> routes, std::span<const GoldenCase> cases,
                      const ReportOptions& options = {}, const ReportProgressFn& progress = {});
/// run_report over the routes of a DynamicRouter (report_routes(router)).
ReportCard run_report(DynamicRouter& router, std::span<const GoldenCase> cases, const ReportOptions& options = {},
                      const ReportProgressFn& progress = {});
/// run_report over the routes of a Router (report_routes(router)).
template <class... Routes>
ReportCard run_report(Router<Routes...>& router, std::span<const GoldenCase> cases, const ReportOptions& options = {},
                      const ReportProgressFn& progress = {}) {
    const std::vector<ReportRoute> routes = report_routes(router);
    return run_report(std::span<const ReportRoute>(routes), cases, options, progress);
}

// ------------------------------------------------------------------ thresholds

/// Limits a CI job sets; unset ones are not checked. Rates are fractions in [0, 1].
struct ReportThresholds {
    std::optional<double> min_schema_valid{};
    std::optional<double> min_tool_valid{};
    std::optional<double> min_tool_expected{};
    std::optional<double> min_content_matched{};
    std::optional<double> min_agreement{};
    std::optional<double> max_refusals{};
    std::optional<double> max_errors{};
    std::optional<double> max_latency_p50_ms{};
    std::optional<double> max_latency_p99_ms{};
    std::optional<double> max_cost_per_case{};  ///< US dollars

    /// The limit set for a measure (a minimum for rates where higher is better, else a maximum).
    std::optional<double> limit(Measure m) const noexcept;
    /// Sets the limit of a measure.
    void set(Measure m, std::optional<double> value) noexcept;
};

/// A route on the wrong side of a threshold.
struct Breach {
    std::string route{};
    Measure measure = Measure::schema_valid;
    double value = 0.0;
    double limit = 0.0;
    /// e.g. "cheap: schema_valid 66.7 % below the minimum 90.0 %".
    std::string describe() const;
};

/// Every route and measure on the wrong side of its threshold, in route then measure
/// order. A measure that does not apply to a route (n/a) is not a breach.
std::vector<Breach> evaluate(const ReportCard& card, const ReportThresholds& thresholds);

// ------------------------------------------------------------------ rendering

/// A markdown table, a row per route, then the breaches of `thresholds` (if any set).
std::string to_markdown(const ReportCard& card, const ReportThresholds& thresholds = {});
/// Everything, for CI: per route each measure with its counts, the thresholds, the breaches
/// and every case's outcome. Dump it with .dump(2).
nlohmann::json to_json(const ReportCard& card, const ReportThresholds& thresholds = {});
/// A self-contained HTML page: no scripts, no network; a summary table, one inline-SVG bar
/// chart per measure (a bar per route, the primary highlighted, the threshold drawn as a
/// line), the breaches and every case's outcome.
std::string to_html(const ReportCard& card, const ReportThresholds& thresholds = {});

FAILOVER_END_NAMESPACE

// Always included: report.hpp is not part of failover::compiled.
#include "failover/detail/report-inl.hpp"
