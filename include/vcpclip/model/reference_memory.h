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
// How D joins the zero-shot map and score is eval's post-processing (eval/postprocess.h).
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
  std::vector<int64_t> layers;            ///< 1-based vision blocks, one memory each
  std::vector<at::Tensor> features;       ///< per layer [K·G², W] float32 CPU/device, rows L2-normalised
  std::vector<std::string> images;        ///< the reference images (file names), in memory order
  std::vector<std::string> image_sha256;  ///< SHA-256 of each reference image file
  ReferenceIdentity identity;

  int64_t shots() const { return static_cast<int64_t>(images.size()); }
  /// SHA-256 of the image hashes in order and the layers: which references, for calibration.json.
  std::string fingerprint() const;
  /// Bytes held by the feature tensors.
  int64_t bytes() const;
  /// The memory on another device (features copied).
  ReferenceMemory to(const at::Device& device) const;
};

/// Builds the memory from preprocessed reference images [K, 3, S, S] (the model's input size),
/// `batch` images per vision-tower pass. Only the vision tower runs (no head, no text tower).
/// The file lists and the identity are left for the caller to fill.
ReferenceMemory build_reference_memory(MethodImpl& model, const at::Tensor& images, const std::vector<int64_t>& layers,
                                       int64_t batch = 8);

/// D for a batch: `tokens[i]` the block output [B, 1+G², W] of memory.layers[i] (class token
/// first), `size` S. Returns [B, S, S] float32: Σ_l upsample(1 − max cos).
at::Tensor few_shot_map(const ReferenceMemory& memory, const std::vector<at::Tensor>& tokens, int64_t size);

/// Writes the memory as safetensors (tensors "layer_<l>", metadata: format, version, layers,
/// images, image SHA-256s, identity), atomically.
void save_reference_memory(const ReferenceMemory& memory, const std::string& path);
/// Reads a memory written by save_reference_memory; errors name the file and what is wrong.
ReferenceMemory load_reference_memory(const std::string& path);

/// Refuses a memory made with another model: "reference memory F was made with another model:
/// <what> <a> in the memory, <b> in this run; build it again for this model".
void check_reference_identity(const ReferenceMemory& memory, const ReferenceIdentity& run, const std::string& origin);

}  // namespace vcpclip::model
