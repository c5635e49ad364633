#include "reconcilers/backups/backup_tools.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <utility>
#include <vector>

#include "common/crypto.hpp"
#include "common/pq/dsn.hpp"
#include "common/pq/session.hpp"
#include "common/pq_handles.hpp"
#include "common/scrub.hpp"
#include "common/text.hpp"
#include "reconcilers/backups/encrypted_format.hpp"
#include "reconcilers/backups/restore_plan.hpp"
#include "reconcilers/backups/tool_process.hpp"

namespace tmaster::backups {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kDebianRoot = "/usr/lib/postgresql";
constexpr std::string_view kPreferredMajor = "15";
// How much of a tool's stderr a message keeps (the end: where the error is).
constexpr std::size_t kStderrKept = 600;
constexpr std::size_t kIoChunk = 64 * 1024;

std::string Errno(int error) { return std::strerror(error); }

bool IsExecutable(const std::string& path) { return access(path.c_str(), X_OK) == 0; }

// A call's time limit (DumpRequest::deadline...): an instant on the steady clock, or none.
struct Deadline {
  Clock::time_point at = Clock::time_point::max();
  std::chrono::milliseconds limit{0};

  static Deadline After(Clock::time_point start, std::chrono::milliseconds limit) {
    Deadline deadline;
    if (limit.count() > 0) {
      deadline.at = start + limit;
      deadline.limit = limit;
    }
    return deadline;
  }
  [[nodiscard]] bool Set() const { return limit.count() > 0; }
  [[nodiscard]] bool Passed() const { return Set() && Clock::now() >= at; }
  // What is left, at least 1 ms (0 would mean "no limit" to the server and the tools).
  [[nodiscard]] std::chrono::milliseconds Remaining() const {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(at - Clock::now());
    return std::max(left, std::chrono::milliseconds(1));
  }
};

Failure TimedOut(const Deadline& deadline, std::string_view step) {
  return Failure::Transient("BackupTimedOut",
                            std::string(step) + " ran past the call's deadline of " +
                                std::to_string(deadline.limit.count()) + " ms and was stopped");
}

// The folder private folders go in: $TMPDIR, else /tmp.
std::string TempRoot() {
  const char* tmp = std::getenv("TMPDIR");
  return tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
}

constexpr std::string_view kWorkFolderPrefix = "tm-backup-";

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&&) = delete;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Reset(); }
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  [[nodiscard]] int get() const { return fd_; }

 private:
  int fd_ = -1;
};

// A private 0700 folder for one call's password file and the tools' stderr, removed with what
// it holds when the call returns.
class PrivateDir {
 public:
  PrivateDir() = default;
  PrivateDir(const PrivateDir&) = delete;
  PrivateDir& operator=(const PrivateDir&) = delete;
  ~PrivateDir() {
    if (path_.empty()) return;
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  Status Create() {
    // The pid in the name: RemoveStaleWorkFolders knows a dead process's folder by it.
    std::string templ = TempRoot() + "/" + std::string(kWorkFolderPrefix) +
                        std::to_string(getpid()) + "-XXXXXX";
    if (mkdtemp(templ.data()) == nullptr) {
      return Failure::Transient("BackupDumpFailed",
                                "cannot create a private temporary folder: " + Errno(errno));
    }
    path_ = templ;
    return Ok();
  }
  [[nodiscard]] const std::string& path() const { return path_; }

  // An anonymous file for a tool's stderr (created, then unlinked: nothing to clean up).
  Outcome<Fd> ScratchFile() const {
    std::string templ = path_ + "/stderr-XXXXXX";
    const int fd = mkostemp(templ.data(), O_CLOEXEC);
    if (fd < 0) {
      return Failure::Transient("BackupDumpFailed",
                                "cannot create a temporary file: " + Errno(errno));
    }
    unlink(templ.c_str());
    return Fd(fd);
  }

 private:
  std::string path_;
};

// `.pgpass` syntax: `:` and `\` escaped with a backslash.
std::string PassfileField(std::string_view value) {
  std::string out;
  for (const char c : value) {
    if (c == ':' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

Status WriteAll(int fd, std::string_view bytes, const std::string& what) {
  while (!bytes.empty()) {
    const ssize_t n = write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Failure::Transient("BackupIoFailed", "cannot write " + what + ": " + Errno(errno));
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return Ok();
}

// What the tools are given for one call: their conninfo (no password in it: a password file
// instead), their environment, the scrubber for their messages.
// What a tool wrote into a scratch file: all of it, or (`keep_tail` > 0) its last `keep_tail`
// bytes at least, in bounded memory.
Outcome<std::string> ReadScratch(int fd, std::string_view what, std::size_t keep_tail = 0) {
  std::string text;
  std::array<char, kIoChunk> chunk{};
  off_t offset = 0;
  for (;;) {
    const ssize_t n = pread(fd, chunk.data(), chunk.size(), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return Failure::Transient("BackupIoFailed",
                                "cannot read " + std::string(what) + ": " + Errno(errno));
    }
    if (n == 0) return text;
    text.append(chunk.data(), static_cast<std::size_t>(n));
    offset += n;
    if (keep_tail > 0 && text.size() > 2 * keep_tail) text.erase(0, text.size() - keep_tail);
  }
}

struct ToolContext {
  PrivateDir dir;
  Scrubber scrub;
  std::string passfile;  // empty when the DSN has no password
  Secret admin_dsn;
  std::map<std::string, std::string> env;

  // The conninfo of `dbname`, for `--dbname=`: every setting of the admin DSN but its password,
  // with `passfile` pointing at ours and `options` extended by `extra_options`.
  // With `user` (and its `user_passfile`): that login instead of the admin's.
  Outcome<std::string> Conninfo(const std::string& dbname, const std::string& extra_options,
                                const std::string& application_name = "tenant-master-backup",
                                const std::string& user = {},
                                const std::string& user_passfile = {}) const {
    auto parts = pq::ParseDsn(admin_dsn);
    std::optional<Secret> dsn = pq::DsnWith(admin_dsn, "password", "");
    const std::string& file = user.empty() ? passfile : user_passfile;
    if (dsn && !file.empty()) dsn = pq::DsnWith(*dsn, "passfile", file);
    if (dsn && !user.empty()) dsn = pq::DsnWith(*dsn, "user", user);
    if (dsn) dsn = pq::DsnWith(*dsn, "dbname", dbname);
    if (dsn) dsn = pq::DsnWith(*dsn, "application_name", application_name);
    if (dsn && parts && !extra_options.empty()) {
      const std::string options =
          parts->options.empty() ? extra_options : parts->options + " " + extra_options;
      dsn = pq::DsnWith(*dsn, "options", options);
    }
    if (!parts || !dsn) {
      return Failure::Stalled("InvalidDsn", "the cluster's admin DSN cannot be parsed");
    }
    return dsn->Reveal();
  }

  // Scrubbed, on one line, the end kept.
  std::string Stderr(int fd) const {
    auto text = ReadScratch(fd, "the tool's stderr", 2 * kIoChunk);
    std::string line = OneLine(scrub(text ? *text : text.failure().message));
    if (line.size() > kStderrKept) line = "…" + line.substr(line.size() - kStderrKept);
    return line;
  }
};

Outcome<std::unique_ptr<ToolContext>> MakeToolContext(const Secret& admin_dsn,
                                                      const std::optional<Secret>& master_key) {
  auto context = std::make_unique<ToolContext>();
  context->admin_dsn = admin_dsn;
  context->scrub.Add(admin_dsn);
  const auto parts = pq::ParseDsn(admin_dsn);
  if (!parts) return Failure::Stalled("InvalidDsn", "the cluster's admin DSN cannot be parsed");
  context->scrub.Add(parts->password);
  if (master_key) context->scrub.Add(*master_key);
  if (auto created = context->dir.Create(); !created) return created.failure();
  if (!parts->password.Empty()) {
    context->passfile = context->dir.path() + "/pgpass";
    const Fd fd(open(context->passfile.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (fd.get() < 0) {
      return Failure::Transient("BackupDumpFailed",
                                "cannot create the tools' password file: " + Errno(errno));
    }
    const std::string line = "*:*:*:*:" + PassfileField(parts->password.Reveal()) + "\n";
    if (auto written = WriteAll(fd.get(), line, "the tools' password file"); !written) {
      return written.failure();
    }
  }
  // The tools' whole environment: no PG* variable of ours (a PGPASSWORD, a PGHOST) and nothing
  // else of this process (the master key) reaches them; English messages.
  context->env = {{"PATH", "/usr/bin:/bin"}, {"LC_ALL", "C.UTF-8"}, {"PGCONNECT_TIMEOUT", "30"}};
  return context;
}

// SHA-256 over a stream.
class Sha256Stream {
 public:
  Sha256Stream() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr); }
  void Update(std::string_view bytes) { EVP_DigestUpdate(ctx_.get(), bytes.data(), bytes.size()); }
  std::string HexDigest() {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int size = 0;
    EVP_DigestFinal_ex(ctx_.get(), digest.data(), &size);
    return crypto::Hex(std::string_view(reinterpret_cast<const char*>(digest.data()), size));
  }

 private:
  struct Deleter {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
  };
  std::unique_ptr<EVP_MD_CTX, Deleter> ctx_;
};

Outcome<std::string> FileSha256(int fd, const std::string& path) {
  Sha256Stream sha;
  std::array<char, kIoChunk> chunk{};
  off_t offset = 0;
  for (;;) {
    const ssize_t n = pread(fd, chunk.data(), chunk.size(), offset);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Failure::Transient("BackupIoFailed", "cannot read " + path + ": " + Errno(errno));
    if (n == 0) break;
    sha.Update(std::string_view(chunk.data(), static_cast<std::size_t>(n)));
    offset += n;
  }
  return sha.HexDigest();
}

// Copies `in` to `out` until the end of `in`.
Status Pump(const ByteReader& in, const ByteWriter& out) {
  std::vector<char> buffer(kIoChunk);
  for (;;) {
    auto n = in(buffer.data(), buffer.size());
    if (!n) return n.failure();
    if (*n == 0) return Ok();
    if (auto written = out(std::string_view(buffer.data(), *n)); !written) return written.failure();
  }
}

Failure StepFailed(std::string_view reason, std::string_view step, std::string_view what,
                   const std::string& detail) {
  std::string message = std::string(step) + " failed for " + std::string(what);
  if (!detail.empty()) message += ": " + detail;
  return Failure::Transient(std::string(reason), std::move(message));
}

// A Failure from another layer, its message prefixed with the step.
Failure InStep(std::string_view step, Failure failure) {
  failure.message = std::string(step) + ": " + failure.message;
  return failure;
}

std::string EscapeIdentifier(PGconn* conn, const std::string& name) {
  const pq::Text escaped(PQescapeIdentifier(conn, name.data(), name.size()));
  return escaped ? std::string(escaped.get()) : std::string();
}

// The user tables of the session's database (ordinary tables and partitions, outside the
// system schemas and not part of an extension), each counted with `FROM ONLY` (a parent's count
// would include its children's rows).
Outcome<TableRows> CountRows(PGconn* conn, const Scrubber& scrub) {
  static constexpr std::string_view kTables = R"sql(
SELECT n.nspname, c.relname FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r'
   AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
                      AND d.deptype = 'e')
 ORDER BY 1, 2)sql";
  auto tables = pq::ExecParams(conn, kTables, std::vector<std::string>{}, scrub);
  if (!tables) return tables.failure();
  TableRows rows;
  const PGresult* result = tables->get();
  for (int i = 0; i < PQntuples(result); ++i) {
    const std::string schema = PQgetvalue(result, i, 0);
    const std::string table = PQgetvalue(result, i, 1);
    const std::string sql = "SELECT count(*) FROM ONLY " + EscapeIdentifier(conn, schema) + "." +
                            EscapeIdentifier(conn, table);
    auto count = pq::ExecParams(conn, sql, std::vector<std::string>{}, scrub);
    if (!count) return count.failure();
    rows[schema + "." + table] = std::strtoll(PQgetvalue(count->get(), 0, 0), nullptr, 10);
  }
  return rows;
}

Status MakeFolder(const std::string& folder) {
  std::error_code error;
  const std::filesystem::path path(folder);
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path(), error);
  if (mkdir(folder.c_str(), 0700) != 0 && errno != EEXIST) {
    return Failure::Transient("BackupDumpFailed",
                              "cannot create the backup folder " + folder + ": " + Errno(errno));
  }
  struct stat info {};
  if (stat(folder.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    return Failure::Stalled("BackupDumpFailed", "the backup folder " + folder + " is not a folder");
  }
  return Ok();
}

Status SyncFolder(const std::string& folder) {
  const Fd fd(open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0 || fsync(fd.get()) != 0) {
    return Failure::Transient("BackupIoFailed", "cannot sync the folder " + folder + ": " + Errno(errno));
  }
  return Ok();
}

// Feeds `file` (decrypted when `master_key` is set) to `tool`'s stdin, then waits for it.
// Returns the tool's exit status, or the input's failure (the tool killed first, so it never
// finishes on part of a file). A tool may stop reading before the end (`pg_restore --list` reads
// only the table of contents): the rest is still decrypted, into nothing, so every chunk's tag
// is checked whatever the tool read.
Outcome<int> FeedAndWait(Tool& tool, int file, const std::string& path, const std::string& backup_id,
                         const std::optional<Secret>& master_key) {
  Status fed = Ok();
  {
    const SigpipeBlocked sigpipe;
    const ByteReader reader = FdReader(file, path);
    bool tool_stopped_reading = false;
    const ByteWriter writer = [&](std::string_view bytes) -> Status {
      if (tool_stopped_reading) return Ok();
      while (!bytes.empty()) {
        const ssize_t n = write(tool.in(), bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EPIPE) {
          tool_stopped_reading = true;
          return Ok();
        }
        if (n < 0) {
          return Failure::Transient("BackupIoFailed", "cannot write the tool's input: " + Errno(errno));
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
      }
      return Ok();
    };
    if (master_key) {
      auto decrypted = DecryptBackup(*master_key, backup_id, reader, writer);
      if (!decrypted) fed = decrypted.failure();
    } else {
      fed = Pump(reader, writer);
    }
  }
  if (!fed) {
    tool.Kill();
    tool.Wait();
    return fed.failure();
  }
  return tool.Wait();
}

// Runs pg_restore on `path` (the file, or its decryption, on stdin) with `args`.
Status RunRestoreTool(const ToolContext& context, const std::string& pg_restore,
                      std::vector<std::string> args, const std::string& path,
                      const std::string& backup_id, const std::optional<Secret>& master_key,
                      std::string_view step, std::string_view reason, const Deadline& deadline,
                      int stdout_fd = ToolSpec::kDevNull) {
  const Fd file(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (file.get() < 0) {
    return StepFailed(reason, step, path, "cannot open it: " + Errno(errno));
  }
  auto err = context.dir.ScratchFile();
  if (!err) return err.failure();
  ToolSpec spec;
  spec.argv.push_back(pg_restore);
  for (auto& arg : args) spec.argv.push_back(std::move(arg));
  spec.env = context.env;
  spec.stdin_fd = master_key ? ToolSpec::kPipe : file.get();
  spec.stdout_fd = stdout_fd;
  spec.stderr_fd = err->get();
  spec.deadline = deadline.at;
  auto tool = Tool::Start(spec);
  if (!tool) return InStep(step, tool.failure());
  Outcome<int> status = master_key ? FeedAndWait(*tool, file.get(), path, backup_id, master_key)
                                   : Outcome<int>(tool->Wait());
  if (tool->timed_out()) return TimedOut(deadline, std::string(step) + " of " + path);
  if (!status) return InStep(std::string(step) + " of " + path, status.failure());
  if (*status != 0) {
    return StepFailed(reason, step, path,
                      "pg_restore " + DescribeExit(*status) + ": " + context.Stderr(err->get()));
  }
  return Ok();
}

Outcome<std::string> RunToolVersion(const ToolContext& context, const std::string& tool_path,
                                    const Deadline& deadline);

// `pg_dump --version`, asked once per binary: a process for every dump of a fleet's costs more
// than the answer is worth. Keyed by the path, its size and modification time, so a tool
// upgraded in place is asked again.
Outcome<std::string> ToolVersion(const ToolContext& context, const std::string& tool_path,
                                 const Deadline& deadline) {
  struct stat info {};
  std::string key = tool_path;
  if (stat(tool_path.c_str(), &info) == 0) {
    key += '\n' + std::to_string(info.st_size) + '\n' + std::to_string(info.st_mtim.tv_sec) + '.' +
           std::to_string(info.st_mtim.tv_nsec);
  }
  static std::mutex mutex;
  static std::map<std::string, std::string> known;
  {
    const std::lock_guard lock(mutex);
    if (const auto found = known.find(key); found != known.end()) return found->second;
  }
  auto version = RunToolVersion(context, tool_path, deadline);
  if (version) {
    const std::lock_guard lock(mutex);
    known[key] = *version;
  }
  return version;
}

Outcome<std::string> RunToolVersion(const ToolContext& context, const std::string& tool_path,
                                    const Deadline& deadline) {
  auto out = context.dir.ScratchFile();
  if (!out) return out.failure();
  ToolSpec spec;
  spec.argv = {tool_path, "--version"};
  spec.env = context.env;
  spec.stdout_fd = out->get();
  spec.deadline = deadline.at;
  auto tool = Tool::Start(spec);
  if (!tool) return tool.failure();
  const int status = tool->Wait();
  if (tool->timed_out()) return TimedOut(deadline, "pg_dump --version");
  std::string version = context.Stderr(out->get());
  if (status != 0) {
    return StepFailed("BackupToolMissing", "pg_dump --version", tool_path, DescribeExit(status));
  }
  return version;
}

// pg_restore's script begins with `SET lock_timeout = 0` (and `statement_timeout = 0`), which
// overrides whatever the connection asked for: a restore behind a session that holds a lock on
// one of its tables would wait forever. LockWatch, on its own thread and admin session, looks
// for the restore's session (by its application_name) waiting on a lock, and cancels its
// statement once it has waited `limit` on the same statement: pg_restore (--exit-on-error)
// then fails, and its single transaction rolls back.
class LockWatch {
 public:
  LockWatch(const Secret& admin_dsn, std::string admin_db, std::string application_name,
            std::chrono::milliseconds limit, const Scrubber& scrub)
      : admin_dsn_(admin_dsn),
        admin_db_(std::move(admin_db)),
        application_name_(std::move(application_name)),
        limit_(limit),
        scrub_(scrub) {
    if (limit_.count() > 0) thread_ = std::thread([this] { Run(); });
  }
  LockWatch(const LockWatch&) = delete;
  LockWatch& operator=(const LockWatch&) = delete;
  ~LockWatch() { Stop(); }

  void Stop() {
    {
      const std::lock_guard lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  /// After Stop: what was cancelled and why, or empty.
  [[nodiscard]] const std::string& cancelled() const { return cancelled_; }

 private:
  static constexpr std::chrono::milliseconds kPoll{100};

  void Run() {
    auto conn = pq::Connect(admin_dsn_, admin_db_, {}, scrub_, "the lock watch");
    if (!conn) return;  // no watch: the restore runs as it would without one
    static constexpr std::string_view kWaiting = R"sql(
SELECT a.pid::text, a.query_start::text,
       coalesce((SELECT string_agg(b.pid || ' (' || coalesce(b.usename, '?') || ', ' ||
                                   coalesce(b.state, '?') || ')', ', ')
                   FROM pg_catalog.pg_stat_activity b
                  WHERE b.pid = ANY (pg_catalog.pg_blocking_pids(a.pid))), '')
  FROM pg_catalog.pg_stat_activity a
 WHERE a.application_name = $1 AND a.wait_event_type = 'Lock')sql";
    std::string statement;  // pid and start of the statement seen waiting
    Clock::time_point since{};
    std::unique_lock lock(mutex_);
    while (!stop_) {
      lock.unlock();
      auto rows = pq::ExecParams(conn->get(), kWaiting, std::vector<std::string>{application_name_},
                                 scrub_);
      lock.lock();
      if (!rows) return;
      if (PQntuples(rows->get()) == 0) {
        statement.clear();
      } else {
        const std::string pid = PQgetvalue(rows->get(), 0, 0);
        const std::string seen = pid + "@" + PQgetvalue(rows->get(), 0, 1);
        if (seen != statement) {
          statement = seen;
          since = Clock::now();
        } else if (Clock::now() - since >= limit_) {
          const std::string blockers = PQgetvalue(rows->get(), 0, 2);
          cancelled_ = "waited more than " + std::to_string(limit_.count()) +
                       " ms for a lock held by " +
                       (blockers.empty() ? std::string("another session") : "pid " + blockers) +
                       ", and gave up";
          lock.unlock();
          (void)pq::ExecParams(conn->get(), "SELECT pg_catalog.pg_cancel_backend($1::int)",
                               std::vector<std::string>{pid}, scrub_);
          lock.lock();
          return;
        }
      }
      wake_.wait_for(lock, kPoll, [this] { return stop_; });
    }
  }

  const Secret& admin_dsn_;
  std::string admin_db_;
  std::string application_name_;
  std::chrono::milliseconds limit_;
  const Scrubber& scrub_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  std::string cancelled_;
  std::thread thread_;
};

// Whether `text` is 64 hex digits equal to `expected` (case aside).
bool SameDigest(std::string_view actual, std::string_view expected) {
  return actual.size() == expected.size() && Lower(actual) == Lower(expected);
}

}  // namespace

Outcome<ToolPaths> FindPostgresTools() {
  auto has_both = [](const std::string& bin) {
    return IsExecutable(bin + "/pg_dump") && IsExecutable(bin + "/pg_restore");
  };
  const std::string preferred = std::string(kDebianRoot) + "/" + std::string(kPreferredMajor) + "/bin";
  std::string chosen;
  if (has_both(preferred)) {
    chosen = preferred;
  } else {
    long best = -1;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(kDebianRoot, error)) {
      const std::string name = entry.path().filename().string();
      char* end = nullptr;
      const long major = std::strtol(name.c_str(), &end, 10);
      if (end == name.c_str() || *end != '\0') continue;
      const std::string bin = entry.path().string() + "/bin";
      if (major > best && has_both(bin)) {
        best = major;
        chosen = bin;
      }
    }
  }
  if (chosen.empty()) {
    return Failure::Stalled("BackupToolMissing",
                            "no pg_dump and pg_restore under " + std::string(kDebianRoot) +
                                "/<major>/bin (Debian's postgresql-client)");
  }
  return ToolPaths{chosen + "/pg_dump", chosen + "/pg_restore", chosen + "/psql"};
}

Outcome<ToolPaths> ResolveTools(const ToolPaths& paths) {
  ToolPaths resolved = paths;
  if (resolved.psql.empty() && !resolved.pg_restore.empty()) {
    const std::string beside =
        std::filesystem::path(resolved.pg_restore).parent_path().string() + "/psql";
    if (IsExecutable(beside)) resolved.psql = beside;
  }
  if (!resolved.pg_dump.empty() && !resolved.pg_restore.empty() && !resolved.psql.empty()) {
    return resolved;
  }
  auto found = FindPostgresTools();
  if (!found) return found.failure();
  if (resolved.pg_dump.empty()) resolved.pg_dump = found->pg_dump;
  if (resolved.pg_restore.empty()) resolved.pg_restore = found->pg_restore;
  if (resolved.psql.empty()) resolved.psql = found->psql;
  return resolved;
}

std::string TableRowsJson(const TableRows& rows) {
  boost::json::object object;
  for (const auto& [table, count] : rows) object[table] = count;
  return boost::json::serialize(object);
}

Outcome<TableRows> ParseTableRowsJson(const std::string& json) {
  auto invalid = [] {
    return Failure::Stalled("InvalidValue",
                            "table_rows_json: expected an object of table names and row counts");
  };
  boost::system::error_code error;
  const boost::json::value value = boost::json::parse(json, error);
  if (error || !value.is_object()) return invalid();
  TableRows rows;
  for (const auto& [key, count] : value.as_object()) {
    if (!count.is_int64() && !count.is_uint64()) return invalid();
    const std::int64_t n = count.is_int64() ? count.as_int64()
                                            : static_cast<std::int64_t>(count.as_uint64());
    if (n < 0) return invalid();
    rows[std::string(key)] = n;
  }
  return rows;
}

namespace {

// Dump's steps; `step` says which one runs, for a deadline's message.
Outcome<DumpResult> DumpWithin(const DumpRequest& request, Clock::time_point start,
                               const Deadline& deadline, std::string& step) {
  const std::string what = "database " + request.database;
  constexpr std::string_view kReason = "BackupDumpFailed";
  if (request.backup_id.empty() || request.backup_id.find('/') != std::string::npos ||
      request.backup_id.front() == '.') {
    return Failure::Stalled("InvalidValue", "backup id \"" + request.backup_id +
                                                "\" cannot be a file name");
  }
  auto tools = ResolveTools(request.tools);
  if (!tools) return tools.failure();
  auto context_made = MakeToolContext(request.admin_dsn, request.master_key);
  if (!context_made) return InStep("prepare", context_made.failure());
  const ToolContext& context = **context_made;
  if (auto folder = MakeFolder(request.folder); !folder) return folder.failure();

  DumpResult result;
  step = "pg_dump --version";
  auto version = ToolVersion(context, tools->pg_dump, deadline);
  if (!version) return version.failure();
  result.tool_version = *version;

  // The snapshot: opened, exported, counted; held until pg_dump is done with it. With a
  // deadline, its statements may not outlast it either.
  step = "connect to " + what;
  const std::string options = pq::SessionOptions(
      deadline.Set() ? deadline.Remaining() : std::chrono::milliseconds(0), request.lock_timeout);
  const std::string connect_timeout = std::to_string(
      deadline.Set() ? std::min<long long>(30, deadline.Remaining().count() / 1000 + 1) : 30);
  const std::array<pq::ConnectParam, 3> params{
      pq::ConnectParam{"options", options.c_str()},
      pq::ConnectParam{"application_name", "tenant-master-backup"},
      pq::ConnectParam{"connect_timeout", connect_timeout.c_str()}};
  auto conn = pq::Connect(request.admin_dsn, request.database, params, context.scrub,
                          "the cluster's admin connection to " + what);
  if (!conn) return InStep("connect", conn.failure());
  PGconn* session = conn->get();
  if (const char* server = PQparameterStatus(session, "server_version"); server != nullptr) {
    result.server_version = server;
  }
  auto begun = pq::ExecParams(session, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
                              std::vector<std::string>{}, context.scrub);
  if (!begun) return InStep("snapshot of " + what, begun.failure());
  auto snapshot = pq::ExecParams(session, "SELECT pg_catalog.pg_export_snapshot()",
                                 std::vector<std::string>{}, context.scrub);
  if (!snapshot) return InStep("snapshot of " + what, snapshot.failure());
  const std::string snapshot_id = PQgetvalue(snapshot->get(), 0, 0);
  step = "count rows of " + what;
  auto rows = CountRows(session, context.scrub);
  if (!rows) return InStep("count rows of " + what, rows.failure());
  result.table_rows = std::move(*rows);
  result.table_rows_json = TableRowsJson(result.table_rows);

  // pg_dump into the partial file, removed on every path but success.
  const std::string partial = request.folder + "/." + request.backup_id + ".partial";
  const std::string final_path =
      request.folder + "/" + request.backup_id + (request.master_key ? ".dump.enc" : ".dump");
  unlink(partial.c_str());  // a leftover of an interrupted attempt at the same id
  struct PartialGuard {
    std::string path;
    bool keep = false;
    ~PartialGuard() {
      if (!keep) unlink(path.c_str());
    }
  } guard{partial};
  const Fd file(open(partial.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (file.get() < 0) {
    return StepFailed(kReason, "create the file", partial, Errno(errno));
  }

  auto conninfo = context.Conninfo(request.database, "");
  if (!conninfo) return conninfo.failure();
  auto err = context.dir.ScratchFile();
  if (!err) return err.failure();
  ToolSpec spec;
  spec.argv = {tools->pg_dump, "--format=custom", "--snapshot=" + snapshot_id, "--no-password",
               "--lock-wait-timeout=" + std::to_string(request.lock_timeout.count()) + "ms",
               "--dbname=" + *conninfo};
  if (request.compress_level >= 0) {
    spec.argv.push_back("--compress=" + std::to_string(std::min(request.compress_level, 9)));
  }
  spec.env = context.env;
  spec.stdout_fd = ToolSpec::kPipe;
  spec.stderr_fd = err->get();
  spec.deadline = deadline.at;
  step = "pg_dump of " + what;
  auto tool = Tool::Start(spec);
  if (!tool) return InStep("pg_dump", tool.failure());

  Sha256Stream sha;
  std::uint64_t size = 0;
  const ByteWriter to_file = [&](std::string_view bytes) -> Status {
    sha.Update(bytes);
    size += bytes.size();
    return WriteAll(file.get(), bytes, partial);
  };
  const ByteReader from_tool = FdReader(tool->out(), "pg_dump's output");
  Status streamed = request.master_key
                        ? EncryptBackup(*request.master_key, request.backup_id, from_tool, to_file)
                        : Pump(from_tool, to_file);
  if (!streamed) tool->Kill();
  const int status = tool->Wait();
  conn->reset();  // the snapshot is no longer needed
  if (tool->timed_out()) return TimedOut(deadline, step);
  // Our side first: a write that failed (a full disk) killed the tool, whose status says only
  // that.
  if (!streamed) return InStep("pg_dump of " + what, streamed.failure());
  if (status != 0) {
    return StepFailed(kReason, "pg_dump", what,
                      "pg_dump " + DescribeExit(status) + ": " + context.Stderr(err->get()));
  }
  step = "fsync of " + partial;
  if (fsync(file.get()) != 0) return StepFailed(kReason, "fsync", partial, Errno(errno));

  // Read back: the table of contents must be whole.
  step = "read back (pg_restore --list)";
  if (auto listed = RunRestoreTool(context, tools->pg_restore, {"--list"}, partial,
                                   request.backup_id, request.master_key, step, kReason, deadline);
      !listed) {
    return listed.failure();
  }
  if (rename(partial.c_str(), final_path.c_str()) != 0) {
    return StepFailed(kReason, "rename", partial, Errno(errno));
  }
  guard.keep = true;
  if (auto synced = SyncFolder(request.folder); !synced) return synced.failure();

  result.path = final_path;
  result.size = size;
  result.sha256 = sha.HexDigest();
  if (request.master_key) result.key_id = BackupKeyId(*request.master_key);
  result.duration = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  return result;
}

}  // namespace

Outcome<DumpResult> Dump(const DumpRequest& request) {
  const Clock::time_point start = Clock::now();
  const Deadline deadline = Deadline::After(start, request.deadline);
  std::string step = "prepare";
  auto dumped = DumpWithin(request, start, deadline, step);
  // Whatever failed past the deadline failed because of it (a tool killed, a statement
  // cancelled by statement_timeout): said so, naming the step. The partial file is gone.
  if (!dumped && dumped.failure().reason != "BackupTimedOut" && deadline.Passed()) {
    return TimedOut(deadline, step);
  }
  return dumped;
}

Status CheckFileSha256(const std::string& file, const std::string& expected) {
  const Fd fd(open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    return Failure::Stalled("BackupFileMissing",
                            "cannot open the backup file " + file + ": " + Errno(errno));
  }
  auto digest = FileSha256(fd.get(), file);
  if (!digest) return digest.failure();
  if (!SameDigest(*digest, expected)) {
    return Failure::Stalled("BackupChecksumMismatch",
                            "checksum mismatch: the backup file " + file + " has SHA-256 " +
                                *digest +
                                ", the catalog says " + expected +
                                ": it was altered or damaged; nothing was restored");
  }
  return Ok();
}

namespace {

// The scratch databases and restore logins this process is using now. The start-of-term sweep
// (DropScratchDatabases) removes what a crash left and must spare these: a move or a restore
// started in the same term may already be running when the sweep lists the cluster. A name is
// added before it is created on the server and removed after it is dropped, so a sweep that
// lists it always finds it here while it is in use.
class LiveScratchNames {
 public:
  static LiveScratchNames& Process() {
    static LiveScratchNames names;
    return names;
  }
  void Add(const std::string& name) {
    const std::lock_guard lock(mutex_);
    names_.insert(name);
  }
  void Remove(const std::string& name) {
    const std::lock_guard lock(mutex_);
    names_.erase(name);
  }
  [[nodiscard]] bool Contains(const std::string& name) const {
    const std::lock_guard lock(mutex_);
    return names_.contains(name);
  }

 private:
  mutable std::mutex mutex_;
  std::set<std::string> names_;
};

// Holds a name in LiveScratchNames for its lifetime.
class LiveScratchName {
 public:
  explicit LiveScratchName(std::string name) : name_(std::move(name)) {
    LiveScratchNames::Process().Add(name_);
  }
  ~LiveScratchName() { LiveScratchNames::Process().Remove(name_); }
  LiveScratchName(const LiveScratchName&) = delete;
  LiveScratchName& operator=(const LiveScratchName&) = delete;

 private:
  std::string name_;
};

constexpr std::string_view kRestoreReason = "BackupRestoreFailed";
constexpr std::string_view kLedgerTable = "tenant_master.schema_migrations";

// A new 0600 file in the call's private folder.
Status WritePrivate(const std::string& path, std::string_view text) {
  const Fd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (fd.get() < 0) {
    return Failure::Transient("BackupIoFailed", "cannot create " + path + ": " + Errno(errno));
  }
  return WriteAll(fd.get(), text, path);
}

// The login a restore runs as: `tm_restore_<16 hex>`, LOGIN and nothing else, a random password
// (sent as a SCRAM verifier, given to pg_restore through a 0600 passfile). It is a member of the
// tenant role (pg_restore --role sets it; a `RESET ROLE` in the backup's code falls back to this
// login, never to the admin), or the owner of a scratch database. Dropped by Drop (or, after a
// crash, by DropScratchDatabases).
class RestoreLogin {
 public:
  static Outcome<RestoreLogin> Create(PGconn* admin, const ToolContext& context,
                                      const std::string& member_of) {
    RestoreLogin login;
    login.admin_ = admin;
    login.scrub_ = &context.scrub;
    login.name_ = "tm_restore_" + crypto::Hex(crypto::RandomBytes(8));
    LiveScratchNames::Process().Add(login.name_);
    const Secret password(crypto::Hex(crypto::RandomBytes(24)));
    const pq::Text verifier(PQencryptPasswordConn(admin, password.Reveal().c_str(),
                                                  login.name_.c_str(), "scram-sha-256"));
    if (!verifier) {
      return Failure::Transient("BackupRestoreFailed",
                                "cannot make the restore login's password: " +
                                    OneLine(PQerrorMessage(admin)));
    }
    const pq::Text literal(PQescapeLiteral(admin, verifier.get(), std::strlen(verifier.get())));
    const std::string id = EscapeIdentifier(admin, login.name_);
    std::string sql = "CREATE ROLE " + id +
                      " LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS "
                      "INHERIT PASSWORD " +
                      std::string(literal ? literal.get() : "NULL");
    auto created = pq::ExecParams(admin, sql, std::vector<std::string>{}, context.scrub);
    if (!created) return InStep("create the restore login", created.failure());
    login.created_ = true;
    if (!member_of.empty()) {
      auto granted = pq::ExecParams(
          admin, "GRANT " + EscapeIdentifier(admin, member_of) + " TO " + id,
          std::vector<std::string>{}, context.scrub);
      if (!granted) return InStep("let the restore login become role " + member_of, granted.failure());
    }
    login.passfile_ = context.dir.path() + "/pgpass-" + login.name_;
    if (auto written = WritePrivate(login.passfile_, "*:*:*:" + login.name_ + ":" +
                                                         PassfileField(password.Reveal()) + "\n");
        !written) {
      return written.failure();
    }
    return login;
  }

  RestoreLogin() = default;
  RestoreLogin(RestoreLogin&& other) noexcept { *this = std::move(other); }
  RestoreLogin& operator=(RestoreLogin&& other) noexcept {
    std::swap(admin_, other.admin_);
    std::swap(scrub_, other.scrub_);
    std::swap(name_, other.name_);
    std::swap(passfile_, other.passfile_);
    std::swap(created_, other.created_);
    return *this;
  }
  RestoreLogin(const RestoreLogin&) = delete;
  RestoreLogin& operator=(const RestoreLogin&) = delete;
  ~RestoreLogin() {
    (void)Drop();
    if (!name_.empty()) LiveScratchNames::Process().Remove(name_);
  }

  // A login that could not be dropped stays in LiveScratchNames until this object goes: the
  // next term's sweep removes it.
  Status Drop() {
    if (!created_) return Ok();
    created_ = false;
    auto dropped = pq::ExecParams(admin_, "DROP ROLE IF EXISTS " + EscapeIdentifier(admin_, name_),
                                  std::vector<std::string>{}, *scrub_);
    if (!dropped) return InStep("drop the restore login " + name_, dropped.failure());
    return Ok();
  }
  [[nodiscard]] const std::string& name() const { return name_; }
  [[nodiscard]] const std::string& passfile() const { return passfile_; }

 private:
  PGconn* admin_ = nullptr;
  const Scrubber* scrub_ = nullptr;
  std::string name_;
  std::string passfile_;
  bool created_ = false;
};

// What the operator's part of a backup held.
struct OperatorPart {
  std::vector<ExtensionDecl> extensions;
  CopyRows ledger;
  bool has_ledger = false;
};

// Reads the backup's table of contents and splits it (PlanTenantRestore); the operator's entries
// are printed as SQL by pg_restore and read, never run.
Outcome<OperatorPart> ReadBackupPlan(const RestoreRequest& request, const ToolContext& context,
                                     const ToolPaths& tools, const Deadline& deadline,
                                     TocPlan& plan) {
  auto toc_out = context.dir.ScratchFile();
  if (!toc_out) return toc_out.failure();
  if (auto listed = RunRestoreTool(context, tools.pg_restore, {"--list"}, request.file,
                                   request.backup_id, request.master_key,
                                   "read the table of contents", kRestoreReason, deadline,
                                   toc_out->get());
      !listed) {
    return listed.failure();
  }
  auto toc = ReadScratch(toc_out->get(), "the table of contents");
  if (!toc) return toc.failure();
  plan = PlanTenantRestore(*toc);
  OperatorPart part;
  part.has_ledger = plan.has_ledger_data;
  if (plan.operator_toc.empty()) return part;
  const std::string list = context.dir.path() + "/operator.toc";
  if (auto written = WritePrivate(list, plan.operator_toc); !written) return written.failure();
  auto sql_out = context.dir.ScratchFile();
  if (!sql_out) return sql_out.failure();
  if (auto printed = RunRestoreTool(context, tools.pg_restore, {"--use-list=" + list, "--file=-"},
                                    request.file, request.backup_id, request.master_key,
                                    "read the extensions and the migrations ledger",
                                    kRestoreReason, deadline, sql_out->get());
      !printed) {
    return printed.failure();
  }
  auto sql = ReadScratch(sql_out->get(), "pg_restore's output");
  if (!sql) return sql.failure();
  auto extensions = ParseCreateExtensions(*sql);
  if (!extensions) return extensions.failure();
  if (extensions->size() != plan.extension_lines.size()) {
    return Failure::Stalled("BackupRestoreFailed",
                            "the backup lists " + std::to_string(plan.extension_lines.size()) +
                                " extensions but creates " + std::to_string(extensions->size()));
  }
  part.extensions = std::move(*extensions);
  if (plan.has_ledger_data) {
    auto ledger = ParseCopyBlock(*sql, kLedgerTable);
    if (!ledger) return ledger.failure();
    part.ledger = std::move(*ledger);
  }
  return part;
}

// The extensions in the operator's schema, created by the admin in `target` (a session on it) by
// name, as the reconciler does; one in a schema of the tenant's goes back to the tenant's restore.
Status PrepareExtensions(PGconn* target, const std::string& role, const OperatorPart& part,
                         TocPlan& plan, const Scrubber& scrub) {
  bool schema_made = false;
  for (std::size_t i = 0; i < part.extensions.size(); ++i) {
    const ExtensionDecl& extension = part.extensions[i];
    if (extension.schema != kExtensionSchema) {
      plan.GiveBack(i);
      continue;
    }
    const std::string schema = EscapeIdentifier(target, std::string(kExtensionSchema));
    if (!schema_made) {
      std::string sql = "CREATE SCHEMA IF NOT EXISTS " + schema;
      auto made = pq::ExecParams(target, sql, std::vector<std::string>{}, scrub);
      if (!made) return InStep("create schema extensions", made.failure());
      if (!role.empty()) {
        auto usage = pq::ExecParams(target,
                                    "GRANT USAGE ON SCHEMA " + schema + " TO " +
                                        EscapeIdentifier(target, role),
                                    std::vector<std::string>{}, scrub);
        if (!usage) return InStep("grant usage on schema extensions", usage.failure());
      }
      schema_made = true;
    }
    auto created = pq::ExecParams(target,
                                  "CREATE EXTENSION IF NOT EXISTS " +
                                      EscapeIdentifier(target, extension.name) + " WITH SCHEMA " +
                                      schema,
                                  std::vector<std::string>{}, scrub);
    if (!created) return InStep("create extension " + extension.name, created.failure());
  }
  return Ok();
}

// Opens a transaction on `target` (the admin's session) that replaces the ledger's rows with the
// backup's, as parameters, in the columns both have; left open until the tenant's restore is
// done, then committed or rolled back with it.
Status StageLedger(PGconn* target, const CopyRows& ledger, const Scrubber& scrub) {
  auto columns = pq::ExecParams(
      target,
      "SELECT a.attname FROM pg_catalog.pg_attribute a "
      "WHERE a.attrelid = pg_catalog.to_regclass('tenant_master.schema_migrations') "
      "AND a.attnum > 0 AND NOT a.attisdropped",
      std::vector<std::string>{}, scrub);
  if (!columns) return InStep("read the migrations ledger's columns", columns.failure());
  if (PQntuples(columns->get()) == 0) {
    return Failure::Stalled("BackupRestoreFailed",
                            "the database has no migrations ledger (tenant_master."
                            "schema_migrations): let the workspace converge before restoring "
                            "into it");
  }
  std::vector<std::size_t> kept;
  std::string names;
  for (std::size_t i = 0; i < ledger.columns.size(); ++i) {
    for (int row = 0; row < PQntuples(columns->get()); ++row) {
      if (ledger.columns[i] != PQgetvalue(columns->get(), row, 0)) continue;
      kept.push_back(i);
      names += (names.empty() ? "" : ", ") + EscapeIdentifier(target, ledger.columns[i]);
    }
  }
  auto begun = pq::ExecParams(target, "BEGIN", std::vector<std::string>{}, scrub);
  if (!begun) return InStep("the migrations ledger", begun.failure());
  auto cleared = pq::ExecParams(target, "DELETE FROM tenant_master.schema_migrations",
                                std::vector<std::string>{}, scrub);
  if (!cleared) return InStep("the migrations ledger", cleared.failure());
  for (const auto& row : ledger.rows) {
    std::vector<std::optional<std::string>> values;
    std::string placeholders;
    std::string present;
    for (const std::size_t i : kept) {
      if (!row[i]) continue;  // no value: the column's default
      values.push_back(row[i]);
      placeholders += (placeholders.empty() ? "$" : ", $") + std::to_string(values.size());
      present += (present.empty() ? "" : ", ") + EscapeIdentifier(target, ledger.columns[i]);
    }
    if (values.empty()) continue;
    auto inserted = pq::ExecParams(target,
                                   "INSERT INTO tenant_master.schema_migrations (" + present +
                                       ") VALUES (" + placeholders + ")",
                                   values, scrub);
    if (!inserted) return InStep("the migrations ledger", inserted.failure());
  }
  return Ok();
}

}  // namespace

namespace {

// The tenant's objects in its database, dropped before the backup's SQL recreates what the backup
// has, in the same transaction: a restore gives the database the backup's objects, not those plus
// what was created after it (a table a migration added, which would otherwise survive an undo and
// make the migration fail when it runs again). Runs as the tenant role (the restore login may
// become it): its own schemas, and what it owns in `public` (pg_database_owner's schema). The
// operator's schemas (`tenant_master`, `extensions`) belong to the admin and are untouched. The
// names are gathered before the first drop, so a drop's CASCADE cannot make a later name
// unreadable; each drop says IF EXISTS for the ones a CASCADE already took.
std::string ClearTenantSql(PGconn* conn, const std::string& role) {
  std::string sql;
  if (!role.empty()) sql += "SET ROLE " + EscapeIdentifier(conn, role) + ";\n";
  sql += R"sql(DO $tenant_master_restore$
DECLARE
  me oid := (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = current_user);
  drops text[];
  statement text;
BEGIN
  SELECT coalesce(array_agg(d ORDER BY o), '{}') INTO drops FROM (
    SELECT 1 AS o, pg_catalog.format('DROP SCHEMA IF EXISTS %I CASCADE', nspname) AS d
      FROM pg_catalog.pg_namespace WHERE nspowner = me
    UNION ALL
    -- Tables before sequences: a column's own sequence (serial, identity) goes with its table.
    SELECT CASE relkind WHEN 'S' THEN 3 ELSE 2 END,
           pg_catalog.format('DROP %s IF EXISTS public.%I CASCADE',
                CASE relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                             WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'S' THEN 'SEQUENCE'
                             ELSE 'TABLE' END, relname)
      FROM pg_catalog.pg_class
     WHERE relnamespace = 'public'::pg_catalog.regnamespace AND relowner = me
       AND relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
    UNION ALL
    SELECT 4, 'DROP ROUTINE IF EXISTS ' || oid::pg_catalog.regprocedure::text || ' CASCADE'
      FROM pg_catalog.pg_proc
     WHERE pronamespace = 'public'::pg_catalog.regnamespace AND proowner = me
    UNION ALL
    SELECT 5, CASE t.typtype WHEN 'd' THEN 'DROP DOMAIN IF EXISTS ' ELSE 'DROP TYPE IF EXISTS ' END
              || t.oid::pg_catalog.regtype::text || ' CASCADE'
      FROM pg_catalog.pg_type t
     WHERE t.typnamespace = 'public'::pg_catalog.regnamespace AND t.typowner = me
       AND (t.typtype IN ('e', 'd', 'r')
            OR (t.typtype = 'c' AND (SELECT c.relkind FROM pg_catalog.pg_class c
                                      WHERE c.oid = t.typrelid) = 'c'))
  ) AS everything;
  FOREACH statement IN ARRAY drops LOOP
    EXECUTE statement;
  END LOOP;
END
$tenant_master_restore$;
)sql";
  return sql;
}

// The restore's SQL: pg_restore prints the tenant's entries of the backup as a script (its
// `--clean --if-exists` drops first), and psql runs `prefix` then that script as the restore
// login, all in one transaction that an error rolls back (ON_ERROR_STOP): the database is then as
// it was. Both run under the same deadline.
Status RunRestoreScript(const ToolContext& context, const ToolPaths& tools,
                        const std::string& conninfo, const std::string& prefix,
                        const std::string& list, const RestoreRequest& request,
                        const std::string& step, const Deadline& deadline) {
  auto err = context.dir.ScratchFile();
  if (!err) return err.failure();
  ToolSpec spec;
  spec.argv = {tools.psql,         "--no-psqlrc",       "--quiet",
               "--no-password",    "--single-transaction", "--set=ON_ERROR_STOP=1",
               "--dbname=" + conninfo, "--file=" + prefix, "--file=-"};
  spec.env = context.env;
  spec.stdin_fd = ToolSpec::kPipe;
  spec.stderr_fd = err->get();
  spec.deadline = deadline.at;
  auto psql = Tool::Start(spec);
  if (!psql) return InStep(step, psql.failure());
  Status printed = RunRestoreTool(context, tools.pg_restore,
                                  {"--clean", "--if-exists", "--no-owner", "--use-list=" + list,
                                   "--file=-"},
                                  request.file, request.backup_id, request.master_key, step,
                                  kRestoreReason, deadline, psql->in());
  psql->CloseIn();
  const int status = psql->Wait();
  if (psql->timed_out()) return TimedOut(deadline, step + " of " + request.file);
  if (status != 0) {
    // psql's own error comes first: pg_restore only saw its reader go away.
    return StepFailed(kRestoreReason, step, request.file,
                      "psql " + DescribeExit(status) + ": " + context.Stderr(err->get()));
  }
  return printed;
}

struct Restored {
  std::optional<std::int64_t> ledger_rows;  ///< the backup's ledger rows, when it had a ledger
};

// The restore proper. `target` is an admin session on the database; `login` runs pg_restore
// (with --role=<request.role> when set) on the tenant's entries only; the admin creates the
// operator's extensions by name and, with `apply_ledger`, replaces the ledger's rows in a
// transaction committed only after the tenant's restore committed.
Outcome<Restored> RestoreAs(const RestoreRequest& request, const ToolContext& context,
                            const ToolPaths& tools, const Deadline& deadline, PGconn* target,
                            const RestoreLogin& login, bool apply_ledger) {
  const std::string step = "restore into database " + request.target_database;
  TocPlan plan;
  auto part = ReadBackupPlan(request, context, tools, deadline, plan);
  if (!part) return part.failure();
  if (auto prepared = PrepareExtensions(target, request.role, *part, plan, context.scrub);
      !prepared) {
    return InStep(step, prepared.failure());
  }
  Restored result;
  if (part->has_ledger) result.ledger_rows = static_cast<std::int64_t>(part->ledger.rows.size());
  const bool stage = apply_ledger && part->has_ledger;
  if (stage) {
    if (auto staged = StageLedger(target, part->ledger, context.scrub); !staged) {
      (void)pq::ExecParams(target, "ROLLBACK", std::vector<std::string>{}, context.scrub);
      return InStep(step, staged.failure());
    }
  }
  const std::string list = context.dir.path() + "/tenant.toc";
  if (auto written = WritePrivate(list, plan.TenantToc()); !written) return written.failure();
  // Runs first, in the same transaction as the backup's SQL (docs/backups.md#restore).
  const std::string prefix = context.dir.path() + "/before.sql";
  if (auto written = WritePrivate(prefix, ClearTenantSql(target, request.role)); !written) {
    return written.failure();
  }
  const std::string application_name =
      "tenant-master-restore-" + crypto::Hex(crypto::RandomBytes(6));
  auto conninfo =
      context.Conninfo(request.target_database, "", application_name, login.name(), login.passfile());
  if (!conninfo) return conninfo.failure();
  const auto parts = pq::ParseDsn(request.admin_dsn);
  LockWatch watch(request.admin_dsn,
                  parts && !parts->dbname.empty() ? parts->dbname : std::string("postgres"),
                  application_name, request.lock_timeout, context.scrub);
  Status restored = RunRestoreScript(context, tools, *conninfo, prefix, list, request, step,
                                     deadline);
  watch.Stop();
  if (stage) {
    auto ended = pq::ExecParams(target, restored ? "COMMIT" : "ROLLBACK",
                                std::vector<std::string>{}, context.scrub);
    if (restored && !ended) {
      Failure failure = ended.failure();
      failure.kind = FailureKind::kTransient;
      failure.message = step + ": the tenant's objects were restored but the migrations "
                        "ledger's rows were not (" + failure.message +
                        "); restoring the backup again makes them agree";
      return failure;
    }
  }
  if (!restored && restored.failure().reason == "BackupTimedOut") {
    Failure failure = restored.failure();
    failure.message += " (its single transaction rolled back: the database is as it was)";
    return failure;
  }
  if (!restored && !watch.cancelled().empty()) {
    Failure failure = restored.failure();
    failure.reason = "BackupRestoreLockTimeout";
    failure.message = "restore into database " + request.target_database + " failed: it " +
                      watch.cancelled() + " (the database is as it was); " + failure.message;
    return failure;
  }
  if (!restored) return restored.failure();
  return result;
}

}  // namespace

Status Restore(const RestoreRequest& request) {
  const Deadline deadline = Deadline::After(Clock::now(), request.deadline);
  auto tools = ResolveTools(request.tools);
  if (!tools) return tools.failure();
  if (request.role.empty()) {
    return Failure::Stalled("InvalidValue",
                            "a restore names the role its objects belong to (RestoreRequest.role)");
  }
  if (auto checked = CheckFileSha256(request.file, request.expected_sha256); !checked) {
    return checked;
  }
  const std::string step = "restore into database " + request.target_database;
  if (deadline.Passed()) return TimedOut(deadline, "the checksum before the " + step);
  auto context_made = MakeToolContext(request.admin_dsn, request.master_key);
  if (!context_made) return InStep("prepare", context_made.failure());
  const ToolContext& context = **context_made;
  auto target = pq::Connect(request.admin_dsn, request.target_database, {}, context.scrub,
                            "the cluster's admin connection to database " +
                                request.target_database);
  if (!target) return InStep(step, target.failure());
  auto login = RestoreLogin::Create(target->get(), context, request.role);
  if (!login) return InStep(step, login.failure());
  auto restored = RestoreAs(request, context, *tools, deadline, target->get(), *login,
                            /*apply_ledger=*/true);
  Status dropped = login->Drop();
  if (!restored) return restored.failure();
  if (!dropped) return dropped.failure();
  return Ok();
}

Outcome<VerifyResult> VerifyByRestore(const VerifyRequest& request) {
  const Clock::time_point start = Clock::now();
  const Deadline deadline = Deadline::After(start, request.deadline);
  auto tools = ResolveTools(request.tools);
  if (!tools) return tools.failure();
  if (auto checked = CheckFileSha256(request.file, request.expected_sha256); !checked) {
    return checked.failure();
  }
  auto context_made = MakeToolContext(request.admin_dsn, request.master_key);
  if (!context_made) return InStep("verify: prepare", context_made.failure());
  const ToolContext& context = **context_made;
  const auto parts = pq::ParseDsn(request.admin_dsn);
  const std::string admin_db = parts && !parts->dbname.empty() ? parts->dbname : "postgres";

  VerifyResult result;
  result.scratch_database = "tm_verify_" + crypto::Hex(crypto::RandomBytes(8));
  const LiveScratchName in_use(result.scratch_database);
  auto admin = pq::Connect(request.admin_dsn, admin_db, {}, context.scrub,
                           "the cluster's admin connection");
  if (!admin) return InStep("verify: connect", admin.failure());
  // The scratch database belongs to a login of its own: the backup's code runs with no more
  // rights than it had in the tenant's database.
  auto login = RestoreLogin::Create(admin->get(), context, "");
  if (!login) return InStep("verify", login.failure());
  const std::string scratch = EscapeIdentifier(admin->get(), result.scratch_database);
  auto created = pq::ExecParams(admin->get(),
                                "CREATE DATABASE " + scratch + " OWNER " +
                                    EscapeIdentifier(admin->get(), login->name()),
                                std::vector<std::string>{}, context.scrub);
  if (!created) return InStep("verify: create the scratch database", created.failure());

  auto verdict = [&]() -> Status {
    if (deadline.Passed()) return TimedOut(deadline, "verify: create the scratch database");
    auto session = pq::Connect(request.admin_dsn, result.scratch_database, {}, context.scrub,
                               "the scratch database " + result.scratch_database);
    if (!session) return InStep("verify: connect", session.failure());
    RestoreRequest restore{request.admin_dsn,   request.file,         request.expected_sha256,
                           request.backup_id,   request.master_key,   result.scratch_database,
                           {},                  request.lock_timeout, request.tools};
    auto restored = RestoreAs(restore, context, *tools, deadline, session->get(), *login,
                              /*apply_ledger=*/false);
    if (!restored) return restored.failure();
    auto counted = CountRows(session->get(), context.scrub);
    if (!counted) return InStep("verify: count rows", counted.failure());
    result.restored_rows = std::move(*counted);
    if (restored->ledger_rows) {
      result.restored_rows[std::string(kLedgerTable)] = *restored->ledger_rows;
    }
    std::vector<std::string> differences;
    for (const auto& [table, expected] : request.expected_rows) {
      const auto found = result.restored_rows.find(table);
      if (found == result.restored_rows.end()) {
        differences.push_back(table + ": " + std::to_string(expected) +
                              " rows at dump time, missing after restore");
      } else if (found->second != expected) {
        differences.push_back(table + ": " + std::to_string(expected) + " rows at dump time, " +
                              std::to_string(found->second) + " after restore");
      }
    }
    for (const auto& [table, count] : result.restored_rows) {
      if (request.expected_rows.count(table) == 0) {
        differences.push_back(table + ": not counted at dump time, " + std::to_string(count) +
                              " rows after restore");
      }
    }
    if (!differences.empty()) {
      return Failure::Stalled("BackupVerifyFailed", "backup " + request.backup_id +
                                                        " restored with other row counts: " +
                                                        Join(differences, "; "));
    }
    return Ok();
  }();

  auto dropped = pq::ExecParams(admin->get(), "DROP DATABASE IF EXISTS " + scratch + " WITH (FORCE)",
                                std::vector<std::string>{}, context.scrub);
  Status login_dropped = dropped ? login->Drop() : Status(Ok());
  if (!verdict && verdict.failure().reason != "BackupTimedOut" && deadline.Passed()) {
    return TimedOut(deadline, "verify of backup " + request.backup_id);
  }
  if (!verdict) return verdict.failure();
  if (!dropped || !login_dropped) {
    Failure failure = dropped ? login_dropped.failure() : dropped.failure();
    failure.kind = FailureKind::kTransient;
    failure.reason = "ScratchDropFailed";
    failure.message = "verify: drop the scratch database " + result.scratch_database + ": " +
                      failure.message;
    return failure;
  }
  result.duration = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
  return result;
}

Status RemoveStaleWorkFolders(const std::string& temp_root) {
  const std::string root = temp_root.empty() ? TempRoot() : temp_root;
  std::vector<std::string> failed;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(root, error)) {
    const std::string name = entry.path().filename().string();
    if (name.compare(0, kWorkFolderPrefix.size(), kWorkFolderPrefix) != 0) continue;
    // tm-backup-<pid>-XXXXXX; a name without a pid (written before the pid was in it) is left.
    const std::string rest = name.substr(kWorkFolderPrefix.size());
    const auto dash = rest.find('-');
    if (dash == 0 || dash == std::string::npos || dash > 10 ||
        rest.find_first_not_of("0123456789") != dash) {
      continue;
    }
    const long pid = std::strtol(rest.substr(0, dash).c_str(), nullptr, 10);
    if (pid <= 0 || pid == getpid()) continue;
    struct stat info {};
    if (lstat(entry.path().c_str(), &info) != 0 || !S_ISDIR(info.st_mode) ||
        info.st_uid != geteuid()) {
      continue;
    }
    // Alive (or another user's, EPERM): kept. Only ESRCH says nobody has that pid.
    if (kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;
    std::error_code removed;
    std::filesystem::remove_all(entry.path(), removed);
    if (removed) failed.push_back(entry.path().string() + " (" + removed.message() + ")");
  }
  if (error && error != std::errc::no_such_file_or_directory) {
    return Failure::Transient("BackupCleanupFailed", "cannot read " + root + ": " + error.message());
  }
  if (!failed.empty()) {
    return Failure::Transient("BackupCleanupFailed",
                              "cannot remove a dead process's backup work folder: " +
                                  Join(failed, ", "));
  }
  return Ok();
}

Outcome<int> RemoveStalePartials(const std::string& backups_directory) {
  int removed = 0;
  std::vector<std::string> failed;
  std::error_code error;
  for (const auto& folder : std::filesystem::directory_iterator(backups_directory, error)) {
    std::error_code kind;
    if (!folder.is_directory(kind) || folder.is_symlink(kind)) continue;
    // A workspace's folder is named for it, and no workspace name starts with a dot; a dotted
    // folder belongs to someone else (a move's dumps, `.moves`, are the move runner's: a sweep
    // here once removed a running move's partial dump).
    if (folder.path().filename().string().starts_with('.')) continue;
    std::error_code listing;
    for (const auto& file : std::filesystem::directory_iterator(folder.path(), listing)) {
      const std::string name = file.path().filename().string();
      constexpr std::string_view kSuffix = ".partial";
      if (name.size() <= kSuffix.size() + 1 || name.front() != '.' ||
          name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) {
        continue;
      }
      if (unlink(file.path().c_str()) == 0) {
        ++removed;
      } else if (errno != ENOENT) {
        failed.push_back(file.path().string() + " (" + Errno(errno) + ")");
      }
    }
    if (listing) failed.push_back(folder.path().string() + " (" + listing.message() + ")");
  }
  if (error && error != std::errc::no_such_file_or_directory) {
    return Failure::Transient("BackupCleanupFailed",
                              "cannot read " + backups_directory + ": " + error.message());
  }
  if (!failed.empty()) {
    return Failure::Transient("BackupCleanupFailed",
                              "cannot remove an interrupted dump's partial file: " +
                                  Join(failed, ", "));
  }
  return removed;
}

Outcome<std::vector<std::string>> DropScratchDatabases(const Secret& admin_dsn) {
  Scrubber scrub;
  scrub.Add(admin_dsn);
  const auto parts = pq::ParseDsn(admin_dsn);
  if (!parts) return Failure::Stalled("InvalidDsn", "the cluster's admin DSN cannot be parsed");
  scrub.Add(parts->password);
  auto admin = pq::Connect(admin_dsn, parts->dbname.empty() ? "postgres" : parts->dbname, {}, scrub,
                           "the cluster's admin connection");
  if (!admin) return InStep("drop scratch databases: connect", admin.failure());
  // Exactly VerifyByRestore's names: `tm_verify_` and 16 lower hex digits.
  auto names = pq::ExecParams(admin->get(),
                              "SELECT datname FROM pg_catalog.pg_database "
                              "WHERE datname ~ '^tm_verify_[0-9a-f]{16}$' ORDER BY 1",
                              std::vector<std::string>{}, scrub);
  if (!names) return InStep("drop scratch databases: list", names.failure());
  std::vector<std::string> dropped;
  std::vector<std::string> failed;
  for (int i = 0; i < PQntuples(names->get()); ++i) {
    const std::string name = PQgetvalue(names->get(), i, 0);
    if (LiveScratchNames::Process().Contains(name)) continue;  // a verification running now
    auto drop = pq::ExecParams(admin->get(),
                               "DROP DATABASE IF EXISTS " + EscapeIdentifier(admin->get(), name) +
                                   " WITH (FORCE)",
                               std::vector<std::string>{}, scrub);
    if (drop) {
      dropped.push_back(name);
    } else {
      failed.push_back(name + " (" + drop.failure().message + ")");
    }
  }
  // Then the logins of restores a crash interrupted (RestoreLogin's names), whose databases
  // are gone by now.
  auto logins = pq::ExecParams(admin->get(),
                               "SELECT rolname FROM pg_catalog.pg_roles "
                               "WHERE rolname ~ '^tm_restore_[0-9a-f]{16}$' ORDER BY 1",
                               std::vector<std::string>{}, scrub);
  if (!logins) return InStep("drop restore logins: list", logins.failure());
  for (int i = 0; i < PQntuples(logins->get()); ++i) {
    const std::string name = PQgetvalue(logins->get(), i, 0);
    if (LiveScratchNames::Process().Contains(name)) continue;  // a restore running now
    auto drop = pq::ExecParams(admin->get(),
                               "DROP ROLE IF EXISTS " + EscapeIdentifier(admin->get(), name),
                               std::vector<std::string>{}, scrub);
    if (drop) {
      dropped.push_back(name);
    } else {
      failed.push_back(name + " (" + drop.failure().message + ")");
    }
  }
  if (!failed.empty()) {
    return Failure::Transient("ScratchDropFailed",
                              "cannot drop the scratch database or login " + Join(failed, ", "));
  }
  return dropped;
}

}  // namespace tmaster::backups
