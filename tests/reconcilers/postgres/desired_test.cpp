// BuildDesired: names, password, extension union, and what the state digest depends on.

#include "reconcilers/postgres/desired.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "common/crypto.hpp"
#include "manifests/types.hpp"

namespace tmaster::postgres {
namespace {

migrations::Migration Mig(const std::string& file, const std::string& sql) {
  return {file.substr(0, 4), file, crypto::Sha256Hex(sql),
          std::make_shared<const std::string>(sql)};
}

// A workspace as the manifests loader hands it over: defaults already applied.
manifests::Workspace Acme() {
  manifests::Workspace w;
  w.name = "acme";
  w.product = "erp";
  w.subdomain = "acme";
  w.database.cluster = "default";
  w.database.name = "tenant_acme";
  w.database.owner = "user_acme";
  w.database.connection_limit = 20;
  w.database.extensions = {"unaccent", "hstore"};
  return w;
}

manifests::Product Erp() {
  manifests::Product p;
  p.name = "erp";
  p.image = "ghcr.io/acme/erp";
  p.default_version = "2.3.1";
  p.extensions = {"pg_trgm", "unaccent"};
  return p;
}

std::vector<migrations::Migration> ErpMigrations() {
  return {Mig("0001_init.sql", "create table a();"), Mig("0002_orders.sql", "create table o();")};
}

const Secret kMasterKey("desired-test-master-key");

DesiredTenant Build(const manifests::Workspace& w = Acme(), const manifests::Product& p = Erp(),
                    const std::vector<migrations::Migration>& m = ErpMigrations()) {
  return BuildDesired(w, p, m, kMasterKey);
}

TEST_CASE("BuildDesired: names, limits and flags come from the workspace") {
  const DesiredTenant d = Build();
  CHECK(d.workspace == "acme");
  CHECK(d.cluster == "default");
  CHECK(d.database == "tenant_acme");
  CHECK(d.role == "user_acme");
  CHECK(d.connection_limit == 20);
  CHECK_FALSE(d.suspend);
  CHECK_FALSE(d.adopt);
  REQUIRE(d.migrations.size() == 2);
  CHECK(d.migrations[0].file == "0001_init.sql");
  CHECK(d.migrations[1].file == "0002_orders.sql");

  manifests::Workspace w = Acme();
  w.suspend = true;
  w.database.adopt = true;
  w.database.cluster = "eu-west";
  const DesiredTenant s = Build(w);
  CHECK(s.suspend);
  CHECK(s.adopt);
  CHECK(s.cluster == "eu-west");
}

TEST_CASE("BuildDesired: the password is derived from cluster, owner and rotation") {
  CHECK(Build().password == DerivePassword(kMasterKey, "default", "user_acme", 0));
  manifests::Workspace w = Acme();
  w.database.password_rotation = 3;
  CHECK(Build(w).password == DerivePassword(kMasterKey, "default", "user_acme", 3));
  CHECK(Build(w).password != Build().password);
  w = Acme();
  w.database.owner = "app_acme";
  CHECK(Build(w).password == DerivePassword(kMasterKey, "default", "app_acme", 0));
}

TEST_CASE("BuildDesired: extensions are the product's and the spec's, sorted, once each") {
  CHECK(Build().extensions == std::vector<std::string>{"hstore", "pg_trgm", "unaccent"});
  manifests::Workspace w = Acme();
  w.database.extensions.clear();
  manifests::Product p = Erp();
  p.extensions.clear();
  CHECK(Build(w, p).extensions.empty());
}

TEST_CASE("BuildDesired: the state digest follows the in-database facts only") {
  const std::string base = Build().state_digest;
  CHECK(base.size() == 16);
  CHECK(base.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(Build().state_digest == base);

  SUBCASE("changes when a migration is added") {
    auto m = ErpMigrations();
    m.push_back(Mig("0003_invoices.sql", "create table i();"));
    CHECK(Build(Acme(), Erp(), m).state_digest != base);
  }
  SUBCASE("changes when a migration file changes") {
    auto m = ErpMigrations();
    m[1] = Mig("0002_orders.sql", "create table o(id int);");
    CHECK(Build(Acme(), Erp(), m).state_digest != base);
  }
  SUBCASE("changes when an extension is added, by the product or the spec") {
    manifests::Product p = Erp();
    p.extensions.push_back("citext");
    CHECK(Build(Acme(), p).state_digest != base);
    manifests::Workspace w = Acme();
    w.database.extensions.push_back("citext");
    CHECK(Build(w).state_digest != base);
    CHECK(Build(w).state_digest == Build(Acme(), p).state_digest);
  }
  SUBCASE("changes when an extension is replaced by another") {
    manifests::Workspace w = Acme();
    w.database.extensions = {"unaccent", "citext"};
    CHECK(Build(w).state_digest != base);
  }
  SUBCASE("changes when an extension is removed") {
    manifests::Workspace w = Acme();
    w.database.extensions = {"unaccent"};
    CHECK(Build(w).state_digest != base);
  }
  SUBCASE("does not depend on the order extensions are listed in, or on duplicates") {
    manifests::Workspace w = Acme();
    w.database.extensions = {"hstore", "pg_trgm", "unaccent", "hstore"};
    manifests::Product p = Erp();
    p.extensions = {"unaccent"};
    CHECK(Build(w, p).state_digest == base);
  }
  SUBCASE("does not change with unrelated fields") {
    manifests::Workspace w = Acme();
    w.name = "globex";
    w.subdomain = "globex";
    w.labels = {{"plan", "enterprise"}};
    w.suspend = true;
    w.mode = manifests::Mode::kDedicated;
    w.dedicated = manifests::DedicatedSpec{1, "2.3.2", {{"LANGUAGE_CODE", "es"}}, false};
    w.database.connection_limit = 3;
    w.database.password_rotation = 9;
    w.database.adopt = true;
    w.database.reclaim_policy = manifests::ReclaimPolicy::kDelete;
    w.backup.schedule = "0 3 * * *";
    manifests::Product p = Erp();
    p.display_name = "Sistema ERP";
    p.default_version = "9.9.9";
    p.port = 9000;
    CHECK(Build(w, p).state_digest == base);
  }
}

}  // namespace
}  // namespace tmaster::postgres
