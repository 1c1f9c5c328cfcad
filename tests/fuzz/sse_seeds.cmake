# Writes the seed corpus of sse_fuzz from the recorded streams in tests/data/streams:
# each file once per decoder that reads its format, prefixed with the byte that picks
# the decoder (and feeds it in pieces of 7 bytes), plus once for the bare SSE parser.
#   cmake -DSTREAMS=<tests/data/streams> -DOUT=<dir> -P sse_seeds.cmake
file(REMOVE_RECURSE "${OUT}")
file(MAKE_DIRECTORY "${OUT}")
# '0'..'6' are 0x30..0x36: bits 0-2 pick the target, bits 3-7 give pieces of 7 bytes.
set(_targets openai:0:1 anthropic:2:3 gemini:4:5)
foreach(_t IN LISTS _targets)
  string(REPLACE ":" ";" _parts "${_t}")
  list(GET _parts 0 _folder)
  list(GET _parts 1 _plain)
  list(GET _parts 2 _structured)
  file(GLOB _files "${STREAMS}/${_folder}/*.sse")
  foreach(_f IN LISTS _files)
    get_filename_component(_name "${_f}" NAME_WE)
    file(READ "${_f}" _content)
    set(_pick "${_plain}")
    if(_name MATCHES "^structured")
      set(_pick "${_structured}")
    endif()
    file(WRITE "${OUT}/${_folder}-${_name}" "${_pick}${_content}")
    file(WRITE "${OUT}/sse-${_folder}-${_name}" "6${_content}")
  endforeach()
endforeach()
