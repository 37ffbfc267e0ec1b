// VcpHead (all trainable parameters, reference checkpoint names) and VcpClip (docs/design.md §3–§5).
#include "vcpclip/model/vcp_clip.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <torch/utils.h>

#include <algorithm>
#include <cmath>

#include "clip_internal.h"
#include "vcpclip/common/error.h"
#include "vcpclip/model/seg_losses.h"
#include "vcpclip/model/strict_load.h"

namespace vcpclip::model {
// ------------------------------------------------------------------------------------------------
VcpHeadConfig VcpHeadConfig::from(const ModelOptions& opts, const ClipConfig& clip) {
  VcpHeadConfig c;
  c.vision_width = clip.vision.width;
  c.text_width = clip.text.width;
  c.embed_dim = clip.embed_dim;
  c.num_feature_layers = static_cast<int64_t>(opts.features_list.size());
  c.prompt_len = opts.prompt_len;
  c.deep_prompt_len = opts.deep_prompt_len;
  c.deep_layers = resolved_deep_layers(opts, clip);
  c.post_heads = opts.post_heads;
  c.prompt_dropout = opts.prompt_dropout;
  return c;
}

PatchLinearImpl::PatchLinearImpl(int64_t vision_width, int64_t embed_dim, int64_t layers) {
  fc = register_module("fc", torch::nn::ModuleList());
  for (int64_t i = 0; i < layers; ++i) {
    linears.emplace_back(torch::nn::Linear(vision_width, embed_dim));
    fc->push_back(linears.back());
  }
}

torch::Tensor PatchLinearImpl::forward(int64_t layer, const torch::Tensor& patches) {
  VCP_CHECK(layer >= 0 && layer < static_cast<int64_t>(linears.size()), "patch linear layer ", layer, " out of range (",
            linears.size(), " layers)");
  return linears[layer]->forward(patches);
}

// ------------------------------------------------------------------------------------------------
VcpHeadImpl::VcpHeadImpl(const VcpHeadConfig& cfg, int64_t seed) : cfg_(cfg) {
  VCP_CHECK(cfg.text_width == cfg.embed_dim, "VCP head: Pre-VCP needs text width == embed_dim, found ", cfg.text_width,
            " and ", cfg.embed_dim);
  if (seed >= 0) torch::manual_seed(static_cast<uint64_t>(seed));
  at::NoGradGuard no_grad;
  const int64_t wt = cfg.text_width, n = cfg.deep_prompt_len;
  // Modules (their state_dicts are the three module entries of the reference checkpoint).
  trainable_linearlayer =
      register_module("trainable_linearlayer", PatchLinear(cfg.vision_width, cfg.embed_dim, cfg.num_feature_layers));
  New_Lan_Embed = register_module("New_Lan_Embed", ContextPrompting(cfg.embed_dim, cfg.prompt_len));
  Zero_try = register_module("Zero_try", PostVcp(cfg.vision_width, cfg.embed_dim, cfg.post_heads));
  // Text-tower prompt parameters (top-level entries, nn.Parameter in the reference).
  prompt_text_projection =
      register_parameter("prompt_text_projection", at::randn({wt, cfg.embed_dim}) * std::pow(double(wt), -0.5));
  prompt_embeddings = register_parameter("prompt_embeddings", at::empty({1, n, wt}).uniform_(-1.0, 1.0));
  if (cfg.deep_layers > 0)
    deep_prompt_embeddings =
        register_parameter("deep_prompt_embeddings", at::empty({cfg.deep_layers, n, wt}).uniform_(-1.0, 1.0));
  prompt_proj = register_module("prompt_proj", torch::nn::Linear(wt, wt));
  torch::nn::init::kaiming_normal_(prompt_proj->weight, 0.0, torch::kFanOut);
  prompt_norm = register_module("prompt_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({wt}).eps(1e-6)));
}

DeepPrompts VcpHeadImpl::deep_prompts() {
  DeepPrompts dp;
  dp.shallow = prompt_embeddings;
  dp.deep = deep_prompt_embeddings;
  dp.proj = prompt_proj;
  dp.norm = prompt_norm;
  dp.layers = cfg_.deep_layers;
  dp.dropout = cfg_.prompt_dropout;
  dp.training = is_training();
  return dp;
}

std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>> VcpHeadImpl::parameter_groups() {
  std::vector<torch::Tensor> main, temps;
  for (auto& kv : named_parameters(true)) {
    if (kv.key() == "New_Lan_Embed.prompt_temp" || kv.key() == "Zero_try.prompt_temp_l1")
      temps.push_back(kv.value());
    else
      main.push_back(kv.value());
  }
  return {main, temps};
}

const std::vector<std::string>& VcpHeadImpl::checkpoint_modules() {
  static const std::vector<std::string> names{"trainable_linearlayer", "New_Lan_Embed", "Zero_try"};
  return names;
}

void VcpHeadImpl::load_checkpoint(const io::ReferenceCheckpoint& ckpt, const std::string& path) {
  const auto flat = ckpt.flatten();
  auto params = named_parameters(true);
  load_strict(params, TensorSource::from_map(flat), "the tensors of checkpoint '" + path + "'",
              msg("the VCP-CLIP head (prompt_len ", cfg_.prompt_len, ", deep_prompt_len ", cfg_.deep_prompt_len,
                  ", deep layers ", cfg_.deep_layers, ", ", cfg_.num_feature_layers, " feature layers, vision width ",
                  cfg_.vision_width, ", embed_dim ", cfg_.embed_dim, ")"));
}

io::ReferenceCheckpoint VcpHeadImpl::to_checkpoint() const {
  io::ReferenceCheckpoint ckpt;
  auto cpu_copy = [](const at::Tensor& t) { return t.detach().to(at::kCPU, at::kFloat).clone().contiguous(); };
  const std::vector<std::pair<std::string, std::shared_ptr<torch::nn::Module>>> mods{
      {"trainable_linearlayer", trainable_linearlayer.ptr()},
      {"New_Lan_Embed", New_Lan_Embed.ptr()},
      {"Zero_try", Zero_try.ptr()}};
  for (const auto& [name, mod] : mods) {
    io::NamedTensors tensors;
    for (const auto& kv : mod->named_parameters(true)) tensors.emplace_back(kv.key(), cpu_copy(kv.value()));
    ckpt.modules.emplace_back(name, std::move(tensors));
  }
  // Reference order of the top-level entries (CLIP.named_parameters() filtered by "prompt").
  ckpt.parameters.emplace_back("prompt_text_projection", cpu_copy(prompt_text_projection));
  ckpt.parameters.emplace_back("prompt_embeddings", cpu_copy(prompt_embeddings));
  if (deep_prompt_embeddings.defined())
    ckpt.parameters.emplace_back("deep_prompt_embeddings", cpu_copy(deep_prompt_embeddings));
  ckpt.parameters.emplace_back("prompt_proj.weight", cpu_copy(prompt_proj->weight));
  ckpt.parameters.emplace_back("prompt_proj.bias", cpu_copy(prompt_proj->bias));
  ckpt.parameters.emplace_back("prompt_norm.weight", cpu_copy(prompt_norm->weight));
  ckpt.parameters.emplace_back("prompt_norm.bias", cpu_copy(prompt_norm->bias));
  return ckpt;
}

// ------------------------------------------------------------------------------------------------
VcpClipImpl::VcpClipImpl(ClipModel clip_model, const ModelOptions& opts, TokenizedTemplates templates)
    : MethodImpl((validate_model_options(opts, clip_model->config(), "model options (backbone " + opts.backbone + ")"),
                  std::move(clip_model)),
                 opts),
      templates_(std::move(templates)) {
  head = register_module("head",
                         VcpHead(VcpHeadConfig::from(opts_, clip->config()), static_cast<int64_t>(opts_.init_seed)));
}

const MethodInfo& vcp_clip_info() {
  static const MethodInfo i = [] {
    MethodInfo m;
    m.name = "vcp_clip";
    m.title = "VCP-CLIP";
    m.needs_class_name = false;
    return m;  // post-processing and training defaults: the structs' (VCP-CLIP's test.py / train.py)
  }();
  return i;
}

const MethodInfo& VcpClipImpl::info() const { return vcp_clip_info(); }

VisionOutput VcpClipImpl::encode_image(const torch::Tensor& images) {
  check_images(images);
  at::NoGradGuard no_grad;
  AutocastScope autocast(precision_ == Precision::kAutocast);  // nested in forward()'s: no change there
  return clip->visual->forward(images, opts_.features_list, true);
}

torch::Tensor VcpClipImpl::encode_text(const torch::Tensor& class_tokens) {
  return encode_text_with_context(*clip, templates_, class_tokens, head->deep_prompts());
}

torch::Tensor VcpClipImpl::raw_logits(int64_t i, const torch::Tensor& patch_tokens, const torch::Tensor& text) {
  auto f = l2_normalise(head->trainable_linearlayer->forward(i, patch_tokens));  // [B, N, E]
  return head->New_Lan_Embed->prompt_temp.exp() * at::matmul(f, text.transpose(1, 2));
}

torch::Tensor VcpClipImpl::post_logits(const torch::Tensor& patch_tokens, const torch::Tensor& text) {
  return head->Zero_try->logits(text, l2_normalise(patch_tokens));
}

torch::Tensor VcpClipImpl::logits_to_probs(const torch::Tensor& logits) const {
  const int64_t b = logits.size(0), n = logits.size(1), c = logits.size(2);
  const auto g = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(n))));
  VCP_CHECK(g * g == n, "VCP-CLIP: ", n, " patch tokens do not form a square grid");
  auto grid = logits.permute({0, 2, 1}).reshape({b, c, g, g});
  auto up = at::upsample_bilinear2d(grid, {opts_.input_size, opts_.input_size}, /*align_corners=*/true);
  return up.softmax(1);
}

VcpOutput VcpClipImpl::forward(const torch::Tensor& images) {
  AutocastScope autocast(precision_ == Precision::kAutocast);
  VcpOutput out;
  auto vis = encode_image(images);
  out.global = vis.global;
  out.class_tokens = head->New_Lan_Embed->forward(vis.global, opts_.use_global);
  out.text = encode_text(out.class_tokens);
  for (std::size_t i = 0; i < vis.patch_features.size(); ++i) {
    auto tokens = vis.patch_features[i].slice(1, 1);  // drop the class token
    out.raw.push_back(logits_to_probs(raw_logits(static_cast<int64_t>(i), tokens, out.text)));
    if (opts_.post_vcp) out.post.push_back(logits_to_probs(post_logits(tokens, out.text)));
  }
  return out;
}

VcpMaps VcpClipImpl::predict_maps(const torch::Tensor& images, StageTimer* timer,
                                  const std::vector<const ReferenceMemory*>& refs, const ClassNames& /*classes*/) {
  at::NoGradGuard no_grad;
  AutocastScope autocast(precision_ == Precision::kAutocast);
  at::Tensor cls, text;
  VcpMaps maps;
  VisionOutput vis = vision_with_references(images, refs, &maps, timer);
  {
    auto t = StageTimer::scope(timer, "Pre-VCP");
    cls = head->New_Lan_Embed->forward(vis.global, opts_.use_global);
  }
  {
    auto t = StageTimer::scope(timer, "text tower");
    text = encode_text(cls);
  }
  auto t = StageTimer::scope(timer, "Post-VCP + maps");
  const int64_t s = opts_.input_size;
  // softmax over 2 channels = sigmoid of the channel difference, and bilinear upsampling is
  // linear: upsample (l1 - l0) once instead of both channels.
  auto anomaly_prob = [&](const at::Tensor& logits) {
    const int64_t b = logits.size(0), n = logits.size(1);
    const auto g = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(n))));
    auto diff = (logits.select(2, 1) - logits.select(2, 0)).reshape({b, 1, g, g});
    return at::upsample_bilinear2d(diff, {s, s}, true).sigmoid_().squeeze(1);
  };
  const auto layers = static_cast<double>(vis.patch_features.size());
  for (std::size_t i = 0; i < vis.patch_features.size(); ++i) {
    auto tokens = vis.patch_features[i].slice(1, 1);
    auto r = anomaly_prob(raw_logits(static_cast<int64_t>(i), tokens, text));
    maps.raw = maps.raw.defined() ? maps.raw.add_(r) : r;
    if (opts_.post_vcp) {
      auto p = anomaly_prob(post_logits(tokens, text));
      maps.post = maps.post.defined() ? maps.post.add_(p) : p;
    }
  }
  maps.raw = maps.raw.div_(layers).to(at::kFloat);  // fp32 whatever the precision (autocast: fp16)
  if (maps.post.defined()) maps.post = maps.post.div_(layers).to(at::kFloat);
  return maps;
}

// --- the method interface -------------------------------------------------------------------------
MethodOutput VcpClipImpl::forward_train(const at::Tensor& images, const ClassNames& /*classes*/) {
  auto out = forward(images);
  MethodOutput m;
  m.raw = std::move(out.raw);
  m.post = std::move(out.post);
  return m;
}

MethodLoss VcpClipImpl::loss(const MethodOutput& out, const at::Tensor& gt) const {
  return vcp_seg_loss(out.raw, out.post, gt);
}

std::vector<ParamGroup> VcpClipImpl::parameter_groups() {
  auto [main, temps] = head->parameter_groups();
  return {ParamGroup{std::move(main), ParamGroup::Lr::kLr}, ParamGroup{std::move(temps), ParamGroup::Lr::kLrTemp}};
}

std::vector<std::pair<std::string, at::Tensor>> VcpClipImpl::trainable_parameters() {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (auto& kv : head->named_parameters(true)) out.emplace_back(kv.key(), kv.value());
  return out;
}

void VcpClipImpl::load_checkpoint(const io::ReferenceCheckpoint& ckpt, const std::string& path) {
  head->load_checkpoint(ckpt, path);
}

io::ReferenceCheckpoint VcpClipImpl::to_checkpoint() const { return head->to_checkpoint(); }

}  // namespace vcpclip::model
