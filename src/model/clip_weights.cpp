// CLIP weights into a ClipModel: config inference from shapes, strict streaming load (see
// clip_weights.h).
#include "vcpclip/model/clip_weights.h"

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <cmath>
#include <set>

#include "vcpclip/common/error.h"
#include "vcpclip/model/strict_load.h"

namespace vcpclip::model {

namespace {

const io::WeightEntry& need(const std::map<std::string, const io::WeightEntry*>& t, const std::string& key,
                            const std::string& path, size_t dims) {
  auto it = t.find(key);
  VCP_CHECK(it != t.end(), "cannot infer the CLIP config of '", path, "': tensor '", key,
            "' is missing (only OpenAI ViT CLIP checkpoints are supported)");
  VCP_CHECK(it->second->shape.size() == dims, "cannot infer the CLIP config of '", path, "': tensor '", key,
            "' has shape ", shape_text(it->second->shape), ", expected ", dims, " dimensions");
  return *it->second;
}

/// Number of distinct block indices N among names "<prefix>N.<suffix>".
int64_t count_blocks(const std::vector<io::WeightEntry>& entries, const std::string& prefix) {
  std::set<std::string> idx;
  for (const auto& e : entries) {
    if (e.name.compare(0, prefix.size(), prefix) != 0) continue;
    auto rest = e.name.substr(prefix.size());
    idx.insert(rest.substr(0, rest.find('.')));
  }
  return static_cast<int64_t>(idx.size());
}

/// The OpenAI model whose sizes these are, or a descriptive name.
std::string openai_name(const ClipConfig& c) {
  struct Known {
    const char* name;
    int64_t embed, res, vlayers, vwidth, patch, twidth, tlayers;
  };
  static const Known known[] = {{"ViT-B-16", 512, 224, 12, 768, 16, 512, 12},
                                {"ViT-B-32", 512, 224, 12, 768, 32, 512, 12},
                                {"ViT-L-14", 768, 224, 24, 1024, 14, 768, 12},
                                {"ViT-L-14-336", 768, 336, 24, 1024, 14, 768, 12}};
  for (const auto& k : known)
    if (k.embed == c.embed_dim && k.res == c.vision.image_size && k.vlayers == c.vision.layers &&
        k.vwidth == c.vision.width && k.patch == c.vision.patch_size && k.twidth == c.text.width &&
        k.tlayers == c.text.layers)
      return k.name;
  return "ViT-W" + std::to_string(c.vision.width) + "-P" + std::to_string(c.vision.patch_size) + "-" +
         std::to_string(c.vision.image_size);
}

}  // namespace

ClipConfig infer_clip_config(const std::vector<io::WeightEntry>& entries, const std::string& path) {
  std::map<std::string, const io::WeightEntry*> t;
  for (const auto& e : entries) t[e.name] = &e;
  ClipConfig cfg;
  const auto& conv = need(t, "visual.conv1.weight", path, 4).shape;
  const auto& vpos = need(t, "visual.positional_embedding", path, 2).shape;
  const auto& proj = need(t, "visual.proj", path, 2).shape;
  const auto& tproj = need(t, "text_projection", path, 2).shape;
  cfg.text.context_length = need(t, "positional_embedding", path, 2).shape[0];
  cfg.text.vocab_size = need(t, "token_embedding.weight", path, 2).shape[0];
  cfg.text.width = need(t, "ln_final.weight", path, 1).shape[0];
  cfg.vision.width = conv[0];
  cfg.vision.patch_size = conv[3];
  const int64_t rows = vpos[0] - 1;
  const auto grid = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(rows))));
  VCP_CHECK(grid * grid == rows, "cannot infer the CLIP config of '", path, "': visual.positional_embedding has ",
            vpos[0], " rows, expected a square patch grid plus one");
  cfg.vision.image_size = grid * cfg.vision.patch_size;
  cfg.vision.layers = count_blocks(entries, "visual.transformer.resblocks.");
  cfg.embed_dim = tproj[1];
  VCP_CHECK(proj[1] == cfg.embed_dim, "cannot infer the CLIP config of '", path, "': visual.proj is ", shape_text(proj),
            " but text_projection is ", shape_text(tproj));
  VCP_CHECK(cfg.text.width % 64 == 0, "cannot infer the text heads of '", path, "': text width ", cfg.text.width,
            " is not a multiple of 64 (OpenAI's heads = width / 64); give the model config explicitly");
  cfg.text.heads = cfg.text.width / 64;
  cfg.text.layers = count_blocks(entries, "transformer.resblocks.");
  cfg.name = openai_name(cfg);
  return cfg;
}

namespace {

void load_from(ClipModel& model, const TensorSource& source, const std::string& path) {
  auto params = model->named_parameters(/*recurse=*/true);
  // OpenAI's token embedding has no <|class|> row: the stored rows fill all but the last one.
  bool class_row = false;
  auto token_rows = [&](const std::string& name, at::IntArrayRef stored, at::Tensor& p) -> at::Tensor {
    if (name != "token_embedding.weight" || stored.size() != 2 || stored[0] + 1 != p.size(0) || stored[1] != p.size(1))
      return {};
    class_row = true;
    return p.slice(0, 0, stored[0]);
  };
  load_strict(params, source, "CLIP weights '" + path + "'", "the model", token_rows);
  torch::NoGradGuard no_grad;
  if (class_row) model->token_embedding->weight[-1].zero_();  // <|class|>
}

}  // namespace

void load_clip_weights(ClipModel& model, io::WeightsReader& file) {
  load_from(model, TensorSource::from_file(file), file.path());
}

void load_clip_weights(ClipModel& model, const std::map<std::string, at::Tensor>& tensors, const std::string& path) {
  load_from(model, TensorSource::from_map(tensors), path);
}

ClipModel load_clip_model(const std::string& weights_path, const std::optional<ClipConfig>& config,
                          Activation activation, StageTimer* timer) {
  auto t = StageTimer::scope(timer, "open weights file");
  auto file = io::open_weights(weights_path);
  ClipConfig cfg;
  if (config) {
    cfg = *config;
  } else {
    cfg = infer_clip_config(file->entries(), weights_path);
    cfg.activation = activation;
    cfg.validate("'" + weights_path + "'");
  }
  t = StageTimer::scope(timer, "allocate model");
  ClipModel model(cfg, /*random_init=*/false);
  t = StageTimer::scope(timer, "read + convert tensors");
  load_clip_weights(model, *file);
  model->eval();
  for (auto& p : model->parameters()) p.set_requires_grad(false);
  return model;
}

}  // namespace vcpclip::model
