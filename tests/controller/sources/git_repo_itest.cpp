// The git source's working copy (issue 3 item 2) against a real local bare repository, plus
// fake `git` programs (small shell scripts; only tests use a shell) that record what GitRepo
// passes to git, or hang, or fail.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/crypto.hpp"
#include "common/secret.hpp"
#include "controller/sources/git_repo.hpp"
#include "tests/support/eventually.hpp"
#include "tests/support/process.hpp"
#include "tests/support/temp_dir.hpp"

namespace tmaster::controller {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using testing::Eventually;
using testing::ProcessResult;
using testing::RunProcess;
using testing::TempDir;

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

std::string GitProgram() {
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
  std::size_t begin = 0;
  while (begin <= dirs.size()) {
    std::size_t end = dirs.find(':', begin);
    if (end == std::string::npos) end = dirs.size();
    const fs::path candidate = fs::path(dirs.substr(begin, end - begin)) / "git";
    if (access(candidate.c_str(), X_OK) == 0) return candidate.string();
    begin = end + 1;
  }
  return "/usr/bin/git";
}

// Runs git for the test's own setup, ignoring the user's and the system's git config.
std::string RunGit(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {GitProgram()};
  for (const char* setting : {"user.name=Test", "user.email=test@example.com"}) {
    argv.insert(argv.end(), {"-c", setting});
  }
  argv.insert(argv.end(), args.begin(), args.end());
  const ProcessResult result =
      RunProcess(argv, {{"GIT_CONFIG_GLOBAL", "/dev/null"}, {"GIT_CONFIG_NOSYSTEM", "1"}});
  REQUIRE_MESSAGE(result.exit_code == 0, ("git failed: " + result.err));
  return result.out;
}

std::string Trimmed(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// An upstream bare repository with branch main, and a work clone to commit and push from.
struct Upstream {
  TempDir dir;
  fs::path bare = fs::path(dir.path()) / "fleet.git";
  fs::path work = fs::path(dir.path()) / "work";
  std::string url = "file://" + bare.string();

  Upstream() {
    RunGit({"init", "--quiet", "--bare", "--initial-branch=main", bare.string()});
    RunGit({"init", "--quiet", "--initial-branch=main", work.string()});
  }

  // Writes `files` (an empty text deletes the file), commits, pushes; returns the commit.
  std::string Commit(const std::vector<std::pair<std::string, std::string>>& files,
                     const std::string& branch = "main") {
    for (const auto& [name, text] : files) {
      if (text.empty()) {
        RunGit({"-C", work.string(), "rm", "--quiet", name});
        continue;
      }
      fs::create_directories((work / name).parent_path());
      std::ofstream(work / name, std::ios::binary) << text;
      RunGit({"-C", work.string(), "add", name});
    }
    RunGit({"-C", work.string(), "commit", "--quiet", "-m", "change"});
    RunGit({"-C", work.string(), "push", "--quiet", bare.string(), "HEAD:refs/heads/" + branch});
    return Trimmed(RunGit({"-C", work.string(), "rev-parse", "HEAD"}));
  }
};

GitRepoOptions Options(const std::string& url, const fs::path& checkout) {
  GitRepoOptions options;
  options.url = url;
  options.checkout = checkout;
  options.timeout = 30s;
  return options;
}

std::string MustSync(GitRepo& repo) {
  Outcome<std::string> synced = repo.Sync();
  REQUIRE_MESSAGE(synced.ok(), (synced.ok() ? "" : synced.failure().message));
  return *synced;
}

// Clone temp folders GitRepo left beside the checkout (there must be none).
int Leftovers(const fs::path& parent) {
  int count = 0;
  for (const auto& entry : fs::directory_iterator(parent)) {
    if (Contains(entry.path().filename().string(), ".clone-")) ++count;
  }
  return count;
}

// A TCP port on 127.0.0.1 that nothing listens on (bound, then released).
int ClosedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  socklen_t size = sizeof address;
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&address), &size) == 0);
  close(fd);
  return ntohs(address.sin_port);
}

// A fake `git`: a shell script, executable.
std::string Script(const TempDir& dir, const std::string& name, const std::string& body) {
  const std::string path = dir.Write(name, "#!/bin/sh\n" + body);
  chmod(path.c_str(), 0755);
  return path;
}

// Whether process `pid` is gone (or a zombie waiting for its parent: dead all the same).
bool Gone(const std::string& pid) {
  const std::string stat = ReadFile("/proc/" + pid + "/stat");
  if (stat.empty()) return true;
  const std::size_t paren = stat.rfind(')');
  return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

bool GoneWithin(const std::string& pid, std::chrono::milliseconds limit) {
  return Eventually([&] { return Gone(pid); }, limit);
}

}  // namespace

TEST_CASE("GitRepo: the first Sync clones the branch and returns its commit") {
  Upstream upstream;
  const std::string commit = upstream.Commit({{"fleet/acme.yaml", "name: acme\n"}});
  TempDir local;
  GitRepo repo(Options(upstream.url, fs::path(local.path()) / "checkout"));

  CHECK(MustSync(repo) == commit);
  CHECK(ReadFile(repo.checkout() / "fleet" / "acme.yaml") == "name: acme\n");
  // Shallow: one commit of history only.
  upstream.Commit({{"fleet/acme.yaml", "name: acme2\n"}});
  TempDir other;
  GitRepo second(Options(upstream.url, fs::path(other.path()) / "checkout"));
  MustSync(second);
  CHECK(Trimmed(RunGit({"-C", second.checkout().string(), "rev-list", "--count", "HEAD"})) == "1");
  CHECK(Leftovers(local.path()) == 0);
}

TEST_CASE("GitRepo: a symbolic link in the repository is checked out as a small regular file") {
  Upstream upstream;
  TempDir outside;
  const fs::path secret = outside.Write("master-key", "not-to-be-read\n");
  upstream.Commit({{"fleet/acme.yaml", "v: 1\n"}});
  // A link committed in the repository, pointing out of it (on the clone and on a fetch).
  const auto commit_link = [&](const std::string& name) {
    fs::create_directories((upstream.work / name).parent_path());
    fs::create_symlink(secret, upstream.work / name);
    RunGit({"-C", upstream.work.string(), "add", name});
    RunGit({"-C", upstream.work.string(), "commit", "--quiet", "-m", "link"});
    RunGit({"-C", upstream.work.string(), "push", "--quiet", upstream.bare.string(),
            "HEAD:refs/heads/main"});
  };
  commit_link("fleet/migrations/0001_init.sql");
  TempDir local;
  GitRepo repo(Options(upstream.url, fs::path(local.path()) / "checkout"));
  MustSync(repo);
  const fs::path cloned = repo.checkout() / "fleet" / "migrations" / "0001_init.sql";
  CHECK_FALSE(fs::is_symlink(fs::symlink_status(cloned)));
  CHECK(fs::is_regular_file(fs::symlink_status(cloned)));
  CHECK(ReadFile(cloned) == secret.string());  // the link's text, not the target's

  commit_link("fleet/stack.yaml");  // arrives by fetch and reset
  MustSync(repo);
  const fs::path fetched = repo.checkout() / "fleet" / "stack.yaml";
  CHECK_FALSE(fs::is_symlink(fs::symlink_status(fetched)));
  CHECK(ReadFile(fetched) == secret.string());
}

TEST_CASE("GitRepo: later Syncs follow the branch: edits, additions and deletions") {
  Upstream upstream;
  upstream.Commit({{"fleet/acme.yaml", "v: 1\n"}, {"fleet/old.yaml", "old\n"}});
  TempDir local;
  GitRepo repo(Options(upstream.url, fs::path(local.path()) / "checkout"));
  MustSync(repo);

  const std::string next = upstream.Commit(
      {{"fleet/acme.yaml", "v: 2\n"}, {"fleet/old.yaml", ""}, {"fleet/new/beta.yaml", "b\n"}});
  CHECK(MustSync(repo) == next);
  CHECK(ReadFile(repo.checkout() / "fleet" / "acme.yaml") == "v: 2\n");
  CHECK_FALSE(fs::exists(repo.checkout() / "fleet" / "old.yaml"));
  CHECK(ReadFile(repo.checkout() / "fleet" / "new" / "beta.yaml") == "b\n");

  // Nothing new upstream: the same commit again.
  CHECK(MustSync(repo) == next);
}

TEST_CASE("GitRepo: Sync discards local edits and untracked files in the checkout") {
  Upstream upstream;
  const std::string commit = upstream.Commit({{"acme.yaml", "v: 1\n"}});
  TempDir local;
  GitRepo repo(Options(upstream.url, fs::path(local.path()) / "checkout"));
  MustSync(repo);
  std::ofstream(repo.checkout() / "acme.yaml") << "edited by hand\n";
  fs::create_directories(repo.checkout() / "stray");
  std::ofstream(repo.checkout() / "stray" / "x.yaml") << "x\n";

  CHECK(MustSync(repo) == commit);
  CHECK(ReadFile(repo.checkout() / "acme.yaml") == "v: 1\n");
  CHECK_FALSE(fs::exists(repo.checkout() / "stray"));
}

TEST_CASE("GitRepo: a damaged checkout is cloned again, never touching a repository around it") {
  Upstream upstream;
  const std::string commit = upstream.Commit({{"acme.yaml", "v: 1\n"}});
  // The checkout lives inside another repository's work tree, which has an uncommitted edit.
  // Were git to search upwards from a damaged checkout, fetch + reset --hard would hit it.
  Upstream outer;
  const std::string outer_head = outer.Commit({{"tracked.txt", "v1\n"}});
  std::ofstream(outer.work / "tracked.txt") << "edited\n";
  GitRepo repo(Options(upstream.url, outer.work / "nested" / "checkout"));
  MustSync(repo);

  SUBCASE("an empty .git folder") {
    fs::remove_all(repo.checkout() / ".git");
    fs::create_directories(repo.checkout() / ".git");
  }
  SUBCASE("a garbage HEAD") {
    std::ofstream(repo.checkout() / ".git" / "HEAD") << "garbage\n";
  }
  SUBCASE("no .git at all") {
    fs::remove_all(repo.checkout() / ".git");
  }

  CHECK(MustSync(repo) == commit);
  CHECK(ReadFile(repo.checkout() / "acme.yaml") == "v: 1\n");
  CHECK(ReadFile(outer.work / "tracked.txt") == "edited\n");
  CHECK(Trimmed(RunGit({"-C", outer.work.string(), "rev-parse", "HEAD"})) == outer_head);
  CHECK(Leftovers(outer.work / "nested") == 0);
}

TEST_CASE("GitRepo: a wrong URL is a transient FetchFailed naming the step") {
  Upstream upstream;
  upstream.Commit({{"acme.yaml", "v: 1\n"}});
  TempDir local;
  const fs::path checkout = fs::path(local.path()) / "checkout";

  SUBCASE("on the first clone: no checkout is left behind") {
    GitRepo repo(Options("file:///nonexistent/fleet.git", checkout));
    Outcome<std::string> synced = repo.Sync();
    REQUIRE_FALSE(synced.ok());
    CHECK(synced.failure().kind == FailureKind::kTransient);
    CHECK(synced.failure().reason == "FetchFailed");
    CHECK(Contains(synced.failure().message,
                   "git clone of file:///nonexistent/fleet.git (branch main): "));
    CHECK(Contains(synced.failure().message, "does not appear to be a git repository"));
    CHECK_FALSE(fs::exists(checkout));
    CHECK(Leftovers(local.path()) == 0);
  }
  SUBCASE("on a fetch: the existing checkout stays as it was") {
    GitRepo good(Options(upstream.url, checkout));
    MustSync(good);
    GitRepo repo(Options("file:///nonexistent/fleet.git", checkout));
    Outcome<std::string> synced = repo.Sync();
    REQUIRE_FALSE(synced.ok());
    CHECK(synced.failure().reason == "FetchFailed");
    CHECK(Contains(synced.failure().message,
                   "git fetch of file:///nonexistent/fleet.git (branch main): "));
    CHECK(ReadFile(checkout / "acme.yaml") == "v: 1\n");
  }
}

TEST_CASE("GitRepo: a branch missing on the remote is a transient FetchFailed saying so") {
  Upstream upstream;
  upstream.Commit({{"acme.yaml", "v: 1\n"}});
  TempDir local;
  const fs::path checkout = fs::path(local.path()) / "checkout";
  GitRepoOptions options = Options(upstream.url, checkout);
  options.branch = "nope";

  SUBCASE("on the first clone") {
    GitRepo repo(options);
    Outcome<std::string> synced = repo.Sync();
    REQUIRE_FALSE(synced.ok());
    CHECK(synced.failure().kind == FailureKind::kTransient);
    CHECK(synced.failure().reason == "FetchFailed");
    CHECK(synced.failure().message == "git clone of " + upstream.url +
                                          " (branch nope): branch nope does not exist on the "
                                          "remote");
    CHECK_FALSE(fs::exists(checkout));
  }
  SUBCASE("on a fetch (the branch was deleted, or the config changed)") {
    GitRepo good(Options(upstream.url, checkout));
    MustSync(good);
    GitRepo repo(options);
    Outcome<std::string> synced = repo.Sync();
    REQUIRE_FALSE(synced.ok());
    CHECK(synced.failure().reason == "FetchFailed");
    CHECK(synced.failure().message == "git fetch of " + upstream.url +
                                          " (branch nope): branch nope does not exist on the "
                                          "remote");
  }
}

TEST_CASE("GitRepo: a changed URL is used by the next fetch") {
  Upstream first;
  first.Commit({{"acme.yaml", "first\n"}});
  Upstream second;
  const std::string commit = second.Commit({{"acme.yaml", "second\n"}});
  TempDir local;
  const fs::path checkout = fs::path(local.path()) / "checkout";
  GitRepo before(Options(first.url, checkout));
  MustSync(before);
  GitRepo after(Options(second.url, checkout));
  CHECK(MustSync(after) == commit);
  CHECK(ReadFile(checkout / "acme.yaml") == "second\n");
}

TEST_CASE("GitRepo: credentials never reach a message, with a real git and a closed port") {
  TempDir local;
  const std::string port = std::to_string(ClosedPort());

  SUBCASE("credentials in the options") {
    GitRepoOptions options =
        Options("http://127.0.0.1:" + port + "/x.git", fs::path(local.path()) / "checkout");
    options.credentials.username = Secret("alice");
    options.credentials.password = Secret("s3cr3t-pass");
    GitRepo repo(options);
    Outcome<std::string> synced = repo.Sync();
    REQUIRE_FALSE(synced.ok());
    const std::string& message = synced.failure().message;
    CHECK(synced.failure().reason == "FetchFailed");
    CHECK(Contains(message, "git clone of http://127.0.0.1:" + port + "/x.git (branch main): "));
    CHECK_FALSE(Contains(message, "alice"));
    CHECK_FALSE(Contains(message, "s3cr3t-pass"));
  }
  SUBCASE("credentials in the URL") {
    GitRepo repo(Options("http://bob:hunter2-url@127.0.0.1:" + port + "/x.git",
                         fs::path(local.path()) / "checkout"));
    Outcome<std::string> synced = repo.Sync();
    REQUIRE_FALSE(synced.ok());
    const std::string& message = synced.failure().message;
    CHECK(Contains(message, "git clone of http://127.0.0.1:" + port + "/x.git (branch main): "));
    CHECK_FALSE(Contains(message, "bob"));
    CHECK_FALSE(Contains(message, "hunter2-url"));
  }
}

TEST_CASE("GitRepo: credentials go to git in its environment, never on its command line") {
  TempDir local;
  const fs::path record = local.path();
  // Records argv and environment, then fails the way a real git might, echoing secrets.
  const std::string fake = Script(local, "fake-git",
                                  "printf '%s\\n' \"$@\" > '" + (record / "argv").string() +
                                      "'\n"
                                      "env > '" +
                                      (record / "env").string() +
                                      "'\n"
                                      "echo \"fatal: http://alice:s3cr3t-pass@host/x.git/: "
                                      "$TM_GIT_PASSWORD ($TM_GIT_USERNAME, s3cr3t-pass)\" >&2\n"
                                      "exit 128\n");
  GitRepoOptions options =
      Options("https://git.example.com/ops/fleet.git", fs::path(local.path()) / "checkout");
  options.git = fake;
  options.credentials.username = Secret("alice");
  options.credentials.password = Secret("s3cr3t-pass");
  GitRepo repo(options);
  Outcome<std::string> synced = repo.Sync();
  REQUIRE_FALSE(synced.ok());

  const std::string token = crypto::Base64("alice:s3cr3t-pass");
  const std::string argv = ReadFile(record / "argv");
  const std::string env = ReadFile(record / "env");
  REQUIRE_FALSE(argv.empty());
  CHECK_FALSE(Contains(argv, "s3cr3t-pass"));
  CHECK_FALSE(Contains(argv, "alice"));
  CHECK_FALSE(Contains(argv, token));
  CHECK(Contains(argv, "credential.helper=\n"));
  CHECK(Contains(argv, "\ncredential.helper=!f() {"));
  CHECK(Contains(argv, "\nprotocol.file.allow=never\n"));  // an https source
  CHECK(Contains(argv, "clone\n"));
  CHECK(Contains(argv, "--\nhttps://git.example.com/ops/fleet.git\n"));  // never an option
  CHECK(Contains(env, "\nTM_GIT_USERNAME=alice\n"));
  CHECK(Contains(env, "\nTM_GIT_PASSWORD=s3cr3t-pass\n"));
  CHECK_FALSE(Contains(env, "GIT_CONFIG"));
  CHECK_FALSE(Contains(env, token));
  CHECK(Contains(env, "\nGIT_TERMINAL_PROMPT=0\n"));
  CHECK(Contains(env, "\nLC_ALL=C\n"));
  CHECK_FALSE(Contains(env, "\nGIT_ASKPASS="));
  CHECK_FALSE(Contains(env, "\nSSH_ASKPASS="));

  // The helper from the command line, run by a real git, answers with the environment's
  // credentials (and an empty environment gives it nothing of ours).
  std::string helper;
  for (std::size_t at = argv.find("credential.helper=!"); at != std::string::npos;) {
    helper = argv.substr(at, argv.find('\n', at) - at);
    break;
  }
  REQUIRE_FALSE(helper.empty());
  const ProcessResult filled = RunProcess(
      {GitProgram(), "-c", "credential.helper=", "-c", helper, "credential", "fill"},
      {{"TM_GIT_USERNAME", "alice"}, {"TM_GIT_PASSWORD", "s3cr3t-pass\\x"},
       {"GIT_TERMINAL_PROMPT", "0"}, {"GIT_CONFIG_NOSYSTEM", "1"}, {"GIT_CONFIG_GLOBAL", "/dev/null"}},
      "protocol=https\nhost=git.example.com\n\n");
  CHECK_MESSAGE(filled.exit_code == 0, filled.err);
  CHECK(Contains(filled.out, "username=alice\n"));
  CHECK(Contains(filled.out, "password=s3cr3t-pass\\x\n"));

  const std::string& message = synced.failure().message;
  CHECK(Contains(message, "git clone of https://git.example.com/ops/fleet.git (branch main): "));
  CHECK(Contains(message, "<redacted>"));
  CHECK_FALSE(Contains(message, "s3cr3t-pass"));
  CHECK_FALSE(Contains(message, "alice"));
  CHECK_FALSE(Contains(message, token));
}

TEST_CASE("GitRepo: git inherits none of the operator's secrets, only an allow-listed environment") {
  Upstream upstream;
  const std::string commit = upstream.Commit({{"a.yaml", "a: 1\n"}});
  TempDir local;
  const fs::path record = local.path();
  // A wrapper around the real git recording the environment it was started with, as exec'd
  // (/proc/$$/environ: nothing the shell adds itself), and its arguments.
  const std::string wrapper =
      Script(local, "git", "tr '\\0' '\\n' < /proc/$$/environ >> '" + (record / "env").string() +
                               "'\nprintf '%s\\n' \"$@\" >> '" + (record / "argv").string() +
                               "'\nexec '" + GitProgram() + "' \"$@\"\n");
  // Canaries in this process's environment, as the daemon holds its master key and DSNs.
  setenv("TM_MASTER_KEY", "canary-master-key-1f2e", 1);
  setenv("TM_PG_DSN", "postgres://u:canary-dsn-pw@h/db", 1);
  setenv("GIT_CONFIG_PARAMETERS", "'core.hooksPath'='/canary'", 1);
  GitRepoOptions options = Options(upstream.url, fs::path(local.path()) / "state/git/fleet");
  options.git = wrapper;
  options.credentials.password = Secret("s3cr3t-pass");
  GitRepo repo(options);
  const std::string synced = MustSync(repo);
  CHECK(synced == commit);
  CHECK(MustSync(repo) == commit);  // a fetch too
  unsetenv("TM_MASTER_KEY");
  unsetenv("TM_PG_DSN");
  unsetenv("GIT_CONFIG_PARAMETERS");

  const std::string env = ReadFile(record / "env");
  REQUIRE_FALSE(env.empty());
  CHECK_FALSE(Contains(env, "canary"));
  const std::vector<std::string> allowed = {
      "PATH",           "HOME",           "LANG",          "LC_ALL",     "GIT_TERMINAL_PROMPT",
      "TM_GIT_USERNAME", "TM_GIT_PASSWORD", "SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO",
      "GIT_SSL_CAPATH", "http_proxy",     "https_proxy",   "no_proxy",   "all_proxy",
      "HTTP_PROXY",     "HTTPS_PROXY",    "NO_PROXY",      "ALL_PROXY"};
  std::size_t begin = 0;
  while (begin < env.size()) {
    const std::size_t end = env.find('\n', begin);
    const std::string line = env.substr(begin, end - begin);
    begin = end == std::string::npos ? env.size() : end + 1;
    if (line.empty()) continue;
    const std::string key = line.substr(0, line.find('='));
    CHECK_MESSAGE(std::find(allowed.begin(), allowed.end(), key) != allowed.end(),
                  ("git inherited " + key));
  }
  const fs::path home = fs::path(local.path()) / "state/git/.home";
  CHECK(Contains(env, "HOME=" + home.string() + "\n"));
  CHECK(Contains(env, "LANG=C\n"));
  struct stat info {};
  REQUIRE(stat(home.c_str(), &info) == 0);
  CHECK((info.st_mode & 0777) == 0700);
  // A file:// source may use git's file protocol; the credentials go to the network steps only.
  const std::string argv = ReadFile(record / "argv");
  CHECK(Contains(argv, "\nprotocol.file.allow=always\n"));
  CHECK_FALSE(Contains(argv, "protocol.file.allow=never"));
  CHECK(Contains(env, "TM_GIT_USERNAME=git\n"));  // a password alone: any username does
}

TEST_CASE("GitRepo: a local path source may use the file protocol, an scp-like one may not") {
  TempDir local;
  const fs::path record = local.path();
  const std::string fake = Script(local, "fake-git",
                                  "printf '%s\\n' \"$@\" >> '" + (record / "argv").string() +
                                      "'\nexit 128\n");
  for (const auto& [url, allowed] : std::vector<std::pair<std::string, bool>>{
           {"/srv/git/fleet.git", true},
           {"git@git.example.com:ops/fleet.git", false},
           {"ssh://git@git.example.com/ops/fleet.git", false}}) {
    fs::remove(record / "argv");
    GitRepoOptions options = Options(url, fs::path(local.path()) / "checkout");
    options.git = fake;
    GitRepo repo(options);
    CHECK_FALSE(repo.Sync().ok());
    const std::string argv = ReadFile(record / "argv");
    CHECK_MESSAGE(Contains(argv, allowed ? "\nprotocol.file.allow=always\n"
                                         : "\nprotocol.file.allow=never\n"),
                  url);
  }
}

TEST_CASE("State folder: the default is private and per user") {
  CHECK(DefaultStateFolder(true, "/x/state", "/home/a") == "/var/lib/tenant-master");
  CHECK(DefaultStateFolder(false, "/x/state", "/home/a") == "/x/state/tenant-master");
  CHECK(DefaultStateFolder(false, "relative", "/home/a") == "/home/a/.local/state/tenant-master");
  CHECK(DefaultStateFolder(false, nullptr, "/home/a") == "/home/a/.local/state/tenant-master");
  CHECK(DefaultStateFolder(false, nullptr, nullptr).empty());
}

TEST_CASE("State folder: created 0700; refused when another user's or writable by others") {
  TempDir local;
  const fs::path root = local.path();
  SUBCASE("a missing folder is created 0700") {
    const fs::path folder = root / "a/b/tenant-master";
    Outcome<fs::path> prepared = PrepareStateFolder(folder);
    REQUIRE_MESSAGE(prepared.ok(), (prepared.ok() ? "" : prepared.failure().message));
    struct stat info {};
    REQUIRE(stat(folder.c_str(), &info) == 0);
    CHECK((info.st_mode & 0777) == 0700);
    CHECK(PrepareStateFolder(folder).ok());  // and taken again
  }
  SUBCASE("mode 0777 is refused") {
    const fs::path folder = root / "open";
    fs::create_directory(folder);
    chmod(folder.c_str(), 0777);
    Outcome<fs::path> prepared = PrepareStateFolder(folder);
    REQUIRE_FALSE(prepared.ok());
    CHECK(prepared.failure().reason == "UnsafeStateFolder");
    CHECK(prepared.failure().message ==
          "state folder " + folder.string() +
              " is writable by group or others (mode 0777); give --state-dir a folder of this "
              "user's with mode 0700");
  }
  SUBCASE("a folder owned by another user is refused") {
    if (geteuid() != 0) {
      MESSAGE("not root: cannot give a folder to another user; skipped");
      return;
    }
    const fs::path folder = root / "planted";
    fs::create_directory(folder);
    chmod(folder.c_str(), 0700);
    REQUIRE(chown(folder.c_str(), 65534, 65534) == 0);  // nobody
    Outcome<fs::path> prepared = PrepareStateFolder(folder);
    REQUIRE_FALSE(prepared.ok());
    CHECK(prepared.failure().message == "state folder " + folder.string() +
                                            " is owned by uid 65534, not by this process's uid 0; "
                                            "give --state-dir a folder of this user's with mode "
                                            "0700");
  }
  SUBCASE("a file is refused") {
    const std::string file = local.Write("file", "x");
    Outcome<fs::path> prepared = PrepareStateFolder(file);
    REQUIRE_FALSE(prepared.ok());
    CHECK(Contains(prepared.failure().message, " is not a folder"));
  }
}

TEST_CASE("GitRepo: a git that runs over the timeout is killed with everything it started") {
  TempDir local;
  const fs::path record = local.path();
  // The script and its child both record their pids; the child holds the output pipes open.
  const std::string fake = Script(local, "slow-git",
                                  "echo $$ > '" + (record / "pid").string() +
                                      "'\n"
                                      "sleep 30 &\n"
                                      "echo $! > '" +
                                      (record / "child_pid").string() +
                                      "'\n"
                                      "wait\n");
  GitRepoOptions options =
      Options("https://git.example.com/ops/fleet.git", fs::path(local.path()) / "checkout");
  options.git = fake;
  options.timeout = 1s;
  GitRepo repo(options);

  const auto start = Clock::now();
  Outcome<std::string> synced = repo.Sync();
  const auto elapsed = Clock::now() - start;
  REQUIRE_FALSE(synced.ok());
  CHECK(synced.failure().reason == "FetchFailed");
  CHECK(Contains(synced.failure().message,
                 "git clone of https://git.example.com/ops/fleet.git (branch main): timed out "
                 "after 1s"));
  CHECK(elapsed >= 1s);
  CHECK(elapsed < 5s);
  const std::string pid = Trimmed(ReadFile(record / "pid"));
  const std::string child = Trimmed(ReadFile(record / "child_pid"));
  REQUIRE_FALSE(pid.empty());
  REQUIRE_FALSE(child.empty());
  CHECK(Gone(pid));  // reaped by GitRepo: no zombie either
  CHECK(GoneWithin(child, 2s));
  CHECK(Leftovers(local.path()) == 0);
}

TEST_CASE("GitRepo: a git program that cannot be run is a transient FetchFailed") {
  TempDir local;
  GitRepoOptions options =
      Options("https://git.example.com/ops/fleet.git", fs::path(local.path()) / "checkout");
  options.git = "/nonexistent/git";
  GitRepo repo(options);
  Outcome<std::string> synced = repo.Sync();
  REQUIRE_FALSE(synced.ok());
  CHECK(synced.failure().reason == "FetchFailed");
  CHECK(Contains(synced.failure().message, "cannot run /nonexistent/git: "));
}

TEST_CASE("RedactUrl drops userinfo and keeps everything else") {
  CHECK(RedactUrl("https://u:p@host:8443/a/b.git") == "https://host:8443/a/b.git");
  CHECK(RedactUrl("https://token@host/a.git") == "https://host/a.git");
  CHECK(RedactUrl("https://host/a@b.git") == "https://host/a@b.git");
  CHECK(RedactUrl("git@github.com:acme/fleet.git") == "git@github.com:acme/fleet.git");
  CHECK(RedactUrl("/srv/git/fleet.git") == "/srv/git/fleet.git");
}

}  // namespace tmaster::controller
