#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/secret.hpp"
#include "manifests/types.hpp"
#include "reconcilers/migrations/migrations.hpp"
#include "reconcilers/postgres/model.hpp"

namespace tmaster::postgres {

/// `base64url(HMAC-SHA256(masterKey, "postgres/<cluster>/<role>/<rotation>"))`
/// (docs/architecture.md#postgresql-what-converged-means).
Secret DerivePassword(const Secret& master_key, const std::string& cluster,
                      const std::string& role, int rotation);

/// The salt of the role's SCRAM verifier: the first 16 bytes of HMAC-SHA256(masterKey,
/// "postgres-scram-salt/<cluster>/<role>/<rotation>"). A derived salt makes the verifier the
/// operator sends reproducible, so PgBouncer's auth_file can carry the very verifier the server
/// stores even when the operator cannot read pg_authid (docs/bindings.md#pgbouncer); it is still
/// unique per role and rotation and unknown without the master key.
std::string DeriveScramSalt(const Secret& master_key, const std::string& cluster,
                            const std::string& role, int rotation);

/// The SCRAM-SHA-256 iteration count of the verifiers the operator makes (PostgreSQL's default).
inline constexpr int kScramIterations = 4096;

/// The key that signs database markers: HMAC-SHA256(masterKey, "tenant-master/marker/v1"). A
/// key of its own, so a marker's signature says nothing about any password.
Secret MarkerKey(const Secret& master_key);

/// True when `verifier` (`SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`, as kept in
/// pg_authid) was made from `password`: recomputes StoredKey and ServerKey with the stored salt
/// and iteration count. False for any other format (md5, plain, malformed).
bool ScramVerifierMatches(std::string_view verifier, const Secret& password);

/// Pure: the SCRAM-SHA-256 verifier PostgreSQL would store for `password` with this raw `salt`
/// and iteration count (`SCRAM-SHA-256$<iter>:<base64 salt>$<StoredKey>:<ServerKey>`, RFC 5802
/// / 7677). The fake gateway and the tests build verifiers with it; the libpq adapter uses
/// PQencryptPasswordConn instead.
std::string MakeScramVerifier(const Secret& password, std::string_view salt, int iterations);

/// The desired state of one workspace's database. `product_migrations` are the product's loaded
/// migrations (the caller loads each product's directory once). `adopt_policy` is the caller's
/// for the workspace's cluster (its `adoptPattern`, the store database's name).
DesiredTenant BuildDesired(const manifests::Workspace& workspace,
                           const manifests::Product& product,
                           const std::vector<migrations::Migration>& product_migrations,
                           const Secret& master_key, AdoptPolicy adopt_policy = {});

/// What removing `workspace` reclaims: its cluster, database and role names and its
/// `spec.database.reclaimPolicy`. Give it the last stored spec of the removed workspace.
ReclaimTarget BuildReclaimTarget(const manifests::Workspace& workspace);

}  // namespace tmaster::postgres
