# Builds and runs tests/consumer. MODE=install: configure this project with
# tests off, install it into a prefix, then find_package it from there.
# MODE=fetchcontent: the consumer pulls this checkout in with FetchContent.
# MODE=compiled: FetchContent too, linking failover::compiled (compiled mode).
cmake_minimum_required(VERSION 3.21)
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}")
  endif()
endfunction()

set(consumer_src "${SOURCE_DIR}/tests/consumer")
if(MODE STREQUAL "install")
  # As a new user installs a checkout: tests left at their default, with no Catch2 to be
  # found (they must then stay off, not fail the configure).
  run(${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}/lib" -DCMAKE_CXX_COMPILER=${CXX}
      -DCMAKE_DISABLE_FIND_PACKAGE_Catch2=ON -DFAILOVER_BUILD_EXAMPLES=OFF -DFAILOVER_BUILD_BENCHMARKS=OFF
      -DFAILOVER_INSTALL=ON -DCMAKE_INSTALL_PREFIX=${WORK_DIR}/prefix)
  run(${CMAKE_COMMAND} --install "${WORK_DIR}/lib")
  foreach(_f share/doc/failover/LICENSE share/failover/failover-chain.schema.json)
    if(NOT EXISTS "${WORK_DIR}/prefix/${_f}")
      message(FATAL_ERROR "the install tree lacks ${_f}")
    endif()
  endforeach()
  run(${CMAKE_COMMAND} -S "${consumer_src}" -B "${WORK_DIR}/build" -DCMAKE_CXX_COMPILER=${CXX}
      -DFAILOVER_CONSUMER_MODE=find_package -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
elseif(MODE STREQUAL "compiled")
  run(${CMAKE_COMMAND} -S "${consumer_src}" -B "${WORK_DIR}/build" -DCMAKE_CXX_COMPILER=${CXX}
      -DFAILOVER_CONSUMER_MODE=fetchcontent -DFAILOVER_SOURCE_DIR=${SOURCE_DIR}
      -DFAILOVER_CONSUMER_TARGET=failover::compiled)
else()
  run(${CMAKE_COMMAND} -S "${consumer_src}" -B "${WORK_DIR}/build" -DCMAKE_CXX_COMPILER=${CXX}
      -DFAILOVER_CONSUMER_MODE=fetchcontent -DFAILOVER_SOURCE_DIR=${SOURCE_DIR})
endif()
run(${CMAKE_COMMAND} --build "${WORK_DIR}/build" -j2)
run("${WORK_DIR}/build/consumer")

# Compiled mode must keep the compiled parts out of the user's object file: no
# definition of the schema validator, an adapter's encode/decode/stream decoder,
# the stream decoders or the curl transport may appear in it,
# while the header-only build must define them (which shows the probe sees them).
if(MODE STREQUAL "compiled" OR MODE STREQUAL "fetchcontent")
  find_program(NM nm REQUIRED)
  file(GLOB_RECURSE objects "${WORK_DIR}/build/CMakeFiles/consumer.dir/*.o")
  execute_process(COMMAND ${NM} -C --defined-only ${objects} OUTPUT_VARIABLE symbols RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "nm failed on ${objects}")
  endif()
  string(REGEX MATCHALL "failover::v[0-9]+::(Schema::parse|Schema::validate|(OpenAI|OpenAICompatible|Anthropic|Gemini)::(encode|encode_stream|decode|stream_decoder|classify)|CurlTransport::(send|stream|perform)|detail::(schema|stream|curl_[a-z_]+)::?)[^\n]*"
         compiled_parts "${symbols}")
  list(LENGTH compiled_parts n)
  if(MODE STREQUAL "compiled" AND n GREATER 0)
    list(GET compiled_parts 0 first)
    message(FATAL_ERROR "compiled mode: the consumer's object still defines ${n} library functions, e.g. ${first}")
  elseif(MODE STREQUAL "fetchcontent" AND n EQUAL 0)
    message(FATAL_ERROR "header-only mode: no library definitions found in the consumer's object: the probe is blind")
  endif()
  message(STATUS "consumer (${MODE}): ${n} definitions of compiled parts in the user's object file")
endif()
