#pragma once
// A RolloutControl (controller/daemon/rollout_control.hpp) for the API's tests: it answers what
// the test set (a status text per product, a summary per product, one failure for the next
// calls) and records what it was asked. No rollout logic: the routes only pass its answers on.

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "controller/daemon/rollout_control.hpp"

namespace tmaster::testing {

class FakeRolloutControl final : public controller::RolloutControl {
 public:
  struct CommandCall {
    std::string product;
    std::string verb;
    std::string who;
  };

  Outcome<std::string> StatusJson(const std::string& product) const override {
    const std::lock_guard lock(mutex_);
    status_asked_.push_back(product);
    if (fail_) return *fail_;
    const auto found = status_.find(product);
    if (found == status_.end()) {
      return Failure::Stalled("NotFound", "no source declares product \"" + product + "\"");
    }
    return found->second;
  }

  std::string SummaryJson(const std::string& product) const override {
    const std::lock_guard lock(mutex_);
    const auto found = summary_.find(product);
    return found == summary_.end() ? "null" : found->second;
  }

  Outcome<std::string> Command(const std::string& product, const std::string& verb,
                               const std::string& who) override {
    const std::lock_guard lock(mutex_);
    commands_.push_back({product, verb, who});
    if (fail_) return *fail_;
    const auto found = status_.find(product);
    if (found == status_.end()) {
      return Failure::Stalled("NotFound", "product \"" + product + "\" never had a rollout");
    }
    return found->second;
  }

  /// What StatusJson and Command answer for `product` (Command: the "new" status).
  void SetStatus(const std::string& product, std::string json) {
    const std::lock_guard lock(mutex_);
    status_[product] = std::move(json);
  }
  void SetSummary(const std::string& product, std::string json) {
    const std::lock_guard lock(mutex_);
    summary_[product] = std::move(json);
  }
  /// Every later StatusJson and Command fails with `failure` (nullopt: none does).
  void Fail(std::optional<Failure> failure) {
    const std::lock_guard lock(mutex_);
    fail_ = std::move(failure);
  }
  [[nodiscard]] std::vector<CommandCall> Commands() const {
    const std::lock_guard lock(mutex_);
    return commands_;
  }
  [[nodiscard]] std::vector<std::string> StatusAsked() const {
    const std::lock_guard lock(mutex_);
    return status_asked_;
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::string> status_;
  std::map<std::string, std::string> summary_;
  std::optional<Failure> fail_;
  std::vector<CommandCall> commands_;
  mutable std::vector<std::string> status_asked_;
};

}  // namespace tmaster::testing
