// PgBouncer's files and reload (controller/bindings/pgbouncer.hpp) against the real PostgreSQL
// (tests/support/pg_server.hpp) and Debian's real PgBouncer (tests/support/pgbouncer_server.hpp):
// tenants log in THROUGH PgBouncer with their own passwords (SCRAM pass-through from the
// verifiers read out of pg_authid), one tenant is refused on another's database and with a
// wrong password, a rotation reloaded by SIGHUP and by the admin console makes the new password
// work and the old one fail, a removed entry is refused, and PgBouncer's own parser reads the
// quoting as the renderer meant it.

#include <doctest/doctest.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/pq_handles.hpp"
#include "controller/bindings/pgbouncer.hpp"
#include "controller/bindings/pgbouncer_sink.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/pg_server.hpp"
#include "tests/support/pgbouncer_server.hpp"
#include "tests/support/temp_dir.hpp"

namespace tmaster::bindings {
namespace {

using testing::ConnectError;
using testing::Eventually;
using testing::Execute;
using testing::PgBouncerServer;
using testing::PgServer;
using testing::QueryValue;
using testing::TempDir;

struct Tenant {
  std::string role;
  std::string database;
  std::string password;
};

/// Creates the role (LOGIN, SCRAM: PostgreSQL 15's default password_encryption) and its
/// database closed to PUBLIC, as the operator converges a tenant (docs/architecture.md).
Tenant CreateTenant(const std::string& name, const std::string& password) {
  Tenant tenant{"pgb_user_" + name, "pgb_tenant_" + name, password};
  const std::string dsn = PgServer::Shared().Dsn();
  Execute(dsn, "DROP DATABASE IF EXISTS " + tenant.database);
  Execute(dsn, "DROP ROLE IF EXISTS " + tenant.role);
  Execute(dsn, "CREATE ROLE " + tenant.role + " LOGIN PASSWORD '" + password + "'");
  Execute(dsn, "CREATE DATABASE " + tenant.database + " OWNER " + tenant.role);
  Execute(dsn, "REVOKE CONNECT, TEMPORARY ON DATABASE " + tenant.database + " FROM PUBLIC");
  return tenant;
}

std::string VerifierOf(const std::string& role) {
  return QueryValue(PgServer::Shared().Dsn(),
                    "SELECT rolpassword FROM pg_authid WHERE rolname = $1", {role});
}

PoolerEntry EntryOf(const Tenant& tenant) {
  return {tenant.database, "127.0.0.1", PgServer::Shared().port(), tenant.role,
          VerifierOf(tenant.role)};
}

/// The operator's two files in a folder PgBouncer (as `postgres`) can read.
class PoolerFiles {
 public:
  PoolerFiles() : dir_(tmp_.Mkdir("pooler")) {}
  void Write(const std::vector<PoolerEntry>& entries) {
    Outcome<std::string> ini = RenderDatabasesIni(entries);
    Outcome<std::string> users = RenderUserlist(entries);
    REQUIRE(ini.ok());
    REQUIRE(users.ok());
    // A new file renamed over the old, as the operator replaces them.
    tmp_.Write("pooler/databases.ini.new", *ini);
    tmp_.Write("pooler/userlist.txt.new", *users);
    std::filesystem::rename(dir_ / "databases.ini.new", databases_ini());
    std::filesystem::rename(dir_ / "userlist.txt.new", userlist());
    testing::GiveToPostgres(dir_.string());
  }
  [[nodiscard]] std::string databases_ini() const { return (dir_ / "databases.ini").string(); }
  [[nodiscard]] std::string userlist() const { return (dir_ / "userlist.txt").string(); }
  [[nodiscard]] const std::filesystem::path& dir() const { return dir_; }

 private:
  TempDir tmp_;
  std::filesystem::path dir_;
};

bool LogsIn(const PgBouncerServer& bouncer, const Tenant& tenant, const std::string& password,
            const std::string& database) {
  return ConnectError(bouncer.Dsn(tenant.role, password, database)).empty();
}

/// The rows of an admin console command (simple query protocol only), as root through
/// AsPostgresUser. Each row's fields joined by '|'.
std::vector<std::string> Console(const PgBouncerServer& bouncer, const std::string& command) {
  testing::AsPostgresUser as_postgres;
  pq::ConnPtr conn(PQconnectdb(bouncer.AdminDsn().c_str()));
  REQUIRE(conn);
  REQUIRE_MESSAGE(PQstatus(conn.get()) == CONNECTION_OK, PQerrorMessage(conn.get()));
  pq::ResultPtr result(PQexec(conn.get(), command.c_str()));
  REQUIRE(result);
  REQUIRE_MESSAGE(PQresultStatus(result.get()) == PGRES_TUPLES_OK, PQerrorMessage(conn.get()));
  std::vector<std::string> rows;
  for (int r = 0; r < PQntuples(result.get()); ++r) {
    std::string row;
    for (int c = 0; c < PQnfields(result.get()); ++c) {
      row += (c > 0 ? "|" : "") + std::string(PQgetvalue(result.get(), r, c));
    }
    rows.push_back(row);
  }
  return rows;
}

TEST_CASE("tenants log in through the real PgBouncer by SCRAM pass-through; rotation, removal") {
  Tenant a = CreateTenant("a", "pw-a-1");
  Tenant b = CreateTenant("b", "pw-b-1");
  Tenant c = CreateTenant("c", "pw-c-1");
  PoolerFiles files;
  files.Write({EntryOf(a), EntryOf(b), EntryOf(c)});
  PgBouncerServer bouncer({files.databases_ini(), files.userlist()});
  bouncer.Start();
  INFO("PgBouncer's log:\n" << bouncer.Log());

  // Each tenant through PgBouncer, as itself, on its own database.
  for (const Tenant& tenant : {a, b, c}) {
    CAPTURE(tenant.role);
    CHECK(QueryValue(bouncer.Dsn(tenant.role, tenant.password, tenant.database),
                     "SELECT current_user || '@' || current_database()") ==
          tenant.role + "@" + tenant.database);
  }
  // A wrong password is refused by PgBouncer; a tenant's own credentials are refused on another
  // tenant's database (PostgreSQL: CONNECT revoked from PUBLIC).
  CHECK_FALSE(ConnectError(bouncer.Dsn(a.role, "wrong", a.database)).empty());
  CHECK_FALSE(LogsIn(bouncer, a, a.password, b.database));
  CHECK_FALSE(LogsIn(bouncer, b, b.password, c.database));

  SUBCASE("a rotation reloaded by SIGHUP") {
    Execute(PgServer::Shared().Dsn(), "ALTER ROLE " + a.role + " PASSWORD 'pw-a-2'");
    files.Write({EntryOf(a), EntryOf(b), EntryOf(c)});
    Status reloaded = ReloadPgBouncer({bouncer.pid_file(), {}});
    REQUIRE_MESSAGE(reloaded.ok(), reloaded.failure().message);
    CHECK(Eventually([&] { return LogsIn(bouncer, a, "pw-a-2", a.database); }));
    CHECK_FALSE(LogsIn(bouncer, a, "pw-a-1", a.database));
    CHECK(LogsIn(bouncer, b, b.password, b.database));
  }

  SUBCASE("a rotation reloaded by RELOAD on the admin console") {
    Execute(PgServer::Shared().Dsn(), "ALTER ROLE " + b.role + " PASSWORD 'pw-b-2'");
    files.Write({EntryOf(a), EntryOf(b), EntryOf(c)});
    CHECK(LogsIn(bouncer, b, "pw-b-1", b.database));  // PgBouncer still has the old verifier
    if (geteuid() == 0) {  // root is not PgBouncer's OS user: a configuration error, not a wait
      Status refused = ReloadPgBouncer({{}, Secret(bouncer.AdminDsn())});
      REQUIRE_FALSE(refused.ok());
      CHECK(refused.failure().kind == FailureKind::kStalled);
      CHECK(refused.failure().reason == "PoolerReloadFailed");
      CHECK(refused.failure().message.find("not allowed") != std::string::npos);
    }
    {
      testing::AsPostgresUser as_postgres;  // the console admits PgBouncer's own OS user only
      Status reloaded = ReloadPgBouncer({{}, Secret(bouncer.AdminDsn())});
      REQUIRE_MESSAGE(reloaded.ok(), reloaded.failure().message);
    }
    // RELOAD answers after the files were read again: no waiting.
    CHECK(LogsIn(bouncer, b, "pw-b-2", b.database));
    CHECK_FALSE(LogsIn(bouncer, b, "pw-b-1", b.database));
  }

  SUBCASE("a removed entry is refused after the reload") {
    files.Write({EntryOf(a), EntryOf(b)});
    REQUIRE(ReloadPgBouncer({bouncer.pid_file(), {}}).ok());
    CHECK(Eventually([&] { return !LogsIn(bouncer, c, c.password, c.database); }));
    // PgBouncer answers an unknown database with a failed password (it does not tell which);
    // its console shows the entry gone. (PgBouncer 1.18 keeps a role it once loaded in memory
    // until it restarts, SHOW USERS still lists it; without a database entry it reaches nothing.)
    const std::vector<std::string> databases = Console(bouncer, "SHOW DATABASES");
    CHECK(std::none_of(databases.begin(), databases.end(), [&](const std::string& row) {
      return row.rfind(c.database + "|", 0) == 0;
    }));
    CHECK(LogsIn(bouncer, a, a.password, a.database));
  }

  SUBCASE("an empty fleet: PgBouncer starts on the empty files and serves what is added") {
    files.Write({});
    REQUIRE(ReloadPgBouncer({bouncer.pid_file(), {}}).ok());
    CHECK(Eventually([&] { return !LogsIn(bouncer, a, a.password, a.database); }));
    files.Write({EntryOf(a)});
    REQUIRE(ReloadPgBouncer({bouncer.pid_file(), {}}).ok());
    CHECK(Eventually([&] { return LogsIn(bouncer, a, a.password, a.database); }));
  }
}

TenantFacts FactsOf(const Tenant& tenant) {
  TenantFacts facts;
  facts.product = "erp";
  facts.workspace = tenant.database;
  facts.cluster = "main";
  facts.server_address = {"127.0.0.1", PgServer::Shared().port()};
  facts.runtime_address = facts.server_address;
  facts.database = tenant.database;
  facts.username = tenant.role;
  facts.password = Secret(tenant.password);
  facts.verifier = VerifierOf(tenant.role);
  return facts;
}

TEST_CASE(
    "PgBouncerFiles: the operator's writer (SafeDir, group postgres) keeps PgBouncer in step") {
  Tenant a = CreateTenant("w", "pw-w-1");
  TempDir tmp;
  // PgBouncer (as postgres) reaches the pooler folder: searchable above, group-readable inside.
  REQUIRE(chmod(tmp.path().c_str(), 0711) == 0);
  const std::filesystem::path dir = tmp.path() / "pooler";
  Outcome<Access> access = AccessFor("postgres");
  REQUIRE(access.ok());
  PgBouncerServer bouncer({(dir / "databases.ini").string(), (dir / "userlist.txt").string()});
  INFO("PgBouncer's log:\n" << bouncer.Log());
  PgBouncerFiles files(dir, *access, {bouncer.pid_file(), {}});

  // PgBouncer not running yet: the files are written, the reload fails.
  Outcome<bool> first = files.Write({FactsOf(a)});
  REQUIRE_FALSE(first.ok());
  CHECK(first.failure().reason == "PoolerReloadFailed");
  CHECK(first.failure().kind == FailureKind::kTransient);
  struct stat info {};
  REQUIRE(stat((dir / "userlist.txt").c_str(), &info) == 0);
  CHECK((info.st_mode & 07777) == 0640);
  CHECK(info.st_gid == access->group);
  bouncer.Start();
  CHECK(LogsIn(bouncer, a, "pw-w-1", a.database));

  // A rotation whose reload fails (the pid file away for a moment) is reloaded by the next
  // write, though the files no longer change.
  const std::string pid_file = bouncer.pid_file();
  std::filesystem::rename(pid_file, pid_file + ".away");
  Execute(PgServer::Shared().Dsn(), "ALTER ROLE " + a.role + " PASSWORD 'pw-w-2'");
  Outcome<bool> rotated = files.Write({FactsOf(a)});
  REQUIRE_FALSE(rotated.ok());
  CHECK(rotated.failure().kind == FailureKind::kTransient);
  std::filesystem::rename(pid_file + ".away", pid_file);
  CHECK(LogsIn(bouncer, a, "pw-w-1", a.database));  // not reloaded yet
  Outcome<bool> owed = files.Write({FactsOf(a)});
  REQUIRE_MESSAGE(owed.ok(), owed.failure().message);
  CHECK_FALSE(*owed);  // nothing written
  CHECK(Eventually([&] { return LogsIn(bouncer, a, "pw-w-2", a.database); }));
  CHECK_FALSE(LogsIn(bouncer, a, "pw-w-1", a.database));
  Outcome<bool> unchanged = files.Write({FactsOf(a)});
  REQUIRE(unchanged.ok());
  CHECK_FALSE(*unchanged);

  // Suspended: no entry, so PgBouncer refuses the tenant itself; resumed: served again.
  TenantFacts suspended = FactsOf(a);
  suspended.suspended = true;
  Outcome<bool> suspend = files.Write({suspended});
  REQUIRE(suspend.ok());
  CHECK(*suspend);
  CHECK(Eventually([&] { return !LogsIn(bouncer, a, "pw-w-2", a.database); }));
  Outcome<bool> resume = files.Write({FactsOf(a)});
  REQUIRE(resume.ok());
  CHECK(*resume);
  CHECK(Eventually([&] { return LogsIn(bouncer, a, "pw-w-2", a.database); }));

  Outcome<bool> removed = files.Write({});
  REQUIRE(removed.ok());
  CHECK(*removed);
  CHECK(Eventually([&] { return !LogsIn(bouncer, a, "pw-w-2", a.database); }));
}

bool Alive(pid_t pid) { return pid > 1 && kill(pid, 0) == 0; }

// PgBouncer 1.18 frees a database a reload no longer lists while a client may be in the middle
// of logging in to it, and that client's next packet then reaches freed memory: PgBouncer exits
// or leaves the login unanswered (docs/bindings.md#pgbouncer). A suspension therefore keeps the
// tenant's [databases] entry, pointed at a database that does not exist, and takes its role out
// of the auth_file: nothing is dropped while its runtime keeps trying.
TEST_CASE("PgBouncerFiles: a tenant logging in while it is suspended and resumed, again and again, "
          "never takes PgBouncer down") {
  Tenant bystander = CreateTenant("by", "pw-by-1");
  Tenant busy = CreateTenant("busy", "pw-busy-1");
  TempDir tmp;
  REQUIRE(chmod(tmp.path().c_str(), 0711) == 0);
  const std::filesystem::path dir = tmp.path() / "pooler";
  Outcome<Access> access = AccessFor("postgres");
  REQUIRE(access.ok());
  PgBouncerServer bouncer({(dir / "databases.ini").string(), (dir / "userlist.txt").string()});
  INFO("PgBouncer's log:\n" << bouncer.Log());
  PgBouncerFiles files(dir, *access, {bouncer.pid_file(), {}});
  TenantFacts suspended = FactsOf(busy);
  suspended.suspended = true;
  // Written before PgBouncer runs: the reload fails, the files are there.
  (void)files.Write({FactsOf(bystander), FactsOf(busy)});
  bouncer.Start();
  const pid_t pid = bouncer.pid();
  REQUIRE(Alive(pid));
  REQUIRE(LogsIn(bouncer, busy, busy.password, busy.database));

  // The busy tenant's runtime logs in over and over, as a runtime retrying does.
  std::atomic<bool> stop{false};
  std::atomic<int> attempts{0};
  std::thread runtime([&] {
    while (!stop.load()) {
      (void)LogsIn(bouncer, busy, busy.password, busy.database);
      attempts.fetch_add(1);
    }
  });
  int cycles = 0;
  bool reloaded = true;  // a reload fails when PgBouncer is gone; the thread is joined first
  for (; cycles < 40 && reloaded && Alive(pid); ++cycles) {
    reloaded = files.Write({FactsOf(bystander), suspended}).ok();
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
    reloaded = reloaded && files.Write({FactsOf(bystander), FactsOf(busy)}).ok();
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
  }
  stop = true;
  runtime.join();
  CHECK(reloaded);
  CAPTURE(cycles);
  CAPTURE(attempts.load());
  CHECK(attempts.load() > 40);  // the logins did race the reloads
  REQUIRE(Alive(pid));
  CHECK(LogsIn(bouncer, bystander, bystander.password, bystander.database));

  // Suspended: refused by PgBouncer itself (its role is no longer in the auth_file), though
  // PostgreSQL would still admit it; the entry stays, pointed at a database that does not exist.
  REQUIRE(files.Write({FactsOf(bystander), suspended}).ok());
  CHECK(Eventually([&] { return !LogsIn(bouncer, busy, busy.password, busy.database); }));
  CHECK(LogsIn(bouncer, bystander, bystander.password, bystander.database));
  bool kept = false;
  for (const std::string& row : Console(bouncer, "SHOW DATABASES")) {
    if (row.rfind(busy.database + "|", 0) != 0) continue;
    kept = true;
    CHECK(row.find("|tenant-master.suspended|") != std::string::npos);
  }
  CHECK(kept);
  CHECK(Alive(pid));
}

TEST_CASE("PgBouncer reads the quoting as rendered: a quoted host, \"\" in a role name") {
  Tenant a = CreateTenant("q", "pw-q-1");
  PoolerEntry odd = EntryOf(a);
  odd.database = "pgb_odd.host-1";
  odd.host = "odd host's name";
  odd.role = "odd \"role\" x";
  PoolerFiles files;
  files.Write({EntryOf(a), odd});
  PgBouncerServer bouncer({files.databases_ini(), files.userlist()});
  bouncer.Start();
  INFO("PgBouncer's log:\n" << bouncer.Log());

  // SHOW DATABASES: name|host|port|database|...
  bool found = false;
  for (const std::string& row : Console(bouncer, "SHOW DATABASES")) {
    if (row.rfind("pgb_odd.host-1|", 0) != 0) continue;
    found = true;
    CHECK(row.rfind("pgb_odd.host-1|odd host's name|" + std::to_string(PgServer::Shared().port()) +
                        "|pgb_odd.host-1|",
                    0) == 0);
  }
  CHECK(found);
  const std::vector<std::string> users = Console(bouncer, "SHOW USERS");
  CHECK(std::count_if(users.begin(), users.end(), [](const std::string& row) {
          return row.rfind("odd \"role\" x|", 0) == 0;
        }) == 1);
  CHECK(LogsIn(bouncer, a, a.password, a.database));
}

TEST_CASE("ReloadPgBouncer by pid file: what it refuses, naming the file") {
  TempDir tmp;
  SUBCASE("a symbolic link") {
    tmp.Write("real.pid", "12345\n");
    std::filesystem::create_symlink(tmp.path() / "real.pid", tmp.path() / "link.pid");
    Status status = ReloadPgBouncer({(tmp.path() / "link.pid").string(), {}});
    REQUIRE_FALSE(status.ok());
    CHECK(status.failure().kind == FailureKind::kStalled);
    CHECK(status.failure().message.find("link.pid") != std::string::npos);
    CHECK(status.failure().message.find("symbolic link") != std::string::npos);
  }
  SUBCASE("a folder") {
    tmp.Mkdir("dir.pid");
    Status status = ReloadPgBouncer({(tmp.path() / "dir.pid").string(), {}});
    REQUIRE_FALSE(status.ok());
    CHECK(status.failure().message.find("not a regular file") != std::string::npos);
  }
  SUBCASE("not a pid") {
    for (const char* text : {"", "abc", "1\n", "0", "-5", "12 34", "1234567890"}) {
      CAPTURE(text);
      tmp.Write("bad.pid", text);
      Status status = ReloadPgBouncer({(tmp.path() / "bad.pid").string(), {}});
      REQUIRE_FALSE(status.ok());
      CHECK(status.failure().kind == FailureKind::kStalled);
      CHECK(status.failure().message.find("bad.pid") != std::string::npos);
    }
  }
  SUBCASE("missing, or a process that is gone: transient") {
    Status missing = ReloadPgBouncer({(tmp.path() / "none.pid").string(), {}});
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.failure().kind == FailureKind::kTransient);
    CHECK(missing.failure().message.find("none.pid") != std::string::npos);
    tmp.Write("gone.pid", "999999999\n");  // above any pid_max Linux allows (2^22)
    Status gone = ReloadPgBouncer({(tmp.path() / "gone.pid").string(), {}});
    REQUIRE_FALSE(gone.ok());
    CHECK(gone.failure().kind == FailureKind::kTransient);
  }
}

TEST_CASE("ReloadPgBouncer by admin console: failures never carry the DSN") {
  const std::string password = "s3cret-console-pw";
  Status status =
      ReloadPgBouncer({{},
                       Secret("host=/nonexistent-tm port=1 user=pgbouncer password=" + password +
                              " dbname=pgbouncer connect_timeout=2")});
  REQUIRE_FALSE(status.ok());
  CHECK(status.failure().message.find(password) == std::string::npos);
  CHECK(status.failure().message.find("admin console") != std::string::npos);
}

}  // namespace
}  // namespace tmaster::bindings
