#pragma once
// FakeLeaderLock: a leader lock (controller/store/leader_lock.hpp) a test hands out and takes
// away, counting the tries so a test can wait for a standby's polls.

#include <atomic>

#include "controller/store/leader_lock.hpp"

namespace tmaster::testing {

class FakeLeaderLock final : public controller::LeaderLock {
 public:
  Outcome<bool> TryAcquire() override {
    ++tries;
    if (!available) return false;
    held = true;
    return true;
  }
  Outcome<bool> StillHeld() override { return held.load(); }
  void Release() override {
    held = false;
    ++releases;
  }

  std::atomic<bool> available{true};  ///< false: another replica holds it
  std::atomic<bool> held{false};      ///< set false to end the leader's session
  std::atomic<int> tries{0};
  std::atomic<int> releases{0};
};

}  // namespace tmaster::testing
