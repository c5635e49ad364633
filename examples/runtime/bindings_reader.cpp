#include "examples/runtime/bindings_reader.hpp"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <set>

namespace tmaster::examples::runtime {
namespace {

constexpr std::size_t kMaxFileBytes = 64 * 1024;
// A swap takes a writer microseconds; a reader meeting one several times in a row is racing a
// writer in a loop, and the next pass of the watcher tries again anyway.
constexpr int kReadAttempts = 5;
constexpr const char* kOptionalKeys[] = {"type", "provider", "uri"};

Failure Invalid(std::string message) {
  return Failure::Stalled("InvalidBinding", std::move(message));
}

/// A file descriptor closed on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  [[nodiscard]] int get() const { return fd_; }

 private:
  int fd_;
};

std::int64_t Nanos(const timespec& time) {
  return static_cast<std::int64_t>(time.tv_sec) * 1'000'000'000 + time.tv_nsec;
}

std::string Lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// One key's file read through the folder's descriptor. Outcome<std::string> with the value;
// "Missing" and "Swapped" are told apart by the caller.
enum class FileRead { kValue, kMissing };

Outcome<FileRead> ReadKey(int folder_fd, const std::string& key, const std::string& where,
                          std::string& value) {
  const int fd = openat(folder_fd, key.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return FileRead::kMissing;
    if (errno == ELOOP) return Invalid(where + "/" + key + " is a symbolic link; refused");
    return Failure::Transient("BindingUnreadable", where + "/" + key + ": " + std::strerror(errno));
  }
  const Fd file(fd);
  struct stat info {};
  if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    return Invalid(where + "/" + key + " is not a regular file; refused");
  }
  if (static_cast<std::size_t>(info.st_size) > kMaxFileBytes) {
    return Invalid(where + "/" + key + " is larger than 64 KiB; refused");
  }
  value.clear();
  std::array<char, 4096> buffer{};
  for (;;) {
    const ssize_t got = read(fd, buffer.data(), buffer.size());
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      return Failure::Transient("BindingUnreadable",
                                where + "/" + key + ": " + std::strerror(errno));
    }
    if (got == 0) break;
    value.append(buffer.data(), static_cast<std::size_t>(got));
    if (value.size() > kMaxFileBytes) {
      return Invalid(where + "/" + key + " is larger than 64 KiB; refused");
    }
  }
  return FileRead::kValue;
}

// Whether the folder open as `folder_fd` is no longer the one named `name` in `parent_fd`:
// removed, or swapped for a newer version.
bool Replaced(int parent_fd, const std::string& name, int folder_fd) {
  struct stat open_info {};
  struct stat named_info {};
  if (fstat(folder_fd, &open_info) != 0 || open_info.st_nlink == 0) return true;
  if (fstatat(parent_fd, name.c_str(), &named_info, AT_SYMLINK_NOFOLLOW) != 0) return true;
  return open_info.st_ino != named_info.st_ino || open_info.st_dev != named_info.st_dev;
}

struct FolderRead {
  std::map<std::string, std::string> files;
  bool replaced = false;  ///< met a swap: read again
};

Outcome<FolderRead> ReadFolderOnce(int parent_fd, const std::string& name,
                                   const std::string& where) {
  const int fd = openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ELOOP || errno == ENOTDIR) {
      return Invalid(where + " is not a directory (a symbolic link?); refused");
    }
    if (errno == ENOENT) return Failure::Transient("BindingGone", where + " was removed");
    return Failure::Transient("BindingUnreadable", where + ": " + std::strerror(errno));
  }
  const Fd folder(fd);
  FolderRead out;
  std::vector<std::string> keys(std::begin(kRequiredKeys), std::end(kRequiredKeys));
  keys.insert(keys.end(), std::begin(kOptionalKeys), std::end(kOptionalKeys));
  for (const std::string& key : keys) {
    std::string value;
    Outcome<FileRead> read = ReadKey(fd, key, where, value);
    if (!read) return read.failure();
    if (*read == FileRead::kValue) {
      out.files.emplace(key, std::move(value));
      continue;
    }
    // A missing file is either really missing (ParseBinding says which key) or the folder was
    // swapped and its old version is being removed under us.
    if (Replaced(parent_fd, name, fd)) {
      out.replaced = true;
      return out;
    }
  }
  return out;
}

}  // namespace

bool Binding::SameLogin(const Binding& other) const {
  return host == other.host && port == other.port && database == other.database &&
         username == other.username && password == other.password;
}

Outcome<Binding> ParseBinding(const std::map<std::string, std::string>& files,
                              std::string_view where) {
  const std::string at(where);
  for (const char* key : kRequiredKeys) {
    const auto found = files.find(key);
    if (found == files.end()) return Invalid(at + ": missing key `" + key + "`");
    if (found->second.empty()) return Invalid(at + ": key `" + key + "` is empty");
  }
  if (const auto type = files.find("type"); type != files.end() && type->second != "postgresql") {
    return Invalid(at + ": key `type` is `" + type->second + "`, expected `postgresql`");
  }
  Binding binding;
  binding.workspace = files.at("workspace");
  binding.host = files.at("host");
  binding.port = files.at("port");
  binding.database = files.at("database");
  binding.username = files.at("username");
  binding.password = Secret(files.at("password"));
  const std::string& port = binding.port;
  const bool digits = port.size() <= 5 && std::all_of(port.begin(), port.end(),
                                                      [](char c) { return c >= '0' && c <= '9'; });
  if (!digits || std::stoi(port) < 1 || std::stoi(port) > 65535) {
    return Invalid(at + ": key `port` is `" + port + "`, expected a number in 1..65535");
  }
  const std::string& state = files.at("state");
  if (state != "active" && state != "suspended") {
    return Invalid(at + ": key `state` is `" + state + "`, expected `active` or `suspended`");
  }
  binding.suspended = state == "suspended";
  // One name a line. A trailing newline (a hand-written file) is forgiven; an empty line in
  // the middle is not.
  std::string_view hosts = files.at("hosts");
  if (hosts.ends_with('\n')) hosts.remove_suffix(1);
  std::size_t line = 1;
  for (std::size_t start = 0; start <= hosts.size(); ++line) {
    std::size_t end = hosts.find('\n', start);
    if (end == std::string_view::npos) end = hosts.size();
    const std::string name = Lower(hosts.substr(start, end - start));
    if (name.empty() || name.find_first_of(" \t\r:/") != std::string::npos) {
      return Invalid(at + ": key `hosts` line " + std::to_string(line) + " is `" + name +
                     "`, expected a host name");
    }
    binding.hosts.push_back(name);
    start = end + 1;
  }
  return binding;
}

std::string HostKey(std::string_view host_header) {
  while (!host_header.empty() && (host_header.front() == ' ' || host_header.front() == '\t')) {
    host_header.remove_prefix(1);
  }
  while (!host_header.empty() && (host_header.back() == ' ' || host_header.back() == '\t')) {
    host_header.remove_suffix(1);
  }
  if (host_header.starts_with('[')) {  // [::1]:8080
    const std::size_t close = host_header.find(']');
    if (close != std::string_view::npos) host_header = host_header.substr(0, close + 1);
  } else if (const std::size_t colon = host_header.rfind(':'); colon != std::string_view::npos) {
    host_header = host_header.substr(0, colon);
  }
  if (host_header.ends_with('.')) host_header.remove_suffix(1);
  return Lower(host_header);
}

std::string Redact(std::string text, const Secret& secret) {
  const std::string& value = secret.Reveal();
  if (value.empty()) return text;
  for (std::size_t at = text.find(value); at != std::string::npos; at = text.find(value, at + 10)) {
    text.replace(at, value.size(), "<redacted>");
  }
  return text;
}

Outcome<std::map<std::string, Stamp>> ListWorkspaceFolders(const std::string& dir) {
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return Failure::Transient("BindingsUnreadable", dir + ": " + std::strerror(errno));
  }
  DIR* listing = fdopendir(fd);
  if (listing == nullptr) {
    close(fd);
    return Failure::Transient("BindingsUnreadable", dir + ": " + std::strerror(errno));
  }
  std::map<std::string, Stamp> out;
  while (const dirent* entry = readdir(listing)) {
    const std::string name = entry->d_name;
    if (name.starts_with('.')) continue;  // `.`, `..` and the writers' temporaries
    struct stat info {};
    if (fstatat(fd, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) != 0) continue;  // just removed
    if (!S_ISDIR(info.st_mode)) continue;
    out.emplace(name, Stamp{info.st_ino, Nanos(info.st_mtim), Nanos(info.st_ctim)});
  }
  closedir(listing);
  return out;
}

Outcome<Binding> ReadBinding(const std::string& dir, const std::string& name) {
  const std::string where = dir + "/" + name;
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return Failure::Transient("BindingsUnreadable", dir + ": " + std::strerror(errno));
  }
  const Fd parent(fd);
  for (int attempt = 0; attempt < kReadAttempts; ++attempt) {
    Outcome<FolderRead> read = ReadFolderOnce(fd, name, where);
    if (!read) return read.failure();
    if (read->replaced) continue;
    Outcome<Binding> binding = ParseBinding(read->files, where);
    if (!binding) return binding;
    if (binding->workspace != name) {
      return Invalid(where + ": key `workspace` is `" + binding->workspace +
                     "`, expected the folder's name");
    }
    return binding;
  }
  return Failure::Transient("BindingChanging", where + " was replaced during each of " +
                                                   std::to_string(kReadAttempts) + " reads");
}

Directory IndexBindings(std::vector<std::shared_ptr<const Binding>> bindings,
                        std::vector<std::string> problems) {
  Directory out;
  out.problems = std::move(problems);
  std::map<std::string, std::set<std::string>> claims;  // host -> workspaces
  for (const auto& binding : bindings) {
    out.by_workspace.emplace(binding->workspace, binding);
    for (const std::string& host : binding->hosts) claims[host].insert(binding->workspace);
  }
  for (const auto& [host, workspaces] : claims) {
    if (workspaces.size() == 1) {
      out.by_host.emplace(host, out.by_workspace.at(*workspaces.begin()));
      continue;
    }
    std::string names;
    for (const std::string& workspace : workspaces) {
      names += (names.empty() ? "" : ", ") + workspace;
    }
    out.problems.push_back("host " + host + " is claimed by " + names + "; served by none");
  }
  return out;
}

std::shared_ptr<const Binding> Lookup(const Directory& directory, std::string_view host_header) {
  const auto found = directory.by_host.find(HostKey(host_header));
  return found == directory.by_host.end() ? nullptr : found->second;
}

BindingsWatcher::Changes BindingsWatcher::Refresh() {
  Changes changes;
  Outcome<std::map<std::string, Stamp>> listing = ListWorkspaceFolders(dir_);
  if (!listing) {
    if (listing.failure().message != listing_problem_) {
      listing_problem_ = listing.failure().message;
      changes.log.push_back(listing_problem_ + " (keeping the bindings known so far)");
    }
    return changes;
  }
  listing_problem_.clear();
  for (auto it = known_.begin(); it != known_.end();) {
    if (listing->contains(it->first)) {
      ++it;
      continue;
    }
    changes.log.push_back("workspace " + it->first + ": removed");
    changes.changed = true;
    it = known_.erase(it);
  }
  for (const auto& [name, stamp] : *listing) {
    const auto known = known_.find(name);
    if (known != known_.end() && known->second.stamp == stamp) continue;
    Outcome<Binding> read = ReadBinding(dir_, name);
    if (read) {
      const Binding& binding = *read;
      changes.log.push_back("workspace " + name + ": " +
                            (known == known_.end() ? "added" : "updated") + ", " +
                            (binding.suspended ? "suspended" : "active") + ", " +
                            std::to_string(binding.hosts.size()) + " host(s)");
      known_[name] = Known{stamp, std::make_shared<const Binding>(std::move(*read)), {}};
      changes.changed = true;
      continue;
    }
    changes.log.push_back("workspace " + name + ": " + read.failure().message);
    if (read.failure().kind == FailureKind::kTransient) continue;  // the next pass tries again
    known_[name] = Known{stamp, nullptr, read.failure().message};
    changes.changed = true;
  }
  if (!changes.changed) return changes;
  std::vector<std::shared_ptr<const Binding>> bindings;
  std::vector<std::string> problems;
  for (const auto& [name, known] : known_) {
    if (known.binding) bindings.push_back(known.binding);
    if (!known.problem.empty()) problems.push_back(known.problem);
  }
  directory_ = IndexBindings(std::move(bindings), std::move(problems));
  return changes;
}

}  // namespace tmaster::examples::runtime
