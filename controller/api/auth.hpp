#pragma once

// Who is calling the API (docs/api.md#authentication): the bearer tokens of the environment
// (`http.tokenEnv`/`tokenFile` admin, `http.readTokenEnv`/`readTokenFile` viewer) and the managed
// tokens of the store (`tmt_<id>_<secret>`, only their SHA-256 stored). The HTTP server asks
// Authenticate for every /api/v1 request and hands the Principal to the route, which names it in
// the events of its writes (Principal::Describe).
//
// Timing: every comparison of a presented token is between two SHA-256 digests of the same
// length, by crypto::ConstantTimeEqual (Authenticator::Authenticate), so neither where a guess
// differs nor its length shows in the answer's time. A managed token is looked up in the store on
// every request (no cache): an expired or revoked token is refused at once, on every replica.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/outcome.hpp"
#include "common/secret.hpp"
#include "controller/store/store.hpp"

namespace tmaster::controller {

/// kTraefik: the token of `routing.tokenEnv`, which may read `GET /api/v1/traefik` and nothing else
/// (never a managed token's role). kRuntime: the token of `runtimes.<product>.tokenEnv`, which may
/// read `GET /api/v1/runtimes/<product>/tenants` and nothing else (docs/bindings.md#runtime-api).
enum class Role { kViewer, kAdmin, kTraefik, kRuntime };

/// "viewer", "admin", "traefik" or "runtime" (the store's and the API's spelling).
const char* ToString(Role role);
/// "viewer" / "admin"; nullopt for anything else.
std::optional<Role> ParseRole(std::string_view text);

/// Who made a request.
struct Principal {
  /// `env:admin`, `env:read`, `env:traefik`, `token:<id>`, or `anonymous` (no token configured,
  /// loopback only).
  std::string id;
  /// A managed token's description; empty for the others.
  std::string description;
  Role role = Role::kViewer;
  /// kRuntime: the product whose runtime this is.
  std::string product = {};

  /// For events and logs: `token:<id> (<description>)` for a managed token with a description,
  /// else the id (`env:admin`, `env:read`, `anonymous`). Never a token.
  [[nodiscard]] std::string Describe() const;
};

/// The tokens from the environment, resolved by the main (controller/cmd/secrets.hpp). Empty:
/// not configured.
struct AuthOptions {
  Secret admin_token;
  Secret read_token;
  /// `routing.tokenEnv`/`tokenFile`: Traefik's HTTP provider, for `GET /api/v1/traefik` only.
  Secret traefik_token{};
  /// `runtimes.<product>.tokenEnv`/`tokenFile`, by product.
  std::map<std::string, Secret> runtime_tokens{};
};

/// The reason of Authenticate's failure when the request is not authenticated (answered 401);
/// any other failure is the store's (answered 503).
inline constexpr std::string_view kUnauthorized = "Unauthorized";

/// A managed token just created: the whole token (shown once, never stored) and its row.
struct IssuedToken {
  std::string token;
  ApiToken row;
};

class Authenticator {
 public:
  /// `now_unix`: seconds since the epoch (unset: the system clock); tests pass their own.
  Authenticator(Store& store, const AuthOptions& options,
                std::function<std::int64_t()> now_unix = {});

  /// True when neither environment token is configured: a request without a token is then the
  /// admin `anonymous` (the server serves only on loopback; docs/api.md#authentication).
  [[nodiscard]] bool open() const { return !has_admin_ && !has_read_; }

  /// `authorization`: the request's `Authorization` header, nullptr when absent. Without one, an
  /// open server's `anonymous`; otherwise Stalled `Unauthorized` (no token, not `Bearer`, unknown,
  /// expired or revoked token; the message says which without repeating the token). A token
  /// presented to an open server is checked all the same. A managed token's last use is recorded
  /// at most once a minute; a failure to record it does not fail the request. A store failure
  /// while looking up a managed token is returned as it is.
  Outcome<Principal> Authenticate(const std::string* authorization);

  /// Creates and stores a managed token valid for `ttl` from now.
  Outcome<IssuedToken> Issue(Role role, std::chrono::seconds ttl, const std::string& description);

  /// Seconds since the epoch by this authenticator's clock.
  [[nodiscard]] std::int64_t Now() const;

 private:
  Store& store_;
  std::string admin_digest_;  // hex SHA-256 of the admin token; empty when none
  std::string read_digest_;
  std::string traefik_digest_;
  bool has_traefik_ = false;
  std::vector<std::pair<std::string, std::string>> runtime_digests_;  ///< product, hex SHA-256
  bool has_admin_ = false;
  bool has_read_ = false;
  std::function<std::int64_t()> now_unix_;
};

/// The shortest and longest lifetime of a managed token.
inline constexpr std::chrono::seconds kMinTokenTtl{60};
inline constexpr std::chrono::seconds kMaxTokenTtl{std::int64_t{3650} * 24 * 3600};

/// A token lifetime: `30d`, `12h`, `90m`, `1h30m`, `7d12h` (days, then the units of
/// manifests::ParseDuration). nullopt for anything else, or outside kMinTokenTtl..kMaxTokenTtl.
std::optional<std::chrono::seconds> ParseTokenTtl(std::string_view text);

/// The body of `POST /api/v1/tokens`.
struct TokenRequest {
  Role role = Role::kViewer;
  std::chrono::seconds ttl{0};
  std::string description;
};
/// Parses `{"role": "admin"|"viewer", "ttl": "30d", "description": "..."}` (ttl defaults to 30d,
/// description to empty; at most 200 bytes, no control characters; unknown fields refused).
/// Stalled `BadRequest` naming the field otherwise.
Outcome<TokenRequest> ParseTokenRequest(std::string_view body);

/// A token as the API shows it: `{id, role, description, createdAt, expiresAt, lastUsedAt?,
/// revokedAt?}`, plus `token` when `token` is given (the answer to its creation, the one time it
/// is shown). Never the digest.
std::string ApiTokenJson(const ApiToken& row, const std::string* token = nullptr);
/// `{"items": [ApiTokenJson...]}`.
std::string ApiTokenListJson(const std::vector<ApiToken>& rows);

}  // namespace tmaster::controller
