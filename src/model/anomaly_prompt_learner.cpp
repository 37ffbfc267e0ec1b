// AnomalyCLIP's prompt learner (see anomaly_prompt_learner.h).
#include "vcpclip/model/anomaly_prompt_learner.h"

#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/linear.h>
#include <torch/ordered_dict.h>
#include <torch/utils.h>

#include "vcpclip/common/error.h"
#include "vcpclip/model/strict_load.h"

namespace vcpclip::model {

void AnomalyPromptConfig::validate(const std::string& origin) const {
  VCP_CHECK(text_width > 0 && context_length > 0, origin, ": text width and context length must be positive, found ",
            text_width, " and ", context_length);
  VCP_CHECK(n_ctx >= 1, origin, ": n_ctx (learned prompt rows) must be >= 1, found ", n_ctx);
  VCP_CHECK(t_n_ctx >= 1 && t_n_ctx <= n_ctx, origin,
            ": t_n_ctx (deep text prompt rows) must be in [1, n_ctx = ", n_ctx, "], found ", t_n_ctx);
  VCP_CHECK(depth >= 1, origin, ": depth (deep text prompts in text blocks 1..depth-1) must be >= 1, found ", depth);
  // SOT + n_ctx + "damaged object ." + EOT must fit.
  VCP_CHECK(n_ctx + 5 <= context_length, origin, ": n_ctx ", n_ctx, " leaves no room for the prompt words in ",
            context_length, " tokens");
  VCP_CHECK(projection_width > 0, origin, ": projection width must be positive, found ", projection_width);
}

AnomalyPromptLearnerImpl::AnomalyPromptLearnerImpl(const AnomalyPromptConfig& cfg, int64_t seed) : cfg_(cfg) {
  cfg_.validate("AnomalyCLIP prompt learner");
  if (seed >= 0) torch::manual_seed(static_cast<uint64_t>(seed));
  torch::NoGradGuard no_grad;
  const int64_t w = cfg_.text_width, l = cfg_.context_length;
  // Draws in the official constructor's order: ctx_pos, ctx_neg, the deep prompts, the projection.
  auto pos = at::empty({1, 1, cfg_.n_ctx, w}).normal_(0, 0.02);
  auto neg = at::empty({1, 1, cfg_.n_ctx, w}).normal_(0, 0.02);
  compound_prompts_text = register_module("compound_prompts_text", torch::nn::ParameterList());
  for (int64_t i = 0; i < cfg_.compound_count(); ++i) {
    auto p = at::empty({cfg_.t_n_ctx, w}).normal_(0, 0.02);
    p.set_requires_grad(true);  // ParameterList::append keeps the tensor's own flag (false under NoGradGuard)
    compound_prompts_text->append(p);
  }
  torch::nn::Linear single(w, cfg_.projection_width);
  compound_prompt_projections = register_module("compound_prompt_projections", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg_.compound_count(); ++i) {
    torch::nn::Linear copy(w, cfg_.projection_width);
    copy->weight.copy_(single->weight);
    copy->bias.copy_(single->bias);
    copy->weight.set_requires_grad(false);  // never used by the forward: kept, not trained
    copy->bias.set_requires_grad(false);
    compound_prompt_projections->push_back(copy);
  }
  ctx_pos = register_parameter("ctx_pos", pos);
  ctx_neg = register_parameter("ctx_neg", neg);
  token_prefix_pos = register_buffer("token_prefix_pos", at::zeros({1, 1, 1, w}));
  token_suffix_pos = register_buffer("token_suffix_pos", at::zeros({1, 1, l - 1 - cfg_.n_ctx, w}));
  token_prefix_neg = register_buffer("token_prefix_neg", at::zeros({1, 1, 1, w}));
  token_suffix_neg = register_buffer("token_suffix_neg", at::zeros({1, 1, l - 1 - cfg_.n_ctx, w}));
  tokenized_prompts_pos = register_buffer("tokenized_prompts_pos", at::zeros({1, 1, l}, at::kInt));
  tokenized_prompts_neg = register_buffer("tokenized_prompts_neg", at::zeros({1, 1, l}, at::kInt));
}

std::pair<std::string, std::string> AnomalyPromptLearnerImpl::prompt_texts() const {
  std::string xs;
  for (int64_t i = 0; i < cfg_.n_ctx; ++i) xs += i ? " X" : "X";
  return {xs + " object.", xs + " damaged object."};
}

void AnomalyPromptLearnerImpl::set_token_buffers(const at::Tensor& ids_pos, const at::Tensor& ids_neg,
                                                 const at::Tensor& token_embedding) {
  const int64_t l = cfg_.context_length, w = cfg_.text_width;
  VCP_CHECK(ids_pos.numel() == l && ids_neg.numel() == l, "AnomalyCLIP prompts: expected ", l,
            " token ids per prompt, found ", ids_pos.numel(), " and ", ids_neg.numel());
  VCP_CHECK(token_embedding.dim() == 2 && token_embedding.size(1) == w, "AnomalyCLIP prompts: token embedding [V, ", w,
            "] expected, found ", token_embedding.sizes());
  torch::NoGradGuard no_grad;
  auto fill = [&](const at::Tensor& ids, at::Tensor& prefix, at::Tensor& suffix, at::Tensor& tokenized) {
    auto ids64 = ids.reshape({l}).to(at::kLong).to(token_embedding.device());
    auto emb = at::embedding(token_embedding, ids64).to(prefix.device(), prefix.scalar_type());
    prefix.copy_(emb.slice(0, 0, 1).view(prefix.sizes()));
    suffix.copy_(emb.slice(0, 1 + cfg_.n_ctx).view(suffix.sizes()));
    tokenized.copy_(ids64.to(tokenized.device()).view(tokenized.sizes()));
  };
  fill(ids_pos, token_prefix_pos, token_suffix_pos, tokenized_prompts_pos);
  fill(ids_neg, token_prefix_neg, token_suffix_neg, tokenized_prompts_neg);
}

std::pair<at::Tensor, at::Tensor> AnomalyPromptLearnerImpl::prompts() const {
  const int64_t l = cfg_.context_length, w = cfg_.text_width;
  auto pos = at::cat({token_prefix_pos, ctx_pos, token_suffix_pos}, 2).reshape({-1, l, w});
  auto neg = at::cat({token_prefix_neg, ctx_neg, token_suffix_neg}, 2).reshape({-1, l, w});
  auto ids = at::cat({tokenized_prompts_pos.reshape({-1, l}), tokenized_prompts_neg.reshape({-1, l})}, 0);
  return {at::cat({pos, neg}, 0), ids.to(at::kLong)};
}

std::vector<at::Tensor> AnomalyPromptLearnerImpl::compound_prompts() const {
  std::vector<at::Tensor> out;
  for (const auto& p : compound_prompts_text->parameters()) out.push_back(p);
  return out;
}

std::vector<at::Tensor> AnomalyPromptLearnerImpl::trainable_parameters() const {
  std::vector<at::Tensor> out{ctx_pos, ctx_neg};
  for (const auto& p : compound_prompts()) out.push_back(p);
  return out;
}

std::vector<std::pair<std::string, at::Tensor>> AnomalyPromptLearnerImpl::state_tensors() const {
  std::vector<std::pair<std::string, at::Tensor>> out{{"ctx_pos", ctx_pos},
                                                      {"ctx_neg", ctx_neg},
                                                      {"token_prefix_pos", token_prefix_pos},
                                                      {"token_suffix_pos", token_suffix_pos},
                                                      {"token_prefix_neg", token_prefix_neg},
                                                      {"token_suffix_neg", token_suffix_neg},
                                                      {"tokenized_prompts_pos", tokenized_prompts_pos},
                                                      {"tokenized_prompts_neg", tokenized_prompts_neg}};
  for (const auto& kv : compound_prompts_text->named_parameters(false))
    out.emplace_back("compound_prompts_text." + kv.key(), kv.value());
  for (const auto& kv : compound_prompt_projections->named_parameters(true))
    out.emplace_back("compound_prompt_projections." + kv.key(), kv.value());
  return out;
}

void AnomalyPromptLearnerImpl::load_state(const std::map<std::string, at::Tensor>& tensors,
                                          const std::string& subject) {
  torch::OrderedDict<std::string, at::Tensor> dst;
  for (auto& [name, t] : state_tensors()) dst.insert(name, t);
  load_strict(dst, TensorSource::from_map(tensors), subject,
              msg("the AnomalyCLIP prompt learner (n_ctx ", cfg_.n_ctx, ", t_n_ctx ", cfg_.t_n_ctx, ", depth ",
                  cfg_.depth, ", text width ", cfg_.text_width, ")"));
}

}  // namespace vcpclip::model
