// The config's `http.usersFile` (issue 14): resolved against the config's folder and readable when
// the config is loaded; its content is controller/api/users.hpp's
// (tests/controller/api/users_test.cpp).

#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "manifests/config.hpp"
#include "tests/support/temp_dir.hpp"

namespace tmaster::manifests {
namespace {

using testing::TempDir;

constexpr const char* kMinimal = R"(baseDomain: example.com
masterKeyEnv: TM_MASTER_KEY
clusters:
  - name: default
    dsnEnv: TM_PG_DSN
)";  // lines 1-5

ConfigResult LoadText(const TempDir& dir, const std::string& text) {
  return LoadConfig(dir.Write("etc/config.yaml", text));
}

}  // namespace

TEST_CASE("config: http.usersFile, resolved and readable") {
  TempDir dir;
  const ConfigResult none = LoadText(dir, kMinimal);
  REQUIRE(none.errors.empty());
  CHECK(none.config.http.users_file.empty());

  dir.Write("etc/secrets/users.yaml", "users: []\n");
  const ConfigResult result =
      LoadText(dir, std::string(kMinimal) + "http: {usersFile: secrets/users.yaml}\n");
  REQUIRE(result.errors.empty());
  CHECK(result.config.http.users_file == dir.path() / "etc/secrets/users.yaml");

  for (const char* path : {"secrets/nope.yaml", "secrets"}) {
    CAPTURE(path);
    const ConfigResult missing =
        LoadText(dir, std::string(kMinimal) + "http: {usersFile: " + path + "}\n");
    REQUIRE(missing.errors.size() == 1);
    CHECK(missing.errors[0].field == "http.usersFile");
    CHECK(missing.errors[0].where.line == 6);
    CHECK(missing.errors[0].where.column == 19);
    CHECK(missing.errors[0].message.find("cannot read") != std::string::npos);
    CHECK(missing.config.http.users_file.empty());
  }
}

}  // namespace tmaster::manifests
