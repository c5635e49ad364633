#include "controller/store/store_libpq.hpp"

#include <libpq-fe.h>

#include <charconv>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/crypto.hpp"
#include "common/pq_handles.hpp"

namespace tmaster::controller {
namespace {

using pq::ConnPtr;
using pq::ResultPtr;
using PqText = pq::Text;
using pq::ConninfoPtr;

constexpr std::string_view kDefaultDatabase = "tenant_master";

// Advisory-lock keys, two-int form (kLeaderLockClass, n): 1 is the leader lock (store_libpq.hpp),
// 2 serializes migrations. They must differ: a leader holds key 1 for its whole life, and a
// standby starting meanwhile must still be able to run Migrate.
static_assert(kLeaderLockClass == 29805);
constexpr std::string_view kMigrateLock = "SELECT pg_catalog.pg_advisory_xact_lock(29805, 2)";
constexpr std::string_view kTryLeaderLock = "SELECT pg_catalog.pg_try_advisory_lock(29805, 1)";
constexpr std::string_view kLeaderLockHeld =
    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks WHERE locktype = 'advisory'"
    " AND classid = 29805 AND objid = 1 AND objsubid = 2 AND pid = pg_catalog.pg_backend_pid()"
    " AND granted)";
constexpr std::string_view kLeaderUnlock = "SELECT pg_catalog.pg_advisory_unlock(29805, 1)";
// The server's side of the leader's keepalives: without them a leader whose host vanished
// (no FIN, no RST) would keep its session, and the lock, for the kernel's default of over two
// hours. User-settable GUCs, so no privilege is needed.
constexpr std::string_view kLeaderServerKeepalives =
    "SELECT pg_catalog.set_config('tcp_keepalives_idle', '5', false),"
    " pg_catalog.set_config('tcp_keepalives_interval', '2', false),"
    " pg_catalog.set_config('tcp_keepalives_count', '3', false),"
    " pg_catalog.set_config('tcp_user_timeout', '10000', false)";

/// A connection parameter the adapter sets after the DSN's own (with PQconnectdbParams, a later
/// keyword wins).
struct ConnectParam {
  const char* keyword;
  const char* value;
};

constexpr ConnectParam kStoreParams[] = {
    {"connect_timeout", "10"},
    {"fallback_application_name", "tenant-master-store"},
};
// The leader notices a dead peer within seconds: keepalives for an idle session, and
// tcp_user_timeout (ms) for a round trip whose data is never acknowledged, which keepalives
// do not cover. application_name is forced (not a fallback) so operators can find the leader's
// session in pg_stat_activity.
constexpr ConnectParam kLeaderParams[] = {
    {"connect_timeout", "5"},      {"application_name", "tenant-master-leader"},
    {"keepalives", "1"},           {"keepalives_idle", "5"},
    {"keepalives_interval", "2"},  {"keepalives_count", "3"},
    {"tcp_user_timeout", "10000"},
};

// ---------------------------------------------------------------------------------------------
// Schema. Append only: a released migration is never edited; each runs in the transaction that
// records it in tm_schema_version. spec_json is text, not jsonb, so its digest is the digest of
// exactly the bytes stored.

struct Migration {
  int version;
  std::string_view name;
  std::string_view sql;
};

constexpr std::string_view kCreateVersionTable =
    "CREATE TABLE IF NOT EXISTS tm_schema_version (\n"
    "  version integer PRIMARY KEY,\n"
    "  name text NOT NULL,\n"
    "  applied_at timestamptz NOT NULL DEFAULT now()\n"
    ")";

constexpr Migration kMigrations[] = {
    {1, "workspaces, status, events, webhook deliveries", R"SQL(
CREATE TABLE tm_workspaces (
  name text PRIMARY KEY,
  source text NOT NULL,
  revision text NOT NULL,
  spec_json text NOT NULL,
  spec_digest text NOT NULL,
  generation bigint NOT NULL CHECK (generation >= 1),
  deleting_since timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tm_workspaces_source ON tm_workspaces (source, name);
CREATE TABLE tm_workspace_status (
  name text PRIMARY KEY,
  observed_generation bigint NOT NULL,
  phase text NOT NULL,
  conditions_json text NOT NULL,
  last_error text NOT NULL,
  next_retry timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE tm_events (
  id bigserial PRIMARY KEY,
  workspace text NOT NULL,
  type text NOT NULL CHECK (type IN ('Normal', 'Warning')),
  reason text NOT NULL,
  message text NOT NULL,
  at timestamptz NOT NULL
);
CREATE INDEX tm_events_workspace ON tm_events (workspace, id DESC);
CREATE TABLE tm_webhook_deliveries (
  id bigserial PRIMARY KEY,
  provider text NOT NULL,
  verdict text NOT NULL,
  branch text NOT NULL,
  revision text NOT NULL,
  received_at timestamptz NOT NULL
);
)SQL"},
    {2, "status revision and last runs, source status", R"SQL(
ALTER TABLE tm_workspace_status
  ADD COLUMN revision text NOT NULL DEFAULT '',
  ADD COLUMN last_runs_json text NOT NULL DEFAULT '[]';
CREATE TABLE tm_sources (
  name text PRIMARY KEY,
  kind text NOT NULL,
  revision text NOT NULL,
  ready boolean NOT NULL,
  reason text NOT NULL,
  message text NOT NULL,
  last_sync timestamptz,
  last_attempt timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);
)SQL"},
};

// ---------------------------------------------------------------------------------------------
// Statements.

constexpr std::string_view kWorkspaceColumns =
    "name, source, revision, spec_json, spec_digest, generation,"
    " to_char(deleting_since AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')";

const std::string kUpsertSpec =
    "INSERT INTO tm_workspaces AS w (name, source, revision, spec_json, spec_digest, generation)"
    " VALUES ($1, $2, $3, $4, $5, 1)"
    " ON CONFLICT (name) DO UPDATE SET source = EXCLUDED.source, revision = EXCLUDED.revision,"
    " spec_json = EXCLUDED.spec_json, spec_digest = EXCLUDED.spec_digest,"
    " generation = w.generation"
    "   + CASE WHEN w.spec_digest = EXCLUDED.spec_digest THEN 0 ELSE 1 END,"
    " updated_at = now()"
    " RETURNING " +
    std::string(kWorkspaceColumns);
// "Ordered by name" is byte order (COLLATE "C"), whatever the database's locale: the same order
// as the in-memory fake, and names with '-' sort the same everywhere.
const std::string kListAll =
    "SELECT " + std::string(kWorkspaceColumns) + " FROM tm_workspaces ORDER BY name COLLATE \"C\"";
const std::string kListSource = "SELECT " + std::string(kWorkspaceColumns) +
                                " FROM tm_workspaces WHERE source = $1 ORDER BY name COLLATE \"C\"";
const std::string kGet =
    "SELECT " + std::string(kWorkspaceColumns) + " FROM tm_workspaces WHERE name = $1";
const std::string kMarkDeleting =
    "UPDATE tm_workspaces SET deleting_since = coalesce(deleting_since, now()), updated_at = now()"
    " WHERE name = $1 RETURNING " +
    std::string(kWorkspaceColumns);
const std::string kCancelDeleting =
    "UPDATE tm_workspaces SET deleting_since = NULL, updated_at = now()"
    " WHERE name = $1 RETURNING " +
    std::string(kWorkspaceColumns);
constexpr std::string_view kRemove =
    "WITH s AS (DELETE FROM tm_workspace_status WHERE name = $1)"
    " DELETE FROM tm_workspaces WHERE name = $1";
constexpr std::string_view kPutStatus =
    "INSERT INTO tm_workspace_status (name, observed_generation, phase, conditions_json,"
    " last_error, next_retry, revision, last_runs_json)"
    " VALUES ($1, $2::bigint, $3, $4, $5, to_timestamp($6::bigint), $7, $8)"
    " ON CONFLICT (name) DO UPDATE SET observed_generation = EXCLUDED.observed_generation,"
    " phase = EXCLUDED.phase, conditions_json = EXCLUDED.conditions_json,"
    " last_error = EXCLUDED.last_error, next_retry = EXCLUDED.next_retry,"
    " revision = EXCLUDED.revision, last_runs_json = EXCLUDED.last_runs_json, updated_at = now()";
constexpr std::string_view kStatusColumns =
    "SELECT name, observed_generation, phase, conditions_json, last_error,"
    " extract(epoch FROM next_retry)::bigint, revision, last_runs_json FROM tm_workspace_status";
const std::string kGetStatus = std::string(kStatusColumns) + " WHERE name = $1";
const std::string kListStatuses = std::string(kStatusColumns) + " ORDER BY name COLLATE \"C\"";
// 0 means "never": NULL in the table, 0 again when read.
constexpr std::string_view kPutSourceStatus =
    "INSERT INTO tm_sources AS s (name, kind, revision, ready, reason, message, last_sync,"
    " last_attempt) VALUES ($1, $2, $3, $4::boolean, $5, $6,"
    " CASE WHEN $7::bigint = 0 THEN NULL ELSE to_timestamp($7::bigint) END,"
    " CASE WHEN $8::bigint = 0 THEN NULL ELSE to_timestamp($8::bigint) END)"
    " ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, revision = EXCLUDED.revision,"
    " ready = EXCLUDED.ready, reason = EXCLUDED.reason, message = EXCLUDED.message,"
    " last_sync = EXCLUDED.last_sync, last_attempt = EXCLUDED.last_attempt, updated_at = now()";
constexpr std::string_view kListSourceStatuses =
    "SELECT name, kind, revision, ready, reason, message,"
    " coalesce(extract(epoch FROM last_sync)::bigint, 0),"
    " coalesce(extract(epoch FROM last_attempt)::bigint, 0)"
    " FROM tm_sources ORDER BY name COLLATE \"C\"";
constexpr std::string_view kAppendEvent =
    "INSERT INTO tm_events (workspace, type, reason, message, at) VALUES ($1, $2, $3, $4,"
    " CASE WHEN $5::bigint = 0 THEN now() ELSE to_timestamp($5::bigint) END) RETURNING id";
constexpr std::string_view kEventColumns =
    "SELECT id, workspace, type, reason, message, extract(epoch FROM at)::bigint FROM tm_events";
constexpr std::string_view kRecordDelivery =
    "INSERT INTO tm_webhook_deliveries (provider, verdict, branch, revision, received_at)"
    " VALUES ($1, $2, $3, $4, CASE WHEN $5::bigint = 0 THEN now()"
    " ELSE to_timestamp($5::bigint) END) RETURNING id";
constexpr std::string_view kListDeliveries =
    "SELECT id, provider, verdict, branch, revision, extract(epoch FROM received_at)::bigint"
    " FROM tm_webhook_deliveries ORDER BY id DESC LIMIT $1::bigint";

// ---------------------------------------------------------------------------------------------
// Messages and failures.

void ReplaceAll(std::string& text, std::string_view needle, std::string_view with) {
  if (needle.empty()) return;
  for (std::size_t at = text.find(needle); at != std::string::npos;
       at = text.find(needle, at + with.size())) {
    text.replace(at, needle.size(), with);
  }
}

bool StartsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

/// SQLSTATE -> failure kind (the same rules as the PostgreSQL reconciler, for the store's needs).
Failure Classify(std::string_view sqlstate, std::string message) {
  struct Rule {
    std::string_view prefix;
    FailureKind kind;
    std::string_view reason;
  };
  static constexpr Rule kRules[] = {
      {"55P03", FailureKind::kTransient, "LockNotAvailable"},
      {"42501", FailureKind::kStalled, "InsufficientPrivilege"},
      {"08", FailureKind::kTransient, "ConnectionFailed"},
      {"57", FailureKind::kTransient, "PostgresUnavailable"},
      {"53", FailureKind::kTransient, "InsufficientResources"},
      {"40", FailureKind::kTransient, "TransactionRollback"},
      {"58", FailureKind::kTransient, "SystemError"},
      {"XX", FailureKind::kTransient, "InternalError"},
      {"28", FailureKind::kStalled, "AuthenticationFailed"},
      {"42", FailureKind::kStalled, "SqlError"},
      {"22", FailureKind::kStalled, "DataException"},
      {"23", FailureKind::kStalled, "IntegrityConstraintViolation"},
      {"25", FailureKind::kStalled, "InvalidTransactionState"},
  };
  for (const auto& rule : kRules) {
    if (StartsWith(sqlstate, rule.prefix)) {
      return {rule.kind, std::string(rule.reason), std::move(message)};
    }
  }
  if (sqlstate.empty()) return Failure::Transient("ConnectionFailed", std::move(message));
  return Failure::Stalled("SqlError", std::move(message));
}

Failure WithStep(Failure failure, std::string_view step) {
  failure.message = "store: " + std::string(step) + ": " + failure.message;
  return failure;
}

std::optional<std::int64_t> ParseInt(const char* text) {
  std::int64_t value = 0;
  std::string_view view(text);
  auto [end, error] = std::from_chars(view.data(), view.data() + view.size(), value);
  if (error != std::errc() || end != view.data() + view.size()) return std::nullopt;
  return value;
}

Failure BadValue(std::string_view what) {
  return Failure::Stalled("CorruptStore", "unexpected value in " + std::string(what));
}

Outcome<std::int64_t> IdOf(PGresult* res) {
  if (PQntuples(res) != 1) return BadValue("RETURNING id");
  auto id = ParseInt(PQgetvalue(res, 0, 0));
  if (!id) return BadValue("RETURNING id");
  return *id;
}

Outcome<StoredWorkspace> WorkspaceAt(PGresult* res, int row) {
  if (row >= PQntuples(res)) return BadValue("tm_workspaces");
  StoredWorkspace workspace;
  workspace.name = PQgetvalue(res, row, 0);
  workspace.source = PQgetvalue(res, row, 1);
  workspace.revision = PQgetvalue(res, row, 2);
  workspace.spec_json = PQgetvalue(res, row, 3);
  workspace.spec_digest = PQgetvalue(res, row, 4);
  auto generation = ParseInt(PQgetvalue(res, row, 5));
  if (!generation) return BadValue("tm_workspaces.generation");
  workspace.generation = *generation;
  if (PQgetisnull(res, row, 6) == 0) workspace.deleting_since = PQgetvalue(res, row, 6);
  return workspace;
}

/// A row of kStatusColumns.
Outcome<WorkspaceStatus> StatusAt(PGresult* res, int row) {
  WorkspaceStatus status;
  status.name = PQgetvalue(res, row, 0);
  auto generation = ParseInt(PQgetvalue(res, row, 1));
  if (!generation) return BadValue("tm_workspace_status.observed_generation");
  status.observed_generation = *generation;
  status.phase = PQgetvalue(res, row, 2);
  status.conditions_json = PQgetvalue(res, row, 3);
  status.last_error = PQgetvalue(res, row, 4);
  if (PQgetisnull(res, row, 5) == 0) {
    status.next_retry_unix = ParseInt(PQgetvalue(res, row, 5));
    if (!status.next_retry_unix) return BadValue("tm_workspace_status.next_retry");
  }
  status.revision = PQgetvalue(res, row, 6);
  status.last_runs_json = PQgetvalue(res, row, 7);
  return status;
}

/// A row of kListSourceStatuses.
Outcome<SourceStatus> SourceStatusAt(PGresult* res, int row) {
  SourceStatus status;
  status.name = PQgetvalue(res, row, 0);
  status.kind = PQgetvalue(res, row, 1);
  status.revision = PQgetvalue(res, row, 2);
  status.ready = std::string_view(PQgetvalue(res, row, 3)) == "t";
  status.reason = PQgetvalue(res, row, 4);
  status.message = PQgetvalue(res, row, 5);
  auto last_sync = ParseInt(PQgetvalue(res, row, 6));
  auto last_attempt = ParseInt(PQgetvalue(res, row, 7));
  if (!last_sync || !last_attempt) return BadValue("tm_sources");
  status.last_sync_unix = *last_sync;
  status.last_attempt_unix = *last_attempt;
  return status;
}

// ---------------------------------------------------------------------------------------------

/// The store's DSN and how to open sessions on its database: defaulting of dbname, creation of
/// the database when missing, scrubbing of secrets from every message. Shared by the store and
/// the leader lock, which differ only in their connection parameters. Immutable after
/// construction, so safe to share between threads.
class StoreConnector {
 public:
  StoreConnector(Secret dsn, std::span<const ConnectParam> params)
      : dsn_(std::move(dsn)), params_(params.begin(), params.end()) {
    ParseDsn();
  }

  /// A new session on the store's database, which is created first when it does not exist.
  Outcome<ConnPtr> Open() const {
    if (!dsn_valid_) {
      return Failure::Stalled("InvalidDsn", "the store's connection string cannot be parsed");
    }
    auto conn = ConnectTo(dbname_);
    if (!conn && conn.failure().reason == "DatabaseMissing") {
      if (auto created = CreateDatabase(); !created) {
        return WithStep(created.failure(), "create " + Describe(dbname_));
      }
      conn = ConnectTo(dbname_);
    }
    return conn;
  }

  Outcome<ResultPtr> Exec(PGconn* conn, std::string_view sql,
                          const std::vector<std::string>& params) const {
    std::vector<std::optional<std::string>> nullable(params.begin(), params.end());
    return ExecNullable(conn, sql, nullable);
  }

  Outcome<ResultPtr> ExecNullable(PGconn* conn, std::string_view sql,
                                  const std::vector<std::optional<std::string>>& params) const {
    std::vector<const char*> values;
    values.reserve(params.size());
    for (const auto& param : params) values.push_back(param ? param->c_str() : nullptr);
    ResultPtr result(PQexecParams(conn, std::string(sql).c_str(), static_cast<int>(values.size()),
                                  nullptr, values.data(), nullptr, nullptr, 0));
    ExecStatusType status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return result;
    const char* sqlstate = result ? PQresultErrorField(result.get(), PG_DIAG_SQLSTATE) : nullptr;
    const char* primary =
        result ? PQresultErrorField(result.get(), PG_DIAG_MESSAGE_PRIMARY) : nullptr;
    if (sqlstate == nullptr || primary == nullptr) {
      return Classify("", Scrub(PQerrorMessage(conn)));
    }
    return Classify(sqlstate, "ERROR: " + Scrub(primary) + " (SQLSTATE " + sqlstate + ")");
  }

  [[nodiscard]] std::string Scrub(std::string_view text) const {
    std::string out(text);
    for (const auto& secret : secrets_) ReplaceAll(out, secret, "<redacted>");
    for (char& c : out) {
      if (c == '\n' || c == '\r') c = ' ';
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
  }

 private:
  void ParseDsn() {
    char* error = nullptr;
    ConninfoPtr options(PQconninfoParse(dsn_.Reveal().c_str(), &error));
    PqText error_text(error);
    if (!options) return;  // dsn_valid_ stays false; every call fails with InvalidDsn
    dsn_valid_ = true;
    for (PQconninfoOption* option = options.get(); option->keyword != nullptr; ++option) {
      if (option->val == nullptr) continue;
      std::string_view keyword(option->keyword);
      if (keyword == "dbname") dbname_ = option->val;
      if (keyword == "host") host_ = option->val;
      if (keyword == "port") port_ = option->val;
      if (keyword == "password") secrets_.emplace_back(option->val);
    }
    if (dbname_.empty()) dbname_ = std::string(kDefaultDatabase);
    secrets_.push_back(dsn_.Reveal());
  }

  [[nodiscard]] std::string Describe(const std::string& dbname) const {
    std::string where = "database \"" + dbname + "\"";
    if (!host_.empty()) where += " on " + host_ + (port_.empty() ? "" : ":" + port_);
    return where;
  }

  Outcome<ConnPtr> ConnectTo(const std::string& dbname) const {
    // The DSN first (expanded), then dbname, then our parameters: later keywords win.
    std::vector<const char*> keywords = {"dbname", "dbname"};
    std::vector<const char*> values = {dsn_.Reveal().c_str(), dbname.c_str()};
    for (const ConnectParam& param : params_) {
      keywords.push_back(param.keyword);
      values.push_back(param.value);
    }
    keywords.push_back(nullptr);
    values.push_back(nullptr);
    ConnPtr conn(PQconnectdbParams(keywords.data(), values.data(), 1));
    if (conn && PQstatus(conn.get()) == CONNECTION_OK) {
      pq::SilenceNotices(conn.get());
      return conn;
    }
    std::string error = conn ? Scrub(PQerrorMessage(conn.get())) : "out of memory";
    std::string message = "could not connect to " + Describe(dbname) + ": " + error;
    if (error.find("does not exist") != std::string::npos &&
        error.find("database") != std::string::npos) {
      return Failure::Stalled("DatabaseMissing", std::move(message));
    }
    if (error.find("password authentication failed") != std::string::npos ||
        error.find("no pg_hba.conf entry") != std::string::npos) {
      return Failure::Stalled("AuthenticationFailed", std::move(message));
    }
    return Failure::Transient("ConnectionFailed", std::move(message));
  }

  /// Creates the store's database from the `postgres` database of the same server.
  Outcome<Done> CreateDatabase() const {
    auto admin = ConnectTo("postgres");
    if (!admin) return admin.failure();
    PGconn* conn = admin->get();
    auto exists = Exec(conn, "SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1", {dbname_});
    if (!exists) return exists.failure();
    if (PQntuples(exists->get()) > 0) return Done{};
    PqText quoted(PQescapeIdentifier(conn, dbname_.c_str(), dbname_.size()));
    if (!quoted) return Failure::Stalled("InvalidDatabaseName", Scrub(PQerrorMessage(conn)));
    auto created = Exec(conn, "CREATE DATABASE " + std::string(quoted.get()), {});
    // 42P04: created by a replica in the meantime, which is what we wanted.
    if (!created && created.failure().message.find("SQLSTATE 42P04") == std::string::npos) {
      return created.failure();
    }
    return Done{};
  }

  Secret dsn_;
  std::vector<ConnectParam> params_;
  bool dsn_valid_ = false;
  std::string dbname_;
  std::string host_;
  std::string port_;
  std::vector<std::string> secrets_;
};

// ---------------------------------------------------------------------------------------------

class LibpqStore final : public Store {
 public:
  explicit LibpqStore(Secret dsn) : connector_(std::move(dsn), kStoreParams) {}

  Outcome<Done> Migrate() override {
    return Run("migrate", [this](PGconn* conn) -> Outcome<Done> {
      if (auto begun = Exec(conn, "BEGIN", {}); !begun) return begun.failure();
      Outcome<Done> done = MigrateIn(conn);
      if (!done) {
        (void)Exec(conn, "ROLLBACK", {});
        return done;
      }
      if (auto committed = Exec(conn, "COMMIT", {}); !committed) return committed.failure();
      return Done{};
    });
  }

  Outcome<StoredWorkspace> UpsertSpec(const std::string& name, const std::string& source,
                                      const std::string& revision,
                                      const std::string& spec_json) override {
    std::string digest = crypto::Sha256Hex(spec_json);
    return Run("upsert spec of workspace \"" + name + "\"",
               [&](PGconn* conn) -> Outcome<StoredWorkspace> {
                 auto result = Exec(conn, kUpsertSpec, {name, source, revision, spec_json, digest});
                 if (!result) return result.failure();
                 return WorkspaceAt(result->get(), 0);
               });
  }

  Outcome<std::vector<StoredWorkspace>> ListWorkspaces(
      const std::optional<std::string>& source) override {
    return Run("list workspaces", [&](PGconn* conn) -> Outcome<std::vector<StoredWorkspace>> {
      auto result = source ? Exec(conn, kListSource, {*source}) : Exec(conn, kListAll, {});
      if (!result) return result.failure();
      std::vector<StoredWorkspace> out;
      for (int row = 0; row < PQntuples(result->get()); ++row) {
        auto workspace = WorkspaceAt(result->get(), row);
        if (!workspace) return workspace.failure();
        out.push_back(std::move(*workspace));
      }
      return out;
    });
  }

  Outcome<std::optional<StoredWorkspace>> Get(const std::string& name) override {
    return Run("read workspace \"" + name + "\"",
               [&](PGconn* conn) -> Outcome<std::optional<StoredWorkspace>> {
                 auto result = Exec(conn, kGet, {name});
                 if (!result) return result.failure();
                 if (PQntuples(result->get()) == 0) return std::optional<StoredWorkspace>();
                 auto workspace = WorkspaceAt(result->get(), 0);
                 if (!workspace) return workspace.failure();
                 return std::optional<StoredWorkspace>(std::move(*workspace));
               });
  }

  Outcome<StoredWorkspace> MarkDeleting(const std::string& name) override {
    std::string step = "mark workspace \"" + name + "\" deleting";
    return Run(step, [&](PGconn* conn) -> Outcome<StoredWorkspace> {
      auto result = Exec(conn, kMarkDeleting, {name});
      if (!result) return result.failure();
      if (PQntuples(result->get()) == 0) {
        return Failure::Stalled("WorkspaceNotFound", "no workspace of that name is stored");
      }
      return WorkspaceAt(result->get(), 0);
    });
  }

  Outcome<StoredWorkspace> CancelDeleting(const std::string& name) override {
    std::string step = "cancel the deletion of workspace \"" + name + "\"";
    return Run(step, [&](PGconn* conn) -> Outcome<StoredWorkspace> {
      auto result = Exec(conn, kCancelDeleting, {name});
      if (!result) return result.failure();
      if (PQntuples(result->get()) == 0) {
        return Failure::Stalled("WorkspaceNotFound", "no workspace of that name is stored");
      }
      return WorkspaceAt(result->get(), 0);
    });
  }

  Outcome<bool> Remove(const std::string& name) override {
    return Run("remove workspace \"" + name + "\"", [&](PGconn* conn) -> Outcome<bool> {
      auto result = Exec(conn, kRemove, {name});
      if (!result) return result.failure();
      return std::string_view(PQcmdTuples(result->get())) != "0";
    });
  }

  Outcome<Done> PutStatus(const WorkspaceStatus& status) override {
    return Run("store status of workspace \"" + status.name + "\"",
               [&](PGconn* conn) -> Outcome<Done> {
                 std::vector<std::optional<std::string>> params = {
                     status.name,       std::to_string(status.observed_generation),
                     status.phase,      status.conditions_json,
                     status.last_error, std::nullopt,
                     status.revision,   status.last_runs_json};
                 if (status.next_retry_unix) params[5] = std::to_string(*status.next_retry_unix);
                 auto result = connector_.ExecNullable(conn, kPutStatus, params);
                 if (!result) return result.failure();
                 return Done{};
               });
  }

  Outcome<std::optional<WorkspaceStatus>> GetStatus(const std::string& name) override {
    return Run("read status of workspace \"" + name + "\"",
               [&](PGconn* conn) -> Outcome<std::optional<WorkspaceStatus>> {
                 auto result = Exec(conn, kGetStatus, {name});
                 if (!result) return result.failure();
                 if (PQntuples(result->get()) == 0) return std::optional<WorkspaceStatus>();
                 auto status = StatusAt(result->get(), 0);
                 if (!status) return status.failure();
                 return std::optional<WorkspaceStatus>(std::move(*status));
               });
  }

  Outcome<std::vector<WorkspaceStatus>> ListStatuses() override {
    return Run("list workspace statuses",
               [&](PGconn* conn) -> Outcome<std::vector<WorkspaceStatus>> {
                 auto result = Exec(conn, kListStatuses, {});
                 if (!result) return result.failure();
                 std::vector<WorkspaceStatus> out;
                 out.reserve(static_cast<std::size_t>(PQntuples(result->get())));
                 for (int row = 0; row < PQntuples(result->get()); ++row) {
                   auto status = StatusAt(result->get(), row);
                   if (!status) return status.failure();
                   out.push_back(std::move(*status));
                 }
                 return out;
               });
  }

  Outcome<Done> PutSourceStatus(const SourceStatus& status) override {
    return Run(
        "store status of source \"" + status.name + "\"", [&](PGconn* conn) -> Outcome<Done> {
          auto result =
              Exec(conn, kPutSourceStatus,
                   {status.name, status.kind, status.revision, status.ready ? "true" : "false",
                    status.reason, status.message, std::to_string(status.last_sync_unix),
                    std::to_string(status.last_attempt_unix)});
          if (!result) return result.failure();
          return Done{};
        });
  }

  Outcome<std::vector<SourceStatus>> ListSourceStatuses() override {
    return Run("list source statuses", [&](PGconn* conn) -> Outcome<std::vector<SourceStatus>> {
      auto result = Exec(conn, kListSourceStatuses, {});
      if (!result) return result.failure();
      std::vector<SourceStatus> out;
      for (int row = 0; row < PQntuples(result->get()); ++row) {
        auto status = SourceStatusAt(result->get(), row);
        if (!status) return status.failure();
        out.push_back(std::move(*status));
      }
      return out;
    });
  }

  Outcome<std::int64_t> AppendEvent(const Event& event) override {
    return Run("append event for workspace \"" + event.workspace + "\"",
               [&](PGconn* conn) -> Outcome<std::int64_t> {
                 auto result = Exec(conn, kAppendEvent,
                                    {event.workspace, event.type, event.reason, event.message,
                                     std::to_string(event.at_unix)});
                 if (!result) return result.failure();
                 return IdOf(result->get());
               });
  }

  Outcome<std::vector<Event>> ListEvents(const std::optional<std::string>& workspace,
                                         std::int64_t limit) override {
    return Run("list events", [&](PGconn* conn) -> Outcome<std::vector<Event>> {
      std::string sql(kEventColumns);
      std::vector<std::string> params = {std::to_string(limit)};
      if (workspace) {
        sql += " WHERE workspace = $2";
        params.push_back(*workspace);
      }
      sql += " ORDER BY id DESC LIMIT $1::bigint";
      auto result = Exec(conn, sql, params);
      if (!result) return result.failure();
      PGresult* res = result->get();
      std::vector<Event> out;
      for (int row = 0; row < PQntuples(res); ++row) {
        Event event;
        auto id = ParseInt(PQgetvalue(res, row, 0));
        auto at = ParseInt(PQgetvalue(res, row, 5));
        if (!id || !at) return BadValue("tm_events");
        event.id = *id;
        event.workspace = PQgetvalue(res, row, 1);
        event.type = PQgetvalue(res, row, 2);
        event.reason = PQgetvalue(res, row, 3);
        event.message = PQgetvalue(res, row, 4);
        event.at_unix = *at;
        out.push_back(std::move(event));
      }
      return out;
    });
  }

  Outcome<std::int64_t> RecordDelivery(const WebhookDelivery& delivery) override {
    return Run("record webhook delivery", [&](PGconn* conn) -> Outcome<std::int64_t> {
      auto result = Exec(conn, kRecordDelivery,
                         {delivery.provider, delivery.verdict, delivery.branch, delivery.revision,
                          std::to_string(delivery.received_at_unix)});
      if (!result) return result.failure();
      return IdOf(result->get());
    });
  }

  Outcome<std::vector<WebhookDelivery>> ListDeliveries(std::int64_t limit) override {
    return Run("list webhook deliveries",
               [&](PGconn* conn) -> Outcome<std::vector<WebhookDelivery>> {
                 auto result = Exec(conn, kListDeliveries, {std::to_string(limit)});
                 if (!result) return result.failure();
                 PGresult* res = result->get();
                 std::vector<WebhookDelivery> out;
                 for (int row = 0; row < PQntuples(res); ++row) {
                   WebhookDelivery delivery;
                   auto id = ParseInt(PQgetvalue(res, row, 0));
                   auto at = ParseInt(PQgetvalue(res, row, 5));
                   if (!id || !at) return BadValue("tm_webhook_deliveries");
                   delivery.id = *id;
                   delivery.provider = PQgetvalue(res, row, 1);
                   delivery.verdict = PQgetvalue(res, row, 2);
                   delivery.branch = PQgetvalue(res, row, 3);
                   delivery.revision = PQgetvalue(res, row, 4);
                   delivery.received_at_unix = *at;
                   out.push_back(std::move(delivery));
                 }
                 return out;
               });
  }

 private:
  Outcome<PGconn*> Connection() {
    if (conn_ && PQstatus(conn_.get()) == CONNECTION_OK) return conn_.get();
    conn_.reset();
    auto conn = connector_.Open();
    if (!conn) return conn.failure();
    conn_ = std::move(*conn);
    return conn_.get();
  }

  /// Runs `body` on the connection under the mutex. A connection found broken afterwards (the
  /// server restarted) is replaced and `body` runs once more. Failures get the step prefixed.
  template <class Body>
  auto Run(std::string_view step, Body body) -> decltype(body(nullptr)) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (int attempt = 0;; ++attempt) {
      auto conn = Connection();
      if (!conn) return WithStep(conn.failure(), step);
      auto out = body(*conn);
      if (out.ok()) return out;
      if (attempt > 0 || PQstatus(*conn) != CONNECTION_BAD) return WithStep(out.failure(), step);
      conn_.reset();
    }
  }

  Outcome<ResultPtr> Exec(PGconn* conn, std::string_view sql,
                          const std::vector<std::string>& params) const {
    return connector_.Exec(conn, sql, params);
  }

  Outcome<Done> MigrateIn(PGconn* conn) const {
    if (auto locked = Exec(conn, kMigrateLock, {}); !locked) return locked.failure();
    if (auto table = Exec(conn, kCreateVersionTable, {}); !table) return table.failure();
    auto applied = Exec(conn, "SELECT version FROM tm_schema_version", {});
    if (!applied) return applied.failure();
    std::vector<std::int64_t> versions;
    for (int row = 0; row < PQntuples(applied->get()); ++row) {
      auto version = ParseInt(PQgetvalue(applied->get(), row, 0));
      if (!version) return BadValue("tm_schema_version");
      versions.push_back(*version);
    }
    std::int64_t newest_known = kMigrations[std::size(kMigrations) - 1].version;
    for (std::int64_t version : versions) {
      if (version > newest_known) {
        return Failure::Stalled("SchemaTooNew", "the store has schema version " +
                                                    std::to_string(version) +
                                                    ", newer than this operator knows (" +
                                                    std::to_string(newest_known) + ")");
      }
    }
    for (const Migration& migration : kMigrations) {
      bool done = false;
      for (std::int64_t version : versions) done = done || version == migration.version;
      if (done) continue;
      // Several statements: the simple query protocol, inside the open transaction.
      ResultPtr result(PQexec(conn, std::string(migration.sql).c_str()));
      ExecStatusType status = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
      if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
        const char* sqlstate =
            result ? PQresultErrorField(result.get(), PG_DIAG_SQLSTATE) : nullptr;
        std::string message = "migration " + std::to_string(migration.version) + ": " +
                              connector_.Scrub(PQerrorMessage(conn));
        return Classify(sqlstate != nullptr ? sqlstate : "", std::move(message));
      }
      auto recorded = Exec(conn, "INSERT INTO tm_schema_version (version, name) VALUES ($1, $2)",
                           {std::to_string(migration.version), std::string(migration.name)});
      if (!recorded) return recorded.failure();
    }
    return Done{};
  }

  const StoreConnector connector_;

  std::mutex mutex_;
  ConnPtr conn_;  // guarded by mutex_
};

// ---------------------------------------------------------------------------------------------

class LibpqLeaderLock final : public LeaderLock {
 public:
  explicit LibpqLeaderLock(Secret dsn) : connector_(std::move(dsn), kLeaderParams) {}
  ~LibpqLeaderLock() override { Release(); }
  LibpqLeaderLock(const LibpqLeaderLock&) = delete;
  LibpqLeaderLock& operator=(const LibpqLeaderLock&) = delete;

  Outcome<bool> TryAcquire() override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (held_) {
      // Already ours: confirm it (one round trip) instead of stacking another session-level
      // hold on top.
      auto still = Held();
      if (still.ok() && *still) return true;
      Drop();  // unsure or lost: closing the session is the one certain way to hold nothing
    }
    for (int attempt = 0;; ++attempt) {
      if (!conn_ || PQstatus(conn_.get()) != CONNECTION_OK) {
        if (auto opened = Open(); !opened) return LeaderFailure(opened.failure(), "connect");
      }
      auto result = connector_.Exec(conn_.get(), kTryLeaderLock, {});
      if (result) {
        held_ = PQntuples(result->get()) == 1 &&
                std::string_view(PQgetvalue(result->get(), 0, 0)) == "t";
        return held_;
      }
      // A session that broke under us (the server restarted) is replaced once; the new one
      // starts without the lock, so trying again is an honest first try.
      bool broken = PQstatus(conn_.get()) == CONNECTION_BAD;
      Drop();
      if (!broken || attempt > 0) return LeaderFailure(result.failure(), "acquire");
    }
  }

  Outcome<bool> StillHeld() override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!held_) return false;
    if (!conn_ || PQstatus(conn_.get()) != CONNECTION_OK) {
      Drop();
      return false;
    }
    auto still = Held();
    if (!still.ok() && PQstatus(conn_.get()) == CONNECTION_BAD) {
      Drop();  // the session ended, and the lock with it: lost, not a failure
      return false;
    }
    if (!still.ok()) return LeaderFailure(still.failure(), "check");
    if (!*still) held_ = false;
    return *still;
  }

  void Release() override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (held_ && conn_ && PQstatus(conn_.get()) == CONNECTION_OK) {
      (void)connector_.Exec(conn_.get(), kLeaderUnlock, {});
    }
    Drop();  // closing the session releases whatever the unlock could not
  }

 private:
  /// A new session with the server's keepalives set; the old one (if any) is closed.
  Outcome<Done> Open() {
    Drop();
    auto conn = connector_.Open();
    if (!conn) return conn.failure();
    if (auto set = connector_.Exec(conn->get(), kLeaderServerKeepalives, {}); !set) {
      return set.failure();
    }
    conn_ = std::move(*conn);
    return Done{};
  }

  /// One round trip: does this session hold the lock?
  Outcome<bool> Held() {
    auto result = connector_.Exec(conn_.get(), kLeaderLockHeld, {});
    if (!result) return result.failure();
    return PQntuples(result->get()) == 1 &&
           std::string_view(PQgetvalue(result->get(), 0, 0)) == "t";
  }

  void Drop() {
    conn_.reset();
    held_ = false;
  }

  /// Every leader-lock failure is transient: a standby keeps trying, and a leader that cannot
  /// confirm its lock stops its workers either way. The reason still says what happened.
  static Failure LeaderFailure(Failure failure, std::string_view step) {
    failure.kind = FailureKind::kTransient;
    failure.message = "leader lock: " + std::string(step) + ": " + failure.message;
    return failure;
  }

  const StoreConnector connector_;

  std::mutex mutex_;
  ConnPtr conn_;       // guarded by mutex_
  bool held_ = false;  // guarded by mutex_: this session took the lock and has not lost it
};

// ---------------------------------------------------------------------------------------------

/// `'value'` for a conninfo string: backslash and single quote escaped with a backslash.
std::string QuoteConninfoValue(std::string_view value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\\' || c == '\'') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

}  // namespace

std::unique_ptr<Store> MakeLibpqStore(Secret dsn) {
  return std::make_unique<LibpqStore>(std::move(dsn));
}

std::unique_ptr<LeaderLock> MakeLibpqLeaderLock(Secret dsn) {
  return std::make_unique<LibpqLeaderLock>(std::move(dsn));
}

Outcome<Secret> StoreDsnFromClusterDsn(const Secret& cluster_dsn) {
  char* error = nullptr;
  ConninfoPtr options(PQconninfoParse(cluster_dsn.Reveal().c_str(), &error));
  // libpq's message can quote the offending part of the DSN, password included: not shown.
  PqText error_text(error);
  if (!options) {
    return Failure::Stalled("InvalidConfig",
                            "the cluster DSN is not a valid libpq conninfo or URI, so the "
                            "store's DSN cannot be derived from it");
  }
  std::string out;
  for (PQconninfoOption* option = options.get(); option->keyword != nullptr; ++option) {
    if (option->val == nullptr || std::string_view(option->keyword) == "dbname") continue;
    out += std::string(option->keyword) + "=" + QuoteConninfoValue(option->val) + " ";
  }
  out += "dbname=" + QuoteConninfoValue(kDefaultDatabase);
  return Secret(std::move(out));
}

}  // namespace tmaster::controller
