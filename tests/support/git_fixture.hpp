#pragma once

// GitFixture: a real local Git remote for end-to-end tests of the git source. A bare repository
// (branch `main`) and a work clone in a TempDir; tests write or remove files in the clone and
// push commits. Every git command is run with an argument vector (RunProcess, never a shell),
// with a fixed identity and no user or system config, so the host's git settings do not leak in.

#include <string>
#include <vector>

#include "tests/support/temp_dir.hpp"

namespace tmaster::testing {

class GitFixture {
 public:
  /// Creates `<tmp>/remote.git` (bare, HEAD -> main) and `<tmp>/work` (no commit yet); throws
  /// std::runtime_error with git's output when a command fails.
  GitFixture();

  /// `file://<tmp>/remote.git`: a URL git clones shallow (a plain path ignores --depth).
  [[nodiscard]] std::string Url() const;
  [[nodiscard]] std::string BarePath() const;
  /// The work clone's folder.
  [[nodiscard]] std::string WorkPath() const;

  /// Writes `text` to `relative` in the work clone (creating folders); not committed yet.
  void Write(const std::string& relative, const std::string& text) const;
  /// Removes `relative` (a file or a folder) from the work clone; not committed yet.
  void Remove(const std::string& relative) const;
  /// Stages everything, commits with `message` and pushes to `main`; returns the new commit id.
  std::string CommitAndPush(const std::string& message) const;
  /// The commit `main` points at in the bare repository (empty before the first push).
  [[nodiscard]] std::string RemoteHead() const;

 private:
  /// Runs `git <args>`; throws with stdout/stderr when it fails.
  std::string Git(const std::vector<std::string>& args) const;

  TempDir dir_;
};

}  // namespace tmaster::testing
