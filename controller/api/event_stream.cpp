#include "controller/api/event_stream.hpp"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include <boost/json.hpp>

namespace tmaster::controller {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr std::string_view kSourcesEvent = "event: sources\ndata: {}\n\n";
constexpr std::string_view kKeepalive = ": keepalive\n\n";

std::string HelloText(std::uint64_t version) {
  return "retry: 3000\nevent: hello\ndata: {\"resourceVersion\":" + std::to_string(version) +
         "}\n\n";
}

}  // namespace

std::string FleetEventText(std::uint64_t resource_version, const std::vector<std::string>& names,
                           bool all) {
  boost::json::object data;
  data["resourceVersion"] = resource_version;
  if (all) {
    data["all"] = true;
  } else {
    boost::json::array list;
    list.reserve(names.size());
    for (const std::string& name : names) list.emplace_back(name);
    data["workspaces"] = std::move(list);
  }
  return "event: fleet\ndata: " + boost::json::serialize(data) + "\n\n";
}

struct EventHub::State {
  explicit State(EventHubOptions o) : options(o) {}

  struct Subscriber {
    StreamOutput output;
    StreamCheck check;
    // Serialises send and end: the flusher may hold a snapshot taken before the checker ended
    // this stream, and nothing may be sent after `end` (a CI run caught a fleet message there).
    std::mutex gate{};
    bool ended = false;

    bool Send(const std::shared_ptr<const std::string>& bytes) {
      const std::lock_guard lock(gate);
      if (ended) return true;  // ended already: forgotten by whoever ended it
      return output.send(bytes);
    }
    void End() {
      const std::lock_guard lock(gate);
      if (ended) return;
      ended = true;
      output.end();
    }
  };

  const EventHubOptions options;
  mutable std::mutex mutex;
  std::condition_variable flush_wake;  // something is pending, or stopping
  std::condition_variable check_wake;  // stopping
  bool stopping = false;
  bool started = false;
  std::thread flusher;
  std::thread checker;

  std::uint64_t version = 0;
  std::set<std::string> names;  // changed since the last fleet message (empty when `all`)
  bool all = false;
  bool fleet_pending = false;
  bool sources_pending = false;
  SteadyClock::time_point last_flush{};
  std::uint64_t rendered = 0;

  std::size_t open = 0;  // places held by Stream objects
  std::uint64_t next_id = 0;
  std::map<std::uint64_t, std::shared_ptr<Subscriber>> attached;

  std::function<void()> poll;
  std::chrono::milliseconds poll_every{0};

  // Under `mutex`: wakes the flusher when nothing was pending (a flusher with a deadline needs
  // no wake; this is what keeps a burst of writes to one wake per interval).
  void MarkPending(bool fleet) {
    const bool idle = !fleet_pending && !sources_pending;
    (fleet ? fleet_pending : sources_pending) = true;
    if (idle) flush_wake.notify_one();
  }

  // Sends `bytes` to `subscribers`, outside the lock; forgets those whose connection is gone.
  void Broadcast(
      const std::vector<std::pair<std::uint64_t, std::shared_ptr<Subscriber>>>& subscribers,
      const std::shared_ptr<const std::string>& bytes) {
    std::vector<std::uint64_t> gone;
    for (const auto& [id, subscriber] : subscribers) {
      if (!subscriber->Send(bytes)) gone.push_back(id);
    }
    if (gone.empty()) return;
    const std::lock_guard lock(mutex);
    for (const std::uint64_t id : gone) attached.erase(id);
  }

  std::vector<std::pair<std::uint64_t, std::shared_ptr<Subscriber>>> Snapshot() const {
    return {attached.begin(), attached.end()};
  }

  // The one thread that renders: at most one message per interval, one buffer for all.
  void Flush() {
    std::unique_lock lock(mutex);
    while (!stopping) {
      if (!fleet_pending && !sources_pending) {
        flush_wake.wait(lock);
        continue;
      }
      const SteadyClock::time_point due = last_flush + options.interval;
      if (SteadyClock::now() < due) {
        flush_wake.wait_until(lock, due);
        continue;
      }
      std::string text;
      if (fleet_pending) {
        text = FleetEventText(version, std::vector<std::string>(names.begin(), names.end()), all);
        ++rendered;
      }
      if (sources_pending) {
        text += kSourcesEvent;
        ++rendered;
      }
      names.clear();
      all = false;
      fleet_pending = false;
      sources_pending = false;
      last_flush = SteadyClock::now();
      const auto subscribers = Snapshot();
      lock.unlock();
      Broadcast(subscribers, std::make_shared<const std::string>(std::move(text)));
      lock.lock();
    }
  }

  // The thread that may block: keepalives, each stream's credential checked again, the poll.
  void Check() {
    const auto keepalive = std::make_shared<const std::string>(kKeepalive);
    SteadyClock::time_point next_keepalive = SteadyClock::now() + options.keepalive;
    SteadyClock::time_point next_poll = SteadyClock::now() + poll_every;
    std::unique_lock lock(mutex);
    while (!stopping) {
      const SteadyClock::time_point now = SteadyClock::now();
      if (poll && now >= next_poll) {
        next_poll = now + poll_every;
        if (!attached.empty()) {
          const std::function<void()> call = poll;
          lock.unlock();
          call();
          lock.lock();
        }
        continue;
      }
      if (now >= next_keepalive) {
        next_keepalive = now + options.keepalive;
        const auto subscribers = Snapshot();
        lock.unlock();
        Broadcast(subscribers, keepalive);
        for (const auto& [id, subscriber] : subscribers) {
          if (!subscriber->check || subscriber->check() != StreamVerdict::kEnded) continue;
          subscriber->End();
          const std::lock_guard erase(mutex);
          attached.erase(id);
        }
        lock.lock();
        continue;
      }
      const SteadyClock::time_point until =
          poll ? std::min(next_keepalive, next_poll) : next_keepalive;
      check_wake.wait_until(lock, until);
    }
  }
};

class EventHub::Stream {
 public:
  Stream(std::shared_ptr<State> state, std::uint64_t id, StreamCheck check)
      : state_(std::move(state)), id_(id), check_(std::move(check)) {}
  ~Stream() {
    const std::lock_guard lock(state_->mutex);
    --state_->open;
    state_->attached.erase(id_);
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  [[nodiscard]] std::uint64_t id() const { return id_; }
  [[nodiscard]] const StreamCheck& check() const { return check_; }

 private:
  std::shared_ptr<State> state_;
  std::uint64_t id_;
  StreamCheck check_;
};

EventHub::EventHub(EventHubOptions options) : state_(std::make_shared<State>(options)) {}

EventHub::~EventHub() {
  Stop();
}

void EventHub::FleetChanged(std::uint64_t resource_version, const std::vector<std::string>& names) {
  State& s = *state_;
  const std::lock_guard lock(s.mutex);
  s.version = std::max(s.version, resource_version);
  // Nobody listens: nothing to remember (a stream opened later starts from `hello`).
  if (s.attached.empty() || names.empty()) return;
  if (!s.all) {
    for (const std::string& name : names) {
      s.names.insert(name);
      if (s.names.size() > s.options.max_names) {
        s.all = true;
        s.names.clear();
        break;
      }
    }
  }
  s.MarkPending(true);
}

void EventHub::SourcesChanged() {
  State& s = *state_;
  const std::lock_guard lock(s.mutex);
  if (s.attached.empty()) return;
  s.MarkPending(false);
}

std::uint64_t EventHub::ResourceVersion() const {
  const std::lock_guard lock(state_->mutex);
  return state_->version;
}

void EventHub::SetPoll(std::function<void()> poll, std::chrono::milliseconds every) {
  const std::lock_guard lock(state_->mutex);
  state_->poll = std::move(poll);
  state_->poll_every = std::max(every, std::chrono::milliseconds(1));
  state_->check_wake.notify_all();
}

std::shared_ptr<EventHub::Stream> EventHub::Open(StreamCheck check) {
  State& s = *state_;
  const std::lock_guard lock(s.mutex);
  if (s.stopping || s.open >= s.options.max_streams) return nullptr;
  ++s.open;
  if (!s.started) {
    // Started by the first stream: a daemon nobody watches runs no thread of the hub.
    s.started = true;
    s.flusher = std::thread([state = state_.get()] { state->Flush(); });
    s.checker = std::thread([state = state_.get()] { state->Check(); });
  }
  return std::make_shared<Stream>(state_, s.next_id++, std::move(check));
}

void EventHub::Attach(const std::shared_ptr<Stream>& stream, StreamOutput output) {
  State& s = *state_;
  {
    const std::lock_guard lock(s.mutex);
    if (!s.stopping) {
      // Under the lock: no message of the flusher can pass the hello, and no change made after
      // the hello's version is missed. `send` only queues (it never blocks).
      if (!output.send(std::make_shared<const std::string>(HelloText(s.version)))) return;
      auto subscriber = std::make_shared<State::Subscriber>();
      subscriber->output = std::move(output);
      subscriber->check = stream->check();
      s.attached[stream->id()] = std::move(subscriber);
      return;
    }
  }
  output.end();
}

std::size_t EventHub::OpenStreams() const {
  const std::lock_guard lock(state_->mutex);
  return state_->open;
}

std::uint64_t EventHub::MessagesRendered() const {
  const std::lock_guard lock(state_->mutex);
  return state_->rendered;
}

void EventHub::Stop() {
  State& s = *state_;
  std::map<std::uint64_t, std::shared_ptr<State::Subscriber>> ending;
  {
    const std::lock_guard lock(s.mutex);
    if (s.stopping) return;
    s.stopping = true;
    ending.swap(s.attached);
    s.flush_wake.notify_all();
    s.check_wake.notify_all();
  }
  if (s.flusher.joinable()) s.flusher.join();
  if (s.checker.joinable()) s.checker.join();
  for (const auto& [id, subscriber] : ending) subscriber->End();
}

}  // namespace tmaster::controller
