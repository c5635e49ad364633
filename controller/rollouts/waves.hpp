#pragma once
// Which workspaces each wave of a rollout reaches: the pure arithmetic of docs/rollouts.md
// ("The policy"), computed once when a rollout starts and then stored. No I/O: the workspaces
// are a vector, the policy a value (the Product's `spec.rollout` converts into it).

#include <chrono>
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "common/outcome.hpp"

namespace tmaster::rollouts {

using Labels = std::map<std::string, std::string>;

/// A wave `{selector: {matchLabels: ...}}`: the workspaces whose labels hold every pair, as
/// `-l k=v,...` selects them. An empty `match_labels` matches every workspace (as an empty
/// Kubernetes selector does).
struct SelectorWave {
  Labels match_labels;
  bool operator==(const SelectorWave&) const = default;
};

/// A wave `{percent: P}`, P in 1..100: cumulative over the stable order (AssignWaves).
struct PercentWave {
  int percent = 100;
  bool operator==(const PercentWave&) const = default;
};

/// One wave of the policy: a selector or a percentage, never both (the variant says so).
using WaveSpec = std::variant<SelectorWave, PercentWave>;

/// `spec.rollout`, as the rollout logic reads it. Only `waves` is read once, at the start; the
/// other fields are read on every tick, so an edit mid-rollout (a larger failure budget, a
/// shorter pause) applies from the next tick on.
struct Policy {
  std::vector<WaveSpec> waves;
  /// After a non-empty wave is done, the wait before the next starts.
  std::chrono::seconds pause_between_waves{0};
  /// Workspaces of a wave moving at once; below 1 counts as 1.
  int max_unavailable = 1;
  /// The number of failed workspaces in one wave that halts the rollout; below 1 counts as 1.
  int failure_budget = 1;
  /// A workspace whose target was set this long ago and that has not reported Ready fails
  /// ("the wave's readyTimeout", docs/rollouts.md). Zero: no timeout.
  std::chrono::seconds ready_timeout{600};
};

/// One workspace of the product, as wave selection sees it.
struct Member {
  std::string name;
  Labels labels;
};

/// Ok, or Stalled `InvalidRolloutPolicy` naming the first wave (1-based) whose percent is not in
/// 1..100. Budgets and `max_unavailable` below 1 are not refused: they count as 1.
Status Validate(const Policy& policy);

/// The key of the stable order: lower-case hex SHA-256 of `product + "/" + workspace`. The
/// same for a workspace in every revision of the product, and unrelated to its name's spelling.
std::string StableKey(const std::string& product, const std::string& workspace);

/// `names` sorted by StableKey (ties, which SHA-256 makes theoretical, by name).
void SortStable(const std::string& product, std::vector<std::string>& names);

/// The workspaces of each wave, in order; within a wave, in the stable order. Rules:
/// - the stable order is StableKey over `workspaces` (their input order does not matter);
/// - a selector wave takes the workspaces whose labels match and that no earlier wave took (so
///   a workspace matching two selector waves belongs to the first);
/// - `{percent: P}` takes, of the first ceil(P × N / 100) workspaces of the stable order (N: all
///   the product's workspaces), those no earlier wave took: percentages are cumulative, so
///   `{10}, {100}` is a tenth then the rest, and `{10}` after a canary selector that took one of
///   that first tenth reaches the tenth's others. ceil makes it at least one when N > 0. A
///   percent outside 1..100 (Validate refuses it) counts as clamped into 0..100;
/// - the workspaces no wave took form an implicit last wave, added only when not empty.
/// A wave of the policy that takes nobody stays as an empty entry, so wave k of the result is
/// wave k of the policy (the events and the status name waves by the policy's numbers); the
/// state machine completes an empty wave at once. No waves and no workspaces: an empty result.
std::vector<std::vector<std::string>> AssignWaves(const Policy& policy, const std::string& product,
                                                  const std::vector<Member>& workspaces);

/// A workspace created during a rollout joins the last wave (docs/rollouts.md), at its place in
/// the stable order; with no wave at all, it forms one. Already in a wave: nothing changes.
void JoinLastWave(std::vector<std::vector<std::string>>& waves, const std::string& product,
                  const std::string& workspace);

}  // namespace tmaster::rollouts
