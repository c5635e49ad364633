#include "common/confined.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "tests/support/temp_dir.hpp"

namespace fs = std::filesystem;
namespace confined = tmaster::confined;
using tmaster::testing::TempDir;

namespace {

constexpr const char* kSecret = "s3cr3t-outside-the-root";

// root/ with a file, a folder and links; outside/ next to it holds the secret.
struct Tree {
  TempDir dir;
  fs::path root = dir.path() / "root";
  Tree() {
    dir.Write("root/a/file.txt", "hello");
    dir.Write("root/b/other.txt", "other");
    dir.Write("outside/secret.txt", kSecret);
    fs::create_symlink("../b/other.txt", root / "a/inside_link");
    fs::create_symlink(dir.path() / "outside/secret.txt", root / "a/absolute_link");
    fs::create_symlink("../../outside/secret.txt", root / "a/relative_escape");
    fs::create_symlink("../..", root / "a/up_dir");
    fs::create_symlink("loop2", root / "loop1");
    fs::create_symlink("loop1", root / "loop2");
  }
};

// Opens through detail::OpenBeneath, both ways, and reads at most 64 bytes.
std::string ReadVia(const fs::path& root, const fs::path& relative, bool openat2) {
  const int root_fd = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  REQUIRE(root_fd >= 0);
  tmaster::Outcome<int> fd = confined::detail::OpenBeneath(root_fd, relative, O_RDONLY, openat2);
  ::close(root_fd);
  if (!fd) return "error " + fd.failure().reason + ": " + fd.failure().message;
  char buffer[64] = {};
  const ssize_t n = ::read(*fd, buffer, sizeof buffer);
  ::close(*fd);
  return n < 0 ? "read error" : std::string(buffer, static_cast<std::size_t>(n));
}

}  // namespace

TEST_CASE("confined: opens beneath the root and refuses every way out, with openat2 and without") {
  Tree tree;
  for (const bool openat2 : {true, false}) {
    CAPTURE(openat2);
    CHECK(ReadVia(tree.root, "a/file.txt", openat2) == "hello");
    CHECK(ReadVia(tree.root, "a/../b/other.txt", openat2) == "other");
    CHECK(ReadVia(tree.root, "a/inside_link", openat2) == "other");  // stays inside: followed
    for (const char* escape : {"a/absolute_link", "a/relative_escape", "a/up_dir/outside/secret.txt",
                               "../outside/secret.txt", "a/../../outside/secret.txt"}) {
      CAPTURE(escape);
      const std::string got = ReadVia(tree.root, escape, openat2);
      CHECK(got.rfind("error PathEscapesRoot: ", 0) == 0);
      CHECK(got.find(kSecret) == std::string::npos);
    }
    CHECK(ReadVia(tree.root, (tree.dir.path() / "outside/secret.txt"), openat2) ==
          "error PathEscapesRoot: " + (tree.dir.path() / "outside/secret.txt").string() +
              " leaves the source folder (an absolute path, a '..' or a symbolic link pointing "
              "outside it)");
    CHECK(ReadVia(tree.root, "a/missing.txt", openat2) ==
          "error PathNotFound: a/missing.txt does not exist");
    CHECK(ReadVia(tree.root, "loop1", openat2).rfind("error FileUnreadable: loop1 has too many", 0) ==
          0);
  }
}

TEST_CASE("confined: ReadFile checks the size before reading") {
  Tree tree;
  CHECK(*confined::ReadFile(tree.root, "a/file.txt", 5) == "hello");
  const auto large = confined::ReadFile(tree.root, "a/file.txt", 4);
  REQUIRE_FALSE(large);
  CHECK(large.failure().reason == confined::kTooLarge);
  CHECK(large.failure().message == "a/file.txt is larger than the limit of 4 bytes; it was not read");
  CHECK(large.failure().message.find("hello") == std::string::npos);

  const auto escaped = confined::ReadFile(tree.root, "a/relative_escape", 1024);
  REQUIRE_FALSE(escaped);
  CHECK(escaped.failure().reason == confined::kEscapes);
  CHECK(escaped.failure().message.find(kSecret) == std::string::npos);

  const auto directory = confined::ReadFile(tree.root, "a", 1024);
  REQUIRE_FALSE(directory);
  CHECK(directory.failure().reason == confined::kWrongType);

  // A FIFO is refused without blocking on its open and without being read.
  REQUIRE(::mkfifo((tree.root / "fifo").c_str(), 0600) == 0);
  const auto fifo = confined::ReadFile(tree.root, "fifo", 1024);
  REQUIRE_FALSE(fifo);
  CHECK(fifo.failure().message == "fifo is not a regular file");
}

TEST_CASE("confined: Probe and ListDirectory") {
  Tree tree;
  CHECK(*confined::Probe(tree.root, "a") == confined::Type::kDirectory);
  CHECK(*confined::Probe(tree.root, "") == confined::Type::kDirectory);
  CHECK(*confined::Probe(tree.root, "a/inside_link") == confined::Type::kFile);
  CHECK(confined::Probe(tree.root, "a/up_dir").failure().reason == confined::kEscapes);
  CHECK(confined::Probe(tree.root, "nope").failure().reason == confined::kNotFound);

  const auto entries = confined::ListDirectory(tree.root, "a");
  REQUIRE(entries);
  std::string listed;
  for (const confined::Entry& entry : *entries) {
    listed += entry.name + (entry.type == confined::Type::kSymlink ? "@ " : " ");
  }
  CHECK(listed == "absolute_link@ file.txt inside_link@ relative_escape@ up_dir@ ");
  CHECK(confined::ListDirectory(tree.root, "a/up_dir").failure().reason == confined::kEscapes);
  CHECK(confined::ListDirectory(tree.root, "../root").failure().reason == confined::kEscapes);
}

TEST_CASE("confined: Beneath is lexical") {
  CHECK(confined::Beneath("/srv/fleet", "/srv/fleet/a/b") == fs::path("a/b"));
  CHECK(confined::Beneath("/srv/fleet", "/srv/fleet/a/../b/") == fs::path("b"));
  CHECK(confined::Beneath("/srv/fleet/", "/srv/fleet") == fs::path("."));
  CHECK(confined::Beneath("/srv/fleet", "/srv/fleet/../fleet/x") == fs::path("x"));
  CHECK_FALSE(confined::Beneath("/srv/fleet", "/srv/fleet/../outside").has_value());
  CHECK_FALSE(confined::Beneath("/srv/fleet", "/srv/fleetX/a").has_value());
  CHECK_FALSE(confined::Beneath("/srv/fleet", "/etc/passwd").has_value());
}
