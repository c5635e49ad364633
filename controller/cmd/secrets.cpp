#include "controller/cmd/secrets.hpp"

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "common/pq/dsn.hpp"
#include "common/scrub.hpp"

namespace tmaster::controller {
namespace {

// The value, and when it is a DSN, the password inside it: a server or a tool may echo either.
Secret Registered(Secret secret) {
  RegisterProcessSecret(secret);
  if (std::optional<pq::DsnParts> dsn = pq::ParseDsn(secret)) {
    RegisterProcessSecret(dsn->password);
  }
  return secret;
}

}  // namespace

Outcome<Secret> ResolveSecret(const manifests::SecretRef& ref, std::string_view field) {
  const std::string where(field);
  if (!ref.env.empty()) {
    const char* value = std::getenv(ref.env.c_str());
    if (value == nullptr || *value == '\0') {
      return Failure::Stalled("SecretMissing", where + ": environment variable " + ref.env +
                                                   " is not set or empty");
    }
    return Registered(Secret(value));
  }
  if (!ref.file.empty()) {
    std::ifstream in(ref.file, std::ios::binary);
    if (!in) {
      return Failure::Stalled("SecretMissing",
                              where + ": cannot read secret file " + ref.file.string());
    }
    std::ostringstream text;
    text << in.rdbuf();
    std::string value = text.str();
    while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
    if (value.empty()) {
      return Failure::Stalled("SecretMissing", where + ": secret file " + ref.file.string() +
                                                   " is empty");
    }
    return Registered(Secret(std::move(value)));
  }
  return Failure::Stalled("SecretMissing", where + ": no *Env or *File key given");
}

}  // namespace tmaster::controller
