// backup_bench: N tenant databases dumped through backups::Dump (reconcilers/backups/: snapshot,
// row counts, SHA-256, read back with pg_restore --list, fsync, rename; encrypted too) against a
// plain loop of `pg_dump --format=custom --file=...` over the same databases in the same run, one
// at a time, on a private PostgreSQL 15 (tests/support/pg_server.hpp). Each side runs twice,
// interleaved (plain, Dump, encrypted Dump, plain, ...); the best round of each is printed with
// the ratios. Run by hand: `BUILD/backup_bench`; TM_BACKUP_BENCH_DATABASES (default 20) and
// TM_BACKUP_BENCH_ROWS (default 50000 + half as many in a second table: a few MB each).

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "reconcilers/backups/backup_tools.hpp"
#include "reconcilers/backups/tool_process.hpp"
#include "tests/support/pg_server.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

using Clock = std::chrono::steady_clock;
using tmaster::Secret;
using tmaster::testing::Execute;
using tmaster::testing::PgServer;

int EnvOr(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::atoi(value) : fallback;
}

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

std::string Db(int i) { return "bench_tenant_" + std::to_string(i); }

bool PlainLoop(const std::string& pg_dump, int databases, const std::filesystem::path& folder) {
  PgServer& pg = PgServer::Shared();
  std::filesystem::create_directories(folder);
  for (int i = 0; i < databases; ++i) {
    tmaster::backups::ToolSpec spec;
    spec.argv = {pg_dump, "--format=custom", "--no-password",
                 "--file=" + (folder / (Db(i) + ".dump")).string(),
                 "--dbname=host=127.0.0.1 port=" + std::to_string(pg.port()) +
                     " user=postgres dbname=" + Db(i)};
    spec.env = {{"PATH", "/usr/bin:/bin"}, {"PGPASSWORD", pg.password()}};
    auto tool = tmaster::backups::Tool::Start(spec);
    if (!tool || tool->Wait() != 0) {
      std::fprintf(stderr, "pg_dump of %s failed\n", Db(i).c_str());
      return false;
    }
  }
  return true;
}

bool DumpLoop(int databases, const std::filesystem::path& folder, bool encrypt) {
  for (int i = 0; i < databases; ++i) {
    tmaster::backups::DumpRequest request;
    request.admin_dsn = Secret(PgServer::Shared().Dsn());
    request.database = Db(i);
    request.folder = folder.string();
    request.backup_id = Db(i);
    if (encrypt) request.master_key = Secret("bench-master-key-0123456789abcdef0123456789");
    auto dump = tmaster::backups::Dump(request);
    if (!dump) {
      std::fprintf(stderr, "Dump of %s failed: %s\n", Db(i).c_str(),
                   dump.failure().message.c_str());
      return false;
    }
  }
  return true;
}

}  // namespace

TEST_CASE("backup bench") {
  const int databases = EnvOr("TM_BACKUP_BENCH_DATABASES", 20);
  const long rows = EnvOr("TM_BACKUP_BENCH_ROWS", 50000);
  PgServer& pg = PgServer::Shared();
  Execute(pg.Dsn(), "CREATE DATABASE bench_seed");
  Execute(pg.Dsn("bench_seed"),
          "CREATE TABLE items (id bigserial PRIMARY KEY, name text, price numeric(10,2), "
          "  created timestamptz);"
          "INSERT INTO items (name, price, created) SELECT md5(g::text) || ' item ' || g, "
          "  g % 1000 / 7.0, now() - g * interval '1 minute' FROM generate_series(1, " +
              std::to_string(rows) + ") g;"
          "CREATE TABLE events AS SELECT g AS id, repeat('x', 20) AS payload "
          "  FROM generate_series(1, " + std::to_string(rows / 2) + ") g;");
  for (int i = 0; i < databases; ++i) {
    Execute(pg.Dsn(), "CREATE DATABASE " + Db(i) + " TEMPLATE bench_seed");
  }
  const std::string size = tmaster::testing::QueryValue(
      pg.Dsn(), "SELECT pg_size_pretty(pg_database_size('bench_seed'))");
  const auto tools = tmaster::backups::FindPostgresTools();
  REQUIRE(tools.ok());
  std::printf("backup_bench: %d databases of %s (%ld + %ld rows), one at a time, %s\n", databases,
              size.c_str(), rows, rows / 2, tools->pg_dump.c_str());

  tmaster::testing::TempDir dir;
  double best_plain = 1e9;
  double best_dump = 1e9;
  double best_encrypted = 1e9;
  for (int round = 0; round < 2; ++round) {
    const auto folder = dir.path() / ("round" + std::to_string(round));
    Clock::time_point start = Clock::now();
    if (!PlainLoop(tools->pg_dump, databases, folder / "plain")) FAIL("see above");
    best_plain = std::min(best_plain, Seconds(Clock::now() - start));
    start = Clock::now();
    if (!DumpLoop(databases, folder / "dump", false)) FAIL("see above");
    best_dump = std::min(best_dump, Seconds(Clock::now() - start));
    start = Clock::now();
    if (!DumpLoop(databases, folder / "enc", true)) FAIL("see above");
    best_encrypted = std::min(best_encrypted, Seconds(Clock::now() - start));
    std::filesystem::remove_all(folder);
  }
  std::printf("plain pg_dump loop:   %8.2f s (%.0f ms per database)\n", best_plain,
              1000 * best_plain / databases);
  std::printf("Dump:                 %8.2f s (%.0f ms per database), %.2fx the loop\n", best_dump,
              1000 * best_dump / databases, best_dump / best_plain);
  std::printf("Dump, encrypted:      %8.2f s (%.0f ms per database), %.2fx the loop\n",
              best_encrypted, 1000 * best_encrypted / databases, best_encrypted / best_plain);
}
