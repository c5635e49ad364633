// tenantctl against a fake API (docs/api.md): a cpp-httplib server in this process on a free port
// of 127.0.0.1 answers as the contract says, and RunTenantctl runs in-process with its output
// captured. Each case checks what a user sees: the one-line error and exit code of each status,
// paging that follows `metadata.continue`, `reconcile --wait` polling until the run after the
// request, `apply` printing created/configured/unchanged and the findings of a 422 at the
// file's lines, `diff`'s exit codes, `describe`'s plan, `version`. The token is never printed.
// The rollout and move verbs run against the operator's own HTTP server and workspace API
// instead, with a fake rollout driver and a fake move service, so that their paths, tokens and
// errors are the server's, not a copy.
// (An integration test, its own binary: it listens on a socket. The end-to-end test against the
// built daemon drives the built tenantctl the same way: tests/e2e/.)
#include <doctest/doctest.h>

#include <array>
#include <streambuf>

#include <httplib.h>
#include <sys/stat.h>

#include <boost/json.hpp>

#include <atomic>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "common/secret.hpp"
#include "controller/api/http_server.hpp"
#include "controller/cli/tenantctl.hpp"
#include "controller/daemon/workspace_api.hpp"
#include "controller/runtime/metrics.hpp"
#include "tests/support/fake_move_service.hpp"
#include "tests/support/fake_rollout_control.hpp"
#include "tests/support/fake_store.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace json = boost::json;
using tmaster::testing::TempDir;

constexpr const char* kToken = "tmt_k3j5abcdef_c2VjcmV0LXZhbHVlLW5vdC10by1iZS1wcmludGVk";

struct Seen {
  std::string method;
  std::string path;
  std::string query;  // `k=v&...` as received (decoded values through params)
  std::string authorization;
  std::string content_type;
  std::string body;
  httplib::Params params;
};

// An httplib server on 127.0.0.1 serving `routes` until the end of the scope, recording every
// request.
class FakeApi {
 public:
  explicit FakeApi(const std::function<void(httplib::Server&)>& routes) {
    // After the route's handler (the body has been read then) and before the answer is sent.
    server_.set_post_routing_handler([this](const httplib::Request& req, httplib::Response&) {
      const std::lock_guard lock(mutex_);
      std::string query;
      for (const auto& [key, value] : req.params) {
        query += (query.empty() ? "" : "&") + key + "=" + value;
      }
      seen_.push_back(Seen{req.method, req.path, query, req.get_header_value("Authorization"),
                           req.get_header_value("Content-Type"), req.body, req.params});
    });
    routes(server_);
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    serving_ = std::thread([this] { server_.listen_after_bind(); });
    // httplib's stop() does nothing before the server runs: wait for it, or a short-lived fake
    // would never stop.
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  FakeApi(const FakeApi&) = delete;
  FakeApi& operator=(const FakeApi&) = delete;
  ~FakeApi() {
    server_.stop();
    serving_.join();
  }
  [[nodiscard]] std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::vector<Seen> Requests() {
    const std::lock_guard lock(mutex_);
    return seen_;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread serving_;
  std::mutex mutex_;
  std::vector<Seen> seen_;
};

struct Run {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs tenantctl with `args` against `server` (TENANTCTL_SERVER) with kToken
// (TENANTCTL_TOKEN), no config file, stdin `input`, and a clock that a sleep moves forward.
// The world of one run: `out` and `err`, `server` and kToken from the environment, an empty
// config folder, stdin `input`, a fixed wall clock and a steady clock that a sleep moves forward
// (after `on_sleep`, when given).
tmaster::cli::World TestWorld(std::ostream& out, std::ostream& err, const TempDir& config_home,
                              const std::string& server, const std::string& input,
                              std::function<void()> on_sleep = {}) {
  tmaster::cli::World world;
  world.out = &out;
  world.err = &err;
  world.env = {{"TENANTCTL_SERVER", server},
               {"TENANTCTL_TOKEN", kToken},
               {"XDG_CONFIG_HOME", config_home.path().string()}};
  world.read_stdin = [input] { return input; };
  world.now_unix = [] { return std::int64_t{1796299200}; };  // 2026-12-03T12:00:00Z
  auto fake_now = std::make_shared<std::chrono::steady_clock::time_point>();
  world.steady_now = [fake_now] { return *fake_now; };
  world.sleep = [fake_now, on_sleep](std::chrono::milliseconds pause) {
    if (on_sleep) on_sleep();
    *fake_now += pause;
  };
  world.version = "9.9.9";
  return world;
}

Run Tenantctl(const std::vector<std::string>& args, const std::string& server,
              const std::string& input = "") {
  std::ostringstream out;
  std::ostringstream err;
  TempDir config_home;  // empty: no config file
  tmaster::cli::World world = TestWorld(out, err, config_home, server, input);
  Run run;
  run.exit_code = tmaster::cli::RunTenantctl(args, world);
  run.out = out.str();
  run.err = err.str();
  return run;
}

// An output that keeps what it was asked to flush apart from what it only buffered, as a pipe
// to another program does.
class FlushedOnly : public std::streambuf {
 public:
  FlushedOnly() { setp(buffer_.data(), buffer_.data() + buffer_.size()); }
  [[nodiscard]] const std::string& flushed() const { return flushed_; }

 protected:
  int overflow(int c) override {
    Drain();
    if (c != traits_type::eof()) {
      *pptr() = static_cast<char>(c);
      pbump(1);
    }
    return c == traits_type::eof() ? 0 : c;
  }
  int sync() override {
    Drain();
    return 0;
  }

 private:
  void Drain() {
    flushed_.append(pbase(), static_cast<std::size_t>(pptr() - pbase()));
    setp(buffer_.data(), buffer_.data() + buffer_.size());
  }
  std::array<char, 4096> buffer_{};
  std::string flushed_;
};

// What a reader of tenantctl's stdout had seen at each of its waits between polls.
std::vector<std::string> SeenAtEachWait(const std::vector<std::string>& args,
                                        const std::string& server) {
  FlushedOnly buffer;
  std::ostream out(&buffer);
  std::ostringstream err;
  TempDir config_home;
  std::vector<std::string> seen;
  tmaster::cli::World world = TestWorld(out, err, config_home, server, "",
                                        [&seen, &buffer] { seen.push_back(buffer.flushed()); });
  (void)tmaster::cli::RunTenantctl(args, world);
  return seen;
}

void Reply(httplib::Response& res, int status, const json::value& body) {
  res.status = status;
  res.set_content(json::serialize(body), "application/json");
}

void ReplyError(httplib::Response& res, int status, const std::string& code,
                const std::string& message, const json::value& details = nullptr) {
  json::object body{{"error", code}, {"message", message}};
  if (!details.is_null()) body["details"] = details;
  Reply(res, status, body);
}

json::object Workspace(const std::string& name, const std::string& phase = "Ready",
                       const json::array& runs = {}) {
  return json::object{
      {"apiVersion", "tenantmaster.io/v1alpha1"},
      {"kind", "Workspace"},
      {"metadata", {{"name", name}, {"creationTimestamp", "2026-12-03T11:00:00Z"}}},
      {"spec", {{"product", "erp"}, {"mode", "shared"}}},
      {"status",
       {{"phase", phase},
        {"productRevision", 2},
        {"conditions",
         json::array{{{"type", "Ready"},
                      {"status", phase == "Ready" ? "True" : "False"},
                      {"reason", phase == "Ready" ? "Converged" : "DatabaseUnreachable"},
                      {"message", phase == "Ready" ? "up to date" : "connection refused"}}}},
        {"lastRuns", runs}}}};
}

}  // namespace

TEST_CASE("tenantctl: each error status is one line naming the problem, with a non-zero exit") {
  FakeApi api([](httplib::Server& s) {
    s.Get("/api/v1/workspaces/ghost", [](const httplib::Request&, httplib::Response& res) {
      ReplyError(res, 404, "NotFound", "no workspace ghost");
    });
    s.Get("/api/v1/workspaces/locked", [](const httplib::Request&, httplib::Response& res) {
      res.set_header("WWW-Authenticate", "Bearer");
      ReplyError(res, 401, "Unauthorized", "unknown token");
    });
    s.Delete("/api/v1/workspaces/acme", [](const httplib::Request&, httplib::Response& res) {
      ReplyError(res, 403, "Forbidden", "a viewer token may not write");
    });
    s.Post("/api/v1/workspaces/gitted/suspend",
           [](const httplib::Request&, httplib::Response& res) {
             ReplyError(res, 409, "Conflict", "owned by a source",
                        json::object{{"source", "fleet"}, {"kind", "git"}});
           });
    // A server that quotes what it was sent: the token must not come out of tenantctl.
    s.Get("/api/v1/workspaces/broken", [](const httplib::Request& req, httplib::Response& res) {
      ReplyError(res, 503, "Unavailable",
                 "the store cannot be reached (" + req.get_header_value("Authorization") + ")");
    });
  });

  const Run missing = Tenantctl({"get", "workspace", "ghost"}, api.Url());
  CHECK(missing.exit_code == 1);
  CHECK(missing.err == "tenantctl: workspace \"ghost\" not found\n");
  CHECK(missing.out.empty());

  const Run refused = Tenantctl({"get", "workspace", "locked"}, api.Url());
  CHECK(refused.exit_code == 1);
  CHECK(refused.err == "tenantctl: the server refused the token (401)\n");

  const Run forbidden = Tenantctl({"delete", "workspace", "acme"}, api.Url());
  CHECK(forbidden.exit_code == 1);
  CHECK(forbidden.err ==
        "tenantctl: the token may not do this (403): a viewer token may not write\n");

  const Run conflict = Tenantctl({"suspend", "workspace", "gitted"}, api.Url());
  CHECK(conflict.exit_code == 1);
  CHECK(conflict.err.find("workspace \"gitted\" is owned by the git source \"fleet\"") !=
        std::string::npos);

  const Run failed = Tenantctl({"get", "workspace", "broken"}, api.Url());
  CHECK(failed.exit_code == 1);
  CHECK(failed.err.rfind("tenantctl: the server failed (503): the store cannot be reached", 0) ==
        0);
  CHECK(failed.err.find(kToken) == std::string::npos);
  CHECK(failed.err.find("Bearer ***") != std::string::npos);

  // Every request carried the token.
  for (const Seen& seen : api.Requests()) CHECK(seen.authorization == std::string("Bearer ") + kToken);
}

TEST_CASE("tenantctl: a config file others may read is refused with exit 2, the token unsaid") {
  FakeApi api([](httplib::Server& s) {
    s.Get("/api/v1/sources", [](const httplib::Request&, httplib::Response& res) {
      Reply(res, 200, json::object{{"items", json::array{}}});
    });
  });
  TempDir home;
  const auto file = home.Write("tenantctl/config", "server: " + api.Url() + "\ntoken: " + kToken + "\n");
  std::ostringstream out;
  std::ostringstream err;
  tmaster::cli::World world;
  world.out = &out;
  world.err = &err;
  world.env = {{"XDG_CONFIG_HOME", home.path().string()}};
  world.now_unix = [] { return std::int64_t{0}; };
  REQUIRE(::chmod(file.c_str(), 0644) == 0);
  CHECK(tmaster::cli::RunTenantctl({"get", "sources"}, world) == 2);
  CHECK(err.str().find("may be accessed by group or others (mode 0644)") != std::string::npos);
  CHECK(err.str().find(kToken) == std::string::npos);
  CHECK(api.Requests().empty());

  REQUIRE(::chmod(file.c_str(), 0600) == 0);
  CHECK(tmaster::cli::RunTenantctl({"get", "sources"}, world) == 0);
  REQUIRE(api.Requests().size() == 1);
  CHECK(api.Requests()[0].authorization == std::string("Bearer ") + kToken);
}

TEST_CASE("tenantctl: an unreachable server is `cannot reach URL: reason`, exit 1") {
  std::string url;
  {
    FakeApi closed([](httplib::Server&) {});
    url = closed.Url();
  }  // the port is free again: nothing listens there
  const Run run = Tenantctl({"get", "workspaces"}, url);
  CHECK(run.exit_code == 1);
  CHECK(run.err == "tenantctl: cannot reach " + url + ": connection refused\n");
}

TEST_CASE("tenantctl: get follows metadata.continue page after page, and --limit stops it") {
  // Seven workspaces in name order; a page ends after `limit` items with the last name as the
  // continue token, as docs/api.md describes.
  const std::vector<std::string> names{"a1", "a2", "b1", "b2", "c1", "c2", "d1"};
  FakeApi api([&names](httplib::Server& s) {
    s.Get("/api/v1/workspaces", [&names](const httplib::Request& req, httplib::Response& res) {
      const std::size_t limit = std::stoul(req.get_param_value("limit"));
      const std::string after = req.get_param_value("continue");
      json::array items;
      std::size_t i = 0;
      while (i < names.size() && !after.empty() && names[i] <= after) ++i;
      for (; i < names.size() && items.size() < limit; ++i) items.push_back(Workspace(names[i]));
      json::object metadata;
      if (i < names.size()) {
        metadata["continue"] = names[i - 1];
        metadata["remainingItemCount"] = names.size() - i;
      }
      Reply(res, 200, json::object{{"items", items}, {"metadata", metadata}});
    });
  });

  const Run all = Tenantctl({"get", "workspaces", "-o", "name", "--chunk-size", "3",
                             "-l", "plan=gold", "--phase", "Ready"},
                            api.Url());
  CHECK(all.exit_code == 0);
  CHECK(all.out ==
        "workspace/a1\nworkspace/a2\nworkspace/b1\nworkspace/b2\nworkspace/c1\nworkspace/c2\n"
        "workspace/d1\n");
  std::vector<Seen> seen = api.Requests();
  REQUIRE(seen.size() == 3);
  CHECK(seen[0].query == "labelSelector=plan=gold&limit=3&phase=Ready");
  CHECK(seen[1].params.find("continue")->second == "b1");
  CHECK(seen[2].params.find("continue")->second == "c2");

  const Run five = Tenantctl({"get", "workspaces", "--chunk-size", "3", "--limit", "5"}, api.Url());
  CHECK(five.exit_code == 0);
  CHECK(five.out.find("c1 ") != std::string::npos);
  CHECK(five.out.find("c2 ") == std::string::npos);
  seen = api.Requests();
  REQUIRE(seen.size() == 5);
  CHECK(seen[3].params.find("limit")->second == "3");
  CHECK(seen[4].params.find("limit")->second == "2");

  // Without --chunk-size, pages of 500.
  const Run table = Tenantctl({"get", "workspaces"}, api.Url());
  CHECK(table.exit_code == 0);
  CHECK(table.out.rfind("NAME   PRODUCT   REV   MODE     PHASE   READY   AGE\n"
                        "a1     erp       2     shared   Ready   True    60m\n", 0) == 0);
  CHECK(api.Requests().back().params.find("limit")->second == "500");
}

TEST_CASE("tenantctl: reconcile --wait polls until the run after the request, exits with it") {
  // The workspace's newest run is an old one for the first `polls_before` GETs, then the run
  // the request asked for, with `result`.
  std::atomic<int> gets{0};
  std::atomic<int> polls_before{2};
  std::string result = "Succeeded";
  const json::object old_run{{"start", "2026-12-03T11:00:00Z"}, {"durationSeconds", 0.5},
                             {"result", "Succeeded"}, {"reason", "Converged"}};
  FakeApi api([&](httplib::Server& s) {
    s.Post("/api/v1/workspaces/acme/reconcile",
           [](const httplib::Request&, httplib::Response& res) {
             Reply(res, 202, json::object{{"workspace", "acme"},
                                          {"queuedAt", "2026-12-03T12:00:00Z"}});
           });
    s.Get("/api/v1/workspaces/acme", [&](const httplib::Request&, httplib::Response& res) {
      const int n = ++gets;
      if (n <= polls_before) {
        Reply(res, 200, Workspace("acme", "Ready", json::array{old_run}));
        return;
      }
      const json::object new_run{{"start", "2026-12-03T12:00:01Z"}, {"durationSeconds", 0.2},
                                 {"result", result},
                                 {"reason", result == "Succeeded" ? "Converged" : "DatabaseUnreachable"}};
      Reply(res, 200,
            Workspace("acme", result == "Succeeded" ? "Ready" : "Degraded",
                      json::array{new_run, old_run}));
    });
  });

  SUBCASE("the run succeeds") {
    const Run run = Tenantctl({"reconcile", "workspace", "acme", "--wait"}, api.Url());
    CHECK(run.exit_code == 0);
    CHECK(run.out ==
          "workspace/acme reconcile queued\nworkspace/acme reconciled: Ready (Converged)\n");
    CHECK(gets == 3);
  }
  SUBCASE("the run fails: its reason and message") {
    result = "Failed";
    const Run run = Tenantctl({"reconcile", "workspace", "acme", "--wait"}, api.Url());
    CHECK(run.exit_code == 1);
    CHECK(run.err ==
          "tenantctl: workspace \"acme\": the run failed: DatabaseUnreachable: connection "
          "refused\n");
  }
  SUBCASE("no run in time") {
    polls_before = 1000;
    const Run run =
        Tenantctl({"reconcile", "workspace", "acme", "--wait", "--timeout", "5s"}, api.Url());
    CHECK(run.exit_code == 1);
    CHECK(run.err.find("tenantctl: workspace \"acme\": no run finished within 5s of the "
                       "reconcile queued at 2026-12-03T12:00:00Z") == 0);
    CHECK(gets >= 5);
    CHECK(gets <= 7);
  }
  SUBCASE("without --wait: queued, nothing polled") {
    const Run run = Tenantctl({"reconcile", "workspace", "acme"}, api.Url());
    CHECK(run.exit_code == 0);
    CHECK(gets == 0);
  }
}

TEST_CASE("tenantctl: apply PUTs every Workspace, prints what happened, maps 422 findings") {
  FakeApi api([](httplib::Server& s) {
    s.Put(R"(/api/v1/workspaces/([a-z0-9-]+))",
          [](const httplib::Request& req, httplib::Response& res) {
            const std::string name = req.matches[1];
            if (name == "new") {
              res.set_header("Tenant-Master-Apply", "created");
              Reply(res, 201, Workspace(name));
            } else if (name == "changed") {
              res.set_header("Tenant-Master-Apply", "configured");
              Reply(res, 200, Workspace(name));
            } else if (name == "same") {
              res.set_header("Tenant-Master-Apply", "unchanged");
              Reply(res, 200, Workspace(name));
            } else if (name == "bad") {
              // Line 6 of the body is `  mode: sideways` (line 1 is the document's `---`).
              ReplyError(res, 422, "Invalid", "the manifest does not validate",
                         json::array{{{"file", "request"}, {"line", 6}, {"column", 9},
                                      {"field", "spec.mode"},
                                      {"message", "must be shared or dedicated"}}});
            } else {
              ReplyError(res, 409, "Conflict", "owned by a source",
                         json::object{{"source", "local"}, {"kind", "directory"}});
            }
          });
  });
  TempDir dir;
  const std::string file = dir.Write("fleet.yaml",
                                     "apiVersion: tenantmaster.io/v1alpha1\n"          // 1
                                     "kind: Product\n"                                 // 2
                                     "metadata: {name: erp}\n"                         // 3
                                     "---\n"                                           // 4
                                     "apiVersion: tenantmaster.io/v1alpha1\n"          // 5
                                     "kind: Workspace\n"                               // 6
                                     "metadata: {name: new}\n"                         // 7
                                     "spec: {product: erp, mode: shared}\n"            // 8
                                     "---\n"                                           // 9
                                     "apiVersion: tenantmaster.io/v1alpha1\n"          // 10
                                     "kind: Workspace\n"                               // 11
                                     "metadata: {name: bad}\n"                         // 12
                                     "spec:\n"                                         // 13
                                     "  mode: sideways\n"                              // 14
                                     "---\n"                                           // 15
                                     "apiVersion: tenantmaster.io/v1alpha1\n"          // 16
                                     "kind: Workspace\n"                               // 17
                                     "metadata: {name: changed}\n"                     // 18
                                     "spec: {product: erp, mode: shared}\n")
                               .string();
  const std::string more = "apiVersion: tenantmaster.io/v1alpha1\n"
                           "kind: Workspace\n"
                           "metadata: {name: same}\n"
                           "---\n"
                           "apiVersion: tenantmaster.io/v1alpha1\n"
                           "kind: Workspace\n"
                           "metadata: {name: sourced}\n";

  const Run run = Tenantctl({"apply", "-f", file, "-f", "-"}, api.Url(), more);
  CHECK(run.exit_code == 1);  // bad and sourced failed; the others were still applied
  CHECK(run.out ==
        "workspace/new created\nworkspace/changed configured\nworkspace/same unchanged\n");
  CHECK(run.err.find("product/erp skipped (" + file + ":2): products live in the sources") !=
        std::string::npos);
  CHECK(run.err.find(file + ":14:9: spec.mode: must be shared or dedicated\n") !=
        std::string::npos);
  CHECK(run.err.find("tenantctl: <stdin>:6: workspace \"sourced\" is owned by the directory "
                     "source \"local\"") != std::string::npos);

  const std::vector<Seen> seen = api.Requests();
  REQUIRE(seen.size() == 5);
  CHECK(seen[0].method == "PUT");
  CHECK(seen[0].path == "/api/v1/workspaces/new");
  CHECK(seen[0].content_type == "application/yaml");
  CHECK(seen[0].body.find("metadata: {name: new}") != std::string::npos);
  CHECK(seen[0].body.find("name: bad") == std::string::npos);  // one document per request

  const Run forced = Tenantctl({"apply", "--force", "-f", "-"}, api.Url(), more);
  CHECK(forced.out == "workspace/same unchanged\n");
  CHECK(api.Requests().back().query == "force=true");
  CHECK(Tenantctl({"apply"}, api.Url()).exit_code == 2);
}

TEST_CASE("tenantctl: diff exits 0 without differences, 1 with, 2 on an error") {
  std::string answer;
  int status = 200;
  FakeApi api([&](httplib::Server& s) {
    s.Post("/api/v1/plan", [&](const httplib::Request&, httplib::Response& res) {
      res.status = status;
      res.set_content(answer, "application/json");
    });
  });
  const std::string manifest = "apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\n"
                               "metadata: {name: acme}\nspec: {product: erp, mode: shared}\n";

  answer = R"({"items":[{"workspace":"acme","converged":true,"actions":[]}],"diagnostics":[]})";
  const Run none = Tenantctl({"diff", "-f", "-"}, api.Url(), manifest);
  CHECK(none.exit_code == 0);
  CHECK(none.out == "workspace/acme: converged\n");
  CHECK(api.Requests().back().body == manifest);

  answer = R"({"items":[{"workspace":"acme","converged":false,"actions":[
      {"kind":"CreateDatabase","description":"create database \"tenant_acme\""}]}]})";
  const Run some = Tenantctl({"diff", "-f", "-"}, api.Url(), manifest);
  CHECK(some.exit_code == 1);
  CHECK(some.out ==
        "workspace/acme: 1 action\n  + CreateDatabase: create database \"tenant_acme\"\n");

  status = 422;
  answer = R"({"error":"Invalid","message":"invalid","details":[{"file":"request","line":4,
      "column":21,"field":"spec.product","message":"no product \"erp\""}]})";
  const Run invalid = Tenantctl({"diff", "-f", "-"}, api.Url(), manifest);
  CHECK(invalid.exit_code == 2);
  CHECK(invalid.err == "<stdin>:4:21: spec.product: no product \"erp\"\n");

  status = 500;
  answer = R"({"error":"Internal","message":"boom"})";
  CHECK(Tenantctl({"diff", "-f", "-"}, api.Url(), manifest).exit_code == 2);
  CHECK(Tenantctl({"diff", "-f", "-"}, "http://127.0.0.1:1", manifest).exit_code == 2);
}

TEST_CASE("tenantctl: describe asks for the plan of a workspace that is not Ready") {
  FakeApi api([](httplib::Server& s) {
    s.Get("/api/v1/workspaces/beta", [](const httplib::Request&, httplib::Response& res) {
      Reply(res, 200, Workspace("beta", "Degraded"));
    });
    s.Get("/api/v1/events", [](const httplib::Request&, httplib::Response& res) {
      Reply(res, 200, json::object{{"items", json::array{}}});
    });
    s.Post("/api/v1/plan", [](const httplib::Request&, httplib::Response& res) {
      Reply(res, 200, json::parse(R"({"items":[{"workspace":"beta","converged":false,
          "actions":[{"kind":"CreateDatabase","description":"create"}]}]})"));
    });
  });
  const Run run = Tenantctl({"describe", "workspace", "beta"}, api.Url());
  CHECK(run.exit_code == 0);
  CHECK(run.out.find("Phase:                 Degraded\n") != std::string::npos);
  CHECK(run.out.find("Plan:\n  workspace/beta: 1 action\n    + CreateDatabase: create\n") !=
        std::string::npos);
  const std::vector<Seen> seen = api.Requests();
  REQUIRE(seen.size() == 3);
  CHECK(seen[1].query == "limit=10&workspace=beta");
  CHECK(seen[2].content_type == "application/yaml");
  // The plan is asked for the workspace as a manifest: no status, no server metadata.
  CHECK(seen[2].body.find("kind: Workspace") != std::string::npos);
  CHECK(seen[2].body.find("product: erp") != std::string::npos);
  CHECK(seen[2].body.find("status") == std::string::npos);
  CHECK(seen[2].body.find("creationTimestamp") == std::string::npos);
}

TEST_CASE("tenantctl: version, token create/list/revoke") {
  FakeApi api([](httplib::Server& s) {
    s.Get("/api/v1/version", [](const httplib::Request&, httplib::Response& res) {
      Reply(res, 200, json::object{{"version", "0.2.0"}});
    });
    s.Post("/api/v1/tokens", [](const httplib::Request& req, httplib::Response& res) {
      const json::value asked = json::parse(req.body);
      Reply(res, 201, json::object{{"id", "abcdefghij"},
                                   {"token", "tmt_abcdefghij_NEWSECRET"},
                                   {"role", asked.at("role")},
                                   {"expiresAt", "2027-01-02T12:00:00Z"}});
    });
    s.Get("/api/v1/tokens", [](const httplib::Request&, httplib::Response& res) {
      Reply(res, 200, json::parse(R"({"items":[{"id":"abcdefghij","role":"viewer",
          "description":"grafana","createdAt":"2026-12-03T11:00:00Z",
          "expiresAt":"2027-01-02T12:00:00Z","lastUsedAt":null}]})"));
    });
    s.Delete("/api/v1/tokens/abcdefghij", [](const httplib::Request&, httplib::Response& res) {
      res.status = 204;
    });
    s.Delete("/api/v1/tokens/unknown", [](const httplib::Request&, httplib::Response& res) {
      ReplyError(res, 404, "NotFound", "no token");
    });
  });
  const Run version = Tenantctl({"version"}, api.Url());
  CHECK(version.exit_code == 0);
  CHECK(version.out == "tenantctl 9.9.9\nserver 0.2.0 (" + api.Url() + ")\n");

  const Run created = Tenantctl(
      {"token", "create", "--role", "viewer", "--ttl", "30d", "--description", "grafana"},
      api.Url());
  CHECK(created.exit_code == 0);
  CHECK(created.out == "tmt_abcdefghij_NEWSECRET\n");
  CHECK(created.err.find("token/abcdefghij created (role viewer") != std::string::npos);
  CHECK(json::parse(api.Requests().back().body) ==
        json::parse(R"({"role":"viewer","ttl":"30d","description":"grafana"})"));

  const Run listed = Tenantctl({"token", "list"}, api.Url());
  CHECK(listed.out == "ID           ROLE     DESCRIPTION   EXPIRES   LAST-USED   AGE\n"
                      "abcdefghij   viewer   grafana       in 30d    <never>     60m\n");

  CHECK(Tenantctl({"token", "revoke", "abcdefghij"}, api.Url()).out ==
        "token/abcdefghij revoked\n");
  const Run unknown = Tenantctl({"token", "revoke", "unknown"}, api.Url());
  CHECK(unknown.exit_code == 1);
  CHECK(unknown.err == "tenantctl: token \"unknown\" not found\n");
  CHECK(Tenantctl({"token", "create"}, api.Url()).exit_code == 2);  // --role is required
}

TEST_CASE("tenantctl: backup --wait polls the catalog until the backup is in it") {
  std::atomic<int> gets{0};
  std::string state = "ok";
  FakeApi api([&](httplib::Server& s) {
    s.Post("/api/v1/workspaces/acme/backups", [](const httplib::Request&, httplib::Response& res) {
      Reply(res, 202, json::object{{"backup", "acme-1"}, {"workspace", "acme"},
                                   {"kind", "manual"}, {"state", "queued"},
                                   {"queuedAt", "2026-12-03T12:00:00Z"}});
    });
    s.Get("/api/v1/workspaces/acme/backups", [&](const httplib::Request&, httplib::Response& res) {
      const json::object pending{{"id", "acme-1"}, {"workspace", "acme"}, {"kind", "manual"},
                                 {"state", "running"}, {"queuedAt", "2026-12-03T12:00:00Z"}};
      if (++gets <= 2) {
        Reply(res, 200, json::object{{"items", json::array{}}, {"pending", json::array{pending}}});
        return;
      }
      json::object row{{"id", "acme-1"}, {"workspace", "acme"}, {"kind", "manual"},
                       {"state", state}, {"sizeBytes", 12345678}, {"durationSeconds", 1.3},
                       {"createdAt", "2026-12-03T12:00:00Z"}, {"verifiedAt", nullptr}};
      if (state == "failed") row["reason"] = "pg_dump: connection refused";
      Reply(res, 200, json::object{{"items", json::array{row}}, {"pending", json::array{}}});
    });
  });
  SUBCASE("ok") {
    const Run run = Tenantctl({"backup", "acme", "--wait"}, api.Url());
    CHECK(run.exit_code == 0);
    CHECK(run.out == "backup acme/acme-1 queued\nbackup acme-1: ok, 12.3 MB in 1.3 s\n");
    CHECK(gets == 3);
  }
  SUBCASE("failed: its reason, exit 1") {
    state = "failed";
    const Run run = Tenantctl({"backup", "acme", "--wait"}, api.Url());
    CHECK(run.exit_code == 1);
    CHECK(run.err == "tenantctl: backup acme-1: failed: pg_dump: connection refused\n");
  }
  SUBCASE("not in time: exit 1 naming the timeout") {
    gets = -1000;
    const Run run = Tenantctl({"backup", "acme", "--wait", "--timeout", "3s"}, api.Url());
    CHECK(run.exit_code == 1);
    CHECK(run.err.find("tenantctl: backup acme-1 of workspace \"acme\": not in the catalog "
                       "within 3s (--timeout; last seen: running)") == 0);
    CHECK(gets >= -1000 + 6);
    CHECK(gets <= -1000 + 8);
  }
  SUBCASE("without --wait: queued, nothing polled") {
    const Run run = Tenantctl({"backup", "acme"}, api.Url());
    CHECK(run.exit_code == 0);
    CHECK(run.out == "backup acme/acme-1 queued\n");
    CHECK(gets == 0);
  }
}

TEST_CASE("tenantctl: backup --all queues every selected workspace; one refused is exit 1") {
  FakeApi api([&](httplib::Server& s) {
    s.Get("/api/v1/workspaces", [](const httplib::Request&, httplib::Response& res) {
      Reply(res, 200, json::object{{"items", json::array{Workspace("acme"), Workspace("beta")}},
                                   {"metadata", json::object{}}});
    });
    s.Post("/api/v1/workspaces/acme/backups", [](const httplib::Request&, httplib::Response& res) {
      Reply(res, 202, json::object{{"backup", "acme-1"}, {"state", "queued"}});
    });
    s.Post("/api/v1/workspaces/beta/backups", [](const httplib::Request&, httplib::Response& res) {
      ReplyError(res, 409, "Conflict", "workspace \"beta\" has no database yet",
                 json::object{{"reason", "NotConverged"}});
    });
  });
  const Run run = Tenantctl({"backup", "--all", "-l", "plan=gold"}, api.Url());
  CHECK(run.exit_code == 1);
  CHECK(run.out == "backup acme/acme-1 queued\n");
  CHECK(run.err == "tenantctl: workspace \"beta\": backup of workspace \"beta\" refused (409): "
                   "workspace \"beta\" has no database yet\n");
  const std::vector<Seen> seen = api.Requests();
  REQUIRE(!seen.empty());
  CHECK(seen.front().params.find("labelSelector")->second == "plan=gold");

  CHECK(Tenantctl({"backup", "acme", "--all"}, api.Url()).exit_code == 2);
  CHECK(Tenantctl({"backup"}, api.Url()).exit_code == 2);
}

TEST_CASE("tenantctl: backups prints the catalog; restore --wait follows its steps") {
  std::atomic<int> polls{0};
  std::string ending = "succeeded";
  FakeApi api([&](httplib::Server& s) {
    s.Get("/api/v1/workspaces/acme/backups", [](const httplib::Request&, httplib::Response& res) {
      Reply(res, 200,
            json::object{{"items", json::array{json::object{
                                       {"id", "acme-1"}, {"kind", "scheduled"},
                                       {"state", "verified"}, {"sizeBytes", 1500},
                                       {"createdAt", "2026-12-03T11:00:00Z"},
                                       {"verifiedAt", "2026-12-03T11:30:00Z"},
                                       {"appliedMigration", "0002_orders"}}}},
                         {"pending", json::array{}}});
    });
    s.Get("/api/v1/workspaces/ghost/backups", [](const httplib::Request&, httplib::Response& res) {
      ReplyError(res, 404, "NotFound", "workspace \"ghost\" not found");
    });
    s.Post("/api/v1/workspaces/acme/restore", [](const httplib::Request&, httplib::Response& res) {
      Reply(res, 202, json::object{{"restore", "r-1"}, {"workspace", "copy"}, {"from", "acme"},
                                   {"backup", "acme-1"}, {"state", "running"},
                                   {"step", "checksum"}, {"message", "checking the file"}});
    });
    s.Get("/api/v1/restores/r-1", [&](const httplib::Request&, httplib::Response& res) {
      const int n = ++polls;
      if (ending == "gone" && n >= 2) {
        ReplyError(res, 404, "NotFound", "restore \"r-1\" is not known here");
        return;
      }
      json::object p{{"restore", "r-1"}, {"workspace", "copy"}, {"state", "running"},
                     {"step", n == 1 ? "suspend" : "restore"},
                     {"message", n == 1 ? "sessions ended" : "pg_restore"}};
      if (n >= 4) {
        p["state"] = ending;
        p["step"] = ending == "succeeded" ? "done" : "restore";
        p["message"] = ending == "succeeded" ? "restored" : "pg_restore: lock timeout";
        p["safetyBackup"] = "copy-safety";
      }
      Reply(res, 200, p);
    });
  });
  Run run = Tenantctl({"backups", "acme"}, api.Url());
  CHECK(run.exit_code == 0);
  CHECK(run.out ==
        "ID       KIND        STATE      SIZE     AGE   VERIFIED   MIGRATION\n"
        "acme-1   scheduled   verified   1.5 kB   60m   30m        0002_orders\n");
  run = Tenantctl({"backups", "acme", "-o", "json"}, api.Url());
  CHECK(json::parse(run.out).at("items").as_array().size() == 1);
  run = Tenantctl({"backups", "ghost"}, api.Url());
  CHECK(run.exit_code == 1);
  CHECK(run.err == "tenantctl: workspace \"ghost\" not found\n");
  CHECK(Tenantctl({"backups", "acme", "-o", "wide"}, api.Url()).exit_code == 2);

  SUBCASE("succeeded: each new step once, exit 0") {
    run = Tenantctl({"restore", "acme", "--backup", "acme-1", "--into", "copy", "--wait"},
                    api.Url());
    CHECK(run.exit_code == 0);
    CHECK(run.out ==
          "restore r-1 of backup acme-1 into copy started\n"
          "restore r-1: checksum: checking the file\n"
          "restore r-1: suspend: sessions ended\n"
          "restore r-1: restore: pg_restore\n"
          "restore r-1: done: restored\n"
          "restore r-1 succeeded (safety backup copy-safety)\n");
    // Through a pipe, each step is there while tenantctl waits for the next one.
    polls = 0;
    const std::vector<std::string> at_waits =
        SeenAtEachWait({"restore", "acme", "--backup", "acme-1", "--into", "copy", "--wait"},
                       api.Url());
    REQUIRE(at_waits.size() >= 2);
    CHECK(at_waits[0] ==
          "restore r-1 of backup acme-1 into copy started\n"
          "restore r-1: checksum: checking the file\n");
    CHECK(at_waits[1].find("restore r-1: suspend: sessions ended\n") != std::string::npos);
    bool posted = false;
    for (const Seen& seen : api.Requests()) {
      if (seen.method == "POST") {
        CHECK(json::parse(seen.body) == json::parse(R"({"backup":"acme-1","into":"copy"})"));
        CHECK(seen.content_type == "application/json");
        posted = true;
      }
    }
    CHECK(posted);
  }
  SUBCASE("failed: the message on stderr, exit 1") {
    ending = "failed";
    run = Tenantctl({"restore", "acme", "--backup", "acme-1", "--wait"}, api.Url());
    CHECK(run.exit_code == 1);
    CHECK(run.err == "tenantctl: restore r-1 failed: pg_restore: lock timeout\n");
  }
  SUBCASE("forgotten by the operator: exit 1 saying so") {
    ending = "gone";
    run = Tenantctl({"restore", "acme", "--backup", "acme-1", "--wait"}, api.Url());
    CHECK(run.exit_code == 1);
    CHECK(run.err.find("tenantctl: the operator no longer knows restore r-1 (it restarted?)") ==
          0);
  }
  SUBCASE("--backup is required") {
    run = Tenantctl({"restore", "acme"}, api.Url());
    CHECK(run.exit_code == 2);
    CHECK(run.err.find("restore: --backup ID is required") != std::string::npos);
  }
}

// ---- tenantctl rollout (docs/api.md#rollouts) ----
//
// Against the operator's own HTTP server and workspace API (the real route table, tokens and
// error mapping), with a fake rollout driver: what tenantctl asks for is what the server serves.

namespace {

namespace controller = tmaster::controller;

constexpr const char* kAdminToken = "rollout-itest-admin-token-0123456789";
constexpr const char* kViewerToken = "rollout-itest-viewer-token-9876543210";

// A rollout in its second wave: one workspace of each state, the failed one with its reason.
constexpr const char* kProgressing = R"({"product":"erp",
  "revision":{"number":4,"digest":"0123456789ab"},"refused":null,
  "rollout":{"revision":4,"previousRevision":3,"phase":"Progressing","currentWave":2,
    "waveCount":3,"pausedUntil":null,"pausedByPerson":false,
    "startedAt":"2026-12-04T18:00:00Z","finishedAt":null,
    "counts":{"pending":1,"inProgress":1,"ready":1,"failed":1},
    "workspaces":[
      {"name":"acme","wave":1,"state":"ready","fromRevision":3,"reason":"",
       "preMigrationBackup":"acme-20261204T180100Z-a1b2","restore":""},
      {"name":"bravo","wave":2,"state":"failed","fromRevision":3,
       "reason":"migration 0004_orders.sql: SQLSTATE 23505: duplicate key",
       "preMigrationBackup":"bravo-20261204T181000Z-c3d4","restore":""},
      {"name":"charlie","wave":2,"state":"inProgress","fromRevision":3,"reason":"",
       "preMigrationBackup":"","restore":""},
      {"name":"delta","wave":3,"state":"pending","fromRevision":3,"reason":"",
       "preMigrationBackup":"","restore":""}]}})";

struct RolloutServer {
  tmaster::testing::FakeStore store;
  controller::Metrics metrics;
  controller::DesiredState desired;
  controller::ProductRegistry products;
  tmaster::testing::FakeRolloutControl rollouts;
  std::unique_ptr<controller::WorkspaceApi> api;
  std::unique_ptr<controller::HttpServer> server;

  RolloutServer() {
    controller::WorkspaceApiDeps deps;
    deps.store = &store;
    deps.desired = &desired;
    deps.products = &products;
    deps.leading = [] { return true; };
    deps.rollouts = &rollouts;
    api = std::make_unique<controller::WorkspaceApi>(std::move(deps));
    controller::HttpHandlers handlers;
    handlers.workspaces = [this](const controller::WorkspaceCall& call) {
      return controller::ServeWorkspaceCall(*api, call);
    };
    controller::HttpServerOptions options;
    options.listen = "127.0.0.1:0";
    options.admin_token = tmaster::Secret(std::string(kAdminToken));
    options.read_token = tmaster::Secret(std::string(kViewerToken));
    server = std::make_unique<controller::HttpServer>(store, metrics, std::move(handlers), options);
    const auto started = server->Start();
    REQUIRE_MESSAGE(started.ok(), (started.ok() ? "" : started.failure().message));
    rollouts.SetStatus("erp", kProgressing);
  }
  RolloutServer(const RolloutServer&) = delete;
  RolloutServer& operator=(const RolloutServer&) = delete;
  ~RolloutServer() { server->Stop(); }

  [[nodiscard]] std::string Url() const {
    return "http://127.0.0.1:" + std::to_string(server->port());
  }
  // tenantctl with the admin token (or `token`), the words after `rollout`.
  Run Rollout(std::vector<std::string> words, const char* token = kAdminToken) const {
    words.insert(words.begin(), "rollout");
    words.emplace_back("--token");
    words.emplace_back(token);
    return Tenantctl(words, Url());
  }
};

}  // namespace

TEST_CASE("tenantctl: rollout status prints the rollout as a block and its workspaces") {
  RolloutServer s;
  Run run = s.Rollout({"status", "erp"});
  CHECK(run.exit_code == 0);
  CHECK(run.err.empty());
  CHECK(run.out ==
        "Product:   erp\n"
        "Revision:  4 (from 3)   Phase: Progressing   Wave: 2/3   Started: 2026-12-04T18:00:00Z\n"
        "Counts:    pending 1  inProgress 1  ready 1  failed 1\n"
        "WORKSPACE   WAVE   STATE        FROM   BACKUP                        REASON\n"
        "acme        1      ready        3      acme-20261204T180100Z-a1b2\n"
        "bravo       2      failed       3      bravo-20261204T181000Z-c3d4   "
        "migration 0004_orders.sql: SQLSTATE 23505: duplicate key\n"
        "charlie     2      inProgress   3      <none>\n"
        "delta       3      pending      3      <none>\n");
  CHECK(s.rollouts.StatusAsked() == std::vector<std::string>{"erp"});

  // -o json and -o yaml: the answer itself.
  run = s.Rollout({"status", "erp", "-o", "json"});
  CHECK(run.exit_code == 0);
  CHECK(json::parse(run.out) == json::parse(kProgressing));
  run = s.Rollout({"status", "-oyaml", "erp"});
  CHECK(run.exit_code == 0);
  CHECK(run.out.rfind("product: erp\n", 0) == 0);
  CHECK(run.out.find("phase: Progressing\n") != std::string::npos);

  // Paused by a person, after an undo (the restores named), ended.
  s.rollouts.SetStatus("erp", R"({"product":"erp","revision":{"number":4,"digest":"0123456789ab"},
    "refused":null,"rollout":{"revision":4,"previousRevision":3,"phase":"Undone",
    "currentWave":1,"waveCount":2,"pausedUntil":"2026-12-04T18:10:00Z","pausedByPerson":true,
    "startedAt":"2026-12-04T18:00:00Z","finishedAt":"2026-12-04T18:20:00Z",
    "counts":{"pending":0,"inProgress":0,"ready":1,"failed":0},
    "workspaces":[{"name":"acme","wave":1,"state":"ready","fromRevision":3,"reason":"",
      "preMigrationBackup":"acme-1","restore":"r-acme-20261204T181500Z-ab12"}]}})");
  run = s.Rollout({"status", "erp"});
  CHECK(run.exit_code == 0);
  CHECK(run.out ==
        "Product:   erp\n"
        "Revision:  4 (from 3)   Phase: Undone   Wave: 1/2   Started: 2026-12-04T18:00:00Z   "
        "Finished: 2026-12-04T18:20:00Z\n"
        "Paused:    by a person (`rollout resume` goes on; the pause between waves ends at "
        "2026-12-04T18:10:00Z)\n"
        "Counts:    pending 0  inProgress 0  ready 1  failed 0\n"
        "WORKSPACE   WAVE   STATE   FROM   BACKUP   RESTORE                        REASON\n"
        "acme        1      ready   3      acme-1   r-acme-20261204T181500Z-ab12\n");
}

TEST_CASE("tenantctl: rollout status without a rollout names the revision, and a refusal") {
  RolloutServer s;
  s.rollouts.SetStatus("erp", R"J({"product":"erp",
    "revision":{"number":3,"digest":"0123456789ab"},
    "refused":{"reason":"RolloutRefused","revision":4,
               "message":"migration 0002_orders.sql was edited (it must stay as applied)"},
    "rollout":null})J");
  Run run = s.Rollout({"status", "erp"});
  CHECK(run.exit_code == 0);
  CHECK(run.out ==
        "Product:   erp\n"
        "Revision:  3 (digest 0123456789ab)\n"
        "Rollout:   none\n"
        "Refused:   revision 4: RolloutRefused: migration 0002_orders.sql was edited (it must "
        "stay as applied)\n");

  s.rollouts.SetStatus("erp", R"({"product":"erp","revision":null,"refused":null,"rollout":null})");
  run = s.Rollout({"status", "erp"});
  CHECK(run.exit_code == 0);
  CHECK(run.out ==
        "Product:   erp\n"
        "Revision:  unknown (not recorded yet, or its files cannot be read)\n"
        "Rollout:   none\n");

  // A product no source declares.
  run = s.Rollout({"status", "ghost"});
  CHECK(run.exit_code == 1);
  CHECK(run.out.empty());
  CHECK(run.err == "tenantctl: product \"ghost\" not found\n");
}

TEST_CASE("tenantctl: each rollout verb POSTs its path as the admin and prints the new status") {
  RolloutServer s;
  const std::vector<std::pair<std::string, std::string>> verbs = {{"pause", "paused"},
                                                                  {"resume", "resumed"},
                                                                  {"promote", "promoted"},
                                                                  {"abort", "aborted"},
                                                                  {"undo", "undone"}};
  for (const auto& [verb, done] : verbs) {
    CAPTURE(verb);
    const Run run = s.Rollout({verb, "erp"});
    CHECK(run.exit_code == 0);
    CHECK(run.err.empty());
    CHECK(run.out.rfind("product/erp: rollout " + done + "\n\nProduct:   erp\nRevision:  4", 0) ==
          0);
    const auto calls = s.rollouts.Commands();
    REQUIRE_FALSE(calls.empty());
    CHECK(calls.back().product == "erp");
    CHECK(calls.back().verb == verb);
    CHECK(calls.back().who == "env:admin");
  }
  CHECK(s.rollouts.Commands().size() == verbs.size());
  // -o json: only the status, for a script.
  const Run json_run = s.Rollout({"promote", "erp", "-o", "json"});
  CHECK(json_run.exit_code == 0);
  CHECK(json::parse(json_run.out) == json::parse(kProgressing));
  // None of them asked for the status separately: the verb's answer is printed.
  CHECK(s.rollouts.StatusAsked().empty());
}

TEST_CASE("tenantctl: a refused rollout verb says why, with exit 1; usage errors exit 2") {
  RolloutServer s;
  s.rollouts.Fail(tmaster::Failure::Stalled(
      "RolloutCommandRefused",
      "the rollout of erp is Completed: nothing to pause (a new revision starts the next one)"));
  Run run = s.Rollout({"pause", "erp"});
  CHECK(run.exit_code == 1);
  CHECK(run.out.empty());
  CHECK(run.err ==
        "tenantctl: rollout pause of product \"erp\" refused (409): the rollout of erp is "
        "Completed: nothing to pause (a new revision starts the next one)\n");

  s.rollouts.Fail(std::nullopt);
  run = s.Rollout({"abort", "ghost"});
  CHECK(run.exit_code == 1);
  CHECK(run.err ==
        "tenantctl: rollout abort of product \"ghost\" refused (404): product "
        "\"ghost\" never had a rollout\n");

  s.rollouts.Fail(tmaster::Failure::Transient("Unavailable", "store unavailable: timeout"));
  run = s.Rollout({"resume", "erp"});
  CHECK(run.exit_code == 1);
  CHECK(run.err == "tenantctl: the server failed (503): store unavailable: timeout\n");
  run = s.Rollout({"status", "erp"});
  CHECK(run.exit_code == 1);
  CHECK(run.err == "tenantctl: the server failed (503): store unavailable: timeout\n");
  s.rollouts.Fail(std::nullopt);

  // A viewer reads the status, and may not steer: 403, the driver never asked.
  const std::size_t before = s.rollouts.Commands().size();
  run = s.Rollout({"status", "erp"}, kViewerToken);
  CHECK(run.exit_code == 0);
  run = s.Rollout({"undo", "erp"}, kViewerToken);
  CHECK(run.exit_code == 1);
  CHECK(run.err ==
        "tenantctl: the token may not do this (403): env:read is a viewer: POST "
        "/api/v1/products/erp/rollout/undo needs an admin token\n");
  CHECK(s.rollouts.Commands().size() == before);
  run = s.Rollout({"status", "erp"}, "not-a-token");
  CHECK(run.exit_code == 1);
  CHECK(run.err == "tenantctl: the server refused the token (401)\n");

  // Usage: exit 2 with the usage, nothing sent.
  for (const std::vector<std::string>& words :
       std::vector<std::vector<std::string>>{{},
                                             {"rollback", "erp"},
                                             {"pause"},
                                             {"status", "erp", "-o", "wide"},
                                             {"status", "erp", "--wait"}}) {
    run = s.Rollout(words);
    CHECK(run.exit_code == 2);
    CHECK(run.err.find("usage: tenantctl") != std::string::npos);
  }
  CHECK(s.rollouts.Commands().size() == before);

  // --help names the verbs.
  run = Tenantctl({"--help"}, s.Url());
  CHECK(run.out.find("rollout status PRODUCT [-o table|json|yaml]") != std::string::npos);
  CHECK(run.out.find("rollout pause|resume|promote|abort|undo PRODUCT") != std::string::npos);
}

TEST_CASE("tenantctl: get products shows each product's revision and its rollout") {
  // Through the operator's own products route: erp at revision 4 with a rollout halted on its
  // second wave (the driver's short form), shop whose revision the store has not numbered yet.
  RolloutServer s;
  auto erp = std::make_shared<controller::ProductEntry>();
  erp->product.name = "erp";
  erp->product.default_version = "2.4";
  erp->product.modes = {tmaster::manifests::Mode::kShared};
  erp->revision_digest = "0123456789abcdef0123456789abcdef";
  erp->revision = 4;
  auto shop = std::make_shared<controller::ProductEntry>();
  shop->product.name = "shop";
  shop->product.default_version = "1.0";
  shop->product.modes = {tmaster::manifests::Mode::kDedicated};
  shop->revision_digest = "fedcba9876543210fedcba9876543210";
  s.products.Replace("fleet", {{"erp", std::move(erp)}, {"shop", std::move(shop)}});
  s.rollouts.SetSummary("erp", R"({"phase":"Halted","revision":4,"currentWave":2,"waveCount":3,
    "counts":{"pending":3,"inProgress":0,"ready":4,"failed":1}})");

  Run run = Tenantctl({"get", "products", "--token", kViewerToken}, s.Url());
  CHECK(run.exit_code == 0);
  CHECK(run.err.empty());
  CHECK(run.out ==
        "NAME   SOURCE   VERSION   REVISION   MODES       WORKSPACES   ROLLOUT\n"
        "erp    fleet    2.4       4          shared      0            Halted 2/3\n"
        "shop   fleet    1.0       <none>     dedicated   0            <none>\n");
  // -o json: the answer's items, rolloutStatus as the driver said.
  run = Tenantctl({"get", "products", "-o", "json", "--token", kViewerToken}, s.Url());
  CHECK(run.exit_code == 0);
  const json::array items = json::parse(run.out).at("items").as_array();
  REQUIRE(items.size() == 2);
  CHECK(items[0].at("rolloutStatus").at("phase") == "Halted");
  CHECK(items[0].at("revision").at("number") == 4);
  CHECK(items[1].at("rolloutStatus").is_null());
}

TEST_CASE("tenantctl: bash completion offers the rollout actions, then the products") {
  TempDir dir;
  // A tenantctl that answers `get products -o name` as the server would.
  const std::string fake = (dir.path() / "fake-tenantctl").string();
  {
    std::ofstream script(fake);
    script << "#!/bin/sh\n[ \"$1 $2 $3 $4\" = \"get products -o name\" ] && "
              "printf 'product/crm\\nproduct/erp\\n'\n";
  }
  REQUIRE(::chmod(fake.c_str(), 0700) == 0);
  const std::string completion = (dir.path() / "tenantctl.bash").string();
  {
    std::ostringstream out;
    std::ostringstream err;
    TempDir config_home;
    tmaster::cli::World world = TestWorld(out, err, config_home, "http://127.0.0.1:1", "");
    REQUIRE(tmaster::cli::RunTenantctl({"completion", "bash"}, world) == 0);
    std::ofstream(completion) << out.str();
  }
  const auto complete = [&](const std::string& words) {
    const tmaster::testing::ProcessResult result =
        tmaster::testing::RunProcess({"/bin/bash", "-c",
                                      "source \"$0\"; COMP_WORDS=(" + words +
                                          "); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); "
                                          "_tenantctl; printf '%s\\n' \"${COMPREPLY[@]}\"",
                                      completion});
    CHECK(result.exit_code == 0);
    return result.out;
  };
  CHECK(complete("tenantctl ''").find("rollout\n") != std::string::npos);
  CHECK(complete("tenantctl rollout ''") == "status\npause\nresume\npromote\nabort\nundo\n");
  CHECK(complete("tenantctl rollout pr") == "promote\n");
  CHECK(complete("'" + fake + "' rollout status ''") == "crm\nerp\n");
  CHECK(complete("'" + fake + "' rollout status e") == "erp\n");
  CHECK(complete("tenantctl rollout status erp -").find("--output\n") != std::string::npos);
}

// ---- tenantctl move (docs/api.md#moves) ----
//
// Against the operator's own HTTP server and workspace API, with a fake move service that writes
// the moves it records into the fake store; the test moves a move on between polls (each sleep
// of tenantctl's --wait), as the daemon's runner would.

namespace {

constexpr const char* kMoveAdmin = "move-itest-admin-token-0123456789ab";
constexpr const char* kMoveViewer = "move-itest-viewer-token-9876543210ab";

struct MoveServer {
  tmaster::testing::FakeStore store;
  controller::Metrics metrics;
  controller::DesiredState desired;
  tmaster::testing::FakeMoveService moves{&store, 1796299200};
  std::unique_ptr<controller::WorkspaceApi> api;
  std::unique_ptr<controller::HttpServer> server;

  MoveServer() {
    controller::WorkspaceApiDeps deps;
    deps.store = &store;
    deps.desired = &desired;
    deps.leading = [] { return true; };
    deps.moves = &moves;
    api = std::make_unique<controller::WorkspaceApi>(std::move(deps));
    controller::HttpHandlers handlers;
    handlers.workspaces = [this](const controller::WorkspaceCall& call) {
      return controller::ServeWorkspaceCall(*api, call);
    };
    controller::HttpServerOptions options;
    options.listen = "127.0.0.1:0";
    options.admin_token = tmaster::Secret(std::string(kMoveAdmin));
    options.read_token = tmaster::Secret(std::string(kMoveViewer));
    server = std::make_unique<controller::HttpServer>(store, metrics, std::move(handlers), options);
    const auto started = server->Start();
    REQUIRE_MESSAGE(started.ok(), (started.ok() ? "" : started.failure().message));
  }
  MoveServer(const MoveServer&) = delete;
  MoveServer& operator=(const MoveServer&) = delete;
  ~MoveServer() { server->Stop(); }

  [[nodiscard]] std::string Url() const {
    return "http://127.0.0.1:" + std::to_string(server->port());
  }
  // tenantctl with `token`; `on_sleep` runs at each pause of a --wait.
  Run Ctl(std::vector<std::string> words, const char* token = kMoveAdmin,
          std::function<void()> on_sleep = {}) const {
    words.emplace_back("--token");
    words.emplace_back(token);
    std::ostringstream out;
    std::ostringstream err;
    TempDir config_home;
    tmaster::cli::World world = TestWorld(out, err, config_home, Url(), "", std::move(on_sleep));
    Run run;
    run.exit_code = tmaster::cli::RunTenantctl(words, world);
    run.out = out.str();
    run.err = err.str();
    return run;
  }
  // Rewrites the stored move of `workspace` as `change` says (the runner's next step).
  void Step(const std::string& workspace,
            const std::function<void(controller::StoredMove&)>& change) {
    auto found = store.FindMove(workspace);
    REQUIRE(found.ok());
    REQUIRE(found->has_value());
    controller::StoredMove move = **found;
    change(move);
    REQUIRE(store.PutMove(move, 1796299200).ok());
  }
  // At each sleep, the next of `steps` (state, step, message); the last one stays.
  std::function<void()> Script(
      const std::string& workspace,
      std::vector<std::tuple<std::string, std::string, std::string>> steps) {
    auto next = std::make_shared<std::size_t>(0);
    return [this, workspace, steps = std::move(steps), next] {
      if (*next >= steps.size()) return;
      const auto& [state, step, message] = steps[(*next)++];
      Step(workspace, [&](controller::StoredMove& move) {
        move.state = state;
        move.step = step;
        move.message = message;
        if (state == "succeeded") {
          move.switched = true;
          move.downtime_ms = 4250;
          move.finished_unix = 1796299260;
        }
        if (state == "failed") {
          move.reason = "MoveTargetUnreachable";
          move.finished_unix = 1796299260;
        }
      });
    };
  }
};

controller::StoredMove StoredSucceeded(const std::string& workspace) {
  controller::StoredMove move;
  move.workspace = workspace;
  move.id = "mv-" + workspace + "-1796295600-9f3e";
  move.from_cluster = "c1";
  move.to_cluster = "c2";
  move.state = "succeeded";
  move.step = "done";
  move.message = "on c2; the source is kept NOLOGIN until pruned";
  move.who = "env:admin";
  move.switched = true;
  move.requested_unix = 1796295600;
  move.finished_unix = 1796295660;
  move.downtime_ms = 4250;
  return move;
}

}  // namespace

TEST_CASE("tenantctl: move --to POSTs the target as the admin and prints the recorded move") {
  MoveServer s;
  Run run = s.Ctl({"move", "acme", "--to", "c2"});
  CHECK(run.exit_code == 0);
  CHECK(run.err.empty());
  CHECK(run.out ==
        "move mv-acme-1796299200-a1b2 of workspace acme from c1 to c2 requested (pending)\n");
  const auto calls = s.moves.Requests();
  REQUIRE(calls.size() == 1);
  CHECK(calls[0].workspace == "acme");
  CHECK(calls[0].to == "c2");
  CHECK(calls[0].who == "env:admin");

  // -o json: the move itself, as the server answered it.
  run = s.Ctl({"move", "beta", "--to", "c3", "-o", "json"});
  CHECK(run.exit_code == 0);
  const json::value move = json::parse(run.out);
  CHECK(move.at("id") == "mv-beta-1796299200-a1b2");
  CHECK(move.at("to") == "c3");
  CHECK(move.at("state") == "pending");

  // Refused by the service: the reason's status and the service's words, exit 1.
  s.moves.Fail(tmaster::Failure::Stalled(
      "MovePinned", "workspace \"acme\" names its cluster (spec.database.cluster: c1)"));
  run = s.Ctl({"move", "acme", "--to", "c2"});
  CHECK(run.exit_code == 1);
  CHECK(run.out.empty());
  CHECK(run.err ==
        "tenantctl: move of workspace \"acme\" to \"c2\" refused (409): workspace \"acme\" names "
        "its cluster (spec.database.cluster: c1)\n");
  s.moves.Fail(tmaster::Failure::Stalled("InvalidTarget", "cluster \"c9\" is not configured"));
  run = s.Ctl({"move", "acme", "--to", "c9"});
  CHECK(run.exit_code == 1);
  CHECK(run.err == "tenantctl: move of workspace \"acme\" to \"c9\" refused (422): cluster "
                   "\"c9\" is not configured\n");
  s.moves.Fail(std::nullopt);

  // A viewer may not move: 403, the service never asked. A bad name is the server's 400.
  const std::size_t before = s.moves.Requests().size();
  run = s.Ctl({"move", "acme", "--to", "c2"}, kMoveViewer);
  CHECK(run.exit_code == 1);
  CHECK(run.err.find("tenantctl: the token may not do this (403)") == 0);
  run = s.Ctl({"move", "acme", "--to", "Bad_Cluster"});
  CHECK(run.exit_code == 1);
  CHECK(run.err.find("refused (400): to: \"Bad_Cluster\" is not a cluster name") !=
        std::string::npos);
  CHECK(s.moves.Requests().size() == before);

  // Usage: exit 2, nothing sent.
  for (const std::vector<std::string>& words : std::vector<std::vector<std::string>>{
           {"move", "acme"}, {"move", "--to", "c2"}, {"move", "acme", "--to", "c2", "--prune"}}) {
    CAPTURE(words.size());
    run = s.Ctl(words);
    CHECK(run.exit_code == 2);
    CHECK(run.err.find("usage: tenantctl") != std::string::npos);
  }
  CHECK(s.moves.Requests().size() == before);
  run = Tenantctl({"--help"}, s.Url());
  CHECK(run.out.find("move NAME --to CLUSTER [--wait] [--timeout 30m]") != std::string::npos);
  CHECK(run.out.find("move --prune NAME") != std::string::npos);
}

TEST_CASE("tenantctl: move --wait prints each new step; exit 0 succeeded, 1 failed, 3 timeout") {
  MoveServer s;
  SUBCASE("succeeded") {
    const Run run = s.Ctl({"move", "acme", "--to", "c2", "--wait"}, kMoveAdmin,
                          s.Script("acme", {{"running", "suspend", "workspace suspended"},
                                            {"running", "dump", "pg_dump of tenant_acme"},
                                            {"running", "dump", "pg_dump of tenant_acme"},
                                            {"running", "verify", "12 tables compared"},
                                            {"succeeded", "done", "on c2"}}));
    CHECK(run.exit_code == 0);
    CHECK(run.err.empty());
    CHECK(run.out ==
          "move mv-acme-1796299200-a1b2 of workspace acme from c1 to c2 requested (pending)\n"
          "move mv-acme-1796299200-a1b2: prepare: move to c2 recorded\n"
          "move mv-acme-1796299200-a1b2: suspend: workspace suspended\n"
          "move mv-acme-1796299200-a1b2: dump: pg_dump of tenant_acme\n"
          "move mv-acme-1796299200-a1b2: verify: 12 tables compared\n"
          "move mv-acme-1796299200-a1b2: done: on c2\n"
          "move mv-acme-1796299200-a1b2 succeeded: acme is on c2 (downtime 4.3s); the source "
          "on c1 is kept until `tenantctl move --prune acme`\n");
  }
  SUBCASE("failed: the reason and message on stderr, exit 1") {
    const Run run = s.Ctl({"move", "acme", "--to", "c2", "--wait"}, kMoveAdmin,
                          s.Script("acme", {{"running", "dump", "pg_dump of tenant_acme"},
                                            {"failed", "rollback", "c2: connection refused"}}));
    CHECK(run.exit_code == 1);
    CHECK(run.out.find("move mv-acme-1796299200-a1b2: rollback: c2: connection refused\n") !=
          std::string::npos);
    CHECK(run.err ==
          "tenantctl: move mv-acme-1796299200-a1b2 failed (MoveTargetUnreachable): c2: "
          "connection refused; acme stays on c1\n");
  }
  SUBCASE("not in time: exit 3 naming the timeout; the move goes on") {
    const Run run = s.Ctl({"move", "acme", "--to", "c2", "--wait", "--timeout", "3s"},
                          kMoveAdmin,
                          s.Script("acme", {{"running", "dump", "pg_dump of tenant_acme"}}));
    CHECK(run.exit_code == 3);
    CHECK(run.err ==
          "tenantctl: move mv-acme-1796299200-a1b2 of workspace \"acme\": not finished within "
          "3s (--timeout; last step: dump); it goes on in the operator: `tenantctl describe "
          "move acme`\n");
  }
}

TEST_CASE("tenantctl: move --prune, get moves, get move and describe move") {
  MoveServer s;
  REQUIRE(s.store.PutMove(StoredSucceeded("acme"), 1796295660).ok());
  controller::StoredMove beta = StoredSucceeded("beta");
  beta.to_cluster = "c3";
  beta.state = "running";
  beta.step = "dump";
  beta.switched = false;
  beta.finished_unix = 0;
  beta.downtime_ms = 0;
  beta.requested_unix = 1796299110;
  REQUIRE(s.store.PutMove(beta, 1796299110).ok());

  // get moves: every stored move, as a viewer.
  Run run = s.Ctl({"get", "moves"}, kMoveViewer);
  CHECK(run.exit_code == 0);
  CHECK(run.err.empty());
  CHECK(run.out ==
        "WORKSPACE   FROM   TO   STATE       STEP   AGE   DOWNTIME\n"
        "acme        c1     c2   succeeded   done   60m   4.3s\n"
        "beta        c1     c3   running     dump   90s   <none>\n");
  run = s.Ctl({"get", "moves", "-o", "json"}, kMoveViewer);
  CHECK(run.exit_code == 0);
  CHECK(json::parse(run.out).at("items").as_array().size() == 2);
  run = s.Ctl({"get", "moves", "-o", "yaml"}, kMoveViewer);
  CHECK(run.exit_code == 0);
  CHECK(run.out.find("workspace: acme") != std::string::npos);
  run = s.Ctl({"get", "move", "beta"}, kMoveViewer);
  CHECK(run.exit_code == 0);
  CHECK(run.out == "WORKSPACE   FROM   TO   STATE     STEP   AGE   DOWNTIME\n"
                   "beta        c1     c3   running   dump   90s   <none>\n");
  run = s.Ctl({"get", "move", "ghost"}, kMoveViewer);
  CHECK(run.exit_code == 1);
  CHECK(run.err == "tenantctl: no move of workspace \"ghost\" is recorded\n");
  run = s.Ctl({"describe", "move", "acme"}, kMoveViewer);
  CHECK(run.exit_code == 0);
  CHECK(run.out.rfind("Workspace: acme\nMove:      mv-acme-1796295600-9f3e\n", 0) == 0);
  CHECK(run.out.find("Next:      the source on c1 is kept (NOLOGIN)") != std::string::npos);

  // move --prune: the service's pruned move, printed; the stored move is pruned now.
  run = s.Ctl({"move", "--prune", "acme"});
  CHECK(run.exit_code == 0);
  CHECK(run.err.empty());
  CHECK(run.out == "move mv-acme-1796295600-9f3e of workspace acme pruned: source database and "
                   "role dropped on c1\n");
  const auto prunes = s.moves.Prunes();
  REQUIRE(prunes.size() == 1);
  CHECK(prunes[0].workspace == "acme");
  CHECK(prunes[0].who == "env:admin");
  CHECK(s.store.FindMove("acme")->value().state == "pruned");
  s.moves.Fail(tmaster::Failure::Stalled("MoveConflict", "the move of \"beta\" did not succeed"));
  run = s.Ctl({"move", "--prune", "beta"});
  CHECK(run.exit_code == 1);
  CHECK(run.err == "tenantctl: move --prune of workspace \"beta\" refused (409): the move of "
                   "\"beta\" did not succeed\n");
}

TEST_CASE("tenantctl: bash completion offers move, its flags, the workspaces and the clusters") {
  TempDir dir;
  const std::string fake = (dir.path() / "fake-tenantctl").string();
  {
    std::ofstream script(fake);
    script << "#!/bin/sh\n"
              "[ \"$1 $2 $3 $4\" = \"get workspaces -o name\" ] && "
              "printf 'workspace/acme\\nworkspace/beta\\n'\n"
              "[ \"$1 $2 $3 $4\" = \"get clusters -o name\" ] && "
              "printf 'cluster/c1\\ncluster/c2\\n'\n"
              "exit 0\n";
  }
  REQUIRE(::chmod(fake.c_str(), 0700) == 0);
  const std::string completion = (dir.path() / "tenantctl.bash").string();
  {
    std::ostringstream out;
    std::ostringstream err;
    TempDir config_home;
    tmaster::cli::World world = TestWorld(out, err, config_home, "http://127.0.0.1:1", "");
    REQUIRE(tmaster::cli::RunTenantctl({"completion", "bash"}, world) == 0);
    std::ofstream(completion) << out.str();
  }
  const auto complete = [&](const std::string& words) {
    const tmaster::testing::ProcessResult result =
        tmaster::testing::RunProcess({"/bin/bash", "-c",
                                      "source \"$0\"; COMP_WORDS=(" + words +
                                          "); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); "
                                          "_tenantctl; printf '%s\\n' \"${COMPREPLY[@]}\"",
                                      completion});
    CHECK(result.exit_code == 0);
    return result.out;
  };
  CHECK(complete("tenantctl mo") == "move\n");
  CHECK(complete("'" + fake + "' move ''") == "acme\nbeta\n");
  CHECK(complete("'" + fake + "' move acme --to ''") == "c1\nc2\n");
  const std::string flags = complete("tenantctl move acme --");
  for (const char* flag : {"--to\n", "--prune\n", "--wait\n", "--timeout\n"}) {
    CAPTURE(flag);
    CHECK(flags.find(flag) != std::string::npos);
  }
  CHECK(complete("tenantctl get mo") == "moves\nmove\n");
  CHECK(complete("'" + fake + "' get move ''") == "acme\nbeta\n");
  CHECK(complete("tenantctl describe ''") == "workspace\nmove\n");
}
