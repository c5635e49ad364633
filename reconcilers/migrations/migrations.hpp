#pragma once

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

/// Reads a product's migrations directory: every `*.sql` must be named `NNNN_description.sql`
/// (description `[a-z0-9_]+`), versions unique; files come back sorted by version. Other files
/// (README, .keep) are ignored. Failure (Stalled `InvalidMigrations`) names the file.
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
