// CompareTableSums and DescribeTableSums (reconcilers/backups/table_sums.hpp): what a move's
// verification reports. SumTables itself runs against real servers in tests/e2e/move_itest.cpp.
#include <doctest/doctest.h>

#include "reconcilers/backups/table_sums.hpp"

using tmaster::backups::CompareTableSums;
using tmaster::backups::DescribeTableSums;
using tmaster::backups::TableSums;

TEST_CASE("CompareTableSums: equal sides pass; each kind of difference is named") {
  const TableSums source{{"public.orders", {1200, "11:22"}},
                         {"public.items", {3, "33:44"}},
                         {"tenant_master.schema_migrations", {2, "55:66"}}};
  CHECK_FALSE(CompareTableSums(source, source).has_value());
  CHECK(DescribeTableSums(source) == "3 tables, 1205 rows, digests equal");

  TableSums target = source;
  target["public.orders"].rows = 1199;
  std::optional<std::string> differs = CompareTableSums(source, target);
  REQUIRE(differs.has_value());
  CHECK(*differs == "public.orders: 1200 rows on the source, 1199 on the target");

  target = source;
  target["public.items"].digest = "33:45";  // same count, one row changed
  differs = CompareTableSums(source, target);
  REQUIRE(differs.has_value());
  CHECK(*differs == "public.items: same count (3), different rows");

  target = source;
  target.erase("public.items");
  target["public.extra"] = {0, "0:0"};
  differs = CompareTableSums(source, target);
  REQUIRE(differs.has_value());
  CHECK(*differs == "public.extra: only on the target; public.items: missing on the target");
}
