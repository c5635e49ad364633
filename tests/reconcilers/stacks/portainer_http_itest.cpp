// The Portainer adapter of StackGateway against the built portainer-sim binary: what each call
// sends (checked in the simulator's state and request log), and how the faults the simulator
// injects come out (timeouts, 5xx, endpoint down, foreign names, bad key). One simulator
// process; every test case starts from POST /__sim/reset.
#include <doctest/doctest.h>
#include <httplib.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <atomic>
#include <boost/json.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/secret.hpp"
#include "common/text.hpp"
#include "reconcilers/stacks/portainer_http.hpp"
#include "tests/e2e/shared_runtime_scenario.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/temp_dir.hpp"
#include "tools/portainer-sim/sim_process.hpp"

namespace {

namespace json = boost::json;
namespace stacks = tmaster::stacks;
using tmaster::FailureKind;
using tmaster::Secret;
using tmaster::tools::portainer_sim::SimProcess;
using namespace std::chrono_literals;

const std::string kBinary = std::string(TM_BINARY_DIR) + "/portainer-sim";
const std::string kApiKey = "ptr_cG9ydGFpbmVyLWh0dHAtaXRlc3Qta2V5LTAxMjM0NTY3ODk=";
const std::string kPassword = "pw-9f3K2x7QzL";
const std::string kDatabaseUrl = "postgresql://tm_acme:pw-9f3K2x7QzL@db.internal:5432/tm_acme";

SimProcess& Sim() {
  static SimProcess process([] {
    SimProcess::Options options;
    options.binary = kBinary;
    options.args = {"--api-key-env", "PORTAINER_HTTP_ITEST_KEY", "--endpoints", "2"};
    options.env = {{"PORTAINER_HTTP_ITEST_KEY", kApiKey}};
    return options;
  }());
  return process;
}

// --- talking to the simulator directly (its control plane, or the API as "someone else") ---

struct Reply {
  int status = 0;
  std::string body;
  [[nodiscard]] json::value Json() const { return json::parse(body); }
};

Reply Raw(const std::string& method, const std::string& path, const std::string& body = "",
          bool with_key = false) {
  httplib::Client client("127.0.0.1", Sim().port());
  client.set_read_timeout(10s);
  httplib::Request req;
  req.method = method;
  req.path = path;
  req.body = body;
  if (!body.empty()) req.headers.emplace("Content-Type", "application/json");
  if (with_key) req.headers.emplace("X-API-Key", kApiKey);
  const httplib::Result result = client.send(req);
  REQUIRE_MESSAGE(result, method << " " << path << ": no answer");
  return {result->status, result->body};
}

void Reset() { REQUIRE(Raw("POST", "/__sim/reset", R"({"endpoints":2})").status == 204); }

void Knob(const std::string& method, const std::string& path, const json::value& body,
          int status = 200) {
  const Reply reply = Raw(method, path, json::serialize(body));
  REQUIRE_MESSAGE(reply.status == status, path << ": " << reply.body);
}

json::object State() { return Raw("GET", "/__sim/state").Json().as_object(); }

json::array SimStacks() { return State().at("stacks").as_array(); }

const std::string kCreateRoute = "POST /api/stacks/create/{type}/{method}";

/// How many requests to `route` (a route key such as kCreateRoute) the simulator has counted
/// since the last reset; it counts a request when it arrives, before any fault delays it.
std::int64_t RouteCount(const std::string& route) {
  const json::object state = State();
  const json::value* count = state.at("counters").as_object().if_contains(route);
  return count != nullptr ? count->to_number<std::int64_t>() : 0;
}

/// The simulator's request log since the last reset in arrival order: `<route> <status>[ <fault>]`
/// per request, joined by "; ".
std::string Calls() {
  const json::object state = State();
  std::vector<std::pair<std::int64_t, std::string>> numbered;
  for (const json::value& entry : state.at("requests").as_array()) {
    const json::object& e = entry.as_object();
    std::string call = std::string(e.at("route").as_string()) + " " +
                       std::to_string(e.at("status").to_number<int>());
    if (const json::value* fault = e.if_contains("fault"); fault != nullptr && fault->is_string()) {
      call += " " + std::string(fault->as_string());
    }
    numbered.emplace_back(e.at("seq").to_number<std::int64_t>(), std::move(call));
  }
  std::sort(numbered.begin(), numbered.end());
  std::string calls;
  for (const auto& [seq, call] : numbered) calls += (calls.empty() ? "" : "; ") + call;
  return calls;
}

json::object SimStack(stacks::StackId id) {
  for (const auto& stack : SimStacks()) {
    if (stack.at("Id").to_number<int>() == id) return stack.as_object();
  }
  FAIL("stack " << id << " is not in /__sim/state");
  return {};
}

/// Creates a stack through the API as a human would (no marker unless `env` has one).
int CreateDirectly(const std::string& name, int endpoint, const json::value& env) {
  json::object body{{"Name", name}, {"StackFileContent", "services:\n  x:\n    image: busybox\n"}};
  if (!env.is_null()) body["Env"] = env;
  const Reply reply =
      Raw("POST", "/api/stacks/create/standalone/string?endpointId=" + std::to_string(endpoint),
          json::serialize(body), true);
  REQUIRE_MESSAGE(reply.status == 200, reply.body);
  return reply.Json().at("Id").to_number<int>();
}

// --- the gateway under test ---

struct Sleeps {
  std::mutex mutex;
  std::vector<std::chrono::milliseconds> delays;

  stacks::SleepFunction Recorder() {
    return [this](std::chrono::milliseconds delay) {
      const std::lock_guard lock(mutex);
      delays.push_back(delay);
    };
  }
};

stacks::PortainerOptions Options(const std::string& key = kApiKey) {
  stacks::PortainerOptions options;
  options.url = Sim().BaseUrl();
  options.api_key = Secret(key);
  options.read_timeout = 5000ms;
  options.jitter_seed = 42;
  return options;
}

std::unique_ptr<stacks::PortainerGateway> Gateway(Sleeps& sleeps,
                                                  stacks::PortainerOptions options = Options()) {
  return stacks::MakePortainerGateway(std::move(options), sleeps.Recorder());
}

std::string File(const std::string& version) {
  // As the renderer writes it: ${NAME} entries, no env_file (a swarm manager has no stack.env).
  return "services:\n  app:\n    image: ghcr.io/acme/product:${TM_VERSION}\n    environment: "
         "{TM_VERSION: \"${TM_VERSION}\"}\n# " +
         version + "\n";
}

stacks::DesiredStack Desired(const std::string& workspace, int endpoint,
                             const std::string& version = "1.0", bool active = true) {
  stacks::DesiredStack d;
  d.workspace = workspace;
  d.name = "tm-" + workspace;
  d.endpoint = endpoint;
  d.file = File(version);
  d.env = {{"DATABASE_URL", kDatabaseUrl, true},
           {"DB_PASSWORD", kPassword, true},
           {"TM_HOST", workspace + ".example.org", false},
           {"TM_VERSION", version, false},
           {"TM_WORKSPACE", workspace, false}};
  d.active = active;
  return d;
}

json::array EnvJson(const std::vector<stacks::EnvVar>& env) {
  json::array out;
  for (const auto& var : env) out.push_back(json::object{{"name", var.name}, {"value", var.value}});
  return out;
}

stacks::ApplyResult MustApply(stacks::PortainerGateway& gateway, const stacks::Action& action) {
  auto result = gateway.Apply(action);
  REQUIRE_MESSAGE(result.ok(), result.failure().reason << ": " << result.failure().message);
  return result.value();
}

/// Docker's answer to `GET /api/endpoints/{id}/docker/swarm` on a standalone engine, which the
/// gateway asks before its first list of an endpoint.
constexpr const char* kNotSwarmManager =
    R"({"message":"This node is not a swarm manager. Use \"docker swarm init\" or \"docker )"
    R"(swarm join\" to connect this node to swarm and try again."})";

void CheckNoSecrets(const std::string& text) {
  CHECK(text.find(kApiKey) == std::string::npos);
  CHECK(text.find(kPassword) == std::string::npos);
  CHECK(text.find(kDatabaseUrl) == std::string::npos);
}

}  // namespace

namespace {

Reply Api(const std::string& method, const std::string& path, const std::string& body = "") {
  return Raw(method, path, body, true);
}

std::int64_t Int(const json::object& o, const char* key) {
  return o.at(key).to_number<std::int64_t>();
}

std::vector<stacks::EnvVar> Plain(std::vector<stacks::EnvVar> env) {
  for (auto& var : env) var.secret = false;  // EnvVar's == ignores the flag; this is for CHECKs
  return env;
}

stacks::Action Create(const stacks::DesiredStack& d) { return stacks::CreateStack{d}; }

}  // namespace

TEST_CASE("List: one call per endpoint, every field mapped, the marker read from TM_WORKSPACE") {
  Reset();
  Sleeps sleeps;
  auto gateway = Gateway(sleeps);
  const stacks::DesiredStack acme = Desired("acme", 1);
  const int ours = CreateDirectly("tm-acme", 1, EnvJson(acme.env));
  const int legacy = CreateDirectly("Legacy App", 1, json::value(nullptr));  // Env: null
  const int other = CreateDirectly("tm-other", 2, EnvJson(Desired("other", 2).env));
  REQUIRE(Api("POST", "/api/stacks/" + std::to_string(legacy) + "/stop?endpointId=1").status ==
          200);
  // An edit in Portainer's editor moves UpdateDate.
  Knob("POST", "/__sim/stacks/" + std::to_string(ours) + "/drift",
       json::object{{"StackFileContent", "services: {}\n"}});

  auto listed = gateway->List(1);
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 2);
  const stacks::ObservedStack& a = listed->at(0);
  CHECK(a.id == ours);
  CHECK(a.name == "tm-acme");
  CHECK(a.endpoint == 1);
  CHECK(a.type == 2);
  CHECK(a.status == 1);
  CHECK(a.update_date == Int(SimStack(ours), "UpdateDate"));
  CHECK(a.update_date > 0);
  CHECK(a.env == acme.env);
  CHECK(a.workspace == "acme");
  for (const auto& var : a.env) {
    CHECK_MESSAGE(var.secret == (var.name == "DB_PASSWORD" || var.name == "DATABASE_URL"),
                  var.name);
  }
  const stacks::ObservedStack& b = listed->at(1);
  CHECK(b.id == legacy);
  CHECK(b.name == "legacyapp");  // stored normalized
  CHECK(b.status == 2);
  CHECK(b.env.empty());
  CHECK(b.workspace.empty());
  CHECK(Int(SimStack(legacy), "UpdateDate") == 0);
  CHECK(b.update_date == 0);  // never updated: UpdateDate as Portainer keeps it

  auto second = gateway->List(2);
  REQUIRE(second.ok());
  REQUIRE(second->size() == 1);
  CHECK(second->at(0).id == other);
  CHECK(second->at(0).workspace == "other");

  CHECK(gateway->Counts().list == 2);
  CHECK(gateway->Counts().probe == 2);  // each endpoint's kind, once: both standalone
  CHECK(gateway->Counts().Total() == 4);
  const std::string gateway_calls =
      "GET /api/endpoints/{id}/docker/{rest*} 503; GET /api/stacks 200; "
      "GET /api/endpoints/{id}/docker/{rest*} 503; GET /api/stacks 200";
  const std::string calls = Calls();
  REQUIRE(calls.size() > gateway_calls.size());
  CHECK(calls.substr(calls.size() - gateway_calls.size()) == gateway_calls);
  CHECK(gateway->List(1).ok());
  CHECK(gateway->Counts().probe == 2);  // kept
  const json::array log = State().at("requests").as_array();
  REQUIRE(log.size() >= 2);
  const json::object& last = log.back().as_object();
  CHECK(last.at("method") == "GET");
  CHECK(last.at("path") == "/api/stacks");
  CHECK(last.at("query") == "filters=%7B%22EndpointID%22%3A1%7D");  // no SwarmID: standalone
  CHECK(last.at("status") == 200);
  CHECK(sleeps.delays.empty());
}

TEST_CASE("File: the stored compose file; a vanished stack is Transient StackNotFound") {
  Reset();
  Sleeps sleeps;
  auto gateway = Gateway(sleeps);
  const int id = CreateDirectly("tm-acme", 1, EnvJson(Desired("acme", 1).env));
  stacks::ObservedStack observed;
  observed.id = id;
  observed.name = "tm-acme";
  observed.endpoint = 1;
  auto file = gateway->File(observed);
  REQUIRE(file.ok());
  CHECK(*file == "services:\n  x:\n    image: busybox\n");

  observed.id = 999;
  auto gone = gateway->File(observed);
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.failure().kind == FailureKind::kTransient);
  CHECK(gone.failure().reason == "StackNotFound");
  CHECK(gone.failure().message.find("\"tm-acme\" (id 999) on endpoint 1") != std::string::npos);
  CHECK(sleeps.delays.empty());  // not retried: the next pass re-observes
  CHECK(gateway->Counts().file == 2);
}

TEST_CASE("CreateStack: list, then one POST; exactly one stack with our file and Env") {
  Reset();
  Sleeps sleeps;
  auto gateway = Gateway(sleeps);
  const stacks::DesiredStack d = Desired("acme", 1);
  const stacks::ApplyResult created = MustApply(*gateway, Create(d));
  CHECK(created.detail == "created");
  CHECK(created.calls == 3);  // probe, list, POST

  const json::array all = SimStacks();
  REQUIRE(all.size() == 1);
  const json::object& stack = all.at(0).as_object();
  CHECK(Int(stack, "Id") == created.id);
  CHECK(stack.at("Name") == "tm-acme");
  CHECK(Int(stack, "EndpointId") == 1);
  CHECK(stack.at("Env") == json::value(EnvJson(d.env)));
  CHECK(stack.at("StackFileContent") == json::value(d.file));
  CHECK(Int(stack, "Status") == 1);
  CHECK(stack.at("Running") == true);
  CHECK(Int(stack, "UpdateDate") == 0);
  // The ledger records what the next list shows: UpdateDate, 0 until the first update.
  CHECK(created.update_date == 0);
  auto listed = gateway->List(1);
  REQUIRE(listed.ok());
  CHECK(listed->at(0).update_date == created.update_date);

  // Creating again finds it (ours, identical): adopted, nothing written.
  const stacks::ApplyResult again = MustApply(*gateway, Create(d));
  CHECK(again.detail == "adopted");
  CHECK(again.id == created.id);
  CHECK(again.update_date == created.update_date);
  CHECK(again.calls == 2);  // list + file
  CHECK(SimStacks().size() == 1);
  const stacks::CallCounts counts = gateway->Counts();
  CHECK(counts.create == 1);
  CHECK(counts.update == 0);
  CHECK(counts.list == 3);
  CHECK(counts.file == 1);
  CHECK(sleeps.delays.empty());
}

TEST_CASE("CreateStack of a suspended workspace creates, then stops") {
  Reset();
  Sleeps sleeps;
  auto gateway = Gateway(sleeps);
  const stacks::ApplyResult r = MustApply(*gateway, Create(Desired("acme", 1, "1.0", false)));
  CHECK(r.detail == "created, stopped");
  CHECK(r.calls == 4);  // probe, list, POST, stop
  const json::object stack = SimStack(r.id);
  CHECK(Int(stack, "Status") == 2);
  CHECK(stack.at("Running") == false);
}

TEST_CASE("CreateStack adopts a stale copy of our own stack and brings it up to date") {
  Reset();
  Sleeps sleeps;
  auto gateway = Gateway(sleeps);
  const int id = CreateDirectly("tm-acme", 1, EnvJson(Desired("acme", 1, "0.9").env));
  const stacks::DesiredStack d = Desired("acme", 1, "1.0");
  const stacks::ApplyResult r = MustApply(*gateway, Create(d));
  CHECK(r.id == id);
  CHECK(r.detail == "adopted, updated");
  const json::object stack = SimStack(id);
  CHECK(stack.at("Env") == json::value(EnvJson(d.env)));
  CHECK(stack.at("StackFileContent") == json::value(d.file));
  CHECK(r.update_date == Int(stack, "UpdateDate"));
  CHECK(SimStacks().size() == 1);
  CHECK(gateway->Counts().create == 0);
}

TEST_CASE("UpdateStack: PUT with the file and the FULL Env, endpointId of the stack") {
  Reset();
  Sleeps sleeps;
  auto gateway = Gateway(sleeps);
  const stacks::ApplyResult created = MustApply(*gateway, Create(Desired("acme", 2)));
  CHECK(Int(SimStack(created.id), "UpdateDate") == 0);

  const stacks::DesiredStack d2 = Desired("acme", 2, "2.0");
  const stacks::ApplyResult updated =
      MustApply(*gateway, stacks::UpdateStack{created.id, d2, {"file", "env:TM_VERSION"}});
  CHECK(updated.detail == "updated");
  CHECK(updated.id == created.id);
  CHECK(updated.calls == 1);
  const json::object stack = SimStack(created.id);
  CHECK(stack.at("Env") == json::value(EnvJson(d2.env)));  // every variable, not only TM_VERSION
  CHECK(stack.at("StackFileContent") == json::value(d2.file));
  CHECK(Int(stack, "UpdateDate") > 0);  // moved
  CHECK(updated.update_date == Int(stack, "UpdateDate"));
  CHECK(Int(stack, "EndpointId") == 2);  // not re-pointed
  auto listed = gateway->List(2);
  REQUIRE(listed.ok());
  CHECK(listed->at(0).update_date == updated.update_date);
  CHECK(Plain(listed->at(0).env) == d2.env);

  const json::object last = State().at("requests").as_array().at(3).as_object();  // after probe,
  CHECK(last.at("method") == "PUT");                                               // list, POST
  CHECK(last.at("path") == json::value("/api/stacks/" + std::to_string(created.id)));
  CHECK(last.at("query") == "endpointId=2");
}

TEST_CASE("Start, stop, delete, and their already-converged answers") {
  Reset();
  Sleeps sleeps;
  auto gateway = Gateway(sleeps);
  const stacks::StackId id = MustApply(*gateway, Create(Desired("acme", 1))).id;
  const stacks::StopStack stop{id, 1, "tm-acme"};
  const stacks::StartStack start{id, 1, "tm-acme"};
  const stacks::DeleteStack remove{id, 1, "tm-acme"};

  CHECK(MustApply(*gateway, stop).detail == "stopped");
  CHECK(Int(SimStack(id), "Status") == 2);
  CHECK(SimStack(id).at("Running") == false);
  CHECK(MustApply(*gateway, stop).detail == "already inactive");  // Portainer's 400

  CHECK(MustApply(*gateway, start).detail == "started");
  CHECK(Int(SimStack(id), "Status") == 1);
  CHECK(SimStack(id).at("Running") == true);
  CHECK(MustApply(*gateway, start).detail == "already running");  // Portainer's 409

  const stacks::ApplyResult deleted = MustApply(*gateway, remove);
  CHECK(deleted.detail == "deleted");
  CHECK(deleted.calls == 1);
  CHECK(SimStacks().empty());
  CHECK(MustApply(*gateway, remove).detail == "already gone");  // Portainer's 404
  CHECK(sleeps.delays.empty());
  const stacks::CallCounts counts = gateway->Counts();
  CHECK(counts.start == 2);
  CHECK(counts.stop == 2);
  CHECK(counts.remove == 2);
}

TEST_CASE("a create whose answer times out after Portainer stored it: one stack, adopted") {
  Reset();
  Sleeps sleeps;
  stacks::PortainerOptions options = Options();
  options.read_timeout = 500ms;
  auto gateway = Gateway(sleeps, options);
  Knob("POST", "/__sim/faults",
       json::object{{"route", "POST /api/stacks/create/{type}/{method}"},
                    {"action", "timeout"},
                    {"delayMs", 2000}});
  const stacks::DesiredStack d = Desired("acme", 1);
  const auto started = std::chrono::steady_clock::now();
  const stacks::ApplyResult r = MustApply(*gateway, Create(d));
  CHECK(std::chrono::steady_clock::now() - started < 1900ms);
  CHECK(r.detail == "adopted");

  const json::array all = SimStacks();
  REQUIRE(all.size() == 1);
  CHECK(Int(all.at(0).as_object(), "Id") == r.id);
  CHECK(all.at(0).at("Env") == json::value(EnvJson(d.env)));
  const stacks::CallCounts counts = gateway->Counts();
  CHECK(counts.create == 1);  // never re-POSTed
  CHECK(counts.list == 2);    // before the POST, and again after the timeout
  CHECK(sleeps.delays.size() == 1);
}

TEST_CASE("listed_absent: the first POST relies on the caller's list; a retry lists first") {
  Reset();
  Sleeps sleeps;
  stacks::PortainerOptions options = Options();
  options.read_timeout = 500ms;
  auto gateway = Gateway(sleeps, options);
  const stacks::DesiredStack d = Desired("acme", 1);
  stacks::CreateStack create{d, /*listed_absent=*/true};

  SUBCASE("no fault: one POST, no list") {
    const stacks::ApplyResult r = MustApply(*gateway, create);
    CHECK(r.detail == "created");
    CHECK(gateway->Counts().list == 0);
    CHECK(gateway->Counts().create == 1);
    CHECK(SimStacks().size() == 1);
  }
  SUBCASE("the POST times out after Portainer stored it: the retry lists and adopts") {
    Knob("POST", "/__sim/faults",
         json::object{{"route", "POST /api/stacks/create/{type}/{method}"},
                      {"action", "timeout"},
                      {"delayMs", 2000}});
    const stacks::ApplyResult r = MustApply(*gateway, create);
    CHECK(r.detail == "adopted");
    CHECK(gateway->Counts().create == 1);  // never re-POSTed
    CHECK(gateway->Counts().list == 1);    // only after the timeout
    CHECK(SimStacks().size() == 1);
  }
}

TEST_CASE("500s on create and 503s on list back off with growing delays and recover") {
  Reset();
  Sleeps sleeps;
  auto gateway = Gateway(sleeps);
  Knob("POST", "/__sim/faults",
       json::object{
           {"route", "POST /api/stacks/create/{type}/{method}"}, {"action", "fail"}, {"times", 2}});
  const stacks::ApplyResult r = MustApply(*gateway, Create(Desired("acme", 1)));
  CHECK(r.detail == "created");
  CHECK(r.calls == 7);  // probe, then (list + POST) x 3: the kind is kept across attempts
  CHECK(SimStacks().size() == 1);
  CHECK(gateway->Counts().create == 3);
  REQUIRE(sleeps.delays.size() == 2);
  CHECK(sleeps.delays[0] >= 100ms);
  CHECK(sleeps.delays[0] <= 150ms);
  CHECK(sleeps.delays[1] >= 200ms);
  CHECK(sleeps.delays[1] <= 300ms);

  Knob("POST", "/__sim/faults",
       json::object{
           {"route", "GET /api/stacks"}, {"action", "fail"}, {"status", 503}, {"times", 2}});
  auto listed = gateway->List(1);
  REQUIRE(listed.ok());
  CHECK(listed->size() == 1);
  REQUIRE(sleeps.delays.size() == 4);
  CHECK(sleeps.delays[2] < sleeps.delays[3]);
  CHECK(gateway->Counts().retries == 4);
}

TEST_CASE("a deploy failing on every attempt: Transient StackDeployFailed, secrets scrubbed") {
  Reset();
  Sleeps sleeps;
  auto gateway = Gateway(sleeps);
  Knob("POST", "/__sim/faults",
       json::object{{"deployFailures", 10},
                    {"message", "interpolating DB_PASSWORD=" + kPassword +
                                    " DATABASE_URL=" + kDatabaseUrl + ": image not found"}});
  auto r = gateway->Apply(Create(Desired("acme", 1)));
  REQUIRE_FALSE(r.ok());
  const tmaster::Failure& f = r.failure();
  CHECK(f.kind == FailureKind::kTransient);
  CHECK(f.reason == "StackDeployFailed");
  CHECK(f.message.find("create stack \"tm-acme\" on endpoint 1") == 0);
  CHECK(f.message.find("failed to deploy a stack") != std::string::npos);
  CHECK(f.message.find("image not found") != std::string::npos);
  CHECK(f.message.find("<redacted>") != std::string::npos);
  CHECK(f.message.find("after 4 attempts") != std::string::npos);
  CheckNoSecrets(f.message);
  CHECK(SimStacks().empty());
  CHECK(gateway->Counts().create == 4);
  REQUIRE(sleeps.delays.size() == 3);
  CHECK(sleeps.delays[0] < sleeps.delays[1]);
  CHECK(sleeps.delays[1] < sleeps.delays[2]);
  Knob("DELETE", "/__sim/faults", json::object{}, 204);
}

TEST_CASE("an endpoint down fails its writes (Transient) while another endpoint works") {
  Reset();
  Sleeps sleeps;
  auto gateway = Gateway(sleeps);
  const stacks::StackId beta = MustApply(*gateway, Create(Desired("beta", 2))).id;
  Knob("POST", "/__sim/endpoints/2/down", json::object{});

  auto create = gateway->Apply(Create(Desired("gamma", 2)));
  REQUIRE_FALSE(create.ok());
  CHECK(create.failure().kind == FailureKind::kTransient);
  CHECK(create.failure().reason == "StackDeployFailed");
  CHECK(create.failure().message.find("\"tm-gamma\" on endpoint 2") != std::string::npos);
  CHECK(create.failure().message.find("Cannot connect to the Docker daemon") != std::string::npos);

  auto update = gateway->Apply(stacks::UpdateStack{beta, Desired("beta", 2, "2.0"), {"file"}});
  REQUIRE_FALSE(update.ok());
  CHECK(update.failure().kind == FailureKind::kTransient);
  CHECK(update.failure().message.find("(id " + std::to_string(beta) + ") on endpoint 2") !=
        std::string::npos);

  auto listed = gateway->List(2);  // Portainer's database still answers
  REQUIRE(listed.ok());
  CHECK(listed->size() == 1);

  CHECK(MustApply(*gateway, Create(Desired("acme", 1))).detail == "created");
  CHECK(SimStacks().size() == 2);
}

TEST_CASE("Portainer unreachable: Transient PortainerUnreachable after max_attempts") {
  Sleeps sleeps;
  stacks::PortainerOptions options = Options();
  options.url = "http://127.0.0.1:1";
  auto gateway = Gateway(sleeps, options);
  auto listed = gateway->List(1);
  REQUIRE_FALSE(listed.ok());
  CHECK(listed.failure().kind == FailureKind::kTransient);
  CHECK(listed.failure().reason == "PortainerUnreachable");
  CHECK(listed.failure().message.find("list stacks of endpoint 1") == 0);
  CHECK(sleeps.delays.size() == 3);
  CHECK(gateway->Counts().probe == 4);  // every attempt fails at the probe, before the list
  CHECK(gateway->Counts().list == 0);

  // HTTPS against a plain-HTTP port fails the handshake: transient, never a plain-text retry.
  Sleeps none;
  options.url = "https://127.0.0.1:" + std::to_string(Sim().port());
  options.max_attempts = 1;
  auto tls = Gateway(none, options)->List(1);
  REQUIRE_FALSE(tls.ok());
  CHECK(tls.failure().kind == FailureKind::kTransient);
  CHECK(none.delays.empty());
}

TEST_CASE("a foreign stored stack holding the name: Stalled StackConflict, nothing changed") {
  Reset();
  Sleeps sleeps;
  auto gateway = Gateway(sleeps);
  CreateDirectly("tm-acme", 1, json::array{json::object{{"name", "OWNER"}, {"value", "ops"}}});
  CreateDirectly("tm-beta", 1, EnvJson(Desired("other", 1).env));  // another workspace's marker
  const std::string before = json::serialize(SimStacks());

  auto r = gateway->Apply(Create(Desired("acme", 1)));
  REQUIRE_FALSE(r.ok());
  CHECK(r.failure().kind == FailureKind::kStalled);
  CHECK(r.failure().reason == "StackConflict");
  CHECK(r.failure().message.find("\"tm-acme\"") != std::string::npos);
  CHECK(r.failure().message.find("endpoint 1") != std::string::npos);
  CHECK(r.failure().message.find("without our TM_WORKSPACE marker") != std::string::npos);

  auto other = gateway->Apply(Create(Desired("beta", 1)));
  REQUIRE_FALSE(other.ok());
  CHECK(other.failure().reason == "StackConflict");
  CHECK(other.failure().message.find("marked for workspace \"other\"") != std::string::npos);

  CHECK(json::serialize(SimStacks()) == before);
  CHECK(gateway->Counts().Writes() == 0);
  CHECK(sleeps.delays.empty());
}

TEST_CASE("a 409 from a compose project Portainer did not create: Stalled StackConflict") {
  Reset();
  Sleeps sleeps;
  auto gateway = Gateway(sleeps);
  // Portainer's compose quirk: a foreign project blocks the name when some stored stack has it.
  CreateDirectly("tm-acme", 2, EnvJson(Desired("acme", 2).env));
  Knob("POST", "/__sim/foreign",
       json::object{{"endpointId", 1}, {"name", "tm-acme"}, {"kind", "compose"}}, 204);
  auto r = gateway->Apply(Create(Desired("acme", 1)));
  REQUIRE_FALSE(r.ok());
  CHECK(r.failure().kind == FailureKind::kStalled);
  CHECK(r.failure().reason == "StackConflict");
  CHECK(r.failure().message.find("409") != std::string::npos);
  CHECK(r.failure().message.find("compose project") != std::string::npos);
  CHECK(r.failure().message.find("endpoint 1") != std::string::npos);
  CHECK(SimStacks().size() == 1);
  CHECK(gateway->Counts().create == 1);
}

TEST_CASE("a 409 because our own stack appeared meanwhile: re-listed and adopted") {
  Reset();
  Sleeps sleeps;
  auto gateway = Gateway(sleeps);
  // The gateway's POST is held in the simulator (the delay comes before the name check) while
  // someone else creates the stack. The delay only has to outlast that create: a machine too
  // slow for it fails the call log below, it cannot pass by luck.
  Knob("POST", "/__sim/faults",
       json::object{{"route", kCreateRoute}, {"action", "delay"}, {"delayMs", 1500}});
  const stacks::DesiredStack d = Desired("acme", 1);
  auto pending = std::async(std::launch::async, [&] { return gateway->Apply(Create(d)); });
  // Counted on arrival: the gateway listed (nothing) and its POST is now held.
  REQUIRE(tmaster::testing::Eventually([] { return RouteCount(kCreateRoute) == 1; }, 10s));
  const int id = CreateDirectly("tm-acme", 1, EnvJson(Desired("acme", 1, "0.9").env));
  auto r = pending.get();
  REQUIRE_MESSAGE(r.ok(), r.failure().message);
  CHECK(r->id == id);
  CHECK(r->detail == "adopted, updated");
  REQUIRE(SimStacks().size() == 1);
  CHECK(SimStack(id).at("Env") == json::value(EnvJson(d.env)));
  CHECK(SimStack(id).at("StackFileContent") == json::value(d.file));

  // The calls that prove the 409 path ran, in the order the simulator took them: the list that
  // found nothing, the held POST answered 409 (the other create, taken meanwhile, got 200), a
  // re-list that found our stack, and the update that adopted it. Never a second POST.
  CHECK(
      Calls() ==
      "GET /api/endpoints/{id}/docker/{rest*} 503; "
      "GET /api/stacks 200; POST /api/stacks/create/{type}/{method} 409 delay; "
      "POST /api/stacks/create/{type}/{method} 200; GET /api/stacks 200; PUT /api/stacks/{id} 200");
  const stacks::CallCounts counts = gateway->Counts();
  CHECK(counts.create == 1);
  CHECK(counts.list == 2);
  CHECK(counts.update == 1);
}

TEST_CASE("bad or missing API key: Stalled PortainerUnauthorized, the key in no message") {
  Reset();
  const std::string bad_key = "ptr_bm90LXRoZS1yaWdodC1rZXktYXQtYWxsLXNvcnJ5LTAxMjM0NTY=";
  Sleeps sleeps;
  auto gateway = Gateway(sleeps, Options(bad_key));
  auto listed = gateway->List(1);
  REQUIRE_FALSE(listed.ok());
  CHECK(listed.failure().kind == FailureKind::kStalled);
  CHECK(listed.failure().reason == "PortainerUnauthorized");
  CHECK(listed.failure().message.find("401 Invalid JWT token") != std::string::npos);
  CHECK(listed.failure().message.find(bad_key) == std::string::npos);

  auto created = gateway->Apply(Create(Desired("acme", 1)));
  REQUIRE_FALSE(created.ok());
  CHECK(created.failure().reason == "PortainerUnauthorized");
  CHECK(created.failure().message.find(bad_key) == std::string::npos);
  CheckNoSecrets(created.failure().message);
  CHECK(gateway->Counts().create == 0);  // stalled at the list, nothing POSTed
  CHECK(sleeps.delays.empty());
  CHECK(SimStacks().empty());

  auto keyless = Gateway(sleeps, Options(""));
  auto none = keyless->List(1);
  REQUIRE_FALSE(none.ok());
  CHECK(none.failure().reason == "PortainerUnauthorized");
  CHECK(keyless->Counts().Total() == 0);

  // Even when Portainer (or a proxy) echoes the key, it is scrubbed.
  auto good = Gateway(sleeps);
  Knob("POST", "/__sim/faults",
       json::object{{"route", "GET /api/stacks"},
                    {"action", "fail"},
                    {"status", 400},
                    {"message", "rejected key " + kApiKey}});
  auto echoed = good->List(1);
  REQUIRE_FALSE(echoed.ok());
  CHECK(echoed.failure().reason == "PortainerBadRequest");
  CHECK(echoed.failure().message.find("rejected key <redacted>") != std::string::npos);
  CheckNoSecrets(echoed.failure().message);
}

TEST_CASE("configuration errors stall without a call, and never echo the URL's credentials") {
  Sleeps sleeps;
  stacks::PortainerOptions options = Options();
  options.url = "http://admin:hunter2@127.0.0.1:9000";
  auto gateway = Gateway(sleeps, options);
  auto r = gateway->Apply(stacks::StartStack{1, 1, "tm-acme"});
  REQUIRE_FALSE(r.ok());
  CHECK(r.failure().kind == FailureKind::kStalled);
  CHECK(r.failure().reason == "PortainerConfigInvalid");
  CHECK(r.failure().message.find("hunter2") == std::string::npos);
  CHECK(r.failure().message.find("start stack \"tm-acme\" (id 1) on endpoint 1") == 0);
  CHECK(gateway->Counts().Total() == 0);
}

TEST_CASE("request log: X-API-Key on every call, endpointId of the stack on every write") {
  Reset();
  Sleeps sleeps;
  auto gateway = Gateway(sleeps);
  std::map<stacks::StackId, int> endpoint_of;
  const auto create = [&](const stacks::DesiredStack& d) {
    const stacks::StackId id = MustApply(*gateway, Create(d)).id;
    endpoint_of[id] = d.endpoint;
    return id;
  };
  const stacks::StackId a = create(Desired("acme", 1));
  const stacks::StackId b = create(Desired("beta", 2));
  const stacks::StackId c = create(Desired("gamma", 2, "1.0", false));
  MustApply(*gateway, stacks::UpdateStack{b, Desired("beta", 2, "2.0"), {"env:TM_VERSION"}});
  MustApply(*gateway, stacks::StopStack{a, 1, "tm-acme"});
  MustApply(*gateway, stacks::StartStack{a, 1, "tm-acme"});
  MustApply(*gateway, stacks::DeleteStack{b, 2, "tm-beta"});
  MustApply(*gateway, stacks::DeleteStack{b, 2, "tm-beta"});
  MustApply(*gateway, stacks::DeleteStack{a, 1, "tm-acme"});
  CHECK(Int(SimStack(c), "Status") == 2);
  CHECK(MustApply(*gateway, Create(Desired("gamma", 2))).detail == "adopted, started");
  CHECK(Int(SimStack(c), "Status") == 1);

  const json::array log = State().at("requests").as_array();
  CHECK(static_cast<std::int64_t>(log.size()) == gateway->Counts().Total());
  std::vector<std::int64_t> create_endpoints;
  int writes = 0;
  for (const auto& item : log) {
    const json::object& entry = item.as_object();
    const std::string method(entry.at("method").as_string());
    const std::string path(entry.at("path").as_string());
    const std::string query(entry.at("query").as_string());
    CHECK_MESSAGE(entry.at("auth") == "apikey", method << " " << path);  // never Authorization
    // Docker's 503 "not a swarm manager" is how a standalone engine answers the probe.
    const bool probe = path.size() > 13 && path.substr(path.size() - 13) == "/docker/swarm";
    const int status = entry.at("status").to_number<int>();
    if (probe) {
      CHECK(status == 503);
    } else {
      CHECK(status < 500);
    }
    if (method == "GET") continue;
    ++writes;
    if (path == "/api/stacks/create/standalone/string") {
      create_endpoints.push_back(std::stoll(query.substr(query.find('=') + 1)));
      CHECK(query.rfind("endpointId=", 0) == 0);
      continue;
    }
    const std::string rest = path.substr(std::string("/api/stacks/").size());
    const int id = std::stoi(rest.substr(0, rest.find('/')));
    REQUIRE(endpoint_of.count(id) == 1);
    CHECK_MESSAGE(query == "endpointId=" + std::to_string(endpoint_of[id]), method << " " << path);
  }
  CHECK(create_endpoints == std::vector<std::int64_t>{1, 2, 2});
  CHECK(writes == gateway->Counts().Writes());
  CHECK(writes == 11);  // 3 creates + the stop of the suspended one, PUT, stop, start, 3 deletes,
                        // the start of the adopted one
}

namespace {

/// A self-signed certificate for 127.0.0.1 and its key, as PEM files in a fresh folder.
struct TlsFiles {
  tmaster::testing::TempDir dir;
  std::string cert;
  std::string key;

  TlsFiles() {
    cert = (dir.path() / "cert.pem").string();
    key = (dir.path() / "key.pem").string();
    EVP_PKEY* pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    REQUIRE(pkey != nullptr);
    X509* x509 = X509_new();
    X509_set_version(x509, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x509), 1);
    X509_gmtime_adj(X509_getm_notBefore(x509), -60);
    X509_gmtime_adj(X509_getm_notAfter(x509), 3600);
    X509_set_pubkey(x509, pkey);
    X509_NAME* name = X509_get_subject_name(x509);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>("portainer.test"), -1, -1, 0);
    X509_set_issuer_name(x509, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x509, x509, nullptr, nullptr, 0);
    for (const auto& [nid, value] : {std::pair{NID_subject_alt_name, "IP:127.0.0.1"},
                                     std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
      REQUIRE(ext != nullptr);
      X509_add_ext(x509, ext, -1);
      X509_EXTENSION_free(ext);
    }
    REQUIRE(X509_sign(x509, pkey, EVP_sha256()) > 0);
    BIO* cert_out = BIO_new_file(cert.c_str(), "w");
    BIO* key_out = BIO_new_file(key.c_str(), "w");
    REQUIRE((cert_out != nullptr && key_out != nullptr));
    PEM_write_bio_X509(cert_out, x509);
    PEM_write_bio_PrivateKey(key_out, pkey, nullptr, nullptr, 0, nullptr, nullptr);
    BIO_free(cert_out);
    BIO_free(key_out);
    X509_free(x509);
    EVP_PKEY_free(pkey);
  }
};

}  // namespace

TEST_CASE(
    "HTTPS: the certificate is verified (CA bundle or skip), the key goes only in X-API-Key") {
  TlsFiles tls;
  httplib::SSLServer server(tls.cert.c_str(), tls.key.c_str());
  REQUIRE(server.is_valid());
  std::mutex mutex;
  std::vector<std::string> seen;  // "<X-API-Key>|<Authorization>|<Cookie>" per request
  server.Get("/api/stacks", [&](const httplib::Request& req, httplib::Response& res) {
    const std::lock_guard lock(mutex);
    seen.push_back(req.get_header_value("X-API-Key") + "|" + req.get_header_value("Authorization") +
                   "|" + req.get_header_value("Cookie"));
    res.set_content("[]", "application/json");
  });
  server.Get("/api/endpoints/1/docker/swarm", [&](const httplib::Request& req,
                                                  httplib::Response& res) {
    const std::lock_guard lock(mutex);
    seen.push_back(req.get_header_value("X-API-Key") + "|" + req.get_header_value("Authorization") +
                   "|" + req.get_header_value("Cookie"));
    res.status = 503;
    res.set_content(kNotSwarmManager, "application/json");
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  REQUIRE(port > 0);
  std::thread serving([&] { server.listen_after_bind(); });

  stacks::PortainerOptions options = Options();
  options.url = "https://127.0.0.1:" + std::to_string(port) + "/";
  options.max_attempts = 1;
  Sleeps sleeps;

  auto unverified = Gateway(sleeps, options)->List(1);  // self-signed, system CAs only
  REQUIRE_FALSE(unverified.ok());
  CHECK(unverified.failure().kind == FailureKind::kStalled);
  CHECK(unverified.failure().reason == "PortainerTlsFailed");

  options.ca_cert_file = tls.cert;
  auto trusted = Gateway(sleeps, options)->List(1);
  CHECK_MESSAGE(trusted.ok(), (trusted.ok() ? "" : trusted.failure().message));

  options.ca_cert_file.clear();
  options.insecure_skip_verify = true;
  auto skipped = Gateway(sleeps, options)->List(1);
  CHECK_MESSAGE(skipped.ok(), (skipped.ok() ? "" : skipped.failure().message));

  server.stop();
  serving.join();
  const std::lock_guard lock(mutex);
  REQUIRE(seen.size() == 4);  // probe and list twice; the unverified attempt sent nothing
  for (const auto& headers : seen) CHECK(headers == kApiKey + "||");
}

// --- a hostile Portainer: a fake server in this process (issue 9) ---

namespace {

// An httplib server on 127.0.0.1 serving `routes` until the end of the scope.
class FakePortainer {
 public:
  /// Endpoint 1 is a standalone engine (the gateway's probe); `routes` add the rest.
  explicit FakePortainer(const std::function<void(httplib::Server&)>& routes) {
    server_.Get("/api/endpoints/1/docker/swarm", [](const httplib::Request&,
                                                    httplib::Response& res) {
      res.status = 503;
      res.set_content(kNotSwarmManager, "application/json");
    });
    routes(server_);
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    serving_ = std::thread([this] { server_.listen_after_bind(); });
  }
  FakePortainer(const FakePortainer&) = delete;
  FakePortainer& operator=(const FakePortainer&) = delete;
  ~FakePortainer() {
    stopping_ = true;
    server_.stop();
    serving_.join();
  }
  [[nodiscard]] std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] bool Stopping() const { return stopping_; }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread serving_;
};

stacks::PortainerOptions FakeOptions(const FakePortainer& fake) {
  stacks::PortainerOptions options = Options();
  options.url = fake.Url();
  options.max_attempts = 1;
  return options;
}

constexpr std::size_t kChunk = 64 * 1024;
constexpr std::size_t kHundredMb = std::size_t{100} << 20;

}  // namespace

TEST_CASE("a 100 MB answer is cut off at max_response_bytes, with or without Content-Length") {
  std::atomic<std::size_t> sent{0};
  FakePortainer fake([&](httplib::Server& server) {
    const auto provider = [&](std::size_t offset, std::size_t, httplib::DataSink& sink) {
      const std::string chunk(kChunk, ' ');
      if (offset >= kHundredMb) {
        sink.done();
        return true;
      }
      sent += kChunk;
      return sink.write(chunk.data(), chunk.size());
    };
    // (The handlers outlive this function: they hold their own copy of `provider`.)
    server.Get("/api/stacks", [provider](const httplib::Request&, httplib::Response& res) {
      res.set_content_provider(kHundredMb, "application/json", provider);  // Content-Length
    });
    server.Get("/api/stacks/7/file", [provider](const httplib::Request&, httplib::Response& res) {
      res.set_chunked_content_provider("application/json", [provider](std::size_t offset,
                                                                      httplib::DataSink& sink) {
        return provider(offset, 0, sink);
      });
    });
  });
  Sleeps sleeps;
  auto gateway = Gateway(sleeps, FakeOptions(fake));

  SUBCASE("declared in Content-Length: refused before the body") {
    auto listed = gateway->List(1);
    REQUIRE_FALSE(listed.ok());
    CHECK(listed.failure().kind == FailureKind::kTransient);
    CHECK(listed.failure().reason == "PortainerResponseTooLarge");
    CHECK(listed.failure().message.find("larger than 16777216 bytes (max_response_bytes); it "
                                        "was cut off") != std::string::npos);
  }
  SUBCASE("chunked: cut off once 16 MiB have arrived") {
    stacks::ObservedStack stack;
    stack.id = 7;
    stack.endpoint = 1;
    stack.name = "tm-acme";
    auto file = gateway->File(stack);
    REQUIRE_FALSE(file.ok());
    CHECK(file.failure().reason == "PortainerResponseTooLarge");
    CHECK(gateway->Counts().file == 1);  // not fetched again
  }
  CHECK(sent.load() < std::size_t{40} << 20);  // far from the 100 MB (socket buffers aside)
}

TEST_CASE("an answer that never finishes is cut off at call_deadline, not only per read") {
  FakePortainer fake([&](httplib::Server& server) {
    server.Get("/api/stacks", [&](const httplib::Request&, httplib::Response& res) {
      // One byte every 100 ms, forever: every read succeeds well within read_timeout.
      res.set_chunked_content_provider("application/json",
                                       [&](std::size_t, httplib::DataSink& sink) {
                                         std::this_thread::sleep_for(100ms);
                                         return !fake.Stopping() && sink.write(" ", 1);
                                       });
    });
    server.Get("/api/stacks/7/file", [&](const httplib::Request&, httplib::Response& res) {
      // No answer for 3 s, not even a status line.
      res.set_content("{}", "application/json");
      for (int i = 0; i < 30 && !fake.Stopping(); ++i) std::this_thread::sleep_for(100ms);
    });
  });
  Sleeps sleeps;
  stacks::PortainerOptions options = FakeOptions(fake);
  options.read_timeout = 5s;
  options.call_deadline = 1s;
  auto gateway = Gateway(sleeps, options);

  const auto started = std::chrono::steady_clock::now();
  auto listed = gateway->List(1);
  const auto elapsed = std::chrono::steady_clock::now() - started;
  REQUIRE_FALSE(listed.ok());
  CHECK(listed.failure().kind == FailureKind::kTransient);
  CHECK(listed.failure().reason == "PortainerTimeout");
  CHECK(listed.failure().message.find("within the call deadline of 1000 ms") != std::string::npos);
  CHECK(elapsed >= 1s);
  CHECK(elapsed < 2500ms);

  // A handler that takes 3 s before answering at all: the read waits, the deadline does not.
  stacks::ObservedStack stack;
  stack.id = 7;
  stack.endpoint = 1;
  stack.name = "tm-acme";
  const auto file_started = std::chrono::steady_clock::now();
  auto file = gateway->File(stack);
  REQUIRE_FALSE(file.ok());
  CHECK(file.failure().reason == "PortainerTimeout");
  CHECK(std::chrono::steady_clock::now() - file_started < 2500ms);
}

TEST_CASE("a stack id above 2^31 round-trips through List, File and the writes") {
  constexpr std::int64_t kBigId = (std::int64_t{1} << 33) + 5;  // 8589934597
  const std::string id = std::to_string(kBigId);
  const std::string stack_json = R"({"Id":)" + id +
                                 R"(,"Name":"tm-acme","EndpointId":1,"Type":2,"Status":2,)"
                                 R"("UpdateDate":1700000000,"Env":[{"name":"TM_WORKSPACE",)"
                                 R"("value":"acme"}]})";
  std::mutex mutex;
  std::vector<std::string> paths;
  FakePortainer fake([&](httplib::Server& server) {
    server.set_pre_routing_handler([&](const httplib::Request& req, httplib::Response&) {
      const std::lock_guard lock(mutex);
      paths.push_back(req.method + " " + req.path);
      return httplib::Server::HandlerResponse::Unhandled;
    });
    server.Get("/api/stacks", [&](const httplib::Request&, httplib::Response& res) {
      res.set_content("[" + stack_json + "]", "application/json");
    });
    server.Get("/api/stacks/" + id + "/file", [&](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"StackFileContent":"services: {}\n"})", "application/json");
    });
    server.Post("/api/stacks/" + id + "/start",
                [&](const httplib::Request&, httplib::Response& res) {
                  res.set_content(stack_json, "application/json");
                });
  });
  Sleeps sleeps;
  auto gateway = Gateway(sleeps, FakeOptions(fake));

  auto listed = gateway->List(1);
  REQUIRE_MESSAGE(listed.ok(), (listed.ok() ? "" : listed.failure().message));
  REQUIRE(listed->size() == 1);
  CHECK(listed->front().id == kBigId);
  auto file = gateway->File(listed->front());
  CHECK_MESSAGE(file.ok(), (file.ok() ? "" : file.failure().message));
  auto started = gateway->Apply(stacks::StartStack{kBigId, 1, "tm-acme"});
  REQUIRE_MESSAGE(started.ok(), (started.ok() ? "" : started.failure().message));
  CHECK(started->id == kBigId);
  const std::lock_guard lock(mutex);
  CHECK(std::find(paths.begin(), paths.end(), "GET /api/stacks/" + id + "/file") != paths.end());
  CHECK(std::find(paths.begin(), paths.end(), "POST /api/stacks/" + id + "/start") !=
        paths.end());
}

// Issue 17: the product's shared runtime through this adapter, the scenario the directory backend
// also runs (tests/e2e/shared_runtime_itest.cpp).
TEST_CASE("shared runtime tm-shared-erp: created, unchanged, updated, removed") {
  Reset();
  Sleeps sleeps;
  const auto gateway = Gateway(sleeps);
  tmaster::testing::SharedRuntimeLifecycle(*gateway);
  CHECK(SimStacks().empty());
}

// --- issue 10: swarm and standalone endpoints in one fleet ---

namespace {

constexpr const char* kCluster = "swarm-cluster-3";

/// Environment `id` as a swarm manager of `cluster` (an agent endpoint, as Portainer's swarm
/// install adds it), or a standalone engine with an empty `cluster`.
void AddEndpoint(int id, const std::string& cluster) {
  json::object body{{"Id", id}, {"Name", "env-" + std::to_string(id)}, {"Type", 2}};
  if (!cluster.empty()) body["SwarmId"] = cluster;
  body["URL"] = cluster.empty() ? "tcp://10.0.0." + std::to_string(id) + ":9001"
                                : std::string("tcp://tasks.agent:9001");
  Knob("POST", "/__sim/endpoints", body);
}

/// The same environment id, now another kind of engine (its stacks stay in Portainer's store).
void ReplaceEndpoint(int id, const std::string& cluster) {
  Knob("DELETE", "/__sim/endpoints/" + std::to_string(id), json::object{}, 204);
  AddEndpoint(id, cluster);
}

struct Request {
  std::string method, path, query;
  int status = 0;
};

/// The simulator's request log since the last reset, in arrival order.
std::vector<Request> Log() {
  const json::object state = State();
  std::vector<std::pair<std::int64_t, Request>> numbered;
  for (const json::value& entry : state.at("requests").as_array()) {
    const json::object& e = entry.as_object();
    numbered.emplace_back(e.at("seq").to_number<std::int64_t>(),
                          Request{std::string(e.at("method").as_string()),
                                  std::string(e.at("path").as_string()),
                                  std::string(e.at("query").as_string()),
                                  e.at("status").to_number<int>()});
  }
  std::sort(numbered.begin(), numbered.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Request> out;
  for (auto& [seq, request] : numbered) out.push_back(std::move(request));
  return out;
}

std::string ListQuery(const std::string& filters) {
  return "filters=" + tmaster::PercentEncode(filters);
}

}  // namespace

TEST_CASE("swarm and standalone in one fleet: probe, SwarmID list, swarm create, every write") {
  Reset();
  AddEndpoint(3, kCluster);
  Sleeps sleeps;
  auto gateway = Gateway(sleeps);
  const stacks::DesiredStack acme = Desired("acme", 1);
  const stacks::DesiredStack web = Desired("web", 3);

  const stacks::ApplyResult a = MustApply(*gateway, Create(acme));
  const stacks::ApplyResult w = MustApply(*gateway, Create(web));
  CHECK(a.detail == "created");
  CHECK(w.detail == "created");
  CHECK(w.calls == 3);  // probe, list, POST

  // Portainer stored a compose stack on 1 and a swarm stack of the cluster on 3.
  const json::object compose = SimStack(a.id);
  CHECK(Int(compose, "Type") == 2);
  CHECK(compose.at("SwarmId") == "");
  const json::object swarm = SimStack(w.id);
  CHECK(Int(swarm, "Type") == 1);
  CHECK(swarm.at("SwarmId") == kCluster);
  CHECK(Int(swarm, "EndpointId") == 3);
  CHECK(swarm.at("Env") == json::value(EnvJson(web.env)));
  CHECK(swarm.at("StackFileContent") == json::value(web.file));
  CHECK(swarm.at("Running") == true);

  // The routes: Docker's answer decided each endpoint's kind; the swarm list carried the cluster.
  std::vector<std::string> seen;
  for (const Request& r : Log()) {
    seen.push_back(r.method + " " + r.path + "?" + r.query + " " + std::to_string(r.status));
  }
  const std::vector<std::string> expected = {
      "GET /api/endpoints/1/docker/swarm? 503",
      "GET /api/stacks?" + ListQuery(R"({"EndpointID":1})") + " 200",
      "POST /api/stacks/create/standalone/string?endpointId=1 200",
      "GET /api/endpoints/3/docker/swarm? 200",
      "GET /api/stacks?" + ListQuery(R"({"EndpointID":3,"SwarmID":"swarm-cluster-3"})") + " 200",
      "POST /api/stacks/create/swarm/string?endpointId=3 200"};
  CHECK(seen == expected);

  // Listing each endpoint shows its own stack, with Portainer's type.
  auto on3 = gateway->List(3);
  REQUIRE(on3.ok());
  REQUIRE(on3->size() == 1);
  CHECK(on3->at(0).id == w.id);
  CHECK(on3->at(0).type == 1);
  CHECK(on3->at(0).endpoint == 3);
  CHECK(on3->at(0).workspace == "web");
  CHECK(on3->at(0).update_date == w.update_date);
  auto on1 = gateway->List(1);
  REQUIRE(on1.ok());
  REQUIRE(on1->size() == 1);
  CHECK(on1->at(0).id == a.id);
  CHECK(on1->at(0).type == 2);

  // Update on both kinds: the whole file and Env, endpointId of the stack.
  const stacks::DesiredStack web2 = Desired("web", 3, "2.0");
  const stacks::DesiredStack acme2 = Desired("acme", 1, "2.0");
  CHECK(MustApply(*gateway, stacks::UpdateStack{w.id, web2, {"file"}}).detail == "updated");
  CHECK(MustApply(*gateway, stacks::UpdateStack{a.id, acme2, {"file"}}).detail == "updated");
  CHECK(SimStack(w.id).at("StackFileContent") == json::value(web2.file));
  CHECK(SimStack(w.id).at("Env") == json::value(EnvJson(web2.env)));
  CHECK(Int(SimStack(w.id), "EndpointId") == 3);
  CHECK(Int(SimStack(w.id), "UpdateDate") > 0);
  CHECK(SimStack(a.id).at("StackFileContent") == json::value(acme2.file));

  // Stop, start and delete the swarm stack, and their already-converged answers.
  const stacks::StopStack stop{w.id, 3, "tm-web"};
  const stacks::StartStack start{w.id, 3, "tm-web"};
  const stacks::DeleteStack remove{w.id, 3, "tm-web"};
  CHECK(MustApply(*gateway, stop).detail == "stopped");
  CHECK(Int(SimStack(w.id), "Status") == 2);
  CHECK(SimStack(w.id).at("Running") == false);
  CHECK(MustApply(*gateway, stop).detail == "already inactive");
  CHECK(MustApply(*gateway, start).detail == "started");
  CHECK(Int(SimStack(w.id), "Status") == 1);
  CHECK(SimStack(w.id).at("Running") == true);
  CHECK(MustApply(*gateway, start).detail == "already running");  // its services exist: 409
  CHECK(MustApply(*gateway, remove).detail == "deleted");
  CHECK(MustApply(*gateway, remove).detail == "already gone");
  REQUIRE(SimStacks().size() == 1);
  CHECK(Int(SimStacks().at(0).as_object(), "Id") == a.id);

  // Every write named the stack's own endpoint; the kind was probed once per endpoint.
  for (const Request& r : Log()) {
    if (r.method == "GET" || r.path.rfind("/api/stacks/create/", 0) == 0) continue;
    const bool swarm_stack = r.path.find("/" + std::to_string(w.id)) != std::string::npos;
    CHECK_MESSAGE(r.query == (swarm_stack ? "endpointId=3" : "endpointId=1"),
                  r.method << " " << r.path);
  }
  const stacks::CallCounts counts = gateway->Counts();
  CHECK(counts.probe == 2);
  CHECK(counts.create == 2);
  CHECK(counts.update == 2);
  CHECK(sleeps.delays.empty());
}

// Issue 10: a product's shared runtime on a swarm manager. Its template reads Portainer's
// `stack.env`, which a swarm deploy does not have (the simulator fails it as the CLI does): the
// rendered file carries the Env as `${NAME}` references instead, and Traefik's swarm provider is
// told to ignore the service. Created, unchanged on the next pass, updated on a template change.
TEST_CASE("swarm: a product's shared runtime deploys, stays unchanged, and updates") {
  Reset();
  AddEndpoint(3, kCluster);
  Sleeps sleeps;
  auto gateway = Gateway(sleeps);
  tmaster::testing::TempDir dir;
  for (auto [path, text] : tmaster::testing::ExampleProductFiles()) {
    if (path == "products.yaml") {
      const std::string from = "    stackTemplate: stacks/erp-shared.yml\n    endpoint: 1\n";
      const std::size_t at = text.find(from);
      REQUIRE(at != std::string::npos);
      text.replace(at, from.size(), "    stackTemplate: stacks/erp-shared.yml\n    endpoint: 3\n");
    }
    dir.Write("fleet/" + path, text);
  }
  const auto write_template = [&](const std::string& restart) {
    dir.Write("fleet/stacks/erp-shared.yml",
              "services:\n  app:\n    image: tenant-master/example-runtime:local\n"
              "    env_file: stack.env\n    restart: " + restart + "\n"
              "    command: [example-runtime, --bindings, /bindings, --listen, "
              "\"0.0.0.0:${TM_PORT}\"]\n");
  };
  write_template("unless-stopped");
  const std::filesystem::path bindings = dir.path() / "bindings";
  std::filesystem::create_directories(bindings / "erp");
  tmaster::manifests::Config config;
  config.stacks.edge_network = "edge";
  config.stacks.cert_resolver = "le";
  config.bindings = tmaster::manifests::BindingsConfig{bindings, ""};
  stacks::StackLedger ledger;
  tmaster::controller::StacksContext context;
  context.gateway = gateway.get();
  context.ledger = &ledger;
  context.config = &config;
  const auto run = [&] {
    const tmaster::manifests::Fleet fleet = tmaster::manifests::LoadPaths({dir.path() / "fleet"}, {});
    for (const auto& d : fleet.diagnostics) FAIL_CHECK(d.Format());
    return tmaster::controller::ConvergeSharedRuntimes(fleet.products, context, {});
  };

  const tmaster::controller::SharedRuntimeReport first = run();
  INFO(tmaster::testing::RuntimeReport(first) << "\nsimulator: " << Calls());
  REQUIRE(first.runtimes.size() == 1);
  CHECK(first.runtimes[0].ready);
  CHECK(first.runtimes[0].applied_kinds == std::vector<std::string>{"CreateStack"});
  REQUIRE(SimStacks().size() == 1);
  const json::object stack = SimStacks().at(0).as_object();
  CHECK(stack.at("Name") == "tm-shared-erp");
  CHECK(Int(stack, "Type") == 1);  // a swarm stack of the cluster
  CHECK(stack.at("SwarmId") == kCluster);
  CHECK(stack.at("Running") == true);
  const std::string file(stack.at("StackFileContent").as_string());
  INFO(file);
  CHECK(file.find("stack.env") == std::string::npos);
  CHECK(file.find("TM_PRODUCT: \"${TM_PRODUCT}\"") != std::string::npos);
  CHECK(file.find("    deploy:\n      labels:\n        traefik.enable: \"false\"\n") !=
        std::string::npos);

  const tmaster::controller::SharedRuntimeReport second = run();
  CHECK(second.runtimes[0].ready);
  CHECK(second.runtimes[0].applied.empty());

  write_template("always");
  const tmaster::controller::SharedRuntimeReport updated = run();
  INFO(tmaster::testing::RuntimeReport(updated));
  CHECK(updated.runtimes[0].ready);
  CHECK(updated.runtimes[0].applied_kinds == std::vector<std::string>{"UpdateStack"});
  REQUIRE(SimStacks().size() == 1);
  CHECK(std::string(SimStacks().at(0).at("StackFileContent").as_string()).find("restart: always") !=
        std::string::npos);
}

TEST_CASE("swarm: a second manager of the same cluster lists only its own stacks") {
  Reset();
  AddEndpoint(3, kCluster);
  AddEndpoint(4, kCluster);
  Sleeps sleeps;
  auto gateway = Gateway(sleeps);
  const stacks::StackId on3 = MustApply(*gateway, Create(Desired("web", 3))).id;
  const stacks::StackId on4 = MustApply(*gateway, Create(Desired("shop", 4))).id;
  // Portainer answers both lists with both stacks (SwarmID matches); each endpoint keeps its own.
  const Reply both =
      Api("GET", "/api/stacks?" + ListQuery(R"({"EndpointID":4,"SwarmID":"swarm-cluster-3"})"));
  REQUIRE(both.status == 200);
  CHECK(both.Json().as_array().size() == 2);
  auto listed3 = gateway->List(3);
  auto listed4 = gateway->List(4);
  REQUIRE(listed3.ok());
  REQUIRE(listed4.ok());
  REQUIRE(listed3->size() == 1);
  REQUIRE(listed4->size() == 1);
  CHECK(listed3->at(0).id == on3);
  CHECK(listed4->at(0).id == on4);
}

TEST_CASE("swarm: a create that times out after Portainer stored it is adopted via SwarmID") {
  Reset();
  AddEndpoint(3, kCluster);
  Sleeps sleeps;
  stacks::PortainerOptions options = Options();
  options.read_timeout = 500ms;
  auto gateway = Gateway(sleeps, options);
  Knob("POST", "/__sim/faults",
       json::object{{"route", kCreateRoute}, {"action", "timeout"}, {"delayMs", 2000}});
  const stacks::ApplyResult r = MustApply(*gateway, Create(Desired("web", 3)));
  // Only a list carrying the SwarmID shows the stored swarm stack: without it the re-list would
  // find nothing, POST again and end in a 409 conflict.
  CHECK(r.detail == "adopted");
  REQUIRE(SimStacks().size() == 1);
  CHECK(Int(SimStack(r.id), "Type") == 1);
  CHECK(gateway->Counts().create == 1);
  CHECK(gateway->Counts().list == 2);
}

TEST_CASE("swarm: services Portainer did not create hold the name: Stalled StackConflict") {
  Reset();
  AddEndpoint(3, kCluster);
  Sleeps sleeps;
  auto gateway = Gateway(sleeps);
  Knob("POST", "/__sim/foreign",
       json::object{{"endpointId", 3}, {"name", "tm-web"}, {"kind", "swarm"}}, 204);
  auto r = gateway->Apply(Create(Desired("web", 3)));
  REQUIRE_FALSE(r.ok());
  CHECK(r.failure().kind == FailureKind::kStalled);
  CHECK(r.failure().reason == "StackConflict");
  CHECK(r.failure().message.find("create stack \"tm-web\" on endpoint 3: Portainer answered 409") ==
        0);
  CHECK(r.failure().message.find("swarm services (com.docker.stack.namespace)") !=
        std::string::npos);
  CheckNoSecrets(r.failure().message);
  CHECK(SimStacks().empty());
  CHECK(gateway->Counts().create == 1);
}

TEST_CASE("the endpoint kind: kept, expired by endpoint_kind_ttl, forgotten on a failure") {
  Reset();
  AddEndpoint(3, "");
  Sleeps sleeps;
  const auto options_once = [] {
    stacks::PortainerOptions o = Options();
    o.max_attempts = 1;
    return o;
  };
  stacks::PortainerOptions options = options_once();
  auto kept = Gateway(sleeps, options);
  options.endpoint_kind_ttl = 0ms;
  auto probing = Gateway(sleeps, options);
  REQUIRE(kept->List(3).ok());
  REQUIRE(probing->List(3).ok());
  const std::string standalone = ListQuery(R"({"EndpointID":3})");
  CHECK(Log().back().query == standalone);

  SUBCASE("standalone, then a swarm manager: seen once the kind expires") {
    const stacks::StackId old = MustApply(*kept, Create(Desired("old", 3))).id;  // compose
    ReplaceEndpoint(3, kCluster);
    REQUIRE(kept->List(3).ok());
    CHECK(kept->Counts().probe == 1);  // nothing failed, the kind is still kept
    CHECK(Log().back().query == standalone);

    auto listed = probing->List(3);
    REQUIRE(listed.ok());
    CHECK(probing->Counts().probe == 2);
    CHECK(Log().back().query == ListQuery(R"({"EndpointID":3,"SwarmID":"swarm-cluster-3"})"));
    // The compose stack it ran before is still listed (and managed); new stacks are swarm ones.
    REQUIRE(listed->size() == 1);
    CHECK(listed->at(0).id == old);
    CHECK(listed->at(0).type == 2);
    const stacks::StackId fresh = MustApply(*probing, Create(Desired("new", 3))).id;
    CHECK(Int(SimStack(fresh), "Type") == 1);
    CHECK(SimStack(fresh).at("SwarmId") == kCluster);
    CHECK(MustApply(*probing, stacks::StopStack{old, 3, "tm-old"}).detail == "stopped");
  }
  SUBCASE("a swarm manager that left its swarm: the failed create forgets the kind") {
    ReplaceEndpoint(3, kCluster);
    auto gateway = Gateway(sleeps, options_once());
    REQUIRE(gateway->List(3).ok());  // kept: a swarm manager
    ReplaceEndpoint(3, "");          // `docker swarm leave`
    // The kept kind sends a swarm create, which fails in Portainer's name check (the engine is no
    // manager); the failure names the step, the stack and the endpoint, and forgets the kind.
    auto failed = gateway->Apply(Create(Desired("web", 3)));
    REQUIRE_FALSE(failed.ok());
    CHECK(failed.failure().kind == FailureKind::kTransient);
    CHECK(failed.failure().message.find("create stack \"tm-web\" on endpoint 3: ") == 0);
    CHECK(failed.failure().message.find("not a swarm manager") != std::string::npos);
    CheckNoSecrets(failed.failure().message);
    CHECK(SimStacks().empty());
    // The next attempt probes again and creates a compose stack.
    const stacks::ApplyResult r = MustApply(*gateway, Create(Desired("web", 3)));
    CHECK(r.detail == "created");
    CHECK(Int(SimStack(r.id), "Type") == 2);
    CHECK(gateway->Counts().probe == 2);
  }
}

TEST_CASE("an endpoint down: Portainer's record of it decides its kind, and nothing is kept") {
  Reset();
  AddEndpoint(3, kCluster);
  Knob("POST", "/__sim/endpoints", json::object{{"Id", 6}, {"Name", "k8s"}, {"Type", 6}});
  for (const int id : {2, 3, 6}) {
    Knob("POST", "/__sim/endpoints/" + std::to_string(id) + "/down", json::object{});
  }
  Sleeps sleeps;
  stacks::PortainerOptions options = Options();
  options.max_attempts = 1;
  auto gateway = Gateway(sleeps, options);

  // Standalone when last seen: listed (Portainer's database answers), asked again next time.
  REQUIRE(gateway->List(2).ok());
  CHECK(gateway->Counts().probe == 2);  // the proxy's 503, then GET /api/endpoints/2
  REQUIRE(gateway->List(2).ok());
  CHECK(gateway->Counts().probe == 4);

  // A swarm manager when last seen: without its cluster id there is no list.
  auto swarm = gateway->List(3);
  REQUIRE_FALSE(swarm.ok());
  CHECK(swarm.failure().kind == FailureKind::kTransient);
  CHECK(swarm.failure().reason == "PortainerUnavailable");
  CHECK(swarm.failure().message.find("list stacks of endpoint 3: Portainer answered 503 Unable to "
                                     "query environment") == 0);
  CHECK(swarm.failure().message.find("swarm manager by Portainer's last snapshot") !=
        std::string::npos);
  CHECK(gateway->Counts().list == 2);

  // Not a Docker engine at all.
  auto k8s = gateway->Apply(Create(Desired("acme", 6)));
  REQUIRE_FALSE(k8s.ok());
  CHECK(k8s.failure().kind == FailureKind::kStalled);
  CHECK(k8s.failure().reason == "EndpointUnsupported");
  CHECK(k8s.failure().message.find("create stack \"tm-acme\" on endpoint 6: endpoint 6 is a "
                                   "Kubernetes environment (Type 6)") == 0);
  CHECK(gateway->Counts().create == 0);
  CHECK(SimStacks().empty());
}

TEST_CASE("Inspect: one probe, no retry: standalone, swarm with its cluster's id, a down "
          "endpoint Transient, an unknown one Stalled; the key in no message") {
  Reset();
  AddEndpoint(3, kCluster);
  Knob("POST", "/__sim/endpoints/2/down", json::object{});
  Sleeps sleeps;
  auto gateway = Gateway(sleeps, Options());  // max_attempts 4: Inspect still asks once

  auto standalone = gateway->Inspect(1);
  REQUIRE(standalone.ok());
  CHECK_FALSE(standalone->swarm);
  CHECK(standalone->swarm_id.empty());
  auto swarm = gateway->Inspect(3);
  REQUIRE(swarm.ok());
  CHECK(swarm->swarm);
  CHECK(swarm->swarm_id == kCluster);
  CHECK(gateway->Counts().probe == 2);
  // The answer is kept for the stacks' own calls: a list needs no probe of its own.
  REQUIRE(gateway->List(3).ok());
  CHECK(gateway->Counts().probe == 2);
  CHECK(Log().back().query ==
        ListQuery(std::string(R"({"EndpointID":3,"SwarmID":")") + kCluster + R"("})"));

  // Down: Portainer's snapshot is not asked (it would say standalone); one call, no backoff.
  auto down = gateway->Inspect(2);
  REQUIRE_FALSE(down.ok());
  CHECK(down.failure().kind == FailureKind::kTransient);
  CHECK(down.failure().reason == "PortainerUnavailable");
  CHECK(down.failure().message.find("inspect endpoint 2: Portainer answered 503 Unable to query "
                                    "environment") == 0);
  CHECK(gateway->Counts().probe == 3);
  CHECK(gateway->Counts().retries == 0);
  CheckNoSecrets(down.failure().message);

  auto missing = gateway->Inspect(9);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.failure().kind == FailureKind::kStalled);
  CHECK(missing.failure().reason == "EndpointNotFound");
  CheckNoSecrets(missing.failure().message);

  // A wrong key: Stalled, and neither key shows.
  const std::string bad_key = "ptr_bm90LXRoZS1yaWdodC1rZXktYXQtYWxsLXNvcnJ5LTAxMjM0NTY=";
  auto refused = Gateway(sleeps, Options(bad_key))->Inspect(1);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.failure().kind == FailureKind::kStalled);
  CHECK(refused.failure().reason == "PortainerUnauthorized");
  CHECK(refused.failure().message.find(bad_key) == std::string::npos);
  CHECK(sleeps.delays.empty());
  CheckNoSecrets(refused.failure().message);
}

// The simulator, as Docker: a manager lists the services of its whole cluster, so a second
// Portainer endpoint on the same swarm sees the first one's stack services (409 on a swarm create
// of that name, `docker service ls` through the proxy), while containers stay per engine.
TEST_CASE("portainer-sim: swarm services are cluster-wide across Portainer endpoints") {
  Reset();
  AddEndpoint(3, kCluster);
  AddEndpoint(4, kCluster);
  AddEndpoint(5, "another-cluster");
  const auto create = [](int endpoint) {
    return Api("POST", "/api/stacks/create/swarm/string?endpointId=" + std::to_string(endpoint),
               json::serialize(json::object{{"Name", "web"},
                                            {"SwarmID", endpoint == 5 ? "another-cluster" : kCluster},
                                            {"StackFileContent", "services: {app: {image: x}}"}}));
  };
  const Reply first = create(3);
  REQUIRE_MESSAGE(first.status == 200, first.body);
  const Reply services = Api("GET", "/api/endpoints/4/docker/services");
  REQUIRE(services.status == 200);
  CHECK(services.body.find(R"("com.docker.stack.namespace":"web")") != std::string::npos);
  CHECK(Api("GET", "/api/endpoints/4/docker/containers/json").body == "[]");
  const Reply taken = create(4);
  CHECK(taken.status == 409);
  CHECK(taken.body.find("A stack with the normalized name 'web' already exists") !=
        std::string::npos);
  CHECK(create(5).status == 200);  // another cluster: its own services
  // `docker stack rm` of the first frees the name across the cluster.
  const std::string id = std::to_string(first.Json().at("Id").to_number<int>());
  REQUIRE(Api("POST", "/api/stacks/" + id + "/stop?endpointId=3").status == 200);
  CHECK(create(4).status == 200);
}
