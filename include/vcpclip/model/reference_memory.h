#pragma once
// Few-shot reference memory in the APRIL-GAN style (docs/design.md §13).
//
//   auto mem = vcpclip::model::build_reference_memory(*model, refs, layers);  // refs [K, 3, S, S]
//   auto maps = model->predict_maps(images, nullptr, {&mem, &mem, ...});     // one memory per image
//   maps.few_shot                                                          // D [B, S, S]
//
// The memory of layer l holds the raw CLIP patch tokens (block outputs, class token dropped, no
// ln_post, no adapter) of the K reference images, L2-normalised: [K·G², W]. A test patch x scores
// 1 − max_m cos(x, m) against the memory of its layer (one matrix product per layer); the G×G map
// is upsampled bilinearly (align_corners true) to S×S; the few-shot map D is the sum over layers.
//
// The memory also records how far NORMAL patches are from it, per layer (its "normal level and
// scale", docs/design.md §13): with K ≥ 2 references each reference image is searched against the
// other K − 1 (leave-one-out); with K = 1 six shifted (a quarter patch) and rotated (±5°) views of the one reference
// are searched against it. The mean and standard deviation of those distances normalise the layer's distances: D̂ = mean
// over layers of (d_l − level_l) / scale_l, in "standard deviations of normal variation", computed beside D from the
// same search. How D or D̂ joins the zero-shot map and score is eval's post-processing (eval/postprocess.h).
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace vcpclip::model {

class MethodImpl;

/// What a memory was made with; a memory is refused for a model whose identity differs.
struct ReferenceIdentity {
  std::string backbone_sha256;      ///< SHA-256 of the backbone config JSON
  std::string weights_sha256;       ///< SHA-256 of the CLIP weights file ("" = random backbone)
  int64_t init_seed = 0;            ///< seed of a random backbone (recorded when weights_sha256 is "")
  std::string checkpoint_sha256;    ///< SHA-256 of the method's checkpoint ("" = untrained head)
  int64_t input_size = 0;           ///< S
  std::string method = "vcp_clip";  ///< model.method (files without it were made with vcp_clip)
};

struct ReferenceMemory {
  std::vector<int64_t> layers;       ///< 1-based vision blocks, one memory each
  std::vector<at::Tensor> features;  ///< per layer [K·G², W] float32 CPU/device, rows L2-normalised
  /// Per layer: mean and standard deviation of the distances of normal patches to the memory
  /// (leave-one-out for K ≥ 2, augmented views for K = 1); empty in a memory file of version 1.
  std::vector<double> normal_level;
  std::vector<double> normal_scale;
  /// The largest normalised distance D̂ (mean over layers of (d_l − level_l) / scale_l) among those
  /// normal patches: the edge of what the references call normal (0 when not computed).
  double normal_max = 0;
  std::vector<std::string> images;        ///< the reference images (file names), in memory order
  std::vector<std::string> image_sha256;  ///< SHA-256 of each reference image file
  ReferenceIdentity identity;

  int64_t shots() const { return static_cast<int64_t>(images.size()); }
  /// Whether the normal level and scale are known (the `normalized` fusion needs them).
  bool has_normal_stats() const { return !normal_level.empty(); }
  /// SHA-256 of the image hashes in order and the layers: which references, for calibration.json.
  std::string fingerprint() const;
  /// Bytes held by the feature tensors.
  int64_t bytes() const;
  /// The memory on another device (features copied).
  ReferenceMemory to(const at::Device& device) const;
};

/// Builds the memory from preprocessed reference images [K, 3, S, S] (the model's input size),
/// `batch` images per vision-tower pass. Only the vision tower runs (no head, no text tower).
/// Also computes the normal level and scale of every layer (normal_distances). The file lists
/// and the identity are left for the caller to fill.
ReferenceMemory build_reference_memory(MethodImpl& model, const at::Tensor& images, const std::vector<int64_t>& layers,
                                       int64_t batch = 8);

/// The K = 1 views: 6 views [6, 3, S, S] of one image [1, 3, S, S] (or [3, S, S]): shifted by
/// `patch` / 2 pixels left, right, up and down, and rotated by ±5° about the centre; bilinear
/// resampling, borders reflected. The memory build passes half a patch, so its views shift by a
/// quarter of a patch (1 px in the demo, 3.5 px at ViT-L-14 @ 518).
at::Tensor augmented_views(const at::Tensor& image, int64_t patch);

/// The normal distances of one layer ([N] float32) for its memory `features` [K·G², W] (rows
/// L2-normalised) of `k` references: with k ≥ 2, each reference's patches against the other
/// references' (1 − max cos); with k = 1, the patches of `view_tokens` (the layer's block output
/// [V, 1+G², W] for augmented_views) against the memory.
at::Tensor normal_distances(const at::Tensor& features, int64_t k, const at::Tensor& view_tokens = {});

/// D for a batch: `tokens[i]` the block output [B, 1+G², W] of memory.layers[i] (class token
/// first), `size` S. Returns [B, S, S] float32: Σ_l upsample(1 − max cos).
at::Tensor few_shot_map(const ReferenceMemory& memory, const std::vector<at::Tensor>& tokens, int64_t size);

/// D and the normalised D̂ from one search: D = Σ_l up(d_l), D̂ = (1/L) Σ_l (up(d_l) − level_l) /
/// scale_l (undefined when the memory has no normal statistics). Both [B, S, S] float32.
struct FewShotMaps {
  at::Tensor raw;         ///< D
  at::Tensor normalized;  ///< D̂
};
FewShotMaps few_shot_maps(const ReferenceMemory& memory, const std::vector<at::Tensor>& tokens, int64_t size);

/// Writes the memory as safetensors (tensors "layer_<l>", metadata: format, version 2, layers,
/// images, image SHA-256s, identity, normal level and scale), atomically.
void save_reference_memory(const ReferenceMemory& memory, const std::string& path);
/// Reads a memory written by save_reference_memory (version 1 files, written before the normal
/// statistics, load without them); errors name the file and what is wrong.
ReferenceMemory load_reference_memory(const std::string& path);

/// Refuses a memory made with another model: "reference memory F was made with another model:
/// <what> <a> in the memory, <b> in this run; build it again for this model".
void check_reference_identity(const ReferenceMemory& memory, const ReferenceIdentity& run, const std::string& origin);

}  // namespace vcpclip::model
