// The API's route matrix end to end (issue 13, docs/api.md): the built tenant-operator as a daemon
// on this binary's private PostgreSQL, with an admin and a read token, a directory source holding
// the examples' products and two directory-owned workspaces, driven with cpp-httplib. For every
// route of the table in controller/api/http_server.cpp: success with the right token and status;
// 401 without a token and with a wrong one (WWW-Authenticate: Bearer); 403 for the read token on
// every write but POST /api/v1/plan; 404 for an unknown workspace; 409 for a directory-owned
// workspace (and ?force=true); 422 with the finding's location in the request; 400 for a bad
// query or a name mismatch; the probes open and /metrics without any token's text. Every error is
// checked as JSON {error, message, details?}. The dashboard's session (issue 14) on the real store:
// login, the cookie, CSRF, logout. One daemon serves every test case of the file.
#include <doctest/doctest.h>
#include <httplib.h>

#include <boost/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/api_daemon.hpp"
#include "tests/support/daemon_process.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/example_fleet.hpp"
#include "tests/support/pg_server.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace tmaster::testing;
using namespace std::chrono_literals;

const std::string kMasterKey = "api-routes-e2e-master-key-0123456789abcdef";
const std::string kAdminToken = "api-routes-e2e-admin-token-0123456789";
const std::string kReadToken = "api-routes-e2e-read-token-0123456789";
const std::string kYaml = "application/yaml";

std::string Manifest(const std::string& name, const std::string& extra_spec = "") {
  return "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: " + name +
         "\nspec:\n  product: landing\n  mode: shared\n" + extra_spec;
}

// The examples' products (not their workspaces) plus two directory-owned workspaces: from-dir
// (refused with 409) and dir-forced (moved to the API with ?force=true).
void WriteFleet(const TempDir& dir) {
  for (const auto& [relative, text] : ExampleProductFiles()) dir.Write("fleet/" + relative, text);
  dir.Write("fleet/workspaces/from-dir.yaml", Manifest("from-dir"));
  dir.Write("fleet/workspaces/dir-forced.yaml", Manifest("dir-forced"));
}

class Cluster {
 public:
  Cluster() : pg_(PgServer::Shared()) {
    WriteFleet(dir_);
    daemon_ = StartApiDaemon(dir_, pg_,
                             {.store_database = "tm_store_api_routes",
                              .master_key = kMasterKey,
                              .admin_token = kAdminToken,
                              .read_token = kReadToken});
    port_ = daemon_->WaitForHttpPort(60s);
    REQUIRE_MESSAGE(port_ > 0, daemon_->Log());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
    client_->set_read_timeout(30, 0);
    // The directory source has synced: both of its workspaces are served, the server is ready.
    REQUIRE_MESSAGE(Eventually(
                        [&] {
                          return Status("GET", "/api/v1/workspaces/from-dir") == 200 &&
                                 Status("GET", "/api/v1/workspaces/dir-forced") == 200 &&
                                 Status("GET", "/readyz", std::nullopt) == 200;
                        },
                        60s, 200ms),
                    daemon_->Log());
  }

  /// One request; `token` nullopt sends no Authorization header.
  httplib::Result Call(const std::string& method, const std::string& path,
                       const std::optional<std::string>& token = kAdminToken,
                       const std::string& body = "", const std::string& type = kYaml,
                       httplib::Headers headers = {}) {
    if (token) headers.emplace("Authorization", "Bearer " + *token);
    const char* p = path.c_str();
    if (method == "GET") return client_->Get(p, headers);
    if (method == "PUT") return client_->Put(p, headers, body, type);
    if (method == "POST") return client_->Post(p, headers, body, type);
    if (method == "DELETE") return client_->Delete(p, headers);
    if (method == "PATCH") return client_->Patch(p, headers, body, type);
    FAIL("unknown method " << method);
    return client_->Get(p, headers);
  }

  int Status(const std::string& method, const std::string& path,
             const std::optional<std::string>& token = kAdminToken) {
    auto res = Call(method, path, token);
    return res ? res->status : 0;
  }

  std::string Log() const { return daemon_->Log(); }
  [[nodiscard]] const TempDir& dir() const { return dir_; }

  /// The managed token the tokens test created (checked absent from /metrics).
  std::string managed_token;

 private:
  PgServer& pg_;
  TempDir dir_;
  std::unique_ptr<DaemonProcess> daemon_;
  int port_ = 0;
  std::unique_ptr<httplib::Client> client_;
};

// One daemon for the whole file (doctest runs the test cases in file order, on this thread).
Cluster& Shared() {
  static Cluster cluster;
  return cluster;
}

json::object Object(const httplib::Result& res) {
  REQUIRE(res);
  boost::system::error_code ec;
  json::value value = json::parse(res->body, ec);
  REQUIRE_MESSAGE(!ec, res->body);
  REQUIRE_MESSAGE(value.is_object(), res->body);
  return value.as_object();
}

/// `res` is the error `status` as docs/api.md#errors says: JSON {error, message, details?}.
json::object CheckError(const httplib::Result& res, int status, const std::string& code) {
  REQUIRE(res);
  CHECK_MESSAGE(res->status == status, res->status << " " << res->body);
  CHECK(res->get_header_value("Content-Type").rfind("application/json", 0) == 0);
  json::object body = Object(res);
  CHECK(body.at("error").as_string() == code);
  CHECK_FALSE(body.at("message").as_string().empty());
  for (const auto& [key, value] : body) {
    CHECK_MESSAGE((key == "error" || key == "message" || key == "details"), key);
  }
  return body;
}

void CheckUnauthorized(const httplib::Result& res, const std::string& sent = "") {
  CheckError(res, 401, "Unauthorized");
  CHECK(res->get_header_value("WWW-Authenticate") == "Bearer");
  if (!sent.empty()) CHECK(res->body.find(sent) == std::string::npos);
}

struct Route {
  std::string method;
  std::string path;
  std::string body;
  bool viewer;  ///< the read token may call it
};

// Every /api/v1 route of the table in controller/api/http_server.cpp (keep in step with it).
std::vector<Route> Routes() {
  return {
      {"GET", "/api/v1/workspaces", "", true},
      {"GET", "/api/v1/workspaces/from-dir", "", true},
      {"PUT", "/api/v1/workspaces/from-dir", Manifest("from-dir"), false},
      {"DELETE", "/api/v1/workspaces/from-dir", "", false},
      {"POST", "/api/v1/workspaces/from-dir/reconcile", "", false},
      {"POST", "/api/v1/workspaces/from-dir/suspend", "", false},
      {"POST", "/api/v1/workspaces/from-dir/resume", "", false},
      {"POST", "/api/v1/plan", Manifest("plan-viewer"), true},
      {"GET", "/api/v1/products", "", true},
      {"GET", "/api/v1/version", "", true},
      {"GET", "/api/v1/events", "", true},
      {"GET", "/api/v1/sources", "", true},
      {"GET", "/api/v1/traefik", "", true},
      {"POST", "/api/v1/tokens", R"({"role":"admin","ttl":"1h","description":"x"})", false},
      {"GET", "/api/v1/tokens", "", false},
      {"DELETE", "/api/v1/tokens/abcdefgh23", "", false},
  };
}

}  // namespace

TEST_CASE("api routes: 401 without a token and with a wrong one, on every route") {
  Cluster& c = Shared();
  for (const Route& route : Routes()) {
    CAPTURE(route.method);
    CAPTURE(route.path);
    CheckUnauthorized(c.Call(route.method, route.path, std::nullopt, route.body));
    CheckUnauthorized(c.Call(route.method, route.path, "not-the-token-xyz", route.body),
                      "not-the-token-xyz");
    CheckUnauthorized(c.Call(route.method, route.path, kAdminToken + "x", route.body));
    CheckUnauthorized(
        c.Call(route.method, route.path, "tmt_abcdefgh23_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
               route.body));
  }
  // Nothing was done for them: no token exists, from-dir is not suspended or deleting.
  const json::object tokens = Object(c.Call("GET", "/api/v1/tokens"));
  CHECK(tokens.at("items").as_array().empty());
  const json::object from_dir = Object(c.Call("GET", "/api/v1/workspaces/from-dir"));
  CHECK_FALSE(from_dir.at("status").as_object().contains("override"));
  CHECK(from_dir.at("status").at("phase").as_string() != "Deleting");
}

TEST_CASE("api routes: the read token reads every GET route and is refused every write but plan") {
  Cluster& c = Shared();
  for (const Route& route : Routes()) {
    CAPTURE(route.method);
    CAPTURE(route.path);
    auto res = c.Call(route.method, route.path, kReadToken, route.body);
    REQUIRE(res);
    if (route.viewer) {
      CHECK_MESSAGE(res->status == 200, res->body);
      continue;
    }
    // Every write, and GET /api/v1/tokens (managed tokens are admin only).
    const json::object body = CheckError(res, 403, "Forbidden");
    CHECK(body.at("message").as_string().find("env:read") != std::string::npos);
    CHECK(res->body.find(kReadToken) == std::string::npos);
  }
  // A viewer may plan: the answer is a plan of plan-viewer.
  const json::object plan =
      Object(c.Call("POST", "/api/v1/plan", kReadToken, Manifest("plan-viewer")));
  REQUIRE(plan.at("items").as_array().size() == 1);
  CHECK(plan.at("items").at(0).at("workspace").as_string() == "plan-viewer");
  // Nothing was written for the refused ones.
  CHECK(c.Status("GET", "/api/v1/workspaces/plan-viewer") == 404);
  const json::object from_dir = Object(c.Call("GET", "/api/v1/workspaces/from-dir"));
  CHECK_FALSE(from_dir.at("status").as_object().contains("override"));
}

TEST_CASE("api routes: workspaces: PUT, GET, list, reconcile, suspend, resume, DELETE") {
  Cluster& c = Shared();
  // PUT: created (201), unchanged (200), configured (200), as YAML.
  auto res = c.Call("PUT", "/api/v1/workspaces/route-a", kAdminToken, Manifest("route-a"));
  REQUIRE(res);
  CHECK_MESSAGE(res->status == 201, res->body);
  CHECK(res->get_header_value("Tenant-Master-Apply") == "created");
  json::object object = Object(res);
  CHECK(object.at("metadata").at("name").as_string() == "route-a");
  CHECK(object.at("metadata").at("annotations").at("tenantmaster.io/source").as_string() == "api");
  CHECK(object.at("status").is_object());
  res = c.Call("PUT", "/api/v1/workspaces/route-a", kAdminToken, Manifest("route-a"));
  REQUIRE(res);
  CHECK_MESSAGE(res->status == 200, res->body);
  CHECK(res->get_header_value("Tenant-Master-Apply") == "unchanged");
  res = c.Call("PUT", "/api/v1/workspaces/route-a", kAdminToken,
               Manifest("route-a", "  database:\n    connectionLimit: 7\n"));
  REQUIRE(res);
  CHECK_MESSAGE(res->status == 200, res->body);
  CHECK(res->get_header_value("Tenant-Master-Apply") == "configured");
  // The same as JSON.
  res = c.Call("PUT", "/api/v1/workspaces/route-json", kAdminToken,
               R"({"apiVersion":"tenantmaster.io/v1alpha1","kind":"Workspace",)"
               R"("metadata":{"name":"route-json","labels":{"plan":"gold"}},)"
               R"("spec":{"product":"landing","mode":"shared"}})",
               "application/json");
  REQUIRE(res);
  CHECK_MESSAGE(res->status == 201, res->body);
  CHECK(res->get_header_value("Tenant-Master-Apply") == "created");

  // GET one and the list (with a page and a label selector).
  object = Object(c.Call("GET", "/api/v1/workspaces/route-a"));
  CHECK(object.at("metadata").at("name").as_string() == "route-a");
  CHECK(object.at("spec").at("database").at("connectionLimit").to_number<int>() == 7);
  res = c.Call("GET", "/api/v1/workspaces");
  REQUIRE(res);
  CHECK(res->status == 200);
  json::object list = Object(res);
  std::vector<std::string> names;
  for (const json::value& item : list.at("items").as_array()) {
    names.emplace_back(item.at("metadata").at("name").as_string());
  }
  CHECK(names == std::vector<std::string>{"dir-forced", "from-dir", "route-a", "route-json"});
  list = Object(c.Call("GET", "/api/v1/workspaces?limit=1"));
  REQUIRE(list.at("items").as_array().size() == 1);
  CHECK(list.at("items").at(0).at("metadata").at("name").as_string() == "dir-forced");
  CHECK_FALSE(list.at("metadata").at("continue").as_string().empty());
  list = Object(c.Call("GET", "/api/v1/workspaces?labelSelector=plan%3Dgold"));
  REQUIRE(list.at("items").as_array().size() == 1);
  CHECK(list.at("items").at(0).at("metadata").at("name").as_string() == "route-json");

  // The write is recorded as an event naming who did it.
  const json::object events = Object(c.Call("GET", "/api/v1/events?workspace=route-a&limit=50"));
  bool applied = false;
  for (const json::value& event : events.at("items").as_array()) {
    CHECK(event.at("workspace").as_string() == "route-a");
    if (event.at("reason").as_string() == "Applied" &&
        std::string_view(event.at("message").as_string()).find("by env:admin") !=
            std::string_view::npos) {
      applied = true;
    }
  }
  CHECK(applied);

  // reconcile: 202 {workspace, queuedAt}.
  res = c.Call("POST", "/api/v1/workspaces/route-a/reconcile");
  REQUIRE(res);
  CHECK_MESSAGE(res->status == 202, res->body);
  object = Object(res);
  CHECK(object.at("workspace").as_string() == "route-a");
  CHECK_FALSE(object.at("queuedAt").as_string().empty());

  // suspend / resume an API-owned one: spec.suspend.
  res = c.Call("POST", "/api/v1/workspaces/route-a/suspend");
  REQUIRE(res);
  CHECK_MESSAGE(res->status == 200, res->body);
  object = Object(res);
  CHECK(object.at("spec").at("suspend").as_bool());
  res = c.Call("POST", "/api/v1/workspaces/route-a/resume");
  REQUIRE(res);
  CHECK_MESSAGE(res->status == 200, res->body);
  object = Object(res);
  const json::object& spec = object.at("spec").as_object();
  CHECK((!spec.contains("suspend") || !spec.at("suspend").as_bool()));

  // suspend / resume a directory-owned one: an override, cleared by resume.
  res = c.Call("POST", "/api/v1/workspaces/from-dir/suspend");
  REQUIRE(res);
  CHECK_MESSAGE(res->status == 200, res->body);
  object = Object(res);
  CHECK(object.at("status").at("override").at("suspend").as_bool());
  res = c.Call("POST", "/api/v1/workspaces/from-dir/resume");
  REQUIRE(res);
  CHECK_MESSAGE(res->status == 200, res->body);
  CHECK_FALSE(Object(res).at("status").as_object().contains("override"));

  // DELETE: 202 with the object, phase Deleting; then gone.
  res = c.Call("DELETE", "/api/v1/workspaces/route-json");
  REQUIRE(res);
  CHECK_MESSAGE(res->status == 202, res->body);
  object = Object(res);
  CHECK(object.at("metadata").at("name").as_string() == "route-json");
  CHECK(object.at("status").at("phase").as_string() == "Deleting");
  CHECK_MESSAGE(
      Eventually([&] { return c.Status("GET", "/api/v1/workspaces/route-json") == 404; }, 60s,
                 200ms),
      c.Log());
}

TEST_CASE("api routes: 404 for an unknown workspace, route or token; 405 with Allow") {
  Cluster& c = Shared();
  const std::vector<std::pair<std::string, std::string>> calls = {
      {"GET", "/api/v1/workspaces/no-such"},
      {"DELETE", "/api/v1/workspaces/no-such"},
      {"POST", "/api/v1/workspaces/no-such/reconcile"},
      {"POST", "/api/v1/workspaces/no-such/suspend"},
      {"POST", "/api/v1/workspaces/no-such/resume"},
  };
  for (const auto& [method, path] : calls) {
    CAPTURE(method);
    CAPTURE(path);
    const json::object body = CheckError(c.Call(method, path), 404, "NotFound");
    CHECK(body.at("message").as_string().find("no-such") != std::string::npos);
  }
  // None of them created it.
  CHECK(c.Status("GET", "/api/v1/workspaces/no-such") == 404);
  CheckError(c.Call("DELETE", "/api/v1/tokens/zzzzzzzzzz"), 404, "NotFound");
  CheckError(c.Call("GET", "/api/v1/nothing-here"), 404, "NotFound");
  auto res = c.Call("PATCH", "/api/v1/workspaces/from-dir", kAdminToken, "{}");
  CheckError(res, 405, "MethodNotAllowed");
  CHECK(res->get_header_value("Allow").find("PUT") != std::string::npos);
}

TEST_CASE("api routes: 409 for a directory-owned workspace; ?force=true moves it to the API") {
  Cluster& c = Shared();
  json::object body =
      CheckError(c.Call("PUT", "/api/v1/workspaces/from-dir", kAdminToken,
                        Manifest("from-dir", "  database:\n    connectionLimit: 3\n")),
                 409, "Conflict");
  CHECK(body.at("details").at("source").as_string() == "local");
  CHECK(body.at("details").at("kind").as_string() == "directory");
  body = CheckError(c.Call("DELETE", "/api/v1/workspaces/from-dir"), 409, "Conflict");
  CHECK(body.at("details").at("source").as_string() == "local");
  CHECK(body.at("details").at("kind").as_string() == "directory");
  // Still the directory's, unchanged.
  json::object object = Object(c.Call("GET", "/api/v1/workspaces/from-dir"));
  CHECK(object.at("metadata").at("annotations").at("tenantmaster.io/source").as_string() ==
        "local");
  CHECK(object.at("status").at("phase").as_string() != "Deleting");

  auto res = c.Call("PUT", "/api/v1/workspaces/dir-forced?force=true", kAdminToken,
                    Manifest("dir-forced", "  database:\n    connectionLimit: 4\n"));
  REQUIRE(res);
  CHECK_MESSAGE(res->status == 200, res->body);
  CHECK(res->get_header_value("Tenant-Master-Apply") == "configured");
  object = Object(res);
  CHECK(object.at("metadata").at("annotations").at("tenantmaster.io/source").as_string() == "api");
  // Now API-owned: a plain PUT is accepted.
  res = c.Call("PUT", "/api/v1/workspaces/dir-forced", kAdminToken,
               Manifest("dir-forced", "  database:\n    connectionLimit: 4\n"));
  REQUIRE(res);
  CHECK_MESSAGE(res->status == 200, res->body);
  CHECK(res->get_header_value("Tenant-Master-Apply") == "unchanged");
}

TEST_CASE("api routes: 422 with the finding's location in the request; 400 for bad input") {
  Cluster& c = Shared();
  // An unknown field on line 8, column 3.
  json::object body = CheckError(c.Call("PUT", "/api/v1/workspaces/route-bad", kAdminToken,
                                        Manifest("route-bad", "  color: red\n")),
                                 422, "Invalid");
  REQUIRE(body.at("details").is_array());
  REQUIRE_FALSE(body.at("details").as_array().empty());
  json::value finding = body.at("details").at(0);
  CHECK(finding.at("file").as_string() == "request");
  CHECK(finding.at("line").to_number<int>() == 8);
  CHECK(finding.at("column").to_number<int>() == 3);
  CHECK(finding.at("field").as_string() == "spec.color");
  CHECK_FALSE(finding.at("message").as_string().empty());
  CHECK(c.Status("GET", "/api/v1/workspaces/route-bad") == 404);

  // POST /api/v1/plan, many documents: an invalid mode on line 15 (the second document's line 7).
  body = CheckError(c.Call("POST", "/api/v1/plan", kAdminToken,
                           Manifest("plan-a") + "---\n" +
                               "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\n"
                               "metadata:\n  name: plan-b\nspec:\n  product: landing\n"
                               "  mode: sideways\n"),
                    422, "Invalid");
  REQUIRE(body.at("details").is_array());
  REQUIRE_FALSE(body.at("details").as_array().empty());
  finding = body.at("details").at(0);
  CHECK(finding.at("file").as_string() == "request");
  CHECK(finding.at("line").to_number<int>() == 15);
  CHECK(finding.at("column").to_number<int>() == 9);
  CHECK(finding.at("field").as_string() == "spec.mode");

  // A valid plan: the actions that would create plan-a; nothing is applied.
  const json::object plan = Object(c.Call("POST", "/api/v1/plan", kAdminToken, Manifest("plan-a")));
  REQUIRE(plan.at("items").as_array().size() == 1);
  CHECK(plan.at("items").at(0).at("workspace").as_string() == "plan-a");
  CHECK_FALSE(plan.at("items").at(0).at("converged").as_bool());
  CHECK_FALSE(plan.at("items").at(0).at("actions").as_array().empty());
  CHECK(plan.at("diagnostics").is_array());
  CHECK(c.Status("GET", "/api/v1/workspaces/plan-a") == 404);

  // 400: a limit out of 1..1000 or not a number, a name that is not the URL's.
  for (const char* query : {"limit=0", "limit=1001", "limit=ten"}) {
    CAPTURE(query);
    CheckError(c.Call("GET", std::string("/api/v1/workspaces?") + query), 400, "BadRequest");
  }
  CheckError(c.Call("GET", "/api/v1/events?limit=0"), 400, "BadRequest");
  body = CheckError(c.Call("PUT", "/api/v1/workspaces/route-other", kAdminToken,
                           Manifest("route-mismatch")),
                    400, "BadRequest");
  CHECK(body.at("message").as_string().find("route-mismatch") != std::string::npos);
  CHECK(body.at("message").as_string().find("route-other") != std::string::npos);
  CHECK(c.Status("GET", "/api/v1/workspaces/route-other") == 404);
  CHECK(c.Status("GET", "/api/v1/workspaces/route-mismatch") == 404);
  // 415: neither JSON nor YAML.
  CheckError(c.Call("PUT", "/api/v1/workspaces/route-a", kAdminToken, Manifest("route-a"),
                    "text/plain"),
             415, "UnsupportedMediaType");
}

TEST_CASE("api routes: products, version, sources, events, traefik") {
  Cluster& c = Shared();
  json::object products = Object(c.Call("GET", "/api/v1/products"));
  bool landing = false;
  for (const json::value& item : products.at("items").as_array()) {
    if (item.at("name").as_string() != "landing") continue;
    landing = true;
    CHECK(item.at("source").as_string() == "local");
    CHECK(item.at("modes").is_array());
    CHECK(item.at("workspaces").to_number<int>() >= 1);
  }
  CHECK(landing);
  // erp's shared runtime: said by the products route, converged by the leader, one event.
  bool erp = false;
  for (const json::value& item : products.at("items").as_array()) {
    const std::string name(item.at("name").as_string());
    if (name != "erp") {
      CHECK(item.at("sharedRuntime").is_null());
      continue;
    }
    erp = true;
    CHECK(item.at("sharedRuntime").at("stack").as_string() == "tm-shared-erp");
    CHECK(item.at("sharedRuntime").at("endpoint").to_number<int>() == 1);
  }
  CHECK(erp);
  CHECK(Eventually([&] {
    return std::filesystem::exists(c.dir().path() / "deployments" / "shared-erp" /
                                   "docker-compose.yml");
  }));
  CHECK(Eventually([&] {
    const json::object runtime =
        Object(c.Call("GET", "/api/v1/events?workspace=runtime:erp&limit=10"));
    const json::array& items = runtime.at("items").as_array();
    return items.size() == 1 && items.at(0).at("reason").as_string() == "RuntimeReady";
  }));
  const json::object version = Object(c.Call("GET", "/api/v1/version"));
  CHECK_FALSE(version.at("version").as_string().empty());
  const json::object sources = Object(c.Call("GET", "/api/v1/sources"));
  REQUIRE(sources.at("items").as_array().size() == 1);
  CHECK(sources.at("items").at(0).at("name").as_string() == "local");
  CHECK(sources.at("items").at(0).at("kind").as_string() == "directory");
  const json::object events = Object(c.Call("GET", "/api/v1/events?limit=5"));
  CHECK(events.at("items").as_array().size() <= 5);
  CHECK_FALSE(events.at("items").as_array().empty());
  auto res = c.Call("GET", "/api/v1/traefik");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(Object(res).at("http").is_object());
  const std::string etag = res->get_header_value("ETag");
  REQUIRE_FALSE(etag.empty());
  res = c.Call("GET", "/api/v1/traefik", kReadToken, "", kYaml, {{"If-None-Match", etag}});
  REQUIRE(res);
  CHECK(res->status == 304);
}

TEST_CASE("api routes: managed tokens: create, use, list, revoke") {
  Cluster& c = Shared();
  auto res = c.Call("POST", "/api/v1/tokens", kAdminToken,
                    R"({"role":"viewer","ttl":"1h","description":"routes e2e"})",
                    "application/json");
  REQUIRE(res);
  CHECK_MESSAGE(res->status == 201, res->body);
  const json::object created = Object(res);
  const std::string token(created.at("token").as_string());
  const std::string id(created.at("id").as_string());
  CHECK(token.rfind("tmt_" + id + "_", 0) == 0);
  CHECK(id.size() == 10);
  CHECK(created.at("role").as_string() == "viewer");
  CHECK(created.at("description").as_string() == "routes e2e");
  CHECK_FALSE(created.at("expiresAt").as_string().empty());
  c.managed_token = token;
  CheckError(c.Call("POST", "/api/v1/tokens", kAdminToken, R"({"role":"king","ttl":"1h"})",
                    "application/json"),
             400, "BadRequest");

  // The managed viewer reads and is refused a write.
  CHECK(c.Status("GET", "/api/v1/workspaces", token) == 200);
  CheckError(c.Call("POST", "/api/v1/workspaces/from-dir/reconcile", token), 403, "Forbidden");

  res = c.Call("GET", "/api/v1/tokens");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body.find(token) == std::string::npos);
  const json::object list = Object(res);
  REQUIRE(list.at("items").as_array().size() == 1);
  CHECK(list.at("items").at(0).at("id").as_string() == id);
  // docs/api.md lists a boolean `revoked`; the server answers an optional `revokedAt` instead
  // (controller/api/auth.cpp TokenObject, and its own tests): checked as served, reported.
  CHECK_FALSE(list.at("items").at(0).as_object().contains("revokedAt"));

  res = c.Call("DELETE", "/api/v1/tokens/" + id);
  REQUIRE(res);
  CHECK_MESSAGE(res->status == 200, res->body);
  CHECK_FALSE(Object(res).at("revokedAt").as_string().empty());
  CHECK(res->body.find(token) == std::string::npos);
  CheckUnauthorized(c.Call("GET", "/api/v1/workspaces", token), token);
}

TEST_CASE("api routes: the probes and /metrics are open; /metrics holds no token") {
  Cluster& c = Shared();
  auto res = c.Call("GET", "/healthz", std::nullopt);
  REQUIRE(res);
  CHECK(res->status == 200);
  res = c.Call("GET", "/readyz", std::nullopt);
  REQUIRE(res);
  CHECK(res->status == 200);
  res = c.Call("GET", "/metrics", std::nullopt);
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body.find("tenant_master_http_rejected_total") != std::string::npos);
  CHECK(res->body.find(kAdminToken) == std::string::npos);
  CHECK(res->body.find(kReadToken) == std::string::npos);
  CHECK(res->body.find("tmt_") == std::string::npos);
  if (!c.managed_token.empty()) CHECK(res->body.find(c.managed_token) == std::string::npos);
  CHECK(res->body.find("Bearer") == std::string::npos);
}

TEST_CASE("api routes: the dashboard's session against the daemon's PostgreSQL store") {
  Cluster& c = Shared();
  // Log in with the admin token (JSON): the session is a row of the store (schema v7).
  auto res = c.Call("POST", "/login", std::nullopt, R"({"secret":")" + kAdminToken + R"("})",
                    "application/json");
  REQUIRE(res);
  REQUIRE_MESSAGE(res->status == 200, res->body);
  const std::string set_cookie = res->get_header_value("Set-Cookie");
  CHECK(set_cookie.find("; HttpOnly; SameSite=Strict") != std::string::npos);
  const std::string cookie = set_cookie.substr(0, set_cookie.find(';'));
  const std::string csrf(json::parse(res->body).at("csrfToken").as_string());
  CHECK(json::parse(res->body).at("baseDomain") == "example.test");
  // The page, and the overview's page of one item with the count of the rest.
  res = c.Call("GET", "/", std::nullopt, "", kYaml, {{"Cookie", cookie}});
  REQUIRE(res);
  CHECK(res->body.find(R"(<table id="workspaces">)") != std::string::npos);
  res = c.Call("GET", "/api/v1/workspaces?limit=1", std::nullopt, "", kYaml, {{"Cookie", cookie}});
  REQUIRE(res);
  REQUIRE_MESSAGE(res->status == 200, res->body);
  const json::value page = json::parse(res->body);
  CHECK(page.at("items").as_array().size() == 1);
  CHECK(page.at("metadata").at("remainingItemCount").as_int64() >= 1);
  // A write with the cookie: 403 without the CSRF token, accepted with it.
  res = c.Call("POST", "/api/v1/workspaces/from-dir/reconcile", std::nullopt, "", kYaml,
               {{"Cookie", cookie}});
  REQUIRE(res);
  CHECK(res->status == 403);
  res = c.Call("POST", "/api/v1/workspaces/from-dir/reconcile", std::nullopt, "", kYaml,
               {{"Cookie", cookie}, {"X-CSRF-Token", csrf}});
  REQUIRE(res);
  CHECK_MESSAGE(res->status == 202, res->body);
  // Logout ends it on the store: the cookie reads nothing more.
  res = c.Call("POST", "/logout", std::nullopt, "", "application/json",
               {{"Cookie", cookie}, {"X-CSRF-Token", csrf}});
  REQUIRE(res);
  CHECK(res->status == 200);
  res = c.Call("GET", "/api/v1/session", std::nullopt, "", kYaml, {{"Cookie", cookie}});
  REQUIRE(res);
  CHECK(res->status == 401);
  res = c.Call("GET", "/api/v1/workspaces", std::nullopt, "", kYaml, {{"Cookie", cookie}});
  REQUIRE(res);
  CHECK(res->status == 401);
}
