#pragma once
// Dynamic batching for `vcpclip serve` (README "Serving"): requests put decoded images in a
// bounded queue; one thread forms a batch of up to `max_batch` images, or whatever has arrived
// `max_wait_ms` after the oldest queued image, and runs it as ONE forward pass
// (Inferencer::predict_batch). The wait is only for images on their way: a request announces
// itself (announce()) before it decodes its image and hands the announcement to submit(); while
// none is on its way, the queued images run at once, so a lone request never waits max_wait_ms. A full queue refuses at
// once (submit returns nothing): the caller answers 503 and never waits for room.
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

#include "vcpclip/app/serve/metrics.h"
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
  bool wait_always = false;  ///< wait max_wait_ms even when no image is on its way (serve.batch_wait)
};

class Batcher;

/// A request whose image is being decoded (Batcher::announce): batches wait for it, up to
/// max_wait_ms. Released by Batcher::submit or, if the request fails first, by the destructor.
class Arrival {
 public:
  Arrival(Arrival&& other) noexcept : batcher_(other.batcher_) { other.batcher_ = nullptr; }
  Arrival(const Arrival&) = delete;
  Arrival& operator=(const Arrival&) = delete;
  Arrival& operator=(Arrival&&) = delete;
  ~Arrival();

 private:
  friend class Batcher;
  explicit Arrival(Batcher* batcher) : batcher_(batcher) {}
  Batcher* batcher_;
};

class Batcher {
 public:
  Batcher(const Inferencer& inferencer, BatcherOptions options, ServeMetrics* metrics);
  ~Batcher();  ///< answers what is queued (503 once draining is over) and joins the thread
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  /// One more image on its way (its request is decoding it); see Arrival.
  Arrival announce();
  /// Queues a decoded image (BGR as cv::imdecode gives it) and releases its announcement;
  /// nothing when the queue is full.
  std::optional<std::future<BatchOutcome>> submit(cv::Mat image, Arrival* arrival = nullptr);
  /// Starts draining: no more waiting for fuller batches; images queued at `deadline` get 503.
  void drain(std::chrono::steady_clock::time_point deadline);
  size_t depth() const;

 private:
  struct Item {
    cv::Mat image;
    std::promise<BatchOutcome> promise;
    std::chrono::steady_clock::time_point arrived;
  };
  friend class Arrival;
  void loop();
  void release(Arrival& arrival);  ///< with mutex_ held
  void run(std::deque<Item>& batch);

  const Inferencer& inferencer_;
  const BatcherOptions options_;
  ServeMetrics* metrics_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<Item> queue_;
  int arriving_ = 0;  ///< announced images not yet submitted
  bool stop_ = false, draining_ = false;
  std::chrono::steady_clock::time_point deadline_;
  std::thread thread_;
};

}  // namespace vcpclip::app
