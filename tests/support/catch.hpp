// SPDX-License-Identifier: MIT
// One include for Catch2 2.13 (Debian bookworm's package) and Catch2 3.
#pragma once

#include <string>

#if defined(FAILOVER_CATCH3)
#include <catch2/catch_approx.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
using Catch::Approx;
namespace Catch {
inline auto Contains(const std::string& s) { return Matchers::ContainsSubstring(s); }
}  // namespace Catch
#else
#include <catch2/catch.hpp>
#endif
