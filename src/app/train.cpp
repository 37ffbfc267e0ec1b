// `vcpclip train`, see include/vcpclip/app/train.h.
#include "vcpclip/app/train.h"

#include "vcpclip/app/run_config.h"
#include "vcpclip/common/error.h"

namespace vcpclip::app {

train::TrainRequest make_train_request(const TrainCommand& cmd) {
  const auto cfg = load_run_config(cmd.config, cmd.overrides);
  train::TrainRequest req;
  req.runtime = cfg.runtime;
  req.model = cfg.require_model("train");
  req.data = cfg.require_train_data("train");
  req.train = cfg.train.options;
  req.train.val_data = cfg.train.val_data;
  if (!cmd.init_from.empty()) req.train.init_from = cmd.init_from;
  if (cmd.max_steps >= 0) req.train.max_steps = cmd.max_steps;
  req.resume = cmd.resume;
  req.progress = cmd.progress;
  req.config_text = cfg.text;
  return req;
}

train::TrainSummary run_train(const TrainCommand& cmd) { return train::run_training(make_train_request(cmd)); }

}  // namespace vcpclip::app
