// example-runtime end to end (issue 17 item 5): the built binary serving three tenants of a real
// PostgreSQL, each from its own database with its own SCRAM login, picked by the Host header;
// bindings written by hand in the layout (as the operator writes them: a folder filled, then
// swapped in), changed while it runs.
#include <doctest/doctest.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/binding_folder.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/pg_server.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using namespace tmaster::testing;
using namespace std::chrono_literals;

constexpr auto kWithin = 2s;  // the promise for a new, changed or removed binding

struct TenantDb {
  std::string workspace;
  std::string role;
  std::string password;
  int rows = 0;
};

// A tenant as the operator would make it, by hand: a LOGIN role with a SCRAM password, a
// database it owns, and the erp product's `customer` table with `rows` rows, created as the
// tenant itself.
void CreateTenant(const PgServer& pg, const TenantDb& tenant) {
  const std::string statement =
      QueryValue(pg.Dsn(), "SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)",
                 {tenant.role, tenant.password});
  Execute(pg.Dsn(), statement);
  Execute(pg.Dsn(), QueryValue(pg.Dsn(),
                               "SELECT format('CREATE DATABASE %I OWNER %I', $1::text, "
                               "$1::text)",
                               {tenant.role}));
  Execute(pg.DsnAs(tenant.role, tenant.password, tenant.role),
          "CREATE TABLE customer (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text);"
          "INSERT INTO customer (name) SELECT 'c' || g FROM generate_series(1, " +
              std::to_string(tenant.rows) + ") g;");
}

std::map<std::string, std::string> BindingFiles(const PgServer& pg, const TenantDb& tenant,
                                                const std::string& state = "active") {
  return {{"type", "postgresql"},
          {"provider", "tenant-master"},
          {"workspace", tenant.workspace},
          {"host", "127.0.0.1"},
          {"port", std::to_string(pg.port())},
          {"database", tenant.role},
          {"username", tenant.role},
          {"password", tenant.password},
          {"hosts", tenant.workspace + ".erp.example.test\nwww." + tenant.workspace + ".test"},
          {"state", state}};
}

struct Reply {
  int status = 0;
  boost::json::object body;
  std::string text;
};

Reply Get(int port, const std::string& host, const std::string& path = "/") {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(5s);
  client.set_read_timeout(15s);
  const httplib::Result result = client.Get(path.c_str(), {{"Host", host}});
  Reply reply;
  if (!result) return reply;
  reply.status = result->status;
  reply.text = result->body;
  boost::system::error_code error;
  const boost::json::value parsed = boost::json::parse(result->body, error);
  if (!error && parsed.is_object()) reply.body = parsed.as_object();
  return reply;
}

std::int64_t CountOf(const Reply& reply) {
  const boost::json::value* count = reply.body.if_contains("count");
  return count != nullptr && count->is_int64() ? count->as_int64() : -1;
}

std::string StringOf(const Reply& reply, const char* key) {
  const boost::json::value* value = reply.body.if_contains(key);
  return value != nullptr && value->is_string() ? std::string(value->as_string()) : "<none>";
}

int Sessions(const PgServer& pg, const std::string& role) {
  return std::stoi(
      QueryValue(pg.Dsn(), "SELECT count(*) FROM pg_stat_activity WHERE usename = $1", {role}));
}

DaemonProcess StartRuntime(const TempDir& dir, const fs::path& bindings,
                           std::vector<std::string> extra = {},
                           const std::string& log = "runtime.log") {
  std::vector<std::string> argv = {std::string(TM_BINARY_DIR) + "/example-runtime", "--bindings",
                                   bindings.string(), "--listen", "127.0.0.1:0"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return DaemonProcess(
      DaemonProcess::Options{.argv = argv, .env = {}, .log_file = (dir.path() / log).string()});
}

}  // namespace

TEST_CASE(
    "example-runtime: each host answers from its own tenant's database, and follows the "
    "bindings without a restart") {
  PgServer& pg = PgServer::Shared();
  const TenantDb alpha{"alpha", "rt_alpha", "alpha pass'with \"quotes\"", 3};
  const TenantDb beta{"beta", "rt_beta", "beta-secret-1", 5};
  const TenantDb gamma{"gamma", "rt_gamma", "gamma=secret;x", 7};
  for (const TenantDb& tenant : {alpha, beta, gamma}) CreateTenant(pg, tenant);

  const TempDir dir;
  const fs::path bindings = dir.Mkdir("bindings/erp");
  for (const TenantDb& tenant : {alpha, beta, gamma}) {
    WriteBinding(bindings, tenant.workspace, BindingFiles(pg, tenant));
  }
  DaemonProcess runtime = StartRuntime(dir, bindings);
  const int port = runtime.WaitForHttpPort(20s);
  REQUIRE_MESSAGE(port > 0, runtime.Log());
  CHECK(runtime.Log().find("3 tenants") != std::string::npos);

  // Each host its own tenant: the count is its own table's, read as its own role.
  for (const TenantDb& tenant : {alpha, beta, gamma}) {
    const Reply reply = Get(port, tenant.workspace + ".ERP.example.test:8080");
    CHECK_MESSAGE(reply.status == 200, reply.text);
    CHECK(StringOf(reply, "workspace") == tenant.workspace);
    CHECK(StringOf(reply, "database") == tenant.role);
    CHECK(StringOf(reply, "table") == "customer");
    CHECK(CountOf(reply) == tenant.rows);
    CHECK(CountOf(Get(port, "www." + tenant.workspace + ".test")) == tenant.rows);
  }
  CHECK(Sessions(pg, "rt_alpha") >= 1);
  // The pool reuses its sessions: ten more requests open no new one.
  const int alpha_sessions = Sessions(pg, "rt_alpha");
  for (int i = 0; i < 10; ++i) REQUIRE(Get(port, "alpha.erp.example.test").status == 200);
  CHECK(Sessions(pg, "rt_alpha") == alpha_sessions);

  Reply unknown = Get(port, "nobody.erp.example.test");
  CHECK(unknown.status == 404);
  CHECK(StringOf(unknown, "host") == "nobody.erp.example.test");
  CHECK(Get(port, "alpha.erp.example.test", "/admin").status == 404);

  {  // suspended: 503 within 2 s and the tenant's sessions closed; resumed: 200 again
    WriteBinding(bindings, "alpha", BindingFiles(pg, alpha, "suspended"));
    Reply reply;
    CHECK(Eventually([&] { return (reply = Get(port, "alpha.erp.example.test")).status == 503; },
                     kWithin, 50ms));
    CHECK(StringOf(reply, "error") == "suspended");
    CHECK(StringOf(reply, "workspace") == "alpha");
    CHECK(Eventually([&] { return Sessions(pg, "rt_alpha") == 0; }, kWithin, 50ms));
    CHECK(CountOf(Get(port, "beta.erp.example.test")) == beta.rows);  // the others untouched

    WriteBinding(bindings, "alpha", BindingFiles(pg, alpha));
    CHECK(Eventually([&] { return CountOf(Get(port, "alpha.erp.example.test")) == alpha.rows; },
                     kWithin, 50ms));
  }

  {  // a new tenant's folder answers within 2 s, no restart
    const TenantDb delta{"delta", "rt_delta", "delta secret", 11};
    CreateTenant(pg, delta);
    CHECK(Get(port, "delta.erp.example.test").status == 404);
    const auto written = std::chrono::steady_clock::now();
    WriteBinding(bindings, "delta", BindingFiles(pg, delta));
    CHECK(Eventually([&] { return CountOf(Get(port, "delta.erp.example.test")) == delta.rows; },
                     kWithin, 20ms));
    MESSAGE("new tenant served after ",
            std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  written)
                .count(),
            " ms");
    CHECK(runtime.Running());
  }

  {  // a removed folder answers 404 within 2 s and its sessions close
    REQUIRE(Sessions(pg, "rt_gamma") >= 1);
    fs::remove_all(bindings / "gamma");
    CHECK(Eventually([&] { return Get(port, "gamma.erp.example.test").status == 404; }, kWithin,
                     50ms));
    CHECK(Eventually([&] { return Sessions(pg, "rt_gamma") == 0; }, kWithin, 50ms));
    CHECK(CountOf(Get(port, "alpha.erp.example.test")) == alpha.rows);
  }

  {  // a changed password keeps answering, and new sessions log in with it
    TenantDb rotated = beta;
    rotated.password = "beta-secret-2";
    Execute(pg.Dsn(), "ALTER ROLE rt_beta PASSWORD 'beta-secret-2'");
    CHECK(CountOf(Get(port, "beta.erp.example.test")) == beta.rows);  // open sessions still work
    WriteBinding(bindings, "beta", BindingFiles(pg, rotated));
    // The old pool is dropped with the binding: wait for its sessions to go, then cut whatever
    // is open, so the next answer needs a fresh login, which only the new password passes.
    CHECK(Eventually(
        [&] { return runtime.Log().find("workspace beta: updated") != std::string::npos; }, kWithin,
        50ms));
    Execute(pg.Dsn(),
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'rt_beta'");
    const Reply reply = Get(port, "beta.erp.example.test");
    CHECK_MESSAGE(reply.status == 200, reply.text);
    CHECK(CountOf(reply) == beta.rows);
  }

  CHECK(runtime.Terminate(10s) == 0);
  const std::string log = runtime.Log();
  for (const TenantDb& tenant : {alpha, beta, gamma}) {
    CHECK(log.find(tenant.password) == std::string::npos);
  }
  for (const TenantDb& tenant : {alpha, beta, gamma}) {
    Execute(pg.Dsn(), "DROP DATABASE IF EXISTS " + tenant.role + " WITH (FORCE)");
    Execute(pg.Dsn(), "DROP ROLE IF EXISTS " + tenant.role);
  }
  Execute(pg.Dsn(), "DROP DATABASE IF EXISTS rt_delta WITH (FORCE)");
  Execute(pg.Dsn(), "DROP ROLE IF EXISTS rt_delta");
}

TEST_CASE(
    "example-runtime: a database error answers 502 with the server's message, never the "
    "password; SIGTERM exits 0") {
  PgServer& pg = PgServer::Shared();
  const TenantDb wrong{"wrong", "rt_wrong", "the-right-one", 2};
  CreateTenant(pg, wrong);
  const TempDir dir;
  const fs::path bindings = dir.Mkdir("bindings/erp");
  TenantDb bad = wrong;
  bad.password = "not-the-password";
  WriteBinding(bindings, "wrong", BindingFiles(pg, bad));
  DaemonProcess runtime = StartRuntime(dir, bindings, {"--count-table", "customer"});
  const int port = runtime.WaitForHttpPort(20s);
  REQUIRE_MESSAGE(port > 0, runtime.Log());

  Reply reply = Get(port, "wrong.erp.example.test");
  CHECK(reply.status == 502);
  CHECK_MESSAGE(
      StringOf(reply, "message").find("password authentication failed") != std::string::npos,
      reply.text);
  CHECK(reply.text.find("not-the-password") == std::string::npos);

  // A table the tenant does not have: the server's error, as 502.
  WriteBinding(bindings, "wrong", BindingFiles(pg, wrong));
  CHECK(
      Eventually([&] { return Get(port, "wrong.erp.example.test").status == 200; }, kWithin, 50ms));
  CHECK(runtime.Terminate(10s) == 0);
  DaemonProcess other =
      StartRuntime(dir, bindings, {"--count-table", "no_such_table"}, "other.log");
  const int other_port = other.WaitForHttpPort(20s);
  REQUIRE(other_port > 0);
  reply = Get(other_port, "wrong.erp.example.test");
  CHECK(reply.status == 502);
  CHECK(StringOf(reply, "message").find("no_such_table") != std::string::npos);
  CHECK(other.Terminate(10s) == 0);
  CHECK(other.Log().find("the-right-one") == std::string::npos);
  Execute(pg.Dsn(), "DROP DATABASE IF EXISTS rt_wrong WITH (FORCE)");
  Execute(pg.Dsn(), "DROP ROLE IF EXISTS rt_wrong");
}

TEST_CASE(
    "example-runtime: requests are served concurrently, each tenant on at most --pool-size "
    "sessions") {
  PgServer& pg = PgServer::Shared();
  const TenantDb slow{"slow", "rt_slow", "slow-secret", 4};
  CreateTenant(pg, slow);
  // A "table" that takes 500 ms to count: a view over the customers and one pg_sleep.
  Execute(pg.DsnAs(slow.role, slow.password, slow.role),
          "CREATE VIEW slow_customer AS SELECT c.* FROM customer c, pg_sleep(0.5)");
  const TempDir dir;
  const fs::path bindings = dir.Mkdir("bindings/erp");
  WriteBinding(bindings, "slow", BindingFiles(pg, slow));
  DaemonProcess runtime =
      StartRuntime(dir, bindings, {"--count-table", "slow_customer", "--pool-size", "2"});
  const int port = runtime.WaitForHttpPort(20s);
  REQUIRE_MESSAGE(port > 0, runtime.Log());

  // 6 requests at once on 2 sessions: 3 rounds of 500 ms, where one at a time would take 3 s.
  std::vector<Reply> replies(6);
  std::atomic<int> most_sessions{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> clients;
  for (Reply& reply : replies) {
    clients.emplace_back([&] { reply = Get(port, "slow.erp.example.test"); });
  }
  std::thread watcher([&] {
    while (std::chrono::steady_clock::now() - start < 1200ms) {
      most_sessions = std::max(most_sessions.load(), Sessions(pg, slow.role));
      std::this_thread::sleep_for(20ms);
    }
  });
  for (std::thread& client : clients) client.join();
  const auto took = std::chrono::steady_clock::now() - start;
  watcher.join();
  for (const Reply& reply : replies) {
    CHECK_MESSAGE(reply.status == 200, reply.text);
    CHECK(CountOf(reply) == slow.rows);
  }
  MESSAGE("6 slow requests on 2 sessions took ",
          std::chrono::duration_cast<std::chrono::milliseconds>(took).count(), " ms");
  CHECK(took < 2500ms);
  CHECK(most_sessions.load() >= 1);
  CHECK(most_sessions.load() <= 2);
  CHECK(runtime.Terminate(10s) == 0);
  Execute(pg.Dsn(), "DROP DATABASE IF EXISTS rt_slow WITH (FORCE)");
  Execute(pg.Dsn(), "DROP ROLE IF EXISTS rt_slow");
}
