#include "controller/api/status_json.hpp"

#include <boost/json.hpp>

#include <unordered_map>
#include <utility>

#include "common/scrub.hpp"
#include "common/text.hpp"
#include "common/time.hpp"

namespace tmaster::controller {
namespace {

namespace json = boost::json;

// Parses text the program itself stored. A document that does not parse was not written by us;
// showing the rest of the object beats failing the whole list over one row.
json::value ParseOr(std::string_view text, json::value fallback) {
  if (text.empty()) return fallback;
  boost::system::error_code ec;
  json::value parsed = json::parse(text, ec);
  if (ec) return fallback;
  return parsed;
}

// Every string of a served document passes through the process's scrubber before it is
// serialized: status messages, events and errors can quote a server or a file, and the API is a
// way out of the process (docs/architecture.md#secrets). Scrubbing the strings, not the
// serialized text, also finds a secret that JSON escaping would change (a `"` or `\` in it).
void ScrubStrings(json::value& value) {
  if (json::string* text = value.if_string()) {
    *text = ScrubProcessSecrets(std::string_view(text->data(), text->size()));
  } else if (json::array* array = value.if_array()) {
    for (json::value& item : *array) ScrubStrings(item);
  } else if (json::object* object = value.if_object()) {
    for (auto& member : *object) ScrubStrings(member.value());
  }
}

std::string SerializeScrubbed(json::value value) {
  ScrubStrings(value);
  return json::serialize(value);
}

json::array ParseArray(std::string_view text) {
  json::value parsed = ParseOr(text, json::array{});
  if (json::array* array = parsed.if_array()) return std::move(*array);
  return {};
}

json::object& ObjectAt(json::object& parent, std::string_view key) {
  json::value& slot = parent[key];
  if (!slot.is_object()) slot = json::object{};
  return slot.as_object();
}

// Days from 1970-01-01 to a civil date (proleptic Gregorian; H. Hinnant's days_from_civil).
std::int64_t DaysFromCivil(std::int64_t year, unsigned month, unsigned day) {
  year -= month <= 2 ? 1 : 0;
  const std::int64_t era = (year >= 0 ? year : year - 399) / 400;
  const auto year_of_era = static_cast<unsigned>(year - era * 400);
  const unsigned day_of_year = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
  const unsigned day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + static_cast<std::int64_t>(day_of_era) - 719468;
}

std::optional<std::int64_t> LastReconcileOf(const json::array& runs) {
  std::optional<std::int64_t> newest;
  for (const json::value& run : runs) {
    const json::object* object = run.if_object();
    if (object == nullptr) continue;
    const json::value* start = object->if_contains("start");
    if (start == nullptr || !start->is_string()) continue;
    std::optional<std::int64_t> end = ParseRfc3339Seconds(start->get_string());
    if (!end) continue;
    if (const json::value* seconds = object->if_contains("durationSeconds")) {
      if (seconds->is_number()) {
        const double duration = seconds->to_number<double>();
        if (duration > 0 && duration < 1e9) *end += static_cast<std::int64_t>(duration);
      }
    }
    if (!newest || *end > *newest) newest = end;
  }
  return newest;
}

json::object StatusObject(const StoredWorkspace& workspace, const WorkspaceStatus* status) {
  json::object out;
  std::string phase = status != nullptr && !status->phase.empty() ? status->phase : "Pending";
  // Deletion is decided by the store's mark, which a status written just before it may not
  // reflect yet.
  if (workspace.deleting_since) phase = "Deleting";
  out["phase"] = phase;
  out["observedGeneration"] = status != nullptr ? status->observed_generation : 0;
  out["conditions"] = status != nullptr ? ParseArray(status->conditions_json) : json::array{};
  out["revision"] = status != nullptr ? status->revision : std::string();
  // The product revision it converged on (docs/rollouts.md); 0 until a pass recorded one.
  out["productRevision"] = status != nullptr ? status->product_revision : 0;
  // The cluster its data is on (recorded at its first convergence): for a placed workspace, the
  // one placement chose (docs/placement.md).
  if (workspace.identity && !workspace.identity->cluster.empty()) {
    out["cluster"] = workspace.identity->cluster;
  }
  json::array runs = status != nullptr ? ParseArray(status->last_runs_json) : json::array{};
  // Kept by the list's items, which leave lastRuns out (controller/daemon/fleet_view.hpp).
  if (const std::optional<std::int64_t> end = LastReconcileOf(runs)) {
    out["lastReconcileTime"] = FormatRfc3339Utc(*end);
  }
  out["lastRuns"] = std::move(runs);
  if (status != nullptr && status->next_retry_unix) {
    out["nextRetry"] = FormatRfc3339Utc(*status->next_retry_unix);
  }
  if (status != nullptr && !status->last_error.empty()) out["lastError"] = status->last_error;
  return out;
}

json::object WorkspaceObject(const StoredWorkspace& workspace, const WorkspaceStatus* status) {
  json::value doc = ParseOr(workspace.spec_json, json::object{});
  if (!doc.is_object()) doc = json::object{};
  json::object& object = doc.as_object();
  if (!object.contains("kind")) object["kind"] = "Workspace";
  json::object& metadata = ObjectAt(object, "metadata");
  metadata["name"] = workspace.name;
  metadata["generation"] = workspace.generation;
  json::object& annotations = ObjectAt(metadata, "annotations");
  annotations["tenantmaster.io/source"] = workspace.source;
  if (!workspace.revision.empty()) annotations["tenantmaster.io/revision"] = workspace.revision;
  if (workspace.created_at) metadata["creationTimestamp"] = *workspace.created_at;
  if (workspace.deleting_since) metadata["deletionTimestamp"] = *workspace.deleting_since;
  object["status"] = StatusObject(workspace, status);
  return std::move(object);
}

bool Matches(const json::object& object, const LabelSelector& selector) {
  if (selector.empty()) return true;
  const json::object* labels = nullptr;
  if (const json::value* metadata = object.if_contains("metadata")) {
    if (const json::object* m = metadata->if_object()) {
      if (const json::value* l = m->if_contains("labels")) labels = l->if_object();
    }
  }
  for (const LabelRequirement& requirement : selector) {
    const json::value* value = labels != nullptr ? labels->if_contains(requirement.key) : nullptr;
    const bool equal =
        value != nullptr && value->is_string() && value->get_string() == requirement.value;
    if (equal != requirement.equal) return false;
  }
  return true;
}

}  // namespace

Outcome<LabelSelector> ParseLabelSelector(std::string_view text) {
  LabelSelector selector;
  if (Trim(text).empty()) return selector;
  while (true) {
    const std::size_t comma = text.find(',');
    const std::string_view item = Trim(text.substr(0, comma));
    LabelRequirement requirement;
    std::size_t op = item.find("!=");
    std::size_t op_length = 2;
    requirement.equal = op == std::string_view::npos;
    if (requirement.equal) {
      op = item.find("==");
      if (op == std::string_view::npos) {
        op = item.find('=');
        op_length = 1;
      }
    }
    if (op == std::string_view::npos || Trim(item.substr(0, op)).empty()) {
      return Failure::Stalled("BadLabelSelector",
                              "label selector item \"" + std::string(item) +
                                  "\" is not key=value, key==value or key!=value");
    }
    requirement.key = std::string(Trim(item.substr(0, op)));
    requirement.value = std::string(Trim(item.substr(op + op_length)));
    selector.push_back(std::move(requirement));
    if (comma == std::string_view::npos) return selector;
    text.remove_prefix(comma + 1);
  }
}

std::optional<std::int64_t> ParseRfc3339Seconds(std::string_view text) {
  const auto digits = [&](std::size_t at, std::size_t count) -> std::optional<unsigned> {
    if (at + count > text.size()) return std::nullopt;
    unsigned value = 0;
    for (std::size_t i = at; i < at + count; ++i) {
      if (text[i] < '0' || text[i] > '9') return std::nullopt;
      value = value * 10 + static_cast<unsigned>(text[i] - '0');
    }
    return value;
  };
  const auto year = digits(0, 4);
  const auto month = digits(5, 2);
  const auto day = digits(8, 2);
  const auto hour = digits(11, 2);
  const auto minute = digits(14, 2);
  const auto second = digits(17, 2);
  if (!year || !month || !day || !hour || !minute || !second || text[4] != '-' || text[7] != '-' ||
      (text[10] != 'T' && text[10] != 't') || text[13] != ':' || text[16] != ':' || *month < 1 ||
      *month > 12 || *day < 1 || *day > 31 || *hour > 23 || *minute > 59 || *second > 60) {
    return std::nullopt;
  }
  std::size_t at = 19;
  if (at < text.size() && text[at] == '.') {
    const std::size_t first = ++at;
    while (at < text.size() && text[at] >= '0' && text[at] <= '9') ++at;
    if (at == first) return std::nullopt;
  }
  std::int64_t offset = 0;
  const std::string_view zone = text.substr(at);
  if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
    const auto zone_hour = digits(at + 1, 2);
    const auto zone_minute = digits(at + 4, 2);
    if (!zone_hour || !zone_minute || *zone_hour > 23 || *zone_minute > 59) return std::nullopt;
    offset = static_cast<std::int64_t>(*zone_hour * 3600 + *zone_minute * 60) *
             (zone[0] == '-' ? -1 : 1);
  } else if (zone != "Z" && zone != "z") {
    return std::nullopt;
  }
  return DaysFromCivil(*year, *month, *day) * 86400 +
         static_cast<std::int64_t>(*hour * 3600 + *minute * 60 + *second) - offset;
}

std::optional<std::int64_t> LastReconcileUnix(std::string_view last_runs_json) {
  return LastReconcileOf(ParseArray(last_runs_json));
}

std::string WorkspaceJson(const StoredWorkspace& workspace, const WorkspaceStatus* status) {
  return SerializeScrubbed(WorkspaceObject(workspace, status));
}

std::string WorkspaceListJson(const std::vector<StoredWorkspace>& workspaces,
                              const std::vector<WorkspaceStatus>& statuses,
                              const LabelSelector& selector) {
  std::unordered_map<std::string_view, const WorkspaceStatus*> by_name;
  by_name.reserve(statuses.size());
  for (const WorkspaceStatus& status : statuses) by_name.emplace(status.name, &status);
  json::array items;
  items.reserve(workspaces.size());
  for (const StoredWorkspace& workspace : workspaces) {
    const auto found = by_name.find(workspace.name);
    json::object object =
        WorkspaceObject(workspace, found != by_name.end() ? found->second : nullptr);
    if (Matches(object, selector)) items.emplace_back(std::move(object));
  }
  return SerializeScrubbed(json::object{{"items", std::move(items)}});
}

std::string EventListJson(const std::vector<Event>& events) {
  json::array items;
  items.reserve(events.size());
  for (const Event& event : events) {
    items.emplace_back(json::object{{"id", event.id},
                                    {"workspace", event.workspace},
                                    {"type", event.type},
                                    {"reason", event.reason},
                                    {"message", event.message},
                                    {"time", FormatRfc3339Utc(event.at_unix)}});
  }
  return SerializeScrubbed(json::object{{"items", std::move(items)}});
}

std::string SourceListJson(const std::vector<SourceStatus>& sources) {
  json::array items;
  items.reserve(sources.size());
  for (const SourceStatus& source : sources) {
    json::object item{{"name", source.name},         {"kind", source.kind},
                      {"revision", source.revision}, {"ready", source.ready},
                      {"reason", source.reason},     {"message", source.message}};
    if (source.last_sync_unix != 0) item["lastSyncTime"] = FormatRfc3339Utc(source.last_sync_unix);
    if (source.last_attempt_unix != 0) {
      item["lastAttemptTime"] = FormatRfc3339Utc(source.last_attempt_unix);
    }
    items.emplace_back(std::move(item));
  }
  return SerializeScrubbed(json::object{{"items", std::move(items)}});
}

const char* ErrorCode(int status) {
  switch (status) {
    case 400: return "BadRequest";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "NotFound";
    case 405: return "MethodNotAllowed";
    case 409: return "Conflict";
    case 413: return "PayloadTooLarge";
    case 415: return "UnsupportedMediaType";
    case 422: return "Invalid";
    case 429: return "TooManyRequests";
    case 431: return "HeaderTooLarge";
    case 500: return "Internal";
    case 503: return "Unavailable";
    default: return "Error";
  }
}

std::string VersionJson(std::string_view version) {
  json::object object;
  object["version"] = version;
  return json::serialize(object);
}

std::string ErrorJson(std::string_view code, std::string_view message,
                      std::string_view details_json) {
  json::object out{{"error", code}, {"message", message}};
  if (!details_json.empty()) {
    boost::system::error_code ec;
    json::value details = json::parse(details_json, ec);
    if (!ec) out["details"] = std::move(details);
  }
  return SerializeScrubbed(std::move(out));
}

std::string WebhookAnswerJson(std::string_view verdict, std::string_view message, int status) {
  json::object out{{"verdict", verdict}, {"message", message}};
  if (status >= 400) out["error"] = ErrorCode(status);
  return SerializeScrubbed(std::move(out));
}

}  // namespace tmaster::controller
