#include "controller/cmd/logging.hpp"

#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <string_view>

#include "common/scrub.hpp"

namespace tmaster::controller {
namespace {

// A formatter around spdlog's: the line is formatted first, so secrets in the arguments are
// visible to the scrub, whatever the pattern puts around them.
class ScrubbingFormatter final : public spdlog::formatter {
 public:
  explicit ScrubbingFormatter(std::unique_ptr<spdlog::formatter> inner) : inner_(std::move(inner)) {}

  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    spdlog::memory_buf_t line;
    inner_->format(msg, line);
    const std::string scrubbed = ScrubProcessSecrets(std::string_view(line.data(), line.size()));
    dest.append(scrubbed.data(), scrubbed.data() + scrubbed.size());
  }

  [[nodiscard]] std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<ScrubbingFormatter>(inner_->clone());
  }

 private:
  std::unique_ptr<spdlog::formatter> inner_;
};

}  // namespace

void InstallScrubbingLogger(const std::string& pattern) {
  spdlog::set_formatter(std::make_unique<ScrubbingFormatter>(
      std::make_unique<spdlog::pattern_formatter>(pattern)));
}

}  // namespace tmaster::controller
