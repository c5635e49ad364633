#include "controller/api/http_config.hpp"

#include <algorithm>

namespace tmaster::controller {

HttpServerOptions HttpServerOptionsFrom(const manifests::HttpConfig& http) {
  HttpServerOptions options;
  options.listen = http.listen;
  options.tls_cert_file = http.tls_cert_file.string();
  options.tls_key_file = http.tls_key_file.string();
  if (http.max_connections) options.max_connections = static_cast<std::size_t>(*http.max_connections);
  if (http.header_timeout) options.header_timeout = *http.header_timeout;
  if (http.body_timeout) options.body_timeout = *http.body_timeout;
  if (http.write_timeout) options.write_timeout = *http.write_timeout;
  if (http.idle_timeout) options.idle_timeout = *http.idle_timeout;
  if (http.max_header_bytes) options.header_limit = static_cast<std::size_t>(*http.max_header_bytes);
  if (http.max_body_bytes) {
    options.webhook_body_limit = static_cast<std::size_t>(*http.max_body_bytes);
    options.max_body_bytes_in_flight =
        std::max(options.max_body_bytes_in_flight, options.webhook_body_limit);
  }
  if (http.threads) options.threads = static_cast<int>(*http.threads);
  const manifests::HttpRateLimitConfig& limit = http.webhook_rate_limit;
  if (limit.per_second) options.webhook_rate_limit.per_second = static_cast<double>(*limit.per_second);
  if (limit.burst) options.webhook_rate_limit.burst = static_cast<double>(*limit.burst);
  if (limit.max_addresses) {
    options.webhook_rate_limit.max_addresses = static_cast<std::size_t>(*limit.max_addresses);
  }
  return options;
}

}  // namespace tmaster::controller
