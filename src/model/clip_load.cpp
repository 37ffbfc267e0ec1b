// Building a ClipModel from a weights file (config given or inferred) and loading it strictly.
#include "vcpclip/common/error.h"
#include "vcpclip/io/openai_weights.h"
#include "vcpclip/model/clip_model.h"

namespace vcpclip::model {

ClipModel load_clip_model(const std::string& weights_path, const std::optional<ClipConfig>& config,
                          const std::string& activation) {
  auto tensors = io::read_clip_tensors(weights_path);
  ClipConfig cfg;
  if (config) {
    cfg = *config;
  } else {
    cfg = io::infer_clip_config(tensors, weights_path);
    cfg.activation = activation;
    cfg.validate("'" + weights_path + "'");
  }
  ClipModel model(cfg);
  io::load_clip_weights(model, tensors, weights_path);
  model->eval();
  for (auto& p : model->parameters()) p.set_requires_grad(false);
  return model;
}

}  // namespace vcpclip::model
