// common/text.hpp: the one Quoted, Lower, EqualsIgnoreCase, Trim, ReplaceAll and OneLine.
#include <doctest/doctest.h>

#include <stdexcept>
#include <string>

#include "common/text.hpp"

namespace {

using tmaster::EqualsIgnoreCase;
using tmaster::ExceptionText;
using tmaster::Lower;
using tmaster::OneLine;
using tmaster::Quoted;
using tmaster::ReplaceAll;
using tmaster::Trim;

TEST_CASE("Quoted puts the name in double quotes and escapes nothing") {
  CHECK(Quoted("tenant_acme") == "\"tenant_acme\"");
  CHECK(Quoted("") == "\"\"");
  CHECK(Quoted("a\"b") == "\"a\"b\"");
}

TEST_CASE("Lower lowers ASCII letters only, whatever the locale") {
  CHECK(Lower("X-Hub-Signature-256") == "x-hub-signature-256");
  CHECK(Lower("already lower 09_-") == "already lower 09_-");
  // Bytes above 0x7f (here the UTF-8 of "É") are not letters to Lower.
  CHECK(Lower("\xC3\x89T\xC3\x89") == "\xC3\x89t\xC3\x89");
}

TEST_CASE("EqualsIgnoreCase compares ASCII letters without case, and lengths exactly") {
  CHECK(EqualsIgnoreCase("Push Hook", "push hook"));
  CHECK(EqualsIgnoreCase("", ""));
  CHECK_FALSE(EqualsIgnoreCase("push", "pushed"));
  CHECK_FALSE(EqualsIgnoreCase("push", "pusH "));
  CHECK_FALSE(EqualsIgnoreCase("\xC3\x89", "\xC3\xA9"));  // É and é: not ASCII
}

TEST_CASE("Trim removes ASCII whitespace at both ends and keeps the inside") {
  CHECK(Trim("  a b \t") == "a b");
  CHECK(Trim("\r\n\v\fvalue\n\r") == "value");
  CHECK(Trim("   ").empty());
  CHECK(Trim("").empty());
  CHECK(Trim("x") == "x");
  const std::string text = " kept ";
  CHECK(Trim(text).data() == text.data() + 1);  // a view into the text, not a copy
}

TEST_CASE("ReplaceAll replaces every occurrence, left to right, without re-reading replacements") {
  std::string text = "a-b-c";
  ReplaceAll(text, "-", "; ");
  CHECK(text == "a; b; c");

  std::string grows = "aXa";
  ReplaceAll(grows, "a", "aa");  // terminates: what was put in is not searched again
  CHECK(grows == "aaXaa");

  std::string overlapping = "aaaa";
  ReplaceAll(overlapping, "aa", "b");
  CHECK(overlapping == "bb");

  std::string unchanged = "abc";
  ReplaceAll(unchanged, "", "x");
  CHECK(unchanged == "abc");
  ReplaceAll(unchanged, "zz", "x");
  CHECK(unchanged == "abc");
}

TEST_CASE("OneLine folds every run of whitespace into one space and trims the ends") {
  CHECK(OneLine("ERROR:  role \"x\"\n  does not exist\n") == "ERROR: role \"x\" does not exist");
  CHECK(OneLine("\r\n\t ") == "");
  CHECK(OneLine("one") == "one");
}

TEST_CASE("ExceptionText says what a std::exception says, and `unknown` otherwise") {
  CHECK(ExceptionText(std::make_exception_ptr(std::runtime_error("disk full")), "?") ==
        "disk full");
  CHECK(ExceptionText(std::make_exception_ptr(42), "unknown error") == "unknown error");
  CHECK(ExceptionText(std::exception_ptr(), "nothing thrown") == "nothing thrown");
}

}  // namespace
