// list_http_bench: `GET /api/v1/workspaces` through HTTP (issue 13): the real HttpServer
// (controller/api/http_server.hpp) on 127.0.0.1 with an admin token, a FakeStore
// (tests/support/fake_store.hpp) seeded with the fleet, and HttpHandlers::workspaces answering
// kList/kGet from a FleetView loaded with the same rows (as the daemon's ServeWorkspaceCall and
// WorkspaceApi::List/Get do, controller/daemon/workspace_api.cpp). The baseline in the same run is
// the same server with HttpHandlers::workspaces unset: the old route, which reads every row and
// status from the store and renders them all (WorkspaceListJson). Clients are cpp-httplib
// keep-alive clients sending the Bearer token. Prints:
//   (a) the first page `?limit=100` of 10,000: p50/p95/max latency and body bytes, against the
//       old route's whole list (a few requests: each renders 10,000 objects);
//   (b) the full list of 1,000 with 4 client threads for 5 s: requests/s, p50/p99, against the
//       old route the same way.
// The in-process figures (no HTTP) are list_bench's. Built on request only:
// `cmake --build BUILD --target list_http_bench && BUILD/list_http_bench`.
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "controller/api/http_server.hpp"
#include "controller/api/status_json.hpp"
#include "controller/daemon/fleet_view.hpp"
#include "tests/support/fake_store.hpp"

namespace {

using namespace tmaster;
using namespace tmaster::controller;
using Clock = std::chrono::steady_clock;

constexpr const char* kToken = "list-http-bench-admin-token-0123456789";

// The same objects as list_bench (~1 KB each: labels, two conditions, one run).
std::string SpecJson(int i, const std::string& name) {
  return std::string(R"({"apiVersion":"tenantmaster.io/v1alpha1","kind":"Workspace",)") +
         R"("metadata":{"name":")" + name + R"(","labels":{"tier":")" +
         (i % 4 == 0 ? "gold" : "silver") +
         R"(","team":"shop"}},"spec":{"product":"shop","mode":"shared","subdomain":")" + name +
         R"(","suspend":false,"database":{"cluster":"default","name":"tenant_)" +
         std::to_string(i) + R"(","owner":"user_)" + std::to_string(i) +
         R"(","connectionLimit":-1,"extensions":[],"reclaimPolicy":"Retain",)"
         R"("passwordRotationDays":0,"adopt":false},"backup":{"keep":7}}})";
}

WorkspaceStatus StatusOf(int i, const std::string& name, std::int64_t generation) {
  WorkspaceStatus status;
  status.name = name;
  status.observed_generation = generation;
  status.phase = i % 50 == 0 ? "Degraded" : "Ready";
  status.conditions_json =
      R"([{"type":"Ready","status":"True","reason":"UpToDate","message":"database and role up to date","lastTransitionTime":"2026-12-01T10:00:00Z"},)"
      R"({"type":"DatabaseReady","status":"True","reason":"UpToDate","message":"ok","lastTransitionTime":"2026-12-01T10:00:00Z"}])";
  status.revision = "3f2a9c1d5e7b8a0c4d6e8f1a2b3c4d5e6f7a8b9c";
  status.last_runs_json =
      R"([{"start":"2026-12-03T10:00:00Z","durationSeconds":0.012,"result":"Succeeded","reason":"UpToDate"}])";
  return status;
}

void Seed(testing::FakeStore& store, int count) {
  for (int i = 0; i < count; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "tenant-%05d", i);
    Outcome<StoredWorkspace> row = store.UpsertSpec(
        name, "fleet", "3f2a9c1d5e7b8a0c4d6e8f1a2b3c4d5e6f7a8b9c", SpecJson(i, name));
    if (!row || !store.PutStatus(StatusOf(i, name, row->generation))) {
      std::fprintf(stderr, "seeding the fake store failed at %s\n", name);
      std::exit(1);
    }
  }
}

// What the daemon's ServeWorkspaceCall does for the two read operations, with the view directly
// (WorkspaceApi needs the whole daemon; its List and Get only call the view).
WorkspaceAnswer Answer(const FleetView& view, const WorkspaceCall& call) {
  WorkspaceAnswer out;
  if (call.op == WorkspaceCall::Op::kGet) {
    std::optional<std::string> object = view.Get(call.name);
    out.status = object ? 200 : 404;
    out.body = object ? std::move(*object) : std::string(R"({"error":"NotFound","message":"x"})");
    return out;
  }
  if (call.op != WorkspaceCall::Op::kList) {
    out.status = 503;
    out.body = R"({"error":"Unavailable","message":"not served by the bench"})";
    return out;
  }
  FleetQuery query;
  query.limit = call.limit;
  query.continue_token = call.continue_token;
  if (!call.phase.empty()) query.phases = {call.phase};
  Outcome<LabelSelector> selector = ParseLabelSelector(call.label_selector);
  if (!selector) {
    out.status = 400;
    out.body = R"({"error":"BadRequest","message":"bad selector"})";
    return out;
  }
  query.selector = std::move(selector).value();
  Outcome<FleetPage> page = view.List(query);
  if (!page) {
    out.status = 400;
    out.body = R"({"error":"BadRequest","message":"bad continue"})";
    return out;
  }
  out.body = std::move(page->json);
  return out;
}

// One server over `store`: from the view when `view` is set, else the old store-backed route.
class Served {
 public:
  Served(testing::FakeStore& store, const FleetView* view) {
    HttpHandlers handlers;
    if (view != nullptr) {
      handlers.workspaces = [view](const WorkspaceCall& call) { return Answer(*view, call); };
    }
    HttpServerOptions options;
    options.listen = "127.0.0.1:0";
    options.admin_token = Secret(kToken);
    server_.emplace(store, metrics_, std::move(handlers), options);
    if (!server_->Start()) {
      std::fprintf(stderr, "the HTTP server did not start\n");
      std::exit(1);
    }
  }
  [[nodiscard]] int port() const { return server_->port(); }

 private:
  Metrics metrics_;
  std::optional<HttpServer> server_;
};

std::unique_ptr<httplib::Client> ClientOf(int port) {
  auto client = std::make_unique<httplib::Client>("127.0.0.1", port);
  client->set_keep_alive(true);
  client->set_bearer_token_auth(kToken);
  client->set_read_timeout(std::chrono::seconds(60));
  return client;
}

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[static_cast<std::size_t>(p * static_cast<double>(values.size() - 1))];
}

// One GET; exits on anything but 200 (a bench of errors measures nothing).
std::size_t Get(httplib::Client& client, const char* path) {
  const httplib::Result res = client.Get(path);
  if (!res || res->status != 200) {
    std::fprintf(stderr, "GET %s: %s\n", path,
                 res ? std::to_string(res->status).c_str() : httplib::to_string(res.error()).c_str());
    std::exit(1);
  }
  return res->body.size();
}

struct Sequential {
  std::vector<double> ms;
  std::size_t bytes = 0;
};

Sequential RunSequential(int port, const char* path, int warmup, int count) {
  const auto client = ClientOf(port);
  Sequential out;
  for (int i = 0; i < warmup; ++i) Get(*client, path);
  for (int i = 0; i < count; ++i) {
    const auto t0 = Clock::now();
    out.bytes = Get(*client, path);
    out.ms.push_back(Ms(Clock::now() - t0));
  }
  return out;
}

struct Load {
  double per_second = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  std::size_t requests = 0;
  std::size_t bytes = 0;
};

Load Hammer(int port, const char* path, int threads, std::chrono::seconds length) {
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> bytes{0};
  std::vector<std::vector<double>> latencies(static_cast<std::size_t>(threads));
  std::vector<std::thread> pool;
  const auto start = Clock::now();
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      const auto client = ClientOf(port);
      while (!stop.load()) {
        const auto t0 = Clock::now();
        bytes = Get(*client, path);
        latencies[static_cast<std::size_t>(t)].push_back(Ms(Clock::now() - t0));
      }
    });
  }
  std::this_thread::sleep_for(length);
  stop = true;
  for (auto& thread : pool) thread.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  return {static_cast<double>(all.size()) / seconds, Percentile(all, 0.5), Percentile(all, 0.99),
          all.size(), bytes.load()};
}

void LoadView(testing::FakeStore& store, FleetView& view) {
  Outcome<std::vector<StoredWorkspace>> rows = store.ListWorkspaces(std::nullopt);
  Outcome<std::vector<WorkspaceStatus>> statuses = store.ListStatuses();
  if (!rows || !statuses) {
    std::fprintf(stderr, "reading the fake store failed\n");
    std::exit(1);
  }
  view.Reset(*rows, *statuses);
}

}  // namespace

int main() {
  const int page_runs = 200;
  const int base_runs = std::getenv("TM_LIST_BASE_RUNS") != nullptr
                            ? std::atoi(std::getenv("TM_LIST_BASE_RUNS"))
                            : 10;
  const auto length = std::chrono::seconds(5);

  // (a) The first page of 100 out of 10,000.
  testing::FakeStore big;
  Seed(big, 10'000);
  FleetView big_view;
  LoadView(big, big_view);
  Sequential page;
  Sequential whole;
  {
    const Served served(big, &big_view);
    page = RunSequential(served.port(), "/api/v1/workspaces?limit=100", 10, page_runs);
  }
  {
    const Served served(big, nullptr);  // the old route has no limit: it answers all 10,000
    whole = RunSequential(served.port(), "/api/v1/workspaces?limit=100", 1, base_runs);
  }

  // (b) The full list of 1,000 with 4 clients.
  testing::FakeStore small;
  Seed(small, 1'000);
  FleetView small_view;
  LoadView(small, small_view);
  Load fast;
  Load slow;
  {
    const Served served(small, &small_view);
    Get(*ClientOf(served.port()), "/api/v1/workspaces");
    fast = Hammer(served.port(), "/api/v1/workspaces", 4, length);
  }
  {
    const Served served(small, nullptr);
    Get(*ClientOf(served.port()), "/api/v1/workspaces");
    slow = Hammer(served.port(), "/api/v1/workspaces", 4, length);
  }

  const auto hw = std::thread::hardware_concurrency();
  std::printf("GET /api/v1/workspaces over HTTP (keep-alive, Bearer token), %u cores\n\n", hw);
  std::printf("(a) first page ?limit=100 of 10,000 (from memory: %d requests; old route: %d)\n",
              page_runs, base_runs);
  std::printf("%-28s %12s %12s %12s %14s\n", "", "p50 ms", "p95 ms", "max ms", "body bytes");
  std::printf("%-28s %12.2f %12.2f %12.2f %14zu\n", "from memory (FleetView)",
              Percentile(page.ms, 0.5), Percentile(page.ms, 0.95), Percentile(page.ms, 1.0),
              page.bytes);
  std::printf("%-28s %12.2f %12.2f %12.2f %14zu\n", "old route (store, all)",
              Percentile(whole.ms, 0.5), Percentile(whole.ms, 0.95), Percentile(whole.ms, 1.0),
              whole.bytes);
  std::printf("%-28s %11.0fx %11.0fx %11.0fx %13.0fx\n", "old / memory",
              Percentile(whole.ms, 0.5) / Percentile(page.ms, 0.5),
              Percentile(whole.ms, 0.95) / Percentile(page.ms, 0.95),
              Percentile(whole.ms, 1.0) / Percentile(page.ms, 1.0),
              static_cast<double>(whole.bytes) / static_cast<double>(page.bytes));
  std::printf("target: p95 < 300 ms and body < 100 KB (102,400 bytes): %s\n\n",
              Percentile(page.ms, 0.95) < 300 && page.bytes < 100 * 1024 ? "met" : "MISSED");

  std::printf("(b) full list of 1,000, 4 client threads, %lld s each\n",
              static_cast<long long>(length.count()));
  std::printf("%-28s %12s %12s %12s %10s %14s\n", "", "requests/s", "p50 ms", "p99 ms",
              "requests", "body bytes");
  std::printf("%-28s %12.1f %12.2f %12.2f %10zu %14zu\n", "from memory (FleetView)",
              fast.per_second, fast.p50_ms, fast.p99_ms, fast.requests, fast.bytes);
  std::printf("%-28s %12.1f %12.2f %12.2f %10zu %14zu\n", "old route (store)", slow.per_second,
              slow.p50_ms, slow.p99_ms, slow.requests, slow.bytes);
  std::printf("%-28s %11.1fx %11.1fx %11.1fx\n", "memory vs old (speed-up)",
              fast.per_second / slow.per_second, slow.p50_ms / fast.p50_ms,
              slow.p99_ms / fast.p99_ms);
  std::printf("target: >= 200 requests/s and p99 < 50 ms: %s\n",
              fast.per_second >= 200 && fast.p99_ms < 50 ? "met" : "MISSED");
  return 0;
}
