// SPDX-License-Identifier: MIT
// The definitions of report.hpp: the golden-case parser, the run (a pool of
// worker threads over route x case jobs), the scoring, the thresholds and the
// three renderings. Included by report.hpp, always (the report is not part of
// failover::compiled); helpers live in detail::report.
#pragma once

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <exception>
#include <fstream>
#include <istream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "failover/detail/json_depth.hpp"
#include "failover/report.hpp"

FAILOVER_BEGIN_NAMESPACE
namespace detail::report {

using json = nlohmann::json;

// ------------------------------------------------------------------ text

inline char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

inline std::string lowered(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = lower(c);
    return out;
}

inline bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/// Trimmed, whitespace runs collapsed to one space, ASCII lower-cased.
inline std::string normalised(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    bool gap = false;
    for (char c : s) {
        if (is_space(c)) {
            gap = !out.empty();
            continue;
        }
        if (gap) out.push_back(' ');
        gap = false;
        out.push_back(lower(c));
    }
    return out;
}

/// ASCII case-insensitive substring test.
inline bool icontains(std::string_view hay, std::string_view needle) {
    if (needle.empty()) return true;
    return lowered(hay).find(lowered(needle)) != std::string::npos;
}

/// The lower-cased words of a text: runs of ASCII letters and digits and of non-ASCII bytes.
inline std::set<std::string> words(std::string_view s) {
    std::set<std::string> out;
    std::string w;
    for (char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if ((u >= '0' && u <= '9') || (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || u >= 0x80) {
            w.push_back(lower(c));
        } else if (!w.empty()) {
            out.insert(std::move(w));
            w.clear();
        }
    }
    if (!w.empty()) out.insert(std::move(w));
    return out;
}

/// |A and B| / |A or B| of the word sets; 1 when both are empty.
inline double word_overlap(std::string_view a, std::string_view b) {
    const std::set<std::string> x = words(a);
    const std::set<std::string> y = words(b);
    if (x.empty() && y.empty()) return 1.0;
    std::size_t both = 0;
    for (const auto& w : x) both += y.count(w);
    const std::size_t either = x.size() + y.size() - both;
    return static_cast<double>(both) / static_cast<double>(either);
}

/// At most `n` bytes of `s`, never splitting a UTF-8 character; "…" marks a cut.
inline std::string cut(std::string_view s, std::size_t n) {
    if (s.size() <= n) return std::string(s);
    std::size_t end = n;
    while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
    return std::string(s.substr(0, end)) + "\xE2\x80\xA6";
}

/// JSON text of a value; invalid UTF-8 replaced rather than thrown over.
inline std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }


/// Parses JSON text nested at most `limit` deep; discarded when it is not JSON. Never throws.
inline json parse_bounded(std::string_view text, std::size_t limit) noexcept {
    try {
        if (!detail::json_depth_within(text, limit)) return json(json::value_t::discarded);
        return json::parse(text.begin(), text.end(), nullptr, false);
    } catch (...) {
        return json(json::value_t::discarded);
    }
}

// ------------------------------------------------------------------ JSON comparison

inline constexpr std::size_t max_compare_depth = 600;

/// Equal as the report defines it: same structure, numbers as numbers, strings normalised.
inline bool equal(const json& a, const json& b, std::size_t depth = 0) {
    if (depth > max_compare_depth) return false;
    if (a.is_number() && b.is_number()) return a == b;
    if (a.type() != b.type()) return false;
    if (a.is_string()) return normalised(a.get_ref<const std::string&>()) == normalised(b.get_ref<const std::string&>());
    if (a.is_object()) {
        if (a.size() != b.size()) return false;
        for (auto it = a.begin(); it != a.end(); ++it) {
            const auto other = b.find(it.key());
            if (other == b.end() || !equal(*it, *other, depth + 1)) return false;
        }
        return true;
    }
    if (a.is_array()) {
        if (a.size() != b.size()) return false;
        for (std::size_t i = 0; i < a.size(); ++i)
            if (!equal(a[i], b[i], depth + 1)) return false;
        return true;
    }
    return a == b;
}

/// `actual` holds everything `expected` says: objects may have more members; arrays and
/// scalars compare as in equal().
inline bool contains_subset(const json& expected, const json& actual, std::size_t depth = 0) {
    if (depth > max_compare_depth) return false;
    if (expected.is_object()) {
        if (!actual.is_object()) return false;
        for (auto it = expected.begin(); it != expected.end(); ++it) {
            const auto other = actual.find(it.key());
            if (other == actual.end() || !contains_subset(*it, *other, depth + 1)) return false;
        }
        return true;
    }
    if (expected.is_array()) {
        if (!actual.is_array() || actual.size() != expected.size()) return false;
        for (std::size_t i = 0; i < expected.size(); ++i)
            if (!contains_subset(expected[i], actual[i], depth + 1)) return false;
        return true;
    }
    return equal(expected, actual, depth);
}

/// The value at a JSON pointer, or nullptr (a malformed pointer or index included).
inline const json* at_pointer(const json& doc, const std::string& pointer) {
    try {
        const json::json_pointer p(pointer);
        if (!doc.contains(p)) return nullptr;
        return &doc.at(p);
    } catch (const json::exception&) {
        return nullptr;
    }
}

// ------------------------------------------------------------------ the cases file

[[noreturn]] inline void refuse(std::size_t line, std::string pointer, std::string reason) {
    throw CaseError(line, std::move(pointer), std::move(reason));
}

/// A key as a JSON pointer token (~ and / escaped), cut for messages.
inline std::string token(std::string_view key) {
    std::string out;
    for (char c : cut(key, 64)) {
        if (c == '~') out += "~0";
        else if (c == '/') out += "~1";
        else if (static_cast<unsigned char>(c) < 0x20) out += '?';
        else out.push_back(c);
    }
    return out;
}

inline bool has_control(std::string_view s) noexcept {
    return std::any_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7F; });
}

inline bool valid_tool_name(std::string_view s) noexcept {
    if (s.empty() || s.size() > 64) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    });
}

inline const std::string& need_string(const json& v, std::size_t line, const std::string& at, bool non_empty = true) {
    if (!v.is_string()) refuse(line, at, std::string("must be a string, not ") + v.type_name());
    const auto& s = v.get_ref<const std::string&>();
    if (non_empty && s.empty()) refuse(line, at, "must not be empty");
    return s;
}

inline void check_count(const json& v, std::size_t max, std::size_t line, const std::string& at, const char* what) {
    if (v.size() > max) refuse(line, at, "more than " + std::to_string(max) + " " + what);
}

/// Compiles a schema of the case; problems name their pointer inside the case.
inline std::shared_ptr<const Schema> compile(const json& v, std::size_t line, const std::string& at) {
    try {
        return Schema::parse(v);
    } catch (const Schema::ParseError& e) {
        refuse(line, at + e.pointer(), e.reason());
    } catch (const std::invalid_argument& e) {
        refuse(line, at, e.what());
    }
}

inline Message message_of(const json& m, std::size_t line, const std::string& at) {
    if (!m.is_object()) refuse(line, at, "must be an object {\"role\", \"content\"}");
    for (auto it = m.begin(); it != m.end(); ++it)
        if (it.key() != "role" && it.key() != "content")
            refuse(line, at + "/" + token(it.key()), "unknown field (a message has role and content)");
    if (!m.contains("role")) refuse(line, at + "/role", "missing");
    if (!m.contains("content")) refuse(line, at + "/content", "missing");
    const std::string& role = need_string(m["role"], line, at + "/role");
    const std::string& content = need_string(m["content"], line, at + "/content", false);
    if (role == "user") return user(content);
    if (role == "system") return system_prompt(content);
    if (role == "assistant") return assistant(content);
    refuse(line, at + "/role", "must be \"system\", \"user\" or \"assistant\", not \"" + cut(role, 32) + "\"");
}

inline Tool tool_of(const json& t, std::size_t line, const std::string& at) {
    if (!t.is_object()) refuse(line, at, "must be an object {\"name\", \"description\", \"parameters\"}");
    Tool tool;
    for (auto it = t.begin(); it != t.end(); ++it) {
        const std::string here = at + "/" + token(it.key());
        if (it.key() == "name") {
            tool.name = need_string(*it, line, here);
            if (!valid_tool_name(tool.name)) refuse(line, here, "must be 1 to 64 of A-Z a-z 0-9 _ -");
        } else if (it.key() == "description") {
            tool.description = need_string(*it, line, here, false);
        } else if (it.key() == "parameters") {
            if (!it->is_object()) refuse(line, here, "must be a JSON Schema object");
            (void)compile(*it, line, here);
            tool.parameters = *it;
        } else {
            refuse(line, here, "unknown field (a tool has name, description and parameters)");
        }
    }
    if (tool.name.empty()) refuse(line, at + "/name", "missing");
    return tool;
}

}  // namespace detail::report

inline ChatRequest GoldenCase::request(const ChatRequest& defaults) const {
    ChatRequest r = defaults;
    r.messages = messages;
    r.tools = tools;
    r.schema = schema;
    if (max_tokens) r.max_tokens = max_tokens;
    return r;
}

inline GoldenCase parse_case(std::string_view text, std::size_t line_no, const CaseLimits& limits) {
    using detail::report::json;
    using detail::report::refuse;
    using detail::report::token;
    const std::size_t line = line_no;
    if (text.size() > limits.max_line_bytes)
        refuse(line, "", "longer than " + std::to_string(limits.max_line_bytes) + " bytes");
    if (!detail::json_depth_within(text, limits.max_depth))
        refuse(line, "", "nested deeper than " + std::to_string(limits.max_depth) + " levels");
    const json doc = detail::report::parse_bounded(text, limits.max_depth);
    if (doc.is_discarded()) refuse(line, "", "not valid JSON");
    if (!doc.is_object()) refuse(line, "", std::string("a case must be a JSON object, not ") + doc.type_name());

    GoldenCase c;
    c.line = line;
    std::optional<std::string> system;
    std::optional<std::string> prompt;
    const json* messages = nullptr;
    const json* expect_tool = nullptr;
    for (auto it = doc.begin(); it != doc.end(); ++it) {
        const std::string& key = it.key();
        const std::string at = "/" + token(key);
        const json& v = *it;
        if (key == "id") {
            c.id = detail::report::need_string(v, line, at);
            if (c.id.size() > limits.max_id_bytes)
                refuse(line, at, "longer than " + std::to_string(limits.max_id_bytes) + " bytes");
            if (detail::report::has_control(c.id)) refuse(line, at, "must not contain control characters");
        } else if (key == "prompt") {
            prompt = detail::report::need_string(v, line, at);
        } else if (key == "system") {
            system = detail::report::need_string(v, line, at, false);
        } else if (key == "messages") {
            if (!v.is_array() || v.empty()) refuse(line, at, "must be a non-empty array of messages");
            detail::report::check_count(v, limits.max_messages, line, at, "messages");
            messages = &v;
        } else if (key == "schema") {
            if (!v.is_object() && !v.is_boolean()) refuse(line, at, "must be a JSON Schema (an object)");
            c.schema = detail::report::compile(v, line, at);
        } else if (key == "tools") {
            if (!v.is_array() || v.empty()) refuse(line, at, "must be a non-empty array of tools");
            detail::report::check_count(v, limits.max_tools, line, at, "tools");
            for (std::size_t i = 0; i < v.size(); ++i) {
                Tool t = detail::report::tool_of(v[i], line, at + "/" + std::to_string(i));
                for (const Tool& earlier : c.tools)
                    if (earlier.name == t.name) refuse(line, at + "/" + std::to_string(i) + "/name", "duplicate tool '" + t.name + "'");
                c.tools.push_back(std::move(t));
            }
        } else if (key == "expect_tool") {
            expect_tool = &v;
        } else if (key == "expect_contains") {
            if (!v.is_array() || v.empty()) refuse(line, at, "must be a non-empty array of strings");
            detail::report::check_count(v, limits.max_expectations, line, at, "entries");
            for (std::size_t i = 0; i < v.size(); ++i)
                c.expect_contains.push_back(detail::report::need_string(v[i], line, at + "/" + std::to_string(i)));
        } else if (key == "expect_json") {
            if (!v.is_object() || v.empty()) refuse(line, at, "must be a non-empty object of \"/json/pointer\": value");
            detail::report::check_count(v, limits.max_expectations, line, at, "entries");
            for (auto e = v.begin(); e != v.end(); ++e) {
                try {
                    (void)json::json_pointer(e.key());
                } catch (const json::exception&) {
                    refuse(line, at + "/" + token(e.key()), "not a JSON pointer (RFC 6901: \"\" or \"/a/0\")");
                }
                c.expect_json.emplace_back(e.key(), *e);
            }
        } else if (key == "max_tokens") {
            if (!v.is_number_integer() || v.get<std::int64_t>() < 1 || v.get<std::int64_t>() > 1000000)
                refuse(line, at, "must be an integer from 1 to 1000000");
            c.max_tokens = v.get<int>();
        } else {
            refuse(line, at,
                   "unknown field (a case has id, prompt or messages, system, schema, tools, expect_tool, "
                   "expect_contains, expect_json, max_tokens)");
        }
    }
    if (c.id.empty()) refuse(line, "/id", "missing");
    if (prompt && messages) refuse(line, "/messages", "give \"prompt\" or \"messages\", not both");
    if (!prompt && !messages) refuse(line, "", "needs \"prompt\" or \"messages\"");
    if (system) c.messages.push_back(system_prompt(*system));
    if (prompt) c.messages.push_back(user(*prompt));
    if (messages) {
        bool has_user = false;
        for (std::size_t i = 0; i < messages->size(); ++i) {
            c.messages.push_back(detail::report::message_of((*messages)[i], line, "/messages/" + std::to_string(i)));
            has_user = has_user || c.messages.back().role == Role::user;
        }
        if (!has_user) refuse(line, "/messages", "needs at least one user message");
    }
    if (expect_tool) {
        const json& v = *expect_tool;
        if (!v.is_object()) refuse(line, "/expect_tool", "must be an object {\"name\", \"arguments\"}");
        if (c.tools.empty()) refuse(line, "/expect_tool", "needs \"tools\" to offer the tool");
        ExpectedToolCall e;
        for (auto it = v.begin(); it != v.end(); ++it) {
            const std::string at = "/expect_tool/" + token(it.key());
            if (it.key() == "name") e.name = detail::report::need_string(*it, line, at);
            else if (it.key() == "arguments") {
                if (!it->is_object()) refuse(line, at, "must be an object");
                e.arguments = *it;
            } else {
                refuse(line, at, "unknown field (expect_tool has name and arguments)");
            }
        }
        if (e.name.empty()) refuse(line, "/expect_tool/name", "missing");
        if (std::none_of(c.tools.begin(), c.tools.end(), [&](const Tool& t) { return t.name == e.name; }))
            refuse(line, "/expect_tool/name", "'" + detail::report::cut(e.name, 64) + "' is not one of the case's tools");
        c.expect_tool = std::move(e);
    }
    return c;
}

namespace detail::report {
/// Reads one line (without its '\n') into `out`, keeping at most `max` bytes; false at the end.
inline bool read_line(std::istream& in, std::string& out, std::size_t max, bool& too_long) {
    using traits = std::istream::traits_type;
    out.clear();
    too_long = false;
    std::streambuf* sb = in.rdbuf();
    if (sb == nullptr || !in.good()) return false;
    bool any = false;
    for (;;) {
        const traits::int_type ch = sb->sbumpc();
        if (traits::eq_int_type(ch, traits::eof())) {
            in.setstate(std::ios::eofbit);
            return any;
        }
        any = true;
        const char c = traits::to_char_type(ch);
        if (c == '\n') return true;
        if (out.size() < max) out.push_back(c);
        else too_long = true;
    }
}
}  // namespace detail::report

inline std::vector<GoldenCase> load_cases(std::istream& in, const CaseLimits& limits) {
    std::vector<GoldenCase> out;
    std::unordered_map<std::string, std::size_t> first_line;
    std::string line;
    std::size_t n = 0;
    bool too_long = false;
    // One more byte than a case may have, for the '\r' of a CRLF line.
    while (detail::report::read_line(in, line, limits.max_line_bytes + 1, too_long)) {
        ++n;
        if (n == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (too_long || line.size() > limits.max_line_bytes)
            detail::report::refuse(n, "", "longer than " + std::to_string(limits.max_line_bytes) + " bytes");
        if (std::all_of(line.begin(), line.end(), detail::report::is_space)) continue;
        if (out.size() == limits.max_cases)
            detail::report::refuse(n, "", "more than " + std::to_string(limits.max_cases) + " cases");
        GoldenCase c = parse_case(line, n, limits);
        const auto [it, fresh] = first_line.emplace(c.id, n);
        if (!fresh)
            detail::report::refuse(n, "/id", "duplicate id '" + c.id + "' (first on line " + std::to_string(it->second) + ")");
        out.push_back(std::move(c));
    }
    if (in.bad()) throw std::runtime_error("failover: cases: read error after line " + std::to_string(n));
    return out;
}

inline std::vector<GoldenCase> load_cases_file(const std::filesystem::path& path, const CaseLimits& limits) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("failover: cases: cannot open '" + path.string() + "'");
    try {
        return load_cases(in, limits);
    } catch (const CaseError& e) {
        throw CaseError(e.line(), e.pointer(), e.reason() + " (in " + path.string() + ")");
    }
}

// ------------------------------------------------------------------ routes

inline std::vector<ReportRoute> report_routes(DynamicRouter& router) {
    std::vector<ReportRoute> out;
    out.reserve(router.size());
    for (std::size_t i = 0; i < router.size(); ++i) {
        AnyRoute& r = router.route(i);
        out.push_back(ReportRoute{r.name(), [&r](const ChatRequest& req) { return failover::route_with_fallback(report_send_options(), req, r); }});
    }
    return out;
}

inline std::vector<ReportRoute> report_routes(std::span<AnyRoute> routes) {
    std::vector<ReportRoute> out;
    out.reserve(routes.size());
    for (AnyRoute& r : routes)
        out.push_back(ReportRoute{r.name(), [&r](const ChatRequest& req) { return failover::route_with_fallback(report_send_options(), req, r); }});
    return out;
}

// ------------------------------------------------------------------ measures

inline const std::array<MeasureInfo, 10>& measures() noexcept {
    static const std::array<MeasureInfo, 10> table{{
        {Measure::schema_valid, "schema_valid", "Schema-valid answers", "rate", true,
         "of the cases with a schema: answered with JSON that validates"},
        {Measure::tool_valid, "tool_calls_valid", "Valid tool calls", "rate", true,
         "of the cases with tools: every call names an offered tool with valid arguments, and a call is made when one is expected"},
        {Measure::tool_expected, "tool_calls_expected", "Tool calls as expected", "rate", true,
         "of the cases with expect_tool: the expected tool called with the expected arguments"},
        {Measure::content_matched, "expected_content", "Expected content", "rate", true,
         "of the cases with expect_contains / expect_json: every substring and JSON value found"},
        {Measure::agreement, "agreement", "Agreement with the primary", "rate", true,
         "of the cases the primary answered: the same tool calls, equal JSON, or the same text (word overlap)"},
        {Measure::refusals, "refusals", "Refusals", "rate", false,
         "of all cases: a policy block or an answer that opens with a refusal"},
        {Measure::errors, "errors", "Errors", "rate", false, "of all cases: no answer for any other reason"},
        {Measure::latency_p50, "latency_p50_ms", "Latency p50", "ms", false, "median time per case, retries included"},
        {Measure::latency_p99, "latency_p99_ms", "Latency p99", "ms", false, "99th percentile time per case"},
        {Measure::cost_per_case, "cost_per_case_usd", "Cost per answered case", "usd", false,
         "usage at the route's price, per answered case"},
    }};
    return table;
}

inline const MeasureInfo& info(Measure m) noexcept { return measures()[static_cast<std::size_t>(m)]; }
inline std::string_view to_string(Measure m) noexcept { return info(m).key; }

inline const Tally* RouteScore::tally(Measure m) const noexcept {
    switch (m) {
        case Measure::schema_valid: return &schema_valid;
        case Measure::tool_valid: return &tool_valid;
        case Measure::tool_expected: return &tool_expected;
        case Measure::content_matched: return &content_matched;
        case Measure::agreement: return &agreement;
        case Measure::refusals: return &refusals;
        case Measure::errors: return &errors;
        default: return nullptr;
    }
}

inline std::optional<double> RouteScore::value(Measure m) const noexcept {
    if (const Tally* t = tally(m)) return t->rate();
    const auto ms = [](std::chrono::nanoseconds d) { return std::chrono::duration<double, std::milli>(d).count(); };
    switch (m) {
        case Measure::latency_p50: return cases == 0 ? std::nullopt : std::optional<double>(ms(latency_p50));
        case Measure::latency_p99: return cases == 0 ? std::nullopt : std::optional<double>(ms(latency_p99));
        case Measure::cost_per_case: return cost_per_case();
        default: return std::nullopt;
    }
}

inline std::optional<double> ReportThresholds::limit(Measure m) const noexcept {
    switch (m) {
        case Measure::schema_valid: return min_schema_valid;
        case Measure::tool_valid: return min_tool_valid;
        case Measure::tool_expected: return min_tool_expected;
        case Measure::content_matched: return min_content_matched;
        case Measure::agreement: return min_agreement;
        case Measure::refusals: return max_refusals;
        case Measure::errors: return max_errors;
        case Measure::latency_p50: return max_latency_p50_ms;
        case Measure::latency_p99: return max_latency_p99_ms;
        case Measure::cost_per_case: return max_cost_per_case;
    }
    return std::nullopt;
}

inline void ReportThresholds::set(Measure m, std::optional<double> v) noexcept {
    switch (m) {
        case Measure::schema_valid: min_schema_valid = v; break;
        case Measure::tool_valid: min_tool_valid = v; break;
        case Measure::tool_expected: min_tool_expected = v; break;
        case Measure::content_matched: min_content_matched = v; break;
        case Measure::agreement: min_agreement = v; break;
        case Measure::refusals: max_refusals = v; break;
        case Measure::errors: max_errors = v; break;
        case Measure::latency_p50: max_latency_p50_ms = v; break;
        case Measure::latency_p99: max_latency_p99_ms = v; break;
        case Measure::cost_per_case: max_cost_per_case = v; break;
    }
}

namespace detail::report {

/// A measure's value for people: "66.7 %", "12.3 ms", "$0.000375".
inline std::string format(Measure m, double v) {
    char buf[64];
    const std::string_view unit = info(m).unit;
    if (unit == "rate") {
        std::snprintf(buf, sizeof buf, "%.1f %%", v * 100.0);
    } else if (unit == "ms") {
        std::snprintf(buf, sizeof buf, v < 10.0 ? "%.2f ms" : "%.1f ms", v);
    } else {
        if (v == 0.0) return "$0";
        if (std::fabs(v) < 1e-6) {
            std::snprintf(buf, sizeof buf, "$%.2e", v);
            return buf;
        }
        std::snprintf(buf, sizeof buf, "$%.6f", v);
        std::string s = buf;
        while (s.size() > 4 && s.back() == '0' && s[s.size() - 3] != '.') s.pop_back();
        return s;
    }
    return buf;
}

/// True when `v` is on the wrong side of `limit` (a hair of tolerance for rates such as 9/10).
inline bool breaches(Measure m, double v, double limit) noexcept {
    const double eps = 1e-9 * std::max(1.0, std::fabs(limit));
    return info(m).higher_is_better ? v < limit - eps : v > limit + eps;
}

}  // namespace detail::report

inline std::string Breach::describe() const {
    const MeasureInfo& mi = info(measure);
    return route + ": " + std::string(mi.key) + " " + detail::report::format(measure, value) +
           (mi.higher_is_better ? " below the minimum " : " above the maximum ") + detail::report::format(measure, limit);
}

inline std::vector<Breach> evaluate(const ReportCard& card, const ReportThresholds& t) {
    std::vector<Breach> out;
    for (const RouteScore& r : card.routes)
        for (const MeasureInfo& mi : measures()) {
            const std::optional<double> limit = t.limit(mi.measure);
            const std::optional<double> v = r.value(mi.measure);
            if (limit && v && detail::report::breaches(mi.measure, *v, *limit))
                out.push_back(Breach{r.name, mi.measure, *v, *limit});
        }
    return out;
}

// ------------------------------------------------------------------ the run

namespace detail::report {

/// What a route answered, kept until agreement is worked out.
struct Answer {
    std::string text{};
    json doc{};  // ChatResponse::json
    std::vector<ToolCall> calls{};
};

/// A case with its tools' compiled schemas.
struct Prepared {
    const GoldenCase* gc = nullptr;
    ChatRequest request{};
    std::vector<std::shared_ptr<const Schema>> tool_schemas{};
};

inline std::string calls_json(const std::vector<ToolCall>& calls) {
    json a = json::array();
    for (const ToolCall& c : calls) a.push_back(json{{"name", c.name}, {"arguments", c.arguments}});
    return dump(a);
}

/// The JSON an answer's expect_json pointers are read from: the structured answer, else
/// the text if it is JSON, else the first tool call's arguments.
inline json answer_document(const Answer& a) {
    if (!a.doc.is_null()) return a.doc;
    json parsed = parse_bounded(a.text, 512);
    if (!parsed.is_discarded() && (parsed.is_object() || parsed.is_array())) return parsed;
    if (!a.calls.empty()) return a.calls.front().arguments;
    return json();
}

inline bool opens_with_refusal(std::string_view text, const std::vector<std::string>& markers) {
    if (markers.empty()) return false;
    std::string head = lowered(text.substr(0, std::min<std::size_t>(text.size(), 256)));
    // A typographic apostrophe (U+2019) reads as '.
    for (std::size_t p = head.find("\xE2\x80\x99"); p != std::string::npos; p = head.find("\xE2\x80\x99", p))
        head.replace(p, 3, "'");
    for (const std::string& m : markers) {
        if (m.empty()) continue;
        const std::size_t at = head.find(lowered(m));
        if (at != std::string::npos && at < 200) return true;
    }
    return false;
}

/// Scores one case on one route (all but agreement).
inline CaseOutcome score(const Prepared& p, const std::string& route, const Result<ChatResponse>& r,
                         std::chrono::nanoseconds latency, const ReportOptions& o, std::optional<Answer>& kept) {
    const GoldenCase& gc = *p.gc;
    CaseOutcome out;
    out.case_id = gc.id;
    out.route = route;
    out.latency = latency;
    const bool has_tools = !gc.tools.empty();
    const bool has_content = !gc.expect_contains.empty() || !gc.expect_json.empty();
    if (!r) {
        const Failure& f = r.error();
        out.failure = f.reason;
        out.failure_kind = f.kind;
        out.status = f.status;
        out.message = cut(f.message, 500);
        out.refused = f.kind == FailureKind::policy;
        const bool gate = f.reason == Reason::schema_invalid || f.reason == Reason::tool_call_invalid ||
                          f.reason == Reason::quality_gate;
        out.error = !out.refused && !gate;
        if (gc.schema) out.schema_valid = false;
        if (has_tools) out.tool_valid = false;
        if (gc.expect_tool) out.tool_expected = false;
        if (has_content) out.content_matched = false;
        return out;
    }
    const ChatResponse& res = *r;
    out.answered = true;
    out.cost_usd = res.cost_usd;
    out.usage = res.usage;
    Answer a{res.text, res.json, res.tool_calls};
    if (!a.calls.empty()) out.answer = cut(calls_json(a.calls), o.keep_answer_bytes);
    else if (!a.doc.is_null()) out.answer = cut(dump(a.doc), o.keep_answer_bytes);
    else out.answer = cut(a.text, o.keep_answer_bytes);

    if (gc.schema) out.schema_valid = !a.doc.is_null() && gc.schema->accepts(a.doc);
    if (has_tools) {
        bool ok = !(gc.expect_tool && a.calls.empty());
        for (const ToolCall& c : a.calls) {
            const auto t = std::find_if(gc.tools.begin(), gc.tools.end(), [&](const Tool& x) { return x.name == c.name; });
            if (t == gc.tools.end()) {
                ok = false;
                continue;
            }
            const auto& schema = p.tool_schemas[static_cast<std::size_t>(t - gc.tools.begin())];
            if (!schema->accepts(c.arguments)) ok = false;
        }
        out.tool_valid = ok;
    }
    if (gc.expect_tool)
        out.tool_expected = std::any_of(a.calls.begin(), a.calls.end(), [&](const ToolCall& c) {
            return c.name == gc.expect_tool->name && contains_subset(gc.expect_tool->arguments, c.arguments);
        });
    if (has_content) {
        bool ok = true;
        const std::string hay = a.text.empty() && !a.calls.empty() ? calls_json(a.calls) : a.text;
        for (const std::string& s : gc.expect_contains) ok = ok && icontains(hay, s);
        if (!gc.expect_json.empty()) {
            const json doc = answer_document(a);
            for (const auto& [pointer, want] : gc.expect_json) {
                const json* got = at_pointer(doc, pointer);
                ok = ok && got != nullptr && equal(*got, want);
            }
        }
        out.content_matched = ok;
    }
    out.refused = !gc.schema && a.calls.empty() && opens_with_refusal(a.text, o.refusal_markers);
    kept = std::move(a);
    return out;
}

/// Whether route answer `x` agrees with the primary's `p` (see report.hpp).
inline bool agrees(const Answer& p, const Answer& x, double text_agreement) {
    if (!p.calls.empty() || !x.calls.empty()) {
        if (p.calls.size() != x.calls.size()) return false;
        for (std::size_t i = 0; i < p.calls.size(); ++i)
            if (p.calls[i].name != x.calls[i].name || !equal(p.calls[i].arguments, x.calls[i].arguments)) return false;
        return true;
    }
    if (!p.doc.is_null() || !x.doc.is_null()) return equal(p.doc, x.doc);
    return normalised(p.text) == normalised(x.text) || word_overlap(p.text, x.text) >= text_agreement;
}

/// Nearest-rank percentile of sorted values.
inline std::chrono::nanoseconds percentile(const std::vector<std::chrono::nanoseconds>& sorted, double q) {
    if (sorted.empty()) return {};
    const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
    return sorted[std::min(sorted.size(), std::max<std::size_t>(rank, 1)) - 1];
}

inline void count(Tally& t, const std::optional<bool>& v) {
    if (!v) return;
    ++t.of;
    if (*v) ++t.passed;
}

}  // namespace detail::report

inline ReportCard run_report(std::span<const ReportRoute> routes, std::span<const GoldenCase> cases,
                             const ReportOptions& o, const ReportProgressFn& progress) {
    namespace rep = detail::report;
    if (routes.empty()) throw std::invalid_argument("failover: run_report: no routes");
    if (cases.empty()) throw std::invalid_argument("failover: run_report: no golden cases");
    if (o.concurrency < 1 || o.concurrency > 256)
        throw std::invalid_argument("failover: ReportOptions.concurrency invalid: " + std::to_string(o.concurrency) +
                                    " (1..256)");
    if (!(o.text_agreement > 0.0 && o.text_agreement <= 1.0))
        throw std::invalid_argument("failover: ReportOptions.text_agreement invalid: " + std::to_string(o.text_agreement) +
                                    " (0..1]");
    std::unordered_set<std::string> names;
    for (const ReportRoute& r : routes) {
        if (r.name.empty()) throw std::invalid_argument("failover: run_report: a route has no name");
        if (!r.send) throw std::invalid_argument("failover: run_report: route '" + r.name + "' has no send function");
        if (!names.insert(r.name).second) throw std::invalid_argument("failover: run_report: duplicate route '" + r.name + "'");
    }
    std::unordered_set<std::string> ids;
    std::vector<rep::Prepared> prepared(cases.size());
    for (std::size_t c = 0; c < cases.size(); ++c) {
        const GoldenCase& gc = cases[c];
        if (gc.id.empty()) throw std::invalid_argument("failover: run_report: case " + std::to_string(c) + " has no id");
        if (!ids.insert(gc.id).second) throw std::invalid_argument("failover: run_report: duplicate case id '" + gc.id + "'");
        prepared[c].gc = &gc;
        prepared[c].request = gc.request(o.defaults);
        for (const Tool& t : gc.tools) {
            try {
                prepared[c].tool_schemas.push_back(Schema::parse(t.parameters));
            } catch (const std::invalid_argument& e) {
                throw std::invalid_argument("failover: run_report: case '" + gc.id + "': tool '" + t.name + "': " + e.what());
            }
        }
    }

    const std::size_t n_routes = routes.size();
    const std::size_t n_cases = cases.size();
    const std::size_t total = n_routes * n_cases;
    std::vector<std::optional<Result<ChatResponse>>> results(total);
    std::vector<std::chrono::nanoseconds> latencies(total);
    std::atomic<std::size_t> next{0};
    std::mutex progress_mu;
    std::size_t done = 0;
    bool report_progress = static_cast<bool>(progress);

    // Jobs go case by case, every route per case, so each route is busy the whole run.
    auto worker = [&] {
        for (;;) {
            const std::size_t k = next.fetch_add(1, std::memory_order_relaxed);
            if (k >= total) return;
            const std::size_t c = k / n_routes;
            const std::size_t r = k % n_routes;
            const std::size_t slot = r * n_cases + c;
            const auto start = std::chrono::steady_clock::now();
            try {
                results[slot].emplace(routes[r].send(prepared[c].request));
            } catch (const std::exception& e) {
                results[slot].emplace(Failure::of(Reason::internal, std::string("send threw: ") + e.what()));
            } catch (...) {
                results[slot].emplace(Failure::of(Reason::internal, "send threw"));
            }
            latencies[slot] = std::chrono::steady_clock::now() - start;
            std::lock_guard lock(progress_mu);
            ++done;
            if (!report_progress) continue;
            try {
                progress(ReportProgress{done, total, routes[r].name, cases[c].id, results[slot]->has_value()});
            } catch (...) {
                report_progress = false;
            }
        }
    };
    {
        std::vector<std::jthread> pool;
        const std::size_t threads = std::min(o.concurrency, total);
        pool.reserve(threads - 1);
        for (std::size_t i = 1; i < threads; ++i) pool.emplace_back(worker);
        worker();
    }

    ReportCard card;
    card.text_agreement = o.text_agreement;
    for (const GoldenCase& gc : cases) card.case_ids.push_back(gc.id);
    card.outcomes.reserve(total);
    std::vector<std::optional<rep::Answer>> answers(total);
    for (std::size_t r = 0; r < n_routes; ++r)
        for (std::size_t c = 0; c < n_cases; ++c) {
            const std::size_t slot = r * n_cases + c;
            card.outcomes.push_back(rep::score(prepared[c], routes[r].name, *results[slot], latencies[slot], o, answers[slot]));
        }
    for (std::size_t c = 0; c < n_cases; ++c) {
        const std::optional<rep::Answer>& primary = answers[c];
        if (!primary) continue;
        for (std::size_t r = 0; r < n_routes; ++r) {
            const std::size_t slot = r * n_cases + c;
            card.outcomes[slot].agrees = r == 0 || (answers[slot] && rep::agrees(*primary, *answers[slot], o.text_agreement));
        }
    }
    for (std::size_t r = 0; r < n_routes; ++r) {
        RouteScore s;
        s.name = routes[r].name;
        s.primary = r == 0;
        s.cases = n_cases;
        std::vector<std::chrono::nanoseconds> times;
        times.reserve(n_cases);
        for (std::size_t c = 0; c < n_cases; ++c) {
            const CaseOutcome& x = card.outcomes[r * n_cases + c];
            if (x.answered) {
                ++s.answered;
                s.cost_usd += x.cost_usd;
            }
            rep::count(s.schema_valid, x.schema_valid);
            rep::count(s.tool_valid, x.tool_valid);
            rep::count(s.tool_expected, x.tool_expected);
            rep::count(s.content_matched, x.content_matched);
            rep::count(s.agreement, x.agrees);
            rep::count(s.refusals, x.refused);
            rep::count(s.errors, x.error);
            times.push_back(x.latency);
        }
        std::sort(times.begin(), times.end());
        s.latency_p50 = rep::percentile(times, 0.50);
        s.latency_p99 = rep::percentile(times, 0.99);
        card.routes.push_back(std::move(s));
    }
    return card;
}

inline ReportCard run_report(DynamicRouter& router, std::span<const GoldenCase> cases, const ReportOptions& options,
                             const ReportProgressFn& progress) {
    const std::vector<ReportRoute> routes = report_routes(router);
    return run_report(std::span<const ReportRoute>(routes), cases, options, progress);
}

// ------------------------------------------------------------------ rendering

namespace detail::report {

/// "66.7 % (2/3)", "12.3 ms", "$0.0004", or "n/a".
inline std::string cell(const RouteScore& r, Measure m) {
    const std::optional<double> v = r.value(m);
    if (!v) return "n/a";
    std::string s = format(m, *v);
    if (const Tally* t = r.tally(m)) s += " (" + std::to_string(t->passed) + "/" + std::to_string(t->of) + ")";
    return s;
}

inline bool breached(const RouteScore& r, Measure m, const ReportThresholds& t) {
    const std::optional<double> v = r.value(m);
    const std::optional<double> limit = t.limit(m);
    return v && limit && breaches(m, *v, *limit);
}

inline bool any_threshold(const ReportThresholds& t) {
    return std::any_of(measures().begin(), measures().end(), [&](const MeasureInfo& mi) { return t.limit(mi.measure).has_value(); });
}

inline std::string md_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '|' || c == '\\' || c == '`' || c == '*' || c == '_' || c == '<' || c == '>' || c == '[' || c == ']') out.push_back('\\');
        out.push_back(c == '\n' || c == '\r' ? ' ' : c);
    }
    return out;
}

inline std::string html_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&#39;"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') out += ' ';
                else out.push_back(c);
        }
    }
    return out;
}

inline std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", v);
    return buf;
}

/// The short verdict of one outcome: "ok", the failure reason, or the checks it failed.
inline std::string verdict(const CaseOutcome& x) {
    if (!x.answered) return x.refused ? "refused (" + std::string(to_string(*x.failure)) + ")" : std::string(to_string(*x.failure));
    std::string s;
    auto add = [&](const std::optional<bool>& v, const char* what) {
        if (v && !*v) s += s.empty() ? what : std::string(", ") + what;
    };
    if (x.refused) s = "refused";
    add(x.schema_valid, "schema");
    add(x.tool_valid, "tool call invalid");
    add(x.tool_expected, "unexpected tool call");
    add(x.content_matched, "content");
    add(x.agrees, "disagrees");
    return s.empty() ? "ok" : s;
}

/// One horizontal bar chart: a bar per route, the primary highlighted, the threshold a dashed line.
inline void chart(std::string& out, const ReportCard& card, const MeasureInfo& mi, const ReportThresholds& t) {
    const double width = 460, label_w = 140, right = 76, row_h = 26, top = 26;
    const double plot_w = width - label_w - right;
    const double n = static_cast<double>(card.routes.size());
    const double height = top + n * row_h + 30;
    const bool rate = mi.unit == "rate";
    const std::optional<double> limit = t.limit(mi.measure);
    double scale = 1.0;
    if (!rate) {
        // Round ticks over the values; a threshold far above them stays off the scale (drawn
        // at the edge) rather than squashing every bar.
        double top_value = 0.0;
        for (const RouteScore& r : card.routes) top_value = std::max(top_value, r.value(mi.measure).value_or(0.0));
        if (limit && *limit <= 3.0 * top_value) top_value = std::max(top_value, *limit);
        if (top_value <= 0.0) top_value = limit && *limit > 0.0 ? *limit : 1.0;
        const double raw = top_value * 1.1 / 4.0;
        const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
        const double norm = raw / magnitude;
        const double step = (norm <= 1.0 ? 1.0 : norm <= 2.0 ? 2.0 : norm <= 2.5 ? 2.5 : norm <= 5.0 ? 5.0 : 10.0) * magnitude;
        scale = step * 4.0;
    }
    const auto x_of = [&](double v) { return label_w + plot_w * std::clamp(v / scale, 0.0, 1.0); };
    const std::string title = html_escape(mi.title);
    out += "<figure><figcaption>" + title + "<small>" + html_escape(mi.meaning) + "</small></figcaption>\n";
    out += "<svg class=\"chart\" data-measure=\"" + std::string(mi.key) + "\" width=\"" + num(width) + "\" height=\"" +
           num(height) + "\" viewBox=\"0 0 " + num(width) + " " + num(height) + "\" role=\"img\" aria-label=\"" + title +
           ", a bar per route\">\n";
    const double bottom = top + n * row_h;
    for (int i = 0; i <= 4; ++i) {
        const double v = scale * i / 4.0;
        const double x = x_of(v);
        out += "<line x1=\"" + num(x) + "\" y1=\"" + num(top - 4) + "\" x2=\"" + num(x) + "\" y2=\"" + num(bottom) +
               "\" stroke=\"#e3e7ee\"/>\n";
        out += "<text x=\"" + num(x) + "\" y=\"" + num(bottom + 16) + "\" text-anchor=\"middle\" class=\"tick\">" +
               html_escape(format(mi.measure, v)) + "</text>\n";
    }
    for (std::size_t i = 0; i < card.routes.size(); ++i) {
        const RouteScore& r = card.routes[i];
        const double y = top + static_cast<double>(i) * row_h;
        const std::string name = html_escape(cut(r.name, 20)) + (r.primary ? " (primary)" : "");
        out += "<text x=\"" + num(label_w - 8) + "\" y=\"" + num(y + row_h / 2 + 4) + "\" text-anchor=\"end\"" +
               (r.primary ? " font-weight=\"bold\"" : "") + ">" + name + "</text>\n";
        const std::optional<double> v = r.value(mi.measure);
        if (!v) {
            out += "<text x=\"" + num(label_w + 4) + "\" y=\"" + num(y + row_h / 2 + 4) + "\" class=\"na\">n/a</text>\n";
            continue;
        }
        const bool bad = limit && breaches(mi.measure, *v, *limit);
        const char* fill = bad ? "#d9534f" : r.primary ? "#1f5fbf" : "#8fb0dc";
        const double w = std::max(x_of(*v) - label_w, 1.0);
        out += "<rect x=\"" + num(label_w) + "\" y=\"" + num(y + 4) + "\" width=\"" + num(w) + "\" height=\"" +
               num(row_h - 8) + "\" rx=\"2\" fill=\"" + fill + "\"" + (r.primary ? " stroke=\"#0b2e66\"" : "") +
               "><title>" + html_escape(r.name) + ": " + html_escape(cell(r, mi.measure)) + "</title></rect>\n";
        out += "<text x=\"" + num(label_w + w + 4) + "\" y=\"" + num(y + row_h / 2 + 4) + "\" class=\"value\">" +
               html_escape(format(mi.measure, *v)) + "</text>\n";
    }
    if (limit) {
        const double x = x_of(*limit);
        out += "<line class=\"threshold\" x1=\"" + num(x) + "\" y1=\"" + num(top - 8) + "\" x2=\"" + num(x) + "\" y2=\"" +
               num(bottom + 2) + "\" stroke=\"#b3261e\" stroke-width=\"2\" stroke-dasharray=\"5 3\"/>\n";
        const bool off_scale = *limit > scale;
        out += "<text x=\"" + num(x) + "\" y=\"" + num(top - 12) + "\" text-anchor=\"" + (off_scale ? "end" : "middle") +
               "\" class=\"limit\">" + (mi.higher_is_better ? "min " : "max ") + html_escape(format(mi.measure, *limit)) +
               (off_scale ? " (off the scale)" : "") + "</text>\n";
    }
    out += "</svg></figure>\n";
}

}  // namespace detail::report

inline std::string to_markdown(const ReportCard& card, const ReportThresholds& t) {
    namespace rep = detail::report;
    std::string out = "## Route report card\n\n";
    out += std::to_string(card.case_ids.size()) + " golden cases, each sent to every route on its own (no failover). ";
    out += "Agreement is with the primary, `" + (card.routes.empty() ? std::string() : rep::md_escape(card.routes.front().name)) +
           "`. Rates count the cases they apply to (n/a: none).\n\n";
    out += "| Route | Answered |";
    for (const MeasureInfo& mi : measures()) out += " " + std::string(mi.title) + " |";
    out += "\n|---|---:|";
    for (std::size_t i = 0; i < measures().size(); ++i) out += "---:|";
    out += "\n";
    for (const RouteScore& r : card.routes) {
        out += "| " + rep::md_escape(r.name) + (r.primary ? " (primary)" : "") + " | " + std::to_string(r.answered) + "/" +
               std::to_string(r.cases) + " |";
        for (const MeasureInfo& mi : measures())
            out += " " + rep::cell(r, mi.measure) + (rep::breached(r, mi.measure, t) ? " \xE2\x9C\x97" : "") + " |";
        out += "\n";
    }
    if (rep::any_threshold(t)) {
        const std::vector<Breach> b = evaluate(card, t);
        out += "\n### Thresholds\n\n";
        for (const MeasureInfo& mi : measures())
            if (const auto limit = t.limit(mi.measure))
                out += "- `" + std::string(mi.key) + "`" + (mi.higher_is_better ? " >= " : " <= ") + rep::format(mi.measure, *limit) + "\n";
        if (b.empty()) {
            out += "\nEvery route meets the thresholds.\n";
        } else {
            out += "\n**Below thresholds** (\xE2\x9C\x97 in the table):\n\n";
            for (const Breach& x : b) {
                const MeasureInfo& mi = info(x.measure);
                out += "- " + rep::md_escape(x.route) + ": `" + std::string(mi.key) + "` " + rep::format(x.measure, x.value) +
                       (mi.higher_is_better ? " below the minimum " : " above the maximum ") + rep::format(x.measure, x.limit) + "\n";
            }
        }
    }
    return out;
}

inline nlohmann::json to_json(const ReportCard& card, const ReportThresholds& t) {
    using detail::report::json;
    json j;
    j["format"] = "failover-report/1";
    j["primary"] = card.routes.empty() ? std::string() : card.routes.front().name;
    j["cases"] = card.case_ids;
    j["text_agreement"] = card.text_agreement;
    json routes = json::array();
    for (const RouteScore& r : card.routes) {
        json m = json::object();
        for (const MeasureInfo& mi : measures()) {
            const std::optional<double> v = r.value(mi.measure);
            json e{{"value", v ? json(*v) : json(nullptr)}};
            if (const Tally* tally = r.tally(mi.measure)) {
                e["passed"] = tally->passed;
                e["of"] = tally->of;
            }
            if (mi.measure == Measure::cost_per_case) e["total_usd"] = r.cost_usd;
            m[std::string(mi.key)] = std::move(e);
        }
        routes.push_back(json{{"name", r.name}, {"primary", r.primary}, {"cases", r.cases}, {"answered", r.answered},
                              {"measures", std::move(m)}});
    }
    j["routes"] = std::move(routes);
    json limits = json::object();
    for (const MeasureInfo& mi : measures())
        if (const auto limit = t.limit(mi.measure))
            limits[std::string(mi.key)] = json{{mi.higher_is_better ? "min" : "max", *limit}};
    j["thresholds"] = std::move(limits);
    json breaches = json::array();
    const std::vector<Breach> b = evaluate(card, t);
    for (const Breach& x : b)
        breaches.push_back(json{{"route", x.route}, {"measure", std::string(to_string(x.measure))}, {"value", x.value},
                                {"limit", x.limit}, {"text", x.describe()}});
    j["breaches"] = std::move(breaches);
    j["passed"] = b.empty();
    json outcomes = json::array();
    const auto opt = [](const std::optional<bool>& v) { return v ? json(*v) : json(nullptr); };
    for (const CaseOutcome& x : card.outcomes)
        outcomes.push_back(json{{"case", x.case_id},
                                {"route", x.route},
                                {"answered", x.answered},
                                {"failure", x.failure ? json(std::string(to_string(*x.failure))) : json(nullptr)},
                                {"status", x.status},
                                {"message", x.message},
                                {"answer", x.answer},
                                {"schema_valid", opt(x.schema_valid)},
                                {"tool_valid", opt(x.tool_valid)},
                                {"tool_expected", opt(x.tool_expected)},
                                {"content_matched", opt(x.content_matched)},
                                {"agrees", opt(x.agrees)},
                                {"refused", x.refused},
                                {"error", x.error},
                                {"latency_ms", std::chrono::duration<double, std::milli>(x.latency).count()},
                                {"cost_usd", x.cost_usd},
                                {"input_tokens", x.usage.input_tokens},
                                {"output_tokens", x.usage.output_tokens}});
    j["outcomes"] = std::move(outcomes);
    return j;
}

inline std::string to_html(const ReportCard& card, const ReportThresholds& t) {
    namespace rep = detail::report;
    using rep::html_escape;
    std::string out;
    out += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
    out += "<title>Route report card</title>\n<style>\n"
           "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d2330;max-width:1000px;"
           "margin:2em auto;padding:0 1em}\n"
           "h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.6em}\n"
           "table{border-collapse:collapse;margin:.8em 0;font-size:13px}"
           "th,td{border:1px solid #d5dae3;padding:4px 8px;text-align:right;vertical-align:top}"
           "th:first-child,td:first-child{text-align:left}th{background:#f4f6fa}\n"
           "tr.primary td{font-weight:600;background:#eef4ff}td.bad{color:#b3261e;font-weight:600}"
           "td.ok{color:#1e7d32}td.fail{color:#b3261e}\n"
           ".charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(470px,1fr));gap:1em}\n"
           "figure{margin:0;border:1px solid #d5dae3;border-radius:6px;padding:.6em .8em}"
           "figcaption{font-weight:600}figcaption small{display:block;font-weight:400;color:#5b6475}\n"
           "svg text{font:12px system-ui,sans-serif;fill:#1d2330}svg text.tick,svg text.na{fill:#6b7383;font-size:11px}"
           "svg text.limit{fill:#b3261e;font-weight:600;font-size:11px}\n"
           ".legend span{display:inline-block;width:12px;height:12px;border-radius:2px;margin:0 4px -1px 12px}\n"
           ".pass{color:#1e7d32;font-weight:600}.breach{color:#b3261e;font-weight:600}\n"
           "</style>\n</head>\n<body>\n";
    out += "<h1>Route report card</h1>\n<p>" + std::to_string(card.case_ids.size()) +
           " golden cases, each sent to every route on its own (no failover). The primary is <b>" +
           html_escape(card.routes.empty() ? std::string() : card.routes.front().name) +
           "</b>; agreement is measured against it. Rates count the cases they apply to (n/a: none).</p>\n";

    const std::vector<Breach> b = evaluate(card, t);
    if (rep::any_threshold(t)) {
        if (b.empty()) {
            out += "<p class=\"pass\">Every route meets the thresholds.</p>\n";
        } else {
            out += "<p class=\"breach\">Below thresholds:</p>\n<ul>\n";
            for (const Breach& x : b) out += "<li>" + html_escape(x.describe()) + "</li>\n";
            out += "</ul>\n";
        }
    }

    out += "<h2>Summary</h2>\n<table>\n<thead><tr><th>Route</th><th>Answered</th>";
    for (const MeasureInfo& mi : measures()) out += "<th>" + html_escape(mi.title) + "</th>";
    out += "</tr></thead>\n<tbody>\n";
    for (const RouteScore& r : card.routes) {
        out += std::string(r.primary ? "<tr class=\"primary\">" : "<tr>") + "<td>" + html_escape(r.name) +
               (r.primary ? " (primary)" : "") + "</td><td>" + std::to_string(r.answered) + "/" + std::to_string(r.cases) + "</td>";
        for (const MeasureInfo& mi : measures())
            out += std::string(rep::breached(r, mi.measure, t) ? "<td class=\"bad\">" : "<td>") +
                   html_escape(rep::cell(r, mi.measure)) + "</td>";
        out += "</tr>\n";
    }
    out += "</tbody>\n</table>\n";

    out += "<h2>Measures</h2>\n<p class=\"legend\"><span style=\"background:#1f5fbf\"></span>primary"
           "<span style=\"background:#8fb0dc\"></span>other routes<span style=\"background:#d9534f\"></span>"
           "on the wrong side of its threshold (dashed line)</p>\n<div class=\"charts\">\n";
    for (const MeasureInfo& mi : measures()) rep::chart(out, card, mi, t);
    out += "</div>\n";

    out += "<h2>Cases</h2>\n<table>\n<thead><tr><th>Case</th>";
    for (const RouteScore& r : card.routes) out += "<th>" + html_escape(r.name) + "</th>";
    out += "</tr></thead>\n<tbody>\n";
    for (std::size_t c = 0; c < card.case_ids.size(); ++c) {
        out += "<tr><td>" + html_escape(card.case_ids[c]) + "</td>";
        for (std::size_t r = 0; r < card.routes.size(); ++r) {
            const CaseOutcome& x = card.outcome(r, c);
            const std::string v = rep::verdict(x);
            const std::string detail = x.answered ? x.answer : x.message;
            out += std::string(v == "ok" ? "<td class=\"ok\"" : "<td class=\"fail\"") + " title=\"" +
                   html_escape(rep::cut(detail, 400)) + "\">" + html_escape(v) + "</td>";
        }
        out += "</tr>\n";
    }
    out += "</tbody>\n</table>\n</body>\n</html>\n";
    return out;
}

FAILOVER_END_NAMESPACE
