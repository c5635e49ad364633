#pragma once

// JSON bodies of the status API (docs/architecture.md#status-and-events): workspaces in manifest
// shape with `status` added, events, sources, errors. Pure: the HTTP server
// (controller/api/http_server.cpp) and tests call these; Boost.JSON stays inside status_json.cpp.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/outcome.hpp"
#include "controller/store/store.hpp"

namespace tmaster::controller {

/// `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, UTC, whole seconds): common/time.hpp's, under the name this
/// header has always offered.

/// One requirement of a label selector: `key=value` / `key==value` (equal) or `key!=value`.
struct LabelRequirement {
  std::string key;
  std::string value;
  bool equal = true;
};
/// All requirements must hold; empty matches everything.
using LabelSelector = std::vector<LabelRequirement>;

/// Parses Kubernetes' equality-based selector syntax: comma-separated `k=v`, `k==v`, `k!=v`
/// (spaces around items ignored). Empty text: the empty selector. Stalled `BadLabelSelector`
/// naming the offending item for anything else (set-based `in (...)` is not supported).
Outcome<LabelSelector> ParseLabelSelector(std::string_view text);

/// The API object of one workspace: its stored manifest document (`spec_json`) with
/// `metadata.name`, `metadata.generation`, `metadata.annotations["tenantmaster.io/source"]`
/// (and `["tenantmaster.io/revision"]` when the source has revisions), `metadata.deletionTimestamp`
/// while it is being deleted, and `status`: `{phase, observedGeneration, conditions, revision,
/// lastRuns, nextRetry?, lastError?}`. `status` nullptr (never reconciled): phase Pending,
/// observedGeneration 0, conditions and lastRuns empty. A workspace marked deleting shows phase
/// Deleting whatever the last stored status said. Stored JSON that does not parse (never written
/// by this program) degrades to an empty spec / empty arrays instead of failing the request.
std::string WorkspaceJson(const StoredWorkspace& workspace, const WorkspaceStatus* status);

/// Unix seconds of an RFC 3339 time (`2026-12-03T10:00:00Z`; a fraction, dropped, and a
/// `+01:00` offset are accepted), or nullopt.
std::optional<std::int64_t> ParseRfc3339Seconds(std::string_view text);

/// When the newest run of `last_runs_json` (a JSON array of `{start, durationSeconds, ...}`)
/// ended: the largest start + durationSeconds (whole seconds, rounded down). nullopt when no run
/// has a start that parses (never ran).
std::optional<std::int64_t> LastReconcileUnix(std::string_view last_runs_json);

/// `{"items":[...]}`: WorkspaceJson of each workspace in the order given, joined with its status
/// by name (statuses in any order; extra statuses are ignored), keeping only the workspaces
/// whose `metadata.labels` satisfy `selector`.
std::string WorkspaceListJson(const std::vector<StoredWorkspace>& workspaces,
                              const std::vector<WorkspaceStatus>& statuses,
                              const LabelSelector& selector = {});

/// `{"items":[{id, workspace, type, reason, message, time}]}` in the order given.
std::string EventListJson(const std::vector<Event>& events);

/// `{"items":[{name, kind, revision, ready, reason, message, lastSyncTime?, lastAttemptTime?}]}`;
/// the times are absent while 0 (never).
std::string SourceListJson(const std::vector<SourceStatus>& sources);

/// The `error` code of an HTTP status (docs/api.md#errors): 400 BadRequest, 401 Unauthorized,
/// 403 Forbidden, 404 NotFound, 405 MethodNotAllowed, 409 Conflict, 413 PayloadTooLarge,
/// 415 UnsupportedMediaType, 422 Invalid, 429 TooManyRequests, 431 HeaderTooLarge, 500 Internal,
/// 503 Unavailable; any other status: "Error".
const char* ErrorCode(int status);

/// `{"version": version}`: `GET /api/v1/version`.
std::string VersionJson(std::string_view version);

/// `{"error": code, "message": message}`, with `"details": <details_json>` when `details_json` is
/// not empty (already serialized JSON; a text that does not parse is left out).
std::string ErrorJson(std::string_view code, std::string_view message,
                      std::string_view details_json = {});

/// `{"verdict": verdict, "message": message}`: the answer to a webhook delivery; with `"error":
/// ErrorCode(status)` as well when `status` is an error (400 and above), so that every error the
/// server answers has its `error` and `message`.
std::string WebhookAnswerJson(std::string_view verdict, std::string_view message, int status = 200);

}  // namespace tmaster::controller
