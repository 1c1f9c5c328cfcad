// SPDX-License-Identifier: MIT
// Must NOT compile: an adapter with neither encode/decode nor respond. CTest
// checks that the compiler's output carries failover's readable message.
#include <failover/failover.hpp>

struct NotAnAdapter {
    int encode(int) const { return 0; }
};

int main() {
    failover::Route r{"x", NotAnAdapter{}};
    (void)r;
}
