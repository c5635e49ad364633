// What a tenant restore may touch, read from a backup's table of contents (`pg_restore --list`)
// and pg_restore's SQL text, without a database. Pure functions: the restore itself is in
// reconcilers/backups/backup_tools.cpp.
//
// A tenant database holds objects the tenant owns and objects the operator owns: the migrations
// ledger (schema `tenant_master`) and the extensions (schema `extensions`). The tenant's part is
// restored by a login that can only become the tenant role, so nothing in a backup (which the
// tenant wrote) runs with the operator's rights; the operator's part never runs the backup's
// SQL: the extensions are re-created by name, the ledger's rows inserted as parameters.
// docs/backups.md, "Restore", says why.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/outcome.hpp"

namespace tmaster::backups {

/// The schemas the operator owns in a tenant database.
inline constexpr std::string_view kLedgerSchema = "tenant_master";
inline constexpr std::string_view kExtensionSchema = "extensions";

/// A table of contents split between the tenant's restore and the operator's.
struct TocPlan {
  /// The whole list, one entry a line, the operator's entries commented out (`;` first), in the
  /// original order (a restore from a pipe cannot reorder).
  std::vector<std::string> tenant_lines;
  /// The indexes in `tenant_lines` of the EXTENSION entries, in order: an extension that turns
  /// out to live in a schema of the tenant's goes back to the tenant (GiveBack).
  std::vector<std::size_t> extension_lines;
  /// The EXTENSION entries and the ledger's data entry, uncommented: pg_restore -L of it (without
  /// a database) prints the SQL the operator reads (never runs): CREATE EXTENSION statements in
  /// the order of `extension_lines`, and the ledger's COPY block.
  std::string operator_toc;
  /// Whether the ledger's rows (TABLE DATA tenant_master schema_migrations) are in the backup.
  bool has_ledger_data = false;
  /// How many entries were left to the operator.
  int operator_entries = 0;

  /// `tenant_lines` as pg_restore -L reads them.
  [[nodiscard]] std::string TenantToc() const;
  /// Uncomments the `n`th extension entry (an extension in a schema of the tenant's: created by
  /// the tenant's restore, with the tenant's rights, as it was dumped).
  void GiveBack(std::size_t n);
};

/// Splits `toc` (pg_restore --list's output). An entry is the operator's when it is an extension
/// (or its comment), lives in `tenant_master` or `extensions`, or is one of those schemas (or its
/// comment or ACL). An entry it cannot parse stays the tenant's: at worst the tenant's restore
/// then fails on a permission, never runs with more rights.
TocPlan PlanTenantRestore(std::string_view toc);

/// One `CREATE EXTENSION IF NOT EXISTS name WITH SCHEMA schema;` of pg_restore's SQL text.
struct ExtensionDecl {
  std::string name;
  std::string schema;
};

/// Every CREATE EXTENSION statement of `sql`, identifiers unquoted. A statement it cannot read
/// fails (Stalled "BackupRestoreFailed" quoting its start): the restore does not guess.
Outcome<std::vector<ExtensionDecl>> ParseCreateExtensions(std::string_view sql);

/// The rows of one `COPY table (columns) FROM stdin;` block of pg_restore's SQL text, in COPY's
/// text format unescaped (\N: no value).
struct CopyRows {
  std::vector<std::string> columns;
  std::vector<std::vector<std::optional<std::string>>> rows;
};

/// The COPY block of `table` ("schema.name", as pg_dump writes it) in `sql`; no block: no
/// columns and no rows. A block that does not end, or a row with another number of fields,
/// fails (Stalled "BackupRestoreFailed").
Outcome<CopyRows> ParseCopyBlock(std::string_view sql, std::string_view table);

}  // namespace tmaster::backups
