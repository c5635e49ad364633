#pragma once

// Minimal HTTP/1.1 client for end-to-end tests on 127.0.0.1: one request per connection
// (`Connection: close`), the body read to EOF. Plain POSIX sockets, so this support library needs
// neither cpp-httplib (whose compile definitions only the targets linking it get) nor TLS.

#include <chrono>
#include <map>
#include <string>

namespace tmaster::testing {

struct HttpResponse {
  int status = 0;  ///< 0 when no response was received (connection refused, timeout)
  std::string body;
  std::string error;  ///< why status is 0
};

/// Sends `method path` to 127.0.0.1:`port` with `headers` and `body`; never throws.
HttpResponse HttpRequest(int port, const std::string& method, const std::string& path,
                         const std::map<std::string, std::string>& headers = {},
                         const std::string& body = "",
                         std::chrono::milliseconds timeout = std::chrono::seconds(10));

/// `GET path`.
HttpResponse HttpGet(int port, const std::string& path,
                     std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace tmaster::testing
