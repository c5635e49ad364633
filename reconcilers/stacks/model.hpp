#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/outcome.hpp"
#include "common/secret.hpp"

namespace tmaster::stacks {

/// Portainer's stack id: 64 bits, as Portainer stores it (never narrowed to int).
using StackId = std::int64_t;

/// One variable of a stack's Env (Portainer's `{"name", "value"}` pair). `secret` marks values
/// that must never be printed (DB_PASSWORD, DATABASE_URL): Describe() and every message show
/// variable names only, never values.
struct EnvVar {
  std::string name;
  std::string value;
  bool secret = false;
  friend bool operator==(const EnvVar& a, const EnvVar& b) {
    return a.name == b.name && a.value == b.value;
  }
};

/// What one dedicated workspace needs on its endpoint (docs/architecture.md#dedicated-stacks).
struct DesiredStack {
  std::string workspace;
  std::string name;  ///< `tm-<workspace>`
  int endpoint = 0;
  std::string file;  ///< the rendered compose file
  std::vector<EnvVar> env;  ///< the complete Env, sorted by name; always sent whole
  bool active = true;       ///< false while the workspace is suspended
};

/// One stack as the list call shows it (file content is not in the list).
struct ObservedStack {
  StackId id = 0;
  std::string name;
  int endpoint = 0;
  int type = 2;    ///< 1 swarm, 2 compose
  int status = 1;  ///< 1 active, 2 inactive
  std::int64_t update_date = 0;
  std::vector<EnvVar> env;
  /// The workspace named by the Env's TM_WORKSPACE: our marker. Empty for foreign stacks.
  std::string workspace;
};

/// What the operator remembers of its last write to a stack (the controller's store keeps it;
/// `--once` keeps it in a small file). It lets the plan skip reading the stack file when the
/// stack's UpdateDate has not moved since.
struct LedgerEntry {
  StackId id = 0;
  std::int64_t update_date = 0;
  std::string file_digest;  ///< SHA-256 hex of the file last written
};

// --- Actions: values; the Portainer and directory adapters carry them out. ---

struct CreateStack {
  DesiredStack stack;
  /// Set by a caller whose list of this endpoint, made in this pass, showed no stack of that
  /// name: the adapter may then skip its own list before the first attempt. Every retry lists
  /// first regardless, so a create that timed out after Portainer stored it is adopted, never
  /// repeated.
  bool listed_absent = false;
};
/// PUT with the full file and the full Env (Portainer replaces Env wholesale).
struct UpdateStack {
  StackId id = 0;
  DesiredStack stack;
  std::vector<std::string> changed;  ///< what differed: `file`, `env:NAME`... (names only)
};
struct StartStack {
  StackId id = 0;
  int endpoint = 0;
  std::string name;
};
struct StopStack {
  StackId id = 0;
  int endpoint = 0;
  std::string name;
};
struct DeleteStack {
  StackId id = 0;
  int endpoint = 0;
  std::string name;
};

using Action = std::variant<CreateStack, UpdateStack, StartStack, StopStack, DeleteStack>;

/// One line for humans (dry run, events). Never a secret value, never an Env value.
std::string Describe(const Action& action);
/// CamelCase kind, e.g. `UpdateStack`.
std::string KindOf(const Action& action);

struct Plan {
  std::vector<Action> actions;
  std::optional<Failure> blocked;  ///< e.g. Stalled `StackConflict`: a foreign stack holds the name
  [[nodiscard]] bool Empty() const { return actions.empty() && !blocked; }
};

/// What an adapter reports after applying one action.
struct ApplyResult {
  StackId id = 0;                 ///< the stack's id (new for CreateStack)
  std::int64_t update_date = 0;   ///< UpdateDate after the write, for the ledger
  int calls = 0;                  ///< HTTP calls (or file writes) it took
  std::string detail;
};

}  // namespace tmaster::stacks
