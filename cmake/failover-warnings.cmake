# Warning and sanitizer flags for the project's own targets (tests, examples,
# benchmarks). Never applied to the failover INTERFACE target: consumers choose
# their own flags.
function(failover_strict target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    # GCC 12 reports a false -Wrestrict inside std::string's inlined copies
    # when optimising (GCC bug 105329; seen in test_classifier.cpp and
    # test_examples_adapter.cpp): nothing of ours is involved.
    target_compile_options(${target} PRIVATE -Wno-restrict)
  endif()
  if(FAILOVER_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(FAILOVER_SANITIZE AND FAILOVER_TSAN)
    message(FATAL_ERROR "failover: FAILOVER_SANITIZE and FAILOVER_TSAN cannot be combined")
  endif()
  if(FAILOVER_TSAN)
    target_compile_options(${target} PRIVATE -fsanitize=thread -O1 -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=thread)
  endif()
  if(FAILOVER_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
endfunction()
