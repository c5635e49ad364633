#include "controller/api/http_server.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <shared_mutex>
#include <string_view>
#include <utility>

#include <boost/json.hpp>

#include "common/scrub.hpp"
#include "common/time.hpp"
#include "controller/api/auth.hpp"
#include "controller/api/dashboard_assets.hpp"
#include "controller/api/http_listener.hpp"
#include "controller/api/status_json.hpp"
#include "manifests/config.hpp"

namespace tmaster::controller {
namespace {

constexpr const char* kJson = "application/json";
constexpr const char* kText = "text/plain; charset=utf-8";
constexpr const char* kPrometheusText = "text/plain; version=0.0.4; charset=utf-8";
constexpr const char* kHtml = "text/html; charset=utf-8";
// Where a page's notice goes in login.html (an HTML comment: nothing shows without one).
constexpr std::string_view kNoticeMark = "<!--tm:notice-->";
constexpr const char* kEventStream = "text/event-stream";
constexpr std::int64_t kDefaultEventLimit = 100;
constexpr std::int64_t kDefaultDeliveryLimit = 20;
constexpr std::int64_t kMaxDeliveryLimit = 200;
constexpr std::int64_t kMaxEventLimit = 1000;
// The label of a delivery refused by the per-address limit (webhook verdicts and transport
// rejections alike; controller/runtime/metrics.hpp).
const std::string kRateLimited = "rate_limited";

// One segment-by-segment match of `path` against `pattern`: a `{...}` segment of the pattern
// matches any non-empty segment, whose value is appended to `params`.
bool MatchPath(std::string_view pattern, std::string_view path, std::vector<std::string>& params) {
  params.clear();
  while (true) {
    const std::size_t p_slash = pattern.find('/');
    const std::size_t q_slash = path.find('/');
    const std::string_view p_segment = pattern.substr(0, p_slash);
    const std::string_view q_segment = path.substr(0, q_slash);
    if (p_segment.size() > 1 && p_segment.front() == '{' && p_segment.back() == '}') {
      if (q_segment.empty()) return false;
      params.emplace_back(q_segment);
    } else if (p_segment != q_segment) {
      return false;
    }
    if (p_slash == std::string_view::npos || q_slash == std::string_view::npos) {
      return p_slash == q_slash;
    }
    pattern = pattern.substr(p_slash + 1);
    path = path.substr(q_slash + 1);
  }
}

// True for a request no browser sent from another origin: without `Origin` and
// `Sec-Fetch-Site` (curl, tenantctl), or with `Sec-Fetch-Site: same-origin|none`, or an `Origin`
// naming exactly this `Host` when that host is a loopback address (a DNS-rebound name is not).
bool SameOriginOrNoBrowser(const http::Request& req);

const std::string* Header(const http::Request& req, std::string_view name) {
  for (const auto& [key, value] : req.headers) {
    if (key.size() == name.size() &&
        std::equal(key.begin(), key.end(), name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        })) {
      return &value;
    }
  }
  return nullptr;
}

// True when `host` (a Host header: name or address, and an optional `:port`) names this machine's
// loopback literally: `localhost`, an IPv4 address in 127.0.0.0/8 or `[::1]`. A name that only
// begins like one (`localhost.evil.example`, `127.evil.example`) is not: DNS may send it here.
bool LoopbackHost(std::string_view host) {
  const auto digits = [](std::string_view text) {
    return !text.empty() && text.size() <= 5 &&
           std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  std::string_view name = host;
  if (name.starts_with('[')) {
    const std::size_t close = name.find(']');
    if (close == std::string_view::npos) return false;
    const std::string_view rest = name.substr(close + 1);
    if (!rest.empty() && !(rest.front() == ':' && digits(rest.substr(1)))) return false;
    return name.substr(0, close + 1) == "[::1]";
  }
  if (const std::size_t colon = name.rfind(':'); colon != std::string_view::npos) {
    if (!digits(name.substr(colon + 1))) return false;
    name = name.substr(0, colon);
  }
  if (name.size() == 9 && std::equal(name.begin(), name.end(), "localhost", [](char a, char b) {
        return std::tolower(static_cast<unsigned char>(a)) == b;
      })) {
    return true;
  }
  int parts = 0;
  std::string_view rest = name;
  while (true) {
    const std::size_t dot = rest.find('.');
    const std::string_view part = rest.substr(0, dot);
    if (part.empty() || part.size() > 3 || !digits(part) || std::stoi(std::string(part)) > 255) {
      return false;
    }
    if (parts == 0 && part != "127") return false;
    ++parts;
    if (dot == std::string_view::npos) break;
    rest.remove_prefix(dot + 1);
  }
  return parts == 4;
}

bool SameOriginOrNoBrowser(const http::Request& req) {
  const std::string* site = Header(req, "Sec-Fetch-Site");
  if (site != nullptr && *site != "same-origin" && *site != "none") return false;
  const std::string* origin = Header(req, "Origin");
  if (origin == nullptr) return true;
  const std::string* host = Header(req, "Host");
  if (host == nullptr) return false;
  return LoopbackHost(*host) && (*origin == "http://" + *host || *origin == "https://" + *host);
}

// The value of cookie `name` among the request's Cookie headers; nullopt without one.
std::optional<std::string> CookieValue(const http::Request& req, std::string_view name) {
  for (const auto& [key, value] : req.headers) {
    if (key.size() != 6 || !std::equal(key.begin(), key.end(), "cookie", [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) == b;
        })) {
      continue;
    }
    std::string_view rest = value;
    while (!rest.empty()) {
      const std::size_t end = rest.find(';');
      std::string_view pair = rest.substr(0, end);
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
      while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
      const std::size_t equals = pair.find('=');
      if (equals != std::string_view::npos && pair.substr(0, equals) == name) {
        return std::string(pair.substr(equals + 1));
      }
    }
  }
  return std::nullopt;
}

// application/x-www-form-urlencoded: the first value of `name` ('+' a space, %XX a byte).
std::optional<std::string> FormValue(std::string_view body, std::string_view name) {
  const auto decode = [](std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '+') {
        out += ' ';
      } else if (text[i] == '%' && i + 2 < text.size() &&
                 std::isxdigit(static_cast<unsigned char>(text[i + 1])) != 0 &&
                 std::isxdigit(static_cast<unsigned char>(text[i + 2])) != 0) {
        unsigned value = 0;
        std::from_chars(text.data() + i + 1, text.data() + i + 3, value, 16);
        out += static_cast<char>(value);
        i += 2;
      } else {
        out += text[i];
      }
    }
    return out;
  };
  while (!body.empty()) {
    const std::size_t end = body.find('&');
    const std::string_view pair = body.substr(0, end);
    body = end == std::string_view::npos ? std::string_view() : body.substr(end + 1);
    const std::size_t equals = pair.find('=');
    if (decode(pair.substr(0, equals)) == name) {
      return equals == std::string_view::npos ? std::string() : decode(pair.substr(equals + 1));
    }
  }
  return std::nullopt;
}

bool StartsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

// The Content-Type of an embedded file, by its extension (the build embeds only these).
const char* ContentTypeOf(std::string_view name) {
  if (name.ends_with(".css")) return "text/css; charset=utf-8";
  if (name.ends_with(".js")) return "text/javascript; charset=utf-8";
  return kHtml;
}

const DashboardFile* FindDashboardFile(std::string_view name) {
  for (const DashboardFile& file : DashboardFiles()) {
    if (file.name == name) return &file;
  }
  return nullptr;
}

// The answers of the dashboard and of the API alike: no framing, no script or style from
// elsewhere, no referrer to the hosts it links to, no guessing of content types.
void AddSecurityHeaders(http::Response& res) {
  res.headers.emplace_back("Content-Security-Policy", "default-src 'self'");
  res.headers.emplace_back("X-Frame-Options", "DENY");
  res.headers.emplace_back("Referrer-Policy", "no-referrer");
  res.headers.emplace_back("X-Content-Type-Options", "nosniff");
}

// Host and port as served, for the log: `options.listen` with the port bound.
std::string Served(const std::string& listen, int port) {
  const std::size_t colon = listen.rfind(':');
  return (colon == std::string::npos ? listen : listen.substr(0, colon)) + ":" +
         std::to_string(port);
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
  SendJson(res, status, ErrorJson(ErrorCode(status), message));
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

// `{"items":[{id, provider, verdict, branch, revision, receivedAt}]}` in the order given.
std::string DeliveryListJson(const std::vector<WebhookDelivery>& deliveries) {
  boost::json::array items;
  items.reserve(deliveries.size());
  for (const WebhookDelivery& delivery : deliveries) {
    items.push_back(boost::json::object{{"id", delivery.id},
                                        {"provider", delivery.provider},
                                        {"verdict", delivery.verdict},
                                        {"branch", delivery.branch},
                                        {"revision", delivery.revision},
                                        {"receivedAt", FormatRfc3339Utc(delivery.received_at_unix)}});
  }
  return boost::json::serialize(boost::json::object{{"items", std::move(items)}});
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
        listen(o.listen),
        routing(o.routing),
        version(o.version),
        auth_options{o.admin_token, o.read_token, o.traefik_token, o.runtime_tokens},
        auth(s, auth_options),
        // The same tokens as the authenticator: a session opened with the admin or read token
        // ends when that token is no longer the configured one (sessions.hpp).
        sessions(s, auth, auth_options, o.users, o.sessions),
        secure(!o.tls_cert_file.empty()),
        webhook_limiter(o.webhook_rate_limit),
        login_limiter(o.login_rate_limit),
        listener(o, MakeRoutes()) {}

  // What a route's handler gets: the request, who made it, the values of the pattern's
  // `{...}` segments in order, and the session when the request was authenticated by its cookie.
  struct Call {
    const http::Request& req;
    const Principal& who;
    std::vector<std::string> params;
    const SessionView* session;
  };
  using Handler = void (Impl::*)(const Call&, http::Response&);

  // Who may call a route.
  enum class Access {
    kOpen,    ///< anyone: probes, metrics, the webhook (authenticated by its signature)
    kViewer,  ///< any token (viewer or admin)
    kAdmin,   ///< an admin token
    kRuntime,  ///< the runtime token of the product named by the path's first parameter only
  };

  // One route. To add one, add a row (docs/api.md#routes): the method ("GET" serves HEAD too),
  // the path pattern, who may call it, where it runs (kWorker for anything that may block: the
  // store, a callback), and the member that answers.
  struct RouteSpec {
    std::string_view method;
    std::string_view pattern;
    Access access;
    http::Lane lane;
    Handler handler;
  };

  static const std::vector<RouteSpec>& Table() {
    using http::Lane;
    using Op = WorkspaceCall::Op;
    static const std::vector<RouteSpec> table = {
        {"GET", "/healthz", Access::kOpen, Lane::kInline, &Impl::Healthz},
        {"GET", "/readyz", Access::kOpen, Lane::kProbe, &Impl::Readyz},
        {"GET", "/metrics", Access::kOpen, Lane::kInline, &Impl::MetricsText},
        {"POST", "/hooks/git", Access::kOpen, Lane::kWorker, &Impl::Deliver},
        // The dashboard (issue 14): the page asks the store for the session, the assets nothing.
        {"GET", "/", Access::kOpen, Lane::kWorker, &Impl::DashboardPage},
        {"GET", "/assets/{file}", Access::kOpen, Lane::kInline, &Impl::DashboardAsset},
        {"POST", "/login", Access::kOpen, Lane::kWorker, &Impl::Login},
        {"POST", "/logout", Access::kOpen, Lane::kWorker, &Impl::Logout},
        {"GET", "/api/v1/session", Access::kViewer, Lane::kWorker, &Impl::Session},
        {"GET", "/api/v1/workspaces", Access::kViewer, Lane::kWorker, &Impl::Workspaces},
        {"GET", "/api/v1/workspaces/{name}", Access::kViewer, Lane::kWorker, &Impl::Workspace},
        {"GET", "/api/v1/events", Access::kViewer, Lane::kWorker, &Impl::Events},
        {"GET", "/api/v1/sources", Access::kViewer, Lane::kWorker, &Impl::Sources},
        {"GET", "/api/v1/deliveries", Access::kViewer, Lane::kWorker, &Impl::Deliveries},
        // A worker checks the credential and hands the stream to the I/O thread at once.
        {"GET", "/api/v1/stream", Access::kViewer, Lane::kWorker, &Impl::Stream},
        {"GET", "/api/v1/traefik", Access::kViewer, Lane::kWorker, &Impl::Traefik},
        {"GET", "/api/v1/products", Access::kViewer, Lane::kWorker, &Impl::ForwardOp<Op::kProducts>},
        {"GET", "/api/v1/clusters", Access::kViewer, Lane::kWorker, &Impl::ForwardOp<Op::kClusters>},
        {"GET", "/api/v1/endpoints", Access::kViewer, Lane::kWorker,
         &Impl::ForwardOp<Op::kEndpoints>},
        {"GET", "/api/v1/summary", Access::kViewer, Lane::kWorker, &Impl::ForwardOp<Op::kSummary>},
        {"GET", "/api/v1/version", Access::kViewer, Lane::kWorker, &Impl::Version},
        // A plan changes nothing: a viewer may ask for one (`tenantctl diff` with a read token).
        {"POST", "/api/v1/plan", Access::kViewer, Lane::kWorker, &Impl::ForwardOp<Op::kPlan>},
        {"PUT", "/api/v1/workspaces/{name}", Access::kAdmin, Lane::kWorker,
         &Impl::ForwardOp<Op::kApply>},
        {"DELETE", "/api/v1/workspaces/{name}", Access::kAdmin, Lane::kWorker,
         &Impl::ForwardOp<Op::kDelete>},
        {"POST", "/api/v1/workspaces/{name}/reconcile", Access::kAdmin, Lane::kWorker,
         &Impl::ForwardOp<Op::kReconcile>},
        {"POST", "/api/v1/workspaces/{name}/suspend", Access::kAdmin, Lane::kWorker,
         &Impl::ForwardOp<Op::kSuspend>},
        {"POST", "/api/v1/workspaces/{name}/resume", Access::kAdmin, Lane::kWorker,
         &Impl::ForwardOp<Op::kResume>},
        // Backups (docs/api.md#backups): the catalog and a restore's progress are read by a
        // viewer; taking a backup and restoring one need an admin.
        {"POST", "/api/v1/workspaces/{name}/backups", Access::kAdmin, Lane::kWorker,
         &Impl::ForwardOp<Op::kBackup>},
        {"GET", "/api/v1/workspaces/{name}/backups", Access::kViewer, Lane::kWorker,
         &Impl::ForwardOp<Op::kListBackups>},
        {"POST", "/api/v1/workspaces/{name}/restore", Access::kAdmin, Lane::kWorker,
         &Impl::ForwardOp<Op::kRestore>},
        {"GET", "/api/v1/restores/{id}", Access::kViewer, Lane::kWorker,
         &Impl::ForwardOp<Op::kGetRestore>},
        // Moves (docs/api.md#moves): a move's progress is read by a viewer (from the store, so a
        // standby answers too); starting one, or pruning the source it kept, needs an admin.
        {"POST", "/api/v1/workspaces/{name}/move", Access::kAdmin, Lane::kWorker,
         &Impl::ForwardOp<Op::kMove>},
        {"GET", "/api/v1/workspaces/{name}/move", Access::kViewer, Lane::kWorker,
         &Impl::ForwardOp<Op::kGetMove>},
        {"GET", "/api/v1/moves", Access::kViewer, Lane::kWorker, &Impl::ForwardOp<Op::kListMoves>},
        // Rollouts (docs/api.md#rollouts): a viewer reads a product's rollout; the verbs of
        // `tenantctl rollout` need an admin. The verb is a path segment, checked by the answerer
        // (an unknown one is 400 naming those there are, not 404 as a route that does not exist).
        {"GET", "/api/v1/products/{name}/rollout", Access::kViewer, Lane::kWorker,
         &Impl::ForwardOp<Op::kRolloutStatus>},
        {"POST", "/api/v1/products/{name}/rollout/{verb}", Access::kAdmin, Lane::kWorker,
         &Impl::ForwardOp<Op::kRolloutCommand>},
        {"POST", "/api/v1/tokens", Access::kAdmin, Lane::kWorker, &Impl::CreateToken},
        {"GET", "/api/v1/tokens", Access::kAdmin, Lane::kWorker, &Impl::ListTokens},
        {"DELETE", "/api/v1/tokens/{id}", Access::kAdmin, Lane::kWorker, &Impl::RevokeToken},
        {"GET", "/api/v1/runtimes/{product}/tenants", Access::kRuntime, Lane::kWatch,
         &Impl::RuntimeTenants},
    };
    return table;
  }

  // The route of `method` on `path`; else nullptr, with `allow` the methods the path has
  // (empty: no such path).
  static const RouteSpec* Find(std::string_view method, std::string_view path,
                               std::vector<std::string>& params, std::string& allow) {
    const std::string_view wanted = method == "HEAD" ? std::string_view("GET") : method;
    std::vector<std::string> scratch;
    allow.clear();
    for (const RouteSpec& route : Table()) {
      if (!MatchPath(route.pattern, path, scratch)) continue;
      if (route.method == wanted) {
        params = std::move(scratch);
        return &route;
      }
      if (allow.find(route.method) == std::string::npos) {
        if (!allow.empty()) allow += ", ";
        allow += route.method;
      }
    }
    return nullptr;
  }

  Store& store;
  Metrics& metrics;
  HttpHandlers handlers;
  std::size_t body_limit;
  std::string listen;
  TraefikRouting routing;
  std::string version;
  AuthOptions auth_options;
  Authenticator auth;
  Sessions sessions;
  bool secure;  // TLS: the cookie is `__Host-` and `Secure`
  RateLimiter webhook_limiter;
  RateLimiter login_limiter;
  // The streams' credential checks run on the hub's thread, which may outlive the server:
  // HttpServer::Stop clears `alive` (waiting for a check in progress), after which they answer
  // kUnknown without touching the server.
  struct Liveness {
    std::shared_mutex mutex;
    bool alive = true;
  };
  std::shared_ptr<Liveness> liveness = std::make_shared<Liveness>();
  http::Listener listener;  // last: stopped (joined) before the members its handlers use go

  http::Routes MakeRoutes() {
    http::Routes routes;
    routes.lane = [](std::string_view method, std::string_view path) {
      return LaneOf(method, path);
    };
    routes.admit = [this](const http::Request& req) { return Admit(req); };
    routes.rejected = [this](http::Rejection why) { metrics.IncHttpRejected(ToString(why)); };
    routes.connections = [this](std::size_t open) { metrics.SetHttpOpenConnections(open); };
    routes.handle = [this](const http::Request& req) {
      http::Response res = Handle(req);
      AddSecurityHeaders(res);
      return res;
    };
    routes.error = [](int status, std::string_view message) {
      http::Response res;
      SendError(res, status, message);
      return res;
    };
    return routes;
  }

  // The probes never queue behind the store: /healthz and /metrics need nothing that blocks;
  // /readyz asks the readiness callback (the daemon's asks the store), on a thread of its own.
  // Unknown paths and methods are answered at once.
  static http::Lane LaneOf(std::string_view method, std::string_view path) {
    std::vector<std::string> params;
    std::string allow;
    const RouteSpec* route = Find(method, path, params, allow);
    return route == nullptr ? http::Lane::kInline : route->lane;
  }

  std::optional<http::Response> Admit(const http::Request& req);
  http::Response Handle(const http::Request& req);
  // Appends the event of a write, naming who did it; a store failure is logged (the write
  // stands).
  void RecordWrite(const Call& call, const std::string& workspace, const std::string& reason,
                   const std::string& message);

  void Healthz(const Call& call, http::Response& res);
  void MetricsText(const Call& call, http::Response& res);
  void Readyz(const Call& call, http::Response& res);
  void Workspaces(const Call& call, http::Response& res);
  void Workspace(const Call& call, http::Response& res);
  void Events(const Call& call, http::Response& res);
  void Sources(const Call& call, http::Response& res);
  void Deliveries(const Call& call, http::Response& res);
  void Stream(const Call& call, http::Response& res);
  // What the hub asks of a stream at each keepalive: its session or token still valid.
  StreamCheck MakeStreamCheck(const Call& call);
  void Traefik(const Call& call, http::Response& res);
  void RuntimeTenants(const Call& call, http::Response& res);
  void Version(const Call& call, http::Response& res);
  // Hands one call to HttpHandlers::workspaces and copies its answer.
  void Forward(WorkspaceCall::Op op, const Call& call, http::Response& res);
  // The route table's handler of an operation that is only forwarded.
  template <WorkspaceCall::Op kOp>
  void ForwardOp(const Call& call, http::Response& res) {
    Forward(kOp, call, res);
  }
  void Deliver(const Call& call, http::Response& res);
  void DashboardPage(const Call& call, http::Response& res);
  void DashboardAsset(const Call& call, http::Response& res);
  void Login(const Call& call, http::Response& res);
  void Logout(const Call& call, http::Response& res);
  void Session(const Call& call, http::Response& res);
  // The session of the request's cookie: nullopt without a cookie; Unauthorized or the store's
  // failure as Lookup says.
  std::optional<Outcome<SessionView>> CookieSession(const http::Request& req);
  void CreateToken(const Call& call, http::Response& res);
  void ListTokens(const Call& call, http::Response& res);
  void RevokeToken(const Call& call, http::Response& res);
};

// On the I/O thread, before the delivery is queued for a worker: a flood from one address costs
// neither a worker, nor an HMAC, nor a row in the store.
// The same for a login: a flood of guesses from one address costs neither a worker, nor a
// password hash, nor the store's counters.
std::optional<http::Response> HttpServer::Impl::Admit(const http::Request& req) {
  if (req.method != "POST") return std::nullopt;
  const bool login = req.path == "/login";
  if (!login && req.path != "/hooks/git") return std::nullopt;
  RateLimiter& limiter = login ? login_limiter : webhook_limiter;
  const RateLimiter::Decision decision =
      limiter.Allow(req.remote_address, std::chrono::steady_clock::now());
  if (decision.allowed) return std::nullopt;
  if (!login) metrics.IncWebhookDelivery(kRateLimited);
  metrics.IncHttpRejected(kRateLimited);
  http::Response res;
  const std::string seconds = std::to_string(decision.retry_after.count());
  SendError(res, 429,
            std::string(login ? "too many logins" : "too many deliveries") +
                " from this address; retry after " + seconds + " s");
  res.headers.emplace_back("Retry-After", seconds);
  AddSecurityHeaders(res);
  return res;
}

std::optional<Outcome<SessionView>> HttpServer::Impl::CookieSession(const http::Request& req) {
  const std::optional<std::string> cookie = CookieValue(req, SessionCookieName(secure));
  if (!cookie) return std::nullopt;
  return sessions.Lookup(*cookie);
}

http::Response HttpServer::Impl::Handle(const http::Request& req) {
  http::Response res;
  std::vector<std::string> params;
  std::string allow;
  const RouteSpec* route = Find(req.method, req.path, params, allow);
  const std::string too_large = "the request body exceeds " + std::to_string(body_limit) + " bytes";
  if (route == nullptr) {
    if (req.body_too_large) {
      SendError(res, 413, too_large);
    } else if (!allow.empty()) {
      res.headers.emplace_back("Allow", allow);
      SendError(res, 405, "method " + req.method + " not allowed on " + req.path);
    } else {
      SendError(res, 404, "no route for " + req.path);
    }
    return res;
  }
  // The webhook records its own too_large verdict; no other route reads a body it was not given.
  if (req.body_too_large && route->handler != &Impl::Deliver) {
    SendError(res, 413, too_large);
    return res;
  }
  Principal who{"unauthenticated", "", Role::kViewer};
  std::optional<SessionView> session;
  if (route->access != Access::kOpen) {
    // A bearer token wins; without one, the session cookie is the credential (and a state-
    // changing request must prove with the CSRF token that the session's page sent it).
    const std::string* authorization = Header(req, "Authorization");
    std::optional<Outcome<SessionView>> by_cookie;
    if (authorization == nullptr) by_cookie = CookieSession(req);
    Outcome<Principal> authenticated =
        by_cookie ? (*by_cookie ? Outcome<Principal>((*by_cookie)->principal)
                                : Outcome<Principal>(by_cookie->failure()))
                  : auth.Authenticate(authorization);
    if (authenticated && by_cookie) {
      if (req.method != "GET" && req.method != "HEAD") {
        const std::string* csrf = Header(req, "X-CSRF-Token");
        if (csrf == nullptr || !Sessions::CheckCsrf(by_cookie->value(), *csrf)) {
          SendError(res, 403,
                    req.method + " " + req.path +
                        " with a session cookie needs the session's X-CSRF-Token header");
          return res;
        }
      }
      session = std::move(*by_cookie).value();
    }
    if (!authenticated) {
      if (authenticated.failure().reason == kUnauthorized) {
        res.headers.emplace_back("WWW-Authenticate", "Bearer");
        SendError(res, 401, authenticated.failure().message);
      } else {
        SendStoreFailure(res, authenticated.failure());
      }
      return res;
    }
    who = std::move(authenticated).value();
    // Without any token (a loopback-only server) every request is the admin `anonymous`. A web
    // page could reach it through DNS rebinding (its own name resolved to 127.0.0.1 after the
    // page loaded: the browser then calls it same-origin), so such a request must be addressed
    // to a loopback host by name or address (docs/api.md#authentication).
    if (who.id == "anonymous") {
      const std::string* host = Header(req, "Host");
      if (host != nullptr && !LoopbackHost(*host)) {
        SendError(res, 403, "a server without tokens answers only requests addressed to a "
                            "loopback host (localhost, 127.0.0.1, [::1]); configure "
                            "http.tokenEnv to serve other names");
        return res;
      }
    }
    // A web page in the local browser could send a form POST here. A write from a browser is
    // taken only from the server's own page (docs/api.md#authentication).
    if (who.id == "anonymous" && req.method != "GET" && req.method != "HEAD" &&
        !SameOriginOrNoBrowser(req)) {
      SendError(res, 403, "a browser request from another origin may not write to a server "
                          "without tokens (configure http.tokenEnv)");
      return res;
    }
    if (who.role == Role::kTraefik && route->handler != &Impl::Traefik) {
      SendError(res, 403, who.Describe() + " may read only GET /api/v1/traefik");
      return res;
    }
    // Tenant credentials go to their product's runtime and to nobody else, admins included
    // (docs/bindings.md#runtime-api); a runtime's token reads nothing else.
    if (route->access == Access::kRuntime &&
        (who.role != Role::kRuntime || params.empty() || who.product != params.front())) {
      SendError(res, 403, who.Describe() + " may not read the credentials of product " +
                              (params.empty() ? std::string("?") : params.front()) +
                              "'s tenants: only its runtime token (runtimes." +
                              (params.empty() ? std::string("?") : params.front()) +
                              ".tokenEnv) may");
      return res;
    }
    if (who.role == Role::kRuntime && route->access != Access::kRuntime) {
      SendError(res, 403, who.Describe() + " may read only GET /api/v1/runtimes/" + who.product +
                              "/tenants");
      return res;
    }
    if (route->access == Access::kAdmin && who.role != Role::kAdmin) {
      SendError(res, 403, who.Describe() + " is a viewer: " + req.method + " " + req.path +
                              " needs an admin token");
      return res;
    }
  }
  const Call call{req, who, std::move(params), session ? &*session : nullptr};
  (this->*(route->handler))(call, res);
  return res;
}

void HttpServer::Impl::RecordWrite(const Call& call, const std::string& workspace,
                                   const std::string& reason, const std::string& message) {
  Event event;
  event.workspace = workspace;
  event.type = "Normal";
  event.reason = reason;
  event.message = message + " by " + call.who.Describe();
  if (Outcome<std::int64_t> appended = store.AppendEvent(event); !appended) {
    LogLine(call.req.method + " " + call.req.path + ": could not record the event " + reason +
            ": " + appended.failure().message);
  }
}

void HttpServer::Impl::Healthz(const Call&, http::Response& res) {
  SendText(res, "ok");
}

void HttpServer::Impl::MetricsText(const Call&, http::Response& res) {
  SendText(res, metrics.Render(), kPrometheusText);
}

void HttpServer::Impl::Readyz(const Call&, http::Response& res) {
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

void HttpServer::Impl::Forward(WorkspaceCall::Op op, const Call& call, http::Response& res) {
  if (!handlers.workspaces) {
    SendError(res, 503, "this server does not serve the workspace API");
    return;
  }
  WorkspaceCall request;
  request.op = op;
  if (!call.params.empty()) request.name = call.params.front();
  if (op == WorkspaceCall::Op::kRolloutCommand && call.params.size() > 1) {
    request.verb = call.params[1];
  }
  request.body = call.req.body;
  if (const std::string* type = Header(call.req, "Content-Type")) request.content_type = *type;
  request.force = Param(call.req, "force") == std::optional<std::string>("true");
  request.who = call.who.Describe();
  if (op == WorkspaceCall::Op::kList) {
    if (const auto text = Param(call.req, "limit")) {
      std::size_t limit = 0;
      const auto parsed = std::from_chars(text->data(), text->data() + text->size(), limit);
      if (parsed.ec != std::errc() || parsed.ptr != text->data() + text->size() || limit < 1 ||
          limit > 1000) {
        SendError(res, 400, "limit must be an integer from 1 to 1000, got \"" + *text + "\"");
        return;
      }
      request.limit = limit;
    }
    request.continue_token = Param(call.req, "continue").value_or("");
    request.label_selector = Param(call.req, "labelSelector").value_or("");
    request.phase = Param(call.req, "phase").value_or("");
    request.params = call.req.params;
  }
  WorkspaceAnswer answer = handlers.workspaces(request);
  res.status = answer.status;
  res.content_type = kJson;
  res.body = ScrubProcessSecrets(answer.body);
  for (auto& header : answer.headers) res.headers.push_back(std::move(header));
}


void HttpServer::Impl::Version(const Call&, http::Response& res) {
  SendJson(res, 200, VersionJson(version));
}

void HttpServer::Impl::Workspaces(const Call& call, http::Response& res) {
  if (handlers.workspaces) {
    Forward(WorkspaceCall::Op::kList, call, res);
    return;
  }
  const http::Request& req = call.req;
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

void HttpServer::Impl::RuntimeTenants(const Call& call, http::Response& res) {
  if (!handlers.runtime_tenants) {
    SendError(res, 503, "no shared tenants are published here (configure bindings, "
                        "pooler.pgbouncer or runtimes)");
    return;
  }
  RuntimeCall runtime;
  runtime.product = call.params.front();
  runtime.who = call.who.Describe();
  runtime.remote = call.req.remote_address;
  if (const std::string* watch = call.req.Param("watch")) {
    if (*watch != "1" && *watch != "true" && *watch != "0" && *watch != "false") {
      SendError(res, 400, "watch must be 1 or 0, got \"" + watch->substr(0, 20) + "\"");
      return;
    }
    runtime.watch = *watch == "1" || *watch == "true";
  }
  if (const std::string* seen = call.req.Param("resourceVersion")) {
    std::uint64_t value = 0;
    const auto [end, error] = std::from_chars(seen->data(), seen->data() + seen->size(), value);
    if (error != std::errc() || end != seen->data() + seen->size() || seen->empty()) {
      SendError(res, 400, "resourceVersion must be a number from an earlier answer");
      return;
    }
    runtime.resource_version = value;
  }
  if (const std::string* timeout = call.req.Param("timeoutSeconds")) {
    int value = 0;
    const auto [end, error] = std::from_chars(timeout->data(), timeout->data() + timeout->size(), value);
    if (error != std::errc() || end != timeout->data() + timeout->size() || value < 1 || value > 30) {
      SendError(res, 400, "timeoutSeconds must be a whole number from 1 to 30");
      return;
    }
    runtime.timeout = std::chrono::seconds(value);
  }
  RuntimeAnswer answer = handlers.runtime_tenants(runtime);
  res.headers.emplace_back("Cache-Control", "no-store");
  if (answer.status == 200) {
    SendJson(res, 200, std::move(answer.body));
  } else if (answer.status == 304) {
    res.status = 304;
  } else {
    SendError(res, answer.status, answer.message);
  }
}

// Traefik polls this (its HTTP provider, every 5 s by default): an unchanged fleet answers 304
// to the ETag it sent, so a poll costs two store reads and no body.
void HttpServer::Impl::Traefik(const Call& call, http::Response& res) {
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
  std::map<std::string_view, const WorkspaceStatus*> by_name;
  for (const WorkspaceStatus& status : *statuses) by_name.emplace(status.name, &status);
  std::vector<RoutedWorkspace> routed;
  routed.reserve(workspaces->size());
  for (const StoredWorkspace& workspace : *workspaces) {
    if (workspace.deleting_since) continue;
    const auto status = by_name.find(workspace.name);
    routed.push_back(
        RoutedWorkspaceFrom(workspace, status == by_name.end() ? nullptr : status->second));
  }
  std::string body = TraefikDynamicConfigJson(routed, routing);
  const std::string etag = StrongEtag(body);
  res.headers.emplace_back("ETag", etag);
  res.headers.emplace_back("Cache-Control", "no-cache");
  if (const std::string* seen = Header(call.req, "If-None-Match");
      seen != nullptr && IfNoneMatchHits(*seen, etag)) {
    res.status = 304;
    return;
  }
  SendJson(res, 200, std::move(body));
}

void HttpServer::Impl::Workspace(const Call& call, http::Response& res) {
  if (handlers.workspaces) {
    Forward(WorkspaceCall::Op::kGet, call, res);
    return;
  }
  const std::string& name = call.params.at(0);
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

void HttpServer::Impl::Events(const Call& call, http::Response& res) {
  const http::Request& req = call.req;
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

void HttpServer::Impl::Sources(const Call&, http::Response& res) {
  Outcome<std::vector<SourceStatus>> sources = store.ListSourceStatuses();
  if (!sources) {
    SendStoreFailure(res, sources.failure());
    return;
  }
  SendJson(res, 200, SourceListJson(*sources));
}

void HttpServer::Impl::Deliveries(const Call& call, http::Response& res) {
  std::int64_t limit = kDefaultDeliveryLimit;
  if (const auto text = Param(call.req, "limit")) {
    const auto parsed = std::from_chars(text->data(), text->data() + text->size(), limit);
    if (parsed.ec != std::errc() || parsed.ptr != text->data() + text->size() || limit < 1 ||
        limit > kMaxDeliveryLimit) {
      SendError(res, 400,
                "limit must be an integer from 1 to " + std::to_string(kMaxDeliveryLimit) +
                    ", not \"" + text->substr(0, 32) + "\"");
      return;
    }
  }
  Outcome<std::vector<WebhookDelivery>> deliveries = store.ListDeliveries(limit);
  if (!deliveries) {
    SendStoreFailure(res, deliveries.failure());
    return;
  }
  res.headers.emplace_back("Cache-Control", "no-store");
  SendJson(res, 200, DeliveryListJson(*deliveries));
}

StreamCheck HttpServer::Impl::MakeStreamCheck(const Call& call) {
  const std::shared_ptr<Liveness> live = liveness;
  if (call.session != nullptr) {
    std::optional<std::string> cookie = CookieValue(call.req, SessionCookieName(secure));
    if (!cookie) return {};
    const std::int64_t expires = call.session->expires_unix;
    return [this, live, cookie = std::move(*cookie), expires]() {
      const std::shared_lock lock(live->mutex);
      if (!live->alive) return StreamVerdict::kUnknown;
      if (auth.Now() >= expires) return StreamVerdict::kEnded;  // no need to ask the store
      const Outcome<SessionView> session = sessions.Lookup(cookie);
      if (session) return StreamVerdict::kValid;
      return session.failure().reason == kUnauthorized ? StreamVerdict::kEnded
                                                       : StreamVerdict::kUnknown;
    };
  }
  const std::string* authorization = Header(call.req, "Authorization");
  if (authorization == nullptr) return {};  // a server without tokens: nothing to revoke
  return [this, live, authorization = *authorization]() {
    const std::shared_lock lock(live->mutex);
    if (!live->alive) return StreamVerdict::kUnknown;
    const Outcome<Principal> who = auth.Authenticate(&authorization);
    if (who) return StreamVerdict::kValid;
    return who.failure().reason == kUnauthorized ? StreamVerdict::kEnded : StreamVerdict::kUnknown;
  };
}

// The worker only takes a place in the hub and returns: the listener writes the head and every
// message on the I/O thread (http_listener.hpp StreamBody), holding no thread per stream.
void HttpServer::Impl::Stream(const Call& call, http::Response& res) {
  EventHub* hub = handlers.events;
  if (hub == nullptr) {
    SendError(res, 503, "this server has no live stream");
    return;
  }
  std::shared_ptr<EventHub::Stream> place = hub->Open(MakeStreamCheck(call));
  if (!place) {
    res.headers.emplace_back("Retry-After", "10");
    SendError(res, 503, "too many live streams are open; poll the API or retry later");
    return;
  }
  res.status = 200;
  res.content_type = kEventStream;
  res.headers.emplace_back("Cache-Control", "no-store");
  // A proxy such as nginx would otherwise hold the messages back.
  res.headers.emplace_back("X-Accel-Buffering", "no");
  res.stream = std::make_shared<http::StreamBody>();
  res.stream->open = [hub, place](std::shared_ptr<http::StreamSink> sink) {
    hub->Attach(place, StreamOutput{
                           .send = [sink](std::shared_ptr<const std::string> bytes) {
                             return sink->Send(std::move(bytes));
                           },
                           .end = [sink] { sink->End(); },
                       });
  };
}

void HttpServer::Impl::Deliver(const Call& call, http::Response& res) {
  const http::Request& req = call.req;
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
  } else if (handlers.events != nullptr) {
    handlers.events->SourcesChanged();
  }
  SendJson(res, result.http_status,
           WebhookAnswerJson(verdict, result.message, result.http_status));
}

void HttpServer::Impl::CreateToken(const Call& call, http::Response& res) {
  Outcome<TokenRequest> request = ParseTokenRequest(call.req.body);
  if (!request) {
    SendError(res, 400, request.failure().message);
    return;
  }
  Outcome<IssuedToken> issued = auth.Issue(request->role, request->ttl, request->description);
  if (!issued) {
    SendStoreFailure(res, issued.failure());
    return;
  }
  const Principal subject{"token:" + issued->row.id, issued->row.description, request->role};
  RecordWrite(call, kTokenEventsWorkspace, "TokenCreated",
              subject.Describe() + " created (role " + issued->row.role + ", expires " +
                  FormatRfc3339Utc(issued->row.expires_unix) + ")");
  SendJson(res, 201, ApiTokenJson(issued->row, &issued->token));
}

void HttpServer::Impl::ListTokens(const Call&, http::Response& res) {
  Outcome<std::vector<ApiToken>> tokens = store.ListTokens();
  if (!tokens) {
    SendStoreFailure(res, tokens.failure());
    return;
  }
  SendJson(res, 200, ApiTokenListJson(*tokens));
}

void HttpServer::Impl::RevokeToken(const Call& call, http::Response& res) {
  const std::string& id = call.params.at(0);
  Outcome<bool> revoked = store.RevokeToken(id, auth.Now());
  if (!revoked) {
    SendStoreFailure(res, revoked.failure());
    return;
  }
  Outcome<std::optional<ApiToken>> row = store.FindToken(id);
  if (!row) {
    SendStoreFailure(res, row.failure());
    return;
  }
  if (!row->has_value()) {
    SendError(res, 404, "token \"" + id + "\" not found");
    return;
  }
  // Revoking a revoked token changes nothing and records nothing.
  if (*revoked) {
    const Principal subject{"token:" + (*row)->id, (*row)->description, Role::kViewer};
    RecordWrite(call, kTokenEventsWorkspace, "TokenRevoked", subject.Describe() + " revoked");
  }
  SendJson(res, 200, ApiTokenJson(**row));
}

namespace {

// login.html with `notice` (HTML, may be empty) where the page keeps its place.
std::string LoginPage(std::string_view notice) {
  const DashboardFile* page = FindDashboardFile("login.html");
  std::string html = page != nullptr ? std::string(page->body) : std::string();
  if (const std::size_t at = html.find(kNoticeMark); at != std::string::npos) {
    html.replace(at, kNoticeMark.size(), notice);
  }
  return html;
}

void SendPage(http::Response& res, int status, std::string html) {
  res.status = status;
  res.content_type = kHtml;
  res.body = std::move(html);
  res.headers.emplace_back("Cache-Control", "no-store");
}

bool IsJson(const http::Request& req) {
  const std::string* type = Header(req, "Content-Type");
  return type != nullptr && StartsWith(*type, "application/json");
}

// A session as `GET /api/v1/session` and a JSON login show it.
std::string SessionJson(const Principal& who, const SessionView* session,
                        const std::string& base_domain) {
  boost::json::object out;
  out["principal"] = who.Describe();
  out["role"] = ToString(who.role);
  if (session != nullptr) {
    out["csrfToken"] = session->csrf_token;
    out["expiresAt"] = FormatRfc3339Utc(session->expires_unix);
  }
  // The dashboard links each workspace to https://<subdomain>.<baseDomain>/.
  out["baseDomain"] = base_domain;
  return boost::json::serialize(out);
}

}  // namespace

// Without a valid session only the login form: the page of the fleet is never sent to a
// browser that has not logged in (decided on the server, not by the page's script).
void HttpServer::Impl::DashboardPage(const Call& call, http::Response& res) {
  std::optional<Outcome<SessionView>> session = CookieSession(call.req);
  if (session && !*session && session->failure().reason != kUnauthorized) {
    SendPage(res, 503,
             LoginPage(R"(<p class="error" role="alert">The store cannot be reached: )"
                       R"(try again in a moment.</p>)"));
    return;
  }
  // A server without tokens (loopback only) serves every local request as the admin
  // `anonymous`: it has nothing to log in with, so it shows the fleet's page at once.
  if ((!session || !*session) && !auth.open()) {
    SendPage(res, 200, LoginPage(""));
    return;
  }
  if (const std::string* host = Header(call.req, "Host");
      auth.open() && host != nullptr && !LoopbackHost(*host)) {
    SendError(res, 403, "a server without tokens answers only requests addressed to a loopback "
                        "host (localhost, 127.0.0.1, [::1])");
    return;
  }
  const DashboardFile* page = FindDashboardFile("index.html");
  SendPage(res, 200, page != nullptr ? std::string(page->body) : std::string());
}

void HttpServer::Impl::DashboardAsset(const Call& call, http::Response& res) {
  const std::string& name = call.params.at(0);
  const DashboardFile* file = FindDashboardFile(name);
  // The pages are served at / only (the login form or, with a session, the fleet).
  if (file == nullptr || name.ends_with(".html")) {
    SendError(res, 404, "no asset " + name.substr(0, 64));
    return;
  }
  const std::string etag = StrongEtag(file->body);
  res.headers.emplace_back("ETag", etag);
  res.headers.emplace_back("Cache-Control", "no-cache");
  if (const std::string* seen = Header(call.req, "If-None-Match");
      seen != nullptr && IfNoneMatchHits(*seen, etag)) {
    res.status = 304;
    return;
  }
  res.content_type = ContentTypeOf(name);
  res.body = std::string(file->body);
}

void HttpServer::Impl::Login(const Call& call, http::Response& res) {
  const http::Request& req = call.req;
  const bool json = IsJson(req);
  LoginRequest request;
  request.remote_address = req.remote_address;
  if (json) {
    boost::system::error_code ec;
    const boost::json::value body = boost::json::parse(req.body, ec);
    const boost::json::object* object = ec ? nullptr : body.if_object();
    const boost::json::value* name = object != nullptr ? object->if_contains("name") : nullptr;
    const boost::json::value* secret = object != nullptr ? object->if_contains("secret") : nullptr;
    if (object == nullptr || secret == nullptr || !secret->is_string() ||
        (name != nullptr && !name->is_string())) {
      SendError(res, 400,
                R"(a JSON login is {"name": "...", "secret": "..."} (name empty or )"
                R"(absent for a token))");
      return;
    }
    request.secret = std::string(secret->get_string());
    if (name != nullptr) request.name = std::string(name->get_string());
  } else {
    request.name = FormValue(req.body, "name").value_or("");
    request.secret = FormValue(req.body, "secret").value_or("");
  }
  res.headers.emplace_back("Cache-Control", "no-store");
  std::int64_t retry_after = 0;
  Outcome<NewSession> opened = sessions.Login(request, &retry_after);
  if (!opened) {
    const std::string& reason = opened.failure().reason;
    if (reason == kTooManyAttempts) {
      const std::string seconds = std::to_string(std::max<std::int64_t>(retry_after, 1));
      res.headers.emplace_back("Retry-After", seconds);
      const std::string message = "too many failed logins: try again in " + seconds + " s";
      if (json) {
        SendError(res, 429, message);
      } else {
        SendPage(res, 429,
                 LoginPage(R"(<p class="error" role="alert">Too many failed logins: try again )"
                           "in " + seconds + " seconds.</p>"));
      }
    } else if (reason == kUnauthorized) {
      // Never which part was wrong: a name that exists is not told from one that does not.
      const std::string message = "login failed: unknown name, password or token";
      if (json) {
        SendError(res, 401, message);
      } else {
        SendPage(res, 401,
                 LoginPage(R"(<p class="error" role="alert">Login failed: unknown )"
                           R"(name, password or token.</p>)"));
      }
    } else {
      SendStoreFailure(res, opened.failure());
    }
    return;
  }
  const std::int64_t max_age = std::max<std::int64_t>(opened->expires_unix - auth.Now(), 1);
  res.headers.emplace_back(
      "Set-Cookie", SessionCookieHeader(opened->cookie, std::chrono::seconds(max_age), secure));
  if (json) {
    const SessionView view{opened->principal, opened->csrf_token, opened->expires_unix};
    SendJson(res, 200, SessionJson(opened->principal, &view, routing.base_domain));
  } else {
    res.status = 303;
    res.headers.emplace_back("Location", "/");
  }
}

// CSRF-checked when there is a session to end: a page elsewhere cannot log a user out. Without a
// valid session there is nothing to end; the cookie is cleared all the same.
void HttpServer::Impl::Logout(const Call& call, http::Response& res) {
  const http::Request& req = call.req;
  const bool json = IsJson(req);
  res.headers.emplace_back("Cache-Control", "no-store");
  bool ended = false;
  if (const std::optional<std::string> cookie = CookieValue(req, SessionCookieName(secure))) {
    Outcome<SessionView> session = sessions.Lookup(*cookie);
    if (!session && session.failure().reason != kUnauthorized) {
      SendStoreFailure(res, session.failure());
      return;
    }
    if (session) {
      const std::string* header = Header(req, "X-CSRF-Token");
      const std::string presented =
          header != nullptr ? *header : (json ? "" : FormValue(req.body, "csrf").value_or(""));
      if (!Sessions::CheckCsrf(*session, presented)) {
        SendError(res, 403, "POST /logout needs the session's CSRF token (X-CSRF-Token)");
        return;
      }
      Outcome<bool> logged_out = sessions.Logout(*cookie);
      if (!logged_out) {
        SendStoreFailure(res, logged_out.failure());
        return;
      }
      ended = *logged_out;
    }
  }
  res.headers.emplace_back("Set-Cookie", SessionCookieHeader("", std::chrono::seconds(0), secure));
  if (json || Header(req, "X-CSRF-Token") != nullptr) {
    SendJson(res, 200, ended ? R"({"loggedOut":true})" : R"({"loggedOut":false})");
  } else {
    res.status = 303;
    res.headers.emplace_back("Location", "/");
  }
}

void HttpServer::Impl::Session(const Call& call, http::Response& res) {
  res.headers.emplace_back("Cache-Control", "no-store");
  SendJson(res, 200, SessionJson(call.who, call.session, routing.base_domain));
}

HttpServer::HttpServer(Store& store, Metrics& metrics, HttpHandlers handlers,
                       HttpServerOptions options)
    : impl_(std::make_unique<Impl>(store, metrics, std::move(handlers), options)) {}

HttpServer::~HttpServer() {
  Stop();
}

Outcome<Done> HttpServer::Start() {
  const bool open = impl_->auth.open();
  if (open && !manifests::IsLoopbackListen(impl_->listen)) {
    return Failure::Stalled("ListenFailed",
                            "cannot listen on \"" + impl_->listen +
                                "\" without a token: without http.tokenEnv/tokenFile the API "
                                "serves only on a loopback address (127.0.0.1, [::1], localhost)");
  }
  Outcome<Done> started = impl_->listener.Start();
  if (started && open) {
    LogLine("no token configured: serving " + Served(impl_->listen, port()) +
            " to local clients only, without authentication");
  }
  return started;
}

int HttpServer::port() const {
  return impl_->listener.port();
}

void HttpServer::Stop() {
  if (!impl_) return;
  impl_->listener.Stop();  // every stream's connection is closed: the hub forgets them
  const std::unique_lock lock(impl_->liveness->mutex);  // waits for a check in progress
  impl_->liveness->alive = false;
}

}  // namespace tmaster::controller
