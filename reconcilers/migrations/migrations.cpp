#include "reconcilers/migrations/migrations.hpp"

#include <algorithm>
#include <iterator>
#include <map>
#include <optional>
#include <string_view>
#include <system_error>

#include "common/confined.hpp"
#include "common/crypto.hpp"
#include "common/text.hpp"
#include "reconcilers/migrations/txn_control.hpp"

namespace tmaster::migrations {
namespace {

namespace fs = std::filesystem;

constexpr const char* kInvalid = "InvalidMigrations";
constexpr std::size_t kSetDigestHexChars = 16;
// Enough of a SHA-256 to tell two files apart at a glance in a message.
constexpr std::size_t kShortChecksum = 12;


std::string ShortChecksum(const std::string& checksum) {
  return checksum.substr(0, kShortChecksum) + "…";
}

// `^([0-9]{4})_([a-z0-9_]+)\.sql$`, written out: std::regex draws false -Wmaybe-uninitialized
// warnings from GCC 12 under the sanitizers, and this is all it would do. Returns the version.
std::optional<std::string> VersionOf(std::string_view name) {
  constexpr std::string_view kSuffix = ".sql";
  constexpr std::size_t kDigits = 4;
  if (name.size() < kDigits + 2 + kSuffix.size() || !name.ends_with(kSuffix)) return std::nullopt;
  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  const auto is_word = [&](char c) { return (c >= 'a' && c <= 'z') || is_digit(c) || c == '_'; };
  const std::string_view version = name.substr(0, kDigits);
  if (!std::all_of(version.begin(), version.end(), is_digit)) return std::nullopt;
  if (name[kDigits] != '_') return std::nullopt;
  const std::string_view description =
      name.substr(kDigits + 1, name.size() - kDigits - 1 - kSuffix.size());
  if (description.empty() || !std::all_of(description.begin(), description.end(), is_word)) {
    return std::nullopt;
  }
  return std::string(version);
}

Failure Invalid(std::string message) { return Failure::Stalled(kInvalid, std::move(message)); }

// A confined read's failure, as the migration's own.
Failure ReadFailure(const Failure& failure, const std::string& file, std::uintmax_t max_bytes) {
  if (failure.reason == confined::kTooLarge) {
    return Failure::Stalled("MigrationTooLarge",
                            "migration " + file + " is larger than the limit of " +
                                std::to_string(max_bytes) +
                                " bytes (reconcile.maxMigrationSize); it was not read");
  }
  if (failure.reason == confined::kEscapes) {
    return Invalid("migration file " + file +
                   " leaves the source folder (a symbolic link or '..' pointing outside it); it "
                   "was not read");
  }
  return Invalid("cannot read migration file " + file + ": " + failure.message);
}

}  // namespace

Outcome<std::vector<Migration>> LoadDirectory(const std::filesystem::path& root_or_empty,
                                              const std::filesystem::path& dir,
                                              std::uintmax_t max_file_bytes) {
  const fs::path& root = root_or_empty.empty() ? dir : root_or_empty;
  const std::optional<fs::path> relative =
      dir.is_absolute() ? confined::Beneath(root, dir) : confined::Beneath(root, root / dir);
  if (!relative) {
    return Invalid("migrations directory " + dir.string() + " is outside the source folder");
  }
  const std::string shown = confined::Show(*relative);
  // Each file as messages name it: relative to the source's folder.
  const auto name_of = [&](const std::string& file) {
    return *relative == "." ? file : (*relative / file).generic_string();
  };
  Outcome<std::vector<confined::Entry>> entries = confined::ListDirectory(root, *relative);
  if (!entries) {
    const Failure& failure = entries.failure();
    if (failure.reason == confined::kEscapes) {
      return Invalid("migrations directory " + shown + " leaves the source folder");
    }
    if (failure.reason == confined::kNotFound || failure.reason == confined::kUnreadable) {
      return Invalid("migrations directory " + shown +
                     " does not exist or is not a directory: " + failure.message);
    }
    return Invalid("cannot list migrations directory " + shown + ": " + failure.message);
  }

  std::vector<Migration> loaded;
  std::map<std::string, std::string> by_version;  // version -> file, to report duplicates
  for (const confined::Entry& entry : *entries) {
    const std::string& name = entry.name;
    if (fs::path(name).extension() != ".sql") continue;
    // Folders, FIFOs and devices named *.sql are not migrations (never opened).
    if (entry.type != confined::Type::kFile && entry.type != confined::Type::kSymlink) continue;
    const auto version = VersionOf(name);
    if (!version) {
      return Invalid("migration file " + name_of(name) +
                     " is not named NNNN_description.sql (four digits, an underscore, then a-z, "
                     "0-9 and _)");
    }
    if (const auto [seen, inserted] = by_version.emplace(*version, name); !inserted) {
      return Invalid("migrations " + seen->second + " and " + name + " in " + shown +
                     " share version " + *version + "; every version must be unique");
    }
    Outcome<std::string> bytes = confined::ReadFile(root, *relative / name, max_file_bytes);
    if (!bytes && bytes.failure().reason == confined::kWrongType) {
      by_version.erase(*version);
      continue;  // a symbolic link to a folder inside the source: not a migration
    }
    if (!bytes) return ReadFailure(bytes.failure(), name_of(name), max_file_bytes);
    if (const auto control = FindTransactionControl(*bytes)) {
      return Failure::Stalled(
          "MigrationInvalid",
          "migration " + name_of(name) + " line " + std::to_string(control->line) + ", column " +
              std::to_string(control->column) + ": " + control->keyword +
              " controls the transaction, but a migration runs in one transaction with its "
              "ledger row; remove the transaction control");
    }
    if (const auto open = FindUnterminated(*bytes)) {
      return Failure::Stalled(
          "MigrationInvalid",
          "migration " + name_of(name) + " line " + std::to_string(open->line) + ", column " +
              std::to_string(open->column) + ": this " + open->what +
              " is not closed before the end of the file; the ledger row and COMMIT that follow "
              "a migration would end up inside it");
    }
    Migration migration;
    migration.version = *version;
    migration.file = name;
    migration.checksum = crypto::Sha256Hex(*bytes);
    migration.sql = std::make_shared<const std::string>(std::move(*bytes));
    loaded.push_back(std::move(migration));
  }
  // Four-digit versions sort as text exactly as they do as numbers.
  std::sort(loaded.begin(), loaded.end(),
            [](const Migration& a, const Migration& b) { return a.version < b.version; });
  return loaded;
}

Outcome<std::vector<Migration>> LoadDirectory(const std::filesystem::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return Invalid("migrations directory " + dir.string() +
                   " does not exist or is not a directory");
  }
  return LoadDirectory(dir, ".", kDefaultMaxMigrationBytes);
}

Outcome<std::vector<Migration>> Pending(const std::vector<Migration>& files,
                                        const std::vector<AppliedMigration>& applied,
                                        const std::string& database, bool ignore_missing) {
  std::map<std::string, const Migration*> by_version;
  for (const auto& file : files) by_version.emplace(file.version, &file);

  std::string highest_applied;
  for (const auto& record : applied) {
    const auto found = by_version.find(record.version);
    if (found == by_version.end() && ignore_missing) {
      highest_applied = std::max(highest_applied, record.version);
      continue;
    }
    if (found == by_version.end()) {
      return Failure::Stalled(
          "MigrationMissing",
          "database " + Quoted(database) + " records migration " + record.file + " (version " +
              record.version +
              ") but the product has no migration of that version; restore the file, or set "
              "ignoreMissingMigrations: true on the product");
    }
    const Migration& file = *found->second;
    if (file.checksum != record.checksum) {
      return Failure::Stalled(
          "MigrationChecksumMismatch",
          "migration " + file.file + " was applied to database " + Quoted(database) +
              " with checksum " + ShortChecksum(record.checksum) + " but the file now has " +
              ShortChecksum(file.checksum) + "; restore the file or add a new migration");
    }
    highest_applied = std::max(highest_applied, record.version);
  }

  std::vector<Migration> pending;
  for (const auto& file : files) {
    const bool done = std::any_of(applied.begin(), applied.end(), [&](const auto& record) {
      return record.version == file.version;
    });
    if (done) continue;
    // Running a file numbered below one already applied would reorder history behind the back
    // of every database that already ran the later one (Flyway refuses this too by default).
    if (file.version < highest_applied) {
      return Failure::Stalled("MigrationOutOfOrder",
                              "migration " + file.file + " is numbered below version " +
                                  highest_applied + ", already applied to database " +
                                  Quoted(database) +
                                  "; renumber it after the last applied migration");
    }
    pending.push_back(file);
  }
  return pending;
}

std::string SetDigest(const std::vector<Migration>& files) {
  std::string text;
  for (const auto& file : files) {
    text += file.version;
    text += ':';
    text += file.checksum;
    text += '\n';
  }
  return crypto::Sha256Hex(text).substr(0, kSetDigestHexChars);
}

}  // namespace tmaster::migrations
