#pragma once

// Folders the operator writes for other programs to read (Service Binding folders, PgBouncer's
// files; docs/bindings.md#on-disk-safety), handled through directory descriptors only: every
// step below the opened folder is openat/mkdirat/renameat2/unlinkat with O_NOFOLLOW, so a
// symbolic link planted anywhere beneath it is refused, never followed. A folder or file that is
// not the operator's own (another owner, or writable by group or others) is refused too: whoever
// could write there could swap what we write. Readers see whole versions only: a file is
// replaced by rename, a folder of files by renameat2(RENAME_EXCHANGE).

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/outcome.hpp"

namespace tmaster::bindings {

/// Who may read what we write: with a group, folders 0750 and files 0640 owned by that group;
/// without, 0700 and 0600.
struct Access {
  std::optional<gid_t> group;
};

/// Resolves a group name; Stalled `BindingsFailed` naming it when it does not exist (a config error).
Outcome<Access> AccessFor(const std::string& group);

/// What a folder looked like when we last wrote or checked it: an unchanged stamp means nothing
/// was added, removed or renamed inside since (a file edited in place does not change it).
struct DirStamp {
  ino_t inode = 0;
  std::int64_t mtime_ns = 0;
  friend bool operator==(const DirStamp&, const DirStamp&) = default;
};

/// One file of a folder: its name and its whole content.
using FileEntry = std::pair<std::string, std::string>;

class SafeDir {
 public:
  /// Opens `path` (created with the access's mode when `create` and missing; its parents are
  /// created with the process's umask). Refused, naming the path and why: a symbolic link, not
  /// a folder, owned by another user than the operator's, writable by group or others. Its mode
  /// and group are then set to the access's. Every failure of SafeDir is Transient `BindingsFailed`
  /// (retried: an administrator may remove what was planted), its message naming the path.
  static Outcome<SafeDir> Open(const std::filesystem::path& path, Access access, bool create);

  SafeDir(SafeDir&& other) noexcept;
  SafeDir& operator=(SafeDir&& other) noexcept;
  SafeDir(const SafeDir&) = delete;
  SafeDir& operator=(const SafeDir&) = delete;
  ~SafeDir();

  /// The child folder `name` under the same rules (`name` is one path component, not `.` or
  /// `..`, not starting with `.`).
  [[nodiscard]] Outcome<SafeDir> Sub(std::string_view name, bool create) const;

  /// Makes the file `name` hold exactly `content` with the access's mode and group: written to a
  /// temporary file and renamed over it, only when it differs. True when written. Refused when
  /// `name` is a symbolic link, not a regular file, or not ours.
  [[nodiscard]] Outcome<bool> WriteFile(std::string_view name, std::string_view content) const;

  /// What ReplaceDir did: whether it wrote, and the folder's stamp afterwards.
  struct Replaced {
    bool written = false;
    DirStamp stamp;
  };
  /// Makes the child folder `name` hold exactly `files` (and nothing else) with the access's
  /// modes. When `known` is given and the folder's stamp still equals it, the caller vouches that
  /// the content is what it last wrote: nothing is read or written. Otherwise the folder is read
  /// and, when anything differs, a new folder `.<name>.<random>` is filled and swapped in with
  /// renameat2(RENAME_EXCHANGE) (a new name: RENAME_NOREPLACE), and the old version removed.
  /// Refused when `name` is a symbolic link, not a folder, or not ours.
  [[nodiscard]] Outcome<Replaced> ReplaceDir(std::string_view name,
                                             const std::vector<FileEntry>& files,
                                             const DirStamp* known) const;

  /// Removes the child folder `name` and the files in it; true when it existed. Refused (nothing
  /// removed) when it is a symbolic link, not a folder, or not ours.
  [[nodiscard]] Outcome<bool> RemoveDir(std::string_view name) const;

  /// The names of the child folders, sorted, temporaries (names starting with `.`) left out.
  [[nodiscard]] Outcome<std::vector<std::string>> ListDirs() const;

  /// Removes leftover temporaries (`.<name>.<random>` folders and `.<name>.<random>` files) of an
  /// interrupted write. Best effort.
  void RemoveTemporaries() const;

  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  [[nodiscard]] int fd() const { return fd_; }

 private:
  SafeDir(int fd, std::filesystem::path path, Access access);

  int fd_ = -1;
  std::filesystem::path path_;
  Access access_;
};

/// True for a name SafeDir accepts as one child: not empty, at most 255 bytes, no `/` or NUL, not
/// starting with `.`.
bool IsChildName(std::string_view name);

}  // namespace tmaster::bindings
