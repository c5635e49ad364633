#pragma once

// What the fuzz targets share (tests/fuzz/CMakeLists.txt): the split input format of the
// structured targets and the check that turns a broken property into a crash.
//
// Split format: `name: value` lines, one per field, up to the first empty line; everything after
// that empty line is the body, byte for byte. Without an empty line the whole input is fields and
// the body is empty. A field line without `: ` is ignored (the fuzzer mutates freely). Lines end
// at `\n`; a `\r` before it stays part of the value.

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tmaster::fuzz {

struct SplitInput {
  std::vector<std::pair<std::string, std::string>> fields;  ///< in input order
  std::string body;
};

inline SplitInput Split(std::string_view input) {
  SplitInput out;
  std::string_view head = input;
  if (const auto blank = input.find("\n\n"); blank != std::string_view::npos) {
    head = input.substr(0, blank + 1);
    out.body = std::string(input.substr(blank + 2));
  } else if (input.substr(0, 1) == "\n") {
    head = {};
    out.body = std::string(input.substr(1));
  }
  while (!head.empty()) {
    const auto end = head.find('\n');
    const std::string_view line = head.substr(0, end);
    head = end == std::string_view::npos ? std::string_view{} : head.substr(end + 1);
    if (const auto colon = line.find(": "); colon != std::string_view::npos) {
      out.fields.emplace_back(std::string(line.substr(0, colon)),
                              std::string(line.substr(colon + 2)));
    }
  }
  return out;
}

inline std::string_view AsText(const std::uint8_t* data, std::size_t size) {
  return size == 0 ? std::string_view{}
                   : std::string_view(reinterpret_cast<const char*>(data), size);
}

/// A property of the code under test that must hold for every input: when it does not, say which
/// and abort, which libFuzzer reports as a crash (and the replay driver as a failed test).
inline void Require(bool holds, const char* property) {
  if (!holds) {
    std::fprintf(stderr, "fuzz property violated: %s\n", property);
    std::abort();
  }
}

}  // namespace tmaster::fuzz

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
