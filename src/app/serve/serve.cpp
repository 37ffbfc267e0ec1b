// `vcpclip serve`: loading, signals and draining (see include/vcpclip/app/serve/serve.h).
#include "vcpclip/app/serve/serve.h"

#include <pthread.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <thread>

#include "vcpclip/app/config/run_config.h"
#include "vcpclip/common/error.h"
#include "vcpclip/eval/calibration.h"
#include "vcpclip/io/sha256.h"

namespace fs = std::filesystem;

namespace vcpclip::app {

ServeRequest make_serve_request(const ServeFlags& flags) {
  VCP_CHECK(!flags.checkpoint.empty(), "serve: no checkpoint given (--checkpoint)");
  const RunConfig cfg = load_run_config(flags.config, flags.overrides);
  ServeRequest req;
  req.serve = cfg.serve;
  if (flags.host) req.serve.host = *flags.host;
  if (flags.port) {
    VCP_CHECK(*flags.port >= 0 && *flags.port <= 65535, "serve: --port expects 0..65535, found ", *flags.port);
    req.serve.port = *flags.port;
  }
  req.backbone = cfg.require_model("serve").backbone;
  req.method = cfg.require_model("serve").method;
  req.inferencer.config = flags.config;
  req.inferencer.overrides = flags.overrides;
  req.inferencer.checkpoint = flags.checkpoint;
  req.inferencer.calibration = flags.calibration;
  req.inferencer.class_name = flags.class_name;
  req.inferencer.reference = flags.reference;
  return req;
}

ServeModel load_serve_model(const ServeRequest& req) {
  ServeModel m;
  m.inferencer = std::make_unique<Inferencer>(req.inferencer);
  nlohmann::json params = {{"backbone", fs::path(req.backbone).filename().string()},
                           {"method", req.method},
                           {"image_size", m.inferencer->image_size()},
                           {"checkpoint", fs::path(req.inferencer.checkpoint).filename().string()},
                           {"checkpoint_sha256", io::sha256_file(req.inferencer.checkpoint, "checkpoint")},
                           {"calibration", nullptr},
                           {"few_shot", m.inferencer->reference_shots()}};
  if (!req.inferencer.calibration.empty()) {
    const auto cal = eval::read_calibration(req.inferencer.calibration);
    const auto& cls = cal.find(req.inferencer.class_name, req.inferencer.calibration);
    nlohmann::json classes = nlohmann::json::array();
    for (const auto& c : cal.classes) classes.push_back(c.name);
    params["calibration"] = {{"method", cal.method},
                             {"classes", classes},
                             {"class", cls.name},
                             {"image_threshold", cls.image_threshold},
                             {"pixel_threshold", cls.pixel_threshold}};
    m.map_range = std::make_pair(cls.map_min, cls.map_max);
    m.pixel_threshold = cls.pixel_threshold;
  }
  nlohmann::json outputs = {{{"name", "score"}, {"datatype", "FP32"}, {"shape", {1}}},
                            {{"name", "anomaly_map"}, {"datatype", "FP32"}, {"shape", {-1, -1}}}};
  if (m.inferencer->calibrated()) outputs.push_back({{"name", "decision"}, {"datatype", "BYTES"}, {"shape", {1}}});
  m.metadata = {{"name", "vcpclip"},
                {"versions", {"1"}},
                {"platform", "vcpclip_libtorch"},
                {"inputs", {{{"name", "image"}, {"datatype", "BYTES"}, {"shape", {1}}}}},
                {"outputs", outputs},
                {"parameters", params}};
  return m;
}

void raise_descriptor_limit(int64_t max_connections) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return spdlog::warn("serve: cannot read RLIMIT_NOFILE");
  const rlim_t before = limit.rlim_cur;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) limit.rlim_cur = before;
  }
  const auto text = [](rlim_t v) { return v == RLIM_INFINITY ? std::string("unlimited") : std::to_string(v); };
  spdlog::info("serve: file descriptors: limit {} (soft limit was {}, hard limit {})", text(limit.rlim_cur),
               text(before), text(limit.rlim_max));
  if (limit.rlim_cur != RLIM_INFINITY && static_cast<int64_t>(limit.rlim_cur) < max_connections + 64)
    spdlog::warn(
        "serve: the descriptor limit {} is below serve.max_connections = {} (+ 64 for the server): past it, "
        "accepts back off until connections close (vcpclip_accept_backoffs_total)",
        text(limit.rlim_cur), max_connections);
}

int run_serve(const ServeRequest& req, const std::function<void(int)>& on_listening) {
  // Signals go to one thread (sigtimedwait below): block them before any other thread exists,
  // so every thread started from here (HTTP workers, the batcher, BLAS) inherits the mask.
  sigset_t stop_signals, previous;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, &previous);
  std::signal(SIGPIPE, SIG_IGN);
  // OpenCV's own decoder limit, for formats whose header image.cpp does not read.
  setenv("OPENCV_IO_MAX_IMAGE_PIXELS", std::to_string(req.serve.max_pixels).c_str(), 1);
  raise_descriptor_limit(req.serve.max_connections);

  ServeServer server(req.serve);
  const int port = server.bind();
  std::atomic<bool> done{false};
  std::thread signals([&] {
    const timespec tick{0, 200 * 1000 * 1000};
    while (!done) {
      const int sig = sigtimedwait(&stop_signals, nullptr, &tick);
      if (sig > 0) {
        spdlog::info("serve: {} received: no new connections; answering the accepted requests (at most {} s)",
                     sig == SIGTERM ? "SIGTERM" : "SIGINT", req.serve.timeout_s);
        server.drain();
        return;
      }
    }
  });
  std::thread http([&] { server.listen(); });
  if (on_listening) on_listening(port);
  try {
    server.set_model(load_serve_model(req));
    spdlog::info("serve: model ready on http://{}:{}/", req.serve.host, port);
  } catch (...) {
    server.drain();
    http.join();
    done = true;
    signals.join();
    pthread_sigmask(SIG_SETMASK, &previous, nullptr);
    throw;
  }
  http.join();
  done = true;
  signals.join();
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  spdlog::info("serve: drained, {} requests answered", server.metrics().requests("/v1/predict", 200));
  return 0;
}

}  // namespace vcpclip::app
