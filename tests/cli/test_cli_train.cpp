// `vcpclip train` through the binary: the tiny fixture backbone on a synthetic VisA-layout set,
// --max-steps then --resume, the output files, --set overrides, and the error paths (unknown
// key, missing train.data, val_classes without val_data, --resume without a state) with exit 1.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "../train/trainer_fixture.h"
#include "vcpclip/build_info.h"

namespace fs = std::filesystem;
using namespace trainer_fixture;

namespace {

struct Run {
  int status;
  std::string out;
};

Run run(const std::string& args) {
  const std::string cmd = std::string(VCPCLIP_BINARY_DIR) + "/vcpclip " + args + " 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe.get())) > 0) out.append(buf.data(), n);
  const int rc = pclose(pipe.release());
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

std::string write_config(const fs::path& dir, const std::string& data_root, const std::string& extra_train = "") {
  const auto path = dir / "train.yaml";
  std::ofstream f(path);
  f << "runtime: {device: cpu, threads: 1, seed: 333, log_level: info}\n"
    << "model:\n  backbone: " << kVcp << "tiny_vcp_clip.json\n  weights: " << kVcp << "tiny_vcp_clip.pt\n"
    << "  vocab: " << vocab() << "\n  image_size: 64\n  features_list: [2, 3, 4]\n  post_heads: 8\n"
    << "train:\n  epochs: 2\n  batch_size: 4\n  lr: 1.0e-3\n  out_dir: " << (dir / "out").string() << "\n"
    << extra_train << "  data: {layout: visa, workers: 1, root: " << data_root << "}\n";
  return path.string();
}

}  // namespace

TEST(CliTrain, MaxStepsResumeAndFiles) {
  TempDir tmp("cli_train");
  const auto data = make_dataset(tmp.path / "data", 4);  // 8 images: 2 batches per epoch
  const auto cfg = write_config(tmp.path, data);
  auto r = run("train --config " + cfg + " --max-steps 3 --no-progress");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("1 epoch(s), 3 step(s) (stopped at max_steps)"), std::string::npos) << r.out;
  r = run("train --config " + cfg + " --resume --no-progress --set train.log_every=2");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("2 epoch(s), 4 step(s) -> " + (tmp.path / "out" / "last.pth").string()), std::string::npos)
      << r.out;
  for (const char* f : {"last.pth", "resume.pt", "checkpoint_epoch_1.pth", "checkpoint_epoch_2.pth", "train.log"})
    EXPECT_TRUE(fs::exists(tmp.path / "out" / f)) << f;
  EXPECT_EQ(count_lines((tmp.path / "out" / "steps.jsonl").string()), 4);  // steps 1-3, then step 4 (log_every 2)
  EXPECT_EQ(count_lines((tmp.path / "out" / "epochs.jsonl").string()), 2);
  std::ifstream log(tmp.path / "out" / "train.log");
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("resumed from"), std::string::npos);
  EXPECT_NE(text.find("epoch 2/2: loss"), std::string::npos);
}

TEST(CliTrain, ErrorsExitWithStatusOne) {
  TempDir tmp("cli_train_err");
  const auto data = make_dataset(tmp.path / "data", 2);
  auto cfg = write_config(tmp.path, data, "  lrr: 1\n");
  auto r = run("train --config " + cfg);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("unknown config key 'train.lrr' in " + cfg), std::string::npos) << r.out;

  cfg = write_config(tmp.path, data, "  val_classes: [bottle]\n");
  r = run("train --config " + cfg);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("train.val_classes lists validation classes but there is no train.val_data section"),
            std::string::npos)
      << r.out;

  cfg = write_config(tmp.path, data);
  r = run("train --config " + cfg + " --resume");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("resume state not found: " + (tmp.path / "out" / "resume.pt").string()), std::string::npos)
      << r.out;

  r = run("train --config " + cfg + " --set train.batch_size=0");
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("train.batch_size"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("expected at least 1, found 0"), std::string::npos) << r.out;
}
