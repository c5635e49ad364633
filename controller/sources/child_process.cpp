#include "controller/sources/child_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <string_view>

extern char** environ;

namespace tmaster::controller {
namespace {

using Clock = std::chrono::steady_clock;

// Without a pidfd (kernels before 5.3) the loop looks for the child's exit this often.
constexpr std::chrono::milliseconds kExitPollInterval{20};

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Reset(); }
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  [[nodiscard]] int get() const { return fd_; }
  int* out() { return &fd_; }

 private:
  int fd_ = -1;
};

struct Pipe {
  Fd read;
  Fd write;
  bool Open() {
    std::array<int, 2> fds{};
    if (pipe2(fds.data(), O_CLOEXEC) != 0) return false;
    *read.out() = fds[0];
    *write.out() = fds[1];
    return fcntl(fds[0], F_SETFL, O_NONBLOCK) == 0;
  }
};

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

std::string_view KeyOf(std::string_view entry) {
  return entry.substr(0, entry.find('='));
}

// The inherited environment (all of it, or the allow-listed variables) with spec.env applied,
// as "KEY=value" strings.
std::vector<std::string> ChildEnvironment(const ChildSpec& spec) {
  std::vector<std::string> entries;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    const std::string key(KeyOf(text));
    if (spec.env.find(key) != spec.env.end()) continue;
    if (spec.inherit && std::find(spec.inherit->begin(), spec.inherit->end(), key) ==
                            spec.inherit->end()) {
      continue;
    }
    entries.emplace_back(text);
  }
  for (const auto& [key, value] : spec.env) {
    if (value) entries.push_back(key + "=" + *value);
  }
  return entries;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  pointers.reserve(strings.size() + 1);
  for (auto& s : strings) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

void AppendTail(std::string& buffer, const char* data, std::size_t size, std::size_t limit) {
  buffer.append(data, size);
  if (buffer.size() > limit) buffer.erase(0, buffer.size() - limit);
}

// Reads what `fd` has now into `buffer`. Returns false at end of file or on an error.
bool ReadAvailable(int fd, std::string& buffer, std::size_t limit) {
  std::array<char, 65536> chunk{};
  for (;;) {
    const ssize_t n = read(fd, chunk.data(), chunk.size());
    if (n > 0) {
      AppendTail(buffer, chunk.data(), static_cast<std::size_t>(n), limit);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
}

// A descriptor that polls readable when `pid` exits, or -1 (kernels before 5.3). Through
// syscall(): glibc 2.36's <sys/pidfd.h> lacks extern "C" for C++.
int PidFd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));  // always close-on-exec
#else
  (void)pid;
  return -1;
#endif
}

bool HasExited(pid_t pid) {
  siginfo_t info{};
  // WNOWAIT: the child stays a zombie, so its pid (and process group id) cannot be reused
  // before the group is killed and the child reaped.
  return waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
         info.si_pid == pid;
}

int Reap(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Collects the child's output until it exits or the deadline passes. Returns true if it exited.
bool Collect(pid_t pid, int pidfd, Pipe& out, Pipe& err, const ChildSpec& spec,
             ChildResult& result) {
  const Clock::time_point deadline = Clock::now() + spec.timeout;
  bool out_open = true;
  bool err_open = true;
  for (;;) {
    std::array<pollfd, 3> fds{};
    nfds_t count = 0;
    if (out_open) fds[count++] = {out.read.get(), POLLIN, 0};
    if (err_open) fds[count++] = {err.read.get(), POLLIN, 0};
    if (pidfd >= 0) fds[count++] = {pidfd, POLLIN, 0};
    const Clock::time_point now = Clock::now();
    if (now >= deadline) return false;
    auto wait = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
    if (pidfd < 0) wait = std::min(wait, kExitPollInterval);
    const int ready = poll(fds.data(), count, static_cast<int>(wait.count()));
    if (ready < 0 && errno != EINTR) return false;
    if (out_open) out_open = ReadAvailable(out.read.get(), result.out, spec.max_output);
    if (err_open) err_open = ReadAvailable(err.read.get(), result.err, spec.max_output);
    if (!HasExited(pid)) continue;
    // Whatever the child wrote before exiting is in the pipes now; a descendant still holding
    // them open must not keep us here.
    if (out_open) ReadAvailable(out.read.get(), result.out, spec.max_output);
    if (err_open) ReadAvailable(err.read.get(), result.err, spec.max_output);
    return true;
  }
}

}  // namespace

Outcome<ChildResult> RunChild(const ChildSpec& spec) {
  const std::string program = spec.argv.empty() ? std::string() : spec.argv.front();
  auto spawn_failed = [&](int error) {
    return Failure::Transient("SpawnFailed", "cannot run " + program + ": " + std::strerror(error));
  };
  if (spec.argv.empty()) return spawn_failed(EINVAL);

  Pipe out;
  Pipe err;
  if (!out.Open() || !err.Open()) return spawn_failed(errno);

  SpawnAttributes spawn;
  posix_spawn_file_actions_addopen(&spawn.actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&spawn.actions, out.write.get(), 1);
  posix_spawn_file_actions_adddup2(&spawn.actions, err.write.get(), 2);
  // Descriptors the daemon holds without O_CLOEXEC (sockets, the store's connection) stay ours.
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
  std::vector<std::string> env = ChildEnvironment(spec);
  std::vector<char*> argv_c = CStrings(argv);
  std::vector<char*> env_c = CStrings(env);
  pid_t pid = -1;
  const int spawned =
      posix_spawnp(&pid, argv_c[0], &spawn.actions, &spawn.attributes, argv_c.data(), env_c.data());
  if (spawned != 0) return spawn_failed(spawned);
  out.write.Reset();
  err.write.Reset();

  Fd pidfd(PidFd(pid));
  ChildResult result;
  result.timed_out = !Collect(pid, pidfd.get(), out, err, spec, result);
  // The child is a zombie or still running: either way its pid is still its process group's id.
  kill(-pid, SIGKILL);
  if (result.timed_out) kill(pid, SIGKILL);
  result.exit_code = Reap(pid);
  return result;
}

}  // namespace tmaster::controller
