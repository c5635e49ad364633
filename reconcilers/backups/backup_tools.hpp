#pragma once

// The backup engine of one tenant database: PostgreSQL's own tools (pg_dump, pg_restore) run as
// the cluster's admin, their data streamed through SHA-256 and, when asked, the encrypted format
// (reconcilers/backups/encrypted_format.hpp). Dump, Restore, and VerifyByRestore (a restore into a
// scratch database whose row counts are compared with those counted at dump time). Nothing here
// schedules, records in the catalog or suspends a workspace: that is the caller's
// (docs/backups.md).
//
// Secrets: the admin DSN's password reaches the tools through a 0600 password file in a private
// 0700 folder (the tools' conninfo names it, `password` is emptied), removed when the call
// returns; never argv, never a message (every tool's stderr is scrubbed of the DSN, the password
// and the master key). The tools get an explicit environment: nothing of this process's.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/outcome.hpp"
#include "common/secret.hpp"

namespace tmaster::backups {

/// Where pg_dump and pg_restore are. Empty fields are found by FindPostgresTools.
struct ToolPaths {
  std::string pg_dump;
  std::string pg_restore;
  /// Runs a restore's SQL (pg_restore's script) in one transaction after the tenant's objects
  /// the backup may lack are dropped. Empty: the `psql` beside `pg_restore`, else the found one.
  std::string psql = {};
};

/// The Debian tools: /usr/lib/postgresql/15/bin when it has both, else the newest
/// /usr/lib/postgresql/<major>/bin that does. Stalled "BackupToolMissing" when none has.
Outcome<ToolPaths> FindPostgresTools();

/// `paths` with its empty fields filled by FindPostgresTools.
Outcome<ToolPaths> ResolveTools(const ToolPaths& paths);

/// Per-table row counts, keyed by schema-qualified name as text (`public.orders`, unquoted).
using TableRows = std::map<std::string, std::int64_t>;

/// The JSON object the catalog's `table_rows_json` holds: `{"public.orders":1200,...}`.
std::string TableRowsJson(const TableRows& rows);
/// Reads TableRowsJson's output back. Stalled "InvalidValue" when it is not an object of
/// non-negative integers.
Outcome<TableRows> ParseTableRowsJson(const std::string& json);

struct DumpRequest {
  Secret admin_dsn;         ///< the cluster's admin connection (conninfo or URI)
  std::string database;     ///< the tenant database to dump
  std::string folder;       ///< where the file goes; created 0700 when missing
  std::string backup_id;    ///< the catalog id: the file is `<id>.dump` (`<id>.dump.enc`)
  std::optional<Secret> master_key;  ///< set: the file is encrypted (docs/backups.md)
  ToolPaths tools;          ///< empty fields: FindPostgresTools
  /// How long the row counts and pg_dump may wait for a table's lock (another session's ALTER
  /// or TRUNCATE in progress) before the dump fails (`lock_timeout`, `--lock-wait-timeout`).
  std::chrono::milliseconds lock_timeout{std::chrono::seconds(30)};
  /// pg_dump's `--compress` (0-9); negative: pg_dump's default (gzip's 6). A backup someone
  /// waits for (a restore's safety backup) trades size for time with 1.
  int compress_level = -1;
  /// The whole call's time limit, from its start: past it the running tool is killed (its
  /// process group), the partial file removed, and the call fails Transient "BackupTimedOut" naming the step it was in.
  /// Zero: none.
  std::chrono::milliseconds deadline{0};
};

struct DumpResult {
  std::string path;            ///< the final file
  std::uint64_t size = 0;      ///< bytes on disk
  std::string sha256;          ///< of the file as stored (ciphertext when encrypted), lower hex
  std::chrono::milliseconds duration{0};
  std::string server_version;  ///< the server's `server_version`
  std::string tool_version;    ///< `pg_dump --version`, e.g. "pg_dump (PostgreSQL) 15.20 (...)"
  std::string key_id;          ///< BackupKeyId of the master key; empty: not encrypted
  TableRows table_rows;        ///< counted in the dump's snapshot
  std::string table_rows_json; ///< TableRowsJson(table_rows)
};

/// Dumps `database` with `pg_dump --format=custom --snapshot=<id>` in a REPEATABLE READ, READ
/// ONLY transaction whose snapshot also counted every user table's rows, through SHA-256 (and
/// the cipher) into `.<id>.partial` in the folder (0600), reads it back with `pg_restore
/// --list`, fsyncs it and renames it to its final name. Any failure removes the partial file
/// and says which step failed (connect, snapshot, count rows, pg_dump, read back, ...), with the
/// tool's stderr scrubbed and trimmed; "BackupDumpFailed" (Transient: a tool's failure may pass),
/// or the connection's own classification.
Outcome<DumpResult> Dump(const DumpRequest& request);

struct RestoreRequest {
  Secret admin_dsn;
  std::string file;               ///< the backup file
  std::string expected_sha256;    ///< from the catalog; checked before anything is touched
  std::string backup_id;          ///< needed to decrypt (the file's key depends on it)
  std::optional<Secret> master_key;  ///< set: the file is encrypted
  std::string target_database;    ///< the database restored into
  std::string role;               ///< `--role`: objects are created as it; empty: the admin
  /// How long the restore may wait for one lock (a table another session holds) before it is
  /// cancelled and fails, "BackupRestoreLockTimeout" naming the holders, instead of waiting
  /// forever. pg_restore's script sets `lock_timeout = 0` itself, so this is enforced from
  /// outside: a watch on another admin session cancels the restore's statement. Zero: no limit.
  std::chrono::milliseconds lock_timeout{std::chrono::seconds(30)};
  ToolPaths tools;
  /// The whole call's time limit, from its start: past it the running tool is killed (its
  /// process group), its single transaction rolled back, and the call fails Transient "BackupTimedOut" naming the step it was in.
  /// Zero: none.
  std::chrono::milliseconds deadline{0};
};

/// Whether `file`'s SHA-256 is `expected` (hex, case aside), read through once. Stalled
/// "BackupFileMissing" when it cannot be opened, Stalled "BackupChecksumMismatch" naming the
/// file and both digests when it differs, Transient "BackupIoFailed" when reading fails. What a
/// restore checks first (the runner too, before it takes the safety backup and suspends).
Status CheckFileSha256(const std::string& file, const std::string& expected);

/// Checks the file's SHA-256 (CheckFileSha256; a mismatch: Stalled "BackupChecksumMismatch"
/// naming the file, before any connection), then restores in two parts, so that nothing the
/// backup holds (the tenant wrote it) runs with the operator's rights:
///   - the tenant's objects: `pg_restore --clean --if-exists --no-owner --single-transaction
///     --exit-on-error --role=<role>` with the operator's entries left out of its list, run by a
///     login made for this restore (`tm_restore_<16 hex>`, LOGIN, a random password, a member of
///     `role` and nothing else; dropped afterwards), the file (or its decryption) on stdin;
///   - the operator's: the extensions in schema `extensions` created by name, and the migrations
///     ledger's rows (tenant_master.schema_migrations) replaced by the backup's as parameters, in
///     an admin transaction committed only after the tenant's restore committed.
/// A failure of the tool (or a decryption that fails mid-file) rolls both back: the database is as
/// it was. "BackupRestoreFailed" with the tool's stderr (scrubbed); "BackupRestoreLockTimeout"
/// when a lock held it past `lock_timeout`; Stalled "InvalidValue" without a role.
Status Restore(const RestoreRequest& request);

struct VerifyRequest {
  Secret admin_dsn;
  std::string file;
  std::string expected_sha256;
  std::string backup_id;
  std::optional<Secret> master_key;
  TableRows expected_rows;  ///< counted at dump time
  std::chrono::milliseconds lock_timeout{std::chrono::seconds(30)};
  ToolPaths tools;
  /// The whole call's time limit, from its start: past it the running tool is killed (its
  /// process group), the scratch database dropped, and the call fails Transient "BackupTimedOut" naming the step it was in.
  /// Zero: none.
  std::chrono::milliseconds deadline{0};
};

struct VerifyResult {
  std::string scratch_database;  ///< the database used (dropped by the time this returns)
  TableRows restored_rows;
  std::chrono::milliseconds duration{0};
};

/// Creates `tm_verify_<16 random hex>` owned by a restore login of its own, restores the file
/// into it as Restore does (the ledger's rows counted, not inserted), counts each
/// user table's rows and compares them with `expected_rows`: a difference is Stalled
/// "BackupVerifyFailed" naming each table and both counts (a table missing on either side
/// too). The scratch database is dropped `WITH (FORCE)` whatever happened; a failure to drop it
/// is reported (Transient "ScratchDropFailed") unless an earlier failure is.
Outcome<VerifyResult> VerifyByRestore(const VerifyRequest& request);

// Crash leftovers (docs/backups.md#the-engine): what a process killed mid-call leaves, removed by
// the leader at the start of its term, before its pool runs anything.

/// Removes the private folders (`tm-backup-<pid>-XXXXXX`, a 0600 password file and the tools'
/// stderr) under `temp_root` (empty: $TMPDIR, else /tmp) whose process is gone: only folders
/// owned by this user whose pid is not alive (`kill(pid, 0)` fails with ESRCH), so a running
/// call of this or another live process is never touched. Transient "BackupCleanupFailed"
/// naming a folder that could not be removed (the others still are).
Status RemoveStaleWorkFolders(const std::string& temp_root = {});

/// Removes every `.<id>.partial` file in the workspace folders directly under
/// `backups_directory` (a dump interrupted before its rename) and returns how many. Called when
/// no backup runs (a running dump's partial file would go too). Folders whose names start with a
/// dot are not workspaces' and are left alone (a move's `.moves`). A missing directory: 0. Transient
/// "BackupCleanupFailed" when the directory cannot be read or a file removed.
Outcome<int> RemoveStalePartials(const std::string& backups_directory);

/// Drops, `WITH (FORCE)`, every verification scratch database (`tm_verify_<16 hex>`) on the
/// cluster, then every restore login (`tm_restore_<16 hex>`), and returns their names: a
/// verification or restore whose process died left them. Called when no verification or restore
/// runs. A connection failure as classified by pq::Connect; Transient
/// "ScratchDropFailed" naming the databases that could not be dropped (the others still are).
Outcome<std::vector<std::string>> DropScratchDatabases(const Secret& admin_dsn);

}  // namespace tmaster::backups
