#include "reconcilers/backups/tool_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <cstring>
#include <ctime>
#include <utility>

namespace tmaster::backups {
namespace {

// posix_spawn's C structures, destroyed on every path.
struct SpawnAttributes {
  posix_spawn_file_actions_t actions{};
  posix_spawnattr_t attributes{};
  SpawnAttributes() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attributes);
  }
  ~SpawnAttributes() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
  }
  SpawnAttributes(const SpawnAttributes&) = delete;
  SpawnAttributes& operator=(const SpawnAttributes&) = delete;
};

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  pointers.reserve(strings.size() + 1);
  for (auto& s : strings) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

// Wires child descriptor `target` to `fd`, /dev/null, or the child's end of `pipe_fds`.
void Wire(SpawnAttributes& spawn, int target, int fd, const std::array<int, 2>& pipe_fds,
          bool child_reads) {
  if (fd == ToolSpec::kPipe) {
    posix_spawn_file_actions_adddup2(&spawn.actions, child_reads ? pipe_fds[0] : pipe_fds[1],
                                     target);
  } else if (fd == ToolSpec::kDevNull) {
    posix_spawn_file_actions_addopen(&spawn.actions, target, "/dev/null",
                                     child_reads ? O_RDONLY : O_WRONLY, 0);
  } else {
    posix_spawn_file_actions_adddup2(&spawn.actions, fd, target);
  }
}

}  // namespace

// Kills the tool's process group at the deadline unless stopped first. Stopped (joined) by Wait
// while the child is still unreaped, so the group id it kills cannot have been reused.
struct Tool::Watch {
  std::mutex mutex;
  std::condition_variable wake;
  bool stop = false;
  bool fired = false;
  std::thread thread;

  Watch(pid_t pid, std::chrono::steady_clock::time_point deadline) {
    thread = std::thread([this, pid, deadline] {
      std::unique_lock lock(mutex);
      if (!wake.wait_until(lock, deadline, [this] { return stop; })) {
        fired = true;
        kill(-pid, SIGKILL);
      }
    });
  }
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;
  ~Watch() { Stop(); }
  void Stop() {
    {
      const std::lock_guard lock(mutex);
      stop = true;
    }
    wake.notify_all();
    if (thread.joinable()) thread.join();
  }
};

Outcome<Tool> Tool::Start(const ToolSpec& spec) {
  const std::string program = spec.argv.empty() ? std::string() : spec.argv.front();
  auto spawn_failed = [&](int error) {
    return Failure::Transient("SpawnFailed", "cannot run " + program + ": " + std::strerror(error));
  };
  if (spec.argv.empty()) return spawn_failed(EINVAL);

  std::array<int, 2> in_pipe{-1, -1};
  std::array<int, 2> out_pipe{-1, -1};
  auto close_pipes = [&] {
    for (int& fd : in_pipe) CloseFd(fd);
    for (int& fd : out_pipe) CloseFd(fd);
  };
  if ((spec.stdin_fd == ToolSpec::kPipe && pipe2(in_pipe.data(), O_CLOEXEC) != 0) ||
      (spec.stdout_fd == ToolSpec::kPipe && pipe2(out_pipe.data(), O_CLOEXEC) != 0)) {
    const int error = errno;
    close_pipes();
    return spawn_failed(error);
  }

  SpawnAttributes spawn;
  Wire(spawn, 0, spec.stdin_fd, in_pipe, true);
  Wire(spawn, 1, spec.stdout_fd, out_pipe, false);
  Wire(spawn, 2, spec.stderr_fd == ToolSpec::kPipe ? ToolSpec::kDevNull : spec.stderr_fd, {},
       false);
  posix_spawn_file_actions_addclosefrom_np(&spawn.actions, 3);
  sigset_t no_signals;
  sigemptyset(&no_signals);
  sigset_t all_signals;
  sigfillset(&all_signals);
  posix_spawnattr_setsigmask(&spawn.attributes, &no_signals);
  posix_spawnattr_setsigdefault(&spawn.attributes, &all_signals);
  posix_spawnattr_setpgroup(&spawn.attributes, 0);
  posix_spawnattr_setflags(&spawn.attributes,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

  std::vector<std::string> argv = spec.argv;
  std::vector<std::string> env;
  env.reserve(spec.env.size());
  for (const auto& [key, value] : spec.env) env.push_back(key + "=" + value);
  std::vector<char*> argv_c = CStrings(argv);
  std::vector<char*> env_c = CStrings(env);
  pid_t pid = -1;
  const int spawned =
      posix_spawn(&pid, argv_c[0], &spawn.actions, &spawn.attributes, argv_c.data(), env_c.data());
  if (spawned != 0) {
    close_pipes();
    return spawn_failed(spawned);
  }
  Tool tool;
  tool.pid_ = pid;
  CloseFd(in_pipe[0]);
  CloseFd(out_pipe[1]);
  tool.in_ = std::exchange(in_pipe[1], -1);
  tool.out_ = std::exchange(out_pipe[0], -1);
  if (spec.deadline != std::chrono::steady_clock::time_point::max()) {
    tool.watch_ = std::make_unique<Watch>(pid, spec.deadline);
  }
  return Outcome<Tool>(std::move(tool));
}

Tool::Tool(Tool&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      in_(std::exchange(other.in_, -1)),
      out_(std::exchange(other.out_, -1)),
      watch_(std::move(other.watch_)) {}

Tool::~Tool() {
  if (pid_ > 0) {
    Kill();
    Wait();
  }
  CloseFd(in_);
  CloseFd(out_);
}

void Tool::CloseIn() { CloseFd(in_); }

void Tool::Kill() {
  if (pid_ > 0) kill(-pid_, SIGKILL);
}

int Tool::Wait() {
  CloseFd(in_);
  CloseFd(out_);
  if (pid_ <= 0) return -1;
  siginfo_t info{};
  // WNOWAIT: the child stays a zombie, so its process group id cannot be reused before the
  // group is killed.
  while (waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
  }
  StopWatch();
  kill(-pid_, SIGKILL);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void Tool::StopWatch() {
  if (watch_) watch_->Stop();
}

bool Tool::timed_out() const {
  if (!watch_) return false;
  const std::lock_guard lock(watch_->mutex);
  return watch_->fired;
}

std::string DescribeExit(int status) {
  if (status > 128) {
    const int signal = status - 128;
    const char* name = sigabbrev_np(signal);
    return "killed by signal " + std::to_string(signal) +
           (name != nullptr ? std::string(" (SIG") + name + ")" : std::string());
  }
  return "exited with status " + std::to_string(status);
}

SigpipeBlocked::SigpipeBlocked() {
  sigset_t pipe_only;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  sigset_t old;
  pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
  was_blocked_ = sigismember(&old, SIGPIPE) == 1;
}

SigpipeBlocked::~SigpipeBlocked() {
  if (was_blocked_) return;
  sigset_t pipe_only;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  const timespec zero{};
  while (sigtimedwait(&pipe_only, nullptr, &zero) == SIGPIPE) {
  }
  pthread_sigmask(SIG_UNBLOCK, &pipe_only, nullptr);
}

}  // namespace tmaster::backups
