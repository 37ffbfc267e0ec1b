// VcpHead (all trainable parameters, reference checkpoint names) and VcpClip (docs/design.md §3–§5).
#include "vcpclip/model/vcp_clip.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/nn/init.h>
#include <torch/utils.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>

#include "clip_internal.h"
#include "vcpclip/common/error.h"
#include "vcpclip/model/strict_load.h"

namespace vcpclip::model {
namespace {

/// CUDA autocast (fp16, the reference's torch.cuda.amp.autocast()) for the scope's lifetime.
class AutocastScope {
 public:
  explicit AutocastScope(bool on) : on_(on) {
    if (!on_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    previous_ = at::autocast::is_autocast_enabled(at::kCUDA);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
#else
    previous_ = at::autocast::is_enabled();
    at::autocast::set_enabled(true);
#endif
    at::autocast::increment_nesting();
  }
  ~AutocastScope() {
    if (!on_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    at::autocast::set_autocast_enabled(at::kCUDA, previous_);
#else
    at::autocast::set_enabled(previous_);
#endif
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool on_;
  bool previous_ = false;
};

}  // namespace
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
    : opts_(opts), templates_(std::move(templates)) {
  validate_model_options(opts_, clip_model->config(), "model options (backbone " + opts_.backbone + ")");
  clip = register_module("clip", std::move(clip_model));
  for (auto& p : clip->parameters()) p.set_requires_grad(false);
  head = register_module("head",
                         VcpHead(VcpHeadConfig::from(opts_, clip->config()), static_cast<int64_t>(opts_.init_seed)));
  clip->eval();
}

void VcpClipImpl::train(bool on) {
  torch::nn::Module::train(on);
  clip->eval();  // frozen backbone: always eval (it has no dropout; kept for clarity)
}

VisionOutput VcpClipImpl::encode_image(const torch::Tensor& images) {
  VCP_CHECK(images.dim() == 4 && images.size(1) == 3 && images.size(2) == opts_.input_size &&
                images.size(3) == opts_.input_size,
            "VCP-CLIP: expected images [B, 3, ", opts_.input_size, ", ", opts_.input_size, "], found ",
            shape_text(images.sizes()));
  at::NoGradGuard no_grad;
  AutocastScope autocast(precision_ == Precision::kAutocast);  // nested in forward()'s: no change there
  return clip->visual->forward(images, opts_.features_list, true);
}

std::vector<torch::Tensor> VcpClipImpl::encode_layers(const torch::Tensor& images, const std::vector<int64_t>& layers) {
  VCP_CHECK(images.dim() == 4 && images.size(1) == 3 && images.size(2) == opts_.input_size &&
                images.size(3) == opts_.input_size,
            "VCP-CLIP: expected images [B, 3, ", opts_.input_size, ", ", opts_.input_size, "], found ",
            shape_text(images.sizes()));
  at::NoGradGuard no_grad;
  return clip->visual->forward(images, layers, false).patch_features;
}

namespace {

/// features_list and the few-shot layers in one increasing list, for a single vision pass.
std::vector<int64_t> union_layers(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  std::vector<int64_t> u(a);
  u.insert(u.end(), b.begin(), b.end());
  std::sort(u.begin(), u.end());
  u.erase(std::unique(u.begin(), u.end()), u.end());
  return u;
}

at::Tensor pick_layer(const VisionOutput& vis, const std::vector<int64_t>& layers, int64_t l) {
  const auto it = std::find(layers.begin(), layers.end(), l);
  return vis.patch_features[static_cast<size_t>(it - layers.begin())];
}

/// D and D̂ for the images that have a memory (consecutive images sharing one memory in one
/// product); 0 where an image has none. D̂ is undefined unless every memory has normal statistics.
FewShotMaps batch_few_shot_maps(const VisionOutput& vis, const std::vector<int64_t>& layers,
                                const std::vector<const ReferenceMemory*>& refs, int64_t s, at::Tensor* normal_max) {
  const auto b = static_cast<int64_t>(refs.size());
  const auto opts = vis.patch_features[0].options().dtype(at::kFloat);
  bool stats = true;
  for (const auto* r : refs) stats = stats && (!r || r->has_normal_stats());
  FewShotMaps out{at::zeros({b, s, s}, opts), stats ? at::zeros({b, s, s}, opts) : at::Tensor()};
  std::vector<float> edge(static_cast<size_t>(b), 0.0f);
  for (int64_t i = 0; i < b;) {
    int64_t j = i + 1;
    while (j < b && refs[j] == refs[i]) ++j;
    if (refs[i]) {
      std::vector<at::Tensor> tokens;
      for (auto l : refs[i]->layers) tokens.push_back(pick_layer(vis, layers, l).slice(0, i, j));
      const auto m = few_shot_maps(*refs[i], tokens, s);
      out.raw.slice(0, i, j).copy_(m.raw);
      if (stats) out.normalized.slice(0, i, j).copy_(m.normalized);
      for (int64_t n = i; n < j; ++n) edge[static_cast<size_t>(n)] = static_cast<float>(refs[i]->normal_max);
    }
    i = j;
  }
  if (stats) *normal_max = at::tensor(edge, opts);
  return out;
}

}  // namespace

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

void VcpClipImpl::set_precision(Precision p) {
  check_precision(p, head->prompt_embeddings.device());
  clip->set_block_dtype(block_dtype(p));
  precision_ = p;
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
                                  const std::vector<const ReferenceMemory*>& refs) {
  at::NoGradGuard no_grad;
  AutocastScope autocast(precision_ == Precision::kAutocast);
  VisionOutput vis;
  at::Tensor cls, text;
  FewShotMaps few_shot;
  at::Tensor normal_max;
  const ReferenceMemory* any = nullptr;
  for (const auto* r : refs) any = any ? any : r;
  VCP_CHECK(refs.empty() || static_cast<int64_t>(refs.size()) == images.size(0), "VCP-CLIP: ", refs.size(),
            " reference memories for ", images.size(0), " images");
  if (any) {
    for (const auto* r : refs)
      VCP_CHECK(!r || r->layers == any->layers, "VCP-CLIP: the reference memories of a batch use different layers");
    const auto layers = union_layers(opts_.features_list, any->layers);
    VisionOutput all;
    {
      auto t = StageTimer::scope(timer, "vision tower");
      VCP_CHECK(images.dim() == 4 && images.size(2) == opts_.input_size && images.size(3) == opts_.input_size,
                "VCP-CLIP: expected images [B, 3, ", opts_.input_size, ", ", opts_.input_size, "], found ",
                shape_text(images.sizes()));
      all = clip->visual->forward(images, layers, true);
    }
    vis.global = all.global;
    for (auto l : opts_.features_list) vis.patch_features.push_back(pick_layer(all, layers, l));
    auto f = StageTimer::scope(timer, "few-shot memory search");
    few_shot = batch_few_shot_maps(all, layers, refs, opts_.input_size, &normal_max);
  } else {
    auto t = StageTimer::scope(timer, "vision tower");
    vis = encode_image(images);
  }
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
  VcpMaps maps;
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
  maps.few_shot = few_shot.raw;
  maps.few_shot_normalized = few_shot.normalized;
  maps.few_shot_normal_max = normal_max;
  return maps;
}

}  // namespace vcpclip::model
