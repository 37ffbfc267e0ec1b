// CLIP backbone config: the reference's model-config JSON (configs/models/*.json) plus "activation".
#include "vcpclip/model/clip_config.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "vcpclip/common/error.h"
#include "vcpclip/io/config_node.h"

namespace vcpclip::model {

Activation parse_activation(const std::string& name, const std::string& where) {
  if (name == "gelu") return Activation::kGelu;
  if (name == "quick_gelu") return Activation::kQuickGelu;
  fail(where, ": expected gelu or quick_gelu, found '", name, "'");
}

const char* to_string(Activation act) { return act == Activation::kGelu ? "gelu" : "quick_gelu"; }

ClipConfig ClipConfig::from_json_file(const std::string& path) {
  std::ifstream in(path);
  VCP_CHECK(in, "cannot open CLIP model config '", path,
            "': ", std::filesystem::exists(path) ? "not readable" : "no such file");
  std::stringstream ss;
  ss << in.rdbuf();
  return from_json_text(ss.str(), path, std::filesystem::path(path).stem().string());
}

ClipConfig ClipConfig::from_json_text(const std::string& text, const std::string& origin, const std::string& name) {
  auto root = io::ConfigNode::from_string(text, origin);
  ClipConfig cfg;
  cfg.name = name;
  cfg.embed_dim = root.require<int64_t>("embed_dim");
  cfg.activation =
      parse_activation(root.get<std::string>("activation", "gelu"), "CLIP config " + origin + ", key activation");
  {
    auto v = root.section("vision_cfg", /*required=*/true);
    cfg.vision.image_size = v.require<int64_t>("image_size");
    cfg.vision.layers = v.require<int64_t>("layers");
    cfg.vision.width = v.require<int64_t>("width");
    cfg.vision.patch_size = v.require<int64_t>("patch_size");
    v.finish();
  }
  {
    auto t = root.section("text_cfg", /*required=*/true);
    cfg.text.context_length = t.get<int64_t>("context_length", cfg.text.context_length);
    cfg.text.vocab_size = t.get<int64_t>("vocab_size", cfg.text.vocab_size);
    cfg.text.width = t.require<int64_t>("width");
    cfg.text.heads = t.require<int64_t>("heads");
    cfg.text.layers = t.require<int64_t>("layers");
    t.finish();
  }
  root.finish();
  cfg.validate(origin);
  return cfg;
}

void ClipConfig::validate(const std::string& origin) const {
  auto positive = [&](const char* key, int64_t v) {
    VCP_CHECK(v > 0, "CLIP config ", origin, ": ", key, " must be positive, found ", v);
  };
  positive("embed_dim", embed_dim);
  positive("vision_cfg.image_size", vision.image_size);
  positive("vision_cfg.layers", vision.layers);
  positive("vision_cfg.width", vision.width);
  positive("vision_cfg.patch_size", vision.patch_size);
  positive("text_cfg.context_length", text.context_length);
  positive("text_cfg.vocab_size", text.vocab_size);
  positive("text_cfg.width", text.width);
  positive("text_cfg.heads", text.heads);
  positive("text_cfg.layers", text.layers);
  VCP_CHECK(vision.image_size % vision.patch_size == 0, "CLIP config ", origin, ": vision_cfg.image_size ",
            vision.image_size, " is not a multiple of vision_cfg.patch_size ", vision.patch_size);
  VCP_CHECK(vision.width % 64 == 0, "CLIP config ", origin, ": vision_cfg.width ", vision.width,
            " must be a multiple of 64 (vision heads = width / 64)");
  VCP_CHECK(text.width % text.heads == 0, "CLIP config ", origin, ": text_cfg.width ", text.width,
            " is not divisible by text_cfg.heads ", text.heads);
}

std::string ClipConfig::to_json_text() const {
  nlohmann::ordered_json j;
  j["embed_dim"] = embed_dim;
  j["vision_cfg"] = {{"image_size", vision.image_size},
                     {"layers", vision.layers},
                     {"width", vision.width},
                     {"patch_size", vision.patch_size}};
  j["text_cfg"] = {{"context_length", text.context_length},
                   {"vocab_size", text.vocab_size},
                   {"width", text.width},
                   {"heads", text.heads},
                   {"layers", text.layers}};
  j["activation"] = to_string(activation);
  return j.dump(4);
}

}  // namespace vcpclip::model
