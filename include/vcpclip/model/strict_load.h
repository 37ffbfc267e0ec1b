#pragma once
// Strict tensor loading, the one implementation behind both CLIP weights (model/clip_weights.h)
// and VCP checkpoints (VcpHeadImpl::load_checkpoint). Every name is checked before anything is
// written: a missing, mis-shaped, unexpected or non-float tensor fails the whole load, with one
// message format:
//   "<subject> do not fit <target>: missing tensor 'a' (expected shape [32]); tensor 'b' has
//    shape [64, 16], expected [64, 32]; unexpected tensor 'c' of shape [3]; and 4 more"
// (missing first, then mis-shaped, unexpected, non-float; at most 8 listed). Then the tensors are
// read one at a time straight into the parameters, converting their dtype. An integer destination
// (a buffer of token ids) takes an integer tensor only ("tensor 'x' is Float, expected integer (Int)").
#include <ATen/core/Tensor.h>
#include <torch/ordered_dict.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "vcpclip/io/weights_reader.h"

namespace vcpclip::model {

/// Where a strict load reads from: the stored tensors (name, dtype, shape) and a reader that
/// fills a destination tensor of the stored shape.
struct TensorSource {
  std::vector<io::WeightEntry> entries;
  std::function<void(const std::string& name, at::Tensor dst)> read;

  /// Tensors in memory (checkpoints, tests).
  static TensorSource from_map(const std::map<std::string, at::Tensor>& tensors);
  /// A weights file read record by record (the file must outlive the source).
  static TensorSource from_file(io::WeightsReader& file);
};

/// For stored shapes that differ from the parameter's by design: returns the part of `param` that
/// a stored tensor of shape `stored` fills (a view; it must not write), or an undefined tensor
/// when the shapes are simply different.
using StoredView = std::function<at::Tensor(const std::string& name, at::IntArrayRef stored, at::Tensor& param)>;

/// Loads `source` into `params` strictly (see the file comment). `subject` names what is read
/// ("CLIP weights 'w.pt'"), `target` what it must fit ("the model").
void load_strict(torch::OrderedDict<std::string, at::Tensor>& params, const TensorSource& source,
                 const std::string& subject, const std::string& target, const StoredView& view = {});

}  // namespace vcpclip::model
