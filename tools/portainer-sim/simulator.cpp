#include "tools/portainer-sim/simulator.hpp"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "common/crypto.hpp"
#include "tools/portainer-sim/simulator_impl.hpp"

namespace tmaster::tools::portainer_sim {
namespace {

using Impl = Simulator::Impl;

struct RouteDef {
  std::string_view method;  ///< "*": any method (the Docker proxy is a path prefix)
  std::string_view pattern;
  bool is_public;
  Impl::Handler handler;
};

/// Portainer's routes in registration order (gorilla/mux: first full match wins; a path that
/// matches with another method is a 405).
const std::vector<RouteDef>& Routes() {
  static const std::vector<RouteDef> routes = {
      {"GET", "/api/system/status", true, &Impl::SystemStatus},
      {"GET", "/api/status", true, &Impl::SystemStatus},
      {"POST", "/api/auth", true, &Impl::Auth},
      {"POST", "/api/users/{id}/tokens", false, &Impl::CreateAccessToken},
      {"GET", "/api/endpoints", false, &Impl::EndpointList},
      {"POST", "/api/endpoints", false, &Impl::NotSimulated},
      {"GET", "/api/endpoints/{id}", false, &Impl::EndpointInspect},
      {"PUT", "/api/endpoints/{id}", false, &Impl::NotSimulated},
      {"DELETE", "/api/endpoints/{id}", false, &Impl::NotSimulated},
      {"*", "/api/endpoints/{id}/docker/{rest*}", false, &Impl::DockerProxy},
      {"POST", "/api/stacks", false, &Impl::StackCreateDeprecated},
      {"GET", "/api/stacks", false, &Impl::StackList},
      {"POST", "/api/stacks/create/{type}/{method}", false, &Impl::StackCreate},
      {"POST", "/api/stacks/webhooks/{webhookID}", true, &Impl::StackWebhook},
      {"GET", "/api/stacks/{id}", false, &Impl::StackInspect},
      {"PUT", "/api/stacks/{id}", false, &Impl::StackUpdate},
      {"DELETE", "/api/stacks/{id}", false, &Impl::StackDelete},
      {"GET", "/api/stacks/{id}/file", false, &Impl::StackFile},
      {"POST", "/api/stacks/{id}/start", false, &Impl::StackStart},
      {"POST", "/api/stacks/{id}/stop", false, &Impl::StackStop},
      {"POST", "/api/stacks/{id}/git", false, &Impl::StackGitUpdate},
      {"PUT", "/api/stacks/{id}/git/redeploy", false, &Impl::StackGitRedeploy},
      {"PUT", "/api/stacks/{id}/associate", false, &Impl::NotSimulated},
      {"POST", "/api/stacks/{id}/migrate", false, &Impl::NotSimulated},
      {"DELETE", "/api/stacks/name/{name}", false, &Impl::NotSimulated},
  };
  return routes;
}

std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t slash = path.find('/', start);
    parts.push_back(path.substr(start, slash == std::string_view::npos ? slash : slash - start));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return parts;
}

/// `{name}` matches one non-empty segment; a final `{name*}` matches the non-empty rest.
bool MatchPath(std::string_view pattern, std::string_view path,
               std::map<std::string, std::string>& vars) {
  const auto want = SplitPath(pattern);
  const auto got = SplitPath(path);
  vars.clear();
  for (std::size_t i = 0; i < want.size(); ++i) {
    const std::string_view w = want[i];
    const bool is_var = w.size() > 2 && w.front() == '{' && w.back() == '}';
    if (is_var && w[w.size() - 2] == '*') {
      if (i >= got.size()) return false;
      std::string rest;
      for (std::size_t j = i; j < got.size(); ++j) {
        if (j > i) rest += '/';
        rest += got[j];
      }
      if (rest.empty()) return false;
      vars[std::string(w.substr(1, w.size() - 3))] = rest;
      return true;
    }
    if (i >= got.size()) return false;
    if (is_var) {
      if (got[i].empty()) return false;
      vars[std::string(w.substr(1, w.size() - 2))] = std::string(got[i]);
    } else if (w != got[i]) {
      return false;
    }
  }
  return want.size() == got.size();
}

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) {
      return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string CookieValue(const std::string& cookie_header, std::string_view name) {
  std::size_t pos = 0;
  while (pos < cookie_header.size()) {
    std::size_t end = cookie_header.find(';', pos);
    if (end == std::string::npos) end = cookie_header.size();
    std::string_view part(cookie_header.data() + pos, end - pos);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    const std::size_t eq = part.find('=');
    if (eq != std::string_view::npos && part.substr(0, eq) == name) {
      return std::string(part.substr(eq + 1));
    }
    pos = end + 1;
  }
  return "";
}

std::optional<std::string> Base64UrlDecode(std::string_view text) {
  std::string standard(text);
  for (char& c : standard) {
    if (c == '-') c = '+';
    if (c == '_') c = '/';
  }
  while (standard.size() % 4 != 0) standard.push_back('=');
  std::string out;
  if (!crypto::Base64Decode(standard, out)) return std::nullopt;
  return out;
}

std::string FaultActionName(Fault::Action action) {
  switch (action) {
    case Fault::Action::kFail:
      return "fail";
    case Fault::Action::kDelay:
      return "delay";
    case Fault::Action::kTimeout:
      return "timeout";
  }
  return "fail";
}

json::object FaultJson(const Fault& fault) {
  json::object o;
  if (fault.call) o["call"] = *fault.call;
  if (!fault.route.empty()) {
    o["route"] = fault.route;
    o["nth"] = fault.nth;
    o["times"] = fault.times;
  }
  o["action"] = FaultActionName(fault.action);
  o["status"] = fault.status;
  o["delayMs"] = fault.delay_ms;
  o["message"] = fault.message;
  return o;
}

/// The simulator's own view of an environment (the API shape is EndpointJson).
json::object SimEndpointJson(const Endpoint& e) {
  return json::object{{"Id", e.id},
                      {"Name", e.name},
                      {"Type", e.type},
                      {"URL", e.url},
                      {"Status", e.up ? kEndpointStatusUp : kEndpointStatusDown},
                      {"SwarmId", e.swarm_id},
                      {"GroupId", e.group_id}};
}

json::object SimStackJson(const State& state, const Stack& stack) {
  json::object o = StackJson(stack, state.ResourceControlFor(stack));
  o["StackFileContent"] = stack.file_content;
  o["Running"] = stack.running;
  return o;
}

bool HasKey(const json::object& o, std::string_view key) {
  return std::any_of(o.begin(), o.end(),
                     [&](const auto& entry) { return IEquals(entry.key(), key); });
}

ApiResponse KnobError(int status, const std::string& message) {
  return JsonResponse(status, json::object{{"message", message}});
}

}  // namespace

// --- helpers shared with handlers.cpp ---

std::string Call::Query(std::string_view name) const {
  for (const auto& [key, value] : req.query) {
    if (key == name) return value;
  }
  return "";
}

std::string Call::Header(std::string_view name) const {
  for (const auto& [key, value] : req.headers) {
    if (IEquals(key, name)) return value;
  }
  return "";
}

std::string Call::FormValue(std::string_view name) const {
  for (const auto& field : req.form) {
    if (field.name == name && field.filename.empty()) return field.content;
  }
  return Query(name);
}

const FormField* Call::FormFile(std::string_view name) const {
  for (const auto& field : req.form) {
    if (field.name == name && !field.filename.empty()) return &field;
  }
  return nullptr;
}

std::optional<std::string> GoAtoi(std::string_view text, std::int64_t& out) {
  const auto quoted = [&] {
    std::string q = "\"";
    for (const char c : text) {
      if (c == '"' || c == '\\') {
        q += '\\';
        q += c;
      } else if (static_cast<unsigned char>(c) < 0x20) {
        char buffer[8];
        std::snprintf(buffer, sizeof buffer, "\\x%02x", static_cast<unsigned>(c));
        q += buffer;
      } else {
        q += c;
      }
    }
    return q + "\"";
  };
  std::string_view digits = text;
  bool negative = false;
  if (!digits.empty() && (digits.front() == '+' || digits.front() == '-')) {
    negative = digits.front() == '-';
    digits.remove_prefix(1);
  }
  if (digits.empty()) return "strconv.Atoi: parsing " + quoted() + ": invalid syntax";
  unsigned long long value = 0;
  bool overflow = false;
  for (const char c : digits) {
    if (c < '0' || c > '9') return "strconv.Atoi: parsing " + quoted() + ": invalid syntax";
    const auto digit = static_cast<unsigned long long>(c - '0');
    if (value > (9223372036854775808ULL - digit) / 10) overflow = true;
    if (!overflow) value = value * 10 + digit;
  }
  if (overflow || (!negative && value > 9223372036854775807ULL)) {
    return "strconv.Atoi: parsing " + quoted() + ": value out of range";
  }
  out = negative ? static_cast<std::int64_t>(0 - value) : static_cast<std::int64_t>(value);
  return std::nullopt;
}

ApiResponse JsonResponse(int status, const json::value& body) {
  ApiResponse res;
  res.status = status;
  res.content_type = "application/json";
  res.body = GoSerialize(body);
  return res;
}

ApiResponse ErrorResponse(int status, const std::string& message, const std::string& error) {
  ApiResponse res;
  res.status = status;
  res.content_type = "application/json";
  res.body = ErrorBody(message, Capitalize(error.empty() ? message : error));
  return res;
}

ApiResponse RawErrorResponse(int status, const std::string& message, const std::string& details) {
  ApiResponse res;
  res.status = status;
  res.content_type = "application/json";
  res.body = ErrorBody(message, details);
  return res;
}

ApiResponse EmptyResponse(int status) {
  ApiResponse res;
  res.status = status;
  return res;
}

ApiResponse TextResponse(int status, const std::string& body) {
  ApiResponse res;
  res.status = status;
  res.content_type = "text/plain; charset=utf-8";
  res.body = body;
  return res;
}

std::string RandomUuid() {
  std::string bytes = crypto::RandomBytes(16);
  bytes[6] = static_cast<char>((static_cast<unsigned char>(bytes[6]) & 0x0f) | 0x40);
  bytes[8] = static_cast<char>((static_cast<unsigned char>(bytes[8]) & 0x3f) | 0x80);
  const std::string hex = crypto::Hex(bytes);
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20);
}

// --- Interrupter ---

bool Interrupter::SleepFor(std::chrono::milliseconds duration) {
  std::unique_lock lock(mutex_);
  return !cv_.wait_for(lock, duration, [this] { return interrupted_; });
}

void Interrupter::Interrupt() {
  {
    std::lock_guard lock(mutex_);
    interrupted_ = true;
  }
  cv_.notify_all();
}

// --- Simulator ---

Simulator::Simulator(SimOptions options, Clock clock, Sleeper sleeper)
    : impl_(std::make_unique<Impl>(std::move(options), std::move(clock), std::move(sleeper))) {}

Simulator::~Simulator() = default;

ApiResponse Simulator::Handle(const ApiRequest& request) {
  if (request.path == "/__sim" || request.path.rfind("/__sim/", 0) == 0) {
    return impl_->HandleKnob(request);
  }
  return impl_->HandleApi(request);
}

std::string Simulator::DumpState() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->DumpStateLocked();
}

Simulator::Impl::Impl(SimOptions opts, Clock clk, Sleeper slp)
    : options(std::move(opts)),
      state(clk),
      sleeper(std::move(slp)),
      clock(std::move(clk)),
      instance_id(RandomUuid()),
      jwt_secret(crypto::RandomBytes(32)) {
  User admin;
  admin.id = 1;
  admin.username = options.admin_user.empty() ? "admin" : options.admin_user;
  admin.role = kRoleAdmin;
  admin.password = options.admin_password;
  users.push_back(admin);
  for (const Secret& key : options.api_keys) {
    ApiKeyRecord record;
    record.id = next_api_key_id++;
    record.user_id = admin.id;
    record.description = "portainer-sim command line";
    record.prefix = key.Reveal().substr(0, 7);
    record.digest = crypto::Sha256(key.Reveal());
    record.date_created = clock();
    api_keys.push_back(std::move(record));
  }
  options.api_keys.clear();  // only digests are kept
  ResetLocked(options.endpoint_count);
}

void Simulator::Impl::ResetLocked(int endpoint_count) {
  state.Reset(endpoint_count);
  faults.clear();
  deploy_delay_ms = 0;
  total_requests = 0;
  counters.clear();
  log.clear();
  auth_attempts.clear();
  banned_until.clear();
}

std::optional<Fault> Simulator::Impl::TakeFault(std::uint64_t seq, const std::string& route_key,
                                                std::uint64_t route_count) {
  for (auto it = faults.begin(); it != faults.end(); ++it) {
    bool hit = false;
    if (it->call) {
      hit = *it->call == seq;
    } else if (it->route == "*" || it->route == route_key) {
      hit = it->nth == 0 || it->nth == route_count;
    }
    if (!hit) continue;
    Fault fault = *it;
    if (it->call || --it->times <= 0) {
      faults.erase(it);
    } else if (it->nth != 0) {
      ++it->nth;  // consecutive requests to the route
    }
    return fault;
  }
  return std::nullopt;
}

ApiResponse Simulator::Impl::HandleApi(const ApiRequest& req) {
  std::unique_lock lock(mutex);
  const std::uint64_t seq = ++total_requests;

  const RouteDef* matched = nullptr;
  std::string_view first_pattern;
  std::map<std::string, std::string> vars, candidate;
  for (const RouteDef& route : Routes()) {
    if (!MatchPath(route.pattern, req.path, candidate)) continue;
    if (first_pattern.empty()) first_pattern = route.pattern;
    if (route.method == "*" || route.method == req.method) {
      matched = &route;
      vars = candidate;
      break;
    }
  }
  const std::string route_key =
      req.method + " " +
      (matched != nullptr
           ? std::string(matched->pattern)
           : (first_pattern.empty() ? std::string("(unmatched)") : std::string(first_pattern)));
  const std::uint64_t route_count = ++counters[route_key];
  const std::optional<Fault> fault = TakeFault(seq, route_key, route_count);

  ApiResponse res;
  std::string auth_kind = "none";
  if (fault && fault->action == Fault::Action::kFail) {
    res = ErrorResponse(
        fault->status, fault->message.empty() ? "portainer-sim: injected failure" : fault->message);
    res.headers.emplace_back("X-Content-Type-Options", "nosniff");
  } else {
    if (fault && fault->action == Fault::Action::kDelay) {
      lock.unlock();
      sleeper(std::chrono::milliseconds(fault->delay_ms));
      lock.lock();
    }
    Call probe{req, {}, nullptr, "", &lock};
    const bool mutating = req.method != "GET" && req.method != "HEAD" && req.method != "OPTIONS" &&
                          req.method != "TRACE";
    const bool has_auth_cookie = !CookieValue(probe.Header("Cookie"), "portainer_api_key").empty();
    if (mutating && has_auth_cookie && probe.Header("X-CSRF-Token").empty()) {
      // gorilla/csrf guards cookie-authenticated sessions: clients must not keep a cookie jar.
      res = TextResponse(403, "Forbidden - CSRF token not found in request\n");
      res.headers.emplace_back("X-Content-Type-Options", "nosniff");  // Go's http.Error
    } else if (matched == nullptr) {
      res = first_pattern.empty() ? TextResponse(404, "404 page not found\n") : EmptyResponse(405);
      if (res.status == 404) res.headers.emplace_back("X-Content-Type-Options", "nosniff");
    } else {
      res = Dispatch(req, matched->handler, matched->is_public, std::move(vars), lock, auth_kind);
    }
  }

  LogEntry entry;
  entry.seq = seq;
  entry.method = req.method;
  entry.path = req.path;
  entry.query = req.raw_query;
  entry.route = route_key;
  entry.status = res.status;
  entry.auth = auth_kind;
  if (fault) entry.fault = FaultActionName(fault->action);
  log.push_back(std::move(entry));
  if (log.size() > kRequestLogLimit) log.pop_front();

  if (fault && fault->action == Fault::Action::kTimeout) {
    // The effect is stored; the answer comes too late for the client's read timeout.
    lock.unlock();
    sleeper(std::chrono::milliseconds(fault->delay_ms > 0 ? fault->delay_ms : 60000));
  }
  return res;
}

ApiResponse Simulator::Impl::Dispatch(const ApiRequest& req, Handler handler, bool is_public,
                                      std::map<std::string, std::string> vars,
                                      std::unique_lock<std::mutex>& lock, std::string& auth_kind) {
  Call call{req, std::move(vars), nullptr, is_public ? "public" : "", &lock};
  ApiResponse res;
  if (!is_public) {
    if (auto denied = Authenticate(call)) {
      auth_kind = "rejected";
      res = std::move(*denied);
      res.headers.emplace_back("X-Content-Type-Options", "nosniff");
      return res;
    }
  }
  auth_kind = call.auth;
  res = (this->*handler)(call);
  res.headers.emplace_back("X-Content-Type-Options", "nosniff");
  if (!is_public && res.status >= 200 && res.status < 300) {
    res.headers.emplace_back("X-CSRF-Token", crypto::Base64(crypto::RandomBytes(32)));
  }
  return res;
}

std::optional<ApiResponse> Simulator::Impl::Authenticate(Call& call) {
  const std::string api_key_header = call.Header("X-API-Key");
  const std::string authorization = call.Header("Authorization");
  if (!api_key_header.empty() && !authorization.empty()) {
    // Contract §1: message = details, verbatim (not capitalized).
    const std::string both = "api key and auth header are not allowed at the same time";
    return RawErrorResponse(403, both, both);
  }
  const auto invalid = [] { return ErrorResponse(401, "Invalid JWT token", "Unauthorized"); };

  // Lookup order: API key (header, then ?X-API-KEY=) -> cookie -> Authorization / ?token=.
  std::string api_key = api_key_header.empty() ? call.Query("X-API-KEY") : api_key_header;
  if (!api_key.empty()) {
    const std::string digest = crypto::Sha256(api_key);
    for (const ApiKeyRecord& record : api_keys) {
      if (!crypto::ConstantTimeEqual(record.digest, digest)) continue;
      call.user = FindUser(record.user_id);
      if (call.user == nullptr) return invalid();
      call.auth = "apikey";
      return std::nullopt;
    }
    return invalid();
  }
  const std::string cookie = CookieValue(call.Header("Cookie"), "portainer_api_key");
  if (!cookie.empty()) {
    call.user = VerifyJwt(cookie);
    if (call.user == nullptr) return invalid();
    call.auth = "cookie";
    return std::nullopt;
  }
  std::string token = authorization;
  if (token.rfind("Bearer ", 0) == 0) token = token.substr(7);
  if (token.empty()) token = call.Query("token");
  if (!token.empty()) {
    call.user = VerifyJwt(token);
    if (call.user == nullptr) return invalid();
    call.auth = "jwt";
    return std::nullopt;
  }
  return ErrorResponse(401, "A valid authorization token is missing", "Unauthorized");
}

const User* Simulator::Impl::FindUser(std::int64_t id) const {
  for (const User& user : users) {
    if (user.id == id) return &user;
  }
  return nullptr;
}

std::string Simulator::Impl::IssueJwt(const User& user) {
  const std::int64_t now = clock();
  json::object claims;
  claims["id"] = user.id;
  claims["username"] = user.username;
  claims["role"] = user.role;
  claims["scope"] = "default";
  claims["forceChangePassword"] = false;
  claims["exp"] = now + 8 * 3600;
  claims["iat"] = now;
  claims["jti"] = RandomUuid();
  const std::string signing_input = crypto::Base64Url(R"({"alg":"HS256","typ":"JWT"})") + "." +
                                    crypto::Base64Url(json::serialize(claims));
  return signing_input + "." + crypto::Base64Url(crypto::HmacSha256(jwt_secret, signing_input));
}

const User* Simulator::Impl::VerifyJwt(std::string_view token) const {
  const std::size_t first = token.find('.');
  const std::size_t second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos) return nullptr;
  const std::string_view signing_input = token.substr(0, second);
  const std::string expected = crypto::Base64Url(crypto::HmacSha256(jwt_secret, signing_input));
  if (!crypto::ConstantTimeEqual(expected, token.substr(second + 1))) return nullptr;
  const auto payload = Base64UrlDecode(token.substr(first + 1, second - first - 1));
  if (!payload) return nullptr;
  json::value claims;
  if (GoDecode(*payload, claims) || !claims.is_object()) return nullptr;
  const auto* exp = claims.get_object().if_contains("exp");
  const auto* id = claims.get_object().if_contains("id");
  if (exp == nullptr || id == nullptr || !exp->is_int64() || !id->is_int64()) return nullptr;
  if (exp->get_int64() <= clock()) return nullptr;
  return FindUser(id->get_int64());
}

bool Simulator::Impl::RateLimited(const std::string& client) {
  // Portainer: 10 requests per second per client IP on /api/auth, then a one-hour ban.
  const auto now = std::chrono::steady_clock::now();
  if (const auto it = banned_until.find(client); it != banned_until.end()) {
    if (now < it->second) return true;
    banned_until.erase(it);
  }
  auto& attempts = auth_attempts[client];
  while (!attempts.empty() && now - attempts.front() >= std::chrono::seconds(1)) {
    attempts.pop_front();
  }
  attempts.push_back(now);
  if (attempts.size() > 10) {
    banned_until[client] = now + std::chrono::hours(1);
    attempts.clear();
    return true;
  }
  return false;
}

std::optional<std::string> Simulator::Impl::DeployWithDelay(Call& call, std::int64_t endpoint_id,
                                                            Stack& stack) {
  if (deploy_delay_ms > 0 && call.lock != nullptr) {
    const auto delay = std::chrono::milliseconds(deploy_delay_ms);
    call.lock->unlock();
    {
      std::lock_guard deploy_lock(deploy_mutex);
      sleeper(delay);
    }
    call.lock->lock();
  }
  const Endpoint* endpoint = state.FindEndpoint(endpoint_id);
  if (endpoint == nullptr) {
    return "failed to deploy a stack: environment " + std::to_string(endpoint_id) + " vanished";
  }
  return state.Deploy(*endpoint, stack);
}

std::string Simulator::Impl::DumpStateLocked() const {
  json::object o;
  o["instanceId"] = instance_id;
  o["version"] = std::string(kPortainerVersion);
  o["now"] = state.Now();
  o["nextStackId"] = state.PeekStackId();
  o["nextResourceControlId"] = state.PeekResourceControlId();
  json::array endpoints;
  for (const auto& [id, endpoint] : state.Endpoints())
    endpoints.push_back(SimEndpointJson(endpoint));
  o["endpoints"] = std::move(endpoints);
  json::array stacks;
  for (const auto& [id, stack] : state.Stacks()) stacks.push_back(SimStackJson(state, stack));
  o["stacks"] = std::move(stacks);
  json::array rcs;
  for (const auto& [id, rc] : state.ResourceControls()) rcs.push_back(ResourceControlJson(rc));
  o["resourceControls"] = std::move(rcs);
  json::array foreign;
  for (const auto& f : state.Foreign()) {
    foreign.push_back(json::object{
        {"endpointId", f.endpoint_id}, {"name", f.name}, {"kind", f.swarm ? "swarm" : "compose"}});
  }
  o["foreign"] = std::move(foreign);
  json::array users_json;
  for (const User& user : users) {
    users_json.push_back(
        json::object{{"Id", user.id}, {"Username", user.username}, {"Role", user.role}});
  }
  o["users"] = std::move(users_json);
  json::array keys;
  for (const ApiKeyRecord& key : api_keys) {
    keys.push_back(json::object{{"id", key.id},
                                {"userId", key.user_id},
                                {"description", key.description},
                                {"prefix", key.prefix}});
  }
  o["apiKeys"] = std::move(keys);
  json::array faults_json;
  for (const Fault& fault : faults) faults_json.push_back(FaultJson(fault));
  o["faults"] = std::move(faults_json);
  o["deployFailuresPending"] = state.PendingDeployFailures();
  o["deployDelayMs"] = deploy_delay_ms;
  o["totalRequests"] = total_requests;
  json::object counters_json;
  for (const auto& [route, count] : counters) counters_json[route] = count;
  o["counters"] = std::move(counters_json);
  json::array requests;
  for (const LogEntry& entry : log) {
    json::object e{{"seq", entry.seq},     {"method", entry.method}, {"path", entry.path},
                   {"query", entry.query}, {"route", entry.route},   {"status", entry.status},
                   {"auth", entry.auth}};
    if (!entry.fault.empty()) e["fault"] = entry.fault;
    requests.push_back(std::move(e));
  }
  o["requests"] = std::move(requests);
  return GoSerialize(o);
}

// --- the /__sim/ control plane ---

ApiResponse Simulator::Impl::HandleKnob(const ApiRequest& req) {
  std::unique_lock lock(mutex);
  std::map<std::string, std::string> vars;
  const auto is = [&](std::string_view method, std::string_view pattern) {
    return req.method == method && MatchPath(pattern, req.path, vars);
  };
  json::value body;
  const auto read_body = [&](bool required) -> std::optional<ApiResponse> {
    if (req.body.empty() && !required) {
      body = json::object();
      return std::nullopt;
    }
    if (auto error = GoDecode(req.body, body))
      return KnobError(400, "invalid JSON body: " + *error);
    return std::nullopt;
  };
  // GET /__sim/faults, and the answer to POST: the faults armed and the deploy knobs.
  const auto faults_answer = [&] {
    json::array out;
    for (const Fault& fault : faults) out.push_back(FaultJson(fault));
    return JsonResponse(200, json::object{{"faults", std::move(out)},
                                          {"deployFailuresPending", state.PendingDeployFailures()},
                                          {"deployDelayMs", deploy_delay_ms},
                                          {"totalRequests", total_requests}});
  };
  const auto endpoint_id = [&](std::int64_t& id) {
    return !GoAtoi(vars["id"], id) && state.FindEndpoint(id) != nullptr;
  };

  if (is("GET", "/__sim/state")) {
    ApiResponse res;
    res.content_type = "application/json";
    res.body = DumpStateLocked();
    return res;
  }
  if (is("POST", "/__sim/reset")) {
    if (auto bad = read_body(false)) return *bad;
    std::int64_t count = options.endpoint_count;
    GoStruct reader(body, "sim.reset");
    reader.Int("endpoints", count);
    if (reader.Error()) return KnobError(400, *reader.Error());
    ResetLocked(static_cast<int>(std::clamp<std::int64_t>(count, 1, 100000)));
    return EmptyResponse(204);
  }
  if (is("POST", "/__sim/endpoints")) {
    if (auto bad = read_body(true)) return *bad;
    Endpoint endpoint;
    std::int64_t id = 0, type = 1, group = 1;
    GoStruct reader(body, "sim.endpoint");
    reader.Int("Id", id);
    reader.String("Name", endpoint.name);
    reader.Int("Type", type);
    reader.String("URL", endpoint.url);
    reader.String("SwarmId", endpoint.swarm_id);
    reader.Int("GroupId", group);
    if (reader.Error()) return KnobError(400, *reader.Error());
    if (body.is_object()) {
      for (const auto& entry : body.get_object()) {
        if (!IEquals(entry.key(), "Status")) continue;
        const json::value& v = entry.value();
        if (v == json::value("down") || v == json::value(2)) {
          endpoint.up = false;
        } else if (!(v == json::value("up") || v == json::value(1))) {
          return KnobError(400, "Status must be \"up\", \"down\", 1 or 2");
        }
      }
    }
    endpoint.id = id;
    endpoint.type = static_cast<int>(type);
    endpoint.group_id = static_cast<int>(group);
    if (!state.AddEndpoint(endpoint)) {
      return KnobError(409, "environment " + std::to_string(endpoint.id) + " already exists");
    }
    return JsonResponse(200, SimEndpointJson(endpoint));
  }
  if (is("DELETE", "/__sim/endpoints/{id}")) {
    std::int64_t id = 0;
    if (!endpoint_id(id)) return KnobError(404, "unknown environment");
    state.RemoveEndpoint(id);
    return EmptyResponse(204);
  }
  if (is("POST", "/__sim/endpoints/{id}/down") || is("POST", "/__sim/endpoints/{id}/up")) {
    std::int64_t id = 0;
    if (!endpoint_id(id)) return KnobError(404, "unknown environment");
    const bool up = req.path.size() >= 3 && req.path.substr(req.path.size() - 3) == "/up";
    state.SetEndpointUp(id, up);
    return JsonResponse(200, SimEndpointJson(*state.FindEndpoint(id)));
  }
  if (is("POST", "/__sim/foreign") || is("DELETE", "/__sim/foreign")) {
    if (auto bad = read_body(true)) return *bad;
    ForeignProject project;
    std::string kind = "compose";
    GoStruct reader(body, "sim.foreign");
    reader.Int("endpointId", project.endpoint_id);
    reader.String("name", project.name);
    reader.String("kind", kind);
    if (reader.Error()) return KnobError(400, *reader.Error());
    if (project.name.empty()) return KnobError(400, "name is required");
    if (kind != "compose" && kind != "swarm")
      return KnobError(400, "kind must be compose or swarm");
    project.swarm = kind == "swarm";
    if (req.method == "DELETE") {
      return state.RemoveForeign(project) ? EmptyResponse(204)
                                          : KnobError(404, "no such foreign project");
    }
    if (state.FindEndpoint(project.endpoint_id) == nullptr) {
      return KnobError(404, "unknown environment");
    }
    state.AddForeign(project);
    return EmptyResponse(204);
  }
  if (is("GET", "/__sim/faults")) {
    return faults_answer();
  }
  if (is("DELETE", "/__sim/faults")) {
    faults.clear();
    state.AddDeployFailures(-state.PendingDeployFailures(), "");
    deploy_delay_ms = 0;
    return EmptyResponse(204);
  }
  if (is("POST", "/__sim/faults")) {
    if (auto bad = read_body(true)) return *bad;
    std::vector<json::value> specs;
    if (body.is_array()) {
      for (const auto& item : body.get_array()) specs.push_back(item);
    } else {
      specs.push_back(body);
    }
    std::vector<Fault> added;
    for (const json::value& spec : specs) {
      if (!spec.is_object()) return KnobError(400, "a fault is a JSON object");
      const json::object& o = spec.get_object();
      GoStruct reader(spec, "sim.fault");
      std::int64_t deploy_failures = 0, deploy_delay = -1, call = 0, nth = 0, times = 1;
      std::int64_t status = 500, delay = 0;
      std::string message, action, route;
      reader.Int("deployFailures", deploy_failures);
      reader.Int("deployDelayMs", deploy_delay);
      reader.Int("call", call);
      reader.String("route", route);
      reader.Int("nth", nth);
      reader.Int("times", times);
      reader.String("action", action);
      reader.Int("status", status);
      reader.Int("delayMs", delay);
      reader.String("message", message);
      if (reader.Error()) return KnobError(400, *reader.Error());
      const bool any =
          HasKey(o, "deployFailures") || HasKey(o, "deployDelayMs") || HasKey(o, "action");
      if (!any) return KnobError(400, "expected action, deployFailures or deployDelayMs");
      if (deploy_failures != 0) state.AddDeployFailures(static_cast<int>(deploy_failures), message);
      if (deploy_delay >= 0) deploy_delay_ms = deploy_delay;
      if (!HasKey(o, "action")) continue;
      Fault fault;
      if (action == "fail") {
        fault.action = Fault::Action::kFail;
      } else if (action == "delay") {
        fault.action = Fault::Action::kDelay;
      } else if (action == "timeout") {
        fault.action = Fault::Action::kTimeout;
      } else {
        return KnobError(400, "action must be fail, delay or timeout");
      }
      if (call > 0) {
        fault.call = static_cast<std::uint64_t>(call);
      } else if (!route.empty()) {
        fault.route = route;
        fault.nth = static_cast<std::uint64_t>(std::max<std::int64_t>(0, nth));
        fault.times = std::max<std::int64_t>(1, times);
      } else {
        return KnobError(400, "a fault needs call (N-th API request) or route");
      }
      if (status < 100 || status > 599) return KnobError(400, "status must be an HTTP status");
      fault.status = static_cast<int>(status);
      fault.delay_ms = std::max<std::int64_t>(0, delay);
      fault.message = message;
      added.push_back(fault);
    }
    faults.insert(faults.end(), added.begin(), added.end());
    return faults_answer();
  }
  if (is("POST", "/__sim/stacks/{id}/drift")) {
    std::int64_t id = 0;
    Stack* stack = GoAtoi(vars["id"], id) ? nullptr : state.MutableStack(id);
    if (stack == nullptr) return KnobError(404, "unknown stack");
    if (auto bad = read_body(true)) return *bad;
    if (!body.is_object()) return KnobError(400, "drift is a JSON object");
    const json::object& o = body.get_object();
    GoStruct reader(body, "sim.drift");
    Stack changed = *stack;
    bool remove = false, stop = false, start = false;
    std::int64_t status = 0;
    std::string updated_by = "portainer-sim";
    reader.String("StackFileContent", changed.file_content);
    reader.Env("Env", changed.env);
    reader.Bool("delete", remove);
    reader.Bool("stop", stop);
    reader.Bool("start", start);
    reader.Int("Status", status);
    reader.String("UpdatedBy", updated_by);
    if (reader.Error()) return KnobError(400, *reader.Error());
    if (remove) {
      state.EraseStack(id);
      return EmptyResponse(204);
    }
    if (HasKey(o, "StackFileContent") || HasKey(o, "Env")) {
      // As if someone saved the stack in Portainer's editor: redeployed, dates moved. The
      // date moves by at least one second so a same-second drift is still visible.
      changed.update_date = std::max(state.Now(), stack->update_date + 1);
      changed.updated_by = updated_by;
      changed.status = kStackStatusActive;
      changed.running = true;
    }
    if (stop) changed.running = false;
    if (start) changed.running = true;
    if (status == kStackStatusActive || status == kStackStatusInactive) {
      changed.status = static_cast<int>(status);
    }
    state.ReplaceStack(changed);
    return JsonResponse(200, SimStackJson(state, changed));
  }
  return KnobError(404, "unknown /__sim/ route: " + req.method + " " + req.path);
}

}  // namespace tmaster::tools::portainer_sim
