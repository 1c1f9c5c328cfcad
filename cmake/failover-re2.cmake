# Finds RE2 (the regular expression engine behind the schema gate's `pattern`)
# and defines the imported target failover::re2. Used by this project and by
# the installed package config, so find_package(failover) consumers find RE2
# the same way: pkg-config first (Debian's libre2-dev ships only re2.pc), then
# RE2's own CMake package (newer releases), then a plain header and library.
if(TARGET failover::re2)
  return()
endif()

find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(FAILOVER_RE2 QUIET IMPORTED_TARGET re2)
endif()
if(TARGET PkgConfig::FAILOVER_RE2)
  add_library(failover::re2 INTERFACE IMPORTED)
  set_target_properties(failover::re2 PROPERTIES INTERFACE_LINK_LIBRARIES PkgConfig::FAILOVER_RE2)
  return()
endif()

find_package(re2 CONFIG QUIET)
if(TARGET re2::re2)
  add_library(failover::re2 INTERFACE IMPORTED)
  set_target_properties(failover::re2 PROPERTIES INTERFACE_LINK_LIBRARIES re2::re2)
  return()
endif()

find_path(FAILOVER_RE2_INCLUDE_DIR re2/re2.h)
find_library(FAILOVER_RE2_LIBRARY re2)
if(FAILOVER_RE2_INCLUDE_DIR AND FAILOVER_RE2_LIBRARY)
  find_package(Threads REQUIRED)
  add_library(failover::re2 UNKNOWN IMPORTED)
  set_target_properties(failover::re2 PROPERTIES
    IMPORTED_LOCATION "${FAILOVER_RE2_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${FAILOVER_RE2_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES Threads::Threads)
endif()
