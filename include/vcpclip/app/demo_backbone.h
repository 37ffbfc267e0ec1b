#pragma once
// The demo's CLIP backbone, made in-project by a documented, seeded procedure (no download, no
// pre-training on anything but the auxiliary images; never the target set):
//
//   1. an OpenAI-style random initialisation of the backbone JSON (model.backbone), seed `seed`
//      (the same initialisation as a run without weights);
//   2. patch embedding (visual.conv1): random filters in a whitened patch space. Up to `patches`
//      patches of patch_size² × 3 normalised pixels are cut, on the model's patch grid at the
//      working size S (model.image_size), from the images of the training set (train.data, the
//      auxiliary set); with their covariance C = U diag(e) Uᵀ, conv1 = R · U diag((e + whiten_eps)^-½) Uᵀ,
//      R ~ N(0, 1 / (3·patch_size²)) [width × 3·patch_size²]. A random projection of raw pixels
//      is dominated by the mean colour; whitening gives edges, lines and spots equal weight;
//   3. a constant vector of norm `token_offset` (random direction) added to every row of
//      visual.positional_embedding. ln_pre divides each token by its own scale, which makes a
//      dark and a bright patch of the same pattern look alike; the constant is a reference
//      that keeps brightness and contrast visible after ln_pre;
//   4. everything else stays random (the transformer blocks, the text tower). Written as
//      safetensors with OpenAI's tensor names, so `model.weights` loads it like any CLIP.
//
// Config (demo.backbone / an ablation config's `backbone`), strict:
//   out: "${out_dir}/model/demo_backbone.safetensors"   # made only where model.weights is `out`
//   patches: 20000        # patches sampled for the covariance
//   whiten_eps: 0.1       # ZCA regulariser, in variance units of the normalised pixels
//   token_offset: 2.0     # norm of the constant added before ln_pre (0 = none)
//   seed: 333             # random initialisation, R, the offset direction, the patch sample
// A file is reused when <out>.json records the same recipe, backbone, working size and images
// (paths, sizes, modification times); otherwise it is made again.
#include <cstdint>
#include <string>

#include "vcpclip/data/datasets.h"
#include "vcpclip/io/config_node.h"
#include "vcpclip/model/model_options.h"

namespace vcpclip::app {

struct BackboneRecipe {
  std::string out;            ///< safetensors file to write
  int64_t patches = 20000;    ///< patches sampled for the covariance
  double whiten_eps = 0.1;    ///< ZCA regulariser
  double token_offset = 2.0;  ///< norm of the constant added to the positional embedding
  uint64_t seed = 333;        ///< every random choice of the procedure
};

/// Reads the mapping above (calls finish()). `out` is returned as written (callers substitute
/// ${out_dir}). Errors name the key.
BackboneRecipe parse_backbone_recipe(io::ConfigNode& node);

/// Makes recipe.out for `model` (backbone JSON, activation, image_size) from the images of
/// `images` unless an identical one exists. Returns true when it wrote the file. Errors: an
/// unreadable image (naming it), a dataset without images, an unwritable `out`.
bool ensure_backbone(const BackboneRecipe& recipe, const model::ModelOptions& model, const data::DataOptions& images);

}  // namespace vcpclip::app
