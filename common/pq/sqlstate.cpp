#include "common/pq/sqlstate.hpp"

#include <utility>

namespace tmaster::pq {
namespace {

struct Rule {
  std::string_view prefix;  // a class (two characters) or a full SQLSTATE
  FailureKind kind;
  std::string_view reason;
};

// Full codes first, then classes (userver's exception hierarchy, Flux's error kinds).
constexpr Rule kRules[] = {
    {"55P03", FailureKind::kTransient, "LockNotAvailable"},
    {"42501", FailureKind::kStalled, "InsufficientPrivilege"},
    {"42601", FailureKind::kStalled, "SyntaxError"},
    {"42710", FailureKind::kTransient, "ConcurrentChange"},
    {"42P04", FailureKind::kTransient, "ConcurrentChange"},
    {"42704", FailureKind::kTransient, "ConcurrentChange"},
    {"3D000", FailureKind::kTransient, "ConcurrentChange"},
    {"08", FailureKind::kTransient, "ConnectionFailed"},
    {"57", FailureKind::kTransient, "PostgresUnavailable"},
    {"53", FailureKind::kTransient, "InsufficientResources"},
    {"40", FailureKind::kTransient, "TransactionRollback"},
    {"58", FailureKind::kTransient, "SystemError"},
    {"XX", FailureKind::kTransient, "InternalError"},
    {"28", FailureKind::kStalled, "AuthenticationFailed"},
    {"42", FailureKind::kStalled, "SqlError"},
    {"22", FailureKind::kStalled, "DataException"},
    {"23", FailureKind::kStalled, "IntegrityConstraintViolation"},
    {"2B", FailureKind::kStalled, "DependentObjectsStillExist"},
    {"0A", FailureKind::kStalled, "FeatureNotSupported"},
    {"25", FailureKind::kStalled, "InvalidTransactionState"},
    {"3F", FailureKind::kStalled, "InvalidSchemaName"},
    {"P0", FailureKind::kStalled, "PlpgsqlError"},
};

// The unique indexes on role and database names: a violation of one is a CREATE ROLE / CREATE
// DATABASE that raced another session's create of the same name (for example one a killed
// operator left running). Any other unique violation (a migration's data) is the data's problem.
bool IsCatalogNameIndex(std::string_view constraint) {
  return constraint == "pg_database_datname_index" || constraint == "pg_authid_rolname_index";
}

}  // namespace

Failure Classify(std::string_view sqlstate, std::string message, std::string_view constraint) {
  if (sqlstate == "23505" && IsCatalogNameIndex(constraint)) {
    return Failure::Transient("ConcurrentChange", std::move(message));
  }
  // No SQLSTATE means libpq itself failed (lost connection, out of memory): retry.
  if (sqlstate.empty()) return Failure::Transient("ConnectionFailed", std::move(message));
  for (const Rule& rule : kRules) {
    if (sqlstate.starts_with(rule.prefix)) {
      return {rule.kind, std::string(rule.reason), std::move(message)};
    }
  }
  return Failure::Stalled("SqlError", std::move(message));
}

}  // namespace tmaster::pq
