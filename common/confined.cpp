#include "common/confined.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstring>
#include <deque>
#include <utility>
#include <vector>

namespace tmaster::confined {
namespace {

namespace fs = std::filesystem;

constexpr int kMaxSymlinks = 40;  // the kernel's own limit (MAXSYMLINKS)
constexpr int kOpenat2Retries = 8;

// Set once openat2 answered ENOSYS (an old kernel, or a sandbox that filters it).
std::atomic<bool> openat2_missing{false};

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) Reset(std::exchange(other.fd_, -1));
    return *this;
  }
  ~Fd() { Reset(); }
  [[nodiscard]] int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void Reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

Failure Escapes(const fs::path& relative) {
  return Failure::Stalled(kEscapes, Show(relative) +
                                        " leaves the source folder (an absolute path, a '..' or "
                                        "a symbolic link pointing outside it)");
}

Failure FromErrno(int error, const fs::path& relative) {
  switch (error) {
    case EXDEV: return Escapes(relative);
    case ENOENT:
    case ENOTDIR: return Failure::Stalled(kNotFound, Show(relative) + " does not exist");
    case ELOOP:
      return Failure::Stalled(kUnreadable,
                              Show(relative) + " has too many levels of symbolic links");
    default:
      return Failure::Stalled(kUnreadable,
                              "cannot open " + Show(relative) + ": " + std::strerror(error));
  }
}

Type TypeOf(mode_t mode) {
  if (S_ISREG(mode)) return Type::kFile;
  if (S_ISDIR(mode)) return Type::kDirectory;
  if (S_ISLNK(mode)) return Type::kSymlink;
  return Type::kOther;
}

// The components of a relative path; an absolute one is nullopt-like (empty + flag).
bool Components(const fs::path& relative, std::deque<std::string>& out) {
  if (relative.is_absolute() || relative.has_root_name() || relative.has_root_directory()) {
    return false;
  }
  for (const fs::path& part : relative) {
    const std::string text = part.string();
    if (!text.empty() && text != ".") out.push_back(text);
  }
  return true;
}

Outcome<int> OpenByWalk(int root_fd, const fs::path& relative, int flags) {
  std::deque<std::string> pending;
  if (!Components(relative, pending)) return Escapes(relative);
  std::vector<Fd> dirs;  // dirs.back() is the current folder; empty: the root itself
  auto current = [&] { return dirs.empty() ? root_fd : dirs.back().get(); };
  int links = 0;
  if (pending.empty()) {
    const int fd = ::openat(root_fd, ".", flags | O_CLOEXEC);
    if (fd < 0) return FromErrno(errno, relative);
    return fd;
  }
  while (!pending.empty()) {
    const std::string part = std::move(pending.front());
    pending.pop_front();
    if (part == "..") {
      if (dirs.empty()) return Escapes(relative);
      dirs.pop_back();
      if (pending.empty()) {
        const int fd = ::openat(current(), ".", flags | O_CLOEXEC);
        if (fd < 0) return FromErrno(errno, relative);
        return fd;
      }
      continue;
    }
    Fd step(::openat(current(), part.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (step.get() < 0) return FromErrno(errno, relative);
    struct stat st {};
    if (::fstat(step.get(), &st) != 0) return FromErrno(errno, relative);
    if (S_ISLNK(st.st_mode)) {
      if (++links > kMaxSymlinks) return FromErrno(ELOOP, relative);
      std::string target(static_cast<std::size_t>(PATH_MAX), '\0');
      const ssize_t n = ::readlinkat(step.get(), "", target.data(), target.size());
      if (n < 0) return FromErrno(errno, relative);
      target.resize(static_cast<std::size_t>(n));
      std::deque<std::string> expanded;
      if (target.empty() || !Components(fs::path(target), expanded)) return Escapes(relative);
      pending.insert(pending.begin(), expanded.begin(), expanded.end());
      if (pending.empty()) pending.emplace_back(".");  // a link to "." names its folder
      continue;
    }
    if (pending.empty()) {
      if ((flags & O_PATH) != 0) return step.release();
      // Re-opened by name beneath a folder already confirmed; O_NOFOLLOW: if the entry was
      // swapped for a symlink meanwhile, this fails instead of following it.
      const int fd = ::openat(current(), part.c_str(), flags | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) return FromErrno(errno, relative);
      return fd;
    }
    if (!S_ISDIR(st.st_mode)) return FromErrno(ENOTDIR, relative);
    dirs.push_back(std::move(step));
  }
  // Only reached when the walk ended on "." after a link: the current folder.
  const int fd = ::openat(current(), ".", flags | O_CLOEXEC);
  if (fd < 0) return FromErrno(errno, relative);
  return fd;
}

Outcome<int> OpenByOpenat2(int root_fd, const fs::path& relative, int flags, bool& missing) {
  if (relative.is_absolute()) return Escapes(relative);
  const std::string text = relative.empty() ? std::string(".") : relative.string();
  struct open_how how {};
  how.flags = static_cast<__u64>(static_cast<unsigned>(flags | O_CLOEXEC));
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  for (int attempt = 0;; ++attempt) {
    const long fd = ::syscall(SYS_openat2, root_fd, text.c_str(), &how, sizeof how);
    if (fd >= 0) return static_cast<int>(fd);
    const int error = errno;
    if (error == ENOSYS) {
      missing = true;
      return FromErrno(error, relative);
    }
    // EAGAIN: a rename raced the lookup; the kernel asks to try again.
    if (error == EAGAIN && attempt < kOpenat2Retries) continue;
    return FromErrno(error, relative);
  }
}

Outcome<Fd> OpenRoot(const fs::path& root) {
  const int fd = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    const int error = errno;
    return Failure::Stalled(error == ENOENT || error == ENOTDIR ? kNotFound : kUnreadable,
                            "cannot open the source folder " + root.string() + ": " +
                                std::strerror(error));
  }
  return Fd(fd);
}

Outcome<Fd> Open(const fs::path& root, const fs::path& relative, int flags) {
  Outcome<Fd> root_fd = OpenRoot(root);
  if (!root_fd) return root_fd.failure();
  Outcome<int> fd = detail::OpenBeneath(root_fd->get(), relative, flags, /*use_openat2=*/true);
  if (!fd) return fd.failure();
  return Fd(*fd);
}

}  // namespace

std::string Show(const std::filesystem::path& relative) {
  return relative.empty() ? std::string(".") : relative.generic_string();
}

std::optional<std::filesystem::path> Beneath(const std::filesystem::path& root,
                                             const std::filesystem::path& path) {
  std::error_code ec;
  const fs::path absolute_root = fs::absolute(root, ec).lexically_normal();
  if (ec) return std::nullopt;
  const fs::path absolute_path = fs::absolute(path, ec).lexically_normal();
  if (ec) return std::nullopt;
  fs::path relative = absolute_path.lexically_relative(absolute_root);
  if (relative.empty()) return std::nullopt;  // another root name: not comparable
  if (!relative.empty() && *relative.begin() == "..") return std::nullopt;
  // "a/" normalises with an empty last element; drop it so the path names the folder itself.
  if (!relative.has_filename() && relative.has_parent_path()) relative = relative.parent_path();
  return relative;
}

namespace detail {
Outcome<int> OpenBeneath(int root_fd, const std::filesystem::path& relative, int flags,
                         bool use_openat2) {
  if (use_openat2 && !openat2_missing.load(std::memory_order_relaxed)) {
    bool missing = false;
    Outcome<int> fd = OpenByOpenat2(root_fd, relative, flags, missing);
    if (!missing) return fd;
    openat2_missing.store(true, std::memory_order_relaxed);
  }
  return OpenByWalk(root_fd, relative, flags);
}
}  // namespace detail

Outcome<Type> Probe(const std::filesystem::path& root, const std::filesystem::path& relative) {
  Outcome<Fd> fd = Open(root, relative, O_PATH);
  if (!fd) return fd.failure();
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) return FromErrno(errno, relative);
  return TypeOf(st.st_mode);
}

Outcome<std::string> ReadFile(const std::filesystem::path& root,
                              const std::filesystem::path& relative, std::uintmax_t max_bytes) {
  // O_NONBLOCK: a FIFO must not block the open; it is refused below, unread.
  Outcome<Fd> fd = Open(root, relative, O_RDONLY | O_NONBLOCK | O_NOCTTY);
  if (!fd) return fd.failure();
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) return FromErrno(errno, relative);
  if (!S_ISREG(st.st_mode)) {
    return Failure::Stalled(kWrongType, Show(relative) + " is not a regular file");
  }
  const auto too_large = [&] {
    return Failure::Stalled(kTooLarge, Show(relative) + " is larger than the limit of " +
                                           std::to_string(max_bytes) + " bytes; it was not read");
  };
  if (st.st_size < 0 || static_cast<std::uintmax_t>(st.st_size) > max_bytes) return too_large();
  std::string bytes;
  bytes.resize(static_cast<std::size_t>(st.st_size) + 1);
  std::size_t total = 0;
  while (true) {
    if (total == bytes.size()) {
      if (total > max_bytes) return too_large();  // it grew past the limit while being read
      bytes.resize(std::min<std::uintmax_t>(bytes.size() * 2, max_bytes + 1));
    }
    const ssize_t n = ::read(fd->get(), bytes.data() + total, bytes.size() - total);
    if (n < 0) {
      if (errno == EINTR) continue;
      return FromErrno(errno, relative);
    }
    if (n == 0) break;
    total += static_cast<std::size_t>(n);
  }
  if (total > max_bytes) return too_large();
  bytes.resize(total);
  return bytes;
}

Outcome<std::vector<Entry>> ListDirectory(const std::filesystem::path& root,
                                          const std::filesystem::path& relative) {
  Outcome<Fd> fd = Open(root, relative, O_RDONLY | O_DIRECTORY);
  if (!fd) return fd.failure();
  DIR* dir = ::fdopendir(fd->get());
  if (dir == nullptr) return FromErrno(errno, relative);
  fd->release();  // the DIR owns it now
  std::vector<Entry> entries;
  errno = 0;
  while (const dirent* entry = ::readdir(dir)) {
    const std::string name = entry->d_name;
    if (name == "." || name == "..") continue;
    Type type = Type::kOther;
    switch (entry->d_type) {
      case DT_REG: type = Type::kFile; break;
      case DT_DIR: type = Type::kDirectory; break;
      case DT_LNK: type = Type::kSymlink; break;
      case DT_UNKNOWN: {
        struct stat st {};
        if (::fstatat(::dirfd(dir), entry->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
          type = TypeOf(st.st_mode);
        }
        break;
      }
      default: break;
    }
    entries.push_back(Entry{name, type});
    errno = 0;
  }
  const int error = errno;
  ::closedir(dir);
  if (error != 0) return FromErrno(error, relative);
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.name < b.name; });
  return entries;
}

}  // namespace tmaster::confined
