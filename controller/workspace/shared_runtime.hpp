#pragma once

// The products' shared runtimes (Product.spec.sharedRuntime, docs/stacks.md#shared-runtime): one
// stack `tm-shared-<product>` per product that declares one, planned and applied exactly like a
// dedicated workspace's stack (reconcilers/stacks render, plan, ledger, gateway). `--once` and
// the daemon call ConvergeSharedRuntimes once per pass, after the workspaces.

#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/outcome.hpp"
#include "controller/workspace/reconcile_pass.hpp"
#include "manifests/types.hpp"

namespace tmaster::controller {

struct SharedRuntimeOptions {
  bool dry_run = false;  ///< plan only; nothing is applied, nothing deleted
  bool deep = false;     ///< read each stack's file even when the ledger vouches for it
  /// Delete `tm-shared-<p>` stacks that carry our marker (or are the stack id the ledger says we
  /// wrote) while product `<p>` declares no shared runtime on that endpoint. Set it only when
  /// every source was read completely and every document was valid: a failed read must never
  /// look like a removed runtime.
  bool prune = false;
  /// Endpoints to look for such stacks on, besides those of the declared runtimes and those the
  /// ledger remembers a runtime on (for example the dedicated workspaces' endpoints).
  std::set<int> endpoints;
};

/// The outcome of one product's shared runtime. Never holds a secret (its Env has none).
struct SharedRuntimeResult {
  std::string product;
  std::string stack;  ///< `tm-shared-<product>`
  int endpoint = 0;
  /// The stack exists with exactly the rendered file and Env, running (a dry run: it could be
  /// planned).
  bool ready = false;
  /// When ready: `UpToDate` (nothing to do), `Reconciled` (actions applied) or `DryRun` (actions
  /// planned, none applied); else the failure's CamelCase reason.
  std::string reason;
  std::string message;  ///< names the stack, endpoint and step
  std::optional<FailureKind> failure_kind;  ///< set when not ready
  std::vector<std::string> plan;           ///< Describe() of each planned action
  std::vector<std::string> applied;        ///< Describe() of each applied action, with detail
  std::vector<std::string> applied_kinds;  ///< KindOf() of each applied action
};

struct SharedRuntimeReport {
  std::vector<SharedRuntimeResult> runtimes;  ///< one per product declaring one, by product name
  std::vector<std::string> pruned;            ///< Describe() of each stale runtime deleted
  std::vector<std::string> pruned_products;   ///< the product of each line of `pruned`
  /// The first failure while looking for or deleting stale runtimes (a list or a delete).
  std::optional<Failure> prune_failed;
  int list_calls = 0;  ///< StackGateway::List calls made (one per endpoint)

  /// Every runtime ready and no prune failure.
  [[nodiscard]] bool AllReady() const;
};

/// The ledger key of a product's runtime on an endpoint: `shared:<endpoint>:<product>`. It can
/// never be a workspace's (workspace names are DNS labels), and it keeps the endpoint, so a
/// runtime whose product dropped `sharedRuntime` is found again after a restart.
std::string SharedRuntimeLedgerKey(int endpoint, std::string_view product);

/// Converges the shared runtime of every product in `products` that declares one: its template
/// read once (confined beneath the product's source, `reconcile.maxTemplateSize`), the desired
/// stack rendered (stacks::BuildSharedRuntimeStack, bindings from `context.config->bindings`),
/// one List per endpoint for all of them, the stack's file read only when the ledger cannot
/// vouch for it, the plan applied action by action and recorded in `context.ledger` (may be
/// nullptr). A product's failure (Stalled `BindingsNotConfigured` without `bindings.dir`,
/// `InvalidStackTemplate`, `StackConflict` when a stack of that name is not ours, Transient list
/// or write failures) is its result; the others go on. Then, with `options.prune`, the stale
/// runtimes (see SharedRuntimeOptions) are deleted. `context.gateway` and `context.config` must
/// be set. Thread-compatible: one call at a time per ledger.
SharedRuntimeReport ConvergeSharedRuntimes(std::span<const manifests::Product> products,
                                           const StacksContext& context,
                                           const SharedRuntimeOptions& options = {});

}  // namespace tmaster::controller
