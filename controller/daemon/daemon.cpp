#include "controller/daemon/daemon.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <ctime>

#include "common/crypto.hpp"
#include "controller/runtime/deletion_guard.hpp"
#include "controller/sources/dir_watch.hpp"
#include "controller/store/spec_json.hpp"
#include "controller/api/status_json.hpp"
#include "manifests/loader.hpp"
#include "reconcilers/migrations/migrations.hpp"
#include "reconcilers/postgres/model.hpp"
#include "reconcilers/stacks/plan.hpp"
#include "reconcilers/stacks/render.hpp"

namespace tmaster::controller {
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kLastRuns = 10;

std::int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Rfc3339(std::chrono::system_clock::time_point at) {
  return FormatRfc3339Utc(
      std::chrono::duration_cast<std::chrono::seconds>(at.time_since_epoch()).count());
}

/// One condition of DESIGN §9.
struct Condition {
  std::string type;
  std::string status;  ///< True, False, Unknown
  std::string reason;
  std::string message;
  std::string last_transition;
};

std::vector<Condition> ParseConditions(const std::string& text) {
  std::vector<Condition> out;
  boost::system::error_code error;
  json::value value = json::parse(text, error);
  if (error || !value.is_array()) return out;
  for (const json::value& item : value.as_array()) {
    if (!item.is_object()) continue;
    const json::object& o = item.as_object();
    auto field = [&](std::string_view key) -> std::string {
      auto it = o.find(key);
      return it != o.end() && it->value().is_string() ? std::string(it->value().as_string())
                                                      : std::string();
    };
    out.push_back({field("type"), field("status"), field("reason"), field("message"),
                   field("lastTransitionTime")});
  }
  return out;
}

std::string RenderConditions(const std::vector<Condition>& conditions) {
  json::array out;
  for (const Condition& c : conditions) {
    json::object o;
    o["type"] = c.type;
    o["status"] = c.status;
    o["reason"] = c.reason;
    o["message"] = c.message;
    o["lastTransitionTime"] = c.last_transition;
    out.emplace_back(std::move(o));
  }
  return json::serialize(out);
}

/// Keeps each condition's transition time when its status did not change.
void CarryTransitions(std::vector<Condition>& next, const std::vector<Condition>& previous,
                      const std::string& now) {
  for (Condition& c : next) {
    c.last_transition = now;
    for (const Condition& p : previous) {
      if (p.type == c.type && p.status == c.status && !p.last_transition.empty()) {
        c.last_transition = p.last_transition;
      }
    }
  }
}

/// Same conditions apart from transition times.
bool SameConditions(const std::vector<Condition>& a, const std::vector<Condition>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].type != b[i].type || a[i].status != b[i].status || a[i].reason != b[i].reason ||
        a[i].message != b[i].message) {
      return false;
    }
  }
  return true;
}

const Condition* FindCondition(const std::vector<Condition>& conditions, std::string_view type) {
  for (const Condition& c : conditions) {
    if (c.type == type) return &c;
  }
  return nullptr;
}

std::string PrependRun(const std::string& runs_json, const std::string& start, double seconds,
                       const std::string& result, const std::string& reason) {
  boost::system::error_code error;
  json::value parsed = json::parse(runs_json, error);
  json::array runs = !error && parsed.is_array() ? parsed.as_array() : json::array{};
  json::object run;
  run["start"] = start;
  run["durationSeconds"] = std::round(seconds * 1000.0) / 1000.0;
  run["result"] = result;
  run["reason"] = reason;
  runs.insert(runs.begin(), json::value(std::move(run)));
  while (runs.size() > kLastRuns) runs.pop_back();
  return json::serialize(runs);
}

}  // namespace

// --- The pieces a term works with ---------------------------------------------------------------

struct Daemon::ProductEntry {
  manifests::Product product;
  MigrationList migrations = std::vector<migrations::Migration>{};
  Outcome<std::string> stack_template = std::string();
  std::string digest;
};

struct Daemon::DesiredEntry {
  manifests::Workspace workspace;
  std::shared_ptr<const ProductEntry> product;
  std::string source;
  std::string revision;
  std::string spec_digest;
  std::int64_t generation = 0;
};

struct Daemon::Source {
  const manifests::SourceConfig* config = nullptr;
  std::unique_ptr<GitRepo> git;
  std::unique_ptr<DirectoryWatcher> watcher;
  std::mutex mutex;
  std::condition_variable wake_cv;
  bool wake = false;
  bool stopping = false;
  std::atomic<bool> synced_once{false};
  std::atomic<bool> healthy{false};
  std::string problem;  ///< guarded by mutex
  std::int64_t last_sync_unix = 0;  ///< last clean sync this term; guarded by mutex
  std::string applied_revision;
  /// Files parsed by earlier syncs: a change re-parses only the files that changed.
  std::shared_ptr<manifests::ParseCache> parse_cache = manifests::MakeParseCache();
  std::thread thread;

  [[nodiscard]] std::string Kind() const { return config->git ? "git" : "directory"; }
};

/// Cluster catalogs and endpoint stack lists, each observed by one query that many workers
/// share (DESIGN §2). A caller asks for an observation started no earlier than `fresh_after`;
/// concurrent callers wait for the one refresh in flight instead of starting their own.
class Daemon::SnapshotCache {
 public:
  using Cluster = Outcome<postgres::ObservedCluster>;

  std::shared_ptr<const Cluster> ForCluster(const std::string& name,
                                            postgres::PostgresGateway& gateway,
                                            TimePoint fresh_after, const Clock& clock) {
    return Get(clusters_, name, fresh_after, clock, [&] { return gateway.Observe(); });
  }
  std::shared_ptr<const StackList> ForEndpoint(int endpoint, stacks::StackGateway& gateway,
                                               TimePoint fresh_after, const Clock& clock) {
    return Get(endpoints_, endpoint, fresh_after, clock, [&] { return gateway.List(endpoint); });
  }

 private:
  template <class T>
  struct Slot {
    std::shared_ptr<const T> value;
    TimePoint taken{};
    bool refreshing = false;
  };

  template <class Key, class T, class Observe>
  std::shared_ptr<const T> Get(std::map<Key, Slot<T>>& slots, const Key& key,
                               TimePoint fresh_after, const Clock& clock, Observe observe) {
    std::unique_lock lock(mutex_);
    Slot<T>& slot = slots[key];
    while (true) {
      if (slot.value != nullptr && slot.taken >= fresh_after) return slot.value;
      if (!slot.refreshing) break;
      refreshed_.wait(lock);
    }
    slot.refreshing = true;
    const TimePoint started = clock.Now();
    lock.unlock();
    std::shared_ptr<const T> value;
    try {
      value = std::make_shared<const T>(observe());
    } catch (...) {
      lock.lock();
      slot.refreshing = false;
      refreshed_.notify_all();
      throw;
    }
    lock.lock();
    slot.value = value;
    slot.taken = started;
    slot.refreshing = false;
    refreshed_.notify_all();
    return value;
  }

  std::mutex mutex_;
  std::condition_variable refreshed_;
  std::map<std::string, Slot<Cluster>> clusters_;
  std::map<int, Slot<StackList>> endpoints_;
};

// --- Lifecycle ------------------------------------------------------------------------------------

Daemon::Daemon(DaemonDeps deps, DaemonOptions options)
    : deps_(std::move(deps)), options_(std::move(options)) {}

Daemon::~Daemon() { Stop(); }

void Daemon::Stop() {
  {
    const std::lock_guard lock(stop_mutex_);
    stop_ = true;
  }
  stop_cv_.notify_all();
}

void Daemon::Run() {
  while (!stop_) {
    if (deps_.leader_lock != nullptr) {
      Outcome<bool> got = deps_.leader_lock->TryAcquire();
      if (!got || !*got) {
        if (!got) spdlog::warn("leader election: {}", got.failure().message);
        std::unique_lock lock(stop_mutex_);
        stop_cv_.wait_for(lock, options_.leader_poll, [&] { return stop_.load(); });
        continue;
      }
      spdlog::info("leader election: this replica leads");
    }
    Lead();
    if (deps_.leader_lock != nullptr) deps_.leader_lock->Release();
  }
}

void Daemon::Lead() {
  leading_ = true;
  deps_.metrics->SetLeader(true);
  WorkQueueOptions queue_options;
  queue_options.backoff = options_.backoff;
  queue_ = std::make_unique<WorkQueue>(*deps_.clock, *deps_.random, queue_options);
  snapshots_ = std::make_unique<SnapshotCache>();

  bool lost = false;
  if (LoadStored()) {
    for (int i = 0; i < std::max(1, options_.workers); ++i) workers_.emplace_back([this] {
      WorkerLoop();
    });
    StartSources();
    while (!stop_) {
      {
        std::unique_lock lock(stop_mutex_);
        stop_cv_.wait_for(lock, options_.leader_poll, [&] { return stop_.load(); });
      }
      if (stop_) break;
      if (deps_.leader_lock != nullptr) {
        Outcome<bool> held = deps_.leader_lock->StillHeld();
        if (!held || !*held) {
          lost = true;
          spdlog::error("leader election: lost the leader lock ({}); stopping the workers",
                        held ? "session ended" : held.failure().message);
          break;
        }
      }
      UpdateGauges();
    }
  } else {
    lost = true;  // the store is unreachable: step down and try again
    std::unique_lock lock(stop_mutex_);
    stop_cv_.wait_for(lock, options_.leader_poll, [&] { return stop_.load(); });
  }

  // Stop taking work at once; a worker finishes the action it is in, never starts another.
  queue_->ShutDown();
  StopSources();
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
  if (!lost) spdlog::info("stopped: in-flight work drained");
  {
    const std::lock_guard lock(state_mutex_);
    desired_.clear();
    stored_.clear();
    deleting_.clear();
    rejected_.clear();
    statuses_.clear();
    unsaved_.clear();
    last_write_.clear();
  }
  leading_ = false;
  deps_.metrics->SetLeader(false);
}

bool Daemon::LoadStored() {
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
  std::vector<std::string> deleting;
  {
    const std::lock_guard lock(state_mutex_);
    for (WorkspaceStatus& status : *statuses) statuses_[status.name] = std::move(status);
    for (const StoredWorkspace& w : *stored) {
      StoredWorkspace summary = w;
      summary.spec_json.clear();  // the digest says enough; deletion reads the row afresh
      stored_[w.name] = std::move(summary);
      if (w.deleting_since) {
        deleting_.insert(w.name);
        deleting.push_back(w.name);
      }
    }
  }
  for (const std::string& name : deleting) queue_->Add(name);
  spdlog::info("store: {} workspaces, {} being deleted", stored->size(), deleting.size());
  return true;
}

// --- Sources --------------------------------------------------------------------------------------

void Daemon::StartSources() {
  for (const manifests::SourceConfig& config : deps_.config->sources) {
    auto source = std::make_unique<Source>();
    source->config = &config;
    if (config.git) {
      GitRepoOptions git;
      git.url = config.git->url;
      git.branch = config.git->branch;
      git.checkout = deps_.git_cache / config.name;
      git.timeout = config.git->timeout;
      if (auto c = deps_.git_credentials.find(config.name); c != deps_.git_credentials.end()) {
        git.credentials = c->second;
      }
      source->git = std::make_unique<GitRepo>(std::move(git));
    } else if (config.directory) {
      auto watcher = DirectoryWatcher::Start(*config.directory);
      if (watcher) {
        source->watcher = std::move(watcher).value();
      } else {
        spdlog::warn("source {}: {} (falling back to rescanning every {} s)", config.name,
                     watcher.failure().message,
                     std::chrono::duration_cast<std::chrono::seconds>(options_.rescan_interval)
                         .count());
      }
    }
    sources_.push_back(std::move(source));
  }
  for (auto& source : sources_) {
    Source* s = source.get();
    s->thread = std::thread([this, s] { SourceLoop(*s); });
  }
}

void Daemon::StopSources() {
  for (auto& source : sources_) {
    {
      const std::lock_guard lock(source->mutex);
      source->stopping = true;
      if (source->watcher) source->watcher->Interrupt();
    }
    source->wake_cv.notify_all();
  }
  for (auto& source : sources_) {
    if (source->thread.joinable()) source->thread.join();
  }
  const std::lock_guard lock(state_mutex_);
  sources_.clear();
}

void Daemon::SourceLoop(Source& source) {
  Duration retry = 1s;
  while (true) {
    {
      const std::lock_guard lock(source.mutex);
      if (source.stopping) return;
      source.wake = false;
    }
    const bool ok = SyncSource(source);
    Duration wait = retry;
    if (ok) {
      retry = 1s;
      wait = source.git ? Jittered(source.config->git->interval, 0.1, *deps_.random)
                        : options_.rescan_interval;
    } else {
      const Duration cap = source.git ? Duration(source.config->git->interval) : Duration(30s);
      retry = std::min<Duration>(retry * 2, std::max<Duration>(cap, 1s));
      wait = Jittered(wait, 0.1, *deps_.random);
    }
    if (!source.git && !source.watcher) {
      // The folder may have appeared since: watch it from now on.
      if (auto watcher = DirectoryWatcher::Start(*source.config->directory); watcher) {
        const std::lock_guard lock(source.mutex);
        if (!source.stopping) source.watcher = std::move(watcher).value();
      }
    }
    if (source.watcher) {
      source.watcher->WaitForChange(std::chrono::duration_cast<std::chrono::milliseconds>(wait),
                                    options_.debounce);
      continue;
    }
    std::unique_lock lock(source.mutex);
    source.wake_cv.wait_for(lock, wait, [&] { return source.stopping || source.wake; });
  }
}

bool Daemon::SyncSource(Source& source) {
  const manifests::SourceConfig& config = *source.config;
  std::string revision;
  std::filesystem::path root;
  if (source.git) {
    Outcome<std::string> fetched = source.git->Sync();
    if (!fetched) {
      // Never "no manifests": every stored workspace stays as it is.
      spdlog::warn("source {}: {}", config.name, fetched.failure().message);
      PutSourceStatus(source, false, fetched.failure().reason, fetched.failure().message, false);
      return false;
    }
    revision = *fetched;
    if (revision == source.applied_revision && source.healthy) return true;
    root = source.git->checkout() / config.git->path;
  } else {
    root = *config.directory;
  }
  manifests::LoadOptions load;
  load.reserved_subdomains = deps_.config->reserved_subdomains;
  load.known_clusters.emplace();
  for (const auto& cluster : deps_.config->clusters) load.known_clusters->insert(cluster.name);
  load.parse_cache = source.parse_cache;
  const manifests::Fleet fleet = manifests::LoadPaths({root}, load);
  if (!ApplySync(source, revision, fleet)) return false;
  source.applied_revision = revision;
  return true;
}

void Daemon::PutSourceStatus(Source& source, bool ready, const std::string& reason,
                             const std::string& message, bool synced) {
  const std::int64_t now = UnixNow();
  SourceStatus status;
  status.name = source.config->name;
  status.kind = source.Kind();
  status.revision = source.applied_revision;
  status.ready = ready;
  status.reason = reason;
  status.message = message;
  status.last_attempt_unix = now;
  if (synced) deps_.metrics->SetSourceLastSync(status.name, static_cast<double>(now));
  {
    const std::lock_guard lock(source.mutex);
    if (synced) source.last_sync_unix = now;
    status.last_sync_unix = source.last_sync_unix;
    source.problem = ready ? "" : reason + ": " + message;
  }
  source.healthy = ready;
  source.synced_once = true;
  if (Outcome<Done> put = deps_.store->PutSourceStatus(status); !put) {
    spdlog::warn("store: source {} status: {}", status.name, put.failure().message);
  }
}

bool Daemon::ApplySync(Source& source, const std::string& revision,
                       const manifests::Fleet& fleet) {
  const std::string& source_name = source.config->name;
  if (!revision.empty()) source.applied_revision = revision;

  std::map<std::string, std::shared_ptr<const ProductEntry>> products;
  for (const manifests::Product& product : fleet.products) {
    auto entry = std::make_shared<ProductEntry>();
    entry->product = product;
    if (!product.migrations.empty()) entry->migrations = migrations::LoadDirectory(product.migrations);
    if (!product.stack_template.empty()) entry->stack_template = stacks::ReadStackTemplate(product);
    entry->digest = ProductDigest(product, entry->migrations, entry->stack_template);
    products.emplace(product.name, std::move(entry));
  }

  std::vector<std::string> enqueue;
  std::set<std::string> parsed;
  for (const manifests::Workspace& workspace : fleet.workspaces) {
    parsed.insert(workspace.name);
    auto product = products.find(workspace.product);
    if (product == products.end()) continue;  // the loader rejects these; defensive
    const std::string spec_json = WorkspaceToJson(workspace);
    const std::string digest = crypto::Sha256Hex(spec_json);
    std::shared_ptr<const DesiredEntry> existing;
    bool returning = false;
    {
      const std::lock_guard lock(state_mutex_);
      if (auto it = desired_.find(workspace.name); it != desired_.end()) existing = it->second;
      returning = deleting_.count(workspace.name) != 0;
    }
    if (existing && existing->source != source_name) {
      spdlog::warn("source {}: workspace {} is already declared by source {}; ignored",
                   source_name, workspace.name, existing->source);
      continue;
    }
    // What the store already holds: the previous sync's entry, or (first sync of a term) the row
    // read at the start of the term, so a restart re-saves nothing that did not change.
    std::optional<StoredWorkspace> known;
    if (existing) {
      known = StoredWorkspace{workspace.name, existing->source, existing->revision, "",
                              existing->spec_digest, existing->generation, std::nullopt};
    } else {
      const std::lock_guard lock(state_mutex_);
      if (auto it = stored_.find(workspace.name); it != stored_.end()) known = it->second;
    }
    const bool spec_changed =
        !known || known->spec_digest != digest || known->source != source_name || returning;
    const bool product_changed = existing && existing->product->digest != product->second->digest;
    auto entry = std::make_shared<DesiredEntry>();
    entry->workspace = workspace;
    entry->product = product->second;
    entry->source = source_name;
    // The revision that last changed this spec: a commit that touches other files changes
    // neither the workspace nor its row (the source's own status carries the fetched revision).
    entry->revision = spec_changed ? revision : known->revision;
    entry->spec_digest = digest;
    if (returning) {
      if (Outcome<StoredWorkspace> cancelled = deps_.store->CancelDeleting(workspace.name);
          !cancelled) {
        PutSourceStatus(source, false, cancelled.failure().reason, cancelled.failure().message,
                        false);
        return false;
      }
    }
    if (spec_changed) {
      Outcome<StoredWorkspace> stored =
          deps_.store->UpsertSpec(workspace.name, source_name, revision, spec_json);
      if (!stored) {
        spdlog::warn("source {}: store: {}", source_name, stored.failure().message);
        PutSourceStatus(source, false, stored.failure().reason,
                        "saving workspace " + workspace.name + ": " + stored.failure().message,
                        false);
        return false;
      }
      entry->generation = stored->generation;
    } else {
      entry->generation = known->generation;
    }
    {
      const std::lock_guard lock(state_mutex_);
      desired_[workspace.name] = entry;
      rejected_.erase(workspace.name);
      if (returning) deleting_.erase(workspace.name);
    }
    if (returning) {
      EmitEvent(workspace.name, "Normal", "DeletionCancelled",
                "the manifest is back in source " + source_name + "; deletion cancelled");
    }
    // Changed, or first seen this term (a new leader re-checks everything once).
    if (spec_changed || product_changed || !existing) enqueue.push_back(workspace.name);
  }

  for (const manifests::RejectedWorkspace& rejected : fleet.rejected) {
    parsed.insert(rejected.name);
    {
      const std::lock_guard lock(state_mutex_);
      // The last valid spec stays in the store; nothing is reconciled (or deleted) from an
      // invalid document.
      desired_.erase(rejected.name);
      rejected_[rejected.name] = source_name;
    }
    WorkspaceResult result;
    result.name = rejected.name;
    result.phase = Phase::kStalled;
    result.reason = rejected.reason;
    result.message = rejected.message + " (the last valid spec and its database are kept)";
    result.failure_kind = FailureKind::kStalled;
    std::int64_t generation = 0;
    {
      const std::lock_guard lock(state_mutex_);
      if (auto it = statuses_.find(rejected.name); it != statuses_.end()) {
        generation = it->second.observed_generation;
      }
    }
    Record(rejected.name, result,
           {.generation = generation,
            .revision = revision,
            .started = std::chrono::system_clock::now(),
            .seconds = 0,
            .drift = false,
            .dedicated = false,
            .next_retry_unix = std::nullopt});
  }

  bool ready = true;
  std::string reason = "Synced";
  std::string message;
  if (fleet.HasErrors()) {
    ready = false;
    reason = "InvalidManifests";
    int errors = 0;
    std::string first;
    for (const manifests::Diagnostic& d : fleet.diagnostics) {
      if (d.severity != manifests::Diagnostic::Severity::kError) continue;
      if (errors++ == 0) first = d.Format();
    }
    message = std::to_string(errors) + " invalid document(s), nothing deleted; first: " + first;
  } else {
    // A clean parse: workspaces the store holds from this source but the parse lacks go.
    Outcome<std::vector<StoredWorkspace>> stored = deps_.store->ListWorkspaces(source_name);
    if (!stored) {
      PutSourceStatus(source, false, stored.failure().reason, stored.failure().message, false);
      return false;
    }
    std::set<std::string> live;
    for (const StoredWorkspace& w : *stored) {
      if (!w.deleting_since) live.insert(w.name);
    }
    const GuardDecision decision =
        DecideDeletions(live, parsed, options_.max_deletions_per_sync, /*confirmed=*/false);
    if (!decision.allowed) {
      ready = false;
      reason = decision.reason;
      message = decision.message;
    }
    for (const std::string& name : decision.to_delete) {
      Outcome<StoredWorkspace> marked = deps_.store->MarkDeleting(name);
      if (!marked) {
        PutSourceStatus(source, false, marked.failure().reason, marked.failure().message, false);
        return false;
      }
      {
        const std::lock_guard lock(state_mutex_);
        desired_.erase(name);
        deleting_.insert(name);
      }
      EmitEvent(name, "Normal", "Deleting",
                "the manifest is gone from source " + source_name +
                    (revision.empty() ? "" : " at revision " + revision.substr(0, 12)) +
                    "; running its reclaim policy");
      enqueue.push_back(name);
    }
    if (ready) {
      message = std::to_string(fleet.workspaces.size()) + " workspace(s)" +
                (revision.empty() ? "" : " at revision " + revision);
    }
  }
  PutSourceStatus(source, ready, reason, message, ready || reason == kDeletionGuardReason);
  if (!ready) spdlog::warn("source {}: {}: {}", source_name, reason, message);
  for (const std::string& name : enqueue) queue_->Add(name);
  return true;
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
      const std::lock_guard lock(state_mutex_);
      for (auto& source : sources_) {
        if (source->config != &config) continue;
        {
          const std::lock_guard source_lock(source->mutex);
          source->wake = true;
        }
        source->wake_cv.notify_all();
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
  if (leading_) {
    const std::lock_guard lock(state_mutex_);
    for (const auto& source : sources_) {
      if (!source->synced_once) {
        report.problems.push_back("source " + source->config->name + ": first sync not done");
        continue;
      }
      if (!source->healthy) {
        const std::lock_guard source_lock(source->mutex);
        report.problems.push_back("source " + source->config->name + ": " + source->problem);
      }
    }
  }
  report.ready = report.problems.empty();
  return report;
}

// --- Workers --------------------------------------------------------------------------------------

void Daemon::WorkerLoop() {
  while (std::optional<std::string> name = queue_->Get()) {
    try {
      Reconcile(*name);
    } catch (const std::exception& error) {
      // Last resort (STYLE.md): log, count, retry as transient.
      spdlog::error("workspace {}: unexpected error: {}", *name, error.what());
      deps_.metrics->IncReconcile("failure");
      queue_->AddRateLimited(*name);
    }
    queue_->Done(*name);
  }
}

void Daemon::Reconcile(const std::string& name) {
  std::shared_ptr<const DesiredEntry> entry;
  bool deleting = false;
  {
    const std::lock_guard lock(state_mutex_);
    deleting = deleting_.count(name) != 0;
    if (auto it = desired_.find(name); it != desired_.end()) entry = it->second;
  }
  if (deleting) {
    ReconcileDeletion(name);
    return;
  }
  if (!entry) {
    queue_->Forget(name);  // rejected, or gone: nothing to converge
    return;
  }
  ReconcileLive(name, *entry);
}

void Daemon::ReconcileLive(const std::string& name, const DesiredEntry& entry) {
  const auto started = std::chrono::system_clock::now();
  const TimePoint t0 = deps_.clock->Now();
  TimePoint fresh_after = t0 - options_.snapshot_max_age;
  std::optional<WorkspaceStatus> previous;
  {
    const std::lock_guard lock(state_mutex_);
    if (auto it = last_write_.find(name); it != last_write_.end()) {
      fresh_after = std::max(fresh_after, it->second);
    }
    if (auto it = statuses_.find(name); it != statuses_.end()) previous = it->second;
  }
  const manifests::Workspace& workspace = entry.workspace;
  WorkspaceInputs inputs;
  inputs.workspace = &workspace;
  inputs.product = &entry.product->product;
  inputs.migrations = &entry.product->migrations;
  std::shared_ptr<const SnapshotCache::Cluster> observed;
  std::shared_ptr<const StackList> stack_list;
  if (auto gateway = deps_.gateways.find(workspace.database.cluster);
      gateway != deps_.gateways.end()) {
    inputs.gateway = gateway->second;
    observed = snapshots_->ForCluster(gateway->first, *gateway->second, fresh_after, *deps_.clock);
    inputs.observed = observed.get();
  }
  if (workspace.dedicated && deps_.stacks != nullptr && deps_.stacks->gateway != nullptr) {
    stack_list = snapshots_->ForEndpoint(workspace.dedicated->endpoint, *deps_.stacks->gateway,
                                         fresh_after, *deps_.clock);
    inputs.stack_list = stack_list.get();
    inputs.stack_template = &entry.product->stack_template;
  }
  const WorkspaceResult result =
      ReconcileWorkspace(inputs, *deps_.master_key, {.workers = 1}, deps_.stacks);
  if (result.wrote) {
    const std::lock_guard lock(state_mutex_);
    last_write_[name] = deps_.clock->Now();
  }
  const double seconds = std::chrono::duration<double>(deps_.clock->Now() - t0).count();
  // Drift: the spec was already converged at this generation, yet something had to change.
  const bool drift = previous && previous->observed_generation == entry.generation &&
                     (previous->phase == "Ready" || previous->phase == "Suspended");
  RunInfo run{.generation = entry.generation,
              .revision = entry.revision,
              .started = started,
              .seconds = seconds,
              .drift = drift,
              .dedicated = workspace.dedicated.has_value(),
              .next_retry_unix = std::nullopt};

  deps_.metrics->ObserveReconcileDuration(seconds);
  if (result.ready) {
    deps_.metrics->IncReconcile("success");
    if (drift) {
      for (const std::string& kind : result.applied_kinds) deps_.metrics->IncDriftCorrected(kind);
    }
    queue_->Succeeded(name, options_.resync_interval);
  } else if (result.failure_kind == FailureKind::kStalled) {
    deps_.metrics->IncReconcile("stalled");
    // No retry storm: a human must act; look again at the next resync, or at once on a change.
    queue_->Forget(name);
    queue_->AddAfter(name, Jittered(options_.resync_interval, 0.1, *deps_.random));
  } else {
    deps_.metrics->IncReconcile("failure");
    const Duration delay = queue_->AddRateLimited(name);
    run.next_retry_unix =
        UnixNow() + std::chrono::duration_cast<std::chrono::seconds>(delay).count();
  }
  Record(name, result, run);
}

void Daemon::Record(const std::string& name, const WorkspaceResult& result, const RunInfo& run) {
  const std::int64_t generation = run.generation;
  const std::string& revision = run.revision;
  const bool drift = run.drift;
  const std::string now = Rfc3339(std::chrono::system_clock::now());
  std::optional<WorkspaceStatus> previous;
  bool unsaved = false;
  {
    const std::lock_guard lock(state_mutex_);
    if (auto it = statuses_.find(name); it != statuses_.end()) previous = it->second;
    unsaved = unsaved_.count(name) != 0;
  }
  const std::vector<Condition> before =
      previous ? ParseConditions(previous->conditions_json) : std::vector<Condition>{};

  const bool failed = !result.ready;
  const bool stalled = failed && result.failure_kind == FailureKind::kStalled;
  std::vector<Condition> conditions;
  conditions.push_back({"Ready", failed ? "False" : "True", result.reason, result.message, ""});
  conditions.push_back({"Reconciling", failed && !stalled ? "True" : "False",
                        failed && !stalled ? "ProgressingWithRetry" : "Idle",
                        failed && !stalled ? "retrying: " + result.message : "", ""});
  conditions.push_back({"Stalled", stalled ? "True" : "False", stalled ? result.reason : "Idle",
                        stalled ? result.message : "", ""});
  const auto narrow = [&](const std::string& type, bool reached) {
    if (failed && result.failed_condition == type) {
      conditions.push_back({type, "False", result.reason, result.message, ""});
    } else if (!reached) {
      conditions.push_back({type, "Unknown", "NotReached", "an earlier step failed", ""});
    } else {
      conditions.push_back({type, "True", "Succeeded", "", ""});
    }
  };
  const bool database_ok = !failed || result.failed_condition == "MigrationsApplied" ||
                           result.failed_condition == "StackReady";
  const bool rejected = failed && result.failed_condition.empty();
  if (!rejected) {
    narrow("DatabaseReady", true);
    narrow("MigrationsApplied", database_ok);
    if (run.dedicated) {
      narrow("StackReady", !failed || result.failed_condition == "StackReady");
    }
  }
  // A run that found nothing to do keeps the words of the run that converged it, so a resync
  // does not rewrite a status that says the same thing ("converged with 3 actions" vs "up to
  // date").
  const Condition* was_ready_before = FindCondition(before, "Ready");
  if (!failed && result.applied.empty() && previous && was_ready_before != nullptr &&
      was_ready_before->status == "True" && previous->observed_generation == generation &&
      previous->phase == ToString(result.phase)) {
    conditions[0].reason = was_ready_before->reason;
    conditions[0].message = was_ready_before->message;
  }
  CarryTransitions(conditions, before, now);

  WorkspaceStatus status;
  status.name = name;
  // kstatus: observedGeneration is the generation this status describes; a rejected document
  // has no new generation, so the last one stays.
  status.observed_generation =
      rejected ? (previous ? previous->observed_generation : 0) : generation;
  status.phase = ToString(result.phase);
  status.conditions_json = RenderConditions(conditions);
  status.last_error = failed ? result.reason + ": " + result.message : "";
  status.revision = result.ready ? revision : (previous ? previous->revision : revision);
  status.last_runs_json = previous ? previous->last_runs_json : "[]";
  status.next_retry_unix = run.next_retry_unix;

  const bool changed = !previous || previous->phase != status.phase ||
                       previous->next_retry_unix != status.next_retry_unix ||
                       previous->observed_generation != status.observed_generation ||
                       previous->revision != status.revision ||
                       !SameConditions(before, conditions);
  // A rejected document is re-read on every sync: only a change of its status is worth a write.
  const bool did_something = !result.applied.empty() || (failed && !rejected);
  if (did_something) {
    status.last_runs_json =
        PrependRun(status.last_runs_json, Rfc3339(run.started), run.seconds,
                   failed ? (stalled ? "Stalled" : "Failed") : "Succeeded", result.reason);
  }
  for (std::size_t i = 0; i < result.applied.size(); ++i) {
    const std::string kind = i < result.applied_kinds.size() ? result.applied_kinds[i] : "Applied";
    EmitEvent(name, "Normal", drift ? "DriftCorrected" : kind,
              drift ? kind + " (drift corrected): " + result.applied[i] : result.applied[i]);
  }
  const Condition* was_ready = FindCondition(before, "Ready");
  if (failed && (was_ready == nullptr || was_ready->reason != result.reason ||
                 was_ready->message != result.message)) {
    EmitEvent(name, "Warning", result.reason, result.message);
  }
  if (!failed && (was_ready == nullptr || was_ready->status != "True")) {
    EmitEvent(name, "Normal", status.phase, result.message);
  }
  if (!changed && !did_something && !unsaved) return;  // nothing new: no write

  {
    const std::lock_guard lock(state_mutex_);
    statuses_[name] = status;
  }
  Outcome<Done> put = deps_.store->PutStatus(status);
  const std::lock_guard lock(state_mutex_);
  if (put) {
    unsaved_.erase(name);
  } else {
    unsaved_.insert(name);
    spdlog::warn("store: status of {}: {}", name, put.failure().message);
  }
}

void Daemon::ReconcileDeletion(const std::string& name) {
  const TimePoint t0 = deps_.clock->Now();
  auto fail = [&](const Failure& failure) {
    deps_.metrics->IncReconcile(failure.kind == FailureKind::kStalled ? "stalled" : "failure");
    const Duration delay = queue_->AddRateLimited(name);
    PutDeletingStatus(name, failure.reason, "deleting: " + failure.message,
                      UnixNow() + std::chrono::duration_cast<std::chrono::seconds>(delay).count());
    if (failure.kind == FailureKind::kStalled) EmitEvent(name, "Warning", failure.reason, failure.message);
  };
  PutDeletingStatus(name, "Deleting", "the manifest was removed; running the reclaim policy",
                    std::nullopt);

  Outcome<std::optional<StoredWorkspace>> stored = deps_.store->Get(name);
  if (!stored) return fail(stored.failure());
  if (!*stored) {
    const std::lock_guard lock(state_mutex_);
    deleting_.erase(name);
    statuses_.erase(name);
    return;
  }
  Outcome<ReclaimSpec> spec = ReclaimSpecFromJson((*stored)->spec_json);
  if (!spec) return fail(spec.failure());
  std::vector<std::string> done;

  // The stack first: it is what connects to the database.
  if (spec->endpoint && deps_.stacks != nullptr && deps_.stacks->gateway != nullptr) {
    Outcome<std::vector<stacks::ObservedStack>> list = deps_.stacks->gateway->List(*spec->endpoint);
    if (!list) return fail(list.failure());
    const stacks::ObservedStack* found =
        stacks::FindStack(*list, *spec->endpoint, stacks::StackName(name));
    std::optional<stacks::LedgerEntry> entry;
    if (deps_.stacks->ledger != nullptr) entry = deps_.stacks->ledger->Get(name);
    if (found != nullptr && stacks::IsOurs(name, *found, entry)) {
      if (Status deleted = DeleteUndeclaredStack(*deps_.stacks, name, *found, done); !deleted) {
        return fail(deleted.failure());
      }
    }
  }

  auto gateway = deps_.gateways.find(spec->cluster);
  if (gateway == deps_.gateways.end()) {
    return fail(Failure::Stalled("InvalidReference", "workspace " + name + ": cluster \"" +
                                                         spec->cluster + "\" is not configured"));
  }
  const postgres::ReclaimTarget target{name, spec->cluster, spec->database, spec->role,
                                       spec->policy};
  // Always a fresh observation: deletion must not act on a stale catalog.
  Outcome<postgres::ObservedCluster> observed = gateway->second->Observe();
  if (!observed) return fail(observed.failure());
  const postgres::Plan plan = postgres::MakeReclaimPlan(target, *observed);
  if (plan.blocked) return fail(*plan.blocked);
  for (const postgres::Action& action : plan.actions) {
    Outcome<postgres::ApplyResult> applied = gateway->second->Apply(action);
    if (!applied) return fail(applied.failure());
    done.push_back(postgres::Describe(action));
  }
  {
    const std::lock_guard lock(state_mutex_);
    last_write_[name] = deps_.clock->Now();
  }
  for (const std::string& line : done) EmitEvent(name, "Normal", "Reclaimed", line);
  const bool retain = spec->policy == manifests::ReclaimPolicy::kRetain;
  EmitEvent(name, "Normal", retain ? "Retained" : "Deleted",
            retain ? "reclaim policy Retain: database \"" + spec->database +
                         "\" kept, role \"" + spec->role + "\" set NOLOGIN"
                   : "reclaim policy Delete: database \"" + spec->database + "\" and role \"" +
                         spec->role + "\" dropped");
  Outcome<bool> removed = deps_.store->Remove(name);
  if (!removed) return fail(removed.failure());
  {
    const std::lock_guard lock(state_mutex_);
    deleting_.erase(name);
    statuses_.erase(name);
    unsaved_.erase(name);
  }
  deps_.metrics->IncReconcile("success");
  deps_.metrics->ObserveReconcileDuration(
      std::chrono::duration<double>(deps_.clock->Now() - t0).count());
  queue_->Forget(name);
}

void Daemon::PutDeletingStatus(const std::string& name, const std::string& reason,
                               const std::string& message, std::optional<std::int64_t> next_retry) {
  const std::string now = Rfc3339(std::chrono::system_clock::now());
  WorkspaceStatus status;
  {
    const std::lock_guard lock(state_mutex_);
    if (auto it = statuses_.find(name); it != statuses_.end()) status = it->second;
  }
  if (status.phase == "Deleting" && status.next_retry_unix == next_retry &&
      status.last_error == (next_retry ? reason + ": " + message : "")) {
    return;  // already says so
  }
  const std::vector<Condition> before = ParseConditions(status.conditions_json);
  std::vector<Condition> conditions{
      {"Ready", "False", reason, message, ""},
      {"Reconciling", "True", "Deleting", message, ""},
  };
  CarryTransitions(conditions, before, now);
  status.name = name;
  status.phase = "Deleting";
  status.conditions_json = RenderConditions(conditions);
  status.last_error = next_retry ? reason + ": " + message : "";
  status.next_retry_unix = next_retry;
  {
    const std::lock_guard lock(state_mutex_);
    statuses_[name] = status;
  }
  if (Outcome<Done> put = deps_.store->PutStatus(status); !put) {
    spdlog::warn("store: status of {}: {}", name, put.failure().message);
  }
}

void Daemon::EmitEvent(const std::string& workspace, const std::string& type,
                       const std::string& reason, const std::string& message) {
  Event event;
  event.workspace = workspace;
  event.type = type;
  event.reason = reason;
  event.message = message;
  if (type == "Warning") {
    spdlog::warn("workspace {}: {}: {}", workspace, reason, message);
  } else {
    spdlog::info("workspace {}: {}: {}", workspace, reason, message);
  }
  if (Outcome<std::int64_t> id = deps_.store->AppendEvent(event); !id) {
    spdlog::warn("store: event of {}: {}", workspace, id.failure().message);
  }
}

void Daemon::UpdateGauges() {
  const WorkQueueStats stats = queue_->Stats();
  deps_.metrics->SetWorkqueueDepth(static_cast<double>(stats.depth));
  deps_.metrics->SetWorkqueueRetries(stats.retries);
  std::map<std::string, int> phases;
  const std::lock_guard lock(state_mutex_);
  for (const auto& [name, status] : statuses_) {
    if (deleting_.count(name) != 0) continue;
    ++phases[status.phase];
  }
  for (const auto& [name, entry] : desired_) {
    if (statuses_.count(name) == 0) ++phases["Pending"];
  }
  phases["Deleting"] += static_cast<int>(deleting_.size());
  deps_.metrics->SetWorkspacesByPhase(phases);
}

}  // namespace tmaster::controller
