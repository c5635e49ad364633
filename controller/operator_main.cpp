// tenant-operator: reconciles the Workspace manifests of the configured sources (DESIGN §8).
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "controller/reconcile_pass.hpp"
#include "controller/report.hpp"
#include "controller/secrets.hpp"
#include "manifests/config.hpp"
#include "manifests/loader.hpp"
#include "reconcilers/postgres/postgres_libpq.hpp"
#include "reconcilers/stacks/directory_backend.hpp"
#include "reconcilers/stacks/ledger.hpp"
#include "reconcilers/stacks/portainer_http.hpp"

namespace {

using namespace tmaster;

constexpr std::string_view kUsage =
    "usage: tenant-operator --config FILE --once [--deep] [--dry-run] [--workers N]\n"
    "\n"
    "  --config FILE   operator config (YAML, DESIGN §8)\n"
    "  --once          run one full pass over every source, print one line per workspace,\n"
    "                  exit 0 when every document is valid and every workspace is Ready\n"
    "  --deep          also verify extensions and migrations inside every tenant database\n"
    "  --dry-run       print each workspace's plan and change nothing\n"
    "  --workers N     workspaces reconciled in parallel (default: reconcile.workers)\n"
    "  --version       print the version\n";

constexpr std::size_t kMinMasterKeyBytes = 32;

struct Args {
  std::string config;
  bool once = false;
  bool deep = false;
  bool dry_run = false;
  int workers = 0;
};

int Usage(std::string_view error) {
  std::cerr << "tenant-operator: " << error << "\n\n" << kUsage;
  return 2;
}

std::optional<Args> ParseArgs(int argc, char** argv, int& exit_code) {
  Args args;
  std::vector<std::string_view> argv_list(argv + 1, argv + argc);
  for (std::size_t i = 0; i < argv_list.size(); ++i) {
    std::string_view arg = argv_list[i];
    auto value = [&]() -> std::optional<std::string> {
      if (i + 1 >= argv_list.size()) return std::nullopt;
      return std::string(argv_list[++i]);
    };
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      exit_code = 0;
      return std::nullopt;
    }
    if (arg == "--version") {
      std::cout << "tenant-operator " << TM_VERSION << '\n';
      exit_code = 0;
      return std::nullopt;
    }
    if (arg == "--once") { args.once = true; continue; }
    if (arg == "--deep") { args.deep = true; continue; }
    if (arg == "--dry-run") { args.dry_run = true; continue; }
    if (arg == "--config") {
      auto v = value();
      if (!v) { exit_code = Usage("--config needs a file"); return std::nullopt; }
      args.config = *v;
      continue;
    }
    if (arg == "--workers") {
      auto v = value();
      char* end = nullptr;
      const long n = v ? std::strtol(v->c_str(), &end, 10) : 0;
      if (!v || *end != '\0' || n < 1 || n > 64) {
        exit_code = Usage("--workers needs a number from 1 to 64");
        return std::nullopt;
      }
      args.workers = static_cast<int>(n);
      continue;
    }
    exit_code = Usage("unknown argument " + std::string(arg));
    return std::nullopt;
  }
  if (args.config.empty()) {
    exit_code = Usage("--config is required");
    return std::nullopt;
  }
  return args;
}

int Run(const Args& args) {
  manifests::ConfigResult loaded = manifests::LoadConfig(args.config);
  if (!loaded.errors.empty()) {
    controller::PrintDiagnostics(std::cerr, loaded.errors);
    std::cerr << "tenant-operator: the config has " << loaded.errors.size() << " error(s)\n";
    return 2;
  }
  const manifests::Config& config = loaded.config;
  if (!args.once) {
    std::cerr << "tenant-operator: the long-running controller is not available in this build; "
                 "run a single pass with --once\n";
    return 2;
  }

  Outcome<Secret> master_key = controller::ResolveSecret(config.master_key, "masterKey");
  if (!master_key) {
    std::cerr << "tenant-operator: " << master_key.failure().message << '\n';
    return 2;
  }
  if (master_key->Reveal().size() < kMinMasterKeyBytes) {
    std::cerr << "tenant-operator: masterKey: the master key must be at least "
              << kMinMasterKeyBytes << " bytes (for example: head -c 32 /dev/urandom | base64)\n";
    return 2;
  }

  const int workers = args.workers > 0 ? args.workers : config.reconcile.workers;
  std::vector<std::unique_ptr<postgres::PostgresGateway>> owned;
  controller::Gateways gateways;
  controller::StacksContext stacks_context;
  stacks_context.config = &config;
  for (const auto& cluster : config.clusters) {
    Outcome<Secret> dsn = controller::ResolveSecret(cluster.dsn, "clusters." + cluster.name + ".dsn");
    if (!dsn) {
      std::cerr << "tenant-operator: " << dsn.failure().message << '\n';
      return 2;
    }
    owned.push_back(postgres::MakeLibpqGateway(cluster.name, *dsn, {.pool_size = workers}));
    gateways.emplace(cluster.name, owned.back().get());
    const auto host_port = postgres::DsnHostPort(*dsn);
    controller::DbAddress address;
    if (host_port) address = {host_port->first, host_port->second};
    if (!cluster.stacks_host.empty()) address.host = cluster.stacks_host;
    if (cluster.stacks_port != 0) address.port = cluster.stacks_port;
    stacks_context.clusters.emplace(cluster.name, address);
  }

  std::unique_ptr<stacks::StackGateway> stack_gateway;
  std::filesystem::path ledger_file = config.stacks.ledger_file;
  if (config.stacks.backend == "portainer") {
    Outcome<Secret> key =
        controller::ResolveSecret(config.stacks.portainer.api_key, "stacks.portainer.apiKey");
    if (!key) {
      std::cerr << "tenant-operator: " << key.failure().message << '\n';
      return 2;
    }
    stacks::PortainerOptions portainer;
    portainer.url = config.stacks.portainer.url;
    portainer.api_key = *key;
    portainer.insecure_skip_verify = config.stacks.portainer.insecure_skip_verify;
    stack_gateway = stacks::MakePortainerGateway(std::move(portainer));
  } else {
    stack_gateway = stacks::MakeDirectoryBackend(config.stacks.directory);
    if (ledger_file.empty()) ledger_file = config.stacks.directory / ".tenant-master-ledger";
  }
  stacks::StackLedger ledger;
  if (!ledger_file.empty()) {
    // The ledger only saves file reads: an unreadable one costs reads, never a wrong plan.
    if (auto read = ledger.Load(ledger_file); !read) {
      std::cerr << "tenant-operator: " << read.failure().message << " (continuing without)\n";
    }
  }
  stacks_context.gateway = stack_gateway.get();
  stacks_context.ledger = &ledger;

  std::vector<std::filesystem::path> paths;
  for (const auto& source : config.sources) {
    if (source.git) {
      std::cerr << "tenant-operator: source \"" << source.name
                << "\": git sources are read only by the long-running controller, which this "
                   "build does not have\n";
      return 2;
    }
    if (source.directory) paths.push_back(*source.directory);
  }
  manifests::LoadOptions options;
  options.reserved_subdomains = config.reserved_subdomains;
  options.known_clusters.emplace();
  for (const auto& cluster : config.clusters) options.known_clusters->insert(cluster.name);
  const manifests::Fleet fleet = manifests::LoadPaths(paths, options);

  const controller::PassReport report = controller::RunPass(
      fleet, gateways, *master_key,
      {.dry_run = args.dry_run,
       .deep = args.deep,
       .workers = workers,
       // Only a clean read of every source may remove anything (DESIGN §4, §7).
       .prune_stacks = !fleet.HasErrors(),
       .max_deletions_per_sync = config.reconcile.max_deletions_per_sync},
      &stacks_context);
  controller::PrintReport(std::cout, fleet.diagnostics, report, args.dry_run);
  if (!ledger_file.empty() && !args.dry_run) {
    std::error_code ignored;
    std::filesystem::create_directories(ledger_file.parent_path(), ignored);
    if (Status saved = ledger.Save(ledger_file); !saved) {
      std::cerr << "tenant-operator: " << saved.failure().message << '\n';
    }
  }
  return !fleet.HasErrors() && report.AllReady() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  int exit_code = 0;
  const std::optional<Args> args = ParseArgs(argc, argv, exit_code);
  if (!args) return exit_code;
  return Run(*args);
}
