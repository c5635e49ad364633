#include "controller/daemon/shared_runtime_loop.hpp"

#include <spdlog/spdlog.h>

#include "common/scrub.hpp"
#include "controller/daemon/runtime_api.hpp"

namespace tmaster::controller {

Outcome<SourceRead> CleanReadSource::Read(const std::string& last_applied) {
  bool before = false;
  {
    const std::lock_guard lock(mutex_);
    ++mark_.reads;
    before = mark_.clean;
    mark_.clean = false;  // unclean while this read is made and applied
    pending_ = false;
  }
  Outcome<SourceRead> read = inner_->Read(last_applied);
  const std::lock_guard lock(mutex_);
  if (read) pending_ = read->unchanged ? before : !read->fleet.HasErrors();
  return read;
}

void CleanReadSource::WaitForChange(Duration limit) {
  {
    // The runner waits only once the read before is applied (or failed): its verdict counts.
    const std::lock_guard lock(mutex_);
    mark_.clean = pending_;
  }
  inner_->WaitForChange(limit);
}

CleanReadSource::Mark CleanReadSource::Current() const {
  const std::lock_guard lock(mutex_);
  return mark_;
}

SharedRuntimeLoop::SharedRuntimeLoop(const StacksContext& stacks, EventRecorder& events,
                                     std::function<Pass()> pass, Duration resync_interval)
    : stacks_(stacks),
      events_(events),
      pass_(std::move(pass)),
      resync_interval_(resync_interval) {}

SharedRuntimeLoop::~SharedRuntimeLoop() { Stop(); }

void SharedRuntimeLoop::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void SharedRuntimeLoop::Kick() {
  {
    const std::lock_guard lock(mutex_);
    kicked_ = true;
  }
  wake_.notify_all();
}

void SharedRuntimeLoop::Stop() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

int SharedRuntimeLoop::Calls() const {
  const std::lock_guard lock(mutex_);
  return calls_;
}

void SharedRuntimeLoop::Loop() {
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      // A kick, or the resync interval without one: either way one call.
      wake_.wait_for(lock, resync_interval_, [this] { return kicked_ || stopping_; });
      if (stopping_) return;
      kicked_ = false;
    }
    const Pass pass = pass_();
    const SharedRuntimeReport report = ConvergeSharedRuntimes(
        pass.products, stacks_, {.dry_run = false, .deep = false, .prune = pass.prune,
                                 .endpoints = pass.endpoints});
    Record(report);
    const std::lock_guard lock(mutex_);
    ++calls_;
  }
}

void SharedRuntimeLoop::Record(const SharedRuntimeReport& report) {
  std::map<std::string, std::string> now;
  for (const SharedRuntimeResult& runtime : report.runtimes) {
    const std::string state = runtime.ready ? std::string("Ready") : runtime.reason;
    now[runtime.product] = state;
    const auto last = last_.find(runtime.product);
    const bool changed = last == last_.end() || last->second != state;
    if (!changed) {
      // Still failing: said in the log at every call, recorded once.
      if (!runtime.ready) {
        spdlog::warn("shared runtime of product {}: {}: {}", runtime.product, runtime.reason,
                     ScrubProcessSecrets(runtime.message));
      }
      continue;
    }
    if (runtime.ready) {
      events_.Emit(RuntimeEventsWorkspace(runtime.product), "Normal", "RuntimeReady",
                   runtime.message);
    } else {
      events_.Emit(RuntimeEventsWorkspace(runtime.product), "Warning", runtime.reason,
                   runtime.message);
    }
  }
  for (std::size_t i = 0; i < report.pruned.size(); ++i) {
    const std::string& product = report.pruned_products[i];
    events_.Emit(RuntimeEventsWorkspace(product), "Normal", "RuntimeRemoved", report.pruned[i]);
  }
  // A product that no longer declares a runtime is forgotten: declared again, it is new.
  last_ = std::move(now);
  if (report.prune_failed) {
    spdlog::warn("shared runtimes: stale runtimes not deleted: {}: {}",
                 report.prune_failed->reason, ScrubProcessSecrets(report.prune_failed->message));
  }
}

}  // namespace tmaster::controller
