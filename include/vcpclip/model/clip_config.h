#pragma once
// CLIP backbone hyper-parameters, in the reference's model-config JSON format
// (configs/models/ViT-L-14-336.json):
//   {"embed_dim":768,"vision_cfg":{"image_size":336,"layers":24,"width":1024,"patch_size":14},
//    "text_cfg":{"context_length":77,"vocab_size":49408,"width":768,"heads":12,"layers":12}}
// plus the optional vcpclip key "activation" ("gelu" | "quick_gelu"). Unknown keys are errors.
#include <cstdint>
#include <string>

namespace vcpclip::model {

/// MLP activation of the residual blocks.
enum class Activation {
  kGelu,      ///< exact GELU (erf): the reference builds its blocks with it (VCP checkpoints)
  kQuickGelu  ///< OpenAI's x·sigmoid(1.702x) (plain CLIP)
};
/// "gelu" | "quick_gelu" → Activation; anything else is a vcpclip::Error
/// "<where>: expected gelu or quick_gelu, found '<name>'". The one place the name is validated.
Activation parse_activation(const std::string& name, const std::string& where);
/// "gelu" | "quick_gelu".
const char* to_string(Activation act);

struct ClipVisionConfig {
  /// NATIVE resolution of the checkpoint's positional embedding (the JSON's vision_cfg.image_size);
  /// the working size S the model runs at is ModelOptions::input_size.
  int64_t image_size = 336;
  int64_t layers = 24;      ///< residual blocks
  int64_t width = 1024;     ///< token width W (heads = W / 64)
  int64_t patch_size = 14;  ///< conv1 kernel = stride

  /// Attention heads: width / 64 (OpenAI's rule).
  int64_t heads() const { return width / 64; }
};

struct ClipTextConfig {
  int64_t context_length = 77;
  int64_t vocab_size = 49408;  ///< without the extra <|class|> row (the embedding has vocab_size + 1 rows)
  int64_t width = 768;
  int64_t heads = 12;
  int64_t layers = 12;
};

struct ClipConfig {
  std::string name = "ViT-L-14-336";  ///< for messages and `info`
  int64_t embed_dim = 768;            ///< joint embedding size E
  ClipVisionConfig vision;
  ClipTextConfig text;
  Activation activation = Activation::kGelu;  ///< MLP activation (JSON key "activation", default gelu)

  /// Reads the reference JSON format; the name defaults to the file stem.
  static ClipConfig from_json_file(const std::string& path);
  /// Parses JSON text; `origin` names it in error messages.
  static ClipConfig from_json_text(const std::string& text, const std::string& origin, const std::string& name);

  /// Checks that the sizes fit together (positive sizes, image_size % patch_size == 0,
  /// vision width % 64 == 0, text width % heads == 0); `origin` names the source.
  void validate(const std::string& origin) const;
  /// Vision heads: width / 64 (OpenAI's rule).
  int64_t vision_heads() const { return vision.heads(); }
  /// Patch grid of the native resolution (image_size / patch_size).
  int64_t native_grid() const { return vision.image_size / vision.patch_size; }
  /// The config in the reference JSON format (plus "activation"), pretty-printed.
  std::string to_json_text() const;
};

}  // namespace vcpclip::model
