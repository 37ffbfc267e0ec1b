#pragma once
// Loading the frozen CLIP backbone's weights.
//  - OpenAI's released TorchScript archives (ViT-L-14-336px.pt, ViT-B-16.pt, ViT-L-14.pt): read with
//    torch::jit::load, fp16 → fp32. The archive's extra entries input_resolution, context_length,
//    vocab_size are ignored; token_embedding gets the extra zero row for <|class|>.
//  - safetensors files with the same names.
// Strict: a missing, unexpected or mis-shaped tensor is a vcpclip::Error naming it and the file;
// a wrong or truncated file is a vcpclip::Error, never a crash.
#include <ATen/core/Tensor.h>

#include <map>
#include <string>

#include "vcpclip/model/clip_config.h"
#include "vcpclip/model/clip_model.h"

namespace vcpclip::io {

/// Reads all tensors of an OpenAI TorchScript CLIP archive or a .safetensors file (by content,
/// not extension), as float32 CPU tensors keyed by OpenAI's names.
std::map<std::string, at::Tensor> read_clip_tensors(const std::string& path);

/// Infers the backbone config from OpenAI tensor shapes (as OpenAI's build_model does).
model::ClipConfig infer_clip_config(const std::map<std::string, at::Tensor>& tensors, const std::string& path);

/// Copies `tensors` into `model` strictly (names and shapes), then moves nothing (caller moves to device).
void load_clip_weights(model::ClipModel& model, const std::map<std::string, at::Tensor>& tensors,
                       const std::string& path);

/// Writes tensors as a .safetensors file (F32), e.g. to convert an OpenAI archive once.
void write_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors);

}  // namespace vcpclip::io
