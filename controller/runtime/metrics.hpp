#pragma once

// The controller's Prometheus metrics (docs/architecture.md#metrics): one registry object, passed in (no global),
// rendered in the text exposition format 0.0.4 by `GET /metrics`. Pure: no I/O, no clock.

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace tmaster::controller {

/// Upper bounds (seconds) of the tenant_master_reconcile_duration_seconds buckets; +Inf follows.
inline constexpr std::array kReconcileDurationBuckets{0.005, 0.01, 0.025, 0.05, 0.1,  0.25, 0.5,
                                                      1.0,   2.5,  5.0,   10.0, 30.0, 60.0};

/// Upper bounds (seconds) of the tenant_master_backup_duration_seconds buckets; +Inf follows.
inline constexpr std::array kBackupDurationBuckets{1.0,   5.0,   15.0,   30.0,   60.0,  120.0,
                                                   300.0, 600.0, 1800.0, 3600.0, 7200.0};

/// The ten metric families of docs/architecture.md#metrics, and the HTTP server's two
/// (tenant_master_http_rejected_total, tenant_master_http_open_connections; issue 9). Every
/// method is safe to call from several threads.
/// Families with no samples yet still render their `# HELP` and `# TYPE` lines.
class Metrics {
 public:
  Metrics();

  /// tenant_master_reconcile_total{result} += 1. `result` is "success", "failure" or "stalled";
  /// those three are always rendered (0 until seen); any other value is rendered once seen.
  void IncReconcile(const std::string& result);
  /// One observation of tenant_master_reconcile_duration_seconds. Negative values count as 0;
  /// NaN is ignored (it would poison _sum forever).
  void ObserveReconcileDuration(double seconds);
  /// tenant_master_workqueue_depth (gauge).
  void SetWorkqueueDepth(double depth);
  /// tenant_master_workqueue_retries_total, copied from the queue's own monotonic total. A value
  /// lower than the current one is ignored: a counter never goes backwards.
  void SetWorkqueueRetries(std::uint64_t total);
  /// tenant_master_workspaces{phase}: replaces every count. The seven phases (docs/architecture.md#status-and-events) are
  /// always rendered (0 when absent from `counts`); other keys are rendered as given.
  void SetWorkspacesByPhase(const std::map<std::string, int>& counts);
  /// tenant_master_drift_corrected_total{kind} += n.
  void IncDriftCorrected(const std::string& kind, std::uint64_t n = 1);
  /// tenant_master_source_last_sync_timestamp_seconds{source} (gauge).
  void SetSourceLastSync(const std::string& source, double unix_seconds);
  /// tenant_master_webhook_deliveries_total{verdict} += 1. The seven verdicts of
  /// controller/api/webhook.hpp and the server's "rate_limited" (a delivery refused 429 before
  /// it was verified or stored) are always rendered (0 until seen).
  void IncWebhookDelivery(const std::string& verdict);
  /// tenant_master_http_rejected_total{reason} += 1: a request or connection the HTTP server
  /// refused or cut itself. The reasons "header_too_large", "body_too_large", "busy",
  /// "too_many_connections", "timeout", "bad_request" (controller/api/http_listener.hpp
  /// Rejection) and "rate_limited" (any route's per-address limit) are always rendered.
  void IncHttpRejected(const std::string& reason);
  /// tenant_master_http_open_connections (gauge): client connections the HTTP server holds.
  void SetHttpOpenConnections(std::uint64_t open);
  /// tenant_master_leader: 1 while this replica holds the leader lock, else 0.
  void SetLeader(bool leader);
  /// tenant_master_rollout_workspaces{product,state} (gauge; docs/rollouts.md): the workspaces
  /// of `product`'s rollout by state (pending, inProgress, ready, failed), replacing what the
  /// product had. An empty `counts` removes the product's samples (no rollout any more).
  void SetRolloutWorkspaces(const std::string& product, const std::map<std::string, int>& counts);
  /// tenant_master_backup_last_success_timestamp_seconds{workspace} (gauge).
  void SetBackupLastSuccess(const std::string& workspace, double unix_seconds);
  /// tenant_master_backup_duration_seconds (histogram): how long one successful backup took.
  void ObserveBackupDuration(double seconds);
  /// tenant_master_backups_total{kind,result}: backups taken, by kind and result
  /// (success, failure).
  void IncBackup(const std::string& kind, const std::string& result);

  /// Every family in the text exposition format 0.0.4: `# HELP` and `# TYPE` lines, label values
  /// escaped (`\\`, `\"`, `\n`), families in the order of docs/architecture.md#metrics and samples by label value, so
  /// two renders of the same state are byte-identical.
  [[nodiscard]] std::string Render() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::uint64_t> reconcile_total_;
  // Per-bucket (not cumulative) counts; the last one is +Inf. Render accumulates.
  std::array<std::uint64_t, kReconcileDurationBuckets.size() + 1> duration_buckets_{};
  double duration_sum_ = 0;
  std::uint64_t duration_count_ = 0;
  double workqueue_depth_ = 0;
  std::uint64_t workqueue_retries_ = 0;
  std::map<std::string, int> workspaces_by_phase_;
  std::map<std::string, std::uint64_t> drift_corrected_;
  std::map<std::string, double> source_last_sync_;
  std::map<std::string, std::uint64_t> webhook_deliveries_;
  std::map<std::string, std::uint64_t> http_rejected_;
  std::uint64_t http_open_connections_ = 0;
  bool leader_ = false;
  std::map<std::string, double> backup_last_success_;
  std::array<std::uint64_t, kBackupDurationBuckets.size() + 1> backup_buckets_{};
  double backup_sum_ = 0;
  std::uint64_t backup_count_ = 0;
  std::map<std::pair<std::string, std::string>, std::uint64_t> backups_total_;
  std::map<std::string, std::map<std::string, int>> rollout_workspaces_;  ///< product, state
};

}  // namespace tmaster::controller
