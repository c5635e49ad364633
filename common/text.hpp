#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace tmaster {

/// `a, b, c`: items joined by `separator`, for messages and plan lines.
inline std::string Join(const std::vector<std::string>& items, std::string_view separator = ", ") {
  std::string out;
  for (const auto& item : items) {
    if (!out.empty()) out += separator;
    out += item;
  }
  return out;
}

}  // namespace tmaster
