#include "controller/store_libpq.hpp"

#include <libpq-fe.h>

#include <charconv>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
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
constexpr std::string_view kConnectTimeoutSeconds = "10";
// pg_advisory_xact_lock(kLockClass, kLockMigrate): "tm" and 1. Leader election will use another
// key of the same class.
constexpr std::string_view kMigrateLock = "SELECT pg_catalog.pg_advisory_xact_lock(29805, 1)";

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
    " RETURNING " + std::string(kWorkspaceColumns);
const std::string kListAll =
    "SELECT " + std::string(kWorkspaceColumns) + " FROM tm_workspaces ORDER BY name";
const std::string kListSource = "SELECT " + std::string(kWorkspaceColumns) +
                                " FROM tm_workspaces WHERE source = $1 ORDER BY name";
const std::string kGet =
    "SELECT " + std::string(kWorkspaceColumns) + " FROM tm_workspaces WHERE name = $1";
const std::string kMarkDeleting =
    "UPDATE tm_workspaces SET deleting_since = coalesce(deleting_since, now()), updated_at = now()"
    " WHERE name = $1 RETURNING " + std::string(kWorkspaceColumns);
constexpr std::string_view kRemove =
    "WITH s AS (DELETE FROM tm_workspace_status WHERE name = $1)"
    " DELETE FROM tm_workspaces WHERE name = $1";
constexpr std::string_view kPutStatus =
    "INSERT INTO tm_workspace_status"
    " (name, observed_generation, phase, conditions_json, last_error, next_retry)"
    " VALUES ($1, $2::bigint, $3, $4, $5, to_timestamp($6::bigint))"
    " ON CONFLICT (name) DO UPDATE SET observed_generation = EXCLUDED.observed_generation,"
    " phase = EXCLUDED.phase, conditions_json = EXCLUDED.conditions_json,"
    " last_error = EXCLUDED.last_error, next_retry = EXCLUDED.next_retry, updated_at = now()";
constexpr std::string_view kGetStatus =
    "SELECT name, observed_generation, phase, conditions_json, last_error,"
    " extract(epoch FROM next_retry)::bigint FROM tm_workspace_status WHERE name = $1";
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

// ---------------------------------------------------------------------------------------------

class LibpqStore final : public Store {
 public:
  explicit LibpqStore(Secret dsn) : dsn_(std::move(dsn)) { ParseDsn(); }

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
                     status.name, std::to_string(status.observed_generation), status.phase,
                     status.conditions_json, status.last_error, std::nullopt};
                 if (status.next_retry_unix) params[5] = std::to_string(*status.next_retry_unix);
                 auto result = ExecNullable(conn, kPutStatus, params);
                 if (!result) return result.failure();
                 return Done{};
               });
  }

  Outcome<std::optional<WorkspaceStatus>> GetStatus(const std::string& name) override {
    return Run("read status of workspace \"" + name + "\"",
               [&](PGconn* conn) -> Outcome<std::optional<WorkspaceStatus>> {
                 auto result = Exec(conn, kGetStatus, {name});
                 if (!result) return result.failure();
                 PGresult* res = result->get();
                 if (PQntuples(res) == 0) return std::optional<WorkspaceStatus>();
                 WorkspaceStatus status;
                 status.name = PQgetvalue(res, 0, 0);
                 auto generation = ParseInt(PQgetvalue(res, 0, 1));
                 if (!generation) return BadValue("observed_generation");
                 status.observed_generation = *generation;
                 status.phase = PQgetvalue(res, 0, 2);
                 status.conditions_json = PQgetvalue(res, 0, 3);
                 status.last_error = PQgetvalue(res, 0, 4);
                 if (PQgetisnull(res, 0, 5) == 0) {
                   status.next_retry_unix = ParseInt(PQgetvalue(res, 0, 5));
                   if (!status.next_retry_unix) return BadValue("next_retry");
                 }
                 return std::optional<WorkspaceStatus>(std::move(status));
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
  // --- DSN -------------------------------------------------------------------------------------

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

  [[nodiscard]] std::string Scrub(std::string_view text) const {
    std::string out(text);
    for (const auto& secret : secrets_) ReplaceAll(out, secret, "<redacted>");
    for (char& c : out) {
      if (c == '\n' || c == '\r') c = ' ';
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
  }

  [[nodiscard]] std::string Describe(const std::string& dbname) const {
    std::string where = "database \"" + dbname + "\"";
    if (!host_.empty()) where += " on " + host_ + (port_.empty() ? "" : ":" + port_);
    return where;
  }

  // --- connections -----------------------------------------------------------------------------

  Outcome<ConnPtr> ConnectTo(const std::string& dbname) const {
    const char* keywords[] = {"dbname", "dbname", "connect_timeout", "fallback_application_name",
                              nullptr};
    std::string timeout(kConnectTimeoutSeconds);
    const char* values[] = {dsn_.Reveal().c_str(), dbname.c_str(), timeout.c_str(),
                            "tenant-master-store", nullptr};
    ConnPtr conn(PQconnectdbParams(keywords, values, 1));
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
    auto exists = Exec(conn, "SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1",
                       {dbname_});
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

  Outcome<PGconn*> Connection() {
    if (!dsn_valid_) {
      return Failure::Stalled("InvalidDsn", "the store's connection string cannot be parsed");
    }
    if (conn_ && PQstatus(conn_.get()) == CONNECTION_OK) return conn_.get();
    conn_.reset();
    auto conn = ConnectTo(dbname_);
    if (!conn && conn.failure().reason == "DatabaseMissing") {
      if (auto created = CreateDatabase(); !created) {
        return WithStep(created.failure(), "create " + Describe(dbname_));
      }
      conn = ConnectTo(dbname_);
    }
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

  // --- statements ------------------------------------------------------------------------------

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
    const char* sqlstate =
        result ? PQresultErrorField(result.get(), PG_DIAG_SQLSTATE) : nullptr;
    const char* primary =
        result ? PQresultErrorField(result.get(), PG_DIAG_MESSAGE_PRIMARY) : nullptr;
    if (sqlstate == nullptr || primary == nullptr) {
      return Classify("", Scrub(PQerrorMessage(conn)));
    }
    return Classify(sqlstate, "ERROR: " + Scrub(primary) + " (SQLSTATE " + sqlstate + ")");
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
                              Scrub(PQerrorMessage(conn));
        return Classify(sqlstate != nullptr ? sqlstate : "", std::move(message));
      }
      auto recorded = Exec(conn, "INSERT INTO tm_schema_version (version, name) VALUES ($1, $2)",
                           {std::to_string(migration.version), std::string(migration.name)});
      if (!recorded) return recorded.failure();
    }
    return Done{};
  }

  // --- rows ------------------------------------------------------------------------------------

  static Failure BadValue(std::string_view what) {
    return Failure::Stalled("CorruptStore", "unexpected value in " + std::string(what));
  }

  static Outcome<std::int64_t> IdOf(PGresult* res) {
    if (PQntuples(res) != 1) return BadValue("RETURNING id");
    auto id = ParseInt(PQgetvalue(res, 0, 0));
    if (!id) return BadValue("RETURNING id");
    return *id;
  }

  static Outcome<StoredWorkspace> WorkspaceAt(PGresult* res, int row) {
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

  Secret dsn_;
  bool dsn_valid_ = false;
  std::string dbname_;
  std::string host_;
  std::string port_;
  std::vector<std::string> secrets_;

  std::mutex mutex_;
  ConnPtr conn_;  // guarded by mutex_
};

}  // namespace

std::unique_ptr<Store> MakeLibpqStore(Secret dsn) {
  return std::make_unique<LibpqStore>(std::move(dsn));
}

}  // namespace tmaster::controller
