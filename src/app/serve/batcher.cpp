// Dynamic batching for `vcpclip serve` (see include/vcpclip/app/serve/batcher.h).
#include "vcpclip/app/serve/batcher.h"

#include <spdlog/spdlog.h>

#include <vector>

namespace vcpclip::app {

using Clock = std::chrono::steady_clock;

Batcher::Batcher(const Inferencer& inferencer, BatcherOptions options, ServeMetrics* metrics)
    : inferencer_(inferencer), options_(options), metrics_(metrics) {
  thread_ = std::thread([this] { loop(); });
}

Batcher::~Batcher() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Arrival::~Arrival() {
  if (!batcher_) return;
  std::lock_guard<std::mutex> lock(batcher_->mutex_);
  batcher_->release(*this);
}

void Batcher::release(Arrival& arrival) {
  if (arrival.batcher_ != this) return;
  arrival.batcher_ = nullptr;
  --arriving_;
  cv_.notify_all();
}

Arrival Batcher::announce() {
  std::lock_guard<std::mutex> lock(mutex_);
  ++arriving_;
  return Arrival(this);
}

std::optional<std::future<BatchOutcome>> Batcher::submit(cv::Mat image, Arrival* arrival) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (arrival) release(*arrival);
  if (stop_ || static_cast<int>(queue_.size()) >= options_.queue) return std::nullopt;
  Item item;
  item.image = std::move(image);
  item.arrived = Clock::now();
  auto future = item.promise.get_future();
  queue_.push_back(std::move(item));
  cv_.notify_all();
  return future;
}

void Batcher::drain(Clock::time_point deadline) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    draining_ = true;
    deadline_ = deadline;
  }
  cv_.notify_all();
}

size_t Batcher::depth() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return queue_.size();
}

void Batcher::loop() {
  const auto max_batch = static_cast<size_t>(options_.max_batch);
  while (true) {
    std::deque<Item> batch;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ and nothing left
      const auto until = queue_.front().arrived + std::chrono::milliseconds(options_.max_wait_ms);
      // wait for the images on their way (none: run now), at most max_wait_ms after the oldest
      cv_.wait_until(lock, until, [&] {
        return stop_ || draining_ || (arriving_ == 0 && !options_.wait_always) || queue_.size() >= max_batch;
      });
      const bool late = draining_ && Clock::now() >= deadline_;
      if (late) {
        for (auto& item : queue_) item.promise.set_value({503, "the server is shutting down (drain timeout)"});
        queue_.clear();
        continue;
      }
      while (!queue_.empty() && batch.size() < max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    run(batch);
  }
}

void Batcher::run(std::deque<Item>& batch) {
  std::vector<cv::Mat> images;
  for (auto& item : batch) images.push_back(item.image);
  const auto t0 = Clock::now();
  std::vector<Prediction> predictions;
  std::string error;
  try {
    predictions = inferencer_.predict_batch(images);
  } catch (const std::exception& e) {
    error = e.what();
    spdlog::error("serve: a batch of {} images failed: {}", images.size(), error);
  }
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  if (metrics_ && error.empty()) metrics_->observe_batch(static_cast<int>(images.size()));
  for (size_t i = 0; i < batch.size(); ++i) {
    BatchOutcome out;
    out.model_ms = ms;
    out.batch_size = static_cast<int>(batch.size());
    if (error.empty()) {
      out.prediction = std::move(predictions[i]);
    } else {
      out.status = 500;
      out.error = "inference failed: " + error.substr(0, error.find('\n'));
    }
    batch[i].promise.set_value(std::move(out));
  }
}

}  // namespace vcpclip::app
