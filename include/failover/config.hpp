// SPDX-License-Identifier: MIT
// Every FAILOVER_* macro a user may set before including the library, with its
// default. Runtime knobs (timeouts, breaker thresholds, retry limits) are not
// macros: they live in RouteOptions / RouterOptions so they can differ per route.
#pragma once

#include "failover/version.hpp"

/// Largest response body a transport keeps in memory, in bytes (default 8 MiB).
#ifndef FAILOVER_MAX_RESPONSE_BYTES
#define FAILOVER_MAX_RESPONSE_BYTES (8u * 1024u * 1024u)
#endif

/// Seconds in the circuit breaker's sliding window ring; the window itself is a
/// runtime option and may not exceed this (default 600).
#ifndef FAILOVER_BREAKER_MAX_WINDOW_SECONDS
#define FAILOVER_BREAKER_MAX_WINDOW_SECONDS 600
#endif

/// Compiled mode. Undefined (the default), the library is header-only: every
/// non-template function is `inline` and compiled in each translation unit that
/// uses it. Defined, the headers declare what the compiled library defines once
/// (link the CMake target failover::compiled, which defines it for you): the
/// schema validator, the adapters and their wire formats, the stream decoders
/// and the libcurl transport are then neither parsed nor instantiated in your
/// translation units. Set it for every translation unit of a program or none.
#ifdef FAILOVER_COMPILED_LIB
#define FAILOVER_INLINE
#else
#define FAILOVER_INLINE inline
#endif
