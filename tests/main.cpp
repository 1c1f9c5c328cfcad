// SPDX-License-Identifier: MIT
// Catch2 2.x needs its main in one TU; Catch2 3 links Catch2WithMain instead.
#if defined(FAILOVER_CATCH_V2_MAIN)
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
#endif
