// SPDX-License-Identifier: MIT
// The route report card (report.hpp): the golden-case parser against hostile
// input, the scoring definitions on in-process routes, and the whole run end
// to end over real HTTP on loopback: a chain of OpenAI, Anthropic, Gemini and a
// deliberately worse OpenAI route, each mock route answering the golden cases
// of examples/report/cases.jsonl from a fixed answer set (MockRoute::answer).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <failover/failover.hpp>
#include <failover/report.hpp>

#include "support/catch.hpp"
#include "support/paths.hpp"
#include "support/loopback.hpp"
#include "support/report_answers.hpp"

using failover::CaseError;
using failover::GoldenCase;
using failover::Measure;
using failover_mock::Fault;
using failover_test::good_answers;
using failover_test::worse_answers;
using Json = nlohmann::json;

namespace {

std::filesystem::path example_cases() {
    return std::filesystem::path(failover_test::readme_path()).parent_path() / "examples" / "report" / "cases.jsonl";
}

/// The text of a case's last user message: what the mock keys its answers on.
std::string key_of(const GoldenCase& c) {
    for (auto it = c.messages.rbegin(); it != c.messages.rend(); ++it)
        if (it->role == failover::Role::user) return it->content;
    return {};
}

/// The CaseError parse_case throws for `line`, or a failed check.
CaseError parse_error(const std::string& line, std::size_t line_no = 7) {
    try {
        (void)failover::parse_case(line, line_no);
    } catch (const CaseError& e) {
        return e;
    }
    FAIL("accepted: " << line);
    return CaseError(0, "", "");
}

/// "" when every element of `html` closes in the order it opened (void elements and
/// self-closed SVG elements aside), else what is wrong.
std::string nesting_problem(const std::string& html) {
    static const std::set<std::string> void_elements{"meta", "br", "hr", "img", "input", "link", "col", "wbr"};
    std::vector<std::string> open;
    std::size_t i = 0;
    while ((i = html.find('<', i)) != std::string::npos) {
        const std::size_t end = html.find('>', i);
        if (end == std::string::npos) return "a tag is not closed at " + std::to_string(i);
        std::string tag = html.substr(i + 1, end - i - 1);
        i = end + 1;
        if (tag.empty()) return "empty tag";
        if (tag[0] == '!') continue;  // <!DOCTYPE html>
        const bool closing = tag[0] == '/';
        const bool self_closed = tag.back() == '/';
        std::string name = tag.substr(closing ? 1 : 0);
        name = name.substr(0, name.find_first_of(" /\n\t"));
        if (name.empty()) return "a tag without a name";
        if (closing) {
            if (open.empty() || open.back() != name)
                return "</" + name + "> closes <" + (open.empty() ? std::string("nothing") : open.back()) + ">";
            open.pop_back();
        } else if (!self_closed && !void_elements.count(name)) {
            open.push_back(name);
        }
    }
    return open.empty() ? std::string() : "<" + open.back() + "> never closed";
}

std::size_t occurrences(const std::string& hay, const std::string& needle) {
    std::size_t n = 0;
    for (std::size_t p = hay.find(needle); p != std::string::npos; p = hay.find(needle, p + needle.size())) ++n;
    return n;
}

/// A route answering from a table (case prompt -> response), in process.
failover::ReportRoute table_route(std::string name, std::map<std::string, failover::Result<failover::ChatResponse>> table) {
    return failover::ReportRoute{std::move(name), [table = std::move(table)](const failover::ChatRequest& req) {
                                     const auto it = table.find(req.messages.back().content);
                                     if (it == table.end()) return failover::Result<failover::ChatResponse>(failover::Failure::of(failover::Reason::not_found, "no answer"));
                                     return it->second;
                                 }};
}

failover::ChatResponse text_answer(std::string text, double cost = 0.0) {
    failover::ChatResponse r;
    r.text = std::move(text);
    r.cost_usd = cost;
    return r;
}

}  // namespace

// ------------------------------------------------------------------ the parser

TEST_CASE("report cases: a full case parses into its request", "[report]") {
    const GoldenCase c = failover::parse_case(
        R"({"id":"t1","system":"Be brief.","prompt":"Weather in Paris?","max_tokens":64,)"
        R"("tools":[{"name":"get_weather","description":"d","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}],)"
        R"("expect_tool":{"name":"get_weather","arguments":{"city":"Paris"}},"expect_contains":["a","b"],)"
        R"("expect_json":{"/city":"Paris","":{"city":"Paris"}}})",
        3);
    CHECK(c.id == "t1");
    CHECK(c.line == 3);
    REQUIRE(c.messages.size() == 2);
    CHECK(c.messages[0].role == failover::Role::system);
    CHECK(c.messages[1].content == "Weather in Paris?");
    REQUIRE(c.tools.size() == 1);
    CHECK(c.tools[0].parameters["required"] == Json::array({"city"}));
    REQUIRE(c.expect_tool);
    CHECK(c.expect_tool->arguments == Json{{"city", "Paris"}});
    CHECK(c.expect_contains == std::vector<std::string>{"a", "b"});
    REQUIRE(c.expect_json.size() == 2);

    failover::ChatRequest defaults;
    defaults.tenant = "ci";
    defaults.max_tokens = 10;
    const failover::ChatRequest req = c.request(defaults);
    CHECK(req.tenant == "ci");
    CHECK(req.max_tokens == 64);
    CHECK(req.tools.size() == 1);
    CHECK_FALSE(req.schema);

    const GoldenCase m = failover::parse_case(
        R"({"id":"m","messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"role":"user","content":"c"}],"schema":{"type":"object"}})");
    CHECK(m.messages.size() == 3);
    REQUIRE(m.schema);
    CHECK(m.schema->accepts(Json::object()));
    CHECK_FALSE(m.schema->accepts(Json::array()));
}

TEST_CASE("report cases: every problem names its line and field", "[report]") {
    struct Row {
        const char* line;
        const char* pointer;
        const char* reason;
    };
    const Row rows[] = {
        {R"({"prompt":"x"})", "/id", "missing"},
        {R"({"id":"","prompt":"x"})", "/id", "must not be empty"},
        {R"({"id":7,"prompt":"x"})", "/id", "must be a string"},
        {"{\"id\":\"a\\u0001b\",\"prompt\":\"x\"}", "/id", "control characters"},
        {R"({"id":"a"})", "", "needs \"prompt\" or \"messages\""},
        {R"({"id":"a","prompt":"x","messages":[{"role":"user","content":"y"}]})", "/messages", "not both"},
        {R"({"id":"a","prompt":"x","colour":"red"})", "/colour", "unknown field"},
        {R"({"id":"a","prompt":"x","a/b~c":1})", "/a~1b~0c", "unknown field"},
        {R"({"id":"a","messages":[]})", "/messages", "non-empty array"},
        {R"({"id":"a","messages":[{"role":"robot","content":"y"}]})", "/messages/0/role", "must be \"system\""},
        {R"({"id":"a","messages":[{"role":"user","content":"y","name":"n"}]})", "/messages/0/name", "unknown field"},
        {R"({"id":"a","messages":[{"role":"assistant","content":"y"}]})", "/messages", "at least one user message"},
        {R"({"id":"a","prompt":"x","schema":{"type":"objekt"}})", "/schema/type", ""},
        {R"({"id":"a","prompt":"x","schema":"object"})", "/schema", "JSON Schema"},
        {R"({"id":"a","prompt":"x","tools":[{"name":"bad name"}]})", "/tools/0/name", "A-Z"},
        {R"({"id":"a","prompt":"x","tools":[{"name":"t","parameters":{"type":"object","minProperties":-1}}]})",
         "/tools/0/parameters/minProperties", ""},
        {R"({"id":"a","prompt":"x","tools":[{"name":"t"},{"name":"t"}]})", "/tools/1/name", "duplicate tool"},
        {R"({"id":"a","prompt":"x","expect_tool":{"name":"t"}})", "/expect_tool", "needs \"tools\""},
        {R"({"id":"a","prompt":"x","tools":[{"name":"t"}],"expect_tool":{"name":"u"}})", "/expect_tool/name",
         "not one of the case's tools"},
        {R"({"id":"a","prompt":"x","tools":[{"name":"t"}],"expect_tool":{"name":"t","arguments":[]}})",
         "/expect_tool/arguments", "must be an object"},
        {R"({"id":"a","prompt":"x","expect_contains":[""]})", "/expect_contains/0", "must not be empty"},
        {R"({"id":"a","prompt":"x","expect_contains":"Paris"})", "/expect_contains", "array of strings"},
        {R"({"id":"a","prompt":"x","expect_json":{"total":1}})", "/expect_json/total", "not a JSON pointer"},
        {R"({"id":"a","prompt":"x","expect_json":{"/a~2":1}})", "/expect_json/~1a~02", "not a JSON pointer"},
        {R"({"id":"a","prompt":"x","max_tokens":0})", "/max_tokens", "1 to 1000000"},
        {R"({"id":"a","prompt":"x","max_tokens":1.5})", "/max_tokens", "1 to 1000000"},
        {R"({"id":"a","prompt":"x","max_tokens":18446744073709551615})", "/max_tokens", "1 to 1000000"},
        {R"(["id","a"])", "", "must be a JSON object"},
        {R"({"id":"a","prompt":"x")", "", "not valid JSON"},
        {"{\"id\":\"a\",\"prompt\":\"\xff\xfe\"}", "", "not valid JSON"},
    };
    for (const Row& row : rows) {
        INFO(row.line);
        const CaseError e = parse_error(row.line, 7);
        CHECK(e.line() == 7);
        CHECK(e.pointer() == row.pointer);
        CHECK_THAT(e.reason(), Catch::Contains(row.reason));
        CHECK_THAT(std::string(e.what()), Catch::Contains("failover: cases line 7: "));
    }
}

TEST_CASE("report cases: a file is read line by line, within its limits", "[report]") {
    SECTION("BOM, CRLF and blank lines are accepted, ids must be unique") {
        std::istringstream in("\xEF\xBB\xBF{\"id\":\"a\",\"prompt\":\"x\"}\r\n\r\n   \n{\"id\":\"b\",\"prompt\":\"y\"}");
        const auto cases = failover::load_cases(in);
        REQUIRE(cases.size() == 2);
        CHECK(cases[0].id == "a");
        CHECK(cases[1].id == "b");
        CHECK(cases[1].line == 4);

        std::istringstream dup("{\"id\":\"a\",\"prompt\":\"x\"}\n{\"id\":\"b\",\"prompt\":\"x\"}\n{\"id\":\"a\",\"prompt\":\"y\"}\n");
        try {
            (void)failover::load_cases(dup);
            FAIL("a duplicate id was accepted");
        } catch (const CaseError& e) {
            CHECK(e.line() == 3);
            CHECK(e.pointer() == "/id");
            CHECK_THAT(e.reason(), Catch::Contains("first on line 1"));
        }
    }
    SECTION("a bad line is named, past good ones") {
        std::istringstream in("{\"id\":\"a\",\"prompt\":\"x\"}\n\n{\"id\":\"b\",\"prompt\":\"x\",\"expect\":1}\n");
        try {
            (void)failover::load_cases(in);
            FAIL("accepted");
        } catch (const CaseError& e) {
            CHECK(e.line() == 3);
            CHECK(e.pointer() == "/expect");
        }
    }
    SECTION("a line over the limit is refused without being kept whole") {
        failover::CaseLimits limits;
        limits.max_line_bytes = 100;
        std::istringstream in("{\"id\":\"a\",\"prompt\":\"" + std::string(5000, 'x') + "\"}\n");
        try {
            (void)failover::load_cases(in, limits);
            FAIL("accepted");
        } catch (const CaseError& e) {
            CHECK(e.line() == 1);
            CHECK_THAT(e.reason(), Catch::Contains("longer than 100 bytes"));
        }
    }
    SECTION("too many cases, nesting too deep") {
        failover::CaseLimits limits;
        limits.max_cases = 2;
        std::istringstream in("{\"id\":\"a\",\"prompt\":\"x\"}\n{\"id\":\"b\",\"prompt\":\"x\"}\n{\"id\":\"c\",\"prompt\":\"x\"}\n");
        CHECK_THROWS_AS(failover::load_cases(in, limits), CaseError);
        const std::string deep = "{\"id\":\"a\",\"prompt\":\"x\",\"expect_json\":{\"/a\":" + std::string(100000, '[') +
                                 std::string(100000, ']') + "}}";
        const CaseError e = parse_error(deep, 1);
        CHECK_THAT(e.reason(), Catch::Contains("nested deeper than 64"));
    }
    SECTION("the example file loads") {
        const auto cases = failover::load_cases_file(example_cases());
        CHECK(cases.size() == 10);
        CHECK_THROWS_AS(failover::load_cases_file(example_cases().string() + ".missing"), std::runtime_error);
    }
}

TEST_CASE("report cases: hostile lines never escape as anything but CaseError", "[report]") {
    // Mutations of valid cases (byte flips, cuts, splices of hostile fragments), with a
    // fixed seed: each must parse into a sane case or be refused with its line number.
    const std::vector<std::string> seeds = {
        R"({"id":"a","prompt":"x","schema":{"type":"object","properties":{"t":{"type":"number"}},"required":["t"]},"expect_json":{"/t":1}})",
        R"({"id":"b","messages":[{"role":"user","content":"hi"}],"tools":[{"name":"f","parameters":{"type":"object"}}],"expect_tool":{"name":"f","arguments":{"k":[1,2]}}})",
        R"({"id":"c","system":"s","prompt":"p","expect_contains":["x","y"],"max_tokens":5})",
    };
    const std::vector<std::string> fragments = {
        "\"", "\\", "{", "}", "[", "]", ":", ",", "\\u0000", "\\ud800", "\xc3\x28", "\x00", "1e999", "-0",
        "null", "true", "\"$ref\":\"#\"", "\"pattern\":\"(a+)+$\"", "\"/~3\"", std::string(70, '['), "\"id\":\"a\"",
        "\"schema\":{\"$ref\":\"#/definitions/x\"}", "\"tools\":[{}]", "18446744073709551616"};
    std::mt19937_64 rng(20261203);
    std::size_t accepted = 0;
    std::size_t refused = 0;
    for (int i = 0; i < 4000; ++i) {
        std::string s = seeds[rng() % seeds.size()];
        const int edits = 1 + static_cast<int>(rng() % 4);
        for (int k = 0; k < edits && !s.empty(); ++k) {
            const std::size_t at = rng() % s.size();
            switch (rng() % 4) {
                case 0: s[at] = static_cast<char>(rng() % 256); break;
                case 1: s.erase(at, 1 + rng() % 8); break;
                case 2: s.insert(at, fragments[rng() % fragments.size()]); break;
                default: s.resize(at); break;
            }
        }
        try {
            const GoldenCase c = failover::parse_case(s, 42);
            ++accepted;
            CHECK_FALSE(c.id.empty());
            CHECK_FALSE(c.messages.empty());
            CHECK(std::any_of(c.messages.begin(), c.messages.end(),
                              [](const failover::Message& m) { return m.role == failover::Role::user; }));
            if (c.expect_tool) CHECK(std::any_of(c.tools.begin(), c.tools.end(), [&](const failover::Tool& t) {
                return t.name == c.expect_tool->name;
            }));
        } catch (const CaseError& e) {
            ++refused;
            CHECK(e.line() == 42);
            CHECK(std::string(e.what()).rfind("failover: cases line 42: ", 0) == 0);
            CHECK(Json(std::string(e.what())).dump().size() > 0);  // the message is valid UTF-8
        }
    }
    CHECK(accepted > 0);
    CHECK(refused > 0);

    // The same through load_cases: random lines, each with a line number.
    for (int i = 0; i < 200; ++i) {
        std::string file;
        for (int l = 0; l < 5; ++l) {
            std::string s = seeds[rng() % seeds.size()];
            s.insert(rng() % s.size(), fragments[rng() % fragments.size()]);
            file += s + (rng() % 2 ? "\n" : "\r\n");
        }
        std::istringstream in(file);
        try {
            (void)failover::load_cases(in);
        } catch (const CaseError& e) {
            CHECK(e.line() >= 1);
            CHECK(e.line() <= 5);
        }
    }
}

// ------------------------------------------------------------------ scoring, in process

TEST_CASE("report scoring: agreement, refusals, errors and cost follow their definitions", "[report]") {
    std::vector<GoldenCase> cases;
    cases.push_back(failover::parse_case(R"({"id":"text","prompt":"q-text","expect_contains":["PARIS"]})"));
    cases.push_back(failover::parse_case(
        R"({"id":"json","prompt":"q-json","schema":{"type":"object","required":["a"]},"expect_json":{"/a":1,"/b/0":"X"}})"));
    cases.push_back(failover::parse_case(
        R"({"id":"tool","prompt":"q-tool","tools":[{"name":"f","parameters":{"type":"object","properties":{"n":{"type":"integer"}}}}],"expect_tool":{"name":"f","arguments":{"n":2}}})"));
    cases.push_back(failover::parse_case(R"({"id":"refuse","prompt":"q-refuse"})"));

    failover::ChatResponse json_answer = text_answer(R"({"a":1.0,"b":["  x "]})", 0.5);
    json_answer.json = Json{{"a", 1.0}, {"b", {"  x "}}};
    failover::ChatResponse tool_answer = text_answer("", 0.25);
    tool_answer.tool_calls.push_back(failover::ToolCall{"c1", "f", Json{{"n", 2}, {"extra", true}}, {}, false});

    failover::ChatResponse other_json = text_answer("{}", 0.1);
    other_json.json = Json{{"a", 2}};
    failover::ChatResponse bad_tool = text_answer("", 0.1);
    bad_tool.tool_calls.push_back(failover::ToolCall{"c1", "f", Json{{"n", "two"}}, {}, false});
    failover::Failure blocked = failover::Failure::of(failover::Reason::content_filter, "blocked");

    std::vector<failover::ReportRoute> routes;
    routes.push_back(table_route("primary", {{"q-text", text_answer("The capital of France is Paris.", 1.0)},
                                             {"q-json", json_answer},
                                             {"q-tool", tool_answer},
                                             {"q-refuse", text_answer("Sure, here it is.", 0.25)}}));
    routes.push_back(table_route("same", {{"q-text", text_answer("Paris is the capital of  FRANCE", 1.0)},
                                          {"q-json", json_answer},
                                          {"q-tool", tool_answer},
                                          {"q-refuse", text_answer("Sure, here it is.", 1.0)}}));
    routes.push_back(table_route("worse", {{"q-text", text_answer("London.", 0.2)},
                                           {"q-json", other_json},
                                           {"q-tool", bad_tool},
                                           {"q-refuse", text_answer("I\xE2\x80\x99m sorry, but I can\xE2\x80\x99t do that.", 0.1)}}));
    routes.push_back(table_route("blocked", {{"q-text", blocked}}));  // the rest: not_found errors

    std::vector<std::size_t> seen;
    std::mutex mu;
    failover::ReportOptions o;
    o.concurrency = 3;
    const failover::ReportCard card = failover::run_report(routes, cases, o, [&](const failover::ReportProgress& p) {
        std::lock_guard lock(mu);
        seen.push_back(p.done);
        CHECK(p.total == 16);
    });
    REQUIRE(seen.size() == 16);
    for (std::size_t i = 0; i < seen.size(); ++i) CHECK(seen[i] == i + 1);

    const failover::RouteScore& primary = card.routes[0];
    CHECK(primary.primary);
    CHECK(primary.answered == 4);
    CHECK(primary.agreement.passed == 4);
    CHECK(primary.content_matched.passed == 2);  // "PARIS" in any case; 1.0 == 1 and "  x " == "X" after normalising
    CHECK(primary.content_matched.of == 2);
    CHECK(primary.tool_expected.passed == 1);  // arguments are a subset match
    CHECK(primary.tool_valid.passed == 1);
    CHECK(primary.schema_valid.passed == 1);
    CHECK(primary.cost_usd == Approx(2.0));
    CHECK(primary.cost_per_case() == Approx(0.5));

    const failover::RouteScore& same = card.routes[1];
    CHECK(same.agreement.passed == 4);  // same word set, equal JSON, equal tool calls, same text
    CHECK(same.agreement.of == 4);

    const failover::RouteScore& worse = card.routes[2];
    CHECK(worse.answered == 4);
    CHECK(worse.agreement.passed == 0);
    CHECK(worse.schema_valid.passed == 1);  // {"a":2} is valid, just not what was expected
    CHECK(worse.content_matched.passed == 0);
    CHECK(worse.tool_valid.passed == 0);  // "two" is not an integer
    CHECK(worse.tool_expected.passed == 0);
    CHECK(worse.refusals.passed == 1);  // the typographic apostrophe reads as '
    CHECK(worse.refusals.of == 4);
    CHECK(worse.errors.passed == 0);
    CHECK(card.outcome(2, 3).refused);
    CHECK(card.outcome(2, 3).answered);

    const failover::RouteScore& b = card.routes[3];
    CHECK(b.answered == 0);
    CHECK(b.refusals.passed == 1);  // a policy failure
    CHECK(b.errors.passed == 3);    // not_found
    CHECK_FALSE(b.cost_per_case());
    CHECK_FALSE(b.value(Measure::cost_per_case));
    CHECK(card.outcome(3, 0).failure == failover::Reason::content_filter);
    CHECK(card.outcome(3, 1).schema_valid == false);

    // Thresholds: n/a is never a breach, limits are inclusive.
    failover::ReportThresholds t;
    t.max_refusals = 0.25;  // worse and blocked are exactly at it
    t.min_agreement = 1.0;
    const auto breaches = failover::evaluate(card, t);
    REQUIRE(breaches.size() == 2);
    CHECK(breaches[0].route == "worse");
    CHECK(breaches[0].measure == Measure::agreement);
    CHECK(breaches[1].route == "blocked");
    CHECK(breaches[1].measure == Measure::agreement);
    CHECK_THAT(breaches[0].describe(), Catch::Contains("worse: agreement 0.0 % below the minimum 100.0 %"));
}

TEST_CASE("report scoring: concurrency does not change the card, and failures of the caller's code are contained", "[report]") {
    std::vector<GoldenCase> cases;
    for (int i = 0; i < 12; ++i)
        cases.push_back(failover::parse_case("{\"id\":\"c" + std::to_string(i) + "\",\"prompt\":\"p" + std::to_string(i) + "\"}"));
    std::atomic<int> calls{0};
    std::vector<failover::ReportRoute> routes;
    routes.push_back({"a", [&](const failover::ChatRequest& r) {
                          ++calls;
                          return failover::Result<failover::ChatResponse>(text_answer("answer " + r.messages.back().content, 0.01));
                      }});
    routes.push_back({"b", [&](const failover::ChatRequest& r) -> failover::Result<failover::ChatResponse> {
                          ++calls;
                          if (r.messages.back().content == "p3") throw std::runtime_error("boom");
                          return text_answer(r.messages.back().content == "p5" ? "something else entirely" : "answer " + r.messages.back().content);
                      }});
    failover::ReportOptions one;
    one.concurrency = 1;
    failover::ReportOptions many;
    many.concurrency = 16;
    const auto a = failover::run_report(routes, cases, one);
    const auto b = failover::run_report(routes, cases, many, [](const failover::ReportProgress&) { throw std::logic_error("bad progress"); });
    CHECK(calls == 48);
    for (const auto* card : {&a, &b}) {
        CHECK(card->routes[1].errors.passed == 1);
        CHECK(card->routes[1].agreement.passed == 10);
        CHECK(card->outcome(1, 3).failure == failover::Reason::internal);
        CHECK_THAT(card->outcome(1, 3).message, Catch::Contains("boom"));
    }
    for (std::size_t r = 0; r < 2; ++r)
        for (const auto& mi : failover::measures())
            if (const failover::Tally* ta = a.routes[r].tally(mi.measure)) {
                const failover::Tally* tb = b.routes[r].tally(mi.measure);
                CHECK(ta->passed == tb->passed);
                CHECK(ta->of == tb->of);
            }
    for (std::size_t r = 0; r < 2; ++r)
        for (std::size_t c = 0; c < cases.size(); ++c) {
            CHECK(a.outcome(r, c).answered == b.outcome(r, c).answered);
            CHECK(a.outcome(r, c).agrees == b.outcome(r, c).agrees);
        }

    CHECK_THROWS_AS(failover::run_report(std::vector<failover::ReportRoute>{}, cases), std::invalid_argument);
    CHECK_THROWS_AS(failover::run_report(routes, std::vector<GoldenCase>{}), std::invalid_argument);
    failover::ReportOptions zero;
    zero.concurrency = 0;
    CHECK_THROWS_AS(failover::run_report(routes, cases, zero), std::invalid_argument);
    auto twice = routes;
    twice[1].name = "a";
    CHECK_THROWS_AS(failover::run_report(twice, cases), std::invalid_argument);
    auto dup_cases = cases;
    dup_cases[1].id = "c0";
    CHECK_THROWS_AS(failover::run_report(routes, dup_cases), std::invalid_argument);
}

TEST_CASE("report over a Router: each route answers on its own, refusal text is a refusal", "[report]") {
    failover::Router router{
        failover::Route{"canned", failover::StaticReply{"I can't help with that request."}},
        failover::Route{"local", failover::StaticReply{"The capital of France is Paris."}},
    };
    const std::vector<GoldenCase> cases{failover::parse_case(R"({"id":"capital","prompt":"Capital of France?","expect_contains":["paris"]})")};
    const failover::ReportCard card = failover::run_report(router, cases);
    REQUIRE(card.routes.size() == 2);
    CHECK(card.routes[0].name == "canned");
    CHECK(card.routes[0].refusals.passed == 1);
    CHECK(card.routes[0].content_matched.passed == 0);
    CHECK(card.routes[1].content_matched.passed == 1);  // the second route answered itself: no failover happened
    CHECK(card.routes[1].agreement.passed == 0);
    CHECK(card.outcome(1, 0).answer == "The capital of France is Paris.");

    failover::ReportOptions o;
    o.refusal_markers.clear();
    CHECK(failover::run_report(router, cases, o).routes[0].refusals.passed == 0);
}

TEST_CASE("report: a route whose breaker opens fails its later cases at once, as a chain would skip it", "[report]") {
    // Alone in a one-route chain, an open breaker would make the chain wait for the route to
    // recover (30 s, up to max_recovery_waits times) and then probe it again: each later case
    // would end as server_error after minutes. The report sends without that wait.
    failover::Router router{failover::Route{"down", failover::HardError{failover::Failure::of(failover::Reason::server_error, "down")}}};
    std::vector<GoldenCase> cases;
    for (int i = 0; i < 6; ++i)
        cases.push_back(failover::parse_case(R"({"id":"c)" + std::to_string(i) + R"(","prompt":"hi"})"));
    failover::ReportOptions o;
    o.concurrency = 1;
    const failover::ReportCard card = failover::run_report(router, cases, o);
    // Two attempts a case (max_attempts 2), five failures in a row open the breaker: the
    // first three cases reach the route, the other three find it open.
    for (std::size_t c = 0; c < 3; ++c) CHECK(card.outcome(0, c).failure == failover::Reason::server_error);
    for (std::size_t c = 3; c < 6; ++c) CHECK(card.outcome(0, c).failure == failover::Reason::breaker_open);
}

// ------------------------------------------------------------------ the mock's answer sets

TEST_CASE("report mock: keyed answers come after the script, the longest key wins", "[report]") {
    failover_test::LoopbackFixture fx;
    auto& r = fx.mock.route("keyed");
    r.answer("capital", Fault::ok("generic")).answer("capital of France", Fault::ok("Paris")).then(Fault::ok("scripted"));
    r.answer("capital", Fault::ok("any capital"));  // replaces
    CHECK(r.answers() == 2);
    failover::Route route{"keyed", fx.openai("keyed"), fx.http};
    auto ask = [&](std::string q) {
        auto res = failover::route_with_fallback(failover::ChatRequest{.messages = {failover::user(std::move(q))}}, route);
        REQUIRE(res);
        return res->text;
    };
    CHECK(ask("the capital of France?") == "scripted");
    CHECK(ask("the capital of France?") == "Paris");
    CHECK(ask("a capital?") == "any capital");
    CHECK(ask("something else") == "ok");
    r.reset();
    CHECK(r.answers() == 0);
    CHECK(ask("the capital of France?") == "ok");
}

// ------------------------------------------------------------------ end to end

TEST_CASE("report end to end: four providers over loopback, the worse route is flagged", "[report]") {
    failover_test::LoopbackFixture fx;
    const std::vector<GoldenCase> cases = failover::load_cases_file(example_cases());
    REQUIRE(cases.size() == 10);

    auto give = [&](const std::string& route, const std::map<std::string, Fault>& answers) {
        for (const GoldenCase& c : cases) {
            INFO(c.id);
            REQUIRE(answers.count(c.id) == 1);
            fx.mock.route(route).answer(key_of(c), answers.at(c.id));
        }
        fx.mock.route(route).otherwise(Fault::status(404));  // a request outside the answer set would show
    };
    give("primary", good_answers(false));
    give("secondary", good_answers(true));
    give("gemini", good_answers(false));
    give("cheap", worse_answers());

    auto priced = [](double in, double out) {
        failover::RouteOptions o;
        o.price = {in, out};
        return o;
    };
    std::vector<failover::AnyRoute> chain;
    chain.emplace_back(failover::Route{"primary", fx.openai("primary"), fx.http, priced(2.5, 10.0)});
    chain.emplace_back(failover::Route{"secondary", fx.anthropic("secondary"), fx.http, priced(3.0, 15.0)});
    chain.emplace_back(failover::Route{"gemini", fx.gemini("gemini"), fx.http, priced(0.3, 2.5)});
    chain.emplace_back(failover::Route{"cheap", fx.openai("cheap"), fx.http, priced(0.1, 0.4)});
    failover::DynamicRouter router{std::move(chain), fx.options()};

    std::mutex mu;
    std::vector<failover::ReportProgress> progress;
    failover::ReportOptions o;
    o.concurrency = 3;
    const failover::ReportCard card = failover::run_report(router, cases, o, [&](const failover::ReportProgress& p) {
        std::lock_guard lock(mu);
        progress.push_back(p);
    });

    // Each case went to each route on its own: no failover, repair turns only on the worse route.
    CHECK(fx.mock.route("primary").requests() == 10);
    CHECK(fx.mock.route("secondary").requests() == 10);
    CHECK(fx.mock.route("gemini").requests() == 10);
    CHECK(fx.mock.route("cheap").requests() == 12);  // invoice-fields and ticket-tool: one repair turn each
    REQUIRE(progress.size() == 40);
    CHECK(progress.back().done == 40);
    CHECK(progress.back().total == 40);
    CHECK(std::count_if(progress.begin(), progress.end(), [](const auto& p) { return p.route == "cheap" && !p.answered; }) == 4);

    REQUIRE(card.routes.size() == 4);
    CHECK(card.case_ids.front() == "invoice-fields");
    for (std::size_t r = 0; r < 3; ++r) {
        const failover::RouteScore& s = card.routes[r];
        INFO(s.name);
        for (std::size_t c = 0; c < 10; ++c) INFO(card.outcome(r, c).case_id << ": " << card.outcome(r, c).message);
        CHECK(s.answered == 10);
        CHECK(s.schema_valid.passed == 3);
        CHECK(s.schema_valid.of == 3);
        CHECK(s.tool_valid.passed == 3);
        CHECK(s.tool_expected.passed == 3);
        CHECK(s.tool_expected.of == 3);
        CHECK(s.content_matched.passed == 7);
        CHECK(s.content_matched.of == 7);
        CHECK(s.agreement.passed == 10);
        CHECK(s.refusals.passed == 0);
        CHECK(s.errors.passed == 0);
        CHECK(s.cost_usd > 0.0);
        CHECK(s.latency_p50 <= s.latency_p99);
        CHECK(s.latency_p99.count() > 0);
    }
    CHECK(card.routes[0].primary);

    const failover::RouteScore& cheap = *card.route("cheap");
    CHECK_FALSE(cheap.primary);
    CHECK(cheap.answered == 6);
    CHECK(cheap.schema_valid.passed == 2);
    CHECK(cheap.schema_valid.of == 3);
    CHECK(cheap.tool_valid.passed == 2);
    CHECK(cheap.tool_valid.of == 3);
    CHECK(cheap.tool_expected.passed == 1);
    CHECK(cheap.content_matched.passed == 2);
    CHECK(cheap.content_matched.of == 7);
    CHECK(cheap.agreement.passed == 3);
    CHECK(cheap.agreement.of == 10);
    CHECK(cheap.refusals.passed == 1);
    CHECK(cheap.errors.passed == 1);
    CHECK(card.outcome(3, 0).failure == failover::Reason::schema_invalid);
    CHECK(card.outcome(3, 4).failure == failover::Reason::tool_call_invalid);
    CHECK(card.outcome(3, 6).failure == failover::Reason::refusal);
    CHECK(card.outcome(3, 9).failure == failover::Reason::bad_request);
    CHECK(card.outcome(3, 9).status == 400);

    // Cost: the route's price over the usage the provider reported, per answered case.
    double cheap_total = 0.0;
    for (std::size_t c = 0; c < 10; ++c) cheap_total += card.outcome(3, c).cost_usd;
    CHECK(cheap.cost_usd == Approx(cheap_total));
    REQUIRE(cheap.cost_per_case());
    CHECK(*cheap.cost_per_case() == Approx(cheap_total / 6.0));
    CHECK(*cheap.cost_per_case() < *card.routes[0].cost_per_case());

    failover::ReportThresholds t;
    t.min_schema_valid = 0.9;
    t.min_tool_valid = 0.9;
    t.min_tool_expected = 0.9;
    t.min_content_matched = 0.9;
    t.min_agreement = 0.8;
    t.max_refusals = 0.05;
    t.max_errors = 0.05;
    t.max_latency_p99_ms = 120000;
    t.max_cost_per_case = 1.0;
    const std::vector<failover::Breach> breaches = failover::evaluate(card, t);
    std::set<Measure> flagged;
    for (const auto& b : breaches) {
        CHECK(b.route == "cheap");
        flagged.insert(b.measure);
    }
    CHECK(flagged == std::set<Measure>{Measure::schema_valid, Measure::tool_valid, Measure::tool_expected,
                                       Measure::content_matched, Measure::agreement, Measure::refusals, Measure::errors});
    CHECK(breaches.size() == 7);

    // FAILOVER_REPORT_DIR=dir keeps the three renderings, to look at (e.g. in a browser).
    if (const char* dir = std::getenv("FAILOVER_REPORT_DIR")) {
        std::ofstream(std::filesystem::path(dir) / "report.md") << failover::to_markdown(card, t);
        std::ofstream(std::filesystem::path(dir) / "report.json") << failover::to_json(card, t).dump(2);
        std::ofstream(std::filesystem::path(dir) / "report.html") << failover::to_html(card, t);
    }

    SECTION("markdown carries the numbers and the verdict") {
        const std::string md = failover::to_markdown(card, t);
        CHECK_THAT(md, Catch::Contains("| primary (primary) | 10/10 |"));
        CHECK_THAT(md, Catch::Contains("| cheap | 6/10 | 66.7 % (2/3) \xE2\x9C\x97 | 66.7 % (2/3) \xE2\x9C\x97 | 33.3 % (1/3) \xE2\x9C\x97 | 28.6 % (2/7) \xE2\x9C\x97 | 30.0 % (3/10) \xE2\x9C\x97 | 10.0 % (1/10) \xE2\x9C\x97 | 10.0 % (1/10) \xE2\x9C\x97 |"));
        CHECK_THAT(md, Catch::Contains("| gemini | 10/10 | 100.0 % (3/3) | 100.0 % (3/3) | 100.0 % (3/3) | 100.0 % (7/7) | 100.0 % (10/10) | 0.0 % (0/10) | 0.0 % (0/10) |"));
        CHECK_THAT(md, Catch::Contains("- cheap: `schema_valid` 66.7 % below the minimum 90.0 %"));
        CHECK_THAT(md, Catch::Contains("- `refusals` <= 5.0 %"));
        CHECK(occurrences(md, "\n| ") == 5);  // the header and a row per route
    }
    SECTION("JSON for CI") {
        const Json j = Json::parse(failover::to_json(card, t).dump(2));
        CHECK(j["format"] == "failover-report/1");
        CHECK(j["primary"] == "primary");
        CHECK(j["cases"].size() == 10);
        CHECK(j["passed"] == false);
        REQUIRE(j["routes"].size() == 4);
        const Json& m = j["routes"][3]["measures"];
        CHECK(j["routes"][3]["name"] == "cheap");
        CHECK(m["schema_valid"]["passed"] == 2);
        CHECK(m["schema_valid"]["of"] == 3);
        CHECK(m["schema_valid"]["value"].get<double>() == Approx(2.0 / 3.0));
        CHECK(m["agreement"]["value"].get<double>() == Approx(0.3));
        CHECK(m["errors"]["passed"] == 1);
        CHECK(m["cost_per_case_usd"]["value"].get<double>() == Approx(*cheap.cost_per_case()));
        CHECK(m["cost_per_case_usd"]["total_usd"].get<double>() == Approx(cheap.cost_usd));
        CHECK(m["latency_p99_ms"]["value"].get<double>() >= m["latency_p50_ms"]["value"].get<double>());
        CHECK(j["thresholds"]["schema_valid"]["min"].get<double>() == Approx(0.9));
        CHECK(j["thresholds"]["refusals"]["max"].get<double>() == Approx(0.05));
        REQUIRE(j["breaches"].size() == 7);
        CHECK(j["breaches"][0]["route"] == "cheap");
        REQUIRE(j["outcomes"].size() == 40);
        CHECK(j["outcomes"][30]["route"] == "cheap");
        CHECK(j["outcomes"][30]["failure"] == "schema_invalid");
        CHECK(j["outcomes"][36]["failure"] == "refusal");
        CHECK(j["outcomes"][0]["answer"] == R"({"currency":"EUR","total":12.5,"vendor":"ACME Corp"})");
        CHECK(j["outcomes"][3]["answer"] == R"([{"arguments":{"city":"Paris","unit":"celsius"},"name":"get_weather"}])");
        CHECK(j["outcomes"][8]["answer"] == "Buenos d\xC3\xAD" "as");
        failover::ReportThresholds none;
        CHECK(failover::to_json(card, none)["passed"] == true);
    }
    SECTION("HTML: self-contained, one chart per measure, well formed") {
        const std::string html = failover::to_html(card, t);
        CHECK(html.rfind("<!DOCTYPE html>\n<html", 0) == 0);
        CHECK(html.size() > 2000);
        CHECK(html.find("http://") == std::string::npos);
        CHECK(html.find("https://") == std::string::npos);
        CHECK(html.find("<script") == std::string::npos);
        CHECK(html.find("src=") == std::string::npos);
        CHECK(html.find("href=") == std::string::npos);
        CHECK(html.find("url(") == std::string::npos);
        CHECK(html.find("@import") == std::string::npos);
        CHECK(occurrences(html, "<svg") == failover::measures().size());
        CHECK(occurrences(html, "</svg>") == failover::measures().size());
        for (const auto& mi : failover::measures()) {
            INFO(mi.key);
            const std::size_t at = html.find("data-measure=\"" + std::string(mi.key) + "\"");
            REQUIRE(at != std::string::npos);
            const std::string svg = html.substr(at, html.find("</svg>", at) - at);
            CHECK(occurrences(svg, "<rect") == 4);  // a bar per route: every route has every measure here
            CHECK(occurrences(svg, "font-weight=\"bold\"") == 1);  // the primary's label
            CHECK(occurrences(svg, "stroke=\"#0b2e66\"") == 1);    // the primary's bar
            const bool has_limit = t.limit(mi.measure).has_value();
            CHECK(occurrences(svg, "class=\"threshold\"") == (has_limit ? 1u : 0u));
        }
        // The worse route's bars are drawn as breaching where it breaches.
        const std::size_t schema = html.find("data-measure=\"schema_valid\"");
        const std::string schema_svg = html.substr(schema, html.find("</svg>", schema) - schema);
        CHECK(occurrences(schema_svg, "fill=\"#d9534f\"") == 1);
        CHECK_THAT(schema_svg, Catch::Contains(">min 90.0 %</text>"));
        CHECK(nesting_problem(html).empty());
        INFO(nesting_problem(html));
        CHECK_THAT(html, Catch::Contains("cheap: schema_valid 66.7 % below the minimum 90.0 %"));
        CHECK_THAT(html, Catch::Contains("<td class=\"bad\">66.7 % (2/3)</td>"));

        // Route names and answers are escaped, not markup.
        failover::ReportCard hostile = card;
        hostile.routes[1].name = "<script>alert(1)</script>";
        hostile.outcomes[12].answer = "\"><svg onload=x>";
        const std::string h = failover::to_html(hostile, t);
        CHECK(h.find("<script") == std::string::npos);
        CHECK(occurrences(h, "<svg") == failover::measures().size());
        CHECK(nesting_problem(h).empty());
    }
}
