#pragma once

// Internals of Simulator shared by simulator.cpp (dispatch, auth, faults, log, knobs) and
// handlers.cpp (the Portainer API handlers). Includes boost/json.hpp through sim_json.hpp:
// only the simulator's own .cpp files include this header.

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/secret.hpp"
#include "tools/portainer-sim/sim_json.hpp"
#include "tools/portainer-sim/sim_state.hpp"
#include "tools/portainer-sim/simulator.hpp"

namespace tmaster::tools::portainer_sim {

inline constexpr std::string_view kPortainerVersion = "2.23.0";
inline constexpr int kRoleAdmin = 1;
inline constexpr int kRoleStandard = 2;
inline constexpr std::size_t kRequestLogLimit = 200000;

struct User {
  std::int64_t id = 0;
  std::string username;
  int role = kRoleAdmin;
  Secret password;  ///< empty: cannot log in
};

struct ApiKeyRecord {
  std::int64_t id = 0;
  std::int64_t user_id = 0;
  std::string description;
  std::string prefix;
  std::string digest;  ///< raw SHA-256 of the key
  std::int64_t date_created = 0;
};

/// An injected fault on an API request (POST /__sim/faults).
struct Fault {
  enum class Action { kFail, kDelay, kTimeout };
  std::optional<std::uint64_t> call;  ///< the N-th /api request overall (1-based, since reset)
  std::string route;                  ///< a route key such as "PUT /api/stacks/{id}", "*" = any
  std::uint64_t nth = 0;              ///< with `route`: the N-th request to it; 0 = the next
  std::int64_t times = 1;             ///< with `route`: how many matching requests it hits
  Action action = Action::kFail;
  int status = 500;
  std::int64_t delay_ms = 0;
  std::string message;
};

struct LogEntry {
  std::uint64_t seq = 0;
  std::string method;
  std::string path;
  std::string query;
  std::string route;
  int status = 0;
  std::string auth;
  std::string fault;
};

/// One request being answered.
struct Call {
  const ApiRequest& req;
  std::map<std::string, std::string> vars;
  const User* user = nullptr;
  std::string auth;  ///< "apikey", "jwt", "cookie", "public"
  std::unique_lock<std::mutex>* lock = nullptr;

  /// Go's `r.URL.Query().Get(name)`: the first value of an exact-case name, "" if absent.
  [[nodiscard]] std::string Query(std::string_view name) const;
  /// Go's `r.Header.Get(name)`: case-insensitive name, first value, "" if absent.
  [[nodiscard]] std::string Header(std::string_view name) const;
  /// Go's `r.FormValue(name)` on a multipart request: form fields, then the query.
  [[nodiscard]] std::string FormValue(std::string_view name) const;
  [[nodiscard]] const FormField* FormFile(std::string_view name) const;
};

/// Go's strconv.Atoi; returns the error text (`strconv.Atoi: parsing "x": invalid syntax`).
std::optional<std::string> GoAtoi(std::string_view text, std::int64_t& out);

// --- response helpers ---
ApiResponse JsonResponse(int status, const json::value& body);
/// Portainer's error: `{"message": message, "details": Capitalize(error or message)}`.
ApiResponse ErrorResponse(int status, const std::string& message, const std::string& error = "");
/// An error body with `details` exactly as given (no capitalization).
ApiResponse RawErrorResponse(int status, const std::string& message, const std::string& details);
ApiResponse EmptyResponse(int status);
ApiResponse TextResponse(int status, const std::string& body);

struct Simulator::Impl {
  using Handler = ApiResponse (Impl::*)(Call&);

  Impl(SimOptions options, Clock clock, Sleeper sleeper);

  // simulator.cpp
  ApiResponse HandleApi(const ApiRequest& req);
  ApiResponse HandleKnob(const ApiRequest& req);
  /// Authenticates (unless public), runs the handler, adds the common headers.
  ApiResponse Dispatch(const ApiRequest& req, Handler handler, bool is_public,
                       std::map<std::string, std::string> vars, std::unique_lock<std::mutex>& lock,
                       std::string& auth_kind);
  std::optional<ApiResponse> Authenticate(Call& call);
  std::string IssueJwt(const User& user);
  const User* VerifyJwt(std::string_view token) const;
  const User* FindUser(std::int64_t id) const;
  bool RateLimited(const std::string& client);
  std::optional<Fault> TakeFault(std::uint64_t seq, const std::string& route_key,
                                 std::uint64_t route_count);
  std::string DumpStateLocked() const;
  void ResetLocked(int endpoint_count);
  /// Runs State::Deploy for `stack` on environment `endpoint_id`, first sleeping the
  /// configured deploy delay (under the global deploy lock, without the state lock, so the
  /// unlocked window between Portainer's name check and its save exists as in Portainer).
  std::optional<std::string> DeployWithDelay(Call& call, std::int64_t endpoint_id, Stack& stack);
  /// Deploys `next` (DeployWithDelay) and saves it Active: 200 with the stack. On failure the
  /// saved record keeps its file (Portainer rolls it back) and takes only the running state the
  /// failed `up` and its `down` left: 500 with the error, under the message `failure` if given.
  ApiResponse DeployAndSave(Call& call, std::int64_t endpoint_id, Stack next, const char* failure);

  // handlers.cpp
  ApiResponse SystemStatus(Call& call);
  ApiResponse Auth(Call& call);
  ApiResponse CreateAccessToken(Call& call);
  ApiResponse EndpointList(Call& call);
  ApiResponse EndpointInspect(Call& call);
  ApiResponse DockerProxy(Call& call);
  ApiResponse StackCreate(Call& call);
  ApiResponse StackCreateDeprecated(Call& call);
  ApiResponse StackList(Call& call);
  ApiResponse StackInspect(Call& call);
  ApiResponse StackFile(Call& call);
  ApiResponse StackUpdate(Call& call);
  ApiResponse StackStart(Call& call);
  ApiResponse StackStop(Call& call);
  ApiResponse StackDelete(Call& call);
  ApiResponse StackGitUpdate(Call& call);
  ApiResponse StackGitRedeploy(Call& call);
  ApiResponse StackWebhook(Call& call);
  ApiResponse NotSimulated(Call& call);
  ApiResponse CreateStackOf(Call& call, const std::string& type, const std::string& method);
  ApiResponse DeleteExternalStack(Call& call);

  SimOptions options;
  State state;
  Sleeper sleeper;
  Clock clock;
  mutable std::mutex mutex;
  std::mutex deploy_mutex;  ///< Portainer serializes Docker deploys with one global lock

  std::string instance_id;
  std::string jwt_secret;
  std::vector<User> users;
  std::vector<ApiKeyRecord> api_keys;
  std::int64_t next_api_key_id = 1;
  std::map<std::string, std::deque<std::chrono::steady_clock::time_point>> auth_attempts;
  std::map<std::string, std::chrono::steady_clock::time_point> banned_until;

  std::vector<Fault> faults;
  std::int64_t deploy_delay_ms = 0;
  std::uint64_t total_requests = 0;
  std::map<std::string, std::uint64_t> counters;
  std::deque<LogEntry> log;
};

/// A random RFC 4122 version-4 UUID.
std::string RandomUuid();

}  // namespace tmaster::tools::portainer_sim
