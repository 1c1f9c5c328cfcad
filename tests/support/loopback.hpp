// SPDX-License-Identifier: MIT
// The fixture of the tests that go through real HTTP: the loopback mock, one
// CurlTransport, a ManualClock that is also the sleeper, a RecordingSink, and
// the built-in adapters pointed at the mock's routes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include <failover/failover.hpp>

#include "support/fakes.hpp"
#include "support/mock_provider.hpp"

namespace failover_test {

struct LoopbackFixture {
    explicit LoopbackFixture(std::uint64_t jitter_seed = 1) : seed(jitter_seed) {}

    failover_mock::MockProvider mock;
    std::shared_ptr<failover::CurlTransport> http = std::make_shared<failover::CurlTransport>();
    std::shared_ptr<failover::ManualClock> clock = std::make_shared<failover::ManualClock>();
    std::shared_ptr<RecordingSink> sink = std::make_shared<RecordingSink>();
    std::uint64_t seed;

    /// Options with the manual clock as clock and sleeper, and the fixed jitter seed.
    failover::RouterOptions options() const {
        failover::RouterOptions o;
        o.clock = clock;
        o.sleeper = clock;
        o.seed = seed;
        return o;
    }
    failover::OpenAI openai(const std::string& route) const {
        return failover::OpenAI{{.model = "gpt-4o", .api_key = "sk-test", .base_url = mock.url(route) + "/v1"}};
    }
    failover::Anthropic anthropic(const std::string& route) const {
        return failover::Anthropic{{.model = "claude-sonnet-4-5", .api_key = "test", .base_url = mock.url(route)}};
    }
    failover::Gemini gemini(const std::string& route, std::string model = "gemini-2.5-flash") const {
        return failover::Gemini{{.model = std::move(model), .api_key = "test", .base_url = mock.url(route)}};
    }
};

}  // namespace failover_test
