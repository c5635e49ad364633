#pragma once

// A flood of HTTP requests for the webhook flood test and its benchmark
// (tests/controller/api/webhook_flood_itest.cpp, bench/webhook_flood_bench.cpp): several client
// threads on keep-alive connections send one request over and over, while a prober opens a fresh
// connection for `GET /healthz` every 50 ms and times it, and a sampler calls back every 200 ms.
// Blocking sockets with receive/send timeouts: a stuck server ends the flood, it never hangs it.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace tmaster::testing {

/// One blocking keep-alive connection to 127.0.0.1:`port`.
class FloodConnection {
 public:
  explicit FloodConnection(int port) : port_(port) {}
  ~FloodConnection() { Close(); }
  FloodConnection(const FloodConnection&) = delete;
  FloodConnection& operator=(const FloodConnection&) = delete;

  /// Sends `request` (connecting first if needed) and reads one answer: its status, or nullopt
  /// when the connection failed or nothing came within 5 s. `closes` tells whether the server
  /// said `Connection: close` (the next call reconnects).
  std::optional<int> RoundTrip(const std::string& request, bool* closes = nullptr) {
    if (fd_ < 0 && !Connect()) return std::nullopt;
    if (!SendAll(request)) return Fail();
    std::size_t head_end = std::string::npos;
    while ((head_end = pending_.find("\r\n\r\n")) == std::string::npos) {
      if (!ReadMore()) return Fail();
    }
    const std::string head = Lower(pending_.substr(0, head_end));
    std::size_t length = 0;
    if (const std::size_t at = head.find("\r\ncontent-length:"); at != std::string::npos) {
      length = std::stoul(head.substr(at + 17));
    }
    while (pending_.size() < head_end + 4 + length) {
      if (!ReadMore()) return Fail();
    }
    pending_.erase(0, head_end + 4 + length);
    const int status = head.size() >= 12 ? std::stoi(head.substr(9, 3)) : 0;
    const bool close = head.find("\r\nconnection: close") != std::string::npos;
    if (closes != nullptr) *closes = close;
    if (close) Close();
    return status;
  }

  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    pending_.clear();
  }

 private:
  bool Connect() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) return false;
    timeval timeout{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    int yes = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port_));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
      Close();
      return false;
    }
    return true;
  }

  bool SendAll(const std::string& data) {
    std::size_t sent = 0;
    while (sent < data.size()) {
      const ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<std::size_t>(n);
    }
    return true;
  }

  bool ReadMore() {
    char buffer[4096];
    const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n <= 0) return false;
    pending_.append(buffer, static_cast<std::size_t>(n));
    return true;
  }

  std::optional<int> Fail() {
    Close();
    return std::nullopt;
  }

  static std::string Lower(std::string text) {
    for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
  }

  int port_;
  int fd_ = -1;
  std::string pending_;
};

struct FloodFigures {
  double seconds = 0;                  ///< from the first request to the last answer
  std::map<int, long> statuses;        ///< answers by status; 0: no answer (connection failed)
  long probes = 0;                     ///< /healthz probes during the flood
  long probe_failures = 0;             ///< probes not answered 200
  double probe_worst_ms = 0;           ///< the slowest probe
  [[nodiscard]] double PerSecond(long requests) const {
    return seconds > 0 ? static_cast<double>(requests) / seconds : 0;
  }
};

/// Sends `request` `total` times from `clients` threads (split evenly), probing /healthz every
/// 50 ms and calling `sample` every 200 ms (may be empty) until the last answer.
inline FloodFigures Flood(int port, const std::string& request, long total, int clients,
                          const std::function<void()>& sample = {}) {
  using Clock = std::chrono::steady_clock;
  FloodFigures figures;
  std::mutex mutex;
  std::atomic<bool> done{false};
  std::thread prober([&] {
    while (!done) {
      const auto start = Clock::now();
      FloodConnection probe(port);
      const std::optional<int> status =
          probe.RoundTrip("GET /healthz HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n");
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
      {
        const std::lock_guard lock(mutex);
        ++figures.probes;
        if (status != 200) ++figures.probe_failures;
        figures.probe_worst_ms = std::max(figures.probe_worst_ms, ms);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  std::thread sampler([&] {
    while (!done) {
      if (sample) sample();
      for (int i = 0; i < 4 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    const long share = total / clients + (c < total % clients ? 1 : 0);
    threads.emplace_back([&, share] {
      std::map<int, long> statuses;
      FloodConnection connection(port);
      for (long i = 0; i < share; ++i) ++statuses[connection.RoundTrip(request).value_or(0)];
      const std::lock_guard lock(mutex);
      for (const auto& [status, count] : statuses) figures.statuses[status] += count;
    });
  }
  for (std::thread& thread : threads) thread.join();
  figures.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  done = true;
  prober.join();
  sampler.join();
  if (sample) sample();
  return figures;
}

/// An unsigned GitHub push: answered missing_signature by VerifyWebhook.
inline std::string UnsignedPush() {
  const std::string body =
      R"({"ref":"refs/heads/main","after":"0123456789abcdef0123456789abcdef01234567"})";
  return "POST /hooks/git HTTP/1.1\r\nHost: flood\r\nX-GitHub-Event: push\r\n"
         "Content-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

}  // namespace tmaster::testing
