#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "manifests/types.hpp"

namespace tmaster::manifests {

/// Where a secret lives: an environment variable (`*Env:`) or a file (`*File:`), never the config
/// text. Exactly one of the two is set for a required secret.
struct SecretRef {
  std::string env;
  std::filesystem::path file;  ///< resolved against the config file's folder
  [[nodiscard]] bool IsSet() const { return !env.empty() || !file.empty(); }
  /// `environment variable TM_MASTER_KEY` or `file /run/secrets/x`, for error messages.
  [[nodiscard]] std::string Describe() const;
};

struct ClusterConfig {
  std::string name;
  SecretRef dsn;
  /// Host and port by which dedicated stacks reach this server (their DB_HOST, DB_PORT);
  /// empty / 0: the DSN's own host and port.
  std::string stacks_host;
  int stacks_port = 0;
  /// `adoptPattern`: a glob (fnmatch(3) semantics) a role or database name must match to be
  /// adopted on this cluster; empty: no name pattern.
  std::string adopt_pattern{};
  /// `capacity`: the most tenant databases placement puts here (docs/placement.md); nullopt:
  /// no limit. Workspaces that name the cluster count, but are never refused by it.
  std::optional<std::int64_t> capacity{};
  /// `labels`: what `spec.database.placement.clusterSelector` matches.
  std::map<std::string, std::string> labels{};
};

/// How much history the store keeps (`store.retention`).
struct RetentionConfig {
  std::chrono::seconds events_max_age = std::chrono::hours(24 * 30);
  std::int64_t events_max_count = 100'000;
  std::chrono::seconds deliveries_max_age = std::chrono::hours(24 * 30);
  std::int64_t deliveries_max_count = 10'000;
  std::int64_t rejected_deliveries = 1'000;  ///< unsigned deliveries: a ring of the newest
};

struct StoreConfig {
  SecretRef dsn;  ///< unset: the first cluster with dbname=tenant_master
  RetentionConfig retention;
};

struct GitSourceConfig {
  std::string url;
  std::string branch = "main";
  std::string path = ".";
  std::chrono::seconds interval{60};
  std::chrono::seconds timeout{60};
  SecretRef webhook_secret;
  SecretRef username;  ///< optional HTTPS credentials
  SecretRef password;
};

struct SourceConfig {
  std::string name;
  std::optional<std::filesystem::path> directory;  ///< resolved against the config's folder
  std::optional<GitSourceConfig> git;
};

struct PortainerConfig {
  std::string url;
  SecretRef api_key;
  bool insecure_skip_verify = false;
  /// `endpointKindTtl` (10s-24h): how long the adapter keeps an endpoint's kind (standalone or
  /// swarm manager) before it asks Docker again (docs/stacks.md#swarm-endpoints).
  std::chrono::seconds endpoint_kind_ttl{std::chrono::minutes(10)};
};

/// `stacks.endpoints[]`: a Portainer endpoint dedicated stacks may be placed on (docs/placement.md#endpoints).
struct EndpointConfig {
  int id = 0;  ///< Portainer's environment id, > 0
  /// `capacity`: the most stacks placement puts here; nullopt: no limit. Workspaces that name
  /// the endpoint count, but are never refused by it.
  std::optional<std::int64_t> capacity{};
  /// `labels`: what `spec.dedicated.placement.endpointSelector` matches.
  std::map<std::string, std::string> labels{};
};

struct StacksConfig {
  std::string backend = "directory";  ///< directory | portainer
  std::filesystem::path directory;    ///< resolved; default <config dir>/deployments
  /// Where `--once` keeps what it last wrote to each stack (saves file reads on the next pass);
  /// empty: `<directory>/.tenant-master-ledger` for the directory backend, none for Portainer.
  std::filesystem::path ledger_file;
  PortainerConfig portainer;
  std::string edge_network = "tenant-network";
  std::string cert_resolver = "le";
  /// The endpoints a workspace without `spec.dedicated.endpoint` may be placed on, in config
  /// order; empty: such a workspace is Unschedulable.
  std::vector<EndpointConfig> endpoints;
};

/// `http.webhookRateLimit`: `POST /hooks/git` per client address (IPv6 by /64).
struct HttpRateLimitConfig {
  std::optional<std::int64_t> per_second;     ///< `perSecond`, 1..1,000,000
  std::optional<std::int64_t> burst;          ///< `burst`, 1..1,000,000
  std::optional<std::int64_t> max_addresses;  ///< `maxAddresses`, 100..10,000,000
};

/// `http`. The server's limits are optional: unset, the server's own defaults apply
/// (HttpServerOptions in controller/api/http_server.hpp; mapped by controller/api/http_config.hpp).
struct HttpConfig {
  /// Without `token` and `readToken`, only a loopback address (IsLoopbackListen) is allowed.
  std::string listen = "127.0.0.1:8080";
  SecretRef token;       ///< `tokenEnv` / `tokenFile`: the admin bearer token
  SecretRef read_token;  ///< `readTokenEnv` / `readTokenFile`: the viewer bearer token
  /// `tlsCertFile` / `tlsKeyFile` (PEM, resolved): both or neither, readable at load. Set: the
  /// server speaks only HTTPS (controller/api/http_listener.hpp).
  std::filesystem::path tls_cert_file;
  std::filesystem::path tls_key_file;
  /// `usersFile` (resolved, a regular file readable at load; empty: none): the dashboard's users
  /// (controller/api/users.hpp reads it; its content is checked by the main, which knows it).
  std::filesystem::path users_file;
  std::optional<std::int64_t> max_connections;     ///< `maxConnections`, 1..100,000
  std::optional<std::chrono::seconds> header_timeout;  ///< `headerTimeout`, 1s..1h
  std::optional<std::chrono::seconds> body_timeout;    ///< `bodyTimeout`, 1s..1h
  std::optional<std::chrono::seconds> write_timeout;   ///< `writeTimeout`, 1s..1h
  std::optional<std::chrono::seconds> idle_timeout;    ///< `idleTimeout`, 1s..1h
  std::optional<std::uintmax_t> max_header_bytes;  ///< `maxHeaderBytes`, 1KiB..1MiB
  std::optional<std::uintmax_t> max_body_bytes;    ///< `maxBodyBytes`, 1KiB..64MiB
  std::optional<std::int64_t> threads;             ///< `threads`, 1..64
  HttpRateLimitConfig webhook_rate_limit;          ///< `webhookRateLimit`
};

/// `bindings`: where the Service Binding folders of shared tenants are written
/// (docs/bindings.md). Unset: none are written.
struct BindingsConfig {
  std::filesystem::path dir;  ///< resolved; `<dir>/<product>/<workspace>/`
  /// `group`: folders 0750 and files 0640 with this group (it must exist when the config is
  /// read); empty: 0700 and 0600.
  std::string group;
};

/// `pooler.pgbouncer`: the operator keeps PgBouncer's `databases.ini` and `userlist.txt`
/// (docs/bindings.md#pgbouncer).
struct PgBouncerConfig {
  std::filesystem::path dir;  ///< resolved; both files are written here
  std::string group;          ///< as BindingsConfig::group
  /// `listen`: what bindings and the runtime API point at while the pooler is on.
  std::string listen_host;
  int listen_port = 6432;
  /// `reload.pidFile` (SIGHUP) or `reload.adminDsnEnv` / `adminDsnFile` (RELOAD on the admin
  /// console): exactly one.
  std::filesystem::path reload_pid_file;
  SecretRef reload_admin_dsn;
};

/// `runtimes.<product>`: the product's shared runtime, the only reader of its tenants'
/// credentials through `GET /api/v1/runtimes/<product>/tenants`.
struct RuntimeConfig {
  SecretRef token;  ///< `tokenEnv` / `tokenFile`
};

/// `backups.verify`: how a new backup is proven (docs/backups.md).
enum class BackupVerify {
  kRestore,  ///< `restore`: restored into a scratch database, row counts compared (the default)
  kList,     ///< `list`: only `pg_restore --list` reads its table of contents back
};

/// `backups.keepAfterDelete`: what becomes of the final backup taken before a workspace with
/// `reclaimPolicy: Delete` is dropped.
struct KeepAfterDelete {
  enum class Kind {
    kKeep,    ///< `keep`: kept until a person removes it (the default)
    kDelete,  ///< `delete`: removed once the workspace's deletion completed
    kFor,     ///< a duration (`720h`): removed that long after it was taken
  };
  Kind kind = Kind::kKeep;
  std::chrono::seconds duration{0};  ///< with kFor, above zero
};

/// `backups` (docs/backups.md).
struct BackupsConfig {
  std::filesystem::path directory;  ///< resolved; default <config dir>/backups
  int concurrency = 2;              ///< `concurrency`: backups and verifications at once, 1..16
  bool before_migrations = true;    ///< `beforeMigrations`: a backup before new migrations
  BackupVerify verify = BackupVerify::kRestore;
  /// `encrypt`: files written AES-256-GCM under keys derived from the master key (always set:
  /// `masterKeyEnv` / `masterKeyFile` is required), docs/backups.md#the-encrypted-format.
  bool encrypt = false;
  KeepAfterDelete keep_after_delete;
};

struct ReconcileConfig {
  int workers = 4;
  std::chrono::seconds resync_interval{300};
  int max_deletions_per_sync = 3;
  /// `statement_timeout` / `lock_timeout` of every operator session.
  std::chrono::seconds statement_timeout{30};
  std::chrono::seconds lock_timeout{5};
  /// `statement_timeout` of the sessions that run migrations.
  std::chrono::seconds migration_timeout{900};
  /// How long SIGTERM waits for work in flight before cancelling it.
  std::chrono::seconds drain_timeout{30};
  /// Files larger than these are refused before they are read.
  std::uintmax_t max_migration_bytes = 1024U * 1024U;
  std::uintmax_t max_template_bytes = 256U * 1024U;
};

/// `rollouts` (docs/rollouts.md).
struct RolloutsConfig {
  /// `healthBaseUrl`: where a rollout's health checks are sent (the workspace's host goes in the
  /// Host header), e.g. the edge proxy's address; empty: `https://<subdomain>.<baseDomain>`.
  std::string health_base_url;
  /// `revisionHistoryLimit` (1-10000): how many of each product's newest revisions the store
  /// keeps besides those still in use (docs/rollouts.md#revisions).
  int revision_history_limit = 10;
};

/// The operator config (README.md#config-reference). Paths are already resolved against the
/// config file's folder.
struct Config {
  std::filesystem::path file;
  std::string base_domain;
  std::vector<std::string> reserved_subdomains;  ///< empty: DefaultReservedSubdomains()
  SecretRef master_key;
  std::vector<ClusterConfig> clusters;
  StoreConfig store;
  std::vector<SourceConfig> sources;
  StacksConfig stacks;
  HttpConfig http;
  std::map<std::string, std::string> shared_services;  ///< routing.sharedServices
  std::string suspended_service;                       ///< routing.suspendedService
  SecretRef routing_token;  ///< routing.tokenEnv / tokenFile: Traefik's, for /api/v1/traefik only
  std::optional<BindingsConfig> bindings;
  std::optional<PgBouncerConfig> pgbouncer;       ///< `pooler.pgbouncer`
  std::map<std::string, RuntimeConfig> runtimes;  ///< by product name
  BackupsConfig backups;
  ReconcileConfig reconcile;
  RolloutsConfig rollouts;
};

struct ConfigResult {
  Config config;
  std::vector<Diagnostic> errors;  ///< empty when the config is valid
};

/// Reads and strictly validates the config: unknown keys, wrong types, a secret given inline,
/// duplicate cluster or source names, a source with neither or both of directory/git, durations
/// like `90s`, `5m`, `1h`. Every error names file:line:column and the key path. Never throws.
ConfigResult LoadConfig(const std::filesystem::path& file);

/// True when `listen` (`host:port`) names a loopback address: `localhost`, an IPv4 address in
/// 127.0.0.0/8, or `[::1]`. The only addresses the API may serve without a token.
bool IsLoopbackListen(std::string_view listen);

/// Parses `500ms`-free Go-like durations: `<n>s`, `<n>m`, `<n>h` and combinations (`1h30m`).
std::optional<std::chrono::seconds> ParseDuration(std::string_view text);

/// The shortest text ParseDuration reads back as `duration`: `0s`, `90s` as `1m30s`, `10m`,
/// `24h`, `1h0m5s` as `1h5s`. `duration` must not be negative.
std::string FormatDuration(std::chrono::seconds duration);

/// Parses a size: a plain number of bytes (`4096`) or `<n>KiB` / `<n>MiB`. Zero, other units,
/// signs, spaces and values above 2^53 are nullopt.
std::optional<std::uintmax_t> ParseSize(std::string_view text);

}  // namespace tmaster::manifests
