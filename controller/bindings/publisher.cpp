#include "controller/bindings/publisher.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <thread>

namespace tmaster::bindings {
namespace {

// The inode a descriptor and a name (under `dir`, or absolute with dir AT_FDCWD) both point at:
// a cached descriptor of a folder removed or replaced by hand no longer matches its name.
bool SameFolder(int fd, int dir, const std::string& name) {
  struct stat by_fd {};
  struct stat by_name {};
  return ::fstat(fd, &by_fd) == 0 &&
         ::fstatat(dir, name.c_str(), &by_name, AT_SYMLINK_NOFOLLOW) == 0 &&
         by_fd.st_ino == by_name.st_ino && by_fd.st_dev == by_name.st_dev;
}

bool SamePooler(const TenantFacts& a, const TenantFacts& b) {
  return a.database == b.database && a.server_address == b.server_address &&
         a.username == b.username && a.verifier == b.verifier && a.suspended == b.suspended;
}

}  // namespace

bool SameFacts(const TenantFacts& a, const TenantFacts& b) {
  return a.product == b.product && a.workspace == b.workspace && a.cluster == b.cluster &&
         a.runtime_address == b.runtime_address && a.server_address == b.server_address &&
         a.database == b.database && a.username == b.username &&
         a.password.Reveal() == b.password.Reveal() && a.verifier == b.verifier &&
         a.hosts == b.hosts && a.suspended == b.suspended;
}

struct SharedTenants::Flusher {
  std::mutex mutex;
  std::condition_variable wake;
  bool stop = false;
  bool kicked = false;  ///< a tenant changed what the pooler sees
  std::thread thread;
};

void SharedTenants::KickFlusher() {
  if (!flusher_) return;
  {
    std::lock_guard<std::mutex> lock(flusher_->mutex);
    flusher_->kicked = true;
  }
  flusher_->wake.notify_all();
}

SharedTenants::SharedTenants(PublisherOptions options) : options_(std::move(options)) {
  // Versions start from the clock, so a runtime's resourceVersion from before a restart never
  // equals a new one by chance (it is answered at once, with the current list).
  initial_version_ = static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count());
  next_version_ = initial_version_;
  // With a hold, nothing is written before a term begins: a standby never empties its pooler.
  pooler_gated_ = options_.pooler_hold.has_value();
}

SharedTenants::~SharedTenants() {
  Close();
  if (flusher_) {
    {
      std::lock_guard<std::mutex> lock(flusher_->mutex);
      flusher_->stop = true;
    }
    flusher_->wake.notify_all();
    if (flusher_->thread.joinable()) flusher_->thread.join();
  }
}

const Endpoint& SharedTenants::AddressOf(const TenantFacts& facts) const {
  return AddressFor(facts, options_.pooler_listen);
}

Outcome<SafeDir*> SharedTenants::ProductDir(const std::string& product) {
  std::lock_guard<std::mutex> lock(dirs_mutex_);
  if (root_ && !SameFolder(root_->fd(), AT_FDCWD, root_->path().string())) {
    root_.reset();
    products_.clear();
  }
  if (!root_) {
    Outcome<SafeDir> root = SafeDir::Open(*options_.bindings_dir, options_.bindings_access, true);
    if (!root) return root.failure();
    root->RemoveTemporaries();
    root_.emplace(std::move(root).value());
  }
  auto found = products_.find(product);
  if (found != products_.end() && !SameFolder(found->second->fd(), root_->fd(), product)) {
    products_.erase(found);
    found = products_.end();
  }
  if (found == products_.end()) {
    Outcome<SafeDir> dir = root_->Sub(product, /*create=*/true);
    if (!dir) return dir.failure();
    dir->RemoveTemporaries();
    found = products_.emplace(product, std::make_unique<SafeDir>(std::move(dir).value())).first;
  }
  return found->second.get();
}

void SharedTenants::Bump(const std::string& product) {
  versions_[product] = ++next_version_;
  changed_.notify_all();
}

void SharedTenants::Seen(const std::string& workspace) {
  if (pooler_gated_) seen_.insert(workspace);
}

void SharedTenants::Retire(const TenantFacts& facts) {
  if (options_.pooler == nullptr) return;
  TenantFacts kept = facts;
  kept.suspended = true;
  kept.password = Secret();
  kept.verifier.clear();
  retired_.insert_or_assign(
      facts.database, Retired{std::move(kept), std::chrono::steady_clock::now() +
                                                   options_.pooler_retire_after});
}

bool SharedTenants::PoolerGateOpen() {
  if (!pooler_gated_) return true;
  if (!term_began_) return false;  // no term yet (a standby)
  const bool all_in = expected_ && std::includes(seen_.begin(), seen_.end(), expected_->begin(),
                                                  expected_->end());
  const bool held_long_enough =
      std::chrono::steady_clock::now() - *term_began_ >= *options_.pooler_hold;
  if (!all_in && !held_long_enough) return false;
  if (!all_in) {
    std::size_t missing = 0;
    if (expected_) {
      for (const std::string& name : *expected_) missing += seen_.count(name) == 0 ? 1U : 0U;
    }
    spdlog::warn(
        "pooler: writing PgBouncer's files {} ms into the term with {} declared shared tenant(s) "
        "not yet reconciled{}; they reach the pooler when they are",
        options_.pooler_hold->count(), missing, expected_ ? "" : " (the sources not yet read)");
  }
  pooler_gated_ = false;
  expected_.reset();
  seen_.clear();
  return true;
}

Outcome<bool> SharedTenants::Publish(const TenantFacts& facts) {
  std::optional<DirStamp> known;
  bool same = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = tenants_.find(facts.workspace);
    if (found != tenants_.end() && SameFacts(found->second.facts, facts)) {
      same = true;
      known = found->second.stamp;
    }
  }
  bool written = false;
  std::optional<DirStamp> stamp;
  if (options_.bindings_dir) {
    Outcome<SafeDir*> dir = ProductDir(facts.product);
    if (!dir) return dir.failure();
    Outcome<SafeDir::Replaced> replaced = (*dir)->ReplaceDir(
        facts.workspace, RenderBinding(facts, options_.pooler_listen), known ? &*known : nullptr);
    if (!replaced) return replaced.failure();
    written = replaced->written;
    stamp = replaced->stamp;
  }
  std::lock_guard<std::mutex> lock(mutex_);
  Seen(facts.workspace);
  retired_.erase(facts.database);  // served again (or by another workspace): live
  if (written) ++counters_.bindings_written;
  if (on_disk_ && options_.bindings_dir) (*on_disk_)[facts.workspace] = facts.product;
  auto found = tenants_.find(facts.workspace);
  if (found == tenants_.end()) {
    tenants_.emplace(facts.workspace, Published{facts, stamp});
    pooler_dirty_ = true;
    KickFlusher();
    Bump(facts.product);
    return written;
  }
  if (!same) {
    if (!SamePooler(found->second.facts, facts)) {
      pooler_dirty_ = true;
      KickFlusher();
    }
    if (found->second.facts.product != facts.product) Bump(found->second.facts.product);
    found->second.facts = facts;
    Bump(facts.product);
  }
  found->second.stamp = stamp;
  return written;
}

Outcome<std::optional<std::string>> SharedTenants::FolderOf(const std::string& workspace) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (on_disk_) {
      const auto found = on_disk_->find(workspace);
      if (found == on_disk_->end()) return std::optional<std::string>();
      return std::optional<std::string>(found->second);
    }
  }
  // The first of this term: list every product's folder once.
  Outcome<SafeDir> root = SafeDir::Open(*options_.bindings_dir, options_.bindings_access, true);
  if (!root) return root.failure();
  Outcome<std::vector<std::string>> products = root->ListDirs();
  if (!products) return products.failure();
  std::map<std::string, std::string> listed;
  for (const std::string& product : *products) {
    Outcome<SafeDir*> dir = ProductDir(product);
    if (!dir) return dir.failure();
    Outcome<std::vector<std::string>> workspaces = (*dir)->ListDirs();
    if (!workspaces) return workspaces.failure();
    for (const std::string& name : *workspaces) listed.emplace(name, product);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [name, published] : tenants_) listed[name] = published.facts.product;
  on_disk_ = std::move(listed);
  const auto found = on_disk_->find(workspace);
  if (found == on_disk_->end()) return std::optional<std::string>();
  return std::optional<std::string>(found->second);
}

Outcome<bool> SharedTenants::Remove(const std::string& workspace) {
  bool removed = false;
  if (options_.bindings_dir && IsChildName(workspace)) {
    Outcome<std::optional<std::string>> product = FolderOf(workspace);
    if (!product) return product.failure();
    if (*product) {
      Outcome<SafeDir*> dir = ProductDir(**product);
      if (!dir) return dir.failure();
      Outcome<bool> gone = (*dir)->RemoveDir(workspace);
      if (!gone) return gone.failure();
      removed = *gone;
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  Seen(workspace);
  if (on_disk_) on_disk_->erase(workspace);
  if (removed) ++counters_.bindings_removed;
  auto found = tenants_.find(workspace);
  if (found != tenants_.end()) {
    Bump(found->second.facts.product);
    Retire(found->second.facts);
    tenants_.erase(found);
    pooler_dirty_ = true;
    KickFlusher();
    removed = true;
  }
  return removed;
}

Outcome<std::vector<std::string>> SharedTenants::Sweep(const std::set<std::string>& declared) {
  std::vector<std::string> removed;
  if (options_.bindings_dir) {
    Outcome<SafeDir> root = SafeDir::Open(*options_.bindings_dir, options_.bindings_access, true);
    if (!root) return root.failure();
    Outcome<std::vector<std::string>> products = root->ListDirs();
    if (!products) return products.failure();
    for (const std::string& product : *products) {
      Outcome<SafeDir*> dir = ProductDir(product);
      if (!dir) return dir.failure();
      Outcome<std::vector<std::string>> workspaces = (*dir)->ListDirs();
      if (!workspaces) return workspaces.failure();
      for (const std::string& workspace : *workspaces) {
        if (declared.count(workspace) != 0) continue;
        Outcome<bool> gone = (*dir)->RemoveDir(workspace);
        if (!gone) return gone.failure();
        if (*gone) removed.push_back(workspace);
      }
    }
  }
  std::lock_guard<std::mutex> lock(mutex_);
  counters_.bindings_removed += removed.size();
  if (on_disk_) {
    for (const std::string& name : removed) on_disk_->erase(name);
  }
  for (auto it = tenants_.begin(); it != tenants_.end();) {
    if (declared.count(it->first) == 0) {
      Bump(it->second.facts.product);
      Retire(it->second.facts);
      it = tenants_.erase(it);
      pooler_dirty_ = true;
      KickFlusher();
    } else {
      ++it;
    }
  }
  return removed;
}

void SharedTenants::ExpectTenants(std::set<std::string> workspaces) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!pooler_gated_) return;
  expected_ = std::move(workspaces);
  KickFlusher();
}

Status SharedTenants::FlushPooler() {
  if (options_.pooler == nullptr) return Done{};
  std::lock_guard<std::mutex> flushing(flush_mutex_);
  std::vector<TenantFacts> tenants;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    for (auto it = retired_.begin(); it != retired_.end();) {
      if (it->second.until > now) {
        ++it;
        continue;
      }
      it = retired_.erase(it);
      pooler_dirty_ = true;
    }
    if (!pooler_dirty_ || !PoolerGateOpen()) return Done{};
    pooler_dirty_ = false;
    tenants.reserve(tenants_.size() + retired_.size());
    for (const auto& [name, published] : tenants_) tenants.push_back(published.facts);
    if (!retired_.empty()) {
      std::set<std::string> live;
      for (const TenantFacts& facts : tenants) live.insert(facts.database);
      for (const auto& [database, retired] : retired_) {
        if (live.count(database) == 0) tenants.push_back(retired.facts);
      }
    }
  }
  Outcome<bool> written = options_.pooler->Write(tenants);
  std::lock_guard<std::mutex> lock(mutex_);
  if (!written) {
    pooler_dirty_ = true;  // tried again at the next flush
    return written.failure();
  }
  if (*written) ++counters_.pooler_writes;
  return Done{};
}

void SharedTenants::StartFlusher(std::chrono::milliseconds interval) {
  if (flusher_ || options_.pooler == nullptr) return;
  flusher_ = std::make_unique<Flusher>();
  flusher_->thread = std::thread([this, interval] {
    std::string last_error;
    std::unique_lock<std::mutex> lock(flusher_->mutex);
    while (!flusher_->stop) {
      // A change is flushed at once; a failed flush is retried every interval.
      flusher_->wake.wait_for(lock, interval,
                              [this] { return flusher_->stop || flusher_->kicked; });
      if (flusher_->stop) break;
      flusher_->kicked = false;
      lock.unlock();
      Status flushed = FlushPooler();
      if (!flushed && flushed.failure().message != last_error) {
        last_error = flushed.failure().message;
        spdlog::warn("pooler: {} (retried)", last_error);
      } else if (flushed && !last_error.empty()) {
        spdlog::info("pooler: files written again");
        last_error.clear();
      }
      lock.lock();
      // At most one flush per interval: the changes of a burst (a first convergence of 10,000
      // tenants) wait here and go out together.
      flusher_->wake.wait_for(lock, interval, [this] { return flusher_->stop; });
    }
  });
}

TenantsView SharedTenants::Tenants(const std::string& product) const {
  std::lock_guard<std::mutex> lock(mutex_);
  TenantsView view;
  const auto version = versions_.find(product);
  view.resource_version = version != versions_.end() ? version->second : initial_version_;
  for (const auto& [name, published] : tenants_) {
    if (published.facts.product == product) view.items.push_back(published.facts);
  }
  return view;
}

bool SharedTenants::WaitForChange(const std::string& product, std::uint64_t seen,
                                  std::chrono::steady_clock::time_point deadline) const {
  std::unique_lock<std::mutex> lock(mutex_);
  auto current = [&] {
    const auto version = versions_.find(product);
    return version != versions_.end() ? version->second : initial_version_;
  };
  changed_.wait_until(lock, deadline, [&] { return closed_ || current() != seen; });
  return current() != seen;
}

void SharedTenants::Close() {
  std::lock_guard<std::mutex> lock(mutex_);
  closed_ = true;
  changed_.notify_all();
}

PublisherCounters SharedTenants::counters() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return counters_;
}

void SharedTenants::Reset() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::set<std::string> products;
  for (const auto& [name, published] : tenants_) products.insert(published.facts.product);
  tenants_.clear();
  on_disk_.reset();  // another replica may have written or removed folders meanwhile
  for (const std::string& product : products) Bump(product);
  pooler_dirty_ = true;
  if (options_.pooler_hold) {
    pooler_gated_ = true;
    term_began_ = std::chrono::steady_clock::now();
    expected_.reset();
    seen_.clear();
  }
}

}  // namespace tmaster::bindings
