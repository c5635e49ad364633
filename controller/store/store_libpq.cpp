#include "controller/store/store_libpq.hpp"

#include <memory>
#include <utility>

#include "common/pq/dsn.hpp"
#include "controller/store/store_libpq_internal.hpp"

// The store's libpq adapter: its construction, its one connection, and the store DSN derived from
// a cluster DSN. The statements live in store_libpq_schema.cpp, store_libpq_workspaces.cpp and
// store_libpq_records.cpp; the leader lock in leader_lock_libpq.cpp.

namespace tmaster::controller {
namespace pqstore {
namespace {

constexpr pq::ConnectParam kStoreParams[] = {
    {"connect_timeout", "10"},
    {"fallback_application_name", "tenant-master-store"},
};

}  // namespace

LibpqStore::LibpqStore(Secret dsn, Retention retention)
    : connector_(std::move(dsn), kStoreParams), retention_(retention) {}

Outcome<PGconn*> LibpqStore::Connection() {
  if (conn_ && PQstatus(conn_.get()) == CONNECTION_OK) return conn_.get();
  conn_.reset();
  auto conn = connector_.Open();
  if (!conn) return conn.failure();
  conn_ = std::move(*conn);
  return conn_.get();
}

}  // namespace pqstore

std::unique_ptr<Store> MakeLibpqStore(Secret dsn, Retention retention) {
  return std::make_unique<pqstore::LibpqStore>(std::move(dsn), retention);
}

Outcome<Secret> StoreDsnFromClusterDsn(const Secret& cluster_dsn) {
  std::optional<Secret> dsn =
      pq::DsnWith(cluster_dsn, "dbname", std::string(pqstore::kDefaultDatabase));
  // libpq's parse error can quote the offending part of the DSN, password included: not shown.
  if (!dsn) {
    return Failure::Stalled("InvalidConfig",
                            "the cluster DSN is not a valid libpq conninfo or URI, so the "
                            "store's DSN cannot be derived from it");
  }
  return std::move(*dsn);
}

}  // namespace tmaster::controller
