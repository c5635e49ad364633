# Build time on a 2-core machine. bench/README.md ("Build time") has the measurements behind
# each choice here; bench/build_time.sh repeats them. In short: three quarters of a clean build's
# CPU time is GCC's optimiser and debug information, not parsing headers, so the levers are
# fewer, larger translation units (unity builds), not optimising the tests' own code
# (tests/CMakeLists.txt), and, where nobody will debug, lighter debug information.
#
#   TM_CCACHE=ON          compile through ccache when it is installed and no launcher was given
#   TM_UNITY_BUILD=ON     the product's libraries compile as unity builds (several .cpp per unit)
#   TM_PCH=ON             one precompiled header (standard library and doctest) for the tests
#   TM_DEBUG_INFO=lines   -g1 (file:line backtraces, no variables in a debugger), about a
#                         quarter less compile time than "full" (-g), which a debugging session
#                         asks for; the default since a clean product build with full -g took
#                         91 s here, over the 75 s a newcomer should wait (bench/README.md)
#
# Included from the top-level CMakeLists.txt before the folders; tm_speed_up_build() runs after
# them, so the rooms' CMakeLists.txt files say nothing about build speed.
#
# The product has no precompiled header: on top of unity builds it saved 7 % of the product's CPU
# time, and with GCC 12 a precompiled <string> makes GCC report its -Warray-bounds and
# -Wstringop-overflow false positives from inside libstdc++ (std::string's move, inlined at -O2)
# that it otherwise hides as system-header code, which -Werror turns into a failed build. The
# tests compile at -Og, where that inlining does not happen, and gain far more from it.

option(TM_CCACHE "Compile through ccache when it is installed" ON)
option(TM_PCH "A precompiled header for the tests (the standard library and doctest)" ON)
option(TM_UNITY_BUILD "Unity builds of the product libraries" ON)
set(TM_DEBUG_INFO "lines" CACHE STRING "Debug information of optimised builds: full (-g) or lines (-g1)")
set_property(CACHE TM_DEBUG_INFO PROPERTY STRINGS full lines)
if(TM_DEBUG_INFO STREQUAL "lines")
  # After the build type's -g on the command line, so it wins; Debug builds keep -g.
  add_compile_options($<$<NOT:$<CONFIG:Debug>>:-g1>)
elseif(NOT TM_DEBUG_INFO STREQUAL "full")
  message(FATAL_ERROR "TM_DEBUG_INFO: full or lines, not ${TM_DEBUG_INFO}")
endif()

# ccache, when present, unless the caller chose a launcher. With precompiled headers it can only
# hit with these sloppiness settings (the .gch is newer than the compile that includes it, and
# its defines and timestamps are checked by GCC itself); without them every compile that uses a
# precompiled header would run uncached.
set(TM_CCACHE_SLOPPINESS "pch_defines,time_macros,include_file_mtime,include_file_ctime")
if(TM_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
  find_program(TM_CCACHE_PROGRAM ccache)
  if(TM_CCACHE_PROGRAM)
    set(CMAKE_CXX_COMPILER_LAUNCHER env CCACHE_SLOPPINESS=${TM_CCACHE_SLOPPINESS}
      ${TM_CCACHE_PROGRAM})
    message(STATUS "ccache: ${TM_CCACHE_PROGRAM}")
  endif()
elseif(CMAKE_CXX_COMPILER_LAUNCHER MATCHES "^[^;]*ccache$")
  # -DCMAKE_CXX_COMPILER_LAUNCHER=ccache given by hand: same settings, or PCH compiles miss.
  set(CMAKE_CXX_COMPILER_LAUNCHER env CCACHE_SLOPPINESS=${TM_CCACHE_SLOPPINESS}
    ${CMAKE_CXX_COMPILER_LAUNCHER})
endif()

# The standard headers most of our files include (counted over the tree); in a precompiled header
# they cost a file map instead of 1 to 1.5 s of parsing per translation unit.
set(TM_PCH_STD
  <algorithm> <array> <atomic> <chrono> <condition_variable> <cstddef> <cstdint> <filesystem>
  <fstream> <functional> <map> <memory> <mutex> <optional> <set> <sstream> <stdexcept> <string>
  <string_view> <system_error> <thread> <utility> <variant> <vector>)

# Source files (relative to the top of the tree) kept out of unity units, each because a name in
# its anonymous namespace is also defined by another file of the same target. Better to rename
# or share the helper (then drop the line); a new clash shows as "redefinition of ..." in a
# unity_N_cxx.cxx, and -DTM_UNITY_BUILD=OFF builds without unity units meanwhile.
set(TM_UNITY_SKIP
  manifests/config.cpp                     # kInt32Max, IsEnvName (schema.cpp)
  reconcilers/stacks/directory_backend.cpp # kActive
  controller/sources/dir_watch.cpp         # AbsoluteFolder
)

# Every target of ours defined under `dir` (recursively), in definition order.
function(tm_targets_under dir out)
  get_property(targets DIRECTORY ${dir} PROPERTY BUILDSYSTEM_TARGETS)
  get_property(subdirs DIRECTORY ${dir} PROPERTY SUBDIRECTORIES)
  foreach(sub IN LISTS subdirs)
    tm_targets_under(${sub} more)
    list(APPEND targets ${more})
  endforeach()
  set(${out} ${targets} PARENT_SCOPE)
endfunction()

# Precompiles `headers` once, in the first of `targets`, and lets the others
# reuse that file. Reuse needs the same compile flags (optimisation, debug info, sanitizers,
# standard) in all of them; GCC refuses a mismatched .gch with -Winvalid-pch, an error under
# TM_WERROR, so a mistake here cannot go unnoticed.
function(tm_precompile headers)
  set(host "")
  foreach(target IN LISTS ARGN)
    if(host STREQUAL "")
      target_precompile_headers(${target} PRIVATE ${headers})
      set(host ${target})
    else()
      target_precompile_headers(${target} REUSE_FROM ${host})
    endif()
  endforeach()
endfunction()

# Unity builds for the product's libraries (every static library under `dirs` with more than one
# source file); the tests do their own (tests/CMakeLists.txt).
function(tm_speed_up_build)
  if(NOT TM_UNITY_BUILD)
    return()
  endif()
  set(all "")
  foreach(dir IN LISTS ARGN)
    tm_targets_under(${CMAKE_SOURCE_DIR}/${dir} found)
    list(APPEND all ${found})
  endforeach()
  foreach(target IN LISTS all)
    get_target_property(type ${target} TYPE)
    if(NOT type STREQUAL "STATIC_LIBRARY")
      continue()
    endif()
    get_target_property(sources ${target} SOURCES)
    list(FILTER sources INCLUDE REGEX "\\.cpp$")
    list(LENGTH sources count)
    if(count GREATER 1)
      set_target_properties(${target} PROPERTIES UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE 8)
    endif()
  endforeach()
  foreach(file IN LISTS TM_UNITY_SKIP)
    get_filename_component(folder ${CMAKE_SOURCE_DIR}/${file} DIRECTORY)
    if(EXISTS ${CMAKE_SOURCE_DIR}/${file})
      set_source_files_properties(${CMAKE_SOURCE_DIR}/${file} DIRECTORY ${folder}
        PROPERTIES SKIP_UNITY_BUILD_INCLUSION ON)
    endif()
  endforeach()
endfunction()
