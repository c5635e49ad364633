#include "reconcilers/placement/placement.hpp"

#include <limits>

namespace tmaster::placement {

bool Matches(const std::map<std::string, std::string>& labels,
             const std::map<std::string, std::string>& selector) {
  for (const auto& [key, value] : selector) {
    const auto found = labels.find(key);
    if (found == labels.end() || found->second != value) return false;
  }
  return true;
}

std::string FormatSelector(const std::map<std::string, std::string>& selector) {
  std::string out;
  for (const auto& [key, value] : selector) {
    if (!out.empty()) out += ",";
    out += key + "=" + value;
  }
  return out;
}

Outcome<std::string> Choose(const std::vector<Candidate>& candidates,
                            const std::map<std::string, std::string>& selector,
                            const std::string& kind) {
  const Candidate* best = nullptr;
  // Free room: unlimited ranks first (then fewer used), then more free; ties by rank, then name.
  const auto free_of = [](const Candidate& c) {
    return c.capacity ? *c.capacity - c.used : std::numeric_limits<std::int64_t>::max();
  };
  const auto better = [&](const Candidate& a, const Candidate& b) {
    const std::int64_t fa = free_of(a);
    const std::int64_t fb = free_of(b);
    if (fa != fb) return fa > fb;
    if (!a.capacity && a.used != b.used) return a.used < b.used;
    if (a.tie_rank != b.tie_rank) return a.tie_rank < b.tie_rank;
    return a.name < b.name;
  };
  std::string why;
  bool down = false;
  for (const Candidate& candidate : candidates) {
    std::string refused;
    if (!Matches(candidate.labels, selector)) {
      refused = "labels do not match " + FormatSelector(selector);
    } else if (candidate.capacity && candidate.used >= *candidate.capacity) {
      refused = "full (" + std::to_string(candidate.used) + "/" +
                std::to_string(*candidate.capacity) + ")";
    } else if (!candidate.reachable) {
      refused = "down" + (candidate.down_reason.empty() ? "" : " (" + candidate.down_reason + ")");
      down = true;
    }
    if (!refused.empty()) {
      why += (why.empty() ? "" : "; ") + candidate.name + ": " + refused;
      continue;
    }
    if (best == nullptr || better(candidate, *best)) best = &candidate;
  }
  if (best != nullptr) return best->name;
  if (candidates.empty()) {
    return Failure::Stalled("Unschedulable", "no " + kind + " is configured");
  }
  // A matching place with room that is only down may take it soon: retried with backoff.
  // Full or unmatched ones need a person (more capacity, other labels): Stalled.
  if (down) return Failure::Transient("Unschedulable", "no " + kind + " can take it now: " + why);
  return Failure::Stalled("Unschedulable", "no " + kind + " can take it: " + why);
}

}  // namespace tmaster::placement
