#include "reconcilers/backups/restore_plan.hpp"

#include <array>
#include <cctype>
#include <cstddef>

namespace tmaster::backups {
namespace {

std::vector<std::string_view> Tokens(std::string_view text) {
  std::vector<std::string_view> tokens;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r')) ++i;
    const std::size_t start = i;
    while (i < text.size() && text[i] != ' ' && text[i] != '\t' && text[i] != '\r') ++i;
    if (i > start) tokens.push_back(text.substr(start, i - start));
  }
  return tokens;
}

// pg_dump's object descriptions of more than one word (pg_backup_archiver.c, pg_dump.c), longest
// first where one begins another.
constexpr std::array<std::string_view, 20> kLongDescriptions = {
    "MATERIALIZED VIEW DATA",    "PUBLICATION TABLES IN SCHEMA", "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY",    "TEXT SEARCH PARSER",           "TEXT SEARCH TEMPLATE",
    "FOREIGN DATA WRAPPER",      "SEQUENCE OWNED BY",            "OPERATOR CLASS",
    "OPERATOR FAMILY",           "MATERIALIZED VIEW",            "PROCEDURAL LANGUAGE",
    "PUBLICATION TABLE",         "DATABASE PROPERTIES",          "TABLE DATA",
    "SEQUENCE SET",              "FK CONSTRAINT",                "DEFAULT ACL",
    "CHECK CONSTRAINT",          "ROW SECURITY"};

bool IsOperatorSchema(std::string_view name) {
  return name == kLedgerSchema || name == kExtensionSchema;
}

// Whether the entry (the text after "<id>; <tableoid> <oid> ") is the operator's; sets
// `extension` and `ledger_data`.
bool IsOperatorEntry(std::string_view entry, bool& extension, bool& ledger_data) {
  const std::vector<std::string_view> tokens = Tokens(entry);
  if (tokens.empty()) return false;
  std::size_t words = 1;
  for (const std::string_view description : kLongDescriptions) {
    const std::vector<std::string_view> parts = Tokens(description);
    if (parts.size() > tokens.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < parts.size() && same; ++i) same = parts[i] == tokens[i];
    if (same) {
      words = parts.size();
      break;
    }
  }
  std::string description;
  for (std::size_t i = 0; i < words; ++i) {
    if (i > 0) description += ' ';
    description += tokens[i];
  }
  // <description> <namespace> <tag...> <owner>, the owner missing for some (an extension's
  // comment): `after` is everything after the namespace.
  if (tokens.size() < words + 2) return false;
  const std::string_view space = tokens[words];
  const std::vector<std::string_view> after(tokens.begin() + static_cast<std::ptrdiff_t>(words) + 1,
                                            tokens.end());
  if (description == "EXTENSION") {
    extension = true;
    return true;
  }
  if (IsOperatorSchema(space)) {
    if (description == "TABLE DATA" && space == kLedgerSchema && !after.empty() &&
        after.front() == "schema_migrations") {
      ledger_data = true;
    }
    return true;
  }
  if (description == "SCHEMA" && !after.empty() && IsOperatorSchema(after.front())) return true;
  if ((description == "COMMENT" || description == "ACL") && !after.empty()) {
    if (after[0] == "EXTENSION") return true;
    if (after[0] == "SCHEMA" && after.size() >= 2 && IsOperatorSchema(after[1])) return true;
  }
  return false;
}

Failure Unreadable(std::string_view what, std::string_view text) {
  std::string start(text.substr(0, 80));
  return Failure::Stalled("BackupRestoreFailed",
                          std::string(what) + " cannot be read: \"" + start + "\"");
}

// One SQL identifier at `text[i]`: "quoted" (with "" inside) or plain; advances `i`.
std::optional<std::string> Identifier(std::string_view text, std::size_t& i) {
  if (i >= text.size()) return std::nullopt;
  std::string name;
  if (text[i] == '"') {
    ++i;
    for (;;) {
      if (i >= text.size()) return std::nullopt;
      if (text[i] == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          name += '"';
          i += 2;
          continue;
        }
        ++i;
        break;
      }
      name += text[i++];
    }
    return name.empty() ? std::nullopt : std::optional<std::string>(name);
  }
  while (i < text.size()) {
    const char c = text[i];
    const bool plain = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '$' ||
                       static_cast<unsigned char>(c) >= 0x80;
    if (!plain) break;
    name += c;
    ++i;
  }
  return name.empty() ? std::nullopt : std::optional<std::string>(name);
}

bool Expect(std::string_view text, std::size_t& i, std::string_view literal) {
  if (text.substr(i, literal.size()) != literal) return false;
  i += literal.size();
  return true;
}

// COPY's text format: \N alone is no value; backslash escapes.
std::optional<std::string> CopyField(std::string_view field) {
  if (field == "\\N") return std::nullopt;
  std::string value;
  value.reserve(field.size());
  for (std::size_t i = 0; i < field.size(); ++i) {
    if (field[i] != '\\' || i + 1 == field.size()) {
      value += field[i];
      continue;
    }
    const char c = field[++i];
    switch (c) {
      case 'b': value += '\b'; break;
      case 'f': value += '\f'; break;
      case 'n': value += '\n'; break;
      case 'r': value += '\r'; break;
      case 't': value += '\t'; break;
      case 'v': value += '\v'; break;
      case 'x': {
        int digit_count = 0;
        int byte = 0;
        while (digit_count < 2 && i + 1 < field.size() && std::isxdigit(static_cast<unsigned char>(field[i + 1]))) {
          const char h = field[++i];
          byte = byte * 16 + (h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
          ++digit_count;
        }
        if (digit_count == 0) {
          value += 'x';
        } else {
          value += static_cast<char>(byte);
        }
        break;
      }
      default:
        if (c >= '0' && c <= '7') {
          int byte = c - '0';
          for (int n = 0; n < 2 && i + 1 < field.size() && field[i + 1] >= '0' && field[i + 1] <= '7';
               ++n) {
            byte = byte * 8 + (field[++i] - '0');
          }
          value += static_cast<char>(byte & 0xff);
        } else {
          value += c;
        }
    }
  }
  return value;
}

std::vector<std::string_view> SplitLines(std::string_view text) {
  std::vector<std::string_view> lines;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

}  // namespace

std::string TocPlan::TenantToc() const {
  std::string text;
  for (const std::string& line : tenant_lines) {
    text += line;
    text += '\n';
  }
  return text;
}

void TocPlan::GiveBack(std::size_t n) {
  if (n >= extension_lines.size()) return;
  std::string& line = tenant_lines[extension_lines[n]];
  if (!line.empty() && line.front() == ';') {
    line.erase(0, 1);
    --operator_entries;
  }
}

TocPlan PlanTenantRestore(std::string_view toc) {
  TocPlan plan;
  for (const std::string_view line : SplitLines(toc)) {
    const std::size_t semicolon = line.find("; ");
    bool extension = false;
    bool ledger = false;
    bool operators = false;
    if (!line.empty() && line.front() != ';' && semicolon != std::string_view::npos) {
      // "<id>; <tableoid> <oid> <entry>"
      std::string_view entry = line.substr(semicolon + 2);
      for (int skipped = 0; skipped < 2; ++skipped) {  // the two oids
        const std::size_t word = entry.find_first_not_of(' ');
        const std::size_t space = word == entry.npos ? entry.npos : entry.find(' ', word);
        entry = space == entry.npos ? std::string_view() : entry.substr(space);
      }
      operators = !entry.empty() && IsOperatorEntry(entry, extension, ledger);
    }
    if (!operators) {
      plan.tenant_lines.emplace_back(line);
      continue;
    }
    ++plan.operator_entries;
    plan.tenant_lines.push_back(";" + std::string(line));
    if (extension) plan.extension_lines.push_back(plan.tenant_lines.size() - 1);
    if (extension || ledger) {
      plan.operator_toc.append(line);
      plan.operator_toc += '\n';
    }
    plan.has_ledger_data = plan.has_ledger_data || ledger;
  }
  return plan;
}

Outcome<std::vector<ExtensionDecl>> ParseCreateExtensions(std::string_view sql) {
  constexpr std::string_view kCreate = "CREATE EXTENSION IF NOT EXISTS ";
  std::vector<ExtensionDecl> found;
  for (const std::string_view line : SplitLines(sql)) {
    if (line.substr(0, kCreate.size()) != kCreate) continue;
    std::size_t i = kCreate.size();
    ExtensionDecl decl;
    auto name = Identifier(line, i);
    if (!name || !Expect(line, i, " WITH SCHEMA ")) return Unreadable("CREATE EXTENSION", line);
    auto schema = Identifier(line, i);
    if (!schema || !Expect(line, i, ";") || i != line.size()) {
      return Unreadable("CREATE EXTENSION", line);
    }
    found.push_back({std::move(*name), std::move(*schema)});
  }
  return found;
}

Outcome<CopyRows> ParseCopyBlock(std::string_view sql, std::string_view table) {
  const std::string header = "COPY " + std::string(table) + " (";
  CopyRows block;
  const std::vector<std::string_view> lines = SplitLines(sql);
  std::size_t at = 0;
  while (at < lines.size() && lines[at].substr(0, header.size()) != header) ++at;
  if (at == lines.size()) return block;
  const std::string_view first = lines[at];
  std::size_t i = header.size();
  for (;;) {
    auto column = Identifier(first, i);
    if (!column) return Unreadable("COPY " + std::string(table), first);
    block.columns.push_back(std::move(*column));
    if (Expect(first, i, ", ")) continue;
    if (Expect(first, i, ") FROM stdin;") && i == first.size()) break;
    return Unreadable("COPY " + std::string(table), first);
  }
  for (++at; at < lines.size(); ++at) {
    const std::string_view line = lines[at];
    if (line == "\\.") return block;
    std::vector<std::optional<std::string>> row;
    std::size_t start = 0;
    for (;;) {
      const std::size_t tab = line.find('\t', start);
      row.push_back(CopyField(line.substr(start, tab == std::string_view::npos ? line.npos : tab - start)));
      if (tab == std::string_view::npos) break;
      start = tab + 1;
    }
    if (row.size() != block.columns.size()) {
      return Failure::Stalled("BackupRestoreFailed",
                              "COPY " + std::string(table) + ": a row has " +
                                  std::to_string(row.size()) + " fields, the header " +
                                  std::to_string(block.columns.size()));
    }
    block.rows.push_back(std::move(row));
  }
  return Failure::Stalled("BackupRestoreFailed",
                          "COPY " + std::string(table) + ": its data does not end (no \\.)");
}

}  // namespace tmaster::backups
