// stream_cpu_bench: what 20 open dashboards cost (issue 14: "20 open dashboards on a 1,000
// workspace fleet add under 5 % CPU to the daemon"). In one process, the daemon's parts a live
// stream touches: a FleetView of 1,000 workspaces (controller/daemon/fleet_view.hpp) whose change
// listener feeds an EventHub (controller/api/event_stream.hpp), as Daemon wires them, and the real
// HttpServer on 127.0.0.1 serving `GET /api/v1/stream` from that hub. A writer thread changes one
// workspace's status every 100 ms (the view renders it again: the daemon's own work) for 30 s,
// twice: with no stream open, then with 20 streams read by a child process (so the clients'
// CPU is not counted). Prints the process's CPU time (utime + stime of /proc/self/stat) for
// both runs, their ratio, the extra as a share of one core, and the messages each client got.
// Built on request only: `cmake --build BUILD --target stream_cpu_bench && BUILD/stream_cpu_bench`
// (`BUILD/stream_cpu_bench SECONDS` for a shorter run).
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "controller/api/event_stream.hpp"
#include "controller/api/http_server.hpp"
#include "controller/daemon/fleet_view.hpp"
#include "tests/support/fake_store.hpp"

namespace {

using namespace tmaster;
using namespace tmaster::controller;
using Clock = std::chrono::steady_clock;

constexpr const char* kToken = "stream-cpu-bench-read-token-0123456789";
constexpr int kWorkspaces = 1000;
constexpr int kStreams = 20;
constexpr auto kChangeEvery = std::chrono::milliseconds(100);

std::string NameOf(int i) {
  char name[32];
  std::snprintf(name, sizeof name, "tenant-%05d", i);
  return name;
}

std::string SpecJson(const std::string& name) {
  return R"({"apiVersion":"tenantmaster.io/v1alpha1","kind":"Workspace","metadata":{"name":")" +
         name +
         R"(","labels":{"team":"shop"}},"spec":{"product":"shop","mode":"shared",)"
         R"("subdomain":")" +
         name + R"("}})";
}

WorkspaceStatus StatusOf(const std::string& name, std::int64_t generation, int round) {
  WorkspaceStatus status;
  status.name = name;
  status.observed_generation = generation;
  status.phase = round % 2 == 0 ? "Ready" : "Progressing";
  status.conditions_json = R"([{"type":"Ready","status":")" +
                           std::string(round % 2 == 0 ? "True" : "False") +
                           R"(","reason":"UpToDate","message":"round )" + std::to_string(round) +
                           R"(","lastTransitionTime":"2026-12-01T10:00:00Z"}])";
  status.revision = "3f2a9c1d5e7b8a0c4d6e8f1a2b3c4d5e6f7a8b9c";
  return status;
}

// utime + stime of this process, in seconds.
double CpuSeconds() {
  std::ifstream in("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // Fields after the command's closing parenthesis: state is field 3, utime 14, stime 15.
  std::istringstream fields(text.substr(text.rfind(')') + 2));
  std::string field;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

// The child: opens kStreams streams, reads them until the parent closes the pipe; writes the
// fleet messages each got (space-separated) to `report`.
[[noreturn]] void RunClients(int port, int go, int report) {
  std::vector<int> fds;
  for (int i = 0; i < kStreams; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<std::uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) _exit(2);
    const std::string request = std::string("GET /api/v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n") +
                                "Authorization: Bearer " + kToken + "\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) < 0) _exit(2);
    fds.push_back(fd);
  }
  std::vector<std::string> tails(fds.size());
  std::vector<long> fleet(fds.size(), 0);
  std::vector<pollfd> polls;
  for (const int fd : fds) polls.push_back({fd, POLLIN, 0});
  polls.push_back({go, POLLIN, 0});  // the parent closes it: the end
  char buffer[65536];
  while (true) {
    if (::poll(polls.data(), polls.size(), -1) < 0) continue;
    if (polls.back().revents != 0) break;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if ((polls[i].revents & POLLIN) == 0) continue;
      const ssize_t n = ::recv(fds[i], buffer, sizeof buffer, 0);
      if (n <= 0) {
        polls[i].fd = -1;
        continue;
      }
      tails[i].append(buffer, static_cast<std::size_t>(n));
      for (std::size_t at; (at = tails[i].find("event: fleet")) != std::string::npos;) {
        ++fleet[i];
        tails[i].erase(0, at + 12);
      }
      if (tails[i].size() > 64) tails[i].erase(0, tails[i].size() - 64);
    }
  }
  std::string out;
  for (const long count : fleet) out += std::to_string(count) + " ";
  if (::write(report, out.data(), out.size()) < 0) _exit(3);
  _exit(0);
}

struct Run {
  double cpu = 0;
  long changes = 0;
  std::string per_client;  // fleet messages per client
};

Run Measure(FleetView& view, EventHub& hub, int port, bool streams, std::chrono::seconds span) {
  int go[2];
  int report[2];
  if (::pipe(go) != 0 || ::pipe(report) != 0) std::exit(1);
  pid_t child = -1;
  if (streams) {
    child = ::fork();
    if (child == 0) {
      ::close(go[1]);
      ::close(report[0]);
      RunClients(port, go[0], report[1]);
    }
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (hub.OpenStreams() < kStreams && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // every hello written
  }
  ::close(go[0]);
  ::close(report[1]);
  Run run;
  const double start = CpuSeconds();
  const auto end = Clock::now() + span;
  auto next = Clock::now();
  static int round = 1;
  while (Clock::now() < end) {
    const std::string name = NameOf(static_cast<int>(run.changes % kWorkspaces));
    view.StatusChanged(StatusOf(name, 1, ++round));
    ++run.changes;
    next += kChangeEvery;
    std::this_thread::sleep_until(next);
  }
  run.cpu = CpuSeconds() - start;
  ::close(go[1]);  // the clients' end
  if (child > 0) {
    char buffer[1024];
    const ssize_t n = ::read(report[0], buffer, sizeof buffer);
    if (n > 0) run.per_client.assign(buffer, static_cast<std::size_t>(n));
    ::waitpid(child, nullptr, 0);
  }
  ::close(report[0]);
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  const std::chrono::seconds span(argc > 1 ? std::atoi(argv[1]) : 30);
  testing::FakeStore store;
  std::vector<StoredWorkspace> rows;
  std::vector<WorkspaceStatus> statuses;
  for (int i = 0; i < kWorkspaces; ++i) {
    const std::string name = NameOf(i);
    Outcome<StoredWorkspace> row = store.UpsertSpec(name, "fleet", "rev", SpecJson(name));
    if (!row) return 1;
    rows.push_back(*row);
    statuses.push_back(StatusOf(name, row->generation, 0));
  }
  FleetView view;
  view.Reset(rows, statuses);
  EventHub hub;  // the defaults: one message per 500 ms, at most 64 streams
  // As Daemon wires them (controller/daemon/daemon.cpp).
  view.SetChangeListener([&hub](std::uint64_t version, const std::vector<std::string>& names) {
    hub.FleetChanged(version, names);
  });
  HttpServerOptions options;
  options.listen = "127.0.0.1:0";
  options.read_token = Secret(std::string(kToken));
  options.admin_token = Secret(std::string("stream-cpu-bench-admin-token-0123456789"));
  HttpHandlers handlers;
  handlers.events = &hub;
  Metrics metrics;
  HttpServer server(store, metrics, std::move(handlers), options);
  if (!server.Start()) return 1;

  const auto seconds = static_cast<double>(span.count());
  std::printf("stream_cpu_bench: %d workspaces, a status change every %lld ms, %lld s per run\n",
              kWorkspaces, static_cast<long long>(kChangeEvery.count()),
              static_cast<long long>(span.count()));
  const Run idle = Measure(view, hub, server.port(), false, span);
  std::printf("  no stream:   CPU %.3f s over %lld s (%.2f %% of a core), %ld changes\n", idle.cpu,
              static_cast<long long>(span.count()), 100.0 * idle.cpu / seconds, idle.changes);
  const Run live = Measure(view, hub, server.port(), true, span);
  std::printf("  %d streams:  CPU %.3f s over %lld s (%.2f %% of a core), %ld changes\n", kStreams,
              live.cpu, static_cast<long long>(span.count()), 100.0 * live.cpu / seconds,
              live.changes);
  std::printf("  fleet messages per client: %s(rendered by the hub: %llu)\n",
              live.per_client.c_str(), static_cast<unsigned long long>(hub.MessagesRendered()));
  std::printf("  ratio %.2f; the streams add %.3f s of CPU = %.2f %% of one core\n",
              idle.cpu > 0 ? live.cpu / idle.cpu : 0.0, live.cpu - idle.cpu,
              100.0 * (live.cpu - idle.cpu) / seconds);
  server.Stop();
  hub.Stop();
  return 0;
}
