// SPDX-License-Identifier: MIT
#include <failover/failover.hpp>

int odr_second() {
    return failover::to_string(failover::Reason::auth) == "auth" ? 42 : 0;
}
