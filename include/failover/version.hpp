// SPDX-License-Identifier: MIT
// The library's version, stated once (CMake reads it from here), and the
// macros that open and close the versioned inline namespace. Every public
// declaration lives in failover::v0 so two incompatible copies linked into one
// program do not violate the ODR silently.
#pragma once

#define FAILOVER_VERSION_MAJOR 0
#define FAILOVER_VERSION_MINOR 2
#define FAILOVER_VERSION_PATCH 0

#define FAILOVER_BEGIN_NAMESPACE \
    namespace failover {         \
    inline namespace v0 {
#define FAILOVER_END_NAMESPACE \
    }                          \
    }
