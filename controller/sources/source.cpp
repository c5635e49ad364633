#include "controller/sources/source.hpp"

namespace tmaster::controller {

void WakeSignal::Wait(Duration limit) {
  std::unique_lock lock(mutex_);
  cv_.wait_for(lock, limit, [&] { return interrupted_ || wake_; });
  wake_ = false;
}

void WakeSignal::Wake() {
  {
    const std::lock_guard lock(mutex_);
    wake_ = true;
  }
  cv_.notify_all();
}

void WakeSignal::Interrupt() {
  {
    const std::lock_guard lock(mutex_);
    interrupted_ = true;
  }
  cv_.notify_all();
}

bool WakeSignal::Interrupted() const {
  const std::lock_guard lock(mutex_);
  return interrupted_;
}

manifests::LoadOptions MakeLoadOptions(const manifests::Config& config) {
  manifests::LoadOptions load;
  load.reserved_subdomains = config.reserved_subdomains;
  load.known_clusters.emplace();
  for (const auto& cluster : config.clusters) load.known_clusters->insert(cluster.name);
  return load;
}

}  // namespace tmaster::controller
