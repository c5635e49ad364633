// common/pq/sqlstate.hpp: the one SQLSTATE classifier, one row per rule.
#include <doctest/doctest.h>

#include <string>

#include "common/pq/sqlstate.hpp"

namespace {

using tmaster::Failure;
using tmaster::FailureKind;

struct Row {
  const char* sqlstate;
  const char* constraint;
  FailureKind kind;
  const char* reason;
};

constexpr FailureKind kTransient = FailureKind::kTransient;
constexpr FailureKind kStalled = FailureKind::kStalled;

TEST_CASE("Classify maps SQLSTATEs to failure kinds and reasons, full codes before classes") {
  const Row rows[] = {
      // Full codes, tried before their classes.
      {"55P03", "", kTransient, "LockTimeout"},
      {"57014", "", kTransient, "StatementTimeout"},
      {"42501", "", kStalled, "InsufficientPrivilege"},
      {"42601", "", kStalled, "SyntaxError"},
      {"42710", "", kTransient, "ConcurrentChange"},
      {"42P04", "", kTransient, "ConcurrentChange"},
      {"42704", "", kTransient, "ConcurrentChange"},
      {"3D000", "", kTransient, "ConcurrentChange"},
      // A unique violation on the catalog's name indexes is a create that raced another.
      {"23505", "pg_database_datname_index", kTransient, "ConcurrentChange"},
      {"23505", "pg_authid_rolname_index", kTransient, "ConcurrentChange"},
      {"23505", "customers_pkey", kStalled, "IntegrityConstraintViolation"},
      {"23505", "", kStalled, "IntegrityConstraintViolation"},
      // Classes.
      {"08006", "", kTransient, "ConnectionFailed"},
      {"57P01", "", kTransient, "PostgresUnavailable"},
      {"53300", "", kTransient, "InsufficientResources"},
      {"40001", "", kTransient, "TransactionRollback"},
      {"58030", "", kTransient, "SystemError"},
      {"XX000", "", kTransient, "InternalError"},
      {"28P01", "", kStalled, "AuthenticationFailed"},
      {"42P01", "", kStalled, "SqlError"},
      {"22P02", "", kStalled, "DataException"},
      {"23503", "", kStalled, "IntegrityConstraintViolation"},
      {"2BP01", "", kStalled, "DependentObjectsStillExist"},
      {"0A000", "", kStalled, "FeatureNotSupported"},
      {"25P02", "", kStalled, "InvalidTransactionState"},
      {"3F000", "", kStalled, "InvalidSchemaName"},
      {"P0001", "", kStalled, "PlpgsqlError"},
      // The rest.
      {"55000", "", kStalled, "SqlError"},  // class 55 without the 55P03 code
      {"99999", "", kStalled, "SqlError"},
      {"", "", kTransient, "ConnectionFailed"},  // libpq failed without a server error
  };
  for (const Row& row : rows) {
    SUBCASE((std::string(row.sqlstate) + " " + row.constraint).c_str()) {
      const Failure failure = tmaster::pq::Classify(row.sqlstate, "the message", row.constraint);
      CHECK(failure.kind == row.kind);
      CHECK(failure.reason == row.reason);
      CHECK(failure.message == "the message");
    }
  }
}

TEST_CASE("RedactQuoted hides every double-quoted fragment of a server message") {
  using tmaster::pq::RedactQuoted;
  CHECK(RedactQuoted("syntax error at or near \"s3cr3t-key\"") ==
        "syntax error at or near \"\u2026\"");
  CHECK(RedactQuoted("relation \"a\" does not exist in \"b\"") ==
        "relation \"\u2026\" does not exist in \"\u2026\"");
  // The scanner's errors quote the token, which may itself start with a quote.
  CHECK(RedactQuoted("unterminated quoted identifier at or near \"\"abc def\"") ==
        "unterminated quoted identifier at or near \"\u2026\"");
  CHECK(RedactQuoted("column \"a\"\"b\" of \"t\": x") ==
        "column \"\u2026\" of \"\u2026\": x");
  CHECK(RedactQuoted("near \"unclosed text") == "near \"\u2026");
  CHECK(RedactQuoted("no quotes here") == "no quotes here");
  CHECK(RedactQuoted("") == "");
}

TEST_CASE("ConditionName names the common SQLSTATEs and nothing else") {
  CHECK(tmaster::pq::ConditionName("42601") == "syntax_error");
  CHECK(tmaster::pq::ConditionName("55P03") == "lock_not_available");
  CHECK(tmaster::pq::ConditionName("57014") == "query_canceled");
  CHECK(tmaster::pq::ConditionName("99999").empty());
}

}  // namespace
