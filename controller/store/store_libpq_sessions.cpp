#include <utility>

#include "common/text.hpp"
#include "controller/store/store_libpq_internal.hpp"

// The dashboard's sessions and failed-login counters (schema v7, tm_sessions and
// tm_login_failures; controller/api/sessions.hpp). The counters live here, not in memory, so that
// neither a restart nor another replica nor a flood of addresses resets them (the in-memory
// throttling of Argo CD was bypassed that way: CVE-2024-21662, CVE-2024-21652). Keys and session
// ids are never named in messages: a key holds a name someone typed, an id digests a secret.

namespace tmaster::controller::pqstore {
namespace {

constexpr std::string_view kSessionColumns =
    "SELECT id, principal_id, role, description, csrf_digest, credential_digest,"
    " extract(epoch FROM created_at)::bigint, extract(epoch FROM expires_at)::bigint,"
    " extract(epoch FROM last_seen_at)::bigint, extract(epoch FROM revoked_at)::bigint"
    " FROM tm_sessions";
constexpr std::string_view kCreateSession =
    "INSERT INTO tm_sessions (id, principal_id, role, description, csrf_digest,"
    " credential_digest, created_at, expires_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6,"
    " to_timestamp($7::bigint), to_timestamp($8::bigint), to_timestamp($9::bigint))"
    " ON CONFLICT (id) DO NOTHING";
constexpr std::string_view kTouchSession =
    "UPDATE tm_sessions SET last_seen_at = to_timestamp($2::bigint)"
    " WHERE id = $1 AND last_seen_at < to_timestamp($2::bigint)";
constexpr std::string_view kRevokeSession =
    "UPDATE tm_sessions SET revoked_at = to_timestamp($2::bigint)"
    " WHERE id = $1 AND revoked_at IS NULL";

constexpr std::string_view kFailureColumns =
    "SELECT key, count, extract(epoch FROM window_start)::bigint,"
    " extract(epoch FROM locked_until)::bigint, lockouts, extract(epoch FROM last_failure)::bigint"
    " FROM tm_login_failures WHERE key = $1";
// The row exists before it is locked (FOR UPDATE locks rows, not their absence), so two first
// failures of one key on two replicas both count.
constexpr std::string_view kEnsureFailure =
    "INSERT INTO tm_login_failures (key, count, window_start, lockouts, last_failure)"
    " VALUES ($1, 0, to_timestamp($2::bigint), 0, to_timestamp($2::bigint))"
    " ON CONFLICT (key) DO NOTHING";
constexpr std::string_view kPutFailure =
    "UPDATE tm_login_failures SET count = $2::bigint, window_start = to_timestamp($3::bigint),"
    " locked_until = to_timestamp($4::bigint), lockouts = $5::bigint,"
    " last_failure = to_timestamp($6::bigint) WHERE key = $1";

constexpr std::string_view kPruneSessions =
    "DELETE FROM tm_sessions WHERE expires_at < now() - interval '1 day'"
    " OR revoked_at < now() - interval '1 day'";
constexpr std::string_view kPruneFailures =
    "DELETE FROM tm_login_failures WHERE last_failure < now() - interval '1 day'"
    " AND (locked_until IS NULL OR locked_until < now())";

Outcome<std::optional<std::int64_t>> NullableTime(PGresult* res, int row, int column,
                                                  std::string_view table) {
  if (PQgetisnull(res, row, column) != 0) return std::optional<std::int64_t>();
  auto value = ParseInt(PQgetvalue(res, row, column));
  if (!value) return BadValue(table);
  return std::optional<std::int64_t>(*value);
}

Outcome<StoredSession> SessionAt(PGresult* res, int row) {
  auto created = ParseInt(PQgetvalue(res, row, 6));
  auto expires = ParseInt(PQgetvalue(res, row, 7));
  auto seen = ParseInt(PQgetvalue(res, row, 8));
  auto revoked = NullableTime(res, row, 9, "tm_sessions");
  if (!created || !expires || !seen) return BadValue("tm_sessions");
  if (!revoked) return revoked.failure();
  StoredSession session;
  session.id = PQgetvalue(res, row, 0);
  session.principal_id = PQgetvalue(res, row, 1);
  session.role = PQgetvalue(res, row, 2);
  session.description = PQgetvalue(res, row, 3);
  session.csrf_digest = PQgetvalue(res, row, 4);
  session.credential_digest = PQgetvalue(res, row, 5);
  session.created_unix = *created;
  session.expires_unix = *expires;
  session.last_seen_unix = *seen;
  session.revoked_unix = *revoked;
  return session;
}

Outcome<LoginFailure> FailureAt(PGresult* res, int row) {
  auto count = ParseInt(PQgetvalue(res, row, 1));
  auto window = ParseInt(PQgetvalue(res, row, 2));
  auto locked = NullableTime(res, row, 3, "tm_login_failures");
  auto lockouts = ParseInt(PQgetvalue(res, row, 4));
  auto last = ParseInt(PQgetvalue(res, row, 5));
  if (!count || !window || !lockouts || !last) return BadValue("tm_login_failures");
  if (!locked) return locked.failure();
  return LoginFailure{PQgetvalue(res, row, 0), *count, *window, *locked, *lockouts, *last};
}

bool Changed(PGresult* res) {
  return std::string_view(PQcmdTuples(res)) != "0";
}

}  // namespace

Outcome<Done> PruneSessions(PGconn* conn, const StoreConnector& connector, Pruned& pruned) {
  auto sessions = connector.Exec(conn, kPruneSessions, {});
  if (!sessions) return sessions.failure();
  auto failures = connector.Exec(conn, kPruneFailures, {});
  if (!failures) return failures.failure();
  pruned.sessions = ParseInt(PQcmdTuples(sessions->get())).value_or(0);
  pruned.login_failures = ParseInt(PQcmdTuples(failures->get())).value_or(0);
  return Done{};
}

Outcome<Done> LibpqStore::CreateSession(const StoredSession& session) {
  if (std::optional<Failure> bad = CheckSession(session)) return *bad;
  return Run(
      "create session of " + Quoted(session.principal_id), [&](PGconn* conn) -> Outcome<Done> {
        auto result = Exec(
            conn, kCreateSession,
            {session.id, session.principal_id, session.role, session.description,
             session.csrf_digest, session.credential_digest, std::to_string(session.created_unix),
             std::to_string(session.expires_unix), std::to_string(session.last_seen_unix)});
        if (!result) return result.failure();
        if (!Changed(result->get())) {
          return Failure::Stalled("SessionExists", "a session with that id already exists");
        }
        return Done{};
      });
}

Outcome<std::optional<StoredSession>> LibpqStore::FindSession(const std::string& id) {
  // The id is the digest of a secret: never named in messages.
  return Run("find session", [&](PGconn* conn) -> Outcome<std::optional<StoredSession>> {
    auto result = Exec(conn, std::string(kSessionColumns) + " WHERE id = $1", {id});
    if (!result) return result.failure();
    return ReadOptional<StoredSession>(result->get(), SessionAt);
  });
}

Outcome<Done> LibpqStore::TouchSession(const std::string& id, std::int64_t at_unix) {
  return Run("record use of session", [&](PGconn* conn) -> Outcome<Done> {
    auto result = Exec(conn, kTouchSession, {id, std::to_string(at_unix)});
    if (!result) return result.failure();
    return Done{};
  });
}

Outcome<bool> LibpqStore::RevokeSession(const std::string& id, std::int64_t at_unix) {
  return Run("revoke session", [&](PGconn* conn) -> Outcome<bool> {
    auto result = Exec(conn, kRevokeSession, {id, std::to_string(at_unix)});
    if (!result) return result.failure();
    return Changed(result->get());
  });
}

Outcome<std::optional<LoginFailure>> LibpqStore::FindLoginFailure(const std::string& key) {
  return Run("find login failures", [&](PGconn* conn) -> Outcome<std::optional<LoginFailure>> {
    auto result = Exec(conn, kFailureColumns, {key});
    if (!result) return result.failure();
    return ReadOptional<LoginFailure>(result->get(), FailureAt);
  });
}

Outcome<LoginFailure> LibpqStore::RecordLoginFailure(const std::string& key, std::int64_t now_unix,
                                                     const LoginLimit& limit) {
  const auto in_transaction = [&](PGconn* conn) -> Outcome<LoginFailure> {
    const std::string now = std::to_string(now_unix);
    if (auto ensured = Exec(conn, kEnsureFailure, {key, now}); !ensured) return ensured.failure();
    auto found = Exec(conn, std::string(kFailureColumns) + " FOR UPDATE", {key});
    if (!found) return found.failure();
    Outcome<std::optional<LoginFailure>> before =
        ReadOptional<LoginFailure>(found->get(), FailureAt);
    if (!before) return before.failure();
    // A row just created by kEnsureFailure (count 0, window from now) is a new counter.
    const LoginFailure after = NextLoginFailure(*before, key, now_unix, limit);
    auto put = connector_.ExecNullable(
        conn, kPutFailure,
        {key, std::to_string(after.count), std::to_string(after.window_start_unix),
         after.locked_until_unix
             ? std::optional<std::string>(std::to_string(*after.locked_until_unix))
             : std::nullopt,
         std::to_string(after.lockouts), std::to_string(after.last_failure_unix)});
    if (!put) return put.failure();
    return after;
  };
  return Run("record a login failure", [&](PGconn* conn) -> Outcome<LoginFailure> {
    if (auto begun = Exec(conn, "BEGIN", {}); !begun) return begun.failure();
    Outcome<LoginFailure> after = in_transaction(conn);
    if (!after) {
      (void)Exec(conn, "ROLLBACK", {});
      return after;
    }
    if (auto committed = Exec(conn, "COMMIT", {}); !committed) return committed.failure();
    return after;
  });
}

Outcome<bool> LibpqStore::ClearLoginFailure(const std::string& key) {
  return Run("clear login failures", [&](PGconn* conn) -> Outcome<bool> {
    auto result = Exec(conn, "DELETE FROM tm_login_failures WHERE key = $1", {key});
    if (!result) return result.failure();
    return Changed(result->get());
  });
}

}  // namespace tmaster::controller::pqstore
