#include "reconcilers/stacks/files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace tmaster::stacks::files {
namespace {

std::string ErrnoText(int error) { return std::strerror(error); }

Failure WriteFailed(const std::filesystem::path& path, const std::string& step, int error) {
  return Failure::Transient("StackWriteFailed",
                            "cannot " + step + " " + path.string() + ": " + ErrnoText(error));
}

// Owns a descriptor; closes it on every path.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  [[nodiscard]] int get() const { return fd_; }
  int Close() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

}  // namespace

Status SyncDirectory(const std::filesystem::path& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return WriteFailed(dir, "open folder", errno);
  if (::fsync(fd.get()) != 0) return WriteFailed(dir, "sync folder", errno);
  return Ok();
}

Status WriteAtomic(const std::filesystem::path& path, std::string_view content, mode_t mode) {
  const std::filesystem::path dir = path.parent_path().empty() ? "." : path.parent_path();
  std::string pattern = (dir / ("." + path.filename().string() + ".tmp-XXXXXX")).string();
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  // mkstemp creates the file O_EXCL with mode 0600 (before the umask): never wider than that.
  Fd fd(::mkstemp(name.data()));
  if (fd.get() < 0) return WriteFailed(path, "create a temporary file for", errno);
  const std::filesystem::path temp(name.data());
  auto fail = [&](const std::string& step, int error) {
    ::unlink(temp.c_str());
    return WriteFailed(path, step, error);
  };
  if (::fchmod(fd.get(), mode) != 0) return fail("set the mode of", errno);
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd.get(), content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("write", errno);
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd.get()) != 0) return fail("sync", errno);
  if (fd.Close() != 0) return fail("close", errno);
  if (::rename(temp.c_str(), path.c_str()) != 0) return fail("rename into", errno);
  return SyncDirectory(dir);
}

Outcome<std::string> Read(const std::filesystem::path& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    return Failure::Transient("StackReadFailed",
                              "cannot open " + path.string() + ": " + ErrnoText(errno));
  }
  std::string out;
  std::array<char, 8192> buffer{};
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      return Failure::Transient("StackReadFailed",
                                "cannot read " + path.string() + ": " + ErrnoText(errno));
    }
    if (n == 0) break;
    out.append(buffer.data(), static_cast<std::size_t>(n));
  }
  return out;
}

}  // namespace tmaster::stacks::files
