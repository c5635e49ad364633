#include "tools/portainer-sim/sim_state.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <set>
#include <utility>

#include "common/text.hpp"

namespace tmaster::tools::portainer_sim {
namespace {

constexpr std::string_view kDefaultDeployFailure =
    "Error response from daemon: portainer-sim: injected deploy failure";

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

std::string DefaultUrl(std::int64_t id) {
  if (id == 1) return "unix:///var/run/docker.sock";
  return "tcp://10.0." + std::to_string(id / 256) + "." + std::to_string(id % 256) + ":2375";
}

/// Why `docker compose -p <name>` refuses a project name, or nothing.
std::optional<std::string> ComposeNameError(const std::string& name) {
  if (name.empty()) return "project name must not be empty";
  if (name.front() == '-' || name.front() == '_') {
    return "invalid project name \"" + name +
           "\": must consist only of lowercase alphanumeric characters, hyphens, and "
           "underscores as well as start with a letter or number";
  }
  return std::nullopt;
}

}  // namespace

std::string CannotConnectError(const Endpoint& endpoint) {
  return "Cannot connect to the Docker daemon at " + endpoint.url +
         ". Is the docker daemon running?";
}

namespace {

/// What `docker stack deploy` says about a service's `env_file: stack.env`: Portainer writes
/// stack.env into the project folder for compose stacks only (a swarm stack's Env is the deploy's
/// own environment), and the CLI's compose loader opens each env file relative to the compose
/// file's folder (docker/cli `cli/compose/loader`, `opts.ParseEnvFile`, whose error is os.Open's).
/// Other env files are taken to exist. A file that is not YAML is left to other checks.
std::optional<std::string> SwarmEnvFileError(const Stack& stack) {
  YAML::Node root;
  try {
    root = YAML::Load(stack.file_content);
  } catch (const YAML::Exception&) {
    return std::nullopt;
  }
  if (!root.IsMap() || !root["services"].IsMap()) return std::nullopt;
  // (A missing key of a const node is an invalid node, whose type cannot be asked.)
  const auto names_stack_env = [](const YAML::Node& item) {
    std::string path;
    if (!item.IsDefined()) return false;
    if (item.IsScalar()) path = item.Scalar();
    if (item.IsMap()) {
      const YAML::Node long_form = item["path"];
      if (long_form.IsDefined() && long_form.IsScalar()) path = long_form.Scalar();
    }
    return path == "stack.env" || path == "./stack.env";
  };
  for (const auto& service : root["services"]) {
    if (!service.second.IsMap()) continue;
    const YAML::Node env_file = service.second["env_file"];
    if (!env_file.IsDefined()) continue;
    bool found = names_stack_env(env_file);
    if (env_file.IsSequence()) {
      for (const auto& item : env_file) found = found || names_stack_env(item);
    }
    if (found) {
      const std::string path = stack.project_path + "/stack.env";
      return "open " + path + ": no such file or directory";
    }
  }
  return std::nullopt;
}

}  // namespace

std::string NotSwarmManagerError() {
  return "this node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" "
         "to connect this node to swarm and try again";
}

std::string NormalizeStackName(std::string_view name) {
  // ASCII letters lowered first; the multi-byte runes below contain none, so they are intact.
  const std::string lowered = Lower(name);
  std::string out;
  for (std::size_t i = 0; i < lowered.size(); ++i) {
    const auto byte = static_cast<unsigned char>(lowered[i]);
    if (byte < 0x80) {
      if (IsNameChar(lowered[i])) out.push_back(lowered[i]);
      continue;
    }
    // Go lower-cases runes, not bytes: U+212A KELVIN SIGN (E2 84 AA) becomes 'k' and U+0130
    // LATIN CAPITAL LETTER I WITH DOT ABOVE (C4 B0) becomes 'i'; every other non-ASCII rune
    // stays outside [-_a-z0-9] and is deleted with its continuation bytes.
    if (lowered.substr(i, 3) == "\xE2\x84\xAA") {
      out.push_back('k');
      i += 2;
    } else if (lowered.substr(i, 2) == "\xC4\xB0") {
      out.push_back('i');
      i += 1;
    }
  }
  return out;
}

State::State(Clock clock) : clock_(std::move(clock)) { Reset(1); }

void State::Reset(int endpoint_count) {
  endpoints_.clear();
  stacks_.clear();
  resource_controls_.clear();
  foreign_.clear();
  next_stack_id_ = 1;
  next_resource_control_id_ = 1;
  deploy_failures_ = 0;
  deploy_failure_text_.clear();
  for (std::int64_t id = 1; id <= std::max(1, endpoint_count); ++id) {
    Endpoint endpoint;
    endpoint.id = id;
    endpoint.name = id == 1 ? "local" : "endpoint-" + std::to_string(id);
    endpoint.url = DefaultUrl(id);
    endpoints_[id] = endpoint;
  }
}

const Endpoint* State::FindEndpoint(std::int64_t id) const {
  const auto it = endpoints_.find(id);
  return it == endpoints_.end() ? nullptr : &it->second;
}

bool State::AddEndpoint(Endpoint& endpoint) {
  if (endpoint.id == 0) endpoint.id = endpoints_.empty() ? 1 : endpoints_.rbegin()->first + 1;
  if (endpoints_.count(endpoint.id) != 0) return false;
  if (endpoint.url.empty()) endpoint.url = DefaultUrl(endpoint.id);
  if (endpoint.name.empty()) endpoint.name = "endpoint-" + std::to_string(endpoint.id);
  endpoints_[endpoint.id] = endpoint;
  return true;
}

bool State::RemoveEndpoint(std::int64_t id) { return endpoints_.erase(id) != 0; }

bool State::SetEndpointUp(std::int64_t id, bool up) {
  const auto it = endpoints_.find(id);
  if (it == endpoints_.end()) return false;
  it->second.up = up;
  return true;
}

void State::AddForeign(const ForeignProject& project) {
  if (std::find(foreign_.begin(), foreign_.end(), project) == foreign_.end()) {
    foreign_.push_back(project);
  }
}

bool State::RemoveForeign(const ForeignProject& project) {
  const auto it = std::find(foreign_.begin(), foreign_.end(), project);
  if (it == foreign_.end()) return false;
  foreign_.erase(it);
  return true;
}

bool State::SharesServices(const Endpoint& endpoint, std::int64_t other) const {
  if (other == endpoint.id) return true;
  if (endpoint.swarm_id.empty()) return false;
  const Endpoint* peer = FindEndpoint(other);
  return peer != nullptr && peer->swarm_id == endpoint.swarm_id;
}

const Stack* State::FindStack(std::int64_t id) const {
  const auto it = stacks_.find(id);
  return it == stacks_.end() ? nullptr : &it->second;
}

Stack* State::MutableStack(std::int64_t id) {
  const auto it = stacks_.find(id);
  return it == stacks_.end() ? nullptr : &it->second;
}

std::vector<const Stack*> State::StacksByName(std::string_view name) const {
  std::vector<const Stack*> out;
  for (const auto& [id, stack] : stacks_) {
    if (stack.name == name) out.push_back(&stack);
  }
  return out;
}

bool State::IsOrphaned(const Stack& stack) const {
  return endpoints_.count(stack.endpoint_id) == 0;
}

std::vector<const Stack*> State::ListStacks(const StackFilter& filter) const {
  std::vector<const Stack*> out;
  if (filter.endpoint_id == 0 && filter.swarm_id.empty()) {
    for (const auto& [id, stack] : stacks_) out.push_back(&stack);
    return out;
  }
  std::set<std::string> names;
  for (const auto& [id, stack] : stacks_) {
    if (filter.include_orphaned && IsOrphaned(stack)) continue;
    const bool compose_match =
        stack.type == kStackTypeCompose && stack.endpoint_id == filter.endpoint_id;
    const bool swarm_match = stack.type == kStackTypeSwarm && stack.swarm_id == filter.swarm_id;
    if (compose_match || swarm_match) {
      out.push_back(&stack);
      names.insert(stack.name);
    }
  }
  if (filter.include_orphaned) {
    const int wanted = filter.swarm_id.empty() ? kStackTypeCompose : kStackTypeSwarm;
    for (const auto& [id, stack] : stacks_) {
      if (!IsOrphaned(stack) || stack.type != wanted || names.count(stack.name) != 0) continue;
      out.push_back(&stack);
      names.insert(stack.name);
    }
    std::sort(out.begin(), out.end(), [](const Stack* a, const Stack* b) { return a->id < b->id; });
  }
  return out;
}

NameCheck State::CheckUniqueName(const Endpoint& endpoint, std::string_view name,
                                 std::int64_t exclude_id, bool swarm) const {
  for (const auto& [id, stack] : stacks_) {
    if (EqualsIgnoreCase(stack.name, name) && (exclude_id == 0 || exclude_id != id) &&
        stack.endpoint_id == endpoint.id) {
      return NameCheck::kTaken;
    }
  }
  if (!endpoint.up) return NameCheck::kEngineUnreachable;
  // What the engine holds: our running stacks' containers / services, and foreign projects.
  // A manager's ServiceList shows the services of its whole cluster, whichever Portainer
  // environment deployed them; ContainerList shows this engine's containers only.
  const auto on_engine = [&](std::int64_t id, bool want_swarm) {
    return want_swarm ? SharesServices(endpoint, id) : id == endpoint.id;
  };
  const auto engine_has = [&](bool want_swarm) {
    for (const auto& [id, stack] : stacks_) {
      if (on_engine(stack.endpoint_id, want_swarm) && stack.running && stack.name == name &&
          (stack.type == kStackTypeSwarm) == want_swarm) {
        return true;
      }
    }
    return std::any_of(foreign_.begin(), foreign_.end(), [&](const ForeignProject& f) {
      return on_engine(f.endpoint_id, want_swarm) && f.name == name && f.swarm == want_swarm;
    });
  };
  if (swarm) {
    if (endpoint.swarm_id.empty()) return NameCheck::kNotSwarmManager;
    if (engine_has(true)) return NameCheck::kTaken;
  }
  return engine_has(false) ? NameCheck::kTaken : NameCheck::kUnique;
}

std::optional<std::string> State::Deploy(const Endpoint& endpoint, Stack& stack) {
  const bool compose = stack.type == kStackTypeCompose;
  const auto fail = [&](std::string stderr_text, bool taken_down) -> std::optional<std::string> {
    if (compose && taken_down) stack.running = false;
    return compose ? "failed to deploy a stack: " + stderr_text : stderr_text;
  };
  // An unreachable engine: even the `down` after the failed `up` cannot reach it, so whatever
  // ran there keeps running.
  if (!endpoint.up) return fail(CannotConnectError(endpoint), false);
  if (!compose && endpoint.swarm_id.empty()) return fail(NotSwarmManagerError(), false);
  if (compose) {
    if (auto error = ComposeNameError(stack.name)) return fail(*error, true);
  } else if (stack.name.empty() || stack.name.front() == '-' || stack.name.front() == '_') {
    return fail(
        "Error response from daemon: rpc error: code = InvalidArgument desc = name must be "
        "valid as a DNS name component",
        false);
  }
  if (!compose) {
    if (auto error = SwarmEnvFileError(stack)) return fail(*error, false);
  }
  if (deploy_failures_ > 0) {
    --deploy_failures_;
    return fail(
        deploy_failure_text_.empty() ? std::string(kDefaultDeployFailure) : deploy_failure_text_,
        true);
  }
  stack.running = true;
  return std::nullopt;
}

std::optional<std::string> State::Down(const Endpoint& endpoint, Stack& stack) {
  if (!endpoint.up) {
    if (stack.type == kStackTypeCompose) {
      return "failed to remove a stack: " + CannotConnectError(endpoint);
    }
    return CannotConnectError(endpoint);
  }
  stack.running = false;
  // `down --remove-orphans` / `stack rm` take every container / service of the project or
  // namespace with them, including those of a foreign project the stack adopted.
  const bool swarm = stack.type == kStackTypeSwarm;
  foreign_.erase(std::remove_if(foreign_.begin(), foreign_.end(),
                                [&](const ForeignProject& f) {
                                  const bool here = swarm ? SharesServices(endpoint, f.endpoint_id)
                                                          : f.endpoint_id == endpoint.id;
                                  return here && f.name == stack.name && f.swarm == swarm;
                                }),
                 foreign_.end());
  return std::nullopt;
}

void State::InsertStack(Stack stack, std::int64_t user_id, bool admin) {
  ResourceControl rc;
  rc.id = next_resource_control_id_++;
  rc.resource_id = std::to_string(stack.endpoint_id) + "_" + stack.name;
  rc.administrators_only = admin;
  if (!admin) rc.user_ids.push_back(user_id);
  resource_controls_[rc.id] = rc;
  const std::int64_t id = stack.id;
  stacks_[id] = std::move(stack);
}

void State::ReplaceStack(const Stack& stack) { stacks_[stack.id] = stack; }

void State::EraseStack(std::int64_t id) {
  const auto it = stacks_.find(id);
  if (it == stacks_.end()) return;
  if (const ResourceControl* rc = ResourceControlFor(it->second)) {
    const std::int64_t rc_id = rc->id;
    resource_controls_.erase(rc_id);
  }
  stacks_.erase(it);
}

const ResourceControl* State::ResourceControlFor(const Stack& stack) const {
  const std::string resource_id = std::to_string(stack.endpoint_id) + "_" + stack.name;
  for (const auto& [id, rc] : resource_controls_) {
    if (rc.resource_id == resource_id) return &rc;
  }
  return nullptr;
}

void State::AddDeployFailures(int count, std::string stderr_text) {
  deploy_failures_ = std::max(0, deploy_failures_ + count);
  if (!stderr_text.empty()) deploy_failure_text_ = std::move(stderr_text);
}

}  // namespace tmaster::tools::portainer_sim
