// The dashboard's logins and sessions (controller/api/sessions.hpp) with the in-memory store and
// a clock of the test's: token and user logins, the failed-login counters per address and per
// user (NextLoginFailure's arithmetic, locks that a flood of addresses cannot reset), events
// without the secret, expiry, idleness, logout, CSRF and the cookie.

#include <argon2.h>
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "controller/api/sessions.hpp"
#include "tests/support/fake_store.hpp"

namespace tmaster::controller {
namespace {

using testing::FakeStore;

constexpr std::int64_t kStart = 1'800'000'000;

std::string Argon2id(const std::string& password) {
  const std::string salt = "0123456789abcdef";
  char out[256] = {};
  REQUIRE(argon2id_hash_encoded(1, 64, 1, password.data(), password.size(), salt.data(),
                                salt.size(), 32, out, sizeof out) == ARGON2_OK);
  return out;
}

Users MakeUsers(const std::string& viewer_role = "viewer",
                const std::string& viewer_password = "b-pass") {
  Outcome<Users> users =
      Users::Parse("users:\n  - name: alice\n    hash: " + Argon2id("a-pass") +
                       "\n    role: admin\n  - name: bob\n    hash: " + Argon2id(viewer_password) +
                       "\n    role: " + viewer_role + "\n",
                   "users.yaml");
  REQUIRE_MESSAGE(users.ok(), (users.ok() ? "" : users.failure().message));
  return std::move(users).value();
}

struct World {
  FakeStore store;
  std::int64_t now = kStart;
  AuthOptions options{Secret(std::string("admin-secret")), Secret(std::string("read-secret")),
                      Secret(std::string("traefik-secret"))};
  Authenticator auth{store, options, [this] { return now; }};
  Users users = MakeUsers();
  Sessions sessions{store, auth, options, &users, SessionOptions{}, [this] { return now; }};

  Outcome<NewSession> Login(const std::string& name, const std::string& secret,
                            const std::string& address = "192.0.2.1",
                            std::int64_t* retry_after = nullptr) {
    return sessions.Login({name, secret, address}, retry_after);
  }
  std::vector<Event> Events() {
    std::vector<Event> out;
    for (const Event& event : store.Snapshot().events) {
      if (event.workspace == "api:sessions") out.push_back(event);
    }
    return out;
  }
};

// The message of a refusal, or "<accepted>": a wrong answer fails the check, never the run.
template <class T>
std::string Why(const Outcome<T>& outcome) {
  return outcome.ok() ? std::string("<accepted>") : outcome.failure().message;
}
template <class T>
std::string Reason(const Outcome<T>& outcome) {
  return outcome.ok() ? std::string("<accepted>") : outcome.failure().reason;
}

void CheckRefused(const Outcome<NewSession>& outcome, std::string_view reason = kUnauthorized) {
  REQUIRE_FALSE(outcome.ok());
  CHECK(outcome.failure().reason == reason);
}

}  // namespace

TEST_CASE(
    "NextLoginFailure: a window, a lock at the limit, doubled locks to a cap, forgotten after a "
    "day") {
  const LoginLimit limit{3, 300, 100, 350, 86'400};
  std::optional<LoginFailure> row;
  const auto fail = [&](std::int64_t at) {
    row = NextLoginFailure(row, "user:a", at, limit);
    return *row;
  };
  CHECK(fail(1000).count == 1);
  CHECK(fail(1100).count == 2);
  // The window (300 s from the first failure) ran out: the count starts again.
  CHECK(fail(1300).count == 1);
  CHECK(fail(1301).count == 2);
  LoginFailure locked = fail(1302);
  CHECK(locked.count == 0);
  CHECK(locked.locked_until_unix == 1402);
  CHECK(locked.lockouts == 1);
  CHECK(locked.Locked(1401));
  CHECK_FALSE(locked.Locked(1402));
  // A failure while locked changes nothing (the caller refuses it unchecked).
  CHECK(fail(1350) == locked);
  fail(1402);
  fail(1403);
  CHECK(fail(1404).locked_until_unix == 1404 + 200);
  fail(1700);
  fail(1701);
  CHECK(fail(1702).locked_until_unix == 1702 + 350);  // 400 capped at 350
  fail(2100);
  fail(2101);
  CHECK(fail(2102).locked_until_unix == 2102 + 350);
  CHECK(row->lockouts == 4);
  // A day without a failure: the next lock is the first again.
  fail(2102 + 86'400 + 400);
  fail(2102 + 86'400 + 401);
  LoginFailure fresh = fail(2102 + 86'400 + 402);
  CHECK(fresh.lockouts == 1);
  CHECK(fresh.locked_until_unix == 2102 + 86'400 + 402 + 100);
}

TEST_CASE(
    "Login with the admin or read token: a session; Lookup finds its principal and CSRF token") {
  World world;
  Outcome<NewSession> admin = world.Login("", "admin-secret");
  REQUIRE_MESSAGE(admin.ok(), (admin.ok() ? "" : admin.failure().message));
  CHECK(admin->cookie.size() == 43);
  CHECK(admin->principal.id == "env:admin");
  CHECK(admin->expires_unix == kStart + 12 * 3600);
  Outcome<SessionView> view = world.sessions.Lookup(admin->cookie);
  REQUIRE(view.ok());
  CHECK(view->principal.id == "env:admin");
  CHECK(view->principal.role == Role::kAdmin);
  CHECK(view->csrf_token == admin->csrf_token);
  CHECK(Sessions::CheckCsrf(*view, admin->csrf_token));
  CHECK_FALSE(Sessions::CheckCsrf(*view, admin->csrf_token.substr(1)));
  CHECK_FALSE(Sessions::CheckCsrf(*view, ""));

  Outcome<NewSession> read = world.Login("", "read-secret");
  REQUIRE(read.ok());
  CHECK(world.sessions.Lookup(read->cookie)->principal.role == Role::kViewer);
  CHECK(read->cookie != admin->cookie);
  CHECK(read->csrf_token != admin->csrf_token);
  // Each session's own CSRF token only.
  CHECK_FALSE(Sessions::CheckCsrf(*view, read->csrf_token));

  // The store keeps digests only: neither the cookie nor the CSRF token is in it.
  for (const auto& [id, row] : world.store.Snapshot().sessions) {
    CHECK(id != admin->cookie);
    CHECK(row.csrf_digest != admin->csrf_token);
  }
  CheckRefused(world.Login("", "traefik-secret"));  // Traefik's token opens no dashboard
  CHECK(Reason(world.sessions.Lookup("not-a-cookie")) == kUnauthorized);
  CHECK(Reason(world.sessions.Lookup(std::string(43, 'A'))) == kUnauthorized);
}

TEST_CASE(
    "Login with a user of the users file; every failure and success is an event without the "
    "secret") {
  World world;
  Outcome<NewSession> alice = world.Login("alice", "a-pass");
  REQUIRE(alice.ok());
  CHECK(alice->principal.id == "user:alice");
  CHECK(alice->principal.role == Role::kAdmin);
  CHECK(world.sessions.Lookup(alice->cookie)->principal.id == "user:alice");
  CheckRefused(world.Login("alice", "wrong-pass-123"));
  CheckRefused(world.Login("nobody", "wrong-pass-456"));
  CheckRefused(world.Login("", "wrong-token-789"));
  const std::vector<Event> events = world.Events();
  REQUIRE(events.size() == 4);
  CHECK(events[0].reason == "LoginSucceeded");
  CHECK(events[0].type == "Normal");
  CHECK(events[0].message.find("user:alice (admin) logged in from 192.0.2.1") != std::string::npos);
  for (std::size_t i = 1; i < 4; ++i) {
    CHECK(events[i].reason == "LoginFailed");
    CHECK(events[i].type == "Warning");
    CHECK(events[i].message.find("wrong-") == std::string::npos);
  }
  CHECK(events[1].message.find("user \"alice\" from 192.0.2.1") != std::string::npos);
  // A hostile name is printed escaped.
  CheckRefused(world.Login("x\n\"y", "pw"));
  CHECK(world.Events().back().message.find("user \"x\\x0a\\x22y\"") != std::string::npos);
}

TEST_CASE(
    "failed logins: five for one user from five addresses lock that user, even with the right "
    "password") {
  World world;
  for (int i = 0; i < 5; ++i) {
    world.now = kStart + i;
    CheckRefused(
        world.Login("alice", "guess-" + std::to_string(i), "198.51.100." + std::to_string(i)));
  }
  world.now = kStart + 10;
  std::int64_t retry_after = 0;
  CheckRefused(world.Login("alice", "a-pass", "203.0.113.9", &retry_after), kTooManyAttempts);
  CHECK(retry_after == 4 + 300 - 10);
  CHECK(world.Events().back().reason == "LoginThrottled");
  // Another user is not locked, nor are these addresses (each failed once).
  CHECK(world.Login("bob", "b-pass", "198.51.100.1").ok());
  // After the lock, the right password opens a session and forgets the user's count.
  world.now = kStart + 4 + 300;
  REQUIRE(world.Login("alice", "a-pass", "203.0.113.9").ok());
  CHECK_FALSE(world.store.Snapshot().login_failures.contains("user:alice"));
  // The count of locks went with the counter: five more failures lock it for 300 s again.
  for (int i = 0; i < 5; ++i) CheckRefused(world.Login("alice", "guess", "198.51.100.77"));
  CHECK(Reason(world.Login("alice", "a-pass", "203.0.113.9", &retry_after)) == kTooManyAttempts);
  CHECK(retry_after == 300);
}

TEST_CASE("failed logins: twenty from one address (one IPv6 /64) lock the address for every name") {
  World world;
  for (int i = 0; i < 20; ++i) {
    CheckRefused(
        world.Login("name" + std::to_string(i), "pw", "2001:db8:1:2::" + std::to_string(i + 1)));
  }
  std::int64_t retry_after = 0;
  CheckRefused(world.Login("alice", "a-pass", "2001:db8:1:2::ffff", &retry_after),
               kTooManyAttempts);
  CHECK(retry_after == 300);
  CheckRefused(world.Login("", "admin-secret", "2001:db8:1:2::5"), kTooManyAttempts);
  // Another /64 is not locked.
  CHECK(world.Login("alice", "a-pass", "2001:db8:1:3::1").ok());
  // No user got a counter beyond one failure: only the address stopped it.
  CHECK(world.store.Snapshot().login_failures.at("user:name0").count == 1);
  CHECK(world.store.Snapshot().login_failures.at("addr:2001:db8:1:2::/64").Locked(world.now));
}

TEST_CASE("failed logins: a store failure is returned as it is and counts nothing") {
  World world;
  world.store.FailNext(1);
  Outcome<NewSession> failed = world.Login("alice", "a-pass");
  REQUIRE_FALSE(failed.ok());
  CHECK(failed.failure().reason == "StoreUnavailable");
  CHECK(world.store.Snapshot().login_failures.empty());
}

TEST_CASE("sessions: expiry after the TTL, idleness, a request a minute keeps it alive, logout") {
  World world;
  Outcome<NewSession> session = world.Login("bob", "b-pass");
  REQUIRE(session.ok());
  // A request every 50 minutes for 11 hours: never idle for an hour.
  for (int i = 1; i <= 13; ++i) {
    world.now = kStart + i * 50 * 60;
    REQUIRE_MESSAGE(world.sessions.Lookup(session->cookie).ok(), "request ", i);
  }
  world.now = kStart + 12 * 3600;
  Outcome<SessionView> expired = world.sessions.Lookup(session->cookie);
  REQUIRE_FALSE(expired.ok());
  CHECK(expired.failure().message == "the session expired");

  Outcome<NewSession> idle = world.Login("bob", "b-pass");
  REQUIRE(idle.ok());
  world.now += 3600;
  CHECK(Why(world.sessions.Lookup(idle->cookie)) == "the session was idle too long");

  Outcome<NewSession> open = world.Login("bob", "b-pass");
  REQUIRE(open.ok());
  CHECK(*world.sessions.Logout(open->cookie));
  CHECK(Why(world.sessions.Lookup(open->cookie)) == "the session was logged out");
  CHECK_FALSE(*world.sessions.Logout(open->cookie));
  CHECK(world.Events().back().reason == "LoggedOut");
}

TEST_CASE(
    "sessions: a user removed from the users file, or given another role, loses its session") {
  World world;
  Outcome<NewSession> bob = world.Login("bob", "b-pass");
  REQUIRE(bob.ok());
  Users promoted = MakeUsers("admin");
  Sessions reloaded(world.store, world.auth, world.options, &promoted, SessionOptions{},
                    [&world] { return world.now; });
  CHECK(Why(reloaded.Lookup(bob->cookie)) == "the session's user has another role now");
  Sessions without(world.store, world.auth, world.options, nullptr, SessionOptions{},
                   [&world] { return world.now; });
  CHECK(Why(without.Lookup(bob->cookie)) == "the session's user is no longer in the users file");
  Users new_password = MakeUsers("viewer", "b-pass-2");
  Sessions changed(world.store, world.auth, world.options, &new_password, SessionOptions{},
                   [&world] { return world.now; });
  CHECK(Why(changed.Lookup(bob->cookie)) == "the session's user has another password now");
  CHECK(world.sessions.Lookup(bob->cookie).ok());  // the users it was opened with: still open
}

TEST_CASE("sessions: a session opened with the admin or read token ends when that token changes") {
  World world;
  Outcome<NewSession> admin = world.Login("", "admin-secret");
  Outcome<NewSession> read = world.Login("", "read-secret");
  REQUIRE(admin.ok());
  REQUIRE(read.ok());
  const AuthOptions rotated{Secret(std::string("admin-secret-2")),
                            Secret(std::string("read-secret"))};
  Sessions after(world.store, world.auth, rotated, &world.users, SessionOptions{},
                 [&world] { return world.now; });
  CHECK(Why(after.Lookup(admin->cookie)) ==
        "the token the session was opened with is no longer configured");
  CHECK(after.Lookup(read->cookie).ok());
  const AuthOptions admin_only{Secret(std::string("admin-secret")), Secret()};
  Sessions without_read(world.store, world.auth, admin_only, &world.users, SessionOptions{},
                        [&world] { return world.now; });
  CHECK(without_read.Lookup(admin->cookie).ok());
  CHECK(Why(without_read.Lookup(read->cookie)) ==
        "the token the session was opened with is no longer configured");
}

TEST_CASE("sessions: a managed token's session ends with the token") {
  World world;
  Outcome<IssuedToken> issued = world.auth.Issue(Role::kViewer, std::chrono::hours(1), "ci");
  REQUIRE(issued.ok());
  Outcome<NewSession> session = world.Login("", issued->token);
  REQUIRE(session.ok());
  CHECK(session->principal.id == "token:" + issued->row.id);
  REQUIRE(world.sessions.Lookup(session->cookie).ok());
  REQUIRE(*world.store.RevokeToken(issued->row.id, world.now));
  CHECK(Why(world.sessions.Lookup(session->cookie)) ==
        "the session's token was revoked or expired");
}

TEST_CASE(
    "SessionCookieHeader: HttpOnly, SameSite=Strict, Path=/, Max-Age, Secure and __Host- behind "
    "TLS") {
  CHECK(SessionCookieHeader("abc", std::chrono::hours(12), false) ==
        "tm_session=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200");
  CHECK(SessionCookieHeader("abc", std::chrono::seconds(60), true) ==
        "__Host-tm_session=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=60; Secure");
  CHECK(SessionCookieHeader("", std::chrono::seconds(0), true) ==
        "__Host-tm_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0; Secure");
}

}  // namespace tmaster::controller
