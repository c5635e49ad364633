// The API's Authenticator (controller/api/auth.hpp) with the in-memory store and a clock of the
// test's: environment tokens, managed tokens (expiry, revocation, the last use at most once a
// minute), the token lifetime and the token request.

#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "common/crypto.hpp"
#include "controller/api/auth.hpp"
#include "tests/support/fake_store.hpp"

namespace tmaster::controller {
namespace {

using testing::FakeStore;

constexpr std::int64_t kStart = 1'800'000'000;

struct Clocked {
  FakeStore store;
  std::int64_t now = kStart;
  Authenticator auth;

  explicit Clocked(AuthOptions options = {Secret(std::string("admin-secret")),
                                          Secret(std::string("read-secret"))})
      : auth(store, options, [this] { return now; }) {}

  Outcome<Principal> As(const std::string& header) { return auth.Authenticate(&header); }
};

void CheckRefused(const Outcome<Principal>& outcome) {
  REQUIRE_FALSE(outcome.ok());
  CHECK(outcome.failure().reason == kUnauthorized);
}

}  // namespace

TEST_CASE("auth: the environment's tokens, and everything else refused") {
  Clocked c;
  Outcome<Principal> admin = c.As("Bearer admin-secret");
  REQUIRE(admin.ok());
  CHECK(admin->id == "env:admin");
  CHECK(admin->role == Role::kAdmin);
  CHECK(admin->Describe() == "env:admin");
  Outcome<Principal> read = c.As("bearer   read-secret  ");
  REQUIRE(read.ok());
  CHECK(read->id == "env:read");
  CHECK(read->role == Role::kViewer);
  CheckRefused(c.auth.Authenticate(nullptr));
  CheckRefused(c.As("Bearer admin-secretx"));
  CheckRefused(c.As("Bearer admin-secre"));
  CheckRefused(c.As("Bearer "));
  CheckRefused(c.As("Basic admin-secret"));
  CheckRefused(c.As("Beareradmin-secret"));
  CheckRefused(c.As("admin-secret"));
  // A token with no store lookup never touches the store.
  CHECK(c.store.Calls("FindToken") == 0);
}

TEST_CASE("auth: only a read token: the empty admin token is no token") {
  Clocked c({Secret(), Secret(std::string("read-secret"))});
  CHECK_FALSE(c.auth.open());
  CheckRefused(c.As("Bearer "));
  CheckRefused(c.auth.Authenticate(nullptr));
  CHECK(c.As("Bearer read-secret")->role == Role::kViewer);
}

TEST_CASE("auth: without any token configured, a request without one is the admin anonymous") {
  Clocked c({Secret(), Secret()});
  CHECK(c.auth.open());
  Outcome<Principal> anonymous = c.auth.Authenticate(nullptr);
  REQUIRE(anonymous.ok());
  CHECK(anonymous->Describe() == "anonymous");
  CHECK(anonymous->role == Role::kAdmin);
  CheckRefused(c.As("Bearer "));
  CheckRefused(c.As("Bearer anything"));
}

TEST_CASE("auth: a managed token: issued, accepted, expired, revoked") {
  Clocked c;
  Outcome<IssuedToken> issued = c.auth.Issue(Role::kViewer, std::chrono::hours(1), "ci deploy");
  REQUIRE(issued.ok());
  const std::string& token = issued->token;
  CHECK(token.rfind("tmt_" + issued->row.id + "_", 0) == 0);
  CHECK(issued->row.digest == crypto::Sha256Hex(token));
  const FakeStore::State stored = c.store.Snapshot();
  REQUIRE(stored.tokens.size() == 1);
  CHECK(stored.tokens.begin()->second.created_unix == kStart);
  CHECK(stored.tokens.begin()->second.expires_unix == kStart + 3600);

  Outcome<Principal> who = c.As("Bearer " + token);
  REQUIRE(who.ok());
  CHECK(who->id == "token:" + issued->row.id);
  CHECK(who->role == Role::kViewer);
  CHECK(who->Describe() == "token:" + issued->row.id + " (ci deploy)");
  // Another secret under the same id, or the token cut short, is unknown.
  CheckRefused(c.As("Bearer " + token.substr(0, token.size() - 1)));
  std::string other = token;
  other.back() = other.back() == 'A' ? 'B' : 'A';
  CheckRefused(c.As("Bearer " + other));

  c.now = kStart + 3599;
  CHECK(c.As("Bearer " + token).ok());
  c.now = kStart + 3600;
  Outcome<Principal> expired = c.As("Bearer " + token);
  CheckRefused(expired);
  CHECK(expired.failure().message.find("expired") != std::string::npos);

  Outcome<IssuedToken> second = c.auth.Issue(Role::kAdmin, std::chrono::hours(24), "");
  REQUIRE(second.ok());
  CHECK(c.As("Bearer " + second->token)->Describe() == "token:" + second->row.id);
  REQUIRE(c.store.RevokeToken(second->row.id, c.now).ok());
  Outcome<Principal> revoked = c.As("Bearer " + second->token);
  CheckRefused(revoked);
  CHECK(revoked.failure().message.find("revoked") != std::string::npos);
  // No message repeats a token.
  CHECK(revoked.failure().message.find(second->token) == std::string::npos);
}

TEST_CASE("auth: a managed token's last use is written at most once a minute") {
  Clocked c;
  Outcome<IssuedToken> issued = c.auth.Issue(Role::kAdmin, std::chrono::hours(24), "x");
  REQUIRE(issued.ok());
  const std::string header = "Bearer " + issued->token;
  const auto last_use = [&c, &issued] {
    return c.store.Snapshot().tokens.at(issued->row.id).last_used_unix;
  };
  CHECK_FALSE(last_use().has_value());
  REQUIRE(c.As(header).ok());
  CHECK(last_use() == kStart);
  CHECK(c.store.Calls("TouchToken") == 1);
  c.now = kStart + 59;
  REQUIRE(c.As(header).ok());
  REQUIRE(c.As(header).ok());
  CHECK(c.store.Calls("TouchToken") == 1);
  CHECK(last_use() == kStart);
  c.now = kStart + 60;
  REQUIRE(c.As(header).ok());
  CHECK(c.store.Calls("TouchToken") == 2);
  CHECK(last_use() == kStart + 60);
}

TEST_CASE("auth: a store failure while looking up a managed token is the store's, not a 401") {
  Clocked c;
  c.store.SetDown(true);
  Outcome<Principal> who = c.As("Bearer tmt_abcdefgh23_secret");
  REQUIRE_FALSE(who.ok());
  CHECK(who.failure().reason != kUnauthorized);
  // The environment's tokens still work.
  CHECK(c.As("Bearer admin-secret").ok());
}

TEST_CASE("auth: token lifetimes") {
  CHECK(ParseTokenTtl("30d") == std::chrono::hours(24 * 30));
  CHECK(ParseTokenTtl("12h") == std::chrono::hours(12));
  CHECK(ParseTokenTtl("90m") == std::chrono::minutes(90));
  CHECK(ParseTokenTtl("7d12h") == std::chrono::hours(24 * 7 + 12));
  CHECK(ParseTokenTtl("1m") == std::chrono::minutes(1));
  CHECK(ParseTokenTtl("3650d") == std::chrono::hours(24 * 3650));
  for (const char* bad : {"", "0", "30s", "59s", "3651d", "d", "-1d", "1x", "30 d", "1d1d", "h"}) {
    CAPTURE(bad);
    CHECK_FALSE(ParseTokenTtl(bad).has_value());
  }
}

TEST_CASE("auth: the token request") {
  Outcome<TokenRequest> full =
      ParseTokenRequest(R"({"role":"admin","ttl":"12h","description":"ci deploy"})");
  REQUIRE(full.ok());
  CHECK(full->role == Role::kAdmin);
  CHECK(full->ttl == std::chrono::hours(12));
  CHECK(full->description == "ci deploy");
  Outcome<TokenRequest> minimal = ParseTokenRequest(R"({"role":"viewer"})");
  REQUIRE(minimal.ok());
  CHECK(minimal->ttl == std::chrono::hours(24 * 30));
  for (const char* bad :
       {"", "[]", R"({"ttl":"1h"})", R"({"role":"root"})", R"({"role":1})",
        R"({"role":"admin","ttl":1})", R"({"role":"admin","description":"a\nb"})",
        R"({"role":"admin","owner":"x"})"}) {
    CAPTURE(bad);
    Outcome<TokenRequest> parsed = ParseTokenRequest(bad);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.failure().reason == "BadRequest");
  }
  CHECK_FALSE(ParseTokenRequest(R"({"role":"admin","description":")" + std::string(201, 'x') +
                                R"("})")
                  .ok());
}

TEST_CASE("auth: the token JSON never shows the digest; the token only when given") {
  ApiToken row;
  row.id = "abcdefgh23";
  row.digest = crypto::Sha256Hex("tmt_abcdefgh23_x");
  row.role = "viewer";
  row.description = "d";
  row.created_unix = kStart;
  row.expires_unix = kStart + 60;
  const std::string listed = ApiTokenJson(row);
  CHECK(listed.find(row.digest) == std::string::npos);
  CHECK(listed.find("\"token\"") == std::string::npos);
  CHECK(listed.find("lastUsedAt") == std::string::npos);
  const std::string token = "tmt_abcdefgh23_x";
  CHECK(ApiTokenJson(row, &token).find(R"("token":"tmt_abcdefgh23_x")") != std::string::npos);
  row.last_used_unix = kStart + 1;
  row.revoked_unix = kStart + 2;
  CHECK(ApiTokenListJson({row}).find(R"("revokedAt":"2027-01-15T08:00:02Z")") !=
        std::string::npos);
}

}  // namespace tmaster::controller

namespace tmaster::controller {

TEST_CASE("auth: a runtime token is that product's runtime, and no other token is") {
  AuthOptions options{Secret(std::string("admin-secret")), Secret(std::string("read-secret"))};
  options.runtime_tokens = {{"erp", Secret(std::string("erp-runtime-secret"))},
                            {"shop", Secret(std::string("shop-runtime-secret"))},
                            {"empty", Secret(std::string())}};
  testing::FakeStore store;
  Authenticator auth(store, options, [] { return kStart; });
  const std::string erp_header = "Bearer erp-runtime-secret";
  Outcome<Principal> erp = auth.Authenticate(&erp_header);
  REQUIRE(erp.ok());
  CHECK(erp->role == Role::kRuntime);
  CHECK(erp->product == "erp");
  CHECK(erp->Describe() == "runtime:erp");
  const std::string shop_header = "Bearer shop-runtime-secret";
  CHECK(auth.Authenticate(&shop_header)->product == "shop");
  const std::string admin_header = "Bearer admin-secret";
  CHECK(auth.Authenticate(&admin_header)->product.empty());
  // An empty runtime token is no token: an empty bearer never matches it.
  const std::string empty_header = "Bearer ";
  CHECK_FALSE(auth.Authenticate(&empty_header).ok());
  const std::string near_header = "Bearer erp-runtime-secre";
  CHECK_FALSE(auth.Authenticate(&near_header).ok());
  CHECK(std::string(ToString(Role::kRuntime)) == "runtime");
  CHECK_FALSE(ParseRole("runtime").has_value());  // never a managed token's role
}

}  // namespace tmaster::controller
