#include "controller/store/spec_json.hpp"

#include <boost/json.hpp>
#include <sstream>

#include "common/crypto.hpp"

namespace tmaster::controller {
namespace json = boost::json;

namespace {

json::object Labels(const std::map<std::string, std::string>& labels) {
  json::object out;
  for (const auto& [key, value] : labels) out[key] = value;
  return out;
}

Failure BadField(const std::string& workspace, const std::string& field) {
  return Failure::Stalled("InvalidStoredSpec", "stored spec of workspace \"" + workspace +
                                                   "\": field " + field +
                                                   " is missing or has the wrong type");
}

const json::value* Find(const json::object& object, std::string_view key) {
  auto it = object.find(key);
  return it == object.end() ? nullptr : &it->value();
}

}  // namespace

std::string WorkspaceToJson(const manifests::Workspace& workspace) {
  json::object database;
  // A placed workspace's stored spec says what its manifest says: no cluster (the placement is
  // its own record, docs/placement.md).
  if (!workspace.database.cluster_placed) database["cluster"] = workspace.database.cluster;
  if (!workspace.database.cluster_selector.empty()) {
    json::object placement;
    placement["clusterSelector"] = Labels(workspace.database.cluster_selector);
    database["placement"] = std::move(placement);
  }
  database["name"] = workspace.database.name;
  database["owner"] = workspace.database.owner;
  database["connectionLimit"] = workspace.database.connection_limit;
  json::array extensions;
  for (const auto& e : workspace.database.extensions) extensions.emplace_back(e);
  database["extensions"] = std::move(extensions);
  database["reclaimPolicy"] = manifests::ToString(workspace.database.reclaim_policy);
  database["passwordRotation"] = workspace.database.password_rotation;
  database["adopt"] = workspace.database.adopt;

  json::object spec;
  spec["product"] = workspace.product;
  spec["mode"] = manifests::ToString(workspace.mode);
  spec["subdomain"] = workspace.subdomain;
  spec["suspend"] = workspace.suspend;
  spec["database"] = std::move(database);
  if (workspace.dedicated) {
    json::object dedicated;
    // Like the cluster: a placed endpoint is its own record (the stored stack endpoint).
    if (!workspace.dedicated->endpoint_placed) dedicated["endpoint"] = workspace.dedicated->endpoint;
    if (!workspace.dedicated->endpoint_selector.empty()) {
      json::object placement;
      placement["endpointSelector"] = Labels(workspace.dedicated->endpoint_selector);
      dedicated["placement"] = std::move(placement);
    }
    // Like both: a version defaulted from the product is the product's (and its revisions'),
    // not the manifest's; stored, it would read back as the workspace's own and leave rollouts.
    if (!workspace.dedicated->version_defaulted) {
      dedicated["version"] = workspace.dedicated->version;
    }
    dedicated["env"] = Labels(workspace.dedicated->env);
    spec["dedicated"] = std::move(dedicated);
  }
  json::object backup;
  backup["schedule"] = workspace.backup.schedule;
  backup["keep"] = workspace.backup.keep;
  spec["backup"] = std::move(backup);

  json::object metadata;
  metadata["name"] = workspace.name;
  metadata["labels"] = Labels(workspace.labels);

  json::object document;
  document["apiVersion"] = manifests::kApiVersion;
  document["kind"] = "Workspace";
  document["metadata"] = std::move(metadata);
  document["spec"] = std::move(spec);
  return json::serialize(document);
}

Outcome<ReclaimSpec> ReclaimSpecFromJson(const std::string& spec_json) {
  boost::system::error_code error;
  json::value parsed = json::parse(spec_json, error);
  if (error || !parsed.is_object()) {
    return Failure::Stalled("InvalidStoredSpec", "a stored spec is not a JSON object");
  }
  const json::object& document = parsed.as_object();
  const json::value* metadata = Find(document, "metadata");
  const json::value* name =
      metadata != nullptr && metadata->is_object() ? Find(metadata->as_object(), "name") : nullptr;
  if (name == nullptr || !name->is_string()) return BadField("?", "metadata.name");
  ReclaimSpec out;
  out.workspace = std::string(name->as_string());

  const json::value* spec = Find(document, "spec");
  if (spec == nullptr || !spec->is_object()) return BadField(out.workspace, "spec");
  const json::value* database = Find(spec->as_object(), "database");
  if (database == nullptr || !database->is_object()) {
    return BadField(out.workspace, "spec.database");
  }
  const json::object& db = database->as_object();
  const auto text = [&](std::string_view key, std::string& into) -> bool {
    const json::value* v = Find(db, key);
    if (v == nullptr || !v->is_string() || v->as_string().empty()) return false;
    into = std::string(v->as_string());
    return true;
  };
  // Absent for a placed workspace: its placement (or identity) names the cluster.
  if (Find(db, "cluster") != nullptr && !text("cluster", out.cluster)) {
    return BadField(out.workspace, "spec.database.cluster");
  }
  if (!text("name", out.database)) return BadField(out.workspace, "spec.database.name");
  if (!text("owner", out.role)) return BadField(out.workspace, "spec.database.owner");
  std::string policy;
  if (!text("reclaimPolicy", policy) || (policy != "Retain" && policy != "Delete")) {
    return BadField(out.workspace, "spec.database.reclaimPolicy");
  }
  out.policy =
      policy == "Delete" ? manifests::ReclaimPolicy::kDelete : manifests::ReclaimPolicy::kRetain;
  if (const json::value* dedicated = Find(spec->as_object(), "dedicated"); dedicated != nullptr) {
    if (!dedicated->is_object()) return BadField(out.workspace, "spec.dedicated");
    // Absent for a placed stack: the stored stack endpoint names it.
    const json::value* endpoint = Find(dedicated->as_object(), "endpoint");
    if (endpoint != nullptr && !endpoint->is_int64()) {
      return BadField(out.workspace, "spec.dedicated.endpoint");
    }
    if (endpoint != nullptr) out.endpoint = static_cast<int>(endpoint->as_int64());
  }
  return out;
}

std::string ProductDigest(const manifests::Product& product,
                          const Outcome<std::vector<migrations::Migration>>& migrations,
                          const Outcome<std::string>& stack_template) {
  std::ostringstream text;
  text << product.name << '\n'
       << product.image << '\n'
       << product.default_version << '\n'
       << product.port << '\n'
       << product.stack_template.string() << '\n'
       << product.migrations.string() << '\n';
  for (const auto& e : product.extensions) text << "ext " << e << '\n';
  for (const auto& m : product.modes) text << "mode " << manifests::ToString(m) << '\n';
  // Only when set, so the digests of products without it stay what they were.
  if (product.ignore_missing_migrations) text << "ignore-missing-migrations\n";
  if (migrations) {
    for (const auto& m : *migrations) text << "migration " << m.file << ' ' << m.checksum << '\n';
  } else {
    text << "migrations-error " << migrations.failure().reason << '\n';
  }
  if (stack_template) {
    text << "template " << crypto::Sha256Hex(*stack_template) << '\n';
  } else {
    text << "template-error " << stack_template.failure().reason << '\n';
  }
  return crypto::Sha256Hex(text.str());
}

}  // namespace tmaster::controller
