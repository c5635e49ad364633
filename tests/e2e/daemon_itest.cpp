// End to end for the long-running controller (issue 3): the built tenant-operator, started as a
// daemon against this binary's private PostgreSQL and a real local bare Git repository, and
// observed only from outside, as an operator would: its HTTP API, its log and the PostgreSQL
// catalog. Every case has its own workspace names and its own store database
// (`store.dsnEnv` -> dbname tm_store_<case>), so the cases are independent of order.
//
// Waiting is always polling with a deadline (Eventually); the deadlines are generous because
// the machine may be a busy 2-core box. The measured latencies are printed on stdout (Timing),
// not with MESSAGE, which would repeat every INFO in scope (the daemon's whole log).
//
// Suites: `daemon-e2e` (about 20 s) and `daemon-e2e-slow` (50 workspaces, a PostgreSQL restart,
// two replicas); e.g. `daemon_itest -ts=daemon-e2e` runs only the quick ones.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/crypto.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/example_fleet.hpp"
#include "tests/support/git_fixture.hpp"
#include "tests/support/http_get.hpp"
#include "tests/support/pg_server.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace tmaster::testing;
using namespace std::chrono_literals;
using SteadyClock = std::chrono::steady_clock;

const std::string kOperator = std::string(TM_BINARY_DIR) + "/tenant-operator";
const std::string kMasterKey = "daemon-e2e-master-key-0123456789abcdef0123";
const std::string kWebhookSecret = "daemon-e2e-webhook-secret-0123456789";

// Each poll of the daemon is an HTTP request or a catalog query: a tenth of a second keeps the
// polling from competing with the daemon on a busy machine.
constexpr std::chrono::milliseconds kPoll = 100ms;

long MillisSince(SteadyClock::time_point start) {
  return static_cast<long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start).count());
}

/// One line on stdout: `daemon_itest: <what>: <milliseconds since start> ms`.
void Timing(const std::string& what, SteadyClock::time_point start) {
  std::cout << "daemon_itest: " << what << ": " << MillisSince(start) << " ms" << std::endl;
}

// --- JSON -----------------------------------------------------------------------------------

json::value ParseOrNull(const std::string& text) {
  boost::system::error_code error;
  json::value value = json::parse(text, error);
  return error ? json::value() : value;
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

std::int64_t Int(const json::value& root, std::initializer_list<std::string_view> path) {
  const json::value* at = Find(root, path);
  if (at == nullptr) return -1;
  if (at->is_int64()) return at->get_int64();
  if (at->is_uint64()) return static_cast<std::int64_t>(at->get_uint64());
  return -1;
}

/// The `items` array of a list answer (empty when absent).
json::array Items(const json::value& root) {
  const json::value* items = Find(root, {"items"});
  return items != nullptr && items->is_array() ? items->get_array() : json::array();
}

// --- What the API says about one workspace --------------------------------------------------

struct WorkspaceView {
  int http = 0;  ///< 200, 404, or 0 when the daemon did not answer
  std::string phase;
  std::int64_t generation = -1;
  std::int64_t observed = -1;
  std::string ready_status;  ///< the Ready condition's status
  std::string ready_reason;  ///< the Ready condition's reason
  std::map<std::string, std::string> conditions;  ///< every condition's type -> status
  std::string revision;      ///< status.revision
  std::string last_error;
  std::string body;

  [[nodiscard]] bool Converged() const {
    return http == 200 && phase == "Ready" && generation > 0 && observed == generation;
  }
};

WorkspaceView ViewOf(const json::value& object) {
  WorkspaceView view;
  view.http = 200;
  view.phase = Str(object, {"status", "phase"});
  view.generation = Int(object, {"metadata", "generation"});
  view.observed = Int(object, {"status", "observedGeneration"});
  view.revision = Str(object, {"status", "revision"});
  view.last_error = Str(object, {"status", "lastError"});
  if (const json::value* conditions = Find(object, {"status", "conditions"});
      conditions != nullptr && conditions->is_array()) {
    for (const json::value& condition : conditions->get_array()) {
      view.conditions[Str(condition, {"type"})] = Str(condition, {"status"});
      if (Str(condition, {"type"}) != "Ready") continue;
      view.ready_status = Str(condition, {"status"});
      view.ready_reason = Str(condition, {"reason"});
    }
  }
  return view;
}

// --- A running daemon -----------------------------------------------------------------------

/// One started tenant-operator, with its HTTP port, and the API calls the cases make.
class Operator {
 public:
  explicit Operator(DaemonProcess::Options options) : process_(std::move(options)) {
    port_ = process_.WaitForHttpPort(30s);
    if (port_ == 0) {
      throw std::runtime_error("tenant-operator did not print its HTTP port; log:\n" + Tail());
    }
  }

  [[nodiscard]] int port() const { return port_; }
  DaemonProcess& process() { return process_; }

  /// The last `lines` lines of the log, for failure messages.
  [[nodiscard]] std::string Tail(std::size_t lines = 60) const {
    const std::string log = process_.Log();
    std::size_t pos = log.size();
    for (std::size_t n = 0; n <= lines && pos > 0; ++n) {
      const std::size_t nl = log.rfind('\n', pos - 1);
      if (nl == std::string::npos) return log;
      pos = nl;
    }
    return log.substr(pos);
  }

  /// Every warning and error line of the log (spdlog levels), for failure messages.
  [[nodiscard]] std::string Problems() const {
    const std::string log = process_.Log();
    std::string out;
    std::size_t pos = 0;
    while (pos < log.size()) {
      std::size_t end = log.find('\n', pos);
      if (end == std::string::npos) end = log.size();
      const std::string line = log.substr(pos, end - pos);
      if (line.find(" warn") != std::string::npos || line.find(" error") != std::string::npos ||
          line.find("[warning]") != std::string::npos ||
          line.find("[error]") != std::string::npos) {
        out += line + "\n";
      }
      pos = end + 1;
    }
    return out;
  }

  WorkspaceView View(const std::string& name) const {
    const HttpResponse r = HttpGet(port_, "/api/v1/workspaces/" + name);
    WorkspaceView view;
    if (r.status == 200) {
      view = ViewOf(ParseOrNull(r.body));
    }
    view.http = r.status;
    view.body = r.status != 0 ? r.body : r.error;
    return view;
  }

  /// Every workspace the API lists.
  json::array Workspaces() const {
    const HttpResponse r = HttpGet(port_, "/api/v1/workspaces");
    return r.status == 200 ? Items(ParseOrNull(r.body)) : json::array();
  }

  /// The events of `workspace`, newest first.
  json::array Events(const std::string& workspace) const {
    const HttpResponse r = HttpGet(port_, "/api/v1/events?workspace=" + workspace + "&limit=1000");
    return r.status == 200 ? Items(ParseOrNull(r.body)) : json::array();
  }

  /// Whether `workspace` has an event with `reason`.
  bool HasEvent(const std::string& workspace, const std::string& reason) const {
    for (const json::value& event : Events(workspace)) {
      if (Str(event, {"reason"}) == reason) return true;
    }
    return false;
  }

  /// The source's object in /api/v1/sources, or null.
  json::value Source(const std::string& name) const {
    const HttpResponse r = HttpGet(port_, "/api/v1/sources");
    if (r.status != 200) return nullptr;
    for (const json::value& source : Items(ParseOrNull(r.body))) {
      if (Str(source, {"name"}) == name) return source;
    }
    return nullptr;
  }

  int Readyz() const { return HttpGet(port_, "/readyz").status; }

  /// The value of `tenant_master_leader` in /metrics: 1, 0, or -1 when unreadable.
  int Leader() const {
    const HttpResponse r = HttpGet(port_, "/metrics");
    if (r.status != 200) return -1;
    const std::string line = LineStartingWith(r.body, "tenant_master_leader ");
    if (line.empty()) return -1;
    return std::stoi(line.substr(std::string("tenant_master_leader ").size()));
  }

  /// The sum of `tenant_master_reconcile_total` over its results in /metrics: every reconcile
  /// the workers finished; -1 when unreadable.
  long ReconcileTotal() const {
    const HttpResponse r = HttpGet(port_, "/metrics");
    if (r.status != 200) return -1;
    const std::string family = "tenant_master_reconcile_total{";
    long total = 0;
    std::istringstream lines(r.body);
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind(family, 0) != 0) continue;
      total += std::lround(std::stod(line.substr(line.rfind(' ') + 1)));
    }
    return total;
  }

  /// A signed GitHub push delivery for `sha` on main; `secret` decides whether it verifies.
  HttpResponse PostPush(const std::string& sha, const std::string& secret) const {
    const std::string body = R"({"ref":"refs/heads/main","after":")" + sha + R"("})";
    const std::string signature =
        "sha256=" + tmaster::crypto::Hex(tmaster::crypto::HmacSha256(secret, body));
    return HttpRequest(port_, "POST", "/hooks/git",
                       {{"Content-Type", "application/json"},
                        {"X-GitHub-Event", "push"},
                        {"X-GitHub-Delivery", "e2e-" + sha.substr(0, 8)},
                        {"X-Hub-Signature-256", signature}},
                       body);
  }

 private:
  DaemonProcess process_;
  int port_ = 0;
};

// --- One case's world -------------------------------------------------------------------------

std::string Underscored(std::string name) {
  for (char& c : name) {
    if (c == '-') c = '_';
  }
  return name;
}
std::string DatabaseOf(const std::string& workspace) {
  return "tenant_" + Underscored(workspace);
}
std::string RoleOf(const std::string& workspace) {
  return "user_" + Underscored(workspace);
}

/// A shared `landing` workspace (one migration, no extension: cheap to create).
std::string WorkspaceYaml(const std::string& name, int connection_limit,
                          const std::string& reclaim_policy) {
  std::string yaml = "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n";
  yaml += "  name: " + name + "\n";
  yaml += "  labels: {suite: daemon-e2e}\nspec:\n  product: landing\n  mode: shared\n";
  yaml += "  database:\n";
  yaml += "    connectionLimit: " + std::to_string(connection_limit) + "\n";
  yaml += "    reclaimPolicy: " + reclaim_policy + "\n";
  return yaml;
}

/// A dedicated `inventory` workspace (no extension) at `version`: a stack on endpoint 1.
std::string DedicatedWorkspaceYaml(const std::string& name, const std::string& version) {
  std::string yaml = "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n";
  yaml += "  name: " + name + "\n";
  yaml += "spec:\n  product: inventory\n  mode: dedicated\n";
  yaml += "  database:\n    reclaimPolicy: Delete\n";
  yaml += "  dedicated:\n    endpoint: 1\n    version: \"" + version + "\"\n";
  return yaml;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// A file's modification time in nanoseconds since the epoch, as the directory backend
/// records it; -1 when it cannot be read.
std::int64_t ModifiedNanos(const fs::path& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return -1;
  return static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1'000'000'000 + info.st_mtim.tv_nsec;
}

/// Where the daemons listen: port 0, the kernel picks a free one and the daemon logs it.
std::string ListenAddress() {
  return "127.0.0.1:0";
}

/// One test case: a folder with the config and (for directory sources) the fleet, its own store
/// database, and the daemons it started (stopped by their destructors).
class Harness {
 public:
  explicit Harness(std::string tag) : pg_(PgServer::Shared()), tag_(std::move(tag)) {
    for (const auto& [relative, text] : ExampleProductFiles()) dir_.Write("fleet/" + relative, text);
  }

  PgServer& pg() { return pg_; }
  [[nodiscard]] std::string FleetDir() const { return (dir_.path() / "fleet").string(); }
  /// `stacks.directory` of the config: the directory backend's stacks.
  [[nodiscard]] fs::path DeploymentsDir() const { return dir_.path() / "deployments"; }

  /// Writes (or replaces) a workspace's manifest in the watched folder the way an editor saving
  /// atomically does: a complete file renamed into place, so the watcher never sees half of it.
  void WriteWorkspace(const std::string& name, int connection_limit = 5,
                      const std::string& reclaim_policy = "Delete") const {
    WriteFleetFile("workspaces/" + name + ".yaml",
                   WorkspaceYaml(name, connection_limit, reclaim_policy));
  }
  void WriteFleetFile(const std::string& relative, const std::string& text) const {
    const std::string staged =
        dir_.Write("staging/" + Underscored(relative.substr(relative.rfind('/') + 1)), text);
    const fs::path target = fs::path(FleetDir()) / relative;
    fs::create_directories(target.parent_path());
    fs::rename(staged, target);
  }
  void RemoveWorkspace(const std::string& name) const {
    fs::remove(fs::path(FleetDir()) / "workspaces" / (name + ".yaml"));
  }

  /// The config with one directory source on FleetDir().
  void ConfigureDirectory(int max_deletions = 3) {
    Configure("  - name: local\n    directory: " + FleetDir() + "\n", max_deletions);
  }
  /// The config with one git source on `url` (path fleet, interval 1h, webhook secret).
  void ConfigureGit(const std::string& url, int max_deletions = 3) {
    std::string source = "  - name: upstream\n";
    source += "    git: {url: \"" + url + "\", branch: main, path: fleet, interval: 1h, ";
    source += "webhookSecretEnv: TM_WEBHOOK_SECRET}\n";
    Configure(source, max_deletions);
  }

  /// `reconcile.resyncInterval` of the configs written from now on (default 5m).
  void SetResyncInterval(std::string interval) { resync_interval_ = std::move(interval); }

  /// Writes the config and starts a daemon on it (each start gets its own log and state
  /// folder; several daemons of one case share the config, the store and the fleet).
  std::unique_ptr<Operator> Start(const std::vector<std::string>& extra_args = {}) {
    const int n = ++starts_;
    WriteConfig();
    std::vector<std::string> argv = {kOperator, "--config", config_, "--state-dir",
                                     (dir_.path() / ("state-" + std::to_string(n))).string()};
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    return std::make_unique<Operator>(DaemonProcess::Options{
        .argv = argv,
        .env = {{"TM_MASTER_KEY", kMasterKey},
                {"TM_PG_DSN", pg_.Dsn()},
                {"TM_STORE_DSN", pg_.Dsn("tm_store_" + tag_)},
                {"TM_WEBHOOK_SECRET", kWebhookSecret}},
        .log_file = (dir_.path() / ("operator-" + std::to_string(n) + ".log")).string()});
  }

  bool DatabaseExists(const std::string& workspace) {
    return QueryValue(pg_.Dsn(), "SELECT count(*) FROM pg_database WHERE datname = $1",
                      {DatabaseOf(workspace)}) == "1";
  }
  bool RoleExists(const std::string& workspace) {
    return QueryValue(pg_.Dsn(), "SELECT count(*) FROM pg_roles WHERE rolname = $1",
                      {RoleOf(workspace)}) == "1";
  }
  /// "t", "f", or "<none>" when the role does not exist.
  std::string RoleCanLogin(const std::string& workspace) {
    return QueryValue(pg_.Dsn(), "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1",
                      {RoleOf(workspace)});
  }

 private:
  void Configure(const std::string& sources, int max_deletions) {
    sources_ = sources;
    max_deletions_ = max_deletions;
  }
  void WriteConfig() {
    std::string yaml = "baseDomain: example.test\nmasterKeyEnv: TM_MASTER_KEY\n";
    yaml += "clusters:\n  - name: default\n    dsnEnv: TM_PG_DSN\n";
    yaml += "store:\n  dsnEnv: TM_STORE_DSN\n";
    yaml += "sources:\n" + sources_;
    yaml +=
        "stacks:\n  backend: directory\n  directory: " + (dir_.path() / "deployments").string() +
        "\n";
    // The examples' erp runs its shared runtime on endpoint 1, which mounts the bindings.
    yaml += "bindings:\n  dir: " + (dir_.path() / "bindings").string() + "\n";
    yaml += "http:\n  listen: \"" + ListenAddress() + "\"\n";
    yaml += "backups:\n  directory: " + (dir_.path() / "backups").string() + "\n";
    yaml += "reconcile:\n  workers: 4\n  resyncInterval: " + resync_interval_ + "\n";
    yaml += "  maxDeletionsPerSync: " + std::to_string(max_deletions_) + "\n";
    config_ = dir_.Write("operator.yaml", yaml);
  }

  PgServer& pg_;
  std::string tag_;
  TempDir dir_;
  std::string sources_;
  int max_deletions_ = 3;
  std::string resync_interval_ = "5m";
  std::string config_;
  int starts_ = 0;
};

/// Waits until `name` is Ready at its current generation; the last view seen.
WorkspaceView WaitConverged(const Operator& op, const std::string& name,
                            std::chrono::milliseconds timeout = 30s, std::int64_t generation = 0) {
  WorkspaceView view;
  Eventually(
      [&] {
        view = op.View(name);
        return view.Converged() && (generation == 0 || view.generation == generation);
      },
      timeout, kPoll);
  return view;
}

/// Puts the products (and the `workspaces`) in the git fixture's `fleet/` folder.
void WriteGitFleet(const GitFixture& git) {
  for (const auto& [relative, text] : ExampleProductFiles()) git.Write("fleet/" + relative, text);
}
void WriteGitWorkspace(const GitFixture& git, const std::string& name,
                       const std::string& reclaim_policy = "Delete") {
  git.Write("fleet/workspaces/" + name + ".yaml", WorkspaceYaml(name, 5, reclaim_policy));
}

}  // namespace

TEST_CASE("daemon: a file added, edited and removed in a watched directory is converged" *
          doctest::test_suite("daemon-e2e")) {
  Harness h("dir");
  h.WriteWorkspace("d1-alpha", 5, "Delete");
  h.ConfigureDirectory();
  const auto started = SteadyClock::now();
  auto op = h.Start();

  WorkspaceView alpha = WaitConverged(*op, "d1-alpha");
  INFO("d1-alpha: " << alpha.body);
  INFO("log:\n" << op->Tail());
  REQUIRE(alpha.Converged());
  Timing("start to Ready", started);
  CHECK(alpha.generation == 1);
  CHECK(alpha.ready_status == "True");
  CHECK(h.DatabaseExists("d1-alpha"));
  CHECK(h.RoleCanLogin("d1-alpha") == "t");
  CHECK(Eventually([&] { return op->Readyz() == 200; }, 10s, kPoll));
  const json::value source = op->Source("local");
  CHECK(Str(source, {"kind"}) == "directory");
  CHECK(Str(source, {"reason"}) == "Synced");

  // A reformat (a comment, other spacing, the same spec) is no new generation. d1-beta, written
  // after it, proves the daemon read it: the sync that found d1-beta read the whole folder.
  std::string reformatted = "# reformatted by hand\n" + WorkspaceYaml("d1-alpha", 5, "Delete");
  reformatted.replace(reformatted.find("connectionLimit: 5"), 18, "connectionLimit:    5");
  h.WriteFleetFile("workspaces/d1-alpha.yaml", reformatted);

  const auto added = SteadyClock::now();
  h.WriteWorkspace("d1-beta", 5, "Delete");
  const WorkspaceView beta = WaitConverged(*op, "d1-beta", 20s);
  INFO("d1-beta: " << beta.body);
  REQUIRE(beta.Converged());
  Timing("file added to Ready", added);
  CHECK(beta.generation == 1);
  alpha = op->View("d1-alpha");
  CHECK(alpha.generation == 1);
  CHECK(alpha.Converged());
  CHECK(h.DatabaseExists("d1-beta"));
  CHECK(op->Workspaces().size() == 2);

  const auto edited = SteadyClock::now();
  h.WriteWorkspace("d1-alpha", 7, "Delete");
  alpha = WaitConverged(*op, "d1-alpha", 20s, 2);
  REQUIRE(alpha.Converged());
  Timing("file edited to Ready", edited);
  CHECK(alpha.generation == 2);
  CHECK(alpha.observed == 2);
  // spec.database.connectionLimit is the role's limit (README: "role connection limit").
  CHECK(QueryValue(h.pg().Dsn(), "SELECT rolconnlimit FROM pg_roles WHERE rolname = $1",
                   {RoleOf("d1-alpha")}) == "7");
  // The other workspace's spec did not change: no new generation for it.
  CHECK(op->View("d1-beta").generation == 1);

  const auto removed = SteadyClock::now();
  h.RemoveWorkspace("d1-alpha");
  const bool gone = Eventually([&] { return op->View("d1-alpha").http == 404; }, 20s, kPoll);
  INFO("d1-alpha: " << op->View("d1-alpha").body);
  REQUIRE(gone);
  Timing("file removed to deleted", removed);
  CHECK_FALSE(h.DatabaseExists("d1-alpha"));
  CHECK_FALSE(h.RoleExists("d1-alpha"));
  CHECK(op->HasEvent("d1-alpha", "Deleting"));
  CHECK(op->HasEvent("d1-alpha", "Deleted"));
  // Only the removed workspace went.
  CHECK(op->View("d1-beta").phase == "Ready");
  CHECK(h.DatabaseExists("d1-beta"));
  CHECK(op->Workspaces().size() == 1);

  CHECK(op->process().Terminate() == 0);
  CHECK(op->Tail().find(kMasterKey) == std::string::npos);
  CHECK(op->Tail().find(h.pg().password()) == std::string::npos);
}

TEST_CASE("daemon: reclaimPolicy Retain keeps the database and makes the role NOLOGIN" *
          doctest::test_suite("daemon-e2e")) {
  Harness h("retain");
  h.WriteWorkspace("r2-keep", 5, "Retain");
  h.WriteWorkspace("r2-anchor", 5, "Delete");  // so removing r2-keep is not "every workspace"
  h.ConfigureDirectory();
  auto op = h.Start();
  INFO("log:\n" << op->Tail());
  REQUIRE(WaitConverged(*op, "r2-keep").Converged());
  REQUIRE(WaitConverged(*op, "r2-anchor").Converged());
  REQUIRE(h.RoleCanLogin("r2-keep") == "t");

  h.RemoveWorkspace("r2-keep");
  const bool gone = Eventually([&] { return op->View("r2-keep").http == 404; }, 20s, kPoll);
  INFO("r2-keep: " << op->View("r2-keep").body);
  REQUIRE(gone);
  CHECK(h.DatabaseExists("r2-keep"));
  CHECK(h.RoleCanLogin("r2-keep") == "f");
  CHECK(op->HasEvent("r2-keep", "Retained"));
  CHECK_FALSE(op->HasEvent("r2-keep", "Deleted"));
  CHECK(op->View("r2-anchor").phase == "Ready");
  CHECK(h.RoleCanLogin("r2-anchor") == "t");
}

TEST_CASE("daemon: git push + signed webhook converges at once; a bad signature changes nothing" *
          doctest::test_suite("daemon-e2e")) {
  Harness h("git");
  GitFixture git;
  WriteGitFleet(git);
  WriteGitWorkspace(git, "g3-alpha");
  WriteGitWorkspace(git, "g3-beta");
  const std::string first = git.CommitAndPush("two workspaces");
  REQUIRE(first.size() == 40);
  h.ConfigureGit(git.Url());
  auto op = h.Start();
  INFO("log:\n" << op->Tail());

  REQUIRE(WaitConverged(*op, "g3-alpha").Converged());
  REQUIRE(WaitConverged(*op, "g3-beta").Converged());
  CHECK(h.DatabaseExists("g3-alpha"));
  CHECK(h.DatabaseExists("g3-beta"));
  json::value source = op->Source("upstream");
  INFO("source: " << json::serialize(source));
  CHECK(Str(source, {"kind"}) == "git");
  CHECK(Str(source, {"revision"}) == first);
  CHECK(Str(source, {"reason"}) == "Synced");
  CHECK(Eventually([&] { return op->Readyz() == 200; }, 10s, kPoll));

  // A push, then its webhook: converged long before the 1h interval.
  WriteGitWorkspace(git, "g3-gamma");
  const std::string second = git.CommitAndPush("a third workspace");
  const auto pushed = SteadyClock::now();
  const HttpResponse accepted = op->PostPush(second, kWebhookSecret);
  INFO("webhook answer: " << accepted.status << " " << accepted.body << accepted.error);
  CHECK(accepted.status == 202);
  const WorkspaceView gamma = WaitConverged(*op, "g3-gamma", 10s);
  INFO("g3-gamma: " << gamma.body);
  REQUIRE(gamma.Converged());
  Timing("webhook to Ready", pushed);
  CHECK(gamma.revision == second);
  CHECK(h.DatabaseExists("g3-gamma"));
  CHECK(Eventually([&] { return Str(op->Source("upstream"), {"revision"}) == second; }, 5s, kPoll));

  // A push whose webhook is signed with the wrong secret: 401 and no fetch.
  WriteGitWorkspace(git, "g3-delta");
  const std::string third = git.CommitAndPush("a fourth workspace");
  const HttpResponse refused = op->PostPush(third, "not-the-secret");
  INFO("bad webhook answer: " << refused.status << " " << refused.body << refused.error);
  CHECK(refused.status == 401);
  const bool fetched = Eventually(
      [&] {
        return op->View("g3-delta").http != 404 ||
               Str(op->Source("upstream"), {"revision"}) != second;
      },
      3s, kPoll);
  CHECK_FALSE(fetched);
  CHECK(op->View("g3-delta").http == 404);
  CHECK(Str(op->Source("upstream"), {"revision"}) == second);
  CHECK_FALSE(h.DatabaseExists("g3-delta"));

  // The same push, signed properly, is applied.
  CHECK(op->PostPush(third, kWebhookSecret).status == 202);
  CHECK(WaitConverged(*op, "g3-delta", 10s).Converged());
}

TEST_CASE("daemon: a manifest made invalid stalls its workspace and keeps its database" *
          doctest::test_suite("daemon-e2e")) {
  Harness h("invalid");
  h.WriteWorkspace("i4-alpha", 5, "Delete");
  h.WriteWorkspace("i4-beta", 5, "Delete");
  h.ConfigureDirectory();
  auto op = h.Start();
  INFO("log:\n" << op->Tail());
  REQUIRE(WaitConverged(*op, "i4-alpha").Converged());
  REQUIRE(WaitConverged(*op, "i4-beta").Converged());

  std::string broken = WorkspaceYaml("i4-alpha", 5, "Delete");
  broken.replace(broken.find("connectionLimit: 5"), 18, "connectionLimit: lots");
  h.WriteFleetFile("workspaces/i4-alpha.yaml", broken);
  WorkspaceView alpha;
  const bool stalled = Eventually(
      [&] {
        alpha = op->View("i4-alpha");
        return alpha.phase == "Stalled";
      },
      20s, kPoll);
  INFO("i4-alpha: " << alpha.body);
  REQUIRE(stalled);
  CHECK(alpha.ready_status == "False");
  CHECK(alpha.ready_reason == "InvalidManifest");
  CHECK(alpha.generation == 1);  // the last valid spec is kept
  CHECK(h.DatabaseExists("i4-alpha"));
  CHECK(h.RoleCanLogin("i4-alpha") == "t");
  const json::value source = op->Source("local");
  INFO("source: " << json::serialize(source));
  CHECK(Str(source, {"reason"}) == "InvalidManifests");
  CHECK(Find(source, {"ready"}) != nullptr);
  CHECK(Find(source, {"ready"})->is_bool());
  CHECK_FALSE(Find(source, {"ready"})->get_bool());
  CHECK(op->View("i4-beta").phase == "Ready");
  CHECK(Eventually([&] { return op->Readyz() == 503; }, 5s, kPoll));
  CHECK_FALSE(op->HasEvent("i4-alpha", "Deleting"));

  // Fixed (back to the same spec): Ready again, still generation 1.
  h.WriteWorkspace("i4-alpha", 5, "Delete");
  alpha = WaitConverged(*op, "i4-alpha", 20s);
  REQUIRE(alpha.Converged());
  CHECK(alpha.generation == 1);
  CHECK(Eventually([&] { return Str(op->Source("local"), {"reason"}) == "Synced"; }, 5s, kPoll));
  CHECK(Eventually([&] { return op->Readyz() == 200; }, 5s, kPoll));
  CHECK(h.DatabaseExists("i4-alpha"));
}

TEST_CASE("daemon: the deletion guard: removing too many or every manifest deletes nothing" *
          doctest::test_suite("daemon-e2e")) {
  Harness h("guard");
  GitFixture git;
  WriteGitFleet(git);
  const std::vector<std::string> names = {"g5-a", "g5-b", "g5-c", "g5-d", "g5-e"};
  for (const std::string& name : names) WriteGitWorkspace(git, name);
  git.CommitAndPush("five workspaces");
  h.ConfigureGit(git.Url(), /*max_deletions=*/3);
  auto op = h.Start();
  INFO("log:\n" << op->Tail());
  for (const std::string& name : names) REQUIRE(WaitConverged(*op, name).Converged());

  /// Pushes, notifies, and waits until the source shows the new revision; its JSON.
  const auto push = [&](const std::string& message) {
    const std::string sha = git.CommitAndPush(message);
    REQUIRE(op->PostPush(sha, kWebhookSecret).status == 202);
    json::value source;
    const bool applied = Eventually(
        [&] {
          source = op->Source("upstream");
          return Str(source, {"revision"}) == sha;
        },
        15s, kPoll);
    INFO("source: " << json::serialize(source));
    REQUIRE(applied);
    return source;
  };
  const auto expect_all_kept = [&] {
    for (const std::string& name : names) {
      CAPTURE(name);
      const WorkspaceView view = op->View(name);
      INFO(view.body);
      CHECK(view.http == 200);
      CHECK(view.phase == "Ready");
      CHECK(h.DatabaseExists(name));
      CHECK(h.RoleCanLogin(name) == "t");
      CHECK_FALSE(op->HasEvent(name, "Deleting"));
    }
    CHECK(op->Workspaces().size() == names.size());
  };

  // Four removals with at most three allowed.
  for (std::size_t i = 1; i < names.size(); ++i) {
    git.Remove("fleet/workspaces/" + names[i] + ".yaml");
  }
  json::value source = push("remove four of five");
  {
    INFO("source: " << json::serialize(source));
    CHECK(Str(source, {"reason"}) == "DeletionGuard");
    REQUIRE(Find(source, {"ready"}) != nullptr);
    CHECK_FALSE(Find(source, {"ready"})->as_bool());
    expect_all_kept();
    CHECK(Eventually([&] { return op->Readyz() == 503; }, 5s, kPoll));
  }

  // Every manifest removed (one removal only would be within the limit, but not "all").
  git.Remove("fleet/workspaces");
  source = push("remove every workspace");
  {
    INFO("source: " << json::serialize(source));
    CHECK(Str(source, {"reason"}) == "DeletionGuard");
    REQUIRE(Find(source, {"ready"}) != nullptr);
    CHECK_FALSE(Find(source, {"ready"})->as_bool());
    expect_all_kept();
  }

  // The manifests come back: the source is healthy again, nothing changed generation.
  for (const std::string& name : names) WriteGitWorkspace(git, name);
  const json::value back = push("restore");
  CHECK(Str(back, {"reason"}) == "Synced");
  CHECK(Find(back, {"ready"})->as_bool());
  for (const std::string& name : names) CHECK(op->View(name).generation == 1);

  // Within the limit, a removal does go through (the guard, not a broken delete, kept them).
  git.Remove("fleet/workspaces/g5-e.yaml");
  push("remove one");
  CHECK(Eventually([&] { return op->View("g5-e").http == 404; }, 20s, kPoll));
  CHECK_FALSE(h.DatabaseExists("g5-e"));
  CHECK(h.DatabaseExists("g5-a"));
}

TEST_CASE("daemon: a restart keeps status, events and generations" *
          doctest::test_suite("daemon-e2e")) {
  Harness h("restart");
  h.WriteWorkspace("r6-alpha", 5, "Delete");
  h.WriteWorkspace("r6-beta", 5, "Delete");
  h.ConfigureDirectory();
  std::vector<std::int64_t> event_ids;
  {
    auto op = h.Start();
    INFO("log:\n" << op->Tail());
    REQUIRE(WaitConverged(*op, "r6-alpha").Converged());
    REQUIRE(WaitConverged(*op, "r6-beta").Converged());
    h.WriteWorkspace("r6-alpha", 9, "Delete");
    const WorkspaceView alpha = WaitConverged(*op, "r6-alpha", 20s, 2);
    REQUIRE(alpha.Converged());
    for (const json::value& event : op->Events("r6-alpha")) {
      event_ids.push_back(Int(event, {"id"}));
    }
    REQUIRE_FALSE(event_ids.empty());
    CHECK(op->process().Terminate() == 0);
    CHECK(op->process().Log().find("draining") != std::string::npos);
  }

  auto op = h.Start();
  INFO("log after the restart:\n" << op->Tail());
  // Straight from the store, before any reconcile of the new process.
  WorkspaceView alpha = op->View("r6-alpha");
  INFO("r6-alpha: " << alpha.body);
  CHECK(alpha.http == 200);
  CHECK(alpha.generation == 2);
  CHECK(alpha.observed == 2);
  CHECK(alpha.phase == "Ready");
  std::vector<std::int64_t> ids_now;
  for (const json::value& event : op->Events("r6-alpha")) ids_now.push_back(Int(event, {"id"}));
  for (std::int64_t id : event_ids) {
    CAPTURE(id);
    CHECK(std::find(ids_now.begin(), ids_now.end(), id) != ids_now.end());
  }

  // After the new process has read the folder again (a change proves a sync happened), the
  // generation is still 2: a re-read of an unchanged spec is no new generation.
  h.WriteWorkspace("r6-gamma", 5, "Delete");
  REQUIRE(WaitConverged(*op, "r6-gamma", 20s).Converged());
  alpha = op->View("r6-alpha");
  CHECK(alpha.generation == 2);
  CHECK(alpha.observed == 2);
  CHECK(alpha.phase == "Ready");
  CHECK(op->View("r6-beta").generation == 1);
  CHECK(op->process().Terminate() == 0);
}

TEST_CASE("daemon: a converged fleet's resyncs reconcile again, send no DDL and write nothing" *
          doctest::test_suite("daemon-e2e")) {
  Harness h("resync");
  h.WriteWorkspace("s10-alpha", 5, "Delete");
  h.WriteWorkspace("s10-beta", 5, "Delete");
  h.SetResyncInterval("1s");
  h.ConfigureDirectory();
  auto op = h.Start();
  INFO("log:\n" << op->Tail());
  REQUIRE(WaitConverged(*op, "s10-alpha").Converged());
  REQUIRE(WaitConverged(*op, "s10-beta").Converged());
  std::map<std::string, std::string> views;
  std::map<std::string, std::size_t> events;
  for (const std::string name : {"s10-alpha", "s10-beta"}) {
    views[name] = op->View(name).body;
    events[name] = op->Events(name).size();
  }

  ResetStatementStats(h.pg().Dsn());
  const long before = op->ReconcileTotal();
  REQUIRE(before >= 2);
  // Each workspace comes back every second (± 10 %): two more rounds of both.
  const bool resynced = Eventually([&] { return op->ReconcileTotal() >= before + 4; }, 15s, kPoll);
  CHECK(resynced);
  const std::vector<StatementStat> stats = ReadStatementStats(h.pg().Dsn());
  long catalog_queries = 0;
  for (const StatementStat& stat : stats) {
    if (stat.query.find("pg_database") != std::string::npos &&
        stat.query.find("pg_authid") != std::string::npos) {
      catalog_queries += stat.calls;
    }
  }
  CHECK(catalog_queries >= 1);  // the resyncs did look at the server...
  CHECK(CountDdl(stats) == 0);  // ...and changed nothing there
  for (const std::string name : {"s10-alpha", "s10-beta"}) {
    CAPTURE(name);
    CHECK(op->View(name).body == views[name]);  // no status written
    CHECK(op->Events(name).size() == events[name]);
  }
  CHECK(op->process().Terminate() == 0);
}

TEST_CASE("daemon: the stack ledger is saved when tenant-operator exits on SIGTERM" *
          doctest::test_suite("daemon-e2e")) {
  Harness h("ledger");
  h.WriteFleetFile("workspaces/l11-shop.yaml", DedicatedWorkspaceYaml("l11-shop", "1.0.0"));
  h.ConfigureDirectory();
  const fs::path compose = h.DeploymentsDir() / "l11-shop" / "docker-compose.yml";
  const fs::path ledger = h.DeploymentsDir() / ".tenant-master-ledger";
  auto op = h.Start();
  INFO("log:\n" << op->Tail());
  WorkspaceView shop = WaitConverged(*op, "l11-shop");
  INFO("l11-shop: " << shop.body);
  REQUIRE(shop.Converged());
  CHECK(shop.conditions["StackReady"] == "True");
  REQUIRE(fs::exists(compose));
  const std::int64_t first_write = ModifiedNanos(compose);

  // A version bump writes the stack again: the ledger must hold the last write, not the first.
  h.WriteFleetFile("workspaces/l11-shop.yaml", DedicatedWorkspaceYaml("l11-shop", "1.1.0"));
  shop = WaitConverged(*op, "l11-shop", 20s, 2);
  REQUIRE(shop.Converged());
  CHECK(shop.conditions["StackReady"] == "True");
  const std::int64_t last_write = ModifiedNanos(compose);
  REQUIRE(last_write != first_write);
  // The examples' erp shared runtime, converged by the leader beside the workspaces.
  REQUIRE(Eventually(
      [&] { return fs::exists(h.DeploymentsDir() / "shared-erp" / "docker-compose.yml"); }, 20s));

  CHECK(op->process().Terminate() == 0);
  REQUIRE(fs::exists(ledger));
  // Its ledger entry is saved too, under its own key.
  CHECK_FALSE(LineStartingWith(ReadFile(ledger), "shared:1:erp ").empty());
  // `name id update_date digest`: the stack as the daemon left it.
  std::istringstream entry(LineStartingWith(ReadFile(ledger), "l11-shop "));
  std::string name, id, update_date, digest;
  entry >> name >> id >> update_date >> digest;
  CHECK(name == "l11-shop");
  CHECK_FALSE(id.empty());
  CHECK(update_date == std::to_string(last_write));
  CHECK(digest == tmaster::crypto::Sha256Hex(ReadFile(compose)));
  CHECK((fs::status(ledger).permissions() & fs::perms::all) ==
        (fs::perms::owner_read | fs::perms::owner_write));
}

TEST_CASE("daemon: kill -9 while converging 50 workspaces, then a restart: all 50 Ready, once" *
          doctest::test_suite("daemon-e2e-slow")) {
  Harness h("kill");
  std::vector<std::string> names;
  for (int i = 0; i < 50; ++i) {
    names.push_back((i < 10 ? "k7-w0" : "k7-w") + std::to_string(i));
  }
  h.ConfigureDirectory();
  const std::string count_databases =
      "SELECT count(*) FROM pg_database WHERE datname LIKE 'tenant\\_k7\\_w%'";
  const std::string count_roles =
      "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'user\\_k7\\_w%'";
  const std::string count_unmarked =
      "SELECT count(*) FROM pg_database WHERE datname LIKE 'tenant\\_k7\\_w%' AND "
      "coalesce(shobj_description(oid, 'pg_database'), '') NOT LIKE 'tenant-master:%'";
  const std::string operator_sessions =
      "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tenant-master'";

  {
    for (std::size_t i = 0; i < 10; ++i) h.WriteWorkspace(names[i], 3, "Delete");
    auto op = h.Start({"--workers", "4"});
    INFO("log:\n" << op->Tail());
    INFO("warnings and errors:\n" << op->Problems());
    for (std::size_t i = 0; i < 10; ++i) REQUIRE(WaitConverged(*op, names[i], 60s).Converged());

    // From here on no database can be created or altered: this transaction's lock on
    // pg_database makes CREATE DATABASE (and ALTER or GRANT on a database) wait, while the
    // catalog query still reads it. The other 40 arrive; each worker creates a role and blocks
    // in CREATE DATABASE, so the kill lands in the middle of their passes however fast the
    // machine is.
    PgSession blocker(h.pg().Dsn());
    REQUIRE(blocker.Run("BEGIN") == "");
    REQUIRE(blocker.Run("LOCK TABLE pg_database IN SHARE MODE") == "");
    for (std::size_t i = 10; i < names.size(); ++i) h.WriteWorkspace(names[i], 3, "Delete");
    const std::string blocked = operator_sessions + " AND wait_event_type = 'Lock'";
    REQUIRE(Eventually([&] { return QueryValue(h.pg().Dsn(), blocked) != "0"; }, 60s, kPoll));
    CHECK(op->process().Kill() == 128 + 9);
    CHECK(QueryValue(h.pg().Dsn(), count_databases) == "10");
    const int roles_at_kill = std::stoi(QueryValue(h.pg().Dsn(), count_roles));
    CHECK(roles_at_kill > 10);  // workspaces cut between their role and their database

    // The server notices the lost client only when it answers: the blocked CREATE DATABASE
    // statements complete once the lock goes, and their marker and PUBLIC revoke never come.
    REQUIRE(blocker.Run("ROLLBACK") == "");
    REQUIRE(
        Eventually([&] { return QueryValue(h.pg().Dsn(), operator_sessions) == "0"; }, 30s, kPoll));
    const int unmarked = std::stoi(QueryValue(h.pg().Dsn(), count_unmarked));
    std::cout << "daemon_itest: when killed: " << roles_at_kill << " roles, 10 databases; then "
              << unmarked << " databases created unmarked by the killed daemon's sessions"
              << std::endl;
    CHECK(unmarked >= 1);
  }

  auto op = h.Start({"--workers", "4"});
  INFO("log after the restart:\n" << op->Tail());
  INFO("warnings and errors after the restart:\n" << op->Problems());
  json::array items;
  std::size_t ready = 0;
  std::string not_ready;
  const bool all = Eventually(
      [&] {
        items = op->Workspaces();
        ready = 0;
        not_ready.clear();
        for (const json::value& item : items) {
          if (ViewOf(item).Converged()) {
            ++ready;
          } else {
            not_ready += json::serialize(item) + "\n";
          }
        }
        return ready == 50;
      },
      90s, kPoll);
  INFO("ready: " << ready << " of " << items.size() << "; the others:\n" << not_ready);
  CHECK(all);
  CHECK(items.size() == 50);
  for (const json::value& item : items) {
    const WorkspaceView view = ViewOf(item);
    CAPTURE(Str(item, {"metadata", "name"}));
    CHECK(view.generation == 1);
    CHECK(view.last_error.empty());
  }
  CHECK(QueryValue(h.pg().Dsn(), count_databases) == "50");
  CHECK(QueryValue(h.pg().Dsn(), count_roles) == "50");
  // Each database is recognisably its workspace's, owned by its role.
  CHECK(QueryValue(h.pg().Dsn(),
                   "SELECT count(*) FROM pg_database d JOIN pg_roles r ON r.oid = d.datdba "
                   "WHERE d.datname LIKE 'tenant\\_k7\\_w%' AND r.rolname = "
                   "'user_' || substr(d.datname, 8) AND shobj_description(d.oid, 'pg_database') "
                   "LIKE 'tenant-master:workspace=k7-w%'") == "50");
  CHECK(QueryValue(h.pg().Dsn("tenant_k7_w49"),
                   "SELECT count(*) FROM tenant_master.schema_migrations") == "1");
}

TEST_CASE("daemon: PostgreSQL restarted mid-run: the daemon recovers by itself" *
          doctest::test_suite("daemon-e2e-slow")) {
  Harness h("pgrestart");
  h.WriteWorkspace("p8-alpha", 5, "Delete");
  h.ConfigureDirectory();
  auto op = h.Start();
  INFO("log:\n" << op->Tail());
  REQUIRE(WaitConverged(*op, "p8-alpha").Converged());
  REQUIRE(Eventually([&] { return op->Readyz() == 200; }, 10s, kPoll));

  h.pg().Restart();
  const auto restarted = SteadyClock::now();
  h.WriteWorkspace("p8-beta", 5, "Delete");
  const WorkspaceView beta = WaitConverged(*op, "p8-beta", 30s);
  INFO("p8-beta: " << beta.body);
  CHECK(beta.Converged());
  Timing("PostgreSQL restart to a new workspace Ready", restarted);
  CHECK(h.DatabaseExists("p8-beta"));
  CHECK(Eventually([&] { return op->Readyz() == 200; }, 30s, kPoll));
  CHECK(Eventually([&] { return op->Leader() == 1; }, 10s, kPoll));
  CHECK(op->View("p8-alpha").phase == "Ready");
  CHECK(op->process().Running());
}

TEST_CASE("daemon: two daemons on one store: one leads, the other takes over when it is killed" *
          doctest::test_suite("daemon-e2e-slow")) {
  Harness h("leader");
  h.WriteWorkspace("l9-alpha", 5, "Delete");
  h.ConfigureDirectory();
  std::unique_ptr<Operator> a = h.Start();
  std::unique_ptr<Operator> b = h.Start();
  INFO("log a:\n" << a->Tail());
  INFO("log b:\n" << b->Tail());

  const bool one = Eventually([&] { return a->Leader() + b->Leader() == 1; }, 20s, kPoll);
  REQUIRE(one);
  // Exactly one, and it stays that way for a second (ten looks).
  CHECK_FALSE(Eventually([&] { return a->Leader() + b->Leader() != 1; }, 1s, kPoll));
  const bool a_leads = a->Leader() == 1;
  Operator& leader = a_leads ? *a : *b;
  Operator& standby = a_leads ? *b : *a;
  REQUIRE(WaitConverged(leader, "l9-alpha").Converged());
  // The standby serves the read API from the same store.
  CHECK(standby.View("l9-alpha").Converged());
  CHECK(standby.Leader() == 0);
  CHECK(standby.Readyz() == 200);

  CHECK(leader.process().Kill() == 128 + 9);
  const auto killed = SteadyClock::now();
  const bool took_over = Eventually([&] { return standby.Leader() == 1; }, 15s, kPoll);
  const auto takeover = SteadyClock::now() - killed;
  REQUIRE(took_over);
  Timing("takeover after kill -9", killed);
  // README: a standby takes over "within about a second" of the leader's session ending; the
  // ceiling leaves room for a busy machine, not for a lost second poll.
  CHECK(takeover <= 3s);

  h.WriteWorkspace("l9-beta", 5, "Delete");
  const WorkspaceView beta = WaitConverged(standby, "l9-beta", 20s);
  INFO("l9-beta: " << beta.body);
  CHECK(beta.Converged());
  CHECK(h.DatabaseExists("l9-beta"));
  CHECK(standby.View("l9-alpha").phase == "Ready");
  CHECK(standby.process().Terminate() == 0);
}
