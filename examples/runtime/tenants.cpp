#include "examples/runtime/tenants.hpp"

#include <libpq-fe.h>

#include <chrono>
#include <utility>

#include "common/pq_handles.hpp"

namespace tmaster::examples::runtime {
namespace {

constexpr auto kWaitForSession = std::chrono::seconds(10);

std::string OneLine(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  for (char& c : text) {
    if (c == '\n') c = ' ';
  }
  return text;
}

Failure DatabaseError(const Binding& binding, std::string message) {
  return Failure::Transient("DatabaseError", OneLine(Redact(std::move(message), binding.password)));
}

// Keywords, never a concatenated conninfo string: a password or name with a space or a quote
// needs no escaping, and nothing the binding holds is parsed as another keyword.
Outcome<pg_conn*> Connect(const Binding& binding) {
  const char* keywords[] = {
      "host", "port", "dbname", "user", "password", "connect_timeout", "application_name", nullptr};
  const char* values[] = {binding.host.c_str(),
                          binding.port.c_str(),
                          binding.database.c_str(),
                          binding.username.c_str(),
                          binding.password.Reveal().c_str(),
                          "5",
                          "example-runtime",
                          nullptr};
  pq::ConnPtr conn(PQconnectdbParams(keywords, values, /*expand_dbname=*/0));
  if (!conn) return Failure::Transient("DatabaseError", "out of memory");
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return DatabaseError(binding, PQerrorMessage(conn.get()));
  }
  pq::SilenceNotices(conn.get());
  return conn.release();
}

}  // namespace

TenantPool::TenantPool(std::shared_ptr<const Binding> binding, std::size_t size)
    : binding_(std::move(binding)), size_(size == 0 ? 1 : size) {}

TenantPool::~TenantPool() {
  Close();
}

void TenantPool::Close() {
  std::vector<pg_conn*> idle;
  {
    const std::lock_guard lock(mutex_);
    closed_ = true;
    idle.swap(idle_);
    open_ -= idle.size();
  }
  for (pg_conn* conn : idle) PQfinish(conn);
  freed_.notify_all();
}

std::size_t TenantPool::Open() const {
  const std::lock_guard lock(mutex_);
  return open_;
}

Outcome<pg_conn*> TenantPool::Acquire() {
  std::unique_lock lock(mutex_);
  const bool ready = freed_.wait_for(lock, kWaitForSession,
                                     [&] { return closed_ || !idle_.empty() || open_ < size_; });
  if (closed_) {
    return Failure::Transient("PoolClosed", "the tenant's binding changed; try again");
  }
  if (!ready) {
    return Failure::Transient("PoolBusy", "all " + std::to_string(size_) + " sessions busy");
  }
  if (!idle_.empty()) {
    pg_conn* conn = idle_.back();
    idle_.pop_back();
    return conn;
  }
  ++open_;  // counted before connecting, so `size_` bounds the sessions being opened too
  lock.unlock();
  Outcome<pg_conn*> conn = Connect(*binding_);
  if (!conn) Release(nullptr, false);
  return conn;
}

void TenantPool::Release(pg_conn* conn, bool healthy) {
  {
    const std::lock_guard lock(mutex_);
    if (healthy && !closed_) {
      idle_.push_back(conn);
      conn = nullptr;
    } else {
      --open_;
    }
  }
  if (conn != nullptr) PQfinish(conn);
  freed_.notify_one();
}

Outcome<long long> TenantPool::Count(const std::string& table) {
  for (int attempt = 0;; ++attempt) {
    Outcome<pg_conn*> acquired = Acquire();
    if (!acquired) return acquired.failure();
    pg_conn* conn = *acquired;
    const pq::Text name(PQescapeIdentifier(conn, table.c_str(), table.size()));
    if (!name) {
      Release(conn, false);
      return DatabaseError(*binding_, PQerrorMessage(conn));
    }
    const std::string sql = std::string("SELECT count(*) FROM ") + name.get();
    const pq::ResultPtr result(PQexec(conn, sql.c_str()));
    const bool healthy = PQstatus(conn) == CONNECTION_OK;
    if (result && PQresultStatus(result.get()) == PGRES_TUPLES_OK && PQntuples(result.get()) == 1) {
      const long long count = std::stoll(PQgetvalue(result.get(), 0, 0));
      Release(conn, healthy);
      return count;
    }
    std::string message = result ? PQresultErrorMessage(result.get()) : PQerrorMessage(conn);
    Release(conn, healthy);
    // A session cut under us (the server restarted, an admin terminated it): once more on a
    // fresh one. A query error on a healthy session is the answer.
    if (healthy || attempt > 0) return DatabaseError(*binding_, std::move(message));
  }
}

void Tenants::Update(const Directory& directory) {
  std::map<std::string, std::shared_ptr<TenantPool>> pools;
  const std::lock_guard lock(mutex_);
  for (const auto& [workspace, binding] : directory.by_workspace) {
    if (binding->suspended) continue;
    const auto old_binding = directory_.by_workspace.find(workspace);
    const auto old_pool = pools_.find(workspace);
    if (old_pool != pools_.end() && old_binding != directory_.by_workspace.end() &&
        old_binding->second->SameLogin(*binding)) {
      pools.emplace(workspace, old_pool->second);
      continue;
    }
    pools.emplace(workspace, std::make_shared<TenantPool>(binding, pool_size_));
  }
  for (auto& [workspace, pool] : pools_) {
    const auto kept = pools.find(workspace);
    if (kept == pools.end() || kept->second != pool) pool->Close();
  }
  pools_ = std::move(pools);
  directory_ = directory;
}

Tenant Tenants::Find(std::string_view host_header) const {
  const std::lock_guard lock(mutex_);
  Tenant tenant;
  tenant.binding = Lookup(directory_, host_header);
  if (!tenant.binding) return tenant;
  const auto pool = pools_.find(tenant.binding->workspace);
  if (pool != pools_.end()) tenant.pool = pool->second;
  return tenant;
}

std::size_t Tenants::Count() const {
  const std::lock_guard lock(mutex_);
  return directory_.by_workspace.size();
}

}  // namespace tmaster::examples::runtime
