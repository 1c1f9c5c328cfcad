// SPDX-License-Identifier: MIT
// Quality gates and policy through real HTTP: real adapters and CurlTransport
// against the loopback MockProvider. Schema repair on the same route, repair
// that fails over, policy blocks that never reach the secondary, budget
// downshifts, compliance skips, context windows, deadlines, user gates, the
// opt-in policy fallback and a reply cache.
#include "support/catch.hpp"
#include "support/fakes.hpp"
#include "support/loopback.hpp"
#include "support/mock_provider.hpp"

using namespace failover;
using namespace std::chrono_literals;
using failover_mock::Fault;
using failover_mock::MockProvider;
using failover_test::RecordingSink;

namespace {

const char* kInvoice = R"({"type":"object","required":["total","currency"],
  "properties":{"total":{"type":"number"},"currency":{"type":"string","enum":["EUR","USD"]}},
  "additionalProperties":false})";

using Fixture = failover_test::LoopbackFixture;

ChatRequest invoice_request() {
    ChatRequest r;
    r.messages = {user("Extract the invoice: ACME, 12.50 EUR")};
    r.schema = Schema::parse(kInvoice);
    r.schema_name = "invoice";
    r.tenant = "acme";
    return r;
}

ChatRequest plain(std::string tenant = "acme") {
    ChatRequest r;
    r.messages = {user("Say hello")};
    r.tenant = std::move(tenant);
    return r;
}

}  // namespace

TEST_CASE("gates: a schema-invalid first answer is repaired on the same route") {
    Fixture fx;
    fx.mock.route("primary").then(Fault::ok_json({{"total", "12.50"}, {"currency", "euro"}}))
        .then(Fault::ok_json({{"total", 12.5}, {"currency", "EUR"}}));
    Router router{fx.options(), Route{"primary", fx.openai("primary"), fx.http},
                  Route{"secondary", fx.anthropic("secondary"), fx.http}};
    auto r = router.route_with_fallback(invoice_request());
    REQUIRE(r);
    CHECK(r->route == "primary");
    CHECK(r->json == nlohmann::json{{"total", 12.5}, {"currency", "EUR"}});
    REQUIRE(r->attempts.size() == 2);
    CHECK(r->attempts[0].reason == Reason::schema_invalid);
    CHECK(r->attempts[0].message.find("/total") != std::string::npos);
    CHECK(fx.mock.route("secondary").requests() == 0);
    // The repair turn carries the previous answer and the errors with their pointers.
    auto body = fx.mock.route("primary").last_request()->json();
    const auto& msgs = body["messages"];
    REQUIRE(msgs.size() == 3);
    CHECK(msgs[1]["role"] == "assistant");
    CHECK(msgs[1]["content"].get<std::string>().find("euro") != std::string::npos);
    CHECK(msgs[2]["content"].get<std::string>().find("/currency") != std::string::npos);
}

TEST_CASE("gates: a repair that is still invalid fails over") {
    Fixture fx;
    fx.mock.route("primary").otherwise(Fault::schema_invalid());
    fx.mock.route("secondary").otherwise(Fault::ok_json({{"total", 3}, {"currency", "USD"}}));
    Router router{fx.options(), Route{"primary", fx.openai("primary"), fx.http},
                  Route{"secondary", fx.anthropic("secondary"), fx.http}};
    router.add_sink(fx.sink);
    auto r = router.route_with_fallback(invoice_request());
    REQUIRE(r);
    CHECK(r->route == "secondary");
    CHECK(r->json["currency"] == "USD");
    CHECK(fx.mock.route("primary").requests() == 2);  // the answer and one repair turn
    auto fb = fx.sink->of("fallback");
    REQUIRE(fb.size() == 1);
    CHECK(fb[0].reason == Reason::schema_invalid);
    // Schema failures say nothing about the provider's health.
    CHECK(router.route<0>().breaker().window_counts(fx.clock->now()).second == 0);
}

TEST_CASE("gates: a policy block returns to the caller and the secondary's request count stays 0") {
    Fixture fx;
    SECTION("OpenAI refusal") { fx.mock.route("primary").then(Fault::refusal("I can't help with that.")); }
    SECTION("Azure-style content filter (HTTP 400)") { fx.mock.route("primary").then(Fault::content_filter()); }
    Router router{fx.options(), Route{"primary", fx.openai("primary"), fx.http},
                  Route{"secondary", fx.anthropic("secondary"), fx.http}};
    router.add_sink(fx.sink);
    auto r = router.route_with_fallback(plain());
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == FailureKind::policy);
    CHECK(r.error().route == "primary");
    CHECK(fx.mock.route("secondary").requests() == 0);
    CHECK(fx.sink->count("policy") == 1);
    CHECK(fx.sink->count("fallback") == 0);
}

TEST_CASE("gates: a Gemini safety block is policy too") {
    Fixture fx;
    fx.mock.route("g").then(Fault::safety_block());
    Router router{fx.options(), Route{"gemini", fx.gemini("g"), fx.http},
                  Route{"secondary", fx.anthropic("secondary"), fx.http}};
    auto r = router.route_with_fallback(plain());
    REQUIRE_FALSE(r);
    CHECK(r.error().kind == FailureKind::policy);
    CHECK(r.error().reason == Reason::content_filter);
    CHECK_FALSE(r.error().category.empty());
    CHECK(fx.mock.route("secondary").requests() == 0);
}

TEST_CASE("gates: opt-in policy fallback only targets routes at least as strict") {
    Fixture fx;
    fx.mock.route("primary").then(Fault::refusal());
    RouterOptions o = fx.options();
    o.policy_fallback = true;
    RouteOptions strict;
    strict.safety_level = 2;
    RouteOptions lax;
    lax.safety_level = 1;
    SECTION("a stricter route may answer") {
        Router router{o, Route{"primary", fx.openai("primary"), fx.http, strict},
                      Route{"lax", fx.anthropic("lax"), fx.http, lax},
                      Route{"stricter", fx.anthropic("stricter"), fx.http, strict}};
        auto r = router.route_with_fallback(plain());
        REQUIRE(r);
        CHECK(r->route == "stricter");
        CHECK(fx.mock.route("lax").requests() == 0);
    }
    SECTION("with none, the block stands") {
        Router router{o, Route{"primary", fx.openai("primary"), fx.http, strict},
                      Route{"lax", fx.anthropic("lax"), fx.http, lax}};
        auto r = router.route_with_fallback(plain());
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == FailureKind::policy);
        CHECK(fx.mock.route("lax").requests() == 0);
    }
}

TEST_CASE("gates: a tenant at its ceiling is downshifted to a route it can afford") {
    Fixture fx;
    auto budgets = std::make_shared<Budgets>(std::chrono::hours{1});
    budgets->limit("acme", 0.05);
    RouterOptions o = fx.options();
    o.budgets = budgets;
    RouteOptions expensive;
    expensive.price = {2000.0, 6000.0};  // $ per million tokens: a few cents a request
    RouteOptions cheap;
    cheap.price = {0.1, 0.4};
    Router router{o, Route{"primary", fx.openai("primary"), fx.http, expensive},
                  Route{"cheap", fx.anthropic("cheap"), fx.http, cheap}, Route{"canned", StaticReply{"busy"}}};
    router.add_sink(fx.sink);

    ChatRequest req = plain();
    req.max_tokens = 2;
    auto first = router.route_with_fallback(req);
    REQUIRE(first);
    CHECK(first->route == "primary");
    CHECK(first->cost_usd > 0.0);
    CHECK(budgets->spent("acme", fx.clock->wall_now()) == Approx(first->cost_usd));

    int downshifted = 0;
    for (int i = 0; i < 20; ++i) {
        auto r = router.route_with_fallback(req);
        REQUIRE(r);
        if (r->route != "primary") ++downshifted;
    }
    CHECK(downshifted > 0);
    // Admission uses an estimate, so the last admitted request may overshoot by less than one request's cost.
    CHECK(budgets->spent("acme", fx.clock->wall_now()) < 0.05 + first->cost_usd);
    CHECK(fx.sink->of("skip").back().reason == Reason::budget_exceeded);
    // Another tenant is not affected.
    auto other = router.route_with_fallback(plain("globex"));
    REQUIRE(other);
    CHECK(other->route == "primary");
    // The window rolls: an hour later the tenant can afford the primary again.
    fx.clock->advance(std::chrono::hours{2});
    auto later = router.route_with_fallback(req);
    REQUIRE(later);
    CHECK(later->route == "primary");
}

TEST_CASE("gates: routes reserved for a tier keep premium tenants on the primary") {
    Fixture fx;
    RouteOptions premium_only;
    premium_only.tiers = {"premium"};
    Router router{fx.options(), Route{"primary", fx.openai("primary"), fx.http, premium_only},
                  Route{"standard", fx.anthropic("standard"), fx.http}};
    ChatRequest p = plain();
    p.tier = "premium";
    ChatRequest s = plain();
    s.tier = "free";
    CHECK(router.route_with_fallback(p)->route == "primary");
    CHECK(router.route_with_fallback(s)->route == "standard");
    CHECK(fx.mock.route("primary").requests() == 1);
}

TEST_CASE("gates: a route not approved for the data is never called") {
    Fixture fx;
    RouteOptions us_only;
    us_only.data_classes = {"public"};
    us_only.regions = {"us"};
    RouteOptions eu_phi;
    eu_phi.data_classes = {"public", "phi"};
    eu_phi.regions = {"eu"};
    Router router{fx.options(), Route{"primary", fx.openai("primary"), fx.http, us_only},
                  Route{"eu", fx.anthropic("eu"), fx.http, eu_phi}};
    router.add_sink(fx.sink);
    ChatRequest req = plain();
    req.data_class = "phi";
    req.region = "eu";
    auto r = router.route_with_fallback(req);
    REQUIRE(r);
    CHECK(r->route == "eu");
    CHECK(fx.mock.route("primary").requests() == 0);
    auto skips = fx.sink->of("skip");
    REQUIRE(skips.size() == 1);
    CHECK(skips[0].route == "primary");
    CHECK(skips[0].reason == Reason::not_approved);

    SECTION("when none is approved, the failure names the classification") {
        ChatRequest secret = plain();
        secret.data_class = "pci";
        auto f = router.route_with_fallback(secret);
        REQUIRE_FALSE(f);
        CHECK(f.error().reason == Reason::not_approved);
        CHECK(f.error().message.find("data class 'pci'") != std::string::npos);
        CHECK(f.error().attempts.empty());
        CHECK(fx.mock.requests() == 1);
    }
}

TEST_CASE("gates: context_too_long fails over only to larger windows") {
    Fixture fx;
    fx.mock.route("mid").then(Fault::context_length_exceeded());
    RouteOptions w8k, w4k, w128k;
    w8k.context_window = 8000;
    w4k.context_window = 4000;
    w128k.context_window = 128000;
    Router router{fx.options(), Route{"mid", fx.openai("mid"), fx.http, w8k},
                  Route{"small", fx.anthropic("small"), fx.http, w4k},
                  Route{"large", fx.anthropic("large"), fx.http, w128k}};
    router.add_sink(fx.sink);
    auto r = router.route_with_fallback(plain());
    REQUIRE(r);
    CHECK(r->route == "large");
    CHECK(fx.mock.route("mid").requests() == 1);  // terminal: no retry
    CHECK(fx.mock.route("small").requests() == 0);
    CHECK(r->attempts[0].reason == Reason::context_too_long);
    CHECK(fx.sink->of("skip").at(0).reason == Reason::context_window);

    SECTION("a request estimated larger than a window skips it before any call") {
        ChatRequest big = plain();
        big.messages = {user(std::string(40000, 'x'))};  // ~10k tokens
        auto b = router.route_with_fallback(big);
        REQUIRE(b);
        CHECK(b->route == "large");
        CHECK(fx.mock.route("mid").requests() == 1);
    }
}

TEST_CASE("gates: the deadline bounds a hung provider and lists the attempts made") {
    Fixture fx;
    fx.mock.route("primary").otherwise(Fault::hang());
    fx.mock.route("secondary").otherwise(Fault::hang());
    RouterOptions o;  // real clock: the transport's timeout is real
    o.seed = 3;
    RouteOptions ro;
    ro.attempt_timeout = 5s;
    ro.min_attempt_time = 50ms;  // a 300 ms deadline is worth trying here
    Router router{o, Route{"primary", fx.openai("primary"), fx.http, ro}, Route{"secondary", fx.anthropic("secondary"), fx.http, ro}};
    ChatRequest req = plain();
    req.timeout = 300ms;
    const auto t0 = std::chrono::steady_clock::now();
    auto r = router.route_with_fallback(req);
    const auto took = std::chrono::steady_clock::now() - t0;
    REQUIRE_FALSE(r);
    CHECK(took < 3s);  // bounded by the 300 ms deadline, not the 5 s attempt timeout
    REQUIRE_FALSE(r.error().attempts.empty());
    CHECK(r.error().attempts[0].reason == Reason::timeout);
    CHECK((r.error().reason == Reason::deadline_exceeded || r.error().reason == Reason::timeout));
    for (const auto& a : r.error().attempts) CHECK(a.latency < 1s);  // every attempt clipped to what was left
}

TEST_CASE("gates: a user quality gate rejects, the repair turn fixes it") {
    Fixture fx;
    fx.mock.route("primary").then(Fault::ok("lorem ipsum")).then(Fault::ok("a real answer"));
    RouterOptions o = fx.options();
    o.gates.push_back([](const ChatRequest&, const ChatResponse& res) -> std::optional<std::string> {
        if (res.text.find("lorem") != std::string::npos) return "placeholder text";
        return std::nullopt;
    });
    Router router{o, Route{"primary", fx.openai("primary"), fx.http}};
    auto r = router.route_with_fallback(plain());
    REQUIRE(r);
    CHECK(r->text == "a real answer");
    REQUIRE(r->attempts.size() == 2);
    CHECK(r->attempts[0].reason == Reason::quality_gate);
    CHECK(r->attempts[0].message == "placeholder text");
}

TEST_CASE("gates: on_answer feeds a ReplyCache that a CachedReply route serves when the primary is down") {
    Fixture fx;
    auto cache = std::make_shared<ReplyCache>(16);
    RouterOptions o = fx.options();
    o.on_answer = [cache](const ChatRequest& q, const ChatResponse& a) { cache->store(q, a); };
    RouteOptions once;
    once.max_attempts = 1;
    Router router{o, Route{"primary", fx.openai("primary"), fx.http, once}, Route{"cache", CachedReply{cache}}};
    fx.mock.route("primary").then(Fault::ok("fresh answer")).otherwise(Fault::status(503));
    auto first = router.route_with_fallback(plain());
    REQUIRE(first);
    CHECK(first->route == "primary");
    auto second = router.route_with_fallback(plain());
    REQUIRE(second);
    CHECK(second->route == "cache");
    CHECK(second->text == "fresh answer");
    ChatRequest unseen = plain();
    unseen.messages = {user("never asked")};
    auto miss = router.route_with_fallback(unseen);
    REQUIRE_FALSE(miss);
    // The cache had nothing: a skip. The failure is the primary's, and the only attempt listed.
    CHECK(miss.error().reason == Reason::overloaded);
    REQUIRE(miss.error().attempts.size() == 1);
    CHECK(miss.error().attempts[0].route == "primary");
}
