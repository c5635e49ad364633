// Password derivation (docs/architecture.md#postgresql-what-converged-means), the SCRAM-SHA-256
// verifier check, and the password memo, each against values computed independently of this code.

#include <doctest/doctest.h>

#include <set>
#include <string>

#include "common/crypto.hpp"
#include "reconcilers/postgres/desired.hpp"
#include "reconcilers/postgres/model.hpp"

namespace tmaster::postgres {
namespace {

std::string Decode64(std::string_view text) {
  std::string out;
  REQUIRE(crypto::Base64Decode(text, out));
  return out;
}

std::string Xor(const std::string& a, const std::string& b) {
  REQUIRE(a.size() == b.size());
  std::string out(a.size(), '\0');
  for (std::size_t i = 0; i < a.size(); ++i) {
    out[i] = static_cast<char>(static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]));
  }
  return out;
}

// The parts of `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`.
struct VerifierParts {
  std::string iterations, salt, stored_key, server_key;
};
VerifierParts Split(const std::string& verifier) {
  const std::string prefix = "SCRAM-SHA-256$";
  REQUIRE(verifier.rfind(prefix, 0) == 0);
  const std::string rest = verifier.substr(prefix.size());
  const auto colon1 = rest.find(':');
  const auto dollar = rest.find('$');
  const auto colon2 = rest.find(':', dollar);
  REQUIRE(colon1 != std::string::npos);
  REQUIRE(dollar != std::string::npos);
  REQUIRE(colon2 != std::string::npos);
  return {rest.substr(0, colon1), rest.substr(colon1 + 1, dollar - colon1 - 1),
          rest.substr(dollar + 1, colon2 - dollar - 1), rest.substr(colon2 + 1)};
}

TEST_CASE("DerivePassword matches an independent HMAC computation") {
  // Computed with OpenSSL and coreutils when this test was written:
  //   printf '%s' 'postgres/default/user_acme/0' |
  //     openssl dgst -sha256 -hmac 'test-master-key' -binary | basenc --base64url | tr -d '='
  CHECK(DerivePassword(Secret("test-master-key"), "default", "user_acme", 0).Reveal() ==
        "USXNgnvzJgCemyKBlAoB8SwIpNwc2PyJdXbfIH-wd7w");
  //   printf '%s' 'postgres/default/user_acme/1' | openssl dgst ... (same key)
  CHECK(DerivePassword(Secret("test-master-key"), "default", "user_acme", 1).Reveal() ==
        "EtV0Q5SSfMtd0GccEsBuVXmQn_xa41vetOyOO7A47aQ");
}

TEST_CASE("DerivePassword: every input changes the password; the output is URL-safe") {
  const Secret key("test-master-key");
  const std::set<std::string> passwords = {
      DerivePassword(key, "default", "user_acme", 0).Reveal(),
      DerivePassword(key, "eu-west", "user_acme", 0).Reveal(),
      DerivePassword(key, "default", "user_globex", 0).Reveal(),
      DerivePassword(key, "default", "user_acme", 1).Reveal(),
      DerivePassword(key, "default", "user_acme", 2).Reveal(),
      DerivePassword(Secret("another-master-key"), "default", "user_acme", 0).Reveal(),
      // The separators keep "a/b" + "c" apart from "a" + "b/c".
      DerivePassword(key, "default/user", "acme", 0).Reveal(),
  };
  CHECK(passwords.size() == 7);
  for (const auto& p : passwords) {
    CHECK(p.size() == 43);  // 32 bytes, base64url without padding
    CHECK(p.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") ==
          std::string::npos);
  }
  CHECK(DerivePassword(key, "default", "user_acme", 0) ==
        DerivePassword(key, "default", "user_acme", 0));
}

TEST_CASE("SCRAM-SHA-256: RFC 7677 test vector") {
  // RFC 7677 §3: user "user", password "pencil".
  const std::string salt = Decode64("W22ZaJ0SNY7soEsUEjb6gQ==");
  const std::string auth_message =
      "n=user,r=rOprNGfwEbeRWgbNEkqO,"
      "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
      "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";

  const std::string verifier = MakeScramVerifier(Secret("pencil"), salt, 4096);
  const VerifierParts parts = Split(verifier);
  CHECK(parts.iterations == "4096");
  CHECK(parts.salt == "W22ZaJ0SNY7soEsUEjb6gQ==");
  const std::string stored_key = Decode64(parts.stored_key);
  const std::string server_key = Decode64(parts.server_key);

  // The client side of the exchange, from the RFC's definitions (RFC 5802 §3).
  const std::string salted = crypto::Pbkdf2Sha256("pencil", salt, 4096);
  const std::string client_key = crypto::HmacSha256(salted, "Client Key");
  CHECK(crypto::Sha256(client_key) == stored_key);
  const std::string client_signature = crypto::HmacSha256(stored_key, auth_message);
  CHECK(crypto::Base64(Xor(client_key, client_signature)) ==
        "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
  CHECK(crypto::Base64(crypto::HmacSha256(server_key, auth_message)) ==
        "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");

  CHECK(ScramVerifierMatches(verifier, Secret("pencil")));
  CHECK_FALSE(ScramVerifierMatches(verifier, Secret("pencil ")));
  CHECK_FALSE(ScramVerifierMatches(verifier, Secret("Pencil")));
}

TEST_CASE("ScramVerifierMatches: verifiers stored by PostgreSQL 15") {
  // From `CREATE ROLE v1 PASSWORD 'pencil'` on a PostgreSQL 15 server
  // (password_encryption = scram-sha-256), then `SELECT rolpassword FROM pg_authid`.
  const std::string pencil =
      "SCRAM-SHA-256$4096:f1bLqYyuBjn+XeAqjlMMOQ==$5TyDVn1RXgwqHUQz+Cyr6m2x3PVket77PGTZPAZ36UE=:"
      "jy/Vxr1mvikmAZFIFpZUuAlEhASdd3I9iC6ABwfJ56w=";
  // ... and of a password shaped like the derived ones.
  const std::string derived_like =
      "SCRAM-SHA-256$4096:5IwWTRspv4Fu7tJ+APIz/g==$AamlY5vt4wDcJ2bcxfZIgRTvSJS/Mb1WSJCMidGzuOI=:"
      "KqmKe0NygOvrOoEVwLo3rq4Bch7MNo4Z2q9vl7YyS2w=";
  CHECK(ScramVerifierMatches(pencil, Secret("pencil")));
  CHECK_FALSE(ScramVerifierMatches(pencil, Secret("pencil2")));
  CHECK_FALSE(ScramVerifierMatches(pencil, Secret("")));
  CHECK(ScramVerifierMatches(derived_like, Secret("ABCdef-_0123456789xyzXYZ_abcdefghijklmnopqr")));
  CHECK_FALSE(ScramVerifierMatches(derived_like, Secret("pencil")));
}

TEST_CASE("ScramVerifierMatches: anything but a well-formed SCRAM verifier is no match") {
  const Secret pw("pencil");
  const std::string good = MakeScramVerifier(pw, "0123456789abcdef", 4096);
  REQUIRE(ScramVerifierMatches(good, pw));
  const VerifierParts p = Split(good);
  const auto make = [](const std::string& iter, const std::string& salt, const std::string& stored,
                       const std::string& server) {
    return "SCRAM-SHA-256$" + iter + ":" + salt + "$" + stored + ":" + server;
  };
  CHECK(ScramVerifierMatches(make(p.iterations, p.salt, p.stored_key, p.server_key), pw));

  CHECK_FALSE(ScramVerifierMatches("", pw));
  CHECK_FALSE(ScramVerifierMatches("pencil", pw));
  CHECK_FALSE(
      ScramVerifierMatches("md5" + crypto::Hex(crypto::Sha256("pencil")).substr(0, 32), pw));
  CHECK_FALSE(ScramVerifierMatches("SCRAM-SHA-256$", pw));
  CHECK_FALSE(ScramVerifierMatches(good.substr(0, good.size() - 5), pw));
  CHECK_FALSE(ScramVerifierMatches(make("0", p.salt, p.stored_key, p.server_key), pw));
  CHECK_FALSE(ScramVerifierMatches(make("-1", p.salt, p.stored_key, p.server_key), pw));
  CHECK_FALSE(ScramVerifierMatches(make("4096x", p.salt, p.stored_key, p.server_key), pw));
  CHECK_FALSE(ScramVerifierMatches(make("4095", p.salt, p.stored_key, p.server_key), pw));
  // A count no server would use is refused before any PBKDF2 work: without that bound this
  // line would spin for minutes, inside a planning step.
  CHECK_FALSE(ScramVerifierMatches(make("999999999", p.salt, p.stored_key, p.server_key), pw));
  CHECK_FALSE(ScramVerifierMatches(make("99999999999", p.salt, p.stored_key, p.server_key), pw));
  CHECK_FALSE(ScramVerifierMatches(make(p.iterations, "", p.stored_key, p.server_key), pw));
  CHECK_FALSE(ScramVerifierMatches(make(p.iterations, "!!!!", p.stored_key, p.server_key), pw));
  CHECK_FALSE(ScramVerifierMatches(make(p.iterations, p.salt, p.server_key, p.stored_key), pw));
  CHECK_FALSE(ScramVerifierMatches(make(p.iterations, p.salt, p.stored_key, p.stored_key), pw));
  CHECK_FALSE(ScramVerifierMatches(make(p.iterations, p.salt, "AAAA", p.server_key), pw));
  CHECK_FALSE(ScramVerifierMatches("SCRAM-SHA-1$" + good.substr(14), pw));
}

TEST_CASE("MakeScramVerifier: salt and iterations are kept; each salt gives another verifier") {
  const Secret pw("correct horse");
  const std::string a = MakeScramVerifier(pw, "salt-number-one!", 4096);
  const std::string b = MakeScramVerifier(pw, "salt-number-two!", 4096);
  const std::string c = MakeScramVerifier(pw, "salt-number-one!", 8192);
  CHECK(a != b);
  CHECK(a != c);
  CHECK(a == MakeScramVerifier(pw, "salt-number-one!", 4096));
  CHECK(Split(a).salt == crypto::Base64("salt-number-one!"));
  CHECK(Split(c).iterations == "8192");
  for (const auto& v : {a, b, c}) {
    CHECK(ScramVerifierMatches(v, pw));
    CHECK_FALSE(ScramVerifierMatches(v, Secret("correct horse battery")));
    CHECK(v.find(pw.Reveal()) == std::string::npos);
  }
}

TEST_CASE("PasswordMemo: keyed by the password, over the verifier") {
  const std::string verifier =
      "SCRAM-SHA-256$4096:f1bLqYyuBjn+XeAqjlMMOQ==$5TyDVn1RXgwqHUQz+Cyr6m2x3PVket77PGTZPAZ36UE=:"
      "jy/Vxr1mvikmAZFIFpZUuAlEhASdd3I9iC6ABwfJ56w=";
  // printf '%s' "$verifier" | openssl dgst -sha256 -hmac 'pencil'   (first 32 hex digits)
  CHECK(PasswordMemo(Secret("pencil"), verifier) == "b7e5c7bff311e518d6e5c11ed3c4ccf7");
  CHECK(PasswordMemo(Secret("pencil2"), verifier) != PasswordMemo(Secret("pencil"), verifier));
  CHECK(PasswordMemo(Secret("pencil"), verifier + "x") != PasswordMemo(Secret("pencil"), verifier));
  CHECK(PasswordMemo(Secret("pencil"), verifier).find("pencil") == std::string::npos);
}

}  // namespace
}  // namespace tmaster::postgres

namespace tmaster::postgres {

TEST_CASE("DeriveScramSalt: 16 bytes, stable, and different per cluster, role and rotation") {
  const Secret key("salt-test-master-key");
  const std::string salt = DeriveScramSalt(key, "default", "user_acme", 0);
  CHECK(salt.size() == 16);
  CHECK(salt == DeriveScramSalt(key, "default", "user_acme", 0));
  CHECK(salt == crypto::HmacSha256(key.Reveal(), "postgres-scram-salt/default/user_acme/0").substr(0, 16));
  const std::set<std::string> salts = {salt, DeriveScramSalt(key, "eu", "user_acme", 0),
                                       DeriveScramSalt(key, "default", "user_other", 0),
                                       DeriveScramSalt(key, "default", "user_acme", 1),
                                       DeriveScramSalt(Secret("another-master-key"), "default",
                                                       "user_acme", 0)};
  CHECK(salts.size() == 5);
}

TEST_CASE("The role's password actions carry the derived salt (its verifier is reproducible)") {
  manifests::Product product;
  product.name = "erp";
  manifests::Workspace workspace;
  workspace.name = "acme";
  workspace.product = "erp";
  workspace.database.name = "tenant_acme";
  workspace.database.owner = "user_acme";
  workspace.database.password_rotation = 2;
  const Secret key("salt-test-master-key");
  const DesiredTenant desired = BuildDesired(workspace, product, {}, key);
  CHECK(desired.scram_salt == DeriveScramSalt(key, "default", "user_acme", 2));
  ObservedCluster observed;
  observed.passwords_visible = true;
  const Plan plan = MakePlan(desired, observed);
  bool found = false;
  for (const Action& action : plan.actions) {
    if (const auto* create = std::get_if<CreateRole>(&action)) {
      CHECK(create->salt == desired.scram_salt);
      found = true;
    }
  }
  CHECK(found);
}

}  // namespace tmaster::postgres
