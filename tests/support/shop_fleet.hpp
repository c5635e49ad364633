#pragma once
// The smallest product the controller's tests declare workspaces of: `shop`, shared mode only,
// no migrations and no stack template.

namespace tmaster::testing {

inline constexpr const char* kShopProduct = R"(apiVersion: tenantmaster.io/v1alpha1
kind: Product
metadata: {name: shop}
spec: {image: example/shop, defaultVersion: "1.0.0", modes: [shared]}
)";

}  // namespace tmaster::testing
