// The rollout health gate's HTTP prober (controller/daemon/health_probe_http.cpp) against a real
// local HTTP server: the Host header it sends, 2xx against other answers, a redirect not followed,
// a closed port and a slow answer as failures; then the gate over it, as the daemon runs it.
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "controller/daemon/health_gate.hpp"

namespace tmaster::controller {
namespace {

using namespace std::chrono_literals;

// A server on 127.0.0.1 that answers /healthz 204 only for Host acme.example.test (503 before
// `healthy`), /moved with a 302 to /healthz and /slow after two seconds.
class Application {
 public:
  Application() {
    server_.Get("/healthz", [this](const httplib::Request& req, httplib::Response& res) {
      {
        const std::lock_guard lock(mutex_);
        hosts_.push_back(req.get_header_value("Host"));
      }
      if (req.get_header_value("Host") != "acme.example.test") {
        res.status = 404;
      } else {
        res.status = healthy_ ? 204 : 503;
      }
    });
    server_.Get("/moved", [](const httplib::Request&, httplib::Response& res) {
      res.set_redirect("/healthz");
    });
    server_.Get("/slow", [](const httplib::Request&, httplib::Response& res) {
      std::this_thread::sleep_for(2s);
      res.status = 200;
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    serving_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(1ms);
  }
  Application(const Application&) = delete;
  Application& operator=(const Application&) = delete;
  ~Application() {
    server_.stop();
    serving_.join();
  }
  [[nodiscard]] std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  void Healthy() { healthy_ = true; }
  std::vector<std::string> Hosts() {
    const std::lock_guard lock(mutex_);
    return hosts_;
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread serving_;
  std::atomic<bool> healthy_{false};
  std::mutex mutex_;
  std::vector<std::string> hosts_;
};

// A port nothing listens on: bound, then closed.
int ClosedPort() {
  httplib::Server server;
  const int port = server.bind_to_any_port("127.0.0.1");
  REQUIRE(port > 0);
  server.stop();
  return port;
}

TEST_CASE("health prober: sends the workspace's host, tells 2xx from other answers, follows no "
          "redirect") {
  Application app;
  const std::unique_ptr<HealthProber> prober = MakeHttpHealthProber();
  const HealthTarget target = HealthTargetFor(app.Url() + "/", "acme.example.test", "/healthz");
  CHECK(target.url == app.Url() + "/healthz");

  Outcome<int> answer = prober->Get(target.url, target.host, 2000ms);
  REQUIRE(answer.ok());
  CHECK(*answer == 503);
  app.Healthy();
  answer = prober->Get(target.url, target.host, 2000ms);
  REQUIRE(answer.ok());
  CHECK(*answer == 204);
  CHECK(app.Hosts() == std::vector<std::string>{"acme.example.test", "acme.example.test"});

  // Another workspace's host on the same edge is another application.
  answer = prober->Get(target.url, "other.example.test", 2000ms);
  REQUIRE(answer.ok());
  CHECK(*answer == 404);

  // A 3xx is not a 2xx: the prober does not follow it to a healthy page.
  answer = prober->Get(app.Url() + "/moved", "acme.example.test", 2000ms);
  REQUIRE(answer.ok());
  CHECK(*answer == 302);
}

TEST_CASE("health prober: a closed port and a slow answer are failures that name the URL") {
  Application app;
  const std::unique_ptr<HealthProber> prober = MakeHttpHealthProber();
  const std::string closed = "http://127.0.0.1:" + std::to_string(ClosedPort()) + "/healthz";
  Outcome<int> refused = prober->Get(closed, "acme.example.test", 1000ms);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.failure().reason == "HealthCheckUnreachable");
  CHECK(refused.failure().message.find(closed) != std::string::npos);

  const auto started = std::chrono::steady_clock::now();
  Outcome<int> slow = prober->Get(app.Url() + "/slow", "acme.example.test", 300ms);
  CHECK_FALSE(slow.ok());
  CHECK(std::chrono::steady_clock::now() - started < 1900ms);  // gave up before the answer
}

TEST_CASE("health gate over HTTP: waits while the application answers 503, passes on its 204; "
          "fails after the timeout when nothing answers") {
  Application app;
  const std::unique_ptr<HealthProber> prober = MakeHttpHealthProber();
  HealthGate gate(*prober, {}, 100ms);
  gate.Start();
  const HealthTarget target = HealthTargetFor(app.Url(), "acme.example.test", "/healthz");
  CHECK(gate.Check("acme#2#1", target, 30s).verdict == HealthGate::Verdict::kWaiting);
  // Probed again and again, not once: wait (bounded) for a second probe, since a loaded
  // machine under the sanitizers may take longer than the 100 ms period between probes.
  for (int i = 0; i < 100 && app.Hosts().size() < 2; ++i) std::this_thread::sleep_for(50ms);
  CHECK(gate.Check("acme#2#1", target, 30s).verdict == HealthGate::Verdict::kWaiting);
  CHECK(app.Hosts().size() >= 2);
  app.Healthy();
  HealthGate::Verdict verdict = HealthGate::Verdict::kWaiting;
  for (int i = 0; i < 50 && verdict == HealthGate::Verdict::kWaiting; ++i) {
    std::this_thread::sleep_for(100ms);
    verdict = gate.Check("acme#2#1", target, 30s).verdict;
  }
  CHECK(verdict == HealthGate::Verdict::kPassed);

  const HealthTarget nowhere = HealthTargetFor(
      "http://127.0.0.1:" + std::to_string(ClosedPort()), "acme.example.test", "/healthz");
  CHECK(gate.Check("acme#3#1", nowhere, 1s).verdict == HealthGate::Verdict::kWaiting);
  HealthGate::Result failed;
  for (int i = 0; i < 30 && failed.verdict == HealthGate::Verdict::kWaiting; ++i) {
    std::this_thread::sleep_for(100ms);
    failed = gate.Check("acme#3#1", nowhere, 1s);
  }
  CHECK(failed.verdict == HealthGate::Verdict::kFailed);
  CHECK(failed.reason.find("did not answer 2xx within 1s") != std::string::npos);
  CHECK(failed.reason.find(nowhere.url) != std::string::npos);
  gate.Stop();
}

}  // namespace
}  // namespace tmaster::controller
