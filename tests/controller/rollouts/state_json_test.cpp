// The stored form of a rollout (controller/rollouts/state_json.hpp): states the machine made
// round-trip exactly; what no StateToJson wrote is refused, naming the field.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "controller/rollouts/machine.hpp"
#include "controller/rollouts/state_json.hpp"

namespace {

using namespace tmaster::rollouts;  // NOLINT(google-build-using-namespace): the room under test

constexpr std::int64_t kNow = 1'800'000'000;

// A rollout part way: the canary wave done (one workspace ready with its backup), a failure in
// the second wave that halted it, another workspace still in progress.
RolloutState Halfway() {
  std::vector<Member> members;
  for (const char* name : {"ws-a", "ws-b", "ws-c", "ws-d", "ws-e", "ws-f", "ws-g"}) {
    members.push_back({name, {{"ring", std::string(name) == "ws-c" ? "canary" : "main"}}});
  }
  Policy policy;
  policy.waves = {SelectorWave{{{"ring", "canary"}}}, PercentWave{100}};
  policy.max_unavailable = 2;
  policy.pause_between_waves = std::chrono::seconds(60);
  auto started = Start(policy, "shop", 3, 2, members, kNow);
  REQUIRE(started.ok());
  RolloutState state = started->state;
  Observed ready;
  ready.revision_applied = 3;
  ready.ready = true;
  ready.backup = "ws-c-20261204T100000Z-ab12";
  ready.observed_after_target = true;
  state = Report(state, policy, "ws-c", ready).state;
  state = Tick(state, policy, kNow + 5).state;    // wave 1 done: paused until +65
  state = Tick(state, policy, kNow + 70).state;   // wave 2 starts, two targets
  std::string first_in_progress;
  for (const WorkspaceEntry& entry : state.workspaces) {
    if (entry.state == WorkspaceState::kInProgress) {
      first_in_progress = entry.name;
      break;
    }
  }
  REQUIRE(!first_in_progress.empty());
  Observed failed;
  failed.revision_applied = 2;
  failed.failed = true;
  failed.reason = "migration 0004_x.sql failed: ERROR: division by zero (SQLSTATE 22012)";
  failed.backup = first_in_progress + "-20261204T100100Z-cd34";
  failed.observed_after_target = true;
  state = Report(state, policy, first_in_progress, failed).state;
  REQUIRE(state.phase == Phase::kHalted);
  return state;
}

}  // namespace

TEST_CASE("rollouts: a stored rollout reads back exactly as the machine left it") {
  const RolloutState state = Halfway();
  const std::string text = StateToJson(state);
  auto back = StateFromJson(text);
  REQUIRE_MESSAGE(back.ok(), back.failure().message);
  CHECK(*back == state);
  CHECK(StateToJson(*back) == text);  // the same text for the same state
  CHECK(text.find(R"("phase":"Halted")") != std::string::npos);
  CHECK(text.find(R"("state":"inProgress")") != std::string::npos);
  CHECK(text.find("SQLSTATE 22012") != std::string::npos);

  // Every phase and workspace state spelled as the API spells it, and back.
  RolloutState each = state;
  for (const Phase phase : {Phase::kProgressing, Phase::kPaused, Phase::kCompleted,
                            Phase::kAborted, Phase::kUndone, Phase::kSuperseded}) {
    each.phase = phase;
    each.finished_unix = Ended(phase) ? std::optional<std::int64_t>(kNow + 99) : std::nullopt;
    each.retired = Ended(phase);
    CHECK(*StateFromJson(StateToJson(each)) == each);
  }
}

TEST_CASE("rollouts: a stored rollout no StateToJson wrote is refused, naming the field") {
  const std::string good = StateToJson(Halfway());
  const auto refusal = [](const std::string& text) {
    auto read = StateFromJson(text);
    REQUIRE_FALSE(read.ok());
    CHECK(read.failure().reason == "CorruptRollout");
    return read.failure().message;
  };
  const auto replaced = [&good](const std::string& from, const std::string& to) {
    std::string text = good;
    const std::size_t at = text.find(from);
    REQUIRE(at != std::string::npos);
    return text.replace(at, from.size(), to);
  };
  CHECK(refusal("not json").find("not JSON") != std::string::npos);
  CHECK(refusal("[1]").find("not a JSON object") != std::string::npos);
  CHECK(refusal(replaced(R"("phase":"Halted")", R"("phase":"Sleeping")")) ==
        "stored rollout: phase: unknown phase \"Sleeping\"");
  CHECK(refusal(replaced(R"("state":"inProgress")", R"("state":"busy")"))
            .find("workspaces[") != std::string::npos);
  CHECK(refusal(replaced(R"("revision":3)", R"("revision":"3")")) ==
        "stored rollout: revision: must be an integer");
  CHECK(refusal(replaced(R"("product":"shop",)", "")) == "stored rollout: product: missing");
  CHECK(refusal(replaced(R"("currentWave":1)", R"("currentWave":7)")) ==
        "stored rollout: currentWave: beyond waveCount");
  CHECK(refusal(replaced(R"("wave":1)", R"("wave":5)")).find("].wave: beyond waveCount") !=
        std::string::npos);
  CHECK(refusal(replaced(R"("retired":false)", R"("retired":true)")) ==
        "stored rollout: retired: a running rollout is not retired");
  CHECK(refusal(replaced(R"("attempt":1)", R"("attempt":-1)")).find("].attempt: negative") !=
        std::string::npos);
}
