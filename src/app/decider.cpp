// Calibration settings, the checked load, and per-image decisions (see decider.h).
#include "vcpclip/app/decider.h"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <opencv2/imgcodecs.hpp>

#include "vcpclip/common/error.h"
#include "vcpclip/io/sha256.h"
#include "vcpclip/model/method_registry.h"

namespace vcpclip::app {

nlohmann::json calibration_settings(const model::ModelOptions& m, const PostprocessOptions& pp,
                                    const nlohmann::json& few_shot) {
  nlohmann::json model = {{"backbone_sha256", io::sha256_file(m.backbone, "backbone config")},
                          {"weights_sha256", m.weights.empty() ? "" : io::sha256_file(m.weights, "CLIP weights")},
                          {"image_size", m.input_size},
                          {"activation", model::to_string(m.activation)},
                          {"features_list", m.features_list}};
  if (m.method == "vcp_clip") {  // its own keys; no "method" key (files of before are vcp_clip's)
    model.update({{"prompt_len", m.prompt_len},
                  {"deep_prompt_len", m.deep_prompt_len},
                  {"deep_prompt_layers", m.deep_prompt_layers},
                  {"use_global", m.use_global},
                  {"post_vcp", m.post_vcp},
                  {"post_heads", m.post_heads},
                  {"templates_normal", m.templates_normal},
                  {"templates_abnormal", m.templates_abnormal}});
  } else {
    model["method"] = m.method;
  }
  if (m.weights.empty()) model["init_seed"] = m.init_seed;  // the random backbone comes from it
  nlohmann::json post = {{"alpha", pp.alpha}, {"sigma", pp.sigma}, {"topk", pp.topk}};
  if (pp.method_score) post["image_score"] = "method";  // absent = topk (files of before)
  nlohmann::json out = {{"model", model}, {"postprocess", post}};
  if (!few_shot.is_null()) out["few_shot"] = few_shot;  // absent = zero-shot (files of before few-shot)
  return out;
}

std::string product_class(const model::ModelOptions& model, const std::string& flag, const Decider* decider,
                          const std::string& who) {
  const auto& info = model::method_info(model.method);
  if (!info.needs_class_name) return "";
  if (!flag.empty()) return flag;
  if (decider) return decider->class_name();
  fail(who, ": ", info.title, " (model.method ", info.name,
       ") names the product in its prompts: give its class with --class NAME (written as the dataset's class "
       "folder, e.g. metal_nut), or a calibration (--calibration) whose class it then uses");
}

eval::Calibration load_checked_calibration(const std::string& path, const model::ModelOptions& model,
                                           const PostprocessOptions& pp, const std::string& checkpoint,
                                           const nlohmann::json& few_shot, const std::string& class_name) {
  auto cal = eval::read_calibration(path);
  const std::string sha = io::sha256_file(checkpoint, "checkpoint");
  VCP_CHECK(sha == cal.checkpoint_sha256, "calibration ", path, " was made for another checkpoint: ", cal.checkpoint,
            " with SHA-256 ", cal.checkpoint_sha256, ", but this run uses ", checkpoint, " with SHA-256 ", sha,
            "; calibrate again for it (vcpclip calibrate)");
  // few-shot: the run holds one class's references; compare them with that class's record.
  auto recorded = cal.settings;
  if (recorded.contains("few_shot") && recorded["few_shot"].contains("references") && few_shot.is_object()) {
    const auto& name = cal.find(class_name, path).name;
    auto& refs = recorded["few_shot"]["references"];
    refs = refs.contains(name) ? refs[name] : nlohmann::json("(none for class '" + name + "')");
  }
  const std::string made_with = recorded.contains("model") && recorded["model"].contains("method")
                                    ? recorded["model"]["method"].get<std::string>()
                                    : "vcp_clip";
  VCP_CHECK(made_with == model.method, "calibration ", path, " was made with method ", made_with,
            ", but this run's model.method is ", model.method,
            "; calibrate again with this method (vcpclip calibrate)");
  const auto diffs = eval::settings_differences(recorded, calibration_settings(model, pp, few_shot));
  if (!diffs.empty()) {
    std::string text;
    for (const auto& d : diffs) text += (text.empty() ? "" : "; ") + d;
    fail("calibration ", path, " was made for another config: ", text,
         "; calibrate again with this config (vcpclip calibrate)");
  }
  return cal;
}

Decider::Decider(const std::string& calibration_path, const std::string& class_name, const model::ModelOptions& model,
                 const PostprocessOptions& pp, const std::string& checkpoint, const nlohmann::json& few_shot)
    : path_(calibration_path) {
  const auto cal = load_checked_calibration(calibration_path, model, pp, checkpoint, few_shot, class_name);
  method_ = cal.method;
  precision_ = cal.precision;
  cls_ = cal.find(class_name, calibration_path);
}

eval::Decision Decider::decide(const at::Tensor& map, double score, cv::Size input_size) const {
  VCP_CHECK(map.dim() == 2, "decide: expected an [S,S] pixel map, found ", map.sizes());
  at::Tensor m = map.to(at::kCPU, at::kFloat).contiguous();
  const cv::Mat grid(int(m.size(0)), int(m.size(1)), CV_32FC1, m.data_ptr<float>());
  return eval::decide(grid, score, cls_, input_size);
}

eval::Decision Decider::apply(const at::Tensor& map, double score_raw, double score_post, cv::Size input_size,
                              const std::string& mask_path, double score_few_shot) const {
  auto d = decide(map, eval_score(score_raw, score_post, score_few_shot), input_size);
  write_mask_png(mask_path, d.mask);
  d.mask.release();
  return d;
}

double Decider::eval_score(double score_raw, double score_post, double score_few_shot) {
  const float zero_shot = static_cast<float>(score_raw) + static_cast<float>(score_post);
  if (score_few_shot == 0) return double(zero_shot);
  return double(zero_shot + static_cast<float>(score_few_shot));
}

std::string calibration_precision_warning(const std::string& path, const std::string& calibrated, Precision used) {
  const std::string run = to_string(used);
  if (calibrated.empty()) {
    if (used == Precision::kFp32) return "";
    return msg("calibration ", path, " does not record its precision (made by an older vcpclip, normally in fp32) ",
               "and this run uses ", run, ": decisions near a threshold may differ (calibrate again, or run in fp32)");
  }
  if (calibrated == run) return "";
  return msg("calibration ", path, " was made in ", calibrated, " and this run uses ", run,
             ": its thresholds were set on ", calibrated, " maps; decisions near a threshold may differ (calibrate in ",
             run, ", or run in ", calibrated, ")");
}

std::string Decider::warn_if_other_precision(Precision used) const {
  auto w = calibration_precision_warning(path_, precision_, used);
  if (!w.empty()) spdlog::warn("{}", w);
  return w;
}

nlohmann::json Decider::describe() const {
  return {{"path", path_},
          {"class", cls_.name},
          {"method", method_},
          {"image_threshold", cls_.image_threshold},
          {"pixel_threshold", cls_.pixel_threshold}};
}

nlohmann::json decision_json(const eval::Decision& d, const std::string& mask_file) {
  nlohmann::json regions = nlohmann::json::array();
  for (const auto& r : d.regions)
    regions.push_back({{"x", r.x}, {"y", r.y}, {"width", r.width}, {"height", r.height}, {"area", r.area}});
  return {{"decision", d.label()},        {"normalized_score", d.normalized_score},
          {"class_score", d.class_score}, {"mask", mask_file},
          {"mask_area", d.mask_area},     {"regions", regions}};
}

void write_mask_png(const std::string& path, const cv::Mat& mask) {
  VCP_CHECK(mask.type() == CV_8UC1, "mask ", path, ": expected an 8-bit single-channel mask");
  VCP_CHECK(cv::imwrite(path, mask), "cannot write mask ", path);
}

}  // namespace vcpclip::app
