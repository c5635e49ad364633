# TM_SANITIZERS="address;undefined" or "thread": applied to every target of the build.
# scripts/asan.sh (which CI runs through scripts/test.sh) and scripts/tsan.sh configure it.
#   -fno-omit-frame-pointer      whole stacks in every report, cheaply
#   -fno-sanitize-recover=all    an UndefinedBehaviorSanitizer finding aborts the process, so the
#                                test that hit it fails instead of printing and passing
if(TM_SANITIZERS)
  list(JOIN TM_SANITIZERS "," _tm_san)
  if("thread" IN_LIST TM_SANITIZERS AND "address" IN_LIST TM_SANITIZERS)
    message(FATAL_ERROR "TM_SANITIZERS: thread cannot be combined with address")
  endif()
  add_compile_options(-fsanitize=${_tm_san} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${_tm_san})
endif()

# Source files (relative to the top of the tree) that compile with -Wno-maybe-uninitialized in a
# sanitizer build, and only there. GCC 12 with -fsanitize=address at -O2 reports a false
# -Wmaybe-uninitialized inside libstdc++'s <regex> (the std::function of a temporary NFA state in
# bits/regex_automaton.h), which TM_WERROR turns into a failed build. schema.cpp keeps std::regex:
# a CRD's `pattern` is any ECMAScript regular expression. A file listed here compiles on its own,
# outside its library's unity units (CMake does not batch a file with its own options).
set(TM_SANITIZER_NO_MAYBE_UNINITIALIZED
  manifests/schema.cpp
)

# Called from the top-level CMakeLists.txt after the folders are added (a source file's
# properties are set in the folder that defines its target).
function(tm_sanitizer_exceptions)
  if(NOT TM_SANITIZERS OR NOT CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    return()
  endif()
  foreach(file IN LISTS TM_SANITIZER_NO_MAYBE_UNINITIALIZED)
    get_filename_component(folder ${CMAKE_SOURCE_DIR}/${file} DIRECTORY)
    set_source_files_properties(${CMAKE_SOURCE_DIR}/${file} DIRECTORY ${folder}
      PROPERTIES COMPILE_OPTIONS -Wno-maybe-uninitialized)
  endforeach()
endfunction()
