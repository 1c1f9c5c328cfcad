// SPDX-License-Identifier: MIT
// The paths of support/paths.hpp, from the definitions tests/CMakeLists.txt gives this file.
#include "support/paths.hpp"

namespace failover_test {

const char* test_data_dir() noexcept { return FAILOVER_TEST_DATA_DIR; }
const char* readme_path() noexcept { return FAILOVER_README; }
const char* openai_schema_path() noexcept { return FAILOVER_OPENAI_SCHEMA; }
const char* redis_peer_path() noexcept { return FAILOVER_REDIS_PEER; }

}  // namespace failover_test
