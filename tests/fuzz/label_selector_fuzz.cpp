// Fuzz target: the query parsing of the HTTP API that is independent of the server
// (controller/api/status_json.hpp ParseLabelSelector, `?labelSelector=` of
// GET /api/v1/workspaces). The input is the selector's text, as is (already URL-decoded).
//
// Properties beyond "no crash, no sanitizer report": a selector parsed has one requirement per
// comma-separated item, each with a non-empty key, and keys and values carry no comma and no
// surrounding spaces.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "controller/api/status_json.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace {

using tmaster::fuzz::Require;

bool Trimmed(std::string_view text) {
  const auto space = [](char c) { return c == ' ' || c == '\t'; };
  return text.empty() || (!space(text.front()) && !space(text.back()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = tmaster::fuzz::AsText(data, size);
  const auto selector = tmaster::controller::ParseLabelSelector(text);
  if (!selector) {
    Require(!selector.failure().message.empty(), "a refused selector says why");
    return 0;
  }
  if (selector->empty()) return 0;
  Require(selector->size() ==
              static_cast<std::size_t>(std::count(text.begin(), text.end(), ',')) + 1,
          "one requirement per comma-separated item");
  for (const auto& requirement : *selector) {
    Require(!requirement.key.empty(), "a requirement has a key");
    Require(requirement.key.find(',') == std::string::npos &&
                requirement.value.find(',') == std::string::npos,
            "no comma in a key or value");
    Require(Trimmed(requirement.key) && Trimmed(requirement.value),
            "keys and values are trimmed");
  }
  return 0;
}
