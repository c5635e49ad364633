#include "tests/support/daemon_process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "tests/support/eventually.hpp"

extern char** environ;

namespace tmaster::testing {
namespace {

constexpr std::chrono::milliseconds kPoll{20};

/// The first complete line at or after byte `from` of `log` that contains `needle`.
std::optional<std::string> FirstLineWith(const std::string& log, const std::string& needle,
                                         std::size_t from) {
  std::size_t pos = std::min(from, log.size());
  while (true) {
    const std::size_t end = log.find('\n', pos);
    if (end == std::string::npos) return std::nullopt;
    std::string line = log.substr(pos, end - pos);
    if (line.find(needle) != std::string::npos) return line;
    pos = end + 1;
  }
}

int ExitCode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

DaemonProcess::DaemonProcess(Options options) : options_(std::move(options)) {
  if (options_.argv.empty()) throw std::runtime_error("DaemonProcess: empty argv");
  // Everything the child needs is built before fork: only async-signal-safe calls after it.
  std::vector<std::string> env_strings;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string text(*entry);
    if (options_.env.count(text.substr(0, text.find('='))) == 0) env_strings.push_back(text);
  }
  for (const auto& [key, value] : options_.env) env_strings.push_back(key + "=" + value);
  std::vector<char*> args;
  std::vector<char*> envp;
  for (auto& a : options_.argv) args.push_back(a.data());
  args.push_back(nullptr);
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  const int log = open(options_.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log < 0) throw std::runtime_error("DaemonProcess: cannot open " + options_.log_file);
  const int null_in = open("/dev/null", O_RDONLY | O_CLOEXEC);
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ < 0) {
    close(log);
    if (null_in >= 0) close(null_in);
    throw std::runtime_error("DaemonProcess: fork failed");
  }
  if (pid_ == 0) {
    // A test binary that dies must not leave a daemon holding ports and locks.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    if (null_in >= 0) dup2(null_in, 0);
    dup2(log, 1);
    dup2(log, 2);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  close(log);
  if (null_in >= 0) close(null_in);
}

DaemonProcess::~DaemonProcess() {
  if (pid_ > 0) Terminate(std::chrono::seconds(5));
}

bool DaemonProcess::Running() {
  if (pid_ <= 0) return false;
  int status = 0;
  const pid_t done = waitpid(pid_, &status, WNOHANG);
  if (done == 0) return true;
  exit_code_ = done == pid_ ? ExitCode(status) : -1;
  pid_ = -1;
  return false;
}

std::string DaemonProcess::Log() const {
  std::ifstream in(options_.log_file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::size_t DaemonProcess::LogSize() const {
  return Log().size();
}

std::optional<std::string> DaemonProcess::WaitForLine(const std::string& needle,
                                                      std::chrono::milliseconds timeout,
                                                      std::size_t from) {
  std::optional<std::string> found;
  Eventually(
      [&] {
        // Whether it runs is asked before the log is read: a process that had already exited
        // then has nothing more to print, so a line it printed on its way out is seen.
        const bool running = Running();
        found = FirstLineWith(Log(), needle, from);
        return found.has_value() || !running;
      },
      timeout, kPoll);
  return found;
}

int DaemonProcess::WaitForHttpPort(std::chrono::milliseconds timeout) {
  const std::optional<std::string> line = WaitForLine("serving http://", timeout);
  if (!line) return 0;
  const std::string marker = "(port ";
  const std::size_t at = line->find(marker);
  if (at == std::string::npos) return 0;
  return std::atoi(line->c_str() + at + marker.size());
}

std::optional<int> DaemonProcess::WaitExit(std::chrono::milliseconds timeout) {
  if (!Eventually([&] { return !Running(); }, timeout, kPoll)) return std::nullopt;
  return exit_code_;
}

int DaemonProcess::Terminate(std::chrono::milliseconds grace) {
  if (!Running()) return exit_code_;
  kill(pid_, SIGTERM);
  if (std::optional<int> code = WaitExit(grace)) return *code;
  return Kill();
}

int DaemonProcess::Kill() {
  if (!Running()) return exit_code_;
  kill(pid_, SIGKILL);
  int status = 0;
  exit_code_ = waitpid(pid_, &status, 0) == pid_ ? ExitCode(status) : -1;
  pid_ = -1;
  return exit_code_;
}

}  // namespace tmaster::testing
