#include "controller/daemon/rollout_driver.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>

#include "common/time.hpp"
#include "controller/rollouts/state_json.hpp"

namespace tmaster::controller {
namespace {

namespace json = boost::json;
namespace ro = rollouts;

/// Where a product's rollout events are recorded (the events' object column).
std::string Subject(const std::string& product) { return "product/" + product; }

json::value OptionalTime(const std::optional<std::int64_t>& unix_seconds) {
  if (!unix_seconds) return nullptr;
  return json::value(FormatRfc3339Utc(*unix_seconds));
}

json::object CountsJson(const ro::Counts& counts) {
  return {{"pending", counts.pending},
          {"inProgress", counts.in_progress},
          {"ready", counts.ready},
          {"failed", counts.failed}};
}

/// Appends `next` to the transition being built from several steps (joins, reports, a tick).
void Merge(ro::Transition& into, ro::Transition next) {
  if (!next.changed) return;
  into.state = std::move(next.state);
  into.changed = true;
  for (ro::Event& event : next.events) into.events.push_back(std::move(event));
  for (ro::SetTarget& target : next.targets) into.targets.push_back(std::move(target));
  for (ro::Restore& restore : next.restores) into.restores.push_back(std::move(restore));
}

ro::WorkspaceEntry* EntryOf(ro::RolloutState& state, const std::string& name) {
  for (ro::WorkspaceEntry& entry : state.workspaces) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

/// The event a verb records when the state machine has none of its own.
const char* VerbEvent(const std::string& verb) {
  if (verb == "pause") return "RolloutPaused";
  if (verb == "resume") return "RolloutResumed";
  if (verb == "promote") return "RolloutPromoted";
  return "";
}

constexpr const char* kVerbs = "pause, resume, promote, abort, undo";

}  // namespace

ro::Policy PolicyOf(const manifests::RolloutSpec& spec) {
  ro::Policy policy;
  for (const manifests::RolloutWave& wave : spec.waves) {
    if (wave.percent) {
      policy.waves.emplace_back(ro::PercentWave{*wave.percent});
    } else {
      policy.waves.emplace_back(ro::SelectorWave{wave.match_labels});
    }
  }
  policy.pause_between_waves = spec.pause_between_waves;
  policy.max_unavailable = spec.max_unavailable;
  policy.failure_budget = spec.failure_budget;
  policy.ready_timeout = spec.ready_timeout;
  return policy;
}

ro::Observed ObservedOf(const WorkspaceStatus& status, const ro::RolloutState& state,
                        const ro::WorkspaceEntry& entry) {
  ro::Observed observed;
  observed.revision_applied = status.product_revision;
  // Suspended and converged counts as converged (its Ready condition says so).
  observed.ready = status.phase == "Ready" || status.phase == "Suspended";
  observed.failed = status.phase == "Degraded" || status.phase == "Stalled";
  observed.reason = status.last_error;
  observed.backup = status.pre_migration_backup;
  // Only a pass that applied this rollout's revision for the entry's current attempt: never a
  // reading of the old revision, nor the failure of the attempt before a retry.
  observed.observed_after_target = entry.attempt > 0 &&
                                   status.attempted_revision == state.revision &&
                                   status.rollout_attempt == entry.attempt;
  return observed;
}

RolloutDriver::RolloutDriver(RolloutDriverDeps deps, RolloutDriverOptions options)
    : deps_(std::move(deps)), options_(options) {}

RolloutDriver::~RolloutDriver() { Stop(); }

std::int64_t RolloutDriver::Now() const { return deps_.now_unix ? deps_.now_unix() : UnixNow(); }

Status RolloutDriver::BeginTerm(const std::vector<WorkspaceStatus>& statuses) {
  Outcome<std::vector<StoredRollout>> stored = deps_.store->ListRollouts();
  if (!stored) return stored.failure();
  std::vector<std::string> products;
  {
    const std::lock_guard lock(mutex_);
    rollouts_.clear();
    stored_versions_.clear();
    refused_.clear();
    for (const StoredRollout& row : *stored) {
      // Written over only with this version: a row that cannot be read is replaced by the next
      // rollout of its product, never half-trusted.
      stored_versions_[row.product] = row.version;
      Outcome<ro::RolloutState> state = ro::StateFromJson(row.state_json);
      if (!state) {
        spdlog::error("rollout of product {}: {} (the next revision starts a new rollout)",
                      row.product, state.failure().message);
        continue;
      }
      state->version = row.version;
      rollouts_[row.product] = std::move(*state);
      products.push_back(row.product);
    }
    statuses_.clear();
    for (const WorkspaceStatus& status : statuses) Keep(status);
  }
  for (const std::string& product : products) PublishMetric(product);
  return Ok();
}

void RolloutDriver::EndTerm() {
  const std::lock_guard lock(mutex_);
  for (const auto& [product, state] : rollouts_) {
    if (deps_.metrics != nullptr) deps_.metrics->SetRolloutWorkspaces(product, {});
  }
  rollouts_.clear();
  stored_versions_.clear();
  statuses_.clear();
  refused_.clear();
}

void RolloutDriver::Start() {
  {
    const std::lock_guard lock(wake_mutex_);
    if (thread_.joinable()) return;
    stopping_ = false;
  }
  thread_ = std::thread([this] { Loop(); });
}

void RolloutDriver::Stop() {
  {
    const std::lock_guard lock(wake_mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void RolloutDriver::Wake() {
  {
    const std::lock_guard lock(wake_mutex_);
    woken_ = true;
  }
  wake_.notify_all();
}

void RolloutDriver::Loop() {
  std::unique_lock lock(wake_mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, options_.interval, [this] { return woken_ || stopping_; });
    if (stopping_) break;
    woken_ = false;
    lock.unlock();
    Step();
    lock.lock();
    // A burst of statuses is one step: wait a little before the next, unless stopping.
    wake_.wait_for(lock, options_.min_interval, [this] { return stopping_; });
  }
}

void RolloutDriver::Keep(const WorkspaceStatus& status) {
  // Only what a rollout reads: the conditions and runs stay with the fleet view.
  WorkspaceStatus& kept = statuses_[status.name];
  kept.name = status.name;
  kept.phase = status.phase;
  kept.last_error = status.last_error;
  kept.product_revision = status.product_revision;
  kept.attempted_revision = status.attempted_revision;
  kept.rollout_attempt = status.rollout_attempt;
  kept.pre_migration_backup = status.pre_migration_backup;
}

void RolloutDriver::StatusChanged(const WorkspaceStatus& status) {
  {
    const std::lock_guard lock(mutex_);
    Keep(status);
  }
  Wake();
}

void RolloutDriver::Removed(const std::string& name) {
  {
    const std::lock_guard lock(mutex_);
    statuses_.erase(name);
  }
  Wake();
}

Outcome<int> RolloutDriver::PruneRevisions(int history) {
  // What must stay, read under the lock; the store is asked outside it.
  std::set<int> in_status;
  std::map<std::string, std::set<int>> in_rollout;
  {
    const std::lock_guard lock(mutex_);
    for (const auto& [name, status] : statuses_) {
      in_status.insert(status.product_revision);
      in_status.insert(status.attempted_revision);
    }
    for (const auto& [product, state] : rollouts_) {
      std::set<int>& keep = in_rollout[product];
      keep.insert(state.revision);
      keep.insert(state.previous_revision);
      for (const ro::WorkspaceEntry& entry : state.workspaces) keep.insert(entry.from_revision);
    }
  }
  in_status.erase(0);
  int pruned = 0;
  for (const auto& [product, found] : deps_.products->All()) {
    // Not numbered yet (its revision was not recorded): nothing is known to be current.
    if (found.entry == nullptr || found.entry->revision <= 0) continue;
    std::set<int> keep = in_status;
    keep.insert(found.entry->revision);
    if (const auto it = in_rollout.find(product); it != in_rollout.end()) {
      keep.insert(it->second.begin(), it->second.end());
    }
    Outcome<int> gone = deps_.store->PruneRevisions(product, history, keep);
    if (!gone) return gone.failure();
    pruned += *gone;
  }
  return pruned;
}

void RolloutDriver::Step() {
  const std::int64_t now = Now();
  // Each product's members once per step, before the lock (the desired state has its own).
  std::map<std::string, Members> members;
  for (const std::string& name : deps_.desired->DeclaredNames()) {
    const std::shared_ptr<const DesiredEntry> entry = deps_.desired->Declared(name);
    if (entry == nullptr) continue;
    Members& of = members[entry->workspace.product];
    of.list.push_back({name, entry->workspace.labels});
    if (entry->workspace.dedicated) {
      of.hosts[name] = entry->workspace.subdomain + "." + deps_.base_domain;
    }
  }
  Effects effects;
  {
    const std::lock_guard lock(mutex_);
    for (const auto& [product, found] : deps_.products->All()) {
      if (found.entry == nullptr) continue;
      StepProduct(product, *found.entry, members[product], now, effects);
    }
  }
  Carry(std::move(effects));
}

std::optional<ro::Observed> RolloutDriver::Observe(const WorkspaceStatus& status,
                                                   const ro::RolloutState& state,
                                                   const ro::WorkspaceEntry& entry,
                                                   const manifests::RolloutSpec& spec,
                                                   const Members& members) {
  ro::Observed observed = ObservedOf(status, state, entry);
  const bool gated = spec.health_check && deps_.health != nullptr &&
                     observed.observed_after_target && observed.ready && !observed.failed &&
                     observed.revision_applied == state.revision;
  const auto host = members.hosts.find(entry.name);
  if (!gated || host == members.hosts.end()) return observed;
  // Its own status says Ready on the new revision: now its application must answer.
  const HealthGate::Result gate = deps_.health->Check(
      entry.name + "#" + std::to_string(state.revision) + "#" + std::to_string(entry.attempt),
      HealthTargetFor(deps_.health_base_url, host->second, spec.health_check->path),
      spec.health_check->timeout);
  if (gate.verdict == HealthGate::Verdict::kWaiting) return std::nullopt;
  if (gate.verdict == HealthGate::Verdict::kFailed) {
    observed.ready = false;
    observed.failed = true;
    observed.reason = gate.reason;
  }
  return observed;
}

void RolloutDriver::StepProduct(const std::string& product, const ProductEntry& entry,
                                const Members& members, std::int64_t now, Effects& effects) {
  const auto it = rollouts_.find(product);
  const bool running = it != rollouts_.end() && !ro::Ended(it->second.phase);
  if (!entry.product.rollout) {
    // Without a policy every workspace follows the product at once: a rollout that ran ends, and
    // is retired, so its pins do not hold when a policy comes back (the workspaces' own revisions
    // do).
    if (it != rollouts_.end() && !it->second.retired) {
      ro::Transition t;
      if (running) {
        Outcome<ro::Transition> aborted = ro::Abort(it->second, now);
        if (!aborted) return;
        t = std::move(*aborted);
      } else {
        t.state = it->second;
      }
      t.state.retired = true;
      t.changed = true;
      Save(product, std::move(t), effects, " (the product's rollout policy was removed)");
    }
    return;
  }
  if (entry.revision == 0) return;  // its revision is not recorded yet: nothing to compare
  const ro::Policy policy = PolicyOf(*entry.product.rollout);
  if (it == rollouts_.end() || it->second.revision != entry.revision) {
    Begin(product, entry, policy, members.list, now, effects);
    return;
  }
  if (!running) return;
  ro::Transition t;
  t.state = it->second;
  std::set<std::string> part;
  for (const ro::WorkspaceEntry& member : t.state.workspaces) part.insert(member.name);
  std::set<std::string> declared;
  for (const ro::Member& member : members.list) {
    declared.insert(member.name);
    if (part.count(member.name) == 0) Merge(t, ro::Join(t.state, member.name));
  }
  const std::vector<ro::WorkspaceEntry> entries = t.state.workspaces;
  for (const ro::WorkspaceEntry& member : entries) {
    if (declared.count(member.name) == 0) Merge(t, ro::Forget(t.state, member.name));
  }
  for (const ro::WorkspaceEntry& member : entries) {
    if (member.state != ro::WorkspaceState::kInProgress) continue;
    const auto status = statuses_.find(member.name);
    if (status == statuses_.end()) continue;
    const std::optional<ro::Observed> observed =
        Observe(status->second, t.state, member, *entry.product.rollout, members);
    if (observed) Merge(t, ro::Report(t.state, policy, member.name, *observed));
  }
  Merge(t, ro::Tick(t.state, policy, now));
  if (t.changed) Save(product, std::move(t), effects);
}

void RolloutDriver::Begin(const std::string& product, const ProductEntry& entry,
                          const ro::Policy& policy, const std::vector<ro::Member>& members,
                          std::int64_t now, Effects& effects) {
  const auto it = rollouts_.find(product);
  const ro::RolloutState* before = it != rollouts_.end() ? &it->second : nullptr;
  const bool running = before != nullptr && !ro::Ended(before->phase);
  // Where each workspace is now: what its pin gives it.
  std::map<std::string, int> from;
  std::set<int> behind;
  for (const ro::Member& member : members) {
    const auto status = statuses_.find(member.name);
    const int converged = status != statuses_.end() ? status->second.product_revision : 0;
    const int at = ro::PinOf(before, member.name, entry.revision, converged).revision;
    from[member.name] = at;
    if (at != entry.revision) behind.insert(at);
  }
  if (behind.empty() && !running) return;  // every workspace is on it already, or new
  // Migrations only grow: the new revision's must extend those of every revision a workspace
  // is on, or no wave starts (docs/rollouts.md#revisions).
  Outcome<ro::RevisionInputs> next = InputsOf(product, entry.revision);
  if (!next) {
    spdlog::warn("rollout of {}: revision {}: {}", product, entry.revision, next.failure().message);
    return;
  }
  for (const int revision : behind) {
    Outcome<ro::RevisionInputs> was = InputsOf(product, revision);
    if (!was) {
      spdlog::warn("rollout of {}: revision {}: {}", product, revision, was.failure().message);
      return;
    }
    Status extends = ro::CheckMigrationsExtend(was->migrations, next->migrations);
    if (extends) continue;
    Refusal& refusal = refused_[product];
    const std::string message = "revision " + std::to_string(entry.revision) + " of " + product +
                                " is not rolled out (its workspaces stay on revision " +
                                std::to_string(revision) + "): " + extends.failure().message;
    if (refusal.revision != entry.revision || refusal.message != message) {
      refusal = {entry.revision, message};
      effects.events.push_back({product, {"RolloutRefused", message, true}});
    }
    return;
  }
  refused_.erase(product);
  if (running) {
    Outcome<ro::Superseding> superseding =
        ro::Supersede(*before, policy, entry.revision, members, now);
    if (!superseding) {
      spdlog::warn("rollout of {}: {}", product, superseding.failure().message);
      return;
    }
    for (const ro::Event& event : superseding->ended.events) {
      effects.events.push_back({product, event});
    }
    Save(product, std::move(superseding->started), effects);
    return;
  }
  // The newest revision a workspace is on is the stable one: where new workspaces start.
  const int previous = *behind.rbegin();
  Outcome<ro::Transition> started =
      ro::Start(policy, product, entry.revision, previous, members, now, from);
  if (!started) {
    spdlog::warn("rollout of {}: {}", product, started.failure().message);
    return;
  }
  Save(product, std::move(*started), effects);
}

bool RolloutDriver::Save(const std::string& product, ro::Transition t, Effects& effects,
                         const std::string& note) {
  const auto known = stored_versions_.find(product);
  const std::int64_t expected = known != stored_versions_.end() ? known->second : 0;
  t.state.version = expected + 1;
  Outcome<std::optional<std::int64_t>> put =
      deps_.store->PutRollout(product, expected, ro::StateToJson(t.state), Now());
  if (!put) {
    spdlog::warn("store: rollout of {}: {} (tried again at the next step)", product,
                 put.failure().message);
    return false;
  }
  if (!*put) {
    // Another leader wrote first: what it stored is the truth; decide again from it.
    spdlog::warn("rollout of {}: the stored rollout moved on (version {} expected); reloading",
                 product, expected);
    Outcome<std::optional<StoredRollout>> row = deps_.store->GetRollout(product);
    if (row && *row) {
      stored_versions_[product] = (*row)->version;
      if (Outcome<ro::RolloutState> state = ro::StateFromJson((*row)->state_json)) {
        state->version = (*row)->version;
        rollouts_[product] = std::move(*state);
      }
    }
    return false;
  }
  stored_versions_[product] = **put;
  t.state.version = **put;
  rollouts_[product] = t.state;
  for (ro::Event& event : t.events) {
    event.message += note;
    effects.events.push_back({product, std::move(event)});
  }
  for (const ro::SetTarget& target : t.targets) effects.enqueue.insert(target.workspace);
  for (ro::Restore& restore : t.restores) {
    // Pinned back: its next pass applies the revision it came from.
    effects.enqueue.insert(restore.workspace);
    effects.restores.emplace_back(product, std::move(restore));
  }
  effects.products.push_back(product);
  return true;
}

void RolloutDriver::Carry(Effects effects) {
  for (const auto& [product, event] : effects.events) {
    deps_.events->Emit(Subject(product), event.warning ? "Warning" : "Normal", event.reason,
                       event.message);
  }
  RunRestores(effects.restores);
  for (const std::string& name : effects.enqueue) {
    if (deps_.enqueue) deps_.enqueue(name);
  }
  std::sort(effects.products.begin(), effects.products.end());
  effects.products.erase(std::unique(effects.products.begin(), effects.products.end()),
                         effects.products.end());
  for (const std::string& product : effects.products) PublishMetric(product);
}

void RolloutDriver::RunRestores(
    const std::vector<std::pair<std::string, ro::Restore>>& restores) {
  for (const auto& [product, restore] : restores) {
    std::string backup = restore.backup;
    std::int64_t started = 0;
    {
      const std::lock_guard lock(mutex_);
      if (const auto it = rollouts_.find(product); it != rollouts_.end()) {
        started = it->second.started_unix;
      }
    }
    if (backup.empty()) {
      // Not reported by a pass (a crash between the backup and its status): the catalog knows.
      if (Outcome<std::vector<StoredBackup>> rows = deps_.store->ListBackups(restore.workspace)) {
        for (const StoredBackup& row : *rows) {  // newest first
          if (row.kind == "pre-migration" && row.state != "failed" && row.created_unix >= started) {
            backup = row.id;
            break;
          }
        }
      }
    }
    std::string note;
    bool warning = false;
    if (backup.empty()) {
      note = "pinned back to revision " + std::to_string(restore.revision) +
             "; no backup was taken before a migration of it, nothing to restore";
    } else if (deps_.backups == nullptr) {
      note = "pinned back to revision " + std::to_string(restore.revision) + "; backup " +
             backup + " is not restored: this operator runs without backups";
      warning = true;
    } else {
      Outcome<backups::RestoreProgress> asked = deps_.backups->RequestRestore(
          {restore.workspace, backup, "", "rollout undo of " + product});
      if (asked) {
        note = "pinned back to revision " + std::to_string(restore.revision) + "; restore " +
               asked->id + " of backup " + backup;
      } else {
        note = "pinned back to revision " + std::to_string(restore.revision) + "; backup " +
               backup + " could not be restored: " + asked.failure().message;
        warning = true;
      }
    }
    Effects recorded;
    recorded.events.push_back(
        {product, {"RolloutRestore", restore.workspace + ": " + note, warning}});
    {
      const std::lock_guard lock(mutex_);
      const auto it = rollouts_.find(product);
      if (it != rollouts_.end()) {
        ro::Transition t;
        t.state = it->second;
        if (ro::WorkspaceEntry* entry = EntryOf(t.state, restore.workspace)) {
          entry->restore = note;
          if (entry->pre_migration_backup.empty()) entry->pre_migration_backup = backup;
          t.changed = true;
          Effects ignored;
          Save(product, std::move(t), ignored);
        }
      }
    }
    for (const auto& [subject, event] : recorded.events) {
      deps_.events->Emit(Subject(subject), event.warning ? "Warning" : "Normal", event.reason,
                         event.message);
    }
  }
}

void RolloutDriver::PublishMetric(const std::string& product) {
  if (deps_.metrics == nullptr) return;
  std::map<std::string, int> counts;
  {
    const std::lock_guard lock(mutex_);
    const auto it = rollouts_.find(product);
    if (it != rollouts_.end()) {
      const ro::Counts c = ro::CountStates(it->second);
      counts = {{"pending", c.pending},
                {"inProgress", c.in_progress},
                {"ready", c.ready},
                {"failed", c.failed}};
    }
  }
  deps_.metrics->SetRolloutWorkspaces(product, counts);
}

Outcome<ro::RevisionInputs> RolloutDriver::InputsOf(const std::string& product, int revision) {
  const std::lock_guard lock(revisions_mutex_);
  if (const auto it = inputs_.find({product, revision}); it != inputs_.end()) return it->second;
  Outcome<std::vector<StoredRevision>> rows = deps_.store->ListRevisions(product);
  if (!rows) return rows.failure();
  for (const StoredRevision& row : *rows) {
    Outcome<ro::RevisionInputs> parsed = ro::RevisionInputsFromJson(row.spec_json);
    if (parsed) {
      inputs_[{product, row.number}] = std::move(*parsed);
    } else if (row.number == revision) {
      return parsed.failure();
    }
  }
  if (const auto it = inputs_.find({product, revision}); it != inputs_.end()) return it->second;
  return Failure::Transient("RevisionUnknown", "product " + product + " has no revision " +
                                                   std::to_string(revision) + " in the store");
}

Outcome<std::shared_ptr<const ProductEntry>> RolloutDriver::EntryAt(
    const std::shared_ptr<const ProductEntry>& current, int revision) {
  const std::string& product = current->product.name;
  Outcome<ro::RevisionInputs> inputs = InputsOf(product, revision);
  if (!inputs) return inputs.failure();
  const std::lock_guard lock(revisions_mutex_);
  Rebuilt& slot = rebuilt_[{product, revision}];
  if (slot.base == current && slot.entry != nullptr) return slot.entry;
  if (!current->migrations) return current->migrations.failure();
  auto entry = std::make_shared<ProductEntry>(*current);
  entry->product.default_version = inputs->version;
  entry->product.image = inputs->image;
  entry->product.extensions = inputs->extensions;
  entry->stack_template = inputs->template_text;
  entry->revision = revision;
  entry->revision_digest = ro::RevisionDigest(*inputs);
  // Its migrations: the product's files up to the revision's last (they only ever grow).
  std::vector<migrations::Migration> kept;
  if (!inputs->migrations.empty()) {
    const std::string& last = inputs->migrations.back().version;
    bool found = false;
    for (const migrations::Migration& migration : *current->migrations) {
      kept.push_back(migration);
      if (migration.version == last) {
        found = true;
        break;
      }
    }
    if (!found) {
      return Failure::Transient("RevisionUnavailable",
                                "revision " + std::to_string(revision) + " of product " + product +
                                    ": its last migration " + last +
                                    " is no longer among the product's files");
    }
  }
  entry->migrations = std::move(kept);
  slot = {current, entry};
  return std::shared_ptr<const ProductEntry>(entry);
}

Outcome<RevisionPin> RolloutDriver::PinFor(const std::string& name, const DesiredEntry& entry,
                                           int converged) {
  const std::shared_ptr<const ProductEntry>& current = entry.product;
  RevisionPin pin{current, current->revision, 0};
  // Without a policy (or a recorded revision) every workspace follows the product at once.
  if (current->revision == 0 || !current->product.rollout) return pin;
  ro::Pinned pinned;
  {
    const std::lock_guard lock(mutex_);
    const auto it = rollouts_.find(current->product.name);
    pinned = ro::PinOf(it != rollouts_.end() ? &it->second : nullptr, name, current->revision,
                       converged);
  }
  pin.attempt = pinned.attempt;
  if (pinned.revision == current->revision) return pin;
  Outcome<std::shared_ptr<const ProductEntry>> at = EntryAt(current, pinned.revision);
  if (!at) return at.failure();
  pin.product = std::move(*at);
  pin.revision = pinned.revision;
  return pin;
}

std::string RolloutDriver::StatusJsonLocked(const std::string& product,
                                            const ProductEntry* entry) const {
  json::object out;
  out["product"] = product;
  if (entry != nullptr && entry->revision > 0) {
    out["revision"] = json::object{{"number", entry->revision},
                                   {"digest", entry->revision_digest.substr(0, 12)}};
  } else {
    out["revision"] = nullptr;
  }
  if (const auto refused = refused_.find(product); refused != refused_.end()) {
    out["refused"] = json::object{{"reason", "RolloutRefused"},
                                  {"revision", refused->second.revision},
                                  {"message", refused->second.message}};
  } else {
    out["refused"] = nullptr;
  }
  const auto it = rollouts_.find(product);
  if (it == rollouts_.end()) {
    out["rollout"] = nullptr;
    return json::serialize(out);
  }
  const ro::RolloutState& s = it->second;
  json::array workspaces;
  for (const ro::WorkspaceEntry& e : s.workspaces) {
    workspaces.push_back(json::object{{"name", e.name},
                                      {"wave", e.wave + 1},
                                      {"state", std::string(ro::ToString(e.state))},
                                      {"fromRevision", e.from_revision},
                                      {"reason", e.reason},
                                      {"preMigrationBackup", e.pre_migration_backup},
                                      {"restore", e.restore},
                                      {"attempt", e.attempt}});
  }
  out["rollout"] = json::object{
      {"revision", s.revision},
      {"previousRevision", s.previous_revision},
      {"phase", std::string(ro::ToString(s.phase))},
      {"currentWave", std::min(s.current_wave + 1, std::max(s.wave_count, 1))},
      {"waveCount", s.wave_count},
      {"pausedUntil", OptionalTime(s.paused_until)},
      {"pausedByPerson", s.paused_by_person},
      {"startedAt", FormatRfc3339Utc(s.started_unix)},
      {"finishedAt", OptionalTime(s.finished_unix)},
      {"counts", CountsJson(ro::CountStates(s))},
      {"workspaces", std::move(workspaces)}};
  return json::serialize(out);
}

Outcome<std::string> RolloutDriver::StatusJson(const std::string& product) const {
  const ProductRegistry::Found found = deps_.products->Find(product);
  if (found.entry == nullptr) {
    return Failure::Stalled("NotFound", "no source declares product \"" + product + "\"");
  }
  const std::lock_guard lock(mutex_);
  return StatusJsonLocked(product, found.entry.get());
}

std::string RolloutDriver::SummaryJson(const std::string& product) const {
  const std::lock_guard lock(mutex_);
  const auto it = rollouts_.find(product);
  if (it == rollouts_.end()) return "null";
  const ro::RolloutState& s = it->second;
  return json::serialize(json::object{
      {"phase", std::string(ro::ToString(s.phase))},
      {"revision", s.revision},
      {"currentWave", std::min(s.current_wave + 1, std::max(s.wave_count, 1))},
      {"waveCount", s.wave_count},
      {"counts", CountsJson(ro::CountStates(s))}});
}

Outcome<std::string> RolloutDriver::Command(const std::string& product, const std::string& verb,
                                            const std::string& who) {
  if (verb != "pause" && verb != "resume" && verb != "promote" && verb != "abort" &&
      verb != "undo") {
    return Failure::Stalled("InvalidVerb",
                            "unknown rollout verb \"" + verb + "\"; the verbs are " + kVerbs);
  }
  const ProductRegistry::Found found = deps_.products->Find(product);
  if (found.entry == nullptr) {
    return Failure::Stalled("NotFound", "no source declares product \"" + product + "\"");
  }
  const ro::Policy policy =
      found.entry->product.rollout ? PolicyOf(*found.entry->product.rollout) : ro::Policy{};
  const std::int64_t now = Now();
  Effects effects;
  {
    const std::lock_guard lock(mutex_);
    const auto it = rollouts_.find(product);
    if (it == rollouts_.end()) {
      return Failure::Stalled("NotFound", "product \"" + product + "\" has had no rollout");
    }
    Outcome<ro::Transition> t = verb == "pause"     ? ro::Pause(it->second)
                                : verb == "resume"  ? ro::Resume(it->second, policy, now)
                                : verb == "promote" ? ro::Promote(it->second, policy, now)
                                : verb == "abort"   ? ro::Abort(it->second, now)
                                                    : ro::Undo(it->second, now);
    if (!t) return t.failure();
    // Who paused, resumed or promoted is told by an event of its own, before what followed.
    if (*VerbEvent(verb) != '\0') {
      t->events.insert(t->events.begin(),
                       {VerbEvent(verb),
                        "the rollout of revision " + std::to_string(it->second.revision), false});
    }
    if (!Save(product, std::move(*t), effects, " (" + verb + " by " + who + ")")) {
      return Failure::Transient("Unavailable", "the rollout of " + product +
                                                   " could not be stored; try again");
    }
  }
  Carry(std::move(effects));
  Wake();
  return StatusJson(product);
}

}  // namespace tmaster::controller
