// SPDX-License-Identifier: MIT
// The demo. Without API keys it starts embedded loopback mock providers that
// speak the real OpenAI, Anthropic and OpenAI-compatible (Ollama) wire formats
// and routes ~200 requests through a chain whose primary degrades: a 429 burst,
// a long Retry-After, then an outage, then recovery. It prints what an operator
// would want to see: requests served per route, fallbacks by reason, breaker
// transitions and latency percentiles; first it shows one schema repair, one
// policy block and one streamed answer whose primary stalls before its first
// token, printed token by token as the secondary streams it. With
// OPENAI_API_KEY, ANTHROPIC_API_KEY or GEMINI_API_KEY set, it builds the chain
// from those real providers instead and sends a plain, a structured-output and
// a streamed prompt.
//   example-01-quickstart [--quick] [--mock]
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <failover/failover.hpp>

#include "support/mock_provider.hpp"

using namespace failover;
using namespace std::chrono_literals;
using failover_mock::Fault;

namespace {

// Aggregates the router's events into the numbers the table prints.
struct Tally {
    std::mutex mu;
    std::map<std::string, int> served;
    std::map<std::string, int> fallbacks;  // "from -> to  reason"
    std::map<std::string, int> fallback_reasons;
    std::vector<std::string> transitions;
    std::map<std::string, int> attempts_by_outcome;
    int current_request = 0;

    void record(const Event& ev) {
        std::lock_guard lock(mu);
        if (auto* s = std::get_if<SuccessEvent>(&ev)) {
            ++served[std::string(s->route)];
        } else if (auto* f = std::get_if<FallbackEvent>(&ev)) {
            ++fallbacks[std::string(f->from) + " -> " + std::string(f->to) + "  (" + std::string(to_string(f->reason)) + ")"];
            ++fallback_reasons[std::string(to_string(f->reason))];
        } else if (auto* b = std::get_if<BreakerEvent>(&ev)) {
            std::string line = "request " + std::to_string(current_request) + ": " + std::string(b->route) + " " +
                               std::string(to_string(b->transition.from)) + " -> " +
                               std::string(to_string(b->transition.to));
            if (b->transition.to == BreakerState::open)
                line += " for " + std::to_string(b->transition.open_for.count()) + " ms";
            transitions.push_back(std::move(line));
        } else if (auto* a = std::get_if<AttemptEvent>(&ev)) {
            ++attempts_by_outcome[a->ok ? std::string("ok") : std::string(to_string(a->reason))];
        }
    }
};

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

// A progress line that redraws in a terminal; elsewhere (a log, CI) a plain line per quarter.
void progress(int done, int total) {
    static const bool tty = ::isatty(STDOUT_FILENO) == 1;
    if (!tty) {
        if (done * 4 / total != (done - 1) * 4 / total) std::printf("  %d/%d requests\n", done, total);
        return;
    }
    const int width = 40;
    const int filled = done * width / total;
    std::printf("\r  [%s%s] %d/%d", std::string(static_cast<std::size_t>(filled), '#').c_str(),
                std::string(static_cast<std::size_t>(width - filled), '.').c_str(), done, total);
    if (done == total) std::printf("\n");
    std::fflush(stdout);
}

// Prints a stream as it arrives: which route, then each token.
std::function<void(const StreamEvent&)> printer() {
    return [](const StreamEvent& e) {
        if (e.kind == StreamEvent::Kind::route) std::printf("  [%s] ", std::string(e.route).c_str());
        if (e.kind == StreamEvent::Kind::delta && e.delta->kind == StreamDelta::Kind::text)
            std::printf("%s", e.delta->text.c_str());
        if (e.kind == StreamEvent::Kind::restart) std::printf(" <restart>\n");
        std::fflush(stdout);
    };
}

const char* kInvoiceSchema = R"({
  "type": "object",
  "required": ["vendor", "total", "currency"],
  "properties": {
    "vendor": {"type": "string"},
    "total": {"type": "number", "minimum": 0},
    "currency": {"type": "string", "enum": ["EUR", "USD", "GBP"]}
  },
  "additionalProperties": false
})";

int run_mock(bool quick) {
    failover_mock::MockProvider mock;
    auto http = std::make_shared<CurlTransport>();
    auto& primary = mock.route("primary");
    auto& secondary = mock.route("secondary");
    auto& local = mock.route("local");
    secondary.otherwise(Fault::ok("answer from the secondary").delayed(quick ? 2ms : 6ms));
    local.otherwise(Fault::ok("answer from the local model").delayed(1ms));

    // Requests arrive at a steady pace; every time below is scaled to it so the
    // whole story fits in a few seconds (--quick: under one).
    const int total = quick ? 60 : 200;
    const auto pace = quick ? 10ms : 15ms;
    RouteOptions fast;
    fast.backoff = Backoff{pace, 10 * pace};
    fast.max_retry_after = 3 * pace;
    fast.attempt_timeout = 2s;
    fast.breaker.window = 10s;
    fast.breaker.open_base = quick ? 50ms : 400ms;
    fast.breaker.open_max = 2s;
    fast.first_token_timeout = quick ? 150ms : 300ms;

    Router router{
        Route{"primary", OpenAI{{.model = "gpt-4o", .api_key = "sk-demo", .base_url = mock.url("primary") + "/v1"}},
              http, fast},
        Route{"secondary",
              Anthropic{{.model = "claude-sonnet-4-5", .api_key = "demo", .base_url = mock.url("secondary")}}, http,
              fast},
        Route{"local", OpenAICompatible::ollama("llama3.1", mock.url("local") + "/v1"), http, fast},
        Route{"canned", StaticReply{R"({"status":"busy, try again later"})"}},
    };
    auto tally = std::make_shared<Tally>();
    router.add_sink(std::make_shared<CallbackSink>([tally](const Event& e) { tally->record(e); }));

    const int outage_start = total * 3 / 10, outage_end = total * 13 / 20;
    std::printf("failover demo: %d requests through primary (OpenAI wire) -> secondary (Anthropic wire)\n"
                "  -> local (Ollama, OpenAI-compatible) -> canned reply, all on loopback mocks at %s\n\n",
                total, mock.base_url().c_str());

    // First, while everything is healthy: a schema repair and a policy block.
    // Structured output: the primary's first answer breaks the schema, the repair turn fixes it.
    primary.then(Fault::ok_json({{"vendor", "ACME"}, {"total", "12.50"}, {"currency", "euro"}}))
        .then(Fault::ok_json({{"vendor", "ACME"}, {"total", 12.5}, {"currency", "EUR"}}));
    ChatRequest invoice{.messages = {user("Extract the invoice fields: ACME, total 12.50 EUR")},
                        .schema = Schema::parse(kInvoiceSchema),
                        .tenant = "acme"};
    auto inv = router.route_with_fallback(invoice);
    std::printf("Schema repair\n");
    if (inv) {
        std::printf("  answered by %s after %zu attempts: %s\n", inv->route.c_str(), inv->attempts.size(),
                    inv->json.dump().c_str());
        for (const auto& a : inv->attempts)
            if (!a.ok) std::printf("  attempt %d rejected: %s\n", a.number, a.message.c_str());
    } else {
        std::printf("  failed: %s\n", inv.error().message.c_str());
    }

    // A content-policy block is returned to the caller; the chain does not route around it.
    const auto secondary_before = secondary.requests();
    primary.then(Fault::refusal("I can't help with that request."));
    auto blocked = router.route_with_fallback(ChatRequest{.messages = {user("something the model refuses")}, .tenant = "acme"});
    std::printf("\nPolicy block\n");
    if (!blocked && blocked.error().kind == FailureKind::policy)
        std::printf("  %s/%s from %s: \"%s\"; secondary calls during it: %zu\n",
                    std::string(to_string(blocked.error().kind)).c_str(),
                    std::string(to_string(blocked.error().reason)).c_str(), blocked.error().route.c_str(),
                    blocked.error().message.c_str(), secondary.requests() - secondary_before);
    else
        std::printf("  unexpected: the refusal was not surfaced\n");
    const bool repaired = inv && inv->attempts.size() == 2;
    const bool surfaced = !blocked && blocked.error().kind == FailureKind::policy && secondary.requests() == secondary_before;

    // A streamed answer: the primary accepts the request and then says nothing. After its
    // first-token limit the stream moves on, before anything reached the reader, and the
    // secondary's tokens are printed as they arrive.
    primary.then(Fault::ok("never sent").stall_first(), 2);  // the attempt and its retry
    secondary.then(Fault::ok("Failover happened before the first token, so this answer is the only one you see.")
                       .pieces(5)
                       .paced(quick ? 5ms : 25ms));
    std::printf("\nStreaming (the primary stalls before its first token; limit %lld ms)\n",
                static_cast<long long>(fast.first_token_timeout.count()));
    auto streamed = router.stream(ChatRequest{.messages = {user("Tell me what happened.")}, .tenant = "acme"}, printer());
    std::printf("\n");
    const bool stream_failed_over = streamed && streamed->route == "secondary" && streamed->attempts.size() == 3 &&
                                    streamed->attempts[0].reason == Reason::timeout;
    if (streamed) {
        std::printf("  answered by %s after %zu attempts (the primary's two: %s, before any token)\n",
                    streamed->route.c_str(), streamed->attempts.size(),
                    std::string(to_string(streamed->attempts[0].reason)).c_str());
    } else {
        std::printf("  failed: %s\n", streamed.error().message.c_str());
    }

    {
        std::lock_guard lock(tally->mu);  // the table below is about the degradation story only
        tally->served.clear();
        tally->fallbacks.clear();
        tally->fallback_reasons.clear();
        tally->attempts_by_outcome.clear();
    }
    std::printf("\nRouting %d requests while the primary degrades: a 429 burst, a long Retry-After, an outage\n", total);
    std::vector<double> latencies_ms;
    auto next_tick = std::chrono::steady_clock::now();
    for (int i = 0; i < total; ++i) {
        next_tick += pace;
        // The primary's story.
        const auto ms = [&](int n) { return std::to_string(n * pace.count()); };
        if (i == total / 20) primary.then(Fault::status(429).retry_after_ms(ms(2)));   // short: waited out
        if (i == total / 10) primary.then(Fault::status(429).retry_after_ms(ms(10)));  // long: cool down, fail over
        if (i == total / 6) secondary.then(Fault::status(529)).then(Fault::status(529)).then(Fault::status(529));
        if (i == outage_start) primary.otherwise(Fault::status(503));
        if (i == outage_start + (outage_end - outage_start) / 2) secondary.then(Fault::status(500), 2);
        if (i == outage_end) primary.otherwise(Fault::ok("answer from the primary"));
        {
            std::lock_guard lock(tally->mu);
            tally->current_request = i + 1;
        }
        ChatRequest req{.messages = {user("Summarise ticket #" + std::to_string(i))},
                        .tenant = (i % 3 == 0) ? "acme" : "globex"};
        const auto t0 = std::chrono::steady_clock::now();
        auto r = router.route_with_fallback(req);
        latencies_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        if (!r) std::printf("\n  request %d failed: %s\n", i + 1, r.error().message.c_str());
        progress(i + 1, total);
        std::this_thread::sleep_until(next_tick);
    }
    std::printf("\n");

    std::unique_lock lock(tally->mu);  // released before routing again: the sink takes it too
    std::printf("Requests served per route\n");
    int served_total = 0;
    for (const char* name : {"primary", "secondary", "local", "canned"}) {
        const int n = tally->served[name];
        served_total += n;
        std::printf("  %-10s %5d  %5.1f%%\n", name, n, 100.0 * n / total);
    }
    std::printf("  %-10s %5d\n\n", "total", served_total);

    std::printf("Fallbacks by reason\n");
    for (const auto& [k, n] : tally->fallbacks) std::printf("  %-44s %5d\n", k.c_str(), n);
    std::printf("  (%zu distinct reasons)\n\n", tally->fallback_reasons.size());

    std::printf("Attempts by outcome\n");
    for (const auto& [k, n] : tally->attempts_by_outcome) std::printf("  %-20s %5d\n", k.c_str(), n);
    std::printf("\nBreaker transitions\n");
    for (const auto& t : tally->transitions) std::printf("  %s\n", t.c_str());
    std::printf("\nLatency per request: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", percentile(latencies_ms, 0.5),
                percentile(latencies_ms, 0.99), percentile(latencies_ms, 1.0));
    std::printf("Mock server: %zu requests over %zu TCP connections (keep-alive reuse)\n\n", mock.requests(),
                mock.connections());
    const int served_primary = tally->served["primary"], served_secondary = tally->served["secondary"];
    const std::size_t reasons = tally->fallback_reasons.size();
    lock.unlock();

    const bool ok = served_total == total && served_primary > 0 && served_secondary > 0 && reasons >= 3 && repaired &&
                    surfaced && stream_failed_over;
    return ok ? 0 : 1;
}

int run_real() {
    auto http = std::make_shared<CurlTransport>();
    std::vector<AnyRoute> chain;
    std::string names;
    if (!env("OPENAI_API_KEY").empty()) {
        chain.emplace_back(Route{"openai", OpenAI{{.model = "gpt-4o-mini", .api_key = env("OPENAI_API_KEY")}}, http});
        names += "openai -> ";
    }
    if (!env("ANTHROPIC_API_KEY").empty()) {
        chain.emplace_back(Route{"anthropic",
                                 Anthropic{{.model = "claude-sonnet-4-5", .api_key = env("ANTHROPIC_API_KEY")}}, http});
        names += "anthropic -> ";
    }
    if (!env("GEMINI_API_KEY").empty()) {
        chain.emplace_back(Route{"gemini", Gemini{{.model = "gemini-2.5-flash", .api_key = env("GEMINI_API_KEY")}}, http});
        names += "gemini -> ";
    }
    chain.emplace_back(Route{"canned", StaticReply{R"({"status":"busy, try again later"})"}});
    names += "canned";
    DynamicRouter router{std::move(chain)};
    router.add_sink(std::make_shared<JsonLinesSink>(std::cerr));
    std::printf("failover demo against real providers: %s\n\n", names.c_str());

    auto show = [](const char* what, const Result<ChatResponse>& r) {
        if (r) {
            std::printf("%s: answered by %s after %zu attempt(s)\n  %s\n\n", what, r->route.c_str(), r->attempts.size(),
                        r->json.is_null() ? r->text.c_str() : r->json.dump().c_str());
        } else {
            std::printf("%s: %s/%s: %s\n", what, std::string(to_string(r.error().kind)).c_str(),
                        std::string(to_string(r.error().reason)).c_str(), r.error().message.c_str());
            for (const auto& a : r.error().attempts)
                std::printf("  %s #%d: %s (HTTP %d) %s\n", a.route.c_str(), a.number,
                            std::string(to_string(a.reason)).c_str(), a.status, a.message.c_str());
            std::printf("\n");
        }
    };
    show("Plain prompt",
         router.route_with_fallback(ChatRequest{.messages = {system_prompt("Be terse."), user("Name three primary colours.")}}));
    show("Structured output", router.route_with_fallback(ChatRequest{
                                  .messages = {user("Extract the invoice fields: ACME Corp, total 12.50 EUR")},
                                  .schema = Schema::parse(kInvoiceSchema),
                                  .schema_name = "invoice"}));
    std::printf("Streamed prompt\n");
    auto streamed = router.stream(ChatRequest{.messages = {user("In two sentences, why do LLM calls need a fallback?")}},
                                  printer());
    std::printf("\n");
    show("Streamed prompt", streamed);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    bool quick = false, force_mock = false;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--quick") == 0) quick = true;
        else if (std::strcmp(argv[i], "--mock") == 0) force_mock = true;
        else {
            std::fprintf(stderr, "usage: %s [--quick] [--mock]\n", argv[0]);
            return 2;
        }
    }
    const bool have_keys =
        !env("OPENAI_API_KEY").empty() || !env("ANTHROPIC_API_KEY").empty() || !env("GEMINI_API_KEY").empty();
    try {
        return (have_keys && !force_mock) ? run_real() : run_mock(quick);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "demo: %s\n", e.what());
        return 1;
    }
}
