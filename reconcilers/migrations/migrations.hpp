#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "common/outcome.hpp"

namespace tmaster::migrations {

/// One `NNNN_description.sql` file of a product.
struct Migration {
  std::string version;   ///< the four leading digits, e.g. `0003`
  std::string file;      ///< file name, e.g. `0003_add_invoices.sql`
  std::string checksum;  ///< lower-case hex SHA-256 of the file's bytes
  std::shared_ptr<const std::string> sql;
};

/// A migration already recorded inside a tenant database.
struct AppliedMigration {
  std::string version;
  std::string file;
  std::string checksum;
};

/// The default of `reconcile.maxMigrationSize`.
inline constexpr std::uintmax_t kDefaultMaxMigrationBytes = 1024U * 1024U;

/// Reads a product's migrations directory `dir` (relative to `root`, or absolute and beneath it)
/// confined beneath `root`, the source's folder (common/confined.hpp; empty: `dir` is its own
/// root, as for a product built in code): every `*.sql` must be
/// named `NNNN_description.sql` (description `[a-z0-9_]+`), versions unique; files come back
/// sorted by version. Other files (README, .keep) are ignored. Failures are Stalled and name the
/// file relative to `root`, never its content: `InvalidMigrations` (a bad name, a duplicate
/// version, a path or symbolic link leaving `root`, an unreadable file), `MigrationTooLarge` (a
/// file over `max_file_bytes`, refused before it is read), `MigrationInvalid` (a file with
/// transaction control, FindTransactionControl: line, column and keyword). Symbolic links that
/// stay beneath `root` are followed.
Outcome<std::vector<Migration>> LoadDirectory(const std::filesystem::path& root,
                                              const std::filesystem::path& dir,
                                              std::uintmax_t max_file_bytes);

/// The same with `dir` as its own root and the default size limit (tests, tools).
Outcome<std::vector<Migration>> LoadDirectory(const std::filesystem::path& dir);

/// Pure: which of `files` still need to run, given what `applied` records.
/// Stalled `MigrationChecksumMismatch` when an applied file's checksum differs (names the file
/// and the database given in `database`); Stalled `MigrationMissing` when the database records a
/// version the product no longer has; Stalled `MigrationOutOfOrder` when a file not yet applied
/// is numbered below the highest applied version. Otherwise the pending ones, in order.
/// With `ignore_missing` (the product's `ignoreMissingMigrations: true`) a recorded version the
/// product no longer has is skipped instead (it still counts for the out-of-order check).
Outcome<std::vector<Migration>> Pending(const std::vector<Migration>& files,
                                        const std::vector<AppliedMigration>& applied,
                                        const std::string& database, bool ignore_missing = false);

/// A short digest of the migration set (versions and checksums), recorded in the database marker
/// so a converged database is recognised without connecting to it.
std::string SetDigest(const std::vector<Migration>& files);

}  // namespace tmaster::migrations
