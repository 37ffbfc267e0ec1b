// `vcpclip predict` (docs/design.md §6): maps, scores and heatmaps for images (see predict.h).
#include "vcpclip/app/predict.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <optional>
#include <set>
#include <thread>

#include "vcpclip/app/batch_pipeline.h"
#include "vcpclip/app/config/run_config.h"
#include "vcpclip/app/config/run_util.h"
#include "vcpclip/app/decider.h"
#include "vcpclip/app/report/predict_html.h"
#include "vcpclip/common/error.h"
#include "vcpclip/common/progress.h"
#include "vcpclip/common/stage_timer.h"
#include "vcpclip/data/transforms.h"
#include "vcpclip/eval/postprocess.h"
#include "vcpclip/eval/visualize.h"
#include "vcpclip/io/atomic_file.h"
#include "vcpclip/io/npy.h"
#include "vcpclip/model/method_registry.h"
#include "vcpclip/model/precision_probe.h"

namespace fs = std::filesystem;

namespace vcpclip::app {
namespace {

/// predict's heatmap: the min-max normalised map over the RGB image resized to S×S, drawn like
/// eval --export-png's (eval::jet_overlay); `alpha` weighs the heatmap (predict.heatmap_alpha). BGR out.
cv::Mat heatmap_overlay(const cv::Mat& rgb, const at::Tensor& map, double alpha) {
  const int s = static_cast<int>(map.size(0));
  auto m = map.to(at::kFloat).contiguous();
  const cv::Mat map_mat(s, s, CV_32F, m.data_ptr<float>());
  cv::Mat bgr, resized;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  cv::resize(bgr, resized, cv::Size(s, s), 0, 0, cv::INTER_AREA);
  return eval::jet_overlay(resized, eval::min_max_normalise(map_mat), 1.0 - alpha);
}

bool is_image_ext(const fs::path& p) {
  static const std::set<std::string> exts{".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"};
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return exts.count(e) > 0;
}

}  // namespace

PredictOptions parse_predict_options(io::ConfigNode& node) {
  PredictOptions o;
  o.batch_size = node.get<int64_t>("batch_size", o.batch_size);
  o.heatmap = node.get<bool>("heatmap", o.heatmap);
  o.heatmap_alpha = node.get<double>("heatmap_alpha", o.heatmap_alpha);
  node.finish();
  VCP_CHECK(o.batch_size >= 1, "config key ", node.where("batch_size"), ": expected ≥ 1, found ", o.batch_size);
  VCP_CHECK(o.heatmap_alpha >= 0 && o.heatmap_alpha <= 1, "config key ", node.where("heatmap_alpha"),
            ": expected a weight in [0, 1], found ", o.heatmap_alpha);
  return o;
}

PredictRequest make_predict_request(const RunConfig& cfg, const PredictFlags& flags) {
  PredictRequest req;
  req.runtime = cfg.runtime;
  req.model = cfg.require_model("predict");
  req.postprocess = cfg.postprocess;
  req.predict = cfg.predict;
  req.checkpoint = flags.checkpoint;
  req.inputs = flags.inputs;
  req.out_dir = flags.out_dir;
  req.save_branches = flags.save_branches;
  req.skip_bad = flags.skip_bad;
  req.progress = flags.progress;
  req.profile = flags.profile;
  req.serial = flags.serial;
  req.calibration = flags.calibration;
  req.class_name = flags.class_name;
  req.few_shot = cfg.few_shot;
  req.reference = flags.reference;
  req.save_reference = flags.save_reference;
  return req;
}

namespace {

/// The images below `dir`, recursively, sorted by relative path; hidden files and folders skipped.
std::vector<InputImage> images_below(const fs::path& dir) {
  std::vector<InputImage> found;
  auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied);
  for (; it != fs::recursive_directory_iterator(); ++it) {
    const fs::path& p = it->path();
    if (p.filename().string().rfind('.', 0) == 0) {
      if (it->is_directory()) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file() || !is_image_ext(p)) continue;
    const fs::path rel = p.lexically_relative(dir);
    found.push_back({p.string(), (rel.parent_path() / rel.stem()).generic_string()});
  }
  std::sort(found.begin(), found.end(), [](const InputImage& a, const InputImage& b) { return a.stem < b.stem; });
  return found;
}

}  // namespace

std::vector<InputImage> collect_images(const std::vector<std::string>& inputs) {
  std::vector<InputImage> out;
  for (const auto& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      auto found = images_below(in);
      VCP_CHECK(!found.empty(), "predict: no images (.png .jpg .jpeg .bmp .tif .tiff) in directory ", in,
                " or its sub-folders");
      out.insert(out.end(), found.begin(), found.end());
    } else {
      VCP_CHECK(fs::exists(in, ec), "predict: input ", in, " does not exist");
      out.push_back({in, fs::path(in).stem().string()});
    }
  }
  std::vector<std::string> stems;
  for (const auto& i : out) stems.push_back(i.stem);
  stems = unique_stems(stems);
  for (size_t i = 0; i < out.size(); ++i) out[i].stem = stems[i];
  return out;
}

std::vector<std::string> unique_stems(const std::vector<std::string>& stems) {
  std::vector<std::string> out;
  std::map<std::string, int> seen;
  for (const auto& stem : stems) {
    int n = ++seen[stem];
    out.push_back(n == 1 ? stem : stem + "_" + std::to_string(n));
  }
  return out;
}

namespace {

/// One decoded input image (or why it could not be decoded).
struct Decoded {
  cv::Mat rgb;       ///< the image as read (for the heatmap)
  at::Tensor input;  ///< preprocessed [3, S, S]
  std::string error;
};

/// Decodes and preprocesses images on worker threads ahead of the compute, handing them out in
/// input order. At most `window` images are decoded ahead of the one being consumed, so memory
/// stays bounded for any number of inputs. Decode time (summed over workers) goes to the timer.
class ImagePrefetcher {
 public:
  ImagePrefetcher(const std::vector<std::string>& paths, int64_t size, int workers, size_t window, StageTimer* timer)
      : paths_(paths), size_(size), window_(window), timer_(timer), slots_(paths.size()), ready_(paths.size(), 0) {
    for (int w = 0; w < std::max(1, workers); ++w) threads_.emplace_back([this] { work(); });
  }
  ~ImagePrefetcher() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  /// The image at `i` (blocks until decoded); consume in increasing order.
  Decoded take(size_t i) {
    std::unique_lock<std::mutex> lock(mutex_);
    consumed_ = i;
    cv_.notify_all();
    cv_.wait(lock, [&] { return ready_[i] != 0; });
    return std::move(slots_[i]);
  }

 private:
  void work() {
    while (true) {
      size_t i;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stop_ || (next_ < paths_.size() && next_ < consumed_ + window_); });
        if (stop_) return;
        i = next_++;
      }
      Decoded d;
      const auto t0 = std::chrono::steady_clock::now();
      try {
        d.rgb = data::read_rgb(paths_[i]);
        d.input = data::preprocess_image(d.rgb, size_);
      } catch (const std::exception& e) {
        d.error = e.what();
      }
      if (timer_) timer_->add("decode/preprocess (loader threads)", seconds_since(t0));
      {
        std::lock_guard<std::mutex> lock(mutex_);
        slots_[i] = std::move(d);
        ready_[i] = 1;
      }
      cv_.notify_all();
    }
  }

  const std::vector<std::string>& paths_;
  const int64_t size_;
  const size_t window_;
  StageTimer* timer_;
  std::vector<Decoded> slots_;
  std::vector<char> ready_;
  size_t next_ = 0, consumed_ = 0;
  bool stop_ = false;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::thread> threads_;
};

/// The next batch of readable images: their inputs, RGB images and indices. Unreadable ones are an
/// error, or (skip_bad) recorded in `summary` and skipped.
struct Batch {
  std::vector<at::Tensor> inputs;
  std::vector<cv::Mat> rgbs;
  std::vector<size_t> ids;
};
Batch next_batch(ImagePrefetcher& images, const std::vector<std::string>& paths, size_t& next,
                 const PredictRequest& req, PredictSummary& summary, Progress& bar, StageTimer& timer) {
  auto wait = timer.scope("waiting for decoded images");
  Batch b;
  while (next < paths.size() && static_cast<int64_t>(b.ids.size()) < req.predict.batch_size) {
    const size_t i = next++;
    Decoded d = images.take(i);
    if (!d.error.empty()) {
      if (!req.skip_bad) throw vcpclip::Error(d.error);
      spdlog::warn("skipping {}: {}", paths[i], d.error);
      summary.skipped.emplace_back(paths[i], d.error);
      bar.update(1);
      continue;
    }
    b.inputs.push_back(std::move(d.input));
    b.rgbs.push_back(std::move(d.rgb));
    b.ids.push_back(i);
  }
  return b;
}

/// One batch after post-processing (docs/design.md §6): the maps and per-image statistics, on the
/// model's device until BatchPipeline brings them to the host (to_host / from_host: its tensor list).
struct Processed {
  at::Tensor raw, post, final_maps;  ///< [B, S, S]; raw/post only with save_branches (post: with Post-VCP)
  at::Tensor few_shot_score;         ///< [B] few_shot_score_term (undefined without references)
  at::Tensor score_raw,
      score_post;  ///< [B] top-k means, or the method's own score (postprocess.image_score: method) and no score_post
  at::Tensor map_min, map_max;  ///< [B] of final_maps
  std::vector<at::Tensor> to_host() const {
    return {raw, post, final_maps, few_shot_score, score_raw, score_post, map_min, map_max};
  }
  static Processed from_host(std::vector<at::Tensor>& t) {
    Processed p;
    p.raw = t[0], p.post = t[1], p.final_maps = t[2].contiguous(), p.few_shot_score = t[3];
    p.score_raw = t[4], p.score_post = t[5], p.map_min = t[6], p.map_max = t[7];
    return p;
  }
};
/// The blend, Gaussian filter, few-shot fusion, top-k scores and map ranges run on the maps' own
/// device (the model's), as in evaluate and the Inferencer, image by image with the ops of the
/// serial loop, so that the CPU results are those of before; only results go to the host.
Processed postprocess(const model::MethodMaps& maps, const PostprocessOptions& pp, const FewShotOptions& few_shot,
                      bool save_branches) {
  at::Tensor final_maps = eval::pixel_map(maps.raw, maps.post, pp.alpha, pp.sigma);  // M_raw without Post-VCP
  Processed p;
  const auto term = few_shot_term(maps, few_shot);  // app/few_shot.h: weight·D or weight·max(0, D̂ − margin)
  if (term.defined()) {                             // app::fuse_references' arithmetic (float32)
    p.few_shot_score = few_shot_score_term(maps, final_maps, term, few_shot);
    final_maps = final_maps + term;
  }
  std::vector<at::Tensor> raw, post, lo, hi;
  for (int64_t j = 0; j < maps.raw.size(0); ++j) {
    if (!pp.method_score) {
      raw.push_back(eval::topk_mean(maps.raw[j], pp.topk));
      if (maps.post.defined()) post.push_back(eval::topk_mean(maps.post[j], pp.topk));
    }
    lo.push_back(final_maps[j].min());
    hi.push_back(final_maps[j].max());
  }
  // the method's own score (APRIL-GAN, AnomalyCLIP: from the class token), else the top-k means
  p.score_raw = pp.method_score ? eval::method_image_score(maps.image_score) : at::stack(raw);
  if (!post.empty()) p.score_post = at::stack(post);
  p.map_min = at::stack(lo), p.map_max = at::stack(hi);
  if (save_branches) p.raw = maps.raw, p.post = maps.post;
  p.final_maps = final_maps;
  return p;
}

PredictedImage score_image(const Processed& p, int64_t j) {
  PredictedImage r;
  r.score_raw = p.score_raw[j].item<double>();
  r.score_post = p.score_post.defined() ? p.score_post[j].item<double>() : 0.0;
  r.score_few_shot = p.few_shot_score.defined() ? p.few_shot_score[j].item<double>() : 0.0;
  r.score = r.score_raw + r.score_post + r.score_few_shot;
  r.map_min = p.map_min[j].item<float>();
  r.map_max = p.map_max[j].item<float>();
  return r;
}

void write_outputs(const PredictRequest& req, const Processed& p, int64_t j, const cv::Mat& rgb,
                   const std::string& stem) {
  const std::string base = (fs::path(req.out_dir) / stem).string();
  fs::create_directories(fs::path(base).parent_path());
  io::write_npy(base + "_map.npy", p.final_maps[j]);
  if (req.save_branches) {
    io::write_npy(base + "_raw.npy", p.raw[j].contiguous());
    if (p.post.defined()) io::write_npy(base + "_post.npy", p.post[j].contiguous());
  }
  if (req.predict.heatmap) {
    cv::Mat vis = heatmap_overlay(rgb, p.final_maps[j], req.predict.heatmap_alpha);
    VCP_CHECK(cv::imwrite(base + ".png", vis), "predict: cannot write ", base, ".png");
  }
}

/// The outputs of one batch (writer thread, in batch order): scores, maps, heatmaps, decisions.
void write_batch(const PredictRequest& req, const Processed& p, const Batch& b, const std::vector<std::string>& paths,
                 const std::vector<InputImage>& inputs, const std::optional<Decider>& decider,
                 PredictSummary& summary) {
  for (size_t j = 0; j < b.ids.size(); ++j) {
    PredictedImage r = score_image(p, static_cast<int64_t>(j));
    r.path = paths[b.ids[j]];
    r.stem = inputs[b.ids[j]].stem;
    write_outputs(req, p, static_cast<int64_t>(j), b.rgbs[j], r.stem);
    if (decider) {
      const auto mask_path = (fs::path(req.out_dir) / (r.stem + "_mask.png")).string();
      r.decision =
          decider->apply(p.final_maps[j], r.score_raw, r.score_post, b.rgbs[j].size(), mask_path, r.score_few_shot);
    }
    summary.images.push_back(r);
  }
}

nlohmann::json write_scores_json(const PredictRequest& req, const PredictSummary& summary, int64_t size,
                                 const std::optional<Decider>& decider, const model::PrecisionChoice& precision,
                                 const nlohmann::json& few_shot) {
  const auto& pp = req.postprocess;
  nlohmann::json j;
  j["checkpoint"] = req.checkpoint;
  j["image_size"] = size;
  j["alpha"] = pp.alpha;
  j["sigma"] = pp.sigma;
  j["topk"] = pp.topk;
  j["post_vcp"] = req.model.post_vcp;
  j["method"] = req.model.method;
  if (pp.method_score) j["image_score"] = "method";
  j["precision"] = to_string(precision.used);
  if (precision.probe) j["precision_probe"] = precision.to_json().at("probe");
  j["images"] = nlohmann::json::array();
  for (const auto& r : summary.images) {
    nlohmann::json e = {{"path", r.path},
                        {"stem", r.stem},
                        {"score", r.score},
                        {"score_raw", r.score_raw},
                        {"score_post", r.score_post},
                        {"score_few_shot", r.score_few_shot},
                        {"map_min", r.map_min},
                        {"map_max", r.map_max}};
    if (req.predict.heatmap) e["heatmap"] = r.stem + ".png";
    if (r.decision) e.update(decision_json(*r.decision, r.stem + "_mask.png"));
    j["images"].push_back(e);
  }
  if (decider) j["calibration"] = decider->describe();
  j["few_shot"] = few_shot;
  j["skipped"] = nlohmann::json::array();
  for (const auto& [path, e] : summary.skipped) j["skipped"].push_back({{"path", path}, {"error", e}});
  io::write_file_atomically((fs::path(req.out_dir) / "scores.json").string(), j.dump(2) + "\n");
  return j;
}

/// The few-shot memory of a run from `source` (reference_source: --reference, else few_shot.folder;
/// "": zero-shot).
struct PredictReferences {
  std::shared_ptr<model::ReferenceMemory> memory;
  nlohmann::json settings;  ///< calibration_settings' few_shot record (null: zero-shot)
};
PredictReferences predict_references(const PredictRequest& req, const std::string& source, model::MethodImpl& model,
                                     StageTimer& timer) {
  PredictReferences r;
  if (source.empty()) return r;
  auto t = timer.scope("few-shot reference memory");
  const auto layers = few_shot_layers(req.few_shot, req.model);
  r.memory = std::make_shared<model::ReferenceMemory>(reference_from_path(
      model, source, req.few_shot.k, req.few_shot.seed, layers, run_identity(req.model, req.checkpoint)));
  if (!req.save_reference.empty()) model::save_reference_memory(*r.memory, req.save_reference);
  r.settings = memory_settings(req.few_shot, *r.memory);
  spdlog::info("predict: {} reference image(s) from {}, memory {:.1f} MB", r.memory->shots(), source,
               static_cast<double>(r.memory->bytes()) / 1e6);
  return r;
}

/// Loads the model and checkpoint (the "load" stage) and sets its precision (auto: the probe).
model::Method load_model(const PredictRequest& req, const c10::Device& device, StageTimer& timer,
                         model::PrecisionChoice* precision) {
  auto model = [&] {
    auto t = timer.scope("load (weights, tokenizer, checkpoint)");
    auto m = model::build_method(req.model, device);
    model::load_method_checkpoint(*m, req.checkpoint);
    m->eval();
    return m;
  }();
  *precision = model::set_model_precision(*model, req.runtime.precision);
  if (precision->probe) timer.add("precision probe (runtime.precision auto)", precision->probe->seconds);
  return model;
}

}  // namespace

PredictSummary run_predict(const PredictRequest& req) {
  VCP_CHECK(!req.checkpoint.empty(), "predict: no checkpoint given (--checkpoint)");
  VCP_CHECK(!req.out_dir.empty(), "predict: no output directory given (--out)");
  const auto start = std::chrono::steady_clock::now();
  const auto device = apply_runtime(req.runtime);
  StageTimer timer(req.profile, device_sync(device));
  const auto inputs = collect_images(req.inputs);
  std::vector<std::string> paths;
  for (const auto& i : inputs) paths.push_back(i.path);
  const std::string source = reference_source(  // --reference, else few_shot.folder ("": zero-shot)
      req.reference, req.few_shot, "predict",
      ": pass --reference DIR (normal images of the product) or set few_shot.folder");
  VCP_CHECK(req.save_reference.empty() || !source.empty(), "predict: --save-reference needs --reference DIR");
  const bool with_references = !source.empty();
  std::optional<Decider> decider;  // --calibration (app/decider.h): zero-shot, checked before the model is built
  if (!req.calibration.empty() && !with_references)
    decider.emplace(req.calibration, req.class_name, req.model, req.postprocess, req.checkpoint);
  if (req.calibration.empty()) product_class(req.model, req.class_name, nullptr, "predict");  // fails fast
  model::PrecisionChoice precision;
  auto model = load_model(req, device, timer, &precision);
  const PredictReferences refs = predict_references(req, source, *model, timer);
  if (!req.calibration.empty() && with_references)  // the calibration must have been made with these references
    decider.emplace(req.calibration, req.class_name, req.model, req.postprocess, req.checkpoint, refs.settings);
  if (decider) decider->warn_if_other_precision(precision.used);
  const std::string product = product_class(req.model, req.class_name, decider ? &*decider : nullptr, "predict");
  fs::create_directories(req.out_dir);
  const int64_t s = model->input_size();
  PredictSummary summary;
  Progress bar("predict", static_cast<int64_t>(paths.size()), "img", req.progress);
  const auto compute_start = std::chrono::steady_clock::now();
  const size_t window = static_cast<size_t>(2 * req.predict.batch_size);
  ImagePrefetcher images(paths, s, loader_workers(2), window, req.profile ? &timer : nullptr);
  PipelineOptions po;
  po.overlap = !req.serial;
  BatchPipeline pipe(device, po, req.profile ? &timer : nullptr);
  for (size_t next = 0; next < paths.size();) {
    auto b = std::make_shared<Batch>(next_batch(images, paths, next, req, summary, bar, timer));
    if (b->ids.empty()) continue;
    pipe.begin_batch();
    const std::vector<const model::ReferenceMemory*> memories(refs.memory ? b->ids.size() : 0, refs.memory.get());
    const model::ClassNames classes(product.empty() ? 0 : b->ids.size(), product);
    model::MethodMaps maps =
        model->predict_maps(to_device_async(at::stack(b->inputs), device), &timer, memories, classes);
    b->inputs.clear();
    Processed p;
    {
      auto t = timer.scope("post-processing");
      p = postprocess(maps, req.postprocess, req.few_shot, req.save_branches);
    }
    pipe.submit(p.to_host(), [&, b](std::vector<at::Tensor>& host) {
      write_batch(req, Processed::from_host(host), *b, paths, inputs, decider, summary);
      bar.update(static_cast<int64_t>(b->ids.size()));
    });
  }
  pipe.finish();
  summary.gpu_busy_share = pipe.device_busy_share();
  bar.finish();
  summary.seconds = seconds_since(compute_start);
  summary.images_per_second = summary.seconds > 0 ? summary.images.size() / summary.seconds : 0.0;
  {
    auto t = timer.scope("writing");
    write_predict_report_html(req.out_dir, write_scores_json(req, summary, s, decider, precision, refs.settings));
  }
  spdlog::info("predict: {} images ({} skipped) in {:.2f} s ({:.2f} img/s) → {} (open {}/report.html)",
               summary.images.size(), summary.skipped.size(), summary.seconds, summary.images_per_second, req.out_dir,
               req.out_dir);
  if (summary.gpu_busy_share) spdlog::info("predict: {}", busy_share_line(summary.gpu_busy_share));
  if (req.profile) {
    summary.profile = timer.to_json(seconds_since(start));
    summary.profile["gpu_busy_share"] = summary.gpu_busy_share ? nlohmann::json(*summary.gpu_busy_share) : nullptr;
    std::fprintf(stderr, "predict profile (%s, %s):\n%s%s, %s\n", device.str().c_str(), to_string(precision.used),
                 timer.table(seconds_since(start)).c_str(), busy_share_line(summary.gpu_busy_share).c_str(),
                 req.serial ? "serial loop (--serial)" : "pipelined (writer thread)");
  }
  return summary;
}

}  // namespace vcpclip::app
