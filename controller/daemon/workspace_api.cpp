#include "controller/daemon/workspace_api.hpp"

#include <spdlog/spdlog.h>

#include <boost/json.hpp>
#include <algorithm>
#include <chrono>
#include <iterator>

#include "common/crypto.hpp"
#include "common/text.hpp"
#include "common/time.hpp"
#include "controller/sources/source.hpp"
#include "controller/store/spec_json.hpp"
#include "manifests/config.hpp"
#include "manifests/loader.hpp"
#include "reconcilers/stacks/render.hpp"

namespace tmaster::controller {
namespace json = boost::json;
namespace {

/// docs/api.md: JSON, or YAML under any of its three names; parameters (`; charset=utf-8`) are
/// ignored. An absent type is read as YAML (YAML reads JSON too).
bool AcceptedType(std::string_view content_type) {
  std::string type(content_type.substr(0, content_type.find(';')));
  while (!type.empty() && type.back() == ' ') type.pop_back();
  for (char& c : type) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return type.empty() || type == "application/json" || type == "application/yaml" ||
         type == "application/x-yaml" || type == "text/yaml";
}

std::string Quote(std::string_view text) {
  return json::serialize(json::string(text));
}

/// A Product document standing for a product a source declared: what the loader needs to resolve
/// a workspace's `spec.product` exactly as it does for a file of that source (modes, the default
/// version; the stack template and migrations as paths beneath `/`, where they are checked to
/// exist as the loader always does).
std::string ProductStub(const manifests::Product& product) {
  std::string out = "---\napiVersion: tenantmaster.io/v1alpha1\nkind: Product\nmetadata: {name: " +
                    Quote(product.name) + "}\nspec:\n  image: " + Quote(product.image) +
                    "\n  defaultVersion: " + Quote(product.default_version) +
                    "\n  port: " + std::to_string(product.port) + "\n  modes: [";
  for (std::size_t i = 0; i < product.modes.size(); ++i) {
    out += (i > 0 ? ", " : "") + std::string(manifests::ToString(product.modes[i]));
  }
  out += "]\n";
  if (!product.stack_template.empty()) {
    out += "  stackTemplate: " + Quote(product.stack_template.relative_path().string()) + "\n";
  }
  if (!product.migrations.empty()) {
    out += "  migrations: " + Quote(product.migrations.relative_path().string()) + "\n";
  }
  return out;
}

/// `spec.rollout` in the manifest's shape with its defaults applied (every field present; durations
/// in the shortest form the manifest reads back: `10m`, `1h30m`, `0s`); null without one.
json::value RolloutJson(const std::optional<manifests::RolloutSpec>& rollout) {
  if (!rollout) return nullptr;
  json::array waves;
  for (const manifests::RolloutWave& wave : rollout->waves) {
    json::object item;
    if (wave.percent) {
      item["percent"] = *wave.percent;
    } else {
      json::object labels;
      for (const auto& [key, value] : wave.match_labels) labels[key] = value;
      item["selector"] = json::object{{"matchLabels", std::move(labels)}};
    }
    waves.push_back(std::move(item));
  }
  json::value health = nullptr;
  if (rollout->health_check) {
    health = json::object{{"path", rollout->health_check->path},
                          {"timeout", manifests::FormatDuration(rollout->health_check->timeout)}};
  }
  const std::string pause = manifests::FormatDuration(rollout->pause_between_waves);
  return json::object{{"waves", std::move(waves)},
                      {"pauseBetweenWaves", pause},
                      {"maxUnavailable", rollout->max_unavailable},
                      {"failureBudget", rollout->failure_budget},
                      {"readyTimeout", manifests::FormatDuration(rollout->ready_timeout)},
                      {"healthCheck", std::move(health)}};
}

std::size_t CountLines(std::string_view text) {
  std::size_t lines = 0;
  for (const char c : text) lines += c == '\n' ? 1 : 0;
  if (!text.empty() && text.back() != '\n') ++lines;
  return lines;
}

json::object FindingJson(const manifests::Diagnostic& d) {
  return {{"file", d.where.file},
          {"line", d.where.line},
          {"column", d.where.column},
          {"field", d.field},
          {"message", d.message},
          {"severity", d.severity == manifests::Diagnostic::Severity::kError ? "error" : "notice"}};
}

std::string SourceKind(const manifests::Config* config, const std::string& source) {
  if (config != nullptr) {
    for (const manifests::SourceConfig& s : config->sources) {
      if (s.name == source) return s.git ? "git" : "directory";
    }
  }
  return "unknown";
}

std::string Applied(const std::string& outcome) {
  return outcome;
}

}  // namespace

const char* ApiErrorCode(int status) { return ErrorCode(status); }

ApiAnswer ApiError(int status, std::string message, std::string details_json) {
  ApiAnswer answer;
  answer.status = status;
  answer.error = ApiErrorCode(status);
  answer.message = std::move(message);
  answer.body = ErrorJson(answer.error, answer.message, details_json);
  return answer;
}

ValidatedBody ValidateBody(std::string_view body,
                           const std::map<std::string, ProductRegistry::Found>& products,
                           const manifests::LoadOptions& options) {
  ValidatedBody out;
  out.body_lines = CountLines(body);
  std::string text(body);
  if (!text.empty() && text.back() != '\n') text.push_back('\n');
  for (const auto& [name, found] : products) text += ProductStub(found.entry->product);
  manifests::LoadOptions load = options;
  load.root = "/";
  load.parse_cache = nullptr;
  manifests::Fleet fleet = manifests::LoadText(text, "request", "/", load);
  const auto in_body = [&](const manifests::Location& at) {
    return at.line >= 1 && static_cast<std::size_t>(at.line) <= out.body_lines;
  };
  std::vector<manifests::Diagnostic> kept;
  for (manifests::Diagnostic& d : fleet.diagnostics) {
    if (in_body(d.where)) {
      kept.push_back(std::move(d));
    } else if (d.severity == manifests::Diagnostic::Severity::kError) {
      // A source's product that no longer loads (its template was removed since the sync): the
      // workspaces naming it say "invalid"; the stub's own finding means nothing to the client.
      spdlog::warn("api: a source's product did not load for a request: {}", d.Format());
    }
  }
  std::vector<manifests::Product> resolved;
  for (const manifests::Product& product : fleet.products) {
    if (in_body(product.where)) {
      kept.push_back({manifests::Diagnostic::Severity::kError, product.where, "kind",
                      "Product documents are not accepted here: products come from the "
                      "configured sources"});
      continue;
    }
    if (auto it = products.find(product.name); it != products.end()) {
      resolved.push_back(it->second.entry->product);
    }
  }
  std::stable_sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) {
    return a.where.line != b.where.line ? a.where.line < b.where.line
                                        : a.where.column < b.where.column;
  });
  json::array findings;
  for (const manifests::Diagnostic& d : kept) {
    if (d.severity == manifests::Diagnostic::Severity::kError) out.has_errors = true;
    findings.push_back(FindingJson(d));
  }
  fleet.products = std::move(resolved);
  fleet.diagnostics = std::move(kept);
  out.findings_json = json::serialize(findings);
  out.fleet = std::move(fleet);
  return out;
}

WorkspaceApi::WorkspaceApi(WorkspaceApiDeps deps) : deps_(std::move(deps)) {}

std::int64_t WorkspaceApi::Now() const {
  if (deps_.now_unix) return deps_.now_unix();
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::optional<ApiAnswer> WorkspaceApi::Refuse(const StoredWorkspace& stored, bool force) const {
  if (stored.source == kApiSource || force) return std::nullopt;
  const std::string kind = SourceKind(deps_.config, stored.source);
  json::object details{{"source", stored.source}, {"kind", kind}};
  return ApiError(409,
                  "workspace " + Quoted(stored.name) + " is owned by " + kind + " source " +
                      Quoted(stored.source) +
                      " (the repository is the truth); ?force=true moves it to the API",
                  json::serialize(details));
}

ApiAnswer WorkspaceApi::Object(int status, const std::string& name) const {
  ApiAnswer answer;
  answer.status = status;
  std::optional<std::string> object = deps_.fleet->Get(name);
  if (!object) {
    // Not in the view (a standby that has not refreshed): read the store.
    Outcome<std::optional<StoredWorkspace>> stored = deps_.store->Get(name);
    Outcome<std::optional<WorkspaceStatus>> status_row = deps_.store->GetStatus(name);
    if (!stored || !status_row) {
      return ApiError(503, "store unavailable: " +
                               (!stored ? stored.failure().message : status_row.failure().message));
    }
    if (!*stored) return ApiError(404, "workspace " + Quoted(name) + " not found");
    object = WorkspaceJson(**stored, *status_row ? &**status_row : nullptr);
  }
  answer.body = std::move(*object);
  return answer;
}

void WorkspaceApi::Declare(const StoredWorkspace& stored, const manifests::Workspace& workspace,
                           const std::shared_ptr<const ProductEntry>& product) {
  auto entry = std::make_shared<DesiredEntry>();
  entry->workspace = workspace;
  entry->product = product;
  entry->source = kApiSource;
  entry->revision = stored.revision;
  entry->spec_digest = stored.spec_digest;
  entry->generation = stored.generation;
  deps_.desired->SetApiOwned(stored.name);
  deps_.desired->Declare(stored.name, std::move(entry));
}

std::optional<manifests::Workspace> WorkspaceApi::ReadStored(
    const StoredWorkspace& stored, std::shared_ptr<const ProductEntry>& product) {
  const std::map<std::string, ProductRegistry::Found> products = deps_.products->All();
  ValidatedBody read = ValidateBody(stored.spec_json, products, MakeLoadOptions(*deps_.config));
  if (read.has_errors || read.fleet.workspaces.size() != 1) return std::nullopt;
  manifests::Workspace& workspace = read.fleet.workspaces.front();
  auto found = products.find(workspace.product);
  if (found == products.end()) return std::nullopt;
  product = found->second.entry;
  return std::move(workspace);
}

ApiAnswer WorkspaceApi::Apply(const std::string& name, std::string_view body,
                              std::string_view content_type, bool force, const std::string& who) {
  if (!AcceptedType(content_type)) {
    return ApiError(415, "content type " + Quoted(std::string(content_type)) +
                             " is neither JSON nor YAML (application/json, application/yaml)");
  }
  const std::map<std::string, ProductRegistry::Found> products = deps_.products->All();
  ValidatedBody read = ValidateBody(body, products, MakeLoadOptions(*deps_.config));
  if (read.has_errors) {
    std::string first;
    for (const manifests::Diagnostic& d : read.fleet.diagnostics) {
      if (d.severity == manifests::Diagnostic::Severity::kError) {
        first = d.Format();
        break;
      }
    }
    return ApiError(422, "the workspace does not validate: " + first, read.findings_json);
  }
  const std::size_t documents = read.fleet.workspaces.size() + read.fleet.rejected.size();
  if (read.fleet.workspaces.size() != 1 || documents != 1) {
    return ApiError(400, "the body must be one Workspace document; it holds " +
                             std::to_string(documents) + " Workspace document(s)");
  }
  const manifests::Workspace& workspace = read.fleet.workspaces.front();
  if (workspace.name != name) {
    return ApiError(400, "request:" + std::to_string(workspace.where.line) + ": metadata.name " +
                             Quoted(workspace.name) + " does not match the workspace of the URL, " +
                             Quoted(name));
  }
  if (!deps_.leading()) return ApiError(503, "this replica is a standby: writes go to the leader");
  auto product = products.find(workspace.product);
  if (product == products.end()) return ApiError(503, "the product's source changed; retry");

  const std::lock_guard lock(write_mutex_);
  Outcome<std::optional<StoredWorkspace>> existing = deps_.store->Get(name);
  if (!existing) return ApiError(503, "store unavailable: " + existing.failure().message);
  if (*existing) {
    if (std::optional<ApiAnswer> refused = Refuse(**existing, force)) return *refused;
  }
  const bool was_deleting = *existing && (*existing)->deleting_since.has_value();
  if (was_deleting) {
    Outcome<StoredWorkspace> cancelled = deps_.store->CancelDeleting(name);
    if (!cancelled) return ApiError(503, "store unavailable: " + cancelled.failure().message);
    if (deps_.observer != nullptr) deps_.observer->SpecChanged(*cancelled);
  }
  Outcome<StoredWorkspace> stored =
      deps_.store->UpsertSpec(name, kApiSource, "", WorkspaceToJson(workspace));
  if (!stored) return ApiError(503, "store unavailable: " + stored.failure().message);
  const std::string moved_from =
      *existing && (*existing)->source != kApiSource ? (*existing)->source : std::string();
  std::string outcome = "unchanged";
  if (!*existing) {
    outcome = "created";
  } else if (!moved_from.empty() || was_deleting ||
             (*existing)->spec_digest != stored->spec_digest) {
    outcome = "configured";
  }
  Declare(*stored, workspace, product->second.entry);
  if (deps_.observer != nullptr) deps_.observer->SpecChanged(*stored);
  if (outcome != "unchanged") {
    std::string message = "workspace " + outcome + " through the API by " + who + " (generation " +
                          std::to_string(stored->generation) + ")";
    if (!moved_from.empty()) {
      message += "; moved from " + SourceKind(deps_.config, moved_from) + " source " +
                 Quoted(moved_from) + " with force: that source's document is now ignored";
    }
    if (was_deleting) message += "; its deletion is cancelled";
    deps_.events->Emit(name, "Normal", "Applied", message);
  }
  ApiAnswer answer = Object(outcome == "created" ? 201 : 200, name);
  answer.headers["Tenant-Master-Apply"] = Applied(outcome);
  deps_.enqueue(name);
  return answer;
}

ApiAnswer WorkspaceApi::Delete(const std::string& name, bool force, const std::string& who) {
  if (!deps_.leading()) return ApiError(503, "this replica is a standby: writes go to the leader");
  const std::lock_guard lock(write_mutex_);
  Outcome<std::optional<StoredWorkspace>> stored = deps_.store->Get(name);
  if (!stored) return ApiError(503, "store unavailable: " + stored.failure().message);
  if (!*stored) return ApiError(404, "workspace " + Quoted(name) + " not found");
  if (std::optional<ApiAnswer> refused = Refuse(**stored, force)) return *refused;
  if (!(*stored)->deleting_since) {
    Outcome<StoredWorkspace> marked = deps_.store->MarkDeleting(name);
    if (!marked) return ApiError(503, "store unavailable: " + marked.failure().message);
    deps_.desired->MarkDeleting(name);
    if (deps_.observer != nullptr) deps_.observer->SpecChanged(*marked);
    std::string message = "deleted through the API by " + who + "; running its reclaim policy";
    if ((*stored)->source != kApiSource) {
      message += " (owned by source " + Quoted((*stored)->source) +
                 ", with force: the source declares it again on its next read if it still has it)";
    }
    deps_.events->Emit(name, "Normal", "Deleting", message);
  }
  // The object before the queue: a reclaim that has nothing to wait for may remove the workspace
  // from the view before this thread reads it again.
  ApiAnswer answer = Object(202, name);
  deps_.enqueue(name);
  return answer;
}

ApiAnswer WorkspaceApi::Reconcile(const std::string& name, const std::string& who) {
  if (!deps_.leading()) return ApiError(503, "this replica is a standby: writes go to the leader");
  Outcome<std::optional<StoredWorkspace>> stored = deps_.store->Get(name);
  if (!stored) return ApiError(503, "store unavailable: " + stored.failure().message);
  if (!*stored && !deps_.desired->Lookup(name).rejected) {
    return ApiError(404, "workspace " + Quoted(name) + " not found");
  }
  const std::string at = FormatRfc3339Utc(Now());
  if (deps_.requested != nullptr) deps_.requested->Add(name);
  if (!deps_.enqueue(name)) {
    return ApiError(503, "this replica is a standby: writes go to the leader");
  }
  deps_.events->Emit(name, "Normal", "ReconcileRequested",
                     "reconcile requested through the API by " + who);
  ApiAnswer answer;
  answer.status = 202;
  answer.body = json::serialize(json::object{{"workspace", name}, {"queuedAt", at}});
  return answer;
}

ApiAnswer WorkspaceApi::SuspendApiOwned(const StoredWorkspace& stored, bool suspend,
                                        const std::string& who) {
  std::shared_ptr<const ProductEntry> product;
  std::optional<manifests::Workspace> workspace = ReadStored(stored, product);
  if (!workspace) {
    return ApiError(503, "workspace " + Quoted(stored.name) +
                             ": its product is not declared by any source now; retry later");
  }
  workspace->suspend = suspend;
  Outcome<StoredWorkspace> saved =
      deps_.store->UpsertSpec(stored.name, kApiSource, "", WorkspaceToJson(*workspace));
  if (!saved) return ApiError(503, "store unavailable: " + saved.failure().message);
  Declare(*saved, *workspace, product);
  if (deps_.observer != nullptr) deps_.observer->SpecChanged(*saved);
  if (saved->generation != stored.generation) {
    deps_.events->Emit(stored.name, "Normal", suspend ? "Suspended" : "Resumed",
                       std::string(suspend ? "suspended" : "resumed") + " through the API by " +
                           who + " (spec.suspend " + (suspend ? "true" : "false") +
                           ", generation " + std::to_string(saved->generation) + ")");
  }
  return Object(200, stored.name);
}

ApiAnswer WorkspaceApi::Suspend(const std::string& name, bool suspend, const std::string& who) {
  if (!deps_.leading()) return ApiError(503, "this replica is a standby: writes go to the leader");
  const std::lock_guard lock(write_mutex_);
  Outcome<std::optional<StoredWorkspace>> stored = deps_.store->Get(name);
  if (!stored) return ApiError(503, "store unavailable: " + stored.failure().message);
  if (!*stored) return ApiError(404, "workspace " + Quoted(name) + " not found");
  if ((*stored)->deleting_since) {
    return ApiError(409, "workspace " + Quoted(name) + " is being deleted");
  }
  const bool held = deps_.overrides->Get(name).has_value();
  if ((*stored)->source == kApiSource && !held) {
    ApiAnswer answer = SuspendApiOwned(**stored, suspend, who);
    deps_.enqueue(name);
    return answer;
  }
  // Source-owned (or an API-owned workspace an override still holds since its move): the spec
  // stays the source's; the override says suspended until resume clears it.
  if (suspend) {
    const SuspendOverride override{name, true, who, Now()};
    Outcome<Done> set = deps_.override_store->SetOverride(override);
    if (!set) return ApiError(503, "store unavailable: " + set.failure().message);
    deps_.overrides->Set(override);
    if (!held) {
      deps_.events->Emit(name, "Normal", "Suspended",
                         "suspended through the API by " + who + " (an override: source " +
                             Quoted((*stored)->source) + "'s spec is unchanged; resume clears it)");
    }
  } else if (held) {
    Outcome<bool> cleared = deps_.override_store->ClearOverride(name);
    if (!cleared) return ApiError(503, "store unavailable: " + cleared.failure().message);
    deps_.overrides->Clear(name);
    deps_.events->Emit(name, "Normal", "Resumed",
                       "resumed through the API by " + who + " (the override is cleared)");
  }
  deps_.fleet->Refresh(name);
  deps_.enqueue(name);
  if ((*stored)->source == kApiSource && !suspend) {
    // The override is gone; an API-owned spec may itself say suspend: resume it too.
    return SuspendApiOwned(**stored, false, who);
  }
  return Object(200, name);
}

ApiAnswer WorkspaceApi::Plan(std::string_view body, std::string_view content_type) {
  if (!AcceptedType(content_type)) {
    return ApiError(415, "content type " + Quoted(std::string(content_type)) +
                             " is neither JSON nor YAML (application/json, application/yaml)");
  }
  if (!deps_.leading()) {
    return ApiError(503, "this replica is a standby: the leader knows the sources' products");
  }
  ValidatedBody read = ValidateBody(body, deps_.products->All(), MakeLoadOptions(*deps_.config));
  if (read.has_errors) {
    return ApiError(422, "the manifests do not validate", read.findings_json);
  }
  manifests::Fleet& fleet = read.fleet;
  for (manifests::Workspace& workspace : fleet.workspaces) {
    const std::optional<SuspendOverride> held = deps_.overrides->Get(workspace.name);
    if (held && held->suspend) workspace.suspend = true;
  }
  static const Secret kNoKey;
  PassOptions options;
  options.dry_run = true;
  options.workers = 1;
  options.store_database = deps_.store_database;
  const PassReport report =
      RunPass(fleet, deps_.gateways, deps_.master_key != nullptr ? *deps_.master_key : kNoKey,
              options, deps_.stacks);
  json::array items;
  for (const WorkspaceResult& result : report.workspaces) {
    json::array actions;
    for (std::size_t i = 0; i < result.plan.size(); ++i) {
      actions.push_back({{"kind", i < result.plan_kinds.size() ? result.plan_kinds[i] : ""},
                         {"description", result.plan[i]}});
    }
    json::object item{{"workspace", result.name},
                      {"converged", result.ready && result.plan.empty()},
                      {"actions", std::move(actions)}};
    if (result.failure_kind) {
      item["blocked"] = {{"reason", result.reason}, {"message", result.message}};
    }
    items.push_back(std::move(item));
  }
  boost::system::error_code ec;
  json::value diagnostics = json::parse(read.findings_json, ec);
  ApiAnswer answer;
  answer.body = json::serialize(json::object{
      {"items", std::move(items)}, {"diagnostics", ec ? json::value(json::array()) : diagnostics}});
  return answer;
}

namespace {

/// A product's revision (docs/rollouts.md#revisions): `{"number": N, "digest": "<12 hex>"}`,
/// the number 0 until the store recorded it; null when its migrations or template could not be
/// read.
json::value RevisionJson(const ProductEntry& entry) {
  if (entry.revision_digest.empty()) return nullptr;
  return json::object{{"number", entry.revision}, {"digest", entry.revision_digest.substr(0, 12)}};
}

/// The short form of a product's rollout for its item of `GET /api/v1/products`: the driver's
/// text parsed in; null without a driver, and for a text that is not JSON (logged: a bug of the
/// driver must not take the list of products down with it).
json::value RolloutSummary(const RolloutControl* rollouts, const std::string& product) {
  if (rollouts == nullptr) return nullptr;
  const std::string text = rollouts->SummaryJson(product);
  boost::system::error_code ec;
  json::value parsed = json::parse(text, ec);
  if (ec) {
    spdlog::error("GET /api/v1/products: the rollout summary of product {} is not JSON: {}",
                  product, ec.message());
    return nullptr;
  }
  return parsed;
}

constexpr std::string_view kStandbyRollouts =
    "this replica is a standby: the leader's rollout driver knows the rollouts";
constexpr std::string_view kNoRollouts =
    "rollouts are not running here (this operator has no rollout driver)";

/// The driver's failure as the API's error (rollout_control.hpp): its reason in `details`, so
/// that a client tells a refused verb from another conflict.
ApiAnswer RolloutFailure(const Failure& failure) {
  int status = 503;
  if (failure.reason == "NotFound") {
    status = 404;
  } else if (failure.reason == "RolloutCommandRefused") {
    status = 409;
  } else if (failure.reason == "InvalidVerb") {
    status = 400;
  }
  return ApiError(status, failure.message,
                  json::serialize(json::object{{"reason", failure.reason}}));
}

std::string RolloutVerbList() {
  std::string out;
  for (const std::string_view verb : kRolloutVerbs) {
    out += out.empty() ? "" : ", ";
    out += verb;
  }
  return out;
}

}  // namespace

ApiAnswer WorkspaceApi::RolloutStatus(const std::string& product) const {
  if (!deps_.leading()) return ApiError(503, std::string(kStandbyRollouts));
  if (deps_.rollouts == nullptr) return ApiError(503, std::string(kNoRollouts));
  Outcome<std::string> status = deps_.rollouts->StatusJson(product);
  if (!status) return RolloutFailure(status.failure());
  ApiAnswer answer;
  answer.body = std::move(status).value();
  return answer;
}

ApiAnswer WorkspaceApi::RolloutCommand(const std::string& product, const std::string& verb,
                                       const std::string& who) {
  // The verb first: a request that can never work is said so on every replica.
  if (std::find(std::begin(kRolloutVerbs), std::end(kRolloutVerbs), verb) ==
      std::end(kRolloutVerbs)) {
    return ApiError(400,
                    "unknown rollout verb " + Quoted(verb.substr(0, 40)) + ": the verbs are " +
                        RolloutVerbList(),
                    json::serialize(json::object{{"reason", "InvalidVerb"}}));
  }
  if (!deps_.leading()) return ApiError(503, std::string(kStandbyRollouts));
  if (deps_.rollouts == nullptr) return ApiError(503, std::string(kNoRollouts));
  Outcome<std::string> status = deps_.rollouts->Command(product, verb, who);
  if (!status) return RolloutFailure(status.failure());
  ApiAnswer answer;
  answer.body = std::move(status).value();
  return answer;
}

ApiAnswer WorkspaceApi::Clusters() const {
  if (deps_.placer == nullptr) return ApiError(404, "this operator places no workspaces");
  if (!deps_.leading()) {
    return ApiError(503, "this replica is a standby: the leader counts the clusters' workspaces");
  }
  json::array items;
  for (const Placer::Usage& usage : deps_.placer->Usages()) {
    json::object labels;
    for (const auto& [key, value] : usage.labels) labels[key] = value;
    json::value reachable = nullptr;  // not checked yet
    if (usage.reach.known) reachable = usage.reach.reachable;
    json::object item{{"name", usage.cluster},
                      {"labels", std::move(labels)},
                      {"used", usage.used},
                      {"placed", usage.placed},
                      {"reachable", reachable},
                      {"serverVersion", usage.reach.server_version}};
    item["capacity"] = usage.capacity ? json::value(*usage.capacity) : json::value(nullptr);
    if (usage.reach.known && !usage.reach.reachable) item["reason"] = usage.reach.reason;
    if (usage.reach.known) item["checkedAt"] = FormatRfc3339Utc(usage.reach.checked_unix);
    items.push_back(std::move(item));
  }
  ApiAnswer answer;
  answer.body = json::serialize(json::object{{"items", std::move(items)}});
  return answer;
}

ApiAnswer WorkspaceApi::Endpoints() const {
  if (deps_.placer == nullptr) return ApiError(404, "this operator places no stacks");
  if (!deps_.leading()) {
    return ApiError(503, "this replica is a standby: the leader counts the endpoints' stacks");
  }
  json::array items;
  for (const Placer::EndpointUsage& usage : deps_.placer->EndpointUsages()) {
    json::object labels;
    for (const auto& [key, value] : usage.labels) labels[key] = value;
    const EndpointReach& reach = usage.reach;
    // The kind is what the engine said at the last check; down or not asked yet: unknown.
    const char* kind = "unknown";
    if (reach.known && reach.reachable) kind = reach.swarm ? "swarm" : "standalone";
    json::value reachable = nullptr;  // not checked yet
    if (reach.known) reachable = reach.reachable;
    json::value swarm_id = nullptr;
    if (reach.known && reach.reachable && reach.swarm) swarm_id = json::string(reach.swarm_id);
    json::object item{{"id", usage.endpoint},
                      {"kind", kind},
                      {"swarmId", std::move(swarm_id)},
                      {"configured", usage.configured},
                      {"labels", std::move(labels)},
                      {"used", usage.used},
                      {"reachable", reachable}};
    item["capacity"] = usage.capacity ? json::value(*usage.capacity) : json::value(nullptr);
    json::array runtimes;
    for (const std::string& product : usage.runtimes) runtimes.emplace_back(product);
    item["sharedRuntimes"] = std::move(runtimes);
    if (reach.known && !reach.reachable) item["reason"] = reach.reason;
    if (reach.known) item["checkedAt"] = FormatRfc3339Utc(reach.checked_unix);
    items.push_back(std::move(item));
  }
  ApiAnswer answer;
  answer.body = json::serialize(json::object{{"items", std::move(items)}});
  return answer;
}

ApiAnswer WorkspaceApi::Products() const {
  if (!deps_.leading()) {
    return ApiError(503, "this replica is a standby: the leader knows the sources' products");
  }
  std::map<std::string, int> counts;
  for (const std::string& name : deps_.desired->DeclaredNames()) {
    if (std::shared_ptr<const DesiredEntry> entry = deps_.desired->Declared(name)) {
      ++counts[entry->workspace.product];
    }
  }
  json::array items;
  for (const auto& [name, found] : deps_.products->All()) {
    const manifests::Product& product = found.entry->product;
    json::array modes;
    for (manifests::Mode mode : product.modes) modes.emplace_back(manifests::ToString(mode));
    json::value runtime = nullptr;
    if (product.shared_runtime) {
      runtime = json::object{{"stack", stacks::SharedRuntimeStackName(name)},
                             {"endpoint", product.shared_runtime->endpoint}};
    }
    items.push_back({{"name", name},
                     {"source", found.source},
                     {"displayName", product.display_name},
                     {"defaultVersion", product.default_version},
                     {"modes", std::move(modes)},
                     {"sharedRuntime", std::move(runtime)},
                     {"rollout", RolloutJson(product.rollout)},
                     {"revision", RevisionJson(*found.entry)},
                     {"workspaces", counts[name]},
                     {"rolloutStatus", RolloutSummary(deps_.rollouts, name)}});
  }
  ApiAnswer answer;
  answer.body = json::serialize(json::object{{"items", std::move(items)}});
  return answer;
}

ApiAnswer WorkspaceApi::List(const FleetQuery& query) const {
  Outcome<FleetPage> page = deps_.fleet->List(query);
  if (!page) return ApiError(400, page.failure().message);
  ApiAnswer answer;
  answer.body = std::move(page->json);
  return answer;
}

ApiAnswer WorkspaceApi::Summary() const {
  ApiAnswer answer;
  answer.body = FleetSummaryJson(deps_.fleet->Summary());
  return answer;
}

ApiAnswer WorkspaceApi::Get(const std::string& name) const {
  std::optional<std::string> object = deps_.fleet->Get(name);
  if (!object) return ApiError(404, "workspace " + Quoted(name) + " not found");
  ApiAnswer answer;
  answer.body = std::move(*object);
  return answer;
}

std::vector<std::string> WorkspaceApi::DeclareApiOwned() {
  std::vector<std::string> declared;
  const std::lock_guard lock(write_mutex_);
  Outcome<std::vector<StoredWorkspace>> rows = deps_.store->ListWorkspaces(std::string(kApiSource));
  if (!rows) {
    spdlog::warn("store: the API's workspaces: {}", rows.failure().message);
    return declared;
  }
  for (const StoredWorkspace& row : *rows) {
    if (row.deleting_since) continue;
    deps_.desired->SetApiOwned(row.name);
    std::shared_ptr<const ProductEntry> product;
    std::optional<manifests::Workspace> workspace = ReadStored(row, product);
    if (!workspace) continue;  // its product is not declared (yet): declared when it is
    const std::shared_ptr<const DesiredEntry> current = deps_.desired->Declared(row.name);
    if (current && current->spec_digest == row.spec_digest && current->product &&
        current->product->digest == product->digest) {
      continue;
    }
    Declare(row, *workspace, product);
    declared.push_back(row.name);
  }
  return declared;
}

namespace {

// `GET /api/v1/workspaces`'s query from its parameters (docs/api.md): a bad value is a message
// naming the parameter and what it allows.
Outcome<FleetQuery> ListQuery(const WorkspaceCall& call) {
  const auto bad = [](std::string message) {
    return Failure::Stalled("BadRequest", std::move(message));
  };
  const auto first = [&](std::string_view key) -> std::string {
    for (const auto& [name, value] : call.params) {
      if (name == key) return value;
    }
    return {};
  };
  FleetQuery query;
  query.limit = call.limit;
  query.continue_token = call.continue_token;
  Outcome<LabelSelector> selector = ParseLabelSelector(call.label_selector);
  if (!selector) return selector.failure();
  query.selector = std::move(selector).value();

  // phase=A,B (and phase=A&phase=B): any of them.
  std::vector<std::string> phase_texts;
  for (const auto& [name, value] : call.params) {
    if (name == "phase") phase_texts.push_back(value);
  }
  if (phase_texts.empty() && !call.phase.empty()) phase_texts.push_back(call.phase);
  for (const std::string& text : phase_texts) {
    if (Trim(text).empty()) continue;  // `phase=`: any, as before
    std::string_view rest = text;
    while (true) {
      const std::size_t comma = rest.find(',');
      const std::string_view phase = Trim(rest.substr(0, comma));
      if (std::find(kFleetPhases.begin(), kFleetPhases.end(), phase) == kFleetPhases.end()) {
        std::string allowed;
        for (const std::string_view known : kFleetPhases) {
          allowed += allowed.empty() ? "" : ", ";
          allowed += known;
        }
        return bad("phase must be one of " + allowed + " or a comma list of them, got " +
                   Quoted(text));
      }
      query.phases.emplace_back(phase);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  query.product = first("product");
  query.mode = first("mode");
  if (!query.mode.empty() && query.mode != "shared" && query.mode != "dedicated") {
    return bad("mode must be shared or dedicated, got " + Quoted(query.mode));
  }
  query.text = first("q");
  if (const std::string sort = first("sort"); !sort.empty()) {
    const std::optional<FleetOrder> order = ParseFleetOrder(sort);
    if (!order) {
      return bad("sort must be one of " + FleetSortKeys() +
                 ", or one of them after \"-\" for descending, got " + Quoted(sort));
    }
    query.order = *order;
  }
  return query;
}

}  // namespace

WorkspaceAnswer ServeWorkspaceCall(WorkspaceApi& api, const WorkspaceCall& call) {
  using Op = WorkspaceCall::Op;
  ApiAnswer answer;
  switch (call.op) {
    case Op::kList: {
      Outcome<FleetQuery> query = ListQuery(call);
      answer = query ? api.List(*query) : ApiError(400, query.failure().message);
      break;
    }
    case Op::kGet:
      answer = api.Get(call.name);
      break;
    case Op::kApply:
      answer = api.Apply(call.name, call.body, call.content_type, call.force, call.who);
      break;
    case Op::kDelete:
      answer = api.Delete(call.name, call.force, call.who);
      break;
    case Op::kReconcile:
      answer = api.Reconcile(call.name, call.who);
      break;
    case Op::kSuspend:
      answer = api.Suspend(call.name, true, call.who);
      break;
    case Op::kResume:
      answer = api.Resume(call.name, call.who);
      break;
    case Op::kPlan:
      answer = api.Plan(call.body, call.content_type);
      break;
    case Op::kProducts:
      answer = api.Products();
      break;
    case Op::kClusters:
      answer = api.Clusters();
      break;
    case Op::kEndpoints:
      answer = api.Endpoints();
      break;
    case Op::kSummary:
      answer = api.Summary();
      break;
    case Op::kBackup:
      answer = api.Backup(call.name, call.who);
      break;
    case Op::kListBackups:
      answer = api.ListBackups(call.name);
      break;
    case Op::kRestore:
      answer = api.Restore(call.name, call.body, call.content_type, call.who);
      break;
    case Op::kGetRestore:
      answer = api.GetRestore(call.name);
      break;
    case Op::kMove:
      answer = api.Move(call.name, call.body, call.content_type, call.who);
      break;
    case Op::kGetMove:
      answer = api.GetMove(call.name);
      break;
    case Op::kListMoves:
      answer = api.ListMoves();
      break;
    case Op::kRolloutStatus:
      answer = api.RolloutStatus(call.name);
      break;
    case Op::kRolloutCommand:
      answer = api.RolloutCommand(call.name, call.verb, call.who);
      break;
  }
  WorkspaceAnswer out;
  out.status = answer.status;
  out.body = std::move(answer.body);
  for (auto& [name, value] : answer.headers) out.headers.emplace_back(name, std::move(value));
  return out;
}

}  // namespace tmaster::controller
