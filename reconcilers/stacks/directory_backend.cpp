#include "reconcilers/stacks/directory_backend.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "reconcilers/stacks/files.hpp"
#include "reconcilers/stacks/plan.hpp"
#include "reconcilers/stacks/render.hpp"

namespace tmaster::stacks {
namespace {

namespace fs = std::filesystem;

constexpr const char* kComposeFile = "docker-compose.yml";
constexpr const char* kEnvFile = "stack.env";
constexpr const char* kMetaFile = "stack.meta";
constexpr const char* kIdsFile = ".stack-ids";
constexpr mode_t kFileMode = 0600;
constexpr mode_t kDirMode = 0700;
constexpr int kActive = 1;
constexpr int kInactive = 2;

struct Meta {
  int id = 0;
  int endpoint = 0;
  std::string name;
  int status = kActive;
};

std::optional<int> ParseInt(std::string_view text) {
  int value = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc{} || ptr != text.data() + text.size()) return std::nullopt;
  return value;
}

std::string RenderMeta(const Meta& meta) {
  return "id=" + std::to_string(meta.id) + "\nendpoint=" + std::to_string(meta.endpoint) +
         "\nname=" + meta.name + "\nstatus=" + std::to_string(meta.status) + "\n";
}

std::optional<Meta> ParseMeta(const std::string& text) {
  Meta meta;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = line.substr(0, eq);
    const std::string value = line.substr(eq + 1);
    if (key == "name") {
      meta.name = value;
      continue;
    }
    const auto number = ParseInt(value);
    if (!number) return std::nullopt;
    if (key == "id") meta.id = *number;
    if (key == "endpoint") meta.endpoint = *number;
    if (key == "status") meta.status = *number;
  }
  if (meta.id <= 0) return std::nullopt;
  return meta;
}

Outcome<std::string> RenderEnv(const std::string& workspace, const std::vector<EnvVar>& env) {
  std::string out;
  for (const auto& var : env) {
    const bool bad_name = var.name.empty() || var.name.find_first_of(std::string_view(
                                                  "=\n\r\0", 4)) != std::string::npos;
    const bool bad_value =
        var.value.find_first_of(std::string_view("\n\r\0", 3)) != std::string::npos;
    if (bad_name || bad_value) {
      return Failure::Stalled("InvalidStackEnv",
                              "workspace " + workspace + ": Env variable " +
                                  (bad_name ? std::string("with an invalid name") : var.name) +
                                  " cannot be written to " + kEnvFile);
    }
    out += var.name + "=" + var.value + "\n";
  }
  return out;
}

std::vector<EnvVar> ParseEnv(const std::string& text) {
  std::vector<EnvVar> env;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.empty() || line.front() == '#') continue;
    const auto eq = line.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    std::string name = line.substr(0, eq);
    const bool secret = IsSecretEnvName(name);
    env.push_back({std::move(name), line.substr(eq + 1), secret});
  }
  return env;
}

std::optional<std::string> NameError(std::string_view name) {
  if (name.empty()) return "is empty";
  if (name.front() == '.') return "starts with '.'";
  if (name.find('/') != std::string_view::npos || name.find('\\') != std::string_view::npos) {
    return "holds a path separator";
  }
  if (name.find("..") != std::string_view::npos) return "holds '..'";
  if (std::any_of(name.begin(), name.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    return "holds a control character";
  }
  return std::nullopt;
}

Failure InvalidName(std::string_view name, const std::string& why) {
  // The name is shown only when it is harmless to print.
  const bool printable =
      std::all_of(name.begin(), name.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
  return Failure::Stalled("InvalidStackName",
                          "stack folder name " +
                              (printable ? "\"" + std::string(name) + "\" " : std::string()) + why +
                              "; refusing to use it as a path");
}

Failure NotFound(const std::string& name, StackId id) {
  return Failure::Transient("StackNotFound", "stack \"" + name + "\" (id " + std::to_string(id) +
                                                 ") is gone from the stacks folder");
}

std::int64_t ModifiedNanos(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 +
         static_cast<std::int64_t>(st.st_mtim.tv_nsec);
}

void SetModifiedNanos(const fs::path& path, std::int64_t nanos) {
  constexpr std::int64_t kPerSecond = 1'000'000'000;
  std::array<struct timespec, 2> times{};
  times[0].tv_nsec = UTIME_OMIT;
  times[1].tv_sec = static_cast<time_t>(nanos / kPerSecond);
  times[1].tv_nsec = static_cast<long>(nanos % kPerSecond);
  ::utimensat(AT_FDCWD, path.c_str(), times.data(), 0);
}

bool IsRealDirectory(const fs::path& path) {
  std::error_code ec;
  const auto status = fs::symlink_status(path, ec);
  return !ec && fs::is_directory(status);
}

class DirectoryBackend final : public StackGateway {
 public:
  explicit DirectoryBackend(fs::path dir) : dir_(std::move(dir)) {}

  // Every endpoint is a folder of compose files here: a standalone engine, always there.
  Outcome<EndpointInfo> Inspect(int /*endpoint*/) override { return EndpointInfo{}; }

  Outcome<std::vector<ObservedStack>> List(int endpoint) override {
    std::lock_guard lock(mutex_);
    std::vector<ObservedStack> out;
    std::error_code ec;
    if (!fs::exists(dir_, ec)) return out;
    for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string folder = it->path().filename().string();
      if (NameError(folder) || !IsRealDirectory(it->path())) continue;
      const auto meta = ReadMeta(it->path());
      if (!meta || meta->endpoint != endpoint) continue;
      ObservedStack stack;
      stack.id = meta->id;
      stack.name = meta->name;
      stack.endpoint = meta->endpoint;
      stack.type = 2;
      stack.status = meta->status;
      stack.update_date = ModifiedNanos(it->path() / kComposeFile);
      if (auto env = files::Read(it->path() / kEnvFile)) stack.env = ParseEnv(*env);
      stack.workspace = MarkerOf(stack.env);
      out.push_back(std::move(stack));
    }
    if (ec) {
      return Failure::Transient("StackReadFailed",
                                "cannot list " + dir_.string() + ": " + ec.message());
    }
    std::sort(out.begin(), out.end(),
              [](const ObservedStack& a, const ObservedStack& b) { return a.id < b.id; });
    return out;
  }

  Outcome<std::string> File(const ObservedStack& stack) override {
    std::lock_guard lock(mutex_);
    const auto folder = Locate(stack.id, stack.name);
    if (!folder) return NotFound(stack.name, stack.id);
    return files::Read(*folder / kComposeFile);
  }

  Outcome<ApplyResult> Apply(const Action& action) override {
    std::lock_guard lock(mutex_);
    return std::visit([this](const auto& a) { return Do(a); }, action);
  }

 private:
  std::optional<Meta> ReadMeta(const fs::path& folder) const {
    auto text = files::Read(folder / kMetaFile);
    if (!text) return std::nullopt;
    return ParseMeta(*text);
  }

  // The folder of stack `id`: `<dir>/<name without tm->` when its meta agrees, else a scan.
  std::optional<fs::path> Locate(StackId id, const std::string& name) const {
    if (name.starts_with("tm-") && !NameError(name.substr(3))) {
      const fs::path folder = dir_ / name.substr(3);
      const auto meta = IsRealDirectory(folder) ? ReadMeta(folder) : std::nullopt;
      if (meta && meta->id == id) return folder;
    }
    std::error_code ec;
    for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
      if (NameError(it->path().filename().string()) || !IsRealDirectory(it->path())) continue;
      const auto meta = ReadMeta(it->path());
      if (meta && meta->id == id) return it->path();
    }
    return std::nullopt;
  }

  Status EnsureRoot() const {
    std::error_code ec;
    if (IsRealDirectory(dir_)) return Ok();
    if (fs::exists(fs::symlink_status(dir_, ec))) {
      // A symlink to a folder is fine for the root (an operator's choice), a file is not.
      if (fs::is_directory(dir_, ec)) return Ok();
      return Failure::Stalled("StackWriteFailed", dir_.string() + " is not a folder");
    }
    fs::create_directories(dir_, ec);
    if (ec) {
      return Failure::Transient("StackWriteFailed",
                                "cannot create " + dir_.string() + ": " + ec.message());
    }
    fs::permissions(dir_, static_cast<fs::perms>(kDirMode), ec);
    return Ok();
  }

  // Never reuses an id, even after the counter file is lost: the next one is above both the
  // counter and every id in use.
  Outcome<int> NextId() const {
    int last = 0;
    if (auto text = files::Read(dir_ / kIdsFile)) {
      std::string trimmed = *text;
      while (!trimmed.empty() && (trimmed.back() == '\n' || trimmed.back() == ' ')) {
        trimmed.pop_back();
      }
      last = ParseInt(trimmed).value_or(0);
    }
    std::error_code ec;
    for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
      if (NameError(it->path().filename().string()) || !IsRealDirectory(it->path())) continue;
      if (const auto meta = ReadMeta(it->path())) last = std::max(last, meta->id);
    }
    const int next = last + 1;
    if (auto done = files::WriteAtomic(dir_ / kIdsFile, std::to_string(next) + "\n", kFileMode);
        !done) {
      return done.failure();
    }
    return next;
  }

  static Status WriteContents(const fs::path& folder, const DesiredStack& stack) {
    auto env = RenderEnv(stack.workspace, stack.env);
    if (!env) return env.failure();
    if (auto done = files::WriteAtomic(folder / kEnvFile, *env, kFileMode); !done) return done;
    const fs::path compose = folder / kComposeFile;
    const std::int64_t before = ModifiedNanos(compose);
    if (auto done = files::WriteAtomic(compose, stack.file, kFileMode); !done) return done;
    // The file's mtime is the stack's UpdateDate: every write of ours must move it, even when
    // the clock's granularity would give the old value again.
    if (before != 0 && ModifiedNanos(compose) <= before) SetModifiedNanos(compose, before + 1);
    return Ok();
  }

  static Status WriteMeta(const fs::path& folder, const Meta& meta) {
    return files::WriteAtomic(folder / kMetaFile, RenderMeta(meta), kFileMode);
  }

  Outcome<ApplyResult> Adopt(const fs::path& folder, const DesiredStack& stack) {
    const auto meta = ReadMeta(folder);
    std::string marker;
    if (auto env = files::Read(folder / kEnvFile)) marker = MarkerOf(ParseEnv(*env));
    if (!meta || marker != stack.workspace) {
      return Failure::Stalled("StackConflict",
                              "folder " + folder.string() + " exists and is not workspace " +
                                  stack.workspace + "'s stack; rename or remove it by hand");
    }
    if (auto done = WriteContents(folder, stack); !done) return done.failure();
    const Meta updated{meta->id, stack.endpoint, stack.name, stack.active ? kActive : kInactive};
    if (auto done = WriteMeta(folder, updated); !done) return done.failure();
    return ApplyResult{meta->id, ModifiedNanos(folder / kComposeFile), 3,
                       "adopted the existing folder " + folder.string()};
  }

  Outcome<ApplyResult> Do(const CreateStack& a) {
    const DesiredStack& stack = a.stack;
    if (const auto why = NameError(stack.workspace)) return InvalidName(stack.workspace, *why);
    if (auto done = EnsureRoot(); !done) return done.failure();
    const fs::path folder = dir_ / stack.workspace;
    std::error_code ec;
    if (fs::exists(fs::symlink_status(folder, ec))) {
      if (!IsRealDirectory(folder)) {
        return Failure::Stalled("StackConflict", folder.string() + " exists and is not a folder");
      }
      return Adopt(folder, stack);
    }
    auto id = NextId();
    if (!id) return id.failure();

    std::string pattern = (dir_ / (".tmp-" + stack.workspace + "-XXXXXX")).string();
    std::vector<char> name(pattern.begin(), pattern.end());
    name.push_back('\0');
    if (::mkdtemp(name.data()) == nullptr) {  // mode 0700
      return Failure::Transient(
          "StackWriteFailed",
          "cannot create a temporary folder in " + dir_.string() + ": " + std::strerror(errno));
    }
    const fs::path temp(name.data());
    auto cleanup = [&] { fs::remove_all(temp, ec); };
    const Meta meta{*id, stack.endpoint, stack.name, stack.active ? kActive : kInactive};
    if (auto done = WriteContents(temp, stack); !done) {
      cleanup();
      return done.failure();
    }
    if (auto done = WriteMeta(temp, meta); !done) {
      cleanup();
      return done.failure();
    }
    if (::rename(temp.c_str(), folder.c_str()) != 0) {
      const int error = errno;
      cleanup();
      return Failure::Transient(
          "StackWriteFailed",
          "cannot rename the new stack into " + folder.string() + ": " + std::strerror(error));
    }
    if (auto done = files::SyncDirectory(dir_); !done) return done.failure();
    return ApplyResult{*id, ModifiedNanos(folder / kComposeFile), 3, "wrote " + folder.string()};
  }

  Outcome<ApplyResult> Do(const UpdateStack& a) {
    if (const auto why = NameError(a.stack.workspace)) return InvalidName(a.stack.workspace, *why);
    const auto folder = Locate(a.id, a.stack.name);
    if (!folder) return NotFound(a.stack.name, a.id);
    const auto meta = ReadMeta(*folder);
    if (!meta) return NotFound(a.stack.name, a.id);
    if (auto done = WriteContents(*folder, a.stack); !done) return done.failure();
    int calls = 2;
    const Meta updated{meta->id, a.stack.endpoint, a.stack.name,
                       a.stack.active ? kActive : kInactive};
    if (updated.endpoint != meta->endpoint || updated.status != meta->status ||
        updated.name != meta->name) {
      if (auto done = WriteMeta(*folder, updated); !done) return done.failure();
      ++calls;
    }
    return ApplyResult{a.id, ModifiedNanos(*folder / kComposeFile), calls,
                       "rewrote " + folder->string()};
  }

  Outcome<ApplyResult> SetStatus(StackId id, const std::string& name, int status) {
    const auto folder = Locate(id, name);
    if (!folder) return NotFound(name, id);
    auto meta = ReadMeta(*folder);
    if (!meta) return NotFound(name, id);
    const std::int64_t update_date = ModifiedNanos(*folder / kComposeFile);
    if (meta->status == status) return ApplyResult{id, update_date, 0, "unchanged"};
    meta->status = status;
    if (auto done = WriteMeta(*folder, *meta); !done) return done.failure();
    return ApplyResult{id, update_date, 1, status == kActive ? "marked active" : "marked stopped"};
  }

  Outcome<ApplyResult> Do(const StartStack& a) { return SetStatus(a.id, a.name, kActive); }
  Outcome<ApplyResult> Do(const StopStack& a) { return SetStatus(a.id, a.name, kInactive); }

  Outcome<ApplyResult> Do(const DeleteStack& a) {
    const auto folder = Locate(a.id, a.name);
    const auto meta = folder ? ReadMeta(*folder) : std::nullopt;
    // Already gone, or moved to another endpoint by a create that adopted it: nothing to do.
    if (!folder || !meta || meta->endpoint != a.endpoint) {
      return ApplyResult{a.id, 0, 0, "already gone"};
    }
    // Renamed out of the way first, so the stack disappears at once even if removal stops
    // half-way; the leftover dot-folder is ignored by List and removed here.
    const fs::path doomed =
        dir_ / (".deleting-" + folder->filename().string() + "-" + std::to_string(a.id));
    std::error_code ec;
    fs::remove_all(doomed, ec);
    if (::rename(folder->c_str(), doomed.c_str()) != 0) {
      return Failure::Transient("StackWriteFailed",
                                "cannot remove " + folder->string() + ": " + std::strerror(errno));
    }
    fs::remove_all(doomed, ec);
    if (ec) {
      return Failure::Transient("StackWriteFailed",
                                "cannot remove " + doomed.string() + ": " + ec.message());
    }
    if (auto done = files::SyncDirectory(dir_); !done) return done.failure();
    return ApplyResult{a.id, 0, 1, "removed " + folder->string()};
  }

  fs::path dir_;
  mutable std::mutex mutex_;
};

}  // namespace

std::unique_ptr<StackGateway> MakeDirectoryBackend(std::filesystem::path dir) {
  return std::make_unique<DirectoryBackend>(std::move(dir));
}

}  // namespace tmaster::stacks
