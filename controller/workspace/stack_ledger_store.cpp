#include "controller/workspace/stack_ledger_store.hpp"

#include <spdlog/spdlog.h>

#include <map>
#include <optional>
#include <utility>
#include <vector>

namespace tmaster::controller {

std::string StackBackendKey(const manifests::StacksConfig& stacks) {
  if (stacks.backend == "portainer") return "portainer " + stacks.portainer.url;
  return "directory " + stacks.directory.string();
}

Outcome<std::size_t> LoadStackLedger(Store& store, const std::string& backend,
                                     stacks::StackLedger& ledger) {
  Outcome<std::vector<StackLedgerRow>> rows = store.ListStackLedger(backend);
  if (!rows) return rows.failure();
  std::map<std::string, stacks::LedgerEntry> entries;
  for (const StackLedgerRow& row : *rows) {
    entries[row.workspace] = {row.stack_id, row.update_date, row.file_digest};
  }
  ledger.Restore(entries);
  return entries.size();
}

stacks::StackLedger::Observer StackLedgerWriter(Store& store, std::string backend) {
  return [&store, backend = std::move(backend)](const std::string& workspace,
                                                const std::optional<stacks::LedgerEntry>& entry) {
    if (!entry) {
      if (Outcome<bool> erased = store.EraseStackLedger(workspace); !erased) {
        spdlog::warn("store: stack ledger of {}: {} (costs a stack file read later)", workspace,
                     erased.failure().message);
      }
      return;
    }
    const StackLedgerRow row{.workspace = workspace,
                             .backend = backend,
                             .stack_id = entry->id,
                             .update_date = entry->update_date,
                             .file_digest = entry->file_digest};
    if (Outcome<Done> put = store.PutStackLedger(row); !put) {
      spdlog::warn("store: stack ledger of {}: {} (costs a stack file read later)", workspace,
                   put.failure().message);
    }
  };
}

}  // namespace tmaster::controller
