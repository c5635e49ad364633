#pragma once

// The dashboard's logins and sessions (issue 14), without HTTP: the HTTP layer reads a login
// form, calls Login, sets the cookie SessionCookieHeader gives, and on every later request calls
// Lookup with the cookie's value, and CheckCsrf on every state-changing one.
//
// Who may log in: the admin and read tokens and the managed tokens (controller/api/auth.hpp;
// name left empty, the token as the secret), and the users of `http.usersFile`
// (controller/api/users.hpp). Traefik's and the runtimes' tokens may not.
//
// Sessions are rows of the store (schema v7, tm_sessions): the cookie holds 32 random bytes
// (base64url), the store only their SHA-256, so a copy of the store opens no session. Every
// replica sees a logout at once. The CSRF token of a session is HMAC-SHA256(cookie value, a fixed
// label): the page gets it from Lookup, the store keeps only its SHA-256.
//
// Failed logins are counted in the store per address (`addr:<AddressKey>`) and per user
// (`user:<name>`), so neither a restart, nor another replica, nor a flood of addresses resets
// them (Argo CD's in-memory throttling was bypassed both ways: CVE-2024-21662, CVE-2024-21652).
// While either counter is locked, a login is refused without looking at its secret. Every failed
// and every successful login is an event on the workspace `api:sessions`, never with the secret.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/outcome.hpp"
#include "controller/api/auth.hpp"
#include "controller/api/users.hpp"
#include "controller/store/store.hpp"

namespace tmaster::controller {

/// 5 failures of one user within 5 minutes lock that user for 5 minutes, then 10, 20, 40, at
/// most 60 (the count of locks is forgotten after a day without a failure).
inline constexpr LoginLimit kUserLoginLimit{5, 300, 300, 3600, 86'400};
/// 20 failures from one address (an IPv6 /64) within 5 minutes lock it the same way.
inline constexpr LoginLimit kAddressLoginLimit{20, 300, 300, 3600, 86'400};

/// The workspace of the login events.
inline constexpr std::string_view kSessionsEventWorkspace = "api:sessions";
/// The reason of Login's failure while a counter is locked (answered 429 with Retry-After).
inline constexpr std::string_view kTooManyAttempts = "TooManyAttempts";

struct SessionOptions {
  std::chrono::seconds ttl{std::chrono::hours(12)};  ///< a session's whole life
  std::chrono::seconds idle{std::chrono::hours(1)};  ///< ended after this long without a request
  LoginLimit user_limit = kUserLoginLimit;
  LoginLimit address_limit = kAddressLoginLimit;
};

/// A login form's content. `name` empty: `secret` is a token.
struct LoginRequest {
  std::string name;
  std::string secret;
  std::string remote_address;  ///< the peer's address as the socket tells it
};

/// A session just opened.
struct NewSession {
  std::string cookie;      ///< the cookie's value (shown once, never stored)
  std::string csrf_token;  ///< for the page's state-changing requests
  std::int64_t expires_unix = 0;
  Principal principal;
};

/// An open session, as Lookup finds it.
struct SessionView {
  Principal principal;
  std::string csrf_token;
  std::int64_t expires_unix = 0;
};

class Sessions {
 public:
  /// `tokens`: the options `authenticator` was made with (a session opened with the admin or
  /// read token ends when that token is no longer the configured one). `users`: nullptr when no
  /// `http.usersFile` is configured (only tokens log in). `now_unix`: seconds since the epoch
  /// (unset: the system clock). The store, authenticator and users must outlive the Sessions.
  Sessions(Store& store, Authenticator& authenticator, const AuthOptions& tokens,
           const Users* users, SessionOptions options = {},
           std::function<std::int64_t()> now_unix = {});

  /// Opens a session. Stalled `Unauthorized` for a wrong name, password or token (the message
  /// never says which part was wrong, nor repeats the secret); Stalled `TooManyAttempts` while
  /// the address or the user is locked, with `*retry_after` (when given) set to the seconds left;
  /// a store failure as it is (nothing counted then). Each outcome but a store failure is an
  /// event on `api:sessions`.
  Outcome<NewSession> Login(const LoginRequest& request, std::int64_t* retry_after = nullptr);

  /// The session of a cookie's value. Stalled `Unauthorized` when there is none, or it was
  /// logged out, expired, idle longer than SessionOptions::idle, or its credential is gone (a
  /// user no longer in the users file, or with another role or hash; an admin or read token no
  /// longer the configured one; a managed token revoked or expired);
  /// a store failure as it is. Records the session's use at most once a minute.
  Outcome<SessionView> Lookup(std::string_view cookie);

  /// True when `presented` is the session's CSRF token (compared in constant time).
  [[nodiscard]] static bool CheckCsrf(const SessionView& session, std::string_view presented);

  /// Ends the session of a cookie's value (an event on `api:sessions`); false when there was no
  /// open session.
  Outcome<bool> Logout(std::string_view cookie);

 private:
  /// The principal of a login and the credential_digest of its session, when it succeeds.
  struct Verified {
    Principal principal;
    std::string credential_digest;
  };
  Outcome<std::optional<Verified>> Verify(const LoginRequest& request);
  Outcome<Principal> CheckPrincipal(const StoredSession& session);
  void Record(std::string_view type, std::string_view reason, std::string message);
  [[nodiscard]] std::int64_t Now() const;

  Store& store_;
  Authenticator& authenticator_;
  const Users* users_;
  std::string admin_credential_;  // empty when no admin token is configured
  std::string read_credential_;
  SessionOptions options_;
  std::function<std::int64_t()> now_unix_;
};

/// The session cookie's name: `__Host-tm_session` behind TLS (a browser then refuses it from
/// plain HTTP or another path or domain), `tm_session` otherwise.
std::string SessionCookieName(bool secure);

/// The `Set-Cookie` value of a session: `<name>=<value>; HttpOnly; SameSite=Strict; Path=/;
/// Max-Age=<seconds>`, then `; Secure` when `secure` (TLS). `max_age` 0 clears the cookie
/// (logout).
std::string SessionCookieHeader(std::string_view value, std::chrono::seconds max_age, bool secure);

}  // namespace tmaster::controller
