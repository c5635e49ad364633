// tenantctl: the command-line client (README.md, "tenantctl"). This build has the offline verbs.
#include <filesystem>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "controller/cmd/report.hpp"
#include "manifests/config.hpp"
#include "manifests/loader.hpp"

namespace {

using namespace tmaster;

constexpr std::string_view kUsage =
    "usage: tenantctl COMMAND [flags]\n"
    "\n"
    "  validate -f PATH|- [--config FILE]   validate manifests offline (file, directory or stdin);\n"
    "                                       --config adds its cluster names and reserved\n"
    "                                       subdomains to the checks. Exit 0 valid, 1 invalid.\n"
    "  version                              print the version\n"
    "\n"
    "The server verbs (apply, get, describe, diff, delete, reconcile, events, suspend, resume,\n"
    "backup, restore) need the operator's HTTP API, which this build does not have yet.\n";

int Usage(std::string_view error) {
  std::cerr << "tenantctl: " << error << "\n\n" << kUsage;
  return 2;
}

int Validate(const std::vector<std::string_view>& args) {
  std::optional<std::string> path;
  std::optional<std::string> config_file;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view arg = args[i];
    if ((arg == "-f" || arg == "--filename") && i + 1 < args.size()) {
      path = std::string(args[++i]);
    } else if (arg == "--config" && i + 1 < args.size()) {
      config_file = std::string(args[++i]);
    } else {
      return Usage("validate: unexpected argument " + std::string(arg));
    }
  }
  if (!path) return Usage("validate: -f PATH is required");

  manifests::LoadOptions options;
  if (config_file) {
    manifests::ConfigResult config = manifests::LoadConfig(*config_file);
    if (!config.errors.empty()) {
      controller::PrintDiagnostics(std::cerr, config.errors);
      return 1;
    }
    options.reserved_subdomains = config.config.reserved_subdomains;
    options.known_clusters.emplace();
    for (const auto& c : config.config.clusters) options.known_clusters->insert(c.name);
  }

  manifests::Fleet fleet;
  if (*path == "-") {
    const std::string text((std::istreambuf_iterator<char>(std::cin)),
                           std::istreambuf_iterator<char>());
    fleet = manifests::LoadText(text, "<stdin>", std::filesystem::current_path(), options);
  } else {
    fleet = manifests::LoadPaths({*path}, options);
  }
  controller::PrintDiagnostics(fleet.HasErrors() ? std::cerr : std::cout, fleet.diagnostics);
  if (fleet.HasErrors()) {
    std::cerr << "invalid: " << fleet.rejected.size() << " workspace(s) rejected\n";
    return 1;
  }
  std::cout << "valid: " << fleet.products.size() << " product(s), " << fleet.workspaces.size()
            << " workspace(s)\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  if (args.empty()) return Usage("a command is required");
  const std::string_view command = args.front();
  const std::vector<std::string_view> rest(args.begin() + 1, args.end());
  if (command == "validate") return Validate(rest);
  if (command == "version" || command == "--version") {
    std::cout << "tenantctl " << TM_VERSION << '\n';
    return 0;
  }
  if (command == "help" || command == "--help" || command == "-h") {
    std::cout << kUsage;
    return 0;
  }
  static constexpr std::string_view kServerVerbs[] = {
      "apply", "get", "describe", "diff", "delete", "reconcile", "events",
      "suspend", "resume", "backup", "restore"};
  for (std::string_view verb : kServerVerbs) {
    if (command == verb) {
      std::cerr << "tenantctl: " << verb
                << " needs the operator's HTTP API, which this build does not have yet\n";
      return 2;
    }
  }
  return Usage("unknown command " + std::string(command));
}
