// The overlapped batch loop of predict and eval (app/batch_pipeline.h).
#include "vcpclip/app/batch_pipeline.h"

#include <c10/core/Event.h>
#include <c10/core/impl/VirtualGuardImpl.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "vcpclip/common/error.h"

namespace vcpclip::app {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

c10::Stream current_stream(const c10::Device& device) {
  return c10::impl::VirtualGuardImpl(device.type()).getStream(device);
}

/// An event recorded now on the device's current stream.
std::unique_ptr<c10::Event> record_event(const c10::Device& device) {
  auto e = std::make_unique<c10::Event>(device.type());
  e->record(current_stream(device));
  return e;
}

/// Blocks until `e` has completed. c10::Event has no synchronize() in LibTorch 1.13: polled.
void wait_for(const c10::Event& e) {
  while (!e.query()) std::this_thread::sleep_for(std::chrono::microseconds(20));
}

double writer_delay_from_env() {
  const char* env = std::getenv("VCPCLIP_TEST_WRITER_DELAY_MS");
  if (!env || !*env) return 0;
  char* end = nullptr;
  const double ms = std::strtod(env, &end);
  VCP_CHECK(end && *end == '\0' && ms >= 0, "VCPCLIP_TEST_WRITER_DELAY_MS='", env,
            "': expected a number of milliseconds >= 0");
  return ms / 1e3;
}

/// The host copy of one device tensor: non-blocking into pinned memory on CUDA, as it is elsewhere.
at::Tensor host_copy_async(const at::Tensor& t) {
  if (!t.defined() || !t.is_cuda()) return t;
  auto h = at::empty(t.sizes(), t.options().device(at::kCPU).pinned_memory(true));
  h.copy_(t, /*non_blocking=*/true);
  return h;
}

}  // namespace

/// A batch on its way to the writer, or (mark) the start of a batch's device work.
struct BatchPipeline::Job {
  bool mark = false;
  std::unique_ptr<c10::Event> event;  ///< CUDA: the batch's work started (mark) or its copies ended
  std::vector<at::Tensor> host;
  Write write;
};

std::string busy_share_line(const std::optional<double>& share) {
  if (!share) return "GPU busy share: n/a (not on CUDA)";
  char buf[128];
  std::snprintf(buf, sizeof buf, "GPU busy share: %.1f %% of the batch loop's wall time (device work outstanding)",
                100.0 * *share);
  return buf;
}

at::Tensor to_device_async(const at::Tensor& host, const c10::Device& device) {
  if (!device.is_cuda()) return host.to(device);
  return host.pin_memory().to(device, /*non_blocking=*/true);
}

BatchPipeline::BatchPipeline(const c10::Device& device, PipelineOptions options, StageTimer* timer)
    : device_(device), options_(options), timer_(timer), writer_delay_s_(writer_delay_from_env()) {
  VCP_CHECK(options_.depth >= 1, "batch pipeline: expected a depth >= 1, found ", options_.depth);
  if (!options_.overlap) return;
  watcher_ = std::thread([this] { watch(); });
  writer_ = std::thread([this] { write_loop(); });
}

BatchPipeline::~BatchPipeline() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  if (watcher_.joinable()) watcher_.join();
  if (writer_.joinable()) writer_.join();
}

void BatchPipeline::begin_batch() {
  const auto now = Clock::now();
  std::lock_guard<std::mutex> lock(mutex_);
  if (!first_begin_) first_begin_ = now;
  if (!device_.is_cuda()) return;
  if (!options_.overlap) {
    serial_begin_ = now;
    return;
  }
  auto job = std::make_shared<Job>();
  job->mark = true;
  job->event = record_event(device_);
  to_watch_.push_back(std::move(job));
  cv_.notify_all();
}

void BatchPipeline::rethrow_if_failed() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (error_) std::rethrow_exception(error_);
}

void BatchPipeline::submit(std::vector<at::Tensor> device_tensors, Write write) {
  if (!options_.overlap) {  // the serial loop: copy, wait, write
    for (auto& t : device_tensors)
      if (t.defined()) t = t.to(at::kCPU);
    if (device_.is_cuda()) busy_seconds_ += seconds_between(serial_begin_, Clock::now());
    if (writer_delay_s_ > 0) std::this_thread::sleep_for(std::chrono::duration<double>(writer_delay_s_));
    auto t = StageTimer::scope(timer_, "writing");
    write(device_tensors);
    return;
  }
  {
    const auto t0 = Clock::now();
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return pending_ < options_.depth || error_; });
    if (timer_) timer_->add("waiting for the writer", seconds_between(t0, Clock::now()));
    if (error_) std::rethrow_exception(error_);
  }
  auto job = std::make_shared<Job>();
  job->host.reserve(device_tensors.size());
  for (const auto& t : device_tensors) job->host.push_back(host_copy_async(t));
  if (device_.is_cuda()) job->event = record_event(device_);
  job->write = std::move(write);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++pending_;
    to_watch_.push_back(std::move(job));
  }
  cv_.notify_all();
}

void BatchPipeline::watch() {
  std::optional<Clock::time_point> started, last_end;
  while (true) {
    std::shared_ptr<Job> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || !to_watch_.empty(); });
      if (stop_) return;
      job = std::move(to_watch_.front());
      to_watch_.pop_front();
    }
    if (job->event) wait_for(*job->event);
    const auto now = Clock::now();
    if (job->mark) {
      started = now;
      continue;
    }
    if (job->event && started) {  // busy from the later of its start and the previous batch's end
      const auto from = last_end ? std::max(*started, *last_end) : *started;
      std::lock_guard<std::mutex> lock(mutex_);
      busy_seconds_ += std::max(0.0, seconds_between(from, now));
    }
    last_end = now;
    job->event.reset();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      to_write_.push_back(std::move(job));
    }
    cv_.notify_all();
  }
}

void BatchPipeline::write_loop() {
  while (true) {
    std::shared_ptr<Job> job;
    bool skip = false;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || !to_write_.empty(); });
      if (stop_) return;  // finish() was not called: pending writes are dropped
      job = std::move(to_write_.front());
      to_write_.pop_front();
      skip = static_cast<bool>(error_);
    }
    if (!skip) {
      try {
        if (writer_delay_s_ > 0) std::this_thread::sleep_for(std::chrono::duration<double>(writer_delay_s_));
        const auto t0 = Clock::now();
        job->write(job->host);
        if (timer_) timer_->add("writing (writer thread)", seconds_between(t0, Clock::now()));
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
    }
    job.reset();  // the host tensors go before the next batch is admitted
    {
      std::lock_guard<std::mutex> lock(mutex_);
      --pending_;
    }
    cv_.notify_all();
  }
}

void BatchPipeline::finish() {
  std::unique_lock<std::mutex> lock(mutex_);
  cv_.wait(lock, [&] { return pending_ == 0; });
  if (first_begin_) wall_seconds_ = seconds_between(*first_begin_, Clock::now());
  if (error_) std::rethrow_exception(error_);
}

std::optional<double> BatchPipeline::device_busy_share() const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!device_.is_cuda() || wall_seconds_ <= 0) return std::nullopt;
  return std::min(1.0, busy_seconds_ / wall_seconds_);
}

}  // namespace vcpclip::app
