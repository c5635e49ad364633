#pragma once

// PgBouncerServer: Debian's real PgBouncer (/usr/sbin/pgbouncer, 1.18) for one integration test,
// beside PgServer (tests/support/pg_server.hpp). It reads the two files the operator writes for
// the pooler (docs/architecture.md, issue 17): its `pgbouncer.ini` `%include`s the given
// `databases.ini` and names the given `userlist.txt` as `auth_file`, with
// `auth_type = scram-sha-256`, so a client logs in with its own password and PgBouncer logs in to
// PostgreSQL by SCRAM pass-through.
//
// - PgBouncer refuses to run as root: as root it runs as the `postgres` user (runuser), and its
//   folder (a mkdtemp under /tmp: pgbouncer.ini, the pid file, the log, the Unix socket) belongs
//   to `postgres`. The two given files and every folder above them must be readable by
//   `postgres`: GiveToPostgres(folder) hands a test's folder over.
// - It listens on a free TCP port of 127.0.0.1 and on a Unix socket in its folder.
// - A watchdog process kills PgBouncer and removes its folder when the test binary dies.
// - The admin console (`dbname=pgbouncer`) admits the user `pgbouncer` over the Unix socket from
//   a client running as PgBouncer's own OS user, and no one else (PgBouncer's rule; the
//   auth_file holds tenant roles only). A test running as root reaches it inside an
//   AsPostgresUser scope. Reload by SIGHUP needs nothing: root may signal any process.
//
// Children are spawned with an argument vector, never a shell. Every method throws
// std::runtime_error (with the tail of PgBouncer's log) when it cannot do its job.

#include <sys/types.h>

#include <chrono>
#include <string>

namespace tmaster::testing {

struct PgBouncerOptions {
  std::string databases_ini;  ///< absolute path of the `[databases]` file to `%include`
  std::string userlist;       ///< absolute path of the `auth_file`
  std::string pool_mode = "session";
  int max_client_conn = 500;
  int default_pool_size = 20;
};

class PgBouncerServer {
 public:
  /// Prepares the folder and pgbouncer.ini and starts the watchdog; does not start PgBouncer.
  explicit PgBouncerServer(PgBouncerOptions options);
  /// Stops PgBouncer (if running) and removes its folder.
  ~PgBouncerServer();
  PgBouncerServer(const PgBouncerServer&) = delete;
  PgBouncerServer& operator=(const PgBouncerServer&) = delete;

  /// Starts PgBouncer (`pgbouncer -d`) and waits until it accepts TCP connections.
  void Start();
  /// SIGTERM (immediate shutdown), then SIGKILL after 5 s; waits until the process is gone.
  void Stop();
  /// Waits until PgBouncer accepts a TCP connection on port(); false after `timeout`.
  [[nodiscard]] bool WaitReady(std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  [[nodiscard]] bool running() const { return running_; }

  [[nodiscard]] int port() const { return port_; }
  /// PgBouncer's folder (its socket directory), owned by `postgres`.
  [[nodiscard]] const std::string& dir() const { return dir_; }
  [[nodiscard]] std::string pid_file() const { return dir_ + "/pgbouncer.pid"; }
  [[nodiscard]] std::string ini_file() const { return dir_ + "/pgbouncer.ini"; }
  /// The pid PgBouncer wrote to pid_file(); -1 when there is none.
  [[nodiscard]] pid_t pid() const;

  /// `host=<dir> port=P user=pgbouncer dbname=pgbouncer`: the admin console over the Unix
  /// socket. Admitted only from PgBouncer's OS user: as root, use it inside AsPostgresUser.
  [[nodiscard]] std::string AdminDsn() const;
  /// A client's DSN through PgBouncer over TCP (so SCRAM is checked):
  /// `host=127.0.0.1 port=P user=... password=... dbname=... connect_timeout=5`, values quoted.
  [[nodiscard]] std::string Dsn(const std::string& user, const std::string& password,
                                const std::string& dbname) const;
  /// PgBouncer's log, for failure messages.
  [[nodiscard]] std::string Log() const;

 private:
  void StartWatchdog();

  PgBouncerOptions options_;
  std::string dir_;
  int port_ = 0;
  bool running_ = false;
  bool as_root_ = false;
  pid_t watchdog_ = -1;
  int watchdog_fd_ = -1;
};

/// Hands `path` (a file, or a folder and everything in it) to the `postgres` user (chown), and
/// makes every folder above it searchable by others (adds o+x, never o+r), so PgBouncer running
/// as `postgres` can read the operator's files a test wrote there. No-op when not root.
void GiveToPostgres(const std::string& path);

/// While alive, this thread's process runs with the effective uid and gid of `postgres`
/// (seteuid/setegid; restored by the destructor), so a Unix-socket connection made meanwhile
/// reaches PgBouncer's admin console as its own OS user. No-op when not root.
class AsPostgresUser {
 public:
  AsPostgresUser();
  ~AsPostgresUser();
  AsPostgresUser(const AsPostgresUser&) = delete;
  AsPostgresUser& operator=(const AsPostgresUser&) = delete;

 private:
  bool switched_ = false;
};

}  // namespace tmaster::testing
