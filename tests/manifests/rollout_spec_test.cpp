// Product.spec.rollout (docs/rollouts.md#the-policy): read with its defaults, and every rule of
// the CRD schema and of the loader (manifests/rollout_spec.hpp), each finding with its line,
// column and field path. A product with any finding is invalid: it is not loaded.
#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "manifests/loader.hpp"
#include "tests/support/temp_dir.hpp"

namespace {

using namespace std::chrono_literals;
using tmaster::manifests::Diagnostic;
using tmaster::manifests::Fleet;
using tmaster::manifests::LoadPaths;
using tmaster::manifests::Product;
using tmaster::manifests::RolloutSpec;
using tmaster::testing::TempDir;

// Lines 1-8; `rollout:` is written on line 9, its fields from line 10 on.
const std::string kHead =
    "apiVersion: tenantmaster.io/v1alpha1\nkind: Product\nmetadata:\n  name: erp\nspec:\n"
    "  image: ghcr.io/acme/erp\n  defaultVersion: \"1.0\"\n  stackTemplate: stacks/erp.yml\n";

// The policy of docs/rollouts.md, lines 10-17.
const std::string kFullPolicy =
    "    waves:\n"                                          // 10
    "      - {selector: {matchLabels: {ring: canary}}}\n"   // 11
    "      - {percent: 10}\n"                               // 12
    "      - {percent: 100}\n"                              // 13
    "    pauseBetweenWaves: 10m\n"                          // 14
    "    maxUnavailable: 2\n"                               // 15
    "    failureBudget: 1\n"                                // 16
    "    healthCheck: {path: /healthz, timeout: 60s}\n";    // 17

class ProductFile {
 public:
  ProductFile() { dir_.Write("stacks/erp.yml", "services: {app: {}}\n"); }

  /// Loads kHead + `rollout:` + `body`, then `tail` (more fields of spec, after the rollout so
  /// that the rollout's lines stay where the comments say).
  [[nodiscard]] Fleet Load(const std::string& body, const std::string& tail = "") const {
    dir_.Write("p.yaml", kHead + "  rollout:\n" + body + tail);
    return LoadPaths({dir_.path()}, {});
  }

  /// Every finding of the loaded file as `line:column: field: message` lines, after checking
  /// that each names this file.
  [[nodiscard]] std::string Findings(const Fleet& fleet) const {
    std::string out;
    for (const Diagnostic& d : fleet.diagnostics) {
      CHECK(d.where.file == (dir_.path() / "p.yaml").string());
      out += std::to_string(d.where.line) + ":" + std::to_string(d.where.column) + ": " + d.field +
             ": " + d.message + "\n";
    }
    return out;
  }

  /// The findings of `body`; also checks that the product was refused.
  [[nodiscard]] std::string Refused(const std::string& body, const std::string& tail = "") const {
    const Fleet fleet = Load(body, tail);
    CHECK(fleet.products.empty());
    return Findings(fleet);
  }

  /// The rollout of a product that loaded without a finding.
  [[nodiscard]] RolloutSpec Loaded(const std::string& body, const std::string& tail = "") const {
    const Fleet fleet = Load(body, tail);
    const std::string findings = Findings(fleet);
    INFO(findings);
    CHECK(findings.empty());
    REQUIRE(fleet.products.size() == 1);
    REQUIRE(fleet.products[0].rollout.has_value());
    return *fleet.products[0].rollout;
  }

  [[nodiscard]] const TempDir& dir() const { return dir_; }

 private:
  TempDir dir_;
};

std::string Waves(int count) {
  std::string out = "    waves:\n";
  for (int i = 1; i <= count; ++i) out += "      - {percent: " + std::to_string(i) + "}\n";
  return out;
}

}  // namespace

TEST_CASE("rollout spec: the full policy of docs/rollouts.md loads as written") {
  ProductFile file;
  const RolloutSpec rollout = file.Loaded(kFullPolicy);
  REQUIRE(rollout.waves.size() == 3);
  CHECK(rollout.waves[0].IsSelector());
  CHECK(rollout.waves[0].match_labels == std::map<std::string, std::string>{{"ring", "canary"}});
  CHECK_FALSE(rollout.waves[0].percent.has_value());
  CHECK_FALSE(rollout.waves[1].IsSelector());
  CHECK(rollout.waves[1].percent == 10);
  CHECK(rollout.waves[1].match_labels.empty());
  CHECK(rollout.waves[2].percent == 100);
  CHECK(rollout.ready_timeout == 10min);
  CHECK(rollout.pause_between_waves == 10min);
  CHECK(rollout.max_unavailable == 2);
  CHECK(rollout.failure_budget == 1);
  REQUIRE(rollout.health_check.has_value());
  CHECK(rollout.health_check->path == "/healthz");
  CHECK(rollout.health_check->timeout == 60s);
}

TEST_CASE("rollout spec: defaults, and values other than the defaults") {
  ProductFile file;
  SUBCASE("no rollout: none") {
    TempDir plain;
    plain.Write("stacks/erp.yml", "services: {}\n");
    plain.Write("p.yaml", kHead);
    const Fleet fleet = LoadPaths({plain.path()}, {});
    REQUIRE(fleet.products.size() == 1);
    CHECK_FALSE(fleet.products[0].rollout.has_value());
  }
  SUBCASE("only waves: no pause, one at a time, the first failure halts, no health check") {
    const RolloutSpec rollout = file.Loaded("    waves: [{percent: 100}]\n");
    REQUIRE(rollout.waves.size() == 1);
    CHECK(rollout.waves[0].percent == 100);
    CHECK(rollout.ready_timeout == 10min);
    CHECK(rollout.pause_between_waves == 0s);
    CHECK(rollout.max_unavailable == 1);
    CHECK(rollout.failure_budget == 1);
    CHECK_FALSE(rollout.health_check.has_value());
  }
  SUBCASE("a health check without a timeout waits 60s") {
    const RolloutSpec rollout =
        file.Loaded("    waves: [{percent: 100}]\n    healthCheck: {path: \"/ready?deep=1\"}\n");
    REQUIRE(rollout.health_check.has_value());
    CHECK(rollout.health_check->path == "/ready?deep=1");
    CHECK(rollout.health_check->timeout == 60s);
  }
  SUBCASE("every field set") {
    const RolloutSpec rollout = file.Loaded(
        "    waves:\n"
        "      - selector: {matchLabels: {example.com/ring: canary, tier: \"\"}}\n"
        "      - {percent: 50}\n"
        "    pauseBetweenWaves: 24h\n    maxUnavailable: 5\n    failureBudget: 3\n"
        "    readyTimeout: 1h30m\n"
        "    healthCheck: {path: /, timeout: 2m30s}\n");
    REQUIRE(rollout.waves.size() == 2);
    CHECK(rollout.waves[0].match_labels ==
          std::map<std::string, std::string>{{"example.com/ring", "canary"}, {"tier", ""}});
    CHECK(rollout.waves[1].percent == 50);
    CHECK(rollout.ready_timeout == 90min);
    CHECK(rollout.pause_between_waves == 24h);
    CHECK(rollout.max_unavailable == 5);
    CHECK(rollout.failure_budget == 3);
    CHECK(rollout.health_check->path == "/");
    CHECK(rollout.health_check->timeout == 150s);
  }
  SUBCASE("a pause of 0s, and twenty waves") {
    std::string waves = "    waves:\n";
    for (int i = 1; i <= 20; ++i) waves += "      - {percent: " + std::to_string(i * 5) + "}\n";
    const RolloutSpec rollout = file.Loaded(waves + "    pauseBetweenWaves: 0s\n");
    CHECK(rollout.waves.size() == 20);
    CHECK(rollout.waves.back().percent == 100);
    CHECK(rollout.pause_between_waves == 0s);
  }
  SUBCASE("percent waves need only increase among themselves; selector waves sit anywhere") {
    const RolloutSpec rollout = file.Loaded(
        "    waves:\n      - {percent: 5}\n      - {selector: {matchLabels: {ring: beta}}}\n"
        "      - {percent: 6}\n      - {selector: {matchLabels: {ring: late}}}\n");
    CHECK(rollout.waves.size() == 4);
  }
}

TEST_CASE("rollout spec: unknown fields are refused where they are written") {
  ProductFile file;
  CHECK(file.Refused(kFullPolicy + "    maxSurge: 1\n") ==
        "18:5: spec.rollout.maxSurge: unknown field \"maxSurge\"\n");
  CHECK(file.Refused("    waves:\n      - {percent: 10, weight: 2}\n") ==
        "11:23: spec.rollout.waves[0].weight: unknown field \"weight\"\n");
  CHECK(file.Refused("    waves:\n      - selector:\n          matchLabels: {ring: a}\n"
                     "          matchExpressions: []\n") ==
        "13:11: spec.rollout.waves[0].selector.matchExpressions: unknown field "
        "\"matchExpressions\"\n");
  CHECK(file.Refused("    waves: [{percent: 100}]\n    healthCheck: {path: /h, port: 8080}\n") ==
        "11:29: spec.rollout.healthCheck.port: unknown field \"port\"\n");
}

TEST_CASE("rollout spec: a wave is a selector or a percent, not both, not neither") {
  ProductFile file;
  CHECK(file.Refused("    waves:\n      - {percent: 10}\n"
                     "      - {selector: {matchLabels: {ring: canary}}, percent: 20}\n") ==
        "12:9: spec.rollout.waves[1]: a wave is either a selector or a percent, not both (write "
        "two waves for both)\n");
  CHECK(file.Refused("    waves:\n      - {percent: 10}\n      - {}\n") ==
        "12:9: spec.rollout.waves[1]: a wave needs a selector ({selector: {matchLabels: "
        "{...}}}) or a percent ({percent: 10})\n");
  // Block style: the wave's first key.
  CHECK(file.Refused("    waves:\n      - selectr:\n          matchLabels: {ring: a}\n") ==
        "11:9: spec.rollout.waves[0].selectr: unknown field \"selectr\"\n");
  CHECK(file.Refused("    waves:\n      - {percent: 10, readyTimeout: 5m}\n") ==
        "11:23: spec.rollout.waves[0].readyTimeout: unknown field \"readyTimeout\"\n");
  CHECK(file.Refused("    waves:\n      -\n") ==
        "11:7: spec.rollout.waves[0]: must be object, got null\n");
  CHECK(file.Refused("    waves:\n      - {}\n") ==
        "11:9: spec.rollout.waves[0]: a wave needs a selector ({selector: {matchLabels: "
        "{...}}}) or a percent ({percent: 10})\n");
  CHECK(file.Refused("    waves:\n      - {selector: {}}\n") ==
        "11:20: spec.rollout.waves[0].selector.matchLabels: required field is missing\n");
}

TEST_CASE("rollout spec: percent is an integer from 1 to 100") {
  ProductFile file;
  CHECK(file.Refused("    waves:\n      - {percent: 0}\n") ==
        "11:19: spec.rollout.waves[0].percent: must be >= 1, got 0\n");
  CHECK(file.Refused("    waves:\n      - {percent: 50}\n      - {percent: 101}\n") ==
        "12:19: spec.rollout.waves[1].percent: must be <= 100, got 101\n");
  CHECK(file.Refused("    waves:\n      - {percent: \"10\"}\n")
            .find("11:19: spec.rollout.waves[0].percent: must be integer, got string \"10\"") == 0);
  CHECK(file.Refused("    waves:\n      - {percent: 12.5}\n")
            .find("11:19: spec.rollout.waves[0].percent: must be integer, got number 12.5") == 0);
}

TEST_CASE("rollout spec: percentages are cumulative, so they must increase") {
  ProductFile file;
  CHECK(file.Refused("    waves:\n      - {percent: 10}\n      - {percent: 5}\n") ==
        "12:19: spec.rollout.waves[1].percent: must be greater than the percent of "
        "spec.rollout.waves[0] (10): percentages are cumulative, each the share of the product's "
        "workspaces reached once its wave is done\n");
  // Equal is not an increase; a selector wave between them changes nothing; the error names
  // the last percent wave before it.
  CHECK(file.Refused("    waves:\n      - {percent: 10}\n      - {percent: 50}\n"
                     "      - {selector: {matchLabels: {ring: x}}}\n      - {percent: 50}\n"
                     "      - {percent: 100}\n") ==
        "14:19: spec.rollout.waves[3].percent: must be greater than the percent of "
        "spec.rollout.waves[1] (50): percentages are cumulative, each the share of the product's "
        "workspaces reached once its wave is done\n");
}

TEST_CASE("rollout spec: waves: 1 to 20, and required") {
  ProductFile file;
  CHECK(file.Refused("    waves: []\n") ==
        "10:12: spec.rollout.waves: must have at least 1 item, got 0\n");
  CHECK(file.Refused(Waves(21)) ==
        "11:7: spec.rollout.waves: must have at most 20 items, got 21\n");
  CHECK(file.Refused("    pauseBetweenWaves: 1m\n") ==
        "10:5: spec.rollout.waves: required field is missing\n");
  CHECK(file.Refused("    waves: {percent: 10}\n") ==
        "10:12: spec.rollout.waves: must be array, got object\n");
}

TEST_CASE("rollout spec: matchLabels: not empty, keys and values as metadata.labels") {
  ProductFile file;
  CHECK(file.Refused("    waves:\n      - {selector: {matchLabels: {}}}\n") ==
        "11:34: spec.rollout.waves[0].selector.matchLabels: must have at least 1 entry, got 0\n");
  CHECK(file.Refused("    waves:\n      - {selector: {matchLabels: {\"bad key\": x}}}\n") ==
        "11:35: spec.rollout.waves[0].selector.matchLabels[\"bad key\"]: invalid label key "
        "\"bad key\": key name must consist of letters, digits, '-', '_' or '.', and start and "
        "end with a letter or digit\n");
  CHECK(file.Refused("    waves:\n      - {selector: {matchLabels: {Example.com/ring: x}}}\n") ==
        "11:35: spec.rollout.waves[0].selector.matchLabels[Example.com/ring]: invalid label key "
        "\"Example.com/ring\": key prefix must be a DNS subdomain of at most 253 characters "
        "(lower-case letters, digits, '-' and '.')\n");
  CHECK(file.Refused("    waves:\n      - {selector: {matchLabels: {ring: \"can ary\"}}}\n") ==
        "11:41: spec.rollout.waves[0].selector.matchLabels[ring]: invalid label value "
        "\"can ary\": value must be empty or consist of letters, digits, '-', '_' or '.', and "
        "start and end with a letter or digit\n");
  CHECK(file.Refused("    waves:\n      - {selector: {matchLabels: {ring: " + std::string(64, 'a') +
                     "}}}\n") ==
        "11:41: spec.rollout.waves[0].selector.matchLabels[ring]: invalid label value \"" +
            std::string(64, 'a') + "\": value must be at most 63 characters\n");
  CHECK(file.Refused("    waves:\n      - {selector: {matchLabels: {beta: true}}}\n") ==
        "11:41: spec.rollout.waves[0].selector.matchLabels[beta]: must be string, got boolean "
        "true (quote it to make it a string)\n");
}

TEST_CASE("rollout spec: maxUnavailable and failureBudget are at least 1") {
  ProductFile file;
  const std::string waves = "    waves: [{percent: 100}]\n";
  CHECK(file.Refused(waves + "    maxUnavailable: 0\n") ==
        "11:21: spec.rollout.maxUnavailable: must be >= 1, got 0\n");
  CHECK(file.Refused(waves + "    failureBudget: -1\n") ==
        "11:20: spec.rollout.failureBudget: must be >= 1, got -1\n");
  CHECK(file.Refused(waves + "    maxUnavailable: 3000000000\n") ==
        "11:21: spec.rollout.maxUnavailable: must fit in a 32-bit integer, got 3000000000\n");
}

TEST_CASE("rollout spec: durations parse as the config's; a pause of at most 24h") {
  ProductFile file;
  const std::string waves = "    waves: [{percent: 100}]\n";
  CHECK(file.Refused(waves + "    pauseBetweenWaves: 10x\n") ==
        "11:24: spec.rollout.pauseBetweenWaves: must be a duration such as 90s, 5m or 1h30m, got "
        "string \"10x\"\n");
  CHECK(file.Refused(waves + "    pauseBetweenWaves: 25h\n") ==
        "11:24: spec.rollout.pauseBetweenWaves: must be at most 24h, got \"25h\"\n");
  CHECK(file.Refused(waves + "    pauseBetweenWaves: 24h0m1s\n") ==
        "11:24: spec.rollout.pauseBetweenWaves: must be at most 24h, got \"24h0m1s\"\n");
  CHECK(file.Refused(waves + "    pauseBetweenWaves: 10\n")
            .find("11:24: spec.rollout.pauseBetweenWaves: must be string, got integer 10") == 0);
  CHECK(file.Refused(waves + "    readyTimeout: 500ms\n") ==
        "11:19: spec.rollout.readyTimeout: must be a duration such as 90s, 5m or 1h30m, got "
        "string \"500ms\"\n");
  CHECK(file.Refused(waves + "    readyTimeout: 0s\n") ==
        "11:19: spec.rollout.readyTimeout: must be longer than 0s\n");
  CHECK(file.Refused(waves + "    healthCheck: {path: /healthz, timeout: 0s}\n") ==
        "11:44: spec.rollout.healthCheck.timeout: must be longer than 0s\n");
  CHECK(file.Refused(waves + "    healthCheck: {path: /healthz, timeout: 1m60}\n") ==
        "11:44: spec.rollout.healthCheck.timeout: must be a duration such as 90s, 5m or 1h30m, "
        "got string \"1m60\"\n");
}

TEST_CASE("rollout spec: healthCheck.path") {
  ProductFile file;
  const std::string waves = "    waves: [{percent: 100}]\n";
  CHECK(file.Refused(waves + "    healthCheck: {path: healthz}\n") ==
        "11:25: spec.rollout.healthCheck.path: must start with '/', got \"healthz\"\n");
  CHECK(file.Refused(waves + "    healthCheck: {path: \"/health z\"}\n") ==
        "11:25: spec.rollout.healthCheck.path: must hold only visible ASCII characters (no space "
        "or control character; percent-encode anything else), got \"/health z\"\n");
  CHECK(file.Refused(waves + "    healthCheck: {path: \"/a\\tb\\x01\"}\n") ==
        "11:25: spec.rollout.healthCheck.path: must hold only visible ASCII characters (no space "
        "or control character; percent-encode anything else), got \"/a\\tb\\x01\"\n");
  CHECK(file.Refused(waves + "    healthCheck: {path: /gesundheit/ü}\n")
            .find("11:25: spec.rollout.healthCheck.path: must hold only visible ASCII") == 0);
  CHECK(file.Refused(waves + "    healthCheck: {path: \"\"}\n") ==
        "11:25: spec.rollout.healthCheck.path: must not be empty\n");
  CHECK(file.Refused(waves + "    healthCheck: {path: /" + std::string(200, 'a') + "}\n") ==
        "11:25: spec.rollout.healthCheck.path: must be at most 200 characters long, got 201\n");
  CHECK(file.Refused(waves + "    healthCheck: {timeout: 5s}\n") ==
        "11:18: spec.rollout.healthCheck.path: required field is missing\n");
  // 200 characters are allowed.
  CHECK(file.Loaded(waves + "    healthCheck: {path: /" + std::string(199, 'a') + "}\n")
            .health_check->path.size() == 200);
}

TEST_CASE("rollout spec: a health check needs the dedicated mode") {
  ProductFile file;
  CHECK(file.Refused("    waves: [{percent: 100}]\n    healthCheck: {path: /healthz}\n",
                     "  modes: [shared]\n") ==
        "11:5: spec.rollout.healthCheck: only allowed when the product offers the dedicated mode "
        "(spec.modes has no dedicated): it probes a dedicated workspace's own stack\n");
  // Without a health check, a shared-only product may have a rollout.
  CHECK(file.Loaded("    waves: [{percent: 100}]\n", "  modes: [shared]\n").waves.size() == 1);
}

TEST_CASE("rollout spec: every finding of a document is reported, in file order") {
  ProductFile file;
  // Schema findings hide the loader's rules (as for every field): fix the shape first.
  CHECK(file.Refused("    waves:\n      - {percent: 10}\n      - {percent: 5}\n"
                     "    maxUnavailable: 0\n") ==
        "13:21: spec.rollout.maxUnavailable: must be >= 1, got 0\n");
  // The loader's findings all at once.
  CHECK(file.Refused("    waves:\n      - {percent: 10}\n      - {percent: 5}\n"
                     "      - {selector: {matchLabels: {ring: a}}, percent: 50}\n"
                     "    pauseBetweenWaves: 2d\n    healthCheck: {path: x}\n") ==
        "12:19: spec.rollout.waves[1].percent: must be greater than the percent of "
        "spec.rollout.waves[0] (10): percentages are cumulative, each the share of the product's "
        "workspaces reached once its wave is done\n"
        "13:9: spec.rollout.waves[2]: a wave is either a selector or a percent, not both (write "
        "two waves for both)\n"
        "14:24: spec.rollout.pauseBetweenWaves: must be a duration such as 90s, 5m or 1h30m, got "
        "string \"2d\"\n"
        "15:25: spec.rollout.healthCheck.path: must start with '/', got \"x\"\n");
}

TEST_CASE("rollout spec: a product with a bad rollout refuses its workspaces, naming it") {
  ProductFile file;
  const Fleet fleet = file.Load("    waves: [{percent: 0}]\n",
                                "---\napiVersion: tenantmaster.io/v1alpha1\nkind: Workspace\n"
                                "metadata: {name: acme}\nspec: {product: erp, mode: shared}\n");
  CHECK(fleet.products.empty());
  CHECK(fleet.workspaces.empty());
  REQUIRE(fleet.rejected.size() == 1);
  CHECK(fleet.rejected[0].message.find("Product \"erp\" is invalid") != std::string::npos);
}
