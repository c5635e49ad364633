// End to end for dedicated workspaces: the built tenant-operator against the built portainer-sim
// and a private PostgreSQL. Create, a no-op pass with zero writes, drift repaired, suspend and
// resume, a version roll, and the faults of issue 4: a create that times out after Portainer
// stored the stack, 500s, an endpoint down, a foreign stack holding the name. And the stack
// ledger on by default (issue 9): a stack whose Env was wiped by hand is repaired, by `--once`
// (ledger in the state folder) and by the daemon across a restart (ledger in the store).
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/text.hpp"
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
using tmaster::tools::portainer_sim::SimProcess;

const std::string kOperator = std::string(TM_BINARY_DIR) + "/tenant-operator";
const std::string kTenantctl = std::string(TM_BINARY_DIR) + "/tenantctl";
const std::string kExamples = std::string(TM_SOURCE_DIR) + "/examples/fleet";
const std::string kApiKey = "ptr_e2eStacksKey0123456789abcdefghijklmnopqrstu";
const std::string kMasterKey = "e2e-stacks-master-key-0123456789abcdef012345";

/// A fleet with the examples' products and the workspaces given, on its own folder.
class Fleet {
 public:
  Fleet() {
    fs::copy(kExamples + "/products.yaml", dir_.path() / "products.yaml");
    fs::copy(kExamples + "/stacks", dir_.path() / "stacks", fs::copy_options::recursive);
    fs::copy(kExamples + "/migrations", dir_.path() / "migrations", fs::copy_options::recursive);
  }
  /// A dedicated erp workspace; `spec_extra` and `dedicated_extra` are YAML lines added to
  /// `spec:` and `spec.dedicated:`.
  void Workspace(const std::string& name, int endpoint, const std::string& spec_extra = "",
                 const std::string& dedicated_extra = "") {
    dir_.Write("workspaces/" + name + ".yaml",
               "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: " +
                   name + "\nspec:\n  product: erp\n  mode: dedicated\n" + spec_extra +
                   "  dedicated:\n" +
                   // endpoint 0: omitted, the stack is placed (docs/placement.md#endpoints)
                   (endpoint == 0 ? std::string()
                                  : "    endpoint: " + std::to_string(endpoint) + "\n") +
                   "    env: {LANGUAGE_CODE: es}\n" + dedicated_extra);
  }
  [[nodiscard]] std::string path() const { return dir_.path().string(); }

 private:
  TempDir dir_;
};

struct World {
  PgServer& pg = PgServer::Shared();
  SimProcess sim{{.binary = std::string(TM_BINARY_DIR) + "/portainer-sim",
                  .args = {"--api-key-env", "E2E_PORTAINER_KEY", "--endpoints", "2"},
                  .env = {{"E2E_PORTAINER_KEY", kApiKey}}}};
  TempDir dir;
  Fleet fleet;
  std::string config;

  /// `ledger_file`: the config sets `stacks.ledgerFile`; without it the ledger's default place
  /// applies (the state folder for `--once`, the store for the daemon).
  /// `stacks_extra`: YAML lines added under `stacks:` (e.g. `endpoints`).
  explicit World(bool ledger_file = true, const std::string& stacks_extra = "") {
    config = dir.Write("operator.yaml",
                       "baseDomain: example.test\n"
                       "masterKeyEnv: E2E_MASTER_KEY\n"
                       "clusters:\n"
                       "  - name: default\n"
                       "    dsnEnv: E2E_PG_DSN\n"
                       "    stacksHost: postgres.internal\n"
                       "sources:\n"
                       "  - name: fleet\n"
                       "    directory: " + fleet.path() + "\n"
                       "stacks:\n"
                       "  backend: portainer\n"
                       "  portainer: {url: \"" + sim.BaseUrl() + "\", apiKeyEnv: E2E_PORTAINER_KEY}\n" +
                       (ledger_file ? "  ledgerFile: " + (dir.path() / "ledger").string() + "\n"
                                    : std::string()) +
                       "  edgeNetwork: edge\n"
                       "  certResolver: le\n" + stacks_extra +
                       "store: {dsnEnv: E2E_STORE_DSN}\n"
                       // The examples' erp runs a shared runtime on endpoint 1, which mounts it.
                       "bindings: {dir: " + (dir.path() / "bindings").string() + "}\n"
                       "http: {listen: \"127.0.0.1:0\"}\n");
  }

  /// The state folder every run of this world is given (--state-dir).
  [[nodiscard]] fs::path StateDir() const { return dir.path() / "state"; }

  ProcessResult Once(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {kOperator,    "--config", config,
                                     "--once",     "--state-dir", StateDir().string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    ProcessResult r = RunProcess(argv,
                                 {{"E2E_MASTER_KEY", kMasterKey},
                                  {"E2E_PG_DSN", pg.Dsn()},
                                  {"E2E_STORE_DSN", pg.Dsn("tm_store_once")},
                                  {"E2E_PORTAINER_KEY", kApiKey}});
    // Secrets never reach the output.
    CHECK(r.out.find(kApiKey) == std::string::npos);
    CHECK(r.err.find(kApiKey) == std::string::npos);
    return r;
  }

  json::value Sim(const std::string& method, const std::string& path,
                  const std::string& body = "") {
    const std::map<std::string, std::string> headers =
        method == "GET" ? std::map<std::string, std::string>{}
                        : std::map<std::string, std::string>{{"Content-Type", "application/json"}};
    const HttpResponse r = HttpRequest(sim.port(), method, path, headers, body);
    INFO(r.error);
    REQUIRE(r.status != 0);
    REQUIRE(r.status < 300);
    return r.body.empty() ? json::value() : json::parse(r.body);
  }
  json::object State() { return Sim("GET", "/__sim/state").as_object(); }

  /// The sim's stack named `name`, or null.
  json::object Stack(const std::string& name) {
    const json::object state = State();
    for (const auto& s : state.at("stacks").as_array()) {
      if (s.at("Name").as_string() == name) return s.as_object();
    }
    return {};
  }
  int StackCount(const std::string& name) {
    int n = 0;
    const json::object state = State();
    for (const auto& s : state.at("stacks").as_array()) n += s.at("Name").as_string() == name;
    return n;
  }
  std::int64_t Requests() { return State().at("totalRequests").as_int64(); }

  /// What a person does in Portainer's UI: the stack saved again with its Env emptied (the
  /// file kept), through the API (PUT /api/stacks/{id}, /work/shared/contracts/portainer-api.md
  /// 3.6). The marker TM_WORKSPACE goes with it; Portainer moves UpdateDate.
  void WipeEnv(const json::object& stack) {
    const std::string path = "/api/stacks/" + std::to_string(stack.at("Id").as_int64()) +
                             "?endpointId=" + std::to_string(stack.at("EndpointId").as_int64());
    json::object body;
    body["StackFileContent"] = stack.at("StackFileContent");
    body["Env"] = json::array();
    body["Prune"] = false;
    body["PullImage"] = false;
    const HttpResponse r =
        HttpRequest(sim.port(), "PUT", path,
                    {{"X-API-Key", kApiKey}, {"Content-Type", "application/json"}},
                    json::serialize(body));
    INFO(r.error << " " << r.body);
    REQUIRE(r.status == 200);
  }

  /// The daemon on this world's config, its store in database `store_db`.
  std::unique_ptr<DaemonProcess> StartDaemon(const std::string& store_db, int n) {
    auto daemon = std::make_unique<DaemonProcess>(DaemonProcess::Options{
        .argv = {kOperator, "--config", config, "--state-dir", StateDir().string()},
        .env = {{"E2E_MASTER_KEY", kMasterKey},
                {"E2E_PG_DSN", pg.Dsn()},
                {"E2E_STORE_DSN", pg.Dsn(store_db)},
                {"E2E_PORTAINER_KEY", kApiKey}},
        .log_file = (dir.path() / ("daemon-" + std::to_string(n) + ".log")).string()});
    REQUIRE(daemon->WaitForHttpPort() != 0);
    return daemon;
  }
  /// Requests of `route` (a key of the sim's counters) so far.
  std::int64_t Count(const std::string& route) {
    const json::object state = State();
    const json::object& counters = state.at("counters").as_object();
    const auto it = counters.find(route);
    return it == counters.end() ? 0 : it->value().as_int64();
  }
};

std::string EnvValue(const json::object& stack, const std::string& name) {
  if (stack.at("Env").is_null()) return "<null>";
  for (const auto& pair : stack.at("Env").as_array()) {
    if (pair.at("name").as_string() == name) return std::string(pair.at("value").as_string());
  }
  return "<missing>";
}

std::string LineOf(const std::string& out, const std::string& workspace) {
  return LineStartingWith(out, workspace + " ");
}

/// The files of `folder` (names) and when each was last written; empty when it does not exist.
std::map<std::string, fs::file_time_type> Files(const fs::path& folder) {
  std::map<std::string, fs::file_time_type> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(folder, ec)) {
    files[entry.path().filename().string()] = entry.last_write_time();
  }
  return files;
}

/// `status.phase` and `status.lastError` of `workspace` in the daemon's API ("" when absent).
std::pair<std::string, std::string> PhaseOf(int port, const std::string& workspace) {
  const HttpResponse r = HttpGet(port, "/api/v1/workspaces/" + workspace);
  if (r.status != 200) return {};
  boost::system::error_code error;
  const json::value root = json::parse(r.body, error);
  if (error || !root.is_object()) return {};
  const json::value* status = root.as_object().if_contains("status");
  if (status == nullptr || !status->is_object()) return {};
  auto text = [&](const char* key) {
    const json::value* v = status->as_object().if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
  };
  return {text("phase"), text("lastError")};
}

/// `tenantctl get endpoints -o json` against the daemon on `port`: the items by id (empty when it
/// fails). The API key is in neither output.
std::map<std::int64_t, json::object> CtlEndpoints(int port, const fs::path& home) {
  const ProcessResult r =
      RunProcess({kTenantctl, "get", "endpoints", "-o", "json"},
                 {{"TENANTCTL_SERVER", "http://127.0.0.1:" + std::to_string(port)},
                  {"TENANTCTL_TOKEN", ""},
                  {"HOME", home.string()},
                  {"XDG_CONFIG_HOME", (home / "xdg").string()}});
  CHECK(r.out.find(kApiKey) == std::string::npos);
  CHECK(r.err.find(kApiKey) == std::string::npos);
  std::map<std::int64_t, json::object> out;
  if (r.exit_code != 0) return out;
  boost::system::error_code error;
  const json::value root = json::parse(r.out, error);
  if (error || !root.is_object() || !root.as_object().contains("items")) return out;
  for (const json::value& item : root.at("items").as_array()) {
    out[item.at("id").as_int64()] = item.as_object();
  }
  return out;
}

}  // namespace

TEST_CASE("stacks e2e: create, a no-op pass with zero writes and zero file reads, drift repaired") {
  World w;
  w.fleet.Workspace("pa-one", 1);
  w.fleet.Workspace("pa-two", 2);

  const ProcessResult first = w.Once();
  CAPTURE(first.out);
  CAPTURE(first.err);
  REQUIRE(first.exit_code == 0);
  json::object one = w.Stack("tm-pa-one");
  REQUIRE_FALSE(one.empty());
  CHECK(one.at("EndpointId").as_int64() == 1);
  CHECK(w.Stack("tm-pa-two").at("EndpointId").as_int64() == 2);
  CHECK(one.at("Running").as_bool());
  CHECK(EnvValue(one, "TM_WORKSPACE") == "pa-one");
  CHECK(EnvValue(one, "TM_HOST") == "pa-one.example.test");
  CHECK(EnvValue(one, "DB_HOST") == "postgres.internal");
  CHECK(EnvValue(one, "DB_NAME") == "tenant_pa_one");
  CHECK(EnvValue(one, "LANGUAGE_CODE") == "es");
  const std::string password = EnvValue(one, "DB_PASSWORD");
  CHECK(password.size() == 43);
  CHECK(first.out.find(password) == std::string::npos);
  const std::string file = std::string(one.at("StackFileContent").as_string());
  CHECK(file.find("Host(`pa-one.example.test`)") != std::string::npos);
  // The stack's password is the role's: the tenant role logs in with it.
  CHECK(ConnectError(w.pg.DsnAs("user_pa_one", password, "tenant_pa_one")).empty());
  // The examples' erp shared runtime, on endpoint 1: its bindings mounted, no database secret.
  const json::object runtime = w.Stack("tm-shared-erp");
  REQUIRE_FALSE(runtime.empty());
  CHECK(runtime.at("EndpointId").as_int64() == 1);
  CHECK(EnvValue(runtime, "TM_PRODUCT") == "erp");
  CHECK(EnvValue(runtime, "TM_WORKSPACE") == "<missing>");
  CHECK(EnvValue(runtime, "DB_PASSWORD") == "<missing>");
  CHECK(std::string(runtime.at("StackFileContent").as_string())
            .find((w.dir.path() / "bindings" / "erp").string() + ":/bindings:ro") !=
        std::string::npos);
  CHECK(first.out.find("1 shared runtimes, 1 ready") != std::string::npos);

  // No-op: one list call per endpoint for the workspaces and one per endpoint for the shared
  // runtimes (endpoint 1: the erp runtime; 2: where a stale one would be looked for), no file
  // read, no write. Plus, since each run is a new process, one probe per endpoint for its
  // kind (both standalone here).
  const std::int64_t lists = w.Count("GET /api/stacks");
  const std::int64_t probes = w.Count("GET /api/endpoints/{id}/docker/{rest*}");
  const std::int64_t before = w.Requests();
  const ProcessResult second = w.Once();
  CAPTURE(second.out);
  CHECK(second.exit_code == 0);
  CHECK(LineOf(second.out, "pa-one").find(" UpToDate ") != std::string::npos);
  CHECK(LineOf(second.out, "erp").find(" Ready  UpToDate ") != std::string::npos);
  CHECK(w.Requests() - before == 6);
  CHECK(w.Count("GET /api/stacks") - lists == 4);
  CHECK(w.Count("GET /api/endpoints/{id}/docker/{rest*}") - probes == 2);
  CHECK(w.Count("GET /api/stacks/{id}/file") == 0);

  const std::string id = std::to_string(one.at("Id").as_int64());
  SUBCASE("file edited in Portainer") {
    w.Sim("POST", "/__sim/stacks/" + id + "/drift",
          R"({"StackFileContent": "services: {app: {image: evil}}", "Env": )" +
              json::serialize(one.at("Env")) + "}");
    const ProcessResult r = w.Once();
    CAPTURE(r.out);
    CHECK(r.exit_code == 0);
    CHECK(w.Stack("tm-pa-one").at("StackFileContent").as_string() == file);
  }
  SUBCASE("Env wiped in Portainer") {
    w.Sim("POST", "/__sim/stacks/" + id + "/drift",
          R"({"StackFileContent": )" + json::serialize(json::value(file)) + R"(, "Env": null})");
    CHECK(w.Once().exit_code == 0);
    CHECK(EnvValue(w.Stack("tm-pa-one"), "DB_PASSWORD") == password);
  }
  SUBCASE("stopped by hand") {
    w.Sim("POST", "/__sim/stacks/" + id + "/drift", R"({"stop": true, "Status": 2})");
    CHECK(w.Once().exit_code == 0);
    CHECK(w.Stack("tm-pa-one").at("Running").as_bool());
    CHECK(w.Stack("tm-pa-one").at("Status").as_int64() == 1);
  }
  SUBCASE("deleted by hand") {
    w.Sim("POST", "/__sim/stacks/" + id + "/drift", R"({"delete": true})");
    CHECK(w.Once().exit_code == 0);
    CHECK(w.StackCount("tm-pa-one") == 1);
    CHECK(w.Stack("tm-pa-one").at("Id").as_int64() != one.at("Id").as_int64());
  }
}

TEST_CASE("stacks e2e: suspend stops the stack, resume starts it, a version bump rolls it") {
  World w;
  w.fleet.Workspace("pb-one", 1);
  REQUIRE(w.Once().exit_code == 0);

  w.fleet.Workspace("pb-one", 1, "  suspend: true\n");
  const ProcessResult suspended = w.Once();
  CAPTURE(suspended.out);
  CHECK(suspended.exit_code == 0);
  CHECK(LineOf(suspended.out, "pb-one").find(" Suspended ") != std::string::npos);
  CHECK(w.Stack("tm-pb-one").at("Status").as_int64() == 2);
  CHECK_FALSE(w.Stack("tm-pb-one").at("Running").as_bool());

  w.fleet.Workspace("pb-one", 1);
  CHECK(w.Once().exit_code == 0);
  CHECK(w.Stack("tm-pb-one").at("Status").as_int64() == 1);
  CHECK(w.Stack("tm-pb-one").at("Running").as_bool());

  w.fleet.Workspace("pb-one", 1, "", "    version: \"9.9.9\"\n");
  CHECK(w.Once().exit_code == 0);
  CHECK(EnvValue(w.Stack("tm-pb-one"), "TM_VERSION") == "9.9.9");
  CHECK(w.StackCount("tm-pb-one") == 1);
}

TEST_CASE("stacks e2e: a create that times out after Portainer stored it ends with one stack") {
  World w;
  w.fleet.Workspace("pc-one", 1);
  // The first create is stored, then answered after the client's read timeout (10 s default):
  // 15 s. The client re-lists and adopts instead of creating again.
  w.Sim("POST", "/__sim/faults",
        R"({"route": "POST /api/stacks/create/{type}/{method}", "action": "timeout", "delayMs": 15000})");
  const ProcessResult r = w.Once();
  CAPTURE(r.out);
  CHECK(r.exit_code == 0);
  CHECK(w.StackCount("tm-pc-one") == 1);
  // One create for tm-pc-one, one for the erp shared runtime (after the workspaces).
  CHECK(w.StackCount("tm-shared-erp") == 1);
  CHECK(w.Count("POST /api/stacks/create/{type}/{method}") == 2);
}

TEST_CASE("stacks e2e: 500s back off and recover; an endpoint down stalls only its workspaces") {
  World w;
  w.fleet.Workspace("pd-one", 1);
  w.fleet.Workspace("pd-two", 2);
  w.Sim("POST", "/__sim/faults",
        R"({"route": "POST /api/stacks/create/{type}/{method}", "times": 2, "action": "fail", "status": 500})");
  w.Sim("POST", "/__sim/endpoints/2/down");
  const ProcessResult r = w.Once();
  CAPTURE(r.out);
  CHECK(r.exit_code == 1);
  CHECK(LineOf(r.out, "pd-one").find(" Ready ") != std::string::npos);
  CHECK(LineOf(r.out, "pd-two").find(" Degraded ") != std::string::npos);
  CHECK(w.StackCount("tm-pd-one") == 1);
  CHECK(w.StackCount("tm-pd-two") == 0);

  w.Sim("POST", "/__sim/endpoints/2/up");
  CHECK(w.Once().exit_code == 0);
  CHECK(w.StackCount("tm-pd-two") == 1);
}

TEST_CASE("stacks e2e: a foreign stack holding the name is a conflict and is left alone") {
  World w;
  w.fleet.Workspace("pe-one", 1);
  const HttpResponse created = HttpRequest(
      w.sim.port(), "POST", "/api/stacks/create/standalone/string?endpointId=1",
      {{"X-API-Key", kApiKey}, {"Content-Type", "application/json"}},
      R"({"Name": "tm-pe-one", "StackFileContent": "services: {web: {image: nginx}}", "Env": [{"name": "OWNER", "value": "someone-else"}]})");
  INFO(created.error);
  REQUIRE(created.status == 200);
  const ProcessResult r = w.Once();
  CAPTURE(r.out);
  CHECK(r.exit_code == 1);
  const std::string line = LineOf(r.out, "pe-one");
  CHECK(line.find(" Stalled ") != std::string::npos);
  CHECK(line.find("StackConflict") != std::string::npos);
  const json::object stack = w.Stack("tm-pe-one");
  CHECK(EnvValue(stack, "OWNER") == "someone-else");
  CHECK(stack.at("StackFileContent").as_string() == "services: {web: {image: nginx}}");
}

TEST_CASE("stacks e2e: a removed workspace's stack is deleted, within the deletion guard") {
  World w;
  for (const char* name : {"pf-one", "pf-two", "pf-three", "pf-four", "pf-five"}) {
    w.fleet.Workspace(name, 1);
  }
  REQUIRE(w.Once().exit_code == 0);
  const fs::path workspaces = fs::path(w.fleet.path()) / "workspaces";

  SUBCASE("an invalid manifest deletes nothing") {
    std::ofstream(workspaces / "pf-one.yaml") << "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\n"
                                                "metadata: {name: pf-one}\nspec: {product: erp, mode: bogus}\n";
    fs::remove(workspaces / "pf-two.yaml");
    const ProcessResult r = w.Once();
    CAPTURE(r.out);
    CHECK(r.exit_code == 1);
    CHECK(w.StackCount("tm-pf-one") == 1);
    CHECK(w.StackCount("tm-pf-two") == 1);
    CHECK(r.out.find("deleted:") == std::string::npos);
  }
  SUBCASE("one removed: its stack goes, its database stays (Retain)") {
    fs::remove(workspaces / "pf-two.yaml");
    const ProcessResult r = w.Once();
    CAPTURE(r.out);
    CHECK(r.exit_code == 0);
    CHECK(w.StackCount("tm-pf-two") == 0);
    CHECK(w.StackCount("tm-pf-one") == 1);
    CHECK(r.out.find("deleted: delete stack \"tm-pf-two\"") != std::string::npos);
    CHECK(r.out.find("orphan: database \"tenant_pf_two\"") != std::string::npos);
    CHECK(QueryValue(w.pg.Dsn(), "SELECT count(*) FROM pg_database WHERE datname = 'tenant_pf_two'") == "1");
  }
  SUBCASE("four removed at once: over maxDeletionsPerSync (3), nothing deleted") {
    for (const char* name : {"pf-two", "pf-three", "pf-four", "pf-five"}) {
      fs::remove(workspaces / (std::string(name) + ".yaml"));
    }
    const ProcessResult r = w.Once();
    CAPTURE(r.out);
    CHECK(r.exit_code == 1);
    CHECK(r.out.find("not deleted: DeletionGuard") != std::string::npos);
    for (const char* name : {"tm-pf-two", "tm-pf-three", "tm-pf-four", "tm-pf-five"}) {
      CHECK(w.StackCount(name) == 1);
    }
  }
}

TEST_CASE("stacks e2e: --once's ledger in the state folder: an Env wiped by hand is repaired") {
  World w(/*ledger_file=*/false);
  w.fleet.Workspace("pg-one", 1);

  // A dry run before anything: it plans a create, and writes no ledger (nor the state folder).
  const ProcessResult dry = w.Once({"--dry-run"});
  CAPTURE(dry.out);
  CAPTURE(dry.err);
  CHECK(w.StackCount("tm-pg-one") == 0);
  CHECK_FALSE(fs::exists(w.StateDir()));

  const ProcessResult first = w.Once();
  CAPTURE(first.out);
  CAPTURE(first.err);
  REQUIRE(first.exit_code == 0);
  const json::object created = w.Stack("tm-pg-one");
  REQUIRE_FALSE(created.empty());
  REQUIRE(EnvValue(created, "TM_WORKSPACE") == "pg-one");

  // A no-op pass reads no stack file: the ledger vouches for it.
  const ProcessResult second = w.Once();
  CHECK(second.exit_code == 0);
  CHECK(w.Count("GET /api/stacks/{id}/file") == 0);

  w.WipeEnv(created);
  REQUIRE(EnvValue(w.Stack("tm-pg-one"), "TM_WORKSPACE") == "<missing>");
  // A dry run sees the repair it would make, and changes nothing (the ledger file included).
  const std::map<std::string, fs::file_time_type> state_before = Files(w.StateDir());
  const ProcessResult dry_again = w.Once({"--dry-run"});
  CAPTURE(dry_again.out);
  CHECK(dry_again.out.find("StackConflict") == std::string::npos);
  CHECK(EnvValue(w.Stack("tm-pg-one"), "TM_WORKSPACE") == "<missing>");
  CHECK(Files(w.StateDir()) == state_before);

  const ProcessResult repaired = w.Once();
  CAPTURE(repaired.out);
  CAPTURE(repaired.err);
  CHECK(repaired.exit_code == 0);
  CHECK(repaired.out.find("StackConflict") == std::string::npos);
  CHECK(LineOf(repaired.out, "pg-one").find(" Ready ") != std::string::npos);
  const json::object after = w.Stack("tm-pg-one");
  CHECK(after.at("Id").as_int64() == created.at("Id").as_int64());
  CHECK(EnvValue(after, "TM_WORKSPACE") == "pg-one");
  CHECK(EnvValue(after, "DB_PASSWORD") == EnvValue(created, "DB_PASSWORD"));
  CHECK(w.StackCount("tm-pg-one") == 1);

  // One ledger file, private, in the private state folder.
  const std::map<std::string, fs::file_time_type> state = Files(w.StateDir());
  REQUIRE(state.size() == 1);
  const fs::path ledger = w.StateDir() / state.begin()->first;
  CHECK(ledger.filename().string().rfind("stack-ledger-", 0) == 0);
  CHECK((fs::status(ledger).permissions() & fs::perms::all) ==
        (fs::perms::owner_read | fs::perms::owner_write));
  CHECK((fs::status(w.StateDir()).permissions() & fs::perms::all) == fs::perms::owner_all);
}

TEST_CASE("stacks e2e: the daemon's ledger in the store: an Env wiped while down is repaired") {
  World w(/*ledger_file=*/false);
  w.fleet.Workspace("ph-one", 1);
  const std::string store_db = "tm_store_stack_ledger";
  (void)QueryValue(w.pg.Dsn("postgres"), "DROP DATABASE IF EXISTS " + store_db + " WITH (FORCE)");

  json::object created;
  {
    auto daemon = w.StartDaemon(store_db, 1);
    const int port = daemon->WaitForHttpPort();
    INFO("log:\n" << daemon->Log());
    REQUIRE(Eventually(
        [&] {
          created = w.Stack("tm-ph-one");
          return !created.empty() && EnvValue(created, "TM_WORKSPACE") == "ph-one" &&
                 PhaseOf(port, "ph-one").first == "Ready";
        },
        std::chrono::seconds(60), std::chrono::milliseconds(200)));
    // The ledger's row is in the store, for this stack.
    CHECK(QueryValue(w.pg.Dsn(store_db),
                     "SELECT stack_id FROM tm_stack_ledger WHERE workspace = 'ph-one'") ==
          std::to_string(created.at("Id").as_int64()));
    REQUIRE(daemon->Terminate() == 0);
  }

  w.WipeEnv(created);
  REQUIRE(EnvValue(w.Stack("tm-ph-one"), "TM_WORKSPACE") == "<missing>");

  auto daemon = w.StartDaemon(store_db, 2);
  const int port = daemon->WaitForHttpPort();
  INFO("log:\n" << daemon->Log());
  CHECK(Eventually([&] { return EnvValue(w.Stack("tm-ph-one"), "TM_WORKSPACE") == "ph-one"; },
                   std::chrono::seconds(60), std::chrono::milliseconds(200)));
  const std::pair<std::string, std::string> ready{"Ready", ""};
  CHECK(Eventually([&] { return PhaseOf(port, "ph-one") == ready; }, std::chrono::seconds(30),
                   std::chrono::milliseconds(200)));
  const json::object after = w.Stack("tm-ph-one");
  CHECK(after.at("Id").as_int64() == created.at("Id").as_int64());
  CHECK(EnvValue(after, "DB_PASSWORD") == EnvValue(created, "DB_PASSWORD"));
  CHECK(w.StackCount("tm-ph-one") == 1);
  CHECK(daemon->Log().find("StackConflict") == std::string::npos);
  CHECK(daemon->Terminate() == 0);
}

// Issue 10: one standalone endpoint (1) and one swarm manager (3) in one fleet. The swarm stack is
// created with /create/swarm/string and the cluster's SwarmID, listed with the SwarmID filter,
// repaired after drift, updated, and deleted with the workspace; each proven by the requests the
// simulator received.
TEST_CASE("stacks e2e: standalone and swarm endpoints in one fleet, drift and deletion on swarm") {
  World w;
  const std::string cluster = "e2e-swarm-cluster";
  w.Sim("POST", "/__sim/endpoints",
        R"({"Id": 3, "Name": "swarm", "Type": 2, "URL": "tcp://tasks.agent:9001", "SwarmId": ")" +
            cluster + R"("})");
  w.fleet.Workspace("ps-one", 1);
  w.fleet.Workspace("ps-swarm", 3);
  // Stays on the swarm endpoint: `--once` lists only the endpoints its declared workspaces use,
  // so the removal of ps-swarm below is seen through this one's list of endpoint 3.
  w.fleet.Workspace("ps-stay", 3);

  /// Requests since the log position `from`, as "METHOD path?query" lines.
  const auto requests_since = [&](std::size_t from) {
    const json::object state = w.State();
    std::vector<std::pair<std::int64_t, std::string>> numbered;
    for (const auto& item : state.at("requests").as_array()) {
      const json::object& e = item.as_object();
      numbered.emplace_back(e.at("seq").as_int64(), std::string(e.at("method").as_string()) + " " +
                                                        std::string(e.at("path").as_string()) +
                                                        "?" +
                                                        std::string(e.at("query").as_string()));
    }
    std::sort(numbered.begin(), numbered.end());
    std::vector<std::string> out;
    for (std::size_t i = from; i < numbered.size(); ++i) out.push_back(numbered[i].second);
    return out;
  };
  const auto has = [](const std::vector<std::string>& lines, const std::string& line) {
    return std::find(lines.begin(), lines.end(), line) != lines.end();
  };
  const auto writes_in = [](const std::vector<std::string>& lines) {
    std::vector<std::string> out;
    for (const auto& line : lines) {
      if (line.rfind("GET ", 0) != 0) out.push_back(line);
    }
    return out;
  };
  const std::string swarm_list =
      "GET /api/stacks?filters=" +
      tmaster::PercentEncode(R"({"EndpointID":3,"SwarmID":")" + cluster + R"("})");

  const ProcessResult first = w.Once();
  CAPTURE(first.out);
  CAPTURE(first.err);
  REQUIRE(first.exit_code == 0);
  CHECK(LineOf(first.out, "ps-swarm").find(" Ready ") != std::string::npos);
  const json::object swarm = w.Stack("tm-ps-swarm");
  REQUIRE_FALSE(swarm.empty());
  CHECK(swarm.at("Type").as_int64() == 1);
  CHECK(swarm.at("SwarmId").as_string() == cluster);
  CHECK(swarm.at("EndpointId").as_int64() == 3);
  CHECK(swarm.at("Running").as_bool());
  CHECK(EnvValue(swarm, "TM_WORKSPACE") == "ps-swarm");
  const std::string file = std::string(swarm.at("StackFileContent").as_string());
  CHECK(file.find("Host(`ps-swarm.example.test`)") != std::string::npos);
  // One file for both kinds (docs/stacks.md#one-file-for-both-kinds): the examples' erp template
  // says `env_file: stack.env`, which `docker stack deploy` cannot open (the simulator refuses
  // it as Docker does), so the rendered file has ${NAME} entries instead, and the routing labels
  // are also where Traefik's swarm provider reads them.
  CHECK(file.find("env_file") == std::string::npos);
  CHECK(file.find("stack.env") == std::string::npos);
  CHECK(file.find("    deploy:\n      labels:\n") != std::string::npos);
  CHECK(file.find("        traefik.http.routers.tm-ps-swarm.rule: "
                  "\"Host(`ps-swarm.example.test`)\"\n") != std::string::npos);
  CHECK(file.find("        traefik.swarm.network: \"edge\"\n") != std::string::npos);
  CHECK(file.find("        traefik.http.services.tm-ps-swarm.loadbalancer.server.port: ") !=
        std::string::npos);
  CHECK(file.find("      DB_PASSWORD: \"${DB_PASSWORD}\"\n") != std::string::npos);
  CHECK(file.find("      LANGUAGE_CODE: \"${LANGUAGE_CODE}\"\n") != std::string::npos);
  const std::string password = EnvValue(swarm, "DB_PASSWORD");
  REQUIRE(password.size() >= 16);
  CHECK(file.find(password) == std::string::npos);  // values stay in the Env
  const json::object standalone = w.Stack("tm-ps-one");
  REQUIRE_FALSE(standalone.empty());
  CHECK(standalone.at("Type").as_int64() == 2);
  CHECK(standalone.at("SwarmId").as_string() == "");
  CHECK(standalone.at("Running").as_bool());
  // The standalone stack's file is the same rendering: nothing depends on the endpoint's kind.
  std::string as_swarm = std::string(standalone.at("StackFileContent").as_string());
  for (std::size_t at = as_swarm.find("ps-one"); at != std::string::npos;
       at = as_swarm.find("ps-one", at)) {
    as_swarm.replace(at, 6, "ps-swarm");
  }
  CHECK(as_swarm == file);
  const std::vector<std::string> created = requests_since(0);
  CHECK(has(created, "GET /api/endpoints/3/docker/swarm?"));
  CHECK(has(created, swarm_list));
  CHECK(has(created, "POST /api/stacks/create/swarm/string?endpointId=3"));
  CHECK(has(created, "POST /api/stacks/create/standalone/string?endpointId=1"));
  CHECK_FALSE(has(created, "POST /api/stacks/create/swarm/string?endpointId=1"));
  CHECK_FALSE(has(created, "POST /api/stacks/create/standalone/string?endpointId=3"));

  // A no-op pass: lists (the swarm one with its SwarmID) and probes, no file read, no write.
  std::size_t mark = requests_since(0).size();
  REQUIRE(w.Once().exit_code == 0);
  std::vector<std::string> noop = requests_since(mark);
  CHECK(writes_in(noop).empty());
  CHECK(has(noop, swarm_list));
  CHECK(w.Count("GET /api/stacks/{id}/file") == 0);

  const std::string id = std::to_string(swarm.at("Id").as_int64());
  const std::string put = "PUT /api/stacks/" + id + "?endpointId=3";

  // Drift on swarm: the file edited in Portainer is written back, on the stack's endpoint.
  w.Sim("POST", "/__sim/stacks/" + id + "/drift",
        R"({"StackFileContent": "services: {app: {image: evil}}", "Env": )" +
            json::serialize(swarm.at("Env")) + "}");
  mark = requests_since(0).size();
  REQUIRE(w.Once().exit_code == 0);
  CHECK(w.Stack("tm-ps-swarm").at("StackFileContent").as_string() == file);
  CHECK(writes_in(requests_since(mark)) == std::vector<std::string>{put});

  // Stopped by hand (`docker stack rm`, Portainer's Status 2): started again.
  w.Sim("POST", "/__sim/stacks/" + id + "/drift", R"({"stop": true, "Status": 2})");
  mark = requests_since(0).size();
  REQUIRE(w.Once().exit_code == 0);
  CHECK(w.Stack("tm-ps-swarm").at("Running").as_bool());
  CHECK(w.Stack("tm-ps-swarm").at("Status").as_int64() == 1);
  CHECK(writes_in(requests_since(mark)) ==
        std::vector<std::string>{"POST /api/stacks/" + id + "/start?endpointId=3"});

  // Deleted by hand: created again as a swarm stack of the cluster.
  w.Sim("POST", "/__sim/stacks/" + id + "/drift", R"({"delete": true})");
  REQUIRE(w.Once().exit_code == 0);
  const json::object again = w.Stack("tm-ps-swarm");
  REQUIRE_FALSE(again.empty());
  CHECK(again.at("Id").as_int64() != swarm.at("Id").as_int64());
  CHECK(again.at("Type").as_int64() == 1);
  CHECK(again.at("SwarmId").as_string() == cluster);
  CHECK(w.StackCount("tm-ps-swarm") == 1);
  const std::string again_id = std::to_string(again.at("Id").as_int64());

  // A version bump updates both kinds, each through its own endpoint.
  w.fleet.Workspace("ps-one", 1, "", "    version: \"9.9.9\"\n");
  w.fleet.Workspace("ps-swarm", 3, "", "    version: \"9.9.9\"\n");
  mark = requests_since(0).size();
  REQUIRE(w.Once().exit_code == 0);
  CHECK(EnvValue(w.Stack("tm-ps-swarm"), "TM_VERSION") == "9.9.9");
  CHECK(EnvValue(w.Stack("tm-ps-one"), "TM_VERSION") == "9.9.9");
  const std::vector<std::string> updated = writes_in(requests_since(mark));
  CHECK(has(updated, "PUT /api/stacks/" + again_id + "?endpointId=3"));
  CHECK(has(updated, "PUT /api/stacks/" + std::to_string(standalone.at("Id").as_int64()) +
                         "?endpointId=1"));
  CHECK(updated.size() == 2);
  CHECK(w.Stack("tm-ps-swarm").at("Type").as_int64() == 1);

  // The workspace removed: its swarm stack is deleted, the standalone one stays.
  fs::remove(fs::path(w.fleet.path()) / "workspaces" / "ps-swarm.yaml");
  mark = requests_since(0).size();
  const ProcessResult removed = w.Once();
  CAPTURE(removed.out);
  CHECK(removed.exit_code == 0);
  CHECK(w.StackCount("tm-ps-swarm") == 0);
  CHECK(w.StackCount("tm-ps-one") == 1);
  CHECK(w.StackCount("tm-ps-stay") == 1);
  CHECK(writes_in(requests_since(mark)) ==
        std::vector<std::string>{"DELETE /api/stacks/" + again_id + "?endpointId=3"});
}

// Issue 10, part 3: dedicated stacks without spec.dedicated.endpoint are placed across the
// config's stacks.endpoints (a standalone endpoint and a swarm manager) by capacity and labels,
// recorded in the store before they are created, sticky across a restart whose config would
// choose otherwise, and deleted from where they were placed (docs/placement.md#endpoints).
TEST_CASE("stacks e2e: stacks placed across endpoints by capacity and labels, sticky, deleted "
          "where placed") {
  // Endpoint 5 takes no stack (no selector matches it) and its engine is down.
  const std::string endpoints =
      "  endpoints:\n"
      "    - {id: 1, capacity: 1, labels: {kind: standalone}}\n"
      "    - {id: 3, capacity: 2, labels: {kind: swarm}}\n"
      "    - {id: 5, capacity: 4, labels: {kind: spare}}\n";
  World w(/*ledger_file=*/false, endpoints);
  w.Sim("POST", "/__sim/endpoints",
        R"({"Id": 3, "Name": "swarm", "Type": 2, "URL": "tcp://tasks.agent:9001", "SwarmId": "pe-cluster"})");
  w.Sim("POST", "/__sim/endpoints", R"({"Id": 5, "Name": "spare", "Type": 1, "URL": "tcp://spare:2375"})");
  w.Sim("POST", "/__sim/endpoints/5/down");
  const std::string swarm = "    placement: {endpointSelector: {kind: swarm}}\n";
  const std::string standalone = "    placement: {endpointSelector: {kind: standalone}}\n";
  w.fleet.Workspace("pe-a", 0, "", swarm);
  w.fleet.Workspace("pe-b", 0, "", swarm);
  w.fleet.Workspace("pe-s", 0, "", standalone);
  w.fleet.Workspace("pe-x", 0, "", standalone);  // one of pe-s and pe-x finds endpoint 1 full
  w.fleet.Workspace("pe-n", 2);  // named: endpoint 2 is outside stacks.endpoints
  const std::string store_db = "tm_store_stack_placement";
  (void)QueryValue(w.pg.Dsn("postgres"), "DROP DATABASE IF EXISTS " + store_db + " WITH (FORCE)");
  const auto stored_endpoint = [&](const std::string& name) {
    return QueryValue(w.pg.Dsn(store_db),
                      "SELECT coalesce(stack_endpoint::text, 'none') FROM tm_workspaces WHERE "
                      "name = '" + name + "'");
  };

  std::string waiting;  // the one of pe-s, pe-x left without room
  std::int64_t a_id = 0;
  {
    auto daemon = w.StartDaemon(store_db, 1);
    const int port = daemon->WaitForHttpPort();
    INFO("log:\n" << daemon->Log());
    REQUIRE(Eventually(
        [&] {
          int ready = 0;
          waiting.clear();
          for (const std::string name : {"pe-a", "pe-b", "pe-s", "pe-x", "pe-n"}) {
            const auto [phase, error] = PhaseOf(port, name);
            if (phase == "Ready") ++ready;
            if (phase == "Stalled") waiting = name;
          }
          return ready == 4 && !waiting.empty();
        },
        std::chrono::seconds(90), std::chrono::milliseconds(200)));
    const std::string placed = waiting == "pe-s" ? "pe-x" : "pe-s";
    // Swarm-labelled ones on the swarm manager, as swarm stacks of its cluster.
    for (const std::string name : {"pe-a", "pe-b"}) {
      const json::object stack = w.Stack("tm-" + name);
      REQUIRE_FALSE(stack.empty());
      CHECK(stack.at("EndpointId").as_int64() == 3);
      CHECK(stack.at("Type").as_int64() == 1);
      CHECK(stack.at("SwarmId").as_string() == "pe-cluster");
      CHECK(stored_endpoint(name) == "3");
    }
    a_id = w.Stack("tm-pe-a").at("Id").as_int64();
    const json::object single = w.Stack("tm-" + placed);
    REQUIRE_FALSE(single.empty());
    CHECK(single.at("EndpointId").as_int64() == 1);
    CHECK(single.at("Type").as_int64() == 2);
    CHECK(stored_endpoint(placed) == "1");
    // The other: no stack anywhere, nothing recorded, and the reason names each endpoint.
    CHECK(w.StackCount("tm-" + waiting) == 0);
    CHECK(stored_endpoint(waiting) == "none");
    const std::string error = PhaseOf(port, waiting).second;
    CHECK(error.find("Unschedulable") != std::string::npos);
    CHECK(error.find("1: full (1/1)") != std::string::npos);
    CHECK(error.find("3: labels do not match kind=standalone") != std::string::npos);

    // `tenantctl get endpoints`: the configured ones and endpoint 2, which pe-n names; each
    // one's kind as its engine says, its capacity and usage; 5 down. Endpoint 2 is known once
    // pe-n is declared, so it is checked at the monitor's next round (every 10 s).
    std::map<std::int64_t, json::object> seen;
    CHECK(Eventually(
        [&] {
          seen = CtlEndpoints(port, w.dir.path());
          return seen.size() == 4 && seen[2].at("kind") == "standalone" &&
                 seen[5].at("reachable") == false;
        },
        std::chrono::seconds(40), std::chrono::milliseconds(500)));
    std::string shown;
    for (const auto& [id, item] : seen) shown += json::serialize(item) + "\n";
    INFO("tenantctl get endpoints -o json:\n" << shown);
    REQUIRE(seen.size() == 4);
    CHECK(seen[1].at("kind") == "standalone");
    CHECK(seen[1].at("swarmId").is_null());
    CHECK(seen[1].at("capacity") == 1);
    CHECK(seen[1].at("used") == 1);
    CHECK(seen[1].at("reachable") == true);
    CHECK(seen[1].at("labels") == json::object{{"kind", "standalone"}});
    CHECK(seen[3].at("kind") == "swarm");
    CHECK(seen[3].at("swarmId") == "pe-cluster");
    CHECK(seen[3].at("capacity") == 2);
    CHECK(seen[3].at("used") == 2);
    CHECK(seen[3].at("reachable") == true);
    CHECK(seen[2].at("configured") == false);
    CHECK(seen[2].at("capacity").is_null());
    CHECK(seen[2].at("used") == 1);
    CHECK(seen[5].at("kind") == "unknown");
    CHECK(seen[5].at("capacity") == 4);
    CHECK(seen[5].at("used") == 0);
    CHECK(seen[5].at("reason").as_string().find("inspect endpoint 5: Portainer answered 503") !=
          std::string::npos);
    CHECK(seen[5].at("checkedAt").is_string());
    // Back up: reachable again at a later check.
    w.Sim("POST", "/__sim/endpoints/5/up");
    CHECK(Eventually(
        [&] {
          seen = CtlEndpoints(port, w.dir.path());
          return seen.size() == 4 && seen[5].at("reachable") == true;
        },
        std::chrono::seconds(30), std::chrono::milliseconds(500)));
    CHECK(seen[5].at("kind") == "standalone");
    REQUIRE(daemon->Terminate() == 0);
  }

  // A new config: endpoint 1 has room now, endpoint 3 none and other labels. The placed stacks
  // stay where they are (same ids); only the waiting one is placed, on 1.
  std::ifstream in(w.config);
  std::string config((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string changed = "  endpoints:\n"
                              "    - {id: 1, capacity: 10, labels: {kind: standalone}}\n"
                              "    - {id: 3, capacity: 0, labels: {kind: retired}}\n";
  config.replace(config.find(endpoints), endpoints.size(), changed);
  w.dir.Write("operator.yaml", config);
  auto daemon = w.StartDaemon(store_db, 2);
  const int port = daemon->WaitForHttpPort();
  INFO("log:\n" << daemon->Log());
  CHECK(Eventually([&] { return PhaseOf(port, waiting).first == "Ready"; },
                   std::chrono::seconds(60), std::chrono::milliseconds(200)));
  CHECK(w.Stack("tm-" + waiting).at("EndpointId").as_int64() == 1);
  CHECK(stored_endpoint(waiting) == "1");
  CHECK(Eventually([&] { return PhaseOf(port, "pe-a").first == "Ready"; },
                   std::chrono::seconds(30), std::chrono::milliseconds(200)));
  CHECK(w.Stack("tm-pe-a").at("Id").as_int64() == a_id);
  CHECK(w.Stack("tm-pe-a").at("EndpointId").as_int64() == 3);
  CHECK(w.StackCount("tm-pe-a") == 1);

  // pe-a removed: its stack goes from the endpoint it was placed on.
  fs::remove(fs::path(w.fleet.path()) / "workspaces" / "pe-a.yaml");
  CHECK(Eventually([&] { return w.StackCount("tm-pe-a") == 0; }, std::chrono::seconds(60),
                   std::chrono::milliseconds(200)));
  CHECK(w.StackCount("tm-pe-b") == 1);
  CHECK(daemon->Terminate() == 0);
}

