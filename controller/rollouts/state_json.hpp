// The stored form of a rollout (tm_rollouts.state_json, docs/rollouts.md#the-state-machine): a
// JSON object with the words the status and the API use (`Progressing`, `inProgress`), read
// back strictly. Pure.
#pragma once

#include <string>

#include "common/outcome.hpp"
#include "controller/rollouts/machine.hpp"

namespace tmaster::rollouts {

/// `state` as one JSON object (keys in a fixed order, so an unchanged state gives the same text).
std::string StateToJson(const RolloutState& state);

/// The state StateToJson wrote. Stalled "CorruptRollout" naming the field when the text is not
/// such an object (not JSON, a missing or mistyped field, an unknown phase or workspace state,
/// a wave outside 0..waveCount).
Outcome<RolloutState> StateFromJson(const std::string& json);

}  // namespace tmaster::rollouts
