// JSON bodies of the status API (docs/architecture.md#status-and-events): the workspace object
// shape, lists, events, sources, label selectors. Pure: strings in, parsed JSON checked field by
// field.
#include <doctest/doctest.h>

#include <boost/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "common/scrub.hpp"
#include "common/time.hpp"
#include "controller/api/status_json.hpp"
#include "controller/store/store.hpp"

namespace {

namespace json = boost::json;
using tmaster::FormatRfc3339Utc;
using tmaster::controller::ErrorJson;
using tmaster::controller::Event;
using tmaster::controller::EventListJson;
using tmaster::controller::LabelSelector;
using tmaster::controller::LastReconcileUnix;
using tmaster::controller::ParseLabelSelector;
using tmaster::controller::ParseRfc3339Seconds;
using tmaster::controller::SourceListJson;
using tmaster::controller::SourceStatus;
using tmaster::controller::StoredWorkspace;
using tmaster::controller::WorkspaceJson;
using tmaster::controller::WorkspaceListJson;
using tmaster::controller::WorkspaceStatus;

constexpr const char* kAcmeSpec =
    R"({"apiVersion":"tenantmaster.io/v1alpha1","kind":"Workspace",)"
    R"("metadata":{"name":"acme","labels":{"plan":"enterprise"}},)"
    R"("spec":{"product":"erp","mode":"dedicated","subdomain":"acme"}})";

StoredWorkspace Acme() {
  StoredWorkspace workspace;
  workspace.name = "acme";
  workspace.source = "upstream";
  workspace.revision = "9fceb02d";
  workspace.spec_json = kAcmeSpec;
  workspace.generation = 3;
  return workspace;
}

WorkspaceStatus AcmeStatus() {
  WorkspaceStatus status;
  status.name = "acme";
  status.observed_generation = 2;
  status.phase = "Degraded";
  status.conditions_json =
      R"([{"type":"Ready","status":"False","reason":"StackFailed",)"
      R"("message":"stack acme: deploy failed","lastTransitionTime":"2023-11-14T22:13:20Z"}])";
  status.last_error = "stack acme: deploy failed";
  status.next_retry_unix = 1700000030;
  status.revision = "0badc0de";
  status.product_revision = 3;
  status.last_runs_json =
      R"([{"start":"2023-11-14T22:13:20Z","durationSeconds":0.25,"result":"failure","reason":"StackFailed"}])";
  return status;
}

json::object Parse(const std::string& text) {
  boost::system::error_code ec;
  json::value value = json::parse(text, ec);
  REQUIRE_MESSAGE(!ec, text);
  REQUIRE(value.is_object());
  return value.as_object();
}

TEST_CASE("every served string passes through the process's scrubber, JSON escaping or not") {
  // A `"` and a `\` in the secret: the serialized text would carry it escaped, so only a scrub
  // of the strings themselves finds it.
  const std::string secret = "status-json-secret-\"q\\-0815";
  tmaster::RegisterProcessSecret(secret);
  const auto clean = [](const std::string& body) {
    CAPTURE(body);
    CHECK(body.find("status-json-secret") == std::string::npos);
    CHECK(body.find("<redacted>") != std::string::npos);
  };

  WorkspaceStatus status;
  status.name = "acme";
  status.phase = "Stalled";
  status.conditions_json = json::serialize(json::array{json::object{
      {"type", "Ready"}, {"status", "False"}, {"message", "near \"" + secret + "\""}}});
  status.last_error = "MigrationFailed: " + secret;
  clean(WorkspaceJson(Acme(), &status));
  clean(WorkspaceListJson({Acme()}, {status}, LabelSelector{}));

  Event event;
  event.workspace = "acme";
  event.message = "echo " + secret;
  clean(EventListJson({event}));

  SourceStatus source;
  source.name = "upstream";
  source.message = "fatal: " + secret;
  clean(SourceListJson({source}));

  clean(ErrorJson("Unavailable", "store unavailable: " + secret));
  CHECK(json::parse(ErrorJson("Unavailable", "store unavailable: " + secret)).at("message") ==
        "store unavailable: <redacted>");
  const std::string details = json::serialize(json::object{{"source", secret}});
  clean(ErrorJson("Conflict", "owned by a source", details));
}

}  // namespace

TEST_CASE("status JSON: RFC 3339 UTC timestamps") {
  CHECK(FormatRfc3339Utc(0) == "1970-01-01T00:00:00Z");
  CHECK(FormatRfc3339Utc(1700000000) == "2023-11-14T22:13:20Z");
  CHECK(FormatRfc3339Utc(951782400) == "2000-02-29T00:00:00Z");
}

TEST_CASE("status JSON: a workspace with status comes back in manifest shape, field by field") {
  const StoredWorkspace workspace = Acme();
  const WorkspaceStatus status = AcmeStatus();
  const json::object object = Parse(WorkspaceJson(workspace, &status));
  CHECK(object.at("apiVersion") == "tenantmaster.io/v1alpha1");
  CHECK(object.at("kind") == "Workspace");
  const json::object& metadata = object.at("metadata").as_object();
  CHECK(metadata.at("name") == "acme");
  CHECK(metadata.at("generation") == 3);
  CHECK(metadata.at("labels").at("plan") == "enterprise");
  CHECK(metadata.at("annotations").at("tenantmaster.io/source") == "upstream");
  CHECK(metadata.at("annotations").at("tenantmaster.io/revision") == "9fceb02d");
  CHECK_FALSE(metadata.contains("deletionTimestamp"));
  CHECK(object.at("spec").at("product") == "erp");
  CHECK(object.at("spec").at("subdomain") == "acme");

  const json::object& s = object.at("status").as_object();
  CHECK(s.at("phase") == "Degraded");
  CHECK(s.at("observedGeneration") == 2);
  REQUIRE(s.at("conditions").as_array().size() == 1);
  const json::object& ready = s.at("conditions").as_array()[0].as_object();
  CHECK(ready.at("type") == "Ready");
  CHECK(ready.at("status") == "False");
  CHECK(ready.at("reason") == "StackFailed");
  CHECK(ready.at("lastTransitionTime") == "2023-11-14T22:13:20Z");
  CHECK(s.at("revision") == "0badc0de");
  CHECK(s.at("productRevision") == 3);
  REQUIRE(s.at("lastRuns").as_array().size() == 1);
  CHECK(s.at("lastRuns").as_array()[0].at("durationSeconds") == 0.25);
  CHECK(s.at("nextRetry") == "2023-11-14T22:13:50Z");
  CHECK(s.at("lastError") == "stack acme: deploy failed");
}

TEST_CASE("status JSON: no status yet reads Pending with empty conditions, no retry, no error") {
  const json::object object = Parse(WorkspaceJson(Acme(), nullptr));
  const json::object& s = object.at("status").as_object();
  CHECK(s.at("phase") == "Pending");
  CHECK(s.at("observedGeneration") == 0);
  CHECK(s.at("productRevision") == 0);
  CHECK(s.at("conditions").as_array().empty());
  CHECK(s.at("lastRuns").as_array().empty());
  CHECK_FALSE(s.contains("nextRetry"));
  CHECK_FALSE(s.contains("lastError"));
  CHECK_FALSE(s.contains("cluster"));  // not converged: no identity, no cluster yet
  CHECK(object.at("metadata").at("generation") == 3);
}

TEST_CASE("status JSON: status.cluster is the cluster its identity records (a placed one's choice)") {
  StoredWorkspace placed = Acme();
  placed.identity = tmaster::controller::WorkspaceIdentity{"erp", "eu-2", "tenant_acme", "user_acme"};
  const json::object object = Parse(WorkspaceJson(placed, nullptr));
  CHECK(object.at("status").at("cluster") == "eu-2");
}

TEST_CASE("status JSON: a workspace being deleted has deletionTimestamp and phase Deleting") {
  StoredWorkspace workspace = Acme();
  workspace.deleting_since = "2023-11-15T08:00:00Z";
  SUBCASE("without status") {
    const json::object object = Parse(WorkspaceJson(workspace, nullptr));
    CHECK(object.at("metadata").at("deletionTimestamp") == "2023-11-15T08:00:00Z");
    CHECK(object.at("status").at("phase") == "Deleting");
  }
  SUBCASE("with a status written before the mark") {
    WorkspaceStatus status = AcmeStatus();
    status.phase = "Ready";
    const json::object object = Parse(WorkspaceJson(workspace, &status));
    CHECK(object.at("metadata").at("deletionTimestamp") == "2023-11-15T08:00:00Z");
    CHECK(object.at("status").at("phase") == "Deleting");
    CHECK(object.at("status").at("observedGeneration") == 2);
  }
}

TEST_CASE("status JSON: the stored name wins, and an empty revision adds no annotation") {
  StoredWorkspace workspace = Acme();
  workspace.name = "other";
  workspace.revision.clear();
  const json::object object = Parse(WorkspaceJson(workspace, nullptr));
  CHECK(object.at("metadata").at("name") == "other");
  CHECK_FALSE(
      object.at("metadata").at("annotations").as_object().contains("tenantmaster.io/revision"));
}

TEST_CASE("status JSON: stored JSON that does not parse degrades instead of failing") {
  StoredWorkspace workspace = Acme();
  workspace.spec_json = "{not json";
  WorkspaceStatus status = AcmeStatus();
  status.conditions_json = "";
  status.last_runs_json = "nope";
  const json::object object = Parse(WorkspaceJson(workspace, &status));
  CHECK(object.at("kind") == "Workspace");
  CHECK(object.at("metadata").at("name") == "acme");
  CHECK(object.at("status").at("conditions").as_array().empty());
  CHECK(object.at("status").at("lastRuns").as_array().empty());
}

TEST_CASE("status JSON: the list joins statuses by name in the workspaces' order") {
  StoredWorkspace a = Acme();
  StoredWorkspace b = Acme();
  b.name = "bravo";
  b.spec_json = R"({"apiVersion":"tenantmaster.io/v1alpha1","kind":"Workspace",)"
                R"("metadata":{"name":"bravo","labels":{"plan":"basic"}},"spec":{}})";
  WorkspaceStatus bravo_status;
  bravo_status.name = "bravo";
  bravo_status.phase = "Ready";
  bravo_status.conditions_json = "[]";
  WorkspaceStatus orphan;
  orphan.name = "zulu";
  orphan.phase = "Stalled";
  // Statuses out of order, one without a workspace.
  const std::vector<WorkspaceStatus> statuses{orphan, bravo_status};
  const json::object list = Parse(WorkspaceListJson({a, b}, statuses));
  const json::array& items = list.at("items").as_array();
  REQUIRE(items.size() == 2);
  CHECK(items[0].at("metadata").at("name") == "acme");
  CHECK(items[0].at("status").at("phase") == "Pending");
  CHECK(items[1].at("metadata").at("name") == "bravo");
  CHECK(items[1].at("status").at("phase") == "Ready");

  SUBCASE("a label selector keeps the matching ones") {
    auto selector = ParseLabelSelector("plan=basic");
    REQUIRE(selector.ok());
    const json::array basic =
        Parse(WorkspaceListJson({a, b}, statuses, *selector)).at("items").as_array();
    REQUIRE(basic.size() == 1);
    CHECK(basic[0].at("metadata").at("name") == "bravo");
    auto not_basic = ParseLabelSelector("plan!=basic");
    REQUIRE(not_basic.ok());
    const json::array others =
        Parse(WorkspaceListJson({a, b}, statuses, *not_basic)).at("items").as_array();
    REQUIRE(others.size() == 1);
    CHECK(others[0].at("metadata").at("name") == "acme");
    auto none = ParseLabelSelector("plan==basic, tier=gold");
    REQUIRE(none.ok());
    CHECK(Parse(WorkspaceListJson({a, b}, statuses, *none)).at("items").as_array().empty());
  }
  CHECK(Parse(WorkspaceListJson({}, {})).at("items").as_array().empty());
}

TEST_CASE("status JSON: label selectors parse k=v, k==v, k!=v and reject the rest") {
  auto parsed = ParseLabelSelector(" plan = enterprise ,tier==gold,env!=dev");
  REQUIRE(parsed.ok());
  const LabelSelector& selector = *parsed;
  REQUIRE(selector.size() == 3);
  CHECK(selector[0].key == "plan");
  CHECK(selector[0].value == "enterprise");
  CHECK(selector[0].equal);
  CHECK(selector[1].key == "tier");
  CHECK(selector[1].value == "gold");
  CHECK(selector[1].equal);
  CHECK(selector[2].key == "env");
  CHECK(selector[2].value == "dev");
  CHECK_FALSE(selector[2].equal);
  REQUIRE(ParseLabelSelector("").ok());
  CHECK(ParseLabelSelector("")->empty());
  for (const char* bad : {"plan", "=x", "plan in (a,b)", "a=b,"}) {
    CAPTURE(bad);
    const auto rejected = ParseLabelSelector(bad);
    REQUIRE_FALSE(rejected.ok());
    CHECK(rejected.failure().reason == "BadLabelSelector");
  }
}

TEST_CASE("status JSON: events keep their order and carry RFC 3339 times") {
  Event newer{7, "acme", "Warning", "StackFailed", "stack acme: \"deploy\" failed", 1700000060};
  Event older{3, "acme", "Normal", "DatabaseCreated", "database acme created", 1700000000};
  const json::array items = Parse(EventListJson({newer, older})).at("items").as_array();
  REQUIRE(items.size() == 2);
  const json::object& first = items[0].as_object();
  CHECK(first.at("id") == 7);
  CHECK(first.at("workspace") == "acme");
  CHECK(first.at("type") == "Warning");
  CHECK(first.at("reason") == "StackFailed");
  CHECK(first.at("message") == "stack acme: \"deploy\" failed");
  CHECK(first.at("time") == "2023-11-14T22:14:20Z");
  CHECK(items[1].at("id") == 3);
}

TEST_CASE("status JSON: sources, with times absent while never set") {
  SourceStatus git{"upstream", "git",         "9fceb02d",
                   false,      "FetchFailed", "git fetch upstream: timed out",
                   1700000000, 1700000060};
  SourceStatus dir{"local", "directory", "", true, "Synced", "", 0, 0};
  const json::array items = Parse(SourceListJson({git, dir})).at("items").as_array();
  REQUIRE(items.size() == 2);
  const json::object& first = items[0].as_object();
  CHECK(first.at("name") == "upstream");
  CHECK(first.at("kind") == "git");
  CHECK(first.at("revision") == "9fceb02d");
  CHECK(first.at("ready") == false);
  CHECK(first.at("reason") == "FetchFailed");
  CHECK(first.at("message") == "git fetch upstream: timed out");
  CHECK(first.at("lastSyncTime") == "2023-11-14T22:13:20Z");
  CHECK(first.at("lastAttemptTime") == "2023-11-14T22:14:20Z");
  const json::object& second = items[1].as_object();
  CHECK(second.at("ready") == true);
  CHECK_FALSE(second.contains("lastSyncTime"));
  CHECK_FALSE(second.contains("lastAttemptTime"));
}

TEST_CASE("status JSON: errors are {error, message, details?} and escape their text") {
  using tmaster::controller::ErrorCode;
  using tmaster::controller::ErrorJson;
  CHECK(ErrorJson("NotFound", "workspace \"x\" not found") ==
        R"({"error":"NotFound","message":"workspace \"x\" not found"})");
  const json::object conflict =
      Parse(ErrorJson("Conflict", "owned by git", R"({"source":"upstream","kind":"git"})"));
  CHECK(conflict.at("details").at("source") == "upstream");
  CHECK(conflict.at("details").at("kind") == "git");
  // Details that are not JSON are left out rather than served broken.
  CHECK_FALSE(Parse(ErrorJson("Conflict", "x", "{not json")).contains("details"));
  // docs/api.md#errors
  CHECK(std::string(ErrorCode(400)) == "BadRequest");
  CHECK(std::string(ErrorCode(401)) == "Unauthorized");
  CHECK(std::string(ErrorCode(403)) == "Forbidden");
  CHECK(std::string(ErrorCode(404)) == "NotFound");
  CHECK(std::string(ErrorCode(405)) == "MethodNotAllowed");
  CHECK(std::string(ErrorCode(409)) == "Conflict");
  CHECK(std::string(ErrorCode(413)) == "PayloadTooLarge");
  CHECK(std::string(ErrorCode(415)) == "UnsupportedMediaType");
  CHECK(std::string(ErrorCode(422)) == "Invalid");
  CHECK(std::string(ErrorCode(429)) == "TooManyRequests");
  CHECK(std::string(ErrorCode(503)) == "Unavailable");

  const json::object answer =
      Parse(tmaster::controller::WebhookAnswerJson("accepted", "push to main"));
  CHECK(answer.at("verdict") == "accepted");
  CHECK(answer.at("message") == "push to main");
  CHECK_FALSE(answer.contains("error"));
  const json::object refused =
      Parse(tmaster::controller::WebhookAnswerJson("bad_signature", "signature mismatch", 401));
  CHECK(refused.at("error") == "Unauthorized");
  CHECK(refused.at("verdict") == "bad_signature");
}

TEST_CASE("status JSON: lastReconcileTime is when the newest run ended, absent when none ran") {
  WorkspaceStatus status = AcmeStatus();
  // Newest first as stored, but the largest end wins whatever the order; a start that does not
  // parse is skipped.
  status.last_runs_json =
      R"([{"start":"2026-12-03T10:00:00Z","durationSeconds":2.75,"result":"Succeeded","reason":""},)"
      R"({"start":"2026-12-03T09:59:00Z","durationSeconds":125,"result":"Failed","reason":"X"},)"
      R"({"start":"yesterday","durationSeconds":1,"result":"Failed","reason":"X"}])";
  const json::object object = Parse(WorkspaceJson(Acme(), &status));
  CHECK(object.at("status").at("lastReconcileTime") == "2026-12-03T10:01:05Z");
  CHECK(object.at("status").at("lastRuns").as_array().size() == 3);
  CHECK(LastReconcileUnix(status.last_runs_json) == ParseRfc3339Seconds("2026-12-03T10:01:05Z"));

  status.last_runs_json = "[]";
  CHECK_FALSE(
      Parse(WorkspaceJson(Acme(), &status)).at("status").as_object().contains("lastReconcileTime"));
  CHECK_FALSE(
      Parse(WorkspaceJson(Acme(), nullptr)).at("status").as_object().contains("lastReconcileTime"));
  CHECK_FALSE(LastReconcileUnix("not json"));
}

TEST_CASE("status JSON: RFC 3339 times parse to Unix seconds, offsets and fractions included") {
  CHECK(ParseRfc3339Seconds("1970-01-01T00:00:00Z") == 0);
  CHECK(ParseRfc3339Seconds("2023-11-14T22:13:20Z") == 1700000000);
  CHECK(ParseRfc3339Seconds("2000-02-29T00:00:00Z") == 951782400);
  CHECK(ParseRfc3339Seconds("2023-11-14T23:13:20.5+01:00") == 1700000000);
  CHECK(ParseRfc3339Seconds("2023-11-14T21:13:20-01:00") == 1700000000);
  CHECK_FALSE(ParseRfc3339Seconds(""));
  CHECK_FALSE(ParseRfc3339Seconds("2023-11-14"));
  CHECK_FALSE(ParseRfc3339Seconds("2023-11-14T22:13:20"));
  CHECK_FALSE(ParseRfc3339Seconds("2023-13-14T22:13:20Z"));
  CHECK_FALSE(ParseRfc3339Seconds("2023-11-14T22:13:20.Z"));
}

TEST_CASE("status JSON: creationTimestamp when the store knows when the workspace was stored") {
  StoredWorkspace workspace = Acme();
  CHECK_FALSE(Parse(WorkspaceJson(workspace, nullptr)).at("metadata").as_object().contains(
      "creationTimestamp"));
  workspace.created_at = "2023-11-10T09:30:00Z";
  const json::object object = Parse(WorkspaceJson(workspace, nullptr));
  CHECK(object.at("metadata").at("creationTimestamp") == "2023-11-10T09:30:00Z");
}
