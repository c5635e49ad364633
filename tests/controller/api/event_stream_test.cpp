// The live stream's hub (controller/api/event_stream.hpp) without HTTP: what each stream is
// sent, coalescing, the cap of streams, credentials checked at keepalive, Stop.

#include "controller/api/event_stream.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace tmaster::controller {
namespace {

using namespace std::chrono_literals;

// One stream's output, as a connection would get it.
struct Collector {
  std::mutex mutex;
  std::condition_variable changed;
  std::string text;
  std::atomic<int> sends{0};
  bool ended = false;
  std::atomic<bool> gone{false};  // send answers false (the connection closed)

  StreamOutput Output() {
    return StreamOutput{
        .send =
            [this](std::shared_ptr<const std::string> bytes) {
              if (gone) return false;
              const std::lock_guard lock(mutex);
              text += *bytes;
              ++sends;
              changed.notify_all();
              return true;
            },
        .end =
            [this] {
              const std::lock_guard lock(mutex);
              ended = true;
              changed.notify_all();
            },
    };
  }

  // Waits until `part` was sent (true) or `timeout` passed.
  bool WaitFor(const std::string& part, std::chrono::milliseconds timeout = 3000ms) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, timeout, [&] { return text.find(part) != std::string::npos; });
  }
  bool WaitEnded(std::chrono::milliseconds timeout = 3000ms) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, timeout, [&] { return ended; });
  }
  std::string Text() {
    const std::lock_guard lock(mutex);
    return text;
  }
};

std::size_t Count(const std::string& text, const std::string& part) {
  std::size_t n = 0;
  for (std::size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) {
    ++n;
  }
  return n;
}

EventHubOptions Fast() {
  return {.interval = 200ms, .keepalive = 60'000ms, .max_streams = 3, .max_names = 5};
}

}  // namespace

TEST_CASE("EventHub: a stream starts with retry and hello at the current version") {
  EventHub hub(Fast());
  hub.FleetChanged(41, {"acme"});   // nobody listens: only the version is kept
  hub.FleetChanged(40, {"older"});  // out of order: the highest stays
  auto place = hub.Open({});
  REQUIRE(place != nullptr);
  Collector out;
  hub.Attach(place, out.Output());
  CHECK(out.Text() == "retry: 3000\nevent: hello\ndata: {\"resourceVersion\":41}\n\n");
  CHECK(hub.MessagesRendered() == 0);
}

TEST_CASE("EventHub: a change goes at once, a burst after it in one message per interval") {
  EventHub hub(Fast());
  auto place = hub.Open({});
  Collector out;
  hub.Attach(place, out.Output());
  hub.FleetChanged(1, {"acme"});
  REQUIRE(out.WaitFor(R"(data: {"resourceVersion":1,"workspaces":["acme"]})", 1000ms));
  // 40 changes of 4 names within one interval: one message, each name once, the last version.
  for (int i = 0; i < 40; ++i) {
    hub.FleetChanged(2 + static_cast<std::uint64_t>(i), {i % 2 == 0 ? "bravo" : "charlie"});
    hub.FleetChanged(2 + static_cast<std::uint64_t>(i), {"acme", "delta"});
  }
  REQUIRE(out.WaitFor(R"({"resourceVersion":41,"workspaces":["acme","bravo","charlie","delta"]})"));
  std::this_thread::sleep_for(300ms);
  CHECK(Count(out.Text(), "event: fleet") == 2);
  CHECK(hub.MessagesRendered() == 2);
}

TEST_CASE("EventHub: more names than max_names since the last message: all") {
  EventHub hub(Fast());
  auto place = hub.Open({});
  Collector out;
  hub.Attach(place, out.Output());
  hub.FleetChanged(7, {"a", "b", "c", "d", "e", "f"});
  REQUIRE(out.WaitFor(R"(event: fleet
data: {"resourceVersion":7,"all":true}

)"));
  // The next message names names again.
  hub.FleetChanged(8, {"a"});
  REQUIRE(out.WaitFor(R"({"resourceVersion":8,"workspaces":["a"]})"));
}

TEST_CASE("EventHub: sources, and a fleet change, in the same interval share one send") {
  EventHub hub(Fast());
  auto place = hub.Open({});
  Collector out;
  hub.Attach(place, out.Output());
  hub.SourcesChanged();
  REQUIRE(out.WaitFor("event: sources\ndata: {}\n\n"));
  hub.SourcesChanged();
  hub.FleetChanged(3, {"acme"});
  hub.SourcesChanged();
  REQUIRE(out.WaitFor(R"({"resourceVersion":3,"workspaces":["acme"]})"));
  std::this_thread::sleep_for(50ms);
  CHECK(Count(out.Text(), "event: sources") == 2);
  CHECK(out.sends == 3);  // hello, sources, then fleet + sources together
}

TEST_CASE("EventHub: at most max_streams places; a place is freed with its stream") {
  EventHub hub(Fast());
  std::vector<std::shared_ptr<EventHub::Stream>> places;
  for (int i = 0; i < 3; ++i) {
    places.push_back(hub.Open({}));
    REQUIRE(places.back() != nullptr);
  }
  CHECK(hub.Open({}) == nullptr);
  CHECK(hub.OpenStreams() == 3);
  places.pop_back();
  CHECK(hub.OpenStreams() == 2);
  CHECK(hub.Open({}) != nullptr);
}

TEST_CASE("EventHub: a connection gone is forgotten; others still hear") {
  EventHub hub(Fast());
  auto first = hub.Open({});
  auto second = hub.Open({});
  Collector a;
  Collector b;
  hub.Attach(first, a.Output());
  hub.Attach(second, b.Output());
  a.gone = true;
  hub.FleetChanged(1, {"acme"});
  REQUIRE(b.WaitFor("acme"));
  hub.FleetChanged(2, {"bravo"});
  REQUIRE(b.WaitFor("bravo"));
  CHECK(a.Text().find("acme") == std::string::npos);
  CHECK(a.sends == 1);  // the hello only
}

TEST_CASE("EventHub: keepalives, and a stream whose credential ended is ended at keepalive") {
  EventHubOptions options = Fast();
  options.keepalive = 100ms;
  EventHub hub(options);
  std::atomic<StreamVerdict> verdict{StreamVerdict::kValid};
  std::atomic<int> checks{0};
  auto checked = hub.Open([&] {
    ++checks;
    return verdict.load();
  });
  auto unchecked = hub.Open({});
  Collector a;
  Collector b;
  hub.Attach(checked, a.Output());
  hub.Attach(unchecked, b.Output());
  REQUIRE(a.WaitFor(": keepalive\n\n"));
  REQUIRE(b.WaitFor(": keepalive\n\n"));
  verdict = StreamVerdict::kUnknown;  // the store is down: kept
  const int before = checks;
  std::this_thread::sleep_for(250ms);
  CHECK(checks > before);
  CHECK_FALSE(a.ended);
  verdict = StreamVerdict::kEnded;
  REQUIRE(a.WaitEnded());
  CHECK_FALSE(b.ended);
  // Ended streams hear nothing more.
  const std::size_t sent = a.Text().size();
  hub.FleetChanged(5, {"acme"});
  REQUIRE(b.WaitFor("acme"));
  CHECK(a.Text().size() == sent);
}

TEST_CASE("EventHub: Stop ends every stream and refuses new ones") {
  EventHub hub(Fast());
  auto place = hub.Open({});
  Collector out;
  hub.Attach(place, out.Output());
  const auto start = std::chrono::steady_clock::now();
  hub.Stop();
  CHECK(std::chrono::steady_clock::now() - start < 1s);
  CHECK(out.ended);
  CHECK(hub.Open({}) == nullptr);
  hub.Stop();  // idempotent
}

TEST_CASE("EventHub: the poll runs on the hub's thread only while a stream is attached") {
  EventHub hub(Fast());
  std::atomic<int> polls{0};
  hub.SetPoll([&] { ++polls; }, 20ms);
  auto place = hub.Open({});  // the threads start; nothing attached yet
  std::this_thread::sleep_for(100ms);
  CHECK(polls == 0);
  Collector out;
  hub.Attach(place, out.Output());
  std::this_thread::sleep_for(200ms);
  CHECK(polls >= 3);
}

TEST_CASE("FleetEventText: names as a JSON array, escaped") {
  CHECK(FleetEventText(9, {"a\"b"}, false) ==
        "event: fleet\ndata: {\"resourceVersion\":9,\"workspaces\":[\"a\\\"b\"]}\n\n");
  CHECK(FleetEventText(9, {}, true) ==
        "event: fleet\ndata: {\"resourceVersion\":9,\"all\":true}\n\n");
}

}  // namespace tmaster::controller
