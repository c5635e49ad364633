// The controller's HTTP endpoint over real sockets: cpp-httplib client against HttpServer on an
// ephemeral port, with the in-memory FakeStore, real Metrics and the real webhook verification.

#include <doctest/doctest.h>
#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/crypto.hpp"
#include "common/scrub.hpp"
#include "common/secret.hpp"
#include "controller/api/event_stream.hpp"
#include "controller/api/http_server.hpp"
#include "controller/api/webhook.hpp"
#include "controller/daemon/daemon.hpp"
#include "controller/daemon/workspace_api.hpp"
#include "controller/runtime/metrics.hpp"
#include "tests/controller/api/sse_client.hpp"
#include "tests/support/fake_postgres.hpp"
#include "tests/support/fake_rollout_control.hpp"
#include "tests/support/fake_store.hpp"
#include "tests/support/process.hpp"
#include "tests/support/shop_fleet.hpp"
#include "tests/support/temp_dir.hpp"

namespace tmaster::controller {
namespace {

namespace json = boost::json;
using testing::FakeStore;

constexpr const char* kSecret = "itest-webhook-secret";
constexpr const char* kSha = "9fceb02d0ae598e95dc970b74767f19372d61af8";
constexpr std::size_t kBodyLimit = 1024;

constexpr const char* kAcmeSpec =
    R"({"apiVersion":"tenantmaster.io/v1alpha1","kind":"Workspace",)"
    R"("metadata":{"name":"acme","labels":{"plan":"enterprise"}},)"
    R"("spec":{"product":"erp","mode":"dedicated","subdomain":"acme"}})";
constexpr const char* kBravoSpec =
    R"({"apiVersion":"tenantmaster.io/v1alpha1","kind":"Workspace",)"
    R"("metadata":{"name":"bravo","labels":{"plan":"basic"}},)"
    R"("spec":{"product":"erp","mode":"shared","subdomain":"bravo"}})";

json::value ParseJson(const std::string& text) {
  boost::system::error_code ec;
  json::value value = json::parse(text, ec);
  REQUIRE_MESSAGE(!ec, text);
  return value;
}

std::string PushBody(const std::string& branch) {
  return R"({"ref":"refs/heads/)" + branch + R"(","after":")" + kSha + R"("})";
}

httplib::Headers GithubHeaders(const std::string& body, const std::string& key = kSecret) {
  return {{"X-GitHub-Event", "push"},
          {"X-Hub-Signature-256", "sha256=" + crypto::Hex(crypto::HmacSha256(key, body))}};
}

// A running server on 127.0.0.1:0 with a FakeStore, and a client for it.
struct Fixture {
  FakeStore store;
  Metrics metrics;
  std::mutex mutex;
  Readiness readiness{true, {}};
  std::atomic<int> webhook_calls{0};
  std::unique_ptr<HttpServer> server;
  std::unique_ptr<httplib::Client> client;

  Fixture() {
    HttpHandlers handlers;
    handlers.readiness = [this] {
      const std::lock_guard lock(mutex);
      return readiness;
    };
    handlers.webhook = [this](const WebhookRequest& request) {
      ++webhook_calls;
      return VerifyWebhook(request, Secret(std::string(kSecret)), "main", kBodyLimit);
    };
    HttpServerOptions options;
    options.listen = "127.0.0.1:0";
    options.webhook_body_limit = kBodyLimit;
    server = std::make_unique<HttpServer>(store, metrics, std::move(handlers), options);
    const Outcome<Done> started = server->Start();
    REQUIRE_MESSAGE(started.ok(), (started.ok() ? "" : started.failure().message));
    REQUIRE(server->port() > 0);
    client = std::make_unique<httplib::Client>("127.0.0.1", server->port());
    client->set_read_timeout(10, 0);
  }

  void SetReadiness(Readiness value) {
    const std::lock_guard lock(mutex);
    readiness = std::move(value);
  }

  httplib::Result Get(const std::string& path) { return client->Get(path.c_str()); }

  // Seeds acme (with a status) and bravo (without), both from source "upstream".
  void SeedWorkspaces() {
    REQUIRE(store.UpsertSpec("acme", "upstream", "rev-1", kAcmeSpec).ok());
    REQUIRE(store
                .UpsertSpec("acme", "upstream", "rev-2",  // a new spec: generation 2
                            std::string(kAcmeSpec).replace(std::string(kAcmeSpec).find(R"("erp")"),
                                                           5, R"("crm")"))
                .ok());
    REQUIRE(store.UpsertSpec("bravo", "upstream", "rev-2", kBravoSpec).ok());
    WorkspaceStatus status;
    status.name = "acme";
    status.observed_generation = 1;
    status.phase = "Progressing";
    status.conditions_json =
        R"([{"type":"Ready","status":"False","reason":"Progressing","message":"database acme: creating","lastTransitionTime":"2023-11-14T22:13:20Z"}])";
    status.revision = "rev-1";
    status.next_retry_unix = 1700000100;
    status.last_error = "stack acme: not ready";
    status.last_runs_json =
        R"([{"start":"2023-11-14T22:13:20Z","durationSeconds":1.5,"result":"failure","reason":"StackNotReady"}])";
    REQUIRE(store.PutStatus(status).ok());
  }

  std::string MetricLine(const std::string& series) {
    const std::string text = metrics.Render();
    const std::size_t at = text.find(series + " ");
    if (at == std::string::npos) return "";
    return text.substr(at + series.size() + 1, text.find('\n', at) - at - series.size() - 1);
  }
};

void CheckJsonContentType(const httplib::Result& res) {
  CHECK(res->get_header_value("Content-Type") == "application/json");
}

}  // namespace

TEST_CASE("http: /healthz answers ok") {
  Fixture f;
  const auto res = f.Get("/healthz");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body == "ok");
  CHECK(res->get_header_value("Content-Type").rfind("text/plain", 0) == 0);
}

TEST_CASE("http: /readyz is 200 when ready and 503 with the problems when not") {
  Fixture f;
  auto res = f.Get("/readyz");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body == "ok");
  f.SetReadiness({false, {"store unreachable", "source upstream: FetchFailed"}});
  res = f.Get("/readyz");
  REQUIRE(res);
  CHECK(res->status == 503);
  CHECK(res->get_header_value("Content-Type").rfind("text/plain", 0) == 0);
  CHECK(res->body == "store unreachable\nsource upstream: FetchFailed\n");
  // /healthz does not depend on readiness.
  CHECK(f.Get("/healthz")->status == 200);
}

TEST_CASE("http: /metrics serves the registry in the Prometheus text format") {
  Fixture f;
  f.metrics.IncReconcile("success");
  f.metrics.SetLeader(true);
  const auto res = f.Get("/metrics");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->get_header_value("Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(res->body.find("# TYPE tenant_master_reconcile_total counter\n") != std::string::npos);
  CHECK(res->body.find("tenant_master_reconcile_total{result=\"success\"} 1\n") !=
        std::string::npos);
  CHECK(res->body.find("\ntenant_master_leader 1\n") != std::string::npos);
}

TEST_CASE("http: /api/v1/workspaces lists every workspace with its status in two store calls") {
  Fixture f;
  f.SeedWorkspaces();
  f.store.ResetCalls();
  const auto res = f.Get("/api/v1/workspaces");
  REQUIRE(res);
  CHECK(res->status == 200);
  CheckJsonContentType(res);
  CHECK(f.store.Calls("ListWorkspaces") == 1);
  CHECK(f.store.Calls("ListStatuses") == 1);
  CHECK(f.store.TotalCalls() == 2);

  const json::value body = ParseJson(res->body);
  const json::array& items = body.at("items").as_array();
  REQUIRE(items.size() == 2);
  const json::object& acme = items[0].as_object();
  CHECK(acme.at("apiVersion") == "tenantmaster.io/v1alpha1");
  CHECK(acme.at("kind") == "Workspace");
  CHECK(acme.at("metadata").at("name") == "acme");
  CHECK(acme.at("metadata").at("generation") == 2);
  CHECK(acme.at("metadata").at("labels").at("plan") == "enterprise");
  CHECK(acme.at("metadata").at("annotations").at("tenantmaster.io/source") == "upstream");
  CHECK(acme.at("spec").at("product") == "crm");
  const json::object& status = acme.at("status").as_object();
  CHECK(status.at("phase") == "Progressing");
  CHECK(status.at("observedGeneration") == 1);
  REQUIRE(status.at("conditions").as_array().size() == 1);
  CHECK(status.at("conditions").as_array()[0].at("reason") == "Progressing");
  CHECK(status.at("revision") == "rev-1");
  CHECK(status.at("lastRuns").as_array()[0].at("durationSeconds") == 1.5);
  CHECK(status.at("nextRetry") == "2023-11-14T22:15:00Z");
  CHECK(status.at("lastError") == "stack acme: not ready");

  const json::object& bravo = items[1].as_object();
  CHECK(bravo.at("metadata").at("name") == "bravo");
  CHECK(bravo.at("metadata").at("generation") == 1);
  CHECK(bravo.at("status").at("phase") == "Pending");
  CHECK(bravo.at("status").at("conditions").as_array().empty());
  CHECK_FALSE(bravo.at("status").as_object().contains("nextRetry"));
}

TEST_CASE("http: /api/v1/workspaces?labelSelector filters, and a bad selector is 400") {
  Fixture f;
  f.SeedWorkspaces();
  auto res = f.Get("/api/v1/workspaces?labelSelector=plan%3Dbasic");
  REQUIRE(res);
  REQUIRE(res->status == 200);
  const json::value body = ParseJson(res->body);
  REQUIRE(body.at("items").as_array().size() == 1);
  CHECK(body.at("items").as_array()[0].at("metadata").at("name") == "bravo");
  res = f.Get("/api/v1/workspaces?labelSelector=plan");
  REQUIRE(res);
  CHECK(res->status == 400);
  CHECK(ParseJson(res->body).at("error") == "BadRequest");
  CHECK(ParseJson(res->body).at("message").as_string().find("plan") != std::string::npos);
}

TEST_CASE("http: /api/v1/workspaces/{name} returns the object, or 404") {
  Fixture f;
  f.SeedWorkspaces();
  REQUIRE(f.store.MarkDeleting("bravo").ok());
  auto res = f.Get("/api/v1/workspaces/acme");
  REQUIRE(res);
  CHECK(res->status == 200);
  CheckJsonContentType(res);
  json::value body = ParseJson(res->body);
  CHECK(body.at("metadata").at("name") == "acme");
  CHECK(body.at("metadata").at("generation") == 2);
  CHECK(body.at("status").at("phase") == "Progressing");
  CHECK_FALSE(body.at("metadata").as_object().contains("deletionTimestamp"));

  res = f.Get("/api/v1/workspaces/bravo");
  REQUIRE(res);
  CHECK(res->status == 200);
  body = ParseJson(res->body);
  CHECK(body.at("metadata").at("deletionTimestamp") == "2023-11-14T22:13:20Z");
  CHECK(body.at("status").at("phase") == "Deleting");

  res = f.Get("/api/v1/workspaces/nope");
  REQUIRE(res);
  CHECK(res->status == 404);
  CheckJsonContentType(res);
  CHECK(res->body == R"({"error":"NotFound","message":"workspace \"nope\" not found"})");
}

TEST_CASE("http: /api/v1/events: newest first, filtered by workspace, limited; bad limit 400") {
  Fixture f;
  for (int i = 0; i < 5; ++i) {
    Event event;
    event.workspace = i % 2 == 0 ? "acme" : "bravo";
    event.type = "Normal";
    event.reason = "Step" + std::to_string(i);
    event.message = "step " + std::to_string(i);
    event.at_unix = 1700000000 + i;
    REQUIRE(f.store.AppendEvent(event).ok());
  }
  auto res = f.Get("/api/v1/events");
  REQUIRE(res);
  CHECK(res->status == 200);
  CheckJsonContentType(res);
  json::value body = ParseJson(res->body);
  json::array items = body.at("items").as_array();
  REQUIRE(items.size() == 5);
  CHECK(items[0].at("reason") == "Step4");
  CHECK(items[0].at("workspace") == "acme");
  CHECK(items[0].at("type") == "Normal");
  CHECK(items[0].at("message") == "step 4");
  CHECK(items[0].at("time") == "2023-11-14T22:13:24Z");
  CHECK(items[0].at("id").to_number<std::int64_t>() > items[1].at("id").to_number<std::int64_t>());
  CHECK(items[4].at("reason") == "Step0");

  res = f.Get("/api/v1/events?workspace=bravo");
  REQUIRE(res);
  items = ParseJson(res->body).at("items").as_array();
  REQUIRE(items.size() == 2);
  CHECK(items[0].at("reason") == "Step3");
  CHECK(items[1].at("reason") == "Step1");

  res = f.Get("/api/v1/events?workspace=acme&limit=2");
  REQUIRE(res);
  items = ParseJson(res->body).at("items").as_array();
  REQUIRE(items.size() == 2);
  CHECK(items[0].at("reason") == "Step4");
  CHECK(items[1].at("reason") == "Step2");

  // Above the maximum is clamped, not refused.
  res = f.Get("/api/v1/events?limit=5000");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(ParseJson(res->body).at("items").as_array().size() == 5);

  for (const char* bad : {"abc", "0", "-3", "2x", "1.5"}) {
    CAPTURE(bad);
    res = f.Get(std::string("/api/v1/events?limit=") + bad);
    REQUIRE(res);
    CHECK(res->status == 400);
    CheckJsonContentType(res);
    CHECK(ParseJson(res->body).at("error") == "BadRequest");
    CHECK(ParseJson(res->body).at("message").as_string().find("limit") != std::string::npos);
  }
}

TEST_CASE("http: /api/v1/sources lists source statuses") {
  Fixture f;
  REQUIRE(f.store
              .PutSourceStatus({"upstream", "git", "abc123", false, "FetchFailed",
                                "git fetch upstream: timed out", 1700000000, 1700000060})
              .ok());
  const auto res = f.Get("/api/v1/sources");
  REQUIRE(res);
  CHECK(res->status == 200);
  const json::value body = ParseJson(res->body);
  REQUIRE(body.at("items").as_array().size() == 1);
  const json::object& source = body.at("items").as_array()[0].as_object();
  CHECK(source.at("name") == "upstream");
  CHECK(source.at("kind") == "git");
  CHECK(source.at("revision") == "abc123");
  CHECK(source.at("ready") == false);
  CHECK(source.at("reason") == "FetchFailed");
  CHECK(source.at("lastSyncTime") == "2023-11-14T22:13:20Z");
  CHECK(source.at("lastAttemptTime") == "2023-11-14T22:14:20Z");
}

TEST_CASE("http: a store failure is 503 store unavailable") {
  Fixture f;
  f.SeedWorkspaces();
  f.store.SetDown(true);
  for (const char* path :
       {"/api/v1/workspaces", "/api/v1/workspaces/acme", "/api/v1/events", "/api/v1/sources"}) {
    CAPTURE(path);
    const auto res = f.Get(path);
    REQUIRE(res);
    CHECK(res->status == 503);
    CheckJsonContentType(res);
    CHECK(ParseJson(res->body).at("error") == "Unavailable");
    CHECK(ParseJson(res->body).at("message") ==
          "store unavailable: store: connection refused (fake)");
  }
  SUBCASE("the second query of the list failing is a 503 too") {
    f.store.SetDown(false);
    f.store.ResetCalls();
    f.store.FailNext(1);
    CHECK(f.Get("/api/v1/workspaces")->status == 503);  // the first query fails
    CHECK(f.Get("/api/v1/workspaces")->status == 200);  // and then the store is back
  }
  // The health endpoints do not touch the store.
  CHECK(f.Get("/healthz")->status == 200);
  CHECK(f.Get("/metrics")->status == 200);
}

TEST_CASE("http: unknown paths are 404 and wrong methods 405, in JSON") {
  Fixture f;
  auto res = f.Get("/nope");
  REQUIRE(res);
  CHECK(res->status == 404);
  CheckJsonContentType(res);
  CHECK(ParseJson(res->body).at("error") == "NotFound");
  res = f.Get("/api/v1/workspaces/acme/snapshots");
  REQUIRE(res);
  CHECK(res->status == 404);
  res = f.client->Delete("/healthz");
  REQUIRE(res);
  CHECK(res->status == 405);
  CHECK(res->get_header_value("Allow") == "GET");
  CheckJsonContentType(res);
  res = f.client->Post("/api/v1/workspaces", "{}", "application/json");
  REQUIRE(res);
  CHECK(res->status == 405);
  res = f.Get("/hooks/git");
  REQUIRE(res);
  CHECK(res->status == 405);
  CHECK(res->get_header_value("Allow") == "POST");
  CHECK(f.store.Snapshot().deliveries.empty());
}

TEST_CASE("http: a signed push is accepted (202), stored and counted") {
  Fixture f;
  const std::string body = PushBody("main");
  const auto res = f.client->Post("/hooks/git", GithubHeaders(body), body, "application/json");
  REQUIRE(res);
  CHECK(res->status == 202);
  CheckJsonContentType(res);
  const json::value answer = ParseJson(res->body);
  CHECK(answer.at("verdict") == "accepted");
  CHECK_FALSE(answer.at("message").as_string().empty());
  CHECK(f.webhook_calls == 1);
  const auto deliveries = f.store.Snapshot().deliveries;
  REQUIRE(deliveries.size() == 1);
  CHECK(deliveries[0].provider == "github");
  CHECK(deliveries[0].verdict == "accepted");
  CHECK(deliveries[0].branch == "main");
  CHECK(deliveries[0].revision == kSha);
  CHECK(f.MetricLine("tenant_master_webhook_deliveries_total{verdict=\"accepted\"}") == "1");
  CHECK(f.MetricLine("tenant_master_webhook_deliveries_total{verdict=\"bad_signature\"}") == "0");
}

TEST_CASE("http: a bad signature is 401, stored and counted; the secret is not echoed") {
  Fixture f;
  const std::string body = PushBody("main");
  const auto res =
      f.client->Post("/hooks/git", GithubHeaders(body, "wrong-key"), body, "application/json");
  REQUIRE(res);
  CHECK(res->status == 401);
  CHECK(ParseJson(res->body).at("verdict") == "bad_signature");
  CHECK(res->body.find(kSecret) == std::string::npos);
  const auto deliveries = f.store.Snapshot().deliveries;
  REQUIRE(deliveries.size() == 1);
  CHECK(deliveries[0].verdict == "bad_signature");
  CHECK(deliveries[0].provider == "github");
  CHECK(deliveries[0].revision.empty());
  CHECK(f.MetricLine("tenant_master_webhook_deliveries_total{verdict=\"bad_signature\"}") == "1");
  CHECK(f.MetricLine("tenant_master_webhook_deliveries_total{verdict=\"accepted\"}") == "0");
}

TEST_CASE("http: a push to another branch is 200 ignored_branch and stored") {
  Fixture f;
  const std::string body = PushBody("feature");
  const auto res = f.client->Post("/hooks/git", GithubHeaders(body), body, "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(ParseJson(res->body).at("verdict") == "ignored_branch");
  REQUIRE(f.store.Snapshot().deliveries.size() == 1);
  CHECK(f.store.Snapshot().deliveries[0].branch == "feature");
}

TEST_CASE("http: an oversized body is 413 too_large, stored and counted, never verified") {
  Fixture f;
  const std::string body = PushBody("main") + std::string(kBodyLimit, ' ');
  SUBCASE("with Content-Length") {
    const auto res = f.client->Post("/hooks/git", GithubHeaders(body), body, "application/json");
    REQUIRE(res);
    CHECK(res->status == 413);
    CHECK(ParseJson(res->body).at("verdict") == "too_large");
  }
  SUBCASE("chunked, without Content-Length") {
    const auto res = f.client->Post(
        "/hooks/git", GithubHeaders(body),
        [&body](std::size_t offset, httplib::DataSink& sink) {
          if (offset >= body.size()) {
            sink.done();
            return true;
          }
          const std::size_t n = std::min<std::size_t>(256, body.size() - offset);
          return sink.write(body.data() + offset, n);
        },
        "application/json");
    REQUIRE(res);
    CHECK(res->status == 413);
    CHECK(ParseJson(res->body).at("verdict") == "too_large");
  }
  CHECK(f.webhook_calls == 0);
  const auto deliveries = f.store.Snapshot().deliveries;
  REQUIRE(deliveries.size() == 1);
  CHECK(deliveries[0].verdict == "too_large");
  CHECK(deliveries[0].provider == "github");
  CHECK(f.MetricLine("tenant_master_webhook_deliveries_total{verdict=\"too_large\"}") == "1");
  // The server still answers afterwards.
  httplib::Client fresh("127.0.0.1", f.server->port());
  const auto health = fresh.Get("/healthz");
  REQUIRE(health);
  CHECK(health->status == 200);
}

TEST_CASE("http: a body exactly at the limit is verified, not refused") {
  Fixture f;
  std::string body = PushBody("main");
  body += std::string(kBodyLimit - body.size(), ' ');  // JSON allows trailing whitespace
  REQUIRE(body.size() == kBodyLimit);
  const auto res = f.client->Post("/hooks/git", GithubHeaders(body), body, "application/json");
  REQUIRE(res);
  CHECK(res->status == 202);
  CHECK(f.webhook_calls == 1);
}

TEST_CASE("http: a delivery that cannot be recorded still gets its answer and is counted") {
  Fixture f;
  f.store.SetDown(true);
  const std::string body = PushBody("main");
  const auto res = f.client->Post("/hooks/git", GithubHeaders(body), body, "application/json");
  REQUIRE(res);
  CHECK(res->status == 202);
  CHECK(f.store.Calls("RecordDelivery") == 1);
  CHECK(f.store.Snapshot().deliveries.empty());
  CHECK(f.MetricLine("tenant_master_webhook_deliveries_total{verdict=\"accepted\"}") == "1");
}

TEST_CASE("http: without a webhook handler every delivery is 401 and still recorded") {
  FakeStore store;
  Metrics metrics;
  HttpServer server(store, metrics, HttpHandlers{}, HttpServerOptions{"127.0.0.1:0", 1024, 1});
  REQUIRE(server.Start().ok());
  httplib::Client client("127.0.0.1", server.port());
  const std::string body = PushBody("main");
  const auto res = client.Post("/hooks/git", GithubHeaders(body), body, "application/json");
  REQUIRE(res);
  CHECK(res->status == 401);
  REQUIRE(store.Snapshot().deliveries.size() == 1);
  CHECK(store.Snapshot().deliveries[0].verdict == "bad_signature");
  // No readiness handler: ready.
  CHECK(client.Get("/readyz")->status == 200);
}

TEST_CASE("http: Start fails with ListenFailed naming the address") {
  FakeStore store;
  Metrics metrics;
  Fixture running;
  const std::string taken = "127.0.0.1:" + std::to_string(running.server->port());
  for (const std::string& listen : {taken, std::string("nonsense"), std::string("127.0.0.1:99999"),
                                    std::string("127.0.0.1:http"), std::string("::1:80")}) {
    CAPTURE(listen);
    HttpServer server(store, metrics, {}, HttpServerOptions{listen, 1024, 1});
    const Outcome<Done> started = server.Start();
    REQUIRE_FALSE(started.ok());
    CHECK(started.failure().kind == FailureKind::kStalled);
    CHECK(started.failure().reason == "ListenFailed");
    CHECK(started.failure().message.find(listen) != std::string::npos);
    CHECK(server.port() == 0);
    server.Stop();  // nothing to stop: a no-op
  }
}

namespace {

/// Whether this host has the IPv6 loopback address ::1 (containers often run without IPv6).
bool HasIpv6Loopback() {
  std::ifstream if_inet6("/proc/net/if_inet6");
  std::stringstream interfaces;
  interfaces << if_inet6.rdbuf();
  return interfaces.str().find("00000000000000000000000000000001") != std::string::npos;
}

}  // namespace

// Skipped, and counted as skipped in the summary, on a host without ::1.
TEST_CASE("http: listens on IPv6 loopback" * doctest::skip(!HasIpv6Loopback())) {
  FakeStore store;
  Metrics metrics;
  HttpServer server(store, metrics, {}, HttpServerOptions{"[::1]:0", 1024, 1});
  const Outcome<Done> started = server.Start();
  REQUIRE_MESSAGE(started.ok(), (started.ok() ? "" : started.failure().message));
  httplib::Client client("::1", server.port());
  const auto res = client.Get("/healthz");
  REQUIRE(res);
  CHECK(res->body == "ok");
}

TEST_CASE("http: Stop lets an in-flight request finish, then refuses connections; idempotent") {
  FakeStore store;
  Metrics metrics;
  std::mutex mutex;
  std::condition_variable changed;
  bool entered = false;
  bool release = false;
  HttpHandlers handlers;
  handlers.readiness = [&] {
    std::unique_lock lock(mutex);
    entered = true;
    changed.notify_all();
    changed.wait(lock, [&] { return release; });
    return Readiness{true, {}};
  };
  HttpServer server(store, metrics, std::move(handlers), HttpServerOptions{"127.0.0.1:0", 1024, 2});
  REQUIRE(server.Start().ok());
  const int port = server.port();

  std::optional<int> status;
  std::thread request([&] {
    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(10, 0);
    if (const auto res = client.Get("/readyz")) status = res->status;
  });
  {
    std::unique_lock lock(mutex);
    REQUIRE(changed.wait_for(lock, std::chrono::seconds(10), [&] { return entered; }));
  }
  auto stopper = std::async(std::launch::async, [&] { server.Stop(); });
  // Stop waits for the request in flight: a good while later it still has not returned.
  CHECK(stopper.wait_for(std::chrono::milliseconds(100)) == std::future_status::timeout);
  {
    const std::lock_guard lock(mutex);
    release = true;
  }
  changed.notify_all();
  request.join();
  REQUIRE(stopper.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
  CHECK(status == 200);

  httplib::Client late("127.0.0.1", port);
  late.set_connection_timeout(1, 0);
  CHECK_FALSE(late.Get("/healthz"));
  server.Stop();
  server.Stop();
}

TEST_CASE("http: Stop right after Start does not hang") {
  FakeStore store;
  Metrics metrics;
  for (int i = 0; i < 20; ++i) {
    HttpServer server(store, metrics, {}, HttpServerOptions{"127.0.0.1:0", 1024, 1});
    REQUIRE(server.Start().ok());
    server.Stop();
  }
}

TEST_CASE("http: a registered secret in a status, an event, a source or /readyz is served redacted") {
  const std::string secret = "http-egress-secret-\"quoted\\-4711";
  RegisterProcessSecret(secret);
  Fixture f;
  f.SeedWorkspaces();
  WorkspaceStatus status;
  status.name = "acme";
  status.phase = "Stalled";
  status.conditions_json = json::serialize(json::array{json::object{
      {"type", "Ready"}, {"status", "False"}, {"reason", "MigrationFailed"},
      {"message", "syntax error at or near \"" + secret + "\""}}});
  status.last_error = "MigrationFailed: " + secret;
  REQUIRE(f.store.PutStatus(status).ok());
  Event event;
  event.workspace = "acme";
  event.type = "Warning";
  event.reason = "MigrationFailed";
  event.message = "echo " + secret;
  REQUIRE(f.store.AppendEvent(event).ok());
  SourceStatus source;
  source.name = "upstream";
  source.kind = "git";
  source.reason = "FetchFailed";
  source.message = "fatal: " + secret;
  REQUIRE(f.store.PutSourceStatus(source).ok());
  f.SetReadiness({false, {"store: " + secret}});

  for (const std::string path : {"/api/v1/workspaces", "/api/v1/workspaces/acme",
                                 "/api/v1/events", "/api/v1/sources", "/readyz"}) {
    CAPTURE(path);
    const auto res = f.Get(path);
    REQUIRE(res);
    CHECK(res->body.find("http-egress-secret") == std::string::npos);
    CHECK(res->body.find("<redacted>") != std::string::npos);
  }
}

// ---- Authentication (docs/api.md#authentication, issue 13) ----

namespace {

constexpr const char* kAdminToken = "itest-admin-token-0123456789";
constexpr const char* kReadToken = "itest-read-token-9876543210";

httplib::Headers Bearer(const std::string& token) {
  return {{"Authorization", "Bearer " + token}};
}

// A server with both environment tokens, on 127.0.0.1:0, the store seeded with acme and bravo.
struct AuthFixture {
  FakeStore store;
  Metrics metrics;
  std::unique_ptr<HttpServer> server;
  std::unique_ptr<httplib::Client> client;

  explicit AuthFixture(std::string listen = "127.0.0.1:0") {
    HttpServerOptions options;
    options.listen = std::move(listen);
    options.admin_token = Secret(std::string(kAdminToken));
    options.read_token = Secret(std::string(kReadToken));
    server = std::make_unique<HttpServer>(store, metrics, HttpHandlers{}, options);
    const Outcome<Done> started = server->Start();
    REQUIRE_MESSAGE(started.ok(), (started.ok() ? "" : started.failure().message));
    client = std::make_unique<httplib::Client>("127.0.0.1", server->port());
    client->set_read_timeout(10, 0);
    REQUIRE(store.UpsertSpec("acme", "upstream", "rev-1", kAcmeSpec).ok());
  }

  // One request of `method` ("GET", "POST", "DELETE") with `headers`.
  httplib::Result Call(const std::string& method, const std::string& path,
                       const httplib::Headers& headers, const std::string& body = "") {
    if (method == "POST") return client->Post(path.c_str(), headers, body, "application/json");
    if (method == "DELETE") return client->Delete(path.c_str(), headers);
    return client->Get(path.c_str(), headers);
  }

  // Creates a managed token as the admin; returns the answer's object.
  json::object CreateToken(const std::string& body) {
    auto res = Call("POST", "/api/v1/tokens", Bearer(kAdminToken), body);
    REQUIRE(res);
    REQUIRE_MESSAGE(res->status == 201, res->body);
    return ParseJson(res->body).as_object();
  }
};

struct RouteCall {
  const char* method;
  const char* path;
};

// Every /api/v1 route there is (keep in step with the table in http_server.cpp).
const std::vector<RouteCall> kApiRoutes = {
    {"GET", "/api/v1/workspaces"},  {"GET", "/api/v1/workspaces/acme"},
    {"GET", "/api/v1/events"},      {"GET", "/api/v1/sources"},     {"GET", "/api/v1/deliveries"},
    {"GET", "/api/v1/traefik"},     {"GET", "/api/v1/tokens"},      {"POST", "/api/v1/tokens"},
    {"DELETE", "/api/v1/tokens/abcdefgh23"},
};

void CheckUnauthorized(const httplib::Result& res) {
  REQUIRE(res);
  CHECK(res->status == 401);
  CHECK(res->get_header_value("WWW-Authenticate") == "Bearer");
  CheckJsonContentType(res);
  const json::object body = ParseJson(res->body).as_object();
  CHECK(body.at("error") == "Unauthorized");
  CHECK_FALSE(body.at("message").as_string().empty());
}

}  // namespace

TEST_CASE("http auth: every /api/v1 route is 401 without a token and with a wrong one") {
  AuthFixture f;
  const std::string tmt_unknown = "tmt_abcdefgh23_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
  for (const RouteCall& route : kApiRoutes) {
    CAPTURE(route.method);
    CAPTURE(route.path);
    CheckUnauthorized(f.Call(route.method, route.path, {}, R"({"role":"admin"})"));
    CheckUnauthorized(f.Call(route.method, route.path, Bearer("wrong"), R"({"role":"admin"})"));
    // The admin token with one character more or less, another scheme, an empty bearer.
    CheckUnauthorized(f.Call(route.method, route.path, Bearer(std::string(kAdminToken) + "x")));
    CheckUnauthorized(f.Call(route.method, route.path,
                             Bearer(std::string(kAdminToken).substr(1))));
    CheckUnauthorized(f.Call(route.method, route.path,
                             {{"Authorization", std::string("Basic ") + kAdminToken}}));
    CheckUnauthorized(f.Call(route.method, route.path, {{"Authorization", "Bearer "}}));
    CheckUnauthorized(f.Call(route.method, route.path, Bearer(tmt_unknown)));
  }
  // Nothing was done for them.
  CHECK(f.store.Snapshot().tokens.empty());
  CHECK(f.store.Snapshot().events.empty());
  // The message never repeats what was sent.
  auto res = f.Call("GET", "/api/v1/workspaces", Bearer("wrong-and-secret-guess"));
  REQUIRE(res);
  CHECK(res->body.find("wrong-and-secret-guess") == std::string::npos);
}

TEST_CASE("http auth: the read token reads every GET route and gets 403 on the others") {
  AuthFixture f;
  for (const char* path : {"/api/v1/workspaces", "/api/v1/workspaces/acme", "/api/v1/events",
                           "/api/v1/sources", "/api/v1/deliveries"}) {
    CAPTURE(path);
    auto res = f.Call("GET", path, Bearer(kReadToken));
    REQUIRE(res);
    CHECK(res->status == 200);
    // The scheme is case-insensitive (RFC 7235).
    res = f.Call("GET", path, {{"Authorization", std::string("bearer ") + kReadToken}});
    REQUIRE(res);
    CHECK(res->status == 200);
  }
  for (const RouteCall& route : std::vector<RouteCall>{{"POST", "/api/v1/tokens"},
                                                       {"DELETE", "/api/v1/tokens/abcdefgh23"},
                                                       {"GET", "/api/v1/tokens"}}) {
    CAPTURE(route.path);
    auto res = f.Call(route.method, route.path, Bearer(kReadToken), R"({"role":"admin"})");
    REQUIRE(res);
    CHECK(res->status == 403);
    CheckJsonContentType(res);
    const json::object body = ParseJson(res->body).as_object();
    CHECK(body.at("error") == "Forbidden");
    CHECK(body.at("message").as_string().find("env:read") != std::string::npos);
  }
  CHECK(f.store.Snapshot().tokens.empty());
  // The admin token may do all of it.
  for (const RouteCall& route : kApiRoutes) {
    CAPTURE(route.path);
    auto res = f.Call(route.method, route.path, Bearer(kAdminToken), R"({"role":"viewer"})");
    REQUIRE(res);
    CHECK(res->status != 401);
    CHECK(res->status != 403);
    CHECK(res->status < 500);
  }
}

TEST_CASE("http auth: probes, /metrics and the webhook are open without a token") {
  AuthFixture f;
  for (const char* path : {"/healthz", "/readyz", "/metrics"}) {
    CAPTURE(path);
    auto res = f.Call("GET", path, {});
    REQUIRE(res);
    CHECK(res->status == 200);
  }
  // The webhook answers by its signature (no handler: 401 bad_signature), never asks a token.
  auto res = f.client->Post("/hooks/git", GithubHeaders("{}"), "{}", "application/json");
  REQUIRE(res);
  CHECK(res->get_header_value("WWW-Authenticate").empty());
  CHECK(ParseJson(res->body).at("verdict") == "bad_signature");
  CHECK(ParseJson(res->body).at("error") == "Unauthorized");
  CHECK(f.store.Snapshot().deliveries.size() == 1);
  // /metrics carries neither a token nor a message.
  res = f.Call("GET", "/metrics", {});
  REQUIRE(res);
  CHECK(res->body.find(kAdminToken) == std::string::npos);
  CHECK(res->body.find(kReadToken) == std::string::npos);
}

TEST_CASE("http auth: a managed token is created, used, listed without its secret, revoked: 401 at once") {
  AuthFixture f;
  const json::object created =
      f.CreateToken(R"({"role":"viewer","ttl":"30d","description":"ci deploy"})");
  const std::string token(created.at("token").as_string());
  const std::string id(created.at("id").as_string());
  CHECK(token.rfind("tmt_" + id + "_", 0) == 0);
  CHECK(id.size() == 10);
  CHECK(token.size() == 4 + 10 + 1 + 43);  // 32 random bytes in base64url
  CHECK(created.at("role") == "viewer");
  CHECK(created.at("description") == "ci deploy");
  // Only its digest is stored.
  const FakeStore::State stored = f.store.Snapshot();
  REQUIRE(stored.tokens.count(id) == 1);
  CHECK(stored.tokens.at(id).digest == crypto::Sha256Hex(token));
  CHECK(stored.tokens.at(id).expires_unix - stored.tokens.at(id).created_unix == 30 * 86400);
  // The event names who created it, and which token.
  REQUIRE(stored.events.size() == 1);
  CHECK(stored.events[0].workspace == kTokenEventsWorkspace);
  CHECK(stored.events[0].reason == "TokenCreated");
  CHECK(stored.events[0].message.find("token:" + id + " (ci deploy) created") !=
        std::string::npos);
  CHECK(stored.events[0].message.find("by env:admin") != std::string::npos);
  CHECK(stored.events[0].message.find(token) == std::string::npos);

  // Used: a viewer.
  auto res = f.Call("GET", "/api/v1/workspaces", Bearer(token));
  REQUIRE(res);
  CHECK(res->status == 200);
  res = f.Call("POST", "/api/v1/tokens", Bearer(token), R"({"role":"admin"})");
  REQUIRE(res);
  CHECK(res->status == 403);
  CHECK(ParseJson(res->body).at("message").as_string().find("token:" + id + " (ci deploy)") !=
        std::string::npos);
  // Its last use is recorded.
  CHECK(f.store.Snapshot().tokens.at(id).last_used_unix.has_value());

  // Listed, never with the token or its digest.
  res = f.Call("GET", "/api/v1/tokens", Bearer(kAdminToken));
  REQUIRE(res);
  REQUIRE(res->status == 200);
  CHECK(res->body.find(token.substr(15)) == std::string::npos);
  CHECK(res->body.find(crypto::Sha256Hex(token)) == std::string::npos);
  const json::array items = ParseJson(res->body).at("items").as_array();
  REQUIRE(items.size() == 1);
  CHECK(items[0].at("id").as_string() == id);
  CHECK(items[0].as_object().contains("lastUsedAt"));
  CHECK_FALSE(items[0].as_object().contains("token"));
  CHECK_FALSE(items[0].as_object().contains("digest"));

  // Revoked: refused on the very next request.
  res = f.Call("DELETE", "/api/v1/tokens/" + id, Bearer(kAdminToken));
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(ParseJson(res->body).as_object().contains("revokedAt"));
  CheckUnauthorized(f.Call("GET", "/api/v1/workspaces", Bearer(token)));
  const FakeStore::State after = f.store.Snapshot();
  REQUIRE(after.events.size() == 2);
  CHECK(after.events[1].reason == "TokenRevoked");
  CHECK(after.events[1].message == "token:" + id + " (ci deploy) revoked by env:admin");
  // Revoking again changes and records nothing; an unknown id is 404.
  res = f.Call("DELETE", "/api/v1/tokens/" + id, Bearer(kAdminToken));
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(f.store.Snapshot().events.size() == 2);
  res = f.Call("DELETE", "/api/v1/tokens/nosuchtok2", Bearer(kAdminToken));
  REQUIRE(res);
  CHECK(res->status == 404);
  CHECK(ParseJson(res->body).at("error") == "NotFound");
}

TEST_CASE("http auth: a managed admin token may create and revoke; the events name it") {
  AuthFixture f;
  const json::object admin = f.CreateToken(R"({"role":"admin","ttl":"12h","description":"ops"})");
  const std::string token(admin.at("token").as_string());
  auto res = f.Call("POST", "/api/v1/tokens", Bearer(token), R"({"role":"viewer"})");
  REQUIRE(res);
  REQUIRE(res->status == 201);
  const std::string second(ParseJson(res->body).at("id").as_string());
  res = f.Call("DELETE", "/api/v1/tokens/" + second, Bearer(token));
  REQUIRE(res);
  CHECK(res->status == 200);
  const FakeStore::State stored = f.store.Snapshot();
  REQUIRE(stored.events.size() == 3);
  const std::string who = "by token:" + std::string(admin.at("id").as_string()) + " (ops)";
  CHECK(stored.events[1].message.find(who) != std::string::npos);
  CHECK(stored.events[2].message.find(who) != std::string::npos);
}

TEST_CASE("http auth: an expired managed token is 401") {
  AuthFixture f;
  const std::string token = "tmt_expiredaa2_some-secret-of-the-expired-token";
  ApiToken row;
  row.id = "expiredaa2";
  row.digest = crypto::Sha256Hex(token);
  row.role = "admin";
  row.created_unix = 1'600'000'000;
  row.expires_unix = 1'600'086'400;  // long ago
  REQUIRE(f.store.CreateToken(row).ok());
  CheckUnauthorized(f.Call("GET", "/api/v1/workspaces", Bearer(token)));
  // The same row unexpired is accepted: the refusal was the expiry.
  row.id = "validaaaa2";
  row.expires_unix = 4'000'000'000;
  const std::string valid = "tmt_validaaaa2_some-secret-of-the-expired-token";
  row.digest = crypto::Sha256Hex(valid);
  REQUIRE(f.store.CreateToken(row).ok());
  auto res = f.Call("GET", "/api/v1/workspaces", Bearer(valid));
  REQUIRE(res);
  CHECK(res->status == 200);
  // The right id with another secret is unknown.
  CheckUnauthorized(f.Call("GET", "/api/v1/workspaces",
                           Bearer("tmt_validaaaa2_some-secret-of-the-expired-tokeN")));
}

TEST_CASE("http auth: bad token requests are 400 in the {error, message} shape") {
  AuthFixture f;
  for (const char* body : {"not json", R"({"ttl":"30d"})", R"({"role":"root"})",
                           R"({"role":"admin","ttl":"30s"})", R"({"role":"admin","extra":1})"}) {
    CAPTURE(body);
    auto res = f.Call("POST", "/api/v1/tokens", Bearer(kAdminToken), body);
    REQUIRE(res);
    CHECK(res->status == 400);
    CheckJsonContentType(res);
    const json::object answer = ParseJson(res->body).as_object();
    CHECK(answer.at("error") == "BadRequest");
    CHECK_FALSE(answer.at("message").as_string().empty());
    CHECK(answer.size() == 2);
  }
  CHECK(f.store.Snapshot().tokens.empty());
}

TEST_CASE("http auth: a store that cannot be reached while looking up a managed token is 503") {
  AuthFixture f;
  f.store.SetDown(true);
  auto res = f.Call("GET", "/api/v1/sources", Bearer("tmt_abcdefgh23_whatever-secret"));
  REQUIRE(res);
  CHECK(res->status == 503);
  CHECK(ParseJson(res->body).at("error") == "Unavailable");
  // The environment's tokens need no store.
  f.store.SetDown(false);
}

TEST_CASE("http auth: without a token the server is loopback only and everyone is anonymous admin") {
  FakeStore store;
  Metrics metrics;
  for (const std::string listen : {"0.0.0.0:0", "[::]:0", "192.0.2.1:0"}) {
    CAPTURE(listen);
    HttpServerOptions options;
    options.listen = listen;
    HttpServer server(store, metrics, {}, options);
    const Outcome<Done> started = server.Start();
    REQUIRE_FALSE(started.ok());
    CHECK(started.failure().reason == "ListenFailed");
    CHECK(started.failure().message.find("without a token") != std::string::npos);
  }
  // With a token, any address.
  {
    HttpServerOptions options;
    options.listen = "0.0.0.0:0";
    options.read_token = Secret(std::string(kReadToken));
    HttpServer server(store, metrics, {}, options);
    CHECK(server.Start().ok());
  }
  HttpServerOptions options;
  options.listen = "127.0.0.1:0";
  HttpServer server(store, metrics, {}, options);
  REQUIRE(server.Start().ok());
  httplib::Client client("127.0.0.1", server.port());
  auto res = client.Post("/api/v1/tokens", R"({"role":"viewer","description":"local"})",
                         "application/json");
  REQUIRE(res);
  CHECK(res->status == 201);
  REQUIRE(store.Snapshot().events.size() == 1);
  CHECK(store.Snapshot().events[0].message.find("by anonymous") != std::string::npos);
  // A page of another origin in the local browser may not write as anonymous (a form POST needs
  // no preflight); the server's own page may, and so may a client that is not a browser.
  for (const auto& [name, value] :
       std::vector<std::pair<std::string, std::string>>{{"Origin", "http://evil.example"},
                                                        {"Origin", "null"},
                                                        {"Sec-Fetch-Site", "cross-site"},
                                                        {"Sec-Fetch-Site", "same-site"}}) {
    CAPTURE(name);
    CAPTURE(value);
    res = client.Post("/api/v1/tokens", httplib::Headers{{name, value}},
                      R"({"role":"admin","description":"csrf"})", "application/json");
    REQUIRE(res);
    CHECK(res->status == 403);
  }
  CHECK(store.Snapshot().events.size() == 1);  // nothing was created
  res = client.Post("/api/v1/tokens",
                    httplib::Headers{{"Origin", "http://127.0.0.1:" + std::to_string(server.port())},
                                     {"Sec-Fetch-Site", "same-origin"}},
                    R"({"role":"viewer","description":"own page"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 201);
  // DNS rebinding: a page of evil.example whose name now resolves to 127.0.0.1 is same-origin
  // to the browser, which sends Host and Origin of evil.example. Only a loopback host by name or
  // address is answered, reads included; a name that merely begins like one is not.
  const std::string port = std::to_string(server.port());
  for (const std::string& host : std::vector<std::string>{
           "evil.example:" + port, "localhost.evil.example:" + port, "127.evil.example:" + port,
           "127.0.0.1.evil.example:" + port, "[::1].evil.example:" + port,
           "127.0.0.1:" + port + "x"}) {
    CAPTURE(host);
    res = client.Get("/api/v1/workspaces", httplib::Headers{{"Host", host}});
    REQUIRE(res);
    CHECK(res->status == 403);
    res = client.Post("/api/v1/tokens",
                      httplib::Headers{{"Host", host},
                                       {"Origin", "http://" + host},
                                       {"Sec-Fetch-Site", "same-origin"}},
                      R"({"role":"admin","description":"rebound"})", "application/json");
    REQUIRE(res);
    CHECK(res->status == 403);
  }
  CHECK(store.Snapshot().events.size() == 2);  // the two above, nothing since
  for (const std::string& host : std::vector<std::string>{
           "localhost:" + port, "LOCALHOST", "127.0.0.1", "127.1.2.3:" + port, "[::1]:" + port}) {
    CAPTURE(host);
    res = client.Get("/api/v1/workspaces", httplib::Headers{{"Host", host}});
    REQUIRE(res);
    CHECK(res->status == 200);
  }
  // A token presented is still checked.
  res = client.Get("/api/v1/workspaces", Bearer("wrong"));
  CheckUnauthorized(res);
}

// ---- TLS (http.tlsCertFile / tlsKeyFile) ----

namespace {

// A self-signed certificate for 127.0.0.1 made by the openssl CLI into `dir`/`name`.{crt,key}.
void MakeCertificate(const testing::TempDir& dir, const std::string& name, const std::string& cn) {
  const testing::ProcessResult made = testing::RunProcess(
      {"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
       "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=" + cn, "-addext",
       "subjectAltName=IP:127.0.0.1", "-keyout", (dir.path() / (name + ".key")).string(), "-out",
       (dir.path() / (name + ".crt")).string()});
  REQUIRE_MESSAGE(made.exit_code == 0, made.err);
}

void CopyFile(const std::filesystem::path& from, const std::filesystem::path& to) {
  std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing);
}

struct TlsFixture {
  testing::TempDir dir;
  FakeStore store;
  Metrics metrics;
  std::unique_ptr<HttpServer> server;

  TlsFixture() {
    MakeCertificate(dir, "first", "first.test");
    MakeCertificate(dir, "second", "second.test");
    CopyFile(dir.path() / "first.crt", dir.path() / "served.crt");
    CopyFile(dir.path() / "first.key", dir.path() / "served.key");
    HttpServerOptions options;
    options.listen = "127.0.0.1:0";
    options.read_token = Secret(std::string(kReadToken));
    options.tls_cert_file = (dir.path() / "served.crt").string();
    options.tls_key_file = (dir.path() / "served.key").string();
    options.tls_reload_interval = std::chrono::milliseconds(100);
    options.header_timeout = std::chrono::milliseconds(1000);
    server = std::make_unique<HttpServer>(store, metrics, HttpHandlers{}, options);
    const Outcome<Done> started = server->Start();
    REQUIRE_MESSAGE(started.ok(), (started.ok() ? "" : started.failure().message));
  }

  // GET `path` over TLS, trusting only the certificate `trusted` (first or second).
  httplib::Result Get(const std::string& trusted, const std::string& path,
                      const httplib::Headers& headers = {}) {
    httplib::SSLClient client("127.0.0.1", server->port());
    client.set_ca_cert_path((dir.path() / (trusted + ".crt")).string().c_str());
    client.enable_server_certificate_verification(true);
    client.set_read_timeout(5, 0);
    client.set_connection_timeout(5, 0);
    return client.Get(path.c_str(), headers);
  }
};

}  // namespace

TEST_CASE("http tls: served over TLS with the configured certificate; plain HTTP gets no answer") {
  TlsFixture f;
  auto res = f.Get("first", "/healthz");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body == "ok");
  res = f.Get("first", "/api/v1/workspaces", Bearer(kReadToken));
  REQUIRE(res);
  CHECK(res->status == 200);
  res = f.Get("first", "/api/v1/workspaces");
  REQUIRE(res);
  CHECK(res->status == 401);
  // A client that trusts another certificate refuses this server.
  CHECK_FALSE(f.Get("second", "/healthz"));
  // Plain HTTP to the TLS port: no HTTP answer.
  httplib::Client plain("127.0.0.1", f.server->port());
  plain.set_read_timeout(3, 0);
  auto answer = plain.Get("/healthz");
  CHECK((!answer || answer->status != 200));
}

TEST_CASE("http tls: TLS 1.1 is refused") {
  TlsFixture f;
  const testing::ProcessResult old = testing::RunProcess(
      {"/usr/bin/openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(f.server->port()),
       "-tls1_1"},
      {}, "");
  CHECK(old.exit_code != 0);
  const testing::ProcessResult current = testing::RunProcess(
      {"/usr/bin/openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(f.server->port()),
       "-tls1_2"},
      {}, "");
  CHECK(current.exit_code == 0);
  CHECK(current.out.find("CN = first.test") != std::string::npos);
}

TEST_CASE("http tls: a swapped certificate is served after the reload; a bad pair keeps the old") {
  TlsFixture f;
  REQUIRE(f.Get("first", "/healthz"));
  // A broken pair (the new certificate with the old key) is not loaded: the old one stays.
  CopyFile(f.dir.path() / "second.crt", f.dir.path() / "served.crt");
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  (void)f.Get("first", "/healthz");  // the accept that notices the change
  auto res = f.Get("first", "/healthz");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK_FALSE(f.Get("second", "/healthz"));
  // The whole new pair is served once the key is there too.
  CopyFile(f.dir.path() / "second.key", f.dir.path() / "served.key");
  bool swapped = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!swapped && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    auto answer = f.Get("second", "/healthz");
    swapped = answer && answer->status == 200;
  }
  CHECK(swapped);
  CHECK_FALSE(f.Get("first", "/healthz"));
}

TEST_CASE("http tls: a connection that never finishes its handshake is cut at the header deadline") {
  TlsFixture f;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(f.server->port()));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  // Half a ClientHello record header, then silence.
  REQUIRE(::send(fd, "\x16\x03\x01", 3, 0) == 3);
  timeval timeout{};
  timeout.tv_sec = 5;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  const auto start = std::chrono::steady_clock::now();
  char byte = 0;
  const ssize_t got = ::recv(fd, &byte, 1, 0);
  const auto waited = std::chrono::steady_clock::now() - start;
  ::close(fd);
  CHECK(got <= 0);  // closed (0) or reset (-1), not an answer
  CHECK(waited < std::chrono::milliseconds(3000));
  // The server counts the cut after it closed the socket: the client may see the close first.
  const auto counted = [&f] {
    return f.metrics.Render().find(R"(tenant_master_http_rejected_total{reason="timeout"} 1)") !=
           std::string::npos;
  };
  for (int i = 0; i < 200 && !counted(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(counted());
}

TEST_CASE("http tls: a certificate that does not load fails Start with TlsFailed naming the file") {
  testing::TempDir dir;
  MakeCertificate(dir, "one", "one.test");
  MakeCertificate(dir, "two", "two.test");
  FakeStore store;
  Metrics metrics;
  struct Pair {
    std::string cert;
    std::string key;
    std::string named;
  };
  const std::string missing = (dir.path() / "missing.crt").string();
  const std::string one_crt = (dir.path() / "one.crt").string();
  const std::string two_key = (dir.path() / "two.key").string();
  for (const Pair& pair : {Pair{missing, two_key, missing}, Pair{one_crt, two_key, two_key},
                           Pair{one_crt, one_crt, one_crt}}) {
    CAPTURE(pair.cert);
    CAPTURE(pair.key);
    HttpServerOptions options;
    options.listen = "127.0.0.1:0";
    options.tls_cert_file = pair.cert;
    options.tls_key_file = pair.key;
    HttpServer server(store, metrics, {}, options);
    const Outcome<Done> started = server.Start();
    REQUIRE_FALSE(started.ok());
    CHECK(started.failure().reason == "TlsFailed");
    CHECK(started.failure().message.find(pair.named) != std::string::npos);
  }
}

TEST_CASE("http traefik: the shared, ready workspaces as Traefik's dynamic configuration, with an ETag") {
  FakeStore store;
  Metrics metrics;
  HttpServerOptions options;
  options.listen = "127.0.0.1:0";
  options.read_token = Secret(std::string(kReadToken));
  options.admin_token = Secret(std::string(kAdminToken));
  options.traefik_token = Secret(std::string("traefik-only-token-0123456789"));
  options.routing.base_domain = "surgir.online";
  options.routing.shared_services = {{"erp", "http://erp-shared:8000"}};
  HttpServer server(store, metrics, HttpHandlers{}, options);
  REQUIRE(server.Start().ok());
  httplib::Client client("127.0.0.1", server.port());
  client.set_read_timeout(10, 0);

  const auto spec = [](const char* name, const char* mode) {
    return std::string(R"({"apiVersion":"tenantmaster.io/v1alpha1","kind":"Workspace","metadata":{"name":")") +
           name + R"("},"spec":{"product":"erp","mode":")" + mode + R"(","subdomain":")" + name +
           R"(","suspend":false}})";
  };
  REQUIRE(store.UpsertSpec("acme", "upstream", "r1", spec("acme", "shared")).ok());
  REQUIRE(store.UpsertSpec("solo", "upstream", "r1", spec("solo", "dedicated")).ok());
  REQUIRE(store.UpsertSpec("late", "upstream", "r1", spec("late", "shared")).ok());
  for (const char* name : {"acme", "solo"}) {
    WorkspaceStatus status;
    status.name = name;
    status.phase = "Ready";
    REQUIRE(store.PutStatus(status).ok());
  }

  CHECK(client.Get("/api/v1/traefik")->status == 401);
  auto first = client.Get("/api/v1/traefik", Bearer(kReadToken));
  REQUIRE(first);
  REQUIRE(first->status == 200);
  const json::object routers = ParseJson(first->body).at("http").at("routers").as_object();
  CHECK(routers.size() == 1);  // late is not Ready, solo is dedicated
  CHECK(routers.at("tm-acme").at("rule").as_string() == "Host(`acme.surgir.online`)");
  const std::string etag = first->get_header_value("ETag");
  CHECK(etag.size() == 34);

  httplib::Headers again = Bearer(kReadToken);
  again.emplace("If-None-Match", etag);
  auto unchanged = client.Get("/api/v1/traefik", again);
  REQUIRE(unchanged);
  CHECK(unchanged->status == 304);
  CHECK(unchanged->body.empty());

  WorkspaceStatus ready;
  ready.name = "late";
  ready.phase = "Ready";
  REQUIRE(store.PutStatus(ready).ok());
  auto changed = client.Get("/api/v1/traefik", again);
  REQUIRE(changed);
  CHECK(changed->status == 200);
  CHECK(changed->get_header_value("ETag") != etag);
  CHECK(ParseJson(changed->body).at("http").at("routers").as_object().size() == 2);

  // Traefik's own token reads this route and nothing else.
  const httplib::Headers traefik = Bearer("traefik-only-token-0123456789");
  auto routed = client.Get("/api/v1/traefik", traefik);
  REQUIRE(routed);
  CHECK(routed->status == 200);
  CHECK(routed->body == changed->body);
  for (const char* path : {"/api/v1/workspaces", "/api/v1/events", "/api/v1/sources"}) {
    auto refused = client.Get(path, traefik);
    REQUIRE(refused);
    CHECK(refused->status == 403);
    CHECK(ParseJson(refused->body).at("message").as_string() ==
          "env:traefik may read only GET /api/v1/traefik");
  }
  auto write = client.Post("/api/v1/tokens", traefik, R"({"role":"admin"})", "application/json");
  REQUIRE(write);
  CHECK(write->status == 403);
  server.Stop();
}

namespace {

using testing::SseClient;
using namespace std::chrono_literals;
using Headers = std::vector<std::pair<std::string, std::string>>;

// A server with both tokens and a live stream hub: fast intervals, at most 3 streams.
struct StreamFixture {
  FakeStore store;
  Metrics metrics;
  EventHub hub;  // before the server: it outlives it
  std::unique_ptr<HttpServer> server;

  explicit StreamFixture(EventHubOptions hub_options = {.interval = 200ms,
                                                        .keepalive = 60'000ms,
                                                        .max_streams = 3,
                                                        .max_names = 100})
      : hub(hub_options) {
    HttpServerOptions options;
    options.listen = "127.0.0.1:0";
    options.admin_token = Secret(std::string(kAdminToken));
    options.read_token = Secret(std::string(kReadToken));
    HttpHandlers handlers;
    handlers.events = &hub;
    handlers.webhook = [](const WebhookRequest& request) {
      return VerifyWebhook(request, Secret(std::string(kSecret)), "main", kBodyLimit);
    };
    server = std::make_unique<HttpServer>(store, metrics, std::move(handlers), options);
    const Outcome<Done> started = server->Start();
    REQUIRE_MESSAGE(started.ok(), (started.ok() ? "" : started.failure().message));
  }

  std::unique_ptr<SseClient> Open(const std::string& token = kReadToken, int receive_buffer = 0) {
    auto client = std::make_unique<SseClient>(
        server->port(), "/api/v1/stream", Headers{{"Authorization", "Bearer " + token}},
        receive_buffer);
    REQUIRE(client->connected());
    return client;
  }
};

std::size_t CountOf(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) {
    ++n;
  }
  return n;
}

bool Eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout = 5s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

}  // namespace

TEST_CASE("http stream: the head and the first hello over a real socket; viewer and admin") {
  StreamFixture f;
  f.hub.FleetChanged(17, {});
  for (const char* token : {kReadToken, kAdminToken}) {
    auto client = f.Open(token);
    REQUIRE(client->Status() == 200);
    const std::string head = client->Head();
    CAPTURE(head);
    CHECK(head.starts_with("HTTP/1.1 200 OK\r\n"));
    CHECK(head.find("\r\nContent-Type: text/event-stream\r\n") != std::string::npos);
    CHECK(head.find("\r\nCache-Control: no-store\r\n") != std::string::npos);
    CHECK(head.find("\r\nTransfer-Encoding: chunked\r\n") != std::string::npos);
    CHECK(head.find("\r\nX-Content-Type-Options: nosniff\r\n") != std::string::npos);
    CHECK(head.find("\r\nX-Frame-Options: DENY\r\n") != std::string::npos);
    CHECK(head.find("\r\nContent-Security-Policy: default-src 'self'\r\n") != std::string::npos);
    CHECK(head.find("Content-Length") == std::string::npos);
    REQUIRE(client->WaitFor("\n\n"));
    CHECK(client->Body() == "retry: 3000\nevent: hello\ndata: {\"resourceVersion\":17}\n\n");
  }
}

TEST_CASE("http stream: no token or a wrong one is 401; a HEAD gets the head only") {
  StreamFixture f;
  for (const Headers& headers : {Headers{}, Headers{{"Authorization", "Bearer wrong"}}}) {
    SseClient client(f.server->port(), "/api/v1/stream", headers);
    REQUIRE(client.Status() == 401);
    CHECK(client.Head().find("WWW-Authenticate: Bearer") != std::string::npos);
  }
  CHECK(f.hub.OpenStreams() == 0);
  httplib::Client http("127.0.0.1", f.server->port());
  auto head = http.Head("/api/v1/stream", Bearer(kReadToken));
  REQUIRE(head);
  CHECK(head->status == 200);
  CHECK(head->get_header_value("Content-Type") == "text/event-stream");
  CHECK(Eventually([&] { return f.hub.OpenStreams() == 0; }));
}

TEST_CASE("http stream: a change is a fleet event naming the workspace within a second") {
  StreamFixture f;
  auto client = f.Open();
  REQUIRE(client->WaitFor("event: hello"));
  const auto start = std::chrono::steady_clock::now();
  f.hub.FleetChanged(3, {"acme"});
  REQUIRE(client->WaitFor("event: fleet\ndata: {\"resourceVersion\":3,\"workspaces\":[\"acme\"]}\n\n",
                          1s));
  CHECK(std::chrono::steady_clock::now() - start < 1s);
}

TEST_CASE("http stream: many changes are coalesced into few messages, every name in them") {
  StreamFixture f;
  auto client = f.Open();
  REQUIRE(client->WaitFor("event: hello"));
  // 100 changes in about a second, one name each: at most one message per 200 ms.
  for (int i = 0; i < 100; ++i) {
    f.hub.FleetChanged(static_cast<std::uint64_t>(i + 1), {"ws-" + std::to_string(i)});
    std::this_thread::sleep_for(10ms);
  }
  REQUIRE(client->WaitFor("\"resourceVersion\":100,"));
  const std::string body = client->ReadFor(300ms);
  const std::size_t messages = CountOf(body, "event: fleet");
  CAPTURE(body);
  CHECK(messages >= 2);
  CHECK(messages <= 9);  // ~1.1 s / 200 ms, plus the first at once
  for (int i = 0; i < 100; ++i) CHECK(body.find("\"ws-" + std::to_string(i) + "\"") != std::string::npos);
}

TEST_CASE("http stream: beyond the hub's streams 503; a closed stream frees its place") {
  StreamFixture f;
  std::vector<std::unique_ptr<SseClient>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(f.Open());
    REQUIRE(clients.back()->Status() == 200);
  }
  SseClient refused(f.server->port(), "/api/v1/stream", {{"Authorization", std::string("Bearer ") + kReadToken}});
  REQUIRE(refused.Status() == 503);
  CHECK(refused.Head().find("Retry-After: 10") != std::string::npos);
  REQUIRE(refused.WaitFor("}"));
  CHECK(ParseJson(refused.Body()).at("error") == "Unavailable");
  // The other routes still answer.
  httplib::Client http("127.0.0.1", f.server->port());
  CHECK(http.Get("/api/v1/sources", Bearer(kReadToken))->status == 200);
  clients.front()->Close();
  REQUIRE(Eventually([&] { return f.hub.OpenStreams() == 2; }));
  auto again = f.Open();
  CHECK(again->Status() == 200);
}

TEST_CASE("http stream: a client that does not read is cut, its queue bounded") {
  StreamFixture f({.interval = 20ms, .keepalive = 60'000ms, .max_streams = 3, .max_names = 100});
  auto reader = f.Open();
  auto sleeper = f.Open(kReadToken, 4096);  // never read, with a small window
  REQUIRE(reader->WaitFor("event: hello"));
  REQUIRE(Eventually([&] { return f.hub.OpenStreams() == 2; }));
  // Messages of about 6 KB, 50 a second: the sleeper's 64 KiB queue fills within seconds.
  std::vector<std::string> names;
  for (int i = 0; i < 100; ++i) names.push_back("workspace-with-a-long-name-" + std::string(30, 'x') + std::to_string(i));
  std::uint64_t version = 0;
  const bool cut = Eventually(
      [&] {
        f.hub.FleetChanged(++version, names);
        reader->ReadFor(1ms);  // the reader keeps up
        return f.hub.OpenStreams() == 1;
      },
      20s);
  REQUIRE(cut);
  const std::string metrics = f.metrics.Render();
  CHECK(metrics.find("tenant_master_http_rejected_total{reason=\"stream_overflow\"} 1") !=
        std::string::npos);
  // The sleeper's connection is closed: once it reads, it finds the end (or a reset).
  CHECK(sleeper->WaitClosed(10s));
  // The reader got the messages all along.
  CHECK_FALSE(reader->closed());
  f.hub.FleetChanged(++version, {"last"});
  CHECK(reader->WaitFor("{\"resourceVersion\":" + std::to_string(version) + ","));
}

TEST_CASE("http stream: Stop ends the open streams promptly") {
  StreamFixture f;
  auto first = f.Open();
  auto second = f.Open(kAdminToken);
  REQUIRE(first->WaitFor("event: hello"));
  REQUIRE(second->WaitFor("event: hello"));
  const auto start = std::chrono::steady_clock::now();
  f.server->Stop();
  CHECK(std::chrono::steady_clock::now() - start < 2s);
  CHECK(first->WaitClosed(2s));
  CHECK(second->WaitClosed(2s));
  CHECK(f.hub.OpenStreams() == 0);
}

TEST_CASE("http stream: the hub's Stop ends the streams with the last chunk") {
  StreamFixture f;
  auto client = f.Open();
  REQUIRE(client->WaitFor("event: hello"));
  f.hub.Stop();
  CHECK(client->WaitClosed(2s));
  CHECK(Eventually([&] { return f.hub.OpenStreams() == 0; }));
}

TEST_CASE("http stream: a recorded webhook delivery is a sources event") {
  StreamFixture f;
  auto client = f.Open();
  REQUIRE(client->WaitFor("event: hello"));
  REQUIRE(Eventually([&] { return f.hub.OpenStreams() == 1; }));
  httplib::Client http("127.0.0.1", f.server->port());
  const std::string body = PushBody("main");
  auto res = http.Post("/hooks/git", GithubHeaders(body), body, "application/json");
  REQUIRE(res);
  CHECK(res->status == 202);
  CHECK(client->WaitFor("event: sources\ndata: {}\n\n", 2s));
}

TEST_CASE("http: /api/v1/deliveries: newest first, limited; a bad limit is 400") {
  StreamFixture f;
  for (const char* verdict : {"accepted", "ignored_branch", "bad_signature"}) {
    WebhookDelivery delivery;
    delivery.provider = "github";
    delivery.verdict = verdict;
    delivery.branch = "main";
    delivery.revision = kSha;
    delivery.received_at_unix = 1700000000;
    REQUIRE(f.store.RecordDelivery(delivery).ok());
  }
  httplib::Client http("127.0.0.1", f.server->port());
  auto res = http.Get("/api/v1/deliveries?limit=2", Bearer(kReadToken));
  REQUIRE(res);
  REQUIRE(res->status == 200);
  CheckJsonContentType(res);
  const json::array items = ParseJson(res->body).at("items").as_array();
  REQUIRE(items.size() == 2);
  CHECK(items[0].at("verdict") == "bad_signature");
  CHECK(items[0].at("id").as_int64() == 3);
  CHECK(items[1].at("verdict") == "ignored_branch");
  CHECK(items[1].at("provider") == "github");
  CHECK(items[1].at("branch") == "main");
  CHECK(items[1].at("revision") == kSha);
  CHECK(items[1].at("receivedAt") == "2023-11-14T22:13:20Z");
  res = http.Get("/api/v1/deliveries", Bearer(kReadToken));
  REQUIRE(res);
  CHECK(ParseJson(res->body).at("items").as_array().size() == 3);
  for (const char* limit : {"0", "201", "-1", "abc", "20x"}) {
    CAPTURE(limit);
    res = http.Get(std::string("/api/v1/deliveries?limit=") + limit, Bearer(kReadToken));
    REQUIRE(res);
    CHECK(res->status == 400);
    CHECK(ParseJson(res->body).at("message").as_string().find("limit") != std::string::npos);
  }
  res = http.Get("/api/v1/deliveries?limit=200", Bearer(kReadToken));
  REQUIRE(res);
  CHECK(res->status == 200);
}

namespace {

// The live stream end to end in one process: the Daemon (a watched directory, the in-memory store
// and PostgreSQL of the daemon's tests) and the server wired as tenant-operator wires them
// (HttpHandlers::events = Daemon::StreamHub(), the workspace API from Daemon::Api()).
constexpr const char* kStreamReadToken = "stream-itest-read-token-0123456789";
constexpr const char* kStreamAdminToken = "stream-itest-admin-token-0123456789";

std::string WorkspaceYaml(const std::string& name) {
  return "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata: {name: " + name +
         "}\nspec:\n  product: shop\n  mode: shared\n  database:\n    cluster: default\n";
}

}  // namespace

TEST_CASE("http stream: with the Daemon, a workspace written to the source is a fleet event on an open stream") {
  spdlog::set_level(spdlog::level::off);
  testing::TempDir dir;
  dir.Write("fleet/product.yaml", testing::kShopProduct);
  manifests::Config config;
  config.base_domain = "example.test";
  config.clusters.push_back({.name = "default", .dsn = {}, .stacks_host = {}, .stacks_port = 0});
  manifests::SourceConfig source;
  source.name = "local";
  source.directory = std::filesystem::path(dir.path()) / "fleet";
  config.sources.push_back(source);
  FakeStore store;
  testing::FakePostgres postgres;
  Metrics metrics;
  SteadyClock clock;
  MtRandom random;
  const Secret key{"0123456789abcdef0123456789abcdef-stream-itest"};
  DaemonDeps deps;
  deps.config = &config;
  deps.store = &store;
  deps.gateways = {{"default", &postgres}};
  deps.master_key = &key;
  deps.metrics = &metrics;
  deps.clock = &clock;
  deps.random = &random;
  DaemonOptions options;
  options.workers = 2;
  options.debounce = 20ms;
  Daemon daemon(std::move(deps), options);

  HttpHandlers handlers;
  handlers.events = &daemon.StreamHub();
  handlers.workspaces = [&daemon](const WorkspaceCall& call) {
    return ServeWorkspaceCall(daemon.Api(), call);
  };
  HttpServerOptions http_options;
  http_options.listen = "127.0.0.1:0";
  http_options.admin_token = Secret(std::string(kStreamAdminToken));
  http_options.read_token = Secret(std::string(kStreamReadToken));
  HttpServer server(store, metrics, std::move(handlers), http_options);
  REQUIRE(server.Start().ok());
  std::thread running([&daemon] { daemon.Run(); });

  testing::SseClient stream(server.port(), "/api/v1/stream",
                            {{"Authorization", std::string("Bearer ") + kStreamReadToken}});
  REQUIRE(stream.Status() == 200);
  REQUIRE(stream.WaitFor("event: hello"));
  dir.Write("fleet/acme.yaml", WorkspaceYaml("acme"));
  CHECK(stream.WaitFor("\"workspaces\":[\"acme\"]", 10s));
  // Once acme is Ready, a change of its status is told within a second.
  const auto ready = [&] {
    const auto state = store.Snapshot();
    const auto it = state.statuses.find("acme");
    return it != state.statuses.end() && it->second.phase == "Ready";
  };
  for (int i = 0; i < 500 && !ready(); ++i) std::this_thread::sleep_for(20ms);
  REQUIRE(ready());
  const std::size_t before = stream.ReadFor(600ms).size();
  const auto start = std::chrono::steady_clock::now();
  dir.Write("fleet/bravo.yaml", WorkspaceYaml("bravo"));
  REQUIRE(stream.WaitFor("\"bravo\"", 5s));
  CHECK(std::chrono::steady_clock::now() - start < 1500ms);  // debounce, sync, then <= 500 ms
  CHECK(stream.Body().size() > before);

  daemon.Stop();
  CHECK(stream.WaitClosed(3s));
  running.join();
  server.Stop();
}

// The backup routes (docs/api.md#backups): who may call them, and what reaches the workspace API.
TEST_CASE("http auth: GET /api/v1/endpoints: a viewer reads it, the answer passed through; no "
          "token 401") {
  FakeStore store;
  Metrics metrics;
  std::mutex mutex;
  std::vector<WorkspaceCall> calls;
  HttpHandlers handlers;
  handlers.workspaces = [&](const WorkspaceCall& call) {
    const std::lock_guard lock(mutex);
    calls.push_back(call);
    WorkspaceAnswer answer;
    answer.body = R"({"items":[{"id":1,"kind":"swarm"}]})";
    return answer;
  };
  HttpServerOptions options;
  options.listen = "127.0.0.1:0";
  options.admin_token = Secret(std::string(kAdminToken));
  options.read_token = Secret(std::string(kReadToken));
  HttpServer server(store, metrics, std::move(handlers), options);
  REQUIRE(server.Start().ok());
  httplib::Client client("127.0.0.1", server.port());
  client.set_read_timeout(10, 0);

  auto res = client.Get("/api/v1/endpoints", Bearer(kReadToken));
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(ParseJson(res->body).at("items").at(0).at("kind") == "swarm");
  res = client.Get("/api/v1/endpoints");
  CheckUnauthorized(res);
  const std::lock_guard lock(mutex);
  REQUIRE(calls.size() == 1);
  CHECK(calls[0].op == WorkspaceCall::Op::kEndpoints);
}

TEST_CASE("http auth: backups: a viewer lists backups and follows a restore; only an admin writes") {
  FakeStore store;
  Metrics metrics;
  std::mutex mutex;
  std::vector<WorkspaceCall> calls;
  HttpHandlers handlers;
  handlers.workspaces = [&](const WorkspaceCall& call) {
    const std::lock_guard lock(mutex);
    calls.push_back(call);
    WorkspaceAnswer answer;
    answer.status = call.op == WorkspaceCall::Op::kBackup || call.op == WorkspaceCall::Op::kRestore
                        ? 202
                        : 200;
    answer.body = "{}";
    return answer;
  };
  HttpServerOptions options;
  options.listen = "127.0.0.1:0";
  options.admin_token = Secret(std::string(kAdminToken));
  options.read_token = Secret(std::string(kReadToken));
  HttpServer server(store, metrics, std::move(handlers), options);
  REQUIRE(server.Start().ok());
  httplib::Client client("127.0.0.1", server.port());
  client.set_read_timeout(10, 0);
  const auto taken = [&] {
    const std::lock_guard lock(mutex);
    std::vector<WorkspaceCall> out = std::move(calls);
    calls.clear();
    return out;
  };

  // A viewer: both writes 403, never forwarded; both reads forwarded.
  const std::string restore_body = R"({"backup":"acme-1"})";
  auto res = client.Post("/api/v1/workspaces/acme/backups", Bearer(kReadToken), "",
                         "application/json");
  REQUIRE(res);
  CHECK(res->status == 403);
  CHECK(ParseJson(res->body).at("error") == "Forbidden");
  res = client.Post("/api/v1/workspaces/acme/restore", Bearer(kReadToken), restore_body,
                    "application/json");
  REQUIRE(res);
  CHECK(res->status == 403);
  CHECK(taken().empty());
  res = client.Get("/api/v1/workspaces/acme/backups", Bearer(kReadToken));
  REQUIRE(res);
  CHECK(res->status == 200);
  res = client.Get("/api/v1/restores/r-acme-1", Bearer(kReadToken));
  REQUIRE(res);
  CHECK(res->status == 200);
  std::vector<WorkspaceCall> seen = taken();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].op == WorkspaceCall::Op::kListBackups);
  CHECK(seen[0].name == "acme");
  CHECK(seen[1].op == WorkspaceCall::Op::kGetRestore);
  CHECK(seen[1].name == "r-acme-1");

  // No token: 401 on all four.
  for (const RouteCall& route : std::vector<RouteCall>{
           {"POST", "/api/v1/workspaces/acme/backups"},
           {"GET", "/api/v1/workspaces/acme/backups"},
           {"POST", "/api/v1/workspaces/acme/restore"},
           {"GET", "/api/v1/restores/r-acme-1"}}) {
    CAPTURE(route.path);
    res = std::string(route.method) == "POST"
              ? client.Post(route.path, httplib::Headers{}, "", "application/json")
              : client.Get(route.path);
    CheckUnauthorized(res);
  }
  CHECK(taken().empty());

  // The admin: both writes forwarded with the body, its type and who.
  res = client.Post("/api/v1/workspaces/acme/backups", Bearer(kAdminToken), "",
                    "application/json");
  REQUIRE(res);
  CHECK(res->status == 202);
  res = client.Post("/api/v1/workspaces/acme/restore", Bearer(kAdminToken), restore_body,
                    "application/json");
  REQUIRE(res);
  CHECK(res->status == 202);
  seen = taken();
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].op == WorkspaceCall::Op::kBackup);
  CHECK(seen[0].name == "acme");
  CHECK(seen[0].who == "env:admin");
  CHECK(seen[1].op == WorkspaceCall::Op::kRestore);
  CHECK(seen[1].body == restore_body);
  CHECK(seen[1].content_type == "application/json");

  // A GET on the restore route, a DELETE on the list: 405 naming what the path allows.
  res = client.Get("/api/v1/workspaces/acme/restore", Bearer(kAdminToken));
  REQUIRE(res);
  CHECK(res->status == 405);
  CHECK(res->get_header_value("Allow") == "POST");
  server.Stop();
}

// The rollout routes (docs/api.md#rollouts) through the real workspace API with a fake driver:
// who may call them, the verb taken from the path, the error shapes, the methods each path has,
// a body over the limit refused before anything is asked.
TEST_CASE("http auth: rollouts: a viewer reads a product's rollout; only an admin steers it") {
  constexpr const char* kStatus =
      R"({"product":"erp","revision":{"number":4,"digest":"0123456789ab"},"refused":null,)"
      R"("rollout":null})";
  FakeStore store;
  Metrics metrics;
  DesiredState desired;
  ProductRegistry products;
  testing::FakeRolloutControl rollouts;
  rollouts.SetStatus("erp", kStatus);
  rollouts.SetSummary("erp", R"({"phase":"Halted","revision":4,"currentWave":1,"waveCount":2,)"
                             R"("counts":{"pending":3,"inProgress":0,"ready":1,"failed":1}})");
  auto entry = std::make_shared<ProductEntry>();
  entry->product.name = "erp";
  products.Replace("local", {{"erp", std::move(entry)}});
  std::atomic<bool> leading{true};
  WorkspaceApiDeps deps;
  deps.store = &store;
  deps.desired = &desired;
  deps.products = &products;
  deps.leading = [&leading] { return leading.load(); };
  deps.rollouts = &rollouts;
  WorkspaceApi api(std::move(deps));
  HttpHandlers handlers;
  handlers.workspaces = [&api](const WorkspaceCall& call) { return ServeWorkspaceCall(api, call); };
  HttpServerOptions options;
  options.listen = "127.0.0.1:0";
  options.admin_token = Secret(std::string(kAdminToken));
  options.read_token = Secret(std::string(kReadToken));
  options.webhook_body_limit = kBodyLimit;
  HttpServer server(store, metrics, std::move(handlers), options);
  REQUIRE(server.Start().ok());
  httplib::Client client("127.0.0.1", server.port());
  client.set_read_timeout(10, 0);
  const auto error_of = [](const httplib::Result& res) {
    const json::object body = ParseJson(res->body).as_object();
    const json::value* details = body.if_contains("details");
    return std::string(body.at("error").as_string()) + " " +
           (details != nullptr ? std::string(details->at("reason").as_string()) : "-");
  };

  // A viewer reads; its POST is 403 and never reaches the driver.
  auto res = client.Get("/api/v1/products/erp/rollout", Bearer(kReadToken));
  REQUIRE(res);
  CHECK(res->status == 200);
  CheckJsonContentType(res);
  CHECK(res->body == kStatus);
  res =
      client.Post("/api/v1/products/erp/rollout/pause", Bearer(kReadToken), "", "application/json");
  REQUIRE(res);
  CHECK(res->status == 403);
  CHECK(ParseJson(res->body).at("error") == "Forbidden");
  CHECK(rollouts.Commands().empty());
  // No token: 401 on both.
  CheckUnauthorized(client.Get("/api/v1/products/erp/rollout"));
  CheckUnauthorized(client.Post("/api/v1/products/erp/rollout/pause", httplib::Headers{}, "",
                                "application/json"));
  CHECK(rollouts.Commands().empty());

  // The admin: the product and the verb from the path, who from the token; 200 the new status.
  res = client.Post("/api/v1/products/erp/rollout/pause", Bearer(kAdminToken), "",
                    "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body == kStatus);
  REQUIRE(rollouts.Commands().size() == 1);
  CHECK(rollouts.Commands()[0].product == "erp");
  CHECK(rollouts.Commands()[0].verb == "pause");
  CHECK(rollouts.Commands()[0].who == "env:admin");

  // An unknown verb: 400 naming the verbs, the driver not asked.
  res = client.Post("/api/v1/products/erp/rollout/rollback", Bearer(kAdminToken), "",
                    "application/json");
  REQUIRE(res);
  CHECK(res->status == 400);
  CHECK(error_of(res) == "BadRequest InvalidVerb");
  CHECK(ParseJson(res->body).at("message") ==
        "unknown rollout verb \"rollback\": the verbs are pause, resume, promote, abort, undo");
  CHECK(rollouts.Commands().size() == 1);

  // The driver's refusal: 409 with its reason and its words.
  rollouts.Fail(Failure::Stalled("RolloutCommandRefused",
                                 "the rollout of erp is Halted: promote ends a pause; resume "
                                 "retries the failed workspaces"));
  res = client.Post("/api/v1/products/erp/rollout/promote", Bearer(kAdminToken), "",
                    "application/json");
  REQUIRE(res);
  CHECK(res->status == 409);
  CHECK(error_of(res) == "Conflict RolloutCommandRefused");
  CHECK(ParseJson(res->body).at("message").as_string().find("resume retries") != std::string::npos);
  rollouts.Fail(std::nullopt);
  res = client.Get("/api/v1/products/ghost/rollout", Bearer(kReadToken));
  REQUIRE(res);
  CHECK(res->status == 404);
  CHECK(error_of(res) == "NotFound NotFound");

  // The products' list carries each product's short status.
  res = client.Get("/api/v1/products", Bearer(kReadToken));
  REQUIRE(res);
  REQUIRE(res->status == 200);
  CHECK(ParseJson(res->body).at("items").at(0).at("rolloutStatus").at("phase") == "Halted");

  // Each path has its method: 405 naming the other.
  res = client.Get("/api/v1/products/erp/rollout/pause", Bearer(kAdminToken));
  REQUIRE(res);
  CHECK(res->status == 405);
  CHECK(res->get_header_value("Allow") == "POST");
  res = client.Post("/api/v1/products/erp/rollout", Bearer(kAdminToken), "", "application/json");
  REQUIRE(res);
  CHECK(res->status == 405);
  CHECK(res->get_header_value("Allow") == "GET");

  // A body over the limit: 413, nothing asked.
  const std::size_t before = rollouts.Commands().size();
  res = client.Post("/api/v1/products/erp/rollout/abort", Bearer(kAdminToken),
                    std::string(kBodyLimit + 1, 'x'), "application/json");
  REQUIRE(res);
  CHECK(res->status == 413);
  CHECK(rollouts.Commands().size() == before);

  // A standby: 503 on both, the driver not asked.
  leading = false;
  res = client.Get("/api/v1/products/erp/rollout", Bearer(kReadToken));
  REQUIRE(res);
  CHECK(res->status == 503);
  CHECK(error_of(res) == "Unavailable -");
  res =
      client.Post("/api/v1/products/erp/rollout/undo", Bearer(kAdminToken), "", "application/json");
  REQUIRE(res);
  CHECK(res->status == 503);
  CHECK(rollouts.Commands().size() == before);
  server.Stop();
}

}  // namespace tmaster::controller
