#include "controller/api/http_config.hpp"

#include <doctest/doctest.h>

namespace tmaster::controller {

TEST_CASE("HttpServerOptionsFrom: what the config sets, over the server's defaults") {
  manifests::HttpConfig http;
  http.listen = "0.0.0.0:9090";
  const HttpServerOptions defaults;
  const HttpServerOptions unset = HttpServerOptionsFrom(http);
  CHECK(unset.listen == "0.0.0.0:9090");
  CHECK(unset.max_connections == defaults.max_connections);
  CHECK(unset.header_timeout == defaults.header_timeout);
  CHECK(unset.webhook_body_limit == defaults.webhook_body_limit);
  CHECK(unset.webhook_rate_limit.per_second == defaults.webhook_rate_limit.per_second);
  CHECK(unset.tls_cert_file.empty());
  CHECK(unset.tls_key_file.empty());

  http.max_connections = 2000;
  http.header_timeout = std::chrono::seconds(5);
  http.body_timeout = std::chrono::seconds(60);
  http.write_timeout = std::chrono::seconds(20);
  http.idle_timeout = std::chrono::seconds(30);
  http.max_header_bytes = 32 * 1024;
  http.max_body_bytes = 64 * 1024 * 1024;
  http.threads = 8;
  http.webhook_rate_limit = {.per_second = 20, .burst = 100, .max_addresses = 5000};
  http.tls_cert_file = "/etc/tm/tls/cert.pem";
  http.tls_key_file = "/etc/tm/tls/key.pem";
  const HttpServerOptions set = HttpServerOptionsFrom(http);
  CHECK(set.max_connections == 2000);
  CHECK(set.header_timeout == std::chrono::seconds(5));
  CHECK(set.body_timeout == std::chrono::seconds(60));
  CHECK(set.write_timeout == std::chrono::seconds(20));
  CHECK(set.idle_timeout == std::chrono::seconds(30));
  CHECK(set.header_limit == 32U * 1024U);
  CHECK(set.webhook_body_limit == 64U * 1024U * 1024U);
  // One body of the largest size must always fit in the budget across connections.
  CHECK(set.max_body_bytes_in_flight == 64U * 1024U * 1024U);
  CHECK(set.threads == 8);
  CHECK(set.webhook_rate_limit.per_second == 20);
  CHECK(set.webhook_rate_limit.burst == 100);
  CHECK(set.webhook_rate_limit.max_addresses == 5000);
  CHECK(set.tls_cert_file == "/etc/tm/tls/cert.pem");
  CHECK(set.tls_key_file == "/etc/tm/tls/key.pem");
}

}  // namespace tmaster::controller
