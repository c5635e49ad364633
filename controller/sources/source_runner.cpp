#include "controller/sources/source_runner.hpp"

#include <spdlog/spdlog.h>

#include "common/scrub.hpp"
#include "common/time.hpp"
#include "controller/runtime/backoff.hpp"
#include "controller/runtime/deletion_guard.hpp"

namespace tmaster::controller {

using namespace std::chrono_literals;

SourceRunner::SourceRunner(Source& source, Sync& sync, Store& store, Metrics& metrics,
                           Random& random, std::function<void(const std::string&)> enqueue)
    : source_(source),
      sync_(sync),
      store_(store),
      metrics_(metrics),
      random_(random),
      enqueue_(std::move(enqueue)) {}

SourceRunner::~SourceRunner() {
  Stop();
}

void SourceRunner::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void SourceRunner::Stop() {
  stopping_ = true;
  source_.Interrupt();
  if (thread_.joinable()) thread_.join();
}

SourceHealth SourceRunner::Health() const {
  const std::lock_guard lock(mutex_);
  return health_;
}

void SourceRunner::Loop() {
  Duration retry = 1s;
  while (!stopping_) {
    const bool ok = SyncOnce();
    Duration wait = retry;
    if (ok) {
      retry = 1s;
      wait = source_.PollInterval(random_);
    } else {
      retry = std::min<Duration>(retry * 2, std::max<Duration>(source_.RetryCap(), 1s));
      wait = Jittered(wait, 0.1, random_);
    }
    if (stopping_) return;
    source_.WaitForChange(wait);
  }
}

bool SourceRunner::SyncOnce() {
  // At the revision last applied, a healthy source has nothing new; an unhealthy one is read
  // again (its documents may parse differently now, or the guard may allow it).
  const std::string last = Health().healthy ? applied_revision_ : std::string();
  Outcome<SourceRead> read = source_.Read(last);
  if (!read) {
    // Never "no manifests": every stored workspace stays as it is.
    spdlog::warn("source {}: {}", source_.Name(), read.failure().message);
    PutStatus(false, read.failure().reason, read.failure().message, false);
    return false;
  }
  if (read->unchanged) return true;
  if (!read->revision.empty()) applied_revision_ = read->revision;
  std::vector<std::string> to_queue;
  Outcome<SyncVerdict> verdict = sync_.Apply(source_.Name(), read->revision, read->fleet, to_queue);
  // The source's status first, then the work: a workspace is never Ready before its source
  // says it was synced.
  if (!verdict) {
    spdlog::warn("source {}: store: {}", source_.Name(), verdict.failure().message);
    PutStatus(false, verdict.failure().reason, verdict.failure().message, false);
  } else {
    PutStatus(verdict->ready, verdict->reason, verdict->message,
              verdict->ready || verdict->reason == kDeletionGuardReason);
    if (!verdict->ready) {
      spdlog::warn("source {}: {}: {}", source_.Name(), verdict->reason, verdict->message);
    }
  }
  for (const std::string& name : to_queue) enqueue_(name);
  return verdict.ok();
}

void SourceRunner::PutStatus(bool ready, const std::string& reason, const std::string& message,
                             bool synced) {
  const std::int64_t now = UnixNow();
  SourceStatus status;
  status.name = source_.Name();
  status.kind = source_.Kind();
  status.revision = applied_revision_;
  status.ready = ready;
  status.reason = reason;
  status.message = ScrubProcessSecrets(message);  // it is stored, then served
  status.last_attempt_unix = now;
  if (synced) metrics_.SetSourceLastSync(status.name, static_cast<double>(now));
  {
    const std::lock_guard lock(mutex_);
    if (synced) last_sync_unix_ = now;
    status.last_sync_unix = last_sync_unix_;
    health_.problem = ready ? "" : reason + ": " + message;
    health_.healthy = ready;
    health_.synced_once = true;
  }
  if (Outcome<Done> put = store_.PutSourceStatus(status); !put) {
    spdlog::warn("store: source {} status: {}", status.name, put.failure().message);
  }
}

}  // namespace tmaster::controller
