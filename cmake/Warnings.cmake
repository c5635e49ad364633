# tm_warnings: the warning set every target of ours links (docs/architecture.md#build).
add_library(tm_warnings INTERFACE)
target_compile_options(tm_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wnon-virtual-dtor
  -Wold-style-cast -Woverloaded-virtual)
# Not -Wnull-dereference: with GCC 12 at -O2 it fires inside libstdc++'s own streambuf code.
if(TM_WERROR)
  target_compile_options(tm_warnings INTERFACE -Werror)
endif()
