#pragma once

// Running PostgreSQL's client tools (pg_dump, pg_restore) with their data streamed: the child's
// stdin and stdout are descriptors the caller gives or pipes the caller reads and writes, stderr a
// file, so a dump of any size passes through the process without being held, and only one pipe is
// ever open per child (no deadlock between a full stdout and a full stderr). An argument vector,
// never a shell; an explicit environment (nothing of this process's leaks in, the master key
// included); a new process group, killed whole when the tool is done or abandoned.
//
// controller/sources/child_process.* (RunChild) runs git to completion with its output captured
// and stdin on /dev/null; it cannot stream, and it lives in a room the reconcilers may not use.

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/outcome.hpp"

namespace tmaster::backups {

struct ToolSpec {
  /// argv[0] is the program's absolute path.
  std::vector<std::string> argv;
  /// The child's whole environment (nothing else is inherited). Values may carry secrets: they
  /// reach the child only, never argv.
  std::map<std::string, std::string> env;
  /// The child's stdin: a descriptor to duplicate, kPipe (write it through Tool::in()), or
  /// kDevNull.
  int stdin_fd = kDevNull;
  /// The child's stdout: a descriptor to duplicate, kPipe (read it through Tool::out()), or
  /// kDevNull.
  int stdout_fd = kDevNull;
  /// The child's stderr: a descriptor to duplicate (a file, read back after the exit).
  int stderr_fd = kDevNull;
  /// Past this instant (steady clock) the tool's process group is killed and Tool::timed_out()
  /// says so. The default: no deadline.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();

  static constexpr int kDevNull = -1;
  static constexpr int kPipe = -2;
};

/// A started tool. Its destructor kills the process group and reaps the child if Wait was not
/// called, so an early return never leaves a tool running.
class Tool {
 public:
  /// Starts `spec`. Transient "SpawnFailed" naming the program when it cannot be started.
  static Outcome<Tool> Start(const ToolSpec& spec);

  Tool(Tool&& other) noexcept;
  Tool& operator=(Tool&&) = delete;
  Tool(const Tool&) = delete;
  Tool& operator=(const Tool&) = delete;
  ~Tool();

  /// Our end of the child's stdin pipe (blocking), or -1.
  [[nodiscard]] int in() const { return in_; }
  /// Our end of the child's stdout pipe (blocking), or -1.
  [[nodiscard]] int out() const { return out_; }
  /// Closes our end of the stdin pipe: the child reads end of file.
  void CloseIn();
  /// Sends SIGKILL to the tool's process group (it still has to be waited for).
  void Kill();
  /// Closes our pipe ends, waits for the child, kills what it left in its process group, and
  /// returns its exit status, or 128 + the signal that killed it.
  int Wait();
  /// Whether the tool was killed because it ran past ToolSpec::deadline (final after Wait).
  [[nodiscard]] bool timed_out() const;

 private:
  struct Watch;
  Tool() = default;
  void StopWatch();
  pid_t pid_ = -1;
  int in_ = -1;
  int out_ = -1;
  std::unique_ptr<Watch> watch_;  // the deadline's thread; null without a deadline
};

/// `what` as a shell would print it for a person (128 + N: "killed by signal N (NAME)",
/// otherwise "exited with status N").
std::string DescribeExit(int status);

/// Blocks SIGPIPE on this thread while alive, so writing into a pipe whose reader died returns
/// EPIPE instead of killing the process; a SIGPIPE left pending is consumed on the way out.
class SigpipeBlocked {
 public:
  SigpipeBlocked();
  ~SigpipeBlocked();
  SigpipeBlocked(const SigpipeBlocked&) = delete;
  SigpipeBlocked& operator=(const SigpipeBlocked&) = delete;

 private:
  bool was_blocked_ = false;
};

}  // namespace tmaster::backups
