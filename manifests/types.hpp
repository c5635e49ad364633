#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tmaster::manifests {

inline constexpr const char* kApiVersion = "tenantmaster.io/v1alpha1";
inline constexpr const char* kGroup = "tenantmaster.io";

/// Where something was written: 1-based line and column, as editors count them.
struct Location {
  std::string file;
  int line = 0;
  int column = 0;
};

/// One finding about the input. `Format()` gives `file:line:column: field: message`, the one
/// shape every tool of ours prints (tenant-operator, tenantctl validate, the API).
struct Diagnostic {
  enum class Severity { kError, kNotice };
  Severity severity = Severity::kError;
  Location where;
  std::string field;  ///< field path such as `spec.database.connectionLimit`; empty for a document
  std::string message;

  [[nodiscard]] std::string Format() const;
};

enum class Mode { kShared, kDedicated };
enum class ReclaimPolicy { kRetain, kDelete };

const char* ToString(Mode mode);
const char* ToString(ReclaimPolicy policy);

/// `spec.sharedRuntime` of a Product: one stack `tm-shared-<product>` on `endpoint` that serves
/// the product's shared workspaces, with their bindings mounted read-only (docs/stacks.md).
struct SharedRuntimeSpec {
  /// Absolute, resolved and confined as Product::stack_template (never empty once loaded).
  std::filesystem::path stack_template;
  int endpoint = 0;  ///< a Portainer environment id, > 0
};

/// One wave of `spec.rollout.waves` (docs/rollouts.md#the-policy): exactly one of a label
/// selector and a cumulative percentage.
struct RolloutWave {
  /// `selector.matchLabels`: the workspaces carrying every one of these labels that no earlier
  /// wave took. Never empty on a selector wave; empty on a percent wave.
  std::map<std::string, std::string> match_labels;
  /// `percent`, 1..100: the wave reaches the first ceil(percent * N / 100) workspaces of the
  /// product's stable order that no earlier wave took. Cumulative, so the percent waves of a
  /// rollout strictly increase. nullopt on a selector wave.
  std::optional<int> percent;

  [[nodiscard]] bool IsSelector() const { return !percent.has_value(); }
};

/// `spec.rollout.healthCheck`: a path of a dedicated workspace's application that must pass (an
/// HTTP GET) within `timeout` before the workspace counts as ready in its wave.
struct RolloutHealthCheck {
  std::string path;  ///< starts with '/'; visible ASCII only; at most 200 characters
  std::chrono::seconds timeout{60};  ///< above 0s
};

/// `spec.rollout` of a Product: how a new revision reaches its workspaces, wave by wave
/// (docs/rollouts.md#the-policy). Loaded with its defaults applied and every rule checked.
struct RolloutSpec {
  std::vector<RolloutWave> waves;               ///< 1..20, in order
  std::chrono::seconds pause_between_waves{0};  ///< 0s..24h
  int max_unavailable = 1;  ///< workspaces of a wave moving at once, >= 1
  int failure_budget = 1;   ///< failed workspaces of a wave that halt the rollout, >= 1
  /// `readyTimeout` (default 10m, above 0s): how long a workspace of a wave may take to report
  /// the new revision applied and Ready before it counts as failed.
  std::chrono::seconds ready_timeout{600};
  /// Only on a product that offers the dedicated mode.
  std::optional<RolloutHealthCheck> health_check;
};

struct Product {
  std::string name;
  Location where;  ///< the document's `kind:` line
  std::map<std::string, std::string> labels;
  std::string display_name;
  std::string image;
  std::string default_version;
  int port = 8000;
  /// The folder of the source the product was loaded from (absolute): `stack_template` and
  /// `migrations` are beneath it and are opened confined to it (common/confined.hpp). Empty for
  /// a product built in code: each path is then confined to its own folder.
  std::filesystem::path root;
  /// Absolute, resolved against the manifest's folder, lexically beneath `root`; may be empty.
  std::filesystem::path stack_template;
  std::filesystem::path migrations;  ///< as stack_template
  /// `spec.ignoreMissingMigrations`: a migration recorded in a database but absent from the
  /// product is skipped instead of stalling `MigrationMissing`.
  bool ignore_missing_migrations = false;
  std::vector<std::string> extensions;
  std::vector<Mode> modes{Mode::kShared, Mode::kDedicated};
  /// Present only on a product that offers the shared mode.
  std::optional<SharedRuntimeSpec> shared_runtime;
  /// `spec.rollout`; absent: a new revision reaches every workspace at once.
  std::optional<RolloutSpec> rollout;
};

struct DatabaseSpec {
  /// Empty when `cluster_placed`: the controller places it (docs/placement.md).
  std::string cluster = "default";
  std::string name;   ///< defaulted: tenant_<name with '-' -> '_'>
  std::string owner;  ///< defaulted: user_<name with '-' -> '_'>
  int connection_limit = -1;
  std::vector<std::string> extensions;
  ReclaimPolicy reclaim_policy = ReclaimPolicy::kRetain;
  int password_rotation = 0;
  bool adopt = false;
  /// `spec.database.cluster` omitted: the controller chooses the cluster once, among those whose
  /// labels carry every entry of `cluster_selector` (`placement.clusterSelector`), and keeps it.
  bool cluster_placed = false;
  std::map<std::string, std::string> cluster_selector;
};

struct DedicatedSpec {
  /// 0 while `endpoint_placed` and not placed yet: the controller fills in the placed endpoint.
  int endpoint = 0;
  std::string version;  ///< defaulted: the product's defaultVersion
  std::map<std::string, std::string> env;
  /// `version` came from the product's defaultVersion, not the manifest: a rollout may hold the
  /// workspace on an older revision's version (docs/rollouts.md); an explicit one is its own.
  bool version_defaulted = false;
  /// `spec.dedicated.endpoint` omitted: the controller chooses the endpoint once, among the
  /// config's `stacks.endpoints` whose labels carry every entry of `endpoint_selector`
  /// (`placement.endpointSelector`), and keeps it (docs/placement.md#endpoints).
  bool endpoint_placed{false};
  std::map<std::string, std::string> endpoint_selector{};
};

struct BackupSpec {
  std::string schedule;  ///< cron, UTC; empty: no scheduled backups
  int keep = 7;
};

struct Workspace {
  std::string name;
  Location where;  ///< the document's `kind:` line
  std::map<std::string, std::string> labels;
  std::string product;
  Mode mode = Mode::kShared;
  std::string subdomain;  ///< defaulted: metadata.name
  bool suspend = false;
  DatabaseSpec database;
  std::optional<DedicatedSpec> dedicated;  ///< present iff mode is dedicated
  BackupSpec backup;
};

/// A workspace that is known by name but cannot be reconciled: its document is invalid, or it
/// conflicts with another. Its database is never treated as an orphan.
struct RejectedWorkspace {
  std::string name;
  Location where;
  std::string reason;   ///< `InvalidManifest` or `Conflict`
  std::string message;  ///< first finding, already formatted with its location
};

/// Everything read from one or more sources. Valid objects are complete: defaults applied and
/// cross-references resolved (every workspace names an existing product that allows its mode).
struct Fleet {
  std::vector<Product> products;
  std::vector<Workspace> workspaces;
  std::vector<RejectedWorkspace> rejected;
  std::vector<Diagnostic> diagnostics;  ///< errors and notices, in file order

  [[nodiscard]] bool HasErrors() const;
  [[nodiscard]] const Product* FindProduct(const std::string& name) const;
};

}  // namespace tmaster::manifests
