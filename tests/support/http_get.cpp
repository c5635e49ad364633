#include "tests/support/http_get.hpp"

#include <strings.h>

#include <algorithm>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace tmaster::testing {
namespace {

using Clock = std::chrono::steady_clock;

int MillisLeft(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

/// Closes the socket on every path.
class Socket {
 public:
  Socket() : fd_(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {}
  ~Socket() {
    if (fd_ >= 0) close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  [[nodiscard]] int fd() const { return fd_; }

 private:
  int fd_;
};

bool SendAll(int fd, const std::string& data, Clock::time_point deadline) {
  std::size_t sent = 0;
  while (sent < data.size()) {
    pollfd p{fd, POLLOUT, 0};
    if (poll(&p, 1, MillisLeft(deadline)) <= 0) return false;
    const ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

/// Decodes a `Transfer-Encoding: chunked` body; returns false when it is cut short.
bool Dechunk(const std::string& raw, std::string& out) {
  std::size_t pos = 0;
  while (true) {
    const std::size_t line_end = raw.find("\r\n", pos);
    if (line_end == std::string::npos) return false;
    const std::size_t size = std::strtoul(raw.substr(pos, line_end - pos).c_str(), nullptr, 16);
    pos = line_end + 2;
    if (size == 0) return true;
    if (pos + size > raw.size()) return false;
    out.append(raw, pos, size);
    pos += size + 2;
  }
}

}  // namespace

HttpResponse HttpRequest(int port, const std::string& method, const std::string& path,
                         const std::map<std::string, std::string>& headers, const std::string& body,
                         std::chrono::milliseconds timeout) {
  HttpResponse response;
  const auto deadline = Clock::now() + timeout;
  Socket socket;
  if (socket.fd() < 0) {
    response.error = "socket failed";
    return response;
  }
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(socket.fd(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
    response.error = std::string("connect: ") + std::strerror(errno);
    return response;
  }
  // A Host given by the caller (a runtime routing by host) replaces the default one.
  const bool has_host = std::any_of(headers.begin(), headers.end(), [](const auto& header) {
    return header.first.size() == 4 && strncasecmp(header.first.c_str(), "host", 4) == 0;
  });
  std::string request = method + " " + path + " HTTP/1.1\r\n" +
                        (has_host ? std::string() : "Host: 127.0.0.1:" + std::to_string(port) + "\r\n") +
                        "Connection: close\r\n";
  for (const auto& [name, value] : headers) request += name + ": " + value + "\r\n";
  if (!body.empty() || method == "POST" || method == "PUT") {
    request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  request += "\r\n" + body;
  if (!SendAll(socket.fd(), request, deadline)) {
    response.error = "send failed or timed out";
    return response;
  }

  std::string raw;
  std::array<char, 65536> buffer{};
  while (true) {
    pollfd p{socket.fd(), POLLIN, 0};
    const int ready = poll(&p, 1, MillisLeft(deadline));
    if (ready <= 0) {
      response.error = "timed out reading the response";
      return response;
    }
    const ssize_t n = recv(socket.fd(), buffer.data(), buffer.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      response.error = std::string("recv: ") + std::strerror(errno);
      return response;
    }
    if (n == 0) break;
    raw.append(buffer.data(), static_cast<std::size_t>(n));
  }

  const std::size_t head_end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.", 0) != 0 || head_end == std::string::npos) {
    response.error = "not an HTTP response: " + raw.substr(0, 80);
    return response;
  }
  std::string head = raw.substr(0, head_end);
  for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const std::string rest = raw.substr(head_end + 4);
  if (head.find("transfer-encoding: chunked") != std::string::npos) {
    if (!Dechunk(rest, response.body)) {
      response.error = "chunked body cut short";
      return response;
    }
  } else {
    response.body = rest;
  }
  response.status = std::atoi(raw.c_str() + raw.find(' ') + 1);
  return response;
}

HttpResponse HttpGet(int port, const std::string& path, std::chrono::milliseconds timeout) {
  return HttpRequest(port, "GET", path, {}, "", timeout);
}

}  // namespace tmaster::testing
