#pragma once
// Internal to manifests/: the loader's reading of a Product's `spec.rollout`
// (docs/rollouts.md#the-policy).

#include <string>
#include <vector>

#include "manifests/types.hpp"

namespace YAML {
class Node;
}

namespace tmaster::manifests::detail {

/// Longest `spec.rollout.pauseBetweenWaves`.
inline constexpr std::chrono::seconds kMaxPauseBetweenWaves{24 * 3600};

/// Reads `rollout` (the value of `spec.rollout` in a Product document that its CRD schema
/// accepted) with its defaults, and checks the rules the schema cannot express: a wave is a
/// selector or a percent, not both and not neither; matchLabels keys and values follow the
/// metadata.labels rules; the percent waves strictly increase (they are cumulative); durations
/// parse as the config's do (ParseDuration), pauseBetweenWaves at most 24h, readyTimeout and
/// healthCheck.timeout above 0s; healthCheck.path starts with '/' and is visible ASCII;
/// healthCheck only when `offers_dedicated`. Each finding is appended to `errors` with the
/// file location (marks shifted by `line_offset`) and field path (`spec.rollout.waves[1].percent`);
/// the spec is complete only when none was appended. Never throws on a schema-valid document.
RolloutSpec ReadRolloutSpec(const YAML::Node& rollout, bool offers_dedicated,
                            const std::string& file, int line_offset,
                            std::vector<Diagnostic>& errors);

}  // namespace tmaster::manifests::detail
