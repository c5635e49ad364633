// The Service Binding rendering (binding.hpp) and the publisher of shared tenants (publisher.hpp).

#include "controller/bindings/publisher.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <sstream>
#include <mutex>
#include <thread>

#include "tests/support/temp_dir.hpp"

namespace fs = std::filesystem;
using namespace tmaster::bindings;
using tmaster::Outcome;
using tmaster::Secret;
using tmaster::testing::TempDir;

namespace {

TenantFacts Facts(const std::string& workspace, const std::string& product = "erp") {
  TenantFacts facts;
  facts.product = product;
  facts.workspace = workspace;
  facts.cluster = "default";
  facts.runtime_address = {"db.internal", 5432};
  facts.server_address = {"127.0.0.1", 5433};
  facts.database = "tenant_" + workspace;
  facts.username = "user_" + workspace;
  facts.password = Secret("pw-" + workspace);
  facts.verifier = "SCRAM-SHA-256$4096:c2FsdA==$a:b";
  facts.hosts = {workspace + ".surgir.online"};
  return facts;
}

std::string File(const std::vector<FileEntry>& files, const std::string& key) {
  for (const auto& [name, content] : files) {
    if (name == key) return content;
  }
  FAIL("no key " << key);
  return {};
}

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

class FakePooler : public PoolerSink {
 public:
  Outcome<bool> Write(const std::vector<TenantFacts>& tenants) override {
    std::lock_guard<std::mutex> lock(mutex);
    ++writes;
    last.clear();
    suspended.clear();
    for (const auto& t : tenants) {
      last.push_back(t.workspace);
      if (t.suspended) suspended.push_back(t.workspace);
    }
    return true;
  }
  int Writes() {
    std::lock_guard<std::mutex> lock(mutex);
    return writes;
  }
  std::mutex mutex;
  int writes = 0;
  std::vector<std::string> last;
  std::vector<std::string> suspended;  ///< of last
};

}  // namespace

TEST_CASE("RenderBinding: the Service Binding keys, no trailing newline, URI percent-encoded") {
  TenantFacts facts = Facts("acme");
  facts.username = "user_o'neil";
  facts.password = Secret("p@ss:w/rd% ?#");
  facts.database = "db name";
  facts.runtime_address = {"::1", 6543};
  facts.hosts = {"acme.surgir.online", "www.acme.pe"};
  const std::vector<FileEntry> files = RenderBinding(facts, std::nullopt);
  std::vector<std::string> keys;
  for (const auto& [name, content] : files) keys.push_back(name);
  CHECK(keys == std::vector<std::string>{"type", "provider", "host", "port", "database",
                                         "username", "password", "uri", "workspace", "hosts",
                                         "state"});
  CHECK(File(files, "type") == "postgresql");
  CHECK(File(files, "provider") == "tenant-master");
  CHECK(File(files, "host") == "::1");
  CHECK(File(files, "port") == "6543");
  CHECK(File(files, "password") == "p@ss:w/rd% ?#");
  CHECK(File(files, "uri") ==
        "postgresql://user_o%27neil:p%40ss%3Aw%2Frd%25%20%3F%23@[::1]:6543/db%20name");
  CHECK(File(files, "hosts") == "acme.surgir.online\nwww.acme.pe");
  CHECK(File(files, "state") == "active");

  facts.suspended = true;
  const auto via = RenderBinding(facts, Endpoint{"127.0.0.1", 6432});
  CHECK(File(via, "host") == "127.0.0.1");
  CHECK(File(via, "port") == "6432");
  CHECK(File(via, "uri").find("@127.0.0.1:6432/db%20name") != std::string::npos);
  CHECK(File(via, "state") == "suspended");
}

TEST_CASE("SharedTenants writes a binding once, again only when it changed") {
  TempDir tmp;
  FakePooler pooler;
  SharedTenants tenants({.bindings_dir = tmp.path() / "bindings", .pooler = &pooler});
  const std::uint64_t v0 = tenants.Tenants("erp").resource_version;

  auto first = tenants.Publish(Facts("acme"));
  REQUIRE(first.ok());
  CHECK(*first);
  const fs::path folder = tmp.path() / "bindings" / "erp" / "acme";
  CHECK(ReadAll(folder / "password") == "pw-acme");
  const std::uint64_t v1 = tenants.Tenants("erp").resource_version;
  CHECK(v1 != v0);

  auto again = tenants.Publish(Facts("acme"));
  REQUIRE(again.ok());
  CHECK_FALSE(*again);
  CHECK(tenants.Tenants("erp").resource_version == v1);
  CHECK(tenants.counters().bindings_written == 1);

  // A password rotation: folder rewritten, version moved, the pooler due for a flush.
  REQUIRE(tenants.FlushPooler().ok());
  CHECK(pooler.writes == 1);
  TenantFacts rotated = Facts("acme");
  rotated.password = Secret("pw-2");
  rotated.verifier = "SCRAM-SHA-256$4096:c2FsdA==$c:d";
  CHECK(*tenants.Publish(rotated));
  CHECK(ReadAll(folder / "password") == "pw-2");
  CHECK(tenants.Tenants("erp").resource_version != v1);
  REQUIRE(tenants.FlushPooler().ok());
  CHECK(pooler.writes == 2);
  REQUIRE(tenants.FlushPooler().ok());
  CHECK(pooler.writes == 2);  // nothing changed since

  // Only the hosts changed: the binding and the version move, the pooler does not.
  TenantFacts renamed = rotated;
  renamed.hosts = {"acme2.surgir.online"};
  CHECK(*tenants.Publish(renamed));
  REQUIRE(tenants.FlushPooler().ok());
  CHECK(pooler.writes == 2);
  CHECK(ReadAll(folder / "hosts") == "acme2.surgir.online");

  // Deleted by hand: the next publish puts it back (the folder's stamp no longer matches).
  fs::remove_all(folder);
  CHECK(*tenants.Publish(renamed));
  CHECK(fs::exists(folder / "uri"));
  fs::remove_all(tmp.path() / "bindings" / "erp");
  CHECK(*tenants.Publish(renamed));
  CHECK(fs::exists(folder / "uri"));
}

TEST_CASE("SharedTenants: remove, sweep, and a publisher that did not write the folder") {
  TempDir tmp;
  {
    SharedTenants tenants({.bindings_dir = tmp.path() / "b"});
    REQUIRE(tenants.Publish(Facts("acme")).ok());
    REQUIRE(tenants.Publish(Facts("bodega", "inventory")).ok());
    REQUIRE(tenants.Publish(Facts("surgir")).ok());
  }
  SharedTenants restarted({.bindings_dir = tmp.path() / "b"});
  // Unchanged on disk: the first publish of this process reads and compares, writes nothing.
  CHECK_FALSE(*restarted.Publish(Facts("acme")));
  auto removed = restarted.Remove("bodega");  // never published here: found under its product
  REQUIRE(removed.ok());
  CHECK(*removed);
  CHECK_FALSE(fs::exists(tmp.path() / "b" / "inventory" / "bodega"));
  auto swept = restarted.Sweep({"acme"});
  REQUIRE(swept.ok());
  CHECK(*swept == std::vector<std::string>{"surgir"});
  CHECK(fs::exists(tmp.path() / "b" / "erp" / "acme"));
  CHECK_FALSE(fs::exists(tmp.path() / "b" / "erp" / "surgir"));
  CHECK(restarted.Tenants("erp").items.size() == 1);
}

TEST_CASE("SharedTenants::WaitForChange wakes on a change of its product only") {
  SharedTenants tenants({});
  REQUIRE(tenants.Publish(Facts("acme")).ok());
  const TenantsView view = tenants.Tenants("erp");
  REQUIRE(view.items.size() == 1);
  CHECK(view.items[0].database == "tenant_acme");
  const auto soon = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
  CHECK_FALSE(tenants.WaitForChange("erp", view.resource_version, soon));

  std::thread other([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    (void)tenants.Publish(Facts("bodega", "inventory"));  // another product: no wake-up
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    (void)tenants.Publish(Facts("surgir"));
  });
  const auto start = std::chrono::steady_clock::now();
  CHECK(tenants.WaitForChange("erp", view.resource_version, start + std::chrono::seconds(5)));
  CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(50));
  other.join();
  CHECK(tenants.Tenants("erp").items.size() == 2);
  // A version the publisher never gave (from before a restart) is answered at once.
  CHECK(tenants.WaitForChange("erp", 1, std::chrono::steady_clock::now() + std::chrono::seconds(5)));
}

TEST_CASE("SharedTenants::Reset forgets the tenants of a past term, and the files stay") {
  TempDir tmp;
  SharedTenants tenants({.bindings_dir = tmp.path() / "b"});
  REQUIRE(tenants.Publish(Facts("acme")).ok());
  const std::uint64_t before = tenants.Tenants("erp").resource_version;
  tenants.Reset();
  CHECK(tenants.Tenants("erp").items.empty());
  CHECK(tenants.Tenants("erp").resource_version != before);
  CHECK(fs::exists(tmp.path() / "b" / "erp" / "acme" / "uri"));
  CHECK_FALSE(*tenants.Publish(Facts("acme")));  // read and compared: nothing to write
  CHECK(tenants.Tenants("erp").items.size() == 1);
}

TEST_CASE("SharedTenants' flusher writes a change at once, then at most once per interval") {
  FakePooler pooler;
  SharedTenants tenants({.pooler = &pooler});
  tenants.StartFlusher(std::chrono::milliseconds(1500));
  const auto start = std::chrono::steady_clock::now();
  REQUIRE(tenants.Publish(Facts("acme")).ok());
  while (pooler.Writes() == 0 && std::chrono::steady_clock::now() - start < std::chrono::seconds(5)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(pooler.Writes() == 1);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(1000));  // not the interval
  // A burst right after: held until the interval has passed, then written together.
  REQUIRE(tenants.Publish(Facts("bodega")).ok());
  REQUIRE(tenants.Publish(Facts("surgir")).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(pooler.Writes() == 1);
  while (pooler.Writes() == 1 && std::chrono::steady_clock::now() - start < std::chrono::seconds(6)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  CHECK(pooler.Writes() == 2);
  std::lock_guard<std::mutex> lock(pooler.mutex);
  CHECK(pooler.last == std::vector<std::string>{"acme", "bodega", "surgir"});
}

TEST_CASE("SharedTenants with a pooler hold: a term writes PgBouncer's files only once its tenants are in") {
  FakePooler pooler;
  SharedTenants tenants({.pooler = &pooler, .pooler_hold = std::chrono::hours(1)});
  auto last = [&pooler] {
    std::lock_guard<std::mutex> lock(pooler.mutex);
    return pooler.last;
  };
  // No term yet (a standby): nothing is written, not even an empty file.
  REQUIRE(tenants.Publish(Facts("acme")).ok());
  REQUIRE(tenants.FlushPooler().ok());
  CHECK(pooler.Writes() == 0);

  // A term begins (a restart or a new leader): the tenants reconciled so far are not the fleet.
  tenants.Reset();
  REQUIRE(tenants.Publish(Facts("acme")).ok());
  REQUIRE(tenants.FlushPooler().ok());
  CHECK(pooler.Writes() == 0);  // the sources are not read yet
  tenants.ExpectTenants({"acme", "bodega", "surgir"});
  REQUIRE(tenants.FlushPooler().ok());
  CHECK(pooler.Writes() == 0);  // bodega and surgir would be dropped from PgBouncer
  REQUIRE(tenants.Publish(Facts("bodega")).ok());
  REQUIRE(tenants.Remove("surgir").ok());  // removed in this term: its entry may go
  REQUIRE(tenants.FlushPooler().ok());
  CHECK(pooler.Writes() == 1);
  CHECK(last() == std::vector<std::string>{"acme", "bodega"});

  // Open for the rest of the term: a change goes out at the next flush.
  REQUIRE(tenants.Remove("bodega").ok());
  REQUIRE(tenants.FlushPooler().ok());
  CHECK(pooler.Writes() == 2);
  CHECK(last() == std::vector<std::string>{"acme", "bodega"});  // bodega kept, suspended

  // The next term waits again.
  tenants.Reset();
  REQUIRE(tenants.FlushPooler().ok());
  CHECK(pooler.Writes() == 2);
  tenants.ExpectTenants({"acme"});
  REQUIRE(tenants.FlushPooler().ok());
  CHECK(pooler.Writes() == 2);
  REQUIRE(tenants.Publish(Facts("acme")).ok());
  REQUIRE(tenants.FlushPooler().ok());
  CHECK(pooler.Writes() == 3);
}

TEST_CASE("SharedTenants with a pooler hold: a tenant that never comes in delays the files only as long as the hold") {
  FakePooler pooler;
  SharedTenants tenants({.pooler = &pooler, .pooler_hold = std::chrono::milliseconds(200)});
  tenants.Reset();
  const auto began = std::chrono::steady_clock::now();
  REQUIRE(tenants.Publish(Facts("acme")).ok());
  tenants.ExpectTenants({"acme", "broken"});  // broken's cluster is down: never published
  REQUIRE(tenants.FlushPooler().ok());
  CHECK(pooler.Writes() == 0);
  while (pooler.Writes() == 0 && std::chrono::steady_clock::now() - began < std::chrono::seconds(5)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    REQUIRE(tenants.FlushPooler().ok());
  }
  CHECK(pooler.Writes() == 1);
  CHECK(std::chrono::steady_clock::now() - began >= std::chrono::milliseconds(200));
  std::lock_guard<std::mutex> lock(pooler.mutex);
  CHECK(pooler.last == std::vector<std::string>{"acme"});
}

TEST_CASE("SharedTenants: a removed tenant's pooler entry stays, suspended, for a while, then goes") {
  FakePooler pooler;
  SharedTenants tenants({.pooler = &pooler, .pooler_retire_after = std::chrono::milliseconds(300)});
  auto written = [&pooler] {
    std::lock_guard<std::mutex> lock(pooler.mutex);
    return std::pair{pooler.last, pooler.suspended};
  };
  using Names = std::vector<std::string>;
  REQUIRE(tenants.Publish(Facts("acme")).ok());
  REQUIRE(tenants.Publish(Facts("bodega")).ok());
  REQUIRE(tenants.Publish(Facts("surgir")).ok());
  REQUIRE(tenants.FlushPooler().ok());
  CHECK(written() == std::pair{Names{"acme", "bodega", "surgir"}, Names{}});

  // Removed, and swept: PgBouncer keeps the entries (suspended), so no reload drops a database
  // a runtime may be logging in to.
  const auto removed_at = std::chrono::steady_clock::now();
  REQUIRE(tenants.Remove("bodega").ok());
  REQUIRE(tenants.Sweep({"acme", "bodega"}).ok());  // surgir is no longer declared
  REQUIRE(tenants.FlushPooler().ok());
  CHECK(written() == std::pair{Names{"acme", "bodega", "surgir"}, Names{"bodega", "surgir"}});
  CHECK(tenants.Tenants("erp").items.size() == 1);  // the runtime API lists acme only
  const int writes = pooler.Writes();
  REQUIRE(tenants.FlushPooler().ok());
  CHECK(pooler.Writes() == writes);  // nothing changed

  // After pooler_retire_after, a flush drops them.
  while (pooler.Writes() == writes &&
         std::chrono::steady_clock::now() - removed_at < std::chrono::seconds(5)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    REQUIRE(tenants.FlushPooler().ok());
  }
  CHECK(std::chrono::steady_clock::now() - removed_at >= std::chrono::milliseconds(300));
  CHECK(written() == std::pair{Names{"acme"}, Names{}});

  // A database served again (here by another workspace) is live at once, never twice.
  REQUIRE(tenants.Remove("acme").ok());
  REQUIRE(tenants.FlushPooler().ok());
  CHECK(written() == std::pair{Names{"acme"}, Names{"acme"}});
  TenantFacts renamed = Facts("acme-2");
  renamed.database = "tenant_acme";
  REQUIRE(tenants.Publish(renamed).ok());
  REQUIRE(tenants.FlushPooler().ok());
  CHECK(written() == std::pair{Names{"acme-2"}, Names{}});
}
