#include "reconcilers/stacks/plan.hpp"

#include <algorithm>
#include <cctype>
#include <set>
#include <string>
#include <utility>

#include "common/crypto.hpp"
#include "common/text.hpp"

namespace tmaster::stacks {
namespace {

constexpr int kActive = 1;
constexpr std::size_t kMaxShownName = 64;

// Env names from Portainer can be anything a human typed; what reaches plans and events is
// reduced to the characters a variable name has, so a stray value pasted as a name is not shown
// verbatim.
std::string ShownName(std::string_view name) {
  std::string out;
  for (char c : name.substr(0, kMaxShownName)) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(std::isalnum(u) != 0 || c == '_' || c == '.' || c == '-' ? c : '?');
  }
  if (name.size() > kMaxShownName) out += "...";
  return out;
}

using Pairs = std::set<std::pair<std::string, std::string>>;

Pairs PairsOf(const std::vector<EnvVar>& env) {
  Pairs out;
  for (const auto& var : env) out.emplace(var.name, var.value);
  return out;
}

// Names (only) of the variables that differ between the two Envs, sorted and unique.
std::vector<std::string> EnvChanges(const std::vector<EnvVar>& want,
                                    const std::vector<EnvVar>& have) {
  const Pairs a = PairsOf(want);
  const Pairs b = PairsOf(have);
  Pairs diff;
  std::set_symmetric_difference(a.begin(), a.end(), b.begin(), b.end(),
                                std::inserter(diff, diff.end()));
  std::set<std::string> names;
  for (const auto& pair : diff) names.insert("env:" + ShownName(pair.first));
  return {names.begin(), names.end()};
}

bool LedgerValid(const ObservedStack& observed, const std::optional<LedgerEntry>& ledger) {
  return ledger && ledger->id == observed.id && ledger->update_date == observed.update_date;
}

enum class FileState { kSame, kDiffers, kUnknown };

FileState CompareFile(const DesiredStack& desired, const ObservedStack& observed,
                      const std::optional<LedgerEntry>& ledger,
                      const std::optional<std::string>& observed_file) {
  if (observed_file) return *observed_file == desired.file ? FileState::kSame : FileState::kDiffers;
  if (LedgerValid(observed, ledger)) {
    return ledger->file_digest == crypto::Sha256Hex(desired.file) ? FileState::kSame
                                                                  : FileState::kDiffers;
  }
  return FileState::kUnknown;
}

std::string StackWhere(const ObservedStack& observed) {
  return "stack \"" + observed.name + "\" (id " + std::to_string(observed.id) + ") on endpoint " +
         std::to_string(observed.endpoint);
}

Failure Conflict(const DesiredStack& desired, const ObservedStack& observed) {
  std::string whose = observed.workspace.empty() ? "it carries no TM_WORKSPACE marker"
                                                 : "its TM_WORKSPACE marks workspace \"" +
                                                       ShownName(observed.workspace) + "\"";
  return Failure::Stalled("StackConflict",
                          StackWhere(observed) + " is not ours (" + whose +
                              ", and it is not the stack we last wrote); workspace " +
                              desired.workspace +
                              " needs that name; rename or remove the stack by hand");
}

void Append(Plan& plan, Plan&& more) {
  for (auto& action : more.actions) plan.actions.push_back(std::move(action));
  if (more.blocked && !plan.blocked) plan.blocked = std::move(more.blocked);
}

Plan PlanOurs(const DesiredStack& desired, const ObservedStack& observed,
              const std::optional<LedgerEntry>& ledger,
              const std::optional<std::string>& observed_file) {
  Plan plan;
  if (!desired.active) {
    if (observed.status == kActive) {
      plan.actions.emplace_back(StopStack{observed.id, observed.endpoint, observed.name});
    }
    return plan;
  }
  std::vector<std::string> changed = EnvChanges(desired.env, observed.env);
  // An unknown file (not read, no valid ledger) is rewritten: the caller skipped a read that
  // NeedsFile asked for, or the Env differs and the update sends the whole file anyway (then it
  // is not reported as changed, since nobody knows).
  const FileState file = CompareFile(desired, observed, ledger, observed_file);
  if (file == FileState::kDiffers || (file == FileState::kUnknown && changed.empty())) {
    changed.insert(changed.begin(), "file");
  }
  if (!changed.empty()) {
    plan.actions.emplace_back(UpdateStack{observed.id, desired, std::move(changed)});
    return plan;
  }
  if (observed.status != kActive) {
    plan.actions.emplace_back(StartStack{observed.id, observed.endpoint, observed.name});
  }
  return plan;
}

}  // namespace

std::string MarkerOf(const std::vector<EnvVar>& env) {
  for (const auto& var : env) {
    if (var.name == "TM_WORKSPACE") return var.value;
  }
  return {};
}

const ObservedStack* FindStack(const std::vector<ObservedStack>& stacks, int endpoint,
                               std::string_view name) {
  const std::string wanted = Lower(name);
  for (const auto& stack : stacks) {
    if (stack.endpoint == endpoint && Lower(stack.name) == wanted) return &stack;
  }
  return nullptr;
}

bool IsOurs(std::string_view workspace, const ObservedStack& observed,
            const std::optional<LedgerEntry>& ledger) {
  // Stack ids are never reused, so the id we last wrote is ours whatever its Env says now.
  if (ledger && ledger->id == observed.id) return true;
  if (observed.workspace.empty()) return false;
  if (!workspace.empty()) return observed.workspace == workspace;
  return Lower(observed.name) == "tm-" + observed.workspace;
}

bool NeedsFile(const DesiredStack& desired, const ObservedStack& observed,
               const std::optional<LedgerEntry>& ledger, bool deep) {
  if (!IsOurs(desired.workspace, observed, ledger)) return false;
  if (observed.endpoint != desired.endpoint || !desired.active) return false;
  // An Env difference means a full update anyway; the file would not change the plan.
  if (!EnvChanges(desired.env, observed.env).empty()) return false;
  return deep || !LedgerValid(observed, ledger);
}

Plan MakePlan(const std::optional<DesiredStack>& desired,
              const std::optional<ObservedStack>& observed,
              const std::optional<LedgerEntry>& ledger,
              const std::optional<std::string>& observed_file) {
  Plan plan;
  if (!desired) {
    if (observed && IsOurs("", *observed, ledger)) {
      plan.actions.emplace_back(DeleteStack{observed->id, observed->endpoint, observed->name});
    }
    return plan;
  }
  if (!observed) {
    if (desired->active) plan.actions.emplace_back(CreateStack{*desired});
    return plan;
  }
  if (!IsOurs(desired->workspace, *observed, ledger)) {
    plan.blocked = Conflict(*desired, *observed);
    return plan;
  }
  if (observed->endpoint != desired->endpoint) {
    // The workspace moved: the new stack first, so the tenant is served throughout.
    Append(plan, MakePlan(desired, std::nullopt, std::nullopt, std::nullopt));
    plan.actions.emplace_back(DeleteStack{observed->id, observed->endpoint, observed->name});
    return plan;
  }
  return PlanOurs(*desired, *observed, ledger, observed_file);
}

}  // namespace tmaster::stacks
