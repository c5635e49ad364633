// Shared tenants at fleet size (issue 17): 10,000 shared workspaces published through
// SharedTenants (controller/bindings/publisher.hpp) into Service Binding folders and PgBouncer's
// two files (PgBouncerFiles, reload by SIGHUP through a pid file), measured as
//   (a) the first full write: Publish of every tenant, then one FlushPooler;
//   (b) a no-op pass in the same process (the same facts again; goal: 0 files written and under
//       0.2 s CPU for the bindings step);
//   (c) a cold no-op pass: a new SharedTenants and PgBouncerFiles on the same folders, as after a
//       restart (goal: 0 files written);
//   (d) one tenant's password changed among 10,000;
//   (e) baselines in the same run: the same files written naively (mkdir, open/write/close, no
//       comparison, no atomic swap, content rendered beforehand), once before (a) and once after
//       (d), and a `find`-like walk that stats every entry; the ratios of (a) and (b) to them are
//       printed.
// Each row: wall time, the process's CPU time (CLOCK_PROCESS_CPUTIME_ID; PgBouncer's own CPU is
// not in it) and the files written, counted independently of the publisher's counters: every
// regular file under the two folders is stat'ed before and after, and a file is written when it
// is new or its inode or mtime changed (a replaced file is always a new inode here: writers fill
// the new version before the old one is removed, so an inode number cannot be reused meanwhile).
// A no-op pass that writes anything fails the bench (non-zero exit).
//
// The pooler is Debian's real PgBouncer (tests/support/pgbouncer_server.hpp) when
// /usr/sbin/pgbouncer exists, else a child `sleep` that ignores SIGHUP stands behind the pid file
// (the first line of the output says which); with PgBouncer, the time until its admin console
// lists every tenant database after the first write's SIGHUP is printed too.
//
// Synthetic facts: 4 products, names like `ferreteria-norte-0042`, two clusters, every 50th
// tenant suspended, a unique 32-character password per tenant, and SCRAM verifiers computed
// once with postgres::MakeScramVerifier for 8 passwords and reused (PBKDF2 is not what is
// measured; a tenant's verifier does not match its password, which nothing here checks).
//
// The folders are made under TMPDIR (default /tmp): `TMPDIR=/dev/shm` measures on tmpfs.
// TM_BINDINGS_BENCH_TENANTS (default 10000), TM_BINDINGS_BENCH_RUNS (default 5: in-process
// no-op passes; the cold pass runs 3 times). Built on request only:
// `cmake --build BUILD --target bindings_bench && BUILD/bindings_bench`.

#include <dirent.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/crypto.hpp"
#include "controller/bindings/pgbouncer_sink.hpp"
#include "controller/bindings/publisher.hpp"
#include "reconcilers/postgres/desired.hpp"
#include "tests/support/pgbouncer_server.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using namespace tmaster;
using namespace tmaster::bindings;
using namespace tmaster::testing;

int EnvOr(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && std::atoi(value) > 0 ? std::atoi(value) : fallback;
}

double CpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// Wall and CPU time of one step.
struct Cost {
  double wall = 0;
  double cpu = 0;
};

template <class F>
Cost Time(F&& step) {
  const double wall = WallSeconds();
  const double cpu = CpuSeconds();
  step();
  return {WallSeconds() - wall, CpuSeconds() - cpu};
}

// --- The files on disk, independently of the publisher ------------------------------------------

struct FileId {
  ino_t inode = 0;
  std::int64_t mtime_ns = 0;
  friend bool operator==(const FileId&, const FileId&) = default;
};
using Snapshot = std::map<std::string, FileId>;

// Every regular file under `dir` (readdir + fstatat, never following a link), as `find -type f`
// with its stat would see them. Entries counts every entry stat'ed (folders included).
void Walk(int dir, const std::string& prefix, Snapshot& out, long& entries) {
  DIR* stream = fdopendir(dup(dir));
  REQUIRE(stream != nullptr);
  std::vector<std::string> names;
  while (const dirent* entry = readdir(stream)) {
    const std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  closedir(stream);
  for (const std::string& name : names) {
    struct stat st {};
    if (fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone meanwhile
    ++entries;
    if (S_ISDIR(st.st_mode)) {
      const int child = openat(dir, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (child < 0) continue;
      Walk(child, prefix + name + "/", out, entries);
      close(child);
    } else if (S_ISREG(st.st_mode)) {
      out[prefix + name] = {st.st_ino, static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 +
                                           st.st_mtim.tv_nsec};
    }
  }
}

Snapshot Take(const std::vector<fs::path>& roots, long* entries = nullptr) {
  Snapshot out;
  long counted = 0;
  for (const fs::path& root : roots) {
    const int fd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) continue;
    Walk(fd, root.filename().string() + "/", out, counted);
    close(fd);
  }
  if (entries != nullptr) *entries = counted;
  return out;
}

struct Diff {
  long written = 0;  ///< new, or another inode or mtime
  long removed = 0;
  long pooler_written = 0;  ///< of `written`, under the pooler's folder
};

Diff Compare(const Snapshot& before, const Snapshot& after) {
  Diff diff;
  for (const auto& [path, id] : after) {
    auto found = before.find(path);
    if (found == before.end() || !(found->second == id)) {
      ++diff.written;
      if (path.rfind("pooler/", 0) == 0) ++diff.pooler_written;
    }
  }
  for (const auto& [path, id] : before) {
    if (after.count(path) == 0) ++diff.removed;
  }
  return diff;
}

// --- The synthetic fleet ------------------------------------------------------------------------

constexpr std::array<const char*, 4> kProducts = {"erp", "crm", "shop", "helpdesk"};
constexpr std::array<const char*, 16> kTrades = {
    "ferreteria", "panaderia", "farmacia",  "libreria",  "optica",   "taller",
    "clinica",    "papeleria", "floristeria", "carniceria", "zapateria", "jugueteria",
    "lavanderia", "imprenta",  "cerrajeria", "vivero"};
constexpr std::array<const char*, 12> kPlaces = {"norte", "sur",    "centro", "oeste",
                                                 "este",  "puerto", "valle",  "sierra",
                                                 "costa", "llano",  "rio",    "lago"};
constexpr int kVerifiers = 8;

std::string Padded(int i) {
  char buffer[16];
  std::snprintf(buffer, sizeof buffer, "%04d", i);
  return buffer;
}

std::vector<TenantFacts> Fleet(int count, const std::vector<std::string>& verifiers) {
  std::vector<TenantFacts> fleet;
  fleet.reserve(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    TenantFacts facts;
    facts.product = kProducts[static_cast<std::size_t>(i) % kProducts.size()];
    facts.workspace = std::string(kTrades[static_cast<std::size_t>(i / 4) % kTrades.size()]) + "-" +
                      kPlaces[static_cast<std::size_t>(i / 64) % kPlaces.size()] + "-" + Padded(i);
    std::string underscored = facts.workspace;
    std::replace(underscored.begin(), underscored.end(), '-', '_');
    facts.cluster = i % 2 == 0 ? "pg-main" : "pg-second";
    facts.server_address = {"127.0.0.1", i % 2 == 0 ? 5432 : 5433};
    facts.runtime_address = {i % 2 == 0 ? "pg-main.internal" : "pg-second.internal",
                             facts.server_address.port};
    facts.database = "ws_" + underscored;
    facts.username = "ws_" + underscored;
    facts.password = Secret(crypto::Hex(crypto::RandomBytes(16)));
    facts.verifier = verifiers[static_cast<std::size_t>(i) % verifiers.size()];
    facts.hosts = {facts.workspace + "." + facts.product + ".example.test"};
    if (i % 10 == 0) facts.hosts.push_back("www." + facts.workspace + ".example.com");
    facts.suspended = i % 50 == 49;
    fleet.push_back(std::move(facts));
  }
  return fleet;
}

// --- The pooler's process -----------------------------------------------------------------------

/// A child `sleep` ignoring SIGHUP, standing behind a pid file when PgBouncer is not there.
class SleepPooler {
 public:
  explicit SleepPooler(const fs::path& pid_file) : pid_file_(pid_file) {
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      signal(SIGHUP, SIG_IGN);  // kept across exec
      execl("/bin/sleep", "sleep", "3600", static_cast<char*>(nullptr));
      _exit(127);
    }
    std::ofstream(pid_file) << pid_ << "\n";
  }
  ~SleepPooler() {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  SleepPooler(const SleepPooler&) = delete;
  SleepPooler& operator=(const SleepPooler&) = delete;

 private:
  fs::path pid_file_;
  pid_t pid_ = -1;
};

// The databases PgBouncer's admin console lists (the `pgbouncer` console itself included), or -1.
long ConsoleDatabases(const PgBouncerServer& bouncer) {
  const AsPostgresUser as_postgres;
  PGconn* conn = PQconnectdb(bouncer.AdminDsn().c_str());
  long count = -1;
  if (PQstatus(conn) == CONNECTION_OK) {
    PGresult* result = PQexec(conn, "SHOW DATABASES");
    if (PQresultStatus(result) == PGRES_TUPLES_OK) count = PQntuples(result);
    PQclear(result);
  }
  PQfinish(conn);
  return count;
}

// --- Printing -----------------------------------------------------------------------------------

void Row(const char* what, const Cost& cost, const Diff& diff, const std::string& extra = "") {
  std::printf("  %-58s wall %8.3f s  cpu %8.3f s  files written %6ld  removed %ld%s%s\n", what,
              cost.wall, cost.cpu, diff.written, diff.removed, extra.empty() ? "" : "  ",
              extra.c_str());
  std::fflush(stdout);
}

std::string CountersText(const PublisherCounters& before, const PublisherCounters& after) {
  return "(counters: bindings_written +" +
         std::to_string(after.bindings_written - before.bindings_written) + ", pooler_writes +" +
         std::to_string(after.pooler_writes - before.pooler_writes) + ")";
}

double Median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// The same files, written naively: mkdir, then open/write/close per file; no comparison, no
// temporary, no rename, no mode or group beyond open's.
void WriteNaive(const fs::path& root, const std::vector<TenantFacts>& fleet,
                const std::vector<std::vector<FileEntry>>& rendered, const std::string& databases,
                const std::string& users) {
  auto write_file = [](const std::string& path, const std::string& content) {
    const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
    close(fd);
  };
  const std::string bindings = (root / "bindings").string();
  mkdir(bindings.c_str(), 0700);
  for (const char* product : kProducts) mkdir((bindings + "/" + product).c_str(), 0700);
  for (std::size_t i = 0; i < fleet.size(); ++i) {
    const std::string folder = bindings + "/" + fleet[i].product + "/" + fleet[i].workspace;
    mkdir(folder.c_str(), 0700);
    for (const auto& [name, content] : rendered[i]) write_file(folder + "/" + name, content);
  }
  const std::string pooler = (root / "pooler").string();
  mkdir(pooler.c_str(), 0700);
  write_file(pooler + "/userlist.txt", users);
  write_file(pooler + "/databases.ini", databases);
}

}  // namespace

TEST_CASE("bindings bench") {
  const int count = EnvOr("TM_BINDINGS_BENCH_TENANTS", 10000);
  const int runs = EnvOr("TM_BINDINGS_BENCH_RUNS", 5);
  const bool have_pgbouncer = access("/usr/sbin/pgbouncer", X_OK) == 0;
  const bool root_user = geteuid() == 0;

  std::vector<std::string> verifiers;
  for (int k = 0; k < kVerifiers; ++k) {
    verifiers.push_back(postgres::MakeScramVerifier(
        Secret("bench-password-" + std::to_string(k)), crypto::RandomBytes(16), 4096));
  }
  std::vector<TenantFacts> fleet = Fleet(count, verifiers);

  const TempDir tmp;
  // PgBouncer (as postgres) reaches the pooler folder: searchable above, group-readable inside.
  REQUIRE(chmod(tmp.path().c_str(), 0711) == 0);
  const fs::path bindings_dir = tmp.path() / "bindings";
  const fs::path pooler_dir = tmp.path() / "pooler";
  const std::vector<fs::path> roots = {bindings_dir, pooler_dir};
  Access pooler_access;
  if (root_user && have_pgbouncer) {
    Outcome<Access> access = AccessFor("postgres");
    REQUIRE_MESSAGE(access.ok(), access.failure().message);
    pooler_access = *access;
  }
  {  // PgBouncer needs both files to start: empty ones first, as SafeDir writes them.
    Outcome<SafeDir> dir = SafeDir::Open(pooler_dir, pooler_access, true);
    REQUIRE_MESSAGE(dir.ok(), dir.failure().message);
    REQUIRE(dir->WriteFile("databases.ini", *RenderDatabasesIni({})).ok());
    REQUIRE(dir->WriteFile("userlist.txt", *RenderUserlist({})).ok());
  }
  std::unique_ptr<PgBouncerServer> bouncer;
  std::unique_ptr<SleepPooler> sleeper;
  std::string pid_file;
  Endpoint listen{"127.0.0.1", 6432};
  if (have_pgbouncer) {
    bouncer = std::make_unique<PgBouncerServer>(
        PgBouncerOptions{.databases_ini = (pooler_dir / "databases.ini").string(),
                         .userlist = (pooler_dir / "userlist.txt").string()});
    bouncer->Start();
    pid_file = bouncer->pid_file();
    listen.port = bouncer->port();
  } else {
    pid_file = (tmp.path() / "sleep.pid").string();
    sleeper = std::make_unique<SleepPooler>(pid_file);
  }
  std::printf(
      "bindings_bench: %d shared workspaces, %zu products, bindings in %s, pooler files in %s,\n"
      "  reload by SIGHUP through the pid file of %s; machine: %u cores, load average %s",
      count, kProducts.size(), bindings_dir.c_str(), pooler_dir.c_str(),
      have_pgbouncer ? "Debian's real PgBouncer (/usr/sbin/pgbouncer, started by the test harness)"
                     : "a child `sleep` ignoring SIGHUP (no /usr/sbin/pgbouncer)",
      std::thread::hardware_concurrency(), [] {
        std::ifstream in("/proc/loadavg");
        std::string a, b, c;
        in >> a >> b >> c;
        return a + " " + b + " " + c + "\n";
      }().c_str());

  auto make_publisher = [&](PgBouncerFiles& files) {
    return std::make_unique<SharedTenants>(PublisherOptions{.bindings_dir = bindings_dir,
                                                            .bindings_access = {},
                                                            .pooler = &files,
                                                            .pooler_listen = listen});
  };
  auto publish_all = [&](SharedTenants& publisher) {
    for (const TenantFacts& facts : fleet) {
      Outcome<bool> published = publisher.Publish(facts);
      REQUIRE_MESSAGE(published.ok(), published.failure().message);
    }
  };
  auto flush = [&](SharedTenants& publisher) {
    Status flushed = publisher.FlushPooler();
    REQUIRE_MESSAGE(flushed.ok(), flushed.failure().message);
  };

  // (e, first half) The naive write, rendered beforehand; again after (d).
  std::vector<std::vector<FileEntry>> rendered;
  rendered.reserve(fleet.size());
  for (const TenantFacts& facts : fleet) rendered.push_back(RenderBinding(facts, listen));
  const std::string databases = *RenderDatabasesIni(PoolerEntries(fleet));
  const std::string users = *RenderUserlist(PoolerEntries(fleet));
  std::vector<std::unique_ptr<TempDir>> naive_dirs;
  auto write_naive = [&](const char* what) {
    naive_dirs.push_back(std::make_unique<TempDir>());
    const fs::path where = naive_dirs.back()->path();
    const Cost cost = Time([&] { WriteNaive(where, fleet, rendered, databases, users); });
    const Snapshot naive_files = Take({where / "bindings", where / "pooler"});
    Row(what, cost, Diff{static_cast<long>(naive_files.size()), 0, 0});
    CHECK(static_cast<long>(naive_files.size()) == static_cast<long>(count) * 11 + 2);
    return cost;
  };
  std::printf("(e) baseline before (a)\n");
  const Cost naive_before = write_naive("naive write of the same files (open/write/close)");

  // (a) The first full write.
  std::printf("(a) first full write\n");
  auto files = std::make_unique<PgBouncerFiles>(pooler_dir, pooler_access,
                                                PoolerReload{pid_file, {}});
  auto publisher = make_publisher(*files);
  Snapshot before = Take(roots);
  Cost a_bindings = Time([&] { publish_all(*publisher); });
  Snapshot middle = Take(roots);
  Cost a_pooler = Time([&] { flush(*publisher); });
  const double sighup_at = WallSeconds();
  Snapshot after = Take(roots);
  const Diff a_bind_diff = Compare(before, middle);
  const Diff a_pool_diff = Compare(middle, after);
  Row("bindings step: Publish x all", a_bindings, a_bind_diff,
      "(counters: bindings_written " + std::to_string(publisher->counters().bindings_written) + ")");
  Row("pooler step: FlushPooler (render, write, SIGHUP)", a_pooler, a_pool_diff,
      "(counters: pooler_writes " + std::to_string(publisher->counters().pooler_writes) + ")");
  std::printf("  pooler files: databases.ini %ju bytes, userlist.txt %ju bytes\n",
              static_cast<std::uintmax_t>(fs::file_size(pooler_dir / "databases.ini")),
              static_cast<std::uintmax_t>(fs::file_size(pooler_dir / "userlist.txt")));
  const Cost a_total{a_bindings.wall + a_pooler.wall, a_bindings.cpu + a_pooler.cpu};
  CHECK(a_bind_diff.written == static_cast<long>(count) * 11);
  CHECK(a_pool_diff.written == 2);
  if (bouncer) {
    // PgBouncer's own reload of 10,000 entries, seen from its admin console.
    // Every tenant has an entry; a suspended one points at no database (docs/bindings.md).
    const long expected = static_cast<long>(PoolerEntries(fleet).size());
    long listed = -1;
    while (WallSeconds() - sighup_at < 60) {
      listed = ConsoleDatabases(*bouncer);
      if (listed >= expected + 1) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::printf("  PgBouncer's console lists %ld tenant databases (of %ld entries, suspended "
                "ones included) %.3f s after the SIGHUP (polled every 5 ms)\n",
                listed - 1, expected, WallSeconds() - sighup_at);
    if (listed != expected + 1) std::printf("PgBouncer's log:\n%s\n", bouncer->Log().c_str());
    CHECK(listed == expected + 1);
  }

  // (b) No-op passes in the same process.
  std::printf("(b) no-op pass, same process (%d runs)\n", runs);
  std::vector<double> b_cpu;
  std::vector<double> b_wall;
  Cost b_pooler_last;
  for (int run = 0; run < runs; ++run) {
    const PublisherCounters counters = publisher->counters();
    before = Take(roots);
    Cost bindings = Time([&] { publish_all(*publisher); });
    middle = Take(roots);
    Cost pooler = Time([&] { flush(*publisher); });
    after = Take(roots);
    const Diff diff = Compare(before, after);
    Row(("run " + std::to_string(run + 1) + ": bindings step").c_str(), bindings,
        Compare(before, middle), CountersText(counters, publisher->counters()));
    Row(("run " + std::to_string(run + 1) + ": pooler step").c_str(), pooler,
        Compare(middle, after));
    // CHECK, not REQUIRE: the figures of every step are printed, and the bench still fails.
    CHECK_MESSAGE(diff.written == 0, "a no-op pass wrote " << diff.written << " files");
    CHECK(diff.removed == 0);
    CHECK(publisher->counters().bindings_written == counters.bindings_written);
    CHECK(publisher->counters().pooler_writes == counters.pooler_writes);
    b_cpu.push_back(bindings.cpu);
    b_wall.push_back(bindings.wall);
    b_pooler_last = pooler;
  }
  const Cost b_median{Median(b_wall), Median(b_cpu)};
  std::printf("  bindings step median: wall %.3f s, cpu %.3f s: goal < 0.2 s CPU %s\n",
              b_median.wall, b_median.cpu, b_median.cpu < 0.2 ? "met" : "MISSED");

  // (c) Cold no-op passes: a new publisher and pooler writer on the same folders.
  std::printf("(c) cold no-op pass: a new SharedTenants and PgBouncerFiles (3 runs)\n");
  for (int run = 0; run < 3; ++run) {
    files = std::make_unique<PgBouncerFiles>(pooler_dir, pooler_access, PoolerReload{pid_file, {}});
    publisher = make_publisher(*files);
    before = Take(roots);
    Cost bindings = Time([&] { publish_all(*publisher); });
    middle = Take(roots);
    Cost pooler = Time([&] { flush(*publisher); });
    after = Take(roots);
    const Diff diff = Compare(before, after);
    Row(("run " + std::to_string(run + 1) + ": bindings step (reads every folder)").c_str(),
        bindings, Compare(before, middle),
        "(counters: bindings_written " + std::to_string(publisher->counters().bindings_written) +
            ")");
    Row(("run " + std::to_string(run + 1) + ": pooler step (reads both files)").c_str(), pooler,
        Compare(middle, after),
        "(counters: pooler_writes " + std::to_string(publisher->counters().pooler_writes) + ")");
    CHECK_MESSAGE(diff.written == 0, "a cold no-op pass wrote " << diff.written << " files");
    CHECK(diff.removed == 0);
    CHECK(publisher->counters().bindings_written == 0);
    CHECK(publisher->counters().pooler_writes == 0);
  }

  // (d) One tenant's password changed.
  std::printf("(d) one tenant's password changed among %d\n", count);
  TenantFacts& changed = fleet[static_cast<std::size_t>(count / 2)];
  changed.password = Secret(crypto::Hex(crypto::RandomBytes(16)));
  changed.verifier = postgres::MakeScramVerifier(changed.password, crypto::RandomBytes(16), 4096);
  {
    const PublisherCounters counters = publisher->counters();
    before = Take(roots);
    Cost one = Time([&] {
      Outcome<bool> published = publisher->Publish(changed);
      REQUIRE_MESSAGE(published.ok(), published.failure().message);
    });
    const std::string counted = CountersText(counters, publisher->counters());
    middle = Take(roots);
    Cost pooler = Time([&] { flush(*publisher); });
    after = Take(roots);
    Row(("Publish of " + changed.workspace).c_str(), one, Compare(before, middle), counted);
    Row("pooler step: FlushPooler", pooler, Compare(middle, after));
    CHECK(Compare(before, middle).written == 11);
    CHECK(Compare(middle, after).written == 1);  // userlist.txt only
    // The same for 4 other tenants, one after the other (is the first one's time a first time?).
    std::string times;
    for (std::size_t k = 1; k <= 4; ++k) {
      TenantFacts& other = fleet[static_cast<std::size_t>(count / 2) + k];
      other.password = Secret(crypto::Hex(crypto::RandomBytes(16)));
      const Cost cost = Time([&] {
        Outcome<bool> published = publisher->Publish(other);
        REQUIRE_MESSAGE(published.ok(), published.failure().message);
        CHECK(*published);
      });
      char text[64];
      std::snprintf(text, sizeof text, " %.2f/%.2f", cost.wall * 1000, cost.cpu * 1000);
      times += text;
    }
    std::printf("  the next 4 password changes (other tenants), wall/cpu ms each:%s\n",
                times.c_str());
    // The whole pass with that one change: every tenant published again, then the flush.
    changed.password = Secret(crypto::Hex(crypto::RandomBytes(16)));
    changed.verifier = verifiers[0];
    before = Take(roots);
    Cost pass = Time([&] { publish_all(*publisher); });
    Cost pass_pooler = Time([&] { flush(*publisher); });
    after = Take(roots);
    Row("whole pass with one change: Publish x all + FlushPooler",
        {pass.wall + pass_pooler.wall, pass.cpu + pass_pooler.cpu}, Compare(before, after));
    CHECK(Compare(before, after).written == 12);  // the binding and userlist.txt
  }

  // (e) Baselines.
  std::printf("(e) baselines in the same run\n");
  const Cost naive_after = write_naive("naive write of the same files, after (d)");
  long walked = 0;
  const Cost walk = Time([&] { (void)Take(roots, &walked); });
  std::printf("  %-58s wall %8.3f s  cpu %8.3f s  entries stat'ed %ld\n",
              "find-like walk: readdir + fstatat of every entry", walk.wall, walk.cpu, walked);
  // ext4's inode allocator makes creating files cost more or less with the file system's recent
  // history (bench/README.md): the first write is compared with the naive writes on each side.
  const Cost naive_write{(naive_before.wall + naive_after.wall) / 2,
                         (naive_before.cpu + naive_after.cpu) / 2};
  std::printf("ratios: (a) first full write / naive write (mean of before and after): "
              "wall %.2f, cpu %.2f\n",
              a_total.wall / naive_write.wall, a_total.cpu / naive_write.cpu);
  std::printf("        (b) no-op bindings step (median) / find-like walk: wall %.2f, cpu %.2f\n",
              b_median.wall / walk.wall, b_median.cpu / walk.cpu);
  std::printf("        (b) pooler step of the last no-op run: wall %.6f s, cpu %.6f s\n",
              b_pooler_last.wall, b_pooler_last.cpu);
  if (bouncer) {
    std::printf("PgBouncer still running: %s\n", kill(bouncer->pid(), 0) == 0 ? "yes" : "NO");
    CHECK(kill(bouncer->pid(), 0) == 0);
  }
}
