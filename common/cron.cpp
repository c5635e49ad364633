#include "common/cron.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <vector>

#include "common/text.hpp"

namespace tmaster {
namespace {

constexpr std::int64_t kSecondsPerDay = 86400;
constexpr int kMinutesPerDay = 1440;

// The proleptic Gregorian date of a day counted from 1970-01-01 (H. Hinnant's algorithm: exact
// for every year, no time zone, no timegm).
struct CivilDate {
  std::int64_t year;
  int month;  // 1-12
  int day;    // 1-31
};

CivilDate CivilFromDays(std::int64_t days) {
  days += 719468;
  const std::int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const std::int64_t day_of_era = days - era * 146097;
  const std::int64_t year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  const std::int64_t day_of_year =
      day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const std::int64_t shifted_month = (5 * day_of_year + 2) / 153;
  const auto day = static_cast<int>(day_of_year - (153 * shifted_month + 2) / 5 + 1);
  const auto month = static_cast<int>(shifted_month < 10 ? shifted_month + 3 : shifted_month - 9);
  return {year_of_era + era * 400 + (month <= 2 ? 1 : 0), month, day};
}

// 1970-01-01 was a Thursday (4); Sunday is 0.
int WeekdayFromDays(std::int64_t days) {
  return static_cast<int>(((days % 7) + 7 + 4) % 7);
}

std::int64_t FloorDiv(std::int64_t a, std::int64_t b) {
  const std::int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

// The longest month each month can have: February counts its leap day.
constexpr std::array<int, 13> kLongestMonth = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

constexpr std::array<std::string_view, 12> kMonthNames = {"jan", "feb", "mar", "apr", "may", "jun",
                                                          "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::array<std::string_view, 7> kWeekdayNames = {"sun", "mon", "tue", "wed",
                                                           "thu", "fri", "sat"};

struct FieldSpec {
  std::string_view name;
  int min;
  int max;
  const std::string_view* names;  // nullptr: numbers only
  std::size_t name_count;
  int first_name_value;  // the value of names[0]
};

constexpr FieldSpec kMinuteField{"minute", 0, 59, nullptr, 0, 0};
constexpr FieldSpec kHourField{"hour", 0, 23, nullptr, 0, 0};
constexpr FieldSpec kDayField{"day-of-month", 1, 31, nullptr, 0, 0};
constexpr FieldSpec kMonthField{"month", 1, 12, kMonthNames.data(), kMonthNames.size(), 1};
// 7 is Sunday too (every cron since Vixie's accepts both); folded into 0 after parsing.
constexpr FieldSpec kWeekdayField{"day-of-week",        0, 7, kWeekdayNames.data(),
                                  kWeekdayNames.size(), 0};

Failure Invalid(std::string message) {
  return Failure::Stalled("InvalidSchedule", std::move(message));
}

Failure FieldError(const FieldSpec& spec, std::string_view field, std::string_view why) {
  return Invalid(std::string(spec.name) + " field " + Quoted(field) + ": " + std::string(why));
}

bool AllDigits(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) != 0;
  });
}

// A number, or a name where the field has names (one end of a range, or a single value).
Outcome<int> ParseValue(const FieldSpec& spec, std::string_view field, std::string_view value) {
  if (AllDigits(value)) {
    // More than 4 digits is out of every range; stop before int overflow.
    const int number = value.size() > 4 ? 99999 : std::stoi(std::string(value));
    if (number < spec.min || number > spec.max) {
      return FieldError(spec, field,
                        std::string(value) + " is out of range " + std::to_string(spec.min) + "-" +
                            std::to_string(spec.max));
    }
    return number;
  }
  for (std::size_t i = 0; i < spec.name_count; ++i) {
    if (EqualsIgnoreCase(value, spec.names[i])) return spec.first_name_value + static_cast<int>(i);
  }
  if (value.empty()) return FieldError(spec, field, "a value is missing");
  std::string why = Quoted(value) + " is not a number";
  if (spec.names != nullptr) {
    why += std::string(" or a ") + (spec.min == 1 ? "month name (jan-dec)" : "day name (sun-sat)");
  }
  return FieldError(spec, field, why);
}

// One field: a comma-separated list of `*`, `N`, `A-B`, each with an optional `/STEP`
// (`N/STEP` runs from N to the field's maximum). Returns the selected values as a bit mask.
Outcome<std::uint64_t> ParseField(const FieldSpec& spec, std::string_view field) {
  std::uint64_t mask = 0;
  std::size_t start = 0;
  while (start <= field.size()) {
    const std::size_t comma = std::min(field.find(',', start), field.size());
    const std::string_view item = field.substr(start, comma - start);
    start = comma + 1;
    if (item.empty()) return FieldError(spec, field, "an empty item in the list");

    std::string_view range = item;
    int step = 1;
    const std::size_t slash = item.find('/');
    if (slash != std::string_view::npos) {
      range = item.substr(0, slash);
      const std::string_view step_text = item.substr(slash + 1);
      if (!AllDigits(step_text)) {
        return FieldError(spec, field, "step " + Quoted(step_text) + " is not a number");
      }
      step = step_text.size() > 4 ? 99999 : std::stoi(std::string(step_text));
      if (step < 1) return FieldError(spec, field, "a step must be at least 1");
    }

    int low = spec.min;
    int high = spec.max;
    if (range != "*") {
      const std::size_t dash = range.find('-');
      const std::string_view first = range.substr(0, dash);
      auto low_value = ParseValue(spec, field, first);
      if (!low_value) return low_value.failure();
      low = *low_value;
      if (dash != std::string_view::npos) {
        auto high_value = ParseValue(spec, field, range.substr(dash + 1));
        if (!high_value) return high_value.failure();
        high = *high_value;
        if (high < low) {
          return FieldError(spec, field,
                            "range " + std::string(range) + " runs backwards (" +
                                std::to_string(low) + " > " + std::to_string(high) + ")");
        }
      } else if (slash == std::string_view::npos) {
        high = low;  // a single value; `N/STEP` keeps the field's maximum
      }
    }
    for (int value = low; value <= high; value += step) mask |= std::uint64_t{1} << value;
    if (comma == field.size()) break;
  }
  return mask;
}

template <std::size_t N>
std::bitset<N> ToBits(std::uint64_t mask) {
  std::bitset<N> bits;
  for (std::size_t i = 0; i < N; ++i) bits[i] = ((mask >> i) & 1U) != 0;
  return bits;
}

std::vector<std::string_view> SplitFields(std::string_view text) {
  std::vector<std::string_view> fields;
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) ++i;
    const std::size_t begin = i;
    while (i < text.size() && text[i] != ' ' && text[i] != '\t') ++i;
    if (i > begin) fields.push_back(text.substr(begin, i - begin));
  }
  return fields;
}

std::string_view Macro(std::string_view name) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 7> kMacros = {{
      {"@yearly", "0 0 1 1 *"},
      {"@annually", "0 0 1 1 *"},
      {"@monthly", "0 0 1 * *"},
      {"@weekly", "0 0 * * 0"},
      {"@daily", "0 0 * * *"},
      {"@midnight", "0 0 * * *"},
      {"@hourly", "0 * * * *"},
  }};
  for (const auto& [macro, expansion] : kMacros) {
    if (EqualsIgnoreCase(name, macro)) return expansion;
  }
  return {};
}

}  // namespace

Outcome<CronSchedule> CronSchedule::Parse(std::string_view text) {
  const std::string_view trimmed = Trim(text);
  if (trimmed.empty()) return Invalid("schedule is empty");
  std::string_view expression = trimmed;
  if (trimmed.front() == '@') {
    expression = Macro(trimmed);
    if (expression.empty()) {
      return Invalid("schedule " + Quoted(trimmed) +
                     ": unknown macro (one of @hourly, @daily, @midnight, @weekly, @monthly, "
                     "@yearly, @annually)");
    }
  }
  const std::vector<std::string_view> fields = SplitFields(expression);
  if (fields.size() != 5) {
    return Invalid("schedule " + Quoted(trimmed) +
                   ": expected 5 fields (minute hour day-of-month month day-of-week), found " +
                   std::to_string(fields.size()));
  }
  auto minutes = ParseField(kMinuteField, fields[0]);
  if (!minutes) return minutes.failure();
  auto hours = ParseField(kHourField, fields[1]);
  if (!hours) return hours.failure();
  auto days = ParseField(kDayField, fields[2]);
  if (!days) return days.failure();
  auto months = ParseField(kMonthField, fields[3]);
  if (!months) return months.failure();
  auto weekdays = ParseField(kWeekdayField, fields[4]);
  if (!weekdays) return weekdays.failure();

  CronSchedule schedule;
  schedule.text_ = std::string(text);
  schedule.minutes_ = ToBits<60>(*minutes);
  schedule.hours_ = ToBits<24>(*hours);
  schedule.days_ = ToBits<32>(*days);
  schedule.months_ = ToBits<13>(*months);
  schedule.weekdays_ = ToBits<7>(*weekdays | ((*weekdays >> 7) & 1U));  // 7 is Sunday
  // Vixie cron's rule, kept by every cron since: a field that starts with `*` (`*/2` too) does
  // not restrict the day, so the day must match both fields; when both are restricted, either.
  schedule.days_star_ = fields[2].front() == '*';
  schedule.weekdays_star_ = fields[4].front() == '*';

  // With the day-of-month deciding (alone or with `*` weekdays), a day that no selected month
  // has never comes: refuse it now rather than wait forever. (Every valid date falls on every
  // weekday within 400 years, so weekdays never make a valid date impossible.)
  if (schedule.days_star_ || schedule.weekdays_star_) {
    bool possible = false;
    for (int month = 1; month <= 12 && !possible; ++month) {
      if (!schedule.months_[static_cast<std::size_t>(month)]) continue;
      for (int day = 1; day <= kLongestMonth[static_cast<std::size_t>(month)]; ++day) {
        if (schedule.days_[static_cast<std::size_t>(day)]) possible = true;
      }
    }
    if (!possible) {
      return FieldError(kDayField, fields[2],
                        "no such day in the months of the month field " + Quoted(fields[3]) +
                            ", so the schedule never runs");
    }
  }
  return schedule;
}

bool CronSchedule::Fires(std::int64_t day) const {
  const CivilDate date = CivilFromDays(day);
  if (!months_[static_cast<std::size_t>(date.month)]) return false;
  const bool day_matches = days_[static_cast<std::size_t>(date.day)];
  const bool weekday_matches = weekdays_[static_cast<std::size_t>(WeekdayFromDays(day))];
  if (days_star_ || weekdays_star_) return day_matches && weekday_matches;
  return day_matches || weekday_matches;
}

std::optional<std::int64_t> CronSchedule::Next(std::int64_t after_unix) const {
  const std::int64_t start = (FloorDiv(after_unix, 60) + 1) * 60;  // strictly after
  std::int64_t day = FloorDiv(start, kSecondsPerDay);
  auto first_minute = static_cast<int>((start - day * kSecondsPerDay) / 60);
  const std::int64_t last_day = day + kSearchDays;
  for (; day <= last_day; ++day, first_minute = 0) {
    if (!Fires(day)) continue;
    for (int minute_of_day = first_minute; minute_of_day < kMinutesPerDay; ++minute_of_day) {
      const auto hour = static_cast<std::size_t>(minute_of_day / 60);
      if (!hours_[hour]) {
        minute_of_day = static_cast<int>(hour) * 60 + 59;  // the next hour
        continue;
      }
      if (minutes_[static_cast<std::size_t>(minute_of_day % 60)]) {
        return day * kSecondsPerDay + std::int64_t{minute_of_day} * 60;
      }
    }
  }
  return std::nullopt;
}

std::optional<std::int64_t> CronSchedule::Period(std::int64_t from_unix) const {
  // The minutes of a firing day, the same for every firing day.
  std::vector<int> day_minutes;
  for (int minute_of_day = 0; minute_of_day < kMinutesPerDay; ++minute_of_day) {
    if (hours_[static_cast<std::size_t>(minute_of_day / 60)] &&
        minutes_[static_cast<std::size_t>(minute_of_day % 60)]) {
      day_minutes.push_back(minute_of_day);
    }
  }
  std::int64_t largest = 0;
  for (std::size_t i = 1; i < day_minutes.size(); ++i) {
    largest =
        std::max<std::int64_t>(largest, std::int64_t{day_minutes[i] - day_minutes[i - 1]} * 60);
  }
  const std::int64_t wrap =  // from a firing day's last run to the next firing day's first
      std::int64_t{day_minutes.front() - day_minutes.back()} * 60;

  std::int64_t day = FloorDiv(from_unix, kSecondsPerDay);
  // The first firing day lies within one cycle, and the next one within a cycle of it.
  const std::int64_t last_day = day + 2 * kSearchDays;
  std::optional<std::int64_t> first_firing;
  std::optional<std::int64_t> previous_firing;
  for (; day <= last_day; ++day) {
    if (!Fires(day)) continue;
    if (previous_firing) {
      largest = std::max(largest, (day - *previous_firing) * kSecondsPerDay + wrap);
      if (day - *first_firing >= 366) return largest;
    } else {
      first_firing = day;
    }
    previous_firing = day;
  }
  if (!first_firing || *previous_firing == *first_firing) return std::nullopt;
  return largest;
}

bool Due(const CronSchedule& schedule, std::int64_t last_run_unix, std::int64_t now_unix) {
  const std::optional<std::int64_t> slot = schedule.Next(last_run_unix);
  return slot.has_value() && *slot <= now_unix;
}

bool BackupOverdue(const CronSchedule& schedule, std::int64_t last_success_unix,
                   std::int64_t now_unix) {
  const std::optional<std::int64_t> period = schedule.Period(last_success_unix);
  return period.has_value() && now_unix - last_success_unix > 2 * *period;
}

}  // namespace tmaster
