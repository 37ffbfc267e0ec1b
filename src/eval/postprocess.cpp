// Gaussian filter with scipy semantics, blend, top-k mean, min-max (docs/design.md §6).
#include "vcpclip/eval/postprocess.h"

#include <cmath>

#include "vcpclip/common/error.h"
#include "vcpclip/io/config_node.h"

namespace vcpclip::eval {

std::vector<double> gaussian_kernel1d(double sigma, double truncate) {
  VCP_CHECK(sigma > 0, "gaussian filter: sigma must be > 0, found ", sigma);
  const int64_t radius = int64_t(truncate * sigma + 0.5);
  std::vector<double> k(2 * radius + 1);
  double sum = 0;
  for (int64_t x = -radius; x <= radius; ++x) {
    k[x + radius] = std::exp(-0.5 / (sigma * sigma) * double(x * x));
    sum += k[x + radius];
  }
  for (auto& v : k) v /= sum;
  return k;
}

namespace {

// Indices of a length-n axis extended by r on both sides with scipy 'reflect' (d c b a | a b c d |
// d c b a), repeated for r > n.
at::Tensor reflect_indices(int64_t n, int64_t r, const at::Device& device) {
  std::vector<int64_t> idx(n + 2 * r);
  for (int64_t i = -r; i < n + r; ++i) {
    int64_t j = i % (2 * n);
    if (j < 0) j += 2 * n;
    idx[i + r] = j < n ? j : 2 * n - 1 - j;
  }
  return at::tensor(idx, at::kLong).to(device);
}

// Correlates [B,H,W] float64 along `dim` (1 or 2) with the kernel.
at::Tensor filter_axis(const at::Tensor& x, const at::Tensor& kernel, int64_t r, int64_t dim) {
  const int64_t n = x.size(dim);
  at::Tensor padded = x.index_select(dim, reflect_indices(n, r, x.device()));
  at::Tensor in = padded.unsqueeze(1);  // [B,1,H',W']
  at::Tensor w = dim == 1 ? kernel.view({1, 1, -1, 1}) : kernel.view({1, 1, 1, -1});
  return at::conv2d(in, w).squeeze(1);
}

}  // namespace

at::Tensor gaussian_filter(const at::Tensor& maps, double sigma, double truncate) {
  VCP_CHECK(maps.dim() == 2 || maps.dim() == 3, "gaussian filter: expected [H,W] or [N,H,W] maps, found ",
            maps.sizes());
  const auto k = gaussian_kernel1d(sigma, truncate);
  const int64_t r = int64_t(k.size() / 2);
  at::Tensor kernel = at::tensor(k, at::kDouble).to(maps.device());
  at::Tensor x = (maps.dim() == 2 ? maps.unsqueeze(0) : maps).to(at::kFloat).to(at::kDouble);
  x = filter_axis(x, kernel, r, 1).to(at::kFloat).to(at::kDouble);
  x = filter_axis(x, kernel, r, 2).to(at::kFloat);
  return maps.dim() == 2 ? x.squeeze(0) : x;
}

at::Tensor blend_maps(const at::Tensor& raw, const at::Tensor& post, double alpha) {
  VCP_CHECK(raw.sizes() == post.sizes(), "blend: M_raw ", raw.sizes(), " and M_post ", post.sizes(), " differ in size");
  const float a = float(alpha), b = float(1.0 - alpha);
  return raw.to(at::kFloat) * a + post.to(at::kFloat) * b;
}

at::Tensor topk_mean(const at::Tensor& maps, int64_t k) {
  VCP_CHECK(maps.dim() == 2 || maps.dim() == 3, "top-k mean: expected [H,W] or [N,H,W] maps, found ", maps.sizes());
  VCP_CHECK(k > 0, "top-k mean: k must be > 0, found ", k);
  at::Tensor flat = (maps.dim() == 2 ? maps.unsqueeze(0) : maps).to(at::kFloat).flatten(1);
  k = std::min<int64_t>(k, flat.size(1));
  at::Tensor top = std::get<0>(flat.topk(k, 1, true, false));
  at::Tensor m = top.to(at::kDouble).mean(1).to(at::kFloat);
  return maps.dim() == 2 ? m.squeeze(0) : m;
}

at::Tensor pixel_map(const at::Tensor& raw, const at::Tensor& post, double alpha, double sigma) {
  at::Tensor m = post.defined() ? blend_maps(raw, post, alpha) : raw.to(at::kFloat);
  return sigma > 0 ? gaussian_filter(m, sigma) : m;  // scipy: sigma 0 leaves the input as it is
}

at::Tensor image_score(const at::Tensor& raw, const at::Tensor& post, int64_t k) {
  return post.defined() ? topk_mean(raw, k) + topk_mean(post, k) : topk_mean(raw, k);
}

at::Tensor method_image_score(const at::Tensor& method_score) {
  VCP_CHECK(method_score.defined(),
            "postprocess.image_score is method, but this model.method gives no image score of its own: set "
            "postprocess.image_score: topk");
  return method_score.to(at::kFloat);
}

PostprocessedMaps postprocess_maps(const at::Tensor& raw, const at::Tensor& post, const PostprocessOptions& pp,
                                   const at::Tensor& method_score) {
  if (!pp.method_score) return {pixel_map(raw, post, pp.alpha, pp.sigma), image_score(raw, post, pp.topk)};
  return {pixel_map(raw, post, pp.alpha, pp.sigma), method_image_score(method_score)};
}

PostprocessOptions parse_postprocess_options(io::ConfigNode& node, const PostprocessOptions& defaults) {
  PostprocessOptions o = defaults;
  o.alpha = node.get<double>("alpha", o.alpha);
  o.sigma = node.get<double>("sigma", o.sigma);
  o.topk = node.get<int64_t>("topk", o.topk);
  if (node.has("image_score") || o.method_score) {  // absent for VCP-CLIP: configs of before read the same
    const auto score = node.get<std::string>("image_score", o.method_score ? "method" : "topk");
    VCP_CHECK(score == "topk" || score == "method", "config key ", node.where("image_score"),
              ": expected topk (the top-k mean of the maps) or method (the method's own image score), found ", score);
    o.method_score = score == "method";
  }
  node.finish();
  VCP_CHECK(o.alpha >= 0 && o.alpha <= 1, "config key ", node.where("alpha"), ": expected a weight in [0, 1], found ",
            o.alpha);
  VCP_CHECK(o.sigma >= 0, "config key ", node.where("sigma"), ": expected ≥ 0, found ", o.sigma);
  VCP_CHECK(o.topk >= 1, "config key ", node.where("topk"), ": expected ≥ 1, found ", o.topk);
  return o;
}

at::Tensor minmax_normalize(const at::Tensor& x) {
  at::Tensor f = x.to(at::kFloat);
  at::Tensor mn = f.min(), mx = f.max();
  at::Tensor span = mx - mn;
  if (span.item<float>() == 0.0f) return at::zeros_like(f);
  return (f - mn) / span;
}

void fuse_few_shot(PostprocessedMaps& out, const at::Tensor& few_shot, double weight) {
  if (!few_shot.defined()) return;
  VCP_CHECK(few_shot.sizes() == out.pixel.sizes(), "few-shot fusion: map ", shape_text(few_shot.sizes()),
            " does not match the pixel maps ", shape_text(out.pixel.sizes()));
  const auto d = few_shot.to(out.pixel.device(), at::kFloat);
  out.pixel = out.pixel + d * static_cast<float>(weight);
  out.score = out.score + std::get<0>(d.flatten(1).max(1)).to(out.score.device()) * static_cast<float>(weight);
}

}  // namespace vcpclip::eval
