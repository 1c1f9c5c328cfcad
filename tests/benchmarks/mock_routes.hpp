// SPDX-License-Identifier: MIT
// The routes every end-to-end benchmark expects from the loopback mock, set up
// in one place for failover_mock_server and for the benchmarks' in-process
// fallback: "ok" answers 200 with the typical exchange's ~400-byte answer
// (about 740 bytes of OpenAI JSON; asked for a stream, 51 content events of
// 8 bytes), "fail" answers 503 with the provider's error body (a failing
// primary), and "long1m" / "long16m" answer 1 MiB / 16 MiB of text, streamed
// in 64-byte pieces (the streaming memory benchmark's long answers).
#pragma once

#include <algorithm>
#include <cstddef>
#include <string>

#include "bench_util.hpp"
#include "support/mock_provider.hpp"

namespace bench {

/// Bytes of text per content event of the long answers.
inline constexpr std::size_t long_piece_bytes = 64;

/// A long answer: the typical answer text repeated to exactly `bytes` bytes (ASCII, no JSON escapes).
inline std::string long_text(std::size_t bytes) {
    const std::string unit = answer_text();
    std::string s;
    s.reserve(bytes);
    while (s.size() < bytes) s.append(unit, 0, std::min(unit.size(), bytes - s.size()));
    return s;
}

/// Sets up routes "ok", "fail", "long1m" and "long16m" on `mock`.
inline void configure_routes(failover_mock::MockProvider& mock) {
    mock.route("ok").otherwise(failover_mock::Fault::ok(answer_text()));
    mock.route("fail").otherwise(failover_mock::Fault::status(503));
    mock.route("long1m").otherwise(failover_mock::Fault::ok(long_text(std::size_t{1} << 20)).pieces(long_piece_bytes));
    mock.route("long16m").otherwise(failover_mock::Fault::ok(long_text(std::size_t{16} << 20)).pieces(long_piece_bytes));
}

}  // namespace bench
