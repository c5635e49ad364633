#pragma once

// The dashboard's users (`http.usersFile`; issue 14): people who log in with a name and a
// password, besides the admin and read tokens (controller/api/sessions.hpp). The file is YAML:
//
//   users:
//     - name: alice
//       hash: $argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash>   # or $2b$12$... (bcrypt)
//       role: admin                                          # or viewer
//
// Only hashes are kept: argon2id (PHC string form, verified with libargon2) or bcrypt (`$2b$`,
// `$2y$`, `$2a$`, verified with libxcrypt's crypt_r). The file is read strictly: an unknown key,
// a duplicate name, a hash of another form and a role other than admin or viewer are refused
// with file:line:column, and nothing of a refused file is used.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/outcome.hpp"
#include "controller/api/auth.hpp"

namespace tmaster::controller {

/// One user of the users file.
struct User {
  std::string name;  ///< 1 to 64 of `[A-Za-z0-9._@-]`
  std::string hash;  ///< argon2id or bcrypt, as written
  Role role = Role::kViewer;
};

/// Bounds a hash must be within, so that one verification costs a bounded time and memory
/// (docs/decisions.md, the status dashboard (issue 14)).
inline constexpr std::uint32_t kMaxArgon2MemoryKiB = 1U << 20;  // 1 GiB
inline constexpr std::uint32_t kMaxArgon2Iterations = 64;
inline constexpr std::uint32_t kMaxArgon2Lanes = 16;
inline constexpr int kMinBcryptCost = 4;
inline constexpr int kMaxBcryptCost = 16;

/// True when `hash` is an argon2id hash (`$argon2id$v=19$m=M,t=T,p=P$salt$hash`, unpadded
/// base64, salt of at least 8 bytes and hash of at least 16, parameters within the bounds above)
/// or a bcrypt hash (`$2b$`, `$2y$` or `$2a$`, a two-digit cost within the bounds above, 53
/// characters of bcrypt's base64). `why` (when given) says what is wrong otherwise.
bool IsSupportedHash(std::string_view hash, std::string* why = nullptr);

/// True when `name` is a user name a users file may hold: 1 to 64 of `[A-Za-z0-9._@-]`.
bool IsUserName(std::string_view name);

/// True when `password` matches `hash` (IsSupportedHash). Takes the hash's whole cost whether
/// or not it matches; a malformed hash is false. bcrypt uses only the first 72 bytes.
bool VerifyHash(std::string_view hash, std::string_view password);

/// The users of one users file. Thread-safe once loaded.
class Users {
 public:
  /// Reads and strictly checks `file` (Stalled `InvalidUsersFile` with every problem, each as
  /// `file:line:column: field: message`, or the reason the file cannot be read). A file that
  /// group or others may write is refused (anyone could add an admin); one they may read is
  /// accepted with a warning (warnings()): hashes are made to survive being read, and a
  /// Kubernetes Secret volume is 0644 unless told otherwise.
  static Outcome<Users> Load(const std::filesystem::path& file);
  /// The same for `text`, named `file` in messages (no file mode to check).
  static Outcome<Users> Parse(std::string_view text, const std::string& file);

  /// The user named `name` when `password` matches its hash; nullopt otherwise. Takes the same
  /// time whether the name exists or not: an unknown name is verified against a hash made at
  /// load with the first user's algorithm and cost (so keep every user on one algorithm and
  /// cost). At most two verifications run at once (each may take an argon2id hash's memory);
  /// more wait their turn.
  [[nodiscard]] std::optional<User> Verify(std::string_view name, std::string_view password) const;

  /// The user named `name`, nullptr when none (no verification: for a session's later requests).
  [[nodiscard]] const User* Find(std::string_view name) const;

  [[nodiscard]] const std::vector<User>& users() const { return users_; }
  /// What Load accepted but the operator should hear about (a file others may read).
  [[nodiscard]] const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  struct Gate;

  std::vector<User> users_;
  std::string dummy_hash_;  // empty when there are no users
  std::vector<std::string> warnings_;
  std::shared_ptr<Gate> gate_;
};

}  // namespace tmaster::controller
