// Per-name exponential backoff with jitter, driven by a fake random source: no sleeping.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <set>
#include <string>

#include "controller/runtime/backoff.hpp"
#include "controller/runtime/clock.hpp"
#include "tests/support/fake_clock.hpp"

namespace {

using namespace std::chrono_literals;
using tmaster::controller::Backoff;
using tmaster::controller::BackoffOptions;
using tmaster::controller::Duration;
using tmaster::testing::FakeRandom;

// Just below 1: Uniform01 returns values in [0, 1).
constexpr double kAlmostOne = 0.999999;

}  // namespace

TEST_CASE("backoff: grows 100 ms, 200 ms, 400 ms ... and stays capped at 5 min") {
  FakeRandom random;  // 0.0: no jitter, so the exponential itself is visible
  Backoff backoff(random);

  Duration expected = 100ms;
  for (std::uint32_t failure = 0; failure < 12; ++failure) {
    CAPTURE(failure);
    CHECK(backoff.Failures("a") == failure);
    CHECK(backoff.When("a") == expected);
    expected *= 2;
  }
  // 100 ms * 2^12 = 409.6 s is past the cap.
  CHECK(backoff.When("a") == 5min);
  CHECK(backoff.Failures("a") == 13u);
  // Far past the point where 2^n would overflow an integer: still the cap, never base again.
  for (int i = 0; i < 200; ++i) REQUIRE(backoff.When("a") == 5min);
  CHECK(backoff.Failures("a") == 213u);
}

TEST_CASE("backoff: names are counted separately and Forget resets one name") {
  FakeRandom random;
  Backoff backoff(random);
  CHECK(backoff.Failures("unknown") == 0u);

  CHECK(backoff.When("a") == 100ms);
  CHECK(backoff.When("a") == 200ms);
  CHECK(backoff.When("a") == 400ms);
  CHECK(backoff.When("b") == 100ms);
  CHECK(backoff.Failures("a") == 3u);
  CHECK(backoff.Failures("b") == 1u);

  backoff.Forget("a");
  CHECK(backoff.Failures("a") == 0u);
  CHECK(backoff.Failures("b") == 1u);
  CHECK(backoff.When("a") == 100ms);
  CHECK(backoff.When("b") == 200ms);
  backoff.Forget("never-failed");  // a no-op, not an error
}

TEST_CASE("backoff: jitter multiplies by 1 + j * Uniform01, within [d, d * (1 + j))") {
  FakeRandom random;

  SUBCASE("default j = 0.1: half-way and the upper bound") {
    Backoff backoff(random);
    random.Set({0.5, kAlmostOne});
    CHECK(backoff.When("a") == 105ms);  // 100 ms * 1.05
    const Duration second = backoff.When("a");
    CHECK(second > 219ms);
    CHECK(second < 220ms);  // 200 ms * 1.1, exclusive
    CHECK(random.Calls() == 2u);
  }
  SUBCASE("configurable j") {
    BackoffOptions options;
    options.jitter = 0.5;
    Backoff backoff(random, options);
    random.Set(0.5);
    CHECK(backoff.When("a") == 125ms);
  }
  SUBCASE("jitter is applied after the cap, so capped names still spread") {
    BackoffOptions options;
    options.max = 1s;
    Backoff backoff(random, options);
    random.Set(0.0);
    for (int i = 0; i < 10; ++i) backoff.When("a");
    random.Set(0.5);
    CHECK(backoff.When("a") == 1050ms);
    random.Set(kAlmostOne);
    const Duration capped = backoff.When("a");
    CHECK(capped > 1099ms);
    CHECK(capped < 1100ms);
  }
  SUBCASE("base and max are configurable") {
    BackoffOptions options;
    options.base = 5ms;
    options.max = 30ms;
    Backoff backoff(random, options);
    CHECK(backoff.When("a") == 5ms);
    CHECK(backoff.When("a") == 10ms);
    CHECK(backoff.When("a") == 20ms);
    CHECK(backoff.When("a") == 30ms);
    CHECK(backoff.When("a") == 30ms);
  }
}

TEST_CASE("backoff: with the real random source, every delay stays within the jitter bounds") {
  tmaster::controller::MtRandom random;
  std::set<Duration::rep> seen;
  for (int i = 0; i < 500; ++i) {
    Backoff backoff(random);
    const Duration first = backoff.When("a");
    REQUIRE(first >= 100ms);
    REQUIRE(first < 110ms);
    seen.insert(first.count());
  }
  // Jitter really varies: 500 draws that all landed on one value would mean none was applied.
  CHECK(seen.size() > 100u);
}
