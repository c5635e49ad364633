// The status as a pure function (controller/workspace/conditions.hpp): table tests of the
// invariants every status must keep, over every kind of run and every previous status.
#include "controller/workspace/conditions.hpp"

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

#include "common/scrub.hpp"

namespace {

using namespace tmaster;
using namespace tmaster::controller;

WorkspaceResult Ready(std::vector<std::string> applied = {}) {
  WorkspaceResult r;
  r.name = "acme";
  r.phase = Phase::kReady;
  r.ready = true;
  r.reason = "Reconciled";
  r.message = applied.empty() ? "up to date" : "converged with actions";
  r.applied = applied;
  for (std::size_t i = 0; i < applied.size(); ++i) r.applied_kinds.push_back("CreateRole");
  return r;
}

WorkspaceResult Failed(FailureKind kind, std::string condition, std::string reason = "Boom") {
  WorkspaceResult r;
  r.name = "acme";
  r.phase = kind == FailureKind::kStalled ? Phase::kStalled : Phase::kDegraded;
  r.ready = false;
  r.reason = std::move(reason);
  r.message = "step failed";
  r.failure_kind = kind;
  r.failed_condition = std::move(condition);
  return r;
}

WorkspaceResult Rejected() {
  WorkspaceResult r = Failed(FailureKind::kStalled, "", "InvalidManifest");
  r.message = "fleet/acme.yaml:3:5: spec.product: required";
  return r;
}

RunInfo Run(std::int64_t generation, bool dedicated = false) {
  return {.generation = generation,
          .revision = "rev" + std::to_string(generation),
          .started = "2026-01-01T00:00:00Z",
          .seconds = 0.5,
          .drift = false,
          .dedicated = dedicated,
          .next_retry_unix = std::nullopt};
}

std::string StatusOf(const std::vector<Condition>& conditions, std::string_view type) {
  const Condition* c = FindCondition(conditions, type);
  return c == nullptr ? "absent" : c->status;
}

void CheckReadyFalseInvariant(const WorkspaceStatus& status) {
  const std::vector<Condition> conditions = ParseConditions(status.conditions_json);
  REQUIRE(FindCondition(conditions, "Ready") != nullptr);
  if (StatusOf(conditions, "Ready") != "False") return;
  const int true_count = (StatusOf(conditions, "Reconciling") == "True" ? 1 : 0) +
                         (StatusOf(conditions, "Stalled") == "True" ? 1 : 0);
  CHECK_MESSAGE(true_count == 1, status.conditions_json);
}

struct Row {
  const char* name;
  WorkspaceResult result;
  bool dedicated;
};

std::vector<Row> Rows() {
  return {
      {"ready, nothing to do", Ready(), false},
      {"ready with actions", Ready({"create role"}), false},
      {"ready, dedicated", Ready({"create stack"}), true},
      {"transient in the database", Failed(FailureKind::kTransient, "DatabaseReady"), false},
      {"transient in migrations", Failed(FailureKind::kTransient, "MigrationsApplied"), false},
      {"transient in the stack", Failed(FailureKind::kTransient, "StackReady"), true},
      {"waiting", Failed(FailureKind::kWaiting, "DatabaseReady"), false},
      {"stalled in the database", Failed(FailureKind::kStalled, "DatabaseReady"), false},
      {"stalled in migrations", Failed(FailureKind::kStalled, "MigrationsApplied"), false},
      {"stalled in the stack", Failed(FailureKind::kStalled, "StackReady"), true},
      {"rejected document", Rejected(), false},
  };
}

}  // namespace

TEST_CASE(
    "conditions: Ready=False implies exactly one of Reconciling and Stalled, from any "
    "previous status") {
  for (const Row& first : Rows()) {
    const StatusUpdate a = SummarizeRun(std::nullopt, "acme", first.result, Run(1, first.dedicated),
                                        "2026-01-01T00:00:01Z");
    CAPTURE(first.name);
    CheckReadyFalseInvariant(a.status);
    for (const Row& second : Rows()) {
      CAPTURE(second.name);
      const StatusUpdate b = SummarizeRun(a.status, "acme", second.result, Run(2, second.dedicated),
                                          "2026-01-01T00:00:02Z");
      CheckReadyFalseInvariant(b.status);
    }
  }
  for (const auto& failure : {std::optional<Failure>{}, std::optional(Failure::Transient("X", "y")),
                              std::optional(Failure::Stalled("NotOwned", "z"))}) {
    const StatusUpdate d =
        SummarizeDeleting(std::nullopt, "acme", failure, std::nullopt, "2026-01-01T00:00:03Z");
    CheckReadyFalseInvariant(d.status);
  }
}

TEST_CASE("conditions: a no-op run changes no transition time and no message, and asks no write") {
  for (const Row& row : Rows()) {
    CAPTURE(row.name);
    const StatusUpdate first =
        SummarizeRun(std::nullopt, "acme", row.result, Run(3, row.dedicated), "T1");
    CHECK(first.write);
    // The same outcome again, later: for a converged workspace the run found nothing to do.
    WorkspaceResult again = row.result;
    if (again.ready) again = Ready();
    again.applied.clear();
    again.applied_kinds.clear();
    RunInfo run = Run(3, row.dedicated);
    run.started = "2026-01-01T00:10:00Z";
    const StatusUpdate second = SummarizeRun(first.status, "acme", again, run, "T2");
    const std::vector<Condition> before = ParseConditions(first.status.conditions_json);
    const std::vector<Condition> after = ParseConditions(second.status.conditions_json);
    REQUIRE(before.size() == after.size());
    for (std::size_t i = 0; i < before.size(); ++i) {
      CAPTURE(before[i].type);
      CHECK(after[i].last_transition == before[i].last_transition);
      CHECK(after[i].message == before[i].message);
      CHECK(after[i].reason == before[i].reason);
    }
    const bool failed = !row.result.ready;
    const bool rejected = failed && row.result.failed_condition.empty();
    // A failed run is a run worth recording (last runs); a converged or rejected one is not.
    CHECK(second.write == (failed && !rejected));
    if (!failed || rejected) CHECK(second.events.empty());
  }
}

TEST_CASE("conditions: a changed status moves the transition time of what changed only") {
  const StatusUpdate ready =
      SummarizeRun(std::nullopt, "acme", Ready({"create role"}), Run(1), "T1");
  const StatusUpdate failed = SummarizeRun(
      ready.status, "acme", Failed(FailureKind::kTransient, "MigrationsApplied"), Run(1), "T2");
  const std::vector<Condition> c = ParseConditions(failed.status.conditions_json);
  CHECK(FindCondition(c, "Ready")->last_transition == "T2");
  CHECK(FindCondition(c, "Reconciling")->last_transition == "T2");
  CHECK(FindCondition(c, "Stalled")->last_transition == "T1");        // False both times
  CHECK(FindCondition(c, "DatabaseReady")->last_transition == "T1");  // True both times
  CHECK(FindCondition(c, "MigrationsApplied")->status == "False");
  CHECK(failed.write);
  REQUIRE(failed.events.size() == 1);
  CHECK(failed.events[0] == EventDraft{"Warning", "Boom", "step failed"});
}

TEST_CASE("conditions: observedGeneration only moves forward") {
  const StatusUpdate at5 = SummarizeRun(std::nullopt, "acme", Ready({"x"}), Run(5), "T1");
  CHECK(at5.status.observed_generation == 5);
  SUBCASE("a rejected document keeps the last generation") {
    const StatusUpdate rejected = SummarizeRun(at5.status, "acme", Rejected(), Run(0), "T2");
    CHECK(rejected.status.observed_generation == 5);
    CHECK(rejected.status.phase == "Stalled");
    CHECK(ParseConditions(rejected.status.conditions_json).size() == 3);  // no narrow ones
  }
  SUBCASE("a run on an older generation does not move it back") {
    const StatusUpdate older = SummarizeRun(at5.status, "acme", Ready(), Run(4), "T2");
    CHECK(older.status.observed_generation == 5);
  }
  SUBCASE("a newer generation moves it") {
    const StatusUpdate newer = SummarizeRun(at5.status, "acme", Ready(), Run(6), "T2");
    CHECK(newer.status.observed_generation == 6);
  }
}

TEST_CASE("conditions: events say what a run did") {
  SUBCASE("one per applied action, and the phase when it became ready") {
    const StatusUpdate u = SummarizeRun(std::nullopt, "acme", Ready({"a", "b"}), Run(1), "T");
    REQUIRE(u.events.size() == 3);
    CHECK(u.events[0] == EventDraft{"Normal", "CreateRole", "a"});
    CHECK(u.events[2].reason == "Ready");
  }
  SUBCASE("drift is named") {
    const StatusUpdate first = SummarizeRun(std::nullopt, "acme", Ready({"a"}), Run(1), "T");
    RunInfo run = Run(1);
    run.drift = true;
    const StatusUpdate u = SummarizeRun(first.status, "acme", Ready({"grant"}), run, "T2");
    REQUIRE(u.events.size() == 1);
    CHECK(u.events[0].reason == "DriftCorrected");
    CHECK(u.events[0].message == "CreateRole (drift corrected): grant");
    // A backup before migrations a product change brought keeps its own name.
    WorkspaceResult migrated = Ready({"back up: acme-1", "apply 1 migration"});
    migrated.applied_kinds = {"BackupBeforeMigration", "ApplyMigrations"};
    const StatusUpdate m = SummarizeRun(first.status, "acme", migrated, run, "T3");
    REQUIRE(m.events.size() == 2);
    CHECK(m.events[0] == EventDraft{"Normal", "BackupBeforeMigration", "back up: acme-1"});
    CHECK(m.events[1].reason == "DriftCorrected");
  }
  SUBCASE("the same failure twice warns once") {
    const WorkspaceResult f = Failed(FailureKind::kTransient, "DatabaseReady");
    const StatusUpdate a = SummarizeRun(std::nullopt, "acme", f, Run(1), "T");
    const StatusUpdate b = SummarizeRun(a.status, "acme", f, Run(1), "T2");
    CHECK(a.events.size() == 1);
    CHECK(b.events.empty());
  }
}

TEST_CASE("conditions: last runs keep the ten newest runs that did something") {
  std::optional<WorkspaceStatus> status;
  for (int i = 0; i < 12; ++i) {
    status = SummarizeRun(status, "acme", Ready({"a"}), Run(1), "T").status;
  }
  int runs = 0;
  for (std::size_t at = status->last_runs_json.find("\"start\""); at != std::string::npos;
       at = status->last_runs_json.find("\"start\"", at + 1)) {
    ++runs;
  }
  CHECK(runs == 10);
}

TEST_CASE("conditions: a run nobody asked for that did nothing is not recorded; an asked one is") {
  const StatusUpdate first = SummarizeRun(std::nullopt, "acme", Ready({"a"}), Run(1), "T1");
  const StatusUpdate idle = SummarizeRun(first.status, "acme", Ready(), Run(1), "T2");
  CHECK_FALSE(idle.write);
  CHECK(idle.status.last_runs_json == first.status.last_runs_json);
  RunInfo asked = Run(1);
  asked.started = "2026-12-03T10:00:00Z";
  asked.requested = true;
  const StatusUpdate requested = SummarizeRun(first.status, "acme", Ready(), asked, "T3");
  CHECK(requested.write);
  CHECK(requested.status.last_runs_json.rfind(R"([{"start":"2026-12-03T10:00:00Z")", 0) == 0);
  CHECK(requested.status.last_runs_json.find("Succeeded") != std::string::npos);
}

TEST_CASE("conditions: deleting says what the deletion waits for") {
  const StatusUpdate running =
      SummarizeDeleting(std::nullopt, "acme", std::nullopt, std::nullopt, "T1");
  CHECK(running.write);
  CHECK(running.status.phase == "Deleting");
  CHECK(running.status.last_error.empty());
  SUBCASE("the same again writes nothing") {
    CHECK_FALSE(SummarizeDeleting(running.status, "acme", std::nullopt, std::nullopt, "T2").write);
  }
  SUBCASE("a transient failure names the retry and keeps Reconciling") {
    const StatusUpdate u = SummarizeDeleting(
        running.status, "acme", Failure::Transient("ServerDown", "refused"), 1234, "T2");
    CHECK(u.write);
    CHECK(u.status.next_retry_unix == 1234);
    CHECK(u.status.last_error == "ServerDown: deleting: refused");
    CHECK(StatusOf(ParseConditions(u.status.conditions_json), "Reconciling") == "True");
  }
  SUBCASE("a stalled one sets Stalled and no retry") {
    const StatusUpdate u = SummarizeDeleting(
        running.status, "acme", Failure::Stalled("NotOwned", "not marked"), std::nullopt, "T2");
    const std::vector<Condition> c = ParseConditions(u.status.conditions_json);
    CHECK(StatusOf(c, "Stalled") == "True");
    CHECK(StatusOf(c, "Reconciling") == "False");
    CHECK(FindCondition(c, "Ready")->last_transition == "T1");  // False before and after
    CHECK_FALSE(u.status.next_retry_unix.has_value());
  }
}

TEST_CASE("a registered secret in a run's message reaches neither the status nor its events") {
  const std::string secret = "conditions-egress-secret-1618";
  RegisterProcessSecret(secret);
  WorkspaceResult failed = Failed(FailureKind::kStalled, "MigrationsApplied", "MigrationFailed");
  failed.message = "syntax error at or near \"" + secret + "\"";
  const StatusUpdate update = SummarizeRun(std::nullopt, "acme", failed, Run(1), "2026-01-01T00:00:00Z");
  const auto clean = [&secret](const std::string& text) {
    CAPTURE(text);
    CHECK(text.find(secret) == std::string::npos);
    CHECK(text.find("<redacted>") != std::string::npos);
  };
  clean(update.status.conditions_json);
  clean(update.status.last_error);
  REQUIRE_FALSE(update.events.empty());
  clean(update.events.back().message);
  // The same run again: the stored (scrubbed) message matches, so nothing new is emitted.
  const StatusUpdate again =
      SummarizeRun(update.status, "acme", failed, Run(1), "2026-01-01T00:01:00Z");
  CHECK(again.events.empty());

  const StatusUpdate deleting = SummarizeDeleting(
      std::nullopt, "acme", Failure::Stalled("NotOurs", "role owner " + secret), std::nullopt,
      "2026-01-01T00:00:00Z");
  clean(deleting.status.conditions_json);
  clean(deleting.status.last_error);
}

