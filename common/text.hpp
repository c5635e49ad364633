#pragma once

// The text helpers every folder uses for messages, names and headers. ASCII only and
// locale-independent: they must not change behaviour with the process's locale.

#include <cctype>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

namespace tmaster {

/// `"name"`: the name in double quotes, as messages show objects (`database "tenant_acme"`).
/// Nothing is escaped; for text from an untrusted file use an escaping quote instead
/// (manifests/yaml_support.hpp `detail::Quote`).
std::string Quoted(std::string_view name);

/// `text` with `A`-`Z` turned into `a`-`z`; every other byte unchanged.
std::string Lower(std::string_view text);

/// True when `a` and `b` differ at most in the case of ASCII letters.
bool EqualsIgnoreCase(std::string_view a, std::string_view b);

/// `text` without leading and trailing ASCII whitespace (space, `\t`, `\n`, `\v`, `\f`, `\r`).
/// A view into `text`: keep what it points at alive.
std::string_view Trim(std::string_view text);

/// Replaces every occurrence of `needle` in `text` with `with`, left to right; text that a
/// replacement put in is not searched again. An empty `needle` changes nothing.
void ReplaceAll(std::string& text, std::string_view needle, std::string_view with);

/// `text` on one line: every run of whitespace (newlines included) becomes one space, and none is
/// left at either end. For messages built from multi-line server or tool output.
std::string OneLine(std::string_view text);

/// What the exception in `error` says (its `what()`), or `unknown` when it is not a
/// std::exception or `error` holds none. For the last-resort handlers that log and answer 500.
std::string ExceptionText(const std::exception_ptr& error, std::string_view unknown);

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
