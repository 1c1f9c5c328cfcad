// SPDX-License-Identifier: MIT
// Where the tests find the files they read at run time. CMake knows these paths
// when it configures the build; they are compiled into support/paths.cpp only,
// so every other test file compiles to the same bytes in any checkout, and a
// compiler cache shared by checkouts (cmake/deps.sh) serves a fresh clone too.
#pragma once

namespace failover_test {

/// tests/data of this checkout.
const char* test_data_dir() noexcept;
/// README.md of this checkout.
const char* readme_path() noexcept;
/// OpenAI's Chat Completions request schema (tests/data/openai-openapi).
const char* openai_schema_path() noexcept;
/// The failover_redis_peer executable of this build.
const char* redis_peer_path() noexcept;

}  // namespace failover_test
