#include "tests/support/server_support.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <stdexcept>

namespace tmaster::testing {

namespace fs = std::filesystem;

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
  auto* generic = reinterpret_cast<sockaddr*>(&address);
  if (bind(fd, generic, sizeof(address)) != 0 || getsockname(fd, generic, &length) != 0) {
    close(fd);
    throw std::runtime_error("cannot find a free TCP port");
  }
  close(fd);
  return ntohs(address.sin_port);
}

bool Accepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<uint16_t>(port));
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
  close(fd);
  return ok;
}

const passwd& PostgresUser() {
  const passwd* user = getpwnam("postgres");
  if (user == nullptr) throw std::runtime_error("running as root but there is no postgres user");
  return *user;
}

void ChownTo(const std::string& path, const passwd& user) {
  if (lchown(path.c_str(), user.pw_uid, user.pw_gid) != 0) {
    throw std::runtime_error("chown " + path + " failed");
  }
}

std::string ConninfoValue(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

std::string Tail(const std::string& text, std::size_t lines) {
  std::size_t at = text.size();
  for (std::size_t n = 0; n <= lines; ++n) {
    if (at == 0) return text;
    at = text.rfind('\n', at - 1);
    if (at == std::string::npos) return text;
  }
  return text.substr(at + 1);
}

bool Alive(pid_t pid) { return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM); }

std::vector<char*> Argv(std::vector<std::string>& args) {
  std::vector<char*> out;
  for (auto& arg : args) out.push_back(arg.data());
  out.push_back(nullptr);
  return out;
}

std::string FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    fs::path candidate = fs::path(dir.empty() ? "." : dir) / name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  for (const char* dir : {"/usr/sbin", "/sbin"}) {  // runuser lives here; PATH may lack it
    fs::path candidate = fs::path(dir) / name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return {};
}

std::vector<std::string> RunuserPostgres(std::vector<std::string> argv) {
  static const std::string runuser = FindOnPath("runuser");
  if (runuser.empty()) throw std::runtime_error("running as root but runuser is missing");
  argv.insert(argv.begin(), {runuser, "-u", "postgres", "--"});
  return argv;
}

Watchdog SpawnWatchdog(std::vector<std::vector<std::string>> commands,
                       const std::string& pid_file) {
  std::vector<std::vector<char*>> argvs;
  for (auto& command : commands) argvs.push_back(Argv(command));
  const char* pid_path = pid_file.empty() ? nullptr : pid_file.c_str();
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) signal(sig, SIG_IGN);
    close(fds[1]);
    char byte = 0;
    ssize_t got = 0;
    do {
      got = read(fds[0], &byte, 1);
    } while (got < 0);
    if (got == 1) _exit(0);
    if (pid_path != nullptr) {
      int pid_fd = open(pid_path, O_RDONLY | O_NOFOLLOW);
      if (pid_fd >= 0) {
        char text[32] = {};
        ssize_t n = read(pid_fd, text, sizeof(text) - 1);
        close(pid_fd);
        long value = 0;
        for (ssize_t i = 0; i < n && text[i] >= '0' && text[i] <= '9'; ++i) {
          value = value * 10 + (text[i] - '0');
        }
        if (value > 1) kill(static_cast<pid_t>(value), SIGKILL);
      }
    }
    int null = open("/dev/null", O_RDWR);
    for (std::vector<char*>& argv : argvs) {
      pid_t child = fork();
      if (child == 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        execv(argv[0], argv.data());
        _exit(127);
      }
      if (child > 0) waitpid(child, nullptr, 0);
    }
    _exit(0);
  }
  close(fds[0]);
  return {pid, fds[1]};
}

void ReleaseWatchdog(const Watchdog& watchdog) {
  if (watchdog.fd >= 0) {
    static_cast<void>(write(watchdog.fd, "x", 1));  // "all done": the watchdog touches nothing
    close(watchdog.fd);
  }
  if (watchdog.pid > 0) waitpid(watchdog.pid, nullptr, 0);
}

}  // namespace tmaster::testing
