#pragma once

#include <map>
#include <string>
#include <vector>

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

/// A fresh empty directory under the system temp folder, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }
  /// Writes `text` to `relative` (creating folders) and returns the full path.
  std::string Write(const std::string& relative, const std::string& text) const;

 private:
  std::string path_;
};

}  // namespace tmaster::testing
