#include "controller/bindings/safe_dir.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/fs.h>  // RENAME_EXCHANGE, RENAME_NOREPLACE
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <system_error>

#include "common/crypto.hpp"

namespace tmaster::bindings {
namespace {

namespace fs = std::filesystem;

constexpr const char* kReason = "BindingsFailed";
constexpr std::size_t kMaxFileBytes = 1024 * 1024;

Failure Fail(const fs::path& path, const std::string& what) {
  return Failure::Transient(kReason, path.string() + ": " + what);
}

Failure FailErrno(const fs::path& path, const std::string& what, int error) {
  return Fail(path, what + ": " + std::strerror(error));
}

mode_t DirMode(const Access& access) { return access.group ? 0750 : 0700; }
mode_t FileMode(const Access& access) { return access.group ? 0640 : 0600; }

// renameat2(2) through syscall(2): glibc 2.36 declares it only with _GNU_SOURCE in <stdio.h>.
int RenameAt2(int from_dir, const char* from, int to_dir, const char* to, unsigned flags) {
  return static_cast<int>(::syscall(SYS_renameat2, from_dir, from, to_dir, to, flags));
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// Refuses what the operator does not own alone: another owner, or writable by group or others.
std::optional<Failure> CheckOwned(const fs::path& path, const struct stat& st, bool folder) {
  if (folder ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
    return Fail(path, folder ? "is not a folder (refused)" : "is not a regular file (refused)");
  }
  if (st.st_uid != ::geteuid()) {
    return Fail(path, "is owned by uid " + std::to_string(st.st_uid) + ", not by the operator (uid " +
                          std::to_string(::geteuid()) + "); refused");
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return Fail(path, std::string("is writable by group or others (mode ") + mode + "); refused");
  }
  return std::nullopt;
}

// Why opening a folder without following a link failed: with O_DIRECTORY a link is ENOTDIR or
// ELOOP depending on its target, so the entry itself is looked at.
Failure OpenFailure(int dir, const char* name, const fs::path& path, int error) {
  struct stat st {};
  if ((error == ELOOP || error == ENOTDIR) && ::fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISLNK(st.st_mode)) {
      return Fail(path, "is a symbolic link (refused; nothing is written through it)");
    }
    return Fail(path, "is not a folder (refused)");
  }
  return FailErrno(path, "cannot open", error);
}

// Opens the folder `name` under `dir` without following a link.
Outcome<int> OpenChildDir(int dir, const fs::path& path, const char* name) {
  const int fd = ::openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) return fd;
  return OpenFailure(dir, name, path, errno);
}

Status SetAccess(int fd, const fs::path& path, const struct stat& st, mode_t mode,
                 const Access& access) {
  if (access.group && st.st_gid != *access.group && ::fchown(fd, static_cast<uid_t>(-1), *access.group) != 0) {
    return FailErrno(path, "cannot give it the group", errno);
  }
  if ((st.st_mode & 07777) != mode && ::fchmod(fd, mode) != 0) {
    return FailErrno(path, "cannot set its mode", errno);
  }
  return Done{};
}

// Reads a whole regular file of ours (O_NOFOLLOW) of at most `max_bytes`, or nullopt with `why`
// set when it is not one.
std::optional<std::string> ReadOwnedFile(int dir, const char* name, const fs::path& path,
                                         const Access& access, std::string& why,
                                         std::uintmax_t max_bytes = kMaxFileBytes) {
  Fd fd(::openat(dir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (fd.get() < 0) {
    why = errno == ELOOP ? "a symbolic link" : std::strerror(errno);
    return std::nullopt;
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || CheckOwned(path, st, false) ||
      (st.st_mode & 07777) != FileMode(access) || (access.group && st.st_gid != *access.group) ||
      static_cast<std::uintmax_t>(st.st_size) > max_bytes) {
    why = "not ours or with another mode";
    return std::nullopt;
  }
  std::string content(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::read(fd.get(), content.data() + done, content.size() - done);
    if (n <= 0) {
      why = "short read";
      return std::nullopt;
    }
    done += static_cast<std::size_t>(n);
  }
  char extra = 0;
  if (::read(fd.get(), &extra, 1) != 0) {  // grew while read: not a stable version
    why = "changed while read";
    return std::nullopt;
  }
  return content;
}

Status WriteNewFile(int dir, const char* name, const fs::path& path, std::string_view content,
                    const Access& access, bool sync) {
  Fd fd(::openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, FileMode(access)));
  if (fd.get() < 0) return FailErrno(path, "cannot create", errno);
  if (access.group && ::fchown(fd.get(), static_cast<uid_t>(-1), *access.group) != 0) {
    return FailErrno(path, "cannot give it the group", errno);
  }
  // The umask may have taken bits away from the mode asked for at creation.
  if (::fchmod(fd.get(), FileMode(access)) != 0) return FailErrno(path, "cannot set its mode", errno);
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return FailErrno(path, "cannot write", errno);
    }
    done += static_cast<std::size_t>(n);
  }
  if (sync && ::fsync(fd.get()) != 0) return FailErrno(path, "cannot flush", errno);
  return Done{};
}

constexpr std::size_t kTemporarySuffix = 12;  // hex digits

std::string TemporaryName(std::string_view name) {
  return "." + std::string(name) + "." + crypto::Hex(crypto::RandomBytes(kTemporarySuffix / 2));
}

// `.<name>.<12 hex digits>`, as TemporaryName makes them; nothing else is ours to clean.
bool IsTemporaryName(std::string_view name) {
  if (name.size() < kTemporarySuffix + 3 || name.front() != '.') return false;
  const std::string_view suffix = name.substr(name.size() - kTemporarySuffix);
  return name[name.size() - kTemporarySuffix - 1] == '.' &&
         std::all_of(suffix.begin(), suffix.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// Removes the folder `name` under `dir` and the entries in it, never following a link (unlinkat
// removes a link itself). Sub-folders, which we never make, are removed the same way.
Status RemoveTree(int dir, const std::string& name, const fs::path& path, int depth = 0) {
  if (depth > 4) return Fail(path, "is nested too deep to remove");
  Outcome<int> opened = OpenChildDir(dir, path, name.c_str());
  if (!opened) return opened.failure();
  Fd fd(*opened);
  DIR* stream = ::fdopendir(::dup(fd.get()));
  if (stream == nullptr) return FailErrno(path, "cannot list", errno);
  std::vector<std::pair<std::string, bool>> entries;
  while (const dirent* entry = ::readdir(stream)) {
    const std::string child = entry->d_name;
    if (child == "." || child == "..") continue;
    entries.emplace_back(child, entry->d_type == DT_DIR);
  }
  ::closedir(stream);
  for (const auto& [child, is_dir] : entries) {
    if (is_dir) {
      Status removed = RemoveTree(fd.get(), child, path / child, depth + 1);
      if (!removed) return removed;
    } else if (::unlinkat(fd.get(), child.c_str(), 0) != 0 && errno != ENOENT) {
      return FailErrno(path / child, "cannot remove", errno);
    }
  }
  if (::unlinkat(dir, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return FailErrno(path, "cannot remove", errno);
  }
  return Done{};
}

// The folder's entries with their content when every one is a file of ours; nullopt otherwise.
std::optional<std::map<std::string, std::string>> ReadFolder(int fd, const fs::path& path,
                                                             const Access& access) {
  DIR* stream = ::fdopendir(::dup(fd));
  if (stream == nullptr) return std::nullopt;
  std::vector<std::string> names;
  while (const dirent* entry = ::readdir(stream)) {
    const std::string child = entry->d_name;
    if (child != "." && child != "..") names.push_back(child);
  }
  ::closedir(stream);
  std::map<std::string, std::string> files;
  for (const std::string& child : names) {
    std::string why;
    std::optional<std::string> content = ReadOwnedFile(fd, child.c_str(), path / child, access, why);
    if (!content) return std::nullopt;
    files.emplace(child, std::move(*content));
  }
  return files;
}

bool SameFiles(const std::map<std::string, std::string>& found, const std::vector<FileEntry>& files) {
  if (found.size() != files.size()) return false;
  return std::all_of(files.begin(), files.end(), [&](const FileEntry& file) {
    auto it = found.find(file.first);
    return it != found.end() && it->second == file.second;
  });
}

DirStamp StampOf(const struct stat& st) {
  return DirStamp{st.st_ino, static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 +
                                 st.st_mtim.tv_nsec};
}

}  // namespace

bool IsChildName(std::string_view name) {
  return !name.empty() && name.size() <= 255 && name.front() != '.' &&
         name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

Outcome<Access> AccessFor(const std::string& group) {
  if (group.empty()) return Access{};
  const struct group* found = ::getgrnam(group.c_str());
  if (found == nullptr) {
    return Failure::Stalled(kReason, "group '" + group + "' does not exist on this machine");
  }
  return Access{found->gr_gid};
}

SafeDir::SafeDir(int fd, fs::path path, Access access)
    : fd_(fd), path_(std::move(path)), access_(access) {}

SafeDir::SafeDir(SafeDir&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), path_(std::move(other.path_)), access_(other.access_) {}

SafeDir& SafeDir::operator=(SafeDir&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
    access_ = other.access_;
  }
  return *this;
}

SafeDir::~SafeDir() {
  if (fd_ >= 0) ::close(fd_);
}

Outcome<SafeDir> SafeDir::Open(const fs::path& path, Access access, bool create) {
  const fs::path absolute = path.lexically_normal();
  if (!absolute.has_filename()) return Fail(path, "names no folder");
  if (create) {
    std::error_code ec;
    if (absolute.has_parent_path()) fs::create_directories(absolute.parent_path(), ec);
    if (ec) return Fail(absolute.parent_path(), "cannot create: " + ec.message());
    if (::mkdir(absolute.c_str(), DirMode(access)) != 0 && errno != EEXIST) {
      return FailErrno(absolute, "cannot create", errno);
    }
  }
  const int fd = ::open(absolute.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return OpenFailure(AT_FDCWD, absolute.c_str(), absolute, errno);
  Fd owned(fd);
  struct stat st {};
  if (::fstat(fd, &st) != 0) return FailErrno(absolute, "cannot stat", errno);
  if (auto refused = CheckOwned(absolute, st, true)) return *refused;
  Status set = SetAccess(fd, absolute, st, DirMode(access), access);
  if (!set) return set.failure();
  return SafeDir(owned.release(), absolute, access);
}

Outcome<SafeDir> SafeDir::Sub(std::string_view name, bool create) const {
  const fs::path path = path_ / std::string(name);
  if (!IsChildName(name)) return Fail(path, "is not a valid folder name");
  const std::string child(name);
  if (create && ::mkdirat(fd_, child.c_str(), DirMode(access_)) != 0 && errno != EEXIST) {
    return FailErrno(path, "cannot create", errno);
  }
  Outcome<int> opened = OpenChildDir(fd_, path, child.c_str());
  if (!opened) return opened.failure();
  Fd fd(*opened);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return FailErrno(path, "cannot stat", errno);
  if (auto refused = CheckOwned(path, st, true)) return *refused;
  Status set = SetAccess(fd.get(), path, st, DirMode(access_), access_);
  if (!set) return set.failure();
  return SafeDir(fd.release(), path, access_);
}

Outcome<bool> SafeDir::WriteFile(std::string_view name, std::string_view content) const {
  const fs::path path = path_ / std::string(name);
  if (!IsChildName(name)) return Fail(path, "is not a valid file name");
  const std::string file(name);
  struct stat st {};
  if (::fstatat(fd_, file.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISLNK(st.st_mode)) return Fail(path, "is a symbolic link (refused; nothing is written through it)");
    if (auto refused = CheckOwned(path, st, false)) return *refused;
    // Another size is another content: not read. The same size is compared whatever it is (a
    // userlist.txt passes 1 MiB at about 6,500 tenants).
    if (static_cast<std::uintmax_t>(st.st_size) == content.size()) {
      std::string why;
      std::optional<std::string> current =
          ReadOwnedFile(fd_, file.c_str(), path, access_, why, content.size());
      if (current && *current == content) return false;
    }
  } else if (errno != ENOENT) {
    return FailErrno(path, "cannot stat", errno);
  }
  const std::string temp = TemporaryName(name);
  Status written = WriteNewFile(fd_, temp.c_str(), path_ / temp, content, access_, /*sync=*/true);
  if (written && ::renameat(fd_, temp.c_str(), fd_, file.c_str()) != 0) {
    written = FailErrno(path, "cannot rename into place", errno);
  }
  if (!written) {
    ::unlinkat(fd_, temp.c_str(), 0);
    return written.failure();
  }
  return true;
}

Outcome<SafeDir::Replaced> SafeDir::ReplaceDir(std::string_view name,
                                               const std::vector<FileEntry>& files,
                                               const DirStamp* known) const {
  const fs::path path = path_ / std::string(name);
  if (!IsChildName(name)) return Fail(path, "is not a valid folder name");
  const std::string child(name);
  bool exists = false;
  struct stat st {};
  if (::fstatat(fd_, child.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (S_ISLNK(st.st_mode)) return Fail(path, "is a symbolic link (refused; nothing is written through it)");
    if (auto refused = CheckOwned(path, st, true)) return *refused;
    exists = true;
    const bool right_access = (st.st_mode & 07777) == DirMode(access_) &&
                              (!access_.group || st.st_gid == *access_.group);
    if (right_access && known != nullptr && *known == StampOf(st)) return Replaced{false, *known};
    Outcome<int> opened = OpenChildDir(fd_, path, child.c_str());
    if (!opened) return opened.failure();
    Fd fd(*opened);
    if (right_access) {
      std::optional<std::map<std::string, std::string>> found = ReadFolder(fd.get(), path, access_);
      if (found && SameFiles(*found, files)) return Replaced{false, StampOf(st)};
    }
  } else if (errno != ENOENT) {
    return FailErrno(path, "cannot stat", errno);
  }
  for (const auto& [file, content] : files) {
    if (!IsChildName(file)) return Fail(path / file, "is not a valid file name");
  }

  // Fill a new folder beside it, then swap: a reader holding either folder sees one version.
  const std::string temp = TemporaryName(name);
  if (::mkdirat(fd_, temp.c_str(), DirMode(access_)) != 0) {
    return FailErrno(path_ / temp, "cannot create", errno);
  }
  auto abandon = [&](Failure failure) -> Failure {
    (void)RemoveTree(fd_, temp, path_ / temp);
    return failure;
  };
  {
    Outcome<int> opened = OpenChildDir(fd_, path_ / temp, temp.c_str());
    if (!opened) return abandon(opened.failure());
    Fd fd(*opened);
    struct stat made {};
    if (::fstat(fd.get(), &made) != 0) return abandon(FailErrno(path_ / temp, "cannot stat", errno));
    Status set = SetAccess(fd.get(), path_ / temp, made, DirMode(access_), access_);
    if (!set) return abandon(set.failure());
    for (const auto& [file, content] : files) {
      // Not flushed one by one: a binding is derived state, compared and rewritten from the
      // desired state at every start (docs/bindings.md#on-disk-safety).
      Status written = WriteNewFile(fd.get(), file.c_str(), path / file, content, access_, false);
      if (!written) return abandon(written.failure());
    }
  }
  if (exists) {
    if (RenameAt2(fd_, temp.c_str(), fd_, child.c_str(), RENAME_EXCHANGE) != 0) {
      return abandon(FailErrno(path, "cannot swap the new version in", errno));
    }
    (void)RemoveTree(fd_, temp, path_ / temp);  // the old version, now under the temporary name
  } else if (RenameAt2(fd_, temp.c_str(), fd_, child.c_str(), RENAME_NOREPLACE) != 0) {
    return abandon(FailErrno(path, "cannot rename into place", errno));
  }
  if (::fstatat(fd_, child.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return FailErrno(path, "cannot stat", errno);
  }
  return Replaced{true, StampOf(st)};
}

Outcome<bool> SafeDir::RemoveDir(std::string_view name) const {
  const fs::path path = path_ / std::string(name);
  if (!IsChildName(name)) return Fail(path, "is not a valid folder name");
  const std::string child(name);
  struct stat st {};
  if (::fstatat(fd_, child.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return false;
    return FailErrno(path, "cannot stat", errno);
  }
  if (S_ISLNK(st.st_mode)) return Fail(path, "is a symbolic link (refused; nothing is removed through it)");
  if (auto refused = CheckOwned(path, st, true)) return *refused;
  // Renamed away first, so no reader finds a half-removed folder under the workspace's name.
  const std::string temp = TemporaryName(name);
  if (::renameat(fd_, child.c_str(), fd_, temp.c_str()) != 0) {
    return FailErrno(path, "cannot move away", errno);
  }
  Status removed = RemoveTree(fd_, temp, path_ / temp);
  if (!removed) return removed.failure();
  return true;
}

Outcome<std::vector<std::string>> SafeDir::ListDirs() const {
  DIR* stream = ::fdopendir(::dup(fd_));
  if (stream == nullptr) return FailErrno(path_, "cannot list", errno);
  ::rewinddir(stream);
  std::vector<std::string> names;
  while (const dirent* entry = ::readdir(stream)) {
    const std::string child = entry->d_name;
    if (!IsChildName(child)) continue;
    if (entry->d_type == DT_DIR || entry->d_type == DT_LNK || entry->d_type == DT_UNKNOWN) {
      names.push_back(child);
    }
  }
  ::closedir(stream);
  std::sort(names.begin(), names.end());
  return names;
}

void SafeDir::RemoveTemporaries() const {
  DIR* stream = ::fdopendir(::dup(fd_));
  if (stream == nullptr) return;
  ::rewinddir(stream);
  std::vector<std::pair<std::string, bool>> temps;
  while (const dirent* entry = ::readdir(stream)) {
    const std::string child = entry->d_name;
    if (IsTemporaryName(child)) {
      temps.emplace_back(child, entry->d_type == DT_DIR);
    }
  }
  ::closedir(stream);
  for (const auto& [child, is_dir] : temps) {
    if (is_dir) {
      (void)RemoveTree(fd_, child, path_ / child);
    } else {
      ::unlinkat(fd_, child.c_str(), 0);
    }
  }
}

}  // namespace tmaster::bindings
