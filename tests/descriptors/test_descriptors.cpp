// SPDX-License-Identifier: MIT
// Running out of file descriptors, for real: the process limit is lowered and
// every descriptor below it is taken, so the next socket() fails with EMFILE.
// That is the host's problem, not the provider's: the attempt is listed as
// local_resource, the provider never sees a request, its breaker and retry
// budget are untouched, and the chain goes on.
//
// Its own executable because UndefinedBehaviorSanitizer's vptr check needs a
// pipe to look at memory: with no descriptor left it reports every virtual call
// as a bad object. Under FAILOVER_SANITIZE this file alone is built without the
// vptr check (AddressSanitizer and every other UB check stay on).
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "support/catch.hpp"
#include "support/fakes.hpp"
#include "support/mock_provider.hpp"

using namespace failover;
using namespace std::chrono_literals;
using failover_mock::MockProvider;

namespace {

ChatRequest ask() {
    ChatRequest r;
    r.messages = {user("Say hello")};
    r.tenant = "acme";
    return r;
}

// Takes every descriptor number below a lowered limit; gives them back on scope exit.
class Exhausted {
public:
    Exhausted() {
        REQUIRE(::getrlimit(RLIMIT_NOFILE, &old_) == 0);
        int highest = 0;
        for (int fd = 0; fd < 65536; ++fd)
            if (::fcntl(fd, F_GETFD) != -1) highest = fd;
        rlimit low = old_;
        low.rlim_cur = static_cast<rlim_t>(highest + 1);
        REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
        for (int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC); fd >= 0; fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC))
            filler_.push_back(fd);
    }
    ~Exhausted() {
        for (int fd : filler_) ::close(fd);
        ::setrlimit(RLIMIT_NOFILE, &old_);
    }
    Exhausted(const Exhausted&) = delete;
    Exhausted& operator=(const Exhausted&) = delete;

private:
    rlimit old_{};
    std::vector<int> filler_;
};

}  // namespace

TEST_CASE("descriptors: running out of descriptors is a local failure, never a strike against the provider") {
    MockProvider mock;
    auto http = std::make_shared<CurlTransport>();
    auto clock = std::make_shared<ManualClock>();
    RouterOptions options;
    options.clock = clock;
    options.sleeper = clock;
    options.seed = 7;
    RouteOptions ro;
    ro.backoff = Backoff{1ms, 1ms};
    OpenAI primary{{.model = "gpt-4o", .api_key = "sk-test", .base_url = mock.url("primary") + "/v1"}};
    Router router{options, Route{"primary", primary, http, ro}, Route{"canned", StaticReply{"busy"}}};
    auto check_local = [&](const Result<ChatResponse>& r) {
        REQUIRE(r);
        CHECK(r->route == "canned");
        REQUIRE(r->attempts.size() == 2);
        CHECK(r->attempts[0].reason == Reason::local_resource);
        CHECK(mock.route("primary").requests() == 0);
        CHECK(router.route<0>().breaker().window_counts(clock->now()).second == 0);
        CHECK(router.route<0>().retry_budget().tokens() == RetryBudgetOptions{}.capacity);
    };
    SECTION("a whole answer") {
        Result<ChatResponse> r = [&] {
            Exhausted none;
            return router.route_with_fallback(ask());
        }();
        check_local(r);
    }
    SECTION("a stream") {
        std::string text;
        Result<ChatResponse> r = [&] {
            Exhausted none;
            return router.stream(ask(), [&](const StreamEvent& e) {
                if (e.kind == StreamEvent::Kind::delta && e.delta->kind == StreamDelta::Kind::text) text += e.delta->text;
            });
        }();
        check_local(r);
        CHECK(text == "busy");
    }
    SECTION("submitted to an event loop") {
        EventLoop loop{EventLoopOptions{.clock = clock}};  // its wake-up descriptors exist before the shortage
        std::optional<Result<ChatResponse>> r;
        {
            Exhausted none;
            router.submit(loop, ask(), [&](Result<ChatResponse> answer) { r = std::move(answer); });
            for (int turn = 0; turn < 1000 && !r; ++turn) {
                loop.run_once(10ms);
                if (auto due = loop.next_due(); due && loop.transfers() == 0 && *due > clock->now())
                    clock->advance(*due - clock->now());
            }
        }
        REQUIRE(r);
        check_local(*r);
    }
    auto after = router.route_with_fallback(ask());  // descriptors back: the primary is fine
    REQUIRE(after);
    CHECK(after->route == "primary");
    CHECK(mock.route("primary").requests() == 1);
}
