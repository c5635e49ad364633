// `-o yaml`: a JSON value through yaml-cpp's emitter (yaml-cpp stays in this file).
#include <yaml-cpp/yaml.h>

#include <cctype>

#include "controller/cli/json_util.hpp"

namespace tmaster::cli::detail {
namespace {

bool LooksNumeric(std::string_view text) {
  if (text.empty()) return false;
  std::size_t i = (text.front() == '-' || text.front() == '+') ? 1 : 0;
  if (i >= text.size()) return false;
  if (text[i] == '.') return true;  // .5, .inf, .nan
  return std::isdigit(static_cast<unsigned char>(text[i])) != 0;
}

// yaml-cpp quotes a string only when it cannot be written plain; it does not ask whether a
// reader would take the plain text for another type. `"8000"`, `"true"`, `"no"`, `"null"`,
// `"1e3"` must come back as strings, so they are quoted. (A little more than YAML 1.2's core
// schema needs: also YAML 1.1's yes/no/on/off and every text starting like a number, so that
// every YAML reader reads them back as strings.)
bool NeedsQuotes(std::string_view text) {
  if (text.empty() || LooksNumeric(text)) return true;
  std::string lower;
  for (const char c : text) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static constexpr std::string_view kWords[] = {"true", "false", "yes", "no", "on", "off",
                                                "y",    "n",     "null", "~", ".inf", ".nan"};
  for (const std::string_view word : kWords) {
    if (lower == word) return true;
  }
  return false;
}

void Emit(YAML::Emitter& out, const json::value& value) {
  switch (value.kind()) {
    case json::kind::object: {
      const json::object& object = value.get_object();
      if (object.empty()) {
        out << YAML::Flow << YAML::BeginMap << YAML::EndMap;
        return;
      }
      out << YAML::BeginMap;
      for (const auto& member : object) {
        out << YAML::Key;
        const std::string key(member.key());
        if (NeedsQuotes(key)) out << YAML::DoubleQuoted;
        out << key << YAML::Value;
        Emit(out, member.value());
      }
      out << YAML::EndMap;
      return;
    }
    case json::kind::array: {
      const json::array& array = value.get_array();
      if (array.empty()) {
        out << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
        return;
      }
      out << YAML::BeginSeq;
      for (const json::value& item : array) Emit(out, item);
      out << YAML::EndSeq;
      return;
    }
    case json::kind::string: {
      const std::string text(value.get_string());
      if (NeedsQuotes(text)) out << YAML::DoubleQuoted;
      out << text;
      return;
    }
    case json::kind::null:
      out << YAML::Null;
      return;
    case json::kind::bool_:
      out << (value.get_bool() ? "true" : "false");
      return;
    default:
      // Numbers as people write them (neither yaml-cpp's nor Boost.JSON's `1.25E0`).
      out << NumberText(value);
      return;
  }
}

}  // namespace

std::string ToYaml(const json::value& value) {
  YAML::Emitter out;
  out.SetIndent(2);
  out.SetSeqFormat(YAML::Block);
  out.SetMapFormat(YAML::Block);
  Emit(out, value);
  std::string text = out.c_str();
  if (text.empty() || text.back() != '\n') text += '\n';
  return text;
}

}  // namespace tmaster::cli::detail
