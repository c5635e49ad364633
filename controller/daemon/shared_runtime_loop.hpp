#pragma once

// The leader's products' shared runtimes (docs/stacks.md#shared-runtime): ConvergeSharedRuntimes
// (controller/workspace/shared_runtime.hpp) called on a thread of its own, one call at a time,
// soon after Kick() (the daemon kicks when a sync changed the products, or when every source
// became clean) and every resync interval; never on a worker of the workspace queue, never on
// the HTTP server's threads.

#include <cstdint>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "controller/runtime/clock.hpp"
#include "controller/runtime/events.hpp"
#include "controller/sources/source.hpp"
#include "controller/workspace/reconcile_pass.hpp"
#include "controller/workspace/shared_runtime.hpp"
#include "manifests/types.hpp"

namespace tmaster::controller {

/// A source that tells whether its last read was complete and valid (read, and no invalid
/// document) once the sync has applied it: the verdict is taken when the read returns and
/// counts from the runner's next wait (controller/sources/source_runner.cpp: read, sync, wait),
/// that is after the sync replaced the source's products with what it read
/// (controller/sources/sync.cpp). A read that starts makes the source unclean at once and counts
/// in `reads`, so a caller that sees the same mark before and after reading the products knows
/// they are those of a clean read. Forwards everything else to the source it wraps.
class CleanReadSource final : public Source {
 public:
  struct Mark {
    std::uint64_t reads = 0;  ///< reads started so far
    bool clean = false;       ///< the last read was clean and has been applied
    bool operator==(const Mark&) const = default;
  };
  explicit CleanReadSource(std::unique_ptr<Source> inner) : inner_(std::move(inner)) {}
  [[nodiscard]] const std::string& Name() const override { return inner_->Name(); }
  [[nodiscard]] std::string Kind() const override { return inner_->Kind(); }
  Outcome<SourceRead> Read(const std::string& last_applied) override;
  [[nodiscard]] Duration PollInterval(Random& random) const override {
    return inner_->PollInterval(random);
  }
  [[nodiscard]] Duration RetryCap() const override { return inner_->RetryCap(); }
  void WaitForChange(Duration limit) override;
  void Wake() override { inner_->Wake(); }
  void Interrupt() override { inner_->Interrupt(); }

  [[nodiscard]] Mark Current() const;

 private:
  std::unique_ptr<Source> inner_;
  mutable std::mutex mutex_;
  Mark mark_;            ///< guarded by mutex_
  bool pending_ = false;  ///< the verdict of the read being applied; guarded by mutex_
};

class SharedRuntimeLoop {
 public:
  /// What one call converges, taken on the loop's thread right before it.
  struct Pass {
    std::vector<manifests::Product> products;
    std::set<int> endpoints;  ///< the dedicated workspaces' endpoints (SharedRuntimeOptions)
    /// Every source's last read was clean and valid: stale runtimes may be deleted.
    bool prune = false;
  };

  /// `stacks` (with its gateway and config) and `events` must outlive the loop; `pass` is called
  /// on the loop's thread. Nothing runs before Start().
  SharedRuntimeLoop(const StacksContext& stacks, EventRecorder& events,
                    std::function<Pass()> pass, Duration resync_interval);
  ~SharedRuntimeLoop();
  SharedRuntimeLoop(const SharedRuntimeLoop&) = delete;
  SharedRuntimeLoop& operator=(const SharedRuntimeLoop&) = delete;

  void Start();
  /// A call soon; kicks while a call runs make one more call after it, not one each.
  void Kick();
  /// Returns once the call in flight (if any) has returned; no call starts after it.
  void Stop();

  /// Calls completed so far (tests wait on it).
  [[nodiscard]] int Calls() const;

 private:
  void Loop();
  /// Logs the failures (every call) and records an event on `runtime:<product>` (RuntimeEventsWorkspace,
  /// controller/daemon/runtime_api.hpp) when a runtime's
  /// result changed since the last call (Ready, or failed with another reason), and one per
  /// stale runtime deleted.
  void Record(const SharedRuntimeReport& report);

  const StacksContext& stacks_;
  EventRecorder& events_;
  std::function<Pass()> pass_;
  Duration resync_interval_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool kicked_ = false;    ///< guarded by mutex_
  bool stopping_ = false;  ///< guarded by mutex_
  int calls_ = 0;          ///< guarded by mutex_
  /// Per product: `Ready`, or the failure's reason, as last recorded. The loop's thread only.
  std::map<std::string, std::string> last_;
  std::thread thread_;
};

}  // namespace tmaster::controller
