// OpenAI CLIP weights: TorchScript archives and safetensors → float32 tensors by OpenAI name;
// config inference from shapes; strict loading into ClipModel (DESIGN §2).
#include "vcpclip/io/openai_weights.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/jit/serialization/import.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "vcpclip/common/error.h"
#include "vcpclip/io/safetensors.h"

namespace vcpclip::io {

namespace {

/// Archive entries that are not weights (OpenAI's build_model deletes them too).
bool ignored_key(const std::string& k) { return k == "input_resolution" || k == "context_length" || k == "vocab_size"; }

std::string shape_text(at::IntArrayRef s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

std::string first_line(const std::string& s) {
  auto p = s.find('\n');
  return p == std::string::npos ? s : s.substr(0, p);
}

std::map<std::string, at::Tensor> read_torchscript(const std::string& path) {
  torch::jit::Module m;
  try {
    m = torch::jit::load(path, c10::Device(c10::kCPU));
  } catch (const c10::Error& e) {
    fail("cannot read '", path, "' as an OpenAI CLIP TorchScript archive: ", first_line(e.what_without_backtrace()),
         " (a truncated download, or a torch.save state dict rather than OpenAI's released .pt?)");
  } catch (const std::exception& e) {
    fail("cannot read '", path, "' as an OpenAI CLIP TorchScript archive: ", first_line(e.what()));
  }
  std::map<std::string, at::Tensor> out;
  auto add = [&](const std::string& name, const at::Tensor& t) {
    if (ignored_key(name)) return;
    VCP_CHECK(t.is_floating_point(), "'", path, "': tensor '", name, "' has non-float dtype ", t.scalar_type());
    out[name] = t.detach().to(at::kCPU, at::kFloat).contiguous();
  };
  try {
    for (const auto& p : m.named_parameters(/*recurse=*/true)) add(p.name, p.value);
    for (const auto& b : m.named_buffers(/*recurse=*/true)) add(b.name, b.value);
  } catch (const c10::Error& e) {
    fail("cannot read the tensors of '", path, "': ", first_line(e.what_without_backtrace()));
  }
  VCP_CHECK(!out.empty(), "'", path, "' is a TorchScript archive without any tensors");
  return out;
}

const at::Tensor& need(const std::map<std::string, at::Tensor>& t, const std::string& key, const std::string& path,
                       int64_t dims) {
  auto it = t.find(key);
  VCP_CHECK(it != t.end(), "cannot infer the CLIP config of '", path, "': tensor '", key,
            "' is missing (only OpenAI ViT CLIP checkpoints are supported)");
  VCP_CHECK(it->second.dim() == dims, "cannot infer the CLIP config of '", path, "': tensor '", key, "' has shape ",
            shape_text(it->second.sizes()), ", expected ", dims, " dimensions");
  return it->second;
}

/// Number of distinct block indices N among keys "<prefix>N.<suffix>".
int64_t count_blocks(const std::map<std::string, at::Tensor>& t, const std::string& prefix) {
  std::set<std::string> idx;
  for (const auto& [k, v] : t) {
    if (k.compare(0, prefix.size(), prefix) != 0) continue;
    auto rest = k.substr(prefix.size());
    idx.insert(rest.substr(0, rest.find('.')));
  }
  return static_cast<int64_t>(idx.size());
}

}  // namespace

std::map<std::string, at::Tensor> read_clip_tensors(const std::string& path) {
  std::error_code ec;
  VCP_CHECK(std::filesystem::exists(path, ec), "CLIP weights file '", path, "' does not exist");
  VCP_CHECK(std::filesystem::is_regular_file(path, ec), "CLIP weights path '", path, "' is not a file");
  std::ifstream in(path, std::ios::binary);
  VCP_CHECK(in, "cannot open CLIP weights file '", path, "'");
  char magic[4] = {0, 0, 0, 0};
  in.read(magic, 4);
  const bool zip = in.gcount() == 4 && std::memcmp(magic, "PK\x03\x04", 4) == 0;
  in.close();
  if (zip) return read_torchscript(path);
  if (is_safetensors_file(path)) return read_safetensors(path);
  fail("'", path, "' is neither an OpenAI CLIP TorchScript archive (.pt, a zip file) nor a safetensors file");
}

model::ClipConfig infer_clip_config(const std::map<std::string, at::Tensor>& t, const std::string& path) {
  model::ClipConfig cfg;
  const auto& conv = need(t, "visual.conv1.weight", path, 4);
  const auto& vpos = need(t, "visual.positional_embedding", path, 2);
  const auto& proj = need(t, "visual.proj", path, 2);
  const auto& tproj = need(t, "text_projection", path, 2);
  const auto& tpos = need(t, "positional_embedding", path, 2);
  const auto& tok = need(t, "token_embedding.weight", path, 2);
  const auto& lnf = need(t, "ln_final.weight", path, 1);
  cfg.vision.width = conv.size(0);
  cfg.vision.patch_size = conv.size(3);
  const int64_t rows = vpos.size(0) - 1;
  const auto grid = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(rows))));
  VCP_CHECK(grid * grid == rows, "cannot infer the CLIP config of '", path, "': visual.positional_embedding has ",
            vpos.size(0), " rows, expected a square patch grid plus one");
  cfg.vision.image_size = grid * cfg.vision.patch_size;
  cfg.vision.layers = count_blocks(t, "visual.transformer.resblocks.");
  cfg.embed_dim = tproj.size(1);
  VCP_CHECK(proj.size(1) == cfg.embed_dim, "cannot infer the CLIP config of '", path, "': visual.proj is ",
            shape_text(proj.sizes()), " but text_projection is ", shape_text(tproj.sizes()));
  cfg.text.context_length = tpos.size(0);
  cfg.text.vocab_size = tok.size(0);
  cfg.text.width = lnf.size(0);
  VCP_CHECK(cfg.text.width % 64 == 0, "cannot infer the text heads of '", path, "': text width ", cfg.text.width,
            " is not a multiple of 64 (OpenAI's heads = width / 64); give the model config explicitly");
  cfg.text.heads = cfg.text.width / 64;
  cfg.text.layers = count_blocks(t, "transformer.resblocks.");

  struct Known {
    const char* name;
    int64_t embed, res, vlayers, vwidth, patch, twidth, tlayers;
  };
  static const Known known[] = {{"ViT-B-16", 512, 224, 12, 768, 16, 512, 12},
                                {"ViT-B-32", 512, 224, 12, 768, 32, 512, 12},
                                {"ViT-L-14", 768, 224, 24, 1024, 14, 768, 12},
                                {"ViT-L-14-336", 768, 336, 24, 1024, 14, 768, 12}};
  cfg.name = "ViT-W" + std::to_string(cfg.vision.width) + "-P" + std::to_string(cfg.vision.patch_size) + "-" +
             std::to_string(cfg.vision.image_size);
  for (const auto& k : known)
    if (k.embed == cfg.embed_dim && k.res == cfg.vision.image_size && k.vlayers == cfg.vision.layers &&
        k.vwidth == cfg.vision.width && k.patch == cfg.vision.patch_size && k.twidth == cfg.text.width &&
        k.tlayers == cfg.text.layers)
      cfg.name = k.name;
  // (ClipConfig::validate lives in the model library; ClipModel's constructor runs it.)
  return cfg;
}

void load_clip_weights(model::ClipModel& model, const std::map<std::string, at::Tensor>& tensors,
                       const std::string& path) {
  auto params = model->named_parameters(/*recurse=*/true);
  std::vector<std::string> missing, misshaped, unexpected;
  std::map<std::string, at::Tensor> ready;
  for (const auto& [name, t] : tensors) {
    if (ignored_key(name)) continue;
    const at::Tensor* p = params.find(name);
    if (!p) {
      unexpected.push_back(msg("unexpected tensor '", name, "' of shape ", shape_text(t.sizes())));
      continue;
    }
    at::Tensor v = t;
    // OpenAI's token embedding lacks the <|class|> row: append it as zeros.
    if (name == "token_embedding.weight" && v.dim() == 2 && p->dim() == 2 && v.size(0) + 1 == p->size(0) &&
        v.size(1) == p->size(1))
      v = at::cat({v, at::zeros({1, v.size(1)}, v.options())}, 0);
    if (v.sizes() != p->sizes()) {
      misshaped.push_back(
          msg("tensor '", name, "' has shape ", shape_text(t.sizes()), ", expected ", shape_text(p->sizes())));
      continue;
    }
    ready[name] = v;
  }
  for (const auto& item : params)
    if (!tensors.count(item.key()))
      missing.push_back(
          msg("missing tensor '", item.key(), "' (expected shape ", shape_text(item.value().sizes()), ")"));
  std::vector<std::string> problems = missing;
  problems.insert(problems.end(), misshaped.begin(), misshaped.end());
  problems.insert(problems.end(), unexpected.begin(), unexpected.end());
  if (!problems.empty()) {
    std::ostringstream os;
    const size_t shown = std::min<size_t>(problems.size(), 8);
    for (size_t i = 0; i < shown; ++i) os << (i ? "; " : "") << problems[i];
    if (problems.size() > shown) os << "; and " << problems.size() - shown << " more";
    fail("CLIP weights '", path, "' do not fit the model: ", os.str());
  }
  torch::NoGradGuard ng;
  for (const auto& [name, v] : ready) {
    at::Tensor* p = params.find(name);
    p->copy_(v);
  }
}

}  // namespace vcpclip::io
