#pragma once

// The one DSN parser of the libpq code: what a connection string says, through libpq's own
// parser, so conninfo strings and URIs read the same everywhere.

#include <optional>
#include <string>
#include <string_view>

#include "common/secret.hpp"

namespace tmaster::pq {

/// The parts of a DSN that the adapters use. Only host, port, dbname and user may appear in a
/// message; the password is kept to scrub it from messages.
struct DsnParts {
  std::string host;    ///< `host`, else `hostaddr`; empty: libpq's default (a local socket)
  std::string port;    ///< as written (`5432`, or a list `5432,5433`); empty: libpq's default
  std::string user;    ///< empty: libpq's default (the OS user)
  std::string dbname;  ///< empty when the DSN names no database
  Secret password;     ///< empty when the DSN carries none
  std::string options; ///< libpq `options` (command-line options for the server); empty: none
};

/// `dsn` (a libpq conninfo string or `postgresql://` URI) taken apart. Only what the DSN itself
/// says: libpq's environment defaults are not filled in. nullopt when libpq cannot parse it; its
/// error text is dropped, since it can quote the DSN, password included.
std::optional<DsnParts> ParseDsn(const Secret& dsn);

/// `dsn` rewritten as `keyword='value'` pairs, one for each option it sets (backslash and single
/// quote escaped), with `keyword` set to `value` as the last pair whether or not `dsn` set it.
/// nullopt when libpq cannot parse `dsn`.
std::optional<Secret> DsnWith(const Secret& dsn, std::string_view keyword, std::string_view value);

}  // namespace tmaster::pq
