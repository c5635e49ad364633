// The Portainer API handlers, each walking its checks in Portainer 2.23's order (contract §1-§3).
// Every user is an administrator (the simulator has no teams or access policies), so the
// non-admin 403 branches are never taken.
//
// Each handler reads like the Go handler it simulates (decode the payload, validate it, look
// things up, act), in that handler's own order, since the order decides which error a bad request
// gets. The handlers therefore repeat one shape on purpose; only steps that are the same in
// Portainer are shared (FindStackOr, StartStopTarget, DeployAndSave).

#include <algorithm>
#include <cctype>
#include <set>
#include <utility>

#include "common/crypto.hpp"
#include "common/text.hpp"
#include "tools/portainer-sim/simulator_impl.hpp"

namespace tmaster::tools::portainer_sim {
namespace {

constexpr std::string_view kObjectNotFound = "Object not found inside the database";
constexpr std::string_view kStackNotFound =
    "Unable to find a stack with the specified identifier inside the database";
constexpr std::string_view kEnvironmentNotFound =
    "Unable to find an environment with the specified identifier inside the database";
constexpr std::string_view kInvalidPayload = "Invalid request payload";

std::string S(std::string_view text) { return std::string(text); }

ApiResponse BadPayload(const std::string& error) {
  return ErrorResponse(400, S(kInvalidPayload), error);
}

/// libhttp's RetrieveNumericQueryParameter: "" counts as absent.
std::optional<std::string> NumericQuery(const Call& call, std::string_view name, bool optional,
                                        std::int64_t& out) {
  out = 0;
  const std::string value = call.Query(name);
  if (value.empty()) {
    if (optional) return std::nullopt;
    return std::string("Missing query parameter");
  }
  return GoAtoi(value, out);
}

/// `{id}` of a stack route: 400 on a non-integer, 404 when unknown.
std::optional<ApiResponse> FindStackOr(const Call& call, const State& state, std::int64_t& id,
                                       const Stack*& stack) {
  if (auto error = GoAtoi(call.vars.at("id"), id)) {
    return ErrorResponse(400, "Invalid stack identifier route variable", *error);
  }
  stack = state.FindStack(id);
  if (stack == nullptr) return ErrorResponse(404, S(kStackNotFound), S(kObjectNotFound));
  return std::nullopt;
}

/// `{id}` and the required `endpointId` of the start and stop routes, both parsed before the stack
/// is looked up (Portainer's order: a bad endpointId is a 400 even for an unknown stack); then the
/// stack: 404 when unknown, 400 "<verb> a kubernetes stack is not supported" for Kubernetes.
std::optional<ApiResponse> StartStopTarget(const Call& call, const State& state,
                                           std::string_view verb, std::int64_t& id,
                                           std::int64_t& endpoint_id, const Stack*& stack) {
  if (auto error = GoAtoi(call.vars.at("id"), id)) {
    return ErrorResponse(400, "Invalid stack identifier route variable", *error);
  }
  if (auto error = NumericQuery(call, "endpointId", false, endpoint_id)) {
    return ErrorResponse(400, "Invalid query parameter: endpointId", *error);
  }
  stack = state.FindStack(id);
  if (stack == nullptr) return ErrorResponse(404, S(kStackNotFound), S(kObjectNotFound));
  if (stack->type == kStackTypeKubernetes) {
    return ErrorResponse(400, std::string(verb) + " a kubernetes stack is not supported");
  }
  return std::nullopt;
}

bool IsWhitespace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/// A rough govalidator.IsURL: a host with a dot or a scheme, no spaces.
bool LooksLikeUrl(const std::string& text) {
  if (text.empty() || text.size() > 2083) return false;
  if (std::any_of(text.begin(), text.end(), IsWhitespace)) return false;
  return text.find("://") != std::string::npos || text.find('.') != std::string::npos;
}

bool IsUuid(const std::string& text) {
  if (text.size() != 36) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (std::isxdigit(static_cast<unsigned char>(c)) == 0) {
      return false;
    }
  }
  return true;
}

/// Docker's own error body (the proxy passes the daemon's answer through).
ApiResponse DockerError(int status, const std::string& message) {
  return JsonResponse(status, json::object{{"message", message}});
}

}  // namespace

// --- system, auth ---

ApiResponse Simulator::Impl::SystemStatus(Call&) {
  return JsonResponse(200,
                      json::object{{"Version", S(kPortainerVersion)}, {"InstanceID", instance_id}});
}

ApiResponse Simulator::Impl::Auth(Call& call) {
  if (RateLimited(call.req.remote_addr)) {
    return ErrorResponse(403, "Access denied", "Access denied to resource");
  }
  json::value body;
  if (auto error = GoDecode(call.req.body, body)) return BadPayload(*error);
  std::string username, password;
  GoStruct reader(body, "auth.authenticatePayload");
  reader.String("Username", username);
  reader.String("Password", password);
  if (reader.Error()) return BadPayload(*reader.Error());
  if (username.empty()) return BadPayload("Invalid username");
  if (password.empty()) return BadPayload("Invalid password");
  const User* found = nullptr;
  for (const User& user : users) {
    if (Lower(user.username) == Lower(username)) found = &user;
  }
  if (found == nullptr || found->password.Empty() ||
      !crypto::ConstantTimeEqual(found->password.Reveal(), password)) {
    return ErrorResponse(422, "Invalid credentials", "Unauthorized");
  }
  const std::string jwt = IssueJwt(*found);
  ApiResponse res = JsonResponse(200, json::object{{"jwt", jwt}});
  res.headers.emplace_back("Set-Cookie", "portainer_api_key=" + jwt +
                                             "; Path=/; Max-Age=28800; HttpOnly; SameSite=Strict");
  return res;
}

ApiResponse Simulator::Impl::CreateAccessToken(Call& call) {
  if (call.auth == "apikey")
    return ErrorResponse(401, "Auth not supported", "Authentication required");
  std::int64_t user_id = 0;
  if (auto error = GoAtoi(call.vars.at("id"), user_id)) {
    return ErrorResponse(400, "Invalid user identifier route variable", *error);
  }
  json::value body;
  if (auto error = GoDecode(call.req.body, body)) return BadPayload(*error);
  std::string password, description;
  GoStruct reader(body, "users.userAccessTokenCreatePayload");
  reader.String("Password", password);
  reader.String("Description", description);
  if (reader.Error()) return BadPayload(*reader.Error());
  if (password.empty()) return BadPayload("invalid password: cannot be empty");
  if (description.empty()) return BadPayload("invalid description: cannot be empty");
  if (std::all_of(description.begin(), description.end(), IsWhitespace)) {
    return BadPayload("invalid description: cannot contain only whitespaces");
  }
  if (description.size() > 128) {
    return BadPayload("invalid description: cannot be longer than 128 characters");
  }
  if (call.user->id != user_id) {
    return ErrorResponse(403, "Permission denied to create user access token");
  }
  const User* user = FindUser(user_id);
  if (user == nullptr) {
    return ErrorResponse(404,
                         "Unable to find a user with the specified identifier inside the database",
                         S(kObjectNotFound));
  }
  if (user->password.Empty() || !crypto::ConstantTimeEqual(user->password.Reveal(), password)) {
    return ErrorResponse(403, "Current password doesn't match");
  }
  const std::string raw = "ptr_" + crypto::Base64(crypto::RandomBytes(32));
  ApiKeyRecord record;
  record.id = next_api_key_id++;
  record.user_id = user_id;
  record.description = description;
  record.prefix = raw.substr(0, 7);
  record.digest = crypto::Sha256(raw);
  record.date_created = clock();
  api_keys.push_back(record);
  return JsonResponse(201,
                      json::object{{"rawAPIKey", raw},
                                   {"apiKey", json::object{{"id", record.id},
                                                           {"userId", record.user_id},
                                                           {"description", record.description},
                                                           {"prefix", record.prefix},
                                                           {"dateCreated", record.date_created},
                                                           {"lastUsed", 0}}}});
}

// --- environments ---

ApiResponse Simulator::Impl::EndpointList(Call& call) {
  // start/limit parse errors are ignored by Portainer (they read as 0).
  std::int64_t start = 0, limit = 0;
  (void)GoAtoi(call.Query("start"), start);
  (void)GoAtoi(call.Query("limit"), limit);
  if (start != 0) --start;
  const std::string sort = call.Query("sort");
  const std::string order = call.Query("order");
  const std::string search = Lower(call.Query("search"));
  const std::string name = call.Query("name");
  const bool exclude_snapshots = call.Query("excludeSnapshots") == "true";

  std::map<std::string, std::set<std::int64_t>> arrays;
  for (const char* key : {"types", "status", "groupIds", "tagIds", "endpointIds"}) {
    const std::string wanted = std::string(key) + "[]";
    for (const auto& [k, v] : call.req.query) {
      if (k != wanted) continue;
      std::int64_t value = 0;
      if (auto error = GoAtoi(v, value)) {
        return ErrorResponse(400, "Invalid query parameters", *error);
      }
      arrays[key].insert(value);
    }
  }
  const auto excluded = [&](const char* key, std::int64_t value) {
    const auto it = arrays.find(key);
    return it != arrays.end() && it->second.count(value) == 0;
  };

  std::vector<const Endpoint*> matches;
  for (const auto& [id, endpoint] : state.Endpoints()) {
    if (excluded("types", endpoint.type)) continue;
    if (excluded("status", endpoint.up ? kEndpointStatusUp : kEndpointStatusDown)) continue;
    if (excluded("groupIds", endpoint.group_id)) continue;
    if (arrays.count("tagIds") != 0) continue;  // no environment carries tags
    if (excluded("endpointIds", endpoint.id)) continue;
    if (!name.empty() && endpoint.name != name) continue;
    if (!search.empty()) {
      const bool hit = Lower(endpoint.name).find(search) != std::string::npos ||
                       Lower(endpoint.url).find(search) != std::string::npos ||
                       std::string("unassigned").find(search) != std::string::npos;
      if (!hit) continue;
    }
    matches.push_back(&endpoint);
  }
  const std::size_t total_count = matches.size();
  if (sort == "Name" || sort == "Status") {
    std::stable_sort(matches.begin(), matches.end(), [&](const Endpoint* a, const Endpoint* b) {
      if (sort == "Name") return Lower(a->name) < Lower(b->name);
      return a->up && !b->up;
    });
  }
  if (order == "desc") std::reverse(matches.begin(), matches.end());
  if (limit > 0) {
    const auto size = static_cast<std::int64_t>(matches.size());
    const std::int64_t from = std::clamp<std::int64_t>(start, 0, size);
    const std::int64_t to = std::min(size, from + limit);
    matches = std::vector<const Endpoint*>(matches.begin() + from, matches.begin() + to);
  }
  json::array out;
  for (const Endpoint* endpoint : matches) {
    out.push_back(EndpointJson(*endpoint, state, exclude_snapshots));
  }
  ApiResponse res = JsonResponse(200, out);
  res.headers.emplace_back("X-Total-Count", std::to_string(total_count));
  res.headers.emplace_back("X-Total-Available", std::to_string(state.Endpoints().size()));
  return res;
}

ApiResponse Simulator::Impl::EndpointInspect(Call& call) {
  std::int64_t id = 0;
  if (auto error = GoAtoi(call.vars.at("id"), id)) {
    return ErrorResponse(400, "Invalid environment identifier route variable", *error);
  }
  const Endpoint* endpoint = state.FindEndpoint(id);
  if (endpoint == nullptr) return ErrorResponse(404, S(kEnvironmentNotFound), S(kObjectNotFound));
  return JsonResponse(200, EndpointJson(*endpoint, state, call.Query("excludeSnapshot") == "true"));
}

ApiResponse Simulator::Impl::DockerProxy(Call& call) {
  std::int64_t id = 0;
  if (auto error = GoAtoi(call.vars.at("id"), id)) {
    return ErrorResponse(400, "Invalid environment identifier route variable", *error);
  }
  const Endpoint* endpoint = state.FindEndpoint(id);
  if (endpoint == nullptr) return ErrorResponse(404, S(kEnvironmentNotFound), S(kObjectNotFound));
  // An environment whose engine does not answer: Portainer refuses to proxy (documented in
  // tools/portainer-sim/README.md).
  if (!endpoint->up)
    return ErrorResponse(503, "Unable to query environment", "Environment is down");

  std::string rest = call.vars.at("rest");
  // Docker API version prefix: /v1.41/swarm
  if (rest.size() > 1 && rest[0] == 'v') {
    const std::size_t slash = rest.find('/');
    if (slash != std::string::npos && rest.find_first_not_of("0123456789.", 1) == slash) {
      rest = rest.substr(slash + 1);
    }
  }
  const bool get = call.req.method == "GET" || call.req.method == "HEAD";
  if (rest == "_ping" && get) {
    ApiResponse res;
    res.content_type = "text/plain; charset=utf-8";
    res.body = "OK";
    return res;
  }
  if (rest == "swarm" && get) {
    if (endpoint->swarm_id.empty()) {
      return DockerError(503,
                         "This node is not a swarm manager. Use \"docker swarm init\" or \"docker "
                         "swarm join\" to connect this node to swarm and try again.");
    }
    return JsonResponse(200, SwarmInspectJson(*endpoint));
  }
  if (rest == "info" && get) {
    json::object swarm;
    const bool manager = !endpoint->swarm_id.empty();
    swarm["NodeID"] = manager ? "sim-node-" + std::to_string(endpoint->id) : "";
    swarm["NodeAddr"] = manager ? "10.0.0.1" : "";
    swarm["LocalNodeState"] = manager ? "active" : "inactive";
    swarm["ControlAvailable"] = manager;
    swarm["Error"] = "";
    swarm["RemoteManagers"] = nullptr;
    if (manager) swarm["Cluster"] = json::object{{"ID", endpoint->swarm_id}};
    return JsonResponse(200, json::object{{"ID", "portainer-sim-" + std::to_string(endpoint->id)},
                                          {"Name", endpoint->name},
                                          {"ServerVersion", "24.0.7"},
                                          {"Swarm", std::move(swarm)}});
  }
  if ((rest == "containers/json" || rest == "services") && get) {
    const bool services = rest == "services";
    if (services && endpoint->swarm_id.empty()) {
      return DockerError(503,
                         "This node is not a swarm manager. Use \"docker swarm init\" or \"docker "
                         "swarm join\" to connect this node to swarm and try again.");
    }
    std::vector<std::string> wanted_labels;
    if (const std::string filters = call.Query("filters"); !filters.empty()) {
      json::value value;
      if (GoDecode(filters, value, /*whole=*/true) || !value.is_object()) {
        return DockerError(400, "invalid filter");
      }
      for (const auto& entry : value.get_object()) {
        if (entry.key() != "label") continue;
        // Docker accepts {"label": ["k=v"]} and the legacy {"label": {"k=v": true}}.
        if (entry.value().is_array()) {
          for (const auto& item : entry.value().get_array()) {
            if (item.is_string()) wanted_labels.emplace_back(item.get_string());
          }
        } else if (entry.value().is_object()) {
          for (const auto& item : entry.value().get_object())
            wanted_labels.emplace_back(item.key());
        }
      }
    }
    // What runs on the engine: one container / service per running stack or foreign project.
    // Services are cluster-wide (any manager of the swarm lists them all); containers are this
    // engine's own.
    std::vector<std::pair<std::string, bool>> projects;  // name, swarm
    const auto visible = [&](std::int64_t owner, bool swarm_project) {
      return services && swarm_project ? state.SharesServices(*endpoint, owner)
                                       : owner == endpoint->id;
    };
    for (const auto& [stack_id, stack] : state.Stacks()) {
      const bool swarm_stack = stack.type == kStackTypeSwarm;
      if (stack.running && visible(stack.endpoint_id, swarm_stack)) {
        projects.emplace_back(stack.name, swarm_stack);
      }
    }
    for (const auto& foreign : state.Foreign()) {
      if (visible(foreign.endpoint_id, foreign.swarm)) {
        projects.emplace_back(foreign.name, foreign.swarm);
      }
    }
    json::array out;
    for (const auto& [project, swarm_project] : projects) {
      if (services && !swarm_project) continue;
      json::object labels;
      if (swarm_project) {
        labels["com.docker.stack.namespace"] = project;
        labels["com.docker.swarm.service.name"] = project + "_app";
      } else {
        labels["com.docker.compose.project"] = project;
        labels["com.docker.compose.service"] = "app";
      }
      const bool selected =
          std::all_of(wanted_labels.begin(), wanted_labels.end(), [&](const std::string& wanted) {
            const std::size_t eq = wanted.find('=');
            const auto* found = labels.if_contains(wanted.substr(0, eq));
            if (found == nullptr) return false;
            return eq == std::string::npos || found->get_string() == wanted.substr(eq + 1);
          });
      if (!selected) continue;
      const std::string object_id = crypto::Sha256Hex(std::to_string(endpoint->id) + "/" + project +
                                                      (swarm_project ? "/swarm" : "/compose"));
      if (services) {
        out.push_back(json::object{
            {"ID", object_id.substr(0, 25)},
            {"Version", json::object{{"Index", 1}}},
            {"Spec", json::object{{"Name", project + "_app"}, {"Labels", std::move(labels)}}}});
        continue;
      }
      out.push_back(json::object{
          {"Id", object_id},
          {"Names", json::array{"/" + project + (swarm_project ? "_app.1" : "-app-1")}},
          {"Image", "portainer-sim/app"},
          {"ImageID", "sha256:" + crypto::Sha256Hex(project)},
          {"Command", ""},
          {"Created", state.Now()},
          {"Ports", json::array()},
          {"Labels", std::move(labels)},
          {"State", "running"},
          {"Status", "Up"},
          {"HostConfig", json::object{{"NetworkMode", project + "_default"}}},
          {"NetworkSettings", json::object{{"Networks", json::object()}}},
          {"Mounts", json::array()}});
    }
    return JsonResponse(200, out);
  }
  return DockerError(404, "page not found");
}

// --- stacks: create ---

ApiResponse Simulator::Impl::StackCreateDeprecated(Call& call) {
  const std::string method = call.Query("method");
  if (method.empty()) {
    return ErrorResponse(400, "Invalid query parameter: method. Valid values are: file or string",
                         "Missing query parameter");
  }
  std::int64_t type = 0;
  if (NumericQuery(call, "type", false, type)) {
    return ErrorResponse(400, "Invalid query parameter: type");
  }
  switch (type) {
    case kStackTypeSwarm:
      return CreateStackOf(call, "swarm", method);
    case kStackTypeCompose:
      return CreateStackOf(call, "standalone", method);
    case kStackTypeKubernetes:
      return CreateStackOf(call, "kubernetes", method);
    default:
      return ErrorResponse(400, "Invalid query parameter: type");
  }
}

ApiResponse Simulator::Impl::StackCreate(Call& call) {
  return CreateStackOf(call, call.vars.at("type"), call.vars.at("method"));
}

ApiResponse Simulator::Impl::CreateStackOf(Call& call, const std::string& type,
                                           const std::string& method) {
  std::int64_t endpoint_id = 0;
  if (auto error = NumericQuery(call, "endpointId", false, endpoint_id)) {
    return ErrorResponse(400, "Invalid query parameter: endpointId", *error);
  }
  const Endpoint* endpoint = state.FindEndpoint(endpoint_id);
  if (endpoint == nullptr) return ErrorResponse(404, S(kEnvironmentNotFound), S(kObjectNotFound));
  if (type != "swarm" && type != "standalone" && type != "kubernetes") {
    return ErrorResponse(400,
                         "Invalid value for query parameter: type. Value must be one of: 1 (Swarm "
                         "stack) or 2 (Compose stack)",
                         "Invalid query parameter");
  }
  if (type == "kubernetes") {
    return ErrorResponse(500, "portainer-sim: Kubernetes stacks are not simulated");
  }
  if (method != "string" && method != "repository" && method != "file") {
    return ErrorResponse(400,
                         "Invalid value for query parameter: method. Value must be one of: "
                         "string, repository or file",
                         "Invalid query parameter");
  }
  const bool swarm = type == "swarm";

  // Payload, validated in the payload's own order.
  std::string name, swarm_id, file_content, repository_url, repository_password;
  EnvList env;
  bool from_app_template = false, repository_auth = false;
  if (method == "file") {
    name = call.FormValue("Name");
    if (name.empty()) return BadPayload("Invalid stack name");
    if (swarm) {
      swarm_id = call.FormValue("SwarmID");
      if (swarm_id.empty()) return BadPayload("Invalid Swarm ID");
    }
    const FormField* file = call.FormFile("file");
    if (file == nullptr) {
      return BadPayload("Invalid Compose file. Ensure that the Compose file is uploaded correctly");
    }
    file_content = file->content;
    const std::string env_text = call.FormValue("Env");
    if (!env_text.empty() && !DecodeEnvText(env_text, env))
      return BadPayload("Invalid Env parameter");
  } else {
    json::value body;
    if (auto error = GoDecode(call.req.body, body)) return BadPayload(*error);
    const bool repository = method == "repository";
    std::string go_type = std::string("stacks.") + (swarm ? "swarm" : "compose") + "StackFrom" +
                          (repository ? "GitRepository" : "FileContent") + "Payload";
    GoStruct reader(body, go_type);
    reader.String("Name", name);
    if (swarm) reader.String("SwarmID", swarm_id);
    reader.String("StackFileContent", file_content);
    reader.Env("Env", env);
    reader.Bool("FromAppTemplate", from_app_template);
    reader.String("RepositoryURL", repository_url);
    reader.Bool("RepositoryAuthentication", repository_auth);
    reader.String("RepositoryPassword", repository_password);
    if (reader.Error()) return BadPayload(*reader.Error());
    if (name.empty()) return BadPayload("Invalid stack name");
    if (swarm && swarm_id.empty()) return BadPayload("Invalid Swarm ID");
    if (repository) {
      if (!LooksLikeUrl(repository_url)) {
        return BadPayload("Invalid repository URL. Must correspond to a valid URL format");
      }
      if (repository_auth && repository_password.empty()) {
        return BadPayload(
            "Invalid repository credentials. Password must be specified when authentication is "
            "enabled");
      }
    } else if (file_content.empty()) {
      return BadPayload("Invalid stack file content");
    }
  }

  name = NormalizeStackName(name);
  switch (state.CheckUniqueName(*endpoint, name, 0, swarm)) {
    case NameCheck::kUnique:
      break;
    case NameCheck::kEngineUnreachable:
      return ErrorResponse(500, "Unable to check for name collision",
                           CannotConnectError(*endpoint));
    case NameCheck::kNotSwarmManager:
      return ErrorResponse(
          500, "Unable to check for name collision",
          "Error response from daemon: " + Capitalize(NotSwarmManagerError()) + ".");
    case NameCheck::kTaken: {
      const std::string conflict = "A stack with the normalized name '" + name + "' already exists";
      if (swarm) return ErrorResponse(409, conflict);
      // Compose quirk: a stored non-compose stack of that name on this environment is silently
      // dropped; any other stored match is a conflict; none at all adopts the Docker project.
      std::vector<std::int64_t> same_name;
      for (const Stack* other : state.StacksByName(name)) same_name.push_back(other->id);
      for (const std::int64_t other_id : same_name) {
        const Stack* other = state.FindStack(other_id);
        if (other->type != kStackTypeCompose && other->endpoint_id == endpoint->id) {
          state.EraseStack(other_id);
          continue;
        }
        return ErrorResponse(409, conflict);
      }
      break;
    }
  }

  const std::int64_t id = state.TakeStackId();
  if (method == "repository") {
    // No git remote exists in the simulator: the clone fails after the id was taken.
    const std::string error =
        "unable to clone git repository: git repository could not be found, please ensure that "
        "the URL is correct";
    return ErrorResponse(500, error);
  }
  Stack stack;
  stack.id = id;
  stack.name = name;
  stack.type = swarm ? kStackTypeSwarm : kStackTypeCompose;
  stack.endpoint_id = endpoint_id;
  stack.swarm_id = swarm_id;
  stack.env = std::move(env);
  stack.status = kStackStatusActive;
  stack.project_path = "/data/compose/" + std::to_string(id);
  stack.creation_date = state.Now();
  stack.created_by = call.user->username;
  stack.from_app_template = from_app_template;
  stack.file_content = std::move(file_content);
  const std::int64_t user_id = call.user->id;
  const bool admin = call.user->role == kRoleAdmin;
  if (auto error = DeployWithDelay(call, endpoint_id, stack)) return ErrorResponse(500, *error);
  state.InsertStack(stack, user_id, admin);
  const Stack* stored = state.FindStack(id);
  return JsonResponse(200, StackJson(*stored, state.ResourceControlFor(*stored)));
}

// --- stacks: read ---

ApiResponse Simulator::Impl::StackList(Call& call) {
  StackFilter filter;
  const std::string filters = call.Query("filters");
  if (!filters.empty()) {
    json::value value;
    std::optional<std::string> error = GoDecode(filters, value, /*whole=*/true);
    if (!error) {
      GoStruct reader(value, "stacks.stackListOperationFilters");
      reader.String("SwarmID", filter.swarm_id);
      reader.Int("EndpointID", filter.endpoint_id);
      reader.Bool("IncludeOrphanedStacks", filter.include_orphaned);
      error = reader.Error();
    }
    if (error) return ErrorResponse(400, "Invalid query parameter: filters", *error);
  }
  json::array out;
  for (const Stack* stack : state.ListStacks(filter)) {
    out.push_back(StackJson(*stack, state.ResourceControlFor(*stack)));
  }
  return JsonResponse(200, out);
}

ApiResponse Simulator::Impl::StackInspect(Call& call) {
  std::int64_t id = 0;
  const Stack* stack = nullptr;
  if (auto error = FindStackOr(call, state, id, stack)) return *error;
  return JsonResponse(200, StackJson(*stack, state.ResourceControlFor(*stack)));
}

ApiResponse Simulator::Impl::StackFile(Call& call) {
  std::int64_t id = 0;
  const Stack* stack = nullptr;
  if (auto error = FindStackOr(call, state, id, stack)) return *error;
  return JsonResponse(200, json::object{{"StackFileContent", stack->file_content}});
}

// --- stacks: write ---

ApiResponse Simulator::Impl::StackUpdate(Call& call) {
  std::int64_t id = 0;
  const Stack* stack = nullptr;
  if (auto error = FindStackOr(call, state, id, stack)) return *error;
  std::int64_t endpoint_id = 0;
  if (auto error = NumericQuery(call, "endpointId", false, endpoint_id)) {
    return ErrorResponse(400, "Invalid query parameter: endpointId", *error);
  }
  Stack next = *stack;
  next.endpoint_id = endpoint_id;  // legacy work-around: a different id silently re-points it
  if (state.FindEndpoint(endpoint_id) == nullptr) {
    return ErrorResponse(
        404, "Unable to find the environment associated to the stack inside the database",
        S(kObjectNotFound));
  }
  json::value body;
  if (auto error = GoDecode(call.req.body, body)) return BadPayload(*error);
  std::string file_content;
  EnvList env;
  bool prune = false, pull_image = false;
  GoStruct reader(body, "stacks.updateStackPayload");
  reader.String("StackFileContent", file_content);
  reader.Env("Env", env);
  reader.Bool("Prune", prune);
  reader.Bool("PullImage", pull_image);
  if (reader.Error()) return BadPayload(*reader.Error());
  if (file_content.empty()) return BadPayload("Invalid stack file content");

  next.env = std::move(env);  // replaced wholesale: omitted means null
  next.file_content = std::move(file_content);
  next.update_date = state.Now();
  next.updated_by = call.user->username;
  return DeployAndSave(call, endpoint_id, std::move(next), nullptr);
}

ApiResponse Simulator::Impl::DeployAndSave(Call& call, std::int64_t endpoint_id, Stack next,
                                           const char* failure) {
  auto error = DeployWithDelay(call, endpoint_id, next);
  Stack* current = state.MutableStack(next.id);
  if (error) {
    // File rolled back, record unchanged; a failed compose `up` was followed by `down`.
    if (current != nullptr) current->running = next.running;
    return failure == nullptr ? ErrorResponse(500, *error) : ErrorResponse(500, failure, *error);
  }
  next.status = kStackStatusActive;
  if (current != nullptr) state.ReplaceStack(next);
  return JsonResponse(200, StackJson(next, nullptr));
}

ApiResponse Simulator::Impl::StackStart(Call& call) {
  std::int64_t id = 0;
  std::int64_t endpoint_id = 0;
  const Stack* stack = nullptr;
  if (auto error = StartStopTarget(call, state, "Starting", id, endpoint_id, stack)) {
    return *error;
  }
  const Endpoint* endpoint = state.FindEndpoint(endpoint_id);
  if (endpoint == nullptr) {
    return ErrorResponse(
        404, "Unable to find an endpoint with the specified identifier inside the database",
        S(kObjectNotFound));
  }
  // The Docker-label check runs before the status check: an active running stack is a 409.
  switch (
      state.CheckUniqueName(*endpoint, stack->name, stack->id, stack->type == kStackTypeSwarm)) {
    case NameCheck::kUnique:
      break;
    case NameCheck::kEngineUnreachable:
      return ErrorResponse(500, "Unable to check for name collision",
                           CannotConnectError(*endpoint));
    case NameCheck::kNotSwarmManager:
      return ErrorResponse(
          500, "Unable to check for name collision",
          "Error response from daemon: " + Capitalize(NotSwarmManagerError()) + ".");
    case NameCheck::kTaken:
      return ErrorResponse(409, "A stack with the name '" + stack->name + "' is already running");
  }
  if (stack->status == kStackStatusActive) return ErrorResponse(400, "Stack is already active");
  return DeployAndSave(call, endpoint_id, *stack, "Unable to start stack");
}

ApiResponse Simulator::Impl::StackStop(Call& call) {
  std::int64_t id = 0;
  std::int64_t endpoint_id = 0;
  const Stack* stack = nullptr;
  if (auto error = StartStopTarget(call, state, "Stopping", id, endpoint_id, stack)) {
    return *error;
  }
  const Endpoint* endpoint = state.FindEndpoint(endpoint_id);
  if (endpoint == nullptr) return ErrorResponse(404, S(kEnvironmentNotFound), S(kObjectNotFound));
  if (stack->status == kStackStatusInactive) return ErrorResponse(400, "Stack is already inactive");
  Stack next = *stack;
  if (auto error = state.Down(*endpoint, next)) {
    return ErrorResponse(500, "Unable to stop stack", *error);
  }
  next.status = kStackStatusInactive;
  state.ReplaceStack(next);
  return JsonResponse(200, StackJson(next, nullptr));
}

ApiResponse Simulator::Impl::StackDelete(Call& call) {
  if (call.Query("external") == "true") return DeleteExternalStack(call);
  std::int64_t id = 0;
  const Stack* stack = nullptr;
  if (auto error = FindStackOr(call, state, id, stack)) return *error;
  std::int64_t endpoint_id = 0;
  if (auto error = NumericQuery(call, "endpointId", true, endpoint_id)) {
    return ErrorResponse(400, "Invalid query parameter: endpointId", *error);
  }
  // A different (or missing = 0) endpointId is an orphan delete; every simulated user is an
  // administrator, so it goes on against the given environment.
  const Endpoint* endpoint = state.FindEndpoint(endpoint_id);
  if (endpoint == nullptr) {
    // A true orphan (its environment was deleted) deleted with its own old environment id:
    // there is no engine left to `down`, the record goes (contract §4.8).
    if (endpoint_id == stack->endpoint_id && endpoint_id != 0) {
      state.EraseStack(id);
      return EmptyResponse(204);
    }
    return ErrorResponse(404,
                         "Unable to find the endpoint associated to the stack inside the database",
                         S(kObjectNotFound));
  }
  Stack next = *stack;
  if (auto error = state.Down(*endpoint, next)) return ErrorResponse(500, *error);
  state.EraseStack(id);
  return EmptyResponse(204);
}

ApiResponse Simulator::Impl::DeleteExternalStack(Call& call) {
  std::int64_t endpoint_id = 0;
  if (auto error = NumericQuery(call, "endpointId", false, endpoint_id)) {
    return ErrorResponse(400, "Invalid query parameter: endpointId", *error);
  }
  if (call.user->role != kRoleAdmin) {
    return ErrorResponse(401, "Permission denied to delete the stack", "Unauthorized");
  }
  const std::string name = call.vars.at("id");
  if (!state.StacksByName(name).empty()) {
    return ErrorResponse(400,
                         "A stack with this name exists inside the database. Cannot use external "
                         "delete method",
                         "A tag already exists with this name");
  }
  const Endpoint* endpoint = state.FindEndpoint(endpoint_id);
  if (endpoint == nullptr) {
    return ErrorResponse(404,
                         "Unable to find the endpoint associated to the stack inside the database",
                         S(kObjectNotFound));
  }
  if (!endpoint->up)
    return ErrorResponse(500, "Unable to delete stack", CannotConnectError(*endpoint));
  ForeignProject project{endpoint_id, name, true};
  state.RemoveForeign(project);
  return EmptyResponse(204);
}

ApiResponse Simulator::Impl::StackGitUpdate(Call& call) {
  json::value body;
  if (auto error = GoDecode(call.req.body, body)) return BadPayload(*error);
  std::int64_t id = 0;
  const Stack* stack = nullptr;
  if (auto error = FindStackOr(call, state, id, stack)) return *error;
  return ErrorResponse(500, "No Git config in the found stack");
}

ApiResponse Simulator::Impl::StackGitRedeploy(Call& call) {
  std::int64_t id = 0;
  const Stack* stack = nullptr;
  if (auto error = FindStackOr(call, state, id, stack)) return *error;
  return ErrorResponse(400, "Stack is not created from git");
}

ApiResponse Simulator::Impl::StackWebhook(Call& call) {
  const std::string webhook = call.vars.at("webhookID");
  if (!IsUuid(webhook)) {
    return ErrorResponse(400, "Invalid webhook identifier route variable",
                         "uuid: incorrect UUID length " + std::to_string(webhook.size()) +
                             " in string \"" + webhook + "\"");
  }
  // No simulated stack comes from git, so none carries an AutoUpdate webhook.
  return ErrorResponse(404, "Unable to find the stack by webhook ID", S(kObjectNotFound));
}

ApiResponse Simulator::Impl::NotSimulated(Call&) {
  return ErrorResponse(501, "portainer-sim: this route is not simulated");
}

}  // namespace tmaster::tools::portainer_sim
