#include "controller/daemon/fleet_view.hpp"

#include <boost/json.hpp>

#include "common/time.hpp"

#include <mutex>

namespace tmaster::controller {
namespace json = boost::json;
namespace {

// The phases a summary always names (docs/architecture.md#status-and-events).
constexpr const char* kPhases[] = {"Pending",   "Progressing", "Ready",   "Degraded",
                                   "Stalled",   "Suspended",   "Deleting"};

std::string StringAt(const json::object& object, std::string_view key) {
  const json::value* found = object.if_contains(key);
  return found != nullptr && found->is_string() ? std::string(found->as_string()) : std::string();
}

std::map<std::string, std::string> LabelsOf(const json::value& doc) {
  std::map<std::string, std::string> labels;
  if (!doc.is_object()) return labels;
  const json::value* metadata = doc.as_object().if_contains("metadata");
  if (metadata == nullptr || !metadata->is_object()) return labels;
  const json::value* found = metadata->as_object().if_contains("labels");
  if (found == nullptr || !found->is_object()) return labels;
  for (const auto& [key, value] : found->as_object()) {
    if (value.is_string()) labels.emplace(key, value.as_string().c_str());
  }
  return labels;
}

bool SameText(const std::shared_ptr<const std::string>& a,
              const std::shared_ptr<const std::string>& b) {
  if (a == b) return true;
  return a != nullptr && b != nullptr && *a == *b;
}

bool Matches(const std::map<std::string, std::string>& labels, const LabelSelector& selector) {
  for (const LabelRequirement& requirement : selector) {
    const auto it = labels.find(requirement.key);
    const bool equal = it != labels.end() && it->second == requirement.value;
    if (equal != requirement.equal) return false;
  }
  return true;
}

}  // namespace

std::string EncodeContinue(const std::string& name) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string token;
  token.reserve(name.size() * 2);
  for (const char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    token.push_back(kHex[c >> 4]);
    token.push_back(kHex[c & 0xf]);
  }
  return token;
}

std::optional<std::string> DecodeContinue(const std::string& token) {
  if (token.empty() || token.size() % 2 != 0) return std::nullopt;
  const auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string name;
  name.reserve(token.size() / 2);
  for (std::size_t i = 0; i < token.size(); i += 2) {
    const int high = digit(token[i]);
    const int low = digit(token[i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    name.push_back(static_cast<char>(high * 16 + low));
  }
  return name;
}

FleetView::FleetView(const Overrides* overrides) : overrides_(overrides) {}

void FleetView::Render(const std::string& name, Entry& entry) const {
  StoredWorkspace shown;
  if (entry.spec) {
    shown = *entry.spec;
  } else {
    shown.name = name;
    shown.source = entry.rejected_source;
  }
  const WorkspaceStatus* status = entry.status ? &*entry.status : nullptr;
  std::string text = WorkspaceJson(shown, status);
  if (shown.deleting_since) {
    entry.phase = "Deleting";
  } else {
    entry.phase = status != nullptr ? status->phase : "Pending";
  }
  entry.labels.clear();
  entry.product.clear();
  entry.mode.clear();
  if (entry.spec) {
    boost::system::error_code parse_error;
    const json::value spec_doc = json::parse(entry.spec->spec_json, parse_error);
    if (!parse_error) {
      entry.labels = LabelsOf(spec_doc);
      const json::value* spec = spec_doc.is_object() ? spec_doc.as_object().if_contains("spec") : nullptr;
      if (spec != nullptr && spec->is_object()) {
        entry.product = StringAt(spec->as_object(), "product");
        entry.mode = StringAt(spec->as_object(), "mode");
      }
    }
  }
  std::optional<SuspendOverride> held;
  if (overrides_ != nullptr) held = overrides_->Get(name);
  boost::system::error_code ec;
  json::value doc = json::parse(text, ec);
  if (!ec && doc.is_object()) {
    json::value& status_value = doc.as_object()["status"];
    if (!status_value.is_object()) status_value = json::object();
    json::object& status_object = status_value.as_object();
    if (held) {
      status_object["override"] = {{"suspend", held->suspend},
                                   {"by", held->by},
                                   {"at", FormatRfc3339Utc(held->at_unix)}};
      text = json::serialize(doc);
    }
    // The list's item leaves out the run history (GET of the workspace has it): a page of 100
    // stays under 100 KB (docs/api.md).
    status_object.erase("lastRuns");
    entry.list_json = std::make_shared<const std::string>(json::serialize(doc));
  } else {
    entry.list_json = std::make_shared<const std::string>(text);
  }
  entry.json = std::make_shared<const std::string>(std::move(text));
}

bool FleetView::RenderChanged(const std::string& name, Entry& entry, std::uint64_t* version) {
  const std::shared_ptr<const std::string> before = entry.json;
  Render(name, entry);
  if (SameText(before, entry.json)) return false;
  *version = ++version_;
  return true;
}

void FleetView::SetChangeListener(ChangeListener listener) {
  std::shared_ptr<const ChangeListener> held;
  if (listener) held = std::make_shared<const ChangeListener>(std::move(listener));
  const std::lock_guard lock(listener_mutex_);
  listener_ = std::move(held);
}

void FleetView::Notify(std::uint64_t version, const std::vector<std::string>& names) const {
  std::shared_ptr<const ChangeListener> listener;
  {
    const std::lock_guard lock(listener_mutex_);
    listener = listener_;
  }
  if (listener) (*listener)(version, names);
}

void FleetView::Reset(const std::vector<StoredWorkspace>& workspaces,
                      const std::vector<WorkspaceStatus>& statuses) {
  std::map<std::string, Entry> entries;
  for (const StoredWorkspace& workspace : workspaces) entries[workspace.name].spec = workspace;
  for (const WorkspaceStatus& status : statuses) entries[status.name].status = status;
  {
    // Keep what the running daemon learnt of never-validated documents' sources.
    const std::shared_lock lock(mutex_);
    for (auto& [name, entry] : entries) {
      if (auto it = entries_.find(name); it != entries_.end()) {
        entry.rejected_source = it->second.rejected_source;
      }
    }
  }
  for (auto& [name, entry] : entries) Render(name, entry);
  // Only what differs is reported (a standby reloads every couple of seconds): both maps are in
  // name order, walked side by side.
  std::vector<std::string> changed;
  std::uint64_t version = 0;
  {
    const std::unique_lock lock(mutex_);
    auto old = entries_.begin();
    auto now = entries.begin();
    while (old != entries_.end() || now != entries.end()) {
      if (now == entries.end() || (old != entries_.end() && old->first < now->first)) {
        if (old->second.json) changed.push_back(old->first);  // removed
        ++old;
      } else if (old == entries_.end() || now->first < old->first) {
        if (now->second.json) changed.push_back(now->first);  // added
        ++now;
      } else {
        if (!SameText(old->second.json, now->second.json)) changed.push_back(now->first);
        ++old;
        ++now;
      }
    }
    entries_ = std::move(entries);
    if (!changed.empty()) version = ++version_;
  }
  if (!changed.empty()) Notify(version, changed);
}

void FleetView::SpecChanged(const StoredWorkspace& workspace) {
  std::uint64_t version = 0;
  bool changed = false;
  {
    const std::unique_lock lock(mutex_);
    Entry& entry = entries_[workspace.name];
    entry.spec = workspace;
    changed = RenderChanged(workspace.name, entry, &version);
  }
  if (changed) Notify(version, {workspace.name});
}

void FleetView::StatusChanged(const WorkspaceStatus& status) {
  std::uint64_t version = 0;
  bool changed = false;
  {
    const std::unique_lock lock(mutex_);
    Entry& entry = entries_[status.name];
    entry.status = status;
    changed = RenderChanged(status.name, entry, &version);
  }
  if (changed) Notify(version, {status.name});
}

void FleetView::Removed(const std::string& name) {
  std::uint64_t version = 0;
  {
    const std::unique_lock lock(mutex_);
    auto it = entries_.find(name);
    if (it == entries_.end()) return;
    const bool listed = it->second.json != nullptr;
    entries_.erase(it);
    if (!listed) return;
    version = ++version_;
  }
  Notify(version, {name});
}

void FleetView::Refresh(const std::string& name) {
  std::uint64_t version = 0;
  bool changed = false;
  {
    const std::unique_lock lock(mutex_);
    if (auto it = entries_.find(name); it != entries_.end()) {
      changed = RenderChanged(name, it->second, &version);
    }
  }
  if (changed) Notify(version, {name});
}

void FleetView::SetRejectedSource(const std::string& name, const std::string& source) {
  std::uint64_t version = 0;
  bool changed = false;
  {
    const std::unique_lock lock(mutex_);
    Entry& entry = entries_[name];
    if (entry.rejected_source == source && entry.json) return;
    entry.rejected_source = source;
    changed = RenderChanged(name, entry, &version);
  }
  if (changed) Notify(version, {name});
}

Outcome<FleetPage> FleetView::List(const FleetQuery& query) const {
  std::optional<std::string> after;
  if (!query.continue_token.empty()) {
    after = DecodeContinue(query.continue_token);
    if (!after) {
      return Failure::Stalled(
          "BadContinue", "continue token " + query.continue_token + " was not made by this server");
    }
  }
  std::vector<std::shared_ptr<const std::string>> items;
  FleetPage page;
  std::string last;
  {
    const std::shared_lock lock(mutex_);
    auto it = after ? entries_.upper_bound(*after) : entries_.begin();
    const bool filtered = !query.selector.empty() || !query.phase.empty();
    const auto matches = [&](const Entry& entry) {
      if (!entry.json) return false;
      if (!query.phase.empty() && entry.phase != query.phase) return false;
      return Matches(entry.labels, query.selector);
    };
    if (query.limit) items.reserve(*query.limit);
    for (; it != entries_.end(); ++it) {
      if (!matches(it->second)) continue;
      if (query.limit && items.size() == *query.limit) break;
      items.push_back(it->second.list_json);
      last = it->first;
    }
    if (it != entries_.end()) {
      if (!filtered) {
        page.remaining = static_cast<std::size_t>(std::distance(it, entries_.end()));
      } else {
        for (; it != entries_.end(); ++it) page.remaining += matches(it->second) ? 1U : 0U;
      }
    }
  }
  std::size_t size = 64;
  for (const auto& item : items) size += item->size() + 1;
  page.json.reserve(size);
  page.json += R"({"items":[)";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) page.json += ',';
    page.json += *items[i];
  }
  page.json += R"(],"metadata":{)";
  if (page.remaining > 0) {
    page.continue_token = EncodeContinue(last);
    page.json += R"("continue":")" + page.continue_token + R"(","remainingItemCount":)" +
                 std::to_string(page.remaining);
  }
  page.json += "}}";
  page.items = items.size();
  return page;
}

std::optional<std::string> FleetView::Get(const std::string& name) const {
  const std::shared_lock lock(mutex_);
  auto it = entries_.find(name);
  if (it == entries_.end() || !it->second.json) return std::nullopt;
  return *it->second.json;
}

std::string FleetView::Phase(const std::string& name) const {
  const std::shared_lock lock(mutex_);
  auto it = entries_.find(name);
  return it == entries_.end() ? std::string() : it->second.phase;
}

std::size_t FleetView::Size() const {
  const std::shared_lock lock(mutex_);
  return entries_.size();
}

FleetSummary FleetView::Summary() const {
  FleetSummary summary;
  for (const char* phase : kPhases) summary.by_phase[phase] = 0;
  summary.by_mode["shared"] = 0;
  summary.by_mode["dedicated"] = 0;
  const std::shared_lock lock(mutex_);
  summary.resource_version = version_;
  for (const auto& [name, entry] : entries_) {
    if (!entry.json) continue;
    ++summary.total;
    ++summary.by_phase[entry.phase];
    if (!entry.product.empty()) ++summary.by_product[entry.product];
    if (!entry.mode.empty()) ++summary.by_mode[entry.mode];
  }
  return summary;
}

std::uint64_t FleetView::ResourceVersion() const {
  const std::shared_lock lock(mutex_);
  return version_;
}

std::string FleetSummaryJson(const FleetSummary& summary) {
  const auto counts = [](const std::map<std::string, std::size_t>& by) {
    json::object object;
    for (const auto& [key, count] : by) object[key] = count;
    return object;
  };
  return json::serialize(json::object{{"resourceVersion", summary.resource_version},
                                      {"total", summary.total},
                                      {"byPhase", counts(summary.by_phase)},
                                      {"byProduct", counts(summary.by_product)},
                                      {"byMode", counts(summary.by_mode)}});
}

}  // namespace tmaster::controller
