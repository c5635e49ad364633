#pragma once

// DaemonProcess: a long-running child (the built tenant-operator) for end-to-end tests. Spawned
// with fork + execve and an argument vector (never a shell), its stdout and stderr appended to
// one log file the test reads back (log lines, the HTTP port). The destructor kills it, so a
// failed assertion never leaves a daemon behind. Like tools/portainer-sim/sim_process.hpp, the
// child gets SIGKILL if the thread that started it ends first (PR_SET_PDEATHSIG): start it from
// the test's own thread.

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tmaster::testing {

class DaemonProcess {
 public:
  struct Options {
    std::vector<std::string> argv;           ///< argv[0] is the program's path
    std::map<std::string, std::string> env;  ///< added to (or overriding) this environment
    std::string log_file;                    ///< stdout + stderr are appended here
  };

  /// Starts the process; throws std::runtime_error when fork or the log file fails.
  explicit DaemonProcess(Options options);
  /// Kill() when still running.
  ~DaemonProcess();
  DaemonProcess(const DaemonProcess&) = delete;
  DaemonProcess& operator=(const DaemonProcess&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] const std::string& log_file() const { return options_.log_file; }

  /// Whether the child has not exited yet (reaps it when it has).
  bool Running();
  /// The whole log so far (this start and whatever the file held before).
  [[nodiscard]] std::string Log() const;
  /// The size of the log now: pass it as `from` to wait only for lines written after this point.
  [[nodiscard]] std::size_t LogSize() const;

  /// The first complete log line at or after byte `from` containing `needle`, waiting up to
  /// `timeout`; nullopt on timeout or when the process exits without printing it.
  std::optional<std::string> WaitForLine(const std::string& needle,
                                         std::chrono::milliseconds timeout, std::size_t from = 0);
  /// Waits for the daemon's `serving http://... (port N)` line and returns N; 0 on timeout.
  int WaitForHttpPort(std::chrono::milliseconds timeout = std::chrono::seconds(30));

  /// SIGTERM, then SIGKILL after `grace`; returns the exit code (128+signal when killed by one),
  /// or the code already collected when the process had ended.
  int Terminate(std::chrono::milliseconds grace = std::chrono::seconds(20));
  /// SIGKILL at once; returns 128+9 (or the code already collected).
  int Kill();
  /// Waits up to `timeout` for the process to exit by itself; its exit code, or nullopt.
  std::optional<int> WaitExit(std::chrono::milliseconds timeout);

 private:
  Options options_;
  pid_t pid_ = -1;
  int exit_code_ = -1;
};

}  // namespace tmaster::testing
