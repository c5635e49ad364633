// The rollout routes of the workspace API (controller/daemon/workspace_api.hpp,
// docs/api.md#rollouts) against a fake RolloutControl: the driver's JSON passed through, each
// failure reason mapped to its status with `details: {"reason"}`, an unknown verb refused before
// the driver is asked, the standby's and the missing driver's 503, `who` handed on, and the
// products' `rolloutStatus`.
#include <doctest/doctest.h>
#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <memory>
#include <string>

#include "controller/daemon/workspace_api.hpp"
#include "tests/support/fake_rollout_control.hpp"
#include "tests/support/fake_store.hpp"

namespace {

using namespace tmaster;
namespace json = boost::json;

constexpr const char* kStatus =
    R"({"product":"erp","revision":{"number":4,"digest":"0123456789ab"},"refused":null,)"
    R"("rollout":{"revision":4,"previousRevision":3,"phase":"Paused","currentWave":2,)"
    R"("waveCount":3,"pausedUntil":null,"pausedByPerson":true,)"
    R"("startedAt":"2026-12-04T18:00:00Z","finishedAt":null,)"
    R"("counts":{"pending":1,"inProgress":0,"ready":1,"failed":0},"workspaces":[]}})";

struct Harness {
  testing::FakeStore store;
  controller::DesiredState desired;
  controller::ProductRegistry products;
  testing::FakeRolloutControl rollouts;
  bool leading = true;
  bool with_driver = true;
  std::unique_ptr<controller::WorkspaceApi> api;

  Harness() {
    spdlog::set_level(spdlog::level::off);
    rollouts.SetStatus("erp", kStatus);
  }

  controller::WorkspaceApi& Api() {
    controller::WorkspaceApiDeps deps;
    deps.store = &store;
    deps.desired = &desired;
    deps.products = &products;
    deps.leading = [this] { return leading; };
    deps.rollouts = with_driver ? &rollouts : nullptr;
    api = std::make_unique<controller::WorkspaceApi>(std::move(deps));
    return *api;
  }

  void DeclareProduct(const std::string& name) {
    auto entry = std::make_shared<controller::ProductEntry>();
    entry->product.name = name;
    entry->product.default_version = "1.0.0";
    products.Replace("local", {{name, std::move(entry)}});
  }
};

json::object Object(const std::string& text) {
  return json::parse(text).as_object();
}

std::string Reason(const controller::ApiAnswer& answer) {
  const json::object body = Object(answer.body);
  const json::value* details = body.if_contains("details");
  return details != nullptr ? std::string(details->at("reason").as_string()) : "";
}

}  // namespace

TEST_CASE("rollout API: GET passes the driver's status through; NotFound is 404") {
  Harness h;
  controller::ApiAnswer answer = h.Api().RolloutStatus("erp");
  CHECK(answer.status == 200);
  CHECK(answer.body == kStatus);
  CHECK(h.rollouts.StatusAsked() == std::vector<std::string>{"erp"});

  answer = h.Api().RolloutStatus("ghost");
  CHECK(answer.status == 404);
  CHECK(answer.error == "NotFound");
  CHECK(Reason(answer) == "NotFound");
  CHECK(answer.message == "no source declares product \"ghost\"");

  h.rollouts.Fail(Failure::Transient("Unavailable", "store unavailable: connection refused"));
  answer = h.Api().RolloutStatus("erp");
  CHECK(answer.status == 503);
  CHECK(Reason(answer) == "Unavailable");
  CHECK(answer.message == "store unavailable: connection refused");
}

TEST_CASE("rollout API: each verb reaches the driver with the product and who; 200 the status") {
  Harness h;
  for (const std::string verb : {"pause", "resume", "promote", "abort", "undo"}) {
    CAPTURE(verb);
    const controller::ApiAnswer answer = h.Api().RolloutCommand("erp", verb, "token:k3j5 (ci)");
    CHECK(answer.status == 200);
    CHECK(answer.body == kStatus);
    REQUIRE_FALSE(h.rollouts.Commands().empty());
    const auto call = h.rollouts.Commands().back();
    CHECK(call.product == "erp");
    CHECK(call.verb == verb);
    CHECK(call.who == "token:k3j5 (ci)");
  }
  CHECK(h.rollouts.Commands().size() == 5);
  // The driver records the events (with who): the API adds none.
  CHECK(h.store.Snapshot().events.empty());
}

TEST_CASE("rollout API: each driver failure maps to its status, the reason in details") {
  const struct {
    const char* reason;
    int status;
    const char* error;
  } cases[] = {{"NotFound", 404, "NotFound"},
               {"RolloutCommandRefused", 409, "Conflict"},
               {"InvalidVerb", 400, "BadRequest"},
               {"Unavailable", 503, "Unavailable"},
               {"SomethingElse", 503, "Unavailable"}};
  for (const auto& c : cases) {
    CAPTURE(c.reason);
    Harness h;
    const std::string message = std::string("why: ") + c.reason;
    h.rollouts.Fail(Failure::Stalled(c.reason, message));
    const controller::ApiAnswer answer = h.Api().RolloutCommand("erp", "promote", "env:admin");
    CHECK(answer.status == c.status);
    CHECK(answer.error == c.error);
    CHECK(Reason(answer) == c.reason);
    CHECK(answer.message == message);
    const json::object body = Object(answer.body);
    CHECK(body.at("error") == c.error);
    CHECK(body.at("message") == json::value(message));
  }
}

TEST_CASE("rollout API: an unknown verb is 400 naming the verbs; the driver is not asked") {
  for (const bool leading : {true, false}) {
    CAPTURE(leading);
    Harness h;
    h.leading = leading;
    for (const std::string verb : {"rollback", "Pause", "", "status"}) {
      CAPTURE(verb);
      const controller::ApiAnswer answer = h.Api().RolloutCommand("erp", verb, "env:admin");
      CHECK(answer.status == 400);
      CHECK(answer.error == "BadRequest");
      CHECK(Reason(answer) == "InvalidVerb");
      CHECK(answer.message == "unknown rollout verb \"" + verb +
                                  "\": the verbs are pause, resume, promote, abort, "
                                  "undo");
    }
    CHECK(h.rollouts.Commands().empty());
  }
  // A long verb is not echoed whole.
  Harness h;
  const controller::ApiAnswer answer =
      h.Api().RolloutCommand("erp", std::string(500, 'x'), "env:admin");
  CHECK(answer.status == 400);
  CHECK(answer.message.size() < 200);
}

TEST_CASE("rollout API: a standby and an operator without a driver answer 503, asking nobody") {
  Harness standby;
  standby.leading = false;
  controller::ApiAnswer answer = standby.Api().RolloutStatus("erp");
  CHECK(answer.status == 503);
  CHECK(answer.message.find("standby") != std::string::npos);
  answer = standby.Api().RolloutCommand("erp", "pause", "env:admin");
  CHECK(answer.status == 503);
  CHECK(answer.message.find("standby") != std::string::npos);
  CHECK(standby.rollouts.Commands().empty());
  CHECK(standby.rollouts.StatusAsked().empty());

  Harness none;
  none.with_driver = false;
  answer = none.Api().RolloutStatus("erp");
  CHECK(answer.status == 503);
  CHECK(answer.message == "rollouts are not running here (this operator has no rollout driver)");
  answer = none.Api().RolloutCommand("erp", "abort", "env:admin");
  CHECK(answer.status == 503);
  CHECK(answer.error == "Unavailable");
}

TEST_CASE("rollout API: each product carries its rolloutStatus, null without one or a driver") {
  Harness h;
  h.DeclareProduct("erp");
  h.rollouts.SetSummary("erp",
                        R"({"phase":"Progressing","revision":4,"currentWave":2,"waveCount":3,)"
                        R"("counts":{"pending":12,"inProgress":2,"ready":5,"failed":1}})");
  json::object item = Object(h.Api().Products().body).at("items").at(0).as_object();
  CHECK(item.at("name") == "erp");
  REQUIRE(item.at("rolloutStatus").is_object());
  CHECK(item.at("rolloutStatus").at("phase") == "Progressing");
  CHECK(item.at("rolloutStatus").at("counts").at("failed") == 1);

  // No rollout: the driver's null.
  h.rollouts.SetSummary("erp", "null");
  item = Object(h.Api().Products().body).at("items").at(0).as_object();
  REQUIRE(item.contains("rolloutStatus"));
  CHECK(item.at("rolloutStatus").is_null());

  // A text that is not JSON is null, and the list still answers.
  h.rollouts.SetSummary("erp", "{oops");
  const controller::ApiAnswer answer = h.Api().Products();
  CHECK(answer.status == 200);
  CHECK(Object(answer.body).at("items").at(0).at("rolloutStatus").is_null());

  // Without a driver: null.
  h.with_driver = false;
  item = Object(h.Api().Products().body).at("items").at(0).as_object();
  REQUIRE(item.contains("rolloutStatus"));
  CHECK(item.at("rolloutStatus").is_null());
}

TEST_CASE("rollout API: ServeWorkspaceCall routes both operations with the verb and who") {
  Harness h;
  controller::WorkspaceCall call;
  call.op = controller::WorkspaceCall::Op::kRolloutStatus;
  call.name = "erp";
  controller::WorkspaceAnswer answer = controller::ServeWorkspaceCall(h.Api(), call);
  CHECK(answer.status == 200);
  CHECK(answer.body == kStatus);

  call.op = controller::WorkspaceCall::Op::kRolloutCommand;
  call.verb = "undo";
  call.who = "env:admin";
  answer = controller::ServeWorkspaceCall(h.Api(), call);
  CHECK(answer.status == 200);
  REQUIRE(h.rollouts.Commands().size() == 1);
  CHECK(h.rollouts.Commands()[0].verb == "undo");
  CHECK(h.rollouts.Commands()[0].who == "env:admin");

  call.verb = "explode";
  answer = controller::ServeWorkspaceCall(h.Api(), call);
  CHECK(answer.status == 400);
  CHECK(h.rollouts.Commands().size() == 1);
}
