// The split of a backup between the tenant's restore and the operator's (restore_plan.hpp): a
// table of contents as pg_restore --list prints it for a tenant database of this operator.
#include <doctest/doctest.h>

#include <string>

#include "reconcilers/backups/restore_plan.hpp"

namespace {

using namespace tmaster::backups;

// pg_restore 15's --list of a tenant database: the operator's schemas, the ledger, an extension,
// and the tenant's objects (one of them named like the ledger, in the tenant's schema).
const char* const kToc = R"(;
; Archive created at 2026-12-04 10:00:00 UTC
;     dbname: tenant_acme
;
; Selected TOC Entries:
;
5; 2615 16390 SCHEMA - extensions postgres
3345; 0 0 ACL - SCHEMA extensions postgres
6; 2615 16385 SCHEMA - tenant_master postgres
3346; 0 0 ACL - SCHEMA tenant_master postgres
2; 3079 16400 EXTENSION - pgcrypto 
3347; 0 0 COMMENT - EXTENSION pgcrypto 
3; 3079 16500 EXTENSION - citext 
216; 1259 16386 TABLE tenant_master schema_migrations postgres
3348; 0 0 ACL tenant_master TABLE schema_migrations postgres
218; 1259 16410 TABLE public schema_migrations user_acme
219; 1259 16420 TABLE public customers user_acme
220; 1259 16421 SEQUENCE public customers_id_seq user_acme
3340; 0 16386 TABLE DATA tenant_master schema_migrations postgres
3341; 0 16410 TABLE DATA public schema_migrations user_acme
3342; 0 16420 TABLE DATA public customers user_acme
3349; 0 0 SEQUENCE SET public customers_id_seq user_acme
3190; 2606 16424 CONSTRAINT tenant_master schema_migrations schema_migrations_pkey postgres
3192; 2606 16425 CONSTRAINT public customers customers_pkey user_acme
3194; 2606 16426 FK CONSTRAINT public orders orders_customer_fkey user_acme
3350; 0 0 DEFAULT ACL extensions DEFAULT PRIVILEGES FOR TABLES postgres
)";

bool Commented(const TocPlan& plan, const std::string& needle) {
  for (const std::string& line : plan.tenant_lines) {
    if (line.find(needle) != std::string::npos) return !line.empty() && line.front() == ';';
  }
  FAIL("no line holds " << needle);
  return false;
}

}  // namespace

TEST_CASE("the operator's entries are left out of the tenant's restore, in the original order") {
  const TocPlan plan = PlanTenantRestore(kToc);
  CHECK(Commented(plan, "SCHEMA - extensions"));
  CHECK(Commented(plan, "ACL - SCHEMA extensions"));
  CHECK(Commented(plan, "SCHEMA - tenant_master"));
  CHECK(Commented(plan, "ACL - SCHEMA tenant_master"));
  CHECK(Commented(plan, "EXTENSION - pgcrypto"));
  CHECK(Commented(plan, "COMMENT - EXTENSION pgcrypto"));
  CHECK(Commented(plan, "TABLE tenant_master schema_migrations"));
  CHECK(Commented(plan, "ACL tenant_master TABLE"));
  CHECK(Commented(plan, "TABLE DATA tenant_master"));
  CHECK(Commented(plan, "CONSTRAINT tenant_master"));
  CHECK(Commented(plan, "DEFAULT ACL extensions"));
  // The tenant's own, even its table called schema_migrations, stay.
  CHECK_FALSE(Commented(plan, "TABLE public schema_migrations"));
  CHECK_FALSE(Commented(plan, "TABLE DATA public schema_migrations"));
  CHECK_FALSE(Commented(plan, "TABLE public customers"));
  CHECK_FALSE(Commented(plan, "SEQUENCE SET public"));
  CHECK_FALSE(Commented(plan, "FK CONSTRAINT public"));
  CHECK(plan.has_ledger_data);
  CHECK(plan.operator_entries == 12);
  REQUIRE(plan.extension_lines.size() == 2);
  CHECK(plan.tenant_lines[plan.extension_lines[0]].find("pgcrypto") != std::string::npos);
  CHECK(plan.tenant_lines[plan.extension_lines[1]].find("citext") != std::string::npos);
  // The operator reads the extensions and the ledger's data, nothing else.
  CHECK(plan.operator_toc ==
        "2; 3079 16400 EXTENSION - pgcrypto \n3; 3079 16500 EXTENSION - citext \n"
        "3340; 0 16386 TABLE DATA tenant_master schema_migrations postgres\n");
  // Same lines, same order.
  const std::string toc = plan.TenantToc();
  CHECK(toc.find(";216; 1259 16386 TABLE tenant_master") < toc.find("218; 1259 16410 TABLE public"));
  CHECK(toc.find("219; 1259 16420 TABLE public customers") != std::string::npos);
}

TEST_CASE("an extension in a schema of the tenant's goes back to the tenant's restore") {
  TocPlan plan = PlanTenantRestore(kToc);
  const int before = plan.operator_entries;
  plan.GiveBack(1);
  CHECK_FALSE(Commented(plan, "EXTENSION - citext"));
  CHECK(Commented(plan, "EXTENSION - pgcrypto"));
  CHECK(plan.operator_entries == before - 1);
  plan.GiveBack(1);  // twice: nothing more
  plan.GiveBack(7);  // out of range: nothing
  CHECK(plan.operator_entries == before - 1);
}

TEST_CASE("a backup without a ledger or extensions leaves everything to the tenant") {
  const TocPlan plan =
      PlanTenantRestore("219; 1259 16420 TABLE public customers user_acme\n"
                        "3342; 0 16420 TABLE DATA public customers user_acme\n");
  CHECK_FALSE(plan.has_ledger_data);
  CHECK(plan.operator_entries == 0);
  CHECK(plan.operator_toc.empty());
  CHECK(plan.TenantToc() ==
        "219; 1259 16420 TABLE public customers user_acme\n"
        "3342; 0 16420 TABLE DATA public customers user_acme\n");
}

TEST_CASE("CREATE EXTENSION statements are read by name and schema, or refused") {
  auto found = ParseCreateExtensions(
      "--\n-- Name: pgcrypto\n--\n\n"
      "CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA extensions;\n\n"
      "CREATE EXTENSION IF NOT EXISTS \"uuid-ossp\" WITH SCHEMA \"My \"\"Schema\"\"\";\n"
      "COMMENT ON EXTENSION pgcrypto IS 'x';\n");
  REQUIRE(found.ok());
  REQUIRE(found->size() == 2);
  CHECK((*found)[0].name == "pgcrypto");
  CHECK((*found)[0].schema == "extensions");
  CHECK((*found)[1].name == "uuid-ossp");
  CHECK((*found)[1].schema == "My \"Schema\"");

  // Anything after the schema (a second statement smuggled in) is refused, not guessed.
  auto smuggled = ParseCreateExtensions(
      "CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA extensions; DROP ROLE x;\n");
  REQUIRE_FALSE(smuggled.ok());
  CHECK(smuggled.failure().reason == "BackupRestoreFailed");
  CHECK(smuggled.failure().message.find("cannot be read") != std::string::npos);
  CHECK_FALSE(ParseCreateExtensions("CREATE EXTENSION IF NOT EXISTS \"open WITH SCHEMA x;\n").ok());
}

TEST_CASE("the ledger's COPY block is read in COPY's text format") {
  const char* const sql =
      "SET statement_timeout = 0;\n"
      "COPY public.schema_migrations (version) FROM stdin;\n"
      "tenant's own\n"
      "\\.\n"
      "COPY tenant_master.schema_migrations (version, file, checksum, applied_at, duration_ms) "
      "FROM stdin;\n"
      "0001\t0001_init.sql\tab12\t2026-12-04 10:00:00+00\t\\N\n"
      "0002\tfile\\twith\\\\tab\\nand line\tcd34\t2026-12-04 10:00:01+00\t17\n"
      "0003\t\\101\\x42\tef56\t2026-12-04 10:00:02+00\t3\n"
      "\\.\n";
  auto block = ParseCopyBlock(sql, "tenant_master.schema_migrations");
  REQUIRE(block.ok());
  CHECK(block->columns ==
        std::vector<std::string>{"version", "file", "checksum", "applied_at", "duration_ms"});
  REQUIRE(block->rows.size() == 3);
  CHECK(block->rows[0][0] == std::optional<std::string>("0001"));
  CHECK_FALSE(block->rows[0][4].has_value());
  CHECK(block->rows[1][1] == std::optional<std::string>("file\twith\\tab\nand line"));
  CHECK(block->rows[1][4] == std::optional<std::string>("17"));
  CHECK(block->rows[2][1] == std::optional<std::string>("AB"));

  auto none = ParseCopyBlock("SET x = 1;\n", "tenant_master.schema_migrations");
  REQUIRE(none.ok());
  CHECK(none->columns.empty());
  CHECK(none->rows.empty());

  auto unended = ParseCopyBlock(
      "COPY tenant_master.schema_migrations (version, file) FROM stdin;\n0001\tf\n",
      "tenant_master.schema_migrations");
  REQUIRE_FALSE(unended.ok());
  CHECK(unended.failure().message.find("does not end") != std::string::npos);
  auto short_row = ParseCopyBlock(
      "COPY tenant_master.schema_migrations (version, file) FROM stdin;\n0001\n\\.\n",
      "tenant_master.schema_migrations");
  REQUIRE_FALSE(short_row.ok());
  CHECK(short_row.failure().message.find("1 fields, the header 2") != std::string::npos);
}
