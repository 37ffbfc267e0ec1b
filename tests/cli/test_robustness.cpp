// Robustness sweep through the real `vcpclip` binary: the bad inputs users hit (missing config,
// mistyped keys in every section, wrong types, missing dataset, corrupt image, corrupt/truncated
// checkpoint, truncated/garbage/wrong-backbone weights, missing masks, interrupted training).
// Every case must: exit with status 1 (never a signal / status >= 128, never "terminate called"),
// print a clear one-paragraph "vcpclip <cmd>: error: ..." naming the culprit (asserted phrases),
// and leave no output that claims to be complete (metrics.json, summary.json).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <thread>

#include "../model/vcp_fixture.h"
#include "vcpclip/build_info.h"

namespace fs = std::filesystem;
namespace fx = vcp_fixture;

namespace {

struct Run {
  int status = -1;  // exit status, or 128 + signal
  bool signaled = false;
  std::string out;  // stdout + stderr
};

std::string binary() { return std::string(VCPCLIP_BINARY_DIR) + "/vcpclip"; }

Run run(const std::string& args) {
  const std::string cmd = binary() + " " + args + " 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  Run r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe.get())) > 0) r.out.append(buf.data(), n);
  const int rc = pclose(pipe.release());
  if (WIFEXITED(rc)) {
    r.status = WEXITSTATUS(rc);
  } else if (WIFSIGNALED(rc)) {
    r.signaled = true;
    r.status = 128 + WTERMSIG(rc);
  }
  return r;
}

/// A clean failure: status 1, an error paragraph for `command` containing every phrase, no crash.
void expect_clean_failure(const Run& r, const std::string& command, const std::vector<std::string>& phrases) {
  EXPECT_FALSE(r.signaled) << r.out;
  EXPECT_EQ(r.status, 1) << r.out;
  for (const char* crash :
       {"terminate called", "Segmentation fault", "core dumped", "Aborted", "Exception raised from"})
    EXPECT_EQ(r.out.find(crash), std::string::npos) << crash << " in:\n" << r.out;
  const std::string head = "vcpclip " + command + ": error";
  const auto at = r.out.find(head);
  ASSERT_NE(at, std::string::npos) << "no '" << head << "' paragraph in:\n" << r.out;
  const std::string paragraph = r.out.substr(at);
  for (const auto& p : phrases) EXPECT_NE(paragraph.find(p), std::string::npos) << "'" << p << "' not in:\n" << r.out;
}

fs::path work() {
  static const fs::path d = [] {
    auto p = fs::temp_directory_path() / ("vcpclip_robustness_" + std::to_string(::getpid()));
    fs::remove_all(p);
    fs::create_directories(p);
    return p;
  }();
  return d;
}

struct Cleanup : ::testing::Environment {
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(work(), ec);
  }
};
const auto* const cleanup = ::testing::AddGlobalTestEnvironment(new Cleanup);

/// Small synthetic sets, generated once per process.
fs::path target_set() {
  static const fs::path p = [] {
    const auto d = work() / "target";
    auto r = run("synth --layout mvtec --role target --out " + d.string() +
                 " --classes 2 --images 4 --train-images 0 --size 64");
    EXPECT_EQ(r.status, 0) << r.out;
    return d;
  }();
  return p;
}
fs::path aux_set() {
  static const fs::path p = [] {
    const auto d = work() / "aux";
    auto r = run("synth --layout visa --role auxiliary --out " + d.string() +
                 " --classes 2 --images 4 --train-images 0 --size 64");
    EXPECT_EQ(r.status, 0) << r.out;
    return d;
  }();
  return p;
}

std::string model_section() {
  std::ostringstream s;
  s << "model:\n  backbone: " << fx::path("tiny_vcp_clip.json") << "\n  weights: " << fx::path("tiny_vcp_clip.pt")
    << "\n  vocab: " << fx::vocab_path() << "\n  image_size: 64\n  features_list: [2, 3, 4]\n";
  return s.str();
}

/// One config with every section: runtime, model (the tiny golden fixture), train, eval.
fs::path config() {
  static const fs::path p = [] {
    const auto f = work() / "run.yaml";
    std::ofstream(f) << "runtime:\n  threads: 1\n"
                     << model_section()
                     << "train:\n  epochs: 2\n  batch_size: 4\n  out_dir: " << (work() / "train_default").string()
                     << "\n  data:\n    layout: visa\n    root: " << aux_set().string() << "\n    workers: 1\n"
                     << "eval:\n  batch_size: 4\n  out_dir: " << (work() / "eval_default").string()
                     << "\n  data:\n    layout: mvtec\n    root: " << target_set().string() << "\n    workers: 1\n";
    return f;
  }();
  return p;
}

std::string cfg() { return " --config " + config().string() + " "; }

void write_bytes(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Copy of a dataset to damage.
fs::path copy_set(const fs::path& from, const std::string& name) {
  const auto d = work() / name;
  fs::remove_all(d);
  fs::copy(from, d, fs::copy_options::recursive);
  return d;
}

fs::path first_file(const fs::path& dir, const std::string& needle) {
  for (auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().string().find(needle) != std::string::npos) return e.path();
  return {};
}

}  // namespace

TEST(Robustness, MissingConfigFile) {
  const std::string missing = (work() / "nope.yaml").string();
  const std::vector<std::pair<std::string, std::string>> cmds = {
      {"train", "train --no-progress --config " + missing},
      {"eval", "eval --no-progress --config " + missing},
      {"predict", "predict --config " + missing + " -k x.pth -i x -o " + (work() / "p").string()},
      {"demo", "demo --no-progress --config " + missing + " --out " + (work() / "demo_missing").string()},
  };
  for (const auto& [name, args] : cmds) {
    SCOPED_TRACE(name);
    expect_clean_failure(run(args), name, {"cannot open config file", missing, "no such file"});
  }
  EXPECT_FALSE(fs::exists(work() / "demo_missing" / "summary.json"));
}

TEST(Robustness, UnknownKeyInEverySection) {
  // As typed in a file (the mistake users make) ...
  const auto f = work() / "typo.yaml";
  {
    std::string text = read_bytes(config());
    text.replace(text.find("  epochs: 2"), 11, "  epoch: 2");
    write_bytes(f, text);
  }
  expect_clean_failure(run("train --no-progress --config " + f.string()), "train",
                       {"unknown config key 'train.epoch'", f.string(), "known keys", "epochs"});
  // ... and through --set, for each section, by the commands that read the file.
  for (const auto& [key, cmd] : std::vector<std::pair<std::string, std::string>>{{"runtime.devcie", "eval"},
                                                                                 {"model.imagesize", "eval"},
                                                                                 {"train.lrr", "eval"},
                                                                                 {"eval.batchsize", "train"},
                                                                                 {"eval.data.rooot", "eval"}}) {
    SCOPED_TRACE(key);
    expect_clean_failure(run(cmd + " --no-progress" + cfg() + "--set " + key + "=1"), cmd,
                         {"unknown config key '" + key + "'", config().string()});
  }
  expect_clean_failure(run("demo --no-progress --out " + (work() / "demo_typo").string() + " --set demo.outdir=x"),
                       "demo", {"unknown config key 'demo.outdir'", "<built-in configs/demo.yaml>"});
  EXPECT_FALSE(fs::exists(work() / "demo_typo"));
}

TEST(Robustness, WrongTypes) {
  expect_clean_failure(run("train --no-progress" + cfg() + "--set train.epochs=three"), "train",
                       {"'train.epochs'", "an integer", "three"});
  expect_clean_failure(run("eval --no-progress" + cfg() + "--set model.image_size=[64]"), "eval",
                       {"'model.image_size'", "an integer"});
  expect_clean_failure(run("eval --no-progress" + cfg() + "--set eval.save_maps=maybe"), "eval",
                       {"'eval.save_maps'", "true or false", "maybe"});
  expect_clean_failure(run("eval --no-progress" + cfg() + "--set runtime.device=gpu"), "eval",
                       {"'runtime.device'", "expected cpu, cuda or cuda:N", "gpu"});
  expect_clean_failure(run("train --no-progress" + cfg() + "--set train.batch_size=0"), "train",
                       {"'train.batch_size'"});
}

TEST(Robustness, NonexistentDatasetRoot) {
  const auto root = (work() / "no_such_dataset").string();
  const auto out = work() / "eval_noroot";
  expect_clean_failure(run("eval --no-progress" + cfg() + "--out " + out.string() + " --set eval.data.root=" + root),
                       "eval", {root});
  EXPECT_FALSE(fs::exists(out / "metrics.json"));
  expect_clean_failure(run("train --no-progress" + cfg() + "--set train.data.root=" + root), "train", {root});
}

TEST(Robustness, CorruptImageInTheTestSetIsNamed) {
  const auto set = copy_set(target_set(), "target_corrupt");
  const auto img = first_file(set / fs::path(*fs::directory_iterator(set)).filename() / "test", ".png");
  ASSERT_FALSE(img.empty());
  write_bytes(img, "this is not a png");
  const auto out = work() / "eval_corrupt";
  expect_clean_failure(
      run("eval --no-progress" + cfg() + "--out " + out.string() + " --set eval.data.root=" + set.string()), "eval",
      {"cannot decode image file", img.string()});
  EXPECT_FALSE(fs::exists(out / "metrics.json")) << "no metrics for a half-evaluated set";
}

TEST(Robustness, CorruptAndTruncatedCheckpointsAreNamed) {
  const auto garbage = work() / "garbage.pth";
  write_bytes(garbage, std::string(300, 'x'));
  const auto truncated = work() / "truncated.pth";
  const std::string full = read_bytes(fx::path("tiny_vcp.pth"));
  write_bytes(truncated, full.substr(0, full.size() / 2));
  const auto images = work() / "images";
  fs::create_directories(images);
  fs::copy_file(fx::path("image_0.png"), images / "a.png", fs::copy_options::overwrite_existing);
  for (const auto& ck : {garbage, truncated}) {
    SCOPED_TRACE(ck.string());
    const auto out = work() / ("eval_" + ck.stem().string());
    expect_clean_failure(run("eval --no-progress" + cfg() + "--checkpoint " + ck.string() + " --out " + out.string()),
                         "eval", {ck.string()});
    EXPECT_FALSE(fs::exists(out / "metrics.json"));
    const auto pout = work() / ("pred_" + ck.stem().string());
    expect_clean_failure(
        run("predict" + cfg() + "-k " + ck.string() + " -i " + images.string() + " -o " + pout.string()), "predict",
        {ck.string()});
  }
}

TEST(Robustness, BadWeightsFiles) {
  const auto garbage = work() / "garbage_weights.pt";
  write_bytes(garbage, std::string(1000, '\x07'));
  const auto truncated = work() / "truncated_weights.pt";
  const std::string full = read_bytes(fx::path("tiny_vcp_clip.pt"));
  write_bytes(truncated, full.substr(0, full.size() / 3));
  for (const auto& w : {garbage, truncated}) {
    SCOPED_TRACE(w.string());
    expect_clean_failure(run("eval --no-progress" + cfg() + "--set model.weights=" + w.string()), "eval", {w.string()});
  }
  // Weights of another backbone: configs/models/tiny.json (embed 32) with the fixture's (embed 8) weights.
  const std::string other = std::string(VCPCLIP_SOURCE_DIR) + "/configs/models/tiny.json";
  expect_clean_failure(run("eval --no-progress" + cfg() + "--set model.backbone=" + other), "eval",
                       {fx::path("tiny_vcp_clip.pt"), "do not fit the model", "shape"});
}

TEST(Robustness, TrainingRefusesASetWithMissingMasks) {
  const auto set = copy_set(aux_set(), "aux_nomask");
  const auto mask = first_file(set, "Masks");
  ASSERT_FALSE(mask.empty());
  fs::remove(mask);
  const auto out = work() / "train_nomask";
  expect_clean_failure(run("train --no-progress" + cfg() + "--set train.data.root=" + set.string() +
                           " --set train.out_dir=" + out.string()),
                       "train", {"has problems", mask.filename().string(), "skip_bad"});
  EXPECT_FALSE(fs::exists(out / "last.pth"));
}

TEST(Robustness, InterruptedTrainingResumesAndLeavesALoadableCheckpoint) {
  // (a) stopped by max_steps, then --resume finishes the run.
  const auto out = work() / "train_steps";
  const std::string base = "train --no-progress" + cfg() + "--set train.out_dir=" + out.string();
  auto r = run(base + " --max-steps 1");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("stopped at max_steps"), std::string::npos) << r.out;
  r = run(base + " --resume");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("resumed from"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("2 epoch(s)"), std::string::npos) << r.out;

  // (b) killed by a signal mid-run (SIGKILL: no chance to clean up) right after an epoch's
  // checkpoint (resume.pt exists from the start of the run).
  const auto out2 = work() / "train_killed";
  const std::string cmd = "exec " + binary() + " train --no-progress" + cfg() + "--set train.out_dir=" + out2.string() +
                          " --set train.epochs=50 > " + (work() / "killed.log").string() + " 2>&1";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fs::exists(out2 / "last.pth") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  kill(pid, SIGKILL);
  int st = 0;
  waitpid(pid, &st, 0);
  ASSERT_TRUE(WIFSIGNALED(st)) << "the run finished before it could be interrupted";
  ASSERT_TRUE(fs::exists(out2 / "last.pth")) << read_bytes(work() / "killed.log");
  // the last checkpoint loads (eval on it works) ...
  const auto eout = work() / "eval_killed";
  r = run("eval --no-progress" + cfg() + "--checkpoint " + (out2 / "last.pth").string() + " --out " + eout.string());
  EXPECT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(fs::exists(eout / "metrics.json"));
  // ... and --resume continues from the state (two more epochs).
  r = run("train --no-progress" + cfg() + "--set train.out_dir=" + out2.string() + " --set train.epochs=3 --resume");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("resumed from " + (out2 / "resume.pt").string()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("3 epoch(s)"), std::string::npos) << r.out;
  // resuming with nothing to resume is a clear error, not a fresh run
  expect_clean_failure(
      run("train --no-progress" + cfg() + "--set train.out_dir=" + (work() / "never").string() + " --resume"), "train",
      {"resume state not found", (work() / "never" / "resume.pt").string()});
}

TEST(Robustness, DemoFailureLeavesNoSummary) {
  const auto out = work() / "demo_fail";
  expect_clean_failure(run("demo --no-progress --out " + out.string() +
                           " --set demo.synthetic.aux.classes=1 --set demo.synthetic.aux.images=2"
                           " --set demo.synthetic.aux.size=32 --set eval.data.root=" +
                           (work() / "missing_target").string()),
                       "demo", {(work() / "missing_target").string(), "does not exist"});
  EXPECT_FALSE(fs::exists(out / "summary.json"));
}

TEST(Robustness, BenchRejectsAnUnknownDevice) {
  expect_clean_failure(run("bench --quick --no-python --device tpu"), "bench", {"tpu"});
}
