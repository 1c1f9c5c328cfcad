// SPDX-License-Identifier: MIT
// A provider the library does not ship, in a chain. examples/adapters/ollama_native.hpp
// is a user-written adapter for Ollama's native /api/chat (about a hundred lines:
// encode, decode, an optional classify hook). Here it is the primary route, with
// an OpenAI-compatible server (a vLLM) behind it, both played by the loopback mock:
//   1. the Ollama server fails once with a 500; the router retries the same route;
//   2. a structured-output request goes through the custom adapter (the schema
//      travels as Ollama's "format" field, the answer comes back parsed);
//   3. the model is not pulled (404): the adapter's classification says terminal,
//      so the chain fails over to the vLLM route at once, without a retry.
// Exits non-zero if any of that did not happen. To try it against a real Ollama,
// give OllamaNative base_url "http://127.0.0.1:11434".
//   example-02-custom-adapter [--quick]
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include <failover/failover.hpp>

#include "adapters/ollama_native.hpp"
#include "support/mock_provider.hpp"

using namespace failover;
using namespace std::chrono_literals;
using failover_mock::Fault;

namespace {

void show(const char* title, const Result<ChatResponse>& r) {
    std::printf("%s\n", title);
    if (!r) {
        std::printf("  failed: %s/%s: %s\n\n", std::string(to_string(r.error().kind)).c_str(),
                    std::string(to_string(r.error().reason)).c_str(), r.error().message.c_str());
        return;
    }
    for (const auto& a : r->attempts) {
        if (a.ok) std::printf("  %-7s attempt %d: ok\n", a.route.c_str(), a.number);
        else
            std::printf("  %-7s attempt %d: %s/%s (HTTP %d) %s\n", a.route.c_str(), a.number,
                        std::string(to_string(a.kind)).c_str(), std::string(to_string(a.reason)).c_str(), a.status,
                        a.message.c_str());
    }
    std::printf("  answer from %s (%s): %s\n\n", r->route.c_str(), r->model.c_str(),
                r->json.is_null() ? r->text.c_str() : r->json.dump().c_str());
}

int run() {
    failover_mock::MockProvider mock;  // speaks Ollama's /api/chat and OpenAI's /v1/chat/completions
    auto& ollama = mock.route("ollama");
    auto& vllm = mock.route("vllm");
    vllm.otherwise(Fault::ok("answer from the vLLM fallback"));

    RouteOptions fast;
    fast.backoff = Backoff{10ms, 50ms};  // short waits for the demo; the default base is 500 ms

    auto http = std::make_shared<CurlTransport>();
    Router router{
        Route{"ollama", example::OllamaNative{{.base_url = mock.url("ollama"), .model = "llama3.1"}}, http, fast},
        Route{"vllm", OpenAICompatible::vllm("meta-llama/Llama-3.1-8B-Instruct", mock.url("vllm") + "/v1"), http,
              fast},
    };

    // 1. A transient failure is retried on the same route.
    ollama.then(Fault::status(500)).then(Fault::ok("Paris is the capital of France."));
    auto retried = router.route_with_fallback(ChatRequest{.messages = {user("What is the capital of France?")}});
    show("1. one 500, then an answer: retried on the custom route", retried);

    // 2. Structured output through the custom adapter.
    ollama.then(Fault::ok_json({{"city", "Paris"}, {"country", "France"}}));
    ChatRequest structured{
        .messages = {user("Where is the Eiffel Tower? Answer as JSON.")},
        .schema = Schema::parse(R"({"type":"object","required":["city","country"],
                                    "properties":{"city":{"type":"string"},"country":{"type":"string"}}})")};
    auto parsed = router.route_with_fallback(structured);
    show("2. structured output: the schema goes out as Ollama's \"format\"", parsed);
    const auto sent = ollama.last_request();
    const bool format_sent = sent && sent->json().contains("format") &&
                             sent->json()["format"] == structured.schema->document();
    std::printf("  request body sent to /api/chat: %s\n\n", sent ? sent->body.c_str() : "(none)");

    // 3. A terminal failure fails over at once.
    ollama.then(Fault::status(404));
    auto failed_over = router.route_with_fallback(ChatRequest{.messages = {user("Hello?")}});
    show("3. model not pulled (404): terminal, straight to the fallback", failed_over);

    const bool ok = retried && retried->route == "ollama" && retried->attempts.size() == 2 &&
                    retried->attempts[0].reason == Reason::server_error &&  //
                    parsed && parsed->route == "ollama" && parsed->json.value("city", "") == "Paris" && format_sent &&
                    failed_over && failed_over->route == "vllm" && failed_over->attempts.size() == 2 &&
                    failed_over->attempts[0].reason == Reason::not_found;
    std::printf(ok ? "custom adapter: retry, structured output and fail over all behaved as expected\n"
                   : "custom adapter: UNEXPECTED outcome (see above)\n");
    return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--quick") != 0) {  // everything here is quick; accepted for CTest
            std::fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
            return 2;
        }
    }
    try {
        return run();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "example: %s\n", e.what());
        return 1;
    }
}
