#pragma once
// A workspace's status as a pure function (docs/architecture.md#status-and-events): the previous
// status, this run's result and the time now give the new status, whether it is worth a write,
// and the events to emit. No I/O, no clock: table-tested in
// tests/controller/workspace/conditions_test.cpp. The invariants:
//   - Ready=False implies exactly one of Reconciling and Stalled is True;
//   - a run that changes nothing keeps every transition time and every message, and asks for
//     no write;
//   - observedGeneration only moves forward;
//   - no message carries a registered secret: the run's messages pass through
//     ScrubProcessSecrets (common/scrub.hpp) before anything is built from them.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "controller/store/store.hpp"
#include "controller/workspace/reconcile_pass.hpp"

namespace tmaster::controller {

/// One condition (Ready, Reconciling, Stalled, DatabaseReady, MigrationsApplied, StackReady).
struct Condition {
  std::string type;
  std::string status;  ///< True, False, Unknown
  std::string reason;
  std::string message;
  std::string last_transition;  ///< RFC 3339
  bool operator==(const Condition&) const = default;
};

/// The conditions of a stored status (`conditions_json`); malformed text reads as none.
std::vector<Condition> ParseConditions(const std::string& json);
std::string RenderConditions(const std::vector<Condition>& conditions);
const Condition* FindCondition(const std::vector<Condition>& conditions, std::string_view type);

/// What the status needs to know about a run besides its result.
struct RunInfo {
  std::int64_t generation = 0;  ///< the spec's generation the run worked on
  std::string revision;         ///< the source revision of that spec
  std::string started;          ///< RFC 3339
  double seconds = 0;
  bool drift = false;      ///< the spec was converged at this generation already
  bool dedicated = false;  ///< the workspace has a stack (StackReady condition)
  std::optional<std::int64_t> next_retry_unix;
  /// The run was asked for (RequestedRuns): recorded in lastRuns even when it did nothing.
  bool requested = false;
  /// Conditions other rooms add after the run's own (BackupReady, Restored: BackupHooks), their
  /// transition times carried like the others'.
  std::vector<Condition> extra = {};
};

/// An event to emit for the workspace.
struct EventDraft {
  std::string type;  ///< Normal or Warning
  std::string reason;
  std::string message;
  bool operator==(const EventDraft&) const = default;
};

struct StatusUpdate {
  WorkspaceStatus status;
  /// Something a reader sees changed, or the run did something (an action, a failure): write.
  bool write = false;
  std::vector<EventDraft> events;
};

/// The status after a live run (or a rejected document: `result.failed_condition` empty and
/// `result.failure_kind` Stalled). Events: one per applied action (`DriftCorrected` when
/// `run.drift`), a Warning when the failure is new, the phase when the workspace became ready.
StatusUpdate SummarizeRun(const std::optional<WorkspaceStatus>& previous, const std::string& name,
                          const WorkspaceResult& result, const RunInfo& run,
                          const std::string& now);

/// The status while a deletion runs (`failure` empty), or after one of its steps failed: a
/// transient failure keeps Reconciling True and names the next retry; a stalled one (a person
/// must act, e.g. an object not marked as ours) sets Stalled True. No write when the previous
/// status already says the same.
StatusUpdate SummarizeDeleting(const std::optional<WorkspaceStatus>& previous,
                               const std::string& name, const std::optional<Failure>& failure,
                               std::optional<std::int64_t> next_retry_unix, const std::string& now);

}  // namespace tmaster::controller
