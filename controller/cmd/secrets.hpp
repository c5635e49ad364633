#pragma once

#include <string_view>

#include "common/outcome.hpp"
#include "common/secret.hpp"
#include "manifests/config.hpp"

namespace tmaster::controller {

/// Reads a secret from where the config says it lives. Stalled `SecretMissing` when the
/// variable is unset or empty, or the file cannot be read; the message names `field` and the
/// variable or file, never a value. A file's trailing newline is dropped. The value is
/// registered with the process's scrubber (common/scrub.hpp, RegisterProcessSecret), and so is
/// the password inside it when it is a DSN (libpq conninfo or URI), so neither can leave the
/// process in a message.
Outcome<Secret> ResolveSecret(const manifests::SecretRef& ref, std::string_view field);

}  // namespace tmaster::controller
