// The Prometheus registry (docs/architecture.md#metrics): families, counters, histogram, escaping,
// rendering.
#include <doctest/doctest.h>

#include <array>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "controller/runtime/metrics.hpp"

namespace {

using tmaster::controller::Metrics;

constexpr std::array<const char*, 15> kFamilies{
    "tenant_master_reconcile_total",
    "tenant_master_reconcile_duration_seconds",
    "tenant_master_workqueue_depth",
    "tenant_master_workqueue_retries_total",
    "tenant_master_workspaces",
    "tenant_master_drift_corrected_total",
    "tenant_master_source_last_sync_timestamp_seconds",
    "tenant_master_webhook_deliveries_total",
    "tenant_master_http_rejected_total",
    "tenant_master_http_open_connections",
    "tenant_master_leader",
    "tenant_master_backup_last_success_timestamp_seconds",
    "tenant_master_backup_duration_seconds",
    "tenant_master_backups_total",
    "tenant_master_rollout_workspaces",
};

// Every sample line of a render, "name{labels}" -> value. Comment lines are skipped.
std::map<std::string, std::string> Samples(const std::string& text) {
  std::map<std::string, std::string> out;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    const std::size_t space = line.rfind(' ');
    REQUIRE(space != std::string::npos);
    out[line.substr(0, space)] = line.substr(space + 1);
  }
  return out;
}

std::optional<std::string> Value(const Metrics& metrics, const std::string& series) {
  const auto samples = Samples(metrics.Render());
  const auto found = samples.find(series);
  if (found == samples.end()) return std::nullopt;
  return found->second;
}

}  // namespace

TEST_CASE("Metrics: every family has HELP and TYPE before any sample, with the right type") {
  const Metrics metrics;
  const std::string text = metrics.Render();
  const std::map<std::string, std::string> types{
      {"tenant_master_reconcile_total", "counter"},
      {"tenant_master_reconcile_duration_seconds", "histogram"},
      {"tenant_master_workqueue_depth", "gauge"},
      {"tenant_master_workqueue_retries_total", "counter"},
      {"tenant_master_workspaces", "gauge"},
      {"tenant_master_drift_corrected_total", "counter"},
      {"tenant_master_source_last_sync_timestamp_seconds", "gauge"},
      {"tenant_master_webhook_deliveries_total", "counter"},
      {"tenant_master_http_rejected_total", "counter"},
      {"tenant_master_http_open_connections", "gauge"},
      {"tenant_master_leader", "gauge"},
      {"tenant_master_backup_last_success_timestamp_seconds", "gauge"},
      {"tenant_master_backup_duration_seconds", "histogram"},
      {"tenant_master_backups_total", "counter"},
      {"tenant_master_rollout_workspaces", "gauge"},
  };
  for (const char* family : kFamilies) {
    CAPTURE(family);
    const std::string help = std::string("# HELP ") + family + " ";
    const std::string type = std::string("# TYPE ") + family + " " + types.at(family) + "\n";
    CHECK(text.find(help) != std::string::npos);
    CHECK(text.find(type) != std::string::npos);
  }
  // Exactly these families: no stray TYPE lines.
  std::size_t type_lines = 0;
  for (std::size_t at = text.find("# TYPE "); at != std::string::npos;
       at = text.find("# TYPE ", at + 1)) {
    ++type_lines;
  }
  CHECK(type_lines == kFamilies.size());
  CHECK(text.back() == '\n');
}

TEST_CASE("Metrics: pre-declared series start at 0; labeled families without samples render none") {
  const Metrics metrics;
  for (const char* result : {"success", "failure", "stalled"}) {
    CHECK(Value(metrics, std::string("tenant_master_reconcile_total{result=\"") + result + "\"}") ==
          "0");
  }
  for (const char* verdict : {"accepted", "ignored_branch", "ignored_event", "bad_signature",
                              "missing_signature", "too_large", "malformed", "rate_limited"}) {
    CHECK(Value(metrics, std::string("tenant_master_webhook_deliveries_total{verdict=\"") +
                             verdict + "\"}") == "0");
  }
  for (const char* reason : {"header_too_large", "body_too_large", "busy", "too_many_connections",
                             "timeout", "bad_request", "rate_limited"}) {
    CHECK(Value(metrics, std::string("tenant_master_http_rejected_total{reason=\"") + reason +
                             "\"}") == "0");
  }
  CHECK(Value(metrics, "tenant_master_http_open_connections") == "0");
  CHECK(Value(metrics, "tenant_master_leader") == "0");
  CHECK(Value(metrics, "tenant_master_workqueue_depth") == "0");
  CHECK(Value(metrics, "tenant_master_workqueue_retries_total") == "0");
  const std::string text = metrics.Render();
  CHECK(text.find("tenant_master_drift_corrected_total{") == std::string::npos);
  CHECK(text.find("tenant_master_source_last_sync_timestamp_seconds{") == std::string::npos);
  CHECK(text.find("tenant_master_backup_last_success_timestamp_seconds{") == std::string::npos);
}

TEST_CASE("Metrics: counters increment per label value") {
  Metrics metrics;
  metrics.IncReconcile("success");
  metrics.IncReconcile("success");
  metrics.IncReconcile("failure");
  metrics.IncDriftCorrected("role");
  metrics.IncDriftCorrected("role", 3);
  metrics.IncDriftCorrected("database");
  metrics.IncWebhookDelivery("accepted");
  metrics.IncWebhookDelivery("bad_signature");
  metrics.IncWebhookDelivery("bad_signature");
  CHECK(Value(metrics, "tenant_master_reconcile_total{result=\"success\"}") == "2");
  CHECK(Value(metrics, "tenant_master_reconcile_total{result=\"failure\"}") == "1");
  CHECK(Value(metrics, "tenant_master_reconcile_total{result=\"stalled\"}") == "0");
  CHECK(Value(metrics, "tenant_master_drift_corrected_total{kind=\"role\"}") == "4");
  CHECK(Value(metrics, "tenant_master_drift_corrected_total{kind=\"database\"}") == "1");
  CHECK(Value(metrics, "tenant_master_webhook_deliveries_total{verdict=\"accepted\"}") == "1");
  CHECK(Value(metrics, "tenant_master_webhook_deliveries_total{verdict=\"bad_signature\"}") == "2");
  CHECK(Value(metrics, "tenant_master_webhook_deliveries_total{verdict=\"too_large\"}") == "0");
  metrics.IncHttpRejected("timeout");
  metrics.IncHttpRejected("timeout");
  metrics.SetHttpOpenConnections(7);
  metrics.SetHttpOpenConnections(4);
  CHECK(Value(metrics, "tenant_master_http_rejected_total{reason=\"timeout\"}") == "2");
  CHECK(Value(metrics, "tenant_master_http_rejected_total{reason=\"busy\"}") == "0");
  CHECK(Value(metrics, "tenant_master_http_open_connections") == "4");
}

TEST_CASE("Metrics: gauges and the retries counter take the last value set") {
  Metrics metrics;
  metrics.SetWorkqueueDepth(7);
  metrics.SetWorkqueueDepth(3);
  metrics.SetLeader(true);
  metrics.SetWorkqueueRetries(5);
  metrics.SetWorkqueueRetries(9);
  metrics.SetSourceLastSync("upstream", 1700000000);
  metrics.SetSourceLastSync("upstream", 1700000060);
  metrics.SetBackupLastSuccess("acme", 1700000123.5);
  CHECK(Value(metrics, "tenant_master_workqueue_depth") == "3");
  CHECK(Value(metrics, "tenant_master_leader") == "1");
  CHECK(Value(metrics, "tenant_master_workqueue_retries_total") == "9");
  CHECK(Value(metrics, "tenant_master_source_last_sync_timestamp_seconds{source=\"upstream\"}") ==
        "1700000060");
  CHECK(Value(metrics, "tenant_master_backup_last_success_timestamp_seconds{workspace=\"acme\"}") ==
        "1700000123.5");
  // A counter never goes backwards, even if the queue were recreated.
  metrics.SetWorkqueueRetries(2);
  CHECK(Value(metrics, "tenant_master_workqueue_retries_total") == "9");
  metrics.SetLeader(false);
  CHECK(Value(metrics, "tenant_master_leader") == "0");
}

TEST_CASE("Metrics: a rollout's counts replace the product's; none removes its samples") {
  Metrics metrics;
  metrics.SetRolloutWorkspaces("erp", {{"pending", 18}, {"inProgress", 2}});
  metrics.SetRolloutWorkspaces("shop", {{"ready", 4}});
  CHECK(Value(metrics, R"(tenant_master_rollout_workspaces{product="erp",state="pending"})") == "18");
  metrics.SetRolloutWorkspaces("erp", {{"pending", 17}, {"ready", 3}});
  CHECK(Value(metrics, R"(tenant_master_rollout_workspaces{product="erp",state="pending"})") == "17");
  CHECK(Value(metrics, R"(tenant_master_rollout_workspaces{product="erp",state="ready"})") == "3");
  CHECK(Value(metrics, R"(tenant_master_rollout_workspaces{product="erp",state="inProgress"})") == std::nullopt);
  metrics.SetRolloutWorkspaces("erp", {});
  CHECK(Value(metrics, R"(tenant_master_rollout_workspaces{product="erp",state="ready"})") == std::nullopt);
  CHECK(Value(metrics, R"(tenant_master_rollout_workspaces{product="shop",state="ready"})") == "4");
}

TEST_CASE("Metrics: the reconcile duration histogram is cumulative with _sum and _count") {
  Metrics metrics;
  metrics.ObserveReconcileDuration(0.003);  // <= 0.005
  metrics.ObserveReconcileDuration(0.005);  // le is inclusive: still the 0.005 bucket
  metrics.ObserveReconcileDuration(0.2);    // 0.25
  metrics.ObserveReconcileDuration(3);      // 5
  metrics.ObserveReconcileDuration(120);    // +Inf only
  const std::string b = "tenant_master_reconcile_duration_seconds_bucket{le=\"";
  const std::vector<std::pair<std::string, std::string>> expected{
      {"0.005", "2"}, {"0.01", "2"}, {"0.025", "2"}, {"0.05", "2"}, {"0.1", "2"},
      {"0.25", "3"},  {"0.5", "3"},  {"1", "3"},     {"2.5", "3"},  {"5", "4"},
      {"10", "4"},    {"30", "4"},   {"60", "4"},    {"+Inf", "5"},
  };
  const auto samples = Samples(metrics.Render());
  for (const auto& [le, count] : expected) {
    CAPTURE(le);
    const auto found = samples.find(b + le + "\"}");
    REQUIRE(found != samples.end());
    CHECK(found->second == count);
  }
  std::size_t buckets = 0;
  for (const auto& [series, value] : samples) {
    if (series.rfind("tenant_master_reconcile_duration_seconds_bucket", 0) == 0) ++buckets;
  }
  CHECK(buckets == expected.size());
  CHECK(samples.at("tenant_master_reconcile_duration_seconds_count") == "5");
  CHECK(std::stod(samples.at("tenant_master_reconcile_duration_seconds_sum")) ==
        doctest::Approx(123.208));
  // Buckets appear in increasing order of le, as Prometheus requires.
  const std::string text = metrics.Render();
  CHECK(text.find(b + "0.005\"}") < text.find(b + "0.01\"}"));
  CHECK(text.find(b + "60\"}") < text.find(b + "+Inf\"}"));
}

TEST_CASE("Metrics: negative durations count as 0 and NaN is ignored") {
  Metrics metrics;
  metrics.ObserveReconcileDuration(-1);
  metrics.ObserveReconcileDuration(std::numeric_limits<double>::quiet_NaN());
  CHECK(Value(metrics, "tenant_master_reconcile_duration_seconds_count") == "1");
  CHECK(Value(metrics, "tenant_master_reconcile_duration_seconds_sum") == "0");
  CHECK(Value(metrics, "tenant_master_reconcile_duration_seconds_bucket{le=\"0.005\"}") == "1");
}

TEST_CASE("Metrics: label values are escaped") {
  Metrics metrics;
  metrics.IncDriftCorrected("a\\b\"c\nd");
  const std::string text = metrics.Render();
  CHECK(text.find("tenant_master_drift_corrected_total{kind=\"a\\\\b\\\"c\\nd\"} 1\n") !=
        std::string::npos);
  // No raw newline inside the sample line.
  CHECK(text.find("a\\b") == std::string::npos);
}

TEST_CASE("Metrics: all seven phases are always present; a new count replaces the old one") {
  Metrics metrics;
  metrics.SetWorkspacesByPhase({{"Ready", 5}, {"Stalled", 1}});
  const std::array<const char*, 7> phases{"Pending", "Progressing", "Ready",   "Degraded",
                                          "Stalled", "Suspended",   "Deleting"};
  auto samples = Samples(metrics.Render());
  for (const char* phase : phases) {
    CAPTURE(phase);
    const auto found =
        samples.find(std::string("tenant_master_workspaces{phase=\"") + phase + "\"}");
    REQUIRE(found != samples.end());
    const std::string expected = std::string(phase) == "Ready"     ? "5"
                                 : std::string(phase) == "Stalled" ? "1"
                                                                   : "0";
    CHECK(found->second == expected);
  }
  metrics.SetWorkspacesByPhase({{"Progressing", 2}});
  samples = Samples(metrics.Render());
  CHECK(samples.at("tenant_master_workspaces{phase=\"Ready\"}") == "0");
  CHECK(samples.at("tenant_master_workspaces{phase=\"Stalled\"}") == "0");
  CHECK(samples.at("tenant_master_workspaces{phase=\"Progressing\"}") == "2");
}

TEST_CASE("Metrics: two renders of the same state are identical, and the order is stable") {
  Metrics metrics;
  metrics.SetSourceLastSync("zeta", 2);
  metrics.SetSourceLastSync("alpha", 1);
  const std::string text = metrics.Render();
  CHECK(text == metrics.Render());
  CHECK(text.find("{source=\"alpha\"}") < text.find("{source=\"zeta\"}"));
  // Families in the order of docs/architecture.md#metrics.
  std::size_t previous = 0;
  for (const char* family : kFamilies) {
    CAPTURE(family);
    const std::size_t at = text.find(std::string("# HELP ") + family + " ");
    REQUIRE(at != std::string::npos);
    CHECK(at >= previous);
    previous = at;
  }
}

TEST_CASE("Metrics: concurrent increments are all counted") {
  Metrics metrics;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&metrics] {
      for (int i = 0; i < 1000; ++i) {
        metrics.IncReconcile("success");
        metrics.ObserveReconcileDuration(0.01);
        if (i % 100 == 0) (void)metrics.Render();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(Value(metrics, "tenant_master_reconcile_total{result=\"success\"}") == "4000");
  CHECK(Value(metrics, "tenant_master_reconcile_duration_seconds_count") == "4000");
}

TEST_CASE("Metrics: backups: the duration histogram is cumulative; the counter by kind and result") {
  Metrics metrics;
  metrics.ObserveBackupDuration(0.5);
  metrics.ObserveBackupDuration(20);
  metrics.ObserveBackupDuration(100000);
  metrics.IncBackup("scheduled", "success");
  metrics.IncBackup("scheduled", "success");
  metrics.IncBackup("final", "failure");
  CHECK(Value(metrics, "tenant_master_backup_duration_seconds_bucket{le=\"1\"}") == "1");
  CHECK(Value(metrics, "tenant_master_backup_duration_seconds_bucket{le=\"15\"}") == "1");
  CHECK(Value(metrics, "tenant_master_backup_duration_seconds_bucket{le=\"30\"}") == "2");
  CHECK(Value(metrics, "tenant_master_backup_duration_seconds_bucket{le=\"+Inf\"}") == "3");
  CHECK(Value(metrics, "tenant_master_backup_duration_seconds_count") == "3");
  CHECK(Value(metrics, "tenant_master_backups_total{kind=\"scheduled\",result=\"success\"}") == "2");
  CHECK(Value(metrics, "tenant_master_backups_total{kind=\"final\",result=\"failure\"}") == "1");
  CHECK_FALSE(Value(metrics, "tenant_master_backups_total{kind=\"final\",result=\"success\"}"));
}
