// SPDX-License-Identifier: MIT
// Many requests in flight from the application's own loop, with no thread per
// request. A game or UI loop owns a failover::EventLoop and gives it a turn each
// frame (run_once with a short wait); requests go in with Router::submit and
// their completions run inside that turn, on the loop's thread. Here 40
// requests are submitted in one frame to an OpenAI-format mock that answers
// after 300 ms, so they all wait together: the frames keep coming while they do.
// Then the primary goes down: its breaker opens, later requests skip to the
// canned reply, and an active health check (not a user request) probes the
// primary (failing while it is down) until it answers again and closes the breaker.
// Exits non-zero if the requests did not overlap, or the health check did not
// close the breaker without a user request reaching the primary.
//   example-06-event-loop [--quick]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
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

/// Counts health-check verdicts and prints breaker transitions.
class Watch final : public BasicSink<std::mutex> {
public:
    int passed() {
        std::lock_guard lock(mutex_);
        return passed_;
    }
    int failed() {
        std::lock_guard lock(mutex_);
        return failed_;
    }
    int primary_attempts() {
        std::lock_guard lock(mutex_);
        return primary_attempts_;
    }

protected:
    void record_(const Event& e) override {
        if (const auto* a = std::get_if<AttemptEvent>(&e); a && a->route == "primary" && !a->ok) ++primary_attempts_;
        if (const auto* h = std::get_if<HealthCheckEvent>(&e)) {
            if (h->ok) ++passed_;
            else ++failed_;
            std::printf("  health check of %.*s: %s\n", static_cast<int>(h->route.size()), h->route.data(),
                        h->ok ? "passed" : std::string(to_string(h->reason)).c_str());
        } else if (const auto* b = std::get_if<BreakerEvent>(&e)) {
            std::printf("  breaker of %.*s: %s -> %s\n", static_cast<int>(b->route.size()), b->route.data(),
                        std::string(to_string(b->transition.from)).c_str(), std::string(to_string(b->transition.to)).c_str());
        }
    }

private:
    int passed_ = 0;
    int failed_ = 0;
    int primary_attempts_ = 0;  // failed attempts of user requests on the primary
};

ChatRequest question(int i) {
    return ChatRequest{.messages = {user("question " + std::to_string(i))}, .tenant = "game"};
}

int run(bool quick) {
    failover_mock::MockProvider mock;
    mock.route("primary").otherwise(Fault::ok("an answer").delayed(300ms));

    RouteOptions o;
    o.max_attempts = 1;
    o.breaker.consecutive_failures = 3;
    o.breaker.open_base = 200ms;  // short, for the demo
    auto http = std::make_shared<CurlTransport>();
    Router router{
        Route{"primary", OpenAI{{.model = "gpt-4o", .api_key = "sk-demo", .base_url = mock.url("primary") + "/v1"}},
              http, o},
        Route{"canned", StaticReply{"The oracle is resting; ask again soon."}},
    };
    auto watch = std::make_shared<Watch>();
    router.add_sink(watch);

    EventLoop loop;
    const int n = quick ? 20 : 40;
    int answered = 0, by_primary = 0, frames = 0;
    std::size_t most_in_flight = 0;
    auto done = [&](Result<ChatResponse> r) {
        ++answered;
        if (r && r->route == "primary") ++by_primary;
    };

    // Frame 0 submits every request; each frame gives the loop up to 16 ms.
    std::printf("%d requests submitted in one frame; the primary answers each after 300 ms\n", n);
    for (int i = 0; i < n; ++i) router.submit(loop, question(i), done);
    const auto t0 = std::chrono::steady_clock::now();
    while (answered < n) {
        loop.run_once(16ms);
        most_in_flight = std::max(most_in_flight, loop.transfers());
        ++frames;
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    std::printf("  %d answered (%d by primary) in %lld ms over %d frames; %zu were on the wire at once\n", answered,
                by_primary, static_cast<long long>(ms), frames, most_in_flight);

    // The primary goes down. Health checks run on the same loop every 100 ms.
    std::printf("the primary goes down; health checks probe it every 100 ms\n");
    mock.route("primary").reset();
    mock.route("primary").otherwise(Fault::status(503));
    router.start_health_checks(loop, HealthCheckOptions{.interval = 100ms, .timeout = 1s});
    int canned = 0;
    for (int i = 0; i < 6; ++i) {  // one after another, a frame loop each
        bool finished = false;
        router.submit(loop, question(i), [&](Result<ChatResponse> r) {
            finished = true;
            if (r && r->route == "canned") ++canned;
        });
        while (!finished) loop.run_once(16ms);
    }
    const int user_calls = watch->primary_attempts();
    std::printf("  6 requests, all answered by canned: %d; the primary was called for %d of them, then its breaker "
                "opened\n",
                canned, user_calls);

    // Frames go on while it is down; a probe fails.
    while (watch->failed() < 1) loop.run_once(16ms);

    // It recovers: only health checks reach it until one passes.
    mock.route("primary").reset();
    mock.route("primary").otherwise(Fault::ok("back again"));
    while (router.route<0>().breaker().state() != BreakerState::closed) loop.run_once(16ms);
    const int reached = static_cast<int>(mock.route("primary").requests());
    std::printf("  the primary recovered: %d probe(s) reached it and no user request (%d user calls so far)\n", reached,
                watch->primary_attempts());
    router.stop_health_checks();

    bool back = false;
    router.submit(loop, question(99), [&](Result<ChatResponse> r) { back = r && r->route == "primary"; ++answered; });
    while (answered < n + 1) loop.run_once(16ms);
    std::printf("  the next request is answered by %s\n", back ? "primary" : "another route");
    return (most_in_flight >= static_cast<std::size_t>(n) && canned == 6 && user_calls == 3 && reached >= 1 &&
            watch->primary_attempts() == 3 && watch->failed() >= 1 && watch->passed() >= 1 && back)
               ? 0
               : 1;
}

}  // namespace

int main(int argc, char** argv) {
    const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
    try {
        return run(quick);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
}
