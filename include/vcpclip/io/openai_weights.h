#pragma once
// OpenAI's released CLIP weights (ViT-L-14-336px.pt, ViT-B-16.pt, ViT-L-14.pt, docs/design.md §2):
// TorchScript archives whose tensors are stored in fp16. They are read without the TorchScript
// interpreter: the zip records with io::ZipReader (every offset checked against the file), data.pkl
// (the module tree: TorchScript objects whose attributes are tensors and submodules) with
// io::pickle's reader, storages left unread until a tensor is asked for. Which attributes are
// weights comes from the archive's class definitions (code/…: __parameters__ and __buffers__, i.e.
// what Module.state_dict() holds). The archive entries input_resolution, context_length and
// vocab_size are not weights and are left out (OpenAI's build_model deletes them too).
// A torch.save'd state dict ({name: tensor}) in a zip is read the same way.
#include <memory>
#include <string>

#include "vcpclip/io/weights_reader.h"

namespace vcpclip::io {

/// Opens an OpenAI TorchScript archive for streaming reads. Unreadable or truncated zips, a
/// data.pkl that is neither a module nor a state dict, non-float weights → vcpclip::Error
/// "cannot read '<path>' as an OpenAI CLIP TorchScript archive: ...".
std::unique_ptr<WeightsReader> open_torchscript_weights(const std::string& path);

}  // namespace vcpclip::io
