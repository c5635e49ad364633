#include "controller/bindings/pgbouncer_sink.hpp"

namespace tmaster::bindings {

std::vector<PoolerEntry> PoolerEntries(const std::vector<TenantFacts>& tenants) {
  std::vector<PoolerEntry> entries;
  entries.reserve(tenants.size());
  for (const TenantFacts& facts : tenants) {
    // A suspended tenant keeps its entry, pointed at no database, and loses its auth_file line.
    entries.push_back({facts.database, facts.server_address.host, facts.server_address.port,
                       facts.username, facts.suspended ? std::string() : facts.verifier,
                       facts.suspended});
  }
  return entries;
}

PgBouncerFiles::PgBouncerFiles(std::filesystem::path dir, Access access, PoolerReload reload)
    : dir_(std::move(dir)), access_(access), reload_(std::move(reload)) {}

Outcome<bool> PgBouncerFiles::Write(const std::vector<TenantFacts>& tenants) {
  const std::vector<PoolerEntry> entries = PoolerEntries(tenants);
  // Both rendered before anything is written: a tenant PgBouncer cannot carry keeps the files
  // PgBouncer has.
  Outcome<std::string> databases = RenderDatabasesIni(entries);
  if (!databases) return databases.failure();
  Outcome<std::string> users = RenderUserlist(entries);
  if (!users) return users.failure();
  Outcome<SafeDir> dir = SafeDir::Open(dir_, access_, /*create=*/true);
  if (!dir) return dir.failure();
  // The roles first: a new database entry is never there before its role can log in.
  Outcome<bool> wrote_users = dir->WriteFile("userlist.txt", *users);
  if (!wrote_users) return wrote_users.failure();
  Outcome<bool> wrote_databases = dir->WriteFile("databases.ini", *databases);
  if (!wrote_databases) return wrote_databases.failure();
  const bool wrote = *wrote_users || *wrote_databases;
  if (wrote || reload_owed_) {
    reload_owed_ = true;
    if (Status reloaded = ReloadPgBouncer(reload_); !reloaded) return reloaded.failure();
    reload_owed_ = false;
  }
  return wrote;
}

}  // namespace tmaster::bindings
