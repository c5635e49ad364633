// Queries per second of the reference shared runtime (examples/runtime/, issue 17): `GET /`
// through the built example-runtime (each answer one `SELECT count(*) FROM customer` as the
// tenant) against the same query sent straight to PostgreSQL over libpq, and through
// example-runtime with the binding pointing at Debian's real PgBouncer
// (tests/support/pgbouncer_server.hpp) instead of PostgreSQL. The same number of clients on
// each row: keep-alive HTTP clients for the runtime, one libpq session each for the direct row.
// Prints the three rates and their ratio to the direct one, recorded in bench/README.md
// ("runtime_qps_bench").
//
// TM_RUNTIME_BENCH_SECONDS (default 5) per row, TM_RUNTIME_BENCH_CLIENTS (default 4), which is
// also the runtime's --pool-size. Built on request only:
// `cmake --build BUILD --target runtime_qps_bench && BUILD/runtime_qps_bench`.

#include <doctest/doctest.h>
#include <fcntl.h>
#include <httplib.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "common/pq_handles.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/pg_server.hpp"
#include "tests/support/pgbouncer_server.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using namespace tmaster;
using namespace tmaster::testing;
using namespace std::chrono_literals;

constexpr const char* kRole = "rt_bench";
constexpr const char* kPassword = "bench secret";
constexpr const char* kHost = "bench.erp.example.test";
constexpr int kRows = 1000;

int EnvOr(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && std::atoi(value) > 0 ? std::atoi(value) : fallback;
}

struct Rate {
  long done = 0;
  long failed = 0;
  double seconds = 0;
  [[nodiscard]] double PerSecond() const {
    return seconds > 0 ? static_cast<double>(done) / seconds : 0;
  }
};

// `clients` threads each run `one` (a fresh per-thread state from `make`) for `seconds` after
// a short warm-up; counts the calls that returned true.
template <class State>
Rate Measure(int clients, int seconds, const std::function<State()>& make,
             const std::function<bool(State&)>& one) {
  std::atomic<bool> counting{false};
  std::atomic<bool> stop{false};
  std::atomic<long> done{0};
  std::atomic<long> failed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) {
    threads.emplace_back([&] {
      State state = make();
      while (!stop.load(std::memory_order_relaxed)) {
        const bool ok = one(state);
        if (!counting.load(std::memory_order_relaxed)) continue;
        (ok ? done : failed).fetch_add(1, std::memory_order_relaxed);
      }
    });
  }
  std::this_thread::sleep_for(500ms);  // warm-up: sessions opened, pools filled
  const auto start = std::chrono::steady_clock::now();
  counting = true;
  std::this_thread::sleep_for(std::chrono::seconds(seconds));
  counting = false;
  const auto end = std::chrono::steady_clock::now();
  stop = true;
  for (std::thread& thread : threads) thread.join();
  return Rate{done.load(), failed.load(), std::chrono::duration<double>(end - start).count()};
}

Rate Direct(int clients, int seconds, int port) {
  const std::string port_text = std::to_string(port);
  const auto make = [&] {
    const char* keywords[] = {"host", "port", "dbname", "user", "password", nullptr};
    const char* values[] = {"127.0.0.1", port_text.c_str(), kRole, kRole, kPassword, nullptr};
    pq::ConnPtr conn(PQconnectdbParams(keywords, values, 0));
    REQUIRE_MESSAGE(PQstatus(conn.get()) == CONNECTION_OK, PQerrorMessage(conn.get()));
    return conn;
  };
  return Measure<pq::ConnPtr>(clients, seconds, make, [](pq::ConnPtr& conn) {
    const pq::ResultPtr result(PQexec(conn.get(), "SELECT count(*) FROM customer"));
    return PQresultStatus(result.get()) == PGRES_TUPLES_OK;
  });
}

using ClientPtr = std::unique_ptr<httplib::Client>;

Rate ThroughRuntime(int clients, int seconds, int port) {
  const auto make = [&] {
    auto client = std::make_unique<httplib::Client>("127.0.0.1", port);
    client->set_keep_alive(true);
    return client;
  };
  return Measure<ClientPtr>(clients, seconds, make, [](ClientPtr& client) {
    const httplib::Result result = client->Get("/", {{"Host", kHost}});
    return result && result->status == 200;
  });
}

void WriteFile(const fs::path& path, const std::string& text) {
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
  close(fd);
}

// The binding folder of the one tenant, pointing at `port` (PostgreSQL or PgBouncer).
fs::path WriteBindings(const TempDir& dir, const std::string& name, int port) {
  const fs::path product = dir.Mkdir(name + "/erp");
  const fs::path folder = product / "bench";
  fs::create_directories(folder);
  const std::map<std::string, std::string> files = {
      {"type", "postgresql"}, {"provider", "tenant-master"},  {"workspace", "bench"},
      {"host", "127.0.0.1"},  {"port", std::to_string(port)}, {"database", kRole},
      {"username", kRole},    {"password", kPassword},        {"hosts", kHost},
      {"state", "active"}};
  for (const auto& [key, value] : files) WriteFile(folder / key, value);
  return product;
}

Rate RunRuntime(const TempDir& dir, const fs::path& bindings, const std::string& log, int clients,
                int seconds) {
  DaemonProcess runtime(DaemonProcess::Options{
      .argv = {std::string(TM_BINARY_DIR) + "/example-runtime", "--bindings", bindings.string(),
               "--listen", "127.0.0.1:0", "--pool-size", std::to_string(clients)},
      .env = {},
      .log_file = (dir.path() / log).string()});
  const int port = runtime.WaitForHttpPort(20s);
  REQUIRE_MESSAGE(port > 0, runtime.Log());
  const Rate rate = ThroughRuntime(clients, seconds, port);
  CHECK(runtime.Terminate(10s) == 0);
  return rate;
}

void Print(const char* name, const Rate& rate, const Rate& direct) {
  std::printf("%-36s %9.0f q/s  x%5.2f of direct  (%ld in %.1f s, %ld failed)\n", name,
              rate.PerSecond(), direct.PerSecond() > 0 ? rate.PerSecond() / direct.PerSecond() : 0,
              rate.done, rate.seconds, rate.failed);
  std::fflush(stdout);
}

}  // namespace

TEST_CASE("runtime qps bench") {
  const int seconds = EnvOr("TM_RUNTIME_BENCH_SECONDS", 5);
  const int clients = EnvOr("TM_RUNTIME_BENCH_CLIENTS", 4);
  PgServer& pg = PgServer::Shared();
  Execute(pg.Dsn(), QueryValue(pg.Dsn(),
                               "SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', "
                               "$1::text, $2::text)",
                               {kRole, kPassword}));
  Execute(pg.Dsn(), std::string("CREATE DATABASE ") + kRole + " OWNER " + kRole);
  Execute(pg.DsnAs(kRole, kPassword, kRole),
          "CREATE TABLE customer (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text);"
          "INSERT INTO customer (name) SELECT 'c' || g FROM generate_series(1, " +
              std::to_string(kRows) + ") g;");
  std::printf("runtime_qps_bench: %d clients, %d s per row, SELECT count(*) over %d rows\n",
              clients, seconds, kRows);

  const TempDir dir;
  const Rate direct = Direct(clients, seconds, pg.port());
  Print("libpq straight to PostgreSQL", direct, direct);
  const Rate runtime =
      RunRuntime(dir, WriteBindings(dir, "to-postgres", pg.port()), "pg.log", clients, seconds);
  Print("example-runtime -> PostgreSQL", runtime, direct);

  // PgBouncer in session mode, logging in by SCRAM pass-through with the verifier of pg_authid
  // (as the operator's userlist.txt holds it).
  const fs::path pooler = dir.Mkdir("pooler");
  WriteFile(pooler / "databases.ini", std::string("[databases]\n") + kRole +
                                          " = host=127.0.0.1 port=" + std::to_string(pg.port()) +
                                          " dbname=" + kRole + "\n");
  const std::string verifier =
      QueryValue(pg.Dsn(), "SELECT rolpassword FROM pg_authid WHERE rolname = $1", {kRole});
  WriteFile(pooler / "userlist.txt", std::string("\"") + kRole + "\" \"" + verifier + "\"\n");
  GiveToPostgres(pooler.string());
  PgBouncerServer bouncer(PgBouncerOptions{.databases_ini = (pooler / "databases.ini").string(),
                                           .userlist = (pooler / "userlist.txt").string()});
  bouncer.Start();
  const Rate pooled = RunRuntime(dir, WriteBindings(dir, "to-pgbouncer", bouncer.port()),
                                 "pgbouncer.log", clients, seconds);
  Print("example-runtime -> PgBouncer", pooled, direct);
  CHECK(direct.failed == 0);
  CHECK(runtime.failed == 0);
  CHECK(pooled.failed == 0);
  CHECK(runtime.done > 0);
  CHECK(pooled.done > 0);
}
