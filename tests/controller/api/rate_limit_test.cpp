#include "controller/api/rate_limit.hpp"

#include <doctest/doctest.h>

#include <string>

namespace tmaster::controller {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = RateLimiter::Clock;

const Clock::time_point kStart = Clock::time_point() + std::chrono::hours(1);

}  // namespace

TEST_CASE("AddressKey: IPv4 as is, IPv6 by /64, mapped IPv4 as IPv4") {
  CHECK(AddressKey("192.0.2.7") == "192.0.2.7");
  CHECK(AddressKey("::ffff:192.0.2.7") == "192.0.2.7");
  CHECK(AddressKey("2001:db8:1:2:aaaa:bbbb:cccc:dddd") == "2001:db8:1:2::/64");
  CHECK(AddressKey("2001:db8:1:2::1") == AddressKey("2001:db8:1:2:ffff::9"));
  CHECK(AddressKey("2001:db8:1:3::1") != AddressKey("2001:db8:1:2::1"));
  CHECK(AddressKey("fe80::1%eth0") == "fe80::/64");
  CHECK(AddressKey("::1") == "::/64");
  CHECK(AddressKey("") == "");
  CHECK(AddressKey(std::string(500, 'x')).size() == 64);
}

TEST_CASE("RateLimiter: a burst, then the rate, with Retry-After in whole seconds") {
  RateLimiter limiter({.per_second = 10, .burst = 50});
  for (int i = 0; i < 50; ++i) REQUIRE(limiter.Allow("192.0.2.1", kStart).allowed);
  const RateLimiter::Decision refused = limiter.Allow("192.0.2.1", kStart);
  CHECK_FALSE(refused.allowed);
  CHECK(refused.retry_after == seconds(1));
  // Another address has its own bucket.
  CHECK(limiter.Allow("192.0.2.2", kStart).allowed);
  // 10 per second: after 300 ms, three more and no fourth.
  const auto later = kStart + milliseconds(300);
  for (int i = 0; i < 3; ++i) CHECK(limiter.Allow("192.0.2.1", later).allowed);
  CHECK_FALSE(limiter.Allow("192.0.2.1", later).allowed);
  // A slow rate says how long to wait.
  RateLimiter slow({.per_second = 0.1, .burst = 1});
  CHECK(slow.Allow("a", kStart).allowed);
  CHECK(slow.Allow("a", kStart).retry_after == seconds(10));
}

TEST_CASE("RateLimiter: the addresses of one IPv6 /64 share a bucket") {
  RateLimiter limiter({.per_second = 1, .burst = 2});
  CHECK(limiter.Allow("2001:db8::1", kStart).allowed);
  CHECK(limiter.Allow("2001:db8::2", kStart).allowed);
  CHECK_FALSE(limiter.Allow("2001:db8::3", kStart).allowed);
  CHECK(limiter.Allow("2001:db8:0:1::1", kStart).allowed);
}

TEST_CASE("RateLimiter: many addresses keep the table bounded and share one overflow bucket") {
  RateLimiter limiter({.per_second = 1, .burst = 5, .max_addresses = 100});
  // A busy address already known keeps its own bucket however many others come.
  for (int i = 0; i < 5; ++i) REQUIRE(limiter.Allow("198.51.100.1", kStart).allowed);
  int allowed = 0;
  for (int i = 0; i < 100'000; ++i) {
    const std::string address =
        "10." + std::to_string(i / 65536) + "." + std::to_string(i / 256 % 256) + "." +
        std::to_string(i % 256);
    if (limiter.Allow(address, kStart).allowed) ++allowed;
  }
  CHECK(limiter.size() == 100);
  // 99 new addresses fit, 5 requests each at most once; the rest share 5 tokens.
  CHECK(allowed == 99 + 5);
  CHECK_FALSE(limiter.Allow("198.51.100.1", kStart).allowed);  // not reset by the churn
  // Once their buckets have refilled, the quiet addresses are forgotten and new ones get room.
  const auto later = kStart + seconds(6);
  CHECK(limiter.Allow("203.0.113.9", later).allowed);
  CHECK(limiter.size() == 1);
}

}  // namespace tmaster::controller
