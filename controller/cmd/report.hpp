#pragma once

#include <ostream>
#include <vector>

#include "controller/workspace/reconcile_pass.hpp"
#include "controller/workspace/shared_runtime.hpp"
#include "manifests/types.hpp"

namespace tmaster::controller {

/// Prints the `--once` summary (README.md, "Running the operator"): one `file:line:column: message` line per rejected
/// document or notice, one `NAME PHASE REASON MESSAGE` line per workspace (columns aligned like
/// kubectl), the orphans, and a closing count. With `show_plans`, each workspace's plan follows
/// its line, one action per line.
void PrintReport(std::ostream& out, const std::vector<manifests::Diagnostic>& diagnostics,
                 const PassReport& report, bool show_plans);

/// Prints the products' shared runtimes after the `--once` summary (README.md, "Running the
/// operator"), nothing when no product declares one and nothing was pruned: one
/// `RUNTIME PHASE REASON MESSAGE` line per product (Ready, Progressing for a dry run's planned
/// changes, Stalled or Degraded by the failure's kind), with `show_plans` each runtime's plan
/// below it, then `deleted: ` per stale runtime removed, `not deleted: REASON: MESSAGE` for a
/// failed search or removal, and `N shared runtimes, M ready`.
void PrintSharedRuntimes(std::ostream& out, const SharedRuntimeReport& report, bool show_plans);

/// Prints diagnostics one per line, errors and notices (`notice: ` prefix), as
/// `tenantctl validate` and `tenant-operator` both do.
void PrintDiagnostics(std::ostream& out, const std::vector<manifests::Diagnostic>& diagnostics);

}  // namespace tmaster::controller
