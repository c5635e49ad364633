#pragma once

// The dashboard's files (controller/api/dashboard/; issue 14), embedded at build time by
// controller/api/CMakeLists.txt into a generated dashboard_assets.cpp, as crds/ embeds the CRDs:
// the binary serves them with no file on disk, no CDN and no build step for its users.

#include <span>
#include <string_view>

namespace tmaster::controller {

struct DashboardFile {
  std::string_view name;  ///< the file's name in controller/api/dashboard/, e.g. "app.js"
  std::string_view body;  ///< its bytes as they were at build time
};

/// Every file of controller/api/dashboard/, in name order.
std::span<const DashboardFile> DashboardFiles();

}  // namespace tmaster::controller
