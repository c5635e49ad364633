#include "controller/runtime/metrics.hpp"

#include <charconv>
#include <cmath>
#include <cstddef>
#include <string_view>

namespace tmaster::controller {
namespace {

// docs/architecture.md#status-and-events and controller/api/webhook.hpp ToString(Verdict): pre-declared so a dashboard sees a 0
// series before the first event instead of "no data".
constexpr std::array<std::string_view, 7> kPhases{"Pending", "Progressing", "Ready",   "Degraded",
                                                  "Stalled", "Suspended",   "Deleting"};
constexpr std::array<std::string_view, 8> kVerdicts{
    "accepted",          "ignored_branch", "ignored_event", "bad_signature",
    "missing_signature", "too_large",      "malformed",     "rate_limited"};
// controller/api/http_listener.hpp ToString(Rejection), and the routes' "rate_limited".
constexpr std::array<std::string_view, 8> kHttpRejections{
    "header_too_large", "body_too_large", "busy",         "too_many_connections",
    "timeout",          "bad_request",    "rate_limited", "stream_overflow"};
constexpr std::array<std::string_view, 3> kReconcileResults{"success", "failure", "stalled"};

// Prometheus' own spelling of the special values; integers without an exponent, so timestamps
// read as `1700000000` rather than `1.7e+09`.
std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (value == std::trunc(value) && std::fabs(value) < 1e15) {
    return std::to_string(static_cast<long long>(value));
  }
  std::array<char, 64> buffer{};
  const auto result = std::to_chars(buffer.data(), buffer.data() + buffer.size(), value);
  return {buffer.data(), result.ptr};
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '"': out += "\\\""; break;
      case '\n': out += "\\n"; break;
      default: out += c;
    }
  }
  return out;
}

void Header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out.append("# HELP ").append(name).append(" ").append(help).append("\n");
  out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void Sample(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(" ").append(value).append("\n");
}

void LabeledSample(std::string& out, std::string_view name, std::string_view label,
                   std::string_view label_value, std::string_view value) {
  out.append(name).append("{").append(label).append("=\"").append(EscapeLabelValue(label_value));
  out.append("\"} ").append(value).append("\n");
}

template <class Map>
void LabeledSamples(std::string& out, std::string_view name, std::string_view label,
                    const Map& samples) {
  for (const auto& [label_value, value] : samples) {
    LabeledSample(out, name, label, label_value, FormatValue(static_cast<double>(value)));
  }
}

}  // namespace

Metrics::Metrics() {
  for (const auto result : kReconcileResults) reconcile_total_[std::string(result)] = 0;
  for (const auto verdict : kVerdicts) webhook_deliveries_[std::string(verdict)] = 0;
  for (const auto reason : kHttpRejections) http_rejected_[std::string(reason)] = 0;
  for (const auto phase : kPhases) workspaces_by_phase_[std::string(phase)] = 0;
}

void Metrics::IncReconcile(const std::string& result) {
  const std::lock_guard lock(mutex_);
  ++reconcile_total_[result];
}

void Metrics::ObserveBackupDuration(double seconds) {
  if (std::isnan(seconds)) return;
  if (seconds < 0) seconds = 0;
  const std::lock_guard lock(mutex_);
  std::size_t bucket = 0;
  while (bucket < kBackupDurationBuckets.size() && seconds > kBackupDurationBuckets[bucket]) {
    ++bucket;
  }
  ++backup_buckets_[bucket];
  backup_sum_ += seconds;
  ++backup_count_;
}

void Metrics::IncBackup(const std::string& kind, const std::string& result) {
  const std::lock_guard lock(mutex_);
  ++backups_total_[{kind, result}];
}

void Metrics::ObserveReconcileDuration(double seconds) {
  if (std::isnan(seconds)) return;
  if (seconds < 0) seconds = 0;
  const std::lock_guard lock(mutex_);
  std::size_t bucket = 0;
  while (bucket < kReconcileDurationBuckets.size() && seconds > kReconcileDurationBuckets[bucket]) {
    ++bucket;
  }
  ++duration_buckets_[bucket];
  duration_sum_ += seconds;
  ++duration_count_;
}

void Metrics::SetWorkqueueDepth(double depth) {
  const std::lock_guard lock(mutex_);
  workqueue_depth_ = depth;
}

void Metrics::SetWorkqueueRetries(std::uint64_t total) {
  const std::lock_guard lock(mutex_);
  if (total > workqueue_retries_) workqueue_retries_ = total;
}

void Metrics::SetWorkspacesByPhase(const std::map<std::string, int>& counts) {
  const std::lock_guard lock(mutex_);
  workspaces_by_phase_ = counts;
  for (const auto phase : kPhases) workspaces_by_phase_.try_emplace(std::string(phase), 0);
}

void Metrics::IncDriftCorrected(const std::string& kind, std::uint64_t n) {
  const std::lock_guard lock(mutex_);
  drift_corrected_[kind] += n;
}

void Metrics::SetSourceLastSync(const std::string& source, double unix_seconds) {
  const std::lock_guard lock(mutex_);
  source_last_sync_[source] = unix_seconds;
}

void Metrics::IncWebhookDelivery(const std::string& verdict) {
  const std::lock_guard lock(mutex_);
  ++webhook_deliveries_[verdict];
}

void Metrics::IncHttpRejected(const std::string& reason) {
  const std::lock_guard lock(mutex_);
  ++http_rejected_[reason];
}

void Metrics::SetHttpOpenConnections(std::uint64_t open) {
  const std::lock_guard lock(mutex_);
  http_open_connections_ = open;
}

void Metrics::SetLeader(bool leader) {
  const std::lock_guard lock(mutex_);
  leader_ = leader;
}

void Metrics::SetRolloutWorkspaces(const std::string& product,
                                   const std::map<std::string, int>& counts) {
  const std::lock_guard lock(mutex_);
  if (counts.empty()) {
    rollout_workspaces_.erase(product);
  } else {
    rollout_workspaces_[product] = counts;
  }
}

void Metrics::SetBackupLastSuccess(const std::string& workspace, double unix_seconds) {
  const std::lock_guard lock(mutex_);
  backup_last_success_[workspace] = unix_seconds;
}

std::string Metrics::Render() const {
  const std::lock_guard lock(mutex_);
  std::string out;
  out.reserve(4096);

  constexpr std::string_view kReconcile = "tenant_master_reconcile_total";
  Header(out, kReconcile, "counter", "Reconciliations by result (success, failure, stalled).");
  LabeledSamples(out, kReconcile, "result", reconcile_total_);

  constexpr std::string_view kDuration = "tenant_master_reconcile_duration_seconds";
  Header(out, kDuration, "histogram", "Time one reconciliation of one workspace took.");
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < duration_buckets_.size(); ++i) {
    cumulative += duration_buckets_[i];
    const std::string le =
        i < kReconcileDurationBuckets.size() ? FormatValue(kReconcileDurationBuckets[i]) : "+Inf";
    LabeledSample(out, std::string(kDuration) + "_bucket", "le", le, std::to_string(cumulative));
  }
  Sample(out, std::string(kDuration) + "_sum", FormatValue(duration_sum_));
  Sample(out, std::string(kDuration) + "_count", std::to_string(duration_count_));

  constexpr std::string_view kDepth = "tenant_master_workqueue_depth";
  Header(out, kDepth, "gauge", "Workspaces waiting in the work queue (ready, not delayed).");
  Sample(out, kDepth, FormatValue(workqueue_depth_));

  constexpr std::string_view kRetries = "tenant_master_workqueue_retries_total";
  Header(out, kRetries, "counter", "Rate-limited re-adds to the work queue after a failure.");
  Sample(out, kRetries, std::to_string(workqueue_retries_));

  constexpr std::string_view kWorkspaces = "tenant_master_workspaces";
  Header(out, kWorkspaces, "gauge", "Workspaces by phase.");
  LabeledSamples(out, kWorkspaces, "phase", workspaces_by_phase_);

  constexpr std::string_view kDrift = "tenant_master_drift_corrected_total";
  Header(out, kDrift, "counter", "Drifted objects put back to their desired state, by kind.");
  LabeledSamples(out, kDrift, "kind", drift_corrected_);

  constexpr std::string_view kSync = "tenant_master_source_last_sync_timestamp_seconds";
  Header(out, kSync, "gauge", "Unix time of the last successful sync of each source.");
  LabeledSamples(out, kSync, "source", source_last_sync_);

  constexpr std::string_view kWebhook = "tenant_master_webhook_deliveries_total";
  Header(out, kWebhook, "counter", "Webhook deliveries received on /hooks/git, by verdict.");
  LabeledSamples(out, kWebhook, "verdict", webhook_deliveries_);

  constexpr std::string_view kRejected = "tenant_master_http_rejected_total";
  Header(out, kRejected, "counter",
         "Requests and connections the HTTP server refused or cut itself, by reason.");
  LabeledSamples(out, kRejected, "reason", http_rejected_);

  constexpr std::string_view kOpen = "tenant_master_http_open_connections";
  Header(out, kOpen, "gauge", "Client connections the HTTP server holds open.");
  Sample(out, kOpen, std::to_string(http_open_connections_));

  constexpr std::string_view kLeader = "tenant_master_leader";
  Header(out, kLeader, "gauge", "1 while this replica holds the leader lock, else 0.");
  Sample(out, kLeader, leader_ ? "1" : "0");

  constexpr std::string_view kBackup = "tenant_master_backup_last_success_timestamp_seconds";
  Header(out, kBackup, "gauge", "Unix time of the last successful backup of each workspace.");
  LabeledSamples(out, kBackup, "workspace", backup_last_success_);

  constexpr std::string_view kBackupDuration = "tenant_master_backup_duration_seconds";
  Header(out, kBackupDuration, "histogram", "Time one successful backup took (dump and read back).");
  std::uint64_t backups = 0;
  for (std::size_t i = 0; i < backup_buckets_.size(); ++i) {
    backups += backup_buckets_[i];
    const std::string le =
        i < kBackupDurationBuckets.size() ? FormatValue(kBackupDurationBuckets[i]) : "+Inf";
    LabeledSample(out, std::string(kBackupDuration) + "_bucket", "le", le, std::to_string(backups));
  }
  Sample(out, std::string(kBackupDuration) + "_sum", FormatValue(backup_sum_));
  Sample(out, std::string(kBackupDuration) + "_count", std::to_string(backup_count_));

  constexpr std::string_view kBackupsTotal = "tenant_master_backups_total";
  Header(out, kBackupsTotal, "counter", "Backups taken, by kind and result (success, failure).");
  for (const auto& [key, count] : backups_total_) {
    out.append(kBackupsTotal).append("{kind=\"").append(EscapeLabelValue(key.first));
    out.append("\",result=\"").append(EscapeLabelValue(key.second)).append("\"} ");
    out.append(std::to_string(count)).append("\n");
  }

  constexpr std::string_view kRollout = "tenant_master_rollout_workspaces";
  Header(out, kRollout, "gauge", "Workspaces of each product's rollout, by state.");
  for (const auto& [product, counts] : rollout_workspaces_) {
    for (const auto& [state, count] : counts) {
      out.append(kRollout).append("{product=\"").append(EscapeLabelValue(product));
      out.append("\",state=\"").append(EscapeLabelValue(state)).append("\"} ");
      out.append(std::to_string(count)).append("\n");
    }
  }
  return out;
}

}  // namespace tmaster::controller
