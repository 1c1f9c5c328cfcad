// SPDX-License-Identifier: MIT
// Two translation units include the umbrella header and are linked together:
// any non-inline definition in a header fails this link.
#include <failover/failover.hpp>

int odr_second();

int main() { return odr_second() == 42 ? 0 : 1; }
