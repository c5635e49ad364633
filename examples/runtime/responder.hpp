#pragma once

// What example-runtime answers, without HTTP: the request's method, path and Host header in,
// a status and a JSON body out. main.cpp hands cpp-httplib's requests to Respond.

#include <string>

#include "examples/runtime/tenants.hpp"

namespace tmaster::examples::runtime {

struct Request {
  std::string method;
  std::string path;
  std::string host;  ///< the Host header as sent
};

struct Answer {
  int status = 200;
  std::string body;    ///< JSON
  bool close = false;  ///< close the client's connection after answering
};

/// - a method other than GET (or HEAD): 405;
/// - a path other than `/`: 404 `{"error":"not found","path":...}`;
/// - a host no binding lists: 404 `{"error":"unknown host","host":...}`;
/// - a suspended tenant: 503 `{"error":"suspended","workspace":...}`, and the connection closed;
/// - else `SELECT count(*) FROM <table>` as the tenant: 200 `{"workspace","database","table",
///   "count"}`, or 502 `{"error":"database","workspace":...,"message":...}` with the server's
///   message (never the password), or 503 when the tenant's sessions are all busy.
Answer Respond(const Tenants& tenants, const Request& request, const std::string& table);

}  // namespace tmaster::examples::runtime
