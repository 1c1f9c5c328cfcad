// SPDX-License-Identifier: MIT
// The routes every end-to-end benchmark expects from the loopback mock, set up
// in one place for failover_mock_server and for bench_e2e's in-process
// fallback: "ok" answers 200 with the typical exchange's ~400-byte answer
// (about 740 bytes of OpenAI JSON), "fail" answers 503 with the provider's
// error body (a failing primary).
#pragma once

#include "bench_util.hpp"
#include "support/mock_provider.hpp"

namespace bench {

/// Sets up routes "ok" and "fail" on `mock`.
inline void configure_routes(failover_mock::MockProvider& mock) {
    mock.route("ok").otherwise(failover_mock::Fault::ok(answer_text()));
    mock.route("fail").otherwise(failover_mock::Fault::status(503));
}

}  // namespace bench
