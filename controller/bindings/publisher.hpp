#pragma once

// The publisher of shared tenants (docs/bindings.md): every shared workspace whose database
// converged is published here by its reconcile, and from here reaches
//   - its Service Binding folder `<bindings.dir>/<product>/<workspace>/` (written at once, and
//     only when something in it changed: a pass with nothing changed writes nothing);
//   - PgBouncer's files, through a PoolerSink (written by FlushPooler, at most one write for many
//     changes; the daemon flushes a few times a second, `--once` at the end of its pass);
//   - the runtime API (`GET /api/v1/runtimes/{product}/tenants`): Tenants and WaitForChange, with
//     a resourceVersion per product that changes whenever one of its tenants does.
// Thread-safe: workers publish different workspaces at once (the queue never gives one name to
// two workers).

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/outcome.hpp"
#include "controller/bindings/binding.hpp"
#include "controller/bindings/safe_dir.hpp"

namespace tmaster::bindings {

/// Keeps a pooler's configuration equal to the tenants it is given.
class PoolerSink {
 public:
  virtual ~PoolerSink() = default;
  /// Makes the pooler's files describe exactly `tenants` (published ones in workspace order,
  /// then removed ones still kept as suspended, one per database) and reloads the pooler when a
  /// file changed; true when it wrote.
  virtual Outcome<bool> Write(const std::vector<TenantFacts>& tenants) = 0;
};

struct PublisherOptions {
  /// `bindings.dir`; nullopt: no folders are written (the runtime API and the pooler still are).
  std::optional<std::filesystem::path> bindings_dir = std::nullopt;
  Access bindings_access = {};
  /// nullptr: no pooler. The caller owns it and keeps it alive as long as the publisher.
  PoolerSink* pooler = nullptr;
  /// `pooler.pgbouncer.listen`: bindings and the runtime API point here instead of the cluster.
  std::optional<Endpoint> pooler_listen = std::nullopt;
  /// Set (the daemon): the pooler's files are written only within a term (after Reset), and in
  /// each term only once every tenant given to ExpectTenants was published or removed in it, or
  /// this long after Reset: a restart or a new leader never writes the pooler's files from the
  /// few tenants it has reconciled so far, which would drop every other tenant's database from
  /// PgBouncer (docs/bindings.md#pgbouncer). nullopt: every flush writes (`--once`, whose one
  /// flush follows its whole pass).
  std::optional<std::chrono::milliseconds> pooler_hold = std::nullopt;
  /// How long a removed tenant's pooler entry stays, as a suspended one (pointed at no database,
  /// its role out of the auth_file), before a flush drops it: PgBouncer 1.18 may crash when a
  /// reload drops a database a client is logging in to (RenderDatabasesIni), and a runtime stops
  /// trying a removed tenant well within this. Kept in memory only: a restart drops them.
  std::chrono::milliseconds pooler_retire_after = std::chrono::minutes(10);
};

/// One product's shared tenants as the runtime API shows them.
struct TenantsView {
  std::uint64_t resource_version = 0;
  std::vector<TenantFacts> items;  ///< sorted by workspace
};

/// What the publisher wrote since it was made (for tests, the benchmark and the logs).
struct PublisherCounters {
  std::uint64_t bindings_written = 0;  ///< folders created or replaced
  std::uint64_t bindings_removed = 0;
  std::uint64_t pooler_writes = 0;     ///< flushes that changed a pooler file
};

class SharedTenants {
 public:
  explicit SharedTenants(PublisherOptions options);
  ~SharedTenants();
  SharedTenants(const SharedTenants&) = delete;
  SharedTenants& operator=(const SharedTenants&) = delete;

  /// Publishes one shared tenant: its binding folder made equal to `facts` (true when written),
  /// the pooler marked for a flush and the product's resourceVersion moved when anything the
  /// runtime sees changed. A failure (Transient `BindingsFailed`, naming the path) leaves the
  /// tenant's previous publication as it was, on disk and here.
  Outcome<bool> Publish(const TenantFacts& facts);

  /// The workspace is no longer a shared tenant (removed, or now dedicated): its binding folder
  /// removed (found through a listing of every product's folder made once per term, so a
  /// workspace without one costs no I/O), its pooler entry suspended at the next flush and
  /// dropped `pooler_retire_after` later. True when something was removed.
  Outcome<bool> Remove(const std::string& workspace);

  /// Removes the binding folders of workspaces not in `declared` (by workspace name, any
  /// product). Call only when every source was read and every document was valid. Returns the
  /// workspaces removed.
  Outcome<std::vector<std::string>> Sweep(const std::set<std::string>& declared);

  /// The shared tenants the declared fleet holds, by workspace: what this term must have
  /// published or removed before the pooler's files are written (with `pooler_hold`; the daemon
  /// gives them once per term, after every source was read cleanly). Ignored without a hold.
  void ExpectTenants(std::set<std::string> workspaces);

  /// Writes the pooler's files when a tenant changed since the last successful flush. Done when
  /// there is no pooler, nothing to do, or the term's tenants are not all in yet (`pooler_hold`;
  /// the change stays due).
  Status FlushPooler();
  /// Flushes on a thread of its own until the publisher is destroyed: at once when a tenant
  /// changes what the pooler sees, then at most once per `interval` (a burst goes out together);
  /// failures are logged and retried every `interval`.
  void StartFlusher(std::chrono::milliseconds interval);

  /// The product's tenants published by this process.
  [[nodiscard]] TenantsView Tenants(const std::string& product) const;
  /// Waits until the product's resourceVersion differs from `seen`, or `deadline`, or Close.
  /// True when it differs.
  bool WaitForChange(const std::string& product, std::uint64_t seen,
                     std::chrono::steady_clock::time_point deadline) const;
  /// Wakes every waiter for good (shutdown).
  void Close();

  /// The address bindings point at for `facts` (the pooler's while it is on).
  [[nodiscard]] const Endpoint& AddressOf(const TenantFacts& facts) const;
  [[nodiscard]] PublisherCounters counters() const;
  /// A new leadership term: forgets every tenant (the runtime API lists none until each is
  /// published again by this term's reconciles; each product's version moves) and what was
  /// written (the next publish of each tenant reads its folder again). A replica that led before
  /// would otherwise keep listing a tenant another leader removed meanwhile. With `pooler_hold`
  /// the pooler's files then wait for this term's tenants (ExpectTenants).
  void Reset();

 private:
  struct Published {
    TenantFacts facts;
    std::optional<DirStamp> stamp;  ///< its folder as last written or checked
  };
  Outcome<SafeDir*> ProductDir(const std::string& product);
  void KickFlusher();  // wakes the flusher thread, when there is one
  /// The product whose folder holds `workspace`'s binding, from on_disk_ (listed once per term,
  /// then kept by Publish, Remove and Sweep): nullopt when there is none.
  Outcome<std::optional<std::string>> FolderOf(const std::string& workspace);
  void Bump(const std::string& product);  // mutex_ held
  void Seen(const std::string& workspace);  // mutex_ held
  void Retire(const TenantFacts& facts);     // mutex_ held: its pooler entry suspended a while
  bool PoolerGateOpen();                    // mutex_ held; opens it when the term is in

  PublisherOptions options_;
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  bool closed_ = false;
  std::map<std::string, Published> tenants_;  ///< by workspace
  std::map<std::string, std::uint64_t> versions_;  ///< by product
  /// Binding folders on disk, workspace -> product: listed at the first Remove of a term, so
  /// withdrawing a workspace that has none (every dedicated one, every pass) costs no I/O.
  std::optional<std::map<std::string, std::string>> on_disk_;
  std::uint64_t initial_version_ = 0;
  std::uint64_t next_version_ = 0;
  bool pooler_dirty_ = true;
  /// With `pooler_hold`: shut until this term's tenants are in (see PublisherOptions).
  bool pooler_gated_ = false;
  std::optional<std::chrono::steady_clock::time_point> term_began_;  ///< the last Reset
  std::optional<std::set<std::string>> expected_;  ///< ExpectTenants of this term
  std::set<std::string> seen_;  ///< published or removed in this term, while gated
  struct Retired {
    TenantFacts facts;  ///< suspended, without password or verifier
    std::chrono::steady_clock::time_point until;
  };
  std::map<std::string, Retired> retired_;  ///< removed tenants' pooler entries, by database
  PublisherCounters counters_;
  std::mutex dirs_mutex_;  ///< guards root_ and products_ (opened lazily)
  std::optional<SafeDir> root_;
  std::map<std::string, std::unique_ptr<SafeDir>> products_;
  std::mutex flush_mutex_;
  struct Flusher;
  std::unique_ptr<Flusher> flusher_;
};

/// Equal for everything a runtime or the pooler sees (the password compared in full).
bool SameFacts(const TenantFacts& a, const TenantFacts& b);

}  // namespace tmaster::bindings
