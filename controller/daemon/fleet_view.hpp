#pragma once
// The workspace list answered from memory (docs/api.md, `GET /api/v1/workspaces`): every
// workspace's API object (status_json.hpp WorkspaceJson, with `status.override` when an API
// override holds it) rendered once when its spec or status changes, and a page cut from the
// rendered objects in name order. List items leave out `status.lastRuns` (the object of
// `GET /api/v1/workspaces/{name}` has it), so a page of 100 stays under 100 KB. The leader's daemon tells it of each write it makes
// (WorkspaceObserver); a standby reloads it from the store (Reset) every couple of seconds.
//
// A name with a status but no stored spec is a workspace whose manifest never validated: it is
// listed with its status (phase Stalled, the InvalidManifest message) and an empty spec.

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/outcome.hpp"
#include "controller/api/status_json.hpp"
#include "controller/sources/workspace_observer.hpp"
#include "controller/store/store.hpp"
#include "controller/workspace/overrides.hpp"

namespace tmaster::controller {

/// The phases (docs/architecture.md#status-and-events) in `sort=stuck` order: the most stuck
/// first. A phase not named here sorts after them.
inline constexpr std::array<std::string_view, 7> kFleetPhases = {
    "Stalled", "Degraded", "Progressing", "Pending", "Deleting", "Suspended", "Ready"};

/// `GET /api/v1/workspaces`'s `sort` keys (docs/api.md). Ties are always broken by name, A to Z;
/// a workspace without the key (never ran, no product, ...) comes after those with it, in both
/// directions.
enum class FleetSort {
  kName,           ///< the default
  kStuck,          ///< kFleetPhases' order
  kPhase,          ///< the phase's name, alphabetically
  kProduct,        ///< spec.product
  kMode,           ///< spec.mode
  kLastReconcile,  ///< status.lastReconcileTime, oldest first
  kAge,            ///< metadata.creationTimestamp (else the earliest condition time), oldest first
};

/// The `sort` parameter: `KEY` or `-KEY` (descending). nullopt for anything else.
struct FleetOrder {
  FleetSort key = FleetSort::kName;
  bool descending = false;
};
std::optional<FleetOrder> ParseFleetOrder(std::string_view text);
/// `name`, `-stuck`, ...: the text ParseFleetOrder reads.
std::string FleetOrderText(FleetOrder order);
/// "name, stuck, phase, product, mode, lastReconcile, age": for error messages.
std::string FleetSortKeys();

/// `GET /api/v1/workspaces`'s query. Every filter set must hold.
struct FleetQuery {
  std::optional<std::size_t> limit;  ///< nullopt: every item
  std::string continue_token;        ///< empty: from the first item
  LabelSelector selector;
  std::vector<std::string> phases;  ///< any of these; empty: any
  std::string product;              ///< exact; empty: any
  std::string mode;                 ///< exact; empty: any
  /// `q`: a substring, ASCII case-insensitive, of the name, spec.subdomain, spec.product or the
  /// listed message (the Ready condition's message when it is not True, else status.lastError).
  std::string text;
  FleetOrder order;
};

/// `GET /api/v1/summary`: counts over every listed workspace, in one pass over memory.
struct FleetSummary {
  std::uint64_t resource_version = 0;  ///< see FleetView::ResourceVersion
  std::size_t total = 0;
  std::map<std::string, std::size_t> by_phase;  ///< every phase of docs/architecture.md, 0 when none
  std::map<std::string, std::size_t> by_product;
  std::map<std::string, std::size_t> by_mode;  ///< "shared" and "dedicated", 0 when none
};

/// `{"resourceVersion","total","byPhase","byProduct","byMode"}`.
std::string FleetSummaryJson(const FleetSummary& summary);

struct FleetPage {
  std::string json;  ///< `{"items":[...],"metadata":{"continue"?,"remainingItemCount"?}}`
  std::size_t items = 0;
  std::string continue_token;  ///< empty on the last page
  std::size_t remaining = 0;   ///< matching items after this page
};

/// Thread-safe: List and Get take a shared lock, writers an exclusive one for one entry.
class FleetView final : public WorkspaceObserver {
 public:
  /// Told after a write changed listed objects: the ResourceVersion it made and the names whose
  /// object was added, removed or rendered differently. Called on the writer's thread outside
  /// the view's lock; it must not block (the live stream's hub records and wakes its timer).
  /// Writers on two threads may report out of version order: keep the highest version seen.
  using ChangeListener =
      std::function<void(std::uint64_t resource_version, const std::vector<std::string>& names)>;

  /// `overrides` (may be nullptr) is read when an entry is rendered.
  explicit FleetView(const Overrides* overrides = nullptr);

  /// Replaces the listener (an empty function: none).
  void SetChangeListener(ChangeListener listener);

  /// Replaces everything with the store's rows and statuses (a new term; a standby's refresh).
  void Reset(const std::vector<StoredWorkspace>& workspaces,
             const std::vector<WorkspaceStatus>& statuses);
  void SpecChanged(const StoredWorkspace& workspace) override;
  void StatusChanged(const WorkspaceStatus& status) override;
  void Removed(const std::string& name) override;
  /// Renders `name` again (its override changed).
  void Refresh(const std::string& name);
  /// A never-validated workspace's source, shown in its annotations (it has no stored row).
  void SetRejectedSource(const std::string& name, const std::string& source);

  /// One page in `query.order`. Stalled `BadContinue` for a continue token this view did not
  /// make, or made for another order. A token is the last (key, name) seen, so pages are
  /// complete and without repeats while nothing changes, whatever the order; a workspace that
  /// moves behind the cursor meanwhile is not seen again on this walk.
  [[nodiscard]] Outcome<FleetPage> List(const FleetQuery& query) const;
  /// The object of `name`; nullopt when unknown.
  [[nodiscard]] std::optional<std::string> Get(const std::string& name) const;
  /// The phase of `name` as listed; empty when unknown.
  [[nodiscard]] std::string Phase(const std::string& name) const;
  [[nodiscard]] std::size_t Size() const;
  [[nodiscard]] FleetSummary Summary() const;
  /// Increases by one each time a write changes listed objects (added, removed, or rendered to
  /// a different text); a write that renders the same text leaves it as it is.
  [[nodiscard]] std::uint64_t ResourceVersion() const;

 private:
  struct Entry {
    std::optional<StoredWorkspace> spec;
    std::optional<WorkspaceStatus> status;
    std::string rejected_source;
    std::map<std::string, std::string> labels;
    std::string phase;
    std::string product;  ///< spec.product; empty for a never-validated manifest
    std::string mode;     ///< spec.mode
    // What filters and sorts need, computed once per render (a page of 10,000 sorts in memory).
    std::size_t severity = kFleetPhases.size();  ///< the phase's index in kFleetPhases
    std::optional<std::int64_t> last_reconcile;  ///< status.lastReconcileTime, Unix seconds
    std::optional<std::int64_t> created;         ///< see FleetSort::kAge
    /// Lower-cased name, spec.subdomain, spec.product and listed message, for `q`.
    std::array<std::string, 4> search;
    /// The override the entry was rendered with (Reset re-renders when it differs).
    std::optional<SuspendOverride> held;
    /// SHA-256 of the object's text (GET), which is rendered again from the above when asked
    /// for (Get), not kept: a write changes listed objects when it changes this. nullopt: not
    /// rendered (not listed).
    std::optional<std::array<char, 32>> digest;
    std::shared_ptr<const std::string> list_json;  ///< the list's item: without status.lastRuns
  };
  /// The object's JSON from its row and status, before any held override.
  [[nodiscard]] static std::string BaseText(const std::string& name, const Entry& entry);
  /// The object's text (GET) of `entry` as it was last rendered (with the override it holds).
  [[nodiscard]] static std::string ObjectText(const std::string& name, const Entry& entry);
  void Render(const std::string& name, Entry& entry) const;
  /// Renders `entry` again under the exclusive lock; true (and the version bumped) when its
  /// object's text changed. `*version` is the version after it.
  bool RenderChanged(const std::string& name, Entry& entry, std::uint64_t* version);
  void Notify(std::uint64_t version, const std::vector<std::string>& names) const;

  const Overrides* overrides_;
  mutable std::shared_mutex mutex_;
  std::map<std::string, Entry> entries_;
  std::uint64_t version_ = 0;  ///< under mutex_
  mutable std::mutex listener_mutex_;
  std::shared_ptr<const ChangeListener> listener_;  ///< under listener_mutex_
};

/// The continue token after `name` (opaque to clients: hex of the name) and back.
std::string EncodeContinue(const std::string& name);
std::optional<std::string> DecodeContinue(const std::string& token);

}  // namespace tmaster::controller
