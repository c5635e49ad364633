#include "controller/runtime/manager.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>
#include <vector>

namespace tmaster::controller {

Manager::Manager(ManagerDeps deps, ManagerOptions options)
    : deps_(deps), options_(std::move(options)) {}

Manager::~Manager() {
  Stop();
}

void Manager::Stop() {
  {
    const std::lock_guard lock(stop_mutex_);
    stop_ = true;
  }
  stop_cv_.notify_all();
}

bool Manager::WaitForStop(Duration limit) {
  std::unique_lock lock(stop_mutex_);
  return stop_cv_.wait_for(lock, limit, [&] { return stop_.load(); });
}

void Manager::Run() {
  while (!stop_) {
    if (deps_.leader_lock != nullptr) {
      Outcome<bool> got = deps_.leader_lock->TryAcquire();
      if (!got || !*got) {
        if (!got) spdlog::warn("leader election: {}", got.failure().message);
        WaitForStop(options_.leader_poll);
        continue;
      }
      spdlog::info("leader election: this replica leads");
    }
    Lead();
    if (deps_.leader_lock != nullptr) deps_.leader_lock->Release();
  }
}

bool Manager::Lead() {
  leading_ = true;
  deps_.metrics->SetLeader(true);
  WorkQueueOptions queue_options;
  queue_options.backoff = options_.backoff;
  WorkQueue queue(*deps_.clock, *deps_.random, queue_options);

  bool lost = false;
  std::vector<std::thread> workers;
  if (deps_.term->Begin(queue)) {
    const int count = std::max(1, options_.workers);
    for (int i = 0; i < count; ++i) workers.emplace_back([this, &queue] { WorkerLoop(queue); });
    while (!WaitForStop(options_.leader_poll)) {
      if (deps_.leader_lock != nullptr) {
        Outcome<bool> held = deps_.leader_lock->StillHeld();
        if (!held || !*held) {
          lost = true;
          spdlog::error("leader election: lost the leader lock ({}); stopping the workers",
                        held ? "session ended" : held.failure().message);
          break;
        }
      }
      const WorkQueueStats stats = queue.Stats();
      deps_.metrics->SetWorkqueueDepth(static_cast<double>(stats.depth));
      deps_.metrics->SetWorkqueueRetries(stats.retries);
      deps_.term->Tick();
    }
  } else {
    lost = true;  // could not start (the store is unreachable): step down and try again
    WaitForStop(options_.leader_poll);
  }

  // Stop taking work at once; a worker finishes the action it is in, never starts another.
  queue.ShutDown();
  deps_.term->StopIntake();
  for (std::thread& worker : workers) worker.join();
  if (!lost) spdlog::info("stopped: in-flight work drained");
  deps_.term->End();
  leading_ = false;
  deps_.metrics->SetLeader(false);
  return lost;
}

void Manager::WorkerLoop(WorkQueue& queue) {
  while (std::optional<std::string> name = queue.Get()) {
    try {
      const Outcome<Result> outcome = deps_.reconciler->Reconcile({*name, &queue});
      Requeue(queue, *name, outcome);
    } catch (const std::exception& error) {
      // Last resort (docs/architecture.md#errors): log, count, retry as transient.
      spdlog::error("workspace {}: unexpected error: {}", *name, error.what());
      deps_.metrics->IncReconcile("failure");
      queue.AddRateLimited(*name);
    }
    queue.Done(*name);
  }
}

void Manager::Requeue(WorkQueue& queue, const std::string& name, const Outcome<Result>& outcome) {
  if (outcome) {
    if (outcome->requeue_after) {
      queue.Succeeded(name, *outcome->requeue_after);
    } else {
      queue.Forget(name);
    }
    return;
  }
  if (outcome.failure().kind == FailureKind::kStalled) {
    // No retry storm: a person must act. Look again at the next resync, or at once on a change.
    queue.Forget(name);
    queue.AddAfter(name, Jittered(options_.resync_interval, 0.1, *deps_.random));
    return;
  }
  queue.AddRateLimited(name);
}

}  // namespace tmaster::controller
