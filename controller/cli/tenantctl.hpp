#pragma once

// tenantctl, the operator's command-line client (docs/api.md#tenantctl), as a function of its
// arguments and an injected world (streams, environment, stdin, clocks), so that tests run it
// in-process against a fake server and the end-to-end tests run the built binary the same way
// (controller/cmd/tenantctl_main.cpp is only the glue).

#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "controller/cli/connection.hpp"

namespace tmaster::cli {

/// Everything tenantctl reads or writes besides the network.
struct World {
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  Environment env;
  /// The text of stdin for `-f -`; read only when asked for.
  std::function<std::string()> read_stdin;
  /// Wall-clock Unix seconds (AGE columns).
  std::function<std::int64_t()> now_unix;
  /// Monotonic time and sleeping (reconcile --wait).
  std::function<std::chrono::steady_clock::time_point()> steady_now;
  std::function<void(std::chrono::milliseconds)> sleep;
  /// How often reconcile --wait asks for the workspace.
  std::chrono::milliseconds poll_interval{1000};
  /// The client's version (`tenantctl version`).
  std::string version;
};

/// The real world: std::cout/std::cerr, the process environment, stdin, the system clocks.
World ProcessWorld(std::string version);

/// Exit codes: 0 success; 1 a request or a document failed (also `diff`: differences, and
/// `reconcile --wait`: the run failed or did not finish in time; `move --wait`: the move failed);
/// 2 a usage or configuration error (also `diff`: any error); 3 `move --wait`: the move did not
/// finish within --timeout (it goes on in the operator).
int RunTenantctl(const std::vector<std::string>& args, World& world);

/// The completion script for `shell` (bash or zsh); empty for another shell.
std::string CompletionScript(const std::string& shell);

}  // namespace tmaster::cli
