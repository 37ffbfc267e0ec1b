// `vcpclip bench` section "data": the input side's speed, timed here rather than asserted in the
// tests (tests/data/test_synthetic.cpp, test_loader_speed_slow.cpp and tests/model/test_tokenizer.cpp
// check what these produce): synthetic set generation, preprocess_image at the paper's 518,
// the training loader with augmentation (inline and with 2 workers), tokenizer encode.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <opencv2/core.hpp>

#include "sections.h"
#include "vcpclip/app/config/run_util.h"
#include "vcpclip/common/error.h"
#include "vcpclip/data/datasets.h"
#include "vcpclip/data/loader.h"
#include "vcpclip/data/synthetic.h"
#include "vcpclip/data/transforms.h"
#include "vcpclip/model/tokenizer.h"

namespace fs = std::filesystem;

namespace vcpclip::app::bench_detail {

namespace {

using Clock = std::chrono::steady_clock;

void row(BenchContext& ctx, const std::string& what, double value, const char* unit) {
  char line[200];
  std::snprintf(line, sizeof line, "  %-58s %10.2f %s\n", what.c_str(), value, unit);
  ctx.out << line << std::flush;
}

/// Median of `reps` timings of `f`, seconds.
template <class F>
double median_seconds(int reps, F&& f) {
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = Clock::now();
    f();
    t.push_back(seconds_since(t0));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

nlohmann::json loader_rows(BenchContext& ctx, const fs::path& root, int classes, int images) {
  data::SynthOptions o;
  o.out = root.string();
  o.classes = classes;
  o.images = images;
  o.train_images = 0;
  o.size = 512;
  data::generate_synthetic(o);
  const auto samples = data::read_mvtec(root.string(), "test", {}).samples;
  nlohmann::json rows = nlohmann::json::array();
  for (int workers : {0, 2}) {
    data::LoaderOptions lo;
    lo.image_size = 518;
    lo.batch_size = 16;
    lo.workers = workers;
    lo.augment = true;
    lo.shuffle = true;
    data::DataLoader loader(samples, lo);
    int64_t n = 0;
    const double sec = median_seconds(1, [&] {
      loader.start_epoch(0);
      while (auto b = loader.next()) n += b->size();
    });
    row(ctx, "loader 512^2 PNG -> 518^2, augmentation, workers=" + std::to_string(workers), n / sec, "images/s");
    rows.push_back({{"workers", workers}, {"images", n}, {"images_per_second", n / sec}});
  }
  return rows;
}

}  // namespace

nlohmann::json data_section(BenchContext& ctx) {
  ctx.section("data");
  const bool quick = ctx.opts.quick;
  ctx.out << "\n[data] synthetic sets, preprocessing, loader, tokenizer (median of repeats)\n";
  nlohmann::json j;
  const fs::path dir = ctx.work / "data";
  // Synthetic generation: 6 classes x 20 test images (+ 10 train each) at 128^2.
  {
    data::SynthOptions o;
    o.out = (dir / "synth").string();
    o.classes = quick ? 2 : 6;
    o.images = 20;
    o.size = 128;
    data::SynthSummary s;
    const double sec = median_seconds(quick ? 1 : 3, [&] {
      fs::remove_all(o.out);
      s = data::generate_synthetic(o);
    });
    const int64_t n = s.normal + s.anomalous + s.train;
    row(ctx, "synth " + std::to_string(o.classes) + " classes, " + std::to_string(n) + " images at 128^2", sec, "s");
    j["synthetic"] = {{"classes", o.classes}, {"images", n}, {"size", 128}, {"seconds", sec}};
  }
  // preprocess_image: a 1024^2 RGB image to the paper's 518^2.
  {
    cv::Mat big(1024, 1024, CV_8UC3);
    cv::randu(big, 0, 255);
    const double sec = median_seconds(quick ? 3 : 9, [&] { data::preprocess_image(big, 518); });
    row(ctx, "preprocess_image 1024^2 -> 518^2", sec * 1000, "ms/image");
    j["preprocess_ms_1024_to_518"] = sec * 1000;
  }
  j["loader"] = loader_rows(ctx, dir / "loader", quick ? 1 : 2, quick ? 16 : 32);
  // Tokenizer: a fresh tokenizer (BPE of every word) and the cached encode of the same prompt.
  try {
    const std::string vocab = model::find_vocab();
    const std::string text = "a photo of a damaged <|class|> with scratches, dents and 3 cracks";
    std::vector<double> firsts;  // the first encode on a freshly loaded tokenizer (its load not timed)
    for (int i = 0; i < 3; ++i) {
      const auto fresh = model::Tokenizer::load(vocab);
      const auto t0 = Clock::now();
      fresh.encode(text);
      firsts.push_back(seconds_since(t0));
    }
    std::sort(firsts.begin(), firsts.end());
    const double first = firsts[1];
    auto tok = model::Tokenizer::load(vocab);
    tok.encode(text);
    const int reps = 2000;
    const double cached = median_seconds(3, [&] {
      for (int i = 0; i < reps; ++i) tok.encode(text);
    });
    row(ctx, "tokenizer encode, first time (BPE of every word)", first * 1e6, "us/prompt");
    row(ctx, "tokenizer encode, cached", cached / reps * 1e6, "us/prompt");
    j["tokenizer"] = {{"first_encode_us", first * 1e6}, {"cached_encode_us", cached / reps * 1e6}};
  } catch (const Error& e) {
    ctx.note(std::string("tokenizer rows skipped: ") + e.what());
  }
  fs::remove_all(dir);
  return j;
}

}  // namespace vcpclip::app::bench_detail
