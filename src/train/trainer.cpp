// Optimizer, training step and validation, see include/vcpclip/train/trainer.h.
#include "vcpclip/train/trainer.h"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <cmath>
#include <map>

#include "vcpclip/common/error.h"
#include "vcpclip/data/loader.h"
#include "vcpclip/train/losses.h"

namespace vcpclip::train {

std::unique_ptr<torch::optim::Adam> make_optimizer(model::VcpHeadImpl& head, const TrainOptions& opts) {
  auto [main, temps] = head.parameter_groups();
  VCP_CHECK(temps.size() == 2, "make_optimizer: expected the two temperature parameters, found ", temps.size());
  auto base = torch::optim::AdamOptions(opts.lr).betas({opts.betas[0], opts.betas[1]}).eps(opts.eps);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  auto g1 = std::make_unique<torch::optim::AdamOptions>(base);
  auto g2 = std::make_unique<torch::optim::AdamOptions>(base);
  g2->lr(opts.lr_temp);
  groups.emplace_back(main, std::move(g1));
  groups.emplace_back(temps, std::move(g2));
  return std::make_unique<torch::optim::Adam>(groups, base);
}

std::unique_ptr<torch::optim::Adam> make_optimizer(model::MethodImpl& model, const TrainOptions& opts) {
  auto base = torch::optim::AdamOptions(opts.lr).betas({opts.betas[0], opts.betas[1]}).eps(opts.eps);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  for (auto& g : model.parameter_groups()) {
    auto o = std::make_unique<torch::optim::AdamOptions>(base);
    if (g.lr == model::ParamGroup::Lr::kLrTemp) o->lr(opts.lr_temp);
    groups.emplace_back(g.params, std::move(o));
  }
  VCP_CHECK(!groups.empty(), "make_optimizer: method ", model.method_name(), " has no trainable tensors");
  return std::make_unique<torch::optim::Adam>(groups, base);
}

NamedParams trainable_tensors(model::MethodImpl& model) {
  NamedParams out;
  for (auto& [name, t] : model.trainable_parameters()) out.emplace_back(name, t);
  return out;
}

NamedParams trainable_tensors(model::VcpHeadImpl& head) {
  NamedParams out;
  for (auto& kv : head.named_parameters(true)) out.emplace_back(kv.key(), kv.value());
  return out;
}

StepResult train_step(model::MethodImpl& model, torch::optim::Optimizer& optimizer, const at::Tensor& images,
                      const at::Tensor& masks, int64_t step, Distributed* dist, int64_t global_batch,
                      const model::ClassNames& classes) {
  const auto device = model.device();
  at::Tensor x = images.to(device, at::kFloat);
  // Reference: gt[gt > 0.5] = 1, gt[gt < 0.5] = 0 (0.5 itself stays and truncates to class 0).
  at::Tensor gt = masks.to(device, at::kFloat);
  gt = at::where(gt > 0.5, at::ones_like(gt), at::where(gt < 0.5, at::zeros_like(gt), gt));
  const int64_t local_b = x.size(0);

  auto out = model.forward_train(x, classes);
  auto terms = model.loss(out, gt);

  StepResult r;
  r.images = local_b;
  double weight = 1.0;  // scales this rank's loss so that the averaged gradient is the global one
  if (dist && dist->world_size() > 1) {
    // One small all-reduce: [b, b·loss, b·raw, b·post] summed over ranks.
    const double b = static_cast<double>(local_b);
    const auto v = dist->allreduce_sum(std::vector<double>{
        b, terms.total.item<double>() * b, terms.raw.item<double>() * b, terms.post.item<double>() * b});
    const double gb = global_batch > 0 ? static_cast<double>(global_batch) : v[0];
    r.loss = v[1] / v[0];
    r.loss_raw = v[2] / v[0];
    r.loss_post = v[3] / v[0];
    weight = static_cast<double>(local_b) * dist->world_size() / gb;
  } else {
    r.loss = terms.total.item<double>();
    r.loss_raw = terms.raw.item<double>();
    r.loss_post = terms.post.item<double>();
  }
  VCP_CHECK(std::isfinite(r.loss), "training diverged: loss is ", r.loss, " at step ", step, " (raw ", r.loss_raw,
            ", post ", r.loss_post,
            "); stopped without applying it, the last checkpoint "
            "is the last good state (try a lower train.lr)");

  optimizer.zero_grad();
  (weight == 1.0 ? terms.total : terms.total * weight).backward();
  if (dist && dist->world_size() > 1) {
    std::vector<at::Tensor> grads;
    for (auto& g : optimizer.param_groups())
      for (auto& p : g.params()) grads.push_back(p.grad());
    dist->allreduce_mean(grads);
  }
  optimizer.step();
  return r;
}

ValidationResult validate_pixel_ap(model::MethodImpl& model, const std::vector<data::SampleInfo>& samples,
                                   int64_t batch_size, int workers) {
  ValidationResult res;
  if (samples.empty()) return res;
  const bool was_training = model.is_training();
  model.eval();
  const auto device = model.device();
  // Class by class, so that only one class's maps are held at a time.
  std::vector<std::string> classes = data::class_names(samples);
  double sum_raw = 0, sum_post = 0;
  int n_raw = 0, n_post = 0;
  for (const auto& cls : classes) {
    std::vector<data::SampleInfo> subset;
    for (const auto& s : samples)
      if (s.cls_name == cls) subset.push_back(s);
    data::LoaderOptions lo;
    lo.image_size = model.input_size();
    lo.batch_size = batch_size;
    lo.workers = workers;
    data::DataLoader loader(subset, lo);
    loader.start_epoch(0);
    std::vector<double> raw, post;
    std::vector<uint8_t> labels;
    while (auto batch = loader.next()) {
      const model::ClassNames names(static_cast<size_t>(batch->size()), cls);
      auto maps = model.predict_maps(batch->images.to(device), nullptr, {}, names);
      auto m = (batch->masks > 0.5).to(at::kByte).contiguous();
      labels.insert(labels.end(), m.data_ptr<uint8_t>(), m.data_ptr<uint8_t>() + m.numel());
      auto r = maps.raw.to(at::kCPU, at::kDouble).contiguous();
      raw.insert(raw.end(), r.data_ptr<double>(), r.data_ptr<double>() + r.numel());
      if (maps.post.defined()) {
        auto p = maps.post.to(at::kCPU, at::kDouble).contiguous();
        post.insert(post.end(), p.data_ptr<double>(), p.data_ptr<double>() + p.numel());
      }
    }
    std::vector<std::string> warnings;
    auto mr = eval::binary_metrics(raw.data(), labels.data(), raw.size(), 1e-8, "validation class '" + cls + "' (raw)",
                                   &warnings);
    if (mr.ap) {
      res.ap_raw.emplace_back(cls, *mr.ap);
      sum_raw += *mr.ap;
      ++n_raw;
    }
    if (!post.empty()) {
      auto mp = eval::binary_metrics(post.data(), labels.data(), post.size(), 1e-8,
                                     "validation class '" + cls + "' (post)", &warnings);
      if (mp.ap) {
        res.ap_post.emplace_back(cls, *mp.ap);
        sum_post += *mp.ap;
        ++n_post;
      }
    }
    for (const auto& w : warnings) spdlog::warn("{}", w);
  }
  if (n_raw) res.mean_ap_raw = sum_raw / n_raw;
  if (n_post) res.mean_ap_post = sum_post / n_post;
  model.train(was_training);
  return res;
}

}  // namespace vcpclip::train
