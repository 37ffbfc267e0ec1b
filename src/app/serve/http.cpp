// The HTTP server of `vcpclip serve` (see include/vcpclip/app/serve/http.h): routes, the token,
// error answers, metrics and draining. The inference endpoints are in handlers.cpp.
#include "vcpclip/app/serve/http.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <map>
#include <mutex>

#include "internal.h"
#include "vcpclip/common/error.h"
#include "vcpclip/http_lib.h"

namespace vcpclip::app {
namespace {

using Clock = std::chrono::steady_clock;

/// Each route and the one method it answers (others get 405 with Allow).
const std::map<std::string, std::string>& routes() {
  static const std::map<std::string, std::string> r{
      {"/", "GET"},
      {"/metrics", "GET"},
      {"/v1/predict", "POST"},
      {"/v2", "GET"},
      {"/v2/health/live", "GET"},
      {"/v2/health/ready", "GET"},
      {"/v2/models/vcpclip", "GET"},
      {"/v2/models/vcpclip/ready", "GET"},
      {"/v2/models/vcpclip/infer", "POST"},
  };
  return r;
}

/// Routes answered without the token: the page itself holds no data, and probes carry none.
bool open_route(const httplib::Request& req) {
  return req.method == "GET" && (req.path == "/" || req.path == "/v2/health/live" || req.path == "/v2/health/ready");
}

std::string default_message(int status, const httplib::Request& req, const ServeOptions& o) {
  const std::string path = req.path.substr(0, 100);
  switch (status) {
    case 400:
      return "bad request (malformed HTTP, a header line over 8192 bytes, or a body that stopped arriving)";
    case 404:
      return "no route " + path + " (see GET / for the page, POST /v1/predict, /v2/...)";
    case 405:
      return "method " + req.method.substr(0, 20) + " is not allowed on " + path +
             " (allowed: " + routes().at(req.path) + ")";
    case 413:
      return "the body is over serve.max_body_mb = " + std::to_string(o.max_body_mb) + " MB";
    case 414:
      return "the request line is over 8192 bytes";
    default:
      return "HTTP error " + std::to_string(status);
  }
}

/// When the current request reached routing (the latency histogram); per worker thread.
thread_local Clock::time_point request_start;
thread_local bool request_timed = false;

}  // namespace

bool same_secret(const std::string& a, const std::string& b) {
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

void set_error(httplib::Response& res, int status, const std::string& message) {
  res.status = status;
  if (status == 503) res.set_header("Retry-After", "1");
  if (status == 401) res.set_header("WWW-Authenticate", "Bearer");
  res.set_content(nlohmann::json{{"error", message.substr(0, message.find('\n'))}}.dump(), "application/json");
}

struct ServeServer::Impl {
  ServeContext ctx;
  httplib::Server svr;
  std::mutex mutex;  ///< set_model vs drain
  std::string token;

  void configure();
  void add_routes();
  bool authorised(const httplib::Request& req) const {
    if (token.empty() || open_route(req)) return true;
    const std::string auth = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    return auth.rfind(prefix, 0) == 0 && same_secret(auth.substr(prefix.size()), token);
  }
};

void ServeServer::Impl::configure() {
  const auto& o = ctx.options;
  const char* env = std::getenv("VCPCLIP_SERVE_TOKEN");
  token = env && *env ? env : o.token;
  const size_t threads = static_cast<size_t>(o.worker_threads());
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  svr.set_read_timeout(o.timeout_s, 0);
  // An answer goes out in two writes (headers, body): without TCP_NODELAY, Nagle's algorithm holds
  // the body until the client's delayed ACK, about 40 ms on Linux, on every keep-alive request.
  svr.set_tcp_nodelay(true);
  svr.set_write_timeout(o.timeout_s, 0);
  svr.set_keep_alive_timeout(std::min(5, o.timeout_s));
  svr.set_keep_alive_max_count(1000);
  svr.set_payload_max_length(static_cast<size_t>(o.max_body_mb) << 20);
  svr.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    request_start = Clock::now();
    request_timed = true;
    if (authorised(req)) return httplib::Server::HandlerResponse::Unhandled;
    set_error(res, 401,
              req.has_header("Authorization") ? "wrong token" : "missing token (send Authorization: Bearer <token>)");
    return httplib::Server::HandlerResponse::Handled;
  });
  svr.set_error_handler(
      httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
        const auto it = routes().find(req.path);
        if (res.status == 404 && it != routes().end() && req.method != it->second) {
          res.status = 405;
          res.set_header("Allow", it->second);
        }
        if (res.body.empty()) set_error(res, res.status, default_message(res.status, req, ctx.options));
        return httplib::Server::HandlerResponse::Handled;
      }));
  svr.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("serve: {} {} failed: {}", req.method, req.path.substr(0, 100), what);
    set_error(res, 500, "internal error: " + what);
  });
  svr.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    const double s = request_timed ? std::chrono::duration<double>(Clock::now() - request_start).count() : 0.0;
    request_timed = false;
    ctx.metrics.observe_request(req.path, res.status, s);
    spdlog::debug("serve: {} {} -> {}", req.method, req.path.substr(0, 100), res.status);
  });
}

void ServeServer::Impl::add_routes() {
  auto json = [](httplib::Response& res, const nlohmann::json& j) { res.set_content(j.dump(), "application/json"); };
  svr.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Content-Security-Policy",
                   "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; "
                   "connect-src 'self'");
    res.set_content(serve_page_html(), "text/html; charset=utf-8");
  });
  svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(ctx.metrics.prometheus(ctx.batcher && ctx.ready ? ctx.batcher->depth() : 0),
                    "text/plain; version=0.0.4");
  });
  svr.Get("/v2", [json](const httplib::Request&, httplib::Response& res) {
    json(res, {{"name", "vcpclip"}, {"version", "1"}, {"extensions", nlohmann::json::array()}});
  });
  svr.Get("/v2/health/live", [json](const httplib::Request&, httplib::Response& res) { json(res, {{"live", true}}); });
  auto ready = [this, json](const httplib::Request&, httplib::Response& res) {
    if (ctx.draining)
      set_error(res, 503, "the server is shutting down");
    else if (!ctx.ready)
      set_error(res, 503, "the model is still loading");
    else
      json(res, {{"ready", true}});
  };
  svr.Get("/v2/health/ready", ready);
  svr.Get("/v2/models/vcpclip/ready", ready);
  svr.Get("/v2/models/vcpclip", [this, json](const httplib::Request&, httplib::Response& res) {
    if (!ctx.ready) return set_error(res, 503, "the model is still loading");
    json(res, ctx.metadata);
  });
  svr.Post("/v1/predict",
           [this](const httplib::Request& req, httplib::Response& res) { handle_predict(ctx, req, res); });
  svr.Post("/v2/models/vcpclip/infer",
           [this](const httplib::Request& req, httplib::Response& res) { handle_infer(ctx, req, res); });
}

ServeServer::ServeServer(const ServeOptions& options) : impl_(std::make_unique<Impl>()) {
  impl_->ctx.options = options;
  impl_->configure();
  impl_->add_routes();
}

ServeServer::~ServeServer() {
  impl_->ctx.batcher.reset();  // answers what is still queued before the model goes
}

int ServeServer::bind() {
  const auto& o = impl_->ctx.options;
  int port = o.port;
  if (port == 0)
    port = impl_->svr.bind_to_any_port(o.host);
  else if (!impl_->svr.bind_to_port(o.host, port))
    port = -1;
  VCP_CHECK(port > 0, "serve: cannot listen on ", o.host, ":", o.port,
            " (address in use, not an address of this machine, or not allowed); set serve.host / serve.port or "
            "--host / --port");
  const bool loopback = o.host == "127.0.0.1" || o.host == "::1" || o.host == "localhost";
  if (!loopback && impl_->token.empty())
    spdlog::warn(
        "serve: listening on {} without a token: anyone who can reach this port can use the model "
        "(set serve.token or VCPCLIP_SERVE_TOKEN)",
        o.host);
  return port;
}

void ServeServer::listen() {
  if (!impl_->ctx.draining) impl_->svr.listen_after_bind();
}

void ServeServer::set_model(ServeModel model) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  auto& ctx = impl_->ctx;
  ctx.inferencer = std::move(model.inferencer);
  ctx.metadata = std::move(model.metadata);
  if (model.map_range) ctx.calibration = ServeCalibration{*model.map_range, model.pixel_threshold};
  const auto& o = ctx.options;
  ctx.batcher = std::make_unique<Batcher>(
      *ctx.inferencer, BatcherOptions{o.max_batch, o.max_wait_ms, o.queue, o.wait_always}, &ctx.metrics);
  if (ctx.draining) ctx.batcher->drain(Clock::now() + std::chrono::seconds(o.timeout_s));
  ctx.ready = true;
}

void ServeServer::drain() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    auto& ctx = impl_->ctx;
    if (ctx.draining.exchange(true)) return;
    if (ctx.batcher) ctx.batcher->drain(Clock::now() + std::chrono::seconds(ctx.options.timeout_s));
  }
  impl_->svr.stop();
}

const ServeMetrics& ServeServer::metrics() const { return impl_->ctx.metrics; }

}  // namespace vcpclip::app
