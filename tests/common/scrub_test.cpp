// common/scrub.hpp: the one secret scrubber. Each case fails without the property it names.
#include <doctest/doctest.h>

#include <string>

#include "common/scrub.hpp"

namespace {

using tmaster::Scrubber;
using tmaster::Secret;

TEST_CASE("Scrubber redacts every occurrence of a secret") {
  Scrubber scrub;
  scrub.Add("hunter2");
  CHECK(scrub("password hunter2, again hunter2.") == "password <redacted>, again <redacted>.");
  CHECK(scrub("nothing secret here") == "nothing secret here");
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

}  // namespace
