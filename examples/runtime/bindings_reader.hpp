#pragma once

// Reading the service bindings Tenant Master writes for a product's shared runtime: one folder
// per workspace under `<bindings.dir>/<product>/`, one file per key (the layout is
// docs/decisions.md, "Shared tenants served end to end (issue 17)"). Pure parsing and the host
// lookup are separate from the file reading, so both are tested without a disk
// (tests/examples/runtime_bindings_test.cpp). No libpq and no HTTP here.

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/outcome.hpp"
#include "common/secret.hpp"

namespace tmaster::examples::runtime {

/// One workspace's binding, as its folder says.
struct Binding {
  std::string workspace;
  std::string host;  ///< where to connect (PostgreSQL, or PgBouncer when the pooler is on)
  std::string port;
  std::string database;
  std::string username;
  Secret password;
  std::vector<std::string> hosts;  ///< public host names, lowercase
  bool suspended = false;          ///< `state` is `suspended`

  /// Whether `other` logs in the same way (host, port, database, username, password): when it
  /// does not, a tenant's open connections are stale.
  [[nodiscard]] bool SameLogin(const Binding& other) const;
};

/// The keys every binding folder must hold; `type`, `provider` and `uri` are read when present
/// but not needed (the runtime connects with the separate keys).
inline constexpr const char* kRequiredKeys[] = {"workspace", "host",     "port",  "database",
                                                "username",  "password", "hosts", "state"};

/// A binding from its files' contents (key -> value, exactly as on disk). `where` names the
/// folder in messages. Stalled "InvalidBinding" when a required key is missing or empty, `state`
/// is neither `active` nor `suspended`, `port` is not a number in 1..65535, `type` is present
/// and not `postgresql`, or a host name is empty. Messages never include the password.
Outcome<Binding> ParseBinding(const std::map<std::string, std::string>& files,
                              std::string_view where);

/// The host a request is for: the `Host` header without its `:port` (an IPv6 literal keeps its
/// brackets), lowercased, without a trailing dot.
std::string HostKey(std::string_view host_header);

/// `text` with every occurrence of `secret` replaced by `<redacted>`: for a server message that
/// might echo what it was sent.
std::string Redact(std::string text, const Secret& secret);

/// What identifies one version of a workspace folder: a writer swaps in a whole new folder, so
/// a new version has a new inode, or (when a freed inode number is reused) a new ctime and mtime.
struct Stamp {
  ino_t inode = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;
  friend bool operator==(const Stamp&, const Stamp&) = default;
};

/// The workspace folders in the bindings folder `dir` now: name -> stamp. Names starting with
/// `.` (a writer's temporaries) and anything that is not a directory (a symlink included) are
/// left out. Transient "BindingsUnreadable" when `dir` cannot be opened (missing, a symlink).
Outcome<std::map<std::string, Stamp>> ListWorkspaceFolders(const std::string& dir);

/// Reads the workspace folder `name` in `dir` as one consistent version: the folder is opened
/// (O_DIRECTORY | O_NOFOLLOW) and every file read through that descriptor (openat with
/// O_NOFOLLOW), so a writer swapping in a new version mid-read cannot mix two versions. When a
/// file is gone (ENOENT: the folder was swapped and the old one removed) the whole folder is
/// read again, a few times at most. Stalled "InvalidBinding" for a symlink (the folder or a
/// file in it), a file that is not a regular file or is over 64 KiB, or what ParseBinding
/// refuses; Transient "BindingChanging" when every retry met a swap, "BindingUnreadable" for
/// other I/O errors. The message names `dir`/`name`, and the key when it is about one file.
Outcome<Binding> ReadBinding(const std::string& dir, const std::string& name);

/// The bindings of every workspace folder, indexed by public host name.
struct Directory {
  std::map<std::string, std::shared_ptr<const Binding>> by_workspace;
  std::map<std::string, std::shared_ptr<const Binding>> by_host;
  std::vector<std::string> problems;  ///< one line per folder that could not be used
};

/// `bindings` indexed by host. A host claimed by two workspaces goes to neither (a problem
/// naming both): answering for the wrong tenant is worse than answering 404.
Directory IndexBindings(std::vector<std::shared_ptr<const Binding>> bindings,
                        std::vector<std::string> problems = {});

/// The binding serving `host_header` (HostKey applied), or null.
std::shared_ptr<const Binding> Lookup(const Directory& directory, std::string_view host_header);

/// Keeps the bindings of one folder current. Each Refresh lists the workspace folders (one
/// fstatat each) and reads again only those whose Stamp changed, so a pass over 10,000
/// unchanged tenants reads no file. Not thread-safe: one thread refreshes.
class BindingsWatcher {
 public:
  explicit BindingsWatcher(std::string dir) : dir_(std::move(dir)) {}

  struct Changes {
    bool changed = false;          ///< the Directory differs from the one before
    std::vector<std::string> log;  ///< one line per workspace added, changed, removed or refused
  };
  /// One pass. A folder refused for good (InvalidBinding) is not read again until it changes; a
  /// transient failure is retried on the next pass, its previous binding kept meanwhile. When
  /// the bindings folder itself cannot be listed, everything known is kept.
  Changes Refresh();

  [[nodiscard]] const Directory& directory() const { return directory_; }

 private:
  struct Known {
    Stamp stamp;
    std::shared_ptr<const Binding> binding;  ///< null when the folder was refused
    std::string problem;
  };
  std::string dir_;
  std::map<std::string, Known> known_;
  Directory directory_;
  std::string listing_problem_;
};

}  // namespace tmaster::examples::runtime
