#include "controller/sources/dir_watch.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>
#include <vector>

namespace tmaster::controller {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr std::uint32_t kTreeEvents = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE |
                                      IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ATTRIB |
                                      IN_ONLYDIR | IN_EXCL_UNLINK;
// In the root's parent, only what happens to the root's own name matters.
constexpr std::uint32_t kParentEvents =
    IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_ONLYDIR | IN_EXCL_UNLINK;
// While the root is missing, how often to look for it again (in case its parent went too).
constexpr std::chrono::milliseconds kRetryMissingRoot{1000};
constexpr int kMaxDebounceFactor = 10;
constexpr std::chrono::milliseconds kLongestPoll{std::chrono::hours(1)};  // fits poll's int

bool Hidden(std::string_view name) {
  return !name.empty() && name.front() == '.';
}

fs::path AbsoluteFolder(const fs::path& path) {
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec).lexically_normal();
  if (ec) absolute = path.lexically_normal();
  if (!absolute.has_filename() && absolute.has_relative_path()) absolute = absolute.parent_path();
  return absolute;
}

bool IsUnder(const fs::path& path, const fs::path& folder) {
  const std::string& p = path.native();
  const std::string& f = folder.native();
  return p.size() >= f.size() && p.compare(0, f.size(), f) == 0 &&
         (p.size() == f.size() || p[f.size()] == '/');
}

Failure WatchFailure(const fs::path& path, int error) {
  std::string message = "cannot watch " + path.string() + ": " + std::strerror(error);
  switch (error) {
    case ENOSPC:
      return Failure::Stalled("WatchFailed",
                              message +
                                  " (the inotify watch limit is reached: raise the sysctl "
                                  "fs.inotify.max_user_watches)");
    case EMFILE:
      return Failure::Stalled("WatchFailed",
                              message +
                                  " (raise the sysctl fs.inotify.max_user_instances or the "
                                  "open file limit)");
    case ENOENT:
    case ENOTDIR:
    case EACCES:
    case ELOOP: return Failure::Stalled("WatchFailed", message);
    default: return Failure::Transient("WatchFailed", message);
  }
}

}  // namespace

Outcome<std::unique_ptr<DirectoryWatcher>> DirectoryWatcher::Start(const fs::path& root) {
  const fs::path absolute = AbsoluteFolder(root);
  const int inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd < 0) return WatchFailure(absolute, errno);
  const int wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) {
    const int error = errno;
    close(inotify_fd);
    return WatchFailure(absolute, error);
  }
  // From here on the watcher owns both descriptors.
  std::unique_ptr<DirectoryWatcher> watcher(new DirectoryWatcher(absolute, inotify_fd, wake_fd));
  const int error = watcher->Rewatch();
  if (error != 0) return WatchFailure(absolute, error);
  if (watcher->limit_reached_) return WatchFailure(absolute, ENOSPC);
  return watcher;
}

DirectoryWatcher::DirectoryWatcher(fs::path root, int inotify_fd, int wake_fd)
    : root_(std::move(root)),
      root_name_(root_.has_relative_path() ? root_.filename().string() : std::string()),
      inotify_fd_(inotify_fd),
      wake_fd_(wake_fd) {}

DirectoryWatcher::~DirectoryWatcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    closing_ = true;
  }
  Interrupt();
  {
    std::unique_lock<std::mutex> lock(mutex_);
    waiter_left_.wait(lock, [this] { return waiters_ == 0; });
  }
  close(inotify_fd_);
  close(wake_fd_);
}

void DirectoryWatcher::Interrupt() {
  const std::uint64_t one = 1;
  const ssize_t written = write(wake_fd_, &one, sizeof one);
  (void)written;  // only EAGAIN can fail here, when the counter is already huge: still awake
}

bool DirectoryWatcher::WaitForChange(std::chrono::milliseconds timeout,
                                     std::chrono::milliseconds debounce) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closing_) return false;
    ++waiters_;
  }
  const bool changed = Wait(timeout, debounce);
  std::lock_guard<std::mutex> lock(mutex_);
  --waiters_;
  waiter_left_.notify_all();  // under the lock: the destructor may free the variable after
  return changed;
}

bool DirectoryWatcher::Wait(std::chrono::milliseconds timeout, std::chrono::milliseconds debounce) {
  const Clock::time_point give_up = Clock::now() + timeout;
  bool changed = false;
  Clock::time_point first_change{};
  Clock::time_point last_change{};
  Clock::time_point next_retry = Clock::now();
  const auto mark_change = [&] {
    last_change = Clock::now();
    if (!changed) first_change = last_change;
    changed = true;
  };

  for (;;) {
    if (rewatch_) Rewatch();
    Clock::time_point now = Clock::now();
    if (root_wd_ < 0 && now >= next_retry) {
      next_retry = now + kRetryMissingRoot;
      if (Rewatch() == 0) mark_change();  // the root is back
      now = Clock::now();
    }
    const Clock::time_point until =
        changed ? std::min(last_change + debounce, first_change + kMaxDebounceFactor * debounce)
                : give_up;
    if (now >= until) return changed;
    Clock::time_point wake = until;
    if (root_wd_ < 0) wake = std::min(wake, next_retry);
    const auto wait = std::clamp(std::chrono::ceil<std::chrono::milliseconds>(wake - now),
                                 std::chrono::milliseconds(0), kLongestPoll);

    std::array<pollfd, 2> fds{{{inotify_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}}};
    const int ready = poll(fds.data(), fds.size(), static_cast<int>(wait.count()));
    if (ready < 0) {
      if (errno == EINTR) continue;
      return changed;  // cannot happen with valid descriptors; never spin
    }
    if ((fds[1].revents & POLLIN) != 0) {
      std::uint64_t count = 0;
      const ssize_t got = read(wake_fd_, &count, sizeof count);
      (void)got;  // EAGAIN: another reader took it; either way this wait ends
      return changed;
    }
    if ((fds[0].revents & POLLIN) != 0 && Drain()) mark_change();
  }
}

bool DirectoryWatcher::Drain() {
  // Aligned for inotify_event; room for many events per read.
  alignas(inotify_event) std::array<char, 64 * 1024> buffer{};
  bool changed = false;
  for (;;) {
    const ssize_t got = read(inotify_fd_, buffer.data(), buffer.size());
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return changed;  // EAGAIN: drained
    const auto size = static_cast<std::size_t>(got);
    for (std::size_t at = 0; at + sizeof(inotify_event) <= size;) {
      const auto* event = reinterpret_cast<const inotify_event*>(buffer.data() + at);
      const std::string_view name =
          event->len == 0 ? std::string_view()
                          : std::string_view(event->name, strnlen(event->name, event->len));
      changed = Handle(event->wd, event->mask, name) || changed;
      at += sizeof(inotify_event) + event->len;
    }
  }
}

bool DirectoryWatcher::Handle(int wd, std::uint32_t mask, std::string_view name) {
  if ((mask & IN_Q_OVERFLOW) != 0) {
    rewatch_ = true;  // folders created meanwhile may be unwatched
    return true;
  }
  if (wd == parent_wd_ && parent_wd_ >= 0) {
    if ((mask & IN_IGNORED) != 0) {
      parent_wd_ = -1;
      return false;
    }
    if (name != root_name_) return false;
    rewatch_ = true;  // the root was created, deleted, renamed or replaced
    return true;
  }
  const auto folder = folders_.find(wd);
  if ((mask & IN_IGNORED) != 0) {
    if (folder != folders_.end()) folders_.erase(folder);
    watched_ = folders_.size();
    if (wd != root_wd_) return false;
    root_wd_ = -1;
    rewatch_ = true;
    return true;
  }
  if (folder == folders_.end()) return false;  // an event queued before its watch was dropped
  if (wd == root_wd_ && (mask & (IN_DELETE_SELF | IN_MOVE_SELF)) != 0) rewatch_ = true;
  if ((mask & IN_ISDIR) != 0 && !name.empty()) {
    const fs::path path = folder->second / name;  // a copy: the table changes below
    if ((mask & (IN_MOVED_FROM | IN_DELETE)) != 0) Forget(path);
    if ((mask & (IN_CREATE | IN_MOVED_TO)) != 0 && !Hidden(name)) WatchTree(path, false);
  }
  return true;
}

int DirectoryWatcher::WatchTree(const fs::path& folder, bool is_root) {
  // The root may be a symbolic link to the tree; below it, links are not followed.
  const std::uint32_t mask = kTreeEvents | (is_root ? 0 : IN_DONT_FOLLOW);
  const int wd = inotify_add_watch(inotify_fd_, folder.c_str(), mask);
  if (wd < 0) {
    if (errno == ENOSPC) limit_reached_ = true;
    return errno;
  }
  folders_[wd] = folder;
  if (is_root) root_wd_ = wd;

  std::error_code ec;
  fs::recursive_directory_iterator it(folder, fs::directory_options::skip_permission_denied, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code type_ec;
    if (it->is_symlink(type_ec) || !it->is_directory(type_ec)) continue;
    if (Hidden(it->path().filename().native())) {
      it.disable_recursion_pending();
      continue;
    }
    const int sub = inotify_add_watch(inotify_fd_, it->path().c_str(), mask | IN_DONT_FOLLOW);
    if (sub < 0) {
      if (errno == ENOSPC) limit_reached_ = true;
      it.disable_recursion_pending();
      continue;
    }
    folders_[sub] = it->path();
  }
  watched_ = folders_.size();
  return 0;
}

int DirectoryWatcher::Rewatch() {
  rewatch_ = false;
  for (const auto& [wd, folder] : folders_) inotify_rm_watch(inotify_fd_, wd);
  folders_.clear();
  root_wd_ = -1;
  if (parent_wd_ >= 0) inotify_rm_watch(inotify_fd_, parent_wd_);
  parent_wd_ = -1;
  if (!root_name_.empty()) {
    parent_wd_ = inotify_add_watch(inotify_fd_, root_.parent_path().c_str(), kParentEvents);
  }
  const int error = WatchTree(root_, true);
  watched_ = folders_.size();
  return error;
}

void DirectoryWatcher::Forget(const fs::path& folder) {
  for (auto it = folders_.begin(); it != folders_.end();) {
    if (!IsUnder(it->second, folder) || it->first == root_wd_) {
      ++it;
      continue;
    }
    inotify_rm_watch(inotify_fd_, it->first);
    it = folders_.erase(it);
  }
  watched_ = folders_.size();
}

}  // namespace tmaster::controller
