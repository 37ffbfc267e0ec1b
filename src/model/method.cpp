// MethodImpl: the shared part of every method (frozen towers, precision, few-shot vision pass).
#include "vcpclip/model/method.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <algorithm>

#include "clip_internal.h"
#include "vcpclip/common/error.h"
#include "vcpclip/model/reference_memory.h"

namespace vcpclip::model {

AutocastScope::AutocastScope(bool on) : on_(on) {
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

AutocastScope::~AutocastScope() {
  if (!on_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  at::autocast::set_autocast_enabled(at::kCUDA, previous_);
#else
  at::autocast::set_enabled(previous_);
#endif
}

// ------------------------------------------------------------------------------------------------
MethodImpl::MethodImpl(ClipModel clip_model, const ModelOptions& opts) : opts_(opts) {
  clip = register_module("clip", std::move(clip_model));
  for (auto& p : clip->parameters()) p.set_requires_grad(false);
  clip->eval();
}

void MethodImpl::train(bool on) {
  torch::nn::Module::train(on);
  clip->eval();  // frozen backbone: always eval (it has no dropout; kept for clarity)
}

c10::Device MethodImpl::device() const { return clip->visual->class_embedding.device(); }

void MethodImpl::set_precision(Precision p) {
  check_precision(p, device());
  clip->set_block_dtype(block_dtype(p));
  precision_ = p;
}

void MethodImpl::check_images(const at::Tensor& images) const {
  VCP_CHECK(images.dim() == 4 && images.size(1) == 3 && images.size(2) == opts_.input_size &&
                images.size(3) == opts_.input_size,
            info().title, ": expected images [B, 3, ", opts_.input_size, ", ", opts_.input_size, "], found ",
            shape_text(images.sizes()));
}

std::vector<at::Tensor> MethodImpl::encode_layers(const at::Tensor& images, const std::vector<int64_t>& layers) {
  check_images(images);
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
/// product); 0 where an image has none. D̂ and normal_max stay undefined unless every memory has
/// normal statistics (reference_memory.h).
void batch_few_shot_maps(const VisionOutput& vis, const std::vector<int64_t>& layers,
                         const std::vector<const ReferenceMemory*>& refs, int64_t s, MethodMaps* maps) {
  const auto b = static_cast<int64_t>(refs.size());
  const auto opts = vis.patch_features[0].options().dtype(at::kFloat);
  bool stats = true;
  for (const auto* r : refs) stats = stats && (!r || r->has_normal_stats());
  maps->few_shot = at::zeros({b, s, s}, opts);
  if (stats) maps->few_shot_normalized = at::zeros({b, s, s}, opts);
  std::vector<float> edge(static_cast<size_t>(b), 0.0f);
  for (int64_t i = 0; i < b;) {
    int64_t j = i + 1;
    while (j < b && refs[j] == refs[i]) ++j;
    if (refs[i]) {
      std::vector<at::Tensor> tokens;
      for (auto l : refs[i]->layers) tokens.push_back(pick_layer(vis, layers, l).slice(0, i, j));
      const auto m = few_shot_maps(*refs[i], tokens, s);
      maps->few_shot.slice(0, i, j).copy_(m.raw);
      if (stats) maps->few_shot_normalized.slice(0, i, j).copy_(m.normalized);
      for (int64_t n = i; n < j; ++n) edge[static_cast<size_t>(n)] = static_cast<float>(refs[i]->normal_max);
    }
    i = j;
  }
  if (stats) maps->few_shot_normal_max = at::tensor(edge, opts);
}

}  // namespace

VisionOutput MethodImpl::vision_with_references(const at::Tensor& images,
                                                const std::vector<const ReferenceMemory*>& refs, MethodMaps* maps,
                                                StageTimer* timer) {
  at::NoGradGuard no_grad;
  const ReferenceMemory* any = nullptr;
  for (const auto* r : refs) any = any ? any : r;
  VCP_CHECK(refs.empty() || static_cast<int64_t>(refs.size()) == images.size(0), info().title, ": ", refs.size(),
            " reference memories for ", images.size(0), " images");
  check_images(images);
  if (!any) {
    auto t = StageTimer::scope(timer, "vision tower");
    return clip->visual->forward(images, opts_.features_list, true);
  }
  for (const auto* r : refs)
    VCP_CHECK(!r || r->layers == any->layers, info().title, ": the reference memories of a batch use different layers");
  const auto layers = union_layers(opts_.features_list, any->layers);
  VisionOutput all;
  {
    auto t = StageTimer::scope(timer, "vision tower");
    all = clip->visual->forward(images, layers, true);
  }
  VisionOutput vis;
  vis.global = all.global;
  for (auto l : opts_.features_list) vis.patch_features.push_back(pick_layer(all, layers, l));
  auto f = StageTimer::scope(timer, "few-shot memory search");
  batch_few_shot_maps(all, layers, refs, opts_.input_size, maps);
  return vis;
}

void check_class_names(const MethodInfo& info, const ClassNames& classes, int64_t images) {
  if (!info.needs_class_name) return;
  bool ok = static_cast<int64_t>(classes.size()) == images;
  for (const auto& c : classes) ok = ok && !c.empty();
  VCP_CHECK(ok, info.title, " (model.method ", info.name,
            ") names the product in its prompts and needs a class name for every image, found ", classes.size(),
            " name(s) for ", images,
            " image(s): give one with --class NAME (predict, calibrate, serve), the "
            "calibration's class, or the dataset's class folder (eval); the Inferencer takes it in its options");
}

}  // namespace vcpclip::model
