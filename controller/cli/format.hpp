#pragma once

// How tenantctl prints what the server answers (docs/api.md#tenantctl): kubectl's tables
// (upper-case headers, columns padded, AGE as `5s`, `3m`, `2h`, `4d`), `-o wide`, `-o json`,
// `-o yaml` and `-o name`. Pure: JSON text in, text out; Boost.JSON and yaml-cpp stay in the
// .cpp files.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/outcome.hpp"

namespace tmaster::cli {

/// What a list holds, which decides its columns and its `-o name` prefix.
enum class Resource { kWorkspace, kProduct, kSource, kEvent, kToken, kCluster, kEndpoint, kMove };

/// `workspace`, `product`, `source`, `event`, `token`, `cluster`, `endpoint`, `move`.
const char* ToString(Resource resource);

/// A span of time as kubectl's AGE column shows it (apimachinery's HumanDuration): seconds up
/// to 2 minutes (`90s`), then `3m`/`3m20s` up to 10 minutes, minutes up to 3 hours, `2h`/`2h30m`
/// up to 8 hours, hours up to 2 days, `4d`/`4d5h` up to 8 days, days up to 2 years, then years.
/// Up to one second in the future is `0s` (clocks differ); further: `<invalid>`.
std::string FormatAge(std::int64_t seconds);

/// Unix seconds of an RFC 3339 time (`2026-12-03T10:00:00Z`; fractions and `+01:00` offsets
/// allowed), or nullopt.
std::optional<std::int64_t> ParseRfc3339(std::string_view text);

/// When a workspace object came to be, for its AGE: `metadata.creationTimestamp` when the server
/// gives it, otherwise the earliest time its status records (its conditions' lastTransitionTime
/// and its last runs' start: a lower bound of its age). nullopt when there is none.
std::optional<std::int64_t> WorkspaceSince(std::string_view object_json);

/// Formats the items (a JSON array's text) as `output` says: `table`, `wide`, `name`, `json`
/// (`{"items": [...]}`, indented) or `yaml`. Stalled `BadAnswer` when the text is not a JSON
/// array. `now_unix` is the time AGE counts from.
Outcome<std::string> FormatItems(Resource resource, std::string_view items_json,
                                 std::string_view output, std::int64_t now_unix);

/// One object (`get workspace NAME`): json and yaml print the object itself; table, wide and
/// name print it as a list of one.
Outcome<std::string> FormatObject(Resource resource, std::string_view object_json,
                                  std::string_view output, std::int64_t now_unix);

/// Rows aligned as kubectl aligns them: every column but the last padded to its widest cell plus
/// three spaces; each row ends in a newline.
std::string AlignColumns(const std::vector<std::vector<std::string>>& rows);

/// `describe workspace`: the object, its recent events (a JSON array) and, when given, its plan
/// (the `items[0]` of POST /api/v1/plan's answer, or a line saying why there is none).
std::string DescribeWorkspace(std::string_view object_json, std::string_view events_json,
                              const std::string& plan_text, std::int64_t now_unix);

/// A size as `tenantctl backups` shows it, in SI units with one decimal: `512 B`, `1.5 kB`,
/// `12.3 MB`, `4.0 GB`, `1.2 TB`.
std::string FormatBytes(std::int64_t bytes);

/// `tenantctl backups NAME` (GET /api/v1/workspaces/{name}/backups, `{"items", "pending"}`):
/// `json` and `yaml` print the answer itself; `table` the columns ID KIND STATE SIZE AGE
/// VERIFIED MIGRATION, the pending backups first (their state queued or running), then the
/// catalog newest first. VERIFIED is the age of the last verification, `<never>` without one.
/// Stalled `BadAnswer` when the answer is not that object.
Outcome<std::string> FormatBackups(std::string_view answer_json, std::string_view output,
                                   std::int64_t now_unix);

/// `tenantctl rollout status PRODUCT` (GET /api/v1/products/{name}/rollout, docs/api.md#rollouts):
/// `json` and `yaml` print the answer itself; `table` a kubectl-describe-like block: `Product:`,
/// `Revision:` (with the rollout: `4 (from 3)   Phase: P   Wave: 2/3   Started: T`; without:
/// the product's revision, then `Rollout: none`), `Paused:` when paused, `Counts:`, `Refused:`
/// when the newest revision was refused, then the columns WORKSPACE WAVE STATE FROM BACKUP
/// [RESTORE, after an undo] REASON. Stalled `BadAnswer` when the answer is not that object.
Outcome<std::string> FormatRolloutStatus(std::string_view answer_json, std::string_view output);

/// A move's downtime (`downtimeMs`, docs/api.md#moves) as `get moves` shows it: `850ms` below a
/// second, `4.3s` below a minute, then as an age (`2m5s`); `<none>` when not known (nullopt).
std::string FormatDowntime(std::optional<std::int64_t> milliseconds);

/// `describe move NAME` (GET /api/v1/workspaces/{name}/move): the move as a kubectl-describe-like
/// block, one `Label:` a line (Reason and Verified only when set, the times only once they came),
/// and what to do next (`move --prune` once succeeded). Stalled `BadAnswer` when not an object.
Outcome<std::string> DescribeMove(std::string_view move_json, std::int64_t now_unix);

/// The plan's answer (POST /api/v1/plan) made readable: per workspace `workspace/NAME: N
/// action(s)` then `  + KIND: description` lines, `converged`, or `blocked: ...`.
struct PlanSummary {
  std::string text;
  bool differences = false;  ///< any action, or a workspace not converged
  bool errors = false;       ///< a diagnostic that is not a notice or warning
  bool valid = true;         ///< false when the answer is not the plan's JSON
};
PlanSummary SummarizePlan(std::string_view plan_json);

}  // namespace tmaster::cli
