#pragma once

// tenantctl's HTTP client of the operator's API (docs/api.md): one request at a time over
// cpp-httplib (http and https, a CA file or none, timeouts), the bearer token in every request
// and in no message. cpp-httplib stays in client.cpp.

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "common/outcome.hpp"
#include "controller/cli/connection.hpp"

namespace tmaster::cli {

/// What the server answered.
struct Response {
  int status = 0;
  std::string body;
  std::string apply_result;  ///< the `Tenant-Master-Apply` header (created, configured, unchanged)
  std::string retry_after;   ///< the `Retry-After` header
};

/// The object a request is about, for messages: `workspace "acme" not found`.
struct Subject {
  std::string kind;  ///< workspace, token; empty for a list or a route of its own
  std::string name;
};

class Client {
 public:
  Client(Connection connection, std::chrono::seconds timeout);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// Sends one request to `path` (with its query, below the server's URL). Transient
  /// `Unreachable` with `cannot reach URL: reason` when no answer came (refused, timed out,
  /// TLS failed); every HTTP status is a Response.
  Outcome<Response> Send(std::string_view method, const std::string& path,
                         const std::string& body = "", const std::string& content_type = "");

  [[nodiscard]] const std::string& server() const { return connection_.server; }

 private:
  Connection connection_;
  std::chrono::seconds timeout_;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The one line tenantctl prints for an answer that is not a success (docs/api.md#errors), with
/// the server's message from `{"error", "message", "details"}` (or the older `{"error": text}`):
/// 401 `the server refused the token (401)`, 403 `the token may not do this (403): ...`, 404
/// `workspace "acme" not found`, 409 `workspace "acme" is owned by the git source "fleet" ...`,
/// 422 `... is invalid`, 429 with Retry-After, 5xx `the server failed (503): ...`.
std::string ErrorLine(const Response& response, const Subject& subject);

/// The server's `message` (or older `error` text) of an error answer; empty when there is none.
std::string ServerMessage(const Response& response);

/// The `details` of an error answer as JSON text; empty when there are none.
std::string ErrorDetails(const Response& response);

/// `text` with every occurrence of `token` replaced by `***` (a message must never show it).
std::string WithoutToken(std::string text, const std::string& token);

}  // namespace tmaster::cli
