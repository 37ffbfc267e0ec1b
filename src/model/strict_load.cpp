// Strict tensor loading shared by CLIP weights and VCP checkpoints (see strict_load.h).
#include "vcpclip/model/strict_load.h"

#include <ATen/ATen.h>
#include <torch/utils.h>

#include <algorithm>
#include <set>

#include "vcpclip/common/error.h"

namespace vcpclip::model {

TensorSource TensorSource::from_map(const std::map<std::string, at::Tensor>& tensors) {
  TensorSource s;
  for (const auto& [name, t] : tensors) s.entries.push_back(io::WeightEntry{name, t.scalar_type(), t.sizes().vec()});
  s.read = [&tensors](const std::string& name, at::Tensor dst) { dst.copy_(tensors.at(name)); };
  return s;
}

TensorSource TensorSource::from_file(io::WeightsReader& file) {
  TensorSource s;
  s.entries = file.entries();
  s.read = [&file](const std::string& name, at::Tensor dst) { file.read_into(name, dst); };
  return s;
}

void load_strict(torch::OrderedDict<std::string, at::Tensor>& params, const TensorSource& source,
                 const std::string& subject, const std::string& target, const StoredView& view) {
  torch::NoGradGuard no_grad;
  std::vector<std::string> missing, misshaped, unexpected, not_float;
  std::vector<std::pair<const io::WeightEntry*, at::Tensor>> plan;
  std::set<std::string> stored;
  for (const auto& e : source.entries) {
    stored.insert(e.name);
    at::Tensor* p = params.find(e.name);
    if (!p) {
      unexpected.push_back(msg("unexpected tensor '", e.name, "' of shape ", shape_text(e.shape)));
      continue;
    }
    // Float parameters take any floating dtype (converted); integer buffers (AnomalyCLIP's token
    // ids) take integer tensors only.
    const bool want_float = at::isFloatingType(p->scalar_type());
    if (at::isFloatingType(e.dtype) != want_float) {
      not_float.push_back(
          want_float ? msg("tensor '", e.name, "' is not floating point (", e.dtype, ")")
                     : msg("tensor '", e.name, "' is ", e.dtype, ", expected integer (", p->scalar_type(), ")"));
      continue;
    }
    at::Tensor dst = *p;
    if (dst.sizes() != at::IntArrayRef(e.shape) && view) dst = view(e.name, e.shape, *p);
    if (!dst.defined() || dst.sizes() != at::IntArrayRef(e.shape)) {
      misshaped.push_back(
          msg("tensor '", e.name, "' has shape ", shape_text(e.shape), ", expected ", shape_text(p->sizes())));
      continue;
    }
    plan.emplace_back(&e, dst);
  }
  for (const auto& item : params)
    if (!stored.count(item.key()))
      missing.push_back(
          msg("missing tensor '", item.key(), "' (expected shape ", shape_text(item.value().sizes()), ")"));
  std::vector<std::string> problems = missing;
  for (const auto* more : {&misshaped, &unexpected, &not_float})
    problems.insert(problems.end(), more->begin(), more->end());
  if (!problems.empty()) {
    std::string text;
    const size_t shown = std::min<size_t>(problems.size(), 8);
    for (size_t i = 0; i < shown; ++i) text += (i ? "; " : "") + problems[i];
    if (problems.size() > shown) text += msg("; and ", problems.size() - shown, " more");
    fail(subject, " do not fit ", target, ": ", text);
  }
  for (auto& [entry, dst] : plan) source.read(entry->name, dst);
}

}  // namespace vcpclip::model
