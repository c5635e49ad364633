#pragma once

// cpp-httplib transport for the Simulator: every method and path goes to Simulator::Handle
// (the simulator does its own gorilla/mux-style routing, 404s and 405s). httplib.h stays
// inside http_server.cpp.

#include <memory>
#include <string>

#include "tools/portainer-sim/simulator.hpp"

namespace tmaster::tools::portainer_sim {

class HttpServer {
 public:
  /// `log_requests`: one line per request on stderr (method, path, status; never bodies).
  HttpServer(Simulator& simulator, bool log_requests);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Binds `host:port`; port 0 picks a free port. Returns the bound port, or -1 on failure.
  int Bind(const std::string& host, int port);
  /// Serves on the bound socket until Stop(); false if it could not serve.
  bool Serve();
  [[nodiscard]] bool Running() const;
  /// Stops accepting and makes Serve() return once in-flight requests finish.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tmaster::tools::portainer_sim
