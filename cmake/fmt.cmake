# Finds fmt and sets PROC_FMT_TARGET.
#
# Native builds use the installed fmt package (fmt::fmt). A cross build for Windows with mingw
# cannot link Debian's Linux libfmt and must not see /usr/include as a whole (it would shadow the
# mingw C library headers), so it uses fmt header-only from a directory that holds a link to
# /usr/include/fmt alone. Set PROC_FMT_INCLUDE_DIR to use another copy of fmt's headers.
if(CMAKE_CROSSCOMPILING AND WIN32)
  set(PROC_FMT_INCLUDE_DIR "/usr/include/fmt" CACHE PATH "fmt headers for cross builds")
  set(_proc_tp "${CMAKE_BINARY_DIR}/third-party-include")
  file(MAKE_DIRECTORY "${_proc_tp}")
  if(NOT EXISTS "${_proc_tp}/fmt")
    file(CREATE_LINK "${PROC_FMT_INCLUDE_DIR}" "${_proc_tp}/fmt" SYMBOLIC)
  endif()
  add_library(proc_fmt_header_only INTERFACE)
  target_include_directories(proc_fmt_header_only SYSTEM INTERFACE "$<BUILD_INTERFACE:${_proc_tp}>")
  target_compile_definitions(proc_fmt_header_only INTERFACE FMT_HEADER_ONLY=1)
  set(PROC_FMT_TARGET proc_fmt_header_only)
  if(PROC_INSTALL)
    install(TARGETS proc_fmt_header_only EXPORT proc-targets)
  endif()
else()
  find_package(fmt 9 REQUIRED CONFIG)
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    # Debian's libfmt is built by g++; clang++ does not find every template instantiation in it
    # (fmt::v9::detail::vformat_to<char>), so clang builds use fmt header-only.
    set(PROC_FMT_TARGET fmt::fmt-header-only)
  else()
    set(PROC_FMT_TARGET fmt::fmt)
  endif()
endif()
