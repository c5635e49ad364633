#include "tools/portainer-sim/sim_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace tmaster::tools::portainer_sim {
namespace {

int ExitCode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

SimProcess::SimProcess(Options options) {
  std::vector<std::string> argv = {options.binary, "--listen", "127.0.0.1:0"};
  argv.insert(argv.end(), options.args.begin(), options.args.end());
  // Everything the child needs is built before fork: only async-signal-safe calls after it.
  std::vector<std::string> env_strings;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string text(*entry);
    if (options.env.count(text.substr(0, text.find('='))) == 0) env_strings.push_back(text);
  }
  for (const auto& [key, value] : options.env) env_strings.push_back(key + "=" + value);
  std::vector<char*> args, envp;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  std::array<int, 2> out{};
  if (pipe2(out.data(), O_CLOEXEC) != 0) throw std::runtime_error("portainer-sim: pipe failed");
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("portainer-sim: fork failed");
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    dup2(out[1], 1);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  close(out[1]);

  std::string line;
  const auto deadline = std::chrono::steady_clock::now() + options.startup_timeout;
  while (line.find('\n') == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd fd{out[0], POLLIN, 0};
    if (left.count() <= 0 || poll(&fd, 1, static_cast<int>(left.count())) <= 0) break;
    std::array<char, 256> buffer{};
    const ssize_t n = read(out[0], buffer.data(), buffer.size());
    if (n <= 0) break;
    line.append(buffer.data(), static_cast<std::size_t>(n));
  }
  close(out[0]);
  const std::string prefix = "listening on 127.0.0.1:";
  const std::size_t at = line.find(prefix);
  if (at != std::string::npos) port_ = std::atoi(line.c_str() + at + prefix.size());
  if (port_ <= 0) {
    Stop(std::chrono::milliseconds(2000));
    throw std::runtime_error("portainer-sim did not start (" + options.binary + "): got '" + line +
                             "'");
  }
}

SimProcess::~SimProcess() { Stop(); }

std::string SimProcess::BaseUrl() const { return "http://127.0.0.1:" + std::to_string(port_); }

int SimProcess::Stop(std::chrono::milliseconds grace) {
  if (pid_ <= 0) return exit_code_;
  kill(pid_, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + grace;
  int status = 0;
  while (true) {
    const pid_t done = waitpid(pid_, &status, WNOHANG);
    if (done == pid_) break;
    if (done < 0) {
      status = -1;
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  exit_code_ = status == -1 ? -1 : ExitCode(status);
  pid_ = -1;
  return exit_code_;
}

}  // namespace tmaster::tools::portainer_sim
