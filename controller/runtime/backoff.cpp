#include "controller/runtime/backoff.hpp"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>

namespace tmaster::controller {

Backoff::Backoff(Random& random, BackoffOptions options) : random_(random), options_(options) {
  assert(options_.base > Duration::zero() && "Backoff: base must be positive");
  assert(options_.max >= options_.base && "Backoff: max must not be below base");
  assert(options_.jitter >= 0.0 && "Backoff: jitter must not be negative");
}

Duration Backoff::When(const std::string& name) {
  std::uint32_t& failures = failures_[name];
  const Duration delay = Exponential(failures);
  // Saturate rather than wrap: a name failing forever must stay at the cap, not restart at base.
  if (failures < std::numeric_limits<std::uint32_t>::max()) ++failures;
  return Jittered(delay, options_.jitter, random_);
}

void Backoff::Forget(const std::string& name) { failures_.erase(name); }

std::uint32_t Backoff::Failures(const std::string& name) const {
  const auto it = failures_.find(name);
  return it == failures_.end() ? 0 : it->second;
}

Duration Backoff::Exponential(std::uint32_t failures) const {
  // In double, so 2^failures cannot overflow an integer before the cap is applied.
  const double base = static_cast<double>(options_.base.count());
  const double max = static_cast<double>(options_.max.count());
  const double delay = std::min(std::ldexp(base, static_cast<int>(std::min(failures, 1024u))), max);
  return Duration(static_cast<Duration::rep>(delay));
}

Duration Jittered(Duration delay, double fraction, Random& random) {
  const double factor = 1.0 + fraction * random.Uniform01();
  return Duration(static_cast<Duration::rep>(static_cast<double>(delay.count()) * factor));
}

}  // namespace tmaster::controller
