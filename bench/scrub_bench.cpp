// Scrubbing one log line against the process's secrets: the old loop (one std::string::find of
// the whole text per needle, as common/scrub.cpp did before issue 11) against the window index
// Scrubber uses now. 10,000 tenants' derived passwords in their forms make 30,000 needles; the
// message is 200 bytes and carries one of them. Prints the time per message of each and the
// ratio. Run by hand: `cmake --build BUILD --target scrub_bench && BUILD/scrub_bench`.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "common/crypto.hpp"
#include "common/scrub.hpp"
#include "common/text.hpp"

namespace {

using Clock = std::chrono::steady_clock;

// The Scrub of common/scrub.cpp before the index, verbatim in substance.
std::string OldScrub(const std::vector<std::string>& needles, std::string_view text) {
  std::vector<bool> covered(text.size(), false);
  bool any = false;
  for (const std::string& needle : needles) {
    for (std::size_t at = text.find(needle); at != std::string_view::npos;
         at = text.find(needle, at + 1)) {
      std::fill_n(covered.begin() + static_cast<std::ptrdiff_t>(at), needle.size(), true);
      any = true;
    }
  }
  if (!any) return std::string(text);
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (!covered[i]) {
      out.push_back(text[i]);
      continue;
    }
    out += tmaster::kRedacted;
    while (i + 1 < text.size() && covered[i + 1]) ++i;
  }
  return out;
}

template <typename Scrub>
double MicrosPerCall(int calls, std::string& out, Scrub&& scrub) {
  const auto start = Clock::now();
  for (int i = 0; i < calls; ++i) out = scrub();
  const std::chrono::duration<double, std::micro> took = Clock::now() - start;
  return took.count() / calls;
}

}  // namespace

int main() {
  constexpr int kTenants = 10000;
  tmaster::Scrubber index;
  std::vector<std::string> needles;
  std::string one;
  for (int i = 0; i < kTenants; ++i) {
    // A derived password, as reconcilers/postgres/desired.cpp makes them.
    const std::string password = tmaster::crypto::Base64Url(
        tmaster::crypto::HmacSha256("bench-master-key", "postgres/main/tenant_" + std::to_string(i)));
    if (i == kTenants / 2) one = password;
    index.Add(password);
    for (std::string form : {password, tmaster::PercentEncode(password),
                             tmaster::crypto::Base64(password), tmaster::crypto::Base64Url(password)}) {
      if (std::find(needles.begin(), needles.end(), form) == needles.end()) {
        needles.push_back(std::move(form));
      }
    }
  }
  std::string message = "workspace shop-4711: migration 0003_orders.sql failed in database "
                        "\"shop_4711\": FATAL: password authentication failed for user "
                        "\"shop_4711\" (password " + one + ")";
  message.resize(200, '.');

  std::string old_out;
  std::string new_out;
  const double old_us = MicrosPerCall(50, old_out, [&] { return OldScrub(needles, message); });
  const double new_us = MicrosPerCall(20000, new_out, [&] { return index.Scrub(message); });
  if (old_out != new_out || new_out.find(one) != std::string::npos) {
    std::fprintf(stderr, "the two scrubbers disagree:\n%s\n%s\n", old_out.c_str(), new_out.c_str());
    return 1;
  }
  std::printf("needles: %zu (index: %zu), message: %zu bytes\n", needles.size(), index.Size(),
              message.size());
  std::printf("old loop: %10.2f us per message\n", old_us);
  std::printf("index:    %10.2f us per message\n", new_us);
  std::printf("ratio old/new: %.0fx\n", old_us / new_us);

  // An API answer: a page of 50 workspaces (about 50 KB of JSON, no secret in it), which the
  // HTTP server scrubs whole before it leaves (the dashboard asks for one per change it hears).
  // Against the same bytes copied, the floor any scrub pays.
  std::string page;
  for (int i = 0; page.size() < 50'000; ++i) {
    page += R"({"metadata":{"name":"ws-)" + std::to_string(i) +
            R"(","labels":{"plan":"gold"}},"spec":{"product":"landing","mode":"shared"},)"
            R"("status":{"phase":"Degraded","message":"cannot connect to 127.0.0.1:1: )"
            R"(connection refused","lastReconcileTime":"2026-12-03T19:30:00Z"}},)";
  }
  std::string page_out;
  const double page_us = MicrosPerCall(400, page_out, [&] { return index.Scrub(page); });
  const double copy_us = MicrosPerCall(400, page_out, [&] { return std::string(page); });
  if (page_out != page || index.Scrub(page) != page) {
    std::fprintf(stderr, "a page without secrets came out changed\n");
    return 1;
  }
  std::printf("a %zu-byte API page: %8.1f us per scrub (%.2f ns per byte), a copy %.1f us\n",
              page.size(), page_us, page_us * 1000.0 / static_cast<double>(page.size()), copy_us);
  return 0;
}
