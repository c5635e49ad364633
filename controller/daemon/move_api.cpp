// The move routes of the workspace API (docs/api.md#moves): move a workspace's database to
// another cluster, prune the source a succeeded move kept, follow a move. The work is the
// MoveService's (controller/moves/service.hpp); a move's progress is the store's row, so that a
// standby shows it too.
#include <boost/json.hpp>

#include <algorithm>
#include <string_view>
#include <vector>

#include "common/text.hpp"
#include "common/time.hpp"
#include "controller/daemon/json_body.hpp"
#include "controller/daemon/workspace_api.hpp"
#include "controller/moves/service.hpp"
#include "manifests/naming.hpp"

namespace tmaster::controller {
namespace json = boost::json;
// Names of their own: the unity build compiles this file with backup_api.cpp.
namespace {

constexpr std::string_view kMoveStandby = "this replica is a standby: writes go to the leader";
constexpr std::string_view kNoMoveService =
    "moves are not running here (this operator has no move runner)";
constexpr std::string_view kMoveShape = R"({"to": CLUSTER} or {"prune": true})";

/// A service's failure as the API's error: the status its reason maps to (service.hpp), the
/// reason in `details`, so that a client can tell MovePinned from MoveInProgress (both 409).
ApiAnswer MoveFailure(const Failure& failure) {
  int status = 503;
  if (failure.reason == moves::kNotFound) {
    status = 404;
  } else if (failure.reason == moves::kNotConverged || failure.reason == moves::kMoveInProgress ||
             failure.reason == moves::kMovePinned || failure.reason == moves::kMoveConflict) {
    status = 409;
  } else if (failure.reason == moves::kInvalidTarget) {
    status = 422;
  }
  return ApiError(status, failure.message,
                  json::serialize(json::object{{"reason", failure.reason}}));
}

/// RFC 3339 UTC; null while the moment has not come (0), as the restore's `finishedAt`.
json::value MoveTime(std::int64_t unix_seconds) {
  if (unix_seconds == 0) return nullptr;
  return json::value(json::string(FormatRfc3339Utc(unix_seconds)));
}

/// One move (CONTRACT, docs/api.md#moves: the store's StoredMove in camelCase, its times in
/// RFC 3339 or null, `downtimeMs` null until known).
json::object MoveJson(const StoredMove& move) {
  return {{"id", move.id},
          {"workspace", move.workspace},
          {"from", move.from_cluster},
          {"to", move.to_cluster},
          {"state", move.state},
          {"step", move.step},
          {"message", move.message},
          {"reason", move.reason},
          {"verified", move.verified},
          {"who", move.who},
          {"suspendedByMove", move.suspended_by_move},
          {"switched", move.switched},
          {"requestedAt", MoveTime(move.requested_unix)},
          {"updatedAt", MoveTime(move.updated_unix)},
          {"finishedAt", MoveTime(move.finished_unix)},
          {"prunedAt", MoveTime(move.pruned_unix)},
          {"downtimeMs", move.downtime_ms != 0 ? json::value(move.downtime_ms)
                                               : json::value(nullptr)}};
}

std::string MoveNameRule() {
  return "a workspace name is 1-" + std::to_string(manifests::kMaxNameLength) +
         " lower-case letters, digits and '-', starting and ending with a letter or digit";
}

/// What a move's body asks for: a target cluster, or the prune of the kept source.
struct MoveBody {
  std::string to;  ///< empty for a prune
  bool prune = false;
};

/// The move's body, read strictly: exactly one of `to` (a cluster name) and `prune` (true), once.
/// A message naming the field when it is not.
Outcome<MoveBody> ReadMoveBody(std::string_view body) {
  const auto bad = [](std::string message) {
    return Failure::Stalled("BadRequest", std::move(message));
  };
  const std::string shape(kMoveShape);
  boost::system::error_code ec;
  const json::value parsed = json::parse(body, ec);
  if (ec) return bad("the body is not JSON (" + ec.message() + "); expected " + shape);
  const json::object* object = parsed.if_object();
  if (object == nullptr) return bad("the body must be a JSON object " + shape);
  std::vector<std::string_view> keys = detail::TopLevelKeys(body);
  std::sort(keys.begin(), keys.end());
  if (const auto twice = std::adjacent_find(keys.begin(), keys.end()); twice != keys.end()) {
    return bad("duplicate field " + Quoted(std::string(*twice)) + " in the body; expected " +
               shape);
  }
  for (const auto& member : *object) {
    if (member.key() != "to" && member.key() != "prune") {
      return bad("unknown field " + Quoted(std::string(member.key())) +
                 " in the body; expected " + shape);
    }
  }
  const json::value* to = object->if_contains("to");
  const json::value* prune = object->if_contains("prune");
  if (to != nullptr && prune != nullptr) {
    return bad("to and prune: give one of them, not both; expected " + shape);
  }
  MoveBody out;
  if (prune != nullptr) {
    if (!prune->is_bool() || !prune->get_bool()) {
      return bad("prune: must be true (to move the workspace, send {\"to\": CLUSTER})");
    }
    out.prune = true;
    return out;
  }
  if (to == nullptr) return bad("to: required (the cluster to move to), or {\"prune\": true}");
  const json::string* text = to->if_string();
  if (text == nullptr) return bad("to: must be a string (a cluster's name)");
  out.to = std::string(*text);
  if (!manifests::IsDnsLabel(out.to)) {
    return bad("to: " + Quoted(out.to) +
               " is not a cluster name (1-63 lower-case letters, digits and '-', starting and "
               "ending with a letter or digit)");
  }
  return out;
}

}  // namespace

ApiAnswer WorkspaceApi::Move(const std::string& name, std::string_view body,
                             std::string_view content_type, const std::string& who) {
  if (!detail::JsonContentType(content_type)) {
    return ApiError(415, "content type " + Quoted(std::string(content_type)) +
                             " is not JSON: a move is " + std::string(kMoveShape) +
                             " as application/json");
  }
  if (!manifests::IsDnsLabel(name, manifests::kMaxNameLength)) {
    return ApiError(400, "the URL's workspace " + Quoted(name) + " is not a workspace name (" +
                             MoveNameRule() + ")");
  }
  Outcome<MoveBody> asked = ReadMoveBody(body);
  if (!asked) return ApiError(400, asked.failure().message);
  if (!deps_.leading()) return ApiError(503, std::string(kMoveStandby));
  if (deps_.moves == nullptr) return ApiError(503, std::string(kNoMoveService));
  Outcome<StoredMove> move =
      asked->prune ? deps_.moves->Prune(name, who)
                   : deps_.moves->RequestMove(moves::MoveCall{name, asked->to, who});
  if (!move) return MoveFailure(move.failure());
  ApiAnswer answer;
  answer.status = asked->prune ? 200 : 202;
  answer.body = json::serialize(MoveJson(*move));
  return answer;
}

ApiAnswer WorkspaceApi::GetMove(const std::string& name) const {
  Outcome<std::optional<StoredMove>> found = deps_.store->FindMove(name);
  if (!found) return ApiError(503, "store unavailable: " + found.failure().message);
  if (!*found) return ApiError(404, "no move of workspace " + Quoted(name) + " is recorded");
  ApiAnswer answer;
  answer.body = json::serialize(MoveJson(**found));
  return answer;
}

ApiAnswer WorkspaceApi::ListMoves() const {
  Outcome<std::vector<StoredMove>> rows = deps_.store->ListMoves();
  if (!rows) return ApiError(503, "store unavailable: " + rows.failure().message);
  json::array items;
  for (const StoredMove& move : *rows) items.push_back(MoveJson(move));
  ApiAnswer answer;
  answer.body = json::serialize(json::object{{"items", std::move(items)}});
  return answer;
}

}  // namespace tmaster::controller
