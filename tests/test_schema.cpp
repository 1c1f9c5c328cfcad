// SPDX-License-Identifier: MIT
// Schema: a bad schema fails at parse with a message naming the reason; a
// validation lists every error with an RFC 6901 pointer into the value; the
// draft-7 keywords the router's schema gate relies on work; one compiled
// schema serves many threads; hostile values (deep nesting) are reported, not
// fatal.
#include <atomic>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <failover/schema.hpp>

#include "support/catch.hpp"

using failover::Schema;
using nlohmann::json;

namespace {

// The message parse() throws for `text`, or "" when it does not throw.
std::string parse_error(const std::string& text) {
    try {
        (void)Schema::parse(text);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return {};
}

std::set<std::pair<std::string, std::string>> errors_of(const Schema& s, const json& value) {
    std::set<std::pair<std::string, std::string>> out;
    for (const auto& e : s.validate(value)) out.emplace(e.pointer, e.message);
    return out;
}

bool has_error(const std::vector<Schema::Error>& errors, const std::string& pointer, const std::string& part) {
    for (const auto& e : errors)
        if (e.pointer == pointer && e.message.find(part) != std::string::npos) return true;
    return false;
}

std::set<std::string> pointers_of(const std::vector<Schema::Error>& errors) {
    std::set<std::string> out;
    for (const auto& e : errors) out.insert(e.pointer);
    return out;
}

}  // namespace

TEST_CASE("schema: invalid schemas fail at parse and say why", "[schema]") {
    struct Case {
        std::string schema;
        std::string reason;
    };
    const Case cases[] = {
        {"{\"type\": ", "not valid JSON"},
        {"", "not valid JSON"},
        {"12", "must be a JSON object or boolean, got number"},
        {"[{\"type\":\"string\"}]", "must be a JSON object or boolean, got array"},
        {"\"object\"", "must be a JSON object or boolean, got string"},
        {"null", "must be a JSON object or boolean, got null"},
        {R"({"type": 12})", "not a string"},
        {R"({"properties":{"a":{"type":12}}})", "not a string"},
        {R"({"type":"strin"})", "Unrecognised JSON type name 'strin'"},
        {R"({"required":"total"})", "not an array"},
        {R"({"minimum":"three"})", "minimum"},
        {R"({"additionalProperties":3})", "additionalProperties"},
        {R"({"$ref":"#/definitions/missing"})", "definitions"},
        {R"({"properties":{"a":{"$ref":"#/definitions/nope"}},"definitions":{}})", "nope"},
        {R"({"$ref":"https://example.com/other.json"})", "remote JSON References"},
        {R"({"properties":{"code":{"type":"string","pattern":"([A-Z]+"}}})",
         "invalid regular expression at /properties/code/pattern ('([A-Z]+')"},
        {R"({"patternProperties":{"^x-(":{"type":"string"}}})", "invalid regular expression at /patternProperties/^x-("},
        {R"({"properties":{"a/b~c":{"items":[{"pattern":"*"}]}}})",
         "invalid regular expression at /properties/a~1b~0c/items/0/pattern"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.schema);
        const std::string msg = parse_error(c.schema);
        CHECK(msg.rfind("failover: schema: ", 0) == 0);
        CHECK(msg.find(c.reason) != std::string::npos);
    }
    // The json overload checks the same things.
    CHECK_THROWS_AS(Schema::parse(json::parse(R"({"type":12})")), std::invalid_argument);
    CHECK_THROWS_AS(Schema::parse(json::array()), std::invalid_argument);
}

TEST_CASE("schema: data that only looks like a pattern is not compiled", "[schema]") {
    // enum/const/default/examples hold data; a property may be named "pattern".
    CHECK(parse_error(R"({"enum":[{"pattern":"(("}],"default":{"pattern":"(("},"examples":[{"pattern":"(("}]})").empty());
    auto s = Schema::parse(R"({"type":"object","properties":{"pattern":{"type":"string","pattern":"^[a-z]+$"}}})");
    CHECK(s->accepts(json{{"pattern", "abc"}}));
    CHECK(has_error(s->validate(json{{"pattern", "ABC"}}), "/pattern", "regex"));
}

TEST_CASE("schema: a schema nested past max_depth is refused", "[schema]") {
    std::string deep;
    for (std::size_t i = 0; i < Schema::max_depth + 10; ++i) deep += R"({"items":)";
    deep += "{}";
    deep += std::string(Schema::max_depth + 10, '}');
    const std::string msg = parse_error(deep);
    CHECK(msg.find("nested deeper than") != std::string::npos);
}

TEST_CASE("schema: validation reports every error with a JSON pointer", "[schema]") {
    auto s = Schema::parse(R"({
        "type": "object",
        "required": ["invoice", "lines"],
        "additionalProperties": false,
        "properties": {
            "invoice": {
                "type": "object",
                "required": ["number", "total"],
                "properties": {
                    "number": {"type": "string", "pattern": "^INV-[0-9]{4}$"},
                    "total": {"type": "number", "minimum": 0},
                    "currency": {"enum": ["EUR", "USD"]}
                }
            },
            "lines": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["sku", "qty"],
                    "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}}
                }
            },
            "a/b": {"type": "integer"},
            "m~n": {"type": "boolean"},
            "~/": {"type": "null"}
        }
    })");

    SECTION("a valid document has no errors") {
        const json good = json::parse(R"({"invoice":{"number":"INV-0042","total":12.5,"currency":"EUR"},
                                          "lines":[{"sku":"A1","qty":2}],"a/b":3,"m~n":true,"~/":null})");
        CHECK(s->validate(good).empty());
        CHECK(s->accepts(good));
    }
    SECTION("every leaf error is listed where it is") {
        const json bad = json::parse(R"({"invoice":{"number":"INV-42","total":-1,"currency":"GBP"},
                                         "lines":[{"sku":"A1","qty":2},{"sku":7,"qty":0},{}],
                                         "a/b":"x","m~n":1,"~/":0,"extra":true})");
        const auto errors = s->validate(bad);
        CHECK_FALSE(s->accepts(bad));
        CHECK(has_error(errors, "/invoice/number", "regex"));
        CHECK(has_error(errors, "/invoice/total", "greater than or equal to 0"));
        CHECK(has_error(errors, "/invoice/currency", "enum"));
        CHECK(has_error(errors, "/lines/1/sku", "type"));
        CHECK(has_error(errors, "/lines/1/qty", "greater than or equal to 1"));
        CHECK(has_error(errors, "/lines/2", "Missing required property 'sku'"));
        CHECK(has_error(errors, "/lines/2", "Missing required property 'qty'"));
        CHECK(has_error(errors, "/a~1b", "type"));
        CHECK(has_error(errors, "/m~0n", "type"));
        CHECK(has_error(errors, "/~0~1", "type"));
        CHECK(has_error(errors, "", "'extra'"));
        // The first line is fine, so nothing points into it.
        CHECK(pointers_of(errors).count("/lines/0") == 0);
        CHECK(pointers_of(errors).count("/lines/0/qty") == 0);
        // Every pointer is a real RFC 6901 pointer into the document.
        for (const auto& e : errors) {
            CAPTURE(e.pointer, e.message);
            CHECK(bad.contains(json::json_pointer(e.pointer)));
        }
    }
    SECTION("missing required members are reported on their parent") {
        const auto errors = s->validate(json::object());
        CHECK(has_error(errors, "", "Missing required property 'invoice'"));
        CHECK(has_error(errors, "", "Missing required property 'lines'"));
        CHECK(has_error(s->validate(json{{"invoice", json::object()}, {"lines", json::array()}}), "/invoice",
                        "Missing required property 'total'"));
    }
    SECTION("the wrong root type") {
        const auto errors = s->validate(json::array());
        REQUIRE(errors.size() == 1);
        CHECK(errors[0].pointer.empty());
        CHECK(errors[0].message.find("type") != std::string::npos);
    }
}

TEST_CASE("schema: draft-7 keywords", "[schema]") {
    SECTION("required") {
        auto s = Schema::parse(R"({"required":["a","b"]})");
        CHECK(s->accepts(json{{"a", 1}, {"b", nullptr}}));
        CHECK(errors_of(*s, json{{"a", 1}}) ==
              std::set<std::pair<std::string, std::string>>{{"", "Missing required property 'b'."}});
        CHECK(s->accepts(json(5)));  // required applies to objects only
    }
    SECTION("enum") {
        auto s = Schema::parse(R"({"enum":["red",1,null,{"k":[1]}]})");
        CHECK(s->accepts("red"));
        CHECK(s->accepts(1));
        CHECK(s->accepts(nullptr));
        CHECK(s->accepts(json::parse(R"({"k":[1]})")));
        CHECK_FALSE(s->accepts("blue"));
        CHECK_FALSE(s->accepts(json::parse(R"({"k":[2]})")));
    }
    SECTION("pattern searches, it does not anchor") {
        auto s = Schema::parse(R"({"type":"string","pattern":"[0-9]{3}"})");
        CHECK(s->accepts("abc123def"));
        CHECK_FALSE(s->accepts("ab12"));
        auto anchored = Schema::parse(R"({"pattern":"^[0-9]{3}$"})");
        CHECK_FALSE(anchored->accepts("abc123def"));
        CHECK(anchored->accepts(42));  // pattern applies to strings only
    }
    SECTION("minimum, exclusiveMinimum (a number since draft 6), maximum") {
        auto s = Schema::parse(R"({"minimum":1.5,"maximum":10})");
        CHECK(s->accepts(1.5));
        CHECK(s->accepts(10));
        CHECK_FALSE(s->accepts(1.49));
        CHECK_FALSE(s->accepts(11));
        auto ex = Schema::parse(R"({"exclusiveMinimum":0})");
        CHECK_FALSE(ex->accepts(0));
        CHECK(ex->accepts(0.001));
    }
    SECTION("additionalProperties: false and as a schema") {
        auto closed = Schema::parse(R"({"properties":{"a":{}},"additionalProperties":false})");
        CHECK(closed->accepts(json{{"a", 1}}));
        CHECK(has_error(closed->validate(json{{"a", 1}, {"b", 2}}), "", "'b'"));
        auto typed = Schema::parse(R"({"properties":{"a":{}},"additionalProperties":{"type":"string"}})");
        CHECK(typed->accepts(json{{"a", 1}, {"b", "x"}}));
        CHECK(has_error(typed->validate(json{{"a", 1}, {"b", 2}}), "/b", "type"));
    }
    SECTION("const and if/then/else (draft 6 and 7 only)") {
        auto s = Schema::parse(R"({
            "if": {"properties": {"kind": {"const": "card"}}, "required": ["kind"]},
            "then": {"required": ["last4"]},
            "else": {"required": ["iban"]}
        })");
        CHECK(s->accepts(json{{"kind", "card"}, {"last4", "1234"}}));
        CHECK(s->accepts(json{{"kind", "bank"}, {"iban", "DE00"}}));
        CHECK_FALSE(s->accepts(json{{"kind", "card"}, {"iban", "DE00"}}));
        CHECK(has_error(s->validate(json{{"kind", "bank"}}), "", "Missing required property 'iban'"));
    }
    SECTION("integer versus number") {
        auto s = Schema::parse(R"({"type":"integer"})");
        CHECK(s->accepts(3));
        CHECK_FALSE(s->accepts(3.5));
        CHECK_FALSE(s->accepts("3"));
    }
    SECTION("boolean schemas, at the root and nested") {
        CHECK(Schema::parse("true")->accepts(json::parse(R"({"anything":[1,2]})")));
        const auto none = Schema::parse("false")->validate(1);
        REQUIRE(none.size() == 1);
        CHECK(none[0].pointer.empty());
        CHECK(none[0].message.find("false") != std::string::npos);
        auto nested = Schema::parse(R"({"properties":{"a":false},"items":[true,false]})");
        CHECK(nested->accepts(json{{"b", 1}}));
        CHECK(has_error(nested->validate(json{{"a", 1}}), "", "'a'"));
        CHECK(nested->accepts(json::parse("[1]")));
        CHECK(has_error(nested->validate(json::parse("[1,2]")), "/1", "item #1"));
    }
    SECTION("definitions and $ref") {
        auto s = Schema::parse(R"({"definitions":{"pos":{"type":"integer","minimum":1}},
                                   "type":"array","items":{"$ref":"#/definitions/pos"}})");
        CHECK(s->accepts(json::parse("[1,2,3]")));
        CHECK(has_error(s->validate(json::parse("[1,0,3]")), "/1", "greater than or equal to 1"));
    }
}

TEST_CASE("schema: document() is the schema as given", "[schema]") {
    const json doc = json::parse(R"({"type":"object","required":["total"],"properties":{"total":{"type":"number"}}})");
    auto s = Schema::parse(doc);
    CHECK(s->document() == doc);
    CHECK(Schema::parse(doc.dump())->document() == doc);
}

TEST_CASE("schema: values nested past max_depth are reported, not recursed into", "[schema]") {
    auto s = Schema::parse(R"({"$ref":"#/definitions/tree",
        "definitions":{"tree":{"type":["integer","array"],"items":{"$ref":"#/definitions/tree"}}}})");
    // Deep enough that recursing would overflow the stack (about 2,000 levels under ASan).
    const json hostile = json::parse(std::string(20000, '[') + std::string(20000, ']'));
    const auto errors = s->validate(hostile);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].pointer.empty());
    CHECK(errors[0].message.find("nested deeper than") != std::string::npos);

    // Up to the limit, validation runs as usual.
    const std::size_t d = Schema::max_depth;
    CHECK(s->accepts(json::parse(std::string(d, '[') + "1" + std::string(d, ']'))));
    CHECK_FALSE(s->accepts(json::parse(std::string(d, '[') + "\"x\"" + std::string(d, ']'))));
}

TEST_CASE("schema: one compiled schema serves 8 threads at once", "[schema][threads]") {
    auto s = Schema::parse(R"({
        "type":"object","required":["id","tags"],
        "properties":{
            "id":{"type":"string","pattern":"^[a-z]+-[0-9]+$"},
            "score":{"type":"number","minimum":0,"maximum":1},
            "tags":{"type":"array","items":{"enum":["a","b","c"]}}
        }})");
    // Each input with the exact set of leaf pointers its errors must include.
    struct Probe {
        json value;
        std::set<std::string> must_point_at;
        bool valid;
    };
    const std::vector<Probe> probes = {
        {json::parse(R"({"id":"abc-1","tags":["a"]})"), {}, true},
        {json::parse(R"({"id":"abc","tags":["a"]})"), {"/id"}, false},
        {json::parse(R"({"id":"abc-2","score":2,"tags":["a","z"]})"), {"/score", "/tags/1"}, false},
        {json::parse(R"({"id":"x-9","tags":[]})"), {}, true},
        {json::parse(R"({"tags":["c","b","q","r"]})"), {"", "/tags/2", "/tags/3"}, false},
    };
    std::atomic<int> wrong{0};
    std::atomic<int> checked{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 60; ++i) {
                const Probe& p = probes[static_cast<std::size_t>(t + i) % probes.size()];
                const auto errors = s->validate(p.value);
                const auto at = pointers_of(errors);
                bool ok = errors.empty() == p.valid;
                for (const auto& ptr : p.must_point_at) ok = ok && at.count(ptr) == 1;
                if (p.valid == false && at.count("/tags/0") == 1) ok = false;  // a good element is never blamed
                if (!ok) ++wrong;
                ++checked;
            }
        });
    }
    for (auto& th : threads) th.join();
    CHECK(checked == 8 * 60);
    CHECK(wrong == 0);
}
