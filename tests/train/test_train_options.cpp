// parse_train_options: defaults (the reference's), every key, deterministic mode, and errors
// naming key and file.
#include <gtest/gtest.h>

#include "vcpclip/common/error.h"
#include "vcpclip/train/train_options.h"
#include "vcpclip/train/trainer.h"

using namespace vcpclip;

namespace {
train::TrainOptions parse(const std::string& yaml) {
  auto root = io::ConfigNode::from_string(yaml, "t.yaml");
  auto s = root.section("train");
  return train::parse_train_options(s);
}
}  // namespace

TEST(TrainOptions, ReferenceDefaults) {
  auto o = parse("train: {}\n");
  EXPECT_EQ(o.epochs, 10);
  EXPECT_EQ(o.batch_size, 32);
  EXPECT_DOUBLE_EQ(o.lr, 4e-5);
  EXPECT_DOUBLE_EQ(o.lr_temp, 0.01);
  EXPECT_DOUBLE_EQ(o.betas[0], 0.5);
  EXPECT_DOUBLE_EQ(o.betas[1], 0.999);
  EXPECT_DOUBLE_EQ(o.eps, 1e-8);
  EXPECT_EQ(o.save_every, 1);
  EXPECT_EQ(o.resume_every_steps, 50);
  EXPECT_DOUBLE_EQ(o.resume_every_seconds, 300.0);
  EXPECT_TRUE(o.shuffle);
  EXPECT_FALSE(o.deterministic);
  EXPECT_EQ(o.max_steps, 0);
  EXPECT_TRUE(o.init_from.empty());
}

TEST(TrainOptions, AllKeys) {
  auto o = parse(
      "train: {epochs: 3, batch_size: 8, lr: 2.0e-5, lr_temp: 0.02, betas: [0.9, 0.99], eps: 1.0e-6,"
      " save_every: 2, resume_every_steps: 7, resume_every_seconds: 1.5, out_dir: runs/x, shuffle: false,"
      " deterministic: true, val_classes: [a, b], max_steps: 7, init_from: k.pth, log_every: 5}\n");
  EXPECT_EQ(o.epochs, 3);
  EXPECT_EQ(o.batch_size, 8);
  EXPECT_DOUBLE_EQ(o.lr, 2e-5);
  EXPECT_DOUBLE_EQ(o.lr_temp, 0.02);
  EXPECT_DOUBLE_EQ(o.betas[0], 0.9);
  EXPECT_DOUBLE_EQ(o.eps, 1e-6);
  EXPECT_EQ(o.save_every, 2);
  EXPECT_EQ(o.resume_every_steps, 7);
  EXPECT_DOUBLE_EQ(o.resume_every_seconds, 1.5);
  EXPECT_EQ(o.out_dir, "runs/x");
  EXPECT_FALSE(o.shuffle);
  EXPECT_TRUE(o.deterministic);  // applied by train::apply_deterministic, not here
  EXPECT_EQ(o.val_classes, (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(o.max_steps, 7);
  EXPECT_EQ(o.init_from, "k.pth");
  EXPECT_EQ(o.log_every, 5);
}

TEST(TrainOptions, DeterministicIsAppliedOnceToModelDataAndSampler) {
  train::TrainRequest r;
  r.data.augment = true;
  r.data.mosaic_p = 0.2;
  r.model.prompt_dropout = 0.1;
  train::apply_deterministic(r);  // off: nothing changes
  EXPECT_TRUE(r.data.augment);
  EXPECT_TRUE(r.train.shuffle);
  r.train.deterministic = true;
  train::apply_deterministic(r);
  EXPECT_FALSE(r.data.augment);
  EXPECT_DOUBLE_EQ(r.data.mosaic_p, 0.0);
  EXPECT_DOUBLE_EQ(r.model.prompt_dropout, 0.0);
  EXPECT_FALSE(r.train.shuffle);
}

TEST(TrainOptions, DataKeysAreNoLongerTrainKeys) {
  // augment / skip_bad / workers live in train.data only (one key each).
  for (const char* key : {"augment: true", "skip_bad: true", "workers: 1"})
    EXPECT_THROW(parse(std::string("train: {") + key + "}\n"), vcpclip::Error) << key;
}

TEST(TrainOptions, ErrorsNameKeyAndFile) {
  auto expect_error = [](const std::string& yaml, const std::string& message) {
    try {
      parse(yaml);
      FAIL() << "expected an error for " << yaml;
    } catch (const vcpclip::Error& e) {
      EXPECT_EQ(std::string(e.what()), message);
    }
  };
  expect_error("train: {epochs: 0}\n", "config key 'train.epochs' in t.yaml: expected at least 1, found 0");
  expect_error("train: {lr: -1}\n", "config key 'train.lr' in t.yaml: expected a positive learning rate, found -1");
  expect_error("train: {betas: [0.5]}\n",
               "config key 'train.betas' in t.yaml: expected two numbers in [0, 1), found 1 value(s)");
  expect_error("train: {resume_every_steps: -1}\n",
               "config key 'train.resume_every_steps' in t.yaml: expected 0 (off) or a number of steps, found -1");
  expect_error(
      "train: {resume_every_seconds: -2.5}\n",
      "config key 'train.resume_every_seconds' in t.yaml: expected 0 (off) or a number of seconds, found -2.5");
  EXPECT_THROW(parse("train: {epochz: 3}\n"), vcpclip::Error);
  EXPECT_THROW(parse("train: {batch_size: many}\n"), vcpclip::Error);
}
