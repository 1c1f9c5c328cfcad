// SPDX-License-Identifier: MIT
// One include for Catch2 2.13 (Debian bookworm's package) and Catch2 3.
#pragma once

#if defined(FAILOVER_CATCH3)
#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
using Catch::Approx;
#else
#include <catch2/catch.hpp>
#endif
