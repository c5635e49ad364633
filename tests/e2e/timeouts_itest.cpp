// End to end (issue 11, item 3): a tenant holding a lock on its own database cannot stall the
// operator. The built tenant-operator runs as a daemon against this binary's private PostgreSQL;
// the tenant's own role (its password derived from the master key, as the operator derives it)
// holds `LOCK TABLE items IN ACCESS EXCLUSIVE MODE` in an open transaction while the product gets
// a migration that must alter `items`. Its workspace goes Degraded naming the lock timeout and is
// retried; the other workspace converges meanwhile; SIGTERM still ends the process within
// `reconcile.drainTimeout` (+ the cancel's grace when a statement is stuck waiting).
//
// Each case has its own workspace names, fleet folder and store database (`store.dsnEnv` ->
// tm_store_<case>). The measured figures are printed on stdout (`timeouts_itest: ...: N ms`).
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <chrono>
#include <filesystem>
#include <initializer_list>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/secret.hpp"
#include "reconcilers/postgres/desired.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/http_get.hpp"
#include "tests/support/pg_server.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace tmaster::testing;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

const std::string kOperator = std::string(TM_BINARY_DIR) + "/tenant-operator";
const std::string kMasterKey = "timeouts-e2e-master-key-0123456789abcdef01";
const std::string kCluster = "default";
constexpr std::chrono::milliseconds kPoll = 100ms;
constexpr std::chrono::milliseconds kDrainTimeout = 3s;  // reconcile.drainTimeout of both cases
constexpr std::chrono::milliseconds kCancelGrace = 1s;   // Manager's cancel_grace

long MillisSince(SteadyClock::time_point start) {
  return static_cast<long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start).count());
}

void Timing(const std::string& what, long millis) {
  std::cout << "timeouts_itest: " << what << ": " << millis << " ms" << std::endl;
}

const json::value* Find(const json::value& root, std::initializer_list<std::string_view> path) {
  const json::value* at = &root;
  for (std::string_view key : path) {
    const json::object* object = at->if_object();
    if (object == nullptr) return nullptr;
    at = object->if_contains(key);
    if (at == nullptr) return nullptr;
  }
  return at;
}

std::string Str(const json::value& root, std::initializer_list<std::string_view> path) {
  const json::value* at = Find(root, path);
  return at != nullptr && at->is_string() ? std::string(at->get_string()) : std::string();
}

/// What GET /api/v1/workspaces/NAME says.
struct View {
  int http = 0;
  std::string phase;
  std::string next_retry;
  std::string ready_reason;  ///< the Ready condition's reason
  std::string body;
};

std::string RoleOf(const std::string& workspace) {
  return "user_" + workspace;
}
std::string DatabaseOf(const std::string& workspace) {
  return "tenant_" + workspace;
}

/// One case's world: a fleet folder with product `shop` (migrations/shop/0001 creates `items`),
/// shared workspaces, a config with the given `reconcile` timeouts, its own store database.
/// Backups before migrations are off unless `backups_before_migrations`: the cases about a
/// migration's own wait for a lock would otherwise meet the backup's wait first.
class World {
 public:
  World(std::string tag, std::vector<std::string> workspaces, std::string timeouts,
        bool backups_before_migrations = false)
      : pg_(PgServer::Shared()), tag_(std::move(tag)), timeouts_(std::move(timeouts)) {
    dir_.Write("fleet/products.yaml",
               "apiVersion: tenantmaster.io/v1alpha1\nkind: Product\nmetadata:\n  name: shop\n"
               "spec:\n  image: ghcr.io/acme/shop\n  defaultVersion: \"1.0.0\"\n"
               "  migrations: migrations/shop\n  modes: [shared]\n");
    dir_.Write("fleet/migrations/shop/0001_items.sql",
               "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);\n");
    for (const std::string& name : workspaces) {
      dir_.Write(
          "fleet/workspaces/" + name + ".yaml",
          "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: " + name +
              "\nspec:\n  product: shop\n  mode: shared\n  database:\n"
              "    reclaimPolicy: Delete\n");
    }
    std::string yaml = "baseDomain: example.test\nmasterKeyEnv: TM_MASTER_KEY\n";
    yaml += "clusters:\n  - name: " + kCluster + "\n    dsnEnv: TM_PG_DSN\n";
    yaml += "store:\n  dsnEnv: TM_STORE_DSN\n";
    yaml += "sources:\n  - name: local\n    directory: " + (dir_.path() / "fleet").string() + "\n";
    yaml +=
        "stacks:\n  backend: directory\n  directory: " + (dir_.path() / "deployments").string() +
        "\n";
    yaml += "http:\n  listen: \"127.0.0.1:0\"\n";
    yaml += "backups:\n  directory: " + (dir_.path() / "backups").string() + "\n";
    yaml += std::string("  beforeMigrations: ") + (backups_before_migrations ? "true" : "false") +
            "\n";
    yaml += "reconcile:\n  workers: 4\n  resyncInterval: 5m\n" + timeouts_;
    config_ = dir_.Write("operator.yaml", yaml).string();
  }

  PgServer& pg() { return pg_; }

  /// Starts a daemon (its own log and state folder) and waits for its HTTP port.
  void Start() {
    const int n = ++starts_;
    daemon_.reset();
    daemon_ = std::make_unique<DaemonProcess>(DaemonProcess::Options{
        .argv = {kOperator, "--config", config_, "--state-dir",
                 (dir_.path() / ("state-" + std::to_string(n))).string()},
        .env = {{"TM_MASTER_KEY", kMasterKey},
                {"TM_PG_DSN", pg_.Dsn()},
                {"TM_STORE_DSN", pg_.Dsn("tm_store_" + tag_)}},
        .log_file = (dir_.path() / ("operator-" + std::to_string(n) + ".log")).string()});
    port_ = daemon_->WaitForHttpPort(30s);
    if (port_ == 0) throw std::runtime_error("no HTTP port; log:\n" + daemon_->Log());
  }
  DaemonProcess& daemon() { return *daemon_; }
  [[nodiscard]] std::string Log() const { return daemon_ ? daemon_->Log() : std::string(); }

  [[nodiscard]] View Get(const std::string& name) const {
    const HttpResponse r = HttpGet(port_, "/api/v1/workspaces/" + name);
    View view;
    view.http = r.status;
    view.body = r.status != 0 ? r.body : r.error;
    if (r.status != 200) return view;
    boost::system::error_code error;
    const json::value root = json::parse(r.body, error);
    if (error) return view;
    view.phase = Str(root, {"status", "phase"});
    view.next_retry = Str(root, {"status", "nextRetry"});
    if (const json::value* conditions = Find(root, {"status", "conditions"});
        conditions != nullptr && conditions->is_array()) {
      for (const json::value& condition : conditions->get_array()) {
        if (Str(condition, {"type"}) == "Ready") view.ready_reason = Str(condition, {"reason"});
      }
    }
    return view;
  }

  /// Adds a migration to product `shop` the way an editor saving atomically does (written
  /// aside, renamed into place), so the watcher never reads half of it.
  void AddMigration(const std::string& file, const std::string& sql) const {
    const fs::path staged = dir_.Write("staging/" + file, sql);
    fs::rename(staged, dir_.path() / "fleet" / "migrations" / "shop" / file);
  }

  /// Whether `items.note` exists in the workspace's database (a catalog read: it takes no lock
  /// on `items`, so it answers while the tenant holds one).
  bool HasNoteColumn(const std::string& workspace) {
    return QueryValue(pg_.Dsn(DatabaseOf(workspace)),
                      "SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
                      "WHERE c.relname = 'items' AND a.attname = 'note' AND NOT a.attisdropped") ==
           "1";
  }

  /// A session as the workspace's own tenant role, with the password the operator derives.
  std::unique_ptr<PgSession> TenantSession(const std::string& workspace) {
    const tmaster::Secret password = tmaster::postgres::DerivePassword(
        tmaster::Secret(kMasterKey), kCluster, RoleOf(workspace), 0);
    return std::make_unique<PgSession>(
        pg_.DsnAs(RoleOf(workspace), password.Reveal(), DatabaseOf(workspace)));
  }

 private:
  PgServer& pg_;
  std::string tag_;
  std::string timeouts_;
  TempDir dir_;
  std::string config_;
  int starts_ = 0;
  int port_ = 0;
  std::unique_ptr<DaemonProcess> daemon_;
};

bool WaitReady(const World& world, const std::string& name, std::chrono::milliseconds limit) {
  return Eventually([&] { return world.Get(name).phase == "Ready"; }, limit, kPoll);
}

/// How many of the operator's sessions (application_name tenant-master) as the workspace's role,
/// in its database, are waiting for a lock: "0" or "1".
std::string OperatorWaitingOnLock(PgServer& pg, const std::string& workspace) {
  return QueryValue(pg.Dsn(),
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND usename = $2 "
                    "AND application_name = 'tenant-master' AND wait_event_type = 'Lock'",
                    {DatabaseOf(workspace), RoleOf(workspace)});
}

}  // namespace

TEST_CASE("timeouts: a tenant holding a lock degrades only its workspace; SIGTERM stays bounded") {
  World world("locks", {"lockfree", "locked"},
              "  lockTimeout: 1s\n  statementTimeout: 5s\n  drainTimeout: 3s\n");
  world.Start();
  INFO("log:\n" << world.Log());
  REQUIRE(WaitReady(world, "lockfree", 30s));
  REQUIRE(WaitReady(world, "locked", 30s));

  // The tenant of `locked`, with its own login, holds a lock the next migration needs.
  const auto tenant = world.TenantSession("locked");
  REQUIRE(tenant->Run("BEGIN") == "");
  REQUIRE(tenant->Run("LOCK TABLE items IN ACCESS EXCLUSIVE MODE") == "");

  const auto added = SteadyClock::now();
  world.AddMigration("0002_note.sql", "ALTER TABLE items ADD COLUMN note text;\n");

  // The other workspace is not held up by it.
  CHECK(Eventually([&] { return world.HasNoteColumn("lockfree"); }, 20s, kPoll));
  CHECK(WaitReady(world, "lockfree", 10s));
  Timing("migration added to lockfree migrated", MillisSince(added));

  // The blocked one goes Degraded, saying what it waited for, with a retry planned.
  View locked;
  const bool degraded = Eventually(
      [&] {
        locked = world.Get("locked");
        return locked.phase == "Degraded" && locked.ready_reason == "LockTimeout";
      },
      10s, kPoll);
  INFO("locked: " << locked.body);
  REQUIRE(degraded);
  Timing("migration added to locked Degraded (LockTimeout)", MillisSince(added));
  // The message names the timeout and its configured value.
  CHECK(locked.body.find("lock_timeout (1s) passed waiting for a lock") != std::string::npos);
  CHECK(locked.next_retry != "");
  CHECK_FALSE(world.HasNoteColumn("locked"));

  // ...and is retried with backoff: a later attempt plans another retry.
  const std::string first_retry = locked.next_retry;
  CHECK(Eventually(
      [&] {
        const View now = world.Get("locked");
        return now.phase == "Degraded" && !now.next_retry.empty() && now.next_retry != first_retry;
      },
      15s, kPoll));
  CHECK(world.Get("lockfree").phase == "Ready");

  // SIGTERM with the lock still held, preferably while a pass of `locked` waits on it (each
  // attempt waits up to lockTimeout; between attempts it is in backoff): bounded either way.
  const bool in_flight =
      Eventually([&] { return OperatorWaitingOnLock(world.pg(), "locked") == "1"; }, 10s, 20ms);
  std::cout << "timeouts_itest: SIGTERM sent with a pass of locked "
            << (in_flight ? "waiting on the lock" : "in backoff") << std::endl;
  const auto term = SteadyClock::now();
  const int code = world.daemon().Terminate(20s);
  const long took = MillisSince(term);
  Timing("SIGTERM to exit (lock held, drainTimeout 3s)", took);
  CHECK(code == 0);
  CHECK(took <= (kDrainTimeout + 2s).count());
  CHECK_FALSE(world.HasNoteColumn("locked"));

  // The tenant lets go; the next daemon converges `locked` too.
  REQUIRE(tenant->Run("COMMIT") == "");
  const auto restarted = SteadyClock::now();
  world.Start();
  CHECK(Eventually([&] { return world.HasNoteColumn("locked"); }, 20s, kPoll));
  CHECK(WaitReady(world, "locked", 10s));
  Timing("restart to locked migrated", MillisSince(restarted));
  CHECK(world.daemon().Terminate(20s) == 0);
}

TEST_CASE("timeouts: the backup before a migration waits for a tenant's lock no longer than "
          "lockTimeout; the migration waits behind it, only in that workspace") {
  World world("prelock", {"free", "held"},
              "  lockTimeout: 1s\n  statementTimeout: 5s\n  drainTimeout: 3s\n",
              /*backups_before_migrations=*/true);
  world.Start();
  INFO("log:\n" << world.Log());
  REQUIRE(WaitReady(world, "free", 30s));
  REQUIRE(WaitReady(world, "held", 30s));

  const auto tenant = world.TenantSession("held");
  REQUIRE(tenant->Run("BEGIN") == "");
  REQUIRE(tenant->Run("LOCK TABLE items IN ACCESS EXCLUSIVE MODE") == "");
  const auto added = SteadyClock::now();
  world.AddMigration("0002_note.sql", "ALTER TABLE items ADD COLUMN note text;\n");

  // The other workspace is backed up and migrated.
  CHECK(Eventually([&] { return world.HasNoteColumn("free"); }, 30s, kPoll));
  CHECK(WaitReady(world, "free", 10s));

  // The held one: its backup gave up after lockTimeout (not the backups' own 30 s), so the
  // workspace says why well within that, and its migration did not run.
  View held;
  const bool waiting = Eventually(
      [&] {
        held = world.Get("held");
        return held.phase == "Degraded" && held.ready_reason == "PreMigrationBackupFailed";
      },
      15s, kPoll);
  INFO("held: " << held.body);
  REQUIRE(waiting);
  Timing("migration added to held Degraded (PreMigrationBackupFailed)", MillisSince(added));
  CHECK(held.body.find("lock") != std::string::npos);
  CHECK(held.next_retry != "");
  CHECK_FALSE(world.HasNoteColumn("held"));

  // The tenant lets go: the retry backs it up and migrates it.
  REQUIRE(tenant->Run("COMMIT") == "");
  CHECK(Eventually([&] { return world.HasNoteColumn("held"); }, 60s, kPoll));
  CHECK(WaitReady(world, "held", 10s));
  CHECK(world.daemon().Terminate(20s) == 0);
}

TEST_CASE("timeouts: SIGTERM cancels a migration stuck on a tenant's lock after drainTimeout") {
  // Timeouts far beyond the drain: only the drain's cancel can end the waiting statement.
  World world("stuck", {"stuck"},
              "  lockTimeout: 60s\n  statementTimeout: 60s\n  migrationTimeout: 60s\n"
              "  drainTimeout: 3s\n");
  world.Start();
  INFO("log:\n" << world.Log());
  REQUIRE(WaitReady(world, "stuck", 30s));

  const auto tenant = world.TenantSession("stuck");
  REQUIRE(tenant->Run("BEGIN") == "");
  REQUIRE(tenant->Run("LOCK TABLE items IN ACCESS EXCLUSIVE MODE") == "");
  world.AddMigration("0002_note.sql", "ALTER TABLE items ADD COLUMN note text;\n");

  // The operator's migration session waits on the lock.
  REQUIRE(
      Eventually([&] { return OperatorWaitingOnLock(world.pg(), "stuck") == "1"; }, 20s, kPoll));

  const std::size_t from = world.daemon().LogSize();
  const auto term = SteadyClock::now();
  const int code = world.daemon().Terminate(20s);
  const long took = MillisSince(term);
  Timing("SIGTERM to exit (migration stuck on a lock, drainTimeout 3s)", took);
  const std::string log = world.Log().substr(from);
  INFO("log after SIGTERM:\n" << log);
  // The drain waited its bound, cancelled the statement, and the worker came back in time:
  // exit 0 (1 would mean a worker was left behind, see controller/runtime/manager.cpp Drain).
  CHECK(code == 0);
  CHECK(took >= (kDrainTimeout - 500ms).count());
  CHECK(took <= (kDrainTimeout + kCancelGrace + 1500ms).count());
  CHECK(log.find("cancelling the statements in flight") != std::string::npos);
  CHECK(log.find("exiting without them") == std::string::npos);
  CHECK(OperatorWaitingOnLock(world.pg(), "stuck") == "0");
  CHECK_FALSE(world.HasNoteColumn("stuck"));
  CHECK(tenant->Run("COMMIT") == "");
}
