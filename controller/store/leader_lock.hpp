#pragma once
// Leader election (docs/architecture.md#leader-election): only the holder of the lock runs
// sources and workers; standbys serve reads.

#include "common/outcome.hpp"

namespace tmaster::controller {

/// A lock that at most one replica holds. The libpq adapter (store_libpq.hpp) is a
/// session-level PostgreSQL advisory lock held on a connection of its own: the lock lives
/// exactly as long as that session, so when the leader dies or its connection breaks, the
/// server releases it and a standby's TryAcquire succeeds.
class LeaderLock {
 public:
  virtual ~LeaderLock() = default;
  /// Tries once, without waiting, to take the lock (reconnecting first if needed). true: held.
  virtual Outcome<bool> TryAcquire() = 0;
  /// Whether the lock is still held: the session is alive (a round trip) and holds the lock.
  /// false or a failure means the caller lost leadership and must stop its workers at once.
  virtual Outcome<bool> StillHeld() = 0;
  /// Releases the lock and closes the session. Idempotent.
  virtual void Release() = 0;
};

}  // namespace tmaster::controller
