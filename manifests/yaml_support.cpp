#include "manifests/yaml_support.hpp"

#include <charconv>
#include <exception>
#include <limits>
#include <set>
#include <sstream>
#include <vector>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

#include "common/text.hpp"

namespace tmaster::manifests::detail {
namespace {

constexpr std::string_view kCoreTagPrefix = "tag:yaml.org,2002:";
constexpr std::size_t kQuoteLimit = 80;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

bool IsDecimalInteger(std::string_view text) {
  if (!text.empty() && (text.front() == '-' || text.front() == '+')) text.remove_prefix(1);
  if (text.empty()) return false;
  for (char c : text) {
    if (!IsDigit(c)) return false;
  }
  return true;
}

// YAML 1.2 core float: [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
bool IsCoreFloat(std::string_view text) {
  if (!text.empty() && (text.front() == '-' || text.front() == '+')) text.remove_prefix(1);
  if (text == ".inf" || text == ".Inf" || text == ".INF") return true;
  std::size_t i = 0;
  std::size_t int_digits = 0;
  while (i < text.size() && IsDigit(text[i])) ++i, ++int_digits;
  std::size_t frac_digits = 0;
  if (i < text.size() && text[i] == '.') {
    ++i;
    while (i < text.size() && IsDigit(text[i])) ++i, ++frac_digits;
    if (int_digits == 0 && frac_digits == 0) return false;
  } else if (int_digits == 0) {
    return false;
  }
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < text.size() && (text[i] == '-' || text[i] == '+')) ++i;
    std::size_t exp_digits = 0;
    while (i < text.size() && IsDigit(text[i])) ++i, ++exp_digits;
    if (exp_digits == 0) return false;
  }
  return i == text.size();
}

bool IsNan(std::string_view text) { return text == ".nan" || text == ".NaN" || text == ".NAN"; }

bool IsNullWord(std::string_view text) {
  return text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL";
}

ScalarType ResolvePlain(std::string_view text) {
  if (IsNullWord(text)) return ScalarType::kNull;
  if (text == "true" || text == "false") return ScalarType::kBoolean;
  if (IsDecimalInteger(text)) return ScalarType::kInteger;
  if (IsCoreFloat(text) || IsNan(text)) return ScalarType::kNumber;
  return ScalarType::kString;
}

bool IsContentLine(std::string_view line) {
  for (char c : line) {
    if (c == ' ' || c == '\t' || c == '\r') continue;
    return c != '#';
  }
  return false;
}

bool IsMarker(std::string_view line, std::string_view marker) {
  if (line.substr(0, 3) != marker) return false;
  return line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r';
}

// The value of a `key: value` line, without a trailing comment or surrounding quotes.
std::string LineValue(std::string_view rest) {
  std::size_t comment = rest.find(" #");
  if (comment != std::string_view::npos) rest = rest.substr(0, comment);
  rest = Trim(rest);
  if (rest.size() >= 2 && (rest.front() == '"' || rest.front() == '\'') &&
      rest.back() == rest.front()) {
    rest = rest.substr(1, rest.size() - 2);
  }
  return std::string(rest);
}

// A line scan of a document yaml-cpp could not parse: block-style `kind:` and `metadata.name`.
ParsedText::Salvage Salvage(std::string_view text, int line_offset) {
  ParsedText::Salvage found;
  bool in_metadata = false;
  int line_number = line_offset;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t newline = text.find('\n', pos);
    std::string_view line = text.substr(
        pos, newline == std::string_view::npos ? std::string_view::npos : newline - pos);
    ++line_number;
    if (!line.empty() && line.front() != ' ' && line.front() != '\t' && line.front() != '#') {
      in_metadata = Trim(line) == "metadata:";
      if (line.substr(0, 5) == "kind:" && found.kind.empty()) {
        found.kind = LineValue(line.substr(5));
        found.kind_line = line_number;
      }
    } else if (in_metadata && found.name.empty()) {
      std::string_view content = Trim(line);
      if (content.substr(0, 5) == "name:") found.name = LineValue(content.substr(5));
    }
    if (newline == std::string_view::npos) break;
    pos = newline + 1;
  }
  return found;
}

// Where a parse error is: yaml-cpp reports errors found at the end of input one line past the
// document, which in a split file is the next document's marker; keep it inside this one.
Location ErrorLocation(const YAML::Mark& mark, std::string_view text, const std::string& file,
                       int line_offset) {
  std::vector<std::string_view> lines;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t newline = text.find('\n', pos);
    std::size_t end = newline == std::string_view::npos ? text.size() : newline;
    lines.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  while (!lines.empty() && Trim(lines.back()).empty()) lines.pop_back();
  if (mark.is_null() || mark.line < 0 || lines.empty() ||
      static_cast<std::size_t>(mark.line) < lines.size()) {
    return ToLocation(mark, file, line_offset);
  }
  const int last = static_cast<int>(lines.size()) - 1;
  const int column = static_cast<int>(lines.back().find_last_not_of(" \t\r") + 1);
  return Location{file, line_offset + last + 1, column + 1};
}

// Counts one document's nodes and remembers where its first node is, without building them.
class DocumentShape : public YAML::EventHandler {
 public:
  int nodes = 0;
  bool only_null = true;
  YAML::Mark first = YAML::Mark::null_mark();

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { Node(mark, true); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { Node(mark, false); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    Node(mark, false);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Node(mark, false);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Node(mark, false);
  }
  void OnMapEnd() override {}

 private:
  void Node(const YAML::Mark& mark, bool null) {
    if (nodes++ == 0) first = mark;
    only_null = only_null && null;
  }
};

// Debian's yaml-cpp 0.7 YAML::LoadAll never returns on a stream where a `,` follows a document's
// node at the top level (`,`, `[a],`, `- a` then `,`): its parser reports an empty document
// again and again without consuming the `,`, allocating each time (upstream issue 1040, fixed
// after 0.8.0; docs/decisions.md, "Hardening II (issue 9)"). Walk the chunk's events first, with
// no nodes built, and throw where an empty document repeats at one place, so LoadAll only ever
// sees text it finishes. A chunk holds one document (ParseDocuments splits at every marker):
// more than a thousand is refused as well.
void RefuseLoadAllLoop(const std::string& text) {
  constexpr int kMostDocuments = 1000;
  std::istringstream in(text);
  YAML::Parser parser(in);
  YAML::Mark previous = YAML::Mark::null_mark();
  bool previous_empty = false;
  for (int document = 0;; ++document) {
    DocumentShape shape;
    if (!parser.HandleNextDocument(shape)) return;
    const bool empty = shape.nodes <= 1 && shape.only_null;
    if (empty && previous_empty && shape.first.pos == previous.pos) {
      throw YAML::ParserException(shape.first, "unexpected text after the document's node");
    }
    if (document >= kMostDocuments) {
      throw YAML::ParserException(shape.first, "more than 1000 documents without a marker");
    }
    previous = shape.first;
    previous_empty = empty;
  }
}

void ParseChunk(std::string_view text, int line_offset, const std::string& file, ParsedText& out) {
  try {
    const std::string owned(text);
    RefuseLoadAllLoop(owned);
    for (YAML::Node& root : YAML::LoadAll(owned)) {
      if (root.IsNull()) continue;
      out.documents.push_back(Document{root, line_offset});
    }
  } catch (const YAML::Exception& e) {
    out.errors.push_back(Diagnostic{Diagnostic::Severity::kError,
                                    ErrorLocation(e.mark, text, file, line_offset), "",
                                    "invalid YAML: " + e.msg});
    out.salvaged.push_back(Salvage(text, line_offset));
  } catch (const std::exception& e) {
    out.errors.push_back(Diagnostic{Diagnostic::Severity::kError,
                                    ToLocation(YAML::Mark::null_mark(), file, line_offset), "",
                                    std::string("invalid YAML: ") + e.what()});
    out.salvaged.push_back(Salvage(text, line_offset));
  }
}

}  // namespace

const char* TypeName(const YAML::Node& node) {
  if (node.IsMap()) return "object";
  if (node.IsSequence()) return "array";
  switch (Resolve(node)) {
    case ScalarType::kNull:
      return "null";
    case ScalarType::kBoolean:
      return "boolean";
    case ScalarType::kInteger:
      return "integer";
    case ScalarType::kNumber:
      return "number";
    case ScalarType::kString:
      return "string";
  }
  return "string";
}

ScalarType Resolve(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return ScalarType::kNull;
  const std::string& tag = node.Tag();
  const std::string& text = node.Scalar();
  if (tag == "!") return ScalarType::kString;  // quoted or block scalar
  if (tag.rfind(kCoreTagPrefix, 0) == 0) {
    std::string_view core = std::string_view(tag).substr(kCoreTagPrefix.size());
    if (core == "str") return ScalarType::kString;
    if (core == "null") return ScalarType::kNull;
  }
  return ResolvePlain(text);
}

bool HasCustomTag(const YAML::Node& node) {
  const std::string& tag = node.Tag();
  if (tag.empty() || tag == "?" || tag == "!") return false;
  if (tag.rfind(kCoreTagPrefix, 0) != 0) return true;
  std::string_view core = std::string_view(tag).substr(kCoreTagPrefix.size());
  return !(core == "str" || core == "int" || core == "float" || core == "bool" || core == "null" ||
           core == "map" || core == "seq");
}

std::optional<std::int64_t> ParseInteger(std::string_view text) {
  if (!IsDecimalInteger(text)) return std::nullopt;
  if (text.front() == '+') text.remove_prefix(1);
  std::int64_t value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::optional<double> ParseNumber(std::string_view text) {
  if (IsNan(text)) return std::nullopt;  // never within any bound: treated as not a number
  if (!IsDecimalInteger(text) && !IsCoreFloat(text)) return std::nullopt;
  bool negative = !text.empty() && text.front() == '-';
  if (!text.empty() && (text.front() == '-' || text.front() == '+')) text.remove_prefix(1);
  if (text == ".inf" || text == ".Inf" || text == ".INF") {
    return negative ? -std::numeric_limits<double>::infinity()
                    : std::numeric_limits<double>::infinity();
  }
  double value = 0;
  auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return negative ? -value : value;
}

std::string Quote(std::string_view text) {
  std::string out = "\"";
  std::size_t limit = text.size();
  bool cut = false;
  if (limit > kQuoteLimit) {
    limit = kQuoteLimit;
    // Do not cut a UTF-8 sequence in half.
    while (limit > 0 && (static_cast<unsigned char>(text[limit]) & 0xC0U) == 0x80U) --limit;
    cut = true;
  }
  static constexpr char kHex[] = "0123456789abcdef";
  for (std::size_t i = 0; i < limit; ++i) {
    char c = text[i];
    auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (byte < 0x20U || byte == 0x7FU) {
      out += "\\x";
      out += kHex[byte >> 4U];
      out += kHex[byte & 0x0FU];
    } else {
      out += c;
    }
  }
  out += '"';
  if (cut) out += "...";
  return out;
}

std::string PathKey(std::string_view key) {
  bool tame = !key.empty();
  for (char c : key) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.' || c == '/';
    if (!ok) tame = false;
  }
  return tame ? std::string(key) : Quote(key);
}

std::string Describe(const YAML::Node& node) {
  if (node.IsMap()) return "object";
  if (node.IsSequence()) return "array";
  ScalarType type = Resolve(node);
  if (type == ScalarType::kNull) return "null";
  if (type == ScalarType::kString) return "string " + Quote(node.Scalar());
  // Plain numbers and booleans hold no quotes or control characters; still cut them.
  std::string text = node.Scalar();
  if (text.size() > kQuoteLimit) text = text.substr(0, kQuoteLimit) + "...";
  return std::string(TypeName(node)) + " " + text;
}

std::size_t CodePoints(std::string_view text) {
  std::size_t count = 0;
  for (char c : text) {
    if ((static_cast<unsigned char>(c) & 0xC0U) != 0x80U) ++count;
  }
  return count;
}

Location ToLocation(const YAML::Mark& mark, const std::string& file, int line_offset) {
  if (mark.is_null() || mark.line < 0) return Location{file, line_offset + 1, 1};
  return Location{file, line_offset + mark.line + 1, mark.column + 1};
}

ParsedText ParseDocuments(std::string_view text, const std::string& file) {
  ParsedText out;
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);  // UTF-8 byte order mark

  // A document marker (`---`, `...`) at the start of a line always ends the document before it
  // (YAML 1.2, c-forbidden), even inside a block or quoted scalar. Splitting there first lets
  // each document parse on its own, so one syntax error costs one document, not the file.
  std::size_t chunk_begin = 0;
  int chunk_line = 0;
  bool chunk_has_content = false;
  bool chunk_has_marker = false;
  auto flush = [&](std::size_t end, int next_line, std::size_t next_begin) {
    if (chunk_has_content)
      ParseChunk(text.substr(chunk_begin, end - chunk_begin), chunk_line, file, out);
    chunk_begin = next_begin;
    chunk_line = next_line;
    chunk_has_content = false;
    chunk_has_marker = false;
  };

  std::size_t pos = 0;
  int line_number = 0;
  while (pos < text.size()) {
    std::size_t newline = text.find('\n', pos);
    std::size_t line_end = newline == std::string_view::npos ? text.size() : newline;
    std::size_t next = newline == std::string_view::npos ? text.size() : newline + 1;
    std::string_view line = text.substr(pos, line_end - pos);
    if (IsMarker(line, "---")) {
      if (chunk_has_content || chunk_has_marker) flush(pos, line_number, pos);
      chunk_has_marker = true;
      // Content after the marker on the same line (`--- {a: 1}`, `--- |`) is content.
      std::string_view rest = line.substr(3);
      if (IsContentLine(rest)) chunk_has_content = true;
    } else if (IsMarker(line, "...")) {
      flush(next, line_number + 1, next);
    } else if (!chunk_has_content && !line.empty() && line.front() == '%') {
      // A directive belongs to the document that follows it.
    } else if (IsContentLine(line)) {
      chunk_has_content = true;
    }
    pos = next;
    ++line_number;
  }
  flush(text.size(), line_number, text.size());
  return out;
}

std::vector<YAML::Node> DuplicateKeys(const YAML::Node& map) {
  std::vector<YAML::Node> duplicates;
  std::set<std::string> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    if (!it->first.IsScalar()) continue;
    if (!seen.insert(it->first.Scalar()).second) duplicates.push_back(it->first);
  }
  return duplicates;
}

}  // namespace tmaster::manifests::detail
