// The loader at the paper's resolution (slow label): preprocessing a large image to 518² and
// loading 512² PNGs with augmentation give the right shapes, every sample once per epoch, and the
// same batches with and without worker threads. Throughput is measured by `vcpclip bench`
// (section data), not here.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "vcpclip/data/datasets.h"
#include "vcpclip/data/loader.h"
#include "vcpclip/data/synthetic.h"
#include "vcpclip/data/transforms.h"

namespace fs = std::filesystem;
using namespace vcpclip::data;

TEST(LoaderAt518, ShapesAndTheSameBatchesWithAndWithoutWorkers) {
  cv::Mat big(1024, 1024, CV_8UC3);
  cv::randu(big, 0, 255);
  const at::Tensor t = preprocess_image(big, 518);
  EXPECT_EQ(t.sizes(), (std::vector<int64_t>{3, 518, 518}));
  EXPECT_TRUE(t.equal(preprocess_image(big, 518)));

  const fs::path root = fs::temp_directory_path() / "vcpclip_test_loader_518";
  fs::remove_all(root);
  SynthOptions o;
  o.out = root.string();
  o.classes = 2;
  o.images = 32;
  o.train_images = 0;
  o.size = 512;
  generate_synthetic(o);
  auto samples = read_mvtec(root.string(), "test", {}).samples;
  ASSERT_EQ(samples.size(), 64u);
  std::vector<std::vector<at::Tensor>> batches(2);
  std::vector<std::multiset<std::string>> seen(2);
  for (int k = 0; k < 2; ++k) {
    LoaderOptions lo;
    lo.image_size = 518;
    lo.batch_size = 16;
    lo.workers = k == 0 ? 0 : 2;
    lo.augment = true;
    lo.shuffle = true;
    DataLoader l(samples, lo);
    l.start_epoch(0);
    while (auto b = l.next()) {
      EXPECT_EQ(b->images.sizes(), (std::vector<int64_t>{b->size(), 3, 518, 518}));
      for (const auto& s : b->infos) seen[k].insert(s.image_path);
      batches[k].push_back(b->images);
    }
    EXPECT_EQ(seen[k].size(), 64u);
    EXPECT_EQ(std::set<std::string>(seen[k].begin(), seen[k].end()).size(), 64u) << "a sample twice in one epoch";
  }
  ASSERT_EQ(batches[0].size(), 4u);
  ASSERT_EQ(batches[1].size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_TRUE(batches[0][i].equal(batches[1][i])) << "batch " << i;
  fs::remove_all(root);
}
