// configs/demo.yaml and configs/models/tiny.json compiled into the binary (see app/demo.h).
// Keep in sync with the files: tests/app/test_demo.cpp fails when they differ (copy each file
// verbatim between its R"vcpclip( ... )vcpclip" markers).
#include "vcpclip/app/demo.h"

namespace vcpclip::app {

const std::string& embedded_demo_config() {
  static const std::string text =
      R"vcpclip(# `vcpclip demo`: the whole VCP-CLIP protocol end to end without downloads (a few minutes on 2 CPU
# cores). This file is also compiled into the binary (src/app/demo_config.cpp; a test keeps the two
# identical), so `vcpclip demo` works from any directory; `--config` uses another file and
# `--set key=value` changes any key below, e.g. --set train.epochs=2.
#
#   1. writes a procedural VisA-layout AUXILIARY set and an MVTec-layout TARGET set whose product
#      classes never overlap (demo.synthetic; see `vcpclip synth`),
#   2. trains the VCP head on the auxiliary set (train.*),
#   3. evaluates the UNTRAINED head (the same seeded initialisation) and the trained one zero-shot
#      on the target classes (eval.*), exports anomaly-map PNGs, prints both metric tables.
#
# "${out_dir}" stands for demo.out_dir (or --out). The tiny backbone has RANDOM weights: the numbers
# show that the pipeline learns, not VCP-CLIP's accuracy. For the real protocol point model.backbone /
# model.weights at an OpenAI CLIP (configs/models/ViT-L-14-336.json, weights/ViT-L-14-336px.pt),
# train.data at VisA and eval.data at MVTec AD (see configs/train_visa.yaml, configs/eval_mvtec.yaml):
# a synthetic set is generated only when a data section's root is its `out` directory.
demo:
  out_dir: runs/demo
  untrained_baseline: true      # also evaluate the untrained head (baseline) on the same target set
  synthetic:                    # name: {data::SynthOptions}; generated only where a data root is `out`
    aux: {out: "${out_dir}/data/aux", layout: visa, set: auxiliary, classes: 4, images: 48, train_images: 0, size: 96, seed: 0}
    target: {out: "${out_dir}/data/target", layout: mvtec, set: target, classes: 4, images: 20, train_images: 0, size: 96, seed: 1}
runtime:
  device: cpu
  threads: 0
  seed: 333
  log_level: info
model:
  backbone: configs/models/tiny.json   # built in: written to ${out_dir}/model/ when not found here
  weights: ""                          # random backbone (warns)
  image_size: 64
  features_list: [2, 3, 4]
  prompt_len: 2
  deep_prompt_len: 1
  deep_prompt_layers: -1
  post_heads: 8
  init_seed: 333
postprocess:
  alpha: 0.2
  sigma: 4
  topk: 200
train:
  epochs: 8
  batch_size: 8
  lr: 5.0e-3              # the tiny random backbone needs much larger steps than the reference 4e-5
  lr_temp: 0.01
  save_every: 1
  out_dir: ${out_dir}/train
  log_every: 1
  data:
    layout: visa
    root: ${out_dir}/data/aux
    split: test
    workers: 2
eval:
  batch_size: 8
  out_dir: ${out_dir}/eval
  export_png: true
  png_limit: 4
  aupro: exact
  data:
    layout: mvtec
    root: ${out_dir}/data/target
    split: test
    workers: 2
)vcpclip";
  return text;
}

const std::string& embedded_tiny_backbone() {
  static const std::string text = R"vcpclip({
    "embed_dim": 32,
    "vision_cfg": {
        "image_size": 32,
        "layers": 4,
        "width": 64,
        "patch_size": 8
    },
    "text_cfg": {
        "context_length": 77,
        "vocab_size": 49408,
        "width": 32,
        "heads": 2,
        "layers": 3
    }
}
)vcpclip";
  return text;
}

}  // namespace vcpclip::app
