// The erp shared runtime's life (tests/e2e/shared_runtime_scenario.hpp) against the directory
// backend, the one the quick start uses: real folders, files and ids. The Portainer adapter runs
// the same scenario against portainer-sim in tests/reconcilers/stacks/portainer_http_itest.cpp.
#include <doctest/doctest.h>

#include <filesystem>

#include "reconcilers/stacks/directory_backend.hpp"
#include "tests/e2e/shared_runtime_scenario.hpp"
#include "tests/support/temp_dir.hpp"

TEST_CASE("shared runtime: the directory backend, created, unchanged, updated, removed") {
  tmaster::testing::TempDir dir;
  const auto backend = tmaster::stacks::MakeDirectoryBackend(dir.path() / "deployments");
  tmaster::testing::SharedRuntimeLifecycle(*backend);
  // Nothing is left of the stack but the backend's own dot-files (its id counter, no ledger).
  for (const auto& entry : std::filesystem::directory_iterator(dir.path() / "deployments")) {
    CHECK(entry.path().filename().string().front() == '.');
  }
}
