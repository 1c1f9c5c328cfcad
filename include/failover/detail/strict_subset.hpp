// SPDX-License-Identifier: MIT
// StrictSubset, what Schema::strict_subset() returns (schema.hpp) and what
// detail/strict_schema.hpp computes: apart so that either header can come first.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "failover/version.hpp"

FAILOVER_BEGIN_NAMESPACE

/// How a schema fits OpenAI's strict structured-output subset (README: "Strict mode").
struct StrictSubset {
    bool ready = false;                  ///< `document` may be sent with strict: true
    nlohmann::json document{};           ///< the strict form: additionalProperties false added, annotations left out
    std::vector<std::string> reasons{};  ///< why not, each "<pointer>: <problem>" (empty when ready)
};

FAILOVER_END_NAMESPACE
