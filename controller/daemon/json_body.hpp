#pragma once

// How the workspace API's JSON-only writes read their bodies (the restore in backup_api.cpp, the
// move in move_api.cpp): the content type they accept and the top-level keys as written, so that
// a key given twice is refused rather than one of them silently kept. Daemon-internal.

#include <cctype>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace tmaster::controller::detail {

/// `application/json` (parameters such as `; charset=utf-8` ignored, any case), or no type at all.
inline bool JsonContentType(std::string_view content_type) {
  std::string type(content_type.substr(0, content_type.find(';')));
  while (!type.empty() && type.back() == ' ') type.pop_back();
  for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return type.empty() || type == "application/json";
}

/// The keys of the top-level object of `body` (valid JSON, an object) as written, escapes and
/// all, in order; Boost.JSON's object keeps one of a duplicated key, so this is how a body that
/// says `backup` twice is told apart.
inline std::vector<std::string_view> TopLevelKeys(std::string_view body) {
  std::vector<std::string_view> keys;
  int depth = 0;
  for (std::size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      --depth;
    } else if (c == '"') {
      const std::size_t start = i + 1;
      for (++i; i < body.size() && body[i] != '"'; ++i) {
        if (body[i] == '\\') ++i;
      }
      std::size_t next = i + 1;
      while (next < body.size() && (body[next] == ' ' || body[next] == '\t' ||
                                    body[next] == '\n' || body[next] == '\r')) {
        ++next;
      }
      if (depth == 1 && next < body.size() && body[next] == ':') {
        keys.push_back(body.substr(start, i - start));
      }
    }
  }
  return keys;
}

}  // namespace tmaster::controller::detail
