#pragma once

// The one SQLSTATE classifier of the libpq adapters (the PostgreSQL reconciler and the store).
// Pure: no libpq here.

#include <string>
#include <string_view>

#include "common/outcome.hpp"

namespace tmaster::pq {

/// The failure a server error means, by its SQLSTATE (`sqlstate`; empty when libpq failed
/// without a server error) and, for unique violations, the violated `constraint`. The message is
/// kept as given. Full codes are tried before classes; the first rule that matches wins:
///
/// - Transient, retried with backoff: `55P03` LockTimeout (lock_timeout passed, or a NOWAIT
///   lock was taken); `57014` StatementTimeout (statement_timeout passed; a cancel request
///   raises it too, which the adapters that send one tell apart); `42710 42P04 42704 3D000`
///   ConcurrentChange (an object created or dropped by someone else between observation and
///   action: the next pass re-plans); `23505` on the catalog's name indexes
///   (`pg_database_datname_index`, `pg_authid_rolname_index`) ConcurrentChange too (a create that
///   raced another session's create of the same name); classes `08` ConnectionFailed, `57`
///   PostgresUnavailable, `53` InsufficientResources, `40` TransactionRollback, `58` SystemError,
///   `XX` InternalError; no SQLSTATE at all ConnectionFailed (the connection broke or libpq ran
///   out of memory).
/// - Stalled, a human must act: `42501` InsufficientPrivilege, `42601` SyntaxError; classes `28`
///   AuthenticationFailed, `42` SqlError, `22` DataException, `23` IntegrityConstraintViolation,
///   `2B` DependentObjectsStillExist, `0A` FeatureNotSupported, `25` InvalidTransactionState,
///   `3F` InvalidSchemaName, `P0` PlpgsqlError; any other SQLSTATE SqlError.
Failure Classify(std::string_view sqlstate, std::string message, std::string_view constraint = {});

/// PostgreSQL's condition name of `sqlstate` (`42601` -> `syntax_error`) for the codes a
/// statement commonly meets; empty for any other.
std::string_view ConditionName(std::string_view sqlstate);

/// `text` with every double-quoted fragment replaced by `"…"`, and an unclosed one by `"…` to
/// the end: the server quotes the text of the statement it failed on that way
/// (`syntax error at or near "…"`, `relation "…" does not exist`), and a statement read from a
/// file must not echo the file.
std::string RedactQuoted(std::string_view text);

}  // namespace tmaster::pq
