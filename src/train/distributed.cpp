// c10d process group wrapper, see include/vcpclip/train/distributed.h.
#include "vcpclip/train/distributed.h"

#include <ATen/ATen.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdlib>

#include "vcpclip/common/error.h"

#if defined(VCPCLIP_HAVE_GLOO) || defined(VCPCLIP_HAVE_NCCL)
#define VCPCLIP_HAVE_C10D 1
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#ifdef VCPCLIP_HAVE_GLOO
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef VCPCLIP_HAVE_NCCL  // a CUDA LibTorch with NCCL (CMakeLists.txt); its header is guarded by USE_C10D_NCCL
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace vcpclip::train {

namespace {

const char* env_or_null(const char* name) {
  const char* v = std::getenv(name);
  return (v && *v) ? v : nullptr;
}

int parse_int_env(const char* name, const char* value, int lo, int hi) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(value, &end, 10);
  VCP_CHECK(end != value && *end == '\0' && errno == 0 && v >= lo && v <= hi, "environment variable ", name, "='",
            value, "': expected an integer in [", lo, ", ", hi, "]");
  return static_cast<int>(v);
}

}  // namespace

DistEnv dist_env_from_environment() {
  DistEnv env;
  const char* ws = env_or_null("WORLD_SIZE");
  const char* rank = env_or_null("RANK");
  if (!ws && !rank) return env;
  VCP_CHECK(ws,
            "environment variable RANK is set but WORLD_SIZE is not (start processes like torchrun: RANK, "
            "WORLD_SIZE, MASTER_ADDR, MASTER_PORT)");
  env.world_size = parse_int_env("WORLD_SIZE", ws, 1, 1 << 16);
  if (env.world_size == 1) {
    if (rank) parse_int_env("RANK", rank, 0, 0);
    return env;
  }
  VCP_CHECK(rank, "WORLD_SIZE=", env.world_size, " but environment variable RANK is not set");
  env.rank = parse_int_env("RANK", rank, 0, env.world_size - 1);
  const char* local = env_or_null("LOCAL_RANK");
  env.local_rank = local ? parse_int_env("LOCAL_RANK", local, 0, 1 << 16) : env.rank;
  const char* addr = env_or_null("MASTER_ADDR");
  const char* port = env_or_null("MASTER_PORT");
  VCP_CHECK(addr, "WORLD_SIZE=", env.world_size, " but environment variable MASTER_ADDR is not set");
  VCP_CHECK(port, "WORLD_SIZE=", env.world_size, " but environment variable MASTER_PORT is not set");
  env.master_addr = addr;
  env.master_port = parse_int_env("MASTER_PORT", port, 1, 65535);
  return env;
}

bool distributed_available() {
#ifdef VCPCLIP_HAVE_GLOO
  return true;
#else
  return false;
#endif
}

bool nccl_available() {
#ifdef VCPCLIP_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

const char* to_string(CommBackend b) { return b == CommBackend::kNccl ? "nccl" : "gloo"; }

BackendChoice choose_backend(const c10::Device& device, bool nccl_built) {
  if (!device.is_cuda()) return {CommBackend::kGloo, "CPU training"};
  if (nccl_built) return {CommBackend::kNccl, "CUDA training and this LibTorch has NCCL"};
  return {CommBackend::kGloo, "CUDA training but this LibTorch has no NCCL: gradients go through host memory"};
}

struct Distributed::Impl {
  c10::Device device{c10::kCPU};  ///< where the collectives' tensors live (CPU for Gloo)
#ifdef VCPCLIP_HAVE_C10D
  c10::intrusive_ptr<c10d::Store> store;
#endif
#ifdef VCPCLIP_HAVE_GLOO
  c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo;
#endif
#ifdef VCPCLIP_HAVE_NCCL
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl;
#endif
  /// f(process group) on the group this process joined.
  template <typename F>
  auto run(F f) {
#if defined(VCPCLIP_HAVE_NCCL) && defined(VCPCLIP_HAVE_GLOO)
    if (nccl) return f(nccl);
    return f(gloo);
#elif defined(VCPCLIP_HAVE_NCCL)
    return f(nccl);
#elif defined(VCPCLIP_HAVE_GLOO)
    return f(gloo);
#endif
  }
#ifdef VCPCLIP_HAVE_C10D
  /// Joins the group of `backend` (one the build has: the constructor checked).
  void join(const DistEnv& env, CommBackend backend, std::chrono::milliseconds timeout);
#endif
};

#ifdef VCPCLIP_HAVE_C10D
void Distributed::Impl::join(const DistEnv& env, CommBackend backend, std::chrono::milliseconds timeout) {
  auto& impl = *this;
  c10d::TCPStoreOptions sopts;
  sopts.port = static_cast<uint16_t>(env.master_port);
  sopts.isServer = env.rank == 0;
  sopts.numWorkers = static_cast<size_t>(env.world_size);
  sopts.waitWorkers = true;
  sopts.timeout = timeout;
  impl.store = c10::make_intrusive<c10d::TCPStore>(env.master_addr, sopts);
#ifdef VCPCLIP_HAVE_NCCL
  if (backend == CommBackend::kNccl) {
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = timeout;
    impl.nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(impl.store, env.rank, env.world_size, opts);
    return;
  }
#endif
#ifdef VCPCLIP_HAVE_GLOO
  auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
  opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(env.master_addr));
  impl.gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(impl.store, env.rank, env.world_size, opts);
#endif
}
#endif

std::string Distributed::describe() const {
  if (env_.world_size <= 1) return "distributed: single process (no process group)";
  return msg("distributed: ", env_.world_size, " processes, backend ", to_string(backend_.backend), " (",
             backend_.reason, ")");
}

Distributed::Distributed(const DistEnv& env, std::chrono::seconds timeout, c10::Device device)
    : env_(env), backend_(choose_backend(device, nccl_available())) {
  if (env.world_size <= 1) return;
  VCP_CHECK(backend_.backend == CommBackend::kNccl || distributed_available(), "WORLD_SIZE=", env.world_size,
            ": this vcpclip was built without c10d/Gloo support (install libgloo-dev "
            "and reconfigure), so only single-process training is available");
#ifdef VCPCLIP_HAVE_C10D
  impl_ = std::make_unique<Impl>();
  impl_->device = backend_.backend == CommBackend::kNccl ? device : c10::Device(c10::kCPU);
  try {
    impl_->join(env, backend_.backend, std::chrono::duration_cast<std::chrono::milliseconds>(timeout));
  } catch (const c10::Error& e) {
    fail("rank ", env.rank, "/", env.world_size, ": cannot join the process group at ", env.master_addr, ":",
         env.master_port, ": ", e.what_without_backtrace());
  } catch (const std::exception& e) {
    fail("rank ", env.rank, "/", env.world_size, ": cannot join the process group at ", env.master_addr, ":",
         env.master_port, ": ", e.what());
  }
  spdlog::info("distributed: rank {}/{} joined ({}, {}:{}; {})", env.rank, env.world_size, to_string(backend_.backend),
               env.master_addr, env.master_port, backend_.reason);
#endif
}

Distributed::~Distributed() = default;

#ifdef VCPCLIP_HAVE_C10D
namespace {
void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
  try {
    work->wait();
  } catch (const std::exception& e) {
    fail("distributed ", what, " failed (another rank died or timed out?): ", e.what());
  }
}
}  // namespace
#endif

void Distributed::allreduce_mean(const std::vector<at::Tensor>& tensors) {
  if (env_.world_size <= 1) return;
#ifdef VCPCLIP_HAVE_C10D
  std::vector<at::Tensor> defined;
  for (const auto& t : tensors)
    if (t.defined()) defined.push_back(t);
  if (defined.empty()) return;
  // One flat buffer on the backend's device (a single collective instead of one per tensor).
  const auto dtype = defined.front().scalar_type();
  std::vector<at::Tensor> flat_parts;
  flat_parts.reserve(defined.size());
  for (const auto& t : defined) {
    VCP_CHECK(t.scalar_type() == dtype, "allreduce_mean: all tensors must have one dtype, found ", dtype, " and ",
              t.scalar_type());
    flat_parts.push_back(t.detach().to(impl_->device).reshape({-1}));
  }
  std::vector<at::Tensor> buf{at::cat(flat_parts)};
  wait(impl_->run([&](auto& pg) { return pg->allreduce(buf); }), "all-reduce");
  buf[0].div_(static_cast<double>(env_.world_size));
  int64_t off = 0;
  for (auto& t : defined) {
    const int64_t n = t.numel();
    t.detach().copy_(buf[0].narrow(0, off, n).view(t.sizes()));
    off += n;
  }
#endif
}

double Distributed::allreduce_sum(double value) { return allreduce_sum(std::vector<double>{value})[0]; }

std::vector<double> Distributed::allreduce_sum(const std::vector<double>& values) {
  if (env_.world_size <= 1 || values.empty()) return values;
#ifdef VCPCLIP_HAVE_C10D
  std::vector<at::Tensor> buf{at::tensor(values, at::TensorOptions().dtype(at::kDouble)).to(impl_->device)};
  wait(impl_->run([&](auto& pg) { return pg->allreduce(buf); }), "all-reduce");
  auto t = buf[0].to(at::kCPU).contiguous();
  return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
#else
  return values;
#endif
}

void Distributed::broadcast(const std::vector<at::Tensor>& tensors, int root) {
  if (env_.world_size <= 1) return;
#ifdef VCPCLIP_HAVE_C10D
  for (const auto& t : tensors) {
    if (!t.defined()) continue;
    std::vector<at::Tensor> buf{t.detach().to(impl_->device).contiguous().clone()};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    wait(impl_->run([&](auto& pg) { return pg->broadcast(buf, o); }), "broadcast");
    t.detach().copy_(buf[0]);
  }
#endif
}

void Distributed::barrier() {
  if (env_.world_size <= 1) return;
#ifdef VCPCLIP_HAVE_C10D
  wait(impl_->run([&](auto& pg) { return pg->barrier(); }), "barrier");
#endif
}

}  // namespace vcpclip::train
