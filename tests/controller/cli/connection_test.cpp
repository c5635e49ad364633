// Where tenantctl finds its server and token (controller/cli/connection.hpp): flag, then
// environment, then the config file; a config file others may read is refused, and no message
// shows the token.
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <filesystem>
#include <string>

#include "controller/cli/connection.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

using tmaster::cli::ConfigPath;
using tmaster::cli::ConnectionFlags;
using tmaster::cli::Environment;
using tmaster::cli::ResolveConnection;
using tmaster::testing::TempDir;

constexpr const char* kFileToken = "file-token-5f2a";

// A config folder with `text` as tenantctl's config file, mode `mode`; the environment points
// XDG_CONFIG_HOME at it.
Environment WithConfig(const TempDir& dir, const std::string& text, mode_t mode = 0600U) {
  const std::filesystem::path file = dir.Write("tenantctl/config", text);
  REQUIRE(::chmod(file.c_str(), mode) == 0);
  return Environment{{"XDG_CONFIG_HOME", dir.path().string()}, {"HOME", "/nonexistent"}};
}

}  // namespace

TEST_CASE("cli connection: the config file's place follows XDG_CONFIG_HOME, else HOME") {
  CHECK(ConfigPath({{"XDG_CONFIG_HOME", "/x"}, {"HOME", "/h"}}) == "/x/tenantctl/config");
  CHECK(ConfigPath({{"HOME", "/h"}}) == "/h/.config/tenantctl/config");
  CHECK(ConfigPath({}).empty());
}

TEST_CASE("cli connection: a flag beats the environment, which beats the config file") {
  TempDir dir;
  Environment env = WithConfig(dir,
                               "# tenantctl\n"
                               "server: https://from-file:8443/\n"
                               "token: " + std::string(kFileToken) + "\n"
                               "certificateAuthority: /etc/tm/ca.pem\n");

  auto from_file = ResolveConnection({}, env);
  REQUIRE(from_file.ok());
  CHECK(from_file->server == "https://from-file:8443");  // the trailing slash dropped
  CHECK(from_file->token == kFileToken);
  CHECK(from_file->certificate_authority == "/etc/tm/ca.pem");

  env["TENANTCTL_SERVER"] = "http://from-env:8080";
  env["TENANTCTL_TOKEN"] = "env-token";
  auto from_env = ResolveConnection({}, env);
  REQUIRE(from_env.ok());
  CHECK(from_env->server == "http://from-env:8080");
  CHECK(from_env->token == "env-token");

  ConnectionFlags flags;
  flags.server = "http://from-flag:1";
  flags.token = "flag-token";
  auto from_flags = ResolveConnection(flags, env);
  REQUIRE(from_flags.ok());
  CHECK(from_flags->server == "http://from-flag:1");
  CHECK(from_flags->token == "flag-token");

  // Each setting on its own: a flag for the server leaves the token to the environment.
  ConnectionFlags server_only;
  server_only.server = "http://from-flag:1";
  auto mixed = ResolveConnection(server_only, env);
  REQUIRE(mixed.ok());
  CHECK(mixed->token == "env-token");
}

TEST_CASE("cli connection: nothing configured is the loopback default without a token") {
  TempDir dir;  // no config file in it
  auto resolved = ResolveConnection({}, {{"XDG_CONFIG_HOME", dir.path().string()}});
  REQUIRE(resolved.ok());
  CHECK(resolved->server == "http://127.0.0.1:8080");
  CHECK(resolved->token.empty());
}

TEST_CASE("cli connection: a config file group or others may access is refused, naming it") {
  TempDir dir;
  for (const mode_t mode : {0640U, 0604U, 0660U, 0610U}) {
    CAPTURE(mode);
    const Environment env = WithConfig(dir, "token: " + std::string(kFileToken) + "\n", mode);
    auto resolved = ResolveConnection({}, env);
    REQUIRE(!resolved.ok());
    CHECK(resolved.failure().reason == "InsecureConfig");
    CHECK(resolved.failure().message.find(ConfigPath(env)) != std::string::npos);
    CHECK(resolved.failure().message.find("chmod 600") != std::string::npos);
    CHECK(resolved.failure().message.find(kFileToken) == std::string::npos);
  }
  CHECK(ResolveConnection({}, WithConfig(dir, "server: http://a:1\n", 0400U)).ok());
}

TEST_CASE("cli connection: a bad line names file:line and never quotes the line") {
  TempDir dir;
  auto unknown = ResolveConnection(
      {}, WithConfig(dir, "server: http://a:1\ntokn: " + std::string(kFileToken) + "\n"));
  REQUIRE(!unknown.ok());
  CHECK(unknown.failure().reason == "BadConfig");
  CHECK(unknown.failure().message.find("tenantctl/config:2: unknown key \"tokn\"") !=
        std::string::npos);
  CHECK(unknown.failure().message.find(kFileToken) == std::string::npos);

  auto no_colon = ResolveConnection({}, WithConfig(dir, std::string(kFileToken) + "\n"));
  REQUIRE(!no_colon.ok());
  CHECK(no_colon.failure().message.find("config:1: expected `key: value`") != std::string::npos);
  CHECK(no_colon.failure().message.find(kFileToken) == std::string::npos);

  auto scheme = ResolveConnection({}, WithConfig(dir, "server: tm.example.com:8080\n"));
  REQUIRE(!scheme.ok());
  CHECK(scheme.failure().reason == "BadServer");
}
