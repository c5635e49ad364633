// The stack ledger: what the operator last wrote, kept in memory and, for `--once`, in a small
// text file written atomically with mode 0600.

#include "reconcilers/stacks/ledger.hpp"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/crypto.hpp"
#include "tests/support/temp_dir.hpp"

namespace tmaster::stacks {
namespace {

namespace fs = std::filesystem;
using tmaster::testing::TempDir;

DesiredStack Stack() {
  DesiredStack d;
  d.workspace = "acme";
  d.name = "tm-acme";
  d.endpoint = 1;
  d.file = "services: {app: {}}\n";
  return d;
}

bool Same(const std::optional<LedgerEntry>& a, const LedgerEntry& b) {
  return a && a->id == b.id && a->update_date == b.update_date && a->file_digest == b.file_digest;
}

}  // namespace

TEST_CASE("stack ledger: Record follows what each action leaves behind") {
  StackLedger ledger;
  const DesiredStack d = Stack();
  const std::string digest = crypto::Sha256Hex(d.file);
  ledger.Record("acme", CreateStack{d}, {5, 100, 1, ""});
  CHECK(Same(ledger.Get("acme"), {5, 100, digest}));
  ledger.Record("acme", StopStack{5, 1, "tm-acme"}, {5, 0, 1, ""});
  CHECK(Same(ledger.Get("acme"), {5, 100, digest}));  // start/stop keep UpdateDate
  DesiredStack next = d;
  next.file += "# v2\n";
  ledger.Record("acme", UpdateStack{5, next, {"file"}}, {5, 160, 1, ""});
  CHECK(Same(ledger.Get("acme"), {5, 160, crypto::Sha256Hex(next.file)}));
  ledger.Record("acme", DeleteStack{4, 2, "tm-acme"}, {4, 0, 1, ""});  // another stack id
  CHECK(ledger.Get("acme").has_value());
  ledger.Record("acme", DeleteStack{5, 1, "tm-acme"}, {5, 0, 1, ""});
  CHECK_FALSE(ledger.Get("acme").has_value());

  ObservedStack seen;
  seen.id = 9;
  seen.update_date = 300;
  ledger.RecordObserved("acme", seen, "text");
  CHECK(Same(ledger.Get("acme"), {9, 300, crypto::Sha256Hex("text")}));
}

TEST_CASE("stack ledger: Save and Load round-trip, 0600, atomically") {
  TempDir tmp;
  const fs::path file = tmp.path() / "stacks.ledger";
  StackLedger ledger;
  const std::string digest(64, 'a');
  ledger.Put("acme", {3, 1700000000, digest});
  ledger.Put("globex", {4, 0, std::string(64, 'b')});
  REQUIRE(ledger.Save(file).ok());
  struct stat st {};
  REQUIRE(::stat(file.c_str(), &st) == 0);
  CHECK((static_cast<unsigned>(st.st_mode) & 0777U) == 0600U);
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(tmp.path())) {
    names.push_back(entry.path().filename().string());
  }
  CHECK(names == std::vector<std::string>{"stacks.ledger"});  // no temporary left

  StackLedger loaded;
  auto count = loaded.Load(file);
  REQUIRE(count.ok());
  CHECK(*count == 2);
  CHECK(Same(loaded.Get("acme"), {3, 1700000000, digest}));
  CHECK(Same(loaded.Get("globex"), {4, 0, std::string(64, 'b')}));

  // Saving again replaces the file.
  ledger.Erase("globex");
  REQUIRE(ledger.Save(file).ok());
  REQUIRE(loaded.Load(file).ok());
  CHECK_FALSE(loaded.Get("globex").has_value());
}

TEST_CASE("stack ledger: a missing file is empty, malformed lines are skipped") {
  TempDir tmp;
  StackLedger ledger;
  ledger.Put("stale", {1, 1, std::string(64, 'c')});
  auto none = ledger.Load(tmp.path() / "missing");
  REQUIRE(none.ok());
  CHECK(*none == 0);
  CHECK(ledger.Snapshot().empty());

  const std::string good(64, 'd');
  const fs::path file = tmp.Write("ledger",
                                  "# comment\n"
                                  "acme 3 17 " +
                                      good +
                                      "\n"
                                      "short 3 17 abc\n"
                                      "words x 17 " +
                                      good +
                                      "\n"
                                      "extra 3 17 " +
                                      good +
                                      " more\n"
                                      "neg -1 17 " +
                                      good +
                                      "\n"
                                      "\n");
  auto count = ledger.Load(file);
  REQUIRE(count.ok());
  CHECK(*count == 1);
  CHECK(Same(ledger.Get("acme"), {3, 17, good}));
}

TEST_CASE("stack ledger: concurrent use is safe") {
  StackLedger ledger;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&ledger, t] {
      for (int i = 0; i < 500; ++i) {
        const std::string name = "ws" + std::to_string((i + t) % 16);
        ledger.Put(name, {i + 1, i, std::string(64, 'e')});
        (void)ledger.Get(name);
        if (i % 7 == 0) ledger.Erase(name);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(ledger.Snapshot().size() <= 16);
}

}  // namespace tmaster::stacks

namespace tmaster::stacks {

TEST_CASE("stack ledger: a 64-bit stack id survives the file, which stays the v1 text format") {
  TempDir dir;
  const fs::path file = dir.path() / "ledger";
  const LedgerEntry big{(StackId{1} << 40) + 3, 1700000000, crypto::Sha256Hex("x")};
  StackLedger ledger;
  ledger.Put("acme", big);
  REQUIRE(ledger.Save(file).ok());
  StackLedger loaded;
  REQUIRE(loaded.Load(file).ok());
  CHECK(Same(loaded.Get("acme"), big));
  // An entry written by the earlier build (a 32-bit id) reads the same.
  dir.Write("old", "# tenant-master stack ledger v1: workspace id update_date sha256\nshop 12 5 " +
                       crypto::Sha256Hex("y") + "\n");
  StackLedger old;
  REQUIRE(old.Load(dir.path() / "old").ok());
  CHECK(Same(old.Get("shop"), LedgerEntry{12, 5, crypto::Sha256Hex("y")}));
}

}  // namespace tmaster::stacks

namespace tmaster::stacks {

TEST_CASE("stack ledger: the observer is told of each change, and only of changes") {
  StackLedger ledger;
  std::vector<std::pair<std::string, std::optional<LedgerEntry>>> told;
  ledger.SetObserver([&told](const std::string& workspace, const std::optional<LedgerEntry>& e) {
    told.emplace_back(workspace, e);
  });
  const DesiredStack d = Stack();
  const std::string digest = crypto::Sha256Hex(d.file);

  ledger.Record("acme", CreateStack{d}, {5, 100, 1, ""});
  REQUIRE(told.size() == 1);
  CHECK(told[0].first == "acme");
  CHECK(Same(told[0].second, {5, 100, digest}));

  ledger.Record("acme", StartStack{5, 1, "tm-acme"}, {5, 0, 1, ""});  // no change
  ledger.Put("acme", {5, 100, digest});                               // the same entry
  ledger.Record("acme", DeleteStack{4, 2, "tm-acme"}, {4, 0, 1, ""});  // another stack id
  ledger.Erase("nobody");
  CHECK(told.size() == 1);

  ObservedStack seen;
  seen.id = 5;
  seen.update_date = 160;
  ledger.RecordObserved("acme", seen, "text");
  REQUIRE(told.size() == 2);
  CHECK(Same(told[1].second, {5, 160, crypto::Sha256Hex("text")}));

  ledger.Record("acme", DeleteStack{5, 1, "tm-acme"}, {5, 0, 1, ""});
  REQUIRE(told.size() == 3);
  CHECK(told[2].first == "acme");
  CHECK_FALSE(told[2].second.has_value());

  // Restore loads what the observer wrote elsewhere: it is not told again.
  ledger.Restore({{"acme", {7, 1, digest}}, {"beta", {8, 2, digest}}});
  CHECK(told.size() == 3);
  CHECK(Same(ledger.Get("beta"), {8, 2, digest}));

  ledger.SetObserver({});
  ledger.Erase("acme");
  CHECK(told.size() == 3);
  CHECK_FALSE(ledger.Get("acme").has_value());
}

TEST_CASE("stack ledger: Restore overlays, keeping the entries of other workspaces") {
  StackLedger ledger;
  const std::string digest = crypto::Sha256Hex("x");
  ledger.Put("kept", {1, 10, digest});
  ledger.Put("replaced", {2, 20, digest});
  ledger.Restore({{"replaced", {3, 30, digest}}, {"added", {4, 40, digest}}});
  CHECK(Same(ledger.Get("kept"), {1, 10, digest}));
  CHECK(Same(ledger.Get("replaced"), {3, 30, digest}));
  CHECK(Same(ledger.Get("added"), {4, 40, digest}));
}

}  // namespace tmaster::stacks
