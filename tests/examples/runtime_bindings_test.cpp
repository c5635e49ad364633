// example-runtime's pure and file-reading parts (examples/runtime/): a binding folder read in
// the layout of issue 17, refused with a reason when it is not, the host lookup, the watcher,
// and the answers that need no database.
#include <doctest/doctest.h>

#include <filesystem>
#include <map>
#include <string>

#include "controller/bindings/binding.hpp"
#include "examples/runtime/bindings_reader.hpp"
#include "examples/runtime/responder.hpp"
#include "examples/runtime/tenants.hpp"
#include "tests/support/binding_folder.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using namespace tmaster;
using namespace tmaster::examples::runtime;
using Files = std::map<std::string, std::string>;
using testing::WriteBinding;

Files AcmeFiles() {
  return {{"type", "postgresql"},
          {"provider", "tenant-master"},
          {"workspace", "acme"},
          {"host", "10.0.0.5"},
          {"port", "5432"},
          {"database", "ws_acme"},
          {"username", "ws_acme"},
          {"password", "s3cret pass"},
          {"uri", "postgresql://ws_acme:s3cret%20pass@10.0.0.5:5432/ws_acme"},
          {"hosts", "Acme.Example.com\nshop.acme.test"},
          {"state", "active"}};
}

std::string FailureMessage(const Outcome<Binding>& binding) {
  return binding ? std::string("<read>") : binding.failure().message;
}

Directory DirectoryOf(const std::vector<Files>& folders) {
  std::vector<std::shared_ptr<const Binding>> bindings;
  for (const Files& files : folders) {
    Outcome<Binding> binding = ParseBinding(files, "test");
    REQUIRE(binding);
    bindings.push_back(std::make_shared<const Binding>(std::move(*binding)));
  }
  return IndexBindings(std::move(bindings));
}

}  // namespace

TEST_CASE("runtime bindings: a folder in the layout is read with every key") {
  const testing::TempDir dir;
  WriteBinding(dir.path(), "acme", AcmeFiles());
  const Outcome<Binding> binding = ReadBinding(dir.path().string(), "acme");
  REQUIRE_MESSAGE(binding, FailureMessage(binding));
  CHECK(binding->workspace == "acme");
  CHECK(binding->host == "10.0.0.5");
  CHECK(binding->port == "5432");
  CHECK(binding->database == "ws_acme");
  CHECK(binding->username == "ws_acme");
  CHECK(binding->password.Reveal() == "s3cret pass");
  CHECK(binding->hosts == std::vector<std::string>{"acme.example.com", "shop.acme.test"});
  CHECK_FALSE(binding->suspended);

  Files suspended = AcmeFiles();
  suspended["state"] = "suspended";
  WriteBinding(dir.path(), "acme", suspended);
  const Outcome<Binding> again = ReadBinding(dir.path().string(), "acme");
  REQUIRE(again);
  CHECK(again->suspended);
}

TEST_CASE("runtime bindings: a folder that breaks the layout is refused with the reason") {
  struct Row {
    const char* name;
    std::string key;
    std::optional<std::string> value;  // nullopt: the file is missing
    std::string expected;
  };
  const Row rows[] = {
      {"missing password", "password", std::nullopt, "missing key `password`"},
      {"missing hosts", "hosts", std::nullopt, "missing key `hosts`"},
      {"empty database", "database", "", "key `database` is empty"},
      {"unknown state", "state", "paused", "key `state` is `paused`, expected `active` or"},
      {"port not a number", "port", "54x2", "key `port` is `54x2`"},
      {"port out of range", "port", "70000", "key `port` is `70000`"},
      {"another type", "type", "mysql", "key `type` is `mysql`"},
      {"empty host line", "hosts", "a.example.com\n\nb.example.com", "`hosts` line 2"},
      {"workspace not the folder", "workspace", "other", "key `workspace` is `other`"},
  };
  for (const Row& row : rows) {
    SUBCASE(row.name) {
      const testing::TempDir dir;
      Files files = AcmeFiles();
      if (row.value) {
        files[row.key] = *row.value;
      } else {
        files.erase(row.key);
      }
      WriteBinding(dir.path(), "acme", files);
      const Outcome<Binding> binding = ReadBinding(dir.path().string(), "acme");
      REQUIRE_FALSE(binding);
      CHECK(binding.failure().reason == "InvalidBinding");
      CHECK(binding.failure().kind == FailureKind::kStalled);
      CHECK_MESSAGE(binding.failure().message.find(row.expected) != std::string::npos,
                    binding.failure().message);
      CHECK(binding.failure().message.find("acme") != std::string::npos);  // names the folder
      CHECK(binding.failure().message.find("s3cret") == std::string::npos);
    }
  }
}

TEST_CASE("runtime bindings: a symlinked file or folder is refused, never followed") {
  const testing::TempDir dir;
  dir.Write("elsewhere/password", "stolen");
  WriteBinding(dir.path() / "erp", "acme", AcmeFiles());

  SUBCASE("a file") {
    fs::remove(dir.path() / "erp/acme/password");
    fs::create_symlink(dir.path() / "elsewhere/password", dir.path() / "erp/acme/password");
    const Outcome<Binding> binding = ReadBinding((dir.path() / "erp").string(), "acme");
    REQUIRE_FALSE(binding);
    CHECK(binding.failure().reason == "InvalidBinding");
    CHECK_MESSAGE(
        binding.failure().message.find("acme/password is a symbolic link") != std::string::npos,
        binding.failure().message);
  }
  SUBCASE("a folder") {
    WriteBinding(dir.path(), "real", AcmeFiles());
    fs::create_directory_symlink(dir.path() / "real", dir.path() / "erp/linked");
    const Outcome<Binding> binding = ReadBinding((dir.path() / "erp").string(), "linked");
    REQUIRE_FALSE(binding);
    CHECK(binding.failure().reason == "InvalidBinding");
    CHECK(binding.failure().message.find("linked is not a directory") != std::string::npos);
    const auto listing = ListWorkspaceFolders((dir.path() / "erp").string());
    REQUIRE(listing);
    CHECK(listing->size() == 1);
    CHECK(listing->contains("acme"));
  }
}

TEST_CASE("runtime bindings: the listing skips the writers' temporaries and plain files") {
  const testing::TempDir dir;
  WriteBinding(dir.path(), "acme", AcmeFiles());
  dir.Mkdir(".beta.1234");
  dir.Write("README", "not a workspace");
  const auto listing = ListWorkspaceFolders(dir.path().string());
  REQUIRE(listing);
  CHECK(listing->size() == 1);
  CHECK(listing->contains("acme"));
  CHECK_FALSE(ListWorkspaceFolders((dir.path() / "missing").string()));
}

TEST_CASE("runtime bindings: the host lookup ignores case, the port and a trailing dot") {
  CHECK(HostKey("Acme.Example.COM") == "acme.example.com");
  CHECK(HostKey("acme.example.com:8080") == "acme.example.com");
  CHECK(HostKey(" acme.example.com. ") == "acme.example.com");
  CHECK(HostKey("[::1]:8080") == "[::1]");

  Files beta = AcmeFiles();
  beta["workspace"] = "beta";
  beta["hosts"] = "beta.example.com";
  const Directory directory = DirectoryOf({AcmeFiles(), beta});
  REQUIRE(Lookup(directory, "ACME.example.com:443"));
  CHECK(Lookup(directory, "ACME.example.com:443")->workspace == "acme");
  CHECK(Lookup(directory, "shop.acme.test")->workspace == "acme");
  CHECK(Lookup(directory, "beta.example.com")->workspace == "beta");
  CHECK_FALSE(Lookup(directory, "gamma.example.com"));
  CHECK_FALSE(Lookup(directory, ""));
}

TEST_CASE("runtime bindings: a host claimed by two workspaces is served by neither") {
  Files beta = AcmeFiles();
  beta["workspace"] = "beta";
  beta["hosts"] = "beta.example.com\nshop.acme.test";
  const Directory directory = DirectoryOf({AcmeFiles(), beta});
  CHECK_FALSE(Lookup(directory, "shop.acme.test"));
  CHECK(Lookup(directory, "beta.example.com")->workspace == "beta");
  REQUIRE(directory.problems.size() == 1);
  CHECK(directory.problems[0] == "host shop.acme.test is claimed by acme, beta; served by none");
}

TEST_CASE(
    "runtime bindings: the watcher sees added, swapped and removed folders, and nothing else") {
  const testing::TempDir dir;
  BindingsWatcher watcher(dir.path().string());
  CHECK_FALSE(watcher.Refresh().changed);

  WriteBinding(dir.path(), "acme", AcmeFiles());
  BindingsWatcher::Changes changes = watcher.Refresh();
  CHECK(changes.changed);
  REQUIRE(Lookup(watcher.directory(), "acme.example.com"));
  CHECK(changes.log == std::vector<std::string>{"workspace acme: added, active, 2 host(s)"});

  changes = watcher.Refresh();  // nothing changed: nothing read, nothing logged
  CHECK_FALSE(changes.changed);
  CHECK(changes.log.empty());

  Files moved = AcmeFiles();
  moved["password"] = "rotated";
  moved["hosts"] = "new.example.com";
  WriteBinding(dir.path(), "acme", moved);
  CHECK(watcher.Refresh().changed);
  CHECK_FALSE(Lookup(watcher.directory(), "acme.example.com"));
  REQUIRE(Lookup(watcher.directory(), "new.example.com"));
  CHECK(Lookup(watcher.directory(), "new.example.com")->password.Reveal() == "rotated");

  Files broken = moved;
  broken.erase("state");
  WriteBinding(dir.path(), "acme", broken);
  changes = watcher.Refresh();
  CHECK(changes.changed);
  CHECK_FALSE(Lookup(watcher.directory(), "new.example.com"));
  REQUIRE(watcher.directory().problems.size() == 1);
  CHECK(watcher.directory().problems[0].find("missing key `state`") != std::string::npos);
  CHECK_FALSE(watcher.Refresh().changed);  // refused once, not read again until it changes

  WriteBinding(dir.path(), "acme", moved);
  CHECK(watcher.Refresh().changed);
  CHECK(Lookup(watcher.directory(), "new.example.com"));

  fs::remove_all(dir.path() / "acme");
  changes = watcher.Refresh();
  CHECK(changes.changed);
  CHECK(changes.log == std::vector<std::string>{"workspace acme: removed"});
  CHECK(watcher.directory().by_workspace.empty());
}

TEST_CASE("runtime bindings: a server message loses the password") {
  CHECK(Redact("login as u with s3cret failed; s3cret!", Secret("s3cret")) ==
        "login as u with <redacted> failed; <redacted>!");
  CHECK(Redact("nothing here", Secret("")) == "nothing here");
}

TEST_CASE("runtime bindings: the answers that need no database") {
  Files suspended = AcmeFiles();
  suspended["workspace"] = "beta";
  suspended["hosts"] = "beta.example.com";
  suspended["state"] = "suspended";
  Tenants tenants(4);
  tenants.Update(DirectoryOf({AcmeFiles(), suspended}));
  CHECK(tenants.Count() == 2);

  Answer answer = Respond(tenants, {"GET", "/", "Nobody.example.com:80"}, "customer");
  CHECK(answer.status == 404);
  CHECK(answer.body == R"({"error":"unknown host","host":"nobody.example.com"})");

  answer = Respond(tenants, {"GET", "/", "beta.example.com"}, "customer");
  CHECK(answer.status == 503);
  CHECK(answer.body == R"({"error":"suspended","workspace":"beta"})");
  CHECK(answer.close);
  CHECK_FALSE(tenants.Find("beta.example.com").pool);  // no sessions kept for it

  CHECK(Respond(tenants, {"POST", "/", "acme.example.com"}, "customer").status == 405);
  answer = Respond(tenants, {"GET", "/other", "acme.example.com"}, "customer");
  CHECK(answer.status == 404);
  CHECK(answer.body == R"({"error":"not found","path":"/other"})");

  // A pool survives an update that keeps the login, and is replaced when the password changes.
  const std::shared_ptr<TenantPool> pool = tenants.Find("acme.example.com").pool;
  REQUIRE(pool);
  tenants.Update(DirectoryOf({AcmeFiles(), suspended}));
  CHECK(tenants.Find("acme.example.com").pool == pool);
  Files rotated = AcmeFiles();
  rotated["password"] = "rotated";
  tenants.Update(DirectoryOf({rotated, suspended}));
  CHECK(tenants.Find("acme.example.com").pool != pool);
  tenants.Update(DirectoryOf({suspended}));
  CHECK_FALSE(tenants.Find("acme.example.com").binding);
}

TEST_CASE("runtime bindings: what the operator renders is what the runtime reads") {
  bindings::TenantFacts facts;
  facts.product = "erp";
  facts.workspace = "ferreteria-norte";
  facts.runtime_address = {"db.internal", 6543};
  facts.server_address = {"10.0.0.5", 5432};
  facts.database = "ws_ferreteria_norte";
  facts.username = "ws_ferreteria_norte";
  facts.password = Secret("p@ss w/ord:%");
  facts.hosts = {"ferreteria-norte.erp.example.com", "Tienda.Example.com"};
  facts.suspended = true;
  const testing::TempDir dir;
  for (const std::optional<bindings::Endpoint>& via :
       {std::optional<bindings::Endpoint>{},
        std::optional<bindings::Endpoint>{{"pgbouncer", 6432}}}) {
    Files files;
    for (const auto& [key, value] : bindings::RenderBinding(facts, via)) files[key] = value;
    WriteBinding(dir.path(), facts.workspace, files);
    const Outcome<Binding> binding = ReadBinding(dir.path().string(), facts.workspace);
    REQUIRE_MESSAGE(binding, FailureMessage(binding));
    CHECK(binding->workspace == "ferreteria-norte");
    CHECK(binding->host == (via ? "pgbouncer" : "db.internal"));
    CHECK(binding->port == (via ? "6432" : "6543"));
    CHECK(binding->database == "ws_ferreteria_norte");
    CHECK(binding->username == "ws_ferreteria_norte");
    CHECK(binding->password.Reveal() == "p@ss w/ord:%");
    CHECK(binding->hosts ==
          std::vector<std::string>{"ferreteria-norte.erp.example.com", "tienda.example.com"});
    CHECK(binding->suspended);
  }
}
