// resume.pt read/write, see include/vcpclip/train/resume.h.
#include "vcpclip/train/resume.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <torch/cuda.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>

#include <filesystem>
#include <map>
#include <mutex>

#include "vcpclip/common/error.h"
#include "vcpclip/io/atomic_file.h"

namespace vcpclip::train {

namespace {

constexpr int64_t kFormat = 2;

at::Tensor i64(int64_t v) { return at::full({1}, v, at::TensorOptions().dtype(at::kLong)); }
at::Tensor f64(double v) { return at::full({1}, v, at::TensorOptions().dtype(at::kDouble)); }

at::Tensor read_scalar(torch::serialize::InputArchive& ar, const std::string& key, const std::string& path) {
  c10::IValue v;
  VCP_CHECK(ar.try_read(key, v) && v.isTensor() && v.toTensor().numel() == 1, "resume state ", path,
            ": missing entry '", key, "' (not a file written by vcpclip train?)");
  return v.toTensor();
}
int64_t read_i64(torch::serialize::InputArchive& ar, const std::string& key, const std::string& path) {
  return read_scalar(ar, key, path).item<int64_t>();
}
double read_f64(torch::serialize::InputArchive& ar, const std::string& key, const std::string& path) {
  return read_scalar(ar, key, path).item<double>();
}

torch::serialize::InputArchive open_archive(const std::string& path) {
  std::error_code ec;
  VCP_CHECK(std::filesystem::exists(path, ec), "resume state not found: ", path,
            " (nothing to resume: run without --resume, or point train.out_dir at the earlier run)");
  torch::serialize::InputArchive ar;
  try {
    ar.load_from(path);
  } catch (const c10::Error& e) {
    fail("cannot read resume state ", path, ": ", e.what_without_backtrace());
  }
  return ar;
}

TrainCounters read_counters(torch::serialize::InputArchive& ar, const std::string& path) {
  const int64_t format = read_i64(ar, "format", path);
  VCP_CHECK(format == 1 || format == kFormat, "resume state ", path, ": format ", format,
            " is not supported (expected 1 or ", kFormat, ")");
  TrainCounters c;
  c.epoch = read_i64(ar, "epoch", path);
  c.batch_in_epoch = read_i64(ar, "batch_in_epoch", path);
  c.step = read_i64(ar, "step", path);
  c.seed = static_cast<uint64_t>(read_i64(ar, "seed", path));
  c.world_size = read_i64(ar, "world_size", path);
  c.global_batch = read_i64(ar, "global_batch", path);
  if (format >= 2) {
    c.sums.loss = read_f64(ar, "sums/loss", path);
    c.sums.loss_raw = read_f64(ar, "sums/loss_raw", path);
    c.sums.loss_post = read_f64(ar, "sums/loss_post", path);
    c.sums.batches = read_i64(ar, "sums/batches", path);
    c.sums.images = read_i64(ar, "sums/images", path);
    c.sums.seconds = read_f64(ar, "sums/seconds", path);
  }
  VCP_CHECK(c.epoch >= 0 && c.batch_in_epoch >= 0 && c.step >= 0 && c.world_size >= 1, "resume state ", path,
            ": counters out of range (epoch ", c.epoch, ", batch ", c.batch_in_epoch, ", step ", c.step, ")");
  return c;
}

}  // namespace

void save_resume_state(const std::string& path, const TrainCounters& c, const NamedParams& params,
                       torch::optim::Optimizer& optimizer) {
  torch::serialize::OutputArchive ar;
  ar.write("format", i64(kFormat));
  ar.write("epoch", i64(c.epoch));
  ar.write("batch_in_epoch", i64(c.batch_in_epoch));
  ar.write("step", i64(c.step));
  ar.write("seed", i64(static_cast<int64_t>(c.seed)));
  ar.write("world_size", i64(c.world_size));
  ar.write("global_batch", i64(c.global_batch));
  ar.write("sums/loss", f64(c.sums.loss));
  ar.write("sums/loss_raw", f64(c.sums.loss_raw));
  ar.write("sums/loss_post", f64(c.sums.loss_post));
  ar.write("sums/batches", i64(c.sums.batches));
  ar.write("sums/images", i64(c.sums.images));
  ar.write("sums/seconds", f64(c.sums.seconds));
  {
    at::Generator gen = at::globalContext().defaultGenerator(c10::Device(c10::kCPU));
    std::lock_guard<std::mutex> lock(gen.mutex());
    ar.write("rng/cpu", gen.get_state());
  }
  if (torch::cuda::is_available()) {
    const int64_t n = static_cast<int64_t>(torch::cuda::device_count());
    ar.write("rng/cuda_count", i64(n));
    for (int64_t i = 0; i < n; ++i) {
      at::Generator gen =
          at::globalContext().defaultGenerator(c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(i)));
      std::lock_guard<std::mutex> lock(gen.mutex());
      ar.write("rng/cuda/" + std::to_string(i), gen.get_state());
    }
  }
  ar.write("param_count", i64(static_cast<int64_t>(params.size())));
  for (const auto& [name, t] : params) ar.write("params/" + name, t.detach().to(at::kCPU).clone());
  torch::serialize::OutputArchive opt_ar;
  optimizer.save(opt_ar);
  ar.write("optimizer", opt_ar);

  // LibTorch's zip writer must not see an exception (it would write the end of the archive again
  // from its destructor): the first write error is kept and rethrown after save_to returns.
  io::AtomicFileWriter out(path);
  std::exception_ptr error;
  ar.save_to([&out, &error](const void* data, size_t n) -> size_t {
    if (!error) {
      try {
        out.write(data, n);
      } catch (...) {
        error = std::current_exception();
      }
    }
    return n;
  });
  if (error) std::rethrow_exception(error);
  out.commit();
}

TrainCounters peek_resume_state(const std::string& path) {
  auto ar = open_archive(path);
  return read_counters(ar, path);
}

TrainCounters load_resume_state(const std::string& path, const NamedParams& params,
                                torch::optim::Optimizer& optimizer) {
  auto ar = open_archive(path);
  TrainCounters c = read_counters(ar, path);
  const int64_t count = read_i64(ar, "param_count", path);
  VCP_CHECK(count == static_cast<int64_t>(params.size()), "resume state ", path, " holds ", count,
            " trainable tensors but the model has ", params.size(), " (different model options?)");
  {
    at::NoGradGuard no_grad;
    for (const auto& [name, t] : params) {
      c10::IValue v;
      VCP_CHECK(ar.try_read("params/" + name, v) && v.isTensor(), "resume state ", path, ": missing tensor '", name,
                "' (different model options?)");
      const at::Tensor src = v.toTensor();
      VCP_CHECK(src.sizes() == t.sizes(), "resume state ", path, ": tensor '", name, "' has shape ", src.sizes(),
                " but the model expects ", t.sizes());
      t.detach().copy_(src);
    }
  }
  torch::serialize::InputArchive opt_ar;
  VCP_CHECK(ar.try_read("optimizer", opt_ar), "resume state ", path, ": missing optimizer state");
  try {
    optimizer.load(opt_ar);
  } catch (const c10::Error& e) {
    fail("resume state ", path, ": optimizer state does not match this model: ", e.what_without_backtrace());
  }
  {
    c10::IValue v;
    VCP_CHECK(ar.try_read("rng/cpu", v) && v.isTensor(), "resume state ", path, ": missing entry 'rng/cpu'");
    at::Generator gen = at::globalContext().defaultGenerator(c10::Device(c10::kCPU));
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(v.toTensor());
  }
  c10::IValue nv;
  if (torch::cuda::is_available() && ar.try_read("rng/cuda_count", nv)) {
    const int64_t n = std::min<int64_t>(nv.toTensor().item<int64_t>(), torch::cuda::device_count());
    for (int64_t i = 0; i < n; ++i) {
      c10::IValue v;
      if (!ar.try_read("rng/cuda/" + std::to_string(i), v)) continue;
      at::Generator gen =
          at::globalContext().defaultGenerator(c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(i)));
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(v.toTensor());
    }
  }
  return c;
}

}  // namespace vcpclip::train
