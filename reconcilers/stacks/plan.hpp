#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "reconcilers/stacks/model.hpp"

namespace tmaster::stacks {

/// Our marker in a stack's Env: the value of TM_WORKSPACE, or empty when there is none. The
/// adapters fill ObservedStack::workspace with it.
std::string MarkerOf(const std::vector<EnvVar>& env);

/// The stack named `name` on `endpoint` in one list call's result, or nullptr. Portainer stores
/// names normalized (lower case); ours (`tm-<dns label>`) already are, so this compares the
/// normalized forms.
const ObservedStack* FindStack(const std::vector<ObservedStack>& stacks, int endpoint,
                               std::string_view name);

/// True when `observed` is the operator's: it is the very stack id the ledger says we last
/// wrote (ids are never reused; this covers an Env wiped or edited in Portainer), or it carries
/// the marker of `workspace`. With an empty `workspace` (the workspace is gone), a marker that
/// matches the stack's name (`tm-<marker>`) counts.
bool IsOurs(std::string_view workspace, const ObservedStack& observed,
            const std::optional<LedgerEntry>& ledger);

/// Pure, phase one: whether MakePlan needs the stack's stored file (one extra call). True only
/// when the stack is ours, active and otherwise unchanged in Env, and the ledger has no entry
/// for this stack id or the observed UpdateDate differs from the one recorded after our last
/// write. `deep` (a deep resync) asks for the file whenever the stack is ours, active and its Env
/// unchanged, ledger or not; pass the ledger anyway, since it also proves ownership of a stack
/// whose Env was wiped.
bool NeedsFile(const DesiredStack& desired, const ObservedStack& observed,
               const std::optional<LedgerEntry>& ledger, bool deep = false);

/// Pure, phase two: the actions that take `observed` to `desired` (docs/stacks.md):
///  - nothing observed: CreateStack (nothing while suspended: a suspended workspace's stack is
///    created on resume);
///  - observed but not ours (IsOurs): blocked, Stalled `StackConflict`, nothing applied;
///  - Env differs (as a set of name/value pairs) or the file differs: UpdateStack with the full
///    file and Env, `changed` naming `file` and `env:NAME`s only. An update also deploys (the
///    stack is then active), so no StartStack follows it;
///  - active wanted, stack inactive: StartStack; suspended, stack active: StopStack. While
///    suspended and stopped, drift is left alone until the resume (nothing of a suspended
///    workspace runs, not even for an update);
///  - `desired` is nullopt (workspace removed) and the stack is ours: DeleteStack;
///  - the stack is on another endpoint than desired: CreateStack there, then DeleteStack of the
///    old one.
/// The file counts as different when `observed_file` is given and differs from desired.file;
/// without it, when the ledger's digest (valid for this id and UpdateDate) differs from
/// sha256(desired.file). With neither, the file is unknown: it is rewritten (the caller skipped
/// a read NeedsFile asked for; rewriting is the safe side), but reported in `changed` only when
/// nothing else is.
Plan MakePlan(const std::optional<DesiredStack>& desired,
              const std::optional<ObservedStack>& observed,
              const std::optional<LedgerEntry>& ledger,
              const std::optional<std::string>& observed_file);

}  // namespace tmaster::stacks
