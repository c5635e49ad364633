#include "reconcilers/postgres/desired.hpp"

#include <algorithm>
#include <charconv>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/crypto.hpp"
#include "common/scrub.hpp"

namespace tmaster::postgres {
namespace {

constexpr std::string_view kScramPrefix = "SCRAM-SHA-256$";
constexpr std::size_t kScramKeyBytes = 32;
// A verifier is read from the server, and anyone with CREATEROLE can write one. Past this count
// we refuse to spend the PBKDF2 time in a pure planning step and call it drift instead: the
// password is then set again with the default count.
constexpr int kMaxScramIterations = 1'000'000;
constexpr std::size_t kStateDigestHexChars = 16;

struct ScramKeys {
  std::string stored_key;
  std::string server_key;
};

// RFC 5802 §3. PostgreSQL first applies SASLprep to the password; for the printable-ASCII
// passwords we derive (base64url) SASLprep is the identity, so it is left out here.
ScramKeys ComputeScramKeys(const Secret& password, std::string_view salt, int iterations) {
  const std::string salted = crypto::Pbkdf2Sha256(password.Reveal(), salt, iterations);
  const std::string client_key = crypto::HmacSha256(salted, "Client Key");
  return {crypto::Sha256(client_key), crypto::HmacSha256(salted, "Server Key")};
}

struct ParsedVerifier {
  int iterations = 0;
  std::string salt;
  std::string stored_key;
  std::string server_key;
};

std::optional<ParsedVerifier> ParseVerifier(std::string_view verifier) {
  if (!verifier.starts_with(kScramPrefix)) return std::nullopt;
  verifier.remove_prefix(kScramPrefix.size());
  // <iterations>:<salt>$<StoredKey>:<ServerKey>
  const auto colon1 = verifier.find(':');
  const auto dollar = verifier.find('$');
  if (colon1 == std::string_view::npos || dollar == std::string_view::npos || dollar < colon1) {
    return std::nullopt;
  }
  const auto colon2 = verifier.find(':', dollar);
  if (colon2 == std::string_view::npos) return std::nullopt;

  ParsedVerifier parsed;
  const std::string_view iter_text = verifier.substr(0, colon1);
  const auto [ptr, ec] =
      std::from_chars(iter_text.data(), iter_text.data() + iter_text.size(), parsed.iterations);
  if (ec != std::errc{} || ptr != iter_text.data() + iter_text.size()) return std::nullopt;
  if (parsed.iterations < 1 || parsed.iterations > kMaxScramIterations) return std::nullopt;

  if (!crypto::Base64Decode(verifier.substr(colon1 + 1, dollar - colon1 - 1), parsed.salt) ||
      !crypto::Base64Decode(verifier.substr(dollar + 1, colon2 - dollar - 1), parsed.stored_key) ||
      !crypto::Base64Decode(verifier.substr(colon2 + 1), parsed.server_key)) {
    return std::nullopt;
  }
  if (parsed.salt.empty() || parsed.stored_key.size() != kScramKeyBytes ||
      parsed.server_key.size() != kScramKeyBytes) {
    return std::nullopt;
  }
  return parsed;
}

std::string StateDigest(const std::vector<std::string>& extensions,
                        const std::vector<migrations::Migration>& migrations) {
  std::string text = "extensions=";
  for (const auto& extension : extensions) {
    text += extension;
    text += ',';
  }
  text += ";migrations=";
  text += migrations::SetDigest(migrations);
  return crypto::Sha256Hex(text).substr(0, kStateDigestHexChars);
}

}  // namespace

Secret MarkerKey(const Secret& master_key) {
  return Secret(crypto::HmacSha256(master_key.Reveal(), "tenant-master/marker/v1"));
}

Secret DerivePassword(const Secret& master_key, const std::string& cluster, const std::string& role,
                      int rotation) {
  const std::string info = "postgres/" + cluster + "/" + role + "/" + std::to_string(rotation);
  return Secret(crypto::Base64Url(crypto::HmacSha256(master_key.Reveal(), info)));
}

std::string DeriveScramSalt(const Secret& master_key, const std::string& cluster,
                            const std::string& role, int rotation) {
  constexpr std::size_t kSaltBytes = 16;
  const std::string info =
      "postgres-scram-salt/" + cluster + "/" + role + "/" + std::to_string(rotation);
  return crypto::HmacSha256(master_key.Reveal(), info).substr(0, kSaltBytes);
}

bool ScramVerifierMatches(std::string_view verifier, const Secret& password) {
  const auto parsed = ParseVerifier(verifier);
  if (!parsed) return false;
  const ScramKeys keys = ComputeScramKeys(password, parsed->salt, parsed->iterations);
  // Both comparisons run, so the time taken does not say which key differed.
  const bool stored_ok = crypto::ConstantTimeEqual(keys.stored_key, parsed->stored_key);
  const bool server_ok = crypto::ConstantTimeEqual(keys.server_key, parsed->server_key);
  return stored_ok && server_ok;
}

std::string MakeScramVerifier(const Secret& password, std::string_view salt, int iterations) {
  const ScramKeys keys = ComputeScramKeys(password, salt, iterations);
  return std::string(kScramPrefix) + std::to_string(iterations) + ":" + crypto::Base64(salt) + "$" +
         crypto::Base64(keys.stored_key) + ":" + crypto::Base64(keys.server_key);
}

DesiredTenant BuildDesired(const manifests::Workspace& workspace, const manifests::Product& product,
                           const std::vector<migrations::Migration>& product_migrations,
                           const Secret& master_key, AdoptPolicy adopt_policy) {
  DesiredTenant desired;
  desired.workspace = workspace.name;
  desired.product = workspace.product;
  desired.cluster = workspace.database.cluster;
  desired.database = workspace.database.name;
  desired.role = workspace.database.owner;
  desired.connection_limit = workspace.database.connection_limit;
  desired.suspend = workspace.suspend;
  desired.adopt = workspace.database.adopt;
  desired.adopt_policy = std::move(adopt_policy);
  desired.password = DerivePassword(master_key, desired.cluster, desired.role,
                                    workspace.database.password_rotation);
  // Every message leaving the process is scrubbed of it (docs/architecture.md#secrets).
  RegisterProcessSecret(desired.password);
  desired.scram_salt = DeriveScramSalt(master_key, desired.cluster, desired.role,
                                       workspace.database.password_rotation);
  desired.marker_key = MarkerKey(master_key);

  desired.extensions = product.extensions;
  desired.extensions.insert(desired.extensions.end(), workspace.database.extensions.begin(),
                            workspace.database.extensions.end());
  std::sort(desired.extensions.begin(), desired.extensions.end());
  desired.extensions.erase(std::unique(desired.extensions.begin(), desired.extensions.end()),
                           desired.extensions.end());

  desired.migrations = product_migrations;
  desired.ignore_missing_migrations = product.ignore_missing_migrations;
  desired.state_digest = StateDigest(desired.extensions, desired.migrations);
  return desired;
}

ReclaimTarget BuildReclaimTarget(const manifests::Workspace& workspace) {
  return {workspace.name, workspace.database.cluster, workspace.database.name,
          workspace.database.owner, workspace.database.reclaim_policy};
}

}  // namespace tmaster::postgres
