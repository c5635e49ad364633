#pragma once
// Waiting for something that another thread or process makes true: the one polling helper of
// the suite. Tests order threads with futures or condition variables where they own both sides;
// this is for state they can only observe (a store row, an HTTP answer, a file).

#include <chrono>
#include <functional>
#include <thread>

namespace tmaster::testing {

/// Polls `condition` every `step` until it holds or `limit` has passed; returns its last value,
/// so a caller can CHECK(Eventually(...)) and the test fails when the deadline passes.
inline bool Eventually(const std::function<bool()>& condition,
                       std::chrono::milliseconds limit = std::chrono::seconds(10),
                       std::chrono::milliseconds step = std::chrono::milliseconds(10)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(step);
  }
  return condition();
}

}  // namespace tmaster::testing
