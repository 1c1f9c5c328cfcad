// SPDX-License-Identifier: MIT
// A user's first program: a two-route chain whose primary is down, answered by
// the fallback. Exits 0 only if the fallback answered after one failed attempt.
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
    return (r->route == "canned" && r->attempts.size() == 2) ? 0 : 1;
}
