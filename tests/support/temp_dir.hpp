#pragma once
// TempDir: the one temporary directory of the suite. A fresh empty folder under the system temp
// folder (mkdtemp: unique even across test binaries that CTest runs in parallel), removed with
// everything in it by the destructor, so a failed assertion leaves nothing behind.

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>

namespace tmaster::testing {

class TempDir {
 public:
  /// Creates the folder; throws std::runtime_error when it cannot.
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "tm-test.XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("TempDir: mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;  // a test's leftovers must not turn a pass into a crash
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

  /// Writes `text` to `relative` (creating its folders, replacing a file already there) and
  /// returns the full path; throws std::runtime_error when the file cannot be written.
  std::filesystem::path Write(const std::string& relative, std::string_view text) const {
    const std::filesystem::path file = path_ / relative;
    std::filesystem::create_directories(file.parent_path());
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    out.close();
    if (!out) throw std::runtime_error("TempDir: cannot write " + file.string());
    return file;
  }

  /// Creates `relative` (and its parents) and returns the full path.
  std::filesystem::path Mkdir(const std::string& relative) const {
    const std::filesystem::path dir = path_ / relative;
    std::filesystem::create_directories(dir);
    return dir;
  }

 private:
  std::filesystem::path path_;
};

}  // namespace tmaster::testing
