#include "controller/cli/connection.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include "common/text.hpp"

namespace tmaster::cli {
namespace {

struct ConfigFile {
  std::optional<std::string> server;
  std::optional<std::string> token;
  std::optional<std::string> certificate_authority;
  std::optional<bool> insecure_skip_tls_verify;
};

std::string Octal(unsigned mode) {
  std::ostringstream out;
  out << '0' << std::oct << (mode & 07777U);
  return out.str();
}

std::string Unquoted(std::string_view value) {
  if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
      value.back() == value.front()) {
    return std::string(value.substr(1, value.size() - 2));
  }
  return std::string(value);
}

// Lines `key: value`; `#` starts a comment line; blank lines are ignored. A small format of its
// own, not YAML, so that tenantctl needs no YAML parser to start and a token with YAML-special
// characters needs no quoting. The message of a bad line never quotes the line: it may hold the
// token.
Outcome<ConfigFile> ReadConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return Failure::Stalled("BadConfig", "cannot read " + path + ": " + std::strerror(errno));
  }
  ConfigFile config;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    const std::string_view text = Trim(line);
    if (text.empty() || text.front() == '#') continue;
    const std::size_t colon = text.find(':');
    const std::string where = path + ":" + std::to_string(number);
    if (colon == std::string_view::npos) {
      return Failure::Stalled("BadConfig", where + ": expected `key: value`");
    }
    const std::string_view key = Trim(text.substr(0, colon));
    const std::string value = Unquoted(Trim(text.substr(colon + 1)));
    if (key == "server") {
      config.server = value;
    } else if (key == "token") {
      config.token = value;
    } else if (key == "certificateAuthority") {
      config.certificate_authority = value;
    } else if (key == "insecureSkipTLSVerify") {
      if (value != "true" && value != "false") {
        return Failure::Stalled("BadConfig", where + ": insecureSkipTLSVerify is true or false");
      }
      config.insecure_skip_tls_verify = value == "true";
    } else {
      return Failure::Stalled("BadConfig",
                              where + ": unknown key \"" + std::string(key) +
                                  "\" (server, token, certificateAuthority, insecureSkipTLSVerify)");
    }
  }
  return config;
}

Outcome<ConfigFile> LoadConfigIfPresent(const Environment& env) {
  const std::string path = ConfigPath(env);
  struct stat info {};
  if (path.empty() || ::stat(path.c_str(), &info) != 0) return ConfigFile{};
  if ((info.st_mode & 077U) != 0) {
    return Failure::Stalled("InsecureConfig",
                            path + " may be accessed by group or others (mode " +
                                Octal(info.st_mode) + "); it can hold a token: chmod 600 " + path);
  }
  return ReadConfig(path);
}

std::optional<std::string> Lookup(const Environment& env, const std::string& name) {
  const auto found = env.find(name);
  if (found == env.end() || found->second.empty()) return std::nullopt;
  return found->second;
}

}  // namespace

std::string ConfigPath(const Environment& env) {
  if (const std::optional<std::string> xdg = Lookup(env, "XDG_CONFIG_HOME")) {
    return *xdg + "/tenantctl/config";
  }
  if (const std::optional<std::string> home = Lookup(env, "HOME")) {
    return *home + "/.config/tenantctl/config";
  }
  return {};
}

Outcome<Connection> ResolveConnection(const ConnectionFlags& flags, const Environment& env) {
  Outcome<ConfigFile> config = LoadConfigIfPresent(env);
  if (!config) return config.failure();
  Connection connection;
  connection.server = flags.server.value_or(
      Lookup(env, "TENANTCTL_SERVER").value_or(config->server.value_or(kDefaultServer)));
  connection.token =
      flags.token.value_or(Lookup(env, "TENANTCTL_TOKEN").value_or(config->token.value_or("")));
  connection.certificate_authority =
      flags.certificate_authority.value_or(config->certificate_authority.value_or(""));
  connection.insecure_skip_tls_verify =
      flags.insecure_skip_tls_verify || config->insecure_skip_tls_verify.value_or(false);
  while (!connection.server.empty() && connection.server.back() == '/') {
    connection.server.pop_back();
  }
  if (connection.server.rfind("http://", 0) != 0 && connection.server.rfind("https://", 0) != 0) {
    return Failure::Stalled("BadServer", "the server \"" + connection.server +
                                             "\" is not an http:// or https:// URL");
  }
  return connection;
}

}  // namespace tmaster::cli
