// The operator config (README.md#config-reference): strict keys with locations, secrets only by
// reference, relative paths, durations and defaults.
#include "manifests/config.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using tmaster::manifests::Config;
using tmaster::manifests::ConfigResult;
using tmaster::manifests::Diagnostic;
using tmaster::manifests::FormatDuration;
using tmaster::manifests::KeepAfterDelete;
using tmaster::manifests::LoadConfig;
using tmaster::manifests::ParseDuration;
using tmaster::manifests::ParseSize;
using tmaster::testing::TempDir;

constexpr const char* kMinimal = R"(baseDomain: example.com
masterKeyEnv: TM_MASTER_KEY
clusters:
  - name: default
    dsnEnv: TM_PG_DSN
)";  // lines 1-5

std::string Dump(const ConfigResult& result) {
  std::string out;
  for (const Diagnostic& d : result.errors) out += d.Format() + "\n";
  return out;
}

ConfigResult Load(const TempDir& dir, const std::string& text) {
  return LoadConfig(dir.Write("etc/config.yaml", text));
}

// The single error of a config, as `line:column: field: message`.
std::string OneError(const std::string& text) {
  TempDir dir;
  const ConfigResult result = Load(dir, text);
  if (result.errors.size() != 1) return "expected one error, got:\n" + Dump(result);
  const Diagnostic& d = result.errors[0];
  return std::to_string(d.where.line) + ":" + std::to_string(d.where.column) + ": " + d.field +
         ": " + d.message;
}

}  // namespace

TEST_CASE("config: a full valid config") {
  TempDir dir;
  const ConfigResult result = Load(dir, R"(baseDomain: surgir.online
reservedSubdomains: [panel, www, api, admin]
masterKeyFile: secrets/master-key
clusters:
  - name: default
    dsnEnv: TM_PG_DSN
  - name: eu
    dsnFile: /run/secrets/eu-dsn
    adoptPattern: "legacy_*"
store:
  dsnEnv: TM_STORE_DSN
sources:
  - name: local
    directory: ./fleet
  - name: upstream
    git: {url: "https://git.example.com/ops/fleet.git", branch: main, path: fleet, interval: 90s,
          timeout: 2m, webhookSecretEnv: TM_WEBHOOK_SECRET, usernameEnv: GIT_USER,
          passwordFile: git-password}
stacks:
  backend: portainer
  directory: ../deployments
  portainer: {url: "http://portainer:9000", apiKeyEnv: PORTAINER_API_KEY, insecureSkipVerify: true,
              endpointKindTtl: 30m}
  edgeNetwork: edge
  certResolver: myresolver
http:
  listen: 0.0.0.0:9090
  tokenEnv: TM_API_TOKEN
  readTokenFile: read-token
  maxConnections: 2000
  headerTimeout: 5s
  bodyTimeout: 1m
  writeTimeout: 20s
  idleTimeout: 30s
  maxHeaderBytes: 32KiB
  maxBodyBytes: 4MiB
  threads: 8
  webhookRateLimit: {perSecond: 20, burst: 100, maxAddresses: 5000}
routing:
  sharedServices: {erp: "http://erp-shared:8000"}
  suspendedService: "http://maintenance:8080"
  tokenEnv: TM_TRAEFIK_TOKEN
backups:
  directory: /var/backups/tm
  concurrency: 3
  beforeMigrations: false
  verify: list
  encrypt: true
  keepAfterDelete: 720h
reconcile:
  workers: 8
  resyncInterval: 1h30m
  maxDeletionsPerSync: 0
  statementTimeout: 45s
  lockTimeout: 2s
  migrationTimeout: 1h
  drainTimeout: 1m
  maxMigrationSize: 2MiB
  maxTemplateSize: 65536
)");
  INFO(Dump(result));
  REQUIRE(result.errors.empty());
  const Config& c = result.config;
  const fs::path etc = dir.path() / "etc";
  CHECK(c.file == etc / "config.yaml");
  CHECK(c.base_domain == "surgir.online");
  CHECK(c.reserved_subdomains == std::vector<std::string>{"panel", "www", "api", "admin"});
  CHECK(c.master_key.env.empty());
  CHECK(c.master_key.file == etc / "secrets/master-key");
  CHECK(c.master_key.Describe() == "file " + (etc / "secrets/master-key").string());
  REQUIRE(c.clusters.size() == 2);
  CHECK(c.clusters[0].name == "default");
  CHECK(c.clusters[0].dsn.env == "TM_PG_DSN");
  CHECK(c.clusters[0].dsn.Describe() == "environment variable TM_PG_DSN");
  CHECK(c.clusters[1].name == "eu");
  CHECK(c.clusters[1].dsn.file == "/run/secrets/eu-dsn");
  CHECK(c.store.dsn.env == "TM_STORE_DSN");
  REQUIRE(c.sources.size() == 2);
  CHECK(c.sources[0].name == "local");
  REQUIRE(c.sources[0].directory.has_value());
  CHECK(*c.sources[0].directory == etc / "fleet");
  CHECK_FALSE(c.sources[0].git.has_value());
  REQUIRE(c.sources[1].git.has_value());
  CHECK_FALSE(c.sources[1].directory.has_value());
  const tmaster::manifests::GitSourceConfig& git = *c.sources[1].git;
  CHECK(git.url == "https://git.example.com/ops/fleet.git");
  CHECK(git.branch == "main");
  CHECK(git.path == "fleet");
  CHECK(git.interval == 90s);
  CHECK(git.timeout == 120s);
  CHECK(git.webhook_secret.env == "TM_WEBHOOK_SECRET");
  CHECK(git.username.env == "GIT_USER");
  CHECK(git.password.file == etc / "git-password");
  CHECK(c.stacks.backend == "portainer");
  CHECK(c.stacks.directory == dir.path() / "deployments");
  CHECK(c.stacks.portainer.url == "http://portainer:9000");
  CHECK(c.stacks.portainer.api_key.env == "PORTAINER_API_KEY");
  CHECK(c.stacks.portainer.insecure_skip_verify);
  CHECK(c.stacks.portainer.endpoint_kind_ttl == 1800s);
  CHECK(c.stacks.edge_network == "edge");
  CHECK(c.stacks.cert_resolver == "myresolver");
  CHECK(c.http.listen == "0.0.0.0:9090");
  CHECK(c.http.token.env == "TM_API_TOKEN");
  CHECK(c.http.read_token.file == etc / "read-token");
  CHECK(c.http.max_connections == 2000);
  CHECK(c.http.header_timeout == std::chrono::seconds(5));
  CHECK(c.http.body_timeout == std::chrono::seconds(60));
  CHECK(c.http.write_timeout == std::chrono::seconds(20));
  CHECK(c.http.idle_timeout == std::chrono::seconds(30));
  CHECK(c.http.max_header_bytes == 32U * 1024U);
  CHECK(c.http.max_body_bytes == 4U * 1024U * 1024U);
  CHECK(c.http.threads == 8);
  CHECK(c.http.webhook_rate_limit.per_second == 20);
  CHECK(c.http.webhook_rate_limit.burst == 100);
  CHECK(c.http.webhook_rate_limit.max_addresses == 5000);
  CHECK(c.shared_services == std::map<std::string, std::string>{{"erp", "http://erp-shared:8000"}});
  CHECK(c.suspended_service == "http://maintenance:8080");
  CHECK(c.routing_token.env == "TM_TRAEFIK_TOKEN");
  CHECK(c.backups.directory == "/var/backups/tm");
  CHECK(c.backups.concurrency == 3);
  CHECK_FALSE(c.backups.before_migrations);
  CHECK(c.backups.verify == tmaster::manifests::BackupVerify::kList);
  CHECK(c.backups.encrypt);
  CHECK(c.backups.keep_after_delete.kind == KeepAfterDelete::Kind::kFor);
  CHECK(c.backups.keep_after_delete.duration == 720h);
  CHECK(c.reconcile.workers == 8);
  CHECK(c.reconcile.resync_interval == 5400s);
  CHECK(c.reconcile.max_deletions_per_sync == 0);
  CHECK(c.reconcile.statement_timeout == 45s);
  CHECK(c.reconcile.lock_timeout == 2s);
  CHECK(c.reconcile.migration_timeout == 3600s);
  CHECK(c.reconcile.drain_timeout == 60s);
  CHECK(c.reconcile.max_migration_bytes == 2U * 1024U * 1024U);
  CHECK(c.reconcile.max_template_bytes == 65536U);
  CHECK(c.clusters[0].adopt_pattern.empty());
  CHECK(c.clusters[1].adopt_pattern == "legacy_*");
}

TEST_CASE("config: backups.directory relative to the config's folder, keepAfterDelete's words") {
  TempDir dir;
  const fs::path etc = dir.path() / "etc";
  const ConfigResult relative =
      Load(dir, std::string(kMinimal) + "backups: {directory: ../var/dumps, keepAfterDelete: delete}\n");
  INFO(Dump(relative));
  REQUIRE(relative.errors.empty());
  CHECK(relative.config.backups.directory == dir.path() / "var/dumps");
  CHECK(relative.config.backups.keep_after_delete.kind == KeepAfterDelete::Kind::kDelete);
  const ConfigResult keep =
      Load(dir, std::string(kMinimal) + "backups: {keepAfterDelete: keep, verify: restore}\n");
  INFO(Dump(keep));
  REQUIRE(keep.errors.empty());
  CHECK(keep.config.backups.directory == etc / "backups");
  CHECK(keep.config.backups.keep_after_delete.kind == KeepAfterDelete::Kind::kKeep);
  CHECK(keep.config.backups.verify == tmaster::manifests::BackupVerify::kRestore);
}

TEST_CASE("config: rollouts.healthBaseUrl is an http(s) URL; empty by default") {
  TempDir dir;
  const ConfigResult set =
      Load(dir, std::string(kMinimal) + "rollouts: {healthBaseUrl: 'http://127.0.0.1:8081'}\n");
  INFO(Dump(set));
  REQUIRE(set.errors.empty());
  CHECK(set.config.rollouts.health_base_url == "http://127.0.0.1:8081");
  CHECK(Load(dir, kMinimal).config.rollouts.health_base_url.empty());
  const ConfigResult bad =
      Load(dir, std::string(kMinimal) + "rollouts: {healthBaseUrl: 'ftp://edge', other: 1}\n");
  REQUIRE(bad.errors.size() == 2);
  const std::string all = Dump(bad);
  CHECK(all.find("rollouts.healthBaseUrl") != std::string::npos);
  CHECK(all.find("must be an http:// or https:// URL, got \"ftp://edge\"") != std::string::npos);
  CHECK(all.find("rollouts.other") != std::string::npos);
}

TEST_CASE("config: rollouts.revisionHistoryLimit is 1-10000, 10 by default") {
  TempDir dir;
  CHECK(Load(dir, kMinimal).config.rollouts.revision_history_limit == 10);
  const ConfigResult set =
      Load(dir, std::string(kMinimal) + "rollouts: {revisionHistoryLimit: 3}\n");
  INFO(Dump(set));
  REQUIRE(set.errors.empty());
  CHECK(set.config.rollouts.revision_history_limit == 3);
  const ConfigResult zero =
      Load(dir, std::string(kMinimal) + "rollouts: {revisionHistoryLimit: 0}\n");
  REQUIRE(zero.errors.size() == 1);
  CHECK(Dump(zero).find("rollouts.revisionHistoryLimit") != std::string::npos);
}

TEST_CASE("config: defaults of a minimal config") {
  TempDir dir;
  const ConfigResult result = Load(dir, kMinimal);
  INFO(Dump(result));
  REQUIRE(result.errors.empty());
  const Config& c = result.config;
  const fs::path etc = dir.path() / "etc";
  CHECK(c.master_key.env == "TM_MASTER_KEY");
  CHECK(c.reserved_subdomains.empty());
  CHECK_FALSE(c.store.dsn.IsSet());
  CHECK(c.sources.empty());
  CHECK(c.stacks.backend == "directory");
  CHECK(c.stacks.directory == etc / "deployments");
  CHECK(c.stacks.edge_network == "tenant-network");
  CHECK(c.stacks.cert_resolver == "le");
  CHECK(c.stacks.portainer.endpoint_kind_ttl == 600s);
  CHECK(c.http.listen == "127.0.0.1:8080");
  CHECK_FALSE(c.http.token.IsSet());
  // The server's limits unset: HttpServerOptions' defaults apply.
  CHECK_FALSE(c.http.max_connections.has_value());
  CHECK_FALSE(c.http.header_timeout.has_value());
  CHECK_FALSE(c.http.max_body_bytes.has_value());
  CHECK_FALSE(c.http.threads.has_value());
  CHECK_FALSE(c.http.webhook_rate_limit.per_second.has_value());
  CHECK(c.backups.directory == etc / "backups");
  CHECK(c.backups.concurrency == 2);
  CHECK(c.backups.before_migrations);
  CHECK(c.backups.verify == tmaster::manifests::BackupVerify::kRestore);
  CHECK_FALSE(c.backups.encrypt);
  CHECK(c.backups.keep_after_delete.kind == KeepAfterDelete::Kind::kKeep);
  CHECK(c.reconcile.workers == 4);
  CHECK(c.reconcile.resync_interval == 300s);
  CHECK(c.reconcile.max_deletions_per_sync == 3);
  CHECK(c.reconcile.statement_timeout == 30s);
  CHECK(c.reconcile.lock_timeout == 5s);
  CHECK(c.reconcile.migration_timeout == 900s);
  CHECK(c.reconcile.drain_timeout == 30s);
  CHECK(c.reconcile.max_migration_bytes == 1048576U);
  CHECK(c.reconcile.max_template_bytes == 262144U);
}

TEST_CASE("config: each rule") {
  const std::string m = kMinimal;
  struct Case {
    const char* rule;
    std::string text;
    std::string expected;  // line:column: field: message
  };
  const std::vector<Case> cases = {
      {"unknown top-level key", m + "colour: blue\n", "6:1: colour: unknown field \"colour\""},
      {"unknown nested key", m + "reconcile:\n  wrokers: 4\n",
       "7:3: reconcile.wrokers: unknown field \"wrokers\""},
      {"unknown key in a list item",
       m + "sources:\n  - name: a\n    directory: x\n    watch: true\n",
       "9:5: sources[0].watch: unknown field \"watch\""},
      {"duplicate key", m + "baseDomain: other.com\n",
       "6:1: baseDomain: duplicate field \"baseDomain\""},
      {"master key inline",
       "baseDomain: example.com\nmasterKey: s3cr3t-value\nclusters: [{name: default, dsnEnv: D}]\n",
       "2:1: masterKey: secrets may not be written in the config; use masterKeyEnv (an environment "
       "variable) or masterKeyFile (a file)"},
      {"dsn inline",
       "baseDomain: example.com\nmasterKeyEnv: K\nclusters:\n  - name: default\n    dsn: "
       "postgres://u:pw@h/db\n",
       "5:5: clusters[0].dsn: secrets may not be written in the config; use dsnEnv (an environment "
       "variable) or dsnFile (a file)"},
      {"master key missing", "baseDomain: example.com\nclusters: [{name: default, dsnEnv: D}]\n",
       "1:1: masterKeyEnv: one of masterKeyEnv or masterKeyFile is required"},
      {"master key twice", m + "masterKeyFile: key\n",
       "6:1: masterKeyFile: set only one of masterKeyEnv and masterKeyFile"},
      {"bad env name",
       "baseDomain: example.com\nmasterKeyEnv: TM-KEY\nclusters: [{name: default, dsnEnv: D}]\n",
       "2:15: masterKeyEnv: must be an environment variable name matching "
       "^[A-Za-z_][A-Za-z0-9_]*$, got \"TM-KEY\""},
      {"cluster dsn missing",
       "baseDomain: example.com\nmasterKeyEnv: K\nclusters:\n  - name: default\n",
       "4:5: clusters[0].dsnEnv: one of dsnEnv or dsnFile is required"},
      {"no clusters key", "baseDomain: example.com\nmasterKeyEnv: K\n",
       "1:1: clusters: required field is missing"},
      {"empty clusters", "baseDomain: example.com\nmasterKeyEnv: K\nclusters: []\n",
       "3:11: clusters: at least one cluster is required"},
      {"duplicate cluster", m + "  - name: default\n    dsnEnv: OTHER\n",
       "6:11: clusters[1].name: cluster \"default\" is defined twice (first at line 4)"},
      {"cluster name pattern",
       "baseDomain: example.com\nmasterKeyEnv: K\nclusters: [{name: \"Main DB\", dsnEnv: D}]\n",
       "3:19: clusters[0].name: must be a DNS label (lower-case letters, digits and '-', at most "
       "63 characters), got \"Main DB\""},
      {"base domain missing", "masterKeyEnv: K\nclusters: [{name: default, dsnEnv: D}]\n",
       "1:1: baseDomain: required field is missing"},
      {"base domain invalid",
       "baseDomain: Example.com\nmasterKeyEnv: K\nclusters: [{name: default, dsnEnv: D}]\n",
       "1:13: baseDomain: must be a DNS name such as example.com (lower-case), got "
       "\"Example.com\""},
      {"reserved subdomain not a label", m + "reservedSubdomains: [www, \"a b\"]\n",
       "6:27: reservedSubdomains[1]: must be a DNS label, got string \"a b\""},
      {"source with both",
       m + "sources:\n  - name: a\n    directory: x\n    git: {url: \"https://h/r.git\", "
           "webhookSecretEnv: S}\n",
       "9:5: sources[0]: a source needs exactly one of directory or git"},
      {"source with neither", m + "sources:\n  - name: a\n",
       "7:5: sources[0]: a source needs exactly one of directory or git"},
      {"duplicate source",
       m + "sources:\n  - {name: a, directory: x}\n  - {name: a, directory: y}\n",
       "8:12: sources[1].name: source \"a\" is defined twice (first at line 7)"},
      {"git without url", m + "sources:\n  - name: a\n    git: {webhookSecretEnv: S}\n",
       "8:10: sources[0].git.url: required field is missing"},
      {"git without webhook secret",
       m + "sources:\n  - name: a\n    git: {url: \"https://h/r.git\"}\n",
       "8:10: sources[0].git.webhookSecretEnv: one of webhookSecretEnv or webhookSecretFile is "
       "required"},
      {"git url as an option",
       m + "sources:\n  - name: a\n    git: {url: \"--upload-pack=evil\", webhookSecretEnv: S}\n",
       "8:16: sources[0].git.url: must be an https://, http://, ssh://, git:// or file:// URL or "
       "user@host:path, got \"--upload-pack=evil\""},
      {"git url with userinfo",
       m + "sources:\n  - name: a\n    git: {url: \"https://bob:tok3n@h/r.git\", "
           "webhookSecretEnv: S}\n",
       "8:16: sources[0].git.url: must not carry credentials (user:token@host); give them as "
       "usernameEnv/usernameFile and passwordEnv/passwordFile"},
      {"git url with a user only",
       m + "sources:\n  - name: a\n    git: {url: \"https://tok3n@h/r.git\", "
           "webhookSecretEnv: S}\n",
       "8:16: sources[0].git.url: must not carry credentials (user:token@host); give them as "
       "usernameEnv/usernameFile and passwordEnv/passwordFile"},
      {"ssh git url with a password",
       m + "sources:\n  - name: a\n    git: {url: \"ssh://git:pw@h/r.git\", "
           "webhookSecretEnv: S}\n",
       "8:16: sources[0].git.url: must not carry credentials (user:token@host); give them as "
       "usernameEnv/usernameFile and passwordEnv/passwordFile"},
      {"git branch as an option",
       m + "sources:\n  - name: a\n    git: {url: \"https://h/r.git\", branch: -x, "
           "webhookSecretEnv: S}\n",
       "8:43: sources[0].git.branch: must be a branch name of letters, digits, '.', '_', '-' and "
       "'/', got \"-x\""},
      {"git path escapes",
       m + "sources:\n  - name: a\n    git: {url: \"https://h/r.git\", path: ../x, "
           "webhookSecretEnv: S}\n",
       "8:41: sources[0].git.path: must be a relative path inside the repository (no '..'), got "
       "\"../x\""},
      {"bad duration", m + "reconcile:\n  resyncInterval: 5 minutes\n",
       "7:19: reconcile.resyncInterval: must be a duration such as 90s, 5m or 1h30m, got string "
       "\"5 minutes\""},
      {"duration as a number", m + "reconcile:\n  resyncInterval: 300\n",
       "7:19: reconcile.resyncInterval: must be a duration such as 90s, 5m or 1h30m, got integer "
       "300"},
      {"zero duration", m + "reconcile:\n  resyncInterval: 0s\n",
       "7:19: reconcile.resyncInterval: must be longer than 0s"},
      {"workers too few", m + "reconcile: {workers: 0}\n",
       "6:22: reconcile.workers: must be between 1 and 64, got 0"},
      {"workers too many", m + "reconcile: {workers: 65}\n",
       "6:22: reconcile.workers: must be between 1 and 64, got 65"},
      {"workers quoted", m + "reconcile: {workers: \"4\"}\n",
       "6:22: reconcile.workers: must be integer, got string \"4\""},
      {"negative deletions", m + "reconcile: {maxDeletionsPerSync: -1}\n",
       "6:34: reconcile.maxDeletionsPerSync: must be between 0 and 2147483647, got -1"},
      {"listen without port", m + "http: {listen: localhost}\n",
       "6:16: http.listen: must be host:port (for example 127.0.0.1:8080 or [::1]:8080), got "
       "\"localhost\""},
      {"listen port out of range", m + "http: {listen: \"127.0.0.1:70000\"}\n",
       "6:16: http.listen: must be host:port (for example 127.0.0.1:8080 or [::1]:8080), got "
       "\"127.0.0.1:70000\""},
      {"listen beyond loopback without a token", m + "http: {listen: \"0.0.0.0:8080\"}\n",
       "6:16: http.listen: \"0.0.0.0:8080\" is not a loopback address: without "
       "http.tokenEnv/tokenFile (or readTokenEnv/readTokenFile) the API serves only on "
       "127.0.0.1, [::1] or localhost"},
      {"listen on a name without a token", m + "http:\n  listen: \"api.example.com:443\"\n",
       "7:11: http.listen: \"api.example.com:443\" is not a loopback address: without "
       "http.tokenEnv/tokenFile (or readTokenEnv/readTokenFile) the API serves only on "
       "127.0.0.1, [::1] or localhost"},
      {"tls cert without key", m + "http: {tlsCertFile: cert.pem}\n",
       "6:21: http.tlsCertFile: set tlsKeyFile too: TLS needs both the certificate and its key"},
      {"tls key without cert", m + "http: {tlsKeyFile: key.pem}\n",
       "6:20: http.tlsKeyFile: set tlsCertFile too: TLS needs both the certificate and its key"},
      {"token inline", m + "http: {token: abc}\n",
       "6:8: http.token: secrets may not be written in the config; use tokenEnv (an environment "
       "variable) or tokenFile (a file)"},
      {"http connections zero", m + "http: {maxConnections: 0}\n",
       "6:24: http.maxConnections: must be between 1 and 100000, got 0"},
      {"endpoint kind ttl too short",
       m + "stacks:\n  portainer: {url: \"http://p:9000\", apiKeyEnv: K, endpointKindTtl: 5s}\n",
       "7:68: stacks.portainer.endpointKindTtl: must be between 10s and 24h, got 5s"},
      {"endpoint kind ttl too long",
       m + "stacks:\n  portainer:\n    url: \"http://p:9000\"\n    apiKeyEnv: K\n"
           "    endpointKindTtl: 25h\n",
       "10:22: stacks.portainer.endpointKindTtl: must be between 10s and 24h, got 25h"},
      {"endpoint kind ttl not a duration",
       m + "stacks:\n  portainer: {url: \"http://p:9000\", apiKeyEnv: K, endpointKindTtl: 10}\n",
       "7:68: stacks.portainer.endpointKindTtl: must be a duration such as 90s, 5m or 1h30m, got "
       "integer 10"},
      {"http header timeout too long", m + "http: {headerTimeout: 2h}\n",
       "6:23: http.headerTimeout: must be at most 1h"},
      {"http idle timeout zero", m + "http: {idleTimeout: 0s}\n",
       "6:21: http.idleTimeout: must be longer than 0s"},
      {"http header bytes too small", m + "http: {maxHeaderBytes: 100}\n",
       "6:24: http.maxHeaderBytes: must be between 1KiB and 1MiB, got 100 bytes"},
      {"http body bytes too large", m + "http: {maxBodyBytes: 65537KiB}\n",
       "6:22: http.maxBodyBytes: must be between 1KiB and 64MiB, got 67109888 bytes"},
      {"http threads", m + "http: {threads: 65}\n",
       "6:17: http.threads: must be between 1 and 64, got 65"},
      {"http rate limit not a map", m + "http: {webhookRateLimit: 10}\n",
       "6:26: http.webhookRateLimit: must be object, got integer 10"},
      {"http rate limit zero", m + "http: {webhookRateLimit: {perSecond: 0}}\n",
       "6:38: http.webhookRateLimit.perSecond: must be between 1 and 1000000, got 0"},
      {"http rate limit unknown key", m + "http: {webhookRateLimit: {rate: 5}}\n",
       "6:27: http.webhookRateLimit.rate: unknown field \"rate\""},
      {"stacks backend enum", m + "stacks: {backend: swarm}\n",
       "6:19: stacks.backend: must be one of \"directory\", \"portainer\", got \"swarm\""},
      {"portainer backend without portainer", m + "stacks: {backend: portainer}\n",
       "6:19: stacks.portainer: required when stacks.backend is portainer"},
      {"portainer without api key", m + "stacks:\n  portainer: {url: \"http://p:9000\"}\n",
       "7:14: stacks.portainer.apiKeyEnv: one of apiKeyEnv or apiKeyFile is required"},
      {"portainer api key inline",
       m + "stacks:\n  portainer: {url: \"http://p:9000\", apiKey: k, apiKeyEnv: K}\n",
       "7:37: stacks.portainer.apiKey: secrets may not be written in the config; use apiKeyEnv (an "
       "environment variable) or apiKeyFile (a file)"},
      {"portainer url", m + "stacks:\n  portainer: {url: \"portainer:9000\", apiKeyEnv: K}\n",
       "7:20: stacks.portainer.url: must be an http:// or https:// URL, got \"portainer:9000\""},
      {"shared service url", m + "routing:\n  sharedServices: {erp: erp-shared}\n",
       "7:25: routing.sharedServices.erp: must be an http:// or https:// URL, got string "
       "\"erp-shared\""},
      {"suspended service url", m + "routing:\n  suspendedService: maintenance\n",
       "7:21: routing.suspendedService: must be an http:// or https:// URL, got string "
       "\"maintenance\""},
      {"backups concurrency", m + "backups: {concurrency: 0}\n",
       "6:24: backups.concurrency: must be between 1 and 16, got 0"},
      {"backups concurrency above 16", m + "backups: {concurrency: 17}\n",
       "6:24: backups.concurrency: must be between 1 and 16, got 17"},
      {"keepAfterDelete boolean", m + "backups: {keepAfterDelete: false}\n",
       "6:28: backups.keepAfterDelete: must be keep, delete or a duration above 0s such as 720h "
       "(30 days), got boolean false"},
      {"keepAfterDelete days", m + "backups: {keepAfterDelete: 30d}\n",
       "6:28: backups.keepAfterDelete: must be keep, delete or a duration above 0s such as 720h "
       "(30 days), got string \"30d\""},
      {"keepAfterDelete zero", m + "backups: {keepAfterDelete: 0s}\n",
       "6:28: backups.keepAfterDelete: must be keep, delete or a duration above 0s such as 720h "
       "(30 days), got string \"0s\""},
      {"verify word", m + "backups: {verify: full}\n",
       "6:19: backups.verify: must be restore (restored into a scratch database) or list (only "
       "pg_restore --list), got string \"full\""},
      {"beforeMigrations boolean", m + "backups: {beforeMigrations: \"true\"}\n",
       "6:29: backups.beforeMigrations: must be boolean (true or false), got string \"true\""},
      {"encrypt boolean", m + "backups: {encrypt: 1}\n",
       "6:20: backups.encrypt: must be boolean (true or false), got integer 1"},
      {"backups unknown key", m + "backups:\n  verfy: list\n",
       "7:3: backups.verfy: unknown field \"verfy\""},
      {"backups directory empty", m + "backups: {directory: \"\"}\n",
       "6:22: backups.directory: must not be empty"},
      {"zero timeout", m + "reconcile: {lockTimeout: 0s}\n",
       "6:26: reconcile.lockTimeout: must be longer than 0s"},
      {"bad statement timeout", m + "reconcile: {statementTimeout: 30}\n",
       "6:31: reconcile.statementTimeout: must be a duration such as 90s, 5m or 1h30m, got "
       "integer 30"},
      {"size unit", m + "reconcile: {maxMigrationSize: 1MB}\n",
       "6:31: reconcile.maxMigrationSize: must be a size above zero and at most 2^53 bytes, in "
       "bytes or as <n>KiB or <n>MiB (for example 1MiB), got string \"1MB\""},
      {"size zero", m + "reconcile: {maxTemplateSize: 0}\n",
       "6:30: reconcile.maxTemplateSize: must be a size above zero and at most 2^53 bytes, in "
       "bytes or as <n>KiB or <n>MiB (for example 1MiB), got integer 0"},
      {"size overflow", m + "reconcile: {maxTemplateSize: 99999999999MiB}\n",
       "6:30: reconcile.maxTemplateSize: must be a size above zero and at most 2^53 bytes, in "
       "bytes or as <n>KiB or <n>MiB (for example 1MiB), got string \"99999999999MiB\""},
      {"adoptPattern empty", "baseDomain: example.com\nmasterKeyEnv: K\n"
       "clusters: [{name: default, dsnEnv: D, adoptPattern: \"\"}]\n",
       "3:53: clusters[0].adoptPattern: must not be empty"},
      {"adoptPattern not text", "baseDomain: example.com\nmasterKeyEnv: K\n"
       "clusters: [{name: default, dsnEnv: D, adoptPattern: [a]}]\n",
       "3:53: clusters[0].adoptPattern: must be string, got array"},
      {"section not a mapping", m + "reconcile: fast\n",
       "6:12: reconcile: must be object, got string \"fast\""},
      {"not a mapping at all", "- a\n- b\n", "1:1: : must be object, got array"},
      {"invalid YAML", m + "reconcile: {workers: 4\n",
       "6:23: : invalid YAML: end of map flow not found"},
      {"two documents", m + "---\nbaseDomain: x.com\n",
       "6:1: : the config must be a single YAML document"},
  };
  for (const Case& c : cases) {
    SUBCASE(c.rule) { CHECK(OneError(c.text) == c.expected); }
  }
}

TEST_CASE("config: a secret given inline never appears in a message") {
  TempDir dir;
  const ConfigResult result =
      Load(dir,
           "baseDomain: example.com\nmasterKey: hunter2-very-secret\n"
           "clusters: [{name: default, dsn: \"postgres://u:pw123@h/db\"}]\n");
  REQUIRE(result.errors.size() == 2);
  for (const Diagnostic& d : result.errors) {
    CHECK(d.Format().find("hunter2") == std::string::npos);
    CHECK(d.Format().find("pw123") == std::string::npos);
  }
}

TEST_CASE("config: a git url's credentials are refused; a login name or scp-like user is kept") {
  TempDir dir;
  auto with_url = [&](const std::string& url) {
    return Load(dir, std::string(kMinimal) + "sources:\n  - name: a\n    git: {url: \"" + url +
                         "\", webhookSecretEnv: S}\n");
  };
  for (const std::string url : {"https://alice:tok3n-xyz@git.example.com/r.git",
                                "http://tok3n-xyz@git.example.com/r.git"}) {
    const ConfigResult refused = with_url(url);
    REQUIRE(refused.errors.size() == 1);
    CHECK(refused.errors[0].Format() == (dir.path() / "etc/config.yaml").string() +
                                            ":8:16: sources[0].git.url: must not carry credentials "
                                            "(user:token@host); give them as usernameEnv/"
                                            "usernameFile and passwordEnv/passwordFile");
    CHECK(refused.errors[0].Format().find("tok3n-xyz") == std::string::npos);
  }
  for (const std::string url : {"ssh://git@git.example.com/r.git", "git@git.example.com:r.git",
                                "https://git.example.com/a@b.git"}) {
    const ConfigResult kept = with_url(url);
    CHECK_MESSAGE(kept.errors.empty(), Dump(kept));
    REQUIRE(kept.config.sources.size() == 1);
    CHECK(kept.config.sources[0].git->url == url);
  }
}

TEST_CASE("config: every error is reported, in file order") {
  TempDir dir;
  const ConfigResult result =
      Load(dir,
           "baseDomain: example.com\nmasterKeyEnv: K\nclusters: [{name: default, dsnEnv: D}]\n"
           "reconcile: {workers: 0, resyncInterval: soon}\nhttp: {listen: nowhere}\n");
  REQUIRE(result.errors.size() == 3);
  CHECK(result.errors[0].field == "reconcile.workers");
  CHECK(result.errors[1].field == "reconcile.resyncInterval");
  CHECK(result.errors[2].field == "http.listen");
  CHECK(result.errors[2].Format() == (dir.path() / "etc/config.yaml").string() +
                                         ":5:16: http.listen: must be host:port (for example "
                                         "127.0.0.1:8080 or [::1]:8080), got \"nowhere\"");
}

TEST_CASE("config: a missing file is one error") {
  TempDir dir;
  const ConfigResult result = LoadConfig(dir.path() / "nope.yaml");
  REQUIRE(result.errors.size() == 1);
  CHECK(result.errors[0].Format().rfind(
            (dir.path() / "nope.yaml").string() + ": cannot read config: ", 0) == 0);
}

TEST_CASE("config: ParseDuration") {
  CHECK(ParseDuration("90s") == 90s);
  CHECK(ParseDuration("5m") == 300s);
  CHECK(ParseDuration("1h") == 3600s);
  CHECK(ParseDuration("1h30m") == 5400s);
  CHECK(ParseDuration("2h0m5s") == 7205s);
  CHECK(ParseDuration("0") == 0s);
  CHECK(ParseDuration("0s") == 0s);
  CHECK_FALSE(ParseDuration("").has_value());
  CHECK_FALSE(ParseDuration("5").has_value());
  CHECK_FALSE(ParseDuration("500ms").has_value());
  CHECK_FALSE(ParseDuration("1.5h").has_value());
  CHECK_FALSE(ParseDuration("-5s").has_value());
  CHECK_FALSE(ParseDuration("5 s").has_value());
  CHECK_FALSE(ParseDuration("30m1h").has_value());  // units in order h, m, s
  CHECK_FALSE(ParseDuration("1m1m").has_value());
  CHECK_FALSE(ParseDuration("5d").has_value());
  CHECK_FALSE(ParseDuration("999999999999h").has_value());
}

TEST_CASE("config: FormatDuration is the shortest text ParseDuration reads back") {
  CHECK(FormatDuration(0s) == "0s");
  CHECK(FormatDuration(45s) == "45s");
  CHECK(FormatDuration(90s) == "1m30s");
  CHECK(FormatDuration(600s) == "10m");
  CHECK(FormatDuration(24h) == "24h");
  CHECK(FormatDuration(3605s) == "1h5s");
  CHECK(FormatDuration(100h + 59min + 59s) == "100h59m59s");
  for (const std::chrono::seconds value : {0s, 1s, 59s, 60s, 61s, 3599s, 3600s, 86401s}) {
    CHECK(ParseDuration(FormatDuration(value)) == value);
  }
}

TEST_CASE("config: ParseSize") {
  CHECK(ParseSize("1") == 1U);
  CHECK(ParseSize("4096") == 4096U);
  CHECK(ParseSize("256KiB") == 262144U);
  CHECK(ParseSize("1MiB") == 1048576U);
  CHECK(ParseSize("9007199254740992") == (std::uintmax_t{1} << 53U));
  CHECK(ParseSize("8589934592MiB") == (std::uintmax_t{1} << 53U));
  CHECK_FALSE(ParseSize("9007199254740993").has_value());
  CHECK_FALSE(ParseSize("8589934593MiB").has_value());
  CHECK_FALSE(ParseSize("99999999999999999999").has_value());
  CHECK_FALSE(ParseSize("").has_value());
  CHECK_FALSE(ParseSize("0").has_value());
  CHECK_FALSE(ParseSize("0KiB").has_value());
  CHECK_FALSE(ParseSize("KiB").has_value());
  CHECK_FALSE(ParseSize("1 MiB").has_value());
  CHECK_FALSE(ParseSize("1MB").has_value());
  CHECK_FALSE(ParseSize("1GiB").has_value());
  CHECK_FALSE(ParseSize("1.5MiB").has_value());
  CHECK_FALSE(ParseSize("-1").has_value());
  CHECK_FALSE(ParseSize("+1").has_value());
}

TEST_CASE("config: without a token http.listen must be loopback; with one, any address") {
  TempDir dir;
  for (const char* listen : {"127.0.0.1:8080", "127.3.2.1:0", "[::1]:8080", "localhost:8080"}) {
    CAPTURE(listen);
    const ConfigResult result =
        Load(dir, std::string(kMinimal) + "http: {listen: \"" + listen + "\"}\n");
    CHECK_MESSAGE(result.errors.empty(), Dump(result));
  }
  for (const char* listen : {"0.0.0.0:8080", "[::]:8080", "10.0.0.1:80", "128.0.0.1:80",
                             "127.0.0.256:80", "127.0.0:80", "localhost.example.com:80"}) {
    CAPTURE(listen);
    const ConfigResult result =
        Load(dir, std::string(kMinimal) + "http: {listen: \"" + listen + "\"}\n");
    REQUIRE(result.errors.size() == 1);
    CHECK(result.errors[0].field == "http.listen");
    CHECK(result.errors[0].message.find("not a loopback address") != std::string::npos);
  }
  for (const char* token : {"tokenEnv: TM_API_TOKEN", "readTokenFile: read-token"}) {
    CAPTURE(token);
    const ConfigResult result = Load(
        dir, std::string(kMinimal) + "http: {listen: \"0.0.0.0:8080\", " + token + "}\n");
    CHECK_MESSAGE(result.errors.empty(), Dump(result));
  }
}

TEST_CASE("config: http.tlsCertFile and tlsKeyFile, resolved and readable") {
  TempDir dir;
  dir.Write("etc/tls/cert.pem", "-----BEGIN CERTIFICATE-----\n");
  dir.Write("etc/tls/key.pem", "-----BEGIN PRIVATE KEY-----\n");
  const ConfigResult result =
      Load(dir, std::string(kMinimal) + "http: {tlsCertFile: tls/cert.pem, tlsKeyFile: tls/key.pem}\n");
  REQUIRE_MESSAGE(result.errors.empty(), Dump(result));
  CHECK(result.config.http.tls_cert_file == dir.path() / "etc/tls/cert.pem");
  CHECK(result.config.http.tls_key_file == dir.path() / "etc/tls/key.pem");
  const ConfigResult missing =
      Load(dir, std::string(kMinimal) + "http: {tlsCertFile: tls/cert.pem, tlsKeyFile: tls/nope.pem}\n");
  REQUIRE(missing.errors.size() == 1);
  CHECK(missing.errors[0].field == "http.tlsKeyFile");
  CHECK(missing.errors[0].where.line == 6);
  CHECK(missing.errors[0].message.find("nope.pem") != std::string::npos);
  CHECK(missing.config.http.tls_cert_file.empty());
}

TEST_CASE("config: http.listen port 0 asks for any free port") {
  TempDir dir;
  const ConfigResult result = Load(dir, std::string(kMinimal) + "http: {listen: \"127.0.0.1:0\"}\n");
  INFO(Dump(result));
  REQUIRE(result.errors.empty());
  CHECK(result.config.http.listen == "127.0.0.1:0");
}

TEST_CASE("config: store.retention, with its defaults and its rules") {
  TempDir dir;
  ConfigResult result = Load(dir, kMinimal);
  REQUIRE(result.errors.empty());
  const auto& defaults = result.config.store.retention;
  CHECK(defaults.events_max_age == std::chrono::hours(24 * 30));
  CHECK(defaults.events_max_count == 100000);
  CHECK(defaults.deliveries_max_age == std::chrono::hours(24 * 30));
  CHECK(defaults.deliveries_max_count == 10000);
  CHECK(defaults.rejected_deliveries == 1000);

  result = Load(dir, std::string(kMinimal) +
                         "store:\n  retention:\n    eventsMaxAge: 24h\n    eventsMaxCount: 500\n"
                         "    deliveriesMaxAge: 1h\n    deliveriesMaxCount: 50\n"
                         "    rejectedDeliveries: 20\n");
  INFO(Dump(result));
  REQUIRE(result.errors.empty());
  const auto& set = result.config.store.retention;
  CHECK(set.events_max_age == 24h);
  CHECK(set.events_max_count == 500);
  CHECK(set.deliveries_max_age == 1h);
  CHECK(set.deliveries_max_count == 50);
  CHECK(set.rejected_deliveries == 20);

  const std::string zero =
      OneError(std::string(kMinimal) + "store:\n  retention:\n    rejectedDeliveries: 0\n");
  CHECK(zero.find("store.retention.rejectedDeliveries") != std::string::npos);
  const std::string unknown =
      OneError(std::string(kMinimal) + "store:\n  retention:\n    forever: true\n");
  CHECK(unknown.find("store.retention.forever") != std::string::npos);
}

TEST_CASE("config: bindings, pooler.pgbouncer and runtimes") {
  TempDir dir;
  const ConfigResult full = Load(dir, std::string(kMinimal) + R"(bindings:
  dir: ../bindings
  group: postgres
pooler:
  pgbouncer:
    dir: /etc/pgbouncer/tenant-master
    listen: 127.0.0.1:6432
    reload: {adminDsnEnv: TM_PGBOUNCER_ADMIN_DSN}
runtimes:
  erp: {tokenEnv: TM_ERP_RUNTIME_TOKEN}
  shop: {tokenFile: shop.token}
)");
  REQUIRE_MESSAGE(full.errors.empty(), Dump(full));
  const auto& config = full.config;
  REQUIRE(config.bindings.has_value());
  CHECK(config.bindings->dir == (dir.path() / "bindings").lexically_normal());
  CHECK(config.bindings->group == "postgres");
  REQUIRE(config.pgbouncer.has_value());
  CHECK(config.pgbouncer->dir == "/etc/pgbouncer/tenant-master");
  CHECK(config.pgbouncer->group.empty());
  CHECK(config.pgbouncer->listen_host == "127.0.0.1");
  CHECK(config.pgbouncer->listen_port == 6432);
  CHECK(config.pgbouncer->reload_admin_dsn.env == "TM_PGBOUNCER_ADMIN_DSN");
  CHECK(config.pgbouncer->reload_pid_file.empty());
  CHECK(config.runtimes.at("erp").token.env == "TM_ERP_RUNTIME_TOKEN");
  CHECK(config.runtimes.at("shop").token.file == (dir.path() / "etc" / "shop.token").lexically_normal());

  const ConfigResult none = Load(dir, kMinimal);
  CHECK_FALSE(none.config.bindings.has_value());
  CHECK_FALSE(none.config.pgbouncer.has_value());
  CHECK(none.config.runtimes.empty());

  const std::string m = kMinimal;
  CHECK(OneError(m + "bindings:\n  group: postgres\n") == "7:3: bindings.dir: required field is missing");
  CHECK(OneError(m + "bindings:\n  dir: b\n  group: no-such-group-here\n") ==
        "8:10: bindings.group: group \"no-such-group-here\" does not exist on this machine");
  CHECK(OneError(m + "bindings:\n  dir: b\n  group: \"Bad Group\"\n") ==
        "8:10: bindings.group: must be a group name such as tm-runtime, got \"Bad Group\"");
  CHECK(OneError(m + "pooler:\n  pgbouncer:\n    dir: p\n    listen: 127.0.0.1:6432\n") ==
        "8:5: pooler.pgbouncer.reload: required field is missing");
  CHECK(OneError(m + "pooler:\n  pgbouncer:\n    dir: p\n    listen: 127.0.0.1:6432\n"
                     "    reload: {pidFile: p.pid, adminDsnEnv: D}\n") ==
        "10:13: pooler.pgbouncer.reload: set exactly one of pidFile (SIGHUP) or "
        "adminDsnEnv/adminDsnFile (RELOAD on the admin console)");
  CHECK(OneError(m + "pooler:\n  pgbouncer:\n    dir: p\n    listen: 127.0.0.1:0\n"
                     "    reload: {pidFile: p.pid}\n") ==
        "9:13: pooler.pgbouncer.listen: must be host:port of PgBouncer's listener (for example "
        "127.0.0.1:6432), got \"127.0.0.1:0\"");
  CHECK(OneError(m + "pooler:\n  pgbouncer:\n    dir: p\n    listen: 127.0.0.1:6432\n"
                     "    reload: {pidFile: p.pid, adminDsn: postgres://x}\n") ==
        "10:30: pooler.pgbouncer.reload.adminDsn: secrets may not be written in the config; use "
        "adminDsnEnv (an environment variable) or adminDsnFile (a file)");
  CHECK(OneError(m + "runtimes:\n  erp: {token: abc}\n") ==
        "7:9: runtimes.erp.token: secrets may not be written in the config; use tokenEnv (an "
        "environment variable) or tokenFile (a file)");
  CHECK(OneError(m + "runtimes:\n  Bad_Product: {tokenEnv: T}\n") ==
        "7:3: runtimes.Bad_Product: must be a product name (a DNS label of at most 40 characters), "
        "got \"Bad_Product\"");
  CHECK(OneError(m + "runtimes:\n  erp: {}\n") ==
        "7:8: runtimes.erp.tokenEnv: one of tokenEnv or tokenFile is required");
}

TEST_CASE("config: a cluster's capacity and labels, for placement; checked as labels are") {
  TempDir dir;
  const ConfigResult set = Load(dir, R"(baseDomain: example.com
masterKeyEnv: TM_MASTER_KEY
clusters:
  - name: eu-1
    dsnEnv: TM_PG_DSN
    capacity: 500
    labels: {region: eu, tier: gold}
  - name: us-1
    dsnEnv: TM_PG_DSN
)");
  INFO(Dump(set));
  REQUIRE(set.errors.empty());
  REQUIRE(set.config.clusters.size() == 2);
  CHECK(set.config.clusters[0].capacity == 500);
  CHECK(set.config.clusters[0].labels ==
        std::map<std::string, std::string>{{"region", "eu"}, {"tier", "gold"}});
  CHECK_FALSE(set.config.clusters[1].capacity.has_value());
  CHECK(set.config.clusters[1].labels.empty());

  CHECK(OneError(std::string(kMinimal) + "    capacity: -1\n") ==
        "6:15: clusters[0].capacity: must be between 0 and 10000000, got -1");
  CHECK(OneError(std::string(kMinimal) + "    labels: {\"bad key!\": x}\n").find(
            "clusters[0].labels[bad key!]: invalid label key \"bad key!\"") != std::string::npos);
  CHECK(OneError(std::string(kMinimal) + "    labels: [eu]\n").find(
            "clusters[0].labels: must be a map of label keys to values") != std::string::npos);
}

TEST_CASE("config: stacks.endpoints, for placing dedicated stacks; ids unique") {
  TempDir dir;
  const ConfigResult set = Load(dir, std::string(kMinimal) + R"(stacks:
  endpoints:
    - id: 1
      capacity: 40
      labels: {kind: swarm}
    - id: 7
)");
  INFO(Dump(set));
  REQUIRE(set.errors.empty());
  REQUIRE(set.config.stacks.endpoints.size() == 2);
  CHECK(set.config.stacks.endpoints[0].id == 1);
  CHECK(set.config.stacks.endpoints[0].capacity == 40);
  CHECK(set.config.stacks.endpoints[0].labels ==
        std::map<std::string, std::string>{{"kind", "swarm"}});
  CHECK(set.config.stacks.endpoints[1].id == 7);
  CHECK_FALSE(set.config.stacks.endpoints[1].capacity.has_value());

  CHECK(OneError(std::string(kMinimal) + "stacks:\n  endpoints:\n    - {id: 1}\n    - {id: 1}\n") ==
        "9:12: stacks.endpoints[1].id: endpoint 1 is defined twice (first at line 8)");
  CHECK(OneError(std::string(kMinimal) + "stacks:\n  endpoints:\n    - {capacity: 3}\n") ==
        "8:7: stacks.endpoints[0].id: required field is missing");
  CHECK(OneError(std::string(kMinimal) + "stacks:\n  endpoints:\n    - {id: 0}\n") ==
        "8:12: stacks.endpoints[0].id: must be between 1 and 2147483647, got 0");
  CHECK(OneError(std::string(kMinimal) + "stacks:\n  endpoints:\n    - {id: 2, color: red}\n") ==
        "8:15: stacks.endpoints[0].color: unknown field \"color\"");
}
