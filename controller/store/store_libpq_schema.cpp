#include <iterator>

#include "controller/store/store_libpq_internal.hpp"

// The store's schema. Append only: a released migration is never edited; each runs in the
// transaction that records it in tm_schema_version. spec_json is text, not jsonb, so its digest
// is the digest of exactly the bytes stored.

namespace tmaster::controller::pqstore {
namespace {

// Advisory-lock key (kLeaderLockClass, 2) serializes migrations; (kLeaderLockClass, 1) is the
// leader lock (leader_lock_libpq.cpp). They must differ: a leader holds key 1 for its whole life,
// and a standby starting meanwhile must still be able to run Migrate.
static_assert(kLeaderLockClass == 29805);
constexpr std::string_view kMigrateLock = "SELECT pg_catalog.pg_advisory_xact_lock(29805, 2)";

// The store database belongs to the operator (issue 11): PostgreSQL grants CONNECT and TEMPORARY
// on every new database to PUBLIC, so any tenant role could connect and take the leader lock (an
// advisory lock in this database) before the operator. Run at every start, so a grant made by
// hand is repaired like any drift; the operator's role owns the database (it created it), and an
// owner keeps both privileges.
constexpr std::string_view kRevokePublic =
    "DO $$ BEGIN EXECUTE pg_catalog.format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM PUBLIC', "
    "pg_catalog.current_database()); END $$";

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

// tests/controller/store/store_itest.cpp keeps a copy of migration 1 on purpose: it builds a v1
// store to prove the upgrade to v2, so its copy is frozen even if this one were (wrongly) edited.
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
    {3, "workspace identity and stack endpoint; indexes for pruning history", R"SQL(
ALTER TABLE tm_workspaces
  ADD COLUMN identity_product text,
  ADD COLUMN identity_cluster text,
  ADD COLUMN identity_database text,
  ADD COLUMN identity_owner text,
  ADD COLUMN stack_endpoint integer,
  ADD CONSTRAINT tm_workspaces_identity_whole CHECK (
    (identity_product IS NULL) = (identity_cluster IS NULL) AND
    (identity_product IS NULL) = (identity_database IS NULL) AND
    (identity_product IS NULL) = (identity_owner IS NULL));
CREATE INDEX tm_events_at ON tm_events (at);
CREATE INDEX tm_webhook_deliveries_received ON tm_webhook_deliveries (received_at);
)SQL"},
    {4, "stack ledger", R"SQL(
CREATE TABLE tm_stack_ledger (
  workspace text PRIMARY KEY,
  backend text NOT NULL,
  stack_id bigint NOT NULL CHECK (stack_id > 0),
  update_date bigint NOT NULL,
  file_digest text NOT NULL CHECK (file_digest ~ '^[0-9a-f]{64}$'),
  updated_at timestamptz NOT NULL DEFAULT now()
);
)SQL"},
    {5, "managed API tokens", R"SQL(
CREATE TABLE tm_api_tokens (
  id text PRIMARY KEY CHECK (id ~ '^[a-z2-7]{10}$'),
  digest text NOT NULL CHECK (digest ~ '^[0-9a-f]{64}$'),
  role text NOT NULL CHECK (role IN ('admin', 'viewer')),
  description text NOT NULL,
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  last_used_at timestamptz,
  revoked_at timestamptz
);
)SQL"},
    {6, "suspend overrides, deliveries vacuumed by row count", R"SQL(
CREATE TABLE tm_overrides (
  workspace text PRIMARY KEY,
  suspend boolean NOT NULL,
  set_by text NOT NULL,
  set_at timestamptz NOT NULL
);
ALTER TABLE tm_webhook_deliveries SET (autovacuum_vacuum_scale_factor = 0,
  autovacuum_vacuum_threshold = 1000, autovacuum_vacuum_insert_scale_factor = 0,
  autovacuum_vacuum_insert_threshold = 1000);
)SQL"},
    {7, "dashboard sessions, login failure counters", R"SQL(
CREATE TABLE tm_sessions (
  id text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{64}$'),
  principal_id text NOT NULL,
  role text NOT NULL CHECK (role IN ('admin', 'viewer')),
  description text NOT NULL,
  csrf_digest text NOT NULL CHECK (csrf_digest ~ '^[0-9a-f]{64}$'),
  credential_digest text NOT NULL CHECK (credential_digest ~ '^[0-9a-f]{64}$'),
  created_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  last_seen_at timestamptz NOT NULL,
  revoked_at timestamptz
);
CREATE INDEX tm_sessions_expires ON tm_sessions (expires_at);
CREATE TABLE tm_login_failures (
  key text PRIMARY KEY,
  count bigint NOT NULL CHECK (count >= 0),
  window_start timestamptz NOT NULL,
  locked_until timestamptz,
  lockouts bigint NOT NULL CHECK (lockouts >= 0),
  last_failure timestamptz NOT NULL
);
CREATE INDEX tm_login_failures_last ON tm_login_failures (last_failure);
)SQL"},
    {8, "backup catalog", R"SQL(
CREATE TABLE tm_backups (
  id text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$'),
  workspace text NOT NULL CHECK (workspace <> ''),
  kind text NOT NULL CHECK (kind IN ('scheduled', 'manual', 'pre-migration', 'safety', 'final')),
  file text NOT NULL CHECK (file <> ''),
  size_bytes bigint NOT NULL CHECK (size_bytes >= 0),
  sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$' OR (sha256 = '' AND state = 'failed')),
  duration_ms bigint NOT NULL CHECK (duration_ms >= 0),
  server_version text NOT NULL,
  generation bigint NOT NULL CHECK (generation >= 0),
  applied_migration text NOT NULL,
  key_id text NOT NULL,
  table_rows_json text NOT NULL,
  state text NOT NULL CHECK (state IN ('ok', 'verified', 'verifyFailed', 'failed')),
  reason text NOT NULL,
  created_at timestamptz NOT NULL,
  verified_at timestamptz
);
CREATE INDEX tm_backups_workspace ON tm_backups (workspace, created_at DESC);
)SQL"},
    // When a workspace was first stored (metadata.creationTimestamp, the dashboard's and
    // tenantctl's AGE). Rows stored before this version have none: their age is not invented.
    {9, "workspace creation time", R"SQL(
ALTER TABLE tm_workspaces ADD COLUMN created_at timestamptz;
ALTER TABLE tm_workspaces ALTER COLUMN created_at SET DEFAULT now();
)SQL"},
    // Product revisions and rollouts (docs/rollouts.md): numbered revisions, and one rollout
    // per product written with a version check.
    {10, "product revisions and rollouts", R"SQL(
CREATE TABLE tm_product_revisions (
  product text NOT NULL CHECK (product <> ''),
  number integer NOT NULL CHECK (number >= 1),
  digest text NOT NULL CHECK (digest ~ '^[0-9a-f]{64}$'),
  spec_json text NOT NULL,
  created_at timestamptz NOT NULL,
  PRIMARY KEY (product, number),
  UNIQUE (product, digest)
);
CREATE TABLE tm_rollouts (
  product text PRIMARY KEY CHECK (product <> ''),
  version bigint NOT NULL CHECK (version >= 1),
  state_json text NOT NULL,
  updated_at timestamptz NOT NULL
);
)SQL"},
    // Where each workspace stands in its product's revisions (docs/rollouts.md): the revision
    // it converged on, and the revision and rollout attempt its last pass applied.
    {11, "workspace product revisions", R"SQL(
ALTER TABLE tm_workspace_status
  ADD COLUMN product_revision integer NOT NULL DEFAULT 0 CHECK (product_revision >= 0),
  ADD COLUMN attempted_revision integer NOT NULL DEFAULT 0 CHECK (attempted_revision >= 0),
  ADD COLUMN rollout_attempt bigint NOT NULL DEFAULT 0 CHECK (rollout_attempt >= 0),
  ADD COLUMN pre_migration_backup text NOT NULL DEFAULT '';
)SQL"},
    // Where each workspace without a named cluster was placed (docs/placement.md); apart from
    // tm_workspaces, so it outlives a Retain removal (the kept database is still there).
    {12, "placements", R"SQL(
CREATE TABLE tm_placements (
  workspace text PRIMARY KEY CHECK (workspace <> ''),
  cluster text NOT NULL CHECK (cluster <> ''),
  placed_at timestamptz NOT NULL
);
)SQL"},
    // Each workspace's newest move to another cluster (docs/moves.md): the state machine the
    // leader's MoveRunner advances, written with optimistic versions.
    {13, "moves", R"SQL(
CREATE TABLE tm_moves (
  workspace text PRIMARY KEY CHECK (workspace <> ''),
  id text NOT NULL CHECK (id <> ''),
  from_cluster text NOT NULL,
  to_cluster text NOT NULL,
  state text NOT NULL
    CHECK (state IN ('pending', 'running', 'succeeded', 'failed', 'pruned')),
  step text NOT NULL,
  message text NOT NULL,
  reason text NOT NULL,
  verified text NOT NULL,
  who text NOT NULL,
  suspended_by_move boolean NOT NULL,
  switched boolean NOT NULL,
  target_created boolean NOT NULL,
  requested_unix bigint NOT NULL,
  updated_unix bigint NOT NULL,
  finished_unix bigint NOT NULL,
  pruned_unix bigint NOT NULL,
  downtime_ms bigint NOT NULL,
  version bigint NOT NULL CHECK (version > 0)
);
)SQL"},
};

Outcome<Done> MigrateIn(PGconn* conn, const StoreConnector& connector) {
  if (auto locked = connector.Exec(conn, kMigrateLock, {}); !locked) return locked.failure();
  if (auto table = connector.Exec(conn, kCreateVersionTable, {}); !table) return table.failure();
  auto applied = connector.Exec(conn, "SELECT version FROM tm_schema_version", {});
  if (!applied) return applied.failure();
  std::vector<std::int64_t> versions;
  for (int row = 0; row < PQntuples(applied->get()); ++row) {
    auto version = ParseInt(PQgetvalue(applied->get(), row, 0));
    if (!version) return BadValue("tm_schema_version");
    versions.push_back(*version);
  }
  const std::int64_t newest_known = kMigrations[std::size(kMigrations) - 1].version;
  for (const std::int64_t version : versions) {
    if (version > newest_known) {
      return Failure::Stalled("SchemaTooNew", "the store has schema version " +
                                                  std::to_string(version) +
                                                  ", newer than this operator knows (" +
                                                  std::to_string(newest_known) + ")");
    }
  }
  for (const Migration& migration : kMigrations) {
    bool done = false;
    for (const std::int64_t version : versions) done = done || version == migration.version;
    if (done) continue;
    // Several statements: the simple query protocol, inside the open transaction.
    auto ran = pq::Check(conn, pq::ResultPtr(PQexec(conn, std::string(migration.sql).c_str())),
                         connector.scrub());
    if (!ran) {
      Failure failure = ran.failure();
      failure.message = "migration " + std::to_string(migration.version) + ": " + failure.message;
      return failure;
    }
    auto recorded =
        connector.Exec(conn, "INSERT INTO tm_schema_version (version, name) VALUES ($1, $2)",
                       {std::to_string(migration.version), std::string(migration.name)});
    if (!recorded) return recorded.failure();
  }
  if (auto revoked = connector.Exec(conn, kRevokePublic, {}); !revoked) return revoked.failure();
  return Done{};
}

}  // namespace

Outcome<Done> LibpqStore::Migrate() {
  return Run("migrate", [this](PGconn* conn) -> Outcome<Done> {
    if (auto begun = Exec(conn, "BEGIN", {}); !begun) return begun.failure();
    Outcome<Done> done = MigrateIn(conn, connector_);
    if (!done) {
      (void)Exec(conn, "ROLLBACK", {});
      return done;
    }
    if (auto committed = Exec(conn, "COMMIT", {}); !committed) return committed.failure();
    return Done{};
  });
}

}  // namespace tmaster::controller::pqstore
