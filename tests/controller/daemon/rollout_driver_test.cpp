// The rollout driver (controller/daemon/rollout_driver.hpp) against the in-memory store: a new
// revision starts a rollout only when a workspace is behind; a workspace not reached is pinned
// to the revision it converged on (its version and migrations rebuilt from the stored revision);
// a reading counts only with the current attempt; a failure halts within one step; an edited
// migration is refused; a write over a version another leader moved is refused and reloaded; a
// new driver (a new leader) continues from the store without moving anyone twice. The "passes"
// here play the reconciler: they ask PinFor and write the status it would.
#include <doctest/doctest.h>

#include <boost/json.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/crypto.hpp"
#include "controller/daemon/rollout_driver.hpp"
#include "controller/rollouts/revision.hpp"
#include "controller/rollouts/state_json.hpp"
#include "tests/support/fake_store.hpp"

namespace {

using namespace tmaster;
using namespace tmaster::controller;
namespace json = boost::json;
namespace ro = tmaster::rollouts;

constexpr std::int64_t kNow = 1'800'000'000;

migrations::Migration MigrationOf(const std::string& version, const std::string& sql) {
  migrations::Migration migration;
  migration.version = version;
  migration.file = version + "_step.sql";
  migration.checksum = crypto::Sha256Hex(sql);
  migration.sql = std::make_shared<const std::string>(sql);
  return migration;
}

// Answers from a script: one status per call, the last repeated; records what it was asked.
class ScriptedProber final : public HealthProber {
 public:
  std::vector<int> answers = {503};
  std::vector<std::pair<std::string, std::string>> asked;  // url, host
  Outcome<int> Get(const std::string& url, const std::string& host,
                   std::chrono::milliseconds /*timeout*/) override {
    asked.emplace_back(url, host);
    const int answer = answers.front();
    if (answers.size() > 1) answers.erase(answers.begin());
    return answer;
  }
};

struct World {
  ScriptedProber prober;
  std::int64_t now_ms = 0;
  HealthGate gate{prober, [this] { return now_ms; }, std::chrono::milliseconds(1000)};
  testing::FakeStore store;
  DesiredState desired;
  ProductRegistry products;
  EventRecorder events{store};
  Metrics metrics;
  std::vector<std::string> queued;
  std::int64_t now = kNow;
  std::unique_ptr<RolloutDriver> driver = MakeDriver();

  std::unique_ptr<RolloutDriver> MakeDriver() {
    return std::make_unique<RolloutDriver>(
        RolloutDriverDeps{.store = &store,
                          .desired = &desired,
                          .products = &products,
                          .events = &events,
                          .metrics = &metrics,
                          .backups = nullptr,
                          .enqueue =
                              [this](const std::string& name) {
                                queued.push_back(name);
                                return true;
                              },
                          .now_unix = [this] { return now; },
                          .health = &gate,
                          .base_domain = "example.test",
                          .health_base_url = "http://127.0.0.1:9"},
        RolloutDriverOptions{});
  }

  /// The product `shop` as the sources declare it now, its revision recorded as a sync does.
  std::shared_ptr<const ProductEntry> SetProduct(const std::string& version,
                                                 const std::vector<migrations::Migration>& files,
                                                 std::optional<manifests::RolloutSpec> rollout) {
    auto entry = std::make_shared<ProductEntry>();
    entry->product.name = "shop";
    entry->product.default_version = version;
    entry->product.image = "registry.example/shop";
    entry->product.rollout = std::move(rollout);
    entry->migrations = files;
    ro::RevisionInputs inputs{version, entry->product.image, "", {}, {}};
    for (const migrations::Migration& m : files) {
      inputs.migrations.push_back({m.version, m.file, m.checksum});
    }
    entry->revision_digest = ro::RevisionDigest(inputs);
    Outcome<StoredRevision> recorded =
        store.RecordRevision("shop", entry->revision_digest, ro::RevisionSpecJson(inputs), now);
    REQUIRE(recorded.ok());
    entry->revision = recorded->number;
    products.Replace("dir", {{"shop", entry}});
    // Every workspace of the product now refers to this entry (the sync re-declares them).
    for (const std::string& name : desired.DeclaredNames()) {
      auto declared = std::make_shared<DesiredEntry>(*desired.Declared(name));
      declared->product = entry;
      desired.Declare(name, std::move(declared));
    }
    product = entry;
    return entry;
  }

  void Declare(const std::string& name, std::map<std::string, std::string> labels,
               std::shared_ptr<const ProductEntry> entry) {
    auto declared = std::make_shared<DesiredEntry>();
    declared->workspace.name = name;
    declared->workspace.product = "shop";
    declared->workspace.labels = std::move(labels);
    declared->product = std::move(entry);
    desired.Declare(name, std::move(declared));
  }

  /// One pass of `name` as the reconciler makes it: the pin asked, the status written.
  RevisionPin Pass(const std::string& name, bool ok = true) {
    const int converged = statuses.count(name) != 0 ? statuses[name].product_revision : 0;
    Outcome<RevisionPin> pin = driver->PinFor(name, *desired.Declared(name), converged);
    REQUIRE(pin.ok());
    WorkspaceStatus& status = statuses[name];
    status.name = name;
    status.phase = ok ? "Ready" : "Degraded";
    status.last_error = ok ? "" : "MigrationFailed: migration 0002_step.sql: SQLSTATE 23505";
    status.attempted_revision = pin->revision;
    status.rollout_attempt = pin->attempt;
    if (ok) status.product_revision = pin->revision;
    driver->StatusChanged(status);
    return *pin;
  }

  /// Passes every queued name once (in order), as the workers would.
  void Drain() {
    std::vector<std::string> names;
    names.swap(queued);
    for (const std::string& name : names) Pass(name);
  }

  [[nodiscard]] ro::RolloutState Stored() const {
    const testing::FakeStore::State state = store.Snapshot();
    const auto found = state.rollouts.find("shop");
    REQUIRE(found != state.rollouts.end());
    Outcome<ro::RolloutState> parsed = ro::StateFromJson(found->second.state_json);
    REQUIRE(parsed.ok());
    CHECK(parsed->version == found->second.version);
    return *parsed;
  }

  [[nodiscard]] std::vector<std::string> Reasons() const {
    std::vector<std::string> reasons;
    for (const Event& event : store.Snapshot().events) {
      if (event.workspace == "product/shop") reasons.push_back(event.reason);
    }
    return reasons;
  }

  std::map<std::string, WorkspaceStatus> statuses;
  std::shared_ptr<const ProductEntry> product;
};

manifests::RolloutSpec CanaryThenAll(std::chrono::seconds pause, int max_unavailable = 1) {
  manifests::RolloutSpec spec;
  manifests::RolloutWave canary;
  canary.match_labels = {{"ring", "canary"}};
  manifests::RolloutWave all;
  all.percent = 100;
  spec.waves = {canary, all};
  spec.pause_between_waves = pause;
  spec.max_unavailable = max_unavailable;
  return spec;
}

const std::vector<migrations::Migration> kOne = {MigrationOf("0001", "CREATE TABLE a ();")};
const std::vector<migrations::Migration> kTwo = {MigrationOf("0001", "CREATE TABLE a ();"),
                                                  MigrationOf("0002", "CREATE TABLE b ();")};

/// ws-a (canary), ws-b, ws-c, ws-d converged on revision 1.
void Converged(World& w, const std::optional<manifests::RolloutSpec>& rollout) {
  w.SetProduct("1.0", kOne, rollout);
  w.Declare("ws-a", {{"ring", "canary"}}, w.product);
  for (const char* name : {"ws-b", "ws-c", "ws-d"}) w.Declare(name, {}, w.product);
  for (const char* name : {"ws-a", "ws-b", "ws-c", "ws-d"}) CHECK(w.Pass(name).revision == 1);
  w.driver->Step();
  CHECK(w.store.Snapshot().rollouts.empty());  // nobody behind: no rollout
}

}  // namespace

TEST_CASE("rollout driver: without a policy every workspace takes the new revision at once") {
  World w;
  Converged(w, std::nullopt);
  w.SetProduct("2.0", kTwo, std::nullopt);
  w.driver->Step();
  CHECK(w.store.Snapshot().rollouts.empty());
  const RevisionPin pin = w.Pass("ws-c");
  CHECK(pin.revision == 2);
  CHECK(pin.attempt == 0);
  CHECK(pin.product->product.default_version == "2.0");
}

TEST_CASE("rollout driver: the canary moves first; the others stay on their revision's version "
          "and migrations until the pause ends") {
  World w;
  Converged(w, CanaryThenAll(std::chrono::hours(1)));
  w.SetProduct("2.0", kTwo, CanaryThenAll(std::chrono::hours(1)));
  // Before the driver's step, nobody moves: a pin never runs ahead of the stored rollout.
  CHECK(w.Pass("ws-b").revision == 1);
  w.driver->Step();
  ro::RolloutState stored = w.Stored();
  CHECK(stored.phase == ro::Phase::kProgressing);
  CHECK(stored.revision == 2);
  CHECK(stored.previous_revision == 1);
  CHECK(w.queued == std::vector<std::string>{"ws-a"});
  CHECK(w.Reasons() == std::vector<std::string>{"RolloutStarted", "RolloutWaveStarted"});

  // Not reached: rebuilt from the stored revision 1: its version, its one migration.
  const RevisionPin held = w.Pass("ws-b");
  CHECK(held.revision == 1);
  CHECK(held.product->product.default_version == "1.0");
  REQUIRE(held.product->migrations.ok());
  CHECK(held.product->migrations->size() == 1);
  CHECK(held.product->revision == 1);

  w.Drain();  // ws-a's pass applies revision 2 with attempt 1
  CHECK(w.statuses["ws-a"].product_revision == 2);
  CHECK(w.statuses["ws-a"].rollout_attempt == 1);
  w.driver->Step();
  stored = w.Stored();
  CHECK(stored.phase == ro::Phase::kPaused);
  CHECK(stored.current_wave == 1);
  CHECK(w.queued.empty());
  w.now += 60;
  w.driver->Step();
  CHECK(w.queued.empty());  // still paused
  CHECK(w.Pass("ws-d").revision == 1);

  Outcome<std::string> promoted = w.driver->Command("shop", "promote", "token:abc (ci)");
  REQUIRE(promoted.ok());
  const json::value status = json::parse(*promoted);
  CHECK(status.at("rollout").at("phase") == "Progressing");
  CHECK(status.at("rollout").at("currentWave") == 2);
  CHECK(w.queued.size() == 1);  // maxUnavailable 1
  for (int i = 0; i < 6 && w.Stored().phase != ro::Phase::kCompleted; ++i) {
    w.Drain();
    w.driver->Step();
  }
  stored = w.Stored();
  CHECK(stored.phase == ro::Phase::kCompleted);
  for (const char* name : {"ws-a", "ws-b", "ws-c", "ws-d"}) {
    CAPTURE(name);
    CHECK(w.statuses[name].product_revision == 2);
  }
  const std::vector<std::string> reasons = w.Reasons();
  CHECK(std::count(reasons.begin(), reasons.end(), "RolloutPromoted") == 1);
  CHECK(reasons.back() == "RolloutCompleted");
  for (const Event& event : w.store.Snapshot().events) {
    if (event.reason == "RolloutPromoted") {
      CHECK(event.message.find("token:abc (ci)") != std::string::npos);
    }
  }
  const std::string metrics = w.metrics.Render();
  CHECK(metrics.find(R"(tenant_master_rollout_workspaces{product="shop",state="ready"} 4)") !=
        std::string::npos);
}

TEST_CASE("rollout driver: a failure halts within one step; resume retries with a new attempt, "
          "and the old failure no longer counts") {
  World w;
  Converged(w, CanaryThenAll(std::chrono::seconds(0)));
  w.SetProduct("2.0", kTwo, CanaryThenAll(std::chrono::seconds(0)));
  w.driver->Step();
  REQUIRE(w.queued == std::vector<std::string>{"ws-a"});
  w.queued.clear();
  w.Pass("ws-a", false);
  w.driver->Step();
  ro::RolloutState stored = w.Stored();
  CHECK(stored.phase == ro::Phase::kHalted);
  CHECK(stored.workspaces.front().name == "ws-a");
  CHECK(stored.workspaces.front().reason.find("0002_step.sql") != std::string::npos);
  CHECK(stored.workspaces.front().reason.find("23505") != std::string::npos);
  // Halted: the others stay where they are, whatever the clock says.
  w.now += 3600;
  w.driver->Step();
  CHECK(w.queued.empty());
  CHECK(w.Pass("ws-b").revision == 1);

  REQUIRE(w.driver->Command("shop", "resume", "env:admin").ok());
  stored = w.Stored();
  CHECK(stored.phase == ro::Phase::kProgressing);
  CHECK(stored.workspaces.front().attempt == 2);
  CHECK(w.queued == std::vector<std::string>{"ws-a"});
  // The status still carries the failed attempt 1: it must not halt the rollout again.
  w.driver->Step();
  CHECK(w.Stored().phase == ro::Phase::kProgressing);
  w.Drain();
  w.driver->Step();
  CHECK(w.Stored().current_wave == 1);
  CHECK(w.statuses["ws-a"].rollout_attempt == 2);
}

TEST_CASE("rollout driver: an edited migration is refused before any wave; nobody moves") {
  World w;
  Converged(w, CanaryThenAll(std::chrono::seconds(0)));
  const std::vector<migrations::Migration> edited = {MigrationOf("0001", "CREATE TABLE z ();"),
                                                     MigrationOf("0002", "CREATE TABLE b ();")};
  w.SetProduct("2.0", edited, CanaryThenAll(std::chrono::seconds(0)));
  w.driver->Step();
  w.driver->Step();  // refused once: one event
  CHECK(w.store.Snapshot().rollouts.empty());
  CHECK(w.Reasons() == std::vector<std::string>{"RolloutRefused"});  // once
  CHECK(w.Pass("ws-a").revision == 1);
  Outcome<std::string> status = w.driver->StatusJson("shop");
  REQUIRE(status.ok());
  const json::value parsed = json::parse(*status);
  CHECK(parsed.at("refused").at("message").as_string().find("0001") != json::string::npos);
  CHECK(parsed.at("rollout").is_null());
  const Outcome<std::string> refused = w.driver->Command("shop", "pause", "env:admin");
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.failure().reason == "NotFound");
  CHECK(w.driver->Command("shop", "explode", "env:admin").failure().reason == "InvalidVerb");
  CHECK(w.driver->Command("nope", "pause", "env:admin").failure().reason == "NotFound");
}

TEST_CASE("rollout driver: a write over a version another leader moved is refused; the stored "
          "state is taken") {
  World w;
  Converged(w, CanaryThenAll(std::chrono::seconds(0)));
  w.SetProduct("2.0", kTwo, CanaryThenAll(std::chrono::seconds(0)));
  w.driver->Step();
  ro::RolloutState theirs = w.Stored();
  // Another leader paused it meanwhile.
  theirs.phase = ro::Phase::kPaused;
  theirs.paused_by_person = true;
  theirs.version += 1;
  REQUIRE(w.store.PutRollout("shop", theirs.version - 1, ro::StateToJson(theirs), kNow).ok());
  w.Drain();
  w.driver->Step();  // its write is refused: it reloads
  CHECK(w.Stored().phase == ro::Phase::kPaused);
  CHECK(w.Stored().version == theirs.version);
  const Outcome<std::string> status = w.driver->StatusJson("shop");
  REQUIRE(status.ok());
  CHECK(json::parse(*status).at("rollout").at("phase") == "Paused");
}

TEST_CASE("rollout driver: a new leader continues from the store and moves nobody twice") {
  World w;
  Converged(w, CanaryThenAll(std::chrono::seconds(0), 2));
  w.SetProduct("2.0", kTwo, CanaryThenAll(std::chrono::seconds(0), 2));
  w.driver->Step();
  w.Drain();
  w.driver->Step();  // wave 2 starts: two in progress
  REQUIRE(w.queued.size() == 2);
  const std::vector<std::string> moving = w.queued;
  w.Pass(moving.front());  // one finished before the old leader died
  w.queued.clear();

  w.driver->EndTerm();
  w.driver = w.MakeDriver();  // the standby
  std::vector<WorkspaceStatus> statuses;
  for (const auto& [name, status] : w.statuses) statuses.push_back(status);
  REQUIRE(w.driver->BeginTerm(statuses).ok());
  // Its pins are the old leader's: the one in progress keeps its attempt.
  CHECK(w.Pass(moving.back()).attempt == 1);
  w.driver->Step();
  CHECK(w.queued.size() == 1);  // only the last workspace gets a target now
  for (const ro::WorkspaceEntry& entry : w.Stored().workspaces) {
    CAPTURE(entry.name);
    CHECK(entry.attempt == 1);  // nobody's target was set twice
  }
  w.Drain();
  w.driver->Step();
  CHECK(w.Stored().phase == ro::Phase::kCompleted);
}

TEST_CASE("rollout driver: undo pins the reached workspaces back and says what it restored") {
  World w;
  Converged(w, CanaryThenAll(std::chrono::hours(1)));
  w.SetProduct("2.0", kTwo, CanaryThenAll(std::chrono::hours(1)));
  w.driver->Step();
  w.Drain();
  w.driver->Step();
  REQUIRE(w.Stored().phase == ro::Phase::kPaused);
  // The canary's pre-migration backup, in the catalog only (its pass did not report it).
  StoredBackup backup;
  backup.id = "b-ws-a-20270115T080000Z-ab12";
  backup.workspace = "ws-a";
  backup.kind = "pre-migration";
  backup.file = "ws-a/" + backup.id + ".dump";
  backup.sha256 = std::string(64, 'a');
  backup.created_unix = kNow;
  REQUIRE(w.store.PutBackup(backup).ok());

  REQUIRE(w.driver->Command("shop", "undo", "env:admin").ok());
  const ro::RolloutState stored = w.Stored();
  CHECK(stored.phase == ro::Phase::kUndone);
  CHECK(stored.workspaces.front().pre_migration_backup == backup.id);
  // Without a backup service it cannot restore, and says so.
  CHECK(stored.workspaces.front().restore.find("not restored") != std::string::npos);
  CHECK(std::find(w.queued.begin(), w.queued.end(), "ws-a") != w.queued.end());
  const RevisionPin back = w.Pass("ws-a");
  CHECK(back.revision == 1);
  CHECK(back.product->product.default_version == "1.0");
  CHECK(w.statuses["ws-a"].product_revision == 1);
  const std::vector<std::string> reasons = w.Reasons();
  CHECK(std::count(reasons.begin(), reasons.end(), "RolloutRestore") == 1);
}

TEST_CASE("health gate: waits for a 2xx through the base URL with the workspace's host; fails "
          "past its timeout naming the last answer") {
  CHECK(HealthTargetFor("", "acme.example.test", "/healthz").url ==
        "https://acme.example.test/healthz");
  const HealthTarget target = HealthTargetFor("http://127.0.0.1:8081/", "acme.example.test", "/up");
  CHECK(target.url == "http://127.0.0.1:8081/up");
  CHECK(target.host == "acme.example.test");

  ScriptedProber prober;
  prober.answers = {503, 302, 200};
  std::int64_t now_ms = 0;
  HealthGate gate(prober, [&] { return now_ms; }, std::chrono::milliseconds(1000));
  CHECK(gate.Check("a#2#1", target, std::chrono::seconds(60)).verdict ==
        HealthGate::Verdict::kWaiting);
  gate.ProbeDue();  // 503
  gate.ProbeDue();  // not due again yet: nothing asked
  CHECK(prober.asked.size() == 1);
  CHECK(prober.asked.front() == std::make_pair(target.url, target.host));
  now_ms = 1000;
  gate.ProbeDue();  // 302: a redirect is no 2xx
  CHECK(gate.Check("a#2#1", target, std::chrono::seconds(60)).verdict ==
        HealthGate::Verdict::kWaiting);
  now_ms = 2000;
  gate.ProbeDue();  // 200
  CHECK(gate.Check("a#2#1", target, std::chrono::seconds(60)).verdict ==
        HealthGate::Verdict::kPassed);

  prober.answers = {503};
  CHECK(gate.Check("b#2#1", target, std::chrono::seconds(5)).verdict ==
        HealthGate::Verdict::kWaiting);
  gate.ProbeDue();
  now_ms = 7000;
  const HealthGate::Result failed = gate.Check("b#2#1", target, std::chrono::seconds(5));
  CHECK(failed.verdict == HealthGate::Verdict::kFailed);
  CHECK(failed.reason == "health check GET http://127.0.0.1:8081/up (Host: acme.example.test) did "
                         "not answer 2xx within 5s; last: HTTP 503");
  // Decided: a later 2xx changes nothing.
  prober.answers = {200};
  gate.ProbeDue();
  CHECK(gate.Check("b#2#1", target, std::chrono::seconds(5)).verdict ==
        HealthGate::Verdict::kFailed);
}

TEST_CASE("rollout driver: with a health check, a dedicated workspace counts as ready only once "
          "its host answers 2xx; no answer within the timeout halts") {
  manifests::RolloutSpec spec = CanaryThenAll(std::chrono::hours(1));
  spec.health_check = manifests::RolloutHealthCheck{"/healthz", std::chrono::seconds(30)};
  World w;
  Converged(w, spec);
  // The canary is dedicated (its host is checked); the others are shared.
  auto canary = std::make_shared<DesiredEntry>(*w.desired.Declared("ws-a"));
  canary->workspace.subdomain = "acme";
  canary->workspace.dedicated = manifests::DedicatedSpec{};
  w.desired.Declare("ws-a", canary);
  w.SetProduct("2.0", kTwo, spec);
  w.driver->Step();
  w.Drain();
  w.driver->Step();
  CHECK(w.Stored().current_wave == 0);  // Ready by its status, not yet by its host
  CHECK(w.Stored().workspaces.front().state == ro::WorkspaceState::kInProgress);
  w.gate.ProbeDue();
  REQUIRE(w.prober.asked.size() == 1);
  CHECK(w.prober.asked.front().first == "http://127.0.0.1:9/healthz");
  CHECK(w.prober.asked.front().second == "acme.example.test");
  w.prober.answers = {204};
  w.now_ms += 1000;
  w.gate.ProbeDue();
  w.driver->Step();
  CHECK(w.Stored().phase == ro::Phase::kPaused);  // the canary wave is done

  SUBCASE("no 2xx within the timeout: halted, naming the check") {
    World h;
    Converged(h, spec);
    auto dedicated = std::make_shared<DesiredEntry>(*h.desired.Declared("ws-a"));
    dedicated->workspace.subdomain = "acme";
    dedicated->workspace.dedicated = manifests::DedicatedSpec{};
    h.desired.Declare("ws-a", dedicated);
    h.SetProduct("2.0", kTwo, spec);
    h.driver->Step();
    h.Drain();
    h.driver->Step();
    h.gate.ProbeDue();
    h.now_ms += 31'000;
    h.driver->Step();
    const ro::RolloutState stored = h.Stored();
    CHECK(stored.phase == ro::Phase::kHalted);
    CHECK(stored.workspaces.front().reason.find("health check GET http://127.0.0.1:9/healthz "
                                                "(Host: acme.example.test)") == 0);
  }
}

TEST_CASE("rollout driver: a policy removed retires the last rollout; when it comes back, the "
          "workspaces' own revisions count, not that rollout's pins") {
  World w;
  Converged(w, CanaryThenAll(std::chrono::seconds(0)));
  w.SetProduct("2.0", kTwo, CanaryThenAll(std::chrono::seconds(0)));
  w.driver->Step();  // starts the rollout of revision 2
  for (int i = 0; i < 8 && w.Stored().phase != ro::Phase::kCompleted; ++i) {
    w.Drain();
    w.driver->Step();
  }
  REQUIRE(w.Stored().phase == ro::Phase::kCompleted);
  // The policy goes; revision 3 reaches everyone at once.
  const std::vector<migrations::Migration> three = {kTwo[0], kTwo[1],
                                                    MigrationOf("0003", "CREATE TABLE c ();")};
  w.SetProduct("3.0", three, std::nullopt);
  w.driver->Step();
  CHECK(w.Stored().retired);
  for (const char* name : {"ws-a", "ws-b", "ws-c", "ws-d"}) CHECK(w.Pass(name).revision == 3);
  // It comes back: everyone is on revision 3 already, so no rollout starts, and nobody is
  // pinned to the old rollout's revision 2.
  w.SetProduct("3.0", three, CanaryThenAll(std::chrono::hours(1)));
  w.driver->Step();
  CHECK(w.Stored().revision == 2);
  CHECK(w.Pass("ws-d").revision == 3);
  const std::vector<std::string> reasons = w.Reasons();
  CHECK(std::count(reasons.begin(), reasons.end(), "RolloutStarted") == 1);
}

TEST_CASE("rollout driver: revisions no one needs go beyond the history; every pinned one stays") {
  World w;
  Converged(w, std::nullopt);  // revision 1
  // Without a policy each new revision reaches everyone at once: revisions 2 to 6.
  for (int v = 2; v <= 6; ++v) {
    w.SetProduct("1." + std::to_string(v), kOne, std::nullopt);
    for (const char* name : {"ws-a", "ws-b", "ws-c", "ws-d"}) CHECK(w.Pass(name).revision == v);
  }
  // A workspace whose passes failed since it converged on 3 (its last attempt was 4).
  WorkspaceStatus stuck;
  stuck.name = "ws-stuck";
  stuck.phase = "Degraded";
  stuck.product_revision = 3;
  stuck.attempted_revision = 4;
  w.driver->StatusChanged(stuck);
  // Revision 7 rolls out: the canary moves, the others stay on 6.
  w.SetProduct("2.0", kTwo, CanaryThenAll(std::chrono::hours(1)));
  w.driver->Step();
  w.Drain();
  const auto numbers = [&] {
    std::vector<int> out;
    const testing::FakeStore::State state = w.store.Snapshot();  // outlives the loop
    for (const StoredRevision& r : state.revisions.at("shop")) out.push_back(r.number);
    return out;
  };
  REQUIRE(numbers() == std::vector<int>{1, 2, 3, 4, 5, 6, 7});

  Outcome<int> pruned = w.driver->PruneRevisions(1);
  REQUIRE(pruned.ok());
  CHECK(*pruned == 3);  // 1, 2, 5: 7 is current, 6 the rollout's previous, 3 and 4 in a status
  CHECK(numbers() == std::vector<int>{3, 4, 6, 7});
  CHECK(*w.driver->PruneRevisions(1) == 0);

  // A new leader (no cache) still rebuilds the workspaces not reached from revision 6.
  w.driver->EndTerm();
  w.driver = w.MakeDriver();
  std::vector<WorkspaceStatus> statuses = {stuck};
  for (const auto& [name, status] : w.statuses) statuses.push_back(status);
  REQUIRE(w.driver->BeginTerm(statuses).ok());
  const RevisionPin held = w.Pass("ws-b");
  CHECK(held.revision == 6);
  CHECK(held.product->product.default_version == "1.6");
  CHECK(w.Pass("ws-a").revision == 7);

  // The rollout completes and the stuck workspace is gone: only the current one stays.
  w.driver->Step();  // the canary's wave is done: paused
  REQUIRE(w.Stored().phase == ro::Phase::kPaused);
  REQUIRE(w.driver->Command("shop", "promote", "test").ok());
  for (int i = 0; i < 6 && w.Stored().phase != ro::Phase::kCompleted; ++i) {
    w.Drain();
    w.driver->Step();
  }
  REQUIRE(w.Stored().phase == ro::Phase::kCompleted);
  w.driver->Removed("ws-stuck");
  // The completed rollout still names 6 as its previous revision (undo's target).
  CHECK(*w.driver->PruneRevisions(1) == 2);  // 3, 4
  CHECK(numbers() == std::vector<int>{6, 7});
}
