#pragma once

// The products of examples/fleet (manifests, stack templates, migrations), without its
// workspaces, as files: what the end-to-end tests put in a source of their own beside the
// workspaces each case writes.

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

namespace tmaster::testing {

/// Relative path (generic form) -> contents, for every file of examples/fleet but
/// `workspaces/`.
inline std::map<std::string, std::string> ExampleProductFiles() {
  namespace fs = std::filesystem;
  const fs::path examples = fs::path(TM_SOURCE_DIR) / "examples" / "fleet";
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(examples)) {
    if (!entry.is_regular_file()) continue;
    const std::string relative = fs::relative(entry.path(), examples).generic_string();
    if (relative.rfind("workspaces/", 0) == 0) continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    files.emplace(relative, text.str());
  }
  return files;
}

}  // namespace tmaster::testing
