#pragma once

// The built tenant-operator as a daemon for the API's end-to-end tests: the private PostgreSQL
// as its one cluster and its store, a directory source `local` on `<dir>/fleet`, the directory
// stack backend, and the admin and read tokens from its environment. The caller writes the fleet
// first and waits for what it needs.

#include <memory>
#include <string>

#include "tests/support/daemon_process.hpp"
#include "tests/support/pg_server.hpp"
#include "tests/support/temp_dir.hpp"

namespace tmaster::testing {

struct ApiDaemonOptions {
  std::string store_database;  ///< its own per test file
  std::string master_key;
  std::string admin_token;
  std::string read_token;
};

inline std::unique_ptr<DaemonProcess> StartApiDaemon(const TempDir& dir, PgServer& pg,
                                                     const ApiDaemonOptions& options) {
  std::string yaml = "baseDomain: example.test\nmasterKeyEnv: TM_MASTER_KEY\n";
  yaml += "clusters:\n  - name: default\n    dsnEnv: TM_PG_DSN\n";
  yaml += "store:\n  dsnEnv: TM_STORE_DSN\n";
  yaml += "sources:\n  - name: local\n    directory: " + (dir.path() / "fleet").string() + "\n";
  yaml += "stacks:\n  backend: directory\n  directory: " + (dir.path() / "deployments").string() +
          "\n";
  // The examples' erp runs its shared runtime on endpoint 1, which mounts the bindings.
  yaml += "bindings:\n  dir: " + (dir.path() / "bindings").string() + "\n";
  yaml += "http:\n  listen: \"127.0.0.1:0\"\n  tokenEnv: TM_API_TOKEN\n";
  yaml += "  readTokenEnv: TM_READ_TOKEN\n";
  const std::string config = dir.Write("operator.yaml", yaml);
  return std::make_unique<DaemonProcess>(DaemonProcess::Options{
      .argv = {std::string(TM_BINARY_DIR) + "/tenant-operator", "--config", config, "--state-dir",
               (dir.path() / "state").string()},
      .env = {{"TM_MASTER_KEY", options.master_key},
              {"TM_PG_DSN", pg.Dsn()},
              {"TM_STORE_DSN", pg.Dsn(options.store_database)},
              {"TM_API_TOKEN", options.admin_token},
              {"TM_READ_TOKEN", options.read_token}},
      .log_file = (dir.path() / "operator.log").string()});
}

}  // namespace tmaster::testing
