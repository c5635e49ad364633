// EventRecorder (controller/runtime/events.hpp): what it stores and logs.
#include "controller/runtime/events.hpp"

#include <doctest/doctest.h>

#include <string>

#include "common/scrub.hpp"
#include "tests/support/fake_store.hpp"

namespace tmaster::controller {
namespace {

TEST_CASE("EventRecorder stores an event's message scrubbed of every registered secret") {
  const std::string secret = "event-egress-secret-2718";
  RegisterProcessSecret(secret);
  testing::FakeStore store;
  EventRecorder recorder(store);
  recorder.Emit("acme", "Warning", "MigrationFailed",
                "migration 0001_init.sql failed: syntax error at or near \"" + secret + "\"");
  Outcome<std::vector<Event>> events = store.ListEvents(std::nullopt, 10);
  REQUIRE(events.ok());
  REQUIRE(events->size() == 1);
  CHECK(events->front().message ==
        "migration 0001_init.sql failed: syntax error at or near \"<redacted>\"");
  CHECK(events->front().reason == "MigrationFailed");
}

}  // namespace
}  // namespace tmaster::controller
