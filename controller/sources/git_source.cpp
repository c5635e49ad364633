#include "controller/sources/git_source.hpp"

#include "controller/runtime/backoff.hpp"
#include "manifests/loader.hpp"

namespace tmaster::controller {

GitSource::GitSource(const manifests::SourceConfig& config, manifests::LoadOptions load,
                     std::filesystem::path checkout, GitCredentials credentials)
    : config_(config), load_(std::move(load)) {
  load_.parse_cache = manifests::MakeParseCache();
  GitRepoOptions git;
  git.url = config.git->url;
  git.branch = config.git->branch;
  git.checkout = std::move(checkout);
  git.timeout = config.git->timeout;
  git.credentials = std::move(credentials);
  repo_ = std::make_unique<GitRepo>(std::move(git));
  // Paths from manifests stay inside the checkout (`..` within the repository is fine).
  load_.root = repo_->checkout();
}

GitSource::~GitSource() = default;

Outcome<SourceRead> GitSource::Read(const std::string& last_applied) {
  Outcome<std::string> fetched = repo_->Sync();
  if (!fetched) return fetched.failure();
  SourceRead read;
  read.revision = *fetched;
  if (read.revision == last_applied) {
    read.unchanged = true;
    return read;
  }
  read.fleet = manifests::LoadPaths({repo_->checkout() / config_.git->path}, load_);
  return read;
}

Duration GitSource::PollInterval(Random& random) const {
  return Jittered(config_.git->interval, 0.1, random);
}

Duration GitSource::RetryCap() const {
  return config_.git->interval;
}

}  // namespace tmaster::controller
