#include "controller/sources/sync.hpp"

#include <spdlog/spdlog.h>

#include <chrono>
#include <map>

#include "common/crypto.hpp"
#include "common/text.hpp"
#include "controller/rollouts/revision.hpp"
#include "controller/runtime/deletion_guard.hpp"
#include "controller/store/spec_json.hpp"
#include "reconcilers/migrations/migrations.hpp"
#include "reconcilers/stacks/render.hpp"

namespace tmaster::controller {

namespace {

// What a product hands a workspace, for its revision (docs/rollouts.md#revisions).
rollouts::RevisionInputs RevisionInputsOf(const ProductEntry& entry) {
  rollouts::RevisionInputs inputs;
  inputs.version = entry.product.default_version;
  inputs.image = entry.product.image;
  inputs.template_text = *entry.stack_template;
  for (const migrations::Migration& migration : *entry.migrations) {
    inputs.migrations.push_back({migration.version, migration.file, migration.checksum});
  }
  inputs.extensions = entry.product.extensions;
  return inputs;
}

}  // namespace

Sync::Sync(SyncDeps deps, SyncOptions options) : deps_(std::move(deps)), options_(options) {}

Sync::Products Sync::LoadProducts(const manifests::Fleet& fleet, const SyncOptions& options) {
  Products products;
  for (const manifests::Product& product : fleet.products) {
    auto entry = std::make_shared<ProductEntry>();
    entry->product = product;
    if (!product.migrations.empty()) {
      entry->migrations = migrations::LoadDirectory(product.root, product.migrations,
                                                    options.max_migration_bytes);
    }
    if (!product.stack_template.empty()) {
      entry->stack_template = stacks::ReadStackTemplate(product, options.max_template_bytes);
    }
    entry->digest = ProductDigest(product, entry->migrations, entry->stack_template);
    manifests::Product others = product;
    others.default_version.clear();
    others.image.clear();
    others.stack_template.clear();
    others.migrations.clear();
    others.extensions.clear();
    entry->other_digest = ProductDigest(others, std::vector<migrations::Migration>{}, std::string());
    if (entry->migrations && entry->stack_template) {
      entry->revision_digest = rollouts::RevisionDigest(RevisionInputsOf(*entry));
    }
    if (product.shared_runtime) {
      manifests::Product as_template = product;
      as_template.stack_template = product.shared_runtime->stack_template;
      const Outcome<std::string> text =
          stacks::ReadStackTemplate(as_template, options.max_template_bytes);
      entry->runtime_digest = crypto::Sha256Hex(
          std::to_string(product.shared_runtime->endpoint) + "\n" +
          product.shared_runtime->stack_template.string() + "\n" +
          (text ? "template " + crypto::Sha256Hex(*text) : "template-error " + text.failure().reason));
    }
    products.emplace(product.name, std::move(entry));
  }
  return products;
}

Sync::Products Sync::RecordRevisions(Products products) {
  if (deps_.store == nullptr) return products;
  const std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
  for (auto& [name, entry] : products) {
    if (entry->revision_digest.empty()) continue;
    int number = 0;
    {
      const std::lock_guard lock(revisions_mutex_);
      const auto known = recorded_revisions_.find(name);
      if (known != recorded_revisions_.end() && known->second.first == entry->revision_digest) {
        number = known->second.second;
      }
    }
    if (number > 0) {
      auto numbered = std::make_shared<ProductEntry>(*entry);
      numbered->revision = number;
      entry = std::move(numbered);
      continue;
    }
    auto recorded = deps_.store->RecordRevision(
        name, entry->revision_digest, rollouts::RevisionSpecJson(RevisionInputsOf(*entry)), now);
    if (!recorded) {
      // The number stays unknown (0) until a later sync records it; nothing else waits for it.
      spdlog::warn("product {}: its revision was not recorded: {}", name,
                   recorded.failure().message);
      continue;
    }
    {
      const std::lock_guard lock(revisions_mutex_);
      recorded_revisions_[name] = {entry->revision_digest, recorded->number};
    }
    auto numbered = std::make_shared<ProductEntry>(*entry);
    numbered->revision = recorded->number;
    entry = std::move(numbered);
  }
  return products;
}

Outcome<SyncVerdict> Sync::Apply(const std::string& source, const std::string& revision,
                                 const manifests::Fleet& fleet,
                                 std::vector<std::string>& to_queue) {
  Pass pass{source, revision, fleet, {}, {}, {}};
  Outcome<SyncVerdict> verdict = RunPhases(pass);
  to_queue = std::move(pass.enqueue);
  return verdict;
}

Outcome<SyncVerdict> Sync::RunPhases(Pass& pass) {
  const Products products = RecordRevisions(LoadProducts(pass.fleet, options_));
  if (deps_.products != nullptr) deps_.products->Replace(pass.source, products);
  for (const manifests::Workspace& workspace : pass.fleet.workspaces) {
    pass.parsed.insert(workspace.name);
    if (Status upserted = UpsertDeclared(pass, workspace, products); !upserted) {
      return upserted.failure();
    }
  }
  RecordRejected(pass);
  SyncVerdict verdict;
  if (pass.fleet.HasErrors()) {
    verdict.ready = false;
    verdict.reason = "InvalidManifests";
    verdict.message = InvalidManifestsMessage(pass.fleet);
    return verdict;
  }
  if (Status guarded = GuardDeletions(pass, verdict); !guarded) return guarded.failure();
  if (verdict.ready && !pass.api_owned.empty()) {
    verdict.reason = "Conflict";
    verdict.message = ApiOwnedMessage(pass.api_owned);
  } else if (verdict.ready) {
    verdict.message = std::to_string(pass.fleet.workspaces.size()) + " workspace(s)" +
                      (pass.revision.empty() ? "" : " at revision " + pass.revision);
  }
  return verdict;
}

Status Sync::UpsertDeclared(Pass& pass, const manifests::Workspace& workspace,
                            const Products& products) {
  auto product = products.find(workspace.product);
  if (product == products.end()) return Ok();  // the loader rejects these; defensive
  const std::string spec_json = WorkspaceToJson(workspace);
  const std::string digest = crypto::Sha256Hex(spec_json);
  if (pass.source != kApiSource && deps_.desired->ApiOwned(workspace.name)) {
    pass.api_owned.push_back(workspace.name);  // moved to the API with force: not taken back
    return Ok();
  }
  const DesiredState::View view = deps_.desired->Lookup(workspace.name);
  const std::shared_ptr<const DesiredEntry>& existing = view.declared;
  const bool returning = view.deleting;
  if (existing && existing->source != pass.source) {
    spdlog::warn("source {}: workspace {} is already declared by source {}; ignored", pass.source,
                 workspace.name, existing->source);
    return Ok();
  }
  // What the store already holds: the previous sync's entry, or (first sync of a term) the row
  // read at the start of the term, so a restart re-saves nothing that did not change.
  std::optional<StoredWorkspace> known;
  if (existing) {
    known = StoredWorkspace{workspace.name,        existing->source,     existing->revision, "",
                            existing->spec_digest, existing->generation, std::nullopt,
                            std::nullopt, std::nullopt, std::nullopt};
  } else {
    known = deps_.desired->StoredAtStart(workspace.name);
  }
  const bool spec_changed =
      !known || known->spec_digest != digest || known->source != pass.source || returning;
  // A new revision of a product with a rollout policy reaches its workspaces as the rollout hands
  // them out (the driver queues each); one that is not targeted would only run a pass that finds
  // its pinned revision unchanged. Any other change of the product concerns every workspace now.
  const ProductEntry& now = *product->second;
  const bool product_changed = existing && existing->product->digest != now.digest;
  const bool handed_out = product_changed && now.product.rollout && !now.revision_digest.empty() &&
                          existing->product->other_digest == now.other_digest;
  auto entry = std::make_shared<DesiredEntry>();
  entry->workspace = workspace;
  entry->product = product->second;
  entry->source = pass.source;
  // The revision that last changed this spec: a commit that touches other files changes
  // neither the workspace nor its row (the source's own status carries the fetched revision).
  entry->revision = spec_changed ? pass.revision : known->revision;
  entry->spec_digest = digest;
  if (returning) {
    if (Outcome<StoredWorkspace> cancelled = deps_.store->CancelDeleting(workspace.name);
        !cancelled) {
      return cancelled.failure();
    } else if (deps_.observer != nullptr) {
      deps_.observer->SpecChanged(*cancelled);
    }
  }
  if (spec_changed) {
    Outcome<StoredWorkspace> stored =
        deps_.store->UpsertSpec(workspace.name, pass.source, pass.revision, spec_json);
    if (!stored) {
      Failure failure = stored.failure();
      failure.message = "saving workspace " + workspace.name + ": " + failure.message;
      return failure;
    }
    entry->generation = stored->generation;
    if (deps_.observer != nullptr) deps_.observer->SpecChanged(*stored);
  } else {
    entry->generation = known->generation;
  }
  deps_.desired->Declare(workspace.name, entry);
  if (returning) {
    deps_.events->Emit(workspace.name, "Normal", "DeletionCancelled",
                       "the manifest is back in source " + pass.source + "; deletion cancelled");
  }
  // Changed, or first seen this term (a new leader re-checks everything once).
  if (spec_changed || (product_changed && !handed_out) || !existing) {
    pass.enqueue.push_back(workspace.name);
  }
  return Ok();
}

void Sync::RecordRejected(Pass& pass) {
  for (const manifests::RejectedWorkspace& rejected : pass.fleet.rejected) {
    pass.parsed.insert(rejected.name);
    // The last valid spec stays in the store; nothing is reconciled (or deleted) from an
    // invalid document. The worker writes its status (Stalled, with the finding).
    deps_.desired->Reject(rejected.name,
                          {pass.source, pass.revision, rejected.reason, rejected.message});
    pass.enqueue.push_back(rejected.name);
  }
}

Status Sync::GuardDeletions(Pass& pass, SyncVerdict& verdict) {
  // A clean parse: workspaces the store holds from this source but the parse lacks go.
  Outcome<std::vector<StoredWorkspace>> stored = deps_.store->ListWorkspaces(pass.source);
  if (!stored) return stored.failure();
  std::set<std::string> live;
  std::set<std::string> rows;
  for (const StoredWorkspace& w : *stored) {
    rows.insert(w.name);
    if (!w.deleting_since) live.insert(w.name);
  }
  // A document that never validated and is now gone: its status (listed as Stalled by the API)
  // goes with it. One that had a valid spec before is a row of this source: deleted below.
  for (const std::string& name : deps_.desired->RejectedBy(pass.source)) {
    if (pass.parsed.count(name) != 0 || rows.count(name) != 0) continue;
    Outcome<std::optional<StoredWorkspace>> row = deps_.store->Get(name);
    if (!row) return row.failure();
    if (*row) continue;  // another source's row now
    if (Outcome<bool> removed = deps_.store->Remove(name); !removed) return removed.failure();
    deps_.desired->ForgetRejected(name);
    if (deps_.observer != nullptr) deps_.observer->Removed(name);
  }
  GuardDecision decision =
      DecideDeletions(live, pass.parsed, options_.max_deletions_per_sync, /*confirmed=*/false);
  // A workspace switched to shared (or moved to another endpoint) loses its stack: a deletion
  // too, so a bad commit that flips many workspaces is held like one that removes them.
  std::map<std::string, int> stack_endpoints;
  for (const StoredWorkspace& w : *stored) {
    if (w.stack_endpoint) stack_endpoints.emplace(w.name, *w.stack_endpoint);
  }
  std::set<std::string> stack_removals;
  for (const manifests::Workspace& workspace : pass.fleet.workspaces) {
    const auto endpoint = stack_endpoints.find(workspace.name);
    if (endpoint == stack_endpoints.end()) continue;
    // A placed stack stays on its stored endpoint (docs/placement.md#endpoints).
    if (!workspace.dedicated || (!workspace.dedicated->endpoint_placed &&
                                 workspace.dedicated->endpoint != endpoint->second)) {
      stack_removals.insert(workspace.name);
    }
  }
  const std::size_t deletions =
      (decision.allowed ? decision.to_delete.size() : decision.withheld.size()) +
      stack_removals.size();
  if (decision.allowed && !stack_removals.empty() &&
      (options_.max_deletions_per_sync <= 0 ||
       deletions > static_cast<std::size_t>(options_.max_deletions_per_sync))) {
    decision.allowed = false;
    decision.withheld = decision.to_delete;
    decision.to_delete.clear();
    decision.reason = kDeletionGuardReason;
    decision.message = std::to_string(deletions) + " deletion(s) in one sync (" +
                       std::to_string(stack_removals.size()) +
                       " of them stacks of workspaces switched to shared or to another endpoint, "
                       "first " + Quoted(*stack_removals.begin()) +
                       ") exceed reconcile.maxDeletionsPerSync " +
                       std::to_string(options_.max_deletions_per_sync) +
                       "; nothing is deleted until the manifests change back or the limit is raised";
  }
  deps_.desired->HoldStackRemovals(pass.source,
                                   decision.allowed ? std::set<std::string>{} : stack_removals);
  if (decision.allowed) {  // also those held by an earlier sync, whose spec did not change now
    pass.enqueue.insert(pass.enqueue.end(), stack_removals.begin(), stack_removals.end());
  }
  if (!decision.allowed) {
    verdict.ready = false;
    verdict.reason = decision.reason;
    verdict.message = decision.message;
  }
  for (const std::string& name : decision.to_delete) {
    Outcome<StoredWorkspace> marked = deps_.store->MarkDeleting(name);
    if (!marked) return marked.failure();
    deps_.desired->MarkDeleting(name);
    if (deps_.observer != nullptr) deps_.observer->SpecChanged(*marked);
    deps_.events->Emit(
        name, "Normal", "Deleting",
        "the manifest is gone from source " + pass.source +
            (pass.revision.empty() ? "" : " at revision " + pass.revision.substr(0, 12)) +
            "; running its reclaim policy");
    pass.enqueue.push_back(name);
  }
  return Ok();
}

std::string ApiOwnedMessage(const std::vector<std::string>& names) {
  return std::to_string(names.size()) + " workspace(s) declared here are owned by the API " +
         "(moved with PUT ...?force=true), first " + Quoted(names.front()) +
         "; their documents are ignored until they are deleted through the API";
}

std::string InvalidManifestsMessage(const manifests::Fleet& fleet) {
  int errors = 0;
  std::string first;
  for (const manifests::Diagnostic& d : fleet.diagnostics) {
    if (d.severity != manifests::Diagnostic::Severity::kError) continue;
    if (errors++ == 0) first = d.Format();
  }
  return std::to_string(errors) + " invalid document(s), nothing deleted; first: " + first;
}

}  // namespace tmaster::controller
