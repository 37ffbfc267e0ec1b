#pragma once
// What the HTTP side of `vcpclip serve` shares between its files. Private to src/app/serve:
//   connection.cpp  the event-driven I/O (Boost.Beast on Boost.Asio): accepts, reads, timeouts, writes
//   http.cpp        routes, the token, answers that the I/O threads give at once, the worker pool
//   handlers.cpp    the inference endpoints (run on the worker pool: decode, batch, wait, answer)
//   request.cpp     the request's query and multipart body
// No Boost header here: only connection.cpp compiles Beast.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "vcpclip/app/config/serve_options.h"
#include "vcpclip/app/serve/batcher.h"
#include "vcpclip/app/serve/metrics.h"
#include "vcpclip/vcpclip.h"

namespace vcpclip::app {

/// One HTTP request as the I/O threads read it (head and whole body).
struct HttpRequest {
  std::string method;  ///< as sent ("GET", "POST", ...; "" when the method is not a known HTTP one)
  std::string path;    ///< the target without its query
  std::string query;   ///< after '?', undecoded
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  bool has_header(const std::string& name) const;
  /// The first header of that name (case-insensitive), or "".
  std::string get_header_value(const std::string& name) const;
  bool has_param(const std::string& name) const;
  /// The first query parameter of that name, percent-decoded, or "".
  std::string get_param_value(const std::string& name) const;
};

/// The answer to one request.
struct HttpResponse {
  int status = 200;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  void set_header(const std::string& name, const std::string& value) { headers.emplace_back(name, value); }
  void set_content(std::string content, const std::string& type) {
    body = std::move(content);
    content_type = type;
  }
};

/// The content of the multipart/form-data field `name` (nothing when there is no such field);
/// ServeError 400 when the body is not multipart as `content_type` announces.
std::optional<std::string> multipart_field(const std::string& body, const std::string& content_type,
                                           const std::string& name);

/// The calibration facts the answers need beyond the Inferencer's decisions.
struct ServeCalibration {
  std::pair<float, float> map_range;  ///< the class's pixel-map range (unit_map)
  double pixel_threshold = 0;         ///< on the unit map
};

struct ServeContext {
  ServeOptions options;
  ServeMetrics metrics;
  std::atomic<bool> ready{false};     ///< the model is loaded (set after everything below)
  std::atomic<bool> draining{false};  ///< SIGTERM/SIGINT seen
  std::unique_ptr<Inferencer> inferencer;
  std::unique_ptr<Batcher> batcher;
  nlohmann::json metadata;  ///< GET /v2/models/vcpclip
  std::optional<ServeCalibration> calibration;
};

/// Sets an error answer: {"error": message}, the status, Retry-After for 503.
void set_error(HttpResponse& res, int status, const std::string& message);

/// POST /v1/predict.
void handle_predict(ServeContext& ctx, const HttpRequest& req, HttpResponse& res);
/// POST /v2/models/vcpclip/infer (KServe v2 inference protocol, JSON).
void handle_infer(ServeContext& ctx, const HttpRequest& req, HttpResponse& res);

/// Threads that run the inference endpoints (decode, queue for the batcher, wait for the batch),
/// so that the I/O threads never block. A job that finds no idle thread is refused (the caller
/// answers 503 at once, as a full batcher queue does): with serve.threads = queue + 16, the
/// batcher's queue fills first.
class WorkerPool {
 public:
  explicit WorkerPool(int threads);
  ~WorkerPool();  ///< runs the jobs still waiting, then joins
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;
  bool try_post(std::function<void()> job);

 private:
  void loop();
  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  int idle_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

/// What the I/O layer asks of the server: `handle` is called on an I/O thread with a whole
/// request and must call `reply` exactly once, from any thread; `error` builds the answer to a
/// request the I/O layer refuses itself (400, 408, 413, 414).
struct HttpHandlers {
  std::function<void(HttpRequest&&, std::function<void(HttpResponse&&)> reply)> handle;
  std::function<HttpResponse(int status, const std::string& message)> error;
};

/// The event-driven HTTP/1.1 layer (src/app/serve/connection.cpp): `io_threads` threads, each
/// with its own event loop, own every connection; timeouts per phase (head, body, keep-alive,
/// write), `max_connections`, the EMFILE/ENFILE back-off, and the counters in ServeMetrics.
class HttpIo {
 public:
  HttpIo(const ServeOptions& options, ServeMetrics& metrics, HttpHandlers handlers);
  ~HttpIo();
  HttpIo(const HttpIo&) = delete;
  HttpIo& operator=(const HttpIo&) = delete;
  /// Binds host:port (0 = any free port); the bound port, or -1.
  int bind(const std::string& host, int port);
  /// Runs the event loops until drain() and every open request is answered (or the drain deadline).
  void run();
  /// Stops accepting, closes idle connections, lets open requests finish until `deadline`.
  void drain(std::chrono::steady_clock::time_point deadline);
  /// Whether drain() was called.
  bool draining() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vcpclip::app
