// tenantctl: the command-line client of the operator (README.md, "tenantctl"; docs/api.md).
// Everything is in controller/cli/; this main hands it the arguments and the process's world.
#include <string>
#include <vector>

#include "controller/cli/tenantctl.hpp"

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  tmaster::cli::World world = tmaster::cli::ProcessWorld(TM_VERSION);
  return tmaster::cli::RunTenantctl(args, world);
}
