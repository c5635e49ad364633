#include "controller/sources/git_repo.hpp"

#include <stdlib.h>  // mkdtemp
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <system_error>
#include <utility>

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

// Reads the credentials from git's environment when git asks (`get`); the command line names
// the variables only. printf, not echo: a backslash in a password stays as it is.
constexpr const char* kCredentialHelper =
    "credential.helper=!f() { test \"$1\" = get || exit 0; "
    "printf '%s\\n' \"username=$TM_GIT_USERNAME\" \"password=$TM_GIT_PASSWORD\"; }; f";

// The variables git inherits from this process (docs/decisions.md, "Hardening II"): how to
// find programs, whom to trust over TLS and which proxy to use; everything else it needs is
// set by Git(), and nothing else of ours (master key, DSNs, API keys) reaches it.
const std::vector<std::string> kInherited = {
    "PATH",       "SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO", "GIT_SSL_CAPATH",
    "http_proxy", "https_proxy",   "no_proxy",     "all_proxy",      "HTTP_PROXY",
    "HTTPS_PROXY", "NO_PROXY",     "ALL_PROXY"};
constexpr const char* kDefaultPath = "/usr/local/bin:/usr/bin:/bin";

// Whether git reaches `url` through its "file" protocol: a file:// URL or a local path (no
// "scheme://", and no scp-like "host:" before the first '/').
bool IsLocalUrl(std::string_view url) {
  const std::size_t scheme = url.find("://");
  if (scheme != std::string_view::npos) return url.substr(0, scheme) == "file";
  const std::size_t colon = url.find(':');
  return colon == std::string_view::npos || url.find('/') < colon;
}

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

fs::path DefaultStateFolder(bool root, const char* xdg_state_home, const char* home) {
  if (root) return "/var/lib/tenant-master";
  if (xdg_state_home != nullptr && xdg_state_home[0] == '/') {
    return fs::path(xdg_state_home) / "tenant-master";
  }
  if (home != nullptr && home[0] == '/') return fs::path(home) / ".local/state/tenant-master";
  return {};
}

Outcome<fs::path> PrepareStateFolder(const fs::path& folder) {
  auto unsafe = [&](const std::string& why) {
    return Failure::Stalled("UnsafeStateFolder",
                            "state folder " + folder.string() + " " + why +
                                "; give --state-dir a folder of this user's with mode 0700");
  };
  if (folder.empty()) return unsafe("is not set (no HOME to put it in)");
  std::error_code ec;
  if (folder.has_parent_path()) fs::create_directories(folder.parent_path(), ec);
  if (mkdir(folder.c_str(), 0700) != 0 && errno != EEXIST) {
    const std::error_code error(errno, std::generic_category());
    return unsafe("cannot be created: " + error.message());
  }
  struct stat info {};
  if (stat(folder.c_str(), &info) != 0) {
    const std::error_code error(errno, std::generic_category());
    return unsafe("cannot be read: " + error.message());
  }
  if (!S_ISDIR(info.st_mode)) return unsafe("is not a folder");
  if (info.st_uid != geteuid()) {
    return unsafe("is owned by uid " + std::to_string(info.st_uid) + ", not by this process's uid " +
                  std::to_string(geteuid()));
  }
  if ((info.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(info.st_mode & 07777));
    return unsafe(std::string("is writable by group or others (mode ") + mode + ")");
  }
  return folder;
}

std::string RedactUrl(std::string_view url) {
  return StripUserinfo(std::string(url));
}

GitRepo::GitRepo(GitRepoOptions options)
    : options_(std::move(options)),
      checkout_(AbsoluteFolder(options_.checkout)),
      home_(options_.home.empty() ? checkout_.parent_path() / ".home"
                                  : AbsoluteFolder(options_.home)),
      safe_url_(RedactUrl(options_.url)),
      local_(IsLocalUrl(options_.url)) {
  const auto& [username, password] = options_.credentials;
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
  const std::string reason = network ? "FetchFailed" : "CheckoutFailed";
  // git's private HOME: its ~/.gitconfig and caches are nobody else's.
  std::error_code ec;
  fs::create_directories(home_.parent_path(), ec);
  if (mkdir(home_.c_str(), 0700) != 0 && errno != EEXIST) {
    const std::error_code error(errno, std::generic_category());
    return Failure::Transient(reason, Describe(step) + ": cannot create git's home folder " +
                                          home_.string() + ": " + error.message());
  }

  ChildSpec spec;
  spec.timeout = options_.timeout;
  spec.argv = {options_.git};
  spec.argv.insert(spec.argv.end(), kCommonArgs.begin(), kCommonArgs.end());
  spec.argv.insert(spec.argv.end(),
                   {"-c", local_ ? "protocol.file.allow=always" : "protocol.file.allow=never"});
  const auto& [username, password] = options_.credentials;
  const bool credentials = network && (username || password);
  if (credentials) spec.argv.insert(spec.argv.end(), {"-c", kCredentialHelper});
  if (dir != nullptr) {
    // An explicit --git-dir: git must never search upwards and find (and `clean`) a repository
    // that contains the checkout folder when the checkout's own .git is damaged.
    spec.argv.insert(spec.argv.end(), {"-C", dir->string(), "--git-dir=.git", "--work-tree=."});
  }
  spec.argv.insert(spec.argv.end(), args.begin(), args.end());

  spec.inherit = kInherited;
  if (std::getenv("PATH") == nullptr) spec.env["PATH"] = kDefaultPath;
  spec.env["HOME"] = home_.string();
  spec.env["LANG"] = "C";
  spec.env["LC_ALL"] = "C";
  spec.env["GIT_TERMINAL_PROMPT"] = "0";
  if (credentials) {
    spec.env["TM_GIT_USERNAME"] = username ? username->Reveal() : std::string("git");
    spec.env["TM_GIT_PASSWORD"] = password ? password->Reveal() : std::string();
  }

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
