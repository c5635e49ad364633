#include "controller/runtime/manager.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>
#include <vector>

namespace tmaster::controller {

/// What the workers of one term share, owned jointly by the term and its workers: workers a
/// bounded drain gives up on are detached and may outlive the term.
struct Manager::Crew {
  Crew(const Clock& clock, Random& random, const WorkQueueOptions& options)
      : queue(clock, random, options) {}
  WorkQueue queue;
  std::mutex mutex;
  std::condition_variable done;
  int running = 0;  // guarded by mutex
};

Manager::Manager(ManagerDeps deps, ManagerOptions options)
    : deps_(std::move(deps)), options_(std::move(options)) {}

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

bool Manager::Run() {
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
    if (Lead() == TermEnd::kAbandoned) return false;  // the process ends; so does the session
    if (deps_.leader_lock != nullptr) deps_.leader_lock->Release();
  }
  return true;
}

Manager::TermEnd Manager::Lead() {
  leading_ = true;
  deps_.metrics->SetLeader(true);
  WorkQueueOptions queue_options;
  queue_options.backoff = options_.backoff;
  const auto crew = std::make_shared<Crew>(*deps_.clock, *deps_.random, queue_options);
  WorkQueue& queue = crew->queue;

  bool lost = false;
  std::vector<std::thread> workers;
  if (deps_.term->Begin(queue)) {
    // The first tick comes before the first poll: what starts with the term (the backup runner)
    // must be up by the time the workers have converged anything a client could act on.
    deps_.term->Tick();
    const int count = std::max(1, options_.workers);
    crew->running = count;
    for (int i = 0; i < count; ++i) {
      workers.emplace_back([this, crew] {
        WorkerLoop(crew->queue);
        const std::lock_guard lock(crew->mutex);
        --crew->running;
        crew->done.notify_all();
      });
    }
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
  // A lost lock waits for its workers (every statement they send has its own timeout); a Stop()
  // is bounded, since the process is asked to end.
  if (!lost && !Drain(*crew)) {
    for (std::thread& worker : workers) worker.detach();
    leading_ = false;
    return TermEnd::kAbandoned;
  }
  for (std::thread& worker : workers) worker.join();
  if (!lost) spdlog::info("stopped: in-flight work drained");
  deps_.term->End();
  leading_ = false;
  deps_.metrics->SetLeader(false);
  return lost ? TermEnd::kLost : TermEnd::kStopped;
}

bool Manager::Drain(Crew& crew) {
  std::unique_lock lock(crew.mutex);
  const auto idle = [&crew] { return crew.running == 0; };
  if (crew.done.wait_for(lock, options_.drain_timeout, idle)) return true;
  const auto seconds = [](Duration d) {
    return std::chrono::duration_cast<std::chrono::duration<double>>(d).count();
  };
  spdlog::warn("drain: {} worker(s) still busy after {:g}s (reconcile.drainTimeout): cancelling "
               "the statements in flight",
               crew.running, seconds(options_.drain_timeout));
  lock.unlock();
  if (deps_.cancel_in_flight) deps_.cancel_in_flight();
  lock.lock();
  if (crew.done.wait_for(lock, options_.cancel_grace, idle)) return true;
  spdlog::error("drain: {} worker(s) still busy {:g}s after the cancel: exiting without them",
                crew.running, seconds(options_.cancel_grace));
  return false;
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
