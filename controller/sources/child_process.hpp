#pragma once

// Running a helper program (git) to completion: an argument vector, never a shell; output
// captured; a deadline on a monotonic clock; the whole process group killed when it runs over.

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/outcome.hpp"

namespace tmaster::controller {

struct ChildSpec {
  /// argv[0] is the program, looked up in PATH when it has no '/' (posix_spawnp).
  std::vector<std::string> argv;
  /// Which of this process's variables the child inherits: nullopt, all of them; otherwise
  /// only those named here (an allow-list: the child never sees the rest, e.g. the master key).
  std::optional<std::vector<std::string>> inherit;
  /// Changes to the inherited environment: a value sets the variable, nullopt removes it.
  /// Values may carry secrets (a password): they go to the child only, never to argv, where
  /// `ps` would show them.
  std::map<std::string, std::optional<std::string>> env;
  /// Wall time (steady clock) the child may run; past it, its process group gets SIGKILL.
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};
  /// At most this many bytes of each of stdout and stderr are kept: the last ones.
  std::size_t max_output = std::size_t{1} << 20;
};

struct ChildResult {
  int exit_code = -1;      ///< the exit status, or 128+signal when killed by a signal
  bool timed_out = false;  ///< killed because it ran past ChildSpec::timeout
  std::string out;         ///< stdout (the tail, see max_output)
  std::string err;         ///< stderr (the tail, see max_output)
  [[nodiscard]] bool ok() const { return !timed_out && exit_code == 0; }
};

/// Runs `spec.argv` to completion with stdin on /dev/null, stdout and stderr captured, in a new
/// process group (so the child and everything it starts can be killed together), with default
/// signal dispositions and no file descriptors but 0-2 inherited. The child is always reaped,
/// and whatever it left running in its process group is killed once it exits or times out.
/// A value is returned for every child that started, whatever its exit; a Failure (Transient,
/// reason "SpawnFailed", message naming the program and the error, e.g. "No such file or
/// directory") only when the program could not be started.
/// Thread-safe; it must not be combined with SIGCHLD set to SIG_IGN or another thread reaping
/// every child (waitpid(-1)), which would steal the exit status.
Outcome<ChildResult> RunChild(const ChildSpec& spec);

}  // namespace tmaster::controller
