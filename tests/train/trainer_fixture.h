#pragma once
// Shared setup of the trainer tests: a tiny synthetic VisA-layout dataset and a TrainRequest for
// the tiny fixture backbone (tests/fixtures/vcp, S = 64) on CPU.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "vcpclip/build_info.h"
#include "vcpclip/data/synthetic.h"
#include "vcpclip/io/checkpoint.h"
#include "vcpclip/model/tokenizer.h"
#include "vcpclip/train/trainer.h"

namespace trainer_fixture {

namespace fs = std::filesystem;
inline const std::string kVcp = std::string(VCPCLIP_SOURCE_DIR) + "/tests/fixtures/vcp/";

inline std::string vocab() {
  for (const std::string& p : {std::string(VCPCLIP_SOURCE_DIR) + "/assets/bpe_simple_vocab_16e6.txt.gz",
                               std::string(VCPCLIP_SOURCE_DIR) + "/../shared/assets/bpe_simple_vocab_16e6.txt.gz"})
    if (fs::is_regular_file(p)) return p;
  return vcpclip::model::find_vocab();
}

/// A per-process scratch directory, removed by the destructor.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    path = fs::temp_directory_path() / ("vcpclip_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

/// 2 classes × `images` test images (VisA layout), 48 px.
inline std::string make_dataset(const fs::path& root, int images = 6, uint64_t seed = 1) {
  vcpclip::data::SynthOptions o;
  o.layout = "visa";
  o.out = root.string();
  o.classes = 2;
  o.images = images;
  o.train_images = 0;
  o.size = 48;
  o.seed = seed;
  vcpclip::data::generate_synthetic(o);
  return root.string();
}

inline vcpclip::train::TrainRequest request(const std::string& data_root, const std::string& out_dir) {
  vcpclip::train::TrainRequest r;
  r.runtime.device = "cpu";
  r.runtime.threads = 1;
  r.runtime.seed = 333;
  r.runtime.log_level = "warn";
  auto& m = r.model;
  m.backbone = kVcp + "tiny_vcp_clip.json";
  m.weights = kVcp + "tiny_vcp_clip.pt";
  m.vocab = vocab();
  m.input_size = 64;
  m.features_list = {2, 3, 4};
  m.post_heads = 8;
  m.init_seed = 5;
  r.data.layout = "visa";
  r.data.root = data_root;
  r.data.split = "test";
  r.data.augment = true;
  r.train.epochs = 2;
  r.train.batch_size = 4;
  r.data.workers = 1;
  r.train.out_dir = out_dir;
  r.train.lr = 1e-3;  // large enough that every step visibly moves the tensors
  r.progress = false;
  return r;
}

inline std::map<std::string, at::Tensor> read_ckpt(const std::string& path) {
  return vcpclip::io::read_reference_checkpoint(path, /*keep_integer=*/true).flatten();  // AnomalyCLIP: int32 ids
}

inline double max_diff(const std::map<std::string, at::Tensor>& a, const std::map<std::string, at::Tensor>& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (const auto& [k, t] : a) {
    EXPECT_TRUE(b.count(k)) << k;
    if (!b.count(k)) continue;
    worst = std::max(worst, (t.to(at::kDouble) - b.at(k).to(at::kDouble)).abs().max().item<double>());
  }
  return worst;
}

inline int count_lines(const std::string& path) {
  std::ifstream in(path);
  int n = 0;
  std::string line;
  while (std::getline(in, line)) n += !line.empty();
  return n;
}

}  // namespace trainer_fixture
