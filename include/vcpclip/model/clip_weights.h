#pragma once
// Loading CLIP backbone weights into a ClipModel (docs/design.md §2): OpenAI's TorchScript
// archives (fp16) or .safetensors, read tensor by tensor straight into the fp32 parameters
// (io::WeightsReader), so that peak memory stays near the fp32 model's size. OpenAI's token
// embedding lacks the <|class|> row: the loaded rows fill the first vocab_size rows and the last
// row is zero. Strict (model/strict_load.h): "CLIP weights '<file>' do not fit the model: ...".
#include <ATen/core/Tensor.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "vcpclip/common/stage_timer.h"
#include "vcpclip/io/weights_reader.h"
#include "vcpclip/model/clip_config.h"
#include "vcpclip/model/clip_model.h"

namespace vcpclip::model {

/// Infers the backbone config from OpenAI tensor names and shapes (as OpenAI's build_model does:
/// widths from conv1 / ln_final, grid from the positional embedding, layers by counting blocks,
/// text heads = width / 64) and names it after the matching OpenAI model. `path` names the file.
ClipConfig infer_clip_config(const std::vector<io::WeightEntry>& entries, const std::string& path);

/// Loads an opened weights file into `model` strictly.
void load_clip_weights(ClipModel& model, io::WeightsReader& file);
/// Same from tensors in memory (tests); `path` names them in messages.
void load_clip_weights(ClipModel& model, const std::map<std::string, at::Tensor>& tensors, const std::string& path);

/// Builds a ClipModel for a weights file (OpenAI TorchScript archive or .safetensors) and loads it
/// strictly. `config`: the model config to use (shapes must match the file); without it the config
/// is inferred from the tensor shapes and `activation` applies. The model is returned in eval mode
/// on the CPU, its parameters not requiring gradients. With a timer: stages "open weights file",
/// "allocate model", "read + convert tensors".
ClipModel load_clip_model(const std::string& weights_path, const std::optional<ClipConfig>& config = std::nullopt,
                          Activation activation = Activation::kGelu, StageTimer* timer = nullptr);

}  // namespace vcpclip::model
