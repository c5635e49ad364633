#pragma once

// Small POSIX file helpers shared by the ledger and the directory backend (internal to
// tm_stacks). Failures are Transient `StackWriteFailed`/`StackReadFailed` with the path and
// errno text; never the content.

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "common/outcome.hpp"

namespace tmaster::stacks::files {

/// Replaces `path` with `content` atomically: a temporary file in the same folder, created with
/// `mode` (O_EXCL, then fchmod, so it is never more open than `mode` even for an instant),
/// written, fsync'ed, renamed over `path`, and the folder fsync'ed. On failure the temporary is
/// removed and `path` is left as it was.
Status WriteAtomic(const std::filesystem::path& path, std::string_view content, mode_t mode);

/// The whole file; Transient `StackReadFailed` when it cannot be read.
Outcome<std::string> Read(const std::filesystem::path& path);

/// fsync of a folder, so a rename or unlink in it survives a crash.
Status SyncDirectory(const std::filesystem::path& dir);

}  // namespace tmaster::stacks::files
