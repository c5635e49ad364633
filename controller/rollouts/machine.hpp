#pragma once
// The state machine of one product's rollout (docs/rollouts.md, "The state machine") as a pure
// value and pure functions: each takes the stored state and returns the next one with what the
// driver must do (targets to set, backups to restore) and the events to record. The driver (the
// leader's tick, the API's verbs) stores the new state with a compare-and-set on `version`, then
// carries out the effects; it owns the clock, the store and the reconciler, this file none.
//
// Waves are numbered from 0 here (`current_wave`, `WorkspaceEntry::wave`: indices into
// AssignWaves' result); event messages count them from 1, as a person reads them.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/outcome.hpp"
#include "controller/rollouts/waves.hpp"

namespace tmaster::rollouts {

enum class Phase {
  kProgressing,  ///< moving the workspaces of `current_wave`
  kPaused,       ///< between waves until `paused_until`, or by a person (`paused_by_person`)
  kHalted,       ///< the failure budget of the current wave was reached; nothing new starts
  kCompleted,    ///< every wave done (ended)
  kAborted,      ///< stopped by a person; reached workspaces stay (ended)
  kUndone,       ///< reached workspaces pinned back, their backups to restore (ended)
  kSuperseded,   ///< a newer revision's rollout took over (ended)
};

/// Where one workspace of the rollout stands.
enum class WorkspaceState {
  kPending,     ///< not moved yet: reconciled against its `from_revision`
  kInProgress,  ///< its revision target is set; the reconciler applies the new revision
  kReady,       ///< reported the new revision applied and Ready, after its target was set
  kFailed,      ///< its pass failed on the new revision, or it was not Ready in time
};

/// `Progressing`, `Paused`, ... as the status and the API spell them.
std::string_view ToString(Phase phase);
/// `pending`, `inProgress`, `ready`, `failed`.
std::string_view ToString(WorkspaceState state);
/// Completed, Aborted, Undone and Superseded: nothing moves any more.
bool Ended(Phase phase);

struct WorkspaceEntry {
  std::string name;
  int wave = 0;
  WorkspaceState state = WorkspaceState::kPending;
  /// The revision it was on when the rollout started: the previous revision, or, for a
  /// rollout that superseded another, the older rollout's revision if that one reached it.
  int from_revision = 0;
  /// Failed: why (workspace, file, SQLSTATE: as the report said, or the ready timeout).
  std::string reason;
  /// The id of the backup taken right before its migration to the new revision; empty when
  /// none was reported (no new migration, or the report is still to come).
  std::string pre_migration_backup;
  /// When its target was set (InProgress); what the ready timeout counts from.
  std::optional<std::int64_t> target_set_unix;
  /// How many times its target was set (1 at the first, +1 on each retry after a halt). The
  /// reconciler records the attempt it applied in the workspace's status, so a reading counts
  /// only when it carries the current attempt (Observed::observed_after_target): never a
  /// failure of the attempt before a retry, whatever the clocks of two leaders say.
  std::int64_t attempt = 0;
  /// Undone: the restore of `pre_migration_backup` the driver asked for (its id), or why none
  /// was (no backup was taken, the request failed). Empty until then.
  std::string restore;
  bool operator==(const WorkspaceEntry&) const = default;
};

/// One rollout as stored (`tm_rollouts`, `tm_rollout_workspaces`).
struct RolloutState {
  std::string product;
  int revision = 0;           ///< the revision being rolled out
  int previous_revision = 0;  ///< the stable one: where unreached and newly created ones stay
  Phase phase = Phase::kProgressing;
  int current_wave = 0;
  int wave_count = 0;  ///< the policy's waves plus the implicit last one; empty waves count
  /// Set while a pause between waves runs: the next wave (`current_wave`, not started yet)
  /// starts at this time. Kept under a person's pause, which ends separately.
  std::optional<std::int64_t> paused_until;
  bool paused_by_person = false;
  /// By wave, then in the stable order.
  std::vector<WorkspaceEntry> workspaces;
  std::int64_t started_unix = 0;
  std::optional<std::int64_t> finished_unix;  ///< set when the phase becomes an ended one
  /// Ended, then its product's `rollout` policy was removed: its workspaces have followed the
  /// product at once since, so its pins no longer hold (PinOf ignores it); kept as a record.
  bool retired = false;
  /// Incremented by every transition that changes anything: the store updates the row only
  /// where its version is still the one this transition started from.
  std::int64_t version = 0;
  bool operator==(const RolloutState&) const = default;
};

/// Set this workspace's revision target: the reconciler applies `revision` from now on.
struct SetTarget {
  std::string workspace;
  int revision = 0;
  std::int64_t attempt = 0;  ///< WorkspaceEntry::attempt
  bool operator==(const SetTarget&) const = default;
};

/// Undo of one reached workspace: pin it to `revision`, and restore `backup` (empty: none was
/// reported; the driver may find the newest pre-migration backup in the catalog).
struct Restore {
  std::string workspace;
  int revision = 0;
  std::string backup;
  bool operator==(const Restore&) const = default;
};

/// An event for the product (`RolloutStarted`, `RolloutWaveStarted`, ...).
struct Event {
  std::string reason;
  std::string message;
  bool warning = false;
};

/// The result of one function below: the next state and what follows from it. `changed` is
/// false (and `state` equal to the input, same version) when nothing happened: nothing to
/// store, no effect, no event.
struct Transition {
  RolloutState state;
  bool changed = false;
  std::vector<Event> events;
  std::vector<SetTarget> targets;
  std::vector<Restore> restores;
};

/// What one workspace's own status says, as the driver read it.
struct Observed {
  int revision_applied = 0;  ///< `status.productRevision`
  bool ready = false;
  bool failed = false;  ///< its last pass failed (a migration, the stack, its health check)
  std::string reason;   ///< failed: workspace, file, SQLSTATE
  std::string backup;   ///< the pre-migration backup that pass took, if any
  /// The status was written by a pass that began after the target was set (the latest one: a
  /// retried workspace's target is set again, `target_set_unix`). An earlier reading (a health
  /// check of the old revision, the failure of the attempt before a retry) never counts.
  bool observed_after_target = false;
};

/// Counts of the rollout's workspaces by state, for the status and the metric.
struct Counts {
  int pending = 0;
  int in_progress = 0;
  int ready = 0;
  int failed = 0;
};
Counts CountStates(const RolloutState& state);

/// A new rollout of `revision` (from `previous`) over `members`: waves assigned once
/// (AssignWaves), `RolloutStarted`, then the first tick at `now`: the first workspaces get
/// their targets, empty leading waves complete at once; no members: Completed at once. Stalled
/// `InvalidRolloutPolicy` (Validate), or `InvalidRevision` when `revision` equals `previous`.
Outcome<Transition> Start(const Policy& policy, const std::string& product, int revision,
                          int previous, const std::vector<Member>& members, std::int64_t now);

/// As Start, with each member's `from_revision` taken from `from` (members missing there:
/// `previous`): where an earlier rollout that ended (aborted, undone) left each one.
Outcome<Transition> Start(const Policy& policy, const std::string& product, int revision,
                          int previous, const std::vector<Member>& members, std::int64_t now,
                          const std::map<std::string, int>& from);

/// What a workspace is reconciled against (docs/rollouts.md#revisions).
struct Pinned {
  int revision = 0;
  std::int64_t attempt = 0;  ///< its WorkspaceEntry::attempt when pinned to the new revision
  bool operator==(const Pinned&) const = default;
};
/// The revision workspace `workspace` is reconciled against, for a product whose revision is
/// `current` now, with `rollout` its product's rollout (nullptr: none ever) and `converged` the
/// revision its status records (0: none). Of the rollout's workspaces: a pending one, or any
/// after an undo, stays on its `from_revision`; a reached one is on the rollout's revision,
/// with its attempt. Not part of it: its converged revision; when it has none (a workspace
/// created during the rollout), the rollout's previous revision while the rollout runs, else
/// `current`. A retired rollout counts as none. The caller decides outside rollouts (no
/// policy: always `current`).
Pinned PinOf(const RolloutState* rollout, const std::string& workspace, int current,
             int converged);

/// Advances the rollout at `now`; never refused, unchanged when nothing is due:
/// - InProgress workspaces past `ready_timeout` fail; the budget-th failure of the wave halts;
/// - Progressing: a wave whose workspaces are all ready is done (`RolloutWaveCompleted`); after
///   the last, `Completed`; otherwise the next wave starts (`RolloutWaveStarted`) at once, or
///   after `pause_between_waves` in Paused (not after an empty wave: there is nothing to watch);
///   then pending workspaces of the wave, in order, get their targets while fewer than
///   `max_unavailable` are in progress;
/// - Paused: when `paused_until` has passed and no person paused it, the next wave starts;
/// - Halted: only the ready timeout applies; ended phases: unchanged.
Transition Tick(const RolloutState& state, const Policy& policy, std::int64_t now);

/// One workspace's status, reported. Counts only for an InProgress workspace of an unended
/// rollout and only when `observed_after_target`: `failed` makes it Failed (and the
/// budget-th failure of the wave Halted, `RolloutHalted` naming each failure), `ready` with
/// `revision_applied == revision` makes it Ready. Anything else (another workspace, a stale
/// or old-revision reading) leaves the state unchanged. The driver ticks after a change.
Transition Report(const RolloutState& state, const Policy& policy, const std::string& workspace,
                  const Observed& observed);

// The verbs (`tenantctl rollout ...`). Each is refused with Stalled `RolloutCommandRefused`
// and a message saying why (the phase, and what would work) when it does not apply.

/// Progressing, or Paused between waves: no workspace starts moving until `Resume`.
Outcome<Transition> Pause(const RolloutState& state);
/// A person's pause ends (a pause between waves still running stays, until its time or
/// `Promote`); or Halted: the failed workspaces of the current wave are Pending again. Then
/// advances as a tick at `now` would, so the retried workspaces get their targets at once.
Outcome<Transition> Resume(const RolloutState& state, const Policy& policy, std::int64_t now);
/// Paused: ends the pause now, whoever paused: a pending next wave starts, and the rollout
/// advances as a tick at `now` would.
Outcome<Transition> Promote(const RolloutState& state, const Policy& policy, std::int64_t now);
/// Progressing, Paused or Halted: `Aborted`. Reached workspaces stay on the new revision (those
/// in progress finish); the others stay on their `from_revision`.
Outcome<Transition> Abort(const RolloutState& state, std::int64_t now);
/// Progressing, Paused, Halted, Aborted or Completed: `Undone`, with one Restore per reached
/// workspace (InProgress, Ready or Failed) to its `from_revision` and its pre-migration backup.
Outcome<Transition> Undo(const RolloutState& state, std::int64_t now);

/// The two rollouts of a supersede: the old one ended, the new one started.
struct Superseding {
  Transition ended;
  Transition started;
};
/// A new revision during a rollout (Progressing, Paused or Halted): the old one ends
/// `Superseded` and a new one starts from the first wave over `members` (waves assigned again),
/// its `previous_revision` the old one's; each workspace's `from_revision` is the old rollout's
/// revision if the old one reached it, else what it was before. Refused for an ended rollout
/// (Start a new one) or the same revision.
Outcome<Superseding> Supersede(const RolloutState& state, const Policy& policy, int revision,
                               const std::vector<Member>& members, std::int64_t now);

/// A workspace created during the rollout joins the last wave, Pending, on `previous_revision`.
/// Unchanged when the rollout ended or it is already part of it.
Transition Join(const RolloutState& state, const std::string& workspace);
/// A workspace removed during the rollout leaves its wave (which may complete it: the next
/// tick sees). Unchanged when the rollout ended (its record stays) or it is not part of it.
Transition Forget(const RolloutState& state, const std::string& workspace);

}  // namespace tmaster::rollouts
