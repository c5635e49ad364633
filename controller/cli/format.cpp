#include "controller/cli/format.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <iterator>

#include "common/text.hpp"
#include "controller/cli/json_util.hpp"

namespace tmaster::cli {
namespace {

using detail::At;
namespace json = boost::json;
using detail::Text;

std::optional<int> Digits(std::string_view text, std::size_t at, std::size_t count) {
  if (at + count > text.size()) return std::nullopt;
  int value = 0;
  for (std::size_t i = at; i < at + count; ++i) {
    if (text[i] < '0' || text[i] > '9') return std::nullopt;
    value = value * 10 + (text[i] - '0');
  }
  return value;
}

// Days since 1970-01-01 of a civil date (H. Hinnant's days_from_civil), so that no time zone of
// the process takes part.
std::int64_t DaysFromCivil(std::int64_t y, int m, int d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153U * static_cast<unsigned>(m + (m > 2 ? -3 : 9)) + 2U) / 5U +
                       static_cast<unsigned>(d) - 1U;
  const unsigned doe = yoe * 365U + yoe / 4U - yoe / 100U + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

std::string OrNone(std::string text) { return text.empty() ? "<none>" : text; }

std::string AgeSince(std::optional<std::int64_t> since, std::int64_t now_unix,
                     std::string_view missing = "<unknown>") {
  if (!since) return std::string(missing);
  return FormatAge(now_unix - *since);
}

const json::value* Condition(const json::value& object, std::string_view type) {
  const json::value* conditions = At(object, {"status", "conditions"});
  if (conditions == nullptr || !conditions->is_array()) return nullptr;
  for (const json::value& condition : conditions->get_array()) {
    if (Text(At(condition, {"type"})) == type) return &condition;
  }
  return nullptr;
}

std::optional<std::int64_t> SinceOf(const json::value& object) {
  if (auto created = detail::ParseTimeValue(At(object, {"metadata", "creationTimestamp"}))) {
    return created;
  }
  std::optional<std::int64_t> earliest;
  const auto consider = [&](const json::value* time) {
    const std::optional<std::int64_t> at = detail::ParseTimeValue(time);
    if (at && (!earliest || *at < *earliest)) earliest = at;
  };
  if (const json::value* conditions = At(object, {"status", "conditions"})) {
    if (const json::array* array = conditions->if_array()) {
      for (const json::value& c : *array) consider(At(c, {"lastTransitionTime"}));
    }
  }
  if (const json::value* runs = At(object, {"status", "lastRuns"})) {
    if (const json::array* array = runs->if_array()) {
      for (const json::value& run : *array) consider(At(run, {"start"}));
    }
  }
  return earliest;
}

std::string NameOf(Resource resource, const json::value& item) {
  switch (resource) {
    case Resource::kWorkspace: return Text(At(item, {"metadata", "name"}));
    case Resource::kEvent:
    case Resource::kToken:
    case Resource::kEndpoint: return Text(At(item, {"id"}));
    case Resource::kMove: return Text(At(item, {"workspace"}));
    case Resource::kProduct:
    case Resource::kSource:
    case Resource::kCluster: return Text(At(item, {"name"}));
  }
  return {};
}

std::string Count(const json::value* value) {
  if (value == nullptr) return "0";
  if (const json::array* array = value->if_array()) return std::to_string(array->size());
  return Text(value, "0");
}

std::string Joined(const json::value* value) {
  if (value == nullptr) return {};
  const json::array* array = value->if_array();
  if (array == nullptr) return Text(value);
  std::vector<std::string> parts;
  for (const json::value& item : *array) parts.push_back(Text(&item));
  return Join(parts, ",");
}

// REV of `get workspaces`: status.productRevision, the product revision the workspace converged
// on (docs/rollouts.md#revisions); `<none>` while 0 (no pass recorded one) or absent.
std::string WorkspaceRevision(const json::value& item) {
  const json::value* revision = At(item, {"status", "productRevision"});
  const std::string text = revision != nullptr && revision->is_number() ? Text(revision) : "";
  return text.empty() || text == "0" ? "<none>" : text;
}

// REVISION of `get products`: the number of the product's newest revision; `<none>` while the
// store has not numbered it (0), `<unknown>` when the server says null (its migrations or
// template cannot be read) or sends none.
std::string ProductRevision(const json::value& item) {
  const json::value* revision = At(item, {"revision"});
  if (revision == nullptr || !revision->is_object()) return "<unknown>";
  const std::string number = Text(At(*revision, {"number"}));
  if (number.empty()) return "<unknown>";
  return number == "0" ? "<none>" : number;
}

// ROLLOUT of `get products`: the phase and the wave of its latest rollout (`Progressing 2/3`,
// `Halted 1/3`, `Completed 3/3`), `<none>` when it never had one (rolloutStatus null).
std::string RolloutColumn(const json::value& item) {
  const json::value* status = At(item, {"rolloutStatus"});
  if (status == nullptr || !status->is_object()) return "<none>";
  return Text(At(*status, {"phase"}), "?") + " " + Text(At(*status, {"currentWave"}), "?") + "/" +
         Text(At(*status, {"waveCount"}), "?");
}

// A move's `downtimeMs`: nullopt when null or absent (not known yet).
std::optional<std::int64_t> DowntimeOf(const json::value& item) {
  const json::value* ms = At(item, {"downtimeMs"});
  if (ms == nullptr || !ms->is_number()) return std::nullopt;
  return static_cast<std::int64_t>(ms->to_number<double>());
}

std::vector<std::string> Header(Resource resource, bool wide) {
  switch (resource) {
    case Resource::kWorkspace: {
      std::vector<std::string> h{"NAME", "PRODUCT", "REV", "MODE", "PHASE", "READY", "AGE"};
      if (wide) h.emplace_back("MESSAGE");
      return h;
    }
    case Resource::kProduct: {
      std::vector<std::string> h{"NAME",  "SOURCE",     "VERSION", "REVISION",
                                 "MODES", "WORKSPACES", "ROLLOUT"};
      if (wide) h.emplace_back("DISPLAY-NAME");
      return h;
    }
    case Resource::kSource: {
      std::vector<std::string> h{"NAME", "KIND", "READY", "REVISION", "LAST-SYNC"};
      if (wide) {
        h.emplace_back("REASON");
        h.emplace_back("MESSAGE");
      }
      return h;
    }
    case Resource::kEvent: return {"AGE", "TYPE", "REASON", "WORKSPACE", "MESSAGE"};
    case Resource::kToken: return {"ID", "ROLE", "DESCRIPTION", "EXPIRES", "LAST-USED", "AGE"};
    case Resource::kCluster: {
      std::vector<std::string> h{"NAME", "CAPACITY", "USED", "REACHABLE", "VERSION", "LABELS"};
      if (wide) h.emplace_back("MESSAGE");
      return h;
    }
    case Resource::kEndpoint: {
      std::vector<std::string> h{"ID", "KIND", "CAPACITY", "USED", "REACHABLE", "LABELS"};
      if (wide) {
        h.emplace_back("SWARM-ID");
        h.emplace_back("SHARED-RUNTIMES");
        h.emplace_back("CHECKED");
        h.emplace_back("MESSAGE");
      }
      return h;
    }
    case Resource::kMove: {
      std::vector<std::string> h{"WORKSPACE", "FROM", "TO", "STATE", "STEP", "AGE", "DOWNTIME"};
      if (wide) {
        h.emplace_back("REASON");
        h.emplace_back("MESSAGE");
      }
      return h;
    }
  }
  return {};
}

// LABELS of `get clusters` and `get endpoints`: key=value,... in key order, `<none>` without labels.
std::string LabelsColumn(const json::value* labels) {
  const json::object* object = labels != nullptr ? labels->if_object() : nullptr;
  if (object == nullptr || object->empty()) return "<none>";
  std::vector<std::string> parts;
  for (const auto& entry : *object) {
    parts.push_back(std::string(entry.key()) + "=" + Text(&entry.value()));
  }
  std::sort(parts.begin(), parts.end());
  return Join(parts, ",");
}

// REACHABLE of `get clusters` and `get endpoints`: True, False, or Unknown before the first check.
std::string Reachable(const json::value& item) {
  const json::value* reachable = At(item, {"reachable"});
  if (reachable == nullptr || !reachable->is_bool()) return "Unknown";
  return reachable->get_bool() ? "True" : "False";
}

// SHARED-RUNTIMES of `get endpoints -o wide`: the products, comma-separated; `<none>`.
std::string NameList(const json::value* names) {
  const json::array* array = names != nullptr ? names->if_array() : nullptr;
  std::string out;
  if (array != nullptr) {
    for (const json::value& name : *array) out += (out.empty() ? "" : ",") + Text(&name);
  }
  return OrNone(out);
}

// CAPACITY of `get endpoints`: the limit; `<unlimited>` for a configured endpoint without one;
// `<none>` for one outside `stacks.endpoints` (only named by workspaces: nothing is placed there).
std::string EndpointCapacity(const json::value& item) {
  const json::value* capacity = At(item, {"capacity"});
  if (capacity != nullptr && capacity->is_number()) return Text(capacity);
  const json::value* configured = At(item, {"configured"});
  return configured != nullptr && configured->is_bool() && !configured->get_bool() ? "<none>"
                                                                                   : "<unlimited>";
}

std::vector<std::string> Row(Resource resource, const json::value& item, bool wide,
                             std::int64_t now) {
  switch (resource) {
    case Resource::kWorkspace: {
      const json::value* ready = Condition(item, "Ready");
      std::vector<std::string> row{
          NameOf(resource, item),
          OrNone(Text(At(item, {"spec", "product"}))),
          WorkspaceRevision(item),
          OrNone(Text(At(item, {"spec", "mode"}))),
          Text(At(item, {"status", "phase"}), "Pending"),
          ready != nullptr ? Text(At(*ready, {"status"}), "Unknown") : "Unknown",
          AgeSince(SinceOf(item), now)};
      if (wide) {
        std::string message = ready != nullptr ? Text(At(*ready, {"message"})) : "";
        if (message.empty()) message = Text(At(item, {"status", "lastError"}));
        row.push_back(OneLine(message));
      }
      return row;
    }
    case Resource::kProduct: {
      std::vector<std::string> row{NameOf(resource, item),
                                   OrNone(Text(At(item, {"source"}))),
                                   OrNone(Text(At(item, {"defaultVersion"}))),
                                   ProductRevision(item),
                                   OrNone(Joined(At(item, {"modes"}))),
                                   Count(At(item, {"workspaces"})),
                                   RolloutColumn(item)};
      if (wide) row.push_back(OneLine(Text(At(item, {"displayName"}))));
      return row;
    }
    case Resource::kSource: {
      const json::value* ready = At(item, {"ready"});
      std::vector<std::string> row{
          NameOf(resource, item), Text(At(item, {"kind"})),
          ready != nullptr && ready->is_bool() ? (ready->get_bool() ? "True" : "False") : "Unknown",
          OrNone(Text(At(item, {"revision"}))),
          AgeSince(detail::ParseTimeValue(At(item, {"lastSyncTime"})), now, "<never>")};
      if (wide) {
        row.push_back(Text(At(item, {"reason"})));
        row.push_back(OneLine(Text(At(item, {"message"}))));
      }
      return row;
    }
    case Resource::kEvent:
      return {AgeSince(detail::ParseTimeValue(At(item, {"time"})), now),
              Text(At(item, {"type"})), Text(At(item, {"reason"})),
              Text(At(item, {"workspace"})), OneLine(Text(At(item, {"message"})))};
    case Resource::kToken: {
      const std::optional<std::int64_t> expires = detail::ParseTimeValue(At(item, {"expiresAt"}));
      std::string expiry = "<never>";
      if (expires) expiry = *expires <= now ? "expired" : "in " + FormatAge(*expires - now);
      return {NameOf(resource, item), Text(At(item, {"role"})),
              OneLine(Text(At(item, {"description"}))), expiry,
              AgeSince(detail::ParseTimeValue(At(item, {"lastUsedAt"})), now, "<never>"),
              AgeSince(detail::ParseTimeValue(At(item, {"createdAt"})), now)};
    }
    case Resource::kCluster: {
      const json::value* capacity = At(item, {"capacity"});
      std::vector<std::string> row{
          NameOf(resource, item),
          capacity != nullptr && capacity->is_number() ? Text(capacity) : "<unlimited>",
          Count(At(item, {"used"})),
          Reachable(item),
          OrNone(Text(At(item, {"serverVersion"}))), LabelsColumn(At(item, {"labels"}))};
      if (wide) row.push_back(OneLine(Text(At(item, {"reason"}))));
      return row;
    }
    case Resource::kEndpoint: {
      std::vector<std::string> row{NameOf(resource, item),
                                   Text(At(item, {"kind"}), "unknown"),
                                   EndpointCapacity(item),
                                   Count(At(item, {"used"})),
                                   Reachable(item),
                                   LabelsColumn(At(item, {"labels"}))};
      if (wide) {
        row.push_back(OrNone(Text(At(item, {"swarmId"}))));
        row.push_back(NameList(At(item, {"sharedRuntimes"})));
        row.push_back(AgeSince(detail::ParseTimeValue(At(item, {"checkedAt"})), now, "<never>"));
        row.push_back(OneLine(Text(At(item, {"reason"}))));
      }
      return row;
    }
    case Resource::kMove: {
      std::vector<std::string> row{
          NameOf(resource, item),
          OrNone(Text(At(item, {"from"}))),
          OrNone(Text(At(item, {"to"}))),
          Text(At(item, {"state"}), "<unknown>"),
          OrNone(Text(At(item, {"step"}))),
          AgeSince(detail::ParseTimeValue(At(item, {"requestedAt"})), now),
          FormatDowntime(DowntimeOf(item))};
      if (wide) {
        row.push_back(OrNone(Text(At(item, {"reason"}))));
        row.push_back(OneLine(Text(At(item, {"message"}))));
      }
      return row;
    }
  }
  return {};
}

Failure BadAnswer(std::string_view what) {
  return Failure::Stalled("BadAnswer", "the server's answer is not " + std::string(what));
}

}  // namespace

const char* ToString(Resource resource) {
  switch (resource) {
    case Resource::kWorkspace: return "workspace";
    case Resource::kProduct: return "product";
    case Resource::kSource: return "source";
    case Resource::kEvent: return "event";
    case Resource::kToken: return "token";
    case Resource::kCluster: return "cluster";
    case Resource::kEndpoint: return "endpoint";
    case Resource::kMove: return "move";
  }
  return "object";
}

std::string FormatAge(std::int64_t seconds) {
  const auto f = [](std::int64_t a, const char* ua, std::int64_t b = 0, const char* ub = "") {
    std::string out = std::to_string(a) + ua;
    if (b != 0) out += std::to_string(b) + ub;
    return out;
  };
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 120) return f(seconds, "s");
  const std::int64_t minutes = seconds / 60;
  if (minutes < 10) return f(minutes, "m", seconds % 60, "s");
  if (minutes < 180) return f(minutes, "m");
  const std::int64_t hours = seconds / 3600;
  if (hours < 8) return f(hours, "h", minutes % 60, "m");
  if (hours < 48) return f(hours, "h");
  if (hours < 24 * 8) return f(hours / 24, "d", hours % 24, "h");
  if (hours < 24 * 365 * 2) return f(hours / 24, "d");
  if (hours < 24 * 365 * 8) return f(hours / 24 / 365, "y", (hours / 24) % 365, "d");
  return f(hours / 24 / 365, "y");
}

std::optional<std::int64_t> ParseRfc3339(std::string_view text) {
  const auto year = Digits(text, 0, 4);
  const auto month = Digits(text, 5, 2);
  const auto day = Digits(text, 8, 2);
  const auto hour = Digits(text, 11, 2);
  const auto minute = Digits(text, 14, 2);
  const auto second = Digits(text, 17, 2);
  if (!year || !month || !day || !hour || !minute || !second || text[4] != '-' ||
      text[7] != '-' || (text[10] != 'T' && text[10] != 't' && text[10] != ' ') ||
      text[13] != ':' || text[16] != ':' || *month < 1 || *month > 12 || *day < 1 || *day > 31 ||
      *hour > 23 || *minute > 59 || *second > 60) {
    return std::nullopt;
  }
  std::size_t at = 19;
  if (at < text.size() && text[at] == '.') {
    ++at;
    const std::size_t digits = at;
    while (at < text.size() && text[at] >= '0' && text[at] <= '9') ++at;
    if (at == digits) return std::nullopt;
  }
  std::int64_t offset = 0;
  const std::string_view zone = text.substr(at);
  if (zone == "Z" || zone == "z") {
    offset = 0;
  } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
    const auto zh = Digits(zone, 1, 2);
    const auto zm = Digits(zone, 4, 2);
    if (!zh || !zm) return std::nullopt;
    offset = (*zh * 3600 + *zm * 60) * (zone[0] == '-' ? -1 : 1);
  } else {
    return std::nullopt;
  }
  return DaysFromCivil(*year, *month, *day) * 86400 + *hour * 3600 + *minute * 60 + *second -
         offset;
}

std::optional<std::int64_t> WorkspaceSince(std::string_view object_json) {
  const std::optional<json::value> object = detail::ParseJson(object_json);
  if (!object) return std::nullopt;
  return SinceOf(*object);
}

std::string AlignColumns(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (std::size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    for (std::size_t i = 0; i < row.size(); ++i) {
      out += row[i];
      if (i + 1 < row.size()) out.append(widths[i] - row[i].size() + 3, ' ');
    }
    out += '\n';
  }
  return out;
}

Outcome<std::string> FormatItems(Resource resource, std::string_view items_json,
                                 std::string_view output, std::int64_t now_unix) {
  const std::optional<json::value> parsed = detail::ParseJson(items_json);
  if (!parsed || !parsed->is_array()) return BadAnswer("a JSON list");
  const json::array& items = parsed->get_array();
  if (output == "json") return detail::PrettyJson(json::object{{"items", items}});
  if (output == "yaml") return detail::ToYaml(json::object{{"items", items}});
  if (output == "name") {
    std::string out;
    for (const json::value& item : items) {
      out += std::string(ToString(resource)) + "/" + NameOf(resource, item) + "\n";
    }
    return out;
  }
  const bool wide = output == "wide";
  std::vector<std::vector<std::string>> rows{Header(resource, wide)};
  for (const json::value& item : items) rows.push_back(Row(resource, item, wide, now_unix));
  return AlignColumns(rows);
}

Outcome<std::string> FormatObject(Resource resource, std::string_view object_json,
                                  std::string_view output, std::int64_t now_unix) {
  const std::optional<json::value> parsed = detail::ParseJson(object_json);
  if (!parsed || !parsed->is_object()) return BadAnswer("a JSON object");
  if (output == "json") return detail::PrettyJson(*parsed);
  if (output == "yaml") return detail::ToYaml(*parsed);
  return FormatItems(resource, json::serialize(json::array{*parsed}), output, now_unix);
}

std::string FormatBytes(std::int64_t bytes) {
  if (bytes < 1000) return std::to_string(bytes) + " B";
  static constexpr const char* kUnits[] = {"kB", "MB", "GB", "TB", "PB"};
  double value = static_cast<double>(bytes);
  std::size_t unit = 0;
  value /= 1000.0;
  while (value >= 999.95 && unit + 1 < std::size(kUnits)) {
    value /= 1000.0;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof text, "%.1f %s", value, kUnits[unit]);
  return text;
}

Outcome<std::string> FormatBackups(std::string_view answer_json, std::string_view output,
                                   std::int64_t now_unix) {
  const std::optional<json::value> parsed = detail::ParseJson(answer_json);
  const json::array* items = parsed ? detail::ArrayAt(*parsed, "items") : nullptr;
  if (items == nullptr) return BadAnswer("a list of backups ({\"items\": [...]})");
  if (output == "json") return detail::PrettyJson(*parsed);
  if (output == "yaml") return detail::ToYaml(*parsed);
  std::vector<std::vector<std::string>> rows{
      {"ID", "KIND", "STATE", "SIZE", "AGE", "VERIFIED", "MIGRATION"}};
  if (const json::array* pending = detail::ArrayAt(*parsed, "pending")) {
    for (const json::value& q : *pending) {
      rows.push_back({Text(At(q, {"id"})), Text(At(q, {"kind"})), Text(At(q, {"state"})),
                      "<none>", AgeSince(detail::ParseTimeValue(At(q, {"queuedAt"})), now_unix),
                      "<none>", "<none>"});
    }
  }
  for (const json::value& item : *items) {
    const json::value* size = At(item, {"sizeBytes"});
    const std::string state = Text(At(item, {"state"}));
    rows.push_back(
        {Text(At(item, {"id"})), Text(At(item, {"kind"})), state,
         state == "failed" || size == nullptr || !size->is_number()
             ? "<none>"
             : FormatBytes(size->to_number<std::int64_t>()),
         AgeSince(detail::ParseTimeValue(At(item, {"createdAt"})), now_unix),
         AgeSince(detail::ParseTimeValue(At(item, {"verifiedAt"})), now_unix, "<never>"),
         OrNone(Text(At(item, {"appliedMigration"})))});
  }
  return AlignColumns(rows);
}

namespace {

// `"Label:"` padded to the width of the longest label of `rollout status`, as kubectl's
// describe aligns its first column.
std::string Field(std::string_view label) {
  std::string out(label);
  out += ':';
  out.append(out.size() < 11 ? 11 - out.size() : 1, ' ');
  return out;
}

// Empty for null, absent or "" (an optional member the server may send either way).
std::string Optional(const json::value* value) {
  return value == nullptr || value->is_null() ? std::string() : Text(value);
}

// Each line without the spaces AlignColumns pads before an empty last cell.
std::string TrimLineEnds(const std::string& text) {
  std::string out;
  std::size_t begin = 0;
  while (begin < text.size()) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    std::size_t last = end;
    while (last > begin && text[last - 1] == ' ') --last;
    out.append(text, begin, last - begin);
    out += '\n';
    begin = end + 1;
  }
  return out;
}

}  // namespace

Outcome<std::string> FormatRolloutStatus(std::string_view answer_json, std::string_view output) {
  const std::optional<json::value> parsed = detail::ParseJson(answer_json);
  if (!parsed || !parsed->is_object() || Text(At(*parsed, {"product"})).empty()) {
    return BadAnswer("a rollout status ({\"product\", \"revision\", \"rollout\", ...})");
  }
  if (output == "json") return detail::PrettyJson(*parsed);
  if (output == "yaml") return detail::ToYaml(*parsed);
  std::string out = Field("Product") + Text(At(*parsed, {"product"})) + "\n";
  const json::value* rollout = At(*parsed, {"rollout"});
  if (rollout == nullptr || !rollout->is_object()) {
    // No rollout yet: the product's revision is where every workspace is headed, at once or by
    // the next rollout.
    const json::value* revision = At(*parsed, {"revision"});
    const std::string number = revision != nullptr ? Optional(At(*revision, {"number"})) : "";
    const std::string digest = revision != nullptr ? Optional(At(*revision, {"digest"})) : "";
    out += Field("Revision") +
           (number.empty() ? std::string("unknown (not recorded yet, or its files cannot be read)")
                           : number + (digest.empty() ? "" : " (digest " + digest + ")")) +
           "\n";
    out += Field("Rollout") + "none\n";
  } else {
    const std::string from = Optional(At(*rollout, {"previousRevision"}));
    std::string line = Field("Revision") + Text(At(*rollout, {"revision"}), "?") +
                       (from.empty() || from == "0" ? "" : " (from " + from + ")");
    line += "   Phase: " + Text(At(*rollout, {"phase"}), "?");
    line += "   Wave: " + Text(At(*rollout, {"currentWave"}), "?") + "/" +
            Text(At(*rollout, {"waveCount"}), "?");
    if (const std::string started = Optional(At(*rollout, {"startedAt"})); !started.empty()) {
      line += "   Started: " + started;
    }
    if (const std::string finished = Optional(At(*rollout, {"finishedAt"})); !finished.empty()) {
      line += "   Finished: " + finished;
    }
    out += line + "\n";
    const json::value* by_person = At(*rollout, {"pausedByPerson"});
    const bool person = by_person != nullptr && by_person->is_bool() && by_person->get_bool();
    const std::string until = Optional(At(*rollout, {"pausedUntil"}));
    if (person) {
      out += Field("Paused") + "by a person (`rollout resume` goes on" +
             (until.empty() ? std::string() : "; the pause between waves ends at " + until) + ")\n";
    } else if (!until.empty()) {
      out += Field("Paused") + "between waves until " + until +
             " (`rollout promote` starts the next wave now)\n";
    }
    std::string counts;
    for (const char* state : {"pending", "inProgress", "ready", "failed"}) {
      counts += (counts.empty() ? "" : "  ") + std::string(state) + " " +
                Text(At(*rollout, {"counts", state}), "0");
    }
    out += Field("Counts") + counts + "\n";
  }
  if (const json::value* refused = At(*parsed, {"refused"});
      refused != nullptr && refused->is_object()) {
    const std::string revision = Optional(At(*refused, {"revision"}));
    const std::string reason = Text(At(*refused, {"reason"}));
    out += Field("Refused") + (revision.empty() ? "" : "revision " + revision + ": ") +
           (reason.empty() ? "" : reason + ": ") + OneLine(Text(At(*refused, {"message"}))) +
           "\n";
  }
  const bool has_rollout = rollout != nullptr && rollout->is_object();
  const json::array* workspaces = has_rollout ? detail::ArrayAt(*rollout, "workspaces") : nullptr;
  if (workspaces == nullptr || workspaces->empty()) return out;
  bool restores = false;
  for (const json::value& w : *workspaces) restores |= !Optional(At(w, {"restore"})).empty();
  std::vector<std::vector<std::string>> rows{{"WORKSPACE", "WAVE", "STATE", "FROM", "BACKUP"}};
  if (restores) rows.front().emplace_back("RESTORE");
  rows.front().emplace_back("REASON");
  for (const json::value& w : *workspaces) {
    std::vector<std::string> row{Text(At(w, {"name"})), Text(At(w, {"wave"})),
                                 Text(At(w, {"state"})), OrNone(Optional(At(w, {"fromRevision"}))),
                                 OrNone(Optional(At(w, {"preMigrationBackup"})))};
    if (restores) row.push_back(OrNone(Optional(At(w, {"restore"}))));
    // Free text last, so that the columns before it stay one word each.
    row.push_back(OneLine(Optional(At(w, {"reason"}))));
    rows.push_back(std::move(row));
  }
  return out + TrimLineEnds(AlignColumns(rows));
}

namespace {

void Section(std::string& out, std::string_view title) {
  out += title;
  out += ":\n";
}

std::string Indented(std::string_view text, std::string_view prefix) {
  std::string out;
  std::size_t begin = 0;
  while (begin < text.size()) {
    const std::size_t end = text.find('\n', begin);
    const std::string_view line =
        text.substr(begin, end == std::string_view::npos ? std::string_view::npos : end - begin);
    out += prefix;
    out += line;
    out += '\n';
    if (end == std::string_view::npos) break;
    begin = end + 1;
  }
  return out;
}

std::string Labels(const json::value& object) {
  const json::value* labels = At(object, {"metadata", "labels"});
  if (labels == nullptr || !labels->is_object() || labels->get_object().empty()) return "<none>";
  std::vector<std::string> parts;
  for (const auto& member : labels->get_object()) {
    parts.push_back(std::string(member.key()) + "=" + Text(&member.value()));
  }
  return Join(parts, ",");
}

}  // namespace

std::string DescribeWorkspace(std::string_view object_json, std::string_view events_json,
                              const std::string& plan_text, std::int64_t now_unix) {
  const std::optional<json::value> parsed = detail::ParseJson(object_json);
  if (!parsed || !parsed->is_object()) return "the server's answer is not a JSON object\n";
  const json::value& object = *parsed;
  std::string out;
  out += AlignColumns({
      {"Name:", Text(At(object, {"metadata", "name"}))},
      {"Source:", OrNone(Text(At(object, {"metadata", "annotations", "tenantmaster.io/source"})))},
      {"Revision:",
       OrNone(Text(At(object, {"metadata", "annotations", "tenantmaster.io/revision"})))},
      {"Labels:", Labels(object)},
      {"Generation:", Text(At(object, {"metadata", "generation"}), "<none>")},
      {"Phase:", Text(At(object, {"status", "phase"}), "Pending")},
      {"Observed Generation:", Text(At(object, {"status", "observedGeneration"}), "0")},
      {"Age:", AgeSince(SinceOf(object), now_unix)},
  });
  if (const json::value* deleting = At(object, {"metadata", "deletionTimestamp"})) {
    out += AlignColumns({{"Deleting Since:", Text(deleting)}});
  }
  if (const json::value* next = At(object, {"status", "nextRetry"})) {
    out += AlignColumns({{"Next Retry:", Text(next)}});
  }
  if (const json::value* override_ = At(object, {"status", "override"})) {
    out += AlignColumns({{"Override:", OneLine(json::serialize(*override_))}});
  }
  Section(out, "Spec");
  if (const json::value* spec = At(object, {"spec"})) {
    out += Indented(detail::ToYaml(*spec), "  ");
  } else {
    out += "  <none>\n";
  }

  Section(out, "Conditions");
  const json::value* conditions = At(object, {"status", "conditions"});
  if (conditions != nullptr && conditions->is_array() && !conditions->get_array().empty()) {
    std::vector<std::vector<std::string>> rows{{"TYPE", "STATUS", "REASON", "AGE", "MESSAGE"}};
    for (const json::value& c : conditions->get_array()) {
      rows.push_back({Text(At(c, {"type"})), Text(At(c, {"status"})), Text(At(c, {"reason"})),
                      AgeSince(detail::ParseTimeValue(At(c, {"lastTransitionTime"})), now_unix),
                      OneLine(Text(At(c, {"message"})))});
    }
    out += Indented(AlignColumns(rows), "  ");
  } else {
    out += "  <none>\n";
  }

  Section(out, "Last Runs");
  const json::value* runs = At(object, {"status", "lastRuns"});
  if (runs != nullptr && runs->is_array() && !runs->get_array().empty()) {
    std::vector<std::vector<std::string>> rows{{"START", "AGE", "DURATION", "RESULT", "REASON"}};
    for (const json::value& run : runs->get_array()) {
      const json::value* seconds = At(run, {"durationSeconds"});
      rows.push_back({Text(At(run, {"start"})),
                      AgeSince(detail::ParseTimeValue(At(run, {"start"})), now_unix),
                      seconds != nullptr ? Text(seconds) + "s" : "", Text(At(run, {"result"})),
                      Text(At(run, {"reason"}))});
    }
    out += Indented(AlignColumns(rows), "  ");
  } else {
    out += "  <none>\n";
  }

  Section(out, "Events");
  const std::optional<json::value> events = detail::ParseJson(events_json);
  if (events && events->is_array() && !events->get_array().empty()) {
    std::vector<std::vector<std::string>> rows{{"AGE", "TYPE", "REASON", "MESSAGE"}};
    for (const json::value& e : events->get_array()) {
      rows.push_back({AgeSince(detail::ParseTimeValue(At(e, {"time"})), now_unix),
                      Text(At(e, {"type"})), Text(At(e, {"reason"})),
                      OneLine(Text(At(e, {"message"})))});
    }
    out += Indented(AlignColumns(rows), "  ");
  } else if (events) {
    out += "  <none>\n";
  } else {
    out += Indented(events_json, "  ");  // why there are none (the caller's one line)
  }

  if (!plan_text.empty()) {
    Section(out, "Plan");
    out += Indented(plan_text, "  ");
  }
  return out;
}

std::string FormatDowntime(std::optional<std::int64_t> milliseconds) {
  if (!milliseconds) return "<none>";
  if (*milliseconds < 1000) return std::to_string(*milliseconds) + "ms";
  if (*milliseconds < 60'000) {
    const std::int64_t tenths = (*milliseconds + 50) / 100;  // half up, as people round
    return std::to_string(tenths / 10) + "." + std::to_string(tenths % 10) + "s";
  }
  return FormatAge(*milliseconds / 1000);
}

Outcome<std::string> DescribeMove(std::string_view move_json, std::int64_t now_unix) {
  const std::optional<json::value> parsed = detail::ParseJson(move_json);
  if (!parsed || !parsed->is_object()) return BadAnswer("a move");
  const json::value& move = *parsed;
  const std::string workspace = Text(At(move, {"workspace"}));
  const std::string from = Text(At(move, {"from"}));
  const std::string to = Text(At(move, {"to"}));
  const std::string state = Text(At(move, {"state"}), "<unknown>");
  std::string out;
  const auto line = [&out](std::string_view label, const std::string& value) {
    out += Field(label) + value + "\n";
  };
  const auto when = [&](std::string_view label, std::string_view key, const std::string& tail) {
    const std::string at = Optional(At(move, {key}));
    if (at.empty()) return;
    const std::optional<std::int64_t> since = ParseRfc3339(at);
    line(label, at + (since ? " (" + FormatAge(now_unix - *since) + " ago)" : "") + tail);
  };
  line("Workspace", workspace);
  line("Move", Text(At(move, {"id"})));
  line("From", OrNone(from));
  line("To", OrNone(to));
  const std::string step = Text(At(move, {"step"}));
  line("State", state + (step.empty() ? "" : " (step " + step + ")"));
  line("Message", OneLine(Text(At(move, {"message"}))));
  if (const std::string reason = Optional(At(move, {"reason"})); !reason.empty()) {
    line("Reason", reason);
  }
  if (const std::string verified = Optional(At(move, {"verified"})); !verified.empty()) {
    line("Verified", OneLine(verified));
  }
  const std::string who = Text(At(move, {"who"}));
  when("Requested", "requestedAt", who.empty() ? "" : " by " + who);
  when("Updated", "updatedAt", "");
  when("Finished", "finishedAt", "");
  when("Pruned", "prunedAt", "");
  line("Downtime", FormatDowntime(DowntimeOf(move)));
  const json::value* switched = At(move, {"switched"});
  const bool on_target = switched != nullptr && switched->is_bool() && switched->get_bool();
  line("Placement", on_target ? "switched to " + OrNone(to) : "on " + OrNone(from));
  const json::value* suspended = At(move, {"suspendedByMove"});
  if (suspended != nullptr && suspended->is_bool() && suspended->get_bool() &&
      state != "succeeded" && state != "failed" && state != "pruned") {
    line("Suspended", "by this move (it resumes the workspace when it ends)");
  }
  if (state == "succeeded") {
    line("Next", "the source on " + OrNone(from) + " is kept (NOLOGIN): `tenantctl move --prune " +
                     workspace + "` drops it");
  }
  return out;
}

PlanSummary SummarizePlan(std::string_view plan_json) {
  PlanSummary summary;
  const std::optional<json::value> parsed = detail::ParseJson(plan_json);
  const json::array* items = parsed ? detail::ArrayAt(*parsed, "items") : nullptr;
  if (items == nullptr) {
    summary.valid = false;
    summary.text = "the server's answer is not a plan\n";
    return summary;
  }
  for (const json::value& item : *items) {
    const std::string name = Text(At(item, {"workspace"}));
    const json::array* actions = detail::ArrayAt(item, "actions");
    const std::size_t count = actions != nullptr ? actions->size() : 0;
    const json::value* converged = At(item, {"converged"});
    const bool is_converged = converged != nullptr && converged->is_bool() && converged->get_bool();
    const json::value* blocked = At(item, {"blocked"});
    std::string blocked_text;
    if (blocked != nullptr && !blocked->is_null() && !(blocked->is_bool() && !blocked->get_bool())) {
      blocked_text = blocked->is_string() ? Text(blocked) : json::serialize(*blocked);
    }
    summary.text += "workspace/" + name + ": ";
    if (count > 0) {
      summary.text += std::to_string(count) + (count == 1 ? " action" : " actions");
    } else {
      summary.text += is_converged ? "converged" : "not converged, no action possible now";
    }
    if (!blocked_text.empty()) summary.text += " (blocked: " + OneLine(blocked_text) + ")";
    summary.text += '\n';
    if (actions != nullptr) {
      for (const json::value& action : *actions) {
        summary.text += "  + " + Text(At(action, {"kind"})) + ": " +
                        OneLine(Text(At(action, {"description"}))) + "\n";
      }
    }
    if (count > 0 || !is_converged) summary.differences = true;
  }
  if (const json::array* diagnostics = detail::ArrayAt(*parsed, "diagnostics")) {
    for (const json::value& d : *diagnostics) {
      const std::string severity = Lower(Text(At(d, {"severity"}), "error"));
      if (severity != "notice" && severity != "warning") summary.errors = true;
    }
  }
  return summary;
}

}  // namespace tmaster::cli
