// The event-driven HTTP/1.1 layer of `vcpclip serve` (see src/app/serve/internal.h and
// docs/architecture.md "serve's I/O"), on Boost.Beast over Boost.Asio. Each I/O thread runs its
// own io_context and owns the connections it was given: a connection is a few kilobytes of state
// and a timer, never a thread. A connection goes through phases, each with its own deadline:
//   head        the whole request head (serve.header_timeout_s), from accept or the first byte
//   body        the whole body (serve.body_timeout_s)
//   busy        the request is with the server (no deadline here: the worker pool answers it)
//   write       the answer (serve.timeout_s)
//   idle        keep-alive, waiting for the next request's first byte (serve.keep_alive_timeout_s)
// A timeout mid-head or mid-body answers 408 and closes; an idle one just closes. Answers the
// layer gives itself (400, 408, 413, 414) close the connection after a short lingering read, so
// that the client sees the answer and not a reset.
#include <spdlog/spdlog.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <unordered_set>

#include "internal.h"

namespace vcpclip::app {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr size_t kHeadLimit = 8192;                           ///< request line and headers together
constexpr auto kLinger = std::chrono::seconds(5);             ///< at most, reading what a refused client sends
constexpr auto kLingerIdle = std::chrono::milliseconds(500);  ///< ... and no longer than this after its last byte
constexpr uint64_t kLingerBytes = uint64_t{64} << 20;
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);

struct Limits {
  std::chrono::seconds head, body, keep_alive, write;
  int head_s = 0, body_s = 0;
  uint64_t max_body = 0;
  int64_t max_body_mb = 0;
  int64_t max_connections = 0;
};

class Session;

/// One event loop with its thread's connections (the set is touched on that thread only).
struct Loop {
  std::unordered_set<Session*> sessions;
  asio::io_context ioc{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard{asio::make_work_guard(ioc)};
};

struct Shared {
  Limits limits;
  ServeMetrics& metrics;
  HttpHandlers handlers;
  std::atomic<bool> draining{false};
};

enum class Phase { head, body, busy, write, idle, linger, closed };

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, Loop& loop, Shared& shared)
      : socket_(std::move(socket)), timer_(loop.ioc), loop_(loop), shared_(shared) {}
  ~Session() {
    if (phase_ != Phase::closed) shared_.metrics.connection_closed();  // the loop was stopped
  }

  void start() {
    loop_.sessions.insert(this);
    read_head();
  }

  /// SIGTERM: an idle connection closes now, one with part of a head gets 503 (its request was
  /// not accepted yet), one with a whole head (a request accepted) closes after its answer.
  void on_drain() {
    keep_alive_ = false;
    const bool head_started = phase_ == Phase::head && !(parser_ && parser_->is_header_done());
    if (phase_ == Phase::idle || (head_started && buffer_.size() == 0))
      close();
    else if (head_started)
      refuse(503, "the server is shutting down");
  }

 private:
  void read_head() {
    phase_ = Phase::head;
    parser_.emplace();
    parser_->header_limit(kHeadLimit);
    parser_->body_limit(shared_.limits.max_body);
    arm(shared_.limits.head, ServeMetrics::Timeout::header);
    http::async_read_header(socket_, buffer_, *parser_,
                            [self = shared_from_this()](beast::error_code ec, size_t) { self->on_head(ec); });
  }

  void on_head(beast::error_code ec) {
    if (phase_ != Phase::head) return;
    if (ec) return end_on_error(ec);
    const auto length = parser_->content_length();
    if (length && *length > shared_.limits.max_body) return refuse(413, body_limit_message());
    if (beast::iequals(parser_->get()[http::field::expect], "100-continue") && !parser_->is_done()) {
      static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      asio::async_write(socket_, asio::buffer(kContinue), [self = shared_from_this()](beast::error_code e, size_t) {
        if (self->phase_ != Phase::head) return;
        if (e) return self->end_on_error(e);
        self->read_body();
      });
      return;
    }
    read_body();
  }

  void read_body() {
    if (parser_->is_done()) return dispatch();
    phase_ = Phase::body;
    arm(shared_.limits.body, ServeMetrics::Timeout::body);
    http::async_read(socket_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (self->phase_ != Phase::body) return;
      if (ec) return self->end_on_error(ec);
      self->dispatch();
    });
  }

  /// The whole request is here: hand it to the server; its answer comes back through post().
  void dispatch() {
    disarm();
    phase_ = Phase::busy;
    started_ = Clock::now();
    http::request<http::string_body> msg = parser_->release();
    parser_.reset();
    keep_alive_ = msg.keep_alive() && !shared_.draining;
    HttpRequest req;
    req.method = std::string(msg.method_string());
    const std::string target(msg.target());
    const size_t q = target.find('?');
    req.path = target.substr(0, q);
    if (q != std::string::npos) req.query = target.substr(q + 1);
    for (const auto& field : msg)
      req.headers.emplace_back(std::string(field.name_string()), std::string(field.value()));
    req.body = std::move(msg.body());
    path_ = req.path;
    auto guard = asio::make_work_guard(loop_.ioc);  // the loop keeps running until the answer is back
    shared_.handlers.handle(std::move(req), [self = shared_from_this(), guard](HttpResponse&& res) mutable {
      asio::post(self->loop_.ioc, [self, res = std::move(res)]() mutable { self->write(std::move(res)); });
      guard.reset();
    });
  }

  void write(HttpResponse&& r) {
    if (phase_ == Phase::closed) return;
    shared_.metrics.observe_request(path_, r.status, std::chrono::duration<double>(Clock::now() - started_).count());
    response_.emplace(static_cast<http::status>(r.status), 11);
    if (!r.content_type.empty()) response_->set(http::field::content_type, r.content_type);
    for (const auto& [name, value] : r.headers) response_->insert(name, value);
    response_->body() = std::move(r.body);
    response_->keep_alive(keep_alive_ && !shared_.draining);
    response_->prepare_payload();
    phase_ = Phase::write;
    arm(shared_.limits.write, ServeMetrics::Timeout::write);
    http::async_write(socket_, *response_, [self = shared_from_this()](beast::error_code ec, size_t) {
      if (self->phase_ != Phase::write) return;
      self->response_.reset();
      if (ec) return self->end_on_error(ec);
      if (self->lingering_) return self->linger();
      if (!self->keep_alive_ || self->shared_.draining) return self->close();
      self->wait_next();
    });
  }

  /// Keep-alive: wait for the next request's first byte (or take the pipelined one at once).
  void wait_next() {
    if (buffer_.size() > 0) return read_head();
    buffer_.shrink_to_fit();  // an idle connection keeps no buffer
    phase_ = Phase::idle;
    arm(shared_.limits.keep_alive, ServeMetrics::Timeout::keep_alive);
    socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](beast::error_code ec) {
      if (self->phase_ != Phase::idle) return;
      if (ec) return self->end_on_error(ec);
      self->read_head();
    });
  }

  /// A read or write ended with `ec`: a timeout, the client going away, or a malformed request.
  void end_on_error(beast::error_code ec) {
    if (timed_out_) {
      shared_.metrics.observe_timeout(kind_);
      const bool partial = phase_ == Phase::body || (phase_ == Phase::head && buffer_.size() > 0);
      if (!partial) return close();
      return refuse(408, phase_ == Phase::body
                             ? "the request body did not arrive within " + std::to_string(shared_.limits.body_s) +
                                   " s (serve.body_timeout_s)"
                             : "the request head did not arrive within " + std::to_string(shared_.limits.head_s) +
                                   " s (serve.header_timeout_s)");
    }
    const bool reading = phase_ == Phase::head || phase_ == Phase::body;
    if (!reading || ec == http::error::end_of_stream || ec == http::error::partial_message ||
        ec.category() != http::make_error_code(http::error::end_of_stream).category())
      return close();  // the client went away (or the socket failed): nobody to answer
    if (ec == http::error::header_limit)
      return refuse(first_line_over_limit() ? 414 : 400,
                    first_line_over_limit() ? "the request line is over 8192 bytes"
                                            : "the request head is over 8192 bytes (a header line too long)");
    if (ec == http::error::body_limit) return refuse(413, body_limit_message());
    refuse(400, "malformed HTTP request (" + ec.message() + ")");
  }

  /// Answers `status` from the I/O layer itself and closes the connection afterwards.
  void refuse(int status, const std::string& message) {
    disarm();
    beast::error_code ignored;
    socket_.cancel(ignored);  // a read still pending (a refusal at drain) ends; its handler sees the new phase
    lingering_ = true;
    keep_alive_ = false;
    if (parser_ && parser_->is_header_done()) {
      const std::string target(parser_->get().target());
      path_ = target.substr(0, target.find('?'));
    }
    parser_.reset();
    started_ = Clock::now();
    write(shared_.handlers.error(status, message));
  }

  /// After a refusal: stop sending, read (and drop) what the client still sends for a moment,
  /// then close, so that the client reads the answer instead of a connection reset.
  void linger() {
    phase_ = Phase::linger;
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    scratch_ = std::make_unique<char[]>(16384);
    linger_end_ = Clock::now() + kLinger;
    read_and_drop();
  }
  void read_and_drop() {
    arm(std::min<Clock::duration>(kLingerIdle, linger_end_ - Clock::now()), ServeMetrics::Timeout::none);
    socket_.async_read_some(asio::buffer(scratch_.get(), 16384),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              if (self->phase_ != Phase::linger) return;
                              self->dropped_ += n;
                              if (ec || self->dropped_ > kLingerBytes) return self->close();
                              self->read_and_drop();
                            });
  }

  void close() {
    if (phase_ == Phase::closed) return;
    phase_ = Phase::closed;
    disarm();
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    loop_.sessions.erase(this);
    shared_.metrics.connection_closed();
  }

  /// The phase's deadline: when it passes, the pending operation is cancelled (timed_out_ set).
  void arm(Clock::duration after, ServeMetrics::Timeout kind) {
    ++generation_;
    timed_out_ = false;
    kind_ = kind;
    timer_.expires_after(after);
    timer_.async_wait([self = shared_from_this(), g = generation_](beast::error_code ec) {
      if (ec || g != self->generation_ || self->phase_ == Phase::closed) return;
      self->timed_out_ = true;
      beast::error_code ignored;
      self->socket_.cancel(ignored);
    });
  }
  void disarm() {
    ++generation_;
    timed_out_ = false;
    timer_.cancel();
  }

  /// Beast parses the request line as soon as it has it: no target yet means the line itself is too long.
  bool first_line_over_limit() const { return !parser_ || parser_->get().target().empty(); }
  std::string body_limit_message() const {
    return "the body is over serve.max_body_mb = " + std::to_string(shared_.limits.max_body_mb) + " MB";
  }

  tcp::socket socket_;
  asio::steady_timer timer_;
  Loop& loop_;
  Shared& shared_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> response_;
  std::unique_ptr<char[]> scratch_;
  std::string path_;
  Clock::time_point started_ = Clock::now(), linger_end_;
  Phase phase_ = Phase::head;
  ServeMetrics::Timeout kind_ = ServeMetrics::Timeout::none;
  uint64_t generation_ = 0, dropped_ = 0;
  bool timed_out_ = false, keep_alive_ = true, lingering_ = false;
};

}  // namespace

struct HttpIo::Impl {
  Shared shared;
  std::vector<std::unique_ptr<Loop>> loops;
  std::optional<tcp::acceptor> acceptor;
  std::optional<asio::steady_timer> backoff;
  size_t next = 0;
  Clock::time_point last_log{};
  uint64_t unlogged = 0;
  std::mutex mutex;  ///< deadline
  std::optional<Clock::time_point> deadline;

  Impl(ServeMetrics& metrics, HttpHandlers handlers) : shared{Limits{}, metrics, std::move(handlers)} {}
  void accept();
  void on_accept(beast::error_code ec, tcp::socket socket, Loop& loop);
};

void HttpIo::Impl::accept() {
  Loop& loop = *loops[next++ % loops.size()];
  acceptor->async_accept(
      loop.ioc, [this, &loop](beast::error_code ec, tcp::socket socket) { on_accept(ec, std::move(socket), loop); });
}

void HttpIo::Impl::on_accept(beast::error_code ec, tcp::socket socket, Loop& loop) {
  if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;  // draining
  if (ec == asio::error::no_descriptors || ec.value() == ENFILE || ec == asio::error::no_buffer_space ||
      ec == asio::error::no_memory) {
    // Out of descriptors: the connection waits in the backlog; try again shortly, log once a second.
    shared.metrics.observe_accept_backoff();
    ++unlogged;
    if (Clock::now() - last_log >= std::chrono::seconds(1)) {
      spdlog::warn("serve: accept failed ({}), {} time(s) since the last message; backing off {} ms", ec.message(),
                   unlogged, kAcceptBackoff.count());
      last_log = Clock::now();
      unlogged = 0;
    }
    backoff->expires_after(kAcceptBackoff);
    backoff->async_wait([this](beast::error_code e) {
      if (!e && acceptor->is_open()) accept();
    });
    return;
  }
  if (!ec) {
    if (shared.metrics.connections_open() >= shared.limits.max_connections) {
      shared.metrics.observe_refused();
      beast::error_code ignored;
      socket.close(ignored);
    } else {
      beast::error_code ignored;
      socket.set_option(tcp::no_delay(true), ignored);  // answers go out in two writes (head, body)
      shared.metrics.connection_opened();
      asio::post(loop.ioc, [s = std::move(socket), &loop, this]() mutable {
        std::make_shared<Session>(std::move(s), loop, shared)->start();
      });
    }
  }
  accept();
}

HttpIo::HttpIo(const ServeOptions& o, ServeMetrics& metrics, HttpHandlers handlers)
    : impl_(std::make_unique<Impl>(metrics, std::move(handlers))) {
  auto& l = impl_->shared.limits;
  l.head_s = std::min(o.header_timeout_s, o.timeout_s);
  l.body_s = std::min(o.body_timeout_s, o.timeout_s);
  l.head = std::chrono::seconds(l.head_s);
  l.body = std::chrono::seconds(l.body_s);
  l.keep_alive = std::chrono::seconds(std::min(o.keep_alive_timeout_s, o.timeout_s));
  l.write = std::chrono::seconds(o.timeout_s);
  l.max_body_mb = o.max_body_mb;
  l.max_body = static_cast<uint64_t>(o.max_body_mb) << 20;
  l.max_connections = o.max_connections;
  for (int i = 0; i < o.io_threads; ++i) impl_->loops.push_back(std::make_unique<Loop>());
  impl_->backoff.emplace(impl_->loops[0]->ioc);
}

HttpIo::~HttpIo() = default;

int HttpIo::bind(const std::string& host, int port) {
  auto& ioc = impl_->loops[0]->ioc;
  beast::error_code ec;
  tcp::resolver resolver(ioc);
  const auto found = resolver.resolve(host, std::to_string(port), tcp::resolver::passive, ec);
  if (ec || found.empty()) return -1;
  const tcp::endpoint endpoint = found.begin()->endpoint();
  auto& a = impl_->acceptor.emplace(ioc);
  a.open(endpoint.protocol(), ec);
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(endpoint, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    impl_->acceptor.reset();
    return -1;
  }
  return a.local_endpoint().port();
}

void HttpIo::run() {
  if (!impl_->acceptor) return;
  asio::post(impl_->loops[0]->ioc, [this] { impl_->accept(); });
  std::atomic<int> running{static_cast<int>(impl_->loops.size())};
  std::vector<std::thread> threads;
  for (auto& loop : impl_->loops)
    threads.emplace_back([&running, &loop] {
      loop->ioc.run();
      --running;
    });
  // The drain deadline: requests still open then are cut (the batcher has answered 503 by then).
  while (running > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::lock_guard<std::mutex> lock(impl_->mutex);
    if (impl_->deadline && Clock::now() > *impl_->deadline)
      for (auto& loop : impl_->loops) loop->ioc.stop();
  }
  for (auto& t : threads) t.join();
}

void HttpIo::drain(Clock::time_point deadline) {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->deadline = deadline + std::chrono::seconds(2);  // time to write the last answers
  }
  if (impl_->shared.draining.exchange(true)) return;
  asio::post(impl_->loops[0]->ioc, [this] {
    beast::error_code ignored;
    if (impl_->acceptor) impl_->acceptor->close(ignored);
    impl_->backoff->cancel();
  });
  for (auto& loop : impl_->loops)
    asio::post(loop->ioc, [l = loop.get()] {
      const std::vector<Session*> open(l->sessions.begin(), l->sessions.end());
      for (Session* s : open) s->on_drain();
      l->guard.reset();
    });
}

bool HttpIo::draining() const { return impl_->shared.draining; }

}  // namespace vcpclip::app
