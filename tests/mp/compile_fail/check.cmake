# Compiles SOURCE with CXX (-std=c++20 -fsyntax-only -I INCLUDE) and checks the outcome against
# the source's "// expect: " line: "success" means it must compile; any other text must appear
# in the compiler's output of a failed compilation, together with "proc::mp::codec" (every
# refusal names the customisation point).
#
#   cmake -DCXX=g++ -DSOURCE=union.cpp -DINCLUDE=include -P check.cmake
foreach(_var CXX SOURCE INCLUDE)
  if(NOT DEFINED ${_var})
    message(FATAL_ERROR "check.cmake: ${_var} is not set")
  endif()
endforeach()

# (Read whole, not with file(STRINGS): the text may hold a ';', which a CMake list would split.)
file(READ "${SOURCE}" _text)
if(NOT _text MATCHES "// expect: ([^\n]+)")
  message(FATAL_ERROR "${SOURCE}: has no \"// expect: \" line")
endif()
set(_expect "${CMAKE_MATCH_1}")

execute_process(COMMAND "${CXX}" -std=c++20 -fsyntax-only "-I${INCLUDE}" "${SOURCE}"
                RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)

if(_expect STREQUAL "success")
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "${SOURCE} must compile, but:\n${_out}")
  endif()
  return()
endif()
if(_rc EQUAL 0)
  message(FATAL_ERROR "${SOURCE} compiled, but must fail with: ${_expect}")
endif()
string(FIND "${_out}" "${_expect}" _at)
string(FIND "${_out}" "proc::mp::codec" _codec_at)
if(_at EQUAL -1 OR _codec_at EQUAL -1)
  message(FATAL_ERROR "${SOURCE} failed to compile, but not with \"${_expect}\" "
                      "(naming proc::mp::codec):\n${_out}")
endif()
message(STATUS "${SOURCE}: refused as expected")
