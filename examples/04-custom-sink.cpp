// SPDX-License-Identifier: MIT
// A metrics sink of your own. Derive from failover::BasicSink<std::mutex> and
// implement record_(): the base class takes the lock, so record_ may touch plain
// members even though one Router serves many threads. Events hold string_views
// that live only during the call, so the sink copies what it keeps. This one
// prints a line per FallbackEvent and counts fallbacks by reason. The primary (an
// OpenAI-format mock) answers every call with 503: the first requests fall back
// with reason "overloaded" after a retry; once three failures in a row have
// opened the primary's circuit breaker, later requests skip it and fall back with
// reason "breaker_open", without calling it. Exits non-zero if the sink did not
// see both reasons, or did not see exactly one fallback per request.
//   example-04-custom-sink [--quick]
#include <cstdio>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <variant>

#include <failover/failover.hpp>

#include "support/mock_provider.hpp"

using namespace failover;
using namespace std::chrono_literals;
using failover_mock::Fault;

namespace {

/// Prints each fallback and counts them by reason.
class FallbackCounter final : public BasicSink<std::mutex> {
public:
    /// A copy of the counts so far (taken under the sink's lock).
    std::map<std::string, int> by_reason() {
        std::lock_guard lock(mutex_);
        return counts_;
    }

protected:
    // Called with mutex_ held. Every other event type is ignored.
    void record_(const Event& e) override {
        const auto* f = std::get_if<FallbackEvent>(&e);
        if (f == nullptr) return;
        const std::string reason(to_string(f->reason));
        ++counts_[reason];  // std::string key: a copy, since f->from/to/tenant die after this call
        std::printf("  fallback %.*s -> %.*s  reason=%s  tenant=%.*s\n", static_cast<int>(f->from.size()),
                    f->from.data(), static_cast<int>(f->to.size()), f->to.data(), reason.c_str(),
                    static_cast<int>(f->tenant.size()), f->tenant.data());
    }

private:
    std::map<std::string, int> counts_;
};

int run() {
    failover_mock::MockProvider mock;
    mock.route("primary").otherwise(Fault::status(503));
    mock.route("secondary").otherwise(Fault::ok("answer from the secondary"));

    RouteOptions o;
    o.backoff = Backoff{5ms, 20ms};
    o.breaker.consecutive_failures = 3;  // open after three failures in a row (default 5)

    auto http = std::make_shared<CurlTransport>();
    Router router{
        Route{"primary", OpenAI{{.model = "gpt-4o", .api_key = "sk-demo", .base_url = mock.url("primary") + "/v1"}},
              http, o},
        Route{"secondary",
              Anthropic{{.model = "claude-sonnet-4-5", .api_key = "demo", .base_url = mock.url("secondary")}}, http,
              o},
    };
    auto counter = std::make_shared<FallbackCounter>();
    router.add_sink(counter);

    const int requests = 6;
    int answered_by_secondary = 0;
    std::printf("%d requests; the primary answers every call with 503\n", requests);
    for (int i = 0; i < requests; ++i) {
        auto r = router.route_with_fallback(ChatRequest{.messages = {user("Summarise ticket #" + std::to_string(i))},
                                                        .tenant = i % 2 ? "acme" : "globex"});
        if (r && r->route == "secondary") ++answered_by_secondary;
        else std::printf("  request %d: unexpected outcome\n", i);
    }

    const auto counts = counter->by_reason();
    int total = 0;
    std::printf("\nFallbacks by reason\n");
    for (const auto& [reason, n] : counts) {
        std::printf("  %-14s %d\n", reason.c_str(), n);
        total += n;
    }
    std::printf("primary called %zu times for %d requests\n", mock.route("primary").requests(), requests);
    const bool ok = answered_by_secondary == requests && total == requests && counts.count("overloaded") == 1 &&
                    counts.count("breaker_open") == 1;
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
