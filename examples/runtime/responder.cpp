#include "examples/runtime/responder.hpp"

#include <boost/json.hpp>

namespace tmaster::examples::runtime {
namespace {

Answer Json(int status, const boost::json::object& body, bool close = false) {
  return Answer{status, boost::json::serialize(body), close};
}

}  // namespace

Answer Respond(const Tenants& tenants, const Request& request, const std::string& table) {
  if (request.method != "GET" && request.method != "HEAD") {
    return Json(405, {{"error", "method not allowed"}, {"method", request.method}});
  }
  if (request.path != "/") return Json(404, {{"error", "not found"}, {"path", request.path}});
  // Twice at most: a binding swapped while the query waited for a session closes the old pool
  // ("PoolClosed"); the tenant found again has the new one.
  for (int attempt = 0;; ++attempt) {
    const Tenant tenant = tenants.Find(request.host);
    if (!tenant.binding) {
      return Json(404, {{"error", "unknown host"}, {"host", HostKey(request.host)}});
    }
    const Binding& binding = *tenant.binding;
    if (binding.suspended || !tenant.pool) {
      return Json(503, {{"error", "suspended"}, {"workspace", binding.workspace}}, true);
    }
    const Outcome<long long> count = tenant.pool->Count(table);
    if (count) {
      return Json(200, {{"workspace", binding.workspace},
                        {"database", binding.database},
                        {"table", table},
                        {"count", *count}});
    }
    const Failure& failure = count.failure();
    if (failure.reason == "PoolClosed" && attempt == 0) continue;
    if (failure.reason == "DatabaseError") {
      return Json(
          502,
          {{"error", "database"}, {"workspace", binding.workspace}, {"message", failure.message}});
    }
    return Json(
        503, {{"error", "busy"}, {"workspace", binding.workspace}, {"message", failure.message}});
  }
}

}  // namespace tmaster::examples::runtime
