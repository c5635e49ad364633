#pragma once
// A branch of a Git repository (docs/architecture.md#sources): cloned shallow, fetched every
// `interval` (±10 %) and at once on an accepted webhook (Wake). The git command runs with an
// argument vector and credentials in its environment only (git_repo.hpp).

#include <filesystem>
#include <memory>

#include "controller/sources/git_repo.hpp"
#include "controller/sources/source.hpp"

namespace tmaster::controller {

class GitSource final : public Source {
 public:
  /// `config` (with `git` set) must outlive the source; the checkout lives in `checkout`.
  GitSource(const manifests::SourceConfig& config, manifests::LoadOptions load,
            std::filesystem::path checkout, GitCredentials credentials);
  ~GitSource() override;

  [[nodiscard]] const std::string& Name() const override { return config_.name; }
  [[nodiscard]] std::string Kind() const override { return "git"; }
  /// Fetches; at the `last_applied` revision answers `unchanged` without parsing.
  Outcome<SourceRead> Read(const std::string& last_applied) override;
  [[nodiscard]] Duration PollInterval(Random& random) const override;
  [[nodiscard]] Duration RetryCap() const override;
  void WaitForChange(Duration limit) override { signal_.Wait(limit); }
  void Wake() override { signal_.Wake(); }
  void Interrupt() override { signal_.Interrupt(); }

 private:
  const manifests::SourceConfig& config_;
  manifests::LoadOptions load_;
  std::unique_ptr<GitRepo> repo_;
  WakeSignal signal_;
};

}  // namespace tmaster::controller
