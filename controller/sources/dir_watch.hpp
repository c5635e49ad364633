#pragma once

// Fast reaction for the `directory` source (docs/architecture.md#sources): inotify on a folder tree, debounced. It
// only makes the daemon react sooner; the daemon's periodic rescan is what guarantees nothing is
// missed, so a watcher that misses an event (a full queue, a watch limit) costs latency only.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/outcome.hpp"

namespace tmaster::controller {

/// Watches a folder tree with inotify, recursively: subfolders that appear are watched too.
/// Hidden subfolders (".git", Kubernetes' "..2024_…") are not descended into, as the manifest
/// loader skips them; entries of any name directly in a watched folder still count (so the swap
/// of a ConfigMap's "..data" link is seen). Symbolic links to folders are not followed, except
/// the root itself.
///
/// The root may disappear or be replaced (renamed over, or a symbolic link switched): its
/// parent folder is watched for that, the disappearance is one change, the tree is watched again
/// as soon as the root is back (another change), and while it is missing WaitForChange just
/// waits (it also retries every second, in case the parent itself went away).
///
/// Threads: one thread calls WaitForChange at a time; any thread may call Interrupt.
class DirectoryWatcher {
 public:
  /// Watches `root` and every folder under it. Fails with Stalled "WatchFailed" when a human
  /// must act (the root is missing or not a folder, no permission, the inotify watch or instance
  /// limit is reached — the message says which sysctl to raise) and Transient "WatchFailed"
  /// otherwise; the message names the path.
  static Outcome<std::unique_ptr<DirectoryWatcher>> Start(const std::filesystem::path& root);

  /// Wakes a waiter (see Interrupt), waits for it to return, and closes the descriptors. Calling
  /// WaitForChange after destruction has begun returns false at once; destroying the watcher
  /// while another thread may still *enter* WaitForChange is the caller's bug.
  ~DirectoryWatcher();
  DirectoryWatcher(const DirectoryWatcher&) = delete;
  DirectoryWatcher& operator=(const DirectoryWatcher&) = delete;

  /// Blocks until something under the root changed (a file written and closed, created,
  /// deleted, moved, or its attributes changed), then keeps waiting until `debounce` passes
  /// with no further change — so an editor's write+rename or a `git checkout` is one wake-up —
  /// but no longer than 10 × `debounce` after the first change, so a folder written to without
  /// pause still wakes its reader. Returns true if a change was seen; false when `timeout`
  /// passed with no change at all. A full inotify queue (IN_Q_OVERFLOW) counts as a change.
  /// Reading files is not a change. Interrupt() ends the wait at once; the result is then
  /// whether a change was seen so far.
  bool WaitForChange(std::chrono::milliseconds timeout, std::chrono::milliseconds debounce);

  /// Ends the current WaitForChange, or the next one if none is waiting (so a stop request made
  /// just before the waiter blocks is not lost). Several Interrupts before a wait count as one.
  /// Thread-safe, async-signal-safe.
  void Interrupt();

  /// The watched root, absolute.
  [[nodiscard]] const std::filesystem::path& root() const { return root_; }
  /// Folders currently watched (for tests and metrics).
  [[nodiscard]] std::size_t WatchedFolders() const { return watched_.load(); }

 private:
  DirectoryWatcher(std::filesystem::path root, int inotify_fd, int wake_fd);
  /// Watches `folder` and the folders under it. Returns the error of `folder` itself (0: ok).
  int WatchTree(const std::filesystem::path& folder, bool is_root);
  /// Drops every watch and watches the parent and the root tree again. Returns the error of
  /// the root's watch (0: the root is watched).
  int Rewatch();
  /// Drops the watches of `folder` and the folders under it (moved out or deleted).
  void Forget(const std::filesystem::path& folder);
  /// Reads every queued event; returns whether any of them is a change.
  bool Drain();
  /// Applies one event to the watch table; returns whether it is a change.
  bool Handle(int wd, std::uint32_t mask, std::string_view name);
  bool Wait(std::chrono::milliseconds timeout, std::chrono::milliseconds debounce);

  std::filesystem::path root_;
  std::string root_name_;  ///< root_'s name in its parent
  int inotify_fd_;
  int wake_fd_;
  int root_wd_ = -1;
  int parent_wd_ = -1;
  bool rewatch_ = false;        ///< the root went away or events were lost: watch all again
  bool limit_reached_ = false;  ///< a folder could not be watched: ENOSPC (watch limit)
  std::unordered_map<int, std::filesystem::path> folders_;  ///< watch descriptor -> folder
  std::atomic<std::size_t> watched_{0};                     ///< folders_.size()

  std::mutex mutex_;  ///< guards waiters_ and closing_
  std::condition_variable waiter_left_;
  int waiters_ = 0;
  bool closing_ = false;
};

}  // namespace tmaster::controller
