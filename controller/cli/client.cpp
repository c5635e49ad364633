#include "controller/cli/client.hpp"

#include <httplib.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/text.hpp"
#include "controller/cli/json_util.hpp"

namespace tmaster::cli {
namespace {

// The server's URL split into what cpp-httplib connects to (`scheme://host:port`) and a path
// prefix (a server behind a reverse proxy at `https://ops.example.com/tenant-master`).
struct BaseUrl {
  std::string origin;
  std::string prefix;
};

BaseUrl Split(const std::string& server) {
  const std::size_t scheme_end = server.find("://");
  const std::size_t slash =
      scheme_end == std::string::npos ? std::string::npos : server.find('/', scheme_end + 3);
  if (slash == std::string::npos) return {server, ""};
  return {server.substr(0, slash), server.substr(slash)};
}

// cpp-httplib only says "Could not establish connection" (its non-blocking connect keeps the
// reason from errno). People read `connection refused` or `cannot resolve host`: after such a
// failure, and only then, one blocking connect of our own finds out which it was.
std::string WhyNoConnection(const std::string& origin) {
  const std::size_t scheme_end = origin.find("://");
  std::string authority = origin.substr(scheme_end + 3);
  std::string port = origin.rfind("https://", 0) == 0 ? "443" : "80";
  std::string host = authority;
  if (!authority.empty() && authority.front() == '[') {  // [::1]:8080
    const std::size_t close = authority.find(']');
    host = authority.substr(1, close == std::string::npos ? std::string::npos : close - 1);
    if (close != std::string::npos && close + 1 < authority.size() && authority[close + 1] == ':') {
      port = authority.substr(close + 2);
    }
  } else if (const std::size_t colon = authority.rfind(':'); colon != std::string::npos) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return "cannot resolve host " + Quoted(host) + " (" + Lower(::gai_strerror(rc)) + ")";
  }
  int error = 0;
  for (const addrinfo* at = found; at != nullptr; at = at->ai_next) {
    const int fd = ::socket(at->ai_family, at->ai_socktype, at->ai_protocol);
    if (fd < 0) {
      error = errno;
      continue;
    }
    timeval wait{3, 0};  // a blocking connect gives up after SO_SNDTIMEO on Linux
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &wait, sizeof wait);
    const int rc = ::connect(fd, at->ai_addr, at->ai_addrlen);
    error = rc == 0 ? 0 : errno;
    ::close(fd);
    if (rc == 0) break;
  }
  ::freeaddrinfo(found);
  if (error == 0) return "could not connect (it answers now: try again)";
  if (error == EINPROGRESS || error == EAGAIN) return "connection timed out";
  return Lower(std::strerror(error));
}

std::string Reason(httplib::Error error, const std::string& origin) {
  switch (error) {
    case httplib::Error::Connection: return WhyNoConnection(origin);
    case httplib::Error::ConnectionTimeout: return "connection timed out";
    case httplib::Error::Read: return "no answer (the connection was closed or timed out)";
    case httplib::Error::Write: return "the request could not be sent";
    case httplib::Error::SSLConnection: return "the TLS handshake failed";
    case httplib::Error::SSLLoadingCerts:
      return "the certificate authority file could not be loaded";
    case httplib::Error::SSLServerVerification:
      return "the server's certificate is not trusted (--certificate-authority FILE)";
    case httplib::Error::Canceled: return "canceled";
    default: return Lower(httplib::to_string(error));
  }
}

}  // namespace

struct Client::Impl {
  std::string origin;
  std::string prefix;
  httplib::Client http;
  Impl(const std::string& base, std::string path_prefix)
      : origin(base), prefix(std::move(path_prefix)), http(origin) {}
};

Client::Client(Connection connection, std::chrono::seconds timeout)
    : connection_(std::move(connection)),
      timeout_(timeout),
      impl_(std::make_unique<Impl>(Split(connection_.server).origin,
                                   Split(connection_.server).prefix)) {
  httplib::Client& http = impl_->http;
  http.set_url_encode(false);  // paths and queries are encoded by the caller (PercentEncode)
  http.set_connection_timeout(std::min<std::chrono::seconds>(timeout_, std::chrono::seconds(10)));
  http.set_read_timeout(timeout_);
  http.set_write_timeout(timeout_);
  http.set_keep_alive(true);  // reconcile --wait and paging ask again and again
  if (!connection_.token.empty()) http.set_bearer_token_auth(connection_.token);
  if (!connection_.certificate_authority.empty()) {
    http.set_ca_cert_path(connection_.certificate_authority);
  }
  if (connection_.insecure_skip_tls_verify) http.enable_server_certificate_verification(false);
}

Client::~Client() = default;

Outcome<Response> Client::Send(std::string_view method, const std::string& path,
                               const std::string& body, const std::string& content_type) {
  httplib::Request request;
  request.method = std::string(method);
  request.path = impl_->prefix + path;
  request.headers.emplace("Accept", "application/json");
  if (!content_type.empty()) {
    request.headers.emplace("Content-Type", content_type);
    request.body = body;
  } else if (method != "GET" && method != "DELETE") {
    request.headers.emplace("Content-Length", "0");
  }
  const httplib::Result result = impl_->http.send(request);
  if (!result) {
    return Failure::Transient("Unreachable", "cannot reach " + connection_.server + ": " +
                                                 Reason(result.error(), impl_->origin));
  }
  Response response;
  response.status = result->status;
  response.body = result->body;
  response.apply_result = result->get_header_value("Tenant-Master-Apply");
  response.retry_after = result->get_header_value("Retry-After");
  return response;
}

std::string ServerMessage(const Response& response) {
  const std::optional<detail::json::value> parsed = detail::ParseJson(response.body);
  if (!parsed || !parsed->is_object()) return OneLine(response.body.substr(0, 200));
  std::string message = detail::Text(detail::At(*parsed, {"message"}));
  if (message.empty()) message = detail::Text(detail::At(*parsed, {"error"}));
  return OneLine(message);
}

std::string ErrorDetails(const Response& response) {
  const std::optional<detail::json::value> parsed = detail::ParseJson(response.body);
  if (!parsed) return {};
  const detail::json::value* details = detail::At(*parsed, {"details"});
  if (details == nullptr || details->is_null()) return {};
  return detail::json::serialize(*details);
}

std::string ErrorLine(const Response& response, const Subject& subject) {
  const std::string message = ServerMessage(response);
  const std::string said = message.empty() ? "" : ": " + message;
  const std::string code = " (" + std::to_string(response.status) + ")";
  const std::string object =
      subject.kind.empty() ? "" : subject.kind + " " + Quoted(subject.name);
  switch (response.status) {
    case 401: return "the server refused the token" + code;
    case 403: return "the token may not do this" + code + said;
    case 404:
      if (!object.empty()) return object + " not found";
      return "not found" + code + said;
    case 409: {
      const std::optional<detail::json::value> details = detail::ParseJson(ErrorDetails(response));
      const std::string source = details ? detail::Text(detail::At(*details, {"source"})) : "";
      const std::string kind = details ? detail::Text(detail::At(*details, {"kind"})) : "";
      if (!source.empty()) {
        return (object.empty() ? std::string("it") : object) + " is owned by the " +
               (kind.empty() ? "" : kind + " ") + "source " + Quoted(source) +
               ": change it there, or pass --force to move it to the API" + code;
      }
      return "conflict" + code + said;
    }
    case 422: return (object.empty() ? "the manifest" : object) + " is invalid" + code + said;
    case 429:
      return "the server is limiting requests" + code +
             (response.retry_after.empty() ? "" : ": retry after " + response.retry_after + "s");
    default: break;
  }
  if (response.status >= 500) return "the server failed" + code + said;
  return "the server refused the request" + code + said;
}

std::string WithoutToken(std::string text, const std::string& token) {
  if (!token.empty()) ReplaceAll(text, token, "***");
  return text;
}

}  // namespace tmaster::cli
