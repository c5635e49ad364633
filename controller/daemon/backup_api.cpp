// The backup routes of the workspace API (docs/api.md#backups): take a backup now, list the
// catalog, start a restore, follow it. The work is the BackupService's
// (controller/backups/service.hpp); the catalog is the store's, so that a standby lists it too.
#include <boost/json.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <string_view>
#include <vector>

#include "common/text.hpp"
#include "common/time.hpp"
#include "controller/daemon/json_body.hpp"
#include "controller/daemon/workspace_api.hpp"
#include "manifests/naming.hpp"

namespace tmaster::controller {
namespace json = boost::json;
namespace {

constexpr std::string_view kStandby = "this replica is a standby: writes go to the leader";
constexpr std::string_view kNoService =
    "backups are not running here (this operator has no backup runner)";

/// A service's failure as the API's error: the status its reason maps to (service.hpp), the
/// reason in `details` so that a client can tell NotConverged from RestoreInProgress (both 409).
ApiAnswer ServiceFailure(const Failure& failure) {
  int status = 503;
  if (failure.reason == backups::kNotFound) {
    status = 404;
  } else if (failure.reason == backups::kNotConverged ||
             failure.reason == backups::kRestoreInProgress) {
    status = 409;
  } else if (failure.reason == backups::kNotRestorable) {
    status = 422;
  }
  return ApiError(status, failure.message,
                  json::serialize(json::object{{"reason", failure.reason}}));
}

json::value Time(std::int64_t unix_seconds) {
  return json::value(json::string(FormatRfc3339Utc(unix_seconds)));
}

json::object QueuedJson(const backups::QueuedBackup& queued, std::string_view id_key) {
  return {{id_key, queued.id},
          {"workspace", queued.workspace},
          {"kind", queued.kind},
          {"state", queued.state},
          {"queuedAt", Time(queued.queued_unix)}};
}

/// One catalog row (CONTRACT: the store's StoredBackup, its times in RFC 3339, its duration in
/// seconds, its per-table row counts as an object).
json::object CatalogJson(const StoredBackup& row) {
  boost::system::error_code ec;
  json::value table_rows = json::parse(row.table_rows_json, ec);
  if (ec || !table_rows.is_object()) table_rows = json::object();
  json::object out{{"id", row.id},
                   {"workspace", row.workspace},
                   {"kind", row.kind},
                   {"state", row.state},
                   {"file", row.file},
                   {"sizeBytes", row.size_bytes},
                   {"sha256", row.sha256},
                   {"durationSeconds", static_cast<double>(row.duration_ms) / 1000.0},
                   {"serverVersion", row.server_version},
                   {"generation", row.generation},
                   {"appliedMigration", row.applied_migration}};
  if (!row.key_id.empty()) out["keyId"] = row.key_id;
  out["encrypted"] = !row.key_id.empty();
  out["tableRows"] = std::move(table_rows);
  if (!row.reason.empty()) out["reason"] = row.reason;
  out["createdAt"] = Time(row.created_unix);
  out["verifiedAt"] = row.verified_unix ? Time(*row.verified_unix) : json::value(nullptr);
  return out;
}

std::string RestoreJson(const backups::RestoreProgress& p) {
  return json::serialize(json::object{
      {"restore", p.id},
      {"workspace", p.workspace},
      {"from", p.from},
      {"backup", p.backup_id},
      {"state", p.state},
      {"step", p.step},
      {"message", p.message},
      {"safetyBackup", p.safety_backup},
      {"startedAt", Time(p.started_unix)},
      {"finishedAt", p.finished_unix != 0 ? Time(p.finished_unix) : json::value(nullptr)}});
}

/// A catalog id (StoredBackup::id): `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 200 characters.
bool IsBackupId(std::string_view id) {
  if (id.empty() || id.size() > 200 || std::isalnum(static_cast<unsigned char>(id[0])) == 0) {
    return false;
  }
  for (const char c : id) {
    if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '.' && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

bool IsWorkspaceName(std::string_view name) {
  return manifests::IsDnsLabel(name, manifests::kMaxNameLength);
}

std::string NameRule() {
  return "a workspace name is 1-" + std::to_string(manifests::kMaxNameLength) +
         " lower-case letters, digits and '-', starting and ending with a letter or digit";
}

/// The restore's body, read strictly: only `backup` (required) and `into`, once each, both
/// strings that can be what they name. A message naming the field when it is not.
Outcome<backups::RestoreCall> ReadRestoreBody(std::string_view body) {
  const auto bad = [](std::string message) {
    return Failure::Stalled("BadRequest", std::move(message));
  };
  constexpr std::string_view kShape = R"({"backup": ID, "into"?: WORKSPACE})";
  boost::system::error_code ec;
  const json::value parsed = json::parse(body, ec);
  if (ec) {
    return bad("the body is not JSON (" + ec.message() + "); expected " + std::string(kShape));
  }
  const json::object* object = parsed.if_object();
  if (object == nullptr) return bad("the body must be a JSON object " + std::string(kShape));
  std::vector<std::string_view> keys = detail::TopLevelKeys(body);
  std::sort(keys.begin(), keys.end());
  if (const auto twice = std::adjacent_find(keys.begin(), keys.end()); twice != keys.end()) {
    return bad("duplicate field " + Quoted(std::string(*twice)) + " in the body; expected " +
               std::string(kShape));
  }
  backups::RestoreCall call;
  for (const auto& member : *object) {
    const std::string key(member.key());
    if (key != "backup" && key != "into") {
      return bad("unknown field " + Quoted(key) + " in the body; expected " +
                 std::string(kShape));
    }
    const json::string* text = member.value().if_string();
    if (text == nullptr) return bad(key + ": must be a string");
    (key == "backup" ? call.backup_id : call.into) = std::string(*text);
  }
  if (!object->contains("backup")) return bad("backup: required (the id of the backup)");
  if (!IsBackupId(call.backup_id)) {
    return bad("backup: " + Quoted(call.backup_id) +
               " is not a backup id ([A-Za-z0-9][A-Za-z0-9._-]*, at most 200 characters)");
  }
  if (object->contains("into") && !IsWorkspaceName(call.into)) {
    return bad("into: " + Quoted(call.into) + " is not a workspace name (" + NameRule() + ")");
  }
  return call;
}

}  // namespace

ApiAnswer WorkspaceApi::Backup(const std::string& name, const std::string& who) {
  if (!deps_.leading()) return ApiError(503, std::string(kStandby));
  if (deps_.backups == nullptr) return ApiError(503, std::string(kNoService));
  Outcome<backups::QueuedBackup> queued = deps_.backups->RequestBackup(name, who);
  if (!queued) return ServiceFailure(queued.failure());
  ApiAnswer answer;
  answer.status = 202;
  answer.body = json::serialize(QueuedJson(*queued, "backup"));
  return answer;
}

ApiAnswer WorkspaceApi::ListBackups(const std::string& name) const {
  Outcome<std::vector<StoredBackup>> rows = deps_.store->ListBackups(name);
  if (!rows) return ApiError(503, "store unavailable: " + rows.failure().message);
  std::vector<backups::QueuedBackup> pending;
  if (deps_.backups != nullptr) pending = deps_.backups->Pending(name);
  if (rows->empty() && pending.empty()) {
    // No backup: the workspace must exist (in the store, or declared but never valid).
    Outcome<std::optional<StoredWorkspace>> stored = deps_.store->Get(name);
    if (!stored) return ApiError(503, "store unavailable: " + stored.failure().message);
    bool declared = false;
    if (deps_.desired != nullptr) {
      const DesiredState::View view = deps_.desired->Lookup(name);
      declared = view.declared != nullptr || view.rejected.has_value();
    }
    if (!*stored && !declared) return ApiError(404, "workspace " + Quoted(name) + " not found");
  }
  json::array items;
  for (const StoredBackup& row : *rows) items.push_back(CatalogJson(row));
  json::array queued;
  for (const backups::QueuedBackup& q : pending) queued.push_back(QueuedJson(q, "id"));
  ApiAnswer answer;
  answer.body =
      json::serialize(json::object{{"items", std::move(items)}, {"pending", std::move(queued)}});
  return answer;
}

ApiAnswer WorkspaceApi::Restore(const std::string& name, std::string_view body,
                                std::string_view content_type, const std::string& who) {
  if (!detail::JsonContentType(content_type)) {
    return ApiError(415, "content type " + Quoted(std::string(content_type)) +
                             " is not JSON: a restore is {\"backup\": ID} as application/json");
  }
  if (!IsWorkspaceName(name)) {
    return ApiError(400, "the URL's workspace " + Quoted(name) + " is not a workspace name (" +
                             NameRule() + ")");
  }
  Outcome<backups::RestoreCall> call = ReadRestoreBody(body);
  if (!call) return ApiError(400, call.failure().message);
  if (!deps_.leading()) return ApiError(503, std::string(kStandby));
  if (deps_.backups == nullptr) return ApiError(503, std::string(kNoService));
  call->from = name;
  call->who = who;
  Outcome<backups::RestoreProgress> started = deps_.backups->RequestRestore(*call);
  if (!started) return ServiceFailure(started.failure());
  ApiAnswer answer;
  answer.status = 202;
  answer.body = RestoreJson(*started);
  return answer;
}

ApiAnswer WorkspaceApi::GetRestore(const std::string& id) const {
  std::optional<backups::RestoreProgress> found;
  if (deps_.backups != nullptr) found = deps_.backups->FindRestore(id);
  if (!found) {
    return ApiError(404, "restore " + Quoted(id) +
                             " is not known here: this replica did not start it, restarted "
                             "since, or it finished over an hour ago");
  }
  ApiAnswer answer;
  answer.body = RestoreJson(*found);
  return answer;
}

}  // namespace tmaster::controller
