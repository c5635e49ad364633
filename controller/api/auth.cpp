#include "controller/api/auth.hpp"

#include <boost/json.hpp>

#include <cctype>
#include <charconv>
#include <utility>

#include "common/crypto.hpp"
#include "common/scrub.hpp"
#include "common/time.hpp"
#include "manifests/config.hpp"

namespace tmaster::controller {
namespace {

namespace json = boost::json;

constexpr std::string_view kTokenPrefix = "tmt_";
constexpr std::size_t kIdLength = 10;
constexpr std::string_view kBase32 = "abcdefghijklmnopqrstuvwxyz234567";
constexpr std::size_t kSecretBytes = 32;
// A managed token's last use is written at most this often (docs/api.md#authentication).
constexpr std::int64_t kTouchEverySeconds = 60;
constexpr std::size_t kMaxDescriptionBytes = 200;
constexpr std::chrono::seconds kDefaultTtl{std::int64_t{30} * 24 * 3600};
// An id drawn twice (1 in 2^50 per pair) is drawn again.
constexpr int kIssueAttempts = 3;

Failure Refused(std::string message) {
  return Failure::Stalled(std::string(kUnauthorized), std::move(message));
}

Failure BadRequest(std::string message) {
  return Failure::Stalled("BadRequest", std::move(message));
}

// The token of `Authorization: Bearer <token>` (scheme case-insensitive, RFC 7235), nullopt when
// the header is something else.
std::optional<std::string_view> BearerToken(std::string_view header) {
  constexpr std::string_view kScheme = "bearer";
  if (header.size() <= kScheme.size()) return std::nullopt;
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != kScheme[i]) return std::nullopt;
  }
  std::string_view rest = header.substr(kScheme.size());
  if (rest.front() != ' ') return std::nullopt;
  const std::size_t start = rest.find_first_not_of(' ');
  if (start == std::string_view::npos) return std::nullopt;
  rest = rest.substr(start);
  const std::size_t end = rest.find_last_not_of(' ');
  return rest.substr(0, end + 1);
}

// The id of a managed token `tmt_<id>_<secret>`, nullopt when `token` is not shaped like one.
std::optional<std::string> ManagedId(std::string_view token) {
  if (token.size() <= kTokenPrefix.size() + kIdLength + 1 ||
      token.substr(0, kTokenPrefix.size()) != kTokenPrefix ||
      token[kTokenPrefix.size() + kIdLength] != '_') {
    return std::nullopt;
  }
  const std::string_view id = token.substr(kTokenPrefix.size(), kIdLength);
  if (id.find_first_not_of(kBase32) != std::string_view::npos) return std::nullopt;
  return std::string(id);
}

std::string NewId() {
  const std::string random = crypto::RandomBytes(kIdLength);
  std::string id;
  id.reserve(kIdLength);
  // 256 is a multiple of 32: the low five bits of a uniform byte are uniform.
  for (const char byte : random) id += kBase32[static_cast<unsigned char>(byte) & 31U];
  return id;
}

}  // namespace

const char* ToString(Role role) {
  switch (role) {
    case Role::kAdmin:
      return "admin";
    case Role::kTraefik:
      return "traefik";
    case Role::kRuntime:
      return "runtime";
    case Role::kViewer:
      break;
  }
  return "viewer";
}

std::optional<Role> ParseRole(std::string_view text) {
  if (text == "admin") return Role::kAdmin;
  if (text == "viewer") return Role::kViewer;
  return std::nullopt;
}

std::string Principal::Describe() const {
  if (description.empty()) return id;
  return id + " (" + description + ")";
}

Authenticator::Authenticator(Store& store, const AuthOptions& options,
                             std::function<std::int64_t()> now_unix)
    : store_(store), now_unix_(std::move(now_unix)) {
  has_admin_ = !options.admin_token.Empty();
  has_read_ = !options.read_token.Empty();
  // Digests even of an absent token: every comparison below is of two 64-character digests.
  admin_digest_ = crypto::Sha256Hex(has_admin_ ? options.admin_token.Reveal() : std::string());
  read_digest_ = crypto::Sha256Hex(has_read_ ? options.read_token.Reveal() : std::string());
  has_traefik_ = !options.traefik_token.Empty();
  traefik_digest_ =
      crypto::Sha256Hex(has_traefik_ ? options.traefik_token.Reveal() : std::string());
  for (const auto& [product, token] : options.runtime_tokens) {
    if (!token.Empty()) runtime_digests_.emplace_back(product, crypto::Sha256Hex(token.Reveal()));
  }
}

std::int64_t Authenticator::Now() const {
  return now_unix_ ? now_unix_() : UnixNow();
}

Outcome<Principal> Authenticator::Authenticate(const std::string* authorization) {
  if (authorization == nullptr) {
    if (open()) return Principal{"anonymous", "", Role::kAdmin};
    return Refused("a bearer token is required (Authorization: Bearer <token>)");
  }
  const std::optional<std::string_view> token = BearerToken(*authorization);
  if (!token) return Refused("the Authorization header must be \"Bearer <token>\"");
  const std::string digest = crypto::Sha256Hex(*token);
  // Both compared, in constant time, whatever the first said.
  const bool admin = crypto::ConstantTimeEqual(digest, admin_digest_) && has_admin_;
  const bool read = crypto::ConstantTimeEqual(digest, read_digest_) && has_read_;
  const bool traefik = crypto::ConstantTimeEqual(digest, traefik_digest_) && has_traefik_;
  // Every runtime's digest compared too, so the time taken does not say which one matched.
  const std::string* runtime = nullptr;
  for (const auto& [product, runtime_digest] : runtime_digests_) {
    if (crypto::ConstantTimeEqual(digest, runtime_digest) && runtime == nullptr) runtime = &product;
  }
  if (admin) return Principal{"env:admin", "", Role::kAdmin};
  if (read) return Principal{"env:read", "", Role::kViewer};
  if (traefik) return Principal{"env:traefik", "", Role::kTraefik};
  if (runtime != nullptr) return Principal{"runtime:" + *runtime, "", Role::kRuntime, *runtime};
  const std::optional<std::string> id = ManagedId(*token);
  if (!id) return Refused("unknown token");
  Outcome<std::optional<ApiToken>> found = store_.FindToken(*id);
  if (!found) return found.failure();
  // The digest is compared before anything of the row is told: only the token's holder learns
  // that it expired or was revoked.
  if (!found->has_value() || !crypto::ConstantTimeEqual(digest, (*found)->digest)) {
    return Refused("unknown token");
  }
  const ApiToken& row = **found;
  const std::int64_t now = Now();
  if (row.revoked_unix) return Refused("token " + row.id + " was revoked");
  if (now >= row.expires_unix) {
    return Refused("token " + row.id + " expired at " + FormatRfc3339Utc(row.expires_unix));
  }
  const std::optional<Role> role = ParseRole(row.role);
  if (!role) return Refused("token " + row.id + " has no valid role");
  if (!row.last_used_unix || now - *row.last_used_unix >= kTouchEverySeconds) {
    (void)store_.TouchToken(row.id, now);  // the last use is a hint; the request stands
  }
  return Principal{"token:" + row.id, row.description, *role};
}

Outcome<IssuedToken> Authenticator::Issue(Role role, std::chrono::seconds ttl,
                                          const std::string& description) {
  for (int attempt = 1;; ++attempt) {
    IssuedToken issued;
    issued.row.id = NewId();
    issued.token = std::string(kTokenPrefix) + issued.row.id + "_" +
                   crypto::Base64Url(crypto::RandomBytes(kSecretBytes));
    issued.row.digest = crypto::Sha256Hex(issued.token);
    issued.row.role = ToString(role);
    issued.row.description = description;
    issued.row.created_unix = Now();
    issued.row.expires_unix = issued.row.created_unix + ttl.count();
    Outcome<Done> created = store_.CreateToken(issued.row);
    if (created) return issued;
    if (created.failure().reason != "TokenExists" || attempt == kIssueAttempts) {
      return created.failure();
    }
  }
}

std::optional<std::chrono::seconds> ParseTokenTtl(std::string_view text) {
  std::int64_t days = 0;
  if (const std::size_t d = text.find('d'); d != std::string_view::npos) {
    const auto parsed = std::from_chars(text.data(), text.data() + d, days);
    if (d == 0 || parsed.ec != std::errc() || parsed.ptr != text.data() + d || days > 3650) {
      return std::nullopt;
    }
    text = text.substr(d + 1);
  }
  std::chrono::seconds rest{0};
  if (!text.empty()) {
    const std::optional<std::chrono::seconds> parsed = manifests::ParseDuration(text);
    if (!parsed || text == "0") return std::nullopt;
    rest = *parsed;
  }
  const std::chrono::seconds total = std::chrono::hours(24 * days) + rest;
  if (total < kMinTokenTtl || total > kMaxTokenTtl) return std::nullopt;
  return total;
}

Outcome<TokenRequest> ParseTokenRequest(std::string_view body) {
  boost::system::error_code ec;
  json::value parsed = json::parse(body, ec);
  if (ec || !parsed.is_object()) {
    return BadRequest("the body must be a JSON object {\"role\", \"ttl\", \"description\"}");
  }
  TokenRequest request;
  request.ttl = kDefaultTtl;
  bool has_role = false;
  for (const auto& [key, value] : parsed.as_object()) {
    if (key == "role") {
      const std::optional<Role> role =
          value.is_string() ? ParseRole(std::string_view(value.as_string())) : std::nullopt;
      if (!role) return BadRequest("role must be \"admin\" or \"viewer\"");
      request.role = *role;
      has_role = true;
    } else if (key == "ttl") {
      const std::optional<std::chrono::seconds> ttl =
          value.is_string() ? ParseTokenTtl(std::string_view(value.as_string())) : std::nullopt;
      if (!ttl) {
        return BadRequest("ttl must be a duration from 1m to 3650d such as \"30d\", \"12h\" or "
                          "\"7d12h\"");
      }
      request.ttl = *ttl;
    } else if (key == "description") {
      if (!value.is_string()) return BadRequest("description must be a string");
      const std::string_view text(value.as_string());
      if (text.size() > kMaxDescriptionBytes) {
        return BadRequest("description must be at most " + std::to_string(kMaxDescriptionBytes) +
                          " bytes");
      }
      for (const char c : text) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          return BadRequest("description must not contain control characters");
        }
      }
      request.description = std::string(text);
    } else {
      return BadRequest("unknown field \"" + std::string(key) + "\"");
    }
  }
  if (!has_role) return BadRequest("role is required (\"admin\" or \"viewer\")");
  return request;
}

namespace {

json::object TokenObject(const ApiToken& row) {
  json::object out;
  out["id"] = row.id;
  out["role"] = row.role;
  out["description"] = ScrubProcessSecrets(row.description);
  out["createdAt"] = FormatRfc3339Utc(row.created_unix);
  out["expiresAt"] = FormatRfc3339Utc(row.expires_unix);
  if (row.last_used_unix) out["lastUsedAt"] = FormatRfc3339Utc(*row.last_used_unix);
  if (row.revoked_unix) out["revokedAt"] = FormatRfc3339Utc(*row.revoked_unix);
  return out;
}

}  // namespace

std::string ApiTokenJson(const ApiToken& row, const std::string* token) {
  json::object out = TokenObject(row);
  if (token != nullptr) out["token"] = *token;
  return json::serialize(out);
}

std::string ApiTokenListJson(const std::vector<ApiToken>& rows) {
  json::array items;
  items.reserve(rows.size());
  for (const ApiToken& row : rows) items.emplace_back(TokenObject(row));
  return json::serialize(json::object{{"items", std::move(items)}});
}

}  // namespace tmaster::controller
