# Builds and runs one consumer project of proc, from scratch, as a new user would.
#
#   cmake -DMODE=find_package|add_subdirectory|pkg_config -DWORK=<scratch dir> ... -P consumer_test.cmake
#
# find_package      `cmake --install` PROC_BINARY_DIR into WORK/prefix, then build find_package/
#                   with CMAKE_PREFIX_PATH=WORK/prefix and check that proc came from there.
# add_subdirectory  build add_subdirectory/ with PROC_SOURCE_DIR=PROC_SOURCE_DIR.
# pkg_config        install as above, then compile find_package/main.cpp by hand with the flags
#                   of `pkg-config --cflags --libs proc` (PKG_CONFIG_PATH=WORK/prefix/share/pkgconfig).
#
# Other inputs: PROC_SOURCE_DIR, PROC_BINARY_DIR, GENERATOR, MAKE_PROGRAM, CXX, CXX_FLAGS,
# BUILD_TYPE, PKG_CONFIG.
cmake_minimum_required(VERSION 3.21)

foreach(_var IN ITEMS MODE WORK PROC_SOURCE_DIR CXX)
  if(NOT DEFINED ${_var} OR "${${_var}}" STREQUAL "")
    message(FATAL_ERROR "consumer_test.cmake: ${_var} is not set")
  endif()
endforeach()
set(_here "${CMAKE_CURRENT_LIST_DIR}")

# Runs a command; stops with its output when it fails.
function(step what)
  message(STATUS "${what}: ${ARGN}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_VARIABLE _out)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "${what} failed (${_rc}):\n${_out}")
  endif()
  message(STATUS "${_out}")
  set(step_output "${_out}" PARENT_SCOPE)
endfunction()

# Configures, builds and runs a consumer project.
function(build_and_run source)
  set(_args -S "${source}" -B "${WORK}/build" -DCMAKE_CXX_COMPILER=${CXX}
            "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}" -DCMAKE_BUILD_TYPE=${BUILD_TYPE})
  if(GENERATOR)
    list(APPEND _args -G "${GENERATOR}")
  endif()
  if(MAKE_PROGRAM)
    list(APPEND _args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
  endif()
  step("configure" "${CMAKE_COMMAND}" ${_args} ${ARGN})
  step("build" "${CMAKE_COMMAND}" --build "${WORK}/build")
  step("run" "${WORK}/build/consumer")
endfunction()

function(install_proc)
  if(NOT DEFINED PROC_BINARY_DIR)
    message(FATAL_ERROR "consumer_test.cmake: PROC_BINARY_DIR is not set")
  endif()
  step("install" "${CMAKE_COMMAND}" --install "${PROC_BINARY_DIR}" --prefix "${WORK}/prefix")
endfunction()

file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")

if(MODE STREQUAL "find_package")
  install_proc()
  # CMAKE_FIND_USE_PACKAGE_REGISTRY off: only the prefix we give may supply proc.
  build_and_run("${_here}/find_package" "-DCMAKE_PREFIX_PATH=${WORK}/prefix"
                -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
  file(STRINGS "${WORK}/build/CMakeCache.txt" _dir REGEX "^proc_DIR:")
  string(FIND "${_dir}" "${WORK}/prefix/" _at)
  if(_at EQUAL -1)
    message(FATAL_ERROR "proc was not found in the installed prefix: ${_dir}")
  endif()
elseif(MODE STREQUAL "add_subdirectory")
  build_and_run("${_here}/add_subdirectory" "-DPROC_SOURCE_DIR=${PROC_SOURCE_DIR}")
elseif(MODE STREQUAL "pkg_config")
  install_proc()
  set(ENV{PKG_CONFIG_PATH} "${WORK}/prefix/share/pkgconfig")
  step("pkg-config" "${PKG_CONFIG}" --modversion proc)
  step("pkg-config" "${PKG_CONFIG}" --cflags --libs proc)
  string(STRIP "${step_output}" _flags)
  separate_arguments(_flags UNIX_COMMAND "${_flags}")
  # The -I directory must be the installed one (pkg-config may leave it unnormalized).
  file(REAL_PATH "${WORK}/prefix/include" _want)
  set(_found FALSE)
  foreach(_flag IN LISTS _flags)
    if(_flag MATCHES "^-I(.+)$")
      file(REAL_PATH "${CMAKE_MATCH_1}" _dir)
      if(_dir STREQUAL _want)
        set(_found TRUE)
      endif()
    endif()
  endforeach()
  if(NOT _found)
    message(FATAL_ERROR "pkg-config flags do not point into the installed prefix: ${_flags}")
  endif()
  separate_arguments(_cxx_flags UNIX_COMMAND "${CXX_FLAGS}")
  step("compile" "${CXX}" ${_cxx_flags} "${_here}/find_package/main.cpp" -o "${WORK}/consumer"
       ${_flags})
  step("run" "${WORK}/consumer")
else()
  message(FATAL_ERROR "consumer_test.cmake: unknown MODE '${MODE}'")
endif()
