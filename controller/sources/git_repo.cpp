#include "controller/sources/git_repo.hpp"

#include <stdlib.h>  // mkdtemp

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <map>
#include <system_error>
#include <utility>

#include "common/crypto.hpp"
#include "common/text.hpp"
#include "controller/sources/child_process.hpp"

namespace tmaster::controller {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kStderrLines = 5;    // of git's stderr, in a failure message
constexpr std::size_t kStderrChars = 600;  // at most, the last ones

// On every git command: no stored credential helper (credentials come from us or nowhere), no
// askpass program (there is nobody to ask), and auto-gc in the foreground, inside the command's
// timeout, instead of a detached process that outlives it.
// core.symlinks=false on every command (the clone's checkout, reset): a symbolic link in the
// repository becomes a small file holding the link's text, so no path from a manifest can lead
// out of the checkout through one (docs/architecture.md#manifests).
const std::vector<std::string> kCommonArgs = {"-c", "credential.helper=", "-c", "core.askPass=",
                                              "-c", "gc.autoDetach=false", "-c",
                                              "core.symlinks=false"};

// Variables that would point git at another repository or inject configuration.
const std::vector<std::string> kUnsetVariables = {
    "GIT_ASKPASS",   "SSH_ASKPASS",           "GIT_DIR",
    "GIT_WORK_TREE", "GIT_INDEX_FILE",        "GIT_OBJECT_DIRECTORY",
    "GIT_NAMESPACE", "GIT_CONFIG_PARAMETERS", "GIT_ALTERNATE_OBJECT_DIRECTORIES"};

// Removes the userinfo ("user:pass@") of every "scheme://" URL in `text`.
std::string StripUserinfo(std::string text) {
  static constexpr std::string_view kAuthorityEnd = "/?# \t\r\n'\"<>`";
  for (std::size_t scheme = text.find("://"); scheme != std::string::npos;
       scheme = text.find("://", scheme + 3)) {
    const std::size_t start = scheme + 3;
    std::size_t end = text.find_first_of(kAuthorityEnd, start);
    if (end == std::string::npos) end = text.size();
    const std::size_t at = text.rfind('@', end == 0 ? 0 : end - 1);
    if (at != std::string::npos && at >= start && at < end) text.erase(start, at + 1 - start);
  }
  return text;
}

// The last non-empty lines of `text`, trimmed, joined with "; ". It cuts: scrub `text` first.
std::string TailLines(std::string_view text) {
  std::vector<std::string> lines;
  std::size_t begin = 0;
  while (begin <= text.size()) {
    std::size_t end = text.find('\n', begin);
    if (end == std::string_view::npos) end = text.size();
    std::string line(Trim(text.substr(begin, end - begin)));
    if (!line.empty()) lines.push_back(std::move(line));
    begin = end + 1;
  }
  std::string out;
  const std::size_t first = lines.size() > kStderrLines ? lines.size() - kStderrLines : 0;
  for (std::size_t i = first; i < lines.size(); ++i) {
    if (!out.empty()) out += "; ";
    out += lines[i];
  }
  if (out.size() > kStderrChars) out = "..." + out.substr(out.size() - kStderrChars);
  return out;
}

bool IsCommitId(std::string_view text) {
  if (text.size() != 40 && text.size() != 64) return false;
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool MissingBranch(std::string_view err, const std::string& branch) {
  return err.find("Remote branch " + branch + " not found") != std::string_view::npos ||
         err.find("couldn't find remote ref refs/heads/" + branch) != std::string_view::npos;
}

// The next free index of git's GIT_CONFIG_KEY_<n> list, after any the daemon inherited.
int InheritedConfigCount() {
  const char* text = std::getenv("GIT_CONFIG_COUNT");
  if (text == nullptr) return 0;
  char* end = nullptr;
  const long count = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || count < 0 || count > 1000) return 0;
  return static_cast<int>(count);
}

fs::path AbsoluteFolder(const fs::path& path) {
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec).lexically_normal();
  if (ec) absolute = path.lexically_normal();
  if (!absolute.has_filename()) absolute = absolute.parent_path();  // "dir/" -> "dir"
  return absolute;
}

// Temporary clone folders left by a process that died mid-clone.
void RemoveStaleClones(const fs::path& parent, const std::string& prefix) {
  std::error_code ec;
  for (fs::directory_iterator it(parent, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().filename().string().rfind(prefix, 0) != 0) continue;
    std::error_code ignored;
    fs::remove_all(it->path(), ignored);
  }
}

}  // namespace

std::string RedactUrl(std::string_view url) {
  return StripUserinfo(std::string(url));
}

GitRepo::GitRepo(GitRepoOptions options)
    : options_(std::move(options)),
      checkout_(AbsoluteFolder(options_.checkout)),
      safe_url_(RedactUrl(options_.url)) {
  const auto& [username, password] = options_.credentials;
  if (username || password) {
    const std::string user = username ? username->Reveal() : std::string();
    const std::string pass = password ? password->Reveal() : std::string();
    auth_header_ = "Authorization: Basic " + crypto::Base64(user + ":" + pass);
    // The header's token is the base64 form of "user:pass", which the scrubber covers.
    scrubber_.Add(user + ":" + pass);
  }
  if (username) scrubber_.Add(*username);
  if (password) scrubber_.Add(*password);
}

Outcome<std::string> GitRepo::Sync() {
  if (options_.url.empty() || options_.branch.empty()) {
    return Failure::Stalled("InvalidSource", "git source needs a url and a branch");
  }
  std::error_code ec;
  const bool has_checkout = fs::is_directory(checkout_ / ".git", ec);
  if (!has_checkout || fetch_failures_ >= kRecloneAfterFailures) {
    Outcome<std::string> cloned = Clone();
    if (cloned.ok()) fetch_failures_ = 0;
    return cloned;
  }
  Outcome<std::string> updated = Update();
  if (updated.ok()) {
    fetch_failures_ = 0;
    return updated;
  }
  if (updated.failure().reason == "FetchFailed") {
    ++fetch_failures_;
    return updated;
  }
  // The local repository cannot be read or reset: start over.
  return Clone();
}

Outcome<std::string> GitRepo::Clone() {
  const fs::path parent = checkout_.parent_path();
  const std::string prefix = checkout_.filename().string() + ".clone-";
  auto local_failure = [&](const std::string& what, const std::error_code& error) {
    return Failure::Transient("CheckoutFailed",
                              Describe("git clone") + ": cannot " + what + ": " + error.message());
  };
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) return local_failure("create " + parent.string(), ec);
  RemoveStaleClones(parent, prefix);
  std::string temp = (parent / (prefix + "XXXXXX")).string();
  if (mkdtemp(temp.data()) == nullptr) {
    const std::error_code error(errno, std::generic_category());
    return local_failure("create a folder in " + parent.string(), error);
  }
  const fs::path into(temp);
  const std::vector<std::string> args = {
      "clone",    "--quiet", "--config", "core.symlinks=false", "--depth",     "1",
      "--branch", options_.branch, "--single-branch", "--no-tags", "--", options_.url,
      into.string()};
  Outcome<std::string> cloned = Git("git clone", nullptr, args, true);
  Outcome<std::string> head = cloned.ok() ? Head(into) : cloned;
  if (!head.ok()) {
    fs::remove_all(into, ec);
    return head;
  }
  fs::remove_all(checkout_, ec);
  if (ec) return local_failure("remove the old checkout " + checkout_.string(), ec);
  fs::rename(into, checkout_, ec);
  if (ec) {
    const std::error_code error = ec;
    fs::remove_all(into, ec);
    return local_failure("move the clone to " + checkout_.string(), error);
  }
  return head;
}

Outcome<std::string> GitRepo::Update() {
  // A damaged checkout is found before the network is used (and cloned afresh by Sync).
  if (Outcome<std::string> head = Head(checkout_); !head.ok()) return head;
  const std::string remote_ref = "refs/remotes/origin/" + options_.branch;
  // Fetching from the URL, not the remote `origin` stored at clone time, so a URL changed in the
  // config is used at once.
  Outcome<std::string> fetched =
      Git("git fetch", &checkout_,
          {"fetch", "--quiet", "--depth", "1", "--no-tags", "--", options_.url,
           "+refs/heads/" + options_.branch + ":" + remote_ref},
          true);
  if (!fetched.ok()) return fetched;
  for (const auto& [step, args] : std::vector<std::pair<std::string, std::vector<std::string>>>{
           {"git reset", {"reset", "--hard", "--quiet", remote_ref}},
           {"git clean", {"clean", "-ffdxq"}}}) {
    Outcome<std::string> done = Git(step, &checkout_, args, false);
    if (!done.ok()) return done;
  }
  return Head(checkout_);
}

Outcome<std::string> GitRepo::Git(std::string_view step, const fs::path* dir,
                                  const std::vector<std::string>& args, bool network) const {
  ChildSpec spec;
  spec.timeout = options_.timeout;
  spec.argv = {options_.git};
  spec.argv.insert(spec.argv.end(), kCommonArgs.begin(), kCommonArgs.end());
  if (dir != nullptr) {
    // An explicit --git-dir: git must never search upwards and find (and `clean`) a repository
    // that contains the checkout folder when the checkout's own .git is damaged.
    spec.argv.insert(spec.argv.end(), {"-C", dir->string(), "--git-dir=.git", "--work-tree=."});
  }
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());

  spec.env["GIT_TERMINAL_PROMPT"] = "0";
  spec.env["LC_ALL"] = "C";
  for (const auto& name : kUnsetVariables) spec.env[name] = std::nullopt;
  if (network && auth_header_) {
    // Config through the environment (git >= 2.31), so the header never shows in `ps`.
    const std::string index = std::to_string(InheritedConfigCount());
    spec.env["GIT_CONFIG_COUNT"] = std::to_string(InheritedConfigCount() + 1);
    spec.env["GIT_CONFIG_KEY_" + index] = "http.extraHeader";
    spec.env["GIT_CONFIG_VALUE_" + index] = *auth_header_;
  }

  const std::string reason = network ? "FetchFailed" : "CheckoutFailed";
  Outcome<ChildResult> ran = RunChild(spec);
  if (!ran.ok()) {
    return Failure::Transient(reason, Describe(step) + ": " + Scrub(ran.failure().message));
  }
  const ChildResult& result = *ran;
  if (result.timed_out) {
    return Failure::Transient(
        reason, Describe(step) + ": timed out after " + std::to_string(options_.timeout.count()) +
                    "s" + (result.err.empty() ? "" : " (" + TailLines(Scrub(result.err)) + ")"));
  }
  if (result.exit_code != 0) {
    if (network && MissingBranch(result.err, options_.branch)) {
      return Failure::Transient(
          reason, Describe(step) + ": branch " + options_.branch + " does not exist on the remote");
    }
    const std::string detail = TailLines(Scrub(result.err));
    return Failure::Transient(reason, Describe(step) + ": exited with status " +
                                          std::to_string(result.exit_code) +
                                          (detail.empty() ? "" : ": " + detail));
  }
  return result.out;
}

Outcome<std::string> GitRepo::Head(const fs::path& dir) const {
  Outcome<std::string> out = Git("git rev-parse", &dir, {"rev-parse", "HEAD"}, false);
  if (!out.ok()) return out;
  std::string commit(Trim(*out));
  if (!IsCommitId(commit)) {
    return Failure::Transient("CheckoutFailed", Describe("git rev-parse") + ": not a commit id: '" +
                                                    TailLines(Scrub(commit)) + "'");
  }
  return commit;
}

std::string GitRepo::Describe(std::string_view step) const {
  return std::string(step) + " of " + safe_url_ + " (branch " + options_.branch + ")";
}

std::string GitRepo::Scrub(std::string text) const {
  // Userinfo of any URL first (credentials typed into a URL are secrets the options do not
  // name), then the credentials in every form they travel in.
  return scrubber_(StripUserinfo(std::move(text)));
}

}  // namespace tmaster::controller
