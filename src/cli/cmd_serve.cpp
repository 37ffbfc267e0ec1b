// `vcpclip serve [-c CONFIG] -k CHECKPOINT [--calibration F [--class NAME]] [--host H] [--port P]
//  [--set key=value]...`: the inspection service (README "Serving"). All logic lives in
// vcpclip::app::run_serve.
#include <cstdio>
#include <memory>
#include <string>

#include "command.h"
#include "vcpclip/app/config/run_config.h"
#include "vcpclip/app/serve/serve.h"

namespace {

struct ServeArgs {
  vcpclip::app::ServeFlags flags;
  std::string host;
  int port = -1;
};

}  // namespace

static vcpclip::cli::CommandRegistrar reg(
    "serve", "HTTP inspection service: REST + KServe v2 API, metrics and a page (README \"Serving\")",
    [](CLI::App& sub) -> vcpclip::cli::Action {
      auto a = std::make_shared<ServeArgs>();
      sub.add_option("--config,-c", a->flags.config,
                     "run config (sections model, postprocess, runtime, serve); default: the config.yaml beside "
                     "the checkpoint");
      sub.add_option("--checkpoint,-k", a->flags.checkpoint,
                     "the head's checkpoint in its method's official layout (.pth; model.method)")
          ->required();
      sub.add_option("--calibration", a->flags.calibration,
                     "calibration.json (vcpclip calibrate): OK/NG decisions, masks and regions");
      sub.add_option("--class", a->flags.class_name,
                     "the product class: the calibration's (default: its only class), and the one APRIL-GAN's prompts "
                     "name (model.method april_gan)");
      sub.add_option("--reference", a->flags.reference,
                     "few-shot references: a folder of good images of the product or a saved memory "
                     "(.safetensors; README \"Few-shot\")");
      sub.add_option("--host", a->host, "address to bind (default serve.host, 127.0.0.1)");
      sub.add_option("--port", a->port, "port (default serve.port, 8080; 0 = any free port)");
      sub.add_option("--set", a->flags.overrides, "config override key=value (e.g. serve.max_batch=4)");
      return [a]() {
        a->flags.config = vcpclip::app::find_run_config(a->flags.config, a->flags.checkpoint, "serve");
        if (!a->host.empty()) a->flags.host = a->host;
        if (a->port >= 0) a->flags.port = a->port;
        const auto req = vcpclip::app::make_serve_request(a->flags);
        return vcpclip::app::run_serve(req, [&](int port) {
          std::printf("vcpclip serve: listening on http://%s:%d/\n", req.serve.host.c_str(), port);
          std::fflush(stdout);
        });
      };
    });
