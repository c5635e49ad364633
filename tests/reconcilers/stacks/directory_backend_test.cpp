// The directory stack backend (docs/stacks.md#directory-backend): files and their modes, atomic
// replacement, list / stop / start / delete, refusal of path traversal, and convergence through the
// same plan.

#include "reconcilers/stacks/directory_backend.hpp"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "reconcilers/stacks/ledger.hpp"
#include "reconcilers/stacks/plan.hpp"
#include "tests/support/temp_dir.hpp"

namespace tmaster::stacks {
namespace {

namespace fs = std::filesystem;
using tmaster::testing::TempDir;

constexpr const char* kPassword = "pw-0123456789";

DesiredStack Stack(const std::string& workspace = "acme", int endpoint = 1) {
  DesiredStack d;
  d.workspace = workspace;
  d.name = "tm-" + workspace;
  d.endpoint = endpoint;
  d.file = "services:\n  app:\n    image: ${TM_IMAGE}:${TM_VERSION}\n";
  d.env = {{"DATABASE_URL", std::string("postgresql://u:") + kPassword + "@pg:5432/db", true},
           {"DB_PASSWORD", kPassword, true},
           {"TM_VERSION", "2.3.2", false},
           {"TM_WORKSPACE", workspace, false}};
  return d;
}

std::string ReadText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

unsigned ModeOf(const fs::path& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return static_cast<unsigned>(st.st_mode) & 0777U;
}

std::vector<std::string> Entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& entry : fs::directory_iterator(dir)) {
    out.push_back(entry.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

ApplyResult MustApply(StackGateway& gateway, const Action& action) {
  auto result = gateway.Apply(action);
  if (!result) FAIL(result.failure().reason << ": " << result.failure().message);
  return *result;
}

}  // namespace

TEST_CASE("stack directory: a create writes the compose file, stack.env and meta, all 0600") {
  TempDir tmp;
  const fs::path root = tmp.path() / "deployments";
  auto gateway = MakeDirectoryBackend(root);
  const ApplyResult created = MustApply(*gateway, CreateStack{Stack()});
  CHECK(created.id == 1);

  const fs::path folder = root / "acme";
  CHECK(Entries(folder) ==
        std::vector<std::string>{"docker-compose.yml", "stack.env", "stack.meta"});
  CHECK(ModeOf(folder) == 0700U);
  CHECK(ModeOf(folder / "docker-compose.yml") == 0600U);
  CHECK(ModeOf(folder / "stack.env") == 0600U);
  CHECK(ModeOf(folder / "stack.meta") == 0600U);
  CHECK(ReadText(folder / "docker-compose.yml") == Stack().file);
  CHECK(ReadText(folder / "stack.env") == std::string("DATABASE_URL=postgresql://u:") + kPassword +
                                              "@pg:5432/db\nDB_PASSWORD=" + kPassword +
                                              "\nTM_VERSION=2.3.2\nTM_WORKSPACE=acme\n");
  // No temporary files or folders are left behind.
  CHECK(Entries(root) == std::vector<std::string>{".stack-ids", "acme"});
  CHECK(ReadText(folder / "stack.meta").find(kPassword) == std::string::npos);
}

TEST_CASE("stack directory: stack.env stays 0600 under a permissive umask") {
  TempDir tmp;
  const mode_t old = ::umask(0);
  auto gateway = MakeDirectoryBackend(tmp.path() / "d");
  auto result = gateway->Apply(CreateStack{Stack()});
  DesiredStack next = Stack();
  next.env[2].value = "2.4.0";
  auto updated = gateway->Apply(UpdateStack{1, next, {"env:TM_VERSION"}});
  ::umask(old);
  REQUIRE(result.ok());
  REQUIRE(updated.ok());
  CHECK(ModeOf(tmp.path() / "d" / "acme" / "stack.env") == 0600U);
  CHECK(ModeOf(tmp.path() / "d" / "acme" / "docker-compose.yml") == 0600U);
}

TEST_CASE("stack directory: list, update, stop, start, delete") {
  TempDir tmp;
  const fs::path root = tmp.path() / "d";
  auto gateway = MakeDirectoryBackend(root);
  CHECK(gateway->List(1)->empty());  // the folder does not exist yet
  const StackId acme = MustApply(*gateway, CreateStack{Stack("acme", 1)}).id;
  const StackId globex = MustApply(*gateway, CreateStack{Stack("globex", 2)}).id;
  CHECK(globex == acme + 1);

  auto listed = gateway->List(1);
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 1);
  const ObservedStack observed = listed->front();
  CHECK(observed.id == acme);
  CHECK(observed.name == "tm-acme");
  CHECK(observed.endpoint == 1);
  CHECK(observed.status == 1);
  CHECK(observed.workspace == "acme");
  CHECK(observed.env == Stack().env);
  CHECK(observed.update_date > 0);
  CHECK(*gateway->File(observed) == Stack().file);
  CHECK(gateway->List(2)->size() == 1);
  CHECK(gateway->List(3)->empty());

  // Update: the file and the Env are replaced; UpdateDate moves.
  DesiredStack next = Stack();
  next.file += "    restart: always\n";
  next.env[2].value = "2.4.0";
  const ApplyResult updated = MustApply(*gateway, UpdateStack{acme, next, {"file"}});
  CHECK(updated.id == acme);
  const ObservedStack after = gateway->List(1)->front();
  CHECK(after.update_date == updated.update_date);
  CHECK(after.update_date != observed.update_date);
  CHECK(after.env == next.env);
  CHECK(*gateway->File(after) == next.file);
  CHECK(Entries(root / "acme") ==
        std::vector<std::string>{"docker-compose.yml", "stack.env", "stack.meta"});

  MustApply(*gateway, StopStack{acme, 1, "tm-acme"});
  CHECK(gateway->List(1)->front().status == 2);
  CHECK(gateway->List(1)->front().update_date == after.update_date);  // as Portainer
  MustApply(*gateway, StartStack{acme, 1, "tm-acme"});
  CHECK(gateway->List(1)->front().status == 1);

  MustApply(*gateway, DeleteStack{acme, 1, "tm-acme"});
  CHECK_FALSE(fs::exists(root / "acme"));
  CHECK(gateway->List(1)->empty());
  CHECK(MustApply(*gateway, DeleteStack{acme, 1, "tm-acme"}).calls == 0);  // already gone

  // Ids are never reused, even for the same workspace.
  CHECK(MustApply(*gateway, CreateStack{Stack("acme", 1)}).id == globex + 1);
  // Another backend on the same folder sees the same stacks (the ids live on disk).
  auto again = MakeDirectoryBackend(root);
  CHECK(again->List(1)->front().id == globex + 1);
  CHECK(again->List(2)->front().id == globex);
}

TEST_CASE("stack directory: a create that finds its folder adopts ours and refuses others") {
  TempDir tmp;
  const fs::path root = tmp.path() / "d";
  auto gateway = MakeDirectoryBackend(root);
  const StackId id = MustApply(*gateway, CreateStack{Stack()}).id;
  // Created again (say, after a timeout): adopted, same id, no second folder.
  CHECK(MustApply(*gateway, CreateStack{Stack()}).id == id);

  tmp.Write("d/globex/docker-compose.yml", "services: {}\n");
  auto conflict = gateway->Apply(CreateStack{Stack("globex")});
  REQUIRE_FALSE(conflict.ok());
  CHECK(conflict.failure().reason == "StackConflict");
  CHECK(ReadText(root / "globex" / "docker-compose.yml") == "services: {}\n");
}

TEST_CASE("stack directory: a create as suspended writes the stack stopped") {
  TempDir tmp;
  auto gateway = MakeDirectoryBackend(tmp.path());
  DesiredStack stack = Stack();
  stack.active = false;
  MustApply(*gateway, CreateStack{stack});
  CHECK(gateway->List(1)->front().status == 2);
}

TEST_CASE("stack directory: names that would leave the folder are refused") {
  TempDir tmp;
  const fs::path root = tmp.path() / "d";
  auto gateway = MakeDirectoryBackend(root);
  for (const std::string name : {"../evil", "..", "a/b", ".hidden", "", "a\\b", "x..y", "a\nb"}) {
    CAPTURE(name);
    auto result = gateway->Apply(CreateStack{Stack(name)});
    REQUIRE_FALSE(result.ok());
    CHECK(result.failure().reason == "InvalidStackName");
    CHECK(result.failure().kind == FailureKind::kStalled);
  }
  CHECK_FALSE(fs::exists(tmp.path() / "evil"));
  CHECK_FALSE(fs::exists(tmp.path() / "d" / "a"));
  // Update of a stack whose workspace name is a path is refused as well.
  auto update = gateway->Apply(UpdateStack{1, Stack("../evil"), {"file"}});
  REQUIRE_FALSE(update.ok());
  CHECK(update.failure().reason == "InvalidStackName");
}

TEST_CASE("stack directory: a folder that is a symlink is never written through") {
  TempDir tmp;
  const fs::path root = tmp.path() / "d";
  fs::create_directories(root);
  fs::create_directories(tmp.path() / "elsewhere");
  fs::create_directory_symlink(tmp.path() / "elsewhere", root / "acme");
  auto gateway = MakeDirectoryBackend(root);
  auto result = gateway->Apply(CreateStack{Stack()});
  REQUIRE_FALSE(result.ok());
  CHECK(result.failure().reason == "StackConflict");
  CHECK(fs::is_empty(tmp.path() / "elsewhere"));
}

TEST_CASE("stack directory: Env values an env file cannot carry are refused, not written") {
  TempDir tmp;
  auto gateway = MakeDirectoryBackend(tmp.path());
  DesiredStack stack = Stack();
  stack.env.push_back({"EXTRA", "a\nDB_PASSWORD=stolen", false});
  auto result = gateway->Apply(CreateStack{stack});
  REQUIRE_FALSE(result.ok());
  CHECK(result.failure().reason == "InvalidStackEnv");
  CHECK(result.failure().message.find("EXTRA") != std::string::npos);
  CHECK(result.failure().message.find("stolen") == std::string::npos);
  CHECK_FALSE(fs::exists(tmp.path() / "acme"));
}

TEST_CASE("stack directory: hand edits are drift that the plan repairs") {
  TempDir tmp;
  auto gateway = MakeDirectoryBackend(tmp.path());
  StackLedger ledger;
  const DesiredStack desired = Stack();
  const Action create = CreateStack{desired};
  ledger.Record("acme", create, MustApply(*gateway, create));

  auto pass = [&]() {
    const auto list = gateway->List(1);
    REQUIRE(list.ok());
    const ObservedStack* found = FindStack(*list, 1, "tm-acme");
    std::optional<ObservedStack> observed;
    if (found) observed = *found;
    std::optional<std::string> file;
    if (observed && NeedsFile(desired, *observed, ledger.Get("acme"))) {
      file = *gateway->File(*observed);
    }
    const Plan plan = MakePlan(desired, observed, ledger.Get("acme"), file);
    for (const auto& action : plan.actions)
      ledger.Record("acme", action, MustApply(*gateway, action));
    return plan;
  };
  CHECK(pass().Empty());

  {
    const fs::path compose = tmp.path() / "acme" / "docker-compose.yml";
    std::ofstream(compose, std::ios::app) << "    privileged: true\n";
    // A human edits later than the operator wrote; make that so even on a coarse clock.
    fs::last_write_time(compose, fs::last_write_time(compose) + std::chrono::seconds(1));
  }
  const Plan repaired = pass();
  REQUIRE(repaired.actions.size() == 1);
  CHECK(KindOf(repaired.actions[0]) == "UpdateStack");
  CHECK(ReadText(tmp.path() / "acme" / "docker-compose.yml") == desired.file);
  CHECK(pass().Empty());

  fs::remove_all(tmp.path() / "acme");
  const Plan recreated = pass();
  REQUIRE(recreated.actions.size() == 1);
  CHECK(KindOf(recreated.actions[0]) == "CreateStack");
  CHECK(pass().Empty());
}

}  // namespace tmaster::stacks
