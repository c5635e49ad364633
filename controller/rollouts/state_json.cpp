#include "controller/rollouts/state_json.hpp"

#include <boost/json.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>

namespace tmaster::rollouts {
namespace json = boost::json;
namespace {

constexpr std::array<Phase, 7> kPhases = {Phase::kProgressing, Phase::kPaused,    Phase::kHalted,
                                          Phase::kCompleted,   Phase::kAborted,   Phase::kUndone,
                                          Phase::kSuperseded};
constexpr std::array<WorkspaceState, 4> kStates = {WorkspaceState::kPending,
                                                   WorkspaceState::kInProgress,
                                                   WorkspaceState::kReady, WorkspaceState::kFailed};

json::value OptionalInt(const std::optional<std::int64_t>& value) {
  return value ? json::value(*value) : json::value(nullptr);
}

Failure Corrupt(std::string_view field, std::string_view what) {
  return Failure::Stalled("CorruptRollout",
                          "stored rollout: " + std::string(field) + ": " + std::string(what));
}

// Typed reads of one object's fields; the first problem is kept.
class Reader {
 public:
  Reader(const json::object& object, std::string prefix)
      : object_(object), prefix_(std::move(prefix)) {}

  std::string Text(std::string_view key) {
    const json::value* value = Find(key);
    if (value == nullptr) return {};
    if (!value->is_string()) return Fail(key, "must be a string"), std::string();
    return std::string(value->get_string());
  }
  std::int64_t Int(std::string_view key) {
    const json::value* value = Find(key);
    if (value == nullptr) return 0;
    if (!value->is_int64()) return Fail(key, "must be an integer"), 0;
    return value->get_int64();
  }
  std::optional<std::int64_t> MaybeInt(std::string_view key) {
    const json::value* value = Find(key);
    if (value == nullptr || value->is_null()) return std::nullopt;
    if (!value->is_int64()) return Fail(key, "must be an integer or null"), std::nullopt;
    return value->get_int64();
  }
  bool Bool(std::string_view key) {
    const json::value* value = Find(key);
    if (value == nullptr) return false;
    if (!value->is_bool()) return Fail(key, "must be true or false"), false;
    return value->get_bool();
  }
  const json::array* Array(std::string_view key) {
    const json::value* value = Find(key);
    if (value == nullptr) return nullptr;
    if (!value->is_array()) return Fail(key, "must be an array"), nullptr;
    return &value->get_array();
  }
  void Fail(std::string_view key, std::string_view what) {
    if (!failure_) failure_ = Corrupt(prefix_ + std::string(key), what);
  }
  std::optional<Failure>& failure() { return failure_; }

 private:
  const json::value* Find(std::string_view key) {
    const json::value* value = object_.if_contains(key);
    if (value == nullptr) Fail(key, "missing");
    return value;
  }
  const json::object& object_;
  std::string prefix_;
  std::optional<Failure> failure_;
};

// The value of `words` that ToString spells `word`; nullopt for none.
template <class T, std::size_t N>
std::optional<T> FromWord(const std::array<T, N>& words, const std::string& word) {
  for (const T candidate : words) {
    if (ToString(candidate) == word) return candidate;
  }
  return std::nullopt;
}

int Narrow(Reader& reader, std::string_view key, std::int64_t value) {
  if (value < 0 || value > 1'000'000'000) {
    reader.Fail(key, "out of range");
    return 0;
  }
  return static_cast<int>(value);
}

}  // namespace

std::string StateToJson(const RolloutState& state) {
  json::array workspaces;
  for (const WorkspaceEntry& entry : state.workspaces) {
    workspaces.push_back(json::object{{"name", entry.name},
                                      {"wave", entry.wave},
                                      {"state", std::string(ToString(entry.state))},
                                      {"fromRevision", entry.from_revision},
                                      {"reason", entry.reason},
                                      {"preMigrationBackup", entry.pre_migration_backup},
                                      {"targetSetAt", OptionalInt(entry.target_set_unix)},
                                      {"attempt", entry.attempt},
                                      {"restore", entry.restore}});
  }
  const json::object object{{"product", state.product},
                            {"revision", state.revision},
                            {"previousRevision", state.previous_revision},
                            {"phase", std::string(ToString(state.phase))},
                            {"currentWave", state.current_wave},
                            {"waveCount", state.wave_count},
                            {"pausedUntil", OptionalInt(state.paused_until)},
                            {"pausedByPerson", state.paused_by_person},
                            {"startedAt", state.started_unix},
                            {"finishedAt", OptionalInt(state.finished_unix)},
                            {"retired", state.retired},
                            {"version", state.version},
                            {"workspaces", std::move(workspaces)}};
  return json::serialize(object);
}

Outcome<RolloutState> StateFromJson(const std::string& text) {
  boost::system::error_code error;
  const json::value parsed = json::parse(text, error);
  if (error) return Corrupt("(the text)", "not JSON: " + error.message());
  if (!parsed.is_object()) return Corrupt("(the text)", "not a JSON object");
  Reader top(parsed.get_object(), "");
  RolloutState state;
  state.product = top.Text("product");
  state.revision = Narrow(top, "revision", top.Int("revision"));
  state.previous_revision = Narrow(top, "previousRevision", top.Int("previousRevision"));
  const std::string phase = top.Text("phase");
  if (const std::optional<Phase> known = FromWord(kPhases, phase)) {
    state.phase = *known;
  } else {
    top.Fail("phase", "unknown phase \"" + phase + "\"");
  }
  state.current_wave = Narrow(top, "currentWave", top.Int("currentWave"));
  state.wave_count = Narrow(top, "waveCount", top.Int("waveCount"));
  state.paused_until = top.MaybeInt("pausedUntil");
  state.paused_by_person = top.Bool("pausedByPerson");
  state.started_unix = top.Int("startedAt");
  state.finished_unix = top.MaybeInt("finishedAt");
  state.retired = top.Bool("retired");
  if (state.retired && !Ended(state.phase)) top.Fail("retired", "a running rollout is not retired");
  state.version = top.Int("version");
  if (state.current_wave > state.wave_count) top.Fail("currentWave", "beyond waveCount");
  if (const json::array* entries = top.Array("workspaces")) {
    for (std::size_t i = 0; i < entries->size() && !top.failure(); ++i) {
      const std::string at = "workspaces[" + std::to_string(i) + "].";
      if (!(*entries)[i].is_object()) {
        top.Fail("workspaces[" + std::to_string(i) + "]", "must be an object");
        break;
      }
      Reader reader((*entries)[i].get_object(), at);
      WorkspaceEntry entry;
      entry.name = reader.Text("name");
      entry.wave = Narrow(reader, "wave", reader.Int("wave"));
      const std::string word = reader.Text("state");
      if (const std::optional<WorkspaceState> known = FromWord(kStates, word)) {
        entry.state = *known;
      } else {
        reader.Fail("state", "unknown workspace state \"" + word + "\"");
      }
      entry.from_revision = Narrow(reader, "fromRevision", reader.Int("fromRevision"));
      entry.reason = reader.Text("reason");
      entry.pre_migration_backup = reader.Text("preMigrationBackup");
      entry.target_set_unix = reader.MaybeInt("targetSetAt");
      entry.attempt = reader.Int("attempt");
      entry.restore = reader.Text("restore");
      if (entry.attempt < 0) reader.Fail("attempt", "negative");
      if (entry.name.empty()) reader.Fail("name", "empty");
      if (entry.wave >= state.wave_count) reader.Fail("wave", "beyond waveCount");
      if (reader.failure()) return *reader.failure();
      state.workspaces.push_back(std::move(entry));
    }
  }
  if (top.failure()) return *top.failure();
  return state;
}

}  // namespace tmaster::rollouts
