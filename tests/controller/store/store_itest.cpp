// The store's PostgreSQL adapter against a real PostgreSQL (issue 3 item 1).

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/crypto.hpp"
#include "common/time.hpp"
#include "common/secret.hpp"
#include "common/text.hpp"
#include "controller/store/store.hpp"
#include "controller/store/store_libpq.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/pg_server.hpp"
#include "tests/support/rollout_store_cases.hpp"

namespace tmaster::controller {
namespace {

using testing::Eventually;
using testing::Execute;
using testing::PgServer;
using testing::Query;
using testing::QueryValue;

std::string StoreDsn() {
  return PgServer::Shared().Dsn("tenant_master");
}

/// A fresh store on tenant_master, migrated.
std::unique_ptr<Store> OpenStore() {
  auto store = MakeLibpqStore(Secret(StoreDsn()));
  Outcome<Done> migrated = store->Migrate();
  REQUIRE_MESSAGE(migrated.ok(), (migrated.ok() ? "" : migrated.failure().message));
  return store;
}

template <class T>
T Must(Outcome<T> outcome) {
  REQUIRE_MESSAGE(outcome.ok(), (outcome.ok() ? "" : outcome.failure().message));
  return std::move(outcome).value();
}

TEST_CASE("the store creates its database tenant_master when it is missing") {
  const std::string admin = PgServer::Shared().Dsn("postgres");
  (void)QueryValue(admin, "DROP DATABASE IF EXISTS tenant_master WITH (FORCE)");
  REQUIRE(QueryValue(admin, "SELECT count(*) FROM pg_database WHERE datname = 'tenant_master'") ==
          "0");
  auto store = MakeLibpqStore(Secret(StoreDsn()));
  Outcome<Done> migrated = store->Migrate();
  REQUIRE_MESSAGE(migrated.ok(), (migrated.ok() ? "" : migrated.failure().message));
  CHECK(QueryValue(admin, "SELECT count(*) FROM pg_database WHERE datname = 'tenant_master'") ==
        "1");
  // A second store on the existing database does not try again.
  auto again = MakeLibpqStore(Secret(StoreDsn()));
  CHECK(again->Migrate().ok());
}

TEST_CASE("Migrate twice is a no-op: one version row per migration") {
  auto store = OpenStore();
  const std::string count_sql = "SELECT count(*) FROM tm_schema_version";
  const std::string rows = QueryValue(StoreDsn(), count_sql);
  CHECK(rows == "13");  // one row per migration
  const std::string versions_sql =
      "SELECT string_agg(version::text, ',' ORDER BY version) FROM tm_schema_version";
  CHECK(QueryValue(StoreDsn(), versions_sql) == "1,2,3,4,5,6,7,8,9,10,11,12,13");
  REQUIRE(store->Migrate().ok());
  auto other = MakeLibpqStore(Secret(StoreDsn()));
  REQUIRE(other->Migrate().ok());
  CHECK(QueryValue(StoreDsn(), count_sql) == rows);
  CHECK(QueryValue(StoreDsn(), versions_sql) == "1,2,3,4,5,6,7,8,9,10,11,12,13");
  CHECK(QueryValue(StoreDsn(), "SELECT count(*) FROM tm_workspaces WHERE false") == "0");
  CHECK(QueryValue(StoreDsn(), "SELECT count(*) FROM tm_sources WHERE false") == "0");
}

TEST_CASE("UpsertSpec: generation moves only when the spec changes, and survives a restart") {
  const std::string name = "gen-acme";
  const std::string spec_a = R"({"product":"crm","mode":"shared"})";
  const std::string spec_b = R"({"product":"crm","mode":"dedicated"})";
  {
    auto store = OpenStore();
    (void)store->Remove(name);
    StoredWorkspace first = Must(store->UpsertSpec(name, "git-main", "rev1", spec_a));
    CHECK(first.name == name);
    CHECK(first.generation == 1);
    CHECK(first.revision == "rev1");
    CHECK(first.source == "git-main");
    CHECK(first.spec_digest == crypto::Sha256Hex(spec_a));
    CHECK_FALSE(first.deleting_since.has_value());

    StoredWorkspace same = Must(store->UpsertSpec(name, "git-main", "rev2", spec_a));
    CHECK(same.generation == 1);
    CHECK(same.revision == "rev2");

    StoredWorkspace changed = Must(store->UpsertSpec(name, "git-main", "rev3", spec_b));
    CHECK(changed.generation == 2);
    CHECK(changed.revision == "rev3");
    CHECK(changed.spec_json == spec_b);

    StoredWorkspace back = Must(store->UpsertSpec(name, "git-main", "rev4", spec_a));
    CHECK(back.generation == 3);  // a change back is a change
  }
  // Restart: a new store, a new connection, the same data.
  auto reopened = OpenStore();
  std::optional<StoredWorkspace> got = Must(reopened->Get(name));
  REQUIRE(got.has_value());
  CHECK(got->generation == 3);
  CHECK(got->revision == "rev4");
  CHECK(got->spec_json == spec_a);
  CHECK(got->spec_digest == crypto::Sha256Hex(spec_a));
  StoredWorkspace after = Must(reopened->UpsertSpec(name, "git-main", "rev5", spec_a));
  CHECK(after.generation == 3);
  CHECK_FALSE(Must(reopened->Get("no-such-workspace")).has_value());
}

TEST_CASE("a workspace's creation time is set when first stored and kept by every upsert") {
  const std::string name = "created-acme";
  auto store = OpenStore();
  (void)store->Remove(name);
  const std::string before = QueryValue(
      StoreDsn(), "SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')");
  const StoredWorkspace first = Must(store->UpsertSpec(name, "git-main", "r1", R"({"a":1})"));
  REQUIRE(first.created_at.has_value());
  CHECK(*first.created_at >= before);  // RFC 3339 in UTC sorts as text
  // Another spec a second later: a new generation, the same creation time.
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  const StoredWorkspace changed = Must(store->UpsertSpec(name, "git-main", "r2", R"({"a":2})"));
  CHECK(changed.generation == 2);
  CHECK(changed.created_at == first.created_at);
  CHECK(Must(store->Get(name))->created_at == first.created_at);
  bool listed = false;
  for (const StoredWorkspace& row : Must(store->ListWorkspaces(std::nullopt))) {
    if (row.name == name) listed = row.created_at == first.created_at;
  }
  CHECK(listed);
  // Removed and declared again: a new workspace, a new creation time.
  REQUIRE(store->Remove(name).ok());
  const StoredWorkspace again = Must(store->UpsertSpec(name, "git-main", "r3", R"({"a":1})"));
  CHECK(again.generation == 1);
  CHECK(*again.created_at > *first.created_at);
}

TEST_CASE("ListWorkspaces: all or one source, ordered by name") {
  auto store = OpenStore();
  for (const char* name : {"list-b", "list-a", "list-c"}) (void)store->Remove(name);
  Must(store->UpsertSpec("list-b", "list-dir", "", "{}"));
  Must(store->UpsertSpec("list-a", "list-dir", "", "{}"));
  Must(store->UpsertSpec("list-c", "list-git", "abc", "{}"));
  auto dir = Must(store->ListWorkspaces(std::string("list-dir")));
  REQUIRE(dir.size() == 2);
  CHECK(dir[0].name == "list-a");
  CHECK(dir[1].name == "list-b");
  auto all = Must(store->ListWorkspaces(std::nullopt));
  int ours = 0;
  for (const auto& workspace : all) {
    if (workspace.name.rfind("list-", 0) == 0) ++ours;
  }
  CHECK(ours == 3);
  CHECK(Must(store->ListWorkspaces(std::string("no-such-source"))).empty());
}

TEST_CASE("status round trip, and it survives a restart") {
  WorkspaceStatus status;
  status.name = "status-acme";
  status.observed_generation = 7;
  status.phase = "Degraded";
  status.conditions_json = R"([{"type":"Ready","status":"False","reason":"MigrationFailed"}])";
  status.last_error = "apply migration 0002 in database \"acme\": syntax error";
  status.next_retry_unix = 1900000000;
  status.revision = "0123abcd";
  status.last_runs_json =
      R"([{"start":"2024-05-01T10:00:00Z","durationSeconds":1.25,"result":"Failed",)"
      R"("reason":"MigrationFailed"}])";
  status.product_revision = 3;
  status.attempted_revision = 4;
  status.rollout_attempt = 2;
  status.pre_migration_backup = "b-status-acme-20240501T100000Z-ab12";
  {
    auto store = OpenStore();
    REQUIRE(store->PutStatus(status).ok());
  }
  auto store = OpenStore();
  auto got = Must(store->GetStatus("status-acme"));
  REQUIRE(got.has_value());
  CHECK(got->observed_generation == 7);
  CHECK(got->phase == "Degraded");
  CHECK(got->conditions_json == status.conditions_json);
  CHECK(got->last_error == status.last_error);
  REQUIRE(got->next_retry_unix.has_value());
  CHECK(*got->next_retry_unix == 1900000000);
  CHECK(got->revision == "0123abcd");
  CHECK(got->last_runs_json == status.last_runs_json);
  CHECK(got->product_revision == 3);
  CHECK(got->attempted_revision == 4);
  CHECK(got->rollout_attempt == 2);
  CHECK(got->pre_migration_backup == status.pre_migration_backup);
  CHECK(*got == status);

  status.phase = "Ready";
  status.product_revision = 4;
  status.last_error.clear();
  status.next_retry_unix.reset();
  status.revision = "4567ef01";
  status.last_runs_json = R"([{"result":"Succeeded"},{"result":"Failed"}])";
  REQUIRE(store->PutStatus(status).ok());
  got = Must(store->GetStatus("status-acme"));
  REQUIRE(got.has_value());
  CHECK(got->phase == "Ready");
  CHECK(got->last_error.empty());
  CHECK_FALSE(got->next_retry_unix.has_value());
  CHECK(got->revision == "4567ef01");
  CHECK(got->last_runs_json == status.last_runs_json);
  CHECK(got->product_revision == 4);
  CHECK(QueryValue(StoreDsn(),
                   "SELECT count(*) FROM tm_workspace_status WHERE name = 'status-acme'") == "1");

  // The defaults of a status that says nothing about revision and runs.
  WorkspaceStatus bare;
  bare.name = "status-bare";
  bare.phase = "Pending";
  bare.conditions_json = "[]";
  REQUIRE(store->PutStatus(bare).ok());
  got = Must(store->GetStatus("status-bare"));
  REQUIRE(got.has_value());
  CHECK(got->revision.empty());
  CHECK(got->last_runs_json == "[]");
  CHECK(got->product_revision == 0);
  CHECK(got->rollout_attempt == 0);
  CHECK(got->pre_migration_backup.empty());
  CHECK_FALSE(Must(store->GetStatus("no-such-status")).has_value());
}

TEST_CASE("events: newest first, per workspace or all, with a limit") {
  auto store = OpenStore();
  for (int i = 1; i <= 5; ++i) {
    Event event;
    event.workspace = "events-acme";
    event.type = i == 4 ? "Warning" : "Normal";
    event.reason = "Step" + std::to_string(i);
    event.message = "message " + std::to_string(i);
    event.at_unix = i == 5 ? 0 : 1700000000 + i;
    CHECK(Must(store->AppendEvent(event)) > 0);
  }
  Event other{0, "events-other", "Normal", "Other", "other workspace", 1700000100};
  Must(store->AppendEvent(other));

  auto three = Must(store->ListEvents(std::string("events-acme"), 3));
  REQUIRE(three.size() == 3);
  CHECK(three[0].reason == "Step5");
  CHECK(three[1].reason == "Step4");
  CHECK(three[1].type == "Warning");
  CHECK(three[2].reason == "Step3");
  CHECK(three[2].at_unix == 1700000003);
  CHECK(three[0].at_unix > 1700000100);  // 0 meant "now"
  CHECK(three[0].id > three[1].id);

  auto all = Must(store->ListEvents(std::nullopt, 2));
  REQUIRE(all.size() == 2);
  CHECK(all[0].workspace == "events-other");
  CHECK(all[1].reason == "Step5");

  // An invalid type is refused by the schema, as a Stalled failure that names the step.
  Event bad{0, "events-acme", "Chatty", "X", "y", 0};
  Outcome<std::int64_t> refused = store->AppendEvent(bad);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.failure().kind == FailureKind::kStalled);
  CHECK(refused.failure().message.find("events-acme") != std::string::npos);

  auto reopened = OpenStore();
  CHECK(Must(reopened->ListEvents(std::string("events-acme"), 100)).size() == 5);
}

TEST_CASE("webhook deliveries are recorded, newest first") {
  auto store = OpenStore();
  WebhookDelivery accepted{0, "github", "accepted", "main", "abc123", 0};
  WebhookDelivery bad{0, "gitea", "bad_signature", "", "", 1700000000};
  std::int64_t first = Must(store->RecordDelivery(accepted));
  std::int64_t second = Must(store->RecordDelivery(bad));
  CHECK(second > first);
  auto reopened = OpenStore();
  auto list = Must(reopened->ListDeliveries(2));
  REQUIRE(list.size() == 2);
  CHECK(list[0].id == second);
  CHECK(list[0].provider == "gitea");
  CHECK(list[0].verdict == "bad_signature");
  CHECK(list[0].received_at_unix == 1700000000);
  CHECK(list[1].provider == "github");
  CHECK(list[1].branch == "main");
  CHECK(list[1].revision == "abc123");
  CHECK(list[1].received_at_unix > 1700000000);
}

TEST_CASE("MarkDeleting keeps its first time; Remove forgets spec and status") {
  auto store = OpenStore();
  const std::string name = "delete-acme";
  (void)store->Remove(name);
  Must(store->UpsertSpec(name, "dir", "", R"({"a":1})"));
  WorkspaceStatus status;
  status.name = name;
  status.observed_generation = 1;
  status.phase = "Ready";
  status.conditions_json = "[]";
  REQUIRE(store->PutStatus(status).ok());

  StoredWorkspace marked = Must(store->MarkDeleting(name));
  REQUIRE(marked.deleting_since.has_value());
  CHECK(marked.deleting_since->size() == 20);  // YYYY-MM-DDTHH:MM:SSZ
  CHECK(marked.deleting_since->back() == 'Z');
  StoredWorkspace again = Must(store->MarkDeleting(name));
  CHECK(again.deleting_since == marked.deleting_since);
  // The spec survives being marked (the reclaim policy runs from it) and a new upsert.
  StoredWorkspace upserted = Must(store->UpsertSpec(name, "dir", "", R"({"a":1})"));
  CHECK(upserted.deleting_since == marked.deleting_since);
  CHECK(Must(OpenStore()->Get(name))->deleting_since == marked.deleting_since);
  // A manifest that comes back cancels the deletion; the spec and generation stay.
  StoredWorkspace cancelled = Must(store->CancelDeleting(name));
  CHECK_FALSE(cancelled.deleting_since.has_value());
  CHECK(cancelled.generation == upserted.generation);
  CHECK_FALSE(Must(OpenStore()->Get(name))->deleting_since.has_value());
  CHECK(store->CancelDeleting("no-such-workspace").failure().reason == "WorkspaceNotFound");

  CHECK(Must(store->Remove(name)));
  CHECK_FALSE(Must(store->Get(name)).has_value());
  CHECK_FALSE(Must(store->GetStatus(name)).has_value());
  CHECK_FALSE(Must(store->Remove(name)));

  Outcome<StoredWorkspace> missing = store->MarkDeleting(name);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.failure().reason == "WorkspaceNotFound");
}

TEST_CASE("failures never show the DSN or the password") {
  PgServer& server = PgServer::Shared();
  const std::string password = "wrong-" + server.password();
  auto store = MakeLibpqStore(Secret(server.DsnAs("postgres", password, "tenant_master")));
  Outcome<Done> migrated = store->Migrate();
  REQUIRE_FALSE(migrated.ok());
  CHECK(migrated.failure().kind == FailureKind::kStalled);
  CHECK(migrated.failure().reason == "AuthenticationFailed");
  CHECK(migrated.failure().message.find(password) == std::string::npos);
  CHECK(migrated.failure().message.find(server.password()) == std::string::npos);
  CHECK(migrated.failure().message.find("tenant_master") != std::string::npos);

  auto invalid = MakeLibpqStore(Secret("host=127.0.0.1 password=s3cr3t = broken"));
  Outcome<Done> refused = invalid->Migrate();
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.failure().reason == "InvalidDsn");
  CHECK(refused.failure().message.find("s3cr3t") == std::string::npos);
}

// The v1 schema exactly as migration 1 created it (frozen: a released migration is never edited),
// with one row in each table that v2 changes.
constexpr const char* kSchemaV1 = R"SQL(
CREATE TABLE tm_schema_version (
  version integer PRIMARY KEY,
  name text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE tm_workspaces (
  name text PRIMARY KEY,
  source text NOT NULL,
  revision text NOT NULL,
  spec_json text NOT NULL,
  spec_digest text NOT NULL,
  generation bigint NOT NULL CHECK (generation >= 1),
  deleting_since timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tm_workspaces_source ON tm_workspaces (source, name);
CREATE TABLE tm_workspace_status (
  name text PRIMARY KEY,
  observed_generation bigint NOT NULL,
  phase text NOT NULL,
  conditions_json text NOT NULL,
  last_error text NOT NULL,
  next_retry timestamptz,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE tm_events (
  id bigserial PRIMARY KEY,
  workspace text NOT NULL,
  type text NOT NULL CHECK (type IN ('Normal', 'Warning')),
  reason text NOT NULL,
  message text NOT NULL,
  at timestamptz NOT NULL
);
CREATE INDEX tm_events_workspace ON tm_events (workspace, id DESC);
CREATE TABLE tm_webhook_deliveries (
  id bigserial PRIMARY KEY,
  provider text NOT NULL,
  verdict text NOT NULL,
  branch text NOT NULL,
  revision text NOT NULL,
  received_at timestamptz NOT NULL
);
INSERT INTO tm_schema_version (version, name)
  VALUES (1, 'workspaces, status, events, webhook deliveries');
INSERT INTO tm_workspaces (name, source, revision, spec_json, spec_digest, generation)
  VALUES ('old-acme', 'dir', 'r1', '{}', 'digest', 4);
INSERT INTO tm_workspace_status (name, observed_generation, phase, conditions_json, last_error)
  VALUES ('old-acme', 4, 'Ready', '[]', '');
)SQL";

TEST_CASE("a store at schema v1 is upgraded to the newest and keeps its rows") {
  PgServer& server = PgServer::Shared();
  const std::string admin = server.Dsn("postgres");
  (void)QueryValue(admin, "DROP DATABASE IF EXISTS tm_store_v1 WITH (FORCE)");
  (void)QueryValue(admin, "CREATE DATABASE tm_store_v1");
  const std::string dsn = server.Dsn("tm_store_v1");
  Execute(dsn, kSchemaV1);

  auto store = MakeLibpqStore(Secret(dsn));
  Outcome<Done> migrated = store->Migrate();
  REQUIRE_MESSAGE(migrated.ok(), (migrated.ok() ? "" : migrated.failure().message));
  CHECK(QueryValue(dsn,
                   "SELECT string_agg(version::text, ',' ORDER BY version)"
                   " FROM tm_schema_version") == "1,2,3,4,5,6,7,8,9,10,11,12,13");

  std::optional<WorkspaceStatus> old = Must(store->GetStatus("old-acme"));
  REQUIRE(old.has_value());
  CHECK(old->phase == "Ready");
  CHECK(old->observed_generation == 4);
  CHECK(old->revision.empty());
  CHECK(old->product_revision == 0);  // v11: recorded at the next convergence
  CHECK(old->last_runs_json == "[]");
  std::optional<StoredWorkspace> spec = Must(store->Get("old-acme"));
  REQUIRE(spec.has_value());
  CHECK(spec->generation == 4);
  CHECK_FALSE(spec->identity.has_value());  // v3: recorded at the next convergence
  CHECK(Must(store->ListSourceStatuses()).empty());

  WorkspaceStatus updated = *old;
  updated.revision = "r2";
  REQUIRE(store->PutStatus(updated).ok());
  CHECK(Must(store->GetStatus("old-acme"))->revision == "r2");
  REQUIRE(MakeLibpqStore(Secret(dsn))->Migrate().ok());
  CHECK(QueryValue(dsn, "SELECT count(*) FROM tm_schema_version") == "13");
}

TEST_CASE("ListStatuses: every stored status, ordered by name, in one query") {
  auto store = OpenStore();
  // Byte order: "ls-a" < "ls-a-x" < "ls-ab" ('-' sorts before letters; a locale collation that
  // ignores punctuation would put "ls-ab" before "ls-a-x").
  const std::vector<std::string> names = {"ls-ab", "ls-a", "ls-a-x"};
  for (std::size_t i = 0; i < names.size(); ++i) {
    WorkspaceStatus status;
    status.name = names[i];
    status.observed_generation = static_cast<std::int64_t>(i) + 1;
    status.phase = "Ready";
    status.conditions_json = "[]";
    status.revision = "rev-" + names[i];
    status.last_runs_json = R"([{"result":")" + names[i] + R"("}])";
    if (i == 1) status.next_retry_unix = 1900000000;
    REQUIRE(store->PutStatus(status).ok());
  }
  (void)Must(store->GetStatus("ls-a"));  // the store's session is open before counting
  // The view shows the statements of every database; the extension lives in `postgres`.
  const std::string stats_dsn = PgServer::Shared().Dsn("postgres");
  Execute(stats_dsn, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
  testing::ResetStatementStats(stats_dsn);
  std::vector<WorkspaceStatus> all = Must(store->ListStatuses());
  long list_calls = 0;
  for (const auto& stat : testing::ReadStatementStats(stats_dsn)) {
    if (stat.query.find("tm_workspace_status") != std::string::npos) list_calls += stat.calls;
  }
  CHECK(list_calls == 1);

  CHECK(std::to_string(all.size()) ==
        QueryValue(StoreDsn(), "SELECT count(*) FROM tm_workspace_status"));
  CHECK(std::is_sorted(all.begin(), all.end(),
                       [](const auto& a, const auto& b) { return a.name < b.name; }));
  std::vector<WorkspaceStatus> ours;
  for (const auto& status : all) {
    if (status.name.rfind("ls-", 0) == 0) ours.push_back(status);
  }
  REQUIRE(ours.size() == 3);
  CHECK(ours[0].name == "ls-a");
  CHECK(ours[1].name == "ls-a-x");
  CHECK(ours[2].name == "ls-ab");
  CHECK(ours[0].observed_generation == 2);
  CHECK(ours[0].revision == "rev-ls-a");
  CHECK(ours[0].last_runs_json == R"([{"result":"ls-a"}])");
  REQUIRE(ours[0].next_retry_unix.has_value());
  CHECK(*ours[0].next_retry_unix == 1900000000);
  CHECK_FALSE(ours[1].next_retry_unix.has_value());
  CHECK(ours[2].observed_generation == 1);
}

TEST_CASE("source status: put, replace, list ordered by name; survives a restart") {
  auto store = OpenStore();
  SourceStatus git;
  git.name = "src-git";
  git.kind = "git";
  git.revision = "abc123";
  git.ready = true;
  git.reason = "Synced";
  git.message = "fetched branch main";
  git.last_sync_unix = 1700000000;
  git.last_attempt_unix = 1700000005;
  SourceStatus dir;
  dir.name = "src-dir";
  dir.kind = "directory";
  dir.ready = false;
  dir.reason = "InvalidManifests";
  dir.message = "parse /srv/manifests/acme.yaml: line 3";
  dir.last_attempt_unix = 1700000010;  // never synced: last_sync_unix stays 0
  REQUIRE(store->PutSourceStatus(git).ok());
  REQUIRE(store->PutSourceStatus(dir).ok());

  auto ours = [](std::vector<SourceStatus> all) {
    std::vector<SourceStatus> out;
    for (auto& status : all) {
      if (status.name.rfind("src-", 0) == 0) out.push_back(std::move(status));
    }
    return out;
  };
  std::vector<SourceStatus> listed = ours(Must(store->ListSourceStatuses()));
  REQUIRE(listed.size() == 2);
  CHECK(listed[0].name == "src-dir");
  CHECK(listed[0].kind == "directory");
  CHECK(listed[0].revision.empty());
  CHECK_FALSE(listed[0].ready);
  CHECK(listed[0].reason == "InvalidManifests");
  CHECK(listed[0].message == dir.message);
  CHECK(listed[0].last_sync_unix == 0);
  CHECK(listed[0].last_attempt_unix == 1700000010);
  CHECK(listed[1].name == "src-git");
  CHECK(listed[1].kind == "git");
  CHECK(listed[1].revision == "abc123");
  CHECK(listed[1].ready);
  CHECK(listed[1].reason == "Synced");
  CHECK(listed[1].message == git.message);
  CHECK(listed[1].last_sync_unix == 1700000000);
  CHECK(listed[1].last_attempt_unix == 1700000005);

  // Replace: a failed fetch keeps nothing of the previous row that it did not say.
  git.ready = false;
  git.reason = "FetchFailed";
  git.message = "fetch origin: timed out after 60 s";
  git.last_sync_unix = 0;
  git.last_attempt_unix = 1700000100;
  REQUIRE(store->PutSourceStatus(git).ok());
  listed = ours(Must(OpenStore()->ListSourceStatuses()));
  REQUIRE(listed.size() == 2);
  CHECK(listed[1].name == "src-git");
  CHECK_FALSE(listed[1].ready);
  CHECK(listed[1].reason == "FetchFailed");
  CHECK(listed[1].message == git.message);
  CHECK(listed[1].revision == "abc123");
  CHECK(listed[1].last_sync_unix == 0);
  CHECK(listed[1].last_attempt_unix == 1700000100);
}

// --- leader lock ------------------------------------------------------------------------------

/// The backend pid holding the leader lock in the tenant_master database, or `<none>`.
std::string LeaderPid() {
  return QueryValue(PgServer::Shared().Dsn("postgres"),
                    "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                    " WHERE l.locktype = 'advisory' AND l.classid = $1::oid AND l.objid = 1"
                    " AND l.objsubid = 2 AND l.granted"
                    " AND l.database = (SELECT oid FROM pg_database WHERE datname = $2)"
                    " AND a.application_name = 'tenant-master-leader'",
                    {std::to_string(kLeaderLockClass), "tenant_master"});
}

TEST_CASE("leader lock: one holder; a standby takes over when the holder's session ends") {
  (void)OpenStore();
  auto first = MakeLibpqLeaderLock(Secret(StoreDsn()));
  auto second = MakeLibpqLeaderLock(Secret(StoreDsn()));
  CHECK_FALSE(Must(first->StillHeld()));  // never taken
  REQUIRE(Must(first->TryAcquire()));
  CHECK_FALSE(Must(second->TryAcquire()));
  CHECK(Must(first->StillHeld()));
  CHECK_FALSE(Must(second->StillHeld()));
  CHECK(Must(first->TryAcquire()));  // again: still ours
  const std::string holder = LeaderPid();
  REQUIRE(holder != "<none>");

  // A standby starting meanwhile can still migrate: the migration lock is another key. The
  // lock_timeout turns a collision into a failure instead of a hang.
  auto standby_store = MakeLibpqStore(Secret(StoreDsn() + " options='-c lock_timeout=3000'"));
  Outcome<Done> migrated = standby_store->Migrate();
  CHECK_MESSAGE(migrated.ok(), (migrated.ok() ? "" : migrated.failure().message));

  // A standby whose own session broke reconnects within TryAcquire and answers honestly for
  // the new session: the lock is still the holder's.
  const std::string admin = PgServer::Shared().Dsn("postgres");
  CHECK(QueryValue(admin,
                   "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                   " WHERE application_name = 'tenant-master-leader' AND datname = 'tenant_master'"
                   " AND pid <> $1::int",
                   {holder}) == "1");
  REQUIRE(Eventually(
      [&] {
        return QueryValue(admin,
                          "SELECT count(*) FROM pg_stat_activity"
                          " WHERE application_name = 'tenant-master-leader'") == "1";
      },
      std::chrono::seconds(5)));
  Outcome<bool> standby = second->TryAcquire();
  REQUIRE_MESSAGE(standby.ok(), (standby.ok() ? "" : standby.failure().message));
  CHECK_FALSE(*standby);
  CHECK(LeaderPid() == holder);

  // The holder's session ends (as when its host dies): only that backend is terminated.
  CHECK(QueryValue(admin, "SELECT pg_terminate_backend($1::int)", {holder}) == "t");
  CHECK(Eventually([&] { return Must(second->TryAcquire()); }, std::chrono::seconds(5)));
  CHECK_FALSE(Must(first->StillHeld()));  // lost, and said so without a failure
  CHECK(LeaderPid() != holder);
  // The first reconnects and tries honestly: a new session does not hold the lock.
  CHECK_FALSE(Must(first->TryAcquire()));
  CHECK(Must(second->StillHeld()));

  // Release hands over at once.
  second->Release();
  second->Release();  // idempotent
  CHECK_FALSE(Must(second->StillHeld()));
  CHECK(Must(first->TryAcquire()));
  CHECK(Must(first->StillHeld()));
  first->Release();
  CHECK(LeaderPid() == "<none>");
  CHECK(Must(second->TryAcquire()));
  second->Release();
}

TEST_CASE("leader lock: creates the store database when missing; failures never show the DSN") {
  PgServer& server = PgServer::Shared();
  const std::string admin = server.Dsn("postgres");
  (void)QueryValue(admin, "DROP DATABASE IF EXISTS tm_leader_db WITH (FORCE)");
  auto lock = MakeLibpqLeaderLock(Secret(server.Dsn("tm_leader_db")));
  REQUIRE(Must(lock->TryAcquire()));
  CHECK(QueryValue(admin, "SELECT count(*) FROM pg_database WHERE datname = 'tm_leader_db'") ==
        "1");
  CHECK(QueryValue(admin,
                   "SELECT count(*) FROM pg_stat_activity WHERE datname = 'tm_leader_db'"
                   " AND application_name = 'tenant-master-leader'") == "1");
  lock->Release();

  const std::string password = "wrong-" + server.password();
  auto denied = MakeLibpqLeaderLock(Secret(server.DsnAs("postgres", password, "tenant_master")));
  Outcome<bool> refused = denied->TryAcquire();
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.failure().kind == FailureKind::kTransient);
  CHECK(refused.failure().reason == "AuthenticationFailed");
  CHECK(refused.failure().message.find(password) == std::string::npos);
  CHECK(refused.failure().message.find("port=") == std::string::npos);
  CHECK(refused.failure().message.find("leader lock") != std::string::npos);
  CHECK_FALSE(Must(denied->StillHeld()));
  denied->Release();
}

// --- the store's DSN from a cluster DSN -------------------------------------------------------

/// A conninfo value in single quotes, `\` and `'` escaped (libpq's rules).
std::string Quoted(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\\' || c == '\'') out.push_back('\\');
    out.push_back(c);
  }
  return out + "'";
}

/// `user@database` of a session opened with `dsn`.
std::string WhoAndWhere(const Secret& dsn) {
  return QueryValue(dsn.Reveal(), "SELECT current_user || '@' || current_database()");
}

TEST_CASE("StoreDsnFromClusterDsn: the same server and credentials, database tenant_master") {
  (void)OpenStore();  // tenant_master exists
  PgServer& server = PgServer::Shared();
  const std::string port = std::to_string(server.port());

  SUBCASE("conninfo") {
    Secret dsn = Must(StoreDsnFromClusterDsn(Secret(server.Dsn("postgres"))));
    CHECK(WhoAndWhere(dsn) == "postgres@tenant_master");
  }
  SUBCASE("URI with a database") {
    Secret dsn = Must(
        StoreDsnFromClusterDsn(Secret("postgresql://postgres:" + PercentEncode(server.password()) +
                                      "@127.0.0.1:" + port + "/postgres?connect_timeout=5")));
    CHECK(WhoAndWhere(dsn) == "postgres@tenant_master");
  }
  SUBCASE("URI without a database") {
    Secret dsn = Must(StoreDsnFromClusterDsn(
        Secret("postgres://postgres:" + server.password() + "@127.0.0.1:" + port)));
    CHECK(WhoAndWhere(dsn) == "postgres@tenant_master");
  }
  SUBCASE("a password with quotes, backslashes and spaces survives") {
    const std::string password = R"(it's a \back\slash "pw" \' end\)";
    const std::string admin = server.Dsn("postgres");
    (void)QueryValue(admin, "DROP ROLE IF EXISTS tm_quote");
    std::string literal;
    for (char c : password) literal += c == '\'' ? std::string("''") : std::string(1, c);
    Execute(admin, "CREATE ROLE tm_quote LOGIN PASSWORD '" + literal + "'");
    // The store is closed to PUBLIC; this role stands for an operator given its own access.
    Execute(admin, "GRANT CONNECT ON DATABASE tenant_master TO tm_quote");
    Secret from_conninfo = Must(StoreDsnFromClusterDsn(
        Secret("host=127.0.0.1 port=" + port + " user=tm_quote password=" + Quoted(password) +
               " dbname=postgres connect_timeout=5")));
    CHECK(WhoAndWhere(from_conninfo) == "tm_quote@tenant_master");
    Secret from_uri =
        Must(StoreDsnFromClusterDsn(Secret("postgresql://tm_quote:" + PercentEncode(password) +
                                           "@127.0.0.1:" + port + "/postgres?connect_timeout=5")));
    CHECK(WhoAndWhere(from_uri) == "tm_quote@tenant_master");
  }
  SUBCASE("malformed: InvalidConfig, and the message shows no part of the DSN") {
    for (const std::string bad :
         {"host=127.0.0.1 password=s3cr3t = broken", "postgresql://user:s3cr3t@[::1:5432/db",
          "postgresql://user:s3cr3t@host/db?nosuchoption=1"}) {
      CAPTURE(bad);
      Outcome<Secret> refused = StoreDsnFromClusterDsn(Secret(bad));
      REQUIRE_FALSE(refused.ok());
      CHECK(refused.failure().kind == FailureKind::kStalled);
      CHECK(refused.failure().reason == "InvalidConfig");
      CHECK(refused.failure().message.find("s3cr3t") == std::string::npos);
      CHECK(refused.failure().message.find("user") == std::string::npos);
      CHECK(refused.failure().message.find("DSN") != std::string::npos);
    }
  }
}

TEST_CASE("a server restart is survived: the next call reconnects") {
  auto store = OpenStore();
  Must(store->UpsertSpec("restart-acme", "dir", "r1", "{}"));
  PgServer::Shared().Restart();
  std::optional<StoredWorkspace> got = Must(store->Get("restart-acme"));
  REQUIRE(got.has_value());
  CHECK(got->revision == "r1");
}

TEST_CASE("leader lock: a server restart ends the hold; StillHeld says so without a failure") {
  (void)OpenStore();
  auto lock = MakeLibpqLeaderLock(Secret(StoreDsn()));
  REQUIRE(Must(lock->TryAcquire()));
  PgServer::Shared().Restart();
  Outcome<bool> held = lock->StillHeld();
  REQUIRE_MESSAGE(held.ok(), (held.ok() ? "" : held.failure().message));
  CHECK_FALSE(*held);
  CHECK(Must(lock->TryAcquire()));  // a new session, and the lock is free again
  CHECK(Must(lock->StillHeld()));
  lock->Release();
}

// Moves (schema v13, docs/moves.md): a versioned row per workspace; the switch moves the
// placement and the identity's cluster with the row, or nothing.
TEST_CASE("moves store (schema v13): versioned writes, and the switch in one transaction") {
  auto store = OpenStore();
  Execute(StoreDsn(), "DELETE FROM tm_moves WHERE workspace LIKE 'mv-%';"
                      " DELETE FROM tm_placements WHERE workspace LIKE 'mv-%';"
                      " DELETE FROM tm_workspaces WHERE name LIKE 'mv-%'");
  Must(store->UpsertSpec("mv-acme", "fleet", "r1", R"({"spec":{}})"));
  Must(store->RecordIdentity("mv-acme", {"crm", "c1", "tenant_mv_acme", "user_mv_acme"}));
  Must(store->RecordPlacement("mv-acme", "c1", 1'800'000'000));
  CHECK_FALSE(Must(store->FindMove("mv-acme")).has_value());

  StoredMove move;
  move.workspace = "mv-acme";
  move.id = "mv-mv-acme-1-abcd";
  move.from_cluster = "c1";
  move.to_cluster = "c2";
  move.state = "pending";
  move.step = "prepare";
  move.who = "token:t1";
  move.requested_unix = 1'800'000'100;
  const std::optional<std::int64_t> v1 = Must(store->PutMove(move, 1'800'000'100));
  REQUIRE(v1 == 1);
  // A second writer that read no row (or an old version) writes nothing.
  CHECK_FALSE(Must(store->PutMove(move, 1'800'000'101)).has_value());
  move.version = 1;
  move.state = "running";
  move.target_created = true;
  move.message = "restoring";
  REQUIRE(Must(store->PutMove(move, 1'800'000'102)) == 2);
  std::optional<StoredMove> read = Must(store->FindMove("mv-acme"));
  REQUIRE(read.has_value());
  CHECK(read->state == "running");
  CHECK(read->target_created);
  CHECK(read->updated_unix == 1'800'000'102);
  CHECK(read->version == 2);

  // A stale switch changes nothing: not the row, not the placement, not the identity.
  move.switched = true;
  CHECK_FALSE(Must(store->SwitchPlacement(move, 1'800'000'103)).has_value());
  CHECK(QueryValue(StoreDsn(), "SELECT cluster FROM tm_placements WHERE workspace = 'mv-acme'") ==
        "c1");
  move.version = 2;
  REQUIRE(Must(store->SwitchPlacement(move, 1'800'000'104)) == 3);
  CHECK(QueryValue(StoreDsn(), "SELECT cluster FROM tm_placements WHERE workspace = 'mv-acme'") ==
        "c2");
  const std::optional<StoredWorkspace> workspace = Must(store->Get("mv-acme"));
  REQUIRE(workspace.has_value());
  REQUIRE(workspace->identity.has_value());
  CHECK(workspace->identity->cluster == "c2");
  CHECK(workspace->identity->database == "tenant_mv_acme");
  read = Must(store->FindMove("mv-acme"));
  REQUIRE(read.has_value());
  CHECK(read->switched);
  const std::vector<StoredMove> all = Must(store->ListMoves());
  CHECK(std::count_if(all.begin(), all.end(),
                      [](const StoredMove& m) { return m.workspace == "mv-acme"; }) == 1);
  CHECK_FALSE(store->PutMove(StoredMove{}, 1).ok());
}

}  // namespace
}  // namespace tmaster::controller

namespace tmaster::controller {
namespace {

/// Whether `dsn` can open a session at all.
bool CanConnect(const std::string& dsn) {
  try {
    testing::PgSession session(dsn);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

}  // namespace

TEST_CASE("the store belongs to the operator: a tenant role cannot connect, even after drift") {
  const std::string admin = PgServer::Shared().Dsn("postgres");
  Execute(admin, "DROP ROLE IF EXISTS store_probe_tenant");
  Execute(admin, "CREATE ROLE store_probe_tenant LOGIN PASSWORD 'probe-pw-1'");
  const std::string as_tenant =
      PgServer::Shared().DsnAs("store_probe_tenant", "probe-pw-1", "tenant_master");
  auto store = OpenStore();
  // A tenant could otherwise connect to the store and take the leader lock first.
  CHECK_FALSE(CanConnect(as_tenant));
  // Someone grants it back by hand: the next start repairs it.
  Execute(PgServer::Shared().Dsn("tenant_master"),
          "GRANT CONNECT ON DATABASE tenant_master TO PUBLIC");
  REQUIRE(CanConnect(as_tenant));
  REQUIRE(store->Migrate().ok());
  CHECK_FALSE(CanConnect(as_tenant));
  CHECK(QueryValue(admin,
                   "SELECT has_database_privilege('store_probe_tenant', 'tenant_master', "
                   "'TEMPORARY')") == "f");
  // The operator's own sessions still work.
  CHECK(store->ListStatuses().ok());
  Execute(admin, "DROP ROLE store_probe_tenant");
}

TEST_CASE("RecordIdentity: the first convergence's identity is kept, across restarts, until Remove") {
  const std::string name = "identity-acme";
  const WorkspaceIdentity first{"crm", "default", "tenant_acme", "user_acme"};
  const WorkspaceIdentity other{"erp", "eu", "acme_new", "acme_owner"};
  {
    auto store = OpenStore();
    (void)store->Remove(name);
    CHECK(store->RecordIdentity(name, first).failure().reason == "WorkspaceNotFound");
    StoredWorkspace fresh = Must(store->UpsertSpec(name, "git-main", "rev1", "{}"));
    CHECK_FALSE(fresh.identity.has_value());
    StoredWorkspace recorded = Must(store->RecordIdentity(name, first));
    REQUIRE(recorded.identity.has_value());
    CHECK(*recorded.identity == first);
    // A second record (another spec) keeps the first; so does a new spec.
    StoredWorkspace again = Must(store->RecordIdentity(name, other));
    CHECK(*again.identity == first);
    StoredWorkspace changed = Must(store->UpsertSpec(name, "git-main", "rev2", R"({"x":1})"));
    REQUIRE(changed.identity.has_value());
    CHECK(*changed.identity == first);
  }
  auto reopened = OpenStore();
  std::optional<StoredWorkspace> got = Must(reopened->Get(name));
  REQUIRE(got.has_value());
  REQUIRE(got->identity.has_value());
  CHECK(*got->identity == first);
  std::vector<StoredWorkspace> listed = Must(reopened->ListWorkspaces(std::nullopt));
  bool found = false;
  for (const auto& w : listed) found = found || (w.name == name && w.identity && *w.identity == first);
  CHECK(found);
  // Where its stack lives: recorded, replaced, cleared.
  CHECK_FALSE(got->stack_endpoint.has_value());
  REQUIRE(reopened->RecordStackEndpoint(name, 3).ok());
  CHECK(Must(reopened->Get(name))->stack_endpoint == std::optional<int>(3));
  REQUIRE(reopened->RecordStackEndpoint(name, std::nullopt).ok());
  CHECK_FALSE(Must(reopened->Get(name))->stack_endpoint.has_value());
  CHECK(reopened->RecordStackEndpoint("no-such-workspace", 1).failure().reason ==
        "WorkspaceNotFound");
  // Remove forgets it: a workspace declared again under that name starts afresh.
  CHECK(Must(reopened->Remove(name)));
  Must(reopened->UpsertSpec(name, "git-main", "rev3", "{}"));
  CHECK(*Must(reopened->RecordIdentity(name, other)).identity == other);
  (void)reopened->Remove(name);
}

TEST_CASE("retention: rejected deliveries are a ring; Prune keeps events and deliveries bounded") {
  PgServer& server = PgServer::Shared();
  const std::string admin = server.Dsn("postgres");
  (void)QueryValue(admin, "DROP DATABASE IF EXISTS tm_store_retention WITH (FORCE)");
  const std::string dsn = server.Dsn("tm_store_retention");
  Retention retention;
  retention.rejected_deliveries = 5;
  retention.deliveries_max_count = 3;
  retention.events_max_count = 4;
  retention.events_max_age = std::chrono::hours(1);
  auto store = MakeLibpqStore(Secret(dsn), retention);
  REQUIRE(store->Migrate().ok());
  // 50 unsigned posts and 4 signed ones, interleaved: at most 5 rejected rows stay, at once.
  for (int i = 0; i < 50; ++i) {
    const char* verdict = i % 2 == 0 ? "bad_signature" : "missing_signature";
    Must(store->RecordDelivery({0, "github", verdict, "", "", 0}));
    if (i % 10 == 0) Must(store->RecordDelivery({0, "github", "accepted", "main", "c1", 0}));
  }
  const std::string rejected_sql =
      "SELECT count(*) FROM tm_webhook_deliveries WHERE verdict <> 'accepted'";
  CHECK(std::stoi(QueryValue(dsn, rejected_sql)) <= 5);
  CHECK(QueryValue(dsn, "SELECT count(*) FROM tm_webhook_deliveries WHERE verdict = 'accepted'") ==
        "5");
  // Events: 10 new, 3 older than the age.
  for (int i = 0; i < 10; ++i) Must(store->AppendEvent({0, "w", "Normal", "Tick", "n", 0}));
  const std::int64_t old = UnixNow() - 2 * 3600;
  for (int i = 0; i < 3; ++i) Must(store->AppendEvent({0, "w", "Normal", "Old", "o", old}));
  Pruned pruned = Must(store->Prune());
  CHECK(pruned.events == 9);  // the 3 old, then all but the newest 4
  CHECK(QueryValue(dsn, "SELECT count(*) FROM tm_events") == "4");
  CHECK(QueryValue(dsn, "SELECT count(*) FROM tm_events WHERE reason = 'Old'") == "0");
  CHECK(QueryValue(dsn, "SELECT count(*) FROM tm_webhook_deliveries") == "3");
  CHECK(pruned.deliveries > 0);
  // Nothing more to prune.
  pruned = Must(store->Prune());
  CHECK(pruned.events == 0);
  CHECK(pruned.deliveries == 0);
}


TEST_CASE("a lock held on a store table fails the call LockTimeout instead of hanging it") {
  // Store sessions start with lock_timeout=5s (store_libpq_connector.cpp): a hand-run
  // transaction holding a store table makes the call fail Transient, and the controller retries.
  auto store = OpenStore();
  testing::PgSession holder(StoreDsn());
  REQUIRE(holder.Run("BEGIN; LOCK TABLE tm_workspaces IN ACCESS EXCLUSIVE MODE") == "");
  const auto start = std::chrono::steady_clock::now();
  auto listed = std::async(std::launch::async,
                           [&] { return store->ListWorkspaces(std::nullopt); });
  const bool in_time = listed.wait_for(std::chrono::seconds(12)) == std::future_status::ready;
  const auto elapsed = std::chrono::steady_clock::now() - start;
  static_cast<void>(holder.Run("ROLLBACK"));  // unblocks a call that did not time out
  REQUIRE_MESSAGE(in_time, "the store call waited on the lock for over 12 s");
  const auto outcome = listed.get();
  REQUIRE_FALSE(outcome.ok());
  CHECK(outcome.failure().kind == FailureKind::kTransient);
  CHECK(outcome.failure().reason == "LockTimeout");
  CHECK(elapsed >= std::chrono::seconds(4));
  CHECK(store->ListWorkspaces(std::nullopt).ok());
}

}  // namespace tmaster::controller

namespace tmaster::controller {
namespace {

StackLedgerRow LedgerRow(std::string workspace, std::string backend, std::int64_t id,
                         std::int64_t update_date, const std::string& file) {
  return {.workspace = std::move(workspace),
          .backend = std::move(backend),
          .stack_id = id,
          .update_date = update_date,
          .file_digest = crypto::Sha256Hex(file)};
}

}  // namespace

TEST_CASE("stack ledger: put, replace, list per backend in order, erase; survives a restart") {
  auto store = OpenStore();
  Execute(StoreDsn(), "DELETE FROM tm_stack_ledger");
  const std::string portainer = "portainer https://portainer.example.test";
  const std::string other = "portainer https://other.example.test";
  // A 64-bit stack id and UpdateDate in nanoseconds (the directory backend's) round-trip.
  const StackLedgerRow big = LedgerRow("sl-b", portainer, 5'000'000'000, 1'700'000'000'123'456'789,
                                       "services: {}");
  REQUIRE(store->PutStackLedger(LedgerRow("sl-c", portainer, 7, 100, "c")).ok());
  REQUIRE(store->PutStackLedger(big).ok());
  REQUIRE(store->PutStackLedger(LedgerRow("sl-a", other, 9, 200, "a")).ok());

  std::vector<StackLedgerRow> rows = Must(store->ListStackLedger(portainer));
  REQUIRE(rows.size() == 2);
  CHECK(rows[0] == big);
  CHECK(rows[1] == LedgerRow("sl-c", portainer, 7, 100, "c"));
  CHECK(Must(store->ListStackLedger(other)) ==
        std::vector<StackLedgerRow>{LedgerRow("sl-a", other, 9, 200, "a")});
  CHECK(Must(store->ListStackLedger("directory /nowhere")).empty());

  // A put replaces the workspace's row, whichever backend it had.
  const StackLedgerRow moved = LedgerRow("sl-a", portainer, 11, 300, "a2");
  REQUIRE(store->PutStackLedger(moved).ok());
  CHECK(Must(store->ListStackLedger(other)).empty());
  CHECK(Must(store->ListStackLedger(portainer)).size() == 3);

  CHECK(Must(store->EraseStackLedger("sl-c")));
  CHECK_FALSE(Must(store->EraseStackLedger("sl-c")));

  auto reopened = OpenStore();
  CHECK(Must(reopened->ListStackLedger(portainer)) == std::vector<StackLedgerRow>{moved, big});
}

TEST_CASE("stack ledger: a row the ledger could not have written is refused, naming the workspace") {
  auto store = OpenStore();
  Outcome<Done> zero = store->PutStackLedger(LedgerRow("sl-zero", "b", 0, 1, "x"));
  REQUIRE_FALSE(zero.ok());
  CHECK(zero.failure().reason == "InvalidValue");
  CHECK(zero.failure().message.find("sl-zero") != std::string::npos);
  StackLedgerRow upper = LedgerRow("sl-upper", "b", 3, 1, "x");
  upper.file_digest[0] = 'A';
  Outcome<Done> digest = store->PutStackLedger(upper);
  REQUIRE_FALSE(digest.ok());
  CHECK(digest.failure().reason == "InvalidValue");
  CHECK(digest.failure().message.find("sl-upper") != std::string::npos);
  CHECK(QueryValue(StoreDsn(),
                   "SELECT count(*) FROM tm_stack_ledger WHERE workspace IN ('sl-zero', 'sl-upper')") == "0");
}

TEST_CASE("a store at schema v3 is upgraded to the newest (the stack ledger, the API tokens) and keeps its rows") {
  PgServer& server = PgServer::Shared();
  const std::string admin = server.Dsn("postgres");
  (void)QueryValue(admin, "DROP DATABASE IF EXISTS tm_store_v3 WITH (FORCE)");
  (void)QueryValue(admin, "CREATE DATABASE tm_store_v3");
  const std::string dsn = server.Dsn("tm_store_v3");
  // A v3 store as the operator of issue 11 left it: migrations 1 to 3 are released and frozen,
  // so running them and taking v4 to v13 back out gives exactly that schema.
  REQUIRE(MakeLibpqStore(Secret(dsn))->Migrate().ok());
  Execute(dsn, "DROP TABLE tm_stack_ledger, tm_api_tokens, tm_overrides, tm_sessions,"
               " tm_login_failures, tm_backups, tm_product_revisions, tm_rollouts, tm_placements,"
               " tm_moves;"
               " ALTER TABLE tm_webhook_deliveries RESET (autovacuum_vacuum_scale_factor,"
               " autovacuum_vacuum_threshold, autovacuum_vacuum_insert_scale_factor,"
               " autovacuum_vacuum_insert_threshold);"
               " ALTER TABLE tm_workspaces DROP COLUMN created_at;"
               " ALTER TABLE tm_workspace_status DROP COLUMN product_revision,"
               " DROP COLUMN attempted_revision, DROP COLUMN rollout_attempt,"
               " DROP COLUMN pre_migration_backup;"
               " DELETE FROM tm_schema_version WHERE version >= 4");
  // The row as v3's operator wrote it (today's store reads columns a v3 table lacks).
  Execute(dsn, "INSERT INTO tm_workspaces (name, source, revision, spec_json, spec_digest,"
               " generation, identity_product, identity_cluster, identity_database,"
               " identity_owner, stack_endpoint) VALUES ('v3-acme', 'dir', 'r1', '{}', '" +
                   crypto::Sha256Hex("{}") +
                   "', 1, 'erp', 'default', 'tenant_v3_acme', 'user_v3_acme', 2)");
  CHECK(QueryValue(dsn, "SELECT count(*) FROM pg_tables WHERE tablename = 'tm_stack_ledger'") ==
        "0");

  auto store = MakeLibpqStore(Secret(dsn));
  Outcome<Done> migrated = store->Migrate();
  REQUIRE_MESSAGE(migrated.ok(), (migrated.ok() ? "" : migrated.failure().message));
  CHECK(QueryValue(dsn, "SELECT string_agg(version::text, ',' ORDER BY version)"
                        " FROM tm_schema_version") == "1,2,3,4,5,6,7,8,9,10,11,12,13");
  std::optional<StoredWorkspace> kept = Must(store->Get("v3-acme"));
  REQUIRE(kept.has_value());
  CHECK(kept->stack_endpoint == 2);
  CHECK_FALSE(kept->created_at.has_value());  // v9: not known for older rows, not invented
  REQUIRE(kept->identity.has_value());
  CHECK(kept->identity->database == "tenant_v3_acme");
  CHECK(Must(store->ListStackLedger("b")).empty());
  const StackLedgerRow row = LedgerRow("v3-acme", "b", 4, 40, "f");
  REQUIRE(store->PutStackLedger(row).ok());
  CHECK(Must(store->ListStackLedger("b")) == std::vector<StackLedgerRow>{row});
  CHECK(Must(store->ListBackups(std::nullopt)).empty());  // v8's catalog, empty
  REQUIRE(MakeLibpqStore(Secret(dsn))->Migrate().ok());
  CHECK(QueryValue(dsn, "SELECT count(*) FROM tm_schema_version") == "13");
}

namespace {

// A token row as the API would store it for `token` (the whole `tmt_<id>_<secret>` text).
ApiToken TokenRow(const std::string& id, const std::string& role, std::int64_t created,
                  std::int64_t expires) {
  ApiToken token;
  token.id = id;
  token.digest = crypto::Sha256Hex("tmt_" + id + "_secret-of-" + id);
  token.role = role;
  token.description = "token " + id + " for \"ci\"";
  token.created_unix = created;
  token.expires_unix = expires;
  return token;
}

}  // namespace

TEST_CASE("API tokens (schema v5): create, find, list in creation order, touch, revoke; survive a restart") {
  auto store = OpenStore();
  Execute(StoreDsn(), "DELETE FROM tm_api_tokens");
  const ApiToken ci = TokenRow("abcdefgh23", "admin", 1'800'000'000, 1'802'592'000);
  const ApiToken view = TokenRow("zzzzzzzz77", "viewer", 1'799'999'000, 1'800'043'200);
  REQUIRE(store->CreateToken(ci).ok());
  REQUIRE(store->CreateToken(view).ok());
  CHECK(Must(store->FindToken("abcdefgh23")) == std::optional<ApiToken>(ci));
  CHECK_FALSE(Must(store->FindToken("nosuchtok2")).has_value());
  CHECK(Must(store->ListTokens()) == std::vector<ApiToken>{view, ci});

  // An id is never reused, revoked or not.
  Outcome<Done> again = store->CreateToken(TokenRow("abcdefgh23", "viewer", 1, 2));
  REQUIRE_FALSE(again.ok());
  CHECK(again.failure().reason == "TokenExists");

  // The last use only moves forward.
  REQUIRE(store->TouchToken("abcdefgh23", 1'800'000'100).ok());
  REQUIRE(store->TouchToken("abcdefgh23", 1'800'000'050).ok());
  REQUIRE(store->TouchToken("nosuchtok2", 1'800'000'050).ok());
  CHECK(Must(store->FindToken("abcdefgh23"))->last_used_unix == 1'800'000'100);

  CHECK(Must(store->RevokeToken("abcdefgh23", 1'800'000'200)));
  CHECK_FALSE(Must(store->RevokeToken("abcdefgh23", 1'800'000'300)));  // the first time stays
  CHECK_FALSE(Must(store->RevokeToken("nosuchtok2", 1'800'000'300)));

  auto reopened = OpenStore();
  const std::optional<ApiToken> revoked = Must(reopened->FindToken("abcdefgh23"));
  REQUIRE(revoked.has_value());
  CHECK(revoked->revoked_unix == 1'800'000'200);
  CHECK(revoked->last_used_unix == 1'800'000'100);
  CHECK(revoked->digest == ci.digest);
  CHECK(revoked->description == ci.description);
  // Only the digest is stored: nothing of the token's secret is in the table.
  CHECK(QueryValue(StoreDsn(), "SELECT count(*) FROM tm_api_tokens WHERE digest LIKE '%secret%'"
                               " OR description LIKE '%secret-of%'") == "0");
}

TEST_CASE("suspend overrides (schema v6): set, replace, list in name order, clear; survive a restart") {
  auto store = OpenStore();
  Execute(StoreDsn(), "DELETE FROM tm_overrides");
  const StoredOverride bravo{.workspace = "bravo", .suspend = true, .by = "env:admin",
                             .at_unix = 1'800'000'000};
  StoredOverride acme{.workspace = "acme", .suspend = true, .by = "token:abcdefgh23 (ci)",
                      .at_unix = 1'800'000'100};
  REQUIRE(store->SetOverride(bravo).ok());
  REQUIRE(store->SetOverride(acme).ok());
  acme.by = "env:admin";
  acme.at_unix = 1'800'000'200;
  REQUIRE(store->SetOverride(acme).ok());  // replaces
  CHECK(Must(store->ListOverrides()) == std::vector<StoredOverride>{acme, bravo});

  auto reopened = OpenStore();
  CHECK(Must(reopened->ListOverrides()) == std::vector<StoredOverride>{acme, bravo});
  CHECK(Must(reopened->ClearOverride("acme")));
  CHECK_FALSE(Must(reopened->ClearOverride("acme")));
  CHECK(Must(store->ListOverrides()) == std::vector<StoredOverride>{bravo});
  // The deliveries table is vacuumed by row count, not by a fraction of its size.
  CHECK(QueryValue(StoreDsn(),
                   "SELECT array_to_string(reloptions, ',') FROM pg_class"
                   " WHERE relname = 'tm_webhook_deliveries'")
            .find("autovacuum_vacuum_threshold=1000") != std::string::npos);
}

TEST_CASE("API tokens: a row the API could not have written is refused, naming the token") {
  auto store = OpenStore();
  ApiToken bad_id = TokenRow("ABCDEFGH23", "admin", 1, 2);
  ApiToken bad_role = TokenRow("rolerole23", "root", 1, 2);
  ApiToken bad_digest = TokenRow("digest2345", "admin", 1, 2);
  bad_digest.digest = "not-hex";
  for (const ApiToken& token : {bad_id, bad_role, bad_digest}) {
    CAPTURE(token.id);
    Outcome<Done> created = store->CreateToken(token);
    REQUIRE_FALSE(created.ok());
    CHECK(created.failure().reason == "InvalidValue");
    CHECK(created.failure().message.find(token.id) != std::string::npos);
  }
  CHECK(QueryValue(StoreDsn(), "SELECT count(*) FROM tm_api_tokens WHERE id IN"
                               " ('ABCDEFGH23', 'rolerole23', 'digest2345')") == "0");
}

TEST_CASE("API tokens: the lookup the API makes on each request costs well under a millisecond") {
  auto store = OpenStore();
  Execute(StoreDsn(), "DELETE FROM tm_api_tokens");
  REQUIRE(store->CreateToken(TokenRow("timing2345", "viewer", 1'800'000'000, 1'900'000'000)).ok());
  REQUIRE(Must(store->FindToken("timing2345")).has_value());  // connected and warm
  constexpr int kLookups = 2000;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kLookups; ++i) REQUIRE(Must(store->FindToken("timing2345")).has_value());
  const auto per_lookup = (std::chrono::steady_clock::now() - start) / kLookups;
  MESSAGE("FindToken: "
          << std::chrono::duration_cast<std::chrono::microseconds>(per_lookup).count()
          << " us per lookup on a local PostgreSQL");
  CHECK(per_lookup < std::chrono::milliseconds(2));
}

}  // namespace tmaster::controller

namespace tmaster::controller {
namespace {

StoredSession SessionRow(const std::string& token, const std::string& principal,
                         std::int64_t created, std::int64_t expires) {
  StoredSession session;
  session.id = crypto::Sha256Hex(token);
  session.principal_id = principal;
  session.role = "admin";
  session.description = "";
  session.csrf_digest = crypto::Sha256Hex("csrf-of-" + token);
  session.credential_digest = crypto::Sha256Hex("credential-of-" + principal);
  session.created_unix = created;
  session.expires_unix = expires;
  session.last_seen_unix = created;
  return session;
}

TEST_CASE("sessions (schema v7): create, find, touch forward only, revoke once; survive a restart") {
  auto store = OpenStore();
  Execute(StoreDsn(), "DELETE FROM tm_sessions");
  const StoredSession alice = SessionRow("tok-alice", "user:alice", 1'800'000'000, 1'800'043'200);
  REQUIRE(store->CreateSession(alice).ok());
  CHECK(Must(store->FindSession(alice.id)) == std::optional<StoredSession>(alice));
  CHECK_FALSE(Must(store->FindSession(crypto::Sha256Hex("nobody"))).has_value());
  Outcome<Done> again = store->CreateSession(alice);
  REQUIRE_FALSE(again.ok());
  CHECK(again.failure().reason == "SessionExists");
  StoredSession bad = alice;
  bad.id = "not-a-digest";
  Outcome<Done> refused = store->CreateSession(bad);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.failure().reason == "InvalidValue");

  REQUIRE(store->TouchSession(alice.id, 1'800'000'600).ok());
  REQUIRE(store->TouchSession(alice.id, 1'800'000'300).ok());
  CHECK(Must(store->FindSession(alice.id))->last_seen_unix == 1'800'000'600);

  auto reopened = OpenStore();  // a restart: the session is still there, and still open
  std::optional<StoredSession> found = Must(reopened->FindSession(alice.id));
  REQUIRE(found.has_value());
  CHECK(found->expires_unix == 1'800'043'200);
  CHECK_FALSE(found->revoked_unix.has_value());
  CHECK(Must(reopened->RevokeSession(alice.id, 1'800'001'000)));
  CHECK_FALSE(Must(reopened->RevokeSession(alice.id, 1'800'002'000)));  // the first time stays
  CHECK(Must(store->FindSession(alice.id))->revoked_unix == 1'800'001'000);
}

TEST_CASE("Prune removes sessions expired or revoked over a day ago and idle login counters") {
  auto store = OpenStore();
  Execute(StoreDsn(), "DELETE FROM tm_sessions; DELETE FROM tm_login_failures");
  const std::int64_t now = UnixNow();
  const StoredSession old = SessionRow("tok-old", "env:admin", now - 3 * 86'400, now - 2 * 86'400);
  const StoredSession open = SessionRow("tok-open", "env:admin", now - 3'600, now + 3'600);
  StoredSession revoked = SessionRow("tok-revoked", "env:read", now - 3 * 86'400, now + 3'600);
  REQUIRE(store->CreateSession(old).ok());
  REQUIRE(store->CreateSession(open).ok());
  REQUIRE(store->CreateSession(revoked).ok());
  REQUIRE(Must(store->RevokeSession(revoked.id, now - 2 * 86'400)));
  const LoginLimit limit;
  Must(store->RecordLoginFailure("user:idle", now - 2 * 86'400, limit));
  Must(store->RecordLoginFailure("user:recent", now - 60, limit));
  const Pruned pruned = Must(store->Prune());
  CHECK(pruned.sessions == 2);
  CHECK(pruned.login_failures == 1);
  CHECK(Must(store->FindSession(open.id)).has_value());
  CHECK_FALSE(Must(store->FindSession(old.id)).has_value());
  CHECK_FALSE(Must(store->FindLoginFailure("user:idle")).has_value());
  CHECK(Must(store->FindLoginFailure("user:recent")).has_value());
}

TEST_CASE("login failures (schema v7): a lock survives a restart; distinct addresses still lock the user") {
  auto store = OpenStore();
  Execute(StoreDsn(), "DELETE FROM tm_login_failures");
  const LoginLimit user_limit{5, 300, 300, 3600, 86'400};
  const LoginLimit address_limit{20, 300, 300, 3600, 86'400};
  const std::int64_t t0 = 1'800'000'000;
  // Four failures from four addresses, then the store is opened anew (a restart, or another
  // replica): the user's count goes on from four, and the fifth failure locks the user.
  for (int i = 0; i < 4; ++i) {
    const std::string address = "addr:192.0.2." + std::to_string(i + 1);
    CHECK(Must(store->RecordLoginFailure(address, t0 + i, address_limit)).count == 1);
    CHECK(Must(store->RecordLoginFailure("user:alice", t0 + i, user_limit)).count == i + 1);
  }
  auto restarted = OpenStore();
  const LoginFailure locked = Must(restarted->RecordLoginFailure("user:alice", t0 + 10, user_limit));
  CHECK(locked.Locked(t0 + 10));
  CHECK(locked.locked_until_unix == t0 + 10 + 300);
  CHECK(locked.lockouts == 1);
  std::optional<LoginFailure> found = Must(OpenStore()->FindLoginFailure("user:alice"));
  REQUIRE(found.has_value());
  CHECK(*found == locked);
  // No address reached its own limit: only the user's counter stops the flood.
  for (int i = 0; i < 4; ++i) {
    const std::string address = "addr:192.0.2." + std::to_string(i + 1);
    CHECK_FALSE(Must(restarted->FindLoginFailure(address))->Locked(t0 + 10));
  }
  // After the lock, five more failures lock it again for twice as long.
  LoginFailure after = locked;
  for (int i = 0; i < 5; ++i) {
    after = Must(store->RecordLoginFailure("user:alice", t0 + 400 + i, user_limit));
  }
  CHECK(after.locked_until_unix == t0 + 404 + 600);
  CHECK(after.lockouts == 2);
  CHECK(Must(store->ClearLoginFailure("user:alice")));
  CHECK_FALSE(Must(store->FindLoginFailure("user:alice")).has_value());
  CHECK_FALSE(Must(store->ClearLoginFailure("user:alice")));
}

TEST_CASE("login failures: concurrent failures of one key on several connections all count") {
  auto first = OpenStore();
  Execute(StoreDsn(), "DELETE FROM tm_login_failures");
  const LoginLimit limit{1000, 300, 300, 3600, 86'400};
  const std::int64_t t0 = 1'800'000'000;
  std::vector<std::unique_ptr<Store>> stores;
  for (int w = 0; w < 4; ++w) stores.push_back(OpenStore());
  std::vector<std::future<int>> workers;
  for (auto& store : stores) {
    workers.push_back(std::async(std::launch::async, [&limit, t0, &store] {
      int failed = 0;
      for (int i = 0; i < 25; ++i) failed += store->RecordLoginFailure("user:race", t0, limit).ok() ? 0 : 1;
      return failed;
    }));
  }
  for (auto& worker : workers) CHECK(worker.get() == 0);
  CHECK(Must(first->FindLoginFailure("user:race"))->count == 100);
}

}  // namespace
}  // namespace tmaster::controller

// The backup catalog (schema v8, tm_backups; docs/backups.md#the-catalog): put, replace, find,
// list in retention's order, record a verification, delete; rows that no backup could have are
// refused by the store and by the table itself; entries outlive their workspace and a restart.
namespace tmaster::controller {
namespace {

// A fresh catalog for each test case (the shared server keeps its database between cases).
std::unique_ptr<Store> EmptyCatalog() {
  auto store = OpenStore();
  Execute(StoreDsn(), "DELETE FROM tm_backups");
  return store;
}

StoredBackup CatalogBackup(const std::string& id, const std::string& workspace,
                           std::int64_t created) {
  StoredBackup backup;
  backup.id = id;
  backup.workspace = workspace;
  backup.kind = "scheduled";
  backup.file = workspace + "/" + id + ".dump";
  backup.size_bytes = 123456789012;  // beyond 32 bits
  backup.sha256 = crypto::Sha256Hex(id);
  backup.duration_ms = 4321;
  backup.server_version = "16.4";
  backup.generation = 7;
  backup.applied_migration = "0003_orders";
  backup.key_id = "0123456789abcdef";
  backup.table_rows_json = R"({"public.orders":12,"public.customers":3})";
  backup.created_unix = created;
  return backup;
}

constexpr std::int64_t kCatalogT = 1'800'000'000;

TEST_CASE(
    "backup catalog (schema v8): put, find, list newest first per workspace; survives a restart") {
  auto store = EmptyCatalog();
  REQUIRE(Must(store->ListBackups(std::nullopt)).empty());
  const StoredBackup a1 = CatalogBackup("acme-1", "acme", kCatalogT);
  const StoredBackup a2 = CatalogBackup("acme-2", "acme", kCatalogT + 86400);
  const StoredBackup a3 = CatalogBackup("acme-3", "acme", kCatalogT + 86400);  // same second
  StoredBackup b1 = CatalogBackup("beta-1", "beta", kCatalogT + 10);
  b1.kind = "pre-migration";
  b1.key_id = "";
  for (const StoredBackup& backup : {a1, b1, a3, a2}) REQUIRE(store->PutBackup(backup).ok());

  CHECK(Must(store->FindBackup("acme-2")) == std::optional<StoredBackup>(a2));
  CHECK_FALSE(Must(store->FindBackup("nope")).has_value());

  const auto acme = Must(store->ListBackups(std::string("acme")));
  REQUIRE(acme.size() == 3);
  CHECK(acme[0].id == "acme-3");  // the same second as acme-2: the larger id is the newer
  CHECK(acme[1].id == "acme-2");
  CHECK(acme[2] == a1);
  const auto all = Must(store->ListBackups(std::nullopt));
  REQUIRE(all.size() == 4);
  CHECK(all[3] == b1);
  CHECK(Must(store->ListBackups(std::string("gamma"))).empty());

  auto restarted = OpenStore();
  CHECK(Must(restarted->ListBackups(std::nullopt)) == all);
}

TEST_CASE("backup catalog: put replaces, a verification is recorded, delete removes once") {
  auto store = EmptyCatalog();
  StoredBackup backup = CatalogBackup("acme-1", "acme", kCatalogT);
  REQUIRE(store->PutBackup(backup).ok());
  backup.size_bytes = 42;
  REQUIRE(store->PutBackup(backup).ok());
  CHECK(Must(store->FindBackup("acme-1"))->size_bytes == 42);
  CHECK(Must(store->ListBackups(std::nullopt)).size() == 1);

  CHECK(Must(store->UpdateBackupVerification("acme-1", "verifyFailed",
                                             "table public.orders: 11 rows, 12 at dump time",
                                             kCatalogT + 3600)));
  StoredBackup found = *Must(store->FindBackup("acme-1"));
  CHECK(found.state == "verifyFailed");
  CHECK(found.reason == "table public.orders: 11 rows, 12 at dump time");
  CHECK(found.verified_unix == std::optional<std::int64_t>(kCatalogT + 3600));
  CHECK(Must(store->UpdateBackupVerification("acme-1", "verified", "", kCatalogT + 7200)));
  found = *Must(store->FindBackup("acme-1"));
  CHECK(found.state == "verified");
  CHECK(found.reason.empty());
  CHECK(found.verified_unix == std::optional<std::int64_t>(kCatalogT + 7200));
  CHECK_FALSE(Must(store->UpdateBackupVerification("nope", "verified", "", kCatalogT)));

  const Outcome<bool> bad_state = store->UpdateBackupVerification("acme-1", "ok", "", kCatalogT);
  REQUIRE_FALSE(bad_state.ok());
  CHECK(bad_state.failure().reason == "InvalidValue");

  // A failed attempt has nothing to verify.
  StoredBackup failed = CatalogBackup("acme-2", "acme", kCatalogT + 1);
  failed.state = "failed";
  failed.sha256 = "";
  failed.reason = "pg_dump exited with status 1";
  REQUIRE(store->PutBackup(failed).ok());
  CHECK_FALSE(Must(store->UpdateBackupVerification("acme-2", "verified", "", kCatalogT)));
  CHECK(Must(store->FindBackup("acme-2"))->state == "failed");

  CHECK(Must(store->DeleteBackup("acme-1")));
  CHECK_FALSE(Must(store->DeleteBackup("acme-1")));
  CHECK_FALSE(Must(store->FindBackup("acme-1")).has_value());
}

TEST_CASE("backup catalog: entries outlive their workspace") {
  auto store = EmptyCatalog();
  REQUIRE(store->UpsertSpec("gone", "fleet", "r1", R"({"product":"erp"})").ok());
  StoredBackup final_backup = CatalogBackup("gone-final", "gone", kCatalogT);
  final_backup.kind = "final";
  REQUIRE(store->PutBackup(final_backup).ok());
  REQUIRE(Must(store->Remove("gone")));
  CHECK(Must(store->ListBackups(std::string("gone"))) == std::vector<StoredBackup>{final_backup});
}

TEST_CASE("backup catalog: a row no backup could have is refused, naming the backup and field") {
  auto store = EmptyCatalog();
  struct Row {
    const char* what;
    void (*spoil)(StoredBackup&);
    const char* message;
  };
  const Row rows[] = {
      {"id with a slash", [](StoredBackup& b) { b.id = "../etc"; },
       "backup \"../etc\": id must be 1-200 characters"},
      {"empty id", [](StoredBackup& b) { b.id = ""; }, "backup \"\": id must be"},
      {"id starting with a dot", [](StoredBackup& b) { b.id = ".hidden"; }, "id must be"},
      {"long id", [](StoredBackup& b) { b.id = std::string(201, 'a'); }, "id must be"},
      {"kind", [](StoredBackup& b) { b.kind = "weekly"; }, "kind must be scheduled, manual"},
      {"state", [](StoredBackup& b) { b.state = "done"; }, "state must be ok, verified"},
      {"digest", [](StoredBackup& b) { b.sha256 = std::string(64, 'G'); },
       "sha256 must be 64 lower-case hex digits"},
      {"no digest", [](StoredBackup& b) { b.sha256 = ""; }, "sha256 must be"},
      {"size", [](StoredBackup& b) { b.size_bytes = -1; }, "must not be negative"},
      {"workspace", [](StoredBackup& b) { b.workspace = ""; }, "workspace is empty"},
      {"file", [](StoredBackup& b) { b.file = ""; }, "file is empty"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.what);
    StoredBackup backup = CatalogBackup("acme-1", "acme", kCatalogT);
    row.spoil(backup);
    const Outcome<Done> put = store->PutBackup(backup);
    REQUIRE_FALSE(put.ok());
    CHECK(put.failure().reason == "InvalidValue");
    CHECK(put.failure().message.find(row.message) != std::string::npos);
  }
  CHECK(Must(store->ListBackups(std::nullopt)).empty());

  // The table holds the same line against a writer that skips the check.
  for (const char* sql : {
           "INSERT INTO tm_backups VALUES ('a/b', 'w', 'manual', 'f', 0, '', 0, '', 0, '', '', "
           "'{}', 'failed', '', now(), NULL)",
           "INSERT INTO tm_backups VALUES ('a', 'w', 'weekly', 'f', 0, '', 0, '', 0, '', '', "
           "'{}', 'failed', '', now(), NULL)",
           "INSERT INTO tm_backups VALUES ('a', 'w', 'manual', 'f', 0, '', 0, '', 0, '', '', "
           "'{}', 'ok', '', now(), NULL)",
       }) {
    CAPTURE(sql);
    // Throws (and fails the case) when the row goes in, or fails another way.
    CHECK_NOTHROW(Execute(StoreDsn(), std::string("DO $$ BEGIN ") + sql +
                                          "; RAISE EXCEPTION 'inserted'; EXCEPTION WHEN "
                                          "check_violation THEN NULL; END $$"));
  }
  CHECK(QueryValue(StoreDsn(), "SELECT count(*) FROM tm_backups") == "0");
}

}  // namespace
}  // namespace tmaster::controller

// Product revisions and rollouts (schema v10, docs/rollouts.md): the cases the FakeStore is held
// to as well (tests/support/rollout_store_cases.hpp), then what only the real one can show.
namespace tmaster::controller {
namespace {

std::unique_ptr<Store> NoRollouts() {
  auto store = OpenStore();
  Execute(StoreDsn(), "DELETE FROM tm_product_revisions; DELETE FROM tm_rollouts");
  return store;
}

TEST_CASE("rollouts store (schema v10): revisions numbered per product, a digest seen before") {
  auto store = NoRollouts();
  testing::CheckRevisionCases(*store);
  // They survive a restart.
  auto restarted = OpenStore();
  CHECK(Must(restarted->ListRevisions("erp")).size() == 2);
}

TEST_CASE("rollouts store: revisions pruned beyond the history, kept ones and the newest stay") {
  auto store = NoRollouts();
  testing::CheckRevisionPruneCases(*store);
}

TEST_CASE("rollouts store: a rollout is written only over the version it was read at") {
  auto store = NoRollouts();
  testing::CheckRolloutCases(*store);
  // Two stores (two leaders, one after the other) writing over the same read: one wins.
  auto other = OpenStore();
  const std::int64_t read = Must(store->GetRollout("erp"))->version;
  const auto mine = Must(store->PutRollout("erp", read, "{\"by\":\"a\"}", 1'800'000'100));
  const auto theirs = Must(other->PutRollout("erp", read, "{\"by\":\"b\"}", 1'800'000'101));
  CHECK(mine.has_value());
  CHECK_FALSE(theirs.has_value());
  CHECK(Must(other->GetRollout("erp"))->state_json == "{\"by\":\"a\"}");
  // The table refuses what no rollout could be (an empty product, version 0).
  CHECK_THROWS(Execute(StoreDsn(), "INSERT INTO tm_rollouts VALUES ('', 1, '{}', now())"));
  CHECK_THROWS(Execute(StoreDsn(), "INSERT INTO tm_rollouts VALUES ('x', 0, '{}', now())"));
  CHECK_THROWS(Execute(StoreDsn(), "INSERT INTO tm_product_revisions VALUES ('x', 1, 'AB', '{}', now())"));
}

TEST_CASE("rollouts store: concurrent new revisions of one product get distinct numbers") {
  auto store = NoRollouts();
  auto other = OpenStore();
  std::vector<int> numbers;
  for (int i = 0; i < 6; ++i) {
    Store& which = i % 2 == 0 ? *store : *other;
    numbers.push_back(Must(which.RecordRevision("race", crypto::Sha256Hex("r" + std::to_string(i)),
                                                "{}", 1'800'000'000 + i))
                          .number);
  }
  CHECK(numbers == std::vector<int>{1, 2, 3, 4, 5, 6});
}

// Placements (schema v12, docs/placement.md): the first writer's choice stays.
TEST_CASE("placements store (schema v12): recorded once, the first writer wins, removed on demand") {
  auto store = OpenStore();
  Execute(StoreDsn(), "DELETE FROM tm_placements WHERE workspace LIKE 'pl-%'");
  const StoredPlacement first = Must(store->RecordPlacement("pl-acme", "eu-1", 1'800'000'000));
  CHECK(first.cluster == "eu-1");
  CHECK(first.placed_unix == 1'800'000'000);
  // Another replica placing the same workspace elsewhere gets the recorded choice back.
  const StoredPlacement second = Must(store->RecordPlacement("pl-acme", "us-1", 1'800'000'100));
  CHECK(second == first);
  Must(store->RecordPlacement("pl-beta", "us-1", 1'800'000'200));
  std::vector<StoredPlacement> all = Must(store->ListPlacements());
  std::erase_if(all, [](const StoredPlacement& p) { return p.workspace.rfind("pl-", 0) != 0; });
  REQUIRE(all.size() == 2);
  CHECK(all[0].workspace == "pl-acme");
  CHECK(all[1].cluster == "us-1");
  CHECK(Must(store->RemovePlacement("pl-acme")));
  CHECK_FALSE(Must(store->RemovePlacement("pl-acme")));
  CHECK_FALSE(store->RecordPlacement("", "eu-1", 1).ok());
  CHECK_FALSE(store->RecordPlacement("pl-gamma", "", 1).ok());
  CHECK(Must(store->RecordPlacement("pl-acme", "us-1", 1'800'000'300)).cluster == "us-1");
}

}  // namespace
}  // namespace tmaster::controller
