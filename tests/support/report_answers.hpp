// SPDX-License-Identifier: MIT
// The loopback mock providers' fixed answers to examples/report/cases.jsonl, by
// case id: a good route's (two wordings, so agreement is tested on more than
// identical text) and a deliberately worse route's. Shared by the report card's
// end-to-end test (tests/test_report.cpp) and the CLI's (examples/cli/cli_test_driver.cpp),
// which both expect exactly the worse route to be flagged.
#pragma once

#include <map>
#include <string>

#include "support/mock_provider.hpp"

namespace failover_test {

using failover_mock::Fault;

/// The answers of a good route to examples/report/cases.jsonl, by case id.
inline std::map<std::string, Fault> good_answers(bool variant) {
    return {
        {"invoice-fields", Fault::ok_json({{"vendor", variant ? "ACME corp" : "ACME Corp"}, {"total", 12.5}, {"currency", "EUR"}})},
        {"review-sentiment", Fault::ok_json({{"sentiment", "positive"}})},
        {"contact-card", Fault::ok_json({{"name", "Ada Lovelace"}, {"email", "ada@example.org"}})},
        {"weather-tool", Fault::tool_call("get_weather", {{"city", "Paris"}, {"unit", "celsius"}})},
        {"ticket-tool", Fault::tool_call("create_ticket", {{"title", "Checkout page down"}, {"priority", "high"}})},
        {"currency-tool", Fault::tool_call("convert_currency", {{"amount", 100}, {"from", "USD"}, {"to", "EUR"}})},
        {"capital", Fault::ok(variant ? "Paris is the capital of France." : "The capital of France is Paris.")},
        {"refund-summary", Fault::ok(variant ? "Shoes arrived damaged; the customer wants a refund."
                                             : "The customer's shoes arrived damaged and they want a refund.")},
        {"translate", Fault::ok("Buenos d\xC3\xAD" "as")},
        {"remember-name", Fault::ok("Your name is Sam.")},
    };
}

/// The deliberately worse route: wrong or invalid answers, a refusal and an error.
inline std::map<std::string, Fault> worse_answers() {
    auto a = good_answers(false);
    a["invoice-fields"] = Fault::schema_invalid();                                                // invalid, twice (repair)
    a["review-sentiment"] = Fault::ok_json({{"sentiment", "negative"}});                          // valid, wrong
    a["weather-tool"] = Fault::tool_call("get_weather", {{"city", "London"}});                    // valid, not expected
    a["ticket-tool"] = Fault::tool_call("create_ticket", {{"title", "Down"}, {"priority", "urgent"}});  // breaks the enum
    a["capital"] = Fault::refusal("I can't help with that.");
    a["refund-summary"] = Fault::ok("Order issue noted.");
    a["remember-name"] = Fault::status(400);
    return a;
}

}  // namespace failover_test
