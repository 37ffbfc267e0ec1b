#pragma once
// Options of the model: the `model:` section of a run config (docs/design.md §3–§5, "Methods").
//
//   model:
//     method: vcp_clip                               # vcp_clip | april_gan | anomaly_clip (model/method_registry.h)
//     backbone: configs/models/ViT-L-14-336.json   # CLIP config JSON (reference format)
//     weights: weights/ViT-L-14-336px.pt             # OpenAI TorchScript archive or .safetensors
//     vocab: ""                                      # BPE vocab; "" = Tokenizer::find_vocab default
//     image_size: 518                                # S, the input size (ModelOptions::input_size)
//     activation: gelu                               # gelu (reference/VCP) | quick_gelu (plain CLIP)
//     features_list: [6, 12, 18, 24]                 # 1-based vision blocks
//     init_seed: 333                                 # seed of the head's (and a random backbone's) init
//   vcp_clip's own keys (another method's keys are errors naming both methods):
//     prompt_len: 2                                  # r, learned class tokens
//     deep_prompt_len: 1                             # n, deep text prompt rows
//     deep_prompt_layers: -1                         # D: -1 = text layers - 1 (reference), 0 = shallow
//     use_global: true                               # Pre-VCP uses the global image feature
//     post_vcp: true                                 # false = raw (Pre-VCP) branch only
//     prompt_dropout: 0.1
//     post_heads: 8
//     templates_normal: ["a photo of a good <|class|>"]
//     templates_abnormal: ["a photo of a damaged <|class|>"]
//
// Relative paths: as given when they exist relative to the working directory, else relative to
// the config file's directory (io::ConfigNode::get_path).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vcpclip/io/config_node.h"
#include "vcpclip/model/clip_config.h"

namespace vcpclip::model {

/// The placeholder word of the prompt templates (token id 49408).
inline constexpr const char* kClassPlaceholder = "<|class|>";

/// Base of a method's own options (a method with keys beyond ModelOptions' typed fields derives
/// from it and stores them in ModelOptions::method_options from its MethodEntry::parse).
struct MethodOptions {
  virtual ~MethodOptions() = default;
};

struct ModelOptions {
  std::string method = "vcp_clip";  ///< model.method (model/method_registry.h)
  /// The selected method's own options when it has keys beyond the typed fields below (vcp_clip's
  /// keys are the typed fields); nullptr otherwise.
  std::shared_ptr<const MethodOptions> method_options;
  std::string backbone;  ///< CLIP model config JSON path (required)
  std::string weights;   ///< OpenAI .pt or .safetensors; "" = random init (tests / tiny only; warns)
  std::string vocab;     ///< BPE vocab file; "" = Tokenizer::find_vocab("") search
  /// S, the size the model works at (config key `image_size`; a multiple of the patch size). Not
  /// the backbone's native resolution (ClipVisionConfig::image_size): position embeddings are resized.
  int64_t input_size = 518;
  Activation activation = Activation::kGelu;          ///< overrides the backbone JSON's activation
  std::vector<int64_t> features_list{6, 12, 18, 24};  ///< 1-based vision block indices
  uint64_t init_seed = 333;                           ///< seed for initialising the head
  // vcp_clip's own keys:
  int64_t prompt_len = 2;           ///< r
  int64_t deep_prompt_len = 1;      ///< n
  int64_t deep_prompt_layers = -1;  ///< D; -1 = text layers - 1, 0 = shallow
  bool use_global = true;           ///< Pre-VCP: class tokens = query + conv(global)
  bool post_vcp = true;             ///< false: only the raw branch (maps, loss)
  double prompt_dropout = 0.1;      ///< on projected deep prompts, training mode only
  int64_t post_heads = 8;           ///< Post-VCP attention heads
  std::vector<std::string> templates_normal{"a photo of a good <|class|>"};
  std::vector<std::string> templates_abnormal{"a photo of a damaged <|class|>"};
};

/// Reads the `model:` section (calls node.finish()): the shared keys, then model.method and that
/// method's own keys (model::parse_method_keys); checks what can be checked without the backbone
/// config (types, ranges, templates contain <|class|> exactly once).
ModelOptions parse_model_options(io::ConfigNode& node);

/// Checks the options against the backbone (features_list entries in 1..vision layers and
/// strictly increasing, input_size a multiple of patch_size, prompt_len ≥ 1, deep_prompt_layers in
/// {-1, 0, text layers - 1}, text width == embed_dim (Pre-VCP needs it), vision width divisible by
/// post_heads, ...). Throws vcpclip::Error naming the key. `origin` names the config in messages.
void validate_model_options(const ModelOptions& opts, const ClipConfig& clip,
                            const std::string& origin = "model options");

/// The effective D for a backbone (resolves -1 to text layers - 1).
int64_t resolved_deep_layers(const ModelOptions& opts, const ClipConfig& clip);

/// vcp_clip's own keys of the `model:` section (MethodEntry::keys of vcp_clip).
const std::vector<std::string>& vcp_clip_keys();
/// Reads vcp_clip's own keys into opts and checks their ranges (MethodEntry::parse of vcp_clip).
void parse_vcp_clip_keys(io::ConfigNode& node, ModelOptions& opts);

}  // namespace vcpclip::model
