// SPDX-License-Identifier: MIT
// The README's opening example, verbatim from `#include <failover/failover.hpp>`
// on: a chain of OpenAI, Anthropic, a local Ollama and a canned last resort,
// with every hop logged as JSON lines on stderr and one structured-output
// request. CMake compiles it so the README's snippet cannot rot; CTest does not
// run it, since it talks to the real providers (set OPENAI_API_KEY and
// ANTHROPIC_API_KEY). Without keys or a local Ollama every route fails over and
// the canned reply answers.
#include <failover/failover.hpp>
#include <iostream>
using namespace failover;

int main() {
    auto http = std::make_shared<CurlTransport>();
    Router router{
        Route{"primary",   OpenAI{{.model = "gpt-4o", .api_key = env("OPENAI_API_KEY")}}, http},
        Route{"secondary", Anthropic{{.model = "claude-sonnet-4-5", .api_key = env("ANTHROPIC_API_KEY")}}, http},
        Route{"local",     OpenAICompatible{{.base_url = "http://127.0.0.1:11434/v1", .model = "llama3.1"}}, http},
        Route{"canned",    StaticReply{R"({"status":"busy","total":null})"}},
    };
    router.add_sink(std::make_shared<JsonLinesSink>(std::cerr));

    ChatRequest req{.messages = {user("Extract the invoice fields: ACME, total 12.50")},
                    .schema = Schema::parse(R"({"type":"object","required":["total"]})"), .tenant = "acme"};
    Result<ChatResponse> r = router.route_with_fallback(req);
    if (r) std::cout << r->route << ": " << r->json.dump() << " after " << r->attempts.size() << " attempts\n";
    else std::cout << to_string(r.error().kind) << "/" << to_string(r.error().reason) << ": " << r.error().message << "\n";
}
