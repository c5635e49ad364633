// The daemon side of the workspace API (controller/daemon/workspace_api.hpp) against fakes (the
// in-memory store and PostgreSQL) and a real watched directory holding the `shop` product: apply
// (created / configured / unchanged, 422 with locations, 400, 415, 409 and force), delete through
// the reclaim path, reconcile, suspend and resume (API-owned: a new generation; source-owned: an
// override that makes the role NOLOGIN), plan (nothing applied), products, and the list answered
// from memory (paging, selectors, phases, never-validated workspaces).
#include <doctest/doctest.h>
#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "controller/daemon/daemon.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/fake_postgres.hpp"
#include "tests/support/fake_store.hpp"
#include "tests/support/shop_fleet.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

using namespace tmaster;
using namespace std::chrono_literals;
using testing::Eventually;
namespace json = boost::json;

std::string Workspace(const std::string& name, const std::string& extra = "",
                      const std::string& labels = "") {
  return "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata:\n  name: " + name +
         "\n" + labels +
         "spec:\n  product: shop\n  mode: shared\n  database:\n    cluster: default\n" + extra;
}

json::value Parse(const std::string& text) {
  return json::parse(text);
}

class ApiHarness {
 public:
  ApiHarness() {
    spdlog::set_level(spdlog::level::off);
    dir_.Write("fleet/product.yaml", testing::kShopProduct);
    config_.base_domain = "example.test";
    config_.clusters.push_back({.name = "default", .dsn = {}, .stacks_host = {}, .stacks_port = 0});
    manifests::SourceConfig source;
    source.name = "local";
    source.directory = std::filesystem::path(dir_.path()) / "fleet";
    config_.sources.push_back(source);
    controller::DaemonDeps deps;
    deps.config = &config_;
    deps.store = &store_;
    deps.gateways = {{"default", &postgres_}};
    deps.master_key = &key_;
    deps.metrics = &metrics_;
    deps.clock = &clock_;
    deps.random = &random_;
    deps.override_store = &overrides_;
    controller::DaemonOptions options;
    options.workers = 2;
    options.debounce = 20ms;
    options.backoff.base = 20ms;
    options.backoff.max = 200ms;
    options.leader_poll = 50ms;
    daemon_ = std::make_unique<controller::Daemon>(std::move(deps), options);
  }
  ~ApiHarness() {
    daemon_->Stop();
    if (thread_.joinable()) thread_.join();
  }
  /// Starts the daemon and waits until the source's product is known to the API.
  void Start() {
    thread_ = std::thread([this] { daemon_->Run(); });
    REQUIRE(
        Eventually([&] { return Api().Products().body.find("\"shop\"") != std::string::npos; }));
  }
  void Write(const std::string& name, const std::string& text) {
    dir_.Write("fleet/" + name, text);
  }
  void Remove(const std::string& name) {
    std::filesystem::remove(std::filesystem::path(dir_.path()) / "fleet" / name);
  }
  controller::WorkspaceApi& Api() { return daemon_->Api(); }
  bool HasPhase(const std::string& name, const std::string& phase) {
    const auto state = store_.Snapshot();
    const auto it = state.statuses.find(name);
    return it != state.statuses.end() && it->second.phase == phase;
  }
  std::optional<controller::StoredWorkspace> Row(const std::string& name) {
    const auto state = store_.Snapshot();
    const auto it = state.workspaces.find(name);
    if (it == state.workspaces.end()) return std::nullopt;
    return it->second;
  }
  bool HasEvent(const std::string& workspace, const std::string& reason, const std::string& text) {
    for (const auto& event : store_.Snapshot().events) {
      if (event.workspace == workspace && event.reason == reason &&
          event.message.find(text) != std::string::npos) {
        return true;
      }
    }
    return false;
  }
  std::optional<controller::SourceStatus> Source() {
    const auto state = store_.Snapshot();
    const auto it = state.sources.find("local");
    if (it == state.sources.end()) return std::nullopt;
    return it->second;
  }
  bool CanLogin(const std::string& role) {
    const auto cluster = postgres_.cluster();
    const auto it = cluster.roles.find(role);
    return it != cluster.roles.end() && it->second.can_login;
  }
  testing::FakePostgres& postgres() { return postgres_; }
  controller::MemoryOverrideStore& overrides() { return overrides_; }

 private:
  testing::TempDir dir_;
  manifests::Config config_;
  testing::FakeStore store_;
  testing::FakePostgres postgres_;
  controller::Metrics metrics_;
  controller::SteadyClock clock_;
  controller::MtRandom random_;
  controller::MemoryOverrideStore overrides_;
  const Secret key_{"0123456789abcdef0123456789abcdef-api-test"};
  std::unique_ptr<controller::Daemon> daemon_;
  std::thread thread_;
};

}  // namespace

TEST_CASE("workspace API: apply creates, configures, leaves unchanged; events name who") {
  ApiHarness h;
  h.Start();
  controller::ApiAnswer created =
      h.Api().Apply("acme", Workspace("acme"), "application/yaml", false, "token:abc (ci)");
  REQUIRE(created.status == 201);
  CHECK(created.headers["Tenant-Master-Apply"] == "created");
  const json::value object = Parse(created.body);
  CHECK(object.at("metadata").at("name").as_string() == "acme");
  CHECK(object.at("metadata").at("annotations").at("tenantmaster.io/source").as_string() == "api");
  REQUIRE(h.Row("acme"));
  CHECK(h.Row("acme")->source == "api");
  CHECK(h.HasEvent("acme", "Applied", "by token:abc (ci)"));
  REQUIRE(Eventually([&] { return h.HasPhase("acme", "Ready"); }));
  CHECK(h.postgres().cluster().databases.count("tenant_acme") == 1);

  controller::ApiAnswer same =
      h.Api().Apply("acme", Workspace("acme"), "application/yaml", false, "env:admin");
  CHECK(same.status == 200);
  CHECK(same.headers["Tenant-Master-Apply"] == "unchanged");
  CHECK(h.Row("acme")->generation == 1);

  // JSON is accepted too, and a change is a new generation.
  const std::string as_json =
      R"({"apiVersion":"tenantmaster.io/v1alpha1","kind":"Workspace","metadata":{"name":"acme"},)"
      R"("spec":{"product":"shop","mode":"shared","database":{"cluster":"default","connectionLimit":7}}})";
  controller::ApiAnswer changed =
      h.Api().Apply("acme", as_json, "application/json; charset=utf-8", false, "env:admin");
  CHECK(changed.status == 200);
  CHECK(changed.headers["Tenant-Master-Apply"] == "configured");
  CHECK(h.Row("acme")->generation == 2);
  REQUIRE(Eventually([&] {
    const auto cluster = h.postgres().cluster();
    return cluster.roles.count("user_acme") == 1 &&
           cluster.roles.at("user_acme").connection_limit == 7;
  }));
}

TEST_CASE("workspace API: apply refuses bad bodies with the file's messages and locations") {
  ApiHarness h;
  h.Start();
  SUBCASE("422: a finding at its line, relative to the body") {
    controller::ApiAnswer answer = h.Api().Apply(
        "acme", Workspace("acme", "    connectionLimit: many\n"), "application/yaml", false, "x");
    REQUIRE(answer.status == 422);
    CHECK(answer.error == "Invalid");
    const json::value body = Parse(answer.body);
    CHECK(body.at("error").as_string() == "Invalid");
    const json::array& details = body.at("details").as_array();
    REQUIRE(details.size() >= 1);
    CHECK(details[0].at("file").as_string() == "request");
    CHECK(details[0].at("line").as_int64() == 10);
    CHECK(details[0].at("field").as_string() == "spec.database.connectionLimit");
    CHECK_FALSE(h.Row("acme"));
  }
  SUBCASE("422: a product no source declares, with the validator's own message") {
    std::string text = Workspace("acme");
    text.replace(text.find("product: shop"), 13, "product: nope");
    controller::ApiAnswer answer = h.Api().Apply("acme", text, "application/yaml", false, "x");
    REQUIRE(answer.status == 422);
    const json::value body = Parse(answer.body);
    const json::array& details = body.at("details").as_array();
    REQUIRE(details.size() == 1);
    CHECK(details[0].at("line").as_int64() == 6);
    CHECK(std::string(details[0].at("message").as_string()) == "Product \"nope\" not found");
  }
  SUBCASE("422: a backup schedule that never fires, on its field, as the dashboard's form shows it") {
    const std::string as_json =
        R"({"apiVersion":"tenantmaster.io/v1alpha1","kind":"Workspace","metadata":{"name":"acme"},)"
        R"("spec":{"product":"shop","mode":"shared","backup":{"schedule":"0 0 31 2 *"}}})";
    controller::ApiAnswer answer = h.Api().Apply("acme", as_json, "application/json", false, "x");
    REQUIRE(answer.status == 422);
    const json::value body = Parse(answer.body);
    const json::array& details = body.at("details").as_array();
    REQUIRE(details.size() == 1);
    CHECK(details[0].at("field").as_string() == "spec.backup.schedule");
    CHECK(std::string(details[0].at("message").as_string()).find("day-of-month") !=
          std::string::npos);
    CHECK_FALSE(h.Row("acme"));
  }
  SUBCASE("400: another name than the URL's") {
    controller::ApiAnswer answer = h.Api().Apply("other", Workspace("acme"), "", false, "x");
    CHECK(answer.status == 400);
    CHECK(answer.error == "BadRequest");
    CHECK(answer.message.find("\"acme\"") != std::string::npos);
    CHECK_FALSE(h.Row("acme"));
    CHECK_FALSE(h.Row("other"));
  }
  SUBCASE("400: two documents") {
    controller::ApiAnswer answer =
        h.Api().Apply("acme", Workspace("acme") + "---\n" + Workspace("beta"), "", false, "x");
    CHECK(answer.status == 400);
  }
  SUBCASE("422: a Product document is not accepted") {
    const std::string product =
        "apiVersion: tenantmaster.io/v1alpha1\nkind: Product\nmetadata: {name: other}\n"
        "spec: {image: example/other, defaultVersion: \"1\", modes: [shared]}\n";
    controller::ApiAnswer answer = h.Api().Apply("acme", product, "", false, "x");
    CHECK(answer.status == 422);
    CHECK(answer.body.find("products come from the configured sources") != std::string::npos);
  }
  SUBCASE("415: neither JSON nor YAML") {
    controller::ApiAnswer answer =
        h.Api().Apply("acme", Workspace("acme"), "text/plain", false, "x");
    CHECK(answer.status == 415);
    CHECK(answer.error == "UnsupportedMediaType");
  }
}

TEST_CASE(
    "workspace API: a directory's workspace is refused with 409 unless forced; forced, the source "
    "reports a Conflict") {
  ApiHarness h;
  h.Write("a.yaml", Workspace("alpha"));
  h.Start();
  REQUIRE(Eventually([&] { return h.HasPhase("alpha", "Ready"); }));
  controller::ApiAnswer refused =
      h.Api().Apply("alpha", Workspace("alpha", "    connectionLimit: 3\n"), "", false, "x");
  REQUIRE(refused.status == 409);
  const json::value body = Parse(refused.body);
  CHECK(body.at("details").at("source").as_string() == "local");
  CHECK(body.at("details").at("kind").as_string() == "directory");
  CHECK(h.Row("alpha")->source == "local");
  CHECK(h.Api().Delete("alpha", false, "x").status == 409);
  CHECK(h.Row("alpha")->deleting_since == std::nullopt);

  controller::ApiAnswer forced =
      h.Api().Apply("alpha", Workspace("alpha", "    connectionLimit: 3\n"), "", true, "env:admin");
  CHECK(forced.status == 200);
  CHECK(forced.headers["Tenant-Master-Apply"] == "configured");
  CHECK(h.Row("alpha")->source == "api");
  CHECK(h.HasEvent("alpha", "Applied", "moved from directory source \"local\""));
  // The next read of the directory does not take it back: the source says Conflict.
  h.Write("b.yaml", Workspace("beta"));
  REQUIRE(Eventually([&] { return h.Source() && h.Source()->reason == "Conflict"; }));
  CHECK(h.Source()->ready);
  CHECK(h.Source()->message.find("\"alpha\"") != std::string::npos);
  CHECK(h.Row("alpha")->source == "api");
  REQUIRE(Eventually([&] {
    const auto cluster = h.postgres().cluster();
    return cluster.roles.count("user_alpha") == 1 &&
           cluster.roles.at("user_alpha").connection_limit == 3;
  }));
}

TEST_CASE("workspace API: delete runs the reclaim policy; unknown names are 404") {
  ApiHarness h;
  h.Start();
  CHECK(h.Api().Delete("ghost", false, "x").status == 404);
  CHECK(h.Api().Reconcile("ghost", "x").status == 404);
  REQUIRE(h.Api()
              .Apply("gone", Workspace("gone", "    reclaimPolicy: Delete\n"), "", false, "x")
              .status == 201);
  REQUIRE(Eventually([&] { return h.HasPhase("gone", "Ready"); }));
  CHECK(h.postgres().cluster().databases.count("tenant_gone") == 1);
  controller::ApiAnswer deleted = h.Api().Delete("gone", false, "token:abc (ci)");
  REQUIRE(deleted.status == 202);
  CHECK(Parse(deleted.body).at("status").at("phase").as_string() == "Deleting");
  CHECK(h.HasEvent("gone", "Deleting", "by token:abc (ci)"));
  REQUIRE(Eventually([&] { return !h.Row("gone"); }));
  CHECK(h.postgres().cluster().databases.count("tenant_gone") == 0);
  CHECK(h.postgres().cluster().roles.count("user_gone") == 0);
  CHECK(h.Api().Get("gone").status == 404);
}

TEST_CASE("workspace API: reconcile queues at once") {
  ApiHarness h;
  h.Start();
  REQUIRE(h.Api().Apply("acme", Workspace("acme"), "", false, "x").status == 201);
  REQUIRE(Eventually([&] { return h.HasPhase("acme", "Ready"); }));
  // Drift made by hand is repaired by a requested run long before the resync (5 minutes).
  h.postgres().cluster().roles.at("user_acme").connection_limit = 99;
  controller::ApiAnswer queued = h.Api().Reconcile("acme", "env:admin");
  REQUIRE(queued.status == 202);
  CHECK(Parse(queued.body).at("workspace").as_string() == "acme");
  CHECK(Parse(queued.body).at("queuedAt").as_string().size() == 20);
  CHECK(h.HasEvent("acme", "ReconcileRequested", "by env:admin"));
  REQUIRE(Eventually(
      [&] { return h.postgres().cluster().roles.at("user_acme").connection_limit == -1; }));
}

TEST_CASE("workspace API: suspend and resume a source-owned workspace through an override") {
  ApiHarness h;
  h.Write("a.yaml", Workspace("alpha"));
  h.Start();
  REQUIRE(Eventually([&] { return h.HasPhase("alpha", "Ready"); }));
  CHECK(h.CanLogin("user_alpha"));
  CHECK(h.Api().Suspend("ghost", true, "x").status == 404);

  controller::ApiAnswer suspended = h.Api().Suspend("alpha", true, "token:abc (ops)");
  REQUIRE(suspended.status == 200);
  CHECK(Parse(suspended.body).at("status").at("override").at("suspend").as_bool());
  CHECK(Parse(suspended.body).at("status").at("override").at("by").as_string() ==
        "token:abc (ops)");
  CHECK(h.Row("alpha")->generation == 1);  // the source's spec is untouched
  CHECK(h.Row("alpha")->source == "local");
  REQUIRE(h.overrides().ListOverrides()->size() == 1);
  REQUIRE(
      Eventually([&] { return !h.CanLogin("user_alpha") && h.HasPhase("alpha", "Suspended"); }));

  controller::ApiAnswer resumed = h.Api().Resume("alpha", "token:abc (ops)");
  REQUIRE(resumed.status == 200);
  CHECK(Parse(resumed.body).at("status").as_object().if_contains("override") == nullptr);
  CHECK(h.overrides().ListOverrides()->empty());
  REQUIRE(Eventually([&] { return h.CanLogin("user_alpha") && h.HasPhase("alpha", "Ready"); }));
  CHECK(h.HasEvent("alpha", "Suspended", "by token:abc (ops)"));
  CHECK(h.HasEvent("alpha", "Resumed", "by token:abc (ops)"));
}

TEST_CASE("workspace API: suspend and resume an API-owned workspace set spec.suspend") {
  ApiHarness h;
  h.Start();
  REQUIRE(h.Api().Apply("acme", Workspace("acme"), "", false, "x").status == 201);
  REQUIRE(Eventually([&] { return h.HasPhase("acme", "Ready"); }));
  REQUIRE(h.Api().Suspend("acme", true, "env:admin").status == 200);
  CHECK(h.Row("acme")->generation == 2);
  CHECK(h.Row("acme")->spec_json.find(R"("suspend":true)") != std::string::npos);
  CHECK(h.overrides().ListOverrides()->empty());
  REQUIRE(Eventually([&] { return !h.CanLogin("user_acme"); }));
  REQUIRE(h.Api().Resume("acme", "env:admin").status == 200);
  CHECK(h.Row("acme")->generation == 3);
  REQUIRE(Eventually([&] { return h.CanLogin("user_acme"); }));
}

TEST_CASE("workspace API: plan lists the actions and applies nothing") {
  ApiHarness h;
  h.Start();
  const std::string body =
      Workspace("one") + "---\n" + Workspace("two", "    connectionLimit: many\n");
  controller::ApiAnswer invalid = h.Api().Plan(body, "application/yaml");
  REQUIRE(invalid.status == 422);
  CHECK(Parse(invalid.body).at("details").at(0).at("line").as_int64() == 20);

  controller::ApiAnswer plan = h.Api().Plan(Workspace("one") + "---\n" + Workspace("two"), "");
  REQUIRE(plan.status == 200);
  const json::value answer = Parse(plan.body);
  const json::array& items = answer.at("items").as_array();
  REQUIRE(items.size() == 2);
  CHECK(items[0].at("workspace").as_string() == "one");
  CHECK_FALSE(items[0].at("converged").as_bool());
  const json::array& actions = items[0].at("actions").as_array();
  REQUIRE(actions.size() >= 2);
  CHECK(actions[0].at("kind").as_string() == "CreateRole");
  CHECK(actions[0].at("description").as_string().size() > 0);
  CHECK(h.postgres().cluster().databases.count("tenant_one") == 0);
  CHECK(h.postgres().cluster().roles.count("user_one") == 0);
  CHECK_FALSE(h.Row("one"));
}

TEST_CASE("workspace API: products name their source and count their workspaces") {
  ApiHarness h;
  h.Write("a.yaml", Workspace("alpha"));
  h.Start();
  REQUIRE(h.Api().Apply("acme", Workspace("acme"), "", false, "x").status == 201);
  const json::value answer = Parse(h.Api().Products().body);
  const json::array& items = answer.at("items").as_array();
  REQUIRE(items.size() == 1);
  CHECK(items[0].at("name").as_string() == "shop");
  CHECK(items[0].at("source").as_string() == "local");
  CHECK(items[0].at("defaultVersion").as_string() == "1.0.0");
  CHECK(items[0].at("modes").as_array().size() == 1);
  CHECK(items[0].at("workspaces").as_int64() == 2);
  CHECK(items[0].at("rollout").is_null());
  // Its revision, as the sync recorded it in the store.
  CHECK(items[0].at("revision").at("number").as_int64() == 1);
  CHECK(items[0].at("revision").at("digest").as_string().size() == 12);
}

TEST_CASE("workspace API: products show their rollout policy with its defaults") {
  ApiHarness h;
  h.Write("product.yaml",
          "apiVersion: tenantmaster.io/v1alpha1\nkind: Product\nmetadata: {name: shop}\n"
          "spec:\n  image: example/shop\n  defaultVersion: \"1.0.0\"\n  modes: [shared]\n"
          "  rollout:\n    waves:\n      - {selector: {matchLabels: {ring: canary}}}\n"
          "      - {percent: 10}\n      - {percent: 100}\n"
          "    pauseBetweenWaves: 600s\n    failureBudget: 2\n    readyTimeout: 1h30m\n");
  h.Start();
  const json::value answer = Parse(h.Api().Products().body);
  REQUIRE(answer.at("items").as_array().size() == 1);
  CHECK(json::serialize(answer.at("items").at(0).at("rollout")) ==
        R"({"waves":[{"selector":{"matchLabels":{"ring":"canary"}}},{"percent":10},)"
        R"({"percent":100}],"pauseBetweenWaves":"10m","maxUnavailable":1,"failureBudget":2,)"
        R"("readyTimeout":"1h30m","healthCheck":null})");
}

TEST_CASE(
    "workspace API: a manifest that never validated is listed as Stalled, and goes with its file") {
  ApiHarness h;
  h.Write("bad.yaml", Workspace("broken", "    connectionLimit: many\n"));
  h.Write("a.yaml", Workspace("alpha"));
  h.Start();
  REQUIRE(Eventually([&] { return h.HasPhase("broken", "Stalled"); }));
  controller::FleetQuery stalled;
  stalled.phases = {"Stalled"};
  REQUIRE(
      Eventually([&] { return h.Api().List(stalled).body.find("broken") != std::string::npos; }));
  const json::value list = Parse(h.Api().List(stalled).body);
  REQUIRE(list.at("items").as_array().size() == 1);
  const json::value& item = list.at("items").at(0);
  CHECK(item.at("metadata").at("name").as_string() == "broken");
  CHECK(item.at("status").at("phase").as_string() == "Stalled");
  CHECK(json::serialize(item.at("status")).find("InvalidManifest") != std::string::npos);
  CHECK(h.Api().Get("broken").status == 200);
  // The file goes: so does its entry.
  h.Remove("bad.yaml");
  REQUIRE(Eventually([&] { return h.Api().Get("broken").status == 404; }));
  CHECK(h.Api().Get("alpha").status == 200);
}

TEST_CASE("workspace API: the list's filters and sort from the query, and 400 for bad values") {
  ApiHarness h;
  h.Write("a.yaml", Workspace("alpha", "  subdomain: alpha-shop\n"));
  h.Write("b.yaml", Workspace("bravo"));
  h.Write("bad.yaml", Workspace("broken", "    connectionLimit: many\n"));
  h.Start();
  REQUIRE(Eventually([&] {
    return h.HasPhase("alpha", "Ready") && h.HasPhase("bravo", "Ready") &&
           h.HasPhase("broken", "Stalled");
  }));
  const auto list = [&](std::vector<std::pair<std::string, std::string>> params) {
    controller::WorkspaceCall call;
    call.op = controller::WorkspaceCall::Op::kList;
    for (const auto& [key, value] : params) {
      if (key == "phase" && call.phase.empty()) call.phase = value;
      if (key == "continue") call.continue_token = value;
      if (key == "limit") call.limit = std::stoul(value);
      if (key == "labelSelector") call.label_selector = value;
    }
    call.params = std::move(params);
    return controller::ServeWorkspaceCall(h.Api(), call);
  };
  const auto names = [](const controller::WorkspaceAnswer& answer) {
    std::vector<std::string> out;
    const json::value body = Parse(answer.body);
    for (const json::value& item : body.at("items").as_array()) {
      out.emplace_back(item.at("metadata").at("name").as_string());
    }
    return out;
  };
  using V = std::vector<std::string>;
  REQUIRE(Eventually([&] { return names(list({})).size() == 3; }));
  CHECK(names(list({{"sort", "stuck"}})) == V{"broken", "alpha", "bravo"});
  CHECK(names(list({{"sort", "-name"}})) == V{"broken", "bravo", "alpha"});
  CHECK(names(list({{"phase", "Stalled, Ready"}})) == V{"alpha", "bravo", "broken"});
  CHECK(names(list({{"phase", "Stalled"}, {"phase", "Degraded"}})) == V{"broken"});
  CHECK(names(list({{"product", "shop"}, {"mode", "shared"}})) == V{"alpha", "bravo"});
  CHECK(names(list({{"q", "ALPHA-SH"}})) == V{"alpha"});
  CHECK(names(list({{"q", "connectionlimit"}})) == V{"broken"});  // its message
  CHECK(names(list({{"phase", ""}, {"sort", ""}, {"mode", ""}})).size() == 3);

  const controller::WorkspaceAnswer first = list({{"sort", "-stuck"}, {"limit", "2"}});
  CHECK(names(first) == V{"alpha", "bravo"});
  const std::string token =
      std::string(Parse(first.body).at("metadata").at("continue").as_string());
  CHECK(names(list({{"sort", "-stuck"}, {"continue", token}})) == V{"broken"});

  const auto refused = [&](std::vector<std::pair<std::string, std::string>> params,
                           const std::string& says) {
    const controller::WorkspaceAnswer answer = list(std::move(params));
    CHECK(answer.status == 400);
    const json::value body = Parse(answer.body);
    CHECK(body.at("error").as_string() == "BadRequest");
    CHECK(std::string(body.at("message").as_string()).find(says) != std::string::npos);
  };
  refused({{"mode", "both"}}, R"(mode must be shared or dedicated, got "both")");
  refused({{"phase", "Ready,Broken"}},
          R"(phase must be one of Stalled, Degraded, Progressing, Pending, Deleting, Suspended, )"
          R"(Ready or a comma list of them, got "Ready,Broken")");
  refused({{"phase", "Ready,"}}, "phase must be one of");
  refused({{"sort", "severity"}},
          "sort must be one of name, stuck, phase, product, mode, lastReconcile, age");
  refused({{"sort", "--name"}}, R"(got "--name")");
  refused({{"sort", "stuck"}, {"continue", "zz"}}, "continue token zz was not made by this server");
  refused({{"sort", "name"}, {"continue", token}}, "made for sort=-stuck, not sort=name");
  refused({{"labelSelector", "tier"}}, "label selector item");
}
