// The method `april_gan` (model/methods/april_gan.h; docs/design.md "APRIL-GAN").
#include "vcpclip/model/methods/april_gan.h"

#include <ATen/ATen.h>

#include <cmath>

#include "vcpclip/common/error.h"
#include "vcpclip/model/method_registry.h"
#include "vcpclip/model/seg_losses.h"
#include "vcpclip/model/strict_load.h"

namespace vcpclip::model {
namespace {

// The official prompt ensemble (prompt_ensemble.py): states, then templates; "{}" is the class name.
const std::vector<std::string>& normal_states() {
  static const std::vector<std::string> s{
      "{}", "flawless {}", "perfect {}", "unblemished {}", "{} without flaw", "{} without defect", "{} without damage"};
  return s;
}

const std::vector<std::string>& abnormal_states() {
  static const std::vector<std::string> s{"damaged {}", "broken {}", "{} with flaw", "{} with defect",
                                          "{} with damage"};
  return s;
}

const std::vector<std::string>& templates() {
  static const std::vector<std::string> t{"a bad photo of a {}.",
                                          "a low resolution photo of the {}.",
                                          "a bad photo of the {}.",
                                          "a cropped photo of the {}.",
                                          "a bright photo of a {}.",
                                          "a dark photo of the {}.",
                                          "a photo of my {}.",
                                          "a photo of the cool {}.",
                                          "a close-up photo of a {}.",
                                          "a black and white photo of the {}.",
                                          "a bright photo of the {}.",
                                          "a cropped photo of a {}.",
                                          "a jpeg corrupted photo of a {}.",
                                          "a blurry photo of the {}.",
                                          "a photo of the {}.",
                                          "a good photo of the {}.",
                                          "a photo of one {}.",
                                          "a close-up photo of the {}.",
                                          "a photo of a {}.",
                                          "a low resolution photo of a {}.",
                                          "a photo of a large {}.",
                                          "a blurry photo of a {}.",
                                          "a jpeg corrupted photo of the {}.",
                                          "a good photo of a {}.",
                                          "a photo of the small {}.",
                                          "a photo of the large {}.",
                                          "a black and white photo of a {}.",
                                          "a dark photo of a {}.",
                                          "a photo of a cool {}.",
                                          "a photo of a small {}.",
                                          "there is a {} in the scene.",
                                          "there is the {} in the scene.",
                                          "this is a {} in the scene.",
                                          "this is the {} in the scene.",
                                          "this is one {} in the scene."};
  return t;
}

/// Python's str.format with one positional "{}".
std::string format1(const std::string& pattern, const std::string& value) {
  const auto pos = pattern.find("{}");
  return pos == std::string::npos ? pattern : pattern.substr(0, pos) + value + pattern.substr(pos + 2);
}

at::Tensor l2n(const at::Tensor& x) { return x / x.norm(2, -1, true); }

}  // namespace

std::vector<std::string> april_gan_sentences(const std::string& class_name, bool abnormal) {
  std::vector<std::string> out;
  for (const auto& state : abnormal ? abnormal_states() : normal_states())
    for (const auto& t : templates()) out.push_back(format1(t, format1(state, class_name)));
  return out;
}

const MethodInfo& april_gan_info() {
  static const MethodInfo i = [] {
    MethodInfo m;
    m.name = "april_gan";
    m.title = "APRIL-GAN";
    m.needs_class_name = true;
    m.postprocess.sigma = 0.0;          // test.py: no gaussian
    m.postprocess.method_score = true;  // test.py: pr_sp from the class token
    m.train.epochs = 15;                // train.sh, VisA → MVTec AD
    m.train.batch_size = 8;
    m.train.lr = 1e-3;
    return m;
  }();
  return i;
}

AprilGanImpl::AprilGanImpl(ClipModel clip_model, const ModelOptions& opts, Tokenizer tokenizer)
    : MethodImpl(std::move(clip_model), opts), tokenizer_(std::move(tokenizer)) {
  const auto& cfg = clip->config();
  for (int64_t l : opts_.features_list)
    VCP_CHECK(l >= 1 && l <= cfg.vision.layers, "model options (backbone ", opts_.backbone, "): features_list entry ",
              l, " is outside the vision tower of ", cfg.name, " (layers 1..", cfg.vision.layers, ")");
  VCP_CHECK(opts_.input_size % cfg.vision.patch_size == 0, "model options (backbone ", opts_.backbone,
            "): image_size (the input size S) ", opts_.input_size, " must be a multiple of the patch size ",
            cfg.vision.patch_size, " of ", cfg.name);
  torch::manual_seed(opts_.init_seed);
  trainable_linearlayer =
      register_module("trainable_linearlayer",
                      PatchLinear(cfg.vision.width, cfg.embed_dim, static_cast<int64_t>(opts_.features_list.size())));
}

const MethodInfo& AprilGanImpl::info() const { return april_gan_info(); }

at::Tensor AprilGanImpl::text_features(const std::string& class_name) {
  const auto key = std::make_pair(class_name, device().str());
  auto it = text_cache_.find(key);
  if (it != text_cache_.end()) return it->second;
  at::NoGradGuard no_grad;
  std::vector<at::Tensor> rows;
  for (bool abnormal : {false, true}) {
    const auto ids = tokenizer_.tokenize(april_gan_sentences(class_name, abnormal)).to(device());
    auto f = l2n(clip->encode_text(ids).to(at::kFloat));  // each sentence normalised
    rows.push_back(l2n(f.mean(0)));                       // the mean, normalised again
  }
  auto t = at::stack(rows);  // [2, E]
  text_cache_.emplace(key, t);
  return t;
}

at::Tensor AprilGanImpl::text_for(const ClassNames& classes, int64_t images) {
  check_class_names(info(), classes, images);
  std::vector<at::Tensor> per_image;
  for (const auto& c : classes) per_image.push_back(text_features(c).t());
  return at::stack(per_image);  // [B, E, 2]
}

at::Tensor AprilGanImpl::layer_logits(int64_t i, const at::Tensor& patch_tokens, const at::Tensor& text) {
  // test.py normalises in place (autograd needs CUDA autocast for that); out of place: same values.
  auto f = l2n(trainable_linearlayer->forward(i, patch_tokens));
  return at::matmul(100.0 * f, text.to(f.scalar_type()));
}

at::Tensor AprilGanImpl::image_score(const at::Tensor& global, const at::Tensor& text) {
  auto g = l2n(global.to(at::kFloat)).unsqueeze(1);  // [B, 1, E]
  return at::matmul(100.0 * g, text.to(at::kFloat)).squeeze(1).softmax(-1).select(1, 1);
}

MethodOutput AprilGanImpl::forward_train(const at::Tensor& images, const ClassNames& classes) {
  AutocastScope autocast(precision_ == Precision::kAutocast);
  check_images(images);
  VisionOutput vis;
  {
    at::NoGradGuard no_grad;
    vis = clip->visual->forward(images, opts_.features_list, false);
  }
  const auto text = text_for(classes, images.size(0));
  const int64_t s = opts_.input_size;
  MethodOutput out;
  for (size_t i = 0; i < vis.patch_features.size(); ++i) {
    auto logits = layer_logits(static_cast<int64_t>(i), vis.patch_features[i].slice(1, 1), text);
    const int64_t b = logits.size(0), n = logits.size(1);
    const auto g = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(n))));
    auto grid = logits.permute({0, 2, 1}).reshape({b, 2, g, g});
    out.raw.push_back(at::upsample_bilinear2d(grid, {s, s}, /*align_corners=*/true).softmax(1));
  }
  return out;
}

MethodLoss AprilGanImpl::loss(const MethodOutput& out, const at::Tensor& gt) const {
  // train.py: gt[gt > 0.5] = 1, gt[gt <= 0.5] = 0 (0.5 itself is 0 here).
  const auto g = (gt > 0.5).to(out.raw.front().scalar_type());
  MethodLoss l;
  l.raw = focal_dice_sum(out.raw, g, "APRIL-GAN loss");
  l.post = at::zeros({}, l.raw.options());
  l.total = l.raw;
  return l;
}

MethodMaps AprilGanImpl::predict_maps(const at::Tensor& images, StageTimer* timer,
                                      const std::vector<const ReferenceMemory*>& refs, const ClassNames& classes) {
  at::NoGradGuard no_grad;
  AutocastScope autocast(precision_ == Precision::kAutocast);
  check_class_names(info(), classes, images.size(0));
  at::Tensor text;
  MethodMaps maps;
  VisionOutput vis = vision_with_references(images, refs, &maps, timer);
  {
    auto t = StageTimer::scope(timer, "text tower (cached per class)");
    text = text_for(classes, images.size(0));
  }
  auto t = StageTimer::scope(timer, "linear layers + maps");
  const int64_t s = opts_.input_size;
  for (size_t i = 0; i < vis.patch_features.size(); ++i) {
    auto logits = layer_logits(static_cast<int64_t>(i), vis.patch_features[i].slice(1, 1), text);
    const int64_t b = logits.size(0), n = logits.size(1);
    const auto g = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(n))));
    // softmax over 2 channels = sigmoid of the difference; upsampling is linear: upsample it once.
    auto diff = (logits.select(2, 1) - logits.select(2, 0)).reshape({b, 1, g, g});
    auto p = at::upsample_bilinear2d(diff, {s, s}, true).sigmoid_().squeeze(1);
    maps.raw = maps.raw.defined() ? maps.raw.add_(p) : p;
  }
  maps.raw = maps.raw.to(at::kFloat);
  maps.image_score = image_score(vis.global, text).to(at::kFloat);
  return maps;
}

std::vector<ParamGroup> AprilGanImpl::parameter_groups() {
  return {ParamGroup{trainable_linearlayer->parameters(), ParamGroup::Lr::kLr}};
}

std::vector<std::pair<std::string, at::Tensor>> AprilGanImpl::trainable_parameters() {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (auto& kv : trainable_linearlayer->named_parameters(true))
    out.emplace_back("trainable_linearlayer." + kv.key(), kv.value());
  return out;
}

void AprilGanImpl::load_checkpoint(const io::ReferenceCheckpoint& ckpt, const std::string& path) {
  auto params = trainable_linearlayer->named_parameters(true);
  torch::OrderedDict<std::string, at::Tensor> named;
  for (auto& kv : params) named.insert("trainable_linearlayer." + kv.key(), kv.value());
  const auto& cfg = clip->config();
  load_strict(named, TensorSource::from_map(ckpt.flatten()), "the tensors of checkpoint '" + path + "'",
              msg("the APRIL-GAN head (", opts_.features_list.size(), " x Linear(", cfg.vision.width, " -> ",
                  cfg.embed_dim, "))"));
}

io::ReferenceCheckpoint AprilGanImpl::to_checkpoint() const {
  io::ReferenceCheckpoint ckpt;
  io::NamedTensors tensors;
  for (const auto& kv : trainable_linearlayer->named_parameters(true))
    tensors.emplace_back(kv.key(), kv.value().detach().to(at::kCPU, at::kFloat).clone().contiguous());
  ckpt.modules.emplace_back("trainable_linearlayer", std::move(tensors));
  return ckpt;
}

// ------------------------------------------------------------------------------------------------
namespace {

Method build(ClipModel clip, const ModelOptions& opts, const Tokenizer& tokenizer) {
  return AprilGan(std::move(clip), opts, tokenizer);
}

/// APRIL-GAN's layout: exactly one module, trainable_linearlayer, and nothing else.
bool recognises(const io::ReferenceCheckpoint& ckpt) {
  return ckpt.parameters.empty() && ckpt.modules.size() == 1 && ckpt.modules[0].first == "trainable_linearlayer";
}

}  // namespace

void register_method_april_gan(MethodRegistry& registry) {
  MethodEntry e;
  e.name = "april_gan";
  e.info = april_gan_info();
  e.build = build;
  e.recognises = recognises;
  registry.add(std::move(e));
}

}  // namespace vcpclip::model
