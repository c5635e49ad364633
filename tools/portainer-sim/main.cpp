// portainer-sim: a runnable Portainer CE API simulator for tests and local demos
// (tools/portainer-sim/README.md).

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/secret.hpp"
#include "common/text.hpp"
#include "tools/portainer-sim/http_server.hpp"
#include "tools/portainer-sim/simulator.hpp"

namespace {

namespace sim = tmaster::tools::portainer_sim;

constexpr const char* kUsage =
    "usage: portainer-sim [--listen HOST:PORT] [--api-key-file FILE] [--api-key-env VAR]\n"
    "                     [--admin-user NAME] [--admin-password-env VAR | --admin-password-file "
    "FILE]\n"
    "                     [--endpoints N] [--state-file FILE] [--verbose]\n"
    "       portainer-sim --help | --version\n"
    "\n"
    "Simulates the Portainer CE 2.23 API subset Tenant Master uses. Prints\n"
    "'listening on HOST:PORT' once ready; SIGTERM/SIGINT stop it (and write --state-file).\n"
    "Control plane (no API key, same listener): /__sim/state, /__sim/reset, /__sim/endpoints,\n"
    "/__sim/foreign, /__sim/faults, /__sim/stacks/{id}/drift. See tools/portainer-sim/README.md.\n";

struct Args {
  std::string listen = "127.0.0.1:9000";
  std::vector<std::string> api_key_files;
  std::vector<std::string> api_key_envs;
  std::string admin_user = "admin";
  std::string admin_password_env;
  std::string admin_password_file;
  int endpoints = 1;
  std::string state_file;
  bool verbose = false;
};

[[noreturn]] void Fail(const std::string& message) {
  std::cerr << "portainer-sim: " << message << "\n";
  std::exit(2);
}

std::string ReadFileOrFail(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail(std::string("cannot read ") + what + " file " + path);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return std::string(tmaster::Trim(buffer.str()));
}

std::string EnvOrFail(const std::string& name, const char* what) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr || *value == '\0')
    Fail(std::string(what) + " variable " + name + " is not set");
  return std::string(tmaster::Trim(value));
}

Args ParseArgs(int argc, char** argv) {
  Args args;
  std::vector<std::string> words(argv + 1, argv + argc);
  for (std::size_t i = 0; i < words.size(); ++i) {
    std::string flag = words[i];
    std::string value;
    bool has_value = false;
    if (const auto eq = flag.find('='); flag.rfind("--", 0) == 0 && eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
      has_value = true;
    }
    const auto next = [&]() -> std::string {
      if (has_value) return value;
      if (i + 1 >= words.size()) Fail(flag + " needs a value");
      return words[++i];
    };
    if (flag == "--help" || flag == "-h") {
      std::cout << kUsage;
      std::exit(0);
    } else if (flag == "--version") {
      std::cout << "portainer-sim " << TM_VERSION << '\n';
      std::exit(0);
    } else if (flag == "--listen") {
      args.listen = next();
    } else if (flag == "--api-key-file") {
      args.api_key_files.push_back(next());
    } else if (flag == "--api-key-env") {
      args.api_key_envs.push_back(next());
    } else if (flag == "--admin-user") {
      args.admin_user = next();
    } else if (flag == "--admin-password-env") {
      args.admin_password_env = next();
    } else if (flag == "--admin-password-file") {
      args.admin_password_file = next();
    } else if (flag == "--endpoints") {
      const std::string text = next();
      char* end = nullptr;
      const long count = std::strtol(text.c_str(), &end, 10);
      if (end == text.c_str() || *end != '\0' || count < 1 || count > 100000) {
        Fail("--endpoints needs a number from 1 to 100000");
      }
      args.endpoints = static_cast<int>(count);
    } else if (flag == "--state-file") {
      args.state_file = next();
    } else if (flag == "--verbose") {
      args.verbose = true;
    } else {
      std::cerr << kUsage;
      Fail("unknown argument " + words[i]);
    }
  }
  return args;
}

void AddApiKey(sim::SimOptions& options, std::string key, const std::string& origin) {
  // Portainer keys are "ptr_" + base64 of 32 random bytes; insist on the prefix so a test
  // cannot pass a JWT or a password by mistake.
  if (key.rfind("ptr_", 0) != 0 || key.size() < 8)
    Fail("the API key from " + origin + " must look like ptr_...");
  options.api_keys.emplace_back(std::move(key));
}

void WriteStateFile(const std::string& path, const std::string& text) {
  const std::string temp = path + ".tmp";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out << text << "\n";
    if (!out) {
      std::cerr << "portainer-sim: cannot write " << temp << "\n";
      return;
    }
  }
  std::error_code error;
  std::filesystem::rename(temp, path, error);
  if (error) std::cerr << "portainer-sim: cannot write " << path << ": " << error.message() << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);

  sim::SimOptions options;
  options.endpoint_count = args.endpoints;
  options.admin_user = args.admin_user;
  for (const auto& file : args.api_key_files)
    AddApiKey(options, ReadFileOrFail(file, "API key"), file);
  for (const auto& env : args.api_key_envs)
    AddApiKey(options, EnvOrFail(env, "API key"), "$" + env);
  if (!args.admin_password_env.empty()) {
    options.admin_password = tmaster::Secret(EnvOrFail(args.admin_password_env, "admin password"));
  } else if (!args.admin_password_file.empty()) {
    options.admin_password =
        tmaster::Secret(ReadFileOrFail(args.admin_password_file, "admin password"));
  }

  std::string host = args.listen;
  int port = 0;
  if (const auto colon = args.listen.rfind(':'); colon != std::string::npos) {
    host = args.listen.substr(0, colon);
    const std::string port_text = args.listen.substr(colon + 1);
    char* end = nullptr;
    const long value = std::strtol(port_text.c_str(), &end, 10);
    if (end == port_text.c_str() || *end != '\0' || value < 0 || value > 65535) {
      Fail("--listen needs HOST:PORT");
    }
    port = static_cast<int>(value);
  } else {
    Fail("--listen needs HOST:PORT");
  }
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);

  // Signals are taken synchronously by the main thread; every other thread inherits the mask.
  signal(SIGPIPE, SIG_IGN);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  sim::Interrupter interrupter;
  sim::Simulator simulator(
      options, [] { return static_cast<std::int64_t>(std::time(nullptr)); },
      [&interrupter](std::chrono::milliseconds duration) {
        return interrupter.SleepFor(duration);
      });
  sim::HttpServer server(simulator, args.verbose);
  const int bound = server.Bind(host, port);
  if (bound < 0) {
    std::cerr << "portainer-sim: cannot listen on " << args.listen << "\n";
    return 1;
  }
  std::atomic<bool> serve_ended{false};
  std::thread serving([&] {
    server.Serve();
    serve_ended = true;
  });
  while (!server.Running() && !serve_ended)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (serve_ended) {
    serving.join();
    std::cerr << "portainer-sim: the server failed to start\n";
    return 1;
  }
  const std::string shown_host = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  std::printf("listening on %s:%d\n", shown_host.c_str(), bound);
  std::fflush(stdout);

  int received = 0;
  sigwait(&stop_signals, &received);
  interrupter.Interrupt();
  server.Stop();
  serving.join();
  if (!args.state_file.empty()) WriteStateFile(args.state_file, simulator.DumpState());
  return 0;
}
