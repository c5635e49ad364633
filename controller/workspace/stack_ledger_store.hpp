#pragma once

// The daemon keeps its stack ledger (reconcilers/stacks/ledger.hpp) in the store, so what it
// wrote to each stack survives restarts and leader changes
// (docs/decisions.md#hardening-ii-issue-9): loaded at the start of each leadership term, written
// through on every change. The ledger stays a cache: a failed store write costs a file read later
// (or, for a stack whose Env marker was wiped by hand, a StackConflict until the next write), never
// a wrong plan.

#include <cstddef>
#include <string>

#include "common/outcome.hpp"
#include "controller/store/store.hpp"
#include "manifests/config.hpp"
#include "reconcilers/stacks/ledger.hpp"

namespace tmaster::controller {

/// The stack backend the ledger's entries are valid for: "portainer <url>" or
/// "directory <folder>". Stack ids are only unique within one backend, and the ledger's id is
/// what proves a stack is the operator's, so entries of another backend are never loaded.
std::string StackBackendKey(const manifests::StacksConfig& stacks);

/// Puts the store's entries of `backend` into `ledger` (StackLedger::Restore: the observer is
/// not told; entries of other workspaces stay). Returns how many; the store's failure otherwise
/// (the ledger is then unchanged).
Outcome<std::size_t> LoadStackLedger(Store& store, const std::string& backend,
                                     stacks::StackLedger& ledger);

/// A StackLedger::Observer that writes each change to `store` as a row of `backend` (an erased
/// entry removes the row). A failed write is logged as a warning (the store's messages are
/// scrubbed) and otherwise ignored: it never fails the reconcile. `store` must outlive it.
stacks::StackLedger::Observer StackLedgerWriter(Store& store, std::string backend);

}  // namespace tmaster::controller
