// `vcpclip train`, see include/vcpclip/app/train.h.
#include "vcpclip/app/train.h"

#include "vcpclip/common/error.h"

namespace vcpclip::app {

train::TrainRequest make_train_request(const RunConfig& cfg, const TrainFlags& flags) {
  train::TrainRequest req;
  req.runtime = cfg.runtime;
  req.model = cfg.require_model("train");
  req.data = cfg.require_train_data("train");
  req.val_data = cfg.train.val_data;
  req.train = cfg.train.options;
  if (!flags.init_from.empty()) req.train.init_from = flags.init_from;
  if (flags.max_steps >= 0) req.train.max_steps = flags.max_steps;
  req.resume = flags.resume;
  req.progress = flags.progress;
  req.config_text = cfg.text;
  return req;
}

train::TrainSummary run_train(const TrainCommand& cmd) {
  return train::run_training(make_train_request(load_run_config(cmd.config, cmd.overrides), cmd.flags));
}

}  // namespace vcpclip::app
