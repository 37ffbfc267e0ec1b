// build_vcp_clip: backbone config + weights + tokenizer + templates → VcpClip; checkpoint I/O.
#include <spdlog/spdlog.h>
#include <torch/utils.h>

#include "vcpclip/common/error.h"
#include "vcpclip/io/checkpoint.h"
#include "vcpclip/io/weights_reader.h"
#include "vcpclip/model/clip_weights.h"
#include "vcpclip/model/tokenizer.h"
#include "vcpclip/model/vcp_clip.h"

namespace vcpclip::model {

VcpClip build_vcp_clip(const ModelOptions& opts, c10::Device device) {
  VCP_CHECK(!opts.backbone.empty(), "model options: 'backbone' (the CLIP config JSON) is not set");
  ClipConfig cfg = ClipConfig::from_json_file(opts.backbone);
  cfg.activation = opts.activation;

  torch::manual_seed(opts.init_seed);  // random backbone init (weights empty) is reproducible too
  ClipModel clip(cfg, /*random_init=*/opts.weights.empty());
  if (opts.weights.empty())
    spdlog::warn(
        "model.weights is empty: the CLIP backbone '{}' is RANDOMLY initialised (for tests and tiny "
        "configs only; results are meaningless)",
        cfg.name);

  auto tokenizer = Tokenizer::load(find_vocab(opts.vocab));
  const int64_t deep_len = resolved_deep_layers(opts, cfg) > 0 ? opts.deep_prompt_len : 0;
  auto templates = tokenize_templates([&](const std::vector<std::string>& t) { return tokenizer.tokenize(t); },
                                      opts.templates_normal, opts.templates_abnormal, opts.prompt_len, deep_len);
  const int64_t max_id = templates.ids.max().item<int64_t>();
  VCP_CHECK(max_id <= cfg.text.vocab_size, "backbone ", opts.backbone, ": the prompt templates use token id ", max_id,
            " but the text vocabulary has only ", cfg.text.vocab_size,
            " ids (+1 for <|class|>); VCP-CLIP needs the full CLIP vocabulary (vocab_size 49408)");
  VCP_CHECK(cfg.text.vocab_size == Tokenizer::kClass, "backbone ", opts.backbone, ": vocab_size ", cfg.text.vocab_size,
            " does not match the CLIP tokenizer (49408; <|class|> is id 49408)");

  VcpClip model(std::move(clip), opts, std::move(templates));  // validates opts against the backbone
  if (!opts.weights.empty()) {
    auto file = io::open_weights(opts.weights);
    load_clip_weights(model->clip, *file);
  }
  model->to(device);
  model->eval();
  return model;
}

void load_vcp_checkpoint(VcpClipImpl& model, const std::string& path) {
  model.head->load_checkpoint(io::read_reference_checkpoint(path), path);
}

void save_vcp_checkpoint(const VcpClipImpl& model, const std::string& path) {
  io::write_reference_checkpoint(path, model.head->to_checkpoint());
}

}  // namespace vcpclip::model
