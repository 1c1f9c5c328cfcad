# Builds and runs tests/consumer. MODE=install: configure this project with
# tests off, install it into a prefix, then find_package it from there.
# MODE=fetchcontent: the consumer pulls this checkout in with FetchContent.
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
  run(${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${WORK_DIR}/lib" -DCMAKE_CXX_COMPILER=${CXX}
      -DFAILOVER_BUILD_TESTS=OFF -DFAILOVER_BUILD_EXAMPLES=OFF -DFAILOVER_BUILD_BENCHMARKS=OFF
      -DFAILOVER_INSTALL=ON -DCMAKE_INSTALL_PREFIX=${WORK_DIR}/prefix)
  run(${CMAKE_COMMAND} --install "${WORK_DIR}/lib")
  run(${CMAKE_COMMAND} -S "${consumer_src}" -B "${WORK_DIR}/build" -DCMAKE_CXX_COMPILER=${CXX}
      -DFAILOVER_CONSUMER_MODE=find_package -DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix)
else()
  run(${CMAKE_COMMAND} -S "${consumer_src}" -B "${WORK_DIR}/build" -DCMAKE_CXX_COMPILER=${CXX}
      -DFAILOVER_CONSUMER_MODE=fetchcontent -DFAILOVER_SOURCE_DIR=${SOURCE_DIR})
endif()
run(${CMAKE_COMMAND} --build "${WORK_DIR}/build" -j2)
run("${WORK_DIR}/build/consumer")
