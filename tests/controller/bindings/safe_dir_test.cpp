// SafeDir (controller/bindings/safe_dir.hpp): modes, refusals, whole-version replacement.

#include "controller/bindings/safe_dir.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "tests/support/temp_dir.hpp"

namespace fs = std::filesystem;
using tmaster::bindings::Access;
using tmaster::bindings::AccessFor;
using tmaster::bindings::DirStamp;
using tmaster::bindings::FileEntry;
using tmaster::bindings::SafeDir;
using tmaster::testing::TempDir;

namespace {

unsigned ModeOf(const fs::path& path) {
  struct stat st {};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

SafeDir OpenOk(const fs::path& path, Access access = {}) {
  auto dir = SafeDir::Open(path, access, true);
  const std::string why = dir ? std::string() : dir.failure().message;
  REQUIRE_MESSAGE(dir.ok(), why);
  return std::move(dir).value();
}

const std::vector<FileEntry> kV1 = {{"host", "alpha.internal"}, {"password", "first-secret"}};
const std::vector<FileEntry> kV2 = {{"host", "beta.internal"}, {"password", "second-secret"}};

}  // namespace

TEST_CASE("SafeDir creates its folder and files private without a group, 0750/0640 with one") {
  TempDir tmp;
  SafeDir plain = OpenOk(tmp.path() / "a" / "bindings");
  CHECK(ModeOf(tmp.path() / "a" / "bindings") == 0700);
  auto written = plain.WriteFile("userlist.txt", "x");
  REQUIRE(written.ok());
  CHECK(*written);
  CHECK(ModeOf(tmp.path() / "a" / "bindings" / "userlist.txt") == 0600);

  auto access = AccessFor("daemon");
  REQUIRE(access.ok());
  SafeDir grouped = OpenOk(tmp.path() / "g", *access);
  CHECK(ModeOf(tmp.path() / "g") == 0750);
  auto sub = grouped.Sub("erp", true);
  REQUIRE(sub.ok());
  auto replaced = sub->ReplaceDir("acme", kV1, nullptr);
  REQUIRE(replaced.ok());
  const fs::path file = tmp.path() / "g" / "erp" / "acme" / "host";
  CHECK(ModeOf(file) == 0640);
  CHECK(ModeOf(file.parent_path()) == 0750);
  struct stat st {};
  REQUIRE(::stat(file.c_str(), &st) == 0);
  CHECK(st.st_gid == *access->group);
  CHECK_FALSE(AccessFor("no-such-group-here").ok());
}

TEST_CASE("SafeDir tightens a world-readable folder it owns and refuses one it does not") {
  TempDir tmp;
  const fs::path loose = tmp.Mkdir("loose");
  fs::permissions(loose, fs::perms(0755));
  OpenOk(loose);
  CHECK(ModeOf(loose) == 0700);

  const fs::path shared = tmp.Mkdir("shared");
  fs::permissions(shared, fs::perms(0777));
  auto refused = SafeDir::Open(shared, {}, true);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.failure().message.find("writable by group or others") != std::string::npos);

  if (::geteuid() == 0) {
    const fs::path foreign = tmp.Mkdir("foreign");
    REQUIRE(::chown(foreign.c_str(), 65534, 65534) == 0);
    auto not_ours = SafeDir::Open(foreign, {}, true);
    REQUIRE_FALSE(not_ours.ok());
    CHECK(not_ours.failure().message.find("owned by uid 65534") != std::string::npos);
  }
  const fs::path link = tmp.path() / "link";
  fs::create_directory_symlink(loose, link);
  auto via_link = SafeDir::Open(link, {}, true);
  REQUIRE_FALSE(via_link.ok());
  CHECK(via_link.failure().message.find("symbolic link") != std::string::npos);
}

TEST_CASE("SafeDir writes a file only when it changed and never through a link") {
  TempDir tmp;
  SafeDir dir = OpenOk(tmp.path() / "pooler");
  CHECK(*dir.WriteFile("databases.ini", "[databases]\n"));
  CHECK_FALSE(*dir.WriteFile("databases.ini", "[databases]\n"));
  CHECK(*dir.WriteFile("databases.ini", "[databases]\na = host=x\n"));
  CHECK(ReadAll(tmp.path() / "pooler" / "databases.ini") == "[databases]\na = host=x\n");

  const fs::path victim = tmp.Write("victim.txt", "untouched");
  fs::create_symlink(victim, tmp.path() / "pooler" / "userlist.txt");
  auto refused = dir.WriteFile("userlist.txt", "\"u\" \"SCRAM\"\n");
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.failure().message.find("symbolic link") != std::string::npos);
  CHECK(ReadAll(victim) == "untouched");
  CHECK(fs::is_symlink(tmp.path() / "pooler" / "userlist.txt"));
}

TEST_CASE("SafeDir writes nothing for an unchanged file larger than a binding's (a pooler's)") {
  TempDir tmp;
  SafeDir dir = OpenOk(tmp.path() / "pooler");
  const std::string big(2 * 1024 * 1024 + 17, 'u');  // userlist.txt of ~13,000 tenants
  CHECK(*dir.WriteFile("userlist.txt", big));
  CHECK_FALSE(*dir.WriteFile("userlist.txt", big));
  std::string other = big;
  other.back() = 'v';
  CHECK(*dir.WriteFile("userlist.txt", other));
  CHECK(*dir.WriteFile("userlist.txt", other + "w"));
}

TEST_CASE("SafeDir::ReplaceDir writes a folder whole, and nothing when it is unchanged") {
  TempDir tmp;
  SafeDir root = OpenOk(tmp.path() / "b");
  auto first = root.ReplaceDir("acme", kV1, nullptr);
  REQUIRE(first.ok());
  CHECK(first->written);
  CHECK(ReadAll(tmp.path() / "b" / "acme" / "password") == "first-secret");

  auto again = root.ReplaceDir("acme", kV1, nullptr);  // read and compared
  REQUIRE(again.ok());
  CHECK_FALSE(again->written);
  CHECK(again->stamp == first->stamp);
  const DirStamp stamp = again->stamp;
  auto vouched = root.ReplaceDir("acme", kV1, &stamp);  // the stamp vouches: not even read
  REQUIRE(vouched.ok());
  CHECK_FALSE(vouched->written);

  // A file planted inside changes the folder's stamp: the next write puts the exact set back.
  tmp.Write("b/acme/extra", "planted");
  auto repaired = root.ReplaceDir("acme", kV1, &stamp);
  REQUIRE(repaired.ok());
  CHECK(repaired->written);
  CHECK_FALSE(fs::exists(tmp.path() / "b" / "acme" / "extra"));

  auto changed = root.ReplaceDir("acme", kV2, nullptr);  // new content: nothing to vouch for
  REQUIRE(changed.ok());
  CHECK(changed->written);
  CHECK(ReadAll(tmp.path() / "b" / "acme" / "host") == "beta.internal");
  int entries = 0;
  for ([[maybe_unused]] const auto& entry : fs::directory_iterator(tmp.path() / "b")) ++entries;
  CHECK(entries == 1);  // the old version and the temporary are gone

  auto removed = root.RemoveDir("acme");
  REQUIRE(removed.ok());
  CHECK(*removed);
  CHECK_FALSE(fs::exists(tmp.path() / "b" / "acme"));
  CHECK_FALSE(*root.RemoveDir("acme"));
}

TEST_CASE("SafeDir refuses a symbolic link planted at a folder's name and writes nothing through it") {
  TempDir tmp;
  SafeDir root = OpenOk(tmp.path() / "b");
  const fs::path victim = tmp.Mkdir("victim");
  tmp.Write("victim/password", "theirs");
  fs::create_directory_symlink(victim, tmp.path() / "b" / "acme");

  auto refused = root.ReplaceDir("acme", kV1, nullptr);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.failure().reason == "BindingsFailed");
  CHECK(refused.failure().message.find("symbolic link") != std::string::npos);
  CHECK(ReadAll(victim / "password") == "theirs");
  CHECK_FALSE(fs::exists(victim / "host"));
  CHECK_FALSE(root.RemoveDir("acme").ok());
  CHECK(fs::exists(victim / "password"));

  auto sub = root.Sub("acme", true);
  REQUIRE_FALSE(sub.ok());
  CHECK(sub.failure().message.find("symbolic link") != std::string::npos);
  CHECK_FALSE(root.Sub("..", true).ok());
  CHECK_FALSE(root.ReplaceDir(".hidden", kV1, nullptr).ok());
}

TEST_CASE("SafeDir::ReplaceDir: a reader through the folder's descriptor never mixes versions") {
  TempDir tmp;
  SafeDir root = OpenOk(tmp.path() / "b");
  REQUIRE(root.ReplaceDir("acme", kV1, nullptr).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0};
  std::atomic<int> mixed{0};
  std::atomic<int> partial{0};
  const std::string folder = (tmp.path() / "b" / "acme").string();
  std::thread reader([&] {
    auto read = [](int dir, const char* name, std::string& out) {
      const int fd = ::openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) return false;
      char buffer[64];
      const ssize_t n = ::read(fd, buffer, sizeof buffer);
      ::close(fd);
      if (n < 0) return false;
      out.assign(buffer, static_cast<std::size_t>(n));
      return true;
    };
    while (!stop) {
      const int dir = ::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (dir < 0) continue;  // between two versions never happens with RENAME_EXCHANGE
      std::string host;
      std::string password;
      const bool ok = read(dir, "host", host) && read(dir, "password", password);
      ::close(dir);
      if (!ok) continue;  // this version was just removed: open again
      ++reads;
      const bool v1 = host == "alpha.internal" && password == "first-secret";
      const bool v2 = host == "beta.internal" && password == "second-secret";
      if (!v1 && !v2) {
        const bool known = (host == "alpha.internal" || host == "beta.internal") &&
                           (password == "first-secret" || password == "second-secret");
        if (known) {
          ++mixed;
        } else {
          ++partial;
        }
      }
    }
  });
  for (int i = 0; i < 400; ++i) {
    REQUIRE(root.ReplaceDir("acme", i % 2 == 0 ? kV2 : kV1, nullptr).ok());
  }
  stop = true;
  reader.join();
  CHECK(reads > 0);
  CHECK(mixed == 0);
  CHECK(partial == 0);
}

TEST_CASE("SafeDir::RemoveTemporaries removes only what an interrupted write left") {
  TempDir tmp;
  SafeDir root = OpenOk(tmp.path() / "b");
  tmp.Mkdir("b/.acme.0123456789ab");
  tmp.Write("b/.acme.0123456789ab/password", "x");
  tmp.Write("b/.userlist.txt.a1b2c3d4e5f6", "x");
  tmp.Write("b/.keep", "admin's");
  root.RemoveTemporaries();
  CHECK_FALSE(fs::exists(tmp.path() / "b" / ".acme.0123456789ab"));
  CHECK_FALSE(fs::exists(tmp.path() / "b" / ".userlist.txt.a1b2c3d4e5f6"));
  CHECK(fs::exists(tmp.path() / "b" / ".keep"));
}
