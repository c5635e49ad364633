// fleet_scale_bench: the daemon (controller/daemon/daemon.hpp) with COUNT shared workspaces over
// three clusters, in process, against the fakes (tests/support/fake_postgres.hpp, one per
// cluster; fake_store.hpp), for issue 10's goals: a no-op resync of 10,000 workspaces under 1 s of
// CPU, the daemon's RSS under 128 MB. The manifests (one file each, no cluster named, so placement
// spreads them) are a watched directory, as in tests/controller/daemon/daemon_test.cpp.
//
// Each size runs in a forked child of its own (so one size's heap does not count in the other's
// RSS): the baseline BASELINE first, then COUNT, and the per-workspace costs are compared. In a
// child:
//  1. cold converge by daemon A (4 workers, resync 1 h) until COUNT successful reconciles and
//     every workspace Ready in the store;
//  2. VmRSS/VmHWM after the converge; daemon A stopped and destroyed, malloc_trim(0), VmRSS again:
//     the process with only the fakes filled (the store's rows and events, three clusters'
//     catalogs, the code), the fakes' share;
//  3. daemon B on the filled fakes (a restart) with a resync interval of 10 ms: its first term
//     reads the store and the 10,000 files and reconciles every workspace once (the restart
//     resync); after that every workspace is queued again 10 ms after each success, so the
//     workers reconcile the converged fleet back to back: the next COUNT successes are one full
//     no-op resync (timed twice: successes N..2N and 2N..3N). CPU is getrusage(RUSAGE_SELF)
//     user+sys over the window, i.e. the whole process (the watcher's poll of the metrics every
//     10 ms included); no Apply and no status write may happen in it (checked, printed).
//  4. VmRSS/VmHWM after the resyncs (VmHWM is the process's peak, the converge's included).
//
// Built on request only:
//   cmake --build BUILD --target fleet_scale_bench && BUILD/fleet_scale_bench [COUNT=10000]
//   [BASELINE=1000]
// FLEET_SCALE_IN_PROCESS=1 runs COUNT only, without forking, and exits right after step 4 with
// daemon B still running (for a heap profiler: what is alive then is reported as leaked).
#include <malloc.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

#include "controller/daemon/daemon.hpp"
#include "tests/support/fake_postgres.hpp"
#include "tests/support/fake_store.hpp"
#include "tests/support/shop_fleet.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

using namespace tmaster;
using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

constexpr const char* kClusters[] = {"c1", "c2", "c3"};

/// What one child measures, sent to the parent through a pipe as raw bytes.
struct Figures {
  int count = 0;
  long rss_start_kb = 0;
  double converge_wall = 0, converge_cpu = 0;
  long rss_converged_kb = 0, hwm_converged_kb = 0;
  long rss_fakes_kb = 0;
  double restart_wall = 0, restart_cpu = 0;
  double resync_wall[2] = {0, 0}, resync_cpu[2] = {0, 0};
  int resync_applies = 0, resync_observes = 0;
  long resync_status_writes = 0;
  long rss_restart_kb = 0;  ///< right after the restart's resync, before the back-to-back ones
  long rss_after_kb = 0, hwm_after_kb = 0;
  int per_cluster[3] = {0, 0, 0};
};

double CpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

/// A field of /proc/self/status in kB (VmRSS, VmHWM).
long StatusKb(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return std::atol(line.c_str() + field.size() + 1);
  }
  return -1;
}

double Successes(const controller::Metrics& metrics) {
  const std::string text = metrics.Render();
  const std::string key = "tenant_master_reconcile_total{result=\"success\"} ";
  const auto at = text.find(key);
  return at == std::string::npos ? 0 : std::stod(text.substr(at + key.size()));
}

/// Polls the metrics every 10 ms until `target` successes; false after `limit`.
bool WaitSuccesses(const controller::Metrics& metrics, double target, Steady::duration limit) {
  const auto deadline = Steady::now() + limit;
  while (Successes(metrics) < target) {
    if (Steady::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

int ReadyCount(const testing::FakeStore& store) {
  int ready = 0;
  for (const auto& [name, status] : store.Snapshot().statuses) ready += status.phase == "Ready";
  return ready;
}

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "fleet_scale_bench: %s\n", what.c_str());
  std::_Exit(1);
}

void Print(const Figures& f);

class Run {
 public:
  explicit Run(int count, bool in_process = false) : count_(count), in_process_(in_process) {
    spdlog::set_level(spdlog::level::off);
    dir_.Write("fleet/product.yaml", testing::kShopProduct);
    char name[32];
    for (int i = 1; i <= count; ++i) {
      std::snprintf(name, sizeof name, "ws-%05d", i);
      dir_.Write(std::string("fleet/") + name + ".yaml",
                 std::string("apiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\nmetadata: "
                             "{name: ") +
                     name + "}\nspec: {product: shop, mode: shared}\n");
    }
    config_.base_domain = "bench.test";
    for (const char* cluster : kClusters) {
      config_.clusters.push_back({.name = cluster, .dsn = {}, .stacks_host = {}, .stacks_port = 0});
    }
    manifests::SourceConfig source;
    source.name = "fleet";
    source.directory = dir_.path() / "fleet";
    config_.sources.push_back(source);
  }

  std::unique_ptr<controller::Daemon> MakeDaemon(controller::Metrics& metrics,
                                                 controller::Duration resync) {
    controller::DaemonDeps deps;
    deps.config = &config_;
    deps.store = &store_;
    for (std::size_t i = 0; i < 3; ++i) deps.gateways[kClusters[i]] = &postgres_[i];
    deps.master_key = &key_;
    deps.metrics = &metrics;
    deps.clock = &clock_;
    deps.random = &random_;
    controller::DaemonOptions options;
    options.workers = 4;
    options.resync_interval = resync;
    options.rescan_interval = std::chrono::hours(1);
    return std::make_unique<controller::Daemon>(std::move(deps), options);
  }

  Figures Measure() {
    Figures f;
    f.count = count_;
    f.rss_start_kb = StatusKb("VmRSS");
    const auto limit = std::chrono::seconds(60 + count_ / 10);
    {
      controller::Metrics metrics;
      auto daemon = MakeDaemon(metrics, std::chrono::hours(1));
      const double cpu0 = CpuSeconds();
      const auto t0 = Steady::now();
      std::thread thread([&] { daemon->Run(); });
      if (!WaitSuccesses(metrics, count_, limit)) Fail("cold converge did not finish");
      while (ReadyCount(store_) < count_) {
        if (Steady::now() - t0 > limit) Fail("not every workspace Ready");
        std::this_thread::sleep_for(50ms);
      }
      f.converge_wall = std::chrono::duration<double>(Steady::now() - t0).count();
      f.converge_cpu = CpuSeconds() - cpu0;
      std::this_thread::sleep_for(1s);
      f.rss_converged_kb = StatusKb("VmRSS");
      f.hwm_converged_kb = StatusKb("VmHWM");
      daemon->Stop();
      thread.join();
    }
    for (std::size_t i = 0; i < 3; ++i) {
      f.per_cluster[i] = static_cast<int>(postgres_[i].cluster().databases.size());
    }
    malloc_trim(0);
    f.rss_fakes_kb = StatusKb("VmRSS");

    controller::Metrics metrics;
    auto daemon = MakeDaemon(metrics, 10ms);
    double cpu = CpuSeconds();
    auto t = Steady::now();
    std::thread thread([&] { daemon->Run(); });
    if (!WaitSuccesses(metrics, count_, limit)) Fail("the restart's resync did not finish");
    f.restart_wall = std::chrono::duration<double>(Steady::now() - t).count();
    f.restart_cpu = CpuSeconds() - cpu;
    f.rss_restart_kb = StatusKb("VmRSS");
    const int applies0 = postgres_[0].apply_calls() + postgres_[1].apply_calls() +
                         postgres_[2].apply_calls();
    const int observes0 = postgres_[0].observe_calls() + postgres_[1].observe_calls() +
                          postgres_[2].observe_calls();
    const std::size_t writes0 = store_.Calls("PutStatus");
    for (int k = 0; k < 2; ++k) {
      cpu = CpuSeconds();
      t = Steady::now();
      if (!WaitSuccesses(metrics, (k + 2.0) * count_, limit)) Fail("a resync did not finish");
      f.resync_wall[k] = std::chrono::duration<double>(Steady::now() - t).count();
      f.resync_cpu[k] = CpuSeconds() - cpu;
    }
    f.resync_applies = postgres_[0].apply_calls() + postgres_[1].apply_calls() +
                       postgres_[2].apply_calls() - applies0;
    f.resync_observes = postgres_[0].observe_calls() + postgres_[1].observe_calls() +
                        postgres_[2].observe_calls() - observes0;
    f.resync_status_writes = static_cast<long>(store_.Calls("PutStatus") - writes0);
    f.rss_after_kb = StatusKb("VmRSS");
    f.hwm_after_kb = StatusKb("VmHWM");
    if (in_process_) {
      // Exits with daemon B running and the fakes filled: a heap profiler reports what they
      // hold at this point as leaked (heaptrack's "MOST MEMORY LEAKED").
      Print(f);
      std::fflush(stdout);
      std::exit(0);
    }
    daemon->Stop();
    thread.join();
    return f;
  }

 private:
  int count_;
  bool in_process_;
  testing::TempDir dir_;
  manifests::Config config_;
  testing::FakeStore store_;
  testing::FakePostgres postgres_[3];
  controller::SteadyClock clock_;
  controller::MtRandom random_;
  const Secret key_{"0123456789abcdef0123456789abcdef-scale-bench"};
};

/// Runs one size in a forked child and returns its figures.
Figures InChild(int count) {
  std::fflush(stdout);
  int fds[2];
  if (pipe(fds) != 0) Fail("pipe");
  const pid_t pid = fork();
  if (pid < 0) Fail("fork");
  if (pid == 0) {
    close(fds[0]);
    Figures f = Run(count).Measure();
    if (write(fds[1], &f, sizeof f) != static_cast<ssize_t>(sizeof f)) std::_Exit(1);
    std::_Exit(0);
  }
  close(fds[1]);
  Figures f;
  const ssize_t got = read(fds[0], &f, sizeof f);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (got != static_cast<ssize_t>(sizeof f) || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    Fail("the run of " + std::to_string(count) + " workspaces failed");
  }
  return f;
}

std::string LoadAverage() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

double Mb(long kb) { return static_cast<double>(kb) / 1024.0; }

void Print(const Figures& f) {
  const double n = f.count;
  std::printf("== %d workspaces over 3 fake clusters (placed: %d / %d / %d) ==\n", f.count,
              f.per_cluster[0], f.per_cluster[1], f.per_cluster[2]);
  std::printf("cold converge (daemon A):        %7.2f s wall, %7.2f s CPU\n", f.converge_wall,
              f.converge_cpu);
  std::printf("restart resync (daemon B: store, %d files read, every workspace once): "
              "%.2f s wall, %.2f s CPU\n",
              f.count, f.restart_wall, f.restart_cpu);
  for (int k = 0; k < 2; ++k) {
    std::printf("no-op resync %d (%d reconciles back to back): %6.3f s wall, %6.3f s CPU "
                "(%.1f us CPU per workspace)\n",
                k + 1, f.count, f.resync_wall[k], f.resync_cpu[k], f.resync_cpu[k] / n * 1e6);
  }
  std::printf("  during both: %d Apply, %ld status writes, %d catalog snapshots (Observe)\n",
              f.resync_applies, f.resync_status_writes, f.resync_observes);
  std::printf("RSS: at start %.1f MB; converged %.1f MB (peak %.1f); fakes only (daemon A "
              "destroyed, malloc_trim) %.1f MB; after the restart's resync %.1f MB; after the "
              "back-to-back resyncs %.1f MB (process peak %.1f)\n",
              Mb(f.rss_start_kb), Mb(f.rss_converged_kb), Mb(f.hwm_converged_kb),
              Mb(f.rss_fakes_kb), Mb(f.rss_restart_kb), Mb(f.rss_after_kb), Mb(f.hwm_after_kb));
  std::printf("  daemon's share (minus fakes only): A converged %.1f MB, B after the restart's "
              "resync %.1f MB, B after the back-to-back resyncs %.1f MB (%.1f kB a workspace)\n",
              Mb(f.rss_converged_kb - f.rss_fakes_kb), Mb(f.rss_restart_kb - f.rss_fakes_kb),
              Mb(f.rss_after_kb - f.rss_fakes_kb),
              static_cast<double>(f.rss_after_kb - f.rss_fakes_kb) / n);
}

}  // namespace

int main(int argc, char** argv) {
  const int count = argc > 1 ? std::atoi(argv[1]) : 10000;
  const int baseline = argc > 2 ? std::atoi(argv[2]) : 1000;
  if (count <= 0 || baseline <= 0 || count > 100000 || baseline > 100000) {
    std::fprintf(stderr, "usage: %s [COUNT=10000] [BASELINE=1000]\n", argv[0]);
    return 2;
  }
  std::printf("machine: %u cores, load average %s\n", std::thread::hardware_concurrency(),
              LoadAverage().c_str());
  // For a heap profiler (heaptrack, massif), which follows no fork: COUNT only, in this process.
  if (const char* in_process = std::getenv("FLEET_SCALE_IN_PROCESS");
      in_process != nullptr && std::string(in_process) == "1") {
    Run(count, true).Measure();  // exits
    return 0;
  }
  const Figures base = InChild(baseline);
  Print(base);
  std::printf("load average: %s\n", LoadAverage().c_str());
  std::fflush(stdout);
  const Figures full = InChild(count);
  Print(full);
  const auto per = [](double v, const Figures& f) { return v / f.count; };
  const double resync_full = (full.resync_cpu[0] + full.resync_cpu[1]) / 2;
  const double resync_base = (base.resync_cpu[0] + base.resync_cpu[1]) / 2;
  std::printf("== %d against %d ==\n", count, baseline);
  std::printf("no-op resync CPU per workspace: %.2fx the baseline's (1.00 = linear); "
              "cold converge CPU per workspace: %.2fx\n",
              per(resync_full, full) / per(resync_base, base),
              per(full.converge_cpu, full) / per(base.converge_cpu, base));
  std::printf("goal: no-op resync of %d under 1 s CPU: %.3f s (mean of 2) -> %s\n", count,
              resync_full, resync_full < 1.0 ? "met" : "NOT met");
  std::printf("goal: RSS under 128 MB: %.1f MB after the resyncs with the fakes, %.1f MB "
              "without them, process peak %.1f MB -> %s\n",
              Mb(full.rss_after_kb), Mb(full.rss_after_kb - full.rss_fakes_kb),
              Mb(full.hwm_after_kb), full.rss_after_kb < 128 * 1024 ? "met" : "NOT met (see "
              "the daemon's share)");
  std::printf("load average at the end: %s\n", LoadAverage().c_str());
  return 0;
}
