#pragma once

// The one secret scrubber: every adapter that builds a message from text it did not write (a
// server's error, a tool's stderr, an API's answer) passes it through a Scrubber holding the
// secrets that text could echo, so no password, DSN, key or token reaches a log, an event, a
// condition or an error (docs/architecture.md#secrets).

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
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

  /// How many needles (forms of secrets, without duplicates) are held.
  [[nodiscard]] std::size_t Size() const { return needles_.size(); }

 private:
  // Each needle is indexed by one window of kWindow bytes (all of a shorter needle), the window
  // of the needle that the fewest others share, so Scrub looks up at most kWindow keys at each
  // position of the text and compares only the needles that could be there: O(text length)
  // whatever the number of secrets (the process registry holds every tenant's password in four
  // forms), instead of one search of the whole text per needle. Choosing the rarest window,
  // not the first, keeps the buckets small when many secrets share a beginning (DSNs, base64 of
  // `tenant-...`); only secrets alike over their whole length would share one.
  static constexpr std::size_t kWindow = 8;
  struct Entry {
    std::uint32_t needle;  // index into needles_
    std::uint32_t offset;  // where the window starts in the needle
  };
  struct KeyHash {
    std::size_t operator()(std::uint64_t key) const noexcept;
  };
  // One node per needle (a multimap, not a vector per key: most keys have one needle).
  using Index = std::unordered_multimap<std::uint64_t, Entry, KeyHash>;

  [[nodiscard]] static std::uint64_t Key(const char* at, std::size_t length) noexcept;
  void AddNeedle(std::string form);

  std::vector<std::string> needles_;  // every form of every secret, no duplicates
  // by_window_[L - 1]: the needles whose window is L bytes long (L < kWindow: the whole needle).
  std::array<Index, kWindow> by_window_;
  // maybe_[L - 1]: one bit per KeyHash of a window key in by_window_[L - 1] (kFilterBits bits,
  // empty while none): most positions of a text start no secret's window, and one bit test says
  // so without the index's lookup (a division and a pointer chase). 2^20 bits keep 40,000
  // needles (10,000 tenants in four forms) at a 4 % false-positive rate in 128 KiB.
  static constexpr std::size_t kFilterBits = std::size_t{1} << 20;
  std::array<std::vector<std::uint64_t>, kWindow> maybe_;
  std::vector<std::size_t> window_lengths_;  // the L with a non-empty index, ascending
};

/// The process's secret registry: every secret the operator holds (the master key, DSNs and
/// their passwords, API keys, webhook secrets, git credentials, tokens, derived tenant
/// passwords) is registered where it is loaded or derived, and every message that leaves the
/// process (log, `--once` output, event, status, API answer) passes through
/// ScrubProcessSecrets, so a secret echoed by a server, a tool or a file read by mistake never
/// leaves it (docs/architecture.md#secrets). It is process-wide, unlike everything else, because
/// the log sink and the egresses have no other common owner; it only grows.
///
/// Registers `secret` in all the forms Scrubber::Add knows. Thread-safe and idempotent. A value
/// shorter than kMinProcessSecretBytes is ignored: a short value (a test's "pw", a one-letter
/// token) would be redacted in every word that contains it and make messages unreadable; real
/// secrets are longer, and the adapters still scrub short ones they hold with their own Scrubber.
void RegisterProcessSecret(std::string_view secret);
void RegisterProcessSecret(const Secret& secret);

/// The shortest value RegisterProcessSecret keeps, in bytes.
inline constexpr std::size_t kMinProcessSecretBytes = 8;

/// `text` with every registered secret, in every form, replaced as Scrubber::Scrub does.
/// Thread-safe; may run while secrets are registered.
[[nodiscard]] std::string ScrubProcessSecrets(std::string_view text);

}  // namespace tmaster
