// Parsing and validation of the `model:` section (see model_options.h).
#include "vcpclip/model/model_options.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "vcpclip/common/error.h"
#include "vcpclip/model/method_registry.h"

namespace vcpclip::model {
namespace {

int count_occurrences(const std::string& text, const std::string& what) {
  int n = 0;
  for (std::size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + what.size())) ++n;
  return n;
}

void check_templates(const std::vector<std::string>& templates, const std::string& key, const std::string& where) {
  VCP_CHECK(!templates.empty(), "config key ", where, ": expected at least one template in '", key,
            "', found an empty list");
  for (const auto& t : templates) {
    int n = count_occurrences(t, kClassPlaceholder);
    VCP_CHECK(n == 1, "config key ", where, ": every template must contain ", kClassPlaceholder,
              " exactly once, found ", n, " in \"", t, "\"");
  }
}

std::string join(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (std::size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

}  // namespace

ModelOptions parse_model_options(io::ConfigNode& node) {
  ModelOptions o;
  o.backbone = node.get_path("backbone", o.backbone);
  o.weights = node.get_path("weights", o.weights);
  o.vocab = node.get_path("vocab", o.vocab);
  o.input_size = node.get<int64_t>("image_size", o.input_size);
  o.activation = parse_activation(node.get<std::string>("activation", to_string(o.activation)),
                                  "config key " + node.where("activation"));
  o.features_list = node.get<std::vector<int64_t>>("features_list", o.features_list);
  o.init_seed = static_cast<uint64_t>(node.get<int64_t>("init_seed", static_cast<int64_t>(o.init_seed)));
  parse_method_keys(node, o);  // model.method and the method's own keys
  node.finish();

  VCP_CHECK(!o.backbone.empty(), "missing config key ", node.where("backbone"),
            " (the CLIP model config JSON, e.g. configs/models/ViT-L-14-336.json)");
  VCP_CHECK(o.input_size > 0, "config key ", node.where("image_size"), ": expected a positive size, found ",
            o.input_size);
  VCP_CHECK(!o.features_list.empty(), "config key ", node.where("features_list"), ": expected at least one layer");
  for (std::size_t i = 0; i < o.features_list.size(); ++i) {
    VCP_CHECK(o.features_list[i] >= 1, "config key ", node.where("features_list"), ": layers are 1-based, found ",
              o.features_list[i]);
    VCP_CHECK(i == 0 || o.features_list[i] > o.features_list[i - 1], "config key ", node.where("features_list"),
              ": expected strictly increasing layers, found ", join(o.features_list));
  }
  return o;
}

const std::vector<std::string>& vcp_clip_keys() {
  static const std::vector<std::string> keys{"prompt_len", "deep_prompt_len",  "deep_prompt_layers",
                                             "use_global", "post_vcp",         "prompt_dropout",
                                             "post_heads", "templates_normal", "templates_abnormal"};
  return keys;
}

void parse_vcp_clip_keys(io::ConfigNode& node, ModelOptions& o) {
  o.prompt_len = node.get<int64_t>("prompt_len", o.prompt_len);
  o.deep_prompt_len = node.get<int64_t>("deep_prompt_len", o.deep_prompt_len);
  o.deep_prompt_layers = node.get<int64_t>("deep_prompt_layers", o.deep_prompt_layers);
  o.use_global = node.get<bool>("use_global", o.use_global);
  o.post_vcp = node.get<bool>("post_vcp", o.post_vcp);
  o.prompt_dropout = node.get<double>("prompt_dropout", o.prompt_dropout);
  o.post_heads = node.get<int64_t>("post_heads", o.post_heads);
  o.templates_normal = node.get<std::vector<std::string>>("templates_normal", o.templates_normal);
  o.templates_abnormal = node.get<std::vector<std::string>>("templates_abnormal", o.templates_abnormal);
  VCP_CHECK(o.prompt_len >= 1, "config key ", node.where("prompt_len"), ": expected ≥ 1, found ", o.prompt_len);
  VCP_CHECK(o.deep_prompt_len >= 1, "config key ", node.where("deep_prompt_len"), ": expected ≥ 1, found ",
            o.deep_prompt_len);
  VCP_CHECK(o.deep_prompt_layers >= -1, "config key ", node.where("deep_prompt_layers"),
            ": expected -1 (text layers - 1), 0 (shallow) or text layers - 1, found ", o.deep_prompt_layers);
  VCP_CHECK(o.prompt_dropout >= 0.0 && o.prompt_dropout < 1.0, "config key ", node.where("prompt_dropout"),
            ": expected a probability in [0, 1), found ", o.prompt_dropout);
  VCP_CHECK(o.post_heads >= 1, "config key ", node.where("post_heads"), ": expected ≥ 1, found ", o.post_heads);
  check_templates(o.templates_normal, "templates_normal", node.where("templates_normal"));
  check_templates(o.templates_abnormal, "templates_abnormal", node.where("templates_abnormal"));
}

int64_t resolved_deep_layers(const ModelOptions& opts, const ClipConfig& clip) {
  return opts.deep_prompt_layers < 0 ? clip.text.layers - 1 : opts.deep_prompt_layers;
}

void validate_model_options(const ModelOptions& o, const ClipConfig& clip, const std::string& origin) {
  const auto& v = clip.vision;
  for (int64_t l : o.features_list)
    VCP_CHECK(l >= 1 && l <= v.layers, origin, ": features_list entry ", l, " is outside the vision tower of ",
              clip.name, " (layers 1..", v.layers, ")");
  VCP_CHECK(o.input_size % v.patch_size == 0, origin, ": image_size (the input size S) ", o.input_size,
            " must be a multiple of the patch size ", v.patch_size, " of ", clip.name);
  VCP_CHECK(clip.text.width == clip.embed_dim, origin, ": Pre-VCP needs text width == embed_dim, but ", clip.name,
            " has text width ", clip.text.width, " and embed_dim ", clip.embed_dim);
  int64_t d = resolved_deep_layers(o, clip);
  VCP_CHECK(d == 0 || d == clip.text.layers - 1, origin, ": deep_prompt_layers must be -1, 0 or ", clip.text.layers - 1,
            " (text layers - 1) for ", clip.name, ", found ", o.deep_prompt_layers);
  VCP_CHECK(v.width % o.post_heads == 0, origin, ": post_heads ", o.post_heads, " must divide the vision width ",
            v.width, " of ", clip.name);
  VCP_CHECK(o.prompt_len + o.deep_prompt_len < clip.text.context_length, origin, ": prompt_len + deep_prompt_len (",
            o.prompt_len + o.deep_prompt_len, ") leaves no room in the ", clip.text.context_length, "-token context");
}

}  // namespace vcpclip::model
