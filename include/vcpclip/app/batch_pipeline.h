#pragma once
// The overlapped batch loop shared by `predict` and `eval` (docs/design.md §6, "Pipelined inference").
//
// The main thread takes decoded batches (loader threads), copies them to the device
// (to_device_async: pinned memory and a non-blocking copy on CUDA), runs the forward pass and the
// post-processing on the device, and hands the results to submit(). submit() queues their
// device-to-host copy (non-blocking, into pinned memory on CUDA) and returns: the next batch's
// forward pass starts while this one is copied back and written. A watcher thread waits for each
// batch's device work to finish (CUDA events, polled) and passes it on; one writer thread runs the
// writes in submission order, so the outputs and their order are those of a serial run. At most
// `depth` batches are queued between the forward pass and the writer: submit() waits beyond that.
//
//   BatchPipeline pipe(device, {.overlap = true}, &timer);
//   for (each batch) {
//     pipe.begin_batch();                                  // marks the start of its device work
//     auto x = to_device_async(stacked_inputs, device);
//     ... forward, post-processing on the device ...
//     pipe.submit({maps, scores}, [&](std::vector<at::Tensor>& host) { ... write ... });
//   }
//   pipe.finish();                                         // waits; rethrows a writer's error
//
// overlap = false runs each write inline before the next batch (the serial loop, for comparison).
// The device busy share (CUDA): the part of the wall time, from the first begin_batch() to finish(),
// during which a batch's device work was outstanding, measured from the host by the watcher.
// Test hook: VCPCLIP_TEST_WRITER_DELAY_MS=N makes the writer sleep N ms before each write.
#include <ATen/ATen.h>
#include <c10/core/Device.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "vcpclip/common/stage_timer.h"

namespace vcpclip::app {

/// `host` on `device`: on CUDA copied from pinned memory without blocking the host; otherwise
/// host.to(device) (a no-op on the CPU).
at::Tensor to_device_async(const at::Tensor& host, const c10::Device& device);

/// "GPU busy share: 93.1 % of the batch loop's wall time (device work outstanding)", or
/// "GPU busy share: n/a (not on CUDA)" for nullopt.
std::string busy_share_line(const std::optional<double>& share);

struct PipelineOptions {
  bool overlap = true;  ///< false: every write runs inline in submit() (serial loop)
  size_t depth = 2;     ///< batches submitted but not yet written, at most (≥ 1)
};

class BatchPipeline {
 public:
  /// Writes one batch from its host tensors (the submitted tensors in order; undefined stay undefined).
  using Write = std::function<void(std::vector<at::Tensor>& host)>;

  /// `timer` (may be null) gets "writing (writer thread)" and "waiting for the writer" (host clock,
  /// no device synchronisation), or "writing" with overlap = false.
  BatchPipeline(const c10::Device& device, PipelineOptions options, StageTimer* timer);
  ~BatchPipeline();  ///< stops the threads; pending writes are dropped if finish() was not called
  BatchPipeline(const BatchPipeline&) = delete;
  BatchPipeline& operator=(const BatchPipeline&) = delete;

  /// Marks the start of a batch's device work (CUDA: an event on the current stream).
  void begin_batch();
  /// Queues the copy of `device_tensors` to the host and then `write` on the writer thread, after
  /// every earlier write. Waits while `depth` batches are pending. Rethrows a writer's error.
  void submit(std::vector<at::Tensor> device_tensors, Write write);
  /// Waits for every pending write; rethrows the first writer error (later writes were skipped).
  void finish();
  /// CUDA: the device busy share of [first begin_batch(), finish()] in [0, 1]; nullopt elsewhere
  /// or before finish().
  std::optional<double> device_busy_share() const;

 private:
  struct Job;
  void watch();
  void write_loop();
  void rethrow_if_failed();

  const c10::Device device_;
  const PipelineOptions options_;
  StageTimer* timer_;
  const double writer_delay_s_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> to_watch_, to_write_;
  size_t pending_ = 0;  ///< submitted, not yet written
  bool stop_ = false;
  std::exception_ptr error_;
  double busy_seconds_ = 0, wall_seconds_ = -1;
  std::optional<std::chrono::steady_clock::time_point> first_begin_;
  std::chrono::steady_clock::time_point serial_begin_;  ///< overlap = false: the batch's begin_batch()
  std::thread watcher_, writer_;
};

}  // namespace vcpclip::app
