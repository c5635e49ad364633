#include "controller/workspace/shared_runtime.hpp"

#include <algorithm>
#include <charconv>
#include <map>
#include <utility>

#include "common/text.hpp"
#include "reconcilers/stacks/plan.hpp"
#include "reconcilers/stacks/render.hpp"

namespace tmaster::controller {
namespace {

constexpr std::string_view kLedgerPrefix = "shared:";
constexpr std::string_view kStackPrefix = "tm-shared-";

// One List per endpoint for the whole call: the runtimes and the search for stale ones share it.
class Lists {
 public:
  explicit Lists(stacks::StackGateway& gateway) : gateway_(gateway) {}

  const StackList& Of(int endpoint) {
    auto it = lists_.find(endpoint);
    if (it == lists_.end()) {
      ++calls_;
      it = lists_.emplace(endpoint, gateway_.List(endpoint)).first;
    }
    return it->second;
  }
  [[nodiscard]] int calls() const { return calls_; }

 private:
  stacks::StackGateway& gateway_;
  std::map<int, StackList> lists_;
  int calls_ = 0;
};

// The stack as the plan must see it: our shared-runtime marker (TM_PRODUCT, no TM_WORKSPACE,
// the name) stands where a workspace's stack has its TM_WORKSPACE (stacks::IsOurs compares
// ObservedStack::workspace). Any other marker is cleared, so a dedicated workspace named
// `shared-<p>`, whose stack is also `tm-shared-<p>`, is never taken for the runtime.
stacks::ObservedStack AsPlanned(const stacks::ObservedStack& observed) {
  stacks::ObservedStack out = observed;
  const std::string product = stacks::SharedRuntimeMarkerOf(observed);
  out.workspace = product.empty() ? std::string() : stacks::SharedRuntimeStackKey(product);
  return out;
}

std::optional<stacks::LedgerEntry> LedgerGet(const StacksContext& context, const std::string& key) {
  if (context.ledger == nullptr) return std::nullopt;
  return context.ledger->Get(key);
}

std::string Where(const stacks::DesiredStack& stack) {
  return "stack \"" + stack.name + "\" on endpoint " + std::to_string(stack.endpoint);
}

void Applied(const StacksContext& context, const std::string& key, const stacks::Action& action,
             const stacks::ApplyResult& outcome, SharedRuntimeResult& result) {
  if (context.ledger != nullptr) context.ledger->Record(key, action, outcome);
  std::string line = stacks::Describe(action);
  if (!outcome.detail.empty()) line += ": " + outcome.detail;
  result.applied.push_back(std::move(line));
  result.applied_kinds.push_back(stacks::KindOf(action));
}

// After a create refused as StackConflict: one fresh list; when the stack of that name is ours
// (our marker), the plan against it is applied (an update: the file is unknown, so rewritten).
// A failure when it is not ours, or when anything fails.
Outcome<std::size_t> AdoptAfterConflict(const stacks::DesiredStack& desired, const std::string& key,
                                        const std::optional<stacks::LedgerEntry>& entry,
                                        const StacksContext& context,
                                        SharedRuntimeResult& result) {
  Outcome<std::vector<stacks::ObservedStack>> listed = context.gateway->List(desired.endpoint);
  if (!listed) return listed.failure();
  const stacks::ObservedStack* found = stacks::FindStack(*listed, desired.endpoint, desired.name);
  if (found == nullptr) return Failure::Transient("StackNotFound", "not found on a fresh list");
  const stacks::ObservedStack observed = AsPlanned(*found);
  if (!stacks::IsOurs(desired.workspace, observed, entry)) {
    return Failure::Stalled("StackConflict", "not ours");
  }
  const stacks::Plan plan = stacks::MakePlan(desired, observed, entry, std::nullopt);
  if (plan.blocked) return *plan.blocked;
  for (const stacks::Action& action : plan.actions) {
    result.plan.push_back(stacks::Describe(action));
    Outcome<stacks::ApplyResult> outcome = context.gateway->Apply(action);
    if (!outcome) return outcome.failure();
    Applied(context, key, action, *outcome, result);
  }
  return plan.actions.size();
}

// Plans and (unless a dry run) applies one product's runtime; the number of actions planned.
Outcome<std::size_t> ConvergeOne(const manifests::Product& product, const StacksContext& context,
                                 const SharedRuntimeOptions& options, Lists& lists,
                                 SharedRuntimeResult& result) {
  const manifests::Config& config = *context.config;
  if (!config.bindings || config.bindings->dir.empty()) {
    return Failure::Stalled("BindingsNotConfigured",
                            "product " + product.name +
                                " declares spec.sharedRuntime, but the operator config has no "
                                "bindings.dir to mount into it");
  }
  manifests::Product as_template = product;
  as_template.stack_template = product.shared_runtime->stack_template;
  Outcome<std::string> text =
      stacks::ReadStackTemplate(as_template, config.reconcile.max_template_bytes);
  if (!text) return text.failure();
  Outcome<stacks::DesiredStack> desired =
      stacks::BuildSharedRuntimeStack(product, config, config.bindings->dir, *text);
  if (!desired) return desired.failure();

  const StackList& list = lists.Of(desired->endpoint);
  if (!list) return list.failure();
  const stacks::ObservedStack* found =
      stacks::FindStack(*list, desired->endpoint, desired->name);
  const std::string key = SharedRuntimeLedgerKey(desired->endpoint, product.name);
  const std::optional<stacks::LedgerEntry> entry = LedgerGet(context, key);
  std::optional<stacks::ObservedStack> observed;
  if (found != nullptr) observed = AsPlanned(*found);
  std::optional<std::string> file;
  if (observed && stacks::IsOurs(desired->workspace, *observed, entry) &&
      stacks::NeedsFile(*desired, *observed, entry, options.deep)) {
    Outcome<std::string> read = context.gateway->File(*found);
    if (!read) return read.failure();
    file = std::move(read).value();
  }
  stacks::Plan plan = stacks::MakePlan(*desired, observed, entry, file);
  if (plan.blocked) {
    Failure blocked = *plan.blocked;
    blocked.message = "shared runtime of product " + product.name + ": " + blocked.message;
    return blocked;
  }
  for (stacks::Action& action : plan.actions) {
    if (auto* create = std::get_if<stacks::CreateStack>(&action); create && found == nullptr) {
      create->listed_absent = true;  // this call's list showed no such stack
    }
    result.plan.push_back(stacks::Describe(action));
  }
  if (options.dry_run) return plan.actions.size();

  for (std::size_t i = 0; i < plan.actions.size(); ++i) {
    const stacks::Action& action = plan.actions[i];
    Outcome<stacks::ApplyResult> outcome = context.gateway->Apply(action);
    if (!outcome && std::holds_alternative<stacks::CreateStack>(action) &&
        outcome.failure().reason == "StackConflict") {
      // The adapters adopt a stack left by a create whose answer was lost only when it carries
      // a workspace's TM_WORKSPACE; ours carries TM_PRODUCT. Look once more: if the stack now
      // there is ours, bring it up to date instead (the rest of the plan then has nothing left).
      Outcome<std::size_t> adopted = AdoptAfterConflict(*desired, key, entry, context, result);
      if (adopted) return i + *adopted;
      return outcome.failure();
    }
    if (!outcome) return outcome.failure();
    Applied(context, key, action, *outcome, result);
  }
  if (plan.actions.empty() && file && context.ledger != nullptr) {
    context.ledger->RecordObserved(key, *found, *file);
  }
  return plan.actions.size();
}

SharedRuntimeResult Converge(const manifests::Product& product, const StacksContext& context,
                             const SharedRuntimeOptions& options, Lists& lists) {
  SharedRuntimeResult result;
  result.product = product.name;
  result.stack = stacks::SharedRuntimeStackName(product.name);
  result.endpoint = product.shared_runtime->endpoint;
  stacks::DesiredStack where;
  where.name = result.stack;
  where.endpoint = result.endpoint;
  Outcome<std::size_t> done = ConvergeOne(product, context, options, lists, result);
  if (!done) {
    result.reason = done.failure().reason;
    result.message = done.failure().message;
    result.failure_kind = done.failure().kind;
    return result;
  }
  // Like a workspace's: a dry run that could plan is a success (UpToDate, or DryRun with its
  // plan); a real run is Ready, UpToDate when it had nothing to do.
  result.ready = true;
  if (options.dry_run) {
    result.reason = *done == 0 ? "UpToDate" : "DryRun";
    result.message = Where(where) + (*done == 0 ? std::string(" up to date")
                                                : " would take " + std::to_string(*done) +
                                                      (*done == 1 ? " action" : " actions"));
    return result;
  }
  result.reason = *done == 0 ? "UpToDate" : "Reconciled";
  result.message = Where(where) + (*done == 0 ? std::string(" up to date")
                                              : " converged with " + std::to_string(*done) +
                                                    (*done == 1 ? " action" : " actions"));
  return result;
}

// `shared:<endpoint>:<product>` -> endpoint, or nullopt for any other key.
std::optional<int> EndpointOfKey(std::string_view key) {
  if (!key.starts_with(kLedgerPrefix)) return std::nullopt;
  key.remove_prefix(kLedgerPrefix.size());
  const std::size_t colon = key.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  int endpoint = 0;
  const auto [end, error] = std::from_chars(key.data(), key.data() + colon, endpoint);
  if (error != std::errc() || end != key.data() + colon || endpoint <= 0) return std::nullopt;
  return endpoint;
}

// Deletes the stale runtimes: `tm-shared-<p>` stacks that are ours while `<p>` declares no
// runtime on that endpoint; forgets the ledger entries of such runtimes that are gone.
void Prune(std::span<const manifests::Product> products, const StacksContext& context,
           const std::set<int>& extra, Lists& lists, SharedRuntimeReport& report) {
  std::set<std::pair<int, std::string>> declared;
  std::set<int> endpoints = extra;
  for (const manifests::Product& product : products) {
    if (!product.shared_runtime) continue;
    declared.emplace(product.shared_runtime->endpoint, product.name);
  }
  std::map<std::string, stacks::LedgerEntry> remembered;
  if (context.ledger != nullptr) remembered = context.ledger->Snapshot();
  for (const auto& [key, entry] : remembered) {
    if (const std::optional<int> endpoint = EndpointOfKey(key)) endpoints.insert(*endpoint);
  }
  for (const auto& [endpoint, name] : declared) endpoints.insert(endpoint);
  for (const int endpoint : endpoints) {
    const StackList& list = lists.Of(endpoint);
    if (!list) {
      if (!report.prune_failed) report.prune_failed = list.failure();
      continue;
    }
    std::set<std::string> present;
    for (const stacks::ObservedStack& stack : *list) {
      const std::string name = Lower(stack.name);
      if (stack.endpoint != endpoint || !name.starts_with(kStackPrefix)) continue;
      const std::string product = name.substr(kStackPrefix.size());
      const std::string key = SharedRuntimeLedgerKey(endpoint, product);
      present.insert(key);
      if (declared.count({endpoint, product}) != 0) continue;
      const std::optional<stacks::LedgerEntry> entry = LedgerGet(context, key);
      const stacks::Plan plan = stacks::MakePlan(std::nullopt, AsPlanned(stack), entry, std::nullopt);
      for (const stacks::Action& action : plan.actions) {
        Outcome<stacks::ApplyResult> outcome = context.gateway->Apply(action);
        if (!outcome) {
          if (!report.prune_failed) report.prune_failed = outcome.failure();
          break;
        }
        if (context.ledger != nullptr) context.ledger->Record(key, action, *outcome);
        report.pruned.push_back(stacks::Describe(action) + " (product \"" + product +
                                "\" declares no shared runtime on endpoint " +
                                std::to_string(endpoint) + ")");
        report.pruned_products.push_back(product);
      }
    }
    // A remembered runtime that is neither declared nor listed any more: nothing to vouch for.
    for (const auto& [key, entry] : remembered) {
      if (EndpointOfKey(key) != endpoint || present.count(key) != 0) continue;
      const std::string product = key.substr(key.find(':', kLedgerPrefix.size()) + 1);
      if (declared.count({endpoint, product}) == 0) context.ledger->Erase(key);
    }
  }
}

}  // namespace

bool SharedRuntimeReport::AllReady() const {
  return !prune_failed && std::all_of(runtimes.begin(), runtimes.end(),
                                      [](const SharedRuntimeResult& r) { return r.ready; });
}

std::string SharedRuntimeLedgerKey(int endpoint, std::string_view product) {
  return std::string(kLedgerPrefix) + std::to_string(endpoint) + ":" + std::string(product);
}

SharedRuntimeReport ConvergeSharedRuntimes(std::span<const manifests::Product> products,
                                           const StacksContext& context,
                                           const SharedRuntimeOptions& options) {
  SharedRuntimeReport report;
  std::vector<const manifests::Product*> declaring;
  for (const manifests::Product& product : products) {
    if (product.shared_runtime) declaring.push_back(&product);
  }
  std::sort(declaring.begin(), declaring.end(),
            [](const auto* a, const auto* b) { return a->name < b->name; });
  if (context.gateway == nullptr || context.config == nullptr) {
    for (const manifests::Product* product : declaring) {
      SharedRuntimeResult& result = report.runtimes.emplace_back();
      result.product = product->name;
      result.stack = stacks::SharedRuntimeStackName(product->name);
      result.endpoint = product->shared_runtime->endpoint;
      result.reason = "NoStackBackend";
      result.message = "product " + product->name +
                       " declares spec.sharedRuntime, but no stack backend is configured";
      result.failure_kind = FailureKind::kStalled;
    }
    return report;
  }
  Lists lists(*context.gateway);
  for (const manifests::Product* product : declaring) {
    report.runtimes.push_back(Converge(*product, context, options, lists));
  }
  if (options.prune && !options.dry_run) Prune(products, context, options.endpoints, lists, report);
  report.list_calls = lists.calls();
  return report;
}

}  // namespace tmaster::controller
