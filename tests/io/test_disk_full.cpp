// A full disk (RLIMIT_FSIZE with SIGXFSZ ignored) while writing a checkpoint (last.pth), a map
// (.npy) or any atomically written file: a vcpclip::Error naming the file, the previous file
// byte-identical and loadable, no temporary file left; stale temporaries of killed writers are
// cleaned up.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "support/file_size_limit.h"
#include "support/test_util.h"
#include "vcpclip/io/atomic_file.h"
#include "vcpclip/io/checkpoint.h"
#include "vcpclip/io/npy.h"

using vcpclip::testing::error_of;
using vcpclip::testing::FileSizeLimit;
using vcpclip::testing::slurp;
namespace fs = std::filesystem;
namespace io = vcpclip::io;

namespace {

struct DiskFull : ::testing::Test {
  fs::path dir;
  void SetUp() override {
    dir = fs::temp_directory_path() / ("vcpclip_disk_full_" + std::to_string(::getpid()));
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  std::vector<std::string> files() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
};

io::ReferenceCheckpoint checkpoint(float value, int64_t n) {
  io::ReferenceCheckpoint ck;
  ck.modules.push_back({"New_Lan_Embed", {{"prompt_query", at::full({n}, value)}}});
  ck.parameters.push_back({"prompt_embeddings", at::full({4, 3}, value)});
  return ck;
}

/// "cannot write PATH (temporary file PATH.tmp.<pid>.<n>): File too large"
void expect_file_too_large(const std::string& error, const std::string& path) {
  EXPECT_EQ(error.rfind("cannot write " + path + " (temporary file " + path + ".tmp.", 0), 0u) << error;
  EXPECT_NE(error.find("): File too large"), std::string::npos) << error;
}

}  // namespace

TEST_F(DiskFull, CheckpointKeepsThePreviousOne) {
  const std::string path = (dir / "last.pth").string();
  io::write_reference_checkpoint(path, checkpoint(1.0f, 16));
  const std::string before = slurp(path);
  std::string error;
  {
    FileSizeLimit limit(before.size() + 1024);  // the new checkpoint is ~64 KB larger
    error = error_of([&] { io::write_reference_checkpoint(path, checkpoint(2.0f, 16384)); });
  }
  expect_file_too_large(error, path);
  EXPECT_EQ(slurp(path), before);
  EXPECT_EQ(io::read_reference_checkpoint(path).flatten().at("prompt_embeddings")[0][0].item<float>(), 1.0f);
  EXPECT_EQ(files(), std::vector<std::string>{"last.pth"});
}

TEST_F(DiskFull, NpyMapKeepsThePreviousOne) {
  const std::string path = (dir / "000.npy").string();
  io::write_npy(path, at::full({4, 4}, 0.5f));
  const std::string before = slurp(path);
  std::string error;
  {
    FileSizeLimit limit(1024);
    error = error_of([&] { io::write_npy(path, at::zeros({64, 64})); });
  }
  expect_file_too_large(error, path);
  EXPECT_EQ(slurp(path), before);
  EXPECT_TRUE(at::equal(io::read_npy(path), at::full({4, 4}, 0.5f)));
  EXPECT_EQ(files(), std::vector<std::string>{"000.npy"});
}

TEST_F(DiskFull, NewFileIsNotCreatedAtAll) {
  const std::string path = (dir / "metrics.json").string();
  std::string error;
  {
    FileSizeLimit limit(10);
    error = error_of([&] { io::write_file_atomically(path, std::string(100, 'x')); });
  }
  expect_file_too_large(error, path);
  EXPECT_TRUE(files().empty());
}

TEST_F(DiskFull, StaleTemporariesOfKilledWritersAreRemoved) {
  // A writer killed with SIGKILL leaves its temporary file; a live writer's stays.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);  // this pid no longer runs
  const std::string dead = (dir / ("resume.pt.tmp." + std::to_string(child) + ".0")).string();
  const std::string alive = (dir / ("last.pth.tmp." + std::to_string(::getppid()) + ".3")).string();
  io::write_file_atomically((dir / "resume.pt").string(), "state");
  for (const auto& p : {dead, alive}) std::ofstream(p) << "partial";
  std::ofstream(dir / "notes.tmp.txt") << "not ours";
  EXPECT_EQ(io::remove_stale_temp_files(dir.string()), std::vector<std::string>{dead});
  EXPECT_EQ(files(), (std::vector<std::string>{fs::path(alive).filename().string(), "notes.tmp.txt", "resume.pt"}));
}

TEST_F(DiskFull, UncreatableDirectoryIsAnErrorNamingIt) {
  io::write_file_atomically((dir / "taken").string(), "a file where a directory should go");
  const std::string target = (dir / "taken" / "maps").string();
  EXPECT_EQ(error_of([&] { io::make_directories(target); }),
            "cannot create the directory " + target + ": Not a directory");
  EXPECT_NO_THROW(io::make_directories((dir / "a" / "b").string()));
  EXPECT_TRUE(fs::is_directory(dir / "a" / "b"));
}
