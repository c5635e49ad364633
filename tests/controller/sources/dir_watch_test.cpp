// The directory source's inotify watcher (issue 3 item 2) on a real temporary folder. Waits are
// short: a change is seen within milliseconds, and "nothing changed" needs only a short timeout.
#include <doctest/doctest.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "controller/sources/dir_watch.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/temp_dir.hpp"

namespace tmaster::controller {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::Eventually;
using testing::TempDir;

// Long enough to never be reached when a change is expected; never reached in a passing run.
constexpr auto kChangeExpected = 5s;
// Short: used where nothing should happen.
constexpr auto kQuiet = 100ms;
constexpr auto kDebounce = 20ms;

std::unique_ptr<DirectoryWatcher> MustStart(const fs::path& root) {
  auto started = DirectoryWatcher::Start(root);
  REQUIRE_MESSAGE(started.ok(), (started.ok() ? "" : started.failure().message));
  return std::move(started).value();
}

void WriteFile(const fs::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Whether thread `tid` of this process sleeps in the kernel (state S in its /proc stat). A
// waiter thread that announced its id and then called WaitForChange, with nothing else that
// could block it, sleeps only in the watcher's own wait.
bool Sleeping(pid_t tid) {
  const std::string stat = ReadFile("/proc/self/task/" + std::to_string(tid) + "/stat");
  const std::size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'S';
}

// Runs WaitForChange(timeout, debounce) on another thread and returns once that thread is
// blocked in it, so what the test does next happens to a waiter, not before the wait.
std::future<bool> BlockedWaiter(DirectoryWatcher& watcher, std::chrono::milliseconds timeout,
                                std::chrono::milliseconds debounce) {
  std::promise<pid_t> started;
  std::future<pid_t> tid = started.get_future();
  auto waiter = std::async(std::launch::async,
                           [&watcher, timeout, debounce, started = std::move(started)]() mutable {
                             started.set_value(gettid());
                             return watcher.WaitForChange(timeout, debounce);
                           });
  const pid_t id = tid.get();
  REQUIRE(Eventually([id] { return Sleeping(id); }, 5s));
  return waiter;
}

}  // namespace

TEST_CASE("DirectoryWatcher: a file written under the root is a change, seen once") {
  TempDir dir;
  auto watcher = MustStart(dir.path());
  WriteFile(fs::path(dir.path()) / "acme.yaml", "kind: Workspace\n");
  CHECK(watcher->WaitForChange(kChangeExpected, kDebounce));
  // The events were drained: nothing is left to report.
  CHECK_FALSE(watcher->WaitForChange(kQuiet, kDebounce));
}

TEST_CASE("DirectoryWatcher: editing, renaming over and deleting a file are changes") {
  TempDir dir;
  const fs::path file = dir.Write("acme.yaml", "a: 1\n");
  auto watcher = MustStart(dir.path());

  WriteFile(file, "a: 2\n");
  CHECK(watcher->WaitForChange(kChangeExpected, kDebounce));
  const fs::path temp = dir.Write(".acme.yaml.tmp", "a: 3\n");  // an editor's atomic save
  fs::rename(temp, file);
  CHECK(watcher->WaitForChange(kChangeExpected, kDebounce));
  fs::remove(file);
  CHECK(watcher->WaitForChange(kChangeExpected, kDebounce));
  CHECK_FALSE(watcher->WaitForChange(kQuiet, kDebounce));
}

TEST_CASE("DirectoryWatcher: a folder created after Start is watched too") {
  TempDir dir;
  auto watcher = MustStart(dir.path());
  const std::size_t before = watcher->WatchedFolders();

  fs::create_directories(fs::path(dir.path()) / "team" / "a" / "b");
  CHECK(watcher->WaitForChange(kChangeExpected, kDebounce));  // the new folder itself
  CHECK(watcher->WatchedFolders() == before + 3);

  // Only a watch on team/a/b reports this: no folder above it changes.
  WriteFile(fs::path(dir.path()) / "team" / "a" / "b" / "acme.yaml", "a: 1\n");
  CHECK(watcher->WaitForChange(kChangeExpected, kDebounce));
  WriteFile(fs::path(dir.path()) / "team" / "x.yaml", "a: 1\n");
  CHECK(watcher->WaitForChange(kChangeExpected, kDebounce));
}

TEST_CASE("DirectoryWatcher: folders present at Start are watched; hidden ones are not") {
  TempDir dir;
  dir.Write("team/acme.yaml", "a: 1\n");
  dir.Write(".git/objects/ab/cdef", "blob");
  auto watcher = MustStart(dir.path());
  CHECK(watcher->WatchedFolders() == 2u);  // the root and team/

  WriteFile(fs::path(dir.path()) / ".git" / "objects" / "ab" / "cdef", "blob 2");
  CHECK_FALSE(watcher->WaitForChange(kQuiet, kDebounce));
  WriteFile(fs::path(dir.path()) / "team" / "acme.yaml", "a: 2\n");
  CHECK(watcher->WaitForChange(kChangeExpected, kDebounce));
}

TEST_CASE("DirectoryWatcher: reading the tree is not a change") {
  TempDir dir;
  const fs::path file = dir.Write("team/acme.yaml", "a: 1\n");
  auto watcher = MustStart(dir.path());
  CHECK(ReadFile(file) == "a: 1\n");
  for (const auto& entry : fs::recursive_directory_iterator(dir.path())) (void)entry;
  CHECK_FALSE(watcher->WaitForChange(kQuiet, kDebounce));
}

TEST_CASE("DirectoryWatcher: no change returns false once the timeout has passed") {
  TempDir dir;
  auto watcher = MustStart(dir.path());
  const auto start = Clock::now();
  CHECK_FALSE(watcher->WaitForChange(150ms, kDebounce));
  const auto elapsed = Clock::now() - start;
  CHECK(elapsed >= 150ms);
  CHECK(elapsed < 2s);
}

TEST_CASE("DirectoryWatcher: a burst of writes is one wake-up, after the burst") {
  TempDir dir;
  auto watcher = MustStart(dir.path());
  constexpr int kWrites = 5;
  constexpr auto kGap = 30ms;  // between writes: well under the debounce
  constexpr auto kBurstDebounce = 300ms;

  std::promise<Clock::time_point> last_write;
  std::thread writer([&] {
    for (int i = 0; i < kWrites; ++i) {
      if (i > 0) std::this_thread::sleep_for(kGap);
      WriteFile(fs::path(dir.path()) / "acme.yaml", "a: " + std::to_string(i) + "\n");
    }
    last_write.set_value(Clock::now());
  });
  const bool changed = watcher->WaitForChange(kChangeExpected, kBurstDebounce);
  const auto returned = Clock::now();
  writer.join();
  CHECK(changed);
  // It waited for the whole burst (plus the debounce) before waking up...
  CHECK(returned >= last_write.get_future().get() + kBurstDebounce);
  // ...so nothing of the burst is left for the next wait.
  CHECK_FALSE(watcher->WaitForChange(kQuiet, kDebounce));
}

TEST_CASE("DirectoryWatcher: changes without pause still wake the reader") {
  TempDir dir;
  auto watcher = MustStart(dir.path());
  std::atomic<bool> stop{false};
  const auto start = Clock::now();
  std::thread writer([&] {
    // Bounded, so that a watcher without the cap fails the check below instead of hanging.
    for (int i = 0; !stop && Clock::now() - start < 3s; ++i) {
      WriteFile(fs::path(dir.path()) / "acme.yaml", std::to_string(i));
      std::this_thread::sleep_for(5ms);
    }
  });
  const bool changed = watcher->WaitForChange(kChangeExpected, 50ms);
  const auto elapsed = Clock::now() - start;
  stop = true;
  writer.join();
  CHECK(changed);
  CHECK(elapsed < 2s);  // capped at 10 x debounce (500 ms) after the first change
}

TEST_CASE("DirectoryWatcher: Interrupt wakes a waiter in another thread promptly") {
  TempDir dir;
  auto watcher = MustStart(dir.path());
  const auto start = Clock::now();
  auto waiter = BlockedWaiter(*watcher, 30s, 1s);
  watcher->Interrupt();
  REQUIRE(waiter.wait_for(2s) == std::future_status::ready);
  CHECK_FALSE(waiter.get());
  CHECK(Clock::now() - start < 2s);
}

TEST_CASE("DirectoryWatcher: an Interrupt before the wait ends the next wait at once, once") {
  TempDir dir;
  auto watcher = MustStart(dir.path());
  watcher->Interrupt();
  watcher->Interrupt();
  const auto start = Clock::now();
  CHECK_FALSE(watcher->WaitForChange(30s, kDebounce));
  CHECK(Clock::now() - start < 1s);
  CHECK_FALSE(watcher->WaitForChange(kQuiet, kDebounce));  // consumed: this one times out
  CHECK(Clock::now() - start >= kQuiet);
}

TEST_CASE("DirectoryWatcher: an Interrupt during the debounce returns the change seen") {
  TempDir dir;
  auto watcher = MustStart(dir.path());
  WriteFile(fs::path(dir.path()) / "acme.yaml", "a: 1\n");
  // The change is queued before the wait starts, so the waiter blocks in its 10 s debounce.
  auto waiter = BlockedWaiter(*watcher, 30s, 10s);
  watcher->Interrupt();
  REQUIRE(waiter.wait_for(2s) == std::future_status::ready);
  CHECK(waiter.get());
}

TEST_CASE("DirectoryWatcher: destroying the watcher wakes its waiter") {
  TempDir dir;
  auto watcher = MustStart(dir.path());
  auto waiter = BlockedWaiter(*watcher, 30s, 1s);
  const auto start = Clock::now();
  watcher.reset();
  CHECK(Clock::now() - start < 2s);
  REQUIRE(waiter.wait_for(2s) == std::future_status::ready);
  CHECK_FALSE(waiter.get());
}

TEST_CASE("DirectoryWatcher: a deleted root is a change; it is watched again when it returns") {
  TempDir dir;
  const fs::path root = fs::path(dir.path()) / "fleet";
  fs::create_directories(root / "team");
  auto watcher = MustStart(root);

  fs::remove_all(root);
  CHECK(watcher->WaitForChange(kChangeExpected, kDebounce));
  CHECK_FALSE(watcher->WaitForChange(kQuiet, kDebounce));  // still missing: nothing new

  fs::create_directories(root);
  CHECK(watcher->WaitForChange(kChangeExpected, kDebounce));
  WriteFile(root / "acme.yaml", "a: 1\n");
  CHECK(watcher->WaitForChange(kChangeExpected, kDebounce));
}

TEST_CASE("DirectoryWatcher: a root replaced by a rename is watched in its new form") {
  TempDir dir;
  const fs::path root = fs::path(dir.path()) / "fleet";
  const fs::path next = fs::path(dir.path()) / "fleet.next";
  fs::create_directories(root);
  fs::create_directories(next / "team");
  auto watcher = MustStart(root);

  fs::rename(root, fs::path(dir.path()) / "fleet.old");
  fs::rename(next, root);
  CHECK(watcher->WaitForChange(kChangeExpected, kDebounce));
  // The new tree is watched (down to its subfolder); the old one, now elsewhere, is not.
  WriteFile(root / "team" / "acme.yaml", "a: 1\n");
  CHECK(watcher->WaitForChange(kChangeExpected, kDebounce));
  WriteFile(fs::path(dir.path()) / "fleet.old" / "x.yaml", "a: 1\n");
  CHECK_FALSE(watcher->WaitForChange(kQuiet, kDebounce));
}

TEST_CASE("DirectoryWatcher: a missing root fails Start, naming the path") {
  TempDir dir;
  const fs::path missing = fs::path(dir.path()) / "nope";
  auto started = DirectoryWatcher::Start(missing);
  REQUIRE_FALSE(started.ok());
  CHECK(started.failure().kind == FailureKind::kStalled);
  CHECK(started.failure().reason == "WatchFailed");
  CHECK(started.failure().message.find(missing.string()) != std::string::npos);
}

}  // namespace tmaster::controller
