// The move routes of the workspace API (controller/daemon/move_api.cpp, docs/api.md#moves)
// against the tests' FakeStore and FakeMoveService: each status code and the move's JSON shape,
// the strict body, the standby's and the missing service's 503, the reads from the store.
#include <doctest/doctest.h>

#include <boost/json.hpp>
#include <string>

#include "controller/daemon/workspace_api.hpp"
#include "tests/support/fake_move_service.hpp"
#include "tests/support/fake_store.hpp"

namespace {

using namespace tmaster;
namespace json = boost::json;

constexpr std::int64_t kNow = 1796299200;  // 2026-12-03T12:00:00Z

struct Harness {
  testing::FakeStore store;
  controller::DesiredState desired;
  testing::FakeMoveService service{&store, kNow};
  bool leading = true;
  bool with_service = true;
  std::unique_ptr<controller::WorkspaceApi> api;

  controller::WorkspaceApi& Api() {
    controller::WorkspaceApiDeps deps;
    deps.store = &store;
    deps.desired = &desired;
    deps.leading = [this] { return leading; };
    deps.now_unix = [] { return kNow; };
    deps.moves = with_service ? &service : nullptr;
    api = std::make_unique<controller::WorkspaceApi>(std::move(deps));
    return *api;
  }
  controller::ApiAnswer MoveTo(const std::string& body,
                               const std::string& type = "application/json") {
    return Api().Move("acme", body, type, "token:k3j5 (ops)");
  }
};

json::object Object(const std::string& text) { return json::parse(text).as_object(); }

std::string Reason(const controller::ApiAnswer& answer) {
  const json::object body = Object(answer.body);
  const json::value* details = body.if_contains("details");
  return details != nullptr ? std::string(details->at("reason").as_string()) : "";
}

// A finished move as the runner leaves it.
controller::StoredMove Succeeded(const std::string& workspace) {
  controller::StoredMove move;
  move.workspace = workspace;
  move.id = "mv-" + workspace + "-1796295600-9f3e";
  move.from_cluster = "c1";
  move.to_cluster = "c2";
  move.state = "succeeded";
  move.step = "done";
  move.message = "on c2; the source is kept NOLOGIN until pruned";
  move.verified = "12 tables, 48211 rows, checksums equal";
  move.who = "env:admin";
  move.suspended_by_move = true;
  move.switched = true;
  move.requested_unix = kNow - 3600;
  move.finished_unix = kNow - 3540;
  move.downtime_ms = 4250;
  return move;
}

}  // namespace

TEST_CASE("move API: POST move {to} starts a move: 202 with the move; the call carries who") {
  Harness h;
  const controller::ApiAnswer answer =
      h.MoveTo(R"({"to":"c2"})", "application/json; charset=utf-8");
  REQUIRE(answer.status == 202);
  const auto calls = h.service.Requests();
  REQUIRE(calls.size() == 1);
  CHECK(calls[0].workspace == "acme");
  CHECK(calls[0].to == "c2");
  CHECK(calls[0].who == "token:k3j5 (ops)");
  CHECK(h.service.Prunes().empty());

  const json::object body = Object(answer.body);
  CHECK(body.at("id") == "mv-acme-1796299200-a1b2");
  CHECK(body.at("workspace") == "acme");
  CHECK(body.at("from") == "c1");
  CHECK(body.at("to") == "c2");
  CHECK(body.at("state") == "pending");
  CHECK(body.at("step") == "prepare");
  CHECK(body.at("message") == "move to c2 recorded");
  CHECK(body.at("reason") == "");
  CHECK(body.at("verified") == "");
  CHECK(body.at("who") == "token:k3j5 (ops)");
  CHECK(body.at("suspendedByMove") == false);
  CHECK(body.at("switched") == false);
  CHECK(body.at("requestedAt") == "2026-12-03T12:00:00Z");
  CHECK(body.at("updatedAt") == "2026-12-03T12:00:00Z");
  CHECK(body.at("finishedAt").is_null());
  CHECK(body.at("prunedAt").is_null());
  CHECK(body.at("downtimeMs").is_null());
  CHECK(body.size() == 17);
}

TEST_CASE("move API: POST move {prune: true} prunes the kept source: 200 with the pruned move") {
  Harness h;
  REQUIRE(h.store.PutMove(Succeeded("acme"), kNow - 3540));
  const controller::ApiAnswer answer = h.MoveTo(R"({"prune": true})", "");
  REQUIRE(answer.status == 200);
  const auto prunes = h.service.Prunes();
  REQUIRE(prunes.size() == 1);
  CHECK(prunes[0].workspace == "acme");
  CHECK(prunes[0].who == "token:k3j5 (ops)");
  CHECK(h.service.Requests().empty());
  const json::object body = Object(answer.body);
  CHECK(body.at("state") == "pruned");
  CHECK(body.at("step") == "prune");
  CHECK(body.at("from") == "c1");
  CHECK(body.at("to") == "c2");
  CHECK(body.at("verified") == "12 tables, 48211 rows, checksums equal");
  CHECK(body.at("suspendedByMove") == true);
  CHECK(body.at("switched") == true);
  CHECK(body.at("requestedAt") == "2026-12-03T11:00:00Z");
  CHECK(body.at("finishedAt") == "2026-12-03T11:01:00Z");
  CHECK(body.at("prunedAt") == "2026-12-03T12:00:00Z");
  CHECK(body.at("downtimeMs") == 4250);
}

TEST_CASE("move API: each service reason maps to its status, the reason in details") {
  const struct {
    std::string_view reason;
    int status;
  } cases[] = {{moves::kNotFound, 404},       {moves::kNotConverged, 409},
               {moves::kMoveInProgress, 409}, {moves::kMovePinned, 409},
               {moves::kMoveConflict, 409},   {moves::kInvalidTarget, 422},
               {moves::kUnavailable, 503},    {"SomethingElse", 503}};
  for (const auto& c : cases) {
    CAPTURE(c.reason);
    Harness h;
    h.service.Fail(Failure::Stalled(std::string(c.reason), "why: " + std::string(c.reason)));
    controller::ApiAnswer answer = h.MoveTo(R"({"to":"c2"})");
    CHECK(answer.status == c.status);
    CHECK(Reason(answer) == c.reason);
    CHECK(answer.message == "why: " + std::string(c.reason));
    answer = h.MoveTo(R"({"prune":true})");
    CHECK(answer.status == c.status);
    CHECK(Reason(answer) == c.reason);
  }
}

TEST_CASE("move API: a body that is not exactly {to} or {prune: true} is 400 naming the field") {
  const struct {
    std::string body;
    std::string says;
  } cases[] = {
      {"", "the body is not JSON"},
      {"to: c2", "the body is not JSON"},
      {R"(["c2"])", "must be a JSON object"},
      {R"({})", "to: required"},
      {R"({"to":"c2","force":true})", "unknown field \"force\""},
      {R"({"cluster":"c2"})", "unknown field \"cluster\""},
      {R"({"to":"c2","prune":true})", "to and prune: give one of them, not both"},
      {R"({"to":12})", "to: must be a string"},
      {R"({"to":null})", "to: must be a string"},
      {R"({"to":""})", "to: \"\" is not a cluster name"},
      {R"({"to":"C2"})", "to: \"C2\" is not a cluster name"},
      {R"({"to":"c2; drop"})", "to: \"c2; drop\" is not a cluster name"},
      {R"({"prune":false})", "prune: must be true"},
      {R"({"prune":"yes"})", "prune: must be true"},
      {R"({"to":"c2", "to" : "c3"})", "duplicate field \"to\""},
  };
  for (const auto& c : cases) {
    CAPTURE(c.body);
    Harness h;
    const controller::ApiAnswer answer = h.MoveTo(c.body);
    CHECK(answer.status == 400);
    CHECK(answer.error == "BadRequest");
    CHECK(answer.message.find(c.says) != std::string::npos);
    CHECK(h.service.Requests().empty());
    CHECK(h.service.Prunes().empty());
  }
  Harness h;
  controller::ApiAnswer answer =
      h.Api().Move("Bad_Name", R"({"to":"c2"})", "application/json", "env:admin");
  CHECK(answer.status == 400);
  CHECK(answer.message.find("\"Bad_Name\" is not a workspace name") != std::string::npos);
  answer = h.MoveTo("to: c2\n", "application/yaml");
  CHECK(answer.status == 415);
  CHECK(answer.error == "UnsupportedMediaType");
  CHECK(h.service.Requests().empty());
}

TEST_CASE("move API: a standby and an operator without a move runner answer the write 503") {
  Harness h;
  h.leading = false;
  controller::ApiAnswer answer = h.MoveTo(R"({"to":"c2"})");
  CHECK(answer.status == 503);
  CHECK(answer.message.find("standby") != std::string::npos);
  answer = h.MoveTo(R"({"prune":true})");
  CHECK(answer.status == 503);
  CHECK(h.service.Requests().empty());
  CHECK(h.service.Prunes().empty());
  // A bad body is still the client's error, on a standby too.
  CHECK(h.MoveTo(R"({"to":"c2","x":1})").status == 400);

  Harness none;
  none.with_service = false;
  answer = none.MoveTo(R"({"to":"c2"})");
  CHECK(answer.status == 503);
  CHECK(answer.message == "moves are not running here (this operator has no move runner)");
  CHECK(none.MoveTo(R"({"prune":true})").status == 503);
}

TEST_CASE("move API: GET move reads the store (a standby answers); 404 when none recorded") {
  Harness h;
  controller::ApiAnswer answer = h.Api().GetMove("acme");
  CHECK(answer.status == 404);
  CHECK(answer.message == "no move of workspace \"acme\" is recorded");

  controller::StoredMove failed = Succeeded("acme");
  failed.state = "failed";
  failed.step = "rollback";
  failed.reason = "MoveVerifyFailed";
  failed.message = "row counts differ: public.orders 12 on c1, 11 on c2";
  failed.switched = false;
  failed.verified.clear();
  REQUIRE(h.store.PutMove(failed, kNow - 3540));
  h.leading = false;
  h.with_service = false;
  answer = h.Api().GetMove("acme");
  REQUIRE(answer.status == 200);
  const json::object body = Object(answer.body);
  CHECK(body.at("state") == "failed");
  CHECK(body.at("step") == "rollback");
  CHECK(body.at("reason") == "MoveVerifyFailed");
  CHECK(body.at("message") == "row counts differ: public.orders 12 on c1, 11 on c2");
  CHECK(body.at("switched") == false);
  CHECK(body.at("updatedAt") == "2026-12-03T11:01:00Z");
  CHECK(body.at("finishedAt") == "2026-12-03T11:01:00Z");
  CHECK(body.size() == 17);

  h.store.FailNext();
  answer = h.Api().GetMove("acme");
  CHECK(answer.status == 503);
  CHECK(answer.message.find("store unavailable") == 0);
}

TEST_CASE("move API: GET moves lists every stored move; 503 when the store cannot be read") {
  Harness h;
  controller::ApiAnswer answer = h.Api().ListMoves();
  REQUIRE(answer.status == 200);
  CHECK(Object(answer.body).at("items").as_array().empty());

  REQUIRE(h.store.PutMove(Succeeded("acme"), kNow));
  REQUIRE(h.store.PutMove(Succeeded("beta"), kNow));
  answer = h.Api().ListMoves();
  REQUIRE(answer.status == 200);
  const json::object list = Object(answer.body);
  const json::array& items = list.at("items").as_array();
  REQUIRE(items.size() == 2);
  CHECK(items[0].at("workspace") == "acme");
  CHECK(items[1].at("workspace") == "beta");
  CHECK(items[1].at("id") == "mv-beta-1796295600-9f3e");
  CHECK(items[1].at("downtimeMs") == 4250);

  h.store.FailNext();
  CHECK(h.Api().ListMoves().status == 503);
}

TEST_CASE("move API: ServeWorkspaceCall routes the three operations") {
  Harness h;
  controller::WorkspaceApi& api = h.Api();
  controller::WorkspaceCall call;
  call.name = "acme";
  call.who = "env:admin";
  call.op = controller::WorkspaceCall::Op::kMove;
  call.body = R"({"to":"c2"})";
  call.content_type = "application/json";
  controller::WorkspaceAnswer answer = controller::ServeWorkspaceCall(api, call);
  CHECK(answer.status == 202);
  REQUIRE(h.service.Requests().size() == 1);
  CHECK(h.service.Requests()[0].who == "env:admin");
  call.op = controller::WorkspaceCall::Op::kGetMove;
  call.body.clear();
  answer = controller::ServeWorkspaceCall(api, call);
  CHECK(answer.status == 200);
  CHECK(Object(answer.body).at("state") == "pending");
  call.op = controller::WorkspaceCall::Op::kListMoves;
  call.name.clear();
  answer = controller::ServeWorkspaceCall(api, call);
  CHECK(answer.status == 200);
  CHECK(Object(answer.body).at("items").as_array().size() == 1);
}
