#pragma once

#include <ostream>
#include <string>
#include <utility>

namespace tmaster {

/// A secret value (password, DSN, API key, token). It cannot be streamed or formatted: printing
/// one shows `<redacted>`, so a secret never reaches logs, plans, events or status by accident.
/// `Reveal()` is the one explicit door, used only where the value goes on the wire.
class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string value) : value_(std::move(value)) {}

  [[nodiscard]] const std::string& Reveal() const { return value_; }
  [[nodiscard]] bool Empty() const { return value_.empty(); }

  friend bool operator==(const Secret&, const Secret&) = default;
  friend std::ostream& operator<<(std::ostream& out, const Secret&) { return out << "<redacted>"; }

 private:
  std::string value_;
};

}  // namespace tmaster
