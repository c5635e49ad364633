#include "controller/api/http_listener.hpp"

#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/status.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <openssl/ssl.h>

#include <array>
#include <atomic>
#include <cassert>
#include <charconv>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <exception>
#include <filesystem>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "common/text.hpp"

namespace tmaster::controller::http {
namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

// The transport streams: plain TCP, or TLS over it (HttpServerOptions::tls_cert_file). Every read
// and write goes through the stream, deadlines and socket calls through beast::get_lowest_layer;
// TLS adds the handshake, under the header deadline.
using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

// Requests waiting for the readiness thread beyond this are answered 503 busy.
constexpr std::size_t kProbeQueueLimit = 16;
// After an answer that closes the connection, what the client still sends is read and dropped
// for this long (at most kLingerBytes), so that it sees the answer instead of a reset (the same
// reason as nginx's lingering_close).
constexpr auto kLingerTimeout = std::chrono::seconds(2);
constexpr std::size_t kLingerBytes = std::size_t{1} << 20;
// An accept that fails (out of file descriptors) is retried after this, not in a hot loop.
constexpr auto kAcceptRetry = std::chrono::milliseconds(100);
// The kernel's send buffer of a streamed answer's socket: small, so that a client that does not
// read is found by kStreamOutputLimit (or write_timeout) after kilobytes, not after the megabytes
// a loopback socket's buffer grows to.
constexpr int kStreamSendBuffer = 16 * 1024;

void LogLine(const std::string& line) {
  std::fprintf(stderr, "tenant-operator: http: %s\n", line.c_str());
}

struct ListenAddress {
  std::string host;
  int port = 0;
};

Outcome<ListenAddress> ParseListen(const std::string& listen) {
  const auto fail = [&listen](const std::string& why) {
    return Failure::Stalled("ListenFailed", "cannot listen on \"" + listen + "\": " + why);
  };
  ListenAddress address;
  std::string_view rest = listen;
  std::size_t colon = std::string_view::npos;
  if (!rest.empty() && rest.front() == '[') {
    const std::size_t close = rest.find(']');
    if (close == std::string_view::npos || close + 1 >= rest.size() || rest[close + 1] != ':') {
      return fail("expected [ipv6]:port");
    }
    address.host = std::string(rest.substr(1, close - 1));
    colon = close + 1;
  } else {
    colon = rest.rfind(':');
    if (colon == std::string_view::npos) return fail("expected host:port");
    address.host = std::string(rest.substr(0, colon));
    if (address.host.find(':') != std::string::npos) return fail("write IPv6 hosts as [addr]:port");
    if (address.host.empty()) address.host = "0.0.0.0";
  }
  const std::string_view port = rest.substr(colon + 1);
  const auto parsed = std::from_chars(port.data(), port.data() + port.size(), address.port);
  if (port.empty() || parsed.ec != std::errc() || parsed.ptr != port.data() + port.size() ||
      address.port < 0 || address.port > 65535) {
    return fail("the port must be a number from 0 to 65535");
  }
  if (address.host.empty()) return fail("empty host");
  return address;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// %XX decoded; a '%' not followed by two hex digits stays as it is (as cpp-httplib did).
std::string PercentDecode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%' && i + 2 < text.size()) {
      const int high = HexDigit(text[i + 1]);
      const int low = HexDigit(text[i + 2]);
      if (high >= 0 && low >= 0) {
        out += static_cast<char>(high * 16 + low);
        i += 2;
        continue;
      }
    }
    out += plus_is_space && c == '+' ? ' ' : c;
  }
  return out;
}

void ParseTarget(std::string_view target, Request& request) {
  const std::size_t question = target.find('?');
  request.path = PercentDecode(target.substr(0, question), false);
  if (question == std::string_view::npos) return;
  std::string_view query = target.substr(question + 1);
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (item.empty()) continue;
    const std::size_t equals = item.find('=');
    std::string name = PercentDecode(item.substr(0, equals), true);
    std::string value =
        equals == std::string_view::npos ? std::string() : PercentDecode(item.substr(equals + 1), true);
    request.params.emplace_back(std::move(name), std::move(value));
  }
}

}  // namespace

// Named, not anonymous: Listener::State (declared in the header) holds them.
namespace transport {

// A TLS server context of `cert_file` (PEM, the certificate then its chain) and `key_file`:
// TLS 1.2 and later only. Stalled `TlsFailed` naming the file when a file does not load or the key
// is not the certificate's.
Outcome<std::shared_ptr<net::ssl::context>> LoadTls(const std::string& cert_file,
                                                     const std::string& key_file) {
  auto context = std::make_shared<net::ssl::context>(net::ssl::context::tls_server);
  context->set_options(net::ssl::context::default_workarounds | net::ssl::context::no_sslv2 |
                       net::ssl::context::no_sslv3 | net::ssl::context::no_tlsv1 |
                       net::ssl::context::no_tlsv1_1 | net::ssl::context::single_dh_use);
  if (SSL_CTX_set_min_proto_version(context->native_handle(), TLS1_2_VERSION) != 1) {
    return Failure::Stalled("TlsFailed", "cannot require TLS 1.2 or later");
  }
  beast::error_code ec;
  context->use_certificate_chain_file(cert_file, ec);
  if (ec) {
    return Failure::Stalled("TlsFailed",
                            "cannot load the TLS certificate \"" + cert_file + "\": " + ec.message());
  }
  context->use_private_key_file(key_file, net::ssl::context::pem, ec);
  if (ec) {
    return Failure::Stalled("TlsFailed",
                            "cannot load the TLS key \"" + key_file + "\": " + ec.message());
  }
  if (SSL_CTX_check_private_key(context->native_handle()) != 1) {
    return Failure::Stalled("TlsFailed", "the TLS key \"" + key_file +
                                             "\" is not the key of the certificate \"" +
                                             cert_file + "\"");
  }
  return context;
}

// What tells a file changed: its modification time and size (a missing file: neither).
struct FileStamp {
  std::filesystem::file_time_type modified{};
  std::uintmax_t size = 0;
  bool exists = false;
  friend bool operator==(const FileStamp&, const FileStamp&) = default;
};

FileStamp StampOf(const std::string& file) {
  std::error_code ec;
  FileStamp stamp;
  stamp.modified = std::filesystem::last_write_time(file, ec);
  if (ec) return {};
  stamp.size = std::filesystem::file_size(file, ec);
  if (ec) return {};
  stamp.exists = true;
  return stamp;
}

// A fixed set of threads for handlers that may block, behind a bounded queue.
class WorkerPool {
 public:
  WorkerPool(int threads, std::size_t queue_limit) : limit_(queue_limit) {
    for (int i = 0; i < std::max(threads, 1); ++i) threads_.emplace_back([this] { Run(); });
  }
  ~WorkerPool() { Shutdown(); }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  /// Queues `job`; false when `queue_limit` jobs already wait (or the pool is shut down).
  bool TryPost(std::function<void()> job) {
    {
      const std::lock_guard lock(mutex_);
      if (stopping_ || queue_.size() >= limit_) return false;
      queue_.push_back(std::move(job));
    }
    ready_.notify_one();
    return true;
  }

  /// Runs what is queued, then joins. Idempotent.
  void Shutdown() {
    {
      const std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    ready_.notify_all();
    for (std::thread& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
  }

 private:
  void Run() {
    while (true) {
      std::function<void()> job;
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      job();  // jobs catch their own exceptions (Connection::Invoke)
    }
  }

  std::size_t limit_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// A request the client sent wrong (answered 400), as opposed to a client gone, too slow, or a
// server stopping (the connection is just closed: nobody would read an answer).
bool IsParseError(const beast::error_code& ec) {
  static const auto& category = bhttp::make_error_code(bhttp::error::bad_method).category();
  return ec.category() == category && ec != bhttp::error::end_of_stream &&
         ec != bhttp::error::partial_message;
}

// What the listener needs of a connection of either stream.
class ConnectionBase {
 public:
  virtual ~ConnectionBase() = default;
  virtual void Start() = 0;
  virtual void Stop() = 0;
};

template <class Stream>
class Connection;

// The TLS context served to new connections, swapped when the certificate or key files change
// (checked on an accept at most every HttpServerOptions::tls_reload_interval). A pair that does
// not load keeps the previous context, and is logged once per change of the files.
class TlsContexts {
 public:
  TlsContexts(std::string cert_file, std::string key_file, std::chrono::milliseconds interval)
      : cert_file_(std::move(cert_file)), key_file_(std::move(key_file)), interval_(interval) {}

  /// Loads the first pair.
  Outcome<Done> Load() {
    const FileStamp cert = StampOf(cert_file_);
    const FileStamp key = StampOf(key_file_);
    auto loaded = LoadTls(cert_file_, key_file_);
    if (!loaded) return loaded.failure();
    const std::lock_guard lock(mutex_);
    current_ = std::move(loaded).value();
    cert_stamp_ = cert;
    key_stamp_ = key;
    checked_ = std::chrono::steady_clock::now();
    return Ok();
  }

  /// The context for a new connection, reloaded first when the files changed.
  std::shared_ptr<net::ssl::context> Current() {
    const std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    if (now - checked_ < interval_) return current_;
    checked_ = now;
    const FileStamp cert = StampOf(cert_file_);
    const FileStamp key = StampOf(key_file_);
    if (cert == cert_stamp_ && key == key_stamp_) return current_;
    cert_stamp_ = cert;  // tried once per change, loaded or not
    key_stamp_ = key;
    auto loaded = LoadTls(cert_file_, key_file_);
    if (!loaded) {
      LogLine("TLS: keeping the previous certificate: " + loaded.failure().message);
      return current_;
    }
    current_ = std::move(loaded).value();
    LogLine("TLS: loaded the new certificate of \"" + cert_file_ + "\"");
    return current_;
  }

 private:
  const std::string cert_file_;
  const std::string key_file_;
  const std::chrono::milliseconds interval_;
  std::mutex mutex_;
  std::shared_ptr<net::ssl::context> current_;
  FileStamp cert_stamp_;
  FileStamp key_stamp_;
  std::chrono::steady_clock::time_point checked_;
};

}  // namespace transport

using transport::Connection;
using transport::ConnectionBase;
using transport::TlsContexts;
using transport::WorkerPool;

// What the listener and its connections share; outlives every connection (each holds it).
struct Listener::State {
  State(HttpServerOptions o, Routes r)
      : options(std::move(o)),
        routes(std::move(r)),
        acceptor(net::make_strand(io)),
        retry(acceptor.get_executor()) {}

  HttpServerOptions options;
  Routes routes;
  net::io_context io{1};
  tcp::acceptor acceptor;
  net::steady_timer retry;
  std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
  std::optional<WorkerPool> workers;
  std::optional<WorkerPool> probes;
  std::optional<WorkerPool> watches;
  std::thread io_thread;
  std::string refusal;  // the raw answer to a connection over the cap
  std::atomic<bool> stopping{false};
  std::atomic<std::size_t> body_bytes{0};  // reserved by the connections reading or handling one
  int port = 0;
  bool started = false;

  std::mutex mutex;                 // guards live and next_id
  std::condition_variable drained;  // live became empty
  std::map<std::uint64_t, std::weak_ptr<ConnectionBase>> live;
  std::optional<TlsContexts> tls;  // set when the options name a certificate
  std::uint64_t next_id = 0;

  void Reject(Rejection rejection) const {
    if (routes.rejected) routes.rejected(rejection);
  }
  // Under `mutex`, so that the counts arrive in order.
  void CountConnections() const {
    if (routes.connections) routes.connections(live.size());
  }

  void Accept(const std::shared_ptr<State>& self);
  void OnAccept(const std::shared_ptr<State>& self, beast::error_code ec, tcp::socket socket);
};

namespace transport {

// One client connection. Every step runs on the connection's strand; a handler that runs on a
// worker posts its answer back to it.
template <class Stream>
class Connection final : public ConnectionBase,
                         public std::enable_shared_from_this<Connection<Stream>> {
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

 public:
  // `tls`: the context of a TLS connection (kept alive as long as it is), nullptr for plain.
  Connection(std::shared_ptr<Listener::State> state, std::uint64_t id, tcp::socket socket,
             std::shared_ptr<net::ssl::context> tls)
      : state_(std::move(state)),
        id_(id),
        tls_(std::move(tls)),
        stream_(MakeStream(std::move(socket), tls_.get())),
        // Room for a whole header and a read beyond it; the parser's header_limit fires first.
        buffer_(state_->options.header_limit + 8192) {
    beast::error_code ec;
    const tcp::endpoint peer = beast::get_lowest_layer(stream_).socket().remote_endpoint(ec);
    if (!ec) remote_address_ = peer.address().to_string();
  }

  ~Connection() {
    Release();
    {
      const std::lock_guard lock(state_->mutex);
      state_->live.erase(id_);
      state_->CountConnections();
    }
    state_->drained.notify_all();
  }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void Start() override {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if constexpr (kTls) {
        self->Handshake();
      } else {
        self->WaitForRequest();
      }
    });
  }

  // Listener::Stop: a connection waiting for (or reading) a request is closed now; one whose
  // request is being handled or answered is closed after the answer.
  void Stop() override {
    net::dispatch(stream_.get_executor(), [self = this->shared_from_this()] {
      if (self->phase_ != Phase::kHandling && self->phase_ != Phase::kWriting) self->Close();
    });
  }

 private:
  enum class Phase { kIdle, kHeader, kBody, kHandling, kWriting, kLinger, kStreaming, kClosed };

  const HttpServerOptions& options() const { return state_->options; }
  tcp::socket& socket() { return beast::get_lowest_layer(stream_).socket(); }

  static Stream MakeStream(tcp::socket socket, net::ssl::context* tls) {
    if constexpr (kTls) {
      return Stream(std::move(socket), *tls);
    } else {
      (void)tls;
      return Stream(std::move(socket));
    }
  }

  // The TLS handshake, under the header deadline: a client that opens a connection and says
  // nothing, or trickles its hello, is cut like one that trickles its header. Not a request: a
  // failed handshake is just closed (counted when it was the deadline).
  void Handshake() {
    if constexpr (kTls) {
      phase_ = Phase::kHeader;
      const auto deadline = std::chrono::steady_clock::now() + options().header_timeout;
      beast::get_lowest_layer(stream_).expires_at(deadline);
      stream_.async_handshake(
          net::ssl::stream_base::server,
          [self = this->shared_from_this(), deadline](beast::error_code ec) {
            if (self->phase_ == Phase::kClosed) return;
            if (!ec) return self->WaitForRequest();
            // The TLS layer may report the deadline as another error: counted by the clock.
            if (std::chrono::steady_clock::now() >= deadline) {
              self->state_->Reject(Rejection::kTimeout);
              return self->Close();
            }
            self->Cut(ec);
          });
    }
  }

  void WaitForRequest() {
    if (phase_ == Phase::kClosed) return;
    if (state_->stopping) return Close();
    parser_.emplace();
    parser_->header_limit(static_cast<std::uint32_t>(options().header_limit));
    parser_->body_limit(boost::none);  // checked once the header says how much is coming
    request_ = Request{};
    if (buffer_.size() > 0) return ReadHeader();  // a pipelined request is already here
    // Silent connections, new or kept alive, wait at most idle_timeout for a first byte.
    phase_ = Phase::kIdle;
    beast::get_lowest_layer(stream_).expires_after(options().idle_timeout);
    stream_.async_read_some(buffer_.prepare(1024),
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
                              // A silent connection timing out here is a keep-alive ending
                              // as it should, not a refusal: not counted.
                              if (ec || self->phase_ == Phase::kClosed) return self->Close();
                              self->buffer_.commit(n);
                              self->ReadHeader();
                            });
  }

  void ReadHeader() {
    // One deadline for the whole request line and header, however the bytes trickle in.
    phase_ = Phase::kHeader;
    beast::get_lowest_layer(stream_).expires_after(options().header_timeout);
    bhttp::async_read_header(stream_, buffer_, *parser_,
                             [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                               self->OnHeader(ec);
                             });
  }

  void OnHeader(beast::error_code ec) {
    if (phase_ == Phase::kClosed) return;
    if (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow) {
      state_->Reject(Rejection::kHeaderTooLarge);
      return Refuse(431, "the request header exceeds " + std::to_string(options().header_limit) +
                             " bytes");
    }
    if (ec && !IsParseError(ec)) return Cut(ec);  // gone, too slow, or stopped: nobody to answer
    if (ec) {
      state_->Reject(Rejection::kBadRequest);
      return Refuse(400, "bad request: " + ec.message());
    }

    const auto& header = parser_->get();
    request_.method = std::string(header.method_string());
    request_.remote_address = remote_address_;
    ParseTarget(header.target(), request_);
    request_.headers.reserve(static_cast<std::size_t>(std::distance(header.begin(), header.end())));
    for (const auto& field : header) {
      request_.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    }
    if (parser_->is_done()) return Dispatch();
    const std::size_t limit = options().webhook_body_limit;
    if (const auto announced = parser_->content_length(); announced && *announced > limit) {
      request_.body_too_large = true;  // answered without reading a byte of it
      state_->Reject(Rejection::kBodyTooLarge);
      return Dispatch();
    }
    // Bodies held in memory across connections are bounded too, not only each one: the size
    // announced (or, chunked, the limit) is reserved before a byte is read.
    const auto length = parser_->content_length();
    if (!Reserve(length ? static_cast<std::size_t>(*length) : limit)) {
      state_->Reject(Rejection::kBusy);
      return Refuse(503, "server busy");
    }
    parser_->body_limit(limit);  // a chunked body is cut when it passes the limit
    if (beast::iequals(header[bhttp::field::expect], "100-continue") && header.version() >= 11) {
      phase_ = Phase::kWriting;
      beast::get_lowest_layer(stream_).expires_after(options().write_timeout);
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      net::async_write(stream_, net::buffer(kContinue.data(), kContinue.size()),
                       [self = this->shared_from_this()](beast::error_code write_ec, std::size_t) {
                         if (self->phase_ == Phase::kClosed) return;
                         if (write_ec) return self->Cut(write_ec);
                         self->ReadBody();
                       });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    phase_ = Phase::kBody;
    beast::get_lowest_layer(stream_).expires_after(options().body_timeout);
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                        self->OnBody(ec);
                      });
  }

  void OnBody(beast::error_code ec) {
    if (phase_ == Phase::kClosed) return;
    if (ec == bhttp::error::body_limit) {
      request_.body_too_large = true;
      state_->Reject(Rejection::kBodyTooLarge);
      return Dispatch();
    }
    if (ec && !IsParseError(ec)) return Cut(ec);
    if (ec) {
      state_->Reject(Rejection::kBadRequest);
      return Refuse(400, "bad request body: " + ec.message());
    }
    request_.body = std::move(parser_->get().body());
    Dispatch();
  }

  void Dispatch() {
    ++served_;
    head_only_ = request_.method == "HEAD";
    version_ = parser_->get().version();
    keep_alive_ = parser_->get().keep_alive() && !request_.body_too_large &&
                  served_ < options().max_requests_per_connection;
    parser_.reset();  // its copy of the header goes now; request_ has what the handler needs
    phase_ = Phase::kHandling;
    beast::get_lowest_layer(stream_).expires_never();  // the handler's time is not the client's
    if (state_->routes.admit) {
      if (std::optional<Response> answer = state_->routes.admit(request_)) {
        return Write(std::move(*answer));
      }
    }
    const Lane lane = state_->routes.lane(request_.method, request_.path);
    if (lane == Lane::kInline) return Write(Invoke(*state_, request_));
    WorkerPool& pool = lane == Lane::kProbe   ? *state_->probes
                       : lane == Lane::kWatch ? *state_->watches
                                              : *state_->workers;
    const bool queued = pool.TryPost([self = this->shared_from_this(), request = std::move(request_)] {
      Response response = Invoke(*self->state_, request);
      net::post(self->stream_.get_executor(),
                [self, response = std::move(response)]() mutable { self->Write(std::move(response)); });
    });
    if (!queued) {
      state_->Reject(Rejection::kBusy);
      Write(state_->routes.error(503, "server busy"));
    }
  }

  static Response Invoke(const Listener::State& state, const Request& request) {
    try {
      return state.routes.handle(request);
    } catch (...) {
      LogLine(request.method + " " + request.path +
              ": internal error: " + ExceptionText(std::current_exception(), "unknown exception"));
      return state.routes.error(500, "internal error (see the operator's log)");
    }
  }

  // An answer the listener gives itself on a request it will not read further.
  void Refuse(int status, const std::string& message) {
    keep_alive_ = false;
    head_only_ = false;
    version_ = 11;
    Write(state_->routes.error(status, message));
  }

  void Write(Response response) {
    if (phase_ == Phase::kClosed) return;
    if (response.stream && !head_only_) return StartStream(std::move(response));
    request_ = Request{};  // handled: its body leaves memory and the budget
    Release();
    if (state_->stopping) keep_alive_ = false;
    auto& out = response_.emplace(static_cast<bhttp::status>(response.status), version_);
    if (!response.content_type.empty()) out.set(bhttp::field::content_type, response.content_type);
    for (auto& [name, value] : response.headers) out.set(name, value);
    out.body() = std::move(response.body);
    out.keep_alive(keep_alive_);
    out.prepare_payload();
    if (head_only_) out.body().clear();  // Content-Length stays that of the GET
    phase_ = Phase::kWriting;
    beast::get_lowest_layer(stream_).expires_after(options().write_timeout);
    bhttp::async_write(stream_, out,
                       [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                         self->response_.reset();
                         if (self->phase_ == Phase::kClosed) return;
                         if (ec) return self->Cut(ec);
                         if (!self->keep_alive_ || self->state_->stopping) return self->Linger();
                         self->WaitForRequest();
                       });
  }

  // Half-closes, then reads and drops what the client still sends, briefly, so that it reads
  // the answer instead of a reset.
  void Linger() {
    if (phase_ == Phase::kClosed) return;
    if (state_->stopping) return Close();
    phase_ = Phase::kLinger;
    beast::error_code ignored;
    socket().shutdown(tcp::socket::shutdown_send, ignored);
    beast::get_lowest_layer(stream_).expires_after(kLingerTimeout);
    DrainSome();
  }

  void DrainSome() {
    buffer_.clear();
    stream_.async_read_some(buffer_.prepare(8192),
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->lingered_ += n;
                              if (ec || self->phase_ == Phase::kClosed ||
                                  self->lingered_ > kLingerBytes) {
                                return self->Close();
                              }
                              self->DrainSome();
                            });
  }

  // A streamed answer (StreamBody): the head now, then what the sink is sent, until one side
  // ends it. What the client sends meanwhile is read and dropped, so that its close is seen.
  void StartStream(Response response) {
    request_ = Request{};
    Release();
    if (state_->stopping) return Close();
    keep_alive_ = false;
    chunked_ = version_ >= 11;
    stream_body_ = std::move(response.stream);
    phase_ = Phase::kStreaming;
    beast::error_code ignored;
    socket().set_option(net::socket_base::send_buffer_size(kStreamSendBuffer), ignored);
    const auto status = static_cast<bhttp::status>(response.status);
    std::string head = (chunked_ ? "HTTP/1.1 " : "HTTP/1.0 ") + std::to_string(response.status) +
                       " " + std::string(bhttp::obsolete_reason(status)) + "\r\n";
    if (!response.content_type.empty()) head += "Content-Type: " + response.content_type + "\r\n";
    for (const auto& [name, value] : response.headers) head += name + ": " + value + "\r\n";
    if (chunked_) head += "Transfer-Encoding: chunked\r\n";
    head += "Connection: close\r\n\r\n";
    beast::get_lowest_layer(stream_).expires_never();
    out_queue_.push_back({std::make_shared<const std::string>(std::move(head)), false});
    DropInput();
    WriteNextOut();
    if (stream_body_->open) {
      stream_body_->open(std::make_shared<Sink>(this->shared_from_this()));
    }
  }

  // StreamSink of one connection: holds it weakly.
  class Sink final : public StreamSink {
   public:
    explicit Sink(const std::shared_ptr<Connection>& connection) : connection_(connection) {}
    bool Send(std::shared_ptr<const std::string> bytes) override {
      const std::shared_ptr<Connection> connection = connection_.lock();
      return connection && connection->Push(std::move(bytes));
    }
    void End() override {
      if (const std::shared_ptr<Connection> connection = connection_.lock()) {
        net::post(connection->stream_.get_executor(), [connection] { connection->EndStream(); });
      }
    }

   private:
    std::weak_ptr<Connection> connection_;
  };

  // Any thread.
  bool Push(std::shared_ptr<const std::string> bytes) {
    if (stream_closed_.load()) return false;
    const std::size_t size = bytes->size();
    if (out_pending_.fetch_add(size) + size > kStreamOutputLimit) {
      if (!overflowed_.exchange(true)) {
        net::post(stream_.get_executor(), [self = this->shared_from_this()] {
          if (self->phase_ == Phase::kClosed) return;
          self->state_->Reject(Rejection::kStreamOverflow);
          self->Close();
        });
      }
      return false;
    }
    net::post(stream_.get_executor(),
              [self = this->shared_from_this(), bytes = std::move(bytes)]() mutable {
                if (self->phase_ != Phase::kStreaming) return;
                self->out_queue_.push_back({std::move(bytes), true});
                self->WriteNextOut();
              });
    return true;
  }

  void EndStream() {
    if (phase_ != Phase::kStreaming || ending_) return;
    ending_ = true;
    if (chunked_) out_queue_.push_back({std::make_shared<const std::string>("0\r\n\r\n"), false});
    WriteNextOut();
  }

  // One write at a time, each under write_timeout; the read that drops input stays pending
  // (beast's stream times its reads and writes apart).
  void WriteNextOut() {
    if (phase_ != Phase::kStreaming || out_writing_) return;
    if (out_queue_.empty()) {
      if (ending_) return Close();
      return;
    }
    out_writing_ = true;
    const Out& next = out_queue_.front();
    std::array<net::const_buffer, 3> buffers{};
    std::size_t count = 0;
    if (next.chunk) {
      char size[24];
      const int length = std::snprintf(size, sizeof size, "%zx\r\n", next.bytes->size());
      chunk_prefix_.assign(size, static_cast<std::size_t>(length));
      if (chunked_) buffers[count++] = net::buffer(chunk_prefix_);
      buffers[count++] = net::buffer(*next.bytes);
      if (chunked_) buffers[count++] = net::buffer("\r\n", 2);
    } else {
      buffers[count++] = net::buffer(*next.bytes);
    }
    beast::get_lowest_layer(stream_).expires_after(options().write_timeout);
    net::async_write(stream_, std::vector<net::const_buffer>(buffers.begin(), buffers.begin() + count),
                     [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
                       if (self->phase_ == Phase::kClosed) return;
                       if (ec) return self->Cut(ec);
                       self->out_writing_ = false;
                       const Out& done = self->out_queue_.front();
                       if (done.chunk) self->out_pending_ -= done.bytes->size();
                       self->out_queue_.pop_front();
                       if (self->out_queue_.empty()) {
                         beast::get_lowest_layer(self->stream_).expires_never();
                       }
                       self->WriteNextOut();
                     });
  }

  // Reads and drops what a streamed answer's client sends (a browser sends nothing): its close,
  // or more than kLingerBytes, closes the connection.
  void DropInput() {
    buffer_.clear();
    stream_.async_read_some(buffer_.prepare(1024),
                            [self = this->shared_from_this()](beast::error_code ec, std::size_t n) {
                              if (self->phase_ == Phase::kClosed) return;
                              self->lingered_ += n;
                              if (ec || self->lingered_ > kLingerBytes) return self->Close();
                              self->DropInput();
                            });
  }

  // Reserves `bytes` of HttpServerOptions::max_body_bytes_in_flight; false when they would
  // pass it.
  bool Reserve(std::size_t bytes) {
    std::atomic<std::size_t>& in_flight = state_->body_bytes;
    std::size_t current = in_flight.load();
    do {
      if (current + bytes > options().max_body_bytes_in_flight) return false;
    } while (!in_flight.compare_exchange_weak(current, current + bytes));
    reserved_ = bytes;
    return true;
  }

  void Release() {
    state_->body_bytes -= reserved_;
    reserved_ = 0;
  }

  // Closes after a read or write that failed: counted when it was a deadline that passed.
  void Cut(const beast::error_code& ec) {
    if (ec == beast::error::timeout && phase_ != Phase::kClosed) {
      state_->Reject(Rejection::kTimeout);
    }
    Close();
  }

  void Close() {
    if (phase_ == Phase::kClosed) return;
    Release();
    phase_ = Phase::kClosed;
    beast::get_lowest_layer(stream_).close();
    if (stream_body_) {
      stream_closed_ = true;
      stream_body_.reset();  // what it holds (the hub's place) goes now, not with the connection
    }
  }

  std::shared_ptr<Listener::State> state_;
  std::uint64_t id_;
  std::shared_ptr<net::ssl::context> tls_;  // before stream_, which refers to it
  Stream stream_;
  std::string remote_address_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<bhttp::response<bhttp::string_body>> response_;
  Request request_;
  Phase phase_ = Phase::kIdle;
  int served_ = 0;
  unsigned version_ = 11;
  bool keep_alive_ = false;
  bool head_only_ = false;
  std::size_t lingered_ = 0;
  std::size_t reserved_ = 0;  // of state_->body_bytes

  // A streamed answer (Phase::kStreaming).
  struct Out {
    std::shared_ptr<const std::string> bytes;
    bool chunk = true;  // framed as one chunk (chunked_); false: the head and the last chunk
  };
  std::shared_ptr<StreamBody> stream_body_;
  std::deque<Out> out_queue_;
  std::string chunk_prefix_;  // the size line of the chunk being written
  bool out_writing_ = false;
  bool chunked_ = true;
  bool ending_ = false;
  std::atomic<std::size_t> out_pending_{0};  // bytes Push accepted and not yet written
  std::atomic<bool> stream_closed_{false};
  std::atomic<bool> overflowed_{false};
};

}  // namespace transport

void Listener::State::Accept(const std::shared_ptr<State>& self) {
  acceptor.async_accept(net::make_strand(io),
                        [self](beast::error_code ec, tcp::socket socket) {
                          self->OnAccept(self, ec, std::move(socket));
                        });
}

void Listener::State::OnAccept(const std::shared_ptr<State>& self, beast::error_code ec,
                               tcp::socket socket) {
  if (stopping || ec == net::error::operation_aborted) return;
  if (ec) {
    // Out of descriptors or memory: wait a little rather than spin (connections will close).
    LogLine("accept: " + ec.message());
    retry.expires_after(kAcceptRetry);
    retry.async_wait([self](beast::error_code wait_ec) {
      if (!wait_ec && !self->stopping) self->Accept(self);
    });
    return;
  }
  std::shared_ptr<ConnectionBase> connection;
  {
    const std::lock_guard lock(mutex);
    if (live.size() < options.max_connections) {
      const std::uint64_t id = next_id++;
      if (tls) {
        connection = std::make_shared<Connection<TlsStream>>(self, id, std::move(socket),
                                                                         tls->Current());
      } else {
        connection =
            std::make_shared<Connection<PlainStream>>(self, id, std::move(socket), nullptr);
      }
      live.emplace(id, connection);
      CountConnections();
    }
  }
  if (connection) {
    connection->Start();
  } else {
    Reject(Rejection::kTooManyConnections);
    // Over the cap: a best-effort 503 without waiting for the client (plain HTTP only: a TLS
    // client would read it as garbage), then closed.
    beast::error_code ignored;
    socket.non_blocking(true, ignored);
    if (!tls) socket.write_some(net::buffer(refusal), ignored);
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
  }
  Accept(self);
}

const char* ToString(Rejection rejection) {
  switch (rejection) {
    case Rejection::kHeaderTooLarge: return "header_too_large";
    case Rejection::kBodyTooLarge: return "body_too_large";
    case Rejection::kBusy: return "busy";
    case Rejection::kTooManyConnections: return "too_many_connections";
    case Rejection::kTimeout: return "timeout";
    case Rejection::kBadRequest: return "bad_request";
    case Rejection::kStreamOverflow: return "stream_overflow";
  }
  return "unknown";
}

const std::string* Request::Param(std::string_view name) const {
  for (const auto& [key, value] : params) {
    if (key == name) return &value;
  }
  return nullptr;
}

Listener::Listener(HttpServerOptions options, Routes routes)
    : state_(std::make_shared<State>(std::move(options), std::move(routes))) {}

Listener::~Listener() {
  Stop();
}

Outcome<Done> Listener::Start() {
  State& state = *state_;
  assert(!state.started && "Listener::Start called twice");
  const std::string& listen = state.options.listen;
  Outcome<ListenAddress> address = ParseListen(listen);
  if (!address) return address.failure();
  if (!state.options.tls_cert_file.empty() || !state.options.tls_key_file.empty()) {
    state.tls.emplace(state.options.tls_cert_file, state.options.tls_key_file,
                      state.options.tls_reload_interval);
    if (Outcome<Done> loaded = state.tls->Load(); !loaded) return loaded.failure();
  }
  const auto unusable = [&listen] {
    return Failure::Stalled("ListenFailed", "cannot listen on \"" + listen +
                                                "\": the address is in use or not local");
  };
  beast::error_code ec;
  tcp::resolver resolver(state.io);
  const auto endpoints = resolver.resolve(address->host, std::to_string(address->port),
                                          tcp::resolver::passive | tcp::resolver::numeric_service,
                                          ec);
  if (ec) return unusable();
  bool bound = false;
  for (const auto& entry : endpoints) {
    state.acceptor.close(ec);
    state.acceptor.open(entry.endpoint().protocol(), ec);
    if (ec) continue;
    // SO_REUSEADDR for a quick restart (TIME_WAIT); never SO_REUSEPORT, which would let a second
    // daemon bind the same port and silently share its requests.
    state.acceptor.set_option(net::socket_base::reuse_address(true), ec);
    state.acceptor.bind(entry.endpoint(), ec);
    if (ec) continue;
    state.acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec) continue;
    bound = true;
    break;
  }
  if (!bound) {
    state.acceptor.close(ec);
    return unusable();
  }
  state.port = state.acceptor.local_endpoint(ec).port();
  const Response refusal = state.routes.error(503, "too many connections");
  state.refusal = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: " + refusal.content_type +
                  "\r\nContent-Length: " + std::to_string(refusal.body.size()) +
                  "\r\nConnection: close\r\n\r\n" + refusal.body;
  state.workers.emplace(state.options.threads, state.options.max_queued_requests);
  state.probes.emplace(1, kProbeQueueLimit);
  state.watches.emplace(kWatchThreads, static_cast<std::size_t>(kWatchThreads));
  state.work.emplace(state.io.get_executor());
  state.started = true;
  net::dispatch(state.acceptor.get_executor(), [self = state_] { self->Accept(self); });
  state.io_thread = std::thread([&state] {
    while (true) {
      try {
        state.io.run();
        return;
      } catch (...) {
        // A handler threw on the I/O thread (none should): log it and keep serving.
        LogLine("I/O thread: " + ExceptionText(std::current_exception(), "unknown exception"));
      }
    }
  });
  return Ok();
}

int Listener::port() const {
  return state_->port;
}

void Listener::Stop() {
  State& state = *state_;
  if (!state.started || !state.io_thread.joinable()) return;
  state.stopping = true;
  // Closed on the acceptor's strand, and waited for: once Stop returns, connecting is refused.
  std::promise<void> closed;
  net::dispatch(state.acceptor.get_executor(), [self = state_, &closed] {
    beast::error_code ignored;
    self->acceptor.close(ignored);
    self->retry.cancel();
    std::vector<std::shared_ptr<ConnectionBase>> open;
    {
      const std::lock_guard lock(self->mutex);
      for (const auto& [id, weak] : self->live) {
        if (auto connection = weak.lock()) open.push_back(std::move(connection));
      }
    }
    for (const auto& connection : open) connection->Stop();
    closed.set_value();
  });
  closed.get_future().wait();
  {
    std::unique_lock lock(state.mutex);
    state.drained.wait(lock, [&state] { return state.live.empty(); });
  }
  state.work.reset();
  state.io.stop();
  state.io_thread.join();
  // The handlers still queued (the accept aborted by close(), the cancelled retry) each hold the
  // state: run them now, or the io_context that owns them keeps the state alive for ever (found
  // by LeakSanitizer: scripts/asan.sh).
  state.io.restart();
  state.io.poll();
  state.workers->Shutdown();
  state.probes->Shutdown();
  state.watches->Shutdown();
}

}  // namespace tmaster::controller::http
