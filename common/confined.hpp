#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/outcome.hpp"

/// Files opened beneath a root folder and never outside it (docs/architecture.md#manifests): a
/// `..` or a symbolic link that would leave the root is refused, race-free (openat2 with
/// RESOLVE_BENEATH, or a walk with O_NOFOLLOW where openat2 is missing). Symbolic links that stay
/// beneath the root are followed. Messages name the path relative to the root, never any of the
/// file's content.
namespace tmaster::confined {

/// Failure reasons; callers map them onto their own (`MigrationTooLarge`, `InvalidMigrations`).
inline constexpr const char* kEscapes = "PathEscapesRoot";  ///< `..` or a symlink leaves the root
inline constexpr const char* kNotFound = "PathNotFound";
inline constexpr const char* kWrongType = "WrongFileType";  ///< e.g. a directory where a file was
inline constexpr const char* kTooLarge = "FileTooLarge";
inline constexpr const char* kUnreadable = "FileUnreadable";

enum class Type { kFile, kDirectory, kSymlink, kOther };

/// What `relative` (beneath `root`, symlinks inside the root followed) is. Stalled failures with
/// the reasons above.
Outcome<Type> Probe(const std::filesystem::path& root, const std::filesystem::path& relative);

/// The bytes of the regular file `relative` beneath `root`. Its size is checked with fstat before
/// anything is read, and reading stops at `max_bytes` + 1 should it grow meanwhile: a larger
/// file is `kTooLarge`, unread. A FIFO or device is `kWrongType` (opened non-blocking, not read).
Outcome<std::string> ReadFile(const std::filesystem::path& root,
                              const std::filesystem::path& relative, std::uintmax_t max_bytes);

struct Entry {
  std::string name;
  Type type = Type::kOther;  ///< the entry itself: a symlink is kSymlink, not its target
};

/// The entries of directory `relative` beneath `root` (without `.` and `..`), sorted by name.
Outcome<std::vector<Entry>> ListDirectory(const std::filesystem::path& root,
                                          const std::filesystem::path& relative);

/// `path` relative to `root`, lexically (both made absolute and normal first): nullopt when it is
/// not beneath `root` (a `..` above it, or elsewhere); `.` for the root itself.
std::optional<std::filesystem::path> Beneath(const std::filesystem::path& root,
                                             const std::filesystem::path& path);

/// `relative` as messages show it: `.` for the root itself.
std::string Show(const std::filesystem::path& relative);

namespace detail {
/// Opens `relative` beneath the directory `root_fd` with `flags`; the file descriptor or a
/// failure. `use_openat2 == false` forces the component walk (tests cover both).
Outcome<int> OpenBeneath(int root_fd, const std::filesystem::path& relative, int flags,
                         bool use_openat2);
}  // namespace detail

}  // namespace tmaster::confined
