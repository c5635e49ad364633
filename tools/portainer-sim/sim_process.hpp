#pragma once

// SimProcess: runs the built `portainer-sim` binary as a child process for integration tests
// and benchmarks (fork + execve with an argument vector, never a shell), waits for its
// `listening on HOST:PORT` line, and stops it with SIGTERM (SIGKILL after a grace period).
// The child also gets SIGTERM if the thread that started it ends first (PR_SET_PDEATHSIG):
// start it from the main thread or from one that outlives it.

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace tmaster::tools::portainer_sim {

class SimProcess {
 public:
  struct Options {
    std::string binary;             ///< path of portainer-sim, e.g. TM_BINARY_DIR "/portainer-sim"
    std::vector<std::string> args;  ///< extra arguments; `--listen 127.0.0.1:0` is added first
    std::map<std::string, std::string> env;  ///< added to (or overriding) this environment
    std::chrono::milliseconds startup_timeout{15000};
  };

  /// Starts the simulator; throws std::runtime_error when it does not print its port in time.
  explicit SimProcess(Options options);
  /// Stop().
  ~SimProcess();
  SimProcess(const SimProcess&) = delete;
  SimProcess& operator=(const SimProcess&) = delete;

  [[nodiscard]] int port() const { return port_; }
  [[nodiscard]] pid_t pid() const { return pid_; }
  /// `http://127.0.0.1:<port>`
  [[nodiscard]] std::string BaseUrl() const;

  /// SIGTERM, then SIGKILL after `grace`; returns the exit code (128+signal if killed), or the
  /// code of the first Stop() when called again.
  int Stop(std::chrono::milliseconds grace = std::chrono::milliseconds(10000));

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  int exit_code_ = -1;
};

}  // namespace tmaster::tools::portainer_sim
