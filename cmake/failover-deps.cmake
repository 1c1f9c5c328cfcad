# Finds the dependencies of the failover target. Debian's valijson installs a
# target named `valijson` without a namespace or a version file, so it is found
# without a version and whichever target name exists is linked.
include(GNUInstallDirs)

find_package(nlohmann_json 3.10 QUIET)
find_package(valijson QUIET)
find_package(CURL REQUIRED)

if(FAILOVER_FETCH_DEPS AND (NOT nlohmann_json_FOUND OR NOT valijson_FOUND))
  include(FetchContent)
  if(NOT nlohmann_json_FOUND)
    FetchContent_Declare(nlohmann_json
      GIT_REPOSITORY https://github.com/nlohmann/json.git GIT_TAG v3.11.3 GIT_SHALLOW TRUE)
    set(JSON_BuildTests OFF CACHE INTERNAL "")
    FetchContent_MakeAvailable(nlohmann_json)
  endif()
  if(NOT valijson_FOUND)
    FetchContent_Declare(valijson
      GIT_REPOSITORY https://github.com/tristanpenman/valijson.git GIT_TAG v1.0.2 GIT_SHALLOW TRUE)
    set(valijson_BUILD_TESTS OFF CACHE INTERNAL "")
    FetchContent_MakeAvailable(valijson)
  endif()
endif()

if(NOT TARGET nlohmann_json::nlohmann_json)
  message(FATAL_ERROR "failover: nlohmann_json not found. On Debian: apt-get install nlohmann-json3-dev "
                      "(or configure with -DFAILOVER_FETCH_DEPS=ON where the network is reachable)")
endif()

if(TARGET ValiJSON::valijson)
  set(FAILOVER_VALIJSON_TARGET ValiJSON::valijson)
elseif(TARGET valijson)
  set(FAILOVER_VALIJSON_TARGET valijson)
else()
  message(FATAL_ERROR "failover: valijson not found. On Debian: apt-get install libvalijson-dev "
                      "(or configure with -DFAILOVER_FETCH_DEPS=ON where the network is reachable)")
endif()
