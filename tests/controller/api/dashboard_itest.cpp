// The dashboard's HTTP side (issue 14) over real sockets: cpp-httplib against HttpServer on an
// ephemeral port, with the in-memory FakeStore (sessions and failed-login counters included) and
// a users file of argon2id hashes. The browser drives the page in tests/browser/ (chromium), and
// here the product page's rollout (the last case: chromium against this process's server with a
// fake rollout driver).

#include <doctest/doctest.h>
#include <httplib.h>

#include <argon2.h>
#include <unistd.h>

#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/secret.hpp"
#include "controller/api/event_stream.hpp"
#include "controller/api/http_server.hpp"
#include "controller/api/users.hpp"
#include "controller/daemon/fleet_view.hpp"
#include "controller/daemon/workspace_api.hpp"
#include "controller/runtime/metrics.hpp"
#include "controller/sources/desired_state.hpp"
#include "controller/sources/product_registry.hpp"
#include "tests/controller/api/sse_client.hpp"
#include "tests/support/fake_rollout_control.hpp"
#include "tests/support/fake_store.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

namespace tmaster::controller {
namespace {

namespace json = boost::json;
using testing::FakeStore;

constexpr const char* kAdminToken = "dashboard-admin-token-0123456789";
constexpr const char* kReadToken = "dashboard-read-token-9876543210";
constexpr const char* kAlicePassword = "alice-correct-horse";
constexpr const char* kAcmeSpec =
    R"({"apiVersion":"tenantmaster.io/v1alpha1","kind":"Workspace",)"
    R"("metadata":{"name":"acme"},"spec":{"product":"erp","mode":"dedicated","subdomain":"acme"}})";

std::string Argon2id(const std::string& password) {
  const std::string salt = "0123456789abcdef";
  char out[256] = {};
  REQUIRE(argon2id_hash_encoded(1, 64, 1, password.data(), password.size(), salt.data(),
                                salt.size(), 32, out, sizeof out) == ARGON2_OK);
  return out;
}

json::value ParseJson(const std::string& text) {
  boost::system::error_code ec;
  json::value value = json::parse(text, ec);
  REQUIRE_MESSAGE(!ec, text);
  return value;
}

std::string ReadSource(const std::string& relative) {
  std::ifstream in(std::string(TM_SOURCE_DIR) + "/" + relative, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), relative);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A server with both tokens and a users file (alice admin, bob viewer), acme in the store.
struct Fixture {
  FakeStore store;
  Metrics metrics;
  std::optional<Users> users;
  // The live stream's hub, with a keepalive (and so a check of each stream's session) every
  // 300 ms; before the server, which it outlives.
  EventHub hub{{.interval = std::chrono::milliseconds(200),
                .keepalive = std::chrono::milliseconds(300),
                .max_streams = 8,
                .max_names = 100}};
  std::unique_ptr<HttpServer> server;
  std::unique_ptr<httplib::Client> client;

  explicit Fixture(RateLimit login_limit = {.per_second = 100, .burst = 1000},
                   std::chrono::seconds session_ttl = std::chrono::hours(12)) {
    Outcome<Users> parsed =
        Users::Parse("users:\n  - name: alice\n    hash: " + Argon2id(kAlicePassword) +
                         "\n    role: admin\n  - name: bob\n    hash: " + Argon2id("bob-pass") +
                         "\n    role: viewer\n",
                     "users.yaml");
    REQUIRE_MESSAGE(parsed.ok(), (parsed.ok() ? "" : parsed.failure().message));
    users = std::move(parsed).value();
    HttpServerOptions options;
    options.listen = "127.0.0.1:0";
    options.admin_token = Secret(std::string(kAdminToken));
    options.read_token = Secret(std::string(kReadToken));
    options.users = &*users;
    options.login_rate_limit = login_limit;
    options.routing.base_domain = "example.test";
    options.sessions.ttl = session_ttl;
    HttpHandlers handlers;
    handlers.events = &hub;
    server = std::make_unique<HttpServer>(store, metrics, std::move(handlers), options);
    const Outcome<Done> started = server->Start();
    REQUIRE_MESSAGE(started.ok(), (started.ok() ? "" : started.failure().message));
    client = std::make_unique<httplib::Client>("127.0.0.1", server->port());
    client->set_read_timeout(10, 0);
    REQUIRE(store.UpsertSpec("acme", "upstream", "rev-1", kAcmeSpec).ok());
  }

  httplib::Result FormLogin(const std::string& name, const std::string& secret) {
    return client->Post("/login", httplib::Params{{"name", name}, {"secret", secret}});
  }

  // Logs in with a form; returns the cookie's `name=value`.
  std::string LogIn(const std::string& name, const std::string& secret) {
    auto res = FormLogin(name, secret);
    REQUIRE(res);
    REQUIRE_MESSAGE(res->status == 303, res->body);
    const std::string set_cookie = res->get_header_value("Set-Cookie");
    return set_cookie.substr(0, set_cookie.find(';'));
  }

  // The session's CSRF token, as the page gets it.
  std::string Csrf(const std::string& cookie) {
    auto res = client->Get("/api/v1/session", {{"Cookie", cookie}});
    REQUIRE(res);
    REQUIRE_MESSAGE(res->status == 200, res->body);
    return std::string(ParseJson(res->body).at("csrfToken").as_string());
  }
};

void CheckSecurityHeaders(const httplib::Result& res) {
  REQUIRE(res);
  CHECK(res->get_header_value("Content-Security-Policy") == "default-src 'self'");
  CHECK(res->get_header_value("X-Frame-Options") == "DENY");
  CHECK(res->get_header_value("Referrer-Policy") == "no-referrer");
  CHECK(res->get_header_value("X-Content-Type-Options") == "nosniff");
}

}  // namespace

TEST_CASE("dashboard: GET / without a session is the login form only") {
  Fixture f;
  for (const httplib::Headers& headers :
       {httplib::Headers{}, httplib::Headers{{"Cookie", "tm_session=not-a-session"}},
        httplib::Headers{{"Cookie", "tm_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}}) {
    auto res = f.client->Get("/", headers);
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->get_header_value("Content-Type") == "text/html; charset=utf-8");
    CHECK(res->get_header_value("Cache-Control") == "no-store");
    CheckSecurityHeaders(res);
    CHECK(Contains(res->body, R"(<form id="login" method="post" action="/login">)"));
    CHECK(Contains(res->body, R"(<label for="secret">)"));
    // Nothing of the fleet's page: no table, no script.
    CHECK_FALSE(Contains(res->body, "<table"));
    CHECK_FALSE(Contains(res->body, "app.js"));
    CHECK_FALSE(Contains(res->body, "<!--tm:notice-->"));
  }
  // The pages are served at / only.
  auto res = f.client->Get("/assets/index.html");
  REQUIRE(res);
  CHECK(res->status == 404);
}

TEST_CASE("dashboard: a wrong secret is 401 without saying which part was wrong") {
  Fixture f;
  auto unknown_user = f.FormLogin("mallory", kAlicePassword);
  auto wrong_password = f.FormLogin("alice", "wrong-guess-1234");
  auto wrong_token = f.FormLogin("", "wrong-token-5678");
  for (const auto* res : {&unknown_user, &wrong_password, &wrong_token}) {
    REQUIRE(*res);
    CHECK((*res)->status == 401);
    CHECK((*res)->get_header_value("Set-Cookie").empty());
    CHECK(Contains((*res)->body, "Login failed: unknown name, password or token."));
    CHECK(Contains((*res)->body, R"(action="/login")"));
    CheckSecurityHeaders(*res);
  }
  // An unknown user and a known one with a wrong password get the same page.
  CHECK(unknown_user->body == wrong_password->body);
  CHECK_FALSE(Contains(wrong_password->body, "wrong-guess-1234"));
  // JSON: the same in the API's error shape.
  auto res = f.client->Post("/login", R"({"name":"alice","secret":"nope"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 401);
  CHECK(ParseJson(res->body).at("error") == "Unauthorized");
  CHECK_FALSE(Contains(res->body, "nope"));
  // Events say who tried, never the secret.
  for (const Event& event : f.store.Snapshot().events) {
    CHECK_FALSE(Contains(event.message, "wrong-guess-1234"));
    CHECK_FALSE(Contains(event.message, kAlicePassword));
  }
}

TEST_CASE("dashboard: a login sets an HttpOnly, SameSite=Strict cookie that reads the API") {
  Fixture f;
  auto res = f.FormLogin("alice", kAlicePassword);
  REQUIRE(res);
  CHECK(res->status == 303);
  CHECK(res->get_header_value("Location") == "/");
  CheckSecurityHeaders(res);
  const std::string set_cookie = res->get_header_value("Set-Cookie");
  CHECK(set_cookie.rfind("tm_session=", 0) == 0);
  CHECK(Contains(set_cookie, "; HttpOnly"));
  CHECK(Contains(set_cookie, "; SameSite=Strict"));
  CHECK(Contains(set_cookie, "; Path=/"));
  CHECK(Contains(set_cookie, "; Max-Age=43200"));
  CHECK_FALSE(Contains(set_cookie, "Secure"));  // plain HTTP here
  const std::string cookie = set_cookie.substr(0, set_cookie.find(';'));

  // With the cookie: the fleet's page, and the API.
  res = f.client->Get("/", {{"Cookie", "theme=dark; " + cookie}});
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(Contains(res->body, R"(<table id="workspaces">)"));
  CHECK(Contains(res->body, R"(<script src="/assets/app.js" defer></script>)"));
  CHECK_FALSE(Contains(res->body, R"(action="/login")"));
  res = f.client->Get("/api/v1/workspaces", {{"Cookie", cookie}});
  REQUIRE(res);
  CHECK(res->status == 200);
  CheckSecurityHeaders(res);
  CHECK(ParseJson(res->body).at("items").as_array().at(0).at("metadata").at("name") == "acme");
  // Who am I.
  res = f.client->Get("/api/v1/session", {{"Cookie", cookie}});
  REQUIRE(res);
  CHECK(res->status == 200);
  const json::object session = ParseJson(res->body).as_object();
  CHECK(session.at("principal") == "user:alice");
  CHECK(session.at("role") == "admin");
  CHECK(session.at("csrfToken").as_string().size() == 43);
  CHECK_FALSE(session.at("expiresAt").as_string().empty());
  CHECK(session.at("baseDomain") == "example.test");
  // The cookie of another name (the TLS one) is not this server's.
  res = f.client->Get("/api/v1/workspaces", {{"Cookie", "__Host-" + cookie}});
  REQUIRE(res);
  CHECK(res->status == 401);
  // A token logs in too (name empty); JSON answers with the session.
  res = f.client->Post("/login", std::string(R"({"secret":")") + kReadToken + R"("})",
                       "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(ParseJson(res->body).at("principal") == "env:read");
  CHECK(ParseJson(res->body).at("role") == "viewer");
  CHECK(Contains(res->get_header_value("Set-Cookie"), "; HttpOnly; SameSite=Strict"));
}

TEST_CASE("dashboard: a write with the cookie needs X-CSRF-Token; a bearer token does not") {
  Fixture f;
  const std::string cookie = f.LogIn("alice", kAlicePassword);
  const std::string csrf = f.Csrf(cookie);
  const std::string body = R"({"role":"viewer","ttl":"1h","description":"from the dashboard"})";
  auto res = f.client->Post("/api/v1/tokens", {{"Cookie", cookie}}, body, "application/json");
  REQUIRE(res);
  CHECK(res->status == 403);
  CHECK(ParseJson(res->body).at("error") == "Forbidden");
  CHECK(Contains(res->body, "X-CSRF-Token"));
  res = f.client->Post("/api/v1/tokens", {{"Cookie", cookie}, {"X-CSRF-Token", csrf + "x"}}, body,
                       "application/json");
  REQUIRE(res);
  CHECK(res->status == 403);
  // Another session's token is not this one's.
  const std::string other = f.LogIn("", kAdminToken);
  res = f.client->Post("/api/v1/tokens", {{"Cookie", cookie}, {"X-CSRF-Token", f.Csrf(other)}},
                       body, "application/json");
  REQUIRE(res);
  CHECK(res->status == 403);
  CHECK(f.store.Snapshot().tokens.empty());
  res = f.client->Post("/api/v1/tokens", {{"Cookie", cookie}, {"X-CSRF-Token", csrf}}, body,
                       "application/json");
  REQUIRE(res);
  CHECK_MESSAGE(res->status == 201, res->body);
  CHECK(f.store.Snapshot().tokens.size() == 1);
  // The event names the session's user.
  bool named = false;
  for (const Event& event : f.store.Snapshot().events) {
    named = named || (event.reason == "TokenCreated" && Contains(event.message, "by user:alice"));
  }
  CHECK(named);
  // A viewer's session with its CSRF token is still a viewer.
  const std::string viewer = f.LogIn("bob", "bob-pass");
  res = f.client->Post("/api/v1/tokens", {{"Cookie", viewer}, {"X-CSRF-Token", f.Csrf(viewer)}},
                       body, "application/json");
  REQUIRE(res);
  CHECK(res->status == 403);
  CHECK(Contains(res->body, "viewer"));
  // A bearer token needs no CSRF token.
  res = f.client->Post("/api/v1/tokens", {{"Authorization", std::string("Bearer ") + kAdminToken}},
                       body, "application/json");
  REQUIRE(res);
  CHECK(res->status == 201);
}

TEST_CASE("dashboard: logout is CSRF-checked, ends the session and clears the cookie") {
  Fixture f;
  const std::string cookie = f.LogIn("alice", kAlicePassword);
  const std::string csrf = f.Csrf(cookie);
  // Without the CSRF token: refused, the session lives on.
  auto res =
      f.client->Post("/logout", {{"Cookie", cookie}}, "", "application/x-www-form-urlencoded");
  REQUIRE(res);
  CHECK(res->status == 403);
  CheckSecurityHeaders(res);
  CHECK(f.client->Get("/api/v1/session", {{"Cookie", cookie}})->status == 200);
  // The page's form sends it as the field `csrf`.
  res = f.client->Post("/logout", {{"Cookie", cookie}}, httplib::Params{{"csrf", csrf}});
  REQUIRE(res);
  CHECK(res->status == 303);
  CHECK(res->get_header_value("Location") == "/");
  const std::string cleared = res->get_header_value("Set-Cookie");
  CHECK(cleared.rfind("tm_session=;", 0) == 0);
  CHECK(Contains(cleared, "Max-Age=0"));
  // The session is over: the API refuses the cookie and / is the login form again.
  res = f.client->Get("/api/v1/workspaces", {{"Cookie", cookie}});
  REQUIRE(res);
  CHECK(res->status == 401);
  res = f.client->Get("/", {{"Cookie", cookie}});
  REQUIRE(res);
  CHECK(Contains(res->body, R"(action="/login")"));
  CHECK_FALSE(Contains(res->body, "<table"));
  // With the header, from a script: JSON.
  const std::string again = f.LogIn("alice", kAlicePassword);
  res = f.client->Post("/logout", {{"Cookie", again}, {"X-CSRF-Token", f.Csrf(again)}}, "",
                       "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(ParseJson(res->body).at("loggedOut") == true);
  CHECK(f.client->Get("/api/v1/session", {{"Cookie", again}})->status == 401);
}

TEST_CASE("dashboard: a session opens the live stream; logout ends it at the next keepalive") {
  using testing::SseClient;
  Fixture f;
  const std::string alice = f.LogIn("alice", kAlicePassword);
  const std::string bob = f.LogIn("bob", "bob-pass");  // a viewer
  SseClient by_alice(f.server->port(), "/api/v1/stream", {{"Cookie", alice}});
  SseClient by_bob(f.server->port(), "/api/v1/stream", {{"Cookie", bob}});
  SseClient by_token(f.server->port(), "/api/v1/stream",
                     {{"Authorization", std::string("Bearer ") + kReadToken}});
  for (SseClient* client : {&by_alice, &by_bob, &by_token}) {
    REQUIRE(client->Status() == 200);
    REQUIRE(client->WaitFor("event: hello"));
  }
  // Without a session, or with one that is not: 401, no stream.
  for (const char* cookie : {"", "tm_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}) {
    SseClient refused(f.server->port(), "/api/v1/stream",
                      *cookie == '\0' ? std::vector<std::pair<std::string, std::string>>{}
                                       : std::vector<std::pair<std::string, std::string>>{
                                             {"Cookie", cookie}});
    CHECK(refused.Status() == 401);
  }
  // Keepalives come, and the sessions are still valid after them.
  REQUIRE(by_alice.WaitFor(": keepalive\n\n", std::chrono::seconds(3)));
  by_alice.ReadFor(std::chrono::milliseconds(700));
  CHECK_FALSE(by_alice.closed());
  auto res = f.client->Post("/logout", {{"Cookie", alice}, {"X-CSRF-Token", f.Csrf(alice)}}, "",
                            "application/json");
  REQUIRE(res);
  REQUIRE(res->status == 200);
  // Alice's stream ends (the chunked body's end, then the close); Bob's and the token's go on.
  CHECK(by_alice.WaitClosed(std::chrono::seconds(3)));
  by_bob.ReadFor(std::chrono::milliseconds(700));
  CHECK_FALSE(by_bob.closed());
  CHECK_FALSE(by_token.closed());
  CHECK(f.hub.OpenStreams() == 2);
}

TEST_CASE("dashboard: a session's stream ends once the session expires") {
  using testing::SseClient;
  Fixture f({.per_second = 100, .burst = 1000}, std::chrono::seconds(2));
  const std::string alice = f.LogIn("alice", kAlicePassword);
  SseClient stream(f.server->port(), "/api/v1/stream", {{"Cookie", alice}});
  REQUIRE(stream.Status() == 200);
  REQUIRE(stream.WaitFor("event: hello"));
  const auto start = std::chrono::steady_clock::now();
  CHECK(stream.WaitClosed(std::chrono::seconds(5)));
  CHECK(std::chrono::steady_clock::now() - start > std::chrono::milliseconds(500));
}

TEST_CASE("dashboard: failed logins of one user are throttled in the store: 429 with Retry-After") {
  Fixture f;
  for (int i = 0; i < 5; ++i) {
    auto res = f.FormLogin("alice", "wrong-" + std::to_string(i));
    REQUIRE(res);
    CHECK(res->status == 401);
  }
  // Locked: even the right password is refused unchecked.
  auto res = f.FormLogin("alice", kAlicePassword);
  REQUIRE(res);
  CHECK(res->status == 429);
  CheckSecurityHeaders(res);
  const std::string retry_after = res->get_header_value("Retry-After");
  REQUIRE_FALSE(retry_after.empty());
  CHECK(std::stoi(retry_after) > 0);
  CHECK(std::stoi(retry_after) <= 300);
  CHECK(res->get_header_value("Set-Cookie").empty());
  CHECK(Contains(res->body, "Too many failed logins"));
  res = f.client->Post("/login",
                       std::string(R"({"name":"alice","secret":")") + kAlicePassword + R"("})",
                       "application/json");
  REQUIRE(res);
  CHECK(res->status == 429);
  CHECK(ParseJson(res->body).at("error") == "TooManyRequests");
  CHECK_FALSE(res->get_header_value("Retry-After").empty());
  // Another user from the same address is not locked by alice's failures.
  CHECK(f.FormLogin("bob", "bob-pass")->status == 303);
}

TEST_CASE("dashboard: a flood of logins from one address is refused on the I/O thread: 429") {
  Fixture f(RateLimit{.per_second = 0.01, .burst = 3});
  for (int i = 0; i < 3; ++i) CHECK(f.FormLogin("", "guess-" + std::to_string(i))->status == 401);
  auto res = f.FormLogin("alice", kAlicePassword);
  REQUIRE(res);
  CHECK(res->status == 429);
  CHECK(std::stoi(res->get_header_value("Retry-After")) > 0);
  CheckSecurityHeaders(res);
  CHECK(f.metrics.Render().find("tenant_master_http_rejected_total{reason=\"rate_limited\"} 1") !=
        std::string::npos);
}

TEST_CASE("dashboard: the assets are the embedded source files, with types and a strong ETag") {
  Fixture f;
  for (const auto& [name, type] : {std::pair{"app.js", "text/javascript; charset=utf-8"},
                                   std::pair{"app.css", "text/css; charset=utf-8"}}) {
    CAPTURE(name);
    auto res = f.client->Get(std::string("/assets/") + name);
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->get_header_value("Content-Type") == type);
    CheckSecurityHeaders(res);
    CHECK(res->body == ReadSource(std::string("controller/api/dashboard/") + name));
    const std::string etag = res->get_header_value("ETag");
    CHECK(etag.size() > 2);
    CHECK(etag.front() == '"');  // strong: no W/
    res = f.client->Get(std::string("/assets/") + name, {{"If-None-Match", etag}});
    REQUIRE(res);
    CHECK(res->status == 304);
    CHECK(res->body.empty());
  }
  // The pages are the source files too (the login page with its notice's place emptied).
  std::string login = ReadSource("controller/api/dashboard/login.html");
  login.replace(login.find("<!--tm:notice-->"), 16, "");
  CHECK(f.client->Get("/")->body == login);
  const std::string cookie = f.LogIn("alice", kAlicePassword);
  CHECK(f.client->Get("/", {{"Cookie", cookie}})->body ==
        ReadSource("controller/api/dashboard/index.html"));
  auto res = f.client->Get("/assets/nothing.js");
  REQUIRE(res);
  CHECK(res->status == 404);
  res = f.client->Get("/assets/..%2Fhttp_server.cpp");
  REQUIRE(res);
  CHECK(res->status == 404);
}

TEST_CASE("dashboard: the security headers are on the API's answers too") {
  Fixture f;
  CheckSecurityHeaders(f.client->Get("/api/v1/workspaces"));  // 401
  CheckSecurityHeaders(f.client->Get("/healthz"));
  CheckSecurityHeaders(f.client->Get("/api/v1/workspaces",
                                     {{"Authorization", std::string("Bearer ") + kReadToken}}));
}

TEST_CASE("dashboard: tenant-operator refuses a users file that does not load, before connecting") {
  const testing::TempDir dir;
  const std::filesystem::path users =
      dir.Write("users.yaml", "users:\n  - name: alice\n    hash: " + Argon2id(kAlicePassword) +
                                  "\n    role: root\n");
  std::filesystem::permissions(
      users, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  std::filesystem::create_directories(dir.path() / "fleet");
  const std::string config =
      dir.Write(
             "operator.yaml",
             "baseDomain: example.test\nmasterKeyEnv: TM_MASTER_KEY\n"
             "clusters:\n  - name: default\n    dsnEnv: TM_PG_DSN\nstore:\n  dsnEnv: TM_STORE_DSN\n"
             "sources:\n  - name: local\n    directory: " +
                 (dir.path() / "fleet").string() +
                 "\nstacks:\n  backend: directory\n  directory: " +
                 (dir.path() / "deployments").string() +
                 "\nhttp:\n  listen: \"127.0.0.1:0\"\n  usersFile: users.yaml\n")
          .string();
  // No server listens on port 1: a daemon that went on would wait for its store, and be ended
  // by timeout(1) after 20 s (exit 124).
  const std::string nowhere = "postgresql://127.0.0.1:1/none?connect_timeout=1";
  const testing::ProcessResult result = testing::RunProcess(
      {"/usr/bin/timeout", "20", std::string(TM_BINARY_DIR) + "/tenant-operator", "--config",
       config, "--state-dir", (dir.path() / "state").string()},
      {{"TM_MASTER_KEY", std::string(64, 'k')}, {"TM_PG_DSN", nowhere}, {"TM_STORE_DSN", nowhere}});
  CHECK(result.exit_code == 2);
  CHECK(Contains(result.err, "http.usersFile: "));
  CHECK(Contains(result.err, "users.yaml:4:11: users[0].role: must be admin or viewer"));
  // Nothing of the file is repeated but the position and the field.
  CHECK_FALSE(Contains(result.err, "$argon2id$"));
}

}  // namespace tmaster::controller

namespace tmaster::controller {
namespace {

TEST_CASE("dashboard: a server without tokens shows the fleet's page at once; with tokens, "
          "the login form") {
  FakeStore store;
  Metrics metrics;
  HttpServerOptions options;
  options.listen = "127.0.0.1:0";
  HttpServer server(store, metrics, HttpHandlers{}, options);
  REQUIRE(server.Start().ok());
  httplib::Client client("127.0.0.1", server.port());
  auto page = client.Get("/");
  REQUIRE(page);
  CHECK(page->status == 200);
  CHECK(Contains(page->body, "id=\"overview\""));
  CHECK_FALSE(Contains(page->body, "id=\"login\""));
  auto session = client.Get("/api/v1/session");
  REQUIRE(session);
  CHECK(session->status == 200);
  CHECK(Contains(session->body, "anonymous"));
  // Through DNS rebinding (another name for 127.0.0.1): neither the page nor its data.
  const httplib::Headers rebound{{"Host", "tenants.evil.example:" + std::to_string(server.port())}};
  auto foreign = client.Get("/", rebound);
  REQUIRE(foreign);
  CHECK(foreign->status == 403);
  CHECK_FALSE(Contains(foreign->body, "id=\"overview\""));
  auto foreign_session = client.Get("/api/v1/session", rebound);
  REQUIRE(foreign_session);
  CHECK(foreign_session->status == 403);

  Fixture tokens;  // the same page on a server with tokens: the form only
  auto form = tokens.client->Get("/");
  REQUIRE(form);
  CHECK(Contains(form->body, "id=\"login\""));
  CHECK_FALSE(Contains(form->body, "id=\"overview\""));
}

// ---- the product page in a browser (issue 12) -------------------------------------------------
//
// The rollout's side of the page, driven in Debian's chromium by puppeteer-core (as
// tests/browser/ drives the rest against the built operator) against this process's HttpServer,
// the operator's own workspace API and a FakeRolloutControl, so that the rollout is whatever the
// test says and every verb the page sends is recorded. Needs node, chromium and
// tests/browser/node_modules (scripts/install-deps.sh); without them the case fails, naming them.

namespace {

// erp's rollout as the driver says it: halted on wave 2 of 3, bravo failed with its reason and
// backup, a newer revision refused.
constexpr const char* kHaltedRollout = R"J({"product":"erp",
  "revision":{"number":4,"digest":"0123456789ab"},
  "refused":{"reason":"RolloutRefused","revision":5,
             "message":"migration 0002_orders.sql was edited (it must stay as applied)"},
  "rollout":{"revision":4,"previousRevision":3,"phase":"Halted","currentWave":2,"waveCount":3,
    "pausedUntil":null,"pausedByPerson":false,"startedAt":"2026-12-04T18:00:00Z",
    "finishedAt":null,"counts":{"pending":1,"inProgress":1,"ready":1,"failed":1},
    "workspaces":[
      {"name":"acme","wave":1,"state":"ready","fromRevision":3,"reason":"",
       "preMigrationBackup":"acme-20261204T180100Z-a1b2","restore":"","attempt":1},
      {"name":"bravo","wave":2,"state":"failed","fromRevision":3,
       "reason":"migration 0004_orders.sql: SQLSTATE 23505: duplicate key",
       "preMigrationBackup":"bravo-20261204T181000Z-c3d4","restore":"","attempt":1},
      {"name":"charlie","wave":2,"state":"inProgress","fromRevision":3,"reason":"",
       "preMigrationBackup":"","restore":"","attempt":1},
      {"name":"delta","wave":3,"state":"pending","fromRevision":3,"reason":"",
       "preMigrationBackup":"","restore":"","attempt":0}]}})J";

// What the driver says once the page's Promote reached it (the test switches to it): the wave
// moves on, bravo retried. The page must show it without a reload (its 2 s poll of a rollout
// that has not ended).
constexpr const char* kProgressingRollout = R"({"product":"erp",
  "revision":{"number":4,"digest":"0123456789ab"},"refused":null,
  "rollout":{"revision":4,"previousRevision":3,"phase":"Progressing","currentWave":2,
    "waveCount":3,"pausedUntil":null,"pausedByPerson":false,"startedAt":"2026-12-04T18:00:00Z",
    "finishedAt":null,"counts":{"pending":1,"inProgress":2,"ready":1,"failed":0},
    "workspaces":[
      {"name":"acme","wave":1,"state":"ready","fromRevision":3,"reason":"",
       "preMigrationBackup":"acme-20261204T180100Z-a1b2","restore":"","attempt":1},
      {"name":"bravo","wave":2,"state":"inProgress","fromRevision":3,"reason":"",
       "preMigrationBackup":"bravo-20261204T181000Z-c3d4","restore":"","attempt":2},
      {"name":"charlie","wave":2,"state":"inProgress","fromRevision":3,"reason":"",
       "preMigrationBackup":"","restore":"","attempt":1},
      {"name":"delta","wave":3,"state":"pending","fromRevision":3,"reason":"",
       "preMigrationBackup":"","restore":"","attempt":0}]}})";

// The page's checks (CommonJS, run by node from a temporary file; puppeteer-core is resolved
// from tests/browser/node_modules). Prints TAP-like lines; exits 0 only when every scenario passed.
constexpr const char* kRolloutPageScript = R"JS(
"use strict";
const assert = require("node:assert/strict");
const path = require("node:path");
const { createRequire } = require("node:module");
const puppeteer = createRequire(path.join(process.env.TM_BROWSER_DIR, "package.json"))("puppeteer-core");
const BASE = process.env.TM_URL;
const ARTIFACTS = process.env.TM_ARTIFACTS;
const WAIT = 20000;

async function open(page, hash) {
  await page.goto(BASE + "/" + hash, { waitUntil: "domcontentloaded" });
  await page.waitForFunction(() => document.body.dataset.ready === "1", { timeout: WAIT });
}
const text = (page, selector) => page.$eval(selector, (n) => n.textContent.trim());
const count = (page, selector) => page.$$eval(selector, (n) => n.length);

const scenarios = [];
const scenario = (name, cookie, fn) => scenarios.push({ name, cookie, fn });

scenario("the admin reads the rollout: phase, counts, the failed workspace's reason", "TM_ADMIN_COOKIE", async (page) => {
  await open(page, "#/products/erp");
  await page.waitForSelector("#pr-rollout dd[data-field=phase]");
  assert.match(await text(page, "#pr-name"), /^erp$/);
  // The phase in words, its colour a class beside them.
  assert.match(await text(page, "#pr-rollout dd[data-field=phase]"), /Halted \(stopped on failures/);
  assert.ok(await page.$("#pr-rollout dd[data-field=phase] .phase.tone-bad"), "Halted is not shown as bad");
  assert.equal(await text(page, "#pr-rollout dd[data-field=revision]"), "3 → 4");
  assert.equal(await text(page, "#pr-rollout dd[data-field=wave]"), "2 of 3");
  assert.match(await text(page, "#pr-rollout dd[data-field=started]"), /^2026-12-04 18:00:00 UTC/);
  assert.match(await text(page, "#pr-rollout dd[data-field=finished]"), /not yet/);
  assert.match(await text(page, "#pr-revision"), /4 \(digest 0123456789ab\)/);
  assert.match(await text(page, "#pr-refused"), /Revision 5 was refused \(RolloutRefused\): migration 0002_orders.sql was edited/);
  for (const [state, n] of [["pending", "1"], ["inProgress", "1"], ["ready", "1"], ["failed", "1"]]) {
    assert.equal(await text(page, `#pr-counts li[data-state=${state}] .count`), n, state);
  }
  assert.match(await text(page, "#pr-counts li[data-state=failed]"), /failed/);
  assert.equal(await count(page, "#pr-workspaces tbody tr[data-name]"), 4);
  const bravo = "#pr-workspaces tr[data-name=bravo]";
  assert.match(await text(page, `${bravo} td[data-label=State]`), /^failed/);
  assert.equal(await text(page, `${bravo} td[data-label=Reason]`),
    "migration 0004_orders.sql: SQLSTATE 23505: duplicate key");
  assert.equal(await text(page, `${bravo} td[data-label="Pre-migration backup"]`), "bravo-20261204T181000Z-c3d4");
  assert.equal(await text(page, `${bravo} td[data-label="From revision"]`), "3");
  assert.equal(await page.$eval(`${bravo} a`, (a) => a.getAttribute("href")), "#/workspaces/bravo");
  assert.equal(await count(page, "#pr-actions button"), 5);
  await page.screenshot({ path: path.join(ARTIFACTS, "product-page.png"), fullPage: true });
});

scenario("the admin's Promote sends the POST; Undo asks first; a refusal shows its message", "TM_ADMIN_COOKIE", async (page) => {
  await open(page, "#/products/erp");
  await page.waitForSelector("#rollout-promote");
  const [answer] = await Promise.all([
    page.waitForResponse((r) => r.url() === BASE + "/api/v1/products/erp/rollout/promote" && r.request().method() === "POST"),
    page.click("#rollout-promote"),
  ]);
  assert.equal(answer.status(), 200);
  assert.ok(answer.request().headers()["x-csrf-token"], "the POST carries no X-CSRF-Token");
  await page.waitForFunction(() => /Promote: done by/.test(document.querySelector("#pr-action-status").textContent), { timeout: WAIT });
  // The driver moves on (the test switched its answer once the POST reached it): the page shows
  // it by itself, without a reload.
  await page.evaluate(() => { window.__tmNotReloaded = true; });
  await page.waitForFunction(() => /Progressing/.test(document.querySelector("#pr-rollout dd[data-field=phase]").textContent), { timeout: WAIT });
  assert.equal(await page.evaluate(() => window.__tmNotReloaded === true), true, "the page was reloaded");
  assert.equal(await text(page, "#pr-counts li[data-state=inProgress] .count"), "2");
  assert.match(await text(page, "#pr-workspaces tr[data-name=bravo] td[data-label=State]"), /in progress \(attempt 2\)/);
  assert.equal(await text(page, "#pr-refused"), "");
  // Undo asks; dismissed, nothing is sent.
  let asked = "";
  page.once("dialog", (dialog) => { asked = dialog.type() + ": " + dialog.message(); dialog.dismiss(); });
  await page.click("#rollout-undo");
  await page.waitForFunction(() => /not confirmed/.test(document.querySelector("#pr-action-status").textContent), { timeout: WAIT });
  assert.match(asked, /^confirm: Undo the rollout of erp\?/);
  // Accepted, it is sent.
  page.once("dialog", (dialog) => dialog.accept());
  const [undo] = await Promise.all([
    page.waitForResponse((r) => r.url() === BASE + "/api/v1/products/erp/rollout/undo"),
    page.click("#rollout-undo"),
  ]);
  assert.equal(undo.status(), 200);
  await page.waitForFunction(() => /Undo: done by/.test(document.querySelector("#pr-action-status").textContent), { timeout: WAIT });
  // A verb the phase does not take: the server's 409 message is shown as it is (the fake driver
  // takes every verb, so this answer is made here).
  await page.setRequestInterception(true);
  page.on("request", (request) => {
    if (request.url().endsWith("/rollout/abort")) {
      request.respond({ status: 409, contentType: "application/json", body: JSON.stringify({
        error: "Conflict", message: "the rollout is Undone: abort applies to a rollout that has not ended",
        details: { reason: "RolloutCommandRefused" } }) });
    } else {
      request.continue();
    }
  });
  page.once("dialog", (dialog) => dialog.accept());
  await page.click("#rollout-abort");
  await page.waitForFunction(() => /refused/.test(document.querySelector("#pr-action-status").textContent), { timeout: WAIT });
  assert.equal(await text(page, "#pr-action-status"), "Abort refused: the rollout is Undone: abort applies to a rollout that has not ended");
  assert.ok(await page.$("#pr-action-status.error"), "the refusal is not shown as an error");
  assert.equal(await page.$eval("#rollout-abort", (b) => b.disabled), false, "the buttons stay disabled");
});

scenario("the products page, the fleet table and the workspace page show revisions", "TM_ADMIN_COOKIE", async (page) => {
  await open(page, "#/products");
  await page.waitForSelector("#products tr[data-product=erp]");
  const erp = "#products tr[data-product=erp]";
  assert.match(await text(page, `${erp} td[data-label=Rollout]`), /^Halted to revision 4$/);
  assert.equal(await text(page, `${erp} td[data-label=Wave]`), "2 of 3");
  assert.equal(await text(page, `${erp} td[data-label=Revision]`), "4 0123456789ab");
  assert.equal(await text(page, `${erp} li[data-state=failed] .count`), "1");
  assert.equal(await page.$eval(`${erp} th a`, (a) => a.getAttribute("href")), "#/products/erp");
  await open(page, "#/");
  await page.waitForSelector("table#workspaces tbody tr[data-name=acme]");
  assert.match(await text(page, "table#workspaces tr[data-name=acme] td[data-label=Version]"), /rev 4$/);
  assert.match(await text(page, "table#workspaces tr[data-name=bravo] td[data-label=Version]"), /rev 3$/);
  assert.equal(await page.$eval("table#workspaces tr[data-name=acme] td[data-label=Product] a", (a) => a.getAttribute("href")), "#/products/erp");
  await open(page, "#/workspaces/acme");
  await page.waitForFunction(() => /rev 4/.test(document.querySelector("#ws-product").textContent), { timeout: WAIT });
  assert.match(await text(page, "#ws-product"), /^Product: erp/);
});

scenario("at phone width the product page fits", "TM_ADMIN_COOKIE", async (page) => {
  await page.setViewport({ width: 390, height: 844, isMobile: true, hasTouch: true });
  await open(page, "#/products/erp");
  await page.waitForSelector("#pr-workspaces tr[data-name=bravo]");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow} px wider than the phone`);
  await page.screenshot({ path: path.join(ARTIFACTS, "product-page-phone.png"), fullPage: true });
});

scenario("a viewer reads the rollout and gets no buttons", "TM_VIEWER_COOKIE", async (page) => {
  await open(page, "#/products/erp");
  await page.waitForSelector("#pr-rollout dd[data-field=phase]");
  assert.match(await text(page, "#pr-rollout dd[data-field=phase]"), /Progressing \(moving workspaces/);
  assert.equal(await text(page, "#pr-rollout dd[data-field=wave]"), "2 of 3");
  assert.equal(await count(page, "#pr-workspaces tbody tr[data-name]"), 4);
  assert.equal(await count(page, "#pr-actions button"), 0);
  assert.equal(await count(page, "button[id^=rollout-]"), 0);
});

(async () => {
  const browser = await puppeteer.launch({
    executablePath: process.env.TM_CHROMIUM, headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
    defaultViewport: { width: 1280, height: 800 },
  });
  let failed = 0;
  try {
    for (const { name, cookie, fn } of scenarios) {
      const context = await browser.createBrowserContext();
      const page = await context.newPage();
      page.setDefaultTimeout(WAIT);
      const errors = [];
      page.on("pageerror", (error) => errors.push(error.message));
      const value = process.env[cookie];
      await page.setCookie({ name: value.slice(0, value.indexOf("=")), value: value.slice(value.indexOf("=") + 1),
        url: BASE, httpOnly: true, sameSite: "Strict" });
      try {
        await fn(page);
        assert.deepEqual(errors, [], "the page threw");
        console.log(`ok - ${name}`);
      } catch (error) {
        failed += 1;
        console.log(`not ok - ${name}\n  ${String(error.stack || error).replaceAll("\n", "\n  ")}`);
        if (errors.length) console.log(`  page errors: ${errors.join(" | ")}`);
        const slug = name.replace(/[^a-z0-9]+/gi, "-").slice(0, 60);
        await page.screenshot({ path: path.join(ARTIFACTS, `failed-${slug}.png`) }).catch(() => {});
      } finally {
        await context.close();
      }
    }
  } finally {
    await browser.close();
  }
  console.log(`# ${scenarios.length - failed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
})().catch((error) => { console.log(`not ok - the browser: ${error.stack || error}`); process.exit(2); });
)JS";

// The workspace API on HttpServer (with a users file: alice admin, bob viewer), erp declared at
// revision 4 with kHaltedRollout, and acme, bravo and charlie in the fleet view (acme converged on
// revision 4, bravo on 3, charlie on none).
struct RolloutPage {
  FakeStore store;
  Metrics metrics;
  std::optional<Users> users;
  DesiredState desired;
  ProductRegistry products;
  FleetView fleet;
  testing::FakeRolloutControl rollouts;
  std::unique_ptr<WorkspaceApi> api;
  std::unique_ptr<HttpServer> server;
  std::unique_ptr<httplib::Client> client;

  RolloutPage() {
    Outcome<Users> parsed =
        Users::Parse("users:\n  - name: alice\n    hash: " + Argon2id(kAlicePassword) +
                         "\n    role: admin\n  - name: bob\n    hash: " + Argon2id("bob-pass") +
                         "\n    role: viewer\n",
                     "users.yaml");
    REQUIRE_MESSAGE(parsed.ok(), (parsed.ok() ? "" : parsed.failure().message));
    users = std::move(parsed).value();
    auto erp = std::make_shared<ProductEntry>();
    erp->product.name = "erp";
    erp->product.display_name = "ERP suite";
    erp->product.default_version = "2.4";
    erp->revision_digest = "0123456789abcdef0123456789abcdef";
    erp->revision = 4;
    products.Replace("fleet", {{"erp", std::move(erp)}});
    rollouts.SetStatus("erp", kHaltedRollout);
    rollouts.SetSummary("erp", R"({"phase":"Halted","revision":4,"currentWave":2,"waveCount":3,
        "counts":{"pending":1,"inProgress":1,"ready":1,"failed":1}})");
    std::vector<StoredWorkspace> rows;
    std::vector<WorkspaceStatus> statuses;
    using Named = std::pair<std::string, int>;
    for (const auto& [name, revision] :
         {Named{"acme", 4}, Named{"bravo", 3}, Named{"charlie", 0}}) {
      StoredWorkspace row;
      row.name = name;
      row.source = "fleet";
      row.spec_json = R"({"apiVersion":"tenantmaster.io/v1alpha1","kind":"Workspace",)"
                      R"("metadata":{"name":")" +
                      name + R"("},"spec":{"product":"erp","mode":"shared"}})";
      row.spec_digest = std::string(64, 'a');
      row.generation = 1;
      rows.push_back(row);
      WorkspaceStatus status;
      status.name = name;
      status.phase = name == "bravo" ? "Stalled" : "Ready";
      status.observed_generation = 1;
      status.conditions_json = "[]";
      status.product_revision = revision;
      statuses.push_back(status);
    }
    fleet.Reset(rows, statuses);

    WorkspaceApiDeps deps;
    deps.store = &store;
    deps.desired = &desired;
    deps.products = &products;
    deps.fleet = &fleet;
    deps.leading = [] { return true; };
    deps.rollouts = &rollouts;
    api = std::make_unique<WorkspaceApi>(std::move(deps));
    HttpHandlers handlers;
    handlers.workspaces = [this](const WorkspaceCall& call) {
      return ServeWorkspaceCall(*api, call);
    };
    HttpServerOptions options;
    options.listen = "127.0.0.1:0";
    options.admin_token = Secret(std::string(kAdminToken));
    options.read_token = Secret(std::string(kReadToken));
    options.users = &*users;
    options.routing.base_domain = "example.test";
    server = std::make_unique<HttpServer>(store, metrics, std::move(handlers), options);
    const Outcome<Done> started = server->Start();
    REQUIRE_MESSAGE(started.ok(), (started.ok() ? "" : started.failure().message));
    client = std::make_unique<httplib::Client>("127.0.0.1", server->port());
    client->set_read_timeout(10, 0);
  }
  RolloutPage(const RolloutPage&) = delete;
  RolloutPage& operator=(const RolloutPage&) = delete;
  ~RolloutPage() { server->Stop(); }

  std::string LogIn(const std::string& name, const std::string& secret) {
    auto res = client->Post("/login", httplib::Params{{"name", name}, {"secret", secret}});
    REQUIRE(res);
    REQUIRE_MESSAGE(res->status == 303, res->body);
    const std::string set_cookie = res->get_header_value("Set-Cookie");
    return set_cookie.substr(0, set_cookie.find(';'));
  }
};

// The first executable `name` on PATH, or empty.
std::string OnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path != nullptr ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::filesystem::path candidate = std::filesystem::path(dir) / name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return {};
}

}  // namespace

TEST_CASE("dashboard: the product page shows the rollout; an admin's Promote is sent, a viewer "
          "has no buttons (chromium)") {
  const std::string browser_dir = std::string(TM_SOURCE_DIR) + "/tests/browser";
  const char* chromium_env = std::getenv("TM_CHROMIUM");
  const std::string chromium = chromium_env != nullptr ? chromium_env : "/usr/bin/chromium";
  const std::string node = OnPath("node");
  REQUIRE_MESSAGE(!node.empty(), "node is not on PATH: run scripts/install-deps.sh");
  REQUIRE_MESSAGE(::access(chromium.c_str(), X_OK) == 0,
                  (chromium + " is missing: run scripts/install-deps.sh"));
  REQUIRE_MESSAGE(std::filesystem::is_directory(browser_dir + "/node_modules/puppeteer-core"),
                  "tests/browser/node_modules is missing: run scripts/install-deps.sh");

  RolloutPage s;
  const std::string admin = s.LogIn("alice", kAlicePassword);
  const std::string viewer = s.LogIn("bob", "bob-pass");
  const testing::TempDir dir;
  const std::filesystem::path script = dir.Write("rollout_page.cjs", kRolloutPageScript);
  const std::string artifacts = std::string(TM_BINARY_DIR) + "/test-artifacts/dashboard-rollout";
  std::filesystem::create_directories(artifacts);
  // Once the page's first verb reached the driver, the driver "moves on".
  std::atomic<bool> finished{false};
  std::thread driver([&] {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
    while (!finished && s.rollouts.Commands().empty() &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    s.rollouts.SetStatus("erp", kProgressingRollout);
  });
  const testing::ProcessResult run =
      testing::RunProcess({"/usr/bin/timeout", "300", node, script.string()},
                          {{"TM_URL", "http://127.0.0.1:" + std::to_string(s.server->port())},
                           {"TM_BROWSER_DIR", browser_dir},
                           {"TM_CHROMIUM", chromium},
                           {"TM_ARTIFACTS", artifacts},
                           {"TM_ADMIN_COOKIE", admin},
                           {"TM_VIEWER_COOKIE", viewer}});
  finished = true;
  driver.join();
  INFO(run.out);
  INFO(run.err);
  CHECK(run.exit_code == 0);
  CHECK(run.out.find("# 5 passed, 0 failed") != std::string::npos);

  // What the page sent: Promote, then Undo once confirmed (the dismissed one and the refused
  // Abort never reached the driver), each as alice.
  const std::vector<testing::FakeRolloutControl::CommandCall> commands = s.rollouts.Commands();
  REQUIRE(commands.size() == 2);
  CHECK(commands[0].product == "erp");
  CHECK(commands[0].verb == "promote");
  CHECK(commands[1].verb == "undo");
  for (const auto& command : commands) CHECK(Contains(command.who, "alice"));
  // Each page asked for erp's rollout and nothing else (the admin's three visits, the viewer's).
  const std::vector<std::string> asked = s.rollouts.StatusAsked();
  CHECK(asked.size() >= 4);
  CHECK(std::all_of(asked.begin(), asked.end(), [](const std::string& p) { return p == "erp"; }));
}

}  // namespace
}  // namespace tmaster::controller
