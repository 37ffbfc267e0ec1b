// Data-parallel training end to end: this test binary started twice (RANK 0/1, WORLD_SIZE 2,
// 127.0.0.1) runs train::run_training on the synthetic set; the checkpoint rank 0 writes must
// equal single-process training with the same global batch (deterministic mode), and rank 1
// must not write anything.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "support/test_util.h"
#include "trainer_fixture.h"
#include "vcpclip/train/distributed.h"

using namespace vcpclip;
using namespace trainer_fixture;

namespace {

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

train::TrainRequest ddp_request(const std::string& data_root, const std::string& out) {
  auto r = request(data_root, out);
  r.train.deterministic = true;  // dropout masks are per process; augmentation follows the order
  r.model.prompt_dropout = 0.0;
  r.train.epochs = 2;
  r.train.batch_size = 4;
  r.runtime.log_level = "info";  // train.log then has the backend line (train/distributed.h)
  // Adam's first steps move each element by ≈ lr·sign(g): elements whose gradient is rounding
  // noise (two biases have analytically zero gradients) would differ by ±lr between any two
  // summation orders. A large eps makes the update ≈ lr·g/eps, linear in the gradient, so the
  // comparison checks the averaged gradients themselves through all 6 steps.
  r.train.eps = 1.0;
  r.train.lr = 1e-2;
  r.train.lr_temp = 1e-2;
  return r;
}

}  // namespace

TEST(DdpWorker, Run) {
  const char* data = std::getenv("VCPCLIP_TEST_DDP_DATA");
  const char* out = std::getenv("VCPCLIP_TEST_DDP_OUT");
  if (!data || !out) GTEST_SKIP() << "worker of DataParallelTraining.TwoRanksEqualOneProcess";
  auto s = train::run_training(ddp_request(data, out));
  EXPECT_EQ(s.steps, 6);
}

TEST(DataParallelTraining, TwoRanksEqualOneProcess) {
  if (std::getenv("VCPCLIP_TEST_DDP_DATA")) GTEST_SKIP() << "inside a worker process of DataParallelTraining";
  if (!train::distributed_available()) GTEST_SKIP() << "built without Gloo";
  TempDir tmp("trainer_ddp");
  const auto data_root = make_dataset(tmp.path / "data");  // 12 images: 3 global batches of 4
  const auto ddp_out = (tmp.path / "ddp").string();
  const int port = free_port();
  pid_t pids[2];
  for (int r = 0; r < 2; ++r) {
    pids[r] = ::fork();
    ASSERT_GE(pids[r], 0);
    if (pids[r] == 0) {
      ::setenv("VCPCLIP_TEST_DDP_DATA", data_root.c_str(), 1);
      ::setenv("VCPCLIP_TEST_DDP_OUT", ddp_out.c_str(), 1);
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", "2", 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      ::execl("/proc/self/exe", "test_trainer_distributed", "--gtest_filter=DdpWorker.Run", (char*)nullptr);
      ::_exit(127);
    }
  }
  for (int r = 0; r < 2; ++r) {
    int status = 0;
    ::waitpid(pids[r], &status, 0);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "rank " << r << " failed, status " << status;
  }
  auto single = train::run_training(ddp_request(data_root, (tmp.path / "single").string()));
  EXPECT_EQ(single.steps, 6);
  const auto ta = read_ckpt(ddp_out + "/last.pth"), tb = read_ckpt((tmp.path / "single" / "last.pth").string());
  for (const auto& [k, t] : ta) {
    const double dk = (t - tb.at(k)).abs().max().item<double>();
    if (dk > 1e-6) std::printf("  %s: %.3g\n", k.c_str(), dk);
  }
  const double d = max_diff(ta, tb);
  std::printf("max |2-rank - 1-process| over all trainable tensors after 6 steps: %.3g\n", d);
  EXPECT_LE(d, 1e-6);
  // The backend choice is in rank 0's train.log (CPU training: Gloo), the single process's says so too.
  const auto log = vcpclip::testing::slurp(ddp_out + "/train.log");
  EXPECT_NE(log.find("distributed: 2 processes, backend gloo (CPU training)"), std::string::npos) << log;
  const auto single_log = vcpclip::testing::slurp((tmp.path / "single" / "train.log").string());
  EXPECT_NE(single_log.find("distributed: single process (no process group)"), std::string::npos) << single_log;
  // ... and training did move the tensors by far more than that.
  EXPECT_GT(max_diff(read_ckpt(ddp_out + "/checkpoint_epoch_1.pth"), ta), 1e-4);
  // The per-step losses rank 0 logged are those of the global batch.
  std::ifstream a(ddp_out + "/steps.jsonl"), b(tmp.path / "single" / "steps.jsonl");
  std::string la, lb;
  int lines = 0;
  while (std::getline(a, la) && std::getline(b, lb)) {
    auto ja = nlohmann::json::parse(la), jb = nlohmann::json::parse(lb);
    EXPECT_NEAR(ja.at("loss").get<double>(), jb.at("loss").get<double>(), 1e-4) << "step " << ja.at("step");
    ++lines;
  }
  EXPECT_EQ(lines, 6);
}
