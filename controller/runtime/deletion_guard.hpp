#pragma once

// The deletion guard (docs/architecture.md#deletion-and-the-guard): which workspaces one sync of a source may
// delete. Pure arithmetic on names, tested without I/O (kustomize-controller's inventory diff).

#include <set>
#include <string>
#include <vector>

namespace tmaster::controller {

/// Reason set on the source's Stalled condition when the guard refuses.
inline constexpr const char* kDeletionGuardReason = "DeletionGuard";

/// What one sync of one source may delete.
struct GuardDecision {
  /// true: delete exactly `to_delete` (possibly nothing). false: delete nothing, stall the source
  /// with `reason` until the limit allows it, the manifests return, or an operator confirms.
  bool allowed = true;
  /// Names to delete now, sorted. Always empty when `allowed` is false, so a caller that forgets
  /// to look at `allowed` still deletes nothing.
  std::vector<std::string> to_delete;
  /// When refused: the names that would have been deleted, sorted (for status and events).
  std::vector<std::string> withheld;
  /// "DeletionGuard" when refused; empty when allowed.
  std::string reason;
  /// For status/events: the count, the limit and up to three of the names.
  std::string message;
};

/// Decides the deletions of one sync of one source.
///
/// `stored_names_of_source`: workspaces the store holds from this source.
/// `names_in_clean_parse`: workspaces in the source's current revision.
///
/// PRECONDITION: `names_in_clean_parse` comes from a fetch that succeeded and a parse in which
/// every document was valid. A failed fetch, an unreadable file or an invalid manifest must never
/// reach this function: "no manifests because the read failed" would look like "every workspace
/// removed". On such failures the caller keeps every stored workspace and reports the failure.
///
/// The candidates are the set difference stored − parsed (names only in the parse are new
/// workspaces, never deletions). With candidates:
///  - `confirmed` (an operator confirmed this sync): allowed, all candidates deleted;
///  - `max_deletions_per_sync` <= 0: refused — 0 means "never delete without confirmation";
///  - every stored workspace would go (the source emptied): refused, whatever the limit;
///  - more candidates than `max_deletions_per_sync`: refused;
///  - otherwise allowed.
/// No candidates: allowed, nothing to delete.
GuardDecision DecideDeletions(const std::set<std::string>& stored_names_of_source,
                              const std::set<std::string>& names_in_clean_parse,
                              int max_deletions_per_sync, bool confirmed);

}  // namespace tmaster::controller
