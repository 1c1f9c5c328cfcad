// SPDX-License-Identifier: MIT
// libFuzzer target for the route report card's golden-case reader
// (failover/report.hpp), built with ASan and UBSan. An input is a cases file:
// JSON lines. A finding is any crash, sanitizer report, hang (-timeout), or
// broken invariant (abort): load_cases throws nothing but CaseError, whose line
// lies inside the input; every case it returns has an id, a user message, and
// an expected tool among its tools; and a report over the cases (one
// in-process route echoing each case's expectations back, one answering plain
// text) scores and renders without throwing, with every user string escaped
// in the HTML.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <failover/report.hpp>

namespace {

[[noreturn]] void finding(const char* what) {
    (void)what;
    std::abort();
}

/// An answer that meets the case's expectations where it can: the expected tool call, or the
/// expected JSON values, or the expected substrings.
failover::ChatResponse echo(const failover::ChatRequest& req, const failover::GoldenCase& c) {
    failover::ChatResponse r;
    if (c.expect_tool) {
        r.tool_calls.push_back(failover::ToolCall{"call_1", c.expect_tool->name, c.expect_tool->arguments, {}, false});
        return r;
    }
    nlohmann::json doc = nlohmann::json::object();
    for (const auto& [pointer, value] : c.expect_json) {
        // Array indices would make the echo allocate up to them: only object members are built.
        if (pointer.find_first_of("0123456789-") != std::string::npos) continue;
        try {
            doc[nlohmann::json::json_pointer(pointer)] = value;
        } catch (const nlohmann::json::exception&) {  // e.g. "/0" into an object: not every pointer can be built
        }
    }
    if (req.schema) r.json = doc;
    r.text = doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    for (const std::string& s : c.expect_contains) r.text += " " + s;
    return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string input(reinterpret_cast<const char*>(data), size);
    std::size_t lines = 1;
    for (char c : input) lines += c == '\n' ? 1 : 0;

    failover::CaseLimits limits;
    limits.max_line_bytes = 4096;
    limits.max_cases = 16;
    std::vector<failover::GoldenCase> cases;
    try {
        std::istringstream in(input);
        cases = failover::load_cases(in, limits);
    } catch (const failover::CaseError& e) {
        if (e.line() < 1 || e.line() > lines) finding("CaseError names a line outside the input");
        return 0;
    }
    if (cases.empty()) return 0;
    for (const auto& c : cases) {
        if (c.id.empty() || c.messages.empty()) finding("a case without an id or messages");
        bool user = false;
        for (const auto& m : c.messages) user = user || m.role == failover::Role::user;
        if (!user) finding("a case without a user message");
        if (c.expect_tool) {
            bool offered = false;
            for (const auto& t : c.tools) offered = offered || t.name == c.expect_tool->name;
            if (!offered) finding("expect_tool names a tool the case does not offer");
        }
    }

    std::vector<failover::ReportRoute> routes;
    routes.push_back({"echo <x-route>&\"", [&](const failover::ChatRequest& req) -> failover::Result<failover::ChatResponse> {
                          for (const auto& c : cases)
                              if (c.messages.size() == req.messages.size() && c.messages.back().content == req.messages.back().content)
                                  return echo(req, c);
                          return failover::Failure::of(failover::Reason::not_found, "no case");
                      }});
    routes.push_back({"plain", [](const failover::ChatRequest&) -> failover::Result<failover::ChatResponse> {
                          failover::ChatResponse r;
                          r.text = "I can't help with that.";
                          return r;
                      }});
    failover::ReportOptions options;
    options.concurrency = 1;
    const failover::ReportCard card = failover::run_report(routes, cases, options);
    failover::ReportThresholds t;
    t.min_agreement = 0.5;
    t.max_refusals = 0.5;
    (void)failover::to_markdown(card, t);
    (void)failover::to_json(card, t).dump();
    const std::string html = failover::to_html(card, t);
    if (html.find("<x-route") != std::string::npos || html.find("<script") != std::string::npos)
        finding("user text reached the HTML unescaped");
    if (card.routes.size() != 2 || card.outcomes.size() != 2 * cases.size()) finding("the card has the wrong shape");
    return 0;
}
