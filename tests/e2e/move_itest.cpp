// End to end (issue 10, part 2: moving a tenant; docs/moves.md): three private PostgreSQL
// servers are the clusters c1, c2 and c3 of the built tenant-operator, run as a daemon with
// dedicated stacks on the directory backend. Each case moves a placed workspace whose database
// holds real rows and checks the truth on the servers (where the database is, its rows and their
// digest, who may log in, the source's marker), what the API and the store say, and the stack's
// stack.env (DB_PORT and DATABASE_URL follow the database):
//   - a move of a 10 MB tenant: verified on the target, the stack rolled, the source kept
//     NOLOGIN and marked until `--prune` drops it; its downtime printed;
//   - the target down: the move fails, the tenant is resumed on its source, whole;
//   - a restore error (a grant to a role only the source has): rolled back the same way;
//   - the operator killed during the restore (before the switch): the next start rolls back;
//   - the operator killed while resuming (after the switch): the next start finishes the move.
// The kills are placed by the test hook TM_MOVE_TEST_FAULT=<step>:hang (docs/moves.md#testing).
#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "manifests/naming.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/http_get.hpp"
#include "tests/support/pg_server.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using namespace tmaster::testing;
using namespace std::chrono_literals;

const std::string kOperator = std::string(TM_BINARY_DIR) + "/tenant-operator";
const std::string kMasterKey = "move-e2e-master-key-0123456789abcdef0123";
constexpr std::array<const char*, 3> kClusters = {"c1", "c2", "c3"};
constexpr std::chrono::milliseconds kPoll = 100ms;
constexpr std::chrono::milliseconds kConverge = 60s;

/// Started one after the other (see placement_itest.cpp: RunProcess's pipes).
class Servers {
 public:
  static Servers& Shared() {
    static Servers servers;
    return servers;
  }
  PgServer& operator[](std::size_t i) { return *pg_.at(i); }
  PgServer& Home() { return *pg_[0]; }

 private:
  Servers() {
    for (auto& pg : pg_) pg = std::make_unique<PgServer>();
  }
  std::array<std::unique_ptr<PgServer>, 3> pg_;
};

std::size_t Index(const std::string& cluster) { return cluster == "c1" ? 0 : cluster == "c2" ? 1 : 2; }

/// `select` over `$1::jsonb` on the home server (the binary links no JSON library).
std::vector<Row> JsonRows(const std::string& json, const std::string& select) {
  return Query(Servers::Shared().Home().Dsn(), select, {json});
}

/// What a move's JSON says.
struct MoveView {
  int http = 0;
  std::string state, step, message, reason, verified, from, to;
  long downtime_ms = 0;
  std::string body;
};

class World {
 public:
  explicit World(std::string tag) : tag_(std::move(tag)) {
    dir_.Write("fleet/migrations/crm/0001_orders.sql",
               "CREATE TABLE orders (id bigint PRIMARY KEY, note text NOT NULL);\n");
    dir_.Write("fleet/stacks/crm.yml",
               "services:\n  app:\n    image: ${TM_IMAGE}:${TM_VERSION}\n"
               "    env_file: stack.env\n    environment:\n      DATABASE_URL: ${DATABASE_URL}\n");
    dir_.Write("fleet/products.yaml",
               "apiVersion: tenantmaster.io/v1alpha1\nkind: Product\nmetadata:\n  name: crm\n"
               "spec:\n  image: ghcr.io/acme/crm\n  defaultVersion: \"1.0.0\"\n  port: 8000\n"
               "  stackTemplate: stacks/crm.yml\n  migrations: migrations/crm\n"
               "  modes: [shared, dedicated]\n");
    std::string yaml = "baseDomain: example.test\nmasterKeyEnv: TM_MASTER_KEY\nclusters:\n";
    for (const char* cluster : kClusters) {
      yaml += std::string("  - name: ") + cluster + "\n    dsnEnv: TM_PG_" + cluster + "_DSN\n";
    }
    yaml += "store:\n  dsnEnv: TM_STORE_DSN\n";
    yaml += "sources:\n  - name: local\n    directory: " + (dir_.path() / "fleet").string() + "\n";
    yaml += "stacks:\n  backend: directory\n  directory: " +
            (dir_.path() / "deployments").string() + "\n";
    yaml += "backups:\n  directory: " + (dir_.path() / "backups").string() + "\n";
    yaml += "http:\n  listen: \"127.0.0.1:0\"\n";
    yaml += "reconcile:\n  workers: 2\n  resyncInterval: 5s\n";
    config_ = dir_.Write("operator.yaml", yaml).string();
  }
  ~World() { Stop(); }
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  [[nodiscard]] std::string Name(const std::string& suffix) const { return tag_ + "-" + suffix; }

  /// A dedicated crm workspace without a named cluster (placed), reclaimed with Delete.
  void Workspace(const std::string& name) const {
    const std::string yaml =
        "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: " + name +
        "\nspec:\n  product: crm\n  mode: dedicated\n  subdomain: " + name +
        "\n  database:\n    reclaimPolicy: Delete\n  dedicated:\n    endpoint: 1\n";
    const fs::path staged = dir_.Write("staging/" + name + ".yaml", yaml);
    fs::create_directories(dir_.path() / "fleet" / "workspaces");
    fs::rename(staged, dir_.path() / "fleet" / "workspaces" / (name + ".yaml"));
  }

  /// `fault`: TM_MOVE_TEST_FAULT for this start (empty: none).
  void Start(const std::string& fault = "") {
    Stop();
    const int n = ++starts_;
    Servers& servers = Servers::Shared();
    std::map<std::string, std::string> env{
        {"TM_MASTER_KEY", kMasterKey}, {"TM_STORE_DSN", servers.Home().Dsn("tm_store_" + tag_)}};
    for (std::size_t i = 0; i < kClusters.size(); ++i) {
      env["TM_PG_" + std::string(kClusters[i]) + "_DSN"] = servers[i].Dsn();
    }
    if (!fault.empty()) env["TM_MOVE_TEST_FAULT"] = fault;
    daemon_ = std::make_unique<DaemonProcess>(DaemonProcess::Options{
        .argv = {kOperator, "--config", config_, "--state-dir",
                 (dir_.path() / ("state-" + std::to_string(n))).string()},
        .env = std::move(env),
        .log_file = (dir_.path() / ("operator-" + std::to_string(n) + ".log")).string()});
    port_ = daemon_->WaitForHttpPort(30s);
    if (port_ == 0) throw std::runtime_error("no HTTP port; log:\n" + daemon_->Log());
  }

  void Stop() {
    if (!daemon_) return;
    daemon_->Terminate(20s);
    daemon_.reset();
    port_ = 0;
  }
  /// SIGKILL: the operator dies wherever it is.
  void Kill() {
    if (!daemon_) return;
    daemon_->Kill();
    daemon_.reset();
    port_ = 0;
  }

  [[nodiscard]] std::string Log() const { return daemon_ ? daemon_->Log() : "(no daemon)"; }

  [[nodiscard]] std::string Phase(const std::string& name) const {
    if (port_ == 0) return "";
    const HttpResponse r = HttpGet(port_, "/api/v1/workspaces/" + name);
    if (r.status != 200) return "";
    return JsonRows(r.body, "SELECT coalesce($1::jsonb #>> '{status,phase}', '')").at(0).at(0);
  }

  bool WaitPhase(const std::string& name, const std::string& phase,
                 std::chrono::milliseconds limit = kConverge) const {
    return Eventually([&] { return Phase(name) == phase; }, limit, kPoll);
  }

  /// POST .../move with `body`; the answer's status and body.
  [[nodiscard]] HttpResponse Post(const std::string& name, const std::string& body) const {
    return HttpRequest(port_, "POST", "/api/v1/workspaces/" + name + "/move",
                       {{"Content-Type", "application/json"}}, body, 60s);
  }

  [[nodiscard]] MoveView Move(const std::string& name) const {
    MoveView view;
    if (port_ == 0) return view;
    const HttpResponse r = HttpGet(port_, "/api/v1/workspaces/" + name + "/move");
    view.http = r.status;
    view.body = r.status != 0 ? r.body : r.error;
    if (r.status != 200) return view;
    const Row row = JsonRows(r.body,
                             "SELECT d->>'state', d->>'step', coalesce(d->>'message',''), "
                             "coalesce(d->>'reason',''), coalesce(d->>'verified',''), d->>'from', "
                             "d->>'to', coalesce(d->>'downtimeMs','0') "
                             "FROM (SELECT $1::jsonb AS d) j")
                        .at(0);
    view.state = row[0];
    view.step = row[1];
    view.message = row[2];
    view.reason = row[3];
    view.verified = row[4];
    view.from = row[5];
    view.to = row[6];
    view.downtime_ms = std::stol(row[7]);
    return view;
  }

  /// Waits until the move's state is one of the finished ones (or `step` is reached).
  MoveView WaitMove(const std::string& name, const std::string& until_step = "",
                    std::chrono::milliseconds limit = 120s) const {
    MoveView view;
    Eventually(
        [&] {
          view = Move(name);
          if (!until_step.empty()) return view.step == until_step;
          return view.state == "succeeded" || view.state == "failed" || view.state == "pruned";
        },
        limit, kPoll);
    return view;
  }

  /// The stack.env of the workspace's stack on the directory backend, "" when there is none.
  [[nodiscard]] std::string StackEnv(const std::string& name) const {
    const fs::path root = dir_.path() / "deployments";
    if (!fs::exists(root)) return "";
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
      if (entry.path().filename() != "stack.env") continue;
      std::ifstream in(entry.path());
      std::stringstream text;
      text << in.rdbuf();
      if (text.str().find("TM_WORKSPACE=" + name + "\n") != std::string::npos) return text.str();
    }
    return "";
  }

 private:
  std::string tag_;
  TempDir dir_;
  std::string config_;
  int starts_ = 0;
  int port_ = 0;
  std::unique_ptr<DaemonProcess> daemon_;
};

std::string Database(const std::string& workspace) {
  return tmaster::manifests::DefaultDatabaseName(workspace);
}
std::string Role(const std::string& workspace) {
  return tmaster::manifests::DefaultOwnerRole(workspace);
}

/// The clusters whose server has the workspace's database, e.g. "c1" or "c1,c2".
std::string WhereIs(const std::string& workspace) {
  std::string found;
  for (std::size_t i = 0; i < kClusters.size(); ++i) {
    Servers& servers = Servers::Shared();
    if (!servers[i].running()) continue;
    if (QueryValue(servers[i].Dsn(), "SELECT count(*) FROM pg_database WHERE datname = $1",
                   {Database(workspace)}) == "1") {
      found += (found.empty() ? "" : ",") + std::string(kClusters[i]);
    }
  }
  return found;
}

/// Rows and an order-free digest of the orders table on `cluster`, as the test reads them.
std::string Orders(const std::string& workspace, const std::string& cluster) {
  return QueryValue(Servers::Shared()[Index(cluster)].Dsn(Database(workspace)),
                    "SELECT count(*) || '/' || md5(string_agg(md5(o::text), '' ORDER BY id)) "
                    "FROM orders o");
}

bool CanLogin(const std::string& workspace, const std::string& cluster) {
  return QueryValue(Servers::Shared()[Index(cluster)].Dsn(),
                    "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1",
                    {Role(workspace)}) == "t";
}

/// A placed workspace, Ready on c1 (every cluster is empty and unlimited at first: the tie goes
/// to the first name... unless an earlier case left one there, so the test asks where it is),
/// its orders filled with `rows` rows of about 100 bytes.
std::string Converged(World& world, const std::string& name, int rows) {
  world.Workspace(name);
  REQUIRE_MESSAGE(world.WaitPhase(name, "Ready"), world.Log());
  const std::string where = WhereIs(name);
  REQUIRE(where.size() == 2);
  Execute(Servers::Shared()[Index(where)].Dsn(Database(name)),
          "INSERT INTO orders SELECT g, repeat(md5(g::text), 3) FROM generate_series(1, " +
              std::to_string(rows) + ") g");
  return where;
}

/// Another cluster than `from` (the lower name).
std::string OtherThan(const std::string& from) { return from == "c1" ? "c2" : "c1"; }

}  // namespace

TEST_CASE("move: a 10 MB tenant moves with its data verified, its stack rolled, the source kept "
          "NOLOGIN until pruned") {
  World world("mv-ok");
  world.Start();
  const std::string name = world.Name("shop");
  const std::string from = Converged(world, name, 75'000);
  const std::string to = OtherThan(from);
  const std::string before = Orders(name, from);
  // The tenant's data: the table with its index and TOAST (the empty database adds ~7.5 MB of
  // catalog that the dump does not carry).
  const std::string size = QueryValue(Servers::Shared()[Index(from)].Dsn(Database(name)),
                                      "SELECT pg_total_relation_size('orders')");
  const std::string env_before = world.StackEnv(name);
  REQUIRE(env_before.find("DB_PORT=" + std::to_string(Servers::Shared()[Index(from)].port())) !=
          std::string::npos);

  const HttpResponse asked = world.Post(name, "{\"to\": \"" + to + "\"}");
  INFO(asked.body);
  REQUIRE(asked.status == 202);
  const MoveView done = world.WaitMove(name);
  INFO(done.body);
  INFO("operator log:\n" << world.Log());
  REQUIRE(done.state == "succeeded");
  std::cout << "move_itest: moved a " << std::stol(size) / (1024 * 1024) << " MB tenant from "
            << from << " to " << to << ", downtime " << done.downtime_ms << " ms; its steps:\n";
  std::istringstream log(world.Log());
  for (std::string line; std::getline(log, line);) {
    if (line.find("Move") != std::string::npos) std::cout << "  " << line << "\n";
  }
  std::cout << std::flush;
  CHECK(done.downtime_ms > 0);
  CHECK(done.verified.find("digests equal") != std::string::npos);
  REQUIRE(world.WaitPhase(name, "Ready"));
  // The target's marker carries the source's migration state: the resume pass re-runs no
  // migration step and takes no pre-migration backup while the tenant is down.
  const std::string after_switch = world.Log().substr(world.Log().find("MoveSwitched"));
  CHECK(after_switch.find("ApplyMigrations") == std::string::npos);
  CHECK(after_switch.find("pre-migration") == std::string::npos);

  // The data is on the target, whole; the source is still there, closed and marked.
  CHECK(Orders(name, to) == before);
  CHECK(WhereIs(name) == (from < to ? from + "," + to : to + "," + from));
  CHECK(CanLogin(name, to));
  CHECK_FALSE(CanLogin(name, from));
  const std::string marker =
      QueryValue(Servers::Shared()[Index(from)].Dsn(),
                 "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
                 {Database(name)});
  CHECK(marker.find(";moved=" + to) != std::string::npos);
  // The stack follows the database.
  std::string env;
  Eventually(
      [&] {
        env = world.StackEnv(name);
        return env.find("DB_PORT=" + std::to_string(Servers::Shared()[Index(to)].port())) !=
               std::string::npos;
      },
      10s, kPoll);
  CHECK(env.find("DB_PORT=" + std::to_string(Servers::Shared()[Index(to)].port())) !=
        std::string::npos);

  // A second move is refused while the source is kept; the prune drops it.
  CHECK(world.Post(name, "{\"to\": \"c3\"}").status == 409);
  const HttpResponse pruned = world.Post(name, "{\"prune\": true}");
  INFO(pruned.body);
  CHECK(pruned.status == 200);
  CHECK(world.Move(name).state == "pruned");
  CHECK(WhereIs(name) == to);
  CHECK(QueryValue(Servers::Shared()[Index(from)].Dsn(),
                   "SELECT count(*) FROM pg_roles WHERE rolname = $1", {Role(name)}) == "0");
  // A restart keeps it where it is.
  world.Start();
  REQUIRE(world.WaitPhase(name, "Ready"));
  CHECK(WhereIs(name) == to);
  CHECK(Orders(name, to) == before);
}

/// After a failed move: rolled back, Ready on `from` with `before` intact, the stack unchanged.
void CheckRolledBack(World& world, const std::string& name, const std::string& from,
                     const std::string& before, const std::string& reason) {
  const MoveView failed = world.WaitMove(name);
  INFO(failed.body);
  INFO("operator log:\n" << world.Log());
  REQUIRE(failed.state == "failed");
  CHECK(failed.reason == reason);
  CHECK(failed.message.find("rolled back") != std::string::npos);
  REQUIRE(world.WaitPhase(name, "Ready"));
  CHECK(WhereIs(name) == from);
  CHECK(CanLogin(name, from));
  CHECK(Orders(name, from) == before);
  CHECK(world.StackEnv(name).find("DB_PORT=" +
                                  std::to_string(Servers::Shared()[Index(from)].port())) !=
        std::string::npos);
}

TEST_CASE("move: a restore error (a grant to a role only the source has) rolls back; the tenant "
          "is resumed and whole on its source") {
  World world("mv-restore");
  world.Start();
  const std::string name = world.Name("shop");
  const std::string from = Converged(world, name, 2'000);
  const std::string to = OtherThan(from);
  const std::string role = "reporting_" + std::to_string(Servers::Shared()[Index(from)].port());
  Execute(Servers::Shared()[Index(from)].Dsn(), "CREATE ROLE " + role + " NOLOGIN");
  Execute(Servers::Shared()[Index(from)].Dsn(Database(name)), "GRANT SELECT ON orders TO " + role);
  const std::string before = Orders(name, from);
  const HttpResponse asked = world.Post(name, "{\"to\": \"" + to + "\"}");
  REQUIRE_MESSAGE(asked.status == 202, asked.body);
  CheckRolledBack(world, name, from, before, "BackupRestoreFailed");
}

TEST_CASE("move: the operator killed during the restore rolls back on its next start") {
  World world("mv-kill");
  world.Start("restore:hang");
  const std::string name = world.Name("shop");
  const std::string from = Converged(world, name, 2'000);
  const std::string to = OtherThan(from);
  const std::string before = Orders(name, from);
  const HttpResponse asked = world.Post(name, "{\"to\": \"" + to + "\"}");
  REQUIRE_MESSAGE(asked.status == 202, asked.body);
  REQUIRE_MESSAGE(world.WaitMove(name, "restore").step == "restore", world.Log());
  CHECK(WhereIs(name).find(to) != std::string::npos);  // the target's copy exists now
  CHECK_FALSE(CanLogin(name, from));                   // suspended
  world.Kill();
  world.Start();
  CheckRolledBack(world, name, from, before, "MoveInterrupted");
}

TEST_CASE("move: the target down fails the move; the tenant stays on its source") {
  World world("mv-down");
  world.Start();
  const std::string name = world.Name("shop");
  const std::string from = Converged(world, name, 500);
  const std::string before = Orders(name, from);
  // c3 is never a workspace's first placement here (it ties last), so it can go down.
  REQUIRE(from != "c3");
  Servers::Shared()[2].Stop();
  const HttpResponse asked = world.Post(name, "{\"to\": \"c3\"}");
  INFO(asked.body);
  if (asked.status == 202) {
    // Asked before the cluster monitor saw it go: the prepare step fails to connect.
    const MoveView failed = world.WaitMove(name);
    INFO(failed.body);
    CHECK(failed.state == "failed");
    CHECK(failed.message.find("rolled back") != std::string::npos);
  } else {
    // The monitor saw it first: refused before anything happened.
    CHECK(asked.status == 422);
    CHECK(asked.body.find("does not answer") != std::string::npos);
  }
  Servers::Shared()[2].Start();
  REQUIRE(world.WaitPhase(name, "Ready"));
  CHECK(WhereIs(name) == from);
  CHECK(CanLogin(name, from));
  CHECK(Orders(name, from) == before);
}

TEST_CASE("move: the operator killed after the switch finishes the move on its next start") {
  World world("mv-forward");
  world.Start("resume:hang");
  const std::string name = world.Name("shop");
  const std::string from = Converged(world, name, 2'000);
  const std::string to = OtherThan(from);
  const std::string before = Orders(name, from);
  const HttpResponse asked = world.Post(name, "{\"to\": \"" + to + "\"}");
  REQUIRE_MESSAGE(asked.status == 202, asked.body);
  REQUIRE_MESSAGE(world.WaitMove(name, "resume").step == "resume", world.Log());
  world.Kill();
  world.Start();
  const MoveView done = world.WaitMove(name);
  INFO(done.body);
  INFO("operator log:\n" << world.Log());
  REQUIRE(done.state == "succeeded");
  REQUIRE(world.WaitPhase(name, "Ready"));
  CHECK(Orders(name, to) == before);
  CHECK(CanLogin(name, to));
  CHECK_FALSE(CanLogin(name, from));
}
