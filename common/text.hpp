#pragma once

#include <cctype>
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

/// RFC 3986 percent-encoding: unreserved characters (`A-Z a-z 0-9 - . _ ~`) stay, every other
/// byte becomes `%XX` (upper-case hex). For URL query values and userinfo.
inline std::string PercentEncode(std::string_view text) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) != 0 || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(ch);
      continue;
    }
    out.push_back('%');
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0x0f]);
  }
  return out;
}

}  // namespace tmaster
