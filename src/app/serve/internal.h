#pragma once
// What the HTTP side of `vcpclip serve` shares between its files (src/app/serve/http.cpp routes,
// src/app/serve/handlers.cpp inference endpoints). Private to src/app.
#include <atomic>
#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>

#include "vcpclip/app/config/serve_options.h"
#include "vcpclip/app/serve/batcher.h"
#include "vcpclip/app/serve/metrics.h"
#include "vcpclip/vcpclip.h"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace vcpclip::app {

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
void set_error(httplib::Response& res, int status, const std::string& message);

/// POST /v1/predict.
void handle_predict(ServeContext& ctx, const httplib::Request& req, httplib::Response& res);
/// POST /v2/models/vcpclip/infer (KServe v2 inference protocol, JSON).
void handle_infer(ServeContext& ctx, const httplib::Request& req, httplib::Response& res);

}  // namespace vcpclip::app
