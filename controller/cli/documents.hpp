#pragma once

// The manifests `tenantctl apply` and `diff` send (docs/api.md#tenantctl): files split into their
// YAML documents, each known by kind and name and by the line it starts at, so that the
// server's findings (lines relative to the request body) are printed at the file's lines.
// yaml-cpp stays in documents.cpp.

#include <string>
#include <string_view>
#include <vector>

#include "common/outcome.hpp"

namespace tmaster::cli {

/// One document of a file: its text (from its `---` marker, when it has one, to the next marker)
/// and the 1-based line of the file its text starts at.
struct DocumentText {
  std::string file;  ///< as the user named it; `<stdin>` for `-`
  std::string text;
  int first_line = 1;
};

/// Splits at every `---` and `...` marker at the start of a line, as the operator's loader does
/// (manifests/yaml_support.cpp): a marker always ends the document before it. Documents holding
/// only comments and blank lines are dropped. A UTF-8 byte order mark is dropped.
std::vector<DocumentText> SplitDocuments(std::string_view text, const std::string& file);

/// What a document is. `error` is set (`FILE:LINE:COLUMN: invalid YAML: ...`) when the document
/// is not YAML or not a mapping; then the other fields are empty.
struct DocumentKind {
  std::string api_version;
  std::string kind;
  std::string name;  ///< metadata.name
  int kind_line = 0; ///< the file's line of `kind:` (the document's first line when absent)
  std::string error;
};
DocumentKind Identify(const DocumentText& document);

/// Reads `-f` paths: a file, a directory (every `*.yaml`/`*.yml` beneath it, recursively, in
/// sorted order) or `-` (the text of `stdin_text`). Stalled `BadPath` naming a path that does not
/// exist or cannot be read.
Outcome<std::vector<DocumentText>> ReadDocuments(const std::vector<std::string>& paths,
                                                 const std::string& stdin_text);

/// One finding of the server about a manifest (a 422's `details`, a plan's `diagnostics`).
struct Finding {
  std::string file;
  int line = 0;
  int column = 0;
  std::string field;
  std::string message;
  std::string severity;  ///< as the server said it; empty when it did not
  /// `file:line:column: field: message` (the field part left out when empty), the shape every
  /// tool of the project prints.
  [[nodiscard]] std::string Format() const;
};

/// The findings in a JSON array's text (`[{file, line, column, field, message}]`); items that
/// are not objects are skipped. Empty when the text is not an array.
std::vector<Finding> ParseFindings(std::string_view array_json);

/// Where the lines of a request body came from: the body is `documents` joined in order
/// (JoinDocuments), so line N of it is a line of one of them.
class LineMap {
 public:
  /// The body made of `documents`, each ending in a newline, and the map of its lines.
  static LineMap Join(const std::vector<DocumentText>& documents, std::string& body);
  /// `finding` with its file and line moved from the body to the file it came from. A line
  /// outside the body keeps its number and gets the first document's file.
  [[nodiscard]] Finding Map(Finding finding) const;

 private:
  struct Span {
    int body_first = 1;  ///< 1-based line of the body where the document starts
    int lines = 0;
    std::string file;
    int file_first = 1;
  };
  std::vector<Span> spans_;
};

}  // namespace tmaster::cli
