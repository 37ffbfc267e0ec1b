#pragma once
// The reference checkpoint layout (docs/design.md §7), read and written as a torch.save-compatible zip:
//   {"trainable_linearlayer": OrderedDict(fc.N.weight/bias),          <- state_dict() with _metadata
//    "New_Lan_Embed": OrderedDict(prompt_query, prompt_temp, prompt_linear1.fc.weight/bias),
//    "Zero_try": OrderedDict(prompt_temp_l1, q_proj_pre.*, k_proj_pre_1.*, v_proj_pre_1.*, proj_post_t.*),
//    "prompt_embeddings": Parameter, "deep_prompt_embeddings": Parameter, "prompt_proj.weight": Parameter,
//    "prompt_proj.bias": ..., "prompt_norm.weight": ..., "prompt_norm.bias": ..., "prompt_text_projection": ...}
// The released train_visa.pth / train_mvtec.pth load here, and files written here load in Python
// with torch.load. Bad files (not a zip, truncated, unexpected pickle content) are vcpclip::Error
// naming the file and what was found, never a crash.
#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace vcpclip::io {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

struct ReferenceCheckpoint {
  /// Module state_dicts in file order: {"trainable_linearlayer", {...}}, {"New_Lan_Embed", ...}, ...
  std::vector<std::pair<std::string, NamedTensors>> modules;
  /// Top-level tensors (nn.Parameter in the reference files), in file order.
  NamedTensors parameters;

  /// Flat view: "trainable_linearlayer.fc.0.weight", ..., "prompt_embeddings" → tensor.
  std::map<std::string, at::Tensor> flatten() const;
  /// Inverse of flatten(): names starting with "<module>." for a module in `module_names` go to that
  /// module's dict (order kept as given), everything else to `parameters`.
  static ReferenceCheckpoint unflatten(const NamedTensors& flat, const std::vector<std::string>& module_names);
};

/// Reads a torch.save zip in the reference layout (CPU, float32 kept as stored dtype→float32).
/// Integer tensors are errors, unless `keep_integer` (AnomalyCLIP's int32 token ids): then they
/// are kept in their stored dtype.
ReferenceCheckpoint read_reference_checkpoint(const std::string& path, bool keep_integer = false);

/// Writes atomically (temp file + rename) in the reference layout: modules as OrderedDicts with
/// _metadata, top-level tensors as nn.Parameter (torch._utils._rebuild_parameter).
void write_reference_checkpoint(const std::string& path, const ReferenceCheckpoint& ckpt);

}  // namespace vcpclip::io
