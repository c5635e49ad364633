#include "controller/sources/product_registry.hpp"

namespace tmaster::controller {
namespace {

bool SameProducts(const ProductMap& a, const ProductMap& b) {
  if (a.size() != b.size()) return false;
  for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib) {
    if (ia->first != ib->first || ia->second->digest != ib->second->digest ||
        ia->second->runtime_digest != ib->second->runtime_digest) {
      return false;
    }
  }
  return true;
}

}  // namespace

void ProductRegistry::Replace(const std::string& source, ProductMap products) {
  const std::lock_guard lock(mutex_);
  ProductMap& slot = by_source_[source];
  if (!SameProducts(slot, products)) ++version_;
  slot = std::move(products);
}

ProductRegistry::Found ProductRegistry::Find(const std::string& name) const {
  const std::lock_guard lock(mutex_);
  for (const auto& [source, products] : by_source_) {
    if (auto it = products.find(name); it != products.end()) return {source, it->second};
  }
  return {};
}

std::map<std::string, ProductRegistry::Found> ProductRegistry::All() const {
  const std::lock_guard lock(mutex_);
  std::map<std::string, Found> all;
  for (const auto& [source, products] : by_source_) {
    for (const auto& [name, entry] : products) all.emplace(name, Found{source, entry});
  }
  return all;
}

std::uint64_t ProductRegistry::Version() const {
  const std::lock_guard lock(mutex_);
  return version_;
}

void ProductRegistry::Clear() {
  const std::lock_guard lock(mutex_);
  by_source_.clear();
  ++version_;
}

}  // namespace tmaster::controller
