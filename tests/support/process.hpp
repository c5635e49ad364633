#pragma once

#include <map>
#include <string>
#include <vector>

// TempDir lived here before tests/support/temp_dir.hpp; kept included for the tests that still
// reach it through this header.
#include "tests/support/temp_dir.hpp"

namespace tmaster::testing {

struct ProcessResult {
  int exit_code = -1;  ///< the exit status, or 128+signal when killed by a signal
  std::string out;
  std::string err;
};

/// Runs `argv` (argv[0] is a path) to completion with an argument vector (no shell), feeding
/// `input` on stdin, with `env` added to (or overriding) this process's environment.
ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::map<std::string, std::string>& env = {},
                         const std::string& input = "");

/// The first line of `text` that starts with `prefix` (e.g. a workspace's line of the
/// operator's report: `LineStartingWith(out, "acme ")`), or empty.
std::string LineStartingWith(const std::string& text, const std::string& prefix);

}  // namespace tmaster::testing
