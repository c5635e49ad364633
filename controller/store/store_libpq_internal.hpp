#pragma once

// Internal to tm_store_libpq: what the files of the store's libpq adapter share. The adapter is
// split along its seams: the connector (this header, store_libpq_connector.cpp), the schema
// (store_libpq_schema.cpp), workspaces and their status (store_libpq_workspaces.cpp), sources,
// events, webhook deliveries and the stack ledger (store_libpq_records.cpp), the managed API
// tokens (store_libpq_tokens.cpp), the dashboard's sessions and login-failure counters
// (store_libpq_sessions.cpp), the backup catalog (store_libpq_backups.cpp), and the leader lock
// (leader_lock_libpq.cpp). Nothing outside this folder includes it.

#include <libpq-fe.h>

#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/outcome.hpp"
#include "common/pq/dsn.hpp"
#include "common/pq/session.hpp"
#include "common/pq_handles.hpp"
#include "common/scrub.hpp"
#include "common/secret.hpp"
#include "controller/store/store.hpp"
#include "controller/store/store_libpq.hpp"

namespace tmaster::controller::pqstore {

/// The database a store DSN without a dbname uses.
inline constexpr std::string_view kDefaultDatabase = "tenant_master";

/// The store's DSN and how to open sessions on its database: defaulting of dbname, creation of
/// the database when missing, scrubbing of secrets from every message. Shared by the store and
/// the leader lock, which differ only in their connection parameters. Immutable after
/// construction, so safe to share between threads.
class StoreConnector {
 public:
  StoreConnector(Secret dsn, std::span<const pq::ConnectParam> params);

  /// A new session on the store's database, which is created first when it does not exist.
  /// Stalled "InvalidDsn" when libpq cannot parse the DSN; else pq::Connect's failures.
  [[nodiscard]] Outcome<pq::ConnPtr> Open() const;

  /// One statement with text parameters (pq::ExecParams), messages scrubbed of the DSN.
  Outcome<pq::ResultPtr> Exec(PGconn* conn, std::string_view sql,
                              const std::vector<std::string>& params) const {
    return pq::ExecParams(conn, sql, params, scrub_);
  }
  /// The same, where a parameter may be NULL (nullopt).
  Outcome<pq::ResultPtr> ExecNullable(PGconn* conn, std::string_view sql,
                                      const std::vector<std::optional<std::string>>& params) const {
    return pq::ExecParams(conn, sql, params, scrub_);
  }

  /// The scrubber holding the DSN and its password.
  [[nodiscard]] const Scrubber& scrub() const { return scrub_; }

 private:
  [[nodiscard]] std::string Describe(const std::string& dbname) const;
  [[nodiscard]] Outcome<pq::ConnPtr> ConnectTo(const std::string& dbname) const;
  /// Creates the store's database from the `postgres` database of the same server.
  [[nodiscard]] Outcome<Done> CreateDatabase() const;

  Secret dsn_;
  std::vector<pq::ConnectParam> params_;
  std::optional<pq::DsnParts> parts_;  // nullopt: the DSN cannot be parsed
  std::string dbname_;
  Scrubber scrub_;
};

/// `failure` with "store: <step>: " before its message.
Failure WithStep(Failure failure, std::string_view step);
/// Stalled "CorruptStore": a value read back from the store is not what the schema allows.
Failure BadValue(std::string_view what);
/// A whole decimal integer; nullopt for anything else.
std::optional<std::int64_t> ParseInt(const char* text);
/// The single `RETURNING id` value of `res`.
Outcome<std::int64_t> IdOf(PGresult* res);
/// Removes the sessions expired or revoked more than a day ago and the idle login-failure
/// counters (store_libpq_sessions.cpp; part of LibpqStore::Prune), counting them in `pruned`.
Outcome<Done> PruneSessions(PGconn* conn, const StoreConnector& connector, Pruned& pruned);

/// Every row of `res`, each read by `read(res, row)` (an Outcome<T>); a row that cannot be read
/// makes the whole answer its failure.
template <class T, class Read>
Outcome<std::vector<T>> ReadRows(PGresult* res, Read read) {
  std::vector<T> out;
  out.reserve(static_cast<std::size_t>(PQntuples(res)));
  for (int row = 0; row < PQntuples(res); ++row) {
    Outcome<T> item = read(res, row);
    if (!item) return item.failure();
    out.push_back(std::move(*item));
  }
  return out;
}

/// The first row of `res` read by `read`, or nullopt when there is none.
template <class T, class Read>
Outcome<std::optional<T>> ReadOptional(PGresult* res, Read read) {
  if (PQntuples(res) == 0) return std::optional<T>();
  Outcome<T> item = read(res, 0);
  if (!item) return item.failure();
  return std::optional<T>(std::move(*item));
}

/// The Store on one libpq connection (store_libpq.hpp, MakeLibpqStore).
class LibpqStore final : public Store {
 public:
  LibpqStore(Secret dsn, Retention retention);

  // store_libpq_schema.cpp
  Outcome<Done> Migrate() override;

  // store_libpq_workspaces.cpp
  Outcome<StoredWorkspace> UpsertSpec(const std::string& name, const std::string& source,
                                      const std::string& revision,
                                      const std::string& spec_json) override;
  Outcome<std::vector<StoredWorkspace>> ListWorkspaces(
      const std::optional<std::string>& source) override;
  Outcome<std::optional<StoredWorkspace>> Get(const std::string& name) override;
  Outcome<StoredWorkspace> MarkDeleting(const std::string& name) override;
  Outcome<StoredWorkspace> CancelDeleting(const std::string& name) override;
  Outcome<StoredWorkspace> RecordIdentity(const std::string& name,
                                          const WorkspaceIdentity& identity) override;
  Outcome<Done> RecordStackEndpoint(const std::string& name,
                                    std::optional<int> endpoint) override;
  Outcome<bool> Remove(const std::string& name) override;
  Outcome<Done> PutStatus(const WorkspaceStatus& status) override;
  Outcome<std::optional<WorkspaceStatus>> GetStatus(const std::string& name) override;
  Outcome<std::vector<WorkspaceStatus>> ListStatuses() override;

  // store_libpq_records.cpp
  Outcome<Done> PutSourceStatus(const SourceStatus& status) override;
  Outcome<std::vector<SourceStatus>> ListSourceStatuses() override;
  Outcome<std::int64_t> AppendEvent(const Event& event) override;
  Outcome<std::vector<Event>> ListEvents(const std::optional<std::string>& workspace,
                                         std::int64_t limit) override;
  Outcome<std::int64_t> RecordDelivery(const WebhookDelivery& delivery) override;
  Outcome<std::vector<WebhookDelivery>> ListDeliveries(std::int64_t limit) override;
  Outcome<Pruned> Prune() override;
  Outcome<std::vector<StackLedgerRow>> ListStackLedger(const std::string& backend) override;
  Outcome<Done> PutStackLedger(const StackLedgerRow& row) override;
  Outcome<bool> EraseStackLedger(const std::string& workspace) override;

  // store_libpq_tokens.cpp
  Outcome<Done> CreateToken(const ApiToken& token) override;
  Outcome<std::optional<ApiToken>> FindToken(const std::string& id) override;
  Outcome<std::vector<ApiToken>> ListTokens() override;
  Outcome<bool> RevokeToken(const std::string& id, std::int64_t at_unix) override;
  Outcome<Done> TouchToken(const std::string& id, std::int64_t at_unix) override;
  Outcome<std::vector<StoredOverride>> ListOverrides() override;
  Outcome<Done> SetOverride(const StoredOverride& override) override;
  Outcome<bool> ClearOverride(const std::string& workspace) override;

  // store_libpq_sessions.cpp
  Outcome<Done> CreateSession(const StoredSession& session) override;
  Outcome<std::optional<StoredSession>> FindSession(const std::string& id) override;
  Outcome<Done> TouchSession(const std::string& id, std::int64_t at_unix) override;
  Outcome<bool> RevokeSession(const std::string& id, std::int64_t at_unix) override;
  Outcome<std::optional<LoginFailure>> FindLoginFailure(const std::string& key) override;
  Outcome<LoginFailure> RecordLoginFailure(const std::string& key, std::int64_t now_unix,
                                           const LoginLimit& limit) override;
  Outcome<bool> ClearLoginFailure(const std::string& key) override;

  // store_libpq_backups.cpp
  Outcome<Done> PutBackup(const StoredBackup& backup) override;
  Outcome<std::optional<StoredBackup>> FindBackup(const std::string& id) override;
  Outcome<std::vector<StoredBackup>> ListBackups(
      const std::optional<std::string>& workspace) override;
  Outcome<bool> UpdateBackupVerification(const std::string& id, const std::string& state,
                                         const std::string& reason,
                                         std::int64_t at_unix) override;
  Outcome<bool> DeleteBackup(const std::string& id) override;
  Outcome<StoredRevision> RecordRevision(const std::string& product, const std::string& digest,
                                         const std::string& spec_json,
                                         std::int64_t now_unix) override;
  Outcome<std::vector<StoredRevision>> ListRevisions(const std::string& product) override;
  Outcome<int> PruneRevisions(const std::string& product, int history,
                              const std::set<int>& keep) override;
  Outcome<std::optional<StoredRollout>> GetRollout(const std::string& product) override;
  Outcome<std::optional<std::int64_t>> PutRollout(const std::string& product,
                                                  std::int64_t expected_version,
                                                  const std::string& state_json,
                                                  std::int64_t now_unix) override;
  Outcome<std::vector<StoredRollout>> ListRollouts() override;
  Outcome<std::vector<StoredPlacement>> ListPlacements() override;
  Outcome<StoredPlacement> RecordPlacement(const std::string& workspace, const std::string& cluster,
                                           std::int64_t now_unix) override;
  Outcome<bool> RemovePlacement(const std::string& workspace) override;

  // store_libpq_moves.cpp
  Outcome<std::vector<StoredMove>> ListMoves() override;
  Outcome<std::optional<StoredMove>> FindMove(const std::string& workspace) override;
  Outcome<std::optional<std::int64_t>> PutMove(const StoredMove& move,
                                               std::int64_t now_unix) override;
  Outcome<std::optional<std::int64_t>> SwitchPlacement(const StoredMove& move,
                                                       std::int64_t now_unix) override;

 private:
  Outcome<PGconn*> Connection();
  /// Runs `sql` (an UPDATE ... RETURNING the workspace columns) for workspace `name`: Stalled
  /// "WorkspaceNotFound" when no such workspace is stored.
  Outcome<StoredWorkspace> UpdateWorkspace(const std::string& step, std::string_view sql,
                                           const std::string& name);

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

  Outcome<pq::ResultPtr> Exec(PGconn* conn, std::string_view sql,
                              const std::vector<std::string>& params) const {
    return connector_.Exec(conn, sql, params);
  }

  const StoreConnector connector_;
  const Retention retention_;

  std::mutex mutex_;
  pq::ConnPtr conn_;  // guarded by mutex_
};

}  // namespace tmaster::controller::pqstore
