// `vcpclip info --weights F [--model-config J] [--activation A] [--json]`: loads a CLIP backbone
// strictly (OpenAI TorchScript archive or safetensors) and prints what it is: backbone name,
// native image size, layers, widths, heads, embedding size and parameter count.
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "command.h"
#include "vcpclip/model/clip_config.h"
#include "vcpclip/model/clip_model.h"
#include "vcpclip/model/clip_weights.h"

namespace {

struct InfoArgs {
  std::string weights, model_config, activation;
  bool json = false, profile = false;
};

std::string grouped(int64_t n) {
  std::string s = std::to_string(n), out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i && (s.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(s[i]);
  }
  return out;
}

}  // namespace

static vcpclip::cli::CommandRegistrar reg(
    "info", "Describe a CLIP weights file (backbone, sizes, parameter count)",
    [](CLI::App& sub) -> vcpclip::cli::Action {
      auto args = std::make_shared<InfoArgs>();
      sub.add_option("--weights", args->weights, "OpenAI CLIP .pt (TorchScript) or .safetensors file")->required();
      sub.add_option("--model-config", args->model_config,
                     "model config JSON (configs/models/*.json); default: inferred from the tensor shapes");
      sub.add_option("--activation", args->activation, "MLP activation: gelu (default) | quick_gelu");
      sub.add_flag("--json", args->json, "print one JSON object instead of text");
      sub.add_flag("--profile", args->profile, "print the loading time per stage (open, allocate, read + convert)");
      return [args]() {
        using namespace vcpclip::model;
        const Activation act =
            args->activation.empty() ? Activation::kGelu : parse_activation(args->activation, "--activation");
        std::optional<ClipConfig> cfg;
        if (!args->model_config.empty()) {
          cfg = ClipConfig::from_json_file(args->model_config);
          if (!args->activation.empty()) cfg->activation = act;
        }
        vcpclip::StageTimer timer(args->profile);
        const auto start = std::chrono::steady_clock::now();
        auto model = load_clip_model(args->weights, cfg, act, &timer);
        if (args->profile)
          std::fprintf(
              stderr, "loading profile:\n%s",
              timer.table(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()).c_str());
        const ClipConfig& c = model->config();
        const int64_t params = count_parameters(*model);
        if (args->json) {
          nlohmann::ordered_json j;
          j["weights"] = args->weights;
          j["backbone"] = c.name;
          j["image_size"] = c.vision.image_size;
          j["patch_size"] = c.vision.patch_size;
          j["embed_dim"] = c.embed_dim;
          j["vision"] = {{"layers", c.vision.layers}, {"width", c.vision.width}, {"heads", c.vision_heads()}};
          j["text"] = {{"layers", c.text.layers},
                       {"width", c.text.width},
                       {"heads", c.text.heads},
                       {"context_length", c.text.context_length},
                       {"vocab_size", c.text.vocab_size}};
          j["activation"] = to_string(c.activation);
          j["parameters"] = params;
          std::printf("%s\n", j.dump(2).c_str());
          return 0;
        }
        std::printf("weights       %s\n", args->weights.c_str());
        std::printf("backbone      %s\n", c.name.c_str());
        std::printf("image size    %lld native (patch %lld, grid %lld)\n", (long long)c.vision.image_size,
                    (long long)c.vision.patch_size, (long long)c.native_grid());
        std::printf("vision        %lld layers, width %lld, %lld heads\n", (long long)c.vision.layers,
                    (long long)c.vision.width, (long long)c.vision_heads());
        std::printf("text          %lld layers, width %lld, %lld heads, context %lld, vocab %lld (+1 <|class|>)\n",
                    (long long)c.text.layers, (long long)c.text.width, (long long)c.text.heads,
                    (long long)c.text.context_length, (long long)c.text.vocab_size);
        std::printf("embed dim     %lld\n", (long long)c.embed_dim);
        std::printf("activation    %s\n", to_string(c.activation));
        std::printf("parameters    %s\n", grouped(params).c_str());
        return 0;
      };
    });
