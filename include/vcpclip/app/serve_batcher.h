#pragma once
// Dynamic batching for `vcpclip serve` (README "Serving"): requests put decoded images in a
// bounded queue; one thread forms a batch of up to `max_batch` images, or whatever has arrived
// `max_wait_ms` after the oldest queued image, and runs it as ONE forward pass
// (Inferencer::predict_batch). A full queue refuses at once (submit returns nothing): the caller
// answers 503 and never waits for room.
//
// Draining (SIGTERM): drain(deadline) stops the waiting for more images (queued images run
// right away); images still queued at `deadline` are answered with status 503.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "vcpclip/app/serve_metrics.h"
#include "vcpclip/vcpclip.h"

namespace vcpclip::app {

struct BatchOutcome {
  int status = 200;                      ///< 200, or 503 (drained) / 500 (the model failed)
  std::string error;                     ///< why, when status != 200
  std::optional<Prediction> prediction;  ///< with status 200
  double model_ms = 0;                   ///< time of the batch's predict_batch call
  int batch_size = 0;                    ///< images in that batch
};

struct BatcherOptions {
  int max_batch = 8;
  int max_wait_ms = 5;
  int queue = 64;
};

class Batcher {
 public:
  Batcher(const Inferencer& inferencer, BatcherOptions options, ServeMetrics* metrics);
  ~Batcher();  ///< answers what is queued (503 once draining is over) and joins the thread
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  /// Queues a decoded image (BGR as cv::imdecode gives it); nothing when the queue is full.
  std::optional<std::future<BatchOutcome>> submit(cv::Mat image);
  /// Starts draining: no more waiting for fuller batches; images queued at `deadline` get 503.
  void drain(std::chrono::steady_clock::time_point deadline);
  size_t depth() const;

 private:
  struct Item {
    cv::Mat image;
    std::promise<BatchOutcome> promise;
    std::chrono::steady_clock::time_point arrived;
  };
  void loop();
  void run(std::deque<Item>& batch);

  const Inferencer& inferencer_;
  const BatcherOptions options_;
  ServeMetrics* metrics_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  bool stop_ = false, draining_ = false;
  std::chrono::steady_clock::time_point deadline_;
  std::thread thread_;
};

}  // namespace vcpclip::app
