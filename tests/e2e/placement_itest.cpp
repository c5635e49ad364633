// End to end (issue 10, part 1: placement; docs/placement.md): three private PostgreSQL servers
// are the clusters c1, c2 and c3 of the built tenant-operator, run as a daemon. Each case proves
// one promise by where the tenant databases really are (a query on each server), what the API
// says (status.cluster, GET /api/v1/clusters, `tenantctl get clusters`) and what the store
// recorded (tm_placements):
//   - a new workspace goes to the matching cluster with the most free room, ties by name; a full
//     cluster is skipped; a workspace naming its cluster counts toward that cluster's usage;
//   - a placement is sticky: a restart under a config that would choose otherwise moves nobody;
//   - when every matching cluster is full the workspace is Stalled `Unschedulable` naming each
//     cluster and why, and nothing is created; a Delete reclaim or a raised capacity (restart)
//     lets it be placed;
//   - a cluster that is down degrades only the workspaces on it (not moved, not Stalled), new
//     workspaces go elsewhere, and its workspaces are Ready again once it is back.
//
// The servers are shared by the cases (initdb three times per case would cost most of the run);
// each case has its own store database, fleet folder and workspace names, so no case sees
// another's tenants. The binary links no JSON library (tests/CMakeLists.txt gives none to an
// itest by default): the API's answers are read with PostgreSQL's jsonb operators on server c1,
// which hosts the stores and is never stopped.
#include <doctest/doctest.h>

#include <array>
#include <chrono>
#include <filesystem>
#include <initializer_list>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "manifests/naming.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/http_get.hpp"
#include "tests/support/pg_server.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using namespace tmaster::testing;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

const std::string kOperator = std::string(TM_BINARY_DIR) + "/tenant-operator";
const std::string kTenantctl = std::string(TM_BINARY_DIR) + "/tenantctl";
const std::string kMasterKey = "placement-e2e-master-key-0123456789abcdef";
constexpr std::array<const char*, 3> kClusters = {"c1", "c2", "c3"};
constexpr std::chrono::milliseconds kPoll = 100ms;
constexpr std::chrono::milliseconds kConverge = 30s;  ///< a workspace's first Ready, generous
// The daemon's resync: a Ready workspace on a cluster that went down notices at its next pass,
// and a Stalled Unschedulable one is tried again at it (docs/placement.md).
constexpr const char* kResyncInterval = "2s";

// ---------------------------------------------------------------------------------------------
// The three servers.

/// Clusters c1, c2, c3 on servers 0, 1, 2, stopped and removed at exit (and by PgServer's
/// watchdog if this binary dies). Started one after the other: RunProcess's pipes are not
/// close-on-exec, so a server forked while another thread waits on initdb's output would keep
/// that pipe open and the wait would never end.
class Servers {
 public:
  static Servers& Shared() {
    static Servers servers;
    return servers;
  }

  PgServer& operator[](std::size_t i) { return *pg_.at(i); }
  /// Where the stores live and where JSON is read: server 0, never stopped by a case.
  PgServer& Home() { return *pg_[0]; }

 private:
  Servers() {
    for (auto& pg : pg_) pg = std::make_unique<PgServer>();
  }

  std::array<std::unique_ptr<PgServer>, 3> pg_;
};

/// The clusters (of c1, c2, c3) whose catalog has `name` (`count_sql` counts it as $1), e.g.
/// "c2", or "c1,c3" when on two, "" when on none. A stopped server is not asked.
std::string Holding(const std::string& count_sql, const std::string& name) {
  Servers& servers = Servers::Shared();
  std::string found;
  for (std::size_t i = 0; i < kClusters.size(); ++i) {
    if (!servers[i].running()) continue;
    if (QueryValue(servers[i].Dsn(), count_sql, {name}) == "1") {
      found += (found.empty() ? "" : ",") + std::string(kClusters[i]);
    }
  }
  return found;
}

/// Where the workspace's database is: the truth placement must agree with.
std::string WhereIs(const std::string& workspace) {
  return Holding("SELECT count(*) FROM pg_database WHERE datname = $1",
                 tmaster::manifests::DefaultDatabaseName(workspace));
}

/// Where its owner role is: an unschedulable workspace must have none anywhere.
std::string WhereIsRole(const std::string& workspace) {
  return Holding("SELECT count(*) FROM pg_roles WHERE rolname = $1",
                 tmaster::manifests::DefaultOwnerRole(workspace));
}

/// Rows of `select` over `$1::jsonb` (the API's answer), on the home server; nullopt when the
/// text is not JSON.
std::optional<std::vector<Row>> JsonRows(const std::string& json, const std::string& select) {
  try {
    return Query(Servers::Shared().Home().Dsn(), select, {json});
  } catch (const std::runtime_error&) {
    return std::nullopt;
  }
}

// ---------------------------------------------------------------------------------------------
// One case's world: config, fleet, store and daemon.

/// A cluster of the config: `capacity` omitted means unlimited, `region` the one label.
struct ClusterSpec {
  std::string name;
  std::optional<int> capacity;
  std::string region;
};

/// What GET /api/v1/workspaces/NAME says.
struct View {
  int http = 0;
  std::string phase;
  std::string cluster;  ///< status.cluster
  std::string ready_reason;
  std::string ready_message;
  std::string body;
};

/// One item of GET /api/v1/clusters.
struct ClusterView {
  std::string capacity;  ///< the number, or "null"
  std::string used;
  std::string placed;
  std::string reachable;  ///< "true", "false" or "null"
  std::string server_version;
  std::string labels;  ///< the labels object as JSON text
  std::string reason;
};

class World {
 public:
  /// `tag` names the store database (tm_store_<tag>); every workspace name of the case starts
  /// with it too, so cases sharing the servers never share a tenant.
  explicit World(std::string tag) : tag_(std::move(tag)) {
    dir_.Write("fleet/products.yaml",
               "apiVersion: tenantmaster.io/v1alpha1\nkind: Product\nmetadata:\n  name: crm\n"
               "spec:\n  image: ghcr.io/acme/crm\n  defaultVersion: \"1.0.0\"\n"
               "  modes: [shared]\n");
  }
  ~World() { Stop(); }
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  /// A workspace name of this case.
  [[nodiscard]] std::string Name(const std::string& suffix) const { return tag_ + "-" + suffix; }

  /// Writes the operator's config (read at the next Start).
  void Configure(const std::vector<ClusterSpec>& clusters) {
    std::string yaml = "baseDomain: example.test\nmasterKeyEnv: TM_MASTER_KEY\nclusters:\n";
    for (const ClusterSpec& cluster : clusters) {
      yaml += "  - name: " + cluster.name + "\n    dsnEnv: TM_PG_" + cluster.name + "_DSN\n";
      if (cluster.capacity) yaml += "    capacity: " + std::to_string(*cluster.capacity) + "\n";
      if (!cluster.region.empty()) yaml += "    labels: {region: " + cluster.region + "}\n";
    }
    yaml += "store:\n  dsnEnv: TM_STORE_DSN\n";
    yaml += "sources:\n  - name: local\n    directory: " + (dir_.path() / "fleet").string() + "\n";
    yaml +=
        "stacks:\n  backend: directory\n  directory: " + (dir_.path() / "deployments").string() +
        "\n";
    yaml += "backups:\n  directory: " + (dir_.path() / "backups").string() + "\n";
    yaml += "http:\n  listen: \"127.0.0.1:0\"\n";
    yaml += std::string("reconcile:\n  workers: 2\n  resyncInterval: ") + kResyncInterval + "\n";
    config_ = dir_.Write("operator.yaml", yaml).string();
  }

  /// A shared workspace of product crm, reclaimed with Delete. `selector_region`: its
  /// placement.clusterSelector (none when empty); `cluster`: the cluster it names (placed when
  /// empty). Written aside and renamed into the fleet, so the watcher never reads half of it.
  void Workspace(const std::string& name, const std::string& selector_region,
                 const std::string& cluster = "") const {
    std::string yaml =
        "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: " + name +
        "\nspec:\n  product: crm\n  mode: shared\n  database:\n" + "    reclaimPolicy: Delete\n";
    if (!cluster.empty()) yaml += "    cluster: " + cluster + "\n";
    if (!selector_region.empty()) {
      yaml += "    placement:\n      clusterSelector:\n        region: " + selector_region + "\n";
    }
    const fs::path staged = dir_.Write("staging/" + name + ".yaml", yaml);
    fs::create_directories(dir_.path() / "fleet" / "workspaces");
    fs::rename(staged, dir_.path() / "fleet" / "workspaces" / (name + ".yaml"));
  }

  /// Removes the workspace's manifest (its reclaim policy, Delete, then drops its database).
  void RemoveWorkspace(const std::string& name) const {
    fs::remove(dir_.path() / "fleet" / "workspaces" / (name + ".yaml"));
  }

  /// Starts a daemon (its own log and state folder) and waits for its HTTP port.
  void Start() {
    Stop();
    const int n = ++starts_;
    Servers& servers = Servers::Shared();
    std::map<std::string, std::string> env{
        {"TM_MASTER_KEY", kMasterKey}, {"TM_STORE_DSN", servers.Home().Dsn("tm_store_" + tag_)}};
    for (std::size_t i = 0; i < kClusters.size(); ++i) {
      env["TM_PG_" + std::string(kClusters[i]) + "_DSN"] = servers[i].Dsn();
    }
    daemon_ = std::make_unique<DaemonProcess>(DaemonProcess::Options{
        .argv = {kOperator, "--config", config_, "--state-dir",
                 (dir_.path() / ("state-" + std::to_string(n))).string()},
        .env = std::move(env),
        .log_file = (dir_.path() / ("operator-" + std::to_string(n) + ".log")).string()});
    port_ = daemon_->WaitForHttpPort(30s);
    if (port_ == 0) throw std::runtime_error("no HTTP port; log:\n" + daemon_->Log());
  }

  /// SIGTERM and wait; the exit code (0 when it drained), -1 when none runs.
  int Stop() {
    if (!daemon_) return -1;
    const int code = daemon_->Terminate(20s);
    daemon_.reset();
    port_ = 0;
    return code;
  }

  /// The running daemon's log (the last start's), for failure messages.
  [[nodiscard]] std::string Log() const { return daemon_ ? daemon_->Log() : "(no daemon)"; }

  [[nodiscard]] View Get(const std::string& name) const {
    View view;
    if (port_ == 0) return view;
    const HttpResponse r = HttpGet(port_, "/api/v1/workspaces/" + name);
    view.http = r.status;
    view.body = r.status != 0 ? r.body : r.error;
    if (r.status != 200) return view;
    const auto rows = JsonRows(
        r.body,
        "SELECT coalesce(d #>> '{status,phase}', ''), coalesce(d #>> '{status,cluster}', ''), "
        "coalesce((SELECT c ->> 'reason' FROM jsonb_array_elements(coalesce(d #> "
        "'{status,conditions}', '[]')) c WHERE c ->> 'type' = 'Ready'), ''), "
        "coalesce((SELECT c ->> 'message' FROM jsonb_array_elements(coalesce(d #> "
        "'{status,conditions}', '[]')) c WHERE c ->> 'type' = 'Ready'), '') "
        "FROM (SELECT $1::jsonb AS d) j");
    if (!rows || rows->size() != 1) return view;
    const Row& row = rows->front();
    view.phase = row[0];
    view.cluster = row[1];
    view.ready_reason = row[2];
    view.ready_message = row[3];
    return view;
  }

  /// GET /api/v1/clusters by name; empty when it does not answer 200.
  [[nodiscard]] std::map<std::string, ClusterView> Clusters() const {
    std::map<std::string, ClusterView> out;
    if (port_ == 0) return out;
    const HttpResponse r = HttpGet(port_, "/api/v1/clusters");
    if (r.status != 200) return out;
    const auto rows =
        JsonRows(r.body,
                 "SELECT e ->> 'name', coalesce(e -> 'capacity', 'null')::text, e ->> 'used', "
                 "e ->> 'placed', coalesce(e -> 'reachable', 'null')::text, "
                 "coalesce(e ->> 'serverVersion', ''), coalesce(e -> 'labels', 'null')::text, "
                 "coalesce(e ->> 'reason', '') FROM jsonb_array_elements($1::jsonb -> 'items') e");
    if (!rows) return out;
    for (const Row& row : *rows) {
      out[row[0]] = {row[1], row[2], row[3], row[4], row[5], row[6], row[7]};
    }
    return out;
  }

  /// Passes run by this daemon so far, whatever their result (its /metrics).
  [[nodiscard]] long Passes() const {
    if (port_ == 0) return 0;
    const HttpResponse r = HttpGet(port_, "/metrics");
    long passes = 0;
    std::istringstream lines(r.body);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind("tenant_master_reconcile_total{", 0) != 0) continue;
      passes += std::stol(line.substr(line.rfind(' ') + 1));
    }
    return passes;
  }

  /// tenantctl against this daemon (no token: the API serves loopback clients without one).
  [[nodiscard]] ProcessResult Ctl(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{kTenantctl};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunProcess(argv, {{"TENANTCTL_SERVER", "http://127.0.0.1:" + std::to_string(port_)},
                             {"TENANTCTL_TOKEN", ""},
                             {"HOME", dir_.path().string()},
                             {"XDG_CONFIG_HOME", (dir_.path() / "xdg").string()}});
  }

  /// tm_placements of this case's store: workspace -> "cluster @ placed_at".
  [[nodiscard]] std::map<std::string, std::string> Placements() const {
    std::map<std::string, std::string> out;
    for (const Row& row : Query(Servers::Shared().Home().Dsn("tm_store_" + tag_),
                                "SELECT workspace, cluster, placed_at::text FROM tm_placements")) {
      out[row[0]] = row[1] + " @ " + row[2];
    }
    return out;
  }

  /// The cluster of the identity the store recorded at the workspace's first convergence, ""
  /// before it.
  [[nodiscard]] std::string IdentityCluster(const std::string& name) const {
    const std::string cluster = QueryValue(
        Servers::Shared().Home().Dsn("tm_store_" + tag_),
        "SELECT coalesce(identity_cluster, '') FROM tm_workspaces WHERE name = $1", {name});
    return cluster == "<none>" ? "" : cluster;
  }

  /// The cluster tm_placements records for `name`, "" without a record.
  [[nodiscard]] std::string PlacedOn(const std::string& name) const {
    const std::string cluster =
        QueryValue(Servers::Shared().Home().Dsn("tm_store_" + tag_),
                   "SELECT cluster FROM tm_placements WHERE workspace = $1", {name});
    return cluster == "<none>" ? "" : cluster;
  }

  /// Waits until the workspace's phase is `phase`; its last view either way.
  View WaitPhase(const std::string& name, const std::string& phase,
                 std::chrono::milliseconds limit = kConverge) const {
    View view;
    Eventually(
        [&] {
          view = Get(name);
          return view.phase == phase;
        },
        limit, kPoll);
    return view;
  }

 private:
  std::string tag_;
  TempDir dir_;
  std::string config_;
  int starts_ = 0;
  int port_ = 0;
  std::unique_ptr<DaemonProcess> daemon_;  // after dir_: stopped before its folder goes
};

void Timing(const std::string& what, SteadyClock::time_point since) {
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - since).count();
  std::cout << "placement_itest: " << what << ": " << ms << " ms" << std::endl;
}

/// status.cluster of the API's workspace object is `cluster` (docs/placement.md: "the cluster
/// of the workspace's recorded identity, i.e. where its data is once it converged").
///
/// The identity is recorded when the workspace first converges, and the reconciler hands the
/// stored row to the API's view then (WorkspaceReconciler::RecordIdentity), so status.cluster
/// shows it without a restart.
void CheckStatusCluster(const World& world, const std::string& name, const std::string& cluster) {
  View view;
  Eventually(
      [&] {
        view = world.Get(name);
        return view.cluster == cluster;
      },
      1s, kPoll);
  CHECK_MESSAGE(view.cluster == cluster, "status.cluster of " << name << " should be "
                                                                << cluster << " once it converged: "
                                                                << view.body);
}

/// The workspace converged on `cluster`: Ready, its database on that server only, the identity
/// the store recorded, status.cluster, and (for a placed one) the store's placement.
void CheckReadyOn(const World& world, const std::string& name, const std::string& cluster,
                  bool placed = true, std::chrono::milliseconds limit = kConverge) {
  const View view = world.WaitPhase(name, "Ready", limit);
  INFO(name << ": " << view.body);
  INFO("operator log:\n" << world.Log());
  REQUIRE(view.phase == "Ready");
  CHECK(WhereIs(name) == cluster);
  CHECK(world.IdentityCluster(name) == cluster);
  CHECK(world.PlacedOn(name) == (placed ? cluster : ""));
  CheckStatusCluster(world, name, cluster);
}

/// The row of `tenantctl get clusters` for `cluster`, by column (cut at the header's column
/// starts: VERSION holds blanks, e.g. `15.18 (Debian 15.18-0+deb12u1)`); empty when absent.
std::map<std::string, std::string> CtlClusterRow(const World& world, const std::string& cluster) {
  const ProcessResult r = world.Ctl({"get", "clusters"});
  const std::string header = LineStartingWith(r.out, "NAME ");
  const std::string line = LineStartingWith(r.out, cluster + " ");
  std::map<std::string, std::string> row;
  if (header.empty() || line.empty()) return row;
  std::vector<std::pair<std::string, std::size_t>> columns;
  std::istringstream words(header);
  std::size_t from = 0;
  for (std::string word; words >> word;) {
    from = header.find(word, from);
    columns.emplace_back(word, from);
    from += word.size();
  }
  for (std::size_t i = 0; i < columns.size(); ++i) {
    const std::size_t begin = columns[i].second;
    const std::size_t end = i + 1 < columns.size() ? columns[i + 1].second : std::string::npos;
    if (begin >= line.size()) break;
    std::string value = line.substr(begin, end == std::string::npos ? end : end - begin);
    value.erase(value.find_last_not_of(' ') + 1);
    row[columns[i].first] = value;
  }
  return row;
}

}  // namespace

// ---------------------------------------------------------------------------------------------

TEST_CASE("placement: the matching cluster with the most free room; ties by name; named count") {
  const auto started = SteadyClock::now();
  World world("pa");
  world.Configure({{"c1", 2, "eu"}, {"c2", 3, "eu"}, {"c3", 5, "us"}});
  // Four workspaces name c3: they count toward its usage (5 - 4 = 1 free) though never placed.
  const std::vector<std::string> pinned = {world.Name("pin1"), world.Name("pin2"),
                                           world.Name("pin3"), world.Name("pin4")};
  for (const std::string& name : pinned) world.Workspace(name, "", "c3");
  const std::string eu1 = world.Name("eu1");
  world.Workspace(eu1, "eu");
  world.Start();

  // eu1: c1 has 2 free, c2 3, c3 does not match: c2.
  CheckReadyOn(world, eu1, "c2");
  for (const std::string& name : pinned) CheckReadyOn(world, name, "c3", /*placed=*/false);

  // eu2: c1 2 free, c2 2 free: the tie goes to the first name, c1.
  const std::string eu2 = world.Name("eu2");
  world.Workspace(eu2, "eu");
  CheckReadyOn(world, eu2, "c1");

  // any1 (no selector): c1 1 free, c2 2, c3 1 (its four named workspaces): c2. Had the named ones
  // not counted, c3 (5 free) would have taken it.
  const std::string any1 = world.Name("any1");
  world.Workspace(any1, "");
  CheckReadyOn(world, any1, "c2");

  // eu3: c1 1 free, c2 1 free: c1 by name. eu4: c1 is full (2/2): c2, its last room.
  const std::string eu3 = world.Name("eu3");
  world.Workspace(eu3, "eu");
  CheckReadyOn(world, eu3, "c1");
  const std::string eu4 = world.Name("eu4");
  world.Workspace(eu4, "eu");
  CheckReadyOn(world, eu4, "c2");

  // Every earlier one is still where it was placed.
  CHECK(WhereIs(eu1) == "c2");
  CHECK(WhereIs(eu2) == "c1");
  CHECK(WhereIs(any1) == "c2");
  // Only the placed ones are recorded.
  const std::map<std::string, std::string> placements = world.Placements();
  CHECK(placements.size() == 5);
  for (const std::string& name : pinned) CHECK(placements.count(name) == 0);

  // The clusters as the API counts them: used (named + placed), placed, reachable, version.
  const std::map<std::string, ClusterView> clusters = world.Clusters();
  INFO("operator log:\n" << world.Log());
  REQUIRE(clusters.size() == 3);
  CHECK(clusters.at("c1").capacity == "2");
  CHECK(clusters.at("c1").used == "2");
  CHECK(clusters.at("c1").placed == "2");
  CHECK(clusters.at("c1").labels == R"({"region": "eu"})");
  CHECK(clusters.at("c2").used == "3");
  CHECK(clusters.at("c2").placed == "3");
  CHECK(clusters.at("c3").capacity == "5");
  CHECK(clusters.at("c3").used == "4");
  CHECK(clusters.at("c3").placed == "0");
  CHECK(clusters.at("c3").labels == R"({"region": "us"})");
  // Reachability comes from the monitor's first check, at most a few seconds after the start.
  CHECK(Eventually([&] { return world.Clusters().at("c3").reachable == "true"; }, 10s, kPoll));
  CHECK(world.Clusters().at("c3").server_version.rfind("15.", 0) == 0);

  // tenantctl get clusters: NAME CAPACITY USED REACHABLE VERSION LABELS.
  std::map<std::string, std::string> c1 = CtlClusterRow(world, "c1");
  std::map<std::string, std::string> c3 = CtlClusterRow(world, "c3");
  INFO("tenantctl get clusters:\n" << world.Ctl({"get", "clusters"}).out);
  CHECK(c1["CAPACITY"] == "2");
  CHECK(c1["USED"] == "2");
  CHECK(c1["REACHABLE"] == "True");
  CHECK(c1["LABELS"] == "region=eu");
  CHECK(c3["CAPACITY"] == "5");
  CHECK(c3["USED"] == "4");
  CHECK(c3["VERSION"].rfind("15.", 0) == 0);
  CHECK(c3["LABELS"] == "region=us");
  Timing("placement by capacity and selector", started);
}

TEST_CASE("placement: sticky across a restart under a config that would choose otherwise") {
  const auto started = SteadyClock::now();
  World world("pb");
  world.Configure({{"c1", 2, "eu"}, {"c2", 3, "eu"}, {"c3", 5, "us"}});
  const std::string eu1 = world.Name("eu1");
  const std::string eu2 = world.Name("eu2");
  const std::string any = world.Name("any");
  world.Workspace(eu1, "eu");
  world.Workspace(eu2, "eu");
  world.Workspace(any, "");
  world.Start();
  for (const std::string& name : {eu1, eu2, any}) {
    const View view = world.WaitPhase(name, "Ready");
    INFO(name << ": " << view.body << "\nlog:\n" << world.Log());
    REQUIRE(view.phase == "Ready");
  }
  // In whichever order they came: the eu pair on c1 and c2 (c2 first with 3 free, then the tie),
  // `any` on c3 (5 free, more than either).
  std::map<std::string, std::string> where{{eu1, WhereIs(eu1)}, {eu2, WhereIs(eu2)}, {any, "c3"}};
  CHECK(((where[eu1] == "c1" && where[eu2] == "c2") || (where[eu1] == "c2" && where[eu2] == "c1")));
  CHECK(WhereIs(any) == "c3");
  const std::map<std::string, std::string> before = world.Placements();
  REQUIRE(before.size() == 3);
  for (const auto& [name, cluster] : where) {
    CHECK(before.at(name).rfind(cluster + " @ ", 0) == 0);
    CHECK(world.IdentityCluster(name) == cluster);
    CheckStatusCluster(world, name, cluster);
  }

  // The new config would place each of them elsewhere: c1 now us and unlimited (first for `any`),
  // c2 has no room (capacity 0), c3 is eu with plenty (first for an eu workspace).
  CHECK(world.Stop() == 0);
  world.Configure({{"c1", std::nullopt, "us"}, {"c2", 0, "eu"}, {"c3", 100, "eu"}});
  world.Start();
  // Witnesses that the new config is in force: a new eu workspace goes to c3, a new one without a
  // selector to unlimited c1.
  const std::string eu_new = world.Name("eu-new");
  const std::string any_new = world.Name("any-new");
  world.Workspace(eu_new, "eu");
  world.Workspace(any_new, "");
  CheckReadyOn(world, eu_new, "c3");
  CheckReadyOn(world, any_new, "c1");
  // Every workspace has had passes under the new config (the start queues all of them, and the
  // resync again every 2 s): 5 workspaces, at least two rounds.
  CHECK(Eventually([&] { return world.Passes() >= 10; }, 20s, kPoll));

  // Nobody moved: the same records (cluster and time), the same servers, Ready, not Stalled on an
  // identity that a new placement would contradict.
  const std::map<std::string, std::string> after = world.Placements();
  for (const auto& [name, cluster] : where) {
    INFO(name << " was on " << cluster << "\nlog:\n" << world.Log());
    CHECK(after.at(name) == before.at(name));
    CHECK(WhereIs(name) == cluster);
    const View view = world.Get(name);
    INFO(view.body);
    CHECK(view.phase == "Ready");
    CHECK(world.IdentityCluster(name) == cluster);
    CHECK(view.cluster == cluster);  // read from the store at the start: shown after a restart
  }
  CHECK(after.size() == 5);
  // c2 is over its new capacity (1 of 0) and keeps its workspace.
  CHECK(world.Clusters().at("c2").used == "1");
  Timing("sticky across a restart", started);
}

TEST_CASE("placement: a full cluster set stalls Unschedulable; freed or raised room places it") {
  const auto started = SteadyClock::now();
  World world("pc");
  world.Configure({{"c1", 1, "eu"}, {"c2", 1, "eu"}, {"c3", 5, "us"}});
  const std::string first = world.Name("first");
  const std::string second = world.Name("second");
  world.Workspace(first, "eu");
  world.Workspace(second, "eu");
  world.Start();
  for (const std::string& name : {first, second}) {
    const View view = world.WaitPhase(name, "Ready");
    INFO(name << ": " << view.body << "\nlog:\n" << world.Log());
    REQUIRE(view.phase == "Ready");
  }
  const std::string first_on = WhereIs(first);
  CHECK(((first_on == "c1" && WhereIs(second) == "c2") ||
         (first_on == "c2" && WhereIs(second) == "c1")));

  // Every eu cluster is full: Stalled Unschedulable, each cluster named with why.
  const std::string extra = world.Name("extra");
  world.Workspace(extra, "eu");
  View view = world.WaitPhase(extra, "Stalled");
  INFO(extra << ": " << view.body << "\nlog:\n" << world.Log());
  REQUIRE(view.phase == "Stalled");
  CHECK(view.ready_reason == "Unschedulable");
  CHECK(view.ready_message.find("no cluster can take it: c1: full (1/1); c2: full (1/1); "
                                "c3: labels do not match region=eu") != std::string::npos);
  // Nothing was created or recorded for it, and a resync later still nothing.
  CHECK(WhereIs(extra) == "");
  CHECK(WhereIsRole(extra) == "");
  CHECK(world.PlacedOn(extra) == "");
  const long passes = world.Passes();
  CHECK(Eventually([&] { return world.Passes() >= passes + 3; }, 10s, kPoll));
  CHECK(world.Get(extra).phase == "Stalled");
  CHECK(WhereIs(extra) == "");
  CHECK(WhereIsRole(extra) == "");
  CHECK(world.PlacedOn(extra) == "");

  // A Delete reclaim frees the room: `first` goes, `extra` is placed where it was.
  world.RemoveWorkspace(first);
  CHECK(Eventually([&] { return WhereIs(first).empty(); }, kConverge, kPoll));
  CheckReadyOn(world, extra, first_on);
  CHECK(world.Placements().count(first) == 0);

  // Full again; a raised capacity, read at the restart, places the next one.
  const std::string late = world.Name("late");
  world.Workspace(late, "eu");
  view = world.WaitPhase(late, "Stalled");
  CHECK(view.ready_reason == "Unschedulable");
  CHECK(view.ready_message.find("c1: full (1/1); c2: full (1/1)") != std::string::npos);
  CHECK(WhereIs(late) == "");
  CHECK(world.Stop() == 0);
  world.Configure({{"c1", 2, "eu"}, {"c2", 1, "eu"}, {"c3", 5, "us"}});
  world.Start();
  CheckReadyOn(world, late, "c1");
  CHECK(WhereIs(extra) == first_on);
  CHECK(WhereIs(second) == (first_on == "c1" ? "c2" : "c1"));
  Timing("a full cluster", started);
}

TEST_CASE("placement: a cluster that is down delays only its workspaces and moves none") {
  const auto started = SteadyClock::now();
  Servers& servers = Servers::Shared();
  PgServer& down = servers[1];  // cluster c2
  // Whatever fails below, c2's server runs again for whatever runs after this case.
  struct Restart {
    PgServer& pg;
    ~Restart() {
      if (pg.running()) return;
      try {
        pg.Start();
      } catch (const std::exception&) {  // the next case reports the server it cannot reach
      }
    }
  } restart{down};

  World world("pd");
  world.Configure({{"c1", 2, "eu"}, {"c2", 10, "eu"}, {"c3", 2, "us"}});
  const std::string on_c2a = world.Name("a");
  const std::string on_c2b = world.Name("b");
  const std::string us = world.Name("us");
  world.Workspace(on_c2a, "eu");
  world.Workspace(on_c2b, "eu");
  world.Workspace(us, "us");
  world.Start();
  CheckReadyOn(world, on_c2a, "c2");
  CheckReadyOn(world, on_c2b, "c2");
  CheckReadyOn(world, us, "c3");

  const auto stopped = SteadyClock::now();
  down.Stop();
  // The monitor (every 5 s) sees it down: the API and tenantctl say so.
  ClusterView c2;
  const bool seen_down = Eventually(
      [&] {
        const auto clusters = world.Clusters();
        if (clusters.count("c2") == 0) return false;
        c2 = clusters.at("c2");
        return c2.reachable == "false";
      },
      15s, kPoll);
  INFO("log:\n" << world.Log());
  REQUIRE(seen_down);
  CHECK(!c2.reason.empty());
  CHECK(c2.used == "2");
  INFO("tenantctl get clusters:\n" << world.Ctl({"get", "clusters"}).out);
  CHECK(CtlClusterRow(world, "c2")["REACHABLE"] == "False");
  CHECK(CtlClusterRow(world, "c2")["USED"] == "2");
  CHECK(CtlClusterRow(world, "c1")["REACHABLE"] == "True");
  Timing("c2 stopped -> reported unreachable", stopped);

  // Its workspaces are Degraded (retried), not Stalled, still on c2.
  for (const std::string& name : {on_c2a, on_c2b}) {
    const View view = world.WaitPhase(name, "Degraded", 15s);
    INFO(name << ": " << view.body);
    CHECK(view.phase == "Degraded");
    CHECK(world.IdentityCluster(name) == "c2");
    CHECK(world.PlacedOn(name) == "c2");
  }

  // A new eu workspace would take c2 (8 free against c1's 2); c2 is down, so c1 takes it and it
  // converges meanwhile, as does the workspace on c3.
  const std::string newcomer = world.Name("new");
  world.Workspace(newcomer, "eu");
  CheckReadyOn(world, newcomer, "c1");
  CHECK(world.Get(us).phase == "Ready");
  // Nothing of c2's workspaces appeared on the clusters that are up; they still wait for c2.
  for (const std::string& name : {on_c2a, on_c2b}) {
    CHECK(WhereIs(name) == "");
    CHECK(WhereIsRole(name) == "");
    CHECK(world.PlacedOn(name) == "c2");
    CHECK(world.Get(name).phase == "Degraded");
  }

  // Back up: its workspaces converge again where they were, at their next retry (the backoff
  // doubles from 100 ms per failure: a few seconds after an outage this short).
  const auto back = SteadyClock::now();
  down.Start();
  CheckReadyOn(world, on_c2a, "c2", /*placed=*/true, 60s);
  CheckReadyOn(world, on_c2b, "c2", /*placed=*/true, 60s);
  CHECK(WhereIs(newcomer) == "c1");
  CHECK(Eventually([&] { return world.Clusters()["c2"].reachable == "true"; }, 15s, kPoll));
  Timing("c2 started again -> its workspaces Ready", back);
  Timing("a cluster that is down", started);
}
