// `vcpclip calibrate` and `eval --calibration-out` (see include/vcpclip/app/calibrate/calibrate.h).
#include "vcpclip/app/calibrate/calibrate.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "vcpclip/app/calibrate/reference_check.h"
#include "vcpclip/app/config/run_util.h"
#include "vcpclip/app/decider.h"
#include "vcpclip/build_info.h"
#include "vcpclip/common/error.h"
#include "vcpclip/common/progress.h"
#include "vcpclip/data/loader.h"
#include "vcpclip/eval/postprocess.h"
#include "vcpclip/io/atomic_file.h"
#include "vcpclip/io/sha256.h"

namespace fs = std::filesystem;

namespace vcpclip::app {
namespace {

/// Everything but the classes: method, time, version, checkpoint + SHA-256, config + settings, data.
eval::Calibration calibration_header(const EvalRequest& req, const std::string& method,
                                     const nlohmann::json& few_shot) {
  VCP_CHECK(!req.checkpoint.empty(),
            "calibration needs a checkpoint (--checkpoint): its thresholds belong to one "
            "trained head");
  eval::Calibration c;
  c.method = method;
  c.created = now_iso();
  c.version = VCPCLIP_VERSION;
  c.checkpoint = fs::absolute(req.checkpoint).lexically_normal().string();  // informative; matched by SHA-256
  c.checkpoint_sha256 = io::sha256_file(req.checkpoint, "checkpoint");
  c.config_path = req.config_path.empty() ? "" : fs::absolute(req.config_path).lexically_normal().string();
  c.settings = calibration_settings(req.model, req.postprocess, few_shot);
  c.precision = to_string(req.runtime.precision);
  const auto& d = *req.eval.data;
  c.data = {{"layout", d.layout},
            {"root", fs::absolute(d.root).lexically_normal().string()},
            {"split", d.split},
            {"classes", d.classes}};
  return c;
}

void finish_and_write(eval::Calibration& c, const std::string& path, int64_t images, int64_t anomalous) {
  c.data["images"] = images;
  c.data["anomalous"] = anomalous;
  if (c.classes.empty()) {
    std::string why;
    for (const auto& [name, reason] : c.skipped) why += (why.empty() ? "" : "; ") + name + ": " + reason;
    fail("calibration: no class could be calibrated (", why.empty() ? "no classes" : why, ")");
  }
  for (const auto& [name, reason] : c.skipped) spdlog::warn("calibration: class '{}' skipped: {}", name, reason);
  fs::create_directories(fs::absolute(path).parent_path());
  eval::write_calibration(c, path);
  spdlog::info("calibration ({}, {} classes) -> {}", c.method, c.classes.size(), path);
}

/// Maps and scores of the normal images of eval.data, per class (in dataset order); with
/// references, `zero` gets the same images' zero-shot maps and scores (app/calibrate/reference_check.h).
std::vector<eval::ClassAccumulator> normal_maps(const CalibrateRequest& req, int64_t* skipped, nlohmann::json* few_shot,
                                                std::vector<eval::ClassAccumulator>* zero) {
  const auto& e = req.eval;
  const auto device = apply_runtime(e.runtime);
  auto model = model::build_method(e.model, device);
  model::load_method_checkpoint(*model, e.checkpoint);
  model->set_precision(e.runtime.precision);  // recorded in calibration.json (calibration_header)
  model->eval();
  const auto index = data::read_index(*e.eval.data);
  // few-shot: each class's references (app/few_shot.h), never among the images calibrated on.
  std::map<std::string, model::ReferenceMemory> memories;
  if (e.few_shot.enabled()) {
    std::vector<std::string> classes;
    for (const auto& s : index.samples)
      if (!s.anomaly && std::find(classes.begin(), classes.end(), s.cls_name) == classes.end())
        classes.push_back(s.cls_name);
    memories = class_memories(*model, e.few_shot, *e.eval.data, classes, {}, run_identity(e.model, e.checkpoint), "");
    *few_shot = few_shot_settings(e.few_shot, memories);
  }
  std::set<std::string> references;
  for (const auto& [c, m] : memories) references.insert(m.images.begin(), m.images.end());
  std::vector<data::SampleInfo> normal;
  for (const auto& s : index.samples)
    if (!s.anomaly && !references.count(s.image_path)) normal.push_back(s);
  VCP_CHECK(!normal.empty(), "calibrate --method quantile: no normal image in ", index.source, " (split '",
            e.eval.data->split, "')");
  std::vector<eval::ClassAccumulator> accs;
  std::map<std::string, size_t> acc_of;
  for (const auto& c : index.classes) acc_of[c] = accs.size(), accs.emplace_back(c), zero->emplace_back(c);
  const int64_t s = e.model.input_size;
  auto lopts = data::make_loader_options(*e.eval.data, s, e.eval.batch_size, false, e.runtime.seed);
  data::DataLoader loader(normal, lopts);
  loader.start_epoch(0);
  std::optional<Progress> bar;
  if (e.progress) bar.emplace("calibrate", static_cast<int64_t>(normal.size()), "img");
  const auto& pp = e.postprocess;
  while (auto batch = loader.next()) {
    std::vector<const model::ReferenceMemory*> refs;
    if (!memories.empty())
      for (const auto& info : batch->infos) refs.push_back(&memories.at(info.cls_name));
    const auto maps = model->predict_maps(batch->images.to(device), nullptr, refs, batch->classes());
    auto out = eval::postprocess_maps(maps.raw, maps.post, pp, maps.image_score);
    const at::Tensor zpixel = out.pixel.to(at::kCPU).contiguous(), zscore = out.score.to(at::kCPU, at::kDouble);
    fuse_references(out, maps, e.few_shot);
    const at::Tensor pixel = out.pixel.to(at::kCPU).contiguous(), score = out.score.to(at::kCPU, at::kDouble);
    for (int64_t j = 0; j < batch->size(); ++j) {
      const auto& info = batch->infos[j];
      if (!acc_of.count(info.cls_name))
        acc_of[info.cls_name] = accs.size(), accs.emplace_back(info.cls_name), zero->emplace_back(info.cls_name);
      accs[acc_of.at(info.cls_name)].add(info.image_path, pixel[j], at::Tensor(), score[j].item<double>(), 0);
      if (!memories.empty())
        (*zero)[acc_of.at(info.cls_name)].add(info.image_path, zpixel[j], at::Tensor(), zscore[j].item<double>(), 0);
    }
    if (bar) bar->update(batch->size());
  }
  if (bar) bar->finish();
  *skipped = loader.skipped();
  return accs;
}

/// With references: the held-out false alarms with and without them (app/calibrate/reference_check.h),
/// printed and written to OUT/reference_check.json; a class where they rise gets a warning.
void check_references(const CalibrateRequest& req, const std::vector<eval::ClassAccumulator>& with,
                      const std::vector<eval::ClassAccumulator>& without) {
  const auto checks = held_out_false_alarms(with, without, req.image_quantile, req.pixel_quantile);
  spdlog::info("calibrate: good images held out to check the references (quantile calibration of the others):\n{}",
               held_out_table(checks));
  for (const auto& h : checks)
    if (!h.warning().empty()) spdlog::warn("calibrate: {}", h.warning());
  io::write_file_atomically((fs::path(req.eval.out_dir) / "reference_check.json").string(),
                            held_out_json(checks).dump(2) + "\n");
}

eval::Calibration run_quantile(const CalibrateRequest& req, const std::string& path) {
  int64_t skipped = 0;
  nlohmann::json few_shot;
  std::vector<eval::ClassAccumulator> zero;
  const auto accs = normal_maps(req, &skipped, &few_shot, &zero);
  if (!few_shot.is_null()) check_references(req, accs, zero);
  auto cal = calibration_header(req.eval, "quantile", few_shot);
  cal.image_quantile = req.image_quantile;
  cal.pixel_quantile = req.pixel_quantile;
  int64_t images = 0;
  for (const auto& acc : accs) {
    images += int64_t(acc.size());
    if (acc.size() == 0)
      cal.skipped.emplace_back(acc.name(), "no normal images");
    else
      cal.classes.push_back(eval::quantile_class_calibration(acc, req.image_quantile, req.pixel_quantile));
  }
  cal.data["unreadable_skipped"] = skipped;
  finish_and_write(cal, path, images, 0);
  return cal;
}

std::string opt_percent(const std::optional<double>& v) {
  char buf[32];
  if (!v) return "-";
  std::snprintf(buf, sizeof(buf), "%.2f", *v * 100.0);
  return buf;
}

}  // namespace

CalibrateRequest make_calibrate_request(const RunConfig& cfg) {
  CalibrateRequest req;
  req.eval = make_eval_request(cfg);
  req.eval.out_dir = "runs/calibrate";
  req.eval.eval.save_maps = false;
  req.eval.eval.export_png = false;
  return req;
}

std::string calibration_path(const std::string& out_dir) { return (fs::path(out_dir) / "calibration.json").string(); }

eval::Calibration run_calibrate(const CalibrateRequest& req) {
  VCP_CHECK(req.method == "f1" || req.method == "quantile", "calibrate: --method must be 'f1' or 'quantile', found '",
            req.method, "'");
  VCP_CHECK(req.image_quantile >= 0 && req.image_quantile <= 1, "calibrate: --image-quantile must be in [0, 1], found ",
            req.image_quantile);
  VCP_CHECK(req.pixel_quantile >= 0 && req.pixel_quantile <= 1, "calibrate: --pixel-quantile must be in [0, 1], found ",
            req.pixel_quantile);
  VCP_CHECK(!req.eval.checkpoint.empty(), "calibrate: no checkpoint given (--checkpoint)");
  VCP_CHECK(req.eval.eval.data.has_value(), "calibrate: no calibration set (an `eval.data` section) given");
  VCP_CHECK(!req.eval.out_dir.empty(), "calibrate: no output directory given (--out)");
  refuse_auto_precision(req.eval.runtime.precision, "calibrate");
  const std::string path = calibration_path(req.eval.out_dir);
  if (req.method == "quantile") {
    fs::create_directories(req.eval.out_dir);
    if (!req.eval.config_text.empty())
      io::write_file_atomically((fs::path(req.eval.out_dir) / "config.yaml").string(), req.eval.config_text);
    return run_quantile(req, path);
  }
  EvalRequest e = req.eval;
  e.calibration_out = path;
  run_eval(e);
  return eval::read_calibration(path);
}

void write_eval_calibration(const EvalRequest& req, const std::vector<eval::ClassRange>& ranges,
                            const std::vector<eval::ClassAccumulator>& normalised, const EvalResult& result) {
  auto cal = calibration_header(req, "f1", result.few_shot);
  int64_t images = 0, anomalous = 0;
  for (const auto& m : result.report.classes) {
    const auto acc =
        std::find_if(normalised.begin(), normalised.end(), [&](const auto& a) { return a.name() == m.name; });
    const auto range = std::find_if(ranges.begin(), ranges.end(), [&](const auto& r) { return r.name == m.name; });
    if (acc == normalised.end() || range == ranges.end() || acc->size() == 0) {
      cal.skipped.emplace_back(m.name, m.error.empty() ? "no images" : m.error);
      continue;
    }
    images += int64_t(acc->size());
    std::string why;
    if (auto c = eval::f1_class_calibration(*range, *acc, m, &why)) {
      anomalous += c->anomalous;
      cal.classes.push_back(std::move(*c));
    } else {
      cal.skipped.emplace_back(m.name, why);
    }
  }
  cal.data["unreadable_skipped"] = result.skipped;
  finish_and_write(cal, req.calibration_out, images, anomalous);
}

std::string format_calibration_table(const eval::Calibration& cal) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof(line), "%-20s %7s %9s %10s %10s %9s %9s\n", "class", "images", "anomalous", "image thr",
                "pixel thr", "image F1", "pixel F1");
  out += line;
  for (const auto& c : cal.classes) {
    std::snprintf(line, sizeof(line), "%-20s %7lld %9lld %10.4f %10.4f %9s %9s\n", c.name.c_str(),
                  static_cast<long long>(c.images), static_cast<long long>(c.anomalous), c.image_threshold,
                  c.pixel_threshold, opt_percent(c.image_f1).c_str(), opt_percent(c.pixel_f1).c_str());
    out += line;
  }
  for (const auto& [name, reason] : cal.skipped) out += "skipped " + name + ": " + reason + "\n";
  return out;
}

}  // namespace vcpclip::app
