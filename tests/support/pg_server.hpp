#pragma once

// PgServer: a private PostgreSQL 15 for one integration-test binary (real-PostgreSQL integration
// tests beside the fakes: docs/architecture.md#interfaces-adapters-and-fakes). initdb into a fresh
// folder under /tmp, a free TCP port on 127.0.0.1, SCRAM for TCP logins, pg_stat_statements loaded
// so tests can count what was sent. As root, initdb and pg_ctl run as the `postgres` user
// (runuser); children are spawned with an argument vector, never a shell. A watchdog process stops
// the server and removes the folder even when the test binary is killed or crashes.

#include <sys/types.h>

#include <string>
#include <vector>

struct pg_conn;  // libpq's PGconn, declared so libpq-fe.h stays out of this header

namespace tmaster::testing {

class PgServer {
 public:
  /// initdb + start; throws std::runtime_error (with the server log's tail) when it cannot.
  PgServer();
  /// Stops the server and removes its folder.
  ~PgServer();
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  /// One server for the whole test binary, started on first use, stopped at exit.
  static PgServer& Shared();

  /// `host=127.0.0.1 port=P user=postgres password=... dbname=<dbname>`
  [[nodiscard]] std::string Dsn(const std::string& dbname = "postgres") const;
  /// The same server, as another user with its password (TCP, so SCRAM is checked).
  [[nodiscard]] std::string DsnAs(const std::string& user, const std::string& password,
                                  const std::string& dbname) const;
  [[nodiscard]] int port() const { return port_; }
  /// The superuser's password (random per server).
  [[nodiscard]] const std::string& password() const { return password_; }
  [[nodiscard]] bool running() const { return running_; }

  void Start();
  void Stop();
  /// Stops and starts again (`pg_ctl restart -m fast`): every open session is cut.
  void Restart();
  /// The server log, for failure messages.
  [[nodiscard]] std::string Log() const;

 private:
  void PgCtl(const std::vector<std::string>& args);
  [[nodiscard]] std::vector<std::string> AsPostgres(std::vector<std::string> argv) const;
  void StartWatchdog();

  std::string bindir_;
  std::string dir_;
  std::string data_;
  std::string password_;
  int port_ = 0;
  bool running_ = false;
  bool as_root_ = false;
  pid_t watchdog_ = -1;
  int watchdog_fd_ = -1;
};

using Row = std::vector<std::string>;

/// Runs one statement (with `$1`... parameters) and returns its rows as text; NULL reads as
/// `<null>`. Throws std::runtime_error with the server's message on failure.
std::vector<Row> Query(const std::string& dsn, const std::string& sql,
                       const std::vector<std::string>& params = {});
/// The first column of the first row, or `<none>` without rows.
std::string QueryValue(const std::string& dsn, const std::string& sql,
                       const std::vector<std::string>& params = {});
/// Runs a script (several statements allowed). Throws on failure.
void Execute(const std::string& dsn, const std::string& sql);
/// Empty when a session can be opened with `dsn` within 10 s (connect_timeout, whatever `dsn` says), else
/// libpq's error message.
std::string ConnectError(const std::string& dsn);

/// A held-open session, e.g. to prove that TerminateSessions cuts it.
class PgSession {
 public:
  explicit PgSession(const std::string& dsn);  ///< throws when it cannot connect
  ~PgSession();
  PgSession(const PgSession&) = delete;
  PgSession& operator=(const PgSession&) = delete;
  /// Runs `sql`; empty on success, else the error message (a cut session reports one).
  std::string Run(const std::string& sql);

 private:
  pg_conn* conn_;
};

/// One row of pg_stat_statements.
struct StatementStat {
  std::string query;
  long calls = 0;
};
/// `pg_stat_statements_reset()`: forget everything counted so far.
void ResetStatementStats(const std::string& dsn);
/// What the server ran since the last reset, without the statistics queries themselves.
std::vector<StatementStat> ReadStatementStats(const std::string& dsn);
/// Calls of statements that change the schema or privileges: CREATE, ALTER, DROP, GRANT,
/// REVOKE, COMMENT, TRUNCATE, REASSIGN, SECURITY LABEL.
long CountDdl(const std::vector<StatementStat>& stats);
/// Calls of every statement in `stats`.
long CountCalls(const std::vector<StatementStat>& stats);

}  // namespace tmaster::testing
