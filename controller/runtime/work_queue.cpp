#include "controller/runtime/work_queue.hpp"

#include <cassert>
#include <utility>

namespace tmaster::controller {

namespace {

// Symmetric around the interval, so the mean resync period stays the configured one while
// replicas and workspaces drift apart instead of resyncing in lockstep.
Duration SpreadAround(Duration interval, double fraction, Random& random) {
  const double factor = 1.0 + fraction * (2.0 * random.Uniform01() - 1.0);
  return Duration(static_cast<Duration::rep>(static_cast<double>(interval.count()) * factor));
}

}  // namespace

WorkQueue::WorkQueue(const Clock& clock, Random& random, WorkQueueOptions options)
    : clock_(clock), random_(random), options_(options), backoff_(random, options.backoff) {
  assert(options_.resync_jitter >= 0.0 && options_.resync_jitter < 1.0 &&
         "WorkQueue: resync_jitter must be in [0, 1)");
}

void WorkQueue::Add(const std::string& name) {
  const std::lock_guard lock(mutex_);
  AddLocked(name);
}

void WorkQueue::AddAfter(const std::string& name, Duration delay) {
  const std::lock_guard lock(mutex_);
  AddAfterLocked(name, delay);
}

Duration WorkQueue::AddRateLimited(const std::string& name) {
  const std::lock_guard lock(mutex_);
  if (shutting_down_) return Duration::zero();
  ++retries_;
  Duration delay{};
  if (auto planned = planned_.find(name); planned != planned_.end()) {
    delay = planned->second;  // already counted by PlanRetry
    planned_.erase(planned);
  } else {
    delay = backoff_.When(name);
  }
  AddAfterLocked(name, delay);
  return delay;
}

Duration WorkQueue::PlanRetry(const std::string& name) {
  const std::lock_guard lock(mutex_);
  if (auto planned = planned_.find(name); planned != planned_.end()) return planned->second;
  const Duration delay = backoff_.When(name);
  planned_[name] = delay;
  return delay;
}

void WorkQueue::Forget(const std::string& name) {
  const std::lock_guard lock(mutex_);
  backoff_.Forget(name);
  planned_.erase(name);
}

Duration WorkQueue::Succeeded(const std::string& name, Duration resync_interval) {
  const std::lock_guard lock(mutex_);
  backoff_.Forget(name);
  planned_.erase(name);
  if (shutting_down_) return Duration::zero();
  const Duration delay = SpreadAround(resync_interval, options_.resync_jitter, random_);
  AddAfterLocked(name, delay);
  return delay;
}

std::uint32_t WorkQueue::Failures(const std::string& name) const {
  const std::lock_guard lock(mutex_);
  return backoff_.Failures(name);
}

std::optional<std::string> WorkQueue::Get() {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (shutting_down_) return std::nullopt;
    MoveDueLocked();
    if (auto name = PopLocked()) return name;
    ++waiting_;
    if (delayed_.empty()) {
      ready_.wait(lock);
    } else {
      // The clock may be a fake, so its time_point is not a deadline the condition variable
      // understands; the remaining interval is. With the real clock both are the same.
      ready_.wait_for(lock, delayed_.begin()->first.due - clock_.Now());
    }
    --waiting_;
  }
}

std::optional<std::string> WorkQueue::TryGet() {
  const std::lock_guard lock(mutex_);
  if (shutting_down_) return std::nullopt;
  MoveDueLocked();
  return PopLocked();
}

void WorkQueue::Done(const std::string& name) {
  const std::lock_guard lock(mutex_);
  if (processing_.erase(name) == 0) return;
  if (dirty_.contains(name) && !shutting_down_) {
    queue_.push_back(name);
    ready_.notify_one();
  }
  if (processing_.empty()) drained_.notify_all();
}

std::size_t WorkQueue::Tick() {
  const std::lock_guard lock(mutex_);
  // Each name moved is queued by AddLocked, which wakes a blocked Get.
  return MoveDueLocked();
}

std::size_t WorkQueue::Len() const {
  const std::lock_guard lock(mutex_);
  return queue_.size();
}

void WorkQueue::ShutDown() {
  const std::lock_guard lock(mutex_);
  shutting_down_ = true;
  ready_.notify_all();
}

void WorkQueue::ShutDownWithDrain() {
  std::unique_lock lock(mutex_);
  shutting_down_ = true;
  ready_.notify_all();
  drained_.wait(lock, [this] { return processing_.empty(); });
}

bool WorkQueue::ShuttingDown() const {
  const std::lock_guard lock(mutex_);
  return shutting_down_;
}

WorkQueueStats WorkQueue::Stats() const {
  const std::lock_guard lock(mutex_);
  return {adds_, retries_, queue_.size(), delayed_.size(), processing_.size(), waiting_};
}

void WorkQueue::AddLocked(const std::string& name) {
  if (shutting_down_) return;
  if (!dirty_.insert(name).second) return;  // already queued, or already re-added meanwhile
  ++adds_;
  if (processing_.contains(name)) return;  // Done queues it: never two workers on one name
  queue_.push_back(name);
  ready_.notify_one();
}

void WorkQueue::AddAfterLocked(const std::string& name, Duration delay) {
  if (shutting_down_) return;
  if (delay <= Duration::zero()) {
    AddLocked(name);
    return;
  }
  const DelayedKey key{clock_.Now() + delay, next_sequence_++};
  if (const auto it = delayed_by_name_.find(name); it != delayed_by_name_.end()) {
    if (it->second.due <= key.due) return;  // the earlier add wins
    delayed_.erase(it->second);
    delayed_by_name_.erase(it);
  }
  delayed_.emplace(key, name);
  delayed_by_name_.emplace(name, key);
  // A new earliest deadline: blocked Gets must shorten their wait.
  if (delayed_.begin()->first == key) ready_.notify_all();
}

std::size_t WorkQueue::MoveDueLocked() {
  const TimePoint now = clock_.Now();
  std::size_t moved = 0;
  while (!delayed_.empty() && delayed_.begin()->first.due <= now) {
    const auto first = delayed_.begin();
    const std::string name = first->second;
    delayed_by_name_.erase(name);
    delayed_.erase(first);
    AddLocked(name);
    ++moved;
  }
  return moved;
}

std::optional<std::string> WorkQueue::PopLocked() {
  if (queue_.empty()) return std::nullopt;
  std::string name = std::move(queue_.front());
  queue_.pop_front();
  dirty_.erase(name);
  processing_.insert(name);
  // This run supersedes a pending delayed add of the same name (see work_queue.hpp).
  if (const auto it = delayed_by_name_.find(name); it != delayed_by_name_.end()) {
    delayed_.erase(it->second);
    delayed_by_name_.erase(it);
  }
  return name;
}

}  // namespace tmaster::controller
