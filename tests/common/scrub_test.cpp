// common/scrub.hpp: the one secret scrubber. Each case fails without the property it names.
#include <doctest/doctest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "common/crypto.hpp"
#include "common/scrub.hpp"

namespace {

using tmaster::RegisterProcessSecret;
using tmaster::Scrubber;
using tmaster::ScrubProcessSecrets;
using tmaster::Secret;

TEST_CASE("Scrubber redacts every occurrence of a secret") {
  Scrubber scrub;
  scrub.Add("hunter2");
  CHECK(scrub("password hunter2, again hunter2.") == "password <redacted>, again <redacted>.");
  CHECK(scrub("nothing secret here") == "nothing secret here");
}

TEST_CASE("Scrubber keeps each form once, however often and in whatever order it is added") {
  Scrubber scrub;
  scrub.Add("tenant-password-one");
  const std::size_t one = scrub.Size();
  CHECK(one == 3);  // plain and percent-encoded (the same here: kept once), base64, base64url
  scrub.Add("tenant-password-one");
  CHECK(scrub.Size() == one);
  // Secrets alike over most of their length (the index picks other windows for them) and forms
  // shared between secrets are still kept once each.
  for (int i = 0; i < 50; ++i) scrub.Add("tenant-password-" + std::to_string(i % 10));
  const std::size_t ten = scrub.Size();
  for (int i = 9; i >= 0; --i) scrub.Add("tenant-password-" + std::to_string(i));
  CHECK(scrub.Size() == ten);
  scrub.Add("short");
  scrub.Add("short");
  CHECK(scrub.Size() == ten + 3);  // "short": its base64 and base64url forms differ
  CHECK(scrub.Scrub("a tenant-password-7 b short c") == "a <redacted> b <redacted> c");
}

TEST_CASE("Scrubber: a secret that contains another is redacted whole (longest first)") {
  Scrubber shorter_first;
  shorter_first.Add("s3cret");
  shorter_first.Add("postgresql://admin:s3cret@db.internal/app");
  Scrubber longer_first;
  longer_first.Add("postgresql://admin:s3cret@db.internal/app");
  longer_first.Add("s3cret");
  const std::string text = "cannot parse postgresql://admin:s3cret@db.internal/app: bad";
  // Removing the password first would leave "postgresql://admin:<redacted>@db.internal/app".
  CHECK(shorter_first(text) == "cannot parse <redacted>: bad");
  CHECK(longer_first(text) == "cannot parse <redacted>: bad");
}

TEST_CASE("Scrubber: the text of a redaction is never matched again") {
  Scrubber scrub;
  scrub.Add("ted");  // a substring of "<redacted>"
  scrub.Add("xted-and-more");
  CHECK(scrub("a xted-and-more b ted") == "a <redacted> b <redacted>");
}

TEST_CASE("Scrubber: overlapping or touching occurrences leave nothing of either secret") {
  Scrubber scrub;
  scrub.Add("abcd");
  scrub.Add("cdef");
  CHECK(scrub("[abcdef]") == "[<redacted>]");
  CHECK(scrub("[abcdabcd]") == "[<redacted>]");
}

TEST_CASE("Scrubber redacts a secret's percent-encoded form (a password in a URL)") {
  Scrubber scrub;
  scrub.Add("p@ss w/rd");
  CHECK(scrub("postgresql://u:p%40ss%20w%2Frd@host/db") == "postgresql://u:<redacted>@host/db");
}

TEST_CASE("Scrubber redacts a secret's base64 forms (a Basic auth header, a base64url token)") {
  Scrubber scrub;
  scrub.Add("alice:s3cr3t");
  scrub.Add("password");
  scrub.Add(std::string("\xfb\xff\xfe"));
  CHECK(scrub("Authorization: Basic YWxpY2U6czNjcjN0") == "Authorization: Basic <redacted>");
  CHECK(scrub("value: cGFzc3dvcmQ=") == "value: <redacted>");  // standard, padded
  CHECK(scrub("std +//+ url -__-") == "std <redacted> url <redacted>");
}

TEST_CASE("Scrubber ignores an empty secret") {
  Scrubber scrub;
  scrub.Add("");
  scrub.Add(Secret());
  CHECK(scrub.Empty());
  CHECK(scrub("any text at all") == "any text at all");
  CHECK(scrub("") == "");
}

TEST_CASE("Scrubber: a copy takes more secrets without changing the original") {
  Scrubber base;
  base.Add(Secret("admin-pw"));
  Scrubber call = base;
  call.Add("tenant-pw");
  CHECK(call("admin-pw tenant-pw") == "<redacted> <redacted>");
  CHECK(base("admin-pw tenant-pw") == "<redacted> tenant-pw");
}

TEST_CASE("Scrubber: a secret sharing the index's prefix with another is told apart by the rest") {
  Scrubber scrub;
  scrub.Add("prefix08-first-secret");
  scrub.Add("prefix08-second");
  scrub.Add("prefix08");
  CHECK(scrub("a prefix08-second b prefix08-other c prefix08-first-secret") ==
        "a <redacted> b <redacted>-other c <redacted>");
  CHECK(scrub("prefix0") == "prefix0");
}

TEST_CASE("Scrubber: secrets of every length up to and past the index's prefix, at the text's ends") {
  const std::string all = "abcdefghijklmnopq";
  for (std::size_t length = 1; length <= all.size(); ++length) {
    Scrubber one;
    one.Add(all.substr(all.size() - length));
    CAPTURE(length);
    CHECK(one(all) == all.substr(0, all.size() - length) + "<redacted>");
    CHECK(one(all.substr(all.size() - length) + "!") == "<redacted>!");
  }
}

// The process registry is shared by every test in this binary: each case registers values of
// its own that no other test prints.

TEST_CASE("ScrubProcessSecrets redacts a registered secret in every form, and ignores short ones") {
  RegisterProcessSecret("registry-case-1-p@ss w/rd");
  RegisterProcessSecret(Secret("registry-case-1-key"));
  RegisterProcessSecret("short7!");  // under kMinProcessSecretBytes: would redact too much
  RegisterProcessSecret("");
  CHECK(ScrubProcessSecrets("dsn registry-case-1-p@ss w/rd, key registry-case-1-key") ==
        "dsn <redacted>, key <redacted>");
  CHECK(ScrubProcessSecrets("url registry-case-1-p%40ss%20w%2Frd") == "url <redacted>");
  CHECK(ScrubProcessSecrets("basic " + tmaster::crypto::Base64("registry-case-1-key")) ==
        "basic <redacted>");
  CHECK(ScrubProcessSecrets("short7! stays") == "short7! stays");
  // Idempotent: registering again changes nothing.
  RegisterProcessSecret("registry-case-1-key");
  CHECK(ScrubProcessSecrets("x registry-case-1-key y") == "x <redacted> y");
}

TEST_CASE("ScrubProcessSecrets with 10,000 tenants' passwords finds the one in a message") {
  for (int i = 0; i < 10000; ++i) {
    RegisterProcessSecret("tenant-" + std::to_string(i) + "-" +
                          tmaster::crypto::Sha256Hex("registry-case-2-" + std::to_string(i)));
  }
  const std::string password =
      "tenant-4711-" + tmaster::crypto::Sha256Hex("registry-case-2-4711");
  CHECK(ScrubProcessSecrets("FATAL: password authentication failed (\"" + password + "\")") ==
        "FATAL: password authentication failed (\"<redacted>\")");
  CHECK(ScrubProcessSecrets("tenant-4711- alone is no secret") == "tenant-4711- alone is no secret");
}

TEST_CASE("RegisterProcessSecret from several threads while others scrub") {
  constexpr int kWriters = 4;
  constexpr int kPerWriter = 500;
  std::atomic<bool> stop{false};
  std::atomic<int> scrubbed{0};
  std::vector<std::thread> threads;
  const auto secret = [](int writer, int i) {
    return "registry-case-3-" + std::to_string(writer) + "-" + std::to_string(i);
  };
  for (int reader = 0; reader < 2; ++reader) {
    threads.emplace_back([&] {
      while (!stop.load()) {
        // A registered secret is redacted from the moment it is registered.
        std::string out = ScrubProcessSecrets("before registry-case-3-0-0 after");
        if (out != "before registry-case-3-0-0 after") {
          CHECK(out == "before <redacted> after");
        }
        scrubbed.fetch_add(1);
      }
    });
  }
  for (int writer = 0; writer < kWriters; ++writer) {
    threads.emplace_back([&, writer] {
      for (int i = 0; i < kPerWriter; ++i) RegisterProcessSecret(secret(writer, i));
    });
  }
  for (std::size_t i = 2; i < threads.size(); ++i) threads[i].join();
  stop.store(true);
  threads[0].join();
  threads[1].join();
  CHECK(scrubbed.load() > 0);
  for (int writer = 0; writer < kWriters; ++writer) {
    for (int i = 0; i < kPerWriter; i += 97) {
      CHECK(ScrubProcessSecrets("[" + secret(writer, i) + "]") == "[<redacted>]");
    }
  }
}

}  // namespace
