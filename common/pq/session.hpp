#pragma once

// The one connection helper of the libpq code: opening a session from a DSN, sending a statement
// with parameters, and turning what libpq reports into a classified Failure with no secret in
// its message. Include it only from targets that link tm_pq (it includes libpq-fe.h).

#include <libpq-fe.h>

#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/outcome.hpp"
#include "common/pq_handles.hpp"
#include "common/scrub.hpp"
#include "common/secret.hpp"

namespace tmaster::pq {

/// A connection keyword and its value; both must outlive the Connect call.
struct ConnectParam {
  const char* keyword;
  const char* value;
};

/// The server settings every operator session starts with, as a libpq `options` value:
/// `-c statement_timeout=<ms> -c lock_timeout=<ms>`, then `-c search_path=<search_path>` when one
/// is given (no spaces in it). Set at connection time, these win over `ALTER ROLE|DATABASE ...
/// SET` (a client's settings outrank the role's and the database's), so the owner of a database
/// cannot change them for the operator's sessions in it. A zero duration is PostgreSQL's "no
/// timeout".
std::string SessionOptions(std::chrono::milliseconds statement_timeout,
                           std::chrono::milliseconds lock_timeout,
                           std::string_view search_path = {});

/// A session on database `dbname` of the server `dsn` names (a conninfo string or URI), with
/// `params` applied after the DSN's own settings (libpq: a later keyword wins, so `params`
/// override the DSN), except `options`: a DSN's own `options` are kept, ours appended after them
/// (the server applies `-c` settings in order, so ours win). The server's NOTICEs are dropped
/// instead of printed to stderr.
///
/// Failures, each with the message "could not connect to <where>: <libpq's message, scrubbed,
/// on one line>":
/// - Stalled "AuthenticationFailed": the server refused the login (wrong password, no
///   pg_hba.conf entry, a role that does not exist or may not log in);
/// - Stalled "DatabaseMissing": `dbname` does not exist on that server;
/// - Transient "ConnectionFailed": anything else (unreachable, timed out, shutting down, too many
///   connections, out of memory).
/// A caller that judges a case otherwise (a tenant role's refused login is repaired by the next
/// pass) changes the kind; the reason stays.
Outcome<ConnPtr> Connect(const Secret& dsn, const std::string& dbname,
                         std::span<const ConnectParam> params, const Scrubber& scrub,
                         std::string_view where);

/// The failure of a statement that did not succeed on `conn` (`result` may be null): classified
/// by its SQLSTATE and constraint (Classify), with the message "<SEVERITY>: <primary message>
/// (SQLSTATE <code><suffix>)". Without a server error (the connection broke, libpq failed)
/// the message is libpq's own and the failure Transient "ConnectionFailed". Scrubbed, one line.
/// `redact_quoted`: the primary message's double-quoted fragments become `"…"` (RedactQuoted in
/// sqlstate.hpp), for a statement whose text must not be echoed (a migration file).
Failure ResultFailure(PGconn* conn, const PGresult* result, const Scrubber& scrub,
                      std::string_view suffix = {}, bool redact_quoted = false);

/// `result` when its statement succeeded (a command, or rows), else its ResultFailure.
Outcome<ResultPtr> Check(PGconn* conn, ResultPtr result, const Scrubber& scrub);

/// Sends one statement, `sql`, with `params` as text parameters (nullopt sends NULL), and Checks
/// its result. Values never enter the SQL text.
Outcome<ResultPtr> ExecParams(PGconn* conn, std::string_view sql,
                              const std::vector<std::optional<std::string>>& params,
                              const Scrubber& scrub);
Outcome<ResultPtr> ExecParams(PGconn* conn, std::string_view sql,
                              const std::vector<std::string>& params, const Scrubber& scrub);

}  // namespace tmaster::pq
