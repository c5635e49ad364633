#include "tests/support/pg_server.hpp"

#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "common/crypto.hpp"
#include "common/pq_handles.hpp"
#include "tests/support/process.hpp"
#include "tests/support/server_support.hpp"

namespace tmaster::testing {
namespace {

namespace fs = std::filesystem;

using pq::ConnPtr;
using pq::ResultPtr;

std::string FindBindir() {
  if (const char* env = std::getenv("TM_PG_BINDIR"); env != nullptr && *env != '\0') return env;
  if (fs::exists("/usr/lib/postgresql/15/bin/initdb")) return "/usr/lib/postgresql/15/bin";
  std::string pg_config = FindOnPath("pg_config");
  if (!pg_config.empty()) {
    ProcessResult result = RunProcess({pg_config, "--bindir"});
    std::string dir = result.out.substr(0, result.out.find('\n'));
    if (result.exit_code == 0 && fs::exists(fs::path(dir) / "initdb")) return dir;
  }
  throw std::runtime_error(
      "PostgreSQL server binaries not found: set TM_PG_BINDIR or install postgresql-15");
}

ConnPtr Open(const std::string& dsn) {
  ConnPtr conn(PQconnectdb(dsn.c_str()));
  if (!conn || PQstatus(conn.get()) != CONNECTION_OK) {
    throw std::runtime_error(std::string("cannot connect: ") +
                             (conn ? PQerrorMessage(conn.get()) : "out of memory"));
  }
  pq::SilenceNotices(conn.get());  // keep test output readable
  return conn;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

PgServer::PgServer() : bindir_(FindBindir()), as_root_(geteuid() == 0) {
  std::string dir = (fs::temp_directory_path() / "tm-pg.XXXXXX").string();
  if (mkdtemp(dir.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = dir;
  data_ = dir_ + "/data";
  password_ = crypto::Hex(crypto::RandomBytes(16));
  port_ = FreePort();
  StartWatchdog();

  const std::string pwfile = dir_ + "/pwfile";
  std::ofstream(pwfile) << password_ << "\n";
  if (as_root_) {
    const passwd& postgres = PostgresUser();
    ChownTo(dir_, postgres);
    ChownTo(pwfile, postgres);
  }
  ProcessResult init = RunProcess(
      AsPostgres({bindir_ + "/initdb", "-D", data_, "-U", "postgres", "--auth-local=trust",
                  "--auth-host=scram-sha-256", "--pwfile=" + pwfile, "-E", "UTF8",
                  "--locale=C.UTF-8", "--no-sync", "--no-instructions"}));
  fs::remove(pwfile);
  if (init.exit_code != 0) throw std::runtime_error("initdb failed: " + init.out + init.err);

  std::ofstream conf(data_ + "/postgresql.conf", std::ios::app);
  conf << "\n# tests/support/pg_server.cpp\n"
       << "listen_addresses = '127.0.0.1'\n"
       << "port = " << port_ << "\n"
       << "unix_socket_directories = '" << dir_ << "'\n"
       << "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
       << "shared_preload_libraries = 'pg_stat_statements'\n"
       << "pg_stat_statements.track_utility = on\n"
       << "max_connections = 200\nshared_buffers = 32MB\n";
  conf.close();
  Start();
  Execute(Dsn("postgres"), "CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
}

PgServer::~PgServer() {
  if (running_) {
    try {
      PgCtl({"stop", "-m", "immediate"});
    } catch (const std::exception&) {  // the watchdog below still cleans up
    }
  }
  std::error_code ignored;
  fs::remove_all(dir_, ignored);
  ReleaseWatchdog({watchdog_, watchdog_fd_});
}

PgServer& PgServer::Shared() {
  static PgServer server;
  return server;
}

std::string PgServer::Dsn(const std::string& dbname) const {
  return DsnAs("postgres", password_, dbname);
}

std::string PgServer::DsnAs(const std::string& user, const std::string& password,
                            const std::string& dbname) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=" + ConninfoValue(user) +
         " password=" + ConninfoValue(password) + " dbname=" + ConninfoValue(dbname) +
         " connect_timeout=5";
}

void PgServer::Start() {
  PgCtl({"start", "-w", "-t", "60", "-l", dir_ + "/server.log"});
  running_ = true;
}

void PgServer::Stop() {
  PgCtl({"stop", "-w", "-m", "fast"});
  running_ = false;
}

void PgServer::Restart() {
  PgCtl({"restart", "-w", "-t", "60", "-m", "fast", "-l", dir_ + "/server.log"});
  running_ = true;
}

std::string PgServer::Log() const {
  std::ifstream in(dir_ + "/server.log");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void PgServer::PgCtl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {bindir_ + "/pg_ctl", "-D", data_};
  argv.insert(argv.end(), args.begin(), args.end());
  ProcessResult result = RunProcess(AsPostgres(argv));
  if (result.exit_code != 0) {
    throw std::runtime_error("pg_ctl " + args.front() + " failed: " + result.out + result.err +
                             "\n" + Tail(Log(), 20));
  }
}

std::vector<std::string> PgServer::AsPostgres(std::vector<std::string> argv) const {
  if (!as_root_) return argv;
  return RunuserPostgres(std::move(argv));
}

// If the test binary dies, the watchdog (tests/support/server_support.hpp) stops the server and
// removes the folder.
void PgServer::StartWatchdog() {
  const Watchdog watchdog =
      SpawnWatchdog({AsPostgres({bindir_ + "/pg_ctl", "-D", data_, "stop", "-m", "immediate", "-w"}),
                     {FindOnPath("rm"), "-rf", dir_}});
  watchdog_ = watchdog.pid;
  watchdog_fd_ = watchdog.fd;
}

// ---------------------------------------------------------------------------------------------

std::vector<Row> Query(const std::string& dsn, const std::string& sql,
                       const std::vector<std::string>& params) {
  ConnPtr conn = Open(dsn);
  std::vector<const char*> values;
  for (const auto& param : params) values.push_back(param.c_str());
  ResultPtr result(PQexecParams(conn.get(), sql.c_str(), static_cast<int>(values.size()), nullptr,
                                values.data(), nullptr, nullptr, 0));
  ExecStatusType status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    throw std::runtime_error("query failed: " + sql + ": " + PQerrorMessage(conn.get()));
  }
  std::vector<Row> rows;
  for (int r = 0; r < PQntuples(result.get()); ++r) {
    Row row;
    for (int c = 0; c < PQnfields(result.get()); ++c) {
      row.emplace_back(PQgetisnull(result.get(), r, c) != 0 ? "<null>"
                                                            : PQgetvalue(result.get(), r, c));
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::string QueryValue(const std::string& dsn, const std::string& sql,
                       const std::vector<std::string>& params) {
  std::vector<Row> rows = Query(dsn, sql, params);
  if (rows.empty() || rows.front().empty()) return "<none>";
  return rows.front().front();
}

void Execute(const std::string& dsn, const std::string& sql) {
  ConnPtr conn = Open(dsn);
  ResultPtr result(PQexec(conn.get(), sql.c_str()));
  ExecStatusType status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    throw std::runtime_error("script failed: " + sql + ": " + PQerrorMessage(conn.get()));
  }
}

std::string ConnectError(const std::string& dsn) {
  // Bounded whatever `dsn` says (a binding's URI has no connect_timeout): PgBouncer can leave a
  // client in its login forever when a reload drops the database meanwhile (CI's ASan run hung
  // 15 minutes in shared_tenants_itest's suspend case that way). Later keywords override `dsn`'s.
  const char* keywords[] = {"dbname", "connect_timeout", nullptr};
  const char* values[] = {dsn.c_str(), "10", nullptr};
  ConnPtr conn(PQconnectdbParams(keywords, values, /*expand_dbname=*/1));
  if (!conn) return "out of memory";
  if (PQstatus(conn.get()) == CONNECTION_OK) return {};
  std::string error = PQerrorMessage(conn.get());
  return error.empty() ? "connection failed" : error;
}

PgSession::PgSession(const std::string& dsn) : conn_(Open(dsn).release()) {}

PgSession::~PgSession() { PQfinish(conn_); }

std::string PgSession::Run(const std::string& sql) {
  PGconn* conn = conn_;
  ResultPtr result(PQexec(conn, sql.c_str()));
  ExecStatusType status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
  if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) return {};
  std::string error = PQerrorMessage(conn);
  return error.empty() ? "failed" : error;
}

void ResetStatementStats(const std::string& dsn) {
  Execute(dsn, "SELECT pg_stat_statements_reset()");
}

std::vector<StatementStat> ReadStatementStats(const std::string& dsn) {
  std::vector<StatementStat> stats;
  for (const Row& row : Query(dsn,
                              "SELECT query, sum(calls)::bigint FROM pg_stat_statements"
                              " WHERE query NOT LIKE '%pg_stat_statements%'"
                              " GROUP BY query ORDER BY query")) {
    stats.push_back({row[0], std::stol(row[1])});
  }
  return stats;
}

long CountDdl(const std::vector<StatementStat>& stats) {
  static const char* const kDdl[] = {"CREATE",  "ALTER",    "DROP",     "GRANT",         "REVOKE",
                                     "COMMENT", "TRUNCATE", "REASSIGN", "SECURITY LABEL"};
  long calls = 0;
  for (const auto& stat : stats) {
    std::string head =
        stat.query.substr(stat.query.find_first_not_of(" \t\r\n") == std::string::npos
                              ? 0
                              : stat.query.find_first_not_of(" \t\r\n"));
    std::transform(head.begin(), head.end(), head.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    for (const char* keyword : kDdl) {
      if (head.rfind(keyword, 0) == 0) {
        calls += stat.calls;
        break;
      }
    }
  }
  return calls;
}

long CountCalls(const std::vector<StatementStat>& stats) {
  long calls = 0;
  for (const auto& stat : stats) calls += stat.calls;
  return calls;
}

}  // namespace tmaster::testing
