#pragma once
// The products the configured sources declared in this leadership term, across sources: what a
// workspace written through the API (controller/daemon/workspace_api.hpp) is validated and
// reconciled against. Each sync of a source replaces that source's products (sync.hpp, phase 1).

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "controller/sources/desired_state.hpp"

namespace tmaster::controller {

/// The source name of workspaces written through the API (`PUT /api/v1/workspaces/{name}`,
/// docs/api.md). A configured source of that name would share their rows.
inline constexpr const char* kApiSource = "api";

using ProductMap = std::map<std::string, std::shared_ptr<const ProductEntry>>;

/// Thread-safe.
class ProductRegistry {
 public:
  struct Found {
    std::string source;
    std::shared_ptr<const ProductEntry> entry;
  };
  /// Replaces the products of `source` with `products` (its latest read).
  void Replace(const std::string& source, ProductMap products);
  /// The product of that name; when two sources declare it, the first source in name order.
  /// `entry` is nullptr when no source declares it.
  [[nodiscard]] Found Find(const std::string& name) const;
  /// Every product, by name (the first source's for a name two sources declare).
  [[nodiscard]] std::map<std::string, Found> All() const;
  /// Increases on every Replace that changed a digest or a name (so a reader can tell "new").
  [[nodiscard]] std::uint64_t Version() const;
  void Clear();

 private:
  mutable std::mutex mutex_;
  std::map<std::string, ProductMap> by_source_;
  std::uint64_t version_ = 0;
};

}  // namespace tmaster::controller
