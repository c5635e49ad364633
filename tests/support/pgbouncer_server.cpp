#include "tests/support/pgbouncer_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include "tests/support/process.hpp"

namespace tmaster::testing {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPgBouncer = "/usr/sbin/pgbouncer";

// pg_server.cpp has the same helper in its anonymous namespace; a second copy keeps that file
// untouched.
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

void Chown(const std::string& path, const passwd& user) {
  if (lchown(path.c_str(), user.pw_uid, user.pw_gid) != 0) {
    throw std::runtime_error("chown " + path + " failed");
  }
}

/// A conninfo value, quoted so spaces, quotes and backslashes survive.
std::string ConninfoValue(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

/// The last `lines` lines of `text` (all of it when shorter).
std::string Tail(const std::string& text, std::size_t lines) {
  std::size_t at = text.size();
  for (std::size_t n = 0; n <= lines; ++n) {
    if (at == 0) return text;
    at = text.rfind('\n', at - 1);
    if (at == std::string::npos) return text;
  }
  return text.substr(at + 1);
}

bool Alive(pid_t pid) {
  return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

std::vector<char*> Argv(std::vector<std::string>& args) {
  std::vector<char*> out;
  for (auto& arg : args) out.push_back(arg.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

PgBouncerServer::PgBouncerServer(PgBouncerOptions options)
    : options_(std::move(options)), as_root_(geteuid() == 0) {
  if (access(kPgBouncer, X_OK) != 0) {
    throw std::runtime_error(std::string(kPgBouncer) +
                             " not found: install Debian's pgbouncer (scripts/install-deps.sh)");
  }
  std::string dir = (fs::temp_directory_path() / "tm-pgbouncer.XXXXXX").string();
  if (mkdtemp(dir.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = dir;
  port_ = FreePort();
  StartWatchdog();

  std::ofstream ini(ini_file());
  ini << "; tests/support/pgbouncer_server.cpp\n"
      << "%include " << options_.databases_ini << "\n"
      << "[pgbouncer]\n"
      << "listen_addr = 127.0.0.1\n"
      << "listen_port = " << port_ << "\n"
      << "unix_socket_dir = " << dir_ << "\n"
      << "auth_type = scram-sha-256\n"
      << "auth_file = " << options_.userlist << "\n"
      << "pidfile = " << pid_file() << "\n"
      << "logfile = " << dir_ << "/pgbouncer.log\n"
      << "pool_mode = " << options_.pool_mode << "\n"
      << "max_client_conn = " << options_.max_client_conn << "\n"
      << "default_pool_size = " << options_.default_pool_size
      << "\n"
      // A refused server login must not park the pool for the default 15 s.
      << "server_login_retry = 1\n"
      << "ignore_startup_parameters = extra_float_digits\n";
  ini.close();
  if (!ini) throw std::runtime_error("cannot write " + ini_file());
  if (as_root_) {
    const passwd& postgres = PostgresUser();
    Chown(dir_, postgres);
    Chown(ini_file(), postgres);
  }
}

PgBouncerServer::~PgBouncerServer() {
  if (running_) {
    try {
      Stop();
    } catch (const std::exception&) {  // the watchdog below still cleans up
    }
  }
  std::error_code ignored;
  fs::remove_all(dir_, ignored);
  if (watchdog_fd_ >= 0) {
    static_cast<void>(write(watchdog_fd_, "x", 1));  // "all done": the watchdog touches nothing
    close(watchdog_fd_);
  }
  if (watchdog_ > 0) waitpid(watchdog_, nullptr, 0);
}

void PgBouncerServer::Start() {
  std::vector<std::string> argv = {kPgBouncer, "-d", ini_file()};
  if (as_root_) argv.insert(argv.begin(), {"/usr/sbin/runuser", "-u", "postgres", "--"});
  ProcessResult result = RunProcess(argv);
  if (result.exit_code != 0) {
    throw std::runtime_error("pgbouncer did not start: " + result.out + result.err + "\n" +
                             Tail(Log(), 20));
  }
  running_ = true;
  if (!WaitReady()) {
    throw std::runtime_error("pgbouncer does not accept connections on port " +
                             std::to_string(port_) + ":\n" + Tail(Log(), 20));
  }
}

void PgBouncerServer::Stop() {
  const pid_t target = pid();
  running_ = false;
  if (target <= 1) return;
  kill(target, SIGTERM);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (Alive(target) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (Alive(target)) kill(target, SIGKILL);
  while (Alive(target)) std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

bool PgBouncerServer::WaitReady(std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (Accepts(port_)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

pid_t PgBouncerServer::pid() const {
  std::ifstream in(pid_file());
  long value = -1;
  if (!(in >> value) || value <= 1) return -1;
  return static_cast<pid_t>(value);
}

std::string PgBouncerServer::AdminDsn() const {
  return "host=" + ConninfoValue(dir_) + " port=" + std::to_string(port_) +
         " user=pgbouncer dbname=pgbouncer connect_timeout=5";
}

std::string PgBouncerServer::Dsn(const std::string& user, const std::string& password,
                                 const std::string& dbname) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=" + ConninfoValue(user) +
         " password=" + ConninfoValue(password) + " dbname=" + ConninfoValue(dbname) +
         " connect_timeout=5";
}

std::string PgBouncerServer::Log() const {
  std::ifstream in(dir_ + "/pgbouncer.log");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The watchdog waits on a pipe whose only writer is this process. EOF without the "all done"
// byte means the test binary died: kill PgBouncer (its pid read from the pid file), remove the
// folder. Everything it needs is prepared before fork(), so the child only calls
// async-signal-safe functions.
void PgBouncerServer::StartWatchdog() {
  std::vector<std::string> remove = {"/bin/rm", "-rf", dir_};
  std::vector<char*> remove_argv = Argv(remove);
  const std::string pid_path = pid_file();
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
  pid_t child_pid = fork();
  if (child_pid < 0) throw std::runtime_error("fork failed");
  if (child_pid == 0) {
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) signal(sig, SIG_IGN);
    close(fds[1]);
    char byte = 0;
    ssize_t got = 0;
    do {
      got = read(fds[0], &byte, 1);
    } while (got < 0);
    if (got == 1) _exit(0);
    int pid_fd = open(pid_path.c_str(), O_RDONLY | O_NOFOLLOW);
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
    pid_t rm = fork();
    if (rm == 0) {
      execv(remove_argv[0], remove_argv.data());
      _exit(127);
    }
    if (rm > 0) waitpid(rm, nullptr, 0);
    _exit(0);
  }
  close(fds[0]);
  watchdog_ = child_pid;
  watchdog_fd_ = fds[1];
}

void GiveToPostgres(const std::string& path) {
  if (geteuid() != 0) return;
  const passwd& postgres = PostgresUser();
  Chown(path, postgres);
  if (fs::is_directory(fs::symlink_status(path))) {
    for (const auto& entry : fs::recursive_directory_iterator(path)) {
      Chown(entry.path().string(), postgres);
    }
  }
  for (fs::path up = fs::path(path).parent_path(); !up.empty() && up != up.root_path();
       up = up.parent_path()) {
    struct stat info {};
    if (stat(up.c_str(), &info) != 0) break;
    if ((info.st_mode & S_IXOTH) == 0) chmod(up.c_str(), (info.st_mode & 07777) | S_IXOTH);
  }
}

AsPostgresUser::AsPostgresUser() {
  if (geteuid() != 0) return;
  const passwd& postgres = PostgresUser();
  if (setegid(postgres.pw_gid) != 0 || seteuid(postgres.pw_uid) != 0) {
    static_cast<void>(seteuid(0));
    static_cast<void>(setegid(0));
    throw std::runtime_error("cannot take the postgres user's effective uid");
  }
  switched_ = true;
}

AsPostgresUser::~AsPostgresUser() {
  if (!switched_) return;
  static_cast<void>(seteuid(0));
  static_cast<void>(setegid(0));
}

}  // namespace tmaster::testing
