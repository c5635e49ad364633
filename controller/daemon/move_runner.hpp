#pragma once
// The leader's moves (docs/moves.md): a workspace's database moved to another cluster as a
// recorded state machine (Store::PutMove, one row per workspace), advanced by one thread:
//
//   prepare  the target's role (NOLOGIN) and database made, as a pass would make them
//   suspend  logins closed, sessions ended, stack stopped (a suspend override), Suspended waited
//   dump     pg_dump of the source as its admin (backups::Dump)
//   restore  into the target as the tenant role (backups::Restore)
//   verify   each table's row count and digest, on both sides (backups::SumTables)
//   switch   placement and recorded identity point at the target, in one store transaction
//   resume   the source's marker says `moved`, the override cleared, Ready waited: the next pass
//            converges the target and rolls the stack with its new DB_HOST/DB_PORT/DATABASE_URL
//
// A failure before the switch rolls back: the target's copy dropped, the tenant resumed on its
// source, the reason recorded. After the switch it rolls forward. A term that finds a move
// unfinished (the operator died) does the same from the recorded step. The source is kept
// NOLOGIN, marked `moved`, until Prune drops it.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "common/secret.hpp"
#include "controller/moves/service.hpp"
#include "controller/runtime/events.hpp"
#include "controller/sources/desired_state.hpp"
#include "controller/store/store.hpp"
#include "controller/workspace/overrides.hpp"
#include "controller/workspace/placer.hpp"
#include "controller/workspace/reconcile_pass.hpp"
#include "manifests/config.hpp"

namespace tmaster::controller {

/// The caller owns everything pointed to and keeps it alive as long as the runner.
struct MoveRunnerDeps {
  const manifests::Config* config = nullptr;  ///< clusters; `backups.directory` holds the dumps
  Store* store = nullptr;
  DesiredState* desired = nullptr;
  EventRecorder* events = nullptr;
  Overrides* overrides = nullptr;  ///< a move suspends its workspace through them
  OverrideStore* override_store = nullptr;
  Gateways gateways;              ///< by cluster name
  std::map<std::string, Secret> admin_dsns;  ///< by cluster name: pg_dump, pg_restore, sums
  const Secret* master_key = nullptr;
  Placer* placer = nullptr;
  std::string store_database = "tenant_master";
  /// Queues a name for the reconciler; false when not leading.
  std::function<bool(const std::string&)> enqueue;
  /// Told after a switch (the daemon's reconciler reads the identity again).
  std::function<void(const std::string&)> switched;
  /// Seconds since the epoch; empty: the system clock.
  std::function<std::int64_t()> now_unix;
  std::string pg_bin_dir;  ///< empty: the engine finds the Debian tools
  /// How long the workspace may take to reach Suspended, and Ready after the switch.
  std::chrono::seconds phase_wait{120};
};

class MoveRunner final : public moves::MoveService {
 public:
  explicit MoveRunner(MoveRunnerDeps deps);
  ~MoveRunner() override;
  MoveRunner(const MoveRunner&) = delete;
  MoveRunner& operator=(const MoveRunner&) = delete;

  /// A leadership term begins: the thread starts and takes up every unfinished move recorded
  /// (rolled back before its switch, forward after). Idempotent.
  void Start();
  /// The term ends: the step in flight finishes (each is bounded); nothing new starts.
  void Stop();
  [[nodiscard]] bool Running() const;

  Outcome<StoredMove> RequestMove(const moves::MoveCall& call) override;
  Outcome<StoredMove> Prune(const std::string& workspace, const std::string& who) override;

 private:
  std::int64_t Now() const;
  void Worker();
  void Push(const std::string& workspace);
  /// Runs the recorded move of `workspace` to its end from its recorded step.
  void Drive(const std::string& workspace);
  /// Writes `move` (its version moves on); false when the store refused (logged).
  bool Save(StoredMove& move, const std::string& step, const std::string& message);
  Status RunSteps(StoredMove& move);
  Status Prepare(StoredMove& move);
  Status Suspend(StoredMove& move);
  Status Resume(StoredMove& move);
  /// Before the switch: the target's copy dropped, the override cleared; `failure` recorded.
  void RollBack(StoredMove& move, const Failure& failure);
  /// After the switch: the source marked, the override cleared, Ready waited.
  void Finish(StoredMove& move);
  Outcome<std::string> WaitForPhase(const std::string& workspace,
                                    const std::set<std::string>& phases);
  Outcome<postgres::DesiredTenant> DesiredOn(const std::string& workspace,
                                             const std::string& cluster) const;
  Status Reclaim(const std::string& workspace, const std::string& cluster,
                 const std::string& database, const std::string& role);
  Status MarkSourceMoved(const StoredMove& move);
  /// The workspace's database and role: its recorded identity (the desired state as a fallback).
  Outcome<std::pair<std::string, std::string>> NamesOf(const StoredMove& move);
  Status CarryMarkerState(const StoredMove& move, const std::string& database);
  std::string DumpFolder() const;
  void RemoveLeftDumps() const;
  void ClearOverride(StoredMove& move);
  /// The test hook (docs/moves.md#testing) at `step`: Ok unless TM_MOVE_TEST_FAULT names it.
  Status Fault(const std::string& step);

  MoveRunnerDeps deps_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool running_ = false;
  bool stopping_ = false;
  std::thread thread_;
  std::deque<std::string> queue_;
  std::set<std::string> active_;  ///< queued or running
  std::map<std::string, std::int64_t> suspended_at_ms_;  ///< for the downtime
  const std::pair<std::string, std::string> fault_;  ///< TM_MOVE_TEST_FAULT: step, fail|hang
};

}  // namespace tmaster::controller
