// The backup routes of the workspace API (controller/daemon/backup_api.cpp, docs/api.md#backups)
// against the tests' FakeStore and a fake BackupService: each status code and JSON shape, the
// strict restore body, the standby's and the missing service's 503, and no secret in an answer.
#include <doctest/doctest.h>

#include <boost/json.hpp>
#include <mutex>
#include <string>

#include "controller/daemon/workspace_api.hpp"
#include "tests/support/fake_store.hpp"

namespace {

using namespace tmaster;
namespace json = boost::json;

constexpr std::int64_t kNow = 1796299200;  // 2026-12-03T12:00:00Z

// Answers what the test sets; records what it was asked.
class FakeBackups final : public backups::BackupService {
 public:
  Outcome<backups::QueuedBackup> RequestBackup(const std::string& workspace,
                                               const std::string& who) override {
    const std::lock_guard lock(mutex_);
    asked_who = who;
    if (fail) return *fail;
    return backups::QueuedBackup{workspace + "-20261203T120000Z-k3x9", workspace, "manual",
                                 "queued", kNow};
  }
  std::vector<backups::QueuedBackup> Pending(const std::string& workspace) const override {
    const std::lock_guard lock(mutex_);
    std::vector<backups::QueuedBackup> out;
    for (const auto& q : pending) {
      if (q.workspace == workspace) out.push_back(q);
    }
    return out;
  }
  Outcome<backups::RestoreProgress> RequestRestore(const backups::RestoreCall& call) override {
    const std::lock_guard lock(mutex_);
    restore_calls.push_back(call);
    if (fail) return *fail;
    backups::RestoreProgress p;
    p.id = "r-acme-20261203T120000Z-ab12";
    p.workspace = call.into.empty() ? call.from : call.into;
    p.from = call.from;
    p.backup_id = call.backup_id;
    p.state = "running";
    p.step = "checksum";
    p.message = "checking the file's SHA-256";
    p.started_unix = kNow;
    return p;
  }
  std::optional<backups::RestoreProgress> FindRestore(const std::string& id) const override {
    const std::lock_guard lock(mutex_);
    if (id != "r-acme-20261203T120000Z-ab12") return std::nullopt;
    backups::RestoreProgress p;
    p.id = id;
    p.workspace = "acme";
    p.from = "acme";
    p.backup_id = "acme-1";
    p.state = "succeeded";
    p.step = "done";
    p.message = "restored";
    p.safety_backup = "acme-safety-1";
    p.started_unix = kNow;
    p.finished_unix = kNow + 42;
    return p;
  }

  std::optional<Failure> fail;
  std::vector<backups::QueuedBackup> pending;
  std::vector<backups::RestoreCall> restore_calls;
  std::string asked_who;

 private:
  mutable std::mutex mutex_;
};

controller::StoredBackup Row(const std::string& id, std::int64_t created) {
  controller::StoredBackup row;
  row.id = id;
  row.workspace = "acme";
  row.kind = "scheduled";
  row.file = "acme/" + id + ".dump";
  row.size_bytes = 12345678;
  row.sha256 = std::string(64, 'a');
  row.duration_ms = 1250;
  row.server_version = "15.8";
  row.generation = 3;
  row.applied_migration = "0002_orders";
  row.table_rows_json = R"({"public.orders":12,"public.items":3})";
  row.created_unix = created;
  return row;
}

struct Harness {
  testing::FakeStore store;
  controller::DesiredState desired;
  FakeBackups service;
  bool leading = true;
  bool with_service = true;
  std::unique_ptr<controller::WorkspaceApi> api;

  controller::WorkspaceApi& Api() {
    controller::WorkspaceApiDeps deps;
    deps.store = &store;
    deps.desired = &desired;
    deps.leading = [this] { return leading; };
    deps.now_unix = [] { return kNow; };
    deps.backups = with_service ? &service : nullptr;
    api = std::make_unique<controller::WorkspaceApi>(std::move(deps));
    return *api;
  }
  void AddWorkspace(const std::string& name) {
    REQUIRE(store.UpsertSpec(name, "api", "", "{}"));
  }
};

std::string Text(const json::value& value) {
  return value.is_string() ? std::string(value.get_string()) : json::serialize(value);
}

json::object Object(const std::string& text) { return json::parse(text).as_object(); }

std::string Reason(const controller::ApiAnswer& answer) {
  const json::object body = Object(answer.body);
  const json::value* details = body.if_contains("details");
  return details != nullptr ? std::string(details->at("reason").as_string()) : "";
}

}  // namespace

TEST_CASE("backup API: POST backups queues a manual backup: 202 with its id, kind and state") {
  Harness h;
  h.AddWorkspace("acme");
  const controller::ApiAnswer answer = h.Api().Backup("acme", "token:k3j5 (ci)");
  REQUIRE(answer.status == 202);
  const json::object body = Object(answer.body);
  CHECK(body.at("backup") == "acme-20261203T120000Z-k3x9");
  CHECK(body.at("workspace") == "acme");
  CHECK(body.at("kind") == "manual");
  CHECK(body.at("state") == "queued");
  CHECK(body.at("queuedAt") == "2026-12-03T12:00:00Z");
  CHECK(body.size() == 5);
  CHECK(h.service.asked_who == "token:k3j5 (ci)");
}

TEST_CASE("backup API: each service reason maps to its status, the reason in details") {
  const struct {
    std::string_view reason;
    int status;
  } cases[] = {{backups::kNotFound, 404},      {backups::kNotConverged, 409},
               {backups::kRestoreInProgress, 409}, {backups::kNotRestorable, 422},
               {backups::kUnavailable, 503},   {"SomethingElse", 503}};
  for (const auto& c : cases) {
    CAPTURE(c.reason);
    Harness h;
    h.service.fail = Failure::Stalled(std::string(c.reason), "why: " + std::string(c.reason));
    const controller::ApiAnswer backup = h.Api().Backup("acme", "env:admin");
    CHECK(backup.status == c.status);
    CHECK(Reason(backup) == c.reason);
    CHECK(Text(Object(backup.body).at("message")) == "why: " + std::string(c.reason));
    const controller::ApiAnswer restore =
        h.Api().Restore("acme", R"({"backup":"acme-1"})", "application/json", "env:admin");
    CHECK(restore.status == c.status);
    CHECK(Reason(restore) == c.reason);
  }
}

TEST_CASE("backup API: a standby and an operator without a backup runner answer writes 503") {
  Harness h;
  h.leading = false;
  controller::ApiAnswer answer = h.Api().Backup("acme", "env:admin");
  CHECK(answer.status == 503);
  CHECK(answer.message.find("standby") != std::string::npos);
  answer = h.Api().Restore("acme", R"({"backup":"acme-1"})", "application/json", "env:admin");
  CHECK(answer.status == 503);
  CHECK(h.service.restore_calls.empty());

  Harness none;
  none.with_service = false;
  answer = none.Api().Backup("acme", "env:admin");
  CHECK(answer.status == 503);
  CHECK(answer.message == "backups are not running here (this operator has no backup runner)");
  answer = none.Api().Restore("acme", R"({"backup":"acme-1"})", "", "env:admin");
  CHECK(answer.status == 503);
  CHECK(answer.message.find("not running here") != std::string::npos);
}

TEST_CASE("backup API: GET backups lists the catalog newest first, rows in the contract's shape") {
  Harness h;
  h.AddWorkspace("acme");
  controller::StoredBackup old = Row("acme-20261201T030000Z-aaaa", kNow - 2 * 86400);
  old.state = "verified";
  old.verified_unix = kNow - 86400;
  controller::StoredBackup failed = Row("acme-20261203T030000Z-cccc", kNow - 9 * 3600);
  failed.state = "failed";
  failed.sha256.clear();
  failed.size_bytes = 0;
  failed.reason = "pg_dump: connection refused";
  controller::StoredBackup encrypted = Row("acme-20261202T030000Z-bbbb", kNow - 86400);
  encrypted.key_id = "0123456789abcdef";
  encrypted.file = "acme/acme-20261202T030000Z-bbbb.dump.enc";
  for (const auto& row : {old, failed, encrypted}) REQUIRE(h.store.PutBackup(row));
  h.service.pending.push_back({"acme-20261203T120000Z-dddd", "acme", "manual", "running", kNow});
  h.service.pending.push_back({"other-x", "other", "manual", "queued", kNow});

  const controller::ApiAnswer answer = h.Api().ListBackups("acme");
  REQUIRE(answer.status == 200);
  const json::object body = Object(answer.body);
  const json::array& items = body.at("items").as_array();
  REQUIRE(items.size() == 3);
  CHECK(items[0].at("id") == "acme-20261203T030000Z-cccc");
  CHECK(items[1].at("id") == "acme-20261202T030000Z-bbbb");
  CHECK(items[2].at("id") == "acme-20261201T030000Z-aaaa");

  const json::object& verified = items[2].as_object();
  CHECK(verified.at("workspace") == "acme");
  CHECK(verified.at("kind") == "scheduled");
  CHECK(verified.at("state") == "verified");
  CHECK(verified.at("file") == "acme/acme-20261201T030000Z-aaaa.dump");
  CHECK(verified.at("sizeBytes") == 12345678);
  CHECK(Text(verified.at("sha256")) == std::string(64, 'a'));
  CHECK(verified.at("durationSeconds").as_double() == doctest::Approx(1.25));
  CHECK(verified.at("serverVersion") == "15.8");
  CHECK(verified.at("generation") == 3);
  CHECK(verified.at("appliedMigration") == "0002_orders");
  CHECK(verified.at("encrypted") == false);
  CHECK_FALSE(verified.contains("keyId"));
  CHECK_FALSE(verified.contains("reason"));
  CHECK(verified.at("tableRows").at("public.orders") == 12);
  CHECK(verified.at("createdAt") == "2026-12-01T12:00:00Z");
  CHECK(verified.at("verifiedAt") == "2026-12-02T12:00:00Z");

  CHECK(items[1].at("keyId") == "0123456789abcdef");
  CHECK(items[1].at("encrypted") == true);
  CHECK(items[1].at("verifiedAt").is_null());
  CHECK(items[0].at("state") == "failed");
  CHECK(items[0].at("reason") == "pg_dump: connection refused");

  const json::array& pending = body.at("pending").as_array();
  REQUIRE(pending.size() == 1);
  CHECK(pending[0].at("id") == "acme-20261203T120000Z-dddd");
  CHECK(pending[0].at("state") == "running");
  CHECK(pending[0].at("kind") == "manual");
  CHECK(pending[0].at("queuedAt") == "2026-12-03T12:00:00Z");
}

TEST_CASE("backup API: GET backups: 404 only for an unknown workspace without backups") {
  Harness h;
  controller::ApiAnswer answer = h.Api().ListBackups("ghost");
  CHECK(answer.status == 404);
  CHECK(answer.message == "workspace \"ghost\" not found");

  // A known workspace without any: an empty list, and so on a standby or without a runner.
  h.AddWorkspace("acme");
  h.leading = false;
  h.with_service = false;
  answer = h.Api().ListBackups("acme");
  REQUIRE(answer.status == 200);
  CHECK(Object(answer.body).at("items").as_array().empty());
  CHECK(Object(answer.body).at("pending").as_array().empty());

  // A deleted workspace's final backup is still listed.
  controller::StoredBackup final_backup = Row("gone-20261203T030000Z-ffff", kNow);
  final_backup.workspace = "gone";
  final_backup.kind = "final";
  REQUIRE(h.store.PutBackup(final_backup));
  answer = h.Api().ListBackups("gone");
  REQUIRE(answer.status == 200);
  CHECK(Object(answer.body).at("items").as_array().at(0).at("kind") == "final");

  // The store cannot be read: 503, not an empty list.
  h.store.FailNext();
  answer = h.Api().ListBackups("acme");
  CHECK(answer.status == 503);
}

TEST_CASE("backup API: POST restore: 202 with the progress; the call carries from, into, who") {
  Harness h;
  controller::ApiAnswer answer =
      h.Api().Restore("acme", R"({"backup":"acme-20261203T030000Z-k3x9","into":"acme-copy"})",
                      "application/json; charset=utf-8", "token:k3j5 (ci)");
  REQUIRE(answer.status == 202);
  REQUIRE(h.service.restore_calls.size() == 1);
  const backups::RestoreCall& call = h.service.restore_calls.front();
  CHECK(call.from == "acme");
  CHECK(call.into == "acme-copy");
  CHECK(call.backup_id == "acme-20261203T030000Z-k3x9");
  CHECK(call.who == "token:k3j5 (ci)");
  const json::object body = Object(answer.body);
  CHECK(body.at("restore") == "r-acme-20261203T120000Z-ab12");
  CHECK(body.at("workspace") == "acme-copy");
  CHECK(body.at("from") == "acme");
  CHECK(body.at("backup") == "acme-20261203T030000Z-k3x9");
  CHECK(body.at("state") == "running");
  CHECK(body.at("step") == "checksum");
  CHECK(body.at("message") == "checking the file's SHA-256");
  CHECK(body.at("safetyBackup") == "");
  CHECK(body.at("startedAt") == "2026-12-03T12:00:00Z");
  CHECK(body.at("finishedAt").is_null());
  CHECK(body.size() == 10);

  // Without `into`: into stays empty (the service restores into `from`).
  answer = h.Api().Restore("acme", R"({"backup":"acme-1"})", "", "env:admin");
  CHECK(answer.status == 202);
  CHECK(h.service.restore_calls.back().into.empty());
}

TEST_CASE("backup API: a restore body that is not {backup, into?} is 400 naming the field") {
  const struct {
    std::string body;
    std::string says;
  } cases[] = {
      {"", "the body is not JSON"},
      {"not json", "the body is not JSON"},
      {R"(["acme-1"])", "must be a JSON object"},
      {R"({})", "backup: required"},
      {R"({"into":"other"})", "backup: required"},
      {R"({"backup":"acme-1","force":true})", "unknown field \"force\""},
      {R"({"backup":12})", "backup: must be a string"},
      {R"({"backup":"../etc/passwd"})", "backup: \"../etc/passwd\" is not a backup id"},
      {R"({"backup":""})", "backup: \"\" is not a backup id"},
      {R"({"backup":"acme-1","into":"Not_A_Name"})", "into: \"Not_A_Name\" is not a workspace"},
      {R"({"backup":"acme-1","into":""})", "into: \"\" is not a workspace name"},
      {R"({"backup":"acme-1","into":null})", "into: must be a string"},
      // A key twice: which one a parser keeps is not the client's to guess.
      {R"({"backup":"acme-1", "backup" : "acme-2"})", "duplicate field \"backup\""},
      {R"({"into":"a","backup":"acme-1","into":"b"})", "duplicate field \"into\""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.body);
    Harness h;
    const controller::ApiAnswer answer =
        h.Api().Restore("acme", c.body, "application/json", "env:admin");
    CHECK(answer.status == 400);
    CHECK(answer.error == "BadRequest");
    CHECK(answer.message.find(c.says) != std::string::npos);
    CHECK(h.service.restore_calls.empty());
  }
  Harness h;
  controller::ApiAnswer answer =
      h.Api().Restore("Bad_Name", R"({"backup":"acme-1"})", "application/json", "env:admin");
  CHECK(answer.status == 400);
  CHECK(answer.message.find("\"Bad_Name\" is not a workspace name") != std::string::npos);
  answer = h.Api().Restore("acme", "backup: acme-1\n", "application/yaml", "env:admin");
  CHECK(answer.status == 415);
  CHECK(h.service.restore_calls.empty());
}

TEST_CASE("backup API: GET restores/{id}: 200 the progress, 404 when unknown here") {
  Harness h;
  controller::ApiAnswer answer = h.Api().GetRestore("r-acme-20261203T120000Z-ab12");
  REQUIRE(answer.status == 200);
  const json::object body = Object(answer.body);
  CHECK(body.at("state") == "succeeded");
  CHECK(body.at("step") == "done");
  CHECK(body.at("safetyBackup") == "acme-safety-1");
  CHECK(body.at("finishedAt") == "2026-12-03T12:00:42Z");

  answer = h.Api().GetRestore("r-unknown");
  CHECK(answer.status == 404);
  CHECK(answer.message.find("restore \"r-unknown\" is not known here") != std::string::npos);

  h.with_service = false;
  CHECK(h.Api().GetRestore("r-acme-20261203T120000Z-ab12").status == 404);
}

TEST_CASE("backup API: ServeWorkspaceCall routes the four operations") {
  Harness h;
  h.AddWorkspace("acme");
  controller::WorkspaceApi& api = h.Api();
  controller::WorkspaceCall call;
  call.name = "acme";
  call.who = "env:admin";
  call.op = controller::WorkspaceCall::Op::kBackup;
  CHECK(controller::ServeWorkspaceCall(api, call).status == 202);
  call.op = controller::WorkspaceCall::Op::kListBackups;
  CHECK(controller::ServeWorkspaceCall(api, call).status == 200);
  call.op = controller::WorkspaceCall::Op::kRestore;
  call.body = R"({"backup":"acme-1"})";
  call.content_type = "application/json";
  CHECK(controller::ServeWorkspaceCall(api, call).status == 202);
  call.op = controller::WorkspaceCall::Op::kGetRestore;
  call.name = "r-acme-20261203T120000Z-ab12";
  CHECK(controller::ServeWorkspaceCall(api, call).status == 200);
}
