#pragma once

// The `git` source's working copy (docs/architecture.md#sources): a shallow checkout of one branch,
// brought to the branch's tip by the `git` command, spawned with an argument vector (never a
// shell). Modelled on Flux source-controller's GitRepository reconciler, minus libgit2.

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/outcome.hpp"
#include "common/scrub.hpp"
#include "common/secret.hpp"

namespace tmaster::controller {

/// HTTPS basic authentication. Either may be absent (a token often goes as the password with
/// any username; a missing username is sent as "git"). They reach git only through its
/// environment (TM_GIT_USERNAME, TM_GIT_PASSWORD), read by a credential helper given on the
/// command line, which names the variables and holds no secret: never argv, never .git/config.
struct GitCredentials {
  std::optional<Secret> username;
  std::optional<Secret> password;
};

struct GitRepoOptions {
  std::string url;  ///< any URL git accepts (https, ssh, file, a path)
  std::string branch = "main";
  std::filesystem::path checkout;    ///< the working copy, created and owned by GitRepo
  std::chrono::seconds timeout{60};  ///< per git command, then its process group is killed
  GitCredentials credentials;        ///< HTTPS basic auth, optional
  std::string git = "git";           ///< the program, looked up in PATH
  /// git's HOME, created 0700 if missing; empty: "<checkout's parent>/.home".
  std::filesystem::path home;
};

/// A shallow checkout of `branch` of `url` at `checkout`. Not synchronized: use one GitRepo from
/// one thread at a time, and give each GitRepo its own `checkout` folder.
///
/// git runs with least privilege: of this process's environment it inherits PATH, the TLS trust
/// (SSL_CERT_FILE/DIR, GIT_SSL_CAINFO/CAPATH) and the proxy variables only (the master key, DSNs
/// and API keys stay here); it gets HOME (a private folder), LANG=LC_ALL=C,
/// GIT_TERMINAL_PROMPT=0 and, on network steps, the credentials. `protocol.file.allow` is
/// "always" for a local source (file:// or a path) and "never" for any other.
class GitRepo {
 public:
  explicit GitRepo(GitRepoOptions options);

  /// Brings the checkout to the tip of the branch and returns that commit id (40 hex digits, 64
  /// in a SHA-256 repository). Files are exactly the commit's: local edits and untracked files
  /// are removed.
  ///
  /// The first call, or one finding no checkout, clones (`--depth 1 --single-branch --no-tags`)
  /// into a temporary sibling folder renamed into place on success, so a failed clone leaves no
  /// half checkout and an existing checkout stays as it was. Later calls fetch the branch from
  /// `url` (so a changed URL takes effect without a new clone), `reset --hard` to it and
  /// `clean -ffdx`. A checkout that cannot be read or reset is cloned afresh at once; after
  /// kRecloneAfterFailures failed fetches in a row the next call clones instead of fetching,
  /// in case the failures come from a damaged local repository.
  ///
  /// Failures:
  /// - Transient "FetchFailed": git could not clone or fetch (network, authentication, timeout,
  ///   no such repository, no such branch on the remote) or could not be run. The message names
  ///   the step and the URL without credentials, e.g. "git fetch of https://host/fleet.git
  ///   (branch main): timed out after 60s", followed by the last lines of git's stderr.
  /// - Transient "CheckoutFailed": the local folder could not be prepared or replaced.
  /// - Stalled "InvalidSource": the url or the branch is empty.
  /// No message ever contains the credentials (or userinfo from the URL).
  Outcome<std::string> Sync();

  /// The checkout folder, as given in the options.
  [[nodiscard]] const std::filesystem::path& checkout() const { return options_.checkout; }

  /// Fetch failures in a row after which Sync clones afresh instead of fetching.
  static constexpr int kRecloneAfterFailures = 3;

 private:
  Outcome<std::string> Clone();
  Outcome<std::string> Update();
  /// Runs `git <args>` (in `dir`'s repository when given) and returns its stdout.
  Outcome<std::string> Git(std::string_view step, const std::filesystem::path* dir,
                           const std::vector<std::string>& args, bool network) const;
  /// The commit `dir`'s HEAD points at.
  Outcome<std::string> Head(const std::filesystem::path& dir) const;
  [[nodiscard]] std::string Describe(std::string_view step) const;
  [[nodiscard]] std::string Scrub(std::string text) const;

  GitRepoOptions options_;
  std::filesystem::path checkout_;  ///< absolute
  std::filesystem::path home_;      ///< absolute
  std::string safe_url_;            ///< options_.url without userinfo
  bool local_ = false;              ///< a file:// URL or a path: git's "file" protocol
  Scrubber scrubber_;  ///< the credentials
  int fetch_failures_ = 0;
};

/// The default state folder (git checkouts live in its "git" folder): /var/lib/tenant-master
/// for root, else $XDG_STATE_HOME/tenant-master (an absolute XDG_STATE_HOME only), else
/// $HOME/.local/state/tenant-master; empty when none applies (no HOME). The variables are
/// passed in (nullptr when unset), so the choice can be tested.
std::filesystem::path DefaultStateFolder(bool root, const char* xdg_state_home, const char* home);

/// Makes `folder` ready as the state folder: created 0700 when missing (its parents with the
/// umask's mode), then refused unless it is a folder owned by this process's effective user and
/// writable by neither group nor others (another local user could plant a checkout there).
/// Failure: Stalled "UnsafeStateFolder", the message naming the folder, its owner or mode, and
/// what to do.
Outcome<std::filesystem::path> PrepareStateFolder(const std::filesystem::path& folder);

/// `url` without its userinfo: "https://user:pass@host/x.git" -> "https://host/x.git". URLs
/// without "://" (paths, scp-like "git@host:x.git", whose user is no secret) are unchanged.
std::string RedactUrl(std::string_view url);

}  // namespace tmaster::controller
