#include "controller/daemon/daemon.hpp"

#include <spdlog/spdlog.h>

#include "controller/bindings/publisher.hpp"
#include "controller/sources/directory_source.hpp"
#include "controller/sources/git_source.hpp"
#include "controller/workspace/stack_ledger_store.hpp"

namespace tmaster::controller {

Daemon::Daemon(DaemonDeps deps, DaemonOptions options)
    : deps_(std::move(deps)),
      options_(std::move(options)),
      events_(*deps_.store),
      store_overrides_(*deps_.store),
      backups_(MakeBackupRunner()),
      health_prober_(MakeHttpHealthProber()),
      health_(*health_prober_),
      rollouts_({.store = deps_.store,
                 .desired = &desired_,
                 .products = &products_,
                 .events = &events_,
                 .metrics = deps_.metrics,
                 .backups = backups_.get(),
                 .enqueue = [this](const std::string& name) { return Enqueue(name); },
                 .now_unix = {},
                 .health = &health_,
                 .base_domain = deps_.config != nullptr ? deps_.config->base_domain : "",
                 .health_base_url =
                     deps_.config != nullptr ? deps_.config->rollouts.health_base_url : ""},
                {}),
      cluster_monitor_(deps_.gateways, std::chrono::seconds(5)),
      placer_({.store = deps_.store,
               .desired = &desired_,
               .clusters = deps_.config != nullptr ? deps_.config->clusters
                                                   : std::vector<manifests::ClusterConfig>{},
               .endpoints = deps_.config != nullptr ? deps_.config->stacks.endpoints
                                                    : std::vector<manifests::EndpointConfig>{},
               .reach = [this](const std::string& cluster) {
                 return cluster_monitor_.Reach(cluster);
               },
               .endpoint_reach = [this](int endpoint) { return endpoint_monitor_.Reach(endpoint); },
               .runtimes = [this] { return SharedRuntimeEndpoints(); },
               .now_unix = {}}),
      endpoint_monitor_(deps_.stacks != nullptr ? deps_.stacks->gateway : nullptr,
                        [this] { return placer_.KnownEndpoints(); },
                        options_.endpoint_check_interval),
      moves_(MakeMoveRunner()),
      fleet_(&overrides_),
      observer_(*this),
      api_({.config = deps_.config,
            .store = deps_.store,
            .desired = &desired_,
            .products = &products_,
            .events = &events_,
            .overrides = &overrides_,
            .requested = &requested_,
            .override_store =
                deps_.override_store != nullptr ? deps_.override_store : &store_overrides_,
            .fleet = &fleet_,
            .observer = &observer_,
            .enqueue = [this](const std::string& name) { return Enqueue(name); },
            .leading = [this] { return Leading(); },
            .gateways = deps_.gateways,
            .stacks = deps_.stacks,
            .master_key = deps_.master_key,
            .store_database = deps_.store_database,
            .now_unix = {},
            .backups = backups_.get(),
            .rollouts = &rollouts_,
            .placer = &placer_,
            .moves = moves_.get()}),
      reconciler_({.desired = &desired_,
                   .store = deps_.store,
                   .events = &events_,
                   .gateways = deps_.gateways,
                   .stacks = deps_.stacks,
                   .master_key = deps_.master_key,
                   .metrics = deps_.metrics,
                   .clock = deps_.clock,
                   .config = deps_.config,
                   .store_database = deps_.store_database,
                   .overrides = &overrides_,
                   .requested = &requested_,
                   .observer = &observer_,
                   .backups = backups_.get(),
                   .deep = &deep_,
                   .pins = &rollouts_,
                   .placer = &placer_},
                  {.resync_interval = options_.resync_interval,
                   .snapshot_max_age = options_.snapshot_max_age}),
      manager_({.leader_lock = deps_.leader_lock,
                .reconciler = &reconciler_,
                .term = this,
                .metrics = deps_.metrics,
                .clock = deps_.clock,
                .random = deps_.random,
                .cancel_in_flight = deps_.cancel_in_flight},
               {.workers = options_.workers,
                .resync_interval = options_.resync_interval,
                .leader_poll = options_.leader_poll,
                .backoff = options_.backoff,
                .drain_timeout = options_.drain_timeout}) {
  // Called on the writer's thread outside the view's lock; the hub only records and wakes.
  fleet_.SetChangeListener([this](std::uint64_t version, const std::vector<std::string>& names) {
    stream_hub_.FleetChanged(version, names);
  });
  stream_hub_.FleetChanged(fleet_.ResourceVersion(), {});
  stream_hub_.SetPoll([this] { PollForStreams(); },
                      std::chrono::duration_cast<std::chrono::milliseconds>(
                          options_.standby_refresh));
}

std::unique_ptr<BackupRunner> Daemon::MakeBackupRunner() {
  if (deps_.cluster_dsns.empty() || deps_.config == nullptr) return nullptr;
  return std::make_unique<BackupRunner>(BackupRunnerDeps{
      .config = deps_.config,
      .store = deps_.store,
      .desired = &desired_,
      .events = &events_,
      .metrics = deps_.metrics,
      .overrides = &overrides_,
      .override_store = deps_.override_store != nullptr ? deps_.override_store : &store_overrides_,
      .deep = &deep_,
      .admin_dsns = deps_.cluster_dsns,
      .master_key = deps_.master_key,
      .enqueue = [this](const std::string& name) { return Enqueue(name); },
      .now_unix = {},
      .pg_bin_dir = {}});
}

std::unique_ptr<MoveRunner> Daemon::MakeMoveRunner() {
  if (deps_.cluster_dsns.empty() || deps_.config == nullptr || deps_.master_key == nullptr) {
    return nullptr;
  }
  return std::make_unique<MoveRunner>(MoveRunnerDeps{
      .config = deps_.config,
      .store = deps_.store,
      .desired = &desired_,
      .events = &events_,
      .overrides = &overrides_,
      .override_store = deps_.override_store != nullptr ? deps_.override_store : &store_overrides_,
      .gateways = deps_.gateways,
      .admin_dsns = deps_.cluster_dsns,
      .master_key = deps_.master_key,
      .placer = &placer_,
      .store_database = deps_.store_database,
      .enqueue = [this](const std::string& name) { return Enqueue(name); },
      .switched = [this](const std::string& name) { reconciler_.Moved(name); },
      .now_unix = {},
      .pg_bin_dir = {},
      .phase_wait = std::chrono::seconds(120)});
}

Daemon::~Daemon() {
  Stop();
  fleet_.SetChangeListener({});
}

stacks::StackLedger* Daemon::Ledger() const {
  return deps_.stacks != nullptr ? deps_.stacks->ledger : nullptr;
}

bool Daemon::Run() {
  // While it runs, the ledger is written through to the store on every change, so a restart or
  // another replica taking over starts from it (Begin loads it).
  stacks::StackLedger* ledger = Ledger();
  if (ledger != nullptr) {
    ledger->SetObserver(StackLedgerWriter(*deps_.store, StackBackendKey(deps_.config->stacks)));
  }
  cluster_monitor_.Start();
  endpoint_monitor_.Start();
  const bool drained = manager_.Run();
  cluster_monitor_.Stop();
  endpoint_monitor_.Stop();
  // A worker still busy after a failed drain may record: the observer stays (the caller ends
  // the process without destroying anything).
  if (drained && ledger != nullptr) ledger->SetObserver({});
  return drained;
}

void Daemon::Stop() {
  manager_.Stop();
  cluster_monitor_.Stop();
  endpoint_monitor_.Stop();
  stream_hub_.Stop();  // the dashboards' streams end now, not when the HTTP server stops
}

void Daemon::PollForStreams() {
  RefreshStandbyView();  // what changed reaches the hub through the view's listener
  Outcome<std::vector<SourceStatus>> sources = deps_.store->ListSourceStatuses();
  Outcome<std::vector<WebhookDelivery>> newest = deps_.store->ListDeliveries(1);
  if (!sources || !newest) return;  // the store is down: nothing to tell, ask again next time
  std::string seen;
  for (const SourceStatus& source : *sources) {
    seen += source.name + '\0' + source.revision + '\0' + (source.ready ? "1" : "0") + '\0' +
            source.reason + '\0' + source.message + '\0' + std::to_string(source.last_sync_unix) +
            '\0' + std::to_string(source.last_attempt_unix) + '\n';
  }
  if (!newest->empty()) seen += "delivery " + std::to_string(newest->front().id);
  if (seen == sources_seen_) return;
  sources_seen_ = std::move(seen);
  stream_hub_.SourcesChanged();
}

std::unique_ptr<Source> Daemon::MakeSource(const manifests::SourceConfig& config) const {
  if (deps_.make_source) return deps_.make_source(config);
  const manifests::LoadOptions load = MakeLoadOptions(*deps_.config);
  if (config.git) {
    GitCredentials credentials;
    if (auto c = deps_.git_credentials.find(config.name); c != deps_.git_credentials.end()) {
      credentials = c->second;
    }
    return std::make_unique<GitSource>(config, load, deps_.git_cache / config.name,
                                       std::move(credentials));
  }
  return std::make_unique<DirectorySource>(
      config, load,
      DirectorySourceOptions{.debounce = options_.debounce, .rescan = options_.rescan_interval});
}

bool Daemon::Begin(WorkQueue& queue) {
  Outcome<std::vector<WorkspaceStatus>> statuses = deps_.store->ListStatuses();
  if (!statuses) {
    spdlog::error("store: {}", statuses.failure().message);
    return false;
  }
  Outcome<std::vector<StoredWorkspace>> stored = deps_.store->ListWorkspaces(std::nullopt);
  if (!stored) {
    spdlog::error("store: {}", stored.failure().message);
    return false;
  }
  // What the last leader (this process before a restart, or another replica) wrote to each
  // stack, before any stack is reconciled. Only a cache: without it the term still starts.
  if (stacks::StackLedger* ledger = Ledger()) {
    Outcome<std::size_t> loaded =
        LoadStackLedger(*deps_.store, StackBackendKey(deps_.config->stacks), *ledger);
    if (!loaded) {
      spdlog::warn("store: loading the stack ledger: {} (stack files are read instead)",
                   loaded.failure().message);
    } else {
      spdlog::info("store: stack ledger of {} stack(s)", *loaded);
    }
  }
  Outcome<std::vector<SuspendOverride>> overrides = (deps_.override_store != nullptr ? deps_.override_store : &store_overrides_)->ListOverrides();
  if (!overrides) {
    spdlog::error("store: overrides: {}", overrides.failure().message);
    return false;
  }
  overrides_.Load(*overrides);
  // Without the stored rollouts a pin could move a workspace early: no term without them.
  if (Status loaded = rollouts_.BeginTerm(*statuses); !loaded) {
    spdlog::error("store: rollouts: {}", loaded.failure().message);
    return false;
  }
  // Without the recorded placements a workspace could be placed twice: no term without them.
  if (Status loaded = placer_.Load(); !loaded) {
    spdlog::error("store: placements: {}", loaded.failure().message);
    return false;
  }
  fleet_.Reset(*stored, *statuses);
  reconciler_.BeginTerm(std::move(*statuses));
  // The shared tenants this replica published in an earlier term may have been removed by
  // another leader since: this term publishes them again as it reconciles (docs/bindings.md).
  if (deps_.stacks != nullptr && deps_.stacks->shared != nullptr) deps_.stacks->shared->Reset();
  const std::vector<std::string> deleting = desired_.BeginTerm(*stored);
  for (const std::string& name : deleting) queue.Add(name);
  spdlog::info("store: {} workspaces, {} being deleted", stored->size(), deleting.size());

  const std::lock_guard lock(term_mutex_);
  queue_ = &queue;
  sync_ = std::make_unique<Sync>(
      SyncDeps{.store = deps_.store,
               .desired = &desired_,
               .events = &events_,
               .products = &products_,
               .observer = &observer_},
      SyncOptions{.max_deletions_per_sync = options_.max_deletions_per_sync,
                  .max_migration_bytes = deps_.config->reconcile.max_migration_bytes,
                  .max_template_bytes = deps_.config->reconcile.max_template_bytes});
  for (const manifests::SourceConfig& config : deps_.config->sources) {
    sources_.push_back(std::make_unique<CleanReadSource>(MakeSource(config)));
    runners_.push_back(std::make_unique<SourceRunner>(
        *sources_.back(), *sync_, *deps_.store, *deps_.metrics, *deps_.random,
        [&queue](const std::string& name) { queue.Add(name); }));
  }
  for (auto& runner : runners_) runner->Start();
  health_.Start();
  rollouts_.Start();
  // The products' shared runtimes converge on a thread of their own, kicked by Tick.
  if (deps_.stacks != nullptr && deps_.stacks->gateway != nullptr &&
      deps_.stacks->config != nullptr) {
    runtimes_ = std::make_unique<SharedRuntimeLoop>(
        *deps_.stacks, events_, [this] { return RuntimePass(); }, options_.resync_interval);
    runtimes_->Start();
  }
  // Moves are taken (and unfinished ones taken up) from the term's start: the runner's thread
  // queues names, which waits for this lock, so nothing runs before the term is in place.
  if (moves_) moves_->Start();
  sources_clean_ = false;
  pooler_expected_ = false;
  return true;
}

bool Daemon::SourcesClean(std::vector<CleanReadSource::Mark>* marks) const {
  const std::lock_guard lock(term_mutex_);
  bool clean = !runners_.empty();
  for (const auto& runner : runners_) {
    const SourceHealth health = runner->Health();
    // Begin wraps every source in a CleanReadSource.
    const CleanReadSource::Mark mark =
        static_cast<const CleanReadSource&>(runner->source()).Current();
    if (marks != nullptr) marks->push_back(mark);
    if (!health.synced_once || !health.healthy || !mark.clean) clean = false;
  }
  return clean;
}

std::map<std::string, int> Daemon::SharedRuntimePorts() const {
  std::map<std::string, int> ports;
  for (const auto& [name, found] : products_.All()) {
    if (found.entry != nullptr && found.entry->product.shared_runtime) {
      ports.emplace(name, found.entry->product.port);
    }
  }
  return ports;
}

std::map<int, std::vector<std::string>> Daemon::SharedRuntimeEndpoints() const {
  std::map<int, std::vector<std::string>> out;
  for (const auto& [name, found] : products_.All()) {  // in name order
    if (found.entry != nullptr && found.entry->product.shared_runtime) {
      out[found.entry->product.shared_runtime->endpoint].push_back(name);
    }
  }
  return out;
}

SharedRuntimeLoop::Pass Daemon::RuntimePass() {
  SharedRuntimeLoop::Pass pass;
  // Prune only with the products of clean reads: every source clean before and after the
  // products are taken, and no read started in between (CleanReadSource).
  std::vector<CleanReadSource::Mark> before;
  std::vector<CleanReadSource::Mark> after;
  const bool clean = SourcesClean(&before);
  for (const auto& [name, found] : products_.All()) {
    if (found.entry != nullptr) pass.products.push_back(found.entry->product);
  }
  for (const std::string& name : desired_.DeclaredNames()) {
    const std::shared_ptr<const DesiredEntry> entry = desired_.Declared(name);
    if (entry != nullptr && entry->workspace.dedicated &&
        !entry->workspace.dedicated->endpoint_placed) {
      pass.endpoints.insert(entry->workspace.dedicated->endpoint);
    }
  }
  // Placed stacks are on the configured endpoints (docs/placement.md#endpoints).
  if (deps_.config != nullptr) {
    for (const manifests::EndpointConfig& endpoint : deps_.config->stacks.endpoints) {
      pass.endpoints.insert(endpoint.id);
    }
  }
  pass.prune = clean && SourcesClean(&after) && before == after;
  return pass;
}

void Daemon::Tick() {
  deps_.metrics->SetWorkspacesByPhase(reconciler_.PhaseCounts());
  // Backups start with the term's first tick (Begin holds the term's lock, which queueing takes).
  if (backups_ && !backups_->Running()) backups_->Start();
  // A source's products changed (or were read for the first time this term): the API's
  // workspaces naming them are declared (again) and queued.
  if (const std::uint64_t version = products_.Version(); version != products_seen_) {
    products_seen_ = version;
    for (const std::string& name : api_.DeclareApiOwned()) Enqueue(name);
    if (runtimes_) runtimes_->Kick();
    rollouts_.Wake();  // a new revision may start a rollout
  }
  // Every source clean again (or for the first time this term): stale runtimes may go now.
  if (const bool clean = SourcesClean(); clean != sources_clean_) {
    sources_clean_ = clean;
    if (clean && runtimes_) runtimes_->Kick();
  }
  // The first clean read of the term names the shared tenants PgBouncer's files wait for
  // (docs/bindings.md#pgbouncer): until each was reconciled, the files PgBouncer has stay.
  if (sources_clean_ && !pooler_expected_) {
    pooler_expected_ = true;
    if (deps_.stacks != nullptr && deps_.stacks->shared != nullptr) {
      std::set<std::string> shared;
      for (const std::string& name : desired_.DeclaredNames()) {
        const std::shared_ptr<const DesiredEntry> entry = desired_.Declared(name);
        if (entry != nullptr && entry->workspace.mode == manifests::Mode::kShared) {
          shared.insert(name);
        }
      }
      deps_.stacks->shared->ExpectTenants(std::move(shared));
    }
  }
  // History beyond store.retention goes every few minutes (only the leader ticks).
  const TimePoint now = deps_.clock->Now();
  if (now < next_prune_) return;
  next_prune_ = now + options_.prune_interval;
  Outcome<Pruned> pruned = deps_.store->Prune();
  if (!pruned) {
    spdlog::warn("store: pruning history: {}", pruned.failure().message);
  } else if (pruned->events > 0 || pruned->deliveries > 0) {
    spdlog::info("store: pruned {} event(s) and {} webhook delivery(ies) beyond store.retention",
                 pruned->events, pruned->deliveries);
  }
  // Product revisions no workspace, rollout or source needs (rollouts.revisionHistoryLimit).
  const int history = deps_.config != nullptr ? deps_.config->rollouts.revision_history_limit
                                              : manifests::RolloutsConfig{}.revision_history_limit;
  if (Outcome<int> revisions = rollouts_.PruneRevisions(history); !revisions) {
    spdlog::warn("store: pruning product revisions: {}", revisions.failure().message);
  } else if (*revisions > 0) {
    spdlog::info("store: pruned {} product revision(s) beyond rollouts.revisionHistoryLimit ({})",
                 *revisions, history);
  }
}

void Daemon::StopIntake() {
  // A rollout's step in flight finishes first (it writes one row per product).
  rollouts_.Stop();
  health_.Stop();
  // The runtime call in flight returns first (each gateway call has its own timeout).
  if (runtimes_) runtimes_->Stop();
  // A backup or restore in flight finishes first (each tool run is bounded).
  if (backups_) backups_->Stop();
  // A move's step in flight finishes first; an unfinished move is taken up by the next term.
  if (moves_) moves_->Stop();
  std::vector<SourceRunner*> runners;
  {
    const std::lock_guard lock(term_mutex_);
    for (auto& runner : runners_) runners.push_back(runner.get());
  }
  // Outside the lock: a runner may be syncing, and readiness and webhooks take the lock.
  for (SourceRunner* runner : runners) runner->Stop();
}

void Daemon::End() {
  runtimes_.reset();
  {
    const std::lock_guard lock(term_mutex_);
    runners_.clear();
    sources_.clear();
    sync_.reset();
    queue_ = nullptr;
  }
  desired_.Clear();
  products_.Clear();
  {
    // A standby again: its list is reloaded from the store at the next read.
    const std::lock_guard lock(refresh_mutex_);
    refreshed_ = {};
  }
  reconciler_.EndTerm();
  rollouts_.EndTerm();
}

bool Daemon::Enqueue(const std::string& name) {
  const std::lock_guard lock(term_mutex_);
  if (queue_ == nullptr) return false;
  queue_->Add(name);
  return true;
}

void Daemon::RefreshStandbyView() {
  {
    // A term that has begun loaded the view and keeps it current. Not Leading(): the manager
    // leads a moment before Begin has loaded the view, and a read then would find it empty.
    const std::lock_guard lock(term_mutex_);
    if (queue_ != nullptr) return;
  }
  const std::unique_lock lock(refresh_mutex_, std::try_to_lock);
  if (!lock.owns_lock()) return;  // another reader is refreshing: this one serves the last copy
  const auto now = std::chrono::steady_clock::now();
  if (refreshed_ != std::chrono::steady_clock::time_point{} &&
      now - refreshed_ < options_.standby_refresh) {
    return;
  }
  Outcome<std::vector<StoredWorkspace>> stored = deps_.store->ListWorkspaces(std::nullopt);
  Outcome<std::vector<WorkspaceStatus>> statuses = deps_.store->ListStatuses();
  Outcome<std::vector<SuspendOverride>> overrides =
      (deps_.override_store != nullptr ? deps_.override_store : &store_overrides_)
          ->ListOverrides();
  if (!stored || !statuses || !overrides) {
    spdlog::warn("store: refreshing the workspace list: {}",
                 !stored     ? stored.failure().message
                 : !statuses ? statuses.failure().message
                             : overrides.failure().message);
    return;
  }
  overrides_.Load(*overrides);
  fleet_.Reset(*stored, *statuses);
  refreshed_ = now;
}

WorkspaceApi& Daemon::Api() {
  RefreshStandbyView();
  return api_;
}

void Daemon::Observer::SpecChanged(const StoredWorkspace& workspace) {
  daemon_.fleet_.SpecChanged(workspace);
}

void Daemon::Observer::StatusChanged(const WorkspaceStatus& status) {
  daemon_.fleet_.StatusChanged(status);
  daemon_.rollouts_.StatusChanged(status);
  if (const std::optional<Rejection> rejected = daemon_.desired_.Lookup(status.name).rejected) {
    daemon_.fleet_.SetRejectedSource(status.name, rejected->source);
  }
}

void Daemon::Observer::Removed(const std::string& name) {
  daemon_.fleet_.Removed(name);
  daemon_.rollouts_.Removed(name);
  // An override dies with its workspace: a workspace of that name made later starts unsuspended.
  if (daemon_.overrides_.Get(name)) {
    OverrideStore* store = daemon_.deps_.override_store != nullptr ? daemon_.deps_.override_store
                                                                  : &daemon_.store_overrides_;
    if (Outcome<bool> cleared = store->ClearOverride(name); !cleared) {
      spdlog::warn("store: the override of {}: {}", name, cleared.failure().message);
    }
    daemon_.overrides_.Clear(name);
  }
}

WebhookResult Daemon::HandleWebhook(const WebhookRequest& request) {
  std::optional<WebhookResult> answer;
  for (const manifests::SourceConfig& config : deps_.config->sources) {
    if (!config.git) continue;
    auto secret = deps_.webhook_secrets.find(config.name);
    const Secret none;
    WebhookResult result = VerifyWebhook(
        request, secret != deps_.webhook_secrets.end() ? secret->second : none, config.git->branch);
    if (result.verdict == Verdict::kAccepted) {
      const std::lock_guard lock(term_mutex_);
      for (auto& runner : runners_) {
        if (runner->source().Name() == config.name) runner->Wake();
      }
    }
    const auto rank = [](Verdict v) {
      switch (v) {
        case Verdict::kAccepted: return 0;
        case Verdict::kIgnoredBranch:
        case Verdict::kIgnoredEvent: return 1;
        case Verdict::kMalformed: return 2;
        default: return 3;
      }
    };
    if (!answer || rank(result.verdict) < rank(answer->verdict)) answer = result;
  }
  if (!answer) answer = VerifyWebhook(request, Secret(), "");  // no git source: refused
  return *answer;
}

Daemon::ReadinessReport Daemon::Readiness() {
  ReadinessReport report;
  if (Outcome<std::vector<SourceStatus>> probe = deps_.store->ListSourceStatuses(); !probe) {
    report.problems.push_back("store unreachable: " + probe.failure().message);
  }
  if (Leading()) {
    const std::lock_guard lock(term_mutex_);
    for (const auto& runner : runners_) {
      const SourceHealth health = runner->Health();
      const std::string& name = runner->source().Name();
      if (!health.synced_once) {
        report.problems.push_back("source " + name + ": first sync not done");
      } else if (!health.healthy) {
        report.problems.push_back("source " + name + ": " + health.problem);
      }
    }
  }
  report.ready = report.problems.empty();
  return report;
}

}  // namespace tmaster::controller
