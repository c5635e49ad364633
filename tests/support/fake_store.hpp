#pragma once

// FakeStore: an in-memory controller::Store with the semantics documented in
// controller/store/store.hpp (generations by spec digest, deleting marks kept, events and
// deliveries newest first, the backup catalog as the PostgreSQL store keeps it), plus what tests need: make the next calls fail, count calls per method,
// set the "server clock", and read the whole state without going through (and consuming) an
// injected failure. Thread-safe: the HTTP server and the daemon call it from several threads.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/crypto.hpp"
#include "common/outcome.hpp"
#include "common/text.hpp"
#include "common/time.hpp"
#include "controller/store/store.hpp"

namespace tmaster::testing {

class FakeStore final : public controller::Store {
 public:
  /// Everything the store holds, by value.
  struct State {
    std::map<std::string, controller::StoredWorkspace> workspaces;
    std::map<std::string, controller::WorkspaceStatus> statuses;
    std::map<std::string, controller::SourceStatus> sources;
    std::vector<controller::Event> events;                ///< in appending order (oldest first)
    std::vector<controller::WebhookDelivery> deliveries;  ///< in recording order (oldest first)
    std::map<std::string, controller::StackLedgerRow> stack_ledger;  ///< by workspace
    std::map<std::string, controller::ApiToken> tokens;               ///< by id
    std::map<std::string, controller::StoredOverride> overrides;      ///< by workspace
    std::map<std::string, controller::StoredSession> sessions;        ///< by id
    std::map<std::string, controller::LoginFailure> login_failures;   ///< by key
    std::map<std::string, controller::StoredBackup> backups;          ///< the catalog, by id
    std::map<std::string, std::vector<controller::StoredRevision>> revisions;  ///< by product
    std::map<std::string, controller::StoredRollout> rollouts;                 ///< by product
    std::map<std::string, controller::StoredPlacement> placements;             ///< by workspace
    std::map<std::string, controller::StoredMove> moves;                       ///< by workspace
  };

  /// The failure injected calls return unless the test gives its own.
  static Failure Unavailable() {
    return Failure::Transient("StoreUnavailable", "store: connection refused (fake)");
  }

  /// The next `count` calls (of any method) fail with `failure`, then calls succeed again.
  void FailNext(std::size_t count = 1, Failure failure = Unavailable()) {
    const std::lock_guard lock(mutex_);
    fail_next_ = count;
    failure_ = std::move(failure);
  }
  /// Every call fails with `failure` until SetDown(false): the store is unreachable.
  void SetDown(bool down, Failure failure = Unavailable()) {
    const std::lock_guard lock(mutex_);
    down_ = down;
    if (down) failure_ = std::move(failure);
  }
  /// Calls of method `name` (e.g. "ListWorkspaces"), failed ones included.
  [[nodiscard]] std::size_t Calls(std::string_view name) const {
    const std::lock_guard lock(mutex_);
    const auto found = calls_.find(std::string(name));
    return found == calls_.end() ? 0 : found->second;
  }
  /// Calls of every method, failed ones included.
  [[nodiscard]] std::size_t TotalCalls() const {
    const std::lock_guard lock(mutex_);
    std::size_t total = 0;
    for (const auto& [name, count] : calls_) total += count;
    return total;
  }
  void ResetCalls() {
    const std::lock_guard lock(mutex_);
    calls_.clear();
  }
  /// The "server clock" used where the real store says "now" (events, deliveries, deleting
  /// marks). Seconds since the epoch.
  void SetNow(std::int64_t unix_seconds) {
    const std::lock_guard lock(mutex_);
    now_ = unix_seconds;
  }
  /// A copy of everything; never fails, never counted.
  [[nodiscard]] State Snapshot() const {
    const std::lock_guard lock(mutex_);
    return state_;
  }

  // controller::Store

  Outcome<Done> Migrate() override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("Migrate")) return *failed;
    return Ok();
  }

  Outcome<controller::StoredWorkspace> UpsertSpec(const std::string& name,
                                                  const std::string& source,
                                                  const std::string& revision,
                                                  const std::string& spec_json) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("UpsertSpec")) return *failed;
    const std::string digest = crypto::Sha256Hex(spec_json);
    auto [it, inserted] = state_.workspaces.try_emplace(name);
    controller::StoredWorkspace& stored = it->second;
    if (inserted) {
      stored.name = name;
      stored.generation = 1;
      stored.created_at = FormatRfc3339Utc(std::time(nullptr));
    } else if (stored.spec_digest != digest) {
      ++stored.generation;
    }
    stored.source = source;
    stored.revision = revision;
    stored.spec_json = spec_json;
    stored.spec_digest = digest;
    return stored;
  }

  Outcome<std::vector<controller::StoredWorkspace>> ListWorkspaces(
      const std::optional<std::string>& source) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("ListWorkspaces")) return *failed;
    std::vector<controller::StoredWorkspace> out;
    for (const auto& [name, workspace] : state_.workspaces) {
      if (!source || workspace.source == *source) out.push_back(workspace);
    }
    return out;
  }

  Outcome<std::optional<controller::StoredWorkspace>> Get(const std::string& name) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("Get")) return *failed;
    const auto found = state_.workspaces.find(name);
    if (found == state_.workspaces.end()) return std::optional<controller::StoredWorkspace>();
    return std::optional<controller::StoredWorkspace>(found->second);
  }

  Outcome<controller::StoredWorkspace> MarkDeleting(const std::string& name) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("MarkDeleting")) return *failed;
    const auto found = state_.workspaces.find(name);
    if (found == state_.workspaces.end()) {
      return Failure::Stalled("WorkspaceNotFound", "store: workspace \"" + name + "\" not found");
    }
    if (!found->second.deleting_since) found->second.deleting_since = FormatRfc3339Utc(now_);
    return found->second;
  }
  Outcome<controller::StoredWorkspace> CancelDeleting(const std::string& name) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("CancelDeleting")) return *failed;
    const auto found = state_.workspaces.find(name);
    if (found == state_.workspaces.end()) {
      return Failure::Stalled("WorkspaceNotFound", "store: workspace \"" + name + "\" not found");
    }
    found->second.deleting_since.reset();
    return found->second;
  }

  Outcome<controller::StoredWorkspace> RecordIdentity(
      const std::string& name, const controller::WorkspaceIdentity& identity) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("RecordIdentity")) return *failed;
    const auto found = state_.workspaces.find(name);
    if (found == state_.workspaces.end()) {
      return Failure::Stalled("WorkspaceNotFound", "store: workspace \"" + name + "\" not found");
    }
    if (!found->second.identity) found->second.identity = identity;
    return found->second;
  }

  Outcome<Done> RecordStackEndpoint(const std::string& name,
                                    std::optional<int> endpoint) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("RecordStackEndpoint")) return *failed;
    const auto found = state_.workspaces.find(name);
    if (found == state_.workspaces.end()) {
      return Failure::Stalled("WorkspaceNotFound", "store: workspace \"" + name + "\" not found");
    }
    found->second.stack_endpoint = endpoint;
    return Done{};
  }

  Outcome<bool> Remove(const std::string& name) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("Remove")) return *failed;
    state_.statuses.erase(name);
    return state_.workspaces.erase(name) > 0;
  }

  Outcome<Done> PutStatus(const controller::WorkspaceStatus& status) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("PutStatus")) return *failed;
    state_.statuses[status.name] = status;
    return Ok();
  }

  Outcome<std::optional<controller::WorkspaceStatus>> GetStatus(const std::string& name) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("GetStatus")) return *failed;
    const auto found = state_.statuses.find(name);
    if (found == state_.statuses.end()) return std::optional<controller::WorkspaceStatus>();
    return std::optional<controller::WorkspaceStatus>(found->second);
  }

  Outcome<std::vector<controller::WorkspaceStatus>> ListStatuses() override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("ListStatuses")) return *failed;
    std::vector<controller::WorkspaceStatus> out;
    for (const auto& [name, status] : state_.statuses) out.push_back(status);
    return out;
  }

  Outcome<Done> PutSourceStatus(const controller::SourceStatus& status) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("PutSourceStatus")) return *failed;
    state_.sources[status.name] = status;
    return Ok();
  }

  Outcome<std::vector<controller::SourceStatus>> ListSourceStatuses() override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("ListSourceStatuses")) return *failed;
    std::vector<controller::SourceStatus> out;
    for (const auto& [name, status] : state_.sources) out.push_back(status);
    return out;
  }

  Outcome<std::int64_t> AppendEvent(const controller::Event& event) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("AppendEvent")) return *failed;
    controller::Event stored = event;
    stored.id = ++last_event_id_;
    if (stored.at_unix == 0) stored.at_unix = now_;
    state_.events.push_back(std::move(stored));
    return last_event_id_;
  }

  Outcome<std::vector<controller::Event>> ListEvents(const std::optional<std::string>& workspace,
                                                     std::int64_t limit) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("ListEvents")) return *failed;
    std::vector<controller::Event> out;
    for (auto it = state_.events.rbegin(); it != state_.events.rend(); ++it) {
      if (std::cmp_greater_equal(out.size(), std::max<std::int64_t>(limit, 0))) break;
      if (!workspace || it->workspace == *workspace) out.push_back(*it);
    }
    return out;
  }

  Outcome<std::int64_t> RecordDelivery(const controller::WebhookDelivery& delivery) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("RecordDelivery")) return *failed;
    controller::WebhookDelivery stored = delivery;
    stored.id = ++last_delivery_id_;
    if (stored.received_at_unix == 0) stored.received_at_unix = now_;
    state_.deliveries.push_back(std::move(stored));
    if (controller::IsRejectedDelivery(delivery.verdict)) {  // the ring, as the adapter keeps it
      const std::int64_t oldest_kept = last_delivery_id_ - retention.rejected_deliveries;
      std::erase_if(state_.deliveries, [&](const controller::WebhookDelivery& d) {
        return controller::IsRejectedDelivery(d.verdict) && d.id <= oldest_kept;
      });
    }
    return last_delivery_id_;
  }

  Outcome<controller::Pruned> Prune() override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("Prune")) return *failed;
    controller::Pruned pruned;
    const auto prune = [&](auto& rows, auto at_of, std::chrono::seconds max_age,
                           std::int64_t max_count) {
      const std::size_t before = rows.size();
      std::erase_if(rows, [&](const auto& row) { return at_of(row) < now_ - max_age.count(); });
      const auto keep = static_cast<std::size_t>(std::max<std::int64_t>(max_count, 0));
      if (rows.size() > keep) rows.erase(rows.begin(), rows.end() - static_cast<std::ptrdiff_t>(keep));
      return static_cast<std::int64_t>(before - rows.size());
    };
    pruned.events = prune(state_.events, [](const controller::Event& e) { return e.at_unix; },
                          retention.events_max_age, retention.events_max_count);
    pruned.deliveries = prune(
        state_.deliveries, [](const controller::WebhookDelivery& d) { return d.received_at_unix; },
        retention.deliveries_max_age, retention.deliveries_max_count);
    return pruned;
  }

  controller::Retention retention;  ///< set before use

  Outcome<std::vector<controller::StackLedgerRow>> ListStackLedger(
      const std::string& backend) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("ListStackLedger")) return *failed;
    std::vector<controller::StackLedgerRow> out;
    for (const auto& [workspace, row] : state_.stack_ledger) {
      if (row.backend == backend) out.push_back(row);
    }
    return out;
  }

  Outcome<Done> PutStackLedger(const controller::StackLedgerRow& row) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("PutStackLedger")) return *failed;
    if (std::optional<Failure> bad = controller::CheckStackLedgerRow(row)) return *bad;
    state_.stack_ledger[row.workspace] = row;
    return Ok();
  }

  Outcome<bool> EraseStackLedger(const std::string& workspace) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("EraseStackLedger")) return *failed;
    return state_.stack_ledger.erase(workspace) > 0;
  }

  Outcome<Done> CreateToken(const controller::ApiToken& token) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("CreateToken")) return *failed;
    if (std::optional<Failure> bad = controller::CheckApiToken(token)) return *bad;
    if (!state_.tokens.emplace(token.id, token).second) {
      return Failure::Stalled("TokenExists", "an API token with id \"" + token.id +
                                                 "\" already exists");
    }
    return Ok();
  }

  Outcome<std::optional<controller::ApiToken>> FindToken(const std::string& id) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("FindToken")) return *failed;
    const auto found = state_.tokens.find(id);
    if (found == state_.tokens.end()) return std::optional<controller::ApiToken>();
    return std::optional<controller::ApiToken>(found->second);
  }

  Outcome<std::vector<controller::ApiToken>> ListTokens() override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("ListTokens")) return *failed;
    std::vector<controller::ApiToken> out;
    for (const auto& [id, token] : state_.tokens) out.push_back(token);
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
      return a.created_unix < b.created_unix;
    });
    return out;
  }

  Outcome<bool> RevokeToken(const std::string& id, std::int64_t at_unix) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("RevokeToken")) return *failed;
    const auto found = state_.tokens.find(id);
    if (found == state_.tokens.end() || found->second.revoked_unix) return false;
    found->second.revoked_unix = at_unix;
    return true;
  }

  Outcome<Done> TouchToken(const std::string& id, std::int64_t at_unix) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("TouchToken")) return *failed;
    const auto found = state_.tokens.find(id);
    if (found == state_.tokens.end()) return Ok();
    std::optional<std::int64_t>& last = found->second.last_used_unix;
    if (!last || *last < at_unix) last = at_unix;
    return Ok();
  }

  Outcome<std::vector<controller::StoredOverride>> ListOverrides() override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("ListOverrides")) return *failed;
    std::vector<controller::StoredOverride> out;
    for (const auto& [name, row] : state_.overrides) out.push_back(row);
    return out;
  }

  Outcome<Done> SetOverride(const controller::StoredOverride& override) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("SetOverride")) return *failed;
    state_.overrides[override.workspace] = override;
    return Ok();
  }

  Outcome<bool> ClearOverride(const std::string& workspace) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("ClearOverride")) return *failed;
    return state_.overrides.erase(workspace) > 0;
  }

  Outcome<Done> CreateSession(const controller::StoredSession& session) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("CreateSession")) return *failed;
    if (std::optional<Failure> bad = controller::CheckSession(session)) return *bad;
    if (!state_.sessions.emplace(session.id, session).second) {
      return Failure::Stalled("SessionExists", "a session with that id already exists");
    }
    return Ok();
  }

  Outcome<std::optional<controller::StoredSession>> FindSession(const std::string& id) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("FindSession")) return *failed;
    const auto found = state_.sessions.find(id);
    if (found == state_.sessions.end()) return std::optional<controller::StoredSession>();
    return std::optional<controller::StoredSession>(found->second);
  }

  Outcome<Done> TouchSession(const std::string& id, std::int64_t at_unix) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("TouchSession")) return *failed;
    const auto found = state_.sessions.find(id);
    if (found != state_.sessions.end() && found->second.last_seen_unix < at_unix) {
      found->second.last_seen_unix = at_unix;
    }
    return Ok();
  }

  Outcome<bool> RevokeSession(const std::string& id, std::int64_t at_unix) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("RevokeSession")) return *failed;
    const auto found = state_.sessions.find(id);
    if (found == state_.sessions.end() || found->second.revoked_unix) return false;
    found->second.revoked_unix = at_unix;
    return true;
  }

  Outcome<std::optional<controller::LoginFailure>> FindLoginFailure(
      const std::string& key) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("FindLoginFailure")) return *failed;
    const auto found = state_.login_failures.find(key);
    if (found == state_.login_failures.end()) return std::optional<controller::LoginFailure>();
    return std::optional<controller::LoginFailure>(found->second);
  }

  Outcome<controller::LoginFailure> RecordLoginFailure(
      const std::string& key, std::int64_t now_unix, const controller::LoginLimit& limit) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("RecordLoginFailure")) return *failed;
    const auto found = state_.login_failures.find(key);
    std::optional<controller::LoginFailure> before;
    if (found != state_.login_failures.end()) before = found->second;
    controller::LoginFailure after = controller::NextLoginFailure(before, key, now_unix, limit);
    state_.login_failures[key] = after;
    return after;
  }

  Outcome<bool> ClearLoginFailure(const std::string& key) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("ClearLoginFailure")) return *failed;
    return state_.login_failures.erase(key) > 0;
  }

  // The backup catalog, as controller/store/store_libpq_backups.cpp keeps it (the same checks
  // and order; tests/controller/backups/fake_catalog_test.cpp holds both to the same cases).

  Outcome<Done> PutBackup(const controller::StoredBackup& backup) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("PutBackup")) return *failed;
    if (std::optional<Failure> bad = controller::CheckBackupRecord(backup)) return *bad;
    state_.backups[backup.id] = backup;
    return Ok();
  }

  Outcome<std::optional<controller::StoredBackup>> FindBackup(const std::string& id) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("FindBackup")) return *failed;
    const auto found = state_.backups.find(id);
    if (found == state_.backups.end()) return std::optional<controller::StoredBackup>();
    return std::optional<controller::StoredBackup>(found->second);
  }

  Outcome<std::vector<controller::StoredBackup>> ListBackups(
      const std::optional<std::string>& workspace) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("ListBackups")) return *failed;
    std::vector<controller::StoredBackup> out;
    for (const auto& [id, backup] : state_.backups) {
      if (!workspace || backup.workspace == *workspace) out.push_back(backup);
    }
    // ORDER BY workspace COLLATE "C", created_at DESC, id COLLATE "C" DESC: byte order, as
    // std::string compares.
    std::sort(out.begin(), out.end(),
              [](const controller::StoredBackup& a, const controller::StoredBackup& b) {
                if (a.workspace != b.workspace) return a.workspace < b.workspace;
                if (a.created_unix != b.created_unix) return a.created_unix > b.created_unix;
                return a.id > b.id;
              });
    return out;
  }

  Outcome<bool> UpdateBackupVerification(const std::string& id, const std::string& state,
                                         const std::string& reason,
                                         std::int64_t at_unix) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("UpdateBackupVerification")) return *failed;
    if (state != "verified" && state != "verifyFailed") {
      return Failure::Stalled("InvalidValue", "backup " + Quoted(id) +
                                                  ": a verification's state must be verified or "
                                                  "verifyFailed, not " + Quoted(state));
    }
    const auto found = state_.backups.find(id);
    if (found == state_.backups.end() || found->second.state == "failed") return false;
    found->second.state = state;
    found->second.reason = reason;
    found->second.verified_unix = at_unix;
    return true;
  }

  Outcome<bool> DeleteBackup(const std::string& id) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("DeleteBackup")) return *failed;
    return state_.backups.erase(id) > 0;
  }

  Outcome<controller::StoredRevision> RecordRevision(const std::string& product,
                                                     const std::string& digest,
                                                     const std::string& spec_json,
                                                     std::int64_t now_unix) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("RecordRevision")) return *failed;
    if (std::optional<Failure> bad = controller::CheckRevisionRecord(product, digest)) return *bad;
    std::vector<controller::StoredRevision>& known = state_.revisions[product];
    for (const controller::StoredRevision& revision : known) {
      if (revision.digest == digest) return revision;
    }
    // After the newest, which pruning never removes (numbers are never reused).
    const int next = known.empty() ? 1 : known.back().number + 1;
    controller::StoredRevision revision{product, next, digest, spec_json, now_unix};
    known.push_back(revision);
    return revision;
  }

  Outcome<std::vector<controller::StoredRevision>> ListRevisions(
      const std::string& product) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("ListRevisions")) return *failed;
    const auto found = state_.revisions.find(product);
    if (found == state_.revisions.end()) return std::vector<controller::StoredRevision>();
    return found->second;
  }

  Outcome<int> PruneRevisions(const std::string& product, int history,
                              const std::set<int>& keep) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("PruneRevisions")) return *failed;
    if (std::optional<Failure> bad = controller::CheckRevisionPrune(product, history)) {
      return *bad;
    }
    const auto found = state_.revisions.find(product);
    if (found == state_.revisions.end() || found->second.empty()) return 0;
    std::vector<controller::StoredRevision>& known = found->second;
    const int newest = known.back().number;
    const auto before = known.size();
    std::erase_if(known, [&](const controller::StoredRevision& revision) {
      return revision.number <= newest - history && keep.count(revision.number) == 0;
    });
    return static_cast<int>(before - known.size());
  }

  Outcome<std::optional<controller::StoredRollout>> GetRollout(
      const std::string& product) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("GetRollout")) return *failed;
    const auto found = state_.rollouts.find(product);
    if (found == state_.rollouts.end()) return std::optional<controller::StoredRollout>();
    return std::optional<controller::StoredRollout>(found->second);
  }

  Outcome<std::optional<std::int64_t>> PutRollout(const std::string& product,
                                                  std::int64_t expected_version,
                                                  const std::string& state_json,
                                                  std::int64_t now_unix) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("PutRollout")) return *failed;
    if (std::optional<Failure> bad = controller::CheckRolloutWrite(product, expected_version)) {
      return *bad;
    }
    const auto found = state_.rollouts.find(product);
    const std::int64_t stored = found == state_.rollouts.end() ? 0 : found->second.version;
    if (stored != expected_version) return std::optional<std::int64_t>();
    state_.rollouts[product] =
        controller::StoredRollout{product, expected_version + 1, state_json, now_unix};
    return std::optional<std::int64_t>(expected_version + 1);
  }

  Outcome<std::vector<controller::StoredRollout>> ListRollouts() override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("ListRollouts")) return *failed;
    std::vector<controller::StoredRollout> out;
    for (const auto& [product, rollout] : state_.rollouts) out.push_back(rollout);
    return out;
  }

  Outcome<std::vector<controller::StoredPlacement>> ListPlacements() override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("ListPlacements")) return *failed;
    std::vector<controller::StoredPlacement> out;
    for (const auto& [name, placement] : state_.placements) out.push_back(placement);
    return out;
  }

  Outcome<controller::StoredPlacement> RecordPlacement(const std::string& workspace,
                                                       const std::string& cluster,
                                                       std::int64_t now_unix) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("RecordPlacement")) return *failed;
    if (workspace.empty() || cluster.empty()) {
      return Failure::Stalled("InvalidValue", "a placement needs a workspace and a cluster");
    }
    return state_.placements.try_emplace(workspace, workspace, cluster, now_unix).first->second;
  }

  Outcome<bool> RemovePlacement(const std::string& workspace) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("RemovePlacement")) return *failed;
    return state_.placements.erase(workspace) != 0;
  }

  Outcome<std::vector<controller::StoredMove>> ListMoves() override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("ListMoves")) return *failed;
    std::vector<controller::StoredMove> out;
    for (const auto& [name, move] : state_.moves) out.push_back(move);
    return out;
  }

  Outcome<std::optional<controller::StoredMove>> FindMove(const std::string& workspace) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("FindMove")) return *failed;
    const auto found = state_.moves.find(workspace);
    if (found == state_.moves.end()) return std::optional<controller::StoredMove>();
    return std::optional<controller::StoredMove>(found->second);
  }

  Outcome<std::optional<std::int64_t>> PutMove(const controller::StoredMove& move,
                                               std::int64_t now_unix) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("PutMove")) return *failed;
    return PutMoveLocked(move, now_unix);
  }

  Outcome<std::optional<std::int64_t>> SwitchPlacement(const controller::StoredMove& move,
                                                       std::int64_t now_unix) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("SwitchPlacement")) return *failed;
    const auto found = state_.moves.find(move.workspace);
    const std::int64_t stored = found == state_.moves.end() ? 0 : found->second.version;
    if (stored != move.version) return std::optional<std::int64_t>();
    auto placed = state_.placements.try_emplace(move.workspace, move.workspace, move.to_cluster,
                                                now_unix);
    placed.first->second.cluster = move.to_cluster;
    if (auto ws = state_.workspaces.find(move.workspace);
        ws != state_.workspaces.end() && ws->second.identity) {
      ws->second.identity->cluster = move.to_cluster;
    }
    return PutMoveLocked(move, now_unix);
  }

  Outcome<std::vector<controller::WebhookDelivery>> ListDeliveries(std::int64_t limit) override {
    const std::lock_guard lock(mutex_);
    if (auto failed = Enter("ListDeliveries")) return *failed;
    std::vector<controller::WebhookDelivery> out;
    for (auto it = state_.deliveries.rbegin(); it != state_.deliveries.rend(); ++it) {
      if (std::cmp_greater_equal(out.size(), std::max<std::int64_t>(limit, 0))) break;
      out.push_back(*it);
    }
    return out;
  }

 private:
  Outcome<std::optional<std::int64_t>> PutMoveLocked(const controller::StoredMove& move,
                                                     std::int64_t now_unix) {
    if (move.workspace.empty() || move.id.empty()) {
      return Failure::Stalled("InvalidValue", "a move needs a workspace and an id");
    }
    const auto found = state_.moves.find(move.workspace);
    const std::int64_t stored = found == state_.moves.end() ? 0 : found->second.version;
    if (stored != move.version) return std::optional<std::int64_t>();
    controller::StoredMove written = move;
    written.version = move.version + 1;
    written.updated_unix = now_unix;
    state_.moves[move.workspace] = written;
    return std::optional<std::int64_t>(written.version);
  }

  // Counts the call and returns the injected failure, if one is due. Caller holds mutex_.
  std::optional<Failure> Enter(const char* name) {
    ++calls_[name];
    if (down_) return failure_;
    if (fail_next_ == 0) return std::nullopt;
    --fail_next_;
    return failure_;
  }

  mutable std::mutex mutex_;
  State state_;
  std::int64_t last_event_id_ = 0;
  std::int64_t last_delivery_id_ = 0;
  std::int64_t now_ = 1'700'000'000;  // 2023-11-14T22:13:20Z
  std::map<std::string, std::size_t> calls_;
  std::size_t fail_next_ = 0;
  bool down_ = false;
  Failure failure_ = Unavailable();
};

}  // namespace tmaster::testing
