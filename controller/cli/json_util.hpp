#pragma once
// Internal to controller/cli/: includes Boost.JSON, so only .cpp files of this folder include it
// (heavy headers stay out of widely included headers: docs/architecture.md#build).

#include <boost/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tmaster::cli::detail {

namespace json = boost::json;

/// The JSON value of `text`, or nullopt when it is not JSON. Never throws.
std::optional<json::value> ParseJson(std::string_view text);

/// The value at a path of object keys (`At(object, {"status", "phase"})`), or nullptr.
const json::value* At(const json::value& root, std::initializer_list<std::string_view> path);

/// A scalar as a table shows it: a string as is, a number or boolean in JSON, null or
/// anything else: `fallback`.
std::string Text(const json::value* value, std::string_view fallback = "");

/// A number as people write it: `1.25`, not Boost.JSON's `1.25E0` (the shortest text that reads
/// back as the same double; integers as integers). Empty for a value that is not a number.
std::string NumberText(const json::value& value);

/// The array at `key` of an object, or nullptr.
const json::array* ArrayAt(const json::value& root, std::string_view key);

/// JSON indented by 4 spaces, one member per line (as `kubectl -o json` prints), ending in a
/// newline.
std::string PrettyJson(const json::value& value);

/// The same value as a YAML document (block style, keys in their JSON order; a string that YAML
/// would read as another type is quoted), ending in a newline. yaml_out.cpp.
std::string ToYaml(const json::value& value);

/// Unix seconds of an RFC 3339 time (`2026-12-03T10:00:00Z`, fractions and offsets allowed),
/// or nullopt.
std::optional<std::int64_t> ParseTimeValue(const json::value* value);

}  // namespace tmaster::cli::detail
