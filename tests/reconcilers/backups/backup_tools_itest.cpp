// The backup engine (reconcilers/backups/backup_tools.hpp) against a real PostgreSQL 15 and
// Debian's pg_dump and pg_restore: a dump restores to identical rows (per-table checksums), into
// the same database or another (`--into`), encrypted or not; a damaged file is refused by its
// checksum before the database is touched; a pg_dump killed midway, or an output pg_restore
// cannot read, leaves no file; a wrong password fails naming the step and never the password,
// which never reaches the tools' argv either; verification by restore passes on a good dump,
// names a table whose count differs, and drops its scratch database; a dump and a restore beside
// another session (an idle one, one holding a lock: a failure after the lock timeout, no hang). Each TEST_CASE has its own databases and roles.

#include <doctest/doctest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "common/crypto.hpp"
#include "reconcilers/backups/encrypted_format.hpp"
#include "reconcilers/backups/backup_tools.hpp"
#include "tests/support/pg_server.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

namespace tmaster {
namespace {

using backups::DumpRequest;
using backups::RestoreRequest;
using backups::VerifyRequest;
using testing::Execute;
using testing::PgServer;
using testing::PgSession;
using testing::ProcessResult;
using testing::RunProcess;
using testing::QueryValue;
using testing::TempDir;

const Secret kMasterKey("itest-backup-master-key-not-a-real-one-0123456789");

// A tenant database with data: two tables (2,000 and 3,000 rows, a foreign key, an identity
// column), a sequence that moved, a view, owned by `role` (whose password is `tenant-pw`).
void MakeTenant(const std::string& database, const std::string& role) {
  PgServer& pg = PgServer::Shared();
  // doctest runs a TEST_CASE once per SUBCASE: start from nothing each time.
  Execute(pg.Dsn(), "DROP DATABASE IF EXISTS " + database + " WITH (FORCE)");
  Execute(pg.Dsn(), "DROP ROLE IF EXISTS " + role);
  Execute(pg.Dsn(), "CREATE ROLE " + role + " LOGIN PASSWORD 'tenant-pw'");
  Execute(pg.Dsn(), "CREATE DATABASE " + database + " OWNER " + role);
  Execute(pg.Dsn(database),
          "SET ROLE " + role + ";"
          "CREATE TABLE customers (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text, "
          "  joined date);"
          "INSERT INTO customers (name, joined) SELECT 'customer ' || g, "
          "  date '2020-01-01' + g FROM generate_series(1, 2000) g;"
          "CREATE TABLE orders (id bigserial PRIMARY KEY, customer int REFERENCES customers, "
          "  total numeric(10,2), note text);"
          "INSERT INTO orders (customer, total, note) SELECT 1 + g % 2000, g * 1.25, "
          "  CASE WHEN g % 7 = 0 THEN NULL ELSE 'it''s \"order\" ' || g END "
          "  FROM generate_series(1, 3000) g;"
          "CREATE SEQUENCE invoice_numbers START 1000;"
          "SELECT nextval('invoice_numbers') FROM generate_series(1, 42);"
          "CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 3000;");
}

std::string TableChecksum(const std::string& database, const std::string& table) {
  return QueryValue(PgServer::Shared().Dsn(database),
                    "SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) FROM " +
                        table + " t");
}

// Each table's and the view's checksum, and the sequence's position.
std::map<std::string, std::string> Fingerprint(const std::string& database) {
  std::map<std::string, std::string> out;
  for (const char* table : {"customers", "orders", "big_orders"}) {
    out[table] = TableChecksum(database, table);
  }
  out["invoice_numbers"] =
      QueryValue(PgServer::Shared().Dsn(database), "SELECT last_value FROM invoice_numbers");
  return out;
}

DumpRequest Request(const std::string& database, const std::filesystem::path& folder,
                    const std::string& id) {
  DumpRequest request;
  request.admin_dsn = Secret(PgServer::Shared().Dsn());
  request.database = database;
  request.folder = folder.string();
  request.backup_id = id;
  return request;
}

RestoreRequest RestoreOf(const backups::DumpResult& dump, const std::string& id,
                         const std::string& target, const std::string& role) {
  RestoreRequest request;
  request.admin_dsn = Secret(PgServer::Shared().Dsn());
  request.file = dump.path;
  request.expected_sha256 = dump.sha256;
  request.backup_id = id;
  request.target_database = target;
  request.role = role;
  return request;
}

VerifyRequest VerifyOf(const backups::DumpResult& dump, const std::string& id) {
  VerifyRequest verify;
  verify.admin_dsn = Secret(PgServer::Shared().Dsn());
  verify.file = dump.path;
  verify.expected_sha256 = dump.sha256;
  verify.backup_id = id;
  verify.expected_rows = dump.table_rows;
  return verify;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

unsigned Mode(const std::string& path) {
  struct stat info {};
  REQUIRE(stat(path.c_str(), &info) == 0);
  return info.st_mode & 07777U;
}

std::vector<std::string> FilesIn(const std::filesystem::path& folder) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(folder)) {
    names.push_back(entry.path().filename().string());
  }
  return names;
}

long ScratchDatabases() {
  return std::stol(QueryValue(PgServer::Shared().Dsn(),
                              "SELECT count(*) FROM pg_database WHERE datname LIKE 'tm\\_verify\\_%'"));
}

long RestoreLogins() {
  return std::stol(QueryValue(PgServer::Shared().Dsn(),
                              "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'tm\\_restore\\_%'"));
}

// An executable script at `path`.
std::string Script(const TempDir& dir, const std::string& name, const std::string& body) {
  const std::string path = dir.Write(name, "#!/bin/sh\n" + body).string();
  chmod(path.c_str(), 0700);
  return path;
}

std::string RealPgDump() { return backups::FindPostgresTools()->pg_dump; }

TEST_CASE("a dump restores to identical rows, in place and into another database (--into)") {
  MakeTenant("bk_round", "bk_round_owner");
  const auto before = Fingerprint("bk_round");
  TempDir dir;
  const auto folder = dir.path() / "acme";

  auto dump = backups::Dump(Request("bk_round", folder, "acme-1"));
  REQUIRE_MESSAGE(dump.ok(), dump.failure().message);
  CHECK(dump->path == (folder / "acme-1.dump").string());
  CHECK(FilesIn(folder) == std::vector<std::string>{"acme-1.dump"});
  CHECK(Mode(folder.string()) == 0700U);
  CHECK(Mode(dump->path) == 0600U);
  const std::string bytes = ReadFile(dump->path);
  CHECK(bytes.substr(0, 5) == "PGDMP");
  CHECK(dump->size == bytes.size());
  CHECK(dump->sha256 == crypto::Sha256Hex(bytes));
  CHECK(dump->server_version.substr(0, 3) == "15.");
  CHECK(dump->tool_version.find("pg_dump (PostgreSQL) 15.") == 0);
  CHECK(dump->key_id.empty());
  CHECK(dump->table_rows ==
        backups::TableRows{{"public.customers", 2000}, {"public.orders", 3000}});
  CHECK(dump->table_rows_json == R"({"public.customers":2000,"public.orders":3000})");
  auto parsed = backups::ParseTableRowsJson(dump->table_rows_json);
  REQUIRE(parsed.ok());
  CHECK(*parsed == dump->table_rows);

  // Damage done after the dump, then undone by the restore.
  Execute(PgServer::Shared().Dsn("bk_round"),
          "DELETE FROM orders WHERE id % 3 = 0; UPDATE customers SET name = 'x';"
          "DROP VIEW big_orders; SELECT nextval('invoice_numbers');");
  // What the tenant created after the dump (a migration's objects, say) is gone after the
  // restore: the database holds the backup's objects, not those plus the newer ones.
  Execute(PgServer::Shared().Dsn("bk_round"),
          "SET ROLE bk_round_owner;"
          "CREATE TABLE stray (id int REFERENCES customers);"
          "CREATE SCHEMA reports; CREATE TABLE reports.daily (d date);"
          "CREATE TYPE mood AS ENUM ('ok'); CREATE DOMAIN positive AS int CHECK (VALUE > 0);"
          "CREATE FUNCTION stray_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM stray';"
          "CREATE SEQUENCE stray_numbers; CREATE VIEW stray_view AS SELECT * FROM stray");
  CHECK(TableChecksum("bk_round", "orders") != before.at("orders"));
  auto restored = backups::Restore(RestoreOf(*dump, "acme-1", "bk_round", "bk_round_owner"));
  REQUIRE_MESSAGE(restored.ok(), restored.failure().message);
  CHECK(Fingerprint("bk_round") == before);
  CHECK(QueryValue(PgServer::Shared().Dsn("bk_round"),
                   "SELECT count(*) FROM pg_class WHERE relname IN ('stray', 'stray_numbers', "
                   "'stray_view', 'daily')") == "0");
  CHECK(QueryValue(PgServer::Shared().Dsn("bk_round"),
                   "SELECT count(*) FROM pg_namespace WHERE nspname = 'reports'") == "0");
  CHECK(QueryValue(PgServer::Shared().Dsn("bk_round"),
                   "SELECT count(*) FROM pg_type WHERE typname IN ('mood', 'positive')") == "0");
  CHECK(QueryValue(PgServer::Shared().Dsn("bk_round"),
                   "SELECT count(*) FROM pg_proc WHERE proname = 'stray_count'") == "0");
  CHECK(QueryValue(PgServer::Shared().Dsn("bk_round"),
                   "SELECT tableowner FROM pg_tables WHERE tablename = 'orders'") ==
        "bk_round_owner");

  // --into: another tenant's database, objects owned by its role.
  Execute(PgServer::Shared().Dsn(), "CREATE ROLE bk_copy_owner LOGIN");
  Execute(PgServer::Shared().Dsn(), "CREATE DATABASE bk_copy OWNER bk_copy_owner");
  auto copied = backups::Restore(RestoreOf(*dump, "acme-1", "bk_copy", "bk_copy_owner"));
  REQUIRE_MESSAGE(copied.ok(), copied.failure().message);
  CHECK(Fingerprint("bk_copy") == before);
  CHECK(QueryValue(PgServer::Shared().Dsn("bk_copy"),
                   "SELECT string_agg(DISTINCT tableowner, ',') FROM pg_tables "
                   "WHERE schemaname = 'public'") == "bk_copy_owner");
}

TEST_CASE("an encrypted dump round-trips; a flipped byte is refused before the database is touched") {
  MakeTenant("bk_enc", "bk_enc_owner");
  const auto before = Fingerprint("bk_enc");
  TempDir dir;
  auto request = Request("bk_enc", dir.path() / "enc", "enc-1");
  request.master_key = kMasterKey;
  auto dump = backups::Dump(request);
  REQUIRE_MESSAGE(dump.ok(), dump.failure().message);
  CHECK(dump->path == (dir.path() / "enc" / "enc-1.dump.enc").string());
  std::string bytes = ReadFile(dump->path);
  CHECK(bytes.substr(0, 8) == "TMBACKUP");
  CHECK(bytes.find("customer 1") == std::string::npos);
  CHECK(dump->sha256 == crypto::Sha256Hex(bytes));
  CHECK(dump->key_id == backups::BackupKeyId(kMasterKey));
  CHECK(dump->table_rows.at("public.orders") == 3000);

  Execute(PgServer::Shared().Dsn("bk_enc"), "TRUNCATE orders; CREATE TABLE marker (id int)");
  const auto damaged = Fingerprint("bk_enc");
  auto restore = RestoreOf(*dump, "enc-1", "bk_enc", "bk_enc_owner");
  restore.master_key = kMasterKey;

  SUBCASE("restored") {
    auto restored = backups::Restore(restore);
    REQUIRE_MESSAGE(restored.ok(), restored.failure().message);
    CHECK(Fingerprint("bk_enc") == before);
  }
  SUBCASE("a flipped byte: the checksum refuses it, nothing touched") {
    bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x01);
    std::ofstream(dump->path, std::ios::binary | std::ios::trunc) << bytes;
    testing::ResetStatementStats(PgServer::Shared().Dsn());
    auto restored = backups::Restore(restore);
    REQUIRE_FALSE(restored.ok());
    CHECK(restored.failure().kind == FailureKind::kStalled);
    CHECK(restored.failure().reason == "BackupChecksumMismatch");
    CHECK(restored.failure().message.find(dump->path) != std::string::npos);
    CHECK(Fingerprint("bk_enc") == damaged);
    CHECK(QueryValue(PgServer::Shared().Dsn("bk_enc"), "SELECT to_regclass('marker')::text") ==
          "marker");

    SUBCASE("and with the damaged file's own checksum, decryption fails in one transaction") {
      restore.expected_sha256 = crypto::Sha256Hex(bytes);
      auto again = backups::Restore(restore);
      REQUIRE_FALSE(again.ok());
      CHECK(again.failure().reason == "BackupDecryptFailed");
      CHECK(Fingerprint("bk_enc") == damaged);
    }
  }
}

TEST_CASE("an encrypted dump larger than a pipe reads back although pg_restore --list stops early") {
  MakeTenant("bk_big", "bk_big_owner");
  // About 1.3 MB of md5 text: compressed, still far more than a pipe's 64 KiB, so pg_restore
  // --list closes its input while the file is still being fed.
  Execute(PgServer::Shared().Dsn("bk_big"),
          "CREATE TABLE blob AS SELECT g AS id, md5(random()::text) AS a, md5(random()::text) AS b "
          "FROM generate_series(1, 20000) g");
  TempDir dir;
  auto request = Request("bk_big", dir.path() / "big", "big-1");
  request.master_key = kMasterKey;
  auto dump = backups::Dump(request);
  REQUIRE_MESSAGE(dump.ok(), dump.failure().message);
  CHECK(dump->size > 512U * 1024U);
  CHECK(dump->table_rows.at("public.blob") == 20000);
  const std::string blob = TableChecksum("bk_big", "blob");
  Execute(PgServer::Shared().Dsn("bk_big"), "DELETE FROM blob WHERE id % 2 = 0");
  auto restore = RestoreOf(*dump, "big-1", "bk_big", "bk_big_owner");
  restore.master_key = kMasterKey;
  auto restored = backups::Restore(restore);
  REQUIRE_MESSAGE(restored.ok(), restored.failure().message);
  CHECK(TableChecksum("bk_big", "blob") == blob);
}

TEST_CASE("a pg_dump killed midway, or an output pg_restore cannot read, leaves no file") {
  MakeTenant("bk_kill", "bk_kill_owner");
  TempDir dir;
  const std::string real = RealPgDump();
  auto request = Request("bk_kill", dir.path() / "kill", "kill-1");

  SUBCASE("killed by a signal after some output") {
    request.tools.pg_dump = Script(dir, "killed_pg_dump",
                                   "[ \"$1\" = --version ] && exec " + real + " --version\n" +
                                       real + " \"$@\" | head -c 3000\nkill -KILL $$\n");
    auto dump = backups::Dump(request);
    REQUIRE_FALSE(dump.ok());
    CHECK(dump.failure().reason == "BackupDumpFailed");
    CHECK(dump.failure().message.find("pg_dump failed for database bk_kill") == 0);
    CHECK(dump.failure().message.find("killed by signal 9") != std::string::npos);
  }
  SUBCASE("exit status 0 with a truncated file: the read back refuses it") {
    request.tools.pg_dump = Script(dir, "short_pg_dump",
                                   "[ \"$1\" = --version ] && exec " + real + " --version\n" +
                                       real + " \"$@\" | head -c 3000\nexit 0\n");
    auto dump = backups::Dump(request);
    REQUIRE_FALSE(dump.ok());
    CHECK(dump.failure().message.find("read back (pg_restore --list) failed") == 0);
    CHECK(dump.failure().message.find("pg_restore exited with status 1") != std::string::npos);
  }
  CHECK(FilesIn(dir.path() / "kill").empty());
}

TEST_CASE("a dump behind another session's lock fails after lock_timeout, leaving no file") {
  MakeTenant("bk_lock", "bk_lock_owner");
  TempDir dir;
  auto request = Request("bk_lock", dir.path() / "lock", "lock-1");
  request.lock_timeout = std::chrono::milliseconds(500);
  PgSession other(PgServer::Shared().DsnAs("bk_lock_owner", "tenant-pw", "bk_lock"));
  REQUIRE(other.Run("BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE").empty());
  auto dump = backups::Dump(request);
  REQUIRE_FALSE(dump.ok());
  CHECK(dump.failure().message.find("count rows of database bk_lock: ") == 0);
  CHECK(dump.failure().message.find("lock timeout") != std::string::npos);
  CHECK(FilesIn(dir.path() / "lock").empty());
  CHECK(other.Run("COMMIT").empty());
}

TEST_CASE("a wrong password fails naming the step, never the password, which no argv carries") {
  MakeTenant("bk_pw", "bk_pw_owner");
  PgServer& pg = PgServer::Shared();
  TempDir dir;
  auto request = Request("bk_pw", dir.path() / "pw", "pw-1");

  SUBCASE("wrong password") {
    request.admin_dsn = Secret(pg.DsnAs("postgres", "wrong-Passw0rd-zz9", "postgres"));
    auto dump = backups::Dump(request);
    REQUIRE_FALSE(dump.ok());
    CHECK(dump.failure().reason == "AuthenticationFailed");
    CHECK(dump.failure().message.find("connect: ") == 0);
    CHECK(dump.failure().message.find("wrong-Passw0rd-zz9") == std::string::npos);
    CHECK(FilesIn(dir.path() / "pw").empty());
  }
  SUBCASE("the right password reaches pg_dump through a 0600 file, removed after") {
    const std::string log = (dir.path() / "argv.log").string();
    request.tools.pg_dump =
        Script(dir, "logging_pg_dump",
               "for a in \"$@\"; do echo \"$a\" >> " + log + "; done\nenv >> " + log + "\n" +
                   "for a in \"$@\"; do case \"$a\" in *passfile=*) f=${a#*passfile=\\'}; "
                   "f=${f%%\\'*}; stat -c %a \"$f\" >> " + log + "; "
                   "stat -c %a \"$(dirname \"$f\")\" >> " + log + ";; esac; done\n"
                   "exec " + RealPgDump() + " \"$@\"\n");
    auto dump = backups::Dump(request);
    REQUIRE_MESSAGE(dump.ok(), dump.failure().message);
    const std::string logged = ReadFile(log);
    CHECK(logged.find("--snapshot=") != std::string::npos);
    CHECK(logged.find(pg.password()) == std::string::npos);
    CHECK(logged.find("\n600\n700\n") != std::string::npos);
    const auto at = logged.find("passfile='");
    REQUIRE(at != std::string::npos);
    const std::string passfile = logged.substr(at + 10, logged.find('\'', at + 10) - at - 10);
    CHECK_FALSE(std::filesystem::exists(passfile));
    CHECK_FALSE(std::filesystem::exists(std::filesystem::path(passfile).parent_path()));
  }
}

TEST_CASE("verify by restore: a good dump passes, a tampered count is named, no scratch left") {
  MakeTenant("bk_verify", "bk_verify_owner");
  TempDir dir;
  auto request = Request("bk_verify", dir.path() / "v", "v-1");
  request.master_key = kMasterKey;
  auto dump = backups::Dump(request);
  REQUIRE_MESSAGE(dump.ok(), dump.failure().message);
  VerifyRequest verify = VerifyOf(*dump, "v-1");
  verify.master_key = kMasterKey;

  SUBCASE("good") {
    auto verified = backups::VerifyByRestore(verify);
    REQUIRE_MESSAGE(verified.ok(), verified.failure().message);
    CHECK(verified->restored_rows == dump->table_rows);
    CHECK(verified->scratch_database.find("tm_verify_") == 0);
  }
  SUBCASE("tampered count") {
    verify.expected_rows["public.orders"] = 3001;
    auto verified = backups::VerifyByRestore(verify);
    REQUIRE_FALSE(verified.ok());
    CHECK(verified.failure().reason == "BackupVerifyFailed");
    CHECK(verified.failure().message.find(
              "public.orders: 3001 rows at dump time, 3000 after restore") != std::string::npos);
    CHECK(verified.failure().message.find("public.customers") == std::string::npos);
  }
  SUBCASE("a damaged file") {
    verify.expected_sha256 = std::string(64, '0');
    auto verified = backups::VerifyByRestore(verify);
    REQUIRE_FALSE(verified.ok());
    CHECK(verified.failure().reason == "BackupChecksumMismatch");
  }
  CHECK(ScratchDatabases() == 0);
}

// A tenant database as the reconciler leaves it: the migrations ledger in schema tenant_master
// and an extension in schema extensions, both the admin's; the tenant may add ledger rows.
void MakeOperatorPart(const std::string& database, const std::string& role) {
  const std::string dsn = PgServer::Shared().Dsn(database);
  Execute(dsn,
          "CREATE SCHEMA tenant_master;"
          "CREATE TABLE tenant_master.schema_migrations (version text PRIMARY KEY, "
          "  file text NOT NULL, checksum text NOT NULL, "
          "  applied_at timestamptz NOT NULL DEFAULT now(), duration_ms integer);"
          "GRANT USAGE ON SCHEMA tenant_master TO " + role + ";"
          "GRANT SELECT, INSERT ON tenant_master.schema_migrations TO " + role + ";"
          "INSERT INTO tenant_master.schema_migrations (version, file, checksum, duration_ms) "
          "  VALUES ('0001', '0001_init.sql', 'aa', 12), ('0002', '0002 tab\tname.sql', 'bb', NULL);"
          "CREATE SCHEMA extensions; GRANT USAGE ON SCHEMA extensions TO " + role + ";"
          "CREATE EXTENSION pgcrypto WITH SCHEMA extensions;"
          "SET ROLE " + role + ";"
          "CREATE TABLE hashed (id int PRIMARY KEY, digest bytea);"
          "INSERT INTO hashed SELECT g, extensions.digest(g::text, 'sha256') "
          "  FROM generate_series(1, 50) g;");
}

std::string Ledger(const std::string& database) {
  return QueryValue(PgServer::Shared().Dsn(database),
                    "SELECT string_agg(version || '|' || file || '|' || checksum || '|' || "
                    "coalesce(duration_ms::text, 'null'), ';' ORDER BY version) "
                    "FROM tenant_master.schema_migrations");
}

TEST_CASE("a restore puts back the admin's ledger rows and extensions without running the "
          "backup's SQL as the admin") {
  MakeTenant("bk_ledger", "bk_ledger_owner");
  MakeOperatorPart("bk_ledger", "bk_ledger_owner");
  const std::string admin_dsn = PgServer::Shared().Dsn("bk_ledger");
  // The tenant's trap: a CHECK constraint whose function, run while a restore copies the rows
  // in, leaves the role it was given (RESET ROLE) and makes its role a superuser. In its own
  // session it can only fail.
  // Planted by the tenant itself, logged in as its role (an admin session with SET ROLE would
  // spring the trap here).
  Execute(PgServer::Shared().DsnAs("bk_ledger_owner", "tenant-pw", "bk_ledger"),
          "CREATE FUNCTION public.trap(int) RETURNS boolean LANGUAGE plpgsql AS $f$ BEGIN "
          "  BEGIN RESET ROLE; EXECUTE 'ALTER ROLE bk_ledger_owner SUPERUSER'; "
          "  EXCEPTION WHEN others THEN NULL; END; RETURN true; END $f$;"
          "CREATE TABLE trapped (x int CHECK (public.trap(x)));"
          "INSERT INTO trapped VALUES (1), (2);");
  REQUIRE(QueryValue(admin_dsn, "SELECT rolsuper FROM pg_roles WHERE rolname = 'bk_ledger_owner'") ==
          "f");
  const std::string before_hashed = TableChecksum("bk_ledger", "hashed");
  TempDir dir;
  auto request = Request("bk_ledger", dir.path() / "l", "l-1");
  request.master_key = kMasterKey;
  auto dump = backups::Dump(request);
  REQUIRE_MESSAGE(dump.ok(), dump.failure().message);
  CHECK(dump->table_rows.at("tenant_master.schema_migrations") == 2);

  // After the backup: a migration recorded, data changed.
  Execute(admin_dsn,
          "INSERT INTO tenant_master.schema_migrations (version, file, checksum) "
          "VALUES ('0003', '0003_more.sql', 'cc'); DELETE FROM hashed WHERE id > 10");
  auto restore = RestoreOf(*dump, "l-1", "bk_ledger", "bk_ledger_owner");
  restore.master_key = kMasterKey;
  auto restored = backups::Restore(restore);
  REQUIRE_MESSAGE(restored.ok(), restored.failure().message);

  CHECK(Ledger("bk_ledger") == "0001|0001_init.sql|aa|12;0002|0002 tab\tname.sql|bb|null");
  CHECK(TableChecksum("bk_ledger", "hashed") == before_hashed);
  CHECK(QueryValue(admin_dsn, "SELECT count(*) FROM trapped") == "2");
  // The operator's part is still the operator's; the tenant's role gained nothing.
  const std::string admin = QueryValue(admin_dsn, "SELECT current_user");
  CHECK(QueryValue(admin_dsn, "SELECT nspowner::regrole::text FROM pg_namespace "
                              "WHERE nspname = 'tenant_master'") == admin);
  CHECK(QueryValue(admin_dsn, "SELECT tableowner FROM pg_tables "
                              "WHERE schemaname = 'tenant_master'") == admin);
  CHECK(QueryValue(admin_dsn, "SELECT extowner::regrole::text || '@' || extnamespace::regnamespace "
                              "FROM pg_extension WHERE extname = 'pgcrypto'") == admin + "@extensions");
  CHECK(QueryValue(admin_dsn, "SELECT rolsuper FROM pg_roles WHERE rolname = 'bk_ledger_owner'") ==
        "f");
  CHECK(QueryValue(admin_dsn, "SELECT tableowner FROM pg_tables WHERE tablename = 'trapped'") ==
        "bk_ledger_owner");
  CHECK(RestoreLogins() == 0);

  // The same file verified in a scratch database: the ledger's rows counted, the trap harmless,
  // extensions created there by name.
  VerifyRequest verify = VerifyOf(*dump, "l-1");
  verify.master_key = kMasterKey;
  auto verified = backups::VerifyByRestore(verify);
  REQUIRE_MESSAGE(verified.ok(), verified.failure().message);
  CHECK(verified->restored_rows == dump->table_rows);
  CHECK(QueryValue(admin_dsn, "SELECT rolsuper FROM pg_roles WHERE rolname = 'bk_ledger_owner'") ==
        "f");
  CHECK(ScratchDatabases() == 0);
  CHECK(RestoreLogins() == 0);

  // Into a database with no ledger yet: refused, nothing changed.
  Execute(PgServer::Shared().Dsn(), "DROP DATABASE IF EXISTS bk_ledger_new WITH (FORCE)");
  Execute(PgServer::Shared().Dsn(), "CREATE DATABASE bk_ledger_new OWNER bk_ledger_owner");
  auto into = RestoreOf(*dump, "l-1", "bk_ledger_new", "bk_ledger_owner");
  into.master_key = kMasterKey;
  auto refused = backups::Restore(into);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.failure().message.find("no migrations ledger") != std::string::npos);
  CHECK(QueryValue(PgServer::Shared().Dsn("bk_ledger_new"),
                   "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "0");
  CHECK(RestoreLogins() == 0);
}

TEST_CASE("a restore that fails rolls back the ledger with the tenant's objects") {
  MakeTenant("bk_ledger_fail", "bk_ledger_fail_owner");
  MakeOperatorPart("bk_ledger_fail", "bk_ledger_fail_owner");
  TempDir dir;
  auto dump = backups::Dump(Request("bk_ledger_fail", dir.path() / "f", "f-1"));
  REQUIRE_MESSAGE(dump.ok(), dump.failure().message);
  const std::string admin_dsn = PgServer::Shared().Dsn("bk_ledger_fail");
  Execute(admin_dsn, "INSERT INTO tenant_master.schema_migrations (version, file, checksum) "
                     "VALUES ('0003', '0003_more.sql', 'cc')");
  // A table the tenant cannot drop (someone else's, in its schema): the restore's --clean fails.
  Execute(admin_dsn, "CREATE TABLE public.customers_copy (id int);"
                     "DROP VIEW big_orders; CREATE TABLE big_orders (id int)");
  const std::string ledger_before = Ledger("bk_ledger_fail");
  auto restored = backups::Restore(RestoreOf(*dump, "f-1", "bk_ledger_fail", "bk_ledger_fail_owner"));
  REQUIRE_FALSE(restored.ok());
  CHECK(restored.failure().reason == "BackupRestoreFailed");
  CHECK(Ledger("bk_ledger_fail") == ledger_before);
  CHECK(ledger_before.find("0003") != std::string::npos);
  CHECK(RestoreLogins() == 0);
}

TEST_CASE("restore beside another session: an idle one is no obstacle, a lock holder times out") {
  MakeTenant("bk_busy", "bk_busy_owner");
  const auto before = Fingerprint("bk_busy");
  TempDir dir;
  auto dump = backups::Dump(Request("bk_busy", dir.path() / "b", "b-1"));
  REQUIRE_MESSAGE(dump.ok(), dump.failure().message);
  Execute(PgServer::Shared().Dsn("bk_busy"), "DELETE FROM orders WHERE id < 100");
  const auto damaged = Fingerprint("bk_busy");
  PgSession other(PgServer::Shared().DsnAs("bk_busy_owner", "tenant-pw", "bk_busy"));
  auto restore = RestoreOf(*dump, "b-1", "bk_busy", "bk_busy_owner");

  SUBCASE("idle") {
    REQUIRE(other.Run("SELECT count(*) FROM orders").empty());
    auto restored = backups::Restore(restore);
    REQUIRE_MESSAGE(restored.ok(), restored.failure().message);
    CHECK(Fingerprint("bk_busy") == before);
  }
  SUBCASE("idle in a transaction that read a table") {
    REQUIRE(other.Run("BEGIN; SELECT count(*) FROM orders").empty());
    restore.lock_timeout = std::chrono::milliseconds(500);
    auto restored = backups::Restore(restore);
    REQUIRE_FALSE(restored.ok());
    CHECK(restored.failure().reason == "BackupRestoreLockTimeout");
    CHECK(restored.failure().message.find("restore into database bk_busy failed: it waited more "
                                          "than 500 ms for a lock held by pid ") == 0);
    CHECK(restored.failure().message.find("(bk_busy_owner, idle in transaction)") !=
          std::string::npos);
    CHECK(other.Run("COMMIT").empty());
    CHECK(Fingerprint("bk_busy") == damaged);
  }
}

// Crash leftovers (docs/backups.md#the-engine): a process killed in the middle of Dump leaves
// its private folder (the 0600 password file) and the `.<id>.partial` file; a verification
// killed midway leaves its scratch database. The leader removes them at the start of its term.
TEST_CASE("a process killed mid-dump leaves its work folder and partial file; both are removed") {
  MakeTenant("bk_crash", "bk_crash_owner");
  TempDir dir;
  const std::filesystem::path tmp = dir.path() / "tmp";
  const std::filesystem::path backups_dir = dir.path() / "backups";
  std::filesystem::create_directories(tmp);
  const std::string marker = (dir.path() / "tool.pid").string();
  const std::string real = RealPgDump();
  auto request = Request("bk_crash", backups_dir / "acme", "crash-1");
  // Part of a real dump into the partial file, then "running" until killed.
  request.tools.pg_dump = Script(dir, "hanging_pg_dump",
                                 "[ \"$1\" = --version ] && exec " + real + " --version\n" + real +
                                     " \"$@\" | head -c 3000\necho $$ > " + marker +
                                     ".tmp\nmv " + marker + ".tmp " + marker + "\nexec sleep 60\n");
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    setenv("TMPDIR", tmp.c_str(), 1);
    (void)backups::Dump(request);
    _exit(0);
  }
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!std::filesystem::exists(marker) && std::chrono::steady_clock::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const bool started = std::filesystem::exists(marker);
  kill(child, SIGKILL);  // the daemon dies
  int status = 0;
  waitpid(child, &status, 0);
  if (started) kill(-static_cast<pid_t>(std::stol(ReadFile(marker))), SIGKILL);  // its tool too
  REQUIRE(started);

  // What the crash left: tm-backup-<the dead pid>-XXXXXX with the password file in it, and the
  // partial file.
  const std::string dead_prefix = "tm-backup-" + std::to_string(child) + "-";
  std::vector<std::string> left = FilesIn(tmp);
  REQUIRE(left.size() == 1);
  CHECK(left[0].rfind(dead_prefix, 0) == 0);
  CHECK(std::filesystem::exists(tmp / left[0] / "pgpass"));
  CHECK(FilesIn(backups_dir / "acme") == std::vector<std::string>{".crash-1.partial"});

  // Beside it: this live process's folder, a live process's (our parent's), one without a pid.
  const std::string ours = "tm-backup-" + std::to_string(getpid()) + "-aaaaaa";
  const std::string parents = "tm-backup-" + std::to_string(getppid()) + "-bbbbbb";
  for (const std::string& name : {ours, parents, std::string("tm-backup-Xy12Zw")}) {
    std::filesystem::create_directory(tmp / name);
  }
  REQUIRE(backups::RemoveStaleWorkFolders(tmp.string()).ok());
  std::vector<std::string> kept = FilesIn(tmp);
  std::sort(kept.begin(), kept.end());
  std::vector<std::string> expected{ours, parents, "tm-backup-Xy12Zw"};
  std::sort(expected.begin(), expected.end());
  CHECK(kept == expected);

  // Partial files: in every workspace folder; finished files stay.
  std::filesystem::create_directories(backups_dir / "other");
  dir.Write("backups/other/.other-2.partial", "x");
  dir.Write("backups/other/other-1.dump", "finished");
  // A dotted folder is not a workspace's: a running move's partial dump there stays.
  std::filesystem::create_directories(backups_dir / ".moves");
  dir.Write("backups/.moves/.mv-acme-1.partial", "a move dumping");
  auto removed = backups::RemoveStalePartials(backups_dir.string());
  REQUIRE_MESSAGE(removed.ok(), removed.failure().message);
  CHECK(*removed == 2);
  CHECK(FilesIn(backups_dir / "acme").empty());
  CHECK(FilesIn(backups_dir / "other") == std::vector<std::string>{"other-1.dump"});
  CHECK(FilesIn(backups_dir / ".moves") == std::vector<std::string>{".mv-acme-1.partial"});
  auto none = backups::RemoveStalePartials((dir.path() / "missing").string());
  REQUIRE(none.ok());
  CHECK(*none == 0);
}

TEST_CASE("scratch databases left by a dead verification are dropped, even with a session in one") {
  PgServer& pg = PgServer::Shared();
  const std::vector<std::string> scratch{"tm_verify_00112233aabbccdd", "tm_verify_ffeeddccbbaa9988"};
  const std::vector<std::string> others{"tm_verify_keep", "tm_verify_0123"};
  for (const auto& name : scratch) Execute(pg.Dsn(), "DROP DATABASE IF EXISTS " + name + " WITH (FORCE)");
  for (const auto& name : scratch) Execute(pg.Dsn(), "CREATE DATABASE " + name);
  for (const auto& name : others) Execute(pg.Dsn(), "CREATE DATABASE " + name);
  {
    PgSession inside(pg.Dsn(scratch[1]));
    REQUIRE(inside.Run("SELECT 1").empty());
    auto dropped = backups::DropScratchDatabases(Secret(pg.Dsn()));
    REQUIRE_MESSAGE(dropped.ok(), dropped.failure().message);
    CHECK(*dropped == scratch);
  }
  CHECK(QueryValue(pg.Dsn(), "SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database "
                             "WHERE datname LIKE 'tm\\_verify\\_%'") == "tm_verify_0123,tm_verify_keep");
  for (const auto& name : others) Execute(pg.Dsn(), "DROP DATABASE " + name);
  // Logins of interrupted restores go too; a role merely named alike stays.
  Execute(pg.Dsn(), "DROP ROLE IF EXISTS tm_restore_00112233aabbccdd");
  Execute(pg.Dsn(), "DROP ROLE IF EXISTS tm_restore_keep");
  Execute(pg.Dsn(), "CREATE ROLE tm_restore_00112233aabbccdd LOGIN; CREATE ROLE tm_restore_keep");
  auto logins = backups::DropScratchDatabases(Secret(pg.Dsn()));
  REQUIRE_MESSAGE(logins.ok(), logins.failure().message);
  CHECK(*logins == std::vector<std::string>{"tm_restore_00112233aabbccdd"});
  CHECK(RestoreLogins() == 1);
  Execute(pg.Dsn(), "DROP ROLE tm_restore_keep");
  auto again = backups::DropScratchDatabases(Secret(pg.Dsn()));
  REQUIRE(again.ok());
  CHECK(again->empty());
}

// The operator sweeps what a crash left (DropScratchDatabases) when a term begins, and a move or a
// restore asked for right then may already be running: the sweep must spare their login and
// scratch database. A psql that waits for the test's word holds each call at the point where the
// login exists and is about to be used; the sweep runs there.
TEST_CASE("a sweep for a crash's leftovers spares the login and scratch database of a restore "
          "running now") {
  MakeTenant("bk_sweep", "bk_sweep_owner");
  const auto before = Fingerprint("bk_sweep");
  TempDir dir;
  auto dump = backups::Dump(Request("bk_sweep", dir.path() / "d", "sweep-1"));
  REQUIRE_MESSAGE(dump.ok(), dump.failure().message);
  const std::string reached = (dir.path() / "reached").string();
  const std::string go = (dir.path() / "go").string();
  const std::string psql = backups::FindPostgresTools()->pg_restore;
  const std::string real_psql = psql.substr(0, psql.rfind('/')) + "/psql";
  const std::string waiting = Script(
      dir, "waiting_psql",
      "[ \"$1\" = --version ] && exec " + real_psql + " --version\n"
      "touch " + reached + "\nn=0\nwhile [ ! -e " + go + " ] && [ $n -lt 200 ]; do sleep 0.05; "
      "n=$((n+1)); done\nexec " + real_psql + " \"$@\"\n");
  // Runs `call` on a thread, sweeps once its psql waits, then lets it go on.
  const auto swept_during = [&](auto call) {
    std::filesystem::remove(reached);
    std::filesystem::remove(go);
    auto result = std::async(std::launch::async, call);
    for (int i = 0; i < 400 && !std::filesystem::exists(reached); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    REQUIRE(std::filesystem::exists(reached));
    auto swept = backups::DropScratchDatabases(Secret(PgServer::Shared().Dsn()));
    REQUIRE_MESSAGE(swept.ok(), swept.failure().message);
    CHECK(swept->empty());
    std::ofstream(go).put('\n');
    return result.get();
  };

  SUBCASE("a restore in place") {
    auto restore = RestoreOf(*dump, "sweep-1", "bk_sweep", "bk_sweep_owner");
    restore.tools.psql = waiting;
    auto restored = swept_during([&] { return backups::Restore(restore); });
    REQUIRE_MESSAGE(restored.ok(), restored.failure().message);
    CHECK(Fingerprint("bk_sweep") == before);
  }
  SUBCASE("a verification") {
    VerifyRequest verify = VerifyOf(*dump, "sweep-1");
    verify.tools.psql = waiting;
    auto verified = swept_during([&] { return backups::VerifyByRestore(verify); });
    REQUIRE_MESSAGE(verified.ok(), verified.failure().message);
    CHECK(verified->restored_rows == dump->table_rows);
  }
  CHECK(ScratchDatabases() == 0);
  CHECK(RestoreLogins() == 0);
}

TEST_CASE("a tool past the call's deadline is killed: BackupTimedOut naming the step, nothing left") {
  MakeTenant("bk_slow", "bk_slow_owner");
  TempDir dir;
  const std::string real = RealPgDump();
  const auto elapsed_since = [](std::chrono::steady_clock::time_point start) {
    return std::chrono::steady_clock::now() - start;
  };

  SUBCASE("dump: pg_dump hangs") {
    auto request = Request("bk_slow", dir.path() / "slow", "slow-1");
    request.tools.pg_dump = Script(dir, "hanging_pg_dump",
                                   "[ \"$1\" = --version ] && exec " + real + " --version\n" +
                                       real + " \"$@\" | head -c 3000\nexec sleep 60\n");
    request.deadline = std::chrono::milliseconds(1500);
    const auto start = std::chrono::steady_clock::now();
    auto dump = backups::Dump(request);
    CHECK(elapsed_since(start) < std::chrono::seconds(10));
    REQUIRE_FALSE(dump.ok());
    CHECK(dump.failure().reason == "BackupTimedOut");
    CHECK(dump.failure().kind == FailureKind::kTransient);
    CHECK(dump.failure().message ==
          "pg_dump of database bk_slow ran past the call's deadline of 1500 ms and was stopped");
    CHECK(FilesIn(dir.path() / "slow").empty());
  }
  SUBCASE("restore and verify: pg_restore hangs") {
    auto dump = backups::Dump(Request("bk_slow", dir.path() / "ok", "ok-1"));
    REQUIRE_MESSAGE(dump.ok(), dump.failure().message);
    // Reading the table of contents works; printing the restore's script hangs.
    const std::string hanging =
        Script(dir, "hanging_pg_restore",
               "case \"$*\" in *--clean*) exec sleep 60;; esac\nexec " +
                   backups::FindPostgresTools()->pg_restore + " \"$@\"\n");
    auto restore = RestoreOf(*dump, "ok-1", "bk_slow", "bk_slow_owner");
    restore.tools.pg_restore = hanging;
    restore.deadline = std::chrono::milliseconds(1000);
    auto start = std::chrono::steady_clock::now();
    auto restored = backups::Restore(restore);
    CHECK(elapsed_since(start) < std::chrono::seconds(10));
    REQUIRE_FALSE(restored.ok());
    CHECK(restored.failure().reason == "BackupTimedOut");
    CHECK(restored.failure().message.find("restore into database bk_slow of " + dump->path +
                                          " ran past the call's deadline of 1000 ms") == 0);

    VerifyRequest verify = VerifyOf(*dump, "ok-1");
    verify.tools.pg_restore = hanging;
    verify.deadline = std::chrono::milliseconds(1000);
    start = std::chrono::steady_clock::now();
    auto verified = backups::VerifyByRestore(verify);
    CHECK(elapsed_since(start) < std::chrono::seconds(10));
    REQUIRE_FALSE(verified.ok());
    CHECK(verified.failure().reason == "BackupTimedOut");
    CHECK(ScratchDatabases() == 0);
    CHECK(RestoreLogins() == 0);
  }
}

TEST_CASE("a dump at another compression level says so in its header and restores the same") {
  MakeTenant("bk_level", "bk_level_owner");
  const auto before = Fingerprint("bk_level");
  TempDir dir;
  const auto header = [](const std::string& file) {
    const ProcessResult listed =
        RunProcess({backups::FindPostgresTools()->pg_restore, "--list", file});
    REQUIRE(listed.exit_code == 0);
    const std::size_t at = listed.out.find("Compression: ");
    REQUIRE(at != std::string::npos);
    return listed.out.substr(at, listed.out.find('\n', at) - at);
  };
  auto standard = backups::Dump(Request("bk_level", dir.path() / "l", "std-1"));
  REQUIRE_MESSAGE(standard.ok(), standard.failure().message);
  CHECK(header(standard->path) == "Compression: -1");
  auto request = Request("bk_level", dir.path() / "l", "fast-1");
  request.compress_level = 1;
  auto fast = backups::Dump(request);
  REQUIRE_MESSAGE(fast.ok(), fast.failure().message);
  CHECK(header(fast->path) == "Compression: 1");
  Execute(PgServer::Shared().Dsn("bk_level"), "DELETE FROM orders");
  auto restored = backups::Restore(RestoreOf(*fast, "fast-1", "bk_level", "bk_level_owner"));
  REQUIRE_MESSAGE(restored.ok(), restored.failure().message);
  CHECK(Fingerprint("bk_level") == before);
}

TEST_CASE("CheckFileSha256: equal (case aside), altered, missing") {
  MakeTenant("bk_sum", "bk_sum_owner");
  TempDir dir;
  auto dump = backups::Dump(Request("bk_sum", dir.path() / "s", "s-1"));
  REQUIRE_MESSAGE(dump.ok(), dump.failure().message);
  CHECK(backups::CheckFileSha256(dump->path, dump->sha256).ok());
  std::string upper = dump->sha256;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  CHECK(backups::CheckFileSha256(dump->path, upper).ok());
  std::string bytes = ReadFile(dump->path);
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 1);
  std::ofstream(dump->path, std::ios::binary | std::ios::trunc) << bytes;
  auto altered = backups::CheckFileSha256(dump->path, dump->sha256);
  REQUIRE_FALSE(altered.ok());
  CHECK(altered.failure().reason == "BackupChecksumMismatch");
  CHECK(altered.failure().message.find("checksum mismatch: the backup file " + dump->path +
                                          " has SHA-256 ") == 0);
  auto missing = backups::CheckFileSha256(dump->path + ".gone", dump->sha256);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.failure().reason == "BackupFileMissing");
}

}  // namespace
}  // namespace tmaster
