// example-runtime: the reference shared runtime of a Tenant Master product (README.md, "A shared
// runtime"). It serves every shared workspace of one product from one process: the request's
// Host header names the workspace, the workspace's binding folder says how to log in to its own
// database, and `GET /` answers with a count from that database.
//
//   example-runtime --bindings DIR --listen HOST:PORT [--count-table NAME] [--pool-size N]
//
// DIR is `<bindings.dir>/<product>`. SIGTERM or SIGINT stops it (exit 0).

#include <httplib.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

#include "common/http_routes.hpp"
#include "examples/runtime/bindings_reader.hpp"
#include "examples/runtime/responder.hpp"
#include "examples/runtime/tenants.hpp"

namespace {

using namespace tmaster::examples::runtime;

// How often the bindings folder is listed. A listing is one readdir and one fstatat per
// workspace, and only folders whose inode or times changed are read again (BindingsWatcher), so
// it stays cheap with thousands of tenants; a new tenant is served at most this long after its
// folder appears. Polling rather than inotify: it needs no watch per folder, it also sees a
// bindings folder mounted into a container (where inotify events from the host do not arrive),
// and there is one code path to get right instead of events plus a fallback rescan.
constexpr auto kRescanEvery = std::chrono::milliseconds(500);

struct Options {
  std::string bindings;
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string table = "customer";  // created by the erp product's migrations (examples/fleet)
  std::size_t pool_size = 4;
};

int Usage(const char* problem) {
  std::fprintf(stderr,
               "example-runtime: %s\n"
               "usage: example-runtime --bindings DIR --listen HOST:PORT "
               "[--count-table NAME] [--pool-size N]\n",
               problem);
  return 2;
}

bool ParseListen(const std::string& text, Options& options) {
  const std::size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon + 1 == text.size()) return false;
  std::string host = text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  char* end = nullptr;
  const long port = std::strtol(text.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || port < 0 || port > 65535 || host.empty()) return false;
  options.host = host;
  options.port = static_cast<int>(port);
  return true;
}

// Blocks SIGTERM and SIGINT in every thread; a dedicated thread waits for them.
sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  bool listen_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) return Usage(("missing value after " + flag).c_str());
    const std::string value = argv[++i];
    if (flag == "--bindings") {
      options.bindings = value;
    } else if (flag == "--listen") {
      if (!ParseListen(value, options)) return Usage("--listen expects HOST:PORT");
      listen_given = true;
    } else if (flag == "--count-table") {
      options.table = value;
    } else if (flag == "--pool-size") {
      const int size = std::atoi(value.c_str());
      if (size < 1 || size > 100) return Usage("--pool-size expects 1..100");
      options.pool_size = static_cast<std::size_t>(size);
    } else {
      return Usage(("unknown option " + flag).c_str());
    }
  }
  if (options.bindings.empty() || !listen_given) return Usage("--bindings and --listen are needed");
  if (options.table.empty()) return Usage("--count-table is empty");

  const sigset_t stop_signals = BlockStopSignals();  // before any thread starts

  BindingsWatcher watcher(options.bindings);
  Tenants tenants(options.pool_size);
  const auto refresh = [&] {
    const BindingsWatcher::Changes changes = watcher.Refresh();
    for (const std::string& line : changes.log) {
      std::fprintf(stderr, "example-runtime: %s\n", line.c_str());
    }
    if (changes.changed) {
      for (const std::string& problem : watcher.directory().problems) {
        std::fprintf(stderr, "example-runtime: refused: %s\n", problem.c_str());
      }
      tenants.Update(watcher.directory());
    }
  };
  refresh();

  httplib::Server server;
  // cpp-httplib closes a keep-alive connection after 5 requests by default; a runtime behind a
  // proxy serves many more on each.
  server.set_keep_alive_max_count(1000);
  // cpp-httplib writes a response's headers and body separately: without TCP_NODELAY, Nagle
  // holds the body until the client's delayed ACK, 40 ms per keep-alive request (measured in
  // bench/runtime_qps_bench.cpp: 89 answers/s instead of thousands).
  server.set_tcp_nodelay(true);
  tmaster::RouteEveryMethod(server, [&](const httplib::Request& req, httplib::Response& res) {
    const Answer answer = Respond(
        tenants, Request{req.method, req.path, req.get_header_value("Host")}, options.table);
    res.status = answer.status;
    if (answer.close) res.set_header("Connection", "close");
    if (answer.status == 405) res.set_header("Allow", "GET, HEAD");
    res.set_content(answer.body, "application/json");
  });
  const int port = options.port == 0
                       ? server.bind_to_any_port(options.host)
                       : (server.bind_to_port(options.host, options.port) ? options.port : -1);
  if (port < 0) {
    std::fprintf(stderr, "example-runtime: cannot listen on %s:%d\n", options.host.c_str(),
                 options.port);
    return 1;
  }
  std::printf("example-runtime: serving http://%s:%d (port %d), %zu tenants from %s\n",
              options.host.c_str(), port, port, tenants.Count(), options.bindings.c_str());
  std::fflush(stdout);

  std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;
  std::thread rescanner([&] {
    std::unique_lock lock(mutex);
    while (!wake.wait_for(lock, kRescanEvery, [&] { return stopping; })) {
      lock.unlock();
      refresh();
      lock.lock();
    }
  });
  std::atomic<bool> served{false};
  std::thread signals([&] {
    const timespec tick{0, 200'000'000};
    while (!served.load()) {
      if (sigtimedwait(&stop_signals, nullptr, &tick) > 0) {
        std::fprintf(stderr, "example-runtime: stopping\n");
        server.stop();
        return;
      }
    }
  });

  const bool clean = server.listen_after_bind();
  served = true;
  {
    const std::lock_guard lock(mutex);
    stopping = true;
  }
  wake.notify_all();
  rescanner.join();
  signals.join();
  return clean || !server.is_running() ? 0 : 1;
}
