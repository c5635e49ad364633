// Loading a product's migrations directory, and the pure pending/checksum logic.

#include "reconcilers/migrations/migrations.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "common/crypto.hpp"
#include "tests/support/temp_dir.hpp"

namespace tmaster::migrations {
namespace {

namespace fs = std::filesystem;

using tmaster::testing::TempDir;

Migration Mig(const std::string& file, const std::string& sql) {
  return {file.substr(0, 4), file, crypto::Sha256Hex(sql),
          std::make_shared<const std::string>(sql)};
}
AppliedMigration Applied(const Migration& m) { return {m.version, m.file, m.checksum}; }

std::vector<std::string> Files(const std::vector<Migration>& ms) {
  std::vector<std::string> out;
  for (const auto& m : ms) out.push_back(m.file);
  return out;
}

void CheckInvalid(const Outcome<std::vector<Migration>>& loaded, const std::string& mentions) {
  REQUIRE_FALSE(loaded.ok());
  CHECK(loaded.failure().kind == FailureKind::kStalled);
  CHECK(loaded.failure().reason == "InvalidMigrations");
  CAPTURE(loaded.failure().message);
  CHECK(loaded.failure().message.find(mentions) != std::string::npos);
}

TEST_CASE("LoadDirectory: sorted by version, other files ignored, checksums of the bytes") {
  TempDir dir;
  dir.Write("0010_invoices.sql", "create table invoices();\n");
  dir.Write("0002_orders.sql", "create table orders();\n");
  dir.Write("0001_init.sql", "create table t();\n");
  dir.Write("README.md", "# migrations\n");
  dir.Write(".keep", "");
  dir.Write("notes.txt", "0003_not_a_migration.sql\n");
  dir.Write("0003_backup.sql.orig", "junk");
  fs::create_directory(dir.path() / "old");
  dir.Write("old/0004_ignored.sql", "select 1;");

  const auto loaded = LoadDirectory(dir.path());
  REQUIRE(loaded.ok());
  CHECK(Files(*loaded) ==
        std::vector<std::string>{"0001_init.sql", "0002_orders.sql", "0010_invoices.sql"});
  CHECK((*loaded)[0].version == "0001");
  CHECK((*loaded)[2].version == "0010");
  // printf 'create table t();\n' | sha256sum
  CHECK((*loaded)[0].checksum ==
        "ed6b87ca382dffa55a524ca0a4b489c9c6f881c1fe83bc219c58aef32d438b68");
  REQUIRE((*loaded)[0].sql != nullptr);
  CHECK(*(*loaded)[0].sql == "create table t();\n");
  CHECK(*(*loaded)[1].sql == "create table orders();\n");
}

TEST_CASE("LoadDirectory: an empty file and an empty directory") {
  TempDir dir;
  auto loaded = LoadDirectory(dir.path());
  REQUIRE(loaded.ok());
  CHECK(loaded->empty());
  dir.Write("0001_empty.sql", "");
  loaded = LoadDirectory(dir.path());
  REQUIRE(loaded.ok());
  REQUIRE(loaded->size() == 1);
  // printf '' | sha256sum
  CHECK(loaded->front().checksum ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("LoadDirectory: descriptions of lower-case letters, digits and underscores") {
  TempDir dir;
  dir.Write("0005_add_2fa_codes.sql", "a");
  dir.Write("9999_z.sql", "b");
  dir.Write("0000_0.sql", "c");
  dir.Write("0006___.sql", "d");
  const auto loaded = LoadDirectory(dir.path());
  REQUIRE(loaded.ok());
  CHECK(Files(*loaded) == std::vector<std::string>{"0000_0.sql", "0005_add_2fa_codes.sql",
                                                   "0006___.sql", "9999_z.sql"});
  CHECK(loaded->back().version == "9999");
}

TEST_CASE("LoadDirectory: badly named .sql files are errors that name the file") {
  for (const std::string bad :
       {"1_init.sql", "00001_init.sql", "0001-init.sql", "0001_Init.sql", "0001_.sql",
        "0001_in it.sql", "init.sql", "0001_init.SQL.sql", "abcd_init.sql", "0001_init-2.sql",
        "0001init.sql", "0001_é.sql", "0001_init.sql.sql", "x0001_init.sql"}) {
    SUBCASE(bad.c_str()) {
      TempDir dir;
      dir.Write("0001_good.sql", "select 1;");
      dir.Write(bad, "select 2;");
      CheckInvalid(LoadDirectory(dir.path()), bad);
    }
  }
}

TEST_CASE("LoadDirectory: duplicate versions name both files") {
  TempDir dir;
  dir.Write("0001_init.sql", "a");
  dir.Write("0002_orders.sql", "b");
  dir.Write("0002_invoices.sql", "c");
  const auto loaded = LoadDirectory(dir.path());
  CheckInvalid(loaded, "0002_invoices.sql");
  CheckInvalid(loaded, "0002_orders.sql");
  CheckInvalid(loaded, "version 0002");
}

TEST_CASE("LoadDirectory: a missing directory") {
  TempDir dir;
  CheckInvalid(LoadDirectory(dir.path() / "nope"), (dir.path() / "nope").string());
  dir.Write("file", "x");
  CheckInvalid(LoadDirectory(dir.path() / "file"), "not a directory");
}

const std::vector<Migration>& Product() {
  static const std::vector<Migration> files = {Mig("0001_init.sql", "create table a();"),
                                               Mig("0002_orders.sql", "create table o();"),
                                               Mig("0003_invoices.sql", "create table i();")};
  return files;
}

TEST_CASE("Pending") {
  const auto& files = Product();

  SUBCASE("nothing applied: everything, in order") {
    const auto pending = Pending(files, {}, "tenant_acme");
    REQUIRE(pending.ok());
    CHECK(Files(*pending) ==
          std::vector<std::string>{"0001_init.sql", "0002_orders.sql", "0003_invoices.sql"});
  }
  SUBCASE("some applied: the rest") {
    const auto pending = Pending(files, {Applied(files[0]), Applied(files[1])}, "tenant_acme");
    REQUIRE(pending.ok());
    CHECK(Files(*pending) == std::vector<std::string>{"0003_invoices.sql"});
  }
  SUBCASE("applied in any order of records") {
    const auto pending = Pending(files, {Applied(files[1]), Applied(files[0])}, "tenant_acme");
    REQUIRE(pending.ok());
    CHECK(Files(*pending) == std::vector<std::string>{"0003_invoices.sql"});
  }
  SUBCASE("all applied: nothing") {
    const auto pending =
        Pending(files, {Applied(files[0]), Applied(files[1]), Applied(files[2])}, "tenant_acme");
    REQUIRE(pending.ok());
    CHECK(pending->empty());
  }
  SUBCASE("a renamed file with the same bytes is still applied") {
    AppliedMigration renamed = Applied(files[0]);
    renamed.file = "0001_initial.sql";
    const auto pending = Pending(files, {renamed}, "tenant_acme");
    REQUIRE(pending.ok());
    CHECK(pending->size() == 2);
  }
  SUBCASE("an applied file that changed: MigrationChecksumMismatch naming file and database") {
    AppliedMigration old = Applied(files[1]);
    old.checksum = crypto::Sha256Hex("create table orders(id int);");
    const auto pending = Pending(files, {Applied(files[0]), old}, "tenant_acme");
    REQUIRE_FALSE(pending.ok());
    CHECK(pending.failure().kind == FailureKind::kStalled);
    CHECK(pending.failure().reason == "MigrationChecksumMismatch");
    CHECK(pending.failure().message ==
          "migration 0002_orders.sql was applied to database \"tenant_acme\" with checksum " +
              old.checksum.substr(0, 12) + "… but the file now has " +
              files[1].checksum.substr(0, 12) + "…; restore the file or add a new migration");
  }
  SUBCASE("a recorded version the product no longer has: MigrationMissing") {
    const auto pending =
        Pending({files[0], files[1]}, {Applied(files[0]), Applied(files[2])}, "tenant_globex");
    REQUIRE_FALSE(pending.ok());
    CHECK(pending.failure().kind == FailureKind::kStalled);
    CHECK(pending.failure().reason == "MigrationMissing");
    CHECK(pending.failure().message.find("0003_invoices.sql") != std::string::npos);
    CHECK(pending.failure().message.find("\"tenant_globex\"") != std::string::npos);
  }
  SUBCASE("a new file numbered below an applied one: MigrationOutOfOrder") {
    const auto pending = Pending(files, {Applied(files[0]), Applied(files[2])}, "tenant_acme");
    REQUIRE_FALSE(pending.ok());
    CHECK(pending.failure().reason == "MigrationOutOfOrder");
    CHECK(pending.failure().message.find("0002_orders.sql") != std::string::npos);
    CHECK(pending.failure().message.find("\"tenant_acme\"") != std::string::npos);
  }
}

TEST_CASE("SetDigest: versions and checksums, nothing else") {
  const auto& files = Product();
  const std::string base = SetDigest(files);
  CHECK(base.size() == 16);
  CHECK(SetDigest(files) == base);
  CHECK(SetDigest({files[0], files[1]}) != base);
  CHECK(SetDigest({}) != base);
  auto changed = files;
  changed[2] = Mig("0003_invoices.sql", "create table i(id int);");
  CHECK(SetDigest(changed) != base);
  auto renumbered = files;
  renumbered[2].version = "0004";
  CHECK(SetDigest(renumbered) != base);
}

// Bytes this process has read through read(2) and friends so far (/proc/self/io `rchar`).
std::uintmax_t BytesRead() {
  std::ifstream io("/proc/self/io");
  std::string key;
  std::uintmax_t value = 0;
  while (io >> key >> value) {
    if (key == "rchar:") return value;
  }
  return 0;
}

TEST_CASE("LoadDirectory: a migration over the size limit is refused unread") {
  TempDir dir;
  dir.Write("fleet/migrations/0001_init.sql", "create table a();\n");
  const std::string marker = "CREATE TABLE big_marker_77 ();\n";
  std::string big;
  while (big.size() < 2U * 1024U * 1024U) big += marker;
  dir.Write("fleet/migrations/0002_big.sql", big);
  const std::uintmax_t before = BytesRead();
  const auto loaded =
      LoadDirectory(dir.path() / "fleet", "migrations", kDefaultMaxMigrationBytes);
  const std::uintmax_t read = BytesRead() - before;
  REQUIRE_FALSE(loaded);
  CHECK(loaded.failure().kind == FailureKind::kStalled);
  CHECK(loaded.failure().reason == "MigrationTooLarge");
  CHECK(loaded.failure().message ==
        "migration migrations/0002_big.sql is larger than the limit of 1048576 bytes "
        "(reconcile.maxMigrationSize); it was not read");
  CHECK(read < 64U * 1024U);  // not even partly read
  // The limit is the caller's: a larger one reads it.
  const auto allowed = LoadDirectory(dir.path() / "fleet", "migrations", 4U * 1024U * 1024U);
  REQUIRE(allowed);
  CHECK(allowed->size() == 2);
}

TEST_CASE("LoadDirectory: a symbolic link out of the source folder is refused, its target unread") {
  TempDir dir;
  const std::string key = "tm-key-5e1f0c2a9b";
  dir.Write("outside/master-key", key + "\n");
  dir.Write("fleet/migrations/x/0002_next.sql", "create table b();\n");
  dir.Write("fleet/common-sql/0001_base.sql", "create table a();\n");
  SUBCASE("absolute link") {
    fs::create_symlink(dir.path() / "outside/master-key", dir.path() / "fleet/migrations/x/0001_init.sql");
  }
  SUBCASE("relative link") {
    fs::create_symlink("../../../outside/master-key", dir.path() / "fleet/migrations/x/0001_init.sql");
  }
  const std::uintmax_t before = BytesRead();
  const auto loaded = LoadDirectory(dir.path() / "fleet", dir.path() / "fleet/migrations/x",
                                    kDefaultMaxMigrationBytes);
  const std::uintmax_t read = BytesRead() - before;
  REQUIRE_FALSE(loaded);
  CHECK(loaded.failure().reason == "InvalidMigrations");
  CHECK(loaded.failure().message ==
        "migration file migrations/x/0001_init.sql leaves the source folder (a symbolic link or "
        "'..' pointing outside it); it was not read");
  for (std::size_t i = 0; i + 4 <= key.size(); ++i) {
    CHECK(loaded.failure().message.find(key.substr(i, 4)) == std::string::npos);
  }
  CHECK(read < 4096U);
}

TEST_CASE("LoadDirectory: a symbolic link that stays inside the source folder is followed") {
  TempDir dir;
  dir.Write("fleet/common-sql/base.sql", "create table a();\n");
  dir.Mkdir("fleet/migrations/x");
  fs::create_symlink("../../common-sql/base.sql", dir.path() / "fleet/migrations/x/0001_init.sql");
  fs::create_symlink("../../common-sql", dir.path() / "fleet/migrations/x/0002_folder.sql");
  const auto loaded = LoadDirectory(dir.path() / "fleet", "migrations/x", kDefaultMaxMigrationBytes);
  REQUIRE(loaded);
  REQUIRE(loaded->size() == 1);  // a link to a folder is not a migration
  CHECK(*(*loaded)[0].sql == "create table a();\n");
}

TEST_CASE("LoadDirectory: the directory must be beneath the root") {
  TempDir dir;
  dir.Write("outside/0001_init.sql", "create table a();\n");
  dir.Mkdir("fleet");
  fs::create_symlink("../outside", dir.path() / "fleet/linked");
  CheckInvalid(LoadDirectory(dir.path() / "fleet", "../outside", kDefaultMaxMigrationBytes),
               "migrations directory ../outside is outside the source folder");
  CheckInvalid(LoadDirectory(dir.path() / "fleet", "linked", kDefaultMaxMigrationBytes),
               "migrations directory linked leaves the source folder");
}

TEST_CASE("LoadDirectory: transaction control refuses the product's migrations") {
  TempDir dir;
  dir.Write("0001_init.sql", "create table a();\n");
  dir.Write("0002_split.sql", "create table b();\n-- next\n\nCOMMIT;\ncreate table c();\n");
  const auto loaded = LoadDirectory(dir.path());
  REQUIRE_FALSE(loaded);
  CHECK(loaded.failure().kind == FailureKind::kStalled);
  CHECK(loaded.failure().reason == "MigrationInvalid");
  CHECK(loaded.failure().message ==
        "migration 0002_split.sql line 4, column 1: COMMIT controls the transaction, but a "
        "migration runs in one transaction with its ledger row; remove the transaction control");
  dir.Write("0002_split.sql", "create function f() returns void language plpgsql as $$\n"
                              "begin commit; end $$;\n");
  CHECK(LoadDirectory(dir.path()).ok());  // inside a dollar-quoted body it does not count
}

TEST_CASE("LoadDirectory: a quote or comment left open to the end of a file is refused") {
  TempDir dir;
  dir.Write("0001_init.sql", "create table a();\n/* the ledger row and COMMIT would land here\n");
  const auto loaded = LoadDirectory(dir.path());
  REQUIRE_FALSE(loaded);
  CHECK(loaded.failure().reason == "MigrationInvalid");
  CHECK(loaded.failure().message.find("0001_init.sql line 2, column 1: this comment is not closed") !=
        std::string::npos);
  dir.Write("0001_init.sql", "create table a();\n/* closed */ -- and a line comment at the end");
  CHECK(LoadDirectory(dir.path()).ok());
}

}  // namespace
}  // namespace tmaster::migrations
