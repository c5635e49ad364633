#pragma once

// tenantctl's command line (docs/api.md#tenantctl): one verb, its positional words and flags in
// any order, the kubectl way (`-o json`, `-ojson`, `--output=json`, `--output json`). Pure.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/outcome.hpp"

namespace tmaster::cli {

/// The flags that say how to reach the server; empty ones fall back to the environment and then
/// the config file (connection.hpp).
struct ConnectionFlags {
  std::optional<std::string> server;
  std::optional<std::string> token;
  std::optional<std::string> certificate_authority;
  bool insecure_skip_tls_verify = false;
};

/// One parsed command line.
struct Command {
  std::string verb;                      ///< apply, get, describe, ...; empty: none given
  std::vector<std::string> positionals;  ///< the words after the verb that are not flags
  ConnectionFlags connection;
  std::string output = "table";             ///< -o: table, wide, json, yaml, name
  std::vector<std::string> files;           ///< -f, repeatable
  std::optional<std::string> selector;      ///< -l
  std::optional<std::string> phase;         ///< --phase (get workspaces)
  std::optional<std::string> workspace;     ///< --workspace (get events)
  std::optional<long> limit;                ///< --limit: at most this many items in all
  long chunk_size = 500;                    ///< --chunk-size: items asked for per page
  bool wait = false;                        ///< --wait (reconcile, backup, restore, move)
  std::chrono::seconds timeout{60};         ///< --timeout (reconcile --wait)
  bool timeout_given = false;               ///< --timeout was given (else a verb's default)
  bool all = false;                         ///< --all (backup)
  std::optional<std::string> backup;        ///< --backup ID (restore)
  std::optional<std::string> into;          ///< --into WORKSPACE (restore)
  std::optional<std::string> to;            ///< --to CLUSTER (move)
  bool prune = false;                       ///< --prune (move)
  std::chrono::seconds request_timeout{30}; ///< --request-timeout: each HTTP request
  bool force = false;                       ///< --force (apply, delete): ?force=true
  bool client_only = false;                 ///< --client (version)
  std::optional<std::string> role;          ///< --role (token create)
  std::optional<std::string> ttl;           ///< --ttl (token create), as typed, checked
  std::optional<std::string> description;   ///< --description (token create)
  std::optional<std::string> config_file;   ///< --config (validate): the operator's config
  bool help = false;                        ///< -h/--help anywhere
};

/// Parses argv without the program name. Stalled `Usage` naming the flag or value for an unknown
/// flag, a flag without its value, a bad `-o`, number or duration.
Outcome<Command> ParseCommand(const std::vector<std::string>& args);

/// `tenantctl rollout ACTION PRODUCT` (docs/api.md#tenantctl): what a parsed `rollout` command
/// asks for.
struct RolloutArguments {
  std::string action;  ///< status, or a verb: pause, resume, promote, abort, undo
  std::string product;
};

/// The actions of `tenantctl rollout`, status first.
inline constexpr std::string_view kRolloutActions[] = {"status",  "pause", "resume",
                                                       "promote", "abort", "undo"};

/// Checks a `rollout` command (verb "rollout"): one action of kRolloutActions and one product,
/// `-o` table, json or yaml, no `--wait` (nothing to wait for yet: `rollout status` again).
/// Stalled `Usage` naming what is wrong.
Outcome<RolloutArguments> ParseRolloutArguments(const Command& command);

/// `tenantctl move NAME --to CLUSTER` or `tenantctl move --prune NAME` (docs/api.md#moves).
struct MoveArguments {
  std::string workspace;
  std::string to;  ///< empty for a prune
  bool prune = false;
};

/// Checks a `move` command (verb "move"): one workspace and exactly one of `--to CLUSTER` and
/// `--prune`; `--wait` and `--timeout` only with `--to`; `-o` table, json or yaml, and json or
/// yaml not with `--wait` (a script reads the move with `get move NAME -o json`). Stalled
/// `Usage` naming what is wrong.
Outcome<MoveArguments> ParseMoveArguments(const Command& command);

/// `90s`, `5m`, `2h`, `30d`, or a mix (`1h30m`); a bare number is seconds. nullopt when malformed,
/// zero or over ten years.
std::optional<std::chrono::seconds> ParseDuration(std::string_view text);

}  // namespace tmaster::cli
