#include "common/scrub.hpp"

#include <algorithm>

#include "common/crypto.hpp"
#include "common/text.hpp"

namespace tmaster {

void Scrubber::Add(std::string_view secret) {
  if (secret.empty()) return;
  const std::string forms[] = {std::string(secret), PercentEncode(secret), crypto::Base64(secret),
                               crypto::Base64Url(secret)};
  for (const std::string& form : forms) {
    if (std::find(needles_.begin(), needles_.end(), form) != needles_.end()) continue;
    // Longest first: the order Scrub looks for them in. The result does not depend on it (every
    // occurrence is covered), but a long secret found first covers the short ones inside it.
    const auto at = std::find_if(needles_.begin(), needles_.end(),
                                 [&form](const std::string& n) { return n.size() < form.size(); });
    needles_.insert(at, form);
  }
}

std::string Scrubber::Scrub(std::string_view text) const {
  if (needles_.empty()) return std::string(text);
  // Mark every byte some occurrence covers, in the original text: replacing one secret at a time
  // would let a later, shorter secret match a fragment of "<redacted>" or of a longer secret
  // already cut apart, and leave the rest of that longer secret readable.
  std::vector<bool> covered(text.size(), false);
  bool any = false;
  for (const std::string& needle : needles_) {
    for (std::size_t at = text.find(needle); at != std::string_view::npos;
         at = text.find(needle, at + 1)) {
      std::fill_n(covered.begin() + static_cast<std::ptrdiff_t>(at), needle.size(), true);
      any = true;
    }
  }
  if (!any) return std::string(text);
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (!covered[i]) {
      out.push_back(text[i]);
      continue;
    }
    out += kRedacted;
    while (i + 1 < text.size() && covered[i + 1]) ++i;
  }
  return out;
}

}  // namespace tmaster
