// Text encoding with visual context: template splicing, deep prompts, batched text pass (docs/design.md §4).
#include "vcpclip/model/text_prompts.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "clip_internal.h"
#include "vcpclip/common/error.h"

namespace vcpclip::model {
namespace {

constexpr int64_t kClassId = 49408;
constexpr int64_t kEotId = 49407;

}  // namespace

TokenizedTemplates templates_from_ids(const at::Tensor& ids_in, int64_t num_normal, int64_t prompt_len,
                                      int64_t deep_prompt_len) {
  VCP_CHECK(ids_in.dim() == 2, "prompt templates: expected token ids [T, L], found ", ids_in.sizes());
  TokenizedTemplates out;
  out.ids = ids_in.to(at::kCPU, at::kLong).contiguous();
  const int64_t t = out.ids.size(0), len = out.ids.size(1);
  VCP_CHECK(num_normal >= 1 && num_normal < t,
            "prompt templates: need at least one normal and one anomalous template, found ", num_normal, " normal of ",
            t);
  out.num_normal = num_normal;
  out.num_abnormal = t - num_normal;
  auto acc = out.ids.accessor<int64_t, 2>();
  for (int64_t i = 0; i < t; ++i) {
    int64_t p = -1, e = -1, n_class = 0;
    for (int64_t j = 0; j < len; ++j) {
      if (acc[i][j] == kClassId) {
        ++n_class;
        if (p < 0) p = j;
      }
      if (acc[i][j] == kEotId && e < 0) e = j;
    }
    const char* kind = i < num_normal ? "normal" : "anomalous";
    int64_t idx = i < num_normal ? i : i - num_normal;
    VCP_CHECK(n_class == 1, "prompt template ", idx, " (", kind, "): expected the <|class|> token (id ", kClassId,
              ") exactly once, found ", n_class);
    VCP_CHECK(e > p, "prompt template ", idx, " (", kind, "): no <|endoftext|> token after <|class|>");
    // After the splice the EOT sits at e + r - 1; the deep prompts push the last n rows out.
    VCP_CHECK(e + prompt_len - 1 < len - deep_prompt_len, "prompt template ", idx, " (", kind, ") is too long: ", e + 1,
              " tokens + ", prompt_len - 1, " extra class tokens + ", deep_prompt_len,
              " prompt rows exceed the context length ", len);
    out.class_pos.push_back(p);
    out.eot_pos.push_back(e);
  }
  return out;
}

TokenizedTemplates tokenize_templates(const TokenizeFn& tokenize, const std::vector<std::string>& normal,
                                      const std::vector<std::string>& abnormal, int64_t prompt_len,
                                      int64_t deep_prompt_len) {
  std::vector<std::string> all(normal);
  all.insert(all.end(), abnormal.begin(), abnormal.end());
  return templates_from_ids(tokenize(all), static_cast<int64_t>(normal.size()), prompt_len, deep_prompt_len);
}

at::Tensor splice_class_tokens(ClipModelImpl& clip, const TokenizedTemplates& tpl, const at::Tensor& class_tokens) {
  const int64_t b = class_tokens.size(0), r = class_tokens.size(1), w = class_tokens.size(2);
  const int64_t t = tpl.size();
  auto ids = tpl.ids.to(class_tokens.device());
  at::Tensor emb;
  {
    at::NoGradGuard no_grad;       // frozen token embedding
    emb = clip.embed_tokens(ids);  // [T, L, W]
  }
  const int64_t len = emb.size(1);
  std::vector<at::Tensor> rows;
  rows.reserve(t);
  for (int64_t i = 0; i < t; ++i) {
    const int64_t p = tpl.class_pos[i];
    auto prefix = emb[i].slice(0, 0, p).unsqueeze(0).expand({b, p, w});
    auto suffix_len = len - r + 1 - (p + 1);
    auto suffix = emb[i].slice(0, p + 1, len - r + 1).unsqueeze(0).expand({b, suffix_len, w});
    rows.push_back(at::cat({prefix, class_tokens.to(emb.dtype()), suffix}, 1));  // [B, L, W]
  }
  auto x = at::stack(rows, 1).reshape({b * t, len, w});  // image-major
  return x + clip.text_positional_embedding().to(x.dtype());
}

at::Tensor encode_text_with_context(ClipModelImpl& clip, const TokenizedTemplates& tpl, const at::Tensor& class_tokens,
                                    const DeepPrompts& dp) {
  const int64_t b = class_tokens.size(0), r = class_tokens.size(1);
  const int64_t t = tpl.size();
  auto x = splice_class_tokens(clip, tpl, class_tokens);  // [N, 77, W], N = B*T
  // Under the causal mask no row depends on later ones: the rows after the last EOT cannot change
  // any EOT feature, so the tower runs on the first max(e + r - 1) + 1 rows only (77 → ~12 for the
  // default prompts; exact, the prompt rows inserted below keep their places).
  const int64_t last_eot = *std::max_element(tpl.eot_pos.begin(), tpl.eot_pos.end()) + r - 1;
  x = x.slice(1, 0, last_eot + 1);
  const int64_t n_seq = x.size(0), len = x.size(1), w = x.size(2);
  const int64_t n = dp.layers > 0 ? dp.shallow.size(1) : 0;

  torch::nn::Linear proj = dp.proj;  // non-const holders (forward is non-const)
  torch::nn::LayerNorm norm = dp.norm;
  auto projected = [&](const at::Tensor& prompt /* [n, W] */) {
    auto p = proj->forward(prompt).unsqueeze(0).expand({n_seq, n, w});
    // Dropout after the expand: an independent mask per sequence, as in the reference.
    return dp.training && dp.dropout > 0 ? at::dropout(p, dp.dropout, true) : p;
  };
  auto projected_as = [&](const at::Tensor& prompt, const at::Tensor& like) {
    return projected(prompt).to(like.scalar_type());  // the blocks may run in bf16/fp16
  };

  at::Tensor h;
  if (dp.layers > 0) {
    x = at::cat({x.slice(1, 0, 1), projected_as(dp.shallow[0], x), x.slice(1, 1, len)}, 1);
    h = clip.run_text_transformer(x, [&](int64_t i, at::Tensor cur) -> at::Tensor {
      if (i < 1 || i > dp.layers) return cur;
      return at::cat({cur.slice(1, 0, 1), projected_as(dp.deep[i - 1], cur), cur.slice(1, 1 + n)}, 1);
    });
    h = at::cat({h.slice(1, 0, 1), h.slice(1, 1 + n)}, 1);  // drop the prompt rows
    h = norm->forward(h);
  } else {
    h = clip.run_text_transformer(x);
  }
  h = clip.ln_final_forward(h);

  std::vector<int64_t> rows(n_seq);
  for (int64_t i = 0; i < n_seq; ++i) rows[i] = tpl.eot_pos[i % t] + r - 1;
  auto idx = at::tensor(rows, at::TensorOptions().dtype(at::kLong)).to(h.device());
  auto eot = h.gather(1, idx.view({n_seq, 1, 1}).expand({n_seq, 1, h.size(2)})).squeeze(1);    // [N, W]
  auto feats = l2_normalise(at::matmul(eot, clip.text_projection_weight())).view({b, t, -1});  // [B, T, E]
  auto normal = l2_normalise(feats.slice(1, 0, tpl.num_normal).mean(1));
  auto abnormal = l2_normalise(feats.slice(1, tpl.num_normal).mean(1));
  return at::stack({normal, abnormal}, 1);  // [B, 2, E]
}

}  // namespace vcpclip::model
