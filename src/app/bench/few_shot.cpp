// `vcpclip bench`, few-shot section (docs/design.md §13, docs/few_shot.md): the cost of the
// reference memory at ViT-L-14-336 @ 518 with random weights (--quick: ViT-B-16 @ 224): memory
// size per shot, build time per reference image, and the extra time per test image at k = 4
// (the memory search alone, and predict_maps with vs without references, side by side); the
// normalised map D̂ (fusion normalized) against the same memory without its normal statistics
// (D alone, the add fusion's path before D̂ existed), alternated; the build of a 1-shot memory
// (its 6 augmented views).
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>

#include "sections.h"
#include "vcpclip/model/reference_memory.h"

namespace vcpclip::app::bench_detail {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// Resident set size of this process now (VmRSS), MB.
double current_rss_mb() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      double kb = 0;
      in >> kb;
      return kb / 1024.0;
    }
    std::getline(in, key);
  }
  return 0;
}

}  // namespace

nlohmann::json few_shot_section(BenchContext& ctx) {
  ctx.section("few-shot reference memory");
  const bool quick = ctx.opts.quick;
  const std::string name = quick ? "ViT-B-16" : "ViT-L-14-336";
  model::ModelOptions o;
  o.backbone = model_config_path(name);
  o.input_size = quick ? 224 : 518;
  o.features_list = quick ? std::vector<int64_t>{3, 6, 9, 12} : std::vector<int64_t>{6, 12, 18, 24};
  const int64_t k = 4, s = o.input_size;
  const int repeats = quick ? 1 : 2;
  auto model = build_quiet(o, ctx.device);
  at::manual_seed(7);
  const auto refs = at::randn({k, 3, s, s}, at::TensorOptions().device(ctx.device));
  const auto test = at::randn({1, 3, s, s}, at::TensorOptions().device(ctx.device));
  model->predict_maps(test);  // warm-up: caches, resized position embedding
  const double rss_zero_shot = current_rss_mb(), peak_zero_shot = peak_rss_mb();

  sync(ctx.device);
  auto t0 = Clock::now();
  const auto mem = model::build_reference_memory(*model, refs, o.features_list, /*batch=*/1);
  sync(ctx.device);
  const double build_per_image = since(t0) / static_cast<double>(k);
  const double mb_per_shot = static_cast<double>(mem.bytes()) / 1e6 / static_cast<double>(k);
  sync(ctx.device);
  t0 = Clock::now();
  model::build_reference_memory(*model, refs.slice(0, 0, 1), o.features_list, /*batch=*/1);
  sync(ctx.device);
  const double build_one_shot = since(t0);
  auto plain = mem;  // D only: no normal statistics, so predict_maps computes no D̂
  plain.normal_level.clear();
  plain.normal_scale.clear();

  // The memory search alone (what references add when their layers are features_list).
  const auto tokens = model->encode_layers(test, o.features_list);
  std::vector<double> search, zero, few, few_plain;
  for (int r = 0; r < repeats; ++r) {
    sync(ctx.device);
    t0 = Clock::now();
    model::few_shot_map(mem, tokens, s);
    sync(ctx.device);
    search.push_back(since(t0));
  }
  // predict_maps with and without references, alternated.
  const std::vector<const model::ReferenceMemory*> one{&mem}, one_plain{&plain};
  for (int r = 0; r < repeats; ++r) {
    sync(ctx.device);
    t0 = Clock::now();
    model->predict_maps(test, nullptr, one_plain);
    sync(ctx.device);
    few_plain.push_back(since(t0));
    sync(ctx.device);
    t0 = Clock::now();
    model->predict_maps(test);
    sync(ctx.device);
    zero.push_back(since(t0));
    t0 = Clock::now();
    model->predict_maps(test, nullptr, one);
    sync(ctx.device);
    few.push_back(since(t0));
  }
  const double rss_few_shot = current_rss_mb(), peak_few_shot = peak_rss_mb();
  const double zero_med = *std::min_element(zero.begin(), zero.end());
  const double search_best = *std::min_element(search.begin(), search.end());
  const double few_med = *std::min_element(few.begin(), few.end());
  const double plain_med = *std::min_element(few_plain.begin(), few_plain.end());
  char line[512];
  std::snprintf(line, sizeof line,
                "%s @ %lld, k = %lld, %d repeat(s), best of each:\n"
                "  memory %.1f MB per shot (%.1f MB at k = 4), built in %.2f s per reference image\n"
                "  zero-shot predict_maps %.2f s/image; with the k = 4 memory %.2f s (%+.1f %%); the search "
                "alone %.3f s (%.1f %% of the zero-shot pass)\n"
                "  RSS %.0f -> %.0f MB (%+.0f MB); peak RSS %.0f -> %.0f MB\n"
                "  D alone (no normal statistics) %.2f s/image, D and D^ %.2f s (%+.1f %%); a 1-shot memory "
                "(reference + 6 views) built in %.2f s\n",
                name.c_str(), (long long)s, (long long)k, repeats, mb_per_shot, mb_per_shot * k, build_per_image,
                zero_med, few_med, 100 * (few_med - zero_med) / zero_med, search_best, 100 * search_best / zero_med,
                rss_zero_shot, rss_few_shot, rss_few_shot - rss_zero_shot, peak_zero_shot, peak_few_shot, plain_med,
                few_med, 100 * (few_med - plain_med) / plain_med, build_one_shot);
  ctx.out << line << std::flush;
  return {{"backbone", name},
          {"size", s},
          {"k", k},
          {"repeats", repeats},
          {"memory_mb_per_shot", mb_per_shot},
          {"build_seconds_per_image", build_per_image},
          {"zero_shot_seconds", zero},
          {"few_shot_seconds", few},
          {"few_shot_without_normalized_seconds", few_plain},
          {"build_one_shot_seconds", build_one_shot},
          {"search_seconds", search},
          {"extra_fraction_end_to_end", (few_med - zero_med) / zero_med},
          {"search_fraction", search_best / zero_med},
          {"rss_mb_zero_shot", rss_zero_shot},
          {"rss_mb_few_shot", rss_few_shot},
          {"peak_rss_mb_zero_shot", peak_zero_shot},
          {"peak_rss_mb_few_shot", peak_few_shot}};
}

}  // namespace vcpclip::app::bench_detail
