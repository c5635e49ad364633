#include "controller/sources/directory_source.hpp"

#include <spdlog/spdlog.h>

#include "manifests/loader.hpp"

namespace tmaster::controller {

DirectorySource::DirectorySource(const manifests::SourceConfig& config, manifests::LoadOptions load,
                                 DirectorySourceOptions options)
    : config_(config), load_(std::move(load)), options_(options) {
  // Files parsed by earlier reads: a change re-parses only the files that changed.
  load_.parse_cache = manifests::MakeParseCache();
  // Every path from a manifest stays inside the source's folder.
  load_.root = *config_.directory;
  auto watcher = DirectoryWatcher::Start(*config_.directory);
  if (watcher) {
    watcher_ = std::move(watcher).value();
    return;
  }
  spdlog::warn("source {}: {} (falling back to rescanning every {} s)", config_.name,
               watcher.failure().message,
               std::chrono::duration_cast<std::chrono::seconds>(options_.rescan).count());
}

DirectorySource::~DirectorySource() = default;

Outcome<SourceRead> DirectorySource::Read(const std::string& /*last_applied*/) {
  SourceRead read;
  read.fleet = manifests::LoadPaths({*config_.directory}, load_);
  return read;
}

Duration DirectorySource::PollInterval(Random& /*random*/) const {
  return options_.rescan;
}

Duration DirectorySource::RetryCap() const {
  return std::chrono::seconds(30);
}

void DirectorySource::EnsureWatcher() {
  {
    const std::lock_guard lock(mutex_);
    if (watcher_ || signal_.Interrupted()) return;
  }
  auto watcher = DirectoryWatcher::Start(*config_.directory);
  if (!watcher) return;
  const std::lock_guard lock(mutex_);
  if (!signal_.Interrupted()) watcher_ = std::move(watcher).value();
}

void DirectorySource::WaitForChange(Duration limit) {
  EnsureWatcher();
  DirectoryWatcher* watcher = nullptr;
  {
    const std::lock_guard lock(mutex_);
    watcher = watcher_.get();
  }
  if (watcher != nullptr) {
    // The watcher lives until the source is destroyed, which happens only after this thread
    // was joined, so the pointer stays valid outside the lock.
    watcher->WaitForChange(std::chrono::duration_cast<std::chrono::milliseconds>(limit),
                           options_.debounce);
    return;
  }
  signal_.Wait(limit);
}

void DirectorySource::Wake() {
  signal_.Wake();
}

void DirectorySource::Interrupt() {
  const std::lock_guard lock(mutex_);
  signal_.Interrupt();
  if (watcher_) watcher_->Interrupt();
}

}  // namespace tmaster::controller
