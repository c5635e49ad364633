#include <memory>
#include <mutex>
#include <utility>

#include "controller/store/store_libpq.hpp"
#include "controller/store/store_libpq_internal.hpp"

// The leader lock: a session-level advisory lock on a session of its own (docs/decisions.md,
// "The controller's store: schema v2 and the leader lock").

namespace tmaster::controller {
namespace {

using pqstore::StoreConnector;

// Advisory-lock key (kLeaderLockClass, 1); (kLeaderLockClass, 2) serializes migrations
// (store_libpq_schema.cpp).
static_assert(kLeaderLockClass == 29805);
constexpr std::string_view kTryLeaderLock = "SELECT pg_catalog.pg_try_advisory_lock(29805, 1)";
constexpr std::string_view kLeaderLockHeld =
    "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks WHERE locktype = 'advisory'"
    " AND classid = 29805 AND objid = 1 AND objsubid = 2 AND pid = pg_catalog.pg_backend_pid()"
    " AND granted)";
constexpr std::string_view kLeaderUnlock = "SELECT pg_catalog.pg_advisory_unlock(29805, 1)";
// The server's side of the leader's keepalives: without them a leader whose host vanished
// (no FIN, no RST) would keep its session, and the lock, for the kernel's default of over two
// hours. User-settable GUCs, so no privilege is needed.
constexpr std::string_view kLeaderServerKeepalives =
    "SELECT pg_catalog.set_config('tcp_keepalives_idle', '5', false),"
    " pg_catalog.set_config('tcp_keepalives_interval', '2', false),"
    " pg_catalog.set_config('tcp_keepalives_count', '3', false),"
    " pg_catalog.set_config('tcp_user_timeout', '10000', false)";

// The leader notices a dead peer within seconds: keepalives for an idle session, and
// tcp_user_timeout (ms) for a round trip whose data is never acknowledged, which keepalives
// do not cover. application_name is forced (not a fallback) so operators can find the leader's
// session in pg_stat_activity.
constexpr pq::ConnectParam kLeaderParams[] = {
    {"connect_timeout", "5"},      {"application_name", "tenant-master-leader"},
    {"keepalives", "1"},           {"keepalives_idle", "5"},
    {"keepalives_interval", "2"},  {"keepalives_count", "3"},
    {"tcp_user_timeout", "10000"},
};

class LibpqLeaderLock final : public LeaderLock {
 public:
  explicit LibpqLeaderLock(Secret dsn) : connector_(std::move(dsn), kLeaderParams) {}
  ~LibpqLeaderLock() override { Release(); }
  LibpqLeaderLock(const LibpqLeaderLock&) = delete;
  LibpqLeaderLock& operator=(const LibpqLeaderLock&) = delete;

  Outcome<bool> TryAcquire() override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (held_) {
      // Already ours: confirm it (one round trip) instead of stacking another session-level
      // hold on top.
      auto still = Held();
      if (still.ok() && *still) return true;
      Drop();  // unsure or lost: closing the session is the one certain way to hold nothing
    }
    for (int attempt = 0;; ++attempt) {
      if (!conn_ || PQstatus(conn_.get()) != CONNECTION_OK) {
        if (auto opened = Open(); !opened) return LeaderFailure(opened.failure(), "connect");
      }
      auto result = connector_.Exec(conn_.get(), kTryLeaderLock, {});
      if (result) {
        held_ = PQntuples(result->get()) == 1 &&
                std::string_view(PQgetvalue(result->get(), 0, 0)) == "t";
        return held_;
      }
      // A session that broke under us (the server restarted) is replaced once; the new one
      // starts without the lock, so trying again is an honest first try.
      bool broken = PQstatus(conn_.get()) == CONNECTION_BAD;
      Drop();
      if (!broken || attempt > 0) return LeaderFailure(result.failure(), "acquire");
    }
  }

  Outcome<bool> StillHeld() override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!held_) return false;
    if (!conn_ || PQstatus(conn_.get()) != CONNECTION_OK) {
      Drop();
      return false;
    }
    auto still = Held();
    if (!still.ok() && PQstatus(conn_.get()) == CONNECTION_BAD) {
      Drop();  // the session ended, and the lock with it: lost, not a failure
      return false;
    }
    if (!still.ok()) return LeaderFailure(still.failure(), "check");
    if (!*still) held_ = false;
    return *still;
  }

  void Release() override {
    std::lock_guard<std::mutex> lock(mutex_);
    if (held_ && conn_ && PQstatus(conn_.get()) == CONNECTION_OK) {
      (void)connector_.Exec(conn_.get(), kLeaderUnlock, {});
    }
    Drop();  // closing the session releases whatever the unlock could not
  }

 private:
  /// A new session with the server's keepalives set; the old one (if any) is closed.
  Outcome<Done> Open() {
    Drop();
    auto conn = connector_.Open();
    if (!conn) return conn.failure();
    if (auto set = connector_.Exec(conn->get(), kLeaderServerKeepalives, {}); !set) {
      return set.failure();
    }
    conn_ = std::move(*conn);
    return Done{};
  }

  /// One round trip: does this session hold the lock?
  Outcome<bool> Held() {
    auto result = connector_.Exec(conn_.get(), kLeaderLockHeld, {});
    if (!result) return result.failure();
    return PQntuples(result->get()) == 1 &&
           std::string_view(PQgetvalue(result->get(), 0, 0)) == "t";
  }

  void Drop() {
    conn_.reset();
    held_ = false;
  }

  /// Every leader-lock failure is transient: a standby keeps trying, and a leader that cannot
  /// confirm its lock stops its workers either way. The reason still says what happened.
  static Failure LeaderFailure(Failure failure, std::string_view step) {
    failure.kind = FailureKind::kTransient;
    failure.message = "leader lock: " + std::string(step) + ": " + failure.message;
    return failure;
  }

  const StoreConnector connector_;

  std::mutex mutex_;
  pq::ConnPtr conn_;   // guarded by mutex_
  bool held_ = false;  // guarded by mutex_: this session took the lock and has not lost it
};

}  // namespace

std::unique_ptr<LeaderLock> MakeLibpqLeaderLock(Secret dsn) {
  return std::make_unique<LibpqLeaderLock>(std::move(dsn));
}

}  // namespace tmaster::controller
