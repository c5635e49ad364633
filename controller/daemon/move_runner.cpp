#include "controller/daemon/move_runner.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <random>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/text.hpp"
#include "controller/daemon/phase_wait.hpp"
#include "reconcilers/backups/backup_tools.hpp"
#include "reconcilers/backups/table_sums.hpp"
#include "reconcilers/placement/placement.hpp"
#include "reconcilers/postgres/desired.hpp"

namespace tmaster::controller {
namespace {

using moves::kFailed;
using moves::kPending;
using moves::kPruned;
using moves::kRunning;
using moves::kSucceeded;

Failure Reasoned(std::string_view reason, std::string message) {
  return Failure::Stalled(std::string(reason), std::move(message));
}

std::int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string Hex4() {
  static thread_local std::mt19937 random(std::random_device{}());
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (int i = 0; i < 4; ++i) out += kDigits[random() % 16];
  return out;
}

// The test hook of docs/moves.md#testing: `TM_MOVE_TEST_FAULT=<step>:fail` fails that step as a
// tool would, `<step>:hang` holds the move there for a minute (a test kills the operator then).
// Read once; unset in production.
std::pair<std::string, std::string> TestFault() {
  const char* value = std::getenv("TM_MOVE_TEST_FAULT");
  if (value == nullptr) return {};
  const std::string_view text(value);
  const auto colon = text.find(':');
  if (colon == std::string_view::npos) return {};
  return {std::string(text.substr(0, colon)), std::string(text.substr(colon + 1))};
}

}  // namespace

MoveRunner::MoveRunner(MoveRunnerDeps deps) : deps_(std::move(deps)), fault_(TestFault()) {}

Status MoveRunner::Fault(const std::string& step) {
  if (fault_.first != step) return Ok();
  if (fault_.second == "fail") {
    return Failure::Transient("MoveTestFault", "step " + step + " failed (TM_MOVE_TEST_FAULT)");
  }
  if (fault_.second == "hang") {
    std::unique_lock lock(mutex_);
    wake_.wait_for(lock, std::chrono::minutes(1), [this] { return stopping_; });
    return Failure::Transient("Stopping", "the operator is stopping");
  }
  return Ok();
}

MoveRunner::~MoveRunner() { Stop(); }

std::int64_t MoveRunner::Now() const {
  if (deps_.now_unix) return deps_.now_unix();
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void MoveRunner::Start() {
  {
    const std::lock_guard lock(mutex_);
    if (running_) return;
    running_ = true;
    stopping_ = false;
  }
  // A dump (or its partial file) a killed term left: no move runs yet, so every file goes; the
  // move it belonged to dumps again if it is taken up (backups' own sweep leaves `.moves` alone).
  RemoveLeftDumps();
  thread_ = std::thread([this] { Worker(); });
  // What a term before this one left unfinished: rolled back or forward from its recorded step.
  Outcome<std::vector<StoredMove>> stored = deps_.store->ListMoves();
  if (!stored) {
    spdlog::warn("moves: listing the recorded moves: {} (retried at the next term)",
                 stored.failure().message);
    return;
  }
  for (const StoredMove& move : *stored) {
    if (!moves::Finished(move.state)) Push(move.workspace);
  }
}

void MoveRunner::Stop() {
  std::thread thread;
  {
    const std::lock_guard lock(mutex_);
    if (!running_) return;
    stopping_ = true;
    thread = std::move(thread_);
  }
  wake_.notify_all();
  if (thread.joinable()) thread.join();
  const std::lock_guard lock(mutex_);
  running_ = false;
  queue_.clear();
  active_.clear();
}

bool MoveRunner::Running() const {
  const std::lock_guard lock(mutex_);
  return running_ && !stopping_;
}

void MoveRunner::Push(const std::string& workspace) {
  {
    const std::lock_guard lock(mutex_);
    if (!active_.insert(workspace).second) return;
    queue_.push_back(workspace);
  }
  wake_.notify_all();
}

void MoveRunner::Worker() {
  for (;;) {
    std::string workspace;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      workspace = queue_.front();
      queue_.pop_front();
    }
    Drive(workspace);
    const std::lock_guard lock(mutex_);
    active_.erase(workspace);
  }
}

Outcome<StoredMove> MoveRunner::RequestMove(const moves::MoveCall& call) {
  if (!Running()) {
    return Reasoned(moves::kUnavailable, "this replica is not leading, or is stopping");
  }
  const std::string& name = call.workspace;
  const std::shared_ptr<const DesiredEntry> entry = deps_.desired->Declared(name);
  if (entry == nullptr) {
    return Reasoned(moves::kNotFound, "no declared workspace " + Quoted(name));
  }
  if (!entry->workspace.database.cluster_placed) {
    return Reasoned(moves::kMovePinned,
                    "workspace " + Quoted(name) + " names its cluster (spec.database.cluster: " +
                        Quoted(entry->workspace.database.cluster) +
                        "): its manifest decides where it is; remove the field (the workspace "
                        "stays where it is, docs/placement.md) and move it then");
  }
  Outcome<std::optional<StoredWorkspace>> stored = deps_.store->Get(name);
  if (!stored) return stored.failure();
  if (!*stored || !(*stored)->identity) {
    return Reasoned(moves::kNotConverged,
                    "workspace " + Quoted(name) + " has not converged yet: it has no database to move");
  }
  const std::string from =
      deps_.placer->PlacedOn(name).value_or((*stored)->identity->cluster);
  const manifests::ClusterConfig* target = nullptr;
  for (const manifests::ClusterConfig& cluster : deps_.config->clusters) {
    if (cluster.name == call.to) target = &cluster;
  }
  if (target == nullptr) {
    std::vector<std::string> names;
    for (const manifests::ClusterConfig& cluster : deps_.config->clusters) {
      names.push_back(cluster.name);
    }
    return Reasoned(moves::kInvalidTarget, "no cluster " + Quoted(call.to) +
                                               " in the config; the clusters are " +
                                               Join(names, ", "));
  }
  if (call.to == from) {
    return Reasoned(moves::kInvalidTarget,
                    "workspace " + Quoted(name) + " is on cluster " + Quoted(from) + " already");
  }
  if (!placement::Matches(target->labels, entry->workspace.database.cluster_selector)) {
    return Reasoned(moves::kInvalidTarget,
                    "cluster " + Quoted(call.to) + " does not match the workspace's "
                    "spec.database.placement.clusterSelector (" +
                        placement::FormatSelector(entry->workspace.database.cluster_selector) + ")");
  }
  for (const Placer::Usage& usage : deps_.placer->Usages()) {
    if (usage.cluster != call.to) continue;
    if (usage.capacity && usage.used >= *usage.capacity) {
      return Reasoned(moves::kInvalidTarget,
                      "cluster " + Quoted(call.to) + " is full (" + std::to_string(usage.used) +
                          " of " + std::to_string(*usage.capacity) + " databases)");
    }
    if (usage.reach.known && !usage.reach.reachable) {
      return Reasoned(moves::kInvalidTarget, "cluster " + Quoted(call.to) +
                                                 " does not answer: " + usage.reach.reason);
    }
  }
  if (!deps_.gateways.contains(call.to) || !deps_.admin_dsns.contains(call.to) ||
      !deps_.gateways.contains(from) || !deps_.admin_dsns.contains(from)) {
    return Reasoned(moves::kInvalidTarget, "clusters " + Quoted(from) + " and " + Quoted(call.to) +
                                               " both need a connection to move between them");
  }
  Outcome<std::optional<StoredMove>> last = deps_.store->FindMove(name);
  if (!last) return last.failure();
  if (*last && !moves::Finished((*last)->state)) {
    return Reasoned(moves::kMoveInProgress, "workspace " + Quoted(name) + " is being moved (" +
                                                (*last)->id + ", step " + (*last)->step + ")");
  }
  if (*last && (*last)->state == kSucceeded) {
    return Reasoned(moves::kMoveConflict,
                    "the source database of move " + (*last)->id + " is still kept on cluster " +
                        Quoted((*last)->from_cluster) +
                        "; prune it first (tenantctl move --prune " + name + ")");
  }
  StoredMove move;
  move.workspace = name;
  move.id = "mv-" + name + "-" + std::to_string(Now()) + "-" + Hex4();
  move.from_cluster = from;
  move.to_cluster = call.to;
  move.state = std::string(kPending);
  move.step = "prepare";
  move.message = "queued";
  move.who = call.who;
  move.requested_unix = Now();
  move.version = *last ? (*last)->version : 0;
  Outcome<std::optional<std::int64_t>> written = deps_.store->PutMove(move, Now());
  if (!written) return written.failure();
  if (!*written) {
    return Reasoned(moves::kMoveInProgress,
                    "another move of workspace " + Quoted(name) + " was recorded meanwhile");
  }
  move.version = **written;
  move.updated_unix = Now();
  deps_.events->Emit(name, "Normal", "MoveRequested",
                     "move " + move.id + " from cluster " + Quoted(from) + " to " +
                         Quoted(call.to) + " requested by " + call.who);
  Push(name);
  return move;
}

bool MoveRunner::Save(StoredMove& move, const std::string& step, const std::string& message) {
  move.step = step;
  move.message = message;
  Outcome<std::optional<std::int64_t>> written = deps_.store->PutMove(move, Now());
  if (!written || !*written) {
    spdlog::warn("moves: recording step {} of {}: {}", step, move.id,
                 written ? "another writer came first" : written.failure().message);
    return false;
  }
  move.version = **written;
  return true;
}

void MoveRunner::Drive(const std::string& workspace) {
  Outcome<std::optional<StoredMove>> found = deps_.store->FindMove(workspace);
  if (!found || !*found) return;
  StoredMove move = **found;
  if (moves::Finished(move.state)) return;
  if (move.switched) {
    Finish(move);
    return;
  }
  if (move.state == kRunning) {
    // A term before this one stopped in the middle: before the switch nothing points at the
    // target yet, so the safe way out is back.
    RollBack(move, Failure::Transient("MoveInterrupted",
                                      "the operator stopped during step " + move.step));
    return;
  }
  move.state = std::string(kRunning);
  if (!Save(move, "prepare", "preparing the target")) return;
  if (Status done = RunSteps(move); !done) {
    RollBack(move, done.failure());
    return;
  }
  Finish(move);
}

Status MoveRunner::RunSteps(StoredMove& move) {
  const auto at = [&](const std::string& step, const std::string& message) -> Status {
    if (deps_.desired->Declared(move.workspace) == nullptr) {
      return Failure::Stalled("WorkspaceRemoved",
                              "the workspace was removed from its source during the move");
    }
    if (!Save(move, step, message)) {
      return Failure::Transient("StoreUnavailable", "the move's step could not be recorded");
    }
    deps_.events->Emit(move.workspace, "Normal", "MoveStep", move.id + ": " + message);
    return Fault(step);
  };
  const auto in = [](const std::string& step, Failure failure) {
    failure.message = step + ": " + failure.message;
    return failure;
  };

  if (Status ok = at("prepare", "creating role and database on cluster " +
                                    Quoted(move.to_cluster));
      !ok) {
    return ok;
  }
  if (Status prepared = Prepare(move); !prepared) return in("prepare", prepared.failure());

  if (Status ok = at("suspend", "suspending (logins closed, sessions ended, stack stopped)"); !ok) {
    return ok;
  }
  if (Status suspended = Suspend(move); !suspended) return in("suspend", suspended.failure());

  Outcome<postgres::DesiredTenant> desired = DesiredOn(move.workspace, move.to_cluster);
  if (!desired) return desired.failure();
  if (Status ok = at("dump", "dumping database " + Quoted(desired->database) + " on cluster " +
                                 Quoted(move.from_cluster));
      !ok) {
    return ok;
  }
  backups::ToolPaths tools;
  if (!deps_.pg_bin_dir.empty()) {
    tools = {deps_.pg_bin_dir + "/pg_dump", deps_.pg_bin_dir + "/pg_restore"};
  }
  backups::DumpRequest dump;
  dump.admin_dsn = deps_.admin_dsns.at(move.from_cluster);
  dump.database = desired->database;
  dump.folder = DumpFolder();
  dump.backup_id = move.id;
  dump.tools = tools;
  dump.compress_level = 0;  // the tenant waits: time over size, and the file lives seconds
  Outcome<backups::DumpResult> dumped = backups::Dump(dump);
  if (!dumped) return in("dump", dumped.failure());
  struct RemoveFile {
    std::string path;
    ~RemoveFile() {
      std::error_code ignored;
      std::filesystem::remove(path, ignored);
    }
  } remove_dump{dumped->path};

  if (Status ok = at("restore", "restoring into database " + Quoted(desired->database) +
                                    " on cluster " + Quoted(move.to_cluster) + " as role " +
                                    Quoted(desired->role));
      !ok) {
    return ok;
  }
  backups::RestoreRequest restore;
  restore.admin_dsn = deps_.admin_dsns.at(move.to_cluster);
  restore.file = dumped->path;
  restore.expected_sha256 = dumped->sha256;
  restore.backup_id = move.id;
  restore.target_database = desired->database;
  restore.role = desired->role;
  restore.tools = tools;
  if (Status restored = backups::Restore(restore); !restored) {
    return in("restore", restored.failure());
  }

  if (Status ok = at("verify", "comparing row counts and digests of every table"); !ok) return ok;
  // Both sides at once (two servers): the tenant is down while this runs.
  constexpr auto kSumTimeout = std::chrono::minutes(10);
  std::future<Outcome<backups::TableSums>> source_sums =
      std::async(std::launch::async, [&] {
        return backups::SumTables(deps_.admin_dsns.at(move.from_cluster), desired->database,
                                  kSumTimeout);
      });
  Outcome<backups::TableSums> target =
      backups::SumTables(deps_.admin_dsns.at(move.to_cluster), desired->database, kSumTimeout);
  Outcome<backups::TableSums> source = source_sums.get();
  if (!source) return in("verify", source.failure());
  if (!target) return in("verify", target.failure());
  if (std::optional<std::string> differs = backups::CompareTableSums(*source, *target)) {
    return Failure::Stalled("MoveVerifyFailed", "verify: the copy differs: " + *differs);
  }
  move.verified = backups::DescribeTableSums(*source);
  if (Status carried = CarryMarkerState(move, desired->database); !carried) {
    spdlog::warn("moves: {}: the target's marker keeps its own state ({}); the resume pass "
                 "re-checks the migrations",
                 move.id, carried.failure().message);
  }

  if (Status ok = at("switch", "switching the placement to cluster " + Quoted(move.to_cluster) +
                                   " (" + move.verified + ")");
      !ok) {
    return ok;
  }
  move.switched = true;
  move.message = "switched to cluster " + Quoted(move.to_cluster);
  Outcome<std::optional<std::int64_t>> switched = deps_.store->SwitchPlacement(move, Now());
  if (!switched || !*switched) {
    move.switched = false;
    return switched ? Failure::Transient("StoreConflict", "switch: another writer came first")
                    : in("switch", switched.failure());
  }
  move.version = **switched;
  deps_.placer->Moved(move.workspace, move.to_cluster);
  if (deps_.switched) deps_.switched(move.workspace);
  deps_.events->Emit(move.workspace, "Normal", "MoveSwitched",
                     move.id + ": the workspace is on cluster " + Quoted(move.to_cluster) +
                         " now; verified " + move.verified);
  return Ok();
}

Outcome<postgres::DesiredTenant> MoveRunner::DesiredOn(const std::string& workspace,
                                                       const std::string& cluster) const {
  const std::shared_ptr<const DesiredEntry> entry = deps_.desired->Declared(workspace);
  if (entry == nullptr || entry->product == nullptr) {
    return Failure::Stalled("WorkspaceRemoved", "workspace " + Quoted(workspace) +
                                                    " is no longer declared with its product");
  }
  manifests::Workspace spec = entry->workspace;
  spec.database.cluster = cluster;
  postgres::DesiredTenant desired = postgres::BuildDesired(
      spec, entry->product->product, {}, *deps_.master_key,
      AdoptPolicyFor(deps_.config, cluster, deps_.store_database));
  desired.suspend = false;
  return desired;
}

Status MoveRunner::Prepare(StoredMove& move) {
  postgres::PostgresGateway* gateway = deps_.gateways.at(move.to_cluster);
  Outcome<postgres::DesiredTenant> desired = DesiredOn(move.workspace, move.to_cluster);
  if (!desired) return desired.failure();
  Outcome<postgres::ObservedCluster> observed = gateway->Observe();
  if (!observed) return observed.failure();
  if (!move.target_created) {
    // Only what the move makes is the move's to drop again: the target must hold neither name.
    if (observed->databases.contains(desired->database) ||
        observed->roles.contains(desired->role)) {
      return Failure::Stalled(
          "MoveTargetOccupied",
          "cluster " + Quoted(move.to_cluster) + " has a database " + Quoted(desired->database) +
              " or a role " + Quoted(desired->role) +
              " already; nothing was touched (an earlier move's kept source is pruned with "
              "tenantctl move --prune)");
    }
    move.target_created = true;
    if (!Save(move, "prepare", move.message)) {
      return Failure::Transient("StoreUnavailable", "the move's step could not be recorded");
    }
  }
  // The role and the database as a first pass makes them (marked, closed to PUBLIC), with the
  // product's extensions and the migrations ledger; no migration: the restore brings the
  // tenant's schema and ledger rows. The claim marker stays without a state digest, so the
  // first pass on the target runs the in-database steps again.
  postgres::Plan plan = postgres::MakePlan(*desired, *observed);
  if (plan.blocked) return *plan.blocked;
  std::vector<postgres::Action> actions;
  for (postgres::Action& action : plan.actions) {
    if (std::holds_alternative<postgres::SetDatabaseMarker>(action)) continue;
    actions.push_back(std::move(action));
  }
  actions.emplace_back(postgres::ApplyMigrations{desired->database, desired->role,
                                                 desired->password, {}, true});
  // Closed until the switch: nobody logs in to a copy that is not the workspace's yet.
  actions.emplace_back(postgres::AlterRole{desired->role, false, desired->connection_limit});
  for (const postgres::Action& action : actions) {
    if (Outcome<postgres::ApplyResult> applied = gateway->Apply(action); !applied) {
      return applied.failure();
    }
  }
  return Ok();
}

Status MoveRunner::Suspend(StoredMove& move) {
  const std::shared_ptr<const DesiredEntry> entry = deps_.desired->Declared(move.workspace);
  const std::optional<SuspendOverride> held = deps_.overrides->Get(move.workspace);
  const bool was_suspended = (entry && entry->workspace.suspend) || (held && held->suspend);
  {
    const std::lock_guard lock(mutex_);
    suspended_at_ms_[move.workspace] = SteadyMs();
  }
  if (!was_suspended) {
    const SuspendOverride override{move.workspace, true, "move " + move.id, Now()};
    if (Outcome<Done> set = deps_.override_store->SetOverride(override); !set) {
      return set.failure();
    }
    deps_.overrides->Set(override);
    move.suspended_by_move = true;
    if (!Save(move, "suspend", move.message)) {
      return Failure::Transient("StoreUnavailable", "the move's step could not be recorded");
    }
    if (deps_.enqueue) deps_.enqueue(move.workspace);
  }
  Outcome<std::string> phase = WaitForPhase(move.workspace, {"Suspended"});
  if (!phase) return phase.failure();
  return Ok();
}

Outcome<std::string> MoveRunner::WaitForPhase(const std::string& workspace,
                                              const std::set<std::string>& phases) {
  return WaitForStoredPhase(
      *deps_.store, workspace, phases,
      {.limit = deps_.phase_wait,
       .poll = std::chrono::milliseconds(50),
       .timeout_reason = "MoveTimedOut",
       .sleep_or_stop = [this](std::chrono::milliseconds poll) {
         std::unique_lock lock(mutex_);
         return wake_.wait_for(lock, poll, [this] { return stopping_; });
       }});
}

void MoveRunner::ClearOverride(StoredMove& move) {
  if (!move.suspended_by_move) return;
  if (Outcome<bool> cleared = deps_.override_store->ClearOverride(move.workspace); !cleared) {
    spdlog::warn("moves: clearing the override of {}: {}", move.workspace,
                 cleared.failure().message);
    return;
  }
  deps_.overrides->Clear(move.workspace);
  move.suspended_by_move = false;
  if (deps_.enqueue) deps_.enqueue(move.workspace);
}

Status MoveRunner::Reclaim(const std::string& workspace, const std::string& cluster,
                           const std::string& database, const std::string& role) {
  postgres::PostgresGateway* gateway = deps_.gateways.at(cluster);
  Outcome<postgres::ObservedCluster> observed = gateway->Observe();
  if (!observed) return observed.failure();
  postgres::ReclaimTarget target{workspace, cluster, database, role,
                                 manifests::ReclaimPolicy::kDelete};
  postgres::Plan plan = postgres::MakeReclaimPlan(target, *observed);
  if (plan.blocked) return *plan.blocked;
  for (const postgres::Action& action : plan.actions) {
    if (Outcome<postgres::ApplyResult> applied = gateway->Apply(action); !applied) {
      return applied.failure();
    }
  }
  return Ok();
}

void MoveRunner::RollBack(StoredMove& move, const Failure& failure) {
  const std::string failed_step = move.step;
  Save(move, "rollback", "rolling back: " + failure.message);
  std::string leftovers;
  if (move.target_created) {
    // The names from the store, not the desired state: a term taking up an interrupted move
    // starts before its sources are read.
    Outcome<std::pair<std::string, std::string>> names = NamesOf(move);
    Status dropped = names ? Reclaim(move.workspace, move.to_cluster, names->first, names->second)
                           : Status(names.failure());
    if (!dropped) {
      leftovers = "; the copy on cluster " + Quoted(move.to_cluster) +
                  " could not be dropped (" + dropped.failure().message +
                  "): it is marked for the workspace and never used";
    }
  }
  // Resumed when the move suspended it (its stored phase says Suspended until the next pass);
  // a workspace suspended before the move stays so.
  const bool ours = move.suspended_by_move;
  ClearOverride(move);
  Outcome<std::string> phase = ours ? WaitForPhase(move.workspace, {"Ready"})
                                    : Outcome<std::string>(std::string("Suspended"));
  move.state = std::string(kFailed);
  move.reason = failure.reason;
  move.finished_unix = Now();
  const std::string where =
      "the workspace is on cluster " + Quoted(move.from_cluster) +
      (phase ? ", " + *phase : ", resuming (" + phase.failure().message + ")");
  Save(move, failed_step, failure.message + "; rolled back: " + where + leftovers);
  {
    const std::lock_guard lock(mutex_);
    suspended_at_ms_.erase(move.workspace);
  }
  deps_.events->Emit(move.workspace, "Warning", "MoveFailed",
                     move.id + " failed at " + failed_step + " (" + failure.reason + "): " +
                         move.message);
}

Outcome<std::pair<std::string, std::string>> MoveRunner::NamesOf(const StoredMove& move) {
  Outcome<std::optional<StoredWorkspace>> stored = deps_.store->Get(move.workspace);
  if (!stored) return stored.failure();
  if (*stored && (*stored)->identity) {
    return std::pair((*stored)->identity->database, (*stored)->identity->owner);
  }
  Outcome<postgres::DesiredTenant> desired = DesiredOn(move.workspace, move.from_cluster);
  if (!desired) return desired.failure();
  return std::pair(desired->database, desired->role);
}

// The copy holds the source's ledger and extensions, so the target's marker takes the source's
// `migration` and `state` fields: the resume pass then finds the in-database steps done. Without
// it, it plans ApplyMigrations (nothing pending) and with it a pre-migration backup, while the
// tenant is down (bench/move_downtime.sh measured 0.6-1.1 s of it). Both markers must carry the
// workspace's valid signature; the result is signed again.
Status MoveRunner::CarryMarkerState(const StoredMove& move, const std::string& database) {
  const Secret key = postgres::MarkerKey(*deps_.master_key);
  const auto signed_marker = [&](const std::string& cluster) -> Outcome<postgres::Marker> {
    Outcome<postgres::ObservedCluster> observed = deps_.gateways.at(cluster)->Observe();
    if (!observed) return observed.failure();
    const auto db = observed->databases.find(database);
    std::optional<postgres::Marker> marker =
        db == observed->databases.end() ? std::nullopt : postgres::Marker::Parse(db->second.comment);
    if (!marker || marker->workspace != move.workspace ||
        !postgres::MarkerSignatureValid(*marker, key)) {
      return Failure::Stalled("NotOwned", "database " + Quoted(database) + " on cluster " +
                                              Quoted(cluster) +
                                              " does not carry the workspace's signed marker");
    }
    return *marker;
  };
  Outcome<postgres::Marker> source = signed_marker(move.from_cluster);
  if (!source) return source.failure();
  Outcome<postgres::Marker> target = signed_marker(move.to_cluster);
  if (!target) return target.failure();
  postgres::Marker carried = *target;
  for (const char* field : {"migration", "state"}) {
    if (const auto it = source->fields.find(field); it != source->fields.end()) {
      carried.fields[field] = it->second;
    }
  }
  carried = postgres::SignMarker(std::move(carried), key);
  Outcome<postgres::ApplyResult> set = deps_.gateways.at(move.to_cluster)
                                           ->Apply(postgres::SetDatabaseMarker{database,
                                                                               carried.Render()});
  if (!set) return set.failure();
  return Ok();
}

Status MoveRunner::MarkSourceMoved(const StoredMove& move) {
  Outcome<std::pair<std::string, std::string>> names = NamesOf(move);
  if (!names) return names.failure();
  const std::string& database = names->first;
  const std::string& role = names->second;
  postgres::PostgresGateway* gateway = deps_.gateways.at(move.from_cluster);
  Outcome<postgres::ObservedCluster> observed = gateway->Observe();
  if (!observed) return observed.failure();
  const Secret key = postgres::MarkerKey(*deps_.master_key);
  if (const auto db = observed->databases.find(database); db != observed->databases.end()) {
    std::optional<postgres::Marker> marker = postgres::Marker::Parse(db->second.comment);
    if (!marker || marker->workspace != move.workspace ||
        !postgres::MarkerSignatureValid(*marker, key)) {
      return Failure::Stalled("NotOwned", "database " + Quoted(database) + " on cluster " +
                                              Quoted(move.from_cluster) +
                                              " does not carry the workspace's signed marker");
    }
    if (!postgres::MarkerMoved(*marker)) {
      const postgres::Marker moved = postgres::MovedMarker(*marker, move.to_cluster, key);
      if (auto set = gateway->Apply(postgres::SetDatabaseMarker{database, moved.Render()});
          !set) {
        return set.failure();
      }
    }
  }
  if (const auto found = observed->roles.find(role); found != observed->roles.end()) {
    if (found->second.can_login) {
      if (auto closed = gateway->Apply(
              postgres::AlterRole{role, false, found->second.connection_limit});
          !closed) {
        return closed.failure();
      }
    }
    if (found->second.sessions > 0) {
      if (auto ended = gateway->Apply(postgres::TerminateSessions{role}); !ended) {
        return ended.failure();
      }
    }
  }
  return Ok();
}

void MoveRunner::Finish(StoredMove& move) {
  std::string notes;
  if (Status marked = MarkSourceMoved(move); !marked) {
    notes = "; the source's marker could not be written yet (" + marked.failure().message +
            "), prune writes it first";
  }
  Save(move, "resume", "resuming on cluster " + Quoted(move.to_cluster));
  if (Status held = Fault("resume"); !held) return;  // a test's hold: the next term finishes it
  // No deep pass: the target's marker carries the source's state (CarryMarkerState), or, when
  // that could not be written, differs from the desired state, which runs the in-database steps
  // anyway. A deep pass re-ran the migrations' check and a pre-migration backup while down.
  const bool ours = move.suspended_by_move;
  ClearOverride(move);
  if (!ours && deps_.enqueue) deps_.enqueue(move.workspace);
  Outcome<std::string> phase = WaitForPhase(move.workspace, {ours ? "Ready" : "Suspended"});
  {
    const std::lock_guard lock(mutex_);
    if (auto at = suspended_at_ms_.find(move.workspace); at != suspended_at_ms_.end()) {
      move.downtime_ms = SteadyMs() - at->second;
      suspended_at_ms_.erase(at);
    }
  }
  if (!phase && phase.failure().reason == "Stopping") {
    Save(move, "resume", "the operator stopped while resuming; the next term finishes it");
    return;
  }
  move.state = std::string(kSucceeded);
  move.finished_unix = Now();
  const std::string message =
      "moved from cluster " + Quoted(move.from_cluster) + " to " + Quoted(move.to_cluster) +
      (move.verified.empty() ? "" : " (" + move.verified + ")") +
      (phase ? "; the workspace is " + *phase : "; " + phase.failure().message) +
      (move.downtime_ms > 0 ? "; down " + std::to_string(move.downtime_ms) + " ms" : "") +
      "; the source database is kept NOLOGIN until tenantctl move --prune" + notes;
  Save(move, "done", message);
  deps_.events->Emit(move.workspace, "Normal", "MoveSucceeded", move.id + ": " + message);
}

Outcome<StoredMove> MoveRunner::Prune(const std::string& workspace, const std::string& who) {
  if (!Running()) {
    return Reasoned(moves::kUnavailable, "this replica is not leading, or is stopping");
  }
  Outcome<std::optional<StoredMove>> found = deps_.store->FindMove(workspace);
  if (!found) return found.failure();
  if (!*found) return Reasoned(moves::kNotFound, "no move of workspace " + Quoted(workspace));
  StoredMove move = **found;
  if (move.state != kSucceeded) {
    return Reasoned(moves::kMoveConflict, "move " + move.id + " is " + move.state +
                                              ": only a succeeded move keeps a source to prune");
  }
  if (deps_.placer->PlacedOn(workspace).value_or(move.to_cluster) == move.from_cluster) {
    return Reasoned(moves::kMoveConflict, "workspace " + Quoted(workspace) +
                                              " is placed on the source cluster " +
                                              Quoted(move.from_cluster) + "; nothing is pruned");
  }
  // Only a database marked `moved` (signed) is dropped: the marker is written first if the
  // move could not write it.
  if (Status marked = MarkSourceMoved(move); !marked) return marked.failure();
  Outcome<std::optional<StoredWorkspace>> stored = deps_.store->Get(workspace);
  if (!stored) return stored.failure();
  if (!*stored || !(*stored)->identity) {
    return Reasoned(moves::kNotFound, "workspace " + Quoted(workspace) +
                                          " has no recorded identity: the source's names are unknown");
  }
  if (Status dropped = Reclaim(workspace, move.from_cluster, (*stored)->identity->database,
                               (*stored)->identity->owner);
      !dropped) {
    return dropped.failure();
  }
  move.state = std::string(kPruned);
  move.pruned_unix = Now();
  if (!Save(move, "prune", "the source database and role on cluster " +
                               Quoted(move.from_cluster) + " were dropped by " + who)) {
    return Failure::Transient("StoreUnavailable", "the prune happened but could not be recorded");
  }
  deps_.events->Emit(workspace, "Normal", "MovePruned", move.id + ": " + move.message);
  return move;
}

std::string MoveRunner::DumpFolder() const {
  return (deps_.config->backups.directory / ".moves").string();
}

void MoveRunner::RemoveLeftDumps() const {
  std::error_code error;
  int removed = 0;
  for (const auto& file : std::filesystem::directory_iterator(DumpFolder(), error)) {
    std::error_code kind;
    if (!file.is_regular_file(kind) || file.is_symlink(kind)) continue;
    std::error_code gone;
    if (std::filesystem::remove(file.path(), gone)) {
      ++removed;
    } else if (gone) {
      spdlog::warn("moves: cannot remove a dump an earlier term left, {}: {}",
                   file.path().string(), gone.message());
    }
  }
  if (removed > 0) spdlog::info("moves: removed {} dump file(s) an earlier term left", removed);
}

}  // namespace tmaster::controller
