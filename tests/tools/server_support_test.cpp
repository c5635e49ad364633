// The pure helpers the test servers share (tests/support/server_support.hpp): the log tail their
// failure messages carry and the conninfo quoting of their DSNs.
#include "tests/support/server_support.hpp"

#include <doctest/doctest.h>
#include <unistd.h>

#include <string>
#include <vector>

using tmaster::testing::Alive;
using tmaster::testing::Argv;
using tmaster::testing::ConninfoValue;
using tmaster::testing::Tail;

TEST_CASE("server support: Tail keeps the last lines, all of a shorter or empty text") {
  CHECK(Tail("", 20).empty());
  CHECK(Tail("one\ntwo\n", 20) == "one\ntwo\n");
  CHECK(Tail("one\ntwo\nthree\n", 1) == "three\n");
  CHECK(Tail("one\ntwo\nthree\n", 2) == "two\nthree\n");
  CHECK(Tail("\nlast", 5) == "\nlast");
}

TEST_CASE("server support: ConninfoValue quotes spaces, quotes and backslashes") {
  CHECK(ConninfoValue("plain") == "'plain'");
  CHECK(ConninfoValue("a b") == "'a b'");
  CHECK(ConninfoValue(R"(it's a\b)") == R"('it\'s a\\b')");
  CHECK(ConninfoValue("") == "''");
}

TEST_CASE("server support: Argv points into its strings and ends with a null pointer") {
  std::vector<std::string> args = {"/bin/rm", "-rf", "/tmp/x"};
  const std::vector<char*> argv = Argv(args);
  REQUIRE(argv.size() == 4);
  CHECK(argv[0] == args[0].data());
  CHECK(std::string(argv[2]) == "/tmp/x");
  CHECK(argv[3] == nullptr);
}

TEST_CASE("server support: Alive sees this process, never a pid below 1") {
  CHECK(Alive(getpid()));
  CHECK_FALSE(Alive(0));
  CHECK_FALSE(Alive(-1));
}
