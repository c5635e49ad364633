// Wave selection (docs/rollouts.md, "The policy"): selectors, cumulative percentages over the
// stable SHA-256 order, ceil rounding, empty waves kept, the implicit last wave. Pure: the
// workspaces are a vector. The expected orders come from `sha256sum`, not from the code.
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common/crypto.hpp"
#include "controller/rollouts/waves.hpp"

namespace {

using tmaster::rollouts::AssignWaves;
using tmaster::rollouts::JoinLastWave;
using tmaster::rollouts::Labels;
using tmaster::rollouts::Member;
using tmaster::rollouts::PercentWave;
using tmaster::rollouts::Policy;
using tmaster::rollouts::SelectorWave;
using tmaster::rollouts::StableKey;
using tmaster::rollouts::Validate;
using Waves = std::vector<std::vector<std::string>>;
using Names = std::vector<std::string>;

// `printf 'shop/ws-X' | sha256sum`, sorted: the stable order of ws-a..ws-g in product `shop`.
const Names kShopOrder = {"ws-b", "ws-d", "ws-g", "ws-c", "ws-e", "ws-f", "ws-a"};

std::vector<Member> Members(const Names& names) {
  std::vector<Member> members;
  for (const std::string& name : names) members.push_back({name, {}});
  return members;
}

std::vector<Member> SevenShop() {
  return Members({"ws-a", "ws-b", "ws-c", "ws-d", "ws-e", "ws-f", "ws-g"});
}

// n workspaces w00, w01, ...
std::vector<Member> Numbered(int n) {
  std::vector<Member> members;
  for (int i = 0; i < n; ++i) {
    members.push_back({(i < 10 ? "w0" : "w") + std::to_string(i), {}});
  }
  return members;
}

Policy Percents(const std::vector<int>& percents) {
  Policy policy;
  for (const int percent : percents) policy.waves.push_back(PercentWave{percent});
  return policy;
}

std::vector<std::size_t> Sizes(const Waves& waves) {
  std::vector<std::size_t> sizes;
  for (const auto& wave : waves) sizes.push_back(wave.size());
  return sizes;
}

}  // namespace

TEST_CASE("rollouts: the stable key is SHA-256 of product/workspace in lower-case hex") {
  // printf 'shop/acme' | sha256sum
  CHECK(StableKey("shop", "acme") ==
        "e8ff35dcd8b3fe19cd92cf571e9eb023e0e7aee4efa970c56aaf03d4a867b061");
  CHECK(StableKey("shop", "acme") != StableKey("shop2", "acme"));
}

TEST_CASE("rollouts: waves follow the stable order, whatever the input order") {
  const Policy policy = Percents({100});
  const Waves expected = {kShopOrder};
  std::vector<Member> members = SevenShop();
  CHECK(AssignWaves(policy, "shop", members) == expected);
  std::reverse(members.begin(), members.end());
  CHECK(AssignWaves(policy, "shop", members) == expected);
  std::rotate(members.begin(), members.begin() + 3, members.end());
  CHECK(AssignWaves(policy, "shop", members) == expected);
  // Not alphabetical: the order is the hash's.
  Names sorted = kShopOrder;
  std::sort(sorted.begin(), sorted.end());
  CHECK(sorted != kShopOrder);
}

TEST_CASE("rollouts: the same workspaces are chosen every time, and the product is in the key") {
  const Policy policy = Percents({10, 50});
  const std::vector<Member> fleet = Numbered(40);
  const Waves first = AssignWaves(policy, "shop", fleet);
  // Waves are a function of the product and its workspaces only: a later revision's rollout
  // over the same fleet reaches the same canaries.
  CHECK(AssignWaves(policy, "shop", fleet) == first);
  REQUIRE(first.size() == 3);
  CHECK(Sizes(first) == std::vector<std::size_t>{4, 16, 20});
  // Another product orders the same names differently (so one product's canaries are not every
  // product's canaries).
  CHECK(AssignWaves(policy, "crm", fleet)[0] != first[0]);
  // Each wave is in the order of the keys as computed independently here.
  for (const auto& wave : first) {
    CHECK(std::is_sorted(wave.begin(), wave.end(), [](const std::string& a, const std::string& b) {
      return tmaster::crypto::Sha256Hex("shop/" + a) < tmaster::crypto::Sha256Hex("shop/" + b);
    }));
  }
}

TEST_CASE("rollouts: percentages round up, at least one, over all the product's workspaces") {
  SUBCASE("10% of 7 is 1: the first of the stable order") {
    const Waves waves = AssignWaves(Percents({10}), "shop", SevenShop());
    REQUIRE(waves.size() == 2);
    CHECK(waves[0] == Names{"ws-b"});
    CHECK(waves[1] == Names{"ws-d", "ws-g", "ws-c", "ws-e", "ws-f", "ws-a"});
  }
  SUBCASE("50% of 7 is 4") {
    const Waves waves = AssignWaves(Percents({50}), "shop", SevenShop());
    REQUIRE(waves.size() == 2);
    CHECK(waves[0] == Names{"ws-b", "ws-d", "ws-g", "ws-c"});
  }
  SUBCASE("10% of 25 is 3") {
    CHECK(Sizes(AssignWaves(Percents({10}), "shop", Numbered(25))) ==
          std::vector<std::size_t>{3, 22});
  }
  SUBCASE("10% of 30 is exactly 3 (0.1 * 30 in doubles is above 3)") {
    CHECK(Sizes(AssignWaves(Percents({10}), "shop", Numbered(30))) ==
          std::vector<std::size_t>{3, 27});
  }
  SUBCASE("1% of 1 is 1") {
    CHECK(Sizes(AssignWaves(Percents({1}), "shop", Numbered(1))) == std::vector<std::size_t>{1});
  }
  SUBCASE("100% is everyone, and no implicit wave follows") {
    const Waves waves = AssignWaves(Percents({100}), "shop", Numbered(25));
    CHECK(Sizes(waves) == std::vector<std::size_t>{25});
  }
}

TEST_CASE("rollouts: percentages are cumulative: a wave takes its prefix's untaken workspaces") {
  CHECK(Sizes(AssignWaves(Percents({10, 50, 100}), "shop", Numbered(20))) ==
        std::vector<std::size_t>{2, 8, 10});
  // The second 10% adds nothing: its prefix is the first's.
  CHECK(Sizes(AssignWaves(Percents({10, 10, 100}), "shop", Numbered(20))) ==
        std::vector<std::size_t>{2, 0, 18});
  // A smaller percentage after a larger one is empty, not a new slice.
  CHECK(Sizes(AssignWaves(Percents({50, 20}), "shop", Numbered(10))) ==
        std::vector<std::size_t>{5, 0, 5});
}

TEST_CASE("rollouts: selector waves take the matching workspaces not taken yet, in stable order") {
  std::vector<Member> members = SevenShop();
  for (Member& member : members) {
    if (member.name == "ws-a" || member.name == "ws-c") member.labels["ring"] = "canary";
    if (member.name == "ws-c" || member.name == "ws-f") member.labels["tier"] = "gold";
  }
  Policy policy;
  policy.waves.push_back(SelectorWave{{{"ring", "canary"}}});
  policy.waves.push_back(SelectorWave{{{"tier", "gold"}}});
  policy.waves.push_back(PercentWave{50});
  const Waves waves = AssignWaves(policy, "shop", members);
  REQUIRE(waves.size() == 4);
  CHECK(waves[0] == Names{"ws-c", "ws-a"});  // stable order: c before a
  CHECK(waves[1] == Names{"ws-f"});          // ws-c matched both; it went to the first
  // 50% of 7 is the prefix b, d, g, c; c is taken already.
  CHECK(waves[2] == Names{"ws-b", "ws-d", "ws-g"});
  CHECK(waves[3] == Names{"ws-e"});  // the implicit last wave
}

TEST_CASE("rollouts: a selector needs every pair; an empty selector takes every one left") {
  std::vector<Member> members = SevenShop();
  members[0].labels = {{"ring", "canary"}, {"zone", "eu"}};  // ws-a
  members[1].labels = {{"ring", "canary"}};                  // ws-b
  Policy policy;
  policy.waves.push_back(SelectorWave{{{"ring", "canary"}, {"zone", "eu"}}});
  policy.waves.push_back(SelectorWave{});
  const Waves waves = AssignWaves(policy, "shop", members);
  REQUIRE(waves.size() == 2);
  CHECK(waves[0] == Names{"ws-a"});
  CHECK(waves[1] == Names{"ws-b", "ws-d", "ws-g", "ws-c", "ws-e", "ws-f"});
}

TEST_CASE("rollouts: empty waves stay as empty entries so wave numbers are the policy's") {
  Policy policy;
  policy.waves.push_back(SelectorWave{{{"ring", "canary"}}});  // nobody is a canary
  policy.waves.push_back(PercentWave{10});
  const Waves waves = AssignWaves(policy, "shop", SevenShop());
  REQUIRE(waves.size() == 3);
  CHECK(waves[0].empty());
  CHECK(waves[1] == Names{"ws-b"});
  CHECK(waves[2].size() == 6);

  SUBCASE("no workspaces: every wave of the policy, empty, and no implicit one") {
    CHECK(AssignWaves(policy, "shop", {}) == Waves{{}, {}});
  }
  SUBCASE("no waves in the policy: one implicit wave with everyone") {
    CHECK(AssignWaves(Policy{}, "shop", SevenShop()) == Waves{kShopOrder});
    CHECK(AssignWaves(Policy{}, "shop", {}).empty());
  }
}

TEST_CASE("rollouts: Validate refuses a percent outside 1..100, naming the wave") {
  CHECK(Validate(Percents({1, 50, 100})).ok());
  CHECK(Validate(Policy{}).ok());
  const auto zero = Validate(Percents({10, 0}));
  REQUIRE_FALSE(zero.ok());
  CHECK(zero.failure().reason == "InvalidRolloutPolicy");
  CHECK(zero.failure().message == "wave 2: percent 0 is not in 1..100");
  CHECK_FALSE(Validate(Percents({101})).ok());
}

TEST_CASE("rollouts: a workspace created mid-rollout joins the last wave in stable order") {
  Waves waves = {{"ws-b"}, {"ws-d", "ws-c", "ws-a"}};
  JoinLastWave(waves, "shop", "ws-g");  // between d and c
  CHECK(waves == Waves{{"ws-b"}, {"ws-d", "ws-g", "ws-c", "ws-a"}});
  JoinLastWave(waves, "shop", "ws-b");  // already in wave 1
  CHECK(waves == Waves{{"ws-b"}, {"ws-d", "ws-g", "ws-c", "ws-a"}});
  Waves none;
  JoinLastWave(none, "shop", "ws-a");
  CHECK(none == Waves{{"ws-a"}});
}
