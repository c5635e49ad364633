// Fuzz target: the operator config loader (manifests/config.hpp LoadConfig). The input is the
// config's YAML text; LoadConfig takes a path, so each input is written to
// <temp>/tm-config-fuzz-<pid>/tenant-master.yaml first (paths in it resolve against that folder).
//
// Properties beyond "no crash, no exception, no sanitizer report", when the config is valid
// (no errors), from LoadConfig's contract: at least one cluster, cluster and source names
// unique, every cluster has its DSN's secret reference, every source has exactly one of
// directory/git, a git source has its webhook secret reference, durations are above zero.
// Every error formats and names the config file.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <system_error>

#include <unistd.h>

#include "manifests/config.hpp"
#include "tests/fuzz/fuzz_input.hpp"

namespace {

namespace fs = std::filesystem;
using tmaster::fuzz::Require;

fs::path ConfigFile() {
  const fs::path folder =
      fs::temp_directory_path() / ("tm-config-fuzz-" + std::to_string(::getpid()));
  std::error_code ec;
  fs::create_directories(folder, ec);
  Require(!ec, "the fuzzer's temporary folder can be created");
  return folder / "tenant-master.yaml";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const fs::path file = ConfigFile();
  {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    Require(static_cast<bool>(out.flush()), "the input can be written to the temporary file");
  }
  const tmaster::manifests::ConfigResult result = tmaster::manifests::LoadConfig(file);
  for (const auto& error : result.errors) {
    Require(!error.Format().empty(), "an error formats");
    Require(error.where.file.empty() || fs::path(error.where.file) == file,
            "an error names the config file");
  }
  if (!result.errors.empty()) return 0;

  const tmaster::manifests::Config& config = result.config;
  Require(!config.clusters.empty(), "a valid config has a cluster");
  std::set<std::string> clusters;
  for (const auto& cluster : config.clusters) {
    Require(clusters.insert(cluster.name).second, "cluster names are unique");
    Require(cluster.dsn.IsSet(), "every cluster has its DSN's reference");
  }
  std::set<std::string> sources;
  for (const auto& source : config.sources) {
    Require(sources.insert(source.name).second, "source names are unique");
    Require(source.directory.has_value() != source.git.has_value(),
            "a source is a directory or a git repository, not both");
    if (source.git) {
      Require(source.git->webhook_secret.IsSet(), "a git source has its webhook secret");
      Require(source.git->interval.count() > 0 && source.git->timeout.count() > 0,
              "a git source's durations are above zero");
    }
  }
  const auto& reconcile = config.reconcile;
  for (const std::chrono::seconds duration :
       {reconcile.resync_interval, reconcile.statement_timeout, reconcile.lock_timeout,
        reconcile.migration_timeout, reconcile.drain_timeout}) {
    Require(duration.count() > 0, "reconcile durations are above zero");
  }
  return 0;
}
