#include "tests/support/git_fixture.hpp"

#include <filesystem>
#include <stdexcept>

#include "tests/support/process.hpp"

namespace tmaster::testing {
namespace {

namespace fs = std::filesystem;

std::string Trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.pop_back();
  }
  return text;
}

}  // namespace

GitFixture::GitFixture() {
  Git({"init", "--quiet", "--bare", "--initial-branch=main", BarePath()});
  Git({"init", "--quiet", "--initial-branch=main", WorkPath()});
  Git({"-C", WorkPath(), "remote", "add", "origin", BarePath()});
}

std::string GitFixture::Url() const {
  return "file://" + BarePath();
}
std::string GitFixture::BarePath() const {
  return (dir_.path() / "remote.git").string();
}
std::string GitFixture::WorkPath() const {
  return (dir_.path() / "work").string();
}

void GitFixture::Write(const std::string& relative, const std::string& text) const {
  dir_.Write("work/" + relative, text);
}

void GitFixture::Remove(const std::string& relative) const {
  fs::remove_all(fs::path(WorkPath()) / relative);
}

std::string GitFixture::CommitAndPush(const std::string& message) const {
  Git({"-C", WorkPath(), "add", "--all"});
  Git({"-C", WorkPath(), "commit", "--quiet", "--allow-empty", "-m", message});
  Git({"-C", WorkPath(), "push", "--quiet", "origin", "HEAD:refs/heads/main"});
  return RemoteHead();
}

std::string GitFixture::RemoteHead() const {
  const ProcessResult r =
      RunProcess({"/usr/bin/env", "git", "-C", BarePath(), "rev-parse", "--verify", "--quiet",
                  "refs/heads/main"},
                 {{"GIT_CONFIG_NOSYSTEM", "1"}, {"GIT_CONFIG_GLOBAL", "/dev/null"}});
  return r.exit_code == 0 ? Trim(r.out) : std::string();
}

std::string GitFixture::Git(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {
      "/usr/bin/env",        "git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c",
      "commit.gpgsign=false"};
  argv.insert(argv.end(), args.begin(), args.end());
  const ProcessResult r =
      RunProcess(argv, {{"GIT_CONFIG_NOSYSTEM", "1"}, {"GIT_CONFIG_GLOBAL", "/dev/null"}});
  if (r.exit_code != 0) {
    std::string command;
    for (const std::string& a : args) command += " " + a;
    throw std::runtime_error("git" + command + " failed (" + std::to_string(r.exit_code) +
                             "): " + r.out + r.err);
  }
  return r.out;
}

}  // namespace tmaster::testing
