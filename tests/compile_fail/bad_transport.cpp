// SPDX-License-Identifier: MIT
// Must NOT compile: a transport without send(). CTest checks the message.
#include <failover/failover.hpp>

struct Adapter {
    failover::Result<failover::HttpRequest> encode(const failover::ChatRequest&) const { return failover::HttpRequest{}; }
    failover::Result<failover::ChatResponse> decode(const failover::ChatRequest&, const failover::HttpResponse&) const {
        return failover::ChatResponse{};
    }
};
struct NotATransport {
    void post() {}
};

int main() {
    failover::Route r{"x", Adapter{}, std::make_shared<NotATransport>()};
    (void)r;
}
