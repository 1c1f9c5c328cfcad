# Finds the dependencies of the failover target: nlohmann_json, libcurl and RE2
# (cmake/failover-re2.cmake defines failover::re2).
include(GNUInstallDirs)

find_package(nlohmann_json 3.10 QUIET)
find_package(CURL REQUIRED)
include(${CMAKE_CURRENT_LIST_DIR}/failover-re2.cmake)

if(FAILOVER_FETCH_DEPS AND NOT nlohmann_json_FOUND)
  include(FetchContent)
  FetchContent_Declare(nlohmann_json
    GIT_REPOSITORY https://github.com/nlohmann/json.git GIT_TAG v3.11.3 GIT_SHALLOW TRUE)
  set(JSON_BuildTests OFF CACHE INTERNAL "")
  FetchContent_MakeAvailable(nlohmann_json)
endif()

if(NOT TARGET nlohmann_json::nlohmann_json)
  message(FATAL_ERROR "failover: nlohmann_json not found. On Debian: apt-get install nlohmann-json3-dev "
                      "(or configure with -DFAILOVER_FETCH_DEPS=ON where the network is reachable)")
endif()
if(NOT TARGET failover::re2)
  message(FATAL_ERROR "failover: RE2 not found (pkg-config re2, re2Config.cmake, or re2/re2.h + libre2). "
                      "On Debian: apt-get install libre2-dev pkg-config")
endif()
