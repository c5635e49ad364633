// The 100,000 unsigned webhook posts (issue 9, "bounded store"), against the real
// HttpServer on a real PostgreSQL store: a baseline (the same number of GET /healthz, answered
// on the I/O thread), then the flood with the default per-address rate limit, then with the limit
// raised so that every post reaches the ring of rejected deliveries. Prints the figures recorded
// in bench/README.md ("webhook_flood_bench"). TM_FLOOD_POSTS sets the number (default 100,000).
// Built on request only: `cmake --build BUILD --target webhook_flood_bench && BUILD/webhook_flood_bench`.

#include <cstdio>

#include "tests/controller/api/webhook_flood.hpp"

namespace tmaster::controller {
namespace {

long PostsOr100k() {
  return std::getenv("TM_FLOOD_POSTS") != nullptr ? flood::FloodPosts() : 100'000L;
}

void Print(const char* name, const testing::FloodFigures& figures, long posts, double baseline,
           const flood::Flooded* flooded) {
  std::printf("%-22s %8ld posts %8.1f s %8.0f/s  x%5.1f baseline  probes %5ld, slowest %7.1f ms, "
              "failed %ld",
              name, posts, figures.seconds, figures.PerSecond(posts),
              baseline > 0 ? figures.seconds / baseline : 1.0, figures.probes,
              figures.probe_worst_ms, figures.probe_failures);
  if (flooded != nullptr) {
    std::printf("; stored %ld, rate limited %ld; table at most %ld rows, %ld bytes (bound %ld)",
                flooded->rejected, flooded->limited, flooded->worst.rows, flooded->worst.bytes,
                flood::MaxTableBytes(flooded->rejected));
  }
  std::printf("\n");
  std::fflush(stdout);
}

}  // namespace

TEST_CASE("webhook flood bench") {
  const long posts = PostsOr100k();
  testing::FloodFigures baseline;
  {
    // The store is never called by /healthz; the libpq store connects lazily.
    std::unique_ptr<Store> store =
        MakeLibpqStore(Secret(testing::PgServer::Shared().Dsn("tm_flood_baseline")));
    Metrics metrics;
    HttpServerOptions options;
    options.listen = "127.0.0.1:0";
    HttpServer server(*store, metrics, {}, options);
    REQUIRE(server.Start().ok());
    baseline = testing::Flood(server.port(),
                              "GET /healthz HTTP/1.1\r\nHost: flood\r\n\r\n", posts,
                              flood::kClients);
  }
  Print("baseline GET /healthz", baseline, posts, baseline.seconds, nullptr);
  const flood::Flooded limited = flood::Run("tm_flood_bench_limited", RateLimit{}, posts);
  Print("rate limited (default)", limited.figures, posts, baseline.seconds, &limited);
  const flood::Flooded ring =
      flood::Run("tm_flood_bench_ring", RateLimit{.per_second = 1e9, .burst = 1e9}, posts);
  Print("limit raised: the ring", ring.figures, posts, baseline.seconds, &ring);
}

}  // namespace tmaster::controller
