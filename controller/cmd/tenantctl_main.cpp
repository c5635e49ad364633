// tenantctl: the command-line client of the operator (README.md, "tenantctl"; docs/api.md).
// Everything is in controller/cli/; this main hands it the arguments and the process's world.
#include <string>
#include <vector>

#include "controller/cli/tenantctl.hpp"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  // `tenantctl --version` is `tenantctl version --client`, as other tools answer it (help2man,
  // packaging checks): the client's line only, no server asked.
  if (args == std::vector<std::string>{"--version"}) args = {"version", "--client"};
  tmaster::cli::World world = tmaster::cli::ProcessWorld(TM_VERSION);
  return tmaster::cli::RunTenantctl(args, world);
}
