// The rollout state machine (docs/rollouts.md, "The state machine"): waves advance under
// maxUnavailable, pauses hold the next wave, the failure budget halts, and the verbs do what the
// design says or are refused. Pure: the clock is a number, the reconciler's reports are values.
// The stable order of ws-a..ws-g in product `shop` is b, d, g, c, e, f, a (`sha256sum`).
#include <doctest/doctest.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "controller/rollouts/machine.hpp"

namespace {

using namespace tmaster::rollouts;  // NOLINT(google-build-using-namespace): the room under test
using Names = std::vector<std::string>;

constexpr std::int64_t kNow = 1'800'000'000;

std::vector<Member> Shop() {
  std::vector<Member> members;
  for (const char* name : {"ws-a", "ws-b", "ws-c", "ws-d", "ws-e", "ws-f", "ws-g"}) {
    members.push_back({name, {}});
  }
  return members;
}

// Wave 1: ws-b (10% of 7); wave 2: the other six, in order d, g, c, e, f, a.
Policy TwoWaves(int max_unavailable = 2, std::int64_t pause_seconds = 0, int budget = 1) {
  Policy policy;
  policy.waves = {PercentWave{10}, PercentWave{100}};
  policy.max_unavailable = max_unavailable;
  policy.pause_between_waves = std::chrono::seconds(pause_seconds);
  policy.failure_budget = budget;
  return policy;
}

Observed Ready(int revision, std::string backup = "") {
  Observed observed;
  observed.revision_applied = revision;
  observed.ready = true;
  observed.backup = std::move(backup);
  observed.observed_after_target = true;
  return observed;
}

Observed Failed(std::string reason, std::string backup = "") {
  Observed observed;
  observed.revision_applied = 1;
  observed.failed = true;
  observed.reason = std::move(reason);
  observed.backup = std::move(backup);
  observed.observed_after_target = true;
  return observed;
}

Names TargetNames(const Transition& t, int revision) {
  Names names;
  for (const SetTarget& target : t.targets) {
    CHECK(target.revision == revision);
    names.push_back(target.workspace);
  }
  return names;
}

Names Reasons(const Transition& t) {
  Names reasons;
  for (const Event& event : t.events) reasons.push_back(event.reason);
  return reasons;
}

// The workspaces of `wave` in one state, in their stored order.
Names InState(const RolloutState& s, WorkspaceState which) {
  Names names;
  for (const WorkspaceEntry& entry : s.workspaces) {
    if (entry.state == which) names.push_back(entry.name);
  }
  return names;
}

const WorkspaceEntry& Entry(const RolloutState& s, const std::string& name) {
  for (const WorkspaceEntry& entry : s.workspaces) {
    if (entry.name == name) return entry;
  }
  FAIL("no workspace " << name);
  return s.workspaces.front();
}

// Plays the driver: keeps the stored state, checks the version rule on every transition.
struct Driver {
  RolloutState state;
  Policy policy;

  Transition Apply(Transition t) {
    if (t.changed) {
      CHECK(t.state.version == state.version + 1);
    } else {
      CHECK(t.state == state);
      CHECK(t.events.empty());
      CHECK(t.targets.empty());
    }
    state = t.state;
    CHECK(CountStates(state).in_progress <= std::max(policy.max_unavailable, 1));
    return t;
  }
  Transition Apply(tmaster::Outcome<Transition> outcome) {
    REQUIRE(outcome.ok());
    return Apply(std::move(outcome).value());
  }
  Transition Tick(std::int64_t now) { return Apply(tmaster::rollouts::Tick(state, policy, now)); }
  Transition Report(const std::string& workspace, const Observed& observed) {
    return Apply(tmaster::rollouts::Report(state, policy, workspace, observed));
  }
};

Driver Started(const Policy& policy, const std::vector<Member>& members = Shop()) {
  Driver driver{{}, policy};
  auto started = Start(policy, "shop", 2, 1, members, kNow);
  REQUIRE(started.ok());
  driver.state = started->state;
  CHECK(driver.state.version == 1);
  return driver;
}

template <class T>
void CheckRefused(const tmaster::Outcome<T>& outcome, const std::string& phase) {
  REQUIRE_FALSE(outcome.ok());
  CHECK(outcome.failure().kind == tmaster::FailureKind::kStalled);
  CHECK(outcome.failure().reason == "RolloutCommandRefused");
  CHECK(outcome.failure().message.find("is " + phase) != std::string::npos);
}

}  // namespace

TEST_CASE("rollouts: start assigns the waves, says so, and moves the first workspaces") {
  auto started = Start(TwoWaves(), "shop", 2, 1, Shop(), kNow);
  REQUIRE(started.ok());
  const Transition& t = started.value();
  CHECK(t.changed);
  CHECK(t.state.version == 1);
  CHECK(t.state.phase == Phase::kProgressing);
  CHECK(t.state.current_wave == 0);
  CHECK(t.state.wave_count == 2);
  CHECK(t.state.started_unix == kNow);
  CHECK(Reasons(t) == Names{"RolloutStarted", "RolloutWaveStarted"});
  CHECK(t.events[0].message == "revision 2 (from 1): 7 workspaces in 2 waves (1, 6)");
  CHECK(TargetNames(t, 2) == Names{"ws-b"});
  CHECK(Entry(t.state, "ws-b").state == WorkspaceState::kInProgress);
  CHECK(Entry(t.state, "ws-b").target_set_unix == kNow);
  CHECK(Entry(t.state, "ws-a").wave == 1);
  CHECK(Entry(t.state, "ws-a").from_revision == 1);
  const Counts counts = CountStates(t.state);
  CHECK(counts.pending == 6);
  CHECK(counts.in_progress == 1);
}

TEST_CASE("rollouts: start is refused for an invalid policy or the same revision") {
  Policy bad = TwoWaves();
  bad.waves.push_back(PercentWave{0});
  auto invalid = Start(bad, "shop", 2, 1, Shop(), kNow);
  REQUIRE_FALSE(invalid.ok());
  CHECK(invalid.failure().reason == "InvalidRolloutPolicy");
  auto same = Start(TwoWaves(), "shop", 1, 1, Shop(), kNow);
  REQUIRE_FALSE(same.ok());
  CHECK(same.failure().reason == "InvalidRevision");
}

TEST_CASE("rollouts: a rollout over no workspaces completes at once") {
  auto started = Start(TwoWaves(), "shop", 2, 1, {}, kNow);
  REQUIRE(started.ok());
  // Two empty waves of the policy: each done at once, then Completed.
  CHECK(started->state.phase == Phase::kCompleted);
  CHECK(started->state.finished_unix == kNow);
  CHECK(Reasons(started.value()).back() == "RolloutCompleted");
  CHECK(started->targets.empty());

  auto nothing = Start(Policy{}, "shop", 2, 1, {}, kNow);
  REQUIRE(nothing.ok());
  CHECK(nothing->state.phase == Phase::kCompleted);
  CHECK(nothing->state.wave_count == 0);
}

TEST_CASE("rollouts: waves advance with at most maxUnavailable moving, to Completed") {
  Driver d = Started(TwoWaves(/*max_unavailable=*/2));
  // Nothing due yet: a tick changes nothing.
  CHECK_FALSE(d.Tick(kNow + 1).changed);

  d.Report("ws-b", Ready(2, "bk-b"));
  CHECK(Entry(d.state, "ws-b").state == WorkspaceState::kReady);
  CHECK(Entry(d.state, "ws-b").pre_migration_backup == "bk-b");
  Transition t = d.Tick(kNow + 2);
  CHECK(Reasons(t) == Names{"RolloutWaveCompleted", "RolloutWaveStarted"});
  CHECK(t.events[0].message == "wave 1 of 2 of revision 2: 1 workspaces ready");
  CHECK(t.events[1].message == "wave 2 of 2 of revision 2: 6 workspaces");
  CHECK(d.state.current_wave == 1);
  CHECK(TargetNames(t, 2) == Names{"ws-d", "ws-g"});

  // The next starts when one finishes, in the stable order.
  d.Report("ws-g", Ready(2));
  CHECK(TargetNames(d.Tick(kNow + 3), 2) == Names{"ws-c"});
  CHECK_FALSE(d.Tick(kNow + 4).changed);
  for (const char* name : {"ws-d", "ws-c"}) d.Report(name, Ready(2));
  CHECK(TargetNames(d.Tick(kNow + 5), 2) == Names{"ws-e", "ws-f"});
  for (const char* name : {"ws-e", "ws-f"}) d.Report(name, Ready(2));
  CHECK(TargetNames(d.Tick(kNow + 6), 2) == Names{"ws-a"});
  d.Report("ws-a", Ready(2));
  t = d.Tick(kNow + 7);
  CHECK(Reasons(t) == Names{"RolloutWaveCompleted", "RolloutCompleted"});
  CHECK(d.state.phase == Phase::kCompleted);
  CHECK(d.state.finished_unix == kNow + 7);
  CHECK(CountStates(d.state).ready == 7);
  // Ended: ticks and reports change nothing.
  CHECK_FALSE(d.Tick(kNow + 8).changed);
  CHECK_FALSE(d.Report("ws-a", Ready(2)).changed);
}

TEST_CASE("rollouts: the next wave starts only after the pause between waves ends") {
  Driver d = Started(TwoWaves(2, /*pause_seconds=*/600));
  d.Report("ws-b", Ready(2));
  const std::int64_t done = kNow + 10;
  Transition t = d.Tick(done);
  CHECK(Reasons(t) == Names{"RolloutWaveCompleted"});
  CHECK(t.targets.empty());
  CHECK(d.state.phase == Phase::kPaused);
  CHECK_FALSE(d.state.paused_by_person);
  CHECK(d.state.paused_until == done + 600);

  CHECK_FALSE(d.Tick(done + 599).changed);
  t = d.Tick(done + 600);
  CHECK(Reasons(t) == Names{"RolloutWaveStarted"});
  CHECK(d.state.phase == Phase::kProgressing);
  CHECK_FALSE(d.state.paused_until.has_value());
  CHECK(TargetNames(t, 2) == Names{"ws-d", "ws-g"});
}

TEST_CASE("rollouts: promote ends the pause between waves now") {
  Driver d = Started(TwoWaves(2, 600));
  CheckRefused(Promote(d.state, d.policy, kNow), "Progressing in wave 1 of 2");
  d.Report("ws-b", Ready(2));
  d.Tick(kNow + 10);
  REQUIRE(d.state.phase == Phase::kPaused);
  const Transition t = d.Apply(Promote(d.state, d.policy, kNow + 11));
  CHECK(Reasons(t) == Names{"RolloutWaveStarted"});
  CHECK(TargetNames(t, 2) == Names{"ws-d", "ws-g"});
  CHECK(d.state.phase == Phase::kProgressing);
}

TEST_CASE("rollouts: an empty wave is done at once, and no pause follows it") {
  Policy policy = TwoWaves(2, 600);
  policy.waves.insert(policy.waves.begin() + 1, SelectorWave{{{"ring", "canary"}}});  // nobody
  Driver d = Started(policy);
  REQUIRE(d.state.wave_count == 3);
  d.Report("ws-b", Ready(2));
  d.Tick(kNow + 10);  // wave 1 done: the pause
  const Transition t = d.Tick(kNow + 610);
  // Wave 2 is empty: started and completed in the same tick, wave 3 right after it.
  CHECK(Reasons(t) ==
        Names{"RolloutWaveStarted", "RolloutWaveCompleted", "RolloutWaveStarted"});
  CHECK(t.events[0].message == "wave 2 of 3 of revision 2: empty");
  CHECK(t.events[1].message == "wave 2 of 3 of revision 2: empty");
  CHECK(d.state.current_wave == 2);
  CHECK(TargetNames(t, 2) == Names{"ws-d", "ws-g"});
}

TEST_CASE("rollouts: a person's pause holds every start; resume lets them go") {
  Driver d = Started(TwoWaves(2));
  d.Report("ws-b", Ready(2));
  d.Tick(kNow + 1);  // wave 2: d, g in progress
  d.Apply(Pause(d.state));
  CHECK(d.state.phase == Phase::kPaused);
  CHECK(d.state.paused_by_person);
  CheckRefused(Pause(d.state), "Paused");
  // In-progress workspaces still finish, but the free slot stays free.
  d.Report("ws-d", Ready(2));
  CHECK(Entry(d.state, "ws-d").state == WorkspaceState::kReady);
  CHECK_FALSE(d.Tick(kNow + 2).changed);
  const Transition t = d.Apply(Resume(d.state, d.policy, kNow + 3));
  CHECK(d.state.phase == Phase::kProgressing);
  CHECK(TargetNames(t, 2) == Names{"ws-c"});
}

TEST_CASE("rollouts: a person's pause over a pause between waves outlasts it") {
  Driver d = Started(TwoWaves(2, 600));
  d.Report("ws-b", Ready(2));
  d.Tick(kNow + 10);  // paused until kNow + 610
  CheckRefused(Resume(d.state, d.policy, kNow + 11), "Paused");
  d.Apply(Pause(d.state));
  CHECK_FALSE(d.Tick(kNow + 700).changed);  // the time passed, the person's pause holds

  SUBCASE("resumed after the time: the next wave starts") {
    const Transition t = d.Apply(Resume(d.state, d.policy, kNow + 701));
    CHECK(Reasons(t) == Names{"RolloutWaveStarted"});
    CHECK(TargetNames(t, 2) == Names{"ws-d", "ws-g"});
  }
  SUBCASE("resumed before the time: the pause between waves goes on") {
    Driver early = Started(TwoWaves(2, 600));
    early.Report("ws-b", Ready(2));
    early.Tick(kNow + 10);
    early.Apply(Pause(early.state));
    const Transition t = early.Apply(Resume(early.state, early.policy, kNow + 20));
    CHECK(t.targets.empty());
    CHECK(early.state.phase == Phase::kPaused);
    CHECK_FALSE(early.state.paused_by_person);
    CHECK(early.state.paused_until == kNow + 610);
    CHECK(TargetNames(early.Tick(kNow + 610), 2) == Names{"ws-d", "ws-g"});
  }
}

TEST_CASE("rollouts: the budget-th failure of a wave halts, and nothing new starts") {
  Driver d = Started(TwoWaves(/*max_unavailable=*/3, 0, /*budget=*/2));
  d.Report("ws-b", Ready(2));
  d.Tick(kNow + 1);  // wave 2: d, g, c
  Transition t = d.Report("ws-d", Failed("0003_orders.sql: SQLSTATE 23505", "bk-d"));
  CHECK(d.state.phase == Phase::kProgressing);  // 1 of a budget of 2
  CHECK(t.events.empty());
  CHECK(Entry(d.state, "ws-d").pre_migration_backup == "bk-d");
  CHECK(TargetNames(d.Tick(kNow + 2), 2) == Names{"ws-e"});  // the failed one's slot

  t = d.Report("ws-g", Failed("stack not Ready"));
  CHECK(d.state.phase == Phase::kHalted);
  REQUIRE(Reasons(t) == Names{"RolloutHalted"});
  CHECK(t.events[0].warning);
  CHECK(t.events[0].message ==
        "wave 2 of 2 of revision 2: 2 failed (failure budget 2): ws-d: 0003_orders.sql: "
        "SQLSTATE 23505; ws-g: stack not Ready; 2 in progress finish, nothing new starts");
  CHECK(InState(d.state, WorkspaceState::kFailed) == Names{"ws-d", "ws-g"});

  // Halted: free slots stay free; those in progress still finish.
  CHECK_FALSE(d.Tick(kNow + 3).changed);
  d.Report("ws-c", Ready(2));
  CHECK(Entry(d.state, "ws-c").state == WorkspaceState::kReady);
  CHECK(d.state.phase == Phase::kHalted);
  CHECK_FALSE(d.Tick(kNow + 4).changed);
  CHECK(InState(d.state, WorkspaceState::kPending) == Names{"ws-f", "ws-a"});
}

TEST_CASE("rollouts: with the default budget the first failure halts") {
  Driver d = Started(TwoWaves());
  const Transition t = d.Report("ws-b", Failed("0002_x.sql: SQLSTATE 42P01"));
  CHECK(d.state.phase == Phase::kHalted);
  CHECK(Reasons(t) == Names{"RolloutHalted"});
  CHECK(d.state.current_wave == 0);
}

TEST_CASE("rollouts: resume after a halt retries the failed workspaces of the wave") {
  Driver d = Started(TwoWaves(3, 0, 2));
  d.Report("ws-b", Ready(2));
  d.Tick(kNow + 1);
  d.Report("ws-d", Failed("a"));
  d.Report("ws-g", Failed("b"));
  REQUIRE(d.state.phase == Phase::kHalted);
  CheckRefused(Promote(d.state, d.policy, kNow + 2), "Halted");
  CheckRefused(Pause(d.state), "Halted");

  const Transition t = d.Apply(Resume(d.state, d.policy, kNow + 5));
  CHECK(d.state.phase == Phase::kProgressing);
  // ws-c is still in progress: two slots, taken by the retried ones, in the stable order.
  CHECK(TargetNames(t, 2) == Names{"ws-d", "ws-g"});
  CHECK(Entry(d.state, "ws-d").target_set_unix == kNow + 5);
  // A second attempt: a reading of the first one (its failure) no longer counts.
  CHECK(Entry(d.state, "ws-d").attempt == 2);
  CHECK(t.targets.front().attempt == 2);
  CHECK(Entry(d.state, "ws-c").attempt == 1);
  CHECK(Entry(d.state, "ws-d").reason.empty());
  CHECK(CountStates(d.state).failed == 0);
  CheckRefused(Resume(d.state, d.policy, kNow + 6), "Progressing");
}

TEST_CASE("rollouts: a workspace not Ready within the ready timeout fails") {
  Policy policy = TwoWaves();
  policy.ready_timeout = std::chrono::seconds(600);
  Driver d = Started(policy);
  CHECK_FALSE(d.Tick(kNow + 599).changed);
  const Transition t = d.Tick(kNow + 600);
  CHECK(Entry(d.state, "ws-b").state == WorkspaceState::kFailed);
  CHECK(Entry(d.state, "ws-b").reason.find("readyTimeout") != std::string::npos);
  CHECK(d.state.phase == Phase::kHalted);
  CHECK(Reasons(t) == Names{"RolloutHalted"});
}

TEST_CASE("rollouts: only a reading of the new revision, made after the target, counts") {
  Driver d = Started(TwoWaves());
  SUBCASE("Ready, but read before the target was set") {
    Observed early = Ready(2);
    early.observed_after_target = false;
    CHECK_FALSE(d.Report("ws-b", early).changed);
  }
  SUBCASE("Ready on the previous revision") {
    CHECK_FALSE(d.Report("ws-b", Ready(1)).changed);
  }
  SUBCASE("a failure read before the target was set") {
    Observed early = Failed("old failure");
    early.observed_after_target = false;
    CHECK_FALSE(d.Report("ws-b", early).changed);
  }
  SUBCASE("a workspace not yet moved, or not in the rollout") {
    CHECK_FALSE(d.Report("ws-a", Ready(2)).changed);
    CHECK_FALSE(d.Report("nobody", Ready(2)).changed);
  }
  CHECK(Entry(d.state, "ws-b").state == WorkspaceState::kInProgress);
  CHECK(d.state.version == 1);
}

TEST_CASE("rollouts: abort leaves reached workspaces where they are and ends the rollout") {
  Driver d = Started(TwoWaves(2));
  d.Report("ws-b", Ready(2));
  d.Tick(kNow + 1);  // d, g in progress
  const Transition t = d.Apply(Abort(d.state, kNow + 2));
  CHECK(d.state.phase == Phase::kAborted);
  CHECK(d.state.finished_unix == kNow + 2);
  REQUIRE(Reasons(t) == Names{"RolloutAborted"});
  CHECK(t.events[0].message ==
        "revision 2 aborted in wave 2 of 2: 3 reached workspaces stay, 4 stay on their previous "
        "revision");
  CHECK(t.targets.empty());
  CHECK(t.restores.empty());
  CHECK(InState(d.state, WorkspaceState::kReady) == Names{"ws-b"});
  CHECK_FALSE(d.Tick(kNow + 3).changed);
  CheckRefused(Abort(d.state, kNow + 4), "Aborted");
  CheckRefused(Resume(d.state, d.policy, kNow + 4), "Aborted");
  CheckRefused(Pause(d.state), "Aborted");
}

TEST_CASE("rollouts: undo lists the reached workspaces with their pre-migration backups") {
  Driver d = Started(TwoWaves(3, 0, 2));
  d.Report("ws-b", Ready(2, "bk-b"));
  d.Tick(kNow + 1);  // d, g, c
  d.Report("ws-d", Failed("0003: SQLSTATE 23505", "bk-d"));
  d.Report("ws-g", Ready(2, "bk-g"));

  SUBCASE("during the rollout") {
    const Transition t = d.Apply(Undo(d.state, kNow + 9));
    CHECK(d.state.phase == Phase::kUndone);
    CHECK(d.state.finished_unix == kNow + 9);
    CHECK(t.restores == std::vector<Restore>{{"ws-b", 1, "bk-b"},
                                             {"ws-d", 1, "bk-d"},
                                             {"ws-g", 1, "bk-g"},
                                             {"ws-c", 1, ""}});
    REQUIRE(Reasons(t) == Names{"RolloutUndone"});
    CHECK(t.events[0].message.find("ws-c to revision 1, backup none reported") !=
          std::string::npos);
    CheckRefused(Undo(d.state, kNow + 10), "Undone");
  }
  SUBCASE("after an abort") {
    d.Apply(Abort(d.state, kNow + 5));
    const Transition t = d.Apply(Undo(d.state, kNow + 9));
    CHECK(t.restores.size() == 4);
    CHECK(d.state.phase == Phase::kUndone);
  }
}

TEST_CASE("rollouts: undo after completion restores every workspace") {
  Driver d = Started(TwoWaves(7));
  d.Report("ws-b", Ready(2, "bk-b"));
  d.Tick(kNow + 1);
  for (const char* name : {"ws-d", "ws-g", "ws-c", "ws-e", "ws-f", "ws-a"}) {
    d.Report(name, Ready(2));
  }
  d.Tick(kNow + 2);
  REQUIRE(d.state.phase == Phase::kCompleted);
  CheckRefused(Abort(d.state, kNow + 3), "Completed");
  const Transition t = d.Apply(Undo(d.state, kNow + 3));
  CHECK(t.restores.size() == 7);
  CHECK(t.restores.front() == Restore{"ws-b", 1, "bk-b"});
}

TEST_CASE("rollouts: a new revision supersedes a rollout and starts again from wave 1") {
  Driver d = Started(TwoWaves(2));
  d.Report("ws-b", Ready(2));
  d.Tick(kNow + 1);  // d, g in progress on revision 2

  auto superseding = Supersede(d.state, d.policy, 3, Shop(), kNow + 2);
  REQUIRE(superseding.ok());
  const Transition& ended = superseding->ended;
  CHECK(ended.changed);
  CHECK(ended.state.version == d.state.version + 1);
  CHECK(ended.state.phase == Phase::kSuperseded);
  CHECK(ended.state.finished_unix == kNow + 2);

  const Transition& started = superseding->started;
  const RolloutState& s = started.state;
  CHECK(s.revision == 3);
  CHECK(s.previous_revision == 1);
  CHECK(s.version == 1);
  CHECK(s.current_wave == 0);
  CHECK(Reasons(started) == Names{"RolloutStarted", "RolloutWaveStarted"});
  CHECK(started.events[0].message.find("supersedes the rollout of revision 2") !=
        std::string::npos);
  CHECK(TargetNames(started, 3) == Names{"ws-b"});
  // Where each one was: reached by revision 2's rollout, or still on revision 1.
  CHECK(Entry(s, "ws-b").from_revision == 2);
  CHECK(Entry(s, "ws-d").from_revision == 2);
  CHECK(Entry(s, "ws-a").from_revision == 1);

  CheckRefused(Supersede(ended.state, d.policy, 4, Shop(), kNow + 3), "Superseded");
  CheckRefused(Supersede(d.state, d.policy, 2, Shop(), kNow + 3), "Progressing");
  CheckRefused(Undo(ended.state, kNow + 3), "Superseded");
  CheckRefused(Abort(ended.state, kNow + 3), "Superseded");
}

TEST_CASE("rollouts: a halted rollout is superseded too; a completed one is not") {
  Driver d = Started(TwoWaves());
  d.Report("ws-b", Failed("0002: SQLSTATE 23505"));
  REQUIRE(d.state.phase == Phase::kHalted);
  auto superseding = Supersede(d.state, d.policy, 3, Shop(), kNow + 2);
  REQUIRE(superseding.ok());
  CHECK(superseding->ended.state.phase == Phase::kSuperseded);
  // The failed one had its target set: it counts as reached by revision 2.
  CHECK(Entry(superseding->started.state, "ws-b").from_revision == 2);

  auto done = Start(TwoWaves(), "shop", 2, 1, {}, kNow);
  REQUIRE(done.ok());
  CheckRefused(Supersede(done->state, d.policy, 3, Shop(), kNow), "Completed");
}

TEST_CASE("rollouts: each verb is refused, with the phase, where it does not apply") {
  Driver d = Started(TwoWaves(2));
  CheckRefused(Resume(d.state, d.policy, kNow), "Progressing in wave 1 of 2");
  CheckRefused(Promote(d.state, d.policy, kNow), "Progressing in wave 1 of 2");
  const auto refused = Resume(d.state, d.policy, kNow);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.failure().message ==
        "resume shop: the rollout of revision 2 is Progressing in wave 1 of 2; only a halted "
        "rollout or a person's pause resumes");
  // A refused verb leaves nothing to store: the caller's state is the one it had.
  CHECK(d.state.version == 1);
}

TEST_CASE("rollouts: a failure during a person's pause still halts at the budget") {
  Driver d = Started(TwoWaves());
  d.Apply(Pause(d.state));
  d.Report("ws-b", Failed("0002: SQLSTATE 23505"));
  CHECK(d.state.phase == Phase::kHalted);
  CHECK_FALSE(d.state.paused_by_person);
}

TEST_CASE("rollouts: every transition moves the version by one, and only a change moves it") {
  Driver d = Started(TwoWaves(2, 600));
  std::int64_t version = d.state.version;
  auto step = [&](const Transition& t) {
    REQUIRE(t.changed);
    CHECK(d.state.version == ++version);
  };
  step(d.Report("ws-b", Ready(2)));
  CHECK_FALSE(d.Report("ws-b", Ready(2)).changed);  // the same reading again
  step(d.Tick(kNow + 1));                            // wave done, paused
  CHECK_FALSE(d.Tick(kNow + 2).changed);
  step(d.Apply(Pause(d.state)));
  step(d.Apply(Resume(d.state, d.policy, kNow + 3)));
  step(d.Apply(Promote(d.state, d.policy, kNow + 4)));
  step(d.Apply(Abort(d.state, kNow + 5)));
  step(d.Apply(Undo(d.state, kNow + 6)));
  CHECK(version == 8);
}

TEST_CASE("rollouts: a workspace created mid-rollout joins the last wave on the old revision") {
  Driver d = Started(TwoWaves(2));
  const Transition joined = d.Apply(Join(d.state, "ws-h"));
  CHECK(joined.changed);
  CHECK(Entry(d.state, "ws-h").wave == 1);
  CHECK(Entry(d.state, "ws-h").state == WorkspaceState::kPending);
  CHECK(Entry(d.state, "ws-h").from_revision == 1);
  CHECK_FALSE(d.Apply(Join(d.state, "ws-h")).changed);
  CHECK_FALSE(d.Apply(Join(d.state, "ws-b")).changed);
  // The last wave stays in the stable order.
  Names last;
  for (const WorkspaceEntry& entry : d.state.workspaces) {
    if (entry.wave == 1) last.push_back(entry.name);
  }
  Names sorted = last;
  SortStable("shop", sorted);
  CHECK(last == sorted);
  CHECK(last.size() == 7);

  // It moves with its wave: report every moving one Ready until the rollout completes.
  d.Report("ws-b", Ready(2));
  d.Tick(kNow + 1);
  for (int round = 0; round < 7 && d.state.phase == Phase::kProgressing; ++round) {
    for (const std::string& name : InState(d.state, WorkspaceState::kInProgress)) {
      d.Report(name, Ready(2));
    }
    d.Tick(kNow + 2 + round);
  }
  CHECK(d.state.phase == Phase::kCompleted);
  CHECK(Entry(d.state, "ws-h").state == WorkspaceState::kReady);
}

TEST_CASE("rollouts: a workspace removed mid-rollout leaves its wave, which may complete it") {
  Driver d = Started(TwoWaves(2));
  d.Apply(Forget(d.state, "ws-b"));  // the only one of wave 1, in progress
  CHECK(d.state.workspaces.size() == 6);
  const Transition t = d.Tick(kNow + 1);
  CHECK(Reasons(t) == Names{"RolloutWaveCompleted", "RolloutWaveStarted"});
  CHECK(TargetNames(t, 2) == Names{"ws-d", "ws-g"});
  CHECK_FALSE(d.Apply(Forget(d.state, "ws-b")).changed);

  d.Apply(Abort(d.state, kNow + 2));
  CHECK_FALSE(d.Apply(Forget(d.state, "ws-d")).changed);  // an ended rollout keeps its record
  CHECK_FALSE(d.Apply(Join(d.state, "ws-z")).changed);
}

TEST_CASE("rollouts: PinOf: pending stay on their revision, reached ones move, undo pins back") {
  Driver d = Started(TwoWaves());  // revision 2 from 1; ws-b in progress
  const RolloutState& s = d.state;
  CHECK(PinOf(&s, "ws-b", 2, 1) == Pinned{2, 1});
  CHECK(PinOf(&s, "ws-a", 2, 1) == Pinned{1, 0});  // pending: its from_revision
  // Not part of it: where it converged; created during it (nothing converged): the stable one.
  CHECK(PinOf(&s, "ws-new", 2, 1) == Pinned{1, 0});
  CHECK(PinOf(&s, "ws-new", 2, 0) == Pinned{1, 0});
  // No rollout: its own revision, or the product's for a new workspace.
  CHECK(PinOf(nullptr, "ws-a", 3, 2) == Pinned{2, 0});
  CHECK(PinOf(nullptr, "ws-a", 3, 0) == Pinned{3, 0});

  d.Report("ws-b", Ready(2, "b-1"));
  const Transition undone = d.Apply(Undo(d.state, kNow + 3));
  CHECK(undone.restores.size() == 1);
  CHECK(d.state.phase == Phase::kUndone);
  CHECK(PinOf(&d.state, "ws-b", 2, 2) == Pinned{1, 0});
  CHECK(PinOf(&d.state, "ws-a", 2, 1) == Pinned{1, 0});
  // Ended: a workspace made since converges on the product's revision.
  CHECK(PinOf(&d.state, "ws-new", 2, 0) == Pinned{2, 0});
  // Retired (its policy was removed since): its pins no longer hold.
  RolloutState retired = d.state;
  retired.retired = true;
  CHECK(PinOf(&retired, "ws-b", 3, 3) == Pinned{3, 0});
}

TEST_CASE("rollouts: Start with each member's revision keeps where an earlier rollout left it") {
  const std::map<std::string, int> from{{"ws-b", 3}, {"ws-c", 2}};
  auto started = Start(TwoWaves(), "shop", 4, 3, Shop(), kNow, from);
  REQUIRE(started.ok());
  CHECK(Entry(started->state, "ws-b").from_revision == 3);
  CHECK(Entry(started->state, "ws-c").from_revision == 2);
  CHECK(Entry(started->state, "ws-a").from_revision == 3);  // missing: the previous revision
  CHECK(started->targets.front().attempt == 1);
  CHECK_FALSE(Start(TwoWaves(), "shop", 3, 3, Shop(), kNow, from).ok());
}
