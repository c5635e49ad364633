// tenantctl end to end (issue 13): the built tenantctl against the built tenant-operator running
// as a daemon on this binary's private PostgreSQL, with an admin and a read token. Each step is
// checked by what tenantctl prints and exits with, and by the PostgreSQL catalog: apply -> get
// (every -o) -> describe -> diff exit codes -> suspend/resume (the role NOLOGIN, then LOGIN) ->
// reconcile --wait -> delete with Retain (the database stays); the read token refused on writes;
// the directory-owned workspace refused with 409.
#include <doctest/doctest.h>

#include <boost/json.hpp>
#include <yaml-cpp/yaml.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/api_daemon.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/example_fleet.hpp"
#include "tests/support/pg_server.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace tmaster::testing;
using namespace std::chrono_literals;

const std::string kTenantctl = std::string(TM_BINARY_DIR) + "/tenantctl";
const std::string kMasterKey = "tenantctl-e2e-master-key-0123456789abcdef";
const std::string kAdminToken = "tenantctl-e2e-admin-token-0123456789";
const std::string kReadToken = "tenantctl-e2e-read-token-0123456789";

// The examples' products (not their workspaces) plus one directory-owned workspace.
void WriteFleet(const TempDir& dir) {
  for (const auto& [relative, text] : ExampleProductFiles()) dir.Write("fleet/" + relative, text);
  dir.Write("fleet/workspaces/from-dir.yaml",
            "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: from-dir\n"
            "spec:\n  product: landing\n  mode: shared\n");
}

const char* kApiWorkspace = R"(apiVersion: tenantmaster.io/v1alpha1
kind: Workspace
metadata:
  name: by-api
  labels: {plan: basic}
spec:
  product: landing
  mode: shared
  database:
    reclaimPolicy: Retain
)";

class Cluster {
 public:
  Cluster() : pg_(PgServer::Shared()) {
    WriteFleet(dir_);
    daemon_ = StartApiDaemon(dir_, pg_,
                             {.store_database = "tm_store_tenantctl_e2e",
                              .master_key = kMasterKey,
                              .admin_token = kAdminToken,
                              .read_token = kReadToken});
    port_ = daemon_->WaitForHttpPort(60s);
    REQUIRE_MESSAGE(port_ > 0, daemon_->Log());
    // The directory source has synced and converged its workspace.
    REQUIRE_MESSAGE(Eventually(
                        [&] {
                          return Ctl({"get", "workspace", "from-dir"}).out.find("Ready") !=
                                 std::string::npos;
                        },
                        60s, 200ms),
                    daemon_->Log());
  }

  /// tenantctl with `args`, the server and a token from the environment (the admin's unless
  /// `token` says otherwise), `input` on stdin.
  ProcessResult Ctl(std::vector<std::string> args, const std::string& token = kAdminToken,
                    const std::string& input = "") {
    args.insert(args.begin(), kTenantctl);
    return RunProcess(args,
                      {{"TENANTCTL_SERVER", "http://127.0.0.1:" + std::to_string(port_)},
                       {"TENANTCTL_TOKEN", token},
                       {"HOME", dir_.path().string()},
                       {"XDG_CONFIG_HOME", (dir_.path() / "xdg").string()}},
                      input);
  }

  std::string File(const std::string& relative, const std::string& text) const {
    return dir_.Write(relative, text);
  }
  std::string CanLogin(const std::string& role) {
    return QueryValue(pg_.Dsn(), "SELECT rolcanlogin FROM pg_roles WHERE rolname = $1", {role});
  }
  std::string DatabaseCount(const std::string& database) {
    return QueryValue(pg_.Dsn(), "SELECT count(*) FROM pg_database WHERE datname = $1",
                      {database});
  }
  std::string Log() const { return daemon_->Log(); }
  void Stop() { CHECK(daemon_->Terminate() == 0); }

 private:
  PgServer& pg_;
  TempDir dir_;
  std::unique_ptr<DaemonProcess> daemon_;
  int port_ = 0;
};

std::string Describe(const ProcessResult& r) {
  return "exit " + std::to_string(r.exit_code) + "\nstdout:\n" + r.out + "\nstderr:\n" + r.err;
}

}  // namespace

TEST_CASE("tenantctl e2e: apply, get, describe, diff, suspend, resume, reconcile, delete") {
  Cluster c;
  const std::string manifest = c.File("by-api.yaml", kApiWorkspace);

  // apply: created, then unchanged; the daemon converges it.
  ProcessResult r = c.Ctl({"apply", "-f", manifest});
  REQUIRE_MESSAGE(r.exit_code == 0, Describe(r));
  CHECK(r.out == "workspace/by-api created\n");
  r = c.Ctl({"apply", "-f", manifest});
  CHECK(r.out == "workspace/by-api unchanged\n");
  REQUIRE_MESSAGE(Eventually([&] { return c.CanLogin("user_by_api") == "t"; }, 60s, 200ms),
                  c.Log());
  REQUIRE(Eventually(
      [&] { return c.Ctl({"get", "workspace", "by-api"}).out.find("Ready") != std::string::npos; },
      60s, 200ms));

  // get, every output.
  r = c.Ctl({"get", "workspaces"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.rfind("NAME", 0) == 0);
  CHECK(r.out.find("PRODUCT") != std::string::npos);
  CHECK(r.out.find("by-api") != std::string::npos);
  CHECK(r.out.find("from-dir") != std::string::npos);
  r = c.Ctl({"get", "workspaces", "-o", "wide"});
  CHECK(r.out.find("MESSAGE") != std::string::npos);
  r = c.Ctl({"get", "workspaces", "-l", "plan=basic", "-o", "name"});
  CHECK(r.out == "workspace/by-api\n");
  r = c.Ctl({"get", "workspace", "by-api", "-o", "json"});
  REQUIRE(r.exit_code == 0);
  const json::value object = json::parse(r.out);
  CHECK(object.at("metadata").at("name").as_string() == "by-api");
  CHECK(object.at("status").at("phase").as_string() == "Ready");
  CHECK(object.at("metadata").at("annotations").at("tenantmaster.io/source").as_string() == "api");
  r = c.Ctl({"get", "workspaces", "-o", "yaml"});
  REQUIRE(r.exit_code == 0);
  const YAML::Node list = YAML::Load(r.out);
  REQUIRE(list["items"].IsSequence());
  CHECK(list["items"].size() == 2);
  r = c.Ctl({"get", "products"});
  CHECK(r.out.find("landing") != std::string::npos);

  // describe.
  r = c.Ctl({"describe", "workspace", "by-api"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("by-api") != std::string::npos);
  CHECK(r.out.find("Ready") != std::string::npos);

  // diff: none, then a difference, then an error.
  r = c.Ctl({"diff", "-f", manifest});
  CHECK_MESSAGE(r.exit_code == 0, Describe(r));
  std::string changed = kApiWorkspace;
  changed += "    connectionLimit: 7\n";
  r = c.Ctl({"diff", "-f", c.File("changed.yaml", changed)});
  CHECK_MESSAGE(r.exit_code == 1, Describe(r));
  r = c.Ctl({"diff", "-f", c.File("broken.yaml", std::string(kApiWorkspace) + "  color: red\n")});
  CHECK_MESSAGE(r.exit_code == 2, Describe(r));

  // suspend and resume: the role closes and opens.
  r = c.Ctl({"suspend", "workspace", "by-api"});
  CHECK_MESSAGE(r.exit_code == 0, Describe(r));
  CHECK(Eventually([&] { return c.CanLogin("user_by_api") == "f"; }, 60s, 200ms));
  r = c.Ctl({"resume", "workspace", "by-api"});
  CHECK_MESSAGE(r.exit_code == 0, Describe(r));
  CHECK(Eventually([&] { return c.CanLogin("user_by_api") == "t"; }, 60s, 200ms));

  // A directory-owned workspace: an override, cleared by resume; writes need an admin token.
  r = c.Ctl({"suspend", "workspace", "from-dir"});
  CHECK_MESSAGE(r.exit_code == 0, Describe(r));
  CHECK(Eventually([&] { return c.CanLogin("user_from_dir") == "f"; }, 60s, 200ms));
  r = c.Ctl({"resume", "workspace", "from-dir"});
  CHECK(Eventually([&] { return c.CanLogin("user_from_dir") == "t"; }, 60s, 200ms));
  r = c.Ctl({"delete", "workspace", "from-dir"});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("409") != std::string::npos);
  CHECK(r.err.find("local") != std::string::npos);
  r = c.Ctl({"suspend", "workspace", "by-api"}, kReadToken);
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("403") != std::string::npos);
  CHECK(r.err.find(kReadToken) == std::string::npos);
  r = c.Ctl({"get", "workspaces"}, "not-a-token");
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("401") != std::string::npos);
  CHECK(r.err.find("not-a-token") == std::string::npos);

  // reconcile --wait: the run it asks for is recorded even with nothing to do. Times are whole
  // seconds: wait for the next second, so that no earlier run can pass for the asked one.
  std::this_thread::sleep_for(1500ms);
  r = c.Ctl({"reconcile", "workspace", "by-api", "--wait", "--timeout", "30s"});
  CHECK_MESSAGE(r.exit_code == 0, Describe(r));

  // delete with Retain: gone from the API, the database stays, the role is closed.
  r = c.Ctl({"delete", "workspace", "by-api"});
  CHECK_MESSAGE(r.exit_code == 0, Describe(r));
  CHECK(Eventually(
      [&] { return c.Ctl({"get", "workspace", "by-api"}).err.find("not found") != std::string::npos; },
      60s, 200ms));
  CHECK(c.DatabaseCount("tenant_by_api") == "1");
  CHECK(c.CanLogin("user_by_api") == "f");
  c.Stop();
}
