#include "manifests/types.hpp"

#include <algorithm>

namespace tmaster::manifests {

std::string Diagnostic::Format() const {
  std::string out = where.file.empty() ? std::string("<input>") : where.file;
  if (where.line > 0) {
    out += ':' + std::to_string(where.line) + ':' + std::to_string(where.column);
  }
  out += ": ";
  if (!field.empty()) out += field + ": ";
  out += message;
  return out;
}

const char* ToString(Mode mode) {
  switch (mode) {
    case Mode::kShared:
      return "shared";
    case Mode::kDedicated:
      return "dedicated";
  }
  return "shared";
}

const char* ToString(ReclaimPolicy policy) {
  switch (policy) {
    case ReclaimPolicy::kRetain:
      return "Retain";
    case ReclaimPolicy::kDelete:
      return "Delete";
  }
  return "Retain";
}

bool Fleet::HasErrors() const {
  return std::any_of(diagnostics.begin(), diagnostics.end(), [](const Diagnostic& d) {
    return d.severity == Diagnostic::Severity::kError;
  });
}

const Product* Fleet::FindProduct(const std::string& name) const {
  auto found = std::find_if(products.begin(), products.end(),
                            [&](const Product& product) { return product.name == name; });
  return found == products.end() ? nullptr : &*found;
}

}  // namespace tmaster::manifests
