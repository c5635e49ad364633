#include "controller/daemon/fleet_view.hpp"

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <mutex>
#include <utility>

#include "common/crypto.hpp"
#include "common/text.hpp"
#include "common/time.hpp"

namespace tmaster::controller {
namespace json = boost::json;
namespace {

constexpr std::array<std::pair<FleetSort, std::string_view>, 7> kSortKeys = {{
    {FleetSort::kName, "name"},
    {FleetSort::kStuck, "stuck"},
    {FleetSort::kPhase, "phase"},
    {FleetSort::kProduct, "product"},
    {FleetSort::kMode, "mode"},
    {FleetSort::kLastReconcile, "lastReconcile"},
    {FleetSort::kAge, "age"},
}};

// The prefix of a continue token made for an order other than name, A to Z (whose tokens are
// the hex of the last name, as tenantctl has always received them).
constexpr std::string_view kOrderedToken = "s1.";

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

const json::object* ObjectAt(const json::object& object, std::string_view key) {
  const json::value* found = object.if_contains(key);
  return found != nullptr ? found->if_object() : nullptr;
}

std::optional<std::int64_t> TimeAt(const json::object* object, std::string_view key) {
  if (object == nullptr) return std::nullopt;
  const json::value* found = object->if_contains(key);
  if (found == nullptr || !found->is_string()) return std::nullopt;
  return ParseRfc3339Seconds(found->get_string());
}

// The message a list shows for a workspace: the Ready condition's when it is not True, else the
// last error (what `tenantctl get workspaces -o wide` shows).
std::string ListedMessage(const json::object* status) {
  if (status == nullptr) return {};
  if (const json::value* conditions = status->if_contains("conditions")) {
    if (const json::array* array = conditions->if_array()) {
      for (const json::value& condition : *array) {
        const json::object* object = condition.if_object();
        if (object == nullptr || StringAt(*object, "type") != "Ready") continue;
        if (StringAt(*object, "status") != "True") return StringAt(*object, "message");
        break;
      }
    }
  }
  return StringAt(*status, "lastError");
}

// When the workspace came to be, as `tenantctl get workspaces` reckons its AGE from the same list
// item (controller/cli/format.hpp WorkspaceSince): metadata.creationTimestamp, else the earliest
// time its conditions record.
std::optional<std::int64_t> CreatedOf(const json::object& object, const json::object* status) {
  if (auto created = TimeAt(ObjectAt(object, "metadata"), "creationTimestamp")) return created;
  std::optional<std::int64_t> earliest;
  const json::value* conditions = status != nullptr ? status->if_contains("conditions") : nullptr;
  if (conditions != nullptr && conditions->is_array()) {
    for (const json::value& condition : conditions->get_array()) {
      const auto at = TimeAt(condition.if_object(), "lastTransitionTime");
      if (at && (!earliest || *at < *earliest)) earliest = at;
    }
  }
  return earliest;
}

std::string Hex(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size() * 2);
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 0xf]);
  }
  return out;
}

std::optional<std::string> Unhex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  const auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  out.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int high = digit(hex[i]);
    const int low = digit(hex[i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    out.push_back(static_cast<char>(high * 16 + low));
  }
  return out;
}

bool NumericKey(FleetSort sort) {
  return sort == FleetSort::kStuck || sort == FleetSort::kLastReconcile || sort == FleetSort::kAge;
}

// One item's place in an order: its key (absent: `missing`) and its name.
struct Place {
  bool missing = true;
  std::int64_t number = 0;  ///< the key of a numeric sort
  std::string_view text;    ///< the key of a text sort
  std::string_view name;
};

// Whether `a` comes before `b`: the key (descending when asked; a missing key last either way),
// then the name, A to Z. `kName` has no key: the name itself in the order asked.
bool Before(FleetOrder order, const Place& a, const Place& b) {
  if (order.key == FleetSort::kName) return order.descending ? b.name < a.name : a.name < b.name;
  if (a.missing != b.missing) return b.missing;
  if (!a.missing) {
    int compared = 0;
    if (NumericKey(order.key)) {
      compared = a.number < b.number ? -1 : (b.number < a.number ? 1 : 0);
    } else {
      compared = a.text.compare(b.text);
    }
    if (compared != 0) return order.descending ? compared > 0 : compared < 0;
  }
  return a.name < b.name;
}

// The cursor of an ordered token: `s1.` hex(order) `.` (`-` | `k` hex(key)) `.` hex(name).
struct Cursor {
  std::string order;
  bool missing = true;
  std::int64_t number = 0;
  std::string text;
  std::string name;

  [[nodiscard]] Place AsPlace() const { return {missing, number, text, name}; }
};

std::string EncodeCursor(FleetOrder order, const Place& last) {
  std::string token(kOrderedToken);
  token += Hex(FleetOrderText(order));
  token += '.';
  if (last.missing) {
    token += '-';
  } else {
    token += 'k';
    token += Hex(NumericKey(order.key) ? std::to_string(last.number) : std::string(last.text));
  }
  token += '.';
  token += Hex(last.name);
  return token;
}

// nullopt: not an ordered token that parses.
std::optional<Cursor> DecodeCursor(std::string_view token) {
  if (token.substr(0, kOrderedToken.size()) != kOrderedToken) return std::nullopt;
  token.remove_prefix(kOrderedToken.size());
  const std::size_t first = token.find('.');
  const std::size_t second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos) return std::nullopt;
  Cursor cursor;
  const auto order = Unhex(token.substr(0, first));
  const std::string_view key = token.substr(first + 1, second - first - 1);
  const auto name = Unhex(token.substr(second + 1));
  if (!order || !name || name->empty() || key.empty()) return std::nullopt;
  const std::optional<FleetOrder> parsed = ParseFleetOrder(*order);
  if (!parsed) return std::nullopt;
  cursor.order = *order;
  cursor.name = *name;
  if (key == "-") return cursor;
  if (key.front() != 'k') return std::nullopt;
  auto text = Unhex(key.substr(1));
  if (!text) return std::nullopt;
  cursor.missing = false;
  if (NumericKey(parsed->key)) {
    const char* end = text->data() + text->size();
    const auto result = std::from_chars(text->data(), end, cursor.number);
    if (result.ec != std::errc() || result.ptr != end) return std::nullopt;
  } else {
    cursor.text = std::move(*text);
  }
  return cursor;
}

std::array<char, 32> Digest(std::string_view text) {
  const std::string sha = crypto::Sha256(text);
  std::array<char, 32> digest{};
  std::copy_n(sha.begin(), std::min(sha.size(), digest.size()), digest.begin());
  return digest;
}

// `doc` (the object parsed) with `held` as status.override; `status` made an object if it is not.
json::object& WithOverride(json::value& doc, const std::optional<SuspendOverride>& held) {
  json::value& status_value = doc.as_object()["status"];
  if (!status_value.is_object()) status_value = json::object();
  json::object& status_object = status_value.as_object();
  if (held) {
    status_object["override"] = {{"suspend", held->suspend},
                                 {"by", held->by},
                                 {"at", FormatRfc3339Utc(held->at_unix)}};
  }
  return status_object;
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

std::optional<FleetOrder> ParseFleetOrder(std::string_view text) {
  FleetOrder order;
  if (!text.empty() && text.front() == '-') {
    order.descending = true;
    text.remove_prefix(1);
  }
  for (const auto& [key, name] : kSortKeys) {
    if (text != name) continue;
    order.key = key;
    return order;
  }
  return std::nullopt;
}

std::string FleetOrderText(FleetOrder order) {
  std::string text = order.descending ? "-" : "";
  for (const auto& [key, name] : kSortKeys) {
    if (key == order.key) text += name;
  }
  return text;
}

std::string FleetSortKeys() {
  std::string text;
  for (const auto& [key, name] : kSortKeys) {
    if (!text.empty()) text += ", ";
    text += name;
  }
  return text;
}

std::string EncodeContinue(const std::string& name) {
  return Hex(name);
}

std::optional<std::string> DecodeContinue(const std::string& token) {
  if (token.empty()) return std::nullopt;
  return Unhex(token);
}

FleetView::FleetView(const Overrides* overrides) : overrides_(overrides) {}

std::string FleetView::BaseText(const std::string& name, const Entry& entry) {
  const WorkspaceStatus* status = entry.status ? &*entry.status : nullptr;
  if (entry.spec) return WorkspaceJson(*entry.spec, status);
  StoredWorkspace shown;
  shown.name = name;
  shown.source = entry.rejected_source;
  return WorkspaceJson(shown, status);
}

std::string FleetView::ObjectText(const std::string& name, const Entry& entry) {
  std::string text = BaseText(name, entry);
  if (!entry.held) return text;
  boost::system::error_code ec;
  json::value doc = json::parse(text, ec);
  if (ec || !doc.is_object()) return text;
  WithOverride(doc, entry.held);
  return json::serialize(doc);
}

void FleetView::Render(const std::string& name, Entry& entry) const {
  const WorkspaceStatus* status = entry.status ? &*entry.status : nullptr;
  std::string text = BaseText(name, entry);
  if (entry.spec && entry.spec->deleting_since) {
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
  entry.held = held;
  boost::system::error_code ec;
  json::value doc = json::parse(text, ec);
  if (!ec && doc.is_object()) {
    json::object& status_object = WithOverride(doc, held);
    if (held) text = json::serialize(doc);
    // The list's item leaves out the run history (GET of the workspace has it): a page of 100
    // stays under 100 KB (docs/api.md).
    status_object.erase("lastRuns");
    const json::object& object = doc.as_object();
    const json::object* spec = ObjectAt(object, "spec");
    entry.search = {Lower(name), Lower(spec != nullptr ? StringAt(*spec, "subdomain") : ""),
                    Lower(entry.product), Lower(ListedMessage(&status_object))};
    entry.last_reconcile = TimeAt(&status_object, "lastReconcileTime");
    entry.created = CreatedOf(object, &status_object);
    entry.list_json = std::make_shared<const std::string>(json::serialize(doc));
  } else {
    entry.list_json = std::make_shared<const std::string>(text);
    entry.search = {Lower(name), "", Lower(entry.product), ""};
    entry.last_reconcile.reset();
    entry.created.reset();
  }
  entry.severity = kFleetPhases.size();
  for (std::size_t i = 0; i < kFleetPhases.size(); ++i) {
    if (kFleetPhases[i] == entry.phase) entry.severity = i;
  }
  entry.digest = Digest(text);
}

bool FleetView::RenderChanged(const std::string& name, Entry& entry, std::uint64_t* version) {
  const std::optional<std::array<char, 32>> before = entry.digest;
  Render(name, entry);
  if (before == entry.digest) return false;
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
  {
    // An entry whose row, status, rejected source and override are what they were keeps its
    // rendering: a standby reloads every couple of seconds, and rendering 10,000 objects again
    // cost about 150 ms each time (bench/fleet_list_bench.cpp).
    const std::shared_lock lock(mutex_);
    for (auto& [name, entry] : entries) {
      auto it = entries_.find(name);
      if (it != entries_.end() && it->second.digest && it->second.spec == entry.spec &&
          it->second.status == entry.status &&
          (overrides_ == nullptr || overrides_->Get(name) == it->second.held)) {
        entry = it->second;
      } else {
        entry.digest.reset();  // rendered below
      }
    }
  }
  for (auto& [name, entry] : entries) {
    if (!entry.digest) Render(name, entry);
  }
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
        if (old->second.digest) changed.push_back(old->first);  // removed
        ++old;
      } else if (old == entries_.end() || now->first < old->first) {
        if (now->second.digest) changed.push_back(now->first);  // added
        ++now;
      } else {
        if (old->second.digest != now->second.digest) changed.push_back(now->first);
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
    const bool listed = it->second.digest.has_value();
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
    if (entry.rejected_source == source && entry.digest) return;
    entry.rejected_source = source;
    changed = RenderChanged(name, entry, &version);
  }
  if (changed) Notify(version, {name});
}

Outcome<FleetPage> FleetView::List(const FleetQuery& query) const {
  const std::string order_text = FleetOrderText(query.order);
  const bool by_name = query.order.key == FleetSort::kName && !query.order.descending;
  std::optional<std::string> after;  // by name: the last name seen
  std::optional<Cursor> cursor;      // any other order: the last (key, name) seen
  if (!query.continue_token.empty()) {
    std::optional<Cursor> decoded = DecodeCursor(query.continue_token);
    std::string made_for;
    if (decoded) {
      made_for = decoded->order;
    } else if (DecodeContinue(query.continue_token)) {
      made_for = "name";
    } else {
      return Failure::Stalled(
          "BadContinue", "continue token " + query.continue_token + " was not made by this server");
    }
    if (made_for != order_text) {
      return Failure::Stalled("BadContinue", "continue token was made for sort=" + made_for +
                                                 ", not sort=" + order_text +
                                                 ": list again without continue");
    }
    if (by_name) {
      after = DecodeContinue(query.continue_token);
    } else {
      cursor = std::move(decoded);
    }
  }
  std::vector<std::string_view> phases(query.phases.begin(), query.phases.end());
  const std::string text = Lower(query.text);
  const bool filtered = !query.selector.empty() || !phases.empty() ||
                        !query.product.empty() || !query.mode.empty() || !text.empty();
  const auto matches = [&](const Entry& entry) {
    if (!entry.digest) return false;
    if (!phases.empty() && std::find(phases.begin(), phases.end(), entry.phase) == phases.end()) {
      return false;
    }
    if (!query.product.empty() && entry.product != query.product) return false;
    if (!query.mode.empty() && entry.mode != query.mode) return false;
    if (!text.empty() &&
        std::none_of(entry.search.begin(), entry.search.end(), [&](const std::string& field) {
          return field.find(text) != std::string::npos;
        })) {
      return false;
    }
    return Matches(entry.labels, query.selector);
  };
  const auto place = [&](const std::string& name, const Entry& entry) {
    Place at;
    at.name = name;
    switch (query.order.key) {
      case FleetSort::kName: break;
      case FleetSort::kStuck:
        at.missing = entry.severity >= kFleetPhases.size();
        at.number = static_cast<std::int64_t>(entry.severity);
        break;
      case FleetSort::kPhase: at.text = entry.phase; break;
      case FleetSort::kProduct: at.text = entry.product; break;
      case FleetSort::kMode: at.text = entry.mode; break;
      case FleetSort::kLastReconcile:
        at.missing = !entry.last_reconcile;
        at.number = entry.last_reconcile.value_or(0);
        break;
      case FleetSort::kAge:
        at.missing = !entry.created;
        at.number = entry.created.value_or(0);
        break;
    }
    if (query.order.key == FleetSort::kPhase || query.order.key == FleetSort::kProduct ||
        query.order.key == FleetSort::kMode) {
      at.missing = at.text.empty();
    }
    return at;
  };

  std::vector<std::shared_ptr<const std::string>> items;
  FleetPage page;
  std::string last_name;
  {
    const std::shared_lock lock(mutex_);
    if (by_name) {
      auto it = after ? entries_.upper_bound(*after) : entries_.begin();
      if (query.limit) items.reserve(*query.limit);
      for (; it != entries_.end(); ++it) {
        if (!matches(it->second)) continue;
        if (query.limit && items.size() == *query.limit) break;
        items.push_back(it->second.list_json);
        last_name = it->first;
      }
      if (it != entries_.end()) {
        if (!filtered) {
          page.remaining = static_cast<std::size_t>(std::distance(it, entries_.end()));
        } else {
          for (; it != entries_.end(); ++it) page.remaining += matches(it->second) ? 1U : 0U;
        }
      }
    } else {
      // Every match after the cursor, then the first `limit` of them in order: one pass and a
      // partial sort (docs/decisions.md; bench/fleet_list_bench.cpp measures it at 10,000).
      struct Candidate {
        Place at;
        const Entry* entry;
      };
      std::vector<Candidate> candidates;
      candidates.reserve(entries_.size());
      const std::optional<Place> from =
          cursor ? std::optional<Place>(cursor->AsPlace()) : std::nullopt;
      for (const auto& [name, entry] : entries_) {
        if (!matches(entry)) continue;
        Place at = place(name, entry);
        if (from && !Before(query.order, *from, at)) continue;
        candidates.push_back({at, &entry});
      }
      const auto before = [&](const Candidate& a, const Candidate& b) {
        return Before(query.order, a.at, b.at);
      };
      std::size_t count = candidates.size();
      if (query.limit && *query.limit < count) {
        count = *query.limit;
        std::partial_sort(candidates.begin(),
                          candidates.begin() + static_cast<std::ptrdiff_t>(count), candidates.end(),
                          before);
      } else {
        std::sort(candidates.begin(), candidates.end(), before);
      }
      items.reserve(count);
      for (std::size_t i = 0; i < count; ++i) items.push_back(candidates[i].entry->list_json);
      page.remaining = candidates.size() - count;
      if (count > 0 && page.remaining > 0) {
        // Under the lock: the place views the entry's strings.
        page.continue_token = EncodeCursor(query.order, candidates[count - 1].at);
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
    if (by_name) page.continue_token = EncodeContinue(last_name);
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
  if (it == entries_.end() || !it->second.digest) return std::nullopt;
  return ObjectText(name, it->second);
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
  for (const std::string_view phase : kFleetPhases) summary.by_phase[std::string(phase)] = 0;
  summary.by_mode["shared"] = 0;
  summary.by_mode["dedicated"] = 0;
  const std::shared_lock lock(mutex_);
  summary.resource_version = version_;
  for (const auto& [name, entry] : entries_) {
    if (!entry.digest) continue;
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
