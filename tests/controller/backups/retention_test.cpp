// Retention (docs/backups.md#retention): exactly `keep` scheduled backups remain, the newest
// verified one is never removed, and each other kind follows its stated policy. Pure: the
// catalog is a vector, the clock a number.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "controller/backups/retention.hpp"

namespace {

using tmaster::backups::BackupKind;
using tmaster::backups::BackupState;
using tmaster::backups::Removal;
using tmaster::backups::RetentionEntry;
using tmaster::backups::RetentionPolicy;
using tmaster::backups::SelectRemovals;

constexpr std::int64_t kDay = 86400;
constexpr std::int64_t kNow = 1'800'000'000;

// `count` daily scheduled backups, the newest `newest_age_days` days old; ids s<age in days>.
std::vector<RetentionEntry> Daily(int count, BackupState state = BackupState::kOk,
                                  int newest_age_days = 0) {
  std::vector<RetentionEntry> entries;
  for (int age = newest_age_days; age < newest_age_days + count; ++age) {
    entries.push_back(
        {"s" + std::to_string(age), BackupKind::kScheduled, kNow - age * kDay, state});
  }
  return entries;
}

std::set<std::string> Ids(const std::vector<Removal>& removals) {
  std::set<std::string> ids;
  for (const Removal& removal : removals) ids.insert(removal.id);
  return ids;
}

std::set<std::string> Remaining(const std::vector<RetentionEntry>& entries,
                                const std::vector<Removal>& removals) {
  std::set<std::string> remaining;
  const std::set<std::string> removed = Ids(removals);
  for (const RetentionEntry& entry : entries) {
    if (removed.count(entry.id) == 0) remaining.insert(entry.id);
  }
  return remaining;
}

RetentionPolicy Keep(int keep) {
  RetentionPolicy policy;
  policy.keep = keep;
  return policy;
}

}  // namespace

TEST_CASE(
    "retention: exactly keep scheduled backups remain, the newest ones, oldest removed first") {
  const auto entries = Daily(10);
  const auto removals = SelectRemovals(entries, Keep(7), kNow);
  CHECK(Remaining(entries, removals) ==
        std::set<std::string>{"s0", "s1", "s2", "s3", "s4", "s5", "s6"});
  REQUIRE(removals.size() == 3);
  CHECK(removals[0].id == "s9");  // oldest first
  CHECK(removals[2].id == "s7");
  CHECK(removals[2].reason == "scheduled backup beyond keep 7 (7 newer)");

  CHECK(SelectRemovals(Daily(7), Keep(7), kNow).empty());
  CHECK(SelectRemovals(Daily(3), Keep(7), kNow).empty());
  CHECK(SelectRemovals({}, Keep(7), kNow).empty());
  // keep below 1 keeps one: retention never removes the last scheduled backup.
  CHECK(Remaining(Daily(3), SelectRemovals(Daily(3), Keep(0), kNow)) ==
        std::set<std::string>{"s0"});
}

TEST_CASE("retention: order is by creation time whatever the catalog's order, then by id") {
  auto entries = Daily(5);
  std::reverse(entries.begin(), entries.end());
  std::swap(entries[1], entries[3]);
  CHECK(Remaining(entries, SelectRemovals(entries, Keep(2), kNow)) ==
        std::set<std::string>{"s0", "s1"});
  // Two taken in the same second: the larger id is the newer.
  std::vector<RetentionEntry> twins = {{"b", BackupKind::kScheduled, kNow, BackupState::kOk},
                                       {"a", BackupKind::kScheduled, kNow, BackupState::kOk}};
  CHECK(Ids(SelectRemovals(twins, Keep(1), kNow)) == std::set<std::string>{"a"});
}

TEST_CASE("retention: the newest verified backup is never removed") {
  SUBCASE("beyond keep: kept as well, keep + 1 remain") {
    auto entries = Daily(10);
    entries[8].state = BackupState::kVerified;  // s8
    entries[9].state = BackupState::kVerified;  // s9, older
    const auto removals = SelectRemovals(entries, Keep(3), kNow);
    CHECK(Remaining(entries, removals) == std::set<std::string>{"s0", "s1", "s2", "s8"});
  }
  SUBCASE("within keep: counts toward keep like any other") {
    auto entries = Daily(5);
    entries[1].state = BackupState::kVerified;
    CHECK(Remaining(entries, SelectRemovals(entries, Keep(3), kNow)) ==
          std::set<std::string>{"s0", "s1", "s2"});
  }
  SUBCASE("a manual verified one older than its days stays while it is the newest verified") {
    auto entries = Daily(4, BackupState::kVerifyFailed);
    entries.push_back({"m90", BackupKind::kManual, kNow - 90 * kDay, BackupState::kVerified});
    entries.push_back({"m95", BackupKind::kManual, kNow - 95 * kDay, BackupState::kVerified});
    const auto removals = SelectRemovals(entries, Keep(2), kNow);
    CHECK(Remaining(entries, removals) == std::set<std::string>{"s0", "s1", "m90"});
  }
}

TEST_CASE("retention: failed attempts never count toward keep and go after the other kinds' days") {
  auto entries = Daily(3);
  entries.push_back({"f1", BackupKind::kScheduled, kNow - 1 * kDay + 60, BackupState::kFailed});
  entries.push_back({"f40", BackupKind::kScheduled, kNow - 40 * kDay, BackupState::kFailed});
  entries.push_back({"fm40", BackupKind::kManual, kNow - 40 * kDay, BackupState::kFailed});
  const auto removals = SelectRemovals(entries, Keep(3), kNow);
  CHECK(Remaining(entries, removals) == std::set<std::string>{"s0", "s1", "s2", "f1"});
  CHECK(std::any_of(removals.begin(), removals.end(), [](const Removal& removal) {
    return removal.id == "fm40" && removal.reason == "failed manual attempt older than 30 days";
  }));
}

TEST_CASE("retention: manual, pre-migration, safety and final backups") {
  std::vector<RetentionEntry> entries = Daily(2);
  entries.push_back({"m29", BackupKind::kManual, kNow - 29 * kDay, BackupState::kOk});
  entries.push_back({"m31", BackupKind::kManual, kNow - 31 * kDay, BackupState::kOk});
  entries.push_back({"x31", BackupKind::kSafety, kNow - 31 * kDay, BackupState::kVerifyFailed});
  entries.push_back({"x2", BackupKind::kSafety, kNow - 2 * kDay, BackupState::kOk});
  entries.push_back({"p60", BackupKind::kPreMigration, kNow - 60 * kDay, BackupState::kOk});
  entries.push_back({"p90", BackupKind::kPreMigration, kNow - 90 * kDay, BackupState::kOk});
  entries.push_back({"z400", BackupKind::kFinal, kNow - 400 * kDay, BackupState::kOk});
  const auto removals = SelectRemovals(entries, Keep(1), kNow);
  // Manual and safety backups do not count toward keep: a burst of them never pushes out the
  // scheduled ones, and keep 1 still removes only s1 of the scheduled.
  // The newest pre-migration backup stays whatever its age; a final backup always stays.
  CHECK(Remaining(entries, removals) == std::set<std::string>{"s0", "m29", "x2", "p60", "z400"});
  CHECK(std::any_of(removals.begin(), removals.end(), [](const Removal& removal) {
    return removal.id == "m31" && removal.reason == "manual backup older than 30 days";
  }));
  CHECK(std::any_of(removals.begin(), removals.end(), [](const Removal& removal) {
    return removal.id == "p90" && removal.reason == "pre-migration backup older than 30 days";
  }));

  RetentionPolicy week = Keep(1);
  week.keep_other_seconds = 7 * kDay;
  CHECK(Remaining(entries, SelectRemovals(entries, week, kNow)) ==
        std::set<std::string>{"s0", "x2", "p60", "z400"});
}
