// How tenantctl prints (controller/cli/format.hpp): kubectl's tables and AGE, wide, name, and
// JSON and YAML that parse back to the same value. Fixed JSON objects in, text out.
#include <doctest/doctest.h>

#include <yaml-cpp/yaml.h>

#include <boost/json.hpp>

#include <string>

#include "controller/cli/format.hpp"

namespace {

namespace json = boost::json;
using tmaster::cli::AlignColumns;
using tmaster::cli::DescribeMove;
using tmaster::cli::DescribeWorkspace;
using tmaster::cli::FormatAge;
using tmaster::cli::FormatDowntime;
using tmaster::cli::FormatItems;
using tmaster::cli::FormatObject;
using tmaster::cli::ParseRfc3339;
using tmaster::cli::Resource;
using tmaster::cli::SummarizePlan;
using tmaster::cli::WorkspaceSince;

// 2026-12-03T12:00:00Z
constexpr std::int64_t kNow = 1796299200;

// Two workspaces as the API serves them: acme Ready for 3 days (its status' earliest time),
// beta created 90 s ago (metadata.creationTimestamp wins) and failing, with a two-line message.
// acme converged on product revision 3; beta on none yet (0).
constexpr const char* kItems = R"([
 {"apiVersion":"tenantmaster.io/v1alpha1","kind":"Workspace",
  "metadata":{"name":"acme","generation":3,"labels":{"plan":"enterprise"},
              "annotations":{"tenantmaster.io/source":"fleet"}},
  "spec":{"product":"erp","mode":"dedicated","subdomain":"8000","suspend":false},
  "status":{"phase":"Ready","observedGeneration":3,"productRevision":3,
            "conditions":[{"type":"Ready","status":"True","reason":"Converged",
                           "message":"up to date","lastTransitionTime":"2026-11-30T12:00:00Z"}],
            "lastRuns":[{"start":"2026-12-03T11:00:00Z","durationSeconds":1.25,
                         "result":"Succeeded","reason":"Converged"}]}},
 {"apiVersion":"tenantmaster.io/v1alpha1","kind":"Workspace",
  "metadata":{"name":"beta-long-name","creationTimestamp":"2026-12-03T11:58:30Z"},
  "spec":{"product":"shop","mode":"shared"},
  "status":{"phase":"Degraded","lastError":"x","productRevision":0,
            "conditions":[{"type":"Ready","status":"False","reason":"DatabaseUnreachable",
                           "message":"cluster main:\nconnection refused",
                           "lastTransitionTime":"2026-12-03T11:59:00Z"}],
            "lastRuns":[]}}
])";

std::string Format(Resource resource, const std::string& items, const std::string& output) {
  auto text = FormatItems(resource, items, output, kNow);
  REQUIRE_MESSAGE(text.ok(), (text.ok() ? "" : text.failure().message));
  return *text;
}

}  // namespace

TEST_CASE("cli format: AGE as kubectl prints it") {
  CHECK(FormatAge(-5) == "<invalid>");
  CHECK(FormatAge(-1) == "0s");
  CHECK(FormatAge(0) == "0s");
  CHECK(FormatAge(5) == "5s");
  CHECK(FormatAge(119) == "119s");
  CHECK(FormatAge(120) == "2m");
  CHECK(FormatAge(200) == "3m20s");
  CHECK(FormatAge(600) == "10m");
  CHECK(FormatAge(3 * 3600 - 1) == "179m");
  CHECK(FormatAge(3 * 3600) == "3h");
  CHECK(FormatAge(2 * 3600 + 30 * 60 + 600 * 18) == "5h30m");
  CHECK(FormatAge(8 * 3600) == "8h");
  CHECK(FormatAge(47 * 3600) == "47h");
  CHECK(FormatAge(4 * 86400) == "4d");
  CHECK(FormatAge(4 * 86400 + 5 * 3600) == "4d5h");
  CHECK(FormatAge(30 * 86400) == "30d");
  CHECK(FormatAge(3 * 365 * 86400) == "3y");
  CHECK(FormatAge(3 * 365 * 86400 + 10 * 86400) == "3y10d");
  CHECK(FormatAge(9 * 365 * 86400) == "9y");
}

TEST_CASE("cli format: RFC 3339 times") {
  CHECK(ParseRfc3339("1970-01-01T00:00:00Z") == 0);
  CHECK(ParseRfc3339("2026-12-03T12:00:00Z") == kNow);
  CHECK(ParseRfc3339("2026-12-03T12:00:00.123456Z") == kNow);
  CHECK(ParseRfc3339("2026-12-03T13:30:00+01:30") == kNow);
  CHECK(ParseRfc3339("2024-02-29T00:00:00Z") == 1709164800);
  CHECK_FALSE(ParseRfc3339("2026-12-03 12:00"));
  CHECK_FALSE(ParseRfc3339("2026-13-03T12:00:00Z"));
  CHECK_FALSE(ParseRfc3339("2026-12-03T12:00:00"));
  CHECK_FALSE(ParseRfc3339(""));
}

TEST_CASE("cli format: a workspace's age from creationTimestamp, else its status' earliest time") {
  CHECK(WorkspaceSince(R"({"metadata":{"creationTimestamp":"2026-12-03T11:58:30Z"},
      "status":{"conditions":[{"lastTransitionTime":"2026-01-01T00:00:00Z"}]}})") ==
        kNow - 90);
  CHECK(WorkspaceSince(R"({"status":{
      "conditions":[{"lastTransitionTime":"2026-12-02T12:00:00Z"}],
      "lastRuns":[{"start":"2026-12-03T11:00:00Z"},{"start":"2026-12-01T12:00:00Z"}]}})") ==
        kNow - 2 * 86400);
  CHECK_FALSE(WorkspaceSince(R"({"status":{"phase":"Pending","conditions":[],"lastRuns":[]}})"));
}

TEST_CASE("cli format: the workspace table, wide and name") {
  CHECK(Format(Resource::kWorkspace, kItems, "table") ==
        "NAME             PRODUCT   REV      MODE        PHASE      READY   AGE\n"
        "acme             erp       3        dedicated   Ready      True    3d\n"
        "beta-long-name   shop      <none>   shared      Degraded   False   90s\n");
  CHECK(Format(Resource::kWorkspace, kItems, "wide") ==
        "NAME             PRODUCT   REV      MODE        PHASE      READY   AGE   MESSAGE\n"
        "acme             erp       3        dedicated   Ready      True    3d    up to date\n"
        "beta-long-name   shop      <none>   shared      Degraded   False   90s   cluster main: "
        "connection refused\n");
  CHECK(Format(Resource::kWorkspace, kItems, "name") ==
        "workspace/acme\nworkspace/beta-long-name\n");
  // Never reconciled: no conditions, no time.
  CHECK(Format(Resource::kWorkspace, R"([{"metadata":{"name":"new"},"spec":{}}])", "table") ==
        "NAME   PRODUCT   REV      MODE     PHASE     READY     AGE\n"
        "new    <none>    <none>   <none>   Pending   Unknown   <unknown>\n");
}

TEST_CASE("cli format: -o json and -o yaml parse back to the items, strings staying strings") {
  const json::value expected = json::parse(kItems);
  const std::string as_json = Format(Resource::kWorkspace, kItems, "json");
  CHECK(json::parse(as_json) == json::object{{"items", expected}});
  CHECK(as_json.find("\n    \"items\": [\n        {\n") != std::string::npos);  // indented
  CHECK(as_json.find("\"durationSeconds\": 1.25,") != std::string::npos);  // not 1.25E0

  const std::string as_yaml = Format(Resource::kWorkspace, kItems, "yaml");
  const YAML::Node yaml = YAML::Load(as_yaml);
  REQUIRE(yaml["items"].IsSequence());
  REQUIRE(yaml["items"].size() == 2);
  const YAML::Node acme = yaml["items"][0];
  CHECK(acme["metadata"]["name"].as<std::string>() == "acme");
  CHECK(acme["metadata"]["generation"].as<int>() == 3);
  CHECK(acme["metadata"]["annotations"]["tenantmaster.io/source"].as<std::string>() == "fleet");
  CHECK(acme["spec"]["suspend"].as<bool>() == false);
  CHECK(acme["status"]["lastRuns"][0]["durationSeconds"].as<double>() == 1.25);
  // "8000" is a string in the JSON: quoted, or a YAML reader takes it for a number.
  CHECK(as_yaml.find("subdomain: \"8000\"") != std::string::npos);
  CHECK(as_yaml.find("durationSeconds: 1.25\n") != std::string::npos);
  CHECK(acme["spec"]["subdomain"].Tag() == "!");
  const YAML::Node beta = yaml["items"][1];
  CHECK(beta["status"]["conditions"][0]["message"].as<std::string>() ==
        "cluster main:\nconnection refused");
  CHECK(beta["status"]["lastRuns"].IsSequence());
  CHECK(beta["status"]["lastRuns"].size() == 0);
}

TEST_CASE("cli format: the products' REVISION and ROLLOUT columns") {
  // Halted on its first wave; a revision not numbered yet (0) without a rollout; a product whose
  // files cannot be read (revision null); an answer from an older server (neither member).
  CHECK(Format(Resource::kProduct,
               R"([{"name":"erp","source":"fleet","defaultVersion":"2.4","modes":["shared"],
                    "workspaces":3,"revision":{"number":12,"digest":"0123456789ab"},
                    "rolloutStatus":{"phase":"Halted","revision":12,"currentWave":1,
                      "waveCount":4,"counts":{"pending":2,"inProgress":0,"ready":0,"failed":1}}},
                   {"name":"shop","source":"fleet","defaultVersion":"1.0","modes":["shared"],
                    "workspaces":0,"revision":{"number":0,"digest":"0123456789ab"},
                    "rolloutStatus":null},
                   {"name":"wiki","source":"fleet","defaultVersion":"1.0","modes":["shared"],
                    "workspaces":1,"revision":null,"rolloutStatus":null},
                   {"name":"old","source":"fleet","defaultVersion":"1.0","modes":["shared"],
                    "workspaces":1}])",
               "table") ==
        "NAME   SOURCE   VERSION   REVISION    MODES    WORKSPACES   ROLLOUT\n"
        "erp    fleet    2.4       12          shared   3            Halted 1/4\n"
        "shop   fleet    1.0       <none>      shared   0            <none>\n"
        "wiki   fleet    1.0       <unknown>   shared   1            <none>\n"
        "old    fleet    1.0       <unknown>   shared   1            <none>\n");
  CHECK(Format(Resource::kProduct, R"([{"name":"erp"},{"name":"shop"}])", "name") ==
        "product/erp\nproduct/shop\n");
}

TEST_CASE("cli format: one object prints itself in json and yaml, a row in a table") {
  const std::string object = json::serialize(json::parse(kItems).as_array()[0]);
  auto as_json = FormatObject(Resource::kWorkspace, object, "json", kNow);
  REQUIRE(as_json.ok());
  CHECK(json::parse(*as_json) == json::parse(object));
  auto as_yaml = FormatObject(Resource::kWorkspace, object, "yaml", kNow);
  REQUIRE(as_yaml.ok());
  CHECK(YAML::Load(*as_yaml)["kind"].as<std::string>() == "Workspace");
  auto row = FormatObject(Resource::kWorkspace, object, "table", kNow);
  REQUIRE(row.ok());
  CHECK(*row == "NAME   PRODUCT   REV   MODE        PHASE   READY   AGE\n"
                "acme   erp       3     dedicated   Ready   True    3d\n");
  CHECK_FALSE(FormatObject(Resource::kWorkspace, "[1]", "json", kNow).ok());
  CHECK_FALSE(FormatItems(Resource::kWorkspace, "{\"items\":[]}", "table", kNow).ok());
}

TEST_CASE("cli format: products, sources, events and tokens") {
  CHECK(Format(Resource::kProduct,
               R"([{"name":"erp","source":"fleet","displayName":"ERP suite",
                    "defaultVersion":"2.4","modes":["shared","dedicated"],"workspaces":12,
                    "revision":{"number":4,"digest":"0123456789ab"},
                    "rolloutStatus":{"phase":"Progressing","revision":4,"currentWave":2,
                      "waveCount":3,"counts":{"pending":5,"inProgress":2,"ready":5,"failed":0}}}])",
               "wide") ==
        "NAME   SOURCE   VERSION   REVISION   MODES              WORKSPACES   ROLLOUT           "
        "DISPLAY-NAME\n"
        "erp    fleet    2.4       4          shared,dedicated   12           Progressing 2/3   "
        "ERP suite\n");
  CHECK(Format(Resource::kSource,
               R"([{"name":"fleet","kind":"git","revision":"abc123","ready":true,
                    "reason":"Synced","message":"","lastSyncTime":"2026-12-03T11:57:00Z"},
                   {"name":"local","kind":"directory","revision":"","ready":false,
                    "reason":"InvalidManifests","message":"2 documents"}])",
               "table") ==
        "NAME    KIND        READY   REVISION   LAST-SYNC\n"
        "fleet   git         True    abc123     3m\n"
        "local   directory   False   <none>     <never>\n");
  CHECK(Format(Resource::kEvent,
               R"([{"id":7,"workspace":"acme","type":"Normal","reason":"CreateDatabase",
                    "message":"created database \"tenant_acme\"","time":"2026-12-03T11:59:55Z"}])",
               "table") ==
        "AGE   TYPE     REASON           WORKSPACE   MESSAGE\n"
        "5s    Normal   CreateDatabase   acme        created database \"tenant_acme\"\n");
  CHECK(Format(Resource::kEvent, R"([{"id":7}])", "name") == "event/7\n");
  CHECK(Format(Resource::kToken,
               R"([{"id":"k3j5abcdef","role":"viewer","description":"grafana",
                    "createdAt":"2026-11-03T12:00:00Z","expiresAt":"2026-12-05T12:00:00Z",
                    "lastUsedAt":null},
                   {"id":"zz","role":"admin","description":"old",
                    "createdAt":"2026-01-03T12:00:00Z","expiresAt":"2026-02-03T12:00:00Z",
                    "lastUsedAt":"2026-02-01T12:00:00Z"}])",
               "table") ==
        "ID           ROLE     DESCRIPTION   EXPIRES   LAST-USED   AGE\n"
        "k3j5abcdef   viewer   grafana       in 2d     <never>     30d\n"
        "zz           admin    old           expired   305d        334d\n");
}

TEST_CASE("cli format: columns are padded to the widest cell plus three spaces") {
  CHECK(AlignColumns({{"A", "BB", "C"}, {"aaaa", "b", "c"}}) ==
        "A      BB   C\n"
        "aaaa   b    c\n");
}

TEST_CASE("cli format: the plan, readable, and whether it differs") {
  const auto plan = SummarizePlan(R"({"items":[
      {"workspace":"acme","converged":false,"actions":[
        {"kind":"CreateDatabase","description":"create database \"tenant_acme\""},
        {"kind":"CreateRole","description":"create role \"user_acme\""}]},
      {"workspace":"beta","converged":true,"actions":[]}],"diagnostics":[]})");
  CHECK(plan.valid);
  CHECK(plan.differences);
  CHECK_FALSE(plan.errors);
  CHECK(plan.text ==
        "workspace/acme: 2 actions\n"
        "  + CreateDatabase: create database \"tenant_acme\"\n"
        "  + CreateRole: create role \"user_acme\"\n"
        "workspace/beta: converged\n");

  const auto none = SummarizePlan(R"({"items":[{"workspace":"beta","converged":true,
      "actions":[]}],"diagnostics":[{"file":"request","line":1,"column":1,"field":"",
      "message":"skipped","severity":"notice"}]})");
  CHECK_FALSE(none.differences);
  CHECK_FALSE(none.errors);

  const auto blocked = SummarizePlan(R"({"items":[{"workspace":"x","converged":false,
      "actions":[],"blocked":"the deletion guard holds"}],
      "diagnostics":[{"file":"request","line":3,"column":1,"message":"bad"}]})");
  CHECK(blocked.differences);
  CHECK(blocked.errors);
  CHECK(blocked.text.find("(blocked: the deletion guard holds)") != std::string::npos);

  CHECK_FALSE(SummarizePlan("{}").valid);
}

TEST_CASE("cli format: describe shows spec, conditions, last runs, events and the plan") {
  const std::string object = json::serialize(json::parse(kItems).as_array()[1]);
  const std::string text = DescribeWorkspace(
      object,
      R"([{"id":1,"workspace":"beta-long-name","type":"Warning","reason":"DatabaseUnreachable",
           "message":"connection refused","time":"2026-12-03T11:59:00Z"}])",
      "workspace/beta-long-name: 1 action\n  + CreateDatabase: create\n", kNow);
  CHECK(text.find("Name:                  beta-long-name\n") != std::string::npos);
  CHECK(text.find("Phase:                 Degraded\n") != std::string::npos);
  CHECK(text.find("Spec:\n  product: shop\n  mode: shared\n") != std::string::npos);
  CHECK(text.find("Conditions:\n  TYPE    STATUS   REASON                AGE   MESSAGE\n"
                  "  Ready   False    DatabaseUnreachable   60s   cluster main: connection "
                  "refused\n") != std::string::npos);
  CHECK(text.find("Last Runs:\n  <none>\n") != std::string::npos);
  CHECK(text.find("Events:\n  AGE   TYPE      REASON                MESSAGE\n"
                  "  60s   Warning   DatabaseUnreachable   connection refused\n") !=
        std::string::npos);
  CHECK(text.find("Plan:\n  workspace/beta-long-name: 1 action\n    + CreateDatabase: create\n") !=
        std::string::npos);

  const std::string ready = DescribeWorkspace(json::serialize(json::parse(kItems).as_array()[0]),
                                              "unavailable: the server failed (500)", "", kNow);
  CHECK(ready.find("Plan:") == std::string::npos);
  CHECK(ready.find("Events:\n  unavailable: the server failed (500)\n") != std::string::npos);
  CHECK(ready.find("Last Runs:\n  START                  AGE   DURATION   RESULT      REASON\n"
                   "  2026-12-03T11:00:00Z   60m   1.25s      Succeeded   Converged\n") !=
        std::string::npos);
}

TEST_CASE("cli format: sizes in SI units with one decimal") {
  using tmaster::cli::FormatBytes;
  CHECK(FormatBytes(0) == "0 B");
  CHECK(FormatBytes(999) == "999 B");
  CHECK(FormatBytes(1000) == "1.0 kB");
  CHECK(FormatBytes(1500) == "1.5 kB");
  CHECK(FormatBytes(12345678) == "12.3 MB");
  CHECK(FormatBytes(999960) == "1.0 MB");  // not "1000.0 kB"
  CHECK(FormatBytes(4'000'000'000) == "4.0 GB");
  CHECK(FormatBytes(1'200'000'000'000) == "1.2 TB");
}

TEST_CASE("cli format: the backups table, pending first; json and yaml are the answer") {
  using tmaster::cli::FormatBackups;
  // What GET /api/v1/workspaces/acme/backups answers (docs/api.md#backups).
  const std::string answer = R"({
    "items":[
      {"id":"acme-20261203T030000Z-cccc","workspace":"acme","kind":"scheduled","state":"failed",
       "file":"acme/acme-20261203T030000Z-cccc.dump","sizeBytes":0,"sha256":"",
       "durationSeconds":0.5,"serverVersion":"15.8","generation":3,"appliedMigration":"",
       "encrypted":false,"tableRows":{},"reason":"pg_dump: connection refused",
       "createdAt":"2026-12-03T03:00:00Z","verifiedAt":null},
      {"id":"acme-20261202T030000Z-bbbb","workspace":"acme","kind":"manual","state":"verified",
       "file":"acme/acme-20261202T030000Z-bbbb.dump.enc","sizeBytes":12345678,
       "sha256":"aa","durationSeconds":1.25,"serverVersion":"15.8","generation":3,
       "appliedMigration":"0002_orders","keyId":"0123456789abcdef","encrypted":true,
       "tableRows":{"public.orders":12},"createdAt":"2026-12-02T12:00:00Z",
       "verifiedAt":"2026-12-03T10:00:00Z"}],
    "pending":[{"id":"acme-20261203T115900Z-dddd","workspace":"acme","kind":"manual",
                "state":"running","queuedAt":"2026-12-03T11:59:00Z"}]})";
  auto table = FormatBackups(answer, "table", kNow);
  REQUIRE(table.ok());
  CHECK(*table ==
        "ID                           KIND        STATE      SIZE      AGE   VERIFIED   MIGRATION\n"
        "acme-20261203T115900Z-dddd   manual      running    <none>    60s   <none>     <none>\n"
        "acme-20261203T030000Z-cccc   scheduled   failed     <none>    9h    <never>    <none>\n"
        "acme-20261202T030000Z-bbbb   manual      verified   12.3 MB   24h   120m       0002_orders\n");

  auto as_json = FormatBackups(answer, "json", kNow);
  REQUIRE(as_json.ok());
  CHECK(json::parse(*as_json) == json::parse(answer));
  auto as_yaml = FormatBackups(answer, "yaml", kNow);
  REQUIRE(as_yaml.ok());
  const YAML::Node yaml = YAML::Load(*as_yaml);
  CHECK(yaml["items"][1]["sizeBytes"].as<long>() == 12345678);
  CHECK(yaml["pending"][0]["state"].as<std::string>() == "running");

  auto empty = FormatBackups(R"({"items":[],"pending":[]})", "table", kNow);
  REQUIRE(empty.ok());
  CHECK(*empty == "ID   KIND   STATE   SIZE   AGE   VERIFIED   MIGRATION\n");
  CHECK_FALSE(FormatBackups(R"([1,2])", "table", kNow).ok());
  CHECK_FALSE(FormatBackups("not json", "json", kNow).ok());
}

TEST_CASE("cli format: the clusters table: capacity, usage, reachability, version, labels") {
  CHECK(Format(Resource::kCluster,
               R"([{"name":"eu-1","capacity":500,"used":312,"placed":300,"reachable":true,
                    "serverVersion":"15.10","labels":{"tier":"gold","region":"eu"}},
                   {"name":"eu-2","capacity":null,"used":0,"placed":0,"reachable":false,
                    "serverVersion":"","labels":{},"reason":"ConnectionFailed: refused"},
                   {"name":"us-1","capacity":10,"used":3,"placed":3,"reachable":null,
                    "serverVersion":"","labels":{"region":"us"}}])",
               "wide") ==
        "NAME   CAPACITY      USED   REACHABLE   VERSION   LABELS                MESSAGE\n"
        "eu-1   500           312    True        15.10     region=eu,tier=gold   \n"
        "eu-2   <unlimited>   0      False       <none>    <none>                "
        "ConnectionFailed: refused\n"
        "us-1   10            3      Unknown     <none>    region=us             \n");
  CHECK(Format(Resource::kCluster, R"([{"name":"eu-1"}])", "name") == "cluster/eu-1\n");
}

// Endpoints as GET /api/v1/endpoints serves them (docs/api.md): a standalone engine with a
// limit, a swarm manager without one (two products' shared runtimes on it), one named only by a
// workspace (not configured) whose engine is down, and one not checked yet.
constexpr const char* kEndpoints = R"J([
 {"id":1,"kind":"standalone","swarmId":null,"configured":true,"labels":{"region":"eu","kind":"standalone"},
  "used":3,"reachable":true,"capacity":200,"checkedAt":"2026-12-03T11:59:55Z"},
 {"id":4,"kind":"swarm","swarmId":"jo2v8bmcn2c1","configured":true,"labels":{"kind":"swarm"},
  "used":1,"reachable":true,"capacity":null,"checkedAt":"2026-12-03T11:59:50Z",
  "sharedRuntimes":["crm","erp"]},
 {"id":7,"kind":"unknown","swarmId":null,"configured":false,"labels":{},"used":2,"sharedRuntimes":[],
  "reachable":false,"capacity":null,"checkedAt":"2026-12-03T11:59:58Z",
  "reason":"PortainerUnavailable: inspect endpoint 7: Portainer answered 503:\nEnvironment is down"},
 {"id":9,"kind":"unknown","swarmId":null,"configured":true,"labels":{},"used":0,
  "reachable":null,"capacity":0}
])J";

TEST_CASE("cli format: the endpoints table: kind, capacity, usage, reachability, labels; wide "
          "adds the swarm id, the shared runtimes, the last check and why it is down") {
  CHECK(Format(Resource::kEndpoint, kEndpoints, "table") ==
        "ID   KIND         CAPACITY      USED   REACHABLE   LABELS\n"
        "1    standalone   200           3      True        kind=standalone,region=eu\n"
        "4    swarm        <unlimited>   1      True        kind=swarm\n"
        "7    unknown      <none>        2      False       <none>\n"
        "9    unknown      0             0      Unknown     <none>\n");
  CHECK(Format(Resource::kEndpoint, kEndpoints, "wide") ==
        "ID   KIND         CAPACITY      USED   REACHABLE   LABELS                      SWARM-ID"
        "       SHARED-RUNTIMES   CHECKED   MESSAGE\n"
        "1    standalone   200           3      True        kind=standalone,region=eu   <none>"
        "         <none>            5s        \n"
        "4    swarm        <unlimited>   1      True        kind=swarm                  "
        "jo2v8bmcn2c1   crm,erp           10s       \n"
        "7    unknown      <none>        2      False       <none>                      <none>"
        "         <none>            2s        PortainerUnavailable: inspect endpoint 7: Portainer "
        "answered 503: Environment is down\n"
        "9    unknown      0             0      Unknown     <none>                      <none>"
        "         <none>            <never>   \n");
  CHECK(Format(Resource::kEndpoint, kEndpoints, "name") ==
        "endpoint/1\nendpoint/4\nendpoint/7\nendpoint/9\n");
  const json::value as_json = json::parse(Format(Resource::kEndpoint, kEndpoints, "json"));
  CHECK(as_json.at("items").as_array().size() == 4);
  CHECK(as_json.at("items").at(1).at("swarmId") == "jo2v8bmcn2c1");
  const YAML::Node yaml = YAML::Load(Format(Resource::kEndpoint, kEndpoints, "yaml"));
  CHECK(yaml["items"][2]["reachable"].as<bool>() == false);
  CHECK(yaml["items"][0]["capacity"].as<int>() == 200);
}

// Moves as GET /api/v1/moves serves them (docs/api.md#moves): acme's succeeded an hour ago,
// beta's running since 90 s (no downtime known yet), gamma's failed and rolled back.
constexpr const char* kMoves = R"J([
 {"id":"mv-acme-1796295600-9f3e","workspace":"acme","from":"c1","to":"c2","state":"succeeded",
  "step":"done","message":"on c2; the source is kept NOLOGIN until pruned","reason":"",
  "verified":"12 tables, 48211 rows, checksums equal","who":"env:admin","suspendedByMove":true,
  "switched":true,"requestedAt":"2026-12-03T11:00:00Z","updatedAt":"2026-12-03T11:01:00Z",
  "finishedAt":"2026-12-03T11:01:00Z","prunedAt":null,"downtimeMs":4250},
 {"id":"mv-beta-1796299110-0a0b","workspace":"beta","from":"c1","to":"c3","state":"running",
  "step":"dump","message":"pg_dump of tenant_beta","reason":"","verified":"",
  "who":"token:k3j5 (ops)","suspendedByMove":true,"switched":false,
  "requestedAt":"2026-12-03T11:58:30Z","updatedAt":"2026-12-03T11:59:00Z","finishedAt":null,
  "prunedAt":null,"downtimeMs":null},
 {"id":"mv-gamma-1796292000-1c2d","workspace":"gamma","from":"c2","to":"c1","state":"failed",
  "step":"rollback","message":"row counts differ:\npublic.orders 12 on c2, 11 on c1",
  "reason":"MoveVerifyFailed","verified":"","who":"env:admin","suspendedByMove":false,
  "switched":false,"requestedAt":"2026-12-03T10:00:00Z","updatedAt":"2026-12-03T10:02:00Z",
  "finishedAt":"2026-12-03T10:02:00Z","prunedAt":null,"downtimeMs":850}
])J";

TEST_CASE("cli format: the moves table, wide and name; a move's downtime") {
  CHECK(Format(Resource::kMove, kMoves, "table") ==
        "WORKSPACE   FROM   TO   STATE       STEP       AGE    DOWNTIME\n"
        "acme        c1     c2   succeeded   done       60m    4.3s\n"
        "beta        c1     c3   running     dump       90s    <none>\n"
        "gamma       c2     c1   failed      rollback   120m   850ms\n");
  const std::string wide = Format(Resource::kMove, kMoves, "wide");
  CHECK(wide.rfind("WORKSPACE   FROM   TO   STATE       STEP       AGE    DOWNTIME   REASON"
                   "             MESSAGE\n",
                   0) == 0);
  CHECK(wide.find("gamma       c2     c1   failed      rollback   120m   850ms      "
                  "MoveVerifyFailed   row counts differ: public.orders 12 on c2, 11 on c1\n") !=
        std::string::npos);
  CHECK(Format(Resource::kMove, kMoves, "name") == "move/acme\nmove/beta\nmove/gamma\n");
  const json::value parsed = json::parse(Format(Resource::kMove, kMoves, "json"));
  CHECK(parsed.at("items").as_array().size() == 3);

  CHECK(FormatDowntime(std::nullopt) == "<none>");
  CHECK(FormatDowntime(0) == "0ms");
  CHECK(FormatDowntime(999) == "999ms");
  CHECK(FormatDowntime(1000) == "1.0s");
  CHECK(FormatDowntime(59'949) == "59.9s");
  CHECK(FormatDowntime(125'000) == "2m5s");
}

TEST_CASE("cli format: describe move: the move as a block, what is next once it succeeded") {
  const json::array moves = json::parse(kMoves).as_array();
  auto text = DescribeMove(json::serialize(moves[0]), kNow);
  REQUIRE(text.ok());
  CHECK(*text ==
        "Workspace: acme\n"
        "Move:      mv-acme-1796295600-9f3e\n"
        "From:      c1\n"
        "To:        c2\n"
        "State:     succeeded (step done)\n"
        "Message:   on c2; the source is kept NOLOGIN until pruned\n"
        "Verified:  12 tables, 48211 rows, checksums equal\n"
        "Requested: 2026-12-03T11:00:00Z (60m ago) by env:admin\n"
        "Updated:   2026-12-03T11:01:00Z (59m ago)\n"
        "Finished:  2026-12-03T11:01:00Z (59m ago)\n"
        "Downtime:  4.3s\n"
        "Placement: switched to c2\n"
        "Next:      the source on c1 is kept (NOLOGIN): `tenantctl move --prune acme` drops it\n");
  text = DescribeMove(json::serialize(moves[1]), kNow);
  REQUIRE(text.ok());
  CHECK(text->find("State:     running (step dump)\n") != std::string::npos);
  CHECK(text->find("Placement: on c1\n") != std::string::npos);
  CHECK(text->find("Suspended: by this move") != std::string::npos);
  CHECK(text->find("Finished:") == std::string::npos);
  CHECK(text->find("Next:") == std::string::npos);
  text = DescribeMove(json::serialize(moves[2]), kNow);
  REQUIRE(text.ok());
  CHECK(text->find("Reason:    MoveVerifyFailed\n") != std::string::npos);
  CHECK(text->find("Message:   row counts differ: public.orders 12 on c2, 11 on c1\n") !=
        std::string::npos);
  CHECK(text->find("Verified:") == std::string::npos);
  CHECK_FALSE(DescribeMove("[]", kNow).ok());
}
