#include "tools/portainer-sim/http_server.hpp"

#include <httplib.h>

#include <cstdio>
#include <exception>
#include <utility>

#include "common/http_routes.hpp"
#include "common/text.hpp"

namespace tmaster::tools::portainer_sim {
namespace {

ApiRequest ToApiRequest(const httplib::Request& req) {
  ApiRequest out;
  out.method = req.method;
  out.path = req.path;
  const std::size_t question = req.target.find('?');
  if (question != std::string::npos) out.raw_query = req.target.substr(question + 1);
  // Params is a multimap ordered by name; values of one name keep their request order, which
  // is all Go's Query().Get (first value) needs.
  for (const auto& [key, value] : req.params) out.query.emplace_back(key, value);
  for (const auto& [key, value] : req.headers) out.headers.emplace_back(key, value);
  out.body = req.body;
  for (const auto& [key, part] : req.files) {
    out.form.push_back(FormField{part.name, part.content, part.filename});
  }
  out.remote_addr = req.remote_addr;
  return out;
}

}  // namespace

struct HttpServer::Impl {
  explicit Impl(Simulator& sim) : simulator(sim) {}
  Simulator& simulator;
  httplib::Server server;
};

HttpServer::HttpServer(Simulator& simulator, bool log_requests)
    : impl_(std::make_unique<Impl>(simulator)) {
  Impl* impl = impl_.get();
  const auto handler = [impl](const httplib::Request& req, httplib::Response& res) {
    const ApiResponse answer = impl->simulator.Handle(ToApiRequest(req));
    res.status = answer.status;
    for (const auto& [key, value] : answer.headers) res.headers.emplace(key, value);
    if (!answer.content_type.empty()) {
      res.set_content(answer.body, answer.content_type.c_str());
    } else {
      res.body = answer.body;
    }
  };
  auto& server = impl_->server;
  // A timeout fault parks a worker for its whole delay: keep enough workers that a few parked
  // requests never starve the operator's other calls.
  server.new_task_queue = [] { return new httplib::ThreadPool(32); };
  RouteEveryMethod(server, handler);
  server.set_payload_max_length(64u * 1024u * 1024u);
  if (log_requests) {
    server.set_logger([](const httplib::Request& req, const httplib::Response& res) {
      std::fprintf(stderr, "portainer-sim: %s %s -> %d\n", req.method.c_str(), req.path.c_str(),
                   res.status);
    });
  }
  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr error) {
        const std::string what = ExceptionText(error, "unknown error");
        res.status = 500;
        res.set_content(R"({"message":"portainer-sim internal error","details":")" +
                            std::string("see stderr") + "\"}",
                        "application/json");
        std::fprintf(stderr, "portainer-sim: handler error: %s\n", what.c_str());
      });
}

HttpServer::~HttpServer() = default;

int HttpServer::Bind(const std::string& host, int port) {
  if (port == 0) return impl_->server.bind_to_any_port(host);
  return impl_->server.bind_to_port(host, port) ? port : -1;
}

bool HttpServer::Serve() { return impl_->server.listen_after_bind(); }

bool HttpServer::Running() const { return impl_->server.is_running(); }

void HttpServer::Stop() { impl_->server.stop(); }

}  // namespace tmaster::tools::portainer_sim
