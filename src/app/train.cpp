// `vcpclip train`, see include/vcpclip/app/train.h.
#include "vcpclip/app/train.h"

#include <filesystem>

#include "vcpclip/common/error.h"

namespace vcpclip::app {

namespace fs = std::filesystem;

train::TrainRequest make_train_request(const RunConfig& cfg, const TrainFlags& flags) {
  train::TrainRequest req;
  req.runtime = cfg.runtime;
  req.model = cfg.require_model("train");
  req.data = cfg.require_train_data("train");
  req.val_data = cfg.train.val_data;
  req.train = cfg.train.options;
  RunConfig effective = cfg;  // the flags that override keys show in config.yaml too
  if (!flags.init_from.empty()) {
    req.train.init_from = flags.init_from;
    effective.set_effective("train.init_from", YAML::Node(fs::absolute(flags.init_from).lexically_normal().string()));
  }
  if (flags.max_steps >= 0) {
    req.train.max_steps = flags.max_steps;
    effective.set_effective("train.max_steps", YAML::Node(std::to_string(flags.max_steps)));
  }
  req.resume = flags.resume;
  req.progress = flags.progress;
  req.config_text = run_config_file_text(effective.text);
  return req;
}

train::TrainSummary run_train(const TrainCommand& cmd) {
  return train::run_training(make_train_request(load_run_config(cmd.config, cmd.overrides), cmd.flags));
}

}  // namespace vcpclip::app
