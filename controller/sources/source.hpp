#pragma once
// Where desired state comes from (docs/architecture.md#sources): a folder watched on disk, or a
// branch of a Git repository. A source only reads; the sync (sync.hpp) turns a read into stored
// specs and queued names, and the runner (source_runner.hpp) paces the reads.

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>

#include "common/outcome.hpp"
#include "controller/runtime/clock.hpp"
#include "manifests/config.hpp"
#include "manifests/loader.hpp"
#include "manifests/types.hpp"

namespace tmaster::controller {

/// One read of a source.
struct SourceRead {
  std::string revision;    ///< the commit id (git); empty for a directory
  bool unchanged = false;  ///< the same revision as the one last applied: nothing was parsed
  manifests::Fleet fleet;  ///< every document, valid or not (empty when unchanged)
};

/// A source of manifests. Read, Wake and Interrupt may be called from different threads; Read
/// and WaitForChange are called from the source's own thread only.
class Source {
 public:
  virtual ~Source() = default;
  [[nodiscard]] virtual const std::string& Name() const = 0;
  [[nodiscard]] virtual std::string Kind() const = 0;  ///< `git` or `directory`

  /// Fetches (git) or reads (directory) and parses the manifests. `last_applied` is the revision
  /// the sync last applied: a git source at that same revision answers `unchanged` without
  /// parsing. A failure (FetchFailed, ...) is never "no manifests": the caller keeps everything
  /// it has and retries.
  virtual Outcome<SourceRead> Read(const std::string& last_applied) = 0;
  /// How long to wait after a good read before reading again, unless a change wakes it.
  [[nodiscard]] virtual Duration PollInterval(Random& random) const = 0;
  /// The longest wait between retries after failed reads.
  [[nodiscard]] virtual Duration RetryCap() const = 0;
  /// Blocks until the source may have changed (a write in the folder; Wake), `limit` passed, or
  /// Interrupt was called.
  virtual void WaitForChange(Duration limit) = 0;
  /// Makes the current or next WaitForChange return now (an accepted webhook).
  virtual void Wake() = 0;
  /// Makes WaitForChange return now and from now on at once (the term ends).
  virtual void Interrupt() = 0;
};

/// The wake-up a source's WaitForChange waits on: Wake ends one wait (or the next, if none is
/// waiting), Interrupt ends every wait from now on. Thread-safe.
class WakeSignal {
 public:
  /// Waits until woken, interrupted, or `limit` passed; consumes a wake.
  void Wait(Duration limit);
  void Wake();
  void Interrupt();
  [[nodiscard]] bool Interrupted() const;

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool wake_ = false;
  bool interrupted_ = false;
};

/// What every source needs to parse: the config's reserved subdomains and cluster names. Each
/// source then sets `root` to its own folder (DirectorySource: the directory; GitSource: the
/// checkout), beneath which every path from its manifests must stay.
manifests::LoadOptions MakeLoadOptions(const manifests::Config& config);

}  // namespace tmaster::controller
