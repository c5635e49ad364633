#pragma once
// WriteBinding: a test writes a workspace's binding folder the way the operator does (the layout
// of issue 17, docs/architecture.md): a `.name.new` folder filled with one file per key (the
// value, no trailing newline), then swapped in with renameat2(RENAME_EXCHANGE) (or renamed in
// when new) and the old version removed. A failing step fails the test (REQUIRE).

#include <doctest/doctest.h>
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>

namespace tmaster::testing {

/// Writes `files` (key -> value) as the binding folder `dir`/`name`, swapped in as a whole.
inline void WriteBinding(const std::filesystem::path& dir, const std::string& name,
                         const std::map<std::string, std::string>& files) {
  const std::filesystem::path fresh = dir / ("." + name + ".new");
  std::filesystem::create_directories(fresh);
  for (const auto& [key, value] : files) {
    const int fd = open((fresh / key).c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, value.data(), value.size()) == static_cast<ssize_t>(value.size()));
    close(fd);
  }
  if (!std::filesystem::exists(dir / name)) {
    std::filesystem::rename(fresh, dir / name);
    return;
  }
  REQUIRE(renameat2(AT_FDCWD, fresh.c_str(), AT_FDCWD, (dir / name).c_str(), RENAME_EXCHANGE) == 0);
  std::filesystem::remove_all(fresh);
}

}  // namespace tmaster::testing
