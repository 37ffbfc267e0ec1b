// Fault tolerance of `vcpclip train` through the real binary:
//  - a run is killed inside epochs (SIGKILL after a few steps; SIGXFSZ from a file-size limit in
//    the middle of writing resume.pt, the partial temporary file left as proof; SIGKILL late in
//    the second epoch) and continued with --resume each time: the final
//    weights equal an uninterrupted run's within 1e-6, every step is logged exactly once, and no
//    temporary file is left behind;
//  - a full disk (RLIMIT_FSIZE, SIGXFSZ ignored) while writing resume.pt or last.pth: exit 1 with
//    an error naming the file, the previous state and checkpoint unchanged and loadable, no
//    temporary file, and --resume afterwards still ends with the uninterrupted run's weights.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "../train/trainer_fixture.h"
#include "process_util.h"
#include "support/file_size_limit.h"
#include "support/test_util.h"
#include "vcpclip/build_info.h"

namespace fs = std::filesystem;
using namespace trainer_fixture;
using namespace process_util;

namespace {

/// Starts `vcpclip <args>` (output appended to `log`) under a file-size limit that kills it: with
/// SIGXFSZ at its default action, the first write past `bytes` ends the process by that signal,
/// in the middle of writing that file, with no handler or destructor running (as SIGKILL).
pid_t spawn_killed_at_file_size(const std::vector<std::string>& args, const std::string& log, uint64_t bytes) {
  const std::string binary = std::string(VCPCLIP_BINARY_DIR) + "/vcpclip";
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::signal(SIGXFSZ, SIG_DFL);
    rlimit lim{};
    ::setrlimit(RLIMIT_CORE, &lim);  // no core file
    ::getrlimit(RLIMIT_FSIZE, &lim);
    lim.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &lim);
    std::vector<char*> argv{const_cast<char*>(binary.c_str())};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  return pid;
}

std::vector<nlohmann::json> jsonl(const fs::path& p) {
  std::vector<nlohmann::json> out;
  std::ifstream in(p);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

/// A run config for the tiny fixture backbone on `data` (batch 2, one loader thread, the given
/// train.* lines), written to dir/train.yaml.
fs::path write_config(const fs::path& dir, const std::string& data, const std::string& train_lines) {
  const auto cfg = dir / "train.yaml";
  std::ofstream(cfg) << "runtime: {device: cpu, threads: 1, seed: 333, log_level: info}\n"
                     << "model:\n  backbone: " << kVcp << "tiny_vcp_clip.json\n  weights: " << kVcp
                     << "tiny_vcp_clip.pt\n  vocab: " << vocab()
                     << "\n  image_size: 64\n  features_list: [2, 3, 4]\n  post_heads: 8\n"
                     << "train:\n  batch_size: 2\n  lr: 1.0e-3\n"
                     << train_lines << "  data: {layout: visa, workers: 1, root: " << data << "}\n";
  return cfg;
}

}  // namespace

TEST(TrainFaults, KilledMidStepMidWriteAndLateThenResumeEqualsAnUninterruptedRun) {
  TempDir tmp("train_kill");
  const auto data = make_dataset(tmp.path / "data", 8);  // 16 images, batch 2: 8 steps per epoch
  const auto cfg = write_config(tmp.path, data, "  epochs: 2\n  resume_every_steps: 3\n  resume_every_seconds: 0\n");
  // Augmentation, shuffling and prompt dropout are on: the resumed run must restore all of them.
  const auto ref = tmp.path / "ref", out = tmp.path / "killed";
  auto args = [&](const fs::path& dir, bool resume) {
    std::vector<std::string> a{"train", "-c", cfg.string(), "--no-progress", "--set", "train.out_dir=" + dir.string()};
    if (resume) a.push_back("--resume");
    return a;
  };
  const std::string ref_log = (tmp.path / "ref.log").string(), log = (tmp.path / "killed.log").string();
  ASSERT_EQ(wait_for(spawn(args(ref, false), ref_log)), 0) << vcpclip::testing::slurp(ref_log);

  // Kill 1: SIGKILL after 2 steps (state of step 0 on disk).
  kill_when(args(out, false), log, [&] { return steps_logged(out) >= 2; });
  // Kill 2: in the middle of writing resume.pt. A file-size limit of half its size ends the
  // process by SIGXFSZ at the first write past it: the resumed run's next resume.pt write.
  const std::string resume = (out / "resume.pt").string(), mid_log = (tmp.path / "mid_write.log").string();
  const std::string resume_before = vcpclip::testing::slurp(resume);
  ASSERT_GT(resume_before.size(), 1000u);
  const uint64_t limit = resume_before.size() / 2;
  EXPECT_EQ(wait_for(spawn_killed_at_file_size(args(out, true), mid_log, limit)), 128 + SIGXFSZ)
      << vcpclip::testing::slurp(mid_log);
  std::vector<fs::path> partial;
  for (const auto& e : fs::directory_iterator(out))
    if (e.path().filename().string().rfind("resume.pt.tmp.", 0) == 0) partial.push_back(e.path());
  ASSERT_EQ(partial.size(), 1u) << "the kill did not land while resume.pt was being written:\n"
                                << vcpclip::testing::slurp(mid_log);
  EXPECT_EQ(fs::file_size(partial[0]), limit);  // cut off mid-file
  EXPECT_EQ(vcpclip::testing::slurp(resume), resume_before);
  std::ofstream(log, std::ios::app) << vcpclip::testing::slurp(mid_log);
  // Kill 3: SIGKILL late in epoch 2.
  kill_when(args(out, true), log, [&] { return steps_logged(out) >= 13; });
  ASSERT_EQ(wait_for(spawn(args(out, true), log)), 0) << vcpclip::testing::slurp(log);

  // Each resume started from a state of step 0 (the start), a multiple of 3 (resume_every_steps)
  // or an epoch end (8): at least one of them inside an epoch.
  const std::string text = vcpclip::testing::slurp(log);
  const std::regex resumed(R"(resumed from \S+: (\d+) epoch\(s\) and (\d+) step\(s\) done)");
  int resumes = 0, inside = 0;
  for (std::sregex_iterator it(text.begin(), text.end(), resumed), end; it != end; ++it, ++resumes) {
    const int epochs = std::stoi((*it)[1]), step = std::stoi((*it)[2]);
    EXPECT_TRUE(step % 3 == 0 || step == 8 * epochs) << it->str();
    inside += step != 8 * epochs;
  }
  EXPECT_EQ(resumes, 3) << text;
  EXPECT_GE(inside, 1) << "no resume from inside an epoch:\n" << text;
  EXPECT_LE(max_diff(read_ckpt((out / "last.pth").string()), read_ckpt((ref / "last.pth").string())), 1e-6);
  for (const char* f : {"checkpoint_epoch_1.pth", "checkpoint_epoch_2.pth"})
    EXPECT_LE(max_diff(read_ckpt((out / f).string()), read_ckpt((ref / f).string())), 1e-6) << f;

  // Every step logged once, in order, with the uninterrupted run's loss; the epoch records too.
  const auto steps = jsonl(out / "steps.jsonl"), ref_steps = jsonl(ref / "steps.jsonl");
  ASSERT_EQ(steps.size(), 16u);
  ASSERT_EQ(ref_steps.size(), 16u);
  for (size_t i = 0; i < steps.size(); ++i) {
    EXPECT_EQ(steps[i]["step"].get<int>(), int(i) + 1);
    EXPECT_NEAR(steps[i]["loss"].get<double>(), ref_steps[i]["loss"].get<double>(), 1e-6) << "step " << i + 1;
  }
  const auto epochs = jsonl(out / "epochs.jsonl"), ref_epochs = jsonl(ref / "epochs.jsonl");
  ASSERT_EQ(epochs.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(epochs[i]["epoch"].get<int>(), int(i) + 1);
    EXPECT_NEAR(epochs[i]["loss"].get<double>(), ref_epochs[i]["loss"].get<double>(), 1e-6) << "epoch " << i + 1;
    EXPECT_EQ(epochs[i]["steps"], ref_epochs[i]["steps"]);
  }
  for (const auto& e : fs::directory_iterator(out))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << "left behind: " << e.path();
}

TEST(TrainFaults, ResumeStateEveryFewSecondsInsideAnEpoch) {
  TempDir tmp("train_every");
  const auto data = make_dataset(tmp.path / "data", 8);  // 16 images, batch 2: 8 steps per epoch
  const auto out = tmp.path / "out";
  // No step interval, a time interval shorter than a step: a state after every step.
  const auto cfg = write_config(
      tmp.path, data,
      "  epochs: 1\n  out_dir: " + out.string() + "\n  resume_every_steps: 0\n  resume_every_seconds: 1.0e-6\n");
  const std::string log = (tmp.path / "log").string();
  kill_when({"train", "-c", cfg.string(), "--no-progress"}, log, [&] { return steps_logged(out) >= 5; });
  const auto state = vcpclip::train::peek_resume_state((out / "resume.pt").string());
  EXPECT_GE(state.step, 4) << "no state written inside the epoch";
  if (state.step < 8) {
    EXPECT_EQ(state.epoch, 0);
    EXPECT_EQ(state.batch_in_epoch, state.step);
    EXPECT_EQ(state.sums.batches, state.step);
    EXPECT_GT(state.sums.loss, 0.0);
  }
}

TEST(TrainFaults, FullDiskNamesTheFileAndKeepsThePreviousState) {
  TempDir tmp("train_full");
  const auto data = make_dataset(tmp.path / "data", 4);  // 8 images, batch 2: 4 steps per epoch
  const auto cfg = write_config(tmp.path, data,
                                "  epochs: 3\n  save_every: 3\n  resume_every_steps: 0\n  resume_every_seconds: 0\n");
  const auto ref = tmp.path / "ref", out = tmp.path / "out";
  auto args = [&](const fs::path& dir, std::vector<std::string> extra) {
    std::vector<std::string> a{"train", "-c", cfg.string(), "--no-progress", "--set", "train.out_dir=" + dir.string()};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  const std::string log = (tmp.path / "log").string();
  ASSERT_EQ(wait_for(spawn(args(ref, {}), log)), 0) << vcpclip::testing::slurp(log);
  ASSERT_EQ(wait_for(spawn(args(out, {"--set", "train.epochs=1"}), log)), 0) << vcpclip::testing::slurp(log);
  const std::string last = (out / "last.pth").string(), resume = (out / "resume.pt").string();
  const std::string last_before = vcpclip::testing::slurp(last), resume_before = vcpclip::testing::slurp(resume);
  const uint64_t limit = last_before.size() / 2;  // logs fit, checkpoints do not
  auto expect_failure_naming = [&](const std::string& file, const std::vector<std::string>& extra) {
    std::ofstream(log, std::ios::trunc).close();
    EXPECT_EQ(wait_for(spawn(args(out, extra), log, limit)), 1);
    const std::string text = vcpclip::testing::slurp(log);
    EXPECT_NE(text.find("vcpclip train: error: cannot write " + file + " (temporary file " + file + ".tmp."),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("): File too large"), std::string::npos) << text;
    EXPECT_EQ(text.find("terminate called"), std::string::npos) << text;
    EXPECT_EQ(vcpclip::testing::slurp(last), last_before);
    EXPECT_EQ(vcpclip::testing::slurp(resume), resume_before);
    EXPECT_EQ(vcpclip::train::peek_resume_state(resume).epoch, 1);
    for (const auto& e : fs::directory_iterator(out))
      EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << "left behind: " << e.path();
  };
  // last.pth at the end of epoch 2 (save_every 3: no epoch checkpoint before it) ...
  expect_failure_naming(last, {"--resume"});
  // ... and resume.pt inside epoch 2.
  expect_failure_naming(resume, {"--resume", "--set", "train.resume_every_steps=1"});
  EXPECT_NO_THROW(read_ckpt(last));
  // With room again, --resume continues from the state before the failures, as if nothing happened.
  ASSERT_EQ(wait_for(spawn(args(out, {"--resume"}), log)), 0) << vcpclip::testing::slurp(log);
  EXPECT_LE(max_diff(read_ckpt(last), read_ckpt((ref / "last.pth").string())), 1e-6);
}
