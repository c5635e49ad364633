#include <algorithm>
#include <charconv>
#include <chrono>
#include <utility>

#include "common/text.hpp"
#include "controller/store/store_libpq_internal.hpp"

namespace tmaster::controller::pqstore {

namespace {

// Every store session (the store's and the leader lock's) starts with these timeouts
// (docs/decisions.md, Hardening I): a statement of the store is short, and a lock held by
// someone else (a hand-run transaction on a store table) fails the call Transient LockTimeout
// instead of hanging the controller. The leader lock is unaffected: a session-level advisory
// lock is held by the session, not by a statement, and pg_try_advisory_lock never waits.
constexpr std::chrono::milliseconds kStoreStatementTimeout = std::chrono::seconds(30);
constexpr std::chrono::milliseconds kStoreLockTimeout = std::chrono::seconds(5);

const char* StoreSessionOptions() {
  static const std::string options =
      pq::SessionOptions(kStoreStatementTimeout, kStoreLockTimeout);
  return options.c_str();
}

}  // namespace

StoreConnector::StoreConnector(Secret dsn, std::span<const pq::ConnectParam> params)
    : dsn_(std::move(dsn)), params_(params.begin(), params.end()), parts_(pq::ParseDsn(dsn_)) {
  const bool own_options = std::any_of(params_.begin(), params_.end(), [](const auto& param) {
    return std::string_view(param.keyword) == "options";
  });
  if (!own_options) params_.push_back({"options", StoreSessionOptions()});
  if (!parts_) return;  // every Open fails with InvalidDsn
  dbname_ = parts_->dbname.empty() ? std::string(kDefaultDatabase) : parts_->dbname;
  scrub_.Add(dsn_);
  scrub_.Add(parts_->password);
}

Outcome<pq::ConnPtr> StoreConnector::Open() const {
  if (!parts_) {
    return Failure::Stalled("InvalidDsn", "the store's connection string cannot be parsed");
  }
  auto conn = ConnectTo(dbname_);
  if (!conn && conn.failure().reason == "DatabaseMissing") {
    if (auto created = CreateDatabase(); !created) {
      return WithStep(created.failure(), "create " + Describe(dbname_));
    }
    conn = ConnectTo(dbname_);
  }
  return conn;
}

std::string StoreConnector::Describe(const std::string& dbname) const {
  std::string where = "database " + Quoted(dbname);
  if (!parts_->host.empty()) {
    where += " on " + parts_->host + (parts_->port.empty() ? "" : ":" + parts_->port);
  }
  return where;
}

Outcome<pq::ConnPtr> StoreConnector::ConnectTo(const std::string& dbname) const {
  return pq::Connect(dsn_, dbname, params_, scrub_, Describe(dbname));
}

Outcome<Done> StoreConnector::CreateDatabase() const {
  auto admin = ConnectTo("postgres");
  if (!admin) return admin.failure();
  PGconn* conn = admin->get();
  auto exists = Exec(conn, "SELECT 1 FROM pg_catalog.pg_database WHERE datname = $1", {dbname_});
  if (!exists) return exists.failure();
  if (PQntuples(exists->get()) > 0) return Done{};
  pq::Text quoted(PQescapeIdentifier(conn, dbname_.c_str(), dbname_.size()));
  if (!quoted) {
    return Failure::Stalled("InvalidDatabaseName", OneLine(scrub_(PQerrorMessage(conn))));
  }
  auto created = Exec(conn, "CREATE DATABASE " + std::string(quoted.get()), {});
  // 42P04: created by a replica in the meantime, which is what we wanted.
  if (!created && created.failure().message.find("SQLSTATE 42P04") == std::string::npos) {
    return created.failure();
  }
  return Done{};
}

Failure WithStep(Failure failure, std::string_view step) {
  failure.message = "store: " + std::string(step) + ": " + failure.message;
  return failure;
}

Failure BadValue(std::string_view what) {
  return Failure::Stalled("CorruptStore", "unexpected value in " + std::string(what));
}

std::optional<std::int64_t> ParseInt(const char* text) {
  std::int64_t value = 0;
  const std::string_view view(text);
  auto [end, error] = std::from_chars(view.data(), view.data() + view.size(), value);
  if (error != std::errc() || end != view.data() + view.size()) return std::nullopt;
  return value;
}

Outcome<std::int64_t> IdOf(PGresult* res) {
  if (PQntuples(res) != 1) return BadValue("RETURNING id");
  auto id = ParseInt(PQgetvalue(res, 0, 0));
  if (!id) return BadValue("RETURNING id");
  return *id;
}

}  // namespace tmaster::controller::pqstore
