// SPDX-License-Identifier: MIT
// A user's first program: a two-route chain whose primary is down, answered by
// the fallback; then the parts a compiled-mode build links from failover::compiled
// (a schema, an adapter's encode, a transport). Exits 0 only if all behaved.
#include <failover/failover.hpp>

#include <cstdio>

int main() {
    using namespace failover;
    Router router{
        Route{"primary", HardError{Failure::of(Reason::server_error, "primary is down")},
              RouteOptions{.max_attempts = 1}},
        Route{"canned", StaticReply{R"({"status":"busy"})"}},
    };
    Result<ChatResponse> r = router.route_with_fallback(ChatRequest{.messages = {user("hello")}});
    if (!r) {
        std::fprintf(stderr, "consumer: %s\n", std::string(to_string(r.error().reason)).c_str());
        return 1;
    }
    std::printf("consumer: answered by %s after %zu attempts: %s\n", r->route.c_str(), r->attempts.size(),
                r->text.c_str());
    auto schema = Schema::parse(R"({"type":"object","required":["status"]})");
    OpenAI openai{{.model = "gpt-4o", .api_key = "sk-consumer", .base_url = "http://127.0.0.1:9/v1"}};
    auto encoded = openai.encode(ChatRequest{.messages = {user("hello")}, .schema = schema});
    auto http = std::make_shared<CurlTransport>();
    const bool parts_ok = schema->accepts(nlohmann::json::parse(r->text)) && encoded &&
                          encoded->body.find("gpt-4o") != std::string::npos && http->options().max_response_bytes > 0;
    std::printf("consumer: schema, adapter and transport %s\n", parts_ok ? "ok" : "FAILED");
    return (r->route == "canned" && r->attempts.size() == 2 && parts_ok) ? 0 : 1;
}
