#include "manifests/schema.hpp"

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <utility>

#include "crds/embedded.hpp"
#include "manifests/naming.hpp"
#include "manifests/yaml_support.hpp"

namespace tmaster::manifests {
namespace detail {

struct EnumValue {
  ScalarType type = ScalarType::kString;
  std::string text;
};

/// One node of an openAPIV3Schema, as parsed by SchemaParser below.
struct SchemaNode {
  enum class Type { kAny, kObject, kArray, kString, kInteger, kNumber, kBoolean };

  Type type = Type::kAny;
  bool nullable = false;
  bool int_or_string = false;
  bool preserve_unknown = false;
  std::map<std::string, std::shared_ptr<const SchemaNode>> properties;
  std::vector<std::string> required;
  bool additional_allowed = false;  // additionalProperties: true
  std::shared_ptr<const SchemaNode> additional;
  std::shared_ptr<const SchemaNode> items;
  std::vector<EnumValue> enum_values;
  std::string pattern_text;
  std::optional<std::regex> pattern;
  std::optional<std::uint64_t> min_length, max_length;
  std::optional<std::uint64_t> min_items, max_items;
  std::optional<std::uint64_t> min_properties, max_properties;
  std::optional<double> minimum, maximum;
  bool exclusive_minimum = false;
  bool exclusive_maximum = false;
  bool unique_items = false;               // uniqueItems or x-kubernetes-list-type: set
  std::vector<std::string> list_map_keys;  // x-kubernetes-list-type: map
  std::string format;
};

}  // namespace detail

namespace {

using detail::Document;
using detail::EnumValue;
using detail::ScalarType;
using detail::SchemaNode;
using Type = SchemaNode::Type;

constexpr std::size_t kMaxPatternInput = 16384;
constexpr std::size_t kMaxAnnotationBytes = 256 * 1024;
constexpr std::int64_t kInt32Min = std::numeric_limits<std::int32_t>::min();
constexpr std::int64_t kInt32Max = std::numeric_limits<std::int32_t>::max();

const std::regex& DateTimePattern() {
  static const std::regex pattern(
      R"(^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2})"
      R"((\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$)");
  return pattern;
}

const char* TypeName(Type type) {
  switch (type) {
    case Type::kAny:
      return "any";
    case Type::kObject:
      return "object";
    case Type::kArray:
      return "array";
    case Type::kString:
      return "string";
    case Type::kInteger:
      return "integer";
    case Type::kNumber:
      return "number";
    case Type::kBoolean:
      return "boolean";
  }
  return "any";
}

std::optional<Type> ParseType(const std::string& name) {
  if (name == "object") return Type::kObject;
  if (name == "array") return Type::kArray;
  if (name == "string") return Type::kString;
  if (name == "integer") return Type::kInteger;
  if (name == "number") return Type::kNumber;
  if (name == "boolean") return Type::kBoolean;
  return std::nullopt;
}

std::string Field(const std::string& parent, const std::string& key) {
  return parent.empty() ? detail::PathKey(key) : parent + "." + detail::PathKey(key);
}
std::string Entry(const std::string& parent, const std::string& key) {
  return parent + "[" + detail::PathKey(key) + "]";
}
std::string Index(const std::string& parent, std::size_t index) {
  return parent + "[" + std::to_string(index) + "]";
}

// `1 entry`, `2 entries`.
std::string Entries(std::uint64_t count) {
  return std::to_string(count) + (count == 1 ? " entry" : " entries");
}

std::string FormatNumber(double value) {
  if (value == static_cast<double>(static_cast<std::int64_t>(value))) {
    return std::to_string(static_cast<std::int64_t>(value));
  }
  std::string text = std::to_string(value);
  while (!text.empty() && text.back() == '0') text.pop_back();
  return text;
}

// A canonical form of a scalar, so that `1`, `01` and `+1` compare equal in enums and sets.
std::string Canonical(const YAML::Node& node) {
  ScalarType type = detail::Resolve(node);
  std::string text = node.IsScalar() ? node.Scalar() : std::string();
  if (type == ScalarType::kInteger) {
    if (auto value = detail::ParseInteger(text)) text = std::to_string(*value);
  }
  return std::to_string(static_cast<int>(type)) + ":" + text;
}

// ---------------------------------------------------------------------------------------------
// Validation

class Walker {
 public:
  Walker(const std::string& file, int line_offset, std::vector<Diagnostic>& out)
      : file_(file), line_offset_(line_offset), out_(out) {}

  void CheckRoot(const SchemaNode& schema, const YAML::Node& node) {
    Check(schema, node, "", node.Mark(), /*root=*/true);
  }

  // `key_mark` locates the value when it has no mark of its own (a null value's mark points at
  // the next token, often on the next line).
  void Check(const SchemaNode& schema, const YAML::Node& node, const std::string& path,
             const YAML::Mark& key_mark, bool root = false) {
    const YAML::Mark mark = node.IsNull() ? key_mark : node.Mark();
    if (detail::HasCustomTag(node)) {
      Error(mark, path, "unsupported YAML tag " + detail::Quote(node.Tag()));
      return;
    }
    if (node.IsNull()) {
      if (schema.nullable || schema.type == Type::kAny) return;
      Error(mark, path, std::string("must be ") + Expected(schema) + ", got null");
      return;
    }
    if (schema.int_or_string) {
      CheckIntOrString(schema, node, path, mark);
      return;
    }
    switch (schema.type) {
      case Type::kAny:
        return;
      case Type::kObject:
        CheckObject(schema, node, path, mark, root);
        return;
      case Type::kArray:
        CheckArray(schema, node, path, mark);
        return;
      case Type::kString:
        CheckString(schema, node, path, mark);
        return;
      case Type::kInteger:
        CheckInteger(schema, node, path, mark);
        return;
      case Type::kNumber:
        CheckNumber(schema, node, path, mark);
        return;
      case Type::kBoolean:
        CheckBoolean(schema, node, path, mark);
        return;
    }
  }

 private:
  static const char* Expected(const SchemaNode& schema) {
    return schema.int_or_string ? "integer or string" : TypeName(schema.type);
  }

  void Error(const YAML::Mark& mark, const std::string& path, std::string message) {
    out_.push_back(Diagnostic{Diagnostic::Severity::kError,
                              detail::ToLocation(mark, file_, line_offset_), path,
                              std::move(message)});
  }

  void WrongType(const SchemaNode& schema, const YAML::Node& node, const std::string& path,
                 const YAML::Mark& mark) {
    std::string message =
        std::string("must be ") + Expected(schema) + ", got " + detail::Describe(node);
    bool scalar = node.IsScalar();
    ScalarType got = scalar ? detail::Resolve(node) : ScalarType::kNull;
    if (schema.type == Type::kString && scalar && got != ScalarType::kString) {
      message += " (quote it to make it a string)";
    } else if ((schema.type == Type::kInteger || schema.type == Type::kNumber) && scalar &&
               got == ScalarType::kString && detail::ParseNumber(node.Scalar())) {
      message += " (remove the quotes)";
    } else if (schema.type == Type::kBoolean && scalar) {
      message += " (use true or false)";
    }
    Error(mark, path, std::move(message));
  }

  bool IsScalarOf(const YAML::Node& node, ScalarType type) {
    return node.IsScalar() && detail::Resolve(node) == type;
  }

  // Keys must be plain strings and appear once.
  void CheckKeys(const YAML::Node& node, const std::string& path) {
    for (const YAML::Node& key : detail::DuplicateKeys(node)) {
      Error(key.Mark(), Field(path, key.Scalar()),
            "duplicate field " + detail::Quote(key.Scalar()));
    }
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->first.IsScalar()) Error(it->first.Mark(), path, "field names must be strings");
    }
  }

  void CheckObject(const SchemaNode& schema, const YAML::Node& node, const std::string& path,
                   const YAML::Mark& mark, bool root) {
    if (!node.IsMap()) {
      WrongType(schema, node, path, mark);
      return;
    }
    CheckKeys(node, path);
    std::set<std::string> present;
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->first.IsScalar()) continue;
      const std::string key = it->first.Scalar();
      const YAML::Mark key_mark = it->first.Mark();
      if (!present.insert(key).second) continue;  // duplicate, reported above
      auto property = schema.properties.find(key);
      if (root && key == "metadata") {
        CheckObjectMeta(property == schema.properties.end() ? nullptr : property->second.get(),
                        it->second, key_mark);
        continue;
      }
      if (property != schema.properties.end()) {
        Check(*property->second, it->second, Field(path, key), key_mark);
      } else if (schema.additional) {
        Check(*schema.additional, it->second, Entry(path, key), key_mark);
      } else if (!schema.additional_allowed && !schema.preserve_unknown) {
        Error(key_mark, Field(path, key), "unknown field " + detail::Quote(key));
      }
    }
    for (const std::string& name : schema.required) {
      if (present.count(name) == 0) Error(mark, Field(path, name), "required field is missing");
    }
    if (schema.min_properties && present.size() < *schema.min_properties) {
      Error(mark, path,
            "must have at least " + Entries(*schema.min_properties) + ", got " +
                std::to_string(present.size()));
    }
    if (schema.max_properties && present.size() > *schema.max_properties) {
      Error(mark, path,
            "must have at most " + Entries(*schema.max_properties) + ", got " +
                std::to_string(present.size()));
    }
  }

  // ObjectMeta is not described by a CRD (an API server allows only restrictions on name and
  // generateName there); its rules are the Kubernetes ones, checked here.
  void CheckObjectMeta(const SchemaNode* schema, const YAML::Node& node,
                       const YAML::Mark& key_mark) {
    const std::string path = "metadata";
    const YAML::Mark mark = node.IsNull() ? key_mark : node.Mark();
    if (!node.IsMap()) {
      Error(mark, path, "must be object, got " + detail::Describe(node));
      return;
    }
    CheckKeys(node, path);
    bool has_name = false;
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->first.IsScalar()) continue;
      const std::string key = it->first.Scalar();
      const YAML::Mark field_mark = it->first.Mark();
      const YAML::Node value = it->second;
      if (key == "name") {
        has_name = true;
        const SchemaNode* name_schema = nullptr;
        if (schema != nullptr) {
          auto found = schema->properties.find("name");
          if (found != schema->properties.end()) name_schema = found->second.get();
        }
        if (name_schema != nullptr) {
          Check(*name_schema, value, "metadata.name", field_mark);
        } else {
          CheckPlainString(value, "metadata.name", field_mark);
        }
      } else if (key == "namespace") {
        if (!CheckPlainString(value, "metadata.namespace", field_mark)) continue;
        if (!IsDnsLabel(value.Scalar())) {
          Error(value.Mark(), "metadata.namespace",
                "must be a DNS label (lower-case letters, digits and '-', at most 63 "
                "characters), got " +
                    detail::Quote(value.Scalar()));
        }
      } else if (key == "labels") {
        CheckStringMap(value, "metadata.labels", field_mark, /*labels=*/true);
      } else if (key == "annotations") {
        CheckStringMap(value, "metadata.annotations", field_mark, /*labels=*/false);
      } else {
        Error(field_mark, Field(path, key),
              "unknown field " + detail::Quote(key) +
                  " (metadata may hold only name, namespace, labels and annotations)");
      }
    }
    if (!has_name) Error(mark, "metadata.name", "required field is missing");
  }

  bool CheckPlainString(const YAML::Node& node, const std::string& path,
                        const YAML::Mark& key_mark) {
    if (IsScalarOf(node, ScalarType::kString)) return true;
    SchemaNode string_schema;
    string_schema.type = Type::kString;
    WrongType(string_schema, node, path, node.IsNull() ? key_mark : node.Mark());
    return false;
  }

  void CheckStringMap(const YAML::Node& node, const std::string& path, const YAML::Mark& key_mark,
                      bool labels) {
    if (!node.IsMap()) {
      Error(node.IsNull() ? key_mark : node.Mark(), path,
            "must be object, got " + detail::Describe(node));
      return;
    }
    CheckKeys(node, path);
    std::size_t total = 0;
    for (auto it = node.begin(); it != node.end(); ++it) {
      if (!it->first.IsScalar()) continue;
      const std::string key = it->first.Scalar();
      const std::string entry = Entry(path, key);
      if (auto error = LabelKeyError(key)) {
        Error(it->first.Mark(), entry,
              std::string(labels ? "invalid label key " : "invalid annotation key ") +
                  detail::Quote(key) + ": " + *error);
      }
      if (!CheckPlainString(it->second, entry, it->first.Mark())) continue;
      const std::string value = it->second.Scalar();
      total += key.size() + value.size();
      if (!labels) continue;
      if (auto error = LabelValueError(value)) {
        Error(it->second.Mark(), entry,
              "invalid label value " + detail::Quote(value) + ": " + *error);
      }
    }
    if (!labels && total > kMaxAnnotationBytes) {
      Error(node.Mark(), path, "annotations may hold at most 256 KiB in total");
    }
  }

  void CheckArray(const SchemaNode& schema, const YAML::Node& node, const std::string& path,
                  const YAML::Mark& mark) {
    if (!node.IsSequence()) {
      WrongType(schema, node, path, mark);
      return;
    }
    const std::size_t size = node.size();
    if (schema.min_items && size < *schema.min_items) {
      Error(mark, path,
            "must have at least " + std::to_string(*schema.min_items) +
                (*schema.min_items == 1 ? " item" : " items") + ", got " + std::to_string(size));
    }
    if (schema.max_items && size > *schema.max_items) {
      Error(mark, path,
            "must have at most " + std::to_string(*schema.max_items) + " items, got " +
                std::to_string(size));
    }
    std::map<std::string, std::size_t> seen;
    std::size_t index = 0;
    for (auto it = node.begin(); it != node.end(); ++it, ++index) {
      const YAML::Node& item = *it;
      const std::string item_path = Index(path, index);
      if (schema.items) Check(*schema.items, item, item_path, mark);
      std::optional<std::string> identity = Identity(schema, item);
      if (!identity) continue;
      auto [first, inserted] = seen.emplace(*identity, index);
      if (inserted) continue;
      Error(item.IsNull() ? mark : item.Mark(), item_path,
            "duplicate of " + Index(path, first->second) +
                (item.IsScalar() ? " (" + detail::Quote(item.Scalar()) + ")" : std::string()));
    }
  }

  // What makes an item unique: its scalar value for sets, its key fields for maps.
  static std::optional<std::string> Identity(const SchemaNode& schema, const YAML::Node& item) {
    if (schema.unique_items) {
      if (!item.IsScalar() && !item.IsNull()) return std::nullopt;
      return Canonical(item);
    }
    if (schema.list_map_keys.empty() || !item.IsMap()) return std::nullopt;
    std::string identity;
    for (const std::string& key : schema.list_map_keys) {
      const YAML::Node value = item[key];
      identity += value.IsDefined() && value.IsScalar() ? Canonical(value) : "-";
      identity += '\n';
    }
    return identity;
  }

  void CheckEnum(const SchemaNode& schema, const YAML::Node& node, const std::string& path,
                 const YAML::Mark& mark) {
    if (schema.enum_values.empty()) return;
    const std::string canonical = Canonical(node);
    std::string allowed;
    for (const EnumValue& value : schema.enum_values) {
      if (std::to_string(static_cast<int>(value.type)) + ":" + value.text == canonical) return;
      if (!allowed.empty()) allowed += ", ";
      allowed += value.type == ScalarType::kString ? detail::Quote(value.text) : value.text;
    }
    std::string got =
        detail::Resolve(node) == ScalarType::kString ? detail::Quote(node.Scalar()) : node.Scalar();
    Error(mark, path, "must be one of " + allowed + ", got " + got);
  }

  void CheckString(const SchemaNode& schema, const YAML::Node& node, const std::string& path,
                   const YAML::Mark& mark) {
    if (!IsScalarOf(node, ScalarType::kString)) {
      WrongType(schema, node, path, mark);
      return;
    }
    CheckStringValue(schema, node, path, mark);
  }

  void CheckStringValue(const SchemaNode& schema, const YAML::Node& node, const std::string& path,
                        const YAML::Mark& mark) {
    const std::string& text = node.Scalar();
    const std::size_t length = detail::CodePoints(text);
    if (schema.min_length && length < *schema.min_length) {
      Error(mark, path,
            *schema.min_length == 1 ? std::string("must not be empty")
                                    : "must be at least " + std::to_string(*schema.min_length) +
                                          " characters long, got " + std::to_string(length));
      return;
    }
    if (schema.max_length && length > *schema.max_length) {
      Error(mark, path,
            "must be at most " + std::to_string(*schema.max_length) + " characters long, got " +
                std::to_string(length));
      return;
    }
    if (!schema.enum_values.empty()) {
      CheckEnum(schema, node, path, mark);
      return;
    }
    if (schema.pattern) CheckPattern(schema, text, path, mark);
    if (schema.format == "date-time" && !std::regex_search(text, DateTimePattern())) {
      Error(mark, path, "must be an RFC 3339 date-time, got " + detail::Quote(text));
    }
  }

  void CheckPattern(const SchemaNode& schema, const std::string& text, const std::string& path,
                    const YAML::Mark& mark) {
    if (text.size() > kMaxPatternInput) {
      Error(mark, path, "is too long to check against its pattern");
      return;
    }
    bool matched = false;
    try {
      matched = std::regex_search(text, *schema.pattern);
    } catch (const std::regex_error&) {
      Error(mark, path, "could not be checked against pattern " + schema.pattern_text);
      return;
    }
    if (!matched) {
      Error(mark, path, "must match " + schema.pattern_text + ", got " + detail::Quote(text));
    }
  }

  void CheckInteger(const SchemaNode& schema, const YAML::Node& node, const std::string& path,
                    const YAML::Mark& mark) {
    if (!IsScalarOf(node, ScalarType::kInteger)) {
      WrongType(schema, node, path, mark);
      return;
    }
    CheckIntegerValue(schema, node, path, mark);
  }

  void CheckIntegerValue(const SchemaNode& schema, const YAML::Node& node, const std::string& path,
                         const YAML::Mark& mark) {
    std::optional<std::int64_t> value = detail::ParseInteger(node.Scalar());
    if (!value) {
      Error(mark, path, "integer " + node.Scalar().substr(0, 40) + " is out of range");
      return;
    }
    if (schema.format == "int32" && (*value < kInt32Min || *value > kInt32Max)) {
      Error(mark, path, "must fit in a 32-bit integer, got " + std::to_string(*value));
      return;
    }
    CheckRange(schema, static_cast<double>(*value), std::to_string(*value), path, mark);
    CheckEnum(schema, node, path, mark);
  }

  void CheckNumber(const SchemaNode& schema, const YAML::Node& node, const std::string& path,
                   const YAML::Mark& mark) {
    if (!IsScalarOf(node, ScalarType::kInteger) && !IsScalarOf(node, ScalarType::kNumber)) {
      WrongType(schema, node, path, mark);
      return;
    }
    std::optional<double> value = detail::ParseNumber(node.Scalar());
    if (!value) {
      Error(mark, path, "must be a finite number, got " + node.Scalar().substr(0, 40));
      return;
    }
    CheckRange(schema, *value, node.Scalar().substr(0, 40), path, mark);
    CheckEnum(schema, node, path, mark);
  }

  void CheckRange(const SchemaNode& schema, double value, const std::string& text,
                  const std::string& path, const YAML::Mark& mark) {
    if (schema.minimum) {
      bool below = schema.exclusive_minimum ? value <= *schema.minimum : value < *schema.minimum;
      if (below) {
        Error(mark, path,
              std::string(schema.exclusive_minimum ? "must be > " : "must be >= ") +
                  FormatNumber(*schema.minimum) + ", got " + text);
      }
    }
    if (schema.maximum) {
      bool above = schema.exclusive_maximum ? value >= *schema.maximum : value > *schema.maximum;
      if (above) {
        Error(mark, path,
              std::string(schema.exclusive_maximum ? "must be < " : "must be <= ") +
                  FormatNumber(*schema.maximum) + ", got " + text);
      }
    }
  }

  void CheckBoolean(const SchemaNode& schema, const YAML::Node& node, const std::string& path,
                    const YAML::Mark& mark) {
    if (!IsScalarOf(node, ScalarType::kBoolean)) WrongType(schema, node, path, mark);
  }

  void CheckIntOrString(const SchemaNode& schema, const YAML::Node& node, const std::string& path,
                        const YAML::Mark& mark) {
    if (IsScalarOf(node, ScalarType::kInteger)) {
      CheckIntegerValue(schema, node, path, mark);
      return;
    }
    if (IsScalarOf(node, ScalarType::kString)) {
      CheckStringValue(schema, node, path, mark);
      return;
    }
    WrongType(schema, node, path, mark);
  }

  const std::string& file_;
  int line_offset_;
  std::vector<Diagnostic>& out_;
};

// ---------------------------------------------------------------------------------------------
// Building a SchemaNode tree from openAPIV3Schema

class SchemaParser {
 public:
  std::shared_ptr<SchemaNode> Parse(const YAML::Node& node, const std::string& path) {
    if (!node.IsMap()) return Fail(path, "a schema must be a mapping");
    auto schema = std::make_shared<SchemaNode>();
    bool has_type = false;
    std::optional<YAML::Node> default_value;
    for (auto it = node.begin(); it != node.end(); ++it) {
      const std::string key = it->first.Scalar();
      const YAML::Node value = it->second;
      const std::string at = path + "." + key;
      if (key == "type") {
        std::optional<Type> type = ParseType(ScalarText(value));
        if (!type) return Fail(at, "unsupported type " + detail::Quote(ScalarText(value)));
        schema->type = *type;
        has_type = true;
      } else if (key == "properties") {
        if (!value.IsMap()) return Fail(at, "must be a mapping");
        for (auto p = value.begin(); p != value.end(); ++p) {
          auto child = Parse(p->second, at + "." + p->first.Scalar());
          if (!child) return nullptr;
          schema->properties[p->first.Scalar()] = std::move(child);
        }
      } else if (key == "required") {
        if (!StringList(value, at, schema->required)) return nullptr;
      } else if (key == "additionalProperties") {
        if (value.IsMap()) {
          schema->additional = Parse(value, at);
          if (!schema->additional) return nullptr;
        } else if (!Bool(value, at, schema->additional_allowed)) {
          return nullptr;
        }
      } else if (key == "items") {
        schema->items = Parse(value, at);
        if (!schema->items) return nullptr;
      } else if (key == "enum") {
        if (!value.IsSequence() || value.size() == 0) return Fail(at, "must be a non-empty list");
        for (const YAML::Node& item : value) {
          if (!item.IsScalar()) return Fail(at, "enum values must be scalars");
          EnumValue entry{detail::Resolve(item), item.Scalar()};
          if (entry.type == ScalarType::kInteger) {
            if (auto parsed = detail::ParseInteger(entry.text))
              entry.text = std::to_string(*parsed);
          }
          schema->enum_values.push_back(std::move(entry));
        }
      } else if (key == "pattern") {
        schema->pattern_text = ScalarText(value);
        try {
          schema->pattern.emplace(schema->pattern_text, std::regex::ECMAScript);
        } catch (const std::regex_error& e) {
          return Fail(at, std::string("invalid regular expression: ") + e.what());
        }
      } else if (key == "minLength") {
        if (!Count(value, at, schema->min_length)) return nullptr;
      } else if (key == "maxLength") {
        if (!Count(value, at, schema->max_length)) return nullptr;
      } else if (key == "minItems") {
        if (!Count(value, at, schema->min_items)) return nullptr;
      } else if (key == "maxItems") {
        if (!Count(value, at, schema->max_items)) return nullptr;
      } else if (key == "minProperties") {
        if (!Count(value, at, schema->min_properties)) return nullptr;
      } else if (key == "maxProperties") {
        if (!Count(value, at, schema->max_properties)) return nullptr;
      } else if (key == "minimum") {
        if (!Number(value, at, schema->minimum)) return nullptr;
      } else if (key == "maximum") {
        if (!Number(value, at, schema->maximum)) return nullptr;
      } else if (key == "exclusiveMinimum") {
        if (!Bool(value, at, schema->exclusive_minimum)) return nullptr;
      } else if (key == "exclusiveMaximum") {
        if (!Bool(value, at, schema->exclusive_maximum)) return nullptr;
      } else if (key == "uniqueItems") {
        if (!Bool(value, at, schema->unique_items)) return nullptr;
      } else if (key == "nullable") {
        if (!Bool(value, at, schema->nullable)) return nullptr;
      } else if (key == "x-kubernetes-int-or-string") {
        if (!Bool(value, at, schema->int_or_string)) return nullptr;
      } else if (key == "x-kubernetes-preserve-unknown-fields") {
        if (!Bool(value, at, schema->preserve_unknown)) return nullptr;
      } else if (key == "format") {
        schema->format = ScalarText(value);
        static const std::set<std::string> kFormats = {"int32", "int64", "date-time", "float",
                                                       "double"};
        if (kFormats.count(schema->format) == 0) {
          return Fail(at, "unsupported format " + detail::Quote(schema->format));
        }
      } else if (key == "x-kubernetes-list-type") {
        std::string list_type = ScalarText(value);
        if (list_type == "set") {
          schema->unique_items = true;
        } else if (list_type != "atomic" && list_type != "map") {
          return Fail(at, "must be atomic, set or map");
        }
      } else if (key == "x-kubernetes-list-map-keys") {
        if (!StringList(value, at, schema->list_map_keys)) return nullptr;
      } else if (key == "default") {
        default_value = value;
      } else if (key == "description" || key == "title" || key == "example" ||
                 key == "x-kubernetes-validations") {
        // Documentation, and CEL rules the loader mirrors in code (see schema.hpp).
      } else {
        return Fail(at, "unsupported schema keyword " + detail::Quote(key));
      }
    }
    if (!has_type && !schema->int_or_string && !schema->preserve_unknown) {
      return Fail(path, "type is required (structural schema)");
    }
    if (schema->type == Type::kArray && !schema->items) return Fail(path, "an array needs items");
    for (const std::string& name : schema->required) {
      if (schema->properties.count(name) == 0 && !schema->additional) {
        return Fail(path + ".required", "names " + detail::Quote(name) + ", not a property");
      }
    }
    if (default_value) {
      std::vector<Diagnostic> problems;
      const std::string no_file;
      Walker(no_file, 0, problems).Check(*schema, *default_value, "", default_value->Mark());
      if (!problems.empty()) return Fail(path + ".default", problems.front().message);
    }
    return schema;
  }

  [[nodiscard]] const std::string& error() const { return error_; }

 private:
  std::nullptr_t Fail(const std::string& path, const std::string& message) {
    if (error_.empty()) error_ = path + ": " + message;
    return nullptr;
  }

  static std::string ScalarText(const YAML::Node& node) {
    return node.IsScalar() ? node.Scalar() : std::string();
  }

  bool Bool(const YAML::Node& node, const std::string& at, bool& out) {
    if (!node.IsScalar() || detail::Resolve(node) != ScalarType::kBoolean) {
      Fail(at, "must be true or false");
      return false;
    }
    out = node.Scalar() == "true";
    return true;
  }

  bool Count(const YAML::Node& node, const std::string& at, std::optional<std::uint64_t>& out) {
    std::optional<std::int64_t> value =
        node.IsScalar() ? detail::ParseInteger(node.Scalar()) : std::nullopt;
    if (!value || *value < 0) {
      Fail(at, "must be a non-negative integer");
      return false;
    }
    out = static_cast<std::uint64_t>(*value);
    return true;
  }

  bool Number(const YAML::Node& node, const std::string& at, std::optional<double>& out) {
    std::optional<double> value =
        node.IsScalar() ? detail::ParseNumber(node.Scalar()) : std::nullopt;
    if (!value) {
      Fail(at, "must be a number");
      return false;
    }
    out = value;
    return true;
  }

  bool StringList(const YAML::Node& node, const std::string& at, std::vector<std::string>& out) {
    if (!node.IsSequence()) {
      Fail(at, "must be a list of strings");
      return false;
    }
    for (const YAML::Node& item : node) {
      if (!item.IsScalar()) {
        Fail(at, "must be a list of strings");
        return false;
      }
      out.push_back(item.Scalar());
    }
    return true;
  }

  std::string error_;
};

Failure InvalidSchema(const std::string& message) {
  return Failure::Stalled("InvalidSchema", "invalid CustomResourceDefinition: " + message);
}

std::string Text(const YAML::Node& node) {
  return node.IsDefined() && node.IsScalar() ? node.Scalar() : std::string();
}

Schema EmbeddedOrDie(std::string_view crd, const char* name) {
  Outcome<Schema> built = Schema::FromCrd(crd, "v1alpha1");
  if (!built.ok()) {
    // The embedded CRDs are checked by a unit test; reaching this is a build defect, and running
    // without validation would be worse than stopping.
    std::fprintf(stderr, "tenant-master: embedded crds/%s is invalid: %s\n", name,
                 built.failure().message.c_str());
    std::abort();
  }
  return std::move(built).value();
}

}  // namespace

Outcome<Schema> Schema::FromCrd(std::string_view crd_yaml, std::string_view version) {
  try {
    YAML::Node crd = YAML::Load(std::string(crd_yaml));
    if (Text(crd["apiVersion"]) != "apiextensions.k8s.io/v1" ||
        Text(crd["kind"]) != "CustomResourceDefinition") {
      return InvalidSchema("not an apiextensions.k8s.io/v1 CustomResourceDefinition");
    }
    const YAML::Node spec = crd["spec"];
    Schema schema;
    schema.group_ = Text(spec["group"]);
    schema.kind_ = Text(spec["names"]["kind"]);
    schema.plural_ = Text(spec["names"]["plural"]);
    if (schema.group_.empty() || schema.kind_.empty() || schema.plural_.empty()) {
      return InvalidSchema("spec.group, spec.names.kind and spec.names.plural are required");
    }
    const YAML::Node short_names = spec["names"]["shortNames"];
    if (short_names.IsSequence()) {
      for (const YAML::Node& name : short_names) schema.short_names_.push_back(Text(name));
    }
    const YAML::Node versions = spec["versions"];
    if (!versions.IsSequence()) return InvalidSchema("spec.versions must be a list");
    for (std::size_t i = 0; i < versions.size(); ++i) {
      const YAML::Node entry = versions[i];
      if (Text(entry["name"]) != version) continue;
      if (Text(entry["served"]) != "true") {
        return InvalidSchema("version " + std::string(version) + " is not served");
      }
      const YAML::Node open_api = entry["schema"]["openAPIV3Schema"];
      if (!open_api.IsDefined() || !open_api.IsMap()) {
        return InvalidSchema("version " + std::string(version) + " has no openAPIV3Schema");
      }
      SchemaParser parser;
      std::shared_ptr<SchemaNode> root =
          parser.Parse(open_api, "spec.versions[" + std::to_string(i) + "].schema.openAPIV3Schema");
      if (!root) return InvalidSchema(parser.error());
      if (root->type != Type::kObject) return InvalidSchema("openAPIV3Schema must be an object");
      schema.root_ = std::move(root);
      schema.version_ = std::string(version);
      return schema;
    }
    return InvalidSchema("no version " + detail::Quote(version));
  } catch (const YAML::Exception& e) {
    return InvalidSchema("line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
  } catch (const std::exception& e) {
    return InvalidSchema(e.what());
  }
}

std::vector<Diagnostic> Schema::Validate(const YAML::Node& document, const std::string& file,
                                         int line_offset) const {
  std::vector<Diagnostic> out;
  try {
    Walker(file, line_offset, out).CheckRoot(*root_, document);
  } catch (const std::exception& e) {
    out.push_back(Diagnostic{Diagnostic::Severity::kError,
                             detail::ToLocation(document.Mark(), file, line_offset), "",
                             std::string("internal error while validating: ") + e.what()});
  }
  return out;
}

std::vector<Diagnostic> Schema::ValidateText(std::string_view yaml, const std::string& file) const {
  detail::ParsedText parsed = detail::ParseDocuments(yaml, file);
  std::vector<Diagnostic> out = std::move(parsed.errors);
  for (const Document& document : parsed.documents) {
    std::vector<Diagnostic> found = Validate(document.root, file, document.line_offset);
    out.insert(out.end(), found.begin(), found.end());
  }
  return out;
}

const Schema& WorkspaceSchema() {
  static const Schema schema = EmbeddedOrDie(crds::WorkspacesCrd(), "workspaces.yaml");
  return schema;
}

const Schema& ProductSchema() {
  static const Schema schema = EmbeddedOrDie(crds::ProductsCrd(), "products.yaml");
  return schema;
}

}  // namespace tmaster::manifests
