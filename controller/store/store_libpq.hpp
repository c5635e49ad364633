#pragma once

// The PostgreSQL adapter of controller/store/store.hpp.

#include <memory>

#include "common/secret.hpp"
#include "controller/store/store.hpp"

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
std::unique_ptr<Store> MakeLibpqStore(Secret dsn, Retention retention = {});

/// The advisory-lock key class of the leader lock (two-int form: class, 1), reserved for Tenant
/// Master ("tm" = 0x746d = 29805).
inline constexpr int kLeaderLockClass = 29805;

/// A LeaderLock on its own connection to the store database named by `dsn` (same defaulting and
/// creation rules as MakeLibpqStore). The connection has TCP keepalives set so a dead peer is
/// noticed within seconds.
std::unique_ptr<LeaderLock> MakeLibpqLeaderLock(Secret dsn);

/// The store DSN derived from a cluster DSN (the `store.dsnEnv` default,
/// README.md#config-reference): the same server and credentials with `dbname=tenant_master`. Works
/// for conninfo strings and URIs; a malformed DSN is a Stalled `InvalidConfig` failure whose
/// message does not contain the DSN.
Outcome<Secret> StoreDsnFromClusterDsn(const Secret& cluster_dsn);

}  // namespace tmaster::controller
