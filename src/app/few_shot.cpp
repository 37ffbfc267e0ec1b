// Few-shot references: config, sampling and memories per class (see include/vcpclip/app/few_shot.h).
#include "vcpclip/app/few_shot.h"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <numeric>
#include <opencv2/imgcodecs.hpp>
#include <random>
#include <set>

#include "vcpclip/common/error.h"
#include "vcpclip/data/transforms.h"
#include "vcpclip/eval/postprocess.h"
#include "vcpclip/io/atomic_file.h"
#include "vcpclip/io/safetensors.h"
#include "vcpclip/io/sha256.h"
#include "vcpclip/model/method_registry.h"

namespace fs = std::filesystem;

namespace vcpclip::app {

FewShotOptions parse_few_shot_options(io::ConfigNode& node) {
  FewShotOptions o;
  o.k = node.get<int64_t>("k", o.k);
  o.seed = static_cast<uint64_t>(node.get<int64_t>("seed", static_cast<int64_t>(o.seed)));
  o.folder = node.get_path("folder", o.folder);
  if (node.has("data")) {
    auto d = node.section("data");
    o.data = data::parse_data_options(d);
  } else {
    node.section("data");  // known key, absent
  }
  o.layers = node.get<std::vector<int64_t>>("layers", o.layers);
  o.fusion = node.get<std::string>("fusion", o.fusion);
  o.weight = node.get<double>("weight", o.weight);
  o.margin = node.get<double>("margin", o.fusion == "normalized" ? 3.0 : 1.0);
  o.threshold = node.get<std::string>("threshold", o.threshold);
  o.center = node.get<bool>("center", o.center);
  node.finish();
  VCP_CHECK(o.k >= 0, "config key ", node.where("k"), ": expected ≥ 0 (0 = zero-shot), found ", o.k);
  VCP_CHECK(o.folder.empty() || !o.data, "config keys ", node.where("folder"), " and ", node.where("data"),
            ": give one source of reference images, not both");
  for (size_t i = 0; i < o.layers.size(); ++i) {
    VCP_CHECK(o.layers[i] >= 1, "config key ", node.where("layers"), ": layers are 1-based, found ", o.layers[i]);
    VCP_CHECK(i == 0 || o.layers[i] > o.layers[i - 1], "config key ", node.where("layers"),
              ": expected strictly increasing layers");
  }
  VCP_CHECK(o.fusion == "add" || o.fusion == "normalized" || o.fusion == "relative", "config key ",
            node.where("fusion"),
            ": expected relative (D̂ in the map, the score's part scaled by the zero-shot map's range), add "
            "(APRIL-GAN's: pixel map + weight·D) or normalized (D scaled by the references' normal variation), found '",
            o.fusion, "'");
  VCP_CHECK(o.weight > 0, "config key ", node.where("weight"), ": expected > 0, found ", o.weight);
  VCP_CHECK(o.threshold == "fixed" || o.threshold == "references", "config key ", node.where("threshold"),
            ": expected fixed (margin) or references (the references' largest normal D̂ + margin), found '", o.threshold,
            "'");
  VCP_CHECK(o.margin >= 0, "config key ", node.where("margin"), ": expected ≥ 0, found ", o.margin);
  return o;
}

at::Tensor few_shot_term(const model::MethodMaps& maps, const FewShotOptions& opts) {
  if (!maps.few_shot.defined()) return {};
  const auto w = static_cast<float>(opts.weight);
  if (opts.fusion == "add") return maps.few_shot.to(at::kFloat) * w;
  VCP_CHECK(maps.few_shot_normalized.defined(), "few-shot: fusion '", opts.fusion,
            "' needs the normal level and scale of the reference memory, and this memory has none (a memory file of "
            "version 1, written before them); build it again from the reference images");
  auto d = maps.few_shot_normalized.to(at::kFloat);
  if (opts.center) d = d - std::get<0>(d.flatten(1).median(1)).view({-1, 1, 1});
  d = d - static_cast<float>(opts.margin);
  if (opts.threshold == "references") d = d - maps.few_shot_normal_max.to(d.device(), at::kFloat).view({-1, 1, 1});
  return d.clamp_min(0) * w;
}

at::Tensor few_shot_score_term(const model::MethodMaps& maps, const at::Tensor& zero_shot_pixel, const at::Tensor& term,
                               const FewShotOptions& opts) {
  if (!term.defined()) return {};
  if (opts.fusion != "relative") return std::get<0>(term.flatten(1).max(1));
  // The references' say (max D̂ beyond the largest D̂ of their own normal patches) in units of this
  // image's zero-shot map range: the zero-shot score's scale, whatever the method (docs/design.md §13).
  const auto z = zero_shot_pixel.to(term.device(), at::kFloat).flatten(1);
  const auto range = std::get<0>(z.max(1)) - std::get<0>(z.median(1));
  const auto dn = maps.few_shot_normalized.to(term.device(), at::kFloat).flatten(1);
  const auto excess = (std::get<0>(dn.max(1)) - maps.few_shot_normal_max.to(term.device(), at::kFloat)).clamp_min(0);
  return range * excess * static_cast<float>(opts.weight);
}

void fuse_references(eval::PostprocessedMaps& out, const model::MethodMaps& maps, const FewShotOptions& opts) {
  const auto term = few_shot_term(maps, opts);
  if (!term.defined()) return;
  VCP_CHECK(term.sizes() == out.pixel.sizes(), "few-shot fusion: map ", shape_text(term.sizes()),
            " does not match the pixel maps ", shape_text(out.pixel.sizes()));
  const auto score = few_shot_score_term(maps, out.pixel, term, opts);
  out.pixel = out.pixel + term.to(out.pixel.device());
  out.score = out.score + score.to(out.score.device(), out.score.scalar_type());
}

std::vector<int64_t> few_shot_layers(const FewShotOptions& opts, const model::ModelOptions& model) {
  return opts.layers.empty() ? model.features_list : opts.layers;
}

std::vector<std::string> sample_references(const std::vector<std::string>& candidates, int64_t k, uint64_t seed,
                                           const std::string& what) {
  VCP_CHECK(!candidates.empty(), "few-shot: no reference images in ", what);
  if (k <= 0 || k == static_cast<int64_t>(candidates.size())) return candidates;
  VCP_CHECK(k <= static_cast<int64_t>(candidates.size()), "few-shot: k = ", k, " reference images asked for, but ",
            what, " has only ", candidates.size());
  std::vector<size_t> idx(candidates.size());
  std::iota(idx.begin(), idx.end(), size_t{0});
  std::mt19937_64 rng(seed);
  std::shuffle(idx.begin(), idx.end(), rng);
  idx.resize(static_cast<size_t>(k));
  std::sort(idx.begin(), idx.end());
  std::vector<std::string> out;
  for (auto i : idx) out.push_back(candidates[i]);
  return out;
}

model::ReferenceIdentity run_identity(const model::ModelOptions& m, const std::string& checkpoint) {
  model::ReferenceIdentity id;
  id.backbone_sha256 = io::sha256_file(m.backbone, "backbone config");
  id.weights_sha256 = m.weights.empty() ? "" : io::sha256_file(m.weights, "CLIP weights");
  id.init_seed = static_cast<int64_t>(m.init_seed);
  id.checkpoint_sha256 = checkpoint.empty() ? "" : io::sha256_file(checkpoint, "checkpoint");
  id.input_size = m.input_size;
  id.method = m.method;
  return id;
}

model::ReferenceMemory build_memory_from_files(model::MethodImpl& model, const std::vector<std::string>& files,
                                               const std::vector<int64_t>& layers,
                                               const model::ReferenceIdentity& identity) {
  VCP_CHECK(!files.empty(), "few-shot: no reference images given");
  std::vector<at::Tensor> images;
  int rows = 0, cols = 0, channels = 0;
  for (const auto& f : files) {
    const cv::Mat raw = cv::imread(f, cv::IMREAD_UNCHANGED);
    VCP_CHECK(!raw.empty(), "few-shot: cannot decode reference image ", f);
    if (images.empty()) {
      rows = raw.rows, cols = raw.cols, channels = raw.channels();
    } else {
      VCP_CHECK(raw.rows == rows && raw.cols == cols && raw.channels() == channels, "few-shot: reference image ", f,
                " is ", raw.cols, "x", raw.rows, " with ", raw.channels(), " channel(s), but ", files.front(), " is ",
                cols, "x", rows, " with ", channels,
                " channel(s): the references of one product must be taken the same way");
    }
    const cv::Mat rgb = data::to_rgb(raw, data::ChannelOrder::kBGR, "reference image " + f);
    images.push_back(data::preprocess_image(rgb, model.input_size()));
  }
  const auto device = model.device();
  auto mem = model::build_reference_memory(model, at::stack(images).to(device), layers);
  mem.images = files;
  for (const auto& f : files) mem.image_sha256.push_back(io::sha256_file(f, "reference image"));
  mem.identity = identity;
  return mem;
}

namespace {

bool is_image_file(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return e == ".png" || e == ".jpg" || e == ".jpeg" || e == ".bmp" || e == ".tif" || e == ".tiff";
}

std::vector<std::string> folder_images(const std::string& dir) {
  VCP_CHECK(fs::is_directory(dir), "few-shot: reference folder ", dir, " does not exist");
  std::vector<std::string> found;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && is_image_file(e.path())) found.push_back(e.path().string());
  std::sort(found.begin(), found.end());
  VCP_CHECK(!found.empty(), "few-shot: no images (.png .jpg .jpeg .bmp .tif .tiff) in reference folder ", dir);
  return found;
}

}  // namespace

std::string reference_source(const std::string& given, const FewShotOptions& opts, const std::string& who,
                             const std::string& how_to_give) {
  const std::string source = given.empty() ? opts.folder : given;
  VCP_CHECK(!source.empty() || !opts.enabled(), who, ": few_shot.k is ", opts.k, " but no reference images were given",
            how_to_give);
  return source;
}

model::ReferenceMemory reference_from_path(model::MethodImpl& model, const std::string& path, int64_t k, uint64_t seed,
                                           const std::vector<int64_t>& layers,
                                           const model::ReferenceIdentity& identity) {
  const auto device = model.device();
  if (fs::is_regular_file(path)) {
    auto mem = model::load_reference_memory(path);
    model::check_reference_identity(mem, identity, path);
    VCP_CHECK(mem.layers == layers, "reference memory ", path, " holds layers ", shape_text(mem.layers),
              ", but this run uses layers ", shape_text(layers), " (few_shot.layers)");
    return mem.to(device);
  }
  const auto files = sample_references(folder_images(path), k, seed, "reference folder " + path);
  return build_memory_from_files(model, files, layers, identity);
}

std::map<std::string, model::ReferenceMemory> class_memories(model::MethodImpl& model, const FewShotOptions& opts,
                                                             const data::DataOptions& test_set,
                                                             const std::vector<std::string>& classes,
                                                             const std::vector<std::string>& test_images,
                                                             const model::ReferenceIdentity& identity,
                                                             const std::string& save_dir) {
  const auto layers = few_shot_layers(opts, model.options());
  const std::set<std::string> tests(test_images.begin(), test_images.end());
  std::map<std::string, std::vector<std::string>> candidates;
  std::string source;
  if (!opts.folder.empty()) {
    const auto files = folder_images(opts.folder);
    for (const auto& c : classes) candidates[c] = files;
    source = "reference folder " + opts.folder;
  } else {
    data::DataOptions d = opts.data ? *opts.data : test_set;
    d.split = "train";
    d.classes = classes;
    const auto index = data::read_index(d);
    for (const auto& s : index.samples)
      if (s.anomaly == 0) candidates[s.cls_name].push_back(s.image_path);
    source = "the train split of " + index.source;
  }
  std::map<std::string, model::ReferenceMemory> out;
  for (const auto& c : classes) {
    auto files =
        sample_references(candidates[c], opts.k, opts.seed, "class '" + c + "' (good images of " + source + ")");
    for (const auto& f : files)
      VCP_CHECK(!tests.count(f), "few-shot: reference image ", f, " of class '", c,
                "' is also a test image; references must come from other images (e.g. the train split)");
    auto mem = build_memory_from_files(model, files, layers, identity);
    spdlog::info("few-shot: class '{}': {} reference image(s), memory {:.1f} MB, largest normal D^ {:.2f}", c,
                 mem.shots(), static_cast<double>(mem.bytes()) / 1e6, mem.normal_max);
    if (!save_dir.empty()) {
      io::make_directories(save_dir);
      model::save_reference_memory(mem, (fs::path(save_dir) / (c + ".safetensors")).string());
    }
    out.emplace(c, std::move(mem));
  }
  return out;
}

nlohmann::json memory_settings(const FewShotOptions& opts, const model::ReferenceMemory& memory) {
  nlohmann::json j = {{"k", memory.shots()},
                      {"layers", memory.layers},
                      {"fusion", opts.fusion},
                      {"weight", opts.weight},
                      {"references", memory.fingerprint()}};
  if (opts.fusion == "normalized")
    j["margin"] = opts.margin, j["threshold"] = opts.threshold, j["center"] = opts.center;
  if (opts.fusion == "relative") j["margin"] = opts.margin;
  return j;
}

nlohmann::json few_shot_settings(const FewShotOptions& opts,
                                 const std::map<std::string, model::ReferenceMemory>& memories) {
  if (memories.empty()) return nullptr;
  nlohmann::json refs = nlohmann::json::object();
  int64_t k = 0;
  for (const auto& [c, m] : memories) {
    refs[c] = m.fingerprint();
    k = m.shots();
  }
  nlohmann::json j = {{"k", k},
                      {"layers", memories.begin()->second.layers},
                      {"fusion", opts.fusion},
                      {"weight", opts.weight},
                      {"references", refs}};
  if (opts.fusion == "normalized")
    j["margin"] = opts.margin, j["threshold"] = opts.threshold, j["center"] = opts.center;
  if (opts.fusion == "relative") j["margin"] = opts.margin;
  return j;
}

}  // namespace vcpclip::app
