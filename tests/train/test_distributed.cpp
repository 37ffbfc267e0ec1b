// c10d data parallel: two real processes (this test binary started twice with torchrun-style
// environment variables) train a small model on halves of each global batch with averaged
// gradients; the result must equal single-process training on the whole batch.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adam.h>
#include <torch/serialize.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "vcpclip/common/error.h"
#include "vcpclip/train/distributed.h"

using namespace vcpclip::train;
namespace fs = std::filesystem;

namespace {

// A 3-step Adam run of a Linear(5→2) + tanh on a fixed data set of 8 samples; `shard` picks the
// rows of each global batch of 4 this rank sees.
at::Tensor train_toy(Distributed& dist) {
  torch::manual_seed(7);
  torch::nn::Linear lin(5, 2);
  torch::optim::Adam opt(lin->parameters(), torch::optim::AdamOptions(1e-2).betas({0.5, 0.999}));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  auto x = at::randn({8, 5}, gen);
  auto y = at::randn({8, 2}, gen);
  const int64_t global = 4, local = global / dist.world_size();
  for (int step = 0; step < 3; ++step) {
    const int64_t start = (step % 2) * global + dist.rank() * local;
    auto xb = x.narrow(0, start, local), yb = y.narrow(0, start, local);
    opt.zero_grad();
    auto loss = (at::tanh(lin->forward(xb)) - yb).pow(2).mean();
    loss.backward();
    std::vector<at::Tensor> grads;
    for (auto& p : lin->parameters()) grads.push_back(p.grad());
    dist.allreduce_mean(grads);
    opt.step();
  }
  return at::cat({lin->weight.detach().reshape({-1}), lin->bias.detach().reshape({-1})});
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

}  // namespace

// Runs only inside a child process started by TwoProcessesEqualOneProcess.
TEST(DistributedWorker, Run) {
  const char* out = std::getenv("VCPCLIP_TEST_DIST_OUT");
  if (!out) GTEST_SKIP() << "worker of DataParallel.TwoProcessesEqualOneProcess";
  Distributed dist(dist_env_from_environment(), std::chrono::seconds(60));
  auto params = train_toy(dist);
  EXPECT_EQ(dist.allreduce_sum(dist.rank() + 1.0), 3.0);
  auto b = at::full({2}, static_cast<float>(dist.rank() + 5));
  dist.broadcast({b}, 0);
  EXPECT_EQ(b[1].item<float>(), 5.0f);
  dist.barrier();
  std::ofstream(std::string(out) + "/rank" + std::to_string(dist.rank()) + ".txt") << dist.describe();
  torch::save(params, std::string(out) + "/rank" + std::to_string(dist.rank()) + ".pt");
}

TEST(DataParallel, TwoProcessesEqualOneProcess) {
  if (std::getenv("VCPCLIP_TEST_DIST_OUT")) GTEST_SKIP() << "inside a worker process of DataParallel";
  if (!distributed_available()) GTEST_SKIP() << "built without Gloo";
  const fs::path dir = fs::temp_directory_path() / ("vcpclip_dist_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const int port = free_port();
  pid_t pids[2];
  for (int r = 0; r < 2; ++r) {
    pids[r] = ::fork();
    ASSERT_GE(pids[r], 0);
    if (pids[r] == 0) {
      ::setenv("VCPCLIP_TEST_DIST_OUT", dir.c_str(), 1);
      ::setenv("RANK", std::to_string(r).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(r).c_str(), 1);
      ::setenv("WORLD_SIZE", "2", 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      ::execl("/proc/self/exe", "test_distributed", "--gtest_filter=DistributedWorker.Run", (char*)nullptr);
      ::_exit(127);
    }
  }
  for (int r = 0; r < 2; ++r) {
    int status = 0;
    ::waitpid(pids[r], &status, 0);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "rank " << r << " failed, status " << status;
  }
  Distributed single(DistEnv{});
  auto expect = train_toy(single);
  for (int r = 0; r < 2; ++r) {
    at::Tensor got;
    torch::load(got, (dir / ("rank" + std::to_string(r) + ".pt")).string());
    EXPECT_TRUE(at::allclose(got, expect, 1e-6, 1e-6)) << "rank " << r << "\n" << got << "\n" << expect;
    std::ifstream in(dir / ("rank" + std::to_string(r) + ".txt"));
    std::string line;
    std::getline(in, line);
    EXPECT_EQ(line, "distributed: 2 processes, backend gloo (CPU training)");  // CPU training: Gloo
  }
  fs::remove_all(dir);
}

TEST(DistEnvTest, ReadsAndValidatesEnvironment) {
  if (std::getenv("VCPCLIP_TEST_DIST_OUT")) GTEST_SKIP() << "inside a worker process of DataParallel";
  for (auto v : {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"}) ::unsetenv(v);
  EXPECT_EQ(dist_env_from_environment().world_size, 1);
  ::setenv("WORLD_SIZE", "2", 1);
  ::setenv("RANK", "2", 1);
  try {
    dist_env_from_environment();
    FAIL();
  } catch (const vcpclip::Error& e) {
    EXPECT_STREQ(e.what(), "environment variable RANK='2': expected an integer in [0, 1]");
  }
  ::setenv("RANK", "1", 1);
  try {
    dist_env_from_environment();
    FAIL();
  } catch (const vcpclip::Error& e) {
    EXPECT_STREQ(e.what(), "WORLD_SIZE=2 but environment variable MASTER_ADDR is not set");
  }
  ::setenv("MASTER_ADDR", "127.0.0.1", 1);
  ::setenv("MASTER_PORT", "29511", 1);
  auto env = dist_env_from_environment();
  EXPECT_EQ(env.rank, 1);
  EXPECT_EQ(env.world_size, 2);
  EXPECT_EQ(env.local_rank, 1);
  EXPECT_EQ(env.master_port, 29511);
  for (auto v : {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"}) ::unsetenv(v);
}

// The backend selection (pure): NCCL only for CUDA training with a LibTorch that has it; Gloo stays
// the CPU backend. And the wiring: a Distributed on a CUDA device asks nccl_available().
TEST(DistBackend, NcclForCudaWhenBuiltGlooOtherwise) {
  if (std::getenv("VCPCLIP_TEST_DIST_OUT")) GTEST_SKIP();
  const c10::Device cpu(c10::kCPU), cuda(c10::kCUDA, 0), cuda1(c10::kCUDA, 1);
  for (bool built : {false, true}) {
    const auto c = choose_backend(cpu, built);
    EXPECT_EQ(c.backend, CommBackend::kGloo);
    EXPECT_EQ(c.reason, "CPU training");
  }
  for (const auto& d : {cuda, cuda1}) {
    const auto n = choose_backend(d, true);
    EXPECT_EQ(n.backend, CommBackend::kNccl);
    EXPECT_EQ(n.reason, "CUDA training and this LibTorch has NCCL");
    const auto g = choose_backend(d, false);
    EXPECT_EQ(g.backend, CommBackend::kGloo);
    EXPECT_EQ(g.reason, "CUDA training but this LibTorch has no NCCL: gradients go through host memory");
  }
  EXPECT_STREQ(to_string(CommBackend::kNccl), "nccl");
  EXPECT_STREQ(to_string(CommBackend::kGloo), "gloo");
  // World size 1 joins nothing, whatever the device; the choice is still made and reported.
  Distributed single(DistEnv{});
  EXPECT_EQ(single.backend().backend, CommBackend::kGloo);
  EXPECT_EQ(single.describe(), "distributed: single process (no process group)");
  Distributed on_cuda(DistEnv{}, std::chrono::seconds(60), cuda);
  EXPECT_EQ(on_cuda.backend().backend, nccl_available() ? CommBackend::kNccl : CommBackend::kGloo);
  EXPECT_EQ(on_cuda.backend().reason, choose_backend(cuda, nccl_available()).reason);
}
