#pragma once
// The rollout driver (docs/rollouts.md): the leader's side of fleet rollouts. It owns each
// product's rollout as stored (tm_rollouts), advances it with the pure state machine
// (controller/rollouts/machine.hpp) on a thread of its own, and carries out what a transition
// asks: targets set (the workspace is queued; its next pass applies the new revision), events,
// restores on undo. It also answers the reconciler's question "which revision does this
// workspace apply" (RevisionPins) and the API's rollout routes (RolloutControl).
//
// Every write of a rollout is a compare-and-set on the version the driver read (Store::
// PutRollout), so a leader that lost its lock cannot overwrite its successor's progress; a
// refused write reloads the stored state and decides again. The state in memory is only ever the
// stored one: a new leader loads it and continues, and a workspace whose target was set once is
// never moved twice (its attempt is recorded with its status).

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "controller/backups/service.hpp"
#include "controller/daemon/health_gate.hpp"
#include "controller/daemon/rollout_control.hpp"
#include "controller/rollouts/machine.hpp"
#include "controller/rollouts/revision.hpp"
#include "controller/runtime/events.hpp"
#include "controller/runtime/metrics.hpp"
#include "controller/sources/desired_state.hpp"
#include "controller/sources/product_registry.hpp"
#include "controller/store/store.hpp"
#include "controller/workspace/revision_pins.hpp"

namespace tmaster::controller {

/// The caller owns everything pointed to.
struct RolloutDriverDeps {
  Store* store = nullptr;
  DesiredState* desired = nullptr;
  ProductRegistry* products = nullptr;
  EventRecorder* events = nullptr;
  Metrics* metrics = nullptr;
  /// Restores the pre-migration backups on undo; nullptr: undo pins back only, and says so.
  ::tmaster::backups::BackupService* backups = nullptr;
  /// Queues a workspace (its pin changed); false on a standby.
  std::function<bool(const std::string&)> enqueue;
  /// Seconds since the epoch (tests fix it); empty: the system clock.
  std::function<std::int64_t()> now_unix;
  /// The health gate of `rollout.healthCheck` (health_gate.hpp); nullptr: a dedicated workspace
  /// counts on its Ready status alone.
  HealthGate* health = nullptr;
  std::string base_domain;      ///< a dedicated workspace's host is <subdomain>.<baseDomain>
  std::string health_base_url;  ///< `rollouts.healthBaseUrl`; empty: https://<host>
};

struct RolloutDriverOptions {
  /// The longest wait between two steps; a status written, a verb or a product change wakes
  /// it sooner (docs/rollouts.md: a rollout halts within one step).
  std::chrono::milliseconds interval{1000};
  /// The shortest time between two steps, so a burst of statuses is one step.
  std::chrono::milliseconds min_interval{50};
};

/// Manifest policy → the state machine's (its waves, budgets, pause, ready timeout).
rollouts::Policy PolicyOf(const manifests::RolloutSpec& spec);

/// What a workspace's status says, as the state machine reads it for `entry` of `state`: a
/// reading counts only when it carries the rollout's revision and the entry's current attempt.
rollouts::Observed ObservedOf(const WorkspaceStatus& status, const rollouts::RolloutState& state,
                              const rollouts::WorkspaceEntry& entry);

/// Thread-safe.
class RolloutDriver final : public RevisionPins, public RolloutControl {
 public:
  RolloutDriver(RolloutDriverDeps deps, RolloutDriverOptions options);
  ~RolloutDriver() override;
  RolloutDriver(const RolloutDriver&) = delete;
  RolloutDriver& operator=(const RolloutDriver&) = delete;

  /// A leadership term begins: the stored rollouts and the term's statuses. A store failure
  /// fails the term's start (without the stored rollouts, pins could move workspaces early).
  Status BeginTerm(const std::vector<WorkspaceStatus>& statuses);
  /// Starts the stepping thread (after BeginTerm). Start and Stop: from the term's thread only
  /// (Daemon::Begin and StopIntake), never racing.
  void Start();
  /// Stops it; a step in flight finishes first.
  void Stop();
  /// Forgets the term's state (a standby again).
  void EndTerm();

  /// One step now, on the caller's thread (the thread calls it; tests call it directly).
  void Step();
  /// A status was written (the daemon's observer): kept for the next step, which is woken.
  void StatusChanged(const WorkspaceStatus& status);
  /// A workspace is gone.
  void Removed(const std::string& name);
  /// Wakes the thread (a product changed).
  void Wake();
  /// Deletes the stored revisions no one needs (`rollouts.revisionHistoryLimit`,
  /// docs/rollouts.md#revisions): of each product the sources declare, those older than its
  /// `history` newest, except its current revision, every revision a workspace's status records
  /// (converged or attempted, whatever its product: keeping too many is harmless), and those its
  /// rollout names (its revision, the previous one, each member's `from_revision`). Leader only
  /// (the term's statuses and rollouts). Returns how many went; a store failure stops it.
  Outcome<int> PruneRevisions(int history);

  // RevisionPins
  Outcome<RevisionPin> PinFor(const std::string& name, const DesiredEntry& entry,
                              int converged) override;
  // RolloutControl
  [[nodiscard]] Outcome<std::string> StatusJson(const std::string& product) const override;
  [[nodiscard]] std::string SummaryJson(const std::string& product) const override;
  Outcome<std::string> Command(const std::string& product, const std::string& verb,
                               const std::string& who) override;

 private:
  /// What one step or verb decided, carried out after the lock is released.
  struct Effects {
    std::vector<std::pair<std::string, rollouts::Event>> events;  ///< product, event
    std::set<std::string> enqueue;
    std::vector<std::pair<std::string, rollouts::Restore>> restores;  ///< product, restore
    std::vector<std::string> products;  ///< whose metric to publish
  };
  /// A revision refused for a product (RolloutRefused): no rollout of it starts.
  struct Refusal {
    int revision = 0;
    std::string message;
  };

  std::int64_t Now() const;
  void Loop();
  /// One product's step, under mutex_.
  /// A product's workspaces as one step sees them: with their labels, and the host of each
  /// dedicated one (for the health gate).
  struct Members {
    std::vector<rollouts::Member> list;
    std::map<std::string, std::string> hosts;
  };
  void StepProduct(const std::string& product, const ProductEntry& entry, const Members& members,
                   std::int64_t now, Effects& effects);
  /// What `status` says of `entry`, with the health gate's verdict for a dedicated workspace of a
  /// product with `rollout.healthCheck`: nullopt while the gate waits (not ready yet).
  std::optional<rollouts::Observed> Observe(const WorkspaceStatus& status,
                                            const rollouts::RolloutState& state,
                                            const rollouts::WorkspaceEntry& entry,
                                            const manifests::RolloutSpec& spec,
                                            const Members& members);
  /// Keeps what a rollout reads of a status; under mutex_.
  void Keep(const WorkspaceStatus& status);
  /// Starts (or supersedes with) a rollout of the product's revision when its workspaces are
  /// not all on it; under mutex_.
  void Begin(const std::string& product, const ProductEntry& entry, const rollouts::Policy& policy,
             const std::vector<rollouts::Member>& members, std::int64_t now, Effects& effects);
  /// Stores `t` over the version read (compare-and-set); on success keeps it and collects its
  /// effects. False when it was not stored (another write came first: the stored state is
  /// reloaded; or the store failed: logged, retried next step). Under mutex_.
  bool Save(const std::string& product, rollouts::Transition t, Effects& effects,
            const std::string& note = {});
  /// Restores asked for by undo (outside mutex_): each asked of the backups service, and the
  /// result recorded on the rollout's entry (another compare-and-set).
  void RunRestores(const std::vector<std::pair<std::string, rollouts::Restore>>& restores);
  void Carry(Effects effects);
  /// The stored revision's inputs (cached); a store failure or an unknown number fails.
  Outcome<rollouts::RevisionInputs> InputsOf(const std::string& product, int revision);
  /// `current` rebuilt at `revision` (cached per base entry).
  Outcome<std::shared_ptr<const ProductEntry>> EntryAt(const std::shared_ptr<const ProductEntry>& current,
                                                       int revision);
  [[nodiscard]] std::string StatusJsonLocked(const std::string& product,
                                             const ProductEntry* entry) const;
  void PublishMetric(const std::string& product);

  RolloutDriverDeps deps_;
  RolloutDriverOptions options_;

  mutable std::mutex mutex_;  ///< the rollouts, the statuses, the refusals
  std::map<std::string, rollouts::RolloutState> rollouts_;  ///< by product, as stored
  std::map<std::string, std::int64_t> stored_versions_;     ///< tm_rollouts.version
  std::map<std::string, WorkspaceStatus> statuses_;         ///< the revision fields read
  std::map<std::string, Refusal> refused_;

  std::mutex revisions_mutex_;  ///< the revision caches (store reads happen under it)
  std::map<std::pair<std::string, int>, rollouts::RevisionInputs> inputs_;
  struct Rebuilt {
    std::shared_ptr<const ProductEntry> base;  ///< held, so its address is never reused
    std::shared_ptr<const ProductEntry> entry;
  };
  std::map<std::pair<std::string, int>, Rebuilt> rebuilt_;

  std::mutex wake_mutex_;
  std::condition_variable wake_;
  bool woken_ = false;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace tmaster::controller
