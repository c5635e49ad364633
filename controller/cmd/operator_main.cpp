// tenant-operator: reconciles the Workspace manifests of the configured sources (README.md, docs/architecture.md).
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>
#include <iostream>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <tuple>
#include <string_view>
#include <vector>

#include <pthread.h>
#include <unistd.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <ctime>
#include <thread>

#include "common/crypto.hpp"
#include "common/pq/dsn.hpp"
#include "common/scrub.hpp"
#include "controller/bindings/pgbouncer_sink.hpp"
#include "controller/bindings/publisher.hpp"
#include "controller/daemon/daemon.hpp"
#include "controller/daemon/runtime_api.hpp"
#include "controller/daemon/workspace_api.hpp"
#include "controller/api/http_config.hpp"
#include "controller/api/http_server.hpp"
#include "controller/api/users.hpp"
#include "controller/runtime/metrics.hpp"
#include "controller/workspace/reconcile_pass.hpp"
#include "controller/workspace/shared_runtime.hpp"
#include "controller/store/store_libpq.hpp"
#include "controller/cmd/logging.hpp"
#include "controller/cmd/report.hpp"
#include "controller/cmd/secrets.hpp"
#include "controller/sources/git_repo.hpp"
#include "manifests/config.hpp"
#include "manifests/loader.hpp"
#include "reconcilers/postgres/postgres_libpq.hpp"
#include "reconcilers/stacks/directory_backend.hpp"
#include "reconcilers/stacks/ledger.hpp"
#include "reconcilers/stacks/portainer_http.hpp"

namespace {

using namespace tmaster;

constexpr std::string_view kUsage =
    "usage: tenant-operator --config FILE [--workers N] [--state-dir DIR]\n"
    "       tenant-operator --config FILE --once [--deep] [--dry-run] [--workers N]\n"
    "                       [--state-dir DIR]\n"
    "\n"
    "Without --once: the long-running controller. It watches the configured sources, keeps\n"
    "every workspace converged, serves /healthz, /readyz, /metrics, /api/v1/... and\n"
    "POST /hooks/git on http.listen, and exits 0 on SIGTERM or SIGINT after draining.\n"
    "The drain is bounded by reconcile.drainTimeout: then the statements in flight are\n"
    "cancelled, and if a worker still does not return within a second it exits 1.\n"
    "\n"
    "  --config FILE   operator config (YAML, see README.md)\n"
    "  --state-dir DIR where git checkouts (and --once's stack ledger, unless\n"
    "                  stacks.ledgerFile is set) live, owned by this user, mode 0700 (default:\n"
    "                  $XDG_STATE_HOME/tenant-master, ~/.local/state/tenant-master, or\n"
    "                  /var/lib/tenant-master as root)\n"
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
  std::string state_dir;
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
    if (arg == "--state-dir") {
      auto v = value();
      if (!v) { exit_code = Usage("--state-dir needs a folder"); return std::nullopt; }
      args.state_dir = *v;
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

/// The store's DSN: `store.dsnEnv`/`dsnFile`, or the first cluster's with dbname=tenant_master.
Outcome<Secret> StoreDsn(const manifests::Config& config) {
  if (config.store.dsn.IsSet()) return controller::ResolveSecret(config.store.dsn, "store.dsn");
  if (config.clusters.empty()) {
    return Failure::Stalled("InvalidConfig", "store: no store.dsn and no cluster to default to");
  }
  Outcome<Secret> cluster =
      controller::ResolveSecret(config.clusters.front().dsn, "clusters." + config.clusters.front().name + ".dsn");
  if (!cluster) return cluster.failure();
  return controller::StoreDsnFromClusterDsn(*cluster);
}

/// The store's database name, never adopted on any cluster: the store DSN's dbname (the default
/// store DSN names tenant_master). Only parsed, never connected to.
std::string StoreDatabase(const manifests::Config& config) {
  Outcome<Secret> dsn = StoreDsn(config);
  if (!dsn) return std::string(postgres::kDefaultStoreDatabase);
  const std::optional<pq::DsnParts> parts = pq::ParseDsn(*dsn);
  if (!parts || parts->dbname.empty()) return std::string(postgres::kDefaultStoreDatabase);
  return parts->dbname;
}

/// The state folder: --state-dir, or the default for this user (may be empty: no HOME).
std::filesystem::path StateFolder(const Args& args) {
  if (!args.state_dir.empty()) return args.state_dir;
  return controller::DefaultStateFolder(geteuid() == 0, std::getenv("XDG_STATE_HOME"),
                                        std::getenv("HOME"));
}

/// Where `--once` keeps the Portainer backend's stack ledger without `stacks.ledgerFile`: in the
/// private state folder (the same checks as the daemon's), one file per config file and Portainer
/// URL, `stack-ledger-<16 hex digits of SHA-256 of both>`. A ledger entry's stack id is what
/// proves a stack is ours, and ids are only unique within one Portainer: two configs (or one
/// config pointed at another Portainer) must never share one. Empty under --dry-run when the
/// folder does not exist yet (a dry run creates nothing and has no ledger to read).
Outcome<std::filesystem::path> OnceLedgerFile(const Args& args, const manifests::Config& config) {
  const std::filesystem::path folder = StateFolder(args);
  std::error_code ec;
  if (args.dry_run && !folder.empty() && !std::filesystem::exists(folder, ec)) {
    return std::filesystem::path();
  }
  Outcome<std::filesystem::path> state = controller::PrepareStateFolder(folder);
  if (!state) return state.failure();
  std::filesystem::path config_path = std::filesystem::absolute(args.config, ec);
  if (ec) config_path = args.config;
  config_path = std::filesystem::weakly_canonical(config_path, ec);
  const std::string key = config_path.string() + "\n" + config.stacks.portainer.url;
  return *state / ("stack-ledger-" + crypto::Sha256Hex(key).substr(0, 16));
}

/// Waits for SIGTERM/SIGINT (blocked in every thread, see RunDaemon) and stops the daemon.
class SignalWatcher {
 public:
  explicit SignalWatcher(controller::Daemon& daemon)
      : thread_([this, &daemon] {
          sigset_t set;
          sigemptyset(&set);
          sigaddset(&set, SIGTERM);
          sigaddset(&set, SIGINT);
          const timespec tick{0, 200'000'000};
          while (!done_) {
            const int signal = sigtimedwait(&set, nullptr, &tick);
            if (signal == SIGTERM || signal == SIGINT) {
              spdlog::info("received {}: draining", signal == SIGTERM ? "SIGTERM" : "SIGINT");
              daemon.Stop();
            }
          }
        }) {}
  ~SignalWatcher() {
    done_ = true;
    thread_.join();
  }
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  std::atomic<bool> done_{false};
  std::thread thread_;
};

/// The end of `--once`'s publication (docs/bindings.md): the pooler's files written once for the
/// whole pass, and, after a clean read of every source, the bindings of workspaces no source
/// declares as shared removed. A failure is reported as the report's prune failure (exit 1).
void PublishOnce(const manifests::Fleet& fleet, bindings::SharedTenants& shared,
                 controller::PassReport& report) {
  if (Status flushed = shared.FlushPooler(); !flushed) {
    report.prune_blocked = Failure::Transient(flushed.failure().reason,
                                              "pooler: " + flushed.failure().message);
    return;
  }
  if (fleet.HasErrors()) return;
  std::set<std::string> declared;
  for (const manifests::Workspace& workspace : fleet.workspaces) {
    if (workspace.mode == manifests::Mode::kShared) declared.insert(workspace.name);
  }
  Outcome<std::vector<std::string>> swept = shared.Sweep(declared);
  if (!swept) {
    report.prune_blocked = swept.failure();
    return;
  }
  for (const std::string& name : *swept) {
    report.pruned.push_back("remove the binding of workspace " + name + " (no source declares it as shared)");
  }
  if (Status flushed = shared.FlushPooler(); !flushed) {
    report.prune_blocked = Failure::Transient(flushed.failure().reason,
                                              "pooler: " + flushed.failure().message);
  }
}

int RunDaemon(const Args& args, const manifests::Config& config, const Secret& master_key,
              const controller::Gateways& gateways, controller::StacksContext& stacks_context,
              std::function<void()> cancel_in_flight) {
  controller::InstallScrubbingLogger(controller::kDaemonLogPattern);
  Outcome<Secret> dsn = StoreDsn(config);
  if (!dsn) {
    std::cerr << "tenant-operator: " << ScrubProcessSecrets(dsn.failure().message) << '\n';
    return 2;
  }
  // The dashboard's users (issue 14; controller/api/users.hpp), read strictly once at start,
  // before anything connects: a file that does not load is a config error, and nothing of it is
  // used.
  std::optional<controller::Users> users;
  if (!config.http.users_file.empty()) {
    Outcome<controller::Users> loaded = controller::Users::Load(config.http.users_file);
    if (!loaded) {
      std::cerr << "tenant-operator: http.usersFile: "
                << ScrubProcessSecrets(loaded.failure().message) << '\n';
      return 2;
    }
    users = std::move(loaded).value();
    for (const std::string& warning : users->warnings()) {
      spdlog::warn("http.usersFile: {}", warning);
    }
  }
  controller::DaemonDeps deps;
  for (const auto& source : config.sources) {
    if (!source.git) continue;
    if (source.git->webhook_secret.IsSet()) {
      Outcome<Secret> secret = controller::ResolveSecret(
          source.git->webhook_secret, "sources." + source.name + ".git.webhookSecret");
      if (!secret) {
        std::cerr << "tenant-operator: " << ScrubProcessSecrets(secret.failure().message) << '\n';
        return 2;
      }
      deps.webhook_secrets.emplace(source.name, *secret);
    }
    controller::GitCredentials credentials;
    if (source.git->username.IsSet()) {
      Outcome<Secret> user = controller::ResolveSecret(source.git->username,
                                                       "sources." + source.name + ".git.username");
      if (!user) {
        std::cerr << "tenant-operator: " << ScrubProcessSecrets(user.failure().message) << '\n';
        return 2;
      }
      credentials.username = *user;
    }
    if (source.git->password.IsSet()) {
      Outcome<Secret> password = controller::ResolveSecret(
          source.git->password, "sources." + source.name + ".git.password");
      if (!password) {
        std::cerr << "tenant-operator: " << ScrubProcessSecrets(password.failure().message) << '\n';
        return 2;
      }
      credentials.password = *password;
    }
    deps.git_credentials.emplace(source.name, std::move(credentials));
  }

  // Signals are taken by SignalWatcher only: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  const manifests::RetentionConfig& kept = config.store.retention;
  std::unique_ptr<controller::Store> store = controller::MakeLibpqStore(
      *dsn, {.events_max_age = kept.events_max_age,
             .events_max_count = kept.events_max_count,
             .deliveries_max_age = kept.deliveries_max_age,
             .deliveries_max_count = kept.deliveries_max_count,
             .rejected_deliveries = kept.rejected_deliveries});
  std::unique_ptr<controller::LeaderLock> lock = controller::MakeLibpqLeaderLock(*dsn);
  controller::Metrics metrics;
  controller::SteadyClock clock;
  controller::MtRandom random;

  // A private folder: never a predictable name under /tmp another local user could plant.
  Outcome<std::filesystem::path> state = controller::PrepareStateFolder(StateFolder(args));
  if (!state) {
    std::cerr << "tenant-operator: " << state.failure().message << "\n";
    return 1;
  }
  deps.config = &config;
  deps.store = store.get();
  deps.leader_lock = lock.get();
  deps.gateways = gateways;
  deps.stacks = &stacks_context;
  deps.master_key = &master_key;
  deps.metrics = &metrics;
  deps.clock = &clock;
  deps.random = &random;
  deps.git_cache = *state / "git";
  deps.store_database = StoreDatabase(config);
  deps.cancel_in_flight = std::move(cancel_in_flight);
  // The backups run pg_dump and pg_restore as each cluster's admin (docs/backups.md).
  for (const auto& cluster : config.clusters) {
    Outcome<Secret> admin =
        controller::ResolveSecret(cluster.dsn, "clusters." + cluster.name + ".dsn");
    if (admin) deps.cluster_dsns.emplace(cluster.name, *admin);
  }

  controller::DaemonOptions options;
  options.workers = args.workers > 0 ? args.workers : config.reconcile.workers;
  options.resync_interval = config.reconcile.resync_interval;
  options.max_deletions_per_sync = config.reconcile.max_deletions_per_sync;
  options.drain_timeout = config.reconcile.drain_timeout;
  options.rescan_interval = std::min<controller::Duration>(config.reconcile.resync_interval,
                                                           std::chrono::minutes(1));
  controller::Daemon daemon(std::move(deps), options);
  SignalWatcher watcher(daemon);

  // The schema first; a store that is not up yet is waited for (until a signal).
  for (int attempt = 0;; ++attempt) {
    Outcome<Done> migrated = store->Migrate();
    if (migrated) break;
    if (migrated.failure().kind == FailureKind::kStalled) {
      std::cerr << "tenant-operator: store: " << ScrubProcessSecrets(migrated.failure().message) << '\n';
      return 2;
    }
    spdlog::warn("store: {} (retrying)", migrated.failure().message);
    std::this_thread::sleep_for(std::chrono::seconds(std::min(attempt + 1, 5)));
    if (daemon.Stopping()) return 0;
  }

  controller::HttpHandlers handlers;
  handlers.readiness = [&daemon] {
    const auto report = daemon.Readiness();
    return controller::Readiness{report.ready, report.problems};
  };
  handlers.webhook = [&daemon](const controller::WebhookRequest& request) {
    return daemon.HandleWebhook(request);
  };
  handlers.workspaces = [&daemon](const controller::WorkspaceCall& call) {
    return controller::ServeWorkspaceCall(daemon.Api(), call);
  };
  // The dashboard's live stream (GET /api/v1/stream): the daemon's hub hears the fleet view.
  handlers.events = &daemon.StreamHub();
  controller::HttpServerOptions http_options = controller::HttpServerOptionsFrom(config.http);
  if (bindings::SharedTenants* shared = stacks_context.shared; shared != nullptr) {
    handlers.runtime_tenants = [shared, &daemon, &store](const controller::RuntimeCall& call) {
      return controller::ServeRuntimeTenants(*shared, call, [&daemon] { return daemon.Leading(); },
                                             store.get());
    };
    // The pooler's files follow the tenants a few times a second, one write for many changes.
    shared->StartFlusher(std::chrono::milliseconds(200));
  }
  for (const auto& [product, runtime] : config.runtimes) {
    Outcome<Secret> token = controller::ResolveSecret(runtime.token, "runtimes." + product + ".token");
    if (!token) {
      std::cerr << "tenant-operator: " << ScrubProcessSecrets(token.failure().message) << '\n';
      return 2;
    }
    http_options.runtime_tokens.emplace(product, *token);
  }
  // The API's bearer tokens (docs/api.md#authentication); none: loopback only, said at start.
  for (const auto& [ref, field, slot] :
       {std::tuple{&config.http.token, "http.token", &http_options.admin_token},
        std::tuple{&config.http.read_token, "http.readToken", &http_options.read_token},
        std::tuple{&config.routing_token, "routing.token", &http_options.traefik_token}}) {
    if (!ref->IsSet()) continue;
    Outcome<Secret> token = controller::ResolveSecret(*ref, field);
    if (!token) {
      std::cerr << "tenant-operator: " << ScrubProcessSecrets(token.failure().message) << '\n';
      return 2;
    }
    *slot = *token;
  }
  http_options.routing.base_domain = config.base_domain;
  http_options.routing.cert_resolver = config.stacks.cert_resolver;
  http_options.routing.shared_services = config.shared_services;
  http_options.routing.suspended_service = config.suspended_service;
  // Shared tenants of a product with a runtime stack go to it (docs/stacks.md#shared-runtime).
  http_options.routing.shared_runtimes = [&daemon] { return daemon.SharedRuntimePorts(); };
  http_options.version = TM_VERSION;
  if (users) http_options.users = &*users;
  controller::HttpServer http(*store, metrics, std::move(handlers), std::move(http_options));
  if (Outcome<Done> started = http.Start(); !started) {
    std::cerr << "tenant-operator: " << ScrubProcessSecrets(started.failure().message) << '\n';
    return 2;
  }
  spdlog::info("tenant-operator {}: serving {}://{} (port {}); {} source(s), {} cluster(s)",
               TM_VERSION, config.http.tls_cert_file.empty() ? "http" : "https", config.http.listen, http.port(), config.sources.size(),
               config.clusters.size());
  const bool drained = daemon.Run();
  // Runtimes waiting on a watch are answered now, not at the end of their half minute.
  if (stacks_context.shared != nullptr) stacks_context.shared->Close();
  if (!drained) {
    // The drain passed reconcile.drainTimeout and a worker is still busy after its statements
    // were cancelled: it still uses the daemon, so nothing is destroyed; exit now, non-zero.
    http.Stop();
    spdlog::error("stopped without draining: exit 1");
    spdlog::default_logger()->flush();
    std::_Exit(1);
  }
  http.Stop();
  spdlog::info("stopped");
  return 0;
}

int Run(const Args& args) {
  controller::InstallScrubbingLogger();  // every log line is scrubbed, --once's too
  manifests::ConfigResult loaded = manifests::LoadConfig(args.config);
  if (!loaded.errors.empty()) {
    controller::PrintDiagnostics(std::cerr, loaded.errors);
    std::cerr << "tenant-operator: the config has " << loaded.errors.size() << " error(s)\n";
    return 2;
  }
  const manifests::Config& config = loaded.config;

  Outcome<Secret> master_key = controller::ResolveSecret(config.master_key, "masterKey");
  if (!master_key) {
    std::cerr << "tenant-operator: " << ScrubProcessSecrets(master_key.failure().message) << '\n';
    return 2;
  }
  if (master_key->Reveal().size() < kMinMasterKeyBytes) {
    std::cerr << "tenant-operator: masterKey: the master key must be at least "
              << kMinMasterKeyBytes << " bytes (for example: head -c 32 /dev/urandom | base64)\n";
    return 2;
  }

  const int workers = args.workers > 0 ? args.workers : config.reconcile.workers;
  std::vector<std::unique_ptr<postgres::LibpqGateway>> owned;
  controller::Gateways gateways;
  controller::StacksContext stacks_context;
  stacks_context.config = &config;
  for (const auto& cluster : config.clusters) {
    Outcome<Secret> dsn = controller::ResolveSecret(cluster.dsn, "clusters." + cluster.name + ".dsn");
    if (!dsn) {
      std::cerr << "tenant-operator: " << ScrubProcessSecrets(dsn.failure().message) << '\n';
      return 2;
    }
    owned.push_back(postgres::MakeLibpqGateway(
        cluster.name, *dsn,
        {.pool_size = workers,
         .statement_timeout = config.reconcile.statement_timeout,
         .lock_timeout = config.reconcile.lock_timeout,
         .migration_timeout = config.reconcile.migration_timeout}));
    gateways.emplace(cluster.name, owned.back().get());
    const auto host_port = postgres::DsnHostPort(*dsn);
    controller::DbAddress address;
    if (host_port) address = {host_port->first, host_port->second};
    stacks_context.servers.emplace(cluster.name, address);
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
      std::cerr << "tenant-operator: " << ScrubProcessSecrets(key.failure().message) << '\n';
      return 2;
    }
    stacks::PortainerOptions portainer;
    portainer.url = config.stacks.portainer.url;
    portainer.api_key = *key;
    portainer.insecure_skip_verify = config.stacks.portainer.insecure_skip_verify;
    portainer.endpoint_kind_ttl = config.stacks.portainer.endpoint_kind_ttl;
    stack_gateway = stacks::MakePortainerGateway(std::move(portainer));
  } else {
    stack_gateway = stacks::MakeDirectoryBackend(config.stacks.directory);
    if (ledger_file.empty()) ledger_file = config.stacks.directory / ".tenant-master-ledger";
  }
  // The daemon keeps its ledger in the store (Daemon::Run); a ledger file it still reads at start
  // and saves at exit, for a `--once` on the same config. `--once` keeps one in the state folder
  // unless configured elsewhere: without it a stack whose Env marker was wiped by hand could not
  // be told from a foreign one (docs/decisions.md#hardening-ii-issue-9).
  if (args.once && ledger_file.empty()) {
    Outcome<std::filesystem::path> file = OnceLedgerFile(args, config);
    if (!file) {
      std::cerr << "tenant-operator: stack ledger: " << file.failure().message
                << " (or set stacks.ledgerFile)\n";
      return 2;
    }
    ledger_file = *file;
  }
  stacks::StackLedger ledger;
  if (!ledger_file.empty()) {
    // The ledger only saves file reads: an unreadable one costs reads, never a wrong plan.
    if (auto read = ledger.Load(ledger_file); !read) {
      std::cerr << "tenant-operator: " << ScrubProcessSecrets(read.failure().message) << " (continuing without)\n";
    }
  }
  stacks_context.gateway = stack_gateway.get();
  stacks_context.ledger = &ledger;

  // Shared tenants published to their runtimes (docs/bindings.md): bindings, PgBouncer, the
  // runtime API. Nothing of it is configured: nothing is published.
  std::unique_ptr<bindings::PgBouncerFiles> pooler;
  std::unique_ptr<bindings::SharedTenants> shared;
  if (config.bindings || config.pgbouncer || !config.runtimes.empty()) {
    bindings::PublisherOptions publisher;
    if (config.bindings) {
      Outcome<bindings::Access> access = bindings::AccessFor(config.bindings->group);
      if (!access) {
        std::cerr << "tenant-operator: bindings.group: " << access.failure().message << '\n';
        return 2;
      }
      publisher.bindings_dir = config.bindings->dir;
      publisher.bindings_access = *access;
    }
    if (config.pgbouncer) {
      Outcome<bindings::Access> access = bindings::AccessFor(config.pgbouncer->group);
      if (!access) {
        std::cerr << "tenant-operator: pooler.pgbouncer.group: " << access.failure().message << '\n';
        return 2;
      }
      bindings::PoolerReload reload;
      reload.pid_file = config.pgbouncer->reload_pid_file.string();
      if (config.pgbouncer->reload_admin_dsn.IsSet()) {
        Outcome<Secret> dsn = controller::ResolveSecret(config.pgbouncer->reload_admin_dsn,
                                                        "pooler.pgbouncer.reload.adminDsn");
        if (!dsn) {
          std::cerr << "tenant-operator: " << ScrubProcessSecrets(dsn.failure().message) << '\n';
          return 2;
        }
        reload.admin_dsn = *dsn;
      }
      pooler = std::make_unique<bindings::PgBouncerFiles>(config.pgbouncer->dir, *access,
                                                          std::move(reload));
      publisher.pooler = pooler.get();
      publisher.pooler_listen =
          bindings::Endpoint{config.pgbouncer->listen_host, config.pgbouncer->listen_port};
    }
    // The daemon's terms write PgBouncer's files only once their shared tenants are in (at most
    // a minute after the term began); `--once` writes them once, after its whole pass.
    if (!args.once) publisher.pooler_hold = std::chrono::seconds(60);
    shared = std::make_unique<bindings::SharedTenants>(std::move(publisher));
    stacks_context.shared = shared.get();
  }

  if (!args.once) {
    const int code = RunDaemon(args, config, *master_key, gateways, stacks_context, [&owned] {
      for (const auto& gateway : owned) gateway->CancelAll();
    });
    if (!ledger_file.empty()) {
      std::error_code ignored;
      std::filesystem::create_directories(ledger_file.parent_path(), ignored);
      if (Status saved = ledger.Save(ledger_file); !saved) {
        std::cerr << "tenant-operator: " << ScrubProcessSecrets(saved.failure().message) << '\n';
      }
    }
    return code;
  }

  std::vector<std::filesystem::path> paths;
  for (const auto& source : config.sources) {
    if (source.git) {
      std::cerr << "tenant-operator: source \"" << source.name
                << "\": git sources are read only by the long-running controller (run without "
                   "--once)\n";
      return 2;
    }
    if (source.directory) paths.push_back(*source.directory);
  }
  manifests::LoadOptions options;
  options.reserved_subdomains = config.reserved_subdomains;
  options.known_clusters.emplace();
  for (const auto& cluster : config.clusters) options.known_clusters->insert(cluster.name);
  const manifests::Fleet fleet = manifests::LoadPaths(paths, options);

  controller::PassReport report = controller::RunPass(
      fleet, gateways, *master_key,
      {.dry_run = args.dry_run,
       .deep = args.deep,
       .workers = workers,
       // Only a clean read of every source may remove anything (docs/architecture.md#invariants).
       .prune_stacks = !fleet.HasErrors(),
       .max_deletions_per_sync = config.reconcile.max_deletions_per_sync,
       .store_database = StoreDatabase(config)},
      &stacks_context);
  if (shared && !args.dry_run) PublishOnce(fleet, *shared, report);
  // The products' shared runtimes after the workspaces (docs/stacks.md#shared-runtime): the same
  // backend and ledger; a stale one is looked for on every endpoint a stack may be on, and
  // removed only after a clean read of every source, like a workspace's stack.
  controller::SharedRuntimeOptions runtime_options{.dry_run = args.dry_run,
                                                   .deep = args.deep,
                                                   .prune = !fleet.HasErrors(),
                                                   .endpoints = {}};
  for (const manifests::Workspace& workspace : fleet.workspaces) {
    if (workspace.dedicated && !workspace.dedicated->endpoint_placed) {
      runtime_options.endpoints.insert(workspace.dedicated->endpoint);
    }
  }
  for (const manifests::EndpointConfig& endpoint : config.stacks.endpoints) {
    runtime_options.endpoints.insert(endpoint.id);  // placed stacks are on these
  }
  const controller::SharedRuntimeReport runtimes =
      controller::ConvergeSharedRuntimes(fleet.products, stacks_context, runtime_options);
  controller::PrintReport(std::cout, fleet.diagnostics, report, args.dry_run);
  controller::PrintSharedRuntimes(std::cout, runtimes, args.dry_run);
  if (!ledger_file.empty() && !args.dry_run) {
    std::error_code ignored;
    std::filesystem::create_directories(ledger_file.parent_path(), ignored);
    if (Status saved = ledger.Save(ledger_file); !saved) {
      std::cerr << "tenant-operator: " << ScrubProcessSecrets(saved.failure().message) << '\n';
    }
  }
  return !fleet.HasErrors() && report.AllReady() && runtimes.AllReady() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  int exit_code = 0;
  const std::optional<Args> args = ParseArgs(argc, argv, exit_code);
  if (!args) return exit_code;
  return Run(*args);
}
