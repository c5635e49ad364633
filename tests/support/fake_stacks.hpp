#pragma once

// FakeStacks: an in-memory StackGateway for the pure tests (fakes stay small:
// docs/architecture.md#interfaces-adapters-and-fakes). Stacks by id; ids from one monotonic
// sequence, never reused; every write (create, update, a drift helper that edits the file or Env)
// ticks UpdateDate, start/stop do not (as Portainer). An update deploys, so it leaves the stack
// active; a create honours `active` (the Portainer adapter stops right after creating). A create
// that finds a stack of that name on the endpoint adopts it only when it carries our marker, else
// it is Stalled `StackConflict`. Tests change the state directly to simulate drift and can make the
// N-th call (of any kind) fail.

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "common/outcome.hpp"
#include "reconcilers/stacks/gateway.hpp"
#include "reconcilers/stacks/model.hpp"
#include "reconcilers/stacks/plan.hpp"

namespace tmaster::testing {

class FakeStacks : public stacks::StackGateway {
 public:
  struct Stored {
    stacks::ObservedStack stack;
    std::string file;
  };

  // --- the gateway ---

  Outcome<std::vector<stacks::ObservedStack>> List(int endpoint) override {
    std::lock_guard lock(mutex_);
    ++list_calls_;
    if (auto failure = Fail()) return *failure;
    std::vector<stacks::ObservedStack> out;
    for (const auto& [id, stored] : stacks_) {
      if (stored.stack.endpoint == endpoint) out.push_back(stored.stack);
    }
    return out;
  }

  Outcome<std::string> File(const stacks::ObservedStack& stack) override {
    std::lock_guard lock(mutex_);
    ++file_calls_;
    if (auto failure = Fail()) return *failure;
    const auto it = stacks_.find(stack.id);
    if (it == stacks_.end()) return NotFound(stack.id);
    return it->second.file;
  }

  Outcome<stacks::ApplyResult> Apply(const stacks::Action& action) override {
    std::lock_guard lock(mutex_);
    ++apply_calls_;
    if (auto failure = Fail()) return *failure;
    return std::visit([this](const auto& a) { return Do(a); }, action);
  }

  /// What SetEndpoint said of `endpoint`; else a standalone engine. FailCall does not touch it.
  Outcome<stacks::EndpointInfo> Inspect(int endpoint) override {
    std::lock_guard lock(mutex_);
    ++inspect_calls_;
    const auto it = endpoints_.find(endpoint);
    if (it == endpoints_.end()) return stacks::EndpointInfo{};
    return it->second;
  }

  // --- knobs and drift ---

  /// What Inspect answers for `endpoint` from now on (a swarm manager, or a failure: down).
  void SetEndpoint(int endpoint, Outcome<stacks::EndpointInfo> answer) {
    std::lock_guard lock(mutex_);
    endpoints_.insert_or_assign(endpoint, std::move(answer));
  }

  /// The n-th call from now on (1 = the next one), of any kind, fails Transient.
  void FailCall(int n) {
    std::lock_guard lock(mutex_);
    fail_at_ = calls_ + n;
  }

  /// A stack somebody else made: `env` decides whether it carries a marker.
  stacks::StackId AddStack(int endpoint, const std::string& name, std::vector<stacks::EnvVar> env,
               std::string file, int status = 1) {
    std::lock_guard lock(mutex_);
    Stored stored;
    stored.stack.id = next_id_++;
    stored.stack.name = name;
    stored.stack.endpoint = endpoint;
    stored.stack.status = status;
    stored.stack.update_date = ++clock_;
    stored.stack.env = std::move(env);
    stored.stack.workspace = stacks::MarkerOf(stored.stack.env);
    stored.file = std::move(file);
    const stacks::StackId id = stored.stack.id;
    stacks_[id] = std::move(stored);
    return id;
  }
  /// The file edited in Portainer's editor (an update: UpdateDate moves, the stack redeploys).
  void EditFile(stacks::StackId id, std::string file) {
    std::lock_guard lock(mutex_);
    auto& stored = stacks_.at(id);
    stored.file = std::move(file);
    stored.stack.update_date = ++clock_;
    stored.stack.status = 1;
  }
  /// The Env replaced by hand (an update); nullopt models Portainer's `"Env": null`.
  void SetEnv(stacks::StackId id, std::optional<std::vector<stacks::EnvVar>> env) {
    std::lock_guard lock(mutex_);
    auto& stored = stacks_.at(id);
    stored.stack.env = env ? std::move(*env) : std::vector<stacks::EnvVar>{};
    stored.stack.workspace = stacks::MarkerOf(stored.stack.env);
    stored.stack.update_date = ++clock_;
    stored.stack.status = 1;
  }
  void SetStatus(stacks::StackId id, int status) {
    std::lock_guard lock(mutex_);
    stacks_.at(id).stack.status = status;
  }
  void Remove(stacks::StackId id) {
    std::lock_guard lock(mutex_);
    stacks_.erase(id);
  }

  // --- inspection ---

  [[nodiscard]] std::map<stacks::StackId, Stored> Stacks() const {
    std::lock_guard lock(mutex_);
    return stacks_;
  }
  [[nodiscard]] std::optional<Stored> Find(int endpoint, const std::string& name) const {
    std::lock_guard lock(mutex_);
    for (const auto& [id, stored] : stacks_) {
      if (stored.stack.endpoint == endpoint && stored.stack.name == name) return stored;
    }
    return std::nullopt;
  }
  [[nodiscard]] int ListCalls() const { return Count(list_calls_); }
  [[nodiscard]] int FileCalls() const { return Count(file_calls_); }
  [[nodiscard]] int ApplyCalls() const { return Count(apply_calls_); }
  [[nodiscard]] int InspectCalls() const { return Count(inspect_calls_); }
  void ResetCounts() {
    std::lock_guard lock(mutex_);
    list_calls_ = file_calls_ = apply_calls_ = 0;
  }

 private:
  int Count(const int& counter) const {
    std::lock_guard lock(mutex_);
    return counter;
  }

  std::optional<Failure> Fail() {
    ++calls_;
    if (fail_at_ && calls_ == *fail_at_) {
      fail_at_.reset();
      return Failure::Transient("FakeFailure",
                                "injected failure of call " + std::to_string(calls_));
    }
    return std::nullopt;
  }

  static Failure NotFound(stacks::StackId id) {
    return Failure::Transient("StackNotFound", "no stack with id " + std::to_string(id));
  }

  stacks::ApplyResult Result(const Stored& stored, const std::string& detail) const {
    return {stored.stack.id, stored.stack.update_date, 1, detail};
  }

  Outcome<stacks::ApplyResult> Do(const stacks::CreateStack& a) {
    for (auto& [id, stored] : stacks_) {
      if (stored.stack.endpoint != a.stack.endpoint || stored.stack.name != a.stack.name) continue;
      if (stored.stack.workspace != a.stack.workspace) {
        return Failure::Stalled("StackConflict",
                                "stack \"" + a.stack.name + "\" is held by somebody else");
      }
      Write(stored, a.stack);
      stored.stack.status = a.stack.active ? 1 : 2;
      return Result(stored, "adopted");
    }
    Stored stored;
    stored.stack.id = next_id_++;
    stored.stack.name = a.stack.name;
    stored.stack.endpoint = a.stack.endpoint;
    Write(stored, a.stack);
    stored.stack.status = a.stack.active ? 1 : 2;
    const stacks::StackId id = stored.stack.id;
    stacks_[id] = std::move(stored);
    return Result(stacks_[id], "created");
  }

  Outcome<stacks::ApplyResult> Do(const stacks::UpdateStack& a) {
    const auto it = stacks_.find(a.id);
    if (it == stacks_.end()) return NotFound(a.id);
    Write(it->second, a.stack);
    it->second.stack.status = 1;  // an update deploys
    return Result(it->second, "updated");
  }

  Outcome<stacks::ApplyResult> SetStatusOf(stacks::StackId id, int status) {
    const auto it = stacks_.find(id);
    if (it == stacks_.end()) return NotFound(id);
    it->second.stack.status = status;
    return Result(it->second, status == 1 ? "started" : "stopped");
  }
  Outcome<stacks::ApplyResult> Do(const stacks::StartStack& a) { return SetStatusOf(a.id, 1); }
  Outcome<stacks::ApplyResult> Do(const stacks::StopStack& a) { return SetStatusOf(a.id, 2); }

  Outcome<stacks::ApplyResult> Do(const stacks::DeleteStack& a) {
    if (stacks_.erase(a.id) == 0) return NotFound(a.id);
    return stacks::ApplyResult{a.id, 0, 1, "deleted"};
  }

  void Write(Stored& stored, const stacks::DesiredStack& desired) {
    stored.file = desired.file;
    stored.stack.env = desired.env;
    stored.stack.workspace = stacks::MarkerOf(desired.env);
    stored.stack.update_date = ++clock_;
  }

  mutable std::mutex mutex_;
  std::map<stacks::StackId, Stored> stacks_;
  stacks::StackId next_id_ = 1;
  std::int64_t clock_ = 1'700'000'000;
  int calls_ = 0;
  std::optional<int> fail_at_;
  int list_calls_ = 0;
  int file_calls_ = 0;
  int apply_calls_ = 0;
  int inspect_calls_ = 0;
  std::map<int, Outcome<stacks::EndpointInfo>> endpoints_;
};

}  // namespace tmaster::testing
