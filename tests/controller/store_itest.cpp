// The store's PostgreSQL adapter against a real PostgreSQL (issue 3 item 1).

#include <doctest/doctest.h>

#include <memory>
#include <optional>
#include <string>

#include "common/crypto.hpp"
#include "common/secret.hpp"
#include "controller/store.hpp"
#include "controller/store_libpq.hpp"
#include "tests/support/pg_server.hpp"

namespace tmaster::controller {
namespace {

using testing::PgServer;
using testing::QueryValue;

std::string StoreDsn() { return PgServer::Shared().Dsn("tenant_master"); }

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
  CHECK(rows == "1");  // one migration so far
  CHECK(QueryValue(StoreDsn(), "SELECT count(DISTINCT version) FROM tm_schema_version") == rows);
  REQUIRE(store->Migrate().ok());
  auto other = MakeLibpqStore(Secret(StoreDsn()));
  REQUIRE(other->Migrate().ok());
  CHECK(QueryValue(StoreDsn(), count_sql) == rows);
  CHECK(QueryValue(StoreDsn(), "SELECT count(*) FROM tm_workspaces WHERE false") == "0");
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

  status.phase = "Ready";
  status.last_error.clear();
  status.next_retry_unix.reset();
  REQUIRE(store->PutStatus(status).ok());
  got = Must(store->GetStatus("status-acme"));
  REQUIRE(got.has_value());
  CHECK(got->phase == "Ready");
  CHECK(got->last_error.empty());
  CHECK_FALSE(got->next_retry_unix.has_value());
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
  WorkspaceStatus status{name, 1, "Ready", "[]", "", std::nullopt};
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

TEST_CASE("a server restart is survived: the next call reconnects") {
  auto store = OpenStore();
  Must(store->UpsertSpec("restart-acme", "dir", "r1", "{}"));
  PgServer::Shared().Restart();
  std::optional<StoredWorkspace> got = Must(store->Get("restart-acme"));
  REQUIRE(got.has_value());
  CHECK(got->revision == "r1");
}

}  // namespace
}  // namespace tmaster::controller
