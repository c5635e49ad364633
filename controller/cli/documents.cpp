#include "controller/cli/documents.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "common/text.hpp"
#include "controller/cli/json_util.hpp"

namespace tmaster::cli {
namespace {

// `---` or `...` alone or followed by whitespace (YAML 1.2's document markers).
bool IsDocumentMarker(std::string_view line, std::string_view marker) {
  if (line.substr(0, 3) != marker) return false;
  return line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r' || line[3] == '\n';
}

bool HasContent(std::string_view line) {
  const std::string_view text = Trim(line);
  return !text.empty() && text.front() != '#';
}

std::string Scalar(const YAML::Node& node) {
  return node && node.IsScalar() ? node.Scalar() : std::string();
}

bool IsManifestFile(const std::filesystem::path& path) {
  const std::string ext = path.extension().string();
  return ext == ".yaml" || ext == ".yml";
}

Outcome<std::string> ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Failure::Stalled("BadPath", "cannot read " + path.string());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::vector<DocumentText> SplitDocuments(std::string_view text, const std::string& file) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  std::vector<DocumentText> out;
  DocumentText current{file, "", 1};
  bool content = false;
  const auto flush = [&](int next_first_line) {
    if (content) out.push_back(current);
    current = DocumentText{file, "", next_first_line};
    content = false;
  };
  int line_number = 1;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t newline = text.find('\n', pos);
    const std::size_t end = newline == std::string_view::npos ? text.size() : newline;
    const std::string_view line = text.substr(pos, end - pos);
    pos = newline == std::string_view::npos ? text.size() : newline + 1;
    if (IsDocumentMarker(line, "---")) {
      flush(line_number);
      content = HasContent(line.substr(3));  // `--- {a: 1}` holds content on the marker's line
    } else if (IsDocumentMarker(line, "...")) {
      flush(line_number + 1);
      ++line_number;
      continue;
    } else if (HasContent(line)) {
      content = true;
    }
    current.text.append(line);
    current.text += '\n';
    ++line_number;
  }
  flush(line_number);
  return out;
}

DocumentKind Identify(const DocumentText& document) {
  DocumentKind out;
  try {
    const YAML::Node root = YAML::Load(document.text);
    if (!root.IsMap()) {
      out.error = document.file + ":" + std::to_string(document.first_line) +
                  ":1: the document is not a mapping";
      return out;
    }
    out.api_version = Scalar(root["apiVersion"]);
    out.kind = Scalar(root["kind"]);
    const YAML::Node metadata = root["metadata"];
    if (metadata && metadata.IsMap()) out.name = Scalar(metadata["name"]);
    out.kind_line = document.first_line;
    if (const YAML::Node kind = root["kind"]; kind && kind.Mark().line >= 0) {
      out.kind_line = document.first_line + kind.Mark().line;
    }
  } catch (const YAML::Exception& e) {
    const int line = document.first_line + std::max(e.mark.line, 0);
    const int column = std::max(e.mark.column, 0) + 1;
    out = DocumentKind{};
    out.error = document.file + ":" + std::to_string(line) + ":" + std::to_string(column) +
                ": invalid YAML: " + e.msg;
  }
  return out;
}

Outcome<std::vector<DocumentText>> ReadDocuments(const std::vector<std::string>& paths,
                                                 const std::string& stdin_text) {
  namespace fs = std::filesystem;
  std::vector<DocumentText> out;
  const auto add = [&](const std::string& text, const std::string& file) {
    for (DocumentText& document : SplitDocuments(text, file)) out.push_back(std::move(document));
  };
  for (const std::string& path : paths) {
    if (path == "-") {
      add(stdin_text, "<stdin>");
      continue;
    }
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
      std::vector<fs::path> files;
      for (fs::recursive_directory_iterator it(path, ec), end; !ec && it != end;
           it.increment(ec)) {
        if (it->is_regular_file(ec) && IsManifestFile(it->path())) files.push_back(it->path());
      }
      if (ec) return Failure::Stalled("BadPath", "cannot read " + path + ": " + ec.message());
      std::sort(files.begin(), files.end());
      for (const fs::path& file : files) {
        Outcome<std::string> text = ReadFile(file);
        if (!text) return text.failure();
        add(*text, file.string());
      }
      continue;
    }
    if (!fs::exists(path, ec)) return Failure::Stalled("BadPath", path + " does not exist");
    Outcome<std::string> text = ReadFile(path);
    if (!text) return text.failure();
    add(*text, path);
  }
  return out;
}

std::string Finding::Format() const {
  std::string out = file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": ";
  if (!field.empty()) out += field + ": ";
  return out + OneLine(message);
}

std::vector<Finding> ParseFindings(std::string_view array_json) {
  std::vector<Finding> out;
  const std::optional<detail::json::value> parsed = detail::ParseJson(array_json);
  if (!parsed || !parsed->is_array()) return out;
  for (const detail::json::value& item : parsed->get_array()) {
    if (!item.is_object()) continue;
    const auto number = [&](std::string_view key) {
      const detail::json::value* value = detail::At(item, {key});
      if (value == nullptr) return 0;
      if (const std::int64_t* n = value->if_int64()) return static_cast<int>(*n);
      if (const std::uint64_t* n = value->if_uint64()) return static_cast<int>(*n);
      return 0;
    };
    out.push_back(Finding{detail::Text(detail::At(item, {"file"})), number("line"),
                          number("column"), detail::Text(detail::At(item, {"field"})),
                          detail::Text(detail::At(item, {"message"})),
                          detail::Text(detail::At(item, {"severity"}))});
  }
  return out;
}

LineMap LineMap::Join(const std::vector<DocumentText>& documents, std::string& body) {
  LineMap map;
  body.clear();
  int body_line = 1;
  for (const DocumentText& document : documents) {
    std::string text = document.text;
    if (text.empty() || text.back() != '\n') text += '\n';
    const int lines = static_cast<int>(std::count(text.begin(), text.end(), '\n'));
    // Documents that do not start with their own marker are separated by one: without it two
    // files' documents would run together. The marker line belongs to no file.
    if (!body.empty() && !IsDocumentMarker(text, "---")) {
      body += "---\n";
      ++body_line;
    }
    map.spans_.push_back(Span{body_line, lines, document.file, document.first_line});
    body += text;
    body_line += lines;
  }
  return map;
}

Finding LineMap::Map(Finding finding) const {
  for (const Span& span : spans_) {
    if (finding.line >= span.body_first && finding.line < span.body_first + span.lines) {
      finding.file = span.file;
      finding.line = span.file_first + (finding.line - span.body_first);
      return finding;
    }
  }
  if (!spans_.empty()) finding.file = spans_.front().file;
  return finding;
}

}  // namespace tmaster::cli
