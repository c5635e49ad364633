#include "controller/api/users.hpp"

#include <argon2.h>
#include <crypt.h>
#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cstdio>
#include <fstream>
#include <map>
#include <semaphore>
#include <sstream>
#include <system_error>

#include "common/crypto.hpp"
#include "manifests/types.hpp"

namespace tmaster::controller {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kArgon2Prefix = "$argon2id$v=19$";
constexpr std::string_view kBase64 =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view kBcryptBase64 =
    "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
constexpr std::string_view kUserNameCharacters =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._@-";
constexpr std::size_t kMaxUserNameBytes = 64;
constexpr std::uintmax_t kMaxFileBytes = 1U << 20;
// Unpadded base64 of 8 and 16 bytes.
constexpr std::size_t kMinSaltChars = 11;
constexpr std::size_t kMinDigestChars = 22;
constexpr std::size_t kBcryptLength = 60;
constexpr std::size_t kDummyBytes = 16;
constexpr std::uint32_t kDummyDigestBytes = 32;
constexpr std::ptrdiff_t kMaxConcurrentVerifications = 2;

struct Argon2Params {
  std::uint32_t memory_kib = 0;
  std::uint32_t iterations = 0;
  std::uint32_t lanes = 0;
};

// A whole decimal number within 1..max, or nullopt.
std::optional<std::uint32_t> HashParameter(std::string_view text, std::uint32_t max) {
  std::uint32_t value = 0;
  const auto parsed = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || parsed.ec != std::errc() || parsed.ptr != text.data() + text.size() ||
      value == 0 || value > max) {
    return std::nullopt;
  }
  return value;
}

bool Explain(std::string* why, std::string message) {
  if (why != nullptr) *why = std::move(message);
  return false;
}

// `m=M,t=T,p=P` of an argon2id hash; nullopt (and `why`) when out of shape or bounds.
std::optional<Argon2Params> ParseArgon2(std::string_view hash, std::string* why) {
  if (hash.substr(0, kArgon2Prefix.size()) != kArgon2Prefix) {
    Explain(why, "an argon2id hash starts with $argon2id$v=19$");
    return std::nullopt;
  }
  std::string_view rest = hash.substr(kArgon2Prefix.size());
  std::vector<std::string_view> parts;
  for (std::size_t start = 0;;) {
    const std::size_t dollar = rest.find('$', start);
    parts.push_back(rest.substr(start, dollar - start));
    if (dollar == std::string_view::npos) break;
    start = dollar + 1;
  }
  if (parts.size() != 3) {
    Explain(why, "an argon2id hash is $argon2id$v=19$m=M,t=T,p=P$salt$hash");
    return std::nullopt;
  }
  Argon2Params params;
  std::string_view fields = parts[0];
  const std::string_view names[] = {"m=", "t=", "p="};
  const std::uint32_t maxima[] = {kMaxArgon2MemoryKiB, kMaxArgon2Iterations, kMaxArgon2Lanes};
  std::uint32_t* targets[] = {&params.memory_kib, &params.iterations, &params.lanes};
  for (int i = 0; i < 3; ++i) {
    const std::size_t comma = fields.find(',');
    const std::string_view field = fields.substr(0, comma);
    std::optional<std::uint32_t> value;
    if (field.substr(0, 2) == names[i]) value = HashParameter(field.substr(2), maxima[i]);
    if (!value || (i < 2) == (comma == std::string_view::npos)) {
      Explain(why, "argon2id parameters must be m=M,t=T,p=P with m at most " +
                       std::to_string(kMaxArgon2MemoryKiB) + " (KiB), t at most " +
                       std::to_string(kMaxArgon2Iterations) + ", p at most " +
                       std::to_string(kMaxArgon2Lanes));
      return std::nullopt;
    }
    *targets[i] = *value;
    fields = comma == std::string_view::npos ? std::string_view() : fields.substr(comma + 1);
  }
  if (params.memory_kib < 8 * params.lanes) {
    Explain(why, "argon2id needs m of at least 8 KiB per lane (p)");
    return std::nullopt;
  }
  const auto base64 = [](std::string_view text, std::size_t min) {
    return text.size() >= min && text.find_first_not_of(kBase64) == std::string_view::npos;
  };
  if (!base64(parts[1], kMinSaltChars) || !base64(parts[2], kMinDigestChars)) {
    Explain(why, "an argon2id salt (at least 8 bytes) and hash (at least 16) are unpadded base64");
    return std::nullopt;
  }
  return params;
}

bool IsBcrypt(std::string_view hash) {
  return hash.size() > 4 && hash.substr(0, 2) == "$2" &&
         (hash[2] == 'a' || hash[2] == 'b' || hash[2] == 'y') && hash[3] == '$';
}

// The cost of a bcrypt hash; nullopt (and `why`) when out of shape or bounds.
std::optional<int> ParseBcrypt(std::string_view hash, std::string* why) {
  const bool shaped = hash.size() == kBcryptLength && hash[6] == '$' &&
                      hash.substr(7).find_first_not_of(kBcryptBase64) == std::string_view::npos;
  std::optional<std::uint32_t> cost;
  if (shaped) cost = HashParameter(hash.substr(4, 2), kMaxBcryptCost);
  if (!shaped || !cost || *cost < kMinBcryptCost) {
    Explain(why, "a bcrypt hash is $2b$NN$ (NN between " + std::to_string(kMinBcryptCost) +
                     " and " + std::to_string(kMaxBcryptCost) +
                     ") and 53 characters of bcrypt's base64");
    return std::nullopt;
  }
  return static_cast<int>(*cost);
}

// A hash of a random password with the same algorithm and cost as `like`: what an unknown name
// is verified against. Empty when it cannot be made (then `like` is not a supported hash).
std::string DummyLike(std::string_view like) {
  const std::string password = crypto::RandomBytes(kDummyBytes);
  const std::string salt = crypto::RandomBytes(kDummyBytes);
  if (std::optional<Argon2Params> params = ParseArgon2(like, nullptr)) {
    std::string out(argon2_encodedlen(params->iterations, params->memory_kib, params->lanes,
                                      kDummyBytes, kDummyDigestBytes, Argon2_id),
                    '\0');
    if (argon2id_hash_encoded(params->iterations, params->memory_kib, params->lanes,
                              password.data(), password.size(), salt.data(), salt.size(),
                              kDummyDigestBytes, out.data(), out.size()) != ARGON2_OK) {
      return {};
    }
    out.resize(out.find('\0'));
    return out;
  }
  const std::optional<int> cost = ParseBcrypt(like, nullptr);
  if (!cost) return {};
  char setting[CRYPT_GENSALT_OUTPUT_SIZE] = {};
  if (crypt_gensalt_rn(std::string(like.substr(0, 4)).c_str(), static_cast<unsigned long>(*cost),
                       salt.data(), static_cast<int>(salt.size()), setting,
                       sizeof setting) == nullptr) {
    return {};
  }
  auto data = std::make_unique<crypt_data>();
  std::string phrase = crypto::Base64Url(password);  // no NUL byte inside
  const char* out = crypt_r(phrase.c_str(), setting, data.get());
  if (out == nullptr || out[0] == '*') return {};
  return out;
}

// `"text"`, control characters and quotes escaped, cut to 64 bytes: names come from a file.
std::string QuoteText(std::string_view text) {
  std::string out = "\"";
  for (const char c : text.substr(0, kMaxUserNameBytes)) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || byte == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      out += escaped;
    } else {
      out += c;
    }
  }
  if (text.size() > kMaxUserNameBytes) out += "...";
  return out + "\"";
}

// The problems of one users file, as `file:line:column: field: message`.
class Findings {
 public:
  explicit Findings(std::string file) : file_(std::move(file)) {}

  void Add(const YAML::Mark& mark, std::string field, std::string message) {
    manifests::Diagnostic diagnostic;
    diagnostic.where = {file_, mark.line + 1, mark.column + 1};
    diagnostic.field = std::move(field);
    diagnostic.message = std::move(message);
    lines_.push_back(diagnostic.Format());
  }
  [[nodiscard]] bool empty() const { return lines_.empty(); }
  [[nodiscard]] Failure ToFailure() const {
    std::string message;
    for (const std::string& line : lines_) message += (message.empty() ? "" : "\n") + line;
    return Failure::Stalled("InvalidUsersFile", message);
  }

 private:
  std::string file_;
  std::vector<std::string> lines_;
};

// The scalar text of `node`, or nullopt (and a finding) when it is not a non-empty scalar.
std::optional<std::string> ScalarText(const YAML::Node& node, const YAML::Mark& key_mark,
                                      const std::string& field, Findings& findings) {
  if (!node.IsScalar() || node.Scalar().empty()) {
    findings.Add(node.IsNull() ? key_mark : node.Mark(), field, "must be a non-empty string");
    return std::nullopt;
  }
  return node.Scalar();
}

std::optional<User> ReadUser(const YAML::Node& item, const std::string& path, Findings& findings) {
  if (!item.IsMap()) {
    findings.Add(item.Mark(), path, "must be an object {name, hash, role}");
    return std::nullopt;
  }
  std::map<std::string, std::pair<YAML::Node, YAML::Mark>> fields;
  for (auto it = item.begin(); it != item.end(); ++it) {
    const std::string key = it->first.IsScalar() ? it->first.Scalar() : std::string();
    if (key != "name" && key != "hash" && key != "role") {
      findings.Add(it->first.Mark(), path,
                   "unknown field " + QuoteText(key) + " (a user has name, hash and role)");
    } else if (!fields.emplace(key, std::make_pair(it->second, it->first.Mark())).second) {
      findings.Add(it->first.Mark(), path + "." + key, "duplicate field " + QuoteText(key));
    }
  }
  bool complete = true;
  for (const char* key : {"name", "hash", "role"}) {
    if (!fields.contains(key)) {
      findings.Add(item.Mark(), path + "." + key, "is required");
      complete = false;
    }
  }
  if (!complete) return std::nullopt;
  User user;
  const auto& [name_node, name_mark] = fields["name"];
  const auto& [hash_node, hash_mark] = fields["hash"];
  const auto& [role_node, role_mark] = fields["role"];
  std::optional<std::string> name = ScalarText(name_node, name_mark, path + ".name", findings);
  std::optional<std::string> hash = ScalarText(hash_node, hash_mark, path + ".hash", findings);
  std::optional<std::string> role = ScalarText(role_node, role_mark, path + ".role", findings);
  bool ok = name && hash && role;
  if (name && !IsUserName(*name)) {
    findings.Add(name_node.Mark(), path + ".name",
                 "must be 1 to 64 of A-Z a-z 0-9 . _ @ -, got " + QuoteText(*name));
    ok = false;
  }
  std::string why;
  if (hash && !IsSupportedHash(*hash, &why)) {
    // The hash itself is not repeated: it is a secret's digest.
    findings.Add(hash_node.Mark(), path + ".hash", "must be an argon2id or bcrypt hash: " + why);
    ok = false;
  }
  std::optional<Role> parsed_role;
  if (role) parsed_role = ParseRole(*role);
  if (role && !parsed_role) {
    findings.Add(role_node.Mark(), path + ".role",
                 "must be admin or viewer, got " + QuoteText(*role));
    ok = false;
  }
  if (!ok) return std::nullopt;
  return User{*name, *hash, *parsed_role};
}

}  // namespace

struct Users::Gate {
  std::counting_semaphore<kMaxConcurrentVerifications> slots{kMaxConcurrentVerifications};
};

bool IsSupportedHash(std::string_view hash, std::string* why) {
  if (hash.substr(0, 9) == "$argon2id") return ParseArgon2(hash, why).has_value();
  if (IsBcrypt(hash)) return ParseBcrypt(hash, why).has_value();
  return Explain(why, "the hash must start with $argon2id$ or $2b$, $2y$, $2a$");
}

bool VerifyHash(std::string_view hash, std::string_view password) {
  // crypt_r reads a C string: a password with a NUL byte would be cut there.
  if (password.find('\0') != std::string_view::npos) return false;
  const std::string encoded(hash);
  if (ParseArgon2(hash, nullptr)) {
    return argon2id_verify(encoded.c_str(), password.data(), password.size()) == ARGON2_OK;
  }
  if (!ParseBcrypt(hash, nullptr)) return false;
  auto data = std::make_unique<crypt_data>();
  const std::string phrase(password);
  const char* out = crypt_r(phrase.c_str(), encoded.c_str(), data.get());
  return out != nullptr && crypto::ConstantTimeEqual(out, encoded);
}

Outcome<Users> Users::Parse(std::string_view text, const std::string& file) {
  Findings findings(file);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& error) {
    findings.Add(error.mark, "", "not YAML: " + error.msg);
    return findings.ToFailure();
  }
  if (!root.IsMap()) {
    findings.Add(root.Mark(), "", "must be an object with the key users");
    return findings.ToFailure();
  }
  std::optional<YAML::Node> list;
  YAML::Mark list_mark;
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string key = it->first.IsScalar() ? it->first.Scalar() : std::string();
    if (key != "users") {
      findings.Add(it->first.Mark(), key, "unknown field " + QuoteText(key) + " (only users)");
    } else if (list) {
      findings.Add(it->first.Mark(), "users", "duplicate field \"users\"");
    } else {
      list = it->second;
      list_mark = it->first.Mark();
    }
  }
  if (!list) {
    findings.Add(root.Mark(), "users", "is required (a list of {name, hash, role})");
    return findings.ToFailure();
  }
  Users users;
  if (!list->IsSequence() && !list->IsNull()) {
    findings.Add(list->Mark(), "users", "must be a list of {name, hash, role}");
  }
  std::map<std::string, int> first_line;
  for (std::size_t i = 0; list->IsSequence() && i < list->size(); ++i) {
    const YAML::Node item = (*list)[i];
    const std::string path = "users[" + std::to_string(i) + "]";
    std::optional<User> user = ReadUser(item, path, findings);
    if (!user) continue;
    const int line = item.Mark().line + 1;
    if (auto [at, fresh] = first_line.emplace(user->name, line); !fresh) {
      findings.Add(item["name"].Mark(), path + ".name",
                   "duplicate user " + QuoteText(user->name) + " (first at line " +
                       std::to_string(at->second) + ")");
      continue;
    }
    users.users_.push_back(std::move(*user));
  }
  if (!findings.empty()) return findings.ToFailure();
  if (!users.users_.empty()) {
    users.dummy_hash_ = DummyLike(users.users_.front().hash);
    if (users.dummy_hash_.empty()) {
      return Failure::Stalled("InvalidUsersFile",
                              file + ": the first user's hash could not be reproduced");
    }
  }
  users.gate_ = std::make_shared<Gate>();
  return users;
}

Outcome<Users> Users::Load(const fs::path& file) {
  const auto refuse = [&](const std::string& why) {
    return Failure::Stalled("InvalidUsersFile", file.string() + ": " + why);
  };
  std::error_code ec;
  const fs::file_status status = fs::status(file, ec);
  if (ec || !fs::is_regular_file(status)) return refuse("cannot read it (a regular file)");
  const fs::perms perms = status.permissions();
  if ((perms & (fs::perms::group_write | fs::perms::others_write)) != fs::perms::none) {
    return refuse("group or others may write it (anyone could add an admin): chmod go-w");
  }
  const std::uintmax_t size = fs::file_size(file, ec);
  if (ec || size > kMaxFileBytes) return refuse("cannot read it, or it is over 1 MiB");
  std::ifstream in(file, std::ios::binary);
  if (!in.is_open()) return refuse("cannot read it");
  std::stringstream text;
  text << in.rdbuf();
  Outcome<Users> users = Parse(text.str(), file.string());
  if (!users) return users;
  if ((perms & (fs::perms::group_read | fs::perms::others_read)) != fs::perms::none) {
    users->warnings_.push_back(file.string() +
                               ": group or others may read the users file (its hashes): chmod "
                               "go-r, or a Secret volume's defaultMode 0400");
  }
  return users;
}

bool IsUserName(std::string_view name) {
  return !name.empty() && name.size() <= kMaxUserNameBytes &&
         name.find_first_not_of(kUserNameCharacters) == std::string_view::npos;
}

const User* Users::Find(std::string_view name) const {
  for (const User& user : users_) {
    if (user.name == name) return &user;
  }
  return nullptr;
}

std::optional<User> Users::Verify(std::string_view name, std::string_view password) const {
  if (dummy_hash_.empty()) return std::nullopt;  // no users: nothing to tell apart
  const User* user = Find(name);
  const std::string& hash = user != nullptr ? user->hash : dummy_hash_;
  gate_->slots.acquire();
  const bool matches = VerifyHash(hash, password);
  gate_->slots.release();
  if (user == nullptr || !matches) return std::nullopt;
  return *user;
}

}  // namespace tmaster::controller
