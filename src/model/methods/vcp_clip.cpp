// The method `vcp_clip` (model/method_registry.h): VCP-CLIP's registry entry, builder and checkpoint
// helpers. The model itself is VcpClipImpl (model/vcp_clip.h, src/model/vcp_clip.cpp).
#include "vcpclip/model/vcp_clip.h"

#include <algorithm>

#include "vcpclip/common/error.h"
#include "vcpclip/io/checkpoint.h"
#include "vcpclip/model/method_registry.h"
#include "vcpclip/model/tokenizer.h"

namespace vcpclip::model {
namespace {

Method build(ClipModel clip, const ModelOptions& opts, const Tokenizer& tokenizer) {
  const ClipConfig& cfg = clip->config();
  const int64_t deep_len = resolved_deep_layers(opts, cfg) > 0 ? opts.deep_prompt_len : 0;
  auto templates = tokenize_templates([&](const std::vector<std::string>& t) { return tokenizer.tokenize(t); },
                                      opts.templates_normal, opts.templates_abnormal, opts.prompt_len, deep_len);
  const int64_t max_id = templates.ids.max().item<int64_t>();
  VCP_CHECK(max_id <= cfg.text.vocab_size, "backbone ", opts.backbone, ": the prompt templates use token id ", max_id,
            " but the text vocabulary has only ", cfg.text.vocab_size,
            " ids (+1 for <|class|>); VCP-CLIP needs the full CLIP vocabulary (vocab_size 49408)");
  VCP_CHECK(cfg.text.vocab_size == Tokenizer::kClass, "backbone ", opts.backbone, ": vocab_size ", cfg.text.vocab_size,
            " does not match the CLIP tokenizer (49408; <|class|> is id 49408)");
  return VcpClip(std::move(clip), opts, std::move(templates));  // validates opts against the backbone
}

/// VCP-CLIP's layout: its head modules beside trainable_linearlayer.
bool recognises(const io::ReferenceCheckpoint& ckpt) {
  return std::any_of(ckpt.modules.begin(), ckpt.modules.end(),
                     [](const auto& m) { return m.first == "New_Lan_Embed" || m.first == "Zero_try"; });
}

}  // namespace

void register_method_vcp_clip(MethodRegistry& registry) {
  MethodEntry e;
  e.name = "vcp_clip";
  e.info = vcp_clip_info();
  e.keys = vcp_clip_keys();
  e.parse = parse_vcp_clip_keys;
  e.build = build;
  e.recognises = recognises;
  registry.add(std::move(e));
}

VcpClip build_vcp_clip(const ModelOptions& opts, c10::Device device) {
  VCP_CHECK(opts.method == "vcp_clip", "build_vcp_clip: model.method is ", opts.method,
            ", not vcp_clip (use model::build_method)");
  Method m = build_method(opts, device);
  return VcpClip(std::dynamic_pointer_cast<VcpClipImpl>(m.ptr()));
}

void load_vcp_checkpoint(VcpClipImpl& model, const std::string& path) { load_method_checkpoint(model, path); }

void save_vcp_checkpoint(const VcpClipImpl& model, const std::string& path) {
  io::write_reference_checkpoint(path, model.head->to_checkpoint());
}

}  // namespace vcpclip::model
