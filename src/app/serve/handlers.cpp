// The inference endpoints of `vcpclip serve` (README "Serving"): POST /v1/predict and the KServe
// v2 POST /v2/models/vcpclip/infer. Both run on a thread of the worker pool (never on an I/O
// thread): they decode the image, queue it for the batcher (app/serve/batcher.h) and wait at
// most serve.timeout_s for its batch.
#include <algorithm>
#include <chrono>

#include "internal.h"
#include "vcpclip/app/serve/image.h"

namespace vcpclip::app {
namespace {

using Clock = std::chrono::steady_clock;

/// 503 while the model loads or the server drains.
void require_ready(const ServeContext& ctx) {
  if (ctx.draining) throw ServeError(503, "the server is shutting down");
  if (!ctx.ready) throw ServeError(503, "the model is still loading");
}

/// Queues the image and waits for its batch (503 when the queue is full or the wait too long).
BatchOutcome infer(ServeContext& ctx, cv::Mat image, Arrival& arrival) {
  auto future = ctx.batcher->submit(std::move(image), &arrival);
  if (!future)
    throw ServeError(503, ctx.draining ? "the server is shutting down"
                                       : "the queue is full (serve.queue = " + std::to_string(ctx.options.queue) +
                                             " images waiting); retry later");
  if (future->wait_for(std::chrono::seconds(ctx.options.timeout_s)) != std::future_status::ready)
    throw ServeError(
        503, "no answer from the model within serve.timeout_s = " + std::to_string(ctx.options.timeout_s) + " s");
  BatchOutcome out = future->get();
  if (out.status != 200) throw ServeError(out.status, out.error);
  return out;
}

/// The image bytes of a /v1/predict body: raw image/* bytes or the multipart field `image`.
std::string predict_body(const HttpRequest& req) {
  const std::string type = req.get_header_value("Content-Type");
  if (type.rfind("multipart/form-data", 0) == 0) {
    auto field = multipart_field(req.body, type, "image");
    if (!field)
      throw ServeError(400, "multipart/form-data without a field named `image` (send the image file as `image`)");
    return std::move(*field);
  }
  if (type.rfind("image/", 0) == 0) return req.body;
  throw ServeError(415, "unsupported content type '" + type.substr(0, 100) +
                            "': send the image file's bytes as image/* (e.g. image/png) or multipart/form-data "
                            "with a field `image`");
}

bool flag(const HttpRequest& req, const char* name) {
  if (!req.has_param(name)) return false;
  const std::string v = req.get_param_value(name);
  if (v == "1" || v == "true" || v.empty()) return true;
  if (v == "0" || v == "false") return false;
  throw ServeError(400, std::string("query parameter ") + name + "=" + v.substr(0, 20) + ": expected 1 or 0");
}

nlohmann::json regions_json(const Decision& d) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : d.regions)
    out.push_back({{"x", r.x}, {"y", r.y}, {"width", r.width}, {"height", r.height}, {"area", r.area}});
  return out;
}

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

void run_predict_request(ServeContext& ctx, const HttpRequest& req, HttpResponse& res) {
  const auto t0 = Clock::now();
  require_ready(ctx);
  const bool want_map = flag(req, "map"), want_mask = flag(req, "mask"), want_levels = flag(req, "levels");
  if ((want_mask || want_levels) && !ctx.calibration)
    throw ServeError(400, "mask=1 and levels=1 need a calibration (start the server with --calibration)");
  Arrival arrival = ctx.batcher->announce();  // batches being formed wait for this image
  const cv::Mat image = decode_request_image(predict_body(req), ctx.options.max_pixels);
  const BatchOutcome out = infer(ctx, image, arrival);
  const Prediction& p = *out.prediction;
  nlohmann::json j = {{"score", p.score}, {"image_size", {image.rows, image.cols}}};
  if (p.decision) {
    j["decision"] = p.decision->label();
    j["normalized_score"] = p.decision->normalized_score;
    j["class"] = p.decision->class_name;
    j["regions"] = regions_json(*p.decision);
  }
  const std::optional<std::pair<float, float>> range =
      ctx.calibration ? std::optional<std::pair<float, float>>(ctx.calibration->map_range) : std::nullopt;
  if (want_map || want_levels) {
    const cv::Mat unit = unit_map(p.map, range);
    if (want_map) j["map_png"] = base64_encode(overlay_png(image, unit));
    if (want_levels) {
      j["levels_png"] = base64_encode(levels_png(unit));
      j["pixel_threshold"] = ctx.calibration->pixel_threshold;
    }
  }
  if (want_mask) j["mask_png"] = base64_encode(png_bytes(p.decision->mask));
  j["batch_size"] = out.batch_size;
  j["model_ms"] = out.model_ms;
  j["total_ms"] = ms_since(t0);
  res.set_content(j.dump(), "application/json");
}

/// The one image of a KServe v2 request: inputs[0] named "image", BYTES, shape [1], base64 data.
std::string infer_input(const nlohmann::json& body) {
  if (!body.is_object() || !body.contains("inputs") || !body["inputs"].is_array() || body["inputs"].size() != 1)
    throw ServeError(400, "expected {\"inputs\": [one input named \"image\"]} (KServe v2 inference request)");
  const auto& in = body["inputs"][0];
  if (!in.is_object() || in.value("name", "") != "image") throw ServeError(400, "the input must be named \"image\"");
  if (in.value("datatype", "") != "BYTES") throw ServeError(400, "input \"image\": expected datatype BYTES");
  if (in.value("shape", nlohmann::json()) != nlohmann::json::array({1}))
    throw ServeError(400, "input \"image\": expected shape [1] (one image per request)");
  if (!in.contains("data") || !in["data"].is_array() || in["data"].size() != 1 || !in["data"][0].is_string())
    throw ServeError(400, "input \"image\": expected data [\"<base64 image file>\"]");
  return base64_decode(in["data"][0].get<std::string>(), "input \"image\"");
}

void run_infer_request(ServeContext& ctx, const HttpRequest& req, HttpResponse& res) {
  require_ready(ctx);
  const auto body = nlohmann::json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) throw ServeError(400, "the body is not JSON (KServe v2 inference request expected)");
  bool want_score = true, want_decision = static_cast<bool>(ctx.calibration), want_map = false;
  if (body.is_object() && body.contains("outputs")) {
    if (!body["outputs"].is_array()) throw ServeError(400, "\"outputs\" must be an array of {\"name\": ...}");
    want_score = want_decision = false;
    for (const auto& o : body["outputs"]) {
      const std::string name = o.is_object() ? o.value("name", "") : "";
      if (name == "score")
        want_score = true;
      else if (name == "decision" && ctx.calibration)
        want_decision = true;
      else if (name == "anomaly_map")
        want_map = true;
      else
        throw ServeError(400, "unknown output '" + name.substr(0, 40) + "' (score, anomaly_map" +
                                  (ctx.calibration ? ", decision)" : "; decision needs a calibration)"));
    }
  }
  Arrival arrival = ctx.batcher->announce();
  const cv::Mat image = decode_request_image(infer_input(body), ctx.options.max_pixels);
  const Prediction p = *infer(ctx, image, arrival).prediction;
  nlohmann::json outputs = nlohmann::json::array();
  if (want_score) outputs.push_back({{"name", "score"}, {"datatype", "FP32"}, {"shape", {1}}, {"data", {p.score}}});
  if (want_decision)
    outputs.push_back({{"name", "decision"}, {"datatype", "BYTES"}, {"shape", {1}}, {"data", {p.decision->label()}}});
  if (want_map) {
    const cv::Mat m = p.map.isContinuous() ? p.map : p.map.clone();
    std::vector<float> data(m.ptr<float>(0), m.ptr<float>(0) + m.total());
    outputs.push_back({{"name", "anomaly_map"}, {"datatype", "FP32"}, {"shape", {m.rows, m.cols}}, {"data", data}});
  }
  nlohmann::json j = {{"model_name", "vcpclip"}, {"model_version", "1"}, {"outputs", outputs}};
  if (body.contains("id") && body["id"].is_string()) j["id"] = body["id"];
  res.set_content(j.dump(), "application/json");
}

template <typename F>
void guarded(F&& f, HttpResponse& res) {
  try {
    f();
  } catch (const ServeError& e) {
    set_error(res, e.status(), e.what());
  }
}

}  // namespace

void handle_predict(ServeContext& ctx, const HttpRequest& req, HttpResponse& res) {
  guarded([&] { run_predict_request(ctx, req, res); }, res);
}

void handle_infer(ServeContext& ctx, const HttpRequest& req, HttpResponse& res) {
  guarded([&] { run_infer_request(ctx, req, res); }, res);
}

// ---- the worker pool (internal.h): the inference endpoints decode and wait for their batch here,
// never on the I/O threads ----
WorkerPool::WorkerPool(int threads) {
  for (int i = 0; i < std::max(1, threads); ++i) threads_.emplace_back([this] { loop(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

bool WorkerPool::try_post(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stop_ || jobs_.size() >= static_cast<size_t>(idle_)) return false;  // no free worker
    jobs_.push_back(std::move(job));
  }
  cv_.notify_one();
  return true;
}

void WorkerPool::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    ++idle_;
    cv_.wait(lock, [this] { return stop_ || !jobs_.empty(); });
    --idle_;
    if (jobs_.empty()) return;  // stopping, nothing left
    auto job = std::move(jobs_.front());
    jobs_.pop_front();
    lock.unlock();
    job();
    lock.lock();
  }
}

}  // namespace vcpclip::app
