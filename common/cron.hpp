#pragma once
// A workspace's backup schedule (`spec.backup.schedule`): a 5-field cron expression in UTC, its
// next run, its period and whether a run is owed. Pure: no clock is read here; every time is
// Unix seconds passed in. The rules are in docs/backups.md#schedules.

#include <bitset>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/outcome.hpp"

namespace tmaster {

/// A parsed cron expression: `minute hour day-of-month month day-of-week`, in UTC, or one of
/// `@hourly`, `@daily` (`@midnight`), `@weekly`, `@monthly`, `@yearly` (`@annually`).
class CronSchedule {
 public:
  /// Parses `text` (fields separated by spaces or tabs). A failure (kStalled, reason
  /// `InvalidSchedule`) names the field, quotes its text and says why, e.g.
  /// `minute field "61": 61 is out of range 0-59`. A schedule that can never fire
  /// (`0 0 31 2 *`) is refused here too, naming the day-of-month field.
  static Outcome<CronSchedule> Parse(std::string_view text);

  /// The first matching minute strictly after `after_unix` (Unix seconds, UTC), as Unix
  /// seconds. nullopt when none falls within the next kSearchDays days (then none ever will):
  /// the search steps by day, never by minute, so it is bounded whatever the expression.
  [[nodiscard]] std::optional<std::int64_t> Next(std::int64_t after_unix) const;

  /// The schedule's period in seconds as BackupReady measures it: the largest gap between two
  /// consecutive runs after `from_unix`, over the firing days of at least a year from the first
  /// run (and at least two of them). Every firing day has the same minutes, so the gaps are
  /// those between a day's runs and those from one firing day's last run to the next one's
  /// first: exact, whatever the number of runs. A weekday schedule's period is three days
  /// (Friday to Monday); `0 0 31 * *`'s is two months; `0 0 29 2 *`'s is
  /// four years (eight across 2100). nullopt when the schedule never fires twice.
  [[nodiscard]] std::optional<std::int64_t> Period(std::int64_t from_unix) const;

  /// The text it was parsed from, as given.
  [[nodiscard]] const std::string& text() const { return text_; }

  /// How far Next looks ahead: one 400-year Gregorian cycle, after which dates and weekdays
  /// repeat exactly (146,097 days is a whole number of weeks), so a day that matches nowhere in
  /// it matches nowhere ever. Gaps are long only for rare days: February 29 falls on a Sunday
  /// in 2004, 2032, 2060, 2088, then 2128 (`0 0 29 2 */7`: a `*` day-of-week field means both
  /// must match).
  static constexpr std::int64_t kSearchDays = 146097;

 private:
  CronSchedule() = default;
  [[nodiscard]] bool Fires(std::int64_t day) const;  // day: days since 1970-01-01

  std::string text_;
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;        // 1-31
  std::bitset<13> months_;      // 1-12
  std::bitset<7> weekdays_;     // 0-6, Sunday is 0
  bool days_star_ = false;      // the day-of-month field starts with `*`
  bool weekdays_star_ = false;  // the day-of-week field starts with `*`
};

/// Whether a scheduled run is owed at `now_unix`: some slot of `schedule` lies in
/// (`last_run_unix`, `now_unix`]. `last_run_unix` is the start of the last scheduled run, or,
/// before the first one, the moment the schedule took effect (so a new workspace waits for its
/// first slot). However many slots were missed while the daemon was down, the answer is one
/// run: true once, and false again after the caller records that run at `now_unix`.
bool Due(const CronSchedule& schedule, std::int64_t last_run_unix, std::int64_t now_unix);

/// Whether the last successful scheduled backup is too old for `BackupReady`: more than twice
/// the schedule's period (`Period(last_success_unix)`) lies between it and `now_unix`. Before the
/// first success, pass the moment the schedule took effect. Never true for a schedule without a
/// period (none parses).
bool BackupOverdue(const CronSchedule& schedule, std::int64_t last_success_unix,
                   std::int64_t now_unix);

}  // namespace tmaster
