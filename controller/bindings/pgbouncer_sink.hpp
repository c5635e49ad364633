#pragma once

// PgBouncer as the publisher's pooler (docs/bindings.md#pgbouncer): `databases.ini` and
// `userlist.txt` in `pooler.pgbouncer.dir`, rendered by pgbouncer.hpp, written through SafeDir
// (whole files, never through a link, only when they changed) and PgBouncer reloaded when one
// did. A reload that fails is tried again at the next write even when the files no longer change.

#include <filesystem>
#include <optional>

#include "controller/bindings/pgbouncer.hpp"
#include "controller/bindings/publisher.hpp"
#include "controller/bindings/safe_dir.hpp"

namespace tmaster::bindings {

class PgBouncerFiles final : public PoolerSink {
 public:
  PgBouncerFiles(std::filesystem::path dir, Access access, PoolerReload reload);

  /// See PoolerSink. A suspended tenant keeps its `[databases]` entry, pointed at a database
  /// that does not exist, and has no auth_file line: PgBouncer refuses its login itself and
  /// closes a server connection of its still in the pool, and no reload drops a database its
  /// runtime may be logging in to (RenderDatabasesIni says why that matters).
  Outcome<bool> Write(const std::vector<TenantFacts>& tenants) override;

 private:
  std::filesystem::path dir_;
  Access access_;
  PoolerReload reload_;
  bool reload_owed_ = false;
};

/// The pooler's view of the tenants: one entry per tenant database, at its cluster as the
/// operator reaches it; a suspended tenant's entry is marked suspended, without its verifier.
std::vector<PoolerEntry> PoolerEntries(const std::vector<TenantFacts>& tenants);

}  // namespace tmaster::bindings
