#include "controller/api/rate_limit.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <cmath>

namespace tmaster::controller {
namespace {

constexpr std::size_t kMaxKeyBytes = 64;

}  // namespace

std::string AddressKey(std::string_view address) {
  const std::string text(address.substr(0, address.find('%')));
  std::array<unsigned char, 16> bytes{};
  if (inet_pton(AF_INET, text.c_str(), bytes.data()) == 1) return text;
  if (inet_pton(AF_INET6, text.c_str(), bytes.data()) != 1) {
    return std::string(address.substr(0, kMaxKeyBytes));
  }
  std::array<char, INET6_ADDRSTRLEN> out{};
  constexpr std::array<unsigned char, 12> kMappedPrefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(kMappedPrefix.begin(), kMappedPrefix.end(), bytes.begin())) {
    inet_ntop(AF_INET, bytes.data() + 12, out.data(), out.size());
    return out.data();
  }
  std::fill(bytes.begin() + 8, bytes.end(), 0);
  inet_ntop(AF_INET6, bytes.data(), out.data(), out.size());
  return std::string(out.data()) + "/64";
}

RateLimiter::RateLimiter(RateLimit limit) : limit_(limit) {
  limit_.per_second = std::max(limit_.per_second, 1e-9);
  limit_.burst = std::max(limit_.burst, 1.0);
  const double refill_seconds = std::min(limit_.burst / limit_.per_second, 1e9);
  refill_ = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(refill_seconds));
  overflow_.tokens = limit_.burst;
}

RateLimiter::Decision RateLimiter::Take(Bucket& bucket, Clock::time_point now) const {
  if (now > bucket.updated) {
    const double elapsed = std::chrono::duration<double>(now - bucket.updated).count();
    bucket.tokens = std::min(limit_.burst, bucket.tokens + elapsed * limit_.per_second);
    bucket.updated = now;
  }
  if (bucket.tokens >= 1) {
    bucket.tokens -= 1;
    return {};
  }
  const double wait = std::ceil((1 - bucket.tokens) / limit_.per_second);
  return {false, std::chrono::seconds(static_cast<std::int64_t>(std::clamp(wait, 1.0, 86400.0)))};
}

RateLimiter::Bucket* RateLimiter::Find(const std::string& key, Clock::time_point now) {
  if (auto found = buckets_.find(key); found != buckets_.end()) return &found->second;
  if (buckets_.size() >= limit_.max_addresses && (!swept_ || now - last_sweep_ >= refill_)) {
    // A bucket left alone for the whole refill time is full again: forgetting it changes
    // nothing. Sweeping at most once per refill time keeps a table full of busy addresses from
    // costing a pass over it on every request.
    swept_ = true;
    last_sweep_ = now;
    std::erase_if(buckets_, [&](const auto& entry) { return now - entry.second.updated >= refill_; });
  }
  if (buckets_.size() >= limit_.max_addresses) return nullptr;
  return &buckets_.emplace(key, Bucket{limit_.burst, now}).first->second;
}

RateLimiter::Decision RateLimiter::Allow(std::string_view address, Clock::time_point now) {
  const std::string key = AddressKey(address);
  const std::lock_guard lock(mutex_);
  Bucket* bucket = Find(key, now);
  return Take(bucket != nullptr ? *bucket : overflow_, now);
}

std::size_t RateLimiter::size() const {
  const std::lock_guard lock(mutex_);
  return buckets_.size();
}

}  // namespace tmaster::controller
