#include "tests/support/pgbouncer_server.hpp"

#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <utility>

#include "tests/support/process.hpp"
#include "tests/support/server_support.hpp"

namespace tmaster::testing {
namespace {

namespace fs = std::filesystem;

constexpr const char* kPgBouncer = "/usr/sbin/pgbouncer";

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
    ChownTo(dir_, postgres);
    ChownTo(ini_file(), postgres);
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
  ReleaseWatchdog({watchdog_, watchdog_fd_});
}

void PgBouncerServer::Start() {
  std::vector<std::string> argv = {kPgBouncer, "-d", ini_file()};
  if (as_root_) argv = RunuserPostgres(std::move(argv));
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

// If the test binary dies, the watchdog (tests/support/server_support.hpp) kills PgBouncer (its
// pid read from the pid file) and removes the folder.
void PgBouncerServer::StartWatchdog() {
  const Watchdog watchdog = SpawnWatchdog({{FindOnPath("rm"), "-rf", dir_}}, pid_file());
  watchdog_ = watchdog.pid;
  watchdog_fd_ = watchdog.fd;
}

void GiveToPostgres(const std::string& path) {
  if (geteuid() != 0) return;
  const passwd& postgres = PostgresUser();
  ChownTo(path, postgres);
  if (fs::is_directory(fs::symlink_status(path))) {
    for (const auto& entry : fs::recursive_directory_iterator(path)) {
      ChownTo(entry.path().string(), postgres);
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
