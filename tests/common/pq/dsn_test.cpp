// common/pq/dsn.hpp: the one DSN parser (libpq's own, without a server).
#include <doctest/doctest.h>

#include <optional>
#include <string>

#include "common/pq/dsn.hpp"

namespace {

using tmaster::Secret;
using tmaster::pq::DsnParts;
using tmaster::pq::DsnWith;
using tmaster::pq::ParseDsn;

TEST_CASE("ParseDsn reads a conninfo string") {
  const std::optional<DsnParts> dsn = ParseDsn(
      Secret("host=db.internal port=5433 user=tenant_admin password='a b\\'c' dbname=app"));
  REQUIRE(dsn.has_value());
  CHECK(dsn->host == "db.internal");
  CHECK(dsn->port == "5433");
  CHECK(dsn->user == "tenant_admin");
  CHECK(dsn->dbname == "app");
  CHECK(dsn->password.Reveal() == "a b'c");
}

TEST_CASE("ParseDsn reads a URI, percent-decoding its parts") {
  const std::optional<DsnParts> dsn =
      ParseDsn(Secret("postgresql://admin:p%40ss@10.0.0.5:6432/tenant_master?sslmode=disable"));
  REQUIRE(dsn.has_value());
  CHECK(dsn->host == "10.0.0.5");
  CHECK(dsn->port == "6432");
  CHECK(dsn->user == "admin");
  CHECK(dsn->dbname == "tenant_master");
  CHECK(dsn->password.Reveal() == "p@ss");
}

TEST_CASE("ParseDsn: what the DSN leaves out stays empty, and hostaddr stands in for host") {
  const std::optional<DsnParts> bare = ParseDsn(Secret("user=postgres"));
  REQUIRE(bare.has_value());
  CHECK(bare->host.empty());
  CHECK(bare->port.empty());
  CHECK(bare->dbname.empty());
  CHECK(bare->password.Empty());

  const std::optional<DsnParts> by_address = ParseDsn(Secret("hostaddr=127.0.0.1 port=5432"));
  REQUIRE(by_address.has_value());
  CHECK(by_address->host == "127.0.0.1");

  const std::optional<DsnParts> both = ParseDsn(Secret("host=db hostaddr=127.0.0.1"));
  REQUIRE(both.has_value());
  CHECK(both->host == "db");
}

TEST_CASE("ParseDsn refuses what libpq cannot parse") {
  CHECK_FALSE(ParseDsn(Secret("host=127.0.0.1 password=s3cr3t = broken")).has_value());
  CHECK_FALSE(ParseDsn(Secret("host=127.0.0.1 password=hunter2 dbname")).has_value());
  CHECK_FALSE(ParseDsn(Secret("postgresql://[::1")).has_value());
  CHECK_FALSE(ParseDsn(Secret("no_such_keyword=1")).has_value());
}

TEST_CASE("DsnWith rewrites a DSN as quoted pairs with one keyword set last") {
  const std::optional<Secret> rewritten =
      DsnWith(Secret("postgresql://admin:it%27s%5Cx@db:5433/postgres"), "dbname", "tenant_master");
  REQUIRE(rewritten.has_value());
  const std::string& text = rewritten->Reveal();
  CHECK(text.find("dbname='postgres'") == std::string::npos);
  CHECK(text.size() >= std::string("dbname='tenant_master'").size());
  CHECK(text.substr(text.size() - std::string("dbname='tenant_master'").size()) ==
        "dbname='tenant_master'");

  // What it wrote reads back as the same server and credentials.
  const std::optional<DsnParts> parts = ParseDsn(*rewritten);
  REQUIRE(parts.has_value());
  CHECK(parts->host == "db");
  CHECK(parts->port == "5433");
  CHECK(parts->user == "admin");
  CHECK(parts->password.Reveal() == "it's\\x");
  CHECK(parts->dbname == "tenant_master");

  const std::optional<Secret> added = DsnWith(Secret("host=db"), "dbname", "x");
  REQUIRE(added.has_value());
  CHECK(added->Reveal() == "host='db' dbname='x'");
  CHECK_FALSE(DsnWith(Secret("host=db = broken"), "dbname", "x").has_value());
}

}  // namespace
