#include "reconcilers/stacks/portainer_http.hpp"

#include <httplib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/json.hpp>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "common/scrub.hpp"
#include "common/text.hpp"
#include "reconcilers/stacks/plan.hpp"
#include "reconcilers/stacks/render.hpp"

namespace tmaster::stacks {
namespace {

namespace json = boost::json;

constexpr int kActive = 1;
constexpr int kInactive = 2;
constexpr std::size_t kMaxPortainerText = 1000;
constexpr std::chrono::milliseconds kMaxBackoff{30000};

enum class Route { kList, kFile, kCreate, kUpdate, kStart, kStop, kDelete, kProbe, kCount };

// Portainer's endpoint Types that are Docker engines (contract §2): 1 Docker API, 2 agent on
// Docker, 4 edge agent on Docker. 3 is Azure ACI, 5-7 Kubernetes.
constexpr std::array<std::int64_t, 3> kDockerTypes = {1, 2, 4};

// What an endpoint is, for the two routes that differ by kind (contract §3.2, §3.3).
struct EndpointKind {
  bool swarm = false;
  std::string swarm_id;  // the cluster's ID (Docker's swarm inspect `ID`); swarm only
  bool certain = true;   // false: guessed from Portainer's last snapshot, not kept
};

// ---------------------------------------------------------------------------------------------
// Small text helpers

// Portainer's name rule (contract §3.2): lower-case, then delete everything outside [-_a-z0-9].
std::string NormalizeName(std::string_view name) {
  std::string out;
  for (const char c : Lower(name)) {
    if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_') out.push_back(c);
  }
  return out;
}

bool Contains(std::string_view haystack, std::string_view needle) {
  return Lower(haystack).find(Lower(needle)) != std::string::npos;
}

// Values that must never reach a message: the API key and the secret Env values of the stack
// at hand. Portainer's deploy errors carry compose's stderr, which can echo interpolated Env
// values, so every message built from an answer goes through the step's Scrubber last (after
// truncation would be too late: a cut secret no longer matches).
void AddSecretEnv(Scrubber& scrubber, const std::vector<EnvVar>& env) {
  for (const auto& var : env) {
    if (var.secret || IsSecretEnvName(var.name)) scrubber.Add(var.value);
  }
}

// ---------------------------------------------------------------------------------------------
// The base URL

struct BaseUrl {
  std::string origin;  // scheme://host[:port], what httplib::Client takes
  std::string prefix;  // "" or "/portainer"
  bool https = false;
};

std::optional<BaseUrl> ParseBaseUrl(std::string_view url) {
  const auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return std::nullopt;
  const std::string scheme = Lower(url.substr(0, scheme_end));
  if (scheme != "http" && scheme != "https") return std::nullopt;
  const std::string_view rest = url.substr(scheme_end + 3);
  const auto path_start = rest.find('/');
  const std::string_view authority = rest.substr(0, path_start);
  std::string_view path = path_start == std::string_view::npos ? "" : rest.substr(path_start);
  if (authority.empty() || authority.find_first_of("@?# ") != std::string_view::npos) {
    return std::nullopt;  // credentials in the URL would end up in messages
  }
  if (path.find_first_of("?# ") != std::string_view::npos) return std::nullopt;
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  return BaseUrl{scheme + "://" + std::string(authority), std::string(path), scheme == "https"};
}

// ---------------------------------------------------------------------------------------------
// Portainer's JSON

std::optional<std::int64_t> IntField(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr) return std::nullopt;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64()) return static_cast<std::int64_t>(v->get_uint64());
  return std::nullopt;
}

std::string StringField(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return {};
  return std::string(v->get_string());
}

// The Stack object of contract §3.1, the fields we use.
struct StackJson {
  StackId id = 0;
  std::string name;
  int endpoint = 0;
  int type = 0;
  int status = 0;
  std::int64_t update_date = 0;
  std::vector<EnvVar> env;
};

// What the ledger and the plan compare: Portainer's UpdateDate as it is, 0 until the first
// update. Not CreationDate as a stand-in: an edit made in Portainer within the same second as
// our create moves UpdateDate from 0 to that second, and must be seen.
std::int64_t EffectiveDate(const StackJson& s) { return s.update_date; }

std::optional<StackJson> ParseStack(const json::value& value) {
  const json::object* o = value.if_object();
  if (o == nullptr) return std::nullopt;
  const auto id = IntField(*o, "Id");
  const auto endpoint = IntField(*o, "EndpointId");
  if (!id || !endpoint) return std::nullopt;
  StackJson s;
  s.id = *id;
  s.endpoint = static_cast<int>(*endpoint);
  s.name = StringField(*o, "Name");
  s.type = static_cast<int>(IntField(*o, "Type").value_or(0));
  s.status = static_cast<int>(IntField(*o, "Status").value_or(0));
  s.update_date = IntField(*o, "UpdateDate").value_or(0);
  if (const json::value* env = o->if_contains("Env"); env != nullptr && env->is_array()) {
    for (const auto& pair : env->get_array()) {
      const json::object* p = pair.if_object();
      if (p == nullptr) continue;
      EnvVar var{StringField(*p, "name"), StringField(*p, "value"), false};
      var.secret = IsSecretEnvName(var.name);
      s.env.push_back(std::move(var));
    }
  }  // `"Env": null` (never set, or wiped by an update without Env) is an empty Env
  return s;
}

std::optional<json::value> ParseJson(std::string_view body) {
  boost::system::error_code ec;
  json::value value = json::parse(body, ec);
  if (ec) return std::nullopt;
  return value;
}

std::optional<StackJson> ParseStackBody(std::string_view body) {
  const auto value = ParseJson(body);
  if (!value) return std::nullopt;
  return ParseStack(*value);
}

ObservedStack ToObserved(StackJson s) {
  ObservedStack o;
  o.id = s.id;
  o.name = std::move(s.name);
  o.endpoint = s.endpoint;
  o.type = s.type;
  o.status = s.status;
  o.update_date = EffectiveDate(s);
  o.env = std::move(s.env);
  o.workspace = MarkerOf(o.env);
  return o;
}

json::array EnvJson(const std::vector<EnvVar>& env) {
  json::array out;
  out.reserve(env.size());
  for (const auto& var : env) out.push_back(json::object{{"name", var.name}, {"value", var.value}});
  return out;
}

bool SameEnv(const std::vector<EnvVar>& a, const std::vector<EnvVar>& b) {
  std::set<std::pair<std::string, std::string>> x;
  std::set<std::pair<std::string, std::string>> y;
  for (const auto& var : a) x.emplace(var.name, var.value);
  for (const auto& var : b) y.emplace(var.name, var.value);
  return x == y;
}

// ---------------------------------------------------------------------------------------------
// One HTTP exchange

enum class Transport {
  kAnswered,
  kConnectFailed,
  kNoAnswer,
  kPastDeadline,  // the call deadline passed before the answer was complete
  kTooLarge,      // the body went over max_response_bytes
  kTlsVerifyFailed,
  kTlsSetupFailed
};

// Ends an HTTP call that runs past its deadline: at the deadline, stop() shuts the client's
// socket down (the one thing httplib lets another thread do), so a read in progress fails at
// once. Joined before the client goes away.
class CallWatchdog {
 public:
  CallWatchdog(httplib::Client& client, std::chrono::milliseconds limit)
      : thread_([this, &client, deadline = std::chrono::steady_clock::now() + limit] {
          std::unique_lock lock(mutex_);
          if (!done_cv_.wait_until(lock, deadline, [this] { return done_; })) {
            fired_ = true;
            lock.unlock();
            client.stop();
          }
        }) {}
  CallWatchdog(const CallWatchdog&) = delete;
  CallWatchdog& operator=(const CallWatchdog&) = delete;
  ~CallWatchdog() { Finish(); }

  // Stops the watch; true if the deadline had passed.
  bool Finish() {
    {
      const std::lock_guard lock(mutex_);
      done_ = true;
    }
    done_cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    const std::lock_guard lock(mutex_);
    return fired_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable done_cv_;
  bool done_ = false;
  bool fired_ = false;
  std::thread thread_;  // last: started once the members above exist
};

struct Reply {
  Transport transport = Transport::kAnswered;
  int status = 0;
  std::string body;
  std::string error;  // httplib's error name when there is no answer

  [[nodiscard]] bool Is(int code) const {
    return transport == Transport::kAnswered && status == code;
  }
};

// Portainer's error body `{"message", "details"}` as one line: message, then details when they
// add something (details repeat the message, capitalized, when Portainer had no Go error).
std::string PortainerText(const Reply& reply) {
  std::string text;
  if (const auto value = ParseJson(reply.body); value && value->is_object()) {
    const std::string message = StringField(value->get_object(), "message");
    const std::string details = StringField(value->get_object(), "details");
    text = message;
    if (!details.empty() && Lower(details) != Lower(message)) {
      text += text.empty() ? details : ": " + details;
    }
  }
  if (text.empty()) text = Trim(reply.body);
  if (text.empty()) text = "(empty body)";
  return text;
}

std::string PortainerMessage(const Reply& reply) {
  if (const auto value = ParseJson(reply.body); value && value->is_object()) {
    return StringField(value->get_object(), "message");
  }
  return {};
}

bool IsJsonError(const Reply& reply) {
  const auto value = ParseJson(reply.body);
  return value && value->is_object() && value->get_object().contains("message");
}

// What a step is doing, for messages and counting: "create stack "tm-acme" on endpoint 1".
struct Step {
  std::string what;
  Scrubber scrubber;
  int calls = 0;

  [[nodiscard]] Failure Fail(FailureKind kind, std::string reason,
                             const std::string& problem) const {
    std::string text = scrubber.Scrub(problem);
    if (text.size() > kMaxPortainerText) text = text.substr(0, kMaxPortainerText) + "...";
    return {kind, std::move(reason), what + ": " + text};
  }
};

std::string StackWhat(std::string_view verb, std::string_view name, StackId id, int endpoint) {
  std::string out = std::string(verb) + " stack " + Quoted(name);
  if (id != 0) out += " (id " + std::to_string(id) + ")";
  return out + " on endpoint " + std::to_string(endpoint);
}

bool Retryable(const Failure& failure) {
  static const std::set<std::string, std::less<>> kRetryable = {
      "PortainerUnreachable", "PortainerTimeout",     "PortainerUnavailable", "StackDeployFailed",
      "StackRemoveFailed",    "PortainerServerError", "PortainerBadResponse"};
  return failure.kind == FailureKind::kTransient && kRetryable.contains(failure.reason);
}

int EndpointOf(const Action& action) {
  struct Visitor {
    int operator()(const CreateStack& a) const { return a.stack.endpoint; }
    int operator()(const UpdateStack& a) const { return a.stack.endpoint; }
    int operator()(const StartStack& a) const { return a.endpoint; }
    int operator()(const StopStack& a) const { return a.endpoint; }
    int operator()(const DeleteStack& a) const { return a.endpoint; }
  };
  return std::visit(Visitor{}, action);
}

// The last snapshot's Swarm flag of an endpoint record (contract §2), if it has a snapshot.
std::optional<bool> SnapshotSwarm(const json::object& endpoint) {
  const json::value* snapshots = endpoint.if_contains("Snapshots");
  if (snapshots == nullptr || !snapshots->is_array() || snapshots->get_array().empty()) {
    return std::nullopt;
  }
  const json::object* last = snapshots->get_array().back().if_object();
  if (last == nullptr) return std::nullopt;
  const json::value* swarm = last->if_contains("Swarm");
  if (swarm == nullptr || !swarm->is_bool()) return std::nullopt;
  return swarm->get_bool();
}

std::string TypeName(std::int64_t type) {
  if (type == 3) return "an Azure ACI environment";
  if (type >= 5 && type <= 7) return "a Kubernetes environment";
  return "an environment of unknown Type";
}

// ---------------------------------------------------------------------------------------------

class HttpPortainerGateway final : public PortainerGateway {
 public:
  HttpPortainerGateway(PortainerOptions options, SleepFunction sleep)
      : options_(std::move(options)),
        sleep_(sleep ? std::move(sleep) : SleepFunction(RealSleep)),
        key_(Trim(options_.api_key.Reveal())),
        rng_(options_.jitter_seed != 0 ? options_.jitter_seed : std::random_device{}()) {
    options_.max_attempts = std::max(options_.max_attempts, 1);
    if (const auto url = ParseBaseUrl(options_.url)) {
      url_ = *url;
    } else {
      config_error_ = Failure::Stalled(
          "PortainerConfigInvalid",
          "the Portainer URL is not http[s]://host[:port][/prefix] (credentials, query and "
          "fragment are not allowed)");
    }
    if (!config_error_ && key_.empty()) {
      config_error_ = Failure::Stalled("PortainerUnauthorized", "no Portainer API key is set");
    }
    if (!config_error_ && std::any_of(key_.begin(), key_.end(), [](char c) {
          return std::iscntrl(static_cast<unsigned char>(c)) != 0;
        })) {
      config_error_ = Failure::Stalled("PortainerConfigInvalid",
                                       "the Portainer API key contains control characters");
    }
  }

  Outcome<std::vector<ObservedStack>> List(int endpoint) override {
    Step step = MakeStep("list stacks of endpoint " + std::to_string(endpoint), {});
    if (config_error_) return Config(step);
    auto listed = Retry([&] { return ListOnce(step, endpoint); });
    if (!listed) Forget(endpoint);
    return listed;
  }

  // The endpoint monitor's question: the probe alone, once. Unlike a list, Portainer's last
  // snapshot of a down endpoint decides nothing here (the engine is what is asked about). The
  // answer refreshes the kept kind (a standalone engine that became a swarm manager is seen at
  // the next check, not when its kind expires); a failure forgets it, as any failed call does.
  Outcome<EndpointInfo> Inspect(int endpoint) override {
    Step step = MakeStep("inspect endpoint " + std::to_string(endpoint), {});
    if (config_error_) return Config(step);
    const Reply reply = Send(step, Route::kProbe, "GET",
                             "/api/endpoints/" + std::to_string(endpoint) + "/docker/swarm");
    std::optional<Outcome<EndpointKind>> said = SwarmInspected(step, reply);
    if (!said) said = Probing(Classify(step, Route::kProbe, reply), endpoint);
    if (!*said) {
      Forget(endpoint);
      return said->failure();
    }
    Remember(endpoint, **said);
    return EndpointInfo{(*said)->swarm, (*said)->swarm_id};
  }

  Outcome<std::string> File(const ObservedStack& stack) override {
    Step step = MakeStep(StackWhat("read the file of", stack.name, stack.id, stack.endpoint), {});
    if (config_error_) return Config(step);
    return Retry([&] { return FileOnce(step, stack.id); });
  }

  Outcome<ApplyResult> Apply(const Action& action) override {
    auto applied = std::visit([this](const auto& a) { return ApplyOne(a); }, action);
    if (!applied) Forget(EndpointOf(action));
    return applied;
  }

  [[nodiscard]] CallCounts Counts() const override {
    CallCounts c;
    c.list = Count(Route::kList);
    c.file = Count(Route::kFile);
    c.create = Count(Route::kCreate);
    c.update = Count(Route::kUpdate);
    c.start = Count(Route::kStart);
    c.stop = Count(Route::kStop);
    c.remove = Count(Route::kDelete);
    c.probe = Count(Route::kProbe);
    c.retries = retries_.load();
    return c;
  }

  void ResetCounts() override {
    for (auto& counter : counts_) counter.store(0);
    retries_.store(0);
  }

 private:
  // --- plumbing ------------------------------------------------------------------------------

  [[nodiscard]] Step MakeStep(std::string what, const std::vector<EnvVar>& env) const {
    Step step{std::move(what), {}, 0};
    step.scrubber.Add(key_);
    step.scrubber.Add(options_.api_key.Reveal());
    AddSecretEnv(step.scrubber, env);
    return step;
  }

  [[nodiscard]] Failure Config(const Step& step) const {
    return step.Fail(config_error_->kind, config_error_->reason, config_error_->message);
  }

  [[nodiscard]] std::int64_t Count(Route route) const {
    return counts_.at(static_cast<std::size_t>(route)).load();
  }

  Reply Send(Step& step, Route route, const std::string& method, const std::string& path,
             const std::string& body = "") {
    ++step.calls;
    ++counts_.at(static_cast<std::size_t>(route));
    // One connection per request: no keep-alive to go stale between passes, no shared state
    // between threads, no cookies (contract §1: a cookie jar triggers CSRF 403s), and no
    // redirects (the key must not follow one to another host).
    httplib::Client client(url_.origin);
    client.set_connection_timeout(options_.connect_timeout);
    client.set_read_timeout(options_.read_timeout);
    client.set_write_timeout(options_.read_timeout);
    client.set_keep_alive(false);
    client.set_follow_location(false);
#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
    if (url_.https) {
      client.enable_server_certificate_verification(!options_.insecure_skip_verify);
      if (!options_.ca_cert_file.empty()) client.set_ca_cert_path(options_.ca_cert_file);
    }
#endif
    Reply reply;
    if (!client.is_valid()) {
      reply.transport = Transport::kTlsSetupFailed;
      reply.error = url_.https ? "HTTPS client could not be set up" : "invalid URL";
      return reply;
    }
    httplib::Request req;
    req.method = method;
    req.path = url_.prefix + path;
    req.headers = {{"X-API-Key", key_}, {"Accept", "application/json"}};
    if (!body.empty()) {
      req.body = body;
      req.headers.emplace("Content-Type", "application/json");
    }
    // The body is taken chunk by chunk: one over max_response_bytes (by its Content-Length or
    // as it arrives) stops the read there, and so does the call deadline.
    const auto deadline = std::chrono::steady_clock::now() + options_.call_deadline;
    bool too_large = false;
    req.response_handler = [&](const httplib::Response& head) {
      const std::string length = head.get_header_value("Content-Length");
      char* end = nullptr;
      const unsigned long long declared = std::strtoull(length.c_str(), &end, 10);
      too_large = !length.empty() && end != length.c_str() && declared > options_.max_response_bytes;
      return !too_large;
    };
    req.content_receiver = [&](const char* data, std::size_t size, std::uint64_t, std::uint64_t) {
      if (reply.body.size() + size > options_.max_response_bytes) {
        too_large = true;
        return false;
      }
      reply.body.append(data, size);
      return std::chrono::steady_clock::now() < deadline;
    };
    CallWatchdog watchdog(client, options_.call_deadline);
    const httplib::Result result = client.send(req);
    const bool past_deadline =
        watchdog.Finish() || std::chrono::steady_clock::now() >= deadline;
    if (too_large) {
      reply.transport = Transport::kTooLarge;
      reply.body.clear();
      return reply;
    }
    if (!result && past_deadline) {
      reply.transport = Transport::kPastDeadline;
      reply.error = httplib::to_string(result.error());
      reply.body.clear();
      return reply;
    }
    if (!result) {
      reply.error = httplib::to_string(result.error());
      switch (result.error()) {
        case httplib::Error::Connection:
        case httplib::Error::ConnectionTimeout:
        case httplib::Error::BindIPAddress:
        case httplib::Error::SSLConnection:
          reply.transport = Transport::kConnectFailed;
          break;
        case httplib::Error::SSLServerVerification:
          reply.transport = Transport::kTlsVerifyFailed;
          break;
        case httplib::Error::SSLLoadingCerts:
          reply.transport = Transport::kTlsSetupFailed;
          break;
        default:  // Read, Write, Canceled, Unknown: the request may have been processed
          reply.transport = Transport::kNoAnswer;
          break;
      }
      return reply;
    }
    reply.status = result->status;
    return reply;
  }

  // Any answer that is not a success of its route, as a Failure of that step.
  [[nodiscard]] Failure Classify(const Step& step, Route route, const Reply& reply) const {
    switch (reply.transport) {
      case Transport::kConnectFailed:
        return step.Fail(
            FailureKind::kTransient, "PortainerUnreachable",
            "cannot connect to Portainer at " + url_.origin + " (" + reply.error + ")");
      case Transport::kNoAnswer:
        return step.Fail(FailureKind::kTransient, "PortainerTimeout",
                         "no complete answer from Portainer within " +
                             std::to_string(options_.read_timeout.count()) + " ms (" + reply.error +
                             ")");
      case Transport::kPastDeadline:
        return step.Fail(FailureKind::kTransient, "PortainerTimeout",
                         "no complete answer from Portainer within the call deadline of " +
                             std::to_string(options_.call_deadline.count()) + " ms (" +
                             reply.error + ")");
      case Transport::kTooLarge:
        return step.Fail(FailureKind::kTransient, "PortainerResponseTooLarge",
                         "Portainer's answer is larger than " +
                             std::to_string(options_.max_response_bytes) +
                             " bytes (max_response_bytes); it was cut off");
      case Transport::kTlsVerifyFailed:
        return step.Fail(FailureKind::kStalled, "PortainerTlsFailed",
                         "the certificate of " + url_.origin +
                             " could not be verified (set a CA bundle, or skip verification "
                             "for lab setups)");
      case Transport::kTlsSetupFailed:
        return step.Fail(
            FailureKind::kStalled, "PortainerConfigInvalid",
            "cannot set up the connection to " + url_.origin + " (" + reply.error + ")");
      case Transport::kAnswered:
        break;
    }
    const std::string said =
        "Portainer answered " + std::to_string(reply.status) + " " + PortainerText(reply);
    const int status = reply.status;
    if (status == 401) {
      return step.Fail(FailureKind::kStalled, "PortainerUnauthorized",
                       said + " (check the API key)");
    }
    if (status == 403) return step.Fail(FailureKind::kStalled, "PortainerForbidden", said);
    if (status == 404 && IsJsonError(reply)) {
      const std::string message = PortainerMessage(reply);
      if (Contains(message, "environment") || Contains(message, "endpoint")) {
        return step.Fail(FailureKind::kStalled, "EndpointNotFound", said);
      }
      return step.Fail(FailureKind::kTransient, "StackNotFound",
                       said + " (it vanished since it was listed; the next pass re-observes)");
    }
    if (status == 400) return step.Fail(FailureKind::kStalled, "PortainerBadRequest", said);
    if (status == 409) return step.Fail(FailureKind::kStalled, "StackConflict", said);
    if (status == 500) {
      if (route == Route::kCreate || route == Route::kUpdate || route == Route::kStart) {
        return step.Fail(FailureKind::kTransient, "StackDeployFailed", said);
      }
      if (route == Route::kStop || route == Route::kDelete) {
        return step.Fail(FailureKind::kTransient, "StackRemoveFailed", said);
      }
      return step.Fail(FailureKind::kTransient, "PortainerServerError", said);
    }
    if (status == 502 || status == 503 || status == 504) {
      return step.Fail(FailureKind::kTransient, "PortainerUnavailable", said);
    }
    if (status >= 500) return step.Fail(FailureKind::kTransient, "PortainerServerError", said);
    return step.Fail(FailureKind::kStalled, "PortainerUnexpectedStatus",
                     said + " (is " + url_.origin + url_.prefix + " Portainer's address?)");
  }

  [[nodiscard]] Failure BadResponse(const Step& step, int status) const {
    return step.Fail(FailureKind::kTransient, "PortainerBadResponse",
                     "Portainer answered " + std::to_string(status) +
                         " with a body that is not the documented JSON");
  }

  void Backoff(int retry) {
    auto delay = options_.backoff_base;
    for (int i = 1; i < retry && delay < kMaxBackoff; ++i) delay *= 2;
    delay = std::min(delay, kMaxBackoff);
    std::chrono::milliseconds jitter{0};
    if (delay.count() >= 2) {
      std::lock_guard lock(rng_mutex_);
      std::uniform_int_distribution<std::int64_t> dist(0, delay.count() / 2);
      jitter = std::chrono::milliseconds(dist(rng_));
    }
    ++retries_;
    sleep_(delay + jitter);
  }

  // Says how often a step was tried when it gave up after retries.
  static Failure AfterAttempts(Failure failure, int attempts) {
    if (attempts > 1) failure.message += " (after " + std::to_string(attempts) + " attempts)";
    return failure;
  }

  // Runs `once` until it succeeds, fails for good, or max_attempts transient failures.
  template <class F>
  auto Retry(F&& once) -> decltype(once()) {
    for (int attempt = 1;; ++attempt) {
      auto out = once();
      if (out.ok() || !Retryable(out.failure())) return out;
      if (attempt >= options_.max_attempts) return AfterAttempts(out.failure(), attempt);
      Backoff(attempt);
    }
  }

  // --- the kind of an endpoint ----------------------------------------------------------------

  // Kept per endpoint; a standalone engine turning into a swarm manager (or the reverse) is rare,
  // so the kind is probed once per endpoint_kind_ttl. A failure on the endpoint forgets it: a
  // swarm deploy on an engine that left its swarm fails ("not a swarm manager"), an endpoint
  // re-created under the same id answers 404 first, and the next call probes again.
  std::optional<EndpointKind> Cached(int endpoint) {
    const std::lock_guard lock(kinds_mutex_);
    const auto it = kinds_.find(endpoint);
    if (it == kinds_.end()) return std::nullopt;
    if (std::chrono::steady_clock::now() - it->second.probed >= options_.endpoint_kind_ttl) {
      kinds_.erase(it);
      return std::nullopt;
    }
    return it->second.kind;
  }

  void Remember(int endpoint, const EndpointKind& kind) {
    if (!kind.certain || options_.endpoint_kind_ttl.count() <= 0) return;
    const std::lock_guard lock(kinds_mutex_);
    kinds_[endpoint] = {kind, std::chrono::steady_clock::now()};
  }

  void Forget(int endpoint) {
    const std::lock_guard lock(kinds_mutex_);
    kinds_.erase(endpoint);
  }

  // One attempt at knowing the endpoint's kind: the cache, else the probe. Not retried here: the
  // caller's attempt (a list, a create) is retried whole.
  Outcome<EndpointKind> KindOnce(Step& step, int endpoint) {
    if (auto cached = Cached(endpoint)) return *cached;
    auto probed = ProbeOnce(step, endpoint);
    if (!probed) return probed.failure();
    Remember(endpoint, *probed);
    return probed;
  }

  // Docker's answer through Portainer's proxy decides (contract §2, "Swarm ID"): the swarm
  // inspect object's ID (the cluster's, not the node's), or Docker's 503 for an engine that is not
  // a swarm manager (a worker node gets it too, and compose runs there). The endpoint's Type is
  // no help: 1 and 2 are swarm managers as often as standalone engines.
  Outcome<EndpointKind> ProbeOnce(Step& step, int endpoint) {
    const std::string path = "/api/endpoints/" + std::to_string(endpoint);
    const Reply reply = Send(step, Route::kProbe, "GET", path + "/docker/swarm");
    if (auto said = SwarmInspected(step, reply)) return *said;
    const bool engine_unanswered =
        reply.transport == Transport::kAnswered && reply.status >= 500 && reply.status != 501;
    if (!engine_unanswered) return Probing(Classify(step, Route::kProbe, reply), endpoint);
    // The proxy could not reach the engine (the endpoint is down): Portainer's own record says
    // what it was when last seen. Reads of Portainer's database keep working meanwhile.
    const Reply record = Send(step, Route::kProbe, "GET", path);
    if (!record.Is(200)) return Probing(Classify(step, Route::kProbe, record), endpoint);
    const auto value = ParseJson(record.body);
    if (!value || !value->is_object()) return BadResponse(step, record.status);
    const json::object& o = value->get_object();
    const std::int64_t type = IntField(o, "Type").value_or(0);
    if (std::find(kDockerTypes.begin(), kDockerTypes.end(), type) == kDockerTypes.end()) {
      return step.Fail(FailureKind::kStalled, "EndpointUnsupported",
                       "endpoint " + std::to_string(endpoint) + " is " + TypeName(type) +
                           " (Type " + std::to_string(type) +
                           "); dedicated stacks need a Docker standalone or swarm endpoint");
    }
    if (SnapshotSwarm(o).value_or(false)) {
      Failure failure = Classify(step, Route::kProbe, reply);
      failure.message += "; endpoint " + std::to_string(endpoint) +
                         " is a swarm manager by Portainer's last snapshot, and its stacks cannot "
                         "be listed without the cluster's SwarmID";
      return failure;
    }
    return EndpointKind{false, "", false};  // standalone when last seen; asked again next time
  }

  // Docker's answer to the swarm inspect, when it is one: the swarm inspect object's ID makes a
  // swarm manager of that cluster, Docker's 503 "not a swarm manager" a standalone engine.
  // nullopt: the engine did not say (down, refused, ...).
  std::optional<Outcome<EndpointKind>> SwarmInspected(const Step& step, const Reply& reply) const {
    if (reply.Is(200)) {
      const auto value = ParseJson(reply.body);
      const std::string id = value && value->is_object() ? StringField(value->get_object(), "ID")
                                                         : std::string();
      if (id.empty()) return Outcome<EndpointKind>(BadResponse(step, reply.status));
      return Outcome<EndpointKind>(EndpointKind{true, id, true});
    }
    if (reply.Is(503) && Contains(PortainerMessage(reply), "not a swarm manager")) {
      return Outcome<EndpointKind>(EndpointKind{false, "", true});
    }
    return std::nullopt;
  }

  static Failure Probing(Failure failure, int endpoint) {
    failure.message += " (asking whether endpoint " + std::to_string(endpoint) +
                       " is a swarm manager: GET /api/endpoints/" + std::to_string(endpoint) +
                       "/docker/swarm)";
    return failure;
  }

  // --- single attempts -----------------------------------------------------------------------

  Outcome<std::vector<ObservedStack>> ListOnce(Step& step, int endpoint) {
    auto kind = KindOnce(step, endpoint);
    if (!kind) return kind.failure();
    return ListAs(step, endpoint, *kind);
  }

  // The stacks of one endpoint (contract §3.3): the result is the compose stacks whose EndpointId
  // is N, plus, when SwarmID is given, the swarm stacks of that cluster whatever their endpoint.
  // So a swarm manager's list also shows the compose stacks it ran before it joined its swarm.
  Outcome<std::vector<ObservedStack>> ListAs(Step& step, int endpoint, const EndpointKind& kind) {
    json::object filters{{"EndpointID", endpoint}};
    if (kind.swarm) filters["SwarmID"] = kind.swarm_id;
    const Reply reply = Send(step, Route::kList, "GET",
                             "/api/stacks?filters=" + PercentEncode(json::serialize(filters)));
    if (!reply.Is(200)) return Classify(step, Route::kList, reply);
    const auto value = ParseJson(reply.body);
    if (!value || !value->is_array()) return BadResponse(step, reply.status);
    std::vector<ObservedStack> out;
    for (const auto& item : value->get_array()) {
      auto stack = ParseStack(item);
      if (!stack) return BadResponse(step, reply.status);
      // The filter already does this for compose stacks; a proxy or an older Portainer ignoring
      // it must not make another endpoint's stacks look like ours. The swarm stacks of the same
      // cluster created through another endpoint (a second manager added to Portainer) belong
      // to that endpoint: its passes manage them.
      if (stack->endpoint != endpoint) continue;
      out.push_back(ToObserved(std::move(*stack)));
    }
    return out;
  }

  Outcome<std::string> FileOnce(Step& step, StackId id) {
    const Reply reply =
        Send(step, Route::kFile, "GET", "/api/stacks/" + std::to_string(id) + "/file");
    if (!reply.Is(200)) return Classify(step, Route::kFile, reply);
    const auto value = ParseJson(reply.body);
    if (!value || !value->is_object()) return BadResponse(step, reply.status);
    const json::value* content = value->get_object().if_contains("StackFileContent");
    if (content == nullptr || !content->is_string()) return BadResponse(step, reply.status);
    return std::string(content->get_string());
  }

  // PUT with the whole file and the whole Env: Portainer replaces Env wholesale and an omitted
  // Env is stored as null (contract §3.6). PullImage stays false: a new TM_VERSION is a new tag,
  // which compose pulls anyway because it is not present locally. Prune is true: the rendered
  // file is the whole stack, so on swarm (`docker stack deploy --prune`) a service it no longer
  // names goes; compose ignores it (the same PUT for both kinds, no need to know which).
  Outcome<StackJson> PutOnce(Step& step, StackId id, const DesiredStack& stack) {
    const std::string body = json::serialize(json::object{
        {"StackFileContent", stack.file},
        {"Env", EnvJson(stack.env)},
        {"Prune", true},
        {"PullImage", false},
    });
    const Reply reply =
        Send(step, Route::kUpdate, "PUT",
             "/api/stacks/" + std::to_string(id) + "?endpointId=" + std::to_string(stack.endpoint),
             body);
    if (!reply.Is(200)) return Classify(step, Route::kUpdate, reply);
    auto parsed = ParseStackBody(reply.body);
    if (!parsed) return BadResponse(step, reply.status);
    return *parsed;
  }

  // Start or stop; the answers that mean "already there" count as success (contract §3.8).
  Outcome<ApplyResult> StartStopOnce(Step& step, bool start, StackId id, int endpoint) {
    const Route route = start ? Route::kStart : Route::kStop;
    const Reply reply = Send(step, route, "POST",
                             "/api/stacks/" + std::to_string(id) + (start ? "/start" : "/stop") +
                                 "?endpointId=" + std::to_string(endpoint));
    if (reply.Is(200)) {
      const auto parsed = ParseStackBody(reply.body);
      if (!parsed) return BadResponse(step, reply.status);
      return ApplyResult{id, EffectiveDate(*parsed), 0, start ? "started" : "stopped"};
    }
    const std::string message = PortainerMessage(reply);
    // 409 `A stack with the name '<name>' is already running`: its containers exist.
    if (start && reply.Is(409) && Contains(message, "already running")) {
      return ApplyResult{id, 0, 0, "already running"};
    }
    // 400 `Stack is already active`: Portainer's bookkeeping says active with nothing running;
    // start cannot change that, an update (redeploy) can, and the plan issues one on drift.
    if (start && reply.Is(400) && Contains(message, "already active")) {
      return ApplyResult{id, 0, 0, "already active"};
    }
    if (!start && reply.Is(400) && Contains(message, "already inactive")) {
      return ApplyResult{id, 0, 0, "already inactive"};
    }
    return Classify(step, route, reply);
  }

  Outcome<ApplyResult> DeleteOnce(Step& step, StackId id, int endpoint) {
    const Reply reply =
        Send(step, Route::kDelete, "DELETE",
             "/api/stacks/" + std::to_string(id) + "?endpointId=" + std::to_string(endpoint));
    if (reply.Is(204) || reply.Is(200)) return ApplyResult{id, 0, 0, "deleted"};
    if (reply.Is(404) && IsJsonError(reply)) {
      const std::string message = PortainerMessage(reply);
      // Deleting is not idempotent in Portainer (404 the second time): gone is what we wanted.
      if (!Contains(message, "environment") && !Contains(message, "endpoint")) {
        return ApplyResult{id, 0, 0, "already gone"};
      }
    }
    return Classify(step, Route::kDelete, reply);
  }

  // --- actions -------------------------------------------------------------------------------

  Outcome<ApplyResult> ApplyOne(const CreateStack& a) {
    const DesiredStack& want = a.stack;
    Step step = MakeStep(StackWhat("create", want.name, 0, want.endpoint), want.env);
    if (config_error_) return Config(step);
    if (NormalizeName(want.name).empty()) {
      return step.Fail(FailureKind::kStalled, "PortainerBadRequest",
                       "the stack name is empty once normalized by Portainer");
    }
    // Creates are not idempotent (contract §4.2): every POST is preceded by a list of the
    // endpoint, so a POST whose answer was lost (stored, then timed out) is found and adopted
    // instead of being sent again. The first attempt may rely on the caller's list of this pass.
    // The endpoint's kind is known before each attempt (the caller's list of this pass left it
    // in the cache): it picks the route and the SwarmID, and the list's filter.
    std::optional<Failure> last;
    for (int attempt = 1; attempt <= options_.max_attempts; ++attempt) {
      if (attempt > 1) Backoff(attempt - 1);
      auto kind = KindOnce(step, want.endpoint);
      if (!kind) {
        if (!Retryable(kind.failure())) return kind.failure();
        last = kind.failure();
        continue;
      }
      if (attempt > 1 || !a.listed_absent) {
        auto listed = ListAs(step, want.endpoint, *kind);
        if (!listed) {
          if (!Retryable(listed.failure())) return listed.failure();
          last = listed.failure();
          continue;
        }
        if (const ObservedStack* found = FindByName(*listed, want)) {
          return AdoptOrConflict(step, want, *found);
        }
      }
      const Reply reply = PostCreate(step, want, *kind);
      if (reply.Is(200)) {
        if (auto created = ParseStackBody(reply.body)) return AfterCreate(step, want, *created);
        last = BadResponse(step, reply.status);  // stored, but unreadable: the re-list adopts it
        continue;
      }
      if (reply.Is(409)) return AfterConflict(step, want, *kind, reply);
      Failure failure = Classify(step, Route::kCreate, reply);
      if (!Retryable(failure)) return failure;
      last = std::move(failure);
    }
    return AfterAttempts(*last, options_.max_attempts);
  }

  Outcome<ApplyResult> ApplyOne(const UpdateStack& a) {
    Step step = MakeStep(StackWhat("update", a.stack.name, a.id, a.stack.endpoint), a.stack.env);
    if (config_error_) return Config(step);
    auto updated = Retry([&] { return PutOnce(step, a.id, a.stack); });
    if (!updated) return updated.failure();
    return ApplyResult{updated->id, EffectiveDate(*updated), step.calls, "updated"};
  }

  Outcome<ApplyResult> ApplyOne(const StartStack& a) {
    return StartStop(true, a.id, a.endpoint, a.name);
  }

  Outcome<ApplyResult> ApplyOne(const StopStack& a) {
    return StartStop(false, a.id, a.endpoint, a.name);
  }

  Outcome<ApplyResult> ApplyOne(const DeleteStack& a) {
    Step step = MakeStep(StackWhat("delete", a.name, a.id, a.endpoint), {});
    if (config_error_) return Config(step);
    auto deleted = Retry([&] { return DeleteOnce(step, a.id, a.endpoint); });
    if (!deleted) return deleted.failure();
    deleted->calls = step.calls;
    return deleted;
  }

  Outcome<ApplyResult> StartStop(bool start, StackId id, int endpoint, const std::string& name) {
    Step step = MakeStep(StackWhat(start ? "start" : "stop", name, id, endpoint), {});
    if (config_error_) return Config(step);
    auto done = Retry([&] { return StartStopOnce(step, start, id, endpoint); });
    if (!done) return done.failure();
    done->calls = step.calls;
    return done;
  }

  // Contract §3.2: a swarm stack needs the cluster's ID as SwarmID (any other value makes a
  // "limited" stack Portainer cannot manage, and the SwarmID filter would not list it).
  Reply PostCreate(Step& step, const DesiredStack& want, const EndpointKind& kind) {
    json::object body{{"Name", want.name}};
    if (kind.swarm) body["SwarmID"] = kind.swarm_id;
    body["StackFileContent"] = want.file;
    body["Env"] = EnvJson(want.env);
    return Send(step, Route::kCreate, "POST",
                std::string("/api/stacks/create/") + (kind.swarm ? "swarm" : "standalone") +
                    "/string?endpointId=" + std::to_string(want.endpoint),
                json::serialize(body));
  }

  static const ObservedStack* FindByName(const std::vector<ObservedStack>& stacks,
                                         const DesiredStack& want) {
    const std::string name = NormalizeName(want.name);
    for (const auto& stack : stacks) {
      if (stack.endpoint == want.endpoint && NormalizeName(stack.name) == name) return &stack;
    }
    return nullptr;
  }

  Outcome<ApplyResult> AfterCreate(Step& step, const DesiredStack& want, const StackJson& created) {
    ApplyResult result{created.id, EffectiveDate(created), 0, "created"};
    if (!want.active) {
      // Suspended workspace: Portainer deploys on create, so stop right away.
      auto stopped = Retry([&] { return StartStopOnce(step, false, created.id, want.endpoint); });
      if (!stopped) {
        Failure failure = stopped.failure();
        failure.message = "created stack id " + std::to_string(created.id) +
                          " but could not stop it: " + failure.message;
        return failure;
      }
      result.detail += ", stopped";
    }
    result.calls = step.calls;
    return result;
  }

  // 409 on create: a stored stack of that name appeared since our list (adopt it when it is
  // ours), or a compose project (or, on swarm, a service namespace) Portainer did not create
  // holds the name (contract §3.2, §4.2).
  Outcome<ApplyResult> AfterConflict(Step& step, const DesiredStack& want,
                                     const EndpointKind& kind, const Reply& conflict) {
    auto listed = Retry([&] { return ListAs(step, want.endpoint, kind); });
    if (!listed) return listed.failure();
    if (const ObservedStack* found = FindByName(*listed, want)) {
      return AdoptOrConflict(step, want, *found);
    }
    return step.Fail(FailureKind::kStalled, "StackConflict",
                     "Portainer answered 409 " + PortainerText(conflict) +
                         ", and no stack of that name is stored on endpoint " +
                         std::to_string(want.endpoint) +
                         (kind.swarm ? ": swarm services (com.docker.stack.namespace) or a compose "
                                       "project Portainer did not create hold the name; they are "
                                       "left alone (remove them or rename the workspace)"
                                     : ": a compose project Portainer did not create holds the "
                                       "name; it is left alone (remove it or rename the "
                                       "workspace)"));
  }

  Outcome<ApplyResult> AdoptOrConflict(Step& step, const DesiredStack& want,
                                       const ObservedStack& found) {
    if (found.workspace.empty() || found.workspace != want.workspace) {
      const std::string holder = found.workspace.empty()
                                     ? std::string("without our TM_WORKSPACE marker")
                                     : "marked for workspace " + Quoted(found.workspace);
      return step.Fail(FailureKind::kStalled, "StackConflict",
                       "stack id " + std::to_string(found.id) + " named " + Quoted(found.name) +
                           " already exists on endpoint " + std::to_string(found.endpoint) + " " +
                           holder + "; it is left alone");
    }
    return Adopt(step, want, found);
  }

  // Our own stack from an earlier attempt whose answer was lost. It is made exactly what was
  // asked for (the caller records the desired file's digest for this id), so compare and PUT
  // whole when it differs, then start or stop it as `active` says.
  Outcome<ApplyResult> Adopt(Step& step, const DesiredStack& want, const ObservedStack& found) {
    ApplyResult result{found.id, found.update_date, 0, "adopted"};
    int status = found.status;
    bool differs = !SameEnv(found.env, want.env);
    if (!differs) {
      auto file = Retry([&] { return FileOnce(step, found.id); });
      if (!file) return file.failure();
      differs = *file != want.file;
    }
    if (differs) {
      auto updated = Retry([&] { return PutOnce(step, found.id, want); });
      if (!updated) return updated.failure();
      result.update_date = EffectiveDate(*updated);
      status = kActive;  // an update deploys
      result.detail += ", updated";
    }
    if (want.active != (status == kActive) && (status == kActive || status == kInactive)) {
      auto changed =
          Retry([&] { return StartStopOnce(step, want.active, found.id, want.endpoint); });
      if (!changed) return changed.failure();
      result.detail += want.active ? ", started" : ", stopped";
    }
    result.calls = step.calls;
    return result;
  }

  PortainerOptions options_;
  SleepFunction sleep_;
  std::string key_;
  BaseUrl url_;
  std::optional<Failure> config_error_;
  std::array<std::atomic<std::int64_t>, static_cast<std::size_t>(Route::kCount)> counts_{};
  std::atomic<std::int64_t> retries_{0};
  std::mutex rng_mutex_;
  std::mt19937_64 rng_;
  struct KnownKind {
    EndpointKind kind;
    std::chrono::steady_clock::time_point probed;
  };
  std::mutex kinds_mutex_;
  std::map<int, KnownKind> kinds_;
};

}  // namespace

void RealSleep(std::chrono::milliseconds delay) { std::this_thread::sleep_for(delay); }

std::unique_ptr<PortainerGateway> MakePortainerGateway(PortainerOptions options,
                                                       SleepFunction sleep) {
  return std::make_unique<HttpPortainerGateway>(std::move(options), std::move(sleep));
}

}  // namespace tmaster::stacks
