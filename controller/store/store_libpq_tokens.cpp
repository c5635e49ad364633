#include <utility>

#include "common/text.hpp"
#include "controller/store/store_libpq_internal.hpp"

// The managed API tokens (schema v5, tm_api_tokens; docs/api.md#authentication). The API looks a
// token up on every request that presents one (by primary key), so a revocation is seen by every
// replica at once.

namespace tmaster::controller::pqstore {
namespace {

constexpr std::string_view kTokenColumns =
    "SELECT id, digest, role, description, extract(epoch FROM created_at)::bigint,"
    " extract(epoch FROM expires_at)::bigint, extract(epoch FROM last_used_at)::bigint,"
    " extract(epoch FROM revoked_at)::bigint FROM tm_api_tokens";
constexpr std::string_view kCreateToken =
    "INSERT INTO tm_api_tokens (id, digest, role, description, created_at, expires_at)"
    " VALUES ($1, $2, $3, $4, to_timestamp($5::bigint), to_timestamp($6::bigint))"
    " ON CONFLICT (id) DO NOTHING";
constexpr std::string_view kRevokeToken =
    "UPDATE tm_api_tokens SET revoked_at = to_timestamp($2::bigint)"
    " WHERE id = $1 AND revoked_at IS NULL";
// Never moves the last use back (two replicas touching in either order).
constexpr std::string_view kTouchToken =
    "UPDATE tm_api_tokens SET last_used_at = to_timestamp($2::bigint)"
    " WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < to_timestamp($2::bigint))";

/// A time column that may be NULL.
Outcome<std::optional<std::int64_t>> OptionalTime(PGresult* res, int row, int column) {
  if (PQgetisnull(res, row, column) != 0) return std::optional<std::int64_t>();
  auto value = ParseInt(PQgetvalue(res, row, column));
  if (!value) return BadValue("tm_api_tokens");
  return std::optional<std::int64_t>(*value);
}

/// A row of kTokenColumns.
Outcome<ApiToken> TokenAt(PGresult* res, int row) {
  auto created = ParseInt(PQgetvalue(res, row, 4));
  auto expires = ParseInt(PQgetvalue(res, row, 5));
  auto last_used = OptionalTime(res, row, 6);
  auto revoked = OptionalTime(res, row, 7);
  if (!created || !expires) return BadValue("tm_api_tokens");
  if (!last_used) return last_used.failure();
  if (!revoked) return revoked.failure();
  ApiToken token;
  token.id = PQgetvalue(res, row, 0);
  token.digest = PQgetvalue(res, row, 1);
  token.role = PQgetvalue(res, row, 2);
  token.description = PQgetvalue(res, row, 3);
  token.created_unix = *created;
  token.expires_unix = *expires;
  token.last_used_unix = *last_used;
  token.revoked_unix = *revoked;
  return token;
}

}  // namespace

Outcome<Done> LibpqStore::CreateToken(const ApiToken& token) {
  if (std::optional<Failure> bad = CheckApiToken(token)) return *bad;
  return Run("create API token " + Quoted(token.id), [&](PGconn* conn) -> Outcome<Done> {
    auto result = Exec(conn, kCreateToken,
                       {token.id, token.digest, token.role, token.description,
                        std::to_string(token.created_unix), std::to_string(token.expires_unix)});
    if (!result) return result.failure();
    if (std::string_view(PQcmdTuples(result->get())) == "0") {
      return Failure::Stalled("TokenExists", "an API token with id " + Quoted(token.id) +
                                                 " already exists");
    }
    return Done{};
  });
}

Outcome<std::optional<ApiToken>> LibpqStore::FindToken(const std::string& id) {
  return Run("find API token " + Quoted(id), [&](PGconn* conn) -> Outcome<std::optional<ApiToken>> {
    auto result = Exec(conn, std::string(kTokenColumns) + " WHERE id = $1", {id});
    if (!result) return result.failure();
    return ReadOptional<ApiToken>(result->get(), TokenAt);
  });
}

Outcome<std::vector<ApiToken>> LibpqStore::ListTokens() {
  return Run("list API tokens", [&](PGconn* conn) -> Outcome<std::vector<ApiToken>> {
    auto result =
        Exec(conn, std::string(kTokenColumns) + " ORDER BY created_at, id COLLATE \"C\"", {});
    if (!result) return result.failure();
    return ReadRows<ApiToken>(result->get(), TokenAt);
  });
}

Outcome<bool> LibpqStore::RevokeToken(const std::string& id, std::int64_t at_unix) {
  return Run("revoke API token " + Quoted(id), [&](PGconn* conn) -> Outcome<bool> {
    auto result = Exec(conn, kRevokeToken, {id, std::to_string(at_unix)});
    if (!result) return result.failure();
    return std::string_view(PQcmdTuples(result->get())) != "0";
  });
}

Outcome<Done> LibpqStore::TouchToken(const std::string& id, std::int64_t at_unix) {
  return Run("record use of API token " + Quoted(id), [&](PGconn* conn) -> Outcome<Done> {
    auto result = Exec(conn, kTouchToken, {id, std::to_string(at_unix)});
    if (!result) return result.failure();
    return Done{};
  });
}

}  // namespace tmaster::controller::pqstore
