#include "reconcilers/postgres/postgres_libpq.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "common/pq/dsn.hpp"
#include "common/pq/session.hpp"
#include "common/pq/sqlstate.hpp"
#include "common/pq_handles.hpp"
#include "common/scrub.hpp"
#include "common/text.hpp"
#include "reconcilers/postgres/desired.hpp"

namespace tmaster::postgres {
namespace {

using pq::ConnPtr;
using pq::ResultPtr;
using PqText = pq::Text;

// ---------------------------------------------------------------------------------------------
// SQL. Every fixed statement is here; the rest are assembled with the Sql builder below, which
// takes identifiers only through PQescapeIdentifier and values only through PQescapeLiteral.

// Observation: one statement, one round trip, every role and database of the cluster. The two
// variants differ only in where roles come from: pg_authid (with the SCRAM verifier) or, when the
// operator's role cannot read it, pg_roles (verifier NULL); ObserveSql puts them together. Every
// function is schema-qualified so no object in a user schema can shadow it.
// The privileged roles are found once (MATERIALIZED): a handful of rows that each role is then
// tested against. Tested per role against every role, the check read N x N catalog rows: about a
// second of every observation at 1,000 tenant roles (bench/README.md, "Fleet rollouts").
constexpr std::string_view kObservePrivileged = R"SQL(WITH privileged AS MATERIALIZED (
  SELECT p.oid FROM pg_catalog.pg_roles p
   WHERE p.rolsuper OR p.rolcreaterole OR p.rolreplication OR p.rolbypassrls
      OR p.rolname IN ('pg_read_server_files', 'pg_write_server_files',
                       'pg_execute_server_program', 'pg_signal_backend',
                       'pg_read_all_data', 'pg_write_all_data', 'pg_checkpoint'))
)SQL";
constexpr std::string_view kObserveRolesHead = R"SQL(SELECT 'role'::text AS kind,
       r.rolname::text AS name,
       r.rolcanlogin, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolreplication,
       r.rolbypassrls, r.rolconnlimit AS connection_limit, )SQL";
constexpr std::string_view kVerifierWithPasswords = "r.rolpassword::text";
constexpr std::string_view kVerifierWithoutPasswords = "NULL::text";
constexpr std::string_view kObserveRolesMiddle = R"SQL( AS verifier,
       pg_catalog.shobj_description(r.oid, 'pg_authid') AS comment,
       coalesce(s.sessions, 0) AS sessions,
       NULL::text AS owner, NULL::text AS encoding,
       NULL::boolean AS public_connect, NULL::boolean AS public_temporary,
       EXISTS (SELECT 1 FROM privileged p
                WHERE p.oid <> r.oid
                  AND pg_catalog.pg_has_role(r.oid, p.oid, 'MEMBER')) AS privileged_member,
       CURRENT_USER::text AS operator_role
  FROM )SQL";
constexpr std::string_view kRolesWithPasswords = "pg_catalog.pg_authid";
constexpr std::string_view kRolesWithoutPasswords = "pg_catalog.pg_roles";
constexpr std::string_view kObserveRolesTail = R"SQL( r
  LEFT JOIN (SELECT usesysid, count(*) AS sessions FROM pg_catalog.pg_stat_activity
              GROUP BY usesysid) s ON s.usesysid = r.oid
 WHERE r.rolname !~ '^pg_'
)SQL";

constexpr std::string_view kObserveDatabases = R"SQL(UNION ALL
SELECT 'database'::text, d.datname::text,
       NULL, NULL, NULL, NULL, NULL, NULL, d.datconnlimit, NULL,
       pg_catalog.shobj_description(d.oid, 'pg_database'),
       0,
       pg_catalog.pg_get_userbyid(d.datdba)::text,
       pg_catalog.pg_encoding_to_char(d.encoding)::text,
       pg_catalog.has_database_privilege('public', d.oid, 'CONNECT'),
       pg_catalog.has_database_privilege('public', d.oid, 'TEMPORARY'),
       NULL,
       CURRENT_USER::text
  FROM pg_catalog.pg_database d
 WHERE NOT d.datistemplate)SQL";

enum ObserveColumn : int {
  kKind,
  kName,
  kCanLogin,
  kSuperuser,
  kCreateDb,
  kCreateRole,
  kReplication,
  kBypassRls,
  kConnectionLimit,
  kVerifier,
  kComment,
  kSessions,
  kOwner,
  kEncoding,
  kPublicConnect,
  kPublicTemporary,
  kPrivilegedMember,
  kOperatorRole,
  kObserveColumns
};

constexpr std::string_view kTerminateSessions =
    "SELECT count(*) FILTER (WHERE pg_catalog.pg_terminate_backend(pid, 5000))"
    " FROM pg_catalog.pg_stat_activity"
    " WHERE usename = $1 AND pid <> pg_catalog.pg_backend_pid()";

// The migration session reads strings as the transaction-control lexer does
// (reconcilers/migrations/txn_control.cpp): a tenant that owns its database could otherwise
// `ALTER DATABASE ... SET standard_conforming_strings = off`, and `'x\''; COMMIT; --'` would
// then hide a COMMIT from the lexer. A connection's own settings win over the database's.
constexpr std::string_view kMigrationSessionSettings = " -c standard_conforming_strings=on";

// The search_path of every admin session, set at connection (docs/architecture.md#secrets): no
// schema the tenant can write is on it, and `ALTER DATABASE ... SET` cannot change it.
constexpr std::string_view kAdminSearchPath = "pg_catalog,tenant_master";

// The schema extensions go into: the operator's, the tenant role has USAGE on it, never CREATE
// (PostgreSQL's advice for extensions in a database with untrusted users). One round trip tells
// its owner, the operator's role, the database's own settings, what is installed, who gets USAGE
// (the tenant role $1, or the database's owner when $1 is empty) and whether it has it.
constexpr std::string_view kExtensionSchema = "extensions";
constexpr std::string_view kExtensionState = R"SQL(SELECT
  (SELECT pg_catalog.pg_get_userbyid(n.nspowner)::text FROM pg_catalog.pg_namespace n
    WHERE n.nspname = 'extensions') AS schema_owner,
  CURRENT_USER::text AS operator_role,
  (SELECT pg_catalog.array_to_string(s.setconfig, E'\n') FROM pg_catalog.pg_db_role_setting s
    WHERE s.setrole = 0 AND s.setdatabase = (SELECT d.oid FROM pg_catalog.pg_database d
                                              WHERE d.datname = pg_catalog.current_database()))
    AS settings,
  (SELECT pg_catalog.string_agg(e.extname::text, ',') FROM pg_catalog.pg_extension e)
    AS installed,
  g.grantee,
  CASE WHEN pg_catalog.to_regnamespace('extensions') IS NULL THEN false
       ELSE pg_catalog.has_schema_privilege(g.grantee, 'extensions', 'USAGE') END AS usage
  FROM (SELECT coalesce(NULLIF($1, ''),
                        (SELECT pg_catalog.pg_get_userbyid(d.datdba)::text
                           FROM pg_catalog.pg_database d
                          WHERE d.datname = pg_catalog.current_database())) AS grantee) g)SQL";
enum ExtensionStateColumn : int { kSchemaOwner, kMe, kSettings, kInstalled, kGrantee, kUsage };
// The database's search_path once extensions live in their schema: the tenant's sessions (the
// application, its migrations) find the extensions' functions unqualified.
constexpr std::string_view kTenantSearchPath = "\"$user\", public, extensions";

// The migrations ledger: created and owned by the admin role, so the tenant role can add rows
// but never rewrite or drop its own history. Its schema must be the operator's: a tenant that
// made `tenant_master` first would own the ledger.
constexpr std::string_view kLedgerState = R"SQL(SELECT
  (SELECT pg_catalog.pg_get_userbyid(n.nspowner)::text FROM pg_catalog.pg_namespace n
    WHERE n.nspname = 'tenant_master') AS schema_owner,
  CURRENT_USER::text AS operator_role,
  CASE WHEN pg_catalog.to_regclass('tenant_master.schema_migrations') IS NULL THEN false
       ELSE pg_catalog.has_schema_privilege($1, 'tenant_master', 'USAGE')
        AND pg_catalog.has_table_privilege($1, 'tenant_master.schema_migrations', 'SELECT')
        AND pg_catalog.has_table_privilege($1, 'tenant_master.schema_migrations', 'INSERT')
  END AS ready)SQL";
// Without IF NOT EXISTS: a schema the tenant made in between fails the statement, and the next
// pass finds it not ours.
constexpr std::string_view kCreateLedgerSchema = "CREATE SCHEMA tenant_master;\n";
constexpr std::string_view kCreateLedger =
    "CREATE TABLE IF NOT EXISTS tenant_master.schema_migrations (\n"
    "  version text PRIMARY KEY,\n"
    "  file text NOT NULL,\n"
    "  checksum text NOT NULL,\n"
    "  applied_at timestamptz NOT NULL DEFAULT now(),\n"
    "  duration_ms integer\n"
    ");\n";
constexpr int kCreateLedgerStatements = 1;
constexpr std::string_view kReadLedger =
    "SELECT version, file, checksum FROM tenant_master.schema_migrations ORDER BY version";

// One fixed key: advisory locks are per database, and only migration runners take this one. The
// wait for it is bounded by the session's lock_timeout (a second runner, or a tenant holding the
// key, makes the pass fail Transient LockTimeout and retry with backoff).
constexpr std::string_view kMigrationLockKey = "7308332045386115437";

constexpr int kMaxIdentifierBytes = 63;  // NAMEDATALEN - 1: longer names are silently truncated
// The server's list of what a role still owns can run to 100 lines; a status message shows the
// start of it.
constexpr std::size_t kMaxDetailChars = 400;

// ---------------------------------------------------------------------------------------------
// Messages: one line (pq::Connect, pq::ResultFailure), no secrets (a Scrubber per call).

Failure WithStep(Failure failure, const std::string& step) {
  failure.message = step + ": " + failure.message;
  return failure;
}

// ---------------------------------------------------------------------------------------------
// Connection parameters.

/// The database admin sessions use: the DSN's own, never a template
/// (docs/architecture.md#postgresql-what-converged-means).
std::string AdminDatabase(const pq::DsnParts& dsn) {
  const std::string& name = dsn.dbname;
  return name.empty() || name == "template0" || name == "template1" ? "postgres" : name;
}

}  // namespace

std::optional<std::pair<std::string, int>> DsnHostPort(const Secret& dsn) {
  const std::optional<pq::DsnParts> target = pq::ParseDsn(dsn);
  if (!target) return std::nullopt;
  std::string host =
      target->host.empty() || target->host.front() == '/' ? "localhost" : target->host;
  // A multi-host DSN (`h1,h2`): stacks get the first.
  host = host.substr(0, host.find(','));
  int port = 5432;
  if (!target->port.empty()) {
    const std::string first = target->port.substr(0, target->port.find(','));
    char* end = nullptr;
    const long parsed = std::strtol(first.c_str(), &end, 10);
    if (end != first.c_str() && *end == '\0' && parsed > 0 && parsed < 65536) {
      port = static_cast<int>(parsed);
    }
  }
  return std::make_pair(host, port);
}

namespace {

/// Overrides applied on top of the DSN (PQconnectdbParams with expand_dbname: the DSN is the
/// first `dbname`, later keywords win). Without `user`, an admin session (pinned search_path,
/// the admin statement_timeout); with it, the tenant role's migration session.
struct ConnectAs {
  std::string dbname;
  std::string user;                  ///< empty: the DSN's
  const Secret* password = nullptr;  ///< null: the DSN's
};

/// The non-empty pieces of `text` between `separator`s.
std::vector<std::string> Split(std::string_view text, char separator) {
  std::vector<std::string> pieces;
  while (!text.empty()) {
    const std::size_t end = std::min(text.find(separator), text.size());
    if (end > 0) pieces.emplace_back(text.substr(0, end));
    text.remove_prefix(std::min(end + 1, text.size()));
  }
  return pieces;
}

/// `5s`, `1500ms`: a timeout as messages show it.
std::string FormatDuration(std::chrono::milliseconds value) {
  const auto ms = value.count();
  return ms % 1000 == 0 ? std::to_string(ms / 1000) + "s" : std::to_string(ms) + "ms";
}

// ---------------------------------------------------------------------------------------------
// Statements in flight, for CancelAll.

/// The connections that have a statement in flight, each with its cancel handle. After
/// CancelAll nothing new is let through.
class InFlight {
 public:
  InFlight() = default;
  ~InFlight() {
    for (auto& [conn, cancel] : running_) PQfreeCancel(cancel);
  }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

  /// Registers `conn` for one statement; false after CancelAll (send nothing).
  bool Begin(PGconn* conn) {
    PGcancel* cancel = PQgetCancel(conn);
    std::lock_guard lock(mutex_);
    if (stopping_) {
      PQfreeCancel(cancel);
      return false;
    }
    running_.emplace_back(conn, cancel);
    return true;
  }
  void End(PGconn* conn) {
    std::lock_guard lock(mutex_);
    const auto found = std::find_if(running_.begin(), running_.end(),
                                    [conn](const auto& entry) { return entry.first == conn; });
    if (found == running_.end()) return;
    PQfreeCancel(found->second);  // under the lock: CancelAll may be using it
    running_.erase(found);
  }
  /// PQcancel is thread-safe: it opens its own connection to the server and asks it to cancel
  /// whatever that backend is running. Its error text is dropped (best effort).
  void CancelAll() {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    for (auto& [conn, cancel] : running_) {
      char error[256];
      if (cancel != nullptr) static_cast<void>(PQcancel(cancel, error, sizeof error));
    }
  }
  [[nodiscard]] bool Stopping() const {
    std::lock_guard lock(mutex_);
    return stopping_;
  }

 private:
  mutable std::mutex mutex_;
  bool stopping_ = false;
  std::vector<std::pair<PGconn*, PGcancel*>> running_;
};

/// One statement on `conn`, registered with InFlight for its duration.
class Watch {
 public:
  Watch(InFlight& in_flight, PGconn* conn)
      : in_flight_(in_flight), conn_(conn), ok_(in_flight.Begin(conn)) {}
  ~Watch() {
    if (ok_) in_flight_.End(conn_);
  }
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;
  /// false: shutting down, send nothing.
  [[nodiscard]] bool ok() const { return ok_; }

 private:
  InFlight& in_flight_;
  PGconn* conn_;
  bool ok_;
};

Failure ShuttingDown(const std::string& what) {
  return Failure::Transient("ShuttingDown", "the operator is shutting down: " + what);
}

// ---------------------------------------------------------------------------------------------
// A thread-safe pool of admin connections for one cluster.

class Pool {
 public:
  using Connector = std::function<Outcome<ConnPtr>()>;

  Pool(Connector connect, int size) : connect_(std::move(connect)), size_(std::max(size, 1)) {}

  /// A pooled connection; returned to the pool on destruction if still healthy and idle.
  class Lease {
   public:
    Lease(Pool* pool, ConnPtr conn) : pool_(pool), conn_(std::move(conn)) {}
    Lease(Lease&& other) noexcept
        : pool_(std::exchange(other.pool_, nullptr)), conn_(std::move(other.conn_)) {}
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() {
      if (pool_ != nullptr) pool_->Release(std::move(conn_));
    }
    [[nodiscard]] PGconn* get() const { return conn_.get(); }
    /// Closes the connection instead of returning it.
    void Discard() { conn_.reset(); }

   private:
    Pool* pool_;
    ConnPtr conn_;
  };

  Outcome<Lease> Acquire(bool fresh) {
    std::unique_lock lock(mutex_);
    available_.wait(lock, [this] { return !idle_.empty() || open_ < size_; });
    if (fresh && !idle_.empty() && open_ >= size_) {
      idle_.pop_back();  // make room for the fresh connection
      --open_;
    }
    if (!fresh && !idle_.empty()) {
      ConnPtr conn = std::move(idle_.back());
      idle_.pop_back();
      return Lease(this, std::move(conn));
    }
    ++open_;
    lock.unlock();
    Outcome<ConnPtr> conn = connect_();
    if (!conn) {
      lock.lock();
      --open_;
      available_.notify_one();
      return conn.failure();
    }
    return Lease(this, std::move(conn).value());
  }

  /// After a broken connection the others are most likely broken too (server restart).
  void DropIdle() {
    std::vector<ConnPtr> dropped;
    {
      std::lock_guard lock(mutex_);
      open_ -= static_cast<int>(idle_.size());
      dropped.swap(idle_);
      available_.notify_all();
    }
  }

 private:
  void Release(ConnPtr conn) {
    bool reusable = conn && PQstatus(conn.get()) == CONNECTION_OK &&
                    PQtransactionStatus(conn.get()) == PQTRANS_IDLE;
    if (!reusable) conn.reset();  // PQfinish outside the lock
    std::lock_guard lock(mutex_);
    if (reusable) {
      idle_.push_back(std::move(conn));
    } else {
      --open_;
    }
    available_.notify_one();
  }

  Connector connect_;
  const int size_;
  std::mutex mutex_;
  std::condition_variable available_;
  std::vector<ConnPtr> idle_;
  int open_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Rendering: identifiers only through PQescapeIdentifier, values through PQescapeLiteral.

class Sql {
 public:
  explicit Sql(PGconn* conn) : conn_(conn) {}

  Sql& Raw(std::string_view text) {
    text_ += text;
    return *this;
  }
  Sql& Id(std::string_view name) {
    if (name.empty() || name.size() > kMaxIdentifierBytes ||
        name.find('\0') != std::string_view::npos) {
      Fail("InvalidName", "name " + Quoted(name) + " is empty, longer than 63 bytes or has a NUL");
      return *this;
    }
    PqText escaped(PQescapeIdentifier(conn_, name.data(), name.size()));
    if (!escaped) {
      Fail("InvalidName", "name " + Quoted(name) + " cannot be quoted (invalid encoding?)");
      return *this;
    }
    text_ += escaped.get();
    return *this;
  }
  Sql& Lit(std::string_view value) {
    PqText escaped(PQescapeLiteral(conn_, value.data(), value.size()));
    if (!escaped) {
      Fail("InvalidValue", "a value cannot be quoted (invalid encoding?)");
      return *this;
    }
    text_ += escaped.get();
    return *this;
  }
  Sql& Int(int value) {
    text_ += std::to_string(value);
    return *this;
  }
  /// Ends a statement; the count is what ApplyResult.statements reports.
  Sql& End() {
    text_ += ";\n";
    ++statements_;
    return *this;
  }

  [[nodiscard]] const std::optional<Failure>& error() const { return error_; }
  [[nodiscard]] const std::string& text() const { return text_; }
  [[nodiscard]] int statements() const { return statements_; }

 private:
  void Fail(const char* reason, std::string message) {
    if (!error_) error_ = Failure::Stalled(reason, std::move(message));
  }

  PGconn* conn_;
  std::string text_;
  int statements_ = 0;
  std::optional<Failure> error_;
};

/// The role attributes every tenant role has
/// (docs/architecture.md#postgresql-what-converged-means). SUPERUSER, REPLICATION and BYPASSRLS can
/// only be named by a superuser in ALTER ROLE (PostgreSQL 15 refuses even their NO form), so a
/// non-superuser operator leaves them out: it could not have granted them either.
void RenderRoleAttributes(Sql& sql, bool login, int connection_limit, bool all) {
  sql.Raw(login ? " LOGIN" : " NOLOGIN");
  if (all) sql.Raw(" NOSUPERUSER");
  sql.Raw(" NOCREATEDB NOCREATEROLE");
  if (all) sql.Raw(" NOREPLICATION NOBYPASSRLS");
  sql.Raw(" CONNECTION LIMIT ").Int(connection_limit);
}

bool IsSuperuser(PGconn* conn) {
  const char* value = PQparameterStatus(conn, "is_superuser");
  return value != nullptr && std::string_view(value) == "on";
}

/// The 1-based line and column (in characters), within the part of `text` after its first
/// `skip_chars` characters, of the 1-based character `position` (the server counts characters,
/// not bytes; UTF-8 here). nullopt when the position falls outside that part.
std::optional<std::pair<int, int>> LineOfPosition(std::string_view text, long position,
                                                  long skip_chars) {
  long chars = 0;
  int line = 1;
  int column = 0;
  for (char c : text) {
    bool starts_char = (static_cast<unsigned char>(c) & 0xC0U) != 0x80U;
    if (starts_char) {
      ++chars;
      ++column;
    }
    if (chars >= position) {
      if (chars <= skip_chars) return std::nullopt;
      return std::make_pair(line, column);
    }
    if (c == '\n') {
      column = 0;
      if (chars > skip_chars) ++line;
    }
  }
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------

class Gateway final : public LibpqGateway {
 public:
  Gateway(std::string cluster, Secret dsn, LibpqOptions options)
      : cluster_(std::move(cluster)),
        dsn_(std::move(dsn)),
        options_(options),
        target_(pq::ParseDsn(dsn_)),
        admin_dbname_(target_ ? AdminDatabase(*target_) : std::string()),
        pool_(
            [this] {
              return Connect({admin_dbname_, "", nullptr}, scrub_);
            },
            options.pool_size) {
    scrub_.Add(dsn_);
    if (target_) scrub_.Add(target_->password);
  }

  std::int64_t StatementsSent() const override { return statements_.load(); }
  bool PasswordsVisible() const override { return passwords_ != Passwords::kHidden; }
  void CancelAll() override { in_flight_.CancelAll(); }

  Outcome<ObservedCluster> Observe() override {
    if (in_flight_.Stopping()) return ShuttingDown("catalog of cluster " + Quoted(cluster_) + " not read");
    return WithAdmin("read catalog of cluster " + Quoted(cluster_),
                     [this](PGconn* conn) { return ObserveOn(conn); });
  }

  Outcome<std::string> ServerVersion() override {
    if (in_flight_.Stopping()) return ShuttingDown("cluster " + Quoted(cluster_) + " not asked");
    return WithAdmin("ask cluster " + Quoted(cluster_) + " its version",
                     [this](PGconn* conn) -> Outcome<std::string> {
                       Outcome<ResultPtr> result =
                           Exec(conn, "SELECT current_setting('server_version')", 1, scrub_);
                       if (!result) return result.failure();
                       if (PQntuples(result->get()) != 1) {
                         return Failure::Transient("UnexpectedResult", "no server_version");
                       }
                       return std::string(PQgetvalue(result->get(), 0, 0));
                     });
  }

  Outcome<ApplyResult> Apply(const Action& action) override {
    if (in_flight_.Stopping()) return ShuttingDown(postgres::Describe(action) + " not applied");
    return std::visit([this](const auto& a) { return Do(a); }, action);
  }

 private:
  enum class Passwords { kUnknown, kVisible, kHidden };

  // --- connections ---------------------------------------------------------------------------

  Outcome<ConnPtr> Connect(const ConnectAs& as, const Scrubber& scrub) const {
    if (!target_) return InvalidDsn();
    if (in_flight_.Stopping()) return ShuttingDown("no new connection to " + Describe(as));
    const bool tenant = !as.user.empty();
    const std::string timeout = std::to_string(options_.connect_timeout.count());
    const std::string session =
        tenant ? pq::SessionOptions(options_.migration_timeout, options_.lock_timeout) +
                     std::string(kMigrationSessionSettings)
               : pq::SessionOptions(options_.statement_timeout, options_.lock_timeout,
                                    kAdminSearchPath);
    std::vector<pq::ConnectParam> params = {{"connect_timeout", timeout.c_str()},
                                            {"fallback_application_name", "tenant-master"},
                                            {"options", session.c_str()}};
    if (!as.user.empty()) params.push_back({"user", as.user.c_str()});
    if (as.password != nullptr) params.push_back({"password", as.password->Reveal().c_str()});
    Outcome<ConnPtr> conn = pq::Connect(dsn_, as.dbname, params, scrub, Describe(as));
    if (conn) return conn;
    Failure failure = conn.failure();
    // The operator's own credentials are for a human to fix; a tenant role's password is
    // repaired by the next pass. A database dropped since the catalog was read is re-created by
    // the next pass too.
    if (failure.reason == "AuthenticationFailed" && tenant) failure.kind = FailureKind::kTransient;
    if (failure.reason == "DatabaseMissing") {
      failure = Failure::Transient("ConnectionFailed", std::move(failure.message));
    }
    return failure;
  }

  /// `host=... port=... dbname=... user=...`: what a connection failure may show.
  [[nodiscard]] std::string Describe(const ConnectAs& as) const {
    std::string description;
    auto add = [&description](std::string_view key, const std::string& value) {
      if (value.empty()) return;
      if (!description.empty()) description += ' ';
      description += std::string(key) + "=" + value;
    };
    add("host", target_->host);
    add("port", target_->port);
    add("dbname", as.dbname);
    add("user", as.user.empty() ? target_->user : as.user);
    return description;
  }

  Failure InvalidDsn() const {
    return Failure::Stalled("InvalidDsn", "the connection string of cluster " + Quoted(cluster_) +
                                              " cannot be parsed by libpq");
  }

  /// Runs `body(conn)` on a pooled admin connection. A connection found broken (the server
  /// restarted, an idle session was killed) is dropped with every idle one, and `body` runs once
  /// more on a fresh connection. Failures are prefixed with `step`.
  template <class Body>
  auto WithAdmin(const std::string& step, Body body) -> decltype(body(nullptr)) {
    for (int attempt = 0;; ++attempt) {
      Outcome<Pool::Lease> lease = pool_.Acquire(attempt > 0);
      if (!lease) return WithStep(lease.failure(), step);
      auto out = body(lease->get());
      if (out.ok()) return out;
      if (attempt > 0 || PQstatus(lease->get()) != CONNECTION_BAD) {
        return WithStep(out.failure(), step);
      }
      lease->Discard();
      pool_.DropIdle();
    }
  }

  // --- statements ------------------------------------------------------------------------------

  /// Sends `sql` (`statements` of them, one round trip); the last statement's result.
  /// `migration`: the tenant role's session (its statement_timeout is migration_timeout).
  Outcome<ResultPtr> Exec(PGconn* conn, const std::string& sql, int statements,
                          const Scrubber& scrub, bool migration = false) {
    Watch watch(in_flight_, conn);
    if (!watch.ok()) return ShuttingDown("statement not sent");
    statements_.fetch_add(statements);
    Outcome<ResultPtr> result = pq::Check(conn, ResultPtr(PQexec(conn, sql.c_str())), scrub);
    if (!result) return Explain(result.failure(), migration);
    return result;
  }

  Outcome<ResultPtr> Query(PGconn* conn, std::string_view sql,
                           const std::vector<std::string>& params, const Scrubber& scrub) {
    Watch watch(in_flight_, conn);
    if (!watch.ok()) return ShuttingDown("statement not sent");
    statements_.fetch_add(1);
    Outcome<ResultPtr> result = pq::ExecParams(conn, sql, params, scrub);
    if (!result) return Explain(result.failure(), false);
    return result;
  }

  /// A failure said in terms of what timed out: `lock_timeout (5s) passed waiting for a lock:
  /// ...`, `statement_timeout (30s) passed: ...`; after CancelAll, any failure is Transient
  /// `ShuttingDown` (the statement was cancelled on purpose).
  [[nodiscard]] Failure Explain(Failure failure, bool migration) const {
    if (in_flight_.Stopping()) {
      return ShuttingDown("statement cancelled (" + failure.message + ")");
    }
    if (failure.reason == "LockTimeout") {
      failure.message = "lock_timeout (" + FormatDuration(options_.lock_timeout) +
                        ") passed waiting for a lock: " + failure.message;
    } else if (failure.reason == "StatementTimeout") {
      const auto limit = migration ? options_.migration_timeout : options_.statement_timeout;
      failure.message = std::string(migration ? "migration_timeout" : "statement_timeout") + " (" +
                        FormatDuration(limit) + ") passed: " + failure.message;
    }
    return failure;
  }

  // --- observe ---------------------------------------------------------------------------------

  Outcome<ObservedCluster> ObserveOn(PGconn* conn) {
    if (passwords_ != Passwords::kHidden) {
      Outcome<ResultPtr> result = Exec(conn, ObserveSql(true), 1, scrub_);
      if (result) {
        passwords_ = Passwords::kVisible;
        return Parse(result->get(), true);
      }
      if (result.failure().reason != "InsufficientPrivilege") return result.failure();
      passwords_ = Passwords::kHidden;  // remembered: the fallback is asked for directly
    }
    Outcome<ResultPtr> result = Exec(conn, ObserveSql(false), 1, scrub_);
    if (!result) return result.failure();
    return Parse(result->get(), false);
  }

  static const std::string& ObserveSql(bool with_passwords) {
    const auto build = [](std::string_view verifier, std::string_view roles) {
      std::string sql(kObservePrivileged);
      sql += kObserveRolesHead;
      for (const std::string_view part :
           {verifier, kObserveRolesMiddle, roles, kObserveRolesTail, kObserveDatabases}) {
        sql += part;
      }
      return sql;
    };
    static const std::string kWith = build(kVerifierWithPasswords, kRolesWithPasswords);
    static const std::string kWithout = build(kVerifierWithoutPasswords, kRolesWithoutPasswords);
    return with_passwords ? kWith : kWithout;
  }

  static Outcome<ObservedCluster> Parse(const PGresult* result, bool with_passwords) {
    if (PQnfields(result) != kObserveColumns) {
      return Failure::Stalled("UnexpectedCatalog", "the catalog query returned an unknown shape");
    }
    ObservedCluster cluster;
    cluster.passwords_visible = with_passwords;
    auto text = [result](int row, int column) -> std::string {
      return PQgetisnull(result, row, column) != 0 ? std::string()
                                                   : std::string(PQgetvalue(result, row, column));
    };
    auto flag = [result](int row, int column) {
      return PQgetisnull(result, row, column) == 0 && PQgetvalue(result, row, column)[0] == 't';
    };
    auto number = [&text](int row, int column) {
      std::string value = text(row, column);
      int parsed = 0;
      std::from_chars(value.data(), value.data() + value.size(), parsed);
      return parsed;
    };
    // Roles and databases share the catalog query's columns, so their two field lists below look
    // alike; each names only the columns its kind fills.
    for (int row = 0; row < PQntuples(result); ++row) {
      if (cluster.operator_role.empty()) cluster.operator_role = text(row, kOperatorRole);
      if (text(row, kKind) == "role") {
        ObservedRole role;
        role.name = text(row, kName);
        role.can_login = flag(row, kCanLogin);
        role.superuser = flag(row, kSuperuser);
        role.create_db = flag(row, kCreateDb);
        role.create_role = flag(row, kCreateRole);
        role.replication = flag(row, kReplication);
        role.bypass_rls = flag(row, kBypassRls);
        role.connection_limit = number(row, kConnectionLimit);
        // nullopt: pg_authid not readable, or the role has no password (the plan sets one).
        if (with_passwords && PQgetisnull(result, row, kVerifier) == 0) {
          role.verifier = text(row, kVerifier);
        }
        role.comment = text(row, kComment);
        role.sessions = number(row, kSessions);
        role.privileged_member = flag(row, kPrivilegedMember);
        cluster.roles.emplace(role.name, std::move(role));
        continue;
      }
      ObservedDatabase database;
      database.name = text(row, kName);
      database.owner = text(row, kOwner);
      database.encoding = text(row, kEncoding);
      database.public_connect = flag(row, kPublicConnect);
      database.public_temporary = flag(row, kPublicTemporary);
      database.comment = text(row, kComment);
      cluster.databases.emplace(database.name, std::move(database));
    }
    return cluster;
  }

  // --- actions on the cluster (admin pool) -----------------------------------------------------

  [[nodiscard]] std::string OnCluster(const std::string& step) const {
    return step + " on cluster " + Quoted(cluster_);
  }

  /// Renders with `render(sql, conn)` and sends it in one round trip on an admin connection.
  template <class Render>
  Outcome<ApplyResult> Simple(const std::string& step, const Scrubber& scrub, Render render) {
    return WithAdmin(OnCluster(step), [&](PGconn* conn) -> Outcome<ApplyResult> {
      Sql sql(conn);
      render(sql, conn);
      if (sql.error()) return *sql.error();
      Outcome<ResultPtr> result = Exec(conn, sql.text(), sql.statements(), scrub);
      if (!result) return result.failure();
      return ApplyResult{sql.statements(), ""};
    });
  }

  /// The SCRAM verifier of `password`, computed on the client: the password itself never goes
  /// on the wire. With `salt` (DeriveScramSalt) it is ours, reproducible for PgBouncer's
  /// auth_file; without, libpq's with a random salt.
  Outcome<std::string> Verifier(PGconn* conn, const Secret& password, const std::string& role,
                                const std::string& salt, const Scrubber& scrub) const {
    if (!salt.empty()) return MakeScramVerifier(password, salt, kScramIterations);
    PqText verifier(
        PQencryptPasswordConn(conn, password.Reveal().c_str(), role.c_str(), "scram-sha-256"));
    if (!verifier) {
      return Failure::Transient("PasswordEncryptionFailed", OneLine(scrub(PQerrorMessage(conn))));
    }
    return std::string(verifier.get());
  }

  /// Role DDL with the SCRAM verifier plus the marker with the password memo: one implicit
  /// transaction, one round trip. `create`: CREATE ROLE with every attribute, else ALTER ROLE.
  Outcome<ApplyResult> RoleWithPassword(const std::string& step, const std::string& role,
                                        const Secret& password, const std::string& workspace,
                                        const std::map<std::string, std::string>& marker_fields,
                                        const std::string& salt, const CreateRole* create) {
    Scrubber scrub = scrub_;
    scrub.Add(password);
    return WithAdmin(OnCluster(step), [&](PGconn* conn) -> Outcome<ApplyResult> {
      Outcome<std::string> verifier = Verifier(conn, password, role, salt, scrub);
      if (!verifier) return verifier.failure();
      Scrubber with_verifier = scrub;
      with_verifier.Add(*verifier);
      Marker marker{workspace, marker_fields};
      marker.fields["pw"] = PasswordMemo(password, *verifier);
      Sql sql(conn);
      if (create != nullptr) {
        // NO forms are accepted from a non-superuser in CREATE ROLE (not in ALTER ROLE).
        sql.Raw("CREATE ROLE ").Id(role);
        RenderRoleAttributes(sql, create->login, create->connection_limit, true);
      } else {
        sql.Raw("ALTER ROLE ").Id(role);
      }
      sql.Raw(" PASSWORD ").Lit(*verifier).End();
      sql.Raw("COMMENT ON ROLE ").Id(role).Raw(" IS ").Lit(marker.Render()).End();
      // A non-superuser operator must be a member of a role to make it a database's owner;
      // CREATEROLE lets it grant itself that membership.
      if (create != nullptr && !IsSuperuser(conn)) {
        sql.Raw("GRANT ").Id(role).Raw(" TO CURRENT_USER").End();
      }
      if (sql.error()) return *sql.error();
      Outcome<ResultPtr> result = Exec(conn, sql.text(), sql.statements(), with_verifier);
      if (!result) return result.failure();
      return ApplyResult{sql.statements(), ""};
    });
  }

  Outcome<ApplyResult> Do(const CreateRole& a) {
    return RoleWithPassword("create role " + Quoted(a.role), a.role, a.password, a.workspace,
                            a.marker_fields, a.salt, &a);
  }

  Outcome<ApplyResult> Do(const SetRolePassword& a) {
    return RoleWithPassword("set password of role " + Quoted(a.role), a.role, a.password,
                            a.workspace, a.marker_fields, a.salt, nullptr);
  }

  Outcome<ApplyResult> Do(const AlterRole& a) {
    return Simple("alter role " + Quoted(a.role), scrub_, [&a](Sql& sql, PGconn* conn) {
      sql.Raw("ALTER ROLE ").Id(a.role);
      RenderRoleAttributes(sql, a.login, a.connection_limit, IsSuperuser(conn));
      sql.End();
    });
  }

  Outcome<ApplyResult> Do(const SetRoleMarker& a) {
    return Simple("set marker of role " + Quoted(a.role), scrub_, [&a](Sql& sql, PGconn*) {
      sql.Raw("COMMENT ON ROLE ").Id(a.role).Raw(" IS ").Lit(a.marker).End();
    });
  }

  Outcome<ApplyResult> Do(const TerminateSessions& a) {
    return WithAdmin(OnCluster("terminate sessions of role " + Quoted(a.role)),
                     [&](PGconn* conn) -> Outcome<ApplyResult> {
                       Outcome<ResultPtr> result =
                           Query(conn, kTerminateSessions, {a.role}, scrub_);
                       if (!result) return result.failure();
                       std::string count = PQgetvalue(result->get(), 0, 0);
                       return ApplyResult{1, "terminated " + count + " session(s)"};
                     });
  }

  Outcome<ApplyResult> Do(const CreateDatabase& a) {
    // CREATE DATABASE cannot share a transaction (or a multi-statement string) with anything.
    // The marker and the PUBLIC revoke follow at once in a second round trip, so the database
    // is open to PUBLIC only for that instant.
    return WithAdmin(
        OnCluster("create database " + Quoted(a.database)),
        [&](PGconn* conn) -> Outcome<ApplyResult> {
          // A non-superuser operator must be a member of the owner (CreateRole made it one; an
          // adopted role may not be): GRANT is a no-op notice when it already is.
          Sql grant(conn);
          if (!IsSuperuser(conn)) grant.Raw("GRANT ").Id(a.owner).Raw(" TO CURRENT_USER").End();
          Sql create(conn);
          create.Raw("CREATE DATABASE ").Id(a.database).Raw(" OWNER ").Id(a.owner);
          create.Raw(" ENCODING 'UTF8' TEMPLATE template0");
          Sql after(conn);
          after.Raw("COMMENT ON DATABASE ").Id(a.database).Raw(" IS ").Lit(a.marker).End();
          after.Raw("REVOKE CONNECT, TEMPORARY ON DATABASE ")
              .Id(a.database)
              .Raw(" FROM PUBLIC")
              .End();
          for (const Sql* part : {&grant, &create, &after}) {
            if (part->error()) return *part->error();
          }
          if (grant.statements() > 0) {
            Outcome<ResultPtr> granted = Exec(conn, grant.text(), grant.statements(), scrub_);
            if (!granted) return granted.failure();
          }
          Outcome<ResultPtr> created = Exec(conn, create.text(), 1, scrub_);
          if (!created) return created.failure();
          Outcome<ResultPtr> marked = Exec(conn, after.text(), after.statements(), scrub_);
          if (!marked) return marked.failure();
          return ApplyResult{grant.statements() + 1 + after.statements(), ""};
        });
  }

  Outcome<ApplyResult> Do(const AlterDatabaseOwner& a) {
    return Simple("change owner of database " + Quoted(a.database) + " to " + Quoted(a.owner),
                  scrub_, [&a](Sql& sql, PGconn* conn) {
                    if (!IsSuperuser(conn))
                      sql.Raw("GRANT ").Id(a.owner).Raw(" TO CURRENT_USER").End();
                    sql.Raw("ALTER DATABASE ").Id(a.database).Raw(" OWNER TO ").Id(a.owner).End();
                  });
  }

  Outcome<ApplyResult> Do(const RevokePublicAccess& a) {
    return Simple("revoke public access to database " + Quoted(a.database), scrub_,
                  [&a](Sql& sql, PGconn*) {
                    sql.Raw("REVOKE CONNECT, TEMPORARY ON DATABASE ").Id(a.database);
                    sql.Raw(" FROM PUBLIC").End();
                  });
  }

  Outcome<ApplyResult> Do(const SetDatabaseMarker& a) {
    return Simple("set marker of database " + Quoted(a.database), scrub_, [&a](Sql& sql, PGconn*) {
      sql.Raw("COMMENT ON DATABASE ").Id(a.database).Raw(" IS ").Lit(a.marker).End();
    });
  }

  // --- reclaim (a removed workspace) ----------------------------------------------------------

  Outcome<ApplyResult> Do(const DropDatabase& a) {
    // DROP DATABASE cannot run in a transaction block, so it goes alone. FORCE terminates the
    // sessions on it first (a member of the owner may end the owner's sessions).
    return Simple("drop database " + Quoted(a.database), scrub_, [&a](Sql& sql, PGconn*) {
      sql.Raw("DROP DATABASE IF EXISTS ").Id(a.database).Raw(" WITH (FORCE)").End();
    });
  }

  Outcome<ApplyResult> Do(const DropRole& a) {
    return WithAdmin(OnCluster("drop role " + Quoted(a.role)),
                     [&](PGconn* conn) -> Outcome<ApplyResult> {
                       Sql sql(conn);
                       sql.Raw("DROP ROLE IF EXISTS ").Id(a.role).End();
                       if (sql.error()) return *sql.error();
                       Watch watch(in_flight_, conn);
                       if (!watch.ok()) return ShuttingDown("statement not sent");
                       statements_.fetch_add(sql.statements());
                       ResultPtr result(PQexec(conn, sql.text().c_str()));
                       if (auto owns = StillOwnsObjects(conn, result.get(), a.role)) return *owns;
                       Outcome<ResultPtr> checked = pq::Check(conn, std::move(result), scrub_);
                       if (!checked) return Explain(checked.failure(), false);
                       return ApplyResult{sql.statements(), ""};
                     });
  }

  /// 2BP01 from DROP ROLE: the role still owns objects or holds privileges outside the database
  /// reclaim dropped. Nothing is reassigned or dropped on its behalf (that could take someone
  /// else's data with it); the server's detail lists what is left, for a human.
  std::optional<Failure> StillOwnsObjects(PGconn* conn, const PGresult* result,
                                          const std::string& role) const {
    const char* sqlstate =
        result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
    if (sqlstate == nullptr || std::string_view(sqlstate) != "2BP01") return std::nullopt;
    std::string detail;
    if (const char* text = PQresultErrorField(result, PG_DIAG_MESSAGE_DETAIL)) detail = text;
    ReplaceAll(detail, "\n", "; ");
    detail = OneLine(scrub_(detail));
    if (detail.size() > kMaxDetailChars) detail = detail.substr(0, kMaxDetailChars) + "...";
    Failure failure = pq::ResultFailure(conn, result, scrub_);
    failure.kind = FailureKind::kStalled;
    failure.reason = "RoleStillOwnsObjects";
    failure.message += (detail.empty() ? std::string() : " [" + detail + "]") + "; role " +
                       Quoted(role) +
                       " owns objects or holds privileges outside its dropped database: reassign "
                       "or drop them by hand (REASSIGN OWNED / DROP OWNED in each database "
                       "named), then the next pass drops the role";
    return failure;
  }

  // --- actions inside a tenant database --------------------------------------------------------

  Outcome<ApplyResult> Do(const EnsureExtensions& a) {
    std::string step = OnCluster("install extensions in database " + Quoted(a.database));
    Outcome<ConnPtr> conn = Connect({a.database, "", nullptr}, scrub_);
    if (!conn) return WithStep(conn.failure(), step);
    Outcome<ResultPtr> state = Query(conn->get(), kExtensionState, {a.role}, scrub_);
    if (!state) return WithStep(state.failure(), step);
    const PGresult* row = state->get();
    const auto text = [row](int column) {
      return PQgetisnull(row, 0, column) != 0 ? std::string() : std::string(PQgetvalue(row, 0, column));
    };
    const std::string owner = text(kSchemaOwner);
    const std::string me = text(kMe);
    if (!owner.empty() && owner != me) {
      return Failure::Stalled(
          "ExtensionSchemaNotOwned",
          step + ": schema \"extensions\" exists and is owned by role " + Quoted(owner) +
              ", not by the operator's role " + Quoted(me) +
              ": extensions are only created in a schema the tenant cannot write; drop or "
              "rename that schema, or make it the operator's");
    }
    std::set<std::string> present;
    for (const std::string& name : Split(text(kInstalled), ',')) present.insert(name);

    Sql sql(conn->get());
    if (owner.empty()) sql.Raw("CREATE SCHEMA ").Id(kExtensionSchema).End();
    if (text(kUsage) != "t") {
      sql.Raw("GRANT USAGE ON SCHEMA ").Id(kExtensionSchema).Raw(" TO ").Id(text(kGrantee)).End();
    }
    std::string created;
    for (const auto& extension : a.extensions) {
      if (present.count(extension) != 0) continue;  // wherever it is, it stays there
      sql.Raw("CREATE EXTENSION IF NOT EXISTS ").Id(extension).Raw(" WITH SCHEMA ");
      sql.Id(kExtensionSchema).Raw(" CASCADE").End();
      created += (created.empty() ? "" : ", ") + extension;
    }
    if (!SearchPathHasExtensions(text(kSettings))) {
      sql.Raw("ALTER DATABASE ").Id(a.database).Raw(" SET search_path = ");
      sql.Raw(kTenantSearchPath).End();
    }
    if (sql.error()) return WithStep(*sql.error(), step);
    if (sql.statements() == 0) return ApplyResult{1, "extensions already present"};
    // One round trip, one implicit transaction: all of it or nothing.
    Outcome<ResultPtr> result = Exec(conn->get(), sql.text(), sql.statements(), scrub_);
    if (!result) {
      Failure failure = result.failure();
      // 0A000 here means the extension's files are not installed on the server.
      if (failure.reason == "FeatureNotSupported") failure.reason = "ExtensionNotAvailable";
      return WithStep(std::move(failure), step);
    }
    return ApplyResult{1 + sql.statements(),
                       created.empty() ? "extensions schema prepared" : "created extensions " + created};
  }

  /// True when the database's own settings (`name=value` lines of pg_db_role_setting) give a
  /// search_path that names the schema `extensions`.
  static bool SearchPathHasExtensions(const std::string& settings) {
    for (const std::string& line : Split(settings, '\n')) {
      if (!line.starts_with("search_path=")) continue;
      for (std::string entry : Split(line.substr(12), ',')) {
        entry = std::string(Trim(entry));
        if (entry == kExtensionSchema || entry == "\"extensions\"") return true;
      }
    }
    return false;
  }

  Outcome<ApplyResult> Do(const ApplyMigrations& a) {
    Scrubber scrub = scrub_;
    scrub.Add(a.password);
    std::string in_database = " in database " + Quoted(a.database);
    int sent = 0;

    // 1. The ledger, as the admin: owned by the admin role, rows writable by the tenant.
    std::string step = OnCluster("prepare migrations ledger" + in_database);
    if (!a.ledger_ready) {
      Outcome<ConnPtr> admin = Connect({a.database, "", nullptr}, scrub);
      if (!admin) return WithStep(admin.failure(), step);
      Outcome<ResultPtr> state = Query(admin->get(), kLedgerState, {a.role}, scrub);
      ++sent;
      if (!state) return WithStep(state.failure(), step);
      const PGresult* row = state->get();
      const bool exists = PQgetisnull(row, 0, 0) == 0;
      const std::string owner = exists ? PQgetvalue(row, 0, 0) : "";
      const std::string me = PQgetvalue(row, 0, 1);
      if (exists && owner != me) {
        return Failure::Stalled(
            "LedgerNotOwned",
            step + ": schema \"tenant_master\" exists and is owned by role " + Quoted(owner) +
                ", not by the operator's role " + Quoted(me) +
                "; the migrations ledger is kept only in a schema the operator owns, so no "
                "migration runs until that schema is dropped or renamed (its owner can do it)");
      }
      if (std::string_view(PQgetvalue(row, 0, 2)) != "t") {
        Sql sql(admin->get());
        int statements = kCreateLedgerStatements;
        if (!exists) {
          sql.Raw(kCreateLedgerSchema);
          ++statements;
        }
        sql.Raw(kCreateLedger);
        sql.Raw("GRANT USAGE ON SCHEMA tenant_master TO ").Id(a.role).End();
        sql.Raw("GRANT SELECT, INSERT ON tenant_master.schema_migrations TO ").Id(a.role).End();
        if (sql.error()) return WithStep(*sql.error(), step);
        statements += sql.statements();
        Outcome<ResultPtr> created = Exec(admin->get(), sql.text(), statements, scrub);
        sent += statements;
        if (!created) return WithStep(created.failure(), step);
      }
    }

    // 2. Everything else as the tenant role: a migration can do only what the tenant may.
    step = OnCluster("run migrations as role " + Quoted(a.role) + in_database);
    Outcome<ConnPtr> tenant = Connect({a.database, a.role, &a.password}, scrub);
    if (!tenant) return WithStep(tenant.failure(), step);
    PGconn* conn = tenant->get();

    const std::string lock =
        "SELECT pg_catalog.pg_advisory_lock(" + std::string(kMigrationLockKey) + ")";
    Outcome<ResultPtr> locked = Exec(conn, lock, 1, scrub, true);
    ++sent;
    if (!locked) return WithStep(locked.failure(), step);

    Outcome<ResultPtr> ledger = Exec(conn, std::string(kReadLedger), 1, scrub, true);
    ++sent;
    if (!ledger) return WithStep(ledger.failure(), step);
    std::vector<migrations::AppliedMigration> applied;
    for (int row = 0; row < PQntuples(ledger->get()); ++row) {
      applied.push_back({PQgetvalue(ledger->get(), row, 0), PQgetvalue(ledger->get(), row, 1),
                         PQgetvalue(ledger->get(), row, 2)});
    }
    Outcome<std::vector<migrations::Migration>> pending =
        migrations::Pending(a.migrations, applied, a.database, a.ignore_missing);
    if (!pending) return pending.failure();  // the session's end releases the lock

    std::string done;
    for (const auto& migration : *pending) {
      Outcome<int> ran = RunMigration(conn, migration, a.database, scrub);
      if (!ran) return ran.failure();
      sent += *ran;
      done += (done.empty() ? "" : ", ") + migration.file;
    }
    // Best effort: closing the session releases the lock anyway.
    static_cast<void>(
        Exec(conn, "SELECT pg_catalog.pg_advisory_unlock(" + std::string(kMigrationLockKey) + ")",
             1, scrub, true));
    ++sent;
    return ApplyResult{sent, done.empty() ? "no pending migrations" : "applied " + done};
  }

  /// One migration, one transaction, one round trip: the file's SQL and its ledger row commit
  /// together or not at all. A file counts as one statement. `statement_timestamp()` is the
  /// arrival of the whole string, so the recorded duration covers the file's SQL.
  Outcome<int> RunMigration(PGconn* conn, const migrations::Migration& migration,
                            const std::string& database, const Scrubber& scrub) {
    static constexpr std::string_view kBegin = "BEGIN;\n";
    Sql sql(conn);
    sql.Raw(kBegin).Raw(migration.sql ? *migration.sql : std::string()).Raw("\n;\n");
    sql.Raw(
           "INSERT INTO tenant_master.schema_migrations (version, file, checksum, duration_ms)"
           " VALUES (")
        .Lit(migration.version)
        .Raw(", ")
        .Lit(migration.file)
        .Raw(", ")
        .Lit(migration.checksum)
        .Raw(
            ", (extract(epoch FROM pg_catalog.clock_timestamp() - "
            "pg_catalog.statement_timestamp()) * 1000)::integer)")
        .End();
    sql.Raw("COMMIT");
    std::string failed_in =
        "migration " + migration.file + " failed in database " + Quoted(database);
    if (sql.error()) return WithStep(*sql.error(), failed_in);
    constexpr int kStatements = 4;  // BEGIN, the file, INSERT, COMMIT
    ResultPtr result;
    {
      Watch watch(in_flight_, conn);
      if (!watch.ok()) return ShuttingDown(migration.file + " not run");
      statements_.fetch_add(kStatements);
      result.reset(PQexec(conn, sql.text().c_str()));
    }
    ExecStatusType status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return kStatements;

    // What the server says about the file: SQLSTATE, condition, line and column, and its
    // message with every quoted fragment hidden (it quotes the file's text: a symlinked secret
    // would be echoed). DETAIL, HINT and CONTEXT, which quote the file too, are left out.
    const char* sqlstate =
        result ? PQresultErrorField(result.get(), PG_DIAG_SQLSTATE) : nullptr;
    std::string where;
    if (sqlstate != nullptr) {
      const std::string_view condition = pq::ConditionName(sqlstate);
      if (!condition.empty()) where += " " + std::string(condition);
    }
    where += ", file " + migration.file;
    const char* position =
        result ? PQresultErrorField(result.get(), PG_DIAG_STATEMENT_POSITION) : nullptr;
    if (position != nullptr && migration.sql) {
      long at = std::strtol(position, nullptr, 10);
      std::optional<std::pair<int, int>> line =
          LineOfPosition(sql.text(), at, static_cast<long>(kBegin.size()));
      if (line) {
        where += ", line " + std::to_string(line->first) + ", column " +
                 std::to_string(line->second);
      }
    }
    Failure failure = Explain(pq::ResultFailure(conn, result.get(), scrub, where, true), true);
    if (PQtransactionStatus(conn) == PQTRANS_INERROR) {
      statements_.fetch_add(1);
      ResultPtr rollback(PQexec(conn, "ROLLBACK"));
    }
    failure.message = failed_in + ": " + failure.message;
    if (failure.kind == FailureKind::kTransient) return failure;
    return Failure::Stalled("MigrationFailed", std::move(failure.message));
  }

  const std::string cluster_;
  const Secret dsn_;
  const LibpqOptions options_;
  const std::optional<pq::DsnParts> target_;  // nullopt: libpq cannot parse the DSN
  const std::string admin_dbname_;
  Scrubber scrub_;
  InFlight in_flight_;
  Pool pool_;
  std::atomic<std::int64_t> statements_{0};
  std::atomic<Passwords> passwords_{Passwords::kUnknown};
};

}  // namespace

std::unique_ptr<LibpqGateway> MakeLibpqGateway(std::string cluster, Secret dsn,
                                               LibpqOptions options) {
  return std::make_unique<Gateway>(std::move(cluster), std::move(dsn), options);
}

}  // namespace tmaster::postgres
