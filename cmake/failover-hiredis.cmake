# Finds hiredis (the Redis client behind failover/stores/redis.hpp) and defines
# the imported target failover::hiredis, however the platform names it:
# hiredis's own CMake package (hiredis::hiredis from 1.0 on, or Debian 12's
# 0.14 Hiredis package), pkg-config, then a plain header and library. Used by
# this project and by the installed package config. Optional: without it there
# is no failover::redis, and nothing else changes.
if(TARGET failover::hiredis)
  return()
endif()

find_package(hiredis CONFIG QUIET)
if(TARGET hiredis::hiredis)
  add_library(failover::hiredis INTERFACE IMPORTED)
  set_target_properties(failover::hiredis PROPERTIES INTERFACE_LINK_LIBRARIES hiredis::hiredis)
  return()
endif()

find_path(FAILOVER_HIREDIS_INCLUDE_DIR hiredis/hiredis.h)
find_library(FAILOVER_HIREDIS_LIBRARY hiredis)
if(FAILOVER_HIREDIS_INCLUDE_DIR AND FAILOVER_HIREDIS_LIBRARY)
  add_library(failover::hiredis UNKNOWN IMPORTED)
  set_target_properties(failover::hiredis PROPERTIES
    IMPORTED_LOCATION "${FAILOVER_HIREDIS_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${FAILOVER_HIREDIS_INCLUDE_DIR}")
  return()
endif()

find_package(PkgConfig QUIET)
if(PKG_CONFIG_FOUND)
  pkg_check_modules(FAILOVER_HIREDIS QUIET IMPORTED_TARGET hiredis)
endif()
if(TARGET PkgConfig::FAILOVER_HIREDIS)
  add_library(failover::hiredis INTERFACE IMPORTED)
  set_target_properties(failover::hiredis PROPERTIES INTERFACE_LINK_LIBRARIES PkgConfig::FAILOVER_HIREDIS)
endif()
