#pragma once
// The HTTP server of `vcpclip serve` (README "Serving"), on Boost.Beast (src/app/serve/connection.cpp):
//   POST /v1/predict                 image bytes (image/*) or multipart field `image` → JSON
//   GET  /v2, /v2/health/live, /v2/health/ready, /v2/models/vcpclip, /v2/models/vcpclip/ready
//   POST /v2/models/vcpclip/infer    KServe v2 inference protocol (JSON, BYTES input "image")
//   GET  /metrics                    Prometheus text (app/serve/metrics.h)
//   GET  /                           the inspection page (self-contained HTML)
// Errors are {"error": "<one line>"} with 400/401/404/405/413/415/500/503 (503 with Retry-After).
// The server listens before the model is loaded (ready answers 503 until set_model), and
// drain() stops accepting, lets accepted requests finish (their images run without waiting for
// fuller batches), and answers 503 to images still queued after serve.timeout_s.
// No route reads a file: the page is compiled in.
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>

#include "vcpclip/app/config/serve_options.h"
#include "vcpclip/app/serve/metrics.h"
#include "vcpclip/vcpclip.h"

namespace vcpclip::app {

struct ServeContext;

/// The loaded model and what the answers say about it.
struct ServeModel {
  std::unique_ptr<Inferencer> inferencer;
  nlohmann::json metadata;  ///< GET /v2/models/vcpclip (name, versions, platform, inputs, outputs, parameters)
  std::optional<std::pair<float, float>> map_range;  ///< with a calibration: its class's pixel-map range
  double pixel_threshold = 0;                        ///< with a calibration
};

class ServeServer {
 public:
  explicit ServeServer(const ServeOptions& options);
  ~ServeServer();
  ServeServer(const ServeServer&) = delete;
  ServeServer& operator=(const ServeServer&) = delete;

  /// Binds serve.host:serve.port (port 0 = any free port); returns the port. vcpclip::Error on failure.
  int bind();
  /// Serves until drain() (or stop) and every accepted request is answered. Call after bind().
  void listen();
  /// Makes the server ready: starts the batcher on the model.
  void set_model(ServeModel model);
  /// Stops accepting and drains (thread-safe, idempotent; readiness answers 503 from now on).
  void drain();
  const ServeMetrics& metrics() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// The page served at GET / (generated from src/app/serve/page.html by CMake).
const std::string& serve_page_html();

/// Constant-time comparison of two secrets (the time depends on the lengths only).
bool same_secret(const std::string& a, const std::string& b);

}  // namespace vcpclip::app
