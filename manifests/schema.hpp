#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/outcome.hpp"
#include "manifests/types.hpp"

namespace YAML {
class Node;
}

namespace tmaster::manifests {

namespace detail {
struct SchemaNode;
}

/// The validator of one kind, built from the `openAPIV3Schema` of a CustomResourceDefinition
/// (the files in crds/), so the CRD text is the single definition of what a manifest may say.
///
/// Supported keywords: type (object, array, string, integer, number, boolean), properties,
/// required, additionalProperties (bool or schema), enum, pattern (ECMAScript, compiled once),
/// minLength/maxLength (in characters), minimum/maximum (and exclusiveMinimum/Maximum),
/// items, minItems/maxItems, uniqueItems, minProperties/maxProperties, nullable, format (int32
/// and int64 ranges, date-time), x-kubernetes-int-or-string, x-kubernetes-preserve-unknown-fields,
/// x-kubernetes-list-type (set: unique items; map: unique by x-kubernetes-list-map-keys).
/// Documentation keywords (description, default, example, title) are accepted and `default`
/// is checked against its own schema. `x-kubernetes-validations` (CEL) is accepted but not
/// evaluated: each rule is mirrored by a code rule in the loader. Any other keyword makes
/// FromCrd fail, so the CRDs cannot use a rule the validator would silently skip.
///
/// Validation is strict, like `kubectl apply --validate=strict`: an object field not in
/// `properties` is `unknown field "x"` unless the schema allows more; an integer must be a YAML
/// integer (a quoted "20" is a string); only the plain words true and false are booleans; null
/// is an error unless `nullable`; a duplicated key is an error. `metadata` is ObjectMeta, as on
/// a Kubernetes API server: `name` follows the CRD's metadata.name schema, `labels` and
/// `annotations` follow the Kubernetes key and value rules, `namespace` must be a DNS label, and
/// any other metadata field is unknown.
class Schema {
 public:
  /// Builds the validator of `version` (served) from CRD text. Fails with reason
  /// `InvalidSchema` naming the offending schema path when the text is not a CRD, has no such
  /// version, or uses an unsupported keyword or an invalid pattern. Never throws.
  static Outcome<Schema> FromCrd(std::string_view crd_yaml, std::string_view version);

  [[nodiscard]] const std::string& Group() const { return group_; }
  [[nodiscard]] const std::string& Version() const { return version_; }
  [[nodiscard]] const std::string& Kind() const { return kind_; }
  [[nodiscard]] const std::string& Plural() const { return plural_; }
  [[nodiscard]] const std::vector<std::string>& ShortNames() const { return short_names_; }

  /// Every violation in `document`, in document order, each with its location (yaml-cpp marks
  /// shifted by `line_offset` lines, 1-based) and field path (`spec.extensions[1]`,
  /// `spec.dedicated.env[LANG]`). Empty when the document is valid. Never throws.
  [[nodiscard]] std::vector<Diagnostic> Validate(const YAML::Node& document,
                                                 const std::string& file,
                                                 int line_offset = 0) const;

  /// Parses `yaml` (one document) and validates it; a syntax error is one diagnostic.
  [[nodiscard]] std::vector<Diagnostic> ValidateText(std::string_view yaml,
                                                     const std::string& file) const;

 private:
  Schema() = default;

  std::shared_ptr<const detail::SchemaNode> root_;
  std::string group_;
  std::string version_;
  std::string kind_;
  std::string plural_;
  std::vector<std::string> short_names_;
};

/// The Workspace validator built from the embedded crds/workspaces.yaml (built once, on first
/// use; immutable and safe to share between threads). Asserts that the embedded CRD is valid,
/// which a unit test guarantees.
const Schema& WorkspaceSchema();

/// The Product validator built from the embedded crds/products.yaml (see WorkspaceSchema).
const Schema& ProductSchema();

}  // namespace tmaster::manifests
