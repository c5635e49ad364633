// Cron schedules (docs/backups.md#schedules): parsing with errors that name the field, the next
// run across month lengths and leap years, the day-of-month/day-of-week rule, the period that
// BackupReady doubles, and the one run owed after downtime. Dates are checked against timegm(3),
// an implementation independent of the one under test.
#include <doctest/doctest.h>

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>

#include "common/cron.hpp"

namespace {

using tmaster::CronSchedule;
using tmaster::Due;

std::int64_t Utc(int year, int month, int day, int hour = 0, int minute = 0, int second = 0) {
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return static_cast<std::int64_t>(timegm(&tm));
}

CronSchedule Must(const std::string& text) {
  auto parsed = CronSchedule::Parse(text);
  INFO(text, ": ", parsed ? std::string() : parsed.failure().message);
  REQUIRE(parsed.ok());
  return *parsed;
}

std::string ParseError(const std::string& text) {
  auto parsed = CronSchedule::Parse(text);
  if (parsed.ok()) return "(parsed)";
  CHECK(parsed.failure().reason == "InvalidSchedule");
  return parsed.failure().message;
}

std::optional<std::int64_t> NextAfter(const std::string& text, std::int64_t after) {
  return Must(text).Next(after);
}

constexpr std::int64_t kDay = 86400;

}  // namespace

TEST_CASE("cron: parse errors name the field, quote its text and say why") {
  CHECK(ParseError("61 * * * *") == "minute field \"61\": 61 is out of range 0-59");
  CHECK(ParseError("0 24 * * *") == "hour field \"24\": 24 is out of range 0-23");
  CHECK(ParseError("0 0 0 * *") == "day-of-month field \"0\": 0 is out of range 1-31");
  CHECK(ParseError("0 0 * 13 *") == "month field \"13\": 13 is out of range 1-12");
  CHECK(ParseError("0 0 * * 8") == "day-of-week field \"8\": 8 is out of range 0-7");
  CHECK(ParseError("0 0 * * 1-99999999999") ==
        "day-of-week field \"1-99999999999\": 99999999999 is out of range 0-7");
  CHECK(ParseError("0 0 * foo *") ==
        "month field \"foo\": \"foo\" is not a number or a month name (jan-dec)");
  CHECK(ParseError("0 0 * * funday") ==
        "day-of-week field \"funday\": \"funday\" is not a number or a day name (sun-sat)");
  CHECK(ParseError("x * * * *") == "minute field \"x\": \"x\" is not a number");
  CHECK(ParseError("5-1 * * * *") == "minute field \"5-1\": range 5-1 runs backwards (5 > 1)");
  CHECK(ParseError("0 22-2 * * *") == "hour field \"22-2\": range 22-2 runs backwards (22 > 2)");
  CHECK(ParseError("*/0 * * * *") == "minute field \"*/0\": a step must be at least 1");
  CHECK(ParseError("*/x * * * *") == "minute field \"*/x\": step \"x\" is not a number");
  CHECK(ParseError("1,,2 * * * *") == "minute field \"1,,2\": an empty item in the list");
  CHECK(ParseError("1, * * * *") == "minute field \"1,\": an empty item in the list");
  CHECK(ParseError("1- * * * *") == "minute field \"1-\": a value is missing");
  CHECK(ParseError("0 0 * *") ==
        "schedule \"0 0 * *\": expected 5 fields (minute hour day-of-month month day-of-week), "
        "found 4");
  CHECK(ParseError("0 0 * * * *").find("found 6") != std::string::npos);
  CHECK(ParseError("@reboot").find("schedule \"@reboot\": unknown macro") == 0);
  CHECK(ParseError("   ") == "schedule is empty");
}

TEST_CASE("cron: a schedule that can never run is refused, naming the day-of-month field") {
  CHECK(ParseError("0 0 31 2 *") ==
        "day-of-month field \"31\": no such day in the months of the month field \"2\", so the "
        "schedule never runs");
  CHECK(ParseError("0 0 30 feb *").find("day-of-month field \"30\"") == 0);
  CHECK(ParseError("0 0 31 4,6,9,11 *").find("never runs") != std::string::npos);
  CHECK(ParseError("0 0 30/5 2 *").find("never runs") != std::string::npos);
  // With day-of-week restricted too, either matches: every February Monday still runs.
  CHECK(NextAfter("0 0 31 2 mon", Utc(2026, 1, 1)) == Utc(2026, 2, 2));
  // February 29 exists (in leap years).
  CHECK(NextAfter("0 0 29 2 *", Utc(2026, 1, 1)) == Utc(2028, 2, 29));
}

TEST_CASE("cron: next run, strictly after, for each kind of field") {
  struct Row {
    const char* schedule;
    std::int64_t after;
    std::int64_t expected;
  };
  const Row rows[] = {
      {"* * * * *", Utc(2026, 12, 3, 18, 28, 34), Utc(2026, 12, 3, 18, 29)},
      {"* * * * *", Utc(2026, 12, 3, 18, 29, 0), Utc(2026, 12, 3, 18, 30)},  // strictly after
      {"0 3 * * *", Utc(2026, 12, 3, 3, 0), Utc(2026, 12, 4, 3, 0)},
      {"0 3 * * *", Utc(2026, 12, 3, 2, 59, 59), Utc(2026, 12, 3, 3, 0)},
      {"*/15 * * * *", Utc(2026, 12, 3, 18, 31), Utc(2026, 12, 3, 18, 45)},
      {"10-20/5 * * * *", Utc(2026, 12, 3, 18, 16), Utc(2026, 12, 3, 18, 20)},
      {"10-20/5 * * * *", Utc(2026, 12, 3, 18, 20), Utc(2026, 12, 3, 19, 10)},
      {"50/5 * * * *", Utc(2026, 12, 3, 18, 56), Utc(2026, 12, 3, 19, 50)},  // N/STEP: N to 59
      {"5,17,42 * * * *", Utc(2026, 12, 3, 18, 17), Utc(2026, 12, 3, 18, 42)},
      {"30 23 31 12 *", Utc(2026, 12, 31, 23, 30), Utc(2027, 12, 31, 23, 30)},  // year rollover
      {"0 0 * JAN,Jul *", Utc(2026, 2, 1), Utc(2026, 7, 1)},                    // names, any case
      {"0 0 * * MON-wed", Utc(2026, 12, 3), Utc(2026, 12, 7)},                  // Thu -> Mon
      {"0 12 * * 7", Utc(2026, 12, 3), Utc(2026, 12, 6, 12)},                   // 7 is Sunday
      {"0 12 * * 0", Utc(2026, 12, 3), Utc(2026, 12, 6, 12)},
      {"0 12 * * 5-7", Utc(2026, 12, 5, 13), Utc(2026, 12, 6, 12)},  // Fri-Sun
      {"0 0 31 * *", Utc(2026, 1, 31, 0, 1), Utc(2026, 3, 31)},      // skips February
      {"0 0 31 * *", Utc(2026, 3, 31, 0, 1), Utc(2026, 5, 31)},      // and April
      {"0 0 30 * *", Utc(2026, 1, 30, 1), Utc(2026, 3, 30)},
      {"0 0 29 2 *", Utc(2024, 2, 29, 0, 0), Utc(2028, 2, 29)},  // leap years
      {"0 0 29 2 *", Utc(2096, 3, 1), Utc(2104, 2, 29)},         // 2100 is not one
      {"0 0 29 2 */7", Utc(2004, 3, 1), Utc(2032, 2, 29)},       // February 29 on a Sunday
      {"0 0 29 2 */7", Utc(2088, 3, 1), Utc(2128, 2, 29)},       // 40 years on
      {"0 0 29 * *", Utc(2100, 1, 29, 1), Utc(2100, 3, 29)},
      {"0 0 29 * *", Utc(2000, 1, 29, 1), Utc(2000, 2, 29)},  // 2000 is one
      {"0 0 28-31 2 *", Utc(2027, 2, 28, 1), Utc(2028, 2, 28)},
      {"0 0 1 1 *", Utc(1969, 12, 31, 12), Utc(1970, 1, 1)},  // before 1970
  };
  for (const Row& row : rows) {
    CAPTURE(row.schedule);
    CAPTURE(row.after);
    CHECK(NextAfter(row.schedule, row.after) == row.expected);
  }
}

TEST_CASE("cron: day-of-month and day-of-week, the classic rule") {
  // Both restricted: either matches. 2026-12-13 is the 13th; 2026-12-04 is a Friday.
  CHECK(NextAfter("0 0 13 * 5", Utc(2026, 12, 3)) == Utc(2026, 12, 4));
  CHECK(NextAfter("0 0 13 * 5", Utc(2026, 12, 12)) == Utc(2026, 12, 13));
  // Day-of-week `*`: only the day of the month decides; and the other way round.
  CHECK(NextAfter("0 0 13 * *", Utc(2026, 12, 3)) == Utc(2026, 12, 13));
  CHECK(NextAfter("0 0 * * 5", Utc(2026, 12, 4, 1)) == Utc(2026, 12, 11));
  // A field that starts with `*` does not restrict (Vixie cron): `*/2` and Monday means odd
  // days that are Mondays. 2026-12-07 is a Monday on an odd day; 2026-12-14 an even one.
  CHECK(NextAfter("0 0 */2 * mon", Utc(2026, 12, 3)) == Utc(2026, 12, 7));
  CHECK(NextAfter("0 0 */2 * mon", Utc(2026, 12, 7, 1)) == Utc(2026, 12, 21));
  // `*/7` on day-of-week is Sunday alone but still a star: Sundays that are the 13th.
  CHECK(NextAfter("0 0 13 * */7", Utc(2026, 1, 1)) == Utc(2026, 9, 13));
}

TEST_CASE("cron: the macros") {
  const std::int64_t after = Utc(2026, 12, 3, 18, 28);  // a Thursday
  CHECK(NextAfter("@hourly", after) == Utc(2026, 12, 3, 19));
  CHECK(NextAfter("@daily", after) == Utc(2026, 12, 4));
  CHECK(NextAfter("@midnight", after) == Utc(2026, 12, 4));
  CHECK(NextAfter("@weekly", after) == Utc(2026, 12, 6));
  CHECK(NextAfter("@monthly", after) == Utc(2027, 1, 1));
  CHECK(NextAfter("@yearly", after) == Utc(2027, 1, 1));
  CHECK(NextAfter("@Annually", after) == Utc(2027, 1, 1));
  CHECK(Must("  @daily ").text() == "  @daily ");
  CHECK(NextAfter("0\t3  * *   *", after) == Utc(2026, 12, 4, 3));  // any spaces and tabs
}

TEST_CASE("cron: forty runs agree with a minute-by-minute scan") {
  // A brute-force oracle over a schedule with every kind of field.
  const CronSchedule schedule = Must("*/20 1,13 10-12,28 feb-mar *");
  std::int64_t at = Utc(2027, 12, 31, 23);
  for (int runs = 0; runs < 40; ++runs) {
    const std::optional<std::int64_t> next = schedule.Next(at);
    REQUIRE(next.has_value());
    std::int64_t scan = (at / 60 + 1) * 60;
    for (;; scan += 60) {
      const auto time = static_cast<std::time_t>(scan);
      std::tm tm{};
      gmtime_r(&time, &tm);
      const bool day = (tm.tm_mday >= 10 && tm.tm_mday <= 12) || tm.tm_mday == 28;
      if (tm.tm_min % 20 == 0 && (tm.tm_hour == 1 || tm.tm_hour == 13) && day &&
          (tm.tm_mon == 1 || tm.tm_mon == 2)) {
        break;
      }
    }
    CHECK(*next == scan);
    at = *next;
  }
}

TEST_CASE("cron: the period is the largest gap between consecutive runs") {
  const std::int64_t from = Utc(2026, 12, 3, 18, 28);
  CHECK(Must("* * * * *").Period(from) == 60);
  CHECK(Must("*/15 * * * *").Period(from) == 15 * 60);
  CHECK(Must("0 3 * * *").Period(from) == kDay);
  CHECK(Must("0 */6 * * *").Period(from) == 6 * 3600);
  CHECK(Must("0 3,4 * * *").Period(from) == 23 * 3600);  // 04:00 to 03:00 the next day
  CHECK(Must("0 3 * * 1-5").Period(from) == 3 * kDay);   // Friday to Monday
  CHECK(Must("@weekly").Period(from) == 7 * kDay);
  CHECK(Must("0 0 31 * *").Period(from) == Utc(2027, 5, 31) - Utc(2027, 3, 31));  // 61 days
  CHECK(Must("@yearly").Period(from) == 366 * kDay);                              // across 2028
  CHECK(Must("0 0 29 2 *").Period(from) == Utc(2032, 2, 29) - Utc(2028, 2, 29));
  CHECK(Must("0 0 29 2 *").Period(Utc(2096, 1, 1)) == Utc(2104, 2, 29) - Utc(2096, 2, 29));
  CHECK(Must("0 0 29 2 */7").Period(Utc(2088, 1, 1)) == Utc(2128, 2, 29) - Utc(2088, 2, 29));
  // Every minute of January: the year's gap, not the minute (runs are not walked one by one).
  CHECK(Must("* * * 1 *").Period(from) == Utc(2028, 1, 1) - Utc(2027, 1, 31, 23, 59));
}

TEST_CASE("cron: a missed schedule is owed once, not once per missed slot") {
  const CronSchedule hourly = Must("@hourly");
  const std::int64_t last = Utc(2026, 12, 3, 10);
  CHECK_FALSE(Due(hourly, last, last));
  CHECK_FALSE(Due(hourly, last, Utc(2026, 12, 3, 10, 59, 59)));
  CHECK(Due(hourly, last, Utc(2026, 12, 3, 11)));
  // Down for two days: 48 slots missed, one run owed; once it ran (recorded at start), none.
  const std::int64_t start = Utc(2026, 12, 5, 10, 17);
  CHECK(Due(hourly, last, start));
  CHECK_FALSE(Due(hourly, start, start));
  CHECK_FALSE(Due(hourly, start, start + 42 * 60));
  CHECK(Due(hourly, start, Utc(2026, 12, 5, 11)));
  // A schedule that took effect after its last slot waits for the next one.
  CHECK_FALSE(Due(Must("0 3 * * *"), Utc(2026, 12, 3, 3, 30), Utc(2026, 12, 4, 2, 59)));
  CHECK(Due(Must("0 3 * * *"), Utc(2026, 12, 3, 3, 30), Utc(2026, 12, 4, 3, 0)));
}

TEST_CASE("cron: BackupReady's overdue is more than twice the period since the last success") {
  using tmaster::BackupOverdue;
  const CronSchedule daily = Must("0 3 * * *");
  const std::int64_t success = Utc(2026, 12, 3, 3, 4);
  CHECK_FALSE(BackupOverdue(daily, success, success + 2 * kDay));
  CHECK(BackupOverdue(daily, success, success + 2 * kDay + 1));
  // A weekday schedule: Friday's backup is not overdue on Sunday night, nor on Monday.
  const CronSchedule weekdays = Must("0 3 * * 1-5");
  const std::int64_t friday = Utc(2026, 12, 4, 3, 2);
  CHECK_FALSE(BackupOverdue(weekdays, friday, Utc(2026, 12, 6, 23, 0)));
  CHECK_FALSE(BackupOverdue(weekdays, friday, Utc(2026, 12, 8, 3, 0)));
  CHECK(BackupOverdue(weekdays, friday, Utc(2026, 12, 10, 3, 3)));
}
