// SPDX-License-Identifier: MIT
// Counts heap allocations made through operator new, per thread, so a benchmark
// can report allocations per operation (the breaker's hot path must make none).
// Replaces the global operator new/delete: include it in exactly one
// translation unit of a program (each benchmark program is one TU). malloc
// calls made by C libraries (libcurl) are not counted. The replacements are
// noinline: inlined into callers, GCC 12 flags free() on a new-ed pointer
// (-Wmismatched-new-delete) although the pair is consistent.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace bench {
/// operator new calls made by the calling thread so far.
inline thread_local std::uint64_t thread_allocations = 0;
}  // namespace bench

[[gnu::noinline]] void* operator new(std::size_t n) {
    ++bench::thread_allocations;
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new[](std::size_t n) {
    ++bench::thread_allocations;
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    ++bench::thread_allocations;
    return std::malloc(n ? n : 1);
}
[[gnu::noinline]] void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
    ++bench::thread_allocations;
    return std::malloc(n ? n : 1);
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
