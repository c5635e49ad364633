#pragma once

// The live stream's hub (`GET /api/v1/stream`, docs/api.md; issue 14): what the dashboards
// hear, coalesced once for all of them. Writers (the fleet view's change listener, the webhook
// route, the daemon's poll of the sources) only record what changed under a short lock and wake
// one thread at most once per interval; that thread renders each message once and hands the same
// bytes to every open stream, whose connection writes them on the HTTP server's I/O thread. A
// second thread of the hub does what may block (a stream's credential checked again at each
// keepalive, the poll): never the writers, never the I/O thread, and no thread per stream. So 20
// dashboards cost two idle threads, one rendering per interval and a buffer shared by 20 writes.
//
// Messages (Server-Sent Events, https://html.spec.whatwg.org/ "server-sent events", as
// docs/api.md shows them): a stream starts with `retry: 3000` and `event: hello` with
// `data: {"resourceVersion": N}`; then `event: fleet` with `{"resourceVersion": N,
// "workspaces": [names changed since the last fleet message]}` or `{"resourceVersion": N,
// "all": true}` when more than `max_names` changed, at most one per `interval`;
// `event: sources` with `{}` when a source status or a webhook delivery was recorded (also at
// most one per interval); and the comment `: keepalive` every `keepalive`.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace tmaster::controller {

struct EventHubOptions {
  /// At most one `fleet` (and one `sources`) message per interval; a change after a quiet
  /// interval goes at once.
  std::chrono::milliseconds interval{500};
  /// A `: keepalive` comment to every stream this often; each stream's credential is checked
  /// again just after (StreamCheck), so a logout ends a stream within about this long.
  std::chrono::milliseconds keepalive{15'000};
  /// Streams open at once (counted from Open to the end of the stream); beyond: Open refuses.
  std::size_t max_streams = 64;
  /// Names in one `fleet` message; more changed since the last one: `"all": true` instead.
  std::size_t max_names = 100;
};

/// What StreamCheck says of a stream's credential.
enum class StreamVerdict {
  kValid,    ///< go on
  kEnded,    ///< logged out, expired, revoked: the stream ends now
  kUnknown,  ///< could not tell (the store is down): go on, ask again at the next keepalive
};

/// Checks a stream's credential again; called on the hub's checker thread (it may block on the
/// store), never on a writer's or the I/O thread.
using StreamCheck = std::function<StreamVerdict()>;

/// Where a stream's bytes go: the HTTP connection of one client.
struct StreamOutput {
  /// Queues bytes for the client without blocking; false when the connection is gone (the hub
  /// forgets the stream). Called on the hub's threads.
  std::function<bool(std::shared_ptr<const std::string>)> send;
  /// Closes the connection after what is queued. Called on the hub's threads.
  std::function<void()> end;
};

/// Thread-safe. Every public method returns quickly and never blocks on I/O.
class EventHub {
 public:
  class Stream;

  explicit EventHub(EventHubOptions options = {});
  /// Stop().
  ~EventHub();
  EventHub(const EventHub&) = delete;
  EventHub& operator=(const EventHub&) = delete;

  /// The fleet view changed (FleetView::ChangeListener): `names` changed, the view is now at
  /// `resource_version` (the highest seen is kept: writers may report out of order). Without an
  /// open stream only the version is kept. Never blocks beyond a short lock.
  void FleetChanged(std::uint64_t resource_version, const std::vector<std::string>& names);
  /// A source status or a webhook delivery was recorded.
  void SourcesChanged();
  /// The highest version FleetChanged was told.
  [[nodiscard]] std::uint64_t ResourceVersion() const;

  /// `poll` is called on the checker thread every `every` while at least one stream is open (a
  /// standby reloads its view, the daemon compares the sources' statuses): replaces any earlier.
  void SetPoll(std::function<void()> poll, std::chrono::milliseconds every);

  /// A place for a new stream; nullptr when max_streams are open or the hub is stopped. The
  /// place is held until the Stream is destroyed (its connection closed, or never opened).
  /// `check` (may be empty: never checked) is asked at each keepalive.
  std::shared_ptr<Stream> Open(StreamCheck check);
  /// Sends `output` what a stream starts with (`retry: 3000` and the `hello` event with the
  /// current version), then every message of the hub from now on. Call once per stream. A
  /// stopped hub ends `output` at once.
  void Attach(const std::shared_ptr<Stream>& stream, StreamOutput output);

  /// Streams holding a place (opened and not yet destroyed).
  [[nodiscard]] std::size_t OpenStreams() const;
  /// Messages rendered so far (each sent to every attached stream), keepalives excluded: for
  /// tests and benches of the coalescing.
  [[nodiscard]] std::uint64_t MessagesRendered() const;

  /// Ends every stream (its connection is closed after what is queued), refuses new ones, joins
  /// the hub's threads. Idempotent.
  void Stop();

  struct State;  // event_stream.cpp

 private:
  std::shared_ptr<State> state_;
};

/// `event: fleet` with `{"resourceVersion": N, "workspaces": [...]}` (or `"all": true` when `all`),
/// ended by a blank line.
std::string FleetEventText(std::uint64_t resource_version, const std::vector<std::string>& names,
                           bool all);

}  // namespace tmaster::controller
