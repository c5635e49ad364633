// list_bench: the workspace list answered from memory (controller/daemon/fleet_view.hpp, issue 13)
// against the old rendering of the same objects from the store's rows (status_json.hpp
// WorkspaceListJson over ListWorkspaces + ListStatuses, without the store's own query time), in
// one run on one machine. In process (no HTTP): what the route adds on top is the transport.
//   1. the first page of 100 out of 10,000 workspaces: p50/p95 latency and its size;
//   2. a full list of 1,000 with 4 client threads for 3 s: requests/s and p99, against the
//      baseline rendering with 4 threads as well.
// Built on request: `cmake --build BUILD --target list_bench && BUILD/list_bench`.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "controller/api/status_json.hpp"
#include "controller/daemon/fleet_view.hpp"

namespace {

using namespace tmaster::controller;
using Clock = std::chrono::steady_clock;

StoredWorkspace Row(int i) {
  char name[32];
  std::snprintf(name, sizeof name, "tenant-%05d", i);
  StoredWorkspace row;
  row.name = name;
  row.source = "fleet";
  row.revision = "3f2a9c1d5e7b8a0c4d6e8f1a2b3c4d5e6f7a8b9c";
  row.spec_json = std::string(R"({"apiVersion":"tenantmaster.io/v1alpha1","kind":"Workspace",)") +
                  R"("metadata":{"name":")" + name + R"(","labels":{"tier":")" +
                  (i % 4 == 0 ? "gold" : "silver") +
                  R"(","team":"shop"}},"spec":{"product":"shop","mode":"shared","subdomain":")" +
                  name + R"(","suspend":false,"database":{"cluster":"default","name":"tenant_)" +
                  std::to_string(i) + R"(","owner":"user_)" + std::to_string(i) +
                  R"(","connectionLimit":-1,"extensions":[],"reclaimPolicy":"Retain",)"
                  R"("passwordRotationDays":0,"adopt":false},"backup":{"keep":7}}})";
  row.spec_digest = std::string(64, 'a');
  row.generation = 3;
  return row;
}

WorkspaceStatus StatusOf(int i, const std::string& name) {
  WorkspaceStatus status;
  status.name = name;
  status.observed_generation = 3;
  status.phase = i % 50 == 0 ? "Degraded" : "Ready";
  status.conditions_json =
      R"([{"type":"Ready","status":"True","reason":"UpToDate","message":"database and role up to date","lastTransitionTime":"2026-12-01T10:00:00Z"},)"
      R"({"type":"DatabaseReady","status":"True","reason":"UpToDate","message":"ok","lastTransitionTime":"2026-12-01T10:00:00Z"}])";
  status.revision = "3f2a9c1d5e7b8a0c4d6e8f1a2b3c4d5e6f7a8b9c";
  status.last_runs_json =
      R"([{"start":"2026-12-03T10:00:00Z","durationSeconds":0.012,"result":"Succeeded","reason":"UpToDate"}])";
  return status;
}

double Percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  return values[static_cast<std::size_t>(p * static_cast<double>(values.size() - 1))];
}

struct Load {
  double per_second = 0;
  double p99_ms = 0;
  std::size_t bytes = 0;
};

template <class F>
Load Hammer(int threads, std::chrono::seconds length, F render) {
  std::atomic<bool> stop{false};
  std::vector<std::vector<double>> latencies(static_cast<std::size_t>(threads));
  std::vector<std::thread> pool;
  std::atomic<std::size_t> bytes{0};
  const auto start = Clock::now();
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      while (!stop.load()) {
        const auto t0 = Clock::now();
        const std::size_t size = render();
        latencies[static_cast<std::size_t>(t)].push_back(
            std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        bytes = size;
      }
    });
  }
  std::this_thread::sleep_for(length);
  stop = true;
  for (auto& thread : pool) thread.join();
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  for (const auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
  return {static_cast<double>(all.size()) / seconds, Percentile(all, 0.99), bytes.load()};
}

}  // namespace

int main() {
  // 1. The first page of 100 out of 10,000.
  std::vector<StoredWorkspace> rows;
  std::vector<WorkspaceStatus> statuses;
  for (int i = 0; i < 10'000; ++i) {
    rows.push_back(Row(i));
    statuses.push_back(StatusOf(i, rows.back().name));
  }
  FleetView view;
  auto t0 = Clock::now();
  view.Reset(rows, statuses);
  const double load_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  std::vector<double> page_ms;
  std::vector<double> base_ms;
  std::size_t page_bytes = 0;
  std::size_t base_bytes = 0;
  for (int run = 0; run < 200; ++run) {
    FleetQuery query;
    query.limit = 100;
    t0 = Clock::now();
    const FleetPage page = *view.List(query);
    page_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    page_bytes = page.json.size();
  }
  for (int run = 0; run < 20; ++run) {
    t0 = Clock::now();
    const std::string all = WorkspaceListJson(rows, statuses);  // the old answer: every item
    base_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    base_bytes = all.size();
  }
  std::printf("10,000 workspaces: view loaded in %.0f ms\n", load_ms);
  std::printf("first page of 100: p50 %.3f ms, p95 %.3f ms, %zu bytes\n", Percentile(page_ms, 0.5),
              Percentile(page_ms, 0.95), page_bytes);
  std::printf(
      "baseline (WorkspaceListJson of all 10,000, the old route): p50 %.1f ms, p95 %.1f ms, "
      "%zu bytes; page is %.0fx faster, %.0fx smaller\n",
      Percentile(base_ms, 0.5), Percentile(base_ms, 0.95), base_bytes,
      Percentile(base_ms, 0.95) / Percentile(page_ms, 0.95),
      static_cast<double>(base_bytes) / static_cast<double>(page_bytes));

  // 2. A full list of 1,000 with 4 clients.
  rows.resize(1'000);
  statuses.resize(1'000);
  FleetView small;
  small.Reset(rows, statuses);
  const Load fast = Hammer(4, std::chrono::seconds(3), [&] { return small.List({})->json.size(); });
  const Load slow =
      Hammer(4, std::chrono::seconds(3), [&] { return WorkspaceListJson(rows, statuses).size(); });
  std::printf("full list of 1,000, 4 threads: %.0f/s, p99 %.2f ms, %zu bytes\n", fast.per_second,
              fast.p99_ms, fast.bytes);
  std::printf("baseline WorkspaceListJson, 4 threads: %.0f/s, p99 %.2f ms; ratio %.1fx\n",
              slow.per_second, slow.p99_ms, fast.per_second / slow.per_second);
  return 0;
}
