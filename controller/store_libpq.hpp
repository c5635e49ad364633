#pragma once

// The PostgreSQL adapter of controller/store.hpp.

#include <memory>

#include "common/secret.hpp"
#include "controller/store.hpp"

namespace tmaster::controller {

/// A Store on the PostgreSQL database named by `dsn` (a libpq conninfo string or URI); without a
/// dbname it uses `tenant_master`.
///
/// Database creation: when that database does not exist, the store connects to the `postgres`
/// database of the same server with the same credentials and runs `CREATE DATABASE` (the DSN's
/// role needs CREATEDB for that), then connects again. Nothing else is ever created outside the
/// store's database.
///
/// Connections are opened lazily (the first call), so construction never fails. One connection,
/// guarded by a mutex; a connection found broken is replaced once per call. Values always travel
/// as parameters. Failures are classified by SQLSTATE (Transient vs Stalled); no message contains
/// the DSN or a password.
std::unique_ptr<Store> MakeLibpqStore(Secret dsn);

}  // namespace tmaster::controller
