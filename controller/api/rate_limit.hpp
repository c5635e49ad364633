#pragma once

// Per-address rate limits for the routes anyone on the network can call: `POST /hooks/git` and
// the dashboard's `POST /login` (HttpServerOptions; docs/decisions.md, "Hardening II (issue 9)").
// A token bucket per client address in a table of bounded size, so that an attacker with many
// addresses cannot grow the process's memory. Pure: the time is passed in; no I/O.

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace tmaster::controller {

/// One limit: `burst` requests at once, then `per_second` on average, per address.
struct RateLimit {
  double per_second = 10;
  double burst = 50;
  /// Addresses remembered at once. Beyond, addresses not yet in the table share one bucket of
  /// the same size (see RateLimiter::Allow), so memory stays bounded (about 150 bytes each).
  std::size_t max_addresses = 10'000;
};

/// The key an address is limited by: an IPv4 address as is ("192.0.2.7"), an IPv4-mapped IPv6
/// address as its IPv4 ("::ffff:192.0.2.7" -> "192.0.2.7"), any other IPv6 address by its /64
/// ("2001:db8:1:2::/64": a single host is usually given a whole /64, so limiting /128s would let
/// it rotate through 2^64 keys). A zone ("%eth0") is dropped. Text that is no address (an empty
/// string when the socket could not tell) is its own key, cut to 64 bytes.
std::string AddressKey(std::string_view address);

/// Token buckets by AddressKey. Safe to call from several threads.
class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  struct Decision {
    bool allowed = true;
    /// When refused: whole seconds until a request would be allowed again (at least 1); the
    /// value of a `Retry-After` header. 0 when allowed.
    std::chrono::seconds retry_after{0};
  };

  explicit RateLimiter(RateLimit limit);

  /// Takes one token from the bucket of `address` at time `now` (a new address starts with a
  /// full bucket of `burst`). A full table first forgets the addresses whose bucket has refilled
  /// completely (they are the same as new ones), at most once per refill time; if none can be
  /// forgotten, a new address draws from the shared overflow bucket instead: an address already
  /// in the table is never evicted by others, so churning addresses cannot reset its bucket.
  Decision Allow(std::string_view address, Clock::time_point now);

  /// Addresses currently remembered (the overflow bucket not included).
  [[nodiscard]] std::size_t size() const;

 private:
  struct Bucket {
    double tokens = 0;
    Clock::time_point updated;
  };

  Decision Take(Bucket& bucket, Clock::time_point now) const;
  Bucket* Find(const std::string& key, Clock::time_point now);

  RateLimit limit_;
  Clock::duration refill_;  // from empty to full
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Bucket> buckets_;
  Bucket overflow_;
  Clock::time_point last_sweep_;
  bool swept_ = false;
};

}  // namespace tmaster::controller
