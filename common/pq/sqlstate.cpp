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
    {"55P03", FailureKind::kTransient, "LockTimeout"},
    {"57014", FailureKind::kTransient, "StatementTimeout"},
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

std::string_view ConditionName(std::string_view sqlstate) {
  // The codes a migration or an admin statement commonly meets (PostgreSQL's errcodes.txt).
  static constexpr std::pair<std::string_view, std::string_view> kNames[] = {
      {"0A000", "feature_not_supported"},
      {"22001", "string_data_right_truncation"},
      {"22003", "numeric_value_out_of_range"},
      {"22007", "invalid_datetime_format"},
      {"22008", "datetime_field_overflow"},
      {"22012", "division_by_zero"},
      {"22023", "invalid_parameter_value"},
      {"22P02", "invalid_text_representation"},
      {"23502", "not_null_violation"},
      {"23503", "foreign_key_violation"},
      {"23505", "unique_violation"},
      {"23514", "check_violation"},
      {"25001", "active_sql_transaction"},
      {"25P02", "in_failed_sql_transaction"},
      {"2BP01", "dependent_objects_still_exist"},
      {"3F000", "invalid_schema_name"},
      {"40001", "serialization_failure"},
      {"40P01", "deadlock_detected"},
      {"42501", "insufficient_privilege"},
      {"42601", "syntax_error"},
      {"42602", "invalid_name"},
      {"42622", "name_too_long"},
      {"42701", "duplicate_column"},
      {"42702", "ambiguous_column"},
      {"42703", "undefined_column"},
      {"42704", "undefined_object"},
      {"42710", "duplicate_object"},
      {"42712", "duplicate_alias"},
      {"42723", "duplicate_function"},
      {"42725", "ambiguous_function"},
      {"42803", "grouping_error"},
      {"42804", "datatype_mismatch"},
      {"42809", "wrong_object_type"},
      {"42830", "invalid_foreign_key"},
      {"42883", "undefined_function"},
      {"42P01", "undefined_table"},
      {"42P02", "undefined_parameter"},
      {"42P04", "duplicate_database"},
      {"42P06", "duplicate_schema"},
      {"42P07", "duplicate_table"},
      {"42P13", "invalid_function_definition"},
      {"42P16", "invalid_table_definition"},
      {"53100", "disk_full"},
      {"53200", "out_of_memory"},
      {"53300", "too_many_connections"},
      {"54001", "statement_too_complex"},
      {"55000", "object_not_in_prerequisite_state"},
      {"55006", "object_in_use"},
      {"55P03", "lock_not_available"},
      {"57014", "query_canceled"},
      {"57P01", "admin_shutdown"},
      {"P0001", "raise_exception"},
      {"P0002", "no_data_found"},
      {"P0003", "too_many_rows"},
      {"XX000", "internal_error"},
  };
  for (const auto& [code, name] : kNames) {
    if (code == sqlstate) return name;
  }
  return {};
}

std::string RedactQuoted(std::string_view text) {
  static constexpr std::string_view kFragment = "\"\u2026\"";
  // A fragment ends at a quote followed by the end, a space or punctuation, so a doubled quote
  // inside it (`"a""b"`) or a quote that starts the quoted text (`""abc"`) does not end it.
  const auto closes = [text](std::size_t at) {
    if (at + 1 >= text.size()) return true;
    return std::string_view(" ,.;:)]").find(text[at + 1]) != std::string_view::npos;
  };
  std::string out;
  out.reserve(text.size());
  std::size_t at = 0;
  while (at < text.size()) {
    const std::size_t open = text.find('"', at);
    if (open == std::string_view::npos) {
      out += text.substr(at);
      break;
    }
    out += text.substr(at, open - at);
    std::size_t close = open + 1;
    while (close < text.size() && (text[close] != '"' || !closes(close))) ++close;
    if (close >= text.size()) {  // unclosed: it hides the rest
      out += kFragment.substr(0, kFragment.size() - 1);
      break;
    }
    out += kFragment;
    at = close + 1;
  }
  return out;
}

}  // namespace tmaster::pq
