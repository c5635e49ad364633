#pragma once

// The one secret scrubber: every adapter that builds a message from text it did not write (a
// server's error, a tool's stderr, an API's answer) passes it through a Scrubber holding the
// secrets that text could echo, so no password, DSN, key or token reaches a log, an event, a
// condition or an error (docs/architecture.md#secrets).

#include <string>
#include <string_view>
#include <vector>

#include "common/secret.hpp"

namespace tmaster {

/// What a redacted secret reads as in a message.
inline constexpr std::string_view kRedacted = "<redacted>";

/// A set of secrets to remove from text. Copy one to add the secrets of a single call (a tenant
/// password, a verifier) without changing the original. Not synchronized; a const Scrubber may be
/// used from several threads.
class Scrubber {
 public:
  /// Adds `secret` with the forms it takes when it travels inside other text: percent-encoded (a
  /// password in a URL's userinfo or query), standard base64 with padding (an `Authorization:
  /// Basic` header, a Kubernetes secret) and base64url without padding. An empty secret is
  /// ignored: it would match everywhere.
  void Add(std::string_view secret);
  void Add(const Secret& secret) { Add(secret.Reveal()); }

  /// `text` with every occurrence of every secret (in any of its forms) replaced by kRedacted.
  /// Where occurrences overlap or touch, the whole stretch they cover becomes one kRedacted, so a
  /// secret that contains another (a DSN and the password inside it) is redacted whole, as if the
  /// longest were removed first, and nothing of either is left beside the mark. Scrub before
  /// truncating: a secret cut in half no longer matches.
  [[nodiscard]] std::string Scrub(std::string_view text) const;
  [[nodiscard]] std::string operator()(std::string_view text) const { return Scrub(text); }

  /// True when no secret was added (Scrub returns its input).
  [[nodiscard]] bool Empty() const { return needles_.empty(); }

 private:
  std::vector<std::string> needles_;  // every form of every secret, longest first, no duplicates
};

}  // namespace tmaster
