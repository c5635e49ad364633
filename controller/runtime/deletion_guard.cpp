#include "controller/runtime/deletion_guard.hpp"

#include <algorithm>
#include <iterator>
#include <string>

namespace tmaster::controller {
namespace {

constexpr std::size_t kNamesShown = 3;
constexpr const char* kHowToUnblock =
    "; nothing deleted until maxDeletionsPerSync allows it, the manifests return, or an operator "
    "confirms";

std::string Count(std::size_t n) {
  return std::to_string(n) + (n == 1 ? " workspace" : " workspaces");
}

// "a, b, c and 2 more": enough to recognise a mistake without flooding status.
std::string FewNames(const std::vector<std::string>& names) {
  std::string out;
  for (std::size_t i = 0; i < names.size() && i < kNamesShown; ++i) {
    if (i > 0) out += ", ";
    out += names[i];
  }
  if (names.size() > kNamesShown) {
    out += " and " + std::to_string(names.size() - kNamesShown) + " more";
  }
  return out;
}

GuardDecision Refuse(std::vector<std::string> candidates, std::string message) {
  GuardDecision decision;
  decision.allowed = false;
  decision.withheld = std::move(candidates);
  decision.reason = kDeletionGuardReason;
  decision.message = std::move(message) + kHowToUnblock;
  return decision;
}

}  // namespace

GuardDecision DecideDeletions(const std::set<std::string>& stored_names_of_source,
                              const std::set<std::string>& names_in_clean_parse,
                              int max_deletions_per_sync, bool confirmed) {
  std::vector<std::string> candidates;
  std::set_difference(stored_names_of_source.begin(), stored_names_of_source.end(),
                      names_in_clean_parse.begin(), names_in_clean_parse.end(),
                      std::back_inserter(candidates));
  const std::string limit = "maxDeletionsPerSync " + std::to_string(max_deletions_per_sync);
  if (candidates.empty()) return {true, {}, {}, {}, "no workspace to delete"};

  const std::string what = Count(candidates.size()) + " (" + FewNames(candidates) + ")";
  if (confirmed) {
    std::string message = "deleting " + what + ", confirmed by an operator (" + limit + ")";
    return {true, std::move(candidates), {}, {}, std::move(message)};
  }
  if (max_deletions_per_sync <= 0) {
    return Refuse(std::move(candidates),
                  "sync would delete " + what + " but " + limit +
                      " means every deletion needs confirmation");
  }
  if (candidates.size() == stored_names_of_source.size()) {
    return Refuse(std::move(candidates), "sync would delete all " + what +
                                             " of the source, which a sync may never do without "
                                             "confirmation (" + limit + ")");
  }
  if (candidates.size() > static_cast<std::size_t>(max_deletions_per_sync)) {
    return Refuse(std::move(candidates),
                  "sync would delete " + what + ", more than " + limit);
  }
  std::string message = "deleting " + what + " no longer in the source (" + limit + ")";
  return {true, std::move(candidates), {}, {}, std::move(message)};
}

}  // namespace tmaster::controller
