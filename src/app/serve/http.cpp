// The HTTP server of `vcpclip serve` (see include/vcpclip/app/serve/http.h): routes, the token,
// error answers, metrics and draining. The connections are the I/O layer's
// (src/app/serve/connection.cpp); every route but the two inference endpoints is answered on the
// I/O thread that read the request, so health probes never wait behind inference. The inference
// endpoints (src/app/serve/handlers.cpp) run on the worker pool.
#include "vcpclip/app/serve/http.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <set>

#include "internal.h"
#include "vcpclip/common/error.h"

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

/// The methods of RFC 9110 and PATCH; anything else is a malformed request (400).
bool known_method(const std::string& m) {
  static const std::set<std::string> known{"GET",     "HEAD",    "POST",  "PUT",  "DELETE",
                                           "CONNECT", "OPTIONS", "TRACE", "PATCH"};
  return known.count(m) > 0;
}

/// Routes answered without the token: the page itself holds no data, and probes carry none.
bool open_route(const HttpRequest& req) {
  return req.method == "GET" && (req.path == "/" || req.path == "/v2/health/live" || req.path == "/v2/health/ready");
}

bool inference_route(const std::string& path) { return path == "/v1/predict" || path == "/v2/models/vcpclip/infer"; }

void json(HttpResponse& res, const nlohmann::json& j) { res.set_content(j.dump(), "application/json"); }

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

void set_error(HttpResponse& res, int status, const std::string& message) {
  res.status = status;
  if (status == 503) res.set_header("Retry-After", "1");
  if (status == 401) res.set_header("WWW-Authenticate", "Bearer");
  res.set_content(nlohmann::json{{"error", message.substr(0, message.find('\n'))}}.dump(), "application/json");
}

struct ServeServer::Impl {
  ServeContext ctx;
  std::mutex mutex;  ///< set_model vs drain
  std::string token;
  std::unique_ptr<HttpIo> io;
  std::unique_ptr<WorkerPool> workers;  ///< destroyed first: its jobs answer through `io`

  bool authorised(const HttpRequest& req) const {
    if (token.empty() || open_route(req)) return true;
    const std::string auth = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    return auth.rfind(prefix, 0) == 0 && same_secret(auth.substr(prefix.size()), token);
  }
  void handle(HttpRequest&& req, const std::function<void(HttpResponse&&)>& reply);
  void answer_here(const HttpRequest& req, HttpResponse& res);
  void run_inference(const HttpRequest& req, HttpResponse& res);
};

void ServeServer::Impl::handle(HttpRequest&& req, const std::function<void(HttpResponse&&)>& reply) {
  HttpResponse res;
  const auto route = routes().find(req.path);
  if (!known_method(req.method)) {
    set_error(res, 400, "unknown HTTP method '" + req.method.substr(0, 20) + "'");
  } else if (!authorised(req)) {
    set_error(res, 401,
              req.has_header("Authorization") ? "wrong token" : "missing token (send Authorization: Bearer <token>)");
  } else if (route == routes().end()) {
    set_error(res, 404, "no route " + req.path.substr(0, 100) + " (see GET / for the page, POST /v1/predict, /v2/...)");
  } else if (req.method != route->second) {
    set_error(res, 405,
              "method " + req.method + " is not allowed on " + req.path + " (allowed: " + route->second + ")");
    res.set_header("Allow", route->second);
  } else if (inference_route(req.path)) {
    // Decoding and the wait for the batch happen on a worker; a full pool answers 503 at once.
    auto shared = std::make_shared<HttpRequest>(std::move(req));
    if (workers->try_post([this, shared, reply] {
          HttpResponse r;
          run_inference(*shared, r);
          reply(std::move(r));
        }))
      return;
    set_error(
        res, 503,
        "the queue is full (serve.queue = " + std::to_string(ctx.options.queue) + " images waiting); retry later");
  } else {
    answer_here(req, res);
  }
  reply(std::move(res));
}

void ServeServer::Impl::run_inference(const HttpRequest& req, HttpResponse& res) {
  try {
    if (req.path == "/v1/predict")
      handle_predict(ctx, req, res);
    else
      handle_infer(ctx, req, res);
  } catch (const std::exception& e) {
    spdlog::error("serve: {} {} failed: {}", req.method, req.path.substr(0, 100), e.what());
    res = HttpResponse();
    set_error(res, 500, std::string("internal error: ") + e.what());
  }
}

/// The routes answered on the I/O thread (cheap, never waiting for the model).
void ServeServer::Impl::answer_here(const HttpRequest& req, HttpResponse& res) {
  const std::string& p = req.path;
  if (p == "/") {
    res.set_header("Content-Security-Policy",
                   "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:; "
                   "connect-src 'self'");
    res.set_content(serve_page_html(), "text/html; charset=utf-8");
  } else if (p == "/metrics") {
    res.set_content(ctx.metrics.prometheus(ctx.batcher && ctx.ready ? ctx.batcher->depth() : 0),
                    "text/plain; version=0.0.4");
  } else if (p == "/v2") {
    json(res, {{"name", "vcpclip"}, {"version", "1"}, {"extensions", nlohmann::json::array()}});
  } else if (p == "/v2/health/live") {
    json(res, {{"live", true}});
  } else if (p == "/v2/health/ready" || p == "/v2/models/vcpclip/ready") {
    if (ctx.draining)
      set_error(res, 503, "the server is shutting down");
    else if (!ctx.ready)
      set_error(res, 503, "the model is still loading");
    else
      json(res, {{"ready", true}});
  } else if (p == "/v2/models/vcpclip") {
    if (!ctx.ready) return set_error(res, 503, "the model is still loading");
    json(res, ctx.metadata);
  }
}

ServeServer::ServeServer(const ServeOptions& options) : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  m.ctx.options = options;
  const char* env = std::getenv("VCPCLIP_SERVE_TOKEN");
  m.token = env && *env ? env : options.token;
  HttpHandlers handlers;
  handlers.handle = [&m](HttpRequest&& req, std::function<void(HttpResponse &&)> reply) {
    m.handle(std::move(req), reply);
  };
  handlers.error = [](int status, const std::string& message) {
    HttpResponse res;
    set_error(res, status, message);
    return res;
  };
  m.io = std::make_unique<HttpIo>(options, m.ctx.metrics, std::move(handlers));
  m.workers = std::make_unique<WorkerPool>(options.worker_threads());
}

ServeServer::~ServeServer() {
  impl_->ctx.batcher.reset();  // answers what is still queued before the model goes
  impl_->workers.reset();      // the jobs still running answer (into the stopped loops) and end
}

int ServeServer::bind() {
  const auto& o = impl_->ctx.options;
  const int port = impl_->io->bind(o.host, o.port);
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
  if (!impl_->ctx.draining) impl_->io->run();
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
  impl_->io->drain(Clock::now() + std::chrono::seconds(impl_->ctx.options.timeout_s));
}

const ServeMetrics& ServeServer::metrics() const { return impl_->ctx.metrics; }

}  // namespace vcpclip::app
