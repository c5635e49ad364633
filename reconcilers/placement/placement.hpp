#pragma once
// Placement (docs/placement.md): which of the configured places (PostgreSQL clusters, or Portainer
// endpoints for dedicated stacks) takes a new workspace. A pure function of what each place holds
// now: the matching place with the most free capacity, ties by name. Nothing here ever moves a
// placed workspace; the caller records the choice and keeps it.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/outcome.hpp"

namespace tmaster::placement {

struct Candidate {
  std::string name;
  std::optional<std::int64_t> capacity;  ///< nullopt: no limit
  std::map<std::string, std::string> labels;
  std::int64_t used = 0;  ///< workspaces already on it (placed, named, or kept after removal)
  /// Down (its last check failed): it takes no new workspace; `down_reason` says why.
  bool reachable = true;
  std::string down_reason;
  /// Breaks a tie before the name does (an endpoint's id: endpoint 2 before 10); clusters: 0.
  std::int64_t tie_rank = 0;
};

/// True when `labels` carry every key of `selector` with the same value (an empty selector
/// matches everything).
bool Matches(const std::map<std::string, std::string>& labels,
             const std::map<std::string, std::string>& selector);

/// The place for a new workspace: among the reachable candidates matching `selector` with room
/// (used < capacity), the one with the most free capacity; one without a limit ranks above any
/// with one, and among those the least used wins; ties go to the lower `tie_rank`, then the first
/// name. `Unschedulable`
/// when none can take it, naming each candidate and why not (`kind`: "cluster" or "endpoint",
/// for the message): Transient when a matching one with room is only down (it may come back),
/// else Stalled (full or unmatched: a person changes capacity or labels).
Outcome<std::string> Choose(const std::vector<Candidate>& candidates,
                            const std::map<std::string, std::string>& selector,
                            const std::string& kind);

/// `k=v,k2=v2` (for messages and tables).
std::string FormatSelector(const std::map<std::string, std::string>& selector);

}  // namespace tmaster::placement
