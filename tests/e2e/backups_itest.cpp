// Backups end to end (issue 15): the built tenant-operator as a daemon and the built tenantctl, on
// this binary's private PostgreSQL. Each case is checked where the truth is: the store's catalog
// (tm_backups) and events (tm_events), the files under `backups.directory` (their modes and
// SHA-256), the tenant database's rows (table checksums) and roles, and the API through tenantctl;
// never by exit codes alone.
//
// Two daemons on the same server, each with its own fleet folder, store database and backups
// folder, so the slow case does not hold up the others:
//   - `main` (encrypted backups, verified by restore): a backup restores to identical rows, a
//     client connected during a restore, a corrupted file refused before anything is touched,
//     `--into` another workspace, the backup before a migration and the restore that undoes a
//     bad one, the final backup before a `Delete`, pg_dump killed midway;
//   - `sched` (plain files): a `* * * * *` schedule with keep 1, stopped after its first scheduled
//     backup and started again after two minute slots passed. It runs on a thread of its own from
//     the first case on (a schedule cannot be hurried: about three and a half minutes), and the
//     last case of this file waits for it and reports what it saw.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/crypto.hpp"
#include "common/secret.hpp"
#include "reconcilers/postgres/desired.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/eventually.hpp"
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
const std::string kTenantctl = std::string(TM_BINARY_DIR) + "/tenantctl";
const std::string kCluster = "default";
const std::string kAdminToken = "backups-e2e-admin-token-0123456789ab";
const std::string kReadToken = "backups-e2e-read-token-0123456789abc";
constexpr std::chrono::milliseconds kPoll = 200ms;

std::string RoleOf(const std::string& workspace) { return "user_" + workspace; }
std::string DatabaseOf(const std::string& workspace) { return "tenant_" + workspace; }

std::int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Describe(const ProcessResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// The permission bits of `path` (0 when it does not exist).
unsigned Mode(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777U;
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

/// One row of the store's catalog.
struct CatalogEntry {
  std::string id;
  std::string kind;
  std::string state;
  std::string file;
  std::string sha256;
  std::string reason;
  std::string key_id;
  std::string table_rows;
  std::int64_t size = 0;
  std::int64_t created = 0;
};

/// One event of the store.
struct EventRow {
  std::int64_t id = 0;
  std::string type;
  std::string reason;
  std::string message;
};

/// The processes whose argv[0] ends in `program`, whose command line holds `needle`, and that
/// descend from `ancestor` (at most four generations): the tools one daemon started, never
/// another's.
std::vector<pid_t> DescendantsRunning(pid_t ancestor, const std::string& program,
                                      const std::string& needle) {
  const auto parent_of = [](pid_t pid) -> pid_t {
    const std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
    const std::size_t paren = stat.rfind(')');
    if (paren == std::string::npos) return -1;
    std::istringstream rest(stat.substr(paren + 1));
    std::string state;
    long ppid = -1;
    rest >> state >> ppid;
    return static_cast<pid_t>(ppid);
  };
  std::vector<pid_t> found;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator("/proc", error)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    const pid_t pid = static_cast<pid_t>(std::stol(name));
    const std::string cmdline = ReadFile(entry.path() / "cmdline");
    const std::string argv0 = cmdline.substr(0, cmdline.find('\0'));
    if (argv0.size() < program.size() ||
        argv0.compare(argv0.size() - program.size(), program.size(), program) != 0) {
      continue;
    }
    if (cmdline.find(needle) == std::string::npos) continue;
    pid_t up = pid;
    for (int generation = 0; generation < 4 && up > 1; ++generation) {
      up = parent_of(up);
      if (up == ancestor) {
        found.push_back(pid);
        break;
      }
    }
  }
  return found;
}

/// One tenant-operator with its own fleet folder, store database and backups folder, restarted
/// on the same ones; tenantctl pointed at it with the admin token.
class Operator {
 public:
  /// `backups` is the config's `backups:` block below `directory`.
  Operator(std::string tag, std::string master_key, std::string backups)
      : pg_(PgServer::Shared()), tag_(std::move(tag)), master_key_(std::move(master_key)) {
    std::string yaml = "baseDomain: example.test\nmasterKeyEnv: TM_MASTER_KEY\n";
    yaml += "clusters:\n  - name: " + kCluster + "\n    dsnEnv: TM_PG_DSN\n";
    yaml += "store:\n  dsnEnv: TM_STORE_DSN\n";
    yaml += "sources:\n  - name: local\n    directory: " + (dir_.path() / "fleet").string() + "\n";
    yaml += "stacks:\n  backend: directory\n  directory: " +
            (dir_.path() / "deployments").string() + "\n";
    yaml += "http:\n  listen: \"127.0.0.1:0\"\n  tokenEnv: TM_API_TOKEN\n";
    yaml += "  readTokenEnv: TM_READ_TOKEN\n";
    yaml += "backups:\n  directory: " + BackupsDir().string() + "\n" + backups;
    config_ = dir_.Write("operator.yaml", yaml).string();
    dir_.Mkdir("fleet");
  }

  PgServer& pg() { return pg_; }
  [[nodiscard]] fs::path BackupsDir() const { return dir_.path() / "backups"; }
  [[nodiscard]] std::string StoreDsn() const { return pg_.Dsn("tm_store_" + tag_); }

  /// Writes a fleet file the way an editor saving atomically does (aside, then renamed), so
  /// the watcher never reads half of it.
  void WriteFleet(const std::string& relative, const std::string& text) const {
    const fs::path staged = dir_.Write("staging/" + relative, text);
    const fs::path target = dir_.path() / "fleet" / relative;
    fs::create_directories(target.parent_path());
    fs::rename(staged, target);
  }
  void RemoveFleet(const std::string& relative) const {
    fs::remove(dir_.path() / "fleet" / relative);
  }

  /// Starts a daemon (its own log and state folder) and waits for its HTTP port; throws when
  /// it does not serve.
  void Start() {
    const int n = ++starts_;
    daemon_.reset();
    daemon_ = std::make_unique<DaemonProcess>(DaemonProcess::Options{
        .argv = {kOperator, "--config", config_, "--state-dir",
                 (dir_.path() / ("state-" + std::to_string(n))).string()},
        .env = {{"TM_MASTER_KEY", master_key_},
                {"TM_PG_DSN", pg_.Dsn()},
                {"TM_STORE_DSN", StoreDsn()},
                {"TM_API_TOKEN", kAdminToken},
                {"TM_READ_TOKEN", kReadToken}},
        .log_file = (dir_.path() / ("operator-" + std::to_string(n) + ".log")).string()});
    port_ = daemon_->WaitForHttpPort(60s);
    if (port_ == 0) throw std::runtime_error("no HTTP port; log:\n" + daemon_->Log());
  }
  /// SIGTERM; its exit code.
  int Stop() { return daemon_ ? daemon_->Terminate() : -1; }
  DaemonProcess& daemon() { return *daemon_; }
  /// Every start's log, oldest first.
  [[nodiscard]] std::string Log() const {
    std::string all;
    for (int n = 1; n <= starts_; ++n) {
      all += "---- operator-" + std::to_string(n) + ".log\n" +
             ReadFile(dir_.path() / ("operator-" + std::to_string(n) + ".log"));
    }
    return all;
  }
  /// The log lines mentioning `needle` (e.g. a workspace or a backup id), for failure messages.
  [[nodiscard]] std::string LogLines(const std::string& needle) const {
    std::istringstream in(Log());
    std::string line;
    std::string out;
    while (std::getline(in, line)) {
      if (line.find(needle) != std::string::npos || line.rfind("----", 0) == 0) out += line + "\n";
    }
    return out;
  }

  ProcessResult Ctl(std::vector<std::string> args, const std::string& token = kAdminToken) {
    args.insert(args.begin(), kTenantctl);
    return RunProcess(args, {{"TENANTCTL_SERVER", "http://127.0.0.1:" + std::to_string(port_)},
                             {"TENANTCTL_TOKEN", token},
                             {"HOME", dir_.path().string()},
                             {"XDG_CONFIG_HOME", (dir_.path() / "xdg").string()}});
  }

  /// `GET path` with the read token; the parsed body, or null.
  json::value Get(const std::string& path) const {
    const HttpResponse r =
        HttpRequest(port_, "GET", path, {{"Authorization", "Bearer " + kReadToken}});
    if (r.status != 200) return nullptr;
    boost::system::error_code error;
    json::value value = json::parse(r.body, error);
    return error ? json::value(nullptr) : value;
  }
  [[nodiscard]] std::string WorkspaceBody(const std::string& name) const {
    const HttpResponse r = HttpRequest(port_, "GET", "/api/v1/workspaces/" + name,
                                       {{"Authorization", "Bearer " + kReadToken}});
    return r.status == 200 ? r.body : std::string();
  }
  [[nodiscard]] std::string Phase(const std::string& name) const {
    const json::value v = Get("/api/v1/workspaces/" + name);
    if (!v.is_object()) return "";
    const json::object* status = v.as_object().if_contains("status") != nullptr
                                     ? v.as_object().at("status").if_object()
                                     : nullptr;
    if (status == nullptr || !status->contains("phase") || !status->at("phase").is_string()) {
      return "";
    }
    return std::string(status->at("phase").get_string());
  }
  /// The workspace's condition `type` as `status/reason/message`, or empty.
  [[nodiscard]] std::string Condition(const std::string& name, const std::string& type) const {
    const json::value v = Get("/api/v1/workspaces/" + name);
    if (!v.is_object()) return "";
    const json::value* status = v.as_object().if_contains("status");
    if (status == nullptr || !status->is_object()) return "";
    const json::value* conditions = status->as_object().if_contains("conditions");
    if (conditions == nullptr || !conditions->is_array()) return "";
    for (const json::value& c : conditions->get_array()) {
      if (!c.is_object()) continue;
      const json::object& o = c.as_object();
      const auto text = [&o](const char* key) {
        return o.contains(key) && o.at(key).is_string() ? std::string(o.at(key).get_string())
                                                        : std::string();
      };
      if (text("type") == type) return text("status") + "/" + text("reason") + "/" + text("message");
    }
    return "";
  }
  bool WaitReady(const std::string& name, std::chrono::milliseconds limit = 90s) {
    return Eventually([&] { return Phase(name) == "Ready"; }, limit, kPoll);
  }

  // The store.
  [[nodiscard]] std::vector<CatalogEntry> Catalog(const std::string& workspace) const {
    std::vector<CatalogEntry> out;
    for (const Row& row : Query(StoreDsn(),
                                "SELECT id, kind, state, file, sha256, reason, key_id, "
                                "table_rows_json, size_bytes::text, "
                                "extract(epoch FROM created_at)::bigint::text FROM tm_backups "
                                "WHERE workspace = $1 ORDER BY created_at DESC, id DESC",
                                {workspace})) {
      out.push_back(CatalogEntry{.id = row[0],
                                 .kind = row[1],
                                 .state = row[2],
                                 .file = row[3],
                                 .sha256 = row[4],
                                 .reason = row[5],
                                 .key_id = row[6],
                                 .table_rows = row[7],
                                 .size = std::stoll(row[8]),
                                 .created = std::stoll(row[9])});
    }
    return out;
  }
  [[nodiscard]] std::optional<CatalogEntry> Backup(const std::string& workspace,
                                                   const std::string& id) const {
    for (CatalogEntry& e : Catalog(workspace)) {
      if (e.id == id) return e;
    }
    return std::nullopt;
  }
  [[nodiscard]] std::vector<CatalogEntry> OfKind(const std::string& workspace,
                                                 const std::string& kind) const {
    std::vector<CatalogEntry> out;
    for (CatalogEntry& e : Catalog(workspace)) {
      if (e.kind == kind) out.push_back(std::move(e));
    }
    return out;
  }
  /// The workspace's events after event id `after`, oldest first.
  [[nodiscard]] std::vector<EventRow> Events(const std::string& workspace,
                                             std::int64_t after = 0) const {
    std::vector<EventRow> out;
    for (const Row& row :
         Query(StoreDsn(),
               "SELECT id::text, type, reason, message FROM tm_events WHERE workspace = $1 "
               "AND id > $2::bigint ORDER BY id",
               {workspace, std::to_string(after)})) {
      out.push_back(EventRow{std::stoll(row[0]), row[1], row[2], row[3]});
    }
    return out;
  }
  [[nodiscard]] std::int64_t LastEventId() const {
    return std::stoll(QueryValue(StoreDsn(), "SELECT coalesce(max(id), 0)::text FROM tm_events"));
  }
  [[nodiscard]] std::string DescribeEvents(const std::string& workspace,
                                           std::int64_t after = 0) const {
    std::string out;
    for (const EventRow& e : Events(workspace, after)) {
      out += e.type + " " + e.reason + ": " + e.message + "\n";
    }
    return out;
  }

  // The tenant's side.
  [[nodiscard]] tmaster::Secret TenantPassword(const std::string& workspace) const {
    return tmaster::postgres::DerivePassword(tmaster::Secret(master_key_), kCluster,
                                             RoleOf(workspace), 0);
  }
  [[nodiscard]] std::string TenantDsn(const std::string& workspace) const {
    return pg_.DsnAs(RoleOf(workspace), TenantPassword(workspace).Reveal(),
                     DatabaseOf(workspace));
  }
  /// Runs `sql` in the workspace's database as its own role (objects it creates are the
  /// tenant's, as an application's would be).
  void AsTenant(const std::string& workspace, const std::string& sql) {
    Execute(pg_.Dsn(DatabaseOf(workspace)), "SET ROLE " + RoleOf(workspace) + ";\n" + sql);
  }
  [[nodiscard]] bool CanLogIn(const std::string& workspace) const {
    return QueryValue(pg_.Dsn(), "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1",
                      {RoleOf(workspace)}) == "t" &&
           ConnectError(TenantDsn(workspace)).empty();
  }
  [[nodiscard]] std::string RolCanLogin(const std::string& workspace) const {
    return QueryValue(pg_.Dsn(), "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1",
                      {RoleOf(workspace)});
  }
  [[nodiscard]] bool DatabaseExists(const std::string& workspace) const {
    return QueryValue(pg_.Dsn(), "SELECT count(*) FROM pg_database WHERE datname = $1",
                      {DatabaseOf(workspace)}) == "1";
  }
  /// md5 of every row of `tables` (each ordered by id), joined: equal checksums, equal rows.
  [[nodiscard]] std::string Checksum(const std::string& workspace,
                                     const std::vector<std::string>& tables = {"items",
                                                                               "notes"}) const {
    std::string out;
    for (const std::string& table : tables) {
      out += QueryValue(pg_.Dsn(DatabaseOf(workspace)),
                        "SELECT coalesce(md5(string_agg(t::text, ',' ORDER BY id)), 'empty') "
                        "FROM " + table + " t") +
             "/";
    }
    return out;
  }

 private:
  PgServer& pg_;
  std::string tag_;
  std::string master_key_;
  TempDir dir_;
  std::string config_;
  int starts_ = 0;
  int port_ = 0;
  std::unique_ptr<DaemonProcess> daemon_;
};

std::string ShopProduct(const std::string& name) {
  return "apiVersion: tenantmaster.io/v1alpha1\nkind: Product\nmetadata:\n  name: " + name +
         "\nspec:\n  image: ghcr.io/acme/shop\n  defaultVersion: \"1.0.0\"\n"
         "  migrations: migrations/" + name + "\n  modes: [shared]\n";
}
const char* kItemsMigration = "CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL);\n";

std::string WorkspaceManifest(const std::string& name, const std::string& product,
                              const std::string& reclaim, const std::string& extra = "") {
  return "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: " + name +
         "\nspec:\n  product: " + product + "\n  mode: shared\n  database:\n    reclaimPolicy: " +
         reclaim + "\n" + extra;
}

/// Rows in `items` and `notes`, owned by the tenant (`seed` varies the content).
void Seed(Operator& op, const std::string& workspace, int seed) {
  const std::string s = std::to_string(seed);
  op.AsTenant(workspace,
              "INSERT INTO items (name) SELECT 'item ' || g || '/" + s +
                  "' FROM generate_series(1, 400) g;\n"
                  "CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL);\n"
                  "INSERT INTO notes SELECT g, md5((g * " + s +
                  ")::text) FROM generate_series(1, 150) g;\n");
}

/// Changes every table's rows.
void Scramble(Operator& op, const std::string& workspace) {
  op.AsTenant(workspace,
              "DELETE FROM items WHERE id % 3 = 0;\nUPDATE items SET name = name || ' changed';\n"
              "UPDATE notes SET body = 'changed';\nINSERT INTO notes VALUES (100000, 'new');\n");
}

/// `tenantctl backup NAME --wait`: the new backup's id (empty when it failed, with a check).
std::string BackupNow(Operator& op, const std::string& workspace) {
  const ProcessResult r = op.Ctl({"backup", workspace, "--wait", "--timeout", "3m"});
  INFO(Describe(r) << "\ndaemon:\n" << op.LogLines(workspace));
  CHECK(r.exit_code == 0);
  const std::string id = Between(r.out, "backup " + workspace + "/", " queued");
  CHECK(!id.empty());
  // "ok", or "verified" when the pool verified it before the poll saw it.
  CHECK((r.out.find("backup " + id + ": ok, ") != std::string::npos ||
         r.out.find("backup " + id + ": verified, ") != std::string::npos));
  return r.exit_code == 0 ? id : std::string();
}

/// `tenantctl restore FROM --backup ID [--into INTO] --wait`.
ProcessResult Restore(Operator& op, const std::string& from, const std::string& id,
                      const std::string& into = "") {
  std::vector<std::string> args = {"restore", from, "--backup", id, "--wait", "--timeout", "4m"};
  if (!into.empty()) {
    args.push_back("--into");
    args.push_back(into);
  }
  return op.Ctl(args);
}

/// The restore id printed by `tenantctl restore`.
std::string RestoreIdOf(const ProcessResult& r, const std::string& id) {
  return Between(r.out, "restore ", " of backup " + id);
}

/// Waits until the catalog row `id` is verified (the daemon restores each new backup into a
/// scratch database); its row.
std::optional<CatalogEntry> WaitVerified(Operator& op, const std::string& workspace,
                                         const std::string& id) {
  std::optional<CatalogEntry> row;
  Eventually(
      [&] {
        row = op.Backup(workspace, id);
        return row && row->state != "ok";
      },
      90s, kPoll);
  return row;
}

/// The checks every good backup file passes: the catalog's file exists, 0600 in a 0700 folder,
/// its size and SHA-256 the catalog's.
void CheckFile(Operator& op, const CatalogEntry& row) {
  INFO("backup " << row.id << " file " << row.file);
  const fs::path file = op.BackupsDir() / row.file;
  REQUIRE(fs::exists(file));
  CHECK(Mode(file) == 0600U);
  CHECK(Mode(file.parent_path()) == 0700U);
  CHECK(static_cast<std::int64_t>(fs::file_size(file)) == row.size);
  CHECK(tmaster::crypto::Sha256Hex(ReadFile(file)) == row.sha256);
}

/// Whether `reasons` appear in this order among `events` (others may come between).
bool InOrder(const std::vector<EventRow>& events, const std::vector<std::string>& reasons) {
  std::size_t next = 0;
  for (const EventRow& e : events) {
    if (next < reasons.size() && e.reason == reasons[next]) ++next;
  }
  return next == reasons.size();
}

bool HasEvent(const std::vector<EventRow>& events, const std::string& reason) {
  return std::any_of(events.begin(), events.end(),
                     [&](const EventRow& e) { return e.reason == reason; });
}

// ---- the `main` daemon ----------------------------------------------------------------------

/// Its workspaces (each case has its own): alpha (restore to identical rows), bravo (a client
/// connected), charlie (a corrupted file), echo -> foxtrot (--into), golf (reclaimPolicy:
/// Delete), hotel (pg_dump killed), india (product `migshop`: migrations).
const std::vector<std::string> kMainWorkspaces = {"alpha", "bravo",  "charlie", "echo",
                                                  "foxtrot", "golf", "hotel",  "india"};

void StartScheduledScenario();

std::unique_ptr<Operator> MakeMain() {
  auto o = std::make_unique<Operator>("backups_main",
                                      "backups-e2e-master-key-main-0123456789abcdef",
                                      "  verify: restore\n  encrypt: true\n  concurrency: 2\n");
  o->WriteFleet("products.yaml", ShopProduct("shop") + "---\n" + ShopProduct("migshop"));
  o->WriteFleet("migrations/shop/0001_items.sql", kItemsMigration);
  o->WriteFleet("migrations/migshop/0001_items.sql", kItemsMigration);
  for (const std::string& name : kMainWorkspaces) {
    const std::string product = name == "india" ? "migshop" : "shop";
    const std::string reclaim = name == "golf" ? "Delete" : "Retain";
    o->WriteFleet("workspaces/" + name + ".yaml", WorkspaceManifest(name, product, reclaim));
  }
  o->Start();
  return o;
}

/// Started on first use from the test's own thread (the daemon dies with the thread that started
/// it), stopped when the binary ends.
Operator& Main() {
  StartScheduledScenario();
  static const std::unique_ptr<Operator> op = MakeMain();
  return *op;
}

// ---- the `sched` daemon, on its own thread --------------------------------------------------

/// A `* * * * *` schedule with keep 1: the first scheduled backup, a stop, two minute slots
/// missed, a start: exactly one catch-up backup, and retention leaves one scheduled backup.
/// Runs without doctest (its assertions are for the test's own thread): what goes wrong is
/// collected and checked by the last case.
class ScheduledScenario {
 public:
  static ScheduledScenario& Get() {
    static ScheduledScenario scenario;
    return scenario;
  }
  ~ScheduledScenario() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }

  void Begin() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (thread_.joinable() || finished_) return;
    thread_ = std::thread([this] { Run(); });
  }
  /// Waits for the scenario; what failed (empty: all held) and what it saw.
  std::pair<std::vector<std::string>, std::string> Finish() {
    Begin();
    if (thread_.joinable()) thread_.join();
    std::lock_guard<std::mutex> lock(mutex_);
    return {failures_, notes_};
  }

 private:
  // PgServer::Shared() first: the server outlives this scenario (statics end in reverse order).
  ScheduledScenario() { PgServer::Shared(); }

  void Fail(const std::string& what) {
    std::lock_guard<std::mutex> lock(mutex_);
    failures_.push_back(what);
  }
  void Note(const std::string& what) {
    std::lock_guard<std::mutex> lock(mutex_);
    notes_ += what + "\n";
    std::cout << "backups_itest (sched): " << what << std::endl;
  }
  /// Sleeps until `condition` or `limit`; false on a timeout or when the test binary ends.
  bool WaitUntil(const std::function<bool()>& condition, std::chrono::milliseconds limit) {
    const auto deadline = SteadyClock::now() + limit;
    while (!stop_ && SteadyClock::now() < deadline) {
      if (condition()) return true;
      std::this_thread::sleep_for(kPoll);
    }
    return !stop_ && condition();
  }

  void Run() {
    try {
      Scenario();
    } catch (const std::exception& e) {
      Fail(std::string("exception: ") + e.what());
    }
    std::lock_guard<std::mutex> lock(mutex_);
    finished_ = true;
  }

  void Scenario() {
    const std::string ws = "sched";
    Operator op("backups_sched", "backups-e2e-master-key-sched-0123456789abcde",
                "  verify: restore\n");
    op.WriteFleet("products.yaml", ShopProduct("shop"));
    op.WriteFleet("migrations/shop/0001_items.sql", kItemsMigration);
    op.WriteFleet("workspaces/sched.yaml",
                  WorkspaceManifest(ws, "shop", "Retain",
                                    "  backup:\n    schedule: \"* * * * *\"\n    keep: 1\n"));
    op.Start();
    const auto fail = [&](const std::string& what) {
      Fail(what + "\ncatalog: " + DescribeCatalog(op, ws) + "\nevents:\n" +
           op.DescribeEvents(ws) + "daemon log (sched and backup lines):\n" + op.LogLines(ws));
    };
    if (!op.WaitReady(ws)) return fail("sched never Ready");
    op.AsTenant(ws, "INSERT INTO items (name) SELECT 'x' || g FROM generate_series(1, 50) g;");

    // The first scheduled backup: at the first minute after the workspace was created.
    std::optional<CatalogEntry> first;
    if (!WaitUntil(
            [&] {
              const auto rows = op.OfKind(ws, "scheduled");
              if (!rows.empty() && rows.front().state != "failed") first = rows.front();
              return first && first->state != "ok";  // verified (or verifyFailed): done with it
            },
            100s)) {
      return fail("no verified scheduled backup within 100 s of Ready");
    }
    if (first->state != "verified") fail("the first scheduled backup is " + first->state);
    Note("first scheduled backup " + first->id + " at " + std::to_string(first->created));
    const int stopped = op.Stop();
    if (stopped != 0) fail("SIGTERM ended the daemon with " + std::to_string(stopped));
    const std::int64_t stopped_at = NowUnix();

    // Two minute slots after the first run pass while it is down; start again early in a
    // minute, so the next regular slot is more than 30 s away.
    const std::int64_t slot = first->created - first->created % 60;
    const auto good_moment = [&] {
      const std::int64_t now = NowUnix();
      return now >= slot + 121 && now % 60 >= 1 && now % 60 <= 8;
    };
    if (!WaitUntil(good_moment, 240s)) return fail("stopped: never reached the restart moment");
    const std::int64_t restarted = NowUnix();
    Note("down from " + std::to_string(stopped_at) + " to " + std::to_string(restarted) + " (" +
         std::to_string((restarted - slot) / 60) + " slots after the first run's)");
    op.Start();

    // Exactly one catch-up backup, soon.
    std::optional<CatalogEntry> catchup;
    if (!WaitUntil(
            [&] {
              for (const CatalogEntry& e : op.OfKind(ws, "scheduled")) {
                if (e.id != first->id && e.state != "failed") catchup = e;
              }
              return catchup.has_value();
            },
            20s)) {
      return fail("no scheduled backup within 20 s of the restart");
    }
    Note("catch-up backup " + catchup->id + " " + std::to_string(NowUnix() - restarted) +
         " s after the restart");
    if (catchup->created < restarted) fail("the catch-up backup is older than the restart");
    // Until the next regular slot (at least 30 s after the restart): no second one. Counted
    // from the events, since retention removes rows.
    WaitUntil([&] { return NowUnix() % 60 >= 45; }, 60s);
    int taken = 0;
    std::string ids;
    for (const EventRow& e : op.Events(ws)) {
      if ((e.reason == "BackupSucceeded" || e.reason == "BackupFailed") &&
          e.message.find(first->id) == std::string::npos) {
        ++taken;
        ids += e.message + "\n";
      }
    }
    if (taken != 1) {
      fail("after the restart " + std::to_string(taken) +
           " scheduled backups were taken, not exactly one:\n" + ids);
    }

    // Retention, keep 1: once the catch-up backup is verified, the first one goes, row and file.
    const fs::path folder = op.BackupsDir() / ws;
    std::string seen;
    const bool pruned = WaitUntil(
        [&] {
          const auto rows = op.OfKind(ws, "scheduled");
          std::vector<std::string> files;
          std::error_code error;
          for (const auto& f : fs::directory_iterator(folder, error)) {
            files.push_back(f.path().filename().string());
          }
          seen = std::to_string(rows.size()) + " scheduled rows, files:";
          for (const std::string& f : files) seen += " " + f;
          return rows.size() == 1 && rows.front().id == catchup->id && files.size() == 1 &&
                 files.front() == fs::path(catchup->file).filename().string();
        },
        45s);
    if (!pruned) {
      fail("keep 1: not exactly one scheduled backup (the newest) and one file: " + seen);
    } else {
      if (auto row = op.Backup(ws, catchup->id); row) {
        const fs::path file = op.BackupsDir() / row->file;
        if (tmaster::crypto::Sha256Hex(ReadFile(file)) != row->sha256) fail("catch-up file's SHA-256");
        if (Mode(file) != 0600U || Mode(folder) != 0700U) fail("catch-up file or folder mode");
      }
      if (!HasEvent(op.Events(ws), "BackupPruned")) fail("no BackupPruned event");
    }
    const int stopped_again = op.Stop();
    if (stopped_again != 0) fail("SIGTERM ended the daemon with " + std::to_string(stopped_again));
  }

  static std::string DescribeCatalog(const Operator& op, const std::string& ws) {
    std::string out;
    for (const CatalogEntry& e : op.Catalog(ws)) {
      out += "\n  " + e.id + " " + e.kind + " " + e.state + " " + e.file + " " + e.reason;
    }
    return out;
  }

  std::mutex mutex_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  bool finished_ = false;
  std::vector<std::string> failures_;
  std::string notes_;
};

void StartScheduledScenario() { ScheduledScenario::Get().Begin(); }

}  // namespace

TEST_CASE("backups e2e: a backup restores to identical rows; safety backup; the role logs in") {
  Operator& op = Main();
  const std::string ws = "alpha";
  INFO("daemon:\n" << op.LogLines(ws));
  REQUIRE(op.WaitReady(ws));
  Seed(op, ws, 1);
  const std::string before = op.Checksum(ws);

  const std::string id = BackupNow(op, ws);
  REQUIRE(!id.empty());
  const std::optional<CatalogEntry> row = WaitVerified(op, ws, id);
  REQUIRE(row);
  CHECK(row->kind == "manual");
  CHECK_MESSAGE(row->state == "verified", row->reason);
  CHECK(row->file == ws + "/" + id + ".dump.enc");  // backups.encrypt: true
  CHECK(row->key_id.size() == 16);
  CHECK(row->table_rows.find("items") != std::string::npos);
  CheckFile(op, *row);
  // Encrypted at rest: the file is the encrypted format (docs/backups.md#the-encrypted-format).
  CHECK(ReadFile(op.BackupsDir() / row->file).rfind("TMBACKUP", 0) == 0);

  // The API lists the catalog as the store has it.
  ProcessResult r = op.Ctl({"backups", ws, "-o", "json"});
  REQUIRE_MESSAGE(r.exit_code == 0, Describe(r));
  const json::value listed = json::parse(r.out);
  bool found = false;
  for (const json::value& item : listed.at("items").as_array()) {
    if (item.at("id").as_string() != id) continue;
    found = true;
    CHECK(item.at("sha256").as_string() == row->sha256);
    CHECK(item.at("state").as_string() == "verified");
    CHECK(item.at("encrypted").as_bool());
  }
  CHECK(found);
  r = op.Ctl({"backups", ws});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find(id) != std::string::npos);

  Scramble(op, ws);
  REQUIRE(op.Checksum(ws) != before);

  const std::int64_t events_before = op.LastEventId();
  const std::int64_t restore_started = NowUnix();
  r = Restore(op, ws, id);
  INFO(Describe(r) << "\nevents:\n" << op.DescribeEvents(ws, events_before));
  REQUIRE(r.exit_code == 0);
  const std::string rid = RestoreIdOf(r, id);
  CHECK(!rid.empty());
  CHECK(op.Checksum(ws) == before);

  // A safety backup of the state it replaced, in the catalog, named by the restore.
  std::vector<CatalogEntry> safety;
  for (CatalogEntry& e : op.OfKind(ws, "safety")) {
    if (e.created >= restore_started - 1) safety.push_back(e);
  }
  REQUIRE(safety.size() == 1);
  CHECK(safety.front().state != "failed");
  CheckFile(op, safety.front());
  const json::value progress = op.Get("/api/v1/restores/" + rid);
  REQUIRE(progress.is_object());
  CHECK(progress.at("state").as_string() == "succeeded");
  CHECK(progress.at("safetyBackup").as_string() == safety.front().id);

  // The steps as events, in order; the workspace back, its role logging in.
  CHECK(Eventually(
      [&] {
        return InOrder(op.Events(ws, events_before),
                       {"RestoreStarted", "SafetyBackupTaken", "RestoreSuspended",
                        "RestoreResumed", "Restored"});
      },
      30s, kPoll));
  CHECK(Eventually([&] { return op.CanLogIn(ws); }, 60s, kPoll));
  CHECK(op.WaitReady(ws, 60s));
  CHECK(Eventually([&] { return op.Condition(ws, "Restored").rfind("True/RestoreSucceeded/", 0) == 0; },
                   30s, kPoll));
}

TEST_CASE("backups e2e: a restore while a client holds a session ends that session") {
  Operator& op = Main();
  const std::string ws = "bravo";
  INFO("daemon:\n" << op.LogLines(ws));
  REQUIRE(op.WaitReady(ws));
  REQUIRE(Eventually([&] { return op.CanLogIn(ws); }, 30s, kPoll));
  Seed(op, ws, 2);
  const std::string before = op.Checksum(ws);
  const std::string id = BackupNow(op, ws);
  REQUIRE(!id.empty());
  Scramble(op, ws);

  // An application's session, idle in a transaction that read `items` (it holds a lock the
  // restore's DROP TABLE needs).
  PgSession client(op.TenantDsn(ws));
  REQUIRE(client.Run("BEGIN") == "");
  REQUIRE(client.Run("SELECT count(*) FROM items") == "");

  const std::int64_t events_before = op.LastEventId();
  const auto started = SteadyClock::now();
  const ProcessResult r = Restore(op, ws, id);
  INFO(Describe(r) << "\nevents:\n" << op.DescribeEvents(ws, events_before));
  CHECK(r.exit_code == 0);
  std::cout << "backups_itest: restore with a client connected: "
            << std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - started)
                   .count()
            << " ms" << std::endl;
  CHECK(op.Checksum(ws) == before);
  CHECK(client.Run("SELECT 1") != "");  // its session was ended
  CHECK(Eventually([&] { return op.CanLogIn(ws); }, 60s, kPoll));
}

TEST_CASE("backups e2e: a corrupted file is refused by its checksum before anything is touched") {
  Operator& op = Main();
  const std::string ws = "charlie";
  INFO("daemon:\n" << op.LogLines(ws));
  REQUIRE(op.WaitReady(ws));
  Seed(op, ws, 3);
  const std::string id = BackupNow(op, ws);
  REQUIRE(!id.empty());
  // Verified first, so no verification of this file runs while it is changed.
  const std::optional<CatalogEntry> row = WaitVerified(op, ws, id);
  REQUIRE(row);
  REQUIRE(row->state == "verified");
  Scramble(op, ws);
  const std::string now = op.Checksum(ws);

  // One byte flipped in the middle.
  const fs::path file = op.BackupsDir() / row->file;
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    const auto middle = static_cast<std::streamoff>(fs::file_size(file) / 2);
    f.seekg(middle);
    char byte = 0;
    f.get(byte);
    f.seekp(middle);
    f.put(static_cast<char>(byte ^ 0x5a));
  }
  REQUIRE(tmaster::crypto::Sha256Hex(ReadFile(file)) != row->sha256);

  const std::size_t safety_before = op.OfKind(ws, "safety").size();
  const std::int64_t events_before = op.LastEventId();
  const ProcessResult r = Restore(op, ws, id);
  INFO(Describe(r) << "\nevents:\n" << op.DescribeEvents(ws, events_before));
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("checksum") != std::string::npos);
  const std::string rid = RestoreIdOf(r, id);
  REQUIRE(!rid.empty());
  const json::value progress = op.Get("/api/v1/restores/" + rid);
  REQUIRE(progress.is_object());
  CHECK(progress.at("state").as_string() == "failed");
  CHECK(std::string(progress.at("message").as_string()).find("checksum") != std::string::npos);
  CHECK(progress.at("step").as_string() == "checksum");

  // Nothing was touched: no safety backup, never suspended, the role open, the rows as they were.
  CHECK(Eventually([&] { return HasEvent(op.Events(ws, events_before), "RestoreFailed"); }, 10s,
                   kPoll));
  const std::vector<EventRow> events = op.Events(ws, events_before);
  CHECK_FALSE(HasEvent(events, "RestoreSuspended"));
  CHECK_FALSE(HasEvent(events, "SafetyBackupTaken"));
  CHECK(op.OfKind(ws, "safety").size() == safety_before);
  CHECK(op.RolCanLogin(ws) == "t");
  CHECK(op.Checksum(ws) == now);
  CHECK(Eventually(
      [&] { return op.Condition(ws, "Restored").rfind("False/RestoreFailed/restore " + rid, 0) == 0; },
      30s, kPoll));
}

TEST_CASE("backups e2e: --into copies one workspace's backup into another's database") {
  Operator& op = Main();
  INFO("daemon:\n" << op.LogLines("echo") << op.LogLines("foxtrot"));
  REQUIRE(op.WaitReady("echo"));
  REQUIRE(op.WaitReady("foxtrot"));
  Seed(op, "echo", 5);
  Seed(op, "foxtrot", 6);
  const std::string echo_rows = op.Checksum("echo");
  REQUIRE(op.Checksum("foxtrot") != echo_rows);
  const std::string id = BackupNow(op, "echo");
  REQUIRE(!id.empty());
  const std::size_t echo_safety = op.OfKind("echo", "safety").size();

  const ProcessResult r = Restore(op, "echo", id, "foxtrot");
  INFO(Describe(r) << "\nfoxtrot events:\n" << op.DescribeEvents("foxtrot"));
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find("into foxtrot") != std::string::npos);
  CHECK(op.Checksum("foxtrot") == echo_rows);
  // Restored as the target's own: foxtrot's role owns the tables.
  CHECK(QueryValue(op.pg().Dsn(DatabaseOf("foxtrot")),
                   "SELECT string_agg(DISTINCT tableowner, ',') FROM pg_tables "
                   "WHERE tablename IN ('items', 'notes')") == RoleOf("foxtrot"));
  // The safety backup is the target's; the source is untouched.
  CHECK(op.OfKind("foxtrot", "safety").size() == 1);
  CHECK(op.OfKind("echo", "safety").size() == echo_safety);
  CHECK(op.Checksum("echo") == echo_rows);
  CHECK(op.RolCanLogin("echo") == "t");
  CHECK_FALSE(HasEvent(op.Events("echo"), "RestoreSuspended"));
  CHECK(Eventually([&] { return op.CanLogIn("foxtrot"); }, 60s, kPoll));
}

TEST_CASE("backups e2e: a final backup before a Delete outlives the database") {
  Operator& op = Main();
  const std::string ws = "golf";
  INFO("daemon:\n" << op.LogLines(ws));
  REQUIRE(op.WaitReady(ws));
  Seed(op, ws, 7);
  op.RemoveFleet("workspaces/golf.yaml");
  REQUIRE(Eventually([&] { return !op.DatabaseExists(ws); }, 90s, kPoll));
  INFO("events:\n" << op.DescribeEvents(ws));
  const std::vector<CatalogEntry> finals = op.OfKind(ws, "final");
  REQUIRE(finals.size() == 1);
  CHECK(finals.front().state != "failed");
  CHECK(finals.front().table_rows.find("items") != std::string::npos);
  CheckFile(op, finals.front());
  // The API still lists it (keepAfterDelete: keep, the default).
  const ProcessResult r = op.Ctl({"backups", ws, "-o", "json"});
  CHECK_MESSAGE(r.exit_code == 0, Describe(r));
  CHECK(r.out.find(finals.front().id) != std::string::npos);
}

TEST_CASE("backups e2e: pg_dump killed midway leaves no file and no ok catalog entry") {
  Operator& op = Main();
  const std::string ws = "hotel";
  INFO("daemon:\n" << op.LogLines(ws));
  REQUIRE(op.WaitReady(ws));
  // A table big enough that the dump takes seconds.
  op.AsTenant(ws,
              "CREATE TABLE big (id bigint PRIMARY KEY, a text, b text);\n"
              "INSERT INTO big SELECT g, md5(g::text) || md5((g * 7)::text), "
              "md5((g * 13)::text) FROM generate_series(1, 600000) g;\n");
  const fs::path folder = op.BackupsDir() / ws;
  const auto files = [&] {
    std::vector<std::string> names;
    std::error_code error;
    for (const auto& f : fs::directory_iterator(folder, error)) {
      names.push_back(f.path().filename().string());
    }
    return names;
  };
  REQUIRE(files().empty());

  ProcessResult waited;
  std::thread ctl([&] { waited = op.Ctl({"backup", ws, "--wait", "--timeout", "3m"}); });
  // pg_dump of this database, the daemon's child, once it has written part of the file.
  std::vector<pid_t> dumps;
  const bool midway = Eventually(
      [&] {
        dumps = DescendantsRunning(op.daemon().pid(), "pg_dump", DatabaseOf(ws));
        if (dumps.empty()) return false;
        for (const std::string& name : files()) {
          std::error_code error;
          if (name.find(".partial") != std::string::npos &&
              fs::file_size(folder / name, error) > 0) {
            return true;
          }
        }
        return false;
      },
      90s, 5ms);
  for (const pid_t pid : dumps) ::kill(pid, SIGKILL);
  ctl.join();
  INFO(Describe(waited) << "\nevents:\n" << op.DescribeEvents(ws));
  REQUIRE(midway);
  const std::string id = Between(waited.out, "backup " + ws + "/", " queued");
  REQUIRE(!id.empty());
  CHECK(waited.exit_code == 1);

  // No file of any kind for it (the .partial removed), and no ok row: a failed one at most.
  CHECK(Eventually([&] { return files().empty(); }, 20s, kPoll));
  const std::optional<CatalogEntry> row = op.Backup(ws, id);
  if (row) {
    CHECK(row->state == "failed");
    CHECK(!row->reason.empty());
  }
  for (const CatalogEntry& e : op.Catalog(ws)) CHECK(e.state == "failed");
  CHECK(HasEvent(op.Events(ws), "BackupFailed"));
  // The workspace is not held up by a failed backup.
  CHECK(op.Phase(ws) == "Ready");
}

TEST_CASE("backups e2e: a backup before a migration; a failed one names it; a restore undoes "
          "a bad one") {
  Operator& op = Main();
  const std::string ws = "india";
  INFO("daemon:\n" << op.LogLines(ws));
  REQUIRE(op.WaitReady(ws));
  const std::int64_t seeded = NowUnix();
  Seed(op, ws, 9);
  const std::string good = op.Checksum(ws);
  // (id, name) only: a later fixed migration adds a column to items.
  const auto names = [&] {
    return QueryValue(op.pg().Dsn(DatabaseOf(ws)),
                      "SELECT md5(string_agg(id || ':' || name, ',' ORDER BY id)) FROM items");
  };
  const std::string good_names = names();

  // A bad migration that succeeds: it wipes the names.
  op.WriteFleet("migrations/migshop/0002_bad.sql", "UPDATE items SET name = 'lost';\n");
  const auto ledger = [&](const std::string& version) {
    return QueryValue(op.pg().Dsn(DatabaseOf(ws)),
                      "SELECT extract(epoch FROM applied_at)::bigint FROM "
                      "tenant_master.schema_migrations WHERE version = $1",
                      {version});
  };
  REQUIRE(Eventually([&] { return ledger("0002") != "<none>"; }, 60s, kPoll));
  REQUIRE(names() != good_names);
  std::vector<CatalogEntry> pre = op.OfKind(ws, "pre-migration");
  std::erase_if(pre, [&](const CatalogEntry& e) { return e.created < seeded - 1; });
  INFO("events:\n" << op.DescribeEvents(ws));
  REQUIRE(pre.size() == 1);
  const CatalogEntry before_bad = pre.front();
  CHECK(before_bad.state != "failed");
  CHECK(before_bad.created <= std::stoll(ledger("0002")));
  CheckFile(op, before_bad);
  CHECK(Eventually(
      [&] {
        for (const EventRow& e : op.Events(ws)) {
          if (e.reason == "BackupBeforeMigration" &&
              e.message.find(before_bad.id) != std::string::npos) {
            return true;
          }
        }
        return false;
      },
      10s, kPoll));

  // A migration that fails: its status and Warning event name the backup taken before it.
  op.WriteFleet("migrations/migshop/0003_fails.sql", "SELECT 1 / 0;\n");
  std::string failed_id;
  REQUIRE(Eventually(
      [&] {
        const std::string body = op.WorkspaceBody(ws);
        failed_id = Between(body, "(backup before the migration: ", ")");
        const std::string phase = op.Phase(ws);
        return (phase == "Stalled" || phase == "Degraded") && !failed_id.empty();
      },
      60s, kPoll));
  const std::optional<CatalogEntry> before_failed = op.Backup(ws, failed_id);
  REQUIRE(before_failed);
  CHECK(before_failed->kind == "pre-migration");
  CHECK(before_failed->id != before_bad.id);
  CHECK(Eventually(
      [&] {
        for (const EventRow& e : op.Events(ws)) {
          if (e.type == "Warning" &&
              e.message.find("(backup before the migration: " + failed_id + ")") !=
                  std::string::npos) {
            return true;
          }
        }
        return false;
      },
      10s, kPoll));
  std::cout << "backups_itest: pre-migration backups while 0003 fails: "
            << op.OfKind(ws, "pre-migration").size() << std::endl;

  // The product fixed (0002 harmless, 0003 working), then the backup before the bad migration
  // restored: the names come back and the fixed migrations are applied to the restored rows.
  // (Idempotent, in case a pass applies them before the restore replaces the database.)
  op.WriteFleet("migrations/migshop/0002_bad.sql",
                "ALTER TABLE items ADD COLUMN IF NOT EXISTS note text;\n");
  op.WriteFleet("migrations/migshop/0003_fails.sql",
                "CREATE TABLE IF NOT EXISTS tags (id int PRIMARY KEY);\n");
  const ProcessResult r = Restore(op, ws, before_bad.id);
  INFO(Describe(r));
  CHECK(r.exit_code == 0);
  CHECK(names() == good_names);
  CHECK(op.Checksum(ws, {"notes"}) == good.substr(good.find('/') + 1));
  CHECK(Eventually(
      [&] {
        return ledger("0003") != "<none>" &&
               QueryValue(op.pg().Dsn(DatabaseOf(ws)),
                          "SELECT count(*) FROM information_schema.columns WHERE "
                          "table_name = 'items' AND column_name = 'note'") == "1";
      },
      60s, kPoll));
  CHECK(names() == good_names);
  CHECK(op.WaitReady(ws, 60s));
}

TEST_CASE("backups e2e: a schedule missed while the daemon was down runs once; keep 1") {
  const auto [failures, notes] = ScheduledScenario::Get().Finish();
  INFO("notes:\n" << notes);
  for (const std::string& failure : failures) CHECK_MESSAGE(false, failure);
  CHECK(!notes.empty());
}
