#include "controller/cli/json_util.hpp"

#include <charconv>
#include <cmath>

#include "controller/cli/format.hpp"

namespace tmaster::cli::detail {

std::optional<json::value> ParseJson(std::string_view text) {
  boost::system::error_code ec;
  json::value value = json::parse(text, ec);
  if (ec) return std::nullopt;
  return value;
}

const json::value* At(const json::value& root, std::initializer_list<std::string_view> path) {
  const json::value* at = &root;
  for (const std::string_view key : path) {
    const json::object* object = at->if_object();
    if (object == nullptr) return nullptr;
    at = object->if_contains(key);
    if (at == nullptr) return nullptr;
  }
  return at;
}

std::string Text(const json::value* value, std::string_view fallback) {
  if (value == nullptr || value->is_null() || value->is_object() || value->is_array()) {
    return std::string(fallback);
  }
  if (const json::string* text = value->if_string()) return std::string(text->data(), text->size());
  if (value->is_number()) return NumberText(*value);
  return json::serialize(*value);
}

std::string NumberText(const json::value& value) {
  if (const std::int64_t* i = value.if_int64()) return std::to_string(*i);
  if (const std::uint64_t* u = value.if_uint64()) return std::to_string(*u);
  const double* d = value.if_double();
  if (d == nullptr) return {};
  if (!std::isfinite(*d)) return "null";  // JSON has no infinities; Boost.JSON never parses one
  char buffer[32];
  const auto [end, error] = std::to_chars(buffer, buffer + sizeof buffer, *d);
  if (error != std::errc()) return json::serialize(value);
  return std::string(buffer, end);
}

const json::array* ArrayAt(const json::value& root, std::string_view key) {
  const json::value* value = At(root, {key});
  return value != nullptr ? value->if_array() : nullptr;
}

namespace {

void AppendPretty(std::string& out, const json::value& value, int depth) {
  const auto indent = [&](int level) { out.append(static_cast<std::size_t>(level) * 4, ' '); };
  if (const json::object* object = value.if_object()) {
    if (object->empty()) {
      out += "{}";
      return;
    }
    out += "{\n";
    bool first = true;
    for (const auto& member : *object) {
      if (!first) out += ",\n";
      first = false;
      indent(depth + 1);
      out += json::serialize(json::value(member.key()));
      out += ": ";
      AppendPretty(out, member.value(), depth + 1);
    }
    out += '\n';
    indent(depth);
    out += '}';
    return;
  }
  if (const json::array* array = value.if_array()) {
    if (array->empty()) {
      out += "[]";
      return;
    }
    out += "[\n";
    bool first = true;
    for (const json::value& item : *array) {
      if (!first) out += ",\n";
      first = false;
      indent(depth + 1);
      AppendPretty(out, item, depth + 1);
    }
    out += '\n';
    indent(depth);
    out += ']';
    return;
  }
  out += value.is_number() ? NumberText(value) : json::serialize(value);
}

}  // namespace

std::string PrettyJson(const json::value& value) {
  std::string out;
  AppendPretty(out, value, 0);
  out += '\n';
  return out;
}

std::optional<std::int64_t> ParseTimeValue(const json::value* value) {
  if (value == nullptr || !value->is_string()) return std::nullopt;
  return ParseRfc3339(std::string_view(value->get_string().data(), value->get_string().size()));
}

}  // namespace tmaster::cli::detail
