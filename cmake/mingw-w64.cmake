# Cross-compiling for 64-bit Windows with mingw-w64 (Debian's g++-mingw-w64-x86-64-posix, the
# variant with C++11 threads), running the tests under Wine.
#
#   cmake --preset windows-mingw && cmake --build --preset windows-mingw &&
#   ctest --preset windows-mingw
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(_proc_mingw x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${_proc_mingw}-gcc-posix)
set(CMAKE_CXX_COMPILER ${_proc_mingw}-g++-posix)
set(CMAKE_RC_COMPILER ${_proc_mingw}-windres)

# Look for programs on the build machine, for libraries and headers in the mingw sysroot only
# (never /usr/include: it would shadow mingw's C library).
set(CMAKE_FIND_ROOT_PATH /usr/${_proc_mingw})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)  # Catch2's CMake package (header-only) is found

# ctest (and catch_discover_tests) run the .exe files through Wine, by way of wine-run.sh, which
# starts Wine's server and services detached from the test's output (see there).
find_program(PROC_WINE NAMES wine wine64 REQUIRED)
find_program(PROC_WINESERVER NAMES wineserver wineserver64 REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR sh ${CMAKE_CURRENT_LIST_DIR}/wine-run.sh ${PROC_WINE}
                                  ${PROC_WINESERVER})
