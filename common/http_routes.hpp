#pragma once

// One helper for the two cpp-httplib servers (the controller's API and portainer-sim): both route
// every method to one handler and do their own routing inside it. Header-only and free of
// httplib.h, so including it costs nothing; only the two .cpp files that have an httplib::Server
// instantiate it.

namespace tmaster {

/// Routes every method cpp-httplib serves (GET, POST, PUT, PATCH, DELETE, OPTIONS) on every path
/// to `handler`, so the server's own router answers unknown paths and methods with its own
/// error bodies. Routes registered on `server` before this call are matched first.
template <class Server, class Handler>
void RouteEveryMethod(Server& server, const Handler& handler) {
  server.Get(".*", handler);
  server.Post(".*", handler);
  server.Put(".*", handler);
  server.Patch(".*", handler);
  server.Delete(".*", handler);
  server.Options(".*", handler);
}

}  // namespace tmaster
