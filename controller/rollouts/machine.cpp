#include "controller/rollouts/machine.hpp"

#include <algorithm>
#include <cstddef>
#include <functional>
#include <utility>

namespace tmaster::rollouts {
namespace {

bool Reached(WorkspaceState state) { return state != WorkspaceState::kPending; }

std::string WaveText(const RolloutState& state, int wave) {
  return "wave " + std::to_string(wave + 1) + " of " + std::to_string(state.wave_count);
}

std::string PhaseText(const RolloutState& state) {
  std::string text(ToString(state.phase));
  if (!Ended(state.phase)) text += " in " + WaveText(state, state.current_wave);
  return text;
}

Failure Refused(const RolloutState& state, const std::string& verb, const std::string& why) {
  return Failure::Stalled("RolloutCommandRefused",
                          verb + " " + state.product + ": the rollout of revision " +
                              std::to_string(state.revision) + " is " + PhaseText(state) + "; " +
                              why);
}

void AddEvent(Transition& t, std::string reason, std::string message, bool warning = false) {
  t.events.push_back({std::move(reason), std::move(message), warning});
}

Transition From(const RolloutState& state) {
  Transition t;
  t.state = state;
  return t;
}

// The one place a transition's version moves: only when the state differs from the input.
Transition Finish(const RolloutState& before, Transition t) {
  t.changed = !(t.state == before);
  if (t.changed) t.state.version = before.version + 1;
  return t;
}

int WaveSize(const RolloutState& state, int wave) {
  return static_cast<int>(std::count_if(state.workspaces.begin(), state.workspaces.end(),
                                        [&](const WorkspaceEntry& e) { return e.wave == wave; }));
}

int CountInWave(const RolloutState& state, int wave, WorkspaceState which) {
  return static_cast<int>(
      std::count_if(state.workspaces.begin(), state.workspaces.end(),
                    [&](const WorkspaceEntry& e) { return e.wave == wave && e.state == which; }));
}

void End(Transition& t, Phase phase, std::int64_t now) {
  t.state.phase = phase;
  t.state.finished_unix = now;
  t.state.paused_until.reset();
  t.state.paused_by_person = false;
}

void StartWave(Transition& t) {
  RolloutState& s = t.state;
  s.phase = Phase::kProgressing;
  s.paused_until.reset();
  const int size = WaveSize(s, s.current_wave);
  AddEvent(t, "RolloutWaveStarted",
           WaveText(s, s.current_wave) + " of revision " + std::to_string(s.revision) + ": " +
               (size == 0 ? std::string("empty") : std::to_string(size) + " workspaces"));
}

// Workspaces waiting since before `now - ready_timeout` fail: the reconciler reports failures
// it sees, but only the rollout knows when it set the target.
void ApplyReadyTimeout(Transition& t, const Policy& policy, std::int64_t now) {
  if (policy.ready_timeout.count() <= 0) return;
  for (WorkspaceEntry& entry : t.state.workspaces) {
    if (entry.state != WorkspaceState::kInProgress || !entry.target_set_unix) continue;
    if (now - *entry.target_set_unix < policy.ready_timeout.count()) continue;
    entry.state = WorkspaceState::kFailed;
    entry.reason = "not Ready on revision " + std::to_string(t.state.revision) + " within " +
                   std::to_string(policy.ready_timeout.count()) + " s of its target (readyTimeout)";
  }
}

// The budget-th failure of the current wave halts, also under a person's pause: a halt says
// more than a pause, and resuming a halt is what retries the failed.
void CheckBudget(Transition& t, const Policy& policy) {
  RolloutState& s = t.state;
  if (s.phase != Phase::kProgressing && s.phase != Phase::kPaused) return;
  const int budget = std::max(policy.failure_budget, 1);
  const int failed = CountInWave(s, s.current_wave, WorkspaceState::kFailed);
  if (failed < budget) return;
  s.phase = Phase::kHalted;
  s.paused_by_person = false;
  s.paused_until.reset();
  std::string failures;
  for (const WorkspaceEntry& entry : s.workspaces) {
    if (entry.wave != s.current_wave || entry.state != WorkspaceState::kFailed) continue;
    failures += (failures.empty() ? "" : "; ") + entry.name + ": " + entry.reason;
  }
  const int in_progress = CountInWave(s, s.current_wave, WorkspaceState::kInProgress);
  AddEvent(t, "RolloutHalted",
           WaveText(s, s.current_wave) + " of revision " + std::to_string(s.revision) + ": " +
               std::to_string(failed) + " failed (failure budget " + std::to_string(budget) +
               "): " + failures + "; " + std::to_string(in_progress) +
               " in progress finish, nothing new starts",
           true);
}

void StartPending(Transition& t, const Policy& policy, std::int64_t now) {
  RolloutState& s = t.state;
  const int limit = std::max(policy.max_unavailable, 1);
  int in_progress = CountInWave(s, s.current_wave, WorkspaceState::kInProgress);
  for (WorkspaceEntry& entry : s.workspaces) {
    if (in_progress >= limit) return;
    if (entry.wave != s.current_wave || entry.state != WorkspaceState::kPending) continue;
    entry.state = WorkspaceState::kInProgress;
    entry.target_set_unix = now;
    ++entry.attempt;
    entry.reason.clear();
    t.targets.push_back({entry.name, s.revision, entry.attempt});
    ++in_progress;
  }
}

// Everything a tick does, on a transition being built; also the tail of Start and the verbs
// that let the rollout move again, so their effects come with them.
void Advance(Transition& t, const Policy& policy, std::int64_t now) {
  RolloutState& s = t.state;
  if (Ended(s.phase)) return;
  ApplyReadyTimeout(t, policy, now);
  CheckBudget(t, policy);
  if (s.phase == Phase::kPaused && !s.paused_by_person && s.paused_until &&
      now >= *s.paused_until) {
    StartWave(t);
  }
  while (s.phase == Phase::kProgressing) {
    const int size = WaveSize(s, s.current_wave);
    if (CountInWave(s, s.current_wave, WorkspaceState::kReady) != size) break;
    AddEvent(t, "RolloutWaveCompleted",
             WaveText(s, s.current_wave) + " of revision " + std::to_string(s.revision) + ": " +
                 (size == 0 ? std::string("empty") : std::to_string(size) + " workspaces ready"));
    if (s.current_wave + 1 >= s.wave_count) {
      End(t, Phase::kCompleted, now);
      AddEvent(t, "RolloutCompleted",
               "revision " + std::to_string(s.revision) + " reached " +
                   std::to_string(s.workspaces.size()) + " workspaces in " +
                   std::to_string(s.wave_count) + " waves");
      return;
    }
    ++s.current_wave;
    if (size > 0 && policy.pause_between_waves.count() > 0) {
      s.phase = Phase::kPaused;
      s.paused_until = now + policy.pause_between_waves.count();
      return;
    }
    StartWave(t);
  }
  if (s.phase == Phase::kProgressing) StartPending(t, policy, now);
}

WorkspaceEntry* Find(RolloutState& state, const std::string& workspace) {
  for (WorkspaceEntry& entry : state.workspaces) {
    if (entry.name == workspace) return &entry;
  }
  return nullptr;
}

using FromRevision = std::function<int(const std::string& workspace)>;

Outcome<Transition> Begin(const Policy& policy, const std::string& product, int revision,
                          int previous, const std::vector<Member>& members, std::int64_t now,
                          const FromRevision& from_revision, const std::string& note) {
  if (Status valid = Validate(policy); !valid) return valid.failure();
  const std::vector<std::vector<std::string>> waves = AssignWaves(policy, product, members);
  Transition t;
  RolloutState& s = t.state;
  s.product = product;
  s.revision = revision;
  s.previous_revision = previous;
  s.wave_count = static_cast<int>(waves.size());
  s.started_unix = now;
  std::string sizes;
  for (std::size_t wave = 0; wave < waves.size(); ++wave) {
    sizes += (sizes.empty() ? "" : ", ") + std::to_string(waves[wave].size());
    for (const std::string& name : waves[wave]) {
      WorkspaceEntry entry;
      entry.name = name;
      entry.wave = static_cast<int>(wave);
      entry.from_revision = from_revision(name);
      s.workspaces.push_back(std::move(entry));
    }
  }
  AddEvent(t, "RolloutStarted",
           "revision " + std::to_string(revision) + " (from " + std::to_string(previous) +
               "): " + std::to_string(members.size()) + " workspaces in " +
               std::to_string(waves.size()) + " waves (" + sizes + ")" + note);
  if (waves.empty()) {
    End(t, Phase::kCompleted, now);
    AddEvent(t, "RolloutCompleted",
             "revision " + std::to_string(revision) + ": no workspaces to reach");
  } else {
    StartWave(t);
    Advance(t, policy, now);
  }
  return Finish(RolloutState{}, std::move(t));
}

}  // namespace

std::string_view ToString(Phase phase) {
  switch (phase) {
    case Phase::kProgressing: return "Progressing";
    case Phase::kPaused: return "Paused";
    case Phase::kHalted: return "Halted";
    case Phase::kCompleted: return "Completed";
    case Phase::kAborted: return "Aborted";
    case Phase::kUndone: return "Undone";
    case Phase::kSuperseded: return "Superseded";
  }
  return "Unknown";
}

std::string_view ToString(WorkspaceState state) {
  switch (state) {
    case WorkspaceState::kPending: return "pending";
    case WorkspaceState::kInProgress: return "inProgress";
    case WorkspaceState::kReady: return "ready";
    case WorkspaceState::kFailed: return "failed";
  }
  return "unknown";
}

bool Ended(Phase phase) {
  return phase == Phase::kCompleted || phase == Phase::kAborted || phase == Phase::kUndone ||
         phase == Phase::kSuperseded;
}

Counts CountStates(const RolloutState& state) {
  Counts counts;
  for (const WorkspaceEntry& entry : state.workspaces) {
    switch (entry.state) {
      case WorkspaceState::kPending: ++counts.pending; break;
      case WorkspaceState::kInProgress: ++counts.in_progress; break;
      case WorkspaceState::kReady: ++counts.ready; break;
      case WorkspaceState::kFailed: ++counts.failed; break;
    }
  }
  return counts;
}

Outcome<Transition> Start(const Policy& policy, const std::string& product, int revision,
                          int previous, const std::vector<Member>& members, std::int64_t now) {
  if (revision == previous) {
    return Failure::Stalled("InvalidRevision", "rollout of " + product + ": revision " +
                                                   std::to_string(revision) +
                                                   " is the previous revision");
  }
  return Begin(policy, product, revision, previous, members, now,
               [previous](const std::string&) { return previous; }, "");
}

Outcome<Transition> Start(const Policy& policy, const std::string& product, int revision,
                          int previous, const std::vector<Member>& members, std::int64_t now,
                          const std::map<std::string, int>& from) {
  if (revision == previous) {
    return Failure::Stalled("InvalidRevision", "rollout of " + product + ": revision " +
                                                   std::to_string(revision) +
                                                   " is the previous revision");
  }
  return Begin(policy, product, revision, previous, members, now,
               [&from, previous](const std::string& name) {
                 const auto found = from.find(name);
                 return found != from.end() ? found->second : previous;
               },
               "");
}

Pinned PinOf(const RolloutState* rollout, const std::string& workspace, int current,
             int converged) {
  if (rollout != nullptr && !rollout->retired) {
    for (const WorkspaceEntry& entry : rollout->workspaces) {
      if (entry.name != workspace) continue;
      if (rollout->phase == Phase::kUndone || entry.state == WorkspaceState::kPending) {
        return {entry.from_revision, 0};
      }
      return {rollout->revision, entry.attempt};
    }
    if (converged == 0 && !Ended(rollout->phase)) return {rollout->previous_revision, 0};
  }
  return {converged > 0 ? converged : current, 0};
}

Transition Tick(const RolloutState& state, const Policy& policy, std::int64_t now) {
  Transition t = From(state);
  Advance(t, policy, now);
  return Finish(state, std::move(t));
}

Transition Report(const RolloutState& state, const Policy& policy, const std::string& workspace,
                  const Observed& observed) {
  Transition t = From(state);
  WorkspaceEntry* entry = Find(t.state, workspace);
  if (Ended(state.phase) || entry == nullptr || entry->state != WorkspaceState::kInProgress ||
      !observed.observed_after_target) {
    return Finish(state, std::move(t));
  }
  if (observed.failed) {
    entry->state = WorkspaceState::kFailed;
    entry->reason = observed.reason.empty() ? "its pass failed" : observed.reason;
  } else if (observed.ready && observed.revision_applied == state.revision) {
    entry->state = WorkspaceState::kReady;
  } else {
    return Finish(state, std::move(t));
  }
  if (!observed.backup.empty()) entry->pre_migration_backup = observed.backup;
  CheckBudget(t, policy);
  return Finish(state, std::move(t));
}

Outcome<Transition> Pause(const RolloutState& state) {
  if (state.phase == Phase::kPaused && state.paused_by_person) {
    return Refused(state, "pause", "it is already paused by a person; resume ends that");
  }
  if (state.phase != Phase::kProgressing && state.phase != Phase::kPaused) {
    return Refused(state, "pause", "only a progressing rollout, or one between waves, pauses");
  }
  Transition t = From(state);
  t.state.phase = Phase::kPaused;
  t.state.paused_by_person = true;
  return Finish(state, std::move(t));
}

Outcome<Transition> Resume(const RolloutState& state, const Policy& policy, std::int64_t now) {
  Transition t = From(state);
  RolloutState& s = t.state;
  if (state.phase == Phase::kHalted) {
    for (WorkspaceEntry& entry : s.workspaces) {
      if (entry.wave != s.current_wave || entry.state != WorkspaceState::kFailed) continue;
      entry.state = WorkspaceState::kPending;
      entry.target_set_unix.reset();
    }
    s.phase = Phase::kProgressing;
  } else if (state.phase == Phase::kPaused && state.paused_by_person) {
    s.paused_by_person = false;
    if (!s.paused_until) s.phase = Phase::kProgressing;
  } else if (state.phase == Phase::kPaused) {
    return Refused(state, "resume",
                   "it waits between waves until " + std::to_string(*state.paused_until) +
                       " (unix); promote starts the next wave now");
  } else {
    return Refused(state, "resume", "only a halted rollout or a person's pause resumes");
  }
  Advance(t, policy, now);
  return Finish(state, std::move(t));
}

Outcome<Transition> Promote(const RolloutState& state, const Policy& policy, std::int64_t now) {
  if (state.phase != Phase::kPaused) {
    return Refused(state, "promote",
                   state.phase == Phase::kHalted ? "resume retries the failed workspaces"
                                                 : "only a paused rollout is promoted");
  }
  Transition t = From(state);
  t.state.paused_by_person = false;
  if (t.state.paused_until) {
    StartWave(t);
  } else {
    t.state.phase = Phase::kProgressing;
  }
  Advance(t, policy, now);
  return Finish(state, std::move(t));
}

Outcome<Transition> Abort(const RolloutState& state, std::int64_t now) {
  if (Ended(state.phase)) return Refused(state, "abort", "it has already ended");
  Transition t = From(state);
  End(t, Phase::kAborted, now);
  const Counts counts = CountStates(state);
  AddEvent(t, "RolloutAborted",
           "revision " + std::to_string(state.revision) + " aborted in " +
               WaveText(state, state.current_wave) + ": " +
               std::to_string(counts.in_progress + counts.ready + counts.failed) +
               " reached workspaces stay, " + std::to_string(counts.pending) +
               " stay on their previous revision");
  return Finish(state, std::move(t));
}

Outcome<Transition> Undo(const RolloutState& state, std::int64_t now) {
  if (state.phase == Phase::kUndone || state.phase == Phase::kSuperseded) {
    return Refused(state, "undo",
                   state.phase == Phase::kUndone ? "it was undone already"
                                                 : "the rollout that superseded it owns its "
                                                   "workspaces now");
  }
  Transition t = From(state);
  End(t, Phase::kUndone, now);
  std::string restored;
  for (const WorkspaceEntry& entry : state.workspaces) {
    if (!Reached(entry.state)) continue;
    t.restores.push_back({entry.name, entry.from_revision, entry.pre_migration_backup});
    restored += (restored.empty() ? "" : "; ") + entry.name + " to revision " +
                std::to_string(entry.from_revision) + ", backup " +
                (entry.pre_migration_backup.empty() ? std::string("none reported")
                                                    : entry.pre_migration_backup);
  }
  AddEvent(t, "RolloutUndone",
           "revision " + std::to_string(state.revision) + ": " +
               (restored.empty() ? std::string("no workspace had been reached") : restored));
  return Finish(state, std::move(t));
}

Outcome<Superseding> Supersede(const RolloutState& state, const Policy& policy, int revision,
                               const std::vector<Member>& members, std::int64_t now) {
  if (Ended(state.phase)) {
    return Refused(state, "supersede", "start a new rollout instead");
  }
  if (revision == state.revision) {
    return Refused(state, "supersede", "revision " + std::to_string(revision) + " is its own");
  }
  Transition ended = From(state);
  End(ended, Phase::kSuperseded, now);
  // Reached by the old rollout: on (or moving to) its revision; otherwise still where it was.
  const FromRevision from = [&state](const std::string& workspace) {
    for (const WorkspaceEntry& entry : state.workspaces) {
      if (entry.name != workspace) continue;
      return Reached(entry.state) ? state.revision : entry.from_revision;
    }
    return state.previous_revision;
  };
  Outcome<Transition> started =
      Begin(policy, state.product, revision, state.previous_revision, members, now, from,
            "; supersedes the rollout of revision " + std::to_string(state.revision) + " (" +
                PhaseText(state) + ")");
  if (!started) return started.failure();
  return Superseding{Finish(state, std::move(ended)), std::move(started).value()};
}

Transition Join(const RolloutState& state, const std::string& workspace) {
  Transition t = From(state);
  RolloutState& s = t.state;
  if (Ended(s.phase) || s.wave_count == 0 || Find(s, workspace) != nullptr) {
    return Finish(state, std::move(t));
  }
  const int last = s.wave_count - 1;
  const std::string key = StableKey(s.product, workspace);
  auto at = std::find_if(s.workspaces.begin(), s.workspaces.end(), [&](const WorkspaceEntry& e) {
    return e.wave > last || (e.wave == last && StableKey(s.product, e.name) > key);
  });
  WorkspaceEntry entry;
  entry.name = workspace;
  entry.wave = last;
  entry.from_revision = s.previous_revision;
  s.workspaces.insert(at, std::move(entry));
  return Finish(state, std::move(t));
}

Transition Forget(const RolloutState& state, const std::string& workspace) {
  Transition t = From(state);
  if (!Ended(state.phase)) {
    std::erase_if(t.state.workspaces,
                  [&](const WorkspaceEntry& entry) { return entry.name == workspace; });
  }
  return Finish(state, std::move(t));
}

}  // namespace tmaster::rollouts
