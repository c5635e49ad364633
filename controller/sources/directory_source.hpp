#pragma once
// A folder of manifests (docs/architecture.md#sources), watched with inotify (a burst of writes
// is one read, after `debounce`) and re-read every `rescan` in case inotify missed something.
// Only changed files are parsed again (the loader's parse cache).

#include <chrono>
#include <memory>
#include <mutex>

#include "controller/sources/dir_watch.hpp"
#include "controller/sources/source.hpp"

namespace tmaster::controller {

struct DirectorySourceOptions {
  std::chrono::milliseconds debounce{50};
  Duration rescan = std::chrono::minutes(1);
};

class DirectorySource final : public Source {
 public:
  /// `config` (with `directory` set) must outlive the source.
  DirectorySource(const manifests::SourceConfig& config, manifests::LoadOptions load,
                  DirectorySourceOptions options);
  ~DirectorySource() override;

  [[nodiscard]] const std::string& Name() const override { return config_.name; }
  [[nodiscard]] std::string Kind() const override { return "directory"; }
  Outcome<SourceRead> Read(const std::string& last_applied) override;
  [[nodiscard]] Duration PollInterval(Random& random) const override;
  [[nodiscard]] Duration RetryCap() const override;
  void WaitForChange(Duration limit) override;
  void Wake() override;
  void Interrupt() override;

 private:
  /// Watches the folder if it is not watched yet (it may appear after the start).
  void EnsureWatcher();

  const manifests::SourceConfig& config_;
  manifests::LoadOptions load_;
  DirectorySourceOptions options_;
  WakeSignal signal_;
  std::mutex mutex_;
  std::unique_ptr<DirectoryWatcher> watcher_;  ///< null when the folder cannot be watched
};

}  // namespace tmaster::controller
