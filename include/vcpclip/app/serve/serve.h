#pragma once
// `vcpclip serve` (README "Serving"): an inspection service over HTTP for one model, with
// dynamic batching, KServe v2 endpoints, Prometheus metrics and a page for people
// (app/serve/http.h). run_serve binds first, answers /v2/health/ready with 503 while the model
// loads, and returns 0 after SIGTERM or SIGINT once every accepted request is answered.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "vcpclip/app/config/serve_options.h"
#include "vcpclip/app/serve/http.h"
#include "vcpclip/vcpclip.h"

namespace vcpclip::app {

/// What the command line gives.
struct ServeFlags {
  std::string config;
  std::vector<std::string> overrides;  ///< --set key=value
  std::string checkpoint;
  std::string calibration;  ///< "" = scores and maps only
  std::string class_name;
  std::string reference;            ///< --reference: few-shot reference images or a saved memory ("" = few_shot.folder)
  std::optional<std::string> host;  ///< --host (over serve.host)
  std::optional<int> port;          ///< --port (over serve.port)
};

struct ServeRequest {
  ServeOptions serve;
  InferencerOptions inferencer;
  std::string backbone;             ///< the model's backbone JSON (metadata names its file)
  std::string method = "vcp_clip";  ///< model.method (metadata records it)
};

/// Loads the run config (every section checked; serve: parsed) and applies the flags.
ServeRequest make_serve_request(const ServeFlags& flags);

/// Builds the Inferencer and the metadata of GET /v2/models/vcpclip (hashes the checkpoint).
ServeModel load_serve_model(const ServeRequest& req);

/// Raises the soft RLIMIT_NOFILE to the hard limit and logs both (a warning when it is below
/// `max_connections`); run_serve calls it first.
void raise_descriptor_limit(int64_t max_connections);

/// Serves until SIGTERM/SIGINT; `on_listening(port)` is called once the socket is bound (before
/// the model loads). Returns 0 after a clean drain; vcpclip::Error when it cannot bind or load.
int run_serve(const ServeRequest& req, const std::function<void(int)>& on_listening);

}  // namespace vcpclip::app
