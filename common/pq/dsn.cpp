#include "common/pq/dsn.hpp"

#include <libpq-fe.h>

#include <utility>

#include "common/pq_handles.hpp"

namespace tmaster::pq {
namespace {

ConninfoPtr Parse(const Secret& dsn) {
  char* error = nullptr;
  ConninfoPtr options(PQconninfoParse(dsn.Reveal().c_str(), &error));
  Text never_shown(error);  // it can quote the DSN, password included
  return options;
}

// `'value'` for a conninfo string: backslash and single quote escaped with a backslash.
std::string QuoteConninfoValue(std::string_view value) {
  std::string out = "'";
  for (const char c : value) {
    if (c == '\\' || c == '\'') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

}  // namespace

std::optional<DsnParts> ParseDsn(const Secret& dsn) {
  const ConninfoPtr options = Parse(dsn);
  if (!options) return std::nullopt;
  DsnParts parts;
  std::string hostaddr;
  for (const PQconninfoOption* option = options.get(); option->keyword != nullptr; ++option) {
    if (option->val == nullptr) continue;
    const std::string_view keyword = option->keyword;
    if (keyword == "host") parts.host = option->val;
    if (keyword == "hostaddr") hostaddr = option->val;
    if (keyword == "port") parts.port = option->val;
    if (keyword == "user") parts.user = option->val;
    if (keyword == "dbname") parts.dbname = option->val;
    if (keyword == "password") parts.password = Secret(option->val);
    if (keyword == "options") parts.options = option->val;
  }
  if (parts.host.empty()) parts.host = std::move(hostaddr);
  return parts;
}

std::optional<Secret> DsnWith(const Secret& dsn, std::string_view keyword, std::string_view value) {
  const ConninfoPtr options = Parse(dsn);
  if (!options) return std::nullopt;
  std::string out;
  for (const PQconninfoOption* option = options.get(); option->keyword != nullptr; ++option) {
    if (option->val == nullptr || std::string_view(option->keyword) == keyword) continue;
    out += std::string(option->keyword) + "=" + QuoteConninfoValue(option->val) + " ";
  }
  out += std::string(keyword) + "=" + QuoteConninfoValue(value);
  return Secret(std::move(out));
}

}  // namespace tmaster::pq
