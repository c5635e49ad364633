#include "controller/daemon/health_gate.hpp"

#include <vector>

namespace tmaster::controller {

HealthTarget HealthTargetFor(const std::string& base_url, const std::string& host,
                             const std::string& path) {
  std::string base = base_url.empty() ? "https://" + host : base_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  return {base + path, host};
}

HealthGate::HealthGate(HealthProber& prober, std::function<std::int64_t()> now_ms,
                       std::chrono::milliseconds interval)
    : prober_(prober), now_ms_(std::move(now_ms)), interval_(interval) {}

HealthGate::~HealthGate() { Stop(); }

std::int64_t HealthGate::Now() const {
  if (now_ms_) return now_ms_();
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

HealthGate::Result HealthGate::Check(const std::string& key, const HealthTarget& target,
                                     std::chrono::seconds timeout) {
  const std::int64_t now = Now();
  bool added = false;
  Result result;
  {
    const std::lock_guard lock(mutex_);
    auto [it, inserted] = probes_.try_emplace(key);
    Probe& probe = it->second;
    if (inserted) {
      probe.target = target;
      probe.timeout = timeout;
      probe.deadline_ms = now + std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
      probe.next_ms = now;
      added = true;
    }
    probe.asked_ms = now;
    // Past its deadline with no 2xx: failed, whether or not the thread got to say so.
    if (probe.result.verdict == Verdict::kWaiting && now >= probe.deadline_ms) {
      probe.result = {Verdict::kFailed,
                      "health check GET " + probe.target.url + " (Host: " + probe.target.host +
                          ") did not answer 2xx within " + std::to_string(probe.timeout.count()) +
                          "s" + (probe.last.empty() ? "" : "; last: " + probe.last)};
    }
    result = probe.result;
  }
  if (added) wake_.notify_all();
  return result;
}

void HealthGate::Sweep(std::chrono::milliseconds idle) {
  const std::int64_t now = Now();
  const std::lock_guard lock(mutex_);
  for (auto it = probes_.begin(); it != probes_.end();) {
    it = now - it->second.asked_ms > idle.count() ? probes_.erase(it) : std::next(it);
  }
}

void HealthGate::ProbeDue() {
  std::vector<std::pair<std::string, HealthTarget>> due;
  const std::int64_t now = Now();
  {
    const std::lock_guard lock(mutex_);
    for (auto& [key, probe] : probes_) {
      if (probe.result.verdict != Verdict::kWaiting || probe.next_ms > now) continue;
      probe.next_ms = now + interval_.count();
      due.emplace_back(key, probe.target);
    }
  }
  for (const auto& [key, target] : due) {
    Outcome<int> answer = prober_.Get(target.url, target.host, std::chrono::seconds(5));
    const std::lock_guard lock(mutex_);
    const auto it = probes_.find(key);
    if (it == probes_.end() || it->second.result.verdict != Verdict::kWaiting) continue;
    if (answer && *answer >= 200 && *answer < 300) {
      it->second.result = {Verdict::kPassed, ""};
    } else {
      it->second.last = answer ? "HTTP " + std::to_string(*answer) : answer.failure().message;
    }
  }
}

void HealthGate::Start() {
  {
    const std::lock_guard lock(mutex_);
    if (thread_.joinable()) return;
    stopping_ = false;
  }
  thread_ = std::thread([this] { Loop(); });
}

void HealthGate::Stop() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void HealthGate::Loop() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    ProbeDue();
    Sweep(std::chrono::hours(1));
    lock.lock();
    wake_.wait_for(lock, std::chrono::milliseconds(200), [this] { return stopping_; });
  }
}

}  // namespace tmaster::controller
