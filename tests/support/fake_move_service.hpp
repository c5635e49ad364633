#pragma once
// A MoveService (controller/moves/service.hpp) for the API's and tenantctl's tests: it answers
// what the test set (one failure for the next calls, the cluster moves start from) and records
// what it was asked. No move logic: the routes only pass its answers on. With a store, a move it
// records is written there (pending) and a prune rewrites the stored move, as the daemon's runner
// does, so that `GET .../move` reads what the write answered.

#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "controller/moves/service.hpp"
#include "controller/store/store.hpp"

namespace tmaster::testing {

class FakeMoveService final : public moves::MoveService {
 public:
  struct PruneCall {
    std::string workspace;
    std::string who;
  };

  /// `store`: where recorded moves are written (nullptr: nowhere). `now_unix`: their times.
  explicit FakeMoveService(controller::Store* store = nullptr, std::int64_t now_unix = 1796299200)
      : store_(store), now_unix_(now_unix) {}

  Outcome<controller::StoredMove> RequestMove(const moves::MoveCall& call) override {
    const std::lock_guard lock(mutex_);
    requests_.push_back(call);
    if (fail_) return *fail_;
    controller::StoredMove move;
    move.workspace = call.workspace;
    move.id = "mv-" + call.workspace + "-" + std::to_string(now_unix_) + "-a1b2";
    move.from_cluster = from_;
    move.to_cluster = call.to;
    move.state = std::string(moves::kPending);
    move.step = "prepare";
    move.message = "move to " + call.to + " recorded";
    move.who = call.who;
    move.requested_unix = now_unix_;
    move.updated_unix = now_unix_;
    return Keep(std::move(move));
  }

  Outcome<controller::StoredMove> Prune(const std::string& workspace,
                                        const std::string& who) override {
    const std::lock_guard lock(mutex_);
    prunes_.push_back({workspace, who});
    if (fail_) return *fail_;
    controller::StoredMove move;
    if (store_ != nullptr) {
      Outcome<std::optional<controller::StoredMove>> found = store_->FindMove(workspace);
      if (!found) return found.failure();
      if (!*found) {
        return Failure::Stalled(std::string(moves::kNotFound),
                                "no move of workspace \"" + workspace + "\" is recorded");
      }
      move = **found;
    } else {
      move.workspace = workspace;
      move.id = "mv-" + workspace + "-1796290000-c3d4";
      move.from_cluster = from_;
      move.to_cluster = "c2";
      move.requested_unix = now_unix_ - 3600;
      move.finished_unix = now_unix_ - 3000;
      move.downtime_ms = 4200;
      move.switched = true;
    }
    move.state = std::string(moves::kPruned);
    move.step = "prune";
    move.message = "source database and role dropped on " + move.from_cluster;
    move.pruned_unix = now_unix_;
    move.updated_unix = now_unix_;
    return Keep(std::move(move));
  }

  /// What the next calls answer: `failure`, or (nullopt) a move.
  void Fail(std::optional<Failure> failure) {
    const std::lock_guard lock(mutex_);
    fail_ = std::move(failure);
  }
  /// The cluster the moves it records start from (default c1).
  void From(std::string cluster) {
    const std::lock_guard lock(mutex_);
    from_ = std::move(cluster);
  }
  std::vector<moves::MoveCall> Requests() const {
    const std::lock_guard lock(mutex_);
    return requests_;
  }
  std::vector<PruneCall> Prunes() const {
    const std::lock_guard lock(mutex_);
    return prunes_;
  }

 private:
  // Writes `move` to the store, when there is one, over whatever version is there.
  Outcome<controller::StoredMove> Keep(controller::StoredMove move) {
    if (store_ == nullptr) return move;
    Outcome<std::optional<controller::StoredMove>> found = store_->FindMove(move.workspace);
    if (!found) return found.failure();
    move.version = *found ? (*found)->version : 0;
    Outcome<std::optional<std::int64_t>> version = store_->PutMove(move, now_unix_);
    if (!version) return version.failure();
    if (*version) move.version = **version;
    return move;
  }

  controller::Store* store_;
  std::int64_t now_unix_;
  mutable std::mutex mutex_;
  std::optional<Failure> fail_;
  std::string from_ = "c1";
  std::vector<moves::MoveCall> requests_;
  std::vector<PruneCall> prunes_;
};

}  // namespace tmaster::testing
