// Fleet rollouts end to end (issue 12): the built tenant-operator as a daemon, the built tenantctl,
// the built portainer-sim and this binary's private PostgreSQL. Each case is checked where the
// truth is: the tenant databases (their tables, rows and migration ledger
// `tenant_master.schema_migrations`), the image tag Portainer (the simulator) runs for dedicated
// workspaces, each workspace's `status.productRevision` from the API, the rollout's status from
// `GET /api/v1/products/{name}/rollout`, and the store's events (`tm_events`, object
// `product/<name>` for the rollout's own); never by exit codes alone.
//
// Two worlds, each with its own fleet folder and store database:
//   - `main` (one daemon, Portainer simulator, backups before migrations): three products, one per
//     case, so that the cases share the start-up but not their rollouts:
//       `fleet` (20 workspaces, 4 of them dedicated): canaries, then 50 %, then the rest, paused
//               between waves; promoted twice;
//       `halt`  (6 workspaces): a migration that fails on one canary halts the rollout; fixed data
//               and `resume` finish it;
//       `undo`  (4 workspaces): `undo` after the canaries migrated restores their pre-migration
//               backups;
//   - `ha` (two daemons on one store, leader election): the leader is killed with SIGKILL in the
//     middle of a rollout; the standby finishes it and no workspace is migrated twice.
//
// A product change that makes a revision is written as one file: the new migrations are staged in
// a folder of their own first (no product points at it yet, so it changes nothing), then the
// product's manifest is replaced atomically with the new folder and version: one revision, never
// a migration-only one followed by a version-only one.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/crypto.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/http_get.hpp"
#include "tests/support/pg_server.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"
#include "tools/portainer-sim/sim_process.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace tmaster::testing;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;
using tmaster::tools::portainer_sim::SimProcess;

const std::string kOperator = std::string(TM_BINARY_DIR) + "/tenant-operator";
const std::string kTenantctl = std::string(TM_BINARY_DIR) + "/tenantctl";
const std::string kSimBinary = std::string(TM_BINARY_DIR) + "/portainer-sim";
const std::string kAdminToken = "rollouts-e2e-admin-token-0123456789a";
const std::string kReadToken = "rollouts-e2e-read-token-0123456789ab";
const std::string kPortainerKey = "ptr_rolloutsE2eKey0123456789abcdefghijklmnopqr";
constexpr std::chrono::milliseconds kPoll = 100ms;

std::string DatabaseOf(const std::string& workspace) { return "tenant_" + workspace; }
std::string RoleOf(const std::string& workspace) { return "user_" + workspace; }

std::string Describe(const ProcessResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// The text between `before` and `after` in `text` (first occurrence), or empty.
std::string Between(const std::string& text, const std::string& before, const std::string& after) {
  const std::size_t start = text.find(before);
  if (start == std::string::npos) return "";
  const std::size_t from = start + before.size();
  const std::size_t end = text.find(after, from);
  if (end == std::string::npos) return "";
  return text.substr(from, end - from);
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

double Seconds(SteadyClock::duration d) {
  return std::chrono::duration<double>(d).count();
}

/// `v` at `path` (object keys), or nullptr.
const json::value* At(const json::value& v, std::initializer_list<const char*> path) {
  const json::value* at = &v;
  for (const char* key : path) {
    if (!at->is_object()) return nullptr;
    at = at->as_object().if_contains(key);
    if (at == nullptr) return nullptr;
  }
  return at;
}
std::string Str(const json::value& v, std::initializer_list<const char*> path) {
  const json::value* at = At(v, path);
  return at != nullptr && at->is_string() ? std::string(at->get_string()) : std::string();
}
std::int64_t Int(const json::value& v, std::initializer_list<const char*> path,
                 std::int64_t otherwise = -1) {
  const json::value* at = At(v, path);
  return at != nullptr && at->is_int64() ? at->get_int64() : otherwise;
}

/// One event of the store.
struct EventRow {
  std::int64_t id = 0;
  std::string type;
  std::string reason;
  std::string message;
};

std::string DescribeEvents(const std::vector<EventRow>& events) {
  std::string out;
  for (const EventRow& e : events) out += "  " + e.type + " " + e.reason + ": " + e.message + "\n";
  return out;
}

int CountReason(const std::vector<EventRow>& events, const std::string& reason) {
  return static_cast<int>(std::count_if(events.begin(), events.end(),
                                        [&](const EventRow& e) { return e.reason == reason; }));
}

/// Whether `reasons` appear in this order among `events` (others may come between).
bool InOrder(const std::vector<EventRow>& events, const std::vector<std::string>& reasons) {
  std::size_t next = 0;
  for (const EventRow& e : events) {
    if (next < reasons.size() && e.reason == reasons[next]) ++next;
  }
  return next == reasons.size();
}

/// One workspace of a rollout's status (`rollout.workspaces[]`).
struct RolloutMember {
  int wave = 0;
  std::string state;
  std::string reason;
  std::string backup;   // preMigrationBackup
  std::string restore;  // after an undo
  std::int64_t attempt = 0;
};

/// `GET /api/v1/products/{name}/rollout`, read.
struct RolloutView {
  int http = 0;
  std::string body;
  std::string phase;  // empty: no rollout (or no answer)
  int revision = 0;
  int previous = 0;
  int current_wave = 0;
  int wave_count = 0;
  std::map<std::string, RolloutMember> members;

  [[nodiscard]] std::set<std::string> InState(const std::string& state) const {
    std::set<std::string> out;
    for (const auto& [name, m] : members) {
      if (m.state == state) out.insert(name);
    }
    return out;
  }
};

RolloutView ParseRollout(int http, const std::string& body) {
  RolloutView view;
  view.http = http;
  view.body = body;
  if (http != 200) return view;
  boost::system::error_code error;
  const json::value v = json::parse(body, error);
  if (error) return view;
  const json::value* rollout = At(v, {"rollout"});
  if (rollout == nullptr || !rollout->is_object()) return view;
  view.phase = Str(*rollout, {"phase"});
  view.revision = static_cast<int>(Int(*rollout, {"revision"}, 0));
  view.previous = static_cast<int>(Int(*rollout, {"previousRevision"}, 0));
  view.current_wave = static_cast<int>(Int(*rollout, {"currentWave"}, 0));
  view.wave_count = static_cast<int>(Int(*rollout, {"waveCount"}, 0));
  if (const json::value* list = At(*rollout, {"workspaces"}); list != nullptr && list->is_array()) {
    for (const json::value& w : list->get_array()) {
      view.members[Str(w, {"name"})] = RolloutMember{static_cast<int>(Int(w, {"wave"}, 0)),
                                                     Str(w, {"state"}),
                                                     Str(w, {"reason"}),
                                                     Str(w, {"preMigrationBackup"}),
                                                     Str(w, {"restore"}),
                                                     Int(w, {"attempt"}, 0)};
    }
  }
  return view;
}

/// The workspaces of `product` in the rollouts' stable order: SHA-256 of `product/name`
/// (docs/rollouts.md, "The policy"), computed here independently of the operator.
std::vector<std::string> StableOrder(const std::string& product, std::vector<std::string> names) {
  std::sort(names.begin(), names.end(), [&](const std::string& a, const std::string& b) {
    const std::string ka = tmaster::crypto::Sha256Hex(product + "/" + a);
    const std::string kb = tmaster::crypto::Sha256Hex(product + "/" + b);
    return ka != kb ? ka < kb : a < b;
  });
  return names;
}

/// A minimal compose template for dedicated stacks (docs/stacks.md#name-and-env).
const char* kStackTemplate =
    "services:\n"
    "  app:\n"
    "    image: ${TM_IMAGE}:${TM_VERSION}\n"
    "    restart: unless-stopped\n"
    "    environment:\n"
    "      DATABASE_URL: ${DATABASE_URL}\n"
    "      TENANT_NAME: ${TM_WORKSPACE}\n"
    "    networks: [edge]\n"
    "networks:\n"
    "  edge:\n"
    "    name: ${TM_EDGE_NETWORK}\n"
    "    external: true\n";

/// A Product manifest. `migrations` is its folder (relative to the fleet folder), `rollout`
/// the YAML of `spec.rollout` indented by four (empty: none).
std::string ProductYaml(const std::string& name, const std::string& version,
                        const std::string& migrations, const std::string& rollout,
                        bool dedicated) {
  std::string yaml = "apiVersion: tenantmaster.io/v1alpha1\nkind: Product\nmetadata:\n  name: " +
                     name + "\nspec:\n  image: ghcr.io/acme/" + name + "\n  defaultVersion: \"" +
                     version + "\"\n  migrations: " + migrations + "\n";
  if (dedicated) {
    yaml += "  port: 8000\n  stackTemplate: stacks/" + name + ".yml\n  modes: [shared, dedicated]\n";
  } else {
    yaml += "  modes: [shared]\n";
  }
  if (!rollout.empty()) yaml += "  rollout:\n" + rollout;
  return yaml;
}

std::string WorkspaceYaml(const std::string& name, const std::string& product, bool canary,
                          bool dedicated) {
  std::string yaml = "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: " +
                     name + "\n";
  if (canary) yaml += "  labels: {ring: canary}\n";
  yaml += "spec:\n  product: " + product + "\n  mode: " +
          std::string(dedicated ? "dedicated" : "shared") + "\n";
  if (dedicated) yaml += "  dedicated:\n    endpoint: 1\n";
  return yaml;
}

/// One fleet folder and one store database, with the daemons started on them (one, or two for
/// leader election) and the calls the cases make. API calls go to the daemon `Use` chose.
class Rig {
 public:
  struct Options {
    std::string tag;
    bool portainer = false;
    std::string backups;  ///< lines under `backups:` besides `directory`
  };

  explicit Rig(Options options) : pg_(PgServer::Shared()), tag_(std::move(options.tag)) {
    if (options.portainer) {
      sim_ = std::make_unique<SimProcess>(SimProcess::Options{
          .binary = kSimBinary,
          .args = {"--api-key-env", "RO_PORTAINER_KEY", "--endpoints", "2"},
          .env = {{"RO_PORTAINER_KEY", kPortainerKey}}});
    }
    std::string yaml = "baseDomain: example.test\nmasterKeyEnv: TM_MASTER_KEY\n";
    yaml += "clusters:\n  - name: default\n    dsnEnv: TM_PG_DSN\n";
    yaml += "store:\n  dsnEnv: TM_STORE_DSN\n";
    yaml += "sources:\n  - name: local\n    directory: " + FleetDir().string() + "\n";
    if (sim_) {
      yaml += "stacks:\n  backend: portainer\n  portainer: {url: \"" + sim_->BaseUrl() +
              "\", apiKeyEnv: RO_PORTAINER_KEY}\n  edgeNetwork: edge\n  certResolver: le\n";
    } else {
      yaml += "stacks:\n  backend: directory\n  directory: " +
              (dir_.path() / "deployments").string() + "\n";
    }
    yaml += "http:\n  listen: \"127.0.0.1:0\"\n  tokenEnv: TM_API_TOKEN\n";
    yaml += "  readTokenEnv: TM_READ_TOKEN\n";
    yaml += "backups:\n  directory: " + (dir_.path() / "backups").string() + "\n" +
            options.backups;
    yaml += "reconcile:\n  workers: 4\n";
    config_ = dir_.Write("operator.yaml", yaml).string();
    dir_.Mkdir("fleet");
  }
  Rig(const Rig&) = delete;
  Rig& operator=(const Rig&) = delete;
  ~Rig() {
    // The daemons before the simulator they talk to.
    daemons_.clear();
    sim_.reset();
  }

  PgServer& pg() { return pg_; }
  [[nodiscard]] fs::path FleetDir() const { return dir_.path() / "fleet"; }
  [[nodiscard]] std::string StoreDsn() const { return pg_.Dsn("tm_store_" + tag_); }

  /// Writes a fleet file the way an editor saving atomically does (aside, then renamed).
  void WriteFleet(const std::string& relative, const std::string& text) const {
    const fs::path staged = dir_.Write("staging/" + relative, text);
    const fs::path target = FleetDir() / relative;
    fs::create_directories(target.parent_path());
    fs::rename(staged, target);
  }

  /// Starts one more daemon on this rig's config and store (its own state folder and log);
  /// its index. Throws when it does not serve.
  int Start() {
    const int n = static_cast<int>(daemons_.size());
    auto daemon = std::make_unique<DaemonProcess>(DaemonProcess::Options{
        .argv = {kOperator, "--config", config_, "--state-dir",
                 (dir_.path() / ("state-" + std::to_string(n))).string()},
        .env = {{"TM_MASTER_KEY", "rollouts-e2e-master-key-" + tag_ + "-0123456789abcdef"},
                {"TM_PG_DSN", pg_.Dsn()},
                {"TM_STORE_DSN", StoreDsn()},
                {"TM_API_TOKEN", kAdminToken},
                {"TM_READ_TOKEN", kReadToken},
                {"RO_PORTAINER_KEY", kPortainerKey}},
        .log_file = (dir_.path() / ("operator-" + std::to_string(n) + ".log")).string()});
    const int port = daemon->WaitForHttpPort(60s);
    if (port == 0) throw std::runtime_error("no HTTP port; log:\n" + daemon->Log());
    daemons_.push_back(std::move(daemon));
    ports_.push_back(port);
    return n;
  }
  DaemonProcess& daemon(int n) { return *daemons_.at(static_cast<std::size_t>(n)); }
  void Use(int n) { current_ = n; }
  [[nodiscard]] int port(int n) const { return ports_.at(static_cast<std::size_t>(n)); }

  /// Every daemon's log.
  [[nodiscard]] std::string Log() const {
    std::string all;
    for (std::size_t n = 0; n < daemons_.size(); ++n) {
      all += "---- operator-" + std::to_string(n) + ".log\n" +
             ReadFile(dir_.path() / ("operator-" + std::to_string(n) + ".log"));
    }
    return all;
  }
  /// The log lines mentioning one of `needles` (warnings and errors always), for failure
  /// messages; at most the last `limit` of them.
  [[nodiscard]] std::string LogLines(const std::vector<std::string>& needles,
                                     std::size_t limit = 150) const {
    std::istringstream in(Log());
    std::string line;
    std::vector<std::string> kept;
    while (std::getline(in, line)) {
      bool keep = line.rfind("----", 0) == 0 || Contains(line, " warn") ||
                  Contains(line, " error") || Contains(line, " critical") ||
                  Contains(line, "[warning]") || Contains(line, "[error]") ||
                  line.rfind("20", 0) != 0;  // not a log line: a crash's output
      for (const std::string& n : needles) keep = keep || Contains(line, n);
      if (keep) kept.push_back(line);
    }
    std::string out;
    for (std::size_t i = kept.size() > limit ? kept.size() - limit : 0; i < kept.size(); ++i) {
      out += kept[i] + "\n";
    }
    return out;
  }

  // The API.
  ProcessResult Ctl(std::vector<std::string> args) const {
    args.insert(args.begin(), kTenantctl);
    return RunProcess(args,
                      {{"TENANTCTL_SERVER", "http://127.0.0.1:" + std::to_string(port(current_))},
                       {"TENANTCTL_TOKEN", kAdminToken},
                       {"HOME", dir_.path().string()},
                       {"XDG_CONFIG_HOME", (dir_.path() / "xdg").string()}});
  }
  [[nodiscard]] HttpResponse Request(const std::string& method, const std::string& path,
                                     const std::string& token = kReadToken) const {
    return HttpRequest(port(current_), method, path, {{"Authorization", "Bearer " + token}});
  }
  [[nodiscard]] json::value Get(const std::string& path) const {
    const HttpResponse r = Request("GET", path);
    if (r.status != 200) return nullptr;
    boost::system::error_code error;
    json::value value = json::parse(r.body, error);
    return error ? json::value(nullptr) : value;
  }
  [[nodiscard]] std::string Phase(const std::string& ws) const {
    return Str(Get("/api/v1/workspaces/" + ws), {"status", "phase"});
  }
  /// `status.productRevision` (-1 when unreadable).
  [[nodiscard]] int ProductRevision(const std::string& ws) const {
    return static_cast<int>(Int(Get("/api/v1/workspaces/" + ws), {"status", "productRevision"}));
  }
  [[nodiscard]] RolloutView Rollout(const std::string& product) const {
    const HttpResponse r = Request("GET", "/api/v1/products/" + product + "/rollout");
    return ParseRollout(r.status, r.status != 0 ? r.body : r.error);
  }
  /// `tenantctl rollout VERB PRODUCT`.
  ProcessResult Verb(const std::string& verb, const std::string& product) const {
    return Ctl({"rollout", verb, product});
  }
  /// `tenant_master_leader` in the daemon's /metrics: 1, 0, or -1 when unreadable.
  [[nodiscard]] int Leader(int n) const {
    const HttpResponse r = HttpGet(port(n), "/metrics", 3s);
    if (r.status != 200) return -1;
    const std::string line = LineStartingWith(r.body, "tenant_master_leader ");
    if (line.empty()) return -1;
    return std::stoi(line.substr(std::string("tenant_master_leader ").size()));
  }

  // The store.
  /// The events of `object` (a workspace, or `product/<name>`) after event id `after`.
  [[nodiscard]] std::vector<EventRow> Events(const std::string& object,
                                             std::int64_t after = 0) const {
    std::vector<EventRow> out;
    for (const Row& row :
         Query(StoreDsn(),
               "SELECT id::text, type, reason, message FROM tm_events WHERE workspace = $1 "
               "AND id > $2::bigint ORDER BY id",
               {object, std::to_string(after)})) {
      out.push_back(EventRow{std::stoll(row[0]), row[1], row[2], row[3]});
    }
    return out;
  }
  [[nodiscard]] std::int64_t LastEventId() const {
    return std::stoll(QueryValue(StoreDsn(), "SELECT coalesce(max(id), 0)::text FROM tm_events"));
  }
  /// The stored rollout's state (tm_rollouts.state_json), for failure messages.
  [[nodiscard]] std::string StoredRollout(const std::string& product) const {
    try {
      return QueryValue(StoreDsn(), "SELECT state_json FROM tm_rollouts WHERE product = $1",
                        {product});
    } catch (const std::exception& e) {
      return std::string("<") + e.what() + ">";
    }
  }
  /// What the store's status row of `ws` records of its revisions (`product/attempted/attempt
  /// backup`), for failure messages.
  [[nodiscard]] std::string StoredRevisionFields(const std::string& ws) const {
    const std::vector<Row> rows =
        Query(StoreDsn(),
              "SELECT product_revision::text, attempted_revision::text, rollout_attempt::text, "
              "pre_migration_backup FROM tm_workspace_status WHERE name = $1",
              {ws});
    if (rows.empty()) return "<no status row>";
    return "productRevision " + rows[0][0] + ", attemptedRevision " + rows[0][1] +
           ", rolloutAttempt " + rows[0][2] + ", preMigrationBackup '" + rows[0][3] + "'";
  }
  /// A backup's kind and state in the catalog (`kind/state`), or empty.
  [[nodiscard]] std::string BackupKindState(const std::string& id) const {
    const std::vector<Row> rows =
        Query(StoreDsn(), "SELECT kind, state FROM tm_backups WHERE id = $1", {id});
    return rows.empty() ? std::string() : rows.front()[0] + "/" + rows.front()[1];
  }

  // The tenants' side.
  /// The first value of `sql` in the workspace's database, as the superuser; `<error: ...>`
  /// when it fails (the database or the ledger may not exist yet).
  [[nodiscard]] std::string InTenant(const std::string& ws, const std::string& sql,
                                     const std::vector<std::string>& params = {}) const {
    try {
      return QueryValue(pg_.Dsn(DatabaseOf(ws)), sql, params);
    } catch (const std::exception& e) {
      return std::string("<error: ") + e.what() + ">";
    }
  }
  /// Whether the ledger records migration `version` (exactly one row).
  [[nodiscard]] bool Migrated(const std::string& ws, const std::string& version) const {
    return InTenant(ws, "SELECT count(*) FROM tenant_master.schema_migrations WHERE version = $1",
                    {version}) == "1";
  }
  /// The versions in the ledger, comma-separated, in order.
  [[nodiscard]] std::string Ledger(const std::string& ws) const {
    return InTenant(ws,
                    "SELECT coalesce(string_agg(version, ',' ORDER BY version), '') FROM "
                    "tenant_master.schema_migrations");
  }
  [[nodiscard]] bool HasTable(const std::string& ws, const std::string& table) const {
    return InTenant(ws, "SELECT to_regclass($1) IS NOT NULL", {"public." + table}) == "t";
  }
  /// Runs `sql` in the workspace's database as its own role.
  void AsTenant(const std::string& ws, const std::string& sql) const {
    Execute(pg_.Dsn(DatabaseOf(ws)), "SET ROLE " + RoleOf(ws) + ";\n" + sql);
  }

  // The simulator.
  /// TM_VERSION of stack `tm-<ws>` in Portainer, `<no stack>` or `<no answer>`.
  [[nodiscard]] std::string StackVersion(const std::string& ws) const {
    if (!sim_) return "<no simulator>";
    const HttpResponse r = HttpGet(sim_->port(), "/__sim/state");
    if (r.status != 200) return "<no answer>";
    boost::system::error_code error;
    const json::value state = json::parse(r.body, error);
    if (error) return "<no answer>";
    const json::value* stacks = At(state, {"stacks"});
    if (stacks == nullptr || !stacks->is_array()) return "<no answer>";
    for (const json::value& s : stacks->get_array()) {
      if (Str(s, {"Name"}) != "tm-" + ws) continue;
      const json::value* env = At(s, {"Env"});
      if (env == nullptr || !env->is_array()) return "<no env>";
      for (const json::value& pair : env->get_array()) {
        if (Str(pair, {"name"}) == "TM_VERSION") return Str(pair, {"value"});
      }
      return "<no TM_VERSION>";
    }
    return "<no stack>";
  }

 private:
  PgServer& pg_;
  std::string tag_;
  TempDir dir_;
  std::unique_ptr<SimProcess> sim_;
  std::string config_;
  std::vector<std::unique_ptr<DaemonProcess>> daemons_;
  std::vector<int> ports_;
  int current_ = 0;
};

/// Where each workspace stands, one line each, for failure messages.
std::string Snapshot(const Rig& rig, const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& ws : names) {
    out += "  " + ws + ": phase " + rig.Phase(ws) + ", productRevision " +
           std::to_string(rig.ProductRevision(ws)) + ", ledger [" + rig.Ledger(ws) +
           "]; stored: " + rig.StoredRevisionFields(ws) + "\n";
  }
  return out;
}

// ---- the `main` world ---------------------------------------------------------------------

const char* kBaseMigration = "CREATE TABLE t (id serial PRIMARY KEY, x int NOT NULL);\n";

// `fleet` (case 1): 20 workspaces, f01 and f02 the canaries; f01, f05, f09 and f13 dedicated.
const std::string kFleet = "fleet";
const std::set<std::string> kFleetCanaries = {"f01", "f02"};
const std::set<std::string> kFleetDedicated = {"f01", "f05", "f09", "f13"};
const char* kFleetRollout =
    "    waves:\n"
    "      - {selector: {matchLabels: {ring: canary}}}\n"
    "      - {percent: 50}\n"
    "      - {percent: 100}\n"
    "    pauseBetweenWaves: 1h\n"
    "    maxUnavailable: 3\n"
    "    failureBudget: 1\n";
const char* kOrdersMigration =
    "CREATE TABLE orders (id serial PRIMARY KEY, account int NOT NULL, total numeric);\n";

std::vector<std::string> FleetNames() {
  std::vector<std::string> names;
  for (int i = 1; i <= 20; ++i) names.push_back((i < 10 ? "f0" : "f") + std::to_string(i));
  return names;
}

// `halt` (case 2): h1..h6, h1 and h2 the canaries; no pause, so only the halt holds wave 2.
const std::string kHalt = "halt";
const std::vector<std::string> kHaltNames = {"h1", "h2", "h3", "h4", "h5", "h6"};
const char* kHaltRollout =
    "    waves:\n"
    "      - {selector: {matchLabels: {ring: canary}}}\n"
    "      - {percent: 100}\n"
    "    maxUnavailable: 2\n"
    "    failureBudget: 1\n";
const char* kUniqueMigration = "ALTER TABLE t ADD CONSTRAINT t_x_unique UNIQUE (x);\n";

// `undo` (case 3): u1..u4, u1 and u2 the canaries.
const std::string kUndo = "undo";
const std::vector<std::string> kUndoNames = {"u1", "u2", "u3", "u4"};
const char* kUndoRollout =
    "    waves:\n"
    "      - {selector: {matchLabels: {ring: canary}}}\n"
    "      - {percent: 100}\n"
    "    pauseBetweenWaves: 1h\n"
    "    maxUnavailable: 2\n"
    "    failureBudget: 1\n";
// A migration that adds a table and changes the rows the tenant had.
const char* kExtraMigration =
    "CREATE TABLE extra (id serial PRIMARY KEY, note text);\n"
    "UPDATE t SET x = x + 1000;\n";

std::unique_ptr<Rig> MakeMain() {
  auto rig = std::make_unique<Rig>(
      Rig::Options{.tag = "ro_main",
                   .portainer = true,
                   .backups = "  beforeMigrations: true\n  verify: list\n  concurrency: 3\n"});
  rig->WriteFleet("stacks/fleet.yml", kStackTemplate);
  for (const std::string& product : std::vector<std::string>{kFleet, kHalt, kUndo}) {
    rig->WriteFleet("migrations/" + product + "/v1/0001_base.sql", kBaseMigration);
  }
  rig->WriteFleet("product-fleet.yaml",
                  ProductYaml(kFleet, "1.0.0", "migrations/fleet/v1", kFleetRollout, true));
  rig->WriteFleet("product-halt.yaml",
                  ProductYaml(kHalt, "1.0.0", "migrations/halt/v1", kHaltRollout, false));
  rig->WriteFleet("product-undo.yaml",
                  ProductYaml(kUndo, "1.0.0", "migrations/undo/v1", kUndoRollout, false));
  for (const std::string& ws : FleetNames()) {
    rig->WriteFleet("workspaces/" + ws + ".yaml",
                    WorkspaceYaml(ws, kFleet, kFleetCanaries.count(ws) > 0,
                                  kFleetDedicated.count(ws) > 0));
  }
  for (const std::string& ws : kHaltNames) {
    rig->WriteFleet("workspaces/" + ws + ".yaml",
                    WorkspaceYaml(ws, kHalt, ws == "h1" || ws == "h2", false));
  }
  for (const std::string& ws : kUndoNames) {
    rig->WriteFleet("workspaces/" + ws + ".yaml",
                    WorkspaceYaml(ws, kUndo, ws == "u1" || ws == "u2", false));
  }
  rig->Start();
  return rig;
}

/// Started on first use from the test's own thread (the daemon and the simulator die with the
/// thread that started them), stopped when the binary ends.
Rig& Main() {
  static const std::unique_ptr<Rig> rig = MakeMain();
  return *rig;
}

/// Waits until each of `names` is Ready with `productRevision` `revision`.
bool WaitConvergedOn(const Rig& rig, const std::vector<std::string>& names, int revision,
                     std::chrono::milliseconds limit) {
  return Eventually(
      [&] {
        for (const std::string& ws : names) {
          if (rig.Phase(ws) != "Ready" || rig.ProductRevision(ws) != revision) return false;
        }
        return true;
      },
      limit, 250ms);
}

/// Stages `migrations` (file name → SQL) under `migrations/<product>/<folder>/` (no product
/// points there yet), then replaces the product's manifest with one naming that folder and
/// `version`: one change, one revision.
void NewRevision(const Rig& rig, const std::string& product, const std::string& folder,
                 const std::map<std::string, std::string>& migrations, const std::string& version,
                 const std::string& rollout, bool dedicated) {
  for (const auto& [file, sql] : migrations) {
    rig.WriteFleet("migrations/" + product + "/" + folder + "/" + file, sql);
  }
  rig.WriteFleet("product-" + product + ".yaml",
                 ProductYaml(product, version, "migrations/" + product + "/" + folder, rollout,
                             dedicated));
}

}  // namespace

TEST_CASE("rollouts e2e: canaries first, the others keep revision 1 until each promote") {
  const auto began = SteadyClock::now();
  Rig& rig = Main();
  const std::vector<std::string> names = FleetNames();
  INFO("daemon:\n" << rig.LogLines({"rollout", "f01", "f02"}));
  REQUIRE(WaitConvergedOn(rig, names, 1, 180s));
  for (const std::string& ws : kFleetDedicated) CHECK(rig.StackVersion(ws) == "1.0.0");
  std::cout << "rollouts_itest: main world converged on revision 1 (30 workspaces) in "
            << Seconds(SteadyClock::now() - began) << " s" << std::endl;
  // Revision 1 started no rollout: every workspace was new.
  CHECK(rig.Rollout(kFleet).phase.empty());

  // The waves, computed here: the canaries, then the first 50 % (10) of the stable order that
  // are not canaries, then the rest.
  const std::vector<std::string> order = StableOrder(kFleet, names);
  std::set<std::string> wave2;
  for (std::size_t i = 0; i < 10; ++i) {
    if (kFleetCanaries.count(order[i]) == 0) wave2.insert(order[i]);
  }
  std::set<std::string> wave3;
  for (const std::string& ws : names) {
    if (kFleetCanaries.count(ws) == 0 && wave2.count(ws) == 0) wave3.insert(ws);
  }
  REQUIRE(wave2.size() + wave3.size() == 18);
  std::string waves_text = "wave 2:";
  for (const std::string& ws : wave2) waves_text += " " + ws;
  waves_text += "\nwave 3:";
  for (const std::string& ws : wave3) waves_text += " " + ws;
  INFO(waves_text);

  const std::int64_t events_before = rig.LastEventId();
  NewRevision(rig, kFleet, "v2",
              {{"0001_base.sql", kBaseMigration}, {"0002_orders.sql", kOrdersMigration}}, "2.0.0",
              kFleetRollout, true);
  const auto edited = SteadyClock::now();

  // Wave 1: the two canaries get the migration and revision 2, then the rollout pauses.
  RolloutView view;
  const bool canaries_done = Eventually(
      [&] {
        view = rig.Rollout(kFleet);
        if (view.phase != "Paused") return false;
        for (const std::string& ws : kFleetCanaries) {
          if (!rig.Migrated(ws, "0002") || rig.ProductRevision(ws) != 2) return false;
        }
        return true;
      },
      90s, kPoll);
  INFO("rollout: " << view.body);
  INFO("workspaces:\n" << Snapshot(rig, names));
  REQUIRE(canaries_done);
  std::cout << "rollouts_itest: canary wave done and paused " << Seconds(SteadyClock::now() - edited)
            << " s after the edit" << std::endl;
  CHECK(view.revision == 2);
  CHECK(view.previous == 1);
  CHECK(view.wave_count == 3);
  CHECK(view.members.size() == 20);
  for (const std::string& ws : names) {
    const int expected = kFleetCanaries.count(ws) > 0 ? 1 : wave2.count(ws) > 0 ? 2 : 3;
    CHECK_MESSAGE(view.members[ws].wave == expected, ws);
  }
  CHECK(view.InState("ready") == kFleetCanaries);
  CHECK(view.InState("pending").size() == 18);
  for (const std::string& ws : kFleetCanaries) {
    CHECK(rig.HasTable(ws, "orders"));
    CHECK(rig.Phase(ws) == "Ready");
    // The backup taken right before its migration is named, and is in the catalog.
    CHECK_MESSAGE(rig.BackupKindState(view.members[ws].backup).rfind("pre-migration/", 0) == 0,
                  ws << " backup '" << view.members[ws].backup << "'");
  }
  CHECK(rig.StackVersion("f01") == "2.0.0");  // the dedicated canary runs the new version

  // For a few seconds nothing else moves: the 18 keep the old schema, revision 1, and (the
  // dedicated ones) the old image.
  std::string moved;
  const auto others_moved = [&](const std::set<std::string>& which) {
    for (const std::string& ws : which) {
      if (rig.Migrated(ws, "0002") || rig.HasTable(ws, "orders")) moved = ws + " migrated";
      else if (rig.ProductRevision(ws) != 1) moved = ws + " productRevision " +
                                                     std::to_string(rig.ProductRevision(ws));
      else if (kFleetDedicated.count(ws) > 0 && rig.StackVersion(ws) != "1.0.0") {
        moved = ws + " runs " + rig.StackVersion(ws);
      }
      if (!moved.empty()) return true;
    }
    const std::string phase = rig.Rollout(kFleet).phase;
    if (phase != "Paused") moved = "the rollout is " + phase;
    return !moved.empty();
  };
  std::set<std::string> others = wave2;
  others.insert(wave3.begin(), wave3.end());
  CHECK_MESSAGE(!Eventually([&] { return others_moved(others); }, 4s, 250ms), moved);
  CHECK(rig.Ledger(*others.begin()) == "0001");

  // tenantctl shows it.
  const ProcessResult shown = rig.Ctl({"rollout", "status", kFleet, "-o", "json"});
  CHECK_MESSAGE(shown.exit_code == 0, Describe(shown));
  CHECK(ParseRollout(200, shown.out).phase == "Paused");

  // Promote: wave 2 (10 of the stable order, minus the canaries), which pauses again.
  ProcessResult r = rig.Verb("promote", kFleet);
  REQUIRE_MESSAGE(r.exit_code == 0, Describe(r));
  const bool wave2_done = Eventually(
      [&] {
        view = rig.Rollout(kFleet);
        if (view.phase != "Paused") return false;
        for (const std::string& ws : wave2) {
          if (!rig.Migrated(ws, "0002") || rig.ProductRevision(ws) != 2) return false;
        }
        return true;
      },
      120s, kPoll);
  INFO("after the first promote: " << view.body);
  INFO("workspaces:\n" << Snapshot(rig, names));
  REQUIRE(wave2_done);
  std::set<std::string> reached = kFleetCanaries;
  reached.insert(wave2.begin(), wave2.end());
  CHECK(view.InState("ready") == reached);
  CHECK(view.InState("pending") == wave3);
  for (const std::string& ws : wave2) {
    if (kFleetDedicated.count(ws) > 0) CHECK_MESSAGE(rig.StackVersion(ws) == "2.0.0", ws);
  }
  moved.clear();
  CHECK_MESSAGE(!Eventually([&] { return others_moved(wave3); }, 2s, 250ms), moved);

  // Promote again: the rest, then Completed.
  r = rig.Verb("promote", kFleet);
  REQUIRE_MESSAGE(r.exit_code == 0, Describe(r));
  const bool completed = Eventually(
      [&] {
        view = rig.Rollout(kFleet);
        return view.phase == "Completed";
      },
      120s, kPoll);
  INFO("after the second promote: " << view.body);
  REQUIRE(completed);
  CHECK(view.InState("ready").size() == 20);
  CHECK(WaitConvergedOn(rig, names, 2, 30s));
  for (const std::string& ws : names) {
    CHECK_MESSAGE(rig.Ledger(ws) == "0001,0002", ws);
    CHECK_MESSAGE(rig.HasTable(ws, "orders"), ws);
  }
  for (const std::string& ws : kFleetDedicated) CHECK_MESSAGE(rig.StackVersion(ws) == "2.0.0", ws);

  // The rollout's events, for product/fleet.
  const std::vector<EventRow> events = rig.Events("product/" + kFleet, events_before);
  INFO("events of product/fleet:\n" << DescribeEvents(events));
  CHECK(CountReason(events, "RolloutStarted") == 1);
  CHECK(CountReason(events, "RolloutWaveStarted") == 3);
  CHECK(CountReason(events, "RolloutWaveCompleted") == 3);
  CHECK(CountReason(events, "RolloutCompleted") == 1);
  CHECK(CountReason(events, "RolloutPromoted") == 2);
  CHECK(InOrder(events, {"RolloutStarted", "RolloutWaveStarted", "RolloutWaveCompleted",
                         "RolloutPromoted", "RolloutWaveStarted", "RolloutWaveCompleted",
                         "RolloutPromoted", "RolloutWaveStarted", "RolloutWaveCompleted",
                         "RolloutCompleted"}));
  std::cout << "rollouts_itest: case 1 (20 workspaces, 3 waves) took "
            << Seconds(SteadyClock::now() - began) << " s" << std::endl;
}

TEST_CASE("rollouts e2e: a migration failing on one canary halts the rollout; resume after the "
          "fix finishes it") {
  const auto began = SteadyClock::now();
  Rig& rig = Main();
  INFO("daemon:\n" << rig.LogLines({"rollout", "h1", "h2", kHalt}));
  REQUIRE(WaitConvergedOn(rig, kHaltNames, 1, 180s));
  // h1 holds a duplicate: the unique constraint of revision 2 fails there.
  rig.AsTenant("h1", "INSERT INTO t (x) VALUES (1), (7), (7);");
  rig.AsTenant("h2", "INSERT INTO t (x) VALUES (1), (7);");
  const std::vector<std::string> wave2 = {"h3", "h4", "h5", "h6"};

  const std::int64_t events_before = rig.LastEventId();
  NewRevision(rig, kHalt, "v2",
              {{"0001_base.sql", kBaseMigration}, {"0002_unique.sql", kUniqueMigration}}, "1.1.0",
              kHaltRollout, false);
  const auto edited = SteadyClock::now();

  // Halted soon after h1's status says its pass failed.
  std::optional<SteadyClock::time_point> failed_seen;
  std::optional<SteadyClock::time_point> halted_seen;
  RolloutView view;
  Eventually(
      [&] {
        const std::string phase = rig.Phase("h1");
        if (!failed_seen && (phase == "Stalled" || phase == "Degraded")) {
          failed_seen = SteadyClock::now();
        }
        view = rig.Rollout(kHalt);
        if (view.phase == "Halted" && !halted_seen) halted_seen = SteadyClock::now();
        return failed_seen && halted_seen;
      },
      90s, kPoll);
  INFO("rollout: " << view.body);
  INFO("workspaces:\n" << Snapshot(rig, kHaltNames));
  INFO("stored: " << rig.StoredRollout(kHalt));
  REQUIRE(halted_seen);
  REQUIRE(failed_seen);
  const double halt_delay = Seconds(*halted_seen - *failed_seen);
  std::cout << "rollouts_itest: halted " << Seconds(*halted_seen - edited)
            << " s after the edit, " << halt_delay << " s after h1's status said it failed"
            << std::endl;
  CHECK(halt_delay <= 5.0);
  CHECK(view.InState("failed") == std::set<std::string>{"h1"});
  const RolloutMember& h1 = view.members["h1"];
  CHECK_MESSAGE(Contains(h1.reason, "0002_unique.sql"), h1.reason);
  CHECK_MESSAGE(Contains(h1.reason, "23505"), h1.reason);  // unique_violation
  CHECK_MESSAGE(rig.BackupKindState(h1.backup).rfind("pre-migration/", 0) == 0,
                "h1's backup '" << h1.backup << "'");
  CHECK_FALSE(rig.Migrated("h1", "0002"));
  // The other canary finished or not; wave 2 untouched, now and for a few seconds more.
  CHECK((view.members["h2"].state == "ready" || view.members["h2"].state == "inProgress"));
  std::string moved;
  const auto wave2_touched = [&] {
    for (const std::string& ws : wave2) {
      if (rig.Migrated(ws, "0002")) moved = ws + " migrated";
      else if (rig.ProductRevision(ws) != 1) moved = ws + " productRevision " +
                                                     std::to_string(rig.ProductRevision(ws));
      else if (rig.Rollout(kHalt).members[ws].state != "pending") moved = ws + " not pending";
      if (!moved.empty()) return true;
    }
    if (rig.Rollout(kHalt).phase != "Halted") moved = "no longer Halted";
    return !moved.empty();
  };
  CHECK_MESSAGE(!Eventually(wave2_touched, 3s, 250ms), moved);
  const std::vector<EventRow> halted_events = rig.Events("product/" + kHalt, events_before);
  INFO("events of product/halt:\n" << DescribeEvents(halted_events));
  CHECK(CountReason(halted_events, "RolloutHalted") == 1);
  CHECK(Eventually([&] { return rig.Migrated("h2", "0002"); }, 30s, kPoll));

  // The data fixed, resume: h1 is retried and gets the migration, then wave 2 runs.
  rig.AsTenant("h1", "DELETE FROM t WHERE id = (SELECT max(id) FROM t WHERE x = 7);");
  const ProcessResult r = rig.Verb("resume", kHalt);
  REQUIRE_MESSAGE(r.exit_code == 0, Describe(r));
  const bool completed = Eventually(
      [&] {
        view = rig.Rollout(kHalt);
        return view.phase == "Completed";
      },
      90s, kPoll);
  INFO("after resume: " << view.body);
  INFO("workspaces now:\n" << Snapshot(rig, kHaltNames));
  REQUIRE(completed);
  CHECK(view.members["h1"].attempt == 2);
  CHECK(WaitConvergedOn(rig, kHaltNames, 2, 30s));
  for (const std::string& ws : kHaltNames) CHECK_MESSAGE(rig.Ledger(ws) == "0001,0002", ws);
  CHECK(rig.InTenant("h1", "SELECT count(*) FROM pg_constraint WHERE conname = 't_x_unique'") ==
        "1");
  const std::vector<EventRow> events = rig.Events("product/" + kHalt, events_before);
  INFO("events of product/halt:\n" << DescribeEvents(events));
  CHECK(InOrder(events, {"RolloutStarted", "RolloutHalted", "RolloutResumed",
                         "RolloutWaveCompleted", "RolloutWaveStarted", "RolloutCompleted"}));
  std::cout << "rollouts_itest: case 2 (halt, resume) took " << Seconds(SteadyClock::now() - began)
            << " s" << std::endl;
}

TEST_CASE("rollouts e2e: undo restores the canaries' pre-migration backups and revision 1") {
  const auto began = SteadyClock::now();
  Rig& rig = Main();
  INFO("daemon:\n" << rig.LogLines({"rollout", "u1", "u2", kUndo, "restore"}));
  REQUIRE(WaitConvergedOn(rig, kUndoNames, 1, 180s));
  const std::vector<std::string> canaries = {"u1", "u2"};
  const auto rows = [&](const std::string& ws) {
    return rig.InTenant(ws, "SELECT coalesce(string_agg(id || ':' || x, ',' ORDER BY id), '') "
                            "FROM t");
  };
  rig.AsTenant("u1", "INSERT INTO t (x) VALUES (1), (2), (3);");
  rig.AsTenant("u2", "INSERT INTO t (x) VALUES (10), (20);");
  std::map<std::string, std::string> before;
  for (const std::string& ws : canaries) before[ws] = rows(ws);

  const std::int64_t events_before = rig.LastEventId();
  NewRevision(rig, kUndo, "v2",
              {{"0001_base.sql", kBaseMigration}, {"0002_extra.sql", kExtraMigration}}, "1.1.0",
              kUndoRollout, false);
  RolloutView view;
  // What u1's stored status says along the way (each distinct reading), for failure messages.
  std::vector<std::string> u1_readings;
  const bool canaries_done = Eventually(
      [&] {
        const std::string now = rig.StoredRevisionFields("u1");
        if (u1_readings.empty() || u1_readings.back() != now) u1_readings.push_back(now);
        view = rig.Rollout(kUndo);
        return view.phase == "Paused" &&
               view.InState("ready") == std::set<std::string>{"u1", "u2"};
      },
      90s, 20ms);
  std::string u1_seen;
  for (const std::string& r : u1_readings) u1_seen += "  " + r + "\n";
  INFO("u1's stored status, each reading until the canaries were ready:\n" << u1_seen);
  INFO("rollout: " << view.body);
  INFO("workspaces:\n" << Snapshot(rig, kUndoNames));
  REQUIRE(canaries_done);
  for (const std::string& ws : canaries) {
    REQUIRE(rig.Migrated(ws, "0002"));
    REQUIRE(rig.HasTable(ws, "extra"));
    REQUIRE(rows(ws) != before[ws]);  // the migration changed the rows
    CHECK(rig.ProductRevision(ws) == 2);
  }
  std::map<std::string, std::string> backups;
  for (const std::string& ws : canaries) backups[ws] = view.members[ws].backup;
  // The tenant writes after the migration.
  rig.AsTenant("u1", "INSERT INTO extra (note) VALUES ('after the migration');");

  const ProcessResult r = rig.Verb("undo", kUndo);
  REQUIRE_MESSAGE(r.exit_code == 0, Describe(r));
  // Undone, each canary's restore named.
  const bool named = Eventually(
      [&] {
        view = rig.Rollout(kUndo);
        return view.phase == "Undone" && !view.members["u1"].restore.empty() &&
               !view.members["u2"].restore.empty();
      },
      60s, kPoll);
  INFO("after undo: " << view.body);
  REQUIRE(named);
  std::map<std::string, std::string> restores;
  for (const std::string& ws : canaries) {
    const RolloutMember& m = view.members[ws];
    INFO(ws << ": restore '" << m.restore << "', backup '" << m.backup << "'");
    CHECK(!backups[ws].empty());
    CHECK(m.backup == backups[ws]);
    CHECK(rig.BackupKindState(m.backup).rfind("pre-migration/", 0) == 0);
    CHECK(Contains(m.restore, "of backup " + m.backup));
    restores[ws] = Between(m.restore, "restore ", " of backup ");
    CHECK(!restores[ws].empty());
  }
  // The restores finish; each canary is back on revision 1: the rows as before the migration,
  // no table `extra` (nor the row written into it), the ledger without 0002.
  std::string seen;
  const bool restored = Eventually(
      [&] {
        seen.clear();
        for (const std::string& ws : canaries) {
          const std::string state =
              Str(rig.Get("/api/v1/restores/" + restores[ws]), {"state"});
          seen += ws + ": restore " + state + ", ledger [" + rig.Ledger(ws) + "], extra " +
                  (rig.HasTable(ws, "extra") ? "present" : "gone") + ", rows " + rows(ws) +
                  ", phase " + rig.Phase(ws) + ", productRevision " +
                  std::to_string(rig.ProductRevision(ws)) + "\n";
          if (state != "succeeded" || rig.HasTable(ws, "extra") || rig.Ledger(ws) != "0001" ||
              rows(ws) != before[ws] || rig.Phase(ws) != "Ready" ||
              rig.ProductRevision(ws) != 1) {
            return false;
          }
        }
        return true;
      },
      120s, 250ms);
  INFO("canaries:\n" << seen);
  INFO("events of u1:\n" << DescribeEvents(rig.Events("u1", events_before)));
  CHECK(restored);
  // The others never moved.
  for (const std::string ws : {"u3", "u4"}) {
    CHECK_MESSAGE(rig.Ledger(ws) == "0001", ws);
    CHECK(rig.ProductRevision(ws) == 1);
    CHECK(view.members[ws].state == "pending");
  }
  const std::vector<EventRow> events = rig.Events("product/" + kUndo, events_before);
  INFO("events of product/undo:\n" << DescribeEvents(events));
  CHECK(CountReason(events, "RolloutUndone") == 1);
  CHECK(CountReason(events, "RolloutRestore") == 2);
  // And it stays there: the undone revision does not come back by itself.
  std::string moved;
  CHECK_MESSAGE(!Eventually(
                    [&] {
                      for (const std::string& ws : kUndoNames) {
                        if (rig.Migrated(ws, "0002")) moved = ws + " migrated again";
                      }
                      return !moved.empty();
                    },
                    3s, 250ms),
                moved);
  std::cout << "rollouts_itest: case 3 (undo) took " << Seconds(SteadyClock::now() - began) << " s"
            << std::endl;
}

TEST_CASE("rollouts e2e: the leader killed mid-rollout; the standby finishes, no workspace "
          "migrated twice") {
  const auto began = SteadyClock::now();
  Rig rig(Rig::Options{.tag = "ro_ha", .portainer = false, .backups = "  beforeMigrations: false\n"});
  const std::string product = "ha";
  std::vector<std::string> names;
  for (int i = 1; i <= 10; ++i) names.push_back((i < 10 ? "k0" : "k") + std::to_string(i));
  const char* rollout =
      "    waves:\n"
      "      - {percent: 100}\n"
      "    maxUnavailable: 1\n"
      "    failureBudget: 1\n";
  const std::string base = std::string(kBaseMigration) + "CREATE SEQUENCE migration_runs;\n";
  rig.WriteFleet("migrations/ha/v1/0001_base.sql", base);
  rig.WriteFleet("product-ha.yaml", ProductYaml(product, "1.0.0", "migrations/ha/v1", rollout,
                                                 false));
  for (const std::string& ws : names) {
    rig.WriteFleet("workspaces/" + ws + ".yaml", WorkspaceYaml(ws, product, false, false));
  }
  const int a = rig.Start();
  const int b = rig.Start();
  INFO("daemons:\n" << rig.LogLines({"rollout", "leader", "lead"}, 250));
  REQUIRE(Eventually([&] { return rig.Leader(a) + rig.Leader(b) == 1; }, 30s, kPoll));
  const int leader = rig.Leader(a) == 1 ? a : b;
  const int standby = leader == a ? b : a;
  rig.Use(leader);
  REQUIRE(WaitConvergedOn(rig, names, 1, 120s));

  const std::int64_t events_before = rig.LastEventId();
  const char* slow =
      "SELECT nextval('migration_runs');\nSELECT pg_sleep(0.5);\n"
      "CREATE TABLE slow_done (id int);\n";
  NewRevision(rig, product, "v2", {{"0001_base.sql", base}, {"0002_slow.sql", slow}},
              "1.1.0", rollout, false);
  const auto edited = SteadyClock::now();

  // About half done (by the ledgers): kill the leader.
  int done = 0;
  const bool half = Eventually(
      [&] {
        done = 0;
        for (const std::string& ws : names) done += rig.Migrated(ws, "0002") ? 1 : 0;
        return done >= 4;
      },
      90s, 50ms);
  INFO("workspaces:\n" << Snapshot(rig, names));
  REQUIRE(half);
  const RolloutView at_kill = rig.Rollout(product);
  CHECK(rig.daemon(leader).Kill() == 128 + 9);
  const auto killed = SteadyClock::now();
  int done_at_kill = 0;
  for (const std::string& ws : names) done_at_kill += rig.Migrated(ws, "0002") ? 1 : 0;
  std::cout << "rollouts_itest: leader killed " << Seconds(killed - edited) << " s after the edit, "
            << done_at_kill << " of 10 migrated; the rollout said " << at_kill.phase << " with "
            << at_kill.InState("ready").size() << " ready, " << at_kill.InState("inProgress").size()
            << " in progress" << std::endl;
  CHECK(done_at_kill < 10);  // mid-rollout indeed
  CHECK(at_kill.phase == "Progressing");

  rig.Use(standby);
  REQUIRE(Eventually([&] { return rig.Leader(standby) == 1; }, 20s, kPoll));
  std::cout << "rollouts_itest: standby leads " << Seconds(SteadyClock::now() - killed)
            << " s after the kill" << std::endl;
  RolloutView view;
  const bool completed = Eventually(
      [&] {
        view = rig.Rollout(product);
        return view.phase == "Completed";
      },
      90s, kPoll);
  INFO("rollout: " << view.body);
  INFO("stored: " << rig.StoredRollout(product));
  INFO("workspaces:\n" << Snapshot(rig, names));
  REQUIRE(completed);
  std::cout << "rollouts_itest: the standby completed the rollout "
            << Seconds(SteadyClock::now() - killed) << " s after the kill" << std::endl;
  CHECK(WaitConvergedOn(rig, names, 2, 30s));

  // Each workspace: the migration ran once (one ledger row; the sequence the migration advances
  // outside its transaction says how many times its SQL started), one ApplyMigrations event for
  // it, its target set once (attempt 1: the new leader did not move it again). The workspace in
  // flight at the kill: its migration was sent as one string, which the server finishes and
  // commits after the client died, so the standby's pass finds nothing pending and its event
  // says so ("no pending migrations") instead of "applied".
  const std::set<std::string> in_flight = at_kill.InState("inProgress");
  for (const std::string& ws : names) {
    const std::string runs = rig.InTenant(ws, "SELECT last_value FROM migration_runs");
    std::cout << "rollouts_itest: " << ws << (in_flight.count(ws) > 0 ? " (in flight)" : "")
              << ": migration 0002 started " << runs << " time(s)" << std::endl;
    if (in_flight.count(ws) == 0) {
      CHECK_MESSAGE(runs == "1", ws);
    } else {
      CHECK_MESSAGE((runs == "1" || runs == "2"), ws);
    }
    CHECK_MESSAGE(rig.Ledger(ws) == "0001,0002", ws);
    CHECK_MESSAGE(rig.HasTable(ws, "slow_done"), ws);
    CHECK_MESSAGE(std::stoll(rig.InTenant(ws,
                                          "SELECT coalesce(max(duration_ms), 0) FROM "
                                          "tenant_master.schema_migrations WHERE version = "
                                          "'0002'")) >= 450,
                  ws);
    const std::vector<EventRow> events = rig.Events(ws, events_before);
    int applied = 0;
    int apply_events = 0;
    for (const EventRow& e : events) {
      if (Contains(e.message, "applied 0002_slow.sql")) ++applied;
      if (e.reason == "ApplyMigrations" && Contains(e.message, "0002_slow.sql")) ++apply_events;
    }
    INFO(ws << " events:\n" << DescribeEvents(events));
    CHECK(apply_events == 1);
    if (in_flight.count(ws) == 0) {
      CHECK(applied == 1);
    } else {
      CHECK(applied <= 1);
    }
    CHECK(view.members[ws].attempt == 1);
    CHECK(view.members[ws].state == "ready");
  }
  const std::vector<EventRow> events = rig.Events("product/" + product, events_before);
  INFO("events of product/ha:\n" << DescribeEvents(events));
  CHECK(CountReason(events, "RolloutStarted") == 1);
  CHECK(CountReason(events, "RolloutCompleted") == 1);
  CHECK(rig.daemon(standby).Terminate() == 0);
  std::cout << "rollouts_itest: case 4 (leader killed) took " << Seconds(SteadyClock::now() - began)
            << " s" << std::endl;
}
