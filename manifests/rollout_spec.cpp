#include "manifests/rollout_spec.hpp"

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>

#include "manifests/config.hpp"
#include "manifests/naming.hpp"
#include "manifests/yaml_support.hpp"

namespace tmaster::manifests::detail {
namespace {

constexpr const char* kDurationExample = "a duration such as 90s, 5m or 1h30m";

// Reads one `spec.rollout`, collecting its findings. The helpers are members so that their names
// cannot clash with the loader's and the schema's in a unity build (cmake/BuildTime.cmake).
class RolloutReader {
 public:
  RolloutReader(const std::string& file, int line_offset, std::vector<Diagnostic>& errors)
      : file_(file), line_offset_(line_offset), errors_(errors) {}

  RolloutSpec Read(const YAML::Node& rollout, bool offers_dedicated) {
    const std::string path = "spec.rollout";
    RolloutSpec out;
    if (std::optional<Entry> waves = Find(rollout, "waves")) ReadWaves(waves->value, out);
    if (auto pause = ReadDuration(rollout, "pauseBetweenWaves", path, /*zero_allowed=*/true,
                                  kMaxPauseBetweenWaves)) {
      out.pause_between_waves = *pause;
    }
    out.max_unavailable = ReadInt(rollout, "maxUnavailable", out.max_unavailable);
    out.failure_budget = ReadInt(rollout, "failureBudget", out.failure_budget);
    if (auto timeout = ReadDuration(rollout, "readyTimeout", path, /*zero_allowed=*/false)) {
      out.ready_timeout = *timeout;
    }
    if (std::optional<Entry> check = Find(rollout, "healthCheck")) {
      if (!offers_dedicated) {
        Error(check->key.Mark(), path + ".healthCheck",
              "only allowed when the product offers the dedicated mode (spec.modes has no "
              "dedicated): it probes a dedicated workspace's own stack");
      }
      out.health_check = ReadHealthCheck(check->value, path + ".healthCheck");
    }
    return out;
  }

 private:
  struct Entry {
    YAML::Node key;
    YAML::Node value;
  };

  // `key` of the mapping `map`; nullopt when absent. A schema-valid document holds no explicit
  // null in these fields, so a null value means absent too.
  static std::optional<Entry> Find(const YAML::Node& map, const char* key) {
    if (!map.IsDefined() || !map.IsMap()) return std::nullopt;
    for (auto it = map.begin(); it != map.end(); ++it) {
      if (!it->first.IsScalar() || it->first.Scalar() != key) continue;
      if (!it->second.IsDefined() || it->second.IsNull()) return std::nullopt;
      return Entry{it->first, it->second};
    }
    return std::nullopt;
  }

  void Error(const YAML::Mark& mark, std::string field, std::string message) {
    errors_.push_back(Diagnostic{Diagnostic::Severity::kError,
                                 ToLocation(mark, file_, line_offset_), std::move(field),
                                 std::move(message)});
  }

  // An integer field the schema bounded to int32.
  static int ReadInt(const YAML::Node& map, const char* key, int fallback) {
    std::optional<Entry> found = Find(map, key);
    if (!found || !found->value.IsScalar()) return fallback;
    std::optional<std::int64_t> value = ParseInteger(found->value.Scalar());
    return value ? static_cast<int>(*value) : fallback;
  }

  // A duration field, parsed as the config's durations are; nullopt when absent or refused.
  // `zero_allowed`: 0s is a valid value (a pause), not only an above-zero one (a timeout).
  std::optional<std::chrono::seconds> ReadDuration(
      const YAML::Node& map, const char* key, const std::string& parent, bool zero_allowed,
      std::optional<std::chrono::seconds> max = std::nullopt) {
    std::optional<Entry> found = Find(map, key);
    if (!found) return std::nullopt;
    const YAML::Node& node = found->value;
    const std::string field = parent + "." + key;
    std::optional<std::chrono::seconds> value;
    if (node.IsScalar() && Resolve(node) == ScalarType::kString) {
      value = ParseDuration(node.Scalar());
    }
    if (!value) {
      Error(node.Mark(), field, std::string("must be ") + kDurationExample + ", got " +
                                    Describe(node));
      return std::nullopt;
    }
    if (!zero_allowed && value->count() <= 0) {
      Error(node.Mark(), field, "must be longer than 0s");
      return std::nullopt;
    }
    if (max && *value > *max) {
      Error(node.Mark(), field, "must be at most " + FormatDuration(*max) + ", got " +
                                    Quote(node.Scalar()));
      return std::nullopt;
    }
    return value;
  }

  void ReadWaves(const YAML::Node& waves, RolloutSpec& out) {
    if (!waves.IsSequence()) return;
    // The last percent wave so far and its index: percentages are cumulative.
    std::optional<std::pair<int, std::size_t>> last_percent;
    for (std::size_t i = 0; i < waves.size(); ++i) {
      const YAML::Node wave = waves[i];
      const std::string path = "spec.rollout.waves[" + std::to_string(i) + "]";
      out.waves.push_back(ReadWave(wave, path));
      const std::optional<int>& percent = out.waves.back().percent;
      if (!percent) continue;
      if (last_percent && *percent <= last_percent->first) {
        Error(Find(wave, "percent")->value.Mark(), path + ".percent",
              "must be greater than the percent of spec.rollout.waves[" +
                  std::to_string(last_percent->second) + "] (" +
                  std::to_string(last_percent->first) +
                  "): percentages are cumulative, each the share of the product's workspaces "
                  "reached once its wave is done");
      }
      last_percent = std::make_pair(*percent, i);
    }
  }

  RolloutWave ReadWave(const YAML::Node& wave, const std::string& path) {
    RolloutWave out;
    const std::optional<Entry> selector = Find(wave, "selector");
    const std::optional<Entry> percent = Find(wave, "percent");
    if (selector && percent) {
      Error(wave.Mark(), path,
            "a wave is either a selector or a percent, not both (write two waves for both)");
    } else if (!selector && !percent) {
      Error(wave.Mark(), path,
            "a wave needs a selector ({selector: {matchLabels: {...}}}) or a percent "
            "({percent: 10})");
    }
    if (percent) out.percent = ReadInt(wave, "percent", 0);
    if (selector) {
      if (std::optional<Entry> labels = Find(selector->value, "matchLabels")) {
        out.match_labels = ReadLabels(labels->value, path + ".selector.matchLabels");
      }
    }
    return out;
  }

  // Keys and values as metadata.labels are checked (manifests/schema.cpp, CheckStringMap).
  std::map<std::string, std::string> ReadLabels(const YAML::Node& labels,
                                                const std::string& path) {
    std::map<std::string, std::string> out;
    if (!labels.IsMap()) return out;
    for (auto it = labels.begin(); it != labels.end(); ++it) {
      if (!it->first.IsScalar() || !it->second.IsScalar()) continue;
      const std::string& key = it->first.Scalar();
      const std::string& value = it->second.Scalar();
      const std::string field = path + "[" + PathKey(key) + "]";
      if (std::optional<std::string> error = LabelKeyError(key)) {
        Error(it->first.Mark(), field, "invalid label key " + Quote(key) + ": " + *error);
      }
      if (std::optional<std::string> error = LabelValueError(value)) {
        Error(it->second.Mark(), field, "invalid label value " + Quote(value) + ": " + *error);
      }
      out.emplace(key, value);
    }
    return out;
  }

  RolloutHealthCheck ReadHealthCheck(const YAML::Node& check, const std::string& path) {
    RolloutHealthCheck out;
    if (std::optional<Entry> found = Find(check, "path"); found && found->value.IsScalar()) {
      out.path = found->value.Scalar();
      CheckHealthPath(found->value, path + ".path");
    }
    if (auto timeout = ReadDuration(check, "timeout", path, /*zero_allowed=*/false)) {
      out.timeout = *timeout;
    }
    return out;
  }

  // The path goes into an HTTP request line as is: a space or a control character would end or
  // forge it, and a raw byte above 0x7e is not allowed there (RFC 9112), so both are refused
  // rather than encoded behind the author's back. The CRD's rules on the field say the same.
  void CheckHealthPath(const YAML::Node& node, const std::string& field) {
    const std::string& text = node.Scalar();
    if (text.empty() || text.front() != '/') {
      Error(node.Mark(), field, "must start with '/', got " + Quote(text));
      return;
    }
    for (const char c : text) {
      const auto byte = static_cast<unsigned char>(c);
      if (byte > 0x20U && byte < 0x7FU) continue;
      Error(node.Mark(), field,
            "must hold only visible ASCII characters (no space or control character; "
            "percent-encode anything else), got " +
                Quote(text));
      return;
    }
  }

  const std::string& file_;
  int line_offset_;
  std::vector<Diagnostic>& errors_;
};

}  // namespace

RolloutSpec ReadRolloutSpec(const YAML::Node& rollout, bool offers_dedicated,
                            const std::string& file, int line_offset,
                            std::vector<Diagnostic>& errors) {
  return RolloutReader(file, line_offset, errors).Read(rollout, offers_dedicated);
}

}  // namespace tmaster::manifests::detail
