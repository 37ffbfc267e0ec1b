// The method `anomaly_clip`: text, maps, score, loss, checkpoint I/O and its registry entry (see
// include/vcpclip/model/methods/anomaly_clip.h).
#include "vcpclip/model/methods/anomaly_clip.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cmath>

#include "../clip_internal.h"
#include "vcpclip/common/error.h"
#include "vcpclip/io/config_node.h"
#include "vcpclip/model/method_registry.h"
#include "vcpclip/model/seg_losses.h"

namespace vcpclip::model {
namespace {

constexpr double kTemperature = 0.07;  // the official code divides every cosine by 0.07

void validate(const AnomalyClipOptions& o, const ClipConfig& clip, int64_t input_size,
              const std::vector<int64_t>& features, int64_t dpam_layer) {
  VCP_CHECK(!features.empty(), "model.features_list is empty");
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

AnomalyClipOptions anomaly_clip_options(const ModelOptions& opts) {
  auto o = std::dynamic_pointer_cast<const AnomalyClipOptions>(opts.method_options);
  return o ? *o : AnomalyClipOptions{};
}

AnomalyClipImpl::AnomalyClipImpl(ClipModel clip_model, const ModelOptions& opts, const TokenizeFn& tokenize)
    : MethodImpl(std::move(clip_model), opts), aopts_(anomaly_clip_options(opts)) {
  const auto& cfg = clip->config();
  dpam_layer_ = aopts_.dpam_layer == 0 ? default_dpam_layer(cfg.vision.layers) : aopts_.dpam_layer;
  validate(aopts_, cfg, opts_.input_size, opts_.features_list, dpam_layer_);
  AnomalyPromptConfig pc;
  pc.text_width = cfg.text.width;
  pc.context_length = cfg.text.context_length;
  pc.n_ctx = aopts_.n_ctx;
  pc.t_n_ctx = aopts_.t_n_ctx;
  pc.depth = aopts_.depth;
  prompt_learner = register_module("prompt_learner", AnomalyPromptLearner(pc, static_cast<int64_t>(opts_.init_seed)));
  const auto [text_pos, text_neg] = prompt_learner->prompt_texts();
  auto ids = tokenize({text_pos, text_neg});
  VCP_CHECK(ids.dim() == 2 && ids.size(0) == 2 && ids.size(1) == cfg.text.context_length,
            "AnomalyCLIP: the tokenizer gave ", shape_text(ids.sizes()), " for the two prompts, expected [2, ",
            cfg.text.context_length, "]");
  const int64_t max_id = ids.max().item<int64_t>();
  VCP_CHECK(max_id < cfg.text.vocab_size, "AnomalyCLIP: the prompts use token id ", max_id, " but the backbone '",
            cfg.name, "' has a vocabulary of ", cfg.text.vocab_size, " ids; it needs the full CLIP vocabulary");
  ids_ = ids.to(at::kLong).cpu();
  refresh_token_buffers();
  clip->eval();
}

void AnomalyClipImpl::refresh_token_buffers() const {
  // A fresh learner's prefix/suffix buffers are token embeddings of the backbone, whose weights
  // build_method loads after constructing the method: rebuilt whenever the embedding changed,
  // until a checkpoint provides them.
  if (buffers_from_checkpoint_) return;
  const auto& w = clip->token_embedding->weight;
  const std::pair<const void*, uint32_t> key{w.data_ptr(), w._version()};
  if (key == embedding_key_) return;
  prompt_learner.ptr()->set_token_buffers(ids_[0], ids_[1], w);
  embedding_key_ = key;
}

at::Tensor AnomalyClipImpl::encode_text() {
  refresh_token_buffers();
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
  check_images(images);
  return dpam_forward(*clip->visual, images, opts_.features_list, dpam_layer_);
}

at::Tensor AnomalyClipImpl::layer_probs(const at::Tensor& patch_tokens, const at::Tensor& text) const {
  auto sim = at::matmul(l2_normalise(patch_tokens), text.t().to(patch_tokens.scalar_type()));  // [B, N, 2]
  auto probs = (sim / kTemperature).softmax(-1).slice(1, 1);                                   // class token dropped
  const int64_t b = probs.size(0), n = probs.size(1);
  const auto g = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(n))));
  VCP_CHECK(g * g == n, "AnomalyCLIP: ", n, " patch tokens do not form a square grid");
  auto grid = probs.reshape({b, g, g, 2}).permute({0, 3, 1, 2});
  return at::upsample_bilinear2d(grid, {opts_.input_size, opts_.input_size}, /*align_corners=*/false);
}

at::Tensor AnomalyClipImpl::image_logits(const at::Tensor& image_embedding, const at::Tensor& text) const {
  return at::matmul(l2_normalise(image_embedding), text.t().to(image_embedding.scalar_type())) / kTemperature;
}

MethodOutput AnomalyClipImpl::forward_train(const at::Tensor& images, const ClassNames& /*classes*/) {
  AutocastScope autocast(precision_ == Precision::kAutocast);
  MethodOutput out;
  auto vis = encode_image(images);
  auto text = encode_text();
  for (const auto& t : vis.patch_tokens) out.raw.push_back(layer_probs(t, text).to(at::kFloat));
  out.image_logits = image_logits(vis.image_embedding, text).to(at::kFloat);
  return out;
}

MethodLoss AnomalyClipImpl::loss(const MethodOutput& out, const at::Tensor& gt) const {
  // train.py binarises with > 0.5 (0.5 itself is normal); the label is the dataset's anomaly
  // flag there, here whether the mask has a defect pixel (the same for MVTec AD and VisA).
  const auto g = (gt > 0.5).to(at::kFloat);
  const auto labels = g.flatten(1).amax(1).to(at::kLong);
  const auto terms = anomaly_clip_loss(out.image_logits, labels, out.raw, g, aopts_.lambda);
  return MethodLoss{terms.total, aopts_.lambda * terms.maps, terms.image};
}

std::vector<std::pair<const void*, uint32_t>> AnomalyClipImpl::text_key() const {
  std::vector<std::pair<const void*, uint32_t>> key;
  for (const auto& [name, t] : prompt_learner->state_tensors()) key.emplace_back(t.data_ptr(), t._version());
  return key;
}

MethodMaps AnomalyClipImpl::predict_maps(const at::Tensor& images, StageTimer* timer,
                                         const std::vector<const ReferenceMemory*>& refs,
                                         const ClassNames& /*classes*/) {
  at::NoGradGuard no_grad;
  AutocastScope autocast(precision_ == Precision::kAutocast);
  refresh_token_buffers();
  MethodMaps maps;
  bool any_ref = false;
  for (const auto* r : refs) any_ref = any_ref || r != nullptr;
  if (any_ref) (void)vision_with_references(images, refs, &maps, timer);  // D from the shared tower
  DpamOutput vis;
  {
    auto t = StageTimer::scope(timer, "vision tower (DPAM)");
    vis = encode_image(images);
  }
  at::Tensor text;
  {
    auto t = StageTimer::scope(timer, "text tower");
    if (!is_training() && text_cache_.defined() && text_cache_key_ == text_key()) {
      text = text_cache_;
    } else {
      text = encode_text();
      if (!is_training()) text_cache_ = text, text_cache_key_ = text_key();
    }
  }
  auto t = StageTimer::scope(timer, "maps + score");
  for (const auto& tokens : vis.patch_tokens) {
    auto p = layer_probs(tokens, text);
    auto m = (p.select(1, 1) + 1 - p.select(1, 0)) / 2.0;
    maps.raw = maps.raw.defined() ? maps.raw.add_(m) : m;
  }
  maps.raw = maps.raw.to(at::kFloat);
  maps.image_score = image_logits(vis.image_embedding, text).softmax(-1).select(1, 1).to(at::kFloat);
  return maps;
}

std::vector<ParamGroup> AnomalyClipImpl::parameter_groups() {
  return {ParamGroup{prompt_learner->trainable_parameters(), ParamGroup::Lr::kLr}};
}

std::vector<std::pair<std::string, at::Tensor>> AnomalyClipImpl::trainable_parameters() {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& [name, t] : prompt_learner->state_tensors())
    if (t.requires_grad()) out.emplace_back("prompt_learner." + name, t);
  return out;
}

AnomalyClipLossTerms anomaly_clip_loss(const at::Tensor& image_logits, const at::Tensor& labels,
                                       const std::vector<at::Tensor>& probs, const at::Tensor& gt, double lambda) {
  VCP_CHECK(!probs.empty(), "anomaly_clip_loss: no feature layers");
  VCP_CHECK(image_logits.dim() == 2 && image_logits.size(1) == 2 && labels.dim() == 1 &&
                labels.size(0) == image_logits.size(0),
            "anomaly_clip_loss: expected image logits [B, 2] and labels [B], found ", image_logits.sizes(), " and ",
            labels.sizes());
  for (size_t i = 0; i < probs.size(); ++i)
    VCP_CHECK(probs[i].dim() == 4 && probs[i].size(1) == 2 && gt.dim() == 3 && gt.size(0) == probs[i].size(0) &&
                  gt.size(1) == probs[i].size(2) && gt.size(2) == probs[i].size(3),
              "anomaly_clip_loss: layer ", i, ": expected probabilities [B, 2, S, S] and masks [B, S, S], found ",
              probs[i].sizes(), " and ", gt.sizes());
  AnomalyClipLossTerms out;
  out.image = at::cross_entropy_loss(image_logits, labels.to(at::kLong).to(image_logits.device()));
  const auto g = gt.to(probs[0].scalar_type());
  for (const auto& p : probs) {
    auto f = focal_loss(p, g);  // accumulated term by term, in train.py's order
    out.maps = out.maps.defined() ? out.maps + f : f;
    out.maps = out.maps + dice_loss(p.select(1, 1), g);
    out.maps = out.maps + dice_loss(p.select(1, 0), 1.0 - g);
  }
  out.total = out.image + lambda * out.maps;
  return out;
}

void AnomalyClipImpl::load_checkpoint(const io::ReferenceCheckpoint& ckpt, const std::string& path) {
  std::string keys;
  for (const auto& [name, t] : ckpt.modules) keys += (keys.empty() ? "'" : ", '") + name + "'";
  for (const auto& [name, t] : ckpt.parameters) keys += (keys.empty() ? "'" : ", '") + name + "'";
  VCP_CHECK(ckpt.modules.size() == 1 && ckpt.parameters.empty() && ckpt.modules.front().first == "prompt_learner",
            "checkpoint '", path,
            "' is not an AnomalyCLIP checkpoint: expected one entry 'prompt_learner' (a state_dict), found ",
            keys.empty() ? std::string("none") : keys);
  std::map<std::string, at::Tensor> flat;
  for (const auto& [name, t] : ckpt.modules.front().second) flat.emplace(name, t);
  prompt_learner->load_state(flat, "the 'prompt_learner' tensors of checkpoint '" + path + "'");
  buffers_from_checkpoint_ = true;  // test time uses the checkpoint's buffers, never the tokenizer's
  text_cache_ = at::Tensor();
}

io::ReferenceCheckpoint AnomalyClipImpl::to_checkpoint() const {
  refresh_token_buffers();
  io::ReferenceCheckpoint ckpt;
  io::NamedTensors tensors;
  for (const auto& [name, t] : prompt_learner->state_tensors())
    tensors.emplace_back(name, t.detach().to(at::kCPU).clone().contiguous());
  ckpt.modules.emplace_back("prompt_learner", std::move(tensors));
  return ckpt;
}

namespace {

const std::vector<std::string>& keys() {
  static const std::vector<std::string> k{"n_ctx", "t_n_ctx", "depth", "dpam_layer", "lambda"};
  return k;
}

void parse(io::ConfigNode& node, ModelOptions& opts) {
  auto o = std::make_shared<AnomalyClipOptions>();
  o->n_ctx = node.get<int64_t>("n_ctx", o->n_ctx);
  o->t_n_ctx = node.get<int64_t>("t_n_ctx", o->t_n_ctx);
  o->depth = node.get<int64_t>("depth", o->depth);
  o->dpam_layer = node.get<int64_t>("dpam_layer", o->dpam_layer);
  o->lambda = node.get<double>("lambda", o->lambda);
  VCP_CHECK(o->n_ctx >= 1, "config key ", node.where("n_ctx"), ": expected >= 1, found ", o->n_ctx);
  VCP_CHECK(o->t_n_ctx >= 1 && o->t_n_ctx <= o->n_ctx, "config key ", node.where("t_n_ctx"), ": expected 1..n_ctx (",
            o->n_ctx, "), found ", o->t_n_ctx);
  VCP_CHECK(o->depth >= 1, "config key ", node.where("depth"), ": expected >= 1, found ", o->depth);
  VCP_CHECK(o->dpam_layer == 0 || o->dpam_layer >= 2, "config key ", node.where("dpam_layer"),
            ": expected 0 (the default rule) or >= 2, found ", o->dpam_layer);
  VCP_CHECK(o->lambda >= 0 && std::isfinite(o->lambda), "config key ", node.where("lambda"),
            ": expected a finite number >= 0, found ", o->lambda);
  // The official model classes use QuickGELU in both towers (OpenAI's weights).
  if (!node.has("activation")) opts.activation = Activation::kQuickGelu;
  opts.method_options = o;
}

Method build(ClipModel clip, const ModelOptions& opts, const Tokenizer& tokenizer) {
  return AnomalyClip(std::move(clip), opts, [&](const std::vector<std::string>& t) { return tokenizer.tokenize(t); });
}

bool recognises(const io::ReferenceCheckpoint& ckpt) {
  return std::any_of(ckpt.modules.begin(), ckpt.modules.end(),
                     [](const auto& m) { return m.first == "prompt_learner"; });
}

}  // namespace

const MethodInfo& anomaly_clip_info() {
  static const MethodInfo info = [] {
    MethodInfo i;
    i.name = "anomaly_clip";
    i.title = "AnomalyCLIP";
    i.needs_class_name = false;
    i.postprocess.sigma = 4.0;          // test.py: gaussian_filter(sigma=4) per image
    i.postprocess.method_score = true;  // the text score, not a top-k of the map
    i.train.epochs = 15;
    i.train.batch_size = 8;
    i.train.lr = 1e-3;
    i.train.lr_temp = 1e-3;  // no temperature is trained
    i.train.beta1 = 0.5;
    i.train.beta2 = 0.999;
    return i;
  }();
  return info;
}

void register_method_anomaly_clip(MethodRegistry& registry) {
  MethodEntry e;
  e.name = "anomaly_clip";
  e.info = anomaly_clip_info();
  e.keys = keys();
  e.parse = parse;
  e.build = build;
  e.recognises = recognises;
  registry.add(std::move(e));
}

}  // namespace vcpclip::model
