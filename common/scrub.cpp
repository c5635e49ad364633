#include "common/scrub.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mutex>

#include "common/crypto.hpp"
#include "common/text.hpp"

namespace tmaster {

std::size_t Scrubber::KeyHash::operator()(std::uint64_t key) const noexcept {
  // splitmix64's finaliser: the keys are raw text bytes, whose low bits alone spread badly.
  key ^= key >> 30U;
  key *= 0xbf58476d1ce4e5b9ULL;
  key ^= key >> 27U;
  key *= 0x94d049bb133111ebULL;
  key ^= key >> 31U;
  return static_cast<std::size_t>(key);
}

std::uint64_t Scrubber::Key(const char* at, std::size_t length) noexcept {
  std::uint64_t key = 0;
  if (length == kWindow) {
    std::memcpy(&key, at, kWindow);  // the common case: one unaligned load, not a call
  } else {
    std::memcpy(&key, at, length);
  }
  return key;
}

void Scrubber::Add(std::string_view secret) {
  if (secret.empty()) return;
  AddNeedle(std::string(secret));
  AddNeedle(PercentEncode(secret));
  AddNeedle(crypto::Base64(secret));
  AddNeedle(crypto::Base64Url(secret));
}

void Scrubber::AddNeedle(std::string form) {
  const auto index = static_cast<std::uint32_t>(needles_.size());
  const std::size_t length = std::min(form.size(), kWindow);
  Index& by_key = by_window_[length - 1];
  std::size_t best_offset = 0;
  std::size_t best_size = SIZE_MAX;
  // Every window is looked up, also after an empty one: the same needle added before is indexed
  // under one of them, at that window's offset (a duplicate is found there, with no set of its
  // own to keep).
  for (std::size_t offset = 0; offset + length <= form.size(); ++offset) {
    const auto [first, last] = by_key.equal_range(Key(form.data() + offset, length));
    std::size_t size = 0;
    for (auto it = first; it != last; ++it, ++size) {
      if (it->second.offset == offset && needles_[it->second.needle] == form) return;
    }
    if (size < best_size) {
      best_size = size;
      best_offset = offset;
    }
  }
  const std::uint64_t key = Key(form.data() + best_offset, length);
  by_key.emplace(key, Entry{index, static_cast<std::uint32_t>(best_offset)});
  std::vector<std::uint64_t>& maybe = maybe_[length - 1];
  if (maybe.empty()) maybe.assign(kFilterBits / 64, 0);
  const std::size_t bit = KeyHash{}(key) & (kFilterBits - 1);
  maybe[bit / 64] |= std::uint64_t{1} << (bit % 64);
  needles_.push_back(std::move(form));
  if (std::find(window_lengths_.begin(), window_lengths_.end(), length) == window_lengths_.end()) {
    window_lengths_.insert(std::upper_bound(window_lengths_.begin(), window_lengths_.end(), length),
                           length);
  }
}

std::string Scrubber::Scrub(std::string_view text) const {
  if (needles_.empty()) return std::string(text);
  // Every occurrence is found in the original text, then the stretches they cover are merged
  // where they overlap or touch: replacing one secret at a time would let a later, shorter
  // secret match a fragment of "<redacted>" or of a longer secret already cut apart, and leave
  // the rest of that longer secret readable.
  struct Span {
    std::size_t begin;
    std::size_t end;
  };
  std::vector<Span> found;
  for (std::size_t at = 0; at < text.size(); ++at) {
    const std::size_t left = text.size() - at;
    for (std::size_t length : window_lengths_) {
      if (length > left) break;
      const std::uint64_t key = Key(text.data() + at, length);
      const std::size_t bit = KeyHash{}(key) & (kFilterBits - 1);
      if ((maybe_[length - 1][bit / 64] & (std::uint64_t{1} << (bit % 64))) == 0) continue;
      const Index& by_key = by_window_[length - 1];
      const auto [first, last] = by_key.equal_range(key);
      for (auto it = first; it != last; ++it) {
        const Entry& entry = it->second;
        const std::string& needle = needles_[entry.needle];
        if (entry.offset > at) continue;
        const std::size_t begin = at - entry.offset;
        if (needle.size() > text.size() - begin) continue;
        if (text.compare(begin, needle.size(), needle) != 0) continue;
        found.push_back({begin, begin + needle.size()});
      }
    }
  }
  if (found.empty()) return std::string(text);
  std::sort(found.begin(), found.end(),
            [](const Span& a, const Span& b) { return a.begin < b.begin; });
  std::string out;
  out.reserve(text.size());
  std::size_t copied = 0;  // text before this is in `out` or redacted
  for (std::size_t i = 0; i < found.size();) {
    const std::size_t begin = found[i].begin;
    std::size_t end = found[i].end;
    for (++i; i < found.size() && found[i].begin <= end; ++i) end = std::max(end, found[i].end);
    out.append(text.substr(copied, begin - copied)).append(kRedacted);
    copied = end;
  }
  out.append(text.substr(copied));
  return out;
}

namespace {

// The registry: a Scrubber behind a mutex. A scrub holds it for microseconds (a log line); a
// reader-writer lock was tried and let busy loggers starve registration (glibc prefers readers).
struct ProcessSecrets {
  std::mutex mutex;
  Scrubber scrubber;
};

ProcessSecrets& Registry() {
  // Never destroyed: a log line written while the process exits still finds it.
  static auto* registry = new ProcessSecrets();
  return *registry;
}

}  // namespace

void RegisterProcessSecret(std::string_view secret) {
  if (secret.size() < kMinProcessSecretBytes) return;
  ProcessSecrets& registry = Registry();
  std::lock_guard lock(registry.mutex);
  registry.scrubber.Add(secret);
}

void RegisterProcessSecret(const Secret& secret) { RegisterProcessSecret(secret.Reveal()); }

std::string ScrubProcessSecrets(std::string_view text) {
  ProcessSecrets& registry = Registry();
  std::lock_guard lock(registry.mutex);
  return registry.scrubber.Scrub(text);
}

}  // namespace tmaster
