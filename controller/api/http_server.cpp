#include "controller/api/http_server.hpp"

#include <httplib.h>

#include <array>
#include <atomic>
#include <cassert>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <exception>
#include <optional>
#include <string_view>
#include <thread>
#include <utility>

#include "common/http_routes.hpp"
#include "common/scrub.hpp"
#include "common/text.hpp"
#include "controller/api/status_json.hpp"

namespace tmaster::controller {
namespace {

constexpr const char* kJson = "application/json";
constexpr const char* kText = "text/plain; charset=utf-8";
constexpr const char* kPrometheusText = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::string_view kWorkspacePrefix = "/api/v1/workspaces/";
constexpr std::int64_t kDefaultEventLimit = 100;
constexpr std::int64_t kMaxEventLimit = 1000;

enum class Route {
  kNone,
  kHealthz,
  kReadyz,
  kMetrics,
  kWorkspaces,
  kWorkspace,
  kEvents,
  kSources,
  kHook,
};

Route Resolve(std::string_view path) {
  if (path == "/healthz") return Route::kHealthz;
  if (path == "/readyz") return Route::kReadyz;
  if (path == "/metrics") return Route::kMetrics;
  if (path == "/api/v1/workspaces") return Route::kWorkspaces;
  if (path == "/api/v1/events") return Route::kEvents;
  if (path == "/api/v1/sources") return Route::kSources;
  if (path == "/hooks/git") return Route::kHook;
  if (path.size() > kWorkspacePrefix.size() &&
      path.substr(0, kWorkspacePrefix.size()) == kWorkspacePrefix) {
    // Sub-resources (/reconcile, /backups) are not served here yet: 404, not a bogus name.
    if (path.find('/', kWorkspacePrefix.size()) == std::string_view::npos) {
      return Route::kWorkspace;
    }
  }
  return Route::kNone;
}

struct ListenAddress {
  std::string host;
  int port = 0;
};

Outcome<ListenAddress> ParseListen(const std::string& listen) {
  const auto fail = [&listen](const std::string& why) {
    return Failure::Stalled("ListenFailed", "cannot listen on \"" + listen + "\": " + why);
  };
  ListenAddress address;
  std::string_view rest = listen;
  std::size_t colon = std::string_view::npos;
  if (!rest.empty() && rest.front() == '[') {
    const std::size_t close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      return fail("expected [ipv6]:port");
    }
    address.host = std::string(rest.substr(1, close - 1));
    colon = close + 1;
  } else {
    colon = rest.rfind(':');
    if (colon == std::string_view::npos) return fail("expected host:port");
    address.host = std::string(rest.substr(0, colon));
    if (address.host.find(':') != std::string::npos) return fail("write IPv6 hosts as [addr]:port");
    if (address.host.empty()) address.host = "0.0.0.0";
  }
  const std::string_view port = rest.substr(colon + 1);
  const auto parsed = std::from_chars(port.data(), port.data() + port.size(), address.port);
  if (port.empty() || parsed.ec != std::errc() || parsed.ptr != port.data() + port.size() ||
      address.port < 0 || address.port > 65535) {
    return fail("the port must be a number from 0 to 65535");
  }
  if (address.host.empty()) return fail("empty host");
  return address;
}

void SendJson(httplib::Response& res, int status, std::string body) {
  res.status = status;
  res.set_content(std::move(body), kJson);
}

void SendError(httplib::Response& res, int status, std::string_view message) {
  SendJson(res, status, ErrorJson(message));
}

void SendStoreFailure(httplib::Response& res, const Failure& failure) {
  SendError(res, 503, "store unavailable: " + failure.message);
}

// An optional query parameter; an empty value counts as absent.
std::optional<std::string> Param(const httplib::Request& req, const char* name) {
  if (!req.has_param(name)) return std::nullopt;
  std::string value = req.get_param_value(name);
  if (value.empty()) return std::nullopt;
  return value;
}

WebhookResult TooLarge(const WebhookRequest& request, std::size_t limit) {
  WebhookResult result;
  result.verdict = Verdict::kTooLarge;
  result.provider = std::string(GuessProvider(request));
  result.http_status = 413;
  result.message = "body exceeds the limit of " + std::to_string(limit) + " bytes";
  return result;
}

void LogLine(const std::string& line) {
  // One fprintf per line: stderr is unbuffered, so lines of concurrent requests do not interleave.
  std::fprintf(stderr, "tenant-operator: http: %s\n", line.c_str());
}

}  // namespace

struct HttpServer::Impl {
  Impl(Store& s, Metrics& m, HttpHandlers h, HttpServerOptions o)
      : store(s), metrics(m), handlers(std::move(h)), options(std::move(o)) {}

  Store& store;
  Metrics& metrics;
  HttpHandlers handlers;
  HttpServerOptions options;
  httplib::Server server;
  std::thread thread;
  std::atomic<bool> serving_done{false};
  int port = 0;
  bool started = false;

  void Install();
  void Dispatch(const httplib::Request& req, httplib::Response& res);
  void Readyz(httplib::Response& res);
  void Workspaces(const httplib::Request& req, httplib::Response& res);
  void Workspace(const std::string& name, httplib::Response& res);
  void Events(const httplib::Request& req, httplib::Response& res);
  void Sources(httplib::Response& res);
  void Hook(const httplib::Request& req, httplib::Response& res,
            const httplib::ContentReader& content_reader);
  void Deliver(WebhookRequest request, bool too_large, httplib::Response& res);
};

void HttpServer::Impl::Install() {
  const int threads = options.threads > 0 ? options.threads : 1;
  server.new_task_queue = [threads] {
    return new httplib::ThreadPool(static_cast<std::size_t>(threads));
  };
  // httplib answers 413 itself, before any handler runs, when Content-Length says too much; the
  // webhook handler below sees that as a failed read. No other route takes a body.
  server.set_payload_max_length(options.webhook_body_limit);
  // httplib's default sets SO_REUSEPORT, which lets a second daemon bind the same port and
  // silently share its requests. SO_REUSEADDR alone still allows a quick restart (TIME_WAIT).
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  // An idle keep-alive connection holds Stop() up to this long (httplib's default is 5 s).
  server.set_keep_alive_timeout(2);
  // httplib writes headers and body separately; without TCP_NODELAY the body of an answer on a
  // kept-alive connection waits ~40 ms for the client's delayed ACK (Nagle).
  server.set_tcp_nodelay(true);
  server.set_keep_alive_max_count(100);
  server.Post("/hooks/git", [this](const httplib::Request& req, httplib::Response& res,
                                   const httplib::ContentReader& content_reader) {
    Hook(req, res, content_reader);
  });
  const auto dispatch = [this](const httplib::Request& req, httplib::Response& res) {
    Dispatch(req, res);
  };
  RouteEveryMethod(server, dispatch);
  server.set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
        // Our handlers always write a body; an empty one is httplib's own error (a request it
        // could not parse, a body over the limit on another route).
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        res.set_content(ErrorJson("HTTP " + std::to_string(res.status)), kJson);
        return httplib::Server::HandlerResponse::Handled;
      }));
  server.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr error) {
        const std::string what = ExceptionText(error, "unknown exception");
        LogLine(req.method + " " + req.path + ": internal error: " + what);
        SendError(res, 500, "internal error (see the operator's log)");
      });
}

void HttpServer::Impl::Dispatch(const httplib::Request& req, httplib::Response& res) {
  const Route route = Resolve(req.path);
  if (route == Route::kNone) {
    SendError(res, 404, "no route for " + req.path);
    return;
  }
  const char* allowed = route == Route::kHook ? "POST" : "GET";
  const bool get_like = req.method == "GET" || req.method == "HEAD";
  if (route == Route::kHook ? req.method != "POST" : !get_like) {
    res.set_header("Allow", allowed);
    SendError(res, 405, "method " + req.method + " not allowed on " + req.path);
    return;
  }
  switch (route) {
    case Route::kHealthz: res.set_content("ok", kText); return;
    case Route::kReadyz: Readyz(res); return;
    case Route::kMetrics: res.set_content(metrics.Render(), kPrometheusText); return;
    case Route::kWorkspaces: Workspaces(req, res); return;
    case Route::kWorkspace: Workspace(req.path.substr(kWorkspacePrefix.size()), res); return;
    case Route::kEvents: Events(req, res); return;
    case Route::kSources: Sources(res); return;
    case Route::kHook: {
      // Only reached if httplib read the body itself (the content-reader route normally wins).
      WebhookRequest request;
      for (const auto& [name, value] : req.headers) request.SetHeader(name, value);
      request.body = req.body;
      const bool too_large = request.body.size() > options.webhook_body_limit;
      Deliver(std::move(request), too_large, res);
      return;
    }
    case Route::kNone: break;
  }
}

void HttpServer::Impl::Readyz(httplib::Response& res) {
  const Readiness readiness = handlers.readiness ? handlers.readiness() : Readiness{true, {}};
  if (readiness.ready) {
    res.set_content("ok", kText);
    return;
  }
  std::string body;
  for (const std::string& problem : readiness.problems) body += problem + "\n";
  if (body.empty()) body = "not ready\n";
  res.status = 503;
  // A problem can quote a store's or a server's error: scrubbed like every served text (the
  // JSON answers are scrubbed in status_json.cpp).
  res.set_content(ScrubProcessSecrets(body), kText);
}

void HttpServer::Impl::Workspaces(const httplib::Request& req, httplib::Response& res) {
  LabelSelector selector;
  if (const auto text = Param(req, "labelSelector")) {
    Outcome<LabelSelector> parsed = ParseLabelSelector(*text);
    if (!parsed) {
      SendError(res, 400, parsed.failure().message);
      return;
    }
    selector = std::move(parsed).value();
  }
  // Two queries for any number of workspaces, joined in memory.
  Outcome<std::vector<StoredWorkspace>> workspaces = store.ListWorkspaces(std::nullopt);
  if (!workspaces) {
    SendStoreFailure(res, workspaces.failure());
    return;
  }
  Outcome<std::vector<WorkspaceStatus>> statuses = store.ListStatuses();
  if (!statuses) {
    SendStoreFailure(res, statuses.failure());
    return;
  }
  SendJson(res, 200, WorkspaceListJson(*workspaces, *statuses, selector));
}

void HttpServer::Impl::Workspace(const std::string& name, httplib::Response& res) {
  Outcome<std::optional<StoredWorkspace>> workspace = store.Get(name);
  if (!workspace) {
    SendStoreFailure(res, workspace.failure());
    return;
  }
  if (!workspace->has_value()) {
    SendError(res, 404, "workspace \"" + name + "\" not found");
    return;
  }
  Outcome<std::optional<WorkspaceStatus>> status = store.GetStatus(name);
  if (!status) {
    SendStoreFailure(res, status.failure());
    return;
  }
  const WorkspaceStatus* status_ptr = status->has_value() ? &status->value() : nullptr;
  SendJson(res, 200, WorkspaceJson(workspace->value(), status_ptr));
}

void HttpServer::Impl::Events(const httplib::Request& req, httplib::Response& res) {
  std::int64_t limit = kDefaultEventLimit;
  if (const auto text = Param(req, "limit")) {
    const auto parsed = std::from_chars(text->data(), text->data() + text->size(), limit);
    if (parsed.ec == std::errc::result_out_of_range && text->front() != '-') {
      limit = kMaxEventLimit;
    } else if (parsed.ec != std::errc() || parsed.ptr != text->data() + text->size() || limit < 1) {
      SendError(res, 400,
                "limit must be a positive integer (at most " + std::to_string(kMaxEventLimit) +
                    "), not \"" + *text + "\"");
      return;
    }
    if (limit > kMaxEventLimit) limit = kMaxEventLimit;
  }
  Outcome<std::vector<Event>> events = store.ListEvents(Param(req, "workspace"), limit);
  if (!events) {
    SendStoreFailure(res, events.failure());
    return;
  }
  SendJson(res, 200, EventListJson(*events));
}

void HttpServer::Impl::Sources(httplib::Response& res) {
  Outcome<std::vector<SourceStatus>> sources = store.ListSourceStatuses();
  if (!sources) {
    SendStoreFailure(res, sources.failure());
    return;
  }
  SendJson(res, 200, SourceListJson(*sources));
}

void HttpServer::Impl::Hook(const httplib::Request& req, httplib::Response& res,
                            const httplib::ContentReader& content_reader) {
  WebhookRequest request;
  for (const auto& [name, value] : req.headers) request.SetHeader(name, value);
  const std::size_t limit = options.webhook_body_limit;
  bool over_limit = false;
  // Chunked bodies carry no Content-Length for httplib to check up front: cap them here.
  const bool read = content_reader([&](const char* data, std::size_t length) {
    if (request.body.size() + length > limit) {
      over_limit = true;
      return false;
    }
    request.body.append(data, length);
    return true;
  });
  if (!read && !over_limit && res.status != 413) {
    // The client went away or sent a broken chunked body: nothing to verify or answer usefully.
    LogLine("POST /hooks/git: could not read the request body");
    SendError(res, 400, "could not read the request body");
    return;
  }
  if (over_limit) res.set_header("Connection", "close");  // the rest of the body is unread
  Deliver(std::move(request), !read, res);
}

void HttpServer::Impl::Deliver(WebhookRequest request, bool too_large, httplib::Response& res) {
  WebhookResult result;
  if (too_large) {
    result = TooLarge(request, options.webhook_body_limit);
  } else if (handlers.webhook) {
    result = handlers.webhook(request);
  } else {
    result.verdict = Verdict::kBadSignature;
    result.http_status = 401;
    result.provider = std::string(GuessProvider(request));
    result.message = "no git source accepts webhooks";
  }
  const std::string verdict = ToString(result.verdict);
  metrics.IncWebhookDelivery(verdict);
  WebhookDelivery delivery;
  delivery.provider = result.provider;
  delivery.verdict = verdict;
  delivery.branch = result.branch;
  delivery.revision = result.revision;
  // The verdict stands whether or not the log of deliveries could be written.
  if (Outcome<std::int64_t> recorded = store.RecordDelivery(delivery); !recorded) {
    LogLine("POST /hooks/git: could not record the delivery (" + verdict +
            "): " + recorded.failure().message);
  }
  SendJson(res, result.http_status, WebhookAnswerJson(verdict, result.message));
}

HttpServer::HttpServer(Store& store, Metrics& metrics, HttpHandlers handlers,
                       HttpServerOptions options)
    : impl_(std::make_unique<Impl>(store, metrics, std::move(handlers), std::move(options))) {
  impl_->Install();
}

HttpServer::~HttpServer() {
  Stop();
}

Outcome<Done> HttpServer::Start() {
  assert(!impl_->started && "HttpServer::Start called twice");
  Outcome<ListenAddress> address = ParseListen(impl_->options.listen);
  if (!address) return address.failure();
  auto& server = impl_->server;
  int port = address->port;
  if (port == 0) {
    port = server.bind_to_any_port(address->host);
  } else if (!server.bind_to_port(address->host, port)) {
    port = -1;
  }
  if (port < 0) {
    return Failure::Stalled("ListenFailed", "cannot listen on \"" + impl_->options.listen +
                                                "\": the address is in use or not local");
  }
  impl_->port = port;
  impl_->started = true;
  impl_->thread = std::thread([impl = impl_.get()] {
    if (!impl->server.listen_after_bind()) LogLine("the server stopped accepting connections");
    impl->serving_done = true;
  });
  // httplib's stop() is a no-op until the accept loop runs: wait for it, so that a Stop()
  // right after Start() cannot leave the thread serving forever.
  while (!server.is_running() && !impl_->serving_done) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return Ok();
}

int HttpServer::port() const {
  return impl_->port;
}

void HttpServer::Stop() {
  if (!impl_ || !impl_->thread.joinable()) return;
  impl_->server.stop();
  impl_->thread.join();
}

}  // namespace tmaster::controller
