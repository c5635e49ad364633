#pragma once

// One webhook flood against the real HttpServer on a real PostgreSQL store (issue 9, "bounded
// store"), shared by tests/controller/api/webhook_flood_itest.cpp and
// bench/webhook_flood_bench.cpp: unsigned GitHub pushes from several keep-alive clients
// (flood_client.hpp), the deliveries table measured every 200 ms, the metrics read at the end.

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>

#include "common/secret.hpp"
#include "controller/api/http_server.hpp"
#include "controller/api/webhook.hpp"
#include "controller/runtime/metrics.hpp"
#include "controller/store/store_libpq.hpp"
#include "tests/controller/api/flood_client.hpp"
#include "tests/support/pg_server.hpp"

namespace tmaster::controller::flood {

using testing::PgServer;

inline constexpr int kClients = 4;
inline constexpr std::int64_t kRing = 1'000;  // Retention::rejected_deliveries, the default
// What pg_total_relation_size('tm_webhook_deliveries') may reach (heap, primary key,
// received_at index, free-space and visibility maps). A flooded row is 76 bytes in the heap (24
// of header, 48 of data, a 4-byte line pointer), 107 to an 8 KiB page: the ring of 1,000 takes 10
// pages; each index 20 bytes an entry, 3 leaf pages plus meta and root. About 28 pages (224 KiB)
// live; kRingBytes allows twice that and the forks.
inline constexpr long kRingBytes = 512L * 1024L;
// A row deleted from the ring still takes its heap tuple and its two index entries (116 bytes)
// until autovacuum reclaims them: PostgreSQL does not reuse them before (its default
// autovacuum_naptime is 1 min, longer than a flood test). So the bound of a flood that stored
// `stored` rejected deliveries is kRingBytes + kDeadRowBytes * (stored - kRing).
inline constexpr long kDeadRowBytes = 128;

inline long MaxTableBytes(long stored) {
  return kRingBytes + kDeadRowBytes * std::max(0L, stored - static_cast<long>(kRing));
}

inline long FloodPosts() {
  const char* text = std::getenv("TM_FLOOD_POSTS");
  return text != nullptr ? std::max(1L, std::atol(text)) : 10'000L;
}

inline long Sample(const Metrics& metrics, const std::string& series) {
  const std::string text = metrics.Render();
  const std::size_t at = text.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stol(text.substr(at + series.size() + 2));
}

inline long VerdictCount(const Metrics& metrics, const std::string& verdict) {
  return Sample(metrics, "tenant_master_webhook_deliveries_total{verdict=\"" + verdict + "\"}");
}

struct TableSize {
  long rows = 0;
  long bytes = 0;
};

struct Flooded {
  testing::FloodFigures figures;
  TableSize worst;
  long limited = 0;
  long rejected = 0;
};

// One flood against a fresh database `dbname`, with `limit` per address.
inline Flooded Run(const std::string& dbname, RateLimit limit, long posts) {
  PgServer& pg = PgServer::Shared();
  const std::string dsn = pg.Dsn(dbname);
  std::unique_ptr<Store> store = MakeLibpqStore(Secret(dsn));
  REQUIRE(store->Migrate().ok());
  Metrics metrics;
  HttpHandlers handlers;
  const Secret secret("flood-secret");
  handlers.webhook = [&secret](const WebhookRequest& request) {
    return VerifyWebhook(request, secret, "main");
  };
  HttpServerOptions options;
  options.listen = "127.0.0.1:0";
  options.webhook_rate_limit = limit;
  HttpServer server(*store, metrics, std::move(handlers), options);
  REQUIRE(server.Start().ok());

  Flooded flooded;
  std::mutex mutex;
  const auto sample = [&] {
    const testing::Row row = testing::Query(
        dsn,
        "SELECT count(*), pg_total_relation_size('tm_webhook_deliveries') "
        "FROM tm_webhook_deliveries")
                                 .at(0);
    const std::lock_guard lock(mutex);
    flooded.worst.rows = std::max(flooded.worst.rows, std::stol(row.at(0)));
    flooded.worst.bytes = std::max(flooded.worst.bytes, std::stol(row.at(1)));
  };
  flooded.figures = testing::Flood(server.port(), testing::UnsignedPush(), posts, kClients, sample);
  server.Stop();
  flooded.limited = VerdictCount(metrics, "rate_limited");
  flooded.rejected = VerdictCount(metrics, "missing_signature");
  CHECK(Sample(metrics, R"(tenant_master_http_rejected_total{reason="rate_limited"})") ==
        flooded.limited);
  MESSAGE(dbname << ": " << posts << " posts in " << flooded.figures.seconds << " s ("
                 << flooded.figures.PerSecond(posts) << "/s); " << flooded.rejected
                 << " stored as rejected, " << flooded.limited << " rate limited; deliveries "
                 << "table at most " << flooded.worst.rows << " rows, " << flooded.worst.bytes
                 << " bytes; " << flooded.figures.probes << " /healthz probes, slowest "
                 << flooded.figures.probe_worst_ms << " ms");
  return flooded;
}

}  // namespace tmaster::controller::flood
