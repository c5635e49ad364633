#include "controller/cli/tenantctl.hpp"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <optional>
#include <thread>

#include "common/text.hpp"
#include "controller/cli/args.hpp"
#include "controller/cli/client.hpp"
#include "controller/cli/documents.hpp"
#include "controller/cli/format.hpp"
#include "controller/cli/json_util.hpp"
#include "manifests/config.hpp"
#include "manifests/loader.hpp"

namespace tmaster::cli {
namespace {

namespace json = boost::json;
using detail::At;
using detail::Text;

constexpr std::string_view kApiVersion = "tenantmaster.io/v1alpha1";

constexpr std::string_view kUsage =
    "usage: tenantctl COMMAND [flags]   (docs/api.md#tenantctl)\n"
    "\n"
    "  apply -f FILE|DIR|- [--force]          create or change workspaces (PUT each Workspace)\n"
    "  get workspaces|workspace NAME|products|sources|events|clusters|endpoints|moves|move NAME\n"
    "      [-o table|wide|json|yaml|name] [-l key=value] [--phase PHASE] [--workspace NAME]\n"
    "      [--limit N] [--chunk-size N]\n"
    "  describe workspace NAME                spec, conditions, last runs, events, the plan\n"
    "  describe move NAME                     the workspace's newest move, step by step\n"
    "  diff -f FILE|DIR|-                     the plan; exit 0 none, 1 differences, 2 error\n"
    "  delete workspace NAME [--force]\n"
    "  reconcile workspace NAME [--wait] [--timeout 60s]\n"
    "  suspend|resume workspace NAME\n"
    "  backup NAME [--wait] [--timeout 10m]   take a backup now; --wait until it is in the catalog\n"
    "  backup --all [-l key=value] [--wait]   every (selected) workspace\n"
    "  backups NAME [-o table|json|yaml]      the catalog and the backups queued\n"
    "  restore NAME --backup ID [--into OTHER] [--wait] [--timeout 30m]\n"
    "                                         restore a backup of NAME (into OTHER: a copy)\n"
    "  move NAME --to CLUSTER [--wait] [--timeout 30m] [-o table|json|yaml]\n"
    "                                         move its database to another cluster (docs/moves.md);\n"
    "                                         --wait: each step, exit 0 succeeded, 1 failed, 3 timeout\n"
    "  move --prune NAME                      drop the source a succeeded move kept\n"
    "  rollout status PRODUCT [-o table|json|yaml]\n"
    "                                         the product's rollout: phase, wave, workspaces\n"
    "  rollout pause|resume|promote|abort|undo PRODUCT [-o table|json|yaml]\n"
    "                                         steer it (docs/rollouts.md); prints the new status\n"
    "  token create --role admin|viewer [--ttl 30d] [--description TEXT]\n"
    "  token list | token revoke ID\n"
    "  validate -f PATH|- [--config FILE]     offline: exit 0 valid, 1 invalid\n"
    "  version [--client]\n"
    "  completion bash|zsh\n"
    "\n"
    "Connection: --server URL, --token TOKEN, --certificate-authority FILE,\n"
    "--insecure-skip-tls-verify, --request-timeout 30s; else TENANTCTL_SERVER and\n"
    "TENANTCTL_TOKEN; else $XDG_CONFIG_HOME/tenantctl/config (~/.config/tenantctl/config), lines\n"
    "`server: URL`, `token: TOKEN`, `certificateAuthority: FILE`, mode 0600. Default server:\n"
    "http://127.0.0.1:8080.\n";

std::optional<Resource> ResourceNamed(std::string_view word) {
  if (word == "workspaces" || word == "workspace" || word == "ws") return Resource::kWorkspace;
  if (word == "products" || word == "product") return Resource::kProduct;
  if (word == "sources" || word == "source") return Resource::kSource;
  if (word == "events" || word == "event") return Resource::kEvent;
  if (word == "clusters" || word == "cluster") return Resource::kCluster;
  if (word == "endpoints" || word == "endpoint") return Resource::kEndpoint;
  if (word == "moves" || word == "move") return Resource::kMove;
  return std::nullopt;
}

std::string WorkspacePath(const std::string& name) {
  return "/api/v1/workspaces/" + PercentEncode(name);
}

// One run of tenantctl: the command, the world, and (for the server verbs) the client.
class Session {
 public:
  Session(const Command& command, World& world) : command_(command), world_(world) {}

  int Usage(const std::string& error) const {
    *world_.err << "tenantctl: " << error << "\n\n" << kUsage;
    return 2;
  }

  // The one error line of a failure; the token never shows, whatever the text quotes.
  int Fail(const std::string& line, int code = 1) const {
    *world_.err << "tenantctl: " << WithoutToken(line, connection_.token) << '\n';
    return code;
  }

  // Opens the client; nullopt when it can, else the exit code (the error printed).
  std::optional<int> Connect() {
    Outcome<Connection> connection = ResolveConnection(command_.connection, world_.env);
    if (!connection) return Fail(connection.failure().message, 2);
    connection_ = std::move(*connection);
    client_ = std::make_unique<Client>(connection_, command_.request_timeout);
    return std::nullopt;
  }

  // A request whose answer must be one of the `ok` statuses. The failure's message is the
  // error line; its reason says whether the server answered (`HTTP 404`) or not (`Unreachable`).
  Outcome<Response> Call(std::string_view method, const std::string& path, const Subject& subject,
                         std::initializer_list<int> ok = {200},
                         const std::string& body = "", const std::string& type = "") {
    Outcome<Response> response = client_->Send(method, path, body, type);
    if (!response) return response.failure();
    for (const int status : ok) {
      if (response->status == status) return response;
    }
    return Failure::Stalled("HTTP " + std::to_string(response->status),
                            ErrorLine(*response, subject));
  }

  // Every item of a list, page after page (`?limit=` then `metadata.continue`), at most
  // --limit in all; the items as a JSON array's text.
  Outcome<std::string> ListAll(const std::string& path, std::vector<std::string> query) {
    json::array items;
    std::string next;
    std::vector<std::string> seen;
    while (true) {
      long page = command_.chunk_size;
      if (command_.limit) {
        page = std::min<long>(page, *command_.limit - static_cast<long>(items.size()));
      }
      std::string target = path + "?limit=" + std::to_string(page);
      for (const std::string& q : query) target += "&" + q;
      if (!next.empty()) target += "&continue=" + PercentEncode(next);
      Outcome<Response> response = Call("GET", target, {});
      if (!response) return response.failure();
      const std::optional<json::value> parsed = detail::ParseJson(response->body);
      const json::array* page_items = parsed ? detail::ArrayAt(*parsed, "items") : nullptr;
      if (page_items == nullptr) {
        return Failure::Stalled("BadAnswer", "the server's answer to GET " + path +
                                                 " is not a list ({\"items\": [...]})");
      }
      for (const json::value& item : *page_items) {
        if (command_.limit && static_cast<long>(items.size()) >= *command_.limit) break;
        items.push_back(item);
      }
      next = Text(At(*parsed, {"metadata", "continue"}));
      if (next.empty()) break;
      if (command_.limit && static_cast<long>(items.size()) >= *command_.limit) break;
      if (std::find(seen.begin(), seen.end(), next) != seen.end()) {
        return Failure::Stalled("BadAnswer", "the server repeated a continue token of " + path);
      }
      seen.push_back(next);
    }
    return json::serialize(items);
  }

  int Get();
  int Describe();
  int Apply();
  int Diff();
  int Delete();
  int Reconcile();
  int SuspendOrResume();
  int Token();
  int Version();
  int Backup();
  int Backups();
  int Restore();
  int Rollout();
  int Move();

  std::ostream& out() const { return *world_.out; }
  /// Waits between two polls of a `--wait`, what was printed so far flushed first: a script
  /// reading tenantctl through a pipe sees each step when it happens, not all at the exit.
  void Pause(std::chrono::milliseconds pause) const {
    world_.out->flush();
    world_.sleep(pause);
  }
  std::ostream& err() const { return *world_.err; }

 private:
  // `VERB workspace NAME`: the name, or nullopt after a usage error.
  std::optional<std::string> WorkspaceArgument(int& code) const {
    if (command_.positionals.size() != 2 ||
        ResourceNamed(command_.positionals[0]) != Resource::kWorkspace) {
      code = Usage(command_.verb + ": expected `" + command_.verb + " workspace NAME`");
      return std::nullopt;
    }
    return command_.positionals[1];
  }

  // The line of a backup route's error: the server's message says which object (the workspace,
  // the backup, the restore's target) and why; 401, 403, 429 and 5xx as every verb says them.
  static std::string BackupErrorLine(const Response& response, const std::string& what) {
    const int status = response.status;
    if (status != 400 && status != 404 && status != 409 && status != 422) {
      return ErrorLine(response, {});
    }
    const std::string message = ServerMessage(response);
    return what + " refused (" + std::to_string(status) + ")" +
           (message.empty() ? "" : ": " + message);
  }

  // `describe move NAME`.
  int DescribeMoveOf(const std::string& name);
  // GET .../move of `name`: the move's JSON, or the error line (404: none recorded).
  Outcome<std::string> FetchMove(const std::string& name);
  // Polls the move of `workspace` until it is finished or the deadline; prints each new step.
  int WaitForMove(const std::string& workspace, json::value move);

  // POST .../backups of `name`: its id, or the error line.
  Outcome<std::string> QueueBackup(const std::string& name);
  // Polls the catalog of `name` until `id` is in it or `deadline`; 0 ok, 1 otherwise (said).
  int WaitForBackup(const std::string& name, const std::string& id,
                    std::chrono::steady_clock::time_point deadline,
                    std::chrono::seconds timeout);
  int BackupAll();

  Outcome<std::vector<DocumentText>> Documents() const {
    std::string stdin_text;
    for (const std::string& file : command_.files) {
      if (file == "-" && world_.read_stdin) stdin_text = world_.read_stdin();
    }
    return ReadDocuments(command_.files, stdin_text);
  }

  int Print(const Outcome<std::string>& text) const {
    if (!text) return Fail(text.failure().message);
    out() << *text;
    return 0;
  }

  const Command& command_;
  World& world_;
  Connection connection_;
  std::unique_ptr<Client> client_;
};

int Session::Get() {
  if (command_.positionals.empty()) {
    return Usage("get: expected workspaces, workspace NAME, products, sources, events, clusters, "
                 "endpoints, moves or move NAME");
  }
  const std::optional<Resource> resource = ResourceNamed(command_.positionals[0]);
  if (!resource) return Usage("get: unknown resource \"" + command_.positionals[0] + "\"");
  if (command_.positionals.size() > 2 ||
      (command_.positionals.size() == 2 && resource != Resource::kWorkspace &&
       resource != Resource::kMove)) {
    return Usage("get: a name is taken only by `get workspace NAME` and `get move NAME`");
  }
  if ((command_.selector || command_.phase) && resource != Resource::kWorkspace) {
    return Usage("get: -l and --phase select workspaces only");
  }
  if (command_.workspace && resource != Resource::kEvent) {
    return Usage("get: --workspace selects events only");
  }
  if (std::optional<int> code = Connect()) return *code;
  const std::int64_t now = world_.now_unix();
  if (command_.positionals.size() == 2 && resource == Resource::kMove) {
    Outcome<std::string> move = FetchMove(command_.positionals[1]);
    if (!move) return Fail(move.failure().message);
    return Print(FormatObject(Resource::kMove, *move, command_.output, now));
  }
  if (command_.positionals.size() == 2) {
    const std::string& name = command_.positionals[1];
    Outcome<Response> response = Call("GET", WorkspacePath(name), {"workspace", name});
    if (!response) return Fail(response.failure().message);
    return Print(FormatObject(Resource::kWorkspace, response->body, command_.output, now));
  }
  std::string path;
  std::vector<std::string> query;
  switch (*resource) {
    case Resource::kWorkspace:
      path = "/api/v1/workspaces";
      if (command_.selector) query.push_back("labelSelector=" + PercentEncode(*command_.selector));
      if (command_.phase) query.push_back("phase=" + PercentEncode(*command_.phase));
      break;
    case Resource::kProduct: path = "/api/v1/products"; break;
    case Resource::kSource: path = "/api/v1/sources"; break;
    case Resource::kCluster: path = "/api/v1/clusters"; break;
    case Resource::kEndpoint: path = "/api/v1/endpoints"; break;
    case Resource::kMove: path = "/api/v1/moves"; break;
    case Resource::kEvent:
      path = "/api/v1/events";
      if (command_.workspace) query.push_back("workspace=" + PercentEncode(*command_.workspace));
      break;
    case Resource::kToken: break;
  }
  Outcome<std::string> items = ListAll(path, query);
  if (!items) return Fail(items.failure().message);
  if (*items == "[]" && (command_.output == "table" || command_.output == "wide")) {
    err() << "No resources found.\n";
    return 0;
  }
  return Print(FormatItems(*resource, *items, command_.output, now));
}

int Session::Describe() {
  if (command_.positionals.size() == 2 &&
      ResourceNamed(command_.positionals[0]) == Resource::kMove) {
    return DescribeMoveOf(command_.positionals[1]);
  }
  if (command_.positionals.size() != 2 ||
      ResourceNamed(command_.positionals[0]) != Resource::kWorkspace) {
    return Usage("describe: expected `describe workspace NAME` or `describe move NAME`");
  }
  const std::optional<std::string> name = command_.positionals[1];
  if (std::optional<int> failed = Connect()) return *failed;
  Outcome<Response> response = Call("GET", WorkspacePath(*name), {"workspace", *name});
  if (!response) return Fail(response.failure().message);
  const std::optional<json::value> object = detail::ParseJson(response->body);
  if (!object || !object->is_object()) return Fail("the server's answer is not a workspace");

  std::string events = "[]";
  Outcome<Response> answer =
      Call("GET", "/api/v1/events?limit=10&workspace=" + PercentEncode(*name), {});
  if (answer) {
    const std::optional<json::value> parsed = detail::ParseJson(answer->body);
    const json::array* items = parsed ? detail::ArrayAt(*parsed, "items") : nullptr;
    events = items != nullptr ? json::serialize(*items) : "unavailable: not a list";
  } else {
    events = "unavailable: " + answer.failure().message;
  }

  std::string plan;
  if (Text(At(*object, {"status", "phase"})) != "Ready") {
    // The workspace as a manifest again (without status or server metadata) is what the plan
    // route reads.
    json::object manifest;
    manifest["apiVersion"] = Text(At(*object, {"apiVersion"}), kApiVersion);
    manifest["kind"] = "Workspace";
    json::object metadata{{"name", *name}};
    if (const json::value* labels = At(*object, {"metadata", "labels"})) {
      metadata["labels"] = *labels;
    }
    manifest["metadata"] = std::move(metadata);
    if (const json::value* spec = At(*object, {"spec"})) manifest["spec"] = *spec;
    Outcome<Response> planned = Call("POST", "/api/v1/plan", {"workspace", *name}, {200},
                                     detail::ToYaml(manifest), "application/yaml");
    plan = planned ? SummarizePlan(planned->body).text
                   : "unavailable: " + planned.failure().message + "\n";
  }
  out() << WithoutToken(DescribeWorkspace(response->body, events, plan, world_.now_unix()),
                        connection_.token);
  return 0;
}

int Session::Apply() {
  if (command_.files.empty()) return Usage("apply: -f FILE|DIR|- is required");
  if (!command_.positionals.empty()) return Usage("apply: unexpected " + command_.positionals[0]);
  Outcome<std::vector<DocumentText>> documents = Documents();
  if (!documents) return Fail(documents.failure().message);
  if (std::optional<int> code = Connect()) return *code;
  bool failed = false;
  for (const DocumentText& document : *documents) {
    const DocumentKind kind = Identify(document);
    const std::string where = document.file + ":" + std::to_string(kind.kind_line);
    if (!kind.error.empty()) {
      err() << kind.error << '\n';
      failed = true;
      continue;
    }
    if (kind.kind == "Product") {
      err() << "product/" << kind.name << " skipped (" << where
            << "): products live in the sources, not in the API\n";
      continue;
    }
    if (kind.kind != "Workspace" || kind.api_version != kApiVersion) {
      err() << where << ": skipped: not a " << kApiVersion << " Workspace"
            << (kind.kind.empty() ? std::string() : " (kind " + Quoted(kind.kind) + ")") << '\n';
      continue;
    }
    if (kind.name.empty()) {
      err() << where << ":1: metadata.name: required\n";
      failed = true;
      continue;
    }
    const std::string path = WorkspacePath(kind.name) + (command_.force ? "?force=true" : "");
    Outcome<Response> response = client_->Send("PUT", path, document.text, "application/yaml");
    if (!response) return Fail(response.failure().message);
    if (response->status == 200 || response->status == 201) {
      std::string result = response->apply_result;
      if (result.empty()) result = response->status == 201 ? "created" : "configured";
      out() << "workspace/" << kind.name << ' ' << result << '\n';
      continue;
    }
    failed = true;
    const std::vector<Finding> findings = ParseFindings(ErrorDetails(*response));
    if (response->status == 422 && !findings.empty()) {
      std::string ignored;
      const LineMap lines = LineMap::Join({document}, ignored);
      for (const Finding& finding : findings) err() << lines.Map(finding).Format() << '\n';
      continue;
    }
    Fail(where + ": " + ErrorLine(*response, {"workspace", kind.name}));
  }
  return failed ? 1 : 0;
}

int Session::Diff() {
  if (command_.files.empty()) return Usage("diff: -f FILE|DIR|- is required");
  Outcome<std::vector<DocumentText>> documents = Documents();
  if (!documents) return Fail(documents.failure().message, 2);
  std::vector<DocumentText> workspaces;
  bool broken = false;
  for (const DocumentText& document : *documents) {
    const DocumentKind kind = Identify(document);
    if (!kind.error.empty()) {
      err() << kind.error << '\n';
      broken = true;
    } else if (kind.kind == "Workspace") {
      workspaces.push_back(document);
    }
  }
  if (broken) return 2;
  if (workspaces.empty()) {
    err() << "no Workspace documents: nothing to plan\n";
    return 0;
  }
  if (std::optional<int> code = Connect()) return *code;
  std::string body;
  const LineMap lines = LineMap::Join(workspaces, body);
  Outcome<Response> response = client_->Send("POST", "/api/v1/plan", body, "application/yaml");
  if (!response) return Fail(response.failure().message, 2);
  if (response->status != 200) {
    const std::vector<Finding> findings = ParseFindings(ErrorDetails(*response));
    for (const Finding& finding : findings) err() << lines.Map(finding).Format() << '\n';
    if (findings.empty()) return Fail(ErrorLine(*response, {}), 2);
    return 2;
  }
  const PlanSummary summary = SummarizePlan(response->body);
  if (!summary.valid) return Fail("the server's answer is not a plan", 2);
  const std::optional<json::value> parsed = detail::ParseJson(response->body);
  if (const json::array* diagnostics = detail::ArrayAt(*parsed, "diagnostics")) {
    for (const Finding& finding : ParseFindings(json::serialize(*diagnostics))) {
      err() << lines.Map(finding).Format() << '\n';
    }
  }
  out() << summary.text;
  if (summary.errors) return 2;
  return summary.differences ? 1 : 0;
}

int Session::Delete() {
  int code = 0;
  const std::optional<std::string> name = WorkspaceArgument(code);
  if (!name) return code;
  if (std::optional<int> failed = Connect()) return *failed;
  Outcome<Response> response =
      Call("DELETE", WorkspacePath(*name) + (command_.force ? "?force=true" : ""),
           {"workspace", *name}, {200, 202, 204});
  if (!response) return Fail(response.failure().message);
  out() << "workspace/" << *name << " deleted\n";
  return 0;
}

int Session::SuspendOrResume() {
  int code = 0;
  const std::optional<std::string> name = WorkspaceArgument(code);
  if (!name) return code;
  if (std::optional<int> failed = Connect()) return *failed;
  Outcome<Response> response =
      Call("POST", WorkspacePath(*name) + "/" + command_.verb, {"workspace", *name}, {200, 202});
  if (!response) return Fail(response.failure().message);
  out() << "workspace/" << *name << (command_.verb == "suspend" ? " suspended\n" : " resumed\n");
  return 0;
}

bool Succeeded(std::string_view result) {
  return EqualsIgnoreCase(result, "Succeeded") || EqualsIgnoreCase(result, "Success") ||
         EqualsIgnoreCase(result, "Ready");
}

int Session::Reconcile() {
  int code = 0;
  const std::optional<std::string> name = WorkspaceArgument(code);
  if (!name) return code;
  if (std::optional<int> failed = Connect()) return *failed;
  const Subject subject{"workspace", *name};
  Outcome<Response> queued =
      Call("POST", WorkspacePath(*name) + "/reconcile", subject, {200, 202});
  if (!queued) return Fail(queued.failure().message);
  out() << "workspace/" << *name << " reconcile queued\n";
  if (!command_.wait) return 0;

  const std::optional<json::value> answer = detail::ParseJson(queued->body);
  const std::string queued_at = answer ? Text(At(*answer, {"queuedAt"})) : "";
  const std::optional<std::int64_t> since = ParseRfc3339(queued_at);
  if (!since) return Fail("the server's answer to reconcile has no queuedAt time to wait from");

  // The run that answers the request is the first whose start is at or after queuedAt
  // (status.lastRuns, newest first). Times are whole seconds: a run that started in the same
  // second just before the request counts as well.
  const auto deadline = world_.steady_now() + command_.timeout;
  std::string last_problem;
  while (true) {
    Outcome<Response> response = Call("GET", WorkspacePath(*name), subject);
    if (!response && response.failure().reason == "HTTP 404") {
      return Fail(response.failure().message);  // deleted meanwhile: no run will come
    }
    if (!response) {
      last_problem = response.failure().message;
    } else if (const std::optional<json::value> object = detail::ParseJson(response->body)) {
      const json::value* run = At(*object, {"status", "lastRuns"});
      const json::value* newest =
          run != nullptr && run->is_array() && !run->get_array().empty()
              ? &run->get_array().front()
              : nullptr;
      const std::optional<std::int64_t> start =
          newest != nullptr ? detail::ParseTimeValue(At(*newest, {"start"})) : std::nullopt;
      if (start && *start >= *since) {
        const std::string result = Text(At(*newest, {"result"}));
        const std::string reason = Text(At(*newest, {"reason"}));
        const std::string phase = Text(At(*object, {"status", "phase"}));
        if (Succeeded(result)) {
          out() << "workspace/" << *name << " reconciled: " << phase
                << (reason.empty() ? "" : " (" + reason + ")") << '\n';
          return 0;
        }
        std::string message;
        if (const json::value* conditions = At(*object, {"status", "conditions"})) {
          if (const json::array* list = conditions->if_array()) {
            for (const json::value& c : *list) {
              if (Text(At(c, {"type"})) == "Ready") message = Text(At(c, {"message"}));
            }
          }
        }
        if (message.empty()) message = Text(At(*object, {"status", "lastError"}));
        return Fail("workspace " + Quoted(*name) + ": the run " + Lower(result) + ": " + reason +
                    (message.empty() ? "" : ": " + OneLine(message)));
      }
      last_problem = "phase " + Text(At(*object, {"status", "phase"}), "Pending");
    }
    if (world_.steady_now() + world_.poll_interval > deadline) {
      const auto seconds = command_.timeout.count();
      return Fail("workspace " + Quoted(*name) + ": no run finished within " +
                  std::to_string(seconds) + "s of the reconcile queued at " + queued_at +
                  (last_problem.empty() ? "" : " (last seen: " + last_problem + ")"));
    }
    Pause(world_.poll_interval);
  }
}

int Session::Token() {
  const std::string sub = command_.positionals.empty() ? "" : command_.positionals[0];
  if (sub == "create") {
    if (command_.positionals.size() != 1) return Usage("token create takes no name");
    if (!command_.role) return Usage("token create: --role admin|viewer is required");
    if (std::optional<int> code = Connect()) return *code;
    json::object request{{"role", *command_.role}};
    if (command_.ttl) request["ttl"] = *command_.ttl;
    if (command_.description) request["description"] = *command_.description;
    Outcome<Response> response = Call("POST", "/api/v1/tokens", {}, {200, 201},
                                      json::serialize(request), "application/json");
    if (!response) return Fail(response.failure().message);
    const std::optional<json::value> answer = detail::ParseJson(response->body);
    const std::string token = answer ? Text(At(*answer, {"token"})) : "";
    if (token.empty()) return Fail("the server's answer holds no token");
    // The one time the new token is shown: alone on stdout, for a script to keep.
    out() << token << '\n';
    err() << "token/" << Text(At(*answer, {"id"})) << " created (role "
          << Text(At(*answer, {"role"}), *command_.role) << ", expires "
          << Text(At(*answer, {"expiresAt"}), "never")
          << "): it is shown only this once\n";
    return 0;
  }
  if (sub == "list") {
    if (command_.positionals.size() != 1) return Usage("token list takes no name");
    if (std::optional<int> code = Connect()) return *code;
    Outcome<std::string> items = ListAll("/api/v1/tokens", {});
    if (!items) return Fail(items.failure().message);
    return Print(FormatItems(Resource::kToken, *items, command_.output, world_.now_unix()));
  }
  if (sub == "revoke") {
    if (command_.positionals.size() != 2) return Usage("token revoke: expected `token revoke ID`");
    const std::string& id = command_.positionals[1];
    if (std::optional<int> code = Connect()) return *code;
    Outcome<Response> response =
        Call("DELETE", "/api/v1/tokens/" + PercentEncode(id), {"token", id}, {200, 202, 204});
    if (!response) return Fail(response.failure().message);
    out() << "token/" << id << " revoked\n";
    return 0;
  }
  return Usage("token: expected create, list or revoke");
}

// `tenantctl VERSION` first, as before the API (scripts and tests read that line), then the
// server's. An unreachable server or one without the route is said on stderr, and the exit stays
// 0: the client's version was printed, which is what `version` is asked first.
int Session::Version() {
  out() << "tenantctl " << world_.version << '\n';
  if (command_.client_only) return 0;
  if (std::optional<int> code = Connect()) return *code;
  Outcome<Response> response = Call("GET", "/api/v1/version", {});
  if (!response) {
    Fail("server version unknown: " + response.failure().message);
    return 0;
  }
  const std::optional<json::value> answer = detail::ParseJson(response->body);
  out() << "server " << (answer ? Text(At(*answer, {"version"}), "unknown") : "unknown") << " ("
        << client_->server() << ")\n";
  return 0;
}

// How often the backup verbs' --wait asks (docs/api.md#tenantctl).
constexpr std::chrono::milliseconds kBackupPoll{500};

std::string Seconds(const json::value* value) {
  if (value == nullptr || !value->is_number()) return "?";
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", value->to_number<double>());
  return text;
}

std::string TimeoutText(std::chrono::seconds timeout) {
  const auto s = timeout.count();
  if (s % 3600 == 0) return std::to_string(s / 3600) + "h";
  if (s % 60 == 0) return std::to_string(s / 60) + "m";
  return std::to_string(s) + "s";
}

Outcome<std::string> Session::QueueBackup(const std::string& name) {
  Outcome<Response> response = client_->Send("POST", WorkspacePath(name) + "/backups", "{}",
                                             "application/json");
  if (!response) return response.failure();
  if (response->status != 202 && response->status != 200) {
    return Failure::Stalled("HTTP " + std::to_string(response->status),
                            BackupErrorLine(*response, "backup of workspace " + Quoted(name)));
  }
  const std::optional<json::value> answer = detail::ParseJson(response->body);
  const std::string id = answer ? Text(At(*answer, {"backup"})) : "";
  if (id.empty()) {
    return Failure::Stalled("BadAnswer", "the server's answer to the backup of " + Quoted(name) +
                                             " names no backup");
  }
  return id;
}

int Session::WaitForBackup(const std::string& name, const std::string& id,
                           std::chrono::steady_clock::time_point deadline,
                           std::chrono::seconds timeout) {
  std::string last_problem;
  while (true) {
    Outcome<Response> response = Call("GET", WorkspacePath(name) + "/backups", {"workspace", name});
    if (!response && response.failure().reason == "HTTP 404") {
      return Fail(response.failure().message);
    }
    if (!response) {
      last_problem = response.failure().message;
    } else {
      const std::optional<json::value> answer = detail::ParseJson(response->body);
      const json::array* items = answer ? detail::ArrayAt(*answer, "items") : nullptr;
      last_problem = "queued";
      for (const json::value& item : items != nullptr ? *items : json::array()) {
        if (Text(At(item, {"id"})) != id) continue;
        const std::string state = Text(At(item, {"state"}));
        const json::value* size = At(item, {"sizeBytes"});
        const std::string size_text =
            size != nullptr && size->is_number() ? FormatBytes(size->to_number<std::int64_t>())
                                                 : "?";
        const std::string done = size_text + " in " + Seconds(At(item, {"durationSeconds"})) + " s";
        if (state == "ok" || state == "verified") {
          out() << "backup " << id << ": " << state << ", " << done << '\n';
          return 0;
        }
        if (state == "verifyFailed") {
          return Fail("backup " + id + ": taken (" + done + ") but its verification failed: " +
                      OneLine(Text(At(item, {"reason"}))));
        }
        return Fail("backup " + id + ": " + state + ": " + OneLine(Text(At(item, {"reason"}))));
      }
      if (const json::array* pending = detail::ArrayAt(*answer, "pending")) {
        for (const json::value& q : *pending) {
          if (Text(At(q, {"id"})) == id) last_problem = Text(At(q, {"state"}), "queued");
        }
      }
    }
    if (world_.steady_now() + kBackupPoll > deadline) {
      return Fail("backup " + id + " of workspace " + Quoted(name) + ": not in the catalog within " +
                  TimeoutText(timeout) + " (--timeout; last seen: " + last_problem +
                  "); it goes on in the operator");
    }
    Pause(kBackupPoll);
  }
}

int Session::Backup() {
  if (command_.all) return BackupAll();
  if (command_.positionals.size() != 1) {
    return Usage("backup: expected `backup NAME` or `backup --all [-l key=value]`");
  }
  if (command_.selector) return Usage("backup: -l selects workspaces for --all only");
  const std::string& name = command_.positionals[0];
  if (std::optional<int> failed = Connect()) return *failed;
  Outcome<std::string> id = QueueBackup(name);
  if (!id) return Fail(id.failure().message);
  out() << "backup " << name << "/" << *id << " queued\n";
  if (!command_.wait) return 0;
  const std::chrono::seconds timeout =
      command_.timeout_given ? command_.timeout : std::chrono::seconds(600);
  return WaitForBackup(name, *id, world_.steady_now() + timeout, timeout);
}

int Session::BackupAll() {
  if (!command_.positionals.empty()) return Usage("backup --all takes no name");
  if (std::optional<int> failed = Connect()) return *failed;
  std::vector<std::string> query;
  if (command_.selector) query.push_back("labelSelector=" + PercentEncode(*command_.selector));
  Outcome<std::string> items = ListAll("/api/v1/workspaces", query);
  if (!items) return Fail(items.failure().message);
  const std::optional<json::value> list = detail::ParseJson(*items);
  std::vector<std::pair<std::string, std::string>> queued;
  bool failed = false;
  std::size_t count = 0;
  for (const json::value& item : list && list->is_array() ? list->get_array() : json::array()) {
    const std::string name = Text(At(item, {"metadata", "name"}));
    if (name.empty()) continue;
    ++count;
    Outcome<std::string> id = QueueBackup(name);
    if (!id) {
      Fail("workspace " + Quoted(name) + ": " + id.failure().message);
      failed = true;
      continue;
    }
    out() << "backup " << name << "/" << *id << " queued\n";
    queued.emplace_back(name, *id);
  }
  if (count == 0) err() << "No workspaces found.\n";
  if (command_.wait) {
    const std::chrono::seconds timeout =
        command_.timeout_given ? command_.timeout : std::chrono::seconds(600);
    const auto deadline = world_.steady_now() + timeout;
    for (const auto& [name, id] : queued) {
      if (WaitForBackup(name, id, deadline, timeout) != 0) failed = true;
    }
  }
  return failed ? 1 : 0;
}

int Session::Backups() {
  if (command_.positionals.size() != 1) return Usage("backups: expected `backups NAME`");
  if (command_.output != "table" && command_.output != "json" && command_.output != "yaml") {
    return Usage("backups: -o must be table, json or yaml");
  }
  const std::string& name = command_.positionals[0];
  if (std::optional<int> failed = Connect()) return *failed;
  Outcome<Response> response = Call("GET", WorkspacePath(name) + "/backups", {"workspace", name});
  if (!response) return Fail(response.failure().message);
  if (command_.output == "table") {
    const std::optional<json::value> answer = detail::ParseJson(response->body);
    const json::array* items = answer ? detail::ArrayAt(*answer, "items") : nullptr;
    const json::array* pending = answer ? detail::ArrayAt(*answer, "pending") : nullptr;
    if (items != nullptr && items->empty() && (pending == nullptr || pending->empty())) {
      err() << "No backups found.\n";
      return 0;
    }
  }
  return Print(FormatBackups(response->body, command_.output, world_.now_unix()));
}

int Session::Restore() {
  if (command_.positionals.size() != 1) {
    return Usage("restore: expected `restore NAME --backup ID [--into OTHER]`");
  }
  if (!command_.backup) return Usage("restore: --backup ID is required");
  const std::string& name = command_.positionals[0];
  if (std::optional<int> failed = Connect()) return *failed;
  json::object request{{"backup", *command_.backup}};
  if (command_.into) request["into"] = *command_.into;
  Outcome<Response> started = client_->Send("POST", WorkspacePath(name) + "/restore",
                                            json::serialize(request), "application/json");
  if (!started) return Fail(started.failure().message);
  if (started->status != 202 && started->status != 200) {
    return Fail(BackupErrorLine(*started, "restore of backup " + Quoted(*command_.backup)));
  }
  const std::optional<json::value> answer = detail::ParseJson(started->body);
  const std::string id = answer ? Text(At(*answer, {"restore"})) : "";
  if (id.empty()) return Fail("the server's answer to the restore names no restore");
  const std::string target = Text(At(*answer, {"workspace"}), command_.into.value_or(name));
  out() << "restore " << id << " of backup " << *command_.backup << " into " << target
        << " started\n";
  if (!command_.wait) return 0;

  const std::chrono::seconds timeout =
      command_.timeout_given ? command_.timeout : std::chrono::seconds(1800);
  const auto deadline = world_.steady_now() + timeout;
  std::string shown;
  json::value progress = *answer;
  std::string last_problem;
  while (true) {
    const std::string step = Text(At(progress, {"step"}));
    const std::string message = OneLine(Text(At(progress, {"message"})));
    const std::string line = step + (message.empty() ? "" : ": " + message);
    if (!step.empty() && line != shown) {
      out() << "restore " << id << ": " << line << '\n';
      shown = line;
    }
    const std::string state = Text(At(progress, {"state"}));
    if (state == "succeeded") {
      out() << "restore " << id << " succeeded"
            << (Text(At(progress, {"safetyBackup"})).empty()
                    ? ""
                    : " (safety backup " + Text(At(progress, {"safetyBackup"})) + ")")
            << '\n';
      return 0;
    }
    if (state == "failed") {
      return Fail("restore " + id + " failed" + (message.empty() ? "" : ": " + message));
    }
    if (world_.steady_now() + kBackupPoll > deadline) {
      return Fail("restore " + id + ": not finished within " + TimeoutText(timeout) +
                  " (--timeout; last step: " + (step.empty() ? "unknown" : step) +
                  (last_problem.empty() ? "" : "; " + last_problem) +
                  "); it goes on in the operator");
    }
    Pause(kBackupPoll);
    Outcome<Response> polled = client_->Send("GET", "/api/v1/restores/" + PercentEncode(id));
    if (!polled) {
      last_problem = polled.failure().message;
      continue;
    }
    if (polled->status == 404) {
      return Fail("the operator no longer knows restore " + id +
                  " (it restarted?); see `tenantctl describe workspace " + target + "`");
    }
    if (polled->status != 200) {
      last_problem = ErrorLine(*polled, {});
      continue;
    }
    const std::optional<json::value> next = detail::ParseJson(polled->body);
    if (!next || !next->is_object()) {
      last_problem = "the server's answer is not a restore";
      continue;
    }
    last_problem.clear();
    progress = *next;
  }
}

// `rollout status PRODUCT` reads the product's rollout; `rollout VERB PRODUCT` steers it
// (POST .../rollout/VERB, an admin's) and prints the status the verb left.
int Session::Rollout() {
  Outcome<RolloutArguments> args = ParseRolloutArguments(command_);
  if (!args) return Usage(args.failure().message);
  const std::string& product = args->product;
  const std::string& action = args->action;
  if (std::optional<int> failed = Connect()) return *failed;
  const std::string path = "/api/v1/products/" + PercentEncode(product) + "/rollout";
  if (action == "status") {
    Outcome<Response> response = Call("GET", path, {"product", product});
    if (!response) return Fail(response.failure().message);
    return Print(FormatRolloutStatus(response->body, command_.output));
  }
  Outcome<Response> response = client_->Send("POST", path + "/" + action);
  if (!response) return Fail(response.failure().message);
  if (response->status != 200) {
    // 400, 404 and 409 carry the driver's own words (what the phase allows, a product that
    // never had a rollout); 401, 403, 429 and 5xx as every verb says them.
    const int status = response->status;
    if (status != 400 && status != 404 && status != 409) return Fail(ErrorLine(*response, {}));
    const std::string message = ServerMessage(*response);
    return Fail("rollout " + action + " of product " + Quoted(product) + " refused (" +
                std::to_string(status) + ")" + (message.empty() ? "" : ": " + message));
  }
  // Said first: the verb took effect even if the status that follows cannot be read.
  if (command_.output == "table") {
    static constexpr std::pair<std::string_view, std::string_view> kDone[] = {
        {"pause", "paused"}, {"resume", "resumed"}, {"promote", "promoted"},
        {"abort", "aborted"}, {"undo", "undone"}};
    std::string_view done = action;
    for (const auto& [verb, said] : kDone) {
      if (verb == action) done = said;
    }
    out() << "product/" << product << ": rollout " << done << "\n\n";
  }
  return Print(FormatRolloutStatus(response->body, command_.output));
}

// `move --wait`'s exit when the move did not finish in time: apart from 1 (it failed, rolled
// back), because the move goes on in the operator (docs/api.md#tenantctl).
constexpr int kMoveTimedOut = 3;

Outcome<std::string> Session::FetchMove(const std::string& name) {
  Outcome<Response> response = client_->Send("GET", WorkspacePath(name) + "/move");
  if (!response) return response.failure();
  if (response->status == 404) {
    const std::string message = ServerMessage(*response);
    return Failure::Stalled("HTTP 404", message.empty()
                                            ? "no move of workspace " + Quoted(name) + " found"
                                            : message);
  }
  if (response->status != 200) {
    return Failure::Stalled("HTTP " + std::to_string(response->status),
                            ErrorLine(*response, {}));
  }
  return response->body;
}

int Session::DescribeMoveOf(const std::string& name) {
  if (std::optional<int> failed = Connect()) return *failed;
  Outcome<std::string> move = FetchMove(name);
  if (!move) return Fail(move.failure().message);
  Outcome<std::string> text = DescribeMove(*move, world_.now_unix());
  if (!text) return Fail(text.failure().message);
  out() << WithoutToken(*text, connection_.token);
  return 0;
}

// `move NAME --to CLUSTER` asks for the move and prints it (with --wait, follows it to its end);
// `move --prune NAME` drops the source a succeeded move kept (docs/api.md#moves).
int Session::Move() {
  Outcome<MoveArguments> args = ParseMoveArguments(command_);
  if (!args) return Usage(args.failure().message);
  const std::string& name = args->workspace;
  if (std::optional<int> failed = Connect()) return *failed;
  const json::object request =
      args->prune ? json::object{{"prune", true}} : json::object{{"to", args->to}};
  Outcome<Response> response = client_->Send("POST", WorkspacePath(name) + "/move",
                                             json::serialize(request), "application/json");
  if (!response) return Fail(response.failure().message);
  const int ok = args->prune ? 200 : 202;
  if (response->status != ok) {
    return Fail(BackupErrorLine(*response, args->prune
                                               ? "move --prune of workspace " + Quoted(name)
                                               : "move of workspace " + Quoted(name) + " to " +
                                                     Quoted(args->to)));
  }
  const std::optional<json::value> move = detail::ParseJson(response->body);
  const std::string id = move && move->is_object() ? Text(At(*move, {"id"})) : "";
  if (id.empty()) return Fail("the server's answer to the move of " + Quoted(name) +
                              " is not a move");
  if (command_.output == "json") return Print(detail::PrettyJson(*move));
  if (command_.output == "yaml") return Print(detail::ToYaml(*move));
  if (args->prune) {
    const std::string message = OneLine(Text(At(*move, {"message"})));
    out() << "move " << id << " of workspace " << name << " pruned"
          << (message.empty() ? "" : ": " + message) << '\n';
    return 0;
  }
  out() << "move " << id << " of workspace " << name << " from "
        << Text(At(*move, {"from"}), "?") << " to " << Text(At(*move, {"to"}), args->to)
        << " requested (" << Text(At(*move, {"state"}), "pending") << ")\n";
  if (!command_.wait) return 0;
  return WaitForMove(name, *move);
}

int Session::WaitForMove(const std::string& workspace, json::value move) {
  const std::string id = Text(At(move, {"id"}));
  const std::chrono::seconds timeout =
      command_.timeout_given ? command_.timeout : std::chrono::seconds(1800);
  const auto deadline = world_.steady_now() + timeout;
  std::string shown;
  std::string last_problem;
  while (true) {
    const std::string step = Text(At(move, {"step"}));
    const std::string message = OneLine(Text(At(move, {"message"})));
    const std::string line = step + (message.empty() ? "" : ": " + message);
    if (!step.empty() && line != shown) {
      out() << "move " << id << ": " << line << '\n';
      shown = line;
    }
    const std::string state = Text(At(move, {"state"}));
    const std::string from = Text(At(move, {"from"}), "?");
    const std::string to = Text(At(move, {"to"}), "?");
    if (state == "succeeded" || state == "pruned") {
      const std::string downtime = FormatDowntime([&]() -> std::optional<std::int64_t> {
        const json::value* ms = At(move, {"downtimeMs"});
        if (ms == nullptr || !ms->is_number()) return std::nullopt;
        return static_cast<std::int64_t>(ms->to_number<double>());
      }());
      out() << "move " << id << " succeeded: " << workspace << " is on " << to << " (downtime "
            << downtime << "); "
            << (state == "pruned" ? "the source on " + from + " is pruned already"
                                  : "the source on " + from + " is kept until `tenantctl move " +
                                        "--prune " + workspace + "`")
            << '\n';
      return 0;
    }
    if (state == "failed") {
      const std::string reason = Text(At(move, {"reason"}));
      return Fail("move " + id + " failed" + (reason.empty() ? "" : " (" + reason + ")") +
                  (message.empty() ? "" : ": " + message) + "; " + workspace + " stays on " +
                  from);
    }
    if (world_.steady_now() + kBackupPoll > deadline) {
      return Fail("move " + id + " of workspace " + Quoted(workspace) + ": not finished within " +
                      TimeoutText(timeout) + " (--timeout; last step: " +
                      (step.empty() ? "unknown" : step) +
                      (last_problem.empty() ? "" : "; " + last_problem) +
                      "); it goes on in the operator: `tenantctl describe move " + workspace +
                      "`",
                  kMoveTimedOut);
    }
    Pause(kBackupPoll);
    Outcome<std::string> polled = FetchMove(workspace);
    if (!polled && polled.failure().reason == "HTTP 404") {
      return Fail("move " + id + ": " + polled.failure().message + " any more");
    }
    if (!polled) {
      last_problem = polled.failure().message;
      continue;
    }
    const std::optional<json::value> next = detail::ParseJson(*polled);
    if (!next || !next->is_object()) {
      last_problem = "the server's answer is not a move";
      continue;
    }
    if (const std::string now_id = Text(At(*next, {"id"})); now_id != id) {
      return Fail("move " + id + " is no longer the newest move of workspace " +
                  Quoted(workspace) + " (now " + now_id + "): `tenantctl describe move " +
                  workspace + "`");
    }
    last_problem.clear();
    move = *next;
  }
}

// As tenant-operator prints them (controller/cmd/report.cpp; cli stays above cmd, so not shared).
void PrintDiagnostics(std::ostream& out, const std::vector<manifests::Diagnostic>& diagnostics) {
  for (const manifests::Diagnostic& d : diagnostics) {
    if (d.severity == manifests::Diagnostic::Severity::kNotice) out << "notice: ";
    out << d.Format() << '\n';
  }
}

int Validate(const Command& command, World& world) {
  if (command.files.size() != 1 || !command.positionals.empty()) {
    *world.err << "tenantctl: validate: expected -f PATH|- once\n\n" << kUsage;
    return 2;
  }
  const std::string& path = command.files.front();
  manifests::LoadOptions options;
  if (command.config_file) {
    manifests::ConfigResult config = manifests::LoadConfig(*command.config_file);
    if (!config.errors.empty()) {
      PrintDiagnostics(*world.err, config.errors);
      return 1;
    }
    options.reserved_subdomains = config.config.reserved_subdomains;
    options.known_clusters.emplace();
    for (const auto& c : config.config.clusters) options.known_clusters->insert(c.name);
  }
  manifests::Fleet fleet;
  if (path == "-") {
    const std::string text = world.read_stdin ? world.read_stdin() : std::string();
    fleet = manifests::LoadText(text, "<stdin>", std::filesystem::current_path(), options);
  } else {
    fleet = manifests::LoadPaths({path}, options);
  }
  PrintDiagnostics(fleet.HasErrors() ? *world.err : *world.out, fleet.diagnostics);
  if (fleet.HasErrors()) {
    *world.err << "invalid: " << fleet.rejected.size() << " workspace(s) rejected\n";
    return 1;
  }
  *world.out << "valid: " << fleet.products.size() << " product(s), " << fleet.workspaces.size()
             << " workspace(s)\n";
  return 0;
}

}  // namespace

World ProcessWorld(std::string version) {
  World world;
  world.out = &std::cout;
  world.err = &std::cerr;
  for (const char* name : {"TENANTCTL_SERVER", "TENANTCTL_TOKEN", "XDG_CONFIG_HOME", "HOME"}) {
    if (const char* value = std::getenv(name)) world.env[name] = value;
  }
  world.read_stdin = [] {
    return std::string((std::istreambuf_iterator<char>(std::cin)),
                       std::istreambuf_iterator<char>());
  };
  world.now_unix = [] {
    return std::chrono::duration_cast<std::chrono::seconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  world.steady_now = [] { return std::chrono::steady_clock::now(); };
  world.sleep = [](std::chrono::milliseconds pause) { std::this_thread::sleep_for(pause); };
  world.version = std::move(version);
  return world;
}

int RunTenantctl(const std::vector<std::string>& args, World& world) {
  Outcome<Command> parsed = ParseCommand(args);
  if (!parsed) {
    *world.err << "tenantctl: " << parsed.failure().message << "\n\n" << kUsage;
    return 2;
  }
  const Command& command = *parsed;
  if (command.help || command.verb == "help") {
    *world.out << kUsage;
    return 0;
  }
  if (command.verb.empty()) {
    *world.err << "tenantctl: a command is required\n\n" << kUsage;
    return 2;
  }
  Session session(command, world);
  const std::string& verb = command.verb;
  if (verb == "validate") return Validate(command, world);
  if (verb == "completion") {
    const std::string shell = command.positionals.empty() ? "" : command.positionals[0];
    const std::string script = CompletionScript(shell);
    if (script.empty() || command.positionals.size() != 1) {
      return session.Usage("completion: expected bash or zsh");
    }
    *world.out << script;
    return 0;
  }
  if (verb == "get") return session.Get();
  if (verb == "describe") return session.Describe();
  if (verb == "apply") return session.Apply();
  if (verb == "diff") return session.Diff();
  if (verb == "delete") return session.Delete();
  if (verb == "reconcile") return session.Reconcile();
  if (verb == "suspend" || verb == "resume") return session.SuspendOrResume();
  if (verb == "token") return session.Token();
  if (verb == "version") return session.Version();
  if (verb == "backup") return session.Backup();
  if (verb == "backups") return session.Backups();
  if (verb == "restore") return session.Restore();
  if (verb == "rollout") return session.Rollout();
  if (verb == "move") return session.Move();
  return session.Usage("unknown command \"" + verb + "\"");
}

}  // namespace tmaster::cli
