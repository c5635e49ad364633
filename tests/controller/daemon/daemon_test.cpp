// The daemon against fakes (in-memory store and PostgreSQL) and a real watched directory: what
// it stores (specs, generations, status, events), what it deletes and what it refuses to, and
// that a converged fleet costs no writes. The same behaviours against real PostgreSQL and the
// built binary are in tests/e2e/daemon_itest.cpp.
#include <doctest/doctest.h>
#include <spdlog/spdlog.h>

#include <boost/json.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>
#include <thread>

#include "common/crypto.hpp"
#include "controller/bindings/publisher.hpp"
#include "controller/daemon/daemon.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/fake_leader_lock.hpp"
#include "tests/support/fake_postgres.hpp"
#include "tests/support/fake_source.hpp"
#include "tests/support/fake_stacks.hpp"
#include "tests/support/fake_store.hpp"
#include "tests/support/shop_fleet.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

using namespace tmaster;
using namespace std::chrono_literals;
using testing::Eventually;

constexpr const char* kProduct = testing::kShopProduct;

std::string WorkspaceYaml(const std::string& name, const std::string& database_extra = "") {
  return "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata: {name: " + name +
         "}\nspec:\n  product: shop\n  mode: shared\n  database:\n    cluster: default\n" +
         database_extra;
}

/// A daemon on a watched TempDir, the fakes, and a thread running it.
class Harness {
 public:
  explicit Harness(int max_deletions = 3, controller::Duration resync = 10min) {
    spdlog::set_level(spdlog::level::off);  // the daemon's log is for people, not for test output
    dir_.Write("fleet/product.yaml", kProduct);
    config_.base_domain = "example.test";
    config_.clusters.push_back({.name = "default", .dsn = {}, .stacks_host = {}, .stacks_port = 0});
    manifests::SourceConfig source;
    source.name = "local";
    source.directory = std::filesystem::path(dir_.path()) / "fleet";
    config_.sources.push_back(source);
    max_deletions_ = max_deletions;
    resync_ = resync;
    MakeDaemon();
  }
  ~Harness() { Stop(); }

  /// A new daemon on the same store, cluster and directory (a restart).
  void MakeDaemon() {
    controller::DaemonDeps deps;
    deps.config = &config_;
    deps.store = &store_;
    deps.gateways = {{"default", &postgres_}};
    deps.master_key = &key_;
    deps.metrics = &metrics_;
    deps.clock = &clock_;
    deps.random = &random_;
    deps.leader_lock = leader_lock;
    deps.stacks = stacks;
    deps.make_source = make_source;
    deps.store_database = store_database;
    controller::DaemonOptions options;
    options.workers = 2;
    options.resync_interval = resync_;
    options.max_deletions_per_sync = max_deletions_;
    options.debounce = 20ms;
    options.backoff.base = 20ms;
    options.backoff.max = 200ms;
    options.leader_poll = leader_poll;
    options.prune_interval = prune_interval;
    options.endpoint_check_interval = 50ms;
    daemon_ = std::make_unique<controller::Daemon>(std::move(deps), options);
  }

  void Start() {
    thread_ = std::thread([this] { daemon_->Run(); });
  }
  void Stop() {
    daemon_->Stop();
    if (thread_.joinable()) thread_.join();
  }
  void Write(const std::string& name, const std::string& text) {
    dir_.Write("fleet/" + name, text);
  }
  void Remove(const std::string& name) {
    std::filesystem::remove(std::filesystem::path(dir_.path()) / "fleet" / name);
  }

  std::optional<controller::WorkspaceStatus> Status(const std::string& name) {
    const auto state = store_.Snapshot();
    const auto it = state.statuses.find(name);
    if (it == state.statuses.end()) return std::nullopt;
    return it->second;
  }
  bool HasPhase(const std::string& name, const std::string& phase) {
    const auto status = Status(name);
    return status && status->phase == phase;
  }
  std::int64_t Generation(const std::string& name) {
    const auto state = store_.Snapshot();
    const auto it = state.workspaces.find(name);
    return it == state.workspaces.end() ? 0 : it->second.generation;
  }
  std::vector<std::string> EventReasons(const std::string& workspace) {
    std::vector<std::string> out;
    for (const auto& event : store_.Snapshot().events) {
      if (event.workspace == workspace) out.push_back(event.reason);
    }
    return out;
  }
  bool HasEvent(const std::string& workspace, const std::string& reason) {
    const auto reasons = EventReasons(workspace);
    return std::find(reasons.begin(), reasons.end(), reason) != reasons.end();
  }
  std::optional<controller::SourceStatus> Source() {
    const auto state = store_.Snapshot();
    const auto it = state.sources.find("local");
    if (it == state.sources.end()) return std::nullopt;
    return it->second;
  }

  /// Reconcile runs that ended with `result` (success, failure, stalled), from the metrics.
  double Reconciles(const std::string& result) const {
    const std::string text = metrics_.Render();
    const std::string key = "tenant_master_reconcile_total{result=\"" + result + "\"} ";
    const auto at = text.find(key);
    return at == std::string::npos ? -1 : std::stod(text.substr(at + key.size()));
  }
  /// Calls of the store's PutSourceStatus: one per sync that read the source.
  std::size_t SourceSyncs() const { return store_.Calls("PutSourceStatus"); }
  manifests::Config& config() { return config_; }

  // Set before MakeDaemon() to inject them.
  controller::LeaderLock* leader_lock = nullptr;
  controller::StacksContext* stacks = nullptr;
  controller::SourceFactory make_source;
  controller::Duration leader_poll = std::chrono::seconds(1);
  controller::Duration prune_interval = std::chrono::minutes(5);
  std::string store_database = "tenant_master";

  testing::FakeStore& store() { return store_; }
  testing::FakePostgres& postgres() { return postgres_; }
  controller::Daemon& daemon() { return *daemon_; }

 private:
  testing::TempDir dir_;
  manifests::Config config_;
  testing::FakeStore store_;
  testing::FakePostgres postgres_;
  controller::Metrics metrics_;
  controller::SteadyClock clock_;
  controller::MtRandom random_;
  const Secret key_{"0123456789abcdef0123456789abcdef-daemon-test"};
  int max_deletions_ = 3;
  controller::Duration resync_{};
  std::unique_ptr<controller::Daemon> daemon_;
  std::thread thread_;
};

}  // namespace

TEST_CASE("daemon: a watched directory converges; spec, generation, status and events are stored") {
  Harness h;
  h.Write("a.yaml", WorkspaceYaml("alpha"));
  h.Start();
  REQUIRE(Eventually([&] { return h.HasPhase("alpha", "Ready"); }));
  CHECK(h.Generation("alpha") == 1);
  const auto status = h.Status("alpha");
  REQUIRE(status);
  CHECK(status->observed_generation == 1);
  CHECK(status->conditions_json.find(R"("type":"DatabaseReady","status":"True")") !=
        std::string::npos);
  CHECK(status->last_runs_json.find(R"("result":"Succeeded")") != std::string::npos);
  CHECK(h.postgres().cluster().databases.count("tenant_alpha") == 1);
  CHECK(h.HasEvent("alpha", "CreateDatabase"));
  CHECK(h.HasEvent("alpha", "Ready"));
  CHECK(h.daemon().Readiness().ready);

  // A new file is picked up by the watcher.
  h.Write("b.yaml", WorkspaceYaml("beta"));
  REQUIRE(Eventually([&] { return h.HasPhase("beta", "Ready"); }));

  // An edit bumps the generation once and converges it; a reformat does not bump it.
  h.Write("a.yaml", WorkspaceYaml("alpha", "    connectionLimit: 7\n"));
  REQUIRE(Eventually([&] {
    const auto s = h.Status("alpha");
    return s && s->observed_generation == 2 && s->phase == "Ready";
  }));
  CHECK(h.Generation("alpha") == 2);
  CHECK(h.postgres().cluster().roles.at("user_alpha").connection_limit == 7);
  // A reformat: first prove the daemon read it (a sync of the source), then that nothing moved.
  const std::size_t syncs = h.SourceSyncs();
  h.Write("a.yaml", "# a comment\n" + WorkspaceYaml("alpha", "    connectionLimit:    7\n"));
  REQUIRE(Eventually([&] { return h.SourceSyncs() > syncs; }));
  CHECK(h.Generation("alpha") == 2);
  CHECK(h.Status("alpha")->observed_generation == 2);
}

TEST_CASE("daemon: a converged fleet's resync sends no DDL and writes no status") {
  Harness h(3, 150ms);
  h.Write("a.yaml", WorkspaceYaml("alpha"));
  h.Write("b.yaml", WorkspaceYaml("beta"));
  h.Start();
  REQUIRE(Eventually([&] { return h.HasPhase("alpha", "Ready") && h.HasPhase("beta", "Ready"); }));
  // One resync of each first, so that whatever converging wrote is behind us.
  const double converged = h.Reconciles("success");
  REQUIRE(Eventually([&] { return h.Reconciles("success") >= converged + 2; }));
  h.store().ResetCalls();
  const int applies = h.postgres().apply_calls();
  const double before = h.Reconciles("success");
  // Several resyncs of both (every 150 ms): proven by the reconcile counter, not by a sleep.
  REQUIRE(Eventually([&] { return h.Reconciles("success") >= before + 6; }));
  CHECK(h.postgres().apply_calls() == applies);
  CHECK(h.store().Calls("PutStatus") == 0);
  CHECK(h.store().Calls("AppendEvent") == 0);
}

TEST_CASE("daemon: a restart's resync reads each workspace's recorded identity from the term's "
          "start, not one store query each") {
  Harness h;
  for (const std::string name : {"alpha", "beta", "gamma", "delta"}) {
    h.Write(name + ".yaml", WorkspaceYaml(name));
  }
  h.Start();
  REQUIRE(Eventually([&] {
    return h.HasPhase("alpha", "Ready") && h.HasPhase("beta", "Ready") &&
           h.HasPhase("gamma", "Ready") && h.HasPhase("delta", "Ready");
  }));
  h.Stop();
  h.MakeDaemon();
  h.store().ResetCalls();
  const double before = h.Reconciles("success");
  h.Start();
  REQUIRE(Eventually([&] { return h.Reconciles("success") >= before + 4; }));
  // The term's start lists the rows once; before, each first pass asked Get(name).
  CHECK(h.store().Calls("ListWorkspaces") >= 1);
  CHECK(h.store().Calls("Get") == 0);
  CHECK(h.store().Calls("PutStatus") == 0);
}

TEST_CASE("daemon: drift is corrected and reported as such") {
  Harness h;
  h.Write("a.yaml", WorkspaceYaml("alpha"));
  h.Start();
  REQUIRE(Eventually([&] { return h.HasPhase("alpha", "Ready"); }));
  h.Stop();
  // Someone changes the role by hand while the operator is down; a restart resyncs everything.
  h.postgres().cluster().roles.at("user_alpha").connection_limit = 99;
  h.MakeDaemon();
  h.Start();
  REQUIRE(Eventually([&] { return h.HasEvent("alpha", "DriftCorrected"); }));
  CHECK(h.Generation("alpha") == 1);
  CHECK(h.postgres().cluster().roles.at("user_alpha").connection_limit == -1);
}

TEST_CASE("daemon: an invalid manifest stalls its workspace and deletes nothing") {
  Harness h;
  h.Write("a.yaml", WorkspaceYaml("alpha"));
  h.Start();
  REQUIRE(Eventually([&] { return h.HasPhase("alpha", "Ready"); }));
  h.Write("a.yaml", WorkspaceYaml("alpha", "    connectionLimit: many\n"));
  REQUIRE(Eventually([&] { return h.HasPhase("alpha", "Stalled"); }));
  const auto status = h.Status("alpha");
  REQUIRE(status);
  CHECK(status->conditions_json.find("InvalidManifest") != std::string::npos);
  CHECK(status->observed_generation == 1);
  CHECK(h.Generation("alpha") == 1);
  CHECK(h.postgres().cluster().databases.count("tenant_alpha") == 1);
  const auto source = h.Source();
  REQUIRE(source);
  CHECK_FALSE(source->ready);
  CHECK(source->reason == "InvalidManifests");
  CHECK_FALSE(h.daemon().Readiness().ready);
  // Fixed: Ready again, the source healthy.
  h.Write("a.yaml", WorkspaceYaml("alpha"));
  REQUIRE(Eventually([&] { return h.HasPhase("alpha", "Ready"); }));
  REQUIRE(Eventually([&] { return h.Source() && h.Source()->ready; }));
}

TEST_CASE("daemon: a removed workspace runs its reclaim policy from the stored spec") {
  Harness h;
  h.Write("keep.yaml", WorkspaceYaml("keeper"));
  h.Write("r.yaml", WorkspaceYaml("retained"));
  h.Write("d.yaml", WorkspaceYaml("dropped", "    reclaimPolicy: Delete\n"));
  h.Start();
  REQUIRE(Eventually([&] {
    return h.HasPhase("retained", "Ready") && h.HasPhase("dropped", "Ready") &&
           h.HasPhase("keeper", "Ready");
  }));
  h.Remove("r.yaml");
  h.Remove("d.yaml");
  REQUIRE(Eventually(
      [&] { return h.HasEvent("retained", "Retained") && h.HasEvent("dropped", "Deleted"); }));
  auto& cluster = h.postgres().cluster();
  CHECK(cluster.databases.count("tenant_retained") == 1);
  REQUIRE(cluster.roles.count("user_retained") == 1);
  CHECK_FALSE(cluster.roles.at("user_retained").can_login);
  CHECK(cluster.databases.count("tenant_dropped") == 0);
  CHECK(cluster.roles.count("user_dropped") == 0);
  // The store forgets them (their events stay); the others are untouched.
  REQUIRE(
      Eventually([&] { return h.Generation("retained") == 0 && h.Generation("dropped") == 0; }));
  CHECK_FALSE(h.Status("dropped"));
  CHECK(h.HasPhase("keeper", "Ready"));
  CHECK(h.HasEvent("dropped", "Deleting"));
}

TEST_CASE("daemon: the deletion guard keeps everything when a sync would remove too much") {
  Harness h(/*max_deletions=*/1);
  h.Write("a.yaml", WorkspaceYaml("alpha"));
  h.Write("b.yaml", WorkspaceYaml("beta"));
  h.Write("c.yaml", WorkspaceYaml("gamma"));
  h.Start();
  REQUIRE(Eventually([&] {
    return h.HasPhase("alpha", "Ready") && h.HasPhase("beta", "Ready") &&
           h.HasPhase("gamma", "Ready");
  }));
  h.Remove("a.yaml");
  h.Remove("b.yaml");  // two removals, limit one
  REQUIRE(Eventually([&] { return h.Source() && h.Source()->reason == "DeletionGuard"; }));
  // The guard is decided before anything is marked: nothing was marked in that sync, and a
  // worker has nothing to delete.
  CHECK(h.store().Calls("MarkDeleting") == 0);
  CHECK(h.postgres().cluster().databases.count("tenant_alpha") == 1);
  CHECK(h.postgres().cluster().databases.count("tenant_beta") == 1);
  CHECK(h.Generation("alpha") == 1);
  CHECK_FALSE(h.HasEvent("alpha", "Deleting"));
  // One manifest returns: one removal is within the limit and goes ahead.
  h.Write("b.yaml", WorkspaceYaml("beta"));
  REQUIRE(Eventually([&] { return h.HasEvent("alpha", "Retained"); }));
  REQUIRE(Eventually([&] { return h.Source() && h.Source()->ready; }));
  CHECK(h.HasPhase("beta", "Ready"));
}

TEST_CASE("daemon: a source that empties deletes nothing, whatever the limit") {
  Harness h(/*max_deletions=*/10);
  h.Write("a.yaml", WorkspaceYaml("alpha"));
  h.Start();
  REQUIRE(Eventually([&] { return h.HasPhase("alpha", "Ready"); }));
  h.Remove("a.yaml");
  REQUIRE(Eventually([&] { return h.Source() && h.Source()->reason == "DeletionGuard"; }));
  CHECK(h.postgres().cluster().databases.count("tenant_alpha") == 1);
  CHECK(h.HasPhase("alpha", "Ready"));
}

TEST_CASE("daemon: a transient failure backs off, warns once, then converges") {
  Harness h;
  // The first three applies fail as a lost connection would.
  for (int call = 1; call <= 3; ++call) {
    h.postgres().FailApplyCall(
        call, Failure::Transient("ConnectionFailed", "cluster default: connection lost"));
  }
  h.Write("a.yaml", WorkspaceYaml("alpha"));
  h.Start();
  REQUIRE(Eventually([&] { return h.HasPhase("alpha", "Ready"); }));
  const auto reasons = h.EventReasons("alpha");
  CHECK(std::count(reasons.begin(), reasons.end(), "ConnectionFailed") == 1);
  const auto status = h.Status("alpha");
  REQUIRE(status);
  CHECK(status->last_runs_json.find("Failed") != std::string::npos);
  CHECK_FALSE(status->next_retry_unix);
}

TEST_CASE("daemon: a manifest that returns before its reclaim finished cancels the deletion") {
  Harness h;
  h.Write("keep.yaml", WorkspaceYaml("keeper"));
  h.Write("a.yaml", WorkspaceYaml("alpha"));
  h.Start();
  REQUIRE(
      Eventually([&] { return h.HasPhase("alpha", "Ready") && h.HasPhase("keeper", "Ready"); }));
  h.Stop();
  // Every later apply fails: the reclaim cannot finish.
  for (int call = h.postgres().apply_calls() + 1; call < h.postgres().apply_calls() + 500; ++call) {
    h.postgres().FailApplyCall(call);
  }
  h.MakeDaemon();
  h.Start();
  h.Remove("a.yaml");
  REQUIRE(Eventually([&] { return h.HasPhase("alpha", "Deleting"); }));
  {
    const auto state = h.store().Snapshot();
    REQUIRE(state.workspaces.count("alpha") == 1);
    CHECK(state.workspaces.at("alpha").deleting_since.has_value());
  }
  h.Write("a.yaml", WorkspaceYaml("alpha"));
  REQUIRE(Eventually([&] { return h.HasEvent("alpha", "DeletionCancelled"); }));
  REQUIRE(Eventually([&] { return h.HasPhase("alpha", "Ready"); }));
  const auto state = h.store().Snapshot();
  CHECK_FALSE(state.workspaces.at("alpha").deleting_since.has_value());
  CHECK(state.workspaces.at("alpha").generation == 1);
  CHECK(h.postgres().cluster().roles.at("user_alpha").can_login);
}

namespace {

constexpr const char* kTemplate = R"(services:
  app:
    image: ${TM_IMAGE}:${TM_VERSION}
    environment:
      DATABASE_URL: ${DATABASE_URL}
    labels:
      traefik.enable: "true"
      traefik.http.routers.tm-${TM_WORKSPACE}.rule: Host(`${TM_HOST}`)
)";

}  // namespace

TEST_CASE("daemon: a leader that loses its lock stops its workers and sends nothing more") {
  Harness h;
  testing::FakeLeaderLock lock;
  h.leader_lock = &lock;
  h.leader_poll = 10ms;
  h.MakeDaemon();
  h.Write("a.yaml", WorkspaceYaml("alpha"));
  h.Start();
  REQUIRE(Eventually([&] { return h.HasPhase("alpha", "Ready"); }));
  REQUIRE(h.daemon().Leading());

  lock.available = false;
  lock.held = false;  // the lock's session ended; another replica holds it now
  REQUIRE(Eventually([&] { return !h.daemon().Leading(); }));
  const int applies = h.postgres().apply_calls();
  const std::size_t writes = h.store().TotalCalls();
  h.Write("b.yaml", WorkspaceYaml("beta"));
  // A leader would have synced and converged "beta" within a few polls; wait for twenty
  // standby polls (about 200 ms) and prove nothing was sent or written meanwhile.
  const int tries = lock.tries.load();
  REQUIRE(Eventually([&] { return lock.tries.load() >= tries + 20; }));
  CHECK(h.postgres().apply_calls() == applies);
  CHECK(h.store().TotalCalls() == writes);
  CHECK_FALSE(h.Status("beta"));

  // The lock comes back: this replica leads again and picks the change up.
  lock.available = true;
  REQUIRE(Eventually([&] { return h.HasPhase("beta", "Ready"); }));
  h.Stop();
}

TEST_CASE("daemon: a failed fetch deletes nothing") {
  Harness h;
  auto* source = new testing::ScriptedSource("local");
  std::unique_ptr<controller::Source> owned(source);
  const std::string fleet =
      std::string(kProduct) + "---\n" + WorkspaceYaml("alpha") + "---\n" + WorkspaceYaml("beta");
  source->Script({testing::ScriptedSource::ReadOf("c1", fleet),
                  Failure::Transient("FetchFailed", "git fetch: could not resolve host")});
  h.make_source = [&](const manifests::SourceConfig&) { return std::move(owned); };
  h.MakeDaemon();
  h.Start();
  REQUIRE(Eventually([&] { return h.HasPhase("alpha", "Ready") && h.HasPhase("beta", "Ready"); }));
  source->Wake();  // the next read fails, and so does every one after it
  REQUIRE(Eventually([&] { return h.Source() && h.Source()->reason == "FetchFailed"; }));
  CHECK_FALSE(h.daemon().Readiness().ready);
  CHECK(h.store().Calls("MarkDeleting") == 0);
  CHECK(h.postgres().cluster().databases.count("tenant_alpha") == 1);
  CHECK(h.postgres().cluster().databases.count("tenant_beta") == 1);
  CHECK_FALSE(h.HasEvent("alpha", "Deleting"));
  CHECK(h.HasPhase("alpha", "Ready"));
  h.Stop();
}

namespace {

/// The shop product with a stack template, and a daemon remade with fake stacks behind it.
struct DedicatedStacks {
  explicit DedicatedStacks(Harness& h) {
    h.Write("stacks/shop.tmpl", kTemplate);
    h.Write("product.yaml", R"(apiVersion: tenantmaster.io/v1alpha1
kind: Product
metadata: {name: shop}
spec:
  image: example/shop
  defaultVersion: "1.0.0"
  modes: [shared, dedicated]
  stackTemplate: stacks/shop.tmpl
)");
    context.gateway = &stacks;
    context.ledger = &ledger;
    context.config = &h.config();
    context.clusters["default"] = {"pg.internal", 5432};
    h.stacks = &context;
    h.MakeDaemon();
  }
  testing::FakeStacks stacks;
  stacks::StackLedger ledger;
  controller::StacksContext context;
};

}  // namespace

TEST_CASE("daemon: a dedicated workspace gets its stack, StackReady, and loses it on deletion") {
  Harness h;
  DedicatedStacks dedicated(h);
  testing::FakeStacks& stacks = dedicated.stacks;
  h.Write("keep.yaml", WorkspaceYaml("keeper"));
  h.Write("d.yaml",
          "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata: {name: "
          "dedi}\nspec:\n  product: shop\n  mode: dedicated\n  database:\n    cluster: "
          "default\n  dedicated:\n    endpoint: 1\n");
  h.Start();
  REQUIRE(Eventually([&] { return h.HasPhase("dedi", "Ready"); }));
  const auto status = h.Status("dedi");
  CHECK(status->conditions_json.find(R"("type":"StackReady","status":"True")") !=
        std::string::npos);
  const auto listed = stacks.List(1);
  REQUIRE(listed);
  REQUIRE(listed->size() == 1);
  CHECK(listed->front().name == "tm-dedi");
  CHECK(h.HasEvent("dedi", "CreateStack"));

  h.Remove("d.yaml");
  REQUIRE(Eventually([&] { return h.HasEvent("dedi", "Retained"); }));
  const auto after = stacks.List(1);
  REQUIRE(after);
  CHECK(after->empty());
  CHECK(h.postgres().cluster().databases.count("tenant_dedi") == 1);  // Retain keeps the data
  h.Stop();
}

TEST_CASE("daemon: a converged workspace's identity is fixed; an edit stalls ImmutableField") {
  Harness h;
  h.Write("keep.yaml", WorkspaceYaml("keeper"));  // the deletion guard never removes a whole source
  h.Write("a.yaml", WorkspaceYaml("alpha", "    reclaimPolicy: Delete\n"));
  h.Start();
  REQUIRE(Eventually([&] { return h.HasPhase("alpha", "Ready"); }));
  REQUIRE(Eventually([&] {
    const auto state = h.store().Snapshot();
    return state.workspaces.count("alpha") == 1 && state.workspaces.at("alpha").identity;
  }));
  const auto recorded = *h.store().Snapshot().workspaces.at("alpha").identity;
  CHECK(recorded.product == "shop");
  CHECK(recorded.cluster == "default");
  CHECK(recorded.database == "tenant_alpha");
  CHECK(recorded.owner == "user_alpha");

  SUBCASE("a new database name") {
    h.Write("a.yaml", WorkspaceYaml("alpha", "    name: alpha_renamed\n    reclaimPolicy: Delete\n"));
  }
  SUBCASE("a new owner") {
    h.Write("a.yaml", WorkspaceYaml("alpha", "    owner: alpha_owner\n    reclaimPolicy: Delete\n"));
  }
  REQUIRE(Eventually([&] { return h.HasPhase("alpha", "Stalled"); }));
  const auto status = h.Status("alpha");
  REQUIRE(status);
  CHECK(status->conditions_json.find("ImmutableField") != std::string::npos);
  const bool names_old = status->last_error.find("was \"tenant_alpha\"") != std::string::npos ||
                         status->last_error.find("was \"user_alpha\"") != std::string::npos;
  CHECK(names_old);
  // Nothing new appeared; the data stays where it was.
  const auto& cluster = h.postgres().cluster();
  CHECK(cluster.databases.count("alpha_renamed") == 0);
  CHECK(cluster.roles.count("alpha_owner") == 0);
  CHECK(cluster.databases.count("tenant_alpha") == 1);
  CHECK(cluster.roles.at("user_alpha").can_login);
  // The recorded identity is kept, also across a restart.
  CHECK(*h.store().Snapshot().workspaces.at("alpha").identity == recorded);

  // Removing the manifest reclaims what the identity names, not what the stalled spec said.
  h.Remove("a.yaml");
  REQUIRE(Eventually([&] { return h.HasEvent("alpha", "Deleted"); }));
  CHECK(h.postgres().cluster().databases.count("tenant_alpha") == 0);
  CHECK(h.postgres().cluster().roles.count("user_alpha") == 0);
}

TEST_CASE("daemon: putting the old identity back converges again") {
  Harness h;
  h.Write("a.yaml", WorkspaceYaml("alpha"));
  h.Start();
  REQUIRE(Eventually([&] { return h.HasPhase("alpha", "Ready"); }));
  REQUIRE(Eventually([&] { return h.store().Snapshot().workspaces.at("alpha").identity.has_value(); }));
  h.Write("a.yaml", WorkspaceYaml("alpha", "    name: elsewhere\n"));
  REQUIRE(Eventually([&] { return h.HasPhase("alpha", "Stalled"); }));
  h.Stop();
  h.MakeDaemon();  // a restart reads the identity from the store
  h.Start();
  REQUIRE(Eventually([&] {
    const auto s = h.Status("alpha");
    return s && s->phase == "Stalled" && s->observed_generation == 2;
  }));
  CHECK(h.postgres().cluster().databases.count("elsewhere") == 0);
  h.Write("a.yaml", WorkspaceYaml("alpha"));
  REQUIRE(Eventually([&] { return h.HasPhase("alpha", "Ready"); }));
}

namespace {

std::string DedicatedYaml(const std::string& name, int endpoint) {
  return "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata: {name: " + name +
         "}\nspec:\n  product: shop\n  mode: dedicated\n  database:\n    cluster: default\n"
         "  dedicated:\n    endpoint: " + std::to_string(endpoint) + "\n";
}

/// Names of the stacks on `endpoint`.
std::set<std::string> StackNames(testing::FakeStacks& stacks, int endpoint) {
  std::set<std::string> names;
  const auto listed = stacks.List(endpoint);
  if (listed) {
    for (const auto& stack : *listed) names.insert(stack.name);
  }
  return names;
}

}  // namespace

TEST_CASE("daemon: GET /api/v1/endpoints: the configured endpoints and those workspaces name, "
          "each with its kind, capacity, usage, labels and reachability") {
  Harness h;
  h.config().stacks.endpoints = {{.id = 1, .capacity = 2, .labels = {{"kind", "standalone"}}},
                                 {.id = 4, .capacity = std::nullopt, .labels = {{"kind", "swarm"}}}};
  DedicatedStacks dedicated(h);  // remakes the daemon with the config above
  testing::FakeStacks& stacks = dedicated.stacks;
  stacks.SetEndpoint(4, stacks::EndpointInfo{true, "c-4"});
  stacks.SetEndpoint(7, Failure::Transient("PortainerUnavailable",
                                           "inspect endpoint 7: Environment is down"));
  const auto placed = [](const std::string& name, const std::string& kind) {
    return "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata: {name: " + name +
           "}\nspec:\n  product: shop\n  mode: dedicated\n  database:\n    cluster: default\n"
           "  dedicated:\n    placement: {endpointSelector: {kind: " + kind + "}}\n";
  };
  h.Write("a.yaml", placed("alpha", "standalone"));
  h.Write("b.yaml", placed("beta", "swarm"));
  h.Write("c.yaml", DedicatedYaml("gamma", 7));  // named, outside stacks.endpoints
  // Only a product's shared runtime is on endpoint 9: listed, checked, no stack counted.
  stacks.SetEndpoint(9, stacks::EndpointInfo{false, ""});
  h.Write("crm.yaml",
          "apiVersion: tenantmaster.io/v1alpha1\nkind: Product\nmetadata: {name: crm}\nspec:\n"
          "  image: example/crm\n  defaultVersion: \"1.0\"\n  modes: [shared]\n"
          "  sharedRuntime: {stackTemplate: stacks/shop.tmpl, endpoint: 9}\n");
  h.Start();
  REQUIRE(Eventually([&] {
    return h.HasPhase("alpha", "Ready") && h.HasPhase("beta", "Ready") &&
           h.HasPhase("gamma", "Ready");
  }));
  REQUIRE(Eventually([&] {
    return h.daemon().Api().Endpoints().body.find(R"("id":9,"kind":"standalone")") !=
           std::string::npos;
  }));
  // Endpoint 7 is known once gamma is declared; the monitor asks it at its next round.
  REQUIRE(Eventually([&] {
    return h.daemon().Api().Endpoints().body.find(R"("id":7,"kind":"unknown","swarmId":null,)"
                                                  R"("configured":false,"labels":{},"used":1,)"
                                                  R"("reachable":false)") != std::string::npos;
  }));
  const controller::ApiAnswer answer = h.daemon().Api().Endpoints();
  REQUIRE(answer.status == 200);
  const boost::json::array items = boost::json::parse(answer.body).at("items").as_array();
  REQUIRE(items.size() == 4);
  CHECK(items[0] == boost::json::parse(
                        R"({"id":1,"kind":"standalone","swarmId":null,"configured":true,)"
                        R"("labels":{"kind":"standalone"},"used":1,"reachable":true,"capacity":2,)"
                        R"("sharedRuntimes":[],"checkedAt":")" +
                        std::string(items[0].at("checkedAt").as_string()) + R"("})"));
  CHECK(items[1].at("id") == 4);
  CHECK(items[1].at("kind") == "swarm");
  CHECK(items[1].at("swarmId") == "c-4");
  CHECK(items[1].at("capacity").is_null());
  CHECK(items[1].at("used") == 1);
  CHECK(items[2].at("id") == 7);
  CHECK(items[2].at("capacity").is_null());
  CHECK(items[2].at("reason") == "PortainerUnavailable: inspect endpoint 7: Environment is down");
  CHECK(items[2].at("checkedAt").as_string().size() == 20);  // 2026-12-05T18:00:00Z
  CHECK(items[3].at("id") == 9);
  CHECK(items[3].at("configured") == false);
  CHECK(items[3].at("used") == 0);
  CHECK(items[3].at("sharedRuntimes") == boost::json::parse(R"(["crm"])"));
  CHECK(items[3].at("reachable") == true);
  CHECK(stacks.Find(4, "tm-beta").has_value());
  h.Stop();
}

TEST_CASE("daemon: a standby checks the endpoints too, but GET /api/v1/endpoints answers 503") {
  Harness h;
  testing::FakeLeaderLock lock;
  lock.available = false;  // another replica leads
  h.leader_lock = &lock;
  h.leader_poll = 10ms;
  h.config().stacks.endpoints = {{.id = 3, .capacity = 1, .labels = {}}};
  DedicatedStacks dedicated(h);
  h.Start();
  REQUIRE(Eventually([&] { return dedicated.stacks.InspectCalls() >= 2; }));
  CHECK_FALSE(h.daemon().Leading());
  const controller::ApiAnswer answer = h.daemon().Api().Endpoints();
  CHECK(answer.status == 503);
  CHECK(answer.message ==
        "this replica is a standby: the leader counts the endpoints' stacks");
  h.Stop();
}

TEST_CASE("daemon: spec.mode may change: upgraded gets a stack, downgraded or moved loses it") {
  Harness h;
  DedicatedStacks dedicated(h);
  testing::FakeStacks& stacks = dedicated.stacks;
  h.Write("keep.yaml", WorkspaceYaml("keeper"));
  h.Write("a.yaml", WorkspaceYaml("alpha"));
  h.Start();
  REQUIRE(Eventually([&] { return h.HasPhase("alpha", "Ready"); }));
  CHECK(StackNames(stacks, 1).empty());

  // Upgraded: a stack, and the store remembers where it lives.
  h.Write("a.yaml", DedicatedYaml("alpha", 1));
  REQUIRE(Eventually([&] { return StackNames(stacks, 1).count("tm-alpha") == 1; }));
  REQUIRE(Eventually([&] {
    const auto state = h.store().Snapshot();
    return state.workspaces.count("alpha") == 1 &&
           state.workspaces.at("alpha").stack_endpoint == std::optional<int>(1);
  }));

  // Moved to another endpoint: the new stack first, then the old one goes.
  h.Write("a.yaml", DedicatedYaml("alpha", 2));
  REQUIRE(Eventually([&] {
    return StackNames(stacks, 2).count("tm-alpha") == 1 && StackNames(stacks, 1).empty();
  }));
  REQUIRE(Eventually([&] {
    return h.store().Snapshot().workspaces.at("alpha").stack_endpoint == std::optional<int>(2);
  }));

  // Downgraded: the stack is removed, the database stays.
  h.Write("a.yaml", WorkspaceYaml("alpha"));
  REQUIRE(Eventually([&] { return StackNames(stacks, 2).empty(); }));
  REQUIRE(Eventually([&] {
    return !h.store().Snapshot().workspaces.at("alpha").stack_endpoint.has_value() &&
           h.HasPhase("alpha", "Ready");
  }));
  CHECK(h.HasEvent("alpha", "StackRemoved"));
  CHECK(h.postgres().cluster().databases.count("tenant_alpha") == 1);
  h.Stop();
}

TEST_CASE("daemon: downgrading more workspaces than the deletion guard allows removes no stack") {
  Harness h(/*max_deletions=*/1);
  DedicatedStacks dedicated(h);
  testing::FakeStacks& stacks = dedicated.stacks;
  h.Write("keep.yaml", WorkspaceYaml("keeper"));
  // Both in one file, so that one write flips both in one sync.
  h.Write("ab.yaml", DedicatedYaml("alpha", 1) + "---\n" + DedicatedYaml("beta", 1));
  h.Start();
  REQUIRE(Eventually([&] {
    const auto state = h.store().Snapshot();
    return state.workspaces.count("alpha") == 1 && state.workspaces.count("beta") == 1 &&
           state.workspaces.at("alpha").stack_endpoint && state.workspaces.at("beta").stack_endpoint;
  }));
  // One commit flips both: two stack removals, limit one.
  h.Write("ab.yaml", WorkspaceYaml("alpha") + "---\n" + WorkspaceYaml("beta"));
  REQUIRE(Eventually([&] { return h.Source() && h.Source()->reason == "DeletionGuard"; }));
  // Both converge as shared (generation 2, Ready) and keep their stacks.
  REQUIRE(Eventually([&] {
    const auto a = h.Status("alpha");
    const auto b = h.Status("beta");
    return a && b && a->observed_generation == 2 && b->observed_generation == 2 &&
           a->phase == "Ready" && b->phase == "Ready";
  }));
  CHECK(StackNames(stacks, 1) == std::set<std::string>{"tm-alpha", "tm-beta"});
  // Beta back to dedicated: one removal fits the limit, and goes.
  h.Write("ab.yaml", WorkspaceYaml("alpha") + "---\n" + DedicatedYaml("beta", 1));
  REQUIRE(Eventually([&] { return StackNames(stacks, 1) == std::set<std::string>{"tm-beta"}; }));
  REQUIRE(Eventually([&] { return h.Source() && h.Source()->ready; }));
  h.Stop();
}

TEST_CASE("daemon: adopt follows the cluster's adoptPattern and never takes the store database") {
  Harness h;
  h.config().clusters.front().adopt_pattern = "legacy_*";
  h.store_database = "legacy_store";  // a store on this cluster, under a name the pattern matches
  h.MakeDaemon();  // the config is read when the daemon is made
  auto& cluster = h.postgres().cluster();
  const auto add = [&](const std::string& database, const std::string& role) {
    postgres::ObservedRole r;
    r.name = role;
    r.can_login = true;
    cluster.roles[role] = r;
    postgres::ObservedDatabase d;
    d.name = database;
    d.owner = role;
    d.encoding = "UTF8";
    cluster.databases[database] = d;
  };
  add("legacy_shop", "legacy_owner");
  add("other_shop", "other_owner");
  add("legacy_store", "store_owner");
  const auto adopting = [](const std::string& database, const std::string& role) {
    return "    name: " + database + "\n    owner: " + role + "\n    adopt: true\n";
  };
  h.Write("a.yaml", WorkspaceYaml("matching", adopting("legacy_shop", "legacy_owner")));
  h.Write("b.yaml", WorkspaceYaml("outside", adopting("other_shop", "other_owner")));
  h.Write("c.yaml", WorkspaceYaml("storetaker", adopting("legacy_store", "legacy_store_owner")));
  h.Start();
  REQUIRE(Eventually([&] {
    return h.HasPhase("matching", "Ready") && h.HasPhase("outside", "Stalled") &&
           h.HasPhase("storetaker", "Stalled");
  }));
  CHECK(h.Status("outside")->conditions_json.find("AdoptRefused") != std::string::npos);
  CHECK_MESSAGE(h.Status("storetaker")->conditions_json.find("AdoptRefused") != std::string::npos,
                h.Status("storetaker")->conditions_json);
  h.Stop();
  CHECK(cluster.databases.at("other_shop").comment.empty());  // never claimed
  CHECK(cluster.databases.at("legacy_store").comment.empty());
}

TEST_CASE("daemon: the leader prunes the store's history") {
  Harness h;
  h.store().retention.events_max_count = 1;
  h.Write("a.yaml", WorkspaceYaml("alpha"));
  h.Start();
  REQUIRE(Eventually([&] { return h.HasPhase("alpha", "Ready"); }));
  // The first tick prunes; alpha's events (CreateRole, CreateDatabase, ..., Ready) were more.
  REQUIRE(Eventually([&] { return h.store().Calls("Prune") >= 1; }));
  h.Stop();
  CHECK(h.store().Calls("Prune") >= 1);
}

TEST_CASE("daemon: the leader prunes product revisions beyond rollouts.revisionHistoryLimit") {
  Harness h;
  h.config().rollouts.revision_history_limit = 2;
  h.leader_poll = 10ms;
  h.prune_interval = 10ms;
  // Twelve revisions of shop from earlier product files: no workspace, rollout or source is on them.
  for (int n = 1; n <= 12; ++n) {
    REQUIRE(h.store().RecordRevision("shop", crypto::Sha256Hex("old " + std::to_string(n)), "{}", 1)
                .ok());
  }
  h.MakeDaemon();
  h.Write("a.yaml", WorkspaceYaml("alpha"));
  h.Start();
  REQUIRE(Eventually([&] { return h.HasPhase("alpha", "Ready"); }));
  CHECK(h.Status("alpha")->product_revision == 13);  // the source's files are revision 13
  const auto numbers = [&] {
    std::vector<int> out;
    const testing::FakeStore::State state = h.store().Snapshot();  // outlives the loop
    for (const auto& r : state.revisions.at("shop")) out.push_back(r.number);
    return out;
  };
  // The newest two stay (13 is also current and alpha's).
  REQUIRE(Eventually([&] { return numbers() == std::vector<int>{12, 13}; }));
  h.Stop();
}

namespace {

constexpr const char* kRuntimeTemplate =
    "services:\n  app:\n    image: ${TM_IMAGE}:${TM_VERSION}\n"
    "    command: [example-runtime, --bindings, /bindings, --listen, \"0.0.0.0:${TM_PORT}\"]\n";

/// Product `portal` (shared only), with a shared runtime on endpoint 1 unless `runtime` is false.
std::string PortalYaml(bool runtime, const std::string& version = "1.0.0") {
  return "apiVersion: tenantmaster.io/v1alpha1\nkind: Product\nmetadata: {name: portal}\n"
         "spec:\n  image: example/portal\n  defaultVersion: \"" + version + "\"\n  port: 9000\n"
         "  modes: [shared]\n" +
         (runtime ? "  sharedRuntime: {stackTemplate: stacks/portal.tmpl, endpoint: 1}\n" : "");
}

/// A daemon with fake stacks, a bindings folder (unless `bindings` is false), the portal product
/// with its runtime, and ticks every 50 ms.
struct RuntimeWorld {
  explicit RuntimeWorld(Harness& h, bool bindings = true) : harness(h) {
    if (bindings) h.config().bindings = manifests::BindingsConfig{dir.path() / "bindings", ""};
    h.Write("stacks/portal.tmpl", kRuntimeTemplate);
    h.Write("portal.yaml", PortalYaml(true));
    h.Write("keep.yaml", WorkspaceYaml("keeper"));
    context.gateway = &stacks;
    context.ledger = &ledger;
    context.config = &h.config();
    h.stacks = &context;
    h.leader_poll = 50ms;
    h.MakeDaemon();
  }
  // The daemon stops before the fakes it uses go (a failed REQUIRE leaves the test early).
  ~RuntimeWorld() { harness.Stop(); }
  RuntimeWorld(const RuntimeWorld&) = delete;
  RuntimeWorld& operator=(const RuntimeWorld&) = delete;
  std::optional<testing::FakeStacks::Stored> Runtime() const {
    return stacks.Find(1, "tm-shared-portal");
  }
  Harness& harness;
  testing::TempDir dir;
  testing::FakeStacks stacks;
  stacks::StackLedger ledger;
  controller::StacksContext context;
};

}  // namespace

TEST_CASE("daemon: a product's shared runtime is created, updated, kept while a source is "
          "invalid, removed after a clean read; events on runtime:<product> only on a change") {
  Harness h;
  RuntimeWorld w(h);
  h.Start();
  REQUIRE(Eventually([&] { return w.Runtime().has_value(); }));
  REQUIRE(Eventually([&] { return h.HasEvent("runtime:portal", "RuntimeReady"); }));
  CHECK(w.Runtime()->stack.endpoint == 1);
  CHECK(w.Runtime()->file.find((w.dir.path() / "bindings" / "portal").string() +
                               ":/bindings:ro") != std::string::npos);
  CHECK(h.daemon().Api().Products().body.find(
            R"("sharedRuntime":{"stack":"tm-shared-portal","endpoint":1})") != std::string::npos);

  // A new version is an update; the runtime stays Ready: no second event.
  h.Write("portal.yaml", PortalYaml(true, "1.1.0"));
  REQUIRE(Eventually([&] {
    const auto runtime = w.Runtime();
    if (!runtime) return false;
    for (const auto& var : runtime->stack.env) {
      if (var.name == "TM_VERSION") return var.value == "1.1.0";
    }
    return false;
  }));
  std::this_thread::sleep_for(300ms);
  CHECK(h.EventReasons("runtime:portal") == std::vector<std::string>{"RuntimeReady"});

  // portal drops its runtime while another document is invalid: nothing is removed.
  h.Write("broken.yaml", "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata: "
                         "{name: broken}\nspec:\n  product: shop\n  mode: sideways\n");
  h.Write("portal.yaml", PortalYaml(false));
  REQUIRE(Eventually([&] {
    return h.daemon().Api().Products().body.find(R"("name":"portal")") != std::string::npos &&
           h.daemon().Api().Products().body.find("tm-shared-portal") == std::string::npos;
  }));
  REQUIRE(Eventually([&] { return h.Source() && !h.Source()->ready; }));
  std::this_thread::sleep_for(500ms);  // ten ticks: the runtimes were kicked by the change
  CHECK(w.Runtime().has_value());
  CHECK_FALSE(h.HasEvent("runtime:portal", "RuntimeRemoved"));

  // Every document valid again: the stale runtime goes, said once.
  h.Remove("broken.yaml");
  REQUIRE(Eventually([&] { return !w.Runtime().has_value(); }));
  REQUIRE(Eventually([&] { return h.HasEvent("runtime:portal", "RuntimeRemoved"); }));
  CHECK(h.HasPhase("keeper", "Ready"));
  h.Stop();
}

TEST_CASE("daemon: a shared runtime that cannot converge is a Warning event once, not per pass") {
  Harness h;
  RuntimeWorld w(h, /*bindings=*/false);
  h.Start();
  REQUIRE(Eventually([&] { return h.HasEvent("runtime:portal", "BindingsNotConfigured"); }));
  // One more pass (a product change kicks one): the same failure is not recorded again.
  h.Write("portal.yaml", PortalYaml(true) + "  displayName: Portal\n");
  REQUIRE(Eventually([&] { return h.daemon().Api().Products().body.find("Portal\"") != std::string::npos; }));
  std::this_thread::sleep_for(300ms);
  CHECK(h.EventReasons("runtime:portal") == std::vector<std::string>{"BindingsNotConfigured"});
  CHECK_FALSE(w.Runtime().has_value());
  h.Stop();
}

TEST_CASE("daemon: a new defaultVersion rolls out in waves: the canary's stack first, the others "
          "keep the old image until promoted; an explicit version is its own") {
  Harness h;
  DedicatedStacks dedicated(h);
  testing::FakeStacks& stacks = dedicated.stacks;
  const auto product = [&](const std::string& version) {
    h.Write("product.yaml", R"(apiVersion: tenantmaster.io/v1alpha1
kind: Product
metadata: {name: shop}
spec:
  image: example/shop
  defaultVersion: ")" + version + R"("
  modes: [shared, dedicated]
  stackTemplate: stacks/shop.tmpl
  rollout:
    waves:
      - {selector: {matchLabels: {ring: canary}}}
      - {percent: 100}
    pauseBetweenWaves: 1h
)");
  };
  const auto workspace = [&](const std::string& name, const std::string& extra) {
    h.Write(name + ".yaml", "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n"
                            "  name: " + name + "\n" + extra +
                                "spec:\n  product: shop\n  mode: dedicated\n  database:\n"
                                "    cluster: default\n  dedicated:\n    endpoint: 1\n" +
                                (name == "pinned" ? "    version: \"0.9.0\"\n" : ""));
  };
  // The image each workspace's stack runs: the TM_IMAGE:TM_VERSION its stack's Env gives the
  // template.
  const auto image = [&](const std::string& name) -> std::string {
    const auto listed = stacks.List(1);
    if (!listed) return "";
    for (const auto& stack : *listed) {
      if (stack.name != "tm-" + name) continue;
      std::string repository;
      std::string version;
      for (const auto& var : stack.env) {
        if (var.name == "TM_IMAGE") repository = var.value;
        if (var.name == "TM_VERSION") version = var.value;
      }
      return repository + ":" + version;
    }
    return "";
  };
  product("1.0.0");
  workspace("canary", "  labels: {ring: canary}\n");
  workspace("other", "");
  workspace("pinned", "");
  h.Start();
  REQUIRE(Eventually([&] {
    return h.HasPhase("canary", "Ready") && h.HasPhase("other", "Ready") &&
           h.HasPhase("pinned", "Ready");
  }));
  CHECK(image("canary") == "example/shop:1.0.0");
  CHECK(image("pinned") == "example/shop:0.9.0");
  CHECK(h.Status("other")->product_revision == 1);

  product("2.0.0");
  REQUIRE(Eventually([&] { return h.Status("canary")->product_revision == 2; }));
  CHECK(image("canary") == "example/shop:2.0.0");
  REQUIRE(Eventually([&] { return h.HasEvent("product/shop", "RolloutWaveCompleted"); }));
  // Paused before the second wave: the others keep revision 1 and its image.
  std::this_thread::sleep_for(300ms);
  CHECK(image("other") == "example/shop:1.0.0");
  CHECK(h.Status("other")->product_revision == 1);
  CHECK(image("pinned") == "example/shop:0.9.0");
  CHECK_FALSE(h.HasEvent("other", "DriftCorrected"));

  Outcome<std::string> promoted = h.daemon().Rollouts().Command("shop", "promote", "test");
  REQUIRE_MESSAGE(promoted.ok(), promoted.failure().message);
  REQUIRE(Eventually([&] { return h.HasEvent("product/shop", "RolloutCompleted"); }));
  CHECK(image("other") == "example/shop:2.0.0");
  CHECK(h.Status("other")->product_revision == 2);
  CHECK(image("pinned") == "example/shop:0.9.0");  // its manifest's version: outside rollouts
  h.Stop();
}

TEST_CASE("daemon: workspaces without a cluster are placed until the cluster is full; the rest "
          "stall Unschedulable; GET /api/v1/clusters counts them") {
  Harness h;
  h.config().clusters.front().capacity = 2;
  h.config().clusters.front().labels = {{"region", "eu"}};
  h.MakeDaemon();  // the config is read when the daemon is made
  const auto placed = [](const std::string& name, const std::string& database) {
    return "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata: {name: " + name +
           "}\nspec:\n  product: shop\n  mode: shared\n" + database;
  };
  h.Write("a.yaml", placed("alpha", ""));
  h.Write("b.yaml", placed("beta", "  database:\n    placement: {clusterSelector: {region: eu}}\n"));
  h.Start();
  REQUIRE(Eventually([&] { return h.HasPhase("alpha", "Ready") && h.HasPhase("beta", "Ready"); }));
  CHECK(h.store().Snapshot().placements.at("alpha").cluster == "default");
  CHECK(h.postgres().cluster().databases.count("tenant_beta") == 1);

  // Full: a third waits, and so does one whose selector no cluster matches.
  h.Write("c.yaml", placed("gamma", ""));
  h.Write("d.yaml", placed("delta", "  database:\n    placement: {clusterSelector: {region: us}}\n"));
  REQUIRE(Eventually([&] { return h.HasPhase("gamma", "Stalled") && h.HasPhase("delta", "Stalled"); }));
  CHECK(h.Status("gamma")->last_error ==
        "Unschedulable: no cluster can take it: default: full (2/2)");
  CHECK(h.Status("delta")->last_error.find("default: labels do not match region=us") !=
        std::string::npos);
  CHECK(h.postgres().cluster().databases.count("tenant_gamma") == 0);
  CHECK(h.store().Snapshot().placements.count("gamma") == 0);

  REQUIRE(Eventually([&] {
    return h.daemon().Api().Clusters().body.find(R"("reachable":true)") != std::string::npos;
  }));
  const std::string clusters = h.daemon().Api().Clusters().body;
  CHECK(clusters.find(R"({"items":[{"name":"default","labels":{"region":"eu"},"used":2,"placed":2,)"
                      R"("reachable":true,"serverVersion":"unknown","capacity":2,"checkedAt":")") ==
        0);  // "unknown": the fake's version
  h.Stop();
}

namespace {

/// A pooler that records the workspaces of every write.
class RecordingPooler : public bindings::PoolerSink {
 public:
  Outcome<bool> Write(const std::vector<bindings::TenantFacts>& tenants) override {
    std::vector<std::string> names;
    for (const auto& facts : tenants) names.push_back(facts.workspace);
    const std::lock_guard lock(mutex_);
    writes_.push_back(std::move(names));
    return true;
  }
  std::vector<std::vector<std::string>> Writes() const {
    const std::lock_guard lock(mutex_);
    return writes_;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::vector<std::string>> writes_;
};

}  // namespace

TEST_CASE("daemon: a term writes PgBouncer's files only once it has reconciled the declared "
          "shared tenants, never from the first few") {
  Harness h;
  RecordingPooler pooler;
  // The hold is far beyond the test: only the daemon's ExpectTenants can open the files.
  bindings::SharedTenants shared({.pooler = &pooler, .pooler_hold = std::chrono::hours(1)});
  shared.StartFlusher(std::chrono::milliseconds(10));
  controller::StacksContext context;
  context.config = &h.config();
  context.clusters["default"] = {"pg.internal", 5432};
  context.shared = &shared;
  h.stacks = &context;
  h.MakeDaemon();
  const std::vector<std::string> all = {"ws-a", "ws-b", "ws-c", "ws-d", "ws-e", "ws-f"};
  for (const std::string& name : all) h.Write(name + ".yaml", WorkspaceYaml(name));
  h.Start();
  REQUIRE(Eventually([&] { return !pooler.Writes().empty(); }, 20s));
  CHECK(pooler.Writes().front() == all);  // the first write already holds every tenant

  // A restart (a new term): the files PgBouncer has stay until the term has them all again.
  h.Stop();
  const std::size_t before = pooler.Writes().size();
  h.MakeDaemon();
  h.Start();
  REQUIRE(Eventually([&] { return pooler.Writes().size() > before; }, 20s));
  for (std::size_t i = before; i < pooler.Writes().size(); ++i) CHECK(pooler.Writes()[i] == all);
}
