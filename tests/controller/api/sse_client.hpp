#pragma once

// A client of `GET /api/v1/stream` over a plain POSIX socket on 127.0.0.1, for the HTTP tests:
// it sends the request, then reads what comes (the head, the chunked body, decoded) only when
// asked, so a test can also leave it unread (a client that does not read) with a small receive
// buffer.

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace tmaster::testing {

class SseClient {
 public:
  /// Connects and sends `GET path` with `headers`. `receive_buffer` > 0: SO_RCVBUF, set before
  /// connecting (the window the server may fill while this client does not read).
  SseClient(int port, const std::string& path,
            const std::vector<std::pair<std::string, std::string>>& headers,
            int receive_buffer = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) return;
    if (receive_buffer > 0) {
      ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) return;
    std::string request =
        "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n";
    for (const auto& [name, value] : headers) request += name + ": " + value + "\r\n";
    request += "\r\n";
    connected_ = ::send(fd_, request.data(), request.size(), MSG_NOSIGNAL) ==
                 static_cast<ssize_t>(request.size());
  }
  ~SseClient() { Close(); }
  SseClient(const SseClient&) = delete;
  SseClient& operator=(const SseClient&) = delete;

  [[nodiscard]] bool connected() const { return connected_; }

  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  /// Reads until the head is in; its status (0: none before `timeout`).
  int Status(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (head_end_ == std::string::npos && ReadSome(deadline)) {
    }
    if (head_end_ == std::string::npos || raw_.size() < 12) return 0;
    return std::stoi(raw_.substr(9, 3));
  }

  /// The head, up to the blank line (empty before Status).
  [[nodiscard]] std::string Head() const {
    return head_end_ == std::string::npos ? std::string() : raw_.substr(0, head_end_);
  }

  /// Reads until `part` is in the decoded body; false when `timeout` passed or the server closed
  /// first.
  bool WaitFor(const std::string& part,
               std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (Body().find(part) == std::string::npos) {
      if (!ReadSome(deadline)) return Body().find(part) != std::string::npos;
    }
    return true;
  }

  /// Reads until the server closes; false when `timeout` passed first.
  bool WaitClosed(std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (ReadSome(deadline)) {
    }
    return closed_;
  }

  /// Reads what is there for `span`, then returns the body so far.
  std::string ReadFor(std::chrono::milliseconds span) {
    const auto deadline = std::chrono::steady_clock::now() + span;
    while (ReadSome(deadline)) {
    }
    return Body();
  }

  /// The body so far, chunks decoded (a chunked head) or as sent.
  [[nodiscard]] std::string Body() const {
    if (head_end_ == std::string::npos) return "";
    std::string data = raw_.substr(head_end_ + 4);
    if (Head().find("Transfer-Encoding: chunked") == std::string::npos) return data;
    std::string out;
    std::size_t at = 0;
    while (true) {
      const std::size_t line = data.find("\r\n", at);
      if (line == std::string::npos) break;
      const std::size_t size = std::stoul(data.substr(at, line - at), nullptr, 16);
      if (size == 0 || line + 2 + size > data.size()) break;
      out += data.substr(line + 2, size);
      at = line + 2 + size + 2;
    }
    return out;
  }

  /// True once the server closed (or reset) the connection.
  [[nodiscard]] bool closed() const { return closed_; }

 private:
  // One read before `deadline`; false at the deadline or once closed.
  bool ReadSome(std::chrono::steady_clock::time_point deadline) {
    if (fd_ < 0 || closed_) return false;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char buffer[16384];
    const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n <= 0) {
      closed_ = true;
      return false;
    }
    raw_.append(buffer, static_cast<std::size_t>(n));
    if (head_end_ == std::string::npos) head_end_ = raw_.find("\r\n\r\n");
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  bool closed_ = false;
  std::string raw_;
  std::size_t head_end_ = std::string::npos;
};

}  // namespace tmaster::testing
