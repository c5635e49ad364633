#include "manifests/naming.hpp"

namespace tmaster::manifests {
namespace {

constexpr std::size_t kMaxLabelName = 63;
constexpr std::size_t kMaxLabelPrefix = 253;

bool IsLowerAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool IsAlnum(char c) { return IsLowerAlnum(c) || (c >= 'A' && c <= 'Z'); }

std::string WithUnderscores(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c == '-') c = '_';
  }
  return out;
}

// [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])? of 1..63 characters.
bool IsQualifiedName(std::string_view text) {
  if (text.empty() || text.size() > kMaxLabelName) return false;
  if (!IsAlnum(text.front()) || !IsAlnum(text.back())) return false;
  for (char c : text) {
    if (!IsAlnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

// RFC 1123 subdomain: dot-separated DNS labels, at most 253 characters.
bool IsDnsSubdomain(std::string_view text) {
  if (text.empty() || text.size() > kMaxLabelPrefix) return false;
  std::size_t begin = 0;
  while (true) {
    std::size_t dot = text.find('.', begin);
    std::string_view label = text.substr(begin, dot == std::string_view::npos ? dot : dot - begin);
    if (!IsDnsLabel(label)) return false;
    if (dot == std::string_view::npos) return true;
    begin = dot + 1;
  }
}

}  // namespace

std::string DefaultDatabaseName(std::string_view workspace) {
  return "tenant_" + WithUnderscores(workspace);
}

std::string DefaultOwnerRole(std::string_view workspace) {
  return "user_" + WithUnderscores(workspace);
}

bool IsDnsLabel(std::string_view text, std::size_t max_length) {
  if (text.empty() || text.size() > max_length) return false;
  if (!IsLowerAlnum(text.front()) || !IsLowerAlnum(text.back())) return false;
  for (char c : text) {
    if (!IsLowerAlnum(c) && c != '-') return false;
  }
  return true;
}

std::optional<std::string> LabelKeyError(std::string_view key) {
  std::string_view name = key;
  std::size_t slash = key.find('/');
  if (slash != std::string_view::npos) {
    std::string_view prefix = key.substr(0, slash);
    name = key.substr(slash + 1);
    if (!IsDnsSubdomain(prefix)) {
      return "key prefix must be a DNS subdomain of at most 253 characters (lower-case letters, "
             "digits, '-' and '.')";
    }
  }
  if (name.empty()) return std::string("key name must not be empty");
  if (name.size() > kMaxLabelName) return std::string("key name must be at most 63 characters");
  if (!IsQualifiedName(name)) {
    return std::string(
        "key name must consist of letters, digits, '-', '_' or '.', and start and end with a "
        "letter or digit");
  }
  return std::nullopt;
}

std::optional<std::string> LabelValueError(std::string_view value) {
  if (value.empty()) return std::nullopt;
  if (value.size() > kMaxLabelName) return std::string("value must be at most 63 characters");
  if (!IsQualifiedName(value)) {
    return std::string(
        "value must be empty or consist of letters, digits, '-', '_' or '.', and start and end "
        "with a letter or digit");
  }
  return std::nullopt;
}

}  // namespace tmaster::manifests
