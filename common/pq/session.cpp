#include "common/pq/session.hpp"

#include <utility>

#include "common/pq/dsn.hpp"
#include "common/pq/sqlstate.hpp"
#include "common/text.hpp"

namespace tmaster::pq {
namespace {

bool Has(std::string_view text, std::string_view part) {
  return text.find(part) != std::string_view::npos;
}

Outcome<ResultPtr> ExecValues(PGconn* conn, std::string_view sql,
                              const std::vector<const char*>& values, const Scrubber& scrub) {
  ResultPtr result(PQexecParams(conn, std::string(sql).c_str(), static_cast<int>(values.size()),
                                nullptr, values.data(), nullptr, nullptr, 0));
  return Check(conn, std::move(result), scrub);
}

}  // namespace

std::string SessionOptions(std::chrono::milliseconds statement_timeout,
                           std::chrono::milliseconds lock_timeout, std::string_view search_path) {
  std::string options = "-c statement_timeout=" + std::to_string(statement_timeout.count()) +
                        " -c lock_timeout=" + std::to_string(lock_timeout.count());
  if (!search_path.empty()) options += " -c search_path=" + std::string(search_path);
  return options;
}

Outcome<ConnPtr> Connect(const Secret& dsn, const std::string& dbname,
                         std::span<const ConnectParam> params, const Scrubber& scrub,
                         std::string_view where) {
  // The DSN as the first `dbname` (expanded, expand_dbname = 1), then the database, then the
  // caller's parameters.
  std::vector<const char*> keywords = {"dbname", "dbname"};
  std::vector<const char*> values = {dsn.Reveal().c_str(), dbname.c_str()};
  std::string options;  // the DSN's `options`, then the caller's
  for (const ConnectParam& param : params) {
    keywords.push_back(param.keyword);
    values.push_back(param.value);
    if (std::string_view(param.keyword) != "options") continue;
    const std::optional<DsnParts> parts = ParseDsn(dsn);
    if (!parts || parts->options.empty()) continue;
    options = parts->options + " " + param.value;
    values.back() = options.c_str();
  }
  keywords.push_back(nullptr);
  values.push_back(nullptr);
  ConnPtr conn(PQconnectdbParams(keywords.data(), values.data(), 1));
  if (conn && PQstatus(conn.get()) == CONNECTION_OK) {
    // libpq prints NOTICEs ("already exists, skipping") to stderr by default; a library must
    // not write to the operator's stderr behind its logger's back.
    SilenceNotices(conn.get());
    return conn;
  }
  const std::string error = conn ? OneLine(scrub(PQerrorMessage(conn.get()))) : "out of memory";
  std::string message = "could not connect to " + std::string(where) + ": " + error;
  // libpq reports a refused login only as text; these are the server's own (English) words.
  if (Has(error, "password authentication failed") || Has(error, "no pg_hba.conf entry") ||
      Has(error, "role \"")) {
    return Failure::Stalled("AuthenticationFailed", std::move(message));
  }
  if (Has(error, "database \"") && Has(error, "does not exist")) {
    return Failure::Stalled("DatabaseMissing", std::move(message));
  }
  return Failure::Transient("ConnectionFailed", std::move(message));
}

Failure ResultFailure(PGconn* conn, const PGresult* result, const Scrubber& scrub,
                      std::string_view suffix, bool redact_quoted) {
  const char* sqlstate = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  const char* primary =
      result != nullptr ? PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
  if (sqlstate == nullptr || primary == nullptr) {
    return Classify("", OneLine(scrub(PQerrorMessage(conn))));
  }
  const char* severity = PQresultErrorField(result, PG_DIAG_SEVERITY_NONLOCALIZED);
  const char* constraint = PQresultErrorField(result, PG_DIAG_CONSTRAINT_NAME);
  std::string message = std::string(severity != nullptr ? severity : "ERROR") + ": " +
                        OneLine(redact_quoted ? RedactQuoted(scrub(primary)) : scrub(primary)) +
                        " (SQLSTATE " + sqlstate + std::string(suffix) +
                        ")";
  return Classify(sqlstate, std::move(message), constraint != nullptr ? constraint : "");
}

Outcome<ResultPtr> Check(PGconn* conn, ResultPtr result, const Scrubber& scrub) {
  const ExecStatusType status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;
  return ResultFailure(conn, result.get(), scrub);
}

Outcome<ResultPtr> ExecParams(PGconn* conn, std::string_view sql,
                              const std::vector<std::optional<std::string>>& params,
                              const Scrubber& scrub) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& param : params) values.push_back(param ? param->c_str() : nullptr);
  return ExecValues(conn, sql, values, scrub);
}

Outcome<ResultPtr> ExecParams(PGconn* conn, std::string_view sql,
                              const std::vector<std::string>& params, const Scrubber& scrub) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& param : params) values.push_back(param.c_str());
  return ExecValues(conn, sql, values, scrub);
}

}  // namespace tmaster::pq
