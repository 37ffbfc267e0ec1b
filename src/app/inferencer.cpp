// vcpclip::Inferencer: the public single-image API (see include/vcpclip/vcpclip.h).
#include <ATen/ATen.h>

#include <mutex>
#include <opencv2/imgproc.hpp>

#include "vcpclip/app/config/run_config.h"
#include "vcpclip/app/decider.h"
#include "vcpclip/app/few_shot.h"
#include "vcpclip/data/transforms.h"
#include "vcpclip/eval/postprocess.h"
#include "vcpclip/model/method_registry.h"
#include "vcpclip/model/precision_probe.h"
#include "vcpclip/vcpclip.h"

namespace vcpclip {

struct Inferencer::Impl {
  model::ModelOptions model_opts;
  app::PostprocessOptions pp;
  c10::Device device{c10::kCPU};
  model::Method model{nullptr};
  model::PrecisionChoice precision;
  std::optional<app::Decider> decider;
  std::shared_ptr<model::ReferenceMemory> memory;  ///< few-shot references (null: zero-shot)
  app::FewShotOptions few_shot;                    ///< the fusion of the references' term (app/few_shot.h)
  std::string product;  ///< the class the method's prompts name ("" for methods that need none)
  std::mutex forward;   ///< serialises the forward passes (see the header's thread-safety note)
};

Inferencer::Inferencer(const InferencerOptions& o) : impl_(std::make_unique<Impl>()) {
  VCP_CHECK(!o.config.empty() || !o.config_text.empty(),
            "Inferencer: no run config given (InferencerOptions::config or config_text)");
  const app::RunConfig cfg = o.config.empty()
                                 ? app::parse_run_config(o.config_text, "InferencerOptions::config_text", o.overrides)
                                 : app::load_run_config(o.config, o.overrides);
  impl_->model_opts = cfg.require_model("predict");
  impl_->pp = cfg.postprocess;
  VCP_CHECK(!o.checkpoint.empty(), "predict: no checkpoint given (--checkpoint)");
  // Without references the calibration is checked first: it fails fast, before the model is built.
  const std::string reference = app::reference_source(o.reference, cfg.few_shot, "Inferencer",
                                                      " (InferencerOptions::reference or few_shot.folder)");
  if (!o.calibration.empty() && reference.empty())
    impl_->decider.emplace(o.calibration, o.class_name, impl_->model_opts, impl_->pp, o.checkpoint);
  if (o.calibration.empty()) app::product_class(impl_->model_opts, o.class_name, nullptr, "Inferencer");  // fails fast
  impl_->device = apply_runtime(cfg.runtime);
  impl_->model = model::build_method(impl_->model_opts, impl_->device);
  model::load_method_checkpoint(*impl_->model, o.checkpoint);
  impl_->model->eval();
  impl_->precision = model::set_model_precision(*impl_->model, cfg.runtime.precision);  // auto: the GEMM probe
  if (!reference.empty()) {
    const auto& fs = cfg.few_shot;
    impl_->few_shot = fs;
    impl_->memory = std::make_shared<model::ReferenceMemory>(
        app::reference_from_path(*impl_->model, reference, fs.k, fs.seed, app::few_shot_layers(fs, impl_->model_opts),
                                 app::run_identity(impl_->model_opts, o.checkpoint)));
    if (!o.calibration.empty())
      impl_->decider.emplace(o.calibration, o.class_name, impl_->model_opts, impl_->pp, o.checkpoint,
                             app::memory_settings(fs, *impl_->memory));
  }
  if (impl_->decider) impl_->decider->warn_if_other_precision(impl_->precision.used);
  impl_->product =
      app::product_class(impl_->model_opts, o.class_name, impl_->decider ? &*impl_->decider : nullptr, "Inferencer");
}

Inferencer::~Inferencer() = default;
Inferencer::Inferencer(Inferencer&&) noexcept = default;
Inferencer& Inferencer::operator=(Inferencer&&) noexcept = default;

int64_t Inferencer::image_size() const { return impl_->model->input_size(); }
bool Inferencer::calibrated() const { return impl_->decider.has_value(); }
int64_t Inferencer::reference_shots() const { return impl_->memory ? impl_->memory->shots() : 0; }
std::string Inferencer::precision() const { return to_string(impl_->precision.used); }
std::string Inferencer::precision_report() const { return impl_->precision.to_json().dump(); }

Prediction Inferencer::predict(const cv::Mat& image, ColorOrder order) const {
  return std::move(predict_batch({image}, order).front());
}

std::vector<Prediction> Inferencer::predict_batch(const std::vector<cv::Mat>& images, ColorOrder order) const {
  if (images.empty()) return {};
  const auto channels = order == ColorOrder::kBGR ? data::ChannelOrder::kBGR : data::ChannelOrder::kRGB;
  const int64_t s = impl_->model->input_size();
  std::vector<cv::Mat> rgbs;
  std::vector<at::Tensor> inputs;
  for (const auto& image : images) {
    VCP_CHECK(!image.empty(), "Inferencer::predict: the image is empty");
    VCP_CHECK(image.depth() == CV_8U || image.depth() == CV_16U,
              "Inferencer::predict: expected an 8-bit or 16-bit image, found OpenCV depth ", image.depth());
    rgbs.push_back(data::to_rgb(image, channels, "the image passed to Inferencer::predict"));
    inputs.push_back(data::preprocess_image(rgbs.back(), s));
  }
  const at::Tensor batch = at::stack(inputs).to(impl_->device);
  model::MethodMaps maps;
  {
    std::lock_guard<std::mutex> lock(impl_->forward);
    // one memory for every image of the batch
    const std::vector<const model::ReferenceMemory*> refs(impl_->memory ? images.size() : 0, impl_->memory.get());
    const model::ClassNames classes(impl_->product.empty() ? 0 : images.size(), impl_->product);
    maps = impl_->model->predict_maps(batch, nullptr, refs, classes);
  }
  auto out = eval::postprocess_maps(maps.raw, maps.post, impl_->pp, maps.image_score);
  app::fuse_references(out, maps, impl_->few_shot);
  const at::Tensor pixels = out.pixel.to(at::kCPU).contiguous();
  const at::Tensor scores = out.score.to(at::kCPU);
  std::vector<Prediction> result(images.size());
  const int side = static_cast<int>(s);
  for (size_t i = 0; i < images.size(); ++i) {
    const at::Tensor pixel = pixels[static_cast<int64_t>(i)].contiguous();
    Prediction& p = result[i];
    p.score = scores[static_cast<int64_t>(i)].item<double>();
    const cv::Mat grid(side, side, CV_32FC1, const_cast<float*>(pixel.data_ptr<float>()));
    if (grid.size() == rgbs[i].size())
      p.map = grid.clone();
    else
      cv::resize(grid, p.map, rgbs[i].size(), 0, 0, cv::INTER_LINEAR);
    if (impl_->decider) p.decision = impl_->decider->decide(pixel, p.score, rgbs[i].size());
  }
  return result;
}

}  // namespace vcpclip
