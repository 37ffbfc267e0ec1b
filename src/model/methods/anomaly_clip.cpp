// AnomalyCLIP: text, maps, score and checkpoint I/O (see anomaly_clip.h).
#include "vcpclip/model/anomaly_clip.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>

#include "clip_internal.h"
#include "vcpclip/common/error.h"

namespace vcpclip::model {
namespace {

constexpr double kTemperature = 0.07;  // the official code divides every cosine by 0.07

void validate(const AnomalyClipOptions& o, const ClipConfig& clip, int64_t input_size,
              const std::vector<int64_t>& features, int64_t dpam_layer) {
  const std::string where = "model.anomaly_clip";
  const int64_t layers = clip.vision.layers;
  VCP_CHECK(input_size > 0 && input_size % clip.vision.patch_size == 0, "model.image_size ", input_size,
            " must be a positive multiple of the patch size ", clip.vision.patch_size);
  for (size_t i = 0; i < features.size(); ++i) {
    VCP_CHECK(features[i] >= 1 && features[i] <= layers, where, ".features_list: block ", features[i],
              " is out of range: the vision tower has blocks 1..", layers);
    VCP_CHECK(i == 0 || features[i] > features[i - 1], where, ".features_list must be strictly increasing, found ",
              features[i], " after ", features[i - 1]);
  }
  VCP_CHECK(dpam_layer >= 2 && dpam_layer <= layers + 1, where, ".dpam_layer must be in [2, ", layers + 1,
            "] for a vision tower of ", layers, " blocks (0 = the default, ", default_dpam_layer(layers), "), found ",
            o.dpam_layer);
  VCP_CHECK(o.depth >= 1 && o.depth <= clip.text.layers, where, ".depth must be in [1, ", clip.text.layers,
            "] (deep text prompts enter text blocks 1..depth-1 of ", clip.text.layers, "), found ", o.depth);
  VCP_CHECK(o.lambda >= 0 && std::isfinite(o.lambda), where, ".lambda must be a finite number >= 0, found ", o.lambda);
}

}  // namespace

AnomalyClipImpl::AnomalyClipImpl(ClipModel clip_model, const AnomalyClipOptions& opts, int64_t input_size,
                                 int64_t init_seed, const TokenizeFn& tokenize)
    : opts_(opts), input_size_(input_size) {
  const auto& cfg = clip_model->config();
  features_ = opts_.features_list.empty() ? std::vector<int64_t>{cfg.vision.layers} : opts_.features_list;
  dpam_layer_ = opts_.dpam_layer == 0 ? default_dpam_layer(cfg.vision.layers) : opts_.dpam_layer;
  validate(opts_, cfg, input_size_, features_, dpam_layer_);
  clip = register_module("clip", std::move(clip_model));
  for (auto& p : clip->parameters()) p.set_requires_grad(false);
  AnomalyPromptConfig pc;
  pc.text_width = cfg.text.width;
  pc.context_length = cfg.text.context_length;
  pc.n_ctx = opts_.n_ctx;
  pc.t_n_ctx = opts_.t_n_ctx;
  pc.depth = opts_.depth;
  prompt_learner = register_module("prompt_learner", AnomalyPromptLearner(pc, init_seed));
  const auto [text_pos, text_neg] = prompt_learner->prompt_texts();
  auto ids = tokenize({text_pos, text_neg});
  VCP_CHECK(ids.dim() == 2 && ids.size(0) == 2 && ids.size(1) == cfg.text.context_length,
            "AnomalyCLIP: the tokenizer gave ", shape_text(ids.sizes()), " for the two prompts, expected [2, ",
            cfg.text.context_length, "]");
  const int64_t max_id = ids.max().item<int64_t>();
  VCP_CHECK(max_id < cfg.text.vocab_size, "AnomalyCLIP: the prompts use token id ", max_id, " but the backbone '",
            cfg.name, "' has a vocabulary of ", cfg.text.vocab_size, " ids; it needs the full CLIP vocabulary");
  prompt_learner->set_token_buffers(ids[0], ids[1], clip->token_embedding->weight);
  clip->eval();
}

void AnomalyClipImpl::train(bool on) {
  torch::nn::Module::train(on);
  clip->eval();
}

at::Tensor AnomalyClipImpl::encode_text() {
  auto& pl = *prompt_learner;
  auto [prompts, ids] = pl.prompts();
  auto x = prompts + clip->text_positional_embedding().to(prompts.scalar_type());
  const auto compound = pl.compound_prompts();
  const int64_t rows = pl.config().t_n_ctx;
  x = clip->run_text_transformer(std::move(x), [&](int64_t i, at::Tensor h) {
    if (i < 1 || i > static_cast<int64_t>(compound.size())) return h;
    // The official forward rounds the deep prompts through fp16 (.half()) before splicing them in;
    // the casts' backward rounds their gradient to fp16 as well.
    auto ctx = compound[static_cast<size_t>(i - 1)].unsqueeze(0).expand({h.size(0), -1, -1});
    ctx = ctx.to(at::kHalf).to(h.scalar_type());
    return at::cat({h.slice(1, 0, 1), ctx, h.slice(1, 1 + rows)}, 1);
  });
  x = clip->ln_final_forward(x);
  auto eot = ids.to(x.device()).argmax(-1);
  auto rows_eot = x.gather(1, eot.view({-1, 1, 1}).expand({-1, 1, x.size(2)})).squeeze(1);
  return l2_normalise(at::matmul(rows_eot, clip->text_projection_weight().to(rows_eot.scalar_type())));
}

DpamOutput AnomalyClipImpl::encode_image(const at::Tensor& images) {
  VCP_CHECK(images.dim() == 4 && images.size(1) == 3 && images.size(2) == input_size_ && images.size(3) == input_size_,
            "AnomalyCLIP: expected images [B, 3, ", input_size_, ", ", input_size_, "], found ",
            shape_text(images.sizes()));
  return dpam_forward(*clip->visual, images, features_, dpam_layer_);
}

at::Tensor AnomalyClipImpl::layer_probs(const at::Tensor& patch_tokens, const at::Tensor& text) const {
  auto sim = at::matmul(l2_normalise(patch_tokens), text.t().to(patch_tokens.scalar_type()));  // [B, N, 2]
  auto probs = (sim / kTemperature).softmax(-1).slice(1, 1);                                   // class token dropped
  const int64_t b = probs.size(0), n = probs.size(1);
  const auto g = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(n))));
  VCP_CHECK(g * g == n, "AnomalyCLIP: ", n, " patch tokens do not form a square grid");
  auto grid = probs.reshape({b, g, g, 2}).permute({0, 3, 1, 2});
  return at::upsample_bilinear2d(grid, {input_size_, input_size_}, /*align_corners=*/false);
}

at::Tensor AnomalyClipImpl::image_logits(const at::Tensor& image_embedding, const at::Tensor& text) const {
  return at::matmul(l2_normalise(image_embedding), text.t().to(image_embedding.scalar_type())) / kTemperature;
}

AnomalyClipOutput AnomalyClipImpl::forward(const at::Tensor& images) {
  AnomalyClipOutput out;
  auto vis = encode_image(images);
  out.text = encode_text();
  for (const auto& t : vis.patch_tokens) out.probs.push_back(layer_probs(t, out.text));
  out.image_logits = image_logits(vis.image_embedding, out.text);
  return out;
}

std::vector<std::pair<const void*, uint32_t>> AnomalyClipImpl::text_key() const {
  std::vector<std::pair<const void*, uint32_t>> key;
  for (const auto& [name, t] : prompt_learner->state_tensors()) key.emplace_back(t.data_ptr(), t._version());
  return key;
}

AnomalyClipMaps AnomalyClipImpl::predict_maps(const at::Tensor& images) {
  at::NoGradGuard no_grad;
  auto vis = encode_image(images);
  at::Tensor text;
  if (!is_training() && text_cache_.defined() && text_cache_key_ == text_key()) {
    text = text_cache_;
  } else {
    text = encode_text();
    if (!is_training()) text_cache_ = text, text_cache_key_ = text_key();
  }
  AnomalyClipMaps out;
  for (const auto& t : vis.patch_tokens) {
    auto p = layer_probs(t, text);
    auto m = (p.select(1, 1) + 1 - p.select(1, 0)) / 2.0;
    out.map = out.map.defined() ? out.map.add_(m) : m;
  }
  out.map = out.map.to(at::kFloat);
  out.score = image_logits(vis.image_embedding, text).softmax(-1).select(1, 1).to(at::kFloat);
  return out;
}

std::string checkpoint_method_of(const io::ReferenceCheckpoint& ckpt) {
  bool prompt_learner = false, vcp = false, linear = false;
  for (const auto& [name, tensors] : ckpt.modules) {
    prompt_learner |= name == "prompt_learner";
    vcp |= name == "New_Lan_Embed" || name == "Zero_try";
    linear |= name == "trainable_linearlayer";
  }
  for (const auto& [name, t] : ckpt.parameters)
    vcp |= name == "prompt_embeddings" || name == "deep_prompt_embeddings" || name.rfind("prompt_proj", 0) == 0;
  if (prompt_learner) return "anomaly_clip";
  if (vcp) return "vcp_clip";
  if (linear) return "april_gan";
  return "";
}

void AnomalyClipImpl::load_checkpoint(const std::string& path) {
  const auto ckpt = io::read_reference_checkpoint(path, /*keep_integer=*/true);
  const auto method = checkpoint_method_of(ckpt);
  std::string keys;
  for (const auto& [name, t] : ckpt.modules) keys += (keys.empty() ? "'" : ", '") + name + "'";
  for (const auto& [name, t] : ckpt.parameters) keys += (keys.empty() ? "'" : ", '") + name + "'";
  VCP_CHECK(method != "vcp_clip" && method != "april_gan", "checkpoint '", path,
            "' is not an AnomalyCLIP checkpoint: its keys (", keys, ") look like a ", method,
            " checkpoint; set model.method: ", method, " to use it");
  VCP_CHECK(ckpt.modules.size() == 1 && ckpt.parameters.empty() && method == "anomaly_clip", "checkpoint '", path,
            "' is not an AnomalyCLIP checkpoint: expected one entry 'prompt_learner' (a state_dict), found ",
            keys.empty() ? std::string("none") : keys);
  std::map<std::string, at::Tensor> flat;
  for (const auto& [name, t] : ckpt.modules.front().second) flat.emplace(name, t);
  prompt_learner->load_state(flat, "the 'prompt_learner' tensors of checkpoint '" + path + "'");
  text_cache_ = at::Tensor();
}

io::ReferenceCheckpoint AnomalyClipImpl::to_checkpoint() const {
  io::ReferenceCheckpoint ckpt;
  io::NamedTensors tensors;
  for (const auto& [name, t] : prompt_learner->state_tensors())
    tensors.emplace_back(name, t.detach().to(at::kCPU).clone().contiguous());
  ckpt.modules.emplace_back("prompt_learner", std::move(tensors));
  return ckpt;
}

void AnomalyClipImpl::save_checkpoint(const std::string& path) const {
  io::write_reference_checkpoint(path, to_checkpoint());
}

}  // namespace vcpclip::model
