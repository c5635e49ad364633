#pragma once
// Wall-clock time as the status and events show it: Unix seconds and RFC 3339 in UTC.
// (Monotonic time for delays is controller/runtime/clock.hpp.)

#include <chrono>
#include <cstdint>
#include <ctime>
#include <string>

namespace tmaster {

/// Seconds since the Unix epoch, now.
inline std::int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// `2006-01-02T15:04:05Z`.
inline std::string FormatRfc3339Utc(std::int64_t unix_seconds) {
  const auto time = static_cast<std::time_t>(unix_seconds);
  std::tm utc{};
  gmtime_r(&time, &utc);
  char buffer[32];
  const std::size_t n = std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return {buffer, n};
}

/// A system_clock time point, to the second.
inline std::string FormatRfc3339Utc(std::chrono::system_clock::time_point at) {
  return FormatRfc3339Utc(
      std::chrono::duration_cast<std::chrono::seconds>(at.time_since_epoch()).count());
}

}  // namespace tmaster
