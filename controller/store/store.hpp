#pragma once

// The store (docs/architecture.md#words; issue 3 item 1): the operator's own control database. It
// holds each workspace's last valid spec with a generation, the source and revision it came from,
// the workspace status, events and webhook deliveries, so all of them survive restarts.
//
// Pure interface and value types: no libpq here. The PostgreSQL adapter is
// controller/store/store_libpq.hpp (MakeLibpqStore); only mains and integration tests know it.
//
// Every method may fail with a Failure whose kind says whether retrying can help (Transient:
// connection lost, server restarting; Stalled: permissions, schema trouble). Messages name the
// step and never contain the DSN or a password.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/outcome.hpp"
#include "controller/store/leader_lock.hpp"

namespace tmaster::controller {

/// The fields of a workspace that name its data: fixed at its first convergence (issue 11,
/// docs/decisions.md#hardening-i-issue-11). A later spec naming other values stalls
/// `ImmutableField` and touches nothing.
struct WorkspaceIdentity {
  std::string product;
  std::string cluster;
  std::string database;
  std::string owner;

  friend bool operator==(const WorkspaceIdentity&, const WorkspaceIdentity&) = default;
};

/// A workspace's last valid desired spec, as the sources delivered it.
struct StoredWorkspace {
  std::string name;
  std::string source;    ///< the source that delivered it (its name from the config)
  std::string revision;  ///< e.g. a Git commit; empty for sources without revisions
  std::string spec_json;
  std::string spec_digest;  ///< lower-case hex SHA-256 of spec_json
  /// Starts at 1; increases by exactly 1 each time spec_digest changes (never on a revision-only
  /// change).
  std::int64_t generation = 0;
  /// When the workspace went `Deleting` (UTC, `YYYY-MM-DDTHH:MM:SSZ`); nullopt while it is live.
  std::optional<std::string> deleting_since;
  /// Recorded by `RecordIdentity` at the first convergence; nullopt before it.
  std::optional<WorkspaceIdentity> identity;
  /// The Portainer endpoint its stack was last converged on (`RecordStackEndpoint`); nullopt
  /// when it has none. A workspace switched to shared, or moved to another endpoint, gets the
  /// stack there removed.
  std::optional<int> stack_endpoint;
  /// When the row was first stored (UTC, `YYYY-MM-DDTHH:MM:SSZ`), kept by every later upsert;
  /// nullopt for a row stored before schema v9. Shown as metadata.creationTimestamp.
  std::optional<std::string> created_at;

  friend bool operator==(const StoredWorkspace&, const StoredWorkspace&) = default;
};

/// What the controller last observed and decided for one workspace
/// (docs/architecture.md#status-and-events).
struct WorkspaceStatus {
  std::string name;
  std::int64_t observed_generation = 0;
  std::string phase;            ///< Pending, Progressing, Ready, Degraded, Stalled, Suspended, Deleting
  std::string conditions_json;  ///< the conditions array, serialized by the caller
  std::string last_error;       ///< empty when the last run succeeded
  std::optional<std::int64_t> next_retry_unix;  ///< seconds since the epoch; nullopt: none planned
  std::string revision;  ///< the source revision this status was reached with (e.g. a commit)
  /// The last runs, newest first, at most 10, serialized by the caller: a JSON array of
  /// `{"start": RFC3339, "durationSeconds": number, "result": "...", "reason": "..."}`.
  std::string last_runs_json = "[]";
  /// The product revision the workspace converged on (`status.productRevision`,
  /// docs/rollouts.md#revisions): set by a pass that ended Ready, kept by one that did not;
  /// 0 until a pass recorded one.
  int product_revision = 0;
  /// The revision the last pass applied and the rollout attempt it applied it for (0: outside
  /// any rollout): a rollout counts a reading only when both are its own (docs/rollouts.md).
  int attempted_revision = 0;
  std::int64_t rollout_attempt = 0;
  /// The backup the last pass took right before its migrations; empty when it took none.
  std::string pre_migration_backup;

  friend bool operator==(const WorkspaceStatus&, const WorkspaceStatus&) = default;
};

/// The health of one source (directory or git), shown on its own status: a fetch or parse
/// failure is recorded here and never treated as "no manifests".
struct SourceStatus {
  std::string name;
  std::string kind;      ///< "directory" or "git"
  std::string revision;  ///< last revision applied (git commit); empty for directories
  bool ready = false;    ///< the last sync read the source cleanly
  std::string reason;    ///< CamelCase: Synced, FetchFailed, InvalidManifests, DeletionGuard, ...
  std::string message;   ///< names the failing step; never a credential
  std::int64_t last_sync_unix = 0;     ///< last successful sync; 0 when never
  std::int64_t last_attempt_unix = 0;  ///< last attempt, successful or not
};

/// One event (an action applied, a drift corrected, a failure).
struct Event {
  std::int64_t id = 0;  ///< assigned by the store; ignored by AppendEvent
  std::string workspace;
  std::string type;  ///< "Normal" or "Warning"
  std::string reason;
  std::string message;
  std::int64_t at_unix = 0;  ///< seconds since the epoch; 0 in AppendEvent means "now" (server clock)
};

/// One `POST /hooks/git` delivery and what became of it.
struct WebhookDelivery {
  std::int64_t id = 0;  ///< assigned by the store; ignored by RecordDelivery
  std::string provider;  ///< github, gitea, gitlab, generic, or "" when it could not be told
  std::string verdict;   ///< the label of tenant_master_webhook_deliveries_total{verdict}
  std::string branch;
  std::string revision;
  std::int64_t received_at_unix = 0;  ///< 0 in RecordDelivery means "now" (server clock)
};

/// How much history the store keeps (config `store.retention`; docs/decisions.md#hardening-ii-issue-9).
/// A delivery whose signature failed (or was missing, or whose body was too large) proves
/// nothing about its sender, so those are a ring of the newest `rejected_deliveries`, kept at
/// every insert; the rest is pruned by age and count by `Prune`.
struct Retention {
  std::chrono::seconds events_max_age = std::chrono::hours(24 * 30);
  std::int64_t events_max_count = 100'000;
  std::chrono::seconds deliveries_max_age = std::chrono::hours(24 * 30);
  std::int64_t deliveries_max_count = 10'000;
  std::int64_t rejected_deliveries = 1'000;
};

/// True for the verdicts of an unauthenticated delivery (`bad_signature`, `missing_signature`,
/// `too_large`): anyone on the network can make them, so they are only kept as a bounded ring.
inline bool IsRejectedDelivery(std::string_view verdict) {
  return verdict == "bad_signature" || verdict == "missing_signature" || verdict == "too_large";
}

/// What the operator last wrote to one workspace's stack (reconcilers/stacks/ledger.hpp,
/// StackLedger): the daemon keeps its ledger here so it survives restarts and leader changes.
struct StackLedgerRow {
  std::string workspace;
  /// The stack backend the entry is valid for (a Portainer URL, a directory): stack ids are
  /// only unique within one backend, and the ledger's id proves a stack is the operator's.
  std::string backend;
  std::int64_t stack_id = 0;     ///< > 0
  std::int64_t update_date = 0;  ///< the stack's UpdateDate the write left
  std::string file_digest;       ///< lower-case hex SHA-256 of the file written

  friend bool operator==(const StackLedgerRow&, const StackLedgerRow&) = default;
};

/// nullopt when `row` may be stored; else Stalled `InvalidValue` naming the workspace and the
/// field (a stack id <= 0, a digest that is not 64 lower-case hex digits). Both stores use it.
inline std::optional<Failure> CheckStackLedgerRow(const StackLedgerRow& row) {
  const auto bad = [&row](std::string_view what) {
    return Failure::Stalled("InvalidValue", "stack ledger of workspace \"" + row.workspace +
                                                "\": " + std::string(what));
  };
  if (row.stack_id <= 0) return bad("stack id must be positive");
  const bool hex = row.file_digest.size() == 64 &&
                   row.file_digest.find_first_not_of("0123456789abcdef") == std::string::npos;
  if (!hex) return bad("file digest must be 64 lower-case hex digits");
  return std::nullopt;
}

/// One managed API token (docs/api.md#authentication; controller/api/auth.hpp). The token itself
/// (`tmt_<id>_<secret>`) is never stored: only the SHA-256 of the whole token.
struct ApiToken {
  std::string id;      ///< 10 lower-case base32 characters (`[a-z2-7]{10}`), public
  std::string digest;  ///< lower-case hex SHA-256 of the whole token
  std::string role;    ///< "admin" or "viewer"
  std::string description;
  std::int64_t created_unix = 0;  ///< seconds since the epoch
  std::int64_t expires_unix = 0;  ///< seconds since the epoch; refused from this second on
  std::optional<std::int64_t> last_used_unix;  ///< nullopt: never used
  std::optional<std::int64_t> revoked_unix;    ///< nullopt: not revoked

  friend bool operator==(const ApiToken&, const ApiToken&) = default;
};

/// nullopt when `token` may be stored; else Stalled `InvalidValue` naming the field (an id that
/// is not 10 base32 characters, a digest that is not 64 lower-case hex digits, a role other than
/// admin or viewer). Both stores use it.
inline std::optional<Failure> CheckApiToken(const ApiToken& token) {
  const auto bad = [&token](std::string_view what) {
    return Failure::Stalled("InvalidValue",
                            "API token \"" + token.id + "\": " + std::string(what));
  };
  if (token.id.size() != 10 ||
      token.id.find_first_not_of("abcdefghijklmnopqrstuvwxyz234567") != std::string::npos) {
    return bad("id must be 10 lower-case base32 characters");
  }
  if (token.digest.size() != 64 ||
      token.digest.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return bad("digest must be 64 lower-case hex digits");
  }
  if (token.role != "admin" && token.role != "viewer") return bad("role must be admin or viewer");
  return std::nullopt;
}

/// A suspend set through the API on a workspace a source owns (docs/api.md#routes): kept until
/// `resume` clears it (controller/workspace/overrides.hpp).
struct StoredOverride {
  std::string workspace;
  bool suspend = true;
  std::string by;  ///< the principal's description
  std::int64_t at_unix = 0;

  friend bool operator==(const StoredOverride&, const StoredOverride&) = default;
};

/// A dashboard session (schema v7, tm_sessions; controller/api/sessions.hpp). The session token
/// (the cookie's value) is never stored: `id` is its SHA-256.
struct StoredSession {
  std::string id;            ///< lower-case hex SHA-256 of the session token
  /// Principal::id: `env:admin`, `env:read`, `token:<id>`, `user:<name>`.
  std::string principal_id;
  std::string role;          ///< "admin" or "viewer"
  std::string description;   ///< Principal::description (a managed token's)
  std::string csrf_digest;   ///< lower-case hex SHA-256 of the session's CSRF token
  /// Lower-case hex SHA-256 naming the credential the session was opened with (a token, a
  /// user's hash), so that changing that credential ends the session (controller/api/sessions.hpp).
  std::string credential_digest;
  std::int64_t created_unix = 0;
  std::int64_t expires_unix = 0;    ///< refused from this second on
  std::int64_t last_seen_unix = 0;  ///< the last request (recorded at most once a minute)
  std::optional<std::int64_t> revoked_unix;  ///< logout; nullopt while open

  friend bool operator==(const StoredSession&, const StoredSession&) = default;
};

/// nullopt when `session` may be stored; else Stalled `InvalidValue` (an id, CSRF or credential
/// digest that is not 64 lower-case hex digits, a role other than admin or viewer). Both stores use it.
inline std::optional<Failure> CheckSession(const StoredSession& session) {
  const auto hex64 = [](const std::string& text) {
    return text.size() == 64 && text.find_first_not_of("0123456789abcdef") == std::string::npos;
  };
  const auto bad = [](std::string_view what) {
    return Failure::Stalled("InvalidValue", "session: " + std::string(what));
  };
  if (!hex64(session.id)) return bad("id must be 64 lower-case hex digits");
  if (!hex64(session.csrf_digest)) return bad("CSRF digest must be 64 lower-case hex digits");
  if (!hex64(session.credential_digest)) {
    return bad("credential digest must be 64 lower-case hex digits");
  }
  if (session.role != "admin" && session.role != "viewer") {
    return bad("role must be admin or viewer");
  }
  return std::nullopt;
}

/// A revision of a product (schema v10, tm_product_revisions; docs/rollouts.md#revisions):
/// numbered per product in the order first seen. `spec_json` is the rollouts room's record of
/// what the revision hands a workspace (version, image, template, last migration, extensions);
/// the store keeps it as text so it does not depend on that room.
struct StoredRevision {
  std::string product;
  int number = 0;      ///< 1, 2, ... per product
  std::string digest;  ///< 64 lower-case hex digits (RevisionDigest)
  std::string spec_json = "{}";
  std::int64_t created_unix = 0;

  friend bool operator==(const StoredRevision&, const StoredRevision&) = default;
};

/// nullopt when a revision of `product` with `digest` may be recorded; else Stalled
/// `InvalidValue` (an empty product, a digest that is not 64 lower-case hex digits). Both
/// stores use it.
inline std::optional<Failure> CheckRevisionRecord(const std::string& product,
                                                  const std::string& digest) {
  if (product.empty()) return Failure::Stalled("InvalidValue", "revision: the product is empty");
  if (digest.size() != 64 || digest.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return Failure::Stalled("InvalidValue", "revision of product \"" + product +
                                                "\": the digest must be 64 lower-case hex digits");
  }
  return std::nullopt;
}

/// nullopt when the revisions of `product` may be pruned keeping `history`; else Stalled
/// `InvalidValue`. Both stores use it.
inline std::optional<Failure> CheckRevisionPrune(const std::string& product, int history) {
  if (product.empty()) return Failure::Stalled("InvalidValue", "revisions: the product is empty");
  if (history < 1) {
    return Failure::Stalled("InvalidValue", "revisions of product \"" + product +
                                                "\": at least the newest must be kept");
  }
  return std::nullopt;
}

/// nullopt when a rollout of `product` may be written over `expected_version`; else Stalled
/// `InvalidValue` (an empty product, a negative version). Both stores use it.
inline std::optional<Failure> CheckRolloutWrite(const std::string& product,
                                                std::int64_t expected_version) {
  if (product.empty()) return Failure::Stalled("InvalidValue", "rollout: the product is empty");
  if (expected_version < 0) {
    return Failure::Stalled("InvalidValue", "rollout of product \"" + product +
                                                "\": the expected version is negative");
  }
  return std::nullopt;
}

/// A product's rollout (schema v10, tm_rollouts; docs/rollouts.md#the-state-machine): the
/// rollouts room's state as text, and the version the store gives each write, so that a write
/// based on a stale read (an old leader's) is refused rather than applied.
struct StoredRollout {
  std::string product;
  std::int64_t version = 0;  ///< 1 for the first write, +1 each write
  std::string state_json;
  std::int64_t updated_unix = 0;

  friend bool operator==(const StoredRollout&, const StoredRollout&) = default;
};

/// One entry of the backup catalog (schema v8, tm_backups; docs/backups.md#the-catalog). Kinds
/// and states are the words of controller/backups/retention.hpp (`ToString`); the store keeps
/// them as text so it does not depend on the backups room.
struct StoredBackup {
  /// `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 200 characters: it names the file too.
  std::string id;
  std::string workspace;
  std::string kind;  ///< scheduled, manual, pre-migration, safety or final
  std::string file;  ///< the file's path relative to `backups.directory`
  std::int64_t size_bytes = 0;
  std::string sha256;  ///< lower-case hex SHA-256 of the file; empty only for a failed attempt
  std::int64_t duration_ms = 0;
  std::string server_version;     ///< the PostgreSQL server's, e.g. `16.4`
  std::int64_t generation = 0;    ///< the workspace's generation when it was taken
  std::string applied_migration;  ///< the newest migration applied then; empty: none
  std::string key_id;             ///< the encryption key's id (BackupKeyId); empty: not encrypted
  std::string table_rows_json = "{}";  ///< per-table row counts at dump time, for verification
  std::string state = "ok";            ///< ok, verified, verifyFailed or failed
  std::string reason;  ///< why it is verifyFailed or failed; empty otherwise
  std::int64_t created_unix = 0;
  std::optional<std::int64_t> verified_unix;  ///< the last verification; nullopt: never verified

  friend bool operator==(const StoredBackup&, const StoredBackup&) = default;
};

/// nullopt when `backup` may be stored; else Stalled `InvalidValue` naming the backup and the
/// field (an id that cannot be a file name, an empty workspace or file, an unknown kind or
/// state, a digest that is not 64 lower-case hex digits (empty is allowed only for `failed`),
/// a negative size, duration or generation). Both stores use it.
inline std::optional<Failure> CheckBackupRecord(const StoredBackup& backup) {
  const auto bad = [&backup](std::string_view what) {
    return Failure::Stalled("InvalidValue", "backup \"" + backup.id + "\": " + std::string(what));
  };
  const auto one_of = [](const std::string& value, std::initializer_list<std::string_view> words) {
    return std::find(words.begin(), words.end(), value) != words.end();
  };
  constexpr std::string_view kIdChars =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-";
  const bool id_ok = !backup.id.empty() && backup.id.size() <= 200 &&
                     kIdChars.substr(0, 62).find(backup.id[0]) != std::string_view::npos &&
                     backup.id.find_first_not_of(kIdChars) == std::string::npos;
  if (!id_ok) {
    return bad(
        "id must be 1-200 characters of A-Z, a-z, 0-9, '.', '_', '-', starting with a letter or "
        "digit");
  }
  if (backup.workspace.empty()) return bad("workspace is empty");
  if (backup.file.empty()) return bad("file is empty");
  if (!one_of(backup.kind, {"scheduled", "manual", "pre-migration", "safety", "final"})) {
    return bad("kind must be scheduled, manual, pre-migration, safety or final");
  }
  if (!one_of(backup.state, {"ok", "verified", "verifyFailed", "failed"})) {
    return bad("state must be ok, verified, verifyFailed or failed");
  }
  const bool hex64 = backup.sha256.size() == 64 &&
                     backup.sha256.find_first_not_of("0123456789abcdef") == std::string::npos;
  if (!hex64 && !(backup.state == "failed" && backup.sha256.empty())) {
    return bad("sha256 must be 64 lower-case hex digits");
  }
  if (backup.size_bytes < 0 || backup.duration_ms < 0 || backup.generation < 0) {
    return bad("size, duration and generation must not be negative");
  }
  return std::nullopt;
}

/// How many failed logins one key may have (controller/api/sessions.hpp, kUserLoginLimit and
/// kAddressLoginLimit): `max_failures` within `window_seconds` lock the key for `lock_seconds`,
/// doubled at each further lock, at most `max_lock_seconds`; the count of locks is forgotten
/// after `forget_after_seconds` without a failure.
struct LoginLimit {
  std::int64_t max_failures = 5;
  std::int64_t window_seconds = 300;
  std::int64_t lock_seconds = 300;
  std::int64_t max_lock_seconds = 3600;
  std::int64_t forget_after_seconds = 86'400;
};

/// The failed logins of one key (schema v7, tm_login_failures): `addr:<AddressKey>` or
/// `user:<name>`.
struct LoginFailure {
  std::string key;
  std::int64_t count = 0;              ///< failures in the current window
  std::int64_t window_start_unix = 0;  ///< when the current window began
  std::optional<std::int64_t> locked_until_unix;  ///< refused until then; nullopt: never locked
  std::int64_t lockouts = 0;           ///< locks so far (the next lasts lock_seconds * 2^lockouts)
  std::int64_t last_failure_unix = 0;

  /// True while `now_unix` is before the end of the lock.
  [[nodiscard]] bool Locked(std::int64_t now_unix) const {
    return locked_until_unix && now_unix < *locked_until_unix;
  }

  friend bool operator==(const LoginFailure&, const LoginFailure&) = default;
};

/// The counter of `key` after one more failure at `now_unix` (pure; both stores apply it under a
/// lock of the row). A failure while the key is locked changes nothing (the caller refuses
/// without checking the secret); one after the window restarts the count; the `max_failures`th
/// within the window locks the key and restarts the count.
inline LoginFailure NextLoginFailure(std::optional<LoginFailure> before, const std::string& key,
                                     std::int64_t now_unix, const LoginLimit& limit) {
  LoginFailure row = before.value_or(LoginFailure{key, 0, now_unix, std::nullopt, 0, now_unix});
  if (row.Locked(now_unix)) return row;
  if (row.lockouts > 0 && now_unix - row.last_failure_unix >= limit.forget_after_seconds) {
    row.lockouts = 0;
  }
  const std::int64_t since_window = now_unix - row.window_start_unix;
  if (since_window >= limit.window_seconds || since_window < 0) {
    row.count = 0;
    row.window_start_unix = now_unix;
  }
  ++row.count;
  row.last_failure_unix = now_unix;
  if (row.count < limit.max_failures) return row;
  std::int64_t lock = limit.lock_seconds;
  for (std::int64_t i = 0; i < row.lockouts && lock < limit.max_lock_seconds; ++i) lock *= 2;
  row.locked_until_unix = now_unix + std::min(lock, limit.max_lock_seconds);
  ++row.lockouts;
  row.count = 0;
  row.window_start_unix = now_unix;
  return row;
}

/// What one `Prune` removed.
struct Pruned {
  std::int64_t events = 0;
  std::int64_t deliveries = 0;
  /// Sessions expired or revoked more than a day ago.
  std::int64_t sessions = 0;
  /// Failure counters neither locked nor counting, and without a failure for a day.
  std::int64_t login_failures = 0;
};

/// Where a workspace without `spec.database.cluster` was placed (docs/placement.md): recorded
/// once, kept while its database may exist (a Retain removal keeps it; a Delete reclaim removes
/// it), never changed by placement itself.
struct StoredPlacement {
  std::string workspace;
  std::string cluster;
  std::int64_t placed_unix = 0;

  friend bool operator==(const StoredPlacement&, const StoredPlacement&) = default;
};

/// A move of a workspace's database to another cluster (docs/moves.md): the recorded state
/// machine the leader's MoveRunner advances, one row per workspace (its newest move; the steps
/// of earlier ones are events). Written with optimistic versions: `version` is the row's.
struct StoredMove {
  std::string workspace;
  std::string id;            ///< `mv-<workspace>-<unix>-<4 hex>`
  std::string from_cluster;  ///< where the data was when the move was asked for
  std::string to_cluster;
  /// pending, running, succeeded (on the target; the source kept NOLOGIN until pruned), failed
  /// (rolled back: on its source, resumed), pruned (the source dropped).
  std::string state;
  /// The step begun last: prepare, suspend, dump, restore, verify, switch, resume, done;
  /// rollback while a failure is undone; prune.
  std::string step;
  std::string message;   ///< what happened last, or why it failed; never a secret
  std::string reason;    ///< the failure's reason (e.g. MoveTargetUnreachable); empty unless failed
  std::string verified;  ///< what the verification compared; empty before it ran
  std::string who;       ///< the principal that asked
  bool suspended_by_move = false;  ///< the move set the suspend override (and clears it)
  bool switched = false;           ///< the placement points at `to_cluster` (roll forward)
  /// The target held neither the database nor the role, and the move is creating them: what is
  /// marked for the workspace there is the move's, and a rollback drops it.
  bool target_created = false;
  std::int64_t requested_unix = 0;
  std::int64_t updated_unix = 0;
  std::int64_t finished_unix = 0;  ///< 0 while pending or running
  std::int64_t pruned_unix = 0;
  std::int64_t downtime_ms = 0;    ///< suspended until resumed; 0 until known
  std::int64_t version = 0;        ///< the row's version (0: not stored yet)

  friend bool operator==(const StoredMove&, const StoredMove&) = default;
};

/// The control database. Implementations are safe to call from several threads.
class Store {
 public:
  virtual ~Store() = default;

  /// Brings the store's own tables to the newest schema version. Idempotent; each applied
  /// version is one row of `tm_schema_version`; concurrent callers (replicas) serialize on an
  /// advisory lock, so each migration runs once. Must be called before anything else.
  virtual Outcome<Done> Migrate() = 0;

  /// Inserts or updates a workspace's spec. A new workspace gets generation 1; an existing one
  /// keeps its generation when SHA-256(spec_json) is unchanged (source and revision are still
  /// updated) and gets generation + 1 when it changed. `deleting_since` is left as it was.
  virtual Outcome<StoredWorkspace> UpsertSpec(const std::string& name, const std::string& source,
                                              const std::string& revision,
                                              const std::string& spec_json) = 0;
  /// Every workspace (source nullopt) or those of one source, ordered by name.
  virtual Outcome<std::vector<StoredWorkspace>> ListWorkspaces(
      const std::optional<std::string>& source) = 0;
  /// nullopt when no workspace has that name.
  virtual Outcome<std::optional<StoredWorkspace>> Get(const std::string& name) = 0;
  /// Sets deleting_since (keeps an earlier one). Stalled `WorkspaceNotFound` when absent.
  virtual Outcome<StoredWorkspace> MarkDeleting(const std::string& name) = 0;
  /// Clears deleting_since: the manifest came back before the reclaim finished. Stalled
  /// `WorkspaceNotFound` when absent.
  virtual Outcome<StoredWorkspace> CancelDeleting(const std::string& name) = 0;
  /// Records the workspace's identity if none is recorded yet (the first convergence) and
  /// returns the stored workspace with the identity it now has (the earlier one if there was).
  /// Stalled `WorkspaceNotFound` when absent.
  virtual Outcome<StoredWorkspace> RecordIdentity(const std::string& name,
                                                  const WorkspaceIdentity& identity) = 0;
  /// Records where the workspace's stack now lives (nullopt: it has none). Stalled
  /// `WorkspaceNotFound` when absent.
  virtual Outcome<Done> RecordStackEndpoint(const std::string& name,
                                            std::optional<int> endpoint) = 0;
  /// Forgets the workspace and its status (its events stay, as history). true when it existed.
  virtual Outcome<bool> Remove(const std::string& name) = 0;

  /// Replaces the status of `status.name`.
  virtual Outcome<Done> PutStatus(const WorkspaceStatus& status) = 0;
  /// nullopt when no status was ever stored for that name.
  virtual Outcome<std::optional<WorkspaceStatus>> GetStatus(const std::string& name) = 0;
  /// Every stored status, ordered by name (one query: the API lists 1000s of workspaces).
  virtual Outcome<std::vector<WorkspaceStatus>> ListStatuses() = 0;

  /// Replaces the status of source `status.name`.
  virtual Outcome<Done> PutSourceStatus(const SourceStatus& status) = 0;
  /// Every source status, ordered by name.
  virtual Outcome<std::vector<SourceStatus>> ListSourceStatuses() = 0;

  /// Appends an event; returns its id (ids increase with time of appending).
  virtual Outcome<std::int64_t> AppendEvent(const Event& event) = 0;
  /// At most `limit` events of one workspace (nullopt: all workspaces), newest first.
  virtual Outcome<std::vector<Event>> ListEvents(const std::optional<std::string>& workspace,
                                                 std::int64_t limit) = 0;

  /// Records a webhook delivery; returns its id. A rejected one (IsRejectedDelivery) also
  /// removes the rejected deliveries beyond the newest `Retention::rejected_deliveries`.
  virtual Outcome<std::int64_t> RecordDelivery(const WebhookDelivery& delivery) = 0;
  /// At most `limit` deliveries, newest first.
  virtual Outcome<std::vector<WebhookDelivery>> ListDeliveries(std::int64_t limit) = 0;

  /// The stack ledger's rows of `backend`, ordered by workspace (rows of other backends are not
  /// returned).
  virtual Outcome<std::vector<StackLedgerRow>> ListStackLedger(const std::string& backend) = 0;
  /// Inserts or replaces the row of `row.workspace` (whatever backend it had). Stalled
  /// `InvalidValue` for a stack id <= 0 or a digest that is not 64 lower-case hex digits.
  virtual Outcome<Done> PutStackLedger(const StackLedgerRow& row) = 0;
  /// Removes the row of `workspace`; true when there was one.
  virtual Outcome<bool> EraseStackLedger(const std::string& workspace) = 0;

  /// Stores a new managed API token (CheckApiToken first). Stalled `TokenExists` when a token
  /// with that id is already stored (revoked or not: ids are never reused).
  virtual Outcome<Done> CreateToken(const ApiToken& token) = 0;
  /// The token with that id, revoked and expired ones included; nullopt when none.
  virtual Outcome<std::optional<ApiToken>> FindToken(const std::string& id) = 0;
  /// Every token, revoked and expired ones included, ordered by creation then id.
  virtual Outcome<std::vector<ApiToken>> ListTokens() = 0;
  /// Marks the token revoked at `at_unix`; false when there is no such token or it was already
  /// revoked (the first revocation's time stays).
  virtual Outcome<bool> RevokeToken(const std::string& id, std::int64_t at_unix) = 0;
  /// Records a use of the token at `at_unix` (its last use); nothing when there is no such token.
  virtual Outcome<Done> TouchToken(const std::string& id, std::int64_t at_unix) = 0;

  /// Every suspend override, ordered by workspace (schema v6, tm_overrides).
  virtual Outcome<std::vector<StoredOverride>> ListOverrides() = 0;
  /// Inserts or replaces the override of `override.workspace`.
  virtual Outcome<Done> SetOverride(const StoredOverride& override) = 0;
  /// Removes the override of `workspace`; true when there was one.
  virtual Outcome<bool> ClearOverride(const std::string& workspace) = 0;

  /// Stores a new dashboard session (CheckSession first). Stalled `SessionExists` when a
  /// session with that id is already stored.
  virtual Outcome<Done> CreateSession(const StoredSession& session) = 0;
  /// The session with that id, expired and revoked ones included; nullopt when none.
  virtual Outcome<std::optional<StoredSession>> FindSession(const std::string& id) = 0;
  /// Records a request of the session at `at_unix` (never moves it back); nothing when there is
  /// no such session.
  virtual Outcome<Done> TouchSession(const std::string& id, std::int64_t at_unix) = 0;
  /// Marks the session revoked at `at_unix` (logout); false when there is no such session or it
  /// was already revoked.
  virtual Outcome<bool> RevokeSession(const std::string& id, std::int64_t at_unix) = 0;

  /// The failed-login counter of `key`; nullopt when it has none.
  virtual Outcome<std::optional<LoginFailure>> FindLoginFailure(const std::string& key) = 0;
  /// Counts one failed login of `key` at `now_unix`: NextLoginFailure of the stored counter,
  /// stored and returned, atomically (concurrent failures on several replicas all count).
  virtual Outcome<LoginFailure> RecordLoginFailure(const std::string& key, std::int64_t now_unix,
                                                   const LoginLimit& limit) = 0;
  /// Forgets the counter of `key` (a successful login); true when there was one.
  virtual Outcome<bool> ClearLoginFailure(const std::string& key) = 0;

  /// The backup catalog (schema v8, tm_backups; docs/backups.md#the-catalog). A workspace's
  /// entries outlive it (`Remove` leaves them): a final backup is what is left of it. Both
  /// stores implement it (the tests' FakeStore to the same cases as the PostgreSQL store:
  /// tests/controller/backups/fake_catalog_test.cpp).
  ///
  /// Inserts or replaces the entry `backup.id` (CheckBackupRecord first).
  virtual Outcome<Done> PutBackup(const StoredBackup& backup) = 0;
  /// The entry with that id; nullopt when none.
  virtual Outcome<std::optional<StoredBackup>> FindBackup(const std::string& id) = 0;
  /// The entries of `workspace` (nullopt: every workspace), ordered by workspace (byte order),
  /// then newest first (created time, then the larger id), as retention and `tenantctl backups`
  /// read them.
  virtual Outcome<std::vector<StoredBackup>> ListBackups(
      const std::optional<std::string>& workspace) = 0;
  /// Records a verification of `id` at `at_unix`: `state` (verified or verifyFailed, else
  /// Stalled `InvalidValue`) and `reason`. false when there is no such entry or it is a failed
  /// attempt (nothing to verify).
  virtual Outcome<bool> UpdateBackupVerification(const std::string& id, const std::string& state,
                                                 const std::string& reason,
                                                 std::int64_t at_unix) = 0;
  /// Removes the entry `id` (its file is the caller's); true when there was one.
  virtual Outcome<bool> DeleteBackup(const std::string& id) = 0;

  /// Product revisions and rollouts (schema v10; docs/rollouts.md). Both stores implement them
  /// to the same cases (tests/controller/store/store_itest.cpp, tests/controller/rollouts/
  /// fake_rollout_store_test.cpp).
  ///
  /// The revision of `product` with `digest`: the stored one when that digest was seen before,
  /// else a new one numbered after the product's newest, with `spec_json` and `now_unix`.
  /// Stalled `InvalidValue` for an empty product or a digest that is not 64 lower-case hex.
  virtual Outcome<StoredRevision> RecordRevision(const std::string& product,
                                                 const std::string& digest,
                                                 const std::string& spec_json,
                                                 std::int64_t now_unix) = 0;
  /// The revisions of `product`, oldest (1) first.
  virtual Outcome<std::vector<StoredRevision>> ListRevisions(const std::string& product) = 0;
  /// Deletes the revisions of `product` older than its `history` newest (by number), except the
  /// numbers in `keep`; returns how many went. Numbers are never reused: the next revision is
  /// still numbered after the newest, which always stays. Stalled `InvalidValue` for an empty
  /// product or a `history` below 1.
  virtual Outcome<int> PruneRevisions(const std::string& product, int history,
                                      const std::set<int>& keep) = 0;
  /// The rollout of `product`; nullopt when it never had one.
  virtual Outcome<std::optional<StoredRollout>> GetRollout(const std::string& product) = 0;
  /// Writes the rollout of `product` if its stored version is still `expected_version` (0: none
  /// stored yet): the new version is expected_version + 1, returned; nullopt when another write
  /// came first (nothing written: read again and decide again).
  virtual Outcome<std::optional<std::int64_t>> PutRollout(const std::string& product,
                                                          std::int64_t expected_version,
                                                          const std::string& state_json,
                                                          std::int64_t now_unix) = 0;
  /// Every stored rollout, by product (byte order).
  virtual Outcome<std::vector<StoredRollout>> ListRollouts() = 0;

  /// Every recorded placement, by workspace (byte order).
  virtual Outcome<std::vector<StoredPlacement>> ListPlacements() = 0;
  /// Records that `workspace` is on `cluster` unless a placement is recorded already, and returns
  /// the recorded one: the first writer wins (two replicas cannot place a workspace twice).
  virtual Outcome<StoredPlacement> RecordPlacement(const std::string& workspace,
                                                   const std::string& cluster,
                                                   std::int64_t now_unix) = 0;
  /// Forgets the placement of `workspace` (its database is gone). true when there was one.
  virtual Outcome<bool> RemovePlacement(const std::string& workspace) = 0;

  /// Every workspace's newest move, by workspace (byte order).
  virtual Outcome<std::vector<StoredMove>> ListMoves() = 0;
  virtual Outcome<std::optional<StoredMove>> FindMove(const std::string& workspace) = 0;
  /// Writes `move` if the stored row's version is `move.version` (0: no row), and returns the
  /// new version; nullopt when another writer came first (nothing written).
  virtual Outcome<std::optional<std::int64_t>> PutMove(const StoredMove& move,
                                                       std::int64_t now_unix) = 0;
  /// The switch of a move, in one transaction: the placement of `move.workspace` and its
  /// recorded identity's cluster become `move.to_cluster`, and `move` is written as PutMove
  /// does (nullopt: another writer came first, nothing changed).
  virtual Outcome<std::optional<std::int64_t>> SwitchPlacement(const StoredMove& move,
                                                               std::int64_t now_unix) = 0;

  /// Removes the events and deliveries beyond the retention (older than its age, or beyond its
  /// count, oldest first), the sessions expired or revoked more than a day ago, and the idle
  /// login-failure counters (Pruned). The daemon's leader calls it every few minutes.
  virtual Outcome<Pruned> Prune() = 0;
};

}  // namespace tmaster::controller
