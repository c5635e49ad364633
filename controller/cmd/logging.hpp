#pragma once
// The operator's log: every line passes through the process's secret registry
// (common/scrub.hpp, ScrubProcessSecrets) after it is formatted, so a secret that reaches a log
// call's arguments (a server's error quoting a file, a DSN in an exception) is written as
// <redacted> (docs/architecture.md#secrets).

#include <string>

namespace tmaster::controller {

/// The long-running controller's line format (spdlog pattern).
inline constexpr const char* kDaemonLogPattern = "%Y-%m-%dT%H:%M:%S.%e %l %v";

/// Makes every spdlog logger, the default one and those made later, format its lines with
/// `pattern` ("%+" is spdlog's own default) and then scrub the whole line. Call it before the
/// threads that log start; a logger given its own pattern afterwards would not scrub.
void InstallScrubbingLogger(const std::string& pattern = "%+");

}  // namespace tmaster::controller
