#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace tmaster {

/// How a failed step should be treated by the controller, after Flux's error kinds
/// (docs/architecture.md#the-reconcile-contract).
enum class FailureKind {
  kTransient,  ///< back off and retry (network, server restarting, lock held)
  kWaiting,    ///< retry after a known delay (something else must finish first)
  kStalled,    ///< a human must change something; retrying cannot help
};

/// A failure that keeps its context: a CamelCase reason and a message that names the failing
/// object and step. Messages never contain secrets.
struct Failure {
  FailureKind kind = FailureKind::kTransient;
  std::string reason;
  std::string message;

  static Failure Transient(std::string reason, std::string message) {
    return {FailureKind::kTransient, std::move(reason), std::move(message)};
  }
  static Failure Stalled(std::string reason, std::string message) {
    return {FailureKind::kStalled, std::move(reason), std::move(message)};
  }
  static Failure Waiting(std::string reason, std::string message) {
    return {FailureKind::kWaiting, std::move(reason), std::move(message)};
  }
};

inline const char* ToString(FailureKind kind) {
  switch (kind) {
    case FailureKind::kTransient: return "Transient";
    case FailureKind::kWaiting: return "Waiting";
    case FailureKind::kStalled: return "Stalled";
  }
  return "Unknown";
}

/// Either a value or a Failure. No exceptions cross this boundary.
template <class T>
class [[nodiscard]] Outcome {
 public:
  Outcome(T value) : state_(std::move(value)) {}              // NOLINT(google-explicit-constructor)
  Outcome(Failure failure) : state_(std::move(failure)) {}    // NOLINT(google-explicit-constructor)

  [[nodiscard]] bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok() && "Outcome::value() on a failure");
    return std::get<0>(state_);
  }
  const T& value() const& {
    assert(ok() && "Outcome::value() on a failure");
    return std::get<0>(state_);
  }
  T&& value() && {
    assert(ok() && "Outcome::value() on a failure");
    return std::get<0>(std::move(state_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  [[nodiscard]] const Failure& failure() const {
    assert(!ok() && "Outcome::failure() on a value");
    return std::get<1>(state_);
  }

 private:
  std::variant<T, Failure> state_;
};

/// Outcome of a step that yields nothing but success.
struct Done {};
using Status = Outcome<Done>;
inline Status Ok() { return Done{}; }

}  // namespace tmaster
