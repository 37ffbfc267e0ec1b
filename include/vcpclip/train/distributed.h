#pragma once
// Multi-process data parallel training over LibTorch's c10d (ProcessGroupGloo + TCPStore).
//
// Processes are started like torchrun: each gets RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT and
// LOCAL_RANK in its environment (e.g. two shells, or a launcher). Rank 0 hosts the TCPStore on
// MASTER_PORT. Every rank computes gradients on its shard of the global batch; gradients are
// all-reduced and averaged, so all ranks take the same optimizer step. Only rank 0 writes files.
//
// The backend (choose_backend): training on CUDA with a LibTorch that has NCCL (every CUDA build;
// VCPCLIP_HAVE_NCCL, found by CMake next to it) runs the collectives on the GPU with
// ProcessGroupNCCL; otherwise they run on CPU tensors through Gloo, CUDA tensors staged through host
// memory (Debian's CPU-only LibTorch has no NCCL). The choice is logged (train.log). Without the
// chosen backend at build time, WORLD_SIZE > 1 is a vcpclip::Error.
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace vcpclip::train {

/// The torchrun-style environment of this process.
struct DistEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
};

/// Reads RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK. All unset → single process.
/// WORLD_SIZE > 1 needs RANK (0 ≤ RANK < WORLD_SIZE), MASTER_ADDR and MASTER_PORT; a malformed or
/// missing value is a vcpclip::Error naming the variable.
DistEnv dist_env_from_environment();

/// True when this binary was built with c10d Gloo support.
bool distributed_available();
/// True when this binary was built with ProcessGroupNCCL (a CUDA LibTorch with NCCL).
bool nccl_available();

/// The c10d backend of a process group.
enum class CommBackend { kGloo, kNccl };
const char* to_string(CommBackend b);

/// Which backend and why.
struct BackendChoice {
  CommBackend backend = CommBackend::kGloo;
  std::string reason;
};
/// The pure selection: NCCL when `device` is CUDA and `nccl_built`; otherwise Gloo (the CPU backend).
/// Reasons: "CUDA training and this LibTorch has NCCL", "CPU training", "CUDA training but this
/// LibTorch has no NCCL: gradients go through host memory".
BackendChoice choose_backend(const c10::Device& device, bool nccl_built);

/// A process group, or the trivial one (world size 1: every collective is a no-op).
class Distributed {
 public:
  /// Joins the group described by env (rendezvous through the TCPStore; waits up to `timeout`
  /// for all ranks; collectives time out after the same time: rank 0 validates alone while the
  /// others wait at a barrier). World size 1 creates nothing. `device` is where training runs: it
  /// chooses the backend (choose_backend(device, nccl_available())).
  explicit Distributed(const DistEnv& env, std::chrono::seconds timeout = std::chrono::seconds(3600),
                       c10::Device device = c10::Device(c10::kCPU));
  ~Distributed();
  Distributed(const Distributed&) = delete;
  Distributed& operator=(const Distributed&) = delete;

  int rank() const { return env_.rank; }
  int world_size() const { return env_.world_size; }
  bool is_main() const { return env_.rank == 0; }
  const DistEnv& env() const { return env_; }
  const BackendChoice& backend() const { return backend_; }
  /// One line for the log: "distributed: 2 processes, backend nccl (CUDA training and this LibTorch
  /// has NCCL)", or "distributed: single process (no process group)".
  std::string describe() const;

  /// Averages the tensors over all ranks in place (one flattened all-reduce per dtype/device).
  /// Undefined tensors (parameters without a gradient) must be undefined on every rank alike.
  void allreduce_mean(const std::vector<at::Tensor>& tensors);
  /// Sum of a number over all ranks.
  double allreduce_sum(double value);
  /// Element-wise sums over all ranks (one collective).
  std::vector<double> allreduce_sum(const std::vector<double>& values);
  /// Copies rank `root`'s tensors into every rank's tensors in place.
  void broadcast(const std::vector<at::Tensor>& tensors, int root = 0);
  /// Waits for all ranks.
  void barrier();

 private:
  struct Impl;
  DistEnv env_;
  BackendChoice backend_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vcpclip::train
