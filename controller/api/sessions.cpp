#include "controller/api/sessions.hpp"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "common/crypto.hpp"
#include "common/time.hpp"
#include "controller/api/rate_limit.hpp"

namespace tmaster::controller {
namespace {

constexpr std::size_t kSessionBytes = 32;
constexpr std::size_t kCookieChars = 43;  // base64url of 32 bytes, unpadded
constexpr std::string_view kBase64Url =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr std::string_view kCsrfLabel = "tenant-master dashboard csrf v1";
constexpr std::string_view kCredentialLabel = "tenant-master session credential v1\n";
constexpr std::string_view kUserPrefix = "user:";
constexpr std::string_view kTokenPrincipalPrefix = "token:";
constexpr std::size_t kMaxQuotedNameBytes = 64;
// A session's last request is written at most this often (as a managed token's last use).
constexpr std::int64_t kSessionTouchEverySeconds = 60;
// Longer secrets are refused unread: no token or password of ours is this long.
constexpr std::size_t kMaxSecretBytes = 4096;

Failure NoSession(std::string message) {
  return Failure::Stalled(std::string(kUnauthorized), std::move(message));
}

// What a session remembers of the credential it was opened with: a digest that names it without
// giving it away (of a token, or of a user's hash), compared again at every Lookup.
std::string CredentialDigest(std::string_view material) {
  return crypto::Sha256Hex(std::string(kCredentialLabel) + std::string(material));
}

std::string CsrfOf(std::string_view cookie) {
  return crypto::Base64Url(crypto::HmacSha256(cookie, kCsrfLabel));
}

bool IsCookieValue(std::string_view cookie) {
  return cookie.size() == kCookieChars &&
         cookie.find_first_not_of(kBase64Url) == std::string_view::npos;
}

// `"name"` for an event: printable ASCII only (anything else as \xNN), cut to 64 bytes. A name
// is what someone typed; it is named, the secret never is.
std::string QuoteName(std::string_view name) {
  std::string out = "\"";
  for (const char c : name.substr(0, kMaxQuotedNameBytes)) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte >= 0x7f || c == '"' || c == '\\') {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      out += escaped;
    } else {
      out += c;
    }
  }
  if (name.size() > kMaxQuotedNameBytes) out += "...";
  return out + "\"";
}

std::string Attempted(const LoginRequest& request) {
  return request.name.empty() ? std::string("a token") : "user " + QuoteName(request.name);
}

}  // namespace

Sessions::Sessions(Store& store, Authenticator& authenticator, const AuthOptions& tokens,
                   const Users* users, SessionOptions options,
                   std::function<std::int64_t()> now_unix)
    : store_(store),
      authenticator_(authenticator),
      users_(users),
      options_(options),
      now_unix_(std::move(now_unix)) {
  if (!tokens.admin_token.Empty())
    admin_credential_ = CredentialDigest(tokens.admin_token.Reveal());
  if (!tokens.read_token.Empty()) read_credential_ = CredentialDigest(tokens.read_token.Reveal());
}

std::int64_t Sessions::Now() const {
  return now_unix_ ? now_unix_() : UnixNow();
}

void Sessions::Record(std::string_view type, std::string_view reason, std::string message) {
  Event event;
  event.workspace = std::string(kSessionsEventWorkspace);
  event.type = std::string(type);
  event.reason = std::string(reason);
  event.message = std::move(message);
  event.at_unix = Now();
  (void)store_.AppendEvent(event);  // the login's answer stands without its event
}

Outcome<std::optional<Sessions::Verified>> Sessions::Verify(const LoginRequest& request) {
  const std::optional<Verified> refused;
  if (request.secret.empty() || request.secret.size() > kMaxSecretBytes) return refused;
  if (request.name.empty()) {
    const std::string header = "Bearer " + request.secret;
    Outcome<Principal> found = authenticator_.Authenticate(&header);
    if (!found) {
      if (found.failure().reason != kUnauthorized) return found.failure();  // the store's
      return refused;
    }
    // Traefik's and the runtimes' tokens read one route each; they open no dashboard.
    if (found->role != Role::kAdmin && found->role != Role::kViewer) return refused;
    return std::optional<Verified>(Verified{*found, CredentialDigest(request.secret)});
  }
  if (users_ == nullptr) return refused;
  std::optional<User> user = users_->Verify(request.name, request.secret);
  if (!user) return refused;
  return std::optional<Verified>(
      Verified{Principal{std::string(kUserPrefix) + user->name, "", user->role},
               CredentialDigest(user->hash)});
}

Outcome<NewSession> Sessions::Login(const LoginRequest& request, std::int64_t* retry_after) {
  const std::int64_t now = Now();
  const std::string address = AddressKey(request.remote_address);
  std::vector<std::pair<std::string, const LoginLimit*>> keys = {
      {"addr:" + address, &options_.address_limit}};
  // Only a name a users file could hold gets a counter, so no key holds bytes PostgreSQL's text
  // refuses or grows without bound.
  if (IsUserName(request.name)) {
    keys.emplace_back(std::string(kUserPrefix) + request.name, &options_.user_limit);
  }
  std::int64_t locked_until = 0;
  for (const auto& [key, limit] : keys) {
    Outcome<std::optional<LoginFailure>> counter = store_.FindLoginFailure(key);
    if (!counter) return counter.failure();
    if (*counter && (*counter)->Locked(now)) {
      locked_until = std::max(locked_until, *(*counter)->locked_until_unix);
    }
  }
  if (locked_until > 0) {
    const std::int64_t wait = std::max<std::int64_t>(locked_until - now, 1);
    if (retry_after != nullptr) *retry_after = wait;
    Record("Warning", "LoginThrottled",
           "login as " + Attempted(request) + " from " + address +
               " refused unchecked: too many failed logins, locked until " +
               FormatRfc3339Utc(locked_until));
    return Failure::Stalled(std::string(kTooManyAttempts),
                            "too many failed logins: try again in " + std::to_string(wait) + "s");
  }

  Outcome<std::optional<Verified>> verified = Verify(request);
  if (!verified) return verified.failure();
  if (!verified->has_value()) {
    std::string locks;
    for (const auto& [key, limit] : keys) {
      Outcome<LoginFailure> counted = store_.RecordLoginFailure(key, now, *limit);
      if (!counted) return counted.failure();
      if (counted->Locked(now) && counted->window_start_unix == now && counted->count == 0) {
        locks += "; " + std::string(key.substr(0, key.find(':'))) + " locked until " +
                 FormatRfc3339Utc(*counted->locked_until_unix);
      }
    }
    Record("Warning", "LoginFailed",
           "login as " + Attempted(request) + " from " + address + " failed" + locks);
    return NoSession(request.name.empty() ? "unknown token" : "unknown user or wrong password");
  }

  const Principal principal = (*verified)->principal;
  if (keys.size() > 1) {
    if (auto cleared = store_.ClearLoginFailure(keys.back().first); !cleared) {
      return cleared.failure();
    }
  }
  NewSession session;
  session.cookie = crypto::Base64Url(crypto::RandomBytes(kSessionBytes));
  session.csrf_token = CsrfOf(session.cookie);
  session.expires_unix = now + options_.ttl.count();
  session.principal = principal;
  StoredSession row;
  row.id = crypto::Sha256Hex(session.cookie);
  row.principal_id = principal.id;
  row.role = ToString(principal.role);
  row.description = principal.description;
  row.csrf_digest = crypto::Sha256Hex(session.csrf_token);
  row.credential_digest = (*verified)->credential_digest;
  row.created_unix = now;
  row.expires_unix = session.expires_unix;
  row.last_seen_unix = now;
  if (auto created = store_.CreateSession(row); !created) return created.failure();
  Record("Normal", "LoginSucceeded",
         principal.Describe() + " (" + ToString(principal.role) + ") logged in from " + address +
             "; session until " + FormatRfc3339Utc(session.expires_unix));
  return session;
}

Outcome<Principal> Sessions::CheckPrincipal(const StoredSession& session) {
  const std::optional<Role> role = ParseRole(session.role);
  if (!role) return NoSession("the session has no valid role");
  const std::string_view id = session.principal_id;
  if (id.substr(0, kUserPrefix.size()) == kUserPrefix) {
    const User* user = users_ == nullptr ? nullptr : users_->Find(id.substr(kUserPrefix.size()));
    if (user == nullptr) return NoSession("the session's user is no longer in the users file");
    if (user->role != *role) return NoSession("the session's user has another role now");
    if (!crypto::ConstantTimeEqual(CredentialDigest(user->hash), session.credential_digest)) {
      return NoSession("the session's user has another password now");
    }
  } else if (id == "env:admin" || id == "env:read") {
    const std::string& current = id == "env:admin" ? admin_credential_ : read_credential_;
    if (!crypto::ConstantTimeEqual(current, session.credential_digest)) {
      return NoSession("the token the session was opened with is no longer configured");
    }
  } else if (id.substr(0, kTokenPrincipalPrefix.size()) == kTokenPrincipalPrefix) {
    Outcome<std::optional<ApiToken>> token =
        store_.FindToken(std::string(id.substr(kTokenPrincipalPrefix.size())));
    if (!token) return token.failure();
    if (!token->has_value() || (*token)->revoked_unix || Now() >= (*token)->expires_unix) {
      return NoSession("the session's token was revoked or expired");
    }
  } else {
    return NoSession("the session has no known principal");
  }
  return Principal{session.principal_id, session.description, *role};
}

Outcome<SessionView> Sessions::Lookup(std::string_view cookie) {
  if (!IsCookieValue(cookie)) return NoSession("no session");
  Outcome<std::optional<StoredSession>> found = store_.FindSession(crypto::Sha256Hex(cookie));
  if (!found) return found.failure();
  if (!found->has_value()) return NoSession("no session");
  const StoredSession& session = **found;
  const std::int64_t now = Now();
  if (session.revoked_unix) return NoSession("the session was logged out");
  if (now >= session.expires_unix) return NoSession("the session expired");
  if (now - session.last_seen_unix >= options_.idle.count()) {
    return NoSession("the session was idle too long");
  }
  const std::string csrf = CsrfOf(cookie);
  if (!crypto::ConstantTimeEqual(crypto::Sha256Hex(csrf), session.csrf_digest)) {
    return NoSession("no session");
  }
  Outcome<Principal> principal = CheckPrincipal(session);
  if (!principal) return principal.failure();
  if (now - session.last_seen_unix >= kSessionTouchEverySeconds) {
    (void)store_.TouchSession(session.id, now);  // the last use is a hint; the request stands
  }
  return SessionView{*principal, csrf, session.expires_unix};
}

bool Sessions::CheckCsrf(const SessionView& session, std::string_view presented) {
  // Digests of both: equal lengths, so neither the length nor where they differ shows.
  return crypto::ConstantTimeEqual(crypto::Sha256(presented), crypto::Sha256(session.csrf_token));
}

Outcome<bool> Sessions::Logout(std::string_view cookie) {
  if (!IsCookieValue(cookie)) return false;
  const std::string id = crypto::Sha256Hex(cookie);
  Outcome<std::optional<StoredSession>> found = store_.FindSession(id);
  if (!found) return found.failure();
  if (!found->has_value()) return false;
  Outcome<bool> revoked = store_.RevokeSession(id, Now());
  if (!revoked) return revoked;
  if (*revoked) Record("Normal", "LoggedOut", (*found)->principal_id + " logged out");
  return revoked;
}

std::string SessionCookieName(bool secure) {
  return secure ? "__Host-tm_session" : "tm_session";
}

std::string SessionCookieHeader(std::string_view value, std::chrono::seconds max_age, bool secure) {
  std::string out = SessionCookieName(secure) + "=" + std::string(value) +
                    "; HttpOnly; SameSite=Strict; Path=/; Max-Age=" +
                    std::to_string(std::max<std::int64_t>(max_age.count(), 0));
  if (secure) out += "; Secure";
  return out;
}

}  // namespace tmaster::controller
