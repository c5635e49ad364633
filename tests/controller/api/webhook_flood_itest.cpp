// Junk webhooks do not fill the store (issue 9, "bounded store"): unsigned `POST /hooks/git`
// deliveries flood the real HttpServer on a real PostgreSQL store from several keep-alive
// clients, while /healthz is probed every 50 ms and the deliveries table is measured every
// 200 ms. Once with the per-address rate limit (most answered 429, never stored), once with the
// limit raised so that every delivery reaches the ring of rejected deliveries. The 100,000-post
// run of the issue is bench/webhook_flood_bench.cpp (bench/README.md); this test sends
// TM_FLOOD_POSTS (default 10,000) so that it stays well under a minute on 2 busy cores.

#include <doctest/doctest.h>

#include "tests/controller/api/webhook_flood.hpp"

namespace tmaster::controller {
namespace {

using flood::Flooded;
using flood::FloodPosts;
using flood::MaxTableBytes;
using flood::kRing;
using flood::Run;

long Answered(const Flooded& flooded, int status) {
  const auto found = flooded.figures.statuses.find(status);
  return found == flooded.figures.statuses.end() ? 0 : found->second;
}

void CheckBounded(const Flooded& flooded, long posts) {
  CHECK(Answered(flooded, 0) == 0);  // every post answered
  CHECK(flooded.rejected + flooded.limited == posts);
  CHECK(flooded.worst.rows <= kRing);
  CHECK(flooded.worst.bytes <= MaxTableBytes(flooded.rejected));
  CHECK(flooded.figures.probes > 0);
  CHECK(flooded.figures.probe_failures == 0);
  CHECK(flooded.figures.probe_worst_ms < 1000);
}

}  // namespace

TEST_CASE("webhook flood: with the rate limit, most posts are 429 and never stored") {
  const long posts = FloodPosts();
  // The defaults: 10 per second, bursts of 50, per address; every client is 127.0.0.1.
  const Flooded flooded = Run("tm_flood_limited", RateLimit{}, posts);
  CheckBounded(flooded, posts);
  CHECK(Answered(flooded, 429) == flooded.limited);
  CHECK(flooded.limited > posts / 2);
  // The burst, and 10 a second after it: a small part of the posts reached the store.
  CHECK(flooded.rejected >= 50);
  CHECK(flooded.rejected <= 50 + static_cast<long>(flooded.figures.seconds * 10) + 10);
}

TEST_CASE("webhook flood: with the limit raised, every post reaches the ring and it stays bounded") {
  const long posts = FloodPosts();
  const Flooded flooded =
      Run("tm_flood_ring", RateLimit{.per_second = 1e9, .burst = 1e9}, posts);
  CheckBounded(flooded, posts);
  CHECK(flooded.limited == 0);
  CHECK(Answered(flooded, 401) == posts);
}

}  // namespace tmaster::controller
