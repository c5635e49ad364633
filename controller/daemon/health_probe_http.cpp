// The health gate's prober over HTTP(S) (health_gate.hpp), apart so that only this file sees
// httplib.h.
#include <httplib.h>

#include "controller/daemon/health_gate.hpp"

namespace tmaster::controller {
namespace {

class HttpHealthProber final : public HealthProber {
 public:
  Outcome<int> Get(const std::string& url, const std::string& host,
                   std::chrono::milliseconds timeout) override {
    // scheme://authority, then the path (with its query) as the request's target.
    const std::size_t scheme = url.find("://");
    const std::size_t slash = scheme == std::string::npos ? std::string::npos
                                                          : url.find('/', scheme + 3);
    const std::string origin = slash == std::string::npos ? url : url.substr(0, slash);
    const std::string path = slash == std::string::npos ? "/" : url.substr(slash);
    // One connection per probe, no redirect followed (a 3xx is not a 2xx), no keep-alive.
    httplib::Client client(origin);
    if (!client.is_valid()) {
      return Failure::Stalled("HealthCheckInvalid", "cannot ask " + origin + " (invalid URL)");
    }
    client.set_connection_timeout(timeout);
    client.set_read_timeout(timeout);
    client.set_write_timeout(timeout);
    client.set_keep_alive(false);
    client.set_follow_location(false);
    httplib::Headers headers{{"Host", host}, {"User-Agent", "tenant-master-health"}};
    httplib::Result result = client.Get(path, headers);
    if (!result) {
      return Failure::Transient("HealthCheckUnreachable",
                                "GET " + url + ": " + httplib::to_string(result.error()));
    }
    return result->status;
  }
};

}  // namespace

std::unique_ptr<HealthProber> MakeHttpHealthProber() {
  return std::make_unique<HttpHealthProber>();
}

}  // namespace tmaster::controller
