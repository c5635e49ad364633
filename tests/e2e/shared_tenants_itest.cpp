// Shared tenants served end to end (issue 17, docs/bindings.md): the built tenant-operator as a
// daemon on this binary's private PostgreSQL, with bindings, Debian's real PgBouncer as its
// pooler, runtime tokens for two products, and the built example-runtime reading the bindings.
// One daemon serves every test case of the file; doctest runs them in file order.
//
// Fleet: product erp (migration 0001 makes `customer`), shared workspaces alpha, beta, gamma;
// product shop, shared workspace delta.

#include <doctest/doctest.h>
#include <grp.h>
#include <sys/stat.h>

#include <boost/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/daemon_process.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/http_get.hpp"
#include "tests/support/pg_server.hpp"
#include "tests/support/pgbouncer_server.hpp"
#include "tests/support/process.hpp"
#include "tests/support/server_support.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace tmaster::testing;
using namespace std::chrono_literals;

const std::string kMasterKey = "shared-tenants-e2e-master-key-0123456789abcdef";
const std::string kAdminToken = "shared-tenants-e2e-admin-token-0123456789";
const std::string kReadToken = "shared-tenants-e2e-read-token-0123456789";
const std::string kErpToken = "shared-tenants-e2e-erp-runtime-token-0123";
const std::string kShopToken = "shared-tenants-e2e-shop-runtime-token-012";

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

unsigned ModeOf(const fs::path& path) {
  struct stat st {};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

gid_t GroupOf(const fs::path& path) {
  struct stat st {};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return st.st_gid;
}

std::string Workspace(const std::string& name, const std::string& product,
                      const std::string& database_extra = "", bool suspend = false) {
  std::string text = "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: " +
                     name + "\nspec:\n  product: " + product + "\n  mode: shared\n";
  if (suspend) text += "  suspend: true\n";
  if (!database_extra.empty()) text += "  database:\n" + database_extra;
  return text;
}

class Fleet {
 public:
  Fleet() : pg_(PgServer::Shared()) {
    dir_.Write("fleet/products.yaml",
               "apiVersion: tenantmaster.io/v1alpha1\nkind: Product\nmetadata:\n  name: erp\n"
               "spec:\n  image: example/erp\n  defaultVersion: \"1.0\"\n  migrations: migrations/erp\n"
               "  modes: [shared]\n---\n"
               "apiVersion: tenantmaster.io/v1alpha1\nkind: Product\nmetadata:\n  name: shop\n"
               "spec:\n  image: example/shop\n  defaultVersion: \"1.0\"\n  migrations: migrations/shop\n"
               "  modes: [shared]\n");
    dir_.Write("fleet/migrations/erp/0001_customer.sql",
               "CREATE TABLE customer (id serial PRIMARY KEY, name text NOT NULL);\n");
    dir_.Write("fleet/migrations/shop/0001_item.sql", "CREATE TABLE item (id serial PRIMARY KEY);\n");
    for (const std::string name : {"alpha", "beta", "gamma"}) {
      dir_.Write("fleet/workspaces/" + name + ".yaml", Workspace(name, "erp"));
    }
    dir_.Write("fleet/workspaces/delta.yaml", Workspace("delta", "shop"));

    // PgBouncer runs as `postgres`: it must pass through the test's folder to the pooler's.
    fs::permissions(dir_.path(), fs::perms::others_exec, fs::perm_options::add);
    bouncer_ = std::make_unique<PgBouncerServer>(
        PgBouncerOptions{.databases_ini = (pooler() / "databases.ini").string(),
                         .userlist = (pooler() / "userlist.txt").string()});

    std::string yaml = "baseDomain: example.test\nmasterKeyEnv: TM_MASTER_KEY\n";
    yaml += "clusters:\n  - name: default\n    dsnEnv: TM_PG_DSN\n";
    yaml += "store:\n  dsnEnv: TM_STORE_DSN\n";
    yaml += "sources:\n  - name: local\n    directory: " + (dir_.path() / "fleet").string() + "\n";
    yaml += "stacks:\n  backend: directory\n  directory: " +
            (dir_.path() / "deployments").string() + "\n";
    yaml += "http:\n  listen: \"127.0.0.1:0\"\n  tokenEnv: TM_API_TOKEN\n  readTokenEnv: TM_READ_TOKEN\n";
    yaml += "bindings:\n  dir: " + bindings().string() + "\n";
    yaml += "pooler:\n  pgbouncer:\n    dir: " + pooler().string() + "\n    group: postgres\n";
    yaml += "    listen: 127.0.0.1:" + std::to_string(bouncer_->port()) + "\n";
    yaml += "    reload: {pidFile: " + bouncer_->pid_file() + "}\n";
    yaml += "runtimes:\n  erp: {tokenEnv: TM_ERP_RUNTIME_TOKEN}\n  shop: {tokenEnv: TM_SHOP_RUNTIME_TOKEN}\n";
    const std::string config = dir_.Write("operator.yaml", yaml);
    daemon_ = std::make_unique<DaemonProcess>(DaemonProcess::Options{
        .argv = {std::string(TM_BINARY_DIR) + "/tenant-operator", "--config", config,
                 "--state-dir", (dir_.path() / "state").string()},
        .env = {{"TM_MASTER_KEY", kMasterKey},
                {"TM_PG_DSN", pg_.Dsn()},
                {"TM_STORE_DSN", pg_.Dsn("tm_store_shared_tenants")},
                {"TM_API_TOKEN", kAdminToken},
                {"TM_READ_TOKEN", kReadToken},
                {"TM_ERP_RUNTIME_TOKEN", kErpToken},
                {"TM_SHOP_RUNTIME_TOKEN", kShopToken}},
        .log_file = (dir_.path() / "operator.log").string()});
    port_ = daemon_->WaitForHttpPort(60s);
    REQUIRE_MESSAGE(port_ > 0, daemon_->Log());
    REQUIRE_MESSAGE(Eventually(
                        [&] {
                          for (const std::string name : {"alpha", "beta", "gamma"}) {
                            if (!fs::exists(bindings() / "erp" / name / "uri")) return false;
                          }
                          if (!fs::exists(bindings() / "shop" / "delta" / "uri")) return false;
                          // The pooler follows the bindings by a flush: every entry is in.
                          const std::string databases = ReadAll(pooler() / "databases.ini");
                          const std::string users = ReadAll(pooler() / "userlist.txt");
                          for (const std::string name : {"alpha", "beta", "gamma", "delta"}) {
                            if (databases.find("tenant_" + name + " ") == std::string::npos ||
                                users.find("\"user_" + name + "\"") == std::string::npos) {
                              return false;
                            }
                          }
                          return true;
                        },
                        120s, 200ms),
                    daemon_->Log());
    // PgBouncer reads the files the operator wrote; later changes reach it by SIGHUP.
    bouncer_->Start();
  }

  [[nodiscard]] fs::path bindings() const { return dir_.path() / "bindings"; }
  [[nodiscard]] fs::path pooler() const { return dir_.path() / "pooler"; }
  [[nodiscard]] std::string Binding(const std::string& product, const std::string& workspace,
                                    const std::string& key) const {
    return ReadAll(bindings() / product / workspace / key);
  }
  /// The tenant's own login, straight to PostgreSQL (not through the pooler).
  [[nodiscard]] std::string Direct(const std::string& workspace,
                                   const std::optional<std::string>& password = std::nullopt,
                                   const std::string& database = "") const {
    return pg_.DsnAs(Binding("erp", workspace, "username"),
                     password ? *password : Binding("erp", workspace, "password"),
                     database.empty() ? Binding("erp", workspace, "database") : database);
  }
  HttpResponse Get(const std::string& path, const std::string& token) const {
    return HttpRequest(port_, "GET", path, {{"Authorization", "Bearer " + token}}, "", 40s);
  }
  void WriteManifest(const std::string& name, const std::string& text) const {
    const fs::path staged = dir_.Write("staged.yaml", text);
    fs::rename(staged, dir_.path() / "fleet" / "workspaces" / (name + ".yaml"));
  }
  void RemoveManifest(const std::string& name) const {
    fs::remove(dir_.path() / "fleet" / "workspaces" / (name + ".yaml"));
  }
  [[nodiscard]] std::string Log() const { return daemon_->Log(); }
  /// What PgBouncer says, for a failure through the pooler: is it up, and its log's tail.
  [[nodiscard]] std::string PoolerState() const {
    const pid_t pid = bouncer_->pid();
    return "pgbouncer pid " + std::to_string(pid) + (pid > 1 && Alive(pid) ? " alive" : " gone") +
           "; its log:\n" + Tail(bouncer_->Log(), 20);
  }
  [[nodiscard]] bool PoolerAlive() const { return Alive(bouncer_->pid()); }
  /// The pooler's files say `database` is suspended: its entry kept, pointed at no database (so
  /// no reload drops a database a client may be logging in to: PgBouncer 1.18 can die of that,
  /// docs/bindings.md#pgbouncer), and its role out of the auth_file.
  [[nodiscard]] bool PoolerSuspended(const std::string& database, const std::string& role) const {
    return ReadAll(pooler() / "databases.ini")
                   .find(database + " = host=127.0.0.1 port=" + std::to_string(pg_.port()) +
                         " dbname=tenant-master.suspended\n") != std::string::npos &&
           ReadAll(pooler() / "userlist.txt").find("\"" + role + "\"") == std::string::npos;
  }
  [[nodiscard]] PgServer& pg() const { return pg_; }
  [[nodiscard]] const TempDir& dir() const { return dir_; }

 private:
  PgServer& pg_;
  TempDir dir_;
  std::unique_ptr<PgBouncerServer> bouncer_;
  std::unique_ptr<DaemonProcess> daemon_;
  int port_ = 0;
};

Fleet& Shared() {
  static Fleet fleet;
  return fleet;
}

}  // namespace

TEST_CASE("shared tenants: bindings in the Service Binding layout with private modes") {
  Fleet& fleet = Shared();
  for (const std::string name : {"alpha", "beta", "gamma"}) {
    const fs::path folder = fleet.bindings() / "erp" / name;
    CHECK(ModeOf(folder) == 0700);
    std::set<std::string> keys;
    for (const auto& entry : fs::directory_iterator(folder)) {
      keys.insert(entry.path().filename().string());
      CHECK(ModeOf(entry.path()) == 0600);
    }
    CHECK(keys == std::set<std::string>{"database", "host", "hosts", "password", "port",
                                        "provider", "state", "type", "uri", "username",
                                        "workspace"});
    CHECK(fleet.Binding("erp", name, "type") == "postgresql");
    CHECK(fleet.Binding("erp", name, "provider") == "tenant-master");
    CHECK(fleet.Binding("erp", name, "workspace") == name);
    CHECK(fleet.Binding("erp", name, "hosts") == name + ".example.test");
    CHECK(fleet.Binding("erp", name, "state") == "active");
    CHECK(fleet.Binding("erp", name, "database") == "tenant_" + name);
  }
  CHECK(ModeOf(fleet.bindings()) == 0700);
  // The pooler's files: readable by PgBouncer's group, nobody else.
  const gid_t postgres = ::getgrnam("postgres")->gr_gid;
  for (const std::string file : {"databases.ini", "userlist.txt"}) {
    CHECK(ModeOf(fleet.pooler() / file) == 0640);
    CHECK(GroupOf(fleet.pooler() / file) == postgres);
  }
  CHECK(ModeOf(fleet.pooler()) == 0750);
  const std::string users = ReadAll(fleet.pooler() / "userlist.txt");
  CHECK(users.find("\"user_alpha\" \"SCRAM-SHA-256$4096:") != std::string::npos);
  // The verifier in the auth_file is the server's own (SCRAM pass-through needs the same one).
  const std::string stored = QueryValue(
      fleet.pg().Dsn(), "SELECT rolpassword FROM pg_authid WHERE rolname = 'user_alpha'");
  CHECK(users.find("\"user_alpha\" \"" + stored + "\"") != std::string::npos);
}

TEST_CASE("shared tenants: each uri connects through PgBouncer, each login directly, to its own migrations") {
  Fleet& fleet = Shared();
  for (const std::string name : {"alpha", "beta", "gamma"}) {
    const std::string uri = fleet.Binding("erp", name, "uri");
    CHECK(uri.find("@127.0.0.1:") != std::string::npos);  // the pooler's listen address
    std::string pooled;
    CHECK(Eventually([&] { return ConnectError(uri).empty(); }, 20s, 200ms));
    REQUIRE_NOTHROW(pooled = QueryValue(uri, "SELECT current_database() || ' ' || current_user || ' ' || "
                                             "(SELECT string_agg(version, ',') FROM tenant_master.schema_migrations)"));
    CHECK(pooled == "tenant_" + name + " user_" + name + " 0001");
    CHECK(QueryValue(fleet.Direct(name), "SELECT count(*) FROM customer") == "0");
  }
}

TEST_CASE("shared tenants: one tenant's credentials are refused by another tenant's database") {
  Fleet& fleet = Shared();
  CHECK_FALSE(ConnectError(fleet.Direct("alpha", std::nullopt, "tenant_beta")).empty());
  // Through the pooler: alpha's login asking for beta's database.
  std::string uri = fleet.Binding("erp", "alpha", "uri");
  uri = uri.substr(0, uri.rfind('/')) + "/tenant_beta";
  CHECK_FALSE(ConnectError(uri).empty());
  // And beta's password under alpha's name.
  CHECK_FALSE(ConnectError(fleet.Direct("alpha", fleet.Binding("erp", "beta", "password"))).empty());
}

TEST_CASE("shared tenants: the runtime API answers the bindings' facts to its product's runtime only") {
  Fleet& fleet = Shared();
  HttpResponse res = fleet.Get("/api/v1/runtimes/erp/tenants", kErpToken);
  REQUIRE_MESSAGE(res.status == 200, res.body);
  const json::object list = json::parse(res.body).as_object();
  CHECK(list.at("kind").as_string() == "RuntimeTenantList");
  const json::array& items = list.at("items").as_array();
  REQUIRE(items.size() == 3);
  for (const json::value& item : items) {
    const std::string name(item.at("workspace").as_string());
    CHECK(std::string(item.at("password").as_string()) == fleet.Binding("erp", name, "password"));
    CHECK(std::string(item.at("uri").as_string()) == fleet.Binding("erp", name, "uri"));
    CHECK(item.at("hosts").as_array().at(0).as_string() == name + ".example.test");
  }
  for (const std::string& token : {kShopToken, kAdminToken, kReadToken}) {
    CHECK(fleet.Get("/api/v1/runtimes/erp/tenants", token).status == 403);
  }
  CHECK(fleet.Get("/api/v1/runtimes/erp/tenants", "wrong-token").status == 401);
  CHECK(fleet.Get("/api/v1/workspaces", kErpToken).status == 403);
  CHECK(fleet.Get("/api/v1/runtimes/shop/tenants", kShopToken).status == 200);

  // A watch with the current version waits, and answers 304 (no credentials) when nothing changed.
  const std::string version(list.at("resourceVersion").as_string());
  const auto start = std::chrono::steady_clock::now();
  res = fleet.Get("/api/v1/runtimes/erp/tenants?watch=1&timeoutSeconds=1&resourceVersion=" + version,
                  kErpToken);
  CHECK(res.status == 304);
  CHECK(res.body.empty());
  CHECK(std::chrono::steady_clock::now() - start >= 900ms);

  // Each read is an event naming the runtime, never a password; no other route shows a password.
  res = fleet.Get("/api/v1/events?workspace=runtime:erp", kAdminToken);
  REQUIRE(res.status == 200);
  CHECK(res.body.find("CredentialsRead") != std::string::npos);
  CHECK(res.body.find("runtime:erp") != std::string::npos);
  for (const std::string name : {"alpha", "beta", "gamma"}) {
    const std::string password = fleet.Binding("erp", name, "password");
    for (const std::string& path :
         std::vector<std::string>{"/api/v1/workspaces", "/api/v1/events?limit=1000",
                                  "/api/v1/workspaces/" + name, "/api/v1/traefik", "/metrics"}) {
      CHECK_MESSAGE(fleet.Get(path, kAdminToken).body.find(password) == std::string::npos, path);
    }
    CHECK(fleet.Log().find(password) == std::string::npos);
  }
}

TEST_CASE("shared tenants: a watch learns of a new tenant within a second, and the runtime serves it") {
  Fleet& fleet = Shared();
  // Each tenant's own data, written with its own login.
  Execute(fleet.Direct("alpha"), "INSERT INTO customer (name) VALUES ('a1')");
  Execute(fleet.Direct("beta"), "INSERT INTO customer (name) VALUES ('b1'), ('b2')");
  DaemonProcess runtime(DaemonProcess::Options{
      .argv = {std::string(TM_BINARY_DIR) + "/example-runtime", "--bindings",
               (fleet.bindings() / "erp").string(), "--listen", "127.0.0.1:0", "--count-table",
               "customer"},
      .env = {},
      .log_file = (fleet.dir().path() / "runtime.log").string()});
  const int port = runtime.WaitForHttpPort(20s);
  REQUIRE_MESSAGE(port > 0, runtime.Log());
  auto count_for = [&](const std::string& host) -> std::string {
    HttpResponse res = HttpRequest(port, "GET", "/", {{"Host", host}});
    if (res.status != 200) return "status " + std::to_string(res.status);
    return std::string(json::parse(res.body).at("workspace").as_string()) + "=" +
           std::to_string(json::parse(res.body).at("count").as_int64());
  };
  CHECK(count_for("alpha.example.test") == "alpha=1");
  CHECK(count_for("beta.example.test") == "beta=2");
  CHECK(count_for("gamma.example.test") == "gamma=0");
  CHECK(count_for("nobody.example.test") == "status 404");

  const HttpResponse before = fleet.Get("/api/v1/runtimes/erp/tenants", kErpToken);
  const std::string version(json::parse(before.body).at("resourceVersion").as_string());
  fleet.WriteManifest("epsilon", Workspace("epsilon", "erp"));
  // The watch returns when epsilon is published (its database made and migrated first).
  const HttpResponse watched = fleet.Get(
      "/api/v1/runtimes/erp/tenants?watch=1&timeoutSeconds=30&resourceVersion=" + version, kErpToken);
  REQUIRE(watched.status == 200);
  const auto published = std::chrono::steady_clock::now();
  CHECK(watched.body.find("\"epsilon\"") != std::string::npos);
  CHECK(Eventually([&] { return count_for("epsilon.example.test") == "epsilon=0"; }, 2s, 50ms));
  MESSAGE("epsilon answered "
          << std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - published).count()
          << " ms after the watch saw it");
  runtime.Terminate();
}

TEST_CASE("shared tenants: a rotation updates binding and pooler, and the old password is refused") {
  Fleet& fleet = Shared();
  const std::string old_password = fleet.Binding("erp", "alpha", "password");
  const std::string old_uri = fleet.Binding("erp", "alpha", "uri");
  fleet.WriteManifest("alpha", Workspace("alpha", "erp", "    passwordRotation: 1\n"));
  REQUIRE_MESSAGE(Eventually([&] { return fleet.Binding("erp", "alpha", "password") != old_password; },
                             60s, 100ms),
                  fleet.Log());
  const std::string uri = fleet.Binding("erp", "alpha", "uri");
  CHECK(uri != old_uri);
  CHECK(Eventually([&] { return ConnectError(uri).empty(); }, 10s, 100ms));
  CHECK(ConnectError(fleet.Direct("alpha")).empty());
  CHECK_FALSE(ConnectError(old_uri).empty());
  CHECK_FALSE(ConnectError(fleet.Direct("alpha", old_password)).empty());
}

TEST_CASE("shared tenants: a subdomain change rewrites the binding's hosts, nothing else of it") {
  Fleet& fleet = Shared();
  const std::string uri = fleet.Binding("erp", "alpha", "uri");
  fleet.WriteManifest("alpha", "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n"
                               "  name: alpha\nspec:\n  product: erp\n  mode: shared\n"
                               "  subdomain: alfa\n  database:\n    passwordRotation: 1\n");
  CHECK_MESSAGE(Eventually([&] { return fleet.Binding("erp", "alpha", "hosts") == "alfa.example.test"; },
                           60s, 100ms),
                fleet.Log());
  CHECK(fleet.Binding("erp", "alpha", "uri") == uri);
  const HttpResponse res = fleet.Get("/api/v1/runtimes/erp/tenants", kErpToken);
  CHECK(res.body.find("\"alfa.example.test\"") != std::string::npos);
}

TEST_CASE("shared tenants: suspend flips the binding's state and closes the logins") {
  Fleet& fleet = Shared();
  fleet.WriteManifest("beta", Workspace("beta", "erp", "", /*suspend=*/true));
  REQUIRE_MESSAGE(Eventually([&] { return fleet.Binding("erp", "beta", "state") == "suspended"; },
                             60s, 100ms),
                  fleet.Log());
  CHECK_FALSE(ConnectError(fleet.Direct("beta")).empty());
  // The pooler's files follow within its flush interval (200 ms) and a reload. Logging in
  // through the pooler meanwhile, again and again, races that reload: PgBouncer stays up.
  CHECK_MESSAGE(Eventually([&] { return !ConnectError(fleet.Binding("erp", "beta", "uri")).empty(); },
                           10s, 20ms),
                fleet.PoolerState());
  CHECK_MESSAGE(fleet.PoolerSuspended("tenant_beta", "user_beta"),
                ReadAll(fleet.pooler() / "databases.ini"));
  CHECK_FALSE(ConnectError(fleet.Binding("erp", "beta", "uri")).empty());
  CHECK_MESSAGE(fleet.PoolerAlive(), fleet.PoolerState());
  fleet.WriteManifest("beta", Workspace("beta", "erp"));
  CHECK(Eventually([&] { return fleet.Binding("erp", "beta", "state") == "active"; }, 60s, 100ms));
  // PgBouncer may hold back a database whose server login failed (server_login_retry).
  CHECK_MESSAGE(Eventually([&] { return ConnectError(fleet.Binding("erp", "beta", "uri")).empty(); },
                           30s, 200ms),
                (ConnectError(fleet.Binding("erp", "beta", "uri")) + "\n" + fleet.PoolerState()));
}

TEST_CASE("shared tenants: removing a workspace removes its binding and its pooler entry") {
  Fleet& fleet = Shared();
  const std::string uri = fleet.Binding("erp", "gamma", "uri");
  fleet.RemoveManifest("gamma");
  REQUIRE_MESSAGE(Eventually([&] { return !fs::exists(fleet.bindings() / "erp" / "gamma"); }, 60s,
                             100ms),
                  fleet.Log());
  // Its entry stays a while as a suspended one (pooler_retire_after), then goes.
  CHECK_MESSAGE(Eventually([&] { return fleet.PoolerSuspended("tenant_gamma", "user_gamma"); }, 10s,
                           100ms),
                ReadAll(fleet.pooler() / "databases.ini"));
  CHECK_MESSAGE(Eventually([&] { return !ConnectError(uri).empty(); }, 10s, 20ms),
                fleet.PoolerState());
  CHECK_MESSAGE(fleet.PoolerAlive(), fleet.PoolerState());
}

TEST_CASE("shared tenants: a symbolic link planted at a binding's path is refused, nothing written through it") {
  Fleet& fleet = Shared();
  const fs::path victim = fleet.dir().Mkdir("victim");
  fleet.dir().Write("victim/password", "theirs");
  fs::create_directory_symlink(victim, fleet.bindings() / "erp" / "zeta");
  fleet.WriteManifest("zeta", Workspace("zeta", "erp"));
  HttpResponse res;
  REQUIRE_MESSAGE(Eventually(
                      [&] {
                        res = fleet.Get("/api/v1/workspaces/zeta", kAdminToken);
                        return res.status == 200 &&
                               res.body.find("BindingsFailed") != std::string::npos;
                      },
                      60s, 200ms),
                  res.body);
  CHECK(res.body.find("symbolic link") != std::string::npos);
  CHECK(ReadAll(victim / "password") == "theirs");
  CHECK_FALSE(fs::exists(victim / "uri"));
  CHECK(fs::is_symlink(fleet.bindings() / "erp" / "zeta"));
}

TEST_CASE("shared tenants: --once publishes the bindings and, after a clean read, removes undeclared ones") {
  Fleet& fleet = Shared();
  const TempDir& dir = fleet.dir();
  dir.Write("once/products.yaml",
            "apiVersion: tenantmaster.io/v1alpha1\nkind: Product\nmetadata:\n  name: erp\n"
            "spec:\n  image: example/erp\n  defaultVersion: \"1.0\"\n  migrations: migrations\n"
            "  modes: [shared]\n");
  dir.Write("once/migrations/0001_customer.sql", "CREATE TABLE customer (id serial PRIMARY KEY);\n");
  dir.Write("once/once-a.yaml", Workspace("once-a", "erp"));
  dir.Write("once/once-b.yaml", Workspace("once-b", "erp"));
  const fs::path bindings = dir.path() / "once-bindings";
  const std::string config = dir.Write(
      "once.yaml", "baseDomain: example.test\nmasterKeyEnv: TM_MASTER_KEY\nclusters:\n"
                   "  - name: default\n    dsnEnv: TM_PG_DSN\nsources:\n  - name: once\n"
                   "    directory: " + (dir.path() / "once").string() + "\nstacks:\n  backend: directory\n"
                   "  directory: " + (dir.path() / "once-deployments").string() + "\n"
                   "bindings:\n  dir: " + bindings.string() + "\n");
  const std::vector<std::string> argv = {std::string(TM_BINARY_DIR) + "/tenant-operator",
                                         "--config", config, "--once", "--state-dir",
                                         (dir.path() / "once-state").string()};
  const std::map<std::string, std::string> env = {{"TM_MASTER_KEY", kMasterKey},
                                                  {"TM_PG_DSN", fleet.pg().Dsn()}};
  ProcessResult first = RunProcess(argv, env);
  REQUIRE_MESSAGE(first.exit_code == 0, (first.out + first.err));
  CHECK(ReadAll(bindings / "erp" / "once-a" / "database") == "tenant_once_a");
  CHECK(ConnectError(ReadAll(bindings / "erp" / "once-b" / "uri")).empty());
  // A second pass with nothing changed writes nothing: the folders keep their inodes.
  struct stat before {};
  REQUIRE(::stat((bindings / "erp" / "once-a").c_str(), &before) == 0);
  ProcessResult again = RunProcess(argv, env);
  REQUIRE_MESSAGE(again.exit_code == 0, (again.out + again.err));
  struct stat after {};
  REQUIRE(::stat((bindings / "erp" / "once-a").c_str(), &after) == 0);
  CHECK(before.st_ino == after.st_ino);
  CHECK(again.out.find("binding") == std::string::npos);

  // An invalid document: nothing is removed. A clean read without once-b: its binding goes.
  fs::remove(dir.path() / "once" / "once-b.yaml");
  dir.Write("once/broken.yaml", "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\n");
  ProcessResult broken = RunProcess(argv, env);
  CHECK(broken.exit_code == 1);
  CHECK(fs::exists(bindings / "erp" / "once-b" / "uri"));
  fs::remove(dir.path() / "once" / "broken.yaml");
  ProcessResult swept = RunProcess(argv, env);
  CHECK_MESSAGE(swept.out.find("remove the binding of workspace once-b") != std::string::npos,
                swept.out);
  CHECK_FALSE(fs::exists(bindings / "erp" / "once-b"));
  CHECK(fs::exists(bindings / "erp" / "once-a" / "uri"));
}
