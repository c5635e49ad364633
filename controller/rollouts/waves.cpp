#include "controller/rollouts/waves.hpp"

#include <algorithm>
#include <cstddef>
#include <utility>

#include "common/crypto.hpp"

namespace tmaster::rollouts {
namespace {

bool Matches(const Labels& match_labels, const Labels& labels) {
  for (const auto& [key, value] : match_labels) {
    const auto found = labels.find(key);
    if (found == labels.end() || found->second != value) return false;
  }
  return true;
}

// ceil(percent × n / 100) in integers, so no rounding of a double can make 10% of 30 four.
std::size_t PercentCut(int percent, std::size_t n) {
  const auto clamped = static_cast<std::size_t>(std::clamp(percent, 0, 100));
  return (clamped * n + 99) / 100;
}

// Members' indices in the stable order; the keys are hashed once, not once per comparison.
std::vector<std::size_t> StableOrder(const std::string& product,
                                     const std::vector<Member>& workspaces) {
  std::vector<std::pair<std::string, std::size_t>> keyed;
  keyed.reserve(workspaces.size());
  for (std::size_t i = 0; i < workspaces.size(); ++i) {
    keyed.emplace_back(StableKey(product, workspaces[i].name), i);
  }
  std::sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first < b.first;
    return workspaces[a.second].name < workspaces[b.second].name;
  });
  std::vector<std::size_t> order;
  order.reserve(keyed.size());
  for (const auto& entry : keyed) order.push_back(entry.second);
  return order;
}

}  // namespace

Status Validate(const Policy& policy) {
  for (std::size_t i = 0; i < policy.waves.size(); ++i) {
    const auto* percent = std::get_if<PercentWave>(&policy.waves[i]);
    if (percent == nullptr || (percent->percent >= 1 && percent->percent <= 100)) continue;
    return Failure::Stalled("InvalidRolloutPolicy",
                            "wave " + std::to_string(i + 1) + ": percent " +
                                std::to_string(percent->percent) + " is not in 1..100");
  }
  return Ok();
}

std::string StableKey(const std::string& product, const std::string& workspace) {
  return crypto::Sha256Hex(product + "/" + workspace);
}

void SortStable(const std::string& product, std::vector<std::string>& names) {
  std::vector<Member> members;
  members.reserve(names.size());
  for (std::string& name : names) members.push_back({std::move(name), {}});
  names.clear();
  for (const std::size_t i : StableOrder(product, members)) {
    names.push_back(std::move(members[i].name));
  }
}

std::vector<std::vector<std::string>> AssignWaves(const Policy& policy, const std::string& product,
                                                  const std::vector<Member>& workspaces) {
  const std::vector<std::size_t> order = StableOrder(product, workspaces);
  std::vector<bool> taken(workspaces.size(), false);
  std::vector<std::vector<std::string>> waves;
  waves.reserve(policy.waves.size() + 1);

  // Walking `order` (not `workspaces`) keeps every wave in the stable order as it is built.
  for (const WaveSpec& spec : policy.waves) {
    std::vector<std::string>& wave = waves.emplace_back();
    const auto* percent = std::get_if<PercentWave>(&spec);
    const std::size_t end = percent != nullptr ? PercentCut(percent->percent, order.size())
                                               : order.size();
    for (std::size_t position = 0; position < end; ++position) {
      const std::size_t i = order[position];
      if (taken[i]) continue;
      if (percent == nullptr &&
          !Matches(std::get<SelectorWave>(spec).match_labels, workspaces[i].labels)) {
        continue;
      }
      taken[i] = true;
      wave.push_back(workspaces[i].name);
    }
  }

  std::vector<std::string> rest;
  for (const std::size_t i : order) {
    if (!taken[i]) rest.push_back(workspaces[i].name);
  }
  if (!rest.empty()) waves.push_back(std::move(rest));
  return waves;
}

void JoinLastWave(std::vector<std::vector<std::string>>& waves, const std::string& product,
                  const std::string& workspace) {
  for (const auto& wave : waves) {
    if (std::find(wave.begin(), wave.end(), workspace) != wave.end()) return;
  }
  if (waves.empty()) waves.emplace_back();
  std::vector<std::string>& last = waves.back();
  last.push_back(workspace);
  SortStable(product, last);
}

}  // namespace tmaster::rollouts
