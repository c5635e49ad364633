#pragma once
// ScriptedSource: a Source (controller/sources/source.hpp) that answers Read from a script a test
// writes, so the runner, the sync and the daemon can be driven through failed fetches and new
// revisions without git or a folder. The last answer repeats once the script is used up.

#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "controller/sources/source.hpp"
#include "manifests/loader.hpp"

namespace tmaster::testing {

class ScriptedSource final : public controller::Source {
 public:
  explicit ScriptedSource(std::string name = "upstream") : name_(std::move(name)) {}

  [[nodiscard]] const std::string& Name() const override { return name_; }
  [[nodiscard]] std::string Kind() const override { return "git"; }
  Outcome<controller::SourceRead> Read(const std::string& last_applied) override {
    const std::lock_guard lock(mutex_);
    asked_with_.push_back(last_applied);
    Outcome<controller::SourceRead> next = script_.front();
    if (script_.size() > 1) script_.pop_front();
    ++reads_;
    if (next && !next->revision.empty() && next->revision == last_applied) {
      controller::SourceRead unchanged;
      unchanged.revision = last_applied;
      unchanged.unchanged = true;
      return unchanged;
    }
    return next;
  }
  [[nodiscard]] controller::Duration PollInterval(controller::Random&) const override {
    return poll_;
  }
  [[nodiscard]] controller::Duration RetryCap() const override { return poll_; }
  void WaitForChange(controller::Duration limit) override { signal_.Wait(limit); }
  void Wake() override { signal_.Wake(); }
  void Interrupt() override { signal_.Interrupt(); }

  /// Appends answers; a Wake makes a waiting runner read the next one now.
  void Then(Outcome<controller::SourceRead> answer) {
    const std::lock_guard lock(mutex_);
    script_.push_back(std::move(answer));
  }
  /// Replaces the script.
  void Script(std::deque<Outcome<controller::SourceRead>> script) {
    const std::lock_guard lock(mutex_);
    script_ = std::move(script);
  }
  void SetPoll(controller::Duration poll) { poll_ = poll; }
  [[nodiscard]] int Reads() const {
    const std::lock_guard lock(mutex_);
    return reads_;
  }
  [[nodiscard]] std::vector<std::string> AskedWith() const {
    const std::lock_guard lock(mutex_);
    return asked_with_;
  }

  /// A read at `revision` of `yaml` (documents of one file named fleet.yaml).
  static controller::SourceRead ReadOf(const std::string& revision, const std::string& yaml) {
    controller::SourceRead read;
    read.revision = revision;
    read.fleet = manifests::LoadText(yaml, "fleet.yaml", ".", {});
    return read;
  }

 private:
  std::string name_;
  mutable std::mutex mutex_;
  std::deque<Outcome<controller::SourceRead>> script_;
  std::vector<std::string> asked_with_;
  int reads_ = 0;
  controller::WakeSignal signal_;
  controller::Duration poll_ = std::chrono::hours(1);
};

}  // namespace tmaster::testing
