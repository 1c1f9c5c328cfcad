// SPDX-License-Identifier: MIT
// Schema: a bad schema fails at parse with a message naming the reason and the
// JSON pointer of the keyword; a validation lists every error with an RFC 6901
// pointer into the value; the draft-7 keywords the router's schema gate relies
// on work; one compiled schema serves many threads. The "hostile" cases are
// issue 9: answers and schemas that crashed or hung the valijson-based gate
// (huge strings under backtracking patterns, 2^64-1, multipleOf 0, $ref
// cycles, deep values, 100,000-item uniqueItems, exponential anyOf) give the
// right verdict or a std::invalid_argument, each with its timing printed.
#include <atomic>
#include <chrono>
#include <iostream>
#include <limits>
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
        {R"({"type": 12})", "at /type: type must be a type name"},
        {R"({"properties":{"a":{"type":12}}})", "at /properties/a/type: type must be a type name"},
        {R"({"type":"strin"})", "at /type: unknown type name \"strin\""},
        {R"({"required":"total"})", "at /required: required must be an array of strings"},
        {R"({"minimum":"three"})", "at /minimum: minimum must be a number"},
        {R"({"additionalProperties":3})", "at /additionalProperties: a schema must be an object or a boolean"},
        {R"({"$ref":"#/definitions/missing"})", "at /$ref: $ref \"#/definitions/missing\" points to nothing"},
        {R"({"properties":{"a":{"$ref":"#/definitions/nope"}},"definitions":{}})", "at /properties/a/$ref"},
        {R"({"$ref":"https://example.com/other.json"})",
         "$ref \"https://example.com/other.json\" is outside this document: remote references are not fetched"},
        {R"({"properties":{"code":{"type":"string","pattern":"([A-Z]+"}}})",
         "at /properties/code/pattern: invalid regular expression \"([A-Z]+\""},
        {R"({"patternProperties":{"^x-(":{"type":"string"}}})", "at /patternProperties/^x-(: invalid regular expression"},
        {R"({"properties":{"a/b~c":{"items":[{"pattern":"*"}]}}})",
         "at /properties/a~1b~0c/items/0/pattern: invalid regular expression"},
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
    CHECK(has_error(s->validate(json{{"pattern", "ABC"}}), "/pattern", "does not match the pattern"));
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
        CHECK(has_error(errors, "/invoice/number", "does not match the pattern"));
        CHECK(has_error(errors, "/invoice/total", "greater than or equal to 0"));
        CHECK(has_error(errors, "/invoice/currency", "enum"));
        CHECK(has_error(errors, "/lines/1/sku", "type"));
        CHECK(has_error(errors, "/lines/1/qty", "greater than or equal to 1"));
        CHECK(has_error(errors, "/lines/2", "missing required property \"sku\""));
        CHECK(has_error(errors, "/lines/2", "missing required property \"qty\""));
        CHECK(has_error(errors, "/a~1b", "type"));
        CHECK(has_error(errors, "/m~0n", "type"));
        CHECK(has_error(errors, "/~0~1", "type"));
        CHECK(has_error(errors, "/extra", "not allowed (additionalProperties is false)"));
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
        CHECK(has_error(errors, "", "missing required property \"invoice\""));
        CHECK(has_error(errors, "", "missing required property \"lines\""));
        CHECK(has_error(s->validate(json{{"invoice", json::object()}, {"lines", json::array()}}), "/invoice",
                        "missing required property \"total\""));
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
              std::set<std::pair<std::string, std::string>>{{"", "missing required property \"b\""}});
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
        CHECK(has_error(closed->validate(json{{"a", 1}, {"b", 2}}), "/b", "not allowed"));
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
        CHECK(has_error(s->validate(json{{"kind", "bank"}}), "", "missing required property \"iban\""));
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
        CHECK(has_error(nested->validate(json{{"a", 1}}), "/a", "not allowed"));
        CHECK(nested->accepts(json::parse("[1]")));
        CHECK(has_error(nested->validate(json::parse("[1,2]")), "/1", "not allowed"));
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

// ------------------------------------------------------------------ hostile answers and schemas
// Issue 9: untrusted answers never crash or hang the process. Each case prints
// its timing; the "under a second" checks are skipped under sanitizers (the
// time is still printed).

namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool sanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool sanitized = true;
#else
constexpr bool sanitized = false;
#endif
#else
constexpr bool sanitized = false;
#endif

struct Stopwatch {
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); }
};

// Prints how long `what` took.
void print_timing(const std::string& what, double seconds) {
    std::cout << "timing: " << what << ": " << seconds * 1000.0 << " ms\n";
}

// Prints how long `what` took and, outside sanitizer builds, checks it was under a second.
void under_a_second(const std::string& what, double seconds) {
    std::cout << "timing: " << what << ": " << seconds * 1000.0 << " ms" << (sanitized ? " (sanitized build, not asserted)" : "")
              << "\n";
    INFO(what << " took " << seconds << " s");
    if (!sanitized) CHECK(seconds < 1.0);
}

// The ParseError parse() throws for `doc`; fails the test when it does not throw.
Schema::ParseError parse_failure(const json& doc) {
    try {
        (void)Schema::parse(doc);
    } catch (const Schema::ParseError& e) {
        return e;
    }
    FAIL("Schema::parse accepted " << doc.dump());
    return Schema::ParseError("", "");
}

json nested_arrays(std::size_t depth, json leaf) {
    json v = std::move(leaf);
    for (std::size_t i = 0; i < depth; ++i) {
        json outer = json::array();
        outer.push_back(std::move(v));
        v = std::move(outer);
    }
    return v;
}

}  // namespace

TEST_CASE("hostile: an 8 MiB string under a quantified pattern validates in linear time", "[schema][hostile]") {
    const std::string big(8u * 1024u * 1024u, 'a');
    const json good = big;
    const json bad = big + "!";
    for (const char* pattern : {"^a*$", "^(a+)+$", "^(a|aa)+$"}) {
        auto s = Schema::parse(json{{"type", "string"}, {"pattern", pattern}});
        Stopwatch t;
        const auto ok = s->validate(good);
        under_a_second(std::string("8 MiB string under ") + pattern, t.seconds());
        CHECK(ok.empty());
        Stopwatch t2;
        const auto errors = s->validate(bad);
        under_a_second(std::string("8 MiB + '!' under ") + pattern, t2.seconds());
        CHECK(has_error(errors, "", "does not match the pattern"));
    }
    // The 43 KB string that overflowed std::regex's stack.
    auto s = Schema::parse(R"({"pattern":"^(ab|a)*$"})");
    Stopwatch t;
    CHECK(s->accepts(json(std::string(43 * 1024, 'a'))));
    under_a_second("43 KB string under ^(ab|a)*$", t.seconds());
}

TEST_CASE("hostile: catastrophic-backtracking patterns are linear, as pattern and as patternProperties", "[schema][hostile]") {
    const std::string evil = std::string(34, 'a') + "!";
    auto s = Schema::parse(R"({"pattern":"^(a+)+$"})");
    Stopwatch t;
    CHECK_FALSE(s->accepts(json(evil)));
    auto props = Schema::parse(R"({"patternProperties":{"^(a+)+$":{"type":"integer"}},"additionalProperties":false})");
    const auto errors = props->validate(json{{evil, 1}, {std::string(34, 'a'), "x"}});
    under_a_second("^(a+)+$ on a 35-char string and as a patternProperties key", t.seconds());
    CHECK(has_error(errors, "/" + evil, "not allowed (additionalProperties is false)"));
    CHECK(has_error(errors, "/" + std::string(34, 'a'), "wrong type"));
}

TEST_CASE("hostile: huge, deep and non-linear patterns are refused at parse, never at validation", "[schema][hostile]") {
    // A 64K-character pattern and deeply parenthesised ones: compiled or refused, never a crash.
    std::string optional_xs;
    for (int i = 0; i < 32768; ++i) optional_xs += "x?";
    const std::vector<std::string> patterns = {std::string(65536, 'a'), std::string(65536, '.'), optional_xs,
                                               std::string(1000, '(') + "a" + std::string(1000, ')'),
                                               std::string(100000, '(') + "a" + std::string(100000, ')'),
                                               "(((a{1000}){1000}){1000})"};
    for (const std::string& pattern : patterns) {
        CAPTURE(pattern.size());
        Stopwatch t;
        try {
            auto s = Schema::parse(json{{"properties", {{"p", {{"pattern", pattern}}}}}});
            CHECK(s->accepts(json{{"p", std::string(1000, 'a')}}) == s->accepts(json{{"p", std::string(1000, 'a')}}));
        } catch (const Schema::ParseError& e) {
            CHECK(e.pointer() == "/properties/p/pattern");
            CHECK(std::string(e.what()).find("invalid regular expression") != std::string::npos);
        }
        print_timing("parse of a " + std::to_string(pattern.size()) + "-byte pattern", t.seconds());
    }
    const auto refused = [](const json& doc, const std::string& pointer, const std::string& reason) {
        const auto e = parse_failure(doc);
        CHECK(e.pointer() == pointer);
        CHECK_THAT(e.reason(), Catch::Contains(reason));
    };
    refused(json{{"pattern", "(?<=a)b"}}, "/pattern", "lookbehind");
    refused(json{{"pattern", "a(?!b)"}}, "/pattern", "lookahead");
    refused(json{{"pattern", "(a)\\1"}}, "/pattern", "backreferences");
    refused(json{{"pattern", "(?<x>a)\\k<x>"}}, "/pattern", "backreferences");
    refused(json{{"pattern", "^\\S(|(.|\\n)*\\S)\\Z"}}, "/pattern", "unsupported escape \\Z");
    refused(json{{"patternProperties", {{"(?=x)", true}}}}, "/patternProperties/(?=x)", "lookahead");
    refused(json{{"pattern", std::string(100000, '(') + std::string(100000, ')')}}, "/pattern", "nested deeper");
    refused(json{{"pattern", "a{1001}"}}, "/pattern", "repetition");
}

TEST_CASE("hostile: ECMA-262 patterns keep their meaning on RE2", "[schema][hostile]") {
    const auto matches = [](const std::string& pattern, const std::string& text) {
        return Schema::parse(json{{"pattern", pattern}})->accepts(json(text));
    };
    CHECK(matches("^\\d+$", "2024"));
    CHECK_FALSE(matches("^\\d$", "\xd9\xa3"));          // ARABIC-INDIC DIGIT THREE is not \d
    CHECK(matches("^\\s$", "\xc2\xa0"));                // NBSP is ECMA whitespace
    CHECK(matches("^\\s$", "\xe2\x80\xa8"));            // LINE SEPARATOR too
    CHECK(matches("^\\s$", "\v"));
    CHECK_FALSE(matches("^\\S$", "\xef\xbb\xbf"));      // U+FEFF is whitespace, so not \S
    CHECK(matches("^[\\S]$", "x"));
    CHECK_FALSE(matches("^[^\\s]$", "\xe3\x80\x80"));   // IDEOGRAPHIC SPACE
    CHECK_FALSE(matches("^.$", "\n"));
    CHECK_FALSE(matches("^.$", "\r"));
    CHECK_FALSE(matches("^.$", "\xe2\x80\xa9"));
    CHECK(matches("^.$", "\xf0\x9f\x98\x80"));          // one code point, even outside the BMP
    CHECK(matches("^[^]$", "\n"));
    CHECK_FALSE(matches("[]", "anything"));
    CHECK(matches("^\\u00e9\\u{1F600}\\uD83D\\uDE00$", "\xc3\xa9\xf0\x9f\x98\x80\xf0\x9f\x98\x80"));
    CHECK(matches("^\\cJ$", "\n"));
    CHECK(matches("^[\\b]$", "\b"));
    CHECK(matches("^(?<year>\\d{4})-\\d{2}$", "2024-06"));
    CHECK(matches("^\\p{L}+$", "\xc3\xa9t\xc3\xa9"));
    CHECK(matches("^[[]$", "["));                       // not a POSIX class
    CHECK(matches("^a\\/b$", "a/b"));
    CHECK_FALSE(matches("^abc$", "abc\n"));             // $ is the end of the text
}

TEST_CASE("hostile: uniqueItems hashes, 100,000 items in under a second", "[schema][hostile]") {
    auto s = Schema::parse(R"({"type":"array","uniqueItems":true})");
    json items = json::array();
    for (int i = 0; i < 100000; ++i) items.push_back(json{{"id", i}, {"tags", {"x", i % 7}}, {"price", i * 0.5}});
    Stopwatch t;
    CHECK(s->validate(items).empty());
    under_a_second("uniqueItems over 100,000 distinct objects", t.seconds());

    // JSON equality: 1 == 1.0, key order irrelevant.
    items.push_back(json::parse(R"({"tags":["x",5.0],"price":2.5,"id":5.0})"));
    Stopwatch t2;
    const auto errors = s->validate(items);
    under_a_second("uniqueItems over 100,001 objects with one duplicate", t2.seconds());
    CHECK(errors_of(*s, items) == std::set<std::pair<std::string, std::string>>{{"", "array items 5 and 100000 are equal (uniqueItems)"}});

    json ints = json::array();
    for (int i = 0; i < 100000; ++i) ints.push_back(i);
    Stopwatch t3;
    CHECK(s->accepts(ints));
    under_a_second("uniqueItems over 100,000 integers", t3.seconds());
    CHECK_FALSE(s->accepts(json::parse("[1, 1.0]")));
    CHECK(s->accepts(json::parse("[9007199254740993, 9007199254740992.0]")));  // 2^53+1 is not the double 2^53
}

TEST_CASE("hostile: numbers are compared exactly", "[schema][hostile]") {
    const auto accepts = [](const char* schema, const char* value) {
        CAPTURE(schema, value);
        return Schema::parse(schema)->accepts(json::parse(value));
    };
    CHECK_FALSE(accepts(R"({"maximum":0})", "18446744073709551615"));  // 2^64-1 does not wrap to -1
    CHECK(has_error(Schema::parse(R"({"maximum":0})")->validate(json::parse("18446744073709551615")), "",
                    "must be less than or equal to 0 (got 18446744073709551615)"));
    CHECK_FALSE(accepts(R"({"maximum":9223372036854775807})", "9223372036854775808"));
    CHECK(accepts(R"({"minimum":-9223372036854775808,"maximum":18446744073709551615})", "-9223372036854775808"));
    CHECK_FALSE(accepts(R"({"exclusiveMaximum":18446744073709551615})", "18446744073709551615"));
    CHECK(accepts(R"({"exclusiveMaximum":18446744073709551615})", "18446744073709551614"));
    CHECK_FALSE(accepts(R"({"maximum":9007199254740992.0})", "9007199254740993"));  // no cast to double
    CHECK_FALSE(accepts(R"({"const":9007199254740992.0})", "9007199254740993"));
    CHECK(accepts(R"({"const":1})", "1.0"));
    CHECK(accepts(R"({"enum":[[1,{"a":2}]]})", R"([1.0,{"a":2.0}])"));
    // Integers past 64 bits arrive as doubles and are still integers.
    CHECK(accepts(R"({"type":"integer"})", "98249283749234923498293171823948729348710298301928331"));
    CHECK_FALSE(accepts(R"({"maximum":18446744073709551615})", "18446744073709551616"));
    CHECK_FALSE(accepts(R"({"minimum":-9223372036854775808})", "-9223372036854777856"));  // the next double down

    // multipleOf in decimal terms, bounded work.
    CHECK(accepts(R"({"multipleOf":0.0001})", "0.0075"));
    CHECK_FALSE(accepts(R"({"multipleOf":0.0001})", "0.00751"));
    CHECK_FALSE(accepts(R"({"multipleOf":2})", "4.5"));
    CHECK(accepts(R"({"multipleOf":2})", "-4"));
    CHECK(accepts(R"({"multipleOf":0.1})", "0.3"));
    CHECK(accepts(R"({"multipleOf":0.5})", "7"));
    CHECK(accepts(R"({"multipleOf":5})", "18446744073709551615"));
    CHECK_FALSE(accepts(R"({"multipleOf":2})", "18446744073709551615"));
    CHECK(accepts(R"({"multipleOf":18446744073709551615})", "0"));
    Stopwatch t;
    CHECK_FALSE(accepts(R"({"multipleOf":0.123456789})", "1e308"));
    CHECK(accepts(R"({"multipleOf":1e-300})", "1e300"));
    CHECK(accepts(R"({"multipleOf":3})", "1e308") == false);
    under_a_second("multipleOf on 1e308", t.seconds());
    for (const char* bad : {R"({"multipleOf":0})", R"({"multipleOf":-2})", R"({"multipleOf":"2"})"}) {
        CAPTURE(bad);
        const auto e = parse_failure(json::parse(bad));
        CHECK(e.pointer() == "/multipleOf");
    }

    // NaN and infinities (only from values built in code) never pass a bound they should fail.
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();
    for (const char* schema : {R"({"minimum":0})", R"({"maximum":0})", R"({"exclusiveMinimum":0})", R"({"exclusiveMaximum":0})",
                               R"({"multipleOf":1})", R"({"type":"integer"})", R"({"const":0})", R"({"enum":[1,2]})"}) {
        CAPTURE(schema);
        CHECK_FALSE(Schema::parse(schema)->accepts(json(nan)));
    }
    CHECK_FALSE(Schema::parse(R"({"maximum":1e308})")->accepts(json(inf)));
    CHECK_FALSE(Schema::parse(R"({"minimum":-1e308})")->accepts(json(-inf)));
    CHECK_FALSE(Schema::parse(R"({"multipleOf":1})")->accepts(json(inf)));
    CHECK_FALSE(Schema::parse(R"({"type":"integer"})")->accepts(json(inf)));
    CHECK(Schema::parse(R"({"minimum":0})")->accepts(json(inf)));
    CHECK(parse_failure(json{{"maximum", nan}}).pointer() == "/maximum");
    CHECK(parse_failure(json{{"minimum", inf}}).pointer() == "/minimum");
}

TEST_CASE("hostile: malformed schemas are refused at parse with the JSON pointer", "[schema][hostile]") {
    struct Case {
        const char* schema;
        const char* pointer;
        const char* reason;
    };
    const Case cases[] = {
        {R"({"$ref":"#"})", "/$ref", "cycle"},
        {R"({"allOf":[{"$ref":"#"}]})", "/allOf/0/$ref", "never descends"},
        {R"({"anyOf":[{"type":"string"},{"$ref":"#"}]})", "/anyOf/1/$ref", "never descends"},
        {R"({"not":{"$ref":"#"}})", "/not/$ref", "never descends"},
        {R"({"if":{"$ref":"#"},"then":true})", "/if/$ref", "never descends"},
        {R"({"dependencies":{"a":{"$ref":"#"}}})", "/dependencies/a/$ref", "never descends"},
        {R"({"$ref":"#/definitions/a","definitions":{"a":{"$ref":"#/definitions/b"},"b":{"$ref":"#/definitions/a"}}})",
         "/definitions/a/$ref", "cycle"},
        {R"({"definitions":{"a":{"oneOf":[{"$ref":"#/definitions/b"}]},"b":{"then":{"$ref":"#/definitions/a"},"if":true}}})",
         "/definitions/a/oneOf/0/$ref", "never descends"},
        {R"({"$schema":"http://json-schema.org/draft-04/schema#"})", "/$schema",
         "unsupported $schema \"http://json-schema.org/draft-04/schema#\""},
        {R"({"$schema":"https://json-schema.org/draft/2020-12/schema"})", "/$schema", "only draft 7"},
        {R"({"properties":{"a":{"$ref":"https://example.com/s.json#/x"}}})", "/properties/a/$ref",
         "\"https://example.com/s.json#/x\" is outside this document"},
        {R"({"$id":"http://example.com/a/","items":{"$ref":"b.json"}})", "/items/$ref",
         "resolved to \"http://example.com/a/b.json\""},
        {R"({"exclusiveMinimum":true})", "/exclusiveMinimum", "draft 4"},
        {R"({"minLength":-1})", "/minLength", "non-negative integer"},
        {R"({"maxItems":1.5})", "/maxItems", "non-negative integer"},
        {R"({"allOf":[]})", "/allOf", "non-empty array"},
        {R"({"type":["string","string"]})", "/type/1", "unique"},
        {R"({"items":[true,12]})", "/items/1", "must be an object or a boolean"},
        {R"({"$id":"#/a"})", "/$id", "JSON-pointer fragment"},
        {R"({"definitions":{"a":{"$id":"http://x/y"},"b":{"$id":"http://x/y"}}})", "/definitions/b/$id", "duplicate $id"},
        {R"({"$ref":"#/definitions/a/0"})", "/$ref", "points to nothing"},
        {R"({"$ref":"#/enum","enum":[1]})", "/$ref", "not a schema"},
        {R"({"$ref":"#foo"})", "/$ref", "no schema has $id \"#foo\""},
    };
    for (const Case& c : cases) {
        CAPTURE(c.schema);
        const auto e = parse_failure(json::parse(c.schema));
        CHECK(e.pointer() == c.pointer);
        CHECK_THAT(e.reason(), Catch::Contains(c.reason));
        CHECK_THAT(std::string(e.what()), Catch::Contains(std::string("at ") + c.pointer + ": "));
        // Every one is a std::invalid_argument, from text as from a json value.
        CHECK_THROWS_AS(Schema::parse(std::string(c.schema)), std::invalid_argument);
    }
    // Recursion that descends into the value is fine.
    auto list = Schema::parse(R"({"type":"object","properties":{"next":{"$ref":"#"},"v":{"type":"integer"}}})");
    json node = {{"v", 0}};
    for (int i = 1; i < 100; ++i) node = json{{"v", i}, {"next", std::move(node)}};
    CHECK(list->accepts(node));
    // Draft 7 and the meta-schema's own ids are fine.
    CHECK_NOTHROW(Schema::parse(R"({"$schema":"http://json-schema.org/draft-07/schema#"})"));
    CHECK_NOTHROW(Schema::parse(R"({"$schema":"http://json-schema.org/draft-07/schema"})"));
}

TEST_CASE("hostile: a deeply nested schema value is refused before anything copies it", "[schema][hostile]") {
    // Copying a nlohmann value recurses; parse(const json&) must check depth first.
    json deep = json::object();
    for (int i = 0; i < 200000; ++i) deep = json{{"items", std::move(deep)}};
    json obj = json::object();
    for (int i = 0; i < 200000; ++i) obj = json{{"not", std::move(obj)}};
    for (const json* doc : std::vector<const json*>{&deep, &obj}) {
        const auto e = parse_failure(*doc);
        CHECK(e.pointer().empty());
        CHECK_THAT(e.reason(), Catch::Contains("nested deeper than 128 levels"));
    }
}

TEST_CASE("hostile: the work budget turns exponential blow-ups into a clear error", "[schema][hostile]") {
    // Two anyOf branches that each walk every item before they fail (contains is
    // checked after items): 2^depth schema applications over a nested array.
    const char* exponential = R"({"definitions":{"t":{"anyOf":[
        {"items":{"$ref":"#/definitions/t"},"contains":false},
        {"items":{"$ref":"#/definitions/t"},"contains":false,"title":"twin"}]}},
        "$ref":"#/definitions/t"})";
    const json value = nested_arrays(100, json(1));
    // The default budget stops it after about 0.6 s in an optimised build here
    // (printed, not asserted); sanitized builds use a tenth of it to stay quick.
    Schema::Options options;
    if (sanitized) options.max_steps /= 10;
    auto s = Schema::parse(exponential, options);
    Stopwatch t;
    const auto errors = s->validate(value);
    print_timing("exponential anyOf over a 100-deep array, stopped by a budget of " +
                     std::to_string(s->options().max_steps) + " steps",
                 t.seconds());
    REQUIRE_FALSE(errors.empty());
    CHECK(errors.front().pointer.empty());
    CHECK_THAT(errors.front().message, Catch::Contains("work budget"));
    CHECK_THAT(errors.front().message, Catch::Contains("exceeded"));

    // The budget is an option.
    Schema::Options small;
    small.max_steps = 1000;
    auto tight = Schema::parse(exponential, small);
    CHECK(tight->options().max_steps == 1000);
    CHECK(has_error(tight->validate(nested_arrays(20, json(1))), "", "work budget of 1000 steps was exceeded"));
    CHECK_FALSE(tight->accepts(nested_arrays(20, json(1))));
    CHECK(tight->accepts(nested_arrays(3, json(1))) == s->accepts(nested_arrays(3, json(1))));
    CHECK_THROWS_AS(Schema::parse("{}", Schema::Options{.max_steps = 0}), std::invalid_argument);
}

TEST_CASE("hostile: a long chain of in-place schemas over a deep value hits the runtime depth cap", "[schema][hostile]") {
    // d0 -> allOf d1 -> ... -> d99 -> items d0: 100 schemas per level of the value.
    json defs = json::object();
    for (int i = 0; i < 100; ++i)
        defs["d" + std::to_string(i)] = json{{"allOf", {{{"$ref", "#/definitions/d" + std::to_string(i + 1)}}}}};
    defs["d100"] = json{{"items", {{"$ref", "#/definitions/d0"}}}};
    auto s = Schema::parse(json{{"definitions", defs}, {"$ref", "#/definitions/d0"}});
    Stopwatch t;
    const auto errors = s->validate(nested_arrays(100, json(1)));
    under_a_second("100 in-place schemas per level over a 100-deep array", t.seconds());
    REQUIRE_FALSE(errors.empty());
    CHECK_THAT(errors.front().message, Catch::Contains("levels deep"));
    CHECK(s->accepts(nested_arrays(5, json(1))));
}

TEST_CASE("references: $id bases, URNs, anchors, escaped pointers, the meta-schema", "[schema][refs]") {
    SECTION("the draft-07 meta-schema, with or without #") {
        for (const char* ref : {"http://json-schema.org/draft-07/schema#", "http://json-schema.org/draft-07/schema"}) {
            auto meta = Schema::parse(json{{"$ref", ref}});
            CHECK(meta->accepts(json::parse(R"({"type":"object","properties":{"a":{"minLength":1}}})")));
            CHECK_FALSE(meta->accepts(json::parse(R"({"minLength":-1})")));
            CHECK_FALSE(meta->accepts(json::parse(R"({"definitions":{"foo":{"type":1}}})")));
            CHECK(has_error(meta->validate(json::parse(R"({"properties":{"a":{"type":"strin"}}})")), "/properties/a/type",
                            "matches none of the 2 schemas in anyOf"));
        }
    }
    SECTION("$id-relative references resolve against the nearest enclosing $id") {
        auto s = Schema::parse(R"({"$id":"http://example.com/a/root.json",
            "items":{"$id":"sub/","items":{"$ref":"leaf.json"}},
            "definitions":{"leaf":{"$id":"http://example.com/a/sub/leaf.json","type":"integer"}}})");
        CHECK(s->accepts(json::parse("[[1]]")));
        CHECK(has_error(s->validate(json::parse(R"([["a"]])")), "/0/0", "wrong type"));
    }
    SECTION("URN bases and plain-name ($id \"#foo\") anchors") {
        auto urn = Schema::parse(R"({"$id":"urn:uuid:deadbeef-1234-ffff-ffff-4321feebdaed",
            "properties":{"a":{"$ref":"#/definitions/bar"},"b":{"$ref":"urn:uuid:deadbeef-1234-ffff-ffff-4321feebdaed#/definitions/bar"},
                          "c":{"$ref":"#something"}},
            "definitions":{"bar":{"type":"string"},"x":{"$id":"#something","type":"integer"}}})");
        CHECK(urn->accepts(json{{"a", "x"}, {"b", "y"}, {"c", 1}}));
        CHECK_FALSE(urn->accepts(json{{"a", 1}}));
        CHECK_FALSE(urn->accepts(json{{"b", 1}}));
        CHECK_FALSE(urn->accepts(json{{"c", "1"}}));
        auto nested = Schema::parse(R"({"$id":"http://localhost:1234/root","allOf":[{"$ref":"http://localhost:1234/nested.json#foo"}],
            "definitions":{"A":{"$id":"nested.json","definitions":{"B":{"$id":"#foo","type":"integer"}}}}})");
        CHECK(nested->accepts(1));
        CHECK_FALSE(nested->accepts("a"));
    }
    SECTION("JSON-pointer fragments with ~0, ~1 and %-escapes") {
        auto s = Schema::parse(R"({"definitions":{"a/b~c%d":{"type":"integer"}},
            "properties":{"x":{"$ref":"#/definitions/a~1b~0c%25d"}}})");
        CHECK(s->accepts(json{{"x", 1}}));
        CHECK_FALSE(s->accepts(json{{"x", "1"}}));
    }
    SECTION("a $ref makes its siblings inert, $id included") {
        auto s = Schema::parse(R"({"definitions":{"r":{"type":"array"}},
            "properties":{"f":{"$ref":"#/definitions/r","maxItems":1,"type":"string"}}})");
        CHECK(s->accepts(json::parse(R"({"f":[1,2,3]})")));
        auto base = Schema::parse(R"({"$id":"http://localhost:1234/sibling_id/base/",
            "definitions":{"foo":{"$id":"http://localhost:1234/sibling_id/foo.json","type":"string"},
                           "base_foo":{"$id":"foo.json","type":"number"}},
            "allOf":[{"$id":"http://localhost:1234/sibling_id/","$ref":"foo.json"}]})");
        CHECK(base->accepts(1));
        CHECK_FALSE(base->accepts("a"));
    }
    SECTION("$ids inside enum and const identify nothing") {
        auto s = Schema::parse(R"({"definitions":{"e":{"enum":[{"$id":"http://x/id.json","type":"null"}]},
            "real":{"$id":"http://x/id.json","type":"string"}},"anyOf":[{"$ref":"#/definitions/e"},{"$ref":"http://x/id.json"}]})");
        CHECK(s->accepts("a string"));
        CHECK_FALSE(s->accepts(nullptr));
    }
}

TEST_CASE("formats: asserted formats reject, unknown formats are annotations", "[schema][formats]") {
    const auto ok = [](const char* format, const std::string& value) {
        return Schema::parse(json{{"format", format}})->accepts(json(value));
    };
    CHECK(ok("date-time", "2024-02-29T23:59:60Z"));
    CHECK_FALSE(ok("date-time", "2023-02-29T10:00:00Z"));
    CHECK_FALSE(ok("date-time", "2024-01-01T23:59:60+01:00"));  // leap second only at 23:59:60 UTC
    CHECK(ok("date", "2024-02-29"));
    CHECK_FALSE(ok("time", "25:00:00Z"));
    CHECK(ok("email", "joe.bloggs@example.com"));
    CHECK_FALSE(ok("email", "joe..bloggs@example.com"));
    CHECK(ok("hostname", "www.example.com"));
    CHECK_FALSE(ok("hostname", "-bad.example.com"));
    CHECK(ok("ipv4", "192.168.0.1"));
    CHECK_FALSE(ok("ipv4", "192.168.00.1"));
    CHECK(ok("ipv6", "::ffff:192.168.0.1"));
    CHECK_FALSE(ok("ipv6", "1::2::3"));
    CHECK(ok("uri", "https://example.com/a?b#c"));
    CHECK_FALSE(ok("uri", "/relative"));
    CHECK(ok("uri-reference", "/relative"));
    CHECK(ok("json-pointer", "/a~1b"));
    CHECK_FALSE(ok("json-pointer", "/a~2b"));
    CHECK(ok("relative-json-pointer", "0#"));
    CHECK(ok("uuid", "123e4567-e89b-12d3-a456-426614174000"));
    CHECK_FALSE(ok("uuid", "123e4567e89b12d3a456426614174000"));
    CHECK(ok("regex", "^[a-z]+$"));
    CHECK_FALSE(ok("regex", "(?<=a)b"));  // Schema::parse would refuse it as a pattern
    CHECK(ok("unknown-format", "anything"));
    CHECK(ok("idn-hostname", "anything"));  // not asserted
    CHECK(has_error(Schema::parse(R"({"format":"email"})")->validate(json("nope")), "", "not a valid email"));
    CHECK(Schema::parse(R"({"format":"email"})")->accepts(json(12)));  // formats apply to strings only
    // A huge string under format: regex is charged to the budget, not compiled unbounded.
    Stopwatch t;
    CHECK_FALSE(ok("regex", std::string(1u << 20, '(')));
    under_a_second("format: regex on a 1 MiB string", t.seconds());
}

TEST_CASE("schema: the error list is capped", "[schema]") {
    auto s = Schema::parse(R"({"items":{"type":"string"}})");
    const auto errors = s->validate(json(std::vector<int>(1000, 1)));
    REQUIRE(errors.size() == 101);
    CHECK(errors[0].pointer == "/0");
    CHECK_THAT(errors.back().message, Catch::Contains("more errors not listed"));
}

TEST_CASE("schema: the text and json overloads agree (a NUL byte ends the text for nlohmann's parser)", "[schema]") {
    // Found by the fuzzer: a bracket scan of the text counted what followed the
    // NUL, which nlohmann::json::parse never reads.
    const std::string text = std::string(R"({"enum":[0,2,3]})") + '\0' + std::string(300, '[');
    const json doc = json::parse(text, nullptr, false);
    REQUIRE_FALSE(doc.is_discarded());
    CHECK(Schema::parse(text)->document() == Schema::parse(doc)->document());
    // Deep text is still refused, after a parse that does not recurse.
    std::string deep;
    for (int i = 0; i < 100000; ++i) deep += R"({"not":)";
    deep += "{}" + std::string(100000, '}');
    CHECK_THAT(parse_error(deep), Catch::Contains("nested deeper than 128 levels"));
}
