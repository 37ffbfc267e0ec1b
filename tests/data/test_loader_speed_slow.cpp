// Loader / preprocessing throughput at the paper's resolution (prints numbers; slow label).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <iostream>

#include "vcpclip/data/datasets.h"
#include "vcpclip/data/loader.h"
#include "vcpclip/data/synthetic.h"
#include "vcpclip/data/transforms.h"

namespace fs = std::filesystem;
using namespace vcpclip::data;
using Clock = std::chrono::steady_clock;

TEST(LoaderSpeed, PreprocessAndLoadAt518) {
  cv::Mat big(1024, 1024, CV_8UC3);
  cv::randu(big, 0, 255);
  auto t0 = Clock::now();
  const int reps = 5;
  at::Tensor t;
  for (int i = 0; i < reps; ++i) t = preprocess_image(big, 518);
  const double per = std::chrono::duration<double>(Clock::now() - t0).count() / reps;
  std::cout << "preprocess_image 1024^2 -> 518^2: " << per * 1000 << " ms\n";
  EXPECT_EQ(t.sizes(), (std::vector<int64_t>{3, 518, 518}));

  const fs::path root = fs::temp_directory_path() / "vcpclip_test_loader_speed";
  fs::remove_all(root);
  SynthOptions o;
  o.out = root.string();
  o.classes = 2;
  o.images = 32;
  o.train_images = 0;
  o.size = 512;
  generate_synthetic(o);
  auto samples = read_mvtec(root.string(), "test", {}).samples;
  std::vector<at::Tensor> first;
  for (int workers : {0, 2}) {
    LoaderOptions lo;
    lo.image_size = 518;
    lo.batch_size = 16;
    lo.workers = workers;
    lo.augment = true;
    lo.shuffle = true;
    DataLoader l(samples, lo);
    auto s = Clock::now();
    l.start_epoch(0);
    int64_t n = 0;
    at::Tensor firstb;
    while (auto b = l.next()) {
      n += b->size();
      if (!firstb.defined()) firstb = b->images;
    }
    const double sec = std::chrono::duration<double>(Clock::now() - s).count();
    std::cout << "loader 512^2 png -> 518^2 with augmentation, workers=" << workers << ": " << n / sec << " img/s\n";
    EXPECT_EQ(n, 64);
    first.push_back(firstb);
  }
  EXPECT_TRUE(first[0].equal(first[1]));
  fs::remove_all(root);
}
