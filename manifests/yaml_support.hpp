#pragma once
// Internal to manifests/: includes yaml-cpp, so only .cpp files of this folder include it
// (heavy headers stay out of widely included headers: docs/architecture.md#build).

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "manifests/types.hpp"

namespace tmaster::manifests::detail {

/// What a YAML scalar means. Resolution follows the YAML 1.2 core schema with one deliberate
/// narrowing: only the plain words `true` and `false` are booleans. `yes`, `no`, `on`, `off`,
/// `True` are strings, so `LANGUAGE_CODE: no` stays the string "no" and a boolean field written
/// `yes` is an error instead of a silent guess. Quoted and block scalars are always strings.
enum class ScalarType { kNull, kBoolean, kInteger, kNumber, kString };

/// The JSON-ish type name of a node as error messages print it: object, array, string, integer,
/// number, boolean, null.
const char* TypeName(const YAML::Node& node);

/// Resolves a scalar or null node (see ScalarType). Must not be called on maps or sequences.
ScalarType Resolve(const YAML::Node& node);

/// True when the node carries an explicit tag other than the standard `!!str`, `!!int`, ...
bool HasCustomTag(const YAML::Node& node);

/// Parses a plain decimal integer (`-12`, `+3`, `40`); nullopt when malformed or out of range.
std::optional<std::int64_t> ParseInteger(std::string_view text);

/// Parses a YAML 1.2 core float or integer; nullopt when it is neither.
std::optional<double> ParseNumber(std::string_view text);

/// `"text"` with quotes, backslashes and control characters escaped and long text cut, so a
/// hostile value prints on one line and cannot forge output.
/// (Not common/text.hpp's `Quoted`, which only adds the quotes: values here come from files
/// anyone may write.)
std::string Quote(std::string_view text);

/// A key as it appears inside a field path (`spec.dedicated.env[LANG]`): bare when it is tame
/// (letters, digits, `_-./`), quoted as Quote does otherwise, so a hostile key cannot forge a
/// path.
std::string PathKey(std::string_view key);

/// A short description of a value for `got ...` in messages: `string "20"`, `integer 20`,
/// `object`, `null`.
std::string Describe(const YAML::Node& node);

/// Number of Unicode code points in UTF-8 text (invalid bytes count one each).
std::size_t CodePoints(std::string_view text);

/// One YAML document of a file, with the line its text starts at (0-based) so marks can be
/// mapped back to the file.
struct Document {
  YAML::Node root;
  int line_offset = 0;
};

/// Maps a yaml-cpp mark (0-based, relative to the document's text) to a file location
/// (1-based). A null mark (-1) maps to the document's first line.
Location ToLocation(const YAML::Mark& mark, const std::string& file, int line_offset);

/// The documents of a file, each parsed on its own: a syntax error in one document is one error
/// diagnostic with yaml-cpp's line and column and does not hide the documents around it.
/// Documents that hold only comments or nothing are dropped. Never throws.
struct ParsedText {
  std::vector<Document> documents;
  std::vector<Diagnostic> errors;
  /// For each error, what a line scan could still tell about the broken document (its top-level
  /// `kind:` and its `metadata.name`), so a workspace whose manifest no longer parses is still
  /// known by name and never taken for a deleted one. Empty strings when not found.
  struct Salvage {
    std::string kind;
    std::string name;
    int kind_line = 0;  ///< 1-based line of `kind:` in the file; 0 when not found
  };
  std::vector<Salvage> salvaged;  ///< parallel to `errors`
};
ParsedText ParseDocuments(std::string_view text, const std::string& file);

/// Keys of a mapping that occur more than once (yaml-cpp keeps them all), with their nodes in
/// order: every occurrence after the first.
std::vector<YAML::Node> DuplicateKeys(const YAML::Node& map);

}  // namespace tmaster::manifests::detail
