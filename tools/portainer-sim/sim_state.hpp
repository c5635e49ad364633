#pragma once

// The simulator's in-memory world: Portainer's database (environments, stacks, resource
// controls, the id sequences) and the few Docker-side facts Portainer consults (which compose
// projects and swarm namespaces exist on each engine, whether an engine answers at all).
//
// Pure C++: no HTTP, no JSON, no clock or lock of its own (the clock is injected, the caller
// serializes access). The HTTP handlers in simulator.cpp walk Portainer's check order and call
// these primitives, which hold the rules that do not depend on the request shape: name
// normalization, the uniqueness check, the id sequence, what a deploy or a `down` does.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace tmaster::tools::portainer_sim {

/// portainer.StackType
inline constexpr int kStackTypeSwarm = 1;
inline constexpr int kStackTypeCompose = 2;
inline constexpr int kStackTypeKubernetes = 3;
/// portainer.StackStatus
inline constexpr int kStackStatusActive = 1;
inline constexpr int kStackStatusInactive = 2;
/// portainer.EndpointStatus
inline constexpr int kEndpointStatusUp = 1;
inline constexpr int kEndpointStatusDown = 2;
/// portainer.StackResourceControl
inline constexpr int kResourceControlTypeStack = 6;

/// One `{"name": ..., "value": ...}` pair of a stack's Env.
struct EnvPair {
  std::string name;
  std::string value;
  friend bool operator==(const EnvPair&, const EnvPair&) = default;
};

/// A stack's Env: `std::nullopt` is Go's nil slice (`"Env": null`), an empty vector is `[]`.
using EnvList = std::optional<std::vector<EnvPair>>;

/// A Portainer environment (endpoint) and the Docker engine behind it.
struct Endpoint {
  std::int64_t id = 0;
  std::string name;
  int type = 1;  ///< 1 Docker API, 2 agent on Docker, ...
  std::string url;
  bool up = true;        ///< false: the engine does not answer (Status 2)
  std::string swarm_id;  ///< non-empty: the engine is a manager of this swarm cluster
  int group_id = 1;
};

/// A stored stack plus what the simulated engine knows about it.
struct Stack {
  std::int64_t id = 0;
  std::string name;  ///< normalized
  int type = kStackTypeCompose;
  std::int64_t endpoint_id = 0;
  std::string swarm_id;
  std::string entry_point = "docker-compose.yml";
  EnvList env;
  int status = kStackStatusActive;
  std::string project_path;
  std::int64_t creation_date = 0;
  std::string created_by;
  std::int64_t update_date = 0;
  std::string updated_by;
  bool from_app_template = false;
  /// `<ProjectPath>/<EntryPoint>` on Portainer's disk.
  std::string file_content;
  /// Docker side: the project's containers (compose) or services (swarm) exist.
  bool running = false;
};

/// The resource control Portainer creates beside a stack (its own id sequence).
struct ResourceControl {
  std::int64_t id = 0;
  std::string resource_id;  ///< "<EndpointId>_<Name>"
  bool administrators_only = true;
  std::vector<std::int64_t> user_ids;  ///< UserAccesses with AccessLevel 1
};

/// A compose project or swarm namespace on an engine that Portainer did not create.
struct ForeignProject {
  std::int64_t endpoint_id = 0;
  std::string name;
  bool swarm = false;  ///< true: services labelled com.docker.stack.namespace
  friend bool operator==(const ForeignProject&, const ForeignProject&) = default;
};

/// `GET /api/stacks?filters=` (§3.3).
struct StackFilter {
  std::int64_t endpoint_id = 0;
  std::string swarm_id;
  bool include_orphaned = false;
};

/// Outcome of Portainer's `checkUniqueStackNameInDocker`.
enum class NameCheck {
  kUnique,
  kTaken,              ///< a stored stack on that environment, or a Docker object, holds it
  kEngineUnreachable,  ///< the Docker client call failed: the engine is down
  kNotSwarmManager,    ///< swarm check on an engine that is not a manager (ServiceList fails)
};

/// The Docker error texts the simulator reproduces (stderr of compose / the daemon).
std::string CannotConnectError(const Endpoint& endpoint);
std::string NotSwarmManagerError();

/// Portainer's NormalizeStackName: lower-case, then delete every character outside
/// `[-_a-z0-9]` (Go's Unicode lower-casing: only U+212A KELVIN SIGN and U+0130 become ASCII).
std::string NormalizeStackName(std::string_view name);

class State {
 public:
  /// Unix time in seconds.
  using Clock = std::function<std::int64_t()>;

  explicit State(Clock clock);

  /// Back to the seeded world: environments 1..`endpoint_count` (1 is "local", standalone,
  /// up), no stacks, both id sequences at 1, no foreign projects, no pending deploy failures.
  void Reset(int endpoint_count);

  [[nodiscard]] std::int64_t Now() const { return clock_(); }

  // --- environments ---
  [[nodiscard]] const Endpoint* FindEndpoint(std::int64_t id) const;
  [[nodiscard]] const std::map<std::int64_t, Endpoint>& Endpoints() const { return endpoints_; }
  /// Adds an environment; id 0 takes the next free id. Returns false if the id is taken.
  bool AddEndpoint(Endpoint& endpoint);
  /// Removes an environment; its stacks stay as orphans. False if unknown.
  bool RemoveEndpoint(std::int64_t id);
  /// Marks the engine reachable or not. False if unknown.
  bool SetEndpointUp(std::int64_t id, bool up);
  /// True when the swarm services of environment `other` are visible from `endpoint`'s engine:
  /// the same environment, or two managers of one swarm cluster (services are cluster-wide in
  /// Docker; containers stay per engine).
  [[nodiscard]] bool SharesServices(const Endpoint& endpoint, std::int64_t other) const;

  // --- Docker-side objects Portainer did not create ---
  void AddForeign(const ForeignProject& project);
  bool RemoveForeign(const ForeignProject& project);
  [[nodiscard]] const std::vector<ForeignProject>& Foreign() const { return foreign_; }

  // --- stacks ---
  [[nodiscard]] const Stack* FindStack(std::int64_t id) const;
  [[nodiscard]] Stack* MutableStack(std::int64_t id);
  [[nodiscard]] const std::map<std::int64_t, Stack>& Stacks() const { return stacks_; }
  /// Stored stacks with exactly that (normalized) name, any environment, by id.
  [[nodiscard]] std::vector<const Stack*> StacksByName(std::string_view name) const;
  /// True when the stack's environment no longer exists.
  [[nodiscard]] bool IsOrphaned(const Stack& stack) const;
  /// §3.3 filter semantics, ordered by id.
  [[nodiscard]] std::vector<const Stack*> ListStacks(const StackFilter& filter) const;

  /// Portainer's uniqueness check: a stored stack of that name (case-insensitive) on the
  /// environment other than `exclude_id`, then the engine: swarm services of its cluster (when
  /// `swarm`) and containers labelled with the compose project.
  [[nodiscard]] NameCheck CheckUniqueName(const Endpoint& endpoint, std::string_view name,
                                          std::int64_t exclude_id, bool swarm) const;

  /// Takes the next stack id (BoltDB NextSequence: never reused, consumed even by failures).
  std::int64_t TakeStackId() { return next_stack_id_++; }
  [[nodiscard]] std::int64_t PeekStackId() const { return next_stack_id_; }

  /// Runs the stack on `endpoint` (`compose up -d` / `stack deploy`). Success: running.
  /// Failure returns the error Portainer reports as the 500 message: compose
  /// `failed to deploy a stack: <stderr>` (and the project is taken down, as Portainer runs
  /// `down` after a failed `up`), swarm the raw stderr. Causes, in order: engine down, not a
  /// swarm manager (swarm), an invalid project name, a swarm stack whose file has a service
  /// with `env_file: stack.env` (`open <ProjectPath>/stack.env: no such file or directory`:
  /// Portainer writes no stack.env for swarm), an injected deploy failure.
  std::optional<std::string> Deploy(const Endpoint& endpoint, Stack& stack);
  /// Removes the containers / services (`down --remove-orphans` / `stack rm`), including a
  /// foreign project (swarm: a namespace anywhere in the cluster) of the same name. Fails only when the engine is down
  /// (returns the error text, the stack is left as it was).
  std::optional<std::string> Down(const Endpoint& endpoint, Stack& stack);

  /// Stores a new stack and its resource control (admin creator: administrators only).
  void InsertStack(Stack stack, std::int64_t user_id, bool admin);
  /// Replaces a stored stack's record.
  void ReplaceStack(const Stack& stack);
  /// Deletes the record and its resource control.
  void EraseStack(std::int64_t id);
  /// The resource control whose ResourceId is `<EndpointId>_<Name>` of the stack as it is now
  /// (a stack re-pointed by PUT loses it, as in Portainer).
  [[nodiscard]] const ResourceControl* ResourceControlFor(const Stack& stack) const;
  [[nodiscard]] const std::map<std::int64_t, ResourceControl>& ResourceControls() const {
    return resource_controls_;
  }
  [[nodiscard]] std::int64_t PeekResourceControlId() const { return next_resource_control_id_; }

  // --- injected deploy failures ---
  /// The next `count` deploys fail with `stderr` (empty: a default daemon error).
  void AddDeployFailures(int count, std::string stderr_text);
  [[nodiscard]] int PendingDeployFailures() const { return deploy_failures_; }

 private:
  Clock clock_;
  std::map<std::int64_t, Endpoint> endpoints_;
  std::map<std::int64_t, Stack> stacks_;
  std::map<std::int64_t, ResourceControl> resource_controls_;
  std::vector<ForeignProject> foreign_;
  std::int64_t next_stack_id_ = 1;
  std::int64_t next_resource_control_id_ = 1;
  int deploy_failures_ = 0;
  std::string deploy_failure_text_;
};

}  // namespace tmaster::tools::portainer_sim
