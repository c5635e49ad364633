#pragma once

// The tenants a shared runtime serves: each workspace's binding with a small pool of sessions
// logged in as that tenant's own role. Pools are kept across binding updates that leave the
// login alone (a suspend flip of another tenant, a new host name) and dropped when the login
// changes (host, port, database, username or password), when the tenant is suspended and when
// its folder goes away.

#include <condition_variable>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/outcome.hpp"
#include "examples/runtime/bindings_reader.hpp"

struct pg_conn;  // libpq's PGconn, so libpq-fe.h stays out of this header

namespace tmaster::examples::runtime {

/// Up to `size` sessions of one tenant, opened on demand and reused. Thread-safe.
class TenantPool {
 public:
  TenantPool(std::shared_ptr<const Binding> binding, std::size_t size);
  /// Closes the idle sessions; one in use is closed when it is handed back.
  ~TenantPool();
  TenantPool(const TenantPool&) = delete;
  TenantPool& operator=(const TenantPool&) = delete;

  /// `SELECT count(*) FROM <table>` (the identifier escaped) as the tenant. A session that
  /// broke (server restart, a terminated backend) is replaced and the query sent once more.
  /// Transient "DatabaseError" with the server's message (the password redacted) when the
  /// login or the query fails; Transient "PoolBusy" when no session was free within 10 s.
  Outcome<long long> Count(const std::string& table);

  /// Closes every idle session and every busy one as it comes back.
  void Close();

  /// Sessions open right now (idle and in use).
  [[nodiscard]] std::size_t Open() const;

 private:
  Outcome<pg_conn*> Acquire();
  void Release(pg_conn* conn, bool healthy);

  std::shared_ptr<const Binding> binding_;
  std::size_t size_;
  mutable std::mutex mutex_;
  std::condition_variable freed_;
  std::vector<pg_conn*> idle_;
  std::size_t open_ = 0;
  bool closed_ = false;
};

/// A tenant found for a request: its binding, and its pool when it is active.
struct Tenant {
  std::shared_ptr<const Binding> binding;
  std::shared_ptr<TenantPool> pool;  ///< null when suspended
};

/// Every tenant by host, swapped as a whole on each update. Thread-safe.
class Tenants {
 public:
  explicit Tenants(std::size_t pool_size) : pool_size_(pool_size) {}

  /// Takes the bindings now in `directory`: pools of tenants whose login is unchanged are
  /// kept; the others are closed (their sessions cut) and new ones opened on first use.
  void Update(const Directory& directory);

  /// The tenant serving `host_header` (HostKey applied); no binding when the host is unknown.
  [[nodiscard]] Tenant Find(std::string_view host_header) const;

  [[nodiscard]] std::size_t Count() const;

 private:
  std::size_t pool_size_;
  mutable std::mutex mutex_;
  Directory directory_;
  std::map<std::string, std::shared_ptr<TenantPool>> pools_;  // workspace -> pool (active ones)
};

}  // namespace tmaster::examples::runtime
