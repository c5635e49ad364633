#include "controller/api/http_server.hpp"

#include <charconv>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string_view>
#include <utility>

#include "common/scrub.hpp"
#include "controller/api/http_listener.hpp"
#include "controller/api/status_json.hpp"

namespace tmaster::controller {
namespace {

constexpr const char* kJson = "application/json";
constexpr const char* kText = "text/plain; charset=utf-8";
constexpr const char* kPrometheusText = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::string_view kWorkspacePrefix = "/api/v1/workspaces/";
constexpr std::int64_t kDefaultEventLimit = 100;
constexpr std::int64_t kMaxEventLimit = 1000;
// The label of a delivery refused by the per-address limit (webhook verdicts and transport
// rejections alike; controller/runtime/metrics.hpp).
const std::string kRateLimited = "rate_limited";

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

void SendJson(http::Response& res, int status, std::string body) {
  res.status = status;
  res.content_type = kJson;
  res.body = std::move(body);
}

void SendText(http::Response& res, std::string body, const char* content_type = kText) {
  res.content_type = content_type;
  res.body = std::move(body);
}

void SendError(http::Response& res, int status, std::string_view message) {
  SendJson(res, status, ErrorJson(message));
}

void SendStoreFailure(http::Response& res, const Failure& failure) {
  SendError(res, 503, "store unavailable: " + failure.message);
}

// An optional query parameter; an empty value counts as absent.
std::optional<std::string> Param(const http::Request& req, const char* name) {
  const std::string* value = req.Param(name);
  if (value == nullptr || value->empty()) return std::nullopt;
  return *value;
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
  Impl(Store& s, Metrics& m, HttpHandlers h, const HttpServerOptions& o)
      : store(s),
        metrics(m),
        handlers(std::move(h)),
        body_limit(o.webhook_body_limit),
        webhook_limiter(o.webhook_rate_limit),
        listener(o, MakeRoutes()) {}

  Store& store;
  Metrics& metrics;
  HttpHandlers handlers;
  std::size_t body_limit;
  RateLimiter webhook_limiter;
  http::Listener listener;  // last: stopped (joined) before the members its handlers use go

  http::Routes MakeRoutes() {
    http::Routes routes;
    routes.lane = [](std::string_view, std::string_view path) { return LaneOf(path); };
    routes.admit = [this](const http::Request& req) { return Admit(req); };
    routes.rejected = [this](http::Rejection why) { metrics.IncHttpRejected(ToString(why)); };
    routes.connections = [this](std::size_t open) { metrics.SetHttpOpenConnections(open); };
    routes.handle = [this](const http::Request& req) { return Handle(req); };
    routes.error = [](int status, std::string_view message) {
      http::Response res;
      SendError(res, status, message);
      return res;
    };
    return routes;
  }

  // The probes never queue behind the store: /healthz and /metrics need nothing that blocks;
  // /readyz asks the readiness callback (the daemon's asks the store), on a thread of its own.
  static http::Lane LaneOf(std::string_view path) {
    const Route route = Resolve(path);
    if (route == Route::kNone || route == Route::kHealthz || route == Route::kMetrics) {
      return http::Lane::kInline;
    }
    return route == Route::kReadyz ? http::Lane::kProbe : http::Lane::kWorker;
  }

  std::optional<http::Response> Admit(const http::Request& req);
  http::Response Handle(const http::Request& req);
  void Readyz(http::Response& res);
  void Workspaces(const http::Request& req, http::Response& res);
  void Workspace(const std::string& name, http::Response& res);
  void Events(const http::Request& req, http::Response& res);
  void Sources(http::Response& res);
  void Deliver(const http::Request& req, http::Response& res);
};

// On the I/O thread, before the delivery is queued for a worker: a flood from one address costs
// neither a worker, nor an HMAC, nor a row in the store.
std::optional<http::Response> HttpServer::Impl::Admit(const http::Request& req) {
  if (req.method != "POST" || Resolve(req.path) != Route::kHook) return std::nullopt;
  const RateLimiter::Decision decision =
      webhook_limiter.Allow(req.remote_address, std::chrono::steady_clock::now());
  if (decision.allowed) return std::nullopt;
  metrics.IncWebhookDelivery(kRateLimited);
  metrics.IncHttpRejected(kRateLimited);
  http::Response res;
  const std::string seconds = std::to_string(decision.retry_after.count());
  SendError(res, 429, "too many deliveries from this address; retry after " + seconds + " s");
  res.headers.emplace_back("Retry-After", seconds);
  return res;
}

http::Response HttpServer::Impl::Handle(const http::Request& req) {
  http::Response res;
  const Route route = Resolve(req.path);
  if (route == Route::kNone) {
    SendError(res, req.body_too_large ? 413 : 404,
              req.body_too_large ? "the request body exceeds " + std::to_string(body_limit) +
                                       " bytes"
                                 : "no route for " + req.path);
    return res;
  }
  const char* allowed = route == Route::kHook ? "POST" : "GET";
  const bool get_like = req.method == "GET" || req.method == "HEAD";
  if (route == Route::kHook ? req.method != "POST" : !get_like) {
    if (req.body_too_large) {
      SendError(res, 413, "the request body exceeds " + std::to_string(body_limit) + " bytes");
      return res;
    }
    res.headers.emplace_back("Allow", allowed);
    SendError(res, 405, "method " + req.method + " not allowed on " + req.path);
    return res;
  }
  switch (route) {
    case Route::kHealthz: SendText(res, "ok"); break;
    case Route::kReadyz: Readyz(res); break;
    case Route::kMetrics: SendText(res, metrics.Render(), kPrometheusText); break;
    case Route::kWorkspaces: Workspaces(req, res); break;
    case Route::kWorkspace: Workspace(req.path.substr(kWorkspacePrefix.size()), res); break;
    case Route::kEvents: Events(req, res); break;
    case Route::kSources: Sources(res); break;
    case Route::kHook: Deliver(req, res); break;
    case Route::kNone: break;
  }
  return res;
}

void HttpServer::Impl::Readyz(http::Response& res) {
  const Readiness readiness = handlers.readiness ? handlers.readiness() : Readiness{true, {}};
  if (readiness.ready) {
    SendText(res, "ok");
    return;
  }
  std::string body;
  for (const std::string& problem : readiness.problems) body += problem + "\n";
  if (body.empty()) body = "not ready\n";
  res.status = 503;
  // A problem can quote a store's or a server's error: scrubbed like every served text (the
  // JSON answers are scrubbed in status_json.cpp).
  SendText(res, ScrubProcessSecrets(body));
}

void HttpServer::Impl::Workspaces(const http::Request& req, http::Response& res) {
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

void HttpServer::Impl::Workspace(const std::string& name, http::Response& res) {
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

void HttpServer::Impl::Events(const http::Request& req, http::Response& res) {
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

void HttpServer::Impl::Sources(http::Response& res) {
  Outcome<std::vector<SourceStatus>> sources = store.ListSourceStatuses();
  if (!sources) {
    SendStoreFailure(res, sources.failure());
    return;
  }
  SendJson(res, 200, SourceListJson(*sources));
}

void HttpServer::Impl::Deliver(const http::Request& req, http::Response& res) {
  WebhookRequest request;
  for (const auto& [name, value] : req.headers) request.SetHeader(name, value);
  request.body = req.body;
  request.remote_address = req.remote_address;
  WebhookResult result;
  if (req.body_too_large) {
    // The listener read none of it (Content-Length over the limit) or stopped at the limit
    // (chunked), and closes the connection after this answer.
    result = TooLarge(request, body_limit);
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
    : impl_(std::make_unique<Impl>(store, metrics, std::move(handlers), options)) {}

HttpServer::~HttpServer() {
  Stop();
}

Outcome<Done> HttpServer::Start() {
  return impl_->listener.Start();
}

int HttpServer::port() const {
  return impl_->listener.port();
}

void HttpServer::Stop() {
  if (impl_) impl_->listener.Stop();
}

}  // namespace tmaster::controller
