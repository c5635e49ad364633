#include "controller/workspace/conditions.hpp"

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>

#include "common/scrub.hpp"

namespace tmaster::controller {
namespace json = boost::json;

namespace {

constexpr std::size_t kLastRuns = 10;

/// Keeps each condition's transition time when its status did not change.
void CarryTransitions(std::vector<Condition>& next, const std::vector<Condition>& previous,
                      const std::string& now) {
  for (Condition& c : next) {
    c.last_transition = now;
    for (const Condition& p : previous) {
      if (p.type == c.type && p.status == c.status && !p.last_transition.empty()) {
        c.last_transition = p.last_transition;
      }
    }
  }
}

/// Same conditions apart from transition times.
bool SameConditions(const std::vector<Condition>& a, const std::vector<Condition>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const Condition& x, const Condition& y) {
                      return x.type == y.type && x.status == y.status && x.reason == y.reason &&
                             x.message == y.message;
                    });
}

std::string PrependRun(const std::string& runs_json, const std::string& start, double seconds,
                       const std::string& result, const std::string& reason) {
  boost::system::error_code error;
  json::value parsed = json::parse(runs_json, error);
  json::array runs = !error && parsed.is_array() ? parsed.as_array() : json::array{};
  json::object run;
  run["start"] = start;
  run["durationSeconds"] = std::round(seconds * 1000.0) / 1000.0;
  run["result"] = result;
  run["reason"] = reason;
  runs.insert(runs.begin(), json::value(std::move(run)));
  while (runs.size() > kLastRuns) runs.pop_back();
  return json::serialize(runs);
}

/// Ready, Reconciling, Stalled and the narrow conditions for a run's result.
std::vector<Condition> ConditionsFor(const WorkspaceResult& result, bool dedicated) {
  const bool failed = !result.ready;
  const bool stalled = failed && result.failure_kind == FailureKind::kStalled;
  std::vector<Condition> conditions;
  conditions.push_back({"Ready", failed ? "False" : "True", result.reason, result.message, ""});
  conditions.push_back({"Reconciling", failed && !stalled ? "True" : "False",
                        failed && !stalled ? "ProgressingWithRetry" : "Idle",
                        failed && !stalled ? "retrying: " + result.message : "", ""});
  conditions.push_back({"Stalled", stalled ? "True" : "False", stalled ? result.reason : "Idle",
                        stalled ? result.message : "", ""});
  const bool rejected = failed && result.failed_condition.empty();
  if (rejected) return conditions;
  const auto narrow = [&](const std::string& type, bool reached) {
    if (failed && result.failed_condition == type) {
      conditions.push_back({type, "False", result.reason, result.message, ""});
    } else if (!reached) {
      conditions.push_back({type, "Unknown", "NotReached", "an earlier step failed", ""});
    } else {
      conditions.push_back({type, "True", "Succeeded", "", ""});
    }
  };
  const bool database_ok = !failed || result.failed_condition == "MigrationsApplied" ||
                           result.failed_condition == "StackReady" ||
                           result.failed_condition == "BindingReady";
  narrow("DatabaseReady", true);
  narrow("MigrationsApplied", database_ok);
  if (dedicated) narrow("StackReady", !failed || result.failed_condition == "StackReady");
  // docs/bindings.md: a shared workspace published to its runtime (bindings, pooler, API).
  if (!dedicated && (result.published || result.failed_condition == "BindingReady")) {
    narrow("BindingReady", !failed || result.failed_condition == "BindingReady");
  }
  return conditions;
}

}  // namespace

std::vector<Condition> ParseConditions(const std::string& text) {
  std::vector<Condition> out;
  boost::system::error_code error;
  json::value value = json::parse(text, error);
  if (error || !value.is_array()) return out;
  for (const json::value& item : value.as_array()) {
    if (!item.is_object()) continue;
    const json::object& o = item.as_object();
    auto field = [&](std::string_view key) -> std::string {
      auto it = o.find(key);
      return it != o.end() && it->value().is_string() ? std::string(it->value().as_string())
                                                      : std::string();
    };
    out.push_back({field("type"), field("status"), field("reason"), field("message"),
                   field("lastTransitionTime")});
  }
  return out;
}

std::string RenderConditions(const std::vector<Condition>& conditions) {
  json::array out;
  for (const Condition& c : conditions) {
    json::object o;
    o["type"] = c.type;
    o["status"] = c.status;
    o["reason"] = c.reason;
    o["message"] = c.message;
    o["lastTransitionTime"] = c.last_transition;
    out.emplace_back(std::move(o));
  }
  return json::serialize(out);
}

const Condition* FindCondition(const std::vector<Condition>& conditions, std::string_view type) {
  for (const Condition& c : conditions) {
    if (c.type == type) return &c;
  }
  return nullptr;
}

namespace {

// What a status and its events may say of a run: its messages passed through the process's
// scrubber. Every workspace status is built here, for either store, so this is the one place its
// writes go through (docs/decisions.md); scrubbing the input rather than the output keeps a
// stored message comparable with the next run's, so an unchanged run still asks for no write.
WorkspaceResult Scrubbed(const WorkspaceResult& result) {
  WorkspaceResult scrubbed = result;
  scrubbed.message = ScrubProcessSecrets(result.message);
  for (std::string& line : scrubbed.applied) line = ScrubProcessSecrets(line);
  for (std::string& line : scrubbed.plan) line = ScrubProcessSecrets(line);
  return scrubbed;
}

StatusUpdate SummarizeScrubbedRun(const std::optional<WorkspaceStatus>& previous,
                                  const std::string& name, const WorkspaceResult& result,
                                  const RunInfo& run, const std::string& now) {
  const std::vector<Condition> before =
      previous ? ParseConditions(previous->conditions_json) : std::vector<Condition>{};
  const bool failed = !result.ready;
  const bool stalled = failed && result.failure_kind == FailureKind::kStalled;
  const bool rejected = failed && result.failed_condition.empty();
  std::vector<Condition> conditions = ConditionsFor(result, run.dedicated);
  conditions.insert(conditions.end(), run.extra.begin(), run.extra.end());
  // A run that found nothing to do keeps the words of the run that converged it, so a resync
  // does not rewrite a status that says the same thing ("converged with 3 actions" vs "up to
  // date").
  const Condition* was_ready = FindCondition(before, "Ready");
  if (!failed && result.applied.empty() && previous && was_ready != nullptr &&
      was_ready->status == "True" && previous->observed_generation == run.generation &&
      previous->phase == ToString(result.phase)) {
    conditions[0].reason = was_ready->reason;
    conditions[0].message = was_ready->message;
  }
  CarryTransitions(conditions, before, now);

  StatusUpdate update;
  WorkspaceStatus& status = update.status;
  status.name = name;
  // kstatus: observedGeneration is the generation this status describes; a rejected document
  // has no new generation, so the last one stays; and it never moves back.
  const std::int64_t observed_before = previous ? previous->observed_generation : 0;
  status.observed_generation =
      rejected ? observed_before : std::max(observed_before, run.generation);
  status.phase = ToString(result.phase);
  status.conditions_json = RenderConditions(conditions);
  status.last_error = failed ? result.reason + ": " + result.message : "";
  status.revision = result.ready ? run.revision : (previous ? previous->revision : run.revision);
  status.last_runs_json = previous ? previous->last_runs_json : "[]";
  status.next_retry_unix = run.next_retry_unix;
  // Where it stands in its product's revisions: the reconciler sets what its pass applied
  // (workspace_reconciler.cpp); a run that applied nothing of a revision keeps the last.
  if (previous) {
    status.product_revision = previous->product_revision;
    status.attempted_revision = previous->attempted_revision;
    status.rollout_attempt = previous->rollout_attempt;
    status.pre_migration_backup = previous->pre_migration_backup;
  }

  const bool changed = !previous || previous->phase != status.phase ||
                       previous->next_retry_unix != status.next_retry_unix ||
                       previous->observed_generation != status.observed_generation ||
                       previous->revision != status.revision || !SameConditions(before, conditions);
  // A rejected document is re-read on every sync: only a change of its status is worth a write.
  const bool did_something = !result.applied.empty() || (failed && !rejected);
  if (did_something || run.requested) {
    status.last_runs_json =
        PrependRun(status.last_runs_json, run.started, run.seconds,
                   failed ? (stalled ? "Stalled" : "Failed") : "Succeeded", result.reason);
  }
  update.write = changed || did_something || run.requested;

  for (std::size_t i = 0; i < result.applied.size(); ++i) {
    const std::string kind = i < result.applied_kinds.size() ? result.applied_kinds[i] : "Applied";
    // A backup corrects no drift: its event keeps its name, the one a restore is looked up by.
    const bool drift = run.drift && kind != "BackupBeforeMigration";
    update.events.push_back({"Normal", drift ? "DriftCorrected" : kind,
                             drift ? kind + " (drift corrected): " + result.applied[i]
                                   : result.applied[i]});
  }
  if (failed && (was_ready == nullptr || was_ready->reason != result.reason ||
                 was_ready->message != result.message)) {
    update.events.push_back({"Warning", result.reason, result.message});
  }
  if (!failed && (was_ready == nullptr || was_ready->status != "True")) {
    update.events.push_back({"Normal", status.phase, result.message});
  }
  return update;
}

}  // namespace

StatusUpdate SummarizeRun(const std::optional<WorkspaceStatus>& previous, const std::string& name,
                          const WorkspaceResult& result, const RunInfo& run,
                          const std::string& now) {
  return SummarizeScrubbedRun(previous, name, Scrubbed(result), run, now);
}

StatusUpdate SummarizeDeleting(const std::optional<WorkspaceStatus>& previous,
                               const std::string& name, const std::optional<Failure>& failure,
                               std::optional<std::int64_t> next_retry_unix,
                               const std::string& now) {
  const bool stalled = failure && failure->kind == FailureKind::kStalled;
  const std::string reason = failure ? failure->reason : "Deleting";
  const std::string message = failure ? "deleting: " + ScrubProcessSecrets(failure->message)
                                      : "the manifest was removed; running the reclaim policy";
  std::vector<Condition> conditions{
      {"Ready", "False", reason, message, ""},
      {"Reconciling", stalled ? "False" : "True", stalled ? "Idle" : "Deleting",
       stalled ? "" : message, ""},
      {"Stalled", stalled ? "True" : "False", stalled ? reason : "Idle", stalled ? message : "",
       ""},
  };
  StatusUpdate update;
  WorkspaceStatus& status = update.status;
  if (previous) status = *previous;
  const std::vector<Condition> before = ParseConditions(status.conditions_json);
  const std::string last_error = failure ? reason + ": " + message : "";
  if (previous && status.phase == "Deleting" && status.next_retry_unix == next_retry_unix &&
      status.last_error == last_error && SameConditions(before, conditions)) {
    return update;  // already says so
  }
  CarryTransitions(conditions, before, now);
  status.name = name;
  status.phase = "Deleting";
  status.conditions_json = RenderConditions(conditions);
  status.last_error = last_error;
  status.next_retry_unix = next_retry_unix;
  update.write = true;
  return update;
}

}  // namespace tmaster::controller
