# Sourced by tests/run and examples/run: makes sure the Debian packages the
# build needs are installed. As root it installs what is missing with apt-get;
# otherwise it prints the exact command and stops. On a system without dpkg it
# checks nothing and lets CMake report what it cannot find.
# shellcheck shell=bash

failover_need_packages() {
  local missing=() p
  command -v dpkg-query >/dev/null 2>&1 || return 0
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -eq 0 ]; then
    echo "failover: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "failover: missing packages. Run, then try again:" >&2
    echo "  sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
}

# What building the library, its tests, examples and benchmarks needs.
# json-schema-test-suite, clang, libfuzzer-14-dev and libclang-rt-14-dev (clang's
# sanitizer runtimes) are for the tests only (the conformance suite and the fuzzers),
# and nodejs (the HTTP/2 upstream of the event loop's multiplexing test). libhiredis-dev
# builds failover::redis (RedisStore); redis-server is what the shared-state tests, the
# shared-breaker example and its benchmark start on a loopback port (never as a service
# they rely on).
FAILOVER_BUILD_PACKAGES=(g++ cmake make git ca-certificates pkg-config nlohmann-json3-dev libcurl4-openssl-dev
  libre2-dev catch2 libbenchmark-dev json-schema-test-suite clang libfuzzer-14-dev libclang-rt-14-dev nodejs
  libhiredis-dev libssl-dev redis-server)

# ccache when present, nothing when not.
failover_launcher() {
  if command -v ccache >/dev/null 2>&1; then echo "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"; fi
}
# ccache keys a compile on the paths relative to this checkout and not on the build
# directory's path, so a fresh clone anywhere reuses what another checkout of the same
# sources compiled (the tests keep their absolute paths in tests/support/paths.cpp alone).
# A CCACHE_BASEDIR or CCACHE_NOHASHDIR of the caller's own wins.
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
export CCACHE_NOHASHDIR="${CCACHE_NOHASHDIR:-1}"

failover_jobs() {
  local n
  n=$(nproc 2>/dev/null || echo 2)
  [ "$n" -gt 4 ] && n=4
  echo "$n"
}

# promtool, for the tests that check the Prometheus exposition. Debian ships it
# in the prometheus package, which would also install and start a Prometheus
# server; the .deb is only unpacked into build/tools instead (no root needed).
failover_promtool() {
  if command -v promtool >/dev/null 2>&1; then return 0; fi
  local dir="$PWD/build/tools"
  if [ ! -x "$dir/usr/bin/promtool" ]; then
    mkdir -p "$dir"
    ( cd "$dir" && rm -f prometheus_*.deb &&
      { apt-get download prometheus >/dev/null 2>&1 ||
        { [ "$(id -u)" -eq 0 ] && apt-get update -qq && apt-get download prometheus >/dev/null; }; } &&
      dpkg-deb -x prometheus_*.deb . && rm -f prometheus_*.deb ) ||
      { echo "failover: could not fetch promtool (Debian package prometheus)" >&2; exit 1; }
  fi
  export PATH="$dir/usr/bin:$PATH"
}
