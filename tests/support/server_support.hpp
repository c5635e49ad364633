#pragma once

// What the test servers (PgServer in pg_server.hpp, PgBouncerServer in pgbouncer_server.hpp)
// share: a free port, a readiness probe, the `postgres` user (both servers run as it when the
// tests run as root), conninfo quoting, log tails, argument vectors for exec, and the watchdog
// that cleans up after a test binary that died. Included by their .cpp files only.

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <vector>

struct passwd;

namespace tmaster::testing {

/// A TCP port of 127.0.0.1 that was free a moment ago (bound to port 0, then closed).
int FreePort();

/// True when something accepts a TCP connection on 127.0.0.1:`port` now.
bool Accepts(int port);

/// The `postgres` user; throws std::runtime_error when there is none.
const passwd& PostgresUser();

/// lchown(`path`) to `user`'s uid and gid; throws std::runtime_error when it fails.
void ChownTo(const std::string& path, const passwd& user);

/// A conninfo value, quoted so spaces, quotes and backslashes survive.
std::string ConninfoValue(const std::string& value);

/// The last `lines` lines of `text` (all of it when shorter).
std::string Tail(const std::string& text, std::size_t lines);

/// True while process `pid` exists (kill(pid, 0); EPERM counts as alive).
bool Alive(pid_t pid);

/// A NULL-terminated argv for execv pointing into `args` (which must outlive it).
std::vector<char*> Argv(std::vector<std::string>& args);

/// The first executable called `name` on PATH, then in /usr/sbin and /sbin; empty when none.
std::string FindOnPath(const std::string& name);

/// `argv` prefixed with `runuser -u postgres --`; throws std::runtime_error without runuser.
std::vector<std::string> RunuserPostgres(std::vector<std::string> argv);

/// A watchdog process: see SpawnWatchdog.
struct Watchdog {
  pid_t pid = -1;
  int fd = -1;  ///< the write end of its pipe
};

/// Forks a watchdog that waits on a pipe whose only writer is this process. EOF without the
/// "all done" byte (ReleaseWatchdog) means the test binary died: it SIGKILLs the pid written in
/// `pid_file` (when not empty), then runs each of `commands` in turn (argv, absolute program
/// path, stdio on /dev/null). Everything is prepared before fork(), so the child only calls
/// async-signal-safe functions. Throws std::runtime_error when it cannot start.
Watchdog SpawnWatchdog(std::vector<std::vector<std::string>> commands,
                       const std::string& pid_file = {});

/// Sends the "all done" byte and waits for the watchdog, which exits touching nothing. No-op for
/// a watchdog that was never spawned.
void ReleaseWatchdog(const Watchdog& watchdog);

}  // namespace tmaster::testing
