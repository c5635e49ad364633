#include "tests/support/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <vector>

extern char** environ;

namespace tmaster::testing {
namespace {

void ReadAll(int out_fd, int err_fd, int in_fd, const std::string& input, ProcessResult& result) {
  std::size_t written = 0;
  std::array<pollfd, 3> fds{};
  std::array<char, 65536> buffer{};
  bool out_open = true, err_open = true, in_open = in_fd >= 0;
  while (out_open || err_open) {
    nfds_t n = 0;
    if (out_open) fds[n++] = {out_fd, POLLIN, 0};
    if (err_open) fds[n++] = {err_fd, POLLIN, 0};
    if (in_open) fds[n++] = {in_fd, POLLOUT, 0};
    if (poll(fds.data(), n, -1) < 0) break;
    for (nfds_t i = 0; i < n; ++i) {
      if (fds[i].revents == 0) continue;
      if (fds[i].fd == in_fd) {
        const ssize_t w = write(in_fd, input.data() + written, input.size() - written);
        if (w > 0) written += static_cast<std::size_t>(w);
        if (w < 0 || written == input.size()) {
          close(in_fd);
          in_open = false;
        }
        continue;
      }
      const ssize_t r = read(fds[i].fd, buffer.data(), buffer.size());
      if (r <= 0) {
        if (fds[i].fd == out_fd) out_open = false; else err_open = false;
        continue;
      }
      (fds[i].fd == out_fd ? result.out : result.err).append(buffer.data(), static_cast<std::size_t>(r));
    }
  }
  if (in_open) close(in_fd);
}

}  // namespace

ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env,
                         const std::string& input) {
  signal(SIGPIPE, SIG_IGN);  // a child that ignores its stdin must not kill the test
  // Everything the child needs is built before fork: another thread may hold malloc's lock at
  // the fork, so the child calls only dup2, close, execve and _exit.
  std::vector<std::string> merged;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const std::string_view text(*entry);
    const std::string key(text.substr(0, text.find('=')));
    if (env.find(key) == env.end()) merged.emplace_back(text);
  }
  for (const auto& [key, value] : env) merged.push_back(key + "=" + value);
  std::vector<char*> envp;
  for (auto& e : merged) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  // Close-on-exec: a child forked by another thread meanwhile must not inherit these ends (it
  // would hold this child's stdout open and the read below would never see its end).
  int out_pipe[2], err_pipe[2], in_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0 ||
      pipe2(in_pipe, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    // dup2 clears close-on-exec on 0, 1 and 2; the originals close at the exec.
    dup2(in_pipe[0], 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  close(in_pipe[0]);
  ProcessResult result;
  ReadAll(out_pipe[0], err_pipe[0], input.empty() ? (close(in_pipe[1]), -1) : in_pipe[1], input,
          result);
  close(out_pipe[0]);
  close(err_pipe[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

std::string LineStartingWith(const std::string& text, const std::string& prefix) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t end = text.find('\n', pos);
    const std::string line = text.substr(pos, end - pos);
    if (line.rfind(prefix, 0) == 0) return line;
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  return {};
}

}  // namespace tmaster::testing
